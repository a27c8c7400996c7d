//! Safety numbers: a short fingerprint of two accounts' device signature keys that both
//! people compare out loud (docs/E2EE.md, "Safety numbers"). Each account's half is a hash of
//! its devices' keys; the number is the two halves in a fixed order, so both sides compute the
//! same digits from the same keys, and any device added, removed or re-keyed changes them.

use sha2::{Digest, Sha512};

use super::identity::DeviceIdentity;

/// Digits in each account's half of a safety number.
const HALF_DIGITS: usize = 30;
/// Distinguishes this fingerprint from every other hash of the same keys.
const DOMAIN: &[u8] = b"confab safety number v1";

/// One account's half: 30 digits from a SHA-512 over the account's identity and its devices'
/// signature keys, in device order (each length-prefixed, so no two lists hash alike).
pub fn account_half(devices: &[(&DeviceIdentity, &[u8])]) -> String {
    let mut sorted: Vec<&(&DeviceIdentity, &[u8])> = devices.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut hash = Sha512::new();
    hash.update(DOMAIN);
    for (device, key) in sorted {
        for part in [device.to_string().as_bytes(), key] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
    }
    let digest = hash.finalize();
    // Five digits from each 5-byte chunk (40 bits mod 100,000: a bias of 1 in 10^7).
    digest
        .chunks(5)
        .take(HALF_DIGITS / 5)
        .map(|chunk| {
            let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect()
}

/// The safety number of two accounts from their devices' signature keys (each list: the
/// devices of one account): 60 digits, the smaller half first, the same whichever side asks.
pub fn safety_number(
    one: &[(&DeviceIdentity, &[u8])],
    other: &[(&DeviceIdentity, &[u8])],
) -> String {
    let (a, b) = (account_half(one), account_half(other));
    if a <= b {
        a + &b
    } else {
        b + &a
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::{AccountId, DeviceId, TenantId};

    fn id(account: &str, device: &str) -> DeviceIdentity {
        DeviceIdentity::new(
            TenantId::new("acme").unwrap(),
            AccountId::new(account).unwrap(),
            DeviceId::new(device).unwrap(),
        )
    }

    #[test]
    fn both_sides_get_the_same_digits_and_any_key_change_moves_them() {
        let (alice, bob, tablet) = (id("alice", "phone"), id("bob", "phone"), id("bob", "tab"));
        let a: Vec<(&DeviceIdentity, &[u8])> = vec![(&alice, &[1; 32])];
        let b: Vec<(&DeviceIdentity, &[u8])> = vec![(&bob, &[2; 32])];
        let number = safety_number(&a, &b);
        assert_eq!(number.len(), 60);
        assert!(number.bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(number, safety_number(&b, &a), "the same on both sides");
        // Order of devices does not matter; a new device, or a new key, does.
        let two: Vec<(&DeviceIdentity, &[u8])> = vec![(&tablet, &[3; 32]), (&bob, &[2; 32])];
        let two_again: Vec<(&DeviceIdentity, &[u8])> = vec![(&bob, &[2; 32]), (&tablet, &[3; 32])];
        assert_eq!(safety_number(&a, &two), safety_number(&a, &two_again));
        assert_ne!(safety_number(&a, &two), number);
        let rekeyed: Vec<(&DeviceIdentity, &[u8])> = vec![(&bob, &[9; 32])];
        assert_ne!(safety_number(&a, &rekeyed), number);
    }
}
