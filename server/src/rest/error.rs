//! REST errors: `{"code", "message", "field"?}` with the HTTP status that fits.
//!
//! - 400 `bad_request`: the body is not JSON (or not readable);
//! - 401 `auth_failed` / `token_expired`: missing, invalid or expired token;
//! - 403: a policy denial (the code is the `DenyCode` string), or no read access;
//! - 404 `not_found`: unknown conversation, member or message;
//! - 409 `already_created` / `already_exists`: the thing exists;
//! - 422: validation (`too_long`, `invalid_value`, `unknown_key`, `wrong_type`, `missing`, ...;
//!   a search's query: `query_too_long`, `query_too_many_terms`, `query_empty`);
//! - 500 `internal`: storage read failed;
//! - 503 `unavailable` with `Retry-After`: the storage is unavailable (unreachable or full:
//!   answered at once while the health state says so, see `store::health`), or a write was
//!   not decided (storage failed, shutting down): retry.
//! - 429 `rate_limited` with `Retry-After` and `retry_after_ms`: a write while the account's
//!   work budget is spent (`crate::budget`); nothing of it was looked at.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_core::error::ModelError;
use confab_core::policy::DenyCode;
use confab_core::protocol::ErrorCode;
use confab_core::validate::RejectCode;
use serde::Serialize;

use crate::engine::SubmitOutcome;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
    /// For 429: how long to wait (also `Retry-After`, in whole seconds rounded up).
    pub retry_after_ms: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
            retry_after_ms: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: DenyCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code.as_str(), message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422 with a validation code.
    pub fn invalid(code: &str, field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_field(field)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 429: the account's work budget is spent; come back after `retry_after_ms`.
    pub fn rate_limited(retry_after_ms: u64) -> Self {
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited.as_str(),
            "the account has spent its work budget; nothing of this request was looked at",
        );
        err.retry_after_ms = Some(retry_after_ms);
        err
    }

    /// A change the engine rejected: policy denials are 403 (`already_created` is 409),
    /// everything else (schema and value checks) is 422.
    pub fn rejected(code: RejectCode, reason: String) -> Self {
        let status = match code {
            RejectCode::Policy(DenyCode::AlreadyCreated) => StatusCode::CONFLICT,
            RejectCode::Policy(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, code.as_str(), reason)
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        ApiError::invalid(e.code(), e.field(), e.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        if e.is_unavailable() {
            // The database is down or full: retryable, not a server bug.
            return ApiError::unavailable(format!("storage: {e}"));
        }
        tracing::error!(error = %e, "REST read failed");
        ApiError::internal(format!("storage: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: &self.code,
            message: &self.message,
            field: self.field.as_deref(),
            retry_after_ms: self.retry_after_ms,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                let seconds = crate::store::health::RETRY_AFTER_MS.div_ceil(1000).max(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let ms = self.retry_after_ms.unwrap_or(1000);
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(ms.div_ceil(1000).max(1)),
                );
            }
            _ => {}
        }
        response
    }
}

/// The intent a REST write ran did not apply to the document (`not_applicable`): what that
/// means depends on the endpoint.
pub type NotApplicable = fn(String) -> ApiError;

/// The seq of an acknowledged change, or the error for the answer.
pub fn acked(outcome: SubmitOutcome, not_applicable: NotApplicable) -> Result<u64, ApiError> {
    match outcome {
        SubmitOutcome::Ack { seq, .. } => Ok(seq),
        SubmitOutcome::Reject {
            code: RejectCode::NotApplicable,
            reason,
            ..
        } => Err(not_applicable(reason)),
        SubmitOutcome::Reject { code, reason, .. } => Err(ApiError::rejected(code, reason)),
        SubmitOutcome::Failed { message, .. } => Err(ApiError::unavailable(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_codes_are_403_others_422() {
        for deny in [DenyCode::ServiceOnly, DenyCode::NotCounterparty] {
            let err = ApiError::rejected(RejectCode::Policy(deny), String::new());
            assert_eq!(err.status, StatusCode::FORBIDDEN);
            assert_eq!(err.code, deny.as_str());
        }
        assert_eq!(
            ApiError::rejected(RejectCode::Policy(DenyCode::AlreadyCreated), String::new()).status,
            StatusCode::CONFLICT
        );
        for code in [
            RejectCode::TooLong,
            RejectCode::InvalidValue,
            RejectCode::UnknownKey,
            RejectCode::WrongType,
        ] {
            let err = ApiError::rejected(code, String::new());
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(err.code, code.as_str());
        }
    }

    #[test]
    fn outcomes_map_to_statuses() {
        let ack = SubmitOutcome::Ack {
            hash: [0; 32],
            seq: 7,
        };
        assert_eq!(acked(ack, ApiError::not_found), Ok(7));
        let failed = SubmitOutcome::Failed {
            code: ErrorCode::Internal,
            retry_after_ms: None,
            hash: None,
            message: "db down".into(),
        };
        let err = acked(failed, ApiError::not_found).expect_err("failed");
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        let na = SubmitOutcome::Reject {
            hash: None,
            code: RejectCode::NotApplicable,
            reason: "no such member".into(),
        };
        let err = acked(na, ApiError::not_found).expect_err("rejected");
        assert_eq!(err.status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn an_unavailable_store_is_503_with_retry_after() {
        let err = ApiError::from(crate::store::StoreError::Unavailable("disk full".into()));
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code, "unavailable");
        let response = err.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let err = ApiError::from(crate::store::StoreError::Corrupt("x".into()));
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        // Seconds rounded up.
        let response = ApiError::rate_limited(1_001).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let err = ApiError::from(crate::store::StoreError::Corrupt("x".into()));
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
