//! openmls's crypto provider for [`CIPHERSUITE`](super::CIPHERSUITE) alone: X25519 (HPKE
//! through `hpke-rs`), AES-128-GCM, SHA-256 (hash, HMAC, HKDF) and Ed25519, with the same
//! RustCrypto crates as `openmls_rust_crypto`.
//!
//! `openmls_rust_crypto`'s provider matches on every algorithm it knows, so every one of them
//! is linked wherever it is used: P-256, P-384, secp256k1, X-Wing and ML-KEM, ChaCha20-Poly1305,
//! SHA-384 and SHA-512. The wasm package uses none of them (docs/BENCHMARKS.md, "wasm").
//! Every other algorithm is refused with the error openmls expects for it; the group
//! configuration never asks for one, and the Delivery Service refuses key packages and groups
//! of another ciphersuite. `tests` checks every operation against `openmls_rust_crypto`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Mutex, OnceLock};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes128Gcm;
use ed25519_dalek::Signer as _;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use hpke_rs::{Hpke, HpkeError, Mode};
use hpke_rs_crypto::error::Error as HpkeCryptoError;
use hpke_rs_crypto::types::{AeadAlgorithm, KdfAlgorithm, KemAlgorithm};
use hpke_rs_crypto::{HpkeCrypto, HpkeTestRng, TryCryptoRng, TryRng};
use openmls::prelude::tls_codec::SecretVLBytes;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::storage::{self, StorageProvider, CURRENT_VERSION};
use openmls_traits::types::{
    AeadType, Ciphersuite, CryptoError, ExporterSecret, HashType, HpkeAeadType, HpkeCiphertext,
    HpkeConfig, HpkeKdfType, HpkeKemType, HpkeKeyPair, KemOutput, SignatureScheme,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret as X25519Secret};
use zeroize::Zeroize as _;

/// The length of an X25519 key.
const KEY_LEN: usize = 32;
/// The length of an AES-GCM nonce, and of its tag.
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// How many members' parsed signature keys a device keeps: a point decompression is about a
/// tenth of a verification, and every message and commit is verified. The cache starts over
/// when full, so its memory stays bounded whatever the groups hold.
const VERIFYING_KEYS_KEPT: usize = 4096;

/// The provider's crypto and randomness: a ChaCha20 generator seeded from the platform.
#[derive(Debug)]
pub struct Crypto {
    rng: Mutex<ChaCha20Rng>,
    verifying_keys: Mutex<HashMap<[u8; KEY_LEN], ed25519_dalek::VerifyingKey>>,
}

impl Default for Crypto {
    fn default() -> Self {
        Self {
            rng: Mutex::new(ChaCha20Rng::from_entropy()),
            verifying_keys: Mutex::new(HashMap::new()),
        }
    }
}

impl Crypto {
    /// `pk` as a verifying key, parsed once per member (see [`VERIFYING_KEYS_KEPT`]).
    fn verifying_key(&self, pk: &[u8]) -> Result<ed25519_dalek::VerifyingKey, CryptoError> {
        let bytes: [u8; KEY_LEN] = pk.try_into().map_err(|_| CryptoError::CryptoLibraryError)?;
        let mut kept = self
            .verifying_keys
            .lock()
            .map_err(|_| CryptoError::CryptoLibraryError)?;
        if let Some(key) = kept.get(&bytes) {
            return Ok(*key);
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| CryptoError::CryptoLibraryError)?;
        if kept.len() >= VERIFYING_KEYS_KEPT {
            kept.clear();
        }
        kept.insert(bytes, key);
        Ok(key)
    }
}

fn sha256_only(hash: HashType) -> Result<(), CryptoError> {
    match hash {
        HashType::Sha2_256 => Ok(()),
        HashType::Sha2_384 | HashType::Sha2_512 => Err(CryptoError::UnsupportedHashAlgorithm),
    }
}

fn aes128_gcm(alg: AeadType, key: &[u8], nonce: &[u8]) -> Result<Aes128Gcm, CryptoError> {
    if alg != AeadType::Aes128Gcm {
        return Err(CryptoError::UnsupportedAeadAlgorithm);
    }
    if nonce.len() != NONCE_LEN {
        return Err(CryptoError::InvalidLength);
    }
    <Aes128Gcm as KeyInit>::new_from_slice(key).map_err(|_| CryptoError::CryptoLibraryError)
}

/// The HPKE of the ciphersuite (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM), or
/// `UnsupportedCiphersuite` for another configuration.
fn hpke(config: HpkeConfig) -> Result<Hpke<X25519Hpke>, CryptoError> {
    let HpkeConfig(HpkeKemType::DhKem25519, HpkeKdfType::HkdfSha256, aead) = config else {
        return Err(CryptoError::UnsupportedCiphersuite);
    };
    let aead = match aead {
        HpkeAeadType::AesGcm128 => AeadAlgorithm::Aes128Gcm,
        HpkeAeadType::Export => AeadAlgorithm::HpkeExport,
        HpkeAeadType::AesGcm256 | HpkeAeadType::ChaCha20Poly1305 => {
            return Err(CryptoError::UnsupportedCiphersuite)
        }
    };
    Ok(Hpke::new(
        Mode::Base,
        KemAlgorithm::DhKem25519,
        KdfAlgorithm::HkdfSha256,
        aead,
    ))
}

impl OpenMlsCrypto for Crypto {
    fn supports(&self, ciphersuite: Ciphersuite) -> Result<(), CryptoError> {
        if ciphersuite == super::CIPHERSUITE {
            Ok(())
        } else {
            Err(CryptoError::UnsupportedCiphersuite)
        }
    }

    fn supported_ciphersuites(&self) -> Vec<Ciphersuite> {
        vec![super::CIPHERSUITE]
    }

    fn hkdf_extract(
        &self,
        hash: HashType,
        salt: &[u8],
        ikm: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        sha256_only(hash)?;
        Ok(Hkdf::<Sha256>::extract(Some(salt), ikm).0.as_slice().into())
    }

    fn hmac(
        &self,
        hash: HashType,
        key: &[u8],
        message: &[u8],
    ) -> Result<SecretVLBytes, CryptoError> {
        sha256_only(hash)?;
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| CryptoError::InvalidLength)?;
        mac.update(message);
        Ok(mac.finalize().into_bytes().as_slice().into())
    }

    fn hkdf_expand(
        &self,
        hash: HashType,
        prk: &[u8],
        info: &[u8],
        okm_len: usize,
    ) -> Result<SecretVLBytes, CryptoError> {
        sha256_only(hash)?;
        let hkdf =
            Hkdf::<Sha256>::from_prk(prk).map_err(|_| CryptoError::HkdfOutputLengthInvalid)?;
        let mut okm = vec![0u8; okm_len];
        hkdf.expand(info, &mut okm)
            .map_err(|_| CryptoError::HkdfOutputLengthInvalid)?;
        Ok(okm.into())
    }

    fn hash(&self, hash: HashType, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        sha256_only(hash)?;
        Ok(Sha256::digest(data).to_vec())
    }

    fn aead_encrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        data: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        aes128_gcm(alg, key, nonce)?
            .encrypt(nonce.into(), Payload { msg: data, aad })
            .map_err(|_| CryptoError::CryptoLibraryError)
    }

    fn aead_decrypt(
        &self,
        alg: AeadType,
        key: &[u8],
        ct_tag: &[u8],
        nonce: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        aes128_gcm(alg, key, nonce)?
            .decrypt(nonce.into(), Payload { msg: ct_tag, aad })
            .map_err(|_| CryptoError::AeadDecryptionError)
    }

    fn signature_key_gen(&self, alg: SignatureScheme) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
        if alg != SignatureScheme::ED25519 {
            return Err(CryptoError::UnsupportedSignatureScheme);
        }
        let mut rng = self
            .rng
            .lock()
            .map_err(|_| CryptoError::InsufficientRandomness)?;
        let key = ed25519_dalek::SigningKey::generate(&mut *rng);
        Ok((
            key.to_bytes().to_vec(),
            key.verifying_key().to_bytes().to_vec(),
        ))
    }

    fn verify_signature(
        &self,
        alg: SignatureScheme,
        data: &[u8],
        pk: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        if alg != SignatureScheme::ED25519 {
            return Err(CryptoError::UnsupportedSignatureScheme);
        }
        let key = self.verifying_key(pk)?;
        let signature = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|_| CryptoError::CryptoLibraryError)?;
        key.verify_strict(data, &signature)
            .map_err(|_| CryptoError::InvalidSignature)
    }

    fn sign(&self, alg: SignatureScheme, data: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if alg != SignatureScheme::ED25519 {
            return Err(CryptoError::UnsupportedSignatureScheme);
        }
        ed25519_sign(key, data).ok_or(CryptoError::CryptoLibraryError)
    }

    fn hpke_seal(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        aad: &[u8],
        ptxt: &[u8],
    ) -> Result<HpkeCiphertext, CryptoError> {
        let (kem_output, ciphertext) = hpke(config)?
            .seal(&pk_r.into(), info, aad, ptxt, None, None, None)
            .map_err(|e| match e {
                HpkeError::InvalidInput => CryptoError::InvalidLength,
                _ => CryptoError::CryptoLibraryError,
            })?;
        Ok(HpkeCiphertext {
            kem_output: kem_output.into(),
            ciphertext: ciphertext.into(),
        })
    }

    fn hpke_open(
        &self,
        config: HpkeConfig,
        input: &HpkeCiphertext,
        sk_r: &[u8],
        info: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        hpke(config)?
            .open(
                input.kem_output.as_slice(),
                &sk_r.into(),
                info,
                aad,
                input.ciphertext.as_slice(),
                None,
                None,
                None,
            )
            .map_err(|_| CryptoError::HpkeDecryptionError)
    }

    fn hpke_setup_sender_and_export(
        &self,
        config: HpkeConfig,
        pk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<(KemOutput, ExporterSecret), CryptoError> {
        let (kem_output, context) = hpke(config)?
            .setup_sender(&pk_r.into(), info, None, None, None)
            .map_err(|_| CryptoError::SenderSetupError)?;
        let secret = context
            .export(exporter_context, exporter_length)
            .map_err(|_| CryptoError::ExporterError)?;
        Ok((kem_output, secret.into()))
    }

    fn hpke_setup_receiver_and_export(
        &self,
        config: HpkeConfig,
        enc: &[u8],
        sk_r: &[u8],
        info: &[u8],
        exporter_context: &[u8],
        exporter_length: usize,
    ) -> Result<ExporterSecret, CryptoError> {
        let context = hpke(config)?
            .setup_receiver(enc, &sk_r.into(), info, None, None, None)
            .map_err(|_| CryptoError::ReceiverSetupError)?;
        let secret = context
            .export(exporter_context, exporter_length)
            .map_err(|_| CryptoError::ExporterError)?;
        Ok(secret.into())
    }

    fn derive_hpke_keypair(
        &self,
        config: HpkeConfig,
        ikm: &[u8],
    ) -> Result<HpkeKeyPair, CryptoError> {
        let (private, public) = hpke(config)?
            .derive_key_pair(ikm)
            .map_err(|e| match e {
                HpkeError::InvalidInput => CryptoError::InvalidLength,
                _ => CryptoError::CryptoLibraryError,
            })?
            .into_keys();
        Ok(HpkeKeyPair {
            private: private.as_slice().into(),
            public: public.as_slice().into(),
        })
    }
}

/// Errors of the provider's randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RandError {
    #[error("the random generator's lock is poisoned")]
    LockPoisoned,
}

impl OpenMlsRand for Crypto {
    type Error = RandError;

    fn random_array<const N: usize>(&self) -> Result<[u8; N], RandError> {
        let mut out = [0u8; N];
        self.rng
            .lock()
            .map_err(|_| RandError::LockPoisoned)?
            .fill_bytes(&mut out);
        Ok(out)
    }

    fn random_vec(&self, len: usize) -> Result<Vec<u8>, RandError> {
        let mut out = vec![0u8; len];
        self.rng
            .lock()
            .map_err(|_| RandError::LockPoisoned)?
            .fill_bytes(&mut out);
        Ok(out)
    }
}

/// An Ed25519 signature of `data` with the 32-byte secret `key`.
fn ed25519_sign(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let key = ed25519_dalek::SigningKey::try_from(key).ok()?;
    Some(key.sign(data).to_bytes().to_vec())
}

/// A device's Ed25519 signature key pair. openmls's storage keeps it in the form (fields and
/// storage key) of `openmls_basic_credential::SignatureKeyPair`, so each reads what the other
/// stored; that crate's own key generation and signing would link P-256 and P-384 too.
#[derive(Serialize, Deserialize)]
pub struct SignatureKeys {
    private: Vec<u8>,
    public: Vec<u8>,
    signature_scheme: SignatureScheme,
    /// `private` ready to sign: making it derives the public key (a scalar multiplication),
    /// which every message's signature would otherwise pay again.
    #[serde(skip)]
    signing: OnceLock<ed25519_dalek::SigningKey>,
}

impl Drop for SignatureKeys {
    fn drop(&mut self) {
        self.private.zeroize();
    }
}

impl std::fmt::Debug for SignatureKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureKeys")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The storage key of a signature key pair: the public key, a label and the scheme.
#[derive(Serialize)]
struct SignatureKeyId {
    value: Vec<u8>,
}

impl storage::Key<CURRENT_VERSION> for SignatureKeyId {}
impl storage::traits::SignaturePublicKey<CURRENT_VERSION> for SignatureKeyId {}
impl storage::Entity<CURRENT_VERSION> for SignatureKeys {}
impl storage::traits::SignatureKeyPair<CURRENT_VERSION> for SignatureKeys {}

impl SignatureKeyId {
    fn new(public: &[u8]) -> Self {
        let mut value = public.to_vec();
        value.extend_from_slice(b"RustCryptoSignatureKey");
        value.extend_from_slice(&(SignatureScheme::ED25519 as u16).to_be_bytes());
        Self { value }
    }
}

impl SignatureKeys {
    /// A fresh key pair from `crypto`'s generator.
    pub fn generate(crypto: &Crypto) -> Result<Self, CryptoError> {
        let (private, public) = crypto.signature_key_gen(SignatureScheme::ED25519)?;
        Ok(Self {
            private,
            public,
            signature_scheme: SignatureScheme::ED25519,
            signing: OnceLock::new(),
        })
    }

    pub fn public(&self) -> &[u8] {
        &self.public
    }

    pub fn store<S: StorageProvider<CURRENT_VERSION>>(&self, store: &S) -> Result<(), S::Error> {
        store.write_signature_key_pair(&SignatureKeyId::new(&self.public), self)
    }

    /// The key pair of `public` in `store`, if it holds an Ed25519 one.
    pub fn read(store: &impl StorageProvider<CURRENT_VERSION>, public: &[u8]) -> Option<Self> {
        store
            .signature_key_pair::<_, Self>(&SignatureKeyId::new(public))
            .ok()
            .flatten()
            .filter(|keys| keys.signature_scheme == SignatureScheme::ED25519)
    }
}

impl Signer for SignatureKeys {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        let key = match self.signing.get() {
            Some(key) => key,
            None => {
                let key = ed25519_dalek::SigningKey::try_from(self.private.as_slice())
                    .map_err(|_| SignerError::SigningError)?;
                self.signing.get_or_init(|| key)
            }
        };
        Ok(key.sign(payload).to_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        self.signature_scheme
    }
}

/// `hpke-rs`'s backend for DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-128-GCM (and the
/// export-only mode).
#[derive(Debug)]
pub struct X25519Hpke;

/// The generator `hpke-rs` draws ephemeral keys from.
pub struct HpkePrng(ChaCha20Rng);

impl TryRng for HpkePrng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dst);
        Ok(())
    }
}

impl TryCryptoRng for HpkePrng {}

impl HpkeTestRng for HpkePrng {
    type Error = Infallible;

    fn try_fill_test_bytes(&mut self, dest: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dest);
        Ok(())
    }

    /// Seeding is for `hpke-rs`'s test vectors; the generator stays seeded from the platform.
    fn seed(&mut self, _: &[u8]) {}
}

impl zeroize::Zeroize for HpkePrng {
    /// ChaCha20Rng cannot be zeroized; it is dropped after one HPKE operation.
    fn zeroize(&mut self) {}
}

fn x25519_key(bytes: &[u8], err: HpkeCryptoError) -> Result<[u8; KEY_LEN], HpkeCryptoError> {
    bytes.try_into().map_err(|_| err)
}

fn x25519_only(alg: KemAlgorithm) -> Result<(), HpkeCryptoError> {
    if alg == KemAlgorithm::DhKem25519 {
        Ok(())
    } else {
        Err(HpkeCryptoError::UnknownKemAlgorithm)
    }
}

fn hkdf_sha256_only(alg: KdfAlgorithm) -> Result<(), HpkeCryptoError> {
    if alg == KdfAlgorithm::HkdfSha256 {
        Ok(())
    } else {
        Err(HpkeCryptoError::UnknownKdfAlgorithm)
    }
}

fn hpke_aes128_gcm(
    alg: AeadAlgorithm,
    key: &[u8],
    nonce: &[u8],
) -> Result<Aes128Gcm, HpkeCryptoError> {
    if alg != AeadAlgorithm::Aes128Gcm {
        return Err(HpkeCryptoError::UnknownAeadAlgorithm);
    }
    if nonce.len() != NONCE_LEN {
        return Err(HpkeCryptoError::AeadInvalidNonce);
    }
    <Aes128Gcm as KeyInit>::new_from_slice(key)
        .map_err(|_| HpkeCryptoError::CryptoLibraryError("AES-128-GCM key".into()))
}

impl HpkeCrypto for X25519Hpke {
    type HpkePrng = HpkePrng;

    fn name() -> String {
        "confab X25519".into()
    }

    fn supports_kdf(alg: KdfAlgorithm) -> Result<(), HpkeCryptoError> {
        hkdf_sha256_only(alg)
    }

    fn supports_kem(alg: KemAlgorithm) -> Result<(), HpkeCryptoError> {
        x25519_only(alg)
    }

    fn supports_aead(alg: AeadAlgorithm) -> Result<(), HpkeCryptoError> {
        match alg {
            AeadAlgorithm::Aes128Gcm | AeadAlgorithm::HpkeExport => Ok(()),
            AeadAlgorithm::Aes256Gcm | AeadAlgorithm::ChaCha20Poly1305 => {
                Err(HpkeCryptoError::UnknownAeadAlgorithm)
            }
        }
    }

    fn prng() -> HpkePrng {
        HpkePrng(ChaCha20Rng::from_entropy())
    }

    fn kdf_extract(alg: KdfAlgorithm, salt: &[u8], ikm: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        hkdf_sha256_only(alg)?;
        Ok(Hkdf::<Sha256>::extract(Some(salt), ikm).0.to_vec())
    }

    fn kdf_expand(
        alg: KdfAlgorithm,
        prk: &[u8],
        info: &[u8],
        output_size: usize,
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        hkdf_sha256_only(alg)?;
        let hkdf =
            Hkdf::<Sha256>::from_prk(prk).map_err(|_| HpkeCryptoError::HpkeInvalidOutputLength)?;
        let mut okm = vec![0u8; output_size];
        hkdf.expand(info, &mut okm)
            .map_err(|_| HpkeCryptoError::HpkeInvalidOutputLength)?;
        Ok(okm)
    }

    fn dh(alg: KemAlgorithm, pk: &[u8], sk: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        x25519_only(alg)?;
        let sk = X25519Secret::from(x25519_key(sk, HpkeCryptoError::KemInvalidSecretKey)?);
        let pk = X25519Public::from(x25519_key(pk, HpkeCryptoError::KemInvalidPublicKey)?);
        let shared = sk.diffie_hellman(&pk);
        // A low-order public key gives the all-zero secret (RFC 9180, 7.1.4).
        if !shared.was_contributory() {
            return Err(HpkeCryptoError::KemInvalidPublicKey);
        }
        Ok(shared.as_bytes().to_vec())
    }

    fn secret_to_public(alg: KemAlgorithm, sk: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        x25519_only(alg)?;
        let sk = X25519Secret::from(x25519_key(sk, HpkeCryptoError::KemInvalidSecretKey)?);
        Ok(X25519Public::from(&sk).as_bytes().to_vec())
    }

    fn kem_key_gen(
        alg: KemAlgorithm,
        prng: &mut HpkePrng,
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeCryptoError> {
        x25519_only(alg)?;
        let mut sk = [0u8; KEY_LEN];
        prng.0.fill_bytes(&mut sk);
        let sk = X25519Secret::from(sk);
        Ok((
            X25519Public::from(&sk).as_bytes().to_vec(),
            sk.to_bytes().to_vec(),
        ))
    }

    /// For the post-quantum KEMs, which this backend does not have.
    fn kem_key_gen_derand(
        _: KemAlgorithm,
        _: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeCryptoError> {
        Err(HpkeCryptoError::UnsupportedKemOperation)
    }

    fn kem_encaps(
        _: KemAlgorithm,
        _: &[u8],
        _: &mut HpkePrng,
    ) -> Result<(Vec<u8>, Vec<u8>), HpkeCryptoError> {
        Err(HpkeCryptoError::UnsupportedKemOperation)
    }

    fn kem_decaps(_: KemAlgorithm, _: &[u8], _: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        Err(HpkeCryptoError::UnsupportedKemOperation)
    }

    /// Only the NIST curves' secret keys need checking; X25519 takes any 32 bytes.
    fn dh_validate_sk(_: KemAlgorithm, _: &[u8]) -> Result<Vec<u8>, HpkeCryptoError> {
        Err(HpkeCryptoError::UnknownKemAlgorithm)
    }

    fn aead_seal(
        alg: AeadAlgorithm,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        msg: &[u8],
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        hpke_aes128_gcm(alg, key, nonce)?
            .encrypt(nonce.into(), Payload { msg, aad })
            .map_err(|_| HpkeCryptoError::CryptoLibraryError("AES-128-GCM".into()))
    }

    fn aead_open(
        alg: AeadAlgorithm,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        msg: &[u8],
    ) -> Result<Vec<u8>, HpkeCryptoError> {
        if msg.len() < TAG_LEN {
            return Err(HpkeCryptoError::AeadInvalidCiphertext);
        }
        hpke_aes128_gcm(alg, key, nonce)?
            .decrypt(nonce.into(), Payload { msg, aad })
            .map_err(|_| HpkeCryptoError::AeadOpenError)
    }
}

#[cfg(test)]
mod tests {
    use openmls_rust_crypto::RustCrypto;

    use super::*;

    const HPKE: HpkeConfig = HpkeConfig(
        HpkeKemType::DhKem25519,
        HpkeKdfType::HkdfSha256,
        HpkeAeadType::AesGcm128,
    );

    #[test]
    fn hashes_and_kdfs_match_rust_crypto() {
        let (ours, theirs) = (Crypto::default(), RustCrypto::default());
        let sha = HashType::Sha2_256;
        for len in [0, 1, 64, 1000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            assert_eq!(ours.hash(sha, &data), theirs.hash(sha, &data));
            assert_eq!(
                ours.hmac(sha, b"key", &data),
                theirs.hmac(sha, b"key", &data)
            );
            assert_eq!(
                ours.hkdf_extract(sha, b"salt", &data),
                theirs.hkdf_extract(sha, b"salt", &data)
            );
            let prk = [9u8; 32];
            assert_eq!(
                ours.hkdf_expand(sha, &prk, &data, 80),
                theirs.hkdf_expand(sha, &prk, &data, 80)
            );
        }
        // Longer than HKDF can give (255 blocks): the same error.
        assert_eq!(
            ours.hkdf_expand(sha, &[9; 32], b"", 255 * 32 + 1),
            theirs.hkdf_expand(sha, &[9; 32], b"", 255 * 32 + 1)
        );
    }

    #[test]
    fn aead_matches_rust_crypto() {
        let (ours, theirs) = (Crypto::default(), RustCrypto::default());
        let (alg, key, nonce) = (AeadType::Aes128Gcm, [3u8; 16], [5u8; 12]);
        let sealed = ours.aead_encrypt(alg, &key, b"hello", &nonce, b"aad");
        assert_eq!(
            sealed,
            theirs.aead_encrypt(alg, &key, b"hello", &nonce, b"aad")
        );
        let sealed = sealed.expect("sealed");
        assert_eq!(
            theirs.aead_decrypt(alg, &key, &sealed, &nonce, b"aad"),
            Ok(b"hello".to_vec())
        );
        assert_eq!(
            ours.aead_decrypt(alg, &key, &sealed, &nonce, b"other"),
            Err(CryptoError::AeadDecryptionError)
        );
        // A nonce of another length is refused, not a panic.
        assert!(ours.aead_encrypt(alg, &key, b"x", &[0; 8], b"").is_err());
    }

    #[test]
    fn signatures_match_rust_crypto() {
        let (ours, theirs) = (Crypto::default(), RustCrypto::default());
        let scheme = SignatureScheme::ED25519;
        let (private, public) = ours.signature_key_gen(scheme).expect("key");
        let signature = ours.sign(scheme, b"payload", &private).expect("signed");
        assert_eq!(
            Ok(signature.clone()),
            theirs.sign(scheme, b"payload", &private)
        );
        assert_eq!(
            theirs.verify_signature(scheme, b"payload", &public, &signature),
            Ok(())
        );
        assert_eq!(
            ours.verify_signature(scheme, b"payload", &public, &signature),
            Ok(())
        );
        assert_eq!(
            ours.verify_signature(scheme, b"other", &public, &signature),
            Err(CryptoError::InvalidSignature)
        );
        assert!(ours
            .verify_signature(scheme, b"payload", &public, &signature[..63])
            .is_err());

        let keys = SignatureKeys::generate(&ours).expect("keys");
        let signed = Signer::sign(&keys, b"payload").expect("signed");
        assert_eq!(
            theirs.verify_signature(scheme, b"payload", keys.public(), &signed),
            Ok(())
        );
    }

    /// Parsed keys are kept per public key: a kept key still refuses another key's signature
    /// and a changed payload, a key that does not parse is refused every time, and past the
    /// cache's bound every key still verifies.
    #[test]
    fn kept_verifying_keys_verify_as_fresh_ones() {
        let ours = Crypto::default();
        let scheme = SignatureScheme::ED25519;
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..VERIFYING_KEYS_KEPT + 2)
            .map(|_| ours.signature_key_gen(scheme).expect("key"))
            .collect();
        let signed = |i: usize| ours.sign(scheme, b"payload", &pairs[i].0).expect("signed");
        for round in 0..2 {
            for i in [0, 1, VERIFYING_KEYS_KEPT + 1] {
                let public = &pairs[i].1;
                assert_eq!(
                    ours.verify_signature(scheme, b"payload", public, &signed(i)),
                    Ok(()),
                    "round {round}, key {i}"
                );
                assert_eq!(
                    ours.verify_signature(scheme, b"payload", public, &signed(i + 1 - 2 * (i % 2))),
                    Err(CryptoError::InvalidSignature)
                );
                assert_eq!(
                    ours.verify_signature(scheme, b"other", public, &signed(i)),
                    Err(CryptoError::InvalidSignature)
                );
            }
            // Past the bound: every key verifies, the cache starts over.
            for (i, (_, public)) in pairs.iter().enumerate().skip(2) {
                assert_eq!(
                    ours.verify_signature(scheme, b"payload", public, &signed(i)),
                    Ok(())
                );
            }
            assert!(ours.verifying_keys.lock().expect("lock").len() <= VERIFYING_KEYS_KEPT);
        }
        // Encodings that may or may not be points: kept or not, each parses as a fresh parse.
        for y in 2u8..12 {
            let mut bytes = [0u8; KEY_LEN];
            bytes[0] = y;
            for _ in 0..2 {
                assert_eq!(
                    ours.verifying_key(&bytes).is_ok(),
                    ed25519_dalek::VerifyingKey::from_bytes(&bytes).is_ok(),
                    "y = {y}"
                );
            }
        }
        assert!(ours
            .verify_signature(scheme, b"payload", &pairs[0].1[..31], &signed(0))
            .is_err());
    }

    #[test]
    fn signature_keys_are_stored_as_openmls_basic_credential_stores_them() {
        use openmls_basic_credential::SignatureKeyPair;
        use openmls_memory_storage::MemoryStorage;

        let ours = Crypto::default();
        let scheme = SignatureScheme::ED25519;
        let storage = MemoryStorage::default();
        let keys = SignatureKeys::generate(&ours).expect("keys");
        keys.store(&storage).expect("stored");
        let theirs = SignatureKeyPair::read(&storage, keys.public(), scheme).expect("read");
        assert_eq!(
            Signer::sign(&theirs, b"payload"),
            Signer::sign(&keys, b"payload")
        );

        let storage = MemoryStorage::default();
        let theirs = SignatureKeyPair::new(scheme).expect("keys");
        theirs.store(&storage).expect("stored");
        let keys = SignatureKeys::read(&storage, theirs.public()).expect("read");
        assert_eq!(keys.public(), theirs.public());
        assert_eq!(
            Signer::sign(&keys, b"payload"),
            Signer::sign(&theirs, b"payload")
        );
        assert!(SignatureKeys::read(&storage, &[0; 32]).is_none());
    }

    #[test]
    fn hpke_matches_rust_crypto() {
        let (ours, theirs) = (Crypto::default(), RustCrypto::default());
        let ikm = [7u8; 32];
        let pair = ours.derive_hpke_keypair(HPKE, &ikm).expect("pair");
        let same = theirs.derive_hpke_keypair(HPKE, &ikm).expect("pair");
        assert_eq!(
            (&pair.private[..], &pair.public),
            (&same.private[..], &same.public)
        );

        let sealed = ours
            .hpke_seal(HPKE, &pair.public, b"info", b"aad", b"secret")
            .expect("sealed");
        assert_eq!(
            theirs.hpke_open(HPKE, &sealed, &pair.private, b"info", b"aad"),
            Ok(b"secret".to_vec())
        );
        let sealed = theirs
            .hpke_seal(HPKE, &pair.public, b"info", b"aad", b"secret")
            .expect("sealed");
        assert_eq!(
            ours.hpke_open(HPKE, &sealed, &pair.private, b"info", b"aad"),
            Ok(b"secret".to_vec())
        );
        assert_eq!(
            ours.hpke_open(HPKE, &sealed, &pair.private, b"info", b"other"),
            Err(CryptoError::HpkeDecryptionError)
        );

        let (enc, secret) = ours
            .hpke_setup_sender_and_export(HPKE, &pair.public, b"info", b"ctx", 32)
            .expect("exported");
        let theirs_secret = theirs
            .hpke_setup_receiver_and_export(HPKE, &enc, &pair.private, b"info", b"ctx", 32)
            .expect("exported");
        assert_eq!(&secret[..], &theirs_secret[..]);
        let (enc, secret) = theirs
            .hpke_setup_sender_and_export(HPKE, &pair.public, b"info", b"ctx", 32)
            .expect("exported");
        let ours_secret = ours
            .hpke_setup_receiver_and_export(HPKE, &enc, &pair.private, b"info", b"ctx", 32)
            .expect("exported");
        assert_eq!(&secret[..], &ours_secret[..]);

        // A low-order public key (all zero) makes no shared secret.
        assert!(ours
            .hpke_seal(HPKE, &[0; 32], b"info", b"aad", b"secret")
            .is_err());
    }

    #[test]
    fn other_algorithms_are_refused() {
        let ours = Crypto::default();
        assert_eq!(
            ours.supported_ciphersuites(),
            vec![super::super::CIPHERSUITE]
        );
        assert_eq!(
            ours.supports(Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256),
            Err(CryptoError::UnsupportedCiphersuite)
        );
        assert_eq!(
            ours.hash(HashType::Sha2_384, b""),
            Err(CryptoError::UnsupportedHashAlgorithm)
        );
        assert_eq!(
            ours.signature_key_gen(SignatureScheme::ECDSA_SECP256R1_SHA256),
            Err(CryptoError::UnsupportedSignatureScheme)
        );
        assert_eq!(
            ours.aead_encrypt(AeadType::ChaCha20Poly1305, &[0; 32], b"", &[0; 12], b""),
            Err(CryptoError::UnsupportedAeadAlgorithm)
        );
        let p256 = HpkeConfig(
            HpkeKemType::DhKemP256,
            HpkeKdfType::HkdfSha256,
            HpkeAeadType::AesGcm128,
        );
        assert_eq!(
            ours.derive_hpke_keypair(p256, &[7; 32]).err(),
            Some(CryptoError::UnsupportedCiphersuite)
        );
    }
}
