//! The commit convention (CONTRIBUTING.md): a subject of at most 72 characters. `cargo xtask
//! test` checks the commits made since the convention started; `cargo xtask hooks` installs a
//! commit-msg hook that refuses a longer subject before the commit exists.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The longest subject, in characters.
pub const MAX_SUBJECT: usize = 72;

/// The last commit before the convention: the commits after it are checked.
const BASE: &str = "5fcd1bf";

/// Whether `subject` (a commit's first paragraph, as `git log --format=%s` joins it) keeps
/// the convention.
pub fn subject_ok(subject: &str) -> bool {
    subject.trim_end().chars().count() <= MAX_SUBJECT
}

/// The lines `<hash>\t<subject>` of `log` whose subject breaks the convention.
fn offenders(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| !l.is_empty())
        .filter(|l| !subject_ok(l.split_once('\t').map_or(*l, |(_, s)| s)))
        .collect()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf()
}

fn git(args: &[&str]) -> Result<std::process::Output> {
    Command::new("git")
        .current_dir(root())
        .args(args)
        .output()
        .with_context(|| format!("could not run git {}", args.join(" ")))
}

/// Fails, naming them, when a commit made since the convention started has a longer subject.
/// A clone without the base commit (a shallow one) checks HEAD alone; outside a git checkout
/// there is nothing to check.
pub fn check() -> Result<()> {
    if !git(&["rev-parse", "--git-dir"]).is_ok_and(|o| o.status.success()) {
        eprintln!("commit subjects: not a git checkout, nothing to check");
        return Ok(());
    }
    let base = format!("{BASE}^{{commit}}");
    let has_base = git(&["rev-parse", "--verify", "--quiet", &base])?
        .status
        .success();
    let range = format!("{BASE}..HEAD");
    let args: Vec<&str> = if has_base {
        vec!["log", "--format=%h%x09%s", &range]
    } else {
        vec!["log", "-1", "--format=%h%x09%s", "HEAD"]
    };
    let out = git(&args)?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let log = String::from_utf8_lossy(&out.stdout);
    let bad = offenders(&log);
    if !bad.is_empty() {
        for line in &bad {
            eprintln!("  {line}");
        }
        bail!(
            "{} commit subject(s) over {MAX_SUBJECT} characters (CONTRIBUTING.md: `area: what \
             changed`, the detail in the body)",
            bad.len()
        );
    }
    eprintln!(
        "commit subjects: {} checked ({}), all within {MAX_SUBJECT} characters",
        log.lines().count(),
        if has_base {
            range.as_str()
        } else {
            "HEAD only: the base is not in this clone"
        }
    );
    Ok(())
}

/// The commit-msg hook: the subject is the first paragraph of the message, comment lines
/// removed, its lines joined by spaces (as git shows it); its length is counted in
/// characters by dropping UTF-8 continuation bytes, which needs no UTF-8 locale.
const HOOK: &str = r#"#!/bin/sh
# Installed by `cargo xtask hooks`: a commit subject is at most 72 characters (CONTRIBUTING.md).
subject=$(sed -e '/^#/d' "$1" | awk '
  { sub(/[ \t\r]+$/, "") }
  $0 == "" { if (started) exit; next }
  { started = 1; printf "%s%s", sep, $0; sep = " " }')
length=$(printf '%s' "$subject" | LC_ALL=C tr -d '\200-\277' | wc -c | tr -d ' ')
if [ "$length" -gt 72 ]; then
  echo "commit-msg: the subject is $length characters, at most 72 (CONTRIBUTING.md):" >&2
  echo "  $subject" >&2
  echo "Shorten it to \`area: what changed\` and put the detail in the body." >&2
  exit 1
fi
"#;

/// `cargo xtask hooks`: writes the commit-msg hook into this checkout's hooks directory (a
/// worktree's too: `git rev-parse --git-path hooks`). `cargo xtask test` never installs it.
pub fn install_hook() -> Result<()> {
    let out = git(&["rev-parse", "--git-path", "hooks"])?;
    if !out.status.success() {
        bail!(
            "not a git checkout: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = root().join(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("commit-msg");
    std::fs::write(&path, HOOK).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
    }
    eprintln!(
        "installed {}: commits with a subject over {MAX_SUBJECT} characters are refused",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_up_to_72_characters_pass() {
        assert!(subject_ok(
            "docs: split ARCHITECTURE into a map and DECISIONS"
        ));
        assert!(subject_ok(&"a".repeat(72)));
        assert!(!subject_ok(&"a".repeat(73)));
        // Characters, not bytes: 72 arrows are 216 bytes.
        assert!(subject_ok(&"→".repeat(72)));
        assert!(!subject_ok(&"→".repeat(73)));
    }

    #[test]
    fn offenders_are_named_with_their_hash() {
        let long = "x".repeat(73);
        let log = format!("abc1234\tcore: short\ndef5678\t{long}\n");
        assert_eq!(offenders(&log), vec![format!("def5678\t{long}").as_str()]);
    }

    /// The hook agrees with `subject_ok`, on the message as git hands it over.
    #[cfg(unix)]
    #[test]
    fn the_hook_refuses_a_long_subject() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hook = dir.join("commit-msg");
        std::fs::write(&hook, HOOK).unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let verdict = |message: &str| {
            let msg = dir.join("MSG");
            std::fs::write(&msg, message).unwrap();
            Command::new(&hook)
                .arg(&msg)
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(verdict("core: short\n\nA body line that is much longer than seventy-two characters, which is fine.\n# comment\n"));
        assert!(verdict(&format!("\n{}\n", "→".repeat(72))));
        assert!(!verdict(&format!("{}\n", "→".repeat(73))));
        assert!(!verdict(&format!("{}\n\nbody\n", "a".repeat(73))));
        // A first paragraph over two lines is one subject, as git shows it.
        assert!(!verdict(&format!(
            "{}\n{}\n",
            "a".repeat(40),
            "b".repeat(40)
        )));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
