pub mod account;
pub mod attachment;
pub mod contact;
pub mod conversation;
pub mod message;
pub mod proposal;
pub mod time;
pub mod url;
