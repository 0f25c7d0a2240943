//! Record and replay: per tenant, a sample of its live commission calls
//! (`recording` in its rollout settings: a rate and a retention within the
//! platform's bounds) is stored with the sale — personal data redacted by
//! `redact` before it is stored — the answer served, and the chain that
//! served it; exported as JSONL for `veneer plugin replay`, which runs them
//! again through a plugin (or a chain) on a laptop. Writing is off the
//! request path, under a few record slots of the host's (a sampled call that
//! finds none free is not recorded).

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::Result;
use crate::base::{CommissionDecision, Sale};
use crate::resolve::Resolved;
use crate::runtime::Hook;
use crate::state::AppState;
use crate::storage::NewHookRecord;
use crate::tenancy::{TenantId, TenantState};

/// Most records one export page holds.
pub const MAX_EXPORT: u32 = 10_000;

/// Whether a live commission of this tenant may be recorded (so the sale is
/// kept for it).
pub fn wanted(tenant: &TenantState) -> bool {
    tenant
        .rollout
        .recording
        .as_ref()
        .is_some_and(|r| r.rate > 0.0)
}

/// After a live commission: records it with the tenant's sample probability.
pub fn after_commission(
    app: &AppState,
    tenant: &Arc<TenantState>,
    sale: &Sale,
    live: &Resolved<CommissionDecision>,
) {
    let Some(recording) = &tenant.rollout.recording else {
        return;
    };
    // The platform's bounds as they are now (they may have been lowered
    // since the tenant set its own).
    let bounds = super::rollout::bounds(app);
    let rate = recording.rate.min(bounds.max_recording_rate);
    if rate <= 0.0 || rand::random::<f64>() >= rate {
        return;
    }
    let Ok(permit) = app.record_slots.clone().try_acquire_owned() else {
        return;
    };
    let days = recording.retention_days.min(bounds.max_retention_days);
    let input =
        json!({ "sale": crate::redact::sale(sale, &recording.personal_attributes) }).to_string();
    let output = serde_json::to_string(&live.value).unwrap_or_default();
    let chain = serde_json::to_string(
        &live
            .runs
            .iter()
            .map(|run| {
                json!({
                    "installation": run.installation,
                    "release": run.release,
                    "plugin": run.plugin,
                    "outcome": run.outcome.as_str(),
                })
            })
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    let outcome = live
        .first_failure()
        .or(live.last_run())
        .map_or("base", |r| r.outcome.as_str())
        .to_owned();
    let fuel = live.runs.iter().map(|r| r.stats.fuel_used).sum();
    let expires_at = now_ms().saturating_add(i64::from(days) * 86_400_000);
    let (app, tenant_id) = (app.clone(), tenant.record.id.clone());
    tokio::spawn(async move {
        let _permit = permit;
        let record = NewHookRecord {
            hook: Hook::Commission.as_str(),
            input: &input,
            output: &output,
            outcome: &outcome,
            chain: &chain,
            fuel,
            expires_at,
        };
        if let Err(err) = app
            .storage
            .tenant(&tenant_id)
            .record_hook_call(&record)
            .await
        {
            tracing::warn!(tenant = %tenant_id, error = %err, "a hook call could not be recorded");
        }
    });
}

/// One recorded call, as exported (one JSON object per line) and as
/// `veneer plugin replay` reads it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordLine {
    /// The record's id (export pages continue `?after=` it).
    pub id: i64,
    /// The hook.
    pub hook: String,
    /// Unix milliseconds.
    pub at: i64,
    /// The hook's input: `{"sale": …}`, redacted.
    pub input: serde_json::Value,
    /// What was served.
    pub output: serde_json::Value,
    /// The first failure of the chain, else how its last step ended (`base`
    /// when no plugin ran).
    pub outcome: String,
    /// The chain's steps: installation, release, plugin, outcome.
    pub chain: serde_json::Value,
    /// Fuel the chain used.
    pub fuel: u64,
}

/// Up to `limit` of the tenant's unexpired records after id `after`; each
/// export is audited as `actor`'s (the range and how many records left).
pub async fn export(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    after: i64,
    limit: u32,
) -> Result<Vec<RecordLine>> {
    let db = app.storage.tenant(tenant);
    let records = db.hook_records(after, limit.min(MAX_EXPORT)).await?;
    let audit = serde_json::json!({
        "after": after,
        "records": records.len(),
        "last": records.last().map(|r| r.id),
    })
    .to_string();
    db.audit(actor, "records.export", None, None, Some(&audit))
        .await?;
    let parse = |text: &str| serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    Ok(records
        .into_iter()
        .map(|r| RecordLine {
            id: r.id,
            hook: r.hook,
            at: r.created_at,
            input: parse(&r.input),
            output: parse(&r.output),
            outcome: r.outcome,
            chain: parse(&r.chain),
            fuel: r.fuel,
        })
        .collect())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
