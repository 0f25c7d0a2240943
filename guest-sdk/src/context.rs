//! What a hook can see of its tenant: the plugin's settings, the tenant's
//! key-value data and the run log. Inside the host these read through the WIT
//! imports; in native tests they read from values the test supplies.

use std::any::{Any, TypeId};
use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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
    Host,
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
            source: Source::Host,
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
    ///
    /// Inside the host this is read once per instance: an instance only ever
    /// sees one tenant's settings at one version (see the WIT `settings`
    /// interface), so later calls on a kept instance skip the host call.
    pub fn settings_json(&self) -> &str {
        match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host => {
                static SETTINGS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                SETTINGS.get_or_init(crate::glue::settings_get)
            }
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

    /// The plugin's settings parsed into `T`, parsed once and shared: later
    /// calls with the same settings text (on an instance the host keeps between
    /// calls, or in a native test) get the same parsed value without parsing
    /// again. Errors are not kept; they are reported as by [`Context::settings`].
    ///
    /// ```
    /// use veneer_sdk::Context;
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Settings { cap: u64 }
    ///
    /// let ctx = Context::testing().with_settings(r#"{"cap": 5000}"#);
    /// let first = ctx.settings_shared::<Settings>().unwrap();
    /// let again = ctx.settings_shared::<Settings>().unwrap();
    /// assert_eq!(first.cap, 5000);
    /// assert!(std::sync::Arc::ptr_eq(&first, &again));
    /// ```
    pub fn settings_shared<T>(&self) -> Result<Arc<T>, PluginError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        /// Parsed settings by type and text, newest last, at most `KEPT`. A
        /// host context's entries have no text: its settings never change
        /// within an instance, so the type alone is the key, and the text is
        /// not compared on every call (a byte loop over it, in Wasm).
        type Parsed = Vec<(TypeId, Option<Arc<str>>, Arc<dyn Any + Send + Sync>)>;
        const KEPT: usize = 8;
        static PARSED: Mutex<Parsed> = Mutex::new(Vec::new());

        let json = self.settings_json();
        let text = match &self.source {
            #[cfg(target_arch = "wasm32")]
            Source::Host => None,
            Source::Fixed { .. } => Some(json),
        };
        let id = TypeId::of::<T>();
        let mut parsed = PARSED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(value) = parsed
            .iter()
            .find(|(t, kept, _)| *t == id && kept.as_deref() == text)
            .and_then(|(_, _, value)| value.clone().downcast::<T>().ok())
        {
            return Ok(value);
        }
        let value = Arc::new(self.settings::<T>()?);
        if parsed.len() >= KEPT {
            parsed.remove(0);
        }
        parsed.push((id, text.map(Arc::from), value.clone()));
        Ok(value)
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

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Cap {
        cap: u64,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Other {
        #[serde(default)]
        cap: Option<u64>,
    }

    #[test]
    fn shared_settings_are_parsed_once_per_text_and_type() {
        let ctx = Context::testing().with_settings(r#"{"cap": 7001}"#);
        let first = ctx.settings_shared::<Cap>().unwrap();
        assert_eq!(*first, Cap { cap: 7001 });
        assert!(Arc::ptr_eq(&first, &ctx.settings_shared::<Cap>().unwrap()));
        // Another context with the same text shares it too.
        let same = Context::testing().with_settings(r#"{"cap": 7001}"#);
        assert!(Arc::ptr_eq(&first, &same.settings_shared::<Cap>().unwrap()));
        // Other text, other value; another type, its own parse.
        let changed = Context::testing().with_settings(r#"{"cap": 7002}"#);
        assert_eq!(changed.settings_shared::<Cap>().unwrap().cap, 7002);
        assert_eq!(
            *ctx.settings_shared::<Other>().unwrap(),
            Other { cap: Some(7001) }
        );
        assert_eq!(ctx.settings_shared::<Cap>().unwrap().cap, 7001);
    }

    #[test]
    fn bad_settings_are_reported_every_time_and_never_kept() {
        let ctx = Context::testing().with_settings(r#"{"cap": "lots"}"#);
        for _ in 0..2 {
            let err = ctx.settings_shared::<Cap>().unwrap_err();
            assert_eq!(err.code, "bad-settings");
            assert!(err.message.contains("expected u64"), "{}", err.message);
        }
        assert!(
            Context::testing()
                .with_settings(r#"{"cap": 3}"#)
                .settings_shared::<Cap>()
                .is_ok()
        );
    }
}
