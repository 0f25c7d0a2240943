//! The limits one plugin call runs under. Admins set them per plugin; every
//! mechanism of the sandbox (fuel, epoch deadline, memory limiter, output and
//! host-call caps, log cap) reads them from one `Quota`.

use serde::{Deserialize, Serialize};

/// Largest linear memory the engine's pool reserves per instance; no quota may
/// ask for more.
pub const MAX_MEMORY_BYTES: u64 = 512 << 20;
/// Longest wall-clock deadline any quota may set.
pub const MAX_DEADLINE_MS: u64 = 30_000;
/// Core instances a plugin's component may create: what one slot of the
/// engine's instance pool holds, and what the store's limiter allows.
pub const MAX_INSTANCES: u32 = 8;
/// Linear memories one slot of the pool holds (and the limiter allows).
pub const MAX_MEMORIES: u32 = 2;
/// Tables one slot of the pool holds (and the limiter allows).
pub const MAX_TABLES: u32 = 4;

/// Resource limits for one plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Quota {
    /// Instruction budget (wasmtime fuel, about one unit per wasm instruction).
    pub fuel: u64,
    /// Linear memory, all memories of the call together, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock deadline for instantiation plus the hook, in milliseconds.
    pub deadline_ms: u64,
    /// Largest result a hook may return, in bytes of its text fields.
    pub output_bytes: u64,
    /// Bytes that may cross host calls (settings, key-value reads, log lines) per call.
    pub host_call_bytes: u64,
    /// Bytes of logs (structured log plus stdout and stderr) kept per call.
    pub log_bytes: u64,
    /// Elements across all tables.
    pub table_elements: u64,
    /// Core instances per call (at most [`MAX_INSTANCES`], what a pool slot holds).
    pub instances: u32,
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            fuel: 20_000_000,
            memory_bytes: 64 << 20,
            deadline_ms: 250,
            output_bytes: 1 << 20,
            host_call_bytes: 4 << 20,
            log_bytes: 64 << 10,
            table_elements: 20_000,
            instances: MAX_INSTANCES,
        }
    }
}

/// A quota value outside what the host can enforce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quota.{field}: {message}")]
pub struct QuotaError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong and the allowed range.
    pub message: String,
}

impl Quota {
    /// This quota with its fuel and deadline capped at `fuel` and `deadline_ms`
    /// (every other limit unchanged): the budget of an attempt made in place.
    pub fn capped(&self, fuel: u64, deadline_ms: u64) -> Self {
        Self {
            fuel: self.fuel.min(fuel),
            deadline_ms: self.deadline_ms.min(deadline_ms),
            ..*self
        }
    }

    /// Each limit the smaller of this quota's and `ceiling`'s: a release's
    /// quota under the platform's current ceiling for its installation.
    pub fn within(&self, ceiling: &Quota) -> Self {
        Self {
            fuel: self.fuel.min(ceiling.fuel),
            memory_bytes: self.memory_bytes.min(ceiling.memory_bytes),
            deadline_ms: self.deadline_ms.min(ceiling.deadline_ms),
            output_bytes: self.output_bytes.min(ceiling.output_bytes),
            host_call_bytes: self.host_call_bytes.min(ceiling.host_call_bytes),
            log_bytes: self.log_bytes.min(ceiling.log_bytes),
            table_elements: self.table_elements.min(ceiling.table_elements),
            instances: self.instances.min(ceiling.instances),
        }
    }

    /// Checks every field is within what the engine can enforce.
    pub fn validate(&self) -> Result<(), QuotaError> {
        let range = |field: &'static str, value: u64, min: u64, max: u64| {
            if value < min || value > max {
                Err(QuotaError {
                    field,
                    message: format!("{value} is outside the allowed range {min}..={max}"),
                })
            } else {
                Ok(())
            }
        };
        range("fuel", self.fuel, 1_000, u64::MAX / 2)?;
        range(
            "memory_bytes",
            self.memory_bytes,
            64 << 10,
            MAX_MEMORY_BYTES,
        )?;
        range("deadline_ms", self.deadline_ms, 1, MAX_DEADLINE_MS)?;
        range("output_bytes", self.output_bytes, 1 << 10, 64 << 20)?;
        range("host_call_bytes", self.host_call_bytes, 1 << 10, 256 << 20)?;
        range("log_bytes", self.log_bytes, 0, 16 << 20)?;
        range("table_elements", self.table_elements, 1, 1_000_000)?;
        range(
            "instances",
            u64::from(self.instances),
            1,
            u64::from(MAX_INSTANCES),
        )?;
        Ok(())
    }

    /// The fields of `self` that a run with these figures would exceed, as
    /// `(field, limit)` pairs: what the local runner reports against the defaults.
    pub fn exceeded_by(
        &self,
        fuel_used: u64,
        peak_memory_bytes: u64,
        wall_time_ms: u64,
    ) -> Vec<(&'static str, u64)> {
        let mut out = Vec::new();
        if fuel_used > self.fuel {
            out.push(("fuel", self.fuel));
        }
        if peak_memory_bytes > self.memory_bytes {
            out.push(("memory_bytes", self.memory_bytes));
        }
        if wall_time_ms > self.deadline_ms {
            out.push(("deadline_ms", self.deadline_ms));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Quota::default().validate().unwrap();
    }

    #[test]
    fn out_of_range_names_the_field() {
        let quota = Quota {
            memory_bytes: MAX_MEMORY_BYTES + 1,
            ..Quota::default()
        };
        let err = quota.validate().unwrap_err();
        assert_eq!(err.field, "memory_bytes");
        assert!(err.to_string().contains("allowed range"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<Quota>(r#"{"fuel": 5, "cpu": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `cpu`"));
    }
}
