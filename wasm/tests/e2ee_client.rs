//! End-to-end encryption through the package's API, in headless Chromium against the real
//! server: three browser devices (each its own IndexedDB store and device name) make an
//! encrypted group, read each other both ways, a reloaded device reads old and new
//! messages from its restored MLS state, a sealed edit is read by every device (after a
//! reload too), a file is stored as ciphertext and read by a member (a swapped blob fails
//! typed), and a removed member's device reads nothing sent after the removal. Drafts and
//! scheduled messages of an encrypted group stay on their device, and a scheduled one is
//! posted sealed by that device at its time.
#![cfg(target_family = "wasm")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use confab_wasm::types::{
    Attachment, CreateConversationInput, Encryption, IntentResult, MemberInput, MessageInput,
};
use confab_wasm::ConfabClient;
use support::*;
use tsify::Ts;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Generous: each device makes its key packages, and every step is a round trip.
const WAIT: f64 = 30_000.0;

/// `account`'s device named for this run, on its own IndexedDB database.
async fn device(token: &str, account: &str, run: &str) -> ConfabClient {
    let mut options = indexeddb_options(token, account, &format!("e2ee-{account}-{run}"));
    options.device_id = Some(format!("{account}-{run}"));
    let client = client_with(&options);
    done(client.ready()).await.unwrap();
    client
}

async fn online(client: &ConfabClient) {
    done(client.connect()).await.unwrap();
    wait_for("key packages uploaded", WAIT, || {
        client.key_packages_held() == Some(20.0)
    })
    .await;
}

fn encryption(client: &ConfabClient, conv: &str) -> Option<Encryption> {
    let view = client.conversation(conv).ok()?;
    if !view.is_object() {
        return None;
    }
    let block = js_sys::Reflect::get(&view, &"encryption".into()).ok()?;
    serde_wasm_bindgen::from_value(block).ok()
}

/// Whether `client` shows message `id` opened, reading `body`.
fn reads(client: &ConfabClient, conv: &str, id: &str, body: &str) -> bool {
    timeline(client, conv).iter().any(|i| {
        i.message.id == id && i.is_encrypted && i.undecryptable.is_none() && i.message.body == body
    })
}

/// `attachment` without its seal: what downloading it fetches is the stored bytes as they are.
fn plain_reference(attachment: &Attachment) -> Ts<Attachment> {
    let plain = Attachment {
        encryption: None,
        ..attachment.clone()
    };
    Ts::from_rust(&plain).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn accepted(client: &ConfabClient, result: IntentResult, what: &str) {
    wait_for(what, WAIT, || {
        state_of(client, result.id).as_deref() == Some("accepted")
    })
    .await;
}

async fn sent(client: &ConfabClient, conv: &str, body: &str) -> String {
    let result = send(client, conv, body).await;
    let id = result.message.clone().unwrap();
    accepted(client, result, &format!("{body} accepted")).await;
    id
}

/// An encrypted group `title` that `by` creates with the accounts of `members`, accepted and
/// open on each member's device. Its id.
async fn encrypted_group(by: &ConfabClient, title: &str, members: &[&ConfabClient]) -> String {
    let input = CreateConversationInput {
        title: Some(title.into()),
        members: Some(
            members
                .iter()
                .map(|m| MemberInput::Account(m.account()))
                .collect(),
        ),
        encrypted: Some(true),
        ..Default::default()
    };
    let created: IntentResult =
        ok(by.create_group(Some(tsify::Ts::from_rust(&input).unwrap()))).await;
    let conv = created.conv.clone().unwrap();
    accepted(by, created, "the encrypted group accepted").await;
    for m in members {
        done(m.open_conversation(conv.clone(), None)).await.unwrap();
    }
    conv
}

#[wasm_bindgen_test]
async fn an_encrypted_group_between_browser_devices() {
    let s = server();
    let run = unique("r");
    let alice = device(s.alice, "alice", &run).await;
    let bob = device(s.bob, "bob", &run).await;
    let carol = device(s.carol, "carol", &run).await;
    assert_eq!(alice.device_id(), format!("alice-{run}"));
    for c in [&alice, &bob, &carol] {
        online(c).await;
    }

    // A channel cannot be encrypted: a typed refusal, before anything is written.
    let channel = CreateConversationInput {
        encrypted: Some(true),
        ..Default::default()
    };
    let refused = code_of(alice.create_channel(Some(tsify::Ts::from_rust(&channel).unwrap())));
    assert_eq!(refused.await, "encryption_not_allowed");

    let conv = encrypted_group(&alice, "vault", &[&bob, &carol]).await;
    // The members' commit moved the group to epoch 1; everyone sees the same block.
    for c in [&alice, &bob, &carol] {
        wait_for("the group at key version 1", WAIT, || {
            encryption(c, &conv).is_some_and(|e| e.key_version == Some(1))
        })
        .await;
    }
    let block = encryption(&bob, &conv).unwrap();
    assert!(block.enabled);
    assert_eq!(block.protocol.as_deref(), Some("mls"));
    assert_eq!(block.group_id, Some(format!("{}/conv/{conv}", s.tenant)));
    assert!(block.last_key_rotation.is_some_and(|t| t > 0));

    // Both ways, read by all three.
    let m1 = sent(&alice, &conv, "sealed hello").await;
    let m2 = sent(&bob, &conv, "sealed reply").await;
    for c in [&alice, &bob, &carol] {
        wait_for("every device reads both", WAIT, || {
            reads(c, &conv, &m1, "sealed hello") && reads(c, &conv, &m2, "sealed reply")
        })
        .await;
    }

    // Bob reloads: his MLS state comes back from IndexedDB; he reads old and new.
    done(bob.dispose()).await.unwrap();
    drop(bob);
    let bob = device(s.bob, "bob", &run).await;
    done(bob.connect()).await.unwrap();
    done(bob.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    let m3 = sent(&alice, &conv, "after bob's reload").await;
    wait_for("bob reads old and new after a reload", WAIT, || {
        reads(&bob, &conv, &m1, "sealed hello")
            && reads(&bob, &conv, &m2, "sealed reply")
            && reads(&bob, &conv, &m3, "after bob's reload")
    })
    .await;
    let m4 = sent(&bob, &conv, "bob still writes").await;
    wait_for("alice reads bob after his reload", WAIT, || {
        reads(&alice, &conv, &m4, "bob still writes")
    })
    .await;

    // Alice edits her first message: sealed again over what it held; the reloaded bob and
    // carol read the edit, marked edited.
    let edited: IntentResult =
        ok(alice.edit(conv.clone(), m1.clone(), "sealed hello, edited".into())).await;
    accepted(&alice, edited, "the sealed edit accepted").await;
    for c in [&alice, &bob, &carol] {
        wait_for("every device reads the edit", WAIT, || {
            reads(c, &conv, &m1, "sealed hello, edited")
                && timeline(c, &conv)
                    .iter()
                    .any(|i| i.message.id == m1 && i.message.edited_at.is_some())
        })
        .await;
    }
    // A file alice attaches leaves her browser sealed: the server stores ciphertext only;
    // bob downloads it and reads the file; a blob swapped under the reference fails typed.
    let secret = format!("the vault combination is {run}");
    let file = blob(secret.as_bytes(), "text/plain");
    let attached: Attachment = ok(alice.upload_attachment(conv.clone(), file, None)).await;
    assert!(attached.encryption.is_some(), "{attached:?}");
    assert_eq!(attached.mime.as_deref(), Some("text/plain"));
    assert_eq!(attached.size, Some(secret.len() as u64));
    let stored = blob_bytes(
        &done(alice.download_attachment(plain_reference(&attached)))
            .await
            .unwrap()
            .unchecked_into(),
    )
    .await;
    assert!(
        !contains(&stored, b"vault combination"),
        "the server holds the plaintext"
    );
    let input = MessageInput {
        body: Some("the file".into()),
        attachments: Some(vec![attached.clone()]),
        ..Default::default()
    };
    let with_file: IntentResult =
        ok(alice.send(conv.clone(), serde_wasm_bindgen::to_value(&input).unwrap())).await;
    let m_file = with_file.message.clone().unwrap();
    accepted(&alice, with_file, "the message with the file accepted").await;
    wait_for("bob reads the message with the file", WAIT, || {
        reads(&bob, &conv, &m_file, "the file")
    })
    .await;
    let item = timeline(&bob, &conv)
        .into_iter()
        .find(|i| i.message.id == m_file)
        .unwrap();
    let received: Vec<Attachment> =
        serde_json::from_str(item.message.attachments.as_deref().unwrap()).unwrap();
    assert_eq!(received, vec![attached.clone()]);
    let opened: web_sys::Blob = done(bob.download_attachment(Ts::from_rust(&received[0]).unwrap()))
        .await
        .unwrap()
        .unchecked_into();
    assert_eq!(opened.type_(), "text/plain");
    assert_eq!(blob_bytes(&opened).await, secret.as_bytes());
    let other: Attachment = ok(alice.upload_attachment(
        conv.clone(),
        blob(b"other bytes entirely", "text/plain"),
        None,
    ))
    .await;
    let swapped = Attachment {
        url: other.url.clone(),
        ..received[0].clone()
    };
    let refused = code_of(bob.download_attachment(Ts::from_rust(&swapped).unwrap()));
    assert_eq!(refused.await, "attachment_tampered");

    // Carol reloads: the edited content is what her store kept.
    done(carol.dispose()).await.unwrap();
    drop(carol);
    let carol = device(s.carol, "carol", &run).await;
    done(carol.open_conversation(conv.clone(), None))
        .await
        .unwrap();
    wait_for("carol reads the edit after a reload", WAIT, || {
        reads(&carol, &conv, &m1, "sealed hello, edited")
    })
    .await;
    done(carol.connect()).await.unwrap();

    // Carol is removed (the removal carries the commit): she reads nothing sent after it.
    let removed: IntentResult = ok(alice.remove_member(conv.clone(), "carol".into(), None)).await;
    accepted(&alice, removed, "carol's removal accepted").await;
    // At least 2: a device whose path crossed carol's leaf may heal it with a commit of its
    // own right after, and bob may take both at once.
    wait_for("bob at key version 2 or later", WAIT, || {
        encryption(&bob, &conv).is_some_and(|e| e.key_version >= Some(2))
    })
    .await;
    let m5 = sent(&alice, &conv, "carol cannot read this").await;
    wait_for("bob reads what follows the removal", WAIT, || {
        reads(&bob, &conv, &m5, "carol cannot read this")
    })
    .await;
    sleep(1_000.0).await;
    for item in timeline(&carol, &conv) {
        if item.message.id == m5 {
            assert!(item.undecryptable.is_some(), "carol opened {item:?}");
        }
        assert_ne!(item.message.body, "carol cannot read this");
    }
    // What she read before stays read.
    assert!(reads(&carol, &conv, &m1, "sealed hello, edited"));

    for c in [alice, bob, carol] {
        done(c.dispose()).await.unwrap();
    }
}

/// The value under `key` in object store `store` of IndexedDB database `db`, as IndexedDB
/// holds it (read around the client's store).
async fn raw_record(db: &str, store: &str, key: &str) -> JsValue {
    let read = js_sys::Function::new_with_args(
        "name, store, key",
        "return new Promise((ok, no) => { const r = indexedDB.open(name); \
         r.onerror = () => no(r.error); r.onsuccess = () => { const db = r.result; \
         const g = db.transaction(store).objectStore(store).get(key); \
         g.onerror = () => no(g.error); g.onsuccess = () => { db.close(); ok(g.result); }; }; })",
    );
    let promise: js_sys::Promise = read
        .call3(&JsValue::NULL, &db.into(), &store.into(), &key.into())
        .unwrap()
        .unchecked_into();
    done(promise).await.unwrap()
}

/// Every entry under `prefix` in object store `store` of IndexedDB database `db`, as
/// IndexedDB holds them (read around the client's store): key and raw bytes.
async fn raw_entries(db: &str, store: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let read = js_sys::Function::new_with_args(
        "name, store, prefix",
        "return new Promise((ok, no) => { const r = indexedDB.open(name); \
         r.onerror = () => no(r.error); r.onsuccess = () => { const db = r.result; \
         const range = IDBKeyRange.bound(prefix, prefix + '\\uffff'); \
         const s = db.transaction(store).objectStore(store); \
         const k = s.getAllKeys(range); const v = s.getAll(range); \
         v.onerror = () => no(v.error); \
         v.onsuccess = () => { db.close(); ok([k.result, v.result]); }; }; })",
    );
    let promise: js_sys::Promise = read
        .call3(&JsValue::NULL, &db.into(), &store.into(), &prefix.into())
        .unwrap()
        .unchecked_into();
    let both: js_sys::Array = done(promise).await.unwrap().unchecked_into();
    let keys: js_sys::Array = both.get(0).unchecked_into();
    let values: js_sys::Array = both.get(1).unchecked_into();
    keys.iter()
        .zip(values.iter())
        .map(|(k, v)| {
            let bytes = js_sys::Uint8Array::new(&v).to_vec();
            (k.as_string().unwrap(), bytes)
        })
        .collect()
}

/// The MLS signature key of the device whose `meta/mls` record (as the client reads it)
/// this is: its header names it.
fn signature_key(record: &[u8]) -> Vec<u8> {
    #[derive(serde::Deserialize)]
    struct Record {
        header: serde_bytes::ByteBuf,
    }
    #[derive(serde::Deserialize)]
    struct Header {
        signature_key: serde_bytes::ByteBuf,
    }
    let record: Record = ciborium::from_reader(record).unwrap();
    let header: Header = ciborium::from_reader(&record.header[..]).unwrap();
    header.signature_key.into_vec()
}

/// The device's entries as the client reads them (opened), the record first.
async fn clear_entries(db: &str) -> Vec<(String, Vec<u8>)> {
    use confab_core::client::LocalStore;
    let store = confab_wasm::store::IdbStore::open(db).await.unwrap();
    let entries = store.scan("meta/mls").await.unwrap();
    store.close();
    entries
}

fn record_of(entries: &[(String, Vec<u8>)]) -> &[u8] {
    &entries.iter().find(|(k, _)| k == "meta/mls").unwrap().1
}

#[wasm_bindgen_test]
async fn the_device_state_is_sealed_at_rest() {
    let s = server();
    let run = unique("rest");
    let db = format!("e2ee-alice-{run}");
    let alice = device(s.alice, "alice", &run).await;
    online(&alice).await;
    done(alice.dispose()).await.unwrap();
    drop(alice);

    // IndexedDB holds the record and every entry of the state sealed: nothing of the
    // device's state in any of them, the private signature key included (no 16 bytes of an
    // opened value appear in a raw one).
    let clear = clear_entries(&db).await;
    let raw = raw_entries(&db, "kv", "meta/mls").await;
    assert!(
        clear.len() > 1,
        "the state is not kept as entries: {clear:?}"
    );
    assert_eq!(
        raw.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        clear.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    let mut sealed = std::collections::HashSet::new();
    for (key, value) in &raw {
        assert!(value.starts_with(b"cfw1"), "{key} is not sealed");
        sealed.extend(value.windows(16));
    }
    for (key, value) in &clear {
        assert!(
            !value.windows(16).any(|w| sealed.contains(w)),
            "the raw {key} holds bytes of the device's state"
        );
    }
    // The key that wraps it is a CryptoKey no script can export.
    let keys = raw_record(&format!("{db}/keys"), "keys", "device").await;
    let key = js_sys::Reflect::get(&keys, &"key".into()).unwrap();
    assert!(key.is_instance_of::<web_sys::CryptoKey>());
    assert_eq!(
        js_sys::Reflect::get(&key, &"extractable".into()).unwrap(),
        JsValue::FALSE
    );

    // A reload attaches the same device (its signature key) from the sealed record.
    let before = signature_key(record_of(&clear));
    let alice = device(s.alice, "alice", &run).await;
    assert_eq!(alice.device_id(), format!("alice-{run}"));
    online(&alice).await;
    done(alice.dispose()).await.unwrap();
    assert_eq!(signature_key(record_of(&clear_entries(&db).await)), before);
}

/// The ids and bodies `client` lists as scheduled in `conv`.
fn scheduled_in(client: &ConfabClient, conv: &str) -> Vec<(String, String)> {
    let list = client.scheduled(Some(conv.to_owned())).unwrap();
    list.iter()
        .filter_map(|s| s.to_rust().ok())
        .map(|s| (s.id, s.body))
        .collect()
}

fn draft_of(client: &ConfabClient, conv: &str) -> Option<String> {
    client.draft(conv).unwrap().as_string()
}

/// docs/E2EE.md, "Drafts and scheduled messages": the same calls as in the clear, kept in
/// the device's IndexedDB store across a reload and on none of the account's other devices;
/// a scheduled message is posted sealed by its device at its time and read by a member.
#[wasm_bindgen_test]
async fn drafts_and_scheduled_messages_of_an_encrypted_group_stay_on_the_device() {
    let s = server();
    let run = unique("h");
    let alice = device(s.alice, "alice", &run).await;
    let bob = device(s.bob, "bob", &run).await;
    for c in [&alice, &bob] {
        online(c).await;
    }
    let conv = encrypted_group(&alice, "drafts", &[&bob]).await;

    let saved: IntentResult = ok(alice.set_draft(conv.clone(), Some("half a secret".into()))).await;
    accepted(&alice, saved, "the draft kept").await;
    assert_eq!(draft_of(&alice, &conv).as_deref(), Some("half a secret"));
    let tomorrow = js_sys::Date::now() + 86_400_000.0;
    let kept: IntentResult = ok(alice.schedule(conv.clone(), "tomorrow".into(), tomorrow)).await;
    let kept_id = kept.message.clone().unwrap();
    accepted(&alice, kept, "the far one kept").await;
    let far = vec![(kept_id.clone(), "tomorrow".to_owned())];
    assert_eq!(scheduled_in(&alice, &conv), far);

    // A reload keeps them; another device of alice's never sees them.
    done(alice.dispose()).await.unwrap();
    drop(alice);
    let alice = device(s.alice, "alice", &run).await;
    assert_eq!(draft_of(&alice, &conv).as_deref(), Some("half a secret"));
    assert_eq!(scheduled_in(&alice, &conv), far);
    let laptop = device(s.alice, "alice", &format!("{run}-laptop")).await;
    online(&laptop).await;
    assert_eq!(draft_of(&laptop, &conv), None);
    assert_eq!(scheduled_in(&laptop, &conv), Vec::new());

    // Due in two seconds: alice's device posts it sealed, bob reads it.
    done(alice.connect()).await.unwrap();
    let soon = js_sys::Date::now() + 2_000.0;
    let due: IntentResult =
        ok(alice.schedule(conv.clone(), "sealed at its time".into(), soon)).await;
    let due_id = due.message.clone().unwrap();
    wait_for("bob reads the scheduled message", WAIT, || {
        reads(&bob, &conv, &due_id, "sealed at its time")
    })
    .await;
    assert_eq!(scheduled_in(&alice, &conv), far);

    let cancelled: IntentResult = ok(alice.cancel_scheduled(kept_id)).await;
    accepted(&alice, cancelled, "the cancel").await;
    assert_eq!(scheduled_in(&alice, &conv), Vec::new());
    for c in [&alice, &bob, &laptop] {
        done(c.dispose()).await.unwrap();
    }
}
