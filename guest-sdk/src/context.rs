//! What a hook can see of its tenant besides its settings: the tenant's
//! key-value data and the run log. Inside the host these go through the WIT
//! imports; in native tests they use values the test supplies. (Settings are
//! not here: the SDK parses them once per instance and hands them to
//! [`crate::Plugin::new`].)

use std::cell::RefCell;
use std::collections::BTreeMap;

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
    Host,
    /// Reads from values given by a native test.
    Fixed {
        kv: BTreeMap<String, String>,
        logs: RefCell<Vec<(Level, String)>>,
    },
}

/// The calling tenant's view, passed to [`crate::Plugin::new`] and to every hook.
///
/// Inside the host it reads through the WIT imports. In native tests, build one
/// with [`Context::testing`]:
///
/// ```
/// use veneer_sdk::Context;
///
/// let ctx = Context::testing().with_kv("brand:color", "#0a0a0a");
/// assert_eq!(ctx.kv_get("brand:color").as_deref(), Some("#0a0a0a"));
/// ctx.info("hello");
/// assert_eq!(ctx.logged().len(), 1);
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
    pub(crate) fn host() -> Self {
        Self {
            source: Source::Host,
        }
    }

    /// A context for native tests: no key-value data, an empty log.
    pub fn testing() -> Self {
        Self {
            source: Source::Fixed {
                kv: BTreeMap::new(),
                logs: RefCell::new(Vec::new()),
            },
        }
    }

    /// Adds a key-value entry to a test context. Has no effect on a host context.
    #[allow(irrefutable_let_patterns)] // only one variant exists outside wasm32
    pub fn with_kv(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        if let Source::Fixed { kv, .. } = &mut self.source {
            kv.insert(key.into(), value.into());
        }
        self
    }

    /// The tenant's value stored under `key`, or `None`.
    pub fn kv_get(&self, key: &str) -> Option<String> {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host => crate::glue::kv_get(key),
            Source::Fixed { kv, .. } => kv.get(key).cloned(),
        }
    }

    /// The tenant's keys that start with `prefix`, sorted, at most `limit`.
    pub fn kv_keys(&self, prefix: &str, limit: u32) -> Vec<String> {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host => crate::glue::kv_list_keys(prefix, limit),
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
            Source::Host => crate::glue::log_write(level, message),
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
            Source::Host => Vec::new(),
            Source::Fixed { logs, .. } => logs.borrow().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_context_lists_keys_by_prefix_within_the_limit() {
        let ctx = Context::testing()
            .with_kv("brand:a", "1")
            .with_kv("brand:b", "2")
            .with_kv("other", "3");
        assert_eq!(ctx.kv_keys("brand:", 10), ["brand:a", "brand:b"]);
        assert_eq!(ctx.kv_keys("brand:", 1), ["brand:a"]);
        assert_eq!(ctx.kv_get("missing"), None);
        ctx.warn("careful");
        assert_eq!(ctx.logged(), [(Level::Warn, "careful".to_owned())]);
    }
}
