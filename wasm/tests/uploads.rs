//! Uploads and the notification feed over REST, against the real `confab-server` that
//! `cargo xtask wasm test` starts (its URL and demo tokens come in CONFAB_TEST_* at build
//! time). The test page is served from another origin than the server's, and the server
//! sends no CORS headers: wasm/webdriver.json starts Chromium with `--disable-web-security`
//! for that reason only.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use confab_wasm::types::{
    Attachment, CreateConversationInput, IntentResult, MarkedRead, MemberInput, NotificationKind,
    NotificationPage, PendingUpload, ResumedUpload, UploadProgress,
};
use confab_wasm::ConfabClient;
use js_sys::{Function, Uint8Array};
use support::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WAIT: f64 = 15_000.0;
const CHUNK: u32 = 64 * 1024;

fn http_base(s: &Server) -> String {
    s.ws.replacen("ws://", "http://", 1)
        .trim_end_matches("/ws")
        .to_owned()
}

/// `n` bytes that differ from chunk to chunk (a shifted chunk would not compare equal).
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + i / 251) % 256) as u8).collect()
}

/// GET `path` of the server with `token`: the status and the bytes.
async fn download(s: &Server, path: &str, token: &str) -> (u16, Vec<u8>) {
    let get = Function::new_with_args(
        "url, token",
        "return fetch(url, { headers: { Authorization: `Bearer ${token}` } }).then(async (r) => \
         [r.status, new Uint8Array(await r.arrayBuffer())])",
    );
    let url = format!("{}{path}", http_base(s));
    let promise: js_sys::Promise = get
        .call2(&JsValue::NULL, &url.into(), &token.into())
        .unwrap()
        .unchecked_into();
    let pair: js_sys::Array = done(promise).await.unwrap().unchecked_into();
    let status = pair.get(0).as_f64().unwrap() as u16;
    (status, Uint8Array::new(&pair.get(1)).to_vec())
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_owned()
}

/// A callback that records every progress it is given.
fn progress_log() -> (Rc<RefCell<Vec<UploadProgress>>>, JsValue) {
    let log: Rc<RefCell<Vec<UploadProgress>>> = Rc::default();
    let f = {
        let log = log.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |p: JsValue| {
            log.borrow_mut()
                .push(serde_wasm_bindgen::from_value(p).unwrap());
        })
        .into_js_value()
    };
    (log, f)
}

fn options(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in pairs {
        js_sys::Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

/// A group of `owner`'s with `others`, accepted by the server.
async fn group(owner: &ConfabClient, others: &[&str]) -> String {
    done(owner.connect()).await.unwrap();
    let input = CreateConversationInput {
        title: Some(unique("files")),
        members: Some(
            others
                .iter()
                .map(|a| MemberInput::Account((*a).into()))
                .collect(),
        ),
        ..Default::default()
    };
    let made: IntentResult =
        ok(owner.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    wait_for("the group accepted", WAIT, || {
        state_of(owner, made.id).as_deref() == Some("accepted")
    })
    .await;
    made.conv.unwrap()
}

async fn pending(client: &ConfabClient) -> Vec<PendingUpload> {
    ok(client.pending_uploads()).await
}

fn upload(client: &ConfabClient, conv: &str, b: web_sys::Blob, o: JsValue) -> js_sys::Promise {
    client.upload_attachment(conv.to_owned(), b, Some(tsify::Ts::new_unchecked(o)))
}

#[wasm_bindgen_test]
async fn a_multi_chunk_upload_reports_progress_and_downloads_byte_identical() {
    let s = server();
    let alice = alice_in(&s, &unique("up-whole"));
    done(alice.ready()).await.unwrap();
    let conv = group(&alice, &["bob"]).await;
    let bytes = pattern(5 * CHUNK as usize - 1000);
    let (log, on_progress) = progress_log();
    let o = options(&[
        ("name", "report.pdf".into()),
        ("chunkBytes", CHUNK.into()),
        ("onProgress", on_progress),
    ]);
    let attachment: Attachment =
        ok(upload(&alice, &conv, blob(&bytes, "application/pdf"), o)).await;

    let sent: Vec<u64> = log.borrow().iter().map(|p| p.sent).collect();
    let size = bytes.len() as u64;
    let expected: Vec<u64> = (1..=5).map(|i| (i * u64::from(CHUNK)).min(size)).collect();
    assert_eq!(
        sent, expected,
        "one progress per acknowledged chunk, up to 100%"
    );
    assert!(log
        .borrow()
        .iter()
        .all(|p| p.size == size && p.conv == conv));
    assert_eq!(attachment.size, Some(size));
    assert_eq!(attachment.mime.as_deref(), Some("application/pdf"));
    assert_eq!(attachment.name.as_deref(), Some("report.pdf"));
    assert_eq!(
        serde_json::to_value(attachment.kind).unwrap(),
        serde_json::json!("file")
    );
    assert!(
        pending(&alice).await.is_empty(),
        "a finished upload is not pending"
    );

    let (status, got) = download(&s, &path_of(&attachment.url), s.bob).await;
    assert_eq!(status, 200);
    assert!(got == bytes, "the download is byte-identical");

    // The reference is what `send` takes.
    let message = options(&[
        ("kind", "file".into()),
        (
            "attachments",
            serde_wasm_bindgen::to_value(&vec![attachment.clone()]).unwrap(),
        ),
    ]);
    let sent: IntentResult = ok(alice.send(conv.clone(), message)).await;
    wait_for("the message with the attachment accepted", WAIT, || {
        state_of(&alice, sent.id).as_deref() == Some("accepted")
    })
    .await;

    // The same bytes again: stored already, answered at once.
    let again: Attachment = ok(upload(
        &alice,
        &conv,
        blob(&bytes, "application/pdf"),
        JsValue::UNDEFINED,
    ))
    .await;
    assert_eq!(again.url, attachment.url);
    done(alice.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_forwarded_attachment_downloads_for_a_reader_of_the_target_only() {
    let s = server();
    let alice = alice_in(&s, &unique("up-forward"));
    done(alice.ready()).await.unwrap();
    // Bob is in the target, not in the source.
    let source = group(&alice, &[]).await;
    let target = group(&alice, &["bob"]).await;
    let bytes = pattern(3000);
    let o = options(&[("name", "plan.pdf".into())]);
    let attachment: Attachment =
        ok(upload(&alice, &source, blob(&bytes, "application/pdf"), o)).await;
    let message = options(&[
        ("kind", "file".into()),
        (
            "attachments",
            serde_wasm_bindgen::to_value(&vec![attachment.clone()]).unwrap(),
        ),
    ]);
    let sent: IntentResult = ok(alice.send(source.clone(), message)).await;
    wait_for("the message with the attachment accepted", WAIT, || {
        state_of(&alice, sent.id).as_deref() == Some("accepted")
    })
    .await;
    let (status, _) = download(&s, &path_of(&attachment.url), s.bob).await;
    assert_eq!(status, 403, "bob may not read the source's blob");
    let in_target = path_of(&attachment.url).replace(&source, &target);
    let (status, _) = download(&s, &in_target, s.bob).await;
    assert_eq!(status, 404, "the target holds no copy before the forward");

    let forwarded: IntentResult = ok(alice.forward(
        source.clone(),
        sent.message.clone().unwrap(),
        target.clone(),
    ))
    .await;
    wait_for("the forward accepted", WAIT, || {
        state_of(&alice, forwarded.id).as_deref() == Some("accepted")
    })
    .await;
    let item = timeline(&alice, &target)
        .into_iter()
        .find(|i| Some(&i.message.id) == forwarded.message.as_ref())
        .expect("the forwarded message");
    let from = item.message.forwarded_from.expect("forwarded_from");
    assert_eq!(
        (from.conv, Some(from.message)),
        (source.clone(), sent.message)
    );
    let copied: Vec<Attachment> =
        serde_json::from_str(&item.message.attachments.expect("attachments")).unwrap();
    assert_eq!(copied.len(), 1);
    assert!(
        path_of(&copied[0].url).contains(&format!("/conversations/{target}/")),
        "the reference names the target: {}",
        copied[0].url
    );
    let (status, got) = download(&s, &path_of(&copied[0].url), s.bob).await;
    assert_eq!(status, 200);
    assert!(got == bytes, "bob downloads the same bytes from the target");
    done(alice.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn an_upload_stopped_midway_resumes_after_a_reload_with_only_the_rest() {
    let s = server();
    let db = unique("up-resume");
    let alice = alice_in(&s, &db);
    done(alice.ready()).await.unwrap();
    let conv = group(&alice, &[]).await;
    let bytes = pattern(5 * CHUNK as usize);
    let size = bytes.len() as u64;

    // Stop after two acknowledged chunks, as a closed tab would.
    let controller = web_sys::AbortController::new().unwrap();
    let first: Rc<RefCell<Vec<u64>>> = Rc::default();
    let on_progress = {
        let first = first.clone();
        let controller = controller.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |p: JsValue| {
            let p: UploadProgress = serde_wasm_bindgen::from_value(p).unwrap();
            first.borrow_mut().push(p.sent);
            if first.borrow().len() == 2 {
                controller.abort();
            }
        })
        .into_js_value()
    };
    let o = options(&[
        ("chunkBytes", CHUNK.into()),
        ("onProgress", on_progress),
        ("signal", controller.signal().into()),
    ]);
    let stopped = code_of(upload(&alice, &conv, blob(&bytes, "application/zip"), o)).await;
    assert_eq!(stopped, "aborted");
    assert_eq!(
        *first.borrow(),
        vec![u64::from(CHUNK), 2 * u64::from(CHUNK)]
    );
    let kept = pending(&alice).await;
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].size, kept[0].conv.as_str()), (size, conv.as_str()));
    done(alice.dispose()).await.unwrap();
    drop(alice);

    // The reload: a new client over the same database, the Blob read back from it.
    let again = alice_in(&s, &db);
    done(again.ready()).await.unwrap();
    assert_eq!(pending(&again).await, kept);
    let (log, on_progress) = progress_log();
    let resumed: Vec<ResumedUpload> = ok(again.resume_uploads(Some(tsify::Ts::new_unchecked(
        options(&[("onProgress", on_progress)]),
    ))))
    .await;
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    let attachment = resumed[0].attachment.clone().expect("completed");
    assert!(!resumed[0].pending && resumed[0].error.is_none());
    let sent: Vec<u64> = log.borrow().iter().map(|p| p.sent).collect();
    assert_eq!(
        sent,
        vec![3 * u64::from(CHUNK), 4 * u64::from(CHUNK), size],
        "only the three chunks the server did not have were sent"
    );
    assert!(pending(&again).await.is_empty());
    let (status, got) = download(&s, &path_of(&attachment.url), s.alice).await;
    assert_eq!(status, 200);
    assert!(got == bytes, "the resumed upload is byte-identical");
    done(again.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn refused_uploads_give_typed_errors_and_store_nothing() {
    let s = server();
    let alice = alice_in(&s, &unique("up-refused"));
    done(alice.ready()).await.unwrap();
    let bob = client(s.ws, s.bob, s.tenant, "bob", "memory".into(), None);
    let bobs = group(&bob, &[]).await;
    let bytes = pattern(1000);

    let error = done(upload(
        &alice,
        &bobs,
        blob(&bytes, "text/plain"),
        JsValue::UNDEFINED,
    ))
    .await
    .expect_err("alice is not a member");
    let get = |k: &str| js_sys::Reflect::get(&error, &k.into()).unwrap();
    assert_eq!(get("code").as_string().as_deref(), Some("not_member"));
    assert_eq!(get("status").as_f64(), Some(403.0));
    assert!(pending(&alice).await.is_empty());

    let mine = group(&alice, &[]).await;
    let error = done(upload(
        &alice,
        &mine,
        blob(&bytes, "text/html"),
        JsValue::UNDEFINED,
    ))
    .await
    .expect_err("text/html is not accepted");
    let get = |k: &str| js_sys::Reflect::get(&error, &k.into()).unwrap();
    assert_eq!(get("code").as_string().as_deref(), Some("type_not_allowed"));
    assert_eq!(get("status").as_f64(), Some(415.0));
    assert_eq!(get("field").as_string().as_deref(), Some("mime"));
    assert!(pending(&alice).await.is_empty());

    assert_eq!(
        code_of(upload(
            &alice,
            &mine,
            blob(&[], "text/plain"),
            JsValue::UNDEFINED
        ))
        .await,
        "invalid_argument",
        "an empty blob is refused before any request"
    );
    assert_eq!(
        code_of(alice.cancel_upload("u-none".into())).await,
        "not_found"
    );
    done(alice.dispose()).await.unwrap();
    done(bob.dispose()).await.unwrap();
}

#[wasm_bindgen_test]
async fn the_feed_is_the_servers() {
    let s = server();
    let alice = client(s.ws, s.alice, s.tenant, "alice", "memory".into(), None);
    let bob = client(s.ws, s.bob, s.tenant, "bob", "memory".into(), None);
    let conv = group(&bob, &["alice"]).await;
    for text in ["one for alice", "two for alice"] {
        let message = options(&[
            ("body", text.into()),
            (
                "mentions",
                serde_wasm_bindgen::to_value(&["alice"]).unwrap(),
            ),
        ]);
        let sent: IntentResult = ok(bob.send(conv.clone(), message)).await;
        wait_for("bob's mention accepted", WAIT, || {
            state_of(&bob, sent.id).as_deref() == Some("accepted")
        })
        .await;
    }

    // Notifications are stored after the commit, off its path: wait for both.
    let mine = |page: &NotificationPage| {
        page.notifications
            .iter()
            .filter(|n| n.conversation == conv)
            .cloned()
            .collect::<Vec<_>>()
    };
    let start = now();
    let page: NotificationPage = loop {
        let page: NotificationPage = ok(alice.notifications(None)).await;
        if mine(&page).len() == 2 {
            break page;
        }
        assert!(
            now() - start < WAIT,
            "alice's feed never showed both mentions"
        );
        sleep(100.0).await;
    };
    let ours = mine(&page);
    assert!(ours
        .iter()
        .all(|n| n.kind == NotificationKind::Mention && n.from == "bob" && !n.read));
    assert_eq!(ours[0].preview, "two for alice", "newest first");
    assert!(ours[0].id > ours[1].id);
    assert!(page.unread >= 2);
    let unread: f64 = done(alice.unread_notifications())
        .await
        .unwrap()
        .as_f64()
        .unwrap();
    assert!(unread >= 2.0);

    // Pages by cursor.
    let first: NotificationPage = ok(alice.notifications(Some(tsify::Ts::new_unchecked(options(
        &[("limit", 1.into())],
    )))))
    .await;
    assert_eq!(first.notifications.len(), 1);
    let cursor = first.next_cursor.clone().expect("more than one");
    let second: NotificationPage =
        ok(alice.notifications(Some(tsify::Ts::new_unchecked(options(&[
            ("limit", 1.into()),
            ("cursor", cursor.into()),
        ])))))
        .await;
    assert!(second.notifications[0].id < first.notifications[0].id);

    // Marking up to the older one leaves the newer unread; marking all leaves none.
    let marked: MarkedRead = ok(alice.mark_notifications_read(Some(ours[1].id as f64))).await;
    assert!(marked.marked >= 1);
    let unread_only = || {
        alice.notifications(Some(tsify::Ts::new_unchecked(options(&[(
            "unread",
            true.into(),
        )]))))
    };
    let left: NotificationPage = ok(unread_only()).await;
    let left: Vec<i64> = mine(&left).iter().map(|n| n.id).collect();
    assert_eq!(left, vec![ours[0].id]);
    let _: MarkedRead = ok(alice.mark_notifications_read(None)).await;
    let left: NotificationPage = ok(unread_only()).await;
    assert!(mine(&left).is_empty());

    let bad = options(&[("limit", 0.into())]);
    let error = done(alice.notifications(Some(tsify::Ts::new_unchecked(bad))))
        .await
        .expect_err("limit 0");
    assert_eq!(
        js_sys::Reflect::get(&error, &"code".into())
            .unwrap()
            .as_string()
            .as_deref(),
        Some("out_of_range")
    );
    done(alice.dispose()).await.unwrap();
    done(bob.dispose()).await.unwrap();
}
