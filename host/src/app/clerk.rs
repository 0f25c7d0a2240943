//! Clerk organisations as use cases: accepting a webhook delivery (Svix
//! signature and timestamp checked, deduplicated by its `svix-id`, then acted
//! on) and the one question a request asks of it — was the caller's token
//! revoked by a membership change since it was issued?
//!
//! What each event does (the table in docs/operations.md, "Clerk"):
//! - `organization.created`: with `--clerk-provision-tenants`, a tenant for
//!   the organisation through [`super::admin`]'s own create, its id from the
//!   slug; a clash (id taken, or no valid id) is logged and skipped, never
//!   overwritten, and audited on the tenant that holds the id;
//! - `organization.updated`: the linked tenant's name follows;
//! - `organization.deleted`: the linked tenant is suspended (not deleted:
//!   a platform admin decides that);
//! - `organizationMembership.*`: the member's tokens for the linked tenant
//!   issued before the change are refused from the next request on, on every
//!   node ([`check_token`]); Clerk's next token carries the new role (or no
//!   organisation).
//!
//! Every change is audited with actor [`ACTOR`]. A delivery is recorded
//! before it is acted on and forgotten again if acting fails, so Svix's retry
//! does the work once. The signing scheme and payloads are `crate::clerk`'s.

use serde::Serialize;
use serde_json::json;

use super::admin::{TenantSpec, create_tenant, new_tenant, update_tenant};
use super::{Error, Result};
use crate::auth::Principal;
use crate::cache::MemberKey;
use crate::clerk::{ClerkEvent, Envelope, MembershipChange, events, svix};
use crate::state::AppState;
use crate::storage::{AuditEntry, StorageError, TenantPatch, TenantRecord, TenantStatus};
use crate::tenancy::TenantId;

/// The actor Clerk's changes are audited as.
pub const ACTOR: &str = "clerk";

/// What a delivery came to.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Acted on; `action` says what was done.
    Processed {
        action: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant: Option<TenantId>,
    },
    /// Nothing to do (`reason` says why: an unknown type, no linked tenant,
    /// provisioning off, a clash).
    Ignored {
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant: Option<TenantId>,
    },
    /// This `svix-id` was handled before: acknowledged, not acted on again.
    Duplicate,
}

/// A delivery accepted (signature good).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The event's type, as sent.
    pub event: String,
    /// Svix's message id.
    pub svix_id: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

fn now_ms() -> i64 {
    super::jobs::now_ms()
}

/// Verifies, deduplicates and acts on one Clerk webhook delivery.
pub async fn accept_webhook(
    app: &AppState,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Accepted> {
    let secret = app
        .clerk_webhook_secret
        .as_ref()
        .ok_or(Error::ClerkWebhooksDisabled)?;
    let delivery = svix::verify(secret, headers, body, now_ms() / 1000).map_err(|err| {
        tracing::info!(reason = %err, "refused a Clerk webhook");
        Error::ClerkWebhookNotAuthenticated(err.to_string())
    })?;
    let envelope = events::parse(body).map_err(|err| Error::ClerkEventInvalid(err.to_string()))?;
    let platform = app.storage.platform();
    let first = platform
        .record_clerk_delivery(&delivery.id, &envelope.kind)
        .await?;
    let outcome = if !first {
        Outcome::Duplicate
    } else {
        match act(app, &envelope, delivery.timestamp).await {
            Ok(outcome) => outcome,
            Err(err) => {
                // Let Svix's retry do it.
                if let Err(forget) = platform.forget_clerk_delivery(&delivery.id).await {
                    tracing::error!(svix_id = %delivery.id, error = %forget, "could not forget a failed Clerk delivery; its retry will be taken as a duplicate");
                }
                return Err(err);
            }
        }
    };
    tracing::info!(svix_id = %delivery.id, event = %envelope.kind, ?outcome, "Clerk webhook");
    Ok(Accepted {
        event: envelope.kind,
        svix_id: delivery.id,
        outcome,
    })
}

fn ignored(reason: impl Into<String>, tenant: Option<TenantId>) -> Outcome {
    Outcome::Ignored {
        reason: reason.into(),
        tenant,
    }
}

/// The live (not deleted) tenant linked to `org_id`.
async fn linked(app: &AppState, org_id: &str) -> Result<Option<TenantRecord>> {
    Ok(app
        .storage
        .platform()
        .tenant_by_org(org_id)
        .await?
        .filter(|t| !t.is_deleted()))
}

async fn act(app: &AppState, envelope: &Envelope, signed_at: i64) -> Result<Outcome> {
    match &envelope.event {
        ClerkEvent::OrganizationCreated { org_id, name, slug } => {
            provision(app, org_id, name, slug.as_deref()).await
        }
        ClerkEvent::OrganizationUpdated { org_id, name } => {
            let Some(tenant) = linked(app, org_id).await? else {
                return Ok(ignored("no tenant is linked to the organisation", None));
            };
            let name = tenant_name(name);
            if tenant.name == name {
                return Ok(ignored("the name is unchanged", Some(tenant.id)));
            }
            let patch = TenantPatch {
                name: Some(name),
                ..TenantPatch::default()
            };
            update_tenant(app, ACTOR, &tenant.id, &patch).await?;
            Ok(Outcome::Processed {
                action: "renamed",
                tenant: Some(tenant.id),
            })
        }
        ClerkEvent::OrganizationDeleted { org_id } => {
            let Some(tenant) = linked(app, org_id).await? else {
                return Ok(ignored("no tenant is linked to the organisation", None));
            };
            if tenant.status == TenantStatus::Suspended {
                return Ok(ignored("the tenant is suspended already", Some(tenant.id)));
            }
            let patch = TenantPatch {
                status: Some(TenantStatus::Suspended),
                ..TenantPatch::default()
            };
            update_tenant(app, ACTOR, &tenant.id, &patch).await?;
            tracing::warn!(tenant = %tenant.id, %org_id, "Clerk organisation deleted: tenant suspended");
            Ok(Outcome::Processed {
                action: "suspended",
                tenant: Some(tenant.id),
            })
        }
        ClerkEvent::Membership {
            change,
            org_id,
            user_id,
            role,
        } => {
            let Some(tenant) = linked(app, org_id).await? else {
                return Ok(ignored("no tenant is linked to the organisation", None));
            };
            // Clerk's time of the change (its clock is the one that stamps
            // `iat`); the signing time when the event has none; never later
            // than now.
            let at = envelope
                .timestamp_ms
                .unwrap_or(signed_at.saturating_mul(1000))
                .min(now_ms());
            revoke(app, &tenant.id, user_id, at, *change, role.as_deref()).await?;
            Ok(Outcome::Processed {
                action: "tokens_revoked",
                tenant: Some(tenant.id),
            })
        }
        ClerkEvent::Other => Ok(ignored(
            format!("Veneer does not act on `{}` events", envelope.kind),
            None,
        )),
    }
}

/// A tenant name from an organisation's: trimmed, at most 200 characters.
fn tenant_name(name: &str) -> String {
    name.trim().chars().take(200).collect()
}

/// A tenant id from an organisation's slug: lower case, anything but
/// `a-z 0-9` turned into `-`, runs and ends of `-` dropped; `None` when that
/// is not a valid tenant id.
pub fn tenant_id_from_slug(slug: &str) -> Option<TenantId> {
    let mut id = String::with_capacity(slug.len());
    for c in slug.trim().chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_alphanumeric() { c } else { '-' };
        if c == '-' && (id.is_empty() || id.ends_with('-')) {
            continue;
        }
        id.push(c);
    }
    let id = id.trim_end_matches('-');
    TenantId::new(id).ok()
}

async fn provision(
    app: &AppState,
    org_id: &str,
    name: &str,
    slug: Option<&str>,
) -> Result<Outcome> {
    if !app.config.clerk.clerk_provision_tenants {
        return Ok(ignored(
            "tenant provisioning is off (--clerk-provision-tenants)",
            None,
        ));
    }
    let platform = app.storage.platform();
    if let Some(tenant) = platform.tenant_by_org(org_id).await? {
        return Ok(ignored(
            "a tenant is linked to the organisation already",
            Some(tenant.id),
        ));
    }
    let Some(id) = tenant_id_from_slug(slug.unwrap_or(name)) else {
        tracing::warn!(%org_id, ?slug, "Clerk organisation not provisioned: no valid tenant id from its slug");
        return Ok(ignored(
            "no valid tenant id can be made from the organisation's slug; a platform admin can create the tenant with `org_id`",
            None,
        ));
    };
    let name = match tenant_name(name) {
        n if n.is_empty() => id.to_string(),
        n => n,
    };
    let new = new_tenant(TenantSpec {
        id: id.clone(),
        name,
        org_id: Some(org_id.to_owned()),
        rate_limit_per_sec: None,
        rate_limit_burst: None,
        max_concurrency: None,
    })?;
    match create_tenant(app, ACTOR, new).await {
        Ok(record) => {
            tracing::info!(tenant = %record.id, %org_id, "tenant provisioned for a new Clerk organisation");
            Ok(Outcome::Processed {
                action: "provisioned",
                tenant: Some(record.id),
            })
        }
        Err(Error::Conflict(why)) => {
            tracing::warn!(tenant = %id, %org_id, %why, "Clerk organisation not provisioned: the tenant id is taken");
            // On the log of the tenant holding the id, if it is the id that clashed.
            if platform.tenant(&id).await?.is_some() {
                let after = json!({ "org_id": org_id, "reason": why }).to_string();
                platform
                    .audit(&AuditEntry {
                        tenant: &id,
                        actor: ACTOR,
                        action: "clerk.provision_skipped",
                        plugin_sha256: None,
                        before: None,
                        after: Some(&after),
                    })
                    .await?;
            }
            Ok(ignored(
                format!("not provisioned, nothing overwritten: {why}"),
                Some(id),
            ))
        }
        Err(other) => Err(other),
    }
}

/// Revokes `user`'s tokens for `tenant` issued before `at` (Unix ms), on
/// every node, audited.
async fn revoke(
    app: &AppState,
    tenant: &TenantId,
    user: &str,
    at: i64,
    change: MembershipChange,
    role: Option<&str>,
) -> Result<()> {
    // A revocation older than the longest-lived token still accepted guards
    // nothing; with no maximum lifetime they are kept.
    let max_lifetime_ms = i64::try_from(app.config.jwt_max_lifetime_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let forget_before = if max_lifetime_ms == 0 {
        0
    } else {
        now_ms().saturating_sub(max_lifetime_ms.saturating_add(60_000))
    };
    let platform = app.storage.platform();
    let in_force = platform
        .revoke_member(tenant, user, at, forget_before)
        .await?;
    app.invalidation.member(tenant, user);
    let after = json!({
        "user": user,
        "role": role,
        "tokens_issued_before": in_force,
    })
    .to_string();
    let action = match change {
        MembershipChange::Created => "clerk.membership.created",
        MembershipChange::Updated => "clerk.membership.updated",
        MembershipChange::Deleted => "clerk.membership.deleted",
    };
    platform
        .audit(&AuditEntry {
            tenant,
            actor: ACTOR,
            action,
            plugin_sha256: None,
            before: None,
            after: Some(&after),
        })
        .await?;
    Ok(())
}

/// The time (Unix ms) before which `user`'s tokens for `tenant` are refused,
/// from the cache or the database. When the database cannot be read, none is
/// assumed (and nothing cached): a warm tenant keeps serving through an
/// outage, as its state does.
async fn revoked_before(app: &AppState, tenant: &TenantId, user: &str) -> Result<Option<i64>> {
    let key = MemberKey::new(tenant, user);
    if let Some(cached) = app.caches.member(&key) {
        return Ok(cached);
    }
    let epoch = app.invalidation.epoch();
    match app
        .storage
        .platform()
        .member_revoked_before(tenant, user)
        .await
    {
        Ok(before) => {
            app.invalidation.loaded_member(epoch, key, before);
            Ok(before)
        }
        Err(StorageError::Unavailable(detail)) => {
            tracing::warn!(%tenant, %detail, "database unavailable; membership revocations not checked");
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// Refuses a token of `tenant`'s organisation issued before its user's
/// membership or role there last changed ([`Error::TokenRevoked`]). A token
/// issued in the same second as the change is refused too (`iat` has
/// seconds only, and it may carry the old role); one without `iat` is
/// refused once its user has a revocation.
pub async fn check_token(app: &AppState, tenant: &TenantId, principal: &Principal) -> Result<()> {
    let Some(before) = revoked_before(app, tenant, &principal.subject).await? else {
        return Ok(());
    };
    let issued_ms = principal
        .issued_at
        .map(|iat| i64::try_from(iat).unwrap_or(i64::MAX).saturating_mul(1000));
    match issued_ms {
        Some(issued) if issued >= before => Ok(()),
        _ => Err(Error::TokenRevoked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_come_from_slugs_or_not_at_all() {
        let id = |s: &str| tenant_id_from_slug(s).map(|t| t.to_string());
        assert_eq!(id("acme"), Some("acme".into()));
        assert_eq!(id("Acme Corp"), Some("acme-corp".into()));
        assert_eq!(id("acme_corp--eu"), Some("acme-corp-eu".into()));
        assert_eq!(id("-acme-"), Some("acme".into()));
        assert_eq!(id("ÄÖ"), None);
        assert_eq!(id("___"), None);
        assert_eq!(id(""), None);
    }
}
