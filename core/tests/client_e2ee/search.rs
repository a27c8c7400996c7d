//! The device's search index in an encrypted conversation: a sealed message is indexed once
//! this device has opened it, follows its edits (each edit's new content opened in place of
//! the old one), and leaves the index when it is deleted.

use confab_core::client::{Event, Outcome, SearchOptions};

use super::*;

/// What `peers[i]`'s local search for `query` finds: message ids, sorted (the messages here
/// share a creation time).
pub(super) fn found(wire: &mut Wire, peers: &mut [Peer], i: usize, query: &str) -> Vec<String> {
    let options = SearchOptions {
        local_only: true,
        ..Default::default()
    };
    peers[i].engine.search(query, &options).unwrap();
    loop {
        let outputs = peers[i].engine.drain();
        assert!(!outputs.is_empty(), "the search answers");
        for output in outputs {
            match output {
                Output::Event(Event::Done {
                    outcome: Outcome::Searched(page),
                    ..
                }) => {
                    let mut ids: Vec<String> =
                        page.hits.iter().map(|h| h.message.to_string()).collect();
                    ids.sort();
                    return ids;
                }
                other => {
                    if let Some(frame) = peers[i].carry_out(other) {
                        wire.serve(peers, i, frame);
                    }
                }
            }
        }
    }
}

#[test]
fn a_sealed_message_is_found_by_its_current_text_only() {
    let mut wire = Wire::new();
    let (mut peers, _) = group_with_today_open(&mut wire, &["alice", "bob"]);
    let sent_at = wire.now;
    send(&mut wire, &mut peers, 0, "m1", "meet at the aardvark");
    send(&mut wire, &mut peers, 0, "m2", "bring the aardvark cake");
    for i in [0, 1] {
        assert_eq!(found(&mut wire, &mut peers, i, "aardvark"), ["m1", "m2"]);
    }

    wire.now += 1_000;
    let intent = edit(&peers[0], "m1", "meet at the bongo", sent_at);
    let id = wire.intent(&mut peers, 0, intent);
    assert_eq!(peers[0].engine.status(id), None, "the edit is accepted");
    for i in [0, 1] {
        assert_eq!(shown(&peers[i], "m1"), Ok("meet at the bongo".into()));
        assert_eq!(found(&mut wire, &mut peers, i, "bongo"), ["m1"], "peer {i}");
        assert_eq!(
            found(&mut wire, &mut peers, i, "aardvark"),
            ["m2"],
            "peer {i}"
        );
    }

    let delete = Intent::Delete {
        conv: conv("secret"),
        message: MessageId::new("m2").unwrap(),
        bucket: peers[0].engine.bucket_for(&conv("secret"), sent_at),
    };
    let id = wire.intent(&mut peers, 0, delete);
    assert_eq!(peers[0].engine.status(id), None, "the delete is accepted");
    for i in [0, 1] {
        assert!(
            found(&mut wire, &mut peers, i, "aardvark").is_empty(),
            "peer {i}"
        );
        assert!(
            found(&mut wire, &mut peers, i, "cake").is_empty(),
            "peer {i}"
        );
    }
}
