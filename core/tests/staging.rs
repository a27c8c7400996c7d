//! Staged validation (the server's batch apply) must give exactly the verdicts and the
//! document that one-change-at-a-time validation gives, whatever the order of reactions,
//! edits, deletes and clashing message ids, and wherever the batches end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use confab_core::automerge::{ActorId, Change};
use confab_core::doc::write;
use confab_core::hub::Hub;
use confab_core::ids::{AccountId, DocId};
use confab_core::model::conversation::{Conversation, Role};
use confab_core::model::message::NewMessage;
use confab_core::validate::{self, AcceptedDoc, Env, Verdict};
use confab_testkit::{hub::*, ids::*, Device};
use proptest::prelude::*;

/// A server-side view of one bucket: validates with or without staging.
struct Server {
    doc: AcceptedDoc,
    bindings: HashMap<ActorId, AccountId>,
    conv: Conversation,
    staged: bool,
}

impl Server {
    fn new(bucket: &DocId, conv: Conversation, staged: bool) -> Self {
        Server {
            doc: AcceptedDoc::new(bucket.clone()).unwrap(),
            bindings: HashMap::new(),
            conv,
            staged,
        }
    }

    /// The verdict as a short string: "ok", "again" or the reject code.
    fn submit(&mut self, dev: &Device, change: Change) -> String {
        let env = Env {
            author: &dev.author,
            bindings: &self.bindings,
            conv: Some(&self.conv),
            others: &(),
            now_ms: NOW,
            last_post_ms: None,
            urls: Default::default(),
            parent_standing: None,
            parent_message: None,
            answered: None,
        };
        let verdict = if self.staged {
            validate::validate_staged(&mut self.doc, &env, change)
        } else {
            validate::validate(&self.doc, &env, change)
        };
        match verdict {
            Err(r) => r.code.as_str().to_owned(),
            Ok(Verdict::AlreadyAccepted(_)) => "again".into(),
            Ok(Verdict::Accept(a)) => {
                if let Some(actor) = a.new_binding.clone() {
                    self.bindings.insert(actor, dev.account_id());
                }
                if self.staged {
                    self.doc.stage(a.change, a.footprint).unwrap();
                } else {
                    self.doc.apply(a.change).unwrap();
                }
                "ok".into()
            }
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        self.doc.apply_staged().unwrap();
        let mut heads = self.doc.doc().get_heads();
        heads.sort();
        heads.iter().flat_map(|h| h.0).collect()
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// Device posts a message with an id from a small pool (ids clash across devices).
    Post(usize, u8),
    /// Device reacts to the n-th message it knows.
    React(usize, usize),
    /// Device edits / deletes the n-th message it knows (only its own are allowed).
    Edit(usize, usize),
    Delete(usize, usize),
    /// Device pulls everything the plain server accepted.
    Pull(usize),
    /// The staged server applies what it staged (a batch ends).
    Flush,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..3usize, 0..12u8).prop_map(|(d, i)| Step::Post(d, i)),
        2 => (0..3usize, 0..8usize).prop_map(|(d, n)| Step::React(d, n)),
        1 => (0..3usize, 0..8usize).prop_map(|(d, n)| Step::Edit(d, n)),
        1 => (0..3usize, 0..8usize).prop_map(|(d, n)| Step::Delete(d, n)),
        2 => (0..3usize).prop_map(Step::Pull),
        1 => Just(Step::Flush),
    ]
}

struct World {
    bucket: DocId,
    devices: Vec<Device>,
    plain: Server,
    staged: Server,
    /// Accepted changes in order, for devices that pull.
    log: Vec<Change>,
    verdicts: Vec<(String, String)>,
}

impl World {
    fn new() -> Self {
        let mut hub = Hub::new();
        let mut alice = Device::new("alice", 1);
        let mut bob = Device::new("bob", 1);
        let mut carol = Device::new("carol", 1);
        let conv = group(
            &mut hub,
            "staging",
            &mut alice,
            &mut [(&mut bob, Role::Member), (&mut carol, Role::Moderator)],
        );
        let cached = hub.conversation(&conv).unwrap().clone();
        let bucket = bucket_doc(&conv, NOW);
        World {
            plain: Server::new(&bucket, cached.clone(), false),
            staged: Server::new(&bucket, cached, true),
            bucket,
            devices: vec![alice, bob, carol],
            log: Vec::new(),
            verdicts: Vec::new(),
        }
    }

    /// Message ids device `d` can see, in a stable order.
    fn known(&mut self, d: usize) -> Vec<confab_core::ids::MessageId> {
        let bucket = self.bucket.clone();
        let doc = self.devices[d].doc(&bucket);
        let mut ids: Vec<_> = confab_core::doc::read::read_messages(doc)
            .into_iter()
            .map(|m| m.id)
            .collect();
        ids.sort();
        ids
    }

    fn send(&mut self, d: usize, change: Change) {
        let a = self.plain.submit(&self.devices[d], change.clone());
        let b = self.staged.submit(&self.devices[d], change.clone());
        if a == "ok" {
            self.log.push(change);
        }
        self.verdicts.push((a, b));
    }

    fn run(&mut self, step: &Step) {
        let bucket = self.bucket.clone();
        match step {
            Step::Post(d, i) => {
                let message = NewMessage::text(
                    msg_id(&format!("m{i}")),
                    self.devices[*d].account_id(),
                    "hello",
                    NOW,
                );
                let change = self.devices[*d]
                    .try_write(&bucket, |doc, tag| write::post_message(doc, tag, &message));
                if let Some(change) = change {
                    self.send(*d, change);
                }
            }
            Step::React(d, n) | Step::Edit(d, n) | Step::Delete(d, n) => {
                let known = self.known(*d);
                let Some(id) = known.get(n % known.len().max(1)).cloned() else {
                    return;
                };
                let account = self.devices[*d].account_id();
                let change = self.devices[*d].try_write(&bucket, |doc, tag| match step {
                    Step::React(..) => write::react(doc, tag, NOW, &id, &account, "👍", true),
                    Step::Edit(..) => write::edit_body(doc, tag, NOW, &id, "edited"),
                    _ => write::delete_message(doc, tag, NOW, &id, &account),
                });
                if let Some(change) = change {
                    self.send(*d, change);
                }
            }
            Step::Pull(d) => {
                let log = self.log.clone();
                self.devices[*d].doc(&bucket).apply_changes(log).unwrap();
            }
            Step::Flush => self.staged.doc.apply_staged().unwrap(),
        }
    }
}

fn check(steps: &[Step]) {
    let mut world = World::new();
    for step in steps {
        world.run(step);
    }
    for (i, (plain, staged)) in world.verdicts.iter().enumerate() {
        assert_eq!(plain, staged, "verdict {i} differs: {steps:?}");
    }
    assert_eq!(
        world.plain.finish(),
        world.staged.finish(),
        "documents differ"
    );
}

#[test]
fn clashing_ids_reactions_and_edits_on_staged_messages_match_plain_validation() {
    use Step::*;
    let steps = [
        Post(0, 1),   // alice m1, staged
        Post(1, 2),   // bob m2, staged
        Pull(1),      // bob sees m1 and m2
        React(1, 0),  // bob reacts to staged m1
        Edit(0, 0),   // alice edits her staged m1
        Pull(2),      // carol sees it all
        Delete(2, 1), // carol (moderator) deletes bob's m2
        React(2, 1),  // and reacts to it afterwards
        Post(2, 1),   // carol's own m1 clashes with alice's staged m1
        Flush,
        Edit(1, 0), // bob may not edit alice's message
        Post(1, 3),
        Post(1, 3), // bob's own id again: refused on his device, nothing sent
    ];
    check(&steps);
    let world = {
        let mut w = World::new();
        for s in &steps {
            w.run(s);
        }
        w
    };
    let codes: Vec<&str> = world.verdicts.iter().map(|(a, _)| a.as_str()).collect();
    assert!(codes.contains(&"conflicting_write"), "{codes:?}");
    assert!(
        codes.iter().filter(|c| **c == "ok").count() >= 5,
        "{codes:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn staged_validation_matches_plain_validation(steps in proptest::collection::vec(step(), 1..40)) {
        check(&steps);
    }
}
