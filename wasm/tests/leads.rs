//! Support threads' leads through the JavaScript API (`setLead`, `closeLead`) against a
//! real `confab-server` (started by `cargo xtask wasm test`; docs/POLICY.md, "Support
//! threads"): the owner's side names and closes the lead and both parties see how it
//! ended; the client is refused with a typed error; a group has no lead; the client's answer
//! to a proposal moves its status with the response, in one intent.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_wasm::types::{
    Conversation, CreateConversationInput, CreatedByRole, IntentResult, LeadOutcome, Lifecycle,
    MeetingType, MemberInput, ProposalAnswer, ProposalInput, ProposalStatus, ProposalType,
    ResponseInput, SupportInput,
};
use confab_wasm::ConfabClient;
use support::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WAIT: f64 = 15_000.0;

fn view(client: &ConfabClient, conv: &str) -> Option<Conversation> {
    let value = client.conversation(conv).ok()?;
    if !value.is_object() {
        return None;
    }
    serde_wasm_bindgen::from_value(value).ok()
}

fn outcome(js: LeadOutcome) -> tsify::Ts<LeadOutcome> {
    tsify::Ts::from_rust(&js).unwrap()
}

/// Alice owns a flat; bob (the client) opens a support thread about it. Both connected,
/// both holding the thread.
async fn thread(s: &Server) -> (ConfabClient, ConfabClient, String) {
    let alice = client(s.ws, s.alice, s.tenant, "alice", "memory".into(), None);
    let bob = client(s.ws, s.bob, s.tenant, "bob", "memory".into(), None);
    done(alice.connect()).await.unwrap();
    done(bob.connect()).await.unwrap();
    let input = SupportInput {
        resource: unique("flat"),
        client: "bob".into(),
        owner: "alice".into(),
        title: Some("Flat 7".into()),
        client_name: Some("Bob B.".into()),
        owner_name: Some("Alice A.".into()),
        encrypted: None,
    };
    let opened: IntentResult = ok(bob.open_support(tsify::Ts::from_rust(&input).unwrap())).await;
    let conv = opened.conv.unwrap();
    let id_of = |encrypted| {
        alice
            .support_conversation_id("bob", &input.resource, Some(encrypted))
            .unwrap()
    };
    assert_eq!(
        id_of(false),
        conv,
        "the owner's device names the same thread"
    );
    assert_ne!(id_of(true), conv, "the encrypted thread is another one");
    wait_for("bob's thread accepted", WAIT, || {
        state_of(&bob, opened.id).as_deref() == Some("accepted")
    })
    .await;
    // Alice's engine follows the thread once the server tells it she is its owner.
    wait_for("alice holds the thread", WAIT, || {
        view(&alice, &conv).is_some_and(|c| c.info.client_name.as_deref() == Some("Bob B."))
    })
    .await;
    (alice, bob, conv)
}

#[wasm_bindgen_test]
async fn the_owner_names_and_closes_the_lead_and_both_parties_see_the_outcome() {
    let s = server();
    let (alice, bob, conv) = thread(&s).await;
    let lead: IntentResult = ok(alice.set_lead(conv.clone(), "lead-7".into())).await;
    let closed: IntentResult = ok(alice.close_lead(
        conv.clone(),
        outcome(LeadOutcome::ClosedWon),
        Some("signed the lease".into()),
    ))
    .await;
    wait_for("both accepted", WAIT, || {
        state_of(&alice, lead.id).as_deref() == Some("accepted")
            && state_of(&alice, closed.id).as_deref() == Some("accepted")
    })
    .await;
    let ended = |c: &ConfabClient| {
        view(c, &conv).is_some_and(|v| {
            v.lifecycle.state == Lifecycle::Closed
                && v.lifecycle.outcome == Some(LeadOutcome::ClosedWon)
                && v.lifecycle.reason.as_deref() == Some("signed the lease")
                && v.lifecycle.lead.as_deref() == Some("lead-7")
        })
    };
    assert!(ended(&alice), "{:?}", view(&alice, &conv));
    wait_for("bob sees the lead closed won", WAIT, || ended(&bob)).await;
    done(alice.dispose()).await.unwrap();
    done(bob.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn the_client_may_not_close_the_lead() {
    let s = server();
    let (alice, bob, conv) = thread(&s).await;
    let code = code_of(bob.close_lead(
        conv.clone(),
        outcome(LeadOutcome::ClosedLost),
        Some("too dear".into()),
    ))
    .await;
    assert_eq!(code, "no_permission");
    let code = code_of(bob.set_lead(conv.clone(), "lead-8".into())).await;
    assert_eq!(code, "no_permission");
    // Nothing moved, on either side.
    let v = view(&bob, &conv).unwrap();
    assert_eq!((v.lifecycle.outcome, v.lifecycle.lead), (None, None));
    assert_ne!(v.lifecycle.state, Lifecycle::Closed);
    done(alice.dispose()).await.unwrap();
    done(bob.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_group_has_no_lead_to_close() {
    let s = server();
    let alice = client(s.ws, s.alice, s.tenant, "alice", "memory".into(), None);
    done(alice.connect()).await.unwrap();
    let input = CreateConversationInput {
        title: Some("lunch".into()),
        members: Some(vec![MemberInput::Account("bob".into())]),
        ..Default::default()
    };
    let group: IntentResult =
        ok(alice.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    let conv = group.conv.unwrap();
    let code = code_of(alice.close_lead(conv.clone(), outcome(LeadOutcome::ClosedWon), None)).await;
    assert_eq!(code, "support_only");
    let code = code_of(alice.set_lead(conv.clone(), "lead-9".into())).await;
    assert_eq!(code, "support_only");
    done(alice.dispose()).await.unwrap();
}

/// Answering a proposal is one intent: the client's `respond` sends the response, and the
/// server moves the proposal's status in the same commit; both parties see the status in
/// the proposal and in its payload. A second answer is refused whole (the response too).
#[wasm_bindgen_test]
async fn answering_a_proposal_moves_its_status_with_the_response() {
    let s = server();
    let (alice, bob, conv) = thread(&s).await;
    let start = now() as i64 + 86_400_000;
    let proposal = ProposalInput {
        proposal_type: ProposalType::Visit,
        time_start: start,
        time_end: start + 1_800_000,
        timezone: "Europe/Madrid".into(),
        meeting_type: Some(MeetingType::OnSite),
        location: Some("Calle Sol 7".into()),
        from_resource_address: None,
        expires_at: None,
        created_by_role: CreatedByRole::Owner,
    };
    let proposal = tsify::Ts::from_rust(&proposal).unwrap();
    let sent: IntentResult = ok(alice.propose(conv.clone(), proposal, None)).await;
    let id = sent.message.unwrap();
    wait_for("bob holds the proposal", WAIT, || {
        timeline(&bob, &conv)
            .iter()
            .any(|t| t.message.id == id && t.seq.is_some())
    })
    .await;
    let answer = |response| {
        let input = ResponseInput {
            response,
            comment: None,
            suggested_slots: None,
            body: Some("see you".into()),
        };
        tsify::Ts::from_rust(&input).unwrap()
    };
    let responded: IntentResult =
        ok(bob.respond(conv.clone(), id.clone(), answer(ProposalAnswer::Accept))).await;
    wait_for("the response accepted", WAIT, || {
        state_of(&bob, responded.id).as_deref() == Some("accepted")
    })
    .await;
    let answered = |c: &ConfabClient| {
        timeline(c, &conv).iter().any(|t| {
            let payload_status = t.message.payload.as_deref().and_then(|p| {
                serde_json::from_str::<serde_json::Value>(p).ok()?["status"]
                    .as_str()
                    .map(str::to_owned)
            });
            t.message.id == id
                && t.message.status == Some(ProposalStatus::Accepted)
                && payload_status.as_deref() == Some("accepted")
        })
    };
    wait_for("alice sees it accepted", WAIT, || answered(&alice)).await;
    wait_for("bob sees it accepted", WAIT, || answered(&bob)).await;
    let responses = |c: &ConfabClient| {
        timeline(c, &conv)
            .iter()
            .filter(|t| t.message.reply_to.as_deref() == Some(id.as_str()))
            .count()
    };
    assert_eq!(responses(&bob), 1);

    // Answered already: the second answer is refused, and no second response stands.
    let again: IntentResult =
        ok(bob.respond(conv.clone(), id.clone(), answer(ProposalAnswer::Reject))).await;
    wait_for("the second answer refused", WAIT, || {
        state_of(&bob, again.id).as_deref() == Some("rejected")
    })
    .await;
    assert_eq!(responses(&bob), 1, "the refused response is gone");
    assert!(answered(&bob), "still accepted");
    done(alice.dispose()).await.unwrap();
    done(bob.dispose()).await.unwrap();
}
