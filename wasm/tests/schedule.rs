//! Scheduled messages through the package against a real `confab-server` (started by
//! `cargo xtask wasm test`, scheduler at its default 1 s): bad input is refused with its
//! code, a scheduled message is listed, edited and cancelled by its author, is seen by no
//! other member before its time, and appears in their timeline at its time with the edit.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_wasm::types::{IntentResult, MemberInput};
use support::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WAIT: f64 = 20_000.0;
const DAY: f64 = 86_400_000.0;

/// `{ body?, at? }` for `editScheduled`.
fn edit<T: tsify::Tsify>(body: Option<&str>, at: Option<f64>) -> tsify::Ts<T> {
    let o = js_sys::Object::new();
    if let Some(b) = body {
        js_sys::Reflect::set(&o, &"body".into(), &b.into()).unwrap();
    }
    if let Some(a) = at {
        js_sys::Reflect::set(&o, &"at".into(), &a.into()).unwrap();
    }
    tsify::Ts::new_unchecked(o.into())
}

fn listed(client: &confab_wasm::ConfabClient, conv: Option<&str>) -> Vec<(String, String)> {
    client
        .scheduled(conv.map(str::to_owned))
        .unwrap()
        .into_iter()
        .map(|s| {
            let s = s.to_rust().unwrap();
            (s.id, s.body)
        })
        .collect()
}

/// The server `cargo xtask wasm test` started: its URL and demo tokens of alice and bob.
fn server() -> Option<(&'static str, &'static str, &'static str)> {
    Some((
        option_env!("CONFAB_TEST_WS")?,
        option_env!("CONFAB_TEST_TOKEN_ALICE")?,
        option_env!("CONFAB_TEST_TOKEN_BOB")?,
    ))
}

#[wasm_bindgen_test]
async fn scheduled_messages_wait_for_their_time() {
    let (ws, alice_token, bob_token) = server().expect(
        "no CONFAB_TEST_WS/CONFAB_TEST_TOKEN_*: this test needs a server; run it with \
         `cargo xtask wasm test`, which starts one",
    );
    let tenant = option_env!("CONFAB_TEST_TENANT").unwrap_or("demo");
    let alice = client(ws, alice_token, tenant, "alice", "memory".into(), None);
    let bob = client(ws, bob_token, tenant, "bob", "memory".into(), None);
    done(alice.connect()).await.unwrap();
    done(bob.connect()).await.unwrap();
    let input = confab_wasm::types::CreateConversationInput {
        title: Some("later".into()),
        members: Some(vec![MemberInput::Account("bob".into())]),
        ..Default::default()
    };
    let group: IntentResult =
        ok(alice.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    let conv = group.conv.clone().unwrap();

    // Bad input: its code, and nothing listed.
    let past = alice.schedule(conv.clone(), "x".into(), now() - 3_600_000.0);
    assert_eq!(code_of(past).await, "schedule_in_past");
    let far = alice.schedule(conv.clone(), "x".into(), now() + 400.0 * DAY);
    assert_eq!(code_of(far).await, "schedule_too_far");
    let empty = alice.schedule(conv.clone(), String::new(), now() + 60_000.0);
    assert_eq!(code_of(empty).await, "invalid_body");
    assert_eq!(
        code_of(alice.cancel_scheduled("m-nope".into())).await,
        "schedule_not_found"
    );
    assert!(listed(&alice, None).is_empty());

    // Scheduled, edited; a second one cancelled.
    let at = now() + 4_000.0;
    let kept: IntentResult = ok(alice.schedule(conv.clone(), "draft".into(), at)).await;
    let gone: IntentResult = ok(alice.schedule(conv.clone(), "never".into(), at)).await;
    let (kept_id, gone_id) = (kept.message.clone().unwrap(), gone.message.clone().unwrap());
    ok::<IntentResult>(alice.edit_scheduled(kept_id.clone(), edit(Some("edited"), None))).await;
    ok::<IntentResult>(alice.cancel_scheduled(gone_id.clone())).await;
    assert_eq!(
        listed(&alice, Some(&conv)),
        [(kept_id.clone(), "edited".to_owned())]
    );
    wait_for("the schedule accepted", WAIT, || {
        state_of(&alice, kept.id).as_deref() == Some("accepted")
            || state_of(&alice, kept.id).is_none()
    })
    .await;
    assert_eq!(
        code_of(alice.edit_scheduled(gone_id, edit(Some("x"), None))).await,
        "schedule_not_found"
    );

    // Bob sees nothing of it before its time, then the edited message from alice.
    done(bob.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    assert!(listed(&bob, None).is_empty());
    assert!(bodies(&bob, &conv).is_empty());
    wait_for("bob sees the scheduled message at its time", WAIT, || {
        bodies(&bob, &conv) == ["edited"]
    })
    .await;
    assert!(now() >= at, "shown before its time");
    let item = timeline(&bob, &conv).remove(0);
    assert_eq!(
        (item.message.id.as_str(), item.message.author.as_str()),
        (kept_id.as_str(), "alice")
    );
    wait_for("alice's list empties once it is posted", WAIT, || {
        listed(&alice, None).is_empty()
    })
    .await;
    done(alice.dispose()).await.unwrap();
    done(bob.dispose()).await.unwrap();
}
