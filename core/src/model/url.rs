//! URL-typed fields (avatars, theme backgrounds, attachment references) and the schemes
//! they may use. Clients render these as links and image sources: a `javascript:` or
//! `data:` value would be stored cross-site scripting, so only web URLs are accepted.

use crate::error::{check_chars, ModelError};
use crate::limits::URL_MAX_CHARS;

/// Which schemes a URL field accepts. `https:` always; `http:` only where the operator
/// allows it (the server's `--allow-http-urls`); nothing else, ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UrlRule {
    /// `https://host…` only (the default, and what the client engine writes).
    #[default]
    HttpsOnly,
    /// `https://host…` or `http://host…`.
    AllowHttp,
}

impl UrlRule {
    /// The rule for an operator's `allow http` switch.
    pub fn from_allow_http(allow_http: bool) -> Self {
        if allow_http {
            UrlRule::AllowHttp
        } else {
            UrlRule::HttpsOnly
        }
    }
}

/// A URL reference: non-empty, at most [`URL_MAX_CHARS`] characters, no whitespace or
/// control characters (they would let one reference be displayed as another), and an
/// absolute `https://` (or, under [`UrlRule::AllowHttp`], `http://`) URL with a host.
pub fn validate_url_with(field: &'static str, url: &str, rule: UrlRule) -> Result<(), ModelError> {
    if url.is_empty() {
        return Err(ModelError::Empty { field });
    }
    check_chars(field, url, URL_MAX_CHARS)?;
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(ModelError::InvalidFormat {
            field,
            reason: format!("character {c:?} is not allowed in a URL"),
        });
    }
    let rest = strip_scheme(url, "https://").or_else(|| match rule {
        UrlRule::AllowHttp => strip_scheme(url, "http://"),
        UrlRule::HttpsOnly => None,
    });
    let Some(rest) = rest else {
        return Err(ModelError::InvalidFormat {
            field,
            reason: match rule {
                UrlRule::HttpsOnly => "only https:// URLs are allowed".into(),
                UrlRule::AllowHttp => "only https:// and http:// URLs are allowed".into(),
            },
        });
    };
    // `https:///x`, `https://?x`, `https://#x`, `https://\x`: no host (browsers would
    // resolve some of these relative to the page).
    match rest.chars().next() {
        None | Some('/' | '\\' | '?' | '#' | '@' | ':') => Err(ModelError::InvalidFormat {
            field,
            reason: "a URL names its host".into(),
        }),
        Some(_) => Ok(()),
    }
}

/// What follows `scheme` (ASCII case-insensitive: `HTTPS://` is the same scheme).
fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let head = url.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &url[scheme.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<(), ModelError>) -> &'static str {
        r.map_or_else(|e| e.code(), |()| "ok")
    }

    #[test]
    fn only_web_schemes_with_a_host() {
        for rule in [UrlRule::HttpsOnly, UrlRule::AllowHttp] {
            assert_eq!(
                code(validate_url_with("avatar", "https://e.io/a.png", rule)),
                "ok"
            );
            assert_eq!(
                code(validate_url_with("avatar", "HTTPS://E.IO", rule)),
                "ok"
            );
            for bad in [
                "javascript:alert(1)",
                "JavaScript:alert(1)",
                "data:text/html,<script>alert(1)</script>",
                "data:image/png;base64,AAAA",
                "vbscript:msgbox",
                "file:///etc/passwd",
                "ftp://e.io/a",
                "//e.io/a",
                "/relative",
                "e.io/a",
                "https:e.io",
                "https:/e.io",
                "https://",
                "https:///e.io",
                "https://?q",
                "https://#f",
                "https://\\e.io",
                "https://@e.io",
            ] {
                assert_eq!(
                    code(validate_url_with("avatar", bad, rule)),
                    "invalid_format",
                    "{bad}"
                );
            }
        }
        assert_eq!(
            code(validate_url_with(
                "avatar",
                "http://e.io/a",
                UrlRule::HttpsOnly
            )),
            "invalid_format"
        );
        assert_eq!(
            code(validate_url_with(
                "avatar",
                "http://e.io/a",
                UrlRule::AllowHttp
            )),
            "ok"
        );
        assert_eq!(
            code(validate_url_with("avatar", "é", UrlRule::HttpsOnly)),
            "invalid_format"
        );
    }
}
