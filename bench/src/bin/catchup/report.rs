//! What the catch-up runs come to: the table and the verdicts against the targets.

use super::Args;

/// An encrypted catch-up may take at most this many times the plaintext one.
const ENCRYPTED_TARGET_RATIO: f64 = 2.0;
/// The time target for 10,000 missed messages in one conversation.
const TARGET_MS: f64 = 150.0;
/// The target for a phone back after a week: 50 conversations, 500 missed each.
const WEEK_TARGET_MS: f64 = 1_000.0;
/// 1 MB per 10,000 missed messages.
const TARGET_BYTES_PER_MESSAGE: u64 = 100;

/// The time target: one conversation, or many after a week away.
pub fn target_ms(conversations: usize) -> f64 {
    if conversations > 1 {
        WEEK_TARGET_MS
    } else {
        TARGET_MS
    }
}

pub fn target_bytes(missed: usize) -> u64 {
    TARGET_BYTES_PER_MESSAGE * missed as u64
}

/// The table, and the verdicts: the time and bytes targets on the plaintext runs, the
/// encrypted runs against the plaintext run of the same backend.
pub fn summary(args: &Args, rows: &[serde_json::Value]) {
    let get = |row: &serde_json::Value, k: &str| match row.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    println!();
    println!(
        "{:<9} {:<10} {:>8} {:>10} {:>8} {:>12} {:>10} {:>7}",
        "backend", "mode", "missed", "median ms", "min ms", "bytes in", "bytes out", "frames"
    );
    let mut all_met = true;
    let mut plain = false;
    for row in rows {
        println!(
            "{:<9} {:<10} {:>8} {:>10} {:>8} {:>12} {:>10} {:>7}",
            get(row, "backend"),
            get(row, "mode"),
            get(row, "missed"),
            get(row, "median_ms"),
            get(row, "min_ms"),
            get(row, "bytes_in"),
            get(row, "bytes_out"),
            get(row, "frames_in"),
        );
        if get(row, "mode") == "plain" {
            plain = true;
            all_met &= get(row, "meets_time") == "true" && get(row, "meets_bytes") == "true";
        }
    }
    let n_convs = args.conversations.max(1);
    if plain {
        println!(
            "targets ({}, in the clear): ≤ {} ms and ≤ {} bytes: {}",
            if n_convs > 1 {
                "a phone back after a week"
            } else {
                "one conversation"
            },
            target_ms(n_convs),
            target_bytes(n_convs * args.messages),
            if all_met { "met" } else { "MISSED" }
        );
    }
    let median = |row: &serde_json::Value| row.get("median_ms").and_then(serde_json::Value::as_f64);
    for backend in &args.backends {
        let of = |mode: &str| {
            rows.iter()
                .find(|r| get(r, "backend") == *backend && get(r, "mode") == mode)
                .and_then(median)
        };
        if let (Some(clear), Some(sealed)) = (of("plain"), of("encrypted")) {
            let ratio = sealed / clear;
            println!(
                "{backend}: encrypted / plaintext {ratio:.2}× (target ≤ {ENCRYPTED_TARGET_RATIO}×): {}",
                if ratio <= ENCRYPTED_TARGET_RATIO { "met" } else { "MISSED" }
            );
        }
    }
}
