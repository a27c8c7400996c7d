//! WebSocket frames as the server writes them (RFC 6455, server to client: unmasked, one
//! fragment), encoded once and written as they are by whoever sends them.

use axum::body::Bytes;

/// A binary WebSocket frame (server to client: unmasked, one fragment) holding `payload`.
pub fn binary_frame(payload: &[u8]) -> Bytes {
    frame(0x2, payload)
}

/// A close frame with `code` and `reason` (cut to the 123 bytes a control frame allows).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(0x8, &payload)
}

/// A ping frame (the outlet's read confirmations, see [`super::outlet`]).
pub fn ping_frame(payload: &[u8]) -> Bytes {
    frame(0x9, payload)
}

fn frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_rfc6455_headers() {
        assert_eq!(&binary_frame(&[7; 125])[..2], &[0x82, 125]);
        assert_eq!(&binary_frame(&[7; 126])[..4], &[0x82, 126, 0, 126]);
        assert_eq!(&binary_frame(&[7; 65535])[..4], &[0x82, 126, 0xff, 0xff]);
        assert_eq!(
            &binary_frame(&[7; 65536])[..10],
            &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
        assert_eq!(binary_frame(&[7; 65536]).len(), 65536 + 10);
        assert_eq!(
            &close_frame(1001, "bye")[..],
            &[0x88, 5, 0x03, 0xe9, b'b', b'y', b'e']
        );
        // A control frame holds at most 125 bytes; a reason is cut on a character boundary.
        let long = "é".repeat(100);
        let close = close_frame(1008, &long);
        assert_eq!(close[1] as usize, close.len() - 2);
        assert!(close.len() - 2 <= 125);
        assert!(std::str::from_utf8(&close[4..]).is_ok());
    }
}
