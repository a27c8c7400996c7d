//! Shared pieces of the fuzz targets: the prepared documents `validate_change` runs against,
//! the framing of `session` inputs, the well-formedness check of session actions, and the
//! seed inputs (`cargo run --example seeds` writes them into `corpus/<target>/`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod mls;

use std::collections::HashMap;

use confab_core::automerge::{ActorId, Automerge, Change, ReadDoc};
use confab_core::doc::{self, write, IntentTag};
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::{
    ConvKind, Conversation, Info, Member, Role, Settings, DEFAULT_BUCKET_MS,
};
use confab_core::model::message::NewMessage;
use confab_core::policy::Author;
use confab_core::protocol::errors::close;
use confab_core::protocol::frames;
use confab_core::protocol::{
    decode_client, decode_server, encode_client, encode_server, Action, ClientFrame, ErrorCode,
    Identity, Limits, ServerFrame, Session, SignalKind, PROTOCOL_VERSION,
};
use confab_core::validate::{self, AcceptedDoc, Env, Verdict};
use serde_bytes::ByteBuf;

/// Server time of the prepared documents: 2026-04-10T00:00:00Z.
pub const NOW: i64 = 1_775_779_200_000;
/// Frame limit the frame targets decode with (the server default).
pub const MAX_FRAME: usize = 1 << 20;

pub fn tenant() -> TenantId {
    TenantId::new("acme").expect("tenant id")
}

fn account(name: &str) -> AccountId {
    AccountId::new(name).expect("account id")
}

fn actor(name: &str) -> ActorId {
    let mut bytes = [0u8; 16];
    for (i, b) in name.bytes().take(15).enumerate() {
        bytes[i] = b;
    }
    ActorId::from(&bytes[..])
}

/// A group `g1` created by its owner alice with bob as a member: the accepted `conv`
/// document (genesis + creation), the genesis-only message bucket of today, the cached
/// conversation and alice's actor binding. Valid changes of both authors are kept as seeds.
#[derive(Debug)]
pub struct Fixture {
    pub conv_doc: AcceptedDoc,
    pub msgs_doc: AcceptedDoc,
    pub conv: Conversation,
    pub bindings: HashMap<ActorId, AccountId>,
    pub alice: Author,
    pub bob: Author,
    /// Changes the validator accepts: alice on `conv_doc`, bob on `msgs_doc`.
    pub conv_seeds: Vec<Vec<u8>>,
    pub msgs_seeds: Vec<Vec<u8>>,
}

impl Fixture {
    pub fn new() -> Self {
        let conv_id = ConvId::new("g1").expect("conv id");
        let conv_doc_id = DocId::conv(&tenant(), &conv_id);
        let msgs_doc_id = DocId::msgs(&tenant(), &conv_id, NOW.div_euclid(DEFAULT_BUCKET_MS));
        let alice = Author::user(account("alice"));
        let bob = Author::user(account("bob"));
        let alice_actor = actor("alice");
        let bob_actor = actor("bob");

        let mut members = vec![Member::new(alice.account.clone(), Role::Owner)];
        let mut m = Member::new(bob.account.clone(), Role::Member);
        m.invited_by = Some(alice.account.clone());
        members.push(m);
        let spec = write::CreateConv {
            kind: ConvKind::Group,
            created_by: alice.account.clone(),
            created_at: NOW - 1000,
            bucket_ms: DEFAULT_BUCKET_MS,
            thread: None,
            info: Info {
                title: Some("fuzz".into()),
                ..Info::default()
            },
            settings: Settings::defaults_for(ConvKind::Group),
            members,
            encrypted: false,
        };
        let mut alice_conv = doc::genesis(&conv_doc_id)
            .expect("genesis")
            .with_actor(alice_actor.clone());
        write::create_conversation(&mut alice_conv, &IntentTag::new("i1", "create"), &spec)
            .expect("create group");
        let creation = alice_conv.get_last_local_change().expect("creation change");

        let mut conv_doc = AcceptedDoc::new(conv_doc_id).expect("conv doc");
        let mut bindings = HashMap::new();
        let conv = {
            // What the server caches before the creation: the genesis read as a conversation.
            let before = doc::read::read_conversation(conv_doc.doc(), conv_id.clone());
            let env = env(&alice, &bindings, &before);
            match validate::validate(&conv_doc, &env, creation).expect("creation accepted") {
                Verdict::Accept(a) => {
                    conv_doc.apply(a.change).expect("apply creation");
                    if let Some(bound) = a.new_binding {
                        bindings.insert(bound, alice.account.clone());
                    }
                }
                Verdict::AlreadyAccepted(_) => panic!("creation was new"),
            }
            doc::read::read_conversation(conv_doc.doc(), conv_id.clone())
        };
        let msgs_doc = AcceptedDoc::new(msgs_doc_id.clone()).expect("msgs doc");

        // Seeds: a few changes each document accepts.
        let mut conv_seeds = Vec::new();
        let mut n = 10;
        let mut next_tag = || {
            n += 1;
            IntentTag::new(format!("i{n}"), "seed")
        };
        let mut fork = |f: &dyn Fn(&mut Automerge, &IntentTag)| {
            let mut d = alice_conv.fork().with_actor(alice_actor.clone());
            f(&mut d, &next_tag());
            d.get_last_local_change()
                .expect("seed change")
                .raw_bytes()
                .to_vec()
        };
        conv_seeds.push(fork(&|d, t| {
            write::set_info(d, t, NOW, "title", Some("renamed")).expect("set info");
        }));
        conv_seeds.push(fork(&|d, t| {
            let mut m = Member::new(account("carol"), Role::Member);
            m.invited_by = Some(account("alice"));
            write::add_member(d, t, NOW, &m).expect("add member");
        }));
        conv_seeds.push(fork(&|d, t| {
            write::set_info(d, t, NOW, "description", Some("about")).expect("set description");
        }));

        let mut msgs_seeds = Vec::new();
        let bob_msgs = || {
            doc::genesis(&msgs_doc_id)
                .expect("genesis")
                .with_actor(bob_actor.clone())
        };
        let mut d = bob_msgs();
        let m = NewMessage::text(
            MessageId::new("m1").expect("message id"),
            bob.account.clone(),
            "hello",
            NOW,
        );
        write::post_message(&mut d, &IntentTag::new("i1", "seed"), &m).expect("post");
        msgs_seeds.push(
            d.get_last_local_change()
                .expect("post")
                .raw_bytes()
                .to_vec(),
        );
        write::react(
            &mut d,
            &IntentTag::new("i2", "seed"),
            NOW,
            &MessageId::new("m1").expect("message id"),
            &bob.account,
            "👍",
            true,
        )
        .expect("react");
        // The reaction depends on the post: as a seed it exercises missing_dependency.
        msgs_seeds.push(
            d.get_last_local_change()
                .expect("react")
                .raw_bytes()
                .to_vec(),
        );

        Fixture {
            conv_doc,
            msgs_doc,
            conv,
            bindings,
            alice,
            bob,
            conv_seeds,
            msgs_seeds,
        }
    }

    /// Validates `bytes` as alice's change to the `conv` document and as bob's change to the
    /// message bucket, as they are and — when they parse as a change — with the checksum they
    /// deserve (a hostile client computes it; without this, almost every mutation would stop
    /// at the checksum check). Whatever is accepted must apply, and the document must still
    /// save and load. Panics (a fuzz finding) on any broken invariant.
    pub fn check(&self, bytes: &[u8]) {
        self.check_exact(bytes);
        if let Some(fixed) = with_valid_checksum(bytes) {
            if fixed != bytes {
                self.check_exact(&fixed);
            }
        }
    }

    fn check_exact(&self, bytes: &[u8]) {
        let cases = [(&self.conv_doc, &self.alice), (&self.msgs_doc, &self.bob)];
        for (doc, author) in cases {
            let env = env(author, &self.bindings, &self.conv);
            match validate::validate_bytes(doc, &env, bytes) {
                Ok(Verdict::Accept(accepted)) => {
                    let mut after = doc.clone();
                    after
                        .apply(accepted.change)
                        .expect("an accepted change applies");
                    let saved = after.save();
                    if let Err(e) = AcceptedDoc::load(after.id().clone(), &saved) {
                        panic!("accepted, and the document no longer loads: {e}");
                    }
                }
                Ok(Verdict::AlreadyAccepted(hash)) => {
                    assert!(
                        doc.doc().get_change_by_hash(&hash).is_some(),
                        "already accepted means present"
                    );
                }
                Err(rejection) => {
                    assert!(!rejection.code.as_str().is_empty());
                }
            }
        }
    }
}

impl Fixture {
    /// The verdicts of `bytes` on the two documents, as text (for the seed report).
    pub fn outcomes(&self, bytes: &[u8]) -> [String; 2] {
        let one = |doc: &AcceptedDoc, author: &Author| {
            let env = env(author, &self.bindings, &self.conv);
            match validate::validate_bytes(doc, &env, bytes) {
                Ok(Verdict::Accept(_)) => "accept".to_owned(),
                Ok(Verdict::AlreadyAccepted(_)) => "already accepted".to_owned(),
                Err(r) => format!("reject {}", r.code.as_str()),
            }
        };
        [
            one(&self.conv_doc, &self.alice),
            one(&self.msgs_doc, &self.bob),
        ]
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// `bytes` with the checksum (header bytes 4..8) their change hash calls for, if they parse.
pub fn with_valid_checksum(bytes: &[u8]) -> Option<Vec<u8>> {
    let change = Change::from_bytes(bytes.to_vec()).ok()?;
    let mut out = bytes.to_vec();
    out.get_mut(4..8)?.copy_from_slice(&change.hash().0[..4]);
    Some(out)
}

fn env<'a>(
    author: &'a Author,
    bindings: &'a HashMap<ActorId, AccountId>,
    conv: &'a Conversation,
) -> Env<'a> {
    Env {
        author,
        bindings,
        conv: Some(conv),
        others: &(),
        now_ms: NOW,
        last_post_ms: None,
        urls: Default::default(),
        parent_standing: None,
        parent_message: None,
        answered: None,
    }
}

// ---------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------

/// `decode_client_frame`: never panics; a decoded frame re-encodes to bytes that decode to it.
pub fn check_client_frame(data: &[u8]) {
    if let Ok(frame) = decode_client(data, MAX_FRAME) {
        let bytes = encode_client(&frame);
        assert!(!bytes.is_empty(), "a decoded frame encodes");
        assert_eq!(
            decode_client(&bytes, usize::MAX),
            Ok(frame),
            "re-encoded frame decodes to itself"
        );
    }
}

/// `decode_server_frame`: the same for server frames.
pub fn check_server_frame(data: &[u8]) {
    if let Ok(frame) = decode_server(data, MAX_FRAME) {
        let bytes = encode_server(&frame);
        assert!(!bytes.is_empty(), "a decoded frame encodes");
        assert_eq!(
            decode_server(&bytes, usize::MAX),
            Ok(frame),
            "re-encoded frame decodes to itself"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Session inputs
// ---------------------------------------------------------------------------------------

/// The identity a fuzzed session authenticates as.
pub fn identity() -> Identity {
    Identity {
        account: account("alice"),
        tenant: tenant(),
        service: false,
    }
}

/// How a `session` input is read:
/// byte 0: flags — bit 0: start authenticated (a real hello, then `authenticated`); bit 1:
/// small limits (2 changes per submit, 2 subscriptions, burst 4, 16-byte signals); bit 2:
/// answer a fuzzed hello with `auth_failed` instead of `authenticated`.
/// Then messages, each `[len: u8][clock step: u8][len bytes]` (a short tail is one message).
#[derive(Debug)]
pub struct SessionInput<'a> {
    pub start_authenticated: bool,
    pub small_limits: bool,
    pub fail_auth: bool,
    pub messages: Vec<(u8, &'a [u8])>,
}

impl<'a> SessionInput<'a> {
    pub fn parse(data: &'a [u8]) -> Self {
        let flags = data.first().copied().unwrap_or(0);
        let mut rest = data.get(1..).unwrap_or(&[]);
        let mut messages = Vec::new();
        while let [len, step, tail @ ..] = rest {
            let n = usize::from(*len).min(tail.len());
            messages.push((*step, &tail[..n]));
            rest = &tail[n..];
        }
        if let [last] = rest {
            messages.push((0, std::slice::from_ref(last)));
        }
        SessionInput {
            start_authenticated: flags & 1 != 0,
            small_limits: flags & 2 != 0,
            fail_auth: flags & 4 != 0,
            messages,
        }
    }

    /// Builds an input from whole frames (for seeds).
    pub fn encode(flags: u8, messages: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![flags];
        for m in messages {
            let len = u8::try_from(m.len()).expect("seed message under 256 bytes");
            out.push(len);
            out.push(1);
            out.extend_from_slice(m);
        }
        out
    }

    pub fn limits(&self) -> Limits {
        if self.small_limits {
            Limits {
                max_frame_bytes: 200,
                max_changes_per_submit: 2,
                max_subscriptions: 2,
                rate_per_sec: 10,
                rate_burst: 4,
                max_signal_bytes: 16,
            }
        } else {
            Limits::default()
        }
    }
}

/// Runs one `session` input; panics on a malformed action.
pub fn run_session(data: &[u8]) {
    let input = SessionInput::parse(data);
    let limits = input.limits();
    let mut session = Session::new(limits);
    let mut checker = Checker::new(limits);
    let mut now: i64 = 0;
    if input.start_authenticated {
        let hello = encode_client(&ClientFrame::Hello {
            v: PROTOCOL_VERSION,
            token: "t".into(),
            device: "d".into(),
        });
        let out = session.receive(&hello, now);
        checker.check(&session, &out, now);
        assert!(matches!(out.as_slice(), [Action::Authenticate { .. }]));
        let out = session.authenticated(identity(), now);
        checker.authenticated(&session, &out);
    }
    for (step, bytes) in input.messages {
        now += i64::from(step) * 37;
        let out = session.receive(bytes, now);
        checker.check(&session, &out, now);
        if out.iter().any(|a| matches!(a, Action::Authenticate { .. })) {
            if input.fail_auth {
                let out = session.auth_failed(ErrorCode::AuthFailed, "bad token".into());
                checker.check(&session, &out, now);
                assert!(session.is_closed());
            } else {
                let out = session.authenticated(identity(), now);
                checker.authenticated(&session, &out);
            }
        }
    }
}

/// Tracks what a session may do next and checks every batch of actions it returns.
#[derive(Debug)]
pub struct Checker {
    limits: Limits,
    closed: bool,
    authenticating: bool,
    ready: bool,
}

impl Checker {
    pub fn new(limits: Limits) -> Self {
        Checker {
            limits,
            closed: false,
            authenticating: false,
            ready: false,
        }
    }

    fn authenticated(&mut self, session: &Session, out: &[Action]) {
        assert!(self.authenticating, "authenticated only after hello");
        assert!(
            matches!(out, [Action::Send(ServerFrame::Welcome { v, .. })] if *v == PROTOCOL_VERSION),
            "authenticated answers exactly one welcome: {out:?}"
        );
        for a in out {
            if let Action::Send(frame) = a {
                wire_round_trip(frame);
            }
        }
        self.authenticating = false;
        self.ready = true;
        assert_eq!(session.identity(), Some(&identity()));
    }

    /// Checks one batch of actions returned by `receive` (or `auth_failed`).
    pub fn check(&mut self, session: &Session, out: &[Action], now: i64) {
        if self.closed {
            assert!(out.is_empty(), "a closed session stays silent: {out:?}");
            assert!(session.is_closed());
            return;
        }
        assert!(!out.is_empty(), "every frame gets an answer or an action");
        let tenant = tenant();
        for (i, action) in out.iter().enumerate() {
            let last = i + 1 == out.len();
            match action {
                Action::Send(frame) => {
                    wire_round_trip(frame);
                    match frame {
                        ServerFrame::Error { code, fatal, .. } => {
                            assert!(
                                ErrorCode::ALL.iter().any(|c| c.as_str() == code),
                                "unknown error code {code}"
                            );
                            if *fatal {
                                assert!(
                                    matches!(out.get(i + 1), Some(Action::Close { .. })),
                                    "a fatal error is followed by close: {out:?}"
                                );
                            }
                        }
                        ServerFrame::Pong { server_time, .. } => {
                            assert!(self.ready, "pong only when ready");
                            assert_eq!(*server_time, now);
                        }
                        other => panic!("receive sends only errors and pongs: {other:?}"),
                    }
                }
                Action::Authenticate { .. } => {
                    assert!(
                        !self.ready && !self.authenticating,
                        "authenticate once, from the first frame"
                    );
                    assert_eq!(out.len(), 1);
                    self.authenticating = true;
                }
                Action::Close { code, reason } => {
                    assert!(last, "close is the last action: {out:?}");
                    assert!(
                        [close::POLICY, close::AUTH].contains(code),
                        "unexpected close code {code}"
                    );
                    assert!(ErrorCode::ALL.iter().any(|c| c.as_str() == reason));
                    assert!(
                        i > 0
                            && matches!(
                                out[i - 1],
                                Action::Send(ServerFrame::Error { fatal: true, .. })
                            ),
                        "close follows a fatal error"
                    );
                    self.closed = true;
                    self.ready = false;
                    assert!(session.is_closed());
                }
                Action::Subscribe { doc, .. } => {
                    self.doc_action(doc, &tenant);
                    assert!(session.is_subscribed(doc));
                }
                Action::Unsubscribe { doc } => {
                    self.doc_action(doc, &tenant);
                    assert!(!session.is_subscribed(doc));
                }
                Action::Submit { doc, changes } => {
                    self.doc_action(doc, &tenant);
                    assert!(changes.len() <= self.limits.max_changes_per_submit);
                }
                Action::Signal { doc, data, .. } => {
                    self.doc_action(doc, &tenant);
                    assert!(data
                        .as_ref()
                        .is_none_or(|d| d.len() <= self.limits.max_signal_bytes));
                }
                Action::Buckets { doc, limit, .. } => {
                    self.doc_action(doc, &tenant);
                    assert!((1..=frames::BUCKETS_LIMIT_MAX).contains(limit));
                }
                Action::ReadTimes { doc } => self.doc_action(doc, &tenant),
                Action::Memberships => {
                    assert!(self.ready, "memberships only after welcome");
                    assert!(session.is_following());
                }
                Action::UploadKeyPackages {
                    device, packages, ..
                } => {
                    assert!(self.ready, "directory requests only after welcome");
                    assert_eq!(device.tenant, tenant, "the tenant boundary holds");
                    assert!(packages.len() <= frames::KEY_PACKAGES_PER_UPLOAD);
                }
                Action::ClaimKeyPackages { accounts, .. } => {
                    assert!(self.ready, "directory requests only after welcome");
                    assert!(accounts.len() <= frames::CLAIM_ACCOUNTS_MAX);
                    assert!(
                        accounts.windows(2).all(|w| w[0] < w[1]),
                        "claimed accounts are sorted, without repeats"
                    );
                }
                Action::ListDevices { .. } | Action::RemoveDevice { .. } => {
                    assert!(self.ready, "directory requests only after welcome");
                }
            }
        }
        assert!(session.subscriptions().count() <= self.limits.max_subscriptions);
        assert_eq!(session.is_closed(), self.closed);
    }

    fn doc_action(&self, doc: &DocId, tenant: &TenantId) {
        assert!(self.ready, "document actions only after welcome");
        assert_eq!(doc.tenant(), tenant, "the tenant boundary holds");
        assert_eq!(
            DocId::parse(&doc.to_string()).as_ref(),
            Ok(doc),
            "a document id round trips through text"
        );
    }
}

/// A frame the server sends must decode back to itself.
fn wire_round_trip(frame: &ServerFrame) {
    let bytes = encode_server(frame);
    assert!(!bytes.is_empty(), "every server frame encodes");
    assert_eq!(
        decode_server(&bytes, usize::MAX).as_ref(),
        Ok(frame),
        "a server frame round trips"
    );
}

// ---------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------

/// One frame of each kind, well formed.
pub fn client_frames() -> Vec<ClientFrame> {
    vec![
        ClientFrame::Hello {
            v: PROTOCOL_VERSION,
            token: "eyJhbGciOiJIUzI1NiJ9.e30.sig".into(),
            device: "phone".into(),
        },
        ClientFrame::Subscribe {
            doc: "acme/conv/g1".into(),
            after: 7,
        },
        ClientFrame::Unsubscribe {
            doc: "acme/conv/g1".into(),
        },
        ClientFrame::Submit {
            doc: "acme/msgs/g1.20553".into(),
            changes: vec![ByteBuf::from(vec![0x85, 0x6f, 0x4a, 0x83]), ByteBuf::new()],
        },
        ClientFrame::Signal {
            doc: "acme/conv/g1".into(),
            kind: SignalKind::Typing,
            data: Some("x".into()),
        },
        ClientFrame::Signal {
            doc: "other/conv/g1".into(),
            kind: SignalKind::Presence,
            data: None,
        },
        ClientFrame::Ping { nonce: 42 },
        ClientFrame::ReadTimes {
            doc: "acme/conv/g1".into(),
        },
        ClientFrame::Memberships {},
    ]
}

pub fn server_frames() -> Vec<ServerFrame> {
    vec![
        ServerFrame::Welcome {
            v: PROTOCOL_VERSION,
            account: "alice".into(),
            tenant: "acme".into(),
            server_time: NOW,
            max_frame: 1 << 20,
            max_changes: 1000,
        },
        ServerFrame::Changes {
            doc: "acme/conv/g1".into(),
            changes: vec![confab_core::protocol::SeqChange {
                seq: 1,
                change: ByteBuf::from(vec![1, 2, 3]),
            }],
        },
        ServerFrame::Snapshot {
            doc: "acme/conv/g1".into(),
            seq: 9,
            data: ByteBuf::from(vec![0x85, 0x6f]),
            order: Some(confab_core::protocol::SnapshotOrder {
                from: 5,
                actors: vec![ByteBuf::from(vec![1; 16])],
                changes: vec![0, 3, 0, 4],
            }),
        },
        ServerFrame::Synced {
            doc: "acme/conv/g1".into(),
            seq: 9,
        },
        ServerFrame::Ack {
            doc: "acme/conv/g1".into(),
            hash: ByteBuf::from(vec![7; 32]),
            seq: 10,
        },
        ServerFrame::Reject {
            doc: "acme/conv/g1".into(),
            hash: Some(ByteBuf::from(vec![7; 32])),
            code: "policy".into(),
            reason: "no".into(),
        },
        ServerFrame::Revoked {
            doc: "acme/conv/g1".into(),
            code: "forbidden".into(),
            reason: "removed".into(),
        },
        ServerFrame::Signal {
            doc: "acme/conv/g1".into(),
            from: "bob".into(),
            kind: SignalKind::StoppedTyping,
            data: None,
        },
        ServerFrame::Pong {
            nonce: 1,
            server_time: -5,
        },
        ServerFrame::ReadTimes {
            doc: "acme/conv/g1".into(),
            reads: vec![confab_core::protocol::ReadTime {
                account: "bob".into(),
                message: "m1".into(),
                at: Some(NOW),
            }],
        },
        ServerFrame::Memberships {
            memberships: vec![confab_core::protocol::Membership {
                conv: ConvId::new("g1").expect("id"),
                role: Role::Member,
                status: confab_core::model::conversation::MemberStatus::Active,
                seq: 3,
            }],
            more: false,
        },
        ServerFrame::Membership {
            conv: ConvId::new("g1").expect("id"),
            role: Role::Admin,
            status: confab_core::model::conversation::MemberStatus::Removed,
            seq: 4,
        },
        ServerFrame::Error {
            code: "bad_frame".into(),
            message: "x".into(),
            doc: None,
            fatal: true,
            hash: None,
            retry_after_ms: None,
            id: None,
        },
        ServerFrame::Error {
            code: "unavailable".into(),
            message: "database unreachable".into(),
            doc: Some("acme/conv/g1".into()),
            fatal: false,
            hash: Some(ByteBuf::from(vec![7; 32])),
            retry_after_ms: Some(1000),
            id: None,
        },
    ]
}

/// Seed inputs of the `session` target: a hello-first session and an authenticated one.
pub fn session_seeds() -> Vec<Vec<u8>> {
    let frames: Vec<Vec<u8>> = client_frames().iter().map(encode_client).collect();
    vec![
        SessionInput::encode(0, &frames),
        SessionInput::encode(1, &frames[1..]),
        SessionInput::encode(3, &frames[1..]),
        SessionInput::encode(4, &frames[..2]),
    ]
}
