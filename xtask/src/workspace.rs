//! The workspace the tasks work in: its root, running a command in it, and where cargo
//! puts the binaries it builds.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub(crate) fn workspace_root() -> Result<PathBuf> {
    let out = Command::new("cargo")
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .context("running cargo locate-project")?;
    let manifest = String::from_utf8(out.stdout)?;
    let root = Path::new(manifest.trim())
        .parent()
        .context("workspace manifest has no folder")?
        .to_path_buf();
    if !root.join("wasm/Cargo.toml").exists() {
        bail!("{} is not the Confab workspace", root.display());
    }
    Ok(root)
}

/// Runs a command in `dir` with extra environment, echoing it; fails if it fails.
pub(crate) fn run(dir: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    eprintln!("+ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("could not start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Installs the Debian `packages` (apt-get, as the project's scripts may on a fresh
/// machine) unless every one of `binaries` is there already.
pub(crate) fn ensure_debian(binaries: &[&str], packages: &[&str]) -> Result<()> {
    if binaries.iter().all(|b| Path::new(b).exists()) {
        return Ok(());
    }
    let dir = Path::new("/");
    run(dir, "apt-get", &["update"], &[])?;
    let mut args = vec!["install", "-y"];
    args.extend_from_slice(packages);
    run(
        dir,
        "apt-get",
        &args,
        &[("DEBIAN_FRONTEND", "noninteractive")],
    )
}

/// A binary cargo built in the debug profile: under `CARGO_TARGET_DIR` when it is set (as
/// the cargo that built it used it), else the workspace's `target/`.
pub(crate) fn debug_bin(root: &Path, name: &str) -> PathBuf {
    profile_bin(root, "debug", name)
}

/// A binary of the release profile (under `CARGO_TARGET_DIR` when it is set).
pub(crate) fn release_bin(root: &Path, name: &str) -> PathBuf {
    profile_bin(root, "release", name)
}

fn profile_bin(root: &Path, profile: &str, name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"))
        .join(profile)
        .join(name)
}
