//! [`Client::search`]: the engine's search of this device's index, and when online the
//! server's (`GET /v1/search`) merged in (docs/SEARCH.md, "On the device").

use std::sync::Mutex;

use confab_core::client::search::{merge, MergedCursor, ServerPage};
use confab_core::client::{ClientError, Event, Outcome, SearchOptions, SearchPage};
use confab_core::model::time::format_rfc3339;

use crate::{Client, Error};

/// Where the server's REST answers, and with which token.
#[derive(Debug)]
pub(crate) struct Rest {
    /// `http(s)://host[:port]`, from the socket's `ws(s)://host[:port]/ws`.
    base: String,
    token: Mutex<String>,
    http: reqwest::Client,
}

impl Rest {
    pub(crate) fn new(ws_url: &str, token: &str) -> Self {
        let base = ws_url
            .replacen("wss://", "https://", 1)
            .replacen("ws://", "http://", 1);
        let base = base.strip_suffix("/ws").unwrap_or(&base).to_owned();
        Rest {
            base,
            token: Mutex::new(token.to_owned()),
            http: reqwest::Client::new(),
        }
    }

    pub(crate) fn set_token(&self, token: &str) {
        if let Ok(mut t) = self.token.lock() {
            *t = token.to_owned();
        }
    }

    /// The server's page, or `None` when it cannot answer (unreachable, refusing): the
    /// search is then partial, not failed.
    async fn search(
        &self,
        query: &str,
        options: &SearchOptions,
        cursor: Option<&str>,
    ) -> Option<ServerPage> {
        let token = self.token.lock().ok()?.clone();
        let mut params: Vec<(&str, String)> = vec![("q", query.to_owned())];
        let text = |v: Option<&dyn ToString>| v.map(|v| v.to_string());
        for (name, value) in [
            ("conversation", text(options.conv.as_ref().map(|c| c as _))),
            ("author", text(options.author.as_ref().map(|a| a as _))),
            ("kind", options.kind.map(|k| k.as_str().to_owned())),
            ("since", options.since.map(format_rfc3339)),
            ("until", options.until.map(format_rfc3339)),
            ("limit", text(options.limit.as_ref().map(|l| l as _))),
            ("cursor", cursor.map(str::to_owned)),
        ] {
            if let Some(value) = value {
                params.push((name, value));
            }
        }
        if options.has_attachment {
            params.push(("has_attachment", "true".into()));
        }
        let answer = self
            .http
            .get(format!("{}/v1/search", self.base))
            .bearer_auth(token)
            .query(&params)
            .send()
            .await
            .ok()?;
        if !answer.status().is_success() {
            return None;
        }
        answer.json().await.ok()
    }
}

impl Client {
    /// Searches the messages this account may read: this device's index first (local
    /// results, offline too), then, when online, the server's results this device does not
    /// hold (`source` says which). The server is not asked (nor told the terms) when
    /// `options.local_only` or when the search is scoped to a conversation this device holds
    /// as encrypted; offline or unreachable, the page is this device's alone with `partial`
    /// set. `next_cursor` goes back as `options.cursor` for the next page.
    pub async fn search(&self, query: &str, options: &SearchOptions) -> Result<SearchPage, Error> {
        let at = MergedCursor::decode(options.cursor.as_deref())?;
        let (local_options, show_local) = at.local_options(options);
        let mut events = self.events();
        let q = query.to_owned();
        let request = self.query(move |e| e.search(&q, &local_options)).await??;
        let local = loop {
            match events.recv().await {
                Ok(Event::Done {
                    request: r,
                    outcome,
                }) if r == request => match outcome {
                    Outcome::Searched(page) => break *page,
                    Outcome::Failed { code, message } => {
                        return Err(Error::Engine(ClientError::Store(format!(
                            "{code}: {message}"
                        ))))
                    }
                    _ => return Err(Error::Stopped),
                },
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return Err(Error::Stopped),
            }
        };
        let scope = options.clone();
        let (asks, online) = self
            .query(move |e| (e.search_asks_server(&scope), e.is_online()))
            .await?;
        // Scoped to an encrypted conversation: the server holds nothing to add.
        let encrypted_scope = !asks && !options.local_only;
        let server_cursor = at.server_cursor();
        let server = match server_cursor {
            Some(cursor) if asks && online => self.rest.search(query, options, cursor).await,
            _ => None,
        };
        let server_done = encrypted_scope || server_cursor.is_none();
        Ok(merge(local, show_local, server, &at, server_done))
    }
}
