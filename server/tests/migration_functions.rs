//! `server/migrations/FUNCTIONS.md` shows the current text of every SQL function the
//! Postgres migrations define: the text of the last migration that creates or replaces it
//! (a function dropped and not created again is gone). This test rebuilds that page from
//! the migrations and compares, so the page cannot drift from them. After a migration
//! changes a function, rewrite the page with:
//!
//! ```sh
//! UPDATE_FUNCTIONS=1 cargo test -p confab-server --test migration_functions
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a function's current text comes from, and the migrations whose texts it replaced.
struct Function {
    text: String,
    file: String,
    replaced: Vec<String>,
}

fn migrations() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("migrations folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("migration"))
        })
        .collect()
}

/// The function's name after `FUNCTION ` at `at`.
fn name_at(sql: &str, at: usize) -> String {
    sql[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The end of the `CREATE FUNCTION` statement starting at `start`: a dollar-quoted body's
/// closing `$$` and the `;` after it, or the first `;` (a `RETURN expr;` body).
fn statement_end(sql: &str, start: usize) -> usize {
    let semi = sql[start..].find(';').map(|i| start + i).expect("a ;");
    match sql[start..].find("$$").map(|i| start + i) {
        Some(open) if open < semi => {
            let close = sql[open + 2..]
                .find("$$")
                .map(|i| open + 2 + i)
                .expect("$$");
            sql[close..]
                .find(';')
                .map(|i| close + i + 1)
                .expect("a ; after $$")
        }
        _ => semi + 1,
    }
}

/// Every function as the migrations leave it, by name.
fn current_functions() -> BTreeMap<String, Function> {
    let mut functions: BTreeMap<String, Function> = BTreeMap::new();
    for (file, sql) in migrations() {
        let upper = sql.to_ascii_uppercase();
        let mut events: Vec<(usize, bool)> = Vec::new();
        for pattern in ["CREATE FUNCTION ", "CREATE OR REPLACE FUNCTION "] {
            events.extend(upper.match_indices(pattern).map(|(i, _)| (i, true)));
        }
        events.extend(
            upper
                .match_indices("DROP FUNCTION ")
                .map(|(i, _)| (i, false)),
        );
        events.sort();
        for (at, create) in events {
            let name_start = at + upper[at..].find("FUNCTION ").expect("FUNCTION") + 9;
            let name_start = if upper[name_start..].starts_with("IF EXISTS ") {
                name_start + 10
            } else {
                name_start
            };
            let name = name_at(&sql, name_start);
            if !create {
                if let Some(f) = functions.get_mut(&name) {
                    f.text.clear();
                }
                continue;
            }
            let text = sql[at..statement_end(&sql, at)].to_owned();
            let replaced = match functions.remove(&name) {
                Some(f) => f.replaced.into_iter().chain([f.file]).collect(),
                None => Vec::new(),
            };
            functions.insert(
                name,
                Function {
                    text,
                    file: file.clone(),
                    replaced,
                },
            );
        }
    }
    functions.retain(|_, f| !f.text.is_empty());
    functions
}

fn page() -> String {
    let mut out = String::from(
        "# Server SQL functions\n\
         \n\
         The current text of every SQL function the Postgres migrations define\n\
         (`postgres/*.sql`): each as the last migration that creates or replaces it leaves it.\n\
         The SQLite migrations define none. `server/tests/migration_functions.rs` rebuilds this\n\
         page from the migrations and fails when it differs; after a migration changes a\n\
         function, rewrite it with\n\
         `UPDATE_FUNCTIONS=1 cargo test -p confab-server --test migration_functions`.\n",
    );
    let functions = current_functions();
    out.push('\n');
    for name in functions.keys() {
        out.push_str(&format!("- [`{name}`](#{name})\n"));
    }
    for (name, f) in &functions {
        out.push_str(&format!("\n## {name}\n\nFrom `postgres/{}`", f.file));
        if !f.replaced.is_empty() {
            let earlier: Vec<String> = f.replaced.iter().map(|r| format!("`{r}`")).collect();
            out.push_str(&format!(" (replacing the text of {})", earlier.join(", ")));
        }
        out.push_str(".\n\n```sql\n");
        out.push_str(f.text.trim_end());
        out.push_str("\n```\n");
    }
    out
}

#[test]
fn functions_page_matches_the_migrations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/FUNCTIONS.md");
    let expected = page();
    if std::env::var_os("UPDATE_FUNCTIONS").is_some() {
        std::fs::write(&path, &expected).expect("write FUNCTIONS.md");
        return;
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "{} is not the migrations' current functions; rewrite it with \
         UPDATE_FUNCTIONS=1 cargo test -p confab-server --test migration_functions",
        path.display()
    );
}

/// The functions the group commit calls are on the page, as the last migration that
/// touched them wrote them.
#[test]
fn the_commit_functions_are_current() {
    let functions = current_functions();
    for name in ["confab_commit", "confab_commit_messages"] {
        let f = functions.get(name).expect(name);
        assert!(f.text.contains(name), "{name}");
        assert!(
            !f.replaced.is_empty(),
            "{name} is redefined by later migrations"
        );
    }
}

/// The page names every function a migrated database has, so no definition escaped the
/// reading above.
#[tokio::test]
async fn the_page_names_every_function_of_a_migrated_database() {
    use confab_server::store::postgres::PgStore;
    use confab_server::store::Store;
    use confab_testkit::pg::{self, Template};
    use sqlx::{Connection, PgConnection};

    let url = pg::fresh_database("confab_fn", Template::Template0)
        .await
        .expect("a fresh Postgres database");
    let store = PgStore::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT proname::text FROM pg_proc \
         WHERE pronamespace = 'public'::regnamespace ORDER BY proname",
    )
    .fetch_all(&mut conn)
    .await
    .expect("functions");
    drop(conn);
    store.close().await;
    pg::drop_database(&url).await.expect("drop test database");
    let read: Vec<String> = current_functions().into_keys().collect();
    assert_eq!(read, stored);
}
