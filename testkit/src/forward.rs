//! A forward as a host writes it: a new message carrying the original's body and where it
//! came from (`forwarded_from`).

use confab_core::client::Intent;
use confab_core::ids::{AccountId, ConvId, MessageId};
use confab_core::model::message::{ForwardedFrom, NewMessage};

/// `author`'s forward of message `message` of `from` into `to`, as message `id` with `body`.
pub fn forward(
    (from, message): (&ConvId, &str),
    to: &ConvId,
    (id, author): (&str, &str),
    body: impl Into<String>,
    at: i64,
) -> Intent {
    let author = AccountId::new(author).expect("a valid account id");
    let mut copy = NewMessage::text(MessageId::new(id).expect("a valid id"), author, body, at);
    copy.forwarded_from = Some(ForwardedFrom {
        conv: from.clone(),
        message: MessageId::new(message).expect("a valid id"),
    });
    Intent::Send {
        conv: to.clone(),
        message: copy,
    }
}
