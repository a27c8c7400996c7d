//! Forwarded attachments through the real server binary, on SQLite and on Postgres
//! (docs/ATTACHMENTS.md, "Forwarding"): a forward's attachments are copied into the
//! conversation it is sent to, so that conversation's readers read them, and nobody reads
//! more than before. The cluster case (written through one node, read through another) is
//! in `cluster.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "forwarding/scenario.rs"]
mod scenario;

use confab_e2e::{Backend, TestServer};

#[tokio::test]
async fn forwarded_attachments_are_read_in_the_target_on_sqlite() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    scenario::forwarded_attachments(&server, &server, "fws").await;
}

#[tokio::test]
async fn forwarded_attachments_are_read_in_the_target_on_postgres() {
    let server = TestServer::start(Backend::Postgres).await.unwrap();
    scenario::forwarded_attachments(&server, &server, "fwp").await;
}
