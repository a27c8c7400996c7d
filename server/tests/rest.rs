//! REST over real HTTP: the app in-process on the embedded SQLite store, served on a local
//! port, called with reqwest.

use confab_server::auth::{Authenticator, Claims};
use confab_server::engine::now_ms;
use reqwest::Method;
use serde_json::{json, Value};

mod support;

use support::{member, Server, TENANT};

struct Answer {
    status: u16,
    body: Value,
}

impl Server {
    fn token_with(&self, account: &str, kind: &str, exp: i64) -> String {
        self.mint(account, kind, exp)
    }

    fn user(&self, account: &str) -> String {
        self.token_with(account, "user", now_ms() / 1000 + 3600)
    }

    fn service(&self, account: &str) -> String {
        self.token_with(account, "service", now_ms() / 1000 + 3600)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
        };
        Answer { status, body }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    async fn delete(&self, path: &str, token: &str) -> Answer {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }
}

#[track_caller]
fn expect(answer: &Answer, status: u16) -> &Value {
    assert_eq!(answer.status, status, "unexpected answer: {}", answer.body);
    &answer.body
}

#[track_caller]
fn expect_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "unexpected answer: {}", answer.body);
    assert_eq!(
        answer.body["code"], code,
        "unexpected error: {}",
        answer.body
    );
    assert!(answer.body["message"].is_string(), "{}", answer.body);
}

fn ids(page: &Value) -> Vec<String> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn direct_is_found_or_created_with_one_body_from_both_sides() {
    let s = Server::start().await;
    let (alice, bob) = (s.user("alice"), s.user("bob"));

    let created = s
        .post("/v1/conversations/direct", &alice, json!({"peer": "bob"}))
        .await;
    let body = expect(&created, 201).clone();
    assert_eq!(body["type"], "direct");
    assert!(body["id"].as_str().expect("id").starts_with("d-"));
    assert_eq!(body["members"].as_array().expect("members").len(), 2);
    assert_eq!(member(&body, "alice")["base_role"], "member");
    assert_eq!(member(&body, "bob")["is_active"], true);
    assert_eq!(body["settings"]["send_policy"], "all_members");
    assert_eq!(body["created_at"], Value::Null);

    let again = s
        .post("/v1/conversations/direct", &alice, json!({"peer": "bob"}))
        .await;
    assert_eq!(expect(&again, 200), &body);
    let other_side = s
        .post(
            "/v1/conversations/direct",
            &bob,
            json!({"peer_user_id": "alice"}),
        )
        .await;
    assert_eq!(expect(&other_side, 200), &body);

    let id = body["id"].as_str().expect("id");
    assert_eq!(
        expect(&s.get(&format!("/v1/conversations/{id}"), &bob).await, 200),
        &body
    );

    // The pair's encrypted one is another conversation, found the same from both sides.
    let sealed = s
        .post(
            "/v1/conversations/direct",
            &bob,
            json!({"peer": "alice", "encrypted": true}),
        )
        .await;
    let sealed = expect(&sealed, 201).clone();
    assert_ne!(sealed["id"], body["id"]);
    assert!(sealed["id"].as_str().expect("id").starts_with("d-"));
    assert_eq!(sealed["encryption"]["enabled"], true);
    assert_eq!(body["encryption"]["enabled"], false);
    let found = s
        .post(
            "/v1/conversations/direct",
            &alice,
            json!({"peer": "bob", "encrypted": true}),
        )
        .await;
    assert_eq!(expect(&found, 200), &sealed);

    // Concurrent first requests from both sides still make one conversation.
    let (carol, dave) = (s.user("carol"), s.user("dave"));
    let (a, b) = tokio::join!(
        s.post("/v1/conversations/direct", &carol, json!({"peer": "dave"})),
        s.post("/v1/conversations/direct", &dave, json!({"peer": "carol"})),
    );
    assert!(
        [200, 201].contains(&a.status) && [200, 201].contains(&b.status),
        "{} {}",
        a.body,
        b.body
    );
    assert!(a.status == 201 || b.status == 201);
    assert_eq!(a.body, b.body);
    let list = s.get("/v1/conversations", &carol).await;
    assert_eq!(
        expect(&list, 200)["conversations"]
            .as_array()
            .expect("list")
            .len(),
        1
    );

    let myself = s
        .post("/v1/conversations/direct", &alice, json!({"peer": "alice"}))
        .await;
    expect_error(&myself, 422, "invalid_value");
    let bad_peer = s
        .post("/v1/conversations/direct", &alice, json!({"peer": "a/b"}))
        .await;
    expect_error(&bad_peer, 422, "invalid_value");
}

#[tokio::test]
async fn group_members_messages_list_and_pages() {
    let s = Server::start().await;
    let (alice, bob, carol, dave) = (
        s.user("alice"),
        s.user("bob"),
        s.user("carol"),
        s.user("dave"),
    );

    let created = s
        .post(
            "/v1/conversations",
            &alice,
            json!({
                "kind": "group",
                "id": "team",
                "title": "Team",
                "description": "Our room",
                "members": [{"account": "bob"}],
                "settings": {"allow_stickers": false, "message_retention_days": 30}
            }),
        )
        .await;
    let conv = expect(&created, 201);
    assert_eq!(conv["id"], "team");
    assert_eq!(conv["type"], "group");
    assert_eq!(conv["title"], "Team");
    assert_eq!(conv["created_by"], "alice");
    assert!(conv["created_at"].as_str().expect("time").ends_with('Z'));
    assert_eq!(conv["settings"]["allow_stickers"], false);
    assert_eq!(conv["settings"]["message_retention_days"], 30);
    assert_eq!(member(conv, "alice")["base_role"], "owner");
    assert_eq!(member(conv, "bob")["base_role"], "member");
    assert_eq!(member(conv, "bob")["invited_by"], "alice");
    assert_eq!(conv["encryption"]["enabled"], false);
    assert_eq!(conv["encryption"]["protocol"], Value::Null);

    // Encrypted at creation: the block says so; its group is made by a member's device.
    let sealed = s
        .post(
            "/v1/conversations",
            &alice,
            json!({"kind": "group", "id": "vault", "encrypted": true, "members": [{"account": "bob"}]}),
        )
        .await;
    let sealed = expect(&sealed, 201);
    assert_eq!(sealed["encryption"]["enabled"], true);
    assert_eq!(sealed["encryption"]["protocol"], "mls");
    assert_eq!(
        sealed["encryption"]["group_id"],
        format!("{TENANT}/conv/vault")
    );
    assert_eq!(sealed["encryption"]["key_version"], Value::Null);
    let plain_post = s
        .post(
            "/v1/conversations/vault/messages",
            &alice,
            json!({"body": "in the clear"}),
        )
        .await;
    expect_error(&plain_post, 403, "plaintext_in_encrypted");
    let channel = s
        .post(
            "/v1/conversations",
            &alice,
            json!({"kind": "channel", "id": "news", "encrypted": true}),
        )
        .await;
    expect_error(&channel, 403, "encryption_not_allowed");

    let twice = s
        .post(
            "/v1/conversations",
            &alice,
            json!({"kind": "group", "id": "team"}),
        )
        .await;
    expect_error(&twice, 409, "already_created");
    let squat = s
        .post(
            "/v1/conversations",
            &alice,
            json!({"kind": "group", "id": "d-abc"}),
        )
        .await;
    expect_error(&squat, 422, "invalid_value");
    let long = s
        .post(
            "/v1/conversations",
            &alice,
            json!({"kind": "group", "title": "x".repeat(201)}),
        )
        .await;
    expect_error(&long, 422, "too_long");
    let generated = s
        .post("/v1/conversations", &alice, json!({"kind": "channel"}))
        .await;
    let channel = expect(&generated, 201);
    assert!(channel["id"].as_str().expect("id").starts_with("c-"));
    assert_eq!(channel["settings"]["send_policy"], "admins_only");

    // Members: alice adds carol; bob (member) may not add an admin.
    let added = s
        .post(
            "/v1/conversations/team/members",
            &alice,
            json!({"account": "carol"}),
        )
        .await;
    assert_eq!(member(expect(&added, 200), "carol")["status"], "active");
    let again = s
        .post(
            "/v1/conversations/team/members",
            &alice,
            json!({"account": "carol"}),
        )
        .await;
    expect(&again, 200);
    let too_high = s
        .post(
            "/v1/conversations/team/members",
            &bob,
            json!({"account": "erin", "role": "admin"}),
        )
        .await;
    expect_error(&too_high, 403, "role_too_high");
    let outsider = s
        .post(
            "/v1/conversations/team/members",
            &dave,
            json!({"account": "dave"}),
        )
        .await;
    expect_error(&outsider, 403, "join_not_allowed");
    let peek = s
        .post(
            "/v1/conversations/team/members",
            &dave,
            json!({"account": "alice"}),
        )
        .await;
    expect_error(&peek, 403, "not_member");

    // Messages.
    let first = s
        .post(
            "/v1/conversations/team/messages",
            &bob,
            json!({"body": "hi from bob"}),
        )
        .await;
    let first = expect(&first, 201).clone();
    assert!(first["seq"].as_u64().expect("seq") >= 1);
    assert!(first["doc"]
        .as_str()
        .expect("doc")
        .starts_with("acme/msgs/team."));
    let long_body = "é".repeat(150);
    for (i, body) in ["one", "two", "three", &long_body].iter().enumerate() {
        let posted = s
            .post(
                "/v1/conversations/team/messages",
                &alice,
                json!({"id": format!("a{i}"), "kind": "text", "body": body}),
            )
            .await;
        assert_eq!(expect(&posted, 201)["id"], format!("a{i}"));
    }
    let duplicate = s
        .post(
            "/v1/conversations/team/messages",
            &alice,
            json!({"id": "a0", "body": "x"}),
        )
        .await;
    expect_error(&duplicate, 409, "already_exists");
    let empty = s
        .post(
            "/v1/conversations/team/messages",
            &alice,
            json!({"body": ""}),
        )
        .await;
    expect_error(&empty, 422, "empty");
    let stranger = s
        .post(
            "/v1/conversations/team/messages",
            &dave,
            json!({"body": "let me in"}),
        )
        .await;
    expect_error(&stranger, 403, "not_member");

    // Carol's list: unread counts and the last message.
    let list = s.get("/v1/conversations", &carol).await;
    let list = expect(&list, 200)["conversations"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(list.len(), 1);
    let team = &list[0];
    assert_eq!(team["id"], "team");
    assert_eq!(team["title"], "Team");
    assert_eq!(team["role"], "member");
    assert_eq!(team["unread_count"], 5);
    assert_eq!(team["last_message"]["id"], "a3");
    assert_eq!(team["last_message"]["author"], "alice");
    assert_eq!(
        team["last_message"]["preview"]
            .as_str()
            .expect("preview")
            .chars()
            .count(),
        100
    );
    let alices = s.get("/v1/conversations", &alice).await;
    let alices = expect(&alices, 200)["conversations"]
        .as_array()
        .expect("list")
        .clone();
    let team = alices
        .iter()
        .find(|c| c["id"] == "team")
        .expect("team listed");
    assert_eq!(
        team["unread_count"], 1,
        "only bob's message is unread for alice"
    );
    assert_eq!(team["role"], "owner");

    // Pages, newest first.
    let page = s
        .get("/v1/conversations/team/messages?limit=2", &carol)
        .await;
    let page = expect(&page, 200).clone();
    assert_eq!(ids(&page), ["a3", "a2"]);
    assert_eq!(
        page["messages"][0]["body"], long_body,
        "the full body, not the preview"
    );
    assert_eq!(page["messages"][0]["author"], "alice");
    assert_eq!(page["messages"][0]["kind"], "text");
    let cursor = page["next_before"].as_i64().expect("cursor");
    let page2 = s
        .get(
            &format!("/v1/conversations/team/messages?limit=2&before={cursor}"),
            &carol,
        )
        .await;
    let page2 = expect(&page2, 200).clone();
    assert_eq!(ids(&page2), ["a1", "a0"]);
    let cursor = page2["next_before"].as_i64().expect("cursor");
    let page3 = s
        .get(
            &format!("/v1/conversations/team/messages?limit=2&before={cursor}"),
            &carol,
        )
        .await;
    let page3 = expect(&page3, 200).clone();
    assert_eq!(ids(&page3), [first["id"].as_str().expect("id")]);
    assert_eq!(page3["messages"][0]["body"], "hi from bob");
    assert_eq!(page3["next_before"], Value::Null);
    let all = s.get("/v1/conversations/team/messages", &bob).await;
    assert_eq!(ids(expect(&all, 200)).len(), 5);
    let bad_limit = s
        .get("/v1/conversations/team/messages?limit=500", &bob)
        .await;
    expect_error(&bad_limit, 422, "out_of_range");

    // Read access.
    expect_error(
        &s.get("/v1/conversations/team", &dave).await,
        403,
        "not_member",
    );
    expect_error(
        &s.get("/v1/conversations/team/messages", &dave).await,
        403,
        "not_member",
    );
    expect_error(
        &s.get("/v1/conversations/nope", &alice).await,
        404,
        "not_found",
    );
    expect_error(
        &s.get("/v1/conversations/no.pe", &alice).await,
        404,
        "not_found",
    );

    // A thread under one of the messages.
    let thread = s
        .post(
            "/v1/conversations",
            &bob,
            json!({"kind": "thread", "id": "team-t1", "parent": "team", "parent_message": "a1"}),
        )
        .await;
    let thread = expect(&thread, 201);
    assert_eq!(
        thread["parent"],
        json!({"conversation": "team", "message": "a1", "depth": 1})
    );
    let joined = s
        .post(
            "/v1/conversations/team-t1/members",
            &carol,
            json!({"account": "carol"}),
        )
        .await;
    let joined = expect(&joined, 200);
    assert_eq!(member(joined, "carol")["base_role"], "member");
    assert_eq!(member(joined, "carol")["invited_by"], Value::Null);
    let by_outsider = s
        .post(
            "/v1/conversations",
            &dave,
            json!({"kind": "thread", "parent": "team", "parent_message": "a1"}),
        )
        .await;
    expect_error(&by_outsider, 403, "not_member");
    let orphan = s
        .post("/v1/conversations", &bob, json!({"kind": "thread"}))
        .await;
    expect_error(&orphan, 422, "missing");

    // Removing and leaving.
    let bob_removes_alice = s.delete("/v1/conversations/team/members/alice", &bob).await;
    expect_error(&bob_removes_alice, 403, "owner_must_transfer");
    let removed = s
        .delete("/v1/conversations/team/members/carol", &alice)
        .await;
    assert_eq!(member(expect(&removed, 200), "carol")["status"], "removed");
    expect_error(
        &s.get("/v1/conversations/team", &carol).await,
        403,
        "member_inactive",
    );
    let left = s.delete("/v1/conversations/team/members/bob", &bob).await;
    let left = expect(&left, 200);
    assert_eq!(member(left, "bob")["status"], "left");
    assert!(member(left, "bob")["left_at"].is_string());
    let gone = s.delete("/v1/conversations/team/members/zed", &alice).await;
    expect_error(&gone, 404, "not_found");
    let list = s.get("/v1/conversations", &carol).await;
    let listed: Vec<&Value> = expect(&list, 200)["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| &c["id"])
        .collect();
    // Team is gone from carol's list, and so is its thread: she keeps her entry there, but
    // threads follow their parent.
    assert!(listed.is_empty(), "{listed:?}");
    expect_error(
        &s.get("/v1/conversations/team-t1", &carol).await,
        403,
        "not_parent_member",
    );
}

#[tokio::test]
async fn system_messages_come_from_service_accounts() {
    let s = Server::start().await;
    let (alice, bot) = (s.user("alice"), s.service("bot"));
    let created = s
        .post(
            "/v1/conversations",
            &alice,
            json!({"kind": "group", "id": "g1", "members": [{"account": "bob"}]}),
        )
        .await;
    expect(&created, 201);

    let by_user = s
        .post(
            "/v1/conversations/g1/messages",
            &alice,
            json!({"kind": "system", "body": "I am the system"}),
        )
        .await;
    expect_error(&by_user, 403, "service_only");
    let by_service = s
        .post(
            "/v1/conversations/g1/messages",
            &bot,
            json!({"kind": "system", "body": "Bob joined"}),
        )
        .await;
    expect(&by_service, 201);
    let text_by_service = s
        .post(
            "/v1/conversations/g1/messages",
            &bot,
            json!({"body": "hello"}),
        )
        .await;
    expect_error(&text_by_service, 403, "not_member");

    // Service accounts read without being members.
    expect(&s.get("/v1/conversations/g1", &bot).await, 200);
    let page = s.get("/v1/conversations/g1/messages", &bot).await;
    let page = expect(&page, 200);
    assert_eq!(page["messages"][0]["kind"], "system");
    assert_eq!(page["messages"][0]["author"], "bot");

    let system_conv = s
        .post("/v1/conversations", &alice, json!({"kind": "system"}))
        .await;
    expect_error(&system_conv, 403, "service_only");
    let by_bot = s
        .post(
            "/v1/conversations",
            &bot,
            json!({"kind": "system", "id": "notices"}),
        )
        .await;
    assert_eq!(member(expect(&by_bot, 201), "bot")["base_role"], "owner");
}

fn proposal_payload() -> Value {
    json!({
        "proposalType": "visit",
        "timeStart": "2099-04-15T16:00:00.000Z",
        "timeEnd": "2099-04-15T16:30:00.000Z",
        "timezone": "America/Mexico_City",
        "meetingType": "on_site",
        "location": "Address or call link",
        "fromResourceAddress": true,
        "status": "pending",
        "expiresAt": "2099-04-14T00:00:00.000Z",
        "createdByRole": "owner"
    })
}

#[tokio::test]
async fn proposals_in_a_support_thread() {
    let s = Server::start().await;
    let (client, owner, staff, eve) = (
        s.user("carl"),
        s.user("olivia"),
        s.service("booking"),
        s.user("eve"),
    );
    let link = json!({"client": "carl", "resource": "room-12", "owner": "olivia"});

    let created = s
        .post("/v1/conversations/support", &client, link.clone())
        .await;
    let conv = expect(&created, 201).clone();
    assert_eq!(conv["type"], "support");
    assert!(conv["id"].as_str().expect("id").starts_with("s-"));
    assert_eq!(
        conv["resource"],
        json!({"resource": "room-12", "client": "carl", "owner": "olivia",
            "client_name": null, "owner_name": null, "lead": null, "outcome": null,
            "closure_reason": null})
    );
    assert_eq!(member(&conv, "olivia")["base_role"], "owner");
    assert_eq!(member(&conv, "carl")["base_role"], "member");
    let found = s
        .post("/v1/conversations/support", &owner, link.clone())
        .await;
    assert_eq!(expect(&found, 200), &conv);
    let by_service = s
        .post("/v1/conversations/support", &staff, link.clone())
        .await;
    assert_eq!(expect(&by_service, 200), &conv);
    let by_stranger = s.post("/v1/conversations/support", &eve, link).await;
    expect_error(&by_stranger, 403, "not_member");
    let false_owner = s
        .post(
            "/v1/conversations/support",
            &eve,
            json!({"client": "carl", "resource": "room-12", "owner": "eve"}),
        )
        .await;
    expect_error(&false_owner, 403, "not_member");
    let id = conv["id"].as_str().expect("id").to_owned();
    let messages = format!("/v1/conversations/{id}/messages");

    // The client asks, the service proposes (a proposal payload), the client may not propose.
    let ask = s
        .post(&messages, &client, json!({"body": "Can I visit?"}))
        .await;
    expect(&ask, 201);
    let proposal = s
        .post(
            &messages,
            &staff,
            json!({"id": "p1", "kind": "proposal", "body": "Visit on April 15", "payload": proposal_payload()}),
        )
        .await;
    expect(&proposal, 201);
    let own = s
        .post(
            &messages,
            &owner,
            json!({"id": "p2", "kind": "proposal", "body": "Or the 16th", "payload": proposal_payload().to_string()}),
        )
        .await;
    expect(&own, 201);
    let from_client = s
        .post(
            &messages,
            &client,
            json!({"kind": "proposal", "body": "My offer", "payload": proposal_payload()}),
        )
        .await;
    expect_error(&from_client, 403, "not_counterparty");
    let bad_payload = s
        .post(
            &messages,
            &staff,
            json!({"kind": "proposal", "body": "?", "payload": {"proposalType": "visit"}}),
        )
        .await;
    expect_error(&bad_payload, 422, "invalid_format");

    // Answers: only the counterparty, only from pending.
    let status = |m: &str| format!("/v1/conversations/{id}/messages/{m}/status");
    let owner_accepts = s
        .post(&status("p1"), &owner, json!({"status": "accepted"}))
        .await;
    expect_error(&owner_accepts, 403, "not_counterparty");
    let owner_accepts_own = s
        .post(&status("p2"), &owner, json!({"status": "accepted"}))
        .await;
    expect_error(&owner_accepts_own, 403, "not_counterparty");
    let accepted = s
        .post(&status("p1"), &client, json!({"status": "accepted"}))
        .await;
    let accepted = expect(&accepted, 200);
    assert_eq!(accepted["id"], "p1");
    assert_eq!(accepted["status"], "accepted");
    let twice = s
        .post(&status("p1"), &client, json!({"status": "rejected"}))
        .await;
    expect_error(&twice, 403, "proposal_transition");
    let pending = s
        .post(&status("p2"), &client, json!({"status": "pending"}))
        .await;
    expect_error(&pending, 422, "invalid_value");
    let unknown = s
        .post(&status("nope"), &client, json!({"status": "accepted"}))
        .await;
    expect_error(&unknown, 404, "not_found");
    let not_proposal = s
        .post(
            &status(ask.body["id"].as_str().expect("id")),
            &owner,
            json!({"status": "accepted"}),
        )
        .await;
    expect_error(&not_proposal, 422, "invalid_value");
    let by_stranger = s
        .post(&status("p2"), &eve, json!({"status": "accepted"}))
        .await;
    expect_error(&by_stranger, 403, "not_member");

    // The client's written answer to the second proposal moves its status with it; a
    // second answer is refused whole, the response too.
    let response = s
        .post(
            &messages,
            &client,
            json!({
                "kind": "proposal_response",
                "body": "Can we move it?",
                "reply_to": "p2",
                "payload": {"response": "request_change", "comment": "Can we move it to tomorrow?"}
            }),
        )
        .await;
    expect(&response, 201);
    let again = s
        .post(
            &messages,
            &client,
            json!({
                "kind": "proposal_response",
                "reply_to": "p2",
                "payload": {"response": "accept"}
            }),
        )
        .await;
    expect_error(&again, 403, "proposal_transition");
    let moved = s
        .post(&status("p2"), &client, json!({"status": "accepted"}))
        .await;
    expect_error(&moved, 403, "proposal_transition");

    let page = s.get(&messages, &owner).await;
    let page = expect(&page, 200);
    let by_id = |m: &str| {
        page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .find(|x| x["id"] == m)
            .cloned()
            .unwrap_or_else(|| panic!("{m} missing"))
    };
    assert_eq!(by_id("p1")["status"], "accepted");
    assert_eq!(by_id("p1")["payload"]["proposalType"], "visit");
    assert_eq!(by_id("p1")["author"], "booking");
    assert_eq!(by_id("p2")["status"], "reschedule_requested");
    assert_eq!(
        by_id("p2")["payload"]["status"],
        "reschedule_requested",
        "the payload shows the status the proposal holds"
    );
    assert_eq!(page["messages"][0]["kind"], "proposal_response");
    assert_eq!(page["messages"][0]["reply_to"], "p2");
}

#[tokio::test]
async fn tokens_and_bodies_are_checked() {
    let s = Server::start().await;
    let expired = s.token_with("alice", "user", now_ms() / 1000 - 10);
    let answer = s.get("/v1/conversations", &expired).await;
    expect_error(&answer, 401, "token_expired");
    let forged = Authenticator::hs256(b"other-secret")
        .mint(&Claims {
            sub: "alice".into(),
            tenant: TENANT.into(),
            exp: now_ms() / 1000 + 60,
            kind: "user".into(),
        })
        .expect("mint");
    expect_error(
        &s.get("/v1/conversations", &forged).await,
        401,
        "auth_failed",
    );
    let missing = s.call(Method::GET, "/v1/conversations", None, None).await;
    expect_error(&missing, 401, "auth_failed");
    let no_token_write = s
        .call(
            Method::POST,
            "/v1/conversations/direct",
            None,
            Some(json!({"peer": "bob"})),
        )
        .await;
    expect_error(&no_token_write, 401, "auth_failed");

    let alice = s.user("alice");
    let raw = s
        .http
        .post(format!("{}/v1/conversations/direct", s.base))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{\"peer\": ")
        .send()
        .await
        .expect("request");
    assert_eq!(raw.status().as_u16(), 400);
    let body: Value = raw.json().await.expect("json error");
    assert_eq!(body["code"], "bad_request");

    let unknown = s
        .post(
            "/v1/conversations/direct",
            &alice,
            json!({"peer": "bob", "x": 1}),
        )
        .await;
    expect_error(&unknown, 422, "unknown_key");
    let wrong = s
        .post(
            "/v1/conversations",
            &alice,
            json!({"kind": "group", "title": 5}),
        )
        .await;
    expect_error(&wrong, 422, "wrong_type");
    let kind = s
        .post("/v1/conversations", &alice, json!({"kind": "party"}))
        .await;
    expect_error(&kind, 422, "invalid_value");
}

#[tokio::test]
async fn openapi_describes_every_endpoint() {
    let s = Server::start().await;
    let response = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    let doc: Value = response.json().await.expect("the document is JSON");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    let expected = [
        ("/v1/conversations", "get"),
        ("/v1/conversations", "post"),
        ("/v1/conversations/direct", "post"),
        ("/v1/conversations/discover", "get"),
        ("/v1/conversations/support", "post"),
        ("/v1/conversations/{id}", "get"),
        ("/v1/conversations/{id}", "delete"),
        ("/v1/conversations/{id}/settings", "patch"),
        ("/v1/conversations/{id}/can", "get"),
        ("/v1/conversations/{id}/owner", "post"),
        ("/v1/conversations/{id}/hide", "post"),
        ("/v1/conversations/{id}/hide", "delete"),
        ("/v1/conversations/{id}/members", "post"),
        ("/v1/conversations/{id}/members/{account}", "delete"),
        ("/v1/conversations/{id}/members/{account}", "patch"),
        (
            "/v1/conversations/{id}/members/{account}/permissions/{permission}",
            "put",
        ),
        ("/v1/conversations/{id}/messages", "get"),
        ("/v1/conversations/{id}/messages", "post"),
        ("/v1/conversations/{id}/messages/{message}/status", "post"),
        // What services do to a posted message (server/tests/rest_edits.rs).
        ("/v1/conversations/{id}/messages/{message}", "patch"),
        ("/v1/conversations/{id}/messages/{message}", "delete"),
        (
            "/v1/conversations/{id}/messages/{message}/reactions/{emoji}",
            "put",
        ),
        (
            "/v1/conversations/{id}/messages/{message}/reactions/{emoji}",
            "delete",
        ),
        ("/v1/conversations/{id}/pins/{message}", "put"),
        ("/v1/conversations/{id}/pins/{message}", "delete"),
        ("/v1/conversations/{id}/stats", "get"),
        ("/v1/scheduled", "get"),
        ("/v1/scheduled", "post"),
        ("/v1/scheduled/{id}", "patch"),
        ("/v1/scheduled/{id}", "delete"),
        ("/v1/conversations/{id}/join-requests", "get"),
        ("/v1/conversations/{id}/join-requests", "post"),
        ("/v1/conversations/{id}/join-requests/{account}", "delete"),
        (
            "/v1/conversations/{id}/join-requests/{account}/approve",
            "post",
        ),
        (
            "/v1/conversations/{id}/join-requests/{account}/decline",
            "post",
        ),
        ("/v1/conversations/{id}/invites", "get"),
        ("/v1/conversations/{id}/invites", "post"),
        ("/v1/conversations/{id}/invites/{invite}", "delete"),
        ("/v1/invites/join", "post"),
        ("/openapi.json", "get"),
        // Attachments (their DELETE of an upload answers no 422, so it is not listed here).
        ("/v1/conversations/{id}/attachments/{hash}", "put"),
        ("/v1/conversations/{id}/attachments/{hash}", "get"),
        ("/v1/conversations/{id}/attachments/{hash}/thumbnail", "get"),
        ("/v1/conversations/{id}/attachments/{hash}/copy", "post"),
        ("/v1/conversations/{id}/uploads", "post"),
        ("/v1/conversations/{id}/uploads/{upload}", "get"),
        ("/v1/conversations/{id}/uploads/{upload}", "patch"),
        // Notifications and contacts (docs/NOTIFICATIONS.md, docs/CONTACTS.md).
        ("/v1/notifications", "get"),
        ("/v1/notifications/read", "post"),
        ("/v1/contacts/match", "post"),
        ("/v1/accounts/{account}/identifiers", "put"),
        // Search (docs/SEARCH.md).
        ("/v1/search", "get"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 41, "{:?}", paths.keys().collect::<Vec<_>>());
    for (path, method) in expected {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))[method];
        assert!(op.is_object(), "{method} {path} missing");
        let responses = op["responses"].as_object().expect("responses");
        if path != "/openapi.json" {
            for status in ["401", "422"] {
                let needs = status != "422" || method != "get" || path.ends_with("/messages");
                if needs {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            // Asking to join and declining name everything in the path.
            let bodiless = [
                "/v1/conversations/{id}/join-requests",
                "/v1/conversations/{id}/join-requests/{account}/decline",
                "/v1/conversations/{id}/hide",
            ];
            if (method == "post" || method == "patch") && !bodiless.contains(&path) {
                assert!(
                    op["requestBody"].is_object(),
                    "{method} {path} lacks a request body"
                );
            }
        }
    }
    // Every reference resolves.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

const SETTINGS: &str = "/v1/conversations/ops/settings";

/// Lock, delete, and the permission question for outside
/// services, through REST as an integration uses them.
#[tokio::test]
async fn lock_delete_and_the_permission_question() {
    let s = Server::start().await;
    let (alice, bob, bot) = (s.user("alice"), s.user("bob"), s.service("bot"));
    let created = s
        .post(
            "/v1/conversations",
            &alice,
            json!({"kind": "group", "id": "ops", "members": [{"account": "bob"}]}),
        )
        .await;
    expect(&created, 201);
    let can = |account: &str, action: &str| {
        format!("/v1/conversations/ops/can?account={account}&action={action}")
    };
    let verdict = expect(&s.get(&can("bob", "send"), &bot).await, 200).clone();
    assert_eq!(verdict, json!({"allowed": true}));
    let stranger = expect(&s.get(&can("mallory", "read"), &bot).await, 200).clone();
    assert_eq!(stranger["allowed"], false);
    assert_eq!(stranger["code"], "not_member");
    expect_error(&s.get(&can("bob", "send"), &bob).await, 403, "service_only");
    expect_error(&s.get(&can("bob", "fly"), &bot).await, 422, "invalid_value");
    let no_target = s.get(&can("alice", "remove_member"), &bot).await;
    expect_error(&no_target, 422, "missing");
    let removal = format!("{}&target=alice", can("bob", "remove_member"));
    assert_eq!(
        expect(&s.get(&removal, &bot).await, 200)["code"],
        "owner_must_transfer"
    );

    // Lock: only admins; then nobody posts, and the service's question says so.
    expect_error(
        &s.patch(SETTINGS, &bob, json!({"locked": true})).await,
        403,
        "no_permission",
    );
    expect_error(
        &s.patch(SETTINGS, &alice, json!({})).await,
        422,
        "invalid_value",
    );
    expect_error(
        &s.patch(SETTINGS, &alice, json!({"locked": "yes"})).await,
        422,
        "wrong_type",
    );
    let locked = s.patch(SETTINGS, &alice, json!({"locked": true})).await;
    assert_eq!(expect(&locked, 200)["is_locked"], true);
    assert_eq!(locked.body["settings"]["locked"], true);
    let post = json!({"body": "anyone?"});
    let refused = s
        .post("/v1/conversations/ops/messages", &bob, post.clone())
        .await;
    expect_error(&refused, 403, "conversation_locked");
    let refused = s
        .post("/v1/conversations/ops/messages", &alice, post.clone())
        .await;
    expect_error(&refused, 403, "conversation_locked");
    let verdict = expect(&s.get(&can("bob", "send"), &bot).await, 200).clone();
    assert_eq!(verdict["code"], "conversation_locked");
    let unlocked = s.patch(SETTINGS, &alice, json!({"locked": false})).await;
    assert_eq!(expect(&unlocked, 200)["is_locked"], false);
    expect(
        &s.post("/v1/conversations/ops/messages", &bob, post.clone())
            .await,
        201,
    );

    // Delete: only the owner; final; gone from lists; history still readable to members.
    expect_error(
        &s.delete("/v1/conversations/ops", &bob).await,
        403,
        "no_permission",
    );
    let gone = s.delete("/v1/conversations/ops", &alice).await;
    let gone = expect(&gone, 200).clone();
    assert_eq!(gone["lifecycle"], "deleted");
    assert!(gone["deleted_at"]
        .as_str()
        .expect("deleted_at")
        .ends_with('Z'));
    expect(&s.delete("/v1/conversations/ops", &alice).await, 200);
    let listed = expect(&s.get("/v1/conversations", &bob).await, 200).clone();
    assert!(
        listed["conversations"].as_array().expect("list").is_empty(),
        "{listed}"
    );
    let read = s.get("/v1/conversations/ops/messages", &bob).await;
    assert_eq!(ids(expect(&read, 200)).len(), 1);
    let refused = s.post("/v1/conversations/ops/messages", &bob, post).await;
    expect_error(&refused, 403, "conversation_deleted");
    let reopened = s.patch(SETTINGS, &alice, json!({"locked": true})).await;
    expect_error(&reopened, 403, "conversation_deleted");
    let verdict = expect(&s.get(&can("alice", "send"), &bot).await, 200).clone();
    assert_eq!(verdict["code"], "conversation_deleted");
    expect_error(
        &s.delete("/v1/conversations/ops", &s.user("mallory")).await,
        403,
        "not_member",
    );
}

#[tokio::test]
async fn a_support_threads_lead_is_named_and_closed_with_its_outcome() {
    let s = Server::start().await;
    let (client, owner) = (s.user("carl"), s.user("olivia"));
    let link = json!({"client": "carl", "resource": "room-9", "owner": "olivia"});
    let created = s.post("/v1/conversations/support", &client, link).await;
    let id = expect(&created, 201)["id"].as_str().expect("id").to_owned();
    let lead = format!("/v1/conversations/{id}/lead");

    // Bad requests change nothing.
    let empty = s.post(&lead, &owner, json!({})).await;
    expect_error(&empty, 422, "invalid_value");
    let reason_alone = s.post(&lead, &owner, json!({"reason": "why"})).await;
    expect_error(&reason_alone, 422, "invalid_value");
    let unknown = s.post(&lead, &owner, json!({"outcome": "maybe"})).await;
    assert_eq!(unknown.status / 100, 4, "{}", unknown.body);
    // The client is a member, not a moderator: refused by the policy, as over the protocol.
    let by_client = s
        .post(&lead, &client, json!({"outcome": "closed_won"}))
        .await;
    assert_eq!(by_client.status, 403, "{}", by_client.body);
    let still = expect(
        &s.get(&format!("/v1/conversations/{id}"), &owner).await,
        200,
    )
    .clone();
    assert_eq!(still["resource"]["outcome"], Value::Null);
    assert_eq!(still["lifecycle"], "active");

    // The owner names the lead and closes the thread with its outcome.
    let closed = s
        .post(
            &lead,
            &owner,
            json!({"lead": "L-7", "outcome": "closed_won", "reason": "booked the room"}),
        )
        .await;
    let closed = expect(&closed, 200);
    assert_eq!(closed["lifecycle"], "closed");
    assert_eq!(closed["resource"]["lead"], "L-7");
    assert_eq!(closed["resource"]["outcome"], "closed_won");
    assert_eq!(closed["resource"]["closure_reason"], "booked the room");

    // Outside support threads there is no lead.
    let group = s
        .post("/v1/conversations", &owner, json!({"kind": "group"}))
        .await;
    let group_id = expect(&group, 201)["id"].as_str().expect("id").to_owned();
    let in_group = s
        .post(
            &format!("/v1/conversations/{group_id}/lead"),
            &owner,
            json!({"lead": "L-8"}),
        )
        .await;
    assert_eq!(in_group.status / 100, 4, "{}", in_group.body);
    assert_eq!(in_group.body["code"], "support_only", "{}", in_group.body);
}

/// A client's encrypted support thread is another conversation than its plaintext one,
/// found the same by both parties; REST writes its creation, names and lead (changes of no
/// device, which commit nothing), shows its `encryption`, and cannot post into it.
#[tokio::test]
async fn an_encrypted_support_thread_is_found_apart_from_the_plaintext_one() {
    let s = Server::start().await;
    let (client, owner) = (s.user("carl"), s.user("olivia"));
    let plain = s
        .post(
            "/v1/conversations/support",
            &client,
            json!({"client": "carl", "resource": "room-3", "owner": "olivia"}),
        )
        .await;
    let plain = expect(&plain, 201).clone();
    let open = json!({"client": "carl", "resource": "room-3", "owner": "olivia",
        "encrypted": true, "client_name": "Carl"});
    let sealed = s
        .post("/v1/conversations/support", &client, open.clone())
        .await;
    let sealed = expect(&sealed, 201).clone();
    let id = sealed["id"].as_str().expect("id").to_owned();
    assert_ne!(sealed["id"], plain["id"]);
    assert!(id.starts_with("s-"), "{id}");
    assert_eq!(sealed["type"], "support");
    assert_eq!(sealed["encryption"]["enabled"], true);
    assert_eq!(plain["encryption"]["enabled"], false);
    assert_eq!(sealed["resource"]["client_name"], "Carl");
    assert_eq!(member(&sealed, "olivia")["base_role"], "owner");
    let found = s.post("/v1/conversations/support", &owner, open).await;
    assert_eq!(expect(&found, 200)["id"], sealed["id"]);

    let post = s
        .post(
            &format!("/v1/conversations/{id}/messages"),
            &owner,
            json!({"body": "in the clear"}),
        )
        .await;
    expect_error(&post, 403, "plaintext_in_encrypted");
    let closed = s
        .post(
            &format!("/v1/conversations/{id}/lead"),
            &owner,
            json!({"lead": "L-1", "outcome": "closed_lost"}),
        )
        .await;
    let closed = expect(&closed, 200);
    assert_eq!(closed["lifecycle"], "closed");
    assert_eq!(closed["resource"]["lead"], "L-1");
    assert_eq!(closed["encryption"]["enabled"], true);
}

/// Ownership through REST: only the owner transfers, only to an active member, in one
/// change; the only owner neither leaves nor is removed first; a service asks the policy.
#[tokio::test]
async fn ownership_is_transferred_before_the_owner_leaves() {
    let s = Server::start().await;
    let (alice, bob, carol, bot) = (
        s.user("alice"),
        s.user("bob"),
        s.user("carol"),
        s.service("bot"),
    );
    let created = s
        .post(
            "/v1/conversations",
            &alice,
            json!({"id": "keys", "kind": "group", "members": [
                {"account": "bob"},
                {"account": "carol", "role": "admin"}
            ]}),
        )
        .await;
    expect(&created, 201);
    const OWNER: &str = "/v1/conversations/keys/owner";
    let alice_leaves = s
        .delete("/v1/conversations/keys/members/alice", &alice)
        .await;
    expect_error(&alice_leaves, 403, "owner_must_transfer");
    expect_error(
        &s.post(OWNER, &carol, json!({"account": "carol"})).await,
        403,
        "owner_only",
    );
    expect_error(
        &s.post(OWNER, &bob, json!({"account": "bob"})).await,
        403,
        "owner_only",
    );
    // A service account is no member: it does not hold the owner's role to hand on.
    expect_error(
        &s.post(OWNER, &bot, json!({"account": "bob"})).await,
        403,
        "not_member",
    );
    expect_error(
        &s.post(OWNER, &alice, json!({"account": "zed"})).await,
        403,
        "target_not_member",
    );
    expect_error(&s.post(OWNER, &alice, json!({})).await, 422, "missing");
    // Carol bans bob: ownership does not go to him.
    expect(
        &s.call(
            Method::DELETE,
            "/v1/conversations/keys/members/bob",
            Some(&carol),
            None,
        )
        .await,
        200,
    );
    let can = |target: &str| {
        format!(
            "/v1/conversations/keys/can?account=alice&action=transfer_ownership&target={target}"
        )
    };
    let removed = s.get(&can("bob"), &bot).await;
    assert_eq!(expect(&removed, 200)["code"], "target_inactive");
    expect_error(
        &s.post(OWNER, &alice, json!({"account": "bob"})).await,
        403,
        "target_inactive",
    );
    assert_eq!(
        expect(&s.get(&can("carol"), &bot).await, 200)["allowed"],
        true
    );

    let moved = s.post(OWNER, &alice, json!({"account": "carol"})).await;
    let moved = expect(&moved, 200).clone();
    assert_eq!(member(&moved, "carol")["base_role"], "owner");
    assert_eq!(member(&moved, "alice")["base_role"], "admin");
    // Again: the owner in place is answered as it is.
    expect(
        &s.post(OWNER, &carol, json!({"account": "carol"})).await,
        200,
    );
    let left = s
        .delete("/v1/conversations/keys/members/alice", &alice)
        .await;
    assert_eq!(member(expect(&left, 200), "alice")["status"], "left");
    let carol_leaves = s
        .delete("/v1/conversations/keys/members/carol", &carol)
        .await;
    expect_error(&carol_leaves, 403, "owner_must_transfer");
}

fn listed(list: &Value, id: &str) -> bool {
    list["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .any(|c| c["id"] == id)
}

/// A hidden direct conversation leaves the caller's list, and only the caller's, until a
/// message created after the hide; `DELETE …/hide` shows it at once; groups are not hidden.
#[tokio::test]
async fn a_hidden_direct_conversation_comes_back_with_a_newer_message() {
    let s = Server::start().await;
    let (alice, bob) = (s.user("alice"), s.user("bob"));
    let created = s
        .post("/v1/conversations/direct", &alice, json!({"peer": "bob"}))
        .await;
    let dm = expect(&created, 201)["id"].as_str().expect("id").to_owned();
    let messages = format!("/v1/conversations/{dm}/messages");
    expect(&s.post(&messages, &bob, json!({"body": "hi"})).await, 201);
    let hide = format!("/v1/conversations/{dm}/hide");
    assert!(listed(
        expect(&s.get("/v1/conversations", &alice).await, 200),
        &dm
    ));

    let hidden = s.call(Method::POST, &hide, Some(&alice), None).await;
    assert_eq!(hidden.status, 204, "{}", hidden.body);
    assert!(!listed(
        expect(&s.get("/v1/conversations", &alice).await, 200),
        &dm
    ));
    assert!(
        listed(expect(&s.get("/v1/conversations", &bob).await, 200), &dm),
        "bob's list is his own"
    );
    // A message created after the hide brings it back (the clock moves on first).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    expect(
        &s.post(&messages, &bob, json!({"body": "still there?"}))
            .await,
        201,
    );
    assert!(listed(
        expect(&s.get("/v1/conversations", &alice).await, 200),
        &dm
    ));

    // Hidden again, then shown again by hand; showing twice is fine.
    assert_eq!(
        s.call(Method::POST, &hide, Some(&alice), None).await.status,
        204
    );
    assert!(!listed(
        expect(&s.get("/v1/conversations", &alice).await, 200),
        &dm
    ));
    assert_eq!(s.delete(&hide, &alice).await.status, 204);
    assert_eq!(s.delete(&hide, &alice).await.status, 204);
    assert!(listed(
        expect(&s.get("/v1/conversations", &alice).await, 200),
        &dm
    ));

    let group = s
        .post(
            "/v1/conversations",
            &alice,
            json!({"id": "hideout", "kind": "group"}),
        )
        .await;
    expect(&group, 201);
    let refused = s
        .call(
            Method::POST,
            "/v1/conversations/hideout/hide",
            Some(&alice),
            None,
        )
        .await;
    expect_error(&refused, 403, "direct_only");
}
