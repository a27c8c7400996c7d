//! openmls's message-secrets store written in pieces: each kept past epoch's member list and
//! its secrets under keys of their own, written when they change, and the rest (the current
//! epoch's secrets, which change with every message) on every write.
//!
//! openmls hands the whole store to `write_message_secrets` on every encrypt, decrypt and merge:
//! `MessageSecretsStore { max_epochs, past_epoch_trees: [EpochTree { epoch, message_secrets,
//! leaves }], message_secrets }`. An archived epoch's `leaves` (its member list, about a hundred
//! bytes a device) never change, and its `message_secrets` (its secret tree, a byte or more a
//! device) change only when a message of that epoch is read, so writing them again on every
//! message made a message's cost grow with the kept epochs times the group's size.
//!
//! [`split`] runs the value's own `Serialize` through a serializer that follows that shape and
//! hands every other field to postcard, so the body is the value's postcard bytes with a hole
//! where each epoch's `message_secrets` and `leaves` were. A member list is encoded only the
//! first time its epoch is seen; an epoch's secrets are encoded each time and kept only if
//! they differ from the stored ones (`Hole::fresh`). Postcard writes a struct as its fields one
//! after the other, so [`assemble`] rebuilds the exact postcard bytes of the whole value for
//! openmls to read.
//!
//! The shape is openmls's, not a promise: any difference (a renamed field, another order, one
//! epoch twice) makes [`split`] refuse with [`Shape`], and the caller writes the value whole.
//! Tests pin that a real group's store does split and loads back.

use std::fmt;

use serde::ser::{self, Impossible, Serialize, SerializeSeq, SerializeStruct};

const STORE: &str = "MessageSecretsStore";
const TREES: &str = "past_epoch_trees";
const TREE: &str = "EpochTree";
const EPOCH: &str = "epoch";
const SECRETS: &str = "message_secrets";
const LEAVES: &str = "leaves";

/// The value is not shaped as this module expects.
#[derive(Debug)]
pub(super) struct Shape(String);

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message secrets not shaped as expected: {}", self.0)
    }
}

impl std::error::Error for Shape {}

impl ser::Error for Shape {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

fn shape<T>(what: &str) -> Result<T, Shape> {
    Err(Shape(what.into()))
}

/// What of a past epoch a hole stands for.
/// (Its number is how `SPLIT_PIECES` values name it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Piece {
    /// Its member list (`leaves`), which never changes.
    Leaves = 0,
    /// Its secrets (`message_secrets`), which change when a message of it is read.
    Secrets = 1,
}

/// Where a piece of a past epoch goes in the body.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Hole {
    /// Offset in the body.
    pub at: usize,
    pub epoch: u64,
    pub piece: Piece,
    /// Its postcard bytes, if the stored ones were not kept.
    pub fresh: Option<Vec<u8>>,
}

/// A value split: its postcard bytes without the member lists, and the holes, in order.
#[derive(Debug)]
pub(super) struct Split {
    pub body: Vec<u8>,
    pub holes: Vec<Hole>,
}

/// The stored bytes of an epoch's piece, if any.
pub(super) type Stored<'a> = dyn Fn(Piece, u64) -> Option<&'a [u8]> + 'a;

/// Splits `value`; `stored(piece, epoch)` gives that piece as it is stored, if it is: a member
/// list stored is kept as it is, secrets stored are kept if they are the same.
pub(super) fn split<'a>(value: &impl Serialize, stored: &'a Stored<'a>) -> Result<Split, Shape> {
    let mut ctx = Ctx {
        split: Split {
            body: Vec::new(),
            holes: Vec::new(),
        },
        stored,
    };
    value.serialize(Node {
        ctx: &mut ctx,
        role: Role::Store,
    })?;
    let mut epochs: Vec<u64> = ctx
        .split
        .holes
        .iter()
        .filter(|h| h.piece == Piece::Leaves)
        .map(|h| h.epoch)
        .collect();
    epochs.sort_unstable();
    if epochs.windows(2).any(|w| w[0] == w[1]) {
        return shape("an epoch kept twice");
    }
    Ok(ctx.split)
}

/// The postcard bytes of the whole value: `body` with each hole filled by `piece(epoch)`.
pub(super) fn assemble<'a>(
    body: &[u8],
    holes: impl IntoIterator<Item = (usize, &'a [u8])>,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut from = 0;
    for (at, piece) in holes {
        out.extend_from_slice(body.get(from..at)?);
        out.extend_from_slice(piece);
        from = at;
    }
    out.extend_from_slice(body.get(from..)?);
    Some(out)
}

fn append(value: &(impl Serialize + ?Sized), out: &mut Vec<u8>) -> Result<(), Shape> {
    postcard::to_extend(value, std::mem::take(out))
        .map(|written| *out = written)
        .map_err(|e| Shape(e.to_string()))
}

struct Ctx<'s> {
    split: Split,
    stored: &'s Stored<'s>,
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// The `MessageSecretsStore`.
    Store,
    /// Its `past_epoch_trees`.
    Trees,
    /// One `EpochTree`.
    Tree,
}

/// Serializes the levels of the shape above; anything else is not the expected shape.
struct Node<'c, 's> {
    ctx: &'c mut Ctx<'s>,
    role: Role,
}

/// The fields of the store or of one epoch tree.
struct Fields<'c, 's> {
    ctx: &'c mut Ctx<'s>,
    role: Role,
    epoch: Option<u64>,
    seen: usize,
}

/// The epoch trees.
struct Elements<'c, 's> {
    ctx: &'c mut Ctx<'s>,
}

impl SerializeStruct for Fields<'_, '_> {
    type Ok = ();
    type Error = Shape;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Shape> {
        let out = &mut self.ctx.split.body;
        match (self.role, key) {
            (Role::Store, TREES) => {
                self.seen += 1;
                value.serialize(Node {
                    ctx: &mut *self.ctx,
                    role: Role::Trees,
                })
            }
            (Role::Tree, EPOCH) => {
                let at = out.len();
                append(value, out)?;
                let epoch = postcard::from_bytes(&out[at..]).map_err(|e| Shape(e.to_string()))?;
                self.epoch = Some(epoch);
                self.seen += 1;
                Ok(())
            }
            (Role::Tree, LEAVES | SECRETS) => {
                let Some(epoch) = self.epoch else {
                    return shape("a piece before the epoch");
                };
                let piece = if key == LEAVES {
                    Piece::Leaves
                } else {
                    Piece::Secrets
                };
                let fresh = match ((self.ctx.stored)(piece, epoch), piece) {
                    (Some(_), Piece::Leaves) => None,
                    (stored, _) => {
                        let mut bytes = Vec::new();
                        append(value, &mut bytes)?;
                        (stored != Some(&bytes[..])).then_some(bytes)
                    }
                };
                let at = out.len();
                self.ctx.split.holes.push(Hole {
                    at,
                    epoch,
                    piece,
                    fresh,
                });
                self.seen += 1;
                Ok(())
            }
            _ => append(value, out),
        }
    }

    fn end(self) -> Result<(), Shape> {
        match (self.role, self.seen) {
            (Role::Store, 1) | (Role::Tree, 3) => Ok(()),
            _ => shape("a field is missing"),
        }
    }
}

impl SerializeSeq for Elements<'_, '_> {
    type Ok = ();
    type Error = Shape;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Shape> {
        value.serialize(Node {
            ctx: &mut *self.ctx,
            role: Role::Tree,
        })
    }

    fn end(self) -> Result<(), Shape> {
        Ok(())
    }
}

/// The serializer methods of values this shape never has at a level it follows.
macro_rules! not_here {
    ($($method:ident($($arg:ty),*);)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<(), Shape> {
            shape(stringify!($method))
        })*
    };
}

impl<'c, 's> ser::Serializer for Node<'c, 's> {
    type Ok = ();
    type Error = Shape;
    type SerializeSeq = Elements<'c, 's>;
    type SerializeTuple = Impossible<(), Shape>;
    type SerializeTupleStruct = Impossible<(), Shape>;
    type SerializeTupleVariant = Impossible<(), Shape>;
    type SerializeMap = Impossible<(), Shape>;
    type SerializeStruct = Fields<'c, 's>;
    type SerializeStructVariant = Impossible<(), Shape>;

    fn is_human_readable(&self) -> bool {
        // As postcard, which encodes every field this does not follow.
        false
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Fields<'c, 's>, Shape> {
        match (self.role, name) {
            (Role::Store, STORE) | (Role::Tree, TREE) => Ok(Fields {
                ctx: self.ctx,
                role: self.role,
                epoch: None,
                seen: 0,
            }),
            _ => shape(name),
        }
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Elements<'c, 's>, Shape> {
        match (self.role, len) {
            // As postcard starts a sequence: its length, a varint.
            (Role::Trees, Some(len)) => {
                append(&len, &mut self.ctx.split.body)?;
                Ok(Elements { ctx: self.ctx })
            }
            _ => shape("a sequence"),
        }
    }

    not_here! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_str(&str); serialize_bytes(&[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Shape> {
        shape("an option")
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: &T,
    ) -> Result<(), Shape> {
        shape(name)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Shape> {
        shape(name)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Shape> {
        shape("a tuple")
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Shape> {
        shape(name)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Shape> {
        shape(name)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Shape> {
        shape("a map")
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Shape> {
        shape(name)
    }
}
