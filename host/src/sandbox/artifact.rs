//! Compiled components cached on disk.
//!
//! An entry is keyed by the component's sha256 and the engine's fingerprint (wasmtime's
//! compatibility hash: its version, target, compiler flags and configuration), and is sealed
//! with an HMAC, under a key only this cache directory holds, over the digest, the fingerprint
//! and the bytes. Deserializing runs native code, so an entry whose seal does not verify for the
//! component being loaded — written by anyone but the runner, changed since, or another
//! component's entry copied over it — is never loaded: it is recompiled and overwritten.
//!
//! Steps never reach the cache: scripts run in a sandbox that does not contain it, wasm steps get
//! only directories of the stage workspace, and a run refuses a workspace that overlaps it.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::limits::MAX_COMPONENT_BYTES;

type Seal = Hmac<Sha256>;

/// Where compiled components live.
pub struct ArtifactCache {
    dir: PathBuf,
    key: Vec<u8>,
}

/// How a component was obtained, for diagnostics and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    Compiled,
    Cached,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ArtifactCache {
    /// Opens (creating if needed) a cache directory, readable and writable only by this user.
    pub fn open(dir: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .with_context(|| format!("creating the component cache {}", dir.display()))?;
        restrict_permissions(&dir, 0o700)?;
        let key_path = dir.join("seal.key");
        let key = match fs::read(&key_path) {
            Ok(key) if key.len() == 32 => key,
            _ => {
                let mut key = vec![0u8; 32];
                getrandom(&mut key)?;
                write_atomically(&key_path, &key)?;
                key
            }
        };
        Ok(ArtifactCache { dir, key })
    }

    /// The default location: `$LOCKSTEP_CACHE_DIR`, else `$XDG_CACHE_HOME/lockstep`, else
    /// `~/.cache/lockstep`, else a directory under the system temp dir.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("LOCKSTEP_CACHE_DIR") {
            return PathBuf::from(dir);
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("lockstep").join("components")
    }

    /// Loads `wasm` compiled for `engine`, compiling and caching it on a miss.
    /// The caller has already checked the digest against any pin.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &str,
    ) -> anyhow::Result<(Component, Provenance)> {
        if wasm.len() > MAX_COMPONENT_BYTES {
            anyhow::bail!(
                "the component is {} MiB; components larger than {} MiB are refused",
                wasm.len() >> 20,
                MAX_COMPONENT_BYTES >> 20
            );
        }
        let fingerprint = fingerprint(engine);
        let path = self.entry_path(digest, &fingerprint);
        if let Ok(sealed) = fs::read(&path)
            && let Some(artifact) = self.unseal(&sealed, digest, &fingerprint)
        {
            // SAFETY: the seal proves these bytes were produced by `Engine::precompile_component`
            // in this cache, for this component and an engine of this fingerprint, and not changed
            // since.
            if let Ok(component) = unsafe { Component::deserialize(engine, artifact) } {
                return Ok((component, Provenance::Cached));
            }
        }
        let artifact = engine
            .precompile_component(wasm)
            .map_err(|e| anyhow::anyhow!("{}", describe_compile_error(&format!("{e:#}"))))?;
        // SAFETY: produced just now by this engine.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        // A cache that cannot be written only costs a recompile next time.
        let _ = write_atomically(&path, &self.seal(artifact, digest, &fingerprint));
        Ok((component, Provenance::Compiled))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, digest: &str, fingerprint: &[u8; 32]) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}.cwasm", hex::encode(&fingerprint[..8])))
    }

    /// The MAC of an entry: what it is (the component's digest, the engine's fingerprint) and its bytes.
    fn mac(&self, digest: &str, fingerprint: &[u8; 32], artifact: &[u8]) -> Seal {
        let mut mac = Seal::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"lockstep compiled component v1\0");
        mac.update(digest.as_bytes());
        mac.update(b"\0");
        mac.update(fingerprint);
        mac.update(artifact);
        mac
    }

    fn seal(&self, mut artifact: Vec<u8>, digest: &str, fingerprint: &[u8; 32]) -> Vec<u8> {
        let tag = self
            .mac(digest, fingerprint, &artifact)
            .finalize()
            .into_bytes();
        artifact.extend_from_slice(&tag);
        artifact
    }

    fn unseal<'a>(
        &self,
        sealed: &'a [u8],
        digest: &str,
        fingerprint: &[u8; 32],
    ) -> Option<&'a [u8]> {
        let split = sealed.len().checked_sub(32)?;
        let (artifact, tag) = sealed.split_at(split);
        self.mac(digest, fingerprint, artifact)
            .verify_slice(tag)
            .ok()
            .map(|()| artifact)
    }
}

/// The engine's identity for compiled code: a sha256 of wasmtime's compatibility hash, which
/// covers its version, the target, the compiler flags and the engine configuration.
fn fingerprint(engine: &Engine) -> [u8; 32] {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            unreachable!("only written to")
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

/// wasmtime's compile errors are accurate but terse for someone who handed us the wrong file.
fn describe_compile_error(text: &str) -> String {
    if text.contains("expected a WebAssembly component but was given a WebAssembly module")
        || text.contains("attempted to parse a wasm module with a component parser")
    {
        return "this is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)".to_string();
    }
    if text.contains("magic header")
        || text.contains("unexpected end")
        || text.contains("failed to parse")
    {
        return format!("this is not a valid WebAssembly component: {text}");
    }
    format!("the component could not be compiled: {text}")
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    restrict_permissions(&tmp, 0o600)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

fn restrict_permissions(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting permissions of {}", path.display()))
}

fn getrandom(buf: &mut [u8]) -> anyhow::Result<()> {
    use std::io::Read;
    fs::File::open("/dev/urandom")?.read_exact(buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Vec<u8> {
        fs::read(lockstep_test_components::path("noop")).unwrap()
    }

    #[test]
    fn a_second_load_comes_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, wasm) = (Engine::default(), noop());
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let digest = sha256_hex(&wasm);
        assert_eq!(
            cache.load(&engine, &wasm, &digest).unwrap().1,
            Provenance::Compiled
        );
        assert_eq!(
            cache.load(&engine, &wasm, &digest).unwrap().1,
            Provenance::Cached
        );
    }

    #[test]
    fn a_tampered_entry_is_recompiled_never_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, wasm) = (Engine::default(), noop());
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let digest = sha256_hex(&wasm);
        cache.load(&engine, &wasm, &digest).unwrap();
        let entry = cache.entry_path(&digest, &fingerprint(&engine));
        let mut bytes = fs::read(&entry).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        fs::write(&entry, &bytes).unwrap();
        assert_eq!(
            cache.load(&engine, &wasm, &digest).unwrap().1,
            Provenance::Compiled
        );
        assert_eq!(
            cache.load(&engine, &wasm, &digest).unwrap().1,
            Provenance::Cached,
            "the entry was rewritten"
        );
    }

    #[test]
    fn another_components_entry_copied_over_this_ones_is_recompiled_never_run() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let (noop, busy) = (
            noop(),
            fs::read(lockstep_test_components::path("busy-loop")).unwrap(),
        );
        let (noop_digest, busy_digest) = (sha256_hex(&noop), sha256_hex(&busy));
        cache.load(&engine, &noop, &noop_digest).unwrap();
        cache.load(&engine, &busy, &busy_digest).unwrap();
        let fingerprint = fingerprint(&engine);
        fs::copy(
            cache.entry_path(&busy_digest, &fingerprint),
            cache.entry_path(&noop_digest, &fingerprint),
        )
        .unwrap();
        assert_eq!(
            cache.load(&engine, &noop, &noop_digest).unwrap().1,
            Provenance::Compiled,
            "the swapped entry's seal names another component"
        );
    }

    #[test]
    fn an_entry_sealed_for_another_engine_configuration_is_recompiled() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = noop();
        let digest = sha256_hex(&wasm);
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let engine = Engine::default();
        cache.load(&engine, &wasm, &digest).unwrap();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        assert_ne!(fingerprint(&engine), fingerprint(&other));
        fs::copy(
            cache.entry_path(&digest, &fingerprint(&engine)),
            cache.entry_path(&digest, &fingerprint(&other)),
        )
        .unwrap();
        assert_eq!(
            cache.load(&other, &wasm, &digest).unwrap().1,
            Provenance::Compiled
        );
    }

    #[test]
    fn a_core_module_or_garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path()).unwrap();
        let core_module = b"\0asm\x01\0\0\0";
        let err = cache
            .load(&Engine::default(), core_module, "x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("core WebAssembly module, not a component"),
            "{err}"
        );
        let err = cache
            .load(&Engine::default(), b"not wasm at all", "y")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid WebAssembly component"), "{err}");
        let huge = vec![0u8; MAX_COMPONENT_BYTES + 1];
        let err = cache
            .load(&Engine::default(), &huge, "z")
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than 50 MiB"), "{err}");
    }
}
