//! Every size limit of the domain, in one place (docs/SCHEMA.md lists them per field).

/// Profile bio.
pub const BIO_MAX_CHARS: usize = 160;
/// Profile status text ("🍵 Working").
pub const STATUS_MAX_CHARS: usize = 80;
/// Display names.
pub const DISPLAY_NAME_MAX_CHARS: usize = 120;
/// Message body.
pub const BODY_MAX_CHARS: usize = 4000;
/// Message payload JSON.
pub const PAYLOAD_MAX_BYTES: usize = 8000;
/// Media caption.
pub const CAPTION_MAX_CHARS: usize = 1024;
/// Conversation title (a support thread's is its resource's title).
pub const TITLE_MAX_CHARS: usize = 200;
/// Conversation description.
pub const DESCRIPTION_MAX_CHARS: usize = 2000;
/// URLs (avatars, backgrounds, attachment references).
pub const URL_MAX_CHARS: usize = 2048;
/// Ids of accounts, conversations, messages, resources.
pub const ID_MAX_CHARS: usize = 64;
/// Tenant ids.
pub const TENANT_MAX_CHARS: usize = 64;
/// Members of a group.
pub const GROUP_MAX_MEMBERS: usize = 1000;
/// Unanswered join requests one conversation holds (`requests_full`): strangers cannot grow
/// a conversation document, which every member syncs, without bound.
pub const JOIN_REQUESTS_MAX: usize = 500;
/// Mentions in one message.
pub const MENTIONS_MAX: usize = 100;
/// Attachments in one message.
pub const ATTACHMENTS_MAX: usize = 20;
/// One reaction (an emoji or short code).
pub const REACTION_MAX_BYTES: usize = 32;
/// Per-member nickname (a member's display name in one conversation).
pub const NICKNAME_MAX_CHARS: usize = 120;
/// Contact nickname.
pub const CONTACT_NICKNAME_MAX_CHARS: usize = 120;
/// Email addresses (RFC 5321 path limit).
pub const EMAIL_MAX_CHARS: usize = 254;
/// Proposal comment.
pub const COMMENT_MAX_CHARS: usize = 1000;
/// Suggested slots in one proposal response.
pub const SUGGESTED_SLOTS_MAX: usize = 10;
/// Drafts in the private document.
pub const DRAFT_MAX_CHARS: usize = BODY_MAX_CHARS;
/// Pinned messages in one conversation.
pub const PINS_MAX: usize = 100;
/// Deepest sub-room nesting a conversation may configure; also the default.
pub const SUBROOM_DEPTH_MAX: u32 = 8;
/// Longest slow mode.
pub const SLOW_MODE_MAX_SECONDS: u32 = 24 * 3600;
/// Longest retention.
pub const RETENTION_MAX_DAYS: u32 = 36_500;
/// How far ahead of server time a message's client clock may be (ms).
pub const MAX_CLOCK_AHEAD_MS: i64 = 3600 * 1000;
/// Preview length of the last message: its first characters.
pub const PREVIEW_CHARS: usize = 100;
/// Ops in one change to a message bucket, a profile or a private document. One intent is one
/// change: a message with every field is under 20 ops, a reaction or a preference one or two.
pub const CHANGE_MAX_OPS: usize = 128;
/// Ops in one change to a conversation document: room for creating a full group at once
/// (every member with every field and permission override is 16 ops).
pub const CONV_CHANGE_MAX_OPS: usize = 16_384;
/// Different reactions (emoji) one member keeps on one message.
pub const REACTIONS_PER_MEMBER_MAX: usize = 20;

// A whole group's creation change must fit (member map, 8 fields, 7 overrides each; meta,
// info and settings besides).
const _: () = assert!(CONV_CHANGE_MAX_OPS >= GROUP_MAX_MEMBERS * 16 + 64);
/// Messages a writer puts in one bucket part before it moves to the next part of the
/// period (docs/FEATURES.md, "Bounded buckets").
pub const BUCKET_TARGET_MESSAGES: usize = 1000;
/// Messages one bucket part holds at most: a post beyond is refused `bucket_full` (writers
/// that did not know the part was full move on). Twice the target leaves room for devices
/// that wrote to the same part offline.
pub const BUCKET_MAX_MESSAGES: usize = 2 * BUCKET_TARGET_MESSAGES;
/// Messages the previous part must hold before a post may open the next one (refused
/// `bucket_not_open` otherwise), so nobody splits a period into thousands of tiny parts.
pub const BUCKET_OPENS_NEXT_AT: usize = BUCKET_TARGET_MESSAGES / 2;
