//! `notify` (`cargo xtask bench notify`): the cost of the notification level `all`
//! (docs/BENCHMARKS.md, "Notifications at the level all").
//!
//! One run per backend, on a fresh store, 127.0.0.1 only: the release server with a push
//! webhook pointed at a receiver in this process. A group of `--group-members` (created
//! over REST) takes `--group-rate` messages per second, its members taking turns, and a
//! channel of `--channel-subscribers` (created over the sync protocol: its first 3,000 in
//! the creation change, the rest in `add_member` changes) takes `--channel-rate` from its
//! owner, both paced over `--seconds`. No member is connected, so every notification is
//! pushed. Then the run waits until the receiver has heard of each conversation's last
//! message (at most `--drain-s`).
//!
//! Measured: webhook delivery p50/p99/max, one sample per call, from the commit of the
//! oldest message it tells of (`since`, server time) to its receipt (the same clock); calls
//! and recipients per call; the server's CPU (utime + stime from /proc/<pid>/stat, from the
//! first message to the end of the drain) per 1,000 notifications, a notification being one
//! message told to one member (what `all` asks for, before coalescing); and the posts'
//! answer p99 (the sender's commit, which must not wait for the fan-out).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use confab_core::automerge::Change;
use confab_core::doc::write;
use confab_core::ids::{AccountId, ConvId, DocId, TenantId};
use confab_core::model::conversation::{ConvKind, Member, Role};
use confab_core::model::time::parse_rfc3339;
use confab_core::protocol::{ClientFrame, ServerFrame};
use confab_testkit::fixture::ConvFixture;
use confab_testkit::server::{append_line, now_ms, token, Backend, TestServer};
use confab_testkit::wire::{Client, Device};
use serde::Serialize;
use serde_bytes::ByteBuf;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TENANT: &str = "acme";
/// Subscribers in the channel's creation change (bounded by `CONV_CHANGE_MAX_OPS`).
const CHANNEL_CREATE_MEMBERS: usize = 3_000;
const CHANNEL_ADD_PER_FRAME: usize = 250;

#[derive(Parser, Debug)]
#[command(
    name = "notify",
    about = "Fan-out of the notification level all (127.0.0.1 only)"
)]
struct Args {
    /// The release server binary.
    #[arg(long)]
    server_bin: PathBuf,
    /// Backends: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "postgres,sqlite")]
    backends: Vec<String>,
    #[arg(long, default_value_t = 1_000)]
    group_members: usize,
    /// Group messages per second.
    #[arg(long, default_value_t = 50.0)]
    group_rate: f64,
    #[arg(long, default_value_t = 10_000)]
    channel_subscribers: usize,
    /// Channel messages per second.
    #[arg(long, default_value_t = 1.0)]
    channel_rate: f64,
    /// How long both post.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// The longest wait for the last pushes after the load.
    #[arg(long, default_value_t = 60.0)]
    drain_s: f64,
    /// Also append each run's JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Run {
    backend: String,
    seconds: f64,
    group_members: usize,
    channel_subscribers: usize,
    group_messages: usize,
    channel_messages: usize,
    /// Messages × members told (author excluded).
    notifications: u64,
    webhook_calls: usize,
    recipients_per_call: f64,
    delivery_p50_ms: f64,
    delivery_p99_ms: f64,
    delivery_max_ms: f64,
    post_p99_ms: f64,
    server_cpu_s: f64,
    cpu_ms_per_1000_notifications: f64,
    drained: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// utime + stime of `pid` in seconds.
fn cpu_s(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the ')', in
    // USER_HZ ticks (100 per second on Linux, whatever the kernel's own tick).
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// What the receiver took: (receipt ms, body).
type Got = Arc<Mutex<Vec<(i64, Value)>>>;

async fn receiver() -> Result<(String, Got)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/push", listener.local_addr()?);
    let got: Got = Arc::default();
    let kept = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let _ = serve(stream, kept).await;
            });
        }
    });
    Ok((url, got))
}

/// Answers requests on one connection (keep-alive) with 200, keeping each body.
async fn serve(mut stream: TcpStream, got: Got) -> Result<()> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let (head_end, length) = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .context("a content-length")?;
                break (end + 4, length);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let at = now_ms();
        if let Ok(v) = serde_json::from_slice::<Value>(&buf[head_end..head_end + length]) {
            if let Ok(mut got) = got.lock() {
                got.push((at, v));
            }
        }
        buf.drain(..head_end + length);
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await?;
    }
}

/// One REST call; the status and how long it took.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    account: &str,
    body: &str,
) -> Result<(u16, Duration)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!(
        "{method} {path} HTTP/1.0\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        token(TENANT, account, false, 3600),
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, started.elapsed()))
}

async fn submit_all(client: &mut Client, doc: &DocId, changes: Vec<Change>) -> Result<()> {
    let n = changes.len();
    client
        .send(&ClientFrame::Submit {
            doc: doc.to_string(),
            changes: changes
                .iter()
                .map(|c| ByteBuf::from(c.raw_bytes().to_vec()))
                .collect(),
        })
        .await?;
    let mut acked = 0;
    while acked < n {
        match client.recv(Duration::from_secs(60)).await? {
            ServerFrame::Ack { .. } => acked += 1,
            ServerFrame::Reject { code, reason, .. } => bail!("{doc}: {code}: {reason}"),
            ServerFrame::Error { code, message, .. } => bail!("{doc}: {code}: {message}"),
            _ => {}
        }
    }
    Ok(())
}

/// The channel `news` of `owner` with `subscribers` subscribers `s{i}`.
async fn create_channel(server: &TestServer, subscribers: usize) -> Result<()> {
    let tenant = TenantId::new(TENANT)?;
    let owner = AccountId::new("owner")?;
    let conv = ConvId::new("news")?;
    let doc = DocId::conv(&tenant, &conv);
    let mut client =
        Client::connect(&server.ws_url(), &token(TENANT, "owner", false, 3600)).await?;
    let mut device = Device::new("owner", 2);
    let ids: Vec<AccountId> = (0..subscribers)
        .map(|i| AccountId::new(format!("s{i}")))
        .collect::<Result<_, _>>()?;
    let first = ids.len().min(CHANNEL_CREATE_MEMBERS);
    let spec = ConvFixture::new(ConvKind::Channel, owner.clone(), now_ms())
        .members(ids[..first].to_vec(), Role::Subscriber)
        .title("news")
        .build();
    let creation = device.write(&doc, |d, t| write::create_conversation(d, t, &spec))?;
    submit_all(&mut client, &doc, vec![creation]).await?;
    for chunk in ids[first..].chunks(CHANNEL_ADD_PER_FRAME) {
        let mut changes = Vec::with_capacity(chunk.len());
        for account in chunk {
            let mut member = Member::new(account.clone(), Role::Subscriber);
            member.invited_by = Some(owner.clone());
            changes.push(device.write(&doc, |d, t| write::add_member(d, t, now_ms(), &member))?);
        }
        submit_all(&mut client, &doc, changes).await?;
    }
    Ok(())
}

/// Posts `rate` messages per second for `seconds` into `conv`, `author(i)` writing the
/// i-th; answers each post's time.
async fn pace(
    port: u16,
    conv: &'static str,
    rate: f64,
    seconds: f64,
    author: impl Fn(usize) -> String,
) -> Result<Vec<f64>> {
    let n = (rate * seconds).round() as usize;
    let start = tokio::time::Instant::now();
    let mut posts = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let author = author(i);
        posts.push(tokio::spawn(async move {
            let body = json!({"id": format!("{conv}-{i}"), "body": format!("message {i}")});
            let path = format!("/v1/conversations/{conv}/messages");
            http(port, "POST", &path, &author, &body.to_string()).await
        }));
    }
    let mut took = Vec::with_capacity(n);
    for p in posts {
        let (status, t) = p.await??;
        if !matches!(status, 200 | 201) {
            bail!("a post to {conv} answered {status}");
        }
        took.push(t.as_secs_f64() * 1e3);
    }
    Ok(took)
}

async fn run(args: &Args, backend: &str) -> Result<Run> {
    let (url, got) = receiver().await?;
    let hook = [
        "--webhook-url",
        url.as_str(),
        "--webhook-secret",
        "bench-secret",
    ];
    let which: Backend = backend.parse()?;
    let server = TestServer::start_logged(&args.server_bin, which, &hook).await?;
    let pid = server.pid().context("the server's pid")?;
    let members: Vec<Value> = (1..args.group_members)
        .map(|i| json!({"account": format!("g{i}")}))
        .collect();
    let body = json!({"kind": "group", "id": "crowd", "title": "crowd", "members": members});
    let (status, _) = http(
        server.port,
        "POST",
        "/v1/conversations",
        "g0",
        &body.to_string(),
    )
    .await?;
    if !matches!(status, 200 | 201) {
        bail!("creating the group answered {status}");
    }
    create_channel(&server, args.channel_subscribers).await?;
    let cpu_before = cpu_s(pid)?;
    let started = Instant::now();
    let members = args.group_members;
    let group = pace(
        server.port,
        "crowd",
        args.group_rate,
        args.seconds,
        move |i| format!("g{}", i % members),
    );
    let channel = pace(server.port, "news", args.channel_rate, args.seconds, |_| {
        "owner".into()
    });
    let (group, channel) = tokio::join!(group, channel);
    let (group, channel) = (group?, channel?);
    // Drained once both conversations' last messages were pushed.
    let last = [
        format!("crowd-{}", group.len().saturating_sub(1)),
        format!("news-{}", channel.len().saturating_sub(1)),
    ];
    let deadline = Instant::now() + Duration::from_secs_f64(args.drain_s);
    let drained = loop {
        let seen = got.lock().map(|g| {
            last.iter()
                .all(|m| g.iter().any(|(_, v)| v["message"] == m.as_str()))
        });
        if seen.unwrap_or(false) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let cpu = cpu_s(pid)? - cpu_before;
    let elapsed = started.elapsed().as_secs_f64();
    let got = got.lock().map(|g| g.clone()).unwrap_or_default();
    let mut delays = Vec::new();
    let mut recipients = 0usize;
    for (at, v) in &got {
        let Some(since) = v["since"].as_str() else {
            continue;
        };
        let since = parse_rfc3339("since", since).map_err(|e| anyhow::anyhow!("{e}"))?;
        delays.push((at - since) as f64);
        recipients += v["recipients"].as_array().map_or(0, Vec::len);
    }
    delays.sort_by(f64::total_cmp);
    let mut posts: Vec<f64> = group.iter().chain(&channel).copied().collect();
    posts.sort_by(f64::total_cmp);
    let notifications =
        (group.len() * (args.group_members - 1) + channel.len() * args.channel_subscribers) as u64;
    let calls = delays.len();
    let mut per_conv: HashMap<String, usize> = HashMap::new();
    for (_, v) in &got {
        *per_conv
            .entry(v["conversation"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    eprintln!("{backend}: {elapsed:.1} s, calls per conversation {per_conv:?}");
    Ok(Run {
        backend: backend.into(),
        seconds: args.seconds,
        group_members: args.group_members,
        channel_subscribers: args.channel_subscribers,
        group_messages: group.len(),
        channel_messages: channel.len(),
        notifications,
        webhook_calls: calls,
        recipients_per_call: recipients as f64 / calls.max(1) as f64,
        delivery_p50_ms: percentile(&delays, 50.0),
        delivery_p99_ms: percentile(&delays, 99.0),
        delivery_max_ms: delays.last().copied().unwrap_or(f64::NAN),
        post_p99_ms: percentile(&posts, 99.0),
        server_cpu_s: cpu,
        cpu_ms_per_1000_notifications: cpu * 1e3 / (notifications as f64 / 1e3).max(1e-9),
        drained,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    println!(
        "| backend | group msgs | channel msgs | notifications | webhook calls | recipients/call | delivery p50 | p99 | max | post p99 | server CPU | CPU ms / 1,000 notifications |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for backend in &args.backends {
        let r = run(&args, backend).await?;
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} ms | {:.2} s | {:.2} |{}",
            r.backend,
            r.group_messages,
            r.channel_messages,
            r.notifications,
            r.webhook_calls,
            r.recipients_per_call,
            r.delivery_p50_ms,
            r.delivery_p99_ms,
            r.delivery_max_ms,
            r.post_p99_ms,
            r.server_cpu_s,
            r.cpu_ms_per_1000_notifications,
            if r.drained { "" } else { " (not drained)" }
        );
        let line = serde_json::to_string(&r)?;
        println!("{line}");
        if let Some(path) = &args.json {
            append_line(path, &line)?;
        }
    }
    Ok(())
}
