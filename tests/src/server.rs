//! The real server binary as a child process: it lives in `confab-testkit` (feature
//! `server`), shared with the bench binaries; re-exported here for the suites.

pub use confab_testkit::server::*;
