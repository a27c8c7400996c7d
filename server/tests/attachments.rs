//! Attachments over real HTTP (docs/ATTACHMENTS.md): the app in-process on the embedded
//! SQLite store, blobs as real files in a temp dir, called with reqwest.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use confab_server::engine::now_ms;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;

use support::{Server, TENANT};

const DAY_MS: i64 = 24 * 3600 * 1000;

struct Answer {
    status: u16,
    body: Value,
    bytes: Vec<u8>,
    content_type: String,
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Server {
    fn user(&self, account: &str) -> String {
        self.mint(account, "user", now_ms() / 1000 + 3600)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some((mime, bytes)) = body {
            request = request.header("content-type", mime).body(bytes);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = response.bytes().await.expect("body").to_vec();
        let body = if content_type.starts_with("application/json") {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        Answer {
            status,
            body,
            bytes,
            content_type,
        }
    }

    async fn json(&self, method: Method, path: &str, token: &str, body: Value) -> Answer {
        let bytes = serde_json::to_vec(&body).expect("json");
        self.send(method, path, token, Some(("application/json", bytes)))
            .await
    }

    async fn put_blob(&self, conv: &str, token: &str, mime: &str, bytes: &[u8]) -> Answer {
        let path = format!("/v1/conversations/{conv}/attachments/{}", sha(bytes));
        self.send(Method::PUT, &path, token, Some((mime, bytes.to_vec())))
            .await
    }

    async fn group(&self, token: &str, id: &str, members: &[&str]) {
        let members: Vec<Value> = members.iter().map(|m| json!({"account": m})).collect();
        let created = self
            .json(
                Method::POST,
                "/v1/conversations",
                token,
                json!({"kind": "group", "id": id, "members": members}),
            )
            .await;
        expect(&created, 201);
    }

    /// Every file under the blob store's folder.
    fn files(&self) -> Vec<PathBuf> {
        walk(&self.blob_dir)
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
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

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 200])
    });
    let mut out = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encode");
    out
}

#[tokio::test]
async fn members_upload_download_and_send_attachments() {
    let s = Server::start().await;
    let (alice, bob, carol) = (s.user("alice"), s.user("bob"), s.user("carol"));
    s.group(&alice, "g", &["bob"]).await;
    let photo = png(40, 30);
    let hash = sha(&photo);

    let stored = s.put_blob("g", &alice, "image/png", &photo).await;
    let blob = expect(&stored, 201).clone();
    assert_eq!(blob["hash"], hash);
    assert_eq!(blob["size"], photo.len());
    assert_eq!(blob["mime"], "image/png");
    let path = format!("/v1/conversations/g/attachments/{hash}");
    assert_eq!(blob["path"], path);
    assert!(blob["url"].as_str().expect("url").starts_with("https://"));
    // Content-addressed: the same bytes again are the same blob, stored once.
    let files = s.files();
    let again = s.put_blob("g", &bob, "image/png", &photo).await;
    assert_eq!(expect(&again, 200)["hash"], hash);
    assert_eq!(s.files(), files);

    let got = s.send(Method::GET, &path, &bob, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.bytes, photo);
    assert_eq!(got.content_type, "image/png");

    // A message names it by its URL.
    let attachment = json!({"id": "a1", "kind": "image", "mime": "image/png",
        "size": photo.len(), "url": blob["url"]});
    let posted = s
        .json(
            Method::POST,
            "/v1/conversations/g/messages",
            &alice,
            json!({"id": "m1", "kind": "image", "attachments": [attachment]}),
        )
        .await;
    expect(&posted, 201);

    // Outsiders neither upload nor download.
    expect_error(
        &s.send(Method::GET, &path, &carol, None).await,
        403,
        "not_member",
    );
    let other = png(3, 3);
    expect_error(
        &s.put_blob("g", &carol, "image/png", &other).await,
        403,
        "not_member",
    );
    let missing = format!("/v1/conversations/g/attachments/{}", sha(b"nothing"));
    expect_error(
        &s.send(Method::GET, &missing, &bob, None).await,
        404,
        "not_found",
    );
    let no_token = s
        .http
        .get(format!("{}{path}", s.base))
        .send()
        .await
        .expect("request");
    assert_eq!(no_token.status().as_u16(), 401);
}

#[tokio::test]
async fn bad_uploads_are_refused_and_store_nothing() {
    let s = Server::start_with_blobs(None, |b| b.limits.max_bytes = 1000).await;
    let alice = s.user("alice");
    s.group(&alice, "g", &["bob"]).await;
    let before = s.files();

    let exe = b"MZ\x90\x00".to_vec();
    let wrong_type = s
        .put_blob("g", &alice, "application/x-msdownload", &exe)
        .await;
    expect_error(&wrong_type, 415, "type_not_allowed");
    let html = s
        .put_blob("g", &alice, "text/html", b"<script>".as_slice())
        .await;
    expect_error(&html, 415, "type_not_allowed");

    let big = vec![7u8; 1001];
    expect_error(
        &s.put_blob("g", &alice, "text/plain", &big).await,
        413,
        "too_large",
    );
    // Without a Content-Length, the limit is enforced while streaming.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1u8; 600]), Ok(vec![2u8; 600])];
    let streamed = s
        .http
        .put(format!(
            "{}/v1/conversations/g/attachments/{}",
            s.base,
            sha(&[[1u8; 600], [2u8; 600]].concat())
        ))
        .bearer_auth(&alice)
        .header("content-type", "text/plain")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("request");
    assert_eq!(streamed.status().as_u16(), 413);

    let liar = format!("/v1/conversations/g/attachments/{}", sha(b"what I said"));
    let mismatch = s
        .send(
            Method::PUT,
            &liar,
            &alice,
            Some(("text/plain", b"what I sent".to_vec())),
        )
        .await;
    expect_error(&mismatch, 422, "hash_mismatch");
    let bad_hash = s
        .send(
            Method::PUT,
            "/v1/conversations/g/attachments/abc",
            &alice,
            Some(("text/plain", b"x".to_vec())),
        )
        .await;
    expect_error(&bad_hash, 422, "invalid_hash");

    assert_eq!(s.files(), before, "a refused upload left files behind");
    let fine = s.put_blob("g", &alice, "text/plain", b"fine").await;
    expect(&fine, 201);
}

#[tokio::test]
async fn blobs_belong_to_one_conversation_of_one_tenant() {
    let s = Server::start().await;
    let alice = s.user("alice");
    s.group(&alice, "a", &["bob"]).await;
    s.group(&alice, "b", &["bob"]).await;
    let bytes = b"only in a".to_vec();
    let hash = sha(&bytes);
    let url = expect(&s.put_blob("a", &alice, "text/plain", &bytes).await, 201)["url"]
        .as_str()
        .expect("url")
        .to_owned();

    // The same member asks through the other conversation: not there.
    let via_b = format!("/v1/conversations/b/attachments/{hash}");
    expect_error(
        &s.send(Method::GET, &via_b, &alice, None).await,
        404,
        "not_found",
    );
    // A message of b cannot reference a's blob, nor one never uploaded.
    for url in [
        url.clone(),
        format!("https://x/v1/conversations/b/attachments/{}", sha(b"?")),
    ] {
        let attachment = json!({"id": "a1", "kind": "file", "url": url});
        let refused = s
            .json(
                Method::POST,
                "/v1/conversations/b/messages",
                &alice,
                json!({"kind": "file", "attachments": [attachment]}),
            )
            .await;
        expect_error(&refused, 422, "blob_not_found");
    }

    // Another tenant with the same names sees nothing of it.
    let outsider = s
        .auth
        .mint(&confab_server::auth::Claims {
            sub: "alice".into(),
            tenant: "other".into(),
            exp: now_ms() / 1000 + 3600,
            kind: "user".into(),
        })
        .expect("mint");
    assert_ne!(TENANT, "other");
    s.group(&outsider, "a", &["bob"]).await;
    let theirs = format!("/v1/conversations/a/attachments/{hash}");
    expect_error(
        &s.send(Method::GET, &theirs, &outsider, None).await,
        404,
        "not_found",
    );
    // Their own upload of the same bytes is their own blob.
    expect(&s.put_blob("a", &outsider, "text/plain", &bytes).await, 201);
}

#[tokio::test]
async fn allow_attachments_false_refuses_uploads() {
    let s = Server::start().await;
    let alice = s.user("alice");
    s.group(&alice, "g", &["bob"]).await;
    let off = s
        .json(
            Method::PATCH,
            "/v1/conversations/g/settings",
            &alice,
            json!({"allow_attachments": false}),
        )
        .await;
    expect(&off, 200);
    let bytes = b"hello".to_vec();
    expect_error(
        &s.put_blob("g", &alice, "text/plain", &bytes).await,
        403,
        "attachments_disabled",
    );
    let session = s
        .json(
            Method::POST,
            "/v1/conversations/g/uploads",
            &alice,
            json!({"hash": sha(&bytes), "size": 5, "mime": "text/plain"}),
        )
        .await;
    expect_error(&session, 403, "attachments_disabled");
    assert!(s.files().is_empty(), "{:?}", s.files());
}

#[tokio::test]
async fn resumable_uploads_survive_a_dropped_connection() {
    let s = Server::start_with_blobs(None, |b| b.limits.chunk_max_bytes = 1000).await;
    let (alice, bob) = (s.user("alice"), s.user("bob"));
    s.group(&alice, "g", &["bob"]).await;
    let file: Vec<u8> = (0..2500u32).map(|i| (i * 7 % 251) as u8).collect();
    let hash = sha(&file);
    let opened = s
        .json(
            Method::POST,
            "/v1/conversations/g/uploads",
            &alice,
            json!({"hash": hash, "size": file.len(), "mime": "application/pdf"}),
        )
        .await;
    let session = expect(&opened, 201).clone();
    assert_eq!(
        (session["offset"].clone(), session["complete"].clone()),
        (json!(0), json!(false))
    );
    assert_eq!(session["chunk_max_bytes"], 1000);
    let upload = session["upload"].as_str().expect("upload id").to_owned();
    let at = |offset: usize| format!("/v1/conversations/g/uploads/{upload}?offset={offset}");
    let chunk = |offset: usize, bytes: &[u8]| {
        let (path, bytes) = (at(offset), bytes.to_vec());
        let (s, alice) = (&s, &alice);
        async move {
            s.send(
                Method::PATCH,
                &path,
                alice,
                Some(("application/octet-stream", bytes)),
            )
            .await
        }
    };

    let first = chunk(0, &file[..1000]).await;
    assert_eq!(expect(&first, 200)["offset"], 1000);
    // The same chunk again, or one from the wrong place: the offset says where it stands.
    expect_error(&chunk(0, &file[..1000]).await, 409, "offset_mismatch");
    expect_error(
        &chunk(1500, &file[1500..2000]).await,
        409,
        "offset_mismatch",
    );
    expect_error(
        &chunk(1000, &file[1000..2001]).await,
        413,
        "chunk_too_large",
    );
    // Someone else's upload does not exist for them.
    let progress = format!("/v1/conversations/g/uploads/{upload}");
    expect_error(
        &s.send(Method::GET, &progress, &bob, None).await,
        404,
        "not_found",
    );

    // The connection drops halfway through the second chunk: nothing of it is kept.
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {alice}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n",
        at(1000)
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    tcp.write_all(&file[1000..1400]).await.expect("write");
    tcp.shutdown().await.expect("half-close");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
    drop(tcp);
    let resumed = s.send(Method::GET, &progress, &alice, None).await;
    assert_eq!(expect(&resumed, 200)["offset"], 1000);

    let second = chunk(1000, &file[1000..2000]).await;
    assert_eq!(expect(&second, 200)["offset"], 2000);
    let last = chunk(2000, &file[2000..]).await;
    let done = expect(&last, 201);
    assert_eq!(done["complete"], true);
    assert_eq!(done["blob"]["hash"], hash);
    let got = s
        .send(
            Method::GET,
            &format!("/v1/conversations/g/attachments/{hash}"),
            &bob,
            None,
        )
        .await;
    assert_eq!(got.bytes, file);
    assert_eq!(got.content_type, "application/pdf");
    // The session is gone; only the blob and its description stay.
    expect_error(
        &s.send(Method::GET, &progress, &alice, None).await,
        404,
        "not_found",
    );
    assert_eq!(s.files().len(), 2, "{:?}", s.files());

    // Opening an upload of what is stored answers it at once.
    let known = s
        .json(
            Method::POST,
            "/v1/conversations/g/uploads",
            &bob,
            json!({"hash": hash, "size": file.len(), "mime": "application/pdf"}),
        )
        .await;
    let known = expect(&known, 200);
    assert_eq!(
        (known["complete"].clone(), known.get("upload")),
        (json!(true), None)
    );
}

#[tokio::test]
async fn a_resumable_upload_that_does_not_match_its_hash_stores_nothing() {
    let s = Server::start().await;
    let alice = s.user("alice");
    s.group(&alice, "g", &["bob"]).await;
    let opened = s
        .json(
            Method::POST,
            "/v1/conversations/g/uploads",
            &alice,
            json!({"hash": sha(b"promised"), "size": 9, "mime": "text/plain"}),
        )
        .await;
    let upload = expect(&opened, 201)["upload"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v1/conversations/g/uploads/{upload}");
    let too_far = s
        .send(
            Method::PATCH,
            &format!("{path}?offset=0"),
            &alice,
            Some(("text/plain", b"0123456789".to_vec())),
        )
        .await;
    expect_error(&too_far, 422, "size_mismatch");
    let no_offset = s
        .send(
            Method::PATCH,
            &path,
            &alice,
            Some(("text/plain", b"x".to_vec())),
        )
        .await;
    expect_error(&no_offset, 422, "invalid_value");
    let wrong = s
        .send(
            Method::PATCH,
            &format!("{path}?offset=0"),
            &alice,
            Some(("text/plain", b"delivered".to_vec())),
        )
        .await;
    expect_error(&wrong, 422, "hash_mismatch");
    expect_error(
        &s.send(Method::GET, &path, &alice, None).await,
        404,
        "not_found",
    );
    assert!(s.files().is_empty(), "{:?}", s.files());

    // Abandoning an upload removes it.
    let opened = s
        .json(
            Method::POST,
            "/v1/conversations/g/uploads",
            &alice,
            json!({"hash": sha(b"later"), "size": 5, "mime": "text/plain"}),
        )
        .await;
    let upload = expect(&opened, 201)["upload"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v1/conversations/g/uploads/{upload}");
    assert_eq!(
        s.send(Method::DELETE, &path, &alice, None).await.status,
        204
    );
    expect_error(
        &s.send(Method::GET, &path, &alice, None).await,
        404,
        "not_found",
    );
    assert!(s.files().is_empty(), "{:?}", s.files());
}

#[tokio::test]
async fn images_have_thumbnails_within_a_pixel_limit() {
    let s = Server::start_with_blobs(None, |b| b.thumbnails.max_pixels = 1_000_000).await;
    let (alice, bob) = (s.user("alice"), s.user("bob"));
    s.group(&alice, "g", &["bob"]).await;
    let photo = png(600, 400);
    expect(&s.put_blob("g", &alice, "image/png", &photo).await, 201);
    let thumb_path = format!("/v1/conversations/g/attachments/{}/thumbnail", sha(&photo));
    let thumb = s.send(Method::GET, &thumb_path, &bob, None).await;
    assert_eq!(thumb.status, 200, "{}", thumb.body);
    assert_eq!(thumb.content_type, "image/jpeg");
    let decoded = image::load_from_memory(&thumb.bytes).expect("a JPEG");
    assert_eq!((decoded.width(), decoded.height()), (256, 171));
    // Kept: asked again, the same bytes.
    assert_eq!(
        s.send(Method::GET, &thumb_path, &bob, None).await.bytes,
        thumb.bytes
    );

    let huge = png(1001, 1000);
    expect(&s.put_blob("g", &alice, "image/png", &huge).await, 201);
    let refused = s
        .send(
            Method::GET,
            &format!("/v1/conversations/g/attachments/{}/thumbnail", sha(&huge)),
            &bob,
            None,
        )
        .await;
    expect_error(&refused, 404, "no_thumbnail");
    // A file that claims to be an image but is not.
    let fake = b"not a png at all".to_vec();
    expect(&s.put_blob("g", &alice, "image/png", &fake).await, 201);
    let refused = s
        .send(
            Method::GET,
            &format!("/v1/conversations/g/attachments/{}/thumbnail", sha(&fake)),
            &bob,
            None,
        )
        .await;
    expect_error(&refused, 404, "no_thumbnail");
    let text = b"plain".to_vec();
    expect(&s.put_blob("g", &alice, "text/plain", &text).await, 201);
    let refused = s
        .send(
            Method::GET,
            &format!("/v1/conversations/g/attachments/{}/thumbnail", sha(&text)),
            &bob,
            None,
        )
        .await;
    expect_error(&refused, 404, "no_thumbnail");
}

/// Sets a blob file's time `days` back, as if it was uploaded then.
fn age(s: &Server, conv: &str, hash: &str, days: u64) {
    let path = s.blob_dir.join(format!("t/{TENANT}/c/{conv}/blobs/{hash}"));
    let file = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("blob file");
    file.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .expect("set mtime");
}

#[tokio::test]
async fn retention_deletes_blobs_only_dropped_messages_referenced() {
    let s = Server::start().await;
    let alice = s.user("alice");
    s.group(&alice, "g", &["bob"]).await;
    let retention = s
        .json(
            Method::PATCH,
            "/v1/conversations/g/settings",
            &alice,
            json!({"message_retention_days": 1}),
        )
        .await;
    expect(&retention, 200);
    let (sent, orphan, fresh) = (b"sent".to_vec(), b"never sent".to_vec(), b"new".to_vec());
    let url = expect(&s.put_blob("g", &alice, "text/plain", &sent).await, 201)["url"].clone();
    expect(&s.put_blob("g", &alice, "text/plain", &orphan).await, 201);
    expect(&s.put_blob("g", &alice, "text/plain", &fresh).await, 201);
    let attachment = json!({"id": "a1", "kind": "file", "url": url});
    let posted = s
        .json(
            Method::POST,
            "/v1/conversations/g/messages",
            &alice,
            json!({"id": "m1", "kind": "file", "attachments": [attachment]}),
        )
        .await;
    expect(&posted, 201);
    // Both uploaded "ten days ago"; the message that names one is today's.
    age(&s, "g", &sha(&sent), 10);
    age(&s, "g", &sha(&orphan), 10);

    let now = now_ms();
    let report = s.blobs.sweep(&s.engine, now).await.expect("sweep");
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    let blob = |bytes: &[u8]| format!("/v1/conversations/g/attachments/{}", sha(bytes));
    expect_error(
        &s.send(Method::GET, &blob(&orphan), &alice, None).await,
        404,
        "not_found",
    );
    assert_eq!(
        s.send(Method::GET, &blob(&sent), &alice, None).await.bytes,
        sent
    );

    // Ten days on, retention drops today's bucket: its blob goes with it; the fresh one
    // (uploaded inside what was then the window) is as old now and unreferenced: it goes too.
    let later = now + 10 * DAY_MS;
    let dropped = s.engine.expire_buckets(later).await.expect("retention");
    assert_eq!(dropped.buckets, 1, "{dropped:?}");
    let report = s.blobs.sweep(&s.engine, later).await.expect("sweep");
    assert_eq!(report.blobs_deleted, 2, "{report:?}");
    expect_error(
        &s.send(Method::GET, &blob(&sent), &alice, None).await,
        404,
        "not_found",
    );
    assert!(s.files().is_empty(), "{:?}", s.files());
}

#[tokio::test]
async fn stale_upload_sessions_are_swept() {
    let s = Server::start().await;
    let alice = s.user("alice");
    s.group(&alice, "g", &["bob"]).await;
    let opened = s
        .json(
            Method::POST,
            "/v1/conversations/g/uploads",
            &alice,
            json!({"hash": sha(b"abc"), "size": 3, "mime": "text/plain"}),
        )
        .await;
    let upload = expect(&opened, 201)["upload"]
        .as_str()
        .expect("id")
        .to_owned();
    let report = s.blobs.sweep(&s.engine, now_ms()).await.expect("sweep");
    assert_eq!(report.uploads_deleted, 0);
    let report = s
        .blobs
        .sweep(&s.engine, now_ms() + DAY_MS + 60_000)
        .await
        .expect("sweep");
    assert_eq!(report.uploads_deleted, 1);
    let path = format!("/v1/conversations/g/uploads/{upload}");
    expect_error(
        &s.send(Method::GET, &path, &alice, None).await,
        404,
        "not_found",
    );
}

/// A forward's copy is its conversation's own (docs/ATTACHMENTS.md, "Forwarding"): the
/// source's retention dropping its message and blob leaves the forward's copy readable in
/// the target while the forward names it; the target's retention then sweeps it with the
/// forward.
#[tokio::test]
async fn a_forwards_copy_outlives_the_sources_retention() {
    let s = Server::start().await;
    let alice = s.user("alice");
    s.group(&alice, "src", &["bob"]).await;
    s.group(&alice, "dst", &["carol"]).await;
    for conv in ["src", "dst"] {
        let path = format!("/v1/conversations/{conv}/settings");
        let patch = json!({"message_retention_days": if conv == "src" { 1 } else { 30 }});
        expect(&s.json(Method::PATCH, &path, &alice, patch).await, 200);
    }
    let bytes = b"forward me".to_vec();
    let url = expect(&s.put_blob("src", &alice, "text/plain", &bytes).await, 201)["url"].clone();
    let attachments = json!([{"id": "a1", "kind": "file", "url": url}]);
    let post = json!({"id": "m1", "kind": "file", "attachments": attachments});
    expect(
        &s.json(Method::POST, "/v1/conversations/src/messages", &alice, post)
            .await,
        201,
    );
    let forward = json!({"id": "f1", "kind": "file", "forwarded_from": "src/m1",
        "attachments": attachments});
    expect(
        &s.json(
            Method::POST,
            "/v1/conversations/dst/messages",
            &alice,
            forward,
        )
        .await,
        201,
    );
    let carol = s.user("carol");
    let copy = format!("/v1/conversations/dst/attachments/{}", sha(&bytes));
    assert_eq!(s.send(Method::GET, &copy, &carol, None).await.bytes, bytes);

    // Ten days on, the source's retention drops its message and sweeps its blob; the
    // target keeps its forward (30 days) and the copy.
    let later = now_ms() + 10 * DAY_MS;
    age(&s, "src", &sha(&bytes), 10);
    age(&s, "dst", &sha(&bytes), 10);
    let dropped = s.engine.expire_buckets(later).await.expect("retention");
    assert_eq!(dropped.buckets, 1, "{dropped:?}");
    let report = s.blobs.sweep(&s.engine, later).await.expect("sweep");
    assert_eq!(
        report.blobs_deleted, 1,
        "the source's blob only: {report:?}"
    );
    let original = format!("/v1/conversations/src/attachments/{}", sha(&bytes));
    expect_error(
        &s.send(Method::GET, &original, &alice, None).await,
        404,
        "not_found",
    );
    assert_eq!(s.send(Method::GET, &copy, &carol, None).await.bytes, bytes);

    // Once the target's retention drops the forward, its copy goes too.
    let much_later = now_ms() + 40 * DAY_MS;
    age(&s, "dst", &sha(&bytes), 40);
    let dropped = s
        .engine
        .expire_buckets(much_later)
        .await
        .expect("retention");
    assert_eq!(dropped.buckets, 1, "{dropped:?}");
    let report = s.blobs.sweep(&s.engine, much_later).await.expect("sweep");
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert!(s.files().is_empty(), "{:?}", s.files());
}
