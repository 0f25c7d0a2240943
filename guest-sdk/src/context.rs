//! What a hook can see of its tenant: the plugin's settings, the tenant's
//! key-value data and the run log. Inside the host these read through the WIT
//! imports; in native tests they read from values the test supplies.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::PluginError;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// A failure.
    Error,
}

enum Source {
    /// Reads through the host's imports (only inside a component).
    #[cfg(target_arch = "wasm32")]
    Host { settings: OnceCell<String> },
    /// Reads from values given by a native test.
    Fixed {
        settings: OnceCell<String>,
        kv: BTreeMap<String, String>,
        logs: RefCell<Vec<(Level, String)>>,
    },
}

/// The calling tenant's view, passed to every hook.
///
/// Inside the host it reads through the WIT imports. In native tests, build one
/// with [`Context::testing`]:
///
/// ```
/// use veneer_sdk::Context;
///
/// let ctx = Context::testing()
///     .with_settings(r#"{"cap": 5000}"#)
///     .with_kv("brand:color", "#0a0a0a");
/// assert_eq!(ctx.kv_get("brand:color").as_deref(), Some("#0a0a0a"));
/// ```
pub struct Context {
    source: Source,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    #[cfg(target_arch = "wasm32")]
    #[doc(hidden)]
    pub fn host() -> Self {
        Self {
            source: Source::Host {
                settings: OnceCell::new(),
            },
        }
    }

    /// A context for native tests: settings `{}`, no key-value data, an empty log.
    pub fn testing() -> Self {
        Self {
            source: Source::Fixed {
                settings: OnceCell::new(),
                kv: BTreeMap::new(),
                logs: RefCell::new(Vec::new()),
            },
        }
    }

    /// Sets the settings JSON a test context returns. Has no effect on a host context.
    #[allow(irrefutable_let_patterns)] // only one variant exists outside wasm32
    pub fn with_settings(mut self, json: impl Into<String>) -> Self {
        if let Source::Fixed { settings, .. } = &mut self.source {
            *settings = OnceCell::from(json.into());
        }
        self
    }

    /// Adds a key-value entry to a test context. Has no effect on a host context.
    #[allow(irrefutable_let_patterns)] // only one variant exists outside wasm32
    pub fn with_kv(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        if let Source::Fixed { kv, .. } = &mut self.source {
            kv.insert(key.into(), value.into());
        }
        self
    }

    /// The plugin's settings as the tenant set them, as JSON text (`{}` when unset).
    pub fn settings_json(&self) -> &str {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host { settings } => settings.get_or_init(crate::glue::settings_get),
            Source::Fixed { settings, .. } => settings.get_or_init(|| "{}".to_owned()),
        }
    }

    /// The plugin's settings parsed into `T`.
    ///
    /// Fails with code `bad-settings` and a message naming the field when the
    /// tenant's settings do not match `T`; the host then falls back to the base.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_str(self.settings_json()).map_err(|err| {
            PluginError::new(
                "bad-settings",
                format!("the plugin's settings do not match what it expects: {err}"),
            )
        })
    }

    /// The tenant's value stored under `key`, or `None`.
    pub fn kv_get(&self, key: &str) -> Option<String> {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host { .. } => crate::glue::kv_get(key),
            Source::Fixed { kv, .. } => kv.get(key).cloned(),
        }
    }

    /// The tenant's keys that start with `prefix`, sorted, at most `limit`.
    pub fn kv_keys(&self, prefix: &str, limit: u32) -> Vec<String> {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host { .. } => crate::glue::kv_list_keys(prefix, limit),
            Source::Fixed { kv, .. } => kv
                .keys()
                .filter(|key| key.starts_with(prefix))
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .cloned()
                .collect(),
        }
    }

    /// Appends a line to the run's log (bounded by the host; excess is dropped).
    pub fn log(&self, level: Level, message: &str) {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host { .. } => crate::glue::log_write(level, message),
            Source::Fixed { logs, .. } => logs.borrow_mut().push((level, message.to_owned())),
        }
    }

    /// Logs at [`Level::Info`].
    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    /// Logs at [`Level::Warn`].
    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message);
    }

    /// The lines a test context has logged so far (empty for a host context).
    pub fn logged(&self) -> Vec<(Level, String)> {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host { .. } => Vec::new(),
            Source::Fixed { logs, .. } => logs.borrow().clone(),
        }
    }
}
