//! `cargo xtask demo [--listen ADDR]`: the web demo (`web-demo/`) on a local server, and
//! `cargo xtask demo e2e`: its end-to-end tests in Chromium (a step of `cargo xtask test`).
//!
//! Both build the wasm package (`wasm::build_package`: installs the wasm32 target and
//! wasm-bindgen-cli when missing), assemble the page into `web-demo/dist` (the page's files
//! plus the package's `web` build in `dist/pkg`), and build `confab-server`: the demo the
//! release build (what a user of the page should judge; its first build says how long it
//! takes), the tests the debug build the rest of `cargo xtask test` shares. The demo then
//! runs `confab-server serve --demo` on the embedded SQLite store in `target/demo/data` with
//! the page at `/`; the tests start their own servers (see `web-demo/e2e/harness.mjs`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{wasm, workspace};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const EMOJI_FONT: &str = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf";
/// The whole browser suite must finish within this (it takes about a minute).
const E2E_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// `cargo xtask demo [--listen ADDR] | e2e`.
pub fn run(args: &[String]) -> Result<()> {
    let root = workspace::workspace_root()?;
    if args.first().map(String::as_str) == Some("e2e") {
        return e2e(&root);
    }
    let listen = match args {
        [] => DEFAULT_LISTEN.to_owned(),
        [flag, addr] if flag == "--listen" => addr.clone(),
        _ => bail!("usage: cargo xtask demo [--listen 127.0.0.1:8080] | cargo xtask demo e2e"),
    };
    if !workspace::release_bin(&root, "confab-server").exists() {
        eprintln!("The first run {FIRST_RUN}; later runs start in seconds.");
    }
    let web = prepare_page(&root)?;
    let server = build_release_server(&root)?;
    let data = root.join("target/demo/data");
    std::fs::create_dir_all(&data)?;
    eprintln!(
        "+ {} --data-dir {} serve --demo --listen {listen} --web-root {}",
        server.display(),
        data.display(),
        web.display()
    );
    let mut child = Command::new(&server)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--demo", "--listen", &listen, "--web-root"])
        .arg(&web)
        .spawn()
        .with_context(|| format!("starting {}", server.display()))?;
    wait_listening(&mut child, &listen)?;
    println!();
    println!("  Confab demo: http://{listen}/");
    println!("  Sign in as alice, bob, carol or dave; use another browser window (or a private");
    println!(
        "  one) for a second user. Data: {}. Ctrl-C stops.",
        data.display()
    );
    println!();
    let status = child.wait()?;
    if !status.success() {
        bail!("confab-server stopped ({status})");
    }
    Ok(())
}

/// The browser tests of `web-demo/e2e` against the built page (a step of `cargo xtask test`).
pub fn e2e(root: &Path) -> Result<()> {
    ensure_chromium()?;
    let (server, web) = prepare(root)?;
    let dir = root.join("web-demo/e2e");
    let npm = ["install", "--no-audit", "--no-fund", "--loglevel=error"];
    workspace::run(&dir, "npm", &npm, &[])?;
    let artifacts = root.join("artifacts/e2e");
    std::fs::create_dir_all(&artifacts)?;
    eprintln!(
        "+ node --test (web-demo/e2e; screenshots in {})",
        artifacts.display()
    );
    let started = Instant::now();
    let mut child = Command::new("node")
        .args(["--test", "--test-reporter=spec", "--test-concurrency=1"])
        .current_dir(&dir)
        .env("CONFAB_SERVER_BIN", &server)
        .env("CONFAB_WEB_ROOT", &web)
        .env("CONFAB_ARTIFACTS", &artifacts)
        .spawn()
        .context("could not start node (install Node.js 20 or later)")?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > E2E_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the web demo's e2e tests took longer than {E2E_DEADLINE:?}; stopped them");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        bail!(
            "the web demo's e2e tests failed ({status}); screenshots in {}",
            artifacts.display()
        );
    }
    eprintln!(
        "web demo e2e: passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds the wasm package, the page and the debug server: (server binary, page folder).
pub(crate) fn prepare(root: &Path) -> Result<(PathBuf, PathBuf)> {
    let web = prepare_page(root)?;
    workspace::run(root, "cargo", &["build", "-p", "confab-server"], &[])?;
    Ok((workspace::debug_bin(root, "confab-server"), web))
}

/// Builds the wasm package and assembles the page: the page folder.
pub(crate) fn prepare_page(root: &Path) -> Result<PathBuf> {
    let report = wasm::build_package(root, false)?;
    eprintln!("{report}");
    assemble(root)
}

/// What the first run builds and how long it took on a 2-core machine of this project's kind
/// (2026-11-25: `cargo build --release -p confab-server` from nothing 7 min 05 s; the wasm
/// package 1.5 min; installing wasm-bindgen-cli 4–5 min).
const FIRST_RUN: &str = "builds the release server (about 7 minutes on 2 cores) and the \
     wasm package (about 2 minutes, plus 5 to install wasm-bindgen-cli on a fresh machine)";

/// The release `confab-server` (built if needed): the demo runs what production runs.
fn build_release_server(root: &Path) -> Result<PathBuf> {
    let bin = workspace::release_bin(root, "confab-server");
    let started = Instant::now();
    let build = [
        "build",
        "--release",
        "-p",
        "confab-server",
        "--bin",
        "confab-server",
    ];
    workspace::run(root, "cargo", &build, &[])?;
    if started.elapsed() > Duration::from_secs(20) {
        eprintln!(
            "release server built in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(bin)
}

/// `web-demo/dist`: the page's files and the package's `web` build under `pkg/` (the page
/// imports `./pkg/confab_wasm.js`; no bundler), and `shell.json`, the list of those files.
pub fn assemble(root: &Path) -> Result<PathBuf> {
    let src = root.join("web-demo");
    let dist = src.join("dist");
    if dist.exists() {
        std::fs::remove_dir_all(&dist).with_context(|| format!("removing {}", dist.display()))?;
    }
    // The page is also fetched as "./" (the server answers "/" with index.html).
    let mut shell = vec!["./".to_string()];
    copy(&src.join("sw.js"), &dist, "sw.js")?;
    for file in ["index.html", "style.css"] {
        shell.push(copy(&src.join(file), &dist, file)?);
    }
    copy_dir(&src.join("app"), &dist, "app", &mut shell)?;
    let pkg = root.join("wasm/pkg/web");
    for file in ["confab_wasm.js", "confab_wasm_bg.wasm"] {
        shell.push(copy(&pkg.join(file), &dist, &format!("pkg/{file}"))?);
    }
    // What the service worker stores when it installs: listed here, not taken from what the
    // page happened to load, so the wasm module is kept even when its download was still
    // running as the worker started.
    let json = serde_json::to_string_pretty(&shell)?;
    std::fs::write(dist.join("shell.json"), json).context("writing web-demo/dist/shell.json")?;
    Ok(dist)
}

/// Copies `from` to `dist/<path>` (`path` uses '/', as URLs do); returns `path`.
fn copy(from: &Path, dist: &Path, path: &str) -> Result<String> {
    let to = dist.join(path);
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, &to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(path.to_string())
}

fn copy_dir(from: &Path, dist: &Path, path: &str, copied: &mut Vec<String>) -> Result<()> {
    let mut entries = std::fs::read_dir(from)
        .with_context(|| format!("reading {}", from.display()))?
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let target = format!("{path}/{}", entry.file_name().to_string_lossy());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), dist, &target, copied)?;
        } else {
            copied.push(copy(&entry.path(), dist, &target)?);
        }
    }
    Ok(())
}

/// Debian's Chromium (the tests drive it with playwright-core, which downloads nothing).
pub(crate) fn ensure_chromium() -> Result<()> {
    wasm::ensure_chromium().context(
        "Chromium is needed at /usr/bin/chromium for the web demo's tests: \
         run `apt-get update && apt-get install -y chromium` (as root)",
    )?;
    if !Path::new("/usr/bin/chromium").exists() {
        bail!("no /usr/bin/chromium after installing: run `apt-get install -y chromium`");
    }
    // Only for readable screenshots (the page's icons are emoji): best effort, never a failure.
    if !Path::new(EMOJI_FONT).exists() {
        let install = ["install", "-y", "fonts-noto-color-emoji"];
        let env = [("DEBIAN_FRONTEND", "noninteractive")];
        if workspace::run(Path::new("/"), "apt-get", &install, &env).is_err() {
            eprintln!(
                "note: no emoji font (fonts-noto-color-emoji): screenshots show boxes for icons"
            );
        }
    }
    Ok(())
}

/// Waits until the server accepts connections on `addr` (or fails if it exits first).
fn wait_listening(child: &mut Child, addr: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("confab-server exited ({status}); is {addr} already in use? try --listen 127.0.0.1:8081");
        }
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("confab-server did not listen on {addr} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
