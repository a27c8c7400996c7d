//! The support lead's life (docs/POLICY.md, "Lifecycle" and "Support threads"): a message
//! reopens an archived conversation whoever writes it — here a raw change, as any client
//! that is not Confab's engine sends it — and the client's new request reopens its closed
//! thread with the lead that follows the closure, never the closed one; an answer to a
//! proposal moves the proposal's status with it, or is refused whole.

use confab_core::doc::schema::keys::{KIND, PAYLOAD, REPLY_TO};
use confab_core::doc::{read, write};
use confab_core::ids::{LeadId, MessageId};
use confab_core::model::conversation::Lifecycle;
use confab_core::model::message::NewMessage;
use confab_core::model::proposal::ProposalStatus;
use confab_core::model::support::LeadOutcome;
use confab_core::policy::support::{next_lead, stamp_for};
use confab_core::policy::Author;

use super::fixture::{fixture, post_proposal, support_thread};
use super::Lab;
use crate::craft::*;
use crate::device::Device;
use crate::ids::{acc, bucket_doc, conv_doc};

pub async fn a_raw_message_reopens_an_archived_conversation(lab: &mut impl Lab) {
    let mut f = fixture(lab, "a90").await;
    let t = lab.now();
    let archive = f
        .alice
        .write(&f.cd, |d, tag| {
            write::set_lifecycle(d, tag, t, Lifecycle::Archived, &acc("alice"))
        })
        .expect("archive writes");
    lab.accept(&mut f.alice, &f.cd, archive).await;
    let (bucket, post) = raw_post(
        &mut f.bob,
        &f.conv,
        "b90",
        &text_fields("bob", "back", t),
        t,
    );
    lab.accept(&mut f.bob, &bucket, post).await;
    let conv = read::read_conversation(&lab.read(&f.cd).await, f.conv.clone());
    assert_eq!(
        conv.lifecycle.state,
        Lifecycle::Active,
        "the message reopened it"
    );
    assert_eq!(conv.lifecycle.by, Some(acc("bob")), "as its author");
}

pub async fn a_client_reopening_a_closed_thread_new_lead_required(lab: &mut impl Lab) {
    let (mut alice, mut carol) = (Device::new("alice", 1), Device::new("carol", 1));
    let c = support_thread(lab, &mut alice, &mut carol, "room-81").await;
    let cd = conv_doc(&c);
    let t = lab.now();
    let lead = alice
        .write(&cd, |d, tag| {
            write::set_lead(d, tag, t, &LeadId::new("lead-1").expect("id"))
        })
        .expect("lead writes");
    lab.accept(&mut alice, &cd, lead).await;
    let closure = alice
        .write(&cd, |d, tag| {
            write::close_lead(d, tag, t, &acc("alice"), LeadOutcome::ClosedWon, None)
        })
        .expect("closure writes");
    lab.accept(&mut alice, &cd, closure).await;
    lab.pull(&mut carol, &cd).await;
    let closed = read::read_conversation(&lab.read(&cd).await, c.clone());
    let next = next_lead(&closed);

    // Reopening alone, or with any lead but the next one, is not a new request.
    let alone = carol
        .clone()
        .write(&cd, |d, tag| {
            write::set_lifecycle(d, tag, t, Lifecycle::Active, &acc("carol"))
        })
        .expect("reopen writes");
    lab.reject(&carol, &cd, alone, "new_lead_required").await;
    for lead in ["lead-1", "lead-x"] {
        let lead = LeadId::new(lead).expect("id");
        let other = carol
            .clone()
            .write(&cd, |d, tag| {
                write::reopen_with_lead(d, tag, t, &acc("carol"), &lead)
            })
            .expect("reopen writes");
        lab.reject(&carol, &cd, other, "new_lead_required").await;
    }
    // A message about the closed lead is not hers to write any more.
    let bucket = bucket_doc(&c, t);
    let message = |id: &str, lead: Option<LeadId>| {
        let mut m = NewMessage::text(MessageId::new(id).expect("id"), acc("carol"), "again", t);
        m.stamp = stamp_for(&closed, &Author::user(acc("carol")));
        m.stamp.related_lead = lead;
        m
    };
    let old = message("c81", closed.lifecycle.lead.clone());
    let stale = carol
        .clone()
        .write(&bucket, |d, tag| write::post_message(d, tag, &old))
        .expect("a message writes");
    lab.reject(&carol, &bucket, stale, "sender_mismatch").await;

    // Twin: her new request, about the next lead, reopens the thread with it.
    let request = message("c82", Some(next.clone()));
    let change = carol
        .write(&bucket, |d, tag| write::post_message(d, tag, &request))
        .expect("a message writes");
    lab.accept(&mut carol, &bucket, change).await;
    let conv = read::read_conversation(&lab.read(&cd).await, c.clone());
    assert_eq!(conv.lifecycle.state, Lifecycle::Active, "reopened");
    assert_eq!(conv.lifecycle.lead, Some(next), "with the new lead");
    assert_eq!(conv.lifecycle.by, Some(acc("carol")), "by the client");
}

/// A response moves its proposal's status in the same acceptance (docs/POLICY.md,
/// "Proposals"): the client's answer is accepted with the move; a second answer, or an
/// answer to one's own proposal, is refused whole, the response with it.
pub async fn a_second_answer_to_a_proposal_proposal_transition(lab: &mut impl Lab) {
    let (mut alice, mut carol) = (Device::new("alice", 1), Device::new("carol", 1));
    let c = support_thread(lab, &mut alice, &mut carol, "room-82").await;
    post_proposal(lab, &mut alice, &c, "p1", None).await;
    let t = lab.now();
    let bucket = bucket_doc(&c, t);
    let answer = |dev: &mut Device, id: &str, author: &str, response: &str| {
        let mut fields = text_fields(author, "", t);
        fields[1] = (KIND, s("proposal_response"));
        fields.push((REPLY_TO, s("p1")));
        let payload = format!(r#"{{"response":"{response}"}}"#);
        fields.push((PAYLOAD, s(&payload)));
        raw_post(&mut dev.clone(), &c, id, &fields, t).1
    };
    lab.pull(&mut carol, &bucket).await;
    let own = answer(&mut alice, "a1", "alice", "accept");
    lab.reject(&alice, &bucket, own, "not_counterparty").await;
    let first = answer(&mut carol, "r1", "carol", "accept");
    lab.accept(&mut carol, &bucket, first).await;
    let read = lab.read(&bucket).await;
    let proposal = read::read_message(&read, &MessageId::new("p1").expect("id"));
    assert_eq!(
        proposal.and_then(|p| p.status),
        Some(ProposalStatus::Accepted),
        "the answer moved the status"
    );
    lab.pull(&mut carol, &bucket).await;
    let second = answer(&mut carol, "r2", "carol", "reject");
    lab.reject(&carol, &bucket, second, "proposal_transition")
        .await;
}
