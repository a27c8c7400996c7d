//! Changes to a posted message, for services and bots: edit, delete for everyone, react and
//! un-react, pin and unpin.
//!
//! Each is the change a client would make, built by its `confab_core::doc::write` writer on
//! the accepted document and submitted through `Engine::write`: the acceptor decides, so a
//! refusal carries the code the wire gives (`not_author`, `not_member`, `message_deleted`,
//! `plaintext_in_encrypted`, ...). REST only finds the message first, after the read gate, so
//! a caller who may not read the conversation learns nothing about its messages.
//!
//! Reactions and pins state what should be: putting what is there, or deleting what is not,
//! writes nothing and answers 204 as the write that changes something does, if the policy
//! lets the caller make that change (docs/DECISIONS.md).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_core::automerge::{Automerge, ROOT};
use confab_core::doc::schema::{keys::REACTIONS, reaction_key};
use confab_core::doc::{read, write};
use confab_core::ids::{AccountId, DocId, MessageId};
use confab_core::limits::BODY_MAX_CHARS;
use confab_core::model::conversation::Conversation;
use confab_core::policy::{self, Context, DenyCode, Effect};
use confab_core::validate::RejectCode;
use serde::Deserialize;

use super::budget::Writer;
use super::conversations::{load, path_conv, readable};
use super::error::{acked, ApiError};
use super::extract::{JsonBody, Params};
use super::messages::{find_row, read_bucket};
use super::views::{DeletedMessage, EditedMessage};
use crate::clock::now_ms;
use crate::engine::SubmitOutcome;
use crate::state::AppState;
use crate::store::MessageRow;

/// A message the caller names in a path, found in a conversation it may read.
struct Target {
    conv: Conversation,
    message: MessageId,
    /// The message bucket it lives in.
    doc: DocId,
    /// Deleted for everyone (as the projection has it).
    deleted: bool,
}

/// Loads conversation `id` of the caller's tenant, checks read access, and finds `message`
/// in its projection: 404 for an unknown conversation or message, 403 with the policy code
/// for one the caller may not read.
async fn target(
    app: &AppState,
    caller: &Writer,
    id: &str,
    message: &str,
) -> Result<Target, ApiError> {
    let conv_id = path_conv(id)?;
    let message = MessageId::new(message)
        .map_err(|_| ApiError::not_found(format!("no message {message:?}")))?;
    let conv = load(app, caller, &conv_id).await?;
    readable(app, &conv, caller).await?;
    let row: MessageRow = find_row(
        app.engine.store().as_ref(),
        &caller.tenant,
        &conv_id,
        &message,
    )
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no message {message} in {conv_id}")))?;
    let doc = DocId::parse(&row.doc)
        .map_err(|e| ApiError::internal(format!("stored doc id {}: {e}", row.doc)))?;
    Ok(Target {
        conv,
        message,
        doc,
        deleted: row.deleted,
    })
}

/// 204 for a write that changed something, or that found the state asked for holding
/// already (`not_applicable`: nothing was written) if the policy would let the caller write
/// `effect`, so a put or delete that changes nothing is refused as the change would be.
fn settled(
    outcome: SubmitOutcome,
    conv: &Conversation,
    caller: &Writer,
    effect: Option<Effect>,
) -> Result<Response, ApiError> {
    match outcome {
        SubmitOutcome::Reject {
            code: RejectCode::NotApplicable,
            ..
        } => {
            if let Some(effect) = effect {
                let ctx = Context {
                    conv: Some(conv),
                    parent: None,
                    now_ms: now_ms(),
                    last_post_ms: None,
                    bucket: None,
                    parent_standing: None,
                    parent_message: None,
                };
                policy::check(&ctx, &caller.author(), &effect)
                    .map_err(|denial| ApiError::forbidden(denial.code, denial.reason))?;
            }
        }
        outcome => {
            acked(outcome, ApiError::not_found)?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    body: String,
}

/// `PATCH /v1/conversations/{id}/messages/{message}`: the author gives its message a new
/// body. 200 `{id, seq, doc, edited_at}`.
pub async fn edit(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, message)): Params<(String, String)>,
    JsonBody(req): JsonBody<EditRequest>,
) -> Result<Response, ApiError> {
    confab_core::error::check_chars("body", &req.body, BODY_MAX_CHARS)?;
    let target = target(&app, &caller, &id, &message).await?;
    let now = now_ms();
    let message = target.message.clone();
    let outcome = caller
        .write(
            &app,
            target.doc.clone(),
            Box::new(move |d, tag| write::edit_body(d, tag, now, &message, &req.body)),
        )
        .await;
    let seq = acked(outcome, ApiError::not_found)?;
    let view = EditedMessage::new(target.message.to_string(), seq, target.doc.to_string(), now);
    Ok(Json(view).into_response())
}

/// `DELETE /v1/conversations/{id}/messages/{message}`: deletes the message for everyone (a
/// tombstone, as the wire's `delete_message`). 200 `{id, seq, doc, deleted_at}`.
pub async fn delete(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, message)): Params<(String, String)>,
) -> Result<Response, ApiError> {
    let target = target(&app, &caller, &id, &message).await?;
    // The policy's rule, said before writing: a second tombstone would only rewrite
    // `deleted_at`, which the acceptor calls `incomplete_redaction`.
    if target.deleted {
        return Err(ApiError::forbidden(
            DenyCode::MessageDeleted,
            format!("{} was deleted", target.message),
        ));
    }
    let now = now_ms();
    let message = target.message.clone();
    let by = caller.account.clone();
    let outcome = caller
        .write(
            &app,
            target.doc.clone(),
            Box::new(move |d, tag| write::delete_message(d, tag, now, &message, &by)),
        )
        .await;
    let seq = acked(outcome, ApiError::not_found)?;
    let view = DeletedMessage::new(target.message.to_string(), seq, target.doc.to_string(), now);
    Ok(Json(view).into_response())
}

/// Whether `account` already reacted with `emoji` in the accepted bucket `d`.
fn reacted(d: &Automerge, message: &MessageId, account: &AccountId, emoji: &str) -> bool {
    read::get_map(d, &ROOT, REACTIONS).is_some_and(|reactions| {
        let key = reaction_key(message.as_str(), account.as_str(), emoji);
        read::scalar(d, &reactions, &key).is_some()
    })
}

async fn set_reaction(
    app: AppState,
    caller: Writer,
    (id, message, emoji): (String, String, String),
    on: bool,
) -> Result<Response, ApiError> {
    confab_core::model::attachment::validate_reaction(&emoji)?;
    let target = target(&app, &caller, &id, &message).await?;
    let now = now_ms();
    let message = target.message.clone();
    let account = caller.account.clone();
    let outcome = caller
        .write(
            &app,
            target.doc.clone(),
            Box::new(move |d, tag| {
                // A reaction that is there keeps its time: putting it again writes nothing.
                if on && reacted(d, &message, &account, &emoji) {
                    return Ok(None);
                }
                write::react(d, tag, now, &message, &account, &emoji, on)
            }),
        )
        .await;
    // Only a write that changed nothing needs the message (the policy reads its author and
    // deletion); the acceptor read it for any other.
    let effect = match &outcome {
        SubmitOutcome::Reject {
            code: RejectCode::NotApplicable,
            ..
        } => read_bucket(
            app.engine.store().as_ref(),
            &target.doc.to_string(),
            vec![target.message.clone()],
        )
        .await
        .map_err(ApiError::internal)?
        .pop()
        .map(|(_, message)| Effect::SetReaction {
            message: Box::new(message),
            account: caller.account.clone(),
        }),
        _ => None,
    };
    settled(outcome, &target.conv, &caller, effect)
}

/// `PUT /v1/conversations/{id}/messages/{message}/reactions/{emoji}`: the caller reacts.
/// 204, also when it had reacted so already.
pub async fn react(
    State(app): State<AppState>,
    caller: Writer,
    Params(params): Params<(String, String, String)>,
) -> Result<Response, ApiError> {
    set_reaction(app, caller, params, true).await
}

/// `DELETE /v1/conversations/{id}/messages/{message}/reactions/{emoji}`: the caller takes
/// its reaction back. 204, also when there was none.
pub async fn unreact(
    State(app): State<AppState>,
    caller: Writer,
    Params(params): Params<(String, String, String)>,
) -> Result<Response, ApiError> {
    set_reaction(app, caller, params, false).await
}

async fn set_pin(
    app: AppState,
    caller: Writer,
    (id, message): (String, String),
    on: bool,
) -> Result<Response, ApiError> {
    let target = target(&app, &caller, &id, &message).await?;
    let now = now_ms();
    let message = target.message.clone();
    let by = caller.account.clone();
    // Pins are the conversation's (core models them in its document, not in a bucket).
    let doc = DocId::conv(&caller.tenant, &target.conv.id);
    let outcome = caller
        .write(
            &app,
            doc,
            Box::new(move |d, tag| {
                // A pin that is there keeps its pinner and time.
                if on && read::read_pins(d).contains_key(&message) {
                    return Ok(None);
                }
                if on {
                    write::pin(d, tag, now, &message, &by)
                } else {
                    write::unpin(d, tag, now, &message)
                }
            }),
        )
        .await;
    let effect = if on {
        Effect::Pin {
            message: target.message,
            by: caller.account.clone(),
        }
    } else {
        Effect::Unpin {
            message: target.message,
        }
    };
    settled(outcome, &target.conv, &caller, Some(effect))
}

/// `PUT /v1/conversations/{id}/pins/{message}`: pins a message of the conversation. 204,
/// also when it was pinned already.
pub async fn pin(
    State(app): State<AppState>,
    caller: Writer,
    Params(params): Params<(String, String)>,
) -> Result<Response, ApiError> {
    set_pin(app, caller, params, true).await
}

/// `DELETE /v1/conversations/{id}/pins/{message}`: unpins it. 204, also when it was not
/// pinned.
pub async fn unpin(
    State(app): State<AppState>,
    caller: Writer,
    Params(params): Params<(String, String)>,
) -> Result<Response, ApiError> {
    set_pin(app, caller, params, false).await
}
