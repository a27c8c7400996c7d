//! The WebSocket transport: binary frames (core's CBOR codec), `hello` with a fresh token on
//! every attempt, reconnect with capped exponential backoff and jitter, keep-alive pings.
//! The engine resubscribes from its cursors and resends its outbox when it is welcomed.
//!
//! The connection knows nothing of the engine: it hands frames, the loss of the welcomed
//! connection and its own events to its [`Host`] (the runtime above it).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use confab_core::protocol::{
    decode_server, encode_client, ClientFrame, ServerFrame, PROTOCOL_VERSION,
};
use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{BinaryType, WebSocket};

use crate::error::{describe_js, Failure};
use crate::js::{self, Timeout};
use crate::types::{ClientEvent, ReconnectOptions};

/// What the connection tells the client it serves.
pub trait Host {
    /// A frame from the server (the welcome included), at device time `now`.
    fn frame(&self, frame: ServerFrame, now: i64);
    /// The welcomed connection is gone.
    fn offline(&self);
    /// An event for the app (`error`, `reconnecting`).
    fn emit(&self, event: ClientEvent);
}

/// How to reach the server.
#[derive(Debug)]
pub struct Settings {
    pub url: String,
    pub token_provider: Function,
    pub reconnect: ReconnectOptions,
    pub ping_interval_ms: u32,
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

    fn host(&self) -> Option<Rc<dyn Host>> {
        self.host.borrow().as_ref().and_then(Weak::upgrade)
    }

    fn emit(&self, event: ClientEvent) {
        if let Some(host) = self.host() {
            host.emit(event);
        }
    }
}

/// Largest server frame accepted (catch-up pages are bounded by the server's own limit).
const MAX_SERVER_FRAME: usize = 64 << 20;

/// Server error codes that a new token or a new build must fix: `connect()` rejects on them.
const AUTH_CODES: &[&str] = &["auth_failed", "token_expired", "unsupported_version"];

/// The delay before reconnect attempt `attempt` (1-based): `min · 2^(attempt-1)` capped at
/// `max`, then "equal jitter" — a uniformly random point in its upper half — so that many
/// clients dropped at once do not come back at once.
pub fn backoff_delay(attempt: u32, min_ms: u32, max_ms: u32, unit_random: f64) -> u32 {
    let min = f64::from(min_ms.max(1));
    let max = f64::from(max_ms.max(min_ms.max(1)));
    let exp = attempt.saturating_sub(1).min(30) as i32;
    let capped = (min * 2f64.powi(exp)).min(max);
    let jittered = capped / 2.0 + capped / 2.0 * unit_random.clamp(0.0, 1.0);
    jittered.round() as u32
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No connection and none under way (maybe a reconnect timer).
    Idle,
    /// Getting a token or opening the socket, waiting for `welcome`.
    Connecting,
    /// Welcomed: the engine syncs.
    Online,
}

/// A socket and the callbacks it calls.
struct Socket {
    ws: WebSocket,
    _callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Socket {
    fn close(self, code: u16, reason: &str) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close_with_code_and_reason(code, reason);
        // A callback may be running right now: drop the closures on a later turn.
        js::drop_later(self._callbacks);
    }
}

/// Connection state.
struct Conn {
    /// The app wants to be connected (between `connect()` and `disconnect()`).
    wanted: bool,
    /// Bumped on every attempt and every close: callbacks of older sockets are ignored.
    epoch: u64,
    phase: Phase,
    /// Failed attempts since the last welcome.
    attempt: u32,
    socket: Option<Socket>,
    timer: Option<Timeout>,
    heartbeat: Option<Timeout>,
    last_rx: i64,
    nonce: u64,
    /// A fatal error the server sent on this connection.
    fatal: Option<Failure>,
    /// `connect()` calls waiting for the welcome: (resolve, reject).
    waiters: Vec<(Function, Function)>,
    /// The browser's `online` event listener.
    online_listener: Option<Closure<dyn FnMut(JsValue)>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("wanted", &self.wanted)
            .field("epoch", &self.epoch)
            .field("phase", &self.phase)
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
            attempt: 0,
            socket: None,
            timer: None,
            heartbeat: None,
            last_rx: 0,
            nonce: 0,
            fatal: None,
            waiters: Vec::new(),
            online_listener: None,
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

/// Sends a frame if the connection of `epoch` is still the welcomed one.
pub fn send_bytes(inner: &Connection, epoch: u64, bytes: &[u8]) {
    let conn = inner.conn.borrow();
    if conn.epoch != epoch || conn.phase != Phase::Online {
        return;
    }
    if let Some(socket) = &conn.socket {
        let _ = socket.ws.send_with_u8_array(bytes);
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
    // An explicit connect() skips a pending backoff.
    start_attempt(inner, true);
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
        std::mem::take(&mut conn.waiters)
    };
    close_current(inner, 1000, "client disconnect");
    let error = Failure::new("disconnected", "disconnect() was called").to_js();
    for (_, reject) in waiters {
        let _ = reject.call1(&JsValue::NULL, &error);
    }
}

/// Reconnects at once when the browser says the network is back.
fn listen_for_network(inner: &Rc<Connection>) {
    if inner.conn.borrow().online_listener.is_some() {
        return;
    }
    let global = js_sys::global();
    let Ok(add) = js_sys::Reflect::get(&global, &"addEventListener".into()) else {
        return;
    };
    let Some(add) = add.dyn_ref::<Function>() else {
        return; // Node: no network events.
    };
    let weak = Rc::downgrade(inner);
    let listener = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
        if let Some(inner) = weak.upgrade() {
            start_attempt(&inner, true);
        }
    });
    let _ = add.call2(&global, &"online".into(), listener.as_ref());
    inner.conn.borrow_mut().online_listener = Some(listener);
}

/// Removes the network listener (the client is closing).
pub fn stop_listening(inner: &Connection) {
    let Some(listener) = inner.conn.borrow_mut().online_listener.take() else {
        return;
    };
    let global = js_sys::global();
    if let Ok(remove) = js_sys::Reflect::get(&global, &"removeEventListener".into()) {
        if let Some(remove) = remove.dyn_ref::<Function>() {
            let _ = remove.call2(&global, &"online".into(), listener.as_ref());
        }
    }
    js::drop_later(listener);
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
    let inner = inner.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let token = match fetch_token(&inner).await {
            Ok(token) => token,
            Err(failure) => return attempt_failed(&inner, epoch, failure, true),
        };
        if inner.conn.borrow().epoch != epoch {
            return; // disconnect() or a newer attempt
        }
        if let Err(failure) = open_socket(&inner, epoch, token) {
            attempt_failed(&inner, epoch, failure, false);
        }
    });
}

async fn fetch_token(inner: &Connection) -> Result<String, Failure> {
    let fail = |message: String| Failure::new("token_provider", message);
    let returned = inner
        .settings
        .token_provider
        .call0(&JsValue::NULL)
        .map_err(|e| fail(describe_js(&e).1))?;
    let value = JsFuture::from(Promise::resolve(&returned))
        .await
        .map_err(|e| fail(describe_js(&e).1))?;
    value
        .as_string()
        .ok_or_else(|| fail("tokenProvider must return a string (or a promise of one)".into()))
}

fn open_socket(inner: &Rc<Connection>, epoch: u64, token: String) -> Result<(), Failure> {
    let ws = WebSocket::new(&inner.settings.url)
        .map_err(|e| Failure::new("connect_failed", describe_js(&e).1))?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let mut callbacks = Vec::new();

    let hello = ClientFrame::Hello {
        v: PROTOCOL_VERSION,
        token,
        device: inner.device(),
    };
    let on_open = Closure::<dyn FnMut(JsValue)>::new({
        let ws = ws.clone();
        move |_event: JsValue| {
            let _ = ws.send_with_u8_array(&encode_client(&hello));
        }
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    callbacks.push(on_open);

    let weak = Rc::downgrade(inner);
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        // Not `dyn_into::<MessageEvent>`: polyfills (Node's `ws`) have their own classes.
        let data = js_sys::Reflect::get(&event, &"data".into()).unwrap_or_default();
        if data.is_string() || data.is_undefined() {
            return; // the protocol is binary only
        }
        let bytes = Uint8Array::new(&data).to_vec();
        on_bytes(&inner, epoch, &bytes);
    });
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    callbacks.push(on_message);

    let weak = Rc::downgrade(inner);
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let code = js_sys::Reflect::get(&event, &"code".into())
            .ok()
            .and_then(|c| c.as_f64())
            .unwrap_or(1006.0) as u16;
        let reason = js_sys::Reflect::get(&event, &"reason".into())
            .ok()
            .and_then(|r| r.as_string())
            .unwrap_or_default();
        on_closed(&inner, epoch, code, &reason);
    });
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    callbacks.push(on_close);

    // Errors are followed by `close`; nothing to do here, but the handler keeps Node quiet.
    let on_error = Closure::<dyn FnMut(JsValue)>::new(|_event: JsValue| {});
    ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    callbacks.push(on_error);

    let mut conn = inner.conn.borrow_mut();
    conn.last_rx = js::now_ms();
    conn.socket = Some(Socket {
        ws,
        _callbacks: callbacks,
    });
    Ok(())
}

fn on_bytes(inner: &Rc<Connection>, epoch: u64, bytes: &[u8]) {
    {
        let mut conn = inner.conn.borrow_mut();
        if conn.epoch != epoch {
            return;
        }
        conn.last_rx = js::now_ms();
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
    let now = js::now_ms();
    match frame {
        ServerFrame::Welcome { .. } => {
            let waiters = {
                let mut conn = inner.conn.borrow_mut();
                conn.phase = Phase::Online;
                conn.attempt = 0;
                std::mem::take(&mut conn.waiters)
            };
            host.frame(frame, now);
            schedule_heartbeat(inner, epoch);
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

fn schedule_heartbeat(inner: &Rc<Connection>, epoch: u64) {
    let interval = f64::from(inner.settings.ping_interval_ms.max(1000));
    let weak = Rc::downgrade(inner);
    let timer = Timeout::new(interval, move || {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let silent_for = {
            let mut conn = inner.conn.borrow_mut();
            if conn.epoch != epoch || conn.phase != Phase::Online {
                return;
            }
            conn.nonce += 1;
            let nonce = conn.nonce;
            send_frame(&conn, &ClientFrame::Ping { nonce });
            js::now_ms() - conn.last_rx
        };
        if silent_for as f64 > interval * 2.5 {
            // The server stopped answering: drop the socket and reconnect.
            on_closed(&inner, epoch, 4000, "keep-alive timeout");
        } else {
            schedule_heartbeat(&inner, epoch);
        }
    });
    inner.conn.borrow_mut().heartbeat = Some(timer);
}

/// Closes the current socket (if any) as the client's own decision.
fn close_current(inner: &Rc<Connection>, code: u16, reason: &str) {
    let epoch = inner.conn.borrow().epoch;
    on_closed(inner, epoch, code, reason);
}

/// The connection of `epoch` is gone (closed by either side, or given up on).
fn on_closed(inner: &Rc<Connection>, epoch: u64, code: u16, reason: &str) {
    let (was_online, fatal) = {
        let mut conn = inner.conn.borrow_mut();
        if conn.epoch != epoch || conn.phase == Phase::Idle {
            return;
        }
        let was_online = conn.phase == Phase::Online;
        conn.phase = Phase::Idle;
        conn.epoch += 1;
        conn.heartbeat = None;
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
        reject_waiters(inner, &failure);
    }
    schedule_reconnect(inner);
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
    }
    inner.emit(ClientEvent::Error {
        code: failure.code.clone(),
        message: failure.message.clone(),
    });
    if reject || failure.code == "connect_failed" {
        reject_waiters(inner, &failure);
    }
    schedule_reconnect(inner);
}

fn reject_waiters(inner: &Connection, failure: &Failure) {
    let waiters = std::mem::take(&mut inner.conn.borrow_mut().waiters);
    let error = failure.to_js();
    for (_, reject) in waiters {
        let _ = reject.call1(&JsValue::NULL, &error);
    }
}

fn schedule_reconnect(inner: &Rc<Connection>) {
    let (attempt, delay) = {
        let mut conn = inner.conn.borrow_mut();
        if !conn.wanted || conn.timer.is_some() {
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
                inner.conn.borrow_mut().timer = None;
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

#[cfg(all(test, not(target_family = "wasm")))]
mod tests {
    use super::backoff_delay;

    #[test]
    fn backoff_grows_exponentially_then_caps() {
        // Without jitter (random = 1) the delay is the capped exponential.
        let full: Vec<u32> = (1..=8)
            .map(|a| backoff_delay(a, 500, 30_000, 1.0))
            .collect();
        assert_eq!(full, vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(backoff_delay(1000, 500, 30_000, 1.0), 30_000);
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        for attempt in 1..20 {
            let cap = backoff_delay(attempt, 500, 30_000, 1.0);
            let low = backoff_delay(attempt, 500, 30_000, 0.0);
            let mid = backoff_delay(attempt, 500, 30_000, 0.5);
            assert_eq!(low, (f64::from(cap) / 2.0).round() as u32);
            assert!(low <= mid && mid <= cap);
        }
    }
}
