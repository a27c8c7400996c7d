//! Support threads' leads through the JavaScript API (`setLead`, `closeLead`) against a
//! real `confab-server` (started by `cargo xtask wasm test`; docs/POLICY.md, "Support
//! threads"): the owner's side names and closes the lead and both parties see how it
//! ended; the client is refused with a typed error; a group has no lead.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_wasm::types::{
    Conversation, CreateConversationInput, IntentResult, LeadOutcome, Lifecycle, MemberInput,
    SupportInput,
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
    };
    let opened: IntentResult = ok(bob.open_support(tsify::Ts::from_rust(&input).unwrap())).await;
    let conv = opened.conv.unwrap();
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
