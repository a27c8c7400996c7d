//! `cargo xtask wasm [build] [--wasm-opt]` and `cargo xtask wasm test [--no-browser]
//! [--no-node] [--bench]`: the npm package of `confab-wasm` and its tests.
//!
//! `build` makes `wasm/pkg/`: a size-optimized release build (opt-level z but for the crypto
//! crates, see `Cargo.toml`; LTO, one codegen unit, in its own target dir `wasm-release`
//! under `$CARGO_TARGET_DIR` or `target/`, so
//! native builds are untouched), then wasm-bindgen for bundlers (`pkg/bundler`), the web
//! (`pkg/web`) and Node (`pkg/node`), a `package.json` with `exports`, and the raw and gzip
//! size. wasm-opt runs only with
//! `--wasm-opt` (it installs npm `binaryen` into `target/wasm-tools`): see `find_wasm_opt`.
//!
//! `test` runs the browser tests (wasm-bindgen-test in headless Chromium with real IndexedDB)
//! against a `confab-server --demo` it starts on 127.0.0.1, then the Node test in
//! `tests/node/` against the built package.
//!
//! Everything it needs is installed when missing: the wasm32 target (rustup),
//! wasm-bindgen-cli at the exact version of Cargo.lock (cargo install), Chromium and
//! chromedriver (apt-get), the Node test's packages (npm).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::workspace::{debug_bin, run, workspace_root};

/// Size budget of the gzipped `.wasm` (web apps download it: it must stay light): 1.5 MiB
/// with end-to-end encryption linked in (openmls and its crypto add ~370 KiB),
/// raised only by a commit that says what grew (docs/BENCHMARKS.md, "wasm").
const GZIP_BUDGET: u64 = 1560 * 1024;
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const CRATE_FILE: &str = "confab_wasm";

/// `cargo xtask wasm [build] [--wasm-opt]`.
pub fn build(args: &[String]) -> Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if args.first() == Some(&"test") {
        return test(&args_owned(&args[1..]));
    }
    let root = workspace_root()?;
    let want_opt = args.contains(&"--wasm-opt");
    let report = build_package(&root, want_opt)?;
    eprintln!("{report}");
    Ok(())
}

/// The wasm package's part of `cargo xtask test`: clippy on wasm32 (library and tests), then
/// `test` (the browser suite and the Node suite). Every failure names the step.
pub fn ci() -> Result<()> {
    let started = std::time::Instant::now();
    let root = workspace_root()?;
    ensure_wasm_target()?;
    run(
        &root,
        "cargo",
        &[
            "clippy",
            "-p",
            "confab-wasm",
            "--target",
            WASM_TARGET,
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )
    .context("clippy on the wasm package (wasm32, library and tests) failed")?;
    test(&[])?;
    eprintln!(
        "xtask test: the wasm package's checks took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cargo xtask wasm test [--no-browser] [--no-node] [--bench] [--only <suite>]...`:
/// `--only search` runs only `wasm/tests/search.rs` of the browser suite and, with
/// `--bench`, only `bench_search.rs` (repeat it for more suites).
pub fn test(args: &[String]) -> Result<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let only: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1])
        .collect();
    let root = workspace_root()?;
    let browser = !args.contains(&"--no-browser");
    let node = !args.contains(&"--no-node");
    ensure_wasm_target()?;
    ensure_wasm_bindgen(&root)?;
    if browser {
        ensure_chromium().context(
            "the browser suite needs Debian's chromium and chromium-driver (/usr/bin/chromium, \
             /usr/bin/chromedriver); installing them with apt-get failed",
        )?;
    }
    if node {
        for tool in ["node", "npm"] {
            if output(tool, &["--version"]).is_none() {
                bail!("the Node suite needs Node.js 20 or later and npm: `{tool}` is not on PATH");
            }
        }
    }
    run(&root, "cargo", &["build", "-p", "confab-server"], &[])?;
    let server_bin = debug_bin(&root, "confab-server");

    if browser {
        let server = TestServer::start(&server_bin)?;
        let alice = server.token("alice")?;
        let bob = server.token("bob")?;
        let carol = server.token("carol")?;
        let ws = format!("ws://{}/ws", server.addr);
        let env = [
            (
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                "wasm-bindgen-test-runner",
            ),
            ("CHROMEDRIVER", "/usr/bin/chromedriver"),
            ("WASM_BINDGEN_TEST_TIMEOUT", "300"),
            ("CONFAB_TEST_WS", ws.as_str()),
            ("CONFAB_TEST_TENANT", "demo"),
            ("CONFAB_TEST_TOKEN_ALICE", alice.as_str()),
            ("CONFAB_TEST_TOKEN_BOB", bob.as_str()),
            ("CONFAB_TEST_TOKEN_CAROL", carol.as_str()),
        ];
        let mut cargo_args = vec!["test", "-p", "confab-wasm", "--target", WASM_TARGET];
        for suite in &only {
            cargo_args.extend(["--test", suite]);
        }
        run(&root.join("wasm"), "cargo", &cargo_args, &env).context(
            "the wasm browser suite failed (wasm/tests/*.rs with wasm-bindgen-test in headless \
             Chromium against confab-server on 127.0.0.1; rerun: cargo xtask wasm test --no-node)",
        )?;
        drop(server);
        if args.contains(&"--bench") {
            bench(&root, &env, &only)?;
        }
    }

    if node {
        let report = build_package(&root, false).context("building the npm package failed")?;
        eprintln!("{report}");
        let node_dir = root.join("tests/node");
        run(
            &node_dir,
            "npm",
            &["install", "--no-audit", "--no-fund", "--loglevel=error"],
            &[],
        )
        .context("npm install in tests/node failed")?;
        let bin = server_bin.to_string_lossy().into_owned();
        run(
            &node_dir,
            "node",
            &["--test", "--test-reporter=spec"],
            &[("CONFAB_SERVER_BIN", bin.as_str())],
        )
        .context(
            "the Node suite failed (tests/node against wasm/pkg and confab-server on 127.0.0.1; \
             rerun: cargo xtask wasm test --no-browser)",
        )?;
    }
    eprintln!("xtask wasm test: all passed");
    Ok(())
}

/// The package's benchmarks (`wasm/tests/bench*.rs`), built as it ships (opt-level z), in
/// headless Chromium; the catch-up ones against the release server, as a user's would be.
/// `only` names suites (`search` is `bench_search`); the search one needs no server.
fn bench(root: &Path, env: &[(&str, &str)], only: &[&str]) -> Result<()> {
    let suites: Vec<&str> = ["bench", "bench_catchup", "bench_e2ee", "bench_search"]
        .into_iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| *s == *o || *s == format!("bench_{o}")))
        .collect();
    // The search benchmark runs on its own store: the release server only for the others.
    let server = if suites.iter().all(|s| *s == "bench_search") {
        None
    } else {
        let release = crate::bench_server::build_release(root)?;
        Some(TestServer::start(&release.server)?)
    };
    let token = |u: &str| server.as_ref().map_or(Ok(String::new()), |s| s.token(u));
    let [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"].map(token);
    let (alice, bob, carol, dave) = (alice?, bob?, carol?, dave?);
    let ws = server
        .as_ref()
        .map_or(String::new(), |s| format!("ws://{}/ws", s.addr));
    // Beside the workspace's builds (CARGO_TARGET_DIR when set).
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from)
        .join("wasm-bench")
        .to_string_lossy()
        .into_owned();
    let mut bench_env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(key, _)| !key.starts_with("CONFAB_TEST_") && *key != "WASM_BINDGEN_TEST_TIMEOUT")
        .copied()
        .collect();
    bench_env.extend([
        ("CONFAB_TEST_WS", ws.as_str()),
        ("CONFAB_TEST_TENANT", "demo"),
        ("CONFAB_TEST_TOKEN_ALICE", alice.as_str()),
        ("CONFAB_TEST_TOKEN_BOB", bob.as_str()),
        ("CONFAB_TEST_TOKEN_CAROL", carol.as_str()),
        ("CONFAB_TEST_TOKEN_DAVE", dave.as_str()),
        ("CONFAB_WASM_BENCH", "1"),
        ("WASM_BINDGEN_TEST_TIMEOUT", "1200"),
        ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z"),
    ]);
    let mut cargo_args = vec![
        "test",
        "-p",
        "confab-wasm",
        "--target",
        WASM_TARGET,
        "--release",
        "--target-dir",
        &target_dir,
    ];
    for suite in &suites {
        cargo_args.extend(["--test", suite]);
    }
    cargo_args.extend(["--", "--nocapture"]);
    run(&root.join("wasm"), "cargo", &cargo_args, &bench_env)
}

fn args_owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

// ---------- the package ----------

/// Builds `wasm/pkg` and returns the size report.
pub(crate) fn build_package(root: &Path, want_opt: bool) -> Result<String> {
    ensure_wasm_target()?;
    ensure_wasm_bindgen(root)?;
    // Under CARGO_TARGET_DIR when it is set, like every other build here.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-release");
    let target_dir_arg = target_dir.to_string_lossy().into_owned();
    run(
        root,
        "cargo",
        &[
            "build",
            "-p",
            "confab-wasm",
            "--lib",
            "--target",
            WASM_TARGET,
            "--release",
            "--target-dir",
            &target_dir_arg,
        ],
        &[
            // Size over speed for the shipped module; the root Cargo.toml stays untouched.
            ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "z"),
            ("CARGO_PROFILE_RELEASE_LTO", "true"),
            ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
            ("CARGO_PROFILE_RELEASE_PANIC", "abort"),
            ("CARGO_PROFILE_RELEASE_DEBUG", "false"),
        ],
    )?;
    let wasm = target_dir.join(format!("{WASM_TARGET}/release/{CRATE_FILE}.wasm"));
    let pkg = root.join("wasm/pkg");
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg).with_context(|| format!("removing {}", pkg.display()))?;
    }
    let wasm_arg = wasm.to_string_lossy().into_owned();
    let wasm_opt = find_wasm_opt(root, want_opt)?;
    for (target, dir, module_type) in [
        ("bundler", "bundler", "module"),
        ("web", "web", "module"),
        ("nodejs", "node", "commonjs"),
    ] {
        let out = pkg.join(dir);
        let out_arg = out.to_string_lossy().into_owned();
        run(
            root,
            "wasm-bindgen",
            &[
                "--target",
                target,
                "--out-dir",
                &out_arg,
                // Names only serve stack traces; they are a third of the module.
                "--remove-name-section",
                "--remove-producers-section",
                &wasm_arg,
            ],
            &[],
        )?;
        if let Some(opt) = &wasm_opt {
            let file = out.join(format!("{CRATE_FILE}_bg.wasm"));
            let file_arg = file.to_string_lossy().into_owned();
            run(
                root,
                opt,
                &[
                    "-Oz",
                    "--enable-bulk-memory",
                    "--enable-sign-ext",
                    "--enable-mutable-globals",
                    "--enable-nontrapping-float-to-int",
                    "--enable-reference-types",
                    "--enable-multivalue",
                    &file_arg,
                    "-o",
                    &file_arg,
                ],
                &[],
            )?;
        }
        // Each folder says how Node should read its `.js` (ESM or CommonJS).
        std::fs::write(
            out.join("package.json"),
            format!("{{ \"type\": \"{module_type}\" }}\n"),
        )?;
    }
    write_package_json(root, &pkg)?;
    std::fs::copy(root.join("wasm/README.md"), pkg.join("README.md"))
        .context("copying wasm/README.md")?;
    size_report(
        &pkg.join(format!("web/{CRATE_FILE}_bg.wasm")),
        wasm_opt.is_some(),
    )
}

/// `wasm/package.json` (the template) with the crate's version, into `pkg/`. Edited as text:
/// the order of `exports` conditions matters, and a JSON map would sort it.
fn write_package_json(root: &Path, pkg: &Path) -> Result<()> {
    let template = std::fs::read_to_string(root.join("wasm/package.json"))
        .context("reading wasm/package.json")?;
    serde_json::from_str::<serde_json::Value>(&template).context("parsing wasm/package.json")?;
    const PLACEHOLDER: &str = "\"version\": \"0.0.0\"";
    if !template.contains(PLACEHOLDER) {
        bail!("wasm/package.json must hold {PLACEHOLDER} (filled with the crate's version)");
    }
    let json = template.replacen(
        PLACEHOLDER,
        &format!("\"version\": \"{}\"", crate_version(root)?),
        1,
    );
    std::fs::write(pkg.join("package.json"), json)?;
    Ok(())
}

/// The workspace version (`[workspace.package] version`).
fn crate_version(root: &Path) -> Result<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package {
            if let Some(value) = line.strip_prefix("version") {
                let value = value
                    .trim_start_matches([' ', '='])
                    .trim()
                    .trim_matches('"');
                return Ok(value.to_owned());
            }
        }
    }
    bail!("no [workspace.package] version in Cargo.toml")
}

fn size_report(wasm: &Path, optimized: bool) -> Result<String> {
    let raw = std::fs::metadata(wasm)
        .with_context(|| format!("reading {}", wasm.display()))?
        .len();
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(wasm)
        .output()
        .context("running gzip")?;
    if !out.status.success() {
        bail!("gzip failed");
    }
    let gzip = out.stdout.len() as u64;
    let kib = |n: u64| n as f64 / 1024.0;
    let verdict = if gzip <= GZIP_BUDGET {
        "within"
    } else {
        "OVER"
    };
    let report = format!(
        "confab-wasm: {} raw {:.0} KiB, gzip -9 {:.0} KiB ({verdict} the {:.0} KiB budget){}",
        wasm.display(),
        kib(raw),
        kib(gzip),
        kib(GZIP_BUDGET),
        if optimized {
            ", after wasm-opt -Oz"
        } else {
            ""
        }
    );
    if gzip > GZIP_BUDGET {
        bail!("{report}");
    }
    Ok(report)
}

/// wasm-opt, only when asked for (`--wasm-opt`): on PATH, in `target/wasm-tools`, or
/// installed there from npm's `binaryen` package. Measured on this crate, `-Oz` makes the
/// module 12% smaller raw but 9% larger gzipped, so the default build does without it.
fn find_wasm_opt(root: &Path, install: bool) -> Result<Option<String>> {
    if !install {
        return Ok(None);
    }
    let tools = root.join("target/wasm-tools");
    let local = tools.join("node_modules/.bin/wasm-opt");
    if local.exists() {
        return Ok(Some(local.to_string_lossy().into_owned()));
    }
    if Command::new("wasm-opt")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(Some("wasm-opt".into()));
    }
    std::fs::create_dir_all(&tools)?;
    let prefix = tools.to_string_lossy().into_owned();
    run(
        root,
        "npm",
        &[
            "install",
            "--prefix",
            &prefix,
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "binaryen",
        ],
        &[],
    )?;
    Ok(local.exists().then(|| local.to_string_lossy().into_owned()))
}

// ---------- tools ----------

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ensure_wasm_target() -> Result<()> {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
        run(
            Path::new("."),
            "rustup",
            &["target", "add", WASM_TARGET],
            &[],
        )?;
    }
    Ok(())
}

/// The wasm-bindgen version pinned in Cargo.lock.
fn locked_wasm_bindgen(root: &Path) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            if let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
            {
                return Ok(version.trim_matches('"').to_owned());
            }
        }
    }
    bail!("wasm-bindgen is not in Cargo.lock")
}

/// wasm-bindgen-cli at exactly the library's version (the two must match).
fn ensure_wasm_bindgen(root: &Path) -> Result<()> {
    install_wasm_bindgen(root).context(
        "wasm-bindgen-cli at the version of Cargo.lock is needed (cargo install \
         wasm-bindgen-cli --version <that version>) and installing it failed",
    )
}

fn install_wasm_bindgen(root: &Path) -> Result<()> {
    let version = locked_wasm_bindgen(root)?;
    let installed = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    if installed.split_whitespace().nth(1) == Some(version.as_str())
        && output("wasm-bindgen-test-runner", &["--version"]).is_some()
    {
        return Ok(());
    }
    // No --locked: the registry mirror lags some of the CLI's pinned dependencies.
    run(
        root,
        "cargo",
        &["install", "wasm-bindgen-cli", "--version", &version],
        &[],
    )
}

/// Debian's Chromium and chromedriver for headless tests (never a downloaded browser).
pub(crate) fn ensure_chromium() -> Result<()> {
    crate::workspace::ensure_debian(
        &["/usr/bin/chromium", "/usr/bin/chromedriver"],
        &["chromium", "chromium-driver"],
    )
}

// ---------- a server for the tests ----------

/// `confab-server --demo` on a free 127.0.0.1 port with a fresh data dir; killed on drop.
struct TestServer {
    child: Child,
    addr: String,
    data_dir: PathBuf,
}

impl TestServer {
    fn start(bin: &Path) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let data_dir =
            std::env::temp_dir().join(format!("confab-wasm-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&data_dir)?;
        // The test page is served from another origin than the server: its REST calls
        // (uploads, the feed) need CORS, as a web app's on its own origin would.
        eprintln!(
            "+ {} serve --listen {addr} --demo --cors-origins '*'",
            bin.display()
        );
        let child = Command::new(bin)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["serve", "--listen", &addr, "--demo", "--cors-origins", "*"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let server = TestServer {
            child,
            addr,
            data_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if matches!(http_get(&server.addr, "/healthz"), Ok((200, _))) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("confab-server did not become healthy on {}", server.addr);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A demo token for `user`.
    fn token(&self, user: &str) -> Result<String> {
        let (status, body) = http_get(&self.addr, &format!("/demo/token?user={user}"))?;
        if status != 200 {
            bail!("/demo/token answered {status}: {body}");
        }
        let json: serde_json::Value = serde_json::from_str(&body)?;
        json["token"]
            .as_str()
            .map(str::to_owned)
            .context("no token in /demo/token's answer")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A plain HTTP/1.1 GET on 127.0.0.1: (status, body).
fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
