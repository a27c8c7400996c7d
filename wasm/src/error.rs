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
    /// The HTTP status of a REST answer (uploads, the notification feed).
    pub status: Option<u16>,
    /// The request field a REST error names (`hash`, `mime`, `size`, ...).
    pub field: Option<String>,
}

impl Failure {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            code: code.into(),
            message: message.into(),
            status: None,
            field: None,
        }
    }

    /// A REST error answer: its code and message, with the status and field.
    pub fn http(status: u16, code: String, message: String, field: Option<String>) -> Self {
        Failure {
            status: Some(status),
            field,
            ..Failure::new(code, message)
        }
    }

    /// The JavaScript `Error` carrying `code` (and `status`, `field` when known).
    pub fn to_js(&self) -> JsValue {
        let error = js_error(&self.code, &self.message);
        if let Some(status) = self.status {
            let _ = js_sys::Reflect::set(&error, &"status".into(), &status.into());
        }
        if let Some(field) = &self.field {
            let _ = js_sys::Reflect::set(&error, &"field".into(), &field.as_str().into());
        }
        error
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

/// Asks the app's `tokenProvider` for a token (a string, or a promise of one): the socket
/// asks it for every connection, REST for every request.
pub(crate) async fn ask_token(provider: &js_sys::Function) -> Result<String> {
    let fail = |message: String| Failure::new("token_provider", message);
    let returned = provider
        .call0(&JsValue::NULL)
        .map_err(|e| fail(describe_js(&e).1))?;
    let value = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&returned))
        .await
        .map_err(|e| fail(describe_js(&e).1))?;
    value
        .as_string()
        .ok_or_else(|| fail("tokenProvider must return a string (or a promise of one)".into()))
}
