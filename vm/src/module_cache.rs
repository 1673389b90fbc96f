//! Modules compiled once, cached by the SHA-256 of their bytes, and
//! pre-linked (`InstancePre`) so that a spawn only instantiates.
//!
//! The cache is bounded: besides the modules that processes run, it keeps
//! at most [`MAX_IDLE_MODULES`] others, of at most [`MAX_IDLE_BYTES`] bytes
//! together, and forgets the oldest first (their handles then give
//! `NO_SUCH_MODULE`; loading the bytes again gives a new handle).
//!
//! The VM loads the root's module with [`VmInner::load_module`], and a
//! guest's (`module_load`) with [`VmInner::load_module_off_thread`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use sha2::{Digest, Sha256};
use troupe_abi::err;
use troupe_host_api::HostError;
use wasmtime::{Engine, ExternType, InstancePre, Linker, Module, ValType};

use crate::hibernation::Layout;
use crate::process::ProcessState;
use crate::vm::VmInner;

/// Modules no process runs that the cache keeps at most.
pub(crate) const MAX_IDLE_MODULES: usize = 32;
/// Bytes (of Wasm) of the modules no process runs that the cache keeps at
/// most.
pub(crate) const MAX_IDLE_BYTES: usize = 64 << 20;

/// A compiled, pre-linked module.
pub(crate) struct LoadedModule {
    /// The VM-wide handle guests use (never 0, which means "own module").
    pub(crate) id: u64,
    /// The SHA-256 of its bytes, and their length.
    hash: [u8; 32],
    size: usize,
    pub(crate) module: Module,
    pub(crate) pre: InstancePre<ProcessState>,
    /// Whether its processes can hibernate, and its initial memory.
    pub(crate) layout: Layout,
}

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid module (wasmtime's reason).
    #[error("is not a valid WebAssembly module: {0}")]
    Invalid(String),
    /// An import is unknown or has the wrong type.
    #[error("cannot be linked: {0}")]
    Link(String),
}

/// Why an entry cannot be spawned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum EntryError {
    #[error("module has no export {0:?}")]
    Missing(String),
    #[error("export {0:?} is not a function")]
    NotAFunction(String),
    #[error("entry {name:?} takes {expected} parameters, {given} given")]
    ParamCount {
        name: String,
        expected: usize,
        given: usize,
    },
    #[error("entry {name:?} has a parameter of type {ty}; spawn passes only i32 and i64")]
    ParamType { name: String, ty: String },
}

impl LoadedModule {
    /// Checks that `name` is an exported function spawn can call with
    /// `given` parameters, and returns its parameter types.
    pub(crate) fn entry_params(
        &self,
        name: &str,
        given: usize,
    ) -> Result<Vec<ValType>, EntryError> {
        let ty = self
            .module
            .get_export(name)
            .ok_or_else(|| EntryError::Missing(name.to_owned()))?;
        let ExternType::Func(f) = ty else {
            return Err(EntryError::NotAFunction(name.to_owned()));
        };
        let params: Vec<ValType> = f.params().collect();
        if params.len() != given {
            return Err(EntryError::ParamCount {
                name: name.to_owned(),
                expected: params.len(),
                given,
            });
        }
        if let Some(bad) = params
            .iter()
            .find(|t| !matches!(t, ValType::I32 | ValType::I64))
        {
            return Err(EntryError::ParamType {
                name: name.to_owned(),
                ty: bad.to_string(),
            });
        }
        Ok(params)
    }
}

/// The VM's module cache.
#[derive(Default)]
pub(crate) struct ModuleCache {
    by_hash: Mutex<HashMap<[u8; 32], Arc<LoadedModule>>>,
    by_id: DashMap<u64, Arc<LoadedModule>>,
    next_id: AtomicU64,
}

impl ModuleCache {
    /// Returns the cached module with these bytes, compiling and linking it
    /// on first use. `allow_text` also accepts the WebAssembly text format.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        linker: &Linker<ProcessState>,
        bytes: &[u8],
        allow_text: bool,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        Self::check_magic(bytes, allow_text)?;
        self.load_hashed(engine, linker, bytes, Self::hash(bytes))
    }

    /// Whether `bytes` can be a module at all: Wasm's magic bytes (or, with
    /// `allow_text`, the text format's opening parenthesis).
    pub(crate) fn check_magic(bytes: &[u8], allow_text: bool) -> Result<(), LoadError> {
        let text = allow_text && bytes.trim_ascii_start().starts_with(b"(");
        if !(bytes.starts_with(b"\0asm") || text) {
            return Err(LoadError::Invalid(
                "it does not start with the WebAssembly magic bytes \\0asm".into(),
            ));
        }
        Ok(())
    }

    /// [`ModuleCache::load`] of bytes whose SHA-256 is `hash`, once
    /// [`ModuleCache::check_magic`] passed.
    pub(crate) fn load_hashed(
        &self,
        engine: &Engine,
        linker: &Linker<ProcessState>,
        bytes: &[u8],
        hash: [u8; 32],
    ) -> Result<Arc<LoadedModule>, LoadError> {
        if let Some(m) = self.lock().get(&hash) {
            return Ok(m.clone());
        }
        // Compile without holding the lock: other loads go on meanwhile.
        let module =
            Module::new(engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let layout = Layout::of(bytes);
        let mut by_hash = self.lock();
        if let Some(m) = by_hash.get(&hash) {
            return Ok(m.clone());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let loaded = Arc::new(LoadedModule {
            id,
            hash,
            size: bytes.len(),
            module,
            pre,
            layout,
        });
        by_hash.insert(hash, loaded.clone());
        self.by_id.insert(id, loaded.clone());
        self.evict_idle(&mut by_hash);
        Ok(loaded)
    }

    /// Forgets the oldest modules nobody holds (no process runs them, no
    /// load is returning them) while there are more of them than the
    /// limits allow.
    fn evict_idle(&self, by_hash: &mut HashMap<[u8; 32], Arc<LoadedModule>>) {
        // Held by the two maps only.
        let mut idle: Vec<(u64, [u8; 32], usize)> = by_hash
            .values()
            .filter(|m| Arc::strong_count(m) == 2)
            .map(|m| (m.id, m.hash, m.size))
            .collect();
        idle.sort_unstable();
        let mut bytes: usize = idle.iter().map(|(_, _, size)| size).sum();
        let mut count = idle.len();
        for (id, hash, size) in idle {
            if count <= MAX_IDLE_MODULES && bytes <= MAX_IDLE_BYTES {
                break;
            }
            by_hash.remove(&hash);
            self.by_id.remove(&id);
            count -= 1;
            bytes -= size;
        }
    }

    /// The SHA-256 of `bytes`, the cache's key.
    pub(crate) fn hash(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    /// The cached module whose bytes hash to `hash`, if it is loaded.
    pub(crate) fn cached(&self, hash: &[u8; 32]) -> Option<Arc<LoadedModule>> {
        self.lock().get(hash).cloned()
    }

    /// A module by handle.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<LoadedModule>> {
        self.by_id.get(&id).map(|m| m.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<LoadedModule>>> {
        crate::lock(&self.by_hash)
    }
}

/// The largest module a guest may load (`module_load`). Go modules are
/// 2-10 MiB; compiling takes about 150 MiB of memory per MiB of code.
const MAX_MODULE_BYTES: usize = 32 << 20;

impl VmInner {
    pub(crate) fn load_module(
        &self,
        bytes: &[u8],
        allow_text: bool,
    ) -> Result<Arc<LoadedModule>, LoadError> {
        self.modules
            .load(&self.engine, &self.linker, bytes, allow_text)
    }

    /// Loads a module for a guest (`module_load`): hashed and compiled on
    /// blocking threads, one compile at a time, so that neither a scheduler thread
    /// nor the machine's memory is taken by guests' compiles; at most
    /// [`MAX_MODULE_BYTES`].
    pub(crate) async fn load_module_off_thread(
        self: &Arc<Self>,
        bytes: Vec<u8>,
    ) -> Result<Arc<LoadedModule>, HostError> {
        if bytes.len() > MAX_MODULE_BYTES {
            return Err(HostError::new(
                err::INVALID_MODULE,
                format!(
                    "the module is {} bytes; a process may load modules of at most {} MiB",
                    bytes.len(),
                    MAX_MODULE_BYTES >> 20
                ),
            ));
        }
        // Hashing 32 MiB takes tens of milliseconds: not on a scheduler
        // thread either.
        let (bytes, hash) = tokio::task::spawn_blocking(move || {
            let hash = ModuleCache::hash(&bytes);
            (bytes, hash)
        })
        .await
        .map_err(|e| HostError::new(err::INVALID_MODULE, format!("hashing failed: {e}")))?;
        if let Some(m) = self.modules.cached(&hash) {
            return Ok(m);
        }
        let invalid = |e: LoadError| HostError::new(err::INVALID_MODULE, format!("the module {e}"));
        ModuleCache::check_magic(&bytes, false).map_err(invalid)?;
        let _turn = self.compiling.acquire().await;
        let vm = self.clone();
        tokio::task::spawn_blocking(move || {
            vm.modules.load_hashed(&vm.engine, &vm.linker, &bytes, hash)
        })
        .await
        .map_err(|e| HostError::new(err::INVALID_MODULE, format!("the compiler failed: {e}")))?
        .map_err(invalid)
    }
}
