//! One client engine against the hub (the server's acceptance engine), over a memory store:
//! frames in and out, loads answered at once. Shared by the client tests that need a server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ops::{Deref, DerefMut};

use confab_core::automerge::ActorId;
use confab_core::client::{ClientConfig, Event, Intent, Outcome, SearchPage, DUE_NOW};
use confab_core::ids::{AccountId, ConvId, TenantId};
use confab_core::model::conversation::DEFAULT_BUCKET_MS;
use confab_core::protocol::ClientFrame;
use confab_testkit::net::{self, HubServer, Peer, Server};

pub const T0: i64 = 1_775_779_200_000;
pub const DAY: i64 = DEFAULT_BUCKET_MS;

pub fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

/// The hub as the server, except that a rejection fails the test: this device only writes
/// what the acceptor takes.
pub struct Strict(pub HubServer);

impl Deref for Strict {
    type Target = HubServer;

    fn deref(&self) -> &HubServer {
        &self.0
    }
}

impl DerefMut for Strict {
    fn deref_mut(&mut self) -> &mut HubServer {
        &mut self.0
    }
}

impl Server for Strict {
    fn now(&self) -> i64 {
        self.0.now
    }

    fn serve(&mut self, peers: &mut [Peer], from: usize, frame: ClientFrame) {
        match frame {
            ClientFrame::Submit { doc, changes } => {
                for bytes in changes {
                    match self.0.accept(peers, from, &doc, &bytes) {
                        Ok((ack, _)) => self.0.push(peers, &doc, ack.seq, &bytes, |_, _| true),
                        Err(r) => panic!("{doc} refused: {r:?}"),
                    }
                }
            }
            other => self.0.serve(peers, from, other),
        }
    }
}

/// One device against the hub (the server's acceptance engine), frames in and out;
/// `dev.net.now` is the clock.
pub struct Device {
    pub net: Strict,
    pub peer: Peer,
    /// The search pages answered (`Outcome::Searched`), in order.
    pub pages: Vec<SearchPage>,
}

impl Device {
    pub fn new() -> Self {
        Device {
            net: Strict(HubServer::new(T0)),
            peer: Peer::new(config()),
            pages: Vec::new(),
        }
    }

    pub fn connect(&mut self) {
        net::connect(&mut self.net, std::slice::from_mut(&mut self.peer), 0);
        self.take_pages();
    }

    pub fn disconnect(&mut self) {
        self.peer.online = false;
        self.peer.engine.disconnected();
        self.net.subs.clear();
        self.pump();
    }

    /// Sets `conv`'s retention to `days` days and pumps; dropping waits for the next sync.
    pub fn set_retention_days(&mut self, conv: &ConvId, days: u32) {
        let set = Intent::SetSetting {
            conv: conv.clone(),
            key: "retention_days".into(),
            value: serde_json::json!(days),
        };
        self.peer.engine.intent(set, self.net.now).unwrap();
        self.pump();
    }

    /// Carries out everything, as a host does: the outputs, and a `tick` whenever the engine
    /// asks for one at once (index upkeep).
    pub fn pump(&mut self) {
        self.pump_outputs();
        while self.peer.engine.next_wakeup() == Some(DUE_NOW) {
            self.peer.engine.tick(self.net.now);
            self.pump_outputs();
        }
    }

    /// Carries out the engine's outputs and the frames they bring, without ticking.
    pub fn pump_outputs(&mut self) {
        net::pump(&mut self.net, std::slice::from_mut(&mut self.peer));
        self.take_pages();
    }

    fn take_pages(&mut self) {
        for event in std::mem::take(&mut self.peer.events) {
            if let Event::Done {
                outcome: Outcome::Searched(page),
                ..
            } = event
            {
                self.pages.push(*page);
            }
        }
    }
}

pub fn config() -> ClientConfig {
    let mut actor = [1u8; 16];
    actor[15] = 9;
    ClientConfig {
        tenant: tenant(),
        account: AccountId::new("alice").unwrap(),
        actor: ActorId::from(&actor[..]),
    }
}
