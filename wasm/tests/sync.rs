//! Against a real `confab-server` on 127.0.0.1 (started by `cargo xtask wasm test`, which
//! passes its URL and demo tokens in CONFAB_TEST_* at build time). Without them these tests
//! fail, saying how to run them.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use confab_wasm::store::IdbStore;
use confab_wasm::types::{IntentResult, MemberInput};
use confab_wasm::ConfabClient;
use support::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WAIT: f64 = 15_000.0;

/// Records the `type` of every event a client emits.
fn record(client: &ConfabClient) -> Rc<RefCell<Vec<JsValue>>> {
    let seen: Rc<RefCell<Vec<JsValue>>> = Rc::default();
    let callback = {
        let seen = seen.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| seen.borrow_mut().push(event))
            .into_js_value()
            .unchecked_into::<js_sys::Function>()
    };
    let _ = client
        .on(tsify::Ts::new_unchecked("*".into()), callback)
        .unwrap();
    seen
}

fn has_event(seen: &RefCell<Vec<JsValue>>, kind: &str) -> bool {
    seen.borrow().iter().any(|e| {
        js_sys::Reflect::get(e, &"type".into())
            .unwrap()
            .as_string()
            .as_deref()
            == Some(kind)
    })
}

/// Closes `client` (every write stored) and opens its database again, as a page reload does.
async fn reload(client: ConfabClient, s: &Server, db: &str) -> ConfabClient {
    done(client.dispose()).await.unwrap();
    drop(client);
    let again = alice_in(s, db);
    done(again.ready()).await.unwrap();
    again
}

#[wasm_bindgen_test]
async fn two_clients_talk_through_the_server() {
    let s = server();
    let alice = client(s.ws, s.alice, s.tenant, "alice", "memory".into(), None);
    let bob = client(s.ws, s.bob, s.tenant, "bob", "memory".into(), None);
    let alice_events = record(&alice);
    done(alice.connect()).await.unwrap();
    done(bob.connect()).await.unwrap();
    assert!(alice.online() && bob.online());
    assert!(has_event(&alice_events, "online"));
    assert!(has_event(&alice_events, "connection"));
    assert_eq!(
        alice.connection_state().unwrap().as_string().as_deref(),
        Some("online")
    );

    let input = confab_wasm::types::CreateConversationInput {
        title: Some("lunch".into()),
        members: Some(vec![MemberInput::Account("bob".into())]),
        ..Default::default()
    };
    let group: IntentResult =
        ok(alice.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    let conv = group.conv.clone().unwrap();
    let hi = send(&alice, &conv, "hi bob").await;
    wait_for("alice's message accepted", WAIT, || {
        state_of(&alice, hi.id).as_deref() == Some("accepted")
    })
    .await;

    done(bob.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    wait_for("bob sees alice's message", WAIT, || {
        bodies(&bob, &conv) == ["hi bob"]
    })
    .await;
    // Bob's engine opened the conversation itself when the server told it he was added
    // (the membership feed): its view may come a moment after the bucket's messages.
    wait_for("bob knows the conversation", WAIT, || {
        bob.conversation(&conv).is_ok_and(|c| c.is_object())
    })
    .await;
    let conversation = bob.conversation(&conv).unwrap();
    let title = js_sys::Reflect::get(
        &js_sys::Reflect::get(&conversation, &"info".into()).unwrap(),
        &"title".into(),
    )
    .unwrap();
    assert_eq!(title.as_string().as_deref(), Some("lunch"));
    assert_eq!(bob.members(&conv).unwrap().len(), 2);

    let reply = send(&bob, &conv, "hi alice").await;
    wait_for("alice sees bob's reply", WAIT, || {
        bodies(&alice, &conv) == ["hi bob", "hi alice"]
    })
    .await;
    wait_for("bob's reply accepted", WAIT, || {
        state_of(&bob, reply.id).as_deref() == Some("accepted")
    })
    .await;
    wait_for("the same order on both sides, all accepted", WAIT, || {
        let a = timeline(&alice, &conv);
        let b = timeline(&bob, &conv);
        a.iter().all(|i| !i.pending && i.seq.is_some())
            && a.iter()
                .map(|i| (&i.message.id, i.seq))
                .eq(b.iter().map(|i| (&i.message.id, i.seq)))
    })
    .await;

    // Typing is relayed (ephemeral).
    alice.set_typing(&conv, true).unwrap();
    wait_for("bob sees alice typing", WAIT, || {
        bob.typing(&conv).unwrap() == ["alice"]
    })
    .await;

    // A read marker and a reaction travel too.
    let item = timeline(&bob, &conv).remove(0);
    ok::<IntentResult>(bob.react(conv.clone(), item.message.id.clone(), "👍".into(), None)).await;
    wait_for("alice sees bob's reaction", WAIT, || {
        timeline(&alice, &conv)[0]
            .message
            .reactions
            .get("👍")
            .is_some_and(|by| by.contains_key("bob"))
    })
    .await;

    // Bob's delivery and read markers reach alice in the conversation's view.
    let newest = timeline(&bob, &conv).pop().unwrap().message.id;
    ok::<IntentResult>(bob.mark_delivered(conv.clone(), None)).await;
    ok::<IntentResult>(bob.mark_read(conv.clone(), Some(item.message.id.clone()))).await;
    let marker = |client: &ConfabClient, map: &str| {
        let view = client.conversation(&conv).unwrap();
        js_sys::Reflect::get(
            &js_sys::Reflect::get(&view, &map.into()).unwrap(),
            &"bob".into(),
        )
        .unwrap()
        .as_string()
    };
    wait_for("alice sees bob's delivery and read markers", WAIT, || {
        marker(&alice, "delivered").as_ref() == Some(&newest)
            && marker(&alice, "reads").as_ref() == Some(&item.message.id)
    })
    .await;

    done(alice.disconnect()).await.unwrap();
    assert!(!alice.online());
    assert!(has_event(&alice_events, "offline"));
    done(bob.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn offline_work_is_sent_on_connect_and_survives_a_reload() {
    let s = server();
    let db = unique("sync-reload");
    let alice = alice_in(&s, &db);
    done(alice.ready()).await.unwrap();
    // Offline: the intents wait in the outbox.
    let group: IntentResult = ok(alice.create_group(None)).await;
    let conv = group.conv.clone().unwrap();
    let first = send(&alice, &conv, "written offline").await;
    assert_eq!(state_of(&alice, first.id).as_deref(), Some("pending"));
    done(alice.connect()).await.unwrap();
    wait_for("the offline message accepted", WAIT, || {
        state_of(&alice, first.id).as_deref() == Some("accepted")
    })
    .await;
    let second = send(&alice, &conv, "written online").await;
    wait_for("the online message accepted", WAIT, || {
        state_of(&alice, second.id).as_deref() == Some("accepted")
    })
    .await;
    // The ack stores the change as accepted, with its seq, in the same write that empties the
    // outbox: closing now, whether or not the server's push of it arrived, loses nothing.
    assert!(timeline(&alice, &conv)
        .iter()
        .all(|i| i.seq.is_some() && !i.pending));
    assert!(alice.outbox().is_empty());

    // Reload, offline: the accepted history is there, in server order, nothing pending.
    let again = reload(alice, &s, &db).await;
    done(again.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    let items = timeline(&again, &conv);
    assert_eq!(
        items
            .iter()
            .map(|i| i.message.body.as_str())
            .collect::<Vec<_>>(),
        ["written offline", "written online"]
    );
    assert!(
        items.iter().all(|i| !i.pending && i.seq.is_some()),
        "{items:?}"
    );
    assert!(again.outbox().is_empty());
    // Online again: catch-up from the stored cursors brings nothing twice.
    done(again.connect()).await.unwrap();
    let third = send(&again, &conv, "after reload").await;
    wait_for("the message after the reload accepted", WAIT, || {
        state_of(&again, third.id).as_deref() == Some("accepted")
    })
    .await;
    assert_eq!(
        bodies(&again, &conv),
        ["written offline", "written online", "after reload"]
    );
    done(again.dispose()).await.unwrap();
    IdbStore::delete_database(&db).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_refused_token_rejects_connect() {
    let s = server();
    let mallory = client(s.ws, "not-a-jwt", s.tenant, "alice", "memory".into(), None);
    let code = code_of(mallory.connect()).await;
    assert!(
        ["auth_failed", "token_expired"].contains(&code.as_str()),
        "{code}"
    );
    done(mallory.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn profiles_preferences_drafts_contacts_and_cursors() {
    use confab_wasm::account::{
        Contact, ContactEntry, ContactKind, Cursor, Draft, NotificationLevel,
    };
    use confab_wasm::types::{AccountKind, Profile};
    let s = server();
    let db = unique("account");
    let alice = alice_in(&s, &db);
    let bob = client(s.ws, s.bob, s.tenant, "bob", "memory".into(), None);
    done(alice.connect()).await.unwrap();
    done(bob.connect()).await.unwrap();
    let input = confab_wasm::types::CreateConversationInput {
        members: Some(vec![MemberInput::Account("bob".into())]),
        ..Default::default()
    };
    let group: IntentResult =
        ok(alice.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    let conv = group.conv.clone().unwrap();
    let profile = Profile {
        kind: AccountKind::Personal,
        display_name: "Alice".into(),
        avatar: None,
        bio: Some("tea, mostly".into()),
        status: None,
    };
    let contact = |kind, account: Option<&str>, email: Option<&str>, nickname: Option<&str>| {
        tsify::Ts::from_rust(&Contact {
            kind,
            phone: None,
            email: email.map(Into::into),
            account: account.map(Into::into),
            nickname: nickname.map(Into::into),
        })
        .unwrap()
    };
    let mut ids = vec![group.id];
    for promise in [
        alice.set_profile(tsify::Ts::from_rust(&profile).unwrap()),
        alice.set_preference(conv.clone(), "muted".into(), JsValue::TRUE),
        alice.set_preference(conv.clone(), "notifications".into(), "mentions".into()),
        alice.set_draft(conv.clone(), Some("half a thought".into())),
        alice.set_contact(
            "bob".into(),
            Some(contact(
                ContactKind::Person,
                Some("bob"),
                None,
                Some("Bobby"),
            )),
        ),
        alice.set_contact(
            "shop".into(),
            Some(contact(
                ContactKind::Service,
                None,
                Some("help@shop.example"),
                None,
            )),
        ),
        alice.set_contact("shop".into(), None),
    ] {
        ids.push(ok::<IntentResult>(promise).await.id);
    }
    wait_for("alice's writes accepted", WAIT, || {
        ids.iter()
            .all(|id| state_of(&alice, *id).as_deref() == Some("accepted"))
    })
    .await;
    // A contact nobody can reach is refused up front.
    assert_eq!(
        code_of(alice.set_contact(
            "x".into(),
            Some(contact(ContactKind::Bot, None, None, None))
        ))
        .await,
        "missing"
    );

    let check = |c: &ConfabClient| {
        let got: Profile = serde_wasm_bindgen::from_value(c.profile("alice").unwrap()).unwrap();
        assert_eq!(got, profile);
        let prefs = c.preferences(&conv).unwrap().to_rust().unwrap();
        assert!(prefs.muted && !prefs.pinned && !prefs.archived, "{prefs:?}");
        assert_eq!(prefs.notifications, Some(NotificationLevel::Mentions));
        assert_eq!(
            c.draft(&conv).unwrap().as_string().as_deref(),
            Some("half a thought")
        );
        let drafts: Vec<Draft> = c
            .drafts()
            .into_iter()
            .map(|d| d.to_rust().unwrap())
            .collect();
        assert_eq!(
            drafts,
            vec![Draft {
                conv: conv.clone(),
                text: "half a thought".into()
            }]
        );
        let contacts: Vec<ContactEntry> = c
            .contacts()
            .into_iter()
            .map(|e| e.to_rust().unwrap())
            .collect();
        assert_eq!(
            contacts.len(),
            1,
            "the removed contact is gone: {contacts:?}"
        );
        assert_eq!(contacts[0].id, "bob");
        assert_eq!(contacts[0].contact.nickname.as_deref(), Some("Bobby"));
        assert!(c.draft("other").unwrap().is_undefined());
    };
    check(&alice);
    let list = alice.conversations();
    let row: confab_wasm::types::ConversationSummary = list
        .into_iter()
        .map(|r| r.to_rust().unwrap())
        .find(|r: &confab_wasm::types::ConversationSummary| r.conv == conv)
        .unwrap();
    assert!(row.muted);
    let cursors_of = |c: &ConfabClient| -> Vec<Cursor> {
        c.cursors()
            .into_iter()
            .map(|c| c.to_rust().unwrap())
            .collect()
    };
    let seq_of =
        |cursors: &[Cursor], doc: String| cursors.iter().find(|c| c.doc == doc).map(|c| c.seq);
    let private = format!("{}/private/alice", s.tenant);
    let conv_doc = format!("{}/conv/{conv}", s.tenant);
    // An ack does not move a cursor: it moves when the change arrives in order. The group was
    // subscribed only once its creation was acked, so its catch-up may still be on the way.
    wait_for("alice's cursors reach her accepted changes", WAIT, || {
        let cursors = cursors_of(&alice);
        seq_of(&cursors, private.clone()).is_some_and(|seq| seq >= 6)
            && seq_of(&cursors, conv_doc.clone()).is_some_and(|seq| seq >= 1)
    })
    .await;

    // Bob loads alice's profile on demand and follows it live; her private document stays hers.
    assert!(bob.profile("alice").unwrap().is_undefined());
    let bob_events = record(&bob);
    done(bob.open_profile("alice".into())).await.unwrap();
    wait_for("bob sees alice's profile", WAIT, || {
        !bob.profile("alice").unwrap().is_undefined()
    })
    .await;
    assert!(bob.contacts().is_empty() && bob.drafts().is_empty());
    let renamed = Profile {
        display_name: "Alice B.".into(),
        ..profile.clone()
    };
    ok::<IntentResult>(alice.set_profile(tsify::Ts::from_rust(&renamed).unwrap())).await;
    wait_for("bob sees the new name, with a profile event", WAIT, || {
        let got: Option<Profile> =
            serde_wasm_bindgen::from_value(bob.profile("alice").unwrap()).ok();
        got.is_some_and(|p| p.display_name == "Alice B.") && has_event(&bob_events, "profile")
    })
    .await;
    ok::<IntentResult>(alice.set_profile(tsify::Ts::from_rust(&profile).unwrap())).await;
    wait_for("the name is back", WAIT, || {
        let got: Option<Profile> =
            serde_wasm_bindgen::from_value(alice.profile("alice").unwrap()).ok();
        got.is_some_and(|p| p.display_name == "Alice") && alice.outbox().is_empty()
    })
    .await;
    let before = cursors_of(&alice);

    // After a reload, offline, everything is there, cursors included.
    let again = reload(alice, &s, &db).await;
    check(&again);
    let after = cursors_of(&again);
    for doc in [private, conv_doc] {
        assert_eq!(
            seq_of(&after, doc.clone()),
            seq_of(&before, doc),
            "{after:?}"
        );
    }
    done(again.dispose()).await.unwrap();
    done(bob.dispose()).await.unwrap();
    IdbStore::delete_database(&db).await.unwrap();
}
