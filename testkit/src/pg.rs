//! A fresh database on the system Postgres (127.0.0.1:5432, user `postgres`, trust auth),
//! for every suite that runs on Postgres: made under a name no other test uses, dropped
//! when the test is done.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use sqlx::{Connection, Executor, PgConnection};

/// The system Postgres, without a database.
pub const HOST: &str = "postgres://postgres@127.0.0.1:5432";

/// How to start the system Postgres when it is down (`.ci/run` does this).
pub const START: &str = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";

/// What a fresh database is copied from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Template {
    /// The server's default, `template1`.
    #[default]
    Default,
    /// `template0`: nothing an administrator added to `template1`.
    Template0,
    /// `template0` with a linguistic (ICU en-US) default collation, as production databases
    /// often have, so that text ordering relying on the collation shows up; plain
    /// `template0` when the server has no ICU.
    Icu,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A connection to the `postgres` database, to make and drop databases; fails with what to
/// do when Postgres is down.
pub async fn admin() -> Result<PgConnection> {
    PgConnection::connect(&format!("{HOST}/postgres"))
        .await
        .with_context(|| {
            format!(
                "PostgreSQL is not reachable on 127.0.0.1:5432 (user postgres, trust auth). \
                 Start it with `{START}`"
            )
        })
}

/// A fresh database named `prefix`, the process id and a counter, copied from `template`;
/// its URL. A database of that name left by an earlier run is dropped first.
pub async fn fresh_database(prefix: &str, template: Template) -> Result<String> {
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = admin().await?;
    // FORCE: a leftover may still have connections of a test that was killed.
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    let plain = match template {
        Template::Default => format!("CREATE DATABASE {name}"),
        Template::Template0 | Template::Icu => format!("CREATE DATABASE {name} TEMPLATE template0"),
    };
    let icu = format!(
        "CREATE DATABASE {name} TEMPLATE template0 \
         LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
    );
    let made_with_icu = template == Template::Icu && admin.execute(icu.as_str()).await.is_ok();
    if !made_with_icu {
        admin
            .execute(plain.as_str())
            .await
            .with_context(|| format!("creating database {name}"))?;
    }
    Ok(format!("{HOST}/{name}"))
}

/// Drops a database `fresh_database` made (its URL).
pub async fn drop_database(url: &str) -> Result<()> {
    let name = url
        .strip_prefix(HOST)
        .and_then(|rest| rest.strip_prefix('/'))
        .context("not a database of the system Postgres")?;
    // FORCE: a pool the caller dropped may still be closing its connections.
    admin()
        .await?
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .with_context(|| format!("dropping database {name}"))?;
    Ok(())
}

/// Runs `test` on a fresh database (given its URL), then drops the database however the
/// test ended; a panic inside is passed on as the test's failure.
pub async fn on_fresh_database<F, Fut>(prefix: &str, template: Template, test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = fresh_database(prefix, template)
        .await
        .expect("a fresh Postgres database");
    let outcome = tokio::spawn(test(url.clone())).await;
    let dropped = drop_database(&url).await;
    // The test's own failure first: it says more than a drop after it.
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    dropped.expect("the test database is dropped");
}
