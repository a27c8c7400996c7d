//! Extractors whose rejections are JSON `ApiError`s: the caller (bearer token), the JSON
//! body, path parameters and the paging query.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, RawQuery, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use confab_core::ids::{AccountId, TenantId};
use confab_core::policy::Author;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::clock::now_ms;
use crate::state::AppState;

/// Who calls: from a verified token, never from the request body.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub account: AccountId,
    pub service: bool,
}

impl Caller {
    pub fn author(&self) -> Author {
        Author {
            account: self.account.clone(),
            service: self.service,
            // REST has no device: it never commits to an MLS group.
            device: None,
        }
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let missing = || ApiError::unauthorized("auth_failed", "send Authorization: Bearer <token>");
    let value = parts.headers.get(AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    match value.trim().split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(missing()),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        match app.auth.verify(token, now_ms().div_euclid(1000)) {
            Ok(id) => Ok(Caller {
                tenant: id.tenant,
                account: id.account,
                service: id.service,
            }),
            Err(e) => Err(ApiError::unauthorized(e.code().as_str(), e.to_string())),
        }
    }
}

/// A JSON body, whatever the content type says. Unreadable JSON is 400 `bad_request`; JSON
/// of the wrong shape is 422 (`unknown_key`, `wrong_type`, `missing`, `invalid_value`).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "payload_too_large"
            } else {
                "bad_request"
            };
            ApiError::new(e.status(), code, e.body_text())
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| json_error(e, &bytes))
    }
}

pub(super) fn json_error(e: serde_json::Error, body: &[u8]) -> ApiError {
    use serde_json::error::Category;
    let message = e.to_string();
    // serde_json reports an enum given as a number as a syntax error ("expected value");
    // JSON that parses is a shape error, whatever serde_json calls it.
    let parses = || serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
    match e.classify() {
        Category::Syntax if parses() => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "wrong_type", message)
        }
        Category::Data => {
            let code = if message.starts_with("unknown field") {
                "unknown_key"
            } else if message.starts_with("invalid type") {
                "wrong_type"
            } else if message.starts_with("missing field") {
                "missing"
            } else {
                "invalid_value"
            };
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
        }
        Category::Io | Category::Syntax | Category::Eof => {
            ApiError::bad_request(format!("the body is not valid JSON: {message}"))
        }
    }
}

/// Path parameters.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Params(value)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// `?before=<pos>&limit=<1..200>` of a message page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    pub before: Option<i64>,
    pub limit: usize,
}

pub const PAGE_DEFAULT: usize = 50;
pub const PAGE_MAX: usize = 200;

impl PageQuery {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut out = PageQuery {
            before: None,
            limit: PAGE_DEFAULT,
        };
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "before" => {
                    let before = value.parse::<i64>().map_err(|_| {
                        ApiError::invalid(
                            "invalid_value",
                            "before",
                            "before is a position (integer)",
                        )
                    })?;
                    out.before = Some(before);
                }
                "limit" => {
                    let limit = value.parse::<usize>().map_err(|_| {
                        ApiError::invalid("invalid_value", "limit", "limit is an integer")
                    })?;
                    if !(1..=PAGE_MAX).contains(&limit) {
                        return Err(ApiError::invalid(
                            "out_of_range",
                            "limit",
                            format!("limit is 1..={PAGE_MAX}"),
                        ));
                    }
                    out.limit = limit;
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let RawQuery(query) = RawQuery::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("unreadable query"))?;
        PageQuery::parse(query.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_query_defaults_and_bounds() {
        assert_eq!(
            PageQuery::parse(None),
            Ok(PageQuery {
                before: None,
                limit: PAGE_DEFAULT
            })
        );
        assert_eq!(
            PageQuery::parse(Some("before=12&limit=3&x=1")),
            Ok(PageQuery {
                before: Some(12),
                limit: 3
            })
        );
        for bad in ["limit=0", "limit=201", "limit=x", "before=x"] {
            let err = PageQuery::parse(Some(bad)).expect_err(bad);
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
    }

    #[test]
    fn json_errors_are_classified() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: u32,
            role: Option<confab_core::model::conversation::Role>,
        }
        let code = |text: &str| {
            let e = serde_json::from_str::<T>(text).expect_err(text);
            let e = json_error(e, text.as_bytes());
            (e.status.as_u16(), e.code)
        };
        assert_eq!(code("{"), (400, "bad_request".into()));
        assert_eq!(code("{\"a\":1,\"b\":2}"), (422, "unknown_key".into()));
        assert_eq!(code("{\"a\":\"x\"}"), (422, "wrong_type".into()));
        assert_eq!(code("{}"), (422, "missing".into()));
        // serde_json calls a number where an enum goes a syntax error.
        assert_eq!(code("{\"a\":1,\"role\":7}"), (422, "wrong_type".into()));
    }
}
