//! The raw host functions of the Troupe VM, exactly as `host-api/SPEC.md`
//! declares them.
//!
//! Everything here is `unsafe` and takes pointers as `i32` offsets into the
//! caller's linear memory. Use the safe API of the crate instead; this module
//! is public only for SDK authors and for experiments.
//!
//! On targets other than `wasm32` the functions exist (so that the crate
//! builds and its pure parts can be tested on the host) but panic with
//! "troupe guests run only on wasm32".

// The import module names must be string literals in `#[link]`; they are
// checked against `troupe_abi::module` by a test (see `tests` below).

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "troupe_process")]
extern "C" {
    /// The caller's pid.
    pub fn self_pid() -> i64;
    /// Copies the explanation of the caller's last error into `buf`
    /// (truncated to `buf_len`) and returns its full length.
    pub fn error_message(buf_ptr: i32, buf_len: i32) -> i32;
    /// Compiles a module and writes its `u64` handle at `out_module`.
    pub fn module_load(bytes_ptr: i32, bytes_len: i32, out_module: i32) -> i32;
    /// The handle of the caller's own module.
    pub fn module_self() -> i64;
    /// Creates a spawn configuration ("inherit everything") and returns its handle.
    pub fn config_new() -> i64;
    /// Frees a spawn configuration.
    pub fn config_drop(config: i64) -> i32;
    /// Sets the child's argv: NUL-terminated UTF-8 strings.
    pub fn config_set_args(config: i64, ptr: i32, len: i32) -> i32;
    /// Replaces the child's environment: NUL-terminated `KEY=VALUE` strings.
    pub fn config_set_envs(config: i64, ptr: i32, len: i32) -> i32;
    /// Narrows the child's preopened directories: NUL-terminated guest paths.
    pub fn config_preopens_only(config: i64, ptr: i32, len: i32) -> i32;
    /// Starts a new process running export `entry` of `module`.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        module: i64,
        config: i64,
        entry_ptr: i32,
        entry_len: i32,
        params_ptr: i32,
        params_count: i32,
        arg_ptr: i32,
        arg_len: i32,
        out_pid: i32,
    ) -> i32;
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "troupe_message")]
extern "C" {
    /// Queues a copy of `data` with `tag` in `pid`'s mailbox.
    pub fn send(pid: i64, tag: i64, data_ptr: i32, data_len: i32) -> i32;
    /// Takes the oldest message whose tag is one of `tags` (all if
    /// `tags_count` is 0), waiting up to `timeout_ns` (negative: forever).
    pub fn receive(
        tags_ptr: i32,
        tags_count: i32,
        timeout_ns: i64,
        buf_ptr: i32,
        buf_cap: i32,
        info_ptr: i32,
    ) -> i32;
    /// Copies the held message (after `BUFFER_TOO_SMALL`) into `buf`.
    pub fn read(buf_ptr: i32, buf_len: i32) -> i32;
}

#[cfg(not(target_arch = "wasm32"))]
mod host_stubs {
    #![allow(missing_docs, clippy::missing_safety_doc, clippy::too_many_arguments)]

    fn unsupported() -> ! {
        panic!("troupe guests run only on wasm32 (build with --target wasm32-wasip1)")
    }
    pub unsafe fn self_pid() -> i64 {
        unsupported()
    }
    pub unsafe fn error_message(_: i32, _: i32) -> i32 {
        unsupported()
    }
    pub unsafe fn module_load(_: i32, _: i32, _: i32) -> i32 {
        unsupported()
    }
    pub unsafe fn module_self() -> i64 {
        unsupported()
    }
    pub unsafe fn config_new() -> i64 {
        unsupported()
    }
    pub unsafe fn config_drop(_: i64) -> i32 {
        unsupported()
    }
    pub unsafe fn config_set_args(_: i64, _: i32, _: i32) -> i32 {
        unsupported()
    }
    pub unsafe fn config_set_envs(_: i64, _: i32, _: i32) -> i32 {
        unsupported()
    }
    pub unsafe fn config_preopens_only(_: i64, _: i32, _: i32) -> i32 {
        unsupported()
    }
    pub unsafe fn spawn(
        _: i64,
        _: i64,
        _: i32,
        _: i32,
        _: i32,
        _: i32,
        _: i32,
        _: i32,
        _: i32,
    ) -> i32 {
        unsupported()
    }
    pub unsafe fn send(_: i64, _: i64, _: i32, _: i32) -> i32 {
        unsupported()
    }
    pub unsafe fn receive(_: i32, _: i32, _: i64, _: i32, _: i32, _: i32) -> i32 {
        unsupported()
    }
    pub unsafe fn read(_: i32, _: i32) -> i32 {
        unsupported()
    }
}
#[cfg(not(target_arch = "wasm32"))]
pub use host_stubs::*;

/// A pointer as the `i32` offset the host functions take. On wasm32 this is
/// exact; elsewhere the value is meaningless (the stubs panic before using it).
#[inline(always)]
pub fn ptr<T: ?Sized>(p: *const T) -> i32 {
    p as *const u8 as usize as i32
}

/// A mutable pointer as the `i32` offset the host functions take.
#[inline(always)]
pub fn ptr_mut<T: ?Sized>(p: *mut T) -> i32 {
    p as *mut u8 as usize as i32
}

/// A length as the `i32` the host functions take.
///
/// # Panics
/// If `len` does not fit (impossible on wasm32 for a real buffer).
#[inline(always)]
pub fn len(len: usize) -> i32 {
    i32::try_from(len).expect("length does not fit in an i32")
}

#[cfg(test)]
mod tests {
    /// The `#[link(wasm_import_module = ...)]` literals above must be the
    /// names that `troupe-abi` defines.
    #[test]
    fn import_module_names_match_abi() {
        let src = include_str!("sys.rs");
        for name in [troupe_abi::module::PROCESS, troupe_abi::module::MESSAGE] {
            let attr = format!("#[link(wasm_import_module = \"{name}\")]");
            assert_eq!(src.matches(&attr).count(), 1, "missing {attr}");
        }
    }
}
