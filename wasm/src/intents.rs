//! The intent methods of `ConfabClient`: each builds an intent (or two) and runs it through
//! the engine, which loads what it touches first.

use confab_core::client::{apply, Intent};
use confab_core::ids::{Bucket, ConvId, MessageId, ResourceId};
use confab_core::model::conversation::{ConvKind, Lifecycle, DEFAULT_BUCKET_MS};
use confab_core::model::message as cm;
use js_sys::Promise;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::api::{account_id, conv_id, from_js, message_id, promise, to_js};
use crate::client::{open_conversation, ConfabClient, DEFAULT_OPEN_LIMIT};
use crate::error::{Failure, Result};
use crate::js;
use crate::runtime::Runtime;
use crate::types::{
    CreateConversationInput, CreateThreadInput, DirectOptions, IntentData, IntentResult,
    LeadOutcome, MessageInput, Permission, PresenceState, Profile, RemoveOptions, Role,
    SupportInput,
};

/// `string | MessageInput` from JavaScript.
fn message_input(value: JsValue) -> Result<MessageInput> {
    match value.as_string() {
        Some(body) => Ok(MessageInput {
            body: Some(body),
            ..MessageInput::default()
        }),
        None => from_js(value),
    }
}

#[wasm_bindgen]
impl ConfabClient {
    // ---------- intents ----------

    /// Runs any intent as data (what the convenience methods below build).
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn intent(&self, data: Ts<IntentData>) -> Promise {
        let rt = self.rt.clone();
        let data = data.to_rust();
        promise(async move {
            let intent = Intent::try_from(data?)?;
            let result = IntentResult {
                conv: intent_conv(&rt, &intent).map(|c| c.to_string()),
                ..IntentResult::default()
            };
            run(&rt, vec![intent], result).await
        })
    }

    /// Creates a group; you are its owner.
    #[wasm_bindgen(js_name = createGroup, unchecked_return_type = "Promise<IntentResult>")]
    pub fn create_group(&self, input: Option<Ts<CreateConversationInput>>) -> Promise {
        self.create(ConvKind::Group, input)
    }

    /// Creates a channel (admins post, subscribers read); you are its owner.
    #[wasm_bindgen(js_name = createChannel, unchecked_return_type = "Promise<IntentResult>")]
    pub fn create_channel(&self, input: Option<Ts<CreateConversationInput>>) -> Promise {
        self.create(ConvKind::Channel, input)
    }

    /// Creates a thread on a message of another conversation.
    #[wasm_bindgen(js_name = createThread, unchecked_return_type = "Promise<IntentResult>")]
    pub fn create_thread(&self, input: Ts<CreateThreadInput>) -> Promise {
        let rt = self.rt.clone();
        let input = input.to_rust();
        promise(async move {
            let input = input?;
            let conv = ConvId::new(input.id.unwrap_or_else(|| js::new_id("t")))?;
            let members = input
                .members
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.into_core())
                .collect::<std::result::Result<_, _>>()?;
            let intent = Intent::CreateConversation {
                encrypted: input.encrypted.unwrap_or(false),
                conv: conv.clone(),
                kind: ConvKind::Thread,
                title: input.title,
                members,
                settings: input.settings.map(|s| s.apply(ConvKind::Thread)),
                parent: Some((ConvId::new(input.parent)?, MessageId::new(input.message)?)),
            };
            let result = IntentResult {
                conv: Some(conv.to_string()),
                ..IntentResult::default()
            };
            run(&rt, vec![intent], result).await
        })
    }

    /// Finds or creates the direct conversation with `peer` (its id is deterministic), then
    /// opens it. `{ encrypted: true }`: the pair's end-to-end encrypted one, whose group
    /// this device makes unless another device's is known (it waits for a connection to
    /// claim the pair's key packages).
    #[wasm_bindgen(js_name = openDirect, unchecked_return_type = "Promise<IntentResult>")]
    pub fn open_direct(&self, peer: String, options: Option<Ts<DirectOptions>>) -> Promise {
        let rt = self.rt.clone();
        let options = options.map(|o| o.to_rust()).transpose();
        promise(async move {
            let peer = account_id(&peer)?;
            let encrypted = options?.and_then(|o| o.encrypted).unwrap_or(false);
            let conv = apply::direct_id(rt.tenant(), rt.account(), &peer, encrypted);
            let result = IntentResult {
                conv: Some(conv.to_string()),
                ..IntentResult::default()
            };
            let intent = Intent::OpenDirect { peer, encrypted };
            let out = run(&rt, vec![intent], result).await?;
            open_conversation(&rt, &conv, DEFAULT_OPEN_LIMIT).await?;
            Ok(out)
        })
    }

    /// Finds or creates the support thread of `client` about `resource`, then opens it.
    /// `encrypted: true`: their end-to-end encrypted one, made like `openDirect`'s.
    #[wasm_bindgen(js_name = openSupport, unchecked_return_type = "Promise<IntentResult>")]
    pub fn open_support(&self, input: Ts<SupportInput>) -> Promise {
        let rt = self.rt.clone();
        let input = input.to_rust();
        promise(async move {
            let input = input?;
            let resource = ResourceId::new(input.resource)?;
            let client = account_id(&input.client)?;
            let encrypted = input.encrypted.unwrap_or(false);
            let conv = apply::support_id(rt.tenant(), &client, &resource, encrypted);
            let intent = Intent::OpenSupport {
                resource,
                client,
                owner: account_id(&input.owner)?,
                encrypted,
            };
            let result = IntentResult {
                conv: Some(conv.to_string()),
                ..IntentResult::default()
            };
            let out = run(&rt, vec![intent], result.clone()).await?;
            open_conversation(&rt, &conv, DEFAULT_OPEN_LIMIT).await?;
            // The title and names the platform gives, written where the thread has none yet.
            if input.title.is_some() || input.client_name.is_some() || input.owner_name.is_some() {
                let name = Intent::NameSupport {
                    conv: conv.clone(),
                    title: input.title,
                    client_name: input.client_name,
                    owner_name: input.owner_name,
                };
                run(&rt, vec![name], result).await?;
            }
            Ok(out)
        })
    }

    /// Sends a message: `send(conv, "text")` or `send(conv, { body, kind, replyTo, ... })`.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn send(
        &self,
        conv: String,
        #[wasm_bindgen(unchecked_param_type = "string | MessageInput")] message: JsValue,
    ) -> Promise {
        let rt = self.rt.clone();
        let input = message_input(message);
        promise(async move { send_message(&rt, &conv, input?).await })
    }

    /// Forwards message `message` of `from` into `to`; attachments stored in `from` are
    /// copied to `to` first (docs/ATTACHMENTS.md, "Forwarding").
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn forward(&self, from: String, message: String, to: String) -> Promise {
        let rt = self.rt.clone();
        let rest = self.rest.clone();
        promise(async move {
            let from_conv = conv_id(&from)?;
            let id = message_id(&message)?;
            let (_, original) = find_message(&rt, &from_conv, &id)?;
            // A sealed message is copied as this device opened it; one it could not open
            // has nothing to copy.
            if let Some(why) = rt.read(None, |e| e.cannot_open(&from_conv, &id)) {
                return Err(Failure::new(
                    "undecryptable",
                    format!("message {message} cannot be forwarded: {why}"),
                ));
            }
            // Refused before its attachments are copied: out of an encrypted conversation
            // into one that is not (docs/E2EE.md, "Forwarding").
            let to_conv = conv_id(&to)?;
            rt.read(Ok(()), |e| e.check_forward(&from_conv, &to_conv))?;
            let mut input = MessageInput {
                kind: Some(original.kind.into()),
                body: Some(original.body),
                payload: original.payload.map(serde_json::Value::String),
                caption: original.caption,
                attachments: original
                    .attachments
                    .and_then(|a| serde_json::from_str(&a).ok()),
                forwarded_from: Some(crate::types::ForwardedFrom {
                    conv: from,
                    message,
                }),
                ..MessageInput::default()
            };
            // The blobs it names are the source conversation's: copied to `to` first, so
            // its readers may fetch them.
            if let Some(attachments) = input.attachments.as_mut() {
                let from = from_conv.to_string();
                let to = to_conv.to_string();
                crate::uploads::forward_copies(rest.http(), &from, &to, attachments).await?;
            }
            send_message(&rt, &to, input).await
        })
    }

    /// Edits the body of your message.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn edit(&self, conv: String, message: String, body: String) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let (conv, message, bucket) = locate(&rt, &conv, &message)?;
            let intent = Intent::Edit {
                conv,
                message,
                bucket,
                body,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Deletes a message (a tombstone stays).
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn delete(&self, conv: String, message: String) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let (conv, message, bucket) = locate(&rt, &conv, &message)?;
            let intent = Intent::Delete {
                conv,
                message,
                bucket,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Adds (`on`, default) or removes your reaction `emoji`.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn react(&self, conv: String, message: String, emoji: String, on: Option<bool>) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let (conv, message, bucket) = locate(&rt, &conv, &message)?;
            let intent = Intent::React {
                conv,
                message,
                bucket,
                emoji,
                on: on.unwrap_or(true),
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Pins a message.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn pin(&self, conv: String, message: String) -> Promise {
        self.conv_message(conv, message, |conv, message| Intent::Pin { conv, message })
    }

    /// Unpins a message.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn unpin(&self, conv: String, message: String) -> Promise {
        self.conv_message(conv, message, |conv, message| Intent::Unpin {
            conv,
            message,
        })
    }

    /// Moves your read marker to `message` (default: the newest message).
    #[wasm_bindgen(js_name = markRead, unchecked_return_type = "Promise<IntentResult>")]
    pub fn mark_read(&self, conv: String, message: Option<String>) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let conv = conv_id(&conv)?;
            let message = match message {
                Some(m) => message_id(&m)?,
                None => rt
                    .read(None, |e| e.timeline(&conv).pop())
                    .map(|i| i.message.id)
                    .ok_or_else(|| Failure::new("not_found", "the conversation has no message"))?,
            };
            run(
                &rt,
                vec![Intent::MarkRead { conv, message }],
                IntentResult::default(),
            )
            .await
        })
    }

    /// Moves your delivery marker to `message` (default: the newest message): this device
    /// holds the conversation up to there. Others see it in
    /// `conversation(conv).delivered`.
    #[wasm_bindgen(js_name = markDelivered, unchecked_return_type = "Promise<IntentResult>")]
    pub fn mark_delivered(&self, conv: String, message: Option<String>) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let conv = conv_id(&conv)?;
            let message = match message {
                Some(m) => message_id(&m)?,
                None => rt
                    .read(None, |e| e.timeline(&conv).pop())
                    .map(|i| i.message.id)
                    .ok_or_else(|| Failure::new("not_found", "the conversation has no message"))?,
            };
            run(
                &rt,
                vec![Intent::MarkDelivered { conv, message }],
                IntentResult::default(),
            )
            .await
        })
    }

    /// Closes a support thread with its lead's outcome (`closed_won` or `closed_lost`) and
    /// an optional reason; the owner's side only.
    #[wasm_bindgen(js_name = closeLead, unchecked_return_type = "Promise<IntentResult>")]
    pub fn close_lead(
        &self,
        conv: String,
        outcome: Ts<LeadOutcome>,
        reason: Option<String>,
    ) -> Promise {
        let rt = self.rt.clone();
        let outcome = outcome.to_rust();
        promise(async move {
            let intent = Intent::CloseLead {
                conv: conv_id(&conv)?,
                outcome: outcome?.into(),
                reason,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Names the lead a support thread is about now; messages
    /// written after it carry it.
    #[wasm_bindgen(js_name = setLead, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_lead(&self, conv: String, lead: String) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let intent = Intent::SetLead {
                conv: conv_id(&conv)?,
                lead: confab_core::ids::LeadId::new(lead)?,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Adds a member (role default `member`).
    #[wasm_bindgen(js_name = addMember, unchecked_return_type = "Promise<IntentResult>")]
    pub fn add_member(&self, conv: String, account: String, role: Option<Ts<Role>>) -> Promise {
        let rt = self.rt.clone();
        let role = role.map(|r| r.to_rust());
        promise(async move {
            let role = role
                .transpose()?
                .map_or(confab_core::model::conversation::Role::Member, Into::into);
            let intent = Intent::AddMember {
                conv: conv_id(&conv)?,
                account: account_id(&account)?,
                role,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Removes (or with `{ ban: true }` bans) a member.
    #[wasm_bindgen(js_name = removeMember, unchecked_return_type = "Promise<IntentResult>")]
    pub fn remove_member(
        &self,
        conv: String,
        account: String,
        options: Option<Ts<RemoveOptions>>,
    ) -> Promise {
        let rt = self.rt.clone();
        let options = options.map(|o| o.to_rust());
        promise(async move {
            let options = options.transpose()?.unwrap_or_default();
            let intent = Intent::RemoveMember {
                conv: conv_id(&conv)?,
                account: account_id(&account)?,
                ban: options.ban.unwrap_or(false),
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Changes a member's role, for good, or until `until` (server time, ms since the
    /// epoch: "moderator until Friday"), after which it goes back to the role it had.
    #[wasm_bindgen(js_name = setRole, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_role(
        &self,
        conv: String,
        account: String,
        role: Ts<Role>,
        until: Option<f64>,
    ) -> Promise {
        let rt = self.rt.clone();
        let role = role.to_rust();
        promise(async move {
            let intent = Intent::SetRole {
                conv: conv_id(&conv)?,
                account: account_id(&account)?,
                role: role?.into(),
                until: until.map(|t| t as i64),
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Sets (`allowed` true or false) or clears (`allowed` absent) a member's permission
    /// override, for good, or until `until` (server time, ms), after which the role's
    /// default applies again ("may not post until Friday").
    #[wasm_bindgen(js_name = setOverride, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_override(
        &self,
        conv: String,
        account: String,
        permission: Ts<Permission>,
        allowed: Option<bool>,
        until: Option<f64>,
    ) -> Promise {
        let rt = self.rt.clone();
        let permission = permission.to_rust();
        promise(async move {
            let intent = Intent::SetOverride {
                conv: conv_id(&conv)?,
                account: account_id(&account)?,
                permission: permission?.into(),
                allowed,
                until: until.map(|t| t as i64),
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Leaves a conversation.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn leave(&self, conv: String) -> Promise {
        self.conv_only(conv, |conv| Intent::Leave { conv })
    }

    /// Sets one setting (`sendPolicy` and friends, spelled as the schema spells them:
    /// `send_policy`, `slow_mode_seconds`, ...).
    #[wasm_bindgen(js_name = setSetting, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_setting(
        &self,
        conv: String,
        key: String,
        #[wasm_bindgen(unchecked_param_type = "string | number | boolean")] value: JsValue,
    ) -> Promise {
        let rt = self.rt.clone();
        let value = serde_wasm_bindgen::from_value::<serde_json::Value>(value);
        promise(async move {
            let intent = Intent::SetSetting {
                conv: conv_id(&conv)?,
                key,
                value: value?,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Sets (or with `null` clears) an info field: `title`, `description`, `avatar`,
    /// `theme_color`, `theme_background`.
    #[wasm_bindgen(js_name = setInfo, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_info(&self, conv: String, field: String, value: Option<String>) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let intent = Intent::SetInfo {
                conv: conv_id(&conv)?,
                field,
                value,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Archives a conversation.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn archive(&self, conv: String) -> Promise {
        self.conv_only(conv, |conv| Intent::SetLifecycle {
            conv,
            state: Lifecycle::Archived,
        })
    }

    /// Closes a conversation (only moderators and above post until it is reopened).
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn close(&self, conv: String) -> Promise {
        self.conv_only(conv, |conv| Intent::SetLifecycle {
            conv,
            state: Lifecycle::Closed,
        })
    }

    /// Deletes a conversation (the owner only; final): it takes no more changes and leaves
    /// `conversations()`; its history stays readable.
    #[wasm_bindgen(js_name = deleteConversation, unchecked_return_type = "Promise<IntentResult>")]
    pub fn delete_conversation(&self, conv: String) -> Promise {
        self.conv_only(conv, |conv| Intent::SetLifecycle {
            conv,
            state: Lifecycle::Deleted,
        })
    }

    /// Locks (`true`) or unlocks a conversation (admins): while locked nobody posts, edits,
    /// reacts or answers.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn lock(&self, conv: String, locked: bool) -> Promise {
        self.conv_only(conv, move |conv| Intent::SetSetting {
            conv,
            key: confab_core::doc::schema::keys::LOCKED.into(),
            value: locked.into(),
        })
    }

    /// Blocks (`true`) or unblocks the other member of a direct conversation: while either
    /// blocks, neither posts there.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn block(&self, conv: String, on: bool) -> Promise {
        self.conv_only(conv, move |conv| Intent::Block { conv, on })
    }

    /// Makes `account`, an active member, the owner; you (the owner) become an admin. One
    /// change: refused `owner_only` unless you own it, `target_not_member` /
    /// `target_inactive` for anyone but an active member.
    #[wasm_bindgen(js_name = transferOwnership, unchecked_return_type = "Promise<IntentResult>")]
    pub fn transfer_ownership(&self, conv: String, account: String) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let intent = Intent::TransferOwnership {
                conv: conv_id(&conv)?,
                account: account_id(&account)?,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Hides (`true`) a direct conversation from your `conversations()` (and the server's
    /// list of yours) until a message created after now arrives, or shows it again
    /// (`false`). Only direct conversations (`direct_only`); nobody else learns of it.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn hide(&self, conv: String, on: bool) -> Promise {
        self.conv_only(conv, move |conv| Intent::Hide { conv, on })
    }

    /// Reopens an archived or closed conversation.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn reopen(&self, conv: String) -> Promise {
        self.conv_only(conv, |conv| Intent::SetLifecycle {
            conv,
            state: Lifecycle::Active,
        })
    }

    /// Sets a preference of yours for `conv` in your private document (`muted`, `pinned`,
    /// `archived`, `notifications`, ...).
    #[wasm_bindgen(js_name = setPreference, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_preference(
        &self,
        conv: String,
        key: String,
        #[wasm_bindgen(unchecked_param_type = "string | number | boolean")] value: JsValue,
    ) -> Promise {
        let rt = self.rt.clone();
        let value = serde_wasm_bindgen::from_value::<serde_json::Value>(value);
        promise(async move {
            let intent = Intent::SetConvPref {
                conv: conv_id(&conv)?,
                key,
                value: value?,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Saves (or with `null` clears) your draft for `conv`: in your private document, or,
    /// for an encrypted conversation, on this device only.
    #[wasm_bindgen(js_name = setDraft, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_draft(&self, conv: String, text: Option<String>) -> Promise {
        self.conv_only(conv, move |conv| Intent::SetDraft { conv, text })
    }

    /// Updates your public profile.
    #[wasm_bindgen(js_name = setProfile, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_profile(&self, profile: Ts<Profile>) -> Promise {
        let rt = self.rt.clone();
        let profile = profile.to_rust();
        promise(async move {
            let intent = Intent::SetProfile {
                profile: profile?.into(),
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Tells the other members that you type (`true`) or stopped (`false`). Ephemeral.
    #[wasm_bindgen(js_name = setTyping)]
    pub fn set_typing(&self, conv: &str, typing: bool) -> std::result::Result<(), JsValue> {
        let conv = conv_id(conv)?;
        self.rt.with_engine(|e| e.typing_signal(&conv, typing))?;
        self.rt.pump();
        Ok(())
    }

    /// Tells the members of every followed conversation whether the person is here
    /// (`"online"`) or not looking (`"away"`, e.g. the page lost focus); `"offline"` counts as
    /// `"away"` (the server says offline when the connection goes). Ephemeral, coalesced.
    #[wasm_bindgen(js_name = setPresence)]
    pub fn set_presence(&self, state: Ts<PresenceState>) -> std::result::Result<(), JsValue> {
        let state: PresenceState = state.to_rust().map_err(Failure::from)?;
        let now = js::now_ms();
        self.rt.with_engine(|e| e.set_presence(state.into(), now))?;
        self.rt.pump();
        Ok(())
    }

    /// Forgets a rejected intent once the user has seen it.
    pub fn dismiss(&self, id: f64) -> std::result::Result<(), JsValue> {
        let id = id as u64;
        self.rt.with_engine(|e| e.dismiss(id))?;
        self.rt.pump();
        Ok(())
    }
}

impl ConfabClient {
    fn create(&self, kind: ConvKind, input: Option<Ts<CreateConversationInput>>) -> Promise {
        let rt = self.rt.clone();
        let input = input.map(|i| i.to_rust());
        promise(async move {
            let input = input.transpose()?.unwrap_or_default();
            let prefix = if kind == ConvKind::Channel { "c" } else { "g" };
            let conv = ConvId::new(input.id.unwrap_or_else(|| js::new_id(prefix)))?;
            let members = input
                .members
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.into_core())
                .collect::<std::result::Result<_, _>>()?;
            let intent = Intent::CreateConversation {
                encrypted: input.encrypted.unwrap_or(false),
                conv: conv.clone(),
                kind,
                title: input.title,
                members,
                settings: input.settings.map(|s| s.apply(kind)),
                parent: None,
            };
            let result = IntentResult {
                conv: Some(conv.to_string()),
                ..IntentResult::default()
            };
            run(&rt, vec![intent], result).await
        })
    }

    fn conv_only(&self, conv: String, make: impl FnOnce(ConvId) -> Intent + 'static) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let intent = make(conv_id(&conv)?);
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    fn conv_message(
        &self,
        conv: String,
        message: String,
        make: impl FnOnce(ConvId, MessageId) -> Intent + 'static,
    ) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let intent = make(conv_id(&conv)?, message_id(&message)?);
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }
}

// ---------- helpers ----------

/// The bucket part message `id` was written to, else the one a message created at `at`
/// would go to now.
pub(crate) fn bucket_of(rt: &Runtime, conv: &ConvId, id: &MessageId, at: i64) -> Bucket {
    let fallback = Bucket::first(at.div_euclid(DEFAULT_BUCKET_MS));
    match find_message(rt, conv, id) {
        Ok((bucket, _)) => bucket,
        Err(_) => rt.read(fallback, |e| e.bucket_for(conv, at)),
    }
}

/// The conversation an intent is about (for its result).
fn intent_conv(rt: &Runtime, intent: &Intent) -> Option<ConvId> {
    apply::conv_of(intent, rt.tenant(), rt.account())
}

/// Finds a loaded message: its bucket and content.
fn find_message(rt: &Runtime, conv: &ConvId, message: &MessageId) -> Result<(Bucket, cm::Message)> {
    rt.read(None, |e| e.message(conv, message)).ok_or_else(|| {
        Failure::new(
            "not_found",
            format!("message {message} is not loaded (openConversation / loadOlder first)"),
        )
    })
}

pub(crate) fn locate(
    rt: &Runtime,
    conv: &str,
    message: &str,
) -> Result<(ConvId, MessageId, Bucket)> {
    let conv = conv_id(conv)?;
    let message = message_id(message)?;
    let (bucket, _) = find_message(rt, &conv, &message)?;
    Ok((conv, message, bucket))
}

pub(crate) async fn send_message(rt: &Runtime, conv: &str, input: MessageInput) -> Result<JsValue> {
    rt.ready().await?;
    let conv = conv_id(conv)?;
    let id = input.id.clone().unwrap_or_else(|| js::new_id("m"));
    let message_id = message_id(&id)?;
    let created_at = input.created_at.unwrap_or_else(|| rt.message_time());
    let message = input.into_core(rt.account(), id.clone(), created_at)?;
    let result = IntentResult {
        conv: Some(conv.to_string()),
        message: Some(id),
        ..IntentResult::default()
    };
    let send = Intent::Send {
        conv: conv.clone(),
        message,
    };
    let mut result = run_intents(rt, vec![send], result).await?;
    // Where it was written: known once the intent ran.
    result.bucket = Some(bucket_of(rt, &conv, &message_id, created_at));
    to_js(&result)
}

/// Runs intents in order (stopping at the first refusal); the engine loads what they touch.
pub(crate) async fn run(
    rt: &Runtime,
    intents: Vec<Intent>,
    result: IntentResult,
) -> Result<JsValue> {
    to_js(&run_intents(rt, intents, result).await?)
}

pub(crate) async fn run_intents(
    rt: &Runtime,
    intents: Vec<Intent>,
    mut result: IntentResult,
) -> Result<IntentResult> {
    for intent in intents {
        let id = rt.intent(intent).await?;
        if result.ids.is_empty() {
            result.id = id;
        }
        result.ids.push(id);
    }
    Ok(result)
}
