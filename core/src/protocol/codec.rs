//! Binary encoding of frames: one CBOR (RFC 8949) map per WebSocket binary message.

use super::errors::ProtocolError;
use super::frames::{ClientFrame, ServerFrame};

fn encode<T: serde::Serialize>(frame: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // Writing into a Vec cannot fail and our frames always serialize.
    if ciborium::ser::into_writer(frame, &mut out).is_err() {
        out.clear();
    }
    out
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, ProtocolError> {
    if bytes.len() > max {
        return Err(ProtocolError::FrameTooLarge {
            len: bytes.len(),
            max,
        });
    }
    // The recursion limit keeps hostile nesting from exhausting the stack.
    let mut rest = bytes;
    let frame = ciborium::de::from_reader_with_recursion_limit(&mut rest, 32)
        .map_err(|e| ProtocolError::BadFrame(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ProtocolError::BadFrame(format!(
            "{} bytes after the frame",
            rest.len()
        )));
    }
    Ok(frame)
}

pub fn encode_client(frame: &ClientFrame) -> Vec<u8> {
    encode(frame)
}

pub fn encode_server(frame: &ServerFrame) -> Vec<u8> {
    encode(frame)
}

/// Decodes a client frame of at most `max` bytes. Never panics.
pub fn decode_client(bytes: &[u8], max: usize) -> Result<ClientFrame, ProtocolError> {
    decode(bytes, max)
}

/// Decodes a server frame of at most `max` bytes. Never panics.
pub fn decode_server(bytes: &[u8], max: usize) -> Result<ServerFrame, ProtocolError> {
    decode(bytes, max)
}
