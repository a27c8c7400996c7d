//! End-to-end test support. The server issue fills this crate.
