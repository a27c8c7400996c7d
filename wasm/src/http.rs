//! REST calls to the server (attachments, the notification feed): `fetch` with the same
//! bearer token as the socket (asked of `tokenProvider` for each request), errors as coded
//! `Failure`s with the HTTP status.

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Blob, Headers, Request, RequestInit, Response};

use crate::error::{describe_js, Failure, Result};

#[wasm_bindgen]
extern "C" {
    /// The global `fetch` (windows, workers and Node alike).
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(request: &Request) -> Promise;
}

/// The HTTP base of a WebSocket URL: `wss://h/p/ws` is `https://h/p` (a trailing `/ws`
/// dropped), `ws://` is `http://`. `None` for another scheme.
pub fn http_base(ws_url: &str) -> Option<String> {
    let (scheme, rest) = if let Some(rest) = ws_url.strip_prefix("wss://") {
        ("https://", rest)
    } else if let Some(rest) = ws_url.strip_prefix("ws://") {
        ("http://", rest)
    } else {
        return None;
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let rest = rest.strip_suffix("/ws").unwrap_or(rest);
    Some(format!("{scheme}{rest}"))
}

/// What a request carries.
pub enum Body {
    None,
    Json(String),
    /// Bytes with their type.
    Blob(Blob, String),
}

/// A 2xx answer: its JSON body (`undefined` when there is none).
#[derive(Debug)]
pub struct Answer {
    pub json: JsValue,
}

/// How to reach the server's REST API.
#[derive(Debug, Clone)]
pub struct Http {
    base: String,
    token_provider: Function,
}

impl Http {
    pub fn new(base: String, token_provider: Function) -> Http {
        let base = base.trim_end_matches('/').to_owned();
        Http {
            base,
            token_provider,
        }
    }

    async fn token(&self) -> Result<String> {
        crate::error::ask_token(&self.token_provider).await
    }

    /// `method path` (the path starts with `/v1/`). A non-2xx answer is the server's
    /// `{code, message, field?}` as a `Failure` with the status; no answer at all is
    /// `network` (status absent), an aborted request `aborted`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Body,
        signal: Option<&AbortSignal>,
    ) -> Result<Answer> {
        let response = self.request(method, path, body, signal).await?;
        let json = json_of(&response, signal).await?;
        if response.ok() {
            return Ok(Answer { json });
        }
        Err(refusal(method, path, response.status(), &json))
    }

    /// `GET path`: the answer's bytes (an attachment's), or the server's refusal as `call`
    /// gives it.
    pub async fn get_bytes(&self, path: &str, signal: Option<&AbortSignal>) -> Result<Vec<u8>> {
        let response = self.request("GET", path, Body::None, signal).await?;
        if !response.ok() {
            let json = json_of(&response, signal).await?;
            return Err(refusal("GET", path, response.status(), &json));
        }
        let buffer = response.array_buffer().map_err(js_failure)?;
        match JsFuture::from(buffer).await {
            Ok(buffer) => Ok(js_sys::Uint8Array::new(&buffer).to_vec()),
            Err(e) => Err(fetch_failure(&e, signal)),
        }
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Body,
        signal: Option<&AbortSignal>,
    ) -> Result<Response> {
        let token = self.token().await?;
        let headers = Headers::new().map_err(js_failure)?;
        headers
            .set("Authorization", &format!("Bearer {token}"))
            .map_err(js_failure)?;
        let init = RequestInit::new();
        init.set_method(method);
        match body {
            Body::None => {}
            Body::Json(text) => {
                headers
                    .set("Content-Type", "application/json")
                    .map_err(js_failure)?;
                init.set_body(&JsValue::from_str(&text));
            }
            Body::Blob(blob, mime) => {
                headers.set("Content-Type", &mime).map_err(js_failure)?;
                init.set_body(&blob);
            }
        }
        init.set_headers(&headers);
        if let Some(signal) = signal {
            init.set_signal(Some(signal));
        }
        let url = format!("{}{path}", self.base);
        let request = Request::new_with_str_and_init(&url, &init).map_err(js_failure)?;
        match JsFuture::from(global_fetch(&request)).await {
            Ok(r) => Ok(r.unchecked_into()),
            Err(e) => Err(fetch_failure(&e, signal)),
        }
    }
}

/// The answer's body as JSON (`undefined` when there is none or it is not JSON).
async fn json_of(response: &Response, signal: Option<&AbortSignal>) -> Result<JsValue> {
    Ok(match response.text() {
        Ok(text) => match JsFuture::from(text).await {
            Ok(text) => text
                .as_string()
                .filter(|t| !t.is_empty())
                .and_then(|t| js_sys::JSON::parse(&t).ok())
                .unwrap_or(JsValue::UNDEFINED),
            Err(e) => return Err(fetch_failure(&e, signal)),
        },
        Err(_) => JsValue::UNDEFINED,
    })
}

/// A non-2xx answer: the server's `{code, message, field?}` with the status.
fn refusal(method: &str, path: &str, status: u16, json: &JsValue) -> Failure {
    let text = |key: &str| {
        js_sys::Reflect::get(json, &key.into())
            .ok()
            .and_then(|v| v.as_string())
    };
    Failure::http(
        status,
        text("code").unwrap_or_else(|| format!("http_{status}")),
        text("message").unwrap_or_else(|| format!("{method} {path} answered {status}")),
        text("field"),
    )
}

fn js_failure(e: JsValue) -> Failure {
    Failure::new("invalid_argument", describe_js(&e).1)
}

fn fetch_failure(e: &JsValue, signal: Option<&AbortSignal>) -> Failure {
    if signal.is_some_and(AbortSignal::aborted) {
        return Failure::new("aborted", "the upload was stopped (its signal aborted)");
    }
    Failure::new("network", format!("no answer: {}", describe_js(e).1))
}

/// Failures worth trying again: no answer, the budget spent, the store unavailable or full.
pub fn transient(f: &Failure) -> bool {
    match f.status {
        None => f.code == "network",
        Some(status) => matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 507),
    }
}

#[cfg(all(test, not(target_family = "wasm")))]
mod tests {
    use super::*;

    #[test]
    fn the_http_base_follows_the_socket_url() {
        assert_eq!(
            http_base("wss://chat.example.com/ws").as_deref(),
            Some("https://chat.example.com")
        );
        assert_eq!(
            http_base("ws://127.0.0.1:8080/ws?x=1").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            http_base("wss://h/chat/ws/").as_deref(),
            Some("https://h/chat")
        );
        assert_eq!(http_base("https://h/ws"), None);
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let http = |status| Failure::http(status, "x".into(), String::new(), None);
        assert!(transient(&Failure::new("network", "")));
        assert!(!transient(&Failure::new("aborted", "")));
        for status in [429, 503, 507] {
            assert!(transient(&http(status)), "{status}");
        }
        for status in [403, 404, 409, 413, 415, 422] {
            assert!(!transient(&http(status)), "{status}");
        }
    }
}
