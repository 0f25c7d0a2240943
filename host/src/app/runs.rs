//! Recording plugin runs: each run goes to the tenant's run log (through
//! `usage`), to the metrics, to its installation's breaker (through `limits`), which pauses a
//! plugin that keeps running out of fuel or time, and — for a release just
//! made live — to its probation (`rollout`), which rolls a failing release
//! back. Decides nothing about what is served.

use crate::resolve::RunRecord;
use crate::runtime::OutcomeKind;
use crate::state::AppState;
use crate::tenancy::TenantState;

/// Records a plugin run: in the tenant's run log and in its installation's
/// breaker (a step skipped for a spent request budget is not the plugin's
/// doing and feeds no breaker).
pub fn record_run(app: &AppState, tenant: &TenantState, run: &RunRecord) {
    app.recorder.run(&tenant.record.id, run);
    if run.budget_spent {
        return;
    }
    app.metrics
        .plugin_run(&tenant.record.id, run.hook, run.outcome, &run.stats);
    let installation = run.installation.as_deref().unwrap_or("");
    if app
        .limits
        .record_outcome(&tenant.record, installation, run.outcome)
    {
        app.metrics.breaker_pause(&tenant.record.id);
    }
    // A release just made live that keeps failing is rolled back.
    let Some(step) = tenant
        .chain
        .iter()
        .find(|s| Some(s.release) == run.release && s.installation == installation)
    else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let failed = run.outcome != OutcomeKind::Ok;
    if let Some(reason) = app.probation.record(
        tenant.rollout.rollback.as_ref(),
        &tenant.record.id,
        installation,
        step.release,
        step.live_since,
        failed,
        now,
    ) {
        let (app, tenant_id, installation, release) = (
            app.clone(),
            tenant.record.id.clone(),
            installation.to_owned(),
            step.release,
        );
        tokio::spawn(async move {
            if let Err(err) =
                super::rollout::roll_back(&app, &tenant_id, &installation, release, &reason).await
            {
                tracing::error!(tenant = %tenant_id, installation, release, error = %err, "an automatic rollback failed");
            }
        });
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
