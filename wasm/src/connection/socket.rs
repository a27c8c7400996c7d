//! One WebSocket and the callbacks it calls: `hello` on open, binary frames to
//! [`super::on_bytes`], close and error to [`super::on_closed`], all tagged with the epoch of
//! the attempt that opened it (callbacks of older sockets are ignored).

use std::rc::Rc;

use confab_core::protocol::{encode_client, ClientFrame, PROTOCOL_VERSION};
use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, WebSocket};

use super::{on_bytes, on_closed, Connection};
use crate::error::{describe_js, Failure};
use crate::js;
use crate::types::ConnectionReason;

/// A socket and the callbacks it calls.
pub struct Socket {
    pub ws: WebSocket,
    callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Socket {
    pub fn close(self, code: u16, reason: &str) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close_with_code_and_reason(code, reason);
        // A callback may be running right now: drop the closures on a later turn.
        js::drop_later(self.callbacks);
    }
}

/// Opens the socket of attempt `epoch`; `hello` goes out when it opens.
pub fn open(inner: &Rc<Connection>, epoch: u64, token: String) -> Result<Socket, Failure> {
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
        on_closed(&inner, epoch, code, &reason, ConnectionReason::Closed);
    });
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    callbacks.push(on_close);

    // An error means the socket is unusable; its `close` may come much later (a dead route
    // waits for TCP), so give up on it now.
    let weak = Rc::downgrade(inner);
    let on_error = Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
        if let Some(inner) = weak.upgrade() {
            on_closed(
                &inner,
                epoch,
                4000,
                "socket error",
                ConnectionReason::Closed,
            );
        }
    });
    ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    callbacks.push(on_error);

    Ok(Socket { ws, callbacks })
}
