//! Refusals for people: every code has its own sentence, and the engine's real refusals
//! (a policy check on this device, a server rejection after an offline removal) carry it
//! with names and titles, the code and the technical detail beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::automerge::ActorId;
use confab_core::client::refusal::Code;
use confab_core::client::{ClientConfig, ClientError, Intent, IntentStatus};
use confab_core::ids::{ConvId, DocId, MessageId, TenantId};
use confab_core::model::account::{AccountKind, Profile};
use confab_core::model::conversation::{ConvKind, Role};
use confab_core::model::message::NewMessage;
use confab_core::protocol::ClientFrame;
use confab_testkit::ids::acc;
use confab_testkit::net::{self, HubServer, Peer, Server};

const T0: i64 = 1_775_779_200_000;

fn peer(account: &str) -> Peer {
    let mut actor = [7u8; 16];
    actor[..account.len()].copy_from_slice(account.as_bytes());
    Peer::new(ClientConfig {
        tenant: TenantId::new("acme").unwrap(),
        account: acc(account),
        actor: ActorId::from(&actor[..]),
    })
}

/// The real acceptor between engines: subscriptions answered from its log, submits
/// acked (and pushed to every other online subscriber) or rejected.
struct Relay(HubServer);

impl Server for Relay {
    fn now(&self) -> i64 {
        self.0.now
    }

    fn serve(&mut self, peers: &mut [Peer], from: usize, frame: ClientFrame) {
        match frame {
            ClientFrame::Submit { doc, changes } => {
                for bytes in changes {
                    if let Ok((ack, _)) = self.0.accept(peers, from, &doc, &bytes) {
                        let to = |sub: usize, peer: &Peer| sub != from && peer.online;
                        self.0.push(peers, &doc, ack.seq, &bytes, to);
                    }
                }
            }
            ClientFrame::Subscribe { .. } => self.0.serve(peers, from, frame),
            _ => {}
        }
    }
}

impl Relay {
    fn pump(&mut self, peers: &mut [Peer]) {
        net::pump(self, peers);
    }

    fn connect(&mut self, peers: &mut [Peer], i: usize) {
        net::connect(self, peers, i);
    }
}

fn weekend() -> ConvId {
    ConvId::new("g-weekend").unwrap()
}

/// alice (owner, display name "Alice Liddell") and bob (member) in "Weekend plans".
fn weekend_plans() -> (Relay, Vec<Peer>) {
    let mut relay = Relay(HubServer::new(T0));
    let mut peers = vec![peer("alice"), peer("bob")];
    relay.connect(&mut peers, 0);
    relay.connect(&mut peers, 1);
    let profile = Profile {
        kind: AccountKind::Personal,
        display_name: "Alice Liddell".into(),
        avatar: None,
        bio: None,
        status: None,
    };
    peers[0]
        .engine
        .intent(Intent::SetProfile { profile }, T0)
        .unwrap();
    let create = Intent::CreateConversation {
        encrypted: false,
        conv: weekend(),
        kind: ConvKind::Group,
        title: Some("Weekend plans".into()),
        members: vec![(acc("bob"), Role::Member)],
        settings: None,
        parent: None,
    };
    peers[0].engine.intent(create, T0).unwrap();
    relay.pump(&mut peers);
    let tenant = peers[1].engine.config().tenant.clone();
    peers[1]
        .engine
        .open(&DocId::conv(&tenant, &weekend()))
        .unwrap();
    peers[1]
        .engine
        .open(&DocId::profile(&tenant, &acc("alice")))
        .unwrap();
    relay.pump(&mut peers);
    assert!(
        peers[1].engine.conversation(&weekend()).is_some(),
        "bob sees the group"
    );
    (relay, peers)
}

fn hello(author: &str, id: &str) -> Intent {
    Intent::Send {
        conv: weekend(),
        message: NewMessage::text(MessageId::new(id).unwrap(), acc(author), "hello", T0),
    }
}

#[test]
fn every_code_has_its_own_sentence_without_codes_or_ids() {
    let (_, peers) = weekend_plans();
    let bob = &peers[1].engine;
    let intent = Intent::Pin {
        conv: weekend(),
        message: MessageId::new("m-1").unwrap(),
    };
    let unknown = bob.explain(&intent, "a_code_from_a_newer_server");
    assert!(unknown.contains("Weekend plans"), "{unknown}");
    let all = Code::all();
    assert!(
        all.len() > 60,
        "every reject, deny, error and local code: {}",
        all.len()
    );
    for code in all {
        assert_eq!(Code::parse(code.as_str()), Some(code));
        let sentence = bob.explain(&intent, code.as_str());
        assert!(!sentence.trim().is_empty(), "{code:?}");
        assert_ne!(sentence, unknown, "{code:?} has no sentence of its own");
        assert!(
            !sentence.contains('_'),
            "{code:?} shows an identifier: {sentence}"
        );
        assert!(
            !sentence.contains("g-weekend"),
            "{code:?} shows the id: {sentence}"
        );
    }
}

#[test]
fn the_issue_examples_read_as_sentences() {
    let (_, peers) = weekend_plans();
    let bob = &peers[1].engine;
    let pin = Intent::Pin {
        conv: weekend(),
        message: MessageId::new("m-1").unwrap(),
    };
    assert_eq!(
        bob.explain(&pin, "no_permission"),
        "Your role (member) may not pin messages in Weekend plans"
    );
    let answer = Intent::AnswerProposal {
        conv: weekend(),
        proposal: MessageId::new("m-1").unwrap(),
        bucket: 0.into(),
        status: confab_core::model::proposal::ProposalStatus::Accepted,
    };
    assert_eq!(
        bob.explain(&answer, "not_counterparty"),
        "Only the other party can answer this proposal"
    );
}

#[test]
fn a_local_policy_refusal_names_the_role_the_person_and_the_place() {
    let (_, mut peers) = weekend_plans();
    let remove = Intent::RemoveMember {
        conv: weekend(),
        account: acc("alice"),
        ban: false,
    };
    match peers[1].engine.intent(remove, T0) {
        Err(ClientError::Denied {
            code,
            reason,
            detail,
        }) => {
            assert_eq!(code, "owner_must_transfer");
            assert_eq!(
                reason,
                "Alice Liddell owns Weekend plans: the owner can be removed only after making another member the owner",
                "the profile's name, the conversation's title"
            );
            assert!(
                !detail.is_empty() && detail != reason,
                "the policy's own words stay: {detail}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_member_adds_members_and_is_told_what_it_may_not_grant() {
    let (mut relay, mut peers) = weekend_plans();
    let add = |account: &str, role: Role| Intent::AddMember {
        conv: weekend(),
        account: acc(account),
        role,
    };
    match peers[1].engine.intent(add("carol", Role::Moderator), T0) {
        Err(ClientError::Denied { code, reason, .. }) => {
            assert_eq!(code, "role_too_high");
            assert_eq!(
                reason,
                "You can give at most your own role (member) in Weekend plans"
            );
        }
        other => panic!("{other:?}"),
    }
    let id = peers[1]
        .engine
        .intent(add("carol", Role::Member), T0)
        .expect("a member adds a member");
    relay.pump(&mut peers);
    assert_eq!(
        peers[1].engine.status(id),
        None,
        "accepted by the acceptor too"
    );
}

#[test]
fn a_message_sent_while_removed_offline_is_refused_with_a_sentence() {
    let (mut relay, mut peers) = weekend_plans();
    peers[1].online = false;
    peers[1].engine.disconnected();
    let queued = peers[1].engine.intent(hello("bob", "m-bob-1"), T0).unwrap();
    let remove = Intent::RemoveMember {
        conv: weekend(),
        account: acc("bob"),
        ban: false,
    };
    peers[0].engine.intent(remove, T0).unwrap();
    relay.pump(&mut peers);
    relay.connect(&mut peers, 1);
    match peers[1].engine.status(queued) {
        Some(IntentStatus::Rejected {
            code,
            reason,
            detail,
        }) => {
            assert_eq!(code, "member_inactive");
            assert!(
                reason == "You were removed from Weekend plans"
                    || reason == "You are no longer a member of Weekend plans",
                "{reason}"
            );
            assert!(
                !detail.is_empty(),
                "the server's reason stays as the detail"
            );
        }
        other => panic!("{other:?}"),
    }
}
