//! A device's page and the server's merged (docs/SEARCH.md, "On the device"): the device's
//! hits first, then the server's the device's index does not match, with one cursor for
//! both. The hosts run the two searches (the engine's and `GET /v1/search`) as `plan`
//! says; this is the part they share.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;

use super::{find, Partial, SearchError, SearchHit, SearchOptions, SearchPage, SearchSource};
use crate::ids::{AccountId, ConvId, DocId, DocTarget, MessageId};
use crate::model::message::MessageKind;
use crate::model::time::parse_rfc3339;
use crate::search::Query;

/// `GET /v1/search`'s answer, as far as a client reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerPage {
    pub results: Vec<ServerHit>,
    pub next_cursor: Option<String>,
}

/// One server result.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerHit {
    pub conversation: String,
    pub message: ServerMessage,
}

/// The message of a server result (the fields a hit shows).
#[derive(Debug, Clone, Deserialize)]
pub struct ServerMessage {
    pub id: String,
    pub doc: String,
    pub author: String,
    pub kind: String,
    pub body: String,
    pub caption: Option<String>,
    pub created_at: String,
}

impl ServerHit {
    fn into_hit(self, query: &Query) -> Option<SearchHit> {
        let m = self.message;
        let bucket = match DocId::parse(&m.doc).ok()?.target() {
            DocTarget::Msgs(_, b) => Some(*b),
            _ => None,
        };
        Some(SearchHit {
            source: SearchSource::Server,
            conv: ConvId::new(self.conversation).ok()?,
            message: MessageId::new(m.id).ok()?,
            bucket,
            author: AccountId::new(m.author).ok()?,
            kind: MessageKind::parse(&m.kind).ok()?,
            created_at: parse_rfc3339("created_at", &m.created_at).ok()?,
            snippets: find::snippets(&m.body, m.caption.as_deref(), query),
            body: m.body,
            caption: m.caption,
        })
    }
}

/// Where one side's pages are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Side {
    #[default]
    Start,
    At(String),
    Done,
}

impl Side {
    fn encode(&self) -> &str {
        match self {
            Side::Start => "",
            Side::At(c) => c,
            Side::Done => "~",
        }
    }
    fn decode(text: &str) -> Side {
        match text {
            "" => Side::Start,
            "~" => Side::Done,
            c => Side::At(c.to_owned()),
        }
    }
    fn after(next: Option<String>) -> Side {
        next.map_or(Side::Done, Side::At)
    }
}

/// A merged search's position: the device's pages and the server's, each on its own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergedCursor {
    pub local: Side,
    pub server: Side,
}

impl MergedCursor {
    pub fn encode(&self) -> String {
        // The server's cursor last: it is the only part not this module's own.
        format!("m1|{}|{}", self.local.encode(), self.server.encode())
    }

    pub fn decode(text: Option<&str>) -> Result<Self, SearchError> {
        let Some(text) = text else {
            return Ok(MergedCursor::default());
        };
        let mut parts = text.splitn(3, '|');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("m1"), Some(local), Some(server)) => Ok(MergedCursor {
                local: Side::decode(local),
                server: Side::decode(server),
            }),
            _ => Err(SearchError::Cursor),
        }
    }

    /// The engine search for this page: `options` at the device's position, and whether its
    /// hits are shown (after the device's last page it runs for its `matched` alone, which
    /// tells the server's duplicates).
    pub fn local_options(&self, options: &SearchOptions) -> (SearchOptions, bool) {
        let mut local = options.clone();
        local.cursor = match &self.local {
            Side::At(c) => Some(c.clone()),
            Side::Start | Side::Done => None,
        };
        (local, self.local != Side::Done)
    }

    /// The server's cursor for this page; `None` when its pages are over.
    pub fn server_cursor(&self) -> Option<Option<&str>> {
        match &self.server {
            Side::Start => Some(None),
            Side::At(c) => Some(Some(c)),
            Side::Done => None,
        }
    }
}

/// What became of the server's side of a page.
#[derive(Debug, Clone)]
pub enum ServerSide {
    /// Asked, and this is its page.
    Answered(ServerPage),
    /// Nothing to add: its pages are over, or it may not be asked for this scope (an
    /// encrypted conversation).
    Over,
    /// Not asked, or no answer: the page is the device's alone.
    Missing(Partial),
}

/// The merged page: the device's hits (`show_local`), then the server's (when it
/// `Answered`) that the device did not match, once each; a device hit the server's page
/// also holds says `Both`. `partial` (with its reason) when the server's side is
/// `Missing`.
pub fn merge(
    mut local: SearchPage,
    show_local: bool,
    server: ServerSide,
    at: &MergedCursor,
) -> SearchPage {
    let query = Query {
        terms: local.terms.clone(),
    };
    if !show_local {
        local.hits.clear();
    }
    let local_side = if show_local {
        Side::after(local.next_cursor.take())
    } else {
        Side::Done
    };
    let shown: HashMap<(ConvId, MessageId), usize> = local
        .hits
        .iter()
        .enumerate()
        .map(|(i, h)| ((h.conv.clone(), h.message.clone()), i))
        .collect();
    let mut seen: BTreeSet<(ConvId, MessageId)> = local.matched.clone();
    seen.extend(shown.keys().cloned());
    let (server_side, partial) = match server {
        ServerSide::Answered(page) => {
            for hit in page.results.into_iter().filter_map(|h| h.into_hit(&query)) {
                let key = (hit.conv.clone(), hit.message.clone());
                if let Some(&i) = shown.get(&key) {
                    local.hits[i].source = SearchSource::Both;
                } else if seen.insert(key) {
                    local.hits.push(hit);
                }
            }
            (Side::after(page.next_cursor), None)
        }
        ServerSide::Over => (Side::Done, None),
        ServerSide::Missing(why) => (at.server.clone(), Some(why)),
    };
    // The device's side stopped at its bound: partial too (its cursor goes on).
    let partial = partial.or(local.partial_reason.take().filter(|_| show_local));
    let next = MergedCursor {
        local: local_side,
        server: server_side,
    };
    local.partial = partial.is_some();
    local.next_cursor = (next.local != Side::Done
        || (partial.is_none() && next.server != Side::Done))
        .then(|| next.encode());
    local.partial_reason = partial;
    local
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn server_hit(conv: &str, id: &str) -> ServerHit {
        ServerHit {
            conversation: conv.into(),
            message: ServerMessage {
                id: id.into(),
                doc: format!("acme/msgs/{conv}.20000"),
                author: "bob".into(),
                kind: "text".into(),
                body: "the cafe".into(),
                caption: None,
                created_at: "2026-01-01T00:00:00Z".into(),
            },
        }
    }

    #[test]
    fn server_hits_the_device_matched_are_dropped_and_cursors_chain() {
        let c1 = ConvId::new("c1").unwrap();
        let local = SearchPage {
            terms: vec!["cafe".into()],
            hits: Vec::new(),
            next_cursor: None,
            partial: true,
            partial_reason: None,
            matched: [(c1.clone(), MessageId::new("m1").unwrap())].into(),
        };
        let server = ServerPage {
            results: vec![
                server_hit("c1", "m1"),
                server_hit("c1", "m2"),
                server_hit("c1", "m2"),
            ],
            next_cursor: Some("s1.a.b.c".into()),
        };
        let at = MergedCursor::default();
        let page = merge(local.clone(), true, ServerSide::Answered(server), &at);
        let ids: Vec<&str> = page.hits.iter().map(|h| h.message.as_str()).collect();
        assert_eq!(ids, ["m2"]);
        assert!(!page.partial);
        assert_eq!(page.hits[0].source, SearchSource::Server);
        assert_eq!(page.hits[0].snippets.len(), 1);
        let next = MergedCursor::decode(page.next_cursor.as_deref()).unwrap();
        assert_eq!(next.local, Side::Done);
        assert_eq!(next.server_cursor(), Some(Some("s1.a.b.c")));
        // Offline: partial, and the server's position kept for later.
        let offline = merge(local, true, ServerSide::Missing(Partial::Offline), &next);
        assert!(offline.partial && offline.next_cursor.is_none());
        assert_eq!(offline.partial_reason, Some(Partial::Offline));
    }

    #[test]
    fn a_device_hit_the_server_page_also_holds_is_both() {
        let query = Query::parse("cafe").unwrap();
        let mut shown = server_hit("c1", "m1").into_hit(&query).unwrap();
        shown.source = SearchSource::Device;
        let local = SearchPage {
            terms: query.terms.clone(),
            matched: [(shown.conv.clone(), shown.message.clone())].into(),
            hits: vec![shown],
            next_cursor: None,
            partial: true,
            partial_reason: None,
        };
        let server = ServerPage {
            results: vec![server_hit("c1", "m1"), server_hit("c1", "m2")],
            next_cursor: None,
        };
        let page = merge(
            local,
            true,
            ServerSide::Answered(server),
            &MergedCursor::default(),
        );
        let found: Vec<(&str, SearchSource)> = page
            .hits
            .iter()
            .map(|h| (h.message.as_str(), h.source))
            .collect();
        assert_eq!(
            found,
            [("m1", SearchSource::Both), ("m2", SearchSource::Server)]
        );
        assert!(!page.partial && page.next_cursor.is_none());
        assert_eq!(MergedCursor::decode(Some("x|y")), Err(SearchError::Cursor));
    }
}
