//! REST for scheduled messages (`/v1/scheduled`) over real HTTP on the embedded store: the
//! author schedules, lists, edits and cancels; bad input (a time in the past beyond the
//! skew, too far ahead, not RFC 3339, someone else's id) gets its code and changes
//! nothing; nobody else sees a scheduled message before its time; and at its time (the
//! injected clock of `Engine::post_due`) it is in the conversation, as its author, with the
//! edited body.

use confab_core::model::time::format_rfc3339;
use confab_server::engine::now_ms;
use reqwest::Method;
use serde_json::{json, Value};

mod support;

use support::Server;

const MIN: i64 = 60_000;

struct Answer {
    status: u16,
    body: Value,
}

async fn call(s: &Server, method: Method, path: &str, token: &str, body: Option<Value>) -> Answer {
    let mut request = s
        .http
        .request(method, format!("{}{path}", s.base))
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

fn expect_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (status, Some(code)),
        "{}",
        a.body
    );
}

fn ids(list: &Answer) -> Vec<String> {
    assert_eq!(list.status, 200, "{}", list.body);
    list.body["scheduled"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_list_edit_cancel_and_post_at_the_time() {
    let s = Server::start().await;
    let exp = now_ms() / 1000 + 3600;
    let alice = s.mint("alice", "user", exp);
    let bob = s.mint("bob", "user", exp);
    let created = call(
        &s,
        Method::POST,
        "/v1/conversations",
        &alice,
        Some(json!({"kind": "group", "id": "team", "members": [{"account": "bob"}]})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let now = now_ms();
    let at = |ms: i64| format_rfc3339(ms);

    // Bad input: a clear code, and nothing scheduled.
    let past = json!({"conv": "team", "body": "x", "at": at(now - 5 * MIN)});
    let a = call(&s, Method::POST, "/v1/scheduled", &alice, Some(past)).await;
    expect_error(&a, 422, "schedule_in_past");
    let far = json!({"conv": "team", "body": "x", "at": at(now + 400 * 24 * 60 * MIN)});
    let a = call(&s, Method::POST, "/v1/scheduled", &alice, Some(far)).await;
    expect_error(&a, 422, "schedule_too_far");
    let garbled = json!({"conv": "team", "body": "x", "at": "tomorrow"});
    let a = call(&s, Method::POST, "/v1/scheduled", &alice, Some(garbled)).await;
    expect_error(&a, 422, "invalid_format");
    let empty = json!({"conv": "team", "body": "", "at": at(now + MIN)});
    let a = call(&s, Method::POST, "/v1/scheduled", &alice, Some(empty)).await;
    expect_error(&a, 422, "invalid_body");
    let elsewhere = json!({"conv": "nowhere", "body": "x", "at": at(now + MIN)});
    let a = call(&s, Method::POST, "/v1/scheduled", &alice, Some(elsewhere)).await;
    expect_error(&a, 404, "not_found");
    assert!(ids(&call(&s, Method::GET, "/v1/scheduled", &alice, None).await).is_empty());

    // Scheduled: the author lists it; bob sees nothing of it, and cannot touch it.
    let new = json!({"id": "m-s1", "conv": "team", "body": "draft", "at": at(now + 10 * MIN)});
    let a = call(&s, Method::POST, "/v1/scheduled", &alice, Some(new.clone())).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["at"].as_str(), Some(at(now + 10 * MIN).as_str()));
    let again = call(&s, Method::POST, "/v1/scheduled", &alice, Some(new)).await;
    expect_error(&again, 409, "already_exists");
    let list = call(&s, Method::GET, "/v1/scheduled?conv=team", &alice, None).await;
    assert_eq!(ids(&list), ["m-s1"]);
    assert_eq!(list.body["scheduled"][0]["body"], "draft");
    assert!(ids(&call(&s, Method::GET, "/v1/scheduled", &bob, None).await).is_empty());
    let a = call(
        &s,
        Method::PATCH,
        "/v1/scheduled/m-s1",
        &bob,
        Some(json!({"body": "hijacked"})),
    )
    .await;
    expect_error(&a, 404, "schedule_not_found");
    let a = call(&s, Method::DELETE, "/v1/scheduled/m-s1", &bob, None).await;
    expect_error(&a, 404, "schedule_not_found");
    let page = call(
        &s,
        Method::GET,
        "/v1/conversations/team/messages",
        &bob,
        None,
    )
    .await;
    assert_eq!(page.body["messages"].as_array().map(Vec::len), Some(0));

    // The author edits it; a bad new time changes nothing.
    let a = call(
        &s,
        Method::PATCH,
        "/v1/scheduled/m-s1",
        &alice,
        Some(json!({"at": at(now - 10 * MIN), "body": "never"})),
    )
    .await;
    expect_error(&a, 422, "schedule_in_past");
    let a = call(
        &s,
        Method::PATCH,
        "/v1/scheduled/m-s1",
        &alice,
        Some(json!({"body": "edited"})),
    )
    .await;
    assert_eq!(
        (a.status, a.body["body"].as_str()),
        (200, Some("edited")),
        "{}",
        a.body
    );

    // A second one is cancelled.
    let other = json!({"id": "m-s2", "conv": "team", "body": "no", "at": at(now + 10 * MIN)});
    let a = call(&s, Method::POST, "/v1/scheduled", &alice, Some(other)).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = call(&s, Method::DELETE, "/v1/scheduled/m-s2", &alice, None).await;
    assert_eq!(a.status, 204);
    let a = call(&s, Method::DELETE, "/v1/scheduled/m-s2", &alice, None).await;
    expect_error(&a, 404, "schedule_not_found");

    // At its time: posted once, as alice, with the edited body; gone from her list.
    let early = s.engine.post_due(now + 5 * MIN).await.expect("pass");
    assert_eq!(early.posted, 0, "{early:?}");
    let report = s.engine.post_due(now + 11 * MIN).await.expect("pass");
    assert_eq!((report.posted, report.refused), (1, 0), "{report:?}");
    let page = call(
        &s,
        Method::GET,
        "/v1/conversations/team/messages",
        &bob,
        None,
    )
    .await;
    let messages = page.body["messages"].as_array().expect("messages").clone();
    assert_eq!(messages.len(), 1, "{}", page.body);
    assert_eq!(messages[0]["id"], "m-s1");
    assert_eq!(messages[0]["author"], "alice");
    assert_eq!(messages[0]["body"], "edited");
    assert!(ids(&call(&s, Method::GET, "/v1/scheduled", &alice, None).await).is_empty());
}
