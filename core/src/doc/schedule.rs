//! Writes of scheduled messages in the author's `private` document
//! (`scheduled/<message>/{conv, body, at, refused}`): the author schedules, edits and
//! cancels; the server settles one when its time has come (removes it once posted, or marks
//! it refused with the reject code). Each is one tagged transaction, like `write`.

use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ObjType, ROOT};

use super::read::{get_map, read_private, Scheduled};
use super::schema::keys::*;
use super::write::transact;
use super::{DocError, IntentTag};
use crate::ids::MessageId;
use crate::model::schedule::{
    check_at, check_body, NewSchedule, ScheduleError, SCHEDULE_MAX_PENDING,
};

/// The account's scheduled message `id`, if its private document holds it.
pub fn find(doc: &Automerge, id: &MessageId) -> Option<Scheduled> {
    read_private(doc).scheduled.remove(id)
}

/// Schedules `message` as `id`: `schedule_in_past`, `schedule_too_far`, `invalid_body`,
/// `schedule_too_many`, or `not_applicable` when `id` is taken.
pub fn schedule(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    id: &MessageId,
    message: &NewSchedule,
) -> Result<Option<ChangeHash>, DocError> {
    message.validate(now_ms)?;
    transact(doc, tag, now_ms, |tx| {
        let map = get_map(&*tx, &ROOT, SCHEDULED).ok_or(DocError::Missing(SCHEDULED))?;
        if get_map(&*tx, &map, id.as_str()).is_some() {
            return Err(DocError::NotApplicable(format!(
                "{id} is scheduled already"
            )));
        }
        if automerge::ReadDoc::length(&*tx, &map) >= SCHEDULE_MAX_PENDING {
            return Err(ScheduleError::TooMany.into());
        }
        let obj = tx.put_object(&map, id.as_str(), ObjType::Map)?;
        tx.put(&obj, CONV, message.conv.as_str())?;
        tx.put(&obj, BODY, message.body.as_str())?;
        tx.put(&obj, AT, message.at)?;
        Ok(())
    })
}

/// Changes the body and/or the time of a scheduled message of this account. Editing one the
/// server refused schedules it again (its refusal is cleared). `schedule_not_found` for an
/// id this account has not scheduled (someone else's included: their document is theirs).
pub fn edit(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    id: &MessageId,
    body: Option<&str>,
    at: Option<i64>,
) -> Result<Option<ChangeHash>, DocError> {
    if let Some(body) = body {
        check_body(body)?;
    }
    if let Some(at) = at {
        check_at(at, now_ms)?;
    }
    let current = find(doc, id).ok_or_else(|| ScheduleError::NotFound(id.to_string()))?;
    if current.refused.is_some() && at.is_none() {
        // A refused message's time has passed: rescheduling it needs a new time.
        return Err(ScheduleError::Refused(id.to_string()).into());
    }
    transact(doc, tag, now_ms, |tx| {
        let map = get_map(&*tx, &ROOT, SCHEDULED).ok_or(DocError::Missing(SCHEDULED))?;
        let obj = get_map(&*tx, &map, id.as_str()).ok_or(DocError::Missing(SCHEDULED))?;
        if let Some(body) = body.filter(|b| *b != current.body) {
            tx.put(&obj, BODY, body)?;
        }
        if let Some(at) = at.filter(|a| *a != current.at) {
            tx.put(&obj, AT, at)?;
        }
        if current.refused.is_some() {
            tx.delete(&obj, REFUSED)?;
        }
        Ok(())
    })
}

/// Cancels (or, once refused, dismisses) a scheduled message: `schedule_not_found` if this
/// account has none with that id.
pub fn cancel(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    id: &MessageId,
) -> Result<Option<ChangeHash>, DocError> {
    let map = get_map(doc, &ROOT, SCHEDULED).ok_or(DocError::Missing(SCHEDULED))?;
    if get_map(doc, &map, id.as_str()).is_none() {
        return Err(ScheduleError::NotFound(id.to_string()).into());
    }
    transact(doc, tag, now_ms, |tx| {
        tx.delete(&map, id.as_str())?;
        Ok(())
    })
}

/// The server's outcome for a due message: posted (`None`: the entry leaves) or refused
/// with `code` (kept, so the author sees why). Nothing when the entry is gone already.
pub fn settle(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    id: &MessageId,
    refused: Option<&str>,
) -> Result<Option<ChangeHash>, DocError> {
    let Some(map) = get_map(doc, &ROOT, SCHEDULED) else {
        return Ok(None);
    };
    let Some(obj) = get_map(doc, &map, id.as_str()) else {
        return Ok(None);
    };
    transact(doc, tag, now_ms, |tx| {
        match refused {
            None => tx.delete(&map, id.as_str())?,
            Some(code) => tx.put(&obj, REFUSED, code)?,
        }
        Ok(())
    })
}

/// The entries due at `now` that wait for the server (not refused), oldest first, and the
/// time of the next one after `now`.
pub fn due(doc: &Automerge, now: i64) -> (Vec<Scheduled>, Option<i64>) {
    due_in(read_private(doc), now)
}

/// [`due`] of a private document already read.
pub fn due_in(private: super::read::PrivateData, now: i64) -> (Vec<Scheduled>, Option<i64>) {
    let mut due = Vec::new();
    let mut next: Option<i64> = None;
    for s in private.scheduled.into_values() {
        if s.refused.is_some() {
            continue;
        }
        if s.at <= now {
            due.push(s);
        } else {
            next = Some(next.map_or(s.at, |n| n.min(s.at)));
        }
    }
    due.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    (due, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::genesis;
    use crate::ids::{AccountId, ConvId, DocId, TenantId};

    const NOW: i64 = 1_700_000_000_000;

    fn private() -> Automerge {
        let tenant = TenantId::new("t").unwrap();
        let me = AccountId::new("alice").unwrap();
        genesis(&DocId::private(&tenant, &me))
            .unwrap()
            .with_actor(automerge::ActorId::from(&[7u8; 16][..]))
    }

    fn tag() -> IntentTag {
        IntentTag::new("i-1".to_string(), "schedule")
    }

    fn new(at: i64) -> NewSchedule {
        NewSchedule {
            conv: ConvId::new("c-1").unwrap(),
            body: "later".into(),
            at,
        }
    }

    fn id(s: &str) -> MessageId {
        MessageId::new(s).unwrap()
    }

    fn code(e: DocError) -> &'static str {
        match e {
            DocError::Schedule(e) => e.code(),
            DocError::NotApplicable(_) => "not_applicable",
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn schedule_edit_cancel_round_trip() {
        let mut doc = private();
        schedule(&mut doc, &tag(), NOW, &id("m-1"), &new(NOW + 1_000)).unwrap();
        let s = find(&doc, &id("m-1")).unwrap();
        assert_eq!(
            (s.body.as_str(), s.at, s.refused),
            ("later", NOW + 1_000, None)
        );
        edit(
            &mut doc,
            &tag(),
            NOW,
            &id("m-1"),
            Some("sooner"),
            Some(NOW + 500),
        )
        .unwrap();
        let s = find(&doc, &id("m-1")).unwrap();
        assert_eq!((s.body.as_str(), s.at), ("sooner", NOW + 500));
        cancel(&mut doc, &tag(), NOW, &id("m-1")).unwrap();
        assert!(find(&doc, &id("m-1")).is_none());
    }

    #[test]
    fn bad_input_has_codes_and_writes_nothing() {
        let mut doc = private();
        let heads = doc.get_heads();
        let past = schedule(&mut doc, &tag(), NOW, &id("m-1"), &new(NOW - 120_000));
        assert_eq!(code(past.unwrap_err()), "schedule_in_past");
        let far = schedule(
            &mut doc,
            &tag(),
            NOW,
            &id("m-1"),
            &new(NOW + 400 * 86_400_000),
        );
        assert_eq!(code(far.unwrap_err()), "schedule_too_far");
        let missing = edit(&mut doc, &tag(), NOW, &id("m-9"), Some("x"), None);
        assert_eq!(code(missing.unwrap_err()), "schedule_not_found");
        let missing = cancel(&mut doc, &tag(), NOW, &id("m-9"));
        assert_eq!(code(missing.unwrap_err()), "schedule_not_found");
        assert_eq!(doc.get_heads(), heads);
        schedule(&mut doc, &tag(), NOW, &id("m-1"), &new(NOW + 1)).unwrap();
        let taken = schedule(&mut doc, &tag(), NOW, &id("m-1"), &new(NOW + 1));
        assert_eq!(code(taken.unwrap_err()), "not_applicable");
    }

    #[test]
    fn due_splits_by_time_and_skips_refused() {
        let mut doc = private();
        schedule(&mut doc, &tag(), NOW, &id("m-b"), &new(NOW + 20)).unwrap();
        schedule(&mut doc, &tag(), NOW, &id("m-a"), &new(NOW + 10)).unwrap();
        schedule(&mut doc, &tag(), NOW, &id("m-c"), &new(NOW + 30)).unwrap();
        schedule(&mut doc, &tag(), NOW, &id("m-d"), &new(NOW + 5)).unwrap();
        settle(&mut doc, &tag(), NOW, &id("m-d"), Some("member_inactive")).unwrap();
        let (due_now, next) = due(&doc, NOW + 20);
        let ids: Vec<_> = due_now.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["m-a", "m-b"]);
        assert_eq!(next, Some(NOW + 30));
        assert_eq!(
            find(&doc, &id("m-d")).unwrap().refused.as_deref(),
            Some("member_inactive")
        );
        // A refused one is rescheduled only with a new time, which clears the refusal.
        let again = edit(&mut doc, &tag(), NOW, &id("m-d"), Some("x"), None);
        assert_eq!(code(again.unwrap_err()), "schedule_refused");
        edit(&mut doc, &tag(), NOW, &id("m-d"), None, Some(NOW + 40)).unwrap();
        assert_eq!(find(&doc, &id("m-d")).unwrap().refused, None);
        settle(&mut doc, &tag(), NOW, &id("m-a"), None).unwrap();
        assert!(find(&doc, &id("m-a")).is_none());
        assert_eq!(
            settle(&mut doc, &tag(), NOW, &id("m-a"), None).unwrap(),
            None
        );
    }

    #[test]
    fn pending_messages_are_bounded() {
        let mut doc = private();
        for i in 0..SCHEDULE_MAX_PENDING {
            schedule(&mut doc, &tag(), NOW, &id(&format!("m-{i}")), &new(NOW + 1)).unwrap();
        }
        let over = schedule(&mut doc, &tag(), NOW, &id("m-over"), &new(NOW + 1));
        assert_eq!(code(over.unwrap_err()), "schedule_too_many");
    }
}
