//! Helpers around the in-memory acceptor (`confab_core::hub::Hub`), at a fixed server time.

use confab_core::automerge::Change;
use confab_core::doc::write;
use confab_core::hub::{Ack, Hub};
use confab_core::ids::{ConvId, DocId};
use confab_core::model::conversation::{ConvKind, Role};
use confab_core::policy::Effect;
use confab_core::validate::Rejection;

use crate::device::Device;
use crate::fixture::{text_message, ConvFixture};
use crate::ids::{conv_doc, conv_id};

/// 2026-04-10T00:00:00Z, server time in tests.
pub const NOW: i64 = 1_775_779_200_000;

/// Submits `change` to `id` as `dev`'s account at `NOW`.
pub fn submit(
    hub: &mut Hub,
    dev: &Device,
    id: &DocId,
    change: Change,
) -> Result<(Ack, Vec<Effect>), Rejection> {
    hub.submit(id, &dev.author, change, NOW)
}

/// Creates a group owned by `owner` with `others` at the given roles; every device pulls it.
pub fn group(
    hub: &mut Hub,
    id: &str,
    owner: &mut Device,
    others: &mut [(&mut Device, Role)],
) -> ConvId {
    create(hub, id, ConvKind::Group, owner, others, |_| {})
}

/// Creates conversation `id` (title "`id` title", created a second before `NOW`) owned by
/// `owner` with `others` at the given roles, after `tweak`; every device pulls it.
pub fn create(
    hub: &mut Hub,
    id: &str,
    kind: ConvKind,
    owner: &mut Device,
    others: &mut [(&mut Device, Role)],
    tweak: impl FnOnce(&mut write::CreateConv),
) -> ConvId {
    let c = conv_id(id);
    let fixture = others
        .iter()
        .fold(
            ConvFixture::new(kind, owner.account_id(), NOW - 1000),
            |f, (dev, role)| f.member(dev.account_id(), *role),
        )
        .title(format!("{id} title"))
        .tweak(tweak);
    let (doc, change) = fixture.write(owner, &c).expect("the creation writes");
    submit(hub, owner, &doc, change).expect("creation accepted");
    for (dev, _) in others.iter_mut() {
        dev.pull(hub, &conv_doc(&c));
    }
    c
}

/// A text message change from `dev` in `conv`, created at `at`.
pub fn text_change(
    dev: &mut Device,
    conv: &ConvId,
    id: &str,
    body: &str,
    at: i64,
) -> (DocId, Change) {
    text_message(dev, conv, id, body, at).expect("a text message writes")
}

/// Posts a text message at `NOW` and returns the hub's verdict.
pub fn post(
    hub: &mut Hub,
    dev: &mut Device,
    conv: &ConvId,
    id: &str,
    body: &str,
) -> Result<(Ack, Vec<Effect>), Rejection> {
    let (doc, change) = text_change(dev, conv, id, body, NOW);
    submit(hub, dev, &doc, change)
}
