//! `ConfabClient.can()` in headless Chromium, offline, on a stored group of 10
//! (`confab_testkit::group`): the verdicts of the engine's `verdict` for conversation and
//! message actions, and `not_found` for a message that is not loaded.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_testkit::group::Group;
use confab_wasm::policy::{PolicyQuery, PolicyVerdict};
use confab_wasm::store::IdbStore;
use confab_wasm::ConfabClient;
use support::*;
use tsify::Ts;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn can(client: &ConfabClient, query: serde_json::Value) -> Result<PolicyVerdict, String> {
    let query: PolicyQuery = serde_json::from_value(query).unwrap();
    client
        .can(Ts::from_rust(&query).unwrap())
        .map(|v| v.to_rust().unwrap())
        .map_err(|e| {
            js_sys::Reflect::get(&e, &"code".into())
                .ok()
                .and_then(|c| c.as_string())
                .unwrap_or_else(|| format!("{e:?}"))
        })
}

#[wasm_bindgen_test]
async fn can_answers_from_the_cached_view_and_the_bucket() {
    let today = (now() as i64).div_euclid(DEFAULT_BUCKET_MS);
    let group = Group::build(10, 20, today).unwrap();
    let db = unique("can");
    let store = IdbStore::open(&db).await.unwrap();
    store_group(&store, &group).await;
    store.close();
    let client = client(
        "ws://127.0.0.1:9/ws",
        "t",
        confab_testkit::ids::TENANT,
        confab_testkit::group::ME,
        "indexeddb".into(),
        Some(db.clone()),
    );
    done(client.ready()).await.unwrap();
    let conv = group.conv.to_string();
    done(client.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    let (mine, theirs) = (group.mine.to_string(), group.theirs.to_string());

    let send = can(
        &client,
        serde_json::json!({ "action": "send", "conv": conv }),
    )
    .unwrap();
    assert!(send.allowed, "{send:?}");
    let edit_mine = serde_json::json!({ "action": "edit", "conv": conv, "message": mine });
    assert!(can(&client, edit_mine).unwrap().allowed);
    let react = serde_json::json!({ "action": "react", "conv": conv, "message": theirs });
    assert!(can(&client, react).unwrap().allowed);
    // Someone else's message; a plain member removing another plain member.
    let edit_theirs = serde_json::json!({ "action": "edit", "conv": conv, "message": theirs });
    let denied = can(&client, edit_theirs).unwrap();
    assert_eq!(denied.code.as_deref(), Some("not_author"));
    let remove = serde_json::json!({ "action": "remove_member", "conv": conv, "account": "m0002" });
    assert_eq!(
        can(&client, remove).unwrap().code.as_deref(),
        Some("role_too_high")
    );
    let unknown = serde_json::json!({ "action": "react", "conv": conv, "message": "nope" });
    assert_eq!(can(&client, unknown).unwrap_err(), "not_found");

    // After this account leaves, it may not send.
    done(client.leave(conv.clone())).await.unwrap();
    let after = can(
        &client,
        serde_json::json!({ "action": "send", "conv": conv }),
    )
    .unwrap();
    assert_eq!(after.code.as_deref(), Some("member_inactive"));
    done(client.dispose()).await.unwrap();
    IdbStore::delete_database(&db).await.unwrap();
}
