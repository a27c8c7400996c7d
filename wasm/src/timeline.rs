//! `timeline()`'s and `conversation()`'s JavaScript objects, kept between calls:
//! an item that did not change since the previous call is returned as the same object, so a
//! page finds what a push changed by identity (`===`) instead of comparing every item's
//! content, and only the changed items cross the wasm boundary again. Converting every item
//! on every change cost the page O(history) per push (with `JSON.stringify` of each item to
//! find the changed ones); converting a conversation on every redraw cost it O(members)
//! (1.8 ms at 1,000 members).

use std::collections::HashMap;
use std::rc::Rc;

use confab_core::automerge::ChangeHash;
use confab_core::client as cc;
use confab_core::ids::{ConvId, MessageId};
use tsify::Ts;
use wasm_bindgen::JsValue;

use crate::types::TimelineItem;

/// One conversation's items, as of one computed engine timeline: each converted once it was
/// asked for (a window of the newest items converts only those).
#[derive(Debug)]
struct Converted {
    /// The engine's timeline they were converted from (the runtime computes it once per
    /// engine change: the same `Rc` means nothing changed).
    from: Rc<Vec<cc::TimelineItem>>,
    items: Vec<Option<Ts<TimelineItem>>>,
}

/// The converted timelines of the conversations a page asked for.
#[derive(Debug, Default)]
pub struct JsTimelines {
    convs: HashMap<ConvId, Converted>,
}

impl JsTimelines {
    /// `items` as JavaScript objects (the newest `limit` of them), reusing the object of
    /// every item equal to the one the previous call converted.
    pub fn get(
        &mut self,
        conv: &ConvId,
        items: Rc<Vec<cc::TimelineItem>>,
        limit: Option<usize>,
    ) -> Vec<Ts<TimelineItem>> {
        let skip = limit.map_or(0, |limit| items.len().saturating_sub(limit));
        let same = self
            .convs
            .get(conv)
            .is_some_and(|c| Rc::ptr_eq(&c.from, &items));
        if !same {
            let kept: Vec<Option<Ts<TimelineItem>>> = {
                let reuse: HashMap<&MessageId, (&cc::TimelineItem, &Ts<TimelineItem>)> = self
                    .convs
                    .get(conv)
                    .map(|c| {
                        c.from
                            .iter()
                            .zip(&c.items)
                            .filter_map(|(item, js)| Some((&item.message.id, (item, js.as_ref()?))))
                            .collect()
                    })
                    .unwrap_or_default();
                items
                    .iter()
                    .map(|item| match reuse.get(&item.message.id) {
                        Some((old, js)) if *old == item => Some((*js).clone()),
                        _ => None,
                    })
                    .collect()
            };
            let entry = Converted {
                from: items.clone(),
                items: kept,
            };
            self.convs.insert(conv.clone(), entry);
        }
        let Some(converted) = self.convs.get_mut(conv) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len() - skip);
        for (item, js) in converted
            .from
            .iter()
            .zip(converted.items.iter_mut())
            .skip(skip)
        {
            if js.is_none() {
                *js = Ts::from_rust(&TimelineItem::from(item.clone())).ok();
            }
            // An item that cannot be converted (not expected: the types are plain data) is
            // left out, as `timeline()` always did.
            if let Some(js) = js {
                out.push(js.clone());
            }
        }
        out
    }
}

/// Each conversation's last converted object, with the heads of the document it was made at
/// and the device time until which it holds (a temporary role or override lapses then),
/// and the timer that tells the app when that time comes.
#[derive(Debug, Default)]
pub struct JsConversations {
    convs: HashMap<ConvId, Kept>,
}

type Kept = (
    Vec<ChangeHash>,
    Option<i64>,
    JsValue,
    Option<crate::js::Timeout>,
);

impl JsConversations {
    /// The object made at `heads`, if that is the one kept and nothing of it lapsed by
    /// `device_now`.
    pub fn get(&self, conv: &ConvId, heads: &[ChangeHash], device_now: i64) -> Option<JsValue> {
        self.convs
            .get(conv)
            .filter(|(at, until, ..)| {
                at.as_slice() == heads && until.is_none_or(|t| device_now < t)
            })
            .map(|(_, _, value, _)| value.clone())
    }

    /// Keeps `value`, made at `heads`, until the device time `until` (`None`: until the
    /// document moves), and `timer` with it (the one it replaces is cleared).
    pub fn keep(
        &mut self,
        conv: ConvId,
        heads: Vec<ChangeHash>,
        until: Option<i64>,
        value: JsValue,
        timer: Option<crate::js::Timeout>,
    ) {
        self.convs.insert(conv, (heads, until, value, timer));
    }
}
