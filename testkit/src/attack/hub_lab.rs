//! The in-memory driver: each case on a fresh `Hub`, at the fixed server time `NOW` (moved
//! on only by a case that waits for a time: `Lab::wait_past`).

use std::collections::HashMap;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use confab_core::automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};
use confab_core::doc::read;
use confab_core::hub::{Ack, Hub};
use confab_core::ids::{AccountId, DocId, TenantId};
use confab_core::model::conversation::Conversation;
use confab_core::policy::Author;
use confab_core::policy::Effect;
use confab_core::validate::RejectCode;
use confab_core::validate::{self, AcceptedDoc, Env, Rejection};

use super::rest::unchanged;
use super::{
    known, Answer, Case, ConvView, Driver, Lab, MemberView, PerDriver, RestAnswer, RestCall,
    RestTarget,
};
use crate::device::Device;
use crate::hub::NOW;
use crate::ids::acc;

/// A fresh in-memory acceptor.
#[derive(Debug, Default)]
pub struct HubLab {
    pub hub: Hub,
    /// How far a case moved the server time past `NOW` (`Lab::wait_past`).
    later: i64,
    devices: super::KeptDevices,
}

/// Everything a rejected change must leave untouched.
#[derive(PartialEq)]
pub struct Snapshot {
    heads: Vec<ChangeHash>,
    saved: Vec<u8>,
    accepted: usize,
    conv: Option<Conversation>,
    binding: Option<AccountId>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The saved bytes by length: a diff of kilobytes of bytes helps nobody.
        f.debug_struct("Snapshot")
            .field("heads", &self.heads)
            .field("saved_bytes", &self.saved.len())
            .field("accepted", &self.accepted)
            .field("conv", &self.conv)
            .field("binding", &self.binding)
            .finish()
    }
}

impl HubLab {
    fn genesis(id: &DocId) -> AcceptedDoc {
        AcceptedDoc::new(id.clone()).expect("every valid document id has a genesis")
    }

    fn answer(result: Result<(Ack, Vec<Effect>), Rejection>) -> Answer {
        match result {
            Ok((ack, _)) => Answer::Ack {
                hash: ack.hash.0.to_vec(),
                seq: ack.seq,
            },
            Err(r) => Answer::Reject {
                hash: r.hash.map(|h| h.0.to_vec()),
                code: r.code.as_str().to_owned(),
                reason: r.reason,
            },
        }
    }

    /// One byte string through the validator's byte path; what decodes goes to the hub.
    fn submit_one(&mut self, dev: &Device, id: &DocId, bytes: &[u8]) -> Answer {
        let accepted = self
            .hub
            .doc(id)
            .cloned()
            .unwrap_or_else(|| Self::genesis(id));
        let bindings: HashMap<ActorId, AccountId> = HashMap::new();
        let env = Env {
            author: &dev.author,
            bindings: &bindings,
            conv: id.conv_id().and_then(|c| self.hub.conversation(c)),
            others: &(),
            now_ms: NOW + self.later,
            last_post_ms: None,
            urls: Default::default(),
            parent_standing: None,
            parent_message: None,
            answered: None,
        };
        if let Err(r) = validate::validate_bytes(&accepted, &env, bytes) {
            return Self::answer(Err(r));
        }
        let change = Change::try_from(bytes).expect("validated bytes decode");
        Self::answer(self.hub.submit(id, &dev.author, change, NOW + self.later))
    }
}

impl Lab for HubLab {
    type State = Snapshot;

    fn driver(&self) -> Driver {
        Driver::Hub
    }

    fn now(&self) -> i64 {
        NOW
    }

    fn clock(&self) -> i64 {
        NOW + self.later
    }

    async fn wait_past(&mut self, _doc: &DocId, time: i64) {
        self.later = self.later.max(time - NOW);
    }

    async fn state(&mut self, id: &DocId, actor: &ActorId) -> Snapshot {
        // A document the hub never saw is its genesis (that is what the hub starts it from).
        let (heads, saved) = match self.hub.doc(id) {
            Some(d) => (d.doc().get_heads(), d.save()),
            None => {
                let g = Self::genesis(id);
                (g.doc().get_heads(), g.save())
            }
        };
        let conv = id.conv_id().map(|c| match self.hub.conversation(c) {
            Some(conv) => conv.clone(),
            None => {
                let conv_doc = DocId::conv(id.tenant(), c);
                let doc = match self.hub.doc(&conv_doc) {
                    Some(d) => d.doc().clone(),
                    None => Self::genesis(&conv_doc).doc().clone(),
                };
                read::read_conversation(&doc, c.clone())
            }
        });
        Snapshot {
            heads,
            saved,
            accepted: self.hub.changes_after(id, 0).len(),
            conv,
            binding: self.hub.binding(actor).cloned(),
        }
    }

    async fn submit(&mut self, dev: &Device, doc: &DocId, change: Change) -> Answer {
        Self::answer(self.hub.submit(doc, &dev.author, change, NOW + self.later))
    }

    async fn submit_raw(&mut self, dev: &Device, doc: &DocId, raw: &[Vec<u8>]) -> Vec<Answer> {
        let answers: Vec<Answer> = raw.iter().map(|b| self.submit_one(dev, doc, b)).collect();
        for a in &answers {
            if let Answer::Reject { code, .. } = a {
                known(code);
            }
        }
        answers
    }

    async fn holds(&mut self, doc: &DocId, hash: &ChangeHash) -> bool {
        self.hub
            .doc(doc)
            .is_some_and(|d| d.doc().get_change_by_hash(hash).is_some())
    }

    /// The hub keeps no count or audit of rejections.
    async fn rejected(&mut self, _: &Device, _: &DocId, _: &str, _: Option<ChangeHash>) {}

    async fn pull(&mut self, dev: &mut Device, doc: &DocId) {
        dev.pull(&self.hub, doc);
    }

    async fn read(&mut self, doc: &DocId) -> Automerge {
        match self.hub.doc(doc) {
            Some(d) => d.doc().clone(),
            None => Self::genesis(doc).doc().clone(),
        }
    }

    async fn log_len(&mut self, doc: &DocId) -> usize {
        self.hub.changes_after(doc, 0).len()
    }

    async fn sound(&mut self, doc: &DocId) {
        let saved = self.hub.doc(doc).expect("an accepted document").save();
        AcceptedDoc::load(doc.clone(), &saved).expect("the saved document loads");
        assert!(!self.hub.changes_after(doc, 0).is_empty(), "the log serves");
    }

    async fn conversation(&mut self, doc: &DocId) -> Option<ConvView> {
        let conv = self.hub.conversation(doc.conv_id()?)?;
        conv.meta.as_ref()?;
        Some(ConvView {
            title: conv.info.title.clone().unwrap_or_default(),
            members: conv
                .members
                .iter()
                .map(|(account, m)| MemberView {
                    account: account.as_str().to_owned(),
                    // As REST shows it: the role now (a lapsed temporary role lapsed).
                    role: m.at(NOW + self.later).role.as_str().to_owned(),
                    active: m.is_active(),
                })
                .collect(),
            allow_reactions: conv.settings.allow_reactions,
            max_subroom_depth: u64::from(conv.settings.max_subroom_depth),
            pins: conv.pins.keys().map(|m| m.as_str().to_owned()).collect(),
        })
    }

    async fn unreadable(&mut self, dev: &Device, doc: &DocId, code: PerDriver<&str>) {
        // The hub's read gate: an accepted change is acknowledged again only to its writer or
        // to whoever may read the document.
        let theirs = self
            .hub
            .changes_after(doc, 0)
            .into_iter()
            .map(|(_, c)| c)
            .find(|c| c.actor_id() != &dev.actor)
            .expect("a change by someone else to resubmit");
        self.reject_resubmission(dev, doc, theirs, code.get(Driver::Hub))
            .await;
    }

    async fn reads_refused(&mut self, dev: &Device, doc: &DocId, code: &str) {
        known(code);
        let denied = self
            .hub
            .may_read(doc, &dev.author.account, dev.author.service)
            .expect_err("may not read");
        assert_eq!(
            denied.code().map(|c| c.as_str()),
            Some(code),
            "{doc}: {denied}"
        );
    }

    fn binding(&self, actor: &ActorId) -> Option<Option<AccountId>> {
        Some(self.hub.binding(actor).cloned())
    }

    async fn register(&mut self, device: &confab_core::e2ee::Device) {
        self.hub
            .register_device(device.identity().clone(), device.signature_key())
            .expect("the device registers");
    }

    async fn unregister(&mut self, device: &confab_core::e2ee::DeviceIdentity) {
        assert!(self.hub.remove_device(device), "{device} was registered");
    }

    fn kept_devices(&mut self) -> &mut super::KeptDevices {
        &mut self.devices
    }

    /// What the route runs (`server/src/rest/edits.rs`), in its order.
    async fn rest(
        &mut self,
        tenant: &TenantId,
        account: &str,
        at: &RestTarget,
        call: &RestCall,
    ) -> RestAnswer {
        let cd = at.conv_doc();
        let conv = cd.conv_id().expect("a conversation document");
        // The conversation of the caller's tenant (the hub holds one tenant's).
        if tenant != cd.tenant() || self.hub.conversation(conv).is_none() {
            return RestAnswer::NotFound;
        }
        let author = Author::user(acc(account));
        if let Err(denied) = self.hub.may_read(&cd, &author.account, false) {
            return denied.code().map_or(RestAnswer::NotFound, |c| {
                RestAnswer::Refused(c.as_str().into())
            });
        }
        match read::read_message(&self.read(&at.bucket).await, &at.message) {
            None => return RestAnswer::NotFound,
            // The route says the policy's rule before writing a second tombstone.
            Some(m) if m.deleted_at.is_some() && *call == RestCall::Delete => {
                return RestAnswer::Refused("message_deleted".into())
            }
            Some(_) => {}
        }
        let doc = at.doc_of(call);
        let accepted = self.read(&doc).await;
        let now = NOW + self.later;
        let answer = match at.change(&accepted, tenant, &author.account, call, now) {
            Ok(Some(change)) => match self.hub.submit(&doc, &author, change, now) {
                Ok(_) => return RestAnswer::Done,
                Err(r) if r.code == RejectCode::NotApplicable => None,
                Err(r) => {
                    known(r.code.as_str());
                    Some(RestAnswer::Refused(r.code.as_str().into()))
                }
            },
            Ok(None) | Err(_) => None,
        };
        match answer {
            Some(answer) => answer,
            None => {
                let conv = self.hub.conversation(conv).expect("looked up").clone();
                let bucket = self.read(&at.bucket).await;
                unchanged(call, at, &conv, &author, &bucket, now)
            }
        }
    }
}

/// Polls a future that never waits (every `HubLab` method is ready at once).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("an in-memory case waited on something"),
    }
}

/// Runs every case of `cases` that applies to the hub, each on a fresh `HubLab`; a failing
/// case does not hide the ones after it. Returns the names that ran.
pub fn run_on_hub(cases: Vec<Case<HubLab>>) -> Vec<&'static str> {
    let mut ran = Vec::new();
    let mut failures = Vec::new();
    for case in cases.iter().filter(|c| c.drivers.contains(&Driver::Hub)) {
        let mut lab = HubLab::default();
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| ready((case.run)(&mut lab)))) {
            let text = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".into());
            failures.push(format!("{}: {text}", case.name));
        }
        ran.push(case.name);
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        ran.len(),
        failures.join("\n")
    );
    ran
}
