//! The policy of docs/POLICY.md, rule by rule, against `policy::check` directly.
//!
//! Every test builds `Conversation` values by hand (no Automerge) and runs tables of cases:
//! each case says whether the policy allows it or which `DenyCode` it denies it with. Every
//! rule has at least one allowed and one denied case. `every_deny_code_has_a_denial` proves
//! that each `DenyCode` is reachable (`message_missing` comes from validation, see
//! `message_missing_comes_from_validation`, the only test here that uses the hub).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use confab_core::doc::schema::keys::{
    BLOCKED, COLOR, INVITED_BY, JOINED_AT, LEFT_AT, NICKNAME, REMOVED_AT, ROLE, STATUS,
};
use confab_core::doc::write;
use confab_core::ids::ResourceId;
use confab_core::limits::{GROUP_MAX_MEMBERS, MAX_CLOCK_AHEAD_MS, PINS_MAX, SUBROOM_DEPTH_MAX};
use confab_core::model::conversation::*;
use confab_core::model::message::{Message, MessageKind, NewMessage};
use confab_core::model::proposal::{
    CreatedByRole, MeetingType, ProposalPayload, ProposalStatus, ProposalType,
};
use confab_core::policy::{
    check, Author, Context, Decision, DenyCode, Effect, EntryWrite, ParentMessage, Standing,
    Transfer,
};
use confab_core::validate::RejectCode;
use confab_testkit::hub::NOW;
use confab_testkit::ids::{acc, bucket_doc, conv_id, msg_id};
use confab_testkit::Device;

const DAY: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// One account per role; the owner created the conversation and invited everyone else.
const CAST: &[(&str, Role)] = &[
    ("owner", Role::Owner),
    ("admin", Role::Admin),
    ("mod", Role::Moderator),
    ("member", Role::Member),
    ("guest", Role::Guest),
    ("readonly", Role::Readonly),
    ("subscriber", Role::Subscriber),
    // A low-ranked target for member management by every role above it.
    ("target", Role::Readonly),
];

fn user(name: &str) -> Author {
    Author::user(acc(name))
}

fn service(name: &str) -> Author {
    Author::service(acc(name))
}

fn invitee(name: &str, role: Role, inviter: &str) -> Member {
    let mut m = Member::new(acc(name), role);
    m.joined_at = Some(NOW);
    m.invited_by = Some(acc(inviter));
    m
}

fn meta(kind: ConvKind) -> Meta {
    Meta {
        kind,
        created_by: Some(acc("owner")),
        created_at: NOW - DAY,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        resource: None,
        encrypted: false,
    }
}

/// A created conversation of `kind` with the given members (the first one is not invited).
fn conv_with(id: &str, kind: ConvKind, members: &[(&str, Role)]) -> Conversation {
    let mut c = Conversation::uncreated(conv_id(id));
    c.meta = Some(meta(kind));
    c.settings = Settings::defaults_for(kind);
    for (i, (name, role)) in members.iter().enumerate() {
        let m = if i == 0 {
            Member::new(acc(name), *role)
        } else {
            invitee(name, *role, members[0].0)
        };
        c.members.insert(acc(name), m);
    }
    c
}

/// A created conversation of `kind` with the whole cast.
fn conv(kind: ConvKind) -> Conversation {
    conv_with("c1", kind, CAST)
}

fn group() -> Conversation {
    conv(ConvKind::Group)
}

/// A direct conversation: exactly two members, both `member` (docs/DECISIONS.md,
/// "Both members of a direct conversation are members").
fn direct() -> Conversation {
    conv_with(
        "d1",
        ConvKind::Direct,
        &[("member", Role::Member), ("peer", Role::Member)],
    )
}

/// A support thread of `client` about a resource owned by `owner`, with `staff` helping.
fn support_conv() -> Conversation {
    let mut c = conv_with(
        "s1",
        ConvKind::Support,
        &[
            ("owner", Role::Owner),
            ("client", Role::Member),
            ("staff", Role::Admin),
        ],
    );
    c.meta.as_mut().unwrap().resource = Some(ResourceLink {
        resource: ResourceId::new("flat-7").unwrap(),
        client: acc("client"),
        owner: acc("owner"),
    });
    c
}

/// `c` with one member changed.
fn with_member(mut c: Conversation, name: &str, f: impl FnOnce(&mut Member)) -> Conversation {
    f(c.members.get_mut(&acc(name)).expect("member exists"));
    c
}

fn with_status(c: Conversation, name: &str, status: MemberStatus) -> Conversation {
    with_member(c, name, |m| m.status = status)
}

fn with_override(c: Conversation, name: &str, p: Permission, on: bool) -> Conversation {
    with_member(c, name, |m| {
        m.overrides.insert(p, on);
    })
}

fn with_settings(mut c: Conversation, f: impl FnOnce(&mut Settings)) -> Conversation {
    f(&mut c.settings);
    c
}

/// Server time NOW, writing to the bucket of NOW, no previous post.
fn ctx(c: &Conversation) -> Context<'_> {
    Context {
        conv: Some(c),
        parent: None,
        now_ms: NOW,
        last_post_ms: None,
        bucket: Some(c.period_of(NOW).into()),
        parent_standing: None,
        parent_message: None,
    }
}

fn new_msg(kind: MessageKind, author: &str, at: i64) -> NewMessage {
    let mut m = NewMessage::text(msg_id("new"), acc(author), "hi", at);
    m.kind = kind;
    m
}

fn text(author: &str) -> Effect {
    Effect::PostMessage(Box::new(new_msg(MessageKind::Text, author, NOW)))
}

fn post_kind(kind: MessageKind, author: &str) -> Effect {
    Effect::PostMessage(Box::new(new_msg(kind, author, NOW)))
}

fn post_at(author: &str, at: i64) -> Effect {
    Effect::PostMessage(Box::new(new_msg(MessageKind::Text, author, at)))
}

/// A message already in the bucket.
fn stored(author: &str) -> Message {
    Message {
        id: msg_id("m1"),
        author: acc(author),
        kind: MessageKind::Text,
        body: "hello".into(),
        payload: None,
        caption: None,
        attachments: None,
        mentions: None,
        reply_to: None,
        forwarded_from: None,
        created_at: NOW - 1000,
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
        scheduled_at: None,
        status: None,
        reactions: Default::default(),
        stamp: Default::default(),
        sealed: None,
        blobs: None,
    }
}

fn tombstone(author: &str) -> Message {
    let mut m = stored(author);
    m.body = String::new();
    m.deleted_at = Some(NOW - 500);
    m
}

/// A proposal by `author`, pending unless `status` says otherwise.
fn proposal(author: &str, expires_at: Option<i64>, status: Option<ProposalStatus>) -> Message {
    let payload = ProposalPayload {
        proposal_type: ProposalType::Visit,
        time_start: NOW + 5 * DAY,
        time_end: NOW + 5 * DAY + 1_800_000,
        timezone: "UTC".into(),
        meeting_type: Some(MeetingType::OnSite),
        location: Some("Main street 1".into()),
        from_resource_address: Some(true),
        status: ProposalStatus::Pending,
        expires_at,
        created_by_role: CreatedByRole::Owner,
    };
    let mut m = stored(author);
    m.kind = MessageKind::Proposal;
    m.body = "Visit on Wednesday?".into();
    m.payload = Some(payload.to_json());
    m.status = status;
    m
}

fn edit(m: Message) -> Effect {
    Effect::EditBody(Box::new(m))
}

fn delete(m: Message) -> Effect {
    Effect::DeleteMessage(Box::new(m))
}

fn react(m: Message, account: &str) -> Effect {
    Effect::SetReaction {
        message: Box::new(m),
        account: acc(account),
    }
}

fn answer(p: Message, to: ProposalStatus) -> Effect {
    Effect::SetProposalStatus {
        proposal: Box::new(p),
        to,
    }
}

fn add(before: Option<Member>, after: Member) -> Effect {
    Effect::AddMember { before, after }
}

/// An update of `name`'s entry in `c`: `f` edits a copy, `fields` are the keys written.
fn update(c: &Conversation, name: &str, fields: &[&str], f: impl FnOnce(&mut Member)) -> Effect {
    let before = c.member(&acc(name)).expect("member exists").clone();
    let mut after = before.clone();
    f(&mut after);
    Effect::UpdateMember {
        before,
        after,
        fields: fields.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn remove(c: &Conversation, name: &str) -> Effect {
    update(c, name, &[STATUS, REMOVED_AT], |m| {
        m.status = MemberStatus::Removed;
        m.removed_at = Some(NOW);
    })
}

fn set_role(c: &Conversation, name: &str, role: Role) -> Effect {
    update(c, name, &[ROLE], |m| m.role = role)
}

/// The transfer a client writes: `to` becomes the owner (its overrides dropped), `from`
/// an admin; `from`'s entry as `c` has it (a stranger's entry is new).
fn transfer(c: &Conversation, from: &str, to: &str) -> Effect {
    transfer_with(c, from, to, |_, _| {})
}

/// `transfer`, with `f` editing the (from, to) writes afterwards.
fn transfer_with(
    c: &Conversation,
    from: &str,
    to: &str,
    f: impl FnOnce(&mut EntryWrite, &mut EntryWrite),
) -> Effect {
    let from_before = c.member(&acc(from)).expect("from is a member").clone();
    let mut from_after = from_before.clone();
    from_after.role = Role::Admin;
    let to_before = c.member(&acc(to)).cloned();
    let mut to_after = to_before
        .clone()
        .unwrap_or_else(|| Member::new(acc(to), Role::Owner));
    to_after.role = Role::Owner;
    let mut to_fields = vec![ROLE.to_owned()];
    to_fields.extend(to_after.overrides.keys().map(|p| p.as_str().to_owned()));
    to_after.overrides.clear();
    let mut from = EntryWrite {
        before: Some(from_before),
        after: from_after,
        fields: vec![ROLE.to_owned()],
    };
    let mut to = EntryWrite {
        before: to_before,
        after: to_after,
        fields: to_fields,
    };
    f(&mut from, &mut to);
    Effect::TransferOwnership(Box::new(Transfer { from, to }))
}

fn pin(by: &str) -> Effect {
    Effect::Pin {
        message: msg_id("m1"),
        by: acc(by),
    }
}

fn lifecycle(to: Lifecycle, by: &str) -> Effect {
    Effect::SetLifecycle { to, by: acc(by) }
}

fn in_state(mut c: Conversation, state: Lifecycle) -> Conversation {
    c.lifecycle.state = state;
    c
}

// ---------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------

const ALLOW: Option<DenyCode> = None;

fn deny(code: DenyCode) -> Option<DenyCode> {
    Some(code)
}

/// One row of a table: a label, what the policy decided, and what it should decide.
type Case = (String, Decision, Option<DenyCode>);

fn case(label: impl Into<String>, got: Decision, want: Option<DenyCode>) -> Case {
    (label.into(), got, want)
}

/// Checks every row and reports all mismatches at once. Every denial carries a reason.
#[track_caller]
fn expect_all(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for (label, got, want) in &cases {
        let code = got.as_ref().err().map(|d| d.code);
        if code != *want {
            let want = want.map_or("allow", DenyCode::as_str);
            let got = match got {
                Ok(()) => "allow".to_owned(),
                Err(d) => d.to_string(),
            };
            failures.push(format!("  {label}: want {want}, got {got}"));
        }
        if let Err(d) = got {
            assert!(
                !d.reason.trim().is_empty(),
                "{label}: denial without reason"
            );
            assert!(
                d.to_string().starts_with(d.code.as_str()),
                "{label}: {d} does not start with its code"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Runs `effect` by `author` on `c` at NOW.
fn run(c: &Conversation, author: &str, effect: &Effect) -> Decision {
    check(&ctx(c), &user(author), effect)
}

// ---------------------------------------------------------------------------------------
// Deny codes
// ---------------------------------------------------------------------------------------

#[test]
fn deny_codes_are_unique_snake_case_and_described() {
    let mut seen = BTreeSet::new();
    assert!(!DenyCode::ALL.is_empty());
    for code in DenyCode::ALL {
        let s = code.as_str();
        assert!(!s.is_empty(), "{code:?} has an empty code");
        assert!(
            s.split('_')
                .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())),
            "{s} is not snake_case"
        );
        assert!(seen.insert(s), "{s} is used twice");
        assert!(!code.describe().trim().is_empty(), "{s} has no description");
    }
    assert_eq!(seen.len(), DenyCode::ALL.len());
}

/// One minimal denial per code, so a code nobody can produce shows up here.
#[test]
fn every_deny_code_has_a_denial() {
    let g = group();
    let uncreated = Conversation::uncreated(conv_id("c1"));
    let ch = conv(ConvKind::Channel);
    let sys = conv(ConvKind::System);
    let sup = support_conv();
    let full = full_group(GROUP_MAX_MEMBERS);
    let parent = group();
    let closed = in_state(group(), Lifecycle::Closed);
    let admins_only = with_settings(group(), |s| s.send_policy = SendPolicy::AdminsOnly);
    let no_reactions = with_settings(group(), |s| s.allow_reactions = false);
    let no_attachments = with_settings(group(), |s| s.allow_attachments = false);
    let no_stickers = with_settings(group(), |s| s.allow_stickers = false);
    let slow = with_settings(group(), |s| s.slow_mode_seconds = 60);
    let retained = with_settings(group(), |s| s.retention_days = Some(30));
    let open = with_settings(group(), |s| s.join_policy = JoinPolicy::Open);
    let removed = with_status(open.clone(), "member", MemberStatus::Removed);
    let pinned = pinned_group(PINS_MAX);
    let shallow = with_settings(parent.clone(), |s| s.max_subroom_depth = 0);
    let no_subrooms = with_settings(parent.clone(), |s| {
        s.subroom_policy = EditPolicy::AdminsOnly
    });

    let mut slow_ctx = ctx(&slow);
    slow_ctx.last_post_ms = Some(NOW - 1000);
    let mut wrong_bucket = ctx(&g);
    wrong_bucket.bucket = Some((g.period_of(NOW) + 1).into());
    let mut spec = new_group("g2", "member");
    spec.meta.as_mut().unwrap().created_by = Some(acc("owner"));

    let mut encrypted_channel = new_group("g3", "owner");
    if let Some(meta) = encrypted_channel.meta.as_mut() {
        meta.kind = ConvKind::Channel;
        meta.encrypted = true;
        meta.created_by = Some(acc("owner"));
    }

    let mut encrypted = group();
    if let Some(meta) = encrypted.meta.as_mut() {
        meta.encrypted = true;
    }

    let denials: Vec<(DenyCode, Decision)> = vec![
        (
            DenyCode::PlaintextInEncrypted,
            run(&encrypted, "owner", &text("owner")),
        ),
        (
            DenyCode::EncryptionNotAllowed,
            check(&no_conv(), &user("owner"), &create(encrypted_channel)),
        ),
        (
            DenyCode::NotCreated,
            run(&uncreated, "owner", &text("owner")),
        ),
        (
            DenyCode::AlreadyCreated,
            run(&g, "owner", &create(new_group("c1", "owner"))),
        ),
        (
            DenyCode::InvalidCreation,
            check(&no_conv(), &user("member"), &create(spec)),
        ),
        (DenyCode::NotMember, run(&g, "stranger", &text("stranger"))),
        (
            DenyCode::MemberInactive,
            run(
                &removed,
                "member",
                &add(
                    removed.member(&acc("member")).cloned(),
                    invitee("member", Role::Member, "member"),
                ),
            ),
        ),
        (
            DenyCode::NoPermission,
            run(&g, "readonly", &text("readonly")),
        ),
        (
            DenyCode::RoleTooHigh,
            run(&g, "admin", &set_role(&g, "member", Role::Admin)),
        ),
        (
            DenyCode::OwnerProtected,
            run(&g, "admin", &set_role(&g, "owner", Role::Member)),
        ),
        (DenyCode::AuthorMismatch, run(&g, "member", &text("admin"))),
        (
            DenyCode::NotAuthor,
            run(&g, "admin", &edit(stored("member"))),
        ),
        (
            DenyCode::NotOwnKey,
            run(&g, "member", &react(stored("admin"), "admin")),
        ),
        (
            DenyCode::DirectFixedMembers,
            run(
                &direct(),
                "member",
                &add(None, invitee("third", Role::Guest, "member")),
            ),
        ),
        (
            DenyCode::GroupFull,
            run(
                &full,
                "owner",
                &add(None, invitee("late", Role::Member, "owner")),
            ),
        ),
        (
            DenyCode::ChannelAdminsOnly,
            run(&ch, "member", &text("member")),
        ),
        (
            DenyCode::AdminsOnly,
            run(&admins_only, "member", &text("member")),
        ),
        (
            DenyCode::ReactionsDisabled,
            run(&no_reactions, "member", &react(stored("admin"), "member")),
        ),
        (
            DenyCode::AttachmentsDisabled,
            run(
                &no_attachments,
                "member",
                &post_kind(MessageKind::Image, "member"),
            ),
        ),
        (
            DenyCode::StickersDisabled,
            run(
                &no_stickers,
                "member",
                &post_kind(MessageKind::Sticker, "member"),
            ),
        ),
        (
            DenyCode::ThreadTooDeep,
            check(
                &under(&shallow),
                &user("member"),
                &create(new_thread(&shallow, "member", 1)),
            ),
        ),
        (
            DenyCode::SubroomForbidden,
            check(
                &under(&no_subrooms),
                &user("member"),
                &create(new_thread(&no_subrooms, "member", 1)),
            ),
        ),
        (
            DenyCode::NotParentMember,
            check(
                &Context {
                    parent_standing: Some(Standing::Out(Some(MemberStatus::Removed))),
                    ..ctx(&thread_of(&parent, 1))
                },
                &user("member"),
                &text("member"),
            ),
        ),
        (
            DenyCode::ParentMessageMissing,
            check(
                &Context {
                    parent_message: Some(ParentMessage::Missing),
                    ..under(&parent)
                },
                &user("member"),
                &create(new_thread(&parent, "member", 1)),
            ),
        ),
        (DenyCode::ServiceOnly, run(&sys, "member", &text("member"))),
        (
            DenyCode::NotCounterparty,
            run(&sup, "client", &post_kind(MessageKind::Proposal, "client")),
        ),
        (
            DenyCode::ProposalExpired,
            run(
                &sup,
                "client",
                &answer(proposal("owner", Some(NOW), None), ProposalStatus::Accepted),
            ),
        ),
        (
            DenyCode::ProposalTransition,
            run(
                &sup,
                "client",
                &answer(
                    proposal("owner", None, Some(ProposalStatus::Rejected)),
                    ProposalStatus::Accepted,
                ),
            ),
        ),
        (
            DenyCode::ConversationClosed,
            run(&closed, "member", &text("member")),
        ),
        (
            DenyCode::BucketMismatch,
            check(&wrong_bucket, &user("member"), &text("member")),
        ),
        (
            DenyCode::ClockAhead,
            run(
                &g,
                "member",
                &post_at("member", NOW + MAX_CLOCK_AHEAD_MS + 1),
            ),
        ),
        (
            DenyCode::SlowMode,
            check(&slow_ctx, &user("member"), &text("member")),
        ),
        (DenyCode::RetentionExpired, {
            let at = NOW - 31 * DAY;
            let mut c = ctx(&retained);
            c.bucket = Some(retained.period_of(at).into());
            check(&c, &user("member"), &post_at("member", at))
        }),
        (
            DenyCode::MessageDeleted,
            run(&g, "member", &edit(tombstone("member"))),
        ),
        (
            DenyCode::NotOwner,
            check(
                &ctx(&g),
                &user("member"),
                &Effect::WriteOwnDoc {
                    owner: acc("admin"),
                },
            ),
        ),
        (
            DenyCode::JoinNotAllowed,
            run(
                &g,
                "stranger",
                &add(None, invitee("stranger", Role::Member, "stranger")),
            ),
        ),
        (
            DenyCode::ImmutableField,
            run(
                &g,
                "owner",
                &update(&g, "member", &[INVITED_BY], |m| {
                    m.invited_by = Some(acc("owner"))
                }),
            ),
        ),
        (
            DenyCode::ConversationLocked,
            run(&locked(), "owner", &text("owner")),
        ),
        (
            DenyCode::ConversationDeleted,
            run(
                &in_state(group(), Lifecycle::Deleted),
                "owner",
                &text("owner"),
            ),
        ),
        (
            DenyCode::Blocked,
            run(&blocked_direct("peer"), "member", &text("member")),
        ),
        (
            DenyCode::DirectOnly,
            run(
                &g,
                "member",
                &update(&g, "member", &[BLOCKED], |m| m.blocked = true),
            ),
        ),
        (
            DenyCode::ApprovalRequired,
            run(
                &with_settings(open.clone(), |s| s.join_approval_required = true),
                "stranger",
                &add(None, invitee("stranger", Role::Member, "stranger")),
            ),
        ),
        (
            DenyCode::LinksDisabled,
            confab_core::policy::joining::may_invite(0, &g, &user("admin")),
        ),
        (
            DenyCode::SenderMismatch,
            run(&sup, "client", &{
                let mut m = new_msg(MessageKind::Text, "client", NOW);
                m.stamp.sender_role = Some(confab_core::model::support::SenderRole::Owner);
                Effect::PostMessage(Box::new(m))
            }),
        ),
        (
            DenyCode::SupportOnly,
            run(
                &g,
                "owner",
                &Effect::SetLead {
                    outcome: false,
                    closed_after: false,
                },
            ),
        ),
        (
            DenyCode::OutcomeNeedsClose,
            run(
                &sup,
                "owner",
                &Effect::SetLead {
                    outcome: true,
                    closed_after: false,
                },
            ),
        ),
        (
            DenyCode::NewLeadRequired,
            run(
                &in_state(support_conv(), Lifecycle::Closed),
                "client",
                &Effect::SetLifecycle {
                    to: Lifecycle::Active,
                    by: acc("client"),
                },
            ),
        ),
        (
            DenyCode::OwnerOnly,
            run(&g, "admin", &transfer(&g, "owner", "member")),
        ),
        (
            DenyCode::TargetNotMember,
            run(&g, "owner", &transfer(&g, "owner", "stranger")),
        ),
        (
            DenyCode::TargetInactive,
            run(
                &with_status(group(), "member", MemberStatus::Banned),
                "owner",
                &transfer(
                    &with_status(group(), "member", MemberStatus::Banned),
                    "owner",
                    "member",
                ),
            ),
        ),
        (
            DenyCode::OwnerMustTransfer,
            run(&g, "admin", &remove(&g, "owner")),
        ),
        (
            DenyCode::PinsFull,
            run(
                &pinned,
                "mod",
                &Effect::Pin {
                    message: msg_id("extra"),
                    by: acc("mod"),
                },
            ),
        ),
    ];

    let mut covered = BTreeSet::new();
    let mut wrong = Vec::new();
    for (want, got) in denials {
        match got {
            Err(d) if d.code == want => {
                covered.insert(want.as_str());
            }
            other => wrong.push(format!("{}: got {other:?}", want.as_str())),
        }
    }
    assert!(wrong.is_empty(), "wrong denials:\n{}", wrong.join("\n"));
    // `message_missing` is decided by validation (the policy gets the message, not its
    // absence); `message_missing_comes_from_validation` covers it. `too_many_reactions`
    // counts a member's reactions in the bucket, also validation's (adversarial.rs
    // `reactions_per_member_per_message_too_many_reactions`, and the client engine below).
    // `bucket_full` and `bucket_not_open` count a bucket part's messages: the acceptor's
    // (core/src/accept/tests.rs, tests/tests/buckets.rs). `schedule_too_many` counts the
    // private document's pending entries: validation's too (the attack case
    // `scheduled_messages_pending_schedule_too_many`). `requests_full` needs 500 requests:
    // core/tests/joining_rules.rs `unanswered_requests_are_bounded`. Where an encrypted
    // conversation's MLS ops may go and what they must come with is validation's too
    // (core/tests/e2ee_accept.rs). Whether a delete is the whole tombstone in its deleter's
    // name reads the change's ops: validation's too (the attack cases `forged_tombstone` and
    // `incomplete_redaction`).
    let validation_only = [
        DenyCode::IncompleteRedaction,
        DenyCode::ForgedTombstone,
        DenyCode::MessageMissing,
        DenyCode::TooManyReactions,
        DenyCode::BucketFull,
        DenyCode::BucketNotOpen,
        DenyCode::ScheduleTooMany,
        DenyCode::RequestsFull,
        DenyCode::NotEncrypted,
        DenyCode::MlsGroupExists,
        DenyCode::MlsNoGroup,
        DenyCode::MlsCommitRequired,
    ];
    let missing: Vec<&str> = DenyCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !covered.contains(c) && !validation_only.iter().any(|v| v.as_str() == *c))
        .collect();
    assert!(missing.is_empty(), "no denial produces {missing:?}");
}

/// The one code the pure policy cannot produce: a reaction to a message that is not in the
/// bucket is refused by validation before the policy sees it.
#[test]
fn message_missing_comes_from_validation() {
    let mut hub = confab_core::hub::Hub::new();
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let c = confab_testkit::hub::group(&mut hub, "g1", &mut alice, &mut [(&mut bob, Role::Member)]);
    confab_testkit::hub::post(&mut hub, &mut alice, &c, "m1", "hello").expect("alice posts");
    let doc = bucket_doc(&c, NOW);
    bob.pull(&hub, &doc);
    let change = bob
        .write(&doc, |d, t| {
            write::react(d, t, NOW, &msg_id("m1"), &acc("bob"), "👍", true)
        })
        .unwrap();
    confab_testkit::hub::submit(&mut hub, &bob, &doc, change).expect("a reaction to m1 is fine");
    let change = bob
        .write(&doc, |d, t| {
            write::react(d, t, NOW, &msg_id("ghost"), &acc("bob"), "👍", true)
        })
        .unwrap();
    let rejected =
        confab_testkit::hub::submit(&mut hub, &bob, &doc, change).expect_err("no such message");
    assert_eq!(
        rejected.code,
        RejectCode::Policy(DenyCode::MessageMissing),
        "{rejected}"
    );
}

// ---------------------------------------------------------------------------------------
// Roles and permission overrides
// ---------------------------------------------------------------------------------------

#[test]
fn role_ranks_order_owner_admin_moderator_member_then_the_rest() {
    let order = [
        Role::Owner,
        Role::Admin,
        Role::Moderator,
        Role::Member,
        Role::Guest,
    ];
    for pair in order.windows(2) {
        assert!(pair[0].rank() > pair[1].rank(), "{pair:?}");
    }
    assert!(Role::Guest.rank() > Role::Readonly.rank());
    assert_eq!(Role::Readonly.rank(), Role::Subscriber.rank());
    assert!(Role::Admin.is_admin() && Role::Owner.is_admin());
    assert!(!Role::Moderator.is_admin());
}

/// The default rights of every role, seen through the policy (no overrides, default settings).
#[test]
fn role_defaults_decide_without_overrides() {
    use DenyCode::*;
    let g = group();
    // (role, text, image, pin, remove target, add a readonly, delete another's message, settings)
    let table: [(&str, [Option<DenyCode>; 7]); 7] = [
        ("owner", [ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW]),
        ("admin", [ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW]),
        (
            "mod",
            [ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, deny(NoPermission)],
        ),
        (
            "member",
            [
                ALLOW,
                ALLOW,
                deny(NoPermission),
                deny(NoPermission),
                ALLOW,
                deny(NotAuthor),
                deny(NoPermission),
            ],
        ),
        (
            "guest",
            [
                ALLOW,
                deny(NoPermission),
                deny(NoPermission),
                deny(NoPermission),
                deny(NoPermission),
                deny(NotAuthor),
                deny(NoPermission),
            ],
        ),
        (
            "readonly",
            [
                deny(NoPermission),
                deny(NoPermission),
                deny(NoPermission),
                // The target is readonly too: same rank.
                deny(RoleTooHigh),
                deny(NoPermission),
                deny(NotAuthor),
                deny(NoPermission),
            ],
        ),
        (
            "subscriber",
            [
                deny(NoPermission),
                deny(NoPermission),
                deny(NoPermission),
                deny(RoleTooHigh),
                deny(NoPermission),
                deny(NotAuthor),
                deny(NoPermission),
            ],
        ),
    ];
    let mut cases = Vec::new();
    for (who, want) in table {
        let effects = [
            ("post text", text(who)),
            ("post image", post_kind(MessageKind::Image, who)),
            ("pin", pin(who)),
            ("remove target", remove(&g, "target")),
            (
                "add readonly",
                add(None, invitee("newbie", Role::Readonly, who)),
            ),
            ("delete another's message", delete(stored("target"))),
            (
                "change a setting",
                Effect::SetSetting {
                    key: "slow_mode_seconds".into(),
                },
            ),
        ];
        for ((what, effect), want) in effects.iter().zip(want) {
            cases.push(case(format!("{who}: {what}"), run(&g, who, effect), want));
        }
    }
    expect_all(cases);
}

/// Overrides replace the role default, in both directions.
#[test]
fn overrides_replace_role_defaults_both_ways() {
    use DenyCode::*;
    use Permission::*;
    let g = group();
    let o = |name, p, on| with_override(group(), name, p, on);
    expect_all(vec![
        // Granting.
        case(
            "readonly + send: text",
            run(
                &o("readonly", SendMessages, true),
                "readonly",
                &text("readonly"),
            ),
            ALLOW,
        ),
        case(
            "guest + media: image",
            run(
                &o("guest", SendMedia, true),
                "guest",
                &post_kind(MessageKind::Image, "guest"),
            ),
            ALLOW,
        ),
        case(
            "member + pin: pin",
            run(&o("member", PinMessages, true), "member", &pin("member")),
            ALLOW,
        ),
        case(
            "member + remove: remove target",
            run(
                &o("member", RemoveMembers, true),
                "member",
                &remove(&g, "target"),
            ),
            ALLOW,
        ),
        case(
            "guest + add: add readonly",
            run(
                &o("guest", AddMembers, true),
                "guest",
                &add(None, invitee("newbie", Role::Readonly, "guest")),
            ),
            ALLOW,
        ),
        // Taking away.
        case(
            "member - send: text",
            run(&o("member", SendMessages, false), "member", &text("member")),
            deny(NoPermission),
        ),
        case(
            "member - media: image",
            run(
                &o("member", SendMedia, false),
                "member",
                &post_kind(MessageKind::Image, "member"),
            ),
            deny(NoPermission),
        ),
        case(
            "member - add: add readonly",
            run(
                &o("member", AddMembers, false),
                "member",
                &add(None, invitee("newbie", Role::Readonly, "member")),
            ),
            deny(NoPermission),
        ),
        case(
            "mod - pin: pin",
            run(&o("mod", PinMessages, false), "mod", &pin("mod")),
            deny(NoPermission),
        ),
        case(
            "mod - pin: unpin",
            run(
                &o("mod", PinMessages, false),
                "mod",
                &Effect::Unpin {
                    message: msg_id("m1"),
                },
            ),
            deny(NoPermission),
        ),
        case(
            "mod - remove: remove target",
            run(
                &o("mod", RemoveMembers, false),
                "mod",
                &remove(&g, "target"),
            ),
            deny(NoPermission),
        ),
        case(
            "mod - delete: delete another's",
            run(
                &o("mod", DeleteMessages, false),
                "mod",
                &delete(stored("member")),
            ),
            deny(NotAuthor),
        ),
        case(
            "admin - change info: setting",
            run(
                &o("admin", ChangeInfo, false),
                "admin",
                &Effect::SetSetting {
                    key: "allow_stickers".into(),
                },
            ),
            deny(NoPermission),
        ),
    ]);
}

/// Overrides replace role defaults, and the author or a holder of delete rights deletes
/// (docs/POLICY.md, "Rules"). A member granted `can_delete_messages` holds delete rights.
#[test]
fn a_delete_override_lets_a_member_delete_any_message() {
    let c = with_override(group(), "member", Permission::DeleteMessages, true);
    expect_all(vec![
        case(
            "member + delete: another's message",
            run(&c, "member", &delete(stored("guest"))),
            ALLOW,
        ),
        case(
            "member without it",
            run(&group(), "member", &delete(stored("guest"))),
            deny(DenyCode::NotAuthor),
        ),
    ]);
}

/// Overrides replace role defaults and settings only narrow them, so an explicit
/// `can_change_info = false` takes info edits away whatever the info edit policy says.
#[test]
fn design_change_info_override_false_takes_info_edits_away() {
    let info = Effect::SetInfo {
        field: "title".into(),
    };
    let admin_off = with_override(group(), "admin", Permission::ChangeInfo, false);
    let all_members = with_settings(group(), |s| s.info_edit_policy = EditPolicy::AllMembers);
    let member_off = with_override(all_members.clone(), "member", Permission::ChangeInfo, false);
    expect_all(vec![
        case("admin, admins_only", run(&group(), "admin", &info), ALLOW),
        case(
            "admin - change info, admins_only",
            run(&admin_off, "admin", &info),
            deny(DenyCode::NoPermission),
        ),
        case(
            "member, all_members",
            run(&all_members, "member", &info),
            ALLOW,
        ),
        case(
            "member - change info, all_members",
            run(&member_off, "member", &info),
            deny(DenyCode::NoPermission),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------
// Settings narrow the rights
// ---------------------------------------------------------------------------------------

#[test]
fn send_policy_admins_only_narrows_even_overrides() {
    let c = with_settings(group(), |s| s.send_policy = SendPolicy::AdminsOnly);
    let granted = with_override(c.clone(), "member", Permission::SendMessages, true);
    expect_all(vec![
        case("owner", run(&c, "owner", &text("owner")), ALLOW),
        case("admin", run(&c, "admin", &text("admin")), ALLOW),
        case(
            "mod",
            run(&c, "mod", &text("mod")),
            deny(DenyCode::AdminsOnly),
        ),
        case(
            "member",
            run(&c, "member", &text("member")),
            deny(DenyCode::AdminsOnly),
        ),
        case(
            "member + send",
            run(&granted, "member", &text("member")),
            deny(DenyCode::AdminsOnly),
        ),
        case(
            "all_members: member",
            run(&group(), "member", &text("member")),
            ALLOW,
        ),
    ]);
}

#[test]
fn allow_reactions_attachments_and_stickers() {
    use DenyCode::*;
    let g = group();
    let no_reactions = with_settings(group(), |s| s.allow_reactions = false);
    let no_attachments = with_settings(group(), |s| s.allow_attachments = false);
    let no_stickers = with_settings(group(), |s| s.allow_stickers = false);
    let mut with_files = new_msg(MessageKind::Text, "member", NOW);
    with_files.attachments = Some(r#"[{"url":"https://cdn.example.com/a.png"}]"#.into());
    let with_files = Effect::PostMessage(Box::new(with_files));
    let mut cases = vec![
        case(
            "reactions on: react",
            run(&g, "member", &react(stored("admin"), "member")),
            ALLOW,
        ),
        case(
            "reactions off: member reacts",
            run(&no_reactions, "member", &react(stored("admin"), "member")),
            deny(ReactionsDisabled),
        ),
        case(
            "reactions off: owner reacts",
            run(&no_reactions, "owner", &react(stored("admin"), "owner")),
            deny(ReactionsDisabled),
        ),
        case(
            "attachments on: text with files",
            run(&g, "member", &with_files),
            ALLOW,
        ),
        case(
            "attachments off: text with files",
            run(&no_attachments, "member", &with_files),
            deny(AttachmentsDisabled),
        ),
        case(
            "attachments off: plain text",
            run(&no_attachments, "member", &text("member")),
            ALLOW,
        ),
        case(
            "attachments off: admin image",
            run(
                &no_attachments,
                "admin",
                &post_kind(MessageKind::Image, "admin"),
            ),
            deny(AttachmentsDisabled),
        ),
        case(
            "stickers on: sticker",
            run(&g, "member", &post_kind(MessageKind::Sticker, "member")),
            ALLOW,
        ),
        case(
            "stickers off: sticker",
            run(
                &no_stickers,
                "member",
                &post_kind(MessageKind::Sticker, "member"),
            ),
            deny(StickersDisabled),
        ),
        case(
            "stickers off: owner sticker",
            run(
                &no_stickers,
                "owner",
                &post_kind(MessageKind::Sticker, "owner"),
            ),
            deny(StickersDisabled),
        ),
        case(
            "stickers off: text",
            run(&no_stickers, "member", &text("member")),
            ALLOW,
        ),
    ];
    for kind in [
        MessageKind::Image,
        MessageKind::File,
        MessageKind::Voice,
        MessageKind::Video,
    ] {
        let label = kind.as_str();
        cases.push(case(
            format!("attachments on: {label}"),
            run(&g, "member", &post_kind(kind, "member")),
            ALLOW,
        ));
        cases.push(case(
            format!("attachments off: {label}"),
            run(&no_attachments, "member", &post_kind(kind, "member")),
            deny(AttachmentsDisabled),
        ));
    }
    expect_all(cases);
}

#[test]
fn slow_mode_spaces_posts_except_for_moderators() {
    let c = with_settings(group(), |s| s.slow_mode_seconds = 30);
    let at = |last: Option<i64>, who: &str| {
        let mut cx = ctx(&c);
        cx.last_post_ms = last;
        check(&cx, &user(who), &text(who))
    };
    let off = with_settings(group(), |s| s.slow_mode_seconds = 0);
    let mut off_ctx = ctx(&off);
    off_ctx.last_post_ms = Some(NOW - 1);
    expect_all(vec![
        case("first post", at(None, "member"), ALLOW),
        case(
            "10 s after the last",
            at(Some(NOW - 10_000), "member"),
            deny(DenyCode::SlowMode),
        ),
        case(
            "1 ms too early",
            at(Some(NOW - 29_999), "member"),
            deny(DenyCode::SlowMode),
        ),
        case(
            "exactly 30 s after",
            at(Some(NOW - 30_000), "member"),
            ALLOW,
        ),
        case(
            "guest too",
            at(Some(NOW - 1000), "guest"),
            deny(DenyCode::SlowMode),
        ),
        case("moderator exempt", at(Some(NOW - 1000), "mod"), ALLOW),
        case("admin exempt", at(Some(NOW - 1000), "admin"), ALLOW),
        case(
            "slow mode off",
            check(&off_ctx, &user("member"), &text("member")),
            ALLOW,
        ),
    ]);
}

#[test]
fn retention_refuses_messages_older_than_it_keeps() {
    let c = with_settings(group(), |s| s.retention_days = Some(30));
    let aged = |conv: &Conversation, age: i64| {
        let at = NOW - age;
        let mut cx = ctx(conv);
        cx.bucket = Some(conv.period_of(at).into());
        check(&cx, &user("member"), &post_at("member", at))
    };
    expect_all(vec![
        case("29 days old", aged(&c, 29 * DAY), ALLOW),
        case("exactly 30 days old", aged(&c, 30 * DAY), ALLOW),
        case(
            "30 days and 1 ms old",
            aged(&c, 30 * DAY + 1),
            deny(DenyCode::RetentionExpired),
        ),
        case(
            "a year old",
            aged(&c, 365 * DAY),
            deny(DenyCode::RetentionExpired),
        ),
        case("no retention: a year old", aged(&group(), 365 * DAY), ALLOW),
        case(
            "retention 0 (keep everything): a year old",
            aged(
                &with_settings(group(), |s| s.retention_days = Some(0)),
                365 * DAY,
            ),
            ALLOW,
        ),
    ]);
}

#[test]
fn nothing_is_written_to_a_bucket_past_the_retention() {
    let c = with_settings(group(), |s| s.retention_days = Some(30));
    // A bucket whose period ended more than 30 days ago, and the one the cutoff falls in.
    let expired = c.period_of(NOW - 30 * DAY) - 1;
    let kept = c.period_of(NOW - 30 * DAY);
    let in_bucket = |period: i64, effect: &Effect| {
        let mut cx = ctx(&c);
        cx.bucket = Some(period.into());
        check(&cx, &user("member"), effect)
    };
    expect_all(vec![
        case(
            "a reaction in an expired bucket",
            in_bucket(expired, &react(stored("member"), "member")),
            deny(DenyCode::RetentionExpired),
        ),
        case(
            "an edit in an expired bucket",
            in_bucket(expired, &edit(stored("member"))),
            deny(DenyCode::RetentionExpired),
        ),
        case(
            "a reaction in the bucket the cutoff falls in",
            in_bucket(kept, &react(stored("member"), "member")),
            ALLOW,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------
// Kinds
// ---------------------------------------------------------------------------------------

#[test]
fn direct_conversations_have_fixed_members() {
    let d = direct();
    let open = with_settings(direct(), |s| s.join_policy = JoinPolicy::Open);
    expect_all(vec![
        case("a member posts", run(&d, "member", &text("member")), ALLOW),
        case("the peer posts", run(&d, "peer", &text("peer")), ALLOW),
        case(
            "a member adds a third",
            run(
                &d,
                "member",
                &add(None, invitee("third", Role::Guest, "member")),
            ),
            deny(DenyCode::DirectFixedMembers),
        ),
        case(
            "a stranger joins an open direct",
            run(
                &open,
                "third",
                &add(None, invitee("third", Role::Member, "third")),
            ),
            deny(DenyCode::DirectFixedMembers),
        ),
        case(
            "created like a group",
            check(
                &no_conv(),
                &user("member"),
                &create(new_kind("d2", ConvKind::Direct, "member")),
            ),
            deny(DenyCode::InvalidCreation),
        ),
    ]);
}

/// A group whose owner and `n - 1` other members are active.
fn full_group(n: usize) -> Conversation {
    let mut c = conv_with("big", ConvKind::Group, &[("owner", Role::Owner)]);
    for i in 1..n {
        let name = format!("u{i}");
        c.members
            .insert(acc(&name), invitee(&name, Role::Member, "owner"));
    }
    c
}

#[test]
fn groups_hold_at_most_1000_active_members() {
    assert_eq!(GROUP_MAX_MEMBERS, 1000);
    let almost = full_group(GROUP_MAX_MEMBERS - 1);
    let full = full_group(GROUP_MAX_MEMBERS);
    let one_left = with_status(full.clone(), "u7", MemberStatus::Left);
    let newcomer = || add(None, invitee("late", Role::Member, "owner"));
    let with_n = |n: usize| {
        let mut spec = new_group("g2", "owner");
        for i in 1..n {
            let name = format!("u{i}");
            spec.members
                .insert(acc(&name), invitee(&name, Role::Member, "owner"));
        }
        check(&no_conv(), &user("owner"), &create(spec))
    };
    expect_all(vec![
        case("999 + 1", run(&almost, "owner", &newcomer()), ALLOW),
        case(
            "1000 + 1",
            run(&full, "owner", &newcomer()),
            deny(DenyCode::GroupFull),
        ),
        case(
            "999 active + 1 left, + 1",
            run(&one_left, "owner", &newcomer()),
            ALLOW,
        ),
        case("created with 1000", with_n(GROUP_MAX_MEMBERS), ALLOW),
        case(
            "created with 1001",
            with_n(GROUP_MAX_MEMBERS + 1),
            deny(DenyCode::GroupFull),
        ),
    ]);
}

#[test]
fn channels_let_admins_post_and_subscribers_react() {
    use DenyCode::*;
    let ch = conv(ConvKind::Channel);
    let everyone_sends = with_settings(conv(ConvKind::Channel), |s| {
        s.send_policy = SendPolicy::AllMembers
    });
    let no_reactions = with_settings(conv(ConvKind::Channel), |s| s.allow_reactions = false);
    expect_all(vec![
        case("owner posts", run(&ch, "owner", &text("owner")), ALLOW),
        case("admin posts", run(&ch, "admin", &text("admin")), ALLOW),
        case(
            "mod posts",
            run(&ch, "mod", &text("mod")),
            deny(ChannelAdminsOnly),
        ),
        case(
            "member posts",
            run(&ch, "member", &text("member")),
            deny(ChannelAdminsOnly),
        ),
        case(
            "subscriber posts",
            run(&ch, "subscriber", &text("subscriber")),
            deny(ChannelAdminsOnly),
        ),
        case(
            "send policy all_members: member posts",
            run(&everyone_sends, "member", &text("member")),
            deny(ChannelAdminsOnly),
        ),
        case(
            "subscriber reacts",
            run(&ch, "subscriber", &react(stored("admin"), "subscriber")),
            ALLOW,
        ),
        case(
            "subscriber reacts, reactions off",
            run(
                &no_reactions,
                "subscriber",
                &react(stored("admin"), "subscriber"),
            ),
            deny(ReactionsDisabled),
        ),
        case(
            "subscriber reads",
            run(
                &ch,
                "subscriber",
                &Effect::MarkRead {
                    account: acc("subscriber"),
                },
            ),
            ALLOW,
        ),
    ]);
}

#[test]
fn system_conversations_and_messages_come_from_service_accounts() {
    use DenyCode::*;
    let g = group();
    let sys = conv(ConvKind::System);
    let sys_spec = new_kind("sys2", ConvKind::System, "bot");
    expect_all(vec![
        case(
            "service posts a system message (not a member)",
            check(
                &ctx(&g),
                &service("bot"),
                &post_kind(MessageKind::System, "bot"),
            ),
            ALLOW,
        ),
        case(
            "owner posts a system message",
            run(&g, "owner", &post_kind(MessageKind::System, "owner")),
            deny(ServiceOnly),
        ),
        case(
            "service posts in a system conversation",
            check(
                &ctx(&sys),
                &service("bot"),
                &post_kind(MessageKind::System, "bot"),
            ),
            ALLOW,
        ),
        case(
            "owner posts text in a system conversation",
            run(&sys, "owner", &text("owner")),
            deny(ServiceOnly),
        ),
        case(
            "service creates a system conversation",
            check(&no_conv(), &service("bot"), &create(sys_spec.clone())),
            ALLOW,
        ),
        case(
            "user creates a system conversation",
            check(&no_conv(), &user("bot"), &create(sys_spec)),
            deny(ServiceOnly),
        ),
        case(
            "service forging another author",
            check(
                &ctx(&g),
                &service("bot"),
                &post_kind(MessageKind::System, "owner"),
            ),
            deny(AuthorMismatch),
        ),
    ]);
}

/// docs/POLICY.md: a system conversation's messages are written only by service
/// accounts. The service account that created one (its owner) may write any kind of message
/// there, not only `system` ones; users may not.
#[test]
fn design_service_accounts_write_any_message_in_their_system_conversation() {
    let sys = conv_with(
        "sys1",
        ConvKind::System,
        &[("bot", Role::Owner), ("member", Role::Member)],
    );
    let as_bot = |kind| check(&ctx(&sys), &service("bot"), &post_kind(kind, "bot"));
    expect_all(vec![
        case(
            "service owner: system message",
            as_bot(MessageKind::System),
            ALLOW,
        ),
        case("service owner: text", as_bot(MessageKind::Text), ALLOW),
        case(
            "user member: text",
            run(&sys, "member", &text("member")),
            deny(DenyCode::ServiceOnly),
        ),
    ]);
}

#[test]
fn support_clients_answer_proposals_and_do_not_make_them() {
    let s = support_conv();
    let mut spec = new_kind("s2", ConvKind::Support, "owner");
    spec.meta.as_mut().unwrap().resource = s.meta.as_ref().unwrap().resource.clone();
    expect_all(vec![
        case(
            "resource owner proposes",
            run(&s, "owner", &post_kind(MessageKind::Proposal, "owner")),
            ALLOW,
        ),
        case(
            "staff proposes",
            run(&s, "staff", &post_kind(MessageKind::Proposal, "staff")),
            ALLOW,
        ),
        case(
            "client proposes",
            run(&s, "client", &post_kind(MessageKind::Proposal, "client")),
            deny(DenyCode::NotCounterparty),
        ),
        case(
            "client writes text",
            run(&s, "client", &text("client")),
            ALLOW,
        ),
        case(
            "client posts a proposal_response",
            run(
                &s,
                "client",
                &post_kind(MessageKind::ProposalResponse, "client"),
            ),
            ALLOW,
        ),
        case(
            "support created like a group",
            check(&no_conv(), &user("owner"), &create(spec)),
            deny(DenyCode::InvalidCreation),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------

fn create(c: Conversation) -> Effect {
    Effect::CreateConversation(Box::new(c))
}

/// The creation of conversation `id` of `kind` by `creator`, alone in it.
fn new_kind(id: &str, kind: ConvKind, creator: &str) -> Conversation {
    let mut c = conv_with(id, kind, &[(creator, Role::Owner)]);
    c.meta.as_mut().unwrap().created_by = Some(acc(creator));
    c
}

fn new_group(id: &str, creator: &str) -> Conversation {
    new_kind(id, ConvKind::Group, creator)
}

/// The creation of a thread of `parent` at `depth` by `creator`.
fn new_thread(parent: &Conversation, creator: &str, depth: u32) -> Conversation {
    let mut c = new_kind("t1", ConvKind::Thread, creator);
    c.meta.as_mut().unwrap().thread = Some(ThreadLink {
        parent: parent.id.clone(),
        message: msg_id("m1"),
        depth,
    });
    c
}

/// A thread conversation of `parent` at `depth`, already created.
fn thread_of(parent: &Conversation, depth: u32) -> Conversation {
    let mut t = conv_with(
        &format!("t-{depth}"),
        ConvKind::Thread,
        &[("member", Role::Owner), ("guest", Role::Member)],
    );
    t.meta.as_mut().unwrap().thread = Some(ThreadLink {
        parent: parent.id.clone(),
        message: msg_id("m1"),
        depth,
    });
    t
}

/// No conversation before (creation, own documents).
fn no_conv() -> Context<'static> {
    Context {
        conv: None,
        parent: None,
        now_ms: NOW,
        last_post_ms: None,
        bucket: None,
        parent_standing: None,
        parent_message: None,
    }
}

fn under<'a>(parent: &'a Conversation) -> Context<'a> {
    Context {
        conv: None,
        parent: Some(parent),
        now_ms: NOW,
        last_post_ms: None,
        bucket: None,
        parent_standing: None,
        parent_message: None,
    }
}

#[test]
fn threads_need_parent_membership_subroom_rights_and_depth() {
    use DenyCode::*;
    let parent = group();
    let admins_only = with_settings(group(), |s| s.subroom_policy = EditPolicy::AdminsOnly);
    let left = with_status(group(), "member", MemberStatus::Left);
    let deep = thread_of(&parent, SUBROOM_DEPTH_MAX - 1);
    let deepest = thread_of(&parent, SUBROOM_DEPTH_MAX);
    let shallow = with_settings(group(), |s| s.max_subroom_depth = 1);
    let shallow_thread = with_settings(thread_of(&shallow, 1), |s| s.max_subroom_depth = 1);
    let mk = |p: &Conversation, who: &str, depth: u32| {
        check(&under(p), &user(who), &create(new_thread(p, who, depth)))
    };
    let mut orphan = new_thread(&parent, "member", 1);
    orphan.meta.as_mut().unwrap().thread = None;
    let mut stray = new_group("t1", "member");
    stray.meta.as_mut().unwrap().thread = new_thread(&parent, "member", 1).meta.unwrap().thread;
    expect_all(vec![
        case("parent member, depth 1", mk(&parent, "member", 1), ALLOW),
        case("parent guest, depth 1", mk(&parent, "guest", 1), ALLOW),
        case(
            "not in the parent",
            mk(&parent, "stranger", 1),
            deny(NotMember),
        ),
        case(
            "left the parent",
            mk(&left, "member", 1),
            deny(MemberInactive),
        ),
        case(
            "subroom admins_only: member",
            mk(&admins_only, "member", 1),
            deny(SubroomForbidden),
        ),
        case(
            "subroom admins_only: admin",
            mk(&admins_only, "admin", 1),
            ALLOW,
        ),
        case(
            "depth max under max - 1",
            mk(&deep, "member", SUBROOM_DEPTH_MAX),
            ALLOW,
        ),
        case(
            "depth max + 1",
            mk(&deepest, "member", SUBROOM_DEPTH_MAX + 1),
            deny(ThreadTooDeep),
        ),
        case(
            "max depth 1: thread of thread",
            mk(&shallow_thread, "member", 2),
            deny(ThreadTooDeep),
        ),
        case("max depth 1: thread", mk(&shallow, "member", 1), ALLOW),
        case(
            "depth not parent's + 1",
            mk(&parent, "member", 2),
            deny(InvalidCreation),
        ),
        case(
            "parent unknown",
            check(
                &Context {
                    parent: None,
                    ..under(&parent)
                },
                &user("member"),
                &create(new_thread(&parent, "member", 1)),
            ),
            deny(InvalidCreation),
        ),
        case(
            "thread without parent link",
            check(&under(&parent), &user("member"), &create(orphan)),
            deny(InvalidCreation),
        ),
        case(
            "group with a parent link",
            check(&under(&parent), &user("member"), &create(stray)),
            deny(InvalidCreation),
        ),
    ]);
}

#[test]
fn parent_members_join_threads_by_themselves() {
    let parent = group();
    let thread = thread_of(&parent, 1);
    let join = |who: &str| add(None, invitee(who, Role::Member, who));
    let with_parent = Context {
        parent: Some(&parent),
        ..ctx(&thread)
    };
    let other_parent = conv_with("other", ConvKind::Group, CAST);
    let wrong_parent = Context {
        parent: Some(&other_parent),
        ..ctx(&thread)
    };
    let left_parent = with_status(group(), "mod", MemberStatus::Left);
    let after_leaving = Context {
        parent: Some(&left_parent),
        ..ctx(&thread)
    };
    expect_all(vec![
        case(
            "parent member joins",
            check(&with_parent, &user("mod"), &join("mod")),
            ALLOW,
        ),
        case(
            "joined member posts",
            run(&thread, "guest", &text("guest")),
            ALLOW,
        ),
        case(
            "stranger joins",
            check(&with_parent, &user("stranger"), &join("stranger")),
            deny(DenyCode::JoinNotAllowed),
        ),
        case(
            "parent not given",
            run(&thread, "mod", &join("mod")),
            deny(DenyCode::JoinNotAllowed),
        ),
        case(
            "another conversation as parent",
            check(&wrong_parent, &user("mod"), &join("mod")),
            deny(DenyCode::JoinNotAllowed),
        ),
        case(
            "left the parent",
            check(&after_leaving, &user("mod"), &join("mod")),
            deny(DenyCode::JoinNotAllowed),
        ),
        case(
            "joins as admin",
            check(
                &with_parent,
                &user("mod"),
                &add(None, invitee("mod", Role::Admin, "mod")),
            ),
            deny(DenyCode::RoleTooHigh),
        ),
        case(
            "parent member posts without joining",
            check(&with_parent, &user("mod"), &text("mod")),
            deny(DenyCode::NotMember),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

#[test]
fn active_members_with_send_rights_append() {
    use DenyCode::*;
    let g = group();
    let mut cases = vec![
        case("member", run(&g, "member", &text("member")), ALLOW),
        case("guest", run(&g, "guest", &text("guest")), ALLOW),
        case(
            "stranger",
            run(&g, "stranger", &text("stranger")),
            deny(NotMember),
        ),
        case(
            "readonly",
            run(&g, "readonly", &text("readonly")),
            deny(NoPermission),
        ),
        case(
            "subscriber",
            run(&g, "subscriber", &text("subscriber")),
            deny(NoPermission),
        ),
    ];
    for status in [
        MemberStatus::Left,
        MemberStatus::Removed,
        MemberStatus::Banned,
    ] {
        let c = with_status(group(), "member", status);
        cases.push(case(
            format!("{} member", status.as_str()),
            run(&c, "member", &text("member")),
            deny(MemberInactive),
        ));
    }
    expect_all(cases);
}

#[test]
fn the_author_is_the_changes_account() {
    let g = group();
    expect_all(vec![
        case("own name", run(&g, "member", &text("member")), ALLOW),
        case(
            "another member's name",
            run(&g, "member", &text("owner")),
            deny(DenyCode::AuthorMismatch),
        ),
        case(
            "a stranger's name",
            run(&g, "member", &text("stranger")),
            deny(DenyCode::AuthorMismatch),
        ),
        case(
            "owner writing as member",
            run(&g, "owner", &text("member")),
            deny(DenyCode::AuthorMismatch),
        ),
    ]);
}

#[test]
fn only_the_author_edits_a_body() {
    use DenyCode::*;
    let g = group();
    let removed = with_status(group(), "member", MemberStatus::Removed);
    expect_all(vec![
        case("author", run(&g, "member", &edit(stored("member"))), ALLOW),
        case(
            "another member",
            run(&g, "guest", &edit(stored("member"))),
            deny(NotAuthor),
        ),
        case(
            "the owner",
            run(&g, "owner", &edit(stored("member"))),
            deny(NotAuthor),
        ),
        case(
            "author, deleted message",
            run(&g, "member", &edit(tombstone("member"))),
            deny(MessageDeleted),
        ),
        case(
            "author, removed since",
            run(&removed, "member", &edit(stored("member"))),
            deny(MemberInactive),
        ),
        case(
            "stranger",
            run(&g, "stranger", &edit(stored("stranger"))),
            deny(NotMember),
        ),
    ]);
}

#[test]
fn the_author_or_a_delete_rights_holder_deletes() {
    use DenyCode::*;
    let g = group();
    let removed = with_status(group(), "member", MemberStatus::Removed);
    expect_all(vec![
        case(
            "author",
            run(&g, "member", &delete(stored("member"))),
            ALLOW,
        ),
        case(
            "guest author",
            run(&g, "guest", &delete(stored("guest"))),
            ALLOW,
        ),
        case(
            "moderator, another's",
            run(&g, "mod", &delete(stored("member"))),
            ALLOW,
        ),
        case(
            "owner, another's",
            run(&g, "owner", &delete(stored("member"))),
            ALLOW,
        ),
        case(
            "member, another's",
            run(&g, "member", &delete(stored("guest"))),
            deny(NotAuthor),
        ),
        case(
            "already deleted",
            run(&g, "member", &delete(tombstone("member"))),
            deny(MessageDeleted),
        ),
        case(
            "author, removed since",
            run(&removed, "member", &delete(stored("member"))),
            deny(MemberInactive),
        ),
    ]);
}

#[test]
fn reactions_and_read_markers_are_own_keys() {
    use DenyCode::*;
    let g = group();
    let left = with_status(group(), "member", MemberStatus::Left);
    let read = |a: &str| Effect::MarkRead { account: acc(a) };
    let delivered = |a: &str| Effect::MarkDelivered { account: acc(a) };
    expect_all(vec![
        case(
            "own reaction",
            run(&g, "member", &react(stored("admin"), "member")),
            ALLOW,
        ),
        case(
            "own reaction on own message",
            run(&g, "member", &react(stored("member"), "member")),
            ALLOW,
        ),
        case(
            "readonly reacts",
            run(&g, "readonly", &react(stored("admin"), "readonly")),
            ALLOW,
        ),
        case(
            "another's reaction",
            run(&g, "member", &react(stored("admin"), "admin")),
            deny(NotOwnKey),
        ),
        case(
            "owner writes another's reaction",
            run(&g, "owner", &react(stored("admin"), "member")),
            deny(NotOwnKey),
        ),
        case(
            "reaction on a deleted message",
            run(&g, "member", &react(tombstone("admin"), "member")),
            deny(MessageDeleted),
        ),
        case(
            "stranger reacts",
            run(&g, "stranger", &react(stored("admin"), "stranger")),
            deny(NotMember),
        ),
        case(
            "left member reacts",
            run(&left, "member", &react(stored("admin"), "member")),
            deny(MemberInactive),
        ),
        case("own read marker", run(&g, "member", &read("member")), ALLOW),
        case(
            "another's read marker",
            run(&g, "member", &read("guest")),
            deny(NotOwnKey),
        ),
        case(
            "owner moves another's marker",
            run(&g, "owner", &read("guest")),
            deny(NotOwnKey),
        ),
        case(
            "stranger's own marker",
            run(&g, "stranger", &read("stranger")),
            deny(NotMember),
        ),
        case(
            "left member's marker",
            run(&left, "member", &read("member")),
            deny(MemberInactive),
        ),
        case(
            "own delivery marker",
            run(&g, "member", &delivered("member")),
            ALLOW,
        ),
        case(
            "readonly's own delivery marker",
            run(&g, "readonly", &delivered("readonly")),
            ALLOW,
        ),
        case(
            "another's delivery marker",
            run(&g, "member", &delivered("guest")),
            deny(NotOwnKey),
        ),
        case(
            "owner moves another's delivery marker",
            run(&g, "owner", &delivered("member")),
            deny(NotOwnKey),
        ),
        case(
            "stranger's own delivery marker",
            run(&g, "stranger", &delivered("stranger")),
            deny(NotMember),
        ),
        case(
            "left member's delivery marker",
            run(&left, "member", &delivered("member")),
            deny(MemberInactive),
        ),
    ]);
}

#[test]
fn buckets_and_client_clocks() {
    let g = group();
    let in_bucket = |bucket: Option<i64>, at: i64| {
        let mut cx = ctx(&g);
        cx.bucket = bucket.map(Into::into);
        check(&cx, &user("member"), &post_at("member", at))
    };
    let today = g.period_of(NOW);
    let next_day = NOW + DEFAULT_BUCKET_MS;
    expect_all(vec![
        case("its bucket", in_bucket(Some(today), NOW), ALLOW),
        case(
            "yesterday's bucket",
            in_bucket(Some(today - 1), NOW),
            deny(DenyCode::BucketMismatch),
        ),
        case(
            "tomorrow's bucket",
            in_bucket(Some(today + 1), NOW),
            deny(DenyCode::BucketMismatch),
        ),
        // NOW is midnight: one ms earlier is the previous bucket.
        case(
            "1 ms before midnight, yesterday's bucket",
            in_bucket(Some(today - 1), NOW - 1),
            ALLOW,
        ),
        case(
            "1 ms before midnight, today's bucket",
            in_bucket(Some(today), NOW - 1),
            deny(DenyCode::BucketMismatch),
        ),
        case(
            "exactly 1 h ahead",
            in_bucket(Some(today), NOW + MAX_CLOCK_AHEAD_MS),
            ALLOW,
        ),
        case(
            "1 h and 1 ms ahead",
            in_bucket(Some(today), NOW + MAX_CLOCK_AHEAD_MS + 1),
            deny(DenyCode::ClockAhead),
        ),
        case(
            "a day ahead, its bucket",
            in_bucket(Some(g.period_of(next_day)), next_day),
            deny(DenyCode::ClockAhead),
        ),
        case("no bucket given", in_bucket(None, NOW - 5 * DAY), ALLOW),
    ]);
}

// ---------------------------------------------------------------------------------------
// Members
// ---------------------------------------------------------------------------------------

#[test]
fn adding_needs_add_rights_and_a_role_not_above_the_adders() {
    use DenyCode::*;
    let g = group();
    let by = |who: &str, role: Role| run(&g, who, &add(None, invitee("newbie", role, who)));
    let adding_guest = with_override(group(), "guest", Permission::AddMembers, true);
    let guest_adds = |role: Role| {
        run(
            &adding_guest,
            "guest",
            &add(None, invitee("newbie", role, "guest")),
        )
    };
    expect_all(vec![
        case("owner adds an admin", by("owner", Role::Admin), ALLOW),
        case(
            "owner adds an owner",
            by("owner", Role::Owner),
            deny(RoleTooHigh),
        ),
        case(
            "admin adds a moderator",
            by("admin", Role::Moderator),
            ALLOW,
        ),
        case(
            "admin adds an admin",
            by("admin", Role::Admin),
            deny(RoleTooHigh),
        ),
        case("mod adds a member", by("mod", Role::Member), ALLOW),
        case(
            "mod adds a moderator",
            by("mod", Role::Moderator),
            deny(RoleTooHigh),
        ),
        case("member adds a guest", by("member", Role::Guest), ALLOW),
        // At their own rank only up to member: members add members, staff do not clone.
        case("member adds a member", by("member", Role::Member), ALLOW),
        case(
            "member adds a moderator",
            by("member", Role::Moderator),
            deny(RoleTooHigh),
        ),
        case(
            "guest adds a readonly",
            by("guest", Role::Readonly),
            deny(NoPermission),
        ),
        case(
            "guest with can_add_members adds a guest",
            guest_adds(Role::Guest),
            ALLOW,
        ),
        case(
            "guest with can_add_members adds a subscriber",
            guest_adds(Role::Subscriber),
            ALLOW,
        ),
        case(
            "guest with can_add_members adds a member",
            guest_adds(Role::Member),
            deny(RoleTooHigh),
        ),
        case(
            "stranger adds",
            by("stranger", Role::Readonly),
            deny(NotMember),
        ),
        case(
            "added as left",
            run(
                &g,
                "owner",
                &add(None, {
                    let mut m = invitee("newbie", Role::Member, "owner");
                    m.status = MemberStatus::Left;
                    m
                }),
            ),
            deny(InvalidCreation),
        ),
    ]);
}

#[test]
fn invited_by_names_the_inviter() {
    let g = group();
    let mut anonymous = invitee("newbie", Role::Member, "mod");
    anonymous.invited_by = None;
    expect_all(vec![
        case(
            "own name",
            run(
                &g,
                "mod",
                &add(None, invitee("newbie", Role::Member, "mod")),
            ),
            ALLOW,
        ),
        case(
            "the owner's name",
            run(
                &g,
                "mod",
                &add(None, invitee("newbie", Role::Member, "owner")),
            ),
            deny(DenyCode::NotOwnKey),
        ),
        case(
            "no name",
            run(&g, "mod", &add(None, anonymous)),
            deny(DenyCode::NotOwnKey),
        ),
    ]);
}

#[test]
fn self_join_follows_the_join_policy_and_gives_the_join_role() {
    use DenyCode::*;
    let policy = |p: JoinPolicy, approval: bool| {
        with_settings(group(), |s| {
            s.join_policy = p;
            s.join_approval_required = approval;
        })
    };
    let open = policy(JoinPolicy::Open, false);
    let open_channel = with_settings(conv(ConvKind::Channel), |s| {
        s.join_policy = JoinPolicy::Open
    });
    let left = with_status(open.clone(), "member", MemberStatus::Left);
    let left_invite_only = with_status(group(), "member", MemberStatus::Left);
    let join = |c: &Conversation, who: &str, role: Role| {
        run(
            c,
            who,
            &add(c.member(&acc(who)).cloned(), invitee(who, role, who)),
        )
    };
    expect_all(vec![
        case("open", join(&open, "newbie", Role::Member), ALLOW),
        case(
            "open with approval",
            join(&policy(JoinPolicy::Open, true), "newbie", Role::Member),
            // Asking is the way in there (docs/POLICY.md, "Joining").
            deny(ApprovalRequired),
        ),
        case(
            "invite only",
            join(
                &policy(JoinPolicy::InviteOnly, false),
                "newbie",
                Role::Member,
            ),
            deny(JoinNotAllowed),
        ),
        case(
            "link join",
            join(&policy(JoinPolicy::Link, false), "newbie", Role::Member),
            deny(JoinNotAllowed),
        ),
        case(
            "open, as admin",
            join(&open, "newbie", Role::Admin),
            deny(RoleTooHigh),
        ),
        case(
            "open, as guest",
            join(&open, "newbie", Role::Guest),
            deny(RoleTooHigh),
        ),
        case(
            "open channel, as subscriber",
            join(&open_channel, "newbie", Role::Subscriber),
            ALLOW,
        ),
        case(
            "open channel, as member",
            join(&open_channel, "newbie", Role::Member),
            deny(RoleTooHigh),
        ),
        case(
            "left, open: rejoins",
            join(&left, "member", Role::Member),
            ALLOW,
        ),
        case(
            "left, invite only",
            join(&left_invite_only, "member", Role::Member),
            deny(JoinNotAllowed),
        ),
        case(
            "already active",
            join(&open, "guest", Role::Member),
            deny(JoinNotAllowed),
        ),
    ]);
}

#[test]
fn removed_and_banned_members_do_not_come_back_by_themselves() {
    use DenyCode::*;
    let open = with_settings(group(), |s| s.join_policy = JoinPolicy::Open);
    let removed = with_status(open.clone(), "guest", MemberStatus::Removed);
    let banned = with_status(open.clone(), "guest", MemberStatus::Banned);
    let before = |c: &Conversation| c.member(&acc("guest")).cloned();
    let self_join = |c: &Conversation| {
        run(
            c,
            "guest",
            &add(before(c), invitee("guest", Role::Member, "guest")),
        )
    };
    let readd =
        |c: &Conversation, by: &str| run(c, by, &add(before(c), invitee("guest", Role::Guest, by)));
    let nick = |c: &Conversation| {
        run(
            c,
            "guest",
            &update(c, "guest", &[NICKNAME], |m| m.nickname = Some("g".into())),
        )
    };
    let leave = |c: &Conversation| {
        run(
            c,
            "guest",
            &update(c, "guest", &[STATUS, LEFT_AT], |m| {
                m.status = MemberStatus::Left;
                m.left_at = Some(NOW);
            }),
        )
    };
    expect_all(vec![
        case(
            "removed: self-join, open",
            self_join(&removed),
            deny(MemberInactive),
        ),
        case(
            "banned: self-join, open",
            self_join(&banned),
            deny(MemberInactive),
        ),
        case(
            "removed: own nickname",
            nick(&removed),
            deny(MemberInactive),
        ),
        case(
            "removed: marks itself left",
            leave(&removed),
            deny(NoPermission),
        ),
        case(
            "banned: posts",
            run(&banned, "guest", &text("guest")),
            deny(MemberInactive),
        ),
        case(
            "removed: re-added by a member",
            readd(&removed, "member"),
            ALLOW,
        ),
        case(
            "banned: re-added by a member (no remove rights)",
            readd(&banned, "member"),
            deny(NoPermission),
        ),
        case(
            "banned: re-added by a moderator",
            readd(&banned, "mod"),
            ALLOW,
        ),
        case("active: own nickname", nick(&open), ALLOW),
    ]);
}

#[test]
fn anyone_may_leave_but_the_only_owner() {
    let g = group();
    let leave = |who: &str| {
        run(
            &g,
            who,
            &update(&g, who, &[STATUS, LEFT_AT], |m| {
                m.status = MemberStatus::Left;
                m.left_at = Some(NOW);
            }),
        )
    };
    let mut cases: Vec<Case> = CAST
        .iter()
        .map(|(who, role)| {
            let expected = if *role == Role::Owner {
                deny(DenyCode::OwnerMustTransfer)
            } else {
                ALLOW
            };
            case(format!("{who} leaves"), leave(who), expected)
        })
        .collect();
    // With a second owner, the first is not the only one: it may leave.
    let two = with_member(group(), "admin", |m| m.role = Role::Owner);
    cases.push(case(
        "an owner beside another owner leaves",
        run(
            &two,
            "owner",
            &update(&two, "owner", &[STATUS, LEFT_AT], |m| {
                m.status = MemberStatus::Left;
                m.left_at = Some(NOW);
            }),
        ),
        ALLOW,
    ));
    cases.push(case(
        "mod marks a member as left",
        run(
            &g,
            "mod",
            &update(&g, "member", &[STATUS, LEFT_AT], |m| {
                m.status = MemberStatus::Left
            }),
        ),
        deny(DenyCode::NoPermission),
    ));
    cases.push(case(
        "member marks itself removed",
        run(
            &g,
            "member",
            &update(&g, "member", &[STATUS, REMOVED_AT], |m| {
                m.status = MemberStatus::Removed
            }),
        ),
        deny(DenyCode::NoPermission),
    ));
    expect_all(cases);
}

#[test]
fn nobody_changes_a_role_at_or_above_their_own() {
    use DenyCode::*;
    let g = group();
    let two_admins = with_member(group(), "mod", |m| m.role = Role::Admin);
    let two_mods = with_member(group(), "member", |m| m.role = Role::Moderator);
    expect_all(vec![
        case(
            "owner makes a member admin",
            run(&g, "owner", &set_role(&g, "member", Role::Admin)),
            ALLOW,
        ),
        case(
            "admin makes a member moderator",
            run(&g, "admin", &set_role(&g, "member", Role::Moderator)),
            ALLOW,
        ),
        case(
            "admin makes a member admin",
            run(&g, "admin", &set_role(&g, "member", Role::Admin)),
            deny(RoleTooHigh),
        ),
        case(
            "admin steps down to member",
            run(&g, "admin", &set_role(&g, "admin", Role::Member)),
            ALLOW,
        ),
        case(
            "admin demotes another admin",
            run(
                &two_admins,
                "admin",
                &set_role(&two_admins, "mod", Role::Member),
            ),
            deny(RoleTooHigh),
        ),
        case(
            "mod removes another moderator",
            run(&two_mods, "mod", &remove(&two_mods, "member")),
            deny(RoleTooHigh),
        ),
        case(
            "mod removes a member",
            run(&g, "mod", &remove(&g, "member")),
            ALLOW,
        ),
        case(
            "member promotes itself",
            run(&g, "member", &set_role(&g, "member", Role::Moderator)),
            deny(RoleTooHigh),
        ),
        case(
            "mod steps down",
            run(&g, "mod", &set_role(&g, "mod", Role::Member)),
            ALLOW,
        ),
        case(
            "readonly grants itself send",
            run(
                &g,
                "readonly",
                &update(&g, "readonly", &[Permission::SendMessages.as_str()], |m| {
                    m.overrides.insert(Permission::SendMessages, true);
                }),
            ),
            deny(RoleTooHigh),
        ),
        case(
            "admin grants a member pin",
            run(
                &g,
                "admin",
                &update(&g, "member", &[Permission::PinMessages.as_str()], |m| {
                    m.overrides.insert(Permission::PinMessages, true);
                }),
            ),
            ALLOW,
        ),
        case(
            "mod grants a member pin",
            run(
                &g,
                "mod",
                &update(&g, "member", &[Permission::PinMessages.as_str()], |m| {
                    m.overrides.insert(Permission::PinMessages, true);
                }),
            ),
            deny(NoPermission),
        ),
        case(
            "mod changes a member's role",
            run(&g, "mod", &set_role(&g, "member", Role::Guest)),
            deny(NoPermission),
        ),
    ]);
}

#[test]
fn the_owner_is_protected() {
    use DenyCode::*;
    let g = group();
    let two_owners = with_member(group(), "admin", |m| m.role = Role::Owner);
    let left_owner = with_status(group(), "owner", MemberStatus::Left);
    expect_all(vec![
        case(
            "admin removes the owner",
            run(&g, "admin", &remove(&g, "owner")),
            deny(OwnerMustTransfer),
        ),
        case(
            "admin bans the owner",
            run(
                &g,
                "admin",
                &update(&g, "owner", &[STATUS, REMOVED_AT], |m| {
                    m.status = MemberStatus::Banned
                }),
            ),
            deny(OwnerMustTransfer),
        ),
        case(
            "another owner removes an owner",
            run(&two_owners, "admin", &remove(&two_owners, "owner")),
            deny(OwnerProtected),
        ),
        case(
            "admin demotes the owner",
            run(&g, "admin", &set_role(&g, "owner", Role::Member)),
            deny(OwnerProtected),
        ),
        case(
            "admin restricts the owner",
            run(
                &g,
                "admin",
                &update(&g, "owner", &[Permission::SendMessages.as_str()], |m| {
                    m.overrides.insert(Permission::SendMessages, false);
                }),
            ),
            deny(OwnerProtected),
        ),
        case(
            "owner steps down",
            run(&g, "owner", &set_role(&g, "owner", Role::Admin)),
            deny(OwnerMustTransfer),
        ),
        case(
            "an owner beside another owner steps down",
            run(
                &two_owners,
                "owner",
                &set_role(&two_owners, "owner", Role::Admin),
            ),
            ALLOW,
        ),
        case(
            "admin re-adds the owner as a guest",
            run(
                &left_owner,
                "admin",
                &add(
                    left_owner.member(&acc("owner")).cloned(),
                    invitee("owner", Role::Guest, "admin"),
                ),
            ),
            deny(OwnerProtected),
        ),
        case(
            "owner sets its nickname",
            run(
                &g,
                "owner",
                &update(&g, "owner", &[NICKNAME], |m| {
                    m.nickname = Some("boss".into())
                }),
            ),
            ALLOW,
        ),
        case(
            "owner removes an admin",
            run(&g, "owner", &remove(&g, "admin")),
            ALLOW,
        ),
    ]);
}

#[test]
fn member_entry_fields_belong_to_their_writers() {
    use DenyCode::*;
    let g = group();
    let left = with_status(group(), "member", MemberStatus::Left);
    let nick = |by: &str, of: &str| {
        run(
            &g,
            by,
            &update(&g, of, &[NICKNAME, COLOR], |m| {
                m.nickname = Some("x".into());
                m.color = Some("#ff0000".into());
            }),
        )
    };
    expect_all(vec![
        case("own nickname and color", nick("member", "member"), ALLOW),
        case(
            "admin sets a member's nickname",
            nick("admin", "member"),
            ALLOW,
        ),
        case(
            "mod sets a member's nickname",
            nick("mod", "member"),
            deny(NoPermission),
        ),
        case(
            "invited_by rewritten",
            run(
                &g,
                "owner",
                &update(&g, "member", &[INVITED_BY], |m| {
                    m.invited_by = Some(acc("admin"))
                }),
            ),
            deny(ImmutableField),
        ),
        case(
            "own joined_at rewritten",
            run(
                &g,
                "member",
                &update(&g, "member", &[JOINED_AT], |m| m.joined_at = Some(0)),
            ),
            deny(ImmutableField),
        ),
        case(
            "own removed_at",
            run(
                &g,
                "member",
                &update(&g, "member", &[REMOVED_AT], |m| m.removed_at = Some(NOW)),
            ),
            deny(ImmutableField),
        ),
        case(
            "own left_at without leaving",
            run(
                &g,
                "member",
                &update(&g, "member", &[LEFT_AT], |m| m.left_at = Some(NOW)),
            ),
            deny(ImmutableField),
        ),
        case(
            "mod writes removed_at without removing",
            run(
                &g,
                "mod",
                &update(&g, "member", &[REMOVED_AT], |m| m.removed_at = Some(NOW)),
            ),
            deny(ImmutableField),
        ),
        case(
            "left member sets its nickname",
            run(
                &left,
                "member",
                &update(&left, "member", &[NICKNAME], |m| {
                    m.nickname = Some("x".into())
                }),
            ),
            deny(MemberInactive),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------
// Info, settings, pins
// ---------------------------------------------------------------------------------------

#[test]
fn info_edits_follow_the_info_edit_policy() {
    use DenyCode::*;
    let admins_only = group();
    let all_members = with_settings(group(), |s| s.info_edit_policy = EditPolicy::AllMembers);
    let info = Effect::SetInfo {
        field: "title".into(),
    };
    let removed = with_status(all_members.clone(), "member", MemberStatus::Removed);
    expect_all(vec![
        case(
            "admins_only: owner",
            run(&admins_only, "owner", &info),
            ALLOW,
        ),
        case(
            "admins_only: admin",
            run(&admins_only, "admin", &info),
            ALLOW,
        ),
        case(
            "admins_only: mod",
            run(&admins_only, "mod", &info),
            deny(NoPermission),
        ),
        case(
            "admins_only: member",
            run(&admins_only, "member", &info),
            deny(NoPermission),
        ),
        case(
            "admins_only: member + change info (docs/POLICY.md)",
            run(
                &with_override(group(), "member", Permission::ChangeInfo, true),
                "member",
                &info,
            ),
            ALLOW,
        ),
        case(
            "all_members: member",
            run(&all_members, "member", &info),
            ALLOW,
        ),
        case("all_members: mod", run(&all_members, "mod", &info), ALLOW),
        case(
            "all_members: guest",
            run(&all_members, "guest", &info),
            deny(NoPermission),
        ),
        case(
            "all_members: readonly",
            run(&all_members, "readonly", &info),
            deny(NoPermission),
        ),
        case(
            "all_members: stranger",
            run(&all_members, "stranger", &info),
            deny(NotMember),
        ),
        case(
            "all_members: removed member",
            run(&removed, "member", &info),
            deny(MemberInactive),
        ),
    ]);
}

#[test]
fn settings_are_for_admins() {
    let g = group();
    let setting = Effect::SetSetting {
        key: "send_policy".into(),
    };
    expect_all(vec![
        case("owner", run(&g, "owner", &setting), ALLOW),
        case("admin", run(&g, "admin", &setting), ALLOW),
        case(
            "mod",
            run(&g, "mod", &setting),
            deny(DenyCode::NoPermission),
        ),
        case(
            "member",
            run(&g, "member", &setting),
            deny(DenyCode::NoPermission),
        ),
        case(
            "member + change info",
            run(
                &with_override(group(), "member", Permission::ChangeInfo, true),
                "member",
                &setting,
            ),
            deny(DenyCode::NoPermission),
        ),
        case(
            "stranger",
            run(&g, "stranger", &setting),
            deny(DenyCode::NotMember),
        ),
    ]);
}

/// A group with `n` pinned messages `p0..`.
fn pinned_group(n: usize) -> Conversation {
    let mut c = group();
    for i in 0..n {
        let id = msg_id(&format!("p{i}"));
        c.pins.insert(
            id.clone(),
            Pin {
                message: id,
                by: acc("mod"),
                at: NOW - 1000,
            },
        );
    }
    c
}

#[test]
fn pins_need_pin_rights_and_room() {
    use DenyCode::*;
    let g = group();
    let full = pinned_group(PINS_MAX);
    let almost = pinned_group(PINS_MAX - 1);
    let pin_new = |by: &str| Effect::Pin {
        message: msg_id("fresh"),
        by: acc(by),
    };
    let unpin = Effect::Unpin {
        message: msg_id("p0"),
    };
    expect_all(vec![
        case("mod pins", run(&g, "mod", &pin("mod")), ALLOW),
        case(
            "member pins",
            run(&g, "member", &pin("member")),
            deny(NoPermission),
        ),
        case(
            "mod pins in another's name",
            run(&g, "mod", &pin("admin")),
            deny(NotOwnKey),
        ),
        case(
            "99 pinned: one more",
            run(&almost, "mod", &pin_new("mod")),
            ALLOW,
        ),
        case(
            "100 pinned: one more",
            run(&full, "mod", &pin_new("mod")),
            deny(PinsFull),
        ),
        case(
            "100 pinned: re-pin a pinned one",
            run(
                &full,
                "mod",
                &Effect::Pin {
                    message: msg_id("p3"),
                    by: acc("mod"),
                },
            ),
            ALLOW,
        ),
        case("mod unpins", run(&full, "mod", &unpin), ALLOW),
        case(
            "member unpins",
            run(&full, "member", &unpin),
            deny(NoPermission),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------

#[test]
fn archive_and_close_are_for_moderators_and_above() {
    use Lifecycle::*;
    let g = group();
    let mut cases = Vec::new();
    for to in [Archived, Closed] {
        for (who, want) in [
            ("owner", ALLOW),
            ("admin", ALLOW),
            ("mod", ALLOW),
            ("member", deny(DenyCode::NoPermission)),
            ("guest", deny(DenyCode::NoPermission)),
        ] {
            cases.push(case(
                format!("{who} -> {}", to.as_str()),
                run(&g, who, &lifecycle(to, who)),
                want,
            ));
        }
    }
    cases.push(case(
        "mod, in another's name",
        run(&g, "mod", &lifecycle(Archived, "owner")),
        deny(DenyCode::NotOwnKey),
    ));
    cases.push(case(
        "stranger",
        run(&g, "stranger", &lifecycle(Archived, "stranger")),
        deny(DenyCode::NotMember),
    ));
    expect_all(cases);
}

#[test]
fn reopening_archived_takes_a_sender_and_closed_takes_staff() {
    use DenyCode::*;
    use Lifecycle::*;
    let archived = in_state(group(), Archived);
    let closed = in_state(group(), Closed);
    let muted = with_override(archived.clone(), "member", Permission::SendMessages, false);
    let reopen = |c: &Conversation, who: &str| run(c, who, &lifecycle(Active, who));
    expect_all(vec![
        case(
            "archived: member reopens",
            reopen(&archived, "member"),
            ALLOW,
        ),
        case("archived: guest reopens", reopen(&archived, "guest"), ALLOW),
        case(
            "archived: readonly reopens",
            reopen(&archived, "readonly"),
            deny(NoPermission),
        ),
        case(
            "archived: muted member reopens",
            reopen(&muted, "member"),
            deny(NoPermission),
        ),
        case(
            "archived: member closes",
            run(&archived, "member", &lifecycle(Closed, "member")),
            deny(NoPermission),
        ),
        case(
            "closed: member reopens",
            reopen(&closed, "member"),
            deny(NoPermission),
        ),
        case("closed: mod reopens", reopen(&closed, "mod"), ALLOW),
        case("closed: owner reopens", reopen(&closed, "owner"), ALLOW),
    ]);
}

#[test]
fn closed_conversations_refuse_non_staff_posts() {
    let closed = in_state(group(), Lifecycle::Closed);
    let archived = in_state(group(), Lifecycle::Archived);
    expect_all(vec![
        case(
            "closed: member",
            run(&closed, "member", &text("member")),
            deny(DenyCode::ConversationClosed),
        ),
        case(
            "closed: guest",
            run(&closed, "guest", &text("guest")),
            deny(DenyCode::ConversationClosed),
        ),
        case("closed: mod", run(&closed, "mod", &text("mod")), ALLOW),
        case(
            "closed: owner",
            run(&closed, "owner", &text("owner")),
            ALLOW,
        ),
        case(
            "archived: member (reopens it)",
            run(&archived, "member", &text("member")),
            ALLOW,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------
// Proposals
// ---------------------------------------------------------------------------------------

#[test]
fn proposal_status_moves_once_from_pending() {
    use ProposalStatus::*;
    let s = support_conv();
    let mut cases = Vec::new();
    for to in [Accepted, Rejected, RescheduleRequested] {
        cases.push(case(
            format!("pending -> {}", to.as_str()),
            run(
                &s,
                "client",
                &answer(proposal("owner", None, Some(Pending)), to),
            ),
            ALLOW,
        ));
        cases.push(case(
            format!("(no status) -> {}", to.as_str()),
            run(&s, "client", &answer(proposal("owner", None, None), to)),
            ALLOW,
        ));
        for from in [Accepted, Rejected, RescheduleRequested] {
            cases.push(case(
                format!("{} -> {}", from.as_str(), to.as_str()),
                run(
                    &s,
                    "client",
                    &answer(proposal("owner", None, Some(from)), to),
                ),
                deny(DenyCode::ProposalTransition),
            ));
        }
    }
    for from in [Pending, Accepted] {
        cases.push(case(
            format!("{} -> pending", from.as_str()),
            run(
                &s,
                "client",
                &answer(proposal("owner", None, Some(from)), Pending),
            ),
            deny(DenyCode::ProposalTransition),
        ));
    }
    cases.push(case(
        "status on a text message",
        run(&s, "client", &answer(stored("owner"), Accepted)),
        deny(DenyCode::ImmutableField),
    ));
    // A deleted proposal's tombstone has no status left to move.
    let mut deleted = proposal("owner", None, None);
    deleted.status = None;
    deleted.deleted_at = Some(NOW - 500);
    deleted.deleted_by = Some(acc("owner"));
    cases.push(case(
        "a deleted proposal",
        run(&s, "client", &answer(deleted, Accepted)),
        deny(DenyCode::MessageDeleted),
    ));
    expect_all(cases);
}

#[test]
fn only_the_counterparty_answers_a_proposal() {
    use ProposalStatus::*;
    let s = support_conv();
    let g = group();
    let from_owner = || proposal("owner", None, None);
    let from_bot = || proposal("bot", None, None);
    let removed_client = with_status(support_conv(), "client", MemberStatus::Removed);
    expect_all(vec![
        case(
            "support: client answers the owner",
            run(&s, "client", &answer(from_owner(), Accepted)),
            ALLOW,
        ),
        case(
            "support: client answers staff",
            run(
                &s,
                "client",
                &answer(proposal("staff", None, None), Rejected),
            ),
            ALLOW,
        ),
        case(
            "support: client answers a service",
            run(&s, "client", &answer(from_bot(), Accepted)),
            ALLOW,
        ),
        case(
            "support: owner answers itself",
            run(&s, "owner", &answer(from_owner(), Accepted)),
            deny(DenyCode::NotCounterparty),
        ),
        case(
            "support: staff answers the owner",
            run(&s, "staff", &answer(from_owner(), Accepted)),
            deny(DenyCode::NotCounterparty),
        ),
        case(
            "support: owner answers a service",
            run(&s, "owner", &answer(from_bot(), Accepted)),
            deny(DenyCode::NotCounterparty),
        ),
        case(
            "support: removed client answers",
            run(&removed_client, "client", &answer(from_owner(), Accepted)),
            deny(DenyCode::MemberInactive),
        ),
        case(
            "group: another member answers",
            run(&g, "member", &answer(from_owner(), Accepted)),
            ALLOW,
        ),
        case(
            "group: the author answers",
            run(&g, "owner", &answer(from_owner(), Accepted)),
            deny(DenyCode::NotCounterparty),
        ),
        case(
            "group: a stranger answers",
            run(&g, "stranger", &answer(from_owner(), Accepted)),
            deny(DenyCode::NotMember),
        ),
    ]);
}

#[test]
fn expired_proposals_cannot_be_answered_by_server_time() {
    let s = support_conv();
    let at = |now: i64, expires: Option<i64>| {
        let cx = Context {
            now_ms: now,
            ..ctx(&s)
        };
        check(
            &cx,
            &user("client"),
            &answer(proposal("owner", expires, None), ProposalStatus::Accepted),
        )
    };
    expect_all(vec![
        case("1 ms before expiry", at(NOW - 1, Some(NOW)), ALLOW),
        case(
            "at expiry",
            at(NOW, Some(NOW)),
            deny(DenyCode::ProposalExpired),
        ),
        case(
            "a day after expiry",
            at(NOW + DAY, Some(NOW)),
            deny(DenyCode::ProposalExpired),
        ),
        case("no expiry, a year later", at(NOW + 365 * DAY, None), ALLOW),
    ]);
}

// ---------------------------------------------------------------------------------------
// Own documents and creation
// ---------------------------------------------------------------------------------------

#[test]
fn profiles_and_private_documents_belong_to_their_account() {
    let none = no_conv();
    let own = |owner: &str| Effect::WriteOwnDoc { owner: acc(owner) };
    expect_all(vec![
        case("own", check(&none, &user("member"), &own("member")), ALLOW),
        case(
            "service, own",
            check(&none, &service("bot"), &own("bot")),
            ALLOW,
        ),
        case(
            "another's",
            check(&none, &user("member"), &own("admin")),
            deny(DenyCode::NotOwner),
        ),
        case(
            "service, another's",
            check(&none, &service("bot"), &own("member")),
            deny(DenyCode::NotOwner),
        ),
    ]);
}

#[test]
fn effects_on_a_conversation_need_it_created() {
    let uncreated = Conversation::uncreated(conv_id("c1"));
    let nothing = Context {
        conv: None,
        ..ctx(&uncreated)
    };
    let effects = [
        text("owner"),
        edit(stored("owner")),
        delete(stored("owner")),
        react(stored("owner"), "owner"),
        answer(proposal("admin", None, None), ProposalStatus::Accepted),
        add(None, invitee("newbie", Role::Member, "owner")),
        Effect::SetInfo {
            field: "title".into(),
        },
        Effect::SetSetting {
            key: "send_policy".into(),
        },
        pin("owner"),
        Effect::Unpin {
            message: msg_id("m1"),
        },
        Effect::MarkRead {
            account: acc("owner"),
        },
        lifecycle(Lifecycle::Archived, "owner"),
    ];
    let mut cases = Vec::new();
    for (i, e) in effects.iter().enumerate() {
        cases.push(case(
            format!("#{i} uncreated"),
            run(&uncreated, "owner", e),
            deny(DenyCode::NotCreated),
        ));
        cases.push(case(
            format!("#{i} no conversation"),
            check(&nothing, &user("owner"), e),
            deny(DenyCode::NotCreated),
        ));
        cases.push(case(
            format!("#{i} created"),
            run(&group(), "owner", e),
            ALLOW,
        ));
    }
    expect_all(cases);
}

#[test]
fn creation_rules() {
    use DenyCode::*;
    let existing = group();
    let fresh = Conversation::uncreated(conv_id("g2"));
    let make = |spec: Conversation| check(&ctx(&fresh), &user("owner"), &create(spec));
    let tweak = |f: &dyn Fn(&mut Conversation)| {
        let mut spec = new_group("g2", "owner");
        spec.members
            .insert(acc("member"), invitee("member", Role::Member, "owner"));
        f(&mut spec);
        make(spec)
    };
    expect_all(vec![
        case("a group with an invitee", tweak(&|_| {}), ALLOW),
        case(
            "a channel",
            make(new_kind("g2", ConvKind::Channel, "owner")),
            ALLOW,
        ),
        case(
            "into no conversation",
            check(
                &no_conv(),
                &user("owner"),
                &create(new_group("g2", "owner")),
            ),
            ALLOW,
        ),
        case(
            "over an existing one",
            check(
                &ctx(&existing),
                &user("owner"),
                &create(new_group("c1", "owner")),
            ),
            deny(AlreadyCreated),
        ),
        case(
            "without meta",
            tweak(&|c| c.meta = None),
            deny(InvalidCreation),
        ),
        case(
            "created_by another",
            tweak(&|c| c.meta.as_mut().unwrap().created_by = Some(acc("member"))),
            deny(InvalidCreation),
        ),
        case(
            "created_by nobody",
            tweak(&|c| c.meta.as_mut().unwrap().created_by = None),
            deny(InvalidCreation),
        ),
        case(
            "creator not owner",
            tweak(&|c| c.members.get_mut(&acc("owner")).unwrap().role = Role::Admin),
            deny(InvalidCreation),
        ),
        case(
            "creator not a member",
            tweak(&|c| {
                c.members.remove(&acc("owner"));
            }),
            deny(InvalidCreation),
        ),
        case(
            "a second owner",
            tweak(&|c| c.members.get_mut(&acc("member")).unwrap().role = Role::Owner),
            deny(RoleTooHigh),
        ),
        case(
            "an invitee invited by another",
            tweak(&|c| c.members.get_mut(&acc("member")).unwrap().invited_by = Some(acc("admin"))),
            deny(InvalidCreation),
        ),
        case(
            "an inactive invitee",
            tweak(&|c| c.members.get_mut(&acc("member")).unwrap().status = MemberStatus::Left),
            deny(InvalidCreation),
        ),
        case(
            "a group with a resource",
            tweak(&|c| c.meta.as_mut().unwrap().resource = support_conv().meta.unwrap().resource),
            deny(InvalidCreation),
        ),
        case(
            "a direct conversation",
            make(new_kind("g2", ConvKind::Direct, "owner")),
            deny(InvalidCreation),
        ),
        case(
            "a support thread",
            make(new_kind("g2", ConvKind::Support, "owner")),
            deny(InvalidCreation),
        ),
        case(
            "a system conversation by a user",
            make(new_kind("g2", ConvKind::System, "owner")),
            deny(ServiceOnly),
        ),
    ]);
}

fn locked() -> Conversation {
    with_settings(group(), |s| s.locked = true)
}

/// A direct conversation in which `who` blocks the other member.
fn blocked_direct(who: &str) -> Conversation {
    with_member(direct(), who, |m| m.blocked = true)
}

/// Locked: nothing new from anyone, owner and services included; deleting
/// messages, settings (unlocking) and membership go on.
#[test]
fn a_locked_conversation_takes_no_new_content_until_unlocked() {
    let c = locked();
    for who in ["owner", "admin", "member"] {
        assert_eq!(
            code(run(&c, who, &text(who))),
            Some(DenyCode::ConversationLocked),
            "{who} posts"
        );
    }
    assert_eq!(
        code(run(&c, "member", &edit(stored("member")))),
        Some(DenyCode::ConversationLocked)
    );
    assert_eq!(
        code(run(&c, "member", &react(stored("admin"), "member"))),
        Some(DenyCode::ConversationLocked)
    );
    let notice = post_kind(MessageKind::System, "svc");
    assert_eq!(
        code(check(&ctx(&c), &Author::service(acc("svc")), &notice)),
        Some(DenyCode::ConversationLocked)
    );
    // A stranger learns nothing about the lock.
    assert_eq!(
        code(run(&c, "stranger", &text("stranger"))),
        Some(DenyCode::NotMember)
    );
    assert_eq!(
        run(
            &c,
            "member",
            &Effect::DeleteMessage(Box::new(stored("member")))
        ),
        Ok(())
    );
    assert_eq!(
        run(
            &c,
            "admin",
            &Effect::SetSetting {
                key: "locked".into()
            }
        ),
        Ok(())
    );
    assert_eq!(
        code(run(
            &c,
            "member",
            &Effect::SetSetting {
                key: "locked".into()
            }
        )),
        Some(DenyCode::NoPermission)
    );
    assert_eq!(run(&c, "owner", &remove(&c, "member")), Ok(()));
    // Threads are new content under the parent.
    assert_eq!(
        code(check(
            &under(&c),
            &user("member"),
            &create(new_thread(&c, "member", 1))
        )),
        Some(DenyCode::ConversationLocked)
    );
    assert_eq!(run(&group(), "member", &text("member")), Ok(()));
}

/// Only the owner deletes; a deleted conversation takes nothing more, from anyone;
/// only its members are told why.
#[test]
fn only_the_owner_deletes_and_a_deleted_conversation_is_final() {
    let g = group();
    for who in ["admin", "mod", "member"] {
        assert_eq!(
            code(run(&g, who, &lifecycle(Lifecycle::Deleted, who))),
            Some(DenyCode::NoPermission),
            "{who}"
        );
    }
    assert_eq!(
        run(&g, "owner", &lifecycle(Lifecycle::Deleted, "owner")),
        Ok(())
    );
    assert_eq!(
        code(run(
            &direct(),
            "member",
            &lifecycle(Lifecycle::Deleted, "member")
        )),
        Some(DenyCode::NoPermission)
    );

    let gone = in_state(group(), Lifecycle::Deleted);
    assert_eq!(
        code(run(&gone, "owner", &lifecycle(Lifecycle::Active, "owner"))),
        Some(DenyCode::ConversationDeleted)
    );
    assert_eq!(
        code(run(&gone, "member", &react(stored("admin"), "member"))),
        Some(DenyCode::ConversationDeleted)
    );
    assert_eq!(
        code(run(
            &gone,
            "owner",
            &Effect::SetSetting {
                key: "locked".into()
            }
        )),
        Some(DenyCode::ConversationDeleted)
    );
    assert_eq!(
        code(run(
            &gone,
            "owner",
            &add(None, invitee("late", Role::Member, "owner"))
        )),
        Some(DenyCode::ConversationDeleted)
    );
    assert_eq!(
        code(run(&gone, "stranger", &text("stranger"))),
        Some(DenyCode::NotMember)
    );
    assert_eq!(
        code(check(
            &under(&gone),
            &user("member"),
            &create(new_thread(&gone, "member", 1))
        )),
        Some(DenyCode::ConversationDeleted)
    );
}

/// Blocked: either member of a direct conversation blocks; then neither posts,
/// edits, reacts or answers there; only the blocker clears it; groups have no blocks.
#[test]
fn a_block_in_a_direct_conversation_stops_both_sides_until_cleared() {
    let d = direct();
    let block =
        |c: &Conversation, who: &str, on: bool| update(c, who, &[BLOCKED], |m| m.blocked = on);
    assert_eq!(run(&d, "member", &block(&d, "member", true)), Ok(()));
    assert_eq!(
        code(run(&d, "member", &block(&d, "peer", true))),
        Some(DenyCode::NotOwnKey)
    );

    let b = blocked_direct("member");
    for who in ["member", "peer"] {
        assert_eq!(
            code(run(&b, who, &text(who))),
            Some(DenyCode::Blocked),
            "{who} posts"
        );
        assert_eq!(
            code(run(&b, who, &edit(stored(who)))),
            Some(DenyCode::Blocked),
            "{who} edits"
        );
        assert_eq!(
            code(run(&b, who, &react(stored("member"), who))),
            Some(DenyCode::Blocked),
            "{who} reacts"
        );
    }
    assert_eq!(
        run(&b, "peer", &Effect::DeleteMessage(Box::new(stored("peer")))),
        Ok(())
    );
    assert_eq!(run(&b, "member", &block(&b, "member", false)), Ok(()));
    let g = group();
    assert_eq!(
        code(run(&g, "owner", &block(&g, "member", true))),
        Some(DenyCode::NotOwnKey)
    );
}

fn code(d: Decision) -> Option<DenyCode> {
    d.err().map(|d| d.code)
}

#[test]
fn threads_are_open_only_to_active_members_of_the_parent() {
    use DenyCode::*;
    let parent = group();
    let thread = thread_of(&parent, 1);
    let standing = |s: Option<Standing>| Context {
        parent_standing: s,
        ..ctx(&thread)
    };
    let removed = standing(Some(Standing::Out(Some(MemberStatus::Removed))));
    let banned = standing(Some(Standing::Out(Some(MemberStatus::Banned))));
    let left = standing(Some(Standing::Out(Some(MemberStatus::Left))));
    let never = standing(Some(Standing::Out(None)));
    let active = standing(Some(Standing::Active));
    let unknown = standing(None);
    let me = |status| {
        let before = thread.member(&acc("guest")).unwrap().clone();
        let mut after = before.clone();
        after.status = status;
        Effect::UpdateMember {
            before,
            after,
            fields: vec![STATUS.into()],
        }
    };
    let mark = Effect::MarkRead {
        account: acc("guest"),
    };
    expect_all(vec![
        case(
            "active in the parent posts",
            check(&active, &user("guest"), &text("guest")),
            ALLOW,
        ),
        case(
            "not known: the acceptor asks",
            check(&unknown, &user("guest"), &text("guest")),
            ALLOW,
        ),
        case(
            "removed from the parent posts",
            check(&removed, &user("guest"), &text("guest")),
            deny(NotParentMember),
        ),
        case(
            "banned from the parent posts",
            check(&banned, &user("guest"), &text("guest")),
            deny(NotParentMember),
        ),
        case(
            "left the parent posts",
            check(&left, &user("guest"), &text("guest")),
            deny(NotParentMember),
        ),
        case(
            "never in the parent posts",
            check(&never, &user("guest"), &text("guest")),
            deny(NotParentMember),
        ),
        case(
            "removed from the parent marks read",
            check(&removed, &user("guest"), &mark),
            deny(NotParentMember),
        ),
        case(
            "removed from the parent leaves the thread",
            check(&removed, &user("guest"), &me(MemberStatus::Left)),
            ALLOW,
        ),
        case(
            "a service account is no member anywhere",
            check(
                &never,
                &service("bot"),
                &Effect::PostMessage(Box::new(new_msg(MessageKind::System, "bot", NOW))),
            ),
            ALLOW,
        ),
    ]);
    // Outside threads the standing says nothing.
    let g = group();
    let plain = Context {
        parent_standing: Some(Standing::Out(None)),
        ..ctx(&g)
    };
    expect_all(vec![case(
        "a group ignores it",
        check(&plain, &user("member"), &text("member")),
        ALLOW,
    )]);
}

#[test]
fn threads_hang_on_a_live_message_of_the_parent() {
    let parent = group();
    let on = |found: Option<ParentMessage>| {
        check(
            &Context {
                parent_message: found,
                ..under(&parent)
            },
            &user("member"),
            &create(new_thread(&parent, "member", 1)),
        )
    };
    expect_all(vec![
        case("present", on(Some(ParentMessage::Present)), ALLOW),
        case("not looked up (a client)", on(None), ALLOW),
        case(
            "missing",
            on(Some(ParentMessage::Missing)),
            deny(DenyCode::ParentMessageMissing),
        ),
        case(
            "deleted",
            on(Some(ParentMessage::Deleted)),
            deny(DenyCode::ParentMessageMissing),
        ),
    ]);
}

#[test]
fn only_the_owner_transfers_ownership_to_an_active_member() {
    use DenyCode::*;
    let g = group();
    let status = |st: MemberStatus| with_status(group(), "member", st);
    let (left, removed, banned, requested) = (
        status(MemberStatus::Left),
        status(MemberStatus::Removed),
        status(MemberStatus::Banned),
        status(MemberStatus::Requested),
    );
    let restricted = with_override(group(), "member", Permission::SendMessages, false);
    let as_member =
        |role: Role| move |from: &mut EntryWrite, _: &mut EntryWrite| from.after.role = role;
    let locked = with_settings(group(), |s| s.locked = true);
    let dm = direct();
    let dm_transfer = transfer(&dm, "member", "peer");
    expect_all(vec![
        case(
            "owner to a member",
            run(&g, "owner", &transfer(&g, "owner", "member")),
            ALLOW,
        ),
        case(
            "owner to a subscriber (any active role)",
            run(&g, "owner", &transfer(&g, "owner", "subscriber")),
            ALLOW,
        ),
        case(
            "owner to a restricted member: its overrides go",
            run(
                &restricted,
                "owner",
                &transfer(&restricted, "owner", "member"),
            ),
            ALLOW,
        ),
        case(
            "owner to a restricted member, keeping the override",
            run(
                &restricted,
                "owner",
                &transfer_with(&restricted, "owner", "member", |_, to| {
                    to.after.overrides.insert(Permission::SendMessages, false);
                    to.fields.retain(|f| f == ROLE);
                }),
            ),
            deny(NoPermission),
        ),
        case(
            "owner of a locked conversation (membership goes on)",
            run(&locked, "owner", &transfer(&locked, "owner", "admin")),
            ALLOW,
        ),
        case(
            "admin hands the owner's role on",
            run(&g, "admin", &transfer(&g, "owner", "admin")),
            deny(OwnerOnly),
        ),
        case(
            "member takes ownership",
            run(&g, "member", &transfer(&g, "owner", "member")),
            deny(OwnerOnly),
        ),
        case(
            "a member of a direct conversation (no owner there)",
            run(&dm, "member", &dm_transfer),
            deny(OwnerOnly),
        ),
        case(
            "stranger",
            run(&g, "stranger", &transfer(&g, "owner", "member")),
            deny(NotMember),
        ),
        case(
            "to itself",
            run(&g, "owner", &transfer(&g, "owner", "owner")),
            deny(NoPermission),
        ),
        case(
            "to an account without an entry",
            run(&g, "owner", &transfer(&g, "owner", "stranger")),
            deny(TargetNotMember),
        ),
        case(
            "to a join request",
            run(
                &requested,
                "owner",
                &transfer(&requested, "owner", "member"),
            ),
            deny(TargetNotMember),
        ),
        case(
            "to a member who left",
            run(&left, "owner", &transfer(&left, "owner", "member")),
            deny(TargetInactive),
        ),
        case(
            "to a removed member",
            run(&removed, "owner", &transfer(&removed, "owner", "member")),
            deny(TargetInactive),
        ),
        case(
            "to a banned member",
            run(&banned, "owner", &transfer(&banned, "owner", "member")),
            deny(TargetInactive),
        ),
        case(
            "to a banned member, reinstating it in the same change",
            run(
                &banned,
                "owner",
                &transfer_with(&banned, "owner", "member", |_, to| {
                    to.after.status = MemberStatus::Active;
                    to.fields.push(STATUS.to_owned());
                }),
            ),
            deny(TargetInactive),
        ),
        case(
            "the old owner becomes a member instead of an admin",
            run(
                &g,
                "owner",
                &transfer_with(&g, "owner", "member", as_member(Role::Member)),
            ),
            deny(NoPermission),
        ),
        case(
            "the old owner leaves in the same change",
            run(
                &g,
                "owner",
                &transfer_with(&g, "owner", "member", |from, _| {
                    from.after.status = MemberStatus::Left;
                    from.fields.extend([STATUS.to_owned(), LEFT_AT.to_owned()]);
                }),
            ),
            deny(NoPermission),
        ),
        case(
            "the new owner's nickname written with it",
            run(
                &g,
                "owner",
                &transfer_with(&g, "owner", "member", |_, to| {
                    to.after.nickname = Some("boss".into());
                    to.fields.push(NICKNAME.to_owned());
                }),
            ),
            deny(NoPermission),
        ),
        case(
            "one owner hands another owner's role on",
            run(
                &with_member(group(), "admin", |m| m.role = Role::Owner),
                "owner",
                &transfer(
                    &with_member(group(), "admin", |m| m.role = Role::Owner),
                    "admin",
                    "member",
                ),
            ),
            deny(OwnerProtected),
        ),
    ]);
}

#[test]
fn a_transfer_moves_the_policy_version() {
    assert!(transfer(&group(), "owner", "member").moves_policy());
}
