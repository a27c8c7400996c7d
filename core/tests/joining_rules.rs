//! Joining (docs/POLICY.md, "Joining") against `policy::check` and `policy::joining`
//! directly: requests, answers under `add_members_policy`, who may make invite links.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::ids::ConvId;
use confab_core::model::conversation::*;
use confab_core::model::joining::JoinRoute;
use confab_core::policy::joining::{join_route, may_add, may_invite, may_review};
use confab_core::policy::{check, Author, Context, Decision, Effect};
use confab_testkit::hub::NOW;
use confab_testkit::ids::{acc, conv_id};

fn group(id: &str, kind: ConvKind, f: impl FnOnce(&mut Settings)) -> Conversation {
    let mut c = Conversation::uncreated(conv_id(id));
    c.meta = Some(Meta {
        kind,
        created_by: Some(acc("owner")),
        created_at: NOW - 1000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        resource: None,
        encrypted: false,
    });
    c.settings = Settings::defaults_for(kind);
    f(&mut c.settings);
    for (name, role) in [
        ("owner", Role::Owner),
        ("admin", Role::Admin),
        ("mod", Role::Moderator),
        ("member", Role::Member),
    ] {
        c.members.insert(acc(name), Member::new(acc(name), role));
    }
    c
}

fn reviewed(kind: ConvKind) -> Conversation {
    group("r1", kind, |s| {
        s.join_policy = JoinPolicy::Open;
        s.join_approval_required = true;
    })
}

fn run(c: &Conversation, author: &str, effect: &Effect) -> Decision {
    let ctx = Context {
        conv: Some(c),
        parent: None,
        now_ms: NOW,
        last_post_ms: None,
        bucket: None,
        parent_standing: None,
        parent_message: None,
    };
    check(&ctx, &Author::user(acc(author)), effect)
}

fn requested(name: &str, role: Role) -> Member {
    let mut m = Member::new(acc(name), role);
    m.status = MemberStatus::Requested;
    m
}

fn request(name: &str) -> Effect {
    Effect::AddMember {
        before: None,
        after: requested(name, Role::Member),
    }
}

fn with_request(mut c: Conversation, name: &str) -> Conversation {
    let role = confab_core::policy::join_role(c.kind().unwrap());
    c.members.insert(acc(name), requested(name, role));
    c
}

fn approve(c: &Conversation, name: &str, by: &str, role: Role) -> Effect {
    let mut after = Member::new(acc(name), role);
    after.invited_by = Some(acc(by));
    after.joined_at = Some(NOW);
    Effect::AddMember {
        before: c.member(&acc(name)).cloned(),
        after,
    }
}

fn set_status(c: &Conversation, name: &str, to: MemberStatus, field: &str) -> Effect {
    let before = c.member(&acc(name)).cloned().unwrap();
    let mut after = before.clone();
    after.status = to;
    Effect::UpdateMember {
        before,
        after,
        fields: vec!["status".into(), field.into()],
    }
}

fn code(d: Decision) -> Option<&'static str> {
    d.err().map(|d| d.code.as_str())
}

#[test]
fn requests_need_approval_and_a_policy_that_takes_them() {
    let invite_only = group("g1", ConvKind::Group, |s| s.join_approval_required = true);
    let link = group("g2", ConvKind::Group, |s| {
        s.join_policy = JoinPolicy::Link;
        s.join_approval_required = true;
    });
    let open_free = group("g3", ConvKind::Group, |s| s.join_policy = JoinPolicy::Open);
    let open = reviewed(ConvKind::Group);
    assert_eq!(code(run(&open, "carol", &request("carol"))), None);
    assert_eq!(code(run(&link, "carol", &request("carol"))), None);
    assert_eq!(
        code(run(&invite_only, "carol", &request("carol"))),
        Some("join_not_allowed")
    );
    // Where nobody reviews, one joins instead of asking.
    assert_eq!(
        code(run(&open_free, "carol", &request("carol"))),
        Some("join_not_allowed")
    );
    assert_eq!(
        code(run(&open, "carol", &request("erin"))),
        Some("not_own_key")
    );
    // The join role only, no inviter.
    let high = Effect::AddMember {
        before: None,
        after: requested("carol", Role::Admin),
    };
    assert_eq!(code(run(&open, "carol", &high)), Some("role_too_high"));
    let mut invited = requested("carol", Role::Member);
    invited.invited_by = Some(acc("owner"));
    let invited = Effect::AddMember {
        before: None,
        after: invited,
    };
    assert_eq!(code(run(&open, "carol", &invited)), Some("not_own_key"));
    // Direct conversations and threads take none.
    let mut direct = open.clone();
    direct.meta.as_mut().unwrap().kind = ConvKind::Direct;
    assert!(run(&direct, "carol", &request("carol")).is_err());
    // Channels ask for the subscriber role.
    let channel = reviewed(ConvKind::Channel);
    let sub = Effect::AddMember {
        before: None,
        after: requested("carol", Role::Subscriber),
    };
    assert_eq!(code(run(&channel, "carol", &sub)), None);
    assert_eq!(
        code(run(&channel, "carol", &request("carol"))),
        Some("role_too_high")
    );
}

#[test]
fn a_requester_is_no_member_until_approved() {
    let c = with_request(reviewed(ConvKind::Group), "carol");
    // Asking twice, joining directly: refused.
    let twice = Effect::AddMember {
        before: c.member(&acc("carol")).cloned(),
        after: requested("carol", Role::Member),
    };
    assert_eq!(code(run(&c, "carol", &twice)), Some("join_not_allowed"));
    assert_eq!(
        code(run(
            &c,
            "carol",
            &approve(&c, "carol", "carol", Role::Member)
        )),
        Some("approval_required")
    );
    // Withdrawing is leaving; nothing else is its to write.
    assert_eq!(
        code(run(
            &c,
            "carol",
            &set_status(&c, "carol", MemberStatus::Left, "left_at")
        )),
        None
    );
    let mut nick = c.member(&acc("carol")).cloned().unwrap();
    nick.nickname = Some("c".into());
    let nick = Effect::UpdateMember {
        before: c.member(&acc("carol")).cloned().unwrap(),
        after: nick,
        fields: vec!["nickname".into()],
    };
    assert_eq!(code(run(&c, "carol", &nick)), Some("member_inactive"));
    assert!(c.active_member(&acc("carol")).is_none());
    assert_eq!(c.active_count(), 4);
}

#[test]
fn answering_needs_the_right_to_add_and_the_add_policy() {
    let c = with_request(reviewed(ConvKind::Group), "carol");
    // Approving is adding: the approver grants at most its own role, its own only up to
    // member (docs/POLICY.md, "Members").
    assert_eq!(
        code(run(&c, "mod", &approve(&c, "carol", "mod", Role::Member))),
        None
    );
    assert_eq!(
        code(run(
            &c,
            "member",
            &approve(&c, "carol", "member", Role::Member)
        )),
        None
    );
    assert_eq!(
        code(run(
            &c,
            "member",
            &approve(&c, "carol", "member", Role::Moderator)
        )),
        Some("role_too_high")
    );
    assert_eq!(
        code(run(
            &c,
            "mod",
            &approve(&c, "carol", "mod", Role::Moderator)
        )),
        Some("role_too_high")
    );
    assert_eq!(
        code(run(
            &c,
            "member",
            &approve(&c, "carol", "member", Role::Guest)
        )),
        None
    );
    // Declining is removing a request: the right to add, not to remove, decides.
    let decline = set_status(&c, "carol", MemberStatus::Removed, "removed_at");
    assert_eq!(code(run(&c, "mod", &decline)), None);
    let no_add = {
        let mut c = c.clone();
        c.members
            .get_mut(&acc("mod"))
            .unwrap()
            .overrides
            .insert(Permission::AddMembers, false);
        c
    };
    assert_eq!(code(run(&no_add, "mod", &decline)), Some("no_permission"));
    // Admins only: members and moderators no longer add, unless an override says so.
    let admins = with_request(
        group("g4", ConvKind::Group, |s| {
            s.join_policy = JoinPolicy::Open;
            s.join_approval_required = true;
            s.add_members_policy = EditPolicy::AdminsOnly;
        }),
        "carol",
    );
    assert_eq!(
        code(run(
            &admins,
            "member",
            &approve(&admins, "carol", "member", Role::Guest)
        )),
        Some("no_permission")
    );
    assert_eq!(
        code(run(
            &admins,
            "admin",
            &approve(&admins, "carol", "admin", Role::Member)
        )),
        None
    );
    let mut trusted = admins.clone();
    trusted
        .members
        .get_mut(&acc("member"))
        .unwrap()
        .overrides
        .insert(Permission::AddMembers, true);
    assert_eq!(
        code(run(
            &trusted,
            "member",
            &approve(&trusted, "carol", "member", Role::Guest)
        )),
        None
    );
    let member = |c: &Conversation, n: &str| c.member(&acc(n)).cloned().unwrap();
    assert!(may_add(&admins, &member(&admins, "mod")).is_err());
    assert!(may_add(&trusted, &member(&trusted, "member")).is_ok());
    assert!(may_review(0, &admins, &Author::user(acc("admin"))).is_ok());
    assert!(may_review(0, &admins, &Author::user(acc("carol"))).is_err());
    // A declined account cannot ask again by itself.
    let mut declined = admins.clone();
    declined.members.get_mut(&acc("carol")).unwrap().status = MemberStatus::Removed;
    let again = set_status(&declined, "carol", MemberStatus::Requested, "status");
    assert_eq!(
        code(run(&declined, "carol", &again)),
        Some("member_inactive")
    );
}

#[test]
fn invite_links_need_link_join_and_the_right_to_add() {
    let link = group("l1", ConvKind::Channel, |s| {
        s.join_policy = JoinPolicy::Link
    });
    let who = |n: &str| Author::user(acc(n));
    assert_eq!(code(may_invite(0, &link, &who("admin"))), None);
    assert_eq!(code(may_invite(0, &link, &who("member"))), None);
    assert_eq!(
        code(may_invite(0, &link, &who("stranger"))),
        Some("not_member")
    );
    let admins = group("l2", ConvKind::Group, |s| {
        s.join_policy = JoinPolicy::Link;
        s.add_members_policy = EditPolicy::AdminsOnly;
    });
    assert_eq!(
        code(may_invite(0, &admins, &who("member"))),
        Some("no_permission")
    );
    let open = group("l3", ConvKind::Group, |s| s.join_policy = JoinPolicy::Open);
    assert_eq!(
        code(may_invite(0, &open, &who("owner"))),
        Some("links_disabled")
    );
    let uncreated = Conversation::uncreated(ConvId::new("l4").unwrap());
    assert_eq!(
        code(may_invite(0, &uncreated, &who("owner"))),
        Some("not_created")
    );
    let mut deleted = link.clone();
    deleted.lifecycle.state = Lifecycle::Deleted;
    assert_eq!(
        code(may_invite(0, &deleted, &who("owner"))),
        Some("conversation_deleted")
    );
}

/// Unanswered requests are bounded: the one over `JOIN_REQUESTS_MAX` is `requests_full`,
/// and answering one (here: declining, the entry becomes `removed`) makes room again.
#[test]
fn unanswered_requests_are_bounded() {
    use confab_core::limits::JOIN_REQUESTS_MAX;
    use confab_core::policy::DenyCode;
    let mut c = reviewed(ConvKind::Group);
    for i in 0..JOIN_REQUESTS_MAX {
        c = with_request(c, &format!("asker{i}"));
    }
    let over = run(&c, "late", &request("late")).unwrap_err();
    assert_eq!(over.code, DenyCode::RequestsFull, "{over}");
    assert!(
        over.reason.contains(&JOIN_REQUESTS_MAX.to_string()),
        "{over}"
    );
    let declined = c.members.get_mut(&acc("asker0")).expect("asked");
    declined.status = MemberStatus::Removed;
    assert_eq!(run(&c, "late", &request("late")), Ok(()));
}

/// The join route discovery shows is what the policy then decides: `open` lets one join
/// itself, `request` takes a request (and refuses a direct join), `invite` takes neither.
#[test]
fn the_advertised_join_route_is_what_the_policy_decides() {
    let join = |name: &str| Effect::AddMember {
        before: None,
        after: Member::new(acc(name), Role::Member),
    };
    let cases = [
        (JoinPolicy::Open, false, JoinRoute::Open),
        (JoinPolicy::Open, true, JoinRoute::Request),
        (JoinPolicy::Link, true, JoinRoute::Request),
        (JoinPolicy::Link, false, JoinRoute::Invite),
        (JoinPolicy::InviteOnly, false, JoinRoute::Invite),
        (JoinPolicy::InviteOnly, true, JoinRoute::Invite),
    ];
    for (policy, approval, route) in cases {
        let c = group("g", ConvKind::Group, |s| {
            s.join_policy = policy;
            s.join_approval_required = approval;
        });
        assert_eq!(join_route(&c), route, "{policy:?} approval={approval}");
        let joined = code(run(&c, "carol", &join("carol")));
        let asked = code(run(&c, "carol", &request("carol")));
        match route {
            JoinRoute::Open => assert_eq!((joined, asked.is_some()), (None, true)),
            JoinRoute::Request => {
                assert_eq!((joined, asked), (Some("approval_required"), None))
            }
            JoinRoute::Invite => assert!(joined.is_some() && asked.is_some(), "{policy:?}"),
        }
    }
}
