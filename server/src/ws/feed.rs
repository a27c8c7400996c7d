//! A connection's side of the membership feed (docs/PROTOCOL.md, "Memberships"): it is
//! registered for pushes first, then its list is read and sent in pages; a list that fails
//! is refused as a whole (the client asks again).

use std::sync::Arc;

use confab_core::protocol::{ErrorCode, Membership, ServerFrame, Session, MEMBERSHIPS_PAGE};
use tokio::sync::mpsc;

use super::Local;
use crate::engine::{Control, FeedConn};
use crate::net::outlet::Outlet;
use crate::state::AppState;

/// Registers the connection for pushes, then reads the list (answered as a `Local`).
pub(super) fn start(
    app: &AppState,
    session: &Session,
    conn_id: u64,
    (outlet, control): (&Arc<Outlet>, &mpsc::Sender<Control>),
    local: &mpsc::Sender<Local>,
) {
    let Some(identity) = session.identity().cloned() else {
        return;
    };
    app.engine.follow_memberships(
        identity.tenant.clone(),
        identity.account.clone(),
        FeedConn {
            id: conn_id,
            outlet: outlet.clone(),
            control: control.clone(),
        },
    );
    list(app, session, local);
}

/// Reads the account's memberships again (a resync).
pub(super) fn list(app: &AppState, session: &Session, local: &mpsc::Sender<Local>) {
    let Some(identity) = session.identity().cloned() else {
        return;
    };
    let engine = app.engine.clone();
    let local = local.clone();
    tokio::spawn(async move {
        let listed = engine
            .memberships(&identity.tenant, &identity.account)
            .await;
        let _ = local.send(Local::Memberships(listed)).await;
    });
}

/// A resync list failed: ask for it again once the storage had time to come back.
pub(super) fn resync_later(app: &AppState, code: ErrorCode, control: &mpsc::Sender<Control>) {
    let wait = app.engine.retry_after_ms(code).unwrap_or(1_000);
    let control = control.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        let _ = control.send(Control::FeedResync).await;
    });
}

/// Stops the pushes (the connection ends, or its list failed).
pub(super) fn stop(app: &AppState, session: &Session, conn_id: u64) {
    if let Some(identity) = session.identity() {
        app.engine
            .unfollow_memberships(&identity.tenant, &identity.account, conn_id);
    }
}

/// The list in pages (one empty page for an account without memberships).
pub(super) fn pages(list: Vec<Membership>) -> Vec<ServerFrame> {
    let chunks: Vec<Vec<Membership>> = list
        .chunks(MEMBERSHIPS_PAGE)
        .map(<[Membership]>::to_vec)
        .collect();
    let count = chunks.len().max(1);
    let mut chunks = chunks.into_iter();
    (0..count)
        .map(|i| ServerFrame::Memberships {
            memberships: chunks.next().unwrap_or_default(),
            more: i + 1 < count,
        })
        .collect()
}

/// The answer to a list that could not be read: retryable, without a document.
pub(super) fn failed(app: &AppState, code: ErrorCode, message: String) -> ServerFrame {
    ServerFrame::Error {
        code: code.as_str().to_owned(),
        message: format!("memberships not listed: {message}; ask again"),
        doc: None,
        fatal: false,
        hash: None,
        retry_after_ms: app.engine.retry_after_ms(code),
        id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_core::ids::ConvId;
    use confab_core::model::conversation::{MemberStatus, Role};

    fn entry(i: usize) -> Membership {
        Membership {
            conv: ConvId::new(format!("g{i}")).expect("id"),
            role: Role::Member,
            status: MemberStatus::Active,
            seq: i as u64,
        }
    }

    #[test]
    fn lists_come_in_pages_with_more_on_all_but_the_last() {
        let empty = pages(Vec::new());
        assert!(
            matches!(&empty[..], [ServerFrame::Memberships { memberships, more: false }] if memberships.is_empty())
        );
        let list: Vec<Membership> = (0..MEMBERSHIPS_PAGE * 2 + 1).map(entry).collect();
        let frames = pages(list.clone());
        assert_eq!(frames.len(), 3);
        let mut back = Vec::new();
        for (i, frame) in frames.into_iter().enumerate() {
            let ServerFrame::Memberships { memberships, more } = frame else {
                panic!("a memberships page");
            };
            assert_eq!(more, i < 2);
            back.extend(memberships);
        }
        assert_eq!(back, list);
    }
}
