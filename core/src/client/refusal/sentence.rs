//! One sentence per code. Every arm names the person and the place where it can; none
//! shows a code or an id that a name could replace.

use crate::model::conversation::{MemberStatus, Role};
use crate::model::schedule::SCHEDULE_MAX_PENDING;
use crate::policy::DenyCode as D;
use crate::protocol::ErrorCode as E;
use crate::validate::RejectCode as R;

use super::{Code, LocalCode as L, Scene};

pub(crate) fn sentence(code: Code, s: &Scene) -> String {
    match code {
        Code::Reject(R::Policy(deny)) => policy(deny, s),
        Code::Reject(reject) => validation(reject, s),
        Code::Server(error) => server(error, s),
        Code::Local(local) => local_sentence(local, s),
    }
}

/// A code this build does not know (a newer server).
pub(crate) fn unknown(s: &Scene) -> String {
    format!(
        "The server refused to let you {} in {}",
        s.action.doing, s.place
    )
}

fn policy(code: D, s: &Scene) -> String {
    let place = &s.place;
    let doing = &s.action.doing;
    let who = s.target.as_deref().unwrap_or("This member");
    match code {
        D::NotCreated => format!("{place} does not exist yet"),
        D::AlreadyCreated => format!("{place} exists already"),
        D::InvalidCreation => {
            format!("{place} cannot be created this way: its members or settings break a rule")
        }
        D::NotMember => format!("You are not a member of {place}"),
        D::MemberInactive => inactive(s),
        D::NoPermission => match s.my_role {
            Some(role) => format!("Your role ({}) may not {doing} in {place}", role.as_str()),
            None => format!("You may not {doing} in {place}"),
        },
        D::RoleTooHigh => match (s.target_role, s.my_role) {
            (Some(theirs), Some(mine)) if theirs.rank() >= mine.rank() && s.target.is_some() => {
                format!(
                    "You cannot {doing}: their role ({}) is not below yours ({})",
                    theirs.as_str(),
                    mine.as_str()
                )
            }
            // The rule of `policy::may_grant_on_add`: one's own role only up to member.
            (_, Some(mine)) if mine.rank() <= Role::Member.rank() => format!(
                "You can give at most your own role ({}) in {place}",
                mine.as_str()
            ),
            (_, Some(mine)) => format!(
                "You can only give roles below your own ({}) in {place}",
                mine.as_str()
            ),
            _ => format!("You cannot {doing}: nobody changes a role at or above their own"),
        },
        D::OwnerProtected => format!("{who} owns {place} and cannot be demoted or restricted"),
        D::OwnerOnly => format!("Only the owner of {place} can make someone else the owner"),
        D::TargetNotMember => {
            format!("{who} is not a member of {place}: only a member can become its owner")
        }
        D::TargetInactive => format!(
            "{who} is no longer a member of {place}: only an active member can become its owner"
        ),
        D::OwnerMustTransfer => match s.action.kind {
            "remove_member" => format!(
                "{who} owns {place}: the owner can be removed only after making another member the owner"
            ),
            "leave" => format!(
                "You are the only owner of {place}: make another member the owner before you leave"
            ),
            _ => format!(
                "You are the only owner of {place}: make another member the owner first"
            ),
        },
        D::AuthorMismatch => "Messages can only be sent in your own name".to_owned(),
        D::NotAuthor => "Only the author of this message can do that".to_owned(),
        D::NotOwnKey => "You can only change your own reactions and read markers".to_owned(),
        D::DirectFixedMembers => {
            "A direct chat always has exactly its two people: nobody can be added or removed"
                .to_owned()
        }
        D::GroupFull => format!("{place} is full: a group has at most 1000 members"),
        D::ChannelAdminsOnly => format!("Only admins post in {place}"),
        D::AdminsOnly => format!("Only admins can post in {place} right now"),
        D::ReactionsDisabled => format!("Reactions are turned off in {place}"),
        D::AttachmentsDisabled => format!("Attachments are turned off in {place}"),
        D::StickersDisabled => format!("Stickers are turned off in {place}"),
        D::ThreadTooDeep => format!("Threads in {place} cannot go this deep"),
        D::SubroomForbidden => match s.my_role {
            Some(role) => format!(
                "Your role ({}) may not start threads in {place}",
                role.as_str()
            ),
            None => format!("You may not start threads in {place}"),
        },
        D::ServiceOnly => "Only the system can post system messages".to_owned(),
        D::NotCounterparty => "Only the other party can answer this proposal".to_owned(),
        D::ProposalExpired => {
            "This proposal expired before your answer reached the server".to_owned()
        }
        D::ProposalTransition => "This proposal has been answered already".to_owned(),
        D::ConversationClosed => format!("{place} is closed"),
        D::BucketMismatch | D::ClockAhead => {
            "Your device's clock is ahead of the server's: check its date and time".to_owned()
        }
        D::SlowMode => match s.slow_mode_seconds.filter(|n| *n > 0) {
            Some(n) => format!("Slow mode is on in {place}: wait {n} seconds between messages"),
            None => format!("Slow mode is on in {place}: wait a little before posting again"),
        },
        D::RetentionExpired => format!("This message is older than {place} keeps messages"),
        D::MessageMissing => format!("That message is no longer in {place}"),
        D::NotParentMember => format!(
            "You are no longer in the conversation {place} belongs to, so you cannot {doing} in it"
        ),
        D::ParentMessageMissing => {
            "The message this thread would answer is gone: it was deleted or never arrived".to_owned()
        }
        // The engine moves the message itself; these are seen only after many moves.
        D::BucketFull | D::BucketNotOpen => {
            format!("{place} is very busy: your message could not be placed, try again")
        }
        D::MessageDeleted => "That message was deleted".to_owned(),
        D::IncompleteRedaction => {
            "That deletion did not remove the whole message: nothing was deleted".to_owned()
        }
        D::ForgedTombstone => "A deletion names the account that makes it".to_owned(),
        D::NotOwner => {
            "Only the account itself can change its profile and private settings".to_owned()
        }
        D::JoinNotAllowed => {
            format!("You cannot join {place} by yourself: a member has to add you")
        }
        D::ImmutableField => "This is set once and can never be changed".to_owned(),
        D::PinsFull => format!("{place} has too many pinned messages: unpin one first"),
        D::TooManyReactions => {
            "You can leave at most 20 different reactions on one message".to_owned()
        }
        D::ConversationLocked => format!("{place} is locked: an admin has to unlock it first"),
        D::ConversationDeleted => format!("{place} was deleted by its owner"),
        D::Blocked => {
            format!("{place} is blocked: nothing new can be posted until it is unblocked")
        }
        D::DirectOnly => {
            "Only a direct chat can be blocked or hidden: a group you leave instead".to_owned()
        }
        D::ApprovalRequired => format!("{place} reviews new members: ask to join instead"),
        D::LinksDisabled => {
            format!("{place} does not take invite links: it is not set to join by link")
        }
        D::SenderMismatch => format!(
            "Your message in {place} says it comes from someone else (another role, name or lead)"
        ),
        D::SupportOnly => format!("{place} is not a support thread: this is for support threads"),
        D::OutcomeNeedsClose => format!("A lead outcome is set when {place} is closed"),
        D::NewLeadRequired => format!(
            "{place} was closed: write a new message there to open a new request"
        ),
        D::EncryptionNotAllowed => "Channels are not end-to-end encrypted".to_owned(),
        D::NotEncrypted => format!("{place} is not end-to-end encrypted"),
        D::MlsGroupExists | D::MlsNoGroup => {
            format!("{place}'s encryption moved on meanwhile: try again")
        }
        D::PlaintextInEncrypted => {
            format!("{place} is end-to-end encrypted: this message must be encrypted on this device first")
        }
        D::MlsCommitRequired => {
            format!("Removing {who} from {place} needs this device to update the encryption too")
        }
        D::RequestsFull => {
            format!("{place} has too many requests waiting for an answer: try again later")
        }
        D::ScheduleTooMany => format!(
            "You have {SCHEDULE_MAX_PENDING} scheduled messages waiting: cancel one or wait until one is sent"
        ),
    }
}

/// `member_inactive`: about me when I am not active (or not known to be), else about the
/// member the action names.
fn inactive(s: &Scene) -> String {
    let place = &s.place;
    match (s.my_status, s.target.as_deref(), s.target_status) {
        (Some(MemberStatus::Removed), ..) => format!("You were removed from {place}"),
        (Some(MemberStatus::Banned), ..) => format!("You were banned from {place}"),
        (Some(MemberStatus::Left), ..) => format!("You left {place}"),
        (Some(MemberStatus::Active), Some(who), Some(status)) if status != MemberStatus::Active => {
            format!("{who} is no longer a member of {place}")
        }
        // The removal has not reached this device yet: the server knows better.
        _ => format!("You are no longer a member of {place}"),
    }
}

fn validation(code: R, s: &Scene) -> String {
    let place = &s.place;
    let what = &s.action.what;
    match code {
        R::Malformed => format!("{what} could not be read by the server, so it was not delivered"),
        R::ForgedActor | R::ActorBoundToOther => {
            "This device's identity belongs to someone else: sign out and in again".to_owned()
        }
        R::SeqGap | R::BadStartOp => {
            format!("{what} reached the server out of order with your earlier changes")
        }
        R::MissingDependency => {
            format!("{what} depended on an earlier change of yours that the server never got")
        }
        R::EmptyChange | R::NotApplicable => "There was nothing to change".to_owned(),
        R::UnknownObject => format!("{what} refers to something {place} does not have"),
        R::HiddenObject => {
            format!("{what} changes something in {place} that was deleted or replaced meanwhile")
        }
        R::UnsupportedOp | R::UnknownKey | R::WrongType | R::DuplicateKey => {
            format!("{what} was written in a form the server does not accept (this app may be out of date)")
        }
        R::InvalidValue => format!("{what} holds a value in the wrong format"),
        R::TooLong => format!("{what} is too long"),
        R::ConflictingWrite => {
            format!("Someone else changed the same thing in {place} at the same time: try again")
        }
        R::TooManyOps => format!("{what} is too big to save in one step"),
        R::Mls(_) => format!("{what} did not fit {place}'s end-to-end encryption"),
        // Handled by `policy`; kept total so a new arm cannot be forgotten.
        R::Policy(deny) => policy(deny, s),
    }
}

fn server(code: E, s: &Scene) -> String {
    let place = &s.place;
    let what = &s.action.what;
    match code {
        E::BadFrame => format!("{what} could not be read by the server"),
        E::FrameTooLarge | E::SignalTooLarge | E::TooManyChanges => {
            format!("{what} is too large to send")
        }
        E::UnsupportedVersion => "This app is too old for the server: reload the page".to_owned(),
        E::Unauthenticated | E::AuthFailed | E::TokenExpired => {
            "You are signed out: sign in again".to_owned()
        }
        E::WrongTenant => format!("{place} belongs to another organisation"),
        E::AlreadyAuthenticated | E::AlreadyFollowing => {
            "The connection got confused: it will reconnect by itself".to_owned()
        }
        E::InvalidDoc => format!("The server does not know {place}"),
        E::Forbidden => format!("You no longer have access to {place}"),
        E::BucketExpired => format!("These messages are older than {place} keeps messages"),
        E::TooManySubscriptions => "Too many conversations are open at once".to_owned(),
        E::RateLimited => "You are sending too fast: wait a moment".to_owned(),
        E::TooManyConnections | E::Internal | E::Unavailable | E::ShuttingDown | E::Lagging => {
            "The server could not take it right now: it will be sent again".to_owned()
        }
        // The directory of devices and key packages (end-to-end encryption).
        E::InvalidId
        | E::TooManyKeyPackages
        | E::KeyPackagesFull
        | E::TooManyAccounts
        | E::SignatureKeyMismatch
        | E::KeyPackageReused
        | E::DeviceRemoved
        | E::UnknownDevice => "This device's encryption keys were not accepted".to_owned(),
    }
}

fn local_sentence(code: L, s: &Scene) -> String {
    match code {
        L::Corrupt => format!("What this device stored about {} is damaged", s.place),
        L::Storage => "This device's storage failed (it may be full)".to_owned(),
        L::BadLoadAnswer => "This device's storage answered wrongly".to_owned(),
        L::ForwardOutOfEncrypted => format!(
            "A message of an end-to-end encrypted conversation cannot be forwarded into {}, \
             which is not encrypted",
            s.place
        ),
    }
}
