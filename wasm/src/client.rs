//! `ConfabClient`: the JavaScript API around the client engine (construction, connection,
//! events, queries, opening conversations). The intent methods are in `intents`, the
//! account's own data in `account`, policy questions in `policy`.

use std::cell::RefCell;
use std::rc::Rc;

use confab_core::client::apply::{direct_id, support_id};
use confab_core::client::{ClientEngine, Outcome, Verification};
use confab_core::ids::{AccountId, ConvId, TenantId};
use js_sys::{Function, Promise};
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::api::{account_id, conv_id, promise, to_js};
use crate::connection::{Connection, Settings};
use crate::error::{Failure, Result};
use crate::http::{http_base, Http};
use crate::js;
use crate::runtime::Runtime;
use crate::startup::{self, StorageChoice};
use crate::timeline::{JsConversations, JsTimelines};
use crate::types::{
    AccountDevice, ClientEvent, ClientOptions, Conversation, ConversationSummary, EventName,
    IntentStatus, KeyChangeNotice, Member, MemberPresence, OutboxItem, TimelineItem,
    TimelineOptions,
};
use crate::uploads::rest::Rest;

/// Messages `openConversation` makes ready by default.
pub(crate) const DEFAULT_OPEN_LIMIT: usize = 50;

/// A Confab chat client: local-first state in IndexedDB (or memory, or your adapter), synced
/// over a WebSocket when connected. See README.md.
#[wasm_bindgen]
pub struct ConfabClient {
    pub(crate) rt: Rc<Runtime>,
    /// `timeline()`'s objects, reused while their item is unchanged.
    timelines: RefCell<JsTimelines>,
    /// `conversation()`'s objects, reused while their document's heads are unchanged.
    conversations: RefCell<JsConversations>,
    /// REST: uploads and the notification feed.
    pub(crate) rest: Rc<Rest>,
}

impl std::fmt::Debug for ConfabClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfabClient")
            .field("rt", &self.rt)
            .finish()
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

/// The REST side: its HTTP base (`httpUrl`, or derived from `url`), and pending uploads
/// kept in IndexedDB next to the store when the store is IndexedDB.
fn rest_side(options: &ClientOptions, choice: &StorageChoice) -> Rc<Rest> {
    let base = options
        .http_url
        .clone()
        .or_else(|| http_base(&options.url))
        .ok_or_else(|| {
            Failure::new(
                "no_http_url",
                "the REST base cannot be derived from `url` (not ws:// or wss://): set httpUrl",
            )
        });
    let http = base.map(|b| Http::new(b, options.token_provider.clone()));
    let db_name = match choice {
        StorageChoice::IndexedDb(name) => Some(name.clone()),
        _ => None,
    };
    Rest::new(http, db_name)
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
        let rest = rest_side(&options, &choice);
        let conn = Connection::new(
            Settings {
                url: options.url.clone(),
                token_provider: options.token_provider.clone(),
                reconnect: options.reconnect.unwrap_or_default(),
                ping_interval_ms: options.ping_interval_ms.unwrap_or(10_000),
                ping_timeout_ms: options.ping_timeout_ms.unwrap_or(2_000),
            },
            options.device_id.clone().unwrap_or_default(),
        );
        let rt = Runtime::new(tenant, account, conn, options.trace.unwrap_or(false));
        rt.set_auto_delivered(options.auto_delivered.unwrap_or(true));
        let ready = {
            let rt = rt.clone();
            promise(async move {
                let result = startup::init(&rt, choice).await;
                if let Err(e) = &result {
                    // A client that cannot start holds nothing open.
                    rt.close_store();
                    rt.emit(ClientEvent::Error {
                        code: e.code.clone(),
                        message: e.message.clone(),
                    });
                }
                result.map(|()| JsValue::UNDEFINED)
            })
        };
        // Awaited by every async method; the handler keeps an unawaited failure quiet.
        let quiet = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {});
        let _ = ready.catch(&quiet);
        quiet.forget();
        rt.set_ready(ready);
        Ok(ConfabClient {
            rt,
            timelines: RefCell::default(),
            conversations: RefCell::default(),
            rest,
        })
    }

    /// Resolves once the stored state is loaded (history, outbox, cursors); rejects if the
    /// store cannot be opened (`storage`, `store_mismatch`).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn ready(&self) -> Promise {
        let rt = self.rt.clone();
        promise(async move { rt.ready().await.map(|()| JsValue::UNDEFINED) })
    }

    /// This client's account.
    #[wasm_bindgen(getter)]
    pub fn account(&self) -> String {
        self.rt.account().to_string()
    }

    /// This client's tenant.
    #[wasm_bindgen(getter)]
    pub fn tenant(&self) -> String {
        self.rt.tenant().to_string()
    }

    /// This device's name (the `deviceId` option, else the one made for this store at its
    /// first start): its MLS identity is `<tenant>/<account>/<device>`.
    #[wasm_bindgen(getter, js_name = deviceId)]
    pub fn device_id(&self) -> String {
        self.rt.connection().device()
    }

    /// How many key packages the server's directory holds for this device, as it last said
    /// (topped up to 20 on every connection; others add this device to encrypted
    /// conversations with them). `undefined` before the first answer.
    #[wasm_bindgen(getter, js_name = keyPackagesHeld)]
    pub fn key_packages_held(&self) -> Option<f64> {
        self.rt
            .read(None, ClientEngine::key_packages_held)
            .map(|n| n as f64)
    }

    /// This account's registered devices as the server's directory last listed them, in
    /// device order: each one's name, when it registered and last connected, whether it is
    /// this device, and how many key packages it holds. Listed again on every connection and
    /// by `refreshDevices()`; the `devices` event tells when a list came. `undefined` before
    /// the first.
    pub fn devices(&self) -> Option<Vec<Ts<AccountDevice>>> {
        let listed = self.rt.read(None, ClientEngine::devices)?;
        Some(
            listed
                .into_iter()
                .filter_map(|d| Ts::from_rust(&AccountDevice::from(d)).ok())
                .collect(),
        )
    }

    /// The devices in an encrypted conversation's group as this device's own MLS state holds
    /// them (never the server's list), each `tenant/account/device`; `undefined` when this
    /// device is not in the group.
    #[wasm_bindgen(js_name = groupDevices)]
    pub fn group_devices(&self, conv: &str) -> std::result::Result<Option<Vec<String>>, JsValue> {
        let conv = conv_id(conv)?;
        Ok(self
            .rt
            .read(None, |e| e.group_devices(&conv))
            .map(|devices| devices.iter().map(ToString::to_string).collect()))
    }

    /// The safety number of this account and `peer` in an encrypted conversation: 60 digits
    /// over both accounts' device signature keys in its group, the same on both people's
    /// devices, which they compare out loud; any device added, removed or re-keyed changes
    /// it. `undefined` when this device or `peer` has no device in the group.
    #[wasm_bindgen(js_name = safetyNumber)]
    pub fn safety_number(
        &self,
        conv: &str,
        peer: &str,
    ) -> std::result::Result<Option<String>, JsValue> {
        let (conv, peer) = (conv_id(conv)?, account_id(peer)?);
        Ok(self.rt.read(None, |e| e.safety_number(&conv, &peer)))
    }

    /// Marks `peer` verified as its devices are now, on this device, after the person
    /// compared a safety number with them out loud; `false` (nothing marked) for this
    /// account or an account with no device in this device's groups.
    #[wasm_bindgen(js_name = markVerified)]
    pub fn mark_verified(&self, peer: &str) -> std::result::Result<bool, JsValue> {
        let peer = account_id(peer)?;
        let marked = self.rt.with_engine(|e| e.mark_verified(&peer))?;
        self.rt.pump();
        Ok(marked)
    }

    /// Takes `peer`'s verified mark away.
    #[wasm_bindgen(js_name = unmarkVerified)]
    pub fn unmark_verified(&self, peer: &str) -> std::result::Result<(), JsValue> {
        let peer = account_id(peer)?;
        self.rt.with_engine(|e| e.unmark_verified(&peer))?;
        self.rt.pump();
        Ok(())
    }

    /// `"unverified"`, `"verified"`, or `"changed"`: marked verified, and a device of `peer`
    /// was added, removed or re-keyed since (compare the safety number again).
    pub fn verification(&self, peer: &str) -> std::result::Result<String, JsValue> {
        let peer = account_id(peer)?;
        let v = self
            .rt
            .read(Verification::Unverified, |e| e.verification(&peer));
        Ok(match v {
            Verification::Unverified => "unverified",
            Verification::Verified => "verified",
            Verification::Changed => "changed",
        }
        .to_owned())
    }

    /// The key-change notices of an encrypted conversation, oldest first: a device added to
    /// or removed from an account that stays in the group, or a key that changed, as this
    /// device derived them from the commits it followed (none from before it joined; the
    /// last 64). Each names the timeline message it stands right before (`before`), the
    /// same on every member's device; without one it stands after every message.
    #[wasm_bindgen(js_name = keyChanges)]
    pub fn key_changes(
        &self,
        conv: &str,
    ) -> std::result::Result<Vec<Ts<KeyChangeNotice>>, JsValue> {
        let conv = conv_id(conv)?;
        Ok(self
            .rt
            .read(Vec::new(), |e| e.key_changes(&conv))
            .into_iter()
            .filter_map(|n| Ts::from_rust(&KeyChangeNotice::from(n)).ok())
            .collect())
    }

    /// Asks the server for this account's devices again (offline: on the next connection).
    #[wasm_bindgen(js_name = refreshDevices)]
    pub fn refresh_devices(&self) -> std::result::Result<(), JsValue> {
        self.rt.with_engine(ClientEngine::refresh_devices)?;
        self.rt.pump();
        Ok(())
    }

    /// Removes another device of this account from the server's directory, then takes it
    /// out of every encrypted conversation this device is in, so it reads nothing sent
    /// after (`device_removed` event with the answer; the `devices` list follows). Throws
    /// when offline, for this device itself, or for a malformed name.
    #[wasm_bindgen(js_name = removeDevice)]
    pub fn remove_device(&self, device: &str) -> std::result::Result<(), JsValue> {
        self.rt
            .with_engine(|e| e.remove_device(device))?
            .map_err(Failure::from)?;
        self.rt.pump();
        Ok(())
    }

    /// Whether the server has welcomed this client (sync runs).
    #[wasm_bindgen(getter)]
    pub fn online(&self) -> bool {
        self.rt.read(false, ClientEngine::is_online)
    }

    /// Where the connection stands: `"online"`, `"connecting"` or `"offline"` (the
    /// `connection` event tells each change, with its reason).
    #[wasm_bindgen(getter, js_name = connectionState, unchecked_return_type = "ConnectionState")]
    pub fn connection_state(&self) -> std::result::Result<JsValue, JsValue> {
        Ok(to_js(&self.rt.connection().state())?)
    }

    // ---------- connection ----------

    /// Connects, and keeps reconnecting (exponential backoff with jitter) until `disconnect()`.
    /// Resolves when the server welcomes the client; while the server is unreachable the
    /// promise waits (intents keep working offline). Rejects when the token is refused
    /// (`auth_failed`, `token_expired`), the token provider fails (`token_provider`), or
    /// `disconnect()` is called first (`disconnected`).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn connect(&self) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            rt.ready().await?;
            rt.check_open()?;
            rt.connect().await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Closes the connection, stops reconnecting, and resolves once every local write is
    /// stored.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn disconnect(&self) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            rt.disconnect();
            rt.flushed().await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// `disconnect()`, then releases the store (IndexedDB connection) and every listener.
    /// The client is unusable afterwards.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn dispose(&self) -> Promise {
        let rt = self.rt.clone();
        let rest = self.rest.clone();
        promise(async move {
            let _ = rt.ready().await;
            rt.disconnect();
            rt.begin_closing();
            rt.flushed().await;
            rt.shutdown();
            rest.close();
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Resolves once every local write so far is stored.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn flush(&self) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            rt.flushed().await;
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
        let id = self.rt.listen(name, callback);
        let weak = Rc::downgrade(&self.rt);
        let off = Closure::<dyn FnMut()>::new(move || {
            if let Some(rt) = weak.upgrade() {
                rt.unlisten_id(name, id);
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
        self.rt.unlisten(name, &callback);
        Ok(())
    }

    // ---------- queries ----------

    /// The conversation list: pinned first, then by last activity.
    pub fn conversations(&self) -> Vec<Ts<ConversationSummary>> {
        self.rt
            .conversations()
            .iter()
            .filter_map(|s| Ts::from_rust(&ConversationSummary::from(s.clone())).ok())
            .collect()
    }

    /// A conversation's info, settings, members, pins, read markers and lifecycle. While its
    /// document did not change it is the same object as before (compare with `===`; treat it
    /// as read-only): a page that asks on every redraw pays for a 1,000-member group once
    /// per change of it, not once per redraw. Members are as of now: a temporary role or
    /// override whose time came shows as lapsed (the object is made again then, and the
    /// `conversation` event says so at that time).
    #[wasm_bindgen(unchecked_return_type = "Conversation | undefined")]
    pub fn conversation(&self, conv: &str) -> std::result::Result<JsValue, JsValue> {
        let conv = conv_id(conv)?;
        let Some(heads) = self.rt.read(None, |e| e.conversation_heads(&conv)) else {
            return Ok(JsValue::UNDEFINED);
        };
        let now = js::now_ms();
        if let Some(kept) = self.conversations.borrow().get(&conv, &heads, now) {
            return Ok(kept);
        }
        // As of now: a temporary role that lapsed shows as the role it lapsed to, and the
        // object is made again when the next one lapses (server time back to device time).
        let Some((conv_now, lapse)) = self.rt.read(None, |e| {
            e.conversation_at(&conv, now)
                .map(|(c, until)| (c, until.map(|t| t - e.server_now(now) + now)))
        }) else {
            return Ok(JsValue::UNDEFINED);
        };
        let value = match Conversation::from_core(conv_now, self.rt.tenant()) {
            Some(view) => to_js(&view)?,
            None => JsValue::UNDEFINED,
        };
        // Nothing is written when a role lapses: the app that shows this hears of it then.
        let timer = lapse.map(|at| {
            let rt = Rc::downgrade(&self.rt);
            let conv = conv.to_string();
            js::Timeout::new((at - now) as f64, move || {
                if let Some(rt) = rt.upgrade() {
                    rt.emit(ClientEvent::Conversation { conv });
                }
            })
        });
        self.conversations
            .borrow_mut()
            .keep(conv, heads, lapse, value.clone(), timer);
        Ok(value)
    }

    /// Messages of the loaded buckets of `conv`, oldest first: server order, then this
    /// device's pending messages. `limit`: only the newest `limit`. An item that did not
    /// change since the previous call is the same object (compare with `===` to redraw only
    /// what changed; treat the objects as read-only).
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
        let items = self.rt.timeline(&conv);
        Ok(self.timelines.borrow_mut().get(&conv, items, options.limit))
    }

    /// The members of `conv` (every status; filter on `status === "active"`).
    pub fn members(&self, conv: &str) -> std::result::Result<Vec<Ts<Member>>, JsValue> {
        let conv = conv_id(conv)?;
        // As of now, as `conversation()`: a lapsed temporary role shows lapsed.
        let now = js::now_ms();
        let conversation = self.rt.read(None, |e| e.conversation_at(&conv, now));
        Ok(conversation
            .map(|(c, _)| c.members.into_values().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| Ts::from_rust(&Member::from(m)).ok())
            .collect())
    }

    /// Intents not yet accepted, oldest first.
    pub fn outbox(&self) -> Vec<Ts<OutboxItem>> {
        self.rt
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
        let status = self.rt.read(None, |e| e.status(id)).map(IntentStatus::from);
        let status = status.or_else(|| {
            self.rt
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
            .rt
            .read(Vec::new(), |e| e.typing(&conv, now))
            .into_iter()
            .map(String::from)
            .collect())
    }

    /// The presence of the members of `conv` this device has heard from (others: unknown,
    /// show them offline). Ephemeral: empty after a reload until members refresh.
    pub fn presence(&self, conv: &str) -> std::result::Result<Vec<Ts<MemberPresence>>, JsValue> {
        let conv = conv_id(conv)?;
        let now = js::now_ms();
        Ok(self
            .rt
            .read(Vec::new(), |e| e.presence(&conv, now))
            .into_iter()
            .filter_map(|p| Ts::from_rust(&MemberPresence::from(p)).ok())
            .collect())
    }

    /// The direct conversation id of this account and `peer` (the same on every device);
    /// `encrypted`: of their end-to-end encrypted one.
    #[wasm_bindgen(js_name = directConversationId)]
    pub fn direct_conversation_id(
        &self,
        peer: &str,
        encrypted: Option<bool>,
    ) -> std::result::Result<String, JsValue> {
        let peer = account_id(peer)?;
        let encrypted = encrypted.unwrap_or(false);
        Ok(direct_id(self.rt.tenant(), self.rt.account(), &peer, encrypted).to_string())
    }

    /// The deterministic id of `client`'s support thread about `resource` (`encrypted`:
    /// the end-to-end encrypted one), the same on every device: what `openSupport` opens.
    #[wasm_bindgen(js_name = supportConversationId)]
    pub fn support_conversation_id(
        &self,
        client: &str,
        resource: &str,
        encrypted: Option<bool>,
    ) -> std::result::Result<String, JsValue> {
        let client = account_id(client)?;
        let resource = confab_core::ids::ResourceId::new(resource).map_err(Failure::from)?;
        let encrypted = encrypted.unwrap_or(false);
        Ok(support_id(self.rt.tenant(), &client, &resource, encrypted).to_string())
    }

    // ---------- opening ----------

    /// Loads a conversation and its newest stored message buckets until at least `limit`
    /// messages (default 50) are in `timeline(conv)`, and follows it (live when online).
    #[wasm_bindgen(js_name = openConversation, unchecked_return_type = "Promise<void>")]
    pub fn open_conversation(&self, conv: String, options: Option<Ts<TimelineOptions>>) -> Promise {
        let rt = self.rt.clone();
        let options = options.map(|o| o.to_rust());
        promise(async move {
            let options = options.transpose()?.unwrap_or_default();
            let conv = conv_id(&conv)?;
            let limit = options.limit.unwrap_or(DEFAULT_OPEN_LIMIT);
            open_conversation(&rt, &conv, limit).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Loads the next older message bucket of `conv` (from the store, or from the server
    /// when not stored). Resolves `false` once the conversation's start is reached.
    #[wasm_bindgen(js_name = loadOlder, unchecked_return_type = "Promise<boolean>")]
    pub fn load_older(&self, conv: String) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let conv = conv_id(&conv)?;
            let outcome = rt.request(|e, now| e.load_older(&conv, now)).await?;
            Ok(JsValue::from_bool(matches!(
                outcome,
                Outcome::Older { more: true }
            )))
        })
    }
}

/// Loads `conv` and enough of its newest buckets; follows today's bucket (the engine
/// decides what to load; this waits for it).
pub(crate) async fn open_conversation(rt: &Runtime, conv: &ConvId, limit: usize) -> Result<()> {
    rt.request(|e, now| e.open_conversation(conv, limit, now))
        .await
        .map(|_| ())
}
