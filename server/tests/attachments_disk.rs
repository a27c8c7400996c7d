//! Attachments on a full disk: the blob store on a small tmpfs (needs root to mount it; the
//! test fails saying so otherwise, as tests/tests/faults_storage.rs does: a skipped fault
//! test would pass silently).

use std::path::{Path, PathBuf};
use std::time::Duration;

use confab_server::engine::now_ms;
use sha2::{Digest, Sha256};

// Only part of the shared support is used here.
#[allow(dead_code)]
mod support;

use support::Server;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("confab-blobs-{}-{size}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mount point");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        if !out.status.success() {
            let _ = std::fs::remove_dir(&dir);
            panic!(
                "the attachment disk-full test needs root to mount a tmpfs ({}); run it as root",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

async fn put(s: &Server, token: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
    let hash = hex::encode(Sha256::digest(&bytes));
    let response = s
        .http
        .put(format!("{}/v1/conversations/g/attachments/{hash}", s.base))
        .bearer_auth(token)
        .header("content-type", "text/plain")
        .body(bytes)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_full_disk_answers_storage_full_and_stores_nothing() {
    let disk = Tmpfs::mount("2m");
    let s = Server::start_with_blobs(Some(disk.0.clone()), |_| {}).await;
    let alice = s.mint("alice", "user", now_ms() / 1000 + 3600);
    let created = s
        .http
        .post(format!("{}/v1/conversations", s.base))
        .bearer_auth(&alice)
        .json(&serde_json::json!({"kind": "group", "id": "g", "members": [{"account": "bob"}]}))
        .send()
        .await
        .expect("request");
    assert_eq!(created.status().as_u16(), 201);

    let (status, body) = put(&s, &alice, vec![b'x'; 3 << 20]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (507, Some("storage_full")),
        "{body}"
    );
    // The aborted upload's staging file goes (object_store removes it on a blocking thread).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !files(&disk.0).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(files(&disk.0).is_empty(), "{:?}", files(&disk.0));

    // The space is there again for what fits.
    let (status, body) = put(&s, &alice, vec![b'y'; 100 << 10]).await;
    assert_eq!(status, 201, "{body}");
}
