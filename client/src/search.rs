//! [`Client::search`]: the engine's search of this device's index, and when online the
//! server's (`GET /v1/search`) merged in (docs/SEARCH.md, "On the device").

use std::sync::Mutex;

use confab_core::client::search::ServerPage;
use confab_core::client::{ClientError, Event, Outcome, Partial, SearchOptions, SearchPage};

use crate::{Client, Error};

/// A REST error's body, as far as a search reads it.
#[derive(Debug, Default, serde::Deserialize)]
struct Refusal {
    code: Option<String>,
    message: Option<String>,
}

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

    /// The server's page, or why there is none (unreachable, refusing): the search is
    /// then partial, not failed.
    async fn search(&self, params: &[(&str, String)]) -> Result<ServerPage, Partial> {
        let failed = |code: &str, message: String| Partial::Server {
            code: code.to_owned(),
            message,
        };
        let token = self
            .token
            .lock()
            .map_err(|_| failed("network", "the token lock was poisoned".into()))?
            .clone();
        let answer = self
            .http
            .get(format!("{}/v1/search", self.base))
            .bearer_auth(token)
            .query(params)
            .send()
            .await
            .map_err(|e| failed("network", e.to_string()))?;
        let status = answer.status();
        if !status.is_success() {
            let refusal: Refusal = answer.json().await.unwrap_or_default();
            let code = refusal
                .code
                .unwrap_or_else(|| format!("http_{}", status.as_u16()));
            return Err(failed(&code, refusal.message.unwrap_or_default()));
        }
        answer
            .json()
            .await
            .map_err(|e| failed("network", e.to_string()))
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
        let scope = options.clone();
        let plan = self.query(move |e| e.plan_search(&scope)).await??;
        let mut events = self.events();
        let q = query.to_owned();
        let local_options = plan.local.clone();
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
        let server = match plan.server_query(query, options) {
            Some(params) => Some(self.rest.search(&params).await),
            None => None,
        };
        Ok(plan.finish(local, server))
    }
}
