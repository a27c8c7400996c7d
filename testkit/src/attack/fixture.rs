//! Preconditions of the cases, built with real accepted changes.

use confab_core::automerge::Change;
use confab_core::doc::write::CreateConv;
use confab_core::ids::{ConvId, DocId};
use confab_core::model::conversation::{ConvKind, ResourceLink, Role, Settings};

use super::Lab;
use crate::craft::{proposal_payload, raw_post, s, text_fields};
use crate::device::Device;
use crate::fixture::{text_message, ConvFixture};
use crate::ids::{acc, conv_doc, conv_id, tenant};
use confab_core::doc::schema::keys::{KIND, PAYLOAD, STATUS};
use confab_core::doc::write;
use confab_core::ids::ResourceId;

/// Creates conversation `id` (title "`id` title") owned by `owner` with `others` at the given
/// roles, after `tweak`; every device pulls it.
pub async fn create(
    lab: &mut impl Lab,
    id: &str,
    kind: ConvKind,
    owner: &mut Device,
    others: &mut [(&mut Device, Role)],
    tweak: impl FnOnce(&mut CreateConv),
) -> ConvId {
    let c = conv_id(id);
    let fixture = others
        .iter()
        .fold(
            ConvFixture::new(kind, owner.account_id(), lab.now() - 1000),
            |f, (dev, role)| f.member(dev.account_id(), *role),
        )
        .title(format!("{id} title"))
        .tweak(tweak);
    let (cd, change) = fixture.write(owner, &c).expect("the creation writes");
    lab.accept(owner, &cd, change).await;
    for (dev, _) in others.iter_mut() {
        lab.pull(dev, &cd).await;
    }
    c
}

/// A text message written through `doc::write` (what a well-behaved client sends), now.
pub fn text_change(
    lab: &impl Lab,
    dev: &mut Device,
    conv: &ConvId,
    id: &str,
    body: &str,
) -> (DocId, Change) {
    text_message(dev, conv, id, body, lab.now()).expect("a text message writes")
}

/// Group `id`: alice owner, bob member, dave admin; alice posted "m1"; everyone has it.
#[derive(Debug)]
pub struct Fixture {
    pub alice: Device,
    pub bob: Device,
    pub dave: Device,
    pub conv: ConvId,
    pub cd: DocId,
    pub bucket: DocId,
}

pub async fn fixture(lab: &mut impl Lab, id: &str) -> Fixture {
    fixture_with(lab, id, |_| {}).await
}

pub async fn fixture_with(
    lab: &mut impl Lab,
    id: &str,
    tweak: impl FnOnce(&mut Settings),
) -> Fixture {
    let mut alice = Device::new("alice", 1);
    let mut bob = Device::new("bob", 1);
    let mut dave = Device::new("dave", 1);
    let conv = create(
        lab,
        id,
        ConvKind::Group,
        &mut alice,
        &mut [(&mut bob, Role::Member), (&mut dave, Role::Admin)],
        |spec| tweak(&mut spec.settings),
    )
    .await;
    let (bucket, m1) = text_change(lab, &mut alice, &conv, "m1", "hello");
    lab.accept(&mut alice, &bucket, m1).await;
    let cd = conv_doc(&conv);
    for dev in [&mut alice, &mut bob, &mut dave] {
        lab.pull(dev, &cd).await;
        lab.pull(dev, &bucket).await;
    }
    Fixture {
        alice,
        bob,
        dave,
        conv,
        cd,
        bucket,
    }
}

/// A support thread about `resource`: alice owns the resource, carol is the client.
pub async fn support_thread(
    lab: &mut impl Lab,
    alice: &mut Device,
    carol: &mut Device,
    resource: &str,
) -> ConvId {
    let link = ResourceLink {
        resource: ResourceId::new(resource).expect("a resource id"),
        client: acc("carol"),
        owner: acc("alice"),
    };
    let (sd, create) = write::support_creation_change(&tenant(), &link).expect("a support thread");
    lab.accept(alice, &sd, create).await;
    lab.pull(carol, &sd).await;
    sd.conv_id().expect("a conversation document").clone()
}

/// Alice posts proposal `id`, expiring at `expires`.
pub async fn post_proposal(
    lab: &mut impl Lab,
    alice: &mut Device,
    conv: &ConvId,
    id: &str,
    expires: Option<i64>,
) {
    let t = lab.now();
    let mut fields = text_fields("alice", "Visit on Friday?", t);
    fields[1] = (KIND, s("proposal"));
    fields.push((PAYLOAD, s(&proposal_payload(t, expires))));
    fields.push((STATUS, s("pending")));
    let (bucket, change) = raw_post(alice, conv, id, &fields, t);
    lab.accept(alice, &bucket, change).await;
}
