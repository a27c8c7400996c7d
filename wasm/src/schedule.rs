//! Scheduled messages: `schedule`, `scheduled`, `editScheduled`, `cancelScheduled`. A
//! scheduled message waits in the account's private document (only the account reads it;
//! offline it is queued in the outbox like any intent) until the server posts it at its
//! time, if the author may still send then; otherwise it stays listed with `refused`, the
//! reject code (docs/FEATURES.md, "Scheduled messages"). One of an encrypted conversation
//! waits on this device instead, whose engine posts it sealed when it is due and online
//! (docs/E2EE.md, "Drafts and scheduled messages").

use confab_core::client::Intent;
use confab_core::doc::read::Scheduled;
use confab_core::ids::MessageId;
use confab_core::model::schedule::{check_at, check_body, NewSchedule, ScheduleError};
use js_sys::Promise;
use serde::{Deserialize, Serialize};
use tsify::{Ts, Tsify};
use wasm_bindgen::prelude::*;

use crate::api::{conv_id, message_id, promise};
use crate::client::ConfabClient;
use crate::error::{Failure, Result};
use crate::intents::run;
use crate::js;
use crate::runtime::Runtime;
use crate::types::IntentResult;

/// A scheduled message of this account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledMessage {
    /// The id it is posted with.
    pub id: String,
    pub conv: String,
    pub body: String,
    /// When it is posted, in milliseconds since the epoch.
    pub at: i64,
    /// Set when the server could not post it at its time: the reject code (e.g.
    /// `member_inactive`, `conversation_locked`, `slow_mode`). Reschedule it with a new `at`, or cancel it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub refused: Option<String>,
}

impl From<Scheduled> for ScheduledMessage {
    fn from(s: Scheduled) -> Self {
        ScheduledMessage {
            id: s.id.to_string(),
            conv: s.conv.to_string(),
            body: s.body,
            at: s.at,
            refused: s.refused,
        }
    }
}

/// What `editScheduled` changes (at least one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduledEdit {
    #[serde(default)]
    #[tsify(optional)]
    pub body: Option<String>,
    #[serde(default)]
    #[tsify(optional)]
    pub at: Option<i64>,
}

fn failure(e: ScheduleError) -> Failure {
    Failure::new(e.code(), e.to_string())
}

/// A JavaScript number as a time: whole milliseconds.
fn time(at: f64) -> Result<i64> {
    if !at.is_finite() || at.fract() != 0.0 {
        return Err(Failure::new(
            "invalid_value",
            "at is whole milliseconds since the epoch",
        ));
    }
    Ok(at as i64)
}

fn pending(rt: &Runtime, id: &MessageId) -> Result<Scheduled> {
    rt.read(None, |e| e.private_data().scheduled.get(id).cloned())
        .ok_or_else(|| failure(ScheduleError::NotFound(id.to_string())))
}

#[wasm_bindgen]
impl ConfabClient {
    /// Schedules `body` in `conv` for `at` (milliseconds since the epoch; at most 60 s in the
    /// past, `schedule_in_past`, and 366 days ahead, `schedule_too_far`). The result's
    /// `message` is the id it will be posted with.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn schedule(&self, conv: String, body: String, at: f64) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            rt.ready().await?;
            let message = NewSchedule {
                conv: conv_id(&conv)?,
                body,
                at: time(at)?,
            };
            message.validate(rt.server_now()).map_err(failure)?;
            let id = js::new_id("m");
            let result = IntentResult {
                conv: Some(conv),
                message: Some(id.clone()),
                ..IntentResult::default()
            };
            let intent = Intent::Schedule {
                id: message_id(&id)?,
                conv: message.conv,
                body: message.body,
                at: message.at,
            };
            run(&rt, vec![intent], result).await
        })
    }

    /// Your scheduled messages (of `conv`, or all), pending and refused, by time.
    pub fn scheduled(
        &self,
        conv: Option<String>,
    ) -> std::result::Result<Vec<Ts<ScheduledMessage>>, JsValue> {
        let conv = conv.as_deref().map(conv_id).transpose()?;
        let mut list: Vec<Scheduled> = self
            .rt
            .read(Default::default(), |e| e.private_data().scheduled)
            .into_values()
            .filter(|s| conv.as_ref().is_none_or(|c| *c == s.conv))
            .collect();
        list.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(list
            .into_iter()
            .filter_map(|s| Ts::from_rust(&ScheduledMessage::from(s)).ok())
            .collect())
    }

    /// Changes the body and/or time of a scheduled message (a new time reschedules a
    /// refused one). `schedule_not_found` for an id you have not scheduled.
    #[wasm_bindgen(js_name = editScheduled, unchecked_return_type = "Promise<IntentResult>")]
    pub fn edit_scheduled(&self, id: String, changes: Ts<ScheduledEdit>) -> Promise {
        let rt = self.rt.clone();
        let changes = changes.to_rust();
        promise(async move {
            rt.ready().await?;
            let changes = changes.map_err(Failure::from)?;
            let id = message_id(&id)?;
            if let Some(body) = &changes.body {
                check_body(body).map_err(failure)?;
            }
            if let Some(at) = changes.at {
                check_at(at, rt.server_now()).map_err(failure)?;
            }
            let current = pending(&rt, &id)?;
            if current.refused.is_some() && changes.at.is_none() {
                return Err(failure(ScheduleError::Refused(id.to_string())));
            }
            let intent = Intent::EditScheduled {
                id,
                body: changes.body,
                at: changes.at,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Cancels a scheduled message (or dismisses a refused one).
    #[wasm_bindgen(js_name = cancelScheduled, unchecked_return_type = "Promise<IntentResult>")]
    pub fn cancel_scheduled(&self, id: String) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            rt.ready().await?;
            let id = message_id(&id)?;
            pending(&rt, &id)?;
            run(
                &rt,
                vec![Intent::CancelScheduled { id }],
                IntentResult::default(),
            )
            .await
        })
    }
}
