//! `cargo xtask bench`: runs the criterion benchmarks.

use anyhow::Result;

pub fn run(args: &[String]) -> Result<()> {
    let _ = args;
    crate::run(
        "cargo",
        &["bench", "-p", "confab-core", "--bench", "validation"],
    )
}
