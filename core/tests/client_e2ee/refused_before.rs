//! An intent whose change follows a refused one in the same document (the refusal of the
//! earlier change dooms the later: it depends on it). Two devices of one account write the
//! same value at once; the loser's next intent carries a commit (a removal, an add) that
//! must be made anew on the group's epoch, not end rejected for the pending commit the
//! first one left. Markers that lose to another device of the account are written again.

use super::*;

/// `account`'s device `device`, with an actor of its own (not `config`'s, which is one per
/// account), attached fresh.
fn another_device(account: &str, device: &str) -> Peer {
    let mut actor = [7u8; 16];
    for (slot, b) in actor.iter_mut().zip(account.bytes().chain(device.bytes())) {
        *slot = b;
    }
    let config = ClientConfig {
        tenant: tenant(),
        account: acc(account),
        actor: ActorId::from(&actor[..]),
    };
    device_of(config, device)
}

/// Carries out peer `i`'s outputs except its frames, which it returns unsent.
fn held_frames(peers: &mut [Peer], i: usize) -> Vec<ClientFrame> {
    let mut frames = Vec::new();
    loop {
        let outputs = peers[i].engine.drain();
        if outputs.is_empty() {
            return frames;
        }
        frames.extend(outputs.into_iter().filter_map(|o| peers[i].carry_out(o)));
    }
}

fn title(value: &str) -> Intent {
    Intent::SetInfo {
        conv: conv("secret"),
        field: "title".into(),
        value: Some(value.into()),
    }
}

/// "secret" of alice (phone, peer 0), bob and carol, and alice's tablet (the last peer)
/// following the conversation: it said it waits, and the phone added it (epoch 3).
fn alice_with_a_tablet(wire: &mut Wire, names: &[&str]) -> Vec<Peer> {
    let mut peers = group_of(wire, names);
    let added = wire.intent(&mut peers, 0, add("carol"));
    assert_eq!(peers[0].engine.status(added), None, "carol is added");
    peers.push(another_device("alice", "tablet"));
    let tablet = peers.len() - 1;
    wire.connect(&mut peers, tablet);
    peers[tablet]
        .engine
        .open(&DocId::conv(&tenant(), &conv("secret")))
        .unwrap();
    wire.pump(&mut peers);
    assert_eq!(accepted_epoch(wire), 3);
    peers
}

/// The tablet's title is taken; then the phone's held frames are served in order: its own
/// title is refused (`conflicting_write`) and the change after it with it.
fn the_tablet_wins(wire: &mut Wire, peers: &mut [Peer], phone_frames: Vec<ClientFrame>) {
    let tablet = peers.len() - 1;
    peers[tablet]
        .engine
        .intent(title("Tablet's"), wire.now)
        .unwrap();
    for frame in held_frames(peers, tablet) {
        wire.serve(peers, tablet, frame);
    }
    for frame in phone_frames {
        wire.serve(peers, 0, frame);
    }
    wire.pump(peers);
}

/// The phone's title `renamed` lost to the tablet's; its intent `remade` behind it, made
/// anew, was accepted and moved the group to epoch 4.
fn title_lost_and_made_anew(wire: &Wire, phone: &Peer, renamed: u64, remade: u64) {
    let title = phone.engine.status(renamed);
    assert!(
        matches!(&title, Some(IntentStatus::Rejected { code, .. }) if code == "conflicting_write"),
        "{title:?}"
    );
    let status = phone.engine.status(remade);
    assert_eq!(status, None, "made again and accepted: {status:?}");
    assert_eq!(accepted_epoch(wire), 4);
}

#[test]
fn a_removal_behind_a_refused_change_is_made_again_and_accepted() {
    let mut wire = Wire::new();
    let mut peers = alice_with_a_tablet(&mut wire, &["alice", "bob", "carol"]);
    let renamed = peers[0].engine.intent(title("Phone's"), wire.now).unwrap();
    let removed = peers[0].engine.intent(remove("carol"), wire.now).unwrap();
    let phone_frames = held_frames(&mut peers, 0);
    the_tablet_wins(&mut wire, &mut peers, phone_frames);

    title_lost_and_made_anew(&wire, &peers[0], renamed, removed);
    assert_eq!(epochs(&peers[..3]), vec![Some(4), Some(4), None]);
    // The group works on: bob's next message is read by alice.
    let bucket = peers[0].engine.bucket_doc(&conv("secret"), wire.now);
    for peer in peers.iter_mut() {
        peer.engine.open(&bucket).unwrap();
    }
    wire.pump(&mut peers);
    send(&mut wire, &mut peers, 1, "after", "still here");
    assert_eq!(shown(&peers[0], "after").as_deref(), Ok("still here"));
}

#[test]
fn an_add_behind_a_refused_change_claims_again_and_is_accepted() {
    let mut wire = Wire::new();
    let mut peers = alice_with_a_tablet(&mut wire, &["alice", "bob", "carol", "dave"]);
    let renamed = peers[0].engine.intent(title("Phone's"), wire.now).unwrap();
    let mut phone_frames = held_frames(&mut peers, 0);
    // The add claims dave's packages first; its commit is made once they are here.
    let added = peers[0].engine.intent(add("dave"), wire.now).unwrap();
    for frame in held_frames(&mut peers, 0) {
        wire.serve(&mut peers, 0, frame);
    }
    for frame in std::mem::take(&mut peers[0].inbox) {
        peers[0].engine.receive(frame, wire.now);
    }
    phone_frames.extend(held_frames(&mut peers, 0));
    assert!(
        phone_frames
            .iter()
            .filter(|f| matches!(f, ClientFrame::Submit { .. }))
            .count()
            >= 2,
        "the title and the add are both in flight: {phone_frames:?}"
    );
    the_tablet_wins(&mut wire, &mut peers, phone_frames);

    title_lost_and_made_anew(&wire, &peers[0], renamed, added);
    assert_eq!(epochs(&peers[..4]), vec![Some(4); 4]);
}

fn mark_read(message: &str) -> Intent {
    Intent::MarkRead {
        conv: conv("secret"),
        message: MessageId::new(message).unwrap(),
    }
}

fn read_marker(wire: &Wire) -> Option<String> {
    wire.hub
        .conversation(&conv("secret"))
        .unwrap()
        .reads
        .get(&acc("alice"))
        .map(|m| m.to_string())
}

/// Phone and tablet move alice's read marker at once: the same message (the phone's ends
/// accepted, its goal holds) or another (the phone's is written again and taken).
#[test]
fn a_marker_beaten_by_another_device_of_the_account_ends_accepted() {
    for (tablet_marks, phone_marks) in [("m2", "m2"), ("m1", "m2")] {
        let mut wire = Wire::new();
        let mut peers = alice_with_a_tablet(&mut wire, &["alice", "bob", "carol"]);
        let bucket = peers[0].engine.bucket_doc(&conv("secret"), wire.now);
        for peer in peers.iter_mut() {
            peer.engine.open(&bucket).unwrap();
        }
        wire.pump(&mut peers);
        send(&mut wire, &mut peers, 1, "m1", "one");
        send(&mut wire, &mut peers, 1, "m2", "two");

        let tablet = peers.len() - 1;
        let by_phone = peers[0]
            .engine
            .intent(mark_read(phone_marks), wire.now)
            .unwrap();
        let phone_frames = held_frames(&mut peers, 0);
        peers[tablet]
            .engine
            .intent(mark_read(tablet_marks), wire.now)
            .unwrap();
        for frame in held_frames(&mut peers, tablet) {
            wire.serve(&mut peers, tablet, frame);
        }
        for frame in phone_frames {
            wire.serve(&mut peers, 0, frame);
        }
        wire.pump(&mut peers);

        assert!(
            wire.rejects.iter().any(|c| c == "conflicting_write"),
            "the two markers raced: {:?}",
            wire.rejects
        );
        assert_eq!(
            peers[0].engine.status(by_phone),
            None,
            "{tablet_marks}/{phone_marks}: {:?}",
            peers[0].engine.status(by_phone)
        );
        assert_eq!(read_marker(&wire).as_deref(), Some(phone_marks));
    }
}
