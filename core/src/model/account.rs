//! Accounts and their public profile.

use crate::error::{check_chars, ModelError};
use crate::limits::{BIO_MAX_CHARS, DISPLAY_NAME_MAX_CHARS, STATUS_MAX_CHARS};
use crate::model::str_enum::str_enum;
pub use crate::model::url::{validate_url_with, UrlRule};

str_enum!(
    /// What kind of communication identity an account is.
    AccountKind, "kind" {
        /// A person's own account.
        Personal = "personal",
        /// An automated participant, e.g. a support bot.
        Bot = "bot",
        /// An official brand or service account.
        Service = "service",
        /// An organization-wide account, e.g. for announcements.
        Organization = "organization",
    }
);

/// An account's public profile, as stored in its profile document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub kind: AccountKind,
    pub display_name: String,
    /// A reference (URL) to the avatar image, never the bytes.
    pub avatar: Option<String>,
    /// Short public description (at most 160 characters).
    pub bio: Option<String>,
    /// Current emoji/text status, e.g. "🍵 Working".
    pub status: Option<String>,
}

impl Profile {
    /// Checks every field's limit and format (the avatar `https:` only).
    pub fn validate(&self) -> Result<(), ModelError> {
        self.validate_with(UrlRule::HttpsOnly)
    }

    /// Checks every field's limit and format, the avatar under `urls`.
    pub fn validate_with(&self, urls: UrlRule) -> Result<(), ModelError> {
        validate_display_name(&self.display_name)?;
        if let Some(avatar) = &self.avatar {
            validate_url_with("avatar", avatar, urls)?;
        }
        if let Some(bio) = &self.bio {
            validate_bio(bio)?;
        }
        if let Some(status) = &self.status {
            validate_status(status)?;
        }
        Ok(())
    }
}

fn refuse_control(field: &'static str, value: &str) -> Result<(), ModelError> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(ModelError::InvalidFormat {
            field,
            reason: format!("control character {c:?} is not allowed"),
        }),
        None => Ok(()),
    }
}

/// A display name: not blank, single line, at most [`DISPLAY_NAME_MAX_CHARS`] characters.
pub fn validate_display_name(name: &str) -> Result<(), ModelError> {
    if name.trim().is_empty() {
        return Err(ModelError::Empty {
            field: "display_name",
        });
    }
    check_chars("display_name", name, DISPLAY_NAME_MAX_CHARS)?;
    refuse_control("display_name", name)
}

/// A bio: at most [`BIO_MAX_CHARS`] characters (not bytes: emoji count as one each).
/// Empty clears it; line breaks are allowed.
pub fn validate_bio(bio: &str) -> Result<(), ModelError> {
    check_chars("bio", bio, BIO_MAX_CHARS)
}

/// A status: at most [`STATUS_MAX_CHARS`] characters on one line (it is shown inline).
/// Empty clears it.
pub fn validate_status(status: &str) -> Result<(), ModelError> {
    check_chars("status", status, STATUS_MAX_CHARS)?;
    refuse_control("status", status)
}

/// A URL reference under the default rule (`https:` only); see
/// [`crate::model::url::validate_url_with`].
pub fn validate_url(field: &'static str, url: &str) -> Result<(), ModelError> {
    validate_url_with(field, url, UrlRule::HttpsOnly)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::URL_MAX_CHARS;

    fn profile() -> Profile {
        Profile {
            kind: AccountKind::Personal,
            display_name: "Jane Doe".into(),
            avatar: Some("https://cdn.example.com/a/jane.png".into()),
            bio: Some("Designer ✏️".into()),
            status: Some("🍵 Working".into()),
        }
    }

    fn code_field(r: Result<(), ModelError>) -> (&'static str, &'static str) {
        let e = r.expect_err("should be refused");
        (e.code(), e.field())
    }

    #[test]
    fn kinds_parse_and_print() {
        for kind in AccountKind::ALL {
            assert_eq!(AccountKind::parse(kind.as_str()), Ok(*kind));
        }
        assert_eq!(
            AccountKind::parse("organization"),
            Ok(AccountKind::Organization)
        );
        assert_eq!(
            AccountKind::parse("robot").expect_err("refused").code(),
            "unknown_value"
        );
        assert_eq!(
            AccountKind::parse("Bot").expect_err("refused").field(),
            "kind"
        );
        let json = serde_json::to_string(&AccountKind::Service).expect("serializes");
        assert_eq!(json, "\"service\"");
        assert!(serde_json::from_str::<AccountKind>("\"team\"").is_err());
    }

    #[test]
    fn a_full_profile_is_valid() {
        assert!(profile().validate().is_ok());
        let minimal = Profile {
            avatar: None,
            bio: None,
            status: None,
            ..profile()
        };
        assert!(minimal.validate().is_ok());
    }

    #[test]
    fn display_name_is_required_and_bounded() {
        assert!(validate_display_name(&"é".repeat(DISPLAY_NAME_MAX_CHARS)).is_ok());
        let long = "x".repeat(DISPLAY_NAME_MAX_CHARS + 1);
        assert_eq!(
            code_field(validate_display_name(&long)),
            ("too_long", "display_name")
        );
        assert_eq!(
            code_field(validate_display_name("  ")),
            ("empty", "display_name")
        );
        let two_lines = "Jane\nDoe";
        assert_eq!(
            code_field(validate_display_name(two_lines)).0,
            "invalid_format"
        );
        let mut p = profile();
        p.display_name = String::new();
        assert_eq!(code_field(p.validate()), ("empty", "display_name"));
    }

    #[test]
    fn bio_counts_characters_not_bytes() {
        let emoji = "😀".repeat(BIO_MAX_CHARS);
        assert!(emoji.len() > BIO_MAX_CHARS);
        assert!(validate_bio(&emoji).is_ok());
        assert!(validate_bio("").is_ok());
        assert!(validate_bio("line one\nline two").is_ok());
        let too_long = "😀".repeat(BIO_MAX_CHARS + 1);
        let err = validate_bio(&too_long).expect_err("161 chars");
        assert_eq!(
            err,
            ModelError::TooLong {
                field: "bio",
                len: BIO_MAX_CHARS + 1,
                max: BIO_MAX_CHARS,
                unit: "characters"
            }
        );
        let mut p = profile();
        p.bio = Some(too_long);
        assert_eq!(code_field(p.validate()), ("too_long", "bio"));
    }

    #[test]
    fn status_is_one_bounded_line() {
        assert!(validate_status("🚀").is_ok());
        assert!(validate_status(&"🍵".repeat(STATUS_MAX_CHARS)).is_ok());
        let long = "🍵".repeat(STATUS_MAX_CHARS + 1);
        assert_eq!(code_field(validate_status(&long)), ("too_long", "status"));
        assert_eq!(
            code_field(validate_status("a\nb")),
            ("invalid_format", "status")
        );
        let mut p = profile();
        p.status = Some(long);
        assert_eq!(code_field(p.validate()), ("too_long", "status"));
    }

    #[test]
    fn urls_are_non_empty_bounded_and_unspaced() {
        assert!(validate_url("avatar", "https://example.com/a.png?size=64").is_ok());
        let max = format!("https://e.io/{}", "a".repeat(URL_MAX_CHARS - 13));
        assert!(validate_url("avatar", &max).is_ok());
        let long = format!("{max}a");
        assert_eq!(
            code_field(validate_url("avatar", &long)),
            ("too_long", "avatar")
        );
        assert_eq!(code_field(validate_url("avatar", "")), ("empty", "avatar"));
        for bad in [
            "https://e.io/a b",
            "https://e.io/\u{7}",
            "https://e.io/\u{a0}x",
        ] {
            assert_eq!(code_field(validate_url("avatar", bad)).0, "invalid_format");
        }
        let mut p = profile();
        p.avatar = Some("https://e.io/a\tb".into());
        assert_eq!(code_field(p.validate()), ("invalid_format", "avatar"));
    }

    #[test]
    fn profiles_round_trip_through_json() {
        let p = profile();
        let json = serde_json::to_string(&p).expect("serializes");
        assert!(json.contains("\"kind\":\"personal\""));
        assert_eq!(serde_json::from_str::<Profile>(&json).expect("parses"), p);
    }
}
