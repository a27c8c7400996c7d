//! Randomized lives of an encrypted group (docs/E2EE.md, "Joining", "Leaving", "Epochs a
//! device keeps"): seeded trials mix adds, leaves, removals, new devices, devices going away
//! and coming back, and sends, with the engines' own rules only. After each trial, with every
//! device back online: no intent ends rejected; every active member's device reads every
//! message sent after it was in the group (what was sent before shows `before_join`, never a
//! waiting case; a message written offline is sealed in its writer's epoch, so a device that
//! joined since may show it `before_join`); no departed account's device reads anything sent
//! after it left. The seed is printed; `E2EE_LIVES_SEED` replays one trial
//! (`E2EE_LIVES_TRACE` prints each step).

use super::*;
use confab_core::client::JOIN_STEP_MS;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const ACCOUNTS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

fn member(account: &str) -> Intent {
    Intent::AddMember {
        conv: conv("secret"),
        account: acc(account),
        role: Role::Member,
    }
}

/// One device of the trial: its peer index and account.
struct Life {
    account: &'static str,
    /// The count of messages sent when this device was first seen in the group.
    joined_at: Option<usize>,
}

/// Lets every online engine's waits run out: joins by place, then anything they started.
fn settle(wire: &mut Wire, peers: &mut [Peer]) {
    for _ in 0..3 {
        wire.now += JOIN_STEP_MS * 9;
        for p in peers.iter_mut().filter(|p| p.online) {
            p.engine.tick(wire.now);
        }
        wire.pump(peers);
    }
}

/// Whether `peer`'s timeline holds message `id` of "secret".
fn holds(peer: &Peer, id: &str) -> bool {
    peer.engine
        .timeline(&conv("secret"))
        .iter()
        .any(|i| i.message.id.as_str() == id)
}

fn trial(seed: u64) {
    let mut rng = Rng(seed);
    let mut wire = Wire::new();
    let mut peers: Vec<Peer> = ACCOUNTS.iter().map(|a| phone(a)).collect();
    let mut lives: Vec<Life> = ACCOUNTS
        .iter()
        .map(|a| Life {
            account: a,
            joined_at: None,
        })
        .collect();
    for i in 0..3 {
        wire.connect(&mut peers, i);
    }
    wire.intent(&mut peers, 0, create(true, &["bob", "carol"]));
    for i in 0..3 {
        follow(&mut wire, &mut peers, i);
    }
    let mut active: BTreeSet<&str> = ["alice", "bob", "carol"].into();
    // Per departed account, how many messages were sent when it left.
    let mut left_at: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sent: Vec<String> = Vec::new();
    // Messages written offline: sealed in the epoch the writer was at, which the server
    // takes while it is in its window, so a device that joined since cannot read them.
    let mut offline_written: BTreeSet<String> = BTreeSet::new();
    // The epoch each message was sealed in, as its writer stood.
    let mut sealed_at: BTreeMap<String, u64> = BTreeMap::new();
    // Each message's writer and intent.
    let mut written: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut intents: Vec<(usize, u64)> = Vec::new();
    for step in 0..30 {
        // A device is seen in the group once it is online and current with the server, and
        // its account a member (a departed member's device stays until the owed removal).
        let epoch = accepted_epoch(&wire);
        for (i, life) in lives.iter_mut().enumerate() {
            let current = peers[i].online
                && active.contains(life.account)
                && peers[i].engine.group_epoch(&conv("secret")) == Some(epoch);
            if life.joined_at.is_none() && current {
                life.joined_at = Some(sent.len());
            }
        }
        if std::env::var("E2EE_LIVES_TRACE").is_ok() {
            let state: Vec<String> = (0..peers.len())
                .map(|i| {
                    format!(
                        "{i}:{}{}{:?}",
                        lives[i].account,
                        if peers[i].online { "+" } else { "-" },
                        peers[i].engine.group_epoch(&conv("secret"))
                    )
                })
                .collect();
            eprintln!(
                "step {step} epoch {} active {active:?} {state:?}",
                accepted_epoch(&wire)
            );
        }
        let online_members: Vec<usize> = (0..peers.len())
            .filter(|&i| peers[i].online && active.contains(lives[i].account))
            .collect();
        match rng.below(6) {
            // alice adds someone who is not a member.
            0 if peers[0].online => {
                let out: Vec<&str> = ACCOUNTS
                    .iter()
                    .copied()
                    .filter(|a| !active.contains(a))
                    .collect();
                if let Some(&who) = out.get(rng.below(out.len().max(1))) {
                    intents.push((0, wire.intent(&mut peers, 0, member(who))));
                    active.insert(who);
                    left_at.remove(who);
                    // The member's devices come to the conversation.
                    for i in 0..peers.len() {
                        if lives[i].account == who && !peers[i].online {
                            follow(&mut wire, &mut peers, i);
                        }
                    }
                }
            }
            // A member other than alice leaves, from an online device.
            1 => {
                let leavers: Vec<usize> = online_members
                    .iter()
                    .copied()
                    .filter(|&i| lives[i].account != "alice")
                    .collect();
                if let Some(&i) = leavers.get(rng.below(leavers.len().max(1))) {
                    let c = conv("secret");
                    intents.push((i, wire.intent(&mut peers, i, Intent::Leave { conv: c })));
                    let who = lives[i].account;
                    active.remove(who);
                    left_at.insert(who, sent.len());
                    // Its devices are out of the group from the removal it owes.
                    for life in lives.iter_mut().filter(|l| l.account == who) {
                        life.joined_at = None;
                    }
                }
            }
            // A member's new device (a new phone, a cleared browser).
            2 if peers.len() < 9 => {
                let members: Vec<&str> = active.iter().copied().collect();
                let who = members[rng.below(members.len())];
                let name = format!("d{step}");
                // A device of its own writes as its own actor.
                let mut device = config(who);
                let mut actor = [0u8; 16];
                let tag = format!("{who}/{name}");
                actor[..tag.len().min(16)].copy_from_slice(&tag.as_bytes()[..tag.len().min(16)]);
                device.actor = confab_core::automerge::ActorId::from(&actor[..]);
                peers.push(device_of(device, &name));
                lives.push(Life {
                    account: ACCOUNTS.iter().copied().find(|a| *a == who).unwrap(),
                    joined_at: None,
                });
                let i = peers.len() - 1;
                follow(&mut wire, &mut peers, i);
            }
            // A device goes away, or comes back.
            3 => {
                let i = rng.below(peers.len());
                if i != 0 && peers[i].online {
                    offline(&mut wire, &mut peers, i);
                } else if !peers[i].online && active.contains(lives[i].account) {
                    follow(&mut wire, &mut peers, i);
                }
            }
            // An active member's device sends, online or offline.
            _ => {
                let senders: Vec<usize> = (0..peers.len())
                    .filter(|&i| active.contains(lives[i].account))
                    .filter(|&i| peers[i].engine.group_epoch(&conv("secret")).is_some())
                    .collect();
                if let Some(&i) = senders.get(rng.below(senders.len().max(1))) {
                    let id = format!("m{}", sent.len());
                    if !peers[i].online {
                        offline_written.insert(id.clone());
                    }
                    if let Some(epoch) = peers[i].engine.group_epoch(&conv("secret")) {
                        sealed_at.insert(id.clone(), epoch);
                    }
                    let m = message(&peers[i], &conv("secret"), &id, &format!("body {id}"));
                    let n = peers[i].engine.intent(m, wire.now).unwrap();
                    wire.pump(&mut peers);
                    intents.push((i, n));
                    written.insert(id.clone(), (i, n));
                    sent.push(id);
                }
            }
        }
        wire.now += 1_000;
        wire.pump(&mut peers);
    }
    // Every device back (a departed member's too: what it wrote offline gets its answer);
    // the waits run out.
    for i in 0..peers.len() {
        if !peers[i].online {
            follow(&mut wire, &mut peers, i);
        }
    }
    settle(&mut wire, &mut peers);
    let epoch = accepted_epoch(&wire);
    for (i, life) in lives.iter_mut().enumerate() {
        if life.joined_at.is_none() && peers[i].engine.group_epoch(&conv("secret")) == Some(epoch) {
            life.joined_at = Some(sent.len());
        }
    }
    for (i, id) in &intents {
        let status = peers[*i].engine.status(*id);
        // A departed member's offline writes may end refused for that (`not_member`), never
        // for an MLS reason.
        let about_itself = !active.contains(lives[*i].account)
            && matches!(&status, Some(IntentStatus::Rejected { code, .. })
                if !code.starts_with("mls_") && code != "e2ee");
        assert!(
            status.is_none() || status == Some(IntentStatus::Accepted) || about_itself,
            "seed {seed}: intent {id} of device {i} ({}) ends {status:?}",
            lives[*i].account
        );
    }
    // What was refused (a departed member's offline writes) is in no one's timeline.
    let refused: BTreeSet<&String> = sent
        .iter()
        .filter(|id| {
            let (i, n) = written[*id];
            matches!(
                peers[i].engine.status(n),
                Some(IntentStatus::Rejected { .. })
            )
        })
        .collect();
    for (i, life) in lives.iter().enumerate() {
        if active.contains(life.account) {
            let joined = life.joined_at.unwrap_or_else(|| {
                panic!(
                    "seed {seed}: device {i} of {} is not in the group",
                    life.account
                )
            });
            for (k, id) in sent.iter().enumerate() {
                if refused.contains(id) {
                    continue;
                }
                assert!(
                    holds(&peers[i], id),
                    "seed {seed}: device {i} of {} does not hold {id}",
                    life.account
                );
                let shown = shown(&peers[i], id);
                let why = unreadable(&peers[i], id);
                let late = offline_written.contains(id)
                    && why == Some(confab_core::client::Unreadable::BeforeJoin);
                // Documented (E2EE.md, "Epochs a device keeps"): a catch-up across 16
                // commits or fewer keeps 16 epochs, so the offline write of a device far
                // behind, arriving after the commits, opens only within them.
                let behind_window = offline_written.contains(id)
                    && why == Some(confab_core::client::Unreadable::OutsideWindow)
                    && peers[i]
                        .engine
                        .group_epoch(&conv("secret"))
                        .zip(sealed_at.get(id))
                        .is_some_and(|(now, sealed)| now > sealed + confab_core::e2ee::PAST_EPOCHS);
                let late = late || behind_window;
                if k >= joined && !late {
                    assert_eq!(
                        shown,
                        Ok(format!("body {id}")),
                        "seed {seed}: device {i} of {} reads {id}",
                        life.account
                    );
                } else if shown.is_err() {
                    let why = unreadable(&peers[i], id).unwrap();
                    assert!(
                        why.is_permanent(),
                        "seed {seed}: device {i}: {id} shows {why:?}"
                    );
                }
            }
        } else if let Some(&gone) = left_at.get(life.account) {
            for id in sent[gone..].iter().filter(|id| holds(&peers[i], id)) {
                if refused.contains(id) {
                    continue;
                }
                assert!(
                    shown(&peers[i], id).is_err(),
                    "seed {seed}: departed device {i} of {} reads {id}",
                    life.account
                );
            }
        }
    }
    assert!(
        !peers
            .iter()
            .any(|p| p.errors().iter().any(|e| e.starts_with("mls_"))),
        "seed {seed}: an MLS error event"
    );
}

#[test]
fn randomized_lives_of_an_encrypted_group() {
    let seeds: Vec<u64> = match std::env::var("E2EE_LIVES_SEED") {
        Ok(s) => vec![s.parse().expect("a seed")],
        Err(_) => {
            let base = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1;
            (0..100).map(|k| base.wrapping_add(k * 2)).collect()
        }
    };
    for seed in seeds {
        eprintln!("E2EE_LIVES_SEED={seed}");
        trial(seed);
    }
}
