//! The attack cases (docs/POLICY.md) as one table, run by two drivers: the in-memory acceptor
//! (`core::hub::Hub::submit`, in `core/tests/adversarial.rs`) and the real server over a real
//! WebSocket (`tests/tests/attacks.rs`, SQLite and Postgres).
//!
//! A case is an `async fn(&mut impl Lab)`: it builds its preconditions with real, accepted
//! changes, crafts an attack (see [`crate::craft`]) and asks the lab to `reject` it with an
//! exact code. What "rejected" means is the driver's: nothing the acceptor holds may move (the
//! hub: heads, saved bytes, change log, cached conversation, actor binding; the server: the
//! log a fresh reader catches up, the REST projection, `/metrics`, the audit table). Where it
//! is cheap, a twin of the same shape that breaks no rule is `accept`ed, so a suite that
//! rejected everything fails. REST routes that change a posted message are attacked the same
//! way through `Lab::rest` (see [`rest`]): the wire calls the route, the hub runs what it runs.
//!
//! To add a case: write the `async fn` in the `cases_*` file of its topic and add one
//! `case!(name)` line to [`cases`]. Use a conversation id no other case uses (the wire runs
//! every case on one server), and `lab.now()` for every time. Where the two acceptors answer
//! differently, say so in the case with [`PerDriver`] (or `only:` in the table), not in a
//! driver.

mod cases_actors;
mod cases_e2ee;
mod cases_joining;
mod cases_leads;
mod cases_lifecycle;
mod cases_limits;
mod cases_members;
mod cases_messages;
mod cases_ops;
mod cases_ownership;
mod cases_redaction;
mod cases_rest;
mod cases_temporary;
mod cases_threads;
pub mod fixture;
mod hub_lab;
pub mod rest;

use std::future::Future;
use std::pin::Pin;

use confab_core::automerge::{ActorId, Automerge, Change, ChangeHash};
use confab_core::ids::{AccountId, DocId, TenantId};

pub use crate::answer::Answer;
use crate::device::Device;

pub use hub_lab::{run_on_hub, HubLab};
pub use rest::{RestAnswer, RestCall, RestTarget};

/// Which acceptor a lab drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `confab_core::hub::Hub`, in memory, at a fixed server time.
    Hub,
    /// The real `confab-server` binary over a WebSocket, at the real time.
    Wire,
}

/// An expectation that differs between the drivers.
#[derive(Debug, Clone, Copy)]
pub struct PerDriver<T> {
    pub hub: T,
    pub wire: T,
}

impl<T> PerDriver<T> {
    pub fn get(self, driver: Driver) -> T {
        match driver {
            Driver::Hub => self.hub,
            Driver::Wire => self.wire,
        }
    }
}

/// A conversation as the acceptor projects it: the hub's cached conversation, or the REST
/// view its owner reads (pins: from the document a reader catches up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvView {
    pub title: String,
    pub members: Vec<MemberView>,
    pub allow_reactions: bool,
    pub max_subroom_depth: u64,
    pub pins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub account: String,
    pub role: String,
    pub active: bool,
}

impl ConvView {
    pub fn member(&self, account: &str) -> &MemberView {
        self.members
            .iter()
            .find(|m| m.account == account)
            .unwrap_or_else(|| panic!("{account} is not listed: {self:?}"))
    }
}

/// What a case may do with an acceptor. Every method asserts what it says and panics
/// otherwise: a panic is the case's failure. A driver says how to submit and what it holds;
/// what an ack and a rejection must look like is said once, here.
#[allow(async_fn_in_trait)] // Cases run on one thread; no Send bound is wanted.
pub trait Lab {
    /// Everything a rejection must leave untouched of one document (and of an actor).
    type State: PartialEq + std::fmt::Debug;

    fn driver(&self) -> Driver;

    /// The acceptor's clock: every crafted message is created at this time.
    fn now(&self) -> i64;

    /// The acceptor's clock as it is now (`now` stays where the case started; the hub's
    /// clock moves only by `wait_past`).
    fn clock(&self) -> i64;

    /// Returns once the acceptor's clock reached `time` (the hub: moves it there; the wire:
    /// waits) and an acceptor that writes lapses down itself (the wire's server) has written
    /// what lapsed in the conversation `doc` by then, so its write lands before what follows
    /// rather than between a case's two looks at what the acceptor holds.
    async fn wait_past(&mut self, doc: &DocId, time: i64);

    /// What the acceptor holds for `doc` (and the binding of `actor`), to compare.
    async fn state(&mut self, doc: &DocId, actor: &ActorId) -> Self::State;

    /// Submits one change as `dev`: the answer.
    async fn submit(&mut self, dev: &Device, doc: &DocId, change: Change) -> Answer;

    /// Submits byte strings as changes in one go, as `dev`: one answer per entry; each
    /// rejection is recorded (`rejected`).
    async fn submit_raw(&mut self, dev: &Device, doc: &DocId, raw: &[Vec<u8>]) -> Vec<Answer>;

    /// Whether the accepted log of `doc` holds the change.
    async fn holds(&mut self, doc: &DocId, hash: &ChangeHash) -> bool;

    /// Records one rejection this lab caused and checks the acceptor's bookkeeping of it
    /// (the wire: `/metrics` and the audit table).
    async fn rejected(&mut self, dev: &Device, doc: &DocId, code: &str, hash: Option<ChangeHash>);

    /// Brings `dev`'s replica of `doc` up to date.
    async fn pull(&mut self, dev: &mut Device, doc: &DocId);

    /// The accepted document as a reader rebuilds it.
    async fn read(&mut self, doc: &DocId) -> Automerge;

    /// How many changes of `doc` are accepted.
    async fn log_len(&mut self, doc: &DocId) -> usize;

    /// What the acceptor holds of `doc` still saves and loads (no poisoned op numbering).
    async fn sound(&mut self, doc: &DocId);

    /// The conversation of `doc` as the acceptor projects it; `None`: never created.
    async fn conversation(&mut self, doc: &DocId) -> Option<ConvView>;

    /// `dev` may not read `doc` (any more): refused with `code`.
    async fn unreadable(&mut self, dev: &Device, doc: &DocId, code: PerDriver<&str>);

    /// `dev`'s reads of the conversation `doc` outside a subscription are refused with the
    /// policy code `code` (the wire: every REST read of it; the hub: the read rule they apply).
    async fn reads_refused(&mut self, dev: &Device, doc: &DocId, code: &str);

    /// The account `actor` is bound to; `None` where the driver cannot see bindings.
    fn binding(&self, actor: &ActorId) -> Option<Option<AccountId>>;

    /// Registers `device` in the acceptor's MLS directory with its signature key, as its
    /// first key-package upload does (the wire: an upload from a connection as that device).
    async fn register(&mut self, device: &confab_core::e2ee::Device);

    /// Removes `device` from the acceptor's MLS directory, as its account's `remove_device`
    /// does (the wire: a request from a connection of that account).
    async fn unregister(&mut self, device: &confab_core::e2ee::DeviceIdentity);

    /// The MLS devices this lab registered, by identity, as they were then (see
    /// [`registered`]).
    fn kept_devices(&mut self) -> &mut KeptDevices;

    /// `account` of `tenant` (a user token) calls the REST route `call` on `at` (the wire:
    /// over HTTP; the hub: what the route runs, see [`rest`]). A refusal the acceptor made is
    /// recorded (`rejected`) by the driver, which alone can tell it from the read gate's.
    async fn rest(
        &mut self,
        tenant: &TenantId,
        account: &str,
        at: &RestTarget,
        call: &RestCall,
    ) -> RestAnswer;

    /// Submits `change` as `dev`: acked with its hash; then `dev` pulls `doc`. The seq.
    async fn accept(&mut self, dev: &mut Device, doc: &DocId, change: Change) -> u64 {
        let seq = acked(
            &dev.account,
            doc,
            &change,
            self.submit(dev, doc, change.clone()).await,
        );
        self.pull(dev, doc).await;
        seq
    }

    /// Resubmits an accepted change as `dev`: acked again with its seq, nothing moves.
    async fn ack_again(&mut self, dev: &Device, doc: &DocId, change: Change) -> u64 {
        let before = self.state(doc, change.actor_id()).await;
        let seq = acked(
            &dev.account,
            doc,
            &change,
            self.submit(dev, doc, change.clone()).await,
        );
        let after = self.state(doc, change.actor_id()).await;
        assert_eq!(before, after, "{doc}: a resubmission moved it");
        seq
    }

    /// Submits `change` as `dev`: rejected with `code`, the rejection names the change and
    /// has a reason, and nothing the acceptor holds for `doc` moved. The reason.
    async fn reject(&mut self, dev: &Device, doc: &DocId, change: Change, code: &str) -> String {
        refused(self, dev, doc, change, code, false).await
    }

    /// `reject` for a change that is already accepted (so it stays stored).
    async fn reject_resubmission(&mut self, dev: &Device, doc: &DocId, change: Change, code: &str) {
        refused(self, dev, doc, change, code, true).await;
    }
}

/// MLS devices a lab registered, saved as they were when registered.
pub type KeptDevices = std::collections::HashMap<String, Vec<u8>>;

/// `account`'s MLS device `device` of the cases' tenant, registered in the lab's directory:
/// the same signature key on every call in one lab (the wire runs every case on one server,
/// whose directory binds a device to its first key), each call a copy of it with no group.
pub async fn registered<L: Lab + ?Sized>(
    lab: &mut L,
    account: &str,
    device: &str,
) -> confab_core::e2ee::Device {
    use confab_core::e2ee::{Device as Mls, DeviceIdentity};
    let identity = DeviceIdentity::new(
        crate::ids::tenant(),
        crate::ids::acc(account),
        confab_core::ids::DeviceId::new(device).expect("a valid device literal"),
    );
    let key = identity.to_string();
    let saved = match lab.kept_devices().get(&key) {
        Some(saved) => saved.clone(),
        None => {
            let fresh = Mls::new(identity).expect("an MLS device");
            lab.register(&fresh).await;
            let saved = fresh.to_bytes();
            lab.kept_devices().insert(key, saved.clone());
            saved
        }
    };
    Mls::from_bytes(&saved).expect("a saved device loads")
}

/// The seq of an ack naming `change`; panics on anything else.
fn acked(who: &str, doc: &DocId, change: &Change, answer: Answer) -> u64 {
    match answer {
        Answer::Ack { hash, seq } if hash[..] == change.hash().0[..] => seq,
        other => panic!("{who} on {doc}: expected an ack, got {other:?}"),
    }
}

/// Submits `change` and asserts its rejection with `code` and that nothing moved; `stored`:
/// the change is an accepted one (resubmitted), else it must not be in the log.
async fn refused<L: Lab + ?Sized>(
    lab: &mut L,
    dev: &Device,
    doc: &DocId,
    change: Change,
    code: &str,
    stored: bool,
) -> String {
    known(code);
    let hash = change.hash();
    let actor = change.actor_id().clone();
    let before = lab.state(doc, &actor).await;
    let reason = match lab.submit(dev, doc, change).await {
        Answer::Reject {
            hash: named,
            code: got,
            reason,
        } => {
            assert_eq!(
                got, code,
                "{} on {doc}: wrong code; reason: {reason}",
                dev.account
            );
            assert_eq!(
                named.as_deref(),
                Some(&hash.0[..]),
                "the rejection names the change"
            );
            assert!(!reason.is_empty(), "a reason for people");
            reason
        }
        other => panic!(
            "{} on {doc}: expected a reject with {code}, got {other:?}",
            dev.account
        ),
    };
    let after = lab.state(doc, &actor).await;
    assert_eq!(
        before, after,
        "{code} on {doc}: what the acceptor holds moved"
    );
    assert_eq!(
        lab.holds(doc, &hash).await,
        stored,
        "the rejected change in the log"
    );
    lab.rejected(dev, doc, code, Some(hash)).await;
    reason
}

/// A case's future.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// One entry of the table.
pub struct Case<L> {
    pub name: &'static str,
    /// The drivers that run it.
    pub drivers: &'static [Driver],
    pub run: for<'a> fn(&'a mut L) -> CaseFuture<'a>,
}

impl<L> std::fmt::Debug for Case<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("drivers", &self.drivers)
            .finish_non_exhaustive()
    }
}

const BOTH: &[Driver] = &[Driver::Hub, Driver::Wire];

macro_rules! case {
    ($module:ident :: $f:ident) => {
        case!($module::$f, only: BOTH)
    };
    ($module:ident :: $f:ident, only: $drivers:expr) => {
        Case {
            name: stringify!($f),
            drivers: $drivers,
            run: |lab| Box::pin($module::$f(lab)),
        }
    };
}

/// Every attack case, in the order the wire runs them on one server.
pub fn cases<L: Lab>() -> Vec<Case<L>> {
    vec![
        case!(cases_actors::forged_actor_genesis_actor),
        case!(cases_actors::forged_actor_creation_actor),
        case!(cases_actors::actor_bound_to_other),
        case!(cases_actors::seq_gap_and_bad_start_op),
        case!(cases_actors::start_op_below_dependencies_max_op_bad_start_op),
        case!(cases_actors::fresh_key_numbered_below_dependencies_bad_start_op),
        case!(cases_actors::op_numbered_below_the_value_it_replaces_bad_start_op),
        case!(cases_actors::missing_dependency),
        case!(cases_actors::garbage_bytes_malformed_change),
        case!(cases_actors::duplicate_key_and_empty_change),
        case!(cases_members::author_mismatch),
        case!(cases_members::self_promotion_role_too_high),
        case!(cases_members::demoting_the_owner_owner_protected),
        case!(cases_members::removing_the_owner_owner_must_transfer),
        case!(cases_members::member_writing_settings_no_permission),
        case!(cases_members::direct_conversation_third_account_direct_fixed_members),
        case!(cases_members::removed_member_later_message_member_inactive),
        case!(cases_temporary::acting_with_a_lapsed_role_no_permission),
        case!(cases_temporary::extending_ones_own_temporary_role_role_too_high),
        case!(cases_temporary::half_a_temporary_role_invalid_value),
        case!(cases_temporary::a_temporary_moderator_loses_its_rights_when_its_time_comes),
        case!(cases_temporary::writing_down_a_lapse_before_its_time_role_too_high),
        case!(cases_ownership::transfer_by_a_non_owner_owner_only),
        case!(cases_ownership::transfer_to_a_non_member_or_banned_member),
        case!(cases_ownership::the_only_owner_leaving_owner_must_transfer),
        case!(cases_ownership::banning_the_owner_owner_must_transfer),
        case!(cases_ownership::hiding_a_group_direct_only),
        case!(cases_messages::editing_anothers_message_not_author),
        case!(cases_messages::deleting_anothers_reaction_not_own_key),
        case!(cases_redaction::forged_tombstone),
        case!(cases_redaction::incomplete_redaction),
        case!(cases_redaction::claimed_generation),
        case!(cases_messages::moving_anothers_delivery_marker_not_own_key),
        case!(cases_messages::support_stamps_names_and_lead_closure),
        case!(cases_messages::sender_stamps_outside_support_support_only),
        case!(cases_leads::a_raw_message_reopens_an_archived_conversation),
        case!(cases_leads::a_client_reopening_a_closed_thread_new_lead_required),
        case!(cases_leads::a_second_answer_to_a_proposal_proposal_transition),
        case!(cases_messages::subscriber_posting_in_channel_channel_admins_only),
        case!(cases_messages::member_posting_under_admins_only_send_policy),
        case!(cases_messages::reacting_where_reactions_are_off),
        case!(cases_messages::reacting_in_a_bucket_past_the_retention),
        case!(cases_messages::media_where_attachments_are_off),
        case!(cases_messages::thread_deeper_than_max_thread_too_deep),
        case!(cases_messages::proposal_accepted_by_own_author_not_counterparty),
        case!(cases_messages::proposal_answered_after_expiry),
        case!(cases_ops::new_object_smuggling_a_forbidden_write),
        case!(cases_ops::delete_whose_pred_targets_another_users_value),
        case!(cases_ops::put_conflicting_with_existing_value_conflicting_write),
        case!(cases_ops::unknown_keys),
        case!(cases_ops::wrong_types),
        case!(cases_ops::list_text_and_counter_ops_unsupported_op),
        case!(cases_ops::write_into_a_message_that_does_not_exist),
        case!(cases_ops::write_into_a_hidden_object),
        case!(cases_ops::replaying_one_documents_change_into_another),
        case!(cases_limits::oversize_body_too_long),
        case!(cases_limits::oversize_payload_too_long),
        case!(cases_limits::url_fields_refuse_other_schemes_invalid_value),
        case!(cases_limits::too_many_ops_in_one_change),
        case!(cases_limits::scheduled_messages_pending_schedule_too_many),
        case!(cases_limits::full_group_fits_the_conversation_cap),
        case!(cases_limits::reactions_per_member_per_message_too_many_reactions),
        case!(cases_limits::second_creation_already_created),
        case!(cases_limits::resubmitting_anothers_change_needs_read_access),
        case!(cases_lifecycle::posting_in_a_locked_conversation_conversation_locked),
        case!(cases_lifecycle::writing_to_a_deleted_conversation_conversation_deleted),
        case!(cases_lifecycle::posting_in_a_blocked_direct_conversation_blocked),
        case!(cases_joining::asking_to_join_needs_approval_and_a_link_or_open_policy),
        case!(cases_joining::answering_requests_under_admins_only_add_policy),
        case!(cases_joining::withdrawing_a_request_and_asking_again),
        case!(cases_threads::removed_from_parent_writes_in_thread_not_parent_member),
        case!(cases_threads::banned_from_parent_subscribes_to_thread_not_parent_member),
        case!(cases_threads::thread_on_missing_message_parent_message_missing),
        case!(cases_threads::out_of_parent_reads_thread_over_rest_not_parent_member),
        case!(cases_e2ee::encrypted_channel_encryption_not_allowed),
        case!(cases_e2ee::group_in_a_plaintext_conversation_not_encrypted),
        case!(cases_e2ee::commit_for_a_stale_epoch_mls_stale_epoch),
        case!(cases_e2ee::commit_adding_a_non_members_device_mls_adds_non_member),
        case!(cases_e2ee::removal_without_its_commit_mls_commit_required),
        case!(cases_e2ee::removal_leaving_the_device_in_mls_missing_removal),
        case!(cases_e2ee::garbage_commit_mls_malformed),
        case!(cases_e2ee::plaintext_and_replayed_ciphertext_plaintext_in_encrypted),
        case!(cases_e2ee::replayed_sealed_edit_mls_stale_edit),
        case!(cases_e2ee::commit_adding_an_unregistered_device_mls_unknown_device),
        case!(cases_e2ee::leaf_with_another_signature_key_mls_wrong_signature_key),
        case!(cases_e2ee::update_path_changing_the_committers_key_mls_wrong_signature_key),
        case!(cases_e2ee::commit_keeping_a_removed_device_mls_keeps_removed_device),
        case!(cases_e2ee::new_group_of_an_unregistered_device_mls_unknown_device),
        case!(
            cases_e2ee::plaintext_draft_or_schedule_of_an_encrypted_conversation_plaintext_in_encrypted
        ),
        case!(cases_e2ee::blob_hashes_outside_a_sealed_post),
        case!(cases_rest::rest_edit_by_a_non_author_not_author),
        case!(cases_rest::rest_react_by_a_non_member_not_member),
        case!(cases_rest::rest_delete_in_another_tenant_not_found),
        case!(cases_rest::rest_pin_without_the_permission_no_permission),
        case!(cases_rest::rest_edit_in_an_encrypted_conversation_plaintext_in_encrypted),
    ]
}

/// Every reject code the table expects. The drivers refuse any other, so the list is whole;
/// the suites check each against the validator's and the policy's tables.
pub const CODES: &[&str] = &[
    "forged_actor",
    "actor_bound_to_other",
    "seq_gap",
    "bad_start_op",
    "missing_dependency",
    "malformed_change",
    "duplicate_key",
    "empty_change",
    "author_mismatch",
    "role_too_high",
    "owner_protected",
    "no_permission",
    "direct_fixed_members",
    "member_inactive",
    "not_author",
    "message_deleted",
    "forged_tombstone",
    "incomplete_redaction",
    "not_own_key",
    "channel_admins_only",
    "admins_only",
    "reactions_disabled",
    "retention_expired",
    "attachments_disabled",
    "thread_too_deep",
    "not_counterparty",
    "proposal_expired",
    "proposal_transition",
    "invalid_value",
    "immutable_field",
    "unknown_key",
    "conflicting_write",
    "wrong_type",
    "too_long",
    "unsupported_op",
    "message_missing",
    "unknown_object",
    "hidden_object",
    "bucket_mismatch",
    "too_many_ops",
    "too_many_reactions",
    "already_created",
    "not_member",
    "not_owner",
    "conversation_locked",
    "conversation_deleted",
    "blocked",
    "direct_only",
    "join_not_allowed",
    "approval_required",
    "schedule_too_many",
    "sender_mismatch",
    "support_only",
    "outcome_needs_close",
    "new_lead_required",
    "not_parent_member",
    "parent_message_missing",
    "owner_only",
    "target_not_member",
    "target_inactive",
    "owner_must_transfer",
    "encryption_not_allowed",
    "not_encrypted",
    "mls_group_exists",
    "mls_commit_required",
    "mls_stale_epoch",
    "mls_adds_non_member",
    "mls_missing_removal",
    "mls_malformed",
    "plaintext_in_encrypted",
    "mls_wrong_aad",
    "mls_stale_edit",
    "mls_unknown_device",
    "mls_wrong_signature_key",
    "mls_wrong_identity",
    "mls_keeps_removed_device",
];

/// Panics unless `code` is in [`CODES`].
pub fn known(code: &str) {
    assert!(
        CODES.contains(&code),
        "{code} is not in the attack table's CODES"
    );
}
