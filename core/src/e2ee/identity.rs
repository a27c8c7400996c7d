//! The device an MLS credential names: `<tenant>/<account>/<device>` as the identity of a
//! basic credential. None of the three ids may hold a `/`, so the text parses one way.

use std::fmt;

use openmls::prelude::{BasicCredential, Credential};

use crate::ids::{AccountId, DeviceId, TenantId};

/// A device of an account of a tenant: one leaf of an encrypted conversation's group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceIdentity {
    pub tenant: TenantId,
    pub account: AccountId,
    pub device: DeviceId,
}

impl DeviceIdentity {
    pub fn new(tenant: TenantId, account: AccountId, device: DeviceId) -> Self {
        Self {
            tenant,
            account,
            device,
        }
    }

    /// The credential identity bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Reads identity bytes; `None` for anything that is not three valid ids.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split('/');
        let tenant = TenantId::new(parts.next()?).ok()?;
        let account = AccountId::new(parts.next()?).ok()?;
        let device = DeviceId::new(parts.next()?).ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self::new(tenant, account, device))
    }

    /// The device a credential names, if it is a basic credential of a valid identity.
    pub fn from_credential(credential: &Credential) -> Option<Self> {
        let basic = BasicCredential::try_from(credential.clone()).ok()?;
        Self::from_bytes(basic.identity())
    }

    pub(crate) fn credential(&self) -> Credential {
        BasicCredential::new(self.to_bytes()).into()
    }
}

impl fmt::Display for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.tenant, self.account, self.device)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn identity_bytes_round_trip_and_refuse_anything_else() {
        let id = DeviceIdentity::new(
            TenantId::new("acme").unwrap(),
            AccountId::new("alice@example.com").unwrap(),
            DeviceId::new("phone-1").unwrap(),
        );
        assert_eq!(id.to_bytes(), b"acme/alice@example.com/phone-1");
        assert_eq!(DeviceIdentity::from_bytes(&id.to_bytes()), Some(id.clone()));
        assert_eq!(DeviceIdentity::from_credential(&id.credential()), Some(id));
        for bad in [
            &b""[..],
            b"acme/alice",
            b"acme/alice/phone/extra",
            b"acme//phone",
            b"ac me/alice/phone",
            b"acme/alice/ph.one",
            b"\xff/alice/phone",
        ] {
            assert_eq!(DeviceIdentity::from_bytes(bad), None, "{bad:?}");
        }
    }
}
