//! Joining over REST on the production router (in-process, embedded SQLite, real HTTP):
//! join requests, the add policy, invite links (expiry, revocation, uses, tokens stored
//! hashed) and that nothing of a conversation is shown before joining.

use std::time::Duration;

use confab_server::engine::now_ms;
use reqwest::Method;
use serde_json::{json, Value};

mod support;

use support::Server;

struct Answer {
    status: u16,
    body: Value,
}

impl Server {
    fn user(&self, account: &str) -> String {
        self.mint(account, "user", now_ms() / 1000 + 3600)
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
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
}

#[track_caller]
fn expect(answer: &Answer, status: u16) -> Value {
    assert_eq!(answer.status, status, "unexpected answer: {}", answer.body);
    answer.body.clone()
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

fn status_of(conv: &Value, account: &str) -> Option<String> {
    conv["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["user_id"] == account)
        .map(|m| m["status"].as_str().expect("status").to_owned())
}

async fn create(s: &Server, owner: &str, body: Value) -> Value {
    expect(
        &s.call(Method::POST, "/v1/conversations", owner, Some(body))
            .await,
        201,
    )
}

#[tokio::test]
async fn join_requests_are_asked_listed_approved_and_declined() {
    let s = Server::start().await;
    let (alice, bob, carol, erin) = (
        s.user("alice"),
        s.user("bob"),
        s.user("carol"),
        s.user("erin"),
    );
    create(
        &s,
        &alice,
        json!({"kind": "group", "id": "club", "title": "Secret plans",
               "members": [{"account": "bob"}],
               "settings": {"join_policy": "open", "join_approval_required": true,
                            "add_members_policy": "admins_only"}}),
    )
    .await;
    let base = "/v1/conversations/club";
    // Joining directly is refused with its own code; asking is accepted.
    let direct = s
        .call(
            Method::POST,
            &format!("{base}/members"),
            &carol,
            Some(json!({"account": "carol"})),
        )
        .await;
    expect_error(&direct, 403, "approval_required");
    let asked = expect(
        &s.call(Method::POST, &format!("{base}/join-requests"), &carol, None)
            .await,
        202,
    );
    assert_eq!(
        asked,
        json!({"conversation": "club", "status": "requested"})
    );
    // Asking again changes nothing; the answer shows no content.
    let again = expect(
        &s.call(Method::POST, &format!("{base}/join-requests"), &carol, None)
            .await,
        200,
    );
    assert_eq!(again["status"], "requested");
    assert!(!again.to_string().contains("Secret plans"));
    expect_error(
        &s.call(Method::GET, base, &carol, None).await,
        403,
        "member_inactive",
    );
    expect(
        &s.call(Method::POST, &format!("{base}/join-requests"), &erin, None)
            .await,
        202,
    );
    // The admin (owner) sees both; bob (a member, admins only add here) may not.
    let list = expect(
        &s.call(Method::GET, &format!("{base}/join-requests"), &alice, None)
            .await,
        200,
    );
    let mut who: Vec<&str> = list["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| r["user_id"].as_str().expect("user"))
        .collect();
    who.sort_unstable();
    assert_eq!(who, ["carol", "erin"]);
    expect_error(
        &s.call(Method::GET, &format!("{base}/join-requests"), &bob, None)
            .await,
        403,
        "no_permission",
    );
    expect_error(
        &s.call(
            Method::POST,
            &format!("{base}/join-requests/carol/approve"),
            &bob,
            Some(json!({"role": "guest"})),
        )
        .await,
        403,
        "no_permission",
    );
    // Approve carol, decline erin; erin cannot ask again.
    let approved = expect(
        &s.call(
            Method::POST,
            &format!("{base}/join-requests/carol/approve"),
            &alice,
            None,
        )
        .await,
        200,
    );
    assert_eq!(status_of(&approved, "carol").as_deref(), Some("active"));
    let declined = expect(
        &s.call(
            Method::POST,
            &format!("{base}/join-requests/erin/decline"),
            &alice,
            None,
        )
        .await,
        200,
    );
    assert_eq!(status_of(&declined, "erin").as_deref(), Some("removed"));
    expect_error(
        &s.call(Method::POST, &format!("{base}/join-requests"), &erin, None)
            .await,
        403,
        "member_inactive",
    );
    // No pending request: 409 (an entry in another status) or 404 (none); bad role: 422.
    expect_error(
        &s.call(
            Method::POST,
            &format!("{base}/join-requests/erin/approve"),
            &alice,
            None,
        )
        .await,
        409,
        "not_requested",
    );
    expect_error(
        &s.call(
            Method::POST,
            &format!("{base}/join-requests/zoe/decline"),
            &alice,
            None,
        )
        .await,
        404,
        "not_found",
    );
    expect(&s.call(Method::GET, base, &carol, None).await, 200);
    // A requester withdraws (left) and may ask again; nobody withdraws for someone else.
    let dave = s.user("dave");
    expect(
        &s.call(Method::POST, &format!("{base}/join-requests"), &dave, None)
            .await,
        202,
    );
    expect_error(
        &s.call(
            Method::DELETE,
            &format!("{base}/join-requests/dave"),
            &alice,
            None,
        )
        .await,
        403,
        "not_own_key",
    );
    let left = expect(
        &s.call(
            Method::DELETE,
            &format!("{base}/join-requests/dave"),
            &dave,
            None,
        )
        .await,
        200,
    );
    assert_eq!(left["status"], "left");
    expect(
        &s.call(Method::POST, &format!("{base}/join-requests"), &dave, None)
            .await,
        202,
    );
    expect_error(
        &s.call(
            Method::POST,
            &format!("{base}/join-requests/dave/approve"),
            &alice,
            Some(json!({"role": "king"})),
        )
        .await,
        422,
        "invalid_value",
    );
    // Invite only takes no requests.
    create(&s, &alice, json!({"kind": "group", "id": "closed"})).await;
    expect_error(
        &s.call(
            Method::POST,
            "/v1/conversations/closed/join-requests",
            &carol,
            None,
        )
        .await,
        403,
        "join_not_allowed",
    );
}

#[tokio::test]
async fn invite_links_join_expire_revoke_and_count_uses() {
    let s = Server::start().await;
    let (alice, bob, carol, erin) = (
        s.user("alice"),
        s.user("bob"),
        s.user("carol"),
        s.user("erin"),
    );
    create(
        &s,
        &alice,
        json!({"kind": "channel", "id": "news", "title": "Company news",
               "members": [{"account": "bob"}]}),
    )
    .await;
    let invites = "/v1/conversations/news/invites";
    // Invite only: no links.
    expect_error(
        &s.call(
            Method::POST,
            invites,
            &alice,
            Some(json!({"expires_in_s": 60})),
        )
        .await,
        403,
        "links_disabled",
    );
    expect(
        &s.call(
            Method::PATCH,
            "/v1/conversations/news/settings",
            &alice,
            Some(json!({"join_policy": "link_join"})),
        )
        .await,
        200,
    );
    // Bad input: a documented code, nothing stored.
    expect_error(
        &s.call(
            Method::POST,
            invites,
            &alice,
            Some(json!({"expires_in_s": 0})),
        )
        .await,
        422,
        "out_of_range",
    );
    expect_error(
        &s.call(
            Method::POST,
            invites,
            &alice,
            Some(json!({"expires_in_s": 60, "max_uses": 0})),
        )
        .await,
        422,
        "out_of_range",
    );
    expect_error(
        &s.call(
            Method::POST,
            invites,
            &alice,
            Some(json!({"expires_in_s": 60, "color": "red"})),
        )
        .await,
        422,
        "unknown_key",
    );
    // A subscriber of a channel may not add: no links.
    expect_error(
        &s.call(
            Method::POST,
            invites,
            &bob,
            Some(json!({"expires_in_s": 60})),
        )
        .await,
        403,
        "no_permission",
    );
    let made = expect(
        &s.call(
            Method::POST,
            invites,
            &alice,
            Some(json!({"expires_in_s": 600, "max_uses": 1})),
        )
        .await,
        201,
    );
    let token = made["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 64, "32 random bytes in hex");
    assert_eq!(made["uses"], 0);
    let second = expect(
        &s.call(
            Method::POST,
            invites,
            &alice,
            Some(json!({"expires_in_s": 600})),
        )
        .await,
        201,
    );
    assert_ne!(second["token"], made["token"]);
    // A listing never shows tokens.
    let list = expect(&s.call(Method::GET, invites, &alice, None).await, 200);
    assert_eq!(list["invites"].as_array().expect("invites").len(), 2);
    assert!(!list.to_string().contains(&token));
    expect_error(
        &s.call(Method::GET, invites, &carol, None).await,
        403,
        "not_member",
    );

    let join = |token: &str| json!({ "token": token });
    // A guessed token: not found, nothing told.
    expect_error(
        &s.call(
            Method::POST,
            "/v1/invites/join",
            &carol,
            Some(join(&"0".repeat(64))),
        )
        .await,
        404,
        "invite_not_found",
    );
    let joined = expect(
        &s.call(Method::POST, "/v1/invites/join", &carol, Some(join(&token)))
            .await,
        200,
    );
    assert_eq!(status_of(&joined, "carol").as_deref(), Some("active"));
    let carol_entry = joined["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["user_id"] == "carol")
        .expect("carol")
        .clone();
    assert_eq!(carol_entry["base_role"], "subscriber");
    assert_eq!(carol_entry["invited_by"], "alice");
    // One use only: erin is refused, and joining again as carol changes nothing.
    expect_error(
        &s.call(Method::POST, "/v1/invites/join", &erin, Some(join(&token)))
            .await,
        410,
        "invite_used_up",
    );
    expect(
        &s.call(Method::POST, "/v1/invites/join", &carol, Some(join(&token)))
            .await,
        200,
    );
    // Revoked: a clear code, nothing changes; revoking twice is fine; a member may not.
    let second_id = second["id"].as_str().expect("id");
    let second_token = second["token"].as_str().expect("token");
    expect_error(
        &s.call(
            Method::DELETE,
            &format!("{invites}/{second_id}"),
            &bob,
            None,
        )
        .await,
        403,
        "no_permission",
    );
    for _ in 0..2 {
        let revoked = s
            .call(
                Method::DELETE,
                &format!("{invites}/{second_id}"),
                &alice,
                None,
            )
            .await;
        assert_eq!(revoked.status, 204, "{}", revoked.body);
    }
    expect_error(
        &s.call(Method::DELETE, &format!("{invites}/inv-none"), &alice, None)
            .await,
        404,
        "invite_not_found",
    );
    expect_error(
        &s.call(
            Method::POST,
            "/v1/invites/join",
            &erin,
            Some(join(second_token)),
        )
        .await,
        410,
        "invite_revoked",
    );
    // Expired.
    let short = expect(
        &s.call(
            Method::POST,
            invites,
            &alice,
            Some(json!({"expires_in_s": 1})),
        )
        .await,
        201,
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    expect_error(
        &s.call(
            Method::POST,
            "/v1/invites/join",
            &erin,
            Some(join(short["token"].as_str().expect("token"))),
        )
        .await,
        410,
        "invite_expired",
    );
    let conv = expect(
        &s.call(Method::GET, "/v1/conversations/news", &alice, None)
            .await,
        200,
    );
    assert_eq!(
        status_of(&conv, "erin"),
        None,
        "refused links changed nothing"
    );
    // Once the policy is no longer link_join, a live link stops working.
    let live = expect(
        &s.call(
            Method::POST,
            invites,
            &alice,
            Some(json!({"expires_in_s": 600})),
        )
        .await,
        201,
    );
    expect(
        &s.call(
            Method::PATCH,
            "/v1/conversations/news/settings",
            &alice,
            Some(json!({"join_policy": "invite_only"})),
        )
        .await,
        200,
    );
    expect_error(
        &s.call(
            Method::POST,
            "/v1/invites/join",
            &erin,
            Some(join(live["token"].as_str().expect("token"))),
        )
        .await,
        403,
        "links_disabled",
    );
    let list = expect(&s.call(Method::GET, invites, &alice, None).await, 200);
    let uses: Vec<u64> = list["invites"]
        .as_array()
        .expect("invites")
        .iter()
        .map(|i| i["uses"].as_u64().expect("uses"))
        .collect();
    assert_eq!(
        uses.iter().sum::<u64>(),
        1,
        "only carol's join used a link: {list}"
    );
}

#[tokio::test]
async fn a_link_where_approval_is_required_makes_a_request() {
    let s = Server::start().await;
    let (alice, carol) = (s.user("alice"), s.user("carol"));
    create(
        &s,
        &alice,
        json!({"kind": "group", "id": "vip", "title": "VIP room",
               "settings": {"join_policy": "link_join", "join_approval_required": true}}),
    )
    .await;
    let made = expect(
        &s.call(
            Method::POST,
            "/v1/conversations/vip/invites",
            &alice,
            Some(json!({"expires_in_s": 600})),
        )
        .await,
        201,
    );
    let asked = expect(
        &s.call(
            Method::POST,
            "/v1/invites/join",
            &carol,
            Some(json!({"token": made["token"]})),
        )
        .await,
        202,
    );
    assert_eq!(asked, json!({"conversation": "vip", "status": "requested"}));
    let list = expect(
        &s.call(
            Method::GET,
            "/v1/conversations/vip/join-requests",
            &alice,
            None,
        )
        .await,
        200,
    );
    assert_eq!(list["requests"][0]["user_id"], "carol");
    let approved = expect(
        &s.call(
            Method::POST,
            "/v1/conversations/vip/join-requests/carol/approve",
            &alice,
            None,
        )
        .await,
        200,
    );
    assert_eq!(status_of(&approved, "carol").as_deref(), Some("active"));
}
