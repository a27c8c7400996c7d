//! `ConfabClient`: the JavaScript API around the client engine.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use confab_core::automerge::ActorId;
use confab_core::client::{apply, ClientConfig, ClientEngine, Intent, LocalStore, MemoryStore};
use confab_core::ids::{
    direct_conv_id, support_conv_id, AccountId, ConvId, DocId, DocTarget, MessageId, ResourceId,
    TenantId,
};
use confab_core::model::conversation::{ConvKind, Lifecycle, DEFAULT_BUCKET_MS};
use confab_core::model::message::{self as cm, MessageKind};
use js_sys::{Function, Promise};
use tsify::Ts;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::connection;
use crate::error::{Failure, Result};
use crate::js;
use crate::runtime::{self, Inner, StorageChoice};
use crate::store::{AnyStore, IdbStore, JsStore};
use crate::types::{
    ClientEvent, ClientOptions, Conversation, ConversationSummary, CreateConversationInput,
    CreateThreadInput, EventName, IntentData, IntentResult, IntentStatus, Member, MessageInput,
    OutboxItem, Profile, ProposalInput, RemoveOptions, ResponseInput, Role, SupportInput,
    TimelineItem, TimelineOptions,
};

const KEY_ACTOR: &str = "meta/actor";
const KEY_ACCOUNT: &str = "meta/account";
const KEY_DEVICE: &str = "meta/device";
/// Messages `openConversation` makes ready by default.
const DEFAULT_OPEN_LIMIT: usize = 50;

/// A Confab chat client: local-first state in IndexedDB (or memory, or your adapter), synced
/// over a WebSocket when connected. See README.md.
#[wasm_bindgen]
pub struct ConfabClient {
    pub(crate) inner: Rc<Inner>,
}

impl std::fmt::Debug for ConfabClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfabClient")
            .field("inner", &self.inner)
            .finish()
    }
}

/// Runs an async block as a JavaScript promise, turning failures into coded `Error`s.
pub(crate) fn promise<T, F>(future: F) -> Promise
where
    T: Into<JsValue>,
    F: std::future::Future<Output = Result<T>> + 'static,
{
    future_to_promise(async move { future.await.map(Into::into).map_err(JsValue::from) })
}

pub(crate) fn to_js<T: tsify::Tsify + serde::Serialize>(value: &T) -> Result<JsValue> {
    Ok(Ts::from_rust(value)?.into())
}

fn from_js<T: tsify::Tsify + serde::de::DeserializeOwned>(value: JsValue) -> Result<T> {
    Ok(serde_wasm_bindgen::from_value(value)?)
}

pub(crate) fn conv_id(conv: &str) -> Result<ConvId> {
    Ok(ConvId::new(conv)?)
}

fn message_id(message: &str) -> Result<MessageId> {
    Ok(MessageId::new(message)?)
}

pub(crate) fn account_id(account: &str) -> Result<AccountId> {
    Ok(AccountId::new(account)?)
}

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

fn storage_choice(options: &ClientOptions) -> Result<StorageChoice> {
    let storage = &options.storage;
    if storage.is_undefined() || storage.is_null() {
        return Ok(StorageChoice::IndexedDb(default_db_name(options)));
    }
    match storage.as_string().as_deref() {
        Some("indexeddb") => Ok(StorageChoice::IndexedDb(default_db_name(options))),
        Some("memory") => Ok(StorageChoice::Memory),
        Some(other) => Err(Failure::new(
            "invalid_argument",
            format!(
                "storage must be \"indexeddb\", \"memory\" or an adapter object, not {other:?}"
            ),
        )),
        None => Ok(StorageChoice::Adapter(storage.clone())),
    }
}

fn default_db_name(options: &ClientOptions) -> String {
    options
        .db_name
        .clone()
        .unwrap_or_else(|| format!("confab/{}/{}", options.tenant, options.account))
}

#[wasm_bindgen]
impl ConfabClient {
    /// Creates the client and starts loading its store (`await client.ready()` to wait).
    /// Throws (code `invalid_argument` or a model code) on bad options.
    #[wasm_bindgen(constructor)]
    pub fn new(options: Ts<ClientOptions>) -> std::result::Result<ConfabClient, JsValue> {
        let options: ClientOptions = options.to_rust().map_err(Failure::from)?;
        let tenant = TenantId::new(options.tenant.clone()).map_err(Failure::from)?;
        let account = AccountId::new(options.account.clone()).map_err(Failure::from)?;
        let choice = storage_choice(&options)?;
        let reconnect = options.reconnect.unwrap_or_default();
        let inner = Rc::new(Inner {
            tenant,
            account,
            url: options.url.clone(),
            token_provider: options.token_provider.clone(),
            device: RefCell::new(options.device_id.clone().unwrap_or_default()),
            reconnect,
            ping_interval_ms: options.ping_interval_ms.unwrap_or(20_000),
            store: OnceCell::new(),
            engine: RefCell::new(None),
            ready: OnceCell::new(),
            state: RefCell::new(runtime::State::default()),
            conn: RefCell::new(connection::Conn::default()),
            listeners: RefCell::new(runtime::Listeners::default()),
        });
        let ready = {
            let inner = inner.clone();
            promise(async move {
                let result = init(&inner, choice).await;
                if let Err(e) = &result {
                    // A client that cannot start holds nothing open.
                    if let Some(store) = inner.store.get() {
                        store.close();
                    }
                    runtime::emit(
                        &inner,
                        ClientEvent::Error {
                            code: e.code.clone(),
                            message: e.message.clone(),
                        },
                    );
                }
                result.map(|()| JsValue::UNDEFINED)
            })
        };
        // Awaited by every async method; the handler keeps an unawaited failure quiet.
        let quiet = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {});
        let _ = ready.catch(&quiet);
        quiet.forget();
        let _ = inner.ready.set(ready);
        Ok(ConfabClient { inner })
    }

    /// Resolves once the stored state is loaded (history, outbox, cursors); rejects if the
    /// store cannot be opened (`storage`, `store_mismatch`).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn ready(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move { runtime::ready(&inner).await.map(|()| JsValue::UNDEFINED) })
    }

    /// This client's account.
    #[wasm_bindgen(getter)]
    pub fn account(&self) -> String {
        self.inner.account.to_string()
    }

    /// This client's tenant.
    #[wasm_bindgen(getter)]
    pub fn tenant(&self) -> String {
        self.inner.tenant.to_string()
    }

    /// Whether the server has welcomed this client (sync runs).
    #[wasm_bindgen(getter)]
    pub fn online(&self) -> bool {
        self.inner.read(false, ClientEngine::is_online)
    }

    // ---------- connection ----------

    /// Connects, and keeps reconnecting (exponential backoff with jitter) until `disconnect()`.
    /// Resolves when the server welcomes the client; while the server is unreachable the
    /// promise waits (intents keep working offline). Rejects when the token is refused
    /// (`auth_failed`, `token_expired`), the token provider fails (`token_provider`), or
    /// `disconnect()` is called first (`disconnected`).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn connect(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            runtime::ready(&inner).await?;
            runtime::check_open(&inner)?;
            connection::connect(&inner).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Closes the connection, stops reconnecting, and resolves once every local write is
    /// stored.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn disconnect(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            connection::disconnect(&inner);
            runtime::flushed(&inner).await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// `disconnect()`, then releases the store (IndexedDB connection) and every listener.
    /// The client is unusable afterwards.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn dispose(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let _ = runtime::ready(&inner).await;
            connection::disconnect(&inner);
            runtime::flushed(&inner).await;
            connection::stop_listening(&inner);
            runtime::shutdown(&inner);
            if let Some(store) = inner.store.get() {
                store.close();
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Resolves once every local write so far is stored.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn flush(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            runtime::flushed(&inner).await;
            Ok(JsValue::UNDEFINED)
        })
    }

    // ---------- events ----------

    /// Calls `callback` on every event named `event` (`"*"`: every event). Returns a
    /// function that removes the subscription.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn on(
        &self,
        event: Ts<EventName>,
        #[wasm_bindgen(unchecked_param_type = "(event: ClientEvent) => void")] callback: Function,
    ) -> std::result::Result<Function, JsValue> {
        let name: EventName = event.to_rust().map_err(Failure::from)?;
        let id = self.inner.listeners.borrow_mut().add(name, callback);
        let weak = Rc::downgrade(&self.inner);
        let off = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.listeners.borrow_mut().remove_id(name, id);
            }
        });
        Ok(off.into_js_value().unchecked_into())
    }

    /// Removes every subscription of `callback` to `event`.
    pub fn off(
        &self,
        event: Ts<EventName>,
        #[wasm_bindgen(unchecked_param_type = "(event: ClientEvent) => void")] callback: Function,
    ) -> std::result::Result<(), JsValue> {
        let name: EventName = event.to_rust().map_err(Failure::from)?;
        self.inner.listeners.borrow_mut().remove_fn(name, &callback);
        Ok(())
    }

    // ---------- queries ----------

    /// The conversation list: pinned first, then by last activity.
    pub fn conversations(&self) -> Vec<Ts<ConversationSummary>> {
        self.inner
            .read(Vec::new(), |e| e.conversations())
            .into_iter()
            .filter_map(|s| Ts::from_rust(&ConversationSummary::from(s)).ok())
            .collect()
    }

    /// A conversation's info, settings, members, pins, read markers and lifecycle.
    #[wasm_bindgen(unchecked_return_type = "Conversation | undefined")]
    pub fn conversation(&self, conv: &str) -> std::result::Result<JsValue, JsValue> {
        let conv = conv_id(conv)?;
        let view = self
            .inner
            .read(None, |e| e.conversation(&conv))
            .and_then(Conversation::from_core);
        match view {
            Some(view) => Ok(to_js(&view)?),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Messages of the loaded buckets of `conv`, oldest first: server order, then this
    /// device's pending messages. `limit`: only the newest `limit`.
    pub fn timeline(
        &self,
        conv: &str,
        options: Option<Ts<TimelineOptions>>,
    ) -> std::result::Result<Vec<Ts<TimelineItem>>, JsValue> {
        let conv = conv_id(conv)?;
        let options: TimelineOptions = match options {
            Some(o) => o.to_rust().map_err(Failure::from)?,
            None => TimelineOptions::default(),
        };
        let items = self.inner.read(Vec::new(), |e| e.timeline(&conv));
        let skip = options
            .limit
            .map_or(0, |limit| items.len().saturating_sub(limit));
        Ok(items
            .into_iter()
            .skip(skip)
            .filter_map(|i| Ts::from_rust(&TimelineItem::from(i)).ok())
            .collect())
    }

    /// The members of `conv` (every status; filter on `status === "active"`).
    pub fn members(&self, conv: &str) -> std::result::Result<Vec<Ts<Member>>, JsValue> {
        let conv = conv_id(conv)?;
        let conversation = self.inner.read(None, |e| e.conversation(&conv));
        Ok(conversation
            .map(|c| c.members.into_values().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| Ts::from_rust(&Member::from(m)).ok())
            .collect())
    }

    /// Intents not yet accepted, oldest first.
    pub fn outbox(&self) -> Vec<Ts<OutboxItem>> {
        self.inner
            .read(Vec::new(), |e| e.outbox())
            .into_iter()
            .filter_map(|(id, intent, status)| {
                Ts::from_rust(&OutboxItem {
                    id,
                    status: status.into(),
                    intent: intent.into(),
                })
                .ok()
            })
            .collect()
    }

    /// Where intent `id` stands; `undefined` for an id this session does not know (an
    /// intent accepted before the page was loaded is forgotten).
    #[wasm_bindgen(unchecked_return_type = "IntentStatus | undefined")]
    pub fn status(&self, id: f64) -> std::result::Result<JsValue, JsValue> {
        let id = id as u64;
        let status = self
            .inner
            .read(None, |e| e.status(id))
            .map(IntentStatus::from);
        let status = status.or_else(|| {
            self.inner
                .remember_accepted(id)
                .then_some(IntentStatus::Accepted)
        });
        match status {
            Some(s) => Ok(to_js(&s)?),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Accounts typing in `conv` right now.
    pub fn typing(&self, conv: &str) -> std::result::Result<Vec<String>, JsValue> {
        let conv = conv_id(conv)?;
        let now = js::now_ms();
        Ok(self
            .inner
            .read(Vec::new(), |e| e.typing(&conv, now))
            .into_iter()
            .map(String::from)
            .collect())
    }

    /// The direct conversation id of this account and `peer` (the same on every device).
    #[wasm_bindgen(js_name = directConversationId)]
    pub fn direct_conversation_id(&self, peer: &str) -> std::result::Result<String, JsValue> {
        let peer = account_id(peer)?;
        Ok(direct_conv_id(&self.inner.tenant, &self.inner.account, &peer).to_string())
    }

    // ---------- opening ----------

    /// Loads a conversation and its newest stored message buckets until at least `limit`
    /// messages (default 50) are in `timeline(conv)`, and follows it (live when online).
    #[wasm_bindgen(js_name = openConversation, unchecked_return_type = "Promise<void>")]
    pub fn open_conversation(&self, conv: String, options: Option<Ts<TimelineOptions>>) -> Promise {
        let inner = self.inner.clone();
        let options = options.map(|o| o.to_rust());
        promise(async move {
            let options = options.transpose()?.unwrap_or_default();
            runtime::ready(&inner).await?;
            let conv = conv_id(&conv)?;
            let _lock = runtime::op_lock(&inner).await;
            open_conversation(&inner, &conv, options.limit.unwrap_or(DEFAULT_OPEN_LIMIT)).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Loads the next older message bucket of `conv` (from the store, or from the server
    /// when not stored). Resolves `false` once the conversation's start is reached.
    #[wasm_bindgen(js_name = loadOlder, unchecked_return_type = "Promise<boolean>")]
    pub fn load_older(&self, conv: String) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            runtime::ready(&inner).await?;
            let conv = conv_id(&conv)?;
            let _lock = runtime::op_lock(&inner).await;
            Ok(JsValue::from_bool(load_older(&inner, &conv).await?))
        })
    }

    // ---------- intents ----------

    /// Runs any intent as data (what the convenience methods below build).
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn intent(&self, data: Ts<IntentData>) -> Promise {
        let inner = self.inner.clone();
        let data = data.to_rust();
        promise(async move {
            let intent = Intent::try_from(data?)?;
            let result = IntentResult {
                conv: intent_conv(&inner, &intent).map(|c| c.to_string()),
                ..IntentResult::default()
            };
            run(&inner, vec![intent], result).await
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
        let inner = self.inner.clone();
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
            run(&inner, vec![intent], result).await
        })
    }

    /// Finds or creates the direct conversation with `peer` (works offline: its id is
    /// deterministic), then opens it.
    #[wasm_bindgen(js_name = openDirect, unchecked_return_type = "Promise<IntentResult>")]
    pub fn open_direct(&self, peer: String) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let peer = account_id(&peer)?;
            let conv = direct_conv_id(&inner.tenant, &inner.account, &peer);
            let result = IntentResult {
                conv: Some(conv.to_string()),
                ..IntentResult::default()
            };
            let out = run(&inner, vec![Intent::OpenDirect { peer }], result).await?;
            let _lock = runtime::op_lock(&inner).await;
            open_conversation(&inner, &conv, DEFAULT_OPEN_LIMIT).await?;
            Ok(out)
        })
    }

    /// Finds or creates the support thread of `client` about `resource`, then opens it.
    #[wasm_bindgen(js_name = openSupport, unchecked_return_type = "Promise<IntentResult>")]
    pub fn open_support(&self, input: Ts<SupportInput>) -> Promise {
        let inner = self.inner.clone();
        let input = input.to_rust();
        promise(async move {
            let input = input?;
            let resource = ResourceId::new(input.resource)?;
            let client = account_id(&input.client)?;
            let conv = support_conv_id(&inner.tenant, &client, &resource);
            let intent = Intent::OpenSupport {
                resource,
                client,
                owner: account_id(&input.owner)?,
            };
            let result = IntentResult {
                conv: Some(conv.to_string()),
                ..IntentResult::default()
            };
            let out = run(&inner, vec![intent], result).await?;
            let _lock = runtime::op_lock(&inner).await;
            open_conversation(&inner, &conv, DEFAULT_OPEN_LIMIT).await?;
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
        let inner = self.inner.clone();
        let input = message_input(message);
        promise(async move { send_message(&inner, &conv, input?).await })
    }

    /// Sends a message to be shown at `at` (milliseconds since the epoch).
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn schedule(
        &self,
        conv: String,
        #[wasm_bindgen(unchecked_param_type = "string | MessageInput")] message: JsValue,
        at: f64,
    ) -> Promise {
        let inner = self.inner.clone();
        let input = message_input(message);
        promise(async move {
            let mut input = input?;
            input.scheduled_at = Some(at as i64);
            send_message(&inner, &conv, input).await
        })
    }

    /// Forwards message `message` of `from` into `to`.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn forward(&self, from: String, message: String, to: String) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let from_conv = conv_id(&from)?;
            let (_, original) = find_message(&inner, &from_conv, &message_id(&message)?)?;
            let input = MessageInput {
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
            send_message(&inner, &to, input).await
        })
    }

    /// Edits the body of your message.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn edit(&self, conv: String, message: String, body: String) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let (conv, message, bucket) = locate(&inner, &conv, &message)?;
            let intent = Intent::Edit {
                conv,
                message,
                bucket,
                body,
            };
            run(&inner, vec![intent], IntentResult::default()).await
        })
    }

    /// Deletes a message (a tombstone stays).
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn delete(&self, conv: String, message: String) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let (conv, message, bucket) = locate(&inner, &conv, &message)?;
            let intent = Intent::Delete {
                conv,
                message,
                bucket,
            };
            run(&inner, vec![intent], IntentResult::default()).await
        })
    }

    /// Adds (`on`, default) or removes your reaction `emoji`.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn react(&self, conv: String, message: String, emoji: String, on: Option<bool>) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let (conv, message, bucket) = locate(&inner, &conv, &message)?;
            let intent = Intent::React {
                conv,
                message,
                bucket,
                emoji,
                on: on.unwrap_or(true),
            };
            run(&inner, vec![intent], IntentResult::default()).await
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
        let inner = self.inner.clone();
        promise(async move {
            let conv = conv_id(&conv)?;
            let message = match message {
                Some(m) => message_id(&m)?,
                None => inner
                    .read(None, |e| e.timeline(&conv).pop())
                    .map(|i| i.message.id)
                    .ok_or_else(|| Failure::new("not_found", "the conversation has no message"))?,
            };
            run(
                &inner,
                vec![Intent::MarkRead { conv, message }],
                IntentResult::default(),
            )
            .await
        })
    }

    /// Adds a member (role default `member`).
    #[wasm_bindgen(js_name = addMember, unchecked_return_type = "Promise<IntentResult>")]
    pub fn add_member(&self, conv: String, account: String, role: Option<Ts<Role>>) -> Promise {
        let inner = self.inner.clone();
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
            run(&inner, vec![intent], IntentResult::default()).await
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
        let inner = self.inner.clone();
        let options = options.map(|o| o.to_rust());
        promise(async move {
            let options = options.transpose()?.unwrap_or_default();
            let intent = Intent::RemoveMember {
                conv: conv_id(&conv)?,
                account: account_id(&account)?,
                ban: options.ban.unwrap_or(false),
            };
            run(&inner, vec![intent], IntentResult::default()).await
        })
    }

    /// Changes a member's role.
    #[wasm_bindgen(js_name = setRole, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_role(&self, conv: String, account: String, role: Ts<Role>) -> Promise {
        let inner = self.inner.clone();
        let role = role.to_rust();
        promise(async move {
            let intent = Intent::SetRole {
                conv: conv_id(&conv)?,
                account: account_id(&account)?,
                role: role?.into(),
            };
            run(&inner, vec![intent], IntentResult::default()).await
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
        let inner = self.inner.clone();
        let value = serde_wasm_bindgen::from_value::<serde_json::Value>(value);
        promise(async move {
            let intent = Intent::SetSetting {
                conv: conv_id(&conv)?,
                key,
                value: value?,
            };
            run(&inner, vec![intent], IntentResult::default()).await
        })
    }

    /// Sets (or with `null` clears) an info field: `title`, `description`, `avatar`,
    /// `theme_color`, `theme_background`.
    #[wasm_bindgen(js_name = setInfo, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_info(&self, conv: String, field: String, value: Option<String>) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let intent = Intent::SetInfo {
                conv: conv_id(&conv)?,
                field,
                value,
            };
            run(&inner, vec![intent], IntentResult::default()).await
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

    /// Reopens an archived or closed conversation.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn reopen(&self, conv: String) -> Promise {
        self.conv_only(conv, |conv| Intent::SetLifecycle {
            conv,
            state: Lifecycle::Active,
        })
    }

    /// Sends a proposal (seed 002): a `proposal` message carrying the payload.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn propose(
        &self,
        conv: String,
        proposal: Ts<ProposalInput>,
        body: Option<String>,
    ) -> Promise {
        let inner = self.inner.clone();
        let proposal = proposal.to_rust();
        promise(async move {
            let payload = proposal?.to_payload()?;
            let input = MessageInput {
                kind: Some(MessageKind::Proposal.into()),
                body: Some(body.unwrap_or_default()),
                payload: Some(serde_json::Value::String(payload)),
                ..MessageInput::default()
            };
            send_message(&inner, &conv, input).await
        })
    }

    /// Answers a proposal: moves its status and sends a `proposal_response` message.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn respond(&self, conv: String, proposal: String, answer: Ts<ResponseInput>) -> Promise {
        let inner = self.inner.clone();
        let answer = answer.to_rust();
        promise(async move {
            let answer = answer?;
            let payload = answer.to_payload()?;
            let (conv, proposal, bucket) = locate(&inner, &conv, &proposal)?;
            let status =
                confab_core::model::proposal::ProposalResponse::from(answer.response).status();
            let created_at = inner.server_now();
            let id = js::new_id("m");
            let message = MessageInput {
                kind: Some(MessageKind::ProposalResponse.into()),
                body: Some(answer.body.clone().unwrap_or_default()),
                payload: Some(serde_json::Value::String(payload)),
                reply_to: Some(proposal.to_string()),
                ..MessageInput::default()
            }
            .into_core(&inner.account, id.clone(), created_at)?;
            let response_bucket = bucket_of(&inner, &conv, created_at);
            let intents = vec![
                Intent::AnswerProposal {
                    conv: conv.clone(),
                    proposal,
                    bucket,
                    status,
                },
                Intent::Send {
                    conv: conv.clone(),
                    message,
                },
            ];
            let result = IntentResult {
                conv: Some(conv.to_string()),
                message: Some(id),
                bucket: Some(response_bucket),
                ..IntentResult::default()
            };
            run(&inner, intents, result).await
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
        let inner = self.inner.clone();
        let value = serde_wasm_bindgen::from_value::<serde_json::Value>(value);
        promise(async move {
            let intent = Intent::SetConvPref {
                conv: conv_id(&conv)?,
                key,
                value: value?,
            };
            run(&inner, vec![intent], IntentResult::default()).await
        })
    }

    /// Saves (or with `null` clears) your draft for `conv`.
    #[wasm_bindgen(js_name = setDraft, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_draft(&self, conv: String, text: Option<String>) -> Promise {
        self.conv_only(conv, move |conv| Intent::SetDraft { conv, text })
    }

    /// Updates your public profile.
    #[wasm_bindgen(js_name = setProfile, unchecked_return_type = "Promise<IntentResult>")]
    pub fn set_profile(&self, profile: Ts<Profile>) -> Promise {
        let inner = self.inner.clone();
        let profile = profile.to_rust();
        promise(async move {
            let intent = Intent::SetProfile {
                profile: profile?.into(),
            };
            run(&inner, vec![intent], IntentResult::default()).await
        })
    }

    /// Tells the other members that you type (`true`) or stopped (`false`). Ephemeral.
    #[wasm_bindgen(js_name = setTyping)]
    pub fn set_typing(&self, conv: &str, typing: bool) -> std::result::Result<(), JsValue> {
        let conv = conv_id(conv)?;
        self.inner.with_engine(|e| e.typing_signal(&conv, typing))?;
        runtime::pump(&self.inner);
        Ok(())
    }

    /// Forgets a rejected intent once the user has seen it.
    pub fn dismiss(&self, id: f64) -> std::result::Result<(), JsValue> {
        let id = id as u64;
        self.inner.with_engine(|e| e.dismiss(id))?;
        runtime::pump(&self.inner);
        Ok(())
    }
}

impl ConfabClient {
    fn create(&self, kind: ConvKind, input: Option<Ts<CreateConversationInput>>) -> Promise {
        let inner = self.inner.clone();
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
            run(&inner, vec![intent], result).await
        })
    }

    fn conv_only(&self, conv: String, make: impl FnOnce(ConvId) -> Intent + 'static) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let intent = make(conv_id(&conv)?);
            run(&inner, vec![intent], IntentResult::default()).await
        })
    }

    fn conv_message(
        &self,
        conv: String,
        message: String,
        make: impl FnOnce(ConvId, MessageId) -> Intent + 'static,
    ) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            let intent = make(conv_id(&conv)?, message_id(&message)?);
            run(&inner, vec![intent], IntentResult::default()).await
        })
    }
}

// ---------- start-up ----------

async fn init(inner: &Rc<Inner>, choice: StorageChoice) -> Result<()> {
    let store = match choice {
        StorageChoice::Memory => AnyStore::Memory(MemoryStore::new()),
        StorageChoice::IndexedDb(name) => AnyStore::IndexedDb(IdbStore::open(&name).await?),
        StorageChoice::Adapter(adapter) => AnyStore::Adapter(JsStore::new(adapter)?),
    };
    let _ = inner.store.set(store);
    let store = inner.store()?;

    // One store belongs to one account of one tenant.
    let identity = format!("{}/{}", inner.tenant, inner.account);
    match store.get(KEY_ACCOUNT).await? {
        Some(stored) if stored != identity.as_bytes() => {
            return Err(Failure::new(
                "store_mismatch",
                format!(
                    "this store belongs to {}, not {identity}",
                    String::from_utf8_lossy(&stored)
                ),
            ))
        }
        Some(_) => {}
        None => {
            store
                .write(vec![confab_core::client::StoreOp::Put(
                    KEY_ACCOUNT.into(),
                    identity.into_bytes(),
                )])
                .await?
        }
    }
    // This device's actor: chosen once, kept.
    let actor = match store.get(KEY_ACTOR).await? {
        Some(bytes) if bytes.len() == 16 => ActorId::from(&bytes[..]),
        _ => {
            let bytes = js::random_bytes::<16>();
            store
                .write(vec![confab_core::client::StoreOp::Put(
                    KEY_ACTOR.into(),
                    bytes.to_vec(),
                )])
                .await?;
            ActorId::from(&bytes[..])
        }
    };
    if inner.device.borrow().is_empty() {
        let device = match store.get(KEY_DEVICE).await? {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => {
                let device = format!("web-{}", &js::new_id("")[11..19]);
                store
                    .write(vec![confab_core::client::StoreOp::Put(
                        KEY_DEVICE.into(),
                        device.clone().into_bytes(),
                    )])
                    .await?;
                device
            }
        };
        *inner.device.borrow_mut() = device;
    }

    let mut engine = ClientEngine::new(ClientConfig {
        tenant: inner.tenant.clone(),
        account: inner.account.clone(),
        actor,
    });
    let outbox = store.scan("out/").await?;
    if let Err(e) = engine.restore_outbox(&outbox) {
        runtime::emit(
            inner,
            ClientEvent::Error {
                code: e.code().to_owned(),
                message: format!("outbox: {e}"),
            },
        );
    }
    let index = store.scan(runtime::DOCS_PREFIX).await?;
    runtime::index_docs(inner, &index);
    *inner.engine.borrow_mut() = Some(engine);

    // Conversations, profiles, the private document: everything but message buckets.
    let docs = runtime::known_docs(inner);
    for id in docs
        .iter()
        .filter(|d| !matches!(d.target(), DocTarget::Msgs(..)))
    {
        runtime::load_doc_or_report(inner, id).await;
    }
    // Your own private and profile documents are always followed.
    for id in [
        DocId::private(&inner.tenant, &inner.account),
        DocId::profile(&inner.tenant, &inner.account),
    ] {
        runtime::load_doc_or_report(inner, &id).await;
    }
    // The newest stored bucket of each conversation: the list shows previews and unread.
    for id in &docs {
        if let DocTarget::Conv(conv) = id.target() {
            if let Some(newest) = runtime::stored_buckets(inner, conv).last() {
                let bucket = DocId::msgs(&inner.tenant, conv, *newest);
                runtime::load_doc_or_report(inner, &bucket).await;
            }
        }
    }
    // Buckets the outbox writes to: pending messages show in their timelines.
    let pending: Vec<Intent> = inner.read(Vec::new(), |e| {
        e.outbox()
            .into_iter()
            .map(|(_, intent, _)| intent)
            .collect()
    });
    for intent in &pending {
        for target in targets(inner, intent) {
            runtime::load_doc_or_report(inner, &target).await;
        }
    }
    runtime::pump(inner);
    Ok(())
}

// ---------- helpers ----------

fn bucket_ms(inner: &Inner, conv: &ConvId) -> i64 {
    inner
        .read(None, |e| e.conversation(conv))
        .and_then(|c| c.meta.map(|m| m.bucket_ms))
        .unwrap_or(DEFAULT_BUCKET_MS)
}

fn bucket_of(inner: &Inner, conv: &ConvId, at: i64) -> i64 {
    at.div_euclid(bucket_ms(inner, conv).max(1))
}

/// The documents an intent writes (as the engine computes them).
fn targets(inner: &Inner, intent: &Intent) -> Vec<DocId> {
    apply::targets(intent, &inner.tenant, &inner.account, |c| {
        bucket_ms(inner, c)
    })
}

fn intent_conv(inner: &Inner, intent: &Intent) -> Option<ConvId> {
    targets(inner, intent)
        .first()
        .and_then(|d| d.conv_id().cloned())
}

/// Finds a loaded message: its bucket and content.
fn find_message(inner: &Inner, conv: &ConvId, message: &MessageId) -> Result<(i64, cm::Message)> {
    inner
        .read(None, |e| {
            e.timeline(conv)
                .into_iter()
                .find(|i| &i.message.id == message)
        })
        .map(|i| (i.bucket, i.message))
        .ok_or_else(|| {
            Failure::new(
                "not_found",
                format!("message {message} is not loaded (openConversation / loadOlder first)"),
            )
        })
}

fn locate(inner: &Inner, conv: &str, message: &str) -> Result<(ConvId, MessageId, i64)> {
    let conv = conv_id(conv)?;
    let message = message_id(message)?;
    let (bucket, _) = find_message(inner, &conv, &message)?;
    Ok((conv, message, bucket))
}

async fn send_message(inner: &Rc<Inner>, conv: &str, input: MessageInput) -> Result<JsValue> {
    runtime::ready(inner).await?;
    let conv = conv_id(conv)?;
    let id = input.id.clone().unwrap_or_else(|| js::new_id("m"));
    let created_at = input.created_at.unwrap_or_else(|| inner.server_now());
    let message = input.into_core(&inner.account, id.clone(), created_at)?;
    let result = IntentResult {
        conv: Some(conv.to_string()),
        message: Some(id),
        ..IntentResult::default()
    };
    let mut result = run_intents(
        inner,
        vec![Intent::Send {
            conv: conv.clone(),
            message,
        }],
        result,
    )
    .await?;
    // The bucket width is known once the conversation is loaded (by run_intents).
    result.bucket = Some(bucket_of(inner, &conv, created_at));
    to_js(&result)
}

/// Runs intents in order (stopping at the first refusal), after loading what they touch.
pub(crate) async fn run(
    inner: &Rc<Inner>,
    intents: Vec<Intent>,
    result: IntentResult,
) -> Result<JsValue> {
    to_js(&run_intents(inner, intents, result).await?)
}

async fn run_intents(
    inner: &Rc<Inner>,
    intents: Vec<Intent>,
    mut result: IntentResult,
) -> Result<IntentResult> {
    runtime::ready(inner).await?;
    runtime::check_open(inner)?;
    let _lock = runtime::op_lock(inner).await;
    for intent in intents {
        // The conversation first: message buckets depend on its bucket width.
        if let Some(conv) = intent_conv(inner, &intent) {
            runtime::load_doc(inner, &DocId::conv(&inner.tenant, &conv)).await?;
        }
        for target in targets(inner, &intent) {
            runtime::load_doc(inner, &target).await?;
        }
        let now = js::now_ms();
        let outcome = inner.with_engine(|e| e.intent(intent, now))?;
        runtime::pump(inner);
        let id = outcome?;
        if result.ids.is_empty() {
            result.id = id;
        }
        result.ids.push(id);
    }
    Ok(result)
}

/// Loads `conv` and enough of its newest buckets; follows today's bucket.
async fn open_conversation(inner: &Rc<Inner>, conv: &ConvId, limit: usize) -> Result<()> {
    runtime::load_doc(inner, &DocId::conv(&inner.tenant, conv)).await?;
    let current = bucket_of(inner, conv, inner.server_now());
    runtime::load_doc(inner, &DocId::msgs(&inner.tenant, conv, current)).await?;
    for bucket in runtime::stored_buckets(inner, conv).into_iter().rev() {
        if inner.read(0, |e| e.timeline(conv).len()) >= limit {
            break;
        }
        runtime::load_doc(inner, &DocId::msgs(&inner.tenant, conv, bucket)).await?;
    }
    Ok(())
}

/// Loads the next older bucket: a stored one, else (down to the conversation's first
/// bucket) the one before the oldest loaded, from the server.
async fn load_older(inner: &Rc<Inner>, conv: &ConvId) -> Result<bool> {
    let loaded = runtime::loaded_buckets(inner, conv);
    let oldest = loaded.first().copied();
    let stored = runtime::stored_buckets(inner, conv);
    let next_stored = stored
        .iter()
        .rev()
        .copied()
        .find(|b| oldest.is_none_or(|o| *b < o) && !loaded.contains(b));
    if let Some(bucket) = next_stored {
        runtime::load_doc(inner, &DocId::msgs(&inner.tenant, conv, bucket)).await?;
        return Ok(true);
    }
    let first = inner
        .read(None, |e| e.conversation(conv))
        .and_then(|c| c.meta)
        .map(|m| m.created_at.div_euclid(m.bucket_ms.max(1)));
    let candidate = oldest.map_or_else(|| bucket_of(inner, conv, inner.server_now()), |o| o - 1);
    match first {
        Some(first) if candidate >= first => {
            runtime::load_doc(inner, &DocId::msgs(&inner.tenant, conv, candidate)).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}
