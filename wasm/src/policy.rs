//! `ConfabClient.can(query)`: the policy's verdict on an action before the user tries it, so
//! a UI can disable a control and say why. It runs `confab_core::policy::check` — the same
//! pure function the server runs on every change — through the engine's `verdict`, on this
//! device's view of the conversation (accepted plus pending), and writes nothing. It reads
//! the engine's cached policy view and the message's bucket, never the member list.

use confab_core::client::Intent;
use confab_core::ids::{AccountId, Bucket, ConvId, MessageId};
use confab_core::model::conversation::{Lifecycle, Role as CoreRole};
use confab_core::model::message as cm;
use confab_core::model::proposal::ProposalResponse;
use confab_core::policy::Denial;
use serde::{Deserialize, Serialize};
use tsify::{Ts, Tsify};
use wasm_bindgen::prelude::*;

use crate::client::ConfabClient;
use crate::error::{Failure, Result};
use crate::types::{MessageKind, ProposalAnswer, Role};

/// An action to ask the policy about (`action` names it). Message actions need the message
/// loaded in the timeline (`openConversation` first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PolicyQuery {
    /// Post a message (default kind `text`).
    Send {
        conv: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        kind: Option<MessageKind>,
    },
    Edit {
        conv: String,
        message: String,
    },
    Delete {
        conv: String,
        message: String,
    },
    React {
        conv: String,
        message: String,
    },
    /// Answer a proposal.
    Respond {
        conv: String,
        message: String,
        response: ProposalAnswer,
    },
    Pin {
        conv: String,
        message: String,
    },
    Unpin {
        conv: String,
        message: String,
    },
    /// Add `account` (role default `member`).
    AddMember {
        conv: String,
        account: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        role: Option<Role>,
    },
    RemoveMember {
        conv: String,
        account: String,
        #[serde(default)]
        #[tsify(optional)]
        ban: bool,
    },
    SetRole {
        conv: String,
        account: String,
        role: Role,
        /// A temporary role: until this server time (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[tsify(optional)]
        until: Option<i64>,
    },
    Leave {
        conv: String,
    },
    Archive {
        conv: String,
    },
    Close {
        conv: String,
    },
    Reopen {
        conv: String,
    },
    /// Delete the conversation (owner only).
    DeleteConversation {
        conv: String,
    },
    /// Block the other member of a direct conversation.
    Block {
        conv: String,
    },
    /// Make `account` the owner (the owner only).
    TransferOwnership {
        conv: String,
        account: String,
    },
    SetInfo {
        conv: String,
        field: String,
    },
    SetSetting {
        conv: String,
        key: String,
    },
}

/// The policy's answer. When `allowed` is false, `code` is a reject code of docs/POLICY.md,
/// `reason` says why in a sentence for people (names and titles: "Your role (member) may not
/// pin messages in Weekend plans") and `detail` in the policy's own words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct PolicyVerdict {
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub detail: Option<String>,
}

impl PolicyVerdict {
    fn of(decision: std::result::Result<(), Denial>, explain: impl FnOnce(&str) -> String) -> Self {
        match decision {
            Ok(()) => PolicyVerdict {
                allowed: true,
                code: None,
                reason: None,
                detail: None,
            },
            Err(d) => PolicyVerdict {
                allowed: false,
                code: Some(d.code.as_str().to_owned()),
                reason: Some(explain(d.code.as_str())),
                detail: Some(d.reason),
            },
        }
    }
}

/// What a query asks: an intent the client engine checks the way it checks its own; for a
/// message action, the intent once the message's bucket is known (it must be loaded).
enum Ask {
    Intent(Box<Intent>),
    Message(MessageId, Box<dyn FnOnce(Bucket) -> Intent>),
}

#[wasm_bindgen]
impl ConfabClient {
    /// Whether the policy lets this account do `query` now, and if not, why:
    /// `client.can({ action: "remove_member", conv, account: "bob" })` →
    /// `{ allowed: false, code: "no_permission", reason: "..." }`. The same check as the
    /// server's, on this device's state: a race (removed while offline) can still be refused.
    /// Throws `not_found` when a message action names a message that is not loaded.
    pub fn can(&self, query: Ts<PolicyQuery>) -> std::result::Result<Ts<PolicyVerdict>, JsValue> {
        let query: PolicyQuery = query.to_rust().map_err(Failure::from)?;
        let verdict = self.verdict(query)?;
        Ok(Ts::from_rust(&verdict).map_err(Failure::from)?)
    }
}

impl ConfabClient {
    /// The engine's `verdict`: reads the policy's cached view of the conversation and the
    /// message's bucket, not the member list or the timeline (O(1) in the group's size).
    fn verdict(&self, query: PolicyQuery) -> Result<PolicyVerdict> {
        let rt = &self.rt;
        let me = rt.account().clone();
        let now = rt.server_now();
        let (conv, ask) = ask(query, &me, now)?;
        let intent = match ask {
            Ask::Intent(intent) => *intent,
            Ask::Message(id, intent) => {
                let found = rt.read(None, |e| e.message(&conv, &id));
                let (bucket, _) = found.ok_or_else(|| {
                    Failure::new(
                        "not_found",
                        format!("message {id} is not loaded (openConversation / loadOlder first)"),
                    )
                })?;
                intent(bucket)
            }
        };
        let device_now = crate::js::now_ms();
        let decision = rt.read(Ok(()), |e| e.verdict(&intent, device_now));
        let explain = |code: &str| rt.read(String::new(), |e| e.explain(&intent, code));
        Ok(PolicyVerdict::of(decision, explain))
    }
}

impl PolicyQuery {
    fn conv(&self) -> &str {
        use PolicyQuery as Q;
        match self {
            Q::Send { conv, .. }
            | Q::Edit { conv, .. }
            | Q::Delete { conv, .. }
            | Q::React { conv, .. }
            | Q::Respond { conv, .. }
            | Q::Pin { conv, .. }
            | Q::Unpin { conv, .. }
            | Q::AddMember { conv, .. }
            | Q::RemoveMember { conv, .. }
            | Q::SetRole { conv, .. }
            | Q::Leave { conv }
            | Q::Archive { conv }
            | Q::Close { conv }
            | Q::Reopen { conv }
            | Q::DeleteConversation { conv }
            | Q::Block { conv }
            | Q::TransferOwnership { conv, .. }
            | Q::SetInfo { conv, .. }
            | Q::SetSetting { conv, .. } => conv,
        }
    }
}

/// The conversation a query is about, and what to check.
fn ask(query: PolicyQuery, me: &AccountId, now: i64) -> Result<(ConvId, Ask)> {
    use PolicyQuery as Q;
    let conv = ConvId::new(query.conv())?;
    let c = conv.clone();
    let on_message = |m: String, intent: Box<dyn FnOnce(MessageId, Bucket) -> Intent>| {
        let id = MessageId::new(m)?;
        let message = id.clone();
        Ok::<_, Failure>(Ask::Message(
            id,
            Box::new(move |bucket| intent(message, bucket)),
        ))
    };
    let ask = match query {
        Q::Send { kind, .. } => {
            let id = MessageId::new("m-policy-check")?;
            let mut message = cm::NewMessage::text(id, me.clone(), "", now);
            message.kind = kind.map_or(cm::MessageKind::Text, Into::into);
            ask_intent(Intent::Send { conv: c, message })
        }
        Q::Edit { message, .. } => on_message(
            message,
            Box::new(move |message, bucket| Intent::Edit {
                conv: c,
                message,
                bucket,
                body: String::new(),
            }),
        )?,
        Q::Delete { message, .. } => on_message(
            message,
            Box::new(move |message, bucket| Intent::Delete {
                conv: c,
                message,
                bucket,
            }),
        )?,
        // Any reaction of this account (`on: false` leaves out the per-emoji limit).
        Q::React { message, .. } => on_message(
            message,
            Box::new(move |message, bucket| Intent::React {
                conv: c,
                message,
                bucket,
                emoji: String::new(),
                on: false,
            }),
        )?,
        Q::Respond {
            message, response, ..
        } => {
            let status = ProposalResponse::from(response).status();
            on_message(
                message,
                Box::new(move |proposal, bucket| Intent::AnswerProposal {
                    conv: c,
                    proposal,
                    bucket,
                    status,
                }),
            )?
        }
        Q::Pin { message, .. } => ask_intent(Intent::Pin {
            conv: c,
            message: MessageId::new(message)?,
        }),
        Q::Unpin { message, .. } => ask_intent(Intent::Unpin {
            conv: c,
            message: MessageId::new(message)?,
        }),
        Q::AddMember { account, role, .. } => ask_intent(Intent::AddMember {
            conv: c,
            account: AccountId::new(account)?,
            role: role.map_or(CoreRole::Member, Into::into),
        }),
        Q::RemoveMember { account, ban, .. } => ask_intent(Intent::RemoveMember {
            conv: c,
            account: AccountId::new(account)?,
            ban,
        }),
        Q::SetRole {
            account,
            role,
            until,
            ..
        } => ask_intent(Intent::SetRole {
            conv: c,
            account: AccountId::new(account)?,
            role: role.into(),
            until,
        }),
        Q::Leave { .. } => ask_intent(Intent::Leave { conv: c }),
        Q::Archive { .. } => lifecycle(c, Lifecycle::Archived),
        Q::Close { .. } => lifecycle(c, Lifecycle::Closed),
        Q::Reopen { .. } => lifecycle(c, Lifecycle::Active),
        Q::DeleteConversation { .. } => lifecycle(c, Lifecycle::Deleted),
        Q::Block { .. } => ask_intent(Intent::Block { conv: c, on: true }),
        Q::TransferOwnership { account, .. } => ask_intent(Intent::TransferOwnership {
            conv: c,
            account: AccountId::new(account)?,
        }),
        Q::SetInfo { field, .. } => ask_intent(Intent::SetInfo {
            conv: c,
            field,
            value: None,
        }),
        Q::SetSetting { key, .. } => ask_intent(Intent::SetSetting {
            conv: c,
            key,
            value: serde_json::Value::Null,
        }),
    };
    Ok((conv, ask))
}

fn ask_intent(intent: Intent) -> Ask {
    Ask::Intent(Box::new(intent))
}

fn lifecycle(conv: ConvId, state: Lifecycle) -> Ask {
    ask_intent(Intent::SetLifecycle { conv, state })
}
