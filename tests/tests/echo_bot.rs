//! The example bot of `confab-client` (client/examples/echo_bot.rs), built and run as its
//! own process against the real server: added to a conversation, it answers a message with
//! an echo that replies to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use confab_core::ids::ConvId;
use confab_e2e::native_support::{accepted, client, fresh_dirs, group_of, send, today, wait_for};
use confab_e2e::{token, Backend, TestServer};

/// Builds the example and returns its path.
fn build_echo_bot() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "confab-client",
            "--example",
            "echo_bot",
        ])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success(), "cargo build of the echo bot failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    target.join("debug").join("examples").join("echo_bot")
}

#[tokio::test]
async fn the_echo_bot_answers_a_message_in_a_conversation_it_was_added_to() {
    let bot = build_echo_bot();
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let dirs = fresh_dirs("echo-bot", 2);
    std::fs::create_dir_all(&dirs[1]).unwrap();
    let mut child = tokio::process::Command::new(bot)
        .env("CONFAB_URL", server.ws_url())
        .env("CONFAB_TOKEN", token("acme", "echo", false, 3600))
        .env("CONFAB_TENANT", "acme")
        .env("CONFAB_ACCOUNT", "echo")
        .env("CONFAB_STORE", dirs[1].join("echo.db"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let alice = client(&server, "alice", 1, &dirs[0]);
    alice.set_online(true).await.unwrap();
    let conv = ConvId::new("with-the-bot").unwrap();
    let created = alice.intent(group_of(&conv, &["echo"])).await.unwrap();
    accepted(&alice, created).await;
    let bucket = today(&alice, &conv).await;
    alice.open(bucket).await.unwrap();
    let question = send(&alice, &conv, "q1", "ping").await;
    accepted(&alice, question).await;

    assert_eq!(wait_for(&alice, &conv, 2).await, vec!["ping", "echo: ping"]);
    let reply = alice
        .query({
            let conv = conv.clone();
            move |e| e.timeline(&conv).pop().map(|i| i.message)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.author.as_str(), "echo");
    assert_eq!(
        reply.reply_to.map(|id| id.to_string()).as_deref(),
        Some("q1")
    );
    // The bot is still running: it did not fail on the way.
    assert!(child.try_wait().unwrap().is_none(), "the bot exited");
    child.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}
