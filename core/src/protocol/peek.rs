//! Looking at a client frame without decoding it: is it a submit, and to which document?
//! Lets a server refuse a submit it will not take (over budget) for the price of reading
//! a few header bytes instead of the whole frame and its changes.

/// The document of a submit frame, read from its first two map entries (`t` and `doc`, in
/// the order `encode_client` writes them). `None` when the frame is not a submit or its
/// entries come in another order (then the frame is decoded as usual). Never panics.
pub fn submit_doc(bytes: &[u8]) -> Option<&str> {
    let mut r = Reader { bytes, at: 0 };
    let entries = match r.byte()? {
        // A map of 0..=23 entries, 1- or 2-byte counts, or indefinite length.
        b @ 0xa0..=0xb7 => u64::from(b - 0xa0),
        0xb8 => u64::from(r.byte()?),
        0xb9 => u64::from(u16::from_be_bytes([r.byte()?, r.byte()?])),
        0xbf => u64::MAX,
        _ => return None,
    };
    if entries < 2 {
        return None;
    }
    if r.text()? != "t" || r.text()? != "submit" || r.text()? != "doc" {
        return None;
    }
    r.text()
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// A definite-length text string (what `encode_client` writes).
    fn text(&mut self) -> Option<&'a str> {
        let len = match self.byte()? {
            b @ 0x60..=0x77 => usize::from(b - 0x60),
            0x78 => usize::from(self.byte()?),
            0x79 => usize::from(u16::from_be_bytes([self.byte()?, self.byte()?])),
            _ => return None,
        };
        let end = self.at.checked_add(len)?;
        let text = std::str::from_utf8(self.bytes.get(self.at..end)?).ok()?;
        self.at = end;
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode_client, ClientFrame};
    use serde_bytes::ByteBuf;

    #[test]
    fn finds_the_document_of_a_submit_and_nothing_else() {
        let long_doc = format!("acme/msgs/{}/123", "c".repeat(300));
        for doc in ["acme/conv/c1", long_doc.as_str()] {
            let submit = encode_client(&ClientFrame::Submit {
                doc: doc.into(),
                changes: vec![ByteBuf::from(vec![1, 2, 3]); 3],
            });
            assert_eq!(submit_doc(&submit), Some(doc));
        }
        let subscribe = encode_client(&ClientFrame::Subscribe {
            doc: "acme/conv/c1".into(),
            after: 0,
        });
        assert_eq!(submit_doc(&subscribe), None);
        let ping = encode_client(&ClientFrame::Ping { nonce: 1 });
        assert_eq!(submit_doc(&ping), None);
    }

    #[test]
    fn garbage_and_truncated_frames_are_not_submits() {
        let submit = encode_client(&ClientFrame::Submit {
            doc: "acme/conv/c1".into(),
            changes: vec![],
        });
        for len in 0..submit.len() {
            let cut = &submit[..len];
            // A cut inside the doc id is not a submit; one after it may be (the rest is
            // decoded later anyway).
            if let Some(doc) = submit_doc(cut) {
                assert_eq!(doc, "acme/conv/c1");
            }
        }
        assert_eq!(submit_doc(&[0xff, 0x00, 0x13]), None);
        assert_eq!(submit_doc(&[0xbf, 0x61, b't', 0x7f]), None);
    }
}
