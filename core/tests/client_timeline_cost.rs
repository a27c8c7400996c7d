//! What a timeline costs the client engine, counted (issue 16): asking again after no change
//! reads nothing, a change re-reads only the bucket it touched, and the cached items follow
//! every change (a send shows pending, its ack accepted with its seq).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::automerge::{ActorId, Change};
use confab_core::client::{ClientConfig, ClientEngine, Output};
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_testkit::group::{self, Group};
use confab_testkit::ids::tenant;
use serde_bytes::ByteBuf;

const DAY: i64 = 20_553;

fn client() -> (Group, ClientEngine) {
    let group = Group::build(5, 40, DAY).unwrap();
    let mut engine = ClientEngine::new(ClientConfig {
        tenant: tenant(),
        account: group::member(1),
        actor: ActorId::from(&[0xaa; 16][..]),
    });
    group.load_into(&mut engine).unwrap();
    engine.connected(group.now, group.now);
    engine.drain();
    (group, engine)
}

#[test]
fn asking_again_reads_nothing_and_a_send_rereads_its_bucket_once() {
    let (group, mut engine) = client();
    let first = engine.timeline(&group.conv);
    assert!(first.len() >= 40, "{} items", first.len());
    let reads = engine.timeline_reads();
    for _ in 0..5 {
        assert_eq!(engine.timeline(&group.conv), first);
        engine.conversations();
    }
    assert_eq!(engine.timeline_reads(), reads, "no change, no read");

    engine
        .intent(group.send(1, group.now - 1000), group.now)
        .unwrap();
    let after = engine.timeline(&group.conv);
    assert_eq!(after.len(), first.len() + 1);
    let last = after.last().unwrap();
    assert!(last.pending, "my new message is pending");
    assert_eq!(&after[..first.len()], &first[..], "the others unchanged");
    engine.timeline(&group.conv);
    assert_eq!(
        engine.timeline_reads(),
        reads + 1,
        "one bucket read again, once"
    );
}

#[test]
fn an_ack_turns_the_cached_pending_item_accepted() {
    let (group, mut engine) = client();
    engine
        .intent(group.send(1, group.now - 1000), group.now)
        .unwrap();
    let submit = engine
        .drain()
        .into_iter()
        .find_map(|o| match o {
            Output::Send(ClientFrame::Submit { doc, changes }) => Some((doc, changes)),
            _ => None,
        })
        .expect("the send is submitted");
    let pending = engine.timeline(&group.conv);
    let mine = pending.last().unwrap().clone();
    assert!(mine.pending && mine.seq.is_none());

    let change = Change::try_from(&submit.1[0][..]).unwrap();
    let seq = group.bucket_changes.len() as u64 + 1;
    engine.receive(
        ServerFrame::Ack {
            doc: submit.0,
            hash: ByteBuf::from(change.hash().0.to_vec()),
            seq,
        },
        group.now,
    );
    let acked = engine.timeline(&group.conv);
    let item = acked
        .iter()
        .find(|i| i.message.id == mine.message.id)
        .expect("still shown");
    assert!(!item.pending, "accepted after its ack");
    assert_eq!(item.seq, Some(seq));
}
