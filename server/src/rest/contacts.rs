//! Contacts that find people (import phone contacts, match existing users;
//! docs/CONTACTS.md): a client sends SHA-256 hashes of its address book's normalized
//! phone numbers and emails and learns which accounts of its own tenant hold them; the
//! tenant's identity service (a service account) registers each account's hashes.

use axum::extract::State;
use axum::Json;
use confab_core::ids::AccountId;
use confab_core::policy::DenyCode;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, Params};
use crate::state::AppState;

/// Hashes one match request may carry.
pub const MATCH_MAX: usize = 1000;
/// Hashes one account may hold (its phone numbers and emails).
pub const REGISTER_MAX: usize = 20;

/// Checks hashes: lower-case hex SHA-256 (64 characters), no repeats.
fn hashes(list: Vec<String>, max: usize, field: &str) -> Result<Vec<String>, ApiError> {
    if list.len() > max {
        return Err(ApiError::invalid(
            "out_of_range",
            field,
            format!("at most {max} hashes per request"),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for h in list {
        let ok = h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(ApiError::invalid(
                "invalid_value",
                field,
                "each hash is the lower-case hex SHA-256 of a normalized phone number or email (docs/CONTACTS.md)",
            ));
        }
        out.push(h);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRequest {
    hashes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Match {
    pub hash: String,
    pub account: String,
}

#[derive(Debug, Serialize)]
pub struct MatchAnswer {
    /// The hashes sent that belong to an account of the caller's tenant (never the caller
    /// itself), in hash order.
    pub matches: Vec<Match>,
}

/// `POST /v1/contacts/match` `{hashes}` → `{matches: [{hash, account}]}`.
pub async fn match_contacts(
    State(app): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<MatchRequest>,
) -> Result<Json<MatchAnswer>, ApiError> {
    let hashes = hashes(req.hashes, MATCH_MAX, "hashes")?;
    let found = app
        .engine
        .store()
        .match_identifiers(&caller.tenant, &hashes)
        .await?;
    Ok(Json(MatchAnswer {
        matches: found
            .into_iter()
            .filter(|(_, account)| *account != caller.account)
            .map(|(hash, account)| Match {
                hash,
                account: account.to_string(),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    hashes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RegisterAnswer {
    pub account: String,
    /// Hashes the account holds now.
    pub hashes: usize,
}

/// `PUT /v1/accounts/{account}/identifiers` `{hashes}`: the tenant's identity service (a
/// service account) sets the hashed phone numbers and emails of one account.
pub async fn register(
    State(app): State<AppState>,
    caller: Caller,
    Params(account): Params<String>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Json<RegisterAnswer>, ApiError> {
    if !caller.service {
        return Err(ApiError::forbidden(
            DenyCode::ServiceOnly,
            "identifiers are registered by the tenant's identity service (a service account)",
        ));
    }
    let account = AccountId::new(account)?;
    let hashes = hashes(req.hashes, REGISTER_MAX, "hashes")?;
    app.engine
        .store()
        .register_identifiers(&caller.tenant, &account, &hashes)
        .await?;
    Ok(Json(RegisterAnswer {
        account: account.to_string(),
        hashes: hashes.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_checked() {
        let good = "a".repeat(64);
        assert_eq!(
            hashes(vec![good.clone(), good.clone()], 2, "hashes").expect("ok"),
            vec![good.clone()]
        );
        assert!(hashes(vec![good.clone(); 3], 2, "hashes").is_err());
        assert!(hashes(vec!["A".repeat(64)], 2, "hashes").is_err());
        assert!(hashes(vec!["a".repeat(63)], 2, "hashes").is_err());
        assert!(hashes(vec!["g".repeat(64)], 2, "hashes").is_err());
    }
}
