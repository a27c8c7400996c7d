//! Joining (docs/POLICY.md, "Joining"): channel scope, invite links and their limits.
//!
//! A link is checked by the server alone (core cannot verify a token offline), but what makes
//! one usable is decided here, so the server, its tests and clients that show a link's state
//! agree. Who may create one, ask to join, approve or decline is in `policy::joining`.

use super::str_enum::str_enum;
use crate::error::ModelError;

str_enum!(
    /// Who can find a group or channel through discovery: `private` is listed
    /// nowhere; `organization` is listed to the tenant's users; `public` is listed to them
    /// and to service accounts (which may show it outside, e.g. a public directory page).
    Scope, "scope" { Private = "private", Organization = "organization", Public = "public" }
);

str_enum!(
    /// How an account that is not a member gets into a group or channel
    /// (`policy::joining::join_route`), shown with each discovered conversation so a client
    /// offers the right action: join at once, ask to join, or neither (an invitation or a
    /// link is needed).
    JoinRoute, "join" { Open = "open", Request = "request", Invite = "invite" }
);

/// The longest an invite link lives: 30 days.
pub const INVITE_MAX_TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// The most uses a link may be given.
pub const INVITE_MAX_USES: u32 = 100_000;
/// Random bytes in an invite token (base64url without padding: 43 characters).
pub const INVITE_TOKEN_BYTES: usize = 32;
/// At most this many live links per conversation.
pub const INVITES_PER_CONV_MAX: usize = 100;

/// An invite link as stored (the token itself is never stored: only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Invite {
    pub id: String,
    pub created_by: crate::ids::AccountId,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub revoked_at: Option<i64>,
}

/// Why a link cannot be used. Every refusal changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum InviteRefusal {
    /// No link has this token (or it belongs to another tenant): never which one.
    #[error("no such invite link")]
    NotFound,
    #[error("the invite link expired")]
    Expired,
    #[error("the invite link was revoked")]
    Revoked,
    #[error("the invite link was used as often as it allows")]
    UsedUp,
}

impl InviteRefusal {
    /// Stable codes (REST error bodies, docs/POLICY.md).
    pub fn code(self) -> &'static str {
        match self {
            InviteRefusal::NotFound => "invite_not_found",
            InviteRefusal::Expired => "invite_expired",
            InviteRefusal::Revoked => "invite_revoked",
            InviteRefusal::UsedUp => "invite_used_up",
        }
    }
}

impl Invite {
    /// Whether the link may be used at `now_ms` (server time). Revocation wins over expiry,
    /// so a revoked link says so however old it is.
    pub fn check_use(&self, now_ms: i64) -> Result<(), InviteRefusal> {
        if self.revoked_at.is_some() {
            return Err(InviteRefusal::Revoked);
        }
        if now_ms >= self.expires_at {
            return Err(InviteRefusal::Expired);
        }
        if self.max_uses.is_some_and(|max| self.uses >= max) {
            return Err(InviteRefusal::UsedUp);
        }
        Ok(())
    }

    /// Live: neither revoked, expired nor used up.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.check_use(now_ms).is_ok()
    }
}

/// A new link's lifetime and uses, checked: `expires_in_ms` in 1 s ..= 30 days, `max_uses`
/// in 1 ..= 100,000. Returns the expiry time.
pub fn check_new_invite(
    now_ms: i64,
    expires_in_ms: i64,
    max_uses: Option<u32>,
) -> Result<i64, ModelError> {
    if !(1000..=INVITE_MAX_TTL_MS).contains(&expires_in_ms) {
        return Err(ModelError::OutOfRange {
            field: "expires_in",
            reason: format!("{expires_in_ms} ms is not within 1 s ..= 30 days"),
        });
    }
    if let Some(n) = max_uses {
        if !(1..=INVITE_MAX_USES).contains(&n) {
            return Err(ModelError::OutOfRange {
                field: "max_uses",
                reason: format!("{n} is not within 1 ..= {INVITE_MAX_USES}"),
            });
        }
    }
    Ok(now_ms.saturating_add(expires_in_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AccountId;

    fn invite() -> Invite {
        Invite {
            id: "i1".into(),
            created_by: AccountId::new("alice").expect("id"),
            created_at: 0,
            expires_at: 10_000,
            max_uses: Some(2),
            uses: 0,
            revoked_at: None,
        }
    }

    #[test]
    fn a_link_is_usable_until_expiry_uses_or_revocation() {
        let mut i = invite();
        assert_eq!(i.check_use(9_999), Ok(()));
        assert_eq!(i.check_use(10_000), Err(InviteRefusal::Expired));
        i.uses = 2;
        assert_eq!(i.check_use(0), Err(InviteRefusal::UsedUp));
        i.revoked_at = Some(5);
        assert_eq!(i.check_use(20_000), Err(InviteRefusal::Revoked));
        assert_eq!(InviteRefusal::Revoked.code(), "invite_revoked");
    }

    #[test]
    fn new_links_are_bounded() {
        assert_eq!(check_new_invite(5, 1000, None), Ok(1005));
        assert!(check_new_invite(0, 999, None).is_err());
        assert!(check_new_invite(0, INVITE_MAX_TTL_MS + 1, None).is_err());
        assert!(check_new_invite(0, 1000, Some(0)).is_err());
        assert!(check_new_invite(0, 1000, Some(INVITE_MAX_USES)).is_ok());
        assert_eq!(Scope::parse("public"), Ok(Scope::Public));
        assert!(Scope::parse("secret").is_err());
    }
}
