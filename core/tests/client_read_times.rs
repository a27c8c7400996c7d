//! Read times are asked of the server (docs/CLIENT.md, "Read times"): a request is one
//! `read_times` frame however many wait for the same conversation, its answer ends them all,
//! and an error naming the document, a dropped connection or being offline ends them with a
//! code. Nothing is kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::automerge::ActorId;
use confab_core::client::{ClientConfig, ClientEngine, Event, Outcome, Output, RequestId};
use confab_core::ids::{AccountId, ConvId, TenantId};
use confab_core::protocol::{ClientFrame, ReadTime, ServerFrame};

const T0: i64 = 1_775_779_200_000;
const DOC: &str = "acme/conv/g1";

fn engine() -> ClientEngine {
    ClientEngine::new(ClientConfig {
        tenant: TenantId::new("acme").unwrap(),
        account: AccountId::new("ann").unwrap(),
        actor: ActorId::from(&[7u8; 16][..]),
    })
}

fn conv() -> ConvId {
    ConvId::new("g1").unwrap()
}

fn asked(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(ClientFrame::ReadTimes { doc }) => Some(doc.clone()),
            _ => None,
        })
        .collect()
}

fn done(out: &[Output]) -> Vec<(RequestId, Outcome)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::Done { request, outcome }) => Some((*request, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn code(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Failed { code, .. } => code,
        other => panic!("not a failure: {other:?}"),
    }
}

#[test]
fn requests_for_one_conversation_share_one_question_and_its_answer() {
    let mut e = engine();
    e.connected(T0, T0);
    e.drain();
    let first = e.read_times(&conv());
    let second = e.read_times(&conv());
    let out = e.drain();
    assert_eq!(asked(&out), vec![DOC.to_owned()], "one question");
    assert!(done(&out).is_empty(), "nothing ends before the answer");

    let reads = vec![ReadTime {
        account: "bob".into(),
        message: "m1".into(),
        at: Some(T0 - 5),
    }];
    e.receive(
        ServerFrame::ReadTimes {
            doc: DOC.into(),
            reads: reads.clone(),
        },
        T0,
    );
    let answered = done(&e.drain());
    let expected = Outcome::ReadTimes { reads };
    assert_eq!(
        answered,
        vec![(first, expected.clone()), (second, expected)]
    );
    // A late repeat of the answer ends nothing more.
    e.receive(
        ServerFrame::ReadTimes {
            doc: DOC.into(),
            reads: vec![],
        },
        T0,
    );
    assert!(done(&e.drain()).is_empty());
}

#[test]
fn offline_a_refusal_or_a_dropped_connection_end_a_request_with_its_code() {
    let mut e = engine();
    let offline = e.read_times(&conv());
    let out = e.drain();
    assert!(asked(&out).is_empty(), "nothing is sent offline");
    let ended = done(&out);
    assert_eq!((ended[0].0, code(&ended[0].1)), (offline, "offline"));

    e.connected(T0, T0);
    e.drain();
    let refused = e.read_times(&conv());
    e.drain();
    e.receive(
        ServerFrame::Error {
            code: "forbidden".into(),
            message: "not a member".into(),
            doc: Some(DOC.into()),
            fatal: false,
            hash: None,
            retry_after_ms: None,
            id: None,
        },
        T0,
    );
    let ended = done(&e.drain());
    assert_eq!((ended[0].0, code(&ended[0].1)), (refused, "forbidden"));

    let dropped = e.read_times(&conv());
    e.drain();
    e.disconnected();
    let ended = done(&e.drain());
    assert_eq!(ended.len(), 1);
    assert_eq!((ended[0].0, code(&ended[0].1)), (dropped, "offline"));
}
