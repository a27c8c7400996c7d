//! Small helpers of the JavaScript API methods: promises with coded errors, conversions of
//! typed values and ids.

use confab_core::ids::{AccountId, ConvId, MessageId};
use js_sys::Promise;
use tsify::Ts;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::future_to_promise;

use crate::error::Result;

/// Runs an async block as a JavaScript promise, turning failures into coded `Error`s.
pub fn promise<T, F>(future: F) -> Promise
where
    T: Into<JsValue>,
    F: std::future::Future<Output = Result<T>> + 'static,
{
    future_to_promise(async move { future.await.map(Into::into).map_err(JsValue::from) })
}

pub fn to_js<T: tsify::Tsify + serde::Serialize>(value: &T) -> Result<JsValue> {
    Ok(Ts::from_rust(value)?.into())
}

pub fn from_js<T: tsify::Tsify + serde::de::DeserializeOwned>(value: JsValue) -> Result<T> {
    Ok(serde_wasm_bindgen::from_value(value)?)
}

pub fn conv_id(conv: &str) -> Result<ConvId> {
    Ok(ConvId::new(conv)?)
}

pub fn message_id(message: &str) -> Result<MessageId> {
    Ok(MessageId::new(message)?)
}

pub fn account_id(account: &str) -> Result<AccountId> {
    Ok(AccountId::new(account)?)
}
