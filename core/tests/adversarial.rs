//! Adversarial changes (docs/POLICY.md) against the in-memory acceptor. The cases are the
//! attack table of `confab-testkit` (`confab_testkit::attack`), which the wire suite
//! (`tests/tests/attacks.rs`) runs against the real server too: every case is a change crafted
//! with the automerge crate directly and submitted to a `Hub` as a client would. Each must be
//! rejected with its exact code and leave the accepted document, its change log, the cached
//! conversation and the actor bindings exactly as they were; where it is cheap, a twin of the
//! same shape that breaks no rule is accepted, so the suite fails if the hub rejected
//! everything. What only the validator's options can show stays here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use confab_core::automerge::{ActorId, ScalarValue};
use confab_core::doc::schema::keys::*;
use confab_core::hub::Hub;
use confab_core::ids::AccountId;
use confab_core::model::url::UrlRule;
use confab_core::policy::{Author, DenyCode};
use confab_core::validate::{self, Env, RejectCode, Verdict};
use confab_testkit::attack::{cases, run_on_hub, Driver, CODES};
use confab_testkit::craft::raw_put;
use confab_testkit::hub::{group, NOW};
use confab_testkit::ids::{acc, conv_doc};
use confab_testkit::Device;

/// Every case of the table that applies to the hub, each on a fresh hub.
#[test]
fn attack_table_on_the_hub() {
    let table = cases();
    let expected = table
        .iter()
        .filter(|c| c.drivers.contains(&Driver::Hub))
        .count();
    let ran = run_on_hub(table);
    assert_eq!(ran.len(), expected, "every hub case ran");
    assert!(ran.len() >= 40, "the table lost cases: {ran:?}");
}

/// Every code the table expects exists in the validator's or the policy's table, so a
/// renamed code fails here rather than silently in a string comparison.
#[test]
fn expected_codes_are_known_codes() {
    let known: Vec<&str> = RejectCode::VALIDATION
        .iter()
        .map(|c| c.as_str())
        .chain(DenyCode::ALL.iter().map(|c| c.as_str()))
        .chain(confab_core::e2ee::DsRefusal::CODES.iter().copied())
        .collect();
    for code in CODES {
        assert!(known.contains(code), "{code} is not a reject code");
    }
}

/// `http:` is the operator's choice (`Env::urls`); other schemes are refused either way.
#[test]
fn http_urls_only_where_the_operator_allows() {
    let mut hub = Hub::new();
    let mut alice = Device::new("alice", 1);
    let conv = group(&mut hub, "g", &mut alice, &mut []);
    let cd = conv_doc(&conv);
    alice.pull(&hub, &cd);
    let accepted = hub.doc(&cd).unwrap().clone();
    let bindings: HashMap<ActorId, AccountId> =
        HashMap::from([(alice.actor.clone(), acc("alice"))]);
    let author = Author::user(acc("alice"));
    let env = |urls| Env {
        author: &author,
        bindings: &bindings,
        conv: hub.conversation(&conv),
        others: &(),
        now_ms: NOW,
        last_post_ms: None,
        urls,
        parent_standing: None,
        parent_message: None,
        answered: None,
    };
    let avatar = |url: &str| [(AVATAR, ScalarValue::from(url))];
    let http = raw_put(
        &mut alice,
        &cd,
        &[INFO],
        &avatar("http://intranet.local/a.png"),
    );
    let refused = validate::validate(&accepted, &env(UrlRule::HttpsOnly), http.clone())
        .expect_err("https only");
    assert_eq!(refused.code.as_str(), "invalid_value");
    assert!(matches!(
        validate::validate(&accepted, &env(UrlRule::AllowHttp), http),
        Ok(Verdict::Accept(_))
    ));
    let js = raw_put(&mut alice, &cd, &[INFO], &avatar("javascript:x"));
    let refused =
        validate::validate(&accepted, &env(UrlRule::AllowHttp), js).expect_err("never javascript:");
    assert_eq!(refused.code.as_str(), "invalid_value");
}
