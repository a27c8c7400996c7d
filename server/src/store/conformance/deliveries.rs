//! A webhook delivery queued before its message was deleted keeps none of its text
//! (docs/NOTIFICATIONS.md, "Deleted messages"): the commit that deletes the message, or
//! deletes its conversation, empties the preview of every delivery of it still in the
//! outbox, also one whose attempt failed and waits to be tried again. Deliveries of other
//! messages are untouched.

use super::deletion::{delete_message, deletion};
use super::search::{post, room};
use super::*;
use crate::store::webhooks::NewDelivery;

/// A delivery as the notifier queues it for one account (`notify::webhook`).
fn delivery(who: &str, message: &str, preview: &str) -> NewDelivery {
    let payload = serde_json::json!({
        "type": "notification",
        "tenant": "acme",
        "account": who,
        "notification": {
            "id": 7,
            "kind": "mention",
            "conversation": "room",
            "message": message,
            "from": "alice",
            "created_at": "2026-01-01T00:00:02Z",
            "preview": preview,
            "body_omitted": false,
        },
    });
    NewDelivery {
        tenant: "acme".into(),
        account: who.into(),
        payload: payload.to_string(),
        at: 10,
        coalesce: None,
        about: Some((conv("room"), msg_id(message))),
    }
}

/// Claims every due delivery: (message, preview) of each, and its id.
async fn queued(s: &dyn Store, now: i64) -> Vec<(i64, String, String)> {
    let mut out: Vec<(i64, String, String)> = s
        .claim_deliveries(now, now + 5, 100)
        .await
        .expect("claim")
        .into_iter()
        .map(|d| {
            let v: serde_json::Value = serde_json::from_str(&d.payload).expect("json payload");
            let n = &v["notification"];
            let text = |k: &str| n[k].as_str().unwrap_or("<none>").to_owned();
            (d.id, text("message"), text("preview"))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

fn texts(rows: &[(i64, String, String)]) -> Vec<(&str, &str)> {
    rows.iter()
        .map(|(_, m, p)| (m.as_str(), p.as_str()))
        .collect()
}

pub async fn queued_deliveries_lose_a_deleted_messages_text(env: Env) {
    let s = env.store.as_ref();
    let mut seqs = Seqs::default();
    let members = [p_member("acme", "room", "bob", "member", "active")];
    room(s, &mut seqs, members.to_vec()).await;
    s.commit(&[
        post(&mut seqs, "kept", 1001, "kept words"),
        post(&mut seqs, "gone", 1002, "gone words"),
        post(&mut seqs, "late", 1003, "late words"),
    ])
    .await
    .expect("posts");
    s.enqueue_deliveries(&[
        delivery("bob", "kept", "kept words"),
        delivery("bob", "gone", "gone words"),
        delivery("bob", "late", "late words"),
    ])
    .await
    .expect("enqueue");
    // One attempt of each fails: they wait in the outbox to be tried again.
    let first = queued(s, 10).await;
    assert_eq!(first.len(), 3, "{}: {first:?}", env.name());
    for (id, _, _) in &first {
        s.delivery_failed(*id, 1, 20, None, "receiver down")
            .await
            .expect("failed");
    }

    delete_message(s, &mut seqs, "gone").await;
    let again = queued(s, 20).await;
    assert_eq!(
        texts(&again),
        [("gone", ""), ("kept", "kept words"), ("late", "late words")],
        "{}: the deletion empties the queued delivery of its message only",
        env.name()
    );
    for (id, _, _) in &again {
        s.delivery_failed(*id, 2, 30, None, "receiver down")
            .await
            .expect("failed");
    }

    // The conversation's deletion empties those of all its messages.
    s.commit(&[deletion(&mut seqs)])
        .await
        .expect("delete the conversation");
    assert_eq!(
        texts(&queued(s, 30).await),
        [("gone", ""), ("kept", ""), ("late", "")],
        "{}: the conversation's deletion empties its deliveries",
        env.name()
    );
}
