//! A device away while its group moves many epochs reads every message sent while it was a
//! member, whichever of the conversation document (its commits) and the part (its messages)
//! its catch-up brings first (docs/E2EE.md, "Epochs a device keeps").

use super::*;

use confab_core::e2ee::{CATCH_UP_EPOCHS, PAST_EPOCHS};

/// alice, bob and carol in "secret" with today's part open; bob's device goes away while
/// alice removes and adds carol again `commits` times, writing a message after each
/// commit; bob comes back with his subscriptions answered conversation first or part first.
/// Answers what bob could not read of those messages, with why.
fn away_across(commits: usize, conversation_first: bool) -> Vec<(String, String)> {
    let mut wire = Wire::new();
    let (mut peers, bucket) = group_with_today_open(&mut wire, &["alice", "bob", "carol"]);
    wire.intent(&mut peers, 0, add("carol"));
    send(&mut wire, &mut peers, 0, "before", "before bob left");
    let left_at = accepted_epoch(&wire);
    peers[1].online = false;
    peers[1].engine.disconnected();
    for s in wire.subs.values_mut() {
        s.remove(&1);
    }
    for k in 0..commits {
        let change = if k % 2 == 0 {
            remove("carol")
        } else {
            add("carol")
        };
        let id = wire.intent(&mut peers, 0, change);
        assert_eq!(peers[0].engine.status(id), None, "commit {k} is accepted");
        send(
            &mut wire,
            &mut peers,
            0,
            &format!("m{k:03}"),
            &format!("body {k}"),
        );
    }
    assert_eq!(accepted_epoch(&wire), left_at + commits as u64);

    connect_in_order(&mut wire, &mut peers, 1, &bucket, conversation_first);
    assert_eq!(
        peers[1].engine.group_epoch(&conv("secret")),
        Some(left_at + commits as u64)
    );
    assert_eq!(shown(&peers[1], "before"), Ok("before bob left".into()));
    let unread: Vec<(String, String)> = (0..commits)
        .map(|k| format!("m{k:03}"))
        .filter_map(|id| shown(&peers[1], &id).err().map(|why| (id, why)))
        .collect();
    // Caught up, bob keeps the usual window again.
    assert_eq!(
        peers[1].engine.group_past_epochs(&conv("secret")),
        Some(PAST_EPOCHS as usize)
    );
    // What came after the catch-up still opens, and bob writes on the newest epoch.
    send(&mut wire, &mut peers, 0, "after", "after bob is back");
    assert_eq!(shown(&peers[1], "after"), Ok("after bob is back".into()));
    send(&mut wire, &mut peers, 1, "reply", "back");
    assert_eq!(shown(&peers[0], "reply"), Ok("back".into()));
    unread
}

/// Connects peer `i` with its subscriptions answered conversation document first, or its
/// part `bucket` first.
fn connect_in_order(
    wire: &mut Wire,
    peers: &mut [Peer],
    i: usize,
    bucket: &DocId,
    conversation_first: bool,
) {
    peers[i].online = true;
    peers[i].engine.connected(wire.now, wire.now);
    let mut frames = Vec::new();
    for output in peers[i].engine.drain() {
        if let Some(frame) = peers[i].carry_out(output) {
            frames.push(frame);
        }
    }
    let part = bucket.to_string();
    let rank = |frame: &ClientFrame| match frame {
        ClientFrame::Subscribe { doc, .. } if (*doc == part) != conversation_first => 0,
        ClientFrame::Subscribe { .. } => 1,
        _ => 2,
    };
    frames.sort_by_key(rank);
    assert!(
        frames.iter().filter(|f| rank(f) < 2).count() >= 2,
        "both documents are subscribed"
    );
    for frame in frames {
        wire.serve(peers, i, frame);
    }
    wire.pump(peers);
}

#[test]
fn a_device_away_for_24_commits_reads_every_message_conversation_first() {
    assert_eq!(away_across(24, true), vec![]);
}

#[test]
fn a_device_away_for_24_commits_reads_every_message_part_first() {
    assert_eq!(away_across(24, false), vec![]);
}

#[test]
fn a_device_away_for_100_commits_reads_every_message_conversation_first() {
    assert_eq!(away_across(100, true), vec![]);
}

#[test]
fn a_device_away_for_100_commits_reads_every_message_part_first() {
    assert_eq!(away_across(100, false), vec![]);
}

/// Past the most epochs a catching-up device keeps: the messages it holds still open (each
/// epoch's before the commit that ends it); of those that arrive after the commits, the
/// ones of the epochs before the last `CATCH_UP_EPOCHS` do not.
#[test]
fn a_device_away_for_more_epochs_than_it_keeps_reads_what_it_holds() {
    let commits = CATCH_UP_EPOCHS + 20;
    assert_eq!(away_across(commits, false), vec![]);
    let unread = away_across(commits, true);
    // Message k is of the epoch after commit k; the last CATCH_UP_EPOCHS epochs passed are
    // the ones after the first 20 commits.
    let lost: Vec<(String, String)> = (0..commits - CATCH_UP_EPOCHS - 1)
        .map(|k| {
            (
                format!("m{k:03}"),
                "sent in an epoch outside the window this device keeps".to_owned(),
            )
        })
        .collect();
    assert_eq!(unread, lost);
}
