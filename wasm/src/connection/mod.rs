//! The WebSocket transport: binary frames (core's CBOR codec), `hello` with a fresh token on
//! every attempt, reconnect with capped exponential backoff and jitter ([`backoff`]), a
//! liveness check by application pings ([`liveness`]) and the browser's network events
//! ([`network`]). The engine resubscribes from its cursors and resends its outbox when it
//! is welcomed.
//!
//! It knows within a few seconds when the server is out of reach — at once on the browser's
//! `offline` event or a socket error/close, within `probe + deadline` (3 s by default) of
//! silence while an answer is awaited, within `interval + deadline` (12 s) when idle — and
//! reports its [`ConnectionState`] through `connection` events.
//!
//! The connection knows nothing of the engine: it hands frames, the loss of the welcomed
//! connection and its own events to its [`Host`] (the runtime above it).

mod backoff;
mod liveness;
mod network;
mod socket;

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use confab_core::protocol::{decode_server, encode_client, ClientFrame, ServerFrame};
use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

pub use backoff::backoff_delay;
use liveness::{Liveness, Step, Timing};
use network::NetworkListeners;
use socket::Socket;

use crate::error::{describe_js, Failure};
use crate::js::{self, Timeout};
use crate::types::{ClientEvent, ConnectionReason, ConnectionState, ReconnectOptions};

/// What the connection tells the client it serves.
pub trait Host {
    /// A frame from the server (the welcome included), at device time `now`.
    fn frame(&self, frame: ServerFrame, now: i64);
    /// The welcomed connection is gone.
    fn offline(&self);
    /// An event for the app (`error`, `reconnecting`, `connection`).
    fn emit(&self, event: ClientEvent);
    /// Whether something sent still waits for the server's answer (an intent `sent`).
    fn awaiting(&self) -> bool;
}

/// How to reach the server.
#[derive(Debug)]
pub struct Settings {
    pub url: String,
    pub token_provider: Function,
    pub reconnect: ReconnectOptions,
    /// Silence before an idle connection is pinged.
    pub ping_interval_ms: u32,
    /// How long a ping may go unanswered.
    pub ping_timeout_ms: u32,
}

impl Settings {
    fn timing(&self) -> Timing {
        let idle_ms = i64::from(self.ping_interval_ms.max(1000));
        Timing {
            idle_ms,
            // While an answer is awaited, one second of silence is already suspicious (the
            // server answers in milliseconds).
            probe_ms: idle_ms.min(1000),
            deadline_ms: i64::from(self.ping_timeout_ms.max(100)),
        }
    }
}

/// A connection: its settings, its state, and the host it reports to.
pub struct Connection {
    settings: Settings,
    /// Sent in `hello`; known once the store is read.
    device: RefCell<String>,
    conn: RefCell<Conn>,
    host: RefCell<Option<Weak<dyn Host>>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.settings.url)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl Connection {
    pub fn new(settings: Settings, device: String) -> Rc<Connection> {
        Rc::new(Connection {
            settings,
            device: RefCell::new(device),
            conn: RefCell::new(Conn::default()),
            host: RefCell::new(None),
        })
    }

    pub fn set_host(&self, host: Weak<dyn Host>) {
        *self.host.borrow_mut() = Some(host);
    }

    pub fn device(&self) -> String {
        self.device.borrow().clone()
    }

    pub fn set_device(&self, device: String) {
        *self.device.borrow_mut() = device;
    }

    /// The epoch of the current connection (a frame queued for it is dropped once it ends).
    pub fn epoch(&self) -> u64 {
        self.conn.borrow().epoch
    }

    /// The app wants to be connected (between `connect()` and `disconnect()`).
    pub fn wanted(&self) -> bool {
        self.conn.borrow().wanted
    }

    /// Where the connection stands now.
    pub fn state(&self) -> ConnectionState {
        self.conn.borrow().status().0
    }

    fn host(&self) -> Option<Rc<dyn Host>> {
        self.host.borrow().as_ref().and_then(Weak::upgrade)
    }

    fn emit(&self, event: ClientEvent) {
        if let Some(host) = self.host() {
            host.emit(event);
        }
    }

    /// Emits `connection` if the state or its reason changed since the last one.
    fn report(&self) {
        let status = {
            let mut conn = self.conn.borrow_mut();
            let status = conn.status();
            if conn.reported == Some(status) {
                return;
            }
            conn.reported = Some(status);
            status
        };
        self.emit(ClientEvent::Connection {
            state: status.0,
            reason: status.1,
        });
    }
}

/// Largest server frame accepted (catch-up pages are bounded by the server's own limit).
const MAX_SERVER_FRAME: usize = 64 << 20;

/// Server error codes that a new token or a new build must fix: `connect()` rejects on them.
const AUTH_CODES: &[&str] = &["auth_failed", "token_expired", "unsupported_version"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No connection and none under way (maybe a reconnect timer).
    Idle,
    /// Getting a token or opening the socket, waiting for `welcome`.
    Connecting,
    /// Welcomed: the engine syncs.
    Online,
}

/// Connection state.
struct Conn {
    /// The app wants to be connected (between `connect()` and `disconnect()`).
    wanted: bool,
    /// Bumped on every attempt and every close: callbacks of older sockets are ignored.
    epoch: u64,
    phase: Phase,
    /// Why the client is not online (meaningful in `Idle`).
    reason: ConnectionReason,
    /// The last state reported in a `connection` event.
    reported: Option<(ConnectionState, Option<ConnectionReason>)>,
    /// Failed attempts since the last welcome.
    attempt: u32,
    socket: Option<Socket>,
    /// The reconnect timer.
    timer: Option<Timeout>,
    /// Whether the welcomed connection is alive, and the timer at its next wakeup.
    liveness: Option<Liveness>,
    heartbeat: Option<(i64, Timeout)>,
    /// A fatal error the server sent on this connection.
    fatal: Option<Failure>,
    /// `connect()` calls waiting for the welcome: (resolve, reject).
    waiters: Vec<(Function, Function)>,
    /// The browser's `online`/`offline` listeners.
    network: Option<NetworkListeners>,
}

impl Conn {
    fn status(&self) -> (ConnectionState, Option<ConnectionReason>) {
        match self.phase {
            Phase::Online => (ConnectionState::Online, None),
            Phase::Connecting => (ConnectionState::Connecting, None),
            Phase::Idle => (ConnectionState::Offline, Some(self.reason)),
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("wanted", &self.wanted)
            .field("epoch", &self.epoch)
            .field("phase", &self.phase)
            .field("reason", &self.reason)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Default for Conn {
    fn default() -> Self {
        Conn {
            wanted: false,
            epoch: 0,
            phase: Phase::Idle,
            reason: ConnectionReason::Disconnected,
            reported: None,
            attempt: 0,
            socket: None,
            timer: None,
            liveness: None,
            heartbeat: None,
            fatal: None,
            waiters: Vec::new(),
            network: None,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // A client dropped without `dispose()` still closes its socket.
        if let Some(socket) = self.socket.take() {
            socket.close(1000, "client dropped");
        }
    }
}

/// Sends a frame if the connection of `epoch` is still the welcomed one. A frame that
/// `expects_answer` (submit, subscribe) makes the liveness check probe sooner.
pub fn send_bytes(inner: &Rc<Connection>, epoch: u64, bytes: &[u8], expects_answer: bool) {
    let rearm = {
        let mut conn = inner.conn.borrow_mut();
        if conn.epoch != epoch || conn.phase != Phase::Online {
            return;
        }
        if let Some(socket) = &conn.socket {
            let _ = socket.ws.send_with_u8_array(bytes);
        }
        expects_answer && conn.liveness.as_mut().is_some_and(|l| l.sent(js::now_ms()))
    };
    if rearm {
        arm_heartbeat(inner, epoch);
    }
}

fn send_frame(conn: &Conn, frame: &ClientFrame) {
    if let Some(socket) = &conn.socket {
        let _ = socket.ws.send_with_u8_array(&encode_client(frame));
    }
}

/// `connect()`: wants the connection and waits for the server's welcome.
pub async fn connect(inner: &Rc<Connection>) -> Result<(), Failure> {
    let promise = {
        let mut conn = inner.conn.borrow_mut();
        conn.wanted = true;
        if conn.phase == Phase::Online {
            return Ok(());
        }
        let mut settle = None;
        let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        if let Some(pair) = settle {
            conn.waiters.push(pair);
        }
        promise
    };
    listen_for_network(inner);
    if network::known_offline() {
        // No network: wait for the browser's `online` event (the promise waits too).
        inner.conn.borrow_mut().reason = ConnectionReason::Network;
        inner.report();
    } else {
        // An explicit connect() skips a pending backoff.
        start_attempt(inner, true);
    }
    JsFuture::from(promise).await.map(|_| ()).map_err(|e| {
        let (code, message) = describe_js(&e);
        Failure::new(code.unwrap_or_else(|| "connect_failed".into()), message)
    })
}

/// `disconnect()`: closes the connection and stops reconnecting.
pub fn disconnect(inner: &Rc<Connection>) {
    let waiters = {
        let mut conn = inner.conn.borrow_mut();
        conn.wanted = false;
        conn.timer = None;
        conn.reason = ConnectionReason::Disconnected;
        std::mem::take(&mut conn.waiters)
    };
    close_current(
        inner,
        1000,
        "client disconnect",
        ConnectionReason::Disconnected,
    );
    inner.report();
    let error = Failure::new("disconnected", "disconnect() was called").to_js();
    for (_, reject) in waiters {
        let _ = reject.call1(&JsValue::NULL, &error);
    }
}

/// Follows the browser's network events: `offline` drops the connection at once (its socket
/// may linger for a minute before it fails); `online` reconnects at once.
fn listen_for_network(inner: &Rc<Connection>) {
    if inner.conn.borrow().network.is_some() {
        return;
    }
    let weak = Rc::downgrade(inner);
    let on_online = move |_event: JsValue| {
        if let Some(inner) = weak.upgrade() {
            {
                let mut conn = inner.conn.borrow_mut();
                if !conn.wanted {
                    return;
                }
                conn.timer = None;
                conn.attempt = 0;
            }
            start_attempt(&inner, true);
        }
    };
    let weak = Rc::downgrade(inner);
    let on_offline = move |_event: JsValue| {
        if let Some(inner) = weak.upgrade() {
            network_lost(&inner);
        }
    };
    let listeners = NetworkListeners::listen(on_online, on_offline);
    inner.conn.borrow_mut().network = listeners;
}

/// The device lost its network: give up the connection and wait for `online`.
fn network_lost(inner: &Rc<Connection>) {
    {
        let mut conn = inner.conn.borrow_mut();
        if !conn.wanted {
            return;
        }
        conn.timer = None;
        conn.reason = ConnectionReason::Network;
    }
    close_current(inner, 4000, "network offline", ConnectionReason::Network);
    inner.report();
}

/// Removes the network listeners (the client is closing).
pub fn stop_listening(inner: &Connection) {
    let listeners = inner.conn.borrow_mut().network.take();
    drop(listeners);
}

/// Starts a connection attempt unless one runs (or, without `now`, one is scheduled).
pub fn start_attempt(inner: &Rc<Connection>, now: bool) {
    let epoch = {
        let mut conn = inner.conn.borrow_mut();
        if !conn.wanted || conn.phase != Phase::Idle || (!now && conn.timer.is_some()) {
            return;
        }
        conn.timer = None;
        conn.phase = Phase::Connecting;
        conn.epoch += 1;
        conn.fatal = None;
        conn.epoch
    };
    inner.report();
    let inner = inner.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let token = match crate::error::ask_token(&inner.settings.token_provider).await {
            Ok(token) => token,
            Err(failure) => return attempt_failed(&inner, epoch, failure, true),
        };
        if inner.conn.borrow().epoch != epoch {
            return; // disconnect() or a newer attempt
        }
        match socket::open(&inner, epoch, token) {
            Ok(socket) => inner.conn.borrow_mut().socket = Some(socket),
            Err(failure) => attempt_failed(&inner, epoch, failure, false),
        }
    });
}

fn on_bytes(inner: &Rc<Connection>, epoch: u64, bytes: &[u8]) {
    let now = js::now_ms();
    {
        let mut conn = inner.conn.borrow_mut();
        if conn.epoch != epoch {
            return;
        }
        if let Some(liveness) = conn.liveness.as_mut() {
            liveness.received(now);
        }
    }
    let frame = match decode_server(bytes, MAX_SERVER_FRAME) {
        Ok(frame) => frame,
        Err(e) => {
            return inner.emit(ClientEvent::Error {
                code: "bad_frame".into(),
                message: e.to_string(),
            })
        }
    };
    let Some(host) = inner.host() else {
        return;
    };
    match frame {
        ServerFrame::Welcome { .. } => {
            let waiters = {
                let mut conn = inner.conn.borrow_mut();
                conn.phase = Phase::Online;
                conn.attempt = 0;
                conn.liveness = Some(Liveness::new(inner.settings.timing(), now));
                std::mem::take(&mut conn.waiters)
            };
            host.frame(frame, now);
            arm_heartbeat(inner, epoch);
            inner.report();
            for (resolve, _) in waiters {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
        ServerFrame::Error {
            ref code,
            ref message,
            fatal,
            ..
        } => {
            let (code, message) = (code.clone(), message.clone());
            if fatal {
                inner.conn.borrow_mut().fatal = Some(Failure::new(code.clone(), message.clone()));
            }
            // The engine retries a subscription refused while its conversation was created,
            // and resends what a retryable error (`internal`, `unavailable`, `rate_limited`,
            // ...) left unstored: the host sets its timer.
            host.frame(frame, now);
            host.emit(ClientEvent::Error { code, message });
        }
        ServerFrame::Pong { .. } => {}
        frame => host.frame(frame, now),
    }
}

/// Keeps one timer at the liveness check's next wakeup (set again only when it moves).
fn arm_heartbeat(inner: &Rc<Connection>, epoch: u64) {
    let mut conn = inner.conn.borrow_mut();
    if conn.epoch != epoch || conn.phase != Phase::Online {
        return;
    }
    let Some(at) = conn.liveness.as_ref().map(Liveness::next_wakeup) else {
        return;
    };
    if conn.heartbeat.as_ref().is_some_and(|(set, _)| *set == at) {
        return;
    }
    let weak = Rc::downgrade(inner);
    let delay = at.saturating_sub(js::now_ms()).max(0) as f64;
    let timer = Timeout::new(delay, move || {
        if let Some(inner) = weak.upgrade() {
            heartbeat(&inner, epoch);
        }
    });
    // A timer replaced from inside its own callback must not be dropped while it runs.
    if let Some(old) = conn.heartbeat.replace((at, timer)) {
        js::drop_later(old);
    }
}

/// The liveness timer fired: ping, wait, or give the connection up.
fn heartbeat(inner: &Rc<Connection>, epoch: u64) {
    let host = inner.host();
    let step = {
        let mut conn = inner.conn.borrow_mut();
        if conn.epoch != epoch || conn.phase != Phase::Online {
            return;
        }
        if let Some(fired) = conn.heartbeat.take() {
            js::drop_later(fired);
        }
        let awaiting = || host.as_ref().is_some_and(|h| h.awaiting());
        let Some(step) = conn
            .liveness
            .as_mut()
            .map(|l| l.poll(js::now_ms(), awaiting))
        else {
            return;
        };
        if let Step::Ping { nonce, .. } = step {
            send_frame(&conn, &ClientFrame::Ping { nonce });
        }
        step
    };
    match step {
        Step::Dead => on_closed(
            inner,
            epoch,
            4000,
            "no answer to ping",
            ConnectionReason::Timeout,
        ),
        Step::WaitUntil(_) | Step::Ping { .. } => arm_heartbeat(inner, epoch),
    }
}

/// Closes the current socket (if any) as the client's own decision.
fn close_current(inner: &Rc<Connection>, code: u16, reason: &str, why: ConnectionReason) {
    let epoch = inner.conn.borrow().epoch;
    on_closed(inner, epoch, code, reason, why);
}

/// The connection of `epoch` is gone (closed by either side, or given up on).
fn on_closed(inner: &Rc<Connection>, epoch: u64, code: u16, reason: &str, why: ConnectionReason) {
    let (was_online, fatal) = {
        let mut conn = inner.conn.borrow_mut();
        if conn.epoch != epoch || conn.phase == Phase::Idle {
            return;
        }
        let was_online = conn.phase == Phase::Online;
        conn.phase = Phase::Idle;
        conn.epoch += 1;
        conn.reason = why;
        conn.liveness = None;
        if let Some(heartbeat) = conn.heartbeat.take() {
            js::drop_later(heartbeat);
        }
        if let Some(socket) = conn.socket.take() {
            socket.close(if code == 1000 { 1000 } else { 4000 }, reason);
        }
        (was_online, conn.fatal.take())
    };
    if was_online {
        if let Some(host) = inner.host() {
            host.offline();
        }
    }
    let auth = fatal
        .clone()
        .filter(|f| AUTH_CODES.contains(&f.code.as_str()))
        .or_else(|| {
            (code == 4001).then(|| Failure::new("auth_failed", "the server refused the token"))
        });
    if let Some(failure) = auth {
        inner.conn.borrow_mut().reason = ConnectionReason::Refused;
        reject_waiters(inner, &failure);
    }
    schedule_reconnect(inner);
    inner.report();
}

/// An attempt failed before a socket was up (token provider, bad URL).
fn attempt_failed(inner: &Rc<Connection>, epoch: u64, failure: Failure, reject: bool) {
    {
        let mut conn = inner.conn.borrow_mut();
        if conn.epoch != epoch {
            return;
        }
        conn.phase = Phase::Idle;
        conn.epoch += 1;
        conn.reason = ConnectionReason::Refused;
    }
    inner.emit(ClientEvent::Error {
        code: failure.code.clone(),
        message: failure.message.clone(),
    });
    if reject || failure.code == "connect_failed" {
        reject_waiters(inner, &failure);
    }
    schedule_reconnect(inner);
    inner.report();
}

fn reject_waiters(inner: &Connection, failure: &Failure) {
    let waiters = std::mem::take(&mut inner.conn.borrow_mut().waiters);
    let error = failure.to_js();
    for (_, reject) in waiters {
        let _ = reject.call1(&JsValue::NULL, &error);
    }
}

/// Sets the reconnect timer (backoff with jitter), unless the device has no network: then
/// the browser's `online` event starts the next attempt.
fn schedule_reconnect(inner: &Rc<Connection>) {
    let (attempt, delay) = {
        let mut conn = inner.conn.borrow_mut();
        if !conn.wanted || conn.timer.is_some() {
            return;
        }
        if network::known_offline() {
            conn.reason = ConnectionReason::Network;
            return;
        }
        conn.attempt = conn.attempt.saturating_add(1);
        let delay = backoff_delay(
            conn.attempt,
            inner.settings.reconnect.min_delay_ms,
            inner.settings.reconnect.max_delay_ms,
            js::random_unit(),
        );
        let weak = Rc::downgrade(inner);
        conn.timer = Some(Timeout::new(f64::from(delay), move || {
            if let Some(inner) = weak.upgrade() {
                // This timer's closure is running: drop it on a later turn.
                let fired = inner.conn.borrow_mut().timer.take();
                js::drop_later(fired);
                start_attempt(&inner, false);
            }
        }));
        (conn.attempt, delay)
    };
    inner.emit(ClientEvent::Reconnecting {
        attempt,
        delay_ms: delay,
    });
}
