//! `search(query, options)`: what it takes and the page it gives (docs/SEARCH.md, "On the
//! device"), mirrors of core's `SearchOptions` and `SearchPage`.

use super::*;
use confab_core::client::search as cs;

/// A time a search filters on: whole milliseconds since the epoch, as everywhere in the
/// package.
fn time(ms: f64, field: &'static str) -> Result<i64, ModelError> {
    if ms.is_finite() && ms.fract() == 0.0 {
        Ok(ms as i64)
    } else {
        Err(ModelError::InvalidFormat {
            field,
            reason: "whole milliseconds since the epoch".into(),
        })
    }
}

/// `search(query, options)`: filters and the page. Every filter is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SearchOptions {
    /// One conversation only (`conversation` is accepted too, as REST names it). Scoped to
    /// an encrypted conversation, the server is never asked.
    #[serde(alias = "conversation")]
    #[tsify(optional)]
    pub conv: Option<String>,
    /// Messages of this account only.
    #[tsify(optional)]
    pub author: Option<String>,
    #[tsify(optional)]
    pub kind: Option<MessageKind>,
    /// Image, video, voice and file messages only.
    #[tsify(optional)]
    pub has_attachment: Option<bool>,
    /// Created at or after (inclusive), in milliseconds since the epoch.
    #[tsify(optional)]
    pub since: Option<f64>,
    /// Created before (exclusive), in milliseconds since the epoch.
    #[tsify(optional)]
    pub until: Option<f64>,
    /// The previous page's `nextCursor`.
    #[tsify(optional)]
    pub cursor: Option<String>,
    /// Results per page, 1..200 (default 50), for each of the device and the server.
    #[tsify(optional)]
    pub limit: Option<u32>,
    /// Search this device only: the server is not asked (nor told the terms).
    #[tsify(optional)]
    pub local_only: Option<bool>,
}

impl TryFrom<SearchOptions> for cs::SearchOptions {
    type Error = ModelError;
    fn try_from(o: SearchOptions) -> Result<Self, ModelError> {
        Ok(cs::SearchOptions {
            conv: opt(ConvId::new, o.conv)?,
            author: opt(AccountId::new, o.author)?,
            kind: o.kind.map(Into::into),
            has_attachment: o.has_attachment.unwrap_or(false),
            since: o.since.map(|t| time(t, "since")).transpose()?,
            until: o.until.map(|t| time(t, "until")).transpose()?,
            cursor: o.cursor,
            limit: o.limit.map(|l| l as usize),
            local_only: o.local_only.unwrap_or(false),
            all_matches: false,
        })
    }
}

mirror_enum!(
    /// Where a result came from: this device's index, the server's, or both (a device
    /// result the server's answer of the same page also held).
    SearchSource => cs::SearchSource { Device = "device", Server = "server", Both = "both" }
);

/// A run of a snippet's text; `hit` runs are the matching words (highlight them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct SnippetPart {
    pub text: String,
    pub hit: bool,
}

/// The body (or the caption, `caption: true`) around its first matching word, cut at word
/// bounds: `cutStart` / `cutEnd` say text was left out before / after (show "…").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Snippet {
    pub caption: bool,
    pub parts: Vec<SnippetPart>,
    pub cut_start: bool,
    pub cut_end: bool,
}

impl From<cs::Snippet> for Snippet {
    fn from(s: cs::Snippet) -> Self {
        Snippet {
            caption: s.caption,
            parts: s
                .parts
                .into_iter()
                .map(|p| SnippetPart {
                    text: p.text,
                    hit: p.hit,
                })
                .collect(),
            cut_start: s.cut_start,
            cut_end: s.cut_end,
        }
    }
}

/// One message found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    pub conv: String,
    /// The message as the timeline shows it when this device holds its bucket open; else
    /// as indexed (the device's record, or the server's preview): id, author, kind, times,
    /// body, caption.
    pub message: Message,
    /// Its bucket (the part of the timeline it is in), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub bucket: Option<Bucket>,
    pub source: SearchSource,
    pub snippets: Vec<Snippet>,
}

impl SearchResult {
    /// `hit`, with `held` the message as the timeline shows it, when it does.
    pub fn new(hit: cs::SearchHit, held: Option<cm::Message>) -> Self {
        let message = held.map(Message::from).unwrap_or_else(|| Message {
            id: hit.message.to_string(),
            author: hit.author.to_string(),
            kind: hit.kind.into(),
            body: hit.body,
            payload: None,
            caption: hit.caption,
            attachments: None,
            mentions: None,
            reply_to: None,
            forwarded_from: None,
            created_at: hit.created_at,
            edited_at: None,
            deleted_at: None,
            deleted_by: None,
            scheduled_at: None,
            status: None,
            reactions: BTreeMap::new(),
            sender_role: None,
            sender_name: None,
            related_lead: None,
        });
        SearchResult {
            conv: hit.conv.into(),
            message,
            bucket: hit.bucket,
            source: hit.source.into(),
            snippets: hit.snippets.into_iter().map(Into::into).collect(),
        }
    }
}

/// Why a page is this device's results alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "snake_case")]
pub enum PartialCause {
    Offline,
    LocalOnly,
    Server,
    Bounded,
}

/// Why a page is partial: `offline` (not connected), `local_only` (asked so), `server`
/// (the server was asked and gave no page: its `code`, e.g. `network`, and `message`), or
/// `bounded` (the device's index read as much as a page may: `nextCursor` goes on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
pub struct PartialReason {
    pub reason: PartialCause,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub message: Option<String>,
}

impl From<cs::Partial> for PartialReason {
    fn from(p: cs::Partial) -> Self {
        let (reason, code, message) = match p {
            cs::Partial::Offline => (PartialCause::Offline, None, None),
            cs::Partial::LocalOnly => (PartialCause::LocalOnly, None, None),
            cs::Partial::Server { code, message } => {
                (PartialCause::Server, Some(code), Some(message))
            }
            cs::Partial::Bounded => (PartialCause::Bounded, None, None),
        };
        PartialReason {
            reason,
            code,
            message,
        }
    }
}

/// A page of results: this device's first (found offline too), then the server's that the
/// device does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    /// The query's folded terms (the last matched as a prefix from two characters).
    pub terms: Vec<String>,
    pub results: Vec<SearchResult>,
    /// Pass as `cursor` for the next page; absent after the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub next_cursor: Option<String>,
    /// The server could hold more but was not asked or did not answer: `partialReason`
    /// says why.
    pub partial: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub partial_reason: Option<PartialReason>,
}
