//! `erasure` (`cargo xtask bench erasure`): how long erasing an account takes
//! (docs/OPERATIONS.md, "Account erasure"; docs/BENCHMARKS.md, "Account erasure").
//!
//! Against the release `confab-server` on 127.0.0.1 (SQLite, or a fresh Postgres database):
//! an owner creates `--conversations` groups with the account as a member; the account posts
//! `--messages` messages spread evenly over them through the real server (raw WebSocket
//! submits of up to 500 changes, every one acked; the server's rate budgets raised). A service token then calls
//! `POST /v1/accounts/{account}/erasure` and polls `GET` every 100 ms until it answers
//! `done`. Measured: the time from the call to `done` and messages per second; the answer
//! must count every message as redacted and every conversation as left.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use confab_core::doc::write;
use confab_core::ids::{AccountId, Bucket, ConvId, DocId, MessageId, TenantId};
use confab_core::limits::BUCKET_TARGET_MESSAGES;
use confab_core::model::conversation::{ConvKind, Info, Member, Role, Settings, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;
use confab_testkit::http::request;
use confab_testkit::server::{append_line, now_ms, token, Backend, TestServer, UNLIMITED_RATES};
use confab_testkit::wire::Client;
use confab_testkit::{Answer, Device};

const TENANT: &str = "acme";
const OWNER: &str = "owner";
const ERASED: &str = "leaver";
const SERVICE: &str = "ops";

#[derive(Parser, Debug)]
#[command(about = "Erasing an account with many messages: time and rate")]
struct Args {
    /// The release server binary.
    #[arg(long)]
    server_bin: PathBuf,
    /// Messages the erased account wrote.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Conversations they are spread over.
    #[arg(long, default_value_t = 10)]
    conversations: usize,
    /// `sqlite`, `postgres` or both.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<String>,
    /// Give up on an erasure after this many seconds.
    #[arg(long, default_value_t = 1_800)]
    limit_secs: u64,
    /// Append one JSON line per backend to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn tenant() -> TenantId {
    TenantId::new(TENANT).expect("static tenant id")
}

fn expect_acks(answers: &[Answer]) -> Result<()> {
    match answers.iter().find(|a| !matches!(a, Answer::Ack { .. })) {
        Some(other) => bail!("a change was not accepted: {other:?}"),
        None => Ok(()),
    }
}

/// `method path` with `bearer`: the status and the body.
async fn http(port: u16, method: &str, path: &str, bearer: &str) -> Result<(u16, String)> {
    let answer = request(port, method, path, bearer, None, Duration::from_secs(30)).await?;
    Ok((answer.status, answer.body))
}

/// The owner's group `conv` with the erased account as a member.
async fn create_group(owner: &mut Device, client: &mut Client, conv: &ConvId) -> Result<()> {
    let owner_id = AccountId::new(OWNER)?;
    let mut member = Member::new(AccountId::new(ERASED)?, Role::Member);
    member.invited_by = Some(owner_id.clone());
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: owner_id.clone(),
        created_at: now_ms(),
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info {
            title: Some("erasure".into()),
            ..Info::default()
        },
        settings: Settings::defaults_for(ConvKind::Group),
        members: vec![Member::new(owner_id, Role::Owner), member],
        encrypted: false,
    };
    let doc = DocId::conv(&tenant(), conv);
    let change = owner.write(&doc, |d, t| write::create_conversation(d, t, &spec))?;
    expect_acks(&client.submit(&doc, &[change]).await?)
}

/// Posts `count` messages of `dev` into `conv` (today, 1 ms apart, in the past), part by part
/// of `BUCKET_TARGET_MESSAGES`, up to 500 per submit, each acked.
async fn post(dev: &mut Device, client: &mut Client, conv: &ConvId, count: usize) -> Result<()> {
    let now = now_ms();
    let day = now.div_euclid(DEFAULT_BUCKET_MS);
    let first_at = (now - count as i64 - 1_000).max(day * DEFAULT_BUCKET_MS);
    let author = AccountId::new(ERASED)?;
    let mut i = 0;
    while i < count {
        let part = i / BUCKET_TARGET_MESSAGES;
        let doc = DocId::msgs(&tenant(), conv, Bucket::new(day, u32::try_from(part)?));
        let end = count.min((part + 1) * BUCKET_TARGET_MESSAGES).min(i + 500);
        let mut batch = Vec::with_capacity(end - i);
        for k in i..end {
            let at = first_at + k as i64;
            let id = MessageId::new(format!("m{k}"))?;
            let message =
                NewMessage::text(id, author.clone(), format!("message {k} of {conv}"), at);
            batch.push(dev.write(&doc, |d, t| write::post_message(d, t, &message))?);
        }
        expect_acks(&client.submit(&doc, &batch).await?)?;
        i = end;
    }
    Ok(())
}

async fn run_backend(args: &Args, backend: Backend) -> Result<serde_json::Value> {
    let server = TestServer::start_logged(&args.server_bin, backend, UNLIMITED_RATES).await?;
    let url = server.ws_url();
    let n_convs = args.conversations.max(1);
    let per_conv = args.messages.div_ceil(n_convs);
    let mut owner = Device::new(OWNER, 1);
    let mut owner_client = Client::connect(&url, &token(TENANT, OWNER, false, 3600)).await?;
    let mut dev = Device::new(ERASED, 1);
    let mut client = Client::connect(&url, &token(TENANT, ERASED, false, 3600)).await?;
    let filled = Instant::now();
    let mut written = 0;
    for c in 0..n_convs {
        let conv = ConvId::new(format!("erasure-{c}"))?;
        create_group(&mut owner, &mut owner_client, &conv).await?;
        let count = per_conv.min(args.messages - written);
        post(&mut dev, &mut client, &conv, count).await?;
        written += count;
    }
    client.close().await;
    owner_client.close().await;
    let fill_s = filled.elapsed().as_secs_f64();
    eprintln!(
        "{backend:?}: {written} messages in {n_convs} conversations, filled in {fill_s:.1} s"
    );

    let bearer = token(TENANT, SERVICE, true, 3600);
    let path = format!("/v1/accounts/{ERASED}/erasure");
    let started = Instant::now();
    let (status, body) = http(server.port, "POST", &path, &bearer).await?;
    if status != 202 && status != 200 {
        bail!("POST {path}: {status} {body}");
    }
    let limit = Duration::from_secs(args.limit_secs);
    let answer: serde_json::Value = loop {
        let (status, body) = http(server.port, "GET", &path, &bearer).await?;
        if status != 200 {
            bail!("GET {path}: {status} {body}");
        }
        let answer: serde_json::Value = serde_json::from_str(&body)?;
        if answer["state"] == "done" {
            break answer;
        }
        if started.elapsed() > limit {
            bail!("not done after {limit:?}: {answer}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = started.elapsed().as_secs_f64();
    let redacted = answer["messages_redacted"].as_u64().unwrap_or(0);
    let left = answer["conversations_left"].as_u64().unwrap_or(0);
    if redacted != written as u64 || left != n_convs as u64 {
        bail!("the erasure counted {redacted} messages and {left} conversations: {answer}");
    }
    Ok(serde_json::json!({
        "backend": match backend { Backend::Sqlite => "sqlite", Backend::Postgres => "postgres" },
        "messages": written,
        "conversations": n_convs,
        "fill_s": (fill_s * 10.0).round() / 10.0,
        "erasure_s": (took * 100.0).round() / 100.0,
        "messages_per_s": (written as f64 / took).round(),
    }))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if !args.server_bin.exists() {
        bail!("no server binary at {}", args.server_bin.display());
    }
    for name in &args.backends {
        let backend: Backend = name.parse()?;
        let row = run_backend(&args, backend)
            .await
            .with_context(|| format!("erasure on {name}"))?;
        println!("{row}");
        if let Some(path) = &args.json {
            append_line(path, &row.to_string())?;
        }
    }
    Ok(())
}
