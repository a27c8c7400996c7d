//! A temporary role given over REST (docs/POLICY.md, "Temporary roles and overrides"): the
//! app in-process on the embedded SQLite store, called with reqwest. The role lapses by the
//! server's clock, with nothing written: views show it lapsed and the acceptor refuses what
//! it allowed.

use confab_core::model::time::format_rfc3339;
use confab_server::engine::now_ms;
use reqwest::Method;
use serde_json::{json, Value};

mod support;

use support::{member, Server};

async fn call(
    s: &Server,
    method: Method,
    path: &str,
    who: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let token = s.mint(who, "user", now_ms() / 1000 + 3600);
    let mut request = s
        .http
        .request(method, format!("{}{path}", s.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const BOB: &str = "/v1/conversations/temp/members/bob";

#[tokio::test]
async fn a_temporary_moderator_given_over_rest_lapses_by_itself() {
    let s = Server::start().await;
    let members = json!([{"account": "bob"}, {"account": "carol"}, {"account": "dave"}]);
    let created = json!({"id": "temp", "kind": "group", "members": members});
    let (status, body) = call(
        &s,
        Method::POST,
        "/v1/conversations",
        "alice",
        Some(created),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Bad input and refusals first: nothing is written.
    let bad = json!({"role": "moderator", "expires_at": "friday"});
    let (status, body) = call(&s, Method::PATCH, BOB, "alice", Some(bad)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_format")),
        "{body}"
    );
    let by_carol = json!({"role": "moderator", "expires_at": format_rfc3339(now_ms() + 60_000)});
    let (status, body) = call(&s, Method::PATCH, BOB, "carol", Some(by_carol)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_too_high")),
        "{body}"
    );

    // Moderator for two seconds.
    let until = now_ms() + 2_000;
    let grant = json!({"role": "moderator", "expires_at": format_rfc3339(until)});
    let (status, conv) = call(&s, Method::PATCH, BOB, "alice", Some(grant.clone())).await;
    assert_eq!(status, 200, "{conv}");
    let bob = member(&conv, "bob");
    assert_eq!(bob["base_role"], "moderator");
    assert_eq!(bob["role_expires_at"], format_rfc3339(until));
    assert_eq!(bob["role_after"], "member");
    let (_, again) = call(&s, Method::PATCH, BOB, "alice", Some(grant)).await;
    assert_eq!(
        member(&again, "bob")["role_expires_at"],
        format_rfc3339(until)
    );
    let (_, list) = call(&s, Method::GET, "/v1/conversations", "bob", None).await;
    assert_eq!(list["conversations"][0]["role"], "moderator", "{list}");
    assert_eq!(
        list["conversations"][0]["role_expires_at"],
        format_rfc3339(until)
    );
    // A moderator removes a member.
    let (status, body) = call(
        &s,
        Method::DELETE,
        "/v1/conversations/temp/members/dave",
        "bob",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Its time comes.
    let wait = u64::try_from(until - now_ms() + 50).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    let (status, body) = call(
        &s,
        Method::DELETE,
        "/v1/conversations/temp/members/carol",
        "bob",
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_too_high")),
        "{body}"
    );
    let (_, conv) = call(&s, Method::GET, "/v1/conversations/temp", "alice", None).await;
    let bob = member(&conv, "bob");
    assert_eq!(bob["base_role"], "member", "{conv}");
    assert_eq!(bob["role_expires_at"], Value::Null);
    assert_eq!(bob["role_after"], Value::Null);
    let (_, list) = call(&s, Method::GET, "/v1/conversations", "bob", None).await;
    assert_eq!(list["conversations"][0]["role"], "member", "{list}");
    assert_eq!(list["conversations"][0]["role_expires_at"], Value::Null);
}

const CAROL_SENDS: &str = "/v1/conversations/temp/members/carol/permissions/can_send_messages";

#[tokio::test]
async fn a_temporary_override_set_over_rest_is_listed_and_lapses_by_itself() {
    let s = Server::start().await;
    let members = json!([{"account": "bob"}, {"account": "carol"}]);
    let created = json!({"id": "temp", "kind": "group", "members": members});
    let (status, body) = call(
        &s,
        Method::POST,
        "/v1/conversations",
        "alice",
        Some(created),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let post = |who: &'static str| {
        let s = &s;
        async move {
            let body = json!({"body": format!("from {who}")});
            let path = "/v1/conversations/temp/messages";
            call(s, Method::POST, path, who, Some(body)).await
        }
    };

    // Bad input and refusals first: nothing is written.
    let until = format_rfc3339(now_ms() + 60_000);
    let unknown = "/v1/conversations/temp/members/carol/permissions/can_fly";
    let (status, body) = call(
        &s,
        Method::PUT,
        unknown,
        "alice",
        Some(json!({"allowed": false})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("unknown_value")),
        "{body}"
    );
    let lone_expiry = json!({"allowed": null, "expires_at": until});
    let (status, body) = call(&s, Method::PUT, CAROL_SENDS, "alice", Some(lone_expiry)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_value")),
        "{body}"
    );
    let by_bob = json!({"allowed": false, "expires_at": until});
    let (status, body) = call(&s, Method::PUT, CAROL_SENDS, "bob", Some(by_bob)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_too_high")),
        "{body}"
    );
    let own = "/v1/conversations/temp/members/alice/permissions/can_send_messages";
    let (status, body) = call(
        &s,
        Method::PUT,
        own,
        "alice",
        Some(json!({"allowed": false})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_too_high")),
        "{body}"
    );
    let (_, conv) = call(&s, Method::GET, "/v1/conversations/temp", "alice", None).await;
    assert_eq!(member(&conv, "carol")["permissions"], json!({}), "{conv}");

    // Carol may not send for two seconds; the conversation lists the override.
    let until = now_ms() + 2_000;
    let mute = json!({"allowed": false, "expires_at": format_rfc3339(until)});
    let (status, conv) = call(&s, Method::PUT, CAROL_SENDS, "alice", Some(mute.clone())).await;
    assert_eq!(status, 200, "{conv}");
    let listed =
        json!({"can_send_messages": {"allowed": false, "expires_at": format_rfc3339(until)}});
    assert_eq!(member(&conv, "carol")["permissions"], listed, "{conv}");
    let (status, again) = call(&s, Method::PUT, CAROL_SENDS, "alice", Some(mute)).await;
    assert_eq!(
        (status, &member(&again, "carol")["permissions"]),
        (200, &listed)
    );
    let (status, body) = post("carol").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("no_permission")),
        "{body}"
    );
    assert_eq!(post("bob").await.0, 201);

    // Its time comes: the role default applies again, with nothing written.
    let wait = u64::try_from(until - now_ms() + 50).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    let (_, conv) = call(&s, Method::GET, "/v1/conversations/temp", "alice", None).await;
    assert_eq!(member(&conv, "carol")["permissions"], json!({}), "{conv}");
    let (status, body) = post("carol").await;
    assert_eq!(status, 201, "{body}");

    // A lasting override, then removed.
    let (status, conv) = call(
        &s,
        Method::PUT,
        CAROL_SENDS,
        "alice",
        Some(json!({"allowed": false})),
    )
    .await;
    let lasting = json!({"can_send_messages": {"allowed": false, "expires_at": null}});
    assert_eq!(
        (status, &member(&conv, "carol")["permissions"]),
        (200, &lasting)
    );
    let (status, conv) = call(
        &s,
        Method::PUT,
        CAROL_SENDS,
        "alice",
        Some(json!({"allowed": null})),
    )
    .await;
    assert_eq!(
        (status, &member(&conv, "carol")["permissions"]),
        (200, &json!({}))
    );
    assert_eq!(post("carol").await.0, 201);
}
