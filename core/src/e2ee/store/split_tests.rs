//! The split message-secrets store: the pieces it writes, reuses and deletes, and that a real
//! group's state splits and loads back (which pins openmls's serialized shape).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::provider::MESSAGE_SECRETS_LABEL as LABEL;
use super::split::{assemble, split, Piece};
use super::*;
use crate::e2ee::{Device, DeviceIdentity, PAST_EPOCHS};
use crate::ids::{AccountId, DeviceId, TenantId};

// The shape of openmls's `MessageSecretsStore` (names as openmls's, so the serde names match).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MessageSecretsStore {
    max_epochs: usize,
    past_epoch_trees: VecDeque<EpochTree>,
    message_secrets: Secrets,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EpochTree {
    epoch: u64,
    message_secrets: Secrets,
    leaves: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Secrets {
    key: Vec<u8>,
    ratchets: Vec<Option<u32>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Member {
    index: u32,
    credential: Vec<u8>,
}

fn secrets(n: u8) -> Secrets {
    Secrets {
        key: vec![n; 32],
        ratchets: vec![None, Some(u32::from(n)), None],
    }
}

fn value(epochs: std::ops::RangeInclusive<u64>) -> MessageSecretsStore {
    let past_epoch_trees = epochs
        .map(|epoch| EpochTree {
            epoch,
            message_secrets: secrets(epoch as u8),
            leaves: (0..3)
                .map(|index| Member {
                    index,
                    credential: format!("member {index} of epoch {epoch}").into_bytes(),
                })
                .collect(),
        })
        .collect();
    MessageSecretsStore {
        max_epochs: 16,
        past_epoch_trees,
        message_secrets: secrets(99),
    }
}

const GROUP_KEY: &[u8] = b"{\"group\":1}";

/// The epochs whose member lists the store holds for `GROUP_KEY`.
fn pieces(store: &Store) -> BTreeSet<u64> {
    let prefix = storage_key(LEAVES_LABEL, GROUP_KEY);
    let prefix = &prefix[..prefix.len() - 2];
    store.with_entries(|m| {
        m.keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .map(|rest| u64::from_be_bytes(rest[..8].try_into().unwrap()))
            .collect()
    })
}

fn tag_of(store: &Store, label: &[u8], key: &[u8]) -> Option<u8> {
    store.with_entries(|m| m.get(&storage_key(label, key)).map(|v| v[0]))
}

#[test]
fn a_split_value_assembles_to_its_exact_postcard_bytes() {
    let v = value(3..=5);
    let whole = postcard::to_allocvec(&v).unwrap();
    let secrets_of = |i: usize| postcard::to_allocvec(&v.past_epoch_trees[i].message_secrets);
    let kept_secrets = secrets_of(2).unwrap();
    // Epoch 4's member list is stored; epoch 5's secrets are stored as they are now, epoch
    // 3's as they were before.
    let stored = |piece: Piece, epoch: u64| -> Option<&[u8]> {
        match (piece, epoch) {
            (Piece::Leaves, 4) => Some(b""),
            (Piece::Secrets, 5) => Some(&kept_secrets),
            (Piece::Secrets, 3) => Some(b"older"),
            _ => None,
        }
    };
    let s = split(&v, &stored).unwrap();
    let holes: Vec<_> = s
        .holes
        .iter()
        .map(|h| (h.epoch, h.piece, h.fresh.is_some()))
        .collect();
    assert_eq!(
        holes,
        [
            (3, Piece::Secrets, true),
            (3, Piece::Leaves, true),
            (4, Piece::Secrets, true),
            (4, Piece::Leaves, false),
            (5, Piece::Secrets, false),
            (5, Piece::Leaves, true),
        ]
    );
    let leaves = |i: usize| postcard::to_allocvec(&v.past_epoch_trees[i].leaves).unwrap();
    assert_eq!(s.holes[1].fresh.as_deref(), Some(&leaves(0)[..]));
    assert_eq!(s.holes[0].fresh, Some(secrets_of(0).unwrap()));
    let all = [
        secrets_of(0).unwrap(),
        leaves(0),
        secrets_of(1).unwrap(),
        leaves(1),
        secrets_of(2).unwrap(),
        leaves(2),
    ];
    let holes = s.holes.iter().zip(&all).map(|(h, l)| (h.at, &l[..]));
    assert_eq!(assemble(&s.body, holes).unwrap(), whole);
    assert_eq!(
        s.body.len() + all.iter().map(Vec::len).sum::<usize>(),
        whole.len()
    );
    assert!(assemble(&s.body, [(s.body.len() + 1, &b""[..])]).is_none());
}

#[test]
fn other_shapes_are_refused() {
    #[derive(Serialize)]
    struct MessageSecretsStore {
        max_epochs: usize,
        past_epochs: Vec<u64>,
    }
    let renamed = MessageSecretsStore {
        max_epochs: 1,
        past_epochs: vec![1],
    };
    let none = |_: Piece, _: u64| -> Option<&[u8]> { None };
    assert!(split(&renamed, &none).is_err());
    assert!(split(&7u64, &none).is_err());
    let mut twice = value(3..=4);
    twice.past_epoch_trees[1].epoch = 3;
    assert!(split(&twice, &none).is_err());
}

#[test]
fn member_lists_are_written_once_and_deleted_with_their_epoch() {
    let store = Store::default();
    store.put(LABEL, GROUP_KEY, &value(1..=3)).unwrap();
    assert_eq!(tag_of(&store, LABEL, GROUP_KEY), Some(SPLIT_PIECES));
    assert_eq!(pieces(&store), [1, 2, 3].into());
    let got: MessageSecretsStore = store.get(LABEL, GROUP_KEY).unwrap().unwrap();
    assert_eq!(got, value(1..=3));

    // A kept epoch's list is not encoded again: a marked copy stays as it is.
    let two = piece_key(GROUP_KEY, Piece::Leaves, 2);
    let marked = store.with_entries(|m| m[&two].clone());
    let mut changed = value(2..=4);
    changed.message_secrets = secrets(7);
    store.put(LABEL, GROUP_KEY, &changed).unwrap();
    assert_eq!(
        pieces(&store),
        [2, 3, 4].into(),
        "epoch 1's list is deleted"
    );
    store.with_entries(|m| assert_eq!(m[&two], marked));
    let got: MessageSecretsStore = store.get(LABEL, GROUP_KEY).unwrap().unwrap();
    assert_eq!(got, changed);

    // Survives a snapshot.
    let loaded = crate::e2ee::snapshot::decode(&crate::e2ee::snapshot::encode(&store)).unwrap();
    let got: MessageSecretsStore = loaded.get(LABEL, GROUP_KEY).unwrap().unwrap();
    assert_eq!(got, changed);

    store.delete(LABEL, GROUP_KEY).unwrap();
    assert!(pieces(&store).is_empty());
    assert!(store.with_entries(HashMap::is_empty));
}

#[test]
fn a_value_of_another_form_is_read_then_rewritten_split() {
    let mut whole = vec![POSTCARD];
    whole.extend(postcard::to_allocvec(&value(1..=2)).unwrap());
    let store = Store::from_entries([(storage_key(LABEL, GROUP_KEY), whole)].into());
    let got: MessageSecretsStore = store.get(LABEL, GROUP_KEY).unwrap().unwrap();
    assert_eq!(got, value(1..=2));
    store.put(LABEL, GROUP_KEY, &value(1..=3)).unwrap();
    assert_eq!(pieces(&store), [1, 2, 3].into());

    // One openmls would no longer split is written whole, and the lists go.
    store.put(LABEL, GROUP_KEY, &5u64).unwrap();
    assert_eq!(tag_of(&store, LABEL, GROUP_KEY), Some(POSTCARD));
    assert!(pieces(&store).is_empty());
    assert_eq!(store.get::<u64>(LABEL, GROUP_KEY).unwrap(), Some(5));
}

#[test]
fn a_missing_or_damaged_piece_is_an_error() {
    let store = Store::default();
    store.put(LABEL, GROUP_KEY, &value(1..=2)).unwrap();
    let mut entries = store.with_entries(Clone::clone);
    entries.remove(&piece_key(GROUP_KEY, Piece::Leaves, 2));
    let missing = Store::from_entries(entries.clone());
    assert!(missing
        .get::<MessageSecretsStore>(LABEL, GROUP_KEY)
        .is_err());
    entries.insert(piece_key(GROUP_KEY, Piece::Leaves, 2), vec![POSTCARD, 0xff]);
    let damaged = Store::from_entries(entries);
    assert!(damaged
        .get::<MessageSecretsStore>(LABEL, GROUP_KEY)
        .is_err());
    let main = storage_key(LABEL, GROUP_KEY);
    let packed = Store::from_entries([(main.clone(), vec![SPLIT_PIECES, 0, 2, 7, 0])].into());
    assert!(packed.get::<MessageSecretsStore>(LABEL, GROUP_KEY).is_err());
    let bad_body = Store::from_entries([(main, vec![SPLIT, 1, 200, 1, 1, 0])].into());
    assert!(bad_body
        .get::<MessageSecretsStore>(LABEL, GROUP_KEY)
        .is_err());
}

fn id(account: &str) -> DeviceIdentity {
    DeviceIdentity::new(
        TenantId::new("acme").unwrap(),
        AccountId::new(account).unwrap(),
        DeviceId::new("d1").unwrap(),
    )
}

/// The epochs whose member lists a device's storage holds, and how many split values.
fn kept(device: &Device) -> (BTreeSet<u64>, usize) {
    device.storage().with_entries(|m| {
        let epochs = m
            .keys()
            .filter(|k| k.starts_with(LEAVES_LABEL))
            .map(|k| u64::from_be_bytes(k[k.len() - 10..k.len() - 2].try_into().unwrap()))
            .collect();
        let split = m.values().filter(|v| is_split(v)).count();
        (epochs, split)
    })
}

#[test]
fn a_real_group_splits_loads_and_deletes_what_it_drops() {
    const G: &[u8] = b"acme/conv/split";
    let mut alice = Device::new(id("alice")).unwrap();
    let mut bob = Device::new(id("bob")).unwrap();
    alice.create_group(G).unwrap();
    let bundle = alice
        .commit(G, &[bob.key_package(false).unwrap()], &[])
        .unwrap();
    alice.confirm_commit(G).unwrap();
    bob.join(&bundle.welcome.unwrap()).unwrap();
    let rounds = PAST_EPOCHS + 4;
    let mut old = None;
    for round in 0..rounds {
        if round == 5 {
            old = Some(bob.encrypt(G, b"old", b"from a past epoch").unwrap());
        }
        let commit = alice.commit(G, &[], &[]).unwrap();
        alice.confirm_commit(G).unwrap();
        bob.process_commit(&commit.commit).unwrap();
        let m = alice.encrypt(G, b"now", b"now").unwrap();
        assert_eq!(bob.decrypt(&m).unwrap().plaintext, b"now");
    }
    let now = alice.epoch(G).unwrap();
    assert_eq!(now, rounds + 1);
    // openmls's shape is as `split` expects: one split value, one list per kept epoch, the
    // lists of the epochs it dropped deleted.
    let want: BTreeSet<u64> = (now - PAST_EPOCHS..now).collect();
    assert_eq!(kept(&alice), (want.clone(), 1));
    assert_eq!(kept(&bob), (want, 1));

    // Saved and loaded, the past epochs' lists are back: a message of one decrypts (its
    // sender is looked up in that epoch's members), and the group goes on.
    let mut alice = Device::from_bytes(&alice.to_bytes()).unwrap();
    let mut bob = Device::from_bytes(&bob.to_bytes()).unwrap();
    let read = alice.decrypt(&old.unwrap()).unwrap();
    assert_eq!(read.plaintext, b"from a past epoch");
    let m = alice.encrypt(G, b"after", b"after loading").unwrap();
    assert_eq!(bob.decrypt(&m).unwrap().plaintext, b"after loading");
    let m = bob.encrypt(G, b"back", b"back").unwrap();
    assert_eq!(alice.decrypt(&m).unwrap().plaintext, b"back");

    alice.forget_group(G).unwrap();
    assert_eq!(kept(&alice), (BTreeSet::new(), 0));
}

/// The keys `take_changes` names, each as written (`true`) or deleted.
fn changes(store: &Store) -> BTreeSet<(Vec<u8>, bool)> {
    store
        .take_changes()
        .into_iter()
        .map(|(k, v)| (k, v.is_some()))
        .collect()
}

#[test]
fn a_write_changes_only_the_pieces_that_changed() {
    let main = storage_key(LABEL, GROUP_KEY);
    let at = |piece, epoch| piece_key(GROUP_KEY, piece, epoch);
    let store = Store::default();
    store.put(LABEL, GROUP_KEY, &value(1..=3)).unwrap();
    let mut first = BTreeSet::from([(main.clone(), true)]);
    for epoch in 1..=3 {
        first.insert((at(Piece::Leaves, epoch), true));
        first.insert((at(Piece::Secrets, epoch), true));
    }
    assert_eq!(changes(&store), first);
    assert!(changes(&store).is_empty(), "taken once");

    // A message of the current epoch: only the value itself.
    let mut current = value(1..=3);
    current.message_secrets = secrets(42);
    store.put(LABEL, GROUP_KEY, &current).unwrap();
    assert_eq!(changes(&store), [(main.clone(), true)].into());

    // A message of a past epoch: that epoch's secrets too.
    current.past_epoch_trees[2].message_secrets = secrets(43);
    store.put(LABEL, GROUP_KEY, &current).unwrap();
    assert_eq!(
        changes(&store),
        [(main.clone(), true), (at(Piece::Secrets, 3), true)].into()
    );

    // A new epoch kept, the oldest dropped: its pieces are deleted.
    store.put(LABEL, GROUP_KEY, &value(2..=4)).unwrap();
    let want = [
        (main.clone(), true),
        (at(Piece::Leaves, 1), false),
        (at(Piece::Secrets, 1), false),
        (at(Piece::Leaves, 4), true),
        (at(Piece::Secrets, 4), true),
        // Epoch 3's secrets go back to what `value` has.
        (at(Piece::Secrets, 3), true),
    ];
    assert_eq!(changes(&store), want.into());
    let got: MessageSecretsStore = store.get(LABEL, GROUP_KEY).unwrap().unwrap();
    assert_eq!(got, value(2..=4));

    store.delete(LABEL, GROUP_KEY).unwrap();
    let gone = changes(&store);
    assert_eq!(gone.len(), 7);
    assert!(gone.iter().all(|(_, written)| !written));
}

#[test]
fn a_value_split_by_an_earlier_build_reads_and_is_rewritten_with_its_secrets_apart() {
    // The earlier form: only the member lists apart, the past secrets in the body.
    let v = value(1..=2);
    let none = |_: Piece, _: u64| -> Option<&[u8]> { None };
    let s = split(&v, &none).unwrap();
    let mut body = Vec::new();
    let mut from = 0;
    let mut holes = Vec::new();
    let mut entries = HashMap::new();
    for hole in &s.holes {
        body.extend_from_slice(&s.body[from..hole.at]);
        from = hole.at;
        let bytes = hole.fresh.clone().unwrap();
        match hole.piece {
            Piece::Secrets => body.extend_from_slice(&bytes),
            Piece::Leaves => {
                holes.push((body.len() as u64, hole.epoch));
                let piece = [&[POSTCARD][..], &bytes].concat();
                entries.insert(piece_key(GROUP_KEY, Piece::Leaves, hole.epoch), piece);
            }
        }
    }
    body.extend_from_slice(&s.body[from..]);
    let mut old = vec![SPLIT];
    old.extend(postcard::to_allocvec(&(&holes, serde_bytes::Bytes::new(&body))).unwrap());
    entries.insert(storage_key(LABEL, GROUP_KEY), old);
    let store = Store::from_entries(entries);
    let got: MessageSecretsStore = store.get(LABEL, GROUP_KEY).unwrap().unwrap();
    assert_eq!(got, v);

    let kept = store.with_entries(|m| m[&piece_key(GROUP_KEY, Piece::Leaves, 1)].clone());
    store.put(LABEL, GROUP_KEY, &value(1..=3)).unwrap();
    assert_eq!(tag_of(&store, LABEL, GROUP_KEY), Some(SPLIT_PIECES));
    assert_eq!(pieces(&store), [1, 2, 3].into());
    store.with_entries(|m| {
        assert_eq!(m[&piece_key(GROUP_KEY, Piece::Leaves, 1)], kept);
        assert!(m.contains_key(&piece_key(GROUP_KEY, Piece::Secrets, 1)));
    });
    let got: MessageSecretsStore = store.get(LABEL, GROUP_KEY).unwrap().unwrap();
    assert_eq!(got, value(1..=3));
}

#[test]
fn a_wider_window_keeps_the_epochs_passed_and_a_narrower_one_deletes_them() {
    const G: &[u8] = b"acme/conv/wide";
    let mut alice = Device::new(id("alice")).unwrap();
    let mut bob = Device::new(id("bob")).unwrap();
    alice.create_group(G).unwrap();
    let bundle = alice
        .commit(G, &[bob.key_package(false).unwrap()], &[])
        .unwrap();
    alice.confirm_commit(G).unwrap();
    bob.join(&bundle.welcome.unwrap()).unwrap();
    let wide = PAST_EPOCHS + 24;
    bob.keep_past_epochs(G, wide as usize).unwrap();
    for _ in 0..wide {
        let commit = alice.commit(G, &[], &[]).unwrap();
        alice.confirm_commit(G).unwrap();
        bob.process_commit(&commit.commit).unwrap();
    }
    let now = bob.epoch(G).unwrap();
    assert_eq!(kept(&bob), ((now - wide..now).collect(), 1));
    // Back to the usual window: the older epochs' lists go from the storage at once.
    bob.keep_past_epochs(G, PAST_EPOCHS as usize).unwrap();
    assert_eq!(kept(&bob), ((now - PAST_EPOCHS..now).collect(), 1));
    let bob = Device::from_bytes(&bob.to_bytes()).unwrap();
    assert_eq!(bob.past_epochs_kept(G), Some(PAST_EPOCHS as usize));
}
