//! The engine's side of drafts and scheduled messages kept on this device
//! (`crate::client::here` holds them): the intents that write them, the views that read them,
//! and posting a scheduled one once its time has come and the engine is online.

use crate::client::engine::{ClientEngine, ClientError, Event, Output};
use crate::client::here::DraftRecord;
use crate::client::intent::Intent;
use crate::client::outbox::IntentStatus;
use crate::client::records::{cbor, key_here_draft, key_here_scheduled, uncbor};
use crate::client::store::StoreOp;
use crate::doc::read::{PrivateData, Scheduled};
use crate::model::message::NewMessage;
use crate::model::schedule::{
    check_at, check_body, NewSchedule, ScheduleError, SCHEDULE_MAX_PENDING,
};

impl ClientEngine {
    /// A schedule's refusal as the engine says one: its code, a sentence, the details.
    fn schedule_refused(&self, intent: &Intent, e: &ScheduleError) -> ClientError {
        let code = e.code();
        ClientError::Denied {
            reason: self.explain(intent, code),
            code: code.to_owned(),
            detail: e.to_string(),
        }
    }

    /// Whether `intent` writes what this device alone keeps: a draft or a new scheduled
    /// message of an encrypted conversation, or an edit or cancel of one kept here.
    pub(super) fn is_here(&self, intent: &Intent) -> bool {
        match intent {
            Intent::SetDraft { conv, .. } | Intent::Schedule { conv, .. } => {
                self.is_encrypted(conv)
            }
            Intent::EditScheduled { id, .. } | Intent::CancelScheduled { id } => {
                self.here.scheduled.contains_key(id)
            }
            _ => false,
        }
    }

    /// Runs an intent `is_here` claims: checked, kept and stored here, accepted at once (it
    /// sends nothing, so it waits for no one). A refusal writes nothing.
    pub(super) fn run_here(
        &mut self,
        reserved: Option<u64>,
        intent: Intent,
        now: i64,
    ) -> Result<u64, ClientError> {
        let op = self.write_here(&intent, now)?;
        let id = reserved.unwrap_or_else(|| {
            self.next_id += 1;
            self.next_id - 1
        });
        self.out.push(Output::Persist(vec![op]));
        let doc = crate::ids::DocId::private(&self.config.tenant, &self.config.account);
        self.out.push(Output::Event(Event::Doc {
            doc: doc.to_string(),
        }));
        self.out.push(Output::Event(Event::Intent {
            id,
            status: IntentStatus::Accepted,
        }));
        Ok(id)
    }

    /// Applies `intent` to what is kept here: the store write that mirrors it.
    fn write_here(&mut self, intent: &Intent, now: i64) -> Result<StoreOp, ClientError> {
        let refuse = |e: ScheduleError| self.schedule_refused(intent, &e);
        match intent {
            Intent::SetDraft { conv, text } => Ok(match text {
                Some(text) => {
                    let record = DraftRecord {
                        conv: conv.clone(),
                        text: text.clone(),
                    };
                    self.here.drafts.insert(conv.clone(), text.clone());
                    StoreOp::Put(key_here_draft(conv), cbor(&record))
                }
                None => {
                    self.here.drafts.remove(conv);
                    StoreOp::Delete(key_here_draft(conv))
                }
            }),
            Intent::Schedule { id, conv, body, at } => {
                let message = NewSchedule {
                    conv: conv.clone(),
                    body: body.clone(),
                    at: *at,
                };
                message.validate(now).map_err(refuse)?;
                if self.here.scheduled.contains_key(id)
                    || self.private_doc_data().scheduled.contains_key(id)
                {
                    return Err(ClientError::NotApplicable(format!(
                        "{id} is scheduled already"
                    )));
                }
                // Bounded like the private document's entries (`SCHEDULE_MAX_PENDING`).
                if self.here.scheduled.len() >= SCHEDULE_MAX_PENDING {
                    return Err(refuse(ScheduleError::TooMany));
                }
                let entry = Scheduled {
                    id: id.clone(),
                    conv: conv.clone(),
                    body: body.clone(),
                    at: *at,
                    refused: None,
                };
                let op = StoreOp::Put(key_here_scheduled(id), cbor(&entry));
                self.here.scheduled.insert(id.clone(), entry);
                Ok(op)
            }
            Intent::EditScheduled { id, body, at } => {
                if let Some(body) = body {
                    check_body(body).map_err(refuse)?;
                }
                if let Some(at) = at {
                    check_at(*at, now).map_err(refuse)?;
                }
                // One whose send is made is no longer pending: it is in the outbox.
                if self.here.is_posting(id) || !self.here.scheduled.contains_key(id) {
                    return Err(refuse(ScheduleError::NotFound(id.to_string())));
                }
                let Some(entry) = self.here.scheduled.get_mut(id) else {
                    return Err(ClientError::NotApplicable(format!("{id} is gone")));
                };
                if let Some(body) = body {
                    entry.body.clone_from(body);
                }
                if let Some(at) = at {
                    entry.at = *at;
                }
                Ok(StoreOp::Put(key_here_scheduled(id), cbor(&*entry)))
            }
            Intent::CancelScheduled { id } => {
                if self.here.is_posting(id) || !self.here.scheduled.contains_key(id) {
                    return Err(refuse(ScheduleError::NotFound(id.to_string())));
                }
                self.here.scheduled.remove(id);
                Ok(StoreOp::Delete(key_here_scheduled(id)))
            }
            _ => Err(ClientError::NotApplicable(format!(
                "{} is not kept on the device",
                intent.kind()
            ))),
        }
    }

    /// What is kept here, from the start-up load. An unreadable record is reported and
    /// skipped; an entry written before the load answered (newer) wins.
    pub(super) fn restore_here(&mut self, drafts: &[Vec<u8>], scheduled: &[Vec<u8>]) {
        let mut unreadable = 0;
        for bytes in drafts {
            match uncbor::<DraftRecord>(bytes) {
                Ok(d) => {
                    self.here.drafts.entry(d.conv).or_insert(d.text);
                }
                Err(_) => unreadable += 1,
            }
        }
        for bytes in scheduled {
            match uncbor::<Scheduled>(bytes) {
                Ok(s) => {
                    self.here.scheduled.entry(s.id.clone()).or_insert(s);
                }
                Err(_) => unreadable += 1,
            }
        }
        if unreadable > 0 {
            self.out.push(Output::Event(Event::Error {
                code: "corrupt".into(),
                message: format!(
                    "{unreadable} drafts or scheduled messages kept here are unreadable"
                ),
            }));
        }
    }

    /// The private document's data with what is kept here merged in (its drafts and the
    /// scheduled messages not yet handed to the outbox).
    pub(super) fn with_here(&self, mut data: PrivateData) -> PrivateData {
        data.drafts
            .extend(self.here.drafts.iter().map(|(c, t)| (c.clone(), t.clone())));
        data.scheduled
            .extend(self.here.listed().map(|(id, s)| (id.clone(), s.clone())));
        data
    }

    /// When the first scheduled message kept here is due, in device time; only online,
    /// where it can be posted.
    pub(super) fn here_wakeup(&self) -> Option<i64> {
        if !self.online {
            return None;
        }
        let at = self.here.listed().map(|(_, s)| s.at).min()?;
        Some(at.saturating_sub(self.server_now(0)))
    }

    /// Posts every scheduled message kept here whose time has come (online only): each as
    /// a send of its own, sealed when written; it leaves the list when its send enters the
    /// outbox (`posted`).
    pub(super) fn post_due_here(&mut self, device_now: i64) {
        if !self.online {
            return;
        }
        let now = self.server_now(device_now);
        let due: Vec<Scheduled> = self
            .here
            .listed()
            .filter(|(_, s)| s.at <= now)
            .map(|(_, s)| s.clone())
            .collect();
        for entry in due {
            let id = self.next_id;
            self.next_id += 1;
            self.here.posting.insert(id, entry.id.clone());
            let mut message = NewMessage::text(
                entry.id.clone(),
                self.config.account.clone(),
                entry.body,
                now,
            );
            message.scheduled_at = Some(entry.at);
            let send = Intent::Send {
                conv: entry.conv,
                message,
            };
            if self.can_run_now(&send) {
                if let Err(e) = self.run_intent(Some(id), send.clone(), device_now) {
                    // Refused as it is written (no longer a member, locked, ...): it ends
                    // rejected in the outbox with its reason, and leaves the list there.
                    self.refuse_held(id, send, device_now, &e);
                }
            } else {
                self.hold_intent(id, send, device_now);
            }
        }
    }

    /// The store write that takes the scheduled message intent `id` posts off the list, in
    /// the write that puts the intent in the outbox (`persist_entry`); none for any other.
    pub(super) fn posted(&mut self, id: u64) -> Option<StoreOp> {
        let message = self.here.posting.remove(&id)?;
        self.here.scheduled.remove(&message);
        Some(StoreOp::Delete(key_here_scheduled(&message)))
    }
}
