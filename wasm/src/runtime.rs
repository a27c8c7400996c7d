//! The host around the sans-io engine. It carries out the engine's outputs in order (store
//! writes and loads in one queue, a frame behind the writes before it, events at once) and
//! lets API calls wait for what they started: a held intent, a paging request, the start-up
//! restore. It decides nothing about documents or keys: the engine does.
//!
//! Its state is private; the API (`client`, `account`, `policy`) uses its methods, and the
//! connection below it reports through `connection::Host`. `carry` carries out the queue.

use std::cell::{OnceCell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::{Rc, Weak};

use confab_core::client::{
    ClientEngine, ConversationSummary, Event, Intent, IntentStatus, Outcome, Output, RequestId,
    TimelineItem,
};
use confab_core::ids::{AccountId, ConvId, TenantId};
use confab_core::protocol::{encode_client, ClientFrame, ServerFrame};
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::connection::{self, Connection, Host};
use crate::error::{Failure, Result};
use crate::events::{self, Listeners};
use crate::js;
use crate::queue::Job;
use crate::store::AnyStore;
use crate::types::{ClientEvent, EventName, TraceStage};

mod carry;

/// What an API call waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Wait {
    /// A held intent's first status: it ran (or was refused).
    Intent(u64),
    Request(RequestId),
}

#[derive(Debug)]
enum Answer {
    Intent(IntentStatus),
    Done(Outcome),
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Job>,
    flushing: bool,
    /// A load's reads are under way: no write may begin before they are done.
    loading: bool,
    /// Failed store writes in a row; while any, the queue waits out a backoff before writing
    /// them again and nothing behind them begins or leaves (`queue::requeue_failed`).
    write_failures: u32,
    /// `dispose` waits for the queue: a write that fails now is given up, not retried.
    closing: bool,
    flush_waiters: Vec<Function>,
    /// Calls waiting, with the function that resumes each, and the answers they get.
    waiters: HashMap<Wait, Function>,
    answers: HashMap<Wait, Answer>,
    /// Accepted intents the engine has forgotten (so `status(id)` still answers).
    accepted: HashSet<u64>,
    /// Typing indicators waiting to expire.
    typing_timers: HashMap<String, js::Timeout>,
    /// The engine's next `tick` (its `next_wakeup`, device ms) and the timer that calls it.
    retry_timer: Option<(i64, js::Timeout)>,
    closed: bool,
}

/// One client's engine, store, connection and listeners.
pub struct Runtime {
    me: Weak<Runtime>,
    tenant: TenantId,
    account: AccountId,
    store: OnceCell<AnyStore>,
    engine: RefCell<Option<ClientEngine>>,
    ready: OnceCell<Promise>,
    state: RefCell<State>,
    conn: Rc<Connection>,
    listeners: RefCell<Listeners>,
    /// Emit `trace` events.
    trace: bool,
    /// The engine marks arrived messages of others delivered by itself (option
    /// `autoDelivered`, default on).
    auto_delivered: std::cell::Cell<bool>,
    /// The time the last message sent from here was stamped with ([`Runtime::message_time`]).
    last_message_time: std::cell::Cell<i64>,
    /// Views computed since the engine last changed (a redraw asks for the same timeline
    /// and list several times; each costs a read of every loaded message).
    views: RefCell<Views>,
}

/// The engine's views, valid until its next change.
#[derive(Debug, Default)]
struct Views {
    timelines: HashMap<ConvId, Rc<Vec<TimelineItem>>>,
    /// The list, and the server time its first `muted_until` passes (it is computed
    /// again then, though the engine did not change).
    conversations: Option<(Rc<Vec<ConversationSummary>>, Option<i64>)>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("tenant", &self.tenant)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

fn not_ready() -> Failure {
    Failure::new(
        "not_ready",
        "the client is still loading its store (await client.ready())",
    )
}

fn disposed() -> Failure {
    Failure::new("disposed", "the client was disposed")
}

impl Runtime {
    pub fn new(
        tenant: TenantId,
        account: AccountId,
        conn: Rc<Connection>,
        trace: bool,
    ) -> Rc<Runtime> {
        let runtime = Rc::new_cyclic(|me| Runtime {
            me: me.clone(),
            tenant,
            account,
            store: OnceCell::new(),
            engine: RefCell::new(None),
            ready: OnceCell::new(),
            state: RefCell::new(State::default()),
            conn,
            listeners: RefCell::new(Listeners::default()),
            trace,
            auto_delivered: std::cell::Cell::new(true),
            last_message_time: std::cell::Cell::new(i64::MIN),
            views: RefCell::default(),
        });
        let host: Weak<dyn Host> = runtime.me.clone();
        runtime.conn.set_host(host);
        runtime
    }

    /// Before the engine starts (the constructor's option).
    pub fn set_auto_delivered(&self, on: bool) {
        self.auto_delivered.set(on);
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn account(&self) -> &AccountId {
        &self.account
    }

    pub fn connection(&self) -> &Rc<Connection> {
        &self.conn
    }

    // ---------- start-up ----------

    /// The start-up task every call waits for (set once, by the constructor).
    pub fn set_ready(&self, ready: Promise) {
        let _ = self.ready.set(ready);
    }

    /// Waits until the client has loaded its store.
    pub async fn ready(&self) -> Result<()> {
        let Some(promise) = self.ready.get().cloned() else {
            return Err(not_ready());
        };
        JsFuture::from(promise).await.map(|_| ()).map_err(|e| {
            let (code, message) = crate::error::describe_js(&e);
            Failure::new(code.unwrap_or_else(|| "init_failed".into()), message)
        })
    }

    pub fn install_store(&self, store: AnyStore) -> Result<&AnyStore> {
        let _ = self.store.set(store);
        self.store()
    }

    pub fn store(&self) -> Result<&AnyStore> {
        self.store.get().ok_or_else(not_ready)
    }

    /// Starts the engine (`ClientEngine::restoring`) and waits for its start-up restore.
    pub async fn start_engine(&self, mut engine: ClientEngine) -> Result<()> {
        engine.set_auto_delivered(self.auto_delivered.get());
        *self.engine.borrow_mut() = Some(engine);
        let promise = self.register(Wait::Request(RequestId::RESTORE));
        self.pump();
        self.outcome(promise, Wait::Request(RequestId::RESTORE))
            .await
            .map(|_| ())
    }

    /// Fails once `dispose()` was called.
    pub fn check_open(&self) -> Result<()> {
        if self.state.borrow().closed {
            return Err(disposed());
        }
        Ok(())
    }

    // ---------- the engine ----------

    /// Runs `f` on the engine (an error before the store is loaded).
    pub fn with_engine<T>(&self, f: impl FnOnce(&mut ClientEngine) -> T) -> Result<T> {
        // Every change of the engine goes through here: computed views are stale after it.
        *self.views.borrow_mut() = Views::default();
        let mut engine = self.engine.borrow_mut();
        engine.as_mut().map(f).ok_or_else(not_ready)
    }

    /// Reads the engine; `default` before the store is loaded.
    pub fn read<T>(&self, default: T, f: impl FnOnce(&ClientEngine) -> T) -> T {
        self.engine.borrow().as_ref().map_or(default, f)
    }

    /// `conv`'s timeline, computed once per change of the engine.
    pub fn timeline(&self, conv: &ConvId) -> Rc<Vec<TimelineItem>> {
        if let Some(items) = self.views.borrow().timelines.get(conv) {
            return items.clone();
        }
        let items = Rc::new(self.read(Vec::new(), |e| e.timeline(conv)));
        if self.engine.borrow().is_some() {
            let mut views = self.views.borrow_mut();
            views.timelines.insert(conv.clone(), items.clone());
        }
        items
    }

    /// The conversation list, computed once per change of the engine, and again when a
    /// mute in it ends (`muted` depends on the time).
    pub fn conversations(&self) -> Rc<Vec<ConversationSummary>> {
        let device_now = js::now_ms();
        let now = self.read(device_now, |e| e.server_now(device_now));
        if let Some((list, expires)) = &self.views.borrow().conversations {
            if expires.is_none_or(|at| now < at) {
                return list.clone();
            }
        }
        let list = Rc::new(self.read(Vec::new(), |e| e.conversations(device_now)));
        let expires = list
            .iter()
            .filter_map(|s| s.muted_until.filter(|until| *until > now))
            .min();
        if self.engine.borrow().is_some() {
            self.views.borrow_mut().conversations = Some((list.clone(), expires));
        }
        list
    }

    pub fn server_now(&self) -> i64 {
        let now = js::now_ms();
        self.read(now, |e| e.server_now(now))
    }

    /// Server time for a new message, later than the last one sent from here: messages
    /// sent within one millisecond keep their order in the timeline, which sorts pending
    /// messages by time.
    pub fn message_time(&self) -> i64 {
        let at = self
            .server_now()
            .max(self.last_message_time.get().saturating_add(1));
        self.last_message_time.set(at);
        at
    }

    pub fn remember_accepted(&self, id: u64) -> bool {
        self.state.borrow().accepted.contains(&id)
    }

    /// Runs an intent: at once, or once the documents it touches are loaded. A refusal of
    /// the policy is an error either way (a refused held intent leaves the outbox again).
    pub async fn intent(&self, intent: Intent) -> Result<u64> {
        self.ready().await?;
        self.check_open()?;
        let now = js::now_ms();
        let started = self.trace_start();
        let id = self.with_engine(|e| e.intent(intent, now))??;
        let held = self.read(false, |e| e.is_held(id));
        let promise = held.then(|| self.register(Wait::Intent(id)));
        self.pump();
        self.trace_end(TraceStage::Intent, started, None);
        let Some(promise) = promise else {
            return Ok(id);
        };
        match self.wait(promise, Wait::Intent(id)).await {
            Some(Answer::Intent(IntentStatus::Rejected { code, reason, .. })) => {
                self.with_engine(|e| e.dismiss(id))?;
                self.pump();
                Err(Failure::new(code, reason))
            }
            Some(_) => Ok(id),
            None => Err(disposed()),
        }
    }

    /// Starts a request on the engine and waits for its outcome (a failure is an error).
    pub async fn request(
        &self,
        start: impl FnOnce(&mut ClientEngine, i64) -> RequestId,
    ) -> Result<Outcome> {
        self.try_request(|e, now| Ok(start(e, now))).await
    }

    /// `request` for a start the engine may refuse (a refusal is the error).
    pub async fn try_request(
        &self,
        start: impl FnOnce(&mut ClientEngine, i64) -> Result<RequestId>,
    ) -> Result<Outcome> {
        self.ready().await?;
        self.check_open()?;
        let now = js::now_ms();
        let request = self.with_engine(|e| start(e, now))??;
        let promise = self.register(Wait::Request(request));
        self.pump();
        self.outcome(promise, Wait::Request(request)).await
    }

    async fn outcome(&self, promise: Promise, wait: Wait) -> Result<Outcome> {
        match self.wait(promise, wait).await {
            Some(Answer::Done(Outcome::Failed { code, message })) => {
                Err(Failure::new(code, message))
            }
            Some(Answer::Done(outcome)) => Ok(outcome),
            Some(Answer::Intent(_)) | None => Err(disposed()),
        }
    }

    /// A promise resolved when `wait` is answered (register before pumping the call's
    /// outputs: the answer can come with them).
    fn register(&self, wait: Wait) -> Promise {
        let mut resolve = None;
        let promise = Promise::new(&mut |r, _| resolve = Some(r));
        if let Some(resolve) = resolve {
            self.state.borrow_mut().waiters.insert(wait, resolve);
        }
        promise
    }

    async fn wait(&self, promise: Promise, wait: Wait) -> Option<Answer> {
        let _ = JsFuture::from(promise).await;
        self.state.borrow_mut().answers.remove(&wait)
    }

    fn answer(&self, wait: Wait, answer: Answer) -> bool {
        let mut state = self.state.borrow_mut();
        let Some(resolve) = state.waiters.remove(&wait) else {
            return false;
        };
        state.answers.insert(wait, answer);
        drop(state);
        let _ = resolve.call0(&JsValue::NULL);
        true
    }

    // ---------- outputs ----------

    /// Carries out everything the engine asked for: store writes, loads and frames queued in
    /// order (a frame waits for the writes before it), events at once.
    pub fn pump(&self) {
        let outputs = match self.engine.borrow_mut().as_mut() {
            Some(engine) => engine.drain(),
            None => return,
        };
        self.schedule_tick();
        if outputs.is_empty() {
            return;
        }
        let epoch = self.conn.epoch();
        let mut events = Vec::new();
        {
            let mut state = self.state.borrow_mut();
            for output in outputs {
                match output {
                    Output::Send(frame) => {
                        let expects_answer = matches!(
                            frame,
                            ClientFrame::Submit { .. } | ClientFrame::Subscribe { .. }
                        );
                        let bytes = encode_client(&frame);
                        let queued = if self.trace { js::perf_now() } else { 0.0 };
                        let frame = (epoch, bytes, expects_answer, queued);
                        state.queue.push_back(Job::Send(frame));
                    }
                    Output::Persist(ops) => state.queue.push_back(Job::Persist(ops)),
                    Output::Load(load) => state.queue.push_back(Job::Load(load)),
                    Output::Event(event) => events.push(event),
                }
            }
        }
        self.begin_writes();
        self.start_flush();
        self.dispatch(events);
    }

    /// Keeps one timer at the engine's `next_wakeup`: it calls `tick` (resends what a
    /// transient server error or a missing answer left waiting) and pumps what that produced.
    fn schedule_tick(&self) {
        let wakeup = self.read(None, |e| match (e.next_wakeup(), e.presence_wakeup()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        });
        let mut state = self.state.borrow_mut();
        if state.closed {
            state.retry_timer = None;
            return;
        }
        if state.retry_timer.as_ref().map(|(at, _)| *at) == wakeup {
            return;
        }
        state.retry_timer = wakeup.map(|at| {
            let me = self.me.clone();
            // A timer longer than setTimeout's 32-bit bound would fire at once: it fires at
            // the bound instead, and the tick it calls sets the next one.
            let delay = at
                .saturating_sub(js::now_ms())
                .clamp(0, i64::from(i32::MAX)) as f64;
            let timer = js::Timeout::new(delay, move || {
                let Some(rt) = me.upgrade() else {
                    return;
                };
                // This timer's closure is running: drop it on a later turn.
                let fired = rt.state.borrow_mut().retry_timer.take();
                js::drop_later(fired);
                let _ = rt.with_engine(|e| e.tick(js::now_ms()));
                rt.pump();
            });
            (at, timer)
        });
    }

    // ---------- events ----------

    /// Answers waiting calls, then tells the app.
    fn dispatch(&self, events: Vec<Event>) {
        let mut shown = Vec::with_capacity(events.len());
        for event in events {
            match &event {
                Event::Done { request, outcome } => {
                    self.answer(Wait::Request(*request), Answer::Done(outcome.clone()));
                    continue;
                }
                Event::Intent { id, status } => {
                    if *status == IntentStatus::Accepted {
                        self.state.borrow_mut().accepted.insert(*id);
                    }
                    let refused = matches!(status, IntentStatus::Rejected { .. });
                    // A held intent refused before it ran is its call's error, not an event.
                    if self.answer(Wait::Intent(*id), Answer::Intent(status.clone())) && refused {
                        continue;
                    }
                }
                _ => {}
            }
            shown.push(event);
        }
        for event in events::translate(&shown, self) {
            self.emit(event);
        }
    }

    /// The engine forgets a typing signal after 6 s without telling: tell the UI then.
    fn schedule_typing_expiry(&self, conv: ConvId) {
        let me = self.me.clone();
        let key = conv.to_string();
        let timer = js::Timeout::new(6_100.0, move || {
            if let Some(rt) = me.upgrade() {
                rt.state.borrow_mut().typing_timers.remove(conv.as_str());
                let event = rt.typing_event(&conv);
                rt.emit(event);
            }
        });
        self.state.borrow_mut().typing_timers.insert(key, timer);
    }

    fn typing_event(&self, conv: &ConvId) -> ClientEvent {
        let now = js::now_ms();
        let accounts = self.read(Vec::new(), |e| {
            e.typing(conv, now).into_iter().map(String::from).collect()
        });
        ClientEvent::Typing {
            conv: conv.to_string(),
            accounts,
        }
    }

    /// The start of a traced step (`None` when not tracing).
    fn trace_start(&self) -> Option<f64> {
        self.trace.then(js::perf_now)
    }

    /// Emits the `trace` event of a step started at `started`.
    fn trace_end(&self, stage: TraceStage, started: Option<f64>, count: Option<u32>) {
        if let Some(started) = started {
            let us = ((js::perf_now() - started) * 1000.0).max(0.0) as u32;
            self.emit(ClientEvent::Trace { stage, us, count });
        }
    }

    /// Calls every listener of the event (and of `"*"`).
    pub fn emit(&self, event: ClientEvent) {
        let targets = self.listeners.borrow().targets(event.name());
        events::call(targets, &event);
    }

    pub fn listen(&self, name: EventName, f: Function) -> u32 {
        self.listeners.borrow_mut().add(name, f)
    }

    pub fn unlisten_id(&self, name: EventName, id: u32) {
        self.listeners.borrow_mut().remove_id(name, id);
    }

    pub fn unlisten(&self, name: EventName, f: &Function) {
        self.listeners.borrow_mut().remove_fn(name, f);
    }

    // ---------- connection and closing ----------

    pub async fn connect(&self) -> Result<()> {
        connection::connect(&self.conn).await
    }

    pub fn disconnect(&self) {
        connection::disconnect(&self.conn);
    }

    /// `dispose` is under way: a store write that fails from now on is given up (the
    /// queue would otherwise wait for the store forever).
    pub fn begin_closing(&self) {
        self.state.borrow_mut().closing = true;
    }

    /// Cancels timers, forgets listeners, releases the store; calls still waiting fail.
    pub fn shutdown(&self) {
        connection::stop_listening(&self.conn);
        let waiters = {
            let mut state = self.state.borrow_mut();
            state.closed = true;
            state.typing_timers.clear();
            state.retry_timer = None;
            state.answers.clear();
            std::mem::take(&mut state.waiters)
        };
        for resolve in waiters.into_values() {
            let _ = resolve.call0(&JsValue::NULL);
        }
        self.listeners.borrow_mut().clear();
        self.close_store();
    }

    /// Releases what the store holds open (a client that cannot start, or is disposed).
    pub fn close_store(&self) {
        if let Some(store) = self.store.get() {
            store.close();
        }
    }
}

impl Host for Runtime {
    fn frame(&self, frame: ServerFrame, now: i64) {
        let started = self.trace_start();
        let _ = self.with_engine(|e| e.receive(frame, now));
        self.trace_end(TraceStage::Engine, started, None);
        self.pump();
        self.trace_end(TraceStage::Receive, started, None);
    }

    fn offline(&self) {
        let _ = self.with_engine(ClientEngine::disconnected);
        self.pump();
    }

    fn emit(&self, event: ClientEvent) {
        Runtime::emit(self, event);
    }

    fn awaiting(&self) -> bool {
        self.read(false, |e| {
            e.outbox()
                .iter()
                .any(|(_, _, status)| *status == IntentStatus::Sent)
        })
    }
}

impl events::Context for Runtime {
    fn typing(&self, conv: &ConvId) -> ClientEvent {
        self.schedule_typing_expiry(conv.clone());
        self.typing_event(conv)
    }

    fn will_retry(&self) -> bool {
        self.conn.wanted()
    }
}
