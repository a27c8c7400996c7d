//! The engine's side of members' read times (`crate::client::reads` keeps the requests out):
//! asking the server and answering with `Event::Done`.

use crate::client::ask::RequestId;
use crate::client::engine::Outcome;
use crate::client::engine::{ClientEngine, Event, Output};
use crate::ids::{ConvId, DocId};
use crate::protocol::{ClientFrame, ReadTime};

impl ClientEngine {
    /// Asks the server when each member of `conv` last moved its read marker. Ends with
    /// `Event::Done { outcome: ReadTimes { reads } }`, or `Failed` with `offline` when not
    /// connected (or the connection drops first) and with the server's code (`forbidden`
    /// for a conversation this account may not read, `unavailable`).
    pub fn read_times(&mut self, conv: &ConvId) -> RequestId {
        let request = self.loads.next_request();
        if !self.online {
            self.read_times_done(vec![request], failed("offline", "not connected"));
            return request;
        }
        let doc = DocId::conv(&self.config.tenant, conv).to_string();
        let asked = self.reads.waiting.entry(doc.clone()).or_default();
        asked.push(request);
        // One question answers every request that waits for the same conversation.
        if asked.len() == 1 {
            self.out.push(Output::Send(ClientFrame::ReadTimes { doc }));
        }
        request
    }

    pub(super) fn on_read_times(&mut self, doc: &str, reads: Vec<ReadTime>) {
        let requests = self.reads.waiting.remove(doc).unwrap_or_default();
        self.read_times_done(requests, Outcome::ReadTimes { reads });
    }

    /// An error naming `doc` ends the requests waiting for its read times.
    pub(super) fn read_times_failed(&mut self, doc: &str, code: &str, message: &str) {
        if let Some(requests) = self.reads.waiting.remove(doc) {
            self.read_times_done(requests, failed(code, message));
        }
    }

    pub(super) fn read_times_disconnected(&mut self) {
        let waiting = std::mem::take(&mut self.reads.waiting);
        let requests = waiting.into_values().flatten().collect();
        self.read_times_done(requests, failed("offline", "the connection dropped"));
    }

    fn read_times_done(&mut self, requests: Vec<RequestId>, outcome: Outcome) {
        for request in requests {
            let outcome = outcome.clone();
            self.out
                .push(Output::Event(Event::Done { request, outcome }));
        }
    }
}

fn failed(code: &str, message: &str) -> Outcome {
    Outcome::Failed {
        code: code.to_owned(),
        message: message.to_owned(),
    }
}
