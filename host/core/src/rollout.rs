//! A tenant's own rollout settings, within the platform's bounds: how many
//! clean shadow calls a release needs before it may be activated, when a new
//! release is rolled back by itself (and who is told), and how much of its
//! traffic is recorded for replay.
//!
//! ```json
//! {
//!   "shadow_gate": 200,
//!   "rollback": {"failures": 3, "calls": 50, "secs": 300},
//!   "recording": {"rate": 0.05, "retention_days": 7, "personal_attributes": ["loyalty_card"]},
//!   "notify": "ops@store.example"
//! }
//! ```

use serde::{Deserialize, Serialize};

/// Most clean shadow calls a gate may require (the shadow runs a release keeps).
pub const MAX_SHADOW_GATE: u32 = 10_000;
/// Bounds of a tenant's automatic rollback thresholds.
pub const ROLLBACK_FAILURES: std::ops::RangeInclusive<u32> = 1..=100;
/// See [`ROLLBACK_FAILURES`].
pub const ROLLBACK_CALLS: std::ops::RangeInclusive<u32> = 1..=10_000;
/// See [`ROLLBACK_FAILURES`].
pub const ROLLBACK_SECS: std::ops::RangeInclusive<u64> = 10..=86_400;

/// A tenant's rollout settings; every part optional (the platform's defaults
/// apply).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutSettings {
    /// Clean shadow calls (none failed) a new release needs before it may be
    /// activated; the platform's own requirement applies when higher.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_gate: Option<u32>,
    /// This tenant's automatic rollback thresholds, instead of the platform's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackThresholds>,
    /// Sampled recording of hook inputs and outputs for replay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<Recording>,
    /// Who is emailed (through the tenant's own email settings) when Veneer
    /// rolls a release back by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
}

/// A release that fails `failures` times within its first `calls` calls or
/// `secs` seconds after going live is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackThresholds {
    /// Failures that trigger the rollback.
    pub failures: u32,
    /// Calls a new release is watched for.
    pub calls: u32,
    /// Seconds a new release is watched for.
    pub secs: u64,
}

/// How much of a tenant's traffic is recorded, and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    /// Share of hook calls recorded, 0 to the platform's maximum.
    pub rate: f64,
    /// Days a record is kept, 1 to the platform's maximum.
    pub retention_days: u32,
    /// The tenant's own attribute keys holding personal data (redacted
    /// besides the ones `redact` knows).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub personal_attributes: Vec<String>,
}

/// The platform's bounds on what a tenant may set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Highest recording rate.
    pub max_recording_rate: f64,
    /// Longest retention of records, in days.
    pub max_retention_days: u32,
}

impl RolloutSettings {
    /// Checks every part against its bounds; the message names the field and
    /// what is allowed.
    pub fn validate(&self, bounds: &Bounds) -> Result<(), String> {
        if let Some(gate) = self.shadow_gate
            && gate > MAX_SHADOW_GATE
        {
            return Err(format!(
                "shadow_gate = {gate}: at most {MAX_SHADOW_GATE} (the shadow runs a release keeps)"
            ));
        }
        if let Some(r) = &self.rollback {
            if !ROLLBACK_FAILURES.contains(&r.failures) {
                return Err(range("rollback.failures", r.failures, &ROLLBACK_FAILURES));
            }
            if !ROLLBACK_CALLS.contains(&r.calls) {
                return Err(range("rollback.calls", r.calls, &ROLLBACK_CALLS));
            }
            if !ROLLBACK_SECS.contains(&r.secs) {
                return Err(range("rollback.secs", r.secs, &ROLLBACK_SECS));
            }
        }
        if let Some(to) = &self.notify
            && let Err(why) = crate::email_check::check_address(to)
        {
            return Err(format!("notify `{to}`: {why}; give one email address"));
        }
        if let Some(rec) = &self.recording {
            if !(rec.rate >= 0.0 && rec.rate <= bounds.max_recording_rate) {
                return Err(format!(
                    "recording.rate = {}: between 0 and the platform's maximum, {}",
                    rec.rate, bounds.max_recording_rate
                ));
            }
            if rec.personal_attributes.len() > 100
                || rec
                    .personal_attributes
                    .iter()
                    .any(|k| k.is_empty() || k.len() > 100)
            {
                return Err(
                    "recording.personal_attributes: at most 100 keys of 1 to 100 bytes".into(),
                );
            }
            if rec.retention_days == 0 || rec.retention_days > bounds.max_retention_days {
                return Err(format!(
                    "recording.retention_days = {}: between 1 and the platform's maximum, {}",
                    rec.retention_days, bounds.max_retention_days
                ));
            }
        }
        Ok(())
    }
}

fn range<T: std::fmt::Display>(
    field: &str,
    value: T,
    allowed: &std::ops::RangeInclusive<T>,
) -> String {
    format!(
        "{field} = {value}: between {} and {}",
        allowed.start(),
        allowed.end()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        max_recording_rate: 0.1,
        max_retention_days: 30,
    };

    #[test]
    fn settings_within_bounds_pass_and_each_bound_is_named() {
        let ok: RolloutSettings = serde_json::from_str(
            r#"{"shadow_gate": 200, "rollback": {"failures": 3, "calls": 50, "secs": 300},
                "recording": {"rate": 0.05, "retention_days": 7}}"#,
        )
        .unwrap();
        assert_eq!(ok.validate(&BOUNDS), Ok(()));
        assert_eq!(RolloutSettings::default().validate(&BOUNDS), Ok(()));
        for (json, field) in [
            (r#"{"shadow_gate": 10001}"#, "shadow_gate"),
            (r#"{"notify": "not an address"}"#, "notify"),
            (
                r#"{"rollback": {"failures": 0, "calls": 5, "secs": 60}}"#,
                "rollback.failures",
            ),
            (
                r#"{"rollback": {"failures": 1, "calls": 0, "secs": 60}}"#,
                "rollback.calls",
            ),
            (
                r#"{"rollback": {"failures": 1, "calls": 5, "secs": 1}}"#,
                "rollback.secs",
            ),
            (
                r#"{"recording": {"rate": 0.5, "retention_days": 7}}"#,
                "recording.rate",
            ),
            (
                r#"{"recording": {"rate": -1, "retention_days": 7}}"#,
                "recording.rate",
            ),
            (
                r#"{"recording": {"rate": 0.1, "retention_days": 31}}"#,
                "recording.retention_days",
            ),
        ] {
            let settings: RolloutSettings = serde_json::from_str(json).unwrap();
            let err = settings.validate(&BOUNDS).unwrap_err();
            assert!(err.starts_with(field), "{json}: {err}");
        }
        assert!(serde_json::from_str::<RolloutSettings>(r#"{"gate": 1}"#).is_err());
    }
}
