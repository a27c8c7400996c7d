//! Confab sync server. The server issue fills this crate; it depends on confab-core only so far.
