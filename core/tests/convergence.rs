//! Convergence under random, racing, partly offline clients (docs/POLICY.md,
//! docs/PROTOCOL.md).
//!
//! The property test drives one group conversation (its `conv` document and one message
//! bucket) through a hub that validates like the server, with six devices:
//! `owen/1` (owner), `ada/1` (admin), `bob/1` and `bob/2` (one member, two devices),
//! `cat/1` (a role chosen per case) and `dan/1` (not a member until someone adds him).
//!
//! A script is 10–40 steps `(device, intent)`. Intents: post, react/unreact (a toggle),
//! edit an own message, delete a message, mark read, pin/unpin (a toggle), set the title,
//! add / remove a member, change a role, leave, go offline, come online, and sync (pull).
//!
//! Every device is a well-behaved client: it reads its OWN replica
//! (`read::read_conversation`, `read::read_messages`), derives the policy `Effect` its intent
//! would have exactly as the validator derives it from the change, builds a
//! `policy::Context` from its replica and calls `policy::check`. Only if that allows it does
//! it write (one `doc::write` transaction). Online devices submit at once (their replica
//! may still be stale: they only catch up on `sync`, on coming online or after a
//! rejection); offline devices queue and submit in order when they come back, then catch
//! up from their seq cursor. On a rejection a device drops what it wrote and rebuilds the
//! document from the hub's accepted changes. Intents that make no sense on the local
//! replica (editing when one has no message, unpinning nothing, adding an active member,
//! marking read what is already read) are not offered, like a UI would not; an intent that
//! writes nothing (Automerge 0.12 drops a put of the value a key already holds) submits
//! nothing.
//!
//! Properties checked in every case:
//! 1. A change written by an online device whose replicas of the conversation and of the
//!    target document had exactly the hub's heads, and submitted right away, is accepted.
//!    Any other change is accepted or rejected only with a policy code or
//!    `conflicting_write`; the changes queued behind a rejected one in the same document are
//!    rejected with `missing_dependency` (they depend on it), and nothing else is.
//! 2. The hub's accepted log of each document, replayed on fresh replicas (plain Automerge
//!    documents from `doc::genesis`) in seq order (which must be causal), in a
//!    seed-shuffled causal order, in a newest-first causal order and as one reversed batch,
//!    converges: same sorted heads, same typed views (`read_conversation`, `read_messages`)
//!    and same raw content including conflicts. After everyone comes online and pulls, every
//!    device has exactly the hub's heads (the same changes, whose content the replays show
//!    not to depend on arrival order). The hub's cached conversation equals its document
//!    after every accepted conversation change.
//! 3. A device whose replica shows its account inactive (removed, left, never added) is
//!    refused by its own check (`member_inactive` / `not_member` for intents whose first
//!    rule is membership), so it writes nothing; a change reaching the hub while the author
//!    is inactive there is never accepted, and — unless it conflicts or depends on a
//!    rejected change — is rejected with `member_inactive` (or `not_member`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};

use confab_core::automerge::{Automerge, Change, ChangeHash, ObjId, ReadDoc, Value, ROOT};
use confab_core::doc::{self, read, schema::keys, write, IntentTag};
use confab_core::hub::Hub;
use confab_core::ids::{AccountId, ConvId, DocId, DocTarget, MessageId};
use confab_core::model::conversation::*;
use confab_core::model::message::{Message, NewMessage};
use confab_core::policy::{self, Author, Context, Decision, DenyCode, Effect};
use confab_core::validate::RejectCode;
use confab_testkit::{hub::*, ids::*, Device};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{TestCaseError, TestRunner};

// ---------- the cast ----------

const ACCOUNTS: [&str; 5] = ["owen", "ada", "bob", "cat", "dan"];
const DEVICES: [(&str, u8); 6] = [
    ("owen", 1),
    ("ada", 1),
    ("bob", 1),
    ("bob", 2),
    ("cat", 1),
    ("dan", 1),
];
const OWEN: usize = 0;
const ADA: usize = 1;
const BOB1: usize = 2;
const BOB2: usize = 3;
const CAT: usize = 4;
const ROLES: [Role; 4] = [Role::Admin, Role::Moderator, Role::Member, Role::Guest];
const EMOJI: [&str; 2] = ["👍", "🎉"];

/// Server (and client) time at step `i`: one second per step, all inside one bucket.
fn time(i: usize) -> i64 {
    NOW + i as i64 * 1000 + 1
}

// ---------- scripts ----------

/// What a user does. `pick`, `target` and `role` are resolved against the device's replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    Post,
    /// Adds the reaction, or removes it when the device's account has it already.
    React {
        pick: u8,
        emoji: u8,
    },
    /// Edits one of the account's own messages.
    Edit {
        pick: u8,
    },
    Delete {
        pick: u8,
    },
    MarkRead {
        pick: u8,
    },
    /// Pins the message, or unpins it when it is pinned.
    Pin {
        pick: u8,
    },
    SetTitle,
    Add {
        target: u8,
        role: u8,
    },
    Remove {
        target: u8,
    },
    SetRole {
        target: u8,
        role: u8,
    },
    Leave,
    GoOffline,
    GoOnline,
    Sync,
}

impl Intent {
    /// Intents whose policy rule checks the author's membership before anything else, so a
    /// removed author meets exactly `member_inactive` (or `not_member`).
    fn membership_first(self) -> bool {
        matches!(
            self,
            Intent::Post
                | Intent::React { .. }
                | Intent::Edit { .. }
                | Intent::Delete { .. }
                | Intent::MarkRead { .. }
                | Intent::Pin { .. }
                | Intent::SetTitle
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Step {
    device: usize,
    intent: Intent,
}

#[derive(Debug, Clone)]
struct Script {
    cat_role: Role,
    steps: Vec<Step>,
    /// Seeds the causal shuffles of property 2.
    seed: u64,
}

fn intent() -> impl Strategy<Value = Intent> {
    prop_oneof![
        6 => Just(Intent::Post),
        4 => (any::<u8>(), any::<u8>()).prop_map(|(pick, emoji)| Intent::React { pick, emoji }),
        2 => any::<u8>().prop_map(|pick| Intent::Edit { pick }),
        1 => any::<u8>().prop_map(|pick| Intent::Delete { pick }),
        2 => any::<u8>().prop_map(|pick| Intent::MarkRead { pick }),
        2 => any::<u8>().prop_map(|pick| Intent::Pin { pick }),
        2 => Just(Intent::SetTitle),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(target, role)| Intent::Add { target, role }),
        4 => any::<u8>().prop_map(|target| Intent::Remove { target }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(target, role)| Intent::SetRole { target, role }),
        1 => Just(Intent::Leave),
        4 => Just(Intent::GoOffline),
        3 => Just(Intent::GoOnline),
        4 => Just(Intent::Sync),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    (
        prop::sample::select(ROLES.to_vec()),
        prop::collection::vec(
            (0..DEVICES.len(), intent()).prop_map(|(device, intent)| Step { device, intent }),
            10..=40,
        ),
        any::<u64>(),
    )
        .prop_map(|(cat_role, steps, seed)| Script {
            cat_role,
            steps,
            seed,
        })
}

// ---------- well-behaved clients ----------

/// A write the client performs once its check allowed the effect.
#[derive(Debug, Clone)]
enum Op {
    Post(NewMessage),
    React {
        message: MessageId,
        emoji: &'static str,
        on: bool,
    },
    Edit {
        message: MessageId,
        body: String,
    },
    Delete(MessageId),
    MarkRead(MessageId),
    Pin(MessageId),
    Unpin(MessageId),
    SetTitle(String),
    AddMember(Member),
    SetStatus(AccountId, MemberStatus),
    SetRole(AccountId, Role),
}

/// An intent resolved against a replica: the effect the validator will derive from the
/// change, and the write that produces it.
struct Plan {
    in_msgs: bool,
    effect: Effect,
    op: Op,
}

fn account_at(i: u8) -> AccountId {
    acc(ACCOUNTS[usize::from(i) % ACCOUNTS.len()])
}

fn nth<T>(items: &[T], pick: u8) -> Option<&T> {
    if items.is_empty() {
        None
    } else {
        items.get(usize::from(pick) % items.len())
    }
}

/// A message as the validator reads it before a change: fields only, no reactions.
fn fields_only(m: &Message) -> Box<Message> {
    let mut m = m.clone();
    m.reactions.clear();
    Box::new(m)
}

/// What the intent means on this replica; `None` when a UI would not offer it.
fn plan(
    conv: &Conversation,
    messages: &[Message],
    author: &Author,
    intent: Intent,
    step: usize,
    device: usize,
    now: i64,
) -> Option<Plan> {
    let me = &author.account;
    let conv_plan = |effect, op| {
        Some(Plan {
            in_msgs: false,
            effect,
            op,
        })
    };
    let msgs_plan = |effect, op| {
        Some(Plan {
            in_msgs: true,
            effect,
            op,
        })
    };
    match intent {
        Intent::Post => {
            let m = NewMessage::text(
                msg_id(&format!("m{step}d{device}")),
                me.clone(),
                format!("hello from step {step}"),
                now,
            );
            msgs_plan(Effect::PostMessage(Box::new(m.clone())), Op::Post(m))
        }
        Intent::React { pick, emoji } => {
            let m = nth(messages, pick)?;
            let emoji = EMOJI[usize::from(emoji) % EMOJI.len()];
            let has = m.reactions.get(emoji).is_some_and(|r| r.contains_key(me));
            msgs_plan(
                Effect::SetReaction {
                    message: fields_only(m),
                    account: me.clone(),
                },
                Op::React {
                    message: m.id.clone(),
                    emoji,
                    on: !has,
                },
            )
        }
        Intent::Edit { pick } => {
            let own: Vec<&Message> = messages.iter().filter(|m| m.author == *me).collect();
            let m = *nth(&own, pick)?;
            msgs_plan(
                Effect::EditBody(fields_only(m)),
                Op::Edit {
                    message: m.id.clone(),
                    body: format!("edited at step {step}"),
                },
            )
        }
        Intent::Delete { pick } => {
            let m = nth(messages, pick)?;
            msgs_plan(
                Effect::DeleteMessage(fields_only(m)),
                Op::Delete(m.id.clone()),
            )
        }
        Intent::MarkRead { pick } => {
            let m = nth(messages, pick)?;
            if conv.reads.get(me) == Some(&m.id) {
                return None;
            }
            conv_plan(
                Effect::MarkRead {
                    account: me.clone(),
                },
                Op::MarkRead(m.id.clone()),
            )
        }
        Intent::Pin { pick } => {
            let m = nth(messages, pick)?;
            if conv.pins.contains_key(&m.id) {
                conv_plan(
                    Effect::Unpin {
                        message: m.id.clone(),
                    },
                    Op::Unpin(m.id.clone()),
                )
            } else {
                conv_plan(
                    Effect::Pin {
                        message: m.id.clone(),
                        by: me.clone(),
                    },
                    Op::Pin(m.id.clone()),
                )
            }
        }
        Intent::SetTitle => conv_plan(
            Effect::SetInfo {
                field: keys::TITLE.to_owned(),
            },
            Op::SetTitle(format!("title of step {step}")),
        ),
        Intent::Add { target, role } => {
            let target = account_at(target);
            let before = conv.member(&target).cloned();
            if before.as_ref().is_some_and(Member::is_active) {
                return None;
            }
            // What `write::add_member` writes, applied over the entry as the validator does.
            let mut after = before
                .clone()
                .unwrap_or_else(|| Member::new(target.clone(), Role::Member));
            after.role = ROLES[usize::from(role) % ROLES.len()];
            after.status = MemberStatus::Active;
            after.joined_at = Some(now);
            after.invited_by = Some(me.clone());
            let written = Member {
                left_at: None,
                removed_at: None,
                ..after.clone()
            };
            conv_plan(Effect::AddMember { before, after }, Op::AddMember(written))
        }
        Intent::Remove { target } => {
            let target = account_at(target);
            let before = conv.member(&target)?.clone();
            if before.status == MemberStatus::Removed {
                return None;
            }
            let after = Member {
                status: MemberStatus::Removed,
                removed_at: Some(now),
                ..before.clone()
            };
            conv_plan(
                Effect::UpdateMember {
                    before,
                    after,
                    fields: vec![keys::STATUS.to_owned(), keys::REMOVED_AT.to_owned()],
                },
                Op::SetStatus(target, MemberStatus::Removed),
            )
        }
        Intent::SetRole { target, role } => {
            let target = account_at(target);
            let role = ROLES[usize::from(role) % ROLES.len()];
            let before = conv.member(&target)?.clone();
            if before.role == role {
                return None;
            }
            let after = Member {
                role,
                ..before.clone()
            };
            conv_plan(
                Effect::UpdateMember {
                    before,
                    after,
                    fields: vec![keys::ROLE.to_owned()],
                },
                Op::SetRole(target, role),
            )
        }
        Intent::Leave => {
            let before = conv.member(me)?.clone();
            let after = Member {
                status: MemberStatus::Left,
                left_at: Some(now),
                ..before.clone()
            };
            conv_plan(
                Effect::UpdateMember {
                    before,
                    after,
                    fields: vec![keys::STATUS.to_owned(), keys::LEFT_AT.to_owned()],
                },
                Op::SetStatus(me.clone(), MemberStatus::Left),
            )
        }
        Intent::GoOffline | Intent::GoOnline | Intent::Sync => None,
    }
}

/// The client's own check, against its own replica, at its best estimate of server time.
fn client_check(
    conv: &Conversation,
    target: &DocId,
    author: &Author,
    effect: &Effect,
    now: i64,
) -> Decision {
    let ctx = Context {
        conv: Some(conv),
        parent: None,
        now_ms: now,
        last_post_ms: None,
        bucket: match target.target() {
            DocTarget::Msgs(_, bucket) => Some(*bucket),
            _ => None,
        },
        parent_standing: None,
        parent_message: None,
    };
    policy::check(&ctx, author, effect)
}

/// A change written and not yet submitted (offline outbox).
struct Queued {
    doc: DocId,
    change: Change,
    intent: Intent,
}

struct Client {
    dev: Device,
    online: bool,
    queue: Vec<Queued>,
    intents: u64,
    /// Catch-up cursor per document: the last seq pulled (docs/PROTOCOL.md, "Catch-up").
    cursors: HashMap<DocId, u64>,
    /// Typed views of the replicas, with the heads they were read at.
    conv_view: Option<(Vec<ChangeHash>, Conversation)>,
    msgs_view: Option<(Vec<ChangeHash>, Vec<Message>)>,
}

impl Client {
    /// Runs the write on the local replica and returns the change it made, if any:
    /// Automerge 0.12 drops a put of the value a key already holds, so an intent that
    /// changes nothing makes no change.
    fn write(&mut self, id: &DocId, now: i64, op: &Op) -> Option<Change> {
        self.intents += 1;
        let tag = IntentTag::new(format!("i{}", self.intents), "convergence");
        let me = self.dev.account_id();
        let d = self.dev.doc(id);
        let hash = match op {
            Op::Post(m) => write::post_message(d, &tag, m),
            Op::React { message, emoji, on } => {
                write::react(d, &tag, now, message, &me, emoji, *on)
            }
            Op::Edit { message, body } => write::edit_body(d, &tag, now, message, body),
            Op::Delete(message) => write::delete_message(d, &tag, now, message, &me),
            Op::MarkRead(message) => write::mark_read(d, &tag, now, &me, message),
            Op::Pin(message) => write::pin(d, &tag, now, message, &me),
            Op::Unpin(message) => write::unpin(d, &tag, now, message),
            Op::SetTitle(title) => write::set_info(d, &tag, now, keys::TITLE, Some(title)),
            Op::AddMember(m) => write::add_member(d, &tag, now, m),
            Op::SetStatus(who, status) => write::set_member_status(d, &tag, now, who, *status),
            Op::SetRole(who, role) => write::set_role(d, &tag, now, who, *role, None),
        }
        .expect("an allowed intent applies to the replica it was planned on")?;
        Some(d.get_change_by_hash(&hash).expect("the new change"))
    }
}

/// Sorted heads.
fn heads(doc: &Automerge) -> Vec<ChangeHash> {
    let mut h = doc.get_heads();
    h.sort();
    h
}

/// The raw content of a document: every key of every visible map with all its values
/// (conflicts included) and their op ids.
fn dump(doc: &Automerge) -> BTreeMap<String, Vec<String>> {
    fn walk(doc: &Automerge, obj: &ObjId, path: &str, out: &mut BTreeMap<String, Vec<String>>) {
        for key in doc.keys(obj) {
            let here = format!("{path}/{key}");
            let mut values = Vec::new();
            for (value, id) in doc.get_all(obj, key.as_str()).expect("readable") {
                match value {
                    Value::Object(kind) => {
                        values.push(format!("{kind:?}@{id}"));
                        walk(doc, &id, &format!("{here}@{id}"), out);
                    }
                    Value::Scalar(s) => values.push(format!("{s:?}@{id}")),
                }
            }
            out.insert(here, values);
        }
    }
    let mut out = BTreeMap::new();
    walk(doc, &ROOT, "", &mut out);
    out
}

/// Counts, so tests can show the property is not vacuous.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    not_offered: usize,
    /// Allowed, but the write changed nothing.
    no_change: usize,
    denied_by_client: usize,
    /// Property 3, client side: inactive accounts refused by their own check.
    denied_inactive: usize,
    written: usize,
    accepted: usize,
    /// Property 1: up-to-date, immediately submitted, accepted.
    accepted_fresh: usize,
    rejected: usize,
    conflicts: usize,
    missing_deps: usize,
    /// Property 3, hub side: changes of inactive authors rejected as such.
    rejected_inactive: usize,
    removals: usize,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.not_offered += o.not_offered;
        self.no_change += o.no_change;
        self.denied_by_client += o.denied_by_client;
        self.denied_inactive += o.denied_inactive;
        self.written += o.written;
        self.accepted += o.accepted;
        self.accepted_fresh += o.accepted_fresh;
        self.rejected += o.rejected;
        self.conflicts += o.conflicts;
        self.missing_deps += o.missing_deps;
        self.rejected_inactive += o.rejected_inactive;
        self.removals += o.removals;
    }
}

struct World {
    hub: Hub,
    /// Genesis-only documents to clone from (building a genesis is slow in debug builds).
    templates: HashMap<DocId, Automerge>,
    conv: ConvId,
    conv_doc: DocId,
    msgs_doc: DocId,
    clients: Vec<Client>,
    stats: Stats,
}

impl World {
    fn new(cat_role: Role) -> Self {
        let mut hub = Hub::new();
        let conv = conv_id("conv");
        let templates: HashMap<DocId, Automerge> = [conv_doc(&conv), bucket_doc(&conv, NOW)]
            .into_iter()
            .map(|id| {
                let genesis = doc::genesis(&id).unwrap();
                (id, genesis)
            })
            .collect();
        let mut clients: Vec<Client> = DEVICES
            .iter()
            .map(|(account, n)| {
                let mut dev = Device::new(account, *n);
                for (id, genesis) in &templates {
                    let replica = genesis.clone().with_actor(dev.actor.clone());
                    dev.docs.insert(id.clone(), replica);
                }
                Client {
                    dev,
                    online: true,
                    queue: Vec::new(),
                    intents: 0,
                    cursors: HashMap::new(),
                    conv_view: None,
                    msgs_view: None,
                }
            })
            .collect();
        let (owner, rest) = clients.split_first_mut().expect("devices");
        let [ada, bob, _, cat, _] = rest else {
            unreachable!("six devices")
        };
        let created = group(
            &mut hub,
            conv.as_str(),
            &mut owner.dev,
            &mut [
                (&mut ada.dev, Role::Admin),
                (&mut bob.dev, Role::Member),
                (&mut cat.dev, cat_role),
            ],
        );
        assert_eq!(created, conv);
        let conv_doc = conv_doc(&conv);
        let mut world = World {
            hub,
            templates,
            msgs_doc: bucket_doc(&conv, NOW),
            conv,
            conv_doc,
            clients,
            stats: Stats::default(),
        };
        for d in 0..world.clients.len() {
            world.pull(d);
        }
        world
    }

    fn docs(&self) -> [DocId; 2] {
        [self.conv_doc.clone(), self.msgs_doc.clone()]
    }

    /// The hub's accepted document, or the bare genesis if nothing was accepted yet.
    fn hub_doc(&self, id: &DocId) -> Automerge {
        self.hub
            .doc(id)
            .map(|d| d.doc().clone())
            .unwrap_or_else(|| self.templates[id].clone())
    }

    fn hub_heads(&self, id: &DocId) -> Vec<ChangeHash> {
        heads(self.hub.doc(id).map_or(&self.templates[id], |d| d.doc()))
    }

    fn hub_conversation(&self) -> Conversation {
        let accepted = self
            .hub
            .doc(&self.conv_doc)
            .expect("the conversation exists");
        read::read_conversation(accepted.doc(), self.conv.clone())
    }

    /// Catches up on both documents from the device's cursors.
    fn pull(&mut self, d: usize) {
        for id in self.docs() {
            self.pull_doc(d, &id);
        }
    }

    fn pull_doc(&mut self, d: usize, id: &DocId) {
        let client = &mut self.clients[d];
        let cursor = client.cursors.entry(id.clone()).or_insert(0);
        let news = self.hub.changes_after(id, *cursor);
        if let Some((last, _)) = news.last() {
            *cursor = *last;
        }
        let changes: Vec<Change> = news.into_iter().map(|(_, c)| c).collect();
        client.dev.doc(id).apply_changes(changes).unwrap();
    }

    /// Drops everything the device wrote that the hub did not accept: the replica becomes
    /// the hub's accepted state, with the device's actor.
    fn rebuild(&mut self, d: usize, id: &DocId) {
        let client = &mut self.clients[d];
        let replica = self.templates[id]
            .clone()
            .with_actor(client.dev.actor.clone());
        client.dev.docs.insert(id.clone(), replica);
        client.cursors.insert(id.clone(), 0);
        self.pull_doc(d, id);
    }

    fn run(&mut self, steps: &[Step]) -> Result<(), TestCaseError> {
        for (i, s) in steps.iter().enumerate() {
            let d = s.device % self.clients.len();
            match s.intent {
                Intent::GoOffline => self.clients[d].online = false,
                Intent::GoOnline => self.come_online(d, time(i))?,
                Intent::Sync if self.clients[d].online => self.pull(d),
                Intent::Sync => {}
                intent => self.act(i, d, intent)?,
            }
        }
        Ok(())
    }

    /// The typed views of the device's replicas, re-read only when their heads moved.
    fn views(&mut self, d: usize) -> (Conversation, Vec<Message>) {
        let (conv_doc, msgs_doc) = (self.conv_doc.clone(), self.msgs_doc.clone());
        let client = &mut self.clients[d];
        let at = heads(client.dev.doc(&conv_doc));
        if client.conv_view.as_ref().is_none_or(|(h, _)| *h != at) {
            let conv = read::read_conversation(client.dev.doc(&conv_doc), self.conv.clone());
            client.conv_view = Some((at, conv));
        }
        let at = heads(client.dev.doc(&msgs_doc));
        if client.msgs_view.as_ref().is_none_or(|(h, _)| *h != at) {
            client.msgs_view = Some((at, read::read_messages(client.dev.doc(&msgs_doc))));
        }
        match (&client.conv_view, &client.msgs_view) {
            (Some((_, conv)), Some((_, messages))) => (conv.clone(), messages.clone()),
            _ => unreachable!("both views were just read"),
        }
    }

    fn act(&mut self, i: usize, d: usize, intent: Intent) -> Result<(), TestCaseError> {
        let now = time(i);
        let (conv_doc, msgs_doc) = (self.conv_doc.clone(), self.msgs_doc.clone());
        let author = self.clients[d].dev.author.clone();
        let (conv, messages) = self.views(d);
        let Some(plan) = plan(&conv, &messages, &author, intent, i, d, now) else {
            self.stats.not_offered += 1;
            return Ok(());
        };
        let target = if plan.in_msgs { msgs_doc } else { conv_doc };
        let decision = client_check(&conv, &target, &author, &plan.effect, now);

        // Property 3, client side: an account its own replica shows inactive writes nothing.
        let entry = conv.member(&author.account);
        if !entry.is_some_and(Member::is_active) {
            let Err(denial) = &decision else {
                return Err(TestCaseError::fail(format!(
                    "step {i}: device {d} is inactive on its replica, yet its check allowed {intent:?}"
                )));
            };
            if intent.membership_first() {
                let expected = if entry.is_none() {
                    DenyCode::NotMember
                } else {
                    DenyCode::MemberInactive
                };
                prop_assert_eq!(denial.code, expected, "step {}: {:?}", i, intent);
            }
            self.stats.denied_inactive += 1;
        }
        if decision.is_err() {
            self.stats.denied_by_client += 1;
            return Ok(());
        }

        let client = &mut self.clients[d];
        let online = client.online;
        let local_conv = heads(client.dev.doc(&self.conv_doc));
        let local_target = heads(client.dev.doc(&target));
        let fresh = online
            && local_conv == self.hub_heads(&self.conv_doc)
            && local_target == self.hub_heads(&target);
        let Some(change) = self.clients[d].write(&target, now, &plan.op) else {
            self.stats.no_change += 1;
            return Ok(());
        };
        self.stats.written += 1;
        let queued = Queued {
            doc: target.clone(),
            change,
            intent,
        };
        if online {
            if !self.submit(d, queued, fresh, false, now)? {
                // Rejected: drop it, rebuild from the accepted state and catch up.
                self.rebuild(d, &target);
                self.pull(d);
            }
        } else {
            self.clients[d].queue.push(queued);
        }
        Ok(())
    }

    /// Submits the outbox in order, then catches up (rebuilding documents with rejections).
    fn come_online(&mut self, d: usize, now: i64) -> Result<(), TestCaseError> {
        if self.clients[d].online {
            return Ok(());
        }
        let queue = std::mem::take(&mut self.clients[d].queue);
        let mut poisoned: HashSet<DocId> = HashSet::new();
        for q in queue {
            let id = q.doc.clone();
            let after_rejection = poisoned.contains(&id);
            if !self.submit(d, q, false, after_rejection, now)? {
                poisoned.insert(id);
            }
        }
        for id in self.docs() {
            if poisoned.contains(&id) {
                self.rebuild(d, &id);
            } else {
                self.pull_doc(d, &id);
            }
        }
        self.clients[d].online = true;
        Ok(())
    }

    /// Submits one change and checks the verdict against properties 1 and 3.
    /// Returns whether it was accepted.
    fn submit(
        &mut self,
        d: usize,
        q: Queued,
        fresh: bool,
        after_rejection: bool,
        now: i64,
    ) -> Result<bool, TestCaseError> {
        let author = self.clients[d].dev.author.clone();
        let at_hub = self
            .hub
            .conversation(&self.conv)
            .and_then(|c| c.member(&author.account))
            .cloned();
        let active_at_hub = at_hub.as_ref().is_some_and(Member::is_active);
        let intent = q.intent;
        match self.hub.submit(&q.doc, &author, q.change, now) {
            Ok(_) => {
                if q.doc == self.conv_doc {
                    prop_assert_eq!(
                        self.hub.conversation(&self.conv).cloned(),
                        Some(self.hub_conversation()),
                        "the hub's cached conversation drifted from its document after {:?}",
                        intent
                    );
                }
                prop_assert!(
                    !after_rejection,
                    "device {} {:?}: accepted although it depends on a rejected change",
                    d,
                    intent
                );
                prop_assert!(
                    active_at_hub,
                    "device {} {:?}: accepted from an account the hub holds inactive ({:?})",
                    d,
                    intent,
                    at_hub
                );
                self.stats.accepted += 1;
                if fresh {
                    self.stats.accepted_fresh += 1;
                }
                if matches!(intent, Intent::Remove { .. }) {
                    self.stats.removals += 1;
                }
                Ok(true)
            }
            Err(rejection) => {
                prop_assert!(
                    !fresh,
                    "property 1: device {} was up to date and its own check allowed {:?}, yet the hub said {}",
                    d,
                    intent,
                    rejection
                );
                self.stats.rejected += 1;
                if after_rejection {
                    prop_assert_eq!(
                        rejection.code,
                        RejectCode::MissingDependency,
                        "device {} {:?} queued behind a rejected change: {}",
                        d,
                        intent,
                        rejection
                    );
                    self.stats.missing_deps += 1;
                    return Ok(false);
                }
                prop_assert!(
                    matches!(
                        rejection.code,
                        RejectCode::Policy(_) | RejectCode::ConflictingWrite
                    ),
                    "device {} {:?}: a well-behaved client's stale change rejected with {}",
                    d,
                    intent,
                    rejection
                );
                if rejection.code == RejectCode::ConflictingWrite {
                    self.stats.conflicts += 1;
                } else if !active_at_hub && intent.membership_first() {
                    let expected = if at_hub.is_none() {
                        DenyCode::NotMember
                    } else {
                        DenyCode::MemberInactive
                    };
                    prop_assert_eq!(
                        rejection.code,
                        RejectCode::Policy(expected),
                        "device {} {:?}: {}",
                        d,
                        intent,
                        rejection
                    );
                    self.stats.rejected_inactive += 1;
                }
                Ok(false)
            }
        }
    }

    /// Everyone comes online and catches up; then property 2.
    fn finish(&mut self, end: usize, seed: u64) -> Result<(), TestCaseError> {
        for d in 0..self.clients.len() {
            self.come_online(d, time(end))?;
        }
        for d in 0..self.clients.len() {
            self.pull(d);
        }
        for id in self.docs() {
            let hub = self.hub_doc(&id);
            let reference = heads(&hub);
            // Same heads: the same set of changes, whose content the replays below show
            // not to depend on the order they arrived in.
            for (d, client) in self.clients.iter_mut().enumerate() {
                let replica = client.dev.doc(&id);
                prop_assert_eq!(heads(replica), reference.clone(), "device {} on {}", d, id);
            }
            check_replays(&self.hub, &id, &hub, seed)?;
        }
        Ok(())
    }
}

// ---------- property 2: replays of the accepted log ----------

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

enum Order {
    /// The hub's seq order; must already be causal (catch-up relies on it).
    Seq,
    Shuffled(SplitMix),
    /// Always the newest ready change first.
    NewestFirst,
}

/// `log` in a causal order chosen by `order`.
fn causal_order(
    log: &[Change],
    genesis: ChangeHash,
    mut order: Order,
) -> Result<Vec<Change>, TestCaseError> {
    let mut have: HashSet<ChangeHash> = HashSet::from([genesis]);
    let mut pending: Vec<Change> = log.to_vec();
    let mut out = Vec::with_capacity(log.len());
    while !pending.is_empty() {
        let ready: Vec<usize> = pending
            .iter()
            .enumerate()
            .filter(|(_, c)| c.deps().iter().all(|dep| have.contains(dep)))
            .map(|(i, _)| i)
            .collect();
        prop_assert!(
            !ready.is_empty(),
            "an accepted change depends on a change that is not in the accepted log"
        );
        let pick = match &mut order {
            Order::Seq => {
                prop_assert_eq!(
                    ready[0],
                    0,
                    "the hub's seq order puts a change before one of its dependencies"
                );
                0
            }
            Order::Shuffled(rng) => ready[(rng.next() % ready.len() as u64) as usize],
            Order::NewestFirst => ready[ready.len() - 1],
        };
        let change = pending.remove(pick);
        have.insert(change.hash());
        out.push(change);
    }
    Ok(out)
}

fn check_replays(
    hub: &Hub,
    id: &DocId,
    reference: &Automerge,
    seed: u64,
) -> Result<(), TestCaseError> {
    let log: Vec<Change> = hub
        .changes_after(id, 0)
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    let template = doc::genesis(id).unwrap();
    let genesis = doc::genesis_hash(id).unwrap();
    let orders = [
        ("seq order", Order::Seq),
        ("seeded shuffle", Order::Shuffled(SplitMix(seed))),
        ("newest first", Order::NewestFirst),
    ];
    let mut replicas = Vec::new();
    for (name, order) in orders {
        let mut replica = template.clone();
        for change in causal_order(&log, genesis, order)? {
            replica.apply_changes([change]).unwrap();
        }
        replicas.push((name, replica));
    }
    // All at once, newest first: Automerge holds changes back until their dependencies come.
    let mut batch = template.clone();
    batch.apply_changes(log.iter().rev().cloned()).unwrap();
    replicas.push(("one reversed batch", batch));

    let typed = |doc: &Automerge| match id.target() {
        DocTarget::Conv(conv) => Typed::Conv(Box::new(read::read_conversation(doc, conv.clone()))),
        _ => Typed::Msgs(read::read_messages(doc)),
    };
    let (reference_dump, reference_typed) = (dump(reference), typed(reference));
    for (name, replica) in &replicas {
        prop_assert_eq!(heads(replica), heads(reference), "{} of {}", name, id);
        prop_assert_eq!(dump(replica), reference_dump.clone(), "{} of {}", name, id);
        prop_assert_eq!(
            typed(replica),
            reference_typed.clone(),
            "{} of {}",
            name,
            id
        );
    }
    Ok(())
}

/// A document's typed view.
#[derive(Debug, Clone, PartialEq)]
enum Typed {
    Conv(Box<Conversation>),
    Msgs(Vec<Message>),
}

fn run(script: &Script) -> Result<Stats, TestCaseError> {
    let mut world = World::new(script.cat_role);
    world.run(&script.steps)?;
    world.finish(script.steps.len(), script.seed)?;
    Ok(world.stats)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn well_behaved_clients_are_accepted_and_replicas_converge(script in script()) {
        run(&script)?;
    }
}

/// The generator really produces the situations the properties talk about: fresh accepted
/// changes, stale rejections, removals, inactive members refused on both sides.
#[test]
fn generated_scripts_exercise_races_and_removals() {
    let mut runner = TestRunner::deterministic();
    let strategy = script();
    let mut total = Stats::default();
    for _ in 0..32 {
        let script = strategy.new_tree(&mut runner).unwrap().current();
        total += run(&script).unwrap_or_else(|e| panic!("{e}\n{script:#?}"));
    }
    assert!(total.accepted_fresh > 20, "{total:?}");
    assert!(
        total.accepted > total.accepted_fresh,
        "stale changes accepted too: {total:?}"
    );
    assert!(total.rejected > 0, "{total:?}");
    assert!(total.removals > 0, "{total:?}");
    assert!(total.denied_inactive > 0, "{total:?}");
    assert!(total.rejected_inactive > 0, "{total:?}");
    assert!(total.denied_by_client > total.denied_inactive, "{total:?}");
}

// ---------- hand-written regressions ----------

fn step(device: usize, intent: Intent) -> Step {
    Step { device, intent }
}

/// A member removed while offline, through the property's machinery: Bob writes offline, is
/// removed meanwhile, and his changes are refused while everybody else's go through.
#[test]
fn scripted_removal_of_an_offline_member() {
    let bob = 2; // index of "bob" in ACCOUNTS
    let steps = vec![
        step(CAT, Intent::Post),
        step(BOB1, Intent::Sync),
        step(BOB1, Intent::GoOffline),
        step(BOB1, Intent::React { pick: 0, emoji: 0 }),
        step(BOB1, Intent::Post),
        step(ADA, Intent::Remove { target: bob }),
        step(CAT, Intent::Post),
        step(OWEN, Intent::Sync),
        step(OWEN, Intent::React { pick: 0, emoji: 1 }),
        // Bob's second device never synced the removal: its post races and loses.
        step(BOB2, Intent::Post),
        step(BOB1, Intent::GoOnline),
        // Now Bob knows: his own check refuses, nothing is written.
        step(BOB1, Intent::Post),
        step(BOB2, Intent::Post),
        step(CAT, Intent::Sync),
        step(CAT, Intent::React { pick: 0, emoji: 0 }),
    ];
    let mut world = World::new(Role::Member);
    world.run(&steps).unwrap();
    let stats = world.stats;
    // Bob/1's reaction (member_inactive), Bob/1's post behind it (missing_dependency),
    // Bob/2's racing post (member_inactive).
    assert_eq!(stats.rejected, 3, "{stats:?}");
    assert_eq!(stats.rejected_inactive, 2, "{stats:?}");
    assert_eq!(stats.missing_deps, 1, "{stats:?}");
    assert_eq!(stats.removals, 1, "{stats:?}");
    // Two posts after Bob learnt of the removal (one per device: Bob/2 rebuilt on rejection).
    assert_eq!(stats.denied_inactive, 2, "{stats:?}");
    // Cat's two posts, the removal, Owen's and Cat's reactions.
    assert_eq!(stats.accepted, 5, "{stats:?}");
    let messages = read::read_messages(&world.hub_doc(&world.msgs_doc));
    let authors: Vec<&str> = messages.iter().map(|m| m.author.as_str()).collect();
    assert_eq!(authors, ["cat", "cat"]);
    assert!(messages
        .iter()
        .flat_map(|m| m.reactions.values())
        .all(|by| !by.contains_key(&acc("bob"))));
    assert_eq!(
        world.hub_conversation().members[&acc("bob")].status,
        MemberStatus::Removed
    );
    world.finish(steps.len(), 7).unwrap();
}

/// The same story written out by hand with the support helpers, reason codes and all.
#[test]
fn stale_offline_posts_are_rejected_after_removal_while_others_go_through() {
    let mut hub = Hub::new();
    let mut owen = Device::new("owen", 1);
    let mut ada = Device::new("ada", 1);
    let mut bob = Device::new("bob", 1);
    let mut cat = Device::new("cat", 1);
    let c = group(
        &mut hub,
        "g",
        &mut owen,
        &mut [
            (&mut ada, Role::Admin),
            (&mut bob, Role::Member),
            (&mut cat, Role::Member),
        ],
    );
    let (cdoc, mdoc) = (conv_doc(&c), bucket_doc(&c, NOW));
    post(&mut hub, &mut cat, &c, "m1", "hi all").expect("cat posts");
    bob.pull(&hub, &mdoc);

    // Bob goes offline. His replica says he is an active member, so his own check allows
    // a post and a read marker; he writes both.
    let bob_conv = read::read_conversation(bob.doc(&cdoc), c.clone());
    let offline_post = NewMessage::text(msg_id("b1"), acc("bob"), "from the train", NOW + 10);
    client_check(
        &bob_conv,
        &mdoc,
        &bob.author,
        &Effect::PostMessage(Box::new(offline_post.clone())),
        NOW,
    )
    .expect("bob's own check allows posting");
    let post_change = bob
        .write(&mdoc, |d, t| write::post_message(d, t, &offline_post))
        .unwrap();
    let (_, second_post) = text_change(&mut bob, &c, "b2", "still on the train", NOW + 20);
    let read_change = bob
        .write(&cdoc, |d, t| {
            write::mark_read(d, t, NOW + 30, &acc("bob"), &msg_id("m1"))
        })
        .unwrap();

    // Meanwhile Ada removes Bob, and the others carry on.
    let removal = ada
        .write(&cdoc, |d, t| {
            write::set_member_status(d, t, NOW + 40, &acc("bob"), MemberStatus::Removed)
        })
        .unwrap();
    submit(&mut hub, &ada, &cdoc, removal).expect("an admin removes a member");
    post(&mut hub, &mut cat, &c, "m2", "where is bob?").expect("cat still posts");
    owen.pull(&hub, &mdoc);
    let reaction = owen
        .write(&mdoc, |d, t| {
            write::react(d, t, NOW + 50, &msg_id("m1"), &acc("owen"), "👍", true)
        })
        .unwrap();
    submit(&mut hub, &owen, &mdoc, reaction).expect("owen reacts");

    // Bob reconnects and submits his outbox in order.
    let err = submit(&mut hub, &bob, &mdoc, post_change).expect_err("removed");
    assert_eq!(err.code, RejectCode::Policy(DenyCode::MemberInactive));
    let err = submit(&mut hub, &bob, &mdoc, second_post).expect_err("depends on b1");
    assert_eq!(err.code, RejectCode::MissingDependency);
    let err = submit(&mut hub, &bob, &cdoc, read_change).expect_err("removed");
    assert_eq!(err.code.as_str(), "member_inactive");

    // Rebuilt from the accepted state, Bob's own check refuses: nothing more is written.
    for id in [&cdoc, &mdoc] {
        let mut rebuilt = doc::genesis(id).unwrap().with_actor(bob.actor.clone());
        let accepted: Vec<Change> = hub
            .changes_after(id, 0)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        rebuilt.apply_changes(accepted).unwrap();
        bob.docs.insert(id.clone(), rebuilt);
    }
    let bob_conv = read::read_conversation(bob.doc(&cdoc), c.clone());
    let retry = NewMessage::text(msg_id("b3"), acc("bob"), "hello?", NOW + 60);
    let denial = client_check(
        &bob_conv,
        &mdoc,
        &bob.author,
        &Effect::PostMessage(Box::new(retry)),
        NOW + 60,
    )
    .expect_err("bob knows he was removed");
    assert_eq!(denial.code, DenyCode::MemberInactive);

    // The accepted state: Cat's two messages and Owen's reaction, nothing of Bob's.
    let messages = read::read_messages(hub.doc(&mdoc).unwrap().doc());
    let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2"]);
    assert_eq!(
        messages[0].reactions["👍"].keys().collect::<Vec<_>>(),
        [&acc("owen")]
    );
    let served = hub.conversation(&c).unwrap();
    assert!(!served.reads.contains_key(&acc("bob")));
    assert_eq!(served.members[&acc("bob")].status, MemberStatus::Removed);

    // Replicas fed the accepted logs in other causal orders converge on the same state.
    for id in [&cdoc, &mdoc] {
        let reference = hub.doc(id).unwrap().doc().clone();
        check_replays(&hub, id, &reference, 42).unwrap();
    }
    // Bob, rebuilt, equals the hub.
    for id in [&cdoc, &mdoc] {
        assert_eq!(heads(bob.doc(id)), heads(hub.doc(id).unwrap().doc()));
    }
}
