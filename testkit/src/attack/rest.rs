//! The REST routes on a posted message (`server/src/rest/edits.rs`) as cases call them.
//!
//! The wire calls the real route over HTTP. The hub has no HTTP: it runs what the route runs,
//! in the same order: the conversation of the caller's tenant (else not found), the read gate,
//! then the change built by core's writer on the accepted document under the account's host
//! actor (`confab_core::accept::host_actor`, as `Engine::write` forks it), submitted as the
//! account. A write that changes nothing is "not found" for an edit or a deletion; for a
//! reaction or a pin it is what the policy says of the caller making it, as the route answers.

use confab_core::automerge::{Automerge, Change, ROOT};
use confab_core::doc::schema::{keys::REACTIONS, reaction_key};
use confab_core::doc::{read, write, DocError, IntentTag};
use confab_core::ids::{AccountId, DocId, MessageId, TenantId};
use confab_core::model::conversation::Conversation;
use confab_core::policy::{self, Author, Context, Effect};

use super::{known, Lab};
use crate::ids::acc;

/// What a service or bot asks of a message over REST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestCall {
    /// `PATCH …/messages/{message}`.
    Edit(String),
    /// `DELETE …/messages/{message}`.
    Delete,
    /// `PUT` (`true`) or `DELETE` (`false`) `…/messages/{message}/reactions/{emoji}`.
    React(String, bool),
    /// `PUT` (`true`) or `DELETE` (`false`) `/v1/conversations/{id}/pins/{message}`.
    Pin(bool),
}

/// A REST route's answer, as far as a case looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestAnswer {
    /// 200 or 204.
    Done,
    /// 404: no such conversation (of the caller's tenant) or message.
    NotFound,
    /// Refused with this code (403, 409 or 422).
    Refused(String),
}

/// Message `message` of the bucket `bucket`, addressed by REST.
#[derive(Debug, Clone)]
pub struct RestTarget {
    pub bucket: DocId,
    pub message: MessageId,
}

impl RestTarget {
    pub fn new(bucket: &DocId, message: &str) -> Self {
        RestTarget {
            bucket: bucket.clone(),
            message: crate::ids::msg_id(message),
        }
    }

    /// The conversation document (pins are kept there) of the bucket's tenant.
    pub fn conv_doc(&self) -> DocId {
        DocId::conv(
            self.bucket.tenant(),
            self.bucket.conv_id().expect("a message bucket"),
        )
    }

    /// The document `call` writes to.
    pub fn doc_of(&self, call: &RestCall) -> DocId {
        match call {
            RestCall::Pin(_) => self.conv_doc(),
            _ => self.bucket.clone(),
        }
    }

    /// `(method, path, JSON body)` of `call` over HTTP.
    pub fn http(&self, call: &RestCall) -> (&'static str, String, Option<String>) {
        let conv = self.bucket.conv_id().expect("a message bucket").as_str();
        let message = format!("/v1/conversations/{conv}/messages/{}", self.message);
        let verb = |on: bool| if on { "PUT" } else { "DELETE" };
        match call {
            RestCall::Edit(body) => (
                "PATCH",
                message,
                Some(format!("{{\"body\":{}}}", json_text(body))),
            ),
            RestCall::Delete => ("DELETE", message, None),
            RestCall::React(emoji, on) => (
                verb(*on),
                format!("{message}/reactions/{}", percent(emoji)),
                None,
            ),
            RestCall::Pin(on) => (
                verb(*on),
                format!("/v1/conversations/{conv}/pins/{}", self.message),
                None,
            ),
        }
    }

    /// The change the route builds for `account` on `accepted` (the document `call` writes
    /// to), at `now`: `None` when it changes nothing.
    pub fn change(
        &self,
        accepted: &Automerge,
        tenant: &TenantId,
        account: &AccountId,
        call: &RestCall,
        now: i64,
    ) -> Result<Option<Change>, DocError> {
        let mut doc = write::with_actor(
            accepted.clone(),
            confab_core::accept::host_actor(tenant, account),
        );
        let tag = IntentTag::new(format!("rest-{now}"), "rest");
        let m = &self.message;
        let written = match call {
            RestCall::Edit(body) => write::edit_body(&mut doc, &tag, now, m, body)?,
            RestCall::Delete => write::delete_message(&mut doc, &tag, now, m, account)?,
            RestCall::React(emoji, true) if reacted(&doc, m, account, emoji) => None,
            RestCall::React(emoji, on) => {
                write::react(&mut doc, &tag, now, m, account, emoji, *on)?
            }
            RestCall::Pin(true) if read::read_pins(&doc).contains_key(m) => None,
            RestCall::Pin(true) => write::pin(&mut doc, &tag, now, m, account)?,
            RestCall::Pin(false) => write::unpin(&mut doc, &tag, now, m)?,
        };
        Ok(written.and_then(|_| doc.get_last_local_change()))
    }
}

/// What the route answers for a write that changed nothing (`not_applicable`): not found
/// for an edit or a deletion; for a reaction or a pin, what the policy says of the caller
/// making that change (`conv`; `bucket`: the message's accepted bucket).
pub fn unchanged(
    call: &RestCall,
    at: &RestTarget,
    conv: &Conversation,
    author: &Author,
    bucket: &Automerge,
    now: i64,
) -> RestAnswer {
    let effect = match call {
        RestCall::Edit(_) | RestCall::Delete => return RestAnswer::NotFound,
        RestCall::React(..) => match read::read_message(bucket, &at.message) {
            Some(message) => Effect::SetReaction {
                message: Box::new(message),
                account: author.account.clone(),
            },
            None => return RestAnswer::Done,
        },
        RestCall::Pin(true) => Effect::Pin {
            message: at.message.clone(),
            by: author.account.clone(),
        },
        RestCall::Pin(false) => Effect::Unpin {
            message: at.message.clone(),
        },
    };
    let ctx = Context {
        conv: Some(conv),
        parent: None,
        now_ms: now,
        last_post_ms: None,
        bucket: None,
        parent_standing: None,
        parent_message: None,
    };
    match policy::check(&ctx, author, &effect) {
        Ok(()) => RestAnswer::Done,
        Err(denial) => RestAnswer::Refused(denial.code.as_str().to_owned()),
    }
}

fn reacted(d: &Automerge, message: &MessageId, account: &AccountId, emoji: &str) -> bool {
    read::get_map(d, &ROOT, REACTIONS).is_some_and(|reactions| {
        let key = reaction_key(message.as_str(), account.as_str(), emoji);
        read::scalar(d, &reactions, &key).is_some()
    })
}

/// `s` as a JSON string.
fn json_text(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Percent-encodes a path segment.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What a REST refusal must leave alone: the bucket and the conversation document.
async fn held<L: Lab + ?Sized>(
    lab: &mut L,
    at: &RestTarget,
    tenant: &TenantId,
    account: &str,
) -> (L::State, L::State) {
    let actor = confab_core::accept::host_actor(tenant, &acc(account));
    (
        lab.state(&at.bucket, &actor).await,
        lab.state(&at.conv_doc(), &actor).await,
    )
}

/// `account` of `tenant` calls `call` on `at`: answered `expected`, and when that is not
/// `Done`, nothing of the bucket or the conversation moved.
pub async fn rest_answers<L: Lab + ?Sized>(
    lab: &mut L,
    tenant: &TenantId,
    account: &str,
    at: &RestTarget,
    call: RestCall,
    expected: RestAnswer,
) {
    if let RestAnswer::Refused(code) = &expected {
        known(code);
    }
    let before = held(lab, at, tenant, account).await;
    let answer = lab.rest(tenant, account, at, &call).await;
    assert_eq!(
        answer, expected,
        "{account} of {tenant}: {call:?} on {at:?}"
    );
    if expected != RestAnswer::Done {
        let after = held(lab, at, tenant, account).await;
        assert_eq!(
            before, after,
            "{call:?} refused, yet what the acceptor holds moved"
        );
    }
}
