//! Recording plugin runs: each run goes to the tenant's run log (through
//! `usage`) and to its breaker (through `limits`), which pauses a plugin that
//! keeps running out of fuel or time. Decides nothing about what is served.

use crate::resolve::RunRecord;
use crate::state::AppState;
use crate::tenancy::TenantState;

/// Records a plugin run: in the tenant's run log and in its breaker.
pub fn record_run(app: &AppState, tenant: &TenantState, plugin: &str, run: &RunRecord) {
    app.recorder.run(&tenant.record.id, plugin, run);
    app.limits.record_outcome(&tenant.record, run.outcome);
}

/// The message served while a tenant's plugin is paused.
pub fn paused_message(app: &AppState, tenant: &TenantState) -> Option<String> {
    app.limits.plugin_paused(&tenant.record).map(|left| {
        format!(
            "the plugin is paused for {} s after repeatedly running out of fuel or time; the base is served meanwhile",
            left.as_secs() + 1
        )
    })
}
