//! The host around the sans-io engine: carries out its outputs in order (store writes in one
//! queue, frames behind the writes before them, events at once), restores documents from the
//! store on demand, and keeps the index of known documents (`docs/<id>`).

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::rc::Rc;

use confab_core::client::{ClientEngine, Event, LocalStore, Output, StoreOp};
use confab_core::ids::{AccountId, ConvId, DocId, DocTarget, TenantId};
use confab_core::protocol::encode_client;
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::connection::Conn;
use crate::error::{Failure, Result};
use crate::js;
use crate::store::AnyStore;
use crate::types::{ClientEvent, EventName, IntentStatus};

/// Index of the documents this client has stored (the engine writes it).
pub use confab_core::client::DOCS_PREFIX;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str, value: &JsValue);
}

/// Where the client keeps its data.
#[derive(Debug)]
pub enum StorageChoice {
    Memory,
    IndexedDb(String),
    Adapter(JsValue),
}

/// One thing to carry out, in order.
#[derive(Debug)]
enum Job {
    Persist(Vec<StoreOp>),
    /// A frame for the connection of this epoch (dropped if that connection is gone).
    Send(u64, Vec<u8>),
}

#[derive(Debug, Default)]
pub struct Listeners {
    next: u32,
    by_name: HashMap<EventName, Vec<(u32, Function)>>,
}

impl Listeners {
    pub fn add(&mut self, name: EventName, f: Function) -> u32 {
        self.next += 1;
        self.by_name.entry(name).or_default().push((self.next, f));
        self.next
    }

    pub fn remove_id(&mut self, name: EventName, id: u32) {
        if let Some(list) = self.by_name.get_mut(&name) {
            list.retain(|(i, _)| *i != id);
        }
    }

    pub fn remove_fn(&mut self, name: EventName, f: &Function) {
        if let Some(list) = self.by_name.get_mut(&name) {
            list.retain(|(_, g)| {
                let g: &JsValue = g.as_ref();
                g != AsRef::<JsValue>::as_ref(f)
            });
        }
    }

    pub fn clear(&mut self) {
        self.by_name.clear();
    }

    fn targets(&self, name: EventName) -> Vec<Function> {
        [name, EventName::All]
            .iter()
            .flat_map(|n| self.by_name.get(n).into_iter().flatten())
            .map(|(_, f)| f.clone())
            .collect()
    }
}

#[derive(Debug, Default)]
pub struct State {
    queue: VecDeque<Job>,
    flushing: bool,
    flush_waiters: Vec<Function>,
    /// Documents with an entry in the store's index.
    known: HashSet<String>,
    /// Stored message buckets per conversation (from the index).
    stored_buckets: BTreeMap<String, BTreeSet<i64>>,
    /// Message buckets loaded into the engine, per conversation.
    loaded_buckets: BTreeMap<String, BTreeSet<i64>>,
    /// Serializes intents and opens (each waits for the one before).
    op_chain: Option<Promise>,
    /// Accepted intents the engine has forgotten (so `status(id)` still answers).
    accepted: HashSet<u64>,
    /// Typing indicators waiting to expire.
    typing_timers: HashMap<String, js::Timeout>,
    /// The engine's next `tick` (its `next_wakeup`, device ms) and the timer that calls it.
    retry_timer: Option<(i64, js::Timeout)>,
    pub closed: bool,
}

/// Everything a client shares between its API object, its socket callbacks and its tasks.
pub struct Inner {
    pub tenant: TenantId,
    pub account: AccountId,
    pub url: String,
    pub token_provider: Function,
    pub device: RefCell<String>,
    pub reconnect: crate::types::ReconnectOptions,
    pub ping_interval_ms: u32,
    pub store: OnceCell<AnyStore>,
    pub engine: RefCell<Option<ClientEngine>>,
    pub ready: OnceCell<Promise>,
    pub state: RefCell<State>,
    pub conn: RefCell<Conn>,
    pub listeners: RefCell<Listeners>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("tenant", &self.tenant)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Fails once `dispose()` was called.
pub fn check_open(inner: &Inner) -> Result<()> {
    if inner.state.borrow().closed {
        return Err(Failure::new("disposed", "the client was disposed"));
    }
    Ok(())
}

pub fn not_ready() -> Failure {
    Failure::new(
        "not_ready",
        "the client is still loading its store (await client.ready())",
    )
}

impl Inner {
    pub fn store(&self) -> Result<&AnyStore> {
        self.store.get().ok_or_else(not_ready)
    }

    /// Runs `f` on the engine (an error before the store is loaded).
    pub fn with_engine<T>(&self, f: impl FnOnce(&mut ClientEngine) -> T) -> Result<T> {
        let mut engine = self.engine.borrow_mut();
        engine.as_mut().map(f).ok_or_else(not_ready)
    }

    /// Reads the engine; `default` before the store is loaded.
    pub fn read<T>(&self, default: T, f: impl FnOnce(&ClientEngine) -> T) -> T {
        self.engine.borrow().as_ref().map_or(default, f)
    }

    pub fn server_now(&self) -> i64 {
        let now = js::now_ms();
        self.read(now, |e| e.server_now(now))
    }

    pub fn remember_accepted(&self, id: u64) -> bool {
        self.state.borrow().accepted.contains(&id)
    }
}

/// Waits until the client has loaded its store.
pub async fn ready(inner: &Inner) -> Result<()> {
    let Some(promise) = inner.ready.get().cloned() else {
        return Err(not_ready());
    };
    JsFuture::from(promise).await.map(|_| ()).map_err(|e| {
        let (code, message) = crate::error::describe_js(&e);
        Failure::new(code.unwrap_or_else(|| "init_failed".into()), message)
    })
}

/// Holds the op lock; releases the next waiter when dropped.
pub struct OpGuard(Option<Function>);

impl Drop for OpGuard {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            let _ = release.call0(&JsValue::NULL);
        }
    }
}

/// Serializes intents and document loads in call order.
pub async fn op_lock(inner: &Inner) -> OpGuard {
    let mut release = None;
    let mine = Promise::new(&mut |resolve, _| release = Some(resolve));
    let before = inner.state.borrow_mut().op_chain.replace(mine);
    if let Some(before) = before {
        let _ = JsFuture::from(before).await;
    }
    OpGuard(release)
}

// ---------- outputs ----------

/// Carries out everything the engine asked for: store writes and frames queued in order
/// (a frame waits for the writes before it), events at once.
pub fn pump(inner: &Rc<Inner>) {
    let outputs = match inner.engine.borrow_mut().as_mut() {
        Some(engine) => engine.drain(),
        None => return,
    };
    schedule_tick(inner);
    if outputs.is_empty() {
        return;
    }
    let epoch = inner.conn.borrow().epoch;
    let mut events = Vec::new();
    for output in outputs {
        match output {
            Output::Send(frame) => enqueue(inner, Job::Send(epoch, encode_client(&frame))),
            Output::Persist(ops) => {
                for op in &ops {
                    if let StoreOp::Put(key, _) = op {
                        if let Some(doc) = key.strip_prefix(DOCS_PREFIX) {
                            note_doc(inner, doc);
                        }
                    }
                }
                enqueue(inner, Job::Persist(ops));
            }
            Output::Event(event) => {
                if let Event::Doc { doc } = &event {
                    note_doc(inner, doc);
                }
                events.push(event);
            }
        }
    }
    start_flush(inner);
    dispatch_engine_events(inner, events);
}

/// Keeps one timer at the engine's `next_wakeup`: it calls `tick` (resends what a transient
/// server error or a missing answer left waiting) and pumps what that produced.
fn schedule_tick(inner: &Rc<Inner>) {
    let wakeup = inner.read(None, |e| e.next_wakeup());
    let mut state = inner.state.borrow_mut();
    if state.closed {
        state.retry_timer = None;
        return;
    }
    if state.retry_timer.as_ref().map(|(at, _)| *at) == wakeup {
        return;
    }
    state.retry_timer = wakeup.map(|at| {
        let weak = Rc::downgrade(inner);
        let delay = (at - js::now_ms()).max(0) as f64;
        let timer = js::Timeout::new(delay, move || {
            let Some(inner) = weak.upgrade() else {
                return;
            };
            // This timer's closure is running: drop it on a later turn.
            let fired = inner.state.borrow_mut().retry_timer.take();
            js::drop_later(fired);
            let _ = inner.with_engine(|e| e.tick(js::now_ms()));
            pump(&inner);
        });
        (at, timer)
    });
}

fn enqueue(inner: &Inner, job: Job) {
    inner.state.borrow_mut().queue.push_back(job);
}

/// Records that `doc` is loaded and stored (the engine writes its `docs/` index entry).
pub fn note_doc(inner: &Inner, doc: &str) {
    let Ok(id) = DocId::parse(doc) else {
        return;
    };
    let mut state = inner.state.borrow_mut();
    if let DocTarget::Msgs(conv, bucket) = id.target() {
        state
            .loaded_buckets
            .entry(conv.to_string())
            .or_default()
            .insert(*bucket);
    }
    if state.known.insert(doc.to_owned()) {
        if let DocTarget::Msgs(conv, bucket) = id.target() {
            state
                .stored_buckets
                .entry(conv.to_string())
                .or_default()
                .insert(*bucket);
        }
    }
}

fn start_flush(inner: &Rc<Inner>) {
    {
        let mut state = inner.state.borrow_mut();
        if state.flushing || state.queue.is_empty() {
            return;
        }
        state.flushing = true;
    }
    let inner = inner.clone();
    wasm_bindgen_futures::spawn_local(async move { flush(inner).await });
}

async fn flush(inner: Rc<Inner>) {
    loop {
        let job = {
            let mut state = inner.state.borrow_mut();
            match state.queue.pop_front() {
                // Consecutive writes become one batch (one transaction).
                Some(Job::Persist(mut ops)) => {
                    while let Some(Job::Persist(_)) = state.queue.front() {
                        if let Some(Job::Persist(more)) = state.queue.pop_front() {
                            ops.extend(more);
                        }
                    }
                    Some(Job::Persist(ops))
                }
                other => other,
            }
        };
        match job {
            None => break,
            Some(Job::Persist(ops)) => {
                let Some(store) = inner.store.get() else {
                    continue;
                };
                if let Err(e) = store.write(ops).await {
                    emit(
                        &inner,
                        ClientEvent::Error {
                            code: "storage".into(),
                            message: e.0,
                        },
                    );
                }
            }
            Some(Job::Send(epoch, bytes)) => crate::connection::send_bytes(&inner, epoch, &bytes),
        }
    }
    let waiters = {
        let mut state = inner.state.borrow_mut();
        state.flushing = false;
        std::mem::take(&mut state.flush_waiters)
    };
    for resolve in waiters {
        let _ = resolve.call0(&JsValue::NULL);
    }
}

/// Resolves when every queued store write is done.
pub async fn flushed(inner: &Inner) {
    let promise = {
        let mut state = inner.state.borrow_mut();
        if !state.flushing && state.queue.is_empty() {
            return;
        }
        let mut resolve_fn = None;
        let promise = Promise::new(&mut |resolve, _| resolve_fn = Some(resolve));
        if let Some(resolve) = resolve_fn {
            state.flush_waiters.push(resolve);
        }
        promise
    };
    let _ = JsFuture::from(promise).await;
}

// ---------- events ----------

fn dispatch_engine_events(inner: &Rc<Inner>, events: Vec<Event>) {
    let mut out: Vec<ClientEvent> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut list_changed = false;
    let mut push_once = |out: &mut Vec<ClientEvent>, event: ClientEvent, key: String| {
        if seen.insert(key) {
            out.push(event);
        }
    };
    for event in events {
        match event {
            Event::Intent { id, status } => {
                if status == confab_core::client::IntentStatus::Accepted {
                    inner.state.borrow_mut().accepted.insert(id);
                }
                out.push(ClientEvent::Intent {
                    id,
                    status: IntentStatus::from(status),
                });
            }
            Event::Doc { doc } => {
                let Ok(id) = DocId::parse(&doc) else {
                    continue;
                };
                push_once(&mut out, ClientEvent::Doc { doc: doc.clone() }, doc.clone());
                match id.target() {
                    DocTarget::Conv(conv) => {
                        list_changed = true;
                        push_once(
                            &mut out,
                            ClientEvent::Conversation {
                                conv: conv.to_string(),
                            },
                            format!("conv {conv}"),
                        );
                    }
                    DocTarget::Msgs(conv, _) => {
                        list_changed = true;
                        push_once(
                            &mut out,
                            ClientEvent::Timeline {
                                conv: conv.to_string(),
                            },
                            format!("timeline {conv}"),
                        );
                    }
                    DocTarget::Profile(account) => push_once(
                        &mut out,
                        ClientEvent::Profile {
                            account: account.to_string(),
                        },
                        format!("profile {account}"),
                    ),
                    DocTarget::Private(_) => list_changed = true,
                }
            }
            Event::Typing { conv } => {
                if let Ok(c) = ConvId::new(conv.clone()) {
                    out.push(typing_event(inner, &c));
                    schedule_typing_expiry(inner, c);
                }
            }
            Event::Revoked { doc, reason } => {
                let conv = DocId::parse(&doc)
                    .ok()
                    .and_then(|d| d.conv_id().map(|c| c.to_string()));
                out.push(ClientEvent::Revoked { doc, conv, reason });
            }
            Event::Online { online: true } => out.push(ClientEvent::Online),
            Event::Online { online: false } => out.push(ClientEvent::Offline {
                will_retry: inner.conn.borrow().wanted,
            }),
        }
    }
    if list_changed {
        out.push(ClientEvent::Conversations);
    }
    for event in out {
        emit(inner, event);
    }
}

fn typing_event(inner: &Inner, conv: &ConvId) -> ClientEvent {
    let now = js::now_ms();
    let accounts = inner.read(Vec::new(), |e| {
        e.typing(conv, now).into_iter().map(String::from).collect()
    });
    ClientEvent::Typing {
        conv: conv.to_string(),
        accounts,
    }
}

/// The engine forgets a typing signal after 6 s without telling: tell the UI then.
fn schedule_typing_expiry(inner: &Rc<Inner>, conv: ConvId) {
    let weak = Rc::downgrade(inner);
    let key = conv.to_string();
    let timer = js::Timeout::new(6_100.0, move || {
        if let Some(inner) = weak.upgrade() {
            inner.state.borrow_mut().typing_timers.remove(conv.as_str());
            let event = typing_event(&inner, &conv);
            emit(&inner, event);
        }
    });
    inner.state.borrow_mut().typing_timers.insert(key, timer);
}

/// Calls every listener of the event (and of `"*"`). A listener that throws is logged.
pub fn emit(inner: &Inner, event: ClientEvent) {
    let targets = inner.listeners.borrow().targets(event.name());
    if targets.is_empty() {
        return;
    }
    let value = match tsify::Ts::from_rust(&event) {
        Ok(ts) => JsValue::from(ts),
        Err(_) => return,
    };
    for f in targets {
        if let Err(e) = f.call1(&JsValue::NULL, &value) {
            console_error("confab: an event listener threw", &e);
        }
    }
}

// ---------- documents ----------

/// Reads the store's index (`docs/`) into the state.
pub fn index_docs(inner: &Inner, entries: &[(String, Vec<u8>)]) {
    let mut state = inner.state.borrow_mut();
    for (key, _) in entries {
        let Some(doc) = key.strip_prefix(DOCS_PREFIX) else {
            continue;
        };
        if let Ok(id) = DocId::parse(doc) {
            if let DocTarget::Msgs(conv, bucket) = id.target() {
                state
                    .stored_buckets
                    .entry(conv.to_string())
                    .or_default()
                    .insert(*bucket);
            }
            state.known.insert(doc.to_owned());
        }
    }
}

/// Every indexed document, typed.
pub fn known_docs(inner: &Inner) -> Vec<DocId> {
    let mut docs: Vec<DocId> = inner
        .state
        .borrow()
        .known
        .iter()
        .filter_map(|d| DocId::parse(d).ok())
        .collect();
    docs.sort();
    docs
}

/// Makes sure `id` is in the engine: restored from the store when stored there, otherwise
/// opened fresh (subscribed from 0 when online). Returns whether it was loaded now.
pub async fn load_doc(inner: &Rc<Inner>, id: &DocId) -> Result<bool> {
    if inner.read(true, |e| e.is_loaded(id)) {
        return Ok(false);
    }
    let text = id.to_string();
    if !inner.state.borrow().known.contains(&text) {
        inner.with_engine(|e| e.open(id))??;
        pump(inner);
        return Ok(true);
    }
    let store = inner.store()?;
    let snapshot = store.get(&format!("snap/{id}")).await?;
    let changes = store.scan(&format!("chg/{id}/")).await?;
    if inner.read(true, |e| e.is_loaded(id)) {
        return Ok(false);
    }
    // Subscribes from the stored cursor when online.
    inner.with_engine(|e| e.restore_doc(id, snapshot.as_deref(), &changes))??;
    note_doc(inner, &text);
    pump(inner);
    Ok(true)
}

/// `load_doc`, reporting a failure as an `error` event instead (start-up keeps going).
pub async fn load_doc_or_report(inner: &Rc<Inner>, id: &DocId) {
    if let Err(e) = load_doc(inner, id).await {
        emit(
            inner,
            ClientEvent::Error {
                code: e.code,
                message: format!("{id}: {}", e.message),
            },
        );
    }
}

pub fn stored_buckets(inner: &Inner, conv: &ConvId) -> Vec<i64> {
    inner
        .state
        .borrow()
        .stored_buckets
        .get(conv.as_str())
        .map(|b| b.iter().copied().collect())
        .unwrap_or_default()
}

pub fn loaded_buckets(inner: &Inner, conv: &ConvId) -> Vec<i64> {
    inner
        .state
        .borrow()
        .loaded_buckets
        .get(conv.as_str())
        .map(|b| b.iter().copied().collect())
        .unwrap_or_default()
}

/// Cancels timers and forgets listeners (the client is closing).
pub fn shutdown(inner: &Inner) {
    let mut state = inner.state.borrow_mut();
    state.closed = true;
    state.typing_timers.clear();
    state.retry_timer = None;
    drop(state);
    inner.listeners.borrow_mut().clear();
}
