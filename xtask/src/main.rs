//! `cargo xtask <task>`: the project's scripted jobs.
fn main() -> anyhow::Result<()> {
    Ok(())
}
