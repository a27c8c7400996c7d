//! Members' read times: asked of the server (`read_times`), never kept. The time a read
//! marker moved is the server's stored one (docs/DECISIONS.md, "Read times by the
//! database's clock"), which no replica holds, so a client asks for it when it shows it
//! and gets what REST answers as `last_read_at`.

use std::collections::BTreeMap;

use super::ask::RequestId;

/// Requests waiting for the server's `read_times`, by `conv` document.
#[derive(Debug, Default)]
pub(super) struct ReadAsks {
    pub(super) waiting: BTreeMap<String, Vec<RequestId>>,
}
