//! What several benchmark binaries of `confab-bench` share.

pub mod sealed;
pub mod stored;
