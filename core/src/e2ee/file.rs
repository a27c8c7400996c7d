//! Attachments of encrypted conversations (docs/E2EE.md, "Encrypted attachments"): the
//! device encrypts each file with AES-256-GCM under a key and nonce of its own, uploads the
//! ciphertext, and puts the key, the nonce and the ciphertext's hash in the message's sealed
//! attachment list; a reader checks the hash and decrypts. The server stores ciphertext only.
//!
//! The caller draws the key and nonce (a CSPRNG of its host): the core stays free of I/O.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::{Digest, Sha256};

/// Bytes of a file's key.
pub const FILE_KEY_BYTES: usize = 32;
/// Bytes of a file's nonce.
pub const FILE_NONCE_BYTES: usize = 12;

/// Why a file cannot be opened (or sealed). Each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The key or nonce has the wrong length.
    #[error("the file's key or nonce is malformed")]
    BadKey,
    /// The bytes are not the ones sealed: their hash differs, or the tag does not verify.
    #[error("the file's bytes are not the ones its sender sealed")]
    Tampered,
    /// The file is larger than AES-GCM takes in one message.
    #[error("the file is too large to seal")]
    TooLarge,
}

impl FileError {
    pub fn code(&self) -> &'static str {
        match self {
            FileError::BadKey => "attachment_key_invalid",
            FileError::Tampered => "attachment_tampered",
            FileError::TooLarge => "too_large",
        }
    }
}

/// A file sealed for upload: the ciphertext (with its tag) and its SHA-256 (hex), which is
/// what the upload names and the sealed attachment list carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedFile {
    pub ciphertext: Vec<u8>,
    pub hash: String,
}

fn cipher(key: &[u8]) -> Result<Aes256Gcm, FileError> {
    if key.len() != FILE_KEY_BYTES {
        return Err(FileError::BadKey);
    }
    Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)))
}

fn nonce(nonce: &[u8]) -> Result<&Nonce<aes_gcm::aes::cipher::consts::U12>, FileError> {
    if nonce.len() != FILE_NONCE_BYTES {
        return Err(FileError::BadKey);
    }
    Ok(Nonce::from_slice(nonce))
}

/// SHA-256 of `bytes`, as 64 hex digits.
pub fn file_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `plain` encrypted under `key` and `nonce`, both fresh for this file (never reuse a pair).
pub fn seal_file(plain: &[u8], key: &[u8], nonce_bytes: &[u8]) -> Result<SealedFile, FileError> {
    let ciphertext = cipher(key)?
        .encrypt(nonce(nonce_bytes)?, plain)
        .map_err(|_| FileError::TooLarge)?;
    let hash = file_hash(&ciphertext);
    Ok(SealedFile { ciphertext, hash })
}

/// The plaintext of a downloaded ciphertext: its hash must be `hash` (when the reference has
/// one) and its tag must verify under `key` and `nonce`.
pub fn open_file(
    ciphertext: &[u8],
    key: &[u8],
    nonce_bytes: &[u8],
    hash: Option<&str>,
) -> Result<Vec<u8>, FileError> {
    if hash.is_some_and(|h| !h.eq_ignore_ascii_case(&file_hash(ciphertext))) {
        return Err(FileError::Tampered);
    }
    cipher(key)?
        .decrypt(nonce(nonce_bytes)?, ciphertext)
        .map_err(|_| FileError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const NONCE: [u8; 12] = [9; 12];

    #[test]
    fn a_file_opens_only_as_sealed() {
        let sealed = seal_file(b"secret plans", &KEY, &NONCE).expect("seals");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            open_file(&sealed.ciphertext, &KEY, &NONCE, Some(&sealed.hash)),
            Ok(b"secret plans".to_vec())
        );
        let mut tampered = sealed.ciphertext.clone();
        tampered[0] ^= 1;
        assert_eq!(
            open_file(&tampered, &KEY, &NONCE, Some(&sealed.hash)),
            Err(FileError::Tampered)
        );
        // Without the hash, the tag still catches it.
        assert_eq!(
            open_file(&tampered, &KEY, &NONCE, None),
            Err(FileError::Tampered)
        );
        assert_eq!(
            open_file(&sealed.ciphertext, &[1; 32], &NONCE, None),
            Err(FileError::Tampered)
        );
        assert_eq!(
            open_file(&sealed.ciphertext, &KEY[..16], &NONCE, None),
            Err(FileError::BadKey)
        );
    }
}
