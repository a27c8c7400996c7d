//! Per-conversation stats (docs/SCHEMA.md, "Projection: stats and views"): read from
//! columns that triggers keep (migrations: Postgres 0019, SQLite 0013), so they count no
//! messages or members when asked. View counts are stored on the message rows (Postgres
//! 0022, SQLite 0015) and read with them (`Projections::messages`).

use sqlx::Row;

use super::Result;

/// Stats: messages not deleted, of them media (image, video, voice) and files
/// (file), and the active members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ConvStats {
    pub messages: i64,
    pub media: i64,
    pub files: i64,
    pub members: i64,
}

pub(super) fn stats_of<R: Row>(row: &R) -> Result<ConvStats>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(ConvStats {
        messages: row.try_get("message_count")?,
        media: row.try_get("media_count")?,
        files: row.try_get("file_count")?,
        members: row.try_get("active_members")?,
    })
}
