//! A tenant's installations and their releases. An installation is a named
//! place in the tenant's chain (`position` orders it); a release is an
//! immutable triple of plugin (by sha256), settings and quota, created as a
//! draft and made live by activation. The live release of an installation is
//! `installations.active_release`; every change of it is appended to
//! `release_events`, so the history says who made what live and when, and a
//! rollback knows what was live before. Changes are serialized per tenant
//! (the same lock as plugin activation), so two hosts changing one tenant's
//! chain at once still leave a history where every entry follows from the one
//! before.
//!
//! Storage checks shape and references only (names, JSON, that a release
//! belongs to its installation); whether settings suit a plugin, and what a
//! quota may be, are the application's to decide before it stores them.

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::error::{check_json, tenant_fk};
use super::records::{InstallationRecord, LiveRelease, NewRelease, ReleaseEvent, ReleaseRecord};
use super::session::Access;
use super::tenant::TenantDb;
use super::time::now_ms;
use super::{StorageError, rows};

/// Most installations a tenant may have.
pub const MAX_INSTALLATIONS: usize = 16;
/// Largest settings document of a release, in bytes.
pub const MAX_RELEASE_SETTINGS_BYTES: usize = 256 * 1024;

macro_rules! installation_columns {
    () => {
        "name, position, active_release, created_by, created_at, updated_at"
    };
}

macro_rules! release_columns {
    () => {
        "id, installation, sha256, settings, quota, note, created_by, created_at"
    };
}

/// Checks an installation name: 1 to 40 of `a-z 0-9 -`, starting with a
/// letter or digit (it appears in URLs, logs and metrics).
pub fn check_installation_name(name: &str) -> Result<(), StorageError> {
    let ok = (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "`{}` is not an installation name: use 1 to 40 lowercase letters, digits and `-`, \
             not starting with `-` (e.g. `commission` or `brand-emails`)",
            name.chars().take(60).collect::<String>()
        )))
    }
}

fn no_installation(name: &str) -> StorageError {
    StorageError::NotFound(format!(
        "this tenant has no installation `{}`",
        name.chars().take(60).collect::<String>()
    ))
}

fn no_release(installation: &str, id: i64) -> StorageError {
    StorageError::NotFound(format!("installation `{installation}` has no release {id}"))
}

impl TenantDb {
    /// Creates an empty installation (no release live) at the end of the
    /// chain. Conflict if the name is taken or the tenant has
    /// [`MAX_INSTALLATIONS`] already.
    pub async fn create_installation(
        &self,
        name: &str,
        actor: &str,
    ) -> Result<InstallationRecord, StorageError> {
        check_installation_name(name)?;
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        let (count, last): (i64, Option<i64>) = {
            let row = sqlx::query(
                "SELECT count(*) AS n, max(position) AS last FROM installations WHERE tenant_id = $1",
            )
            .bind(self.tenant_id().as_str())
            .fetch_one(&mut *tx)
            .await?;
            (rows::int(&row, "n")?, sqlx::Row::try_get(&row, "last")?)
        };
        if count as usize >= MAX_INSTALLATIONS {
            return Err(StorageError::Conflict(format!(
                "this tenant has {MAX_INSTALLATIONS} installations, the most it may have: delete one first"
            )));
        }
        let now = now_ms();
        let row = sqlx::query(concat!(
            "INSERT INTO installations (tenant_id, name, position, active_release, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, NULL, $4, $5, $5) RETURNING ",
            installation_columns!()
        ))
        .bind(self.tenant_id().as_str())
        .bind(name)
        .bind(last.map_or(0, |p| p + 1))
        .bind(actor)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|err| match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict(
                format!("this tenant already has an installation `{name}`"),
            ),
            _ => tenant_fk(self.tenant_id())(err),
        })?;
        let record = installation_from_row(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    /// The tenant's installations, in chain order.
    pub async fn installations(&self) -> Result<Vec<InstallationRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let list = self.installations_in(&mut tx).await?;
        tx.commit().await?;
        Ok(list)
    }

    /// One installation.
    pub async fn installation(
        &self,
        name: &str,
    ) -> Result<Option<InstallationRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let found = self.installation_in(&mut tx, name).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Deletes an installation with its releases, history and quota. Whether
    /// it existed.
    pub async fn delete_installation(&self, name: &str) -> Result<bool, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        // Releases, history and quota go with it (foreign keys cascade).
        let deleted = sqlx::query("DELETE FROM installations WHERE tenant_id = $1 AND name = $2")
            .bind(self.tenant_id().as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted > 0)
    }

    /// Puts the installations in the order of `names`, which must name every
    /// installation of the tenant exactly once. Returns them in the new order.
    pub async fn reorder_installations(
        &self,
        names: &[String],
    ) -> Result<Vec<InstallationRecord>, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        let existing: Vec<String> =
            sqlx::query_scalar("SELECT name FROM installations WHERE tenant_id = $1")
                .bind(self.tenant_id().as_str())
                .fetch_all(&mut *tx)
                .await?;
        let mut given: Vec<&str> = names.iter().map(String::as_str).collect();
        given.sort_unstable();
        let mut have: Vec<&str> = existing.iter().map(String::as_str).collect();
        have.sort_unstable();
        if given != have {
            return Err(StorageError::Invalid(format!(
                "the order must name every installation exactly once: this tenant has [{}]",
                have.join(", ")
            )));
        }
        let now = now_ms();
        for (position, name) in names.iter().enumerate() {
            sqlx::query(
                "UPDATE installations SET position = $1, updated_at = $2 \
                  WHERE tenant_id = $3 AND name = $4",
            )
            .bind(position as i64)
            .bind(now)
            .bind(self.tenant_id().as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        let list = self.installations_in(&mut tx).await?;
        tx.commit().await?;
        Ok(list)
    }

    /// Stores a draft release. Changes nothing that is served. NotFound if the
    /// installation or the plugin version does not exist.
    pub async fn create_release(
        &self,
        new: &NewRelease<'_>,
    ) -> Result<ReleaseRecord, StorageError> {
        check_json("the release's settings", new.settings)?;
        check_json("the release's quota", new.quota)?;
        if new.settings.len() > MAX_RELEASE_SETTINGS_BYTES {
            return Err(StorageError::Invalid(format!(
                "the settings are {} bytes, more than {MAX_RELEASE_SETTINGS_BYTES}",
                new.settings.len()
            )));
        }
        if let Some(note) = new.note
            && (note.len() > 500 || note.chars().any(char::is_control))
        {
            return Err(StorageError::Invalid(
                "the note must be at most 500 bytes with no control characters".into(),
            ));
        }
        let mut tx = self.begin(Access::Write).await?;
        if self
            .installation_in(&mut tx, new.installation)
            .await?
            .is_none()
        {
            return Err(no_installation(new.installation));
        }
        let plugin: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM plugin_versions WHERE tenant_id = $1 AND sha256 = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(new.sha256)
        .fetch_optional(&mut *tx)
        .await?;
        if plugin.is_none() {
            return Err(StorageError::NotFound(
                "this tenant has no plugin version with that sha256: upload it first".into(),
            ));
        }
        let row = sqlx::query(concat!(
            "INSERT INTO releases (tenant_id, installation, sha256, settings, quota, note, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ",
            release_columns!()
        ))
        .bind(self.tenant_id().as_str())
        .bind(new.installation)
        .bind(new.sha256)
        .bind(new.settings)
        .bind(new.quota)
        .bind(new.note)
        .bind(new.created_by)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let mut release = release_from_row(&row)?;
        release.ever_active = false;
        tx.commit().await?;
        Ok(release)
    }

    /// The releases of an installation, newest first (at most `limit`).
    pub async fn releases(
        &self,
        installation: &str,
        limit: u32,
    ) -> Result<Vec<ReleaseRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            release_columns!(),
            ", EXISTS (SELECT 1 FROM release_events e WHERE e.tenant_id = r.tenant_id \
                  AND e.installation = r.installation AND e.release_id = r.id) AS ever_active \
             FROM releases r WHERE tenant_id = $1 AND installation = $2 ORDER BY id DESC LIMIT $3"
        ))
        .bind(self.tenant_id().as_str())
        .bind(installation)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(release_with_history).collect()
    }

    /// One release of an installation.
    pub async fn release(
        &self,
        installation: &str,
        id: i64,
    ) -> Result<Option<ReleaseRecord>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let found = self.release_in(&mut tx, installation, id).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Deletes a draft: a release that was never live. Conflict for one that
    /// was (history keeps it); NotFound if there is no such release.
    pub async fn delete_release(&self, installation: &str, id: i64) -> Result<(), StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        let Some(release) = self.release_in(&mut tx, installation, id).await? else {
            return Err(no_release(installation, id));
        };
        if release.ever_active {
            return Err(StorageError::Conflict(format!(
                "release {id} has been live and stays in the history; only drafts can be deleted"
            )));
        }
        sqlx::query("DELETE FROM releases WHERE tenant_id = $1 AND installation = $2 AND id = $3")
            .bind(self.tenant_id().as_str())
            .bind(installation)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes release `id` of `installation` the live one. `action` is what the
    /// history calls it: `activate`, `rollback` or `quota` (a release the
    /// platform made to change the quota).
    pub async fn activate_release(
        &self,
        installation: &str,
        id: i64,
        action: &'static str,
        actor: &str,
    ) -> Result<ReleaseEvent, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        if self.release_in(&mut tx, installation, id).await?.is_none() {
            return Err(no_release(installation, id));
        }
        let event = self
            .set_live(&mut tx, installation, Some(id), action, actor)
            .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Makes live again a release that was live before: `to`, or when `None`
    /// the newest release live before the current one (after a deactivation,
    /// the last one live). Rolling back twice therefore returns to where it
    /// started. Conflict if there is nothing to roll back to, or `to` was never
    /// live (activate it instead).
    pub async fn rollback_release(
        &self,
        installation: &str,
        to: Option<i64>,
        actor: &str,
    ) -> Result<ReleaseEvent, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        let Some(current) = self.installation_in(&mut tx, installation).await? else {
            return Err(no_installation(installation));
        };
        let target = match to {
            Some(id) => {
                let Some(release) = self.release_in(&mut tx, installation, id).await? else {
                    return Err(no_release(installation, id));
                };
                if !release.ever_active {
                    return Err(StorageError::Conflict(format!(
                        "release {id} was never live, so there is nothing to roll back to: activate it instead"
                    )));
                }
                id
            }
            None => {
                let previous = self
                    .live_before(&mut tx, installation, current.active_release)
                    .await?;
                previous.ok_or_else(|| {
                    StorageError::Conflict(format!(
                        "installation `{installation}` has no earlier release to roll back to"
                    ))
                })?
            }
        };
        let event = self
            .set_live(&mut tx, installation, Some(target), "rollback", actor)
            .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// Rolls `installation` back from release `failing` to the release live
    /// before it — only if `failing` is still live (another node, or the
    /// tenant, may have changed it meanwhile): `None` then, or when there is
    /// nothing to go back to.
    pub async fn rollback_from(
        &self,
        installation: &str,
        failing: i64,
        actor: &str,
    ) -> Result<Option<ReleaseEvent>, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        let Some(current) = self.installation_in(&mut tx, installation).await? else {
            return Ok(None);
        };
        if current.active_release != Some(failing) {
            return Ok(None);
        }
        let Some(previous) = self
            .live_before(&mut tx, installation, Some(failing))
            .await?
        else {
            return Ok(None);
        };
        let event = self
            .set_live(&mut tx, installation, Some(previous), "rollback", actor)
            .await?;
        tx.commit().await?;
        Ok(Some(event))
    }

    /// Takes an installation out of the chain until a release is activated
    /// again (it stays, with its history).
    pub async fn deactivate_installation(
        &self,
        installation: &str,
        actor: &str,
    ) -> Result<ReleaseEvent, StorageError> {
        let mut tx = self.begin(Access::Write).await?;
        self.lock_history(&mut tx).await?;
        if self.installation_in(&mut tx, installation).await?.is_none() {
            return Err(no_installation(installation));
        }
        let event = self
            .set_live(&mut tx, installation, None, "deactivate", actor)
            .await?;
        tx.commit().await?;
        Ok(event)
    }

    /// The newest `limit` changes of what was live in an installation.
    pub async fn release_events(
        &self,
        installation: &str,
        limit: u32,
    ) -> Result<Vec<ReleaseEvent>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT id, installation, release_id, action, actor, created_at FROM release_events \
              WHERE tenant_id = $1 AND installation = $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(self.tenant_id().as_str())
        .bind(installation)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(event_from_row).collect()
    }

    /// What is live: every installation with a live release, in chain order.
    pub async fn live_releases(&self) -> Result<Vec<LiveRelease>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows = sqlx::query(
            "SELECT i.name AS installation, i.position, \
                    r.id, r.sha256, r.settings, r.quota, r.note, \
                    r.created_by, r.created_at, \
                    (SELECT max(e.created_at) FROM release_events e \
                      WHERE e.tenant_id = i.tenant_id AND e.installation = i.name) AS live_since \
               FROM installations i \
               JOIN releases r ON r.tenant_id = i.tenant_id AND r.installation = i.name \
                              AND r.id = i.active_release \
              WHERE i.tenant_id = $1 \
              ORDER BY i.position, i.name",
        )
        .bind(self.tenant_id().as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(LiveRelease {
                    live_since: sqlx::Row::try_get::<Option<i64>, _>(row, "live_since")?
                        .unwrap_or(0),
                    position: rows::int(row, "position")?,
                    release: ReleaseRecord {
                        id: rows::int(row, "id")?,
                        installation: rows::text(row, "installation")?,
                        sha256: rows::text(row, "sha256")?,
                        settings: rows::text(row, "settings")?,
                        quota: rows::text(row, "quota")?,
                        note: rows::opt_text(row, "note")?,
                        created_by: rows::text(row, "created_by")?,
                        created_at: rows::int(row, "created_at")?,
                        ever_active: true,
                    },
                })
            })
            .collect()
    }

    /// The platform's quota for one of this tenant's installations, if set.
    pub async fn installation_quota(&self, name: &str) -> Result<Option<String>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let json = sqlx::query_scalar(
            "SELECT json FROM installation_quotas WHERE tenant_id = $1 AND installation = $2",
        )
        .bind(self.tenant_id().as_str())
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(json)
    }

    /// The platform's quotas for this tenant's installations: (installation,
    /// JSON) for each one set.
    pub async fn installation_quotas(&self) -> Result<Vec<(String, String)>, StorageError> {
        let mut tx = self.begin(Access::Read).await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT installation, json FROM installation_quotas WHERE tenant_id = $1",
        )
        .bind(self.tenant_id().as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// The newest release that was live in `installation` other than
    /// `current` (any, when `None`): what a rollback goes back to.
    async fn live_before(
        &self,
        tx: &mut Transaction<'static, Any>,
        installation: &str,
        current: Option<i64>,
    ) -> Result<Option<i64>, StorageError> {
        // A typed parameter per case: `$3 IS NULL` cannot be typed on PostgreSQL.
        let query = match current {
            Some(live) => sqlx::query_scalar(
                "SELECT release_id FROM release_events \
                  WHERE tenant_id = $1 AND installation = $2 \
                    AND release_id IS NOT NULL AND release_id <> $3 \
                  ORDER BY id DESC LIMIT 1",
            )
            .bind(self.tenant_id().as_str())
            .bind(installation)
            .bind(live),
            None => sqlx::query_scalar(
                "SELECT release_id FROM release_events \
                  WHERE tenant_id = $1 AND installation = $2 AND release_id IS NOT NULL \
                  ORDER BY id DESC LIMIT 1",
            )
            .bind(self.tenant_id().as_str())
            .bind(installation),
        };
        Ok(query.fetch_optional(&mut **tx).await?)
    }

    async fn installations_in(
        &self,
        tx: &mut Transaction<'static, Any>,
    ) -> Result<Vec<InstallationRecord>, StorageError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            installation_columns!(),
            " FROM installations WHERE tenant_id = $1 ORDER BY position, name"
        ))
        .bind(self.tenant_id().as_str())
        .fetch_all(&mut **tx)
        .await?;
        rows.iter().map(installation_from_row).collect()
    }

    async fn installation_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        name: &str,
    ) -> Result<Option<InstallationRecord>, StorageError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            installation_columns!(),
            " FROM installations WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(self.tenant_id().as_str())
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(installation_from_row).transpose()
    }

    async fn release_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        installation: &str,
        id: i64,
    ) -> Result<Option<ReleaseRecord>, StorageError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            release_columns!(),
            ", EXISTS (SELECT 1 FROM release_events e WHERE e.tenant_id = r.tenant_id \
                  AND e.installation = r.installation AND e.release_id = r.id) AS ever_active \
             FROM releases r WHERE tenant_id = $1 AND installation = $2 AND id = $3"
        ))
        .bind(self.tenant_id().as_str())
        .bind(installation)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(release_with_history).transpose()
    }

    async fn set_live(
        &self,
        tx: &mut Transaction<'static, Any>,
        installation: &str,
        release: Option<i64>,
        action: &'static str,
        actor: &str,
    ) -> Result<ReleaseEvent, StorageError> {
        let now = now_ms();
        let updated = sqlx::query(
            "UPDATE installations SET active_release = $1, updated_at = $2 \
              WHERE tenant_id = $3 AND name = $4",
        )
        .bind(release)
        .bind(now)
        .bind(self.tenant_id().as_str())
        .bind(installation)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(no_installation(installation));
        }
        let row = sqlx::query(
            "INSERT INTO release_events (tenant_id, installation, release_id, action, actor, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING id, installation, release_id, action, actor, created_at",
        )
        .bind(self.tenant_id().as_str())
        .bind(installation)
        .bind(release)
        .bind(action)
        .bind(actor)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        event_from_row(&row)
    }
}

impl super::PlatformDb {
    /// Sets the quota of one installation of `tenant` (the runtime's JSON;
    /// storage only checks it is JSON). NotFound if there is no such
    /// installation.
    pub async fn set_installation_quota(
        &self,
        tenant: &veneer_core::tenancy_id::TenantId,
        installation: &str,
        json: &str,
    ) -> Result<(), StorageError> {
        check_json("the quota", json)?;
        let mut tx = self.begin(Access::Write).await?;
        sqlx::query(
            "INSERT INTO installation_quotas (tenant_id, installation, json, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, installation) DO UPDATE SET json = excluded.json, \
                                                                 updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(installation)
        .bind(json)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|err| match &err {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                no_installation(installation)
            }
            _ => StorageError::from(err),
        })?;
        tx.commit().await?;
        Ok(())
    }
}

fn installation_from_row(row: &AnyRow) -> Result<InstallationRecord, StorageError> {
    Ok(InstallationRecord {
        name: rows::text(row, "name")?,
        position: rows::int(row, "position")?,
        active_release: sqlx::Row::try_get(row, "active_release")?,
        created_by: rows::text(row, "created_by")?,
        created_at: rows::int(row, "created_at")?,
        updated_at: rows::int(row, "updated_at")?,
    })
}

fn release_from_row(row: &AnyRow) -> Result<ReleaseRecord, StorageError> {
    Ok(ReleaseRecord {
        id: rows::int(row, "id")?,
        installation: rows::text(row, "installation")?,
        sha256: rows::text(row, "sha256")?,
        settings: rows::text(row, "settings")?,
        quota: rows::text(row, "quota")?,
        note: rows::opt_text(row, "note")?,
        created_by: rows::text(row, "created_by")?,
        created_at: rows::int(row, "created_at")?,
        ever_active: false,
    })
}

fn release_with_history(row: &AnyRow) -> Result<ReleaseRecord, StorageError> {
    let mut release = release_from_row(row)?;
    // A boolean on PostgreSQL, an integer on SQLite.
    release.ever_active = match sqlx::Row::try_get::<bool, _>(row, "ever_active") {
        Ok(flag) => flag,
        Err(_) => rows::int(row, "ever_active")? != 0,
    };
    Ok(release)
}

fn event_from_row(row: &AnyRow) -> Result<ReleaseEvent, StorageError> {
    Ok(ReleaseEvent {
        id: rows::int(row, "id")?,
        installation: rows::text(row, "installation")?,
        release_id: sqlx::Row::try_get(row, "release_id")?,
        action: rows::text(row, "action")?,
        actor: rows::text(row, "actor")?,
        created_at: rows::int(row, "created_at")?,
    })
}
