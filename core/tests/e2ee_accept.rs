//! The acceptor as the MLS Delivery Service of encrypted conversations: a group made and
//! committed to through the conversation document, and every change that would put the
//! group out of step with the members refused with its code, leaving the state unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::automerge::Change;
use confab_core::doc::read;
use confab_core::doc::write::{self, MlsWrite};
use confab_core::e2ee::{self, Device as Mls, DeviceIdentity, DirectoryAsk};
use confab_core::hub::Hub;
use confab_core::ids::{ConvId, DeviceId, DocId};
use confab_core::model::conversation::{ConvKind, MemberStatus, Role};
use confab_core::validate::Rejection;
use confab_testkit::device::Device;
use confab_testkit::hub::{create, NOW};
use confab_testkit::ids::{acc, conv_doc, tenant};

fn identity(account: &str) -> DeviceIdentity {
    DeviceIdentity::new(tenant(), acc(account), DeviceId::new("phone").unwrap())
}

/// One person: the replica that writes the documents and the MLS device beside it.
struct Person {
    replica: Device,
    mls: Mls,
}

impl Person {
    fn new(account: &str) -> Self {
        Person {
            replica: Device::new(account, 1),
            mls: Mls::new(identity(account)).unwrap(),
        }
    }

    /// This person as the author of what their MLS device submits.
    fn author(&self) -> confab_core::policy::Author {
        self.replica
            .author
            .clone()
            .on(self.mls.identity().device.clone())
    }

    /// Submits `change` to `doc` from this person's MLS device.
    fn submit(&self, hub: &mut Hub, doc: &DocId, change: Change) -> Result<(), Rejection> {
        hub.submit(doc, &self.author(), change, NOW).map(|_| ())
    }

    /// Starts the replica of `doc` again from what the hub accepted (after a refusal).
    fn resync(&mut self, hub: &Hub, doc: &DocId) {
        self.replica.docs.remove(doc);
        self.replica.pull(hub, doc);
    }

    fn write_mls(&mut self, doc: &DocId, mls: MlsWrite<'_>) -> Change {
        self.replica
            .write(doc, |d, t| write::write_mls(d, t, NOW, mls))
            .unwrap()
    }
}

/// Registers `mls` in the hub's directory, as its first key-package upload does.
fn register(hub: &mut Hub, mls: &Mls) {
    hub.register_device(mls.identity().clone(), mls.signature_key())
        .unwrap();
}

/// An encrypted group of alice (owner), bob and carol, with no MLS group yet; their devices
/// are registered in the directory.
fn encrypted_group(hub: &mut Hub, id: &str, people: &mut [Person]) -> ConvId {
    for p in people.iter() {
        register(hub, &p.mls);
    }
    let (owner, rest) = people.split_first_mut().unwrap();
    let mut others: Vec<(&mut Device, Role)> = rest
        .iter_mut()
        .map(|p| (&mut p.replica, Role::Member))
        .collect();
    create(
        hub,
        id,
        ConvKind::Group,
        &mut owner.replica,
        &mut others,
        |spec| {
            spec.encrypted = true;
        },
    )
}

fn code(r: Result<(), Rejection>) -> &'static str {
    r.expect_err("refused").code.as_str()
}

fn epoch(hub: &Hub, conv: &ConvId) -> Option<u64> {
    hub.conversation(conv).unwrap().mls.map(|m| m.epoch)
}

/// alice makes the group and adds bob's and carol's devices; everyone joins.
fn with_group(hub: &mut Hub, conv: &ConvId, people: &mut [Person]) {
    let doc = conv_doc(conv);
    let group = e2ee::group_id(&doc);
    let init = people[0].mls.create_group(&group).unwrap();
    let change = people[0].write_mls(
        &doc,
        MlsWrite::Init {
            group_info: &init.group_info,
            tree: &init.ratchet_tree,
        },
    );
    people[0].submit(hub, &doc, change).unwrap();
    assert_eq!(epoch(hub, conv), Some(0));
    let packages: Vec<Vec<u8>> = people[1..]
        .iter()
        .map(|p| p.mls.key_package(false).unwrap())
        .collect();
    let bundle = people[0].mls.commit(&group, &packages, &[]).unwrap();
    let welcome = bundle.welcome.clone().unwrap();
    let change = people[0].write_mls(
        &doc,
        MlsWrite::Commit {
            epoch: 0,
            commit: &bundle.commit,
            welcome: Some(&welcome),
        },
    );
    people[0].submit(hub, &doc, change).unwrap();
    people[0].mls.confirm_commit(&group).unwrap();
    for p in people[1..].iter_mut() {
        p.replica.pull(hub, &doc);
        // A new member finds its Welcome in the document.
        let stored = read::read_mls_welcome(p.replica.doc(&doc), 0).unwrap();
        assert_eq!(p.mls.join(&stored).unwrap(), group);
    }
    assert_eq!(epoch(hub, conv), Some(1));
}

fn trio() -> Vec<Person> {
    vec![
        Person::new("alice"),
        Person::new("bob"),
        Person::new("carol"),
    ]
}

#[test]
fn a_group_is_made_and_joined_through_the_document() {
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    assert!(hub.conversation(&conv).unwrap().encrypted());
    assert_eq!(epoch(&hub, &conv), None);
    with_group(&mut hub, &conv, &mut people);
    let group = e2ee::group_id(&conv_doc(&conv));
    let ct = people[1].mls.encrypt(&group, b"m1", b"hello").unwrap();
    let read = people[2].mls.decrypt(&ct).unwrap();
    assert_eq!(read.plaintext, b"hello");
    assert_eq!(read.sender, identity("bob"));
}

#[test]
fn channels_and_plaintext_conversations_have_no_group() {
    let mut hub = Hub::new();
    let mut owner = Person::new("alice");
    let fixture = confab_testkit::fixture::ConvFixture::new(ConvKind::Channel, acc("alice"), NOW)
        .tweak(|s| s.encrypted = true);
    let conv = confab_testkit::ids::conv_id("news");
    let (doc, change) = fixture.write(&mut owner.replica, &conv).unwrap();
    assert_eq!(
        code(owner.submit(&mut hub, &doc, change)),
        "encryption_not_allowed"
    );

    let mut people = trio();
    let conv = create(
        &mut hub,
        "plain",
        ConvKind::Group,
        &mut people[0].replica,
        &mut [],
        |_| {},
    );
    let doc = conv_doc(&conv);
    let init = people[0].mls.create_group(&e2ee::group_id(&doc)).unwrap();
    let change = people[0].write_mls(
        &doc,
        MlsWrite::Init {
            group_info: &init.group_info,
            tree: &init.ratchet_tree,
        },
    );
    assert_eq!(
        code(people[0].submit(&mut hub, &doc, change)),
        "not_encrypted"
    );
}

#[test]
fn the_group_is_made_once_for_its_own_conversation_by_the_submitting_device() {
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    let doc = conv_doc(&conv);

    // A group whose id names another conversation.
    let init = people[0].mls.create_group(b"acme/conv/elsewhere").unwrap();
    let change = people[0].write_mls(
        &doc,
        MlsWrite::Init {
            group_info: &init.group_info,
            tree: &init.ratchet_tree,
        },
    );
    assert_eq!(
        code(people[0].submit(&mut hub, &doc, change)),
        "mls_wrong_group"
    );
    people[0].resync(&hub, &doc);

    // Made by a device of bob's but submitted from alice's.
    let mut bobs = Mls::new(identity("bob")).unwrap();
    let init = bobs.create_group(&e2ee::group_id(&doc)).unwrap();
    let change = people[0].write_mls(
        &doc,
        MlsWrite::Init {
            group_info: &init.group_info,
            tree: &init.ratchet_tree,
        },
    );
    assert_eq!(
        code(people[0].submit(&mut hub, &doc, change)),
        "mls_wrong_sender"
    );
    assert_eq!(epoch(&hub, &conv), None);
    people[0].resync(&hub, &doc);

    with_group(&mut hub, &conv, &mut people);
    // A second group for the same conversation.
    people[1].replica.pull(&hub, &doc);
    let mut again = Mls::new(identity("bob")).unwrap();
    let init = again.create_group(&e2ee::group_id(&doc)).unwrap();
    let change = people[1].write_mls(
        &doc,
        MlsWrite::Init {
            group_info: &init.group_info,
            tree: &init.ratchet_tree,
        },
    );
    assert_eq!(
        code(people[1].submit(&mut hub, &doc, change)),
        "mls_group_exists"
    );
    assert_eq!(epoch(&hub, &conv), Some(1));
}

#[test]
fn one_commit_per_epoch_and_only_devices_of_members() {
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    with_group(&mut hub, &conv, &mut people);
    let doc = conv_doc(&conv);
    let group = e2ee::group_id(&doc);

    // Adding the device of dave, who is no member.
    let dave = Mls::new(identity("dave")).unwrap();
    let bundle = people[0]
        .mls
        .commit(&group, &[dave.key_package(false).unwrap()], &[])
        .unwrap();
    let change = people[0].write_mls(
        &doc,
        MlsWrite::Commit {
            epoch: 1,
            commit: &bundle.commit,
            welcome: bundle.welcome.as_deref(),
        },
    );
    assert_eq!(
        code(people[0].submit(&mut hub, &doc, change)),
        "mls_adds_non_member"
    );
    people[0].mls.discard_commit(&group).unwrap();
    people[0].resync(&hub, &doc);

    // Two members commit on epoch 1 at once: the first wins, the second is stale.
    let by_bob = people[1].mls.commit(&group, &[], &[]).unwrap();
    let by_carol = people[2].mls.commit(&group, &[], &[]).unwrap();
    let change = people[1].write_mls(
        &doc,
        MlsWrite::Commit {
            epoch: 1,
            commit: &by_bob.commit,
            welcome: None,
        },
    );
    people[1].submit(&mut hub, &doc, change).unwrap();
    let change = people[2].write_mls(
        &doc,
        MlsWrite::Commit {
            epoch: 1,
            commit: &by_carol.commit,
            welcome: None,
        },
    );
    let refused = code(people[2].submit(&mut hub, &doc, change));
    // Carol's replica had not seen bob's commit: the write conflicts or names a past epoch.
    assert!(
        ["mls_stale_epoch", "conflicting_write"].contains(&refused),
        "{refused}"
    );
    assert_eq!(epoch(&hub, &conv), Some(2));
}

/// Commits `person`'s `bundle` to `doc` on epoch 1: what the hub answered.
fn commit_on_1(
    hub: &mut Hub,
    person: &mut Person,
    doc: &DocId,
    bundle: &e2ee::CommitBundle,
) -> Result<(), Rejection> {
    let change = person.write_mls(
        doc,
        MlsWrite::Commit {
            epoch: 1,
            commit: &bundle.commit,
            welcome: bundle.welcome.as_deref(),
        },
    );
    person.submit(hub, doc, change)
}

fn device_of(account: &str, device: &str) -> Mls {
    Mls::new(DeviceIdentity::new(
        tenant(),
        acc(account),
        DeviceId::new(device).unwrap(),
    ))
    .unwrap()
}

#[test]
fn every_leaf_a_commit_brings_in_is_a_registered_device_with_its_bound_key() {
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    with_group(&mut hub, &conv, &mut people);
    let doc = conv_doc(&conv);
    let group = e2ee::group_id(&doc);
    let saved = hub.doc(&doc).unwrap().doc().save();
    let refused = |hub: &mut Hub, people: &mut [Person], package: Vec<u8>| {
        let bundle = people[1].mls.commit(&group, &[package], &[]).unwrap();
        let answer = commit_on_1(hub, &mut people[1], &doc, &bundle);
        people[1].mls.discard_commit(&group).unwrap();
        people[1].resync(hub, &doc);
        code(answer)
    };

    // bob plants a device under alice's account that the directory never registered: the
    // ghost that would read on after bob's removal.
    let ghost = device_of("alice", "ghost");
    assert_eq!(
        refused(&mut hub, &mut people, ghost.key_package(false).unwrap()),
        "mls_unknown_device"
    );
    // A registered device's name with another key than the one bound to it.
    let tablet = device_of("carol", "tablet");
    register(&mut hub, &tablet);
    let impostor = device_of("carol", "tablet");
    assert_eq!(
        refused(&mut hub, &mut people, impostor.key_package(false).unwrap()),
        "mls_wrong_signature_key"
    );
    // A device removed from the directory comes back in no group.
    let old = device_of("carol", "old");
    register(&mut hub, &old);
    assert!(hub.remove_device(old.identity()));
    assert_eq!(
        refused(&mut hub, &mut people, old.key_package(false).unwrap()),
        "mls_unknown_device"
    );
    // Nothing of it moved the group or the document.
    assert_eq!(epoch(&hub, &conv), Some(1));
    assert_eq!(hub.doc(&doc).unwrap().doc().save(), saved);

    // The registered device with its own key is added.
    let bundle = people[1]
        .mls
        .commit(&group, &[tablet.key_package(false).unwrap()], &[])
        .unwrap();
    commit_on_1(&mut hub, &mut people[1], &doc, &bundle).unwrap();
    assert_eq!(epoch(&hub, &conv), Some(2));
}

#[test]
fn a_new_group_holds_only_registered_devices() {
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    let doc = conv_doc(&conv);
    // alice's device uploads nothing yet, under another key than the one registered.
    let mut unbound = Person {
        replica: people[0].replica.clone(),
        mls: Mls::new(identity("alice")).unwrap(),
    };
    let init = unbound.mls.create_group(&e2ee::group_id(&doc)).unwrap();
    let change = unbound.write_mls(
        &doc,
        MlsWrite::Init {
            group_info: &init.group_info,
            tree: &init.ratchet_tree,
        },
    );
    assert_eq!(
        code(unbound.submit(&mut hub, &doc, change)),
        "mls_wrong_signature_key"
    );
    // A device of alice's that never registered.
    let mut fresh = Person {
        replica: people[0].replica.clone(),
        mls: device_of("alice", "laptop"),
    };
    let init = fresh.mls.create_group(&e2ee::group_id(&doc)).unwrap();
    let change = fresh.write_mls(
        &doc,
        MlsWrite::Init {
            group_info: &init.group_info,
            tree: &init.ratchet_tree,
        },
    );
    assert_eq!(
        code(fresh.submit(&mut hub, &doc, change)),
        "mls_unknown_device"
    );
    assert_eq!(epoch(&hub, &conv), None);
    // The registered one makes it.
    with_group(&mut hub, &conv, &mut people);
    assert_eq!(epoch(&hub, &conv), Some(1));
}

#[test]
fn a_device_removed_from_the_directory_may_be_taken_out_by_any_member() {
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    with_group(&mut hub, &conv, &mut people);
    let doc = conv_doc(&conv);
    let group = e2ee::group_id(&doc);
    // bob removes carol's device while carol is an active member: refused.
    let bundle = people[1]
        .mls
        .commit(&group, &[], &[identity("carol")])
        .unwrap();
    assert_eq!(
        code(commit_on_1(&mut hub, &mut people[1], &doc, &bundle)),
        "mls_removes_member"
    );
    people[1].mls.discard_commit(&group).unwrap();
    people[1].resync(&hub, &doc);
    // carol removed that device from the directory: anyone's commit may take it out.
    assert!(hub.remove_device(&identity("carol")));
    let bundle = people[1]
        .mls
        .commit(&group, &[], &[identity("carol")])
        .unwrap();
    commit_on_1(&mut hub, &mut people[1], &doc, &bundle).unwrap();
    assert_eq!(epoch(&hub, &conv), Some(2));
}

#[test]
fn removing_a_member_carries_the_commit_that_locks_them_out() {
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    with_group(&mut hub, &conv, &mut people);
    let doc = conv_doc(&conv);
    let group = e2ee::group_id(&doc);
    let carol = acc("carol");

    // The removal alone.
    let change = people[0]
        .replica
        .write(&doc, |d, t| {
            write::set_member_status(d, t, NOW, &carol, MemberStatus::Removed)
        })
        .unwrap();
    assert_eq!(
        code(people[0].submit(&mut hub, &doc, change)),
        "mls_commit_required"
    );
    people[0].resync(&hub, &doc);

    // The removal with a commit that leaves carol's device in.
    let idle = people[0].mls.commit(&group, &[], &[]).unwrap();
    let change = removal(&mut people[0], &doc, &idle.commit);
    assert_eq!(
        code(people[0].submit(&mut hub, &doc, change)),
        "mls_missing_removal"
    );
    people[0].mls.discard_commit(&group).unwrap();
    people[0].resync(&hub, &doc);

    // A commit that removes bob's device, who stays a member.
    let wrong = people[0]
        .mls
        .commit(&group, &[], &[identity("bob")])
        .unwrap();
    let change = people[0].write_mls(
        &doc,
        MlsWrite::Commit {
            epoch: 1,
            commit: &wrong.commit,
            welcome: None,
        },
    );
    assert_eq!(
        code(people[0].submit(&mut hub, &doc, change)),
        "mls_removes_member"
    );
    people[0].mls.discard_commit(&group).unwrap();
    people[0].resync(&hub, &doc);
    assert_eq!(epoch(&hub, &conv), Some(1));

    // The removal with its commit.
    let bundle = people[0]
        .mls
        .commit(&group, &[], &[identity("carol")])
        .unwrap();
    let change = removal(&mut people[0], &doc, &bundle.commit);
    people[0].submit(&mut hub, &doc, change).unwrap();
    people[0].mls.confirm_commit(&group).unwrap();
    assert_eq!(epoch(&hub, &conv), Some(2));
    assert!(hub
        .conversation(&conv)
        .unwrap()
        .active_member(&carol)
        .is_none());

    // Bob follows; carol's device, kept with its state, reads nothing sent after.
    let commit = read::read_mls_log(people[0].replica.doc(&doc), 1)
        .unwrap()
        .commits[&1]
        .clone();
    people[1].mls.process_commit(&commit).unwrap();
    let after = people[0]
        .mls
        .encrypt(&group, b"m2", b"after carol")
        .unwrap();
    assert_eq!(
        people[1].mls.decrypt(&after).unwrap().plaintext,
        b"after carol"
    );
    let _ = people[2].mls.process_commit(&commit);
    assert!(people[2].mls.decrypt(&after).is_err());
}

/// Carol removed, with `commit`, in one change.
fn removal(alice: &mut Person, doc: &DocId, commit: &[u8]) -> Change {
    let carol = acc("carol");
    alice
        .replica
        .write(doc, |d, t| {
            write::transact(d, t, NOW, |tx| {
                write::put_member_status(tx, NOW, &carol, MemberStatus::Removed)?;
                write::put_mls(
                    tx,
                    NOW,
                    MlsWrite::Commit {
                        epoch: 1,
                        commit,
                        welcome: None,
                    },
                )
            })
        })
        .unwrap()
}

/// Another server node on the hub's documents: an acceptor of its own that loads the
/// conversation as `hub` stored it (the group is rebuilt from the document before it is
/// checked), and takes what the hub accepted since as another node's commits (`absorb`).
/// It keeps every question it asks the directory.
struct Node {
    acceptor: confab_core::accept::Acceptor,
    asks: Vec<DirectoryAsk>,
}

impl Node {
    fn new(conv: &ConvId) -> Self {
        use confab_core::accept::{Acceptor, AcceptorConfig, UnitId};
        Node {
            acceptor: Acceptor::new(UnitId::of(&conv_doc(conv)), AcceptorConfig::default()),
            asks: Vec::new(),
        }
    }

    fn submit(
        &mut self,
        hub: &Hub,
        conv: &ConvId,
        author: &confab_core::policy::Author,
        change: Change,
    ) -> Result<(), Rejection> {
        use confab_core::accept::{Decision, Need, Step, StoredDoc, Submission};
        let doc = conv_doc(conv);
        let saved = hub.doc(&doc).unwrap().doc().save();
        let seq = hub.changes_after(&doc, 0).len() as u64;
        let mut sub = Submission::from_change(&doc, author, change, NOW);
        loop {
            match self.acceptor.step(&mut sub) {
                Step::Need(Need::Doc(id)) => {
                    let stored = StoredDoc {
                        snapshot: Some(&saved),
                        changes: Vec::new(),
                        last_seq: seq,
                        snapshot_seq: seq,
                        policy_seq: seq,
                    };
                    self.acceptor.load(id, stored).unwrap();
                }
                Step::Need(Need::Binding(actor)) => {
                    let account = hub.binding(&actor).cloned();
                    self.acceptor.answer_binding(&mut sub, actor, account);
                }
                Step::Need(Need::Devices(ask)) => {
                    sub.answer_devices(hub.directory_of(doc.tenant(), &ask));
                    self.asks.push(ask);
                }
                Step::Need(other) => panic!("unexpected need {other:?}"),
                Step::Done(Decision::Accepted(accepted)) => {
                    self.acceptor.committed(&doc, accepted.seq);
                    return Ok(());
                }
                Step::Done(Decision::Rejected(r)) => return Err(r),
                Step::Done(other) => panic!("{other:?}"),
            }
        }
    }

    /// Takes what the hub accepted after what this node holds.
    fn absorb(&mut self, hub: &Hub, conv: &ConvId) {
        let doc = conv_doc(conv);
        let known = self.acceptor.known_seq(&doc).unwrap();
        let raw: Vec<(u64, Vec<u8>)> = hub
            .changes_after(&doc, known)
            .into_iter()
            .map(|(seq, c)| (seq, c.raw_bytes().to_vec()))
            .collect();
        let last = raw.last().map_or(known, |(seq, _)| *seq);
        let tail = confab_core::accept::Tail {
            changes: raw.iter().map(|(seq, b)| (*seq, &b[..])).collect(),
            last_seq: last,
            policy_seq: last,
            snapshot_seq: 0,
        };
        self.acceptor.absorb(&doc, &tail).unwrap();
    }

    fn last_ask(&self) -> &DirectoryAsk {
        self.asks.last().expect("the directory was asked")
    }
}

/// Submits `change` to a fresh node (a server that restarted).
fn submit_after_restart(
    hub: &Hub,
    conv: &ConvId,
    author: &confab_core::policy::Author,
    change: Change,
) -> Result<(), Rejection> {
    Node::new(conv).submit(hub, conv, author, change)
}

#[test]
fn a_restarted_server_rebuilds_the_group_from_the_document() {
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    with_group(&mut hub, &conv, &mut people);
    let doc = conv_doc(&conv);
    let group = e2ee::group_id(&doc);
    let alice = people[0].author();

    // Epoch 1 again after the restart: a commit that keeps carol is still refused.
    let idle = people[0].mls.commit(&group, &[], &[]).unwrap();
    let change = removal(&mut people[0], &doc, &idle.commit);
    let refused = submit_after_restart(&hub, &conv, &alice, change).unwrap_err();
    assert_eq!(refused.code.as_str(), "mls_missing_removal");
    people[0].mls.discard_commit(&group).unwrap();
    people[0].resync(&hub, &doc);

    let bundle = people[0]
        .mls
        .commit(&group, &[], &[identity("carol")])
        .unwrap();
    let change = removal(&mut people[0], &doc, &bundle.commit);
    submit_after_restart(&hub, &conv, &alice, change).unwrap();
}

/// `person`'s commit of `bundle` on `epoch`, as a change of `doc`.
fn commit_change(
    person: &mut Person,
    doc: &DocId,
    epoch: u64,
    bundle: &e2ee::CommitBundle,
) -> Change {
    person.write_mls(
        doc,
        MlsWrite::Commit {
            epoch,
            commit: &bundle.commit,
            welcome: bundle.welcome.as_deref(),
        },
    )
}

fn ask(accounts: &[&str], removed_after: Option<u64>) -> DirectoryAsk {
    DirectoryAsk {
        accounts: accounts.iter().map(|a| acc(a)).collect(),
        removed_after,
    }
}

#[test]
fn a_commit_asks_the_directory_for_what_it_changes_once_the_group_was_checked() {
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    with_group(&mut hub, &conv, &mut people);
    // A removal elsewhere in the tenant: generation 1.
    let old = device_of("alice", "old");
    register(&mut hub, &old);
    assert!(hub.remove_device(old.identity()));
    let doc = conv_doc(&conv);
    let group = e2ee::group_id(&doc);
    let alice = people[0].author();
    let mut node = Node::new(&conv);
    let commit = |people: &mut [Person], node: &mut Node, hub: &mut Hub, epoch| {
        let bundle = people[0].mls.commit(&group, &[], &[]).unwrap();
        let change = commit_change(&mut people[0], &doc, epoch, &bundle);
        let verdict = node.submit(hub, &conv, &alice, change.clone());
        if verdict.is_ok() {
            // The hub is the log both nodes commit to.
            people[0].submit(hub, &doc, change).unwrap();
            people[0].mls.confirm_commit(&group).unwrap();
        } else {
            people[0].mls.discard_commit(&group).unwrap();
            people[0].resync(hub, &doc);
        }
        verdict
    };

    // Just loaded: every account of the group is asked.
    commit(&mut people, &mut node, &mut hub, 1).unwrap();
    assert_eq!(node.last_ask(), &ask(&["alice", "bob", "carol"], None));
    // Checked at generation 1: only the committer's new leaf, and the removals since.
    commit(&mut people, &mut node, &mut hub, 2).unwrap();
    assert_eq!(node.last_ask(), &ask(&["alice"], Some(1)));
    commit(&mut people, &mut node, &mut hub, 3).unwrap();
    assert_eq!(node.last_ask(), &ask(&["alice"], Some(1)));

    // bob's phone is removed after that generation: the next commit that keeps it is refused.
    assert!(hub.remove_device(&identity("bob")));
    assert_eq!(
        code(commit(&mut people, &mut node, &mut hub, 4)),
        "mls_keeps_removed_device"
    );
    assert_eq!(node.last_ask(), &ask(&["alice"], Some(1)));
    // A refusal moves nothing: asked the same way again, refused again.
    assert_eq!(
        code(commit(&mut people, &mut node, &mut hub, 4)),
        "mls_keeps_removed_device"
    );
    assert_eq!(node.last_ask(), &ask(&["alice"], Some(1)));

    // Another node (the hub) commits bob's phone's removal; this one absorbs it, and asks
    // the whole group again at its next commit (the other node checked at its generation).
    let removes = people[0]
        .mls
        .commit(&group, &[], &[identity("bob")])
        .unwrap();
    let change = commit_change(&mut people[0], &doc, 4, &removes);
    people[0].submit(&mut hub, &doc, change).unwrap();
    people[0].mls.confirm_commit(&group).unwrap();
    node.absorb(&hub, &conv);
    commit(&mut people, &mut node, &mut hub, 5).unwrap();
    assert_eq!(node.last_ask(), &ask(&["alice", "carol"], None));
    commit(&mut people, &mut node, &mut hub, 6).unwrap();
    assert_eq!(node.last_ask(), &ask(&["alice"], Some(2)));
}

/// A message whose content `from` sealed for `group`, bound to `bound_to` (its own id when
/// honest).
fn sealed_message(
    from: &mut Person,
    group: &[u8],
    id: &str,
    bound_to: &str,
    text: &str,
) -> confab_core::model::message::NewMessage {
    use confab_core::model::message::{NewMessage, SealedContent};
    let content = SealedContent {
        body: text.into(),
        ..SealedContent::default()
    };
    let sealed = from
        .mls
        .encrypt(group, bound_to.as_bytes(), &content.to_bytes())
        .unwrap();
    let mut m = NewMessage::text(
        confab_testkit::ids::msg_id(id),
        from.replica.account_id(),
        "",
        NOW,
    );
    m.sealed = Some(sealed);
    m
}

fn post(
    person: &mut Person,
    hub: &mut Hub,
    conv: &ConvId,
    m: &confab_core::model::message::NewMessage,
) -> Result<(), Rejection> {
    in_bucket(person, hub, conv, |d, t| write::post_message(d, t, m))
}

/// `write` on `person`'s replica of `conv`'s bucket, submitted.
fn in_bucket(
    person: &mut Person,
    hub: &mut Hub,
    conv: &ConvId,
    write: impl FnOnce(
        &mut confab_core::automerge::Automerge,
        &confab_core::doc::IntentTag,
    )
        -> Result<Option<confab_core::automerge::ChangeHash>, confab_core::doc::DocError>,
) -> Result<(), Rejection> {
    let doc = confab_testkit::ids::bucket_doc(conv, NOW);
    person.replica.pull(hub, &doc);
    let change = person.replica.write(&doc, write).unwrap();
    let result = person.submit(hub, &doc, change);
    // A refused change leaves the replica ahead of the server: start it again from the hub.
    person.resync(hub, &doc);
    result
}

#[test]
fn messages_are_sealed_for_the_group_and_bound_to_their_id() {
    use confab_core::model::message::{NewMessage, SealedContent};
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    let doc = conv_doc(&conv);
    let group = e2ee::group_id(&doc);

    // Before the group exists nothing can be sealed for it.
    let mut early = NewMessage::text(confab_testkit::ids::msg_id("m0"), acc("alice"), "", NOW);
    early.sealed = Some(b"not yet".to_vec());
    assert_eq!(
        code(post(&mut people[0], &mut hub, &conv, &early)),
        "mls_no_group"
    );

    with_group(&mut hub, &conv, &mut people);
    let m1 = sealed_message(&mut people[1], &group, "m1", "m1", "for us only");
    post(&mut people[1], &mut hub, &conv, &m1).unwrap();
    // carol's device opens what the server stored.
    let bucket = confab_testkit::ids::bucket_doc(&conv, NOW);
    people[2].replica.pull(&hub, &bucket);
    let stored = read::read_message(
        people[2].replica.doc(&bucket),
        &confab_testkit::ids::msg_id("m1"),
    )
    .unwrap();
    assert_eq!(stored.body, "");
    let opened = people[2]
        .mls
        .decrypt(stored.sealed.as_ref().unwrap())
        .unwrap();
    assert_eq!(opened.aad, b"m1");
    assert_eq!(
        SealedContent::from_bytes(&opened.plaintext).unwrap().body,
        "for us only"
    );

    // In the clear, or with the content beside the seal.
    let plain = NewMessage::text(
        confab_testkit::ids::msg_id("m2"),
        acc("alice"),
        "hello",
        NOW,
    );
    assert_eq!(
        code(post(&mut people[0], &mut hub, &conv, &plain)),
        "plaintext_in_encrypted"
    );
    let mut both = sealed_message(&mut people[0], &group, "m3", "m3", "x");
    both.caption = Some("a caption in the clear".into());
    assert_eq!(
        code(post(&mut people[0], &mut hub, &conv, &both)),
        "plaintext_in_encrypted"
    );
    // A ciphertext replayed under another message id.
    let mut replay = sealed_message(&mut people[0], &group, "m4", "m4", "x");
    replay.id = confab_testkit::ids::msg_id("m5");
    assert_eq!(
        code(post(&mut people[0], &mut hub, &conv, &replay)),
        "mls_wrong_aad"
    );
    // Garbage, and more than an application message may hold.
    let mut garbage = NewMessage::text(confab_testkit::ids::msg_id("m6"), acc("alice"), "", NOW);
    garbage.sealed = Some(vec![7; 100]);
    assert_eq!(
        code(post(&mut people[0], &mut hub, &conv, &garbage)),
        "mls_malformed"
    );
    garbage.sealed = Some(vec![7; e2ee::MAX_APPLICATION_BYTES + 1]);
    assert_eq!(
        code(post(&mut people[0], &mut hub, &conv, &garbage)),
        "mls_too_large"
    );
    // A body edit would put plaintext in the document.
    let edit = people[1].replica.write(&bucket, |d, t| {
        write::edit_body(
            d,
            t,
            NOW,
            &confab_testkit::ids::msg_id("m1"),
            "edited in the clear",
        )
    });
    let edit = edit.expect("the edit writes on the device");
    assert_eq!(
        code(people[1].submit(&mut hub, &bucket, edit)),
        "plaintext_in_encrypted"
    );

    // A plaintext conversation seals nothing.
    let open = create(
        &mut hub,
        "open",
        ConvKind::Group,
        &mut people[0].replica,
        &mut [],
        |_| {},
    );
    let sealed = sealed_message(&mut people[0], &group, "m7", "m7", "x");
    assert_eq!(
        code(post(&mut people[0], &mut hub, &open, &sealed)),
        "not_encrypted"
    );
}

#[test]
fn a_leave_holds_sealed_messages_until_a_commit_removes_the_leaver() {
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    with_group(&mut hub, &conv, &mut people);
    let doc = conv_doc(&conv);
    let group = e2ee::group_id(&doc);

    // bob leaves: accepted without a commit (he cannot commit his own removal).
    people[1].replica.pull(&hub, &doc);
    let leave = people[1]
        .replica
        .write(&doc, |d, t| {
            write::set_member_status(d, t, NOW, &acc("bob"), MemberStatus::Left)
        })
        .unwrap();
    people[1].submit(&mut hub, &doc, leave).unwrap();
    let held = sealed_message(&mut people[0], &group, "h1", "h1", "bob must not read this");
    assert_eq!(
        code(post(&mut people[0], &mut hub, &conv, &held)),
        "mls_removal_pending"
    );

    // alice's device commits bob's removal; then her message goes, and bob's device, kept
    // with its state, cannot open it.
    people[0].replica.pull(&hub, &doc);
    let bundle = people[0]
        .mls
        .commit(&group, &[], &[identity("bob")])
        .unwrap();
    let change = people[0].write_mls(
        &doc,
        MlsWrite::Commit {
            epoch: 1,
            commit: &bundle.commit,
            welcome: None,
        },
    );
    people[0].submit(&mut hub, &doc, change).unwrap();
    people[0].mls.confirm_commit(&group).unwrap();
    let after = sealed_message(&mut people[0], &group, "h2", "h2", "after bob");
    post(&mut people[0], &mut hub, &conv, &after).unwrap();
    let _ = people[1].mls.process_commit(&bundle.commit);
    assert!(people[1]
        .mls
        .decrypt(after.sealed.as_ref().unwrap())
        .is_err());

    // A device no commit added (alice's second device) seals nothing here.
    let mut tablet = Person {
        replica: Device::new("alice", 2),
        mls: Mls::new(DeviceIdentity::new(
            tenant(),
            acc("alice"),
            DeviceId::new("tablet").unwrap(),
        ))
        .unwrap(),
    };
    tablet.replica.pull(&hub, &doc);
    let foreign = sealed_message(&mut people[0], &group, "h3", "h3", "x");
    assert_eq!(
        code(post(&mut tablet, &mut hub, &conv, &foreign)),
        "mls_not_in_group"
    );
}

/// `person`'s sealed edit of `id` in `conv`'s bucket: `text` sealed for `group` and bound to
/// `bound_to` (the honest one: `sealed_aad(id, Some(the ciphertext it replaces))`).
fn edit_sealed(
    person: &mut Person,
    hub: &mut Hub,
    conv: &ConvId,
    id: &str,
    bound_to: &[u8],
    text: &str,
) -> (Result<(), Rejection>, Vec<u8>) {
    use confab_core::model::message::SealedContent;
    let group = e2ee::group_id(&conv_doc(conv));
    let content = SealedContent {
        body: text.into(),
        ..SealedContent::default()
    };
    let sealed = person
        .mls
        .encrypt(&group, bound_to, &content.to_bytes())
        .unwrap();
    (submit_edit(person, hub, conv, id, &sealed), sealed)
}

fn submit_edit(
    person: &mut Person,
    hub: &mut Hub,
    conv: &ConvId,
    id: &str,
    sealed: &[u8],
) -> Result<(), Rejection> {
    let id = confab_testkit::ids::msg_id(id);
    in_bucket(person, hub, conv, |d, t| {
        write::edit_sealed(d, t, NOW, &id, sealed)
    })
}

#[test]
fn a_sealed_edit_is_bound_to_the_content_it_replaces() {
    use confab_core::model::message::{sealed_aad, SealedContent};
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    with_group(&mut hub, &conv, &mut people);
    let group = e2ee::group_id(&conv_doc(&conv));
    let bucket = confab_testkit::ids::bucket_doc(&conv, NOW);
    let m1 = confab_testkit::ids::msg_id("m1");
    let first = sealed_message(&mut people[1], &group, "m1", "m1", "first");
    post(&mut people[1], &mut hub, &conv, &first).unwrap();
    let first = first.sealed.unwrap();

    // bob's edit over the content m1 holds: accepted, and carol's device opens it.
    let (edited, second) = edit_sealed(
        &mut people[1],
        &mut hub,
        &conv,
        "m1",
        &sealed_aad(&m1, Some(&first)),
        "second",
    );
    edited.unwrap();
    people[2].replica.pull(&hub, &bucket);
    let stored = read::read_message(people[2].replica.doc(&bucket), &m1).unwrap();
    assert_eq!((stored.body.as_str(), stored.edited_at), ("", Some(NOW)));
    assert_eq!(stored.sealed.as_deref(), Some(&second[..]));
    let opened = people[2].mls.decrypt(&second).unwrap();
    assert_eq!(
        SealedContent::from_bytes(&opened.plaintext).unwrap().body,
        "second"
    );

    // A second edit over it; then the first replayed: bound to a content m1 no longer holds.
    let (edited, third) = edit_sealed(
        &mut people[1],
        &mut hub,
        &conv,
        "m1",
        &sealed_aad(&m1, Some(&second)),
        "third",
    );
    edited.unwrap();
    assert_eq!(
        code(submit_edit(&mut people[1], &mut hub, &conv, "m1", &second)),
        "mls_stale_edit"
    );
    let second = third;
    // A content bound as a new message, or to another message.
    let (bare, _) = edit_sealed(&mut people[1], &mut hub, &conv, "m1", b"m1", "x");
    assert_eq!(code(bare), "mls_stale_edit");
    let other = sealed_aad(&confab_testkit::ids::msg_id("m9"), Some(&second));
    let (elsewhere, _) = edit_sealed(&mut people[1], &mut hub, &conv, "m1", &other, "x");
    assert_eq!(code(elsewhere), "mls_wrong_aad");
    // Someone else's device, honestly bound: only the author edits.
    let honest = sealed_aad(&m1, Some(&second));
    let (theirs, _) = edit_sealed(&mut people[0], &mut hub, &conv, "m1", &honest, "x");
    assert_eq!(code(theirs), "not_author");
    // Garbage where the content goes.
    assert_eq!(
        code(submit_edit(&mut people[1], &mut hub, &conv, "m1", &[7; 64])),
        "mls_malformed"
    );

    // A deleted message is no longer sealed, and cannot be edited.
    people[1].replica.pull(&hub, &bucket);
    let delete = people[1]
        .replica
        .write(&bucket, |d, t| {
            write::delete_message(d, t, NOW, &m1, &acc("bob"))
        })
        .unwrap();
    people[1].submit(&mut hub, &bucket, delete).unwrap();
    people[2].replica.pull(&hub, &bucket);
    let gone = read::read_message(people[2].replica.doc(&bucket), &m1).unwrap();
    assert!(gone.sealed.is_none() && gone.deleted_at.is_some());
    let (deleted, _) = edit_sealed(&mut people[1], &mut hub, &conv, "m1", &honest, "x");
    assert_eq!(code(deleted), "message_deleted");

    // Nothing is edited in a locked conversation.
    let m2 = sealed_message(&mut people[1], &group, "m2", "m2", "before the lock");
    post(&mut people[1], &mut hub, &conv, &m2).unwrap();
    let doc = conv_doc(&conv);
    people[0].replica.pull(&hub, &doc);
    let lock = people[0]
        .replica
        .write(&doc, |d, t| {
            write::set_setting(
                d,
                t,
                NOW,
                confab_core::doc::schema::keys::LOCKED,
                true.into(),
            )
        })
        .unwrap();
    people[0].submit(&mut hub, &doc, lock).unwrap();
    let bound = sealed_aad(&confab_testkit::ids::msg_id("m2"), m2.sealed.as_deref());
    let (locked, _) = edit_sealed(&mut people[1], &mut hub, &conv, "m2", &bound, "x");
    assert_eq!(code(locked), "conversation_locked");
}

#[test]
fn a_sealed_edit_is_refused_where_nothing_is_sealed() {
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = create(
        &mut hub,
        "open",
        ConvKind::Group,
        &mut people[0].replica,
        &mut [],
        |_| {},
    );
    let plain = confab_core::model::message::NewMessage::text(
        confab_testkit::ids::msg_id("p1"),
        acc("alice"),
        "hello",
        NOW,
    );
    post(&mut people[0], &mut hub, &conv, &plain).unwrap();
    assert_eq!(
        code(submit_edit(&mut people[0], &mut hub, &conv, "p1", &[7; 64])),
        "not_encrypted"
    );
}

/// `hashes` as a sealed message's `blobs`.
fn blobs_json(hashes: &[confab_core::model::attachment::BlobHash]) -> String {
    confab_core::model::attachment::blob_hashes_to_json(hashes)
}

/// `person`'s raw change of `conv`'s bucket, submitted (on a fresh replica, then resynced).
fn raw_in_bucket(
    person: &mut Person,
    hub: &mut Hub,
    conv: &ConvId,
    f: impl FnOnce(&mut confab_core::automerge::transaction::Transaction<'_>),
) -> Result<(), Rejection> {
    let doc = confab_testkit::ids::bucket_doc(conv, NOW);
    person.replica.pull(hub, &doc);
    let change = confab_testkit::craft::raw(&mut person.replica, &doc, f);
    let result = person.submit(hub, &doc, change);
    person.resync(hub, &doc);
    result
}

#[test]
fn a_sealed_message_names_its_blobs_hashes_in_the_clear_at_post_only() {
    use confab_core::automerge::transaction::Transactable;
    use confab_core::automerge::ScalarValue;
    use confab_core::doc::schema::keys::{BLOBS, MESSAGES};
    use confab_core::model::attachment::BlobHash;
    use confab_core::model::message::{sealed_aad, NewMessage, SealedContent};
    use confab_testkit::craft::{obj, raw_tombstone, s};
    let mut hub = Hub::new();
    let mut people = trio();
    let conv = encrypted_group(&mut hub, "secret", &mut people);
    with_group(&mut hub, &conv, &mut people);
    let group = e2ee::group_id(&conv_doc(&conv));
    let bucket = confab_testkit::ids::bucket_doc(&conv, NOW);
    let (a, b) = (
        BlobHash::of(b"sealed file a"),
        BlobHash::of(b"sealed file b"),
    );

    // Accepted on a sealed post; readers find the hashes beside the seal.
    let mut m1 = sealed_message(&mut people[1], &group, "m1", "m1", "two files");
    m1.blobs = Some(blobs_json(&[a, b]));
    post(&mut people[1], &mut hub, &conv, &m1).unwrap();
    people[2].replica.pull(&hub, &bucket);
    let m1_id = confab_testkit::ids::msg_id("m1");
    let stored = read::read_message(people[2].replica.doc(&bucket), &m1_id).unwrap();
    assert_eq!(stored.blobs, m1.blobs);
    assert_eq!(stored.blob_hashes(&conv), vec![a, b]);

    // Malformed, or more than a message has attachments.
    for (id, blobs, refused) in [
        ("m2", r#"["not a hash"]"#.to_owned(), "invalid_value"),
        (
            "m3",
            format!(r#"["{}"]"#, a.hex().to_uppercase()),
            "invalid_value",
        ),
        ("m4", blobs_json(&[a, a]), "invalid_value"),
        (
            "m5",
            blobs_json(
                &(0..=confab_core::limits::ATTACHMENTS_MAX)
                    .map(|i| BlobHash::of(&i.to_le_bytes()))
                    .collect::<Vec<_>>(),
            ),
            "too_long",
        ),
    ] {
        // Written raw: the device's own write checks them first.
        let m = sealed_message(&mut people[1], &group, id, id, "x");
        let mut fields = confab_testkit::craft::text_fields("bob", "", NOW);
        fields.push((
            confab_core::doc::schema::keys::SEALED,
            ScalarValue::Bytes(m.sealed.unwrap()),
        ));
        fields.push((BLOBS, s(&blobs)));
        let raw = |tx: &mut confab_core::automerge::transaction::Transaction<'_>| {
            confab_testkit::craft::put_message(tx, id, &fields)
        };
        assert_eq!(
            code(raw_in_bucket(&mut people[1], &mut hub, &conv, raw)),
            refused,
            "{id}"
        );
    }

    // Written later, alone or with a sealed edit: immutable. An honest edit keeps them.
    let rewrite = |tx: &mut confab_core::automerge::transaction::Transaction<'_>| {
        let m = obj(&*tx, &[MESSAGES, "m1"]);
        tx.put(&m, BLOBS, s(&blobs_json(&[a]))).unwrap();
    };
    assert_eq!(
        code(raw_in_bucket(&mut people[1], &mut hub, &conv, rewrite)),
        "immutable_field"
    );
    let content = SealedContent {
        body: "two files, edited".into(),
        ..SealedContent::default()
    };
    let edited = people[1]
        .mls
        .encrypt(
            &group,
            &sealed_aad(&m1_id, m1.sealed.as_deref()),
            &content.to_bytes(),
        )
        .unwrap();
    let with_blobs = |tx: &mut confab_core::automerge::transaction::Transaction<'_>| {
        let m = obj(&*tx, &[MESSAGES, "m1"]);
        tx.put(
            &m,
            confab_core::doc::schema::keys::SEALED,
            ScalarValue::Bytes(edited.clone()),
        )
        .unwrap();
        tx.put(&m, confab_core::doc::schema::keys::EDITED_AT, NOW + 1)
            .unwrap();
        tx.put(&m, BLOBS, s(&blobs_json(&[b]))).unwrap();
    };
    assert_eq!(
        code(raw_in_bucket(&mut people[1], &mut hub, &conv, with_blobs)),
        "immutable_field"
    );
    submit_edit(&mut people[1], &mut hub, &conv, "m1", &edited).unwrap();
    people[2].replica.pull(&hub, &bucket);
    let stored = read::read_message(people[2].replica.doc(&bucket), &m1_id).unwrap();
    assert_eq!(
        (stored.edited_at, stored.blobs),
        (Some(NOW), m1.blobs.clone())
    );

    // A delete removes them with the rest: one that keeps them is incomplete.
    people[1].replica.pull(&hub, &bucket);
    let keeps = raw_tombstone(
        &mut people[1].replica,
        &bucket,
        "m1",
        (NOW, "bob"),
        &[BLOBS],
        &[],
    );
    assert_eq!(
        code(people[1].submit(&mut hub, &bucket, keeps)),
        "incomplete_redaction"
    );
    let delete = people[1]
        .replica
        .write(&bucket, |d, t| {
            write::delete_message(d, t, NOW, &m1_id, &acc("bob"))
        })
        .unwrap();
    people[1].submit(&mut hub, &bucket, delete).unwrap();
    people[2].replica.pull(&hub, &bucket);
    let mut keys = read::message_keys(people[2].replica.doc(&bucket), &m1_id).unwrap();
    keys.sort();
    let mut tombstone = confab_core::doc::schema::TOMBSTONE_FIELDS.to_vec();
    tombstone.sort();
    assert_eq!(keys, tombstone);

    // Naming blobs is sending attachments: refused where they are off.
    let doc = conv_doc(&conv);
    people[0].replica.pull(&hub, &doc);
    let off = people[0]
        .replica
        .write(&doc, |d, t| {
            write::set_setting(
                d,
                t,
                NOW,
                confab_core::doc::schema::keys::ALLOW_ATTACHMENTS,
                false.into(),
            )
        })
        .unwrap();
    people[0].submit(&mut hub, &doc, off).unwrap();
    let mut m6 = sealed_message(&mut people[1], &group, "m6", "m6", "a file");
    m6.blobs = Some(blobs_json(&[a]));
    assert_eq!(
        code(post(&mut people[1], &mut hub, &conv, &m6)),
        "attachments_disabled"
    );
    let text = sealed_message(&mut people[1], &group, "m7", "m7", "words only");
    post(&mut people[1], &mut hub, &conv, &text).unwrap();

    // A plaintext message names its blobs by their URLs, never by `blobs`.
    let open = create(
        &mut hub,
        "open",
        ConvKind::Group,
        &mut people[0].replica,
        &mut [],
        |_| {},
    );
    let mut plain = NewMessage::text(
        confab_testkit::ids::msg_id("p1"),
        acc("alice"),
        "hello",
        NOW,
    );
    plain.blobs = Some(blobs_json(&[a]));
    assert_eq!(
        code(post(&mut people[0], &mut hub, &open, &plain)),
        "not_encrypted"
    );
    plain.blobs = None;
    post(&mut people[0], &mut hub, &open, &plain).unwrap();
}
