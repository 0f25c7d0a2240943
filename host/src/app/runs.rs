//! Recording plugin runs: each run goes to the tenant's run log (through
//! `usage`) and to its breaker (through `limits`), which pauses a plugin that
//! keeps running out of fuel or time. Decides nothing about what is served.

use crate::resolve::RunRecord;
use crate::state::AppState;
use crate::tenancy::TenantState;

/// Records a plugin run: in the tenant's run log and in its installation's
/// breaker (a step skipped for a spent request budget is not the plugin's
/// doing and feeds no breaker).
pub fn record_run(app: &AppState, tenant: &TenantState, run: &RunRecord) {
    app.recorder.run(&tenant.record.id, run);
    if !run.budget_spent {
        let installation = run.installation.as_deref().unwrap_or("");
        app.limits
            .record_outcome(&tenant.record, installation, run.outcome);
    }
}

/// The message served while one of the tenant's plugins is paused.
pub fn paused_message(app: &AppState, tenant: &TenantState) -> Option<String> {
    tenant.chain.iter().find_map(|step| {
        app.limits
            .plugin_paused(&tenant.record, &step.installation)
            .map(|left| {
                format!(
                    "the plugin of installation `{}` is paused for {} s after repeatedly running out of fuel or time; its input passes on meanwhile",
                    step.installation,
                    left.as_secs() + 1
                )
            })
    })
}
