//! The MLS directory for integrations (docs/E2EE.md, "Devices and key packages"): the
//! tenant's services (a service account) list an account's registered devices and the
//! signature key each is bound to, e.g. to show them to an administrator.

use axum::extract::State;
use axum::Json;
use confab_core::ids::AccountId;
use confab_core::model::time::format_rfc3339;
use confab_core::policy::DenyCode;
use serde::Serialize;

use super::error::ApiError;
use super::extract::{Caller, Params};
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct DeviceItem {
    pub device: String,
    /// The MLS signature key bound to the device by its first upload, lower-case hex.
    pub signature_key: String,
    /// When its first upload registered it.
    pub registered_at: String,
    /// When it last connected (asked the directory how many key packages it holds).
    pub last_seen_at: Option<String>,
    /// The ordinary key packages it holds.
    pub key_packages: u64,
}

#[derive(Debug, Serialize)]
pub struct DevicesAnswer {
    pub account: String,
    /// Registered devices that are not removed, in device order.
    pub devices: Vec<DeviceItem>,
}

/// `GET /v1/accounts/{account}/devices` → `{account, devices: [{device, signature_key,
/// registered_at, last_seen_at, key_packages}]}`.
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Params(account): Params<String>,
) -> Result<Json<DevicesAnswer>, ApiError> {
    if !caller.service {
        return Err(ApiError::forbidden(
            DenyCode::ServiceOnly,
            "devices are listed over REST for the tenant's services (a service account); \
             clients use the list_devices frame",
        ));
    }
    let account = AccountId::new(account)?;
    let rows = app
        .engine
        .store()
        .devices_of(&caller.tenant, std::slice::from_ref(&account))
        .await?;
    Ok(Json(DevicesAnswer {
        account: account.to_string(),
        devices: rows
            .into_iter()
            .map(|d| DeviceItem {
                device: d.device.to_string(),
                signature_key: hex::encode(d.signature_key),
                registered_at: format_rfc3339(d.registered_at),
                last_seen_at: d.last_seen_at.map(format_rfc3339),
                key_packages: d.key_packages,
            })
            .collect(),
    }))
}
