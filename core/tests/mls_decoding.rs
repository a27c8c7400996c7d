//! MLS bytes from the network never panic either side, a refused message changes nothing,
//! and a mutated message is refused or means exactly what the original did. The properties
//! live with the `mls` fuzz target (`fuzz/src/mls.rs`); here they run on stable against
//! random bytes and mutations of valid messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../fuzz/src/mls.rs"]
#[allow(dead_code)] // the fuzz target uses what this test does not
mod mls;

use std::sync::OnceLock;

use mls::{MlsFixture, Sink};
use proptest::prelude::*;

fn fixture() -> &'static MlsFixture {
    static FIXTURE: OnceLock<MlsFixture> = OnceLock::new();
    FIXTURE.get_or_init(MlsFixture::new)
}

/// One edit of a message: flip a bit, overwrite, insert or remove a byte, or cut the tail.
#[derive(Debug, Clone)]
enum Edit {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
    Truncate { keep: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Set { at, byte }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
        any::<usize>().prop_map(|at| Edit::Remove { at }),
        any::<usize>().prop_map(|keep| Edit::Truncate { keep }),
    ]
}

fn mutate(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len().max(1);
        match *e {
            Edit::Flip { at, bit } => {
                if let Some(b) = bytes.get_mut(at % len) {
                    *b ^= 1 << bit;
                }
            }
            Edit::Set { at, byte } => {
                if let Some(b) = bytes.get_mut(at % len) {
                    *b = byte;
                }
            }
            Edit::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), byte),
            Edit::Remove { at } => {
                if !bytes.is_empty() {
                    bytes.remove(at % len);
                }
            }
            Edit::Truncate { keep } => bytes.truncate(keep % len),
        }
    }
    bytes
}

fn sink() -> impl Strategy<Value = Sink> {
    (0..Sink::ALL.len()).prop_map(|i| Sink::ALL[i])
}

#[test]
fn every_valid_message_passes_its_own_check() {
    for sink in Sink::ALL {
        fixture().check(sink, fixture().valid(sink));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_messages_are_refused_or_mean_the_same(
        sink in sink(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let f = fixture();
        f.check(sink, &mutate(f.valid(sink).to_vec(), &edits));
    }

    #[test]
    fn random_bytes_are_refused_without_a_panic(
        sink in sink(),
        data in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        fixture().check(sink, &data);
    }
}
