//! Support threads after their creation (docs/POLICY.md, "Support threads")
//! against `policy::check` and `policy::support`: sender stamps derived from the thread and
//! refused when forged, the title and names set once by either party when the thread is
//! opened, and the lead's closure. The acceptor's side is the attack table's
//! `support_stamps_names_and_lead_closure` (testkit/src/attack/cases_messages.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::ids::{LeadId, ResourceId};
use confab_core::model::conversation::*;
use confab_core::model::message::NewMessage;
use confab_core::model::support::{LeadOutcome, SenderRole, Stamp};
use confab_core::policy::support::{next_lead, sender_role, stamp_for};
use confab_core::policy::{check, Author, Context, Decision, DenyCode, Effect};
use confab_testkit::hub::NOW;
use confab_testkit::ids::{acc, conv_id, msg_id};

/// A support thread: `client` asks about `owner`'s flat, `staff` (an admin) helps.
fn support() -> Conversation {
    let mut c = Conversation::uncreated(conv_id("s-1"));
    c.meta = Some(Meta {
        kind: ConvKind::Support,
        created_by: None,
        created_at: NOW - 1000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        resource: Some(ResourceLink {
            resource: ResourceId::new("flat-7").unwrap(),
            client: acc("client"),
            owner: acc("owner"),
        }),
        encrypted: false,
    });
    c.settings = Settings::defaults_for(ConvKind::Support);
    for (name, role) in [
        ("owner", Role::Owner),
        ("client", Role::Member),
        ("staff", Role::Admin),
    ] {
        c.members.insert(acc(name), Member::new(acc(name), role));
    }
    c
}

fn named() -> Conversation {
    let mut c = support();
    c.info.title = Some("Flat 7".into());
    c.info.client_name = Some("Carla".into());
    c.info.owner_name = Some("Olga".into());
    c.members.get_mut(&acc("staff")).unwrap().nickname = Some("Sam".into());
    c.lifecycle.lead = Some(LeadId::new("lead-1").unwrap());
    c
}

fn group() -> Conversation {
    let mut c = support();
    c.meta.as_mut().unwrap().kind = ConvKind::Group;
    c.meta.as_mut().unwrap().resource = None;
    c
}

fn run(c: &Conversation, author: &Author, effect: &Effect) -> Decision {
    let ctx = Context {
        conv: Some(c),
        parent: None,
        now_ms: NOW,
        last_post_ms: None,
        bucket: Some(c.period_of(NOW).into()),
        parent_standing: None,
        parent_message: None,
    };
    check(&ctx, author, effect)
}

fn user(a: &str) -> Author {
    Author::user(acc(a))
}

fn post(author: &str, stamp: Stamp) -> Effect {
    let mut m = NewMessage::text(msg_id("m1"), acc(author), "hi", NOW);
    m.stamp = stamp;
    Effect::PostMessage(Box::new(m))
}

fn stamp(role: Option<SenderRole>, name: Option<&str>, lead: Option<&str>) -> Stamp {
    Stamp {
        sender_role: role,
        sender_name: name.map(str::to_owned),
        related_lead: lead.map(|l| LeadId::new(l).unwrap()),
    }
}

fn code(d: Decision) -> Option<DenyCode> {
    d.err().map(|d| d.code)
}

#[test]
fn sender_stamps_are_what_the_thread_says_about_the_author() {
    use SenderRole::*;
    let s = named();
    // What the writer stamps: derived from the thread.
    assert_eq!(
        stamp_for(&s, &user("client")),
        stamp(Some(Client), Some("Carla"), Some("lead-1"))
    );
    assert_eq!(
        stamp_for(&s, &user("owner")),
        stamp(Some(Owner), Some("Olga"), Some("lead-1"))
    );
    assert_eq!(
        stamp_for(&s, &user("staff")),
        stamp(Some(Staff), Some("Sam"), Some("lead-1"))
    );
    let service = Author {
        account: acc("platform"),
        service: true,
        device: None,
    };
    assert_eq!(sender_role(&s, &service), Root);
    assert_eq!(stamp_for(&group(), &user("owner")), Stamp::default());

    let table = [
        ("own stamps", "client", stamp_for(&s, &user("client")), None),
        (
            "no stamps (older writers)",
            "client",
            Stamp::default(),
            None,
        ),
        ("role only", "owner", stamp(Some(Owner), None, None), None),
        (
            "client as owner",
            "client",
            stamp(Some(Owner), None, None),
            Some(DenyCode::SenderMismatch),
        ),
        (
            "client as staff",
            "client",
            stamp(Some(Staff), None, None),
            Some(DenyCode::SenderMismatch),
        ),
        (
            "staff as root",
            "staff",
            stamp(Some(Root), None, None),
            Some(DenyCode::SenderMismatch),
        ),
        (
            "client under the owner's name",
            "client",
            stamp(Some(Client), Some("Olga"), None),
            Some(DenyCode::SenderMismatch),
        ),
        (
            "staff under another name",
            "staff",
            stamp(None, Some("Olga"), None),
            Some(DenyCode::SenderMismatch),
        ),
        (
            "another lead",
            "owner",
            stamp(None, None, Some("lead-0")),
            Some(DenyCode::SenderMismatch),
        ),
    ];
    for (label, author, st, want) in table {
        assert_eq!(
            code(run(&s, &user(author), &post(author, st))),
            want,
            "{label}"
        );
    }
    // A name where the thread gives none is a forgery too.
    assert_eq!(
        code(run(
            &support(),
            &user("client"),
            &post("client", stamp(None, Some("Carla"), None))
        )),
        Some(DenyCode::SenderMismatch)
    );
    // Outside support threads, no stamps.
    assert_eq!(
        code(run(
            &group(),
            &user("owner"),
            &post("owner", stamp(Some(Owner), None, None))
        )),
        Some(DenyCode::SupportOnly)
    );
}

#[test]
fn title_and_names_are_set_once_by_either_party_then_by_the_owner() {
    let fresh = support();
    let s = named();
    let info = |f: &str| Effect::SetInfo { field: f.into() };
    let table = [
        (
            "client names a fresh thread",
            &fresh,
            "client",
            "title",
            None,
        ),
        (
            "client sets the owner's name on a fresh thread",
            &fresh,
            "client",
            "owner_name",
            None,
        ),
        (
            "owner sets the client's name on a fresh thread",
            &fresh,
            "owner",
            "client_name",
            None,
        ),
        (
            "client renames a named thread",
            &s,
            "client",
            "title",
            Some(DenyCode::NoPermission),
        ),
        (
            "client renames the owner",
            &s,
            "client",
            "owner_name",
            Some(DenyCode::NoPermission),
        ),
        ("owner renames", &s, "owner", "owner_name", None),
        (
            "stranger names a fresh thread",
            &fresh,
            "stranger",
            "title",
            Some(DenyCode::NotMember),
        ),
    ];
    for (label, c, author, field, want) in table {
        assert_eq!(code(run(c, &user(author), &info(field))), want, "{label}");
    }
    let removed = {
        let mut c = support();
        c.members.get_mut(&acc("client")).unwrap().status = MemberStatus::Removed;
        c
    };
    assert_eq!(
        code(run(&removed, &user("client"), &info("title"))),
        Some(DenyCode::MemberInactive)
    );
    assert_eq!(
        code(run(&group(), &user("owner"), &info("client_name"))),
        Some(DenyCode::SupportOnly)
    );
}

#[test]
fn the_lead_is_closed_with_an_outcome_by_the_owners_side() {
    let s = support();
    let closed = {
        let mut c = support();
        c.lifecycle.state = Lifecycle::Closed;
        c
    };
    let lead = |outcome, closed_after| Effect::SetLead {
        outcome,
        closed_after,
    };
    let table = [
        (
            "owner closes with an outcome",
            &s,
            "owner",
            lead(true, true),
            None,
        ),
        (
            "staff closes with an outcome",
            &s,
            "staff",
            lead(true, true),
            None,
        ),
        (
            "client closes the lead",
            &s,
            "client",
            lead(true, true),
            Some(DenyCode::NoPermission),
        ),
        (
            "outcome on an open thread",
            &s,
            "owner",
            lead(true, false),
            Some(DenyCode::OutcomeNeedsClose),
        ),
        (
            "outcome corrected while closed",
            &closed,
            "owner",
            lead(true, true),
            None,
        ),
        (
            "a new lead on an open thread",
            &s,
            "owner",
            lead(false, false),
            None,
        ),
        (
            "a lead in a group",
            &group(),
            "owner",
            lead(false, false),
            Some(DenyCode::SupportOnly),
        ),
    ];
    for (label, c, author, effect, want) in table {
        assert_eq!(code(run(c, &user(author), &effect)), want, "{label}");
    }
    // The outcome values are the platform's.
    assert_eq!(
        LeadOutcome::parse("closed_won").unwrap(),
        LeadOutcome::ClosedWon
    );
    assert!(LeadOutcome::parse("won").is_err());
}

/// A closed, named thread: lead-1 closed at `NOW - 10`.
fn closed() -> Conversation {
    let mut c = named();
    c.lifecycle.state = Lifecycle::Closed;
    c.lifecycle.at = Some(NOW - 10);
    c.lifecycle.by = Some(acc("owner"));
    c
}

/// The client's message into its closed thread is a new request: it is accepted, stamped
/// with the lead that follows the closure, and reopens the thread with that lead; the
/// client reopens a closed thread only that way (`new_lead_required`).
#[test]
fn a_new_request_reopens_a_closed_thread_with_a_new_lead() {
    use confab_core::ids::next_lead_id;
    let c = closed();
    let next = next_lead(&c);
    assert_eq!(
        next,
        next_lead_id(&c.id, c.lifecycle.lead.as_ref(), Some(NOW - 10))
    );
    assert_ne!(Some(&next), c.lifecycle.lead.as_ref(), "a new lead");
    // What the client stamps names the new lead; the owner's side keeps the closed one.
    let client = user("client");
    assert_eq!(stamp_for(&c, &client).related_lead, Some(next.clone()));
    assert_eq!(
        stamp_for(&c, &user("owner")).related_lead,
        c.lifecycle.lead.clone()
    );
    let request = |by: &str, lead: &LeadId| Effect::NewRequest {
        by: acc(by),
        lead: lead.clone(),
    };
    let reopen = |by: &str| Effect::SetLifecycle {
        to: Lifecycle::Active,
        by: acc(by),
    };
    let lead_1 = LeadId::new("lead-1").unwrap();
    let mut closed_group = group();
    closed_group.lifecycle.state = Lifecycle::Closed;
    let table = [
        (
            "client's request",
            &c,
            "client",
            stamped_post(&c, "client", None),
            None,
        ),
        (
            "client's message about the closed lead",
            &c,
            "client",
            stamped_post(&c, "client", Some("lead-1")),
            Some(DenyCode::SenderMismatch),
        ),
        (
            "member's message in a closed group",
            &closed_group,
            "client",
            post("client", Stamp::default()),
            Some(DenyCode::ConversationClosed),
        ),
        (
            "client reopens with the next lead",
            &c,
            "client",
            request("client", &next),
            None,
        ),
        (
            "client reopens without a lead",
            &c,
            "client",
            reopen("client"),
            Some(DenyCode::NewLeadRequired),
        ),
        (
            "client revives the closed lead",
            &c,
            "client",
            request("client", &lead_1),
            Some(DenyCode::NewLeadRequired),
        ),
        (
            "client names the lead's writer",
            &c,
            "client",
            request("owner", &next),
            Some(DenyCode::NotOwnKey),
        ),
        (
            "owner reopens with any lead",
            &c,
            "owner",
            request("owner", &lead_1),
            None,
        ),
        (
            "client reopens an open thread with a lead",
            &named(),
            "client",
            request("client", &next),
            Some(DenyCode::NoPermission),
        ),
        (
            "a request in a group",
            &closed_group,
            "owner",
            request("owner", &next),
            Some(DenyCode::SupportOnly),
        ),
    ];
    for (label, conv, author, effect, want) in table {
        assert_eq!(code(run(conv, &user(author), &effect)), want, "{label}");
    }
}

/// A message with the client's stamps, naming `lead` (`None`: the stamped one).
fn stamped_post(c: &Conversation, author: &str, lead: Option<&str>) -> Effect {
    let mut s = stamp_for(c, &user(author));
    if let Some(lead) = lead {
        s.related_lead = Some(LeadId::new(lead).unwrap());
    }
    post(author, s)
}

/// Which messages reopen their conversation (`policy::reopen::after`): any a member who may
/// reopen posts into an archived one, and the client's new request into its closed thread.
#[test]
fn which_messages_reopen_their_conversation() {
    use confab_core::policy::reopen::{after, Reopen};
    let archived = {
        let mut c = named();
        c.lifecycle.state = Lifecycle::Archived;
        c
    };
    let service = Author::service(acc("platform"));
    let notice = {
        let mut m = NewMessage::text(msg_id("n1"), acc("platform"), "notice", NOW);
        m.kind = confab_core::model::message::MessageKind::System;
        Effect::PostMessage(Box::new(m))
    };
    let react = Effect::MarkRead {
        account: acc("client"),
    };
    let c = closed();
    let table = [
        (
            "client in an archived thread",
            &archived,
            user("client"),
            post("client", Stamp::default()),
            Some(None),
        ),
        (
            "owner in an archived thread",
            &archived,
            user("owner"),
            post("owner", Stamp::default()),
            Some(None),
        ),
        ("a service's notice", &archived, service, notice, None),
        ("a read marker", &archived, user("client"), react, None),
        (
            "client in an open thread",
            &named(),
            user("client"),
            post("client", Stamp::default()),
            None,
        ),
        (
            "client's new request",
            &c,
            user("client"),
            post("client", Stamp::default()),
            Some(Some(next_lead(&c))),
        ),
        (
            "staff note in a closed thread",
            &c,
            user("staff"),
            post("staff", Stamp::default()),
            None,
        ),
    ];
    for (label, conv, author, effect, want) in table {
        let got = after(conv, &author, &[effect], NOW).map(|r: Reopen| r.lead);
        assert_eq!(got, want, "{label}");
    }
}
