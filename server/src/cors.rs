//! Which browser origins may call the REST API (CORS; docs/OPERATIONS.md, "Browsers on
//! other origins"). A web app served from its own origin calls the server's REST routes
//! (uploads, the notification feed) with a bearer token; without CORS the browser refuses
//! it. Tokens travel in `Authorization`, never in cookies, so credentials are not allowed
//! and `*` is safe to use. The WebSocket needs none of this (browsers do not apply CORS to
//! it; the token is checked in `hello`).

use std::time::Duration;

use axum::http::{header, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The origins allowed (`--cors-origins`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers: only pages of the server's own origin (the demo) call it.
    #[default]
    SameOrigin,
    /// Any origin.
    Any,
    /// These origins, exactly (`scheme://host[:port]`).
    List(Vec<HeaderValue>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CorsError {
    #[error("--cors-origins: {0:?} is not an origin (scheme://host[:port], no path) or *")]
    NotAnOrigin(String),
}

impl CorsOrigins {
    /// `[]` is the same origin only, `["*"]` any, otherwise each an origin.
    pub fn parse(list: &[String]) -> Result<CorsOrigins, CorsError> {
        let list: Vec<&str> = list
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if list.is_empty() {
            return Ok(CorsOrigins::SameOrigin);
        }
        if list.contains(&"*") {
            return Ok(CorsOrigins::Any);
        }
        list.into_iter()
            .map(|origin| {
                let bad = || CorsError::NotAnOrigin(origin.to_owned());
                let url = url::Url::parse(origin).map_err(|_| bad())?;
                let exact = url.origin().ascii_serialization();
                if !matches!(url.scheme(), "http" | "https") || exact != origin {
                    return Err(bad());
                }
                HeaderValue::from_str(origin).map_err(|_| bad())
            })
            .collect::<Result<Vec<_>, _>>()
            .map(CorsOrigins::List)
    }

    /// The layer for the REST routes; `None` for the same origin only.
    pub fn layer(&self) -> Option<CorsLayer> {
        let origin = match self {
            CorsOrigins::SameOrigin => return None,
            CorsOrigins::Any => AllowOrigin::any(),
            CorsOrigins::List(list) => AllowOrigin::list(list.clone()),
        };
        Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER])
                .max_age(Duration::from_secs(600)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn origins_parse_or_are_refused() {
        assert_eq!(CorsOrigins::parse(&[]), Ok(CorsOrigins::SameOrigin));
        assert_eq!(
            CorsOrigins::parse(&list(&["https://a.example", "*"])),
            Ok(CorsOrigins::Any)
        );
        assert_eq!(
            CorsOrigins::parse(&list(&["https://app.example.com", "http://localhost:5173"])),
            Ok(CorsOrigins::List(vec![
                HeaderValue::from_static("https://app.example.com"),
                HeaderValue::from_static("http://localhost:5173"),
            ]))
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://files.example.com",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                CorsOrigins::parse(&list(&[bad])),
                Err(CorsError::NotAnOrigin(bad.into())),
                "{bad}"
            );
        }
    }
}
