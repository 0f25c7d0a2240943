//! Compiled components on disk, keyed by the component's sha256 and the engine's
//! compatibility hash, so a restart (or a second node) loads native code instead
//! of recompiling. Files are written to a temporary name and renamed into place,
//! so a reader never sees half an artifact.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled artifacts for one engine configuration.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of `sha256`, if present and loadable.
    pub(crate) fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !path.exists() {
            return None;
        }
        // SAFETY: deserializing runs native code from the file. Only this module
        // writes into the cache directory, from `Component::serialize` of the
        // component whose hash names the file, and the engine hash in the name
        // rules out another engine configuration. The directory belongs to the
        // host (document it as such); a tampered file is as dangerous as a
        // tampered host binary.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "discarding unusable compiled artifact");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores the compilation of `sha256`. Failures are logged, not fatal: the
    /// cache only saves time.
    pub(crate) fn store(&self, sha256: &str, component: &Component) {
        let path = self.path(sha256);
        let result = component
            .serialize()
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let tmp = self.dir.join(format!(
                    ".{sha256}-{}.{}.tmp",
                    self.engine_key,
                    std::process::id()
                ));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)
            });
        if let Err(err) = result {
            tracing::warn!(path = %path.display(), error = %err, "could not write compiled artifact");
        }
    }
}
