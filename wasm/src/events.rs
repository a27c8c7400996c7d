//! Events for the app: the listeners registered with `on`, and how the engine's events
//! become the API's (`doc` also names its conversation's `timeline` or `conversation`, and
//! the list's `conversations`, once per batch).

use std::collections::{HashMap, HashSet};

use confab_core::client::Event;
use confab_core::ids::{ConvId, DocId, DocTarget};
use js_sys::Function;
use wasm_bindgen::prelude::*;

use crate::types::{ClientEvent, EventName, IntentStatus};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str, value: &JsValue);
}

/// The app's event listeners, by event name.
#[derive(Debug, Default)]
pub struct Listeners {
    next: u32,
    by_name: HashMap<EventName, Vec<(u32, Function)>>,
}

impl Listeners {
    pub fn add(&mut self, name: EventName, f: Function) -> u32 {
        self.next += 1;
        self.by_name.entry(name).or_default().push((self.next, f));
        self.next
    }

    pub fn remove_id(&mut self, name: EventName, id: u32) {
        if let Some(list) = self.by_name.get_mut(&name) {
            list.retain(|(i, _)| *i != id);
        }
    }

    pub fn remove_fn(&mut self, name: EventName, f: &Function) {
        if let Some(list) = self.by_name.get_mut(&name) {
            list.retain(|(_, g)| {
                let g: &JsValue = g.as_ref();
                g != AsRef::<JsValue>::as_ref(f)
            });
        }
    }

    pub fn clear(&mut self) {
        self.by_name.clear();
    }

    /// The listeners of `name` and of `"*"`.
    pub fn targets(&self, name: EventName) -> Vec<Function> {
        [name, EventName::All]
            .iter()
            .flat_map(|n| self.by_name.get(n).into_iter().flatten())
            .map(|(_, f)| f.clone())
            .collect()
    }
}

/// Calls each of `targets` with `event`. A listener that throws is logged.
pub fn call(targets: Vec<Function>, event: &ClientEvent) {
    if targets.is_empty() {
        return;
    }
    let value = match tsify::Ts::from_rust(event) {
        Ok(ts) => JsValue::from(ts),
        Err(_) => return,
    };
    for f in targets {
        if let Err(e) = f.call1(&JsValue::NULL, &value) {
            console_error("confab: an event listener threw", &e);
        }
    }
}

/// What the runtime must look up or keep while translating (typing lists, retry state).
pub trait Context {
    /// `typing` for `conv` now (and schedules its expiry).
    fn typing(&self, conv: &ConvId) -> ClientEvent;
    /// Whether the connection will be retried after going offline.
    fn will_retry(&self) -> bool;
}

/// The app's events for a batch of the engine's events. `Done` and `Intent` answers to
/// waiting calls are the runtime's business, not translated here (`Intent` is, too).
pub fn translate(events: &[Event], cx: &impl Context) -> Vec<ClientEvent> {
    let mut out: Vec<ClientEvent> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut list_changed = false;
    let mut push_once = |out: &mut Vec<ClientEvent>, event: ClientEvent, key: String| {
        if seen.insert(key) {
            out.push(event);
        }
    };
    for event in events {
        match event {
            Event::Intent { id, status } => out.push(ClientEvent::Intent {
                id: *id,
                status: IntentStatus::from(status.clone()),
            }),
            Event::Doc { doc } => {
                let Ok(id) = DocId::parse(doc) else {
                    continue;
                };
                push_once(&mut out, ClientEvent::Doc { doc: doc.clone() }, doc.clone());
                match id.target() {
                    DocTarget::Conv(conv) => {
                        list_changed = true;
                        push_once(
                            &mut out,
                            ClientEvent::Conversation {
                                conv: conv.to_string(),
                            },
                            format!("conv {conv}"),
                        );
                    }
                    DocTarget::Msgs(conv, _) => {
                        list_changed = true;
                        push_once(
                            &mut out,
                            ClientEvent::Timeline {
                                conv: conv.to_string(),
                            },
                            format!("timeline {conv}"),
                        );
                    }
                    DocTarget::Profile(account) => push_once(
                        &mut out,
                        ClientEvent::Profile {
                            account: account.to_string(),
                        },
                        format!("profile {account}"),
                    ),
                    DocTarget::Private(_) => list_changed = true,
                }
            }
            Event::Typing { conv } => {
                if let Ok(c) = ConvId::new(conv.clone()) {
                    out.push(cx.typing(&c));
                }
            }
            Event::Presence { conv } => push_once(
                &mut out,
                ClientEvent::Presence { conv: conv.clone() },
                format!("presence {conv}"),
            ),
            Event::Revoked { doc, reason } => {
                let conv = DocId::parse(doc)
                    .ok()
                    .and_then(|d| d.conv_id().map(|c| c.to_string()));
                out.push(ClientEvent::Revoked {
                    doc: doc.clone(),
                    conv,
                    reason: reason.clone(),
                });
            }
            Event::Membership(m) => {
                // A conversation followed or stopped changes the list.
                list_changed = true;
                out.push(ClientEvent::Membership {
                    conv: m.conv.to_string(),
                    role: m.role.into(),
                    status: m.status.into(),
                    following: m.following,
                    sentence: m.sentence.clone(),
                });
            }
            Event::Online { online: true } => out.push(ClientEvent::Online),
            Event::Online { online: false } => out.push(ClientEvent::Offline {
                will_retry: cx.will_retry(),
            }),
            Event::Error { code, message } => out.push(ClientEvent::Error {
                code: code.clone(),
                message: message.clone(),
            }),
            Event::Devices => out.push(ClientEvent::Devices),
            Event::DeviceRemoved { device, refused } => out.push(ClientEvent::DeviceRemoved {
                device: device.clone(),
                refused: refused.clone(),
            }),
            Event::Done { .. } => {}
        }
    }
    if list_changed {
        out.push(ClientEvent::Conversations);
    }
    out
}
