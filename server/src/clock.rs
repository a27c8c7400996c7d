//! The server's clock, below everything that reads it (core takes time as a parameter).

/// Milliseconds since the Unix epoch: the server's clock (core takes time as a parameter).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
