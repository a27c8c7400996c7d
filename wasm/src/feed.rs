//! The account's notification feed (docs/NOTIFICATIONS.md): the server's, read over REST
//! with the socket's token (it is not a replicated document, so not on the WebSocket).

use js_sys::Promise;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::api::{from_js, promise, to_js};
use crate::client::ConfabClient;
use crate::error::{Failure, Result};
use crate::http::Body;
use crate::types::{FeedOptions, MarkedRead, NotificationPage};

fn answer<T: serde::de::DeserializeOwned>(json: JsValue) -> Result<T> {
    serde_wasm_bindgen::from_value(json)
        .map_err(|e| Failure::new("invalid_answer", format!("notifications: {e}")))
}

/// `?cursor=&limit=&unread=` of `options`.
fn query(options: &FeedOptions) -> String {
    let mut parts = Vec::new();
    if let Some(cursor) = &options.cursor {
        let cursor: String = js_sys::encode_uri_component(cursor).into();
        parts.push(format!("cursor={cursor}"));
    }
    if let Some(limit) = options.limit {
        parts.push(format!("limit={limit}"));
    }
    if let Some(unread) = options.unread {
        parts.push(format!("unread={unread}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[wasm_bindgen]
impl ConfabClient {
    /// A page of the account's notifications, newest first, with the unread count
    /// (`GET /v1/notifications`). Rejects with the server's code (`invalid_value`,
    /// `out_of_range`) and `status`, or `network` without an answer.
    #[wasm_bindgen(unchecked_return_type = "Promise<NotificationPage>")]
    pub fn notifications(&self, options: Option<Ts<FeedOptions>>) -> Promise {
        let rest = self.rest.clone();
        let options: Option<JsValue> = options.map(Into::into);
        promise(async move {
            let options = match options {
                Some(o) if !o.is_undefined() && !o.is_null() => from_js::<FeedOptions>(o)?,
                _ => FeedOptions::default(),
            };
            let path = format!("/v1/notifications{}", query(&options));
            let got = rest.http()?.call("GET", &path, Body::None, None).await?;
            to_js(&answer::<NotificationPage>(got.json)?)
        })
    }

    /// The number of unread notifications.
    #[wasm_bindgen(js_name = unreadNotifications, unchecked_return_type = "Promise<number>")]
    pub fn unread_notifications(&self) -> Promise {
        let rest = self.rest.clone();
        promise(async move {
            let got = rest
                .http()?
                .call("GET", "/v1/notifications?limit=1", Body::None, None)
                .await?;
            let page = answer::<NotificationPage>(got.json)?;
            Ok(JsValue::from(page.unread))
        })
    }

    /// Marks the account's notifications up to id `upTo` read (all without it):
    /// `POST /v1/notifications/read`.
    #[wasm_bindgen(js_name = markNotificationsRead, unchecked_return_type = "Promise<MarkedRead>")]
    pub fn mark_notifications_read(&self, up_to: Option<f64>) -> Promise {
        let rest = self.rest.clone();
        promise(async move {
            let body = match up_to {
                Some(id) if id.fract() != 0.0 || id < 1.0 => {
                    return Err(Failure::new(
                        "out_of_range",
                        "upTo is a notification id (an integer, 1 or more)",
                    ))
                }
                Some(id) => serde_json::json!({ "up_to": id as i64 }),
                None => serde_json::json!({}),
            };
            let got = rest
                .http()?
                .call(
                    "POST",
                    "/v1/notifications/read",
                    Body::Json(body.to_string()),
                    None,
                )
                .await?;
            to_js(&answer::<MarkedRead>(got.json)?)
        })
    }
}
