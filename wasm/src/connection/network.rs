//! What the platform says about the network: the browser's `online`/`offline` events and
//! `navigator.onLine`. Node has neither: there the connection relies on socket closes and
//! its pings alone.

use js_sys::Function;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::js;

/// `navigator.onLine === false`: the device has no network at all (a `true` proves nothing,
/// so only `false` is believed).
pub fn known_offline() -> bool {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"navigator".into())
        .ok()
        .filter(|n| n.is_object())
        .and_then(|n| js_sys::Reflect::get(&n, &"onLine".into()).ok())
        .and_then(|v| v.as_bool())
        == Some(false)
}

/// The `online` and `offline` listeners on the global object; removed when dropped.
pub struct NetworkListeners {
    online: Closure<dyn FnMut(JsValue)>,
    offline: Closure<dyn FnMut(JsValue)>,
}

impl std::fmt::Debug for NetworkListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetworkListeners")
    }
}

fn global_method(name: &str) -> Option<Function> {
    js_sys::Reflect::get(&js_sys::global(), &name.into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
}

impl NetworkListeners {
    /// Listens, or `None` where the platform has no such events (Node).
    pub fn listen(
        on_online: impl FnMut(JsValue) + 'static,
        on_offline: impl FnMut(JsValue) + 'static,
    ) -> Option<NetworkListeners> {
        let add = global_method("addEventListener")?;
        let online = Closure::<dyn FnMut(JsValue)>::new(on_online);
        let offline = Closure::<dyn FnMut(JsValue)>::new(on_offline);
        let global = js_sys::global();
        let _ = add.call2(&global, &"online".into(), online.as_ref());
        let _ = add.call2(&global, &"offline".into(), offline.as_ref());
        Some(NetworkListeners { online, offline })
    }
}

impl Drop for NetworkListeners {
    fn drop(&mut self) {
        if let Some(remove) = global_method("removeEventListener") {
            let global = js_sys::global();
            let _ = remove.call2(&global, &"online".into(), self.online.as_ref());
            let _ = remove.call2(&global, &"offline".into(), self.offline.as_ref());
        }
        // A listener may be running right now: its closure goes on a later turn.
        let dummy = || Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {});
        js::drop_later(std::mem::replace(&mut self.online, dummy()));
        js::drop_later(std::mem::replace(&mut self.offline, dummy()));
    }
}
