//! How a plugin call ended. Every call ends in exactly one classified outcome,
//! with the figures the run used; traps never reach a user unclassified.

use std::time::Duration;

use serde::Serialize;

/// The class of a call's ending, as stored in run records and printed by the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The hook returned a result (which the resolver then validates).
    Ok,
    /// The plugin returned a `plugin-error` on purpose.
    PluginError,
    /// The instruction budget ran out.
    OutOfFuel,
    /// The plugin asked for more memory (or tables, or instances) than its quota.
    OutOfMemory,
    /// The wall-clock deadline passed.
    Deadline,
    /// Any other trap: `unreachable`, a panic, stack overflow, a host-call cap.
    Trap,
    /// The result broke the output cap or the section's invariants.
    InvalidOutput,
    /// The component was refused before running (see `runtime::CheckError`).
    Rejected,
    /// The result was valid but broke one of the platform's output policies.
    PolicyViolation,
}

impl OutcomeKind {
    /// The snake_case name used in JSON and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Ok => "ok",
            OutcomeKind::PluginError => "plugin_error",
            OutcomeKind::OutOfFuel => "out_of_fuel",
            OutcomeKind::OutOfMemory => "out_of_memory",
            OutcomeKind::Deadline => "deadline",
            OutcomeKind::Trap => "trap",
            OutcomeKind::InvalidOutput => "invalid_output",
            OutcomeKind::Rejected => "rejected",
            OutcomeKind::PolicyViolation => "policy_violation",
        }
    }
}

impl std::fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a call ended, carrying the hook's result when it returned one.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// The hook returned this value.
    Ok(T),
    /// The plugin refused with its own error.
    PluginError {
        /// The plugin's error code.
        code: String,
        /// The plugin's message.
        message: String,
    },
    /// Fuel ran out.
    OutOfFuel,
    /// Memory, table or instance limits were hit.
    OutOfMemory {
        /// What was refused.
        detail: String,
    },
    /// The deadline passed.
    Deadline,
    /// Another trap.
    Trap {
        /// The trap's description.
        message: String,
        /// The wasm backtrace, when one was captured.
        backtrace: Option<String>,
    },
    /// The output broke a cap or an invariant.
    InvalidOutput {
        /// What is wrong with it.
        reason: String,
    },
}

impl<T> Outcome<T> {
    /// The outcome's class.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::Ok(_) => OutcomeKind::Ok,
            Outcome::PluginError { .. } => OutcomeKind::PluginError,
            Outcome::OutOfFuel => OutcomeKind::OutOfFuel,
            Outcome::OutOfMemory { .. } => OutcomeKind::OutOfMemory,
            Outcome::Deadline => OutcomeKind::Deadline,
            Outcome::Trap { .. } => OutcomeKind::Trap,
            Outcome::InvalidOutput { .. } => OutcomeKind::InvalidOutput,
        }
    }

    /// A one-line description for logs and run records; `None` for `Ok`.
    pub fn message(&self) -> Option<String> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::PluginError { code, message } => Some(format!("{code}: {message}")),
            Outcome::OutOfFuel => Some("the plugin used up its fuel (instruction budget)".into()),
            Outcome::OutOfMemory { detail } => Some(detail.clone()),
            Outcome::Deadline => Some("the plugin ran past its wall-clock deadline".into()),
            Outcome::Trap { message, .. } => Some(message.clone()),
            Outcome::InvalidOutput { reason } => Some(reason.clone()),
        }
    }

    /// Maps the value of an `Ok` outcome.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Ok(value) => Outcome::Ok(f(value)),
            Outcome::PluginError { code, message } => Outcome::PluginError { code, message },
            Outcome::OutOfFuel => Outcome::OutOfFuel,
            Outcome::OutOfMemory { detail } => Outcome::OutOfMemory { detail },
            Outcome::Deadline => Outcome::Deadline,
            Outcome::Trap { message, backtrace } => Outcome::Trap { message, backtrace },
            Outcome::InvalidOutput { reason } => Outcome::InvalidOutput { reason },
        }
    }
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// `log.write` at trace level.
    Trace,
    /// `log.write` at debug level.
    Debug,
    /// `log.write` at info level.
    Info,
    /// `log.write` at warn level.
    Warn,
    /// `log.write` at error level.
    Error,
    /// The plugin's stdout.
    Stdout,
    /// The plugin's stderr (Rust panics land here).
    Stderr,
}

/// One line of a call's captured log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Where it came from.
    pub source: LogSource,
    /// The text, without the trailing newline.
    pub message: String,
}

/// What a call used.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunStats {
    /// Fuel consumed by instantiation and the hook.
    pub fuel_used: u64,
    /// Largest total linear memory the call reached, in bytes.
    pub peak_memory_bytes: u64,
    /// Wall time of instantiation plus the hook.
    #[serde(serialize_with = "as_micros")]
    pub wall_time: Duration,
    /// Size of the returned value's text fields, in bytes.
    pub output_bytes: u64,
    /// Captured log lines, in order.
    pub logs: Vec<LogLine>,
    /// Whether lines were dropped at the log cap.
    pub logs_truncated: bool,
}

fn as_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// One call's outcome and figures.
#[derive(Debug, Clone)]
pub struct Run<T> {
    /// How it ended.
    pub outcome: Outcome<T>,
    /// What it used.
    pub stats: RunStats,
}
