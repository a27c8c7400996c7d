//! What only the wire has, below the attack table: garbage, oversize and too-many-changes
//! frames, hello that cannot be accepted, floods, the connection limit.

use std::time::{Duration, Instant};

use confab_core::automerge::Change;
use confab_core::doc::write;
use confab_core::protocol::{ClientFrame, ServerFrame, SignalKind, PROTOCOL_VERSION};
use confab_e2e::client::{Answer, WAIT};
use confab_e2e::{now_ms, token, Backend, Client, Device, TestServer};
use confab_testkit::attack::fixture::text_change;
use confab_testkit::fixture::ConvFixture;
use confab_testkit::ids::{acc, bucket_doc, conv_doc, conv_id, TENANT};
use serde_bytes::ByteBuf;
use serde_json::Value;

use super::wire::{http_get, now, Stored, WireLab};

// ---------- protocol helpers ----------

pub async fn ping(c: &mut Client, nonce: u64) {
    c.send(&ClientFrame::Ping { nonce }).await.unwrap();
    c.wait_for(WAIT, |f| {
        matches!(f, ServerFrame::Pong { nonce: n, .. } if *n == nonce).then_some(())
    })
    .await
    .unwrap();
}

/// The next error frame: (code, fatal, doc).
pub async fn next_error(c: &mut Client) -> (String, bool, Option<String>) {
    c.wait_for(WAIT, |f| match f {
        ServerFrame::Error {
            code, fatal, doc, ..
        } => Some((code.clone(), *fatal, doc.clone())),
        _ => None,
    })
    .await
    .unwrap()
}

/// The connection must end now; returns the close frame's (code, reason).
async fn closed_with(c: &mut Client) -> (u16, String) {
    let next = c.recv(Duration::from_secs(10)).await;
    assert!(next.is_err(), "expected the close, got {next:?}");
    c.closed.clone().expect("a close frame")
}

fn hello(v: u32, token: &str) -> ClientFrame {
    ClientFrame::Hello {
        v,
        token: token.to_owned(),
        device: "attacker".into(),
    }
}

// ---------- protocol-level attacks ----------

async fn protocol_attacks(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        &[
            "--max-frame-bytes",
            "65536",
            "--max-changes-per-submit",
            "4",
            "--rate-per-sec",
            "50",
            "--rate-burst",
            "20",
        ],
    )
    .await
    .unwrap();
    let mut lab = WireLab::on(server);
    let url = lab.url();
    let alice_token = token(TENANT, "alice", false, 3600);

    // The welcome advertises the limits.
    let mut c = Client::raw(&url).await.unwrap();
    c.send(&hello(PROTOCOL_VERSION, &alice_token))
        .await
        .unwrap();
    match c.recv(WAIT).await.unwrap() {
        ServerFrame::Welcome {
            max_frame,
            max_changes,
            account,
            ..
        } => assert_eq!(
            (max_frame, max_changes, account.as_str()),
            (65536, 4, "alice")
        ),
        other => panic!("expected welcome, got {other:?}"),
    }
    // Garbage after hello: `bad_frame` each, not fatal; then a ping still gets its pong.
    let mut nested = vec![0x81_u8; 10_000];
    nested.push(0x00);
    let garbage: Vec<Vec<u8>> = vec![
        vec![0xff, 0x00, 0x13],
        b"hello world".to_vec(),
        Vec::new(),
        // {"t": "launch"}: a CBOR map that is no frame.
        vec![0xa1, 0x61, b't', 0x66, b'l', b'a', b'u', b'n', b'c', b'h'],
        // {"t": "submit", "doc": 5}: a frame with a field of the wrong type.
        vec![
            0xa2, 0x61, b't', 0x66, b's', b'u', b'b', b'm', b'i', b't', 0x63, b'd', b'o', b'c',
            0x05,
        ],
        // Ten thousand nested arrays: past the decoder's recursion limit.
        nested,
    ];
    for g in &garbage {
        c.send_bytes(g.clone()).await.unwrap();
        assert_eq!(
            next_error(&mut c).await,
            ("bad_frame".into(), false, None),
            "{:?}",
            &g[..g.len().min(16)]
        );
    }
    // hello again: refused, not fatal.
    c.send(&hello(PROTOCOL_VERSION, &alice_token))
        .await
        .unwrap();
    assert_eq!(
        next_error(&mut c).await,
        ("already_authenticated".into(), false, None)
    );
    // A signal over the limit (256 bytes by default).
    c.send(&ClientFrame::Signal {
        doc: "acme/conv/p-any".into(),
        kind: SignalKind::Presence,
        data: Some("x".repeat(300)),
    })
    .await
    .unwrap();
    assert_eq!(next_error(&mut c).await.0, "signal_too_large");
    ping(&mut c, 1).await;
    c.close().await;

    // Before hello: garbage, or any frame but hello, is fatal (close 1008).
    let before_hello: Vec<(Vec<u8>, &str)> = vec![
        (vec![0xff, 0x00, 0x13], "bad_frame"),
        (
            confab_core::protocol::encode_client(&ClientFrame::Ping { nonce: 3 }),
            "unauthenticated",
        ),
        (
            confab_core::protocol::encode_client(&ClientFrame::Subscribe {
                doc: "acme/conv/p-any".into(),
                after: 0,
            }),
            "unauthenticated",
        ),
    ];
    for (bytes, code) in before_hello {
        let mut c = Client::raw(&url).await.unwrap();
        c.send_bytes(bytes).await.unwrap();
        assert_eq!(next_error(&mut c).await, (code.into(), true, None));
        assert_eq!(closed_with(&mut c).await, (1008, code.into()));
    }

    // Hello that cannot be accepted: fatal, with the close code the protocol names.
    let other_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "alice", "tenant": TENANT, "exp": now_ms() / 1000 + 3600, "kind": "user"}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-server-secret"),
    )
    .unwrap();
    let expired = token(TENANT, "alice", false, -3600);
    let hellos: Vec<(ClientFrame, &str, u16)> = vec![
        (hello(99, &alice_token), "unsupported_version", 1008),
        (hello(PROTOCOL_VERSION, &expired), "token_expired", 4001),
        (hello(PROTOCOL_VERSION, &other_secret), "auth_failed", 4001),
        (hello(PROTOCOL_VERSION, "not.a.token"), "auth_failed", 4001),
    ];
    for (frame, code, close_code) in hellos {
        let mut c = Client::raw(&url).await.unwrap();
        c.send(&frame).await.unwrap();
        assert_eq!(next_error(&mut c).await, (code.into(), true, None));
        assert_eq!(closed_with(&mut c).await, (close_code, code.into()));
    }
    // The same tokens over REST: 401 with the same codes.
    for (bearer, code) in [(&expired, "token_expired"), (&other_secret, "auth_failed")] {
        let (status, body) =
            http_get(lab.server.port, "/v1/conversations", Some(bearer.as_str())).await;
        assert_eq!(status, 401, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], code);
    }

    // An oversize frame: `frame_too_large`, not fatal, and nothing of it is stored.
    let mut alice = Device::new("alice", 1);
    let big = conv_doc(&conv_id("p-big"));
    let spec = ConvFixture::group(acc("alice"), now() - 1000).build();
    let create_big = alice
        .write(&big, |d, t| write::create_conversation(d, t, &spec))
        .unwrap();
    let mut c = Client::connect(&url, &alice_token).await.unwrap();
    c.send(&ClientFrame::Submit {
        doc: big.to_string(),
        changes: vec![
            ByteBuf::from(create_big.raw_bytes().to_vec()),
            ByteBuf::from(vec![0_u8; 70_000]),
        ],
    })
    .await
    .unwrap();
    assert_eq!(
        next_error(&mut c).await,
        ("frame_too_large".into(), false, None)
    );
    ping(&mut c, 2).await;
    assert_eq!(lab.stored(&big).await, Stored::Refused("forbidden".into()));
    let answers = c.submit(&big, &[create_big]).await.unwrap();
    assert!(
        matches!(answers.as_slice(), [Answer::Ack { seq: 1, .. }]),
        "{answers:?}"
    );

    // More changes in one submit than allowed: `too_many_changes` for the frame, nothing
    // stored; four (the limit) are fine.
    let lim = conv_doc(&conv_id("p-lim"));
    let create_lim = alice
        .write(&lim, |d, t| write::create_conversation(d, t, &spec))
        .unwrap();
    let answers = c.submit(&lim, &vec![create_lim.clone(); 5]).await.unwrap();
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Answer::Error { code, .. } if code == "too_many_changes")),
        "{answers:?}"
    );
    assert_eq!(lab.stored(&lim).await, Stored::Refused("forbidden".into()));
    let answers = c.submit(&lim, &[create_lim]).await.unwrap();
    assert!(matches!(answers.as_slice(), [Answer::Ack { .. }]));
    let lim_conv = conv_id("p-lim");
    let messages: Vec<Change> = (1..=4)
        .map(|i| text_change(&lab, &mut alice, &lim_conv, &format!("m{i}"), "within").1)
        .collect();
    let answers = c
        .submit(&bucket_doc(&lim_conv, now()), &messages)
        .await
        .unwrap();
    assert_eq!(
        answers
            .iter()
            .filter(|a| matches!(a, Answer::Ack { .. }))
            .count(),
        4,
        "{answers:?}"
    );

    // A frame past the WebSocket's hard limit (4 × max_frame, at least 1 MiB) ends that
    // connection, and only that one.
    let mut other = Client::connect(&url, &alice_token).await.unwrap();
    let _ = c.send_bytes(vec![0_u8; 2 << 20]).await;
    let next = c.recv(Duration::from_secs(10)).await;
    assert!(next.is_err(), "expected the connection to end: {next:?}");
    eprintln!(
        "{backend:?}: an absurd frame ended the connection with {:?}",
        c.closed
    );
    if let Some((code, _)) = &c.closed {
        assert_eq!(*code, 1009, "message too big");
    }
    ping(&mut other, 3).await;

    // A flood: some frames are `rate_limited` (not fatal), one answer per frame, other
    // connections are not slowed, and after a pause the same connection works normally.
    let mut flood = Client::connect(&url, &alice_token).await.unwrap();
    let frames = 100;
    for nonce in 0..frames {
        flood
            .send(&ClientFrame::Ping {
                nonce: 1000 + nonce,
            })
            .await
            .unwrap();
    }
    let (mut pongs, mut limited) = (0, 0);
    for _ in 0..frames {
        match flood.recv(WAIT).await.unwrap() {
            ServerFrame::Pong { .. } => pongs += 1,
            ServerFrame::Error { code, fatal, .. } if code == "rate_limited" => {
                assert!(!fatal);
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    eprintln!("{backend:?}: flood of {frames}: {pongs} pongs, {limited} rate_limited");
    assert!(limited > 0, "a flood is limited");
    assert!(pongs >= 19, "the burst passes: {pongs}");
    ping(&mut other, 4).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    ping(&mut flood, 5).await;
    let (bucket, m) = text_change(&lab, &mut alice, &lim_conv, "after-flood", "still works");
    let answers = flood.submit(&bucket, &[m]).await.unwrap();
    assert!(
        matches!(answers.as_slice(), [Answer::Ack { seq: 5, .. }]),
        "{answers:?}"
    );
    for client in [flood, other] {
        client.close().await;
    }
    lab.conns.clear();
}

#[tokio::test]
async fn protocol_attacks_on_sqlite() {
    protocol_attacks(Backend::Sqlite).await;
}

#[tokio::test]
async fn protocol_attacks_on_postgres() {
    protocol_attacks(Backend::Postgres).await;
}

/// Connections beyond `--max-connections` get `too_many_connections` and close code 4029;
/// the ones inside the limit keep working, and a freed place can be taken again.
async fn connection_limit(backend: Backend) {
    let server = TestServer::start_with(backend, &["--max-connections", "3"])
        .await
        .unwrap();
    let url = server.ws_url();
    let mut open = Vec::new();
    for account in ["alice", "bob", "carol"] {
        open.push(
            Client::connect(&url, &token(TENANT, account, false, 3600))
                .await
                .unwrap(),
        );
    }
    for _ in 0..2 {
        let mut extra = Client::raw(&url).await.unwrap();
        assert_eq!(
            next_error(&mut extra).await,
            ("too_many_connections".into(), true, None)
        );
        assert_eq!(
            closed_with(&mut extra).await,
            (4029, "too_many_connections".into())
        );
    }
    let refused = Client::connect(&url, &token(TENANT, "dave", false, 3600)).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("too_many_connections")),
        "{refused:?}"
    );
    for (i, c) in open.iter_mut().enumerate() {
        ping(c, i as u64).await;
    }
    // HTTP is not a WebSocket connection: operations stay reachable.
    assert_eq!(http_get(server.port, "/healthz", None).await.0, 200);
    // One leaves; its place can be taken.
    open.pop().unwrap().close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let again = loop {
        match Client::connect(&url, &token(TENANT, "dave", false, 3600)).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                assert!(e.to_string().contains("too_many_connections"), "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the freed place was not given back: {e}"),
        }
    };
    assert_eq!(again.account, "dave");
}

#[tokio::test]
async fn connection_limit_on_sqlite() {
    connection_limit(Backend::Sqlite).await;
}

#[tokio::test]
async fn connection_limit_on_postgres() {
    connection_limit(Backend::Postgres).await;
}
