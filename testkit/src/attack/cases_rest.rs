//! What a service or bot does to a posted message over REST (edit, delete for everyone,
//! react, pin): refused with the wire's codes, because the route's change goes through the
//! same acceptor (see [`super::rest`]).

use confab_core::doc::read;
use confab_core::doc::write;
use confab_core::ids::TenantId;
use confab_core::model::message::{sealed_aad, NewMessage, SealedContent};

use super::fixture::fixture;
use super::rest::{rest_answers, RestAnswer, RestCall, RestTarget};
use super::Lab;
use crate::ids::{acc, tenant};

fn refused(code: &str) -> RestAnswer {
    RestAnswer::Refused(code.to_owned())
}

/// bob edits alice's message: `not_author`; so is bob deleting it (a member has no delete
/// rights). alice's own edit is taken.
pub async fn rest_edit_by_a_non_author_not_author(lab: &mut impl Lab) {
    let f = fixture(lab, "rest1").await;
    let m1 = RestTarget::new(&f.bucket, "m1");
    let edit = RestCall::Edit("edited by bob".into());
    rest_answers(lab, &tenant(), "bob", &m1, edit, refused("not_author")).await;
    rest_answers(
        lab,
        &tenant(),
        "bob",
        &m1,
        RestCall::Delete,
        refused("not_author"),
    )
    .await;
    // Twin: the author edits.
    let edit = RestCall::Edit("edited".into());
    rest_answers(lab, &tenant(), "alice", &m1, edit, RestAnswer::Done).await;
    let m = read::read_messages(&lab.read(&f.bucket).await);
    assert_eq!(m[0].body, "edited");
}

/// erin, no member, reacts and takes a reaction back: `not_member`, nothing written. bob
/// reacts (twice: the second changes nothing) and takes it back.
pub async fn rest_react_by_a_non_member_not_member(lab: &mut impl Lab) {
    let f = fixture(lab, "rest2").await;
    let m1 = RestTarget::new(&f.bucket, "m1");
    let thumbs = |on| RestCall::React("👍".into(), on);
    for on in [true, false] {
        rest_answers(
            lab,
            &tenant(),
            "erin",
            &m1,
            thumbs(on),
            refused("not_member"),
        )
        .await;
    }
    rest_answers(lab, &tenant(), "bob", &m1, thumbs(true), RestAnswer::Done).await;
    let written = lab.log_len(&f.bucket).await;
    rest_answers(lab, &tenant(), "bob", &m1, thumbs(true), RestAnswer::Done).await;
    assert_eq!(
        lab.log_len(&f.bucket).await,
        written,
        "reacting again writes nothing"
    );
    let m = read::read_messages(&lab.read(&f.bucket).await);
    assert_eq!(
        m[0].reactions["👍"].keys().collect::<Vec<_>>(),
        vec![&acc("bob")]
    );
    rest_answers(lab, &tenant(), "bob", &m1, thumbs(false), RestAnswer::Done).await;
    let m = read::read_messages(&lab.read(&f.bucket).await);
    assert!(m[0].reactions.is_empty(), "{:?}", m[0].reactions);
}

/// mallory of tenant "evil" deletes acme's message under its conversation's id: there is
/// no such conversation in evil, and acme's stays whole. dave (an admin: delete rights)
/// deletes it; after that an edit and a second deletion are `message_deleted`.
pub async fn rest_delete_in_another_tenant_not_found(lab: &mut impl Lab) {
    let f = fixture(lab, "rest3").await;
    let m1 = RestTarget::new(&f.bucket, "m1");
    let evil = TenantId::new("evil").expect("a tenant");
    for account in ["mallory", "alice"] {
        rest_answers(
            lab,
            &evil,
            account,
            &m1,
            RestCall::Delete,
            RestAnswer::NotFound,
        )
        .await;
    }
    rest_answers(
        lab,
        &tenant(),
        "dave",
        &m1,
        RestCall::Delete,
        RestAnswer::Done,
    )
    .await;
    let m = read::read_messages(&lab.read(&f.bucket).await);
    assert!(m[0].deleted_at.is_some() && m[0].body.is_empty(), "{m:?}");
    let edit = RestCall::Edit("back".into());
    rest_answers(
        lab,
        &tenant(),
        "alice",
        &m1,
        edit,
        refused("message_deleted"),
    )
    .await;
    rest_answers(
        lab,
        &tenant(),
        "alice",
        &m1,
        RestCall::Delete,
        refused("message_deleted"),
    )
    .await;
}

/// bob (a member: no pin permission) pins and unpins: `no_permission`; erin, no member:
/// `not_member`. alice pins (twice: the pin keeps its pinner) and unpins.
pub async fn rest_pin_without_the_permission_no_permission(lab: &mut impl Lab) {
    let f = fixture(lab, "rest4").await;
    let m1 = RestTarget::new(&f.bucket, "m1");
    for on in [true, false] {
        let pin = RestCall::Pin(on);
        rest_answers(
            lab,
            &tenant(),
            "bob",
            &m1,
            pin.clone(),
            refused("no_permission"),
        )
        .await;
        rest_answers(lab, &tenant(), "erin", &m1, pin, refused("not_member")).await;
    }
    rest_answers(
        lab,
        &tenant(),
        "alice",
        &m1,
        RestCall::Pin(true),
        RestAnswer::Done,
    )
    .await;
    let written = lab.log_len(&f.cd).await;
    rest_answers(
        lab,
        &tenant(),
        "alice",
        &m1,
        RestCall::Pin(true),
        RestAnswer::Done,
    )
    .await;
    assert_eq!(
        lab.log_len(&f.cd).await,
        written,
        "pinning again writes nothing"
    );
    let view = lab.conversation(&f.cd).await.expect("the conversation");
    assert_eq!(view.pins, vec!["m1".to_owned()]);
    rest_answers(
        lab,
        &tenant(),
        "alice",
        &m1,
        RestCall::Pin(false),
        RestAnswer::Done,
    )
    .await;
    let view = lab.conversation(&f.cd).await.expect("the conversation");
    assert!(view.pins.is_empty(), "{view:?}");
}

/// An encrypted conversation: the server cannot seal, so an edit over REST, in the clear,
/// is `plaintext_in_encrypted`, even by the author. Reactions and deletion carry nothing in
/// the clear: they are taken, as on the wire.
pub async fn rest_edit_in_an_encrypted_conversation_plaintext_in_encrypted(lab: &mut impl Lab) {
    let mut f = super::cases_e2ee::encrypted(lab, "rest5").await;
    let now = lab.now();
    let bucket = crate::ids::bucket_doc(&f.conv, now);
    let id = crate::ids::msg_id("s1");
    let content = SealedContent {
        body: "sealed".into(),
        ..SealedContent::default()
    };
    let mut m = NewMessage::text(id.clone(), acc("alice"), "", now);
    m.sealed = Some(
        f.alice_mls
            .encrypt(&f.group, &sealed_aad(&id, None), &content.to_bytes())
            .expect("sealed"),
    );
    let change = f
        .alice
        .clone()
        .write(&bucket, |d, t| write::post_message(d, t, &m))
        .expect("the message writes");
    lab.accept(&mut f.alice, &bucket, change).await;
    let s1 = RestTarget::new(&bucket, "s1");
    let edit = RestCall::Edit("in the clear".into());
    rest_answers(
        lab,
        &tenant(),
        "alice",
        &s1,
        edit,
        refused("plaintext_in_encrypted"),
    )
    .await;
    let react = RestCall::React("👍".into(), true);
    rest_answers(lab, &tenant(), "bob", &s1, react, RestAnswer::Done).await;
    rest_answers(
        lab,
        &tenant(),
        "alice",
        &s1,
        RestCall::Delete,
        RestAnswer::Done,
    )
    .await;
}
