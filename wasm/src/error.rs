//! Errors for JavaScript: every failure is a JavaScript `Error` with a stable `code` property
//! (the engine's `ClientError` code, the policy's deny code, a model code, or one of the
//! binding's own codes listed in README.md).

use confab_core::client::{ClientError, StoreError};
use confab_core::ModelError;
use wasm_bindgen::JsValue;

/// An error with a stable machine-readable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The JavaScript `Error` carrying `code`.
    pub fn to_js(&self) -> JsValue {
        js_error(&self.code, &self.message)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Builds `new Error(message)` with `error.code = code` (and `name = "ConfabError"`).
pub fn js_error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("ConfabError");
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    error.into()
}

/// The `code` and message of something JavaScript threw (an `Error`, a string, anything).
pub fn describe_js(value: &JsValue) -> (Option<String>, String) {
    let code = js_sys::Reflect::get(value, &"code".into())
        .ok()
        .and_then(|c| c.as_string());
    let message = value
        .as_string()
        .or_else(|| {
            js_sys::Reflect::get(value, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| format!("{value:?}"));
    (code, message)
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Denied { code, reason, .. } => Failure::new(code.clone(), reason.clone()),
            _ => Failure::new(e.code(), e.to_string()),
        }
    }
}

impl From<ModelError> for Failure {
    fn from(e: ModelError) -> Self {
        Failure::new(e.code(), e.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::new("storage", e.0)
    }
}

impl From<serde_wasm_bindgen::Error> for Failure {
    fn from(e: serde_wasm_bindgen::Error) -> Self {
        Failure::new("invalid_argument", e.to_string())
    }
}

impl From<tsify::Error> for Failure {
    fn from(e: tsify::Error) -> Self {
        Failure::new("invalid_argument", e.to_string())
    }
}

impl From<Failure> for JsValue {
    fn from(f: Failure) -> Self {
        f.to_js()
    }
}

/// Results of the binding's internals.
pub type Result<T, E = Failure> = std::result::Result<T, E>;
