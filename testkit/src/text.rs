//! Deterministic chat-like message content for the load generator and the benchmarks:
//! bodies of common words and ULID-like ids, from a seeded xorshift generator.

const WORDS: &[&str] = &[
    "the", "meeting", "is", "moved", "to", "three", "pm", "can", "you", "send", "me", "report",
    "thanks", "see", "tomorrow", "ok", "sounds", "good", "lunch", "at", "noon", "where", "are",
    "we", "with", "draft", "ready", "review", "please", "check", "latest", "version", "call",
    "later", "ship", "it", "today", "on", "my", "way", "great", "news", "and", "of", "for",
];

/// A deterministic pseudo-random generator (xorshift), for bodies and ids.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A chat-like body of exactly `chars` characters.
pub fn body(rng: &mut Rng, chars: usize) -> String {
    let mut s = String::new();
    while s.len() < chars {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
    }
    s.truncate(chars);
    s
}

/// A ULID-like id: 10 characters of millisecond time, 16 random (Crockford base32).
pub fn message_id(rng: &mut Rng, at_ms: i64) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut out = String::with_capacity(26);
    let mut t = at_ms.max(0) as u64;
    let mut time = [0u8; 10];
    for c in time.iter_mut().rev() {
        *c = ALPHABET[(t % 32) as usize];
        t /= 32;
    }
    out.extend(time.iter().map(|&b| b as char));
    let mut r = rng.next();
    for i in 0..16 {
        if i == 12 {
            r = rng.next();
        }
        out.push(ALPHABET[(r % 32) as usize] as char);
        r /= 32;
    }
    out
}
