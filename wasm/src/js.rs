//! Small platform helpers: clock, randomness, timers (global `setTimeout`, so they work in
//! browsers, workers and Node alike).

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout_js(callback: &js_sys::Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout_js(id: &JsValue);
}

/// Milliseconds since the epoch (the device clock).
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A monotonic clock in milliseconds with sub-millisecond precision (`performance.now()`),
/// for timing; `Date.now()` where there is no `performance`.
pub fn perf_now() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .filter(|p| p.is_object())
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            let now: &js_sys::Function = now.dyn_ref()?;
            now.call0(&p).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}

/// Random bytes from the platform's secure source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if getrandom::fill(&mut buf).is_err() {
        // No secure source (never seen in browsers or Node): fall back to Math.random.
        for b in &mut buf {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    buf
}

/// A uniformly random number in [0, 1).
pub fn random_unit() -> f64 {
    js_sys::Math::random()
}

/// A fresh id for a message or conversation: time-ordered, 26 characters of `[0-9a-z]`.
pub fn new_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + 26);
    id.push_str(prefix);
    let time = now_ms().max(0) as u64;
    id.push_str(&format!("{time:011x}"));
    for b in random_bytes::<8>() {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// A pending `setTimeout`; cleared when dropped.
#[derive(Debug)]
pub struct Timeout {
    id: JsValue,
    _closure: Closure<dyn FnMut()>,
}

impl Timeout {
    pub fn new(ms: f64, f: impl FnOnce() + 'static) -> Timeout {
        let mut f = Some(f);
        let closure = Closure::<dyn FnMut()>::new(move || {
            if let Some(f) = f.take() {
                f();
            }
        });
        let id = set_timeout_js(closure.as_ref().unchecked_ref(), ms.max(0.0));
        Timeout {
            id,
            _closure: closure,
        }
    }
}

impl Drop for Timeout {
    fn drop(&mut self) {
        clear_timeout_js(&self.id);
    }
}

/// Resolves after `ms` (the timer is cleared if the future is dropped first).
pub async fn sleep(ms: u32) {
    let mut timer = None;
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        timer = Some(Timeout::new(f64::from(ms), move || {
            let _ = resolve.call0(&JsValue::NULL);
        }));
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    drop(timer);
}

/// Drops `value` on a later turn of the event loop (closures must not be dropped while
/// they run).
pub fn drop_later<T: 'static>(value: T) {
    let mut value = Some(value);
    let closure = Closure::once_into_js(move || {
        value.take();
    });
    set_timeout_js(closure.unchecked_ref(), 0.0);
}
