//! Signals (typing, presence; docs/PROTOCOL.md, "Signals") across the nodes of a cluster.
//! A signal is relayed at once to the conversation's subscribers on the node that took it,
//! and published on channel `confab_signals` for the others: each node's cluster listener
//! (`cluster.rs`) hands a signal of another node to the conversation's unit, if that unit is
//! in memory (a node with no unit has no subscriber to tell), which relays it to its own
//! subscribers and keeps presence as for a local one. Nothing is stored.
//!
//! Publishing goes through one task per node that sends what queued meanwhile in one
//! statement (`Cluster::notify`), so a signal costs no round trip on the unit; a full queue
//! or a database that is down drops signals (counted): they are ephemeral, and presence is
//! refreshed by its senders.

use std::sync::Arc;

use confab_core::ids::{AccountId, DocId};
use confab_core::protocol::SignalKind;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::store::Cluster;

/// The channel signals are published on.
pub(crate) const CHANNEL: &str = "confab_signals";
/// Signals waiting to be published; beyond this they are dropped (counted).
const QUEUE: usize = 4_096;
/// Signals published in one statement.
const BATCH: usize = 256;

/// A signal as published: its node, so that node does not relay it twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Wire {
    #[serde(rename = "n")]
    node: String,
    #[serde(rename = "d")]
    doc: String,
    #[serde(rename = "f")]
    from: AccountId,
    /// A service account's (its presence is not kept).
    #[serde(rename = "s", default)]
    service: bool,
    #[serde(rename = "k")]
    kind: SignalKind,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    data: Option<String>,
}

/// A signal another node (or this one) published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Published {
    pub node: String,
    pub doc: DocId,
    pub from: AccountId,
    pub service: bool,
    pub kind: SignalKind,
    pub data: Option<String>,
}

/// The units' side: queues signals for the other nodes, never waiting.
#[derive(Debug)]
pub(crate) struct Publisher {
    tx: mpsc::Sender<String>,
    node: String,
    metrics: Arc<Metrics>,
}

impl Publisher {
    /// Starts the task that publishes for `node`.
    pub fn spawn(store: Arc<dyn Cluster>, node: &str, metrics: Arc<Metrics>) -> Publisher {
        let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
        let task_metrics = metrics.clone();
        tokio::spawn(async move {
            let mut payloads = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut payloads, BATCH).await > 0 {
                let n = payloads.len() as u64;
                match store.notify(CHANNEL, &payloads).await {
                    Ok(()) => {
                        task_metrics.cluster.signals_published.inc_by(n);
                    }
                    Err(e) => {
                        task_metrics.cluster.signals_dropped.inc_by(n);
                        tracing::debug!(error = %e, signals = n, "signals not published");
                    }
                }
                payloads.clear();
            }
        });
        Publisher {
            tx,
            node: node.to_owned(),
            metrics,
        }
    }

    pub fn publish(
        &self,
        doc: &DocId,
        (from, service): (&AccountId, bool),
        kind: SignalKind,
        data: Option<&str>,
    ) {
        let wire = Wire {
            node: self.node.clone(),
            doc: doc.to_string(),
            from: from.clone(),
            service,
            kind,
            data: data.map(str::to_owned),
        };
        let Ok(payload) = serde_json::to_string(&wire) else {
            return;
        };
        if self.tx.try_send(payload).is_err() {
            self.metrics.cluster.signals_dropped.inc();
        }
    }
}

/// A published signal; `None` for anything else.
pub(crate) fn parse(payload: &str) -> Option<Published> {
    let wire: Wire = serde_json::from_str(payload).ok()?;
    Some(Published {
        node: wire.node,
        doc: DocId::parse(&wire.doc).ok()?,
        from: wire.from,
        service: wire.service,
        kind: wire.kind,
        data: wire.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_signals_parse_back_or_are_refused() {
        let wire = Wire {
            node: "n1".into(),
            doc: "t1/conv/g1".into(),
            from: AccountId::new("alice").expect("account"),
            service: false,
            kind: SignalKind::Typing,
            data: Some("a \"quoted\" text".into()),
        };
        let payload = serde_json::to_string(&wire).expect("json");
        let published = parse(&payload).expect("parses");
        assert_eq!(published.doc.to_string(), "t1/conv/g1");
        assert_eq!(
            (
                published.node.as_str(),
                published.from.as_str(),
                published.kind
            ),
            ("n1", "alice", SignalKind::Typing)
        );
        assert_eq!(published.data.as_deref(), Some("a \"quoted\" text"));
        for bad in [
            "",
            "t1/conv/g1 1 2 3",
            r#"{"n":"n1","d":"not a doc","f":"alice","k":"typing"}"#,
            r#"{"n":"n1","d":"t1/conv/g1","f":"alice","k":"shouting"}"#,
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
