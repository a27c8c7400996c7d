//! Projection rows that follow from an accepted change (memberships, summaries, messages,
//! read markers), computed from the effects and the state after the change.

use confab_core::automerge::Automerge;
use confab_core::doc::read;
use confab_core::ids::{DocId, MessageId, TenantId};
use confab_core::limits::PREVIEW_CHARS;
use confab_core::model::conversation::Conversation;
use confab_core::model::message::NewMessage;
use confab_core::policy::joining::join_route;
use confab_core::policy::Effect;
use confab_core::search;

use crate::store::forget::BlobRelease;
use crate::store::{ConvRow, MessageRow, Projection};

pub(crate) fn conv_row(tenant: &TenantId, conv: &Conversation) -> Option<ConvRow> {
    let meta = conv.meta.as_ref()?;
    Some(ConvRow {
        tenant: tenant.clone(),
        conv: conv.id.clone(),
        kind: meta.kind.as_str().to_owned(),
        title: conv.info.title.clone(),
        lifecycle: conv.lifecycle.state.as_str().to_owned(),
        parent: meta.thread.as_ref().map(|t| t.parent.clone()),
        created_at: meta.created_at,
        scope: conv.settings.scope.as_str().to_owned(),
        description: conv.info.description.clone(),
        // Every change to the conversation document projects its row again, so a join,
        // leave or removal moves the count in the commit that makes it.
        active_members: i64::try_from(conv.members.values().filter(|m| m.is_active()).count())
            .unwrap_or(i64::MAX),
        join_route: join_route(conv).as_str().to_owned(),
    })
}

pub(crate) fn preview(text: &str) -> String {
    text.chars().take(PREVIEW_CHARS).collect()
}

/// Rows for a change to a conversation document (after the cache was refreshed).
pub(crate) fn for_conv(
    doc: &DocId,
    conv: &Conversation,
    effects: &[Effect],
    created: bool,
) -> Vec<Projection> {
    let mut out = Vec::new();
    if let Some(row) = conv_row(doc.tenant(), conv) {
        out.push(Projection::Conversation(row));
    }
    let member_row = |account: &confab_core::ids::AccountId| {
        conv.members.get(account).map(|m| Projection::Member {
            tenant: doc.tenant().clone(),
            conv: conv.id.clone(),
            account: account.clone(),
            role: m.role.as_str().to_owned(),
            status: m.status.as_str().to_owned(),
        })
    };
    if created {
        out.extend(conv.members.keys().filter_map(member_row));
    }
    for effect in effects {
        match effect {
            Effect::AddMember { after, .. } | Effect::UpdateMember { after, .. } => {
                out.extend(member_row(&after.account));
            }
            Effect::TransferOwnership(t) => {
                out.extend(member_row(&t.from.after.account));
                out.extend(member_row(&t.to.after.account));
            }
            Effect::MarkRead { account } => {
                if let Some(message) = conv.reads.get(account) {
                    out.push(Projection::ReadMarker {
                        tenant: doc.tenant().clone(),
                        conv: conv.id.clone(),
                        account: account.clone(),
                        message: message.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

fn message_row(doc: &DocId, seq: u64, m: &NewMessage) -> Option<Projection> {
    let conv = doc.conv_id()?.clone();
    let text = if m.body.is_empty() {
        m.caption
            .clone()
            .unwrap_or_else(|| format!("[{}]", m.kind.as_str()))
    } else {
        m.body.clone()
    };
    Some(Projection::Message(MessageRow {
        tenant: doc.tenant().clone(),
        conv,
        message: m.id.clone(),
        doc: doc.to_string(),
        seq,
        author: m.author.clone(),
        kind: m.kind.as_str().to_owned(),
        created_at: m.created_at,
        preview: preview(&text),
        deleted: false,
        pos: 0,
        views: 0,
    }))
}

/// A message's search terms, in a plaintext conversation only: an encrypted conversation's
/// messages are never indexed on the server (their content is sealed; docs/SEARCH.md).
pub(crate) fn search_terms(
    doc: &DocId,
    encrypted: bool,
    id: &MessageId,
    body: &str,
    caption: Option<&str>,
) -> Option<Projection> {
    if encrypted || cfg!(feature = "bench-without-search") {
        return None;
    }
    let terms = search::index_text([body].into_iter().chain(caption))?;
    Some(Projection::SearchTerms {
        tenant: doc.tenant().clone(),
        conv: doc.conv_id()?.clone(),
        message: id.clone(),
        terms,
    })
}

/// Rows for a change to a message bucket (after apply) of a conversation that is
/// `encrypted` or not.
pub(crate) fn for_msgs(
    doc: &DocId,
    seq: u64,
    bucket: &Automerge,
    effects: &[Effect],
    encrypted: bool,
) -> Vec<Projection> {
    let Some(conv) = doc.conv_id() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let edited = |id: &MessageId| {
        read::read_message_fields(bucket, id)
            .and_then(|m| search_terms(doc, encrypted, id, &m.body, m.caption.as_deref()))
    };
    let updated = |id: &MessageId, deleted: bool| {
        let body = read::read_message_fields(bucket, id)
            .map(|m| m.body)
            .unwrap_or_default();
        Projection::MessageUpdated {
            tenant: doc.tenant().clone(),
            conv: conv.clone(),
            message: id.clone(),
            preview: preview(&body),
            deleted,
        }
    };
    for effect in effects {
        match effect {
            Effect::PostMessage(m) => {
                out.extend(message_row(doc, seq, m));
                out.extend(search_terms(
                    doc,
                    encrypted,
                    &m.id,
                    &m.body,
                    m.caption.as_deref(),
                ));
            }
            Effect::EditBody(m) => {
                out.push(updated(&m.id, false));
                out.extend(edited(&m.id));
            }
            Effect::DeleteMessage(m) => out.push(updated(&m.id, true)),
            _ => {}
        }
    }
    out
}

/// The blobs of this message bucket's conversation that the deletes among `effects` named
/// (by an attachment's URL, or a sealed message's `blobs`): each a candidate for the sweep
/// (`forget::blobs`), which deletes it only if no live message of the conversation names it
/// then.
pub(crate) fn released_blobs(doc: &DocId, effects: &[Effect], now_ms: i64) -> Vec<BlobRelease> {
    let Some(conv) = doc.conv_id() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for effect in effects {
        let Effect::DeleteMessage(message) = effect else {
            continue;
        };
        for hash in message.blob_hashes(conv) {
            out.push(BlobRelease {
                tenant: doc.tenant().clone(),
                conv: conv.clone(),
                hash: hash.hex(),
                deleted_at: now_ms,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use confab_core::ids::{AccountId, Bucket, ConvId, MessageId, TenantId};

    use super::*;

    fn posted(encrypted: bool) -> Vec<Projection> {
        let id = |s: &str| TenantId::new(s).expect("id");
        let doc = DocId::msgs(
            &id("acme"),
            &ConvId::new("vault").expect("id"),
            Bucket::first(0),
        );
        let mut m = NewMessage::text(
            MessageId::new("m1").expect("id"),
            AccountId::new("alice").expect("id"),
            "Top secret café",
            0,
        );
        m.caption = Some("also secret".into());
        let effects = [Effect::PostMessage(Box::new(m))];
        for_msgs(&doc, 1, &Automerge::new(), &effects, encrypted)
    }

    fn has_terms(rows: &[Projection]) -> bool {
        rows.iter()
            .any(|p| matches!(p, Projection::SearchTerms { .. }))
    }

    #[test]
    fn a_delete_releases_the_blobs_named_by_url_and_by_a_sealed_messages_hashes() {
        use confab_core::model::attachment::{blob_hashes_to_json, BlobHash};
        let id = |s: &str| TenantId::new(s).expect("id");
        let doc = DocId::msgs(
            &id("acme"),
            &ConvId::new("vault").expect("id"),
            Bucket::first(0),
        );
        let (plain, sealed, other) = (
            BlobHash::of(b"plain"),
            BlobHash::of(b"sealed"),
            BlobHash::of(b"other"),
        );
        use confab_core::automerge::ScalarValueRef as V;
        let fields = [
            ("author", V::Str("alice".into())),
            ("kind", V::Str("file".into())),
            ("created_at", V::Int(0)),
        ];
        let mut message = read::message_from_fields(fields, MessageId::new("m1").expect("id"))
            .expect("a message");
        message.attachments = Some(format!(
            r#"[{{"id":"a","kind":"file","url":"https://e.io/v1/conversations/vault/attachments/{plain}"}},
                {{"id":"b","kind":"file","url":"https://e.io/v1/conversations/elsewhere/attachments/{other}"}}]"#
        ));
        message.blobs = Some(blob_hashes_to_json(&[sealed, plain]));
        let released = released_blobs(&doc, &[Effect::DeleteMessage(Box::new(message))], 7);
        let hashes: Vec<String> = released.iter().map(|r| r.hash.clone()).collect();
        assert_eq!(hashes, [plain.hex(), sealed.hex()]);
        assert!(released
            .iter()
            .all(|r| r.conv.as_str() == "vault" && r.deleted_at == 7));
    }

    #[test]
    fn encrypted_conversations_are_never_indexed() {
        // Even a message that (wrongly) carries text in the clear gives no search terms.
        assert!(!has_terms(&posted(true)));
        let plain = posted(false);
        let terms: Vec<&str> = plain
            .iter()
            .filter_map(|p| match p {
                Projection::SearchTerms { terms, .. } => Some(terms.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(terms, ["top secret cafe also"]);
    }
}
