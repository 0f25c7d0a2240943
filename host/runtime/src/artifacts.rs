//! Compiled components on disk, keyed by the component's sha256 and the engine's
//! compatibility hash, so a restart (or a second node) loads native code instead
//! of recompiling. An artifact is native code the host will run, so it is
//! trusted only when it proves it was written by this host: each file starts
//! with an HMAC-SHA256 of its contents under the runtime's artifact key,
//! checked before anything is deserialized. The directory is made owner-only
//! (0700) and files 0600; a directory owned by another user is refused. Files
//! are written to a temporary name and renamed into place, so a reader never
//! sees half an artifact.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

type ArtifactMac = Hmac<Sha256>;

/// Bytes of the MAC that starts every artifact file.
const MAC_LEN: usize = 32;

/// A directory of compiled artifacts for one engine configuration.
#[derive(Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
    mac_key: [u8; 32],
}

impl std::fmt::Debug for ArtifactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ArtifactCache {
    /// Opens (creating, owner-only) the cache at `dir`, which must be absolute.
    pub(crate) fn new(dir: &Path, engine: &Engine, mac_key: [u8; 32]) -> std::io::Result<Self> {
        if !dir.is_absolute() {
            return Err(std::io::Error::other(format!(
                "the artifact directory {} is relative; give an absolute path",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir)?;
        secure_dir(dir)?;
        // A stable digest of the engine's compatibility hash (not
        // `DefaultHasher`, whose output may change between Rust releases).
        struct Feed(Sha256);
        impl std::hash::Hasher for Feed {
            fn write(&mut self, bytes: &[u8]) {
                self.0.update(bytes);
            }
            fn finish(&self) -> u64 {
                0
            }
        }
        let mut feed = Feed(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut feed);
        let digest = feed.0.finalize();
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: hex::encode(&digest[..8]),
            mac_key,
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    fn mac(&self) -> ArtifactMac {
        // Cannot fail: HMAC takes keys of any length.
        <ArtifactMac as Mac>::new_from_slice(&self.mac_key).expect("HMAC accepts any key length")
    }

    /// The cached compilation of `sha256`, if present, written by this host
    /// (its MAC checks) and loadable. Anything else is discarded.
    pub(crate) fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        let bytes = match read_private(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "discarding untrusted compiled artifact");
                let _ = std::fs::remove_file(&path);
                return None;
            }
        };
        if bytes.len() < MAC_LEN || {
            let mut mac = self.mac();
            mac.update(&bytes[MAC_LEN..]);
            mac.verify_slice(&bytes[..MAC_LEN]).is_err()
        } {
            tracing::warn!(path = %path.display(), "discarding compiled artifact whose MAC does not match (written with another key, or tampered with)");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        // SAFETY: deserializing runs native code from these bytes. They carry
        // a valid MAC under this host's artifact key, so they are exactly what
        // `store` serialized from the component whose hash names the file, for
        // this engine configuration (its hash is in the name and checked again
        // by wasmtime).
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, &bytes[MAC_LEN..]) };
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
                let mut mac = self.mac();
                mac.update(&bytes);
                let tag = mac.finalize().into_bytes();
                let tmp = self.dir.join(format!(
                    ".{sha256}-{}.{}.tmp",
                    self.engine_key,
                    std::process::id()
                ));
                let mut file = create_private(&tmp)?;
                file.write_all(&tag)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)
            });
        if let Err(err) = result {
            tracing::warn!(path = %path.display(), error = %err, "could not write compiled artifact");
        }
    }
}

impl ArtifactCache {
    /// Removes the artifacts (of any engine configuration) of every component
    /// whose sha256 `keep` refuses: those of plugins no tenant stores any more,
    /// after a tenant's purge. Returns how many files went. Errors are logged:
    /// a file left behind only costs disk.
    pub(crate) fn retain(&self, keep: &dyn Fn(&str) -> bool) -> usize {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) => {
                tracing::warn!(dir = %self.dir.display(), error = %err, "cannot list the artifact directory");
                return 0;
            }
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((sha, rest)) = name.split_once('-') else {
                continue;
            };
            let is_artifact = sha.len() == 64
                && sha.bytes().all(|b| b.is_ascii_hexdigit())
                && rest.ends_with(".cwasm");
            if !is_artifact || keep(sha) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(err) => {
                    tracing::warn!(file = name, error = %err, "cannot remove an unused compiled artifact");
                }
            }
        }
        removed
    }
}

/// Makes `dir` owner-only, refusing a directory that belongs to another user.
#[cfg(unix)]
fn secure_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(dir)?;
    if meta.uid() != current_uid()? {
        return Err(std::io::Error::other(format!(
            "the artifact directory {} belongs to another user; give a directory owned by the user running veneer",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn secure_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The user this process runs as: the owner of what it creates.
#[cfg(unix)]
fn current_uid() -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata("/proc/self")?.uid())
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create_new(path)
}

/// The file's bytes when it exists, is a regular file of ours and no one
/// else can write it; `Ok(None)` when there is no such file.
fn read_private(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.to_string()),
    };
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if meta.uid() != current_uid().map_err(|e| e.to_string())? {
            return Err("owned by another user".into());
        }
        if meta.permissions().mode() & 0o022 != 0 {
            return Err("writable by group or others".into());
        }
    }
    std::fs::read(path).map(Some).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    fn component(engine: &Engine) -> Component {
        Component::new(engine, wat::parse_str("(component)").unwrap()).unwrap()
    }

    #[test]
    fn an_artifact_round_trips_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ArtifactCache::new(dir.path(), &engine, [7; 32]).unwrap();
        cache.store("abc", &component(&engine));
        assert!(cache.load(&engine, "abc").is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(dir.path()), 0o700);
            assert_eq!(mode(&cache.path("abc")), 0o600);
        }
    }

    #[test]
    fn retain_removes_only_the_artifacts_refused() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ArtifactCache::new(dir.path(), &engine, [7; 32]).unwrap();
        let (kept, gone) = ("a".repeat(64), "b".repeat(64));
        cache.store(&kept, &component(&engine));
        cache.store(&gone, &component(&engine));
        std::fs::write(dir.path().join("notes.txt"), "not an artifact").unwrap();
        assert_eq!(cache.retain(&|sha| sha == kept), 1);
        assert!(cache.load(&engine, &kept).is_some());
        assert!(!cache.path(&gone).exists());
        assert!(
            dir.path().join("notes.txt").exists(),
            "other files are left alone"
        );
    }

    #[test]
    fn an_artifact_under_another_key_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        ArtifactCache::new(dir.path(), &engine, [1; 32])
            .unwrap()
            .store("abc", &component(&engine));
        let other = ArtifactCache::new(dir.path(), &engine, [2; 32]).unwrap();
        assert!(other.load(&engine, "abc").is_none());
        assert!(!other.path("abc").exists(), "the untrusted file is removed");
    }

    #[test]
    fn a_tampered_artifact_is_discarded_before_it_is_deserialized() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ArtifactCache::new(dir.path(), &engine, [3; 32]).unwrap();
        cache.store("abc", &component(&engine));
        let path = cache.path("abc");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(cache.load(&engine, "abc").is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_group_writable_artifact_is_not_trusted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ArtifactCache::new(dir.path(), &engine, [4; 32]).unwrap();
        cache.store("abc", &component(&engine));
        std::fs::set_permissions(cache.path("abc"), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        assert!(cache.load(&engine, "abc").is_none());
    }

    #[test]
    fn a_relative_directory_is_refused() {
        let engine = engine();
        assert!(ArtifactCache::new(Path::new("relative/dir"), &engine, [0; 32]).is_err());
    }
}
