//! Cross-node notifications over PostgreSQL `LISTEN`/`NOTIFY`: publishing on the
//! pool, and a listener on a connection of its own (the pool is an `AnyPool`,
//! and a listening session must stay open and unshared). On SQLite there is one
//! node, so publishing does nothing and there is nothing to listen to.
//!
//! Only transport lives here; what a notification means (which cache entries
//! to drop, when to flush everything) is `invalidation`'s.

use std::time::Duration;

use sqlx::postgres::PgListener;

use super::{Backend, Storage, StorageError};

impl Storage {
    /// Sends `payload` to every session listening on `channel` (other nodes, and
    /// this one). Autocommit, so it is delivered at once. No-op on SQLite.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), StorageError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        // `pg_notify` returns void, which `Any` rows cannot carry: select a constant.
        sqlx::query("SELECT 1 FROM pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A session listening on one channel. Dropping it closes the session.
pub struct NotificationListener {
    inner: PgListener,
}

impl std::fmt::Debug for NotificationListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationListener")
            .finish_non_exhaustive()
    }
}

impl NotificationListener {
    /// Connects to the PostgreSQL at `url` and listens on `channel`, giving up
    /// after `timeout` (sqlx's own listener pool would wait 30 s).
    pub async fn connect(
        url: &str,
        channel: &str,
        timeout: Duration,
    ) -> Result<Self, StorageError> {
        let connect = async {
            let mut inner = PgListener::connect(url).await?;
            // Reconnecting is the caller's business: it must flush what it may
            // have missed before trusting the feed again.
            inner.eager_reconnect(false);
            inner.listen(channel).await?;
            Ok::<_, sqlx::Error>(inner)
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(inner)) => Ok(Self { inner }),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(StorageError::Unavailable(format!(
                "no answer from PostgreSQL within {timeout:?} while connecting the listener"
            ))),
        }
    }

    /// The next notification's payload; `Ok(None)` when the session was lost
    /// (notifications sent meanwhile are gone). Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<String>, StorageError> {
        match self.inner.try_recv().await {
            Ok(Some(notification)) => Ok(Some(notification.payload().to_owned())),
            Ok(None) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Checks that the session still answers (a silent peer may be gone).
    pub async fn ping(&mut self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&mut self.inner).await?;
        Ok(())
    }
}
