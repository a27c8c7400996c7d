//! Temporary roles and overrides (docs/POLICY.md, "Temporary roles and overrides") against
//! `policy::check` directly, on a fake clock: the context's server time is moved around the
//! expiry, and the rule must turn exactly at it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::doc::schema::keys::{REMOVED_AT, ROLE, ROLE_AFTER, ROLE_UNTIL, STATUS};
use confab_core::model::conversation::*;
use confab_core::model::message::NewMessage;
use confab_core::policy::{check, Author, Context, DenyCode, Effect, EntryWrite, Transfer};
use confab_testkit::hub::NOW;
use confab_testkit::ids::{acc, conv_id, msg_id};

/// When the temporary grants of these tests end.
const T: i64 = NOW + 3_600_000;

/// A group: owner, admin, bob (moderator until `T`, then member), carol (member), mod (a
/// lasting moderator).
fn group() -> Conversation {
    let mut c = Conversation::uncreated(conv_id("c1"));
    c.meta = Some(Meta {
        kind: ConvKind::Group,
        created_by: Some(acc("owner")),
        created_at: NOW - 1,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        resource: None,
        encrypted: false,
    });
    c.settings = Settings::defaults_for(ConvKind::Group);
    for (name, role) in [
        ("owner", Role::Owner),
        ("admin", Role::Admin),
        ("bob", Role::Member),
        ("carol", Role::Member),
        ("mod", Role::Moderator),
    ] {
        c.members.insert(acc(name), Member::new(acc(name), role));
    }
    let bob = c.members.get_mut(&acc("bob")).unwrap();
    *bob = bob.granted(Role::Moderator, Some(T), NOW);
    c
}

fn at(c: &Conversation, now: i64) -> Context<'_> {
    Context {
        conv: Some(c),
        parent: None,
        now_ms: now,
        last_post_ms: None,
        bucket: Some(c.period_of(NOW).into()),
        parent_standing: None,
        parent_message: None,
    }
}

fn run(c: &Conversation, now: i64, author: &str, effect: &Effect) -> Option<DenyCode> {
    check(&at(c, now), &Author::user(acc(author)), effect)
        .err()
        .map(|d| d.code)
}

/// `name`'s entry in `c` changed by `f`, `fields` written.
fn update(c: &Conversation, name: &str, fields: &[&str], f: impl FnOnce(&mut Member)) -> Effect {
    let before = c.member(&acc(name)).unwrap().clone();
    let mut after = before.clone();
    f(&mut after);
    Effect::UpdateMember {
        before,
        after,
        fields: fields.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// `name` given `role` at server time `now` (for good, or until `until`), as clients write it.
fn grant(c: &Conversation, name: &str, role: Role, until: Option<i64>) -> Effect {
    update(c, name, &[ROLE, ROLE_UNTIL, ROLE_AFTER], |m| {
        *m = m.granted(role, until, NOW)
    })
}

fn pin() -> Effect {
    Effect::Pin {
        message: msg_id("m1"),
        by: acc("bob"),
    }
}

#[test]
fn a_temporary_moderator_moderates_until_its_time_and_not_after() {
    let c = group();
    let remove_carol = update(&c, "carol", &[STATUS, REMOVED_AT], |m| {
        m.status = MemberStatus::Removed;
        m.removed_at = Some(NOW);
    });
    let archive = Effect::SetLifecycle {
        to: Lifecycle::Archived,
        by: acc("bob"),
    };
    for now in [NOW, T - 1] {
        assert_eq!(run(&c, now, "bob", &pin()), None, "pin at {now}");
        assert_eq!(run(&c, now, "bob", &remove_carol), None, "remove at {now}");
        assert_eq!(run(&c, now, "bob", &archive), None, "archive at {now}");
    }
    // Exactly at its time the role is the member it went back to, everywhere.
    for now in [T, T + 1] {
        assert_eq!(run(&c, now, "bob", &pin()), Some(DenyCode::NoPermission));
        assert_eq!(
            run(&c, now, "bob", &remove_carol),
            Some(DenyCode::RoleTooHigh)
        );
        assert_eq!(run(&c, now, "bob", &archive), Some(DenyCode::NoPermission));
    }
    // Still a member: it posts.
    let post = Effect::PostMessage(Box::new(NewMessage::text(
        msg_id("m2"),
        acc("bob"),
        "hi",
        NOW,
    )));
    assert_eq!(run(&c, T, "bob", &post), None);
}

#[test]
fn a_temporary_override_lapses_exactly_at_its_time() {
    let mut c = group();
    let carol = c.members.get_mut(&acc("carol")).unwrap();
    carol.overrides.insert(Permission::SendMessages, false);
    carol.overrides_until.insert(Permission::SendMessages, T);
    carol.overrides.insert(Permission::PinMessages, true);
    carol.overrides_until.insert(Permission::PinMessages, T);
    let post = Effect::PostMessage(Box::new(NewMessage::text(
        msg_id("m2"),
        acc("carol"),
        "hi",
        NOW,
    )));
    let pin = Effect::Pin {
        message: msg_id("m1"),
        by: acc("carol"),
    };
    assert_eq!(
        run(&c, T - 1, "carol", &post),
        Some(DenyCode::NoPermission),
        "muted"
    );
    assert_eq!(run(&c, T - 1, "carol", &pin), None, "may pin");
    assert_eq!(run(&c, T, "carol", &post), None, "the mute lapsed");
    assert_eq!(
        run(&c, T, "carol", &pin),
        Some(DenyCode::NoPermission),
        "the grant lapsed"
    );
}

#[test]
fn who_grants_a_role_grants_it_for_a_while() {
    let c = group();
    let cases = [
        ("admin", "carol", Role::Moderator, None),
        ("owner", "carol", Role::Admin, None),
        (
            "mod",
            "carol",
            Role::Moderator,
            Some(DenyCode::NoPermission),
        ),
        (
            "carol",
            "carol",
            Role::Moderator,
            Some(DenyCode::RoleTooHigh),
        ),
        ("admin", "carol", Role::Admin, Some(DenyCode::RoleTooHigh)),
        (
            "admin",
            "owner",
            Role::Moderator,
            Some(DenyCode::OwnerProtected),
        ),
    ];
    for (by, to, role, want) in cases {
        let effect = grant(&c, to, role, Some(T));
        assert_eq!(
            run(&c, NOW, by, &effect),
            want,
            "{by} makes {to} {role:?} until T"
        );
    }
    // The role it lapses to is granted as well: an admin does not leave an admin behind.
    let back_to_admin = update(&c, "carol", &[ROLE, ROLE_UNTIL, ROLE_AFTER], |m| {
        m.role = Role::Guest;
        m.role_until = Some(T);
        m.role_after = Some(Role::Admin);
    });
    assert_eq!(
        run(&c, NOW, "admin", &back_to_admin),
        Some(DenyCode::RoleTooHigh)
    );
    assert_eq!(run(&c, NOW, "owner", &back_to_admin), None);
    // Extending bob's temporary role is a role change: admins only (a moderator does not
    // change a moderator at all, and, once bob's role lapsed, changes no role).
    let extend = update(&c, "bob", &[ROLE_UNTIL], |m| m.role_until = Some(T + 1));
    assert_eq!(run(&c, NOW, "admin", &extend), None);
    assert_eq!(run(&c, NOW, "mod", &extend), Some(DenyCode::RoleTooHigh));
    assert_eq!(run(&c, T, "mod", &extend), Some(DenyCode::NoPermission));
}

#[test]
fn nobody_extends_or_keeps_their_own_temporary_role() {
    let c = group();
    let extend = update(&c, "bob", &[ROLE_UNTIL], |m| m.role_until = Some(T + 1));
    assert_eq!(run(&c, NOW, "bob", &extend), Some(DenyCode::RoleTooHigh));
    let keep = grant(&c, "bob", Role::Moderator, None);
    assert_eq!(run(&c, NOW, "bob", &keep), Some(DenyCode::RoleTooHigh));
    // Stepping down early, for good, is fine; so is tidying a lapsed role away.
    let down = grant(&c, "bob", Role::Member, None);
    assert_eq!(run(&c, NOW, "bob", &down), None);
    assert_eq!(run(&c, T, "bob", &down), None);
    let below_the_lapse = grant(&c, "bob", Role::Guest, None);
    assert_eq!(run(&c, NOW, "bob", &below_the_lapse), None);
    // A lasting member does not make itself temporarily anything.
    let mine = grant(&c, "carol", Role::Guest, Some(T));
    assert_eq!(run(&c, NOW, "carol", &mine), Some(DenyCode::RoleTooHigh));
}

#[test]
fn an_override_expiry_is_an_override_admins_set() {
    let c = group();
    let mute = update(
        &c,
        "carol",
        &["can_send_messages", "can_send_messages_until"],
        |m| {
            m.overrides.insert(Permission::SendMessages, false);
            m.overrides_until.insert(Permission::SendMessages, T);
        },
    );
    assert_eq!(run(&c, NOW, "admin", &mute), None);
    assert_eq!(run(&c, NOW, "mod", &mute), Some(DenyCode::NoPermission));
    let mut muted = c.clone();
    let carol = muted.members.get_mut(&acc("carol")).unwrap();
    carol.overrides.insert(Permission::SendMessages, false);
    carol.overrides_until.insert(Permission::SendMessages, T);
    let shorten = update(&muted, "carol", &["can_send_messages_until"], |m| {
        m.overrides_until.insert(Permission::SendMessages, NOW);
    });
    assert_eq!(
        run(&muted, NOW, "carol", &shorten),
        Some(DenyCode::RoleTooHigh)
    );
    assert_eq!(run(&muted, NOW, "admin", &shorten), None);
}

#[test]
fn a_lapsed_role_ranks_as_the_role_it_lapsed_to() {
    let mut c = group();
    let bob = c.members.get_mut(&acc("bob")).unwrap();
    *bob = Member::new(acc("bob"), Role::Member).granted(Role::Admin, Some(T), NOW);
    let remove_bob = update(&c, "bob", &[STATUS, REMOVED_AT], |m| {
        m.status = MemberStatus::Removed;
        m.removed_at = Some(NOW);
    });
    assert_eq!(
        run(&c, T - 1, "mod", &remove_bob),
        Some(DenyCode::RoleTooHigh)
    );
    assert_eq!(run(&c, T, "mod", &remove_bob), None);
}

#[test]
fn adds_and_joins_grant_temporary_roles_like_lasting_ones() {
    let c = group();
    let new = |role: Role, after: Option<Role>| {
        let mut m = Member::new(acc("dave"), role);
        m.invited_by = Some(acc("admin"));
        m.role_until = after.map(|_| T);
        m.role_after = after;
        Effect::AddMember {
            before: None,
            after: m,
        }
    };
    assert_eq!(
        run(&c, NOW, "admin", &new(Role::Moderator, Some(Role::Member))),
        None
    );
    assert_eq!(
        run(&c, NOW, "admin", &new(Role::Member, Some(Role::Admin))),
        Some(DenyCode::RoleTooHigh)
    );
    // Joining by oneself gives the join role for good.
    let mut open = c.clone();
    open.settings.join_policy = JoinPolicy::Open;
    let mut me = Member::new(acc("erin"), Role::Member);
    me.role_until = Some(T);
    me.role_after = Some(Role::Member);
    let join = Effect::AddMember {
        before: None,
        after: me.clone(),
    };
    assert_eq!(run(&open, NOW, "erin", &join), Some(DenyCode::RoleTooHigh));
    me.role_until = None;
    me.role_after = None;
    let join = Effect::AddMember {
        before: None,
        after: me,
    };
    assert_eq!(run(&open, NOW, "erin", &join), None);
}

#[test]
fn ownership_goes_for_good() {
    let c = group();
    let entry = |name: &str, f: &dyn Fn(&mut Member), fields: &[&str]| {
        let before = c.member(&acc(name)).unwrap().clone();
        let mut after = before.clone();
        f(&mut after);
        EntryWrite {
            before: Some(before),
            after,
            fields: fields.iter().map(|s| (*s).to_owned()).collect(),
        }
    };
    let from = entry("owner", &|m| m.role = Role::Admin, &[ROLE]);
    let keeping = entry("bob", &|m| m.role = Role::Owner, &[ROLE]);
    let effect = Effect::TransferOwnership(Box::new(Transfer {
        from: from.clone(),
        to: keeping,
    }));
    assert_eq!(run(&c, NOW, "owner", &effect), Some(DenyCode::NoPermission));
    let dropping = entry(
        "bob",
        &|m| {
            m.role = Role::Owner;
            m.role_until = None;
            m.role_after = None;
        },
        &[ROLE, ROLE_UNTIL, ROLE_AFTER],
    );
    let effect = Effect::TransferOwnership(Box::new(Transfer { from, to: dropping }));
    assert_eq!(run(&c, NOW, "owner", &effect), None);
}

#[test]
fn a_conversation_view_at_a_time_shows_lapsed_roles_lapsed() {
    let c = group();
    assert_eq!(c.next_lapse(NOW), Some(T));
    assert_eq!(
        c.clone().at(T - 1).member(&acc("bob")).unwrap().role,
        Role::Moderator
    );
    let later = c.at(T);
    let bob = later.member(&acc("bob")).unwrap();
    assert_eq!(
        (bob.role, bob.role_until, bob.role_after),
        (Role::Member, None, None)
    );
    assert_eq!(later.next_lapse(T), None);
}

#[test]
fn writing_down_a_lapse_is_anyones_once_it_lapsed_and_nothing_more() {
    let mut c = group();
    let carol = c.members.get_mut(&acc("carol")).unwrap();
    carol.overrides.insert(Permission::PinMessages, true);
    carol.overrides_until.insert(Permission::PinMessages, T);
    carol.overrides.insert(Permission::SendMessages, false);
    carol
        .overrides_until
        .insert(Permission::SendMessages, T + 10);
    let lapse_bob = update(&c, "bob", &[ROLE, ROLE_UNTIL, ROLE_AFTER], |m| {
        *m = m.at(T).into_owned()
    });
    let Effect::UpdateMember { after, .. } = &lapse_bob else {
        unreachable!()
    };
    assert_eq!((after.role, after.role_until), (Role::Member, None));
    // Before its time it is a demotion like any other: carol, a member, may not.
    assert_eq!(
        run(&c, T - 1, "carol", &lapse_bob),
        Some(DenyCode::RoleTooHigh)
    );
    // From its time on anyone writes it down, bob himself and a service too.
    for who in ["carol", "bob", "mod"] {
        assert_eq!(run(&c, T, who, &lapse_bob), None, "{who}");
    }
    let service = Author::service(acc("confab-lapses"));
    assert!(check(&at(&c, T), &service, &lapse_bob).is_ok());
    // Writing down a lapse and anything else is judged as the whole change.
    let lapse_and_promote = update(&c, "bob", &[ROLE, ROLE_UNTIL, ROLE_AFTER], |m| {
        *m = m.at(T).into_owned();
        m.role = Role::Admin;
    });
    assert_eq!(
        run(&c, T, "carol", &lapse_and_promote),
        Some(DenyCode::RoleTooHigh)
    );
    // Overrides: the lapsed one goes; one still in force is not anyone's to drop.
    let lapse_pin = update(&c, "carol", &[], |m| {
        m.overrides.remove(&Permission::PinMessages);
        m.overrides_until.remove(&Permission::PinMessages);
    });
    assert_eq!(run(&c, T, "bob", &lapse_pin), None);
    let drop_mute = update(&c, "carol", &[], |m| {
        m.overrides.remove(&Permission::SendMessages);
        m.overrides_until.remove(&Permission::SendMessages);
    });
    assert_eq!(run(&c, T, "bob", &drop_mute), Some(DenyCode::RoleTooHigh));
    assert_eq!(run(&c, T + 10, "bob", &drop_mute), None);
}
