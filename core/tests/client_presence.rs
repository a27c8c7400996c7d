//! Presence in the client engine, with a fake clock (time is a parameter): what it keeps of
//! members' `presence` signals, when they expire, and what it sends of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::automerge::ActorId;
use confab_core::client::{
    presence_refresh_ms, ClientConfig, ClientEngine, Event, Intent, Output, PresenceState,
};
use confab_core::ids::{ConvId, DocId, TenantId};
use confab_core::model::conversation::{ConvKind, Role};
use confab_core::protocol::{ClientFrame, ServerFrame, SignalKind};
use confab_testkit::ids::acc;

const T0: i64 = 1_775_779_200_000;

fn engine() -> ClientEngine {
    ClientEngine::new(ClientConfig {
        tenant: TenantId::new("acme").unwrap(),
        account: acc("alice"),
        actor: ActorId::from(&[1u8; 16][..]),
    })
}

fn conv_doc(conv: &ConvId) -> String {
    DocId::conv(&TenantId::new("acme").unwrap(), conv).to_string()
}

fn presence_frame(conv: &ConvId, from: &str, data: &str) -> ServerFrame {
    ServerFrame::Signal {
        doc: conv_doc(conv),
        from: from.into(),
        kind: SignalKind::Presence,
        data: Some(data.into()),
    }
}

fn presence_events(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Event(Event::Presence { .. })))
        .count()
}

/// The presence states this engine sent, in order.
fn sent(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(ClientFrame::Signal {
                kind: SignalKind::Presence,
                data,
                ..
            }) => data.clone(),
            _ => None,
        })
        .collect()
}

fn state_of(e: &ClientEngine, conv: &ConvId, who: &str, now: i64) -> Option<(PresenceState, i64)> {
    e.presence(conv, now)
        .into_iter()
        .find(|p| p.account == acc(who))
        .map(|p| (p.state, p.last_seen))
}

#[test]
fn members_presence_changes_with_signals_and_expires_without_refresh() {
    let conv = ConvId::new("c1").unwrap();
    let mut e = engine();
    e.connected(T0, T0);
    e.drain();

    e.receive(presence_frame(&conv, "bob", "online"), T0);
    assert_eq!(presence_events(&e.drain()), 1);
    assert_eq!(
        state_of(&e, &conv, "bob", T0),
        Some((PresenceState::Online, T0))
    );

    // A refresh in the same state moves last-seen, without an event.
    e.receive(presence_frame(&conv, "bob", "online"), T0 + 30_000);
    assert_eq!(presence_events(&e.drain()), 0);
    assert_eq!(
        state_of(&e, &conv, "bob", T0 + 30_000),
        Some((PresenceState::Online, T0 + 30_000))
    );

    e.receive(presence_frame(&conv, "bob", "away"), T0 + 40_000);
    assert_eq!(presence_events(&e.drain()), 1);
    assert_eq!(
        state_of(&e, &conv, "bob", T0 + 40_000).unwrap().0,
        PresenceState::Away
    );

    // Garbage and our own account's other devices change nothing.
    e.receive(presence_frame(&conv, "bob", "busy"), T0 + 41_000);
    e.receive(presence_frame(&conv, "alice", "online"), T0 + 41_000);
    assert_eq!(presence_events(&e.drain()), 0);
    assert_eq!(state_of(&e, &conv, "alice", T0 + 41_000), None);

    // A member of a small conversation not heard for 3 refresh periods is offline; the
    // tick that notices it says so once.
    let ttl = presence_refresh_ms(0) * 3;
    let last = T0 + 40_000;
    e.tick(last + ttl - 1);
    assert_eq!(presence_events(&e.drain()), 0);
    assert_eq!(
        state_of(&e, &conv, "bob", last + ttl - 1).unwrap().0,
        PresenceState::Away
    );
    assert_eq!(
        state_of(&e, &conv, "bob", last + ttl),
        Some((PresenceState::Offline, last))
    );
    e.tick(last + ttl);
    assert_eq!(presence_events(&e.drain()), 1);
    e.tick(last + ttl + 1000);
    assert_eq!(presence_events(&e.drain()), 0);

    // The server's `offline` when bob's last connection closed.
    e.receive(presence_frame(&conv, "bob", "online"), T0 + 500_000);
    e.receive(presence_frame(&conv, "bob", "offline"), T0 + 510_000);
    assert_eq!(presence_events(&e.drain()), 2);
    assert_eq!(
        state_of(&e, &conv, "bob", T0 + 510_000),
        Some((PresenceState::Offline, T0 + 510_000))
    );
}

#[test]
fn own_presence_is_sent_on_connect_coalesced_and_refreshed() {
    let conv = ConvId::new("c1").unwrap();
    let mut e = engine();
    e.intent(
        Intent::CreateConversation {
            encrypted: false,
            conv: conv.clone(),
            kind: ConvKind::Group,
            title: Some("c1".into()),
            members: vec![(acc("alice"), Role::Owner), (acc("bob"), Role::Member)],
            settings: None,
            parent: None,
        },
        T0,
    )
    .unwrap();
    e.drain();
    e.tick(T0);
    assert!(sent(&e.drain()).is_empty(), "nothing is sent offline");

    e.connected(T0, T0);
    let out = e.drain();
    assert_eq!(sent(&out), vec!["online"]);
    assert!(out.iter().any(|o| matches!(o,
        Output::Send(ClientFrame::Signal { doc, .. }) if *doc == conv_doc(&conv))));

    assert_eq!(e.presence_wakeup(), Some(T0 + presence_refresh_ms(2)));

    // Blur at once after: held until the gap since the last send is over.
    e.set_presence(PresenceState::Away, T0 + 1_000);
    assert!(sent(&e.drain()).is_empty());
    assert_eq!(e.presence_wakeup(), Some(T0 + 5_000));
    e.tick(T0 + 4_999);
    assert!(sent(&e.drain()).is_empty());
    e.tick(T0 + 5_000);
    assert_eq!(sent(&e.drain()), vec!["away"]);

    // Focus and blur flapping inside one gap: only the latest state goes out.
    e.set_presence(PresenceState::Online, T0 + 6_000);
    e.set_presence(PresenceState::Away, T0 + 7_000);
    e.tick(T0 + 8_000);
    assert!(sent(&e.drain()).is_empty());
    e.tick(T0 + 10_000);
    assert_eq!(sent(&e.drain()), vec!["away"]);

    // Refreshed every period while connected, not before.
    let next = T0 + 10_000 + presence_refresh_ms(2);
    e.tick(next - 1);
    assert!(sent(&e.drain()).is_empty());
    e.tick(next);
    assert_eq!(sent(&e.drain()), vec!["away"]);

    // Disconnected: nothing goes out, no wakeup.
    e.disconnected();
    assert_eq!(e.presence_wakeup(), None);
    e.tick(next + presence_refresh_ms(2));
    assert!(sent(&e.drain()).is_empty());
}

#[test]
fn refresh_period_grows_with_the_group_so_receivers_hear_under_one_a_second() {
    assert_eq!(presence_refresh_ms(2), 60_000);
    assert_eq!(presence_refresh_ms(50), 60_000);
    assert_eq!(presence_refresh_ms(1_000), 1_200_000);
    for members in [10usize, 100, 1_000, 100_000] {
        // Signals a receiver hears per second when every member refreshes.
        let per_sec = members as f64 / (presence_refresh_ms(members) as f64 / 1000.0);
        assert!(per_sec < 1.0, "{members} members: {per_sec}/s");
    }
}
