//! A connection's directory requests (docs/E2EE.md, "Devices and key packages"): upload,
//! claim, list and remove, each checked here (key packages by `e2ee::ds`) and carried out
//! by the store's `Devices` concern; the answer is a frame, or an error naming the
//! request's id.
//!
//! A claim hands out ordinary packages only of the claimer's own account and of the
//! accounts it shares a conversation with as active members (`Devices::co_members`), at most
//! `CLAIMED_PER_ACCOUNT` of one account per window on this node (`crate::claims`); every
//! other device answers its last-resort package. A connection sends at most
//! `CLAIMS_PER_CONNECTION` claims per window (`admit_claim`).

use std::collections::BTreeSet;

use confab_core::e2ee::ds::check_key_package;
use confab_core::e2ee::{DeviceIdentity, DsRefusal};
use confab_core::ids::{AccountId, TenantId};
use confab_core::protocol::{
    Action, ClaimedPackage, DeviceEntry, ErrorCode, Identity, ServerFrame, CLAIMS_PER_CONNECTION,
    CLAIMS_WINDOW_MS, KEY_PACKAGES_HELD_MAX,
};
use serde_bytes::ByteBuf;

use crate::claims::{AccountClaims, ConnectionClaims};
use crate::clock::now_ms;
use crate::state::AppState;
use crate::store::devices::{NewKeyPackage, Ordinary, Upload, UploadRefused};
use crate::store::StoreError;

/// Work units a directory request costs: one, and one per key package (each is a signature
/// to verify) or per account claimed (each is a set of rows to take).
pub(super) fn units(action: &Action) -> usize {
    match action {
        Action::UploadKeyPackages {
            packages,
            last_resort,
            ..
        } => 1 + packages.len() + usize::from(last_resort.is_some()),
        Action::ClaimKeyPackages { accounts, .. } => 1 + accounts.len(),
        _ => 1,
    }
}

/// The id of a directory request (`None`: another action).
pub(super) fn request_id(action: &Action) -> Option<u64> {
    match action {
        Action::UploadKeyPackages { id, .. }
        | Action::ClaimKeyPackages { id, .. }
        | Action::ListDevices { id, .. }
        | Action::RemoveDevice { id, .. } => Some(*id),
        _ => None,
    }
}

/// An error frame answering request `id`.
pub(super) fn refusal(id: u64, code: &str, message: impl Into<String>) -> ServerFrame {
    ServerFrame::Error {
        code: code.to_owned(),
        message: message.into(),
        doc: None,
        fatal: false,
        hash: None,
        retry_after_ms: None,
        id: Some(id),
    }
}

/// Admits a claim on this connection, or refuses it `rate_limited` with `retry_after_ms`
/// (nothing taken) when it sent `CLAIMS_PER_CONNECTION` in the window; other requests pass.
pub(super) fn admit_claim(
    claims: &mut ConnectionClaims,
    request: &Action,
) -> Result<(), Box<ServerFrame>> {
    let Action::ClaimKeyPackages { id, .. } = request else {
        return Ok(());
    };
    claims.admit(now_ms()).map_err(|retry| {
        let mut frame = refusal(
            *id,
            ErrorCode::RateLimited.as_str(),
            format!(
                "this connection sent {CLAIMS_PER_CONNECTION} claims in the last {} s; \
                 nothing was taken",
                CLAIMS_WINDOW_MS / 1000
            ),
        );
        if let ServerFrame::Error { retry_after_ms, .. } = &mut frame {
            *retry_after_ms = Some(retry);
        }
        Box::new(frame)
    })
}

/// Whose ordinary packages one claim may take: the accounts the claimer is (or shares a
/// conversation with), within each account's share of this node's window.
struct Allowance<'a> {
    limits: &'a AccountClaims,
    tenant: &'a TenantId,
    known: BTreeSet<AccountId>,
    at: i64,
}

impl Ordinary for Allowance<'_> {
    fn take(&self, account: &AccountId) -> bool {
        self.known.contains(account) && self.limits.take(self.tenant, account, self.at)
    }

    fn give_back(&self, account: &AccountId) {
        self.limits.give_back(self.tenant, account);
    }
}

/// One package of every device of `accounts`: ordinary ones where the claimer may take
/// them, else last-resort ones. A claim that fails keeps what it counted against the
/// accounts' windows (fewer ordinary packages for a while, never more).
async fn claim(app: &AppState, id: u64, me: &Identity, accounts: &[AccountId]) -> ServerFrame {
    let store = app.engine.store();
    let others: Vec<AccountId> = accounts
        .iter()
        .filter(|a| **a != me.account)
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut known = BTreeSet::new();
    if !others.is_empty() {
        match store.co_members(&me.tenant, &me.account, &others).await {
            Ok(shared) => known.extend(shared),
            Err(e) => return failed(app, id, &e),
        }
    }
    known.insert(me.account.clone());
    let at = now_ms();
    let allowance = Allowance {
        limits: &app.claims,
        tenant: &me.tenant,
        known,
        at,
    };
    match store
        .claim_key_packages(&me.tenant, accounts, &allowance, at)
        .await
    {
        Ok(claimed) => ServerFrame::KeyPackages {
            id,
            devices: claimed
                .into_iter()
                .map(|c| ClaimedPackage {
                    account: c.account.to_string(),
                    device: c.device.to_string(),
                    package: c.package.map(ByteBuf::from),
                })
                .collect(),
        },
        Err(e) => failed(app, id, &e),
    }
}

fn failed(app: &AppState, id: u64, e: &StoreError) -> ServerFrame {
    let code = if e.is_unavailable() || app.engine.health().is_down() {
        ErrorCode::Unavailable
    } else {
        ErrorCode::Internal
    };
    let mut frame = refusal(id, code.as_str(), format!("{e}; ask again"));
    if let ServerFrame::Error { retry_after_ms, .. } = &mut frame {
        *retry_after_ms = app.engine.retry_after_ms(code);
    }
    frame
}

/// Carries out a directory request: its answer (`None`: not a directory request).
pub(super) async fn answer(app: &AppState, me: &Identity, action: Action) -> Option<ServerFrame> {
    let store = app.engine.store();
    let frame = match action {
        Action::UploadKeyPackages {
            id,
            device,
            packages,
            last_resort,
        } => upload(app, id, &device, packages, last_resort).await,
        Action::ClaimKeyPackages { id, accounts } => claim(app, id, me, &accounts).await,
        Action::ListDevices { id, account } => {
            let listed = async {
                let rows = store
                    .devices_of(&me.tenant, std::slice::from_ref(&account))
                    .await?;
                let removed = store.removed_devices_of(&me.tenant, &account).await?;
                Ok::<_, StoreError>((rows, removed))
            };
            match listed.await {
                Ok((rows, removed)) => ServerFrame::Devices {
                    id,
                    account: account.to_string(),
                    removed: removed.iter().map(ToString::to_string).collect(),
                    devices: rows
                        .into_iter()
                        .map(|d| DeviceEntry {
                            device: d.device.to_string(),
                            signature_key: ByteBuf::from(d.signature_key),
                            registered_at: Some(d.registered_at),
                            last_seen_at: d.last_seen_at,
                            key_packages: Some(d.key_packages),
                        })
                        .collect(),
                },
                Err(e) => failed(app, id, &e),
            }
        }
        Action::RemoveDevice { id, device } => {
            let device = DeviceIdentity::new(me.tenant.clone(), me.account.clone(), device);
            match store.remove_device(&device, now_ms()).await {
                Ok(true) => {
                    let engine = app.engine.clone();
                    let (tenant, account) = (me.tenant.clone(), me.account.clone());
                    tokio::spawn(async move { engine.devices_changed(&tenant, &account).await });
                    ServerFrame::DeviceRemoved { id }
                }
                Ok(false) => refusal(
                    id,
                    ErrorCode::UnknownDevice.as_str(),
                    format!("{device} was never registered"),
                ),
                Err(e) => failed(app, id, &e),
            }
        }
        _ => return None,
    };
    Some(frame)
}

/// Checks every package against the uploading device, then stores them all or nothing.
async fn upload(
    app: &AppState,
    id: u64,
    device: &DeviceIdentity,
    packages: Vec<Vec<u8>>,
    last_resort: Option<Vec<u8>>,
) -> ServerFrame {
    let checked = match check_all(device, packages, last_resort) {
        Ok(checked) => checked,
        Err(refused) => return refused_frame(id, &refused),
    };
    let Some(signature_key) = checked.signature_key else {
        // Nothing to store: the answer is what the device holds.
        return match app.engine.store().key_packages_held(device, now_ms()).await {
            Ok(held) => ServerFrame::KeyPackagesStored { id, held },
            Err(e) => failed(app, id, &e),
        };
    };
    let upload = Upload {
        device,
        signature_key: &signature_key,
        packages: &checked.packages,
        last_resort: checked.last_resort.as_ref(),
        cap: KEY_PACKAGES_HELD_MAX,
        at: now_ms(),
    };
    match app.engine.store().upload_key_packages(&upload).await {
        Ok(Ok(held)) => ServerFrame::KeyPackagesStored { id, held },
        Ok(Err(refused)) => {
            let (code, message) = match refused {
                UploadRefused::SignatureKeyMismatch => (
                    ErrorCode::SignatureKeyMismatch,
                    format!("{device} is registered with another signature key"),
                ),
                UploadRefused::Reused => (
                    ErrorCode::KeyPackageReused,
                    "a key package of this upload was claimed already".to_owned(),
                ),
                UploadRefused::Full => (
                    ErrorCode::KeyPackagesFull,
                    format!("a device holds at most {KEY_PACKAGES_HELD_MAX} key packages"),
                ),
                UploadRefused::Removed => (
                    ErrorCode::DeviceRemoved,
                    format!("{device} was removed from the directory"),
                ),
            };
            refusal(id, code.as_str(), message)
        }
        Err(e) => failed(app, id, &e),
    }
}

struct Checked {
    /// The one signature key every package carries (`None`: no package).
    signature_key: Option<Vec<u8>>,
    packages: Vec<NewKeyPackage>,
    last_resort: Option<NewKeyPackage>,
}

/// Why an upload was refused before the store saw it.
enum Refused {
    Mls(DsRefusal),
    /// Two packages of one upload carry different signature keys.
    MixedKeys,
}

fn refused_frame(id: u64, refused: &Refused) -> ServerFrame {
    match refused {
        Refused::Mls(r) => refusal(id, r.code(), r.to_string()),
        Refused::MixedKeys => refusal(
            id,
            ErrorCode::SignatureKeyMismatch.as_str(),
            "the key packages of one upload carry different signature keys",
        ),
    }
}

fn check_all(
    device: &DeviceIdentity,
    packages: Vec<Vec<u8>>,
    last_resort: Option<Vec<u8>>,
) -> Result<Checked, Refused> {
    let mut out = Checked {
        signature_key: None,
        packages: Vec::with_capacity(packages.len()),
        last_resort: None,
    };
    let mut one = |bytes: Vec<u8>, want_last_resort: bool| -> Result<NewKeyPackage, Refused> {
        let info = check_key_package(&bytes, device).map_err(Refused::Mls)?;
        if info.last_resort != want_last_resort {
            return Err(Refused::Mls(DsRefusal::Invalid(
                if want_last_resort {
                    "the last_resort field holds an ordinary key package"
                } else {
                    "a last-resort key package goes in the last_resort field"
                }
                .into(),
            )));
        }
        match &out.signature_key {
            Some(key) if *key != info.signature_key => return Err(Refused::MixedKeys),
            Some(_) => {}
            None => out.signature_key = Some(info.signature_key),
        }
        Ok(NewKeyPackage {
            reference: info.reference,
            bytes,
        })
    };
    let mut checked = Vec::with_capacity(packages.len());
    for bytes in packages {
        checked.push(one(bytes, false)?);
    }
    let last = last_resort.map(|bytes| one(bytes, true)).transpose()?;
    out.packages = checked;
    out.last_resort = last;
    Ok(out)
}
