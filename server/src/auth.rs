//! JWT authentication: HS256 with a shared secret, or RS256/EdDSA with a public key.
//! Claims: `sub` (account), `tenant`, `exp`, `kind` (`user` | `service`), and optionally
//! `device`: a token that names a device is good only for a connection whose hello names
//! the same device (docs/E2EE.md, "Device binding").

use confab_core::ids::{AccountId, TenantId};
use confab_core::protocol::{ErrorCode, Identity};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Token claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    pub exp: i64,
    #[serde(default = "user_kind")]
    pub kind: String,
}

fn user_kind() -> String {
    "user".into()
}

/// What a token is read as: [`Claims`] and the optional `device` claim (kept out of
/// `Claims`, which mints tokens for accounts, not devices).
#[derive(Debug, Deserialize)]
struct Read {
    sub: String,
    tenant: String,
    exp: i64,
    #[serde(default = "user_kind")]
    kind: String,
    #[serde(default)]
    device: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("invalid key: {0}")]
    Key(String),
    #[error("the token is for device {token:?}, the hello names {hello:?}")]
    WrongDevice { token: String, hello: String },
}

impl AuthError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Expired => ErrorCode::TokenExpired,
            _ => ErrorCode::AuthFailed,
        }
    }
}

/// How tokens are checked (and, for HS256 in demo mode, minted).
#[derive(Clone)]
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    algorithm: Algorithm,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// HS256 with a shared secret; can also mint tokens (demo mode, tests).
    pub fn hs256(secret: &[u8]) -> Self {
        Authenticator {
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
            algorithm: Algorithm::HS256,
        }
    }

    /// RS256 or EdDSA public key in PEM: verification only.
    pub fn public_key_pem(pem: &[u8]) -> Result<Self, AuthError> {
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            return Ok(Authenticator {
                decoding: key,
                encoding: None,
                algorithm: Algorithm::EdDSA,
            });
        }
        let key = DecodingKey::from_rsa_pem(pem).map_err(|e| AuthError::Key(e.to_string()))?;
        Ok(Authenticator {
            decoding: key,
            encoding: None,
            algorithm: Algorithm::RS256,
        })
    }

    /// Verifies a token against the current time (seconds since the epoch).
    pub fn verify(&self, token: &str, now_s: i64) -> Result<Identity, AuthError> {
        self.read(token, now_s).map(|(identity, _)| identity)
    }

    /// Verifies the token of a connection whose hello names `device`: a token with a
    /// `device` claim is good only for that device.
    pub fn verify_connection(
        &self,
        token: &str,
        now_s: i64,
        device: &str,
    ) -> Result<Identity, AuthError> {
        let (identity, claimed) = self.read(token, now_s)?;
        match claimed {
            Some(claimed) if claimed != device => Err(AuthError::WrongDevice {
                token: claimed,
                hello: device.to_owned(),
            }),
            _ => Ok(identity),
        }
    }

    fn read(&self, token: &str, now_s: i64) -> Result<(Identity, Option<String>), AuthError> {
        let mut validation = Validation::new(self.algorithm);
        // We check expiry ourselves against the server clock we were given.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["sub", "exp"]);
        let data = decode::<Read>(token, &self.decoding, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if claims.exp <= now_s {
            return Err(AuthError::Expired);
        }
        let account = AccountId::new(claims.sub).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let tenant = TenantId::new(claims.tenant).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let service = match claims.kind.as_str() {
            "user" => false,
            "service" => true,
            other => return Err(AuthError::Invalid(format!("unknown kind {other:?}"))),
        };
        let identity = Identity {
            account,
            tenant,
            service,
        };
        Ok((identity, claims.device))
    }

    /// Mints a token (HS256 only).
    pub fn mint(&self, claims: &Claims) -> Result<String, AuthError> {
        let key = self
            .encoding
            .as_ref()
            .ok_or_else(|| AuthError::Key("this key only verifies".into()))?;
        encode(&Header::new(self.algorithm), claims, key)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64, kind: &str) -> Claims {
        Claims {
            sub: "alice".into(),
            tenant: "acme".into(),
            exp,
            kind: kind.into(),
        }
    }

    #[test]
    fn hs256_round_trip_expiry_and_tampering() {
        let auth = Authenticator::hs256(b"secret");
        let token = auth.mint(&claims(1000, "user")).unwrap();
        let id = auth.verify(&token, 999).unwrap();
        assert_eq!(
            (id.account.as_str(), id.tenant.as_str(), id.service),
            ("alice", "acme", false)
        );
        assert!(matches!(auth.verify(&token, 1000), Err(AuthError::Expired)));
        let other = Authenticator::hs256(b"other");
        assert!(matches!(
            other.verify(&token, 1),
            Err(AuthError::Invalid(_))
        ));
        let service = auth.mint(&claims(1000, "service")).unwrap();
        assert!(auth.verify(&service, 1).unwrap().service);
        let odd = auth.mint(&claims(1000, "root")).unwrap();
        assert!(auth.verify(&odd, 1).is_err());
    }

    #[derive(Serialize)]
    struct WithDevice<'a> {
        sub: &'a str,
        tenant: &'a str,
        exp: i64,
        device: &'a str,
    }

    #[test]
    fn a_device_claim_binds_the_connection_to_that_device() {
        let auth = Authenticator::hs256(b"secret");
        let key = EncodingKey::from_secret(b"secret");
        let bound = encode(
            &Header::new(Algorithm::HS256),
            &WithDevice {
                sub: "alice",
                tenant: "acme",
                exp: 1000,
                device: "phone",
            },
            &key,
        )
        .unwrap();
        assert_eq!(
            auth.verify_connection(&bound, 1, "phone")
                .unwrap()
                .account
                .as_str(),
            "alice"
        );
        let err = auth.verify_connection(&bound, 1, "laptop").unwrap_err();
        assert!(matches!(err, AuthError::WrongDevice { .. }), "{err}");
        assert_eq!(err.code(), ErrorCode::AuthFailed);
        // Without the claim, any device the hello names.
        let open = auth.mint(&claims(1000, "user")).unwrap();
        assert!(auth.verify_connection(&open, 1, "laptop").is_ok());
    }
}
