//! One page of a merged search, as every host runs it (docs/SEARCH.md, "On the device"):
//! `ClientEngine::plan_search` says what the page asks of the device's index and whether
//! and from where it asks the server; the host runs the engine's search
//! (`SearchPlan::local`) and, when `server_query` names one, `GET /v1/search`; `finish`
//! merges the answers. The Rust client and the wasm package differ only in how they wait
//! and fetch.

use super::merge::{merge, MergedCursor, ServerPage, ServerSide};
use super::{Partial, SearchOptions, SearchPage};
use crate::model::time::format_rfc3339;

/// What one page of a merged search does.
#[derive(Debug, Clone)]
pub struct SearchPlan {
    pub(crate) at: MergedCursor,
    pub(crate) show_local: bool,
    /// The engine search of this page (`ClientEngine::search` with these options).
    pub local: SearchOptions,
    pub(crate) server: Step,
}

#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Ask the server, from this cursor (`None`: its first page).
    Ask(Option<String>),
    Over,
    Skip(Partial),
}

impl SearchPlan {
    /// The query parameters of `GET /v1/search` for this page, when the server is to be
    /// asked (`None`: it is not).
    pub fn server_query(
        &self,
        query: &str,
        options: &SearchOptions,
    ) -> Option<Vec<(&'static str, String)>> {
        let Step::Ask(cursor) = &self.server else {
            return None;
        };
        let mut params = vec![("q", query.to_owned())];
        for (name, value) in [
            (
                "conversation",
                options.conv.as_ref().map(ToString::to_string),
            ),
            ("author", options.author.as_ref().map(ToString::to_string)),
            ("kind", options.kind.map(|k| k.as_str().to_owned())),
            ("since", options.since.map(format_rfc3339)),
            ("until", options.until.map(format_rfc3339)),
            ("limit", options.limit.map(|l| l.to_string())),
            ("cursor", cursor.clone()),
        ] {
            if let Some(value) = value {
                params.push((name, value));
            }
        }
        if options.has_attachment {
            params.push(("has_attachment", "true".into()));
        }
        Some(params)
    }

    /// The merged page from the device's page (the answer to `local`) and the server's
    /// answer when it was asked (`None` when `server_query` was `None`; `Err`: why it gave no
    /// page).
    pub fn finish(
        self,
        local: SearchPage,
        server: Option<Result<ServerPage, Partial>>,
    ) -> SearchPage {
        let side = match (self.server, server) {
            (Step::Ask(_), Some(Ok(page))) => ServerSide::Answered(page),
            (Step::Ask(_), Some(Err(why))) => ServerSide::Missing(why),
            // Planned but not asked: the host went offline in between.
            (Step::Ask(_), None) => ServerSide::Missing(Partial::Offline),
            (Step::Over, _) => ServerSide::Over,
            (Step::Skip(why), _) => ServerSide::Missing(why),
        };
        merge(local, self.show_local, side, &self.at)
    }
}
