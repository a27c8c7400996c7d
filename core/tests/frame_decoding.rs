//! No network input panics the core (every frame decoder is also fuzzed: fuzz/README.md). On
//! stable Rust, in normal CI: proptest properties over random and mutated bytes for the frame
//! decoders, the session state machine and change validation, round trips of well-formed
//! frames, and explicit regression cases for hostile CBOR. Each must end in a clean error, never a panic.
//! The coverage-guided fuzz targets live in `fuzz/` (nightly, `cargo +nightly fuzz run ...`);
//! crash inputs they find are kept here as inline byte arrays.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use confab_core::automerge::{ActorId, Automerge, Change};
use confab_core::doc::{self as cdoc, write, IntentTag};
use confab_core::hub::Hub;
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};
use confab_core::model::conversation::{Conversation, MemberStatus, Role};
use confab_core::model::message::NewMessage;
use confab_core::policy::Author;
use confab_core::protocol::errors::close;
use confab_core::protocol::{
    decode_client, decode_server, encode_client, encode_server, Action, ClientFrame, ErrorCode,
    Identity, Limits, Membership, ProtocolError, SeqChange, ServerFrame, Session, SignalKind,
    SnapshotOrder, PROTOCOL_VERSION,
};
use confab_core::validate::{validate_bytes, AcceptedDoc, Env, RejectCode, Rejection, Verdict};
use confab_testkit::fixture::ConvFixture;
use confab_testkit::{hub::*, ids::*};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_bytes::ByteBuf;

const MAX: usize = 1 << 20;

/// Deterministic in CI (a fixed seed, no regression files written); set `PROPTEST_RNG_SEED`
/// (and `PROPTEST_CASES`) to explore further.
fn config(cases: u32) -> Config {
    let base = Config::default();
    let rng_seed = if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
        base.rng_seed
    } else {
        RngSeed::Fixed(0x00c0_ffee_f4a2)
    };
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        base.cases
    } else {
        cases
    };
    Config {
        cases,
        rng_seed,
        failure_persistence: None,
        ..base
    }
}

// ---------------------------------------------------------------------------------------
// Raw CBOR, for inputs a serializer would never produce
// ---------------------------------------------------------------------------------------

fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => [vec![m | 25], (n as u16).to_be_bytes().to_vec()].concat(),
        0x1_0000..=0xffff_ffff => [vec![m | 26], (n as u32).to_be_bytes().to_vec()].concat(),
        _ => [vec![m | 27], n.to_be_bytes().to_vec()].concat(),
    }
}

fn uint(n: u64) -> Vec<u8> {
    head(0, n)
}

fn bstr(b: &[u8]) -> Vec<u8> {
    [head(2, b.len() as u64), b.to_vec()].concat()
}

/// A text string with arbitrary (possibly not UTF-8) content.
fn tstr_raw(b: &[u8]) -> Vec<u8> {
    [head(3, b.len() as u64), b.to_vec()].concat()
}

fn tstr(s: &str) -> Vec<u8> {
    tstr_raw(s.as_bytes())
}

/// A definite-length map of already encoded key/value pairs (duplicates allowed).
fn map(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = head(5, pairs.len() as u64);
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.extend_from_slice(v);
    }
    out
}

fn bad_frame<T: std::fmt::Debug>(r: Result<T, ProtocolError>) -> String {
    match r {
        Err(ProtocolError::BadFrame(reason)) => reason,
        other => panic!("expected bad_frame, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

fn identity() -> Identity {
    Identity {
        account: acc("alice"),
        tenant: tenant(),
        service: false,
    }
}

fn hello() -> Vec<u8> {
    encode_client(&ClientFrame::Hello {
        v: PROTOCOL_VERSION,
        token: "t".into(),
        device: "d".into(),
    })
}

fn ready(limits: Limits) -> Session {
    let mut s = Session::new(limits);
    assert!(matches!(
        s.receive(&hello(), 0).as_slice(),
        [Action::Authenticate { .. }]
    ));
    assert!(matches!(
        s.authenticated(identity(), 0).as_slice(),
        [Action::Send(ServerFrame::Welcome { .. })]
    ));
    s
}

/// The single error a batch of actions reports: (code, fatal).
fn error_of(out: &[Action]) -> Option<(String, bool)> {
    out.iter().find_map(|a| match a {
        Action::Send(ServerFrame::Error { code, fatal, .. }) => Some((code.clone(), *fatal)),
        _ => None,
    })
}

fn assert_non_fatal_bad_frame(out: &[Action]) {
    assert_eq!(out.len(), 1, "one error frame, nothing else: {out:?}");
    assert_eq!(error_of(out), Some(("bad_frame".to_owned(), false)));
}

fn assert_fatal(out: &[Action], code: &str) {
    assert_eq!(error_of(out), Some((code.to_owned(), true)), "{out:?}");
    assert!(
        matches!(
            out.last(),
            Some(Action::Close {
                code: close::POLICY,
                ..
            })
        ),
        "{out:?}"
    );
}

/// Checks every batch of actions a session returns; tracks what it may do next.
struct Checker {
    limits: Limits,
    closed: bool,
    authenticating: bool,
    ready: bool,
    following: bool,
}

impl Checker {
    fn new(limits: Limits) -> Self {
        Checker {
            limits,
            closed: false,
            authenticating: false,
            ready: false,
            following: false,
        }
    }

    fn check(&mut self, session: &Session, out: &[Action], now: i64) {
        if self.closed {
            assert!(out.is_empty(), "a closed session stays silent: {out:?}");
            return;
        }
        assert!(!out.is_empty(), "every frame gets an answer or an action");
        for (i, action) in out.iter().enumerate() {
            match action {
                Action::Send(frame) => {
                    let wire = encode_server(frame);
                    assert_eq!(decode_server(&wire, usize::MAX).as_ref(), Ok(frame));
                    match frame {
                        ServerFrame::Error { code, fatal, .. } => {
                            assert!(ErrorCode::ALL.iter().any(|c| c.as_str() == code));
                            assert_eq!(
                                *fatal,
                                matches!(out.get(i + 1), Some(Action::Close { .. })),
                                "fatal exactly when close follows: {out:?}"
                            );
                        }
                        ServerFrame::Pong { server_time, .. } => {
                            assert!(self.ready);
                            assert_eq!(*server_time, now);
                        }
                        other => panic!("receive sends only errors and pongs: {other:?}"),
                    }
                }
                Action::Authenticate { .. } => {
                    assert!(!self.ready && !self.authenticating && out.len() == 1);
                    self.authenticating = true;
                }
                Action::Close { code, reason } => {
                    assert_eq!(i + 1, out.len(), "close comes last");
                    assert!([close::POLICY, close::AUTH].contains(code));
                    assert!(ErrorCode::ALL.iter().any(|c| c.as_str() == reason));
                    self.closed = true;
                    self.ready = false;
                }
                Action::Subscribe { doc, .. } => {
                    self.doc_action(doc);
                    assert!(session.is_subscribed(doc));
                }
                Action::Unsubscribe { doc } => {
                    self.doc_action(doc);
                    assert!(!session.is_subscribed(doc));
                }
                Action::Submit { doc, changes } => {
                    self.doc_action(doc);
                    assert!(changes.len() <= self.limits.max_changes_per_submit);
                }
                Action::Buckets { doc, limit, .. } => {
                    self.doc_action(doc);
                    assert!(matches!(doc.target(), confab_core::ids::DocTarget::Conv(_)));
                    assert!((1..=confab_core::protocol::frames::BUCKETS_LIMIT_MAX).contains(limit));
                }
                Action::ReadTimes { doc } => {
                    self.doc_action(doc);
                    assert!(matches!(doc.target(), confab_core::ids::DocTarget::Conv(_)));
                }
                Action::Signal { doc, data, .. } => {
                    self.doc_action(doc);
                    assert!(data
                        .as_ref()
                        .is_none_or(|d| d.len() <= self.limits.max_signal_bytes));
                }
                Action::Memberships => {
                    assert!(self.ready, "memberships only after welcome");
                    assert!(!self.following, "the feed starts once per connection");
                    assert!(session.is_following());
                    self.following = true;
                }
                Action::UploadKeyPackages {
                    device, packages, ..
                } => {
                    assert!(self.ready, "directory requests only after welcome");
                    assert_eq!(device.tenant, tenant(), "the tenant boundary holds");
                    assert!(packages.len() <= confab_core::protocol::KEY_PACKAGES_PER_UPLOAD);
                }
                Action::ClaimKeyPackages { accounts, .. } => {
                    assert!(self.ready, "directory requests only after welcome");
                    assert!(accounts.len() <= confab_core::protocol::CLAIM_ACCOUNTS_MAX);
                }
                Action::ListDevices { .. } | Action::RemoveDevice { .. } => {
                    assert!(self.ready, "directory requests only after welcome");
                }
            }
        }
        assert!(session.subscriptions().count() <= self.limits.max_subscriptions);
        assert_eq!(session.is_closed(), self.closed);
    }

    fn doc_action(&self, doc: &DocId) {
        assert!(self.ready, "document actions only after welcome");
        assert_eq!(doc.tenant(), &tenant(), "the tenant boundary holds");
        assert_eq!(DocId::parse(&doc.to_string()).as_ref(), Ok(doc));
    }

    fn authenticated(&mut self, out: &[Action]) {
        assert!(self.authenticating);
        assert!(matches!(out, [Action::Send(ServerFrame::Welcome { .. })]));
        self.authenticating = false;
        self.ready = true;
    }
}

/// Feeds `messages` (with clock steps) into a fresh session; answers every `Authenticate`.
fn run_session(start_ready: bool, small: bool, fail_auth: bool, messages: &[(u16, Vec<u8>)]) {
    let limits = if small {
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
    };
    let mut s = Session::new(limits);
    let mut checker = Checker::new(limits);
    let mut now = 0i64;
    if start_ready {
        let out = s.receive(&hello(), now);
        checker.check(&s, &out, now);
        let out = s.authenticated(identity(), now);
        checker.authenticated(&out);
    }
    for (step, bytes) in messages {
        now += i64::from(*step);
        let out = s.receive(bytes, now);
        checker.check(&s, &out, now);
        if matches!(out.as_slice(), [Action::Authenticate { .. }]) {
            if fail_auth {
                let out = s.auth_failed(ErrorCode::AuthFailed, "no".into());
                assert!(matches!(
                    out.last(),
                    Some(Action::Close {
                        code: close::AUTH,
                        ..
                    })
                ));
                checker.closed = true;
            } else {
                let out = s.authenticated(identity(), now);
                checker.authenticated(&out);
            }
        }
        assert_eq!(s.is_closed(), checker.closed);
    }
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9]{1,8}",
        "\\PC{0,16}",
        any::<String>(),
    ]
}

fn doc_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("acme/conv/g1".to_owned()),
        Just("acme/msgs/g1.20553".to_owned()),
        Just("evil/conv/g1".to_owned()),
        "(acme|evil)/(conv|msgs|profile|private|x)/[a-z0-9.+-]{0,10}",
        text(),
    ]
}

fn blob() -> impl Strategy<Value = ByteBuf> {
    vec(any::<u8>(), 0..48).prop_map(ByteBuf::from)
}

fn snapshot_order() -> impl Strategy<Value = SnapshotOrder> {
    (any::<u64>(), vec(blob(), 0..4), vec(any::<i64>(), 0..12)).prop_map(
        |(from, actors, changes)| SnapshotOrder {
            from,
            actors,
            changes,
        },
    )
}

fn signal_kind() -> impl Strategy<Value = SignalKind> {
    prop_oneof![
        Just(SignalKind::Typing),
        Just(SignalKind::StoppedTyping),
        Just(SignalKind::DeviceWaiting),
        Just(SignalKind::Presence),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (
            prop_oneof![Just(PROTOCOL_VERSION), any::<u32>()],
            text(),
            text()
        )
            .prop_map(|(v, token, device)| ClientFrame::Hello { v, token, device }),
        (doc_text(), any::<u64>()).prop_map(|(doc, after)| ClientFrame::Subscribe { doc, after }),
        doc_text().prop_map(|doc| ClientFrame::Unsubscribe { doc }),
        (doc_text(), vec(blob(), 0..4))
            .prop_map(|(doc, changes)| ClientFrame::Submit { doc, changes }),
        (doc_text(), signal_kind(), proptest::option::of(text()))
            .prop_map(|(doc, kind, data)| ClientFrame::Signal { doc, kind, data }),
        any::<u64>().prop_map(|nonce| ClientFrame::Ping { nonce }),
        // Requests about a conversation document in one arm: every arm deepens the strategy's
        // stack, which the session property already fills.
        (
            doc_text(),
            proptest::option::of(bucket()),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(|(doc, before, limit, times)| match times {
                true => ClientFrame::ReadTimes { doc },
                false => ClientFrame::Buckets { doc, before, limit },
            }),
        Just(ClientFrame::Memberships {}),
    ]
}

fn membership() -> impl Strategy<Value = Membership> {
    (
        "[a-z0-9]{1,12}",
        proptest::sample::select(Role::ALL.to_vec()),
        proptest::sample::select(MemberStatus::ALL.to_vec()),
        any::<u64>(),
    )
        .prop_map(|(conv, role, status, seq)| Membership {
            conv: ConvId::new(conv).unwrap(),
            role,
            status,
            seq,
        })
}

fn bucket() -> impl Strategy<Value = confab_core::ids::Bucket> {
    (any::<i64>(), prop_oneof![Just(0u32), any::<u32>()])
        .prop_map(|(period, part)| confab_core::ids::Bucket::new(period, part))
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (
            any::<u32>(),
            text(),
            text(),
            any::<i64>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(
                |(v, account, tenant, server_time, max_frame, max_changes)| {
                    ServerFrame::Welcome {
                        v,
                        account,
                        tenant,
                        server_time,
                        max_frame,
                        max_changes,
                    }
                }
            ),
        (doc_text(), vec((any::<u64>(), blob()), 0..4)).prop_map(|(doc, changes)| {
            ServerFrame::Changes {
                doc,
                changes: changes
                    .into_iter()
                    .map(|(seq, change)| SeqChange { seq, change })
                    .collect(),
            }
        }),
        (
            doc_text(),
            any::<u64>(),
            blob(),
            proptest::option::of(snapshot_order())
        )
            .prop_map(|(doc, seq, data, order)| ServerFrame::Snapshot {
                doc,
                seq,
                data,
                order
            }),
        (doc_text(), any::<u64>()).prop_map(|(doc, seq)| ServerFrame::Synced { doc, seq }),
        (doc_text(), blob(), any::<u64>()).prop_map(|(doc, hash, seq)| ServerFrame::Ack {
            doc,
            hash,
            seq
        }),
        (doc_text(), proptest::option::of(blob()), text(), text()).prop_map(
            |(doc, hash, code, reason)| ServerFrame::Reject {
                doc,
                hash,
                code,
                reason
            }
        ),
        (doc_text(), text(), text()).prop_map(|(doc, code, reason)| ServerFrame::Revoked {
            doc,
            code,
            reason
        }),
        (
            doc_text(),
            text(),
            signal_kind(),
            proptest::option::of(text())
        )
            .prop_map(|(doc, from, kind, data)| ServerFrame::Signal {
                doc,
                from,
                kind,
                data
            }),
        (any::<u64>(), any::<i64>())
            .prop_map(|(nonce, server_time)| ServerFrame::Pong { nonce, server_time }),
        (doc_text(), vec(bucket(), 0..4), any::<bool>())
            .prop_map(|(doc, buckets, more)| ServerFrame::Buckets { doc, buckets, more }),
        // A bucket push or a read-times answer (one arm: see `client_frame`).
        (
            doc_text(),
            bucket(),
            vec((text(), text(), proptest::option::of(any::<i64>())), 0..4),
            any::<bool>()
        )
            .prop_map(|(doc, bucket, reads, times)| match times {
                false => ServerFrame::Bucket { doc, bucket },
                true => ServerFrame::ReadTimes {
                    doc,
                    reads: reads
                        .into_iter()
                        .map(|(account, message, at)| confab_core::protocol::ReadTime {
                            account,
                            message,
                            at,
                        })
                        .collect(),
                },
            }),
        (vec(membership(), 0..4), any::<bool>())
            .prop_map(|(memberships, more)| ServerFrame::Memberships { memberships, more }),
        membership().prop_map(|m| ServerFrame::Membership {
            conv: m.conv,
            role: m.role,
            status: m.status,
            seq: m.seq,
        }),
        (
            text(),
            text(),
            proptest::option::of(doc_text()),
            any::<bool>(),
            proptest::option::of(vec(any::<u8>(), 32..=32)),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(code, message, doc, fatal, hash, retry_after_ms)| {
                ServerFrame::Error {
                    code,
                    message,
                    doc,
                    fatal,
                    hash: hash.map(ByteBuf::from),
                    retry_after_ms,
                    id: None,
                }
            }),
    ]
}

/// Byte edits: (position, new byte), then an optional cut.
fn edits() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>)> {
    (
        vec((any::<usize>(), any::<u8>()), 0..6),
        proptest::option::of(any::<usize>()),
    )
}

fn mutate(mut bytes: Vec<u8>, (edits, cut): &(Vec<(usize, u8)>, Option<usize>)) -> Vec<u8> {
    if !bytes.is_empty() {
        for (at, b) in edits {
            let i = at % bytes.len();
            bytes[i] = *b;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

/// A session message: a well-formed frame, a mutated one, or noise.
fn message() -> impl Strategy<Value = (u16, Vec<u8>)> {
    let bytes = prop_oneof![
        3 => client_frame().prop_map(|f| encode_client(&f)),
        2 => (client_frame(), edits()).prop_map(|(f, e)| mutate(encode_client(&f), &e)),
        1 => vec(any::<u8>(), 0..64),
    ];
    (prop_oneof![Just(0u16), Just(1), any::<u16>()], bytes)
}

// ---------------------------------------------------------------------------------------
// Properties: frames and sessions
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_bytes_never_panic_the_decoders(bytes in vec(any::<u8>(), 0..256)) {
        if let Ok(frame) = decode_client(&bytes, MAX) {
            prop_assert_eq!(decode_client(&encode_client(&frame), MAX), Ok(frame));
        }
        if let Ok(frame) = decode_server(&bytes, MAX) {
            prop_assert_eq!(decode_server(&encode_server(&frame), MAX), Ok(frame));
        }
    }

    #[test]
    fn mutated_client_frames_decode_or_fail_cleanly(frame in client_frame(), e in edits()) {
        let bytes = mutate(encode_client(&frame), &e);
        match decode_client(&bytes, MAX) {
            Ok(decoded) => prop_assert_eq!(
                decode_client(&encode_client(&decoded), MAX), Ok(decoded)
            ),
            Err(err) => prop_assert!(matches!(err, ProtocolError::BadFrame(_))),
        }
    }

    #[test]
    fn mutated_server_frames_decode_or_fail_cleanly(frame in server_frame(), e in edits()) {
        let bytes = mutate(encode_server(&frame), &e);
        match decode_server(&bytes, MAX) {
            Ok(decoded) => prop_assert_eq!(
                decode_server(&encode_server(&decoded), MAX), Ok(decoded)
            ),
            Err(err) => prop_assert!(matches!(err, ProtocolError::BadFrame(_))),
        }
    }

    #[test]
    fn well_formed_client_frames_round_trip(frame in client_frame()) {
        let bytes = encode_client(&frame);
        prop_assert!(!bytes.is_empty());
        prop_assert_eq!(decode_client(&bytes, MAX), Ok(frame.clone()));
        // A client frame is never mistaken for a server frame of another meaning.
        if let Ok(server) = decode_server(&bytes, MAX) {
            prop_assert!(
                matches!((&frame, &server), (ClientFrame::Signal { .. }, ServerFrame::Signal { .. })),
                "{frame:?} decoded as {server:?}"
            );
        }
    }

    #[test]
    fn well_formed_server_frames_round_trip(frame in server_frame()) {
        let bytes = encode_server(&frame);
        prop_assert!(!bytes.is_empty());
        prop_assert_eq!(decode_server(&bytes, MAX), Ok(frame));
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn sessions_never_panic_and_act_well_formed(
        start_ready in any::<bool>(),
        small in any::<bool>(),
        fail_auth in any::<bool>(),
        messages in vec(message(), 0..16),
    ) {
        run_session(start_ready, small, fail_auth, &messages);
    }
}

// ---------------------------------------------------------------------------------------
// Properties: change validation
// ---------------------------------------------------------------------------------------

/// A group created by its owner alice with bob as a member: the accepted `conv` document, the
/// genesis-only bucket of today, and valid changes of both. Built exactly like the fixture of
/// the `validate_change` fuzz target (`fuzz/src/lib.rs`: same actors, tags and times, so the
/// same change hashes), so its crash inputs replay here byte for byte.
struct Fixture {
    conv_doc: AcceptedDoc,
    msgs_doc: AcceptedDoc,
    conv: Conversation,
    bindings: HashMap<ActorId, AccountId>,
    alice: Author,
    bob: Author,
    /// Acceptable changes: alice's to `conv_doc`, bob's message in `msgs_doc`, and both again
    /// in their compressed form.
    valid: Vec<Vec<u8>>,
}

/// The fuzz fixture's actors: the name's bytes, zero-padded to 16.
fn fuzz_actor(name: &str) -> ActorId {
    let mut bytes = [0u8; 16];
    for (i, b) in name.bytes().take(15).enumerate() {
        bytes[i] = b;
    }
    ActorId::from(&bytes[..])
}

impl Fixture {
    fn new() -> Self {
        let c = conv_id("g1");
        let alice = Author::user(acc("alice"));
        let bob = Author::user(acc("bob"));
        let spec = ConvFixture::group(alice.account.clone(), NOW - 1000)
            .member(bob.account.clone(), Role::Member)
            .title("fuzz")
            .build();
        let mut alice_doc = cdoc::genesis(&conv_doc(&c))
            .unwrap()
            .with_actor(fuzz_actor("alice"));
        write::create_conversation(&mut alice_doc, &IntentTag::new("i1", "create"), &spec).unwrap();
        let creation = alice_doc.get_last_local_change().unwrap();
        let mut hub = Hub::new();
        hub.submit(&conv_doc(&c), &alice, creation, NOW).unwrap();

        let mut bindings = HashMap::new();
        bindings.insert(fuzz_actor("alice"), alice.account.clone());
        write::set_info(
            &mut alice_doc,
            &IntentTag::new("i11", "seed"),
            NOW,
            "title",
            Some("renamed"),
        )
        .unwrap();
        let mut rename = alice_doc.get_last_local_change().unwrap();
        let bucket = bucket_doc(&c, NOW);
        let mut bob_doc = cdoc::genesis(&bucket)
            .unwrap()
            .with_actor(fuzz_actor("bob"));
        let m = NewMessage::text(msg_id("m1"), bob.account.clone(), "hello", NOW);
        write::post_message(&mut bob_doc, &IntentTag::new("i1", "seed"), &m).unwrap();
        let mut post = bob_doc.get_last_local_change().unwrap();
        let fixture = Fixture {
            conv_doc: hub.doc(&conv_doc(&c)).unwrap().clone(),
            msgs_doc: AcceptedDoc::new(bucket).unwrap(),
            conv: hub.conversation(&c).unwrap().clone(),
            bindings,
            alice,
            bob,
            valid: vec![
                rename.raw_bytes().to_vec(),
                post.raw_bytes().to_vec(),
                // The compressed forms (Change::bytes) too: a second parser path.
                rename.bytes().to_vec(),
                post.bytes().to_vec(),
            ],
        };
        assert!(matches!(
            fixture.on_conv(&fixture.valid[0]),
            Ok(Verdict::Accept(_))
        ));
        assert!(matches!(
            fixture.on_msgs(&fixture.valid[1]),
            Ok(Verdict::Accept(_))
        ));
        fixture
    }

    fn env<'a>(&'a self, author: &'a Author) -> Env<'a> {
        Env {
            author,
            bindings: &self.bindings,
            conv: Some(&self.conv),
            others: &(),
            now_ms: NOW,
            last_post_ms: None,
            urls: Default::default(),
            parent_standing: None,
            parent_message: None,
            answered: None,
        }
    }

    fn on_conv(&self, bytes: &[u8]) -> Result<Verdict, Rejection> {
        validate_bytes(&self.conv_doc, &self.env(&self.alice), bytes)
    }

    fn on_msgs(&self, bytes: &[u8]) -> Result<Verdict, Rejection> {
        validate_bytes(&self.msgs_doc, &self.env(&self.bob), bytes)
    }

    /// Validates `bytes` on both documents, as sent and with the checksum a hostile client
    /// would give them; whatever is accepted applies and round trips through save and load.
    fn check(&self, bytes: &[u8]) {
        self.check_exact(bytes);
        if let Ok(change) = Change::from_bytes(bytes.to_vec()) {
            let mut fixed = bytes.to_vec();
            fixed[4..8].copy_from_slice(&change.hash().0[..4]);
            if fixed != bytes {
                self.check_exact(&fixed);
            }
        }
    }

    fn check_exact(&self, bytes: &[u8]) {
        for (doc, verdict) in [
            (&self.conv_doc, self.on_conv(bytes)),
            (&self.msgs_doc, self.on_msgs(bytes)),
        ] {
            if let Ok(Verdict::Accept(accepted)) = verdict {
                let mut after = doc.clone();
                after
                    .apply(accepted.change)
                    .expect("accepted change applies");
                AcceptedDoc::load(after.id().clone(), &after.save()).expect("saves and loads");
            }
        }
    }
}

#[test]
fn validation_never_panics_on_random_or_mutated_changes() {
    let fixture = Fixture::new();
    let mut runner = TestRunner::new(config(384));
    runner
        .run(&vec(any::<u8>(), 0..300), |bytes| {
            fixture.check(&bytes);
            // With Automerge's magic in front, parsing gets further.
            fixture.check(&[&[0x85, 0x6f, 0x4a, 0x83][..], &bytes].concat());
            Ok(())
        })
        .unwrap();
    let n = fixture.valid.len();
    runner
        .run(&(0..n, edits()), |(i, e)| {
            fixture.check(&mutate(fixture.valid[i].clone(), &e));
            Ok(())
        })
        .unwrap();
}

#[test]
fn every_prefix_of_a_valid_change_is_rejected_cleanly() {
    let fixture = Fixture::new();
    for valid in &fixture.valid {
        for len in 0..valid.len() {
            let prefix = &valid[..len];
            assert!(fixture.on_conv(prefix).is_err(), "prefix of {len} bytes");
            assert!(fixture.on_msgs(prefix).is_err(), "prefix of {len} bytes");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Regression cases
// ---------------------------------------------------------------------------------------

#[test]
fn empty_input_is_a_clean_error_everywhere() {
    bad_frame(decode_client(&[], MAX));
    bad_frame(decode_server(&[], MAX));
    let mut s = Session::new(Limits::default());
    assert_fatal(&s.receive(&[], 0), "bad_frame");
    let mut s = ready(Limits::default());
    assert_non_fatal_bad_frame(&s.receive(&[], 1));
    let ping = encode_client(&ClientFrame::Ping { nonce: 3 });
    assert!(matches!(
        s.receive(&ping, 2).as_slice(),
        [Action::Send(ServerFrame::Pong { nonce: 3, .. })]
    ));
    let fixture = Fixture::new();
    let r = fixture.on_conv(&[]).unwrap_err();
    assert_eq!(r.code, RejectCode::Malformed);
}

#[test]
fn nesting_beyond_the_recursion_limit_is_a_bad_frame() {
    const DEPTH: usize = 100_000;
    let arrays = [vec![0x81; DEPTH], vec![0x00]].concat();
    let indefinite = [vec![0x9f; DEPTH], vec![0xff; DEPTH]].concat();
    let maps = [[0xa1, 0x00].repeat(DEPTH), vec![0x00]].concat();
    let tags = [[0xd8, 0x18].repeat(DEPTH), vec![0x00]].concat();
    // Deep nesting inside an otherwise valid frame: in a known field, and in an unknown
    // field (which is ignored, but still has to be walked).
    let in_field = map(&[(tstr("t"), tstr("ping")), (tstr("nonce"), arrays.clone())]);
    let in_unknown = map(&[
        (tstr("t"), tstr("ping")),
        (tstr("nonce"), uint(1)),
        (tstr("x"), arrays.clone()),
    ]);
    let mut s = ready(Limits::default());
    for input in [&arrays, &indefinite, &maps, &tags, &in_field, &in_unknown] {
        let reason = bad_frame(decode_client(input, MAX));
        assert!(!reason.is_empty());
        bad_frame(decode_server(input, MAX));
        assert_non_fatal_bad_frame(&s.receive(input, 0));
    }
    // Just under the limit, nesting is an ordinary type error.
    let shallow = [vec![0x81; 8], vec![0x00]].concat();
    bad_frame(decode_client(&shallow, MAX));
}

#[test]
fn huge_declared_lengths_with_short_bodies_are_a_bad_frame() {
    let submit = |changes: Vec<u8>| {
        map(&[
            (tstr("t"), tstr("submit")),
            (tstr("doc"), tstr("acme/conv/g1")),
            (tstr("changes"), changes),
        ])
    };
    let inputs = [
        // A byte string of 2^64-1 bytes, with 3.
        submit(
            [
                vec![0x81, 0x5b],
                u64::MAX.to_be_bytes().to_vec(),
                vec![1, 2, 3],
            ]
            .concat(),
        ),
        // 4 GiB - 1.
        submit(
            [
                vec![0x81, 0x5a],
                u32::MAX.to_be_bytes().to_vec(),
                vec![1, 2, 3],
            ]
            .concat(),
        ),
        // An array of 2^64-1 changes, with one.
        submit([vec![0x9b], u64::MAX.to_be_bytes().to_vec(), bstr(&[1])].concat()),
        // A text string and a map of 2^64-1 entries at the top.
        [
            vec![0x7b],
            u64::MAX.to_be_bytes().to_vec(),
            b"ping".to_vec(),
        ]
        .concat(),
        [
            vec![0xbb],
            u64::MAX.to_be_bytes().to_vec(),
            tstr("t"),
            tstr("ping"),
        ]
        .concat(),
        // The doc id as a huge text string.
        map(&[
            (tstr("t"), tstr("subscribe")),
            (
                tstr("doc"),
                [
                    vec![0x7b],
                    u64::MAX.to_be_bytes().to_vec(),
                    b"acme".to_vec(),
                ]
                .concat(),
            ),
            (tstr("after"), uint(0)),
        ]),
    ];
    let mut s = ready(Limits::default());
    for input in &inputs {
        bad_frame(decode_client(input, MAX));
        bad_frame(decode_server(input, MAX));
        assert_non_fatal_bad_frame(&s.receive(input, 0));
    }
}

#[test]
fn duplicate_keys_are_a_bad_frame() {
    let inputs = [
        map(&[
            (tstr("t"), tstr("ping")),
            (tstr("t"), tstr("ping")),
            (tstr("nonce"), uint(1)),
        ]),
        map(&[
            (tstr("t"), tstr("hello")),
            (tstr("t"), tstr("ping")),
            (tstr("nonce"), uint(1)),
        ]),
        map(&[
            (tstr("t"), tstr("ping")),
            (tstr("nonce"), uint(1)),
            (tstr("nonce"), uint(2)),
        ]),
        map(&[
            (tstr("t"), tstr("subscribe")),
            (tstr("doc"), tstr("acme/conv/g1")),
            (tstr("doc"), tstr("evil/conv/g1")),
            (tstr("after"), uint(0)),
        ]),
    ];
    let mut s = ready(Limits::default());
    for input in &inputs {
        bad_frame(decode_client(input, MAX));
        assert_non_fatal_bad_frame(&s.receive(input, 0));
    }
    let server = map(&[
        (tstr("t"), tstr("synced")),
        (tstr("t"), tstr("synced")),
        (tstr("doc"), tstr("acme/conv/g1")),
        (tstr("seq"), uint(1)),
    ]);
    bad_frame(decode_server(&server, MAX));
}

#[test]
fn non_utf8_text_strings_are_a_bad_frame() {
    let bad = [0xff, 0xfe, 0xfd];
    // "é" split between two chunks of an indefinite-length text string.
    let split = [vec![0x7f], tstr_raw(&[0xc3]), tstr_raw(&[0xa9]), vec![0xff]].concat();
    let inputs = [
        map(&[(tstr("t"), tstr_raw(&bad)), (tstr("nonce"), uint(1))]),
        map(&[(tstr_raw(&bad), tstr("ping")), (tstr("nonce"), uint(1))]),
        map(&[
            (tstr("t"), tstr("subscribe")),
            (tstr("doc"), tstr_raw(b"acme/conv/\xc3")),
            (tstr("after"), uint(0)),
        ]),
        map(&[
            (tstr("t"), tstr("hello")),
            (tstr("v"), uint(1)),
            (tstr("token"), tstr_raw(&bad)),
            (tstr("device"), tstr("d")),
        ]),
        map(&[
            (tstr("t"), tstr("signal")),
            (tstr("doc"), tstr("acme/conv/g1")),
            (tstr("kind"), tstr("typing")),
            (tstr("data"), tstr_raw(b"\xed\xa0\x80")), // a UTF-16 surrogate
        ]),
        map(&[(tstr("t"), tstr("unsubscribe")), (tstr("doc"), split)]),
    ];
    let mut before_hello = Session::new(Limits::default());
    assert_fatal(&before_hello.receive(&inputs[3], 0), "bad_frame");
    let mut s = ready(Limits::default());
    for input in &inputs {
        bad_frame(decode_client(input, MAX));
        assert_non_fatal_bad_frame(&s.receive(input, 0));
    }
    let server = map(&[
        (tstr("t"), tstr("error")),
        (tstr("code"), tstr_raw(&bad)),
        (tstr("message"), tstr("m")),
        (tstr("fatal"), vec![0xf5]),
    ]);
    bad_frame(decode_server(&server, MAX));
}

#[test]
fn snapshot_order_is_optional_and_checked_like_every_field() {
    let base = || {
        vec![
            (tstr("t"), tstr("snapshot")),
            (tstr("doc"), tstr("acme/msgs/g1.20553")),
            (tstr("seq"), uint(9)),
            (tstr("data"), bstr(&[0x85, 0x6f, 0x4a, 0x83])),
        ]
    };
    // A version-1 snapshot without `order` (what older servers send) decodes.
    match decode_server(&map(&base()), MAX) {
        Ok(ServerFrame::Snapshot { seq: 9, order, .. }) => assert_eq!(order, None),
        other => panic!("{other:?}"),
    }
    let order = |fields: Vec<(Vec<u8>, Vec<u8>)>| {
        let mut frame = base();
        frame.push((tstr("order"), map(&fields)));
        map(&frame)
    };
    let actors = [vec![0x81], bstr(&[1; 16])].concat();
    let changes = [vec![0x84], uint(0), uint(10), uint(0), vec![0x22]].concat(); // [0,10,0,-3]
    let good = order(vec![
        (tstr("from"), uint(5)),
        (tstr("actors"), actors.clone()),
        (tstr("changes"), changes.clone()),
    ]);
    match decode_server(&good, MAX) {
        Ok(ServerFrame::Snapshot {
            order: Some(order), ..
        }) => {
            assert_eq!(order.changes, vec![0, 10, 0, -3]);
            assert_eq!(
                order.entries(),
                vec![(5, &[1u8; 16][..], 10), (6, &[1u8; 16][..], 7)]
            );
        }
        other => panic!("{other:?}"),
    }
    // Wrong types and missing fields inside `order` are a bad frame like anywhere else.
    for bad in [
        order(vec![
            (tstr("actors"), actors.clone()),
            (tstr("changes"), changes.clone()),
        ]),
        order(vec![
            (tstr("from"), tstr("5")),
            (tstr("actors"), actors.clone()),
            (tstr("changes"), changes.clone()),
        ]),
        order(vec![
            (tstr("from"), uint(5)),
            (tstr("actors"), [vec![0x81], uint(1)].concat()),
            (tstr("changes"), changes.clone()),
        ]),
        order(vec![
            (tstr("from"), uint(5)),
            (tstr("actors"), actors.clone()),
            (tstr("changes"), [vec![0x81], tstr("x")].concat()),
        ]),
    ] {
        bad_frame(decode_server(&bad, MAX));
    }
    // Entries that do not make sense (an actor index out of range) end the list, no panic.
    let nonsense = order(vec![
        (tstr("from"), uint(u64::MAX)),
        (tstr("actors"), actors),
        (
            tstr("changes"),
            [vec![0x84], uint(0), uint(1), uint(7), uint(1)].concat(),
        ),
    ]);
    match decode_server(&nonsense, MAX) {
        Ok(ServerFrame::Snapshot {
            order: Some(order), ..
        }) => assert_eq!(order.entries().len(), 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn membership_frames_decode_typed_and_refuse_unknown_values() {
    let push = |conv: &str, role: &str, status: &str| {
        map(&[
            (tstr("t"), tstr("membership")),
            (tstr("conv"), tstr(conv)),
            (tstr("role"), tstr(role)),
            (tstr("status"), tstr(status)),
            (tstr("seq"), uint(7)),
        ])
    };
    assert_eq!(
        decode_server(&push("g1", "admin", "banned"), MAX),
        Ok(ServerFrame::Membership {
            conv: ConvId::new("g1").unwrap(),
            role: Role::Admin,
            status: MemberStatus::Banned,
            seq: 7,
        })
    );
    // An unknown role or status, or a conversation id outside the charset, is a bad frame.
    for bad in [
        push("g1", "emperor", "active"),
        push("g1", "member", "gone"),
        push("a/b", "member", "active"),
        push("", "member", "active"),
        map(&[
            (tstr("t"), tstr("membership")),
            (tstr("conv"), tstr("g1")),
            (tstr("role"), tstr("member")),
            (tstr("status"), tstr("active")),
        ]),
        map(&[(tstr("t"), tstr("memberships")), (tstr("more"), tstr("no"))]),
        map(&[
            (tstr("t"), tstr("memberships")),
            (tstr("memberships"), [vec![0x81], uint(1)].concat()),
            (tstr("more"), vec![0xf4]),
        ]),
    ] {
        bad_frame(decode_server(&bad, MAX));
    }
    // The request has no fields; extra ones are ignored like anywhere else.
    assert_eq!(
        decode_client(&map(&[(tstr("t"), tstr("memberships"))]), MAX),
        Ok(ClientFrame::Memberships {})
    );
    assert_eq!(
        decode_client(
            &map(&[(tstr("t"), tstr("memberships")), (tstr("after"), uint(3))]),
            MAX
        ),
        Ok(ClientFrame::Memberships {})
    );
    // Asked before welcome: the connection closes, as for any frame before hello.
    let mut early = Session::new(Limits::default());
    let out = early.receive(&encode_client(&ClientFrame::Memberships {}), 0);
    assert_fatal(&out, "unauthenticated");
    // Asked twice: refused, not fatal; the session goes on.
    let mut s = ready(Limits::default());
    let ask = encode_client(&ClientFrame::Memberships {});
    assert_eq!(s.receive(&ask, 1), vec![Action::Memberships]);
    assert_eq!(
        error_of(&s.receive(&ask, 2)),
        Some(("already_following".to_owned(), false))
    );
    assert!(!s.is_closed());
}

#[test]
fn wrong_types_unknown_frames_and_missing_fields_are_a_bad_frame() {
    let inputs = [
        map(&[(tstr("t"), tstr("teleport"))]),
        map(&[(tstr("nonce"), uint(1))]),
        map(&[(tstr("t"), uint(1)), (tstr("nonce"), uint(1))]),
        map(&[(tstr("t"), tstr("ping"))]),
        map(&[(tstr("t"), tstr("ping")), (tstr("nonce"), vec![0x20])]), // -1
        map(&[(tstr("t"), tstr("ping")), (tstr("nonce"), tstr("1"))]),
        map(&[
            (tstr("t"), tstr("ping")),
            (tstr("nonce"), vec![0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]), // 1.0
        ]),
        map(&[
            (tstr("t"), tstr("hello")),
            (tstr("v"), uint(u64::from(u32::MAX) + 1)),
            (tstr("token"), tstr("t")),
            (tstr("device"), tstr("d")),
        ]),
        map(&[
            (tstr("t"), tstr("submit")),
            (tstr("doc"), tstr("acme/conv/g1")),
            (tstr("changes"), [vec![0x81], uint(7)].concat()),
        ]),
        map(&[
            (tstr("t"), tstr("signal")),
            (tstr("doc"), tstr("acme/conv/g1")),
            (tstr("kind"), tstr("shouting")),
        ]),
        vec![0xf6],                   // null
        vec![0x1c],                   // a reserved additional-information value
        vec![0xff],                   // a lone break
        vec![0x5f, 0x41, 0x00],       // an indefinite byte string without its break
        vec![0xbf, 0x61, 0x74, 0xff], // a key without its value
    ];
    let mut s = ready(Limits::default());
    for input in &inputs {
        bad_frame(decode_client(input, MAX));
        bad_frame(decode_server(input, MAX));
        assert_non_fatal_bad_frame(&s.receive(input, 0));
    }
}

#[test]
fn frame_size_limit_is_checked_before_decoding() {
    let ping = encode_client(&ClientFrame::Ping { nonce: 1 });
    assert_eq!(
        decode_client(&ping, ping.len()),
        Ok(ClientFrame::Ping { nonce: 1 })
    );
    assert_eq!(
        decode_client(&ping, ping.len() - 1),
        Err(ProtocolError::FrameTooLarge {
            len: ping.len(),
            max: ping.len() - 1
        })
    );
    // A submit with more changes than allowed is refused as a whole, after decoding.
    let limits = Limits {
        max_changes_per_submit: 1000,
        ..Limits::default()
    };
    let mut s = ready(limits);
    let many = encode_client(&ClientFrame::Submit {
        doc: "acme/conv/g1".into(),
        changes: vec![ByteBuf::new(); 1001],
    });
    assert_eq!(
        error_of(&s.receive(&many, 0)),
        Some(("too_many_changes".to_owned(), false))
    );
}

#[test]
fn hostile_change_bytes_are_rejected_as_malformed() {
    let fixture = Fixture::new();
    let magic = [0x85u8, 0x6f, 0x4a, 0x83];
    let chunk = |kind: u8, body: &[u8]| {
        let mut out = magic.to_vec();
        out.extend_from_slice(&[0, 0, 0, 0, kind]);
        let mut len = body.len() as u64;
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(body);
        out
    };
    let inputs = [
        magic.to_vec(),
        chunk(1, &[]),
        chunk(1, &[0xff; 40]),
        chunk(2, &[0xff; 40]), // a compressed change that does not inflate
        chunk(0, &[0x00; 40]), // a document chunk
        chunk(3, &[0x00; 40]), // a bundle chunk
        chunk(9, &[0x00; 4]),  // an unknown chunk type
        // A declared length far beyond the input.
        [
            magic.to_vec(),
            vec![0, 0, 0, 0, 1],
            vec![0xff; 9],
            vec![0x01],
        ]
        .concat(),
        // A valid change followed by garbage.
        [fixture.valid[0].clone(), vec![0]].concat(),
    ];
    for input in &inputs {
        assert_eq!(
            fixture.on_conv(input).unwrap_err().code,
            RejectCode::Malformed
        );
        assert_eq!(
            fixture.on_msgs(input).unwrap_err().code,
            RejectCode::Malformed
        );
    }
    // The genesis of another document, sent as a change: a forged actor or a missing
    // dependency, never a panic.
    let other = confab_core::doc::genesis_change(&DocId::conv(
        &TenantId::new("acme").unwrap(),
        &conv_id("g2"),
    ))
    .unwrap();
    assert!(fixture.on_conv(other.raw_bytes()).is_err());
}

/// BUG (see report): `Change::from_bytes` does not verify a chunk's checksum, and neither does
/// `validate_bytes`, so a change with a corrupted checksum is accepted and stored as sent —
/// bytes that Automerge's own loader (`load`, `load_incremental`) refuses with "bad checksum".
#[test]
fn a_change_with_a_wrong_checksum_is_rejected() {
    let fixture = Fixture::new();
    let mut bytes = fixture.valid[0].clone();
    bytes[4] ^= 0xff; // the first checksum byte
    assert!(
        Automerge::load(&bytes).is_err(),
        "Automerge itself refuses these bytes"
    );
    let parsed = Change::from_bytes(bytes.clone()).unwrap();
    assert_eq!(
        parsed.hash(),
        Change::from_bytes(fixture.valid[0].clone()).unwrap().hash(),
        "same hash as the intact change: the checksum is not part of it"
    );
    let verdict = fixture.on_conv(&bytes);
    assert_eq!(
        verdict.as_ref().map_err(|r| r.code).err(),
        Some(RejectCode::Malformed),
        "a corrupted change must be malformed, got {:?}",
        verdict.map(|v| matches!(v, Verdict::Accept(_)))
    );
}

/// BUG (see report): a message holds exactly one frame (docs/PROTOCOL.md, Transport), but the
/// decoder stops after the first CBOR item and ignores the rest, so a second frame in the same
/// message is silently dropped (a submit that is never answered).
#[test]
fn bytes_after_the_frame_are_a_bad_frame() {
    let two = [
        encode_client(&ClientFrame::Ping { nonce: 1 }),
        encode_client(&ClientFrame::Subscribe {
            doc: "acme/conv/g1".into(),
            after: 0,
        }),
    ]
    .concat();
    bad_frame(decode_client(&two, MAX));
    let garbage = [encode_client(&ClientFrame::Ping { nonce: 1 }), vec![0xff]].concat();
    bad_frame(decode_client(&garbage, MAX));
    let server = [
        encode_server(&ServerFrame::Synced {
            doc: "acme/conv/g1".into(),
            seq: 1,
        }),
        vec![0x00],
    ]
    .concat();
    bad_frame(decode_server(&server, MAX));
}

#[test]
fn closed_sessions_ignore_everything() {
    let mut s = Session::new(Limits::default());
    assert_fatal(&s.receive(&[0xff], 0), "bad_frame");
    assert!(s.is_closed());
    for input in [hello(), vec![], vec![0x00; 10]] {
        assert!(s.receive(&input, 1).is_empty());
    }
    assert!(s.authenticated(identity(), 2).is_empty());
    assert!(s.identity().is_none());
}

/// Gives `bytes` the checksum they deserve, as any hostile client can: the fuzz target found
/// these inputs before `validate` checked checksums, and the checksum guards nothing.
fn with_valid_checksum(bytes: &[u8]) -> Vec<u8> {
    let hash = Change::from_bytes(bytes.to_vec()).unwrap().hash();
    let mut out = bytes.to_vec();
    out[4..8].copy_from_slice(&hash.0[..4]);
    out
}

/// Validates on the `conv` document, catching a panic: `Err(())` when validation panicked.
fn conv_verdict_or_panic(
    fixture: &Fixture,
    bytes: &[u8],
) -> Result<Result<Verdict, Rejection>, ()> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fixture.on_conv(bytes)))
        .map_err(|_| ())
}

/// Found by the `validate_change` fuzz target (crash-6c4d926e…, 148 bytes): alice's seed change
/// to the group (it depends on the fixture's creation change) with mutated op columns that
/// name an actor index past the change's actor table. `Change::from_bytes` accepts it; then
/// `validate/ops.rs::resolve` calls `change.decode()`, and automerge 0.12's
/// `ExpandedChange::from` (change.rs:331, `actors.get(..).unwrap()`) panics: a panic on
/// network input, in the server's unit worker.
const CRASH_DECODE_UNKNOWN_ACTOR: [u8; 148] = [
    0x85, 0x6f, 0x4a, 0x83, 0x9c, 0xd6, 0xfa, 0xc3, 0x01, 0x89, 0x01, 0x01, 0x05, 0x32, 0x73, 0x6f,
    0x1e, 0x55, 0x7c, 0xc3, 0xe0, 0xde, 0x36, 0x4c, 0x0c, 0xe4, 0xdf, 0xff, 0x7d, 0xbb, 0x61, 0xfa,
    0x18, 0x18, 0xe6, 0xdc, 0x89, 0x96, 0x05, 0x48, 0x7f, 0xbe, 0xa7, 0x2f, 0x10, 0x61, 0x6c, 0x69,
    0x63, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x1f, 0x80,
    0xfb, 0xe0, 0xce, 0x06, 0x0f, 0x69, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x2f, 0x69, 0x31, 0x33, 0x2f,
    0x73, 0x65, 0x65, 0x64, 0x01, 0x10, 0xd2, 0xd3, 0x7f, 0x82, 0x43, 0x1c, 0x1c, 0x2c, 0xf0, 0xa2,
    0x71, 0x7f, 0x33, 0x4c, 0xde, 0x4b, 0x08, 0x01, 0x02, 0x02, 0x02, 0x15, 0x0d, 0x34, 0x01, 0x42,
    0x02, 0x56, 0x02, 0x57, 0x05, 0x70, 0x02, 0x64, 0x7f, 0x03, 0x65, 0x7f, 0x0b, 0x01, 0x7f, 0x73,
    0x63, 0x77, 0x69, 0x70, 0x74, 0x69, 0x6f, 0x6e, 0x01, 0x7f, 0x01, 0x7f, 0x56, 0x61, 0x62, 0x6f,
    0x75, 0x74, 0x7f, 0x00,
];

/// Found by the `validate_change` fuzz target (crash-b2ca9727… and crash-cad07d26…, 152 bytes
/// each): alice's seed rename with a mutated RLE run in its last column, so the column holds
/// more values than the change has ops. Automerge ignores the surplus, `validate` accepts the
/// change and `apply` takes it, but the change's hash covers the surplus bytes while the saved
/// document re-encodes the change without them: `Automerge::load` of the saved document then
/// fails with `MismatchingHeads`, so the document is lost at the next compaction or restart.
const CRASH_SURPLUS_COLUMN_VALUES: [[u8; 152]; 2] = [
    [
        0x85, 0x6f, 0x4a, 0x83, 0xcd, 0x8d, 0x58, 0xe4, 0x01, 0x8d, 0x01, 0x01, 0x05, 0x32, 0x73,
        0x6f, 0x1e, 0x55, 0x7c, 0xc3, 0xe0, 0xde, 0x36, 0x4c, 0x0c, 0xe4, 0xdf, 0xff, 0x7d, 0xbb,
        0x61, 0xfa, 0x18, 0x18, 0xe6, 0xdc, 0x89, 0x96, 0x05, 0x48, 0x7f, 0xbe, 0xa7, 0x2f, 0x10,
        0x61, 0x6c, 0x69, 0x63, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x02, 0x1f, 0x80, 0xfb, 0xe0, 0xce, 0x06, 0x0f, 0x69, 0x6e, 0x74, 0x65, 0x6e, 0x74,
        0x2f, 0x69, 0x31, 0x31, 0x2f, 0x73, 0x65, 0x65, 0x64, 0x01, 0x10, 0xd2, 0xd3, 0x7f, 0x82,
        0x43, 0x1c, 0x1c, 0x2c, 0xf0, 0xa2, 0x71, 0x7f, 0x33, 0x4c, 0xde, 0x4b, 0x0a, 0x01, 0x02,
        0x02, 0x02, 0x15, 0x07, 0x34, 0x01, 0x42, 0x02, 0x56, 0x02, 0x57, 0x07, 0x70, 0x02, 0x71,
        0x02, 0x73, 0x02, 0x7f, 0x01, 0x7f, 0x03, 0x7f, 0x05, 0x74, 0x69, 0x74, 0x6c, 0x65, 0x01,
        0x7f, 0x01, 0x7f, 0x76, 0x72, 0x65, 0x6e, 0x61, 0x6d, 0x65, 0x64, 0x7f, 0x01, 0x7f, 0x00,
        0x36, 0x0d,
    ],
    [
        0x85, 0x6f, 0x4a, 0x83, 0xcd, 0x8d, 0x58, 0xe4, 0x01, 0x8d, 0x01, 0x01, 0x05, 0x32, 0x73,
        0x6f, 0x1e, 0x55, 0x7c, 0xc3, 0xe0, 0xde, 0x36, 0x4c, 0x0c, 0xe4, 0xdf, 0xff, 0x7d, 0xbb,
        0x61, 0xfa, 0x18, 0x18, 0xe6, 0xdc, 0x89, 0x96, 0x05, 0x48, 0x7f, 0xbe, 0xa7, 0x2f, 0x10,
        0x61, 0x6c, 0x69, 0x63, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x02, 0x1f, 0x80, 0xfb, 0xe0, 0xce, 0x06, 0x0f, 0x69, 0x6e, 0x74, 0x65, 0x6e, 0x74,
        0x2f, 0x69, 0x31, 0x31, 0x2f, 0x73, 0x65, 0x65, 0x64, 0x01, 0x10, 0xd2, 0xd3, 0x7f, 0x82,
        0x43, 0x1c, 0x1c, 0x2c, 0xf0, 0xa2, 0x71, 0x7f, 0x33, 0x4c, 0xde, 0x4b, 0x0a, 0x01, 0x02,
        0x02, 0x02, 0x15, 0x07, 0x34, 0x01, 0x42, 0x02, 0x56, 0x02, 0x57, 0x07, 0x70, 0x02, 0x71,
        0x02, 0x73, 0x02, 0x7f, 0x01, 0x7f, 0x03, 0x7f, 0x05, 0x74, 0x69, 0x74, 0x6c, 0x65, 0x01,
        0x7f, 0x01, 0x65, 0x76, 0x7f, 0x72, 0x6e, 0x61, 0x6d, 0x65, 0x64, 0x7f, 0x01, 0x7f, 0x00,
        0x7f, 0x0d,
    ],
];

#[test]
fn regression_op_naming_an_unknown_actor_is_malformed_not_a_panic() {
    let fixture = Fixture::new();
    let bytes = with_valid_checksum(&CRASH_DECODE_UNKNOWN_ACTOR);
    match conv_verdict_or_panic(&fixture, &bytes) {
        Ok(Err(r)) => assert_eq!(r.code, RejectCode::Malformed, "{r:?}"),
        Ok(Ok(_)) => panic!("an op naming an unknown actor was accepted"),
        Err(()) => panic!("validate_bytes panicked on a 148-byte change (automerge decode)"),
    }
}

#[test]
fn regression_accepted_changes_keep_the_document_loadable() {
    let fixture = Fixture::new();
    for crash in &CRASH_SURPLUS_COLUMN_VALUES {
        let bytes = with_valid_checksum(crash);
        match conv_verdict_or_panic(&fixture, &bytes) {
            Ok(Ok(Verdict::Accept(accepted))) => {
                let mut after = fixture.conv_doc.clone();
                after.apply(accepted.change).unwrap();
                if let Err(e) = AcceptedDoc::load(after.id().clone(), &after.save()) {
                    panic!("accepted, and now the document does not load: {e}");
                }
            }
            Ok(Ok(Verdict::AlreadyAccepted(_))) => panic!("not the same change"),
            Ok(Err(_)) => {}
            Err(()) => panic!("validate_bytes panicked"),
        }
    }
}

#[test]
fn compressed_change_chunks_and_documents_are_refused_before_parsing() {
    let mut compressed = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    compressed.extend([0u8; 64]);
    let err = confab_core::validate::parse_change(&compressed).unwrap_err();
    assert_eq!(err.code, RejectCode::Malformed);
    let mut document = compressed.clone();
    document[8] = 0;
    assert_eq!(
        confab_core::validate::parse_change(&document)
            .unwrap_err()
            .code,
        RejectCode::Malformed
    );
    assert_eq!(
        confab_core::validate::parse_change(&[1, 2, 3])
            .unwrap_err()
            .code,
        RejectCode::Malformed
    );
}
