//! Address-book entries of an account's private document (docs/CONTACTS.md).

use crate::error::{check_chars, ModelError};
use crate::ids::AccountId;
use crate::limits::{CONTACT_NICKNAME_MAX_CHARS, EMAIL_MAX_CHARS};
use crate::model::str_enum::str_enum;

/// Most digits an E.164 number has, country code included (ITU-T E.164 §6).
pub const E164_MAX_DIGITS: usize = 15;

str_enum!(
    /// What a contact is.
    ContactKind, "kind" {
        Person = "person",
        Service = "service",
        Bot = "bot",
    }
);

/// One contact. At least one of `phone`, `email`, `account` says who it is; a linked
/// `account` is the preferred way.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Contact {
    pub kind: ContactKind,
    /// E.164, e.g. `+5215512345678`.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub account: Option<AccountId>,
    /// Custom display name, e.g. "Sarah – Designer".
    pub nickname: Option<String>,
}

impl Contact {
    /// Checks each field and that the contact can be reached somehow.
    pub fn validate(&self) -> Result<(), ModelError> {
        if let Some(phone) = &self.phone {
            validate_e164(phone)?;
        }
        if let Some(email) = &self.email {
            validate_email(email)?;
        }
        if let Some(nickname) = &self.nickname {
            check_chars("nickname", nickname, CONTACT_NICKNAME_MAX_CHARS)?;
        }
        if self.phone.is_none() && self.email.is_none() && self.account.is_none() {
            return Err(ModelError::Missing { field: "contact" });
        }
        Ok(())
    }
}

/// An E.164 phone number: `+`, then 1 to [`E164_MAX_DIGITS`] digits, the first not `0`.
/// No spaces or dashes: clients normalize before storing so numbers compare equal.
pub fn validate_e164(phone: &str) -> Result<(), ModelError> {
    const FIELD: &str = "phone";
    if phone.is_empty() {
        return Err(ModelError::Empty { field: FIELD });
    }
    let bad = |reason: &str| ModelError::InvalidFormat {
        field: FIELD,
        reason: reason.to_owned(),
    };
    let digits = phone
        .strip_prefix('+')
        .ok_or_else(|| bad("must start with +"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("expected + followed by digits only"));
    }
    if digits.starts_with('0') {
        return Err(bad("country codes do not start with 0"));
    }
    if digits.len() > E164_MAX_DIGITS {
        return Err(ModelError::TooLong {
            field: FIELD,
            len: digits.len(),
            max: E164_MAX_DIGITS,
            unit: "digits",
        });
    }
    Ok(())
}

/// A pragmatic e-mail check: one `@`, non-empty local part, a dotted domain without empty
/// labels, no whitespace or control characters, at most [`EMAIL_MAX_CHARS`] characters.
/// Deliverability is not checked here.
pub fn validate_email(email: &str) -> Result<(), ModelError> {
    const FIELD: &str = "email";
    if email.is_empty() {
        return Err(ModelError::Empty { field: FIELD });
    }
    check_chars(FIELD, email, EMAIL_MAX_CHARS)?;
    let bad = |reason: &str| ModelError::InvalidFormat {
        field: FIELD,
        reason: reason.to_owned(),
    };
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("whitespace and control characters are not allowed"));
    }
    let (local, domain) = email
        .split_once('@')
        .ok_or_else(|| bad("expected local@domain"))?;
    if domain.contains('@') {
        return Err(bad("exactly one @ is allowed"));
    }
    if local.is_empty() {
        return Err(bad("the part before @ is empty"));
    }
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return Err(bad("the domain needs dot-separated, non-empty labels"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact() -> Contact {
        Contact {
            kind: ContactKind::Person,
            phone: Some("+5215512345678".into()),
            email: Some("sarah@example.com".into()),
            account: Some(AccountId::new("sarah").expect("id")),
            nickname: Some("Sarah – Designer".into()),
        }
    }

    fn code_field(r: Result<(), ModelError>) -> (&'static str, &'static str) {
        let e = r.expect_err("should be refused");
        (e.code(), e.field())
    }

    #[test]
    fn kinds_parse_and_print() {
        for kind in ContactKind::ALL {
            assert_eq!(ContactKind::parse(kind.as_str()), Ok(*kind));
        }
        assert_eq!(ContactKind::parse("bot"), Ok(ContactKind::Bot));
        assert_eq!(
            code_field(ContactKind::parse("robot").map(drop)),
            ("unknown_value", "kind")
        );
    }

    #[test]
    fn e164_numbers() {
        for ok in ["+1", "+442071838750", "+123456789012345"] {
            assert!(validate_e164(ok).is_ok(), "{ok}");
        }
        assert_eq!(code_field(validate_e164("")), ("empty", "phone"));
        assert_eq!(
            code_field(validate_e164("+1234567890123456")),
            ("too_long", "phone")
        );
        for bad in [
            "5512345678",
            "+",
            "+0123",
            "+52 55 1234",
            "+52-55",
            "++52",
            "+５２",
        ] {
            assert_eq!(
                code_field(validate_e164(bad)),
                ("invalid_format", "phone"),
                "{bad}"
            );
        }
    }

    #[test]
    fn email_addresses() {
        for ok in ["a@b.co", "jane.doe+tag@mail.example.org", "ñandú@correo.mx"] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        assert_eq!(code_field(validate_email("")), ("empty", "email"));
        let long = format!("{}@example.com", "a".repeat(EMAIL_MAX_CHARS));
        assert_eq!(code_field(validate_email(&long)), ("too_long", "email"));
        for bad in [
            "plainaddress",
            "@example.com",
            "a@b@example.com",
            "a@localhost",
            "a@.example.com",
            "a@example..com",
            "a@example.com.",
            "jane doe@example.com",
            "jane@exa\tmple.com",
        ] {
            assert_eq!(
                code_field(validate_email(bad)),
                ("invalid_format", "email"),
                "{bad}"
            );
        }
    }

    #[test]
    fn nickname_is_bounded() {
        let mut c = contact();
        c.nickname = Some("é".repeat(CONTACT_NICKNAME_MAX_CHARS));
        assert!(c.validate().is_ok());
        c.nickname = Some("é".repeat(CONTACT_NICKNAME_MAX_CHARS + 1));
        assert_eq!(code_field(c.validate()), ("too_long", "nickname"));
    }

    #[test]
    fn a_contact_needs_a_way_to_reach_it() {
        assert!(contact().validate().is_ok());
        let none = Contact {
            phone: None,
            email: None,
            account: None,
            ..contact()
        };
        assert_eq!(code_field(none.validate()), ("missing", "contact"));
        for only in [
            Contact {
                phone: Some("+14155550100".into()),
                ..none.clone()
            },
            Contact {
                email: Some("bot@service.io".into()),
                ..none.clone()
            },
            Contact {
                account: Some(AccountId::new("support-bot").expect("id")),
                ..none.clone()
            },
        ] {
            assert!(only.validate().is_ok(), "{only:?}");
        }
    }

    #[test]
    fn validate_checks_phone_and_email() {
        let mut c = contact();
        c.phone = Some("555-1234".into());
        assert_eq!(code_field(c.validate()), ("invalid_format", "phone"));
        let mut c = contact();
        c.email = Some("nope".into());
        assert_eq!(code_field(c.validate()), ("invalid_format", "email"));
    }

    #[test]
    fn contacts_round_trip_through_json() {
        let c = contact();
        let json = serde_json::to_string(&c).expect("serializes");
        assert_eq!(serde_json::from_str::<Contact>(&json).expect("parses"), c);
    }
}
