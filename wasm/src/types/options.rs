//! Options of `new ConfabClient(...)`.

use super::*;

/// Reconnect backoff: exponential from `minDelayMs`, capped at `maxDelayMs`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default)]
pub struct ReconnectOptions {
    #[tsify(optional)]
    pub min_delay_ms: u32,
    #[tsify(optional)]
    pub max_delay_ms: u32,
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        ReconnectOptions {
            min_delay_ms: 500,
            max_delay_ms: 30_000,
        }
    }
}

/// `new ConfabClient(options)`.
#[derive(Debug, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ClientOptions {
    /// The server's WebSocket URL, e.g. `wss://chat.example.com/ws`.
    pub url: String,
    /// Returns a fresh token (JWT) for each connection attempt.
    #[serde(with = "serde_wasm_bindgen::preserve")]
    #[tsify(type = "() => Promise<string> | string")]
    pub token_provider: js_sys::Function,
    /// `"indexeddb"` (default), `"memory"`, or an adapter object.
    #[serde(default = "undefined", with = "serde_wasm_bindgen::preserve")]
    #[tsify(optional, type = "\"indexeddb\" | \"memory\" | StorageAdapter")]
    pub storage: wasm_bindgen::JsValue,
    pub tenant: String,
    pub account: String,
    /// Free text the server logs for this device; default `web-<random>` kept in the store.
    #[serde(default)]
    #[tsify(optional)]
    pub device_id: Option<String>,
    /// IndexedDB database name; default `confab/<tenant>/<account>`.
    #[serde(default)]
    #[tsify(optional)]
    pub db_name: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub reconnect: Option<ReconnectOptions>,
    /// Silence after which an idle connection is pinged. Default 10000.
    #[serde(default)]
    #[tsify(optional)]
    pub ping_interval_ms: Option<u32>,
    /// How long a ping may go unanswered before the connection counts as dead (it is also
    /// sent after 1 s of silence while an intent awaits the server's answer). Default 2000.
    #[serde(default)]
    #[tsify(optional)]
    pub ping_timeout_ms: Option<u32>,
    /// The server's HTTP base for REST (uploads, the notification feed), e.g.
    /// `https://chat.example.com`; default derived from `url` (`wss://h/ws` is `https://h`).
    #[serde(default)]
    #[tsify(optional)]
    pub http_url: Option<String>,
    /// Emit `trace` events (where the time of each frame goes). Default false.
    #[serde(default)]
    #[tsify(optional)]
    pub trace: Option<bool>,
    /// Mark messages of others delivered as they arrive (one marker write per
    /// conversation per 2 s at most; `markDelivered` still works by hand). Default true.
    #[serde(default)]
    #[tsify(optional)]
    pub auto_delivered: Option<bool>,
}

fn undefined() -> wasm_bindgen::JsValue {
    wasm_bindgen::JsValue::UNDEFINED
}
