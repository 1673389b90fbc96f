//! The host-call layer: what every host function is made of.
//!
//! A host function is its ABI and nothing else. It gets a [`Guest`], the
//! calling process seen from the host (its [`ProcessCtx`], its linear
//! memory through checked reads and writes, the function's name), and
//! returns `Result<R, Fault>`, so that `?` works on both kinds of failure:
//!
//! - [`Fault::Trap`]: the guest broke the ABI's contract (a pointer outside
//!   its memory, no exported memory): the calling process traps, and only
//!   it;
//! - [`Fault::Code`]: the call failed in a way the ABI reports (a
//!   [`HostError`]): the guest gets the error code, and `error_message`
//!   explains it.
//!
//! [`call`] (or [`Guest::finish`], for a host function that waits) turns
//! that result into what wasmtime expects.
//!
//! ```
//! # use troupe_host_api::{call::{call, Fault}, ProcessCtx};
//! # use wasmtime::Caller;
//! fn whereis<T: ProcessCtx>(
//!     mut caller: Caller<'_, T>, ptr: i32, len: i32, out_pid: i32,
//! ) -> wasmtime::Result<i32> {
//!     call(&mut caller, "troupe_registry::whereis", |g| {
//!         g.check("out_pid", out_pid, 8)?; // out of bounds: a trap
//!         let name = g.read_str("name", ptr, len)?; // not UTF-8: an error code
//!         let pid = g.ctx().whereis(&name).ok_or_else(|| {
//!             troupe_host_api::HostError::new(troupe_host_api::abi::err::NOT_FOUND, "no such name")
//!         })?;
//!         g.write_u64("out_pid", out_pid, pid)?;
//!         Ok(troupe_host_api::abi::err::OK)
//!     })
//! }
//! ```

use std::fmt::Display;
use std::ops::Range;

use wasmtime::{AsContext, Caller, Memory};

use crate::{HostError, ProcessCtx};

/// How a host call fails.
#[derive(Debug)]
pub enum Fault {
    /// Trap the calling process with this error.
    Trap(wasmtime::Error),
    /// Return this error's code to the guest and remember its sentence.
    Code(HostError),
}

impl From<HostError> for Fault {
    fn from(e: HostError) -> Self {
        Fault::Code(e)
    }
}

impl From<wasmtime::Error> for Fault {
    fn from(e: wasmtime::Error) -> Self {
        Fault::Trap(e)
    }
}

/// Splits a result into its trap, to return at once with `?`, and its error
/// code, to return later: a host function checks every pointer (a trap)
/// before it reports a bad argument (a code).
pub fn trap_now<R>(result: Result<R, Fault>) -> Result<Result<R, HostError>, Fault> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(Fault::Code(e)) => Ok(Err(e)),
        Err(trap) => Err(trap),
    }
}

/// What a host call returns when it fails with an error code.
pub trait AbiReturn {
    /// The value the guest sees for a failed call with `code`.
    fn on_error(code: i32) -> Self;
}

impl AbiReturn for i32 {
    /// The code itself (the ABI's codes are negative, `OK` is 0).
    fn on_error(code: i32) -> Self {
        code
    }
}

impl AbiReturn for i64 {
    /// 0: a call that returns a handle or a reference returns 0, which is
    /// never one, when it fails (the code is in `error_message`'s text).
    fn on_error(_: i32) -> Self {
        0
    }
}

/// The calling process, seen by a host function.
pub struct Guest<'a, 'c, T: 'static> {
    caller: &'a mut Caller<'c, T>,
    func: &'static str,
    memory: Option<Memory>,
}

/// The body of a host function that waits (for `Linker::func_wrap_async`):
/// `host_async!(caller, "ns::name", |g| body(g, args))` makes the boxed
/// future that runs `body` against the calling [`Guest`] and ends as
/// [`Guest::finish`] does.
macro_rules! host_async {
    ($caller:ident, $func:expr, |$g:ident| $body:expr) => {
        Box::new(async move {
            let mut guest = $crate::call::Guest::new(&mut $caller, $func);
            let result = {
                let $g = &mut guest;
                $body.await
            };
            guest.finish(result)
        })
    };
}
pub(crate) use host_async;

/// Runs the body of a host function that does not wait, and turns its
/// result into what wasmtime expects (see [`Guest::finish`]).
pub fn call<T: ProcessCtx, R: AbiReturn>(
    caller: &mut Caller<'_, T>,
    func: &'static str,
    body: impl FnOnce(&mut Guest<'_, '_, T>) -> Result<R, Fault>,
) -> wasmtime::Result<R> {
    let mut guest = Guest::new(caller, func);
    let result = body(&mut guest);
    guest.finish(result)
}

impl<'a, 'c, T: ProcessCtx> Guest<'a, 'c, T> {
    /// The guest calling `func` (its full name, e.g. `troupe_message::send`,
    /// which traps and errors name).
    pub fn new(caller: &'a mut Caller<'c, T>, func: &'static str) -> Self {
        Guest {
            caller,
            func,
            memory: None,
        }
    }

    /// The host function's name.
    pub fn func(&self) -> &'static str {
        self.func
    }

    /// The process's state.
    pub fn ctx(&self) -> &T {
        self.caller.data()
    }

    /// The process's state, mutably.
    pub fn ctx_mut(&mut self) -> &mut T {
        self.caller.data_mut()
    }

    /// The wasmtime caller (for what the layer does not cover, such as
    /// fuel).
    pub fn caller(&mut self) -> &mut Caller<'c, T> {
        self.caller
    }

    /// A trap naming the host function.
    pub fn trap(&self, why: impl Display) -> Fault {
        Fault::Trap(wasmtime::format_err!("{}: {why}", self.func))
    }

    /// The caller's memory, or a trap if the module exports none. (Until the
    /// VM has the instance, as in a module's start function, which runs
    /// while it is being made, the memory is found through the caller.)
    pub fn memory(&mut self) -> Result<Memory, Fault> {
        if let Some(m) = self.memory {
            return Ok(m);
        }
        let found = self
            .caller
            .data()
            .memory()
            .or_else(|| self.caller.get_export("memory")?.into_memory());
        let memory = found
            .ok_or_else(|| self.trap("the module exports no linear memory named \"memory\""))?;
        self.memory = Some(memory);
        Ok(memory)
    }

    /// The byte range `ptr..ptr + len` of the caller's memory, or a trap
    /// naming the argument `what` if it is not all inside.
    pub fn check(&mut self, what: &str, ptr: i32, len: i32) -> Result<Range<usize>, Fault> {
        let size = self.memory()?.data_size(&*self.caller);
        Ok(range(self.func, what, ptr, len, size)?)
    }

    /// Borrows `len` bytes at `ptr`.
    pub fn bytes(&mut self, what: &str, ptr: i32, len: i32) -> Result<&[u8], Fault> {
        let r = self.check(what, ptr, len)?;
        let memory = self.memory()?;
        Ok(&memory.data(self.caller.as_context())[r])
    }

    /// Borrows `len` bytes at `ptr` mutably.
    pub fn bytes_mut(&mut self, what: &str, ptr: i32, len: i32) -> Result<&mut [u8], Fault> {
        let r = self.check(what, ptr, len)?;
        let memory = self.memory()?;
        Ok(&mut memory.data_mut(&mut *self.caller)[r])
    }

    /// Copies `len` bytes at `ptr` out of the caller's memory.
    pub fn read(&mut self, what: &str, ptr: i32, len: i32) -> Result<Vec<u8>, Fault> {
        Ok(self.bytes(what, ptr, len)?.to_vec())
    }

    /// Reads a UTF-8 string argument: text that is not UTF-8 is an
    /// `INVALID_ARGUMENT` error (a bad pointer still traps).
    pub fn read_str(&mut self, what: &str, ptr: i32, len: i32) -> Result<String, Fault> {
        let bytes = self.bytes(what, ptr, len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(HostError::new(
                troupe_abi::err::INVALID_ARGUMENT,
                format!("{what} is not UTF-8: {e}"),
            )
            .into()),
        }
    }

    /// Writes `bytes` at `ptr`.
    pub fn write(&mut self, what: &str, ptr: i32, bytes: &[u8]) -> Result<(), Fault> {
        self.bytes_mut(what, ptr, bytes.len() as i32)?
            .copy_from_slice(bytes);
        Ok(())
    }

    /// Writes a little-endian `u64` at `ptr`.
    pub fn write_u64(&mut self, what: &str, ptr: i32, value: u64) -> Result<(), Fault> {
        self.write(what, ptr, &value.to_le_bytes())
    }

    /// Writes a little-endian `u32` at `ptr`.
    pub fn write_u32(&mut self, what: &str, ptr: i32, value: u32) -> Result<(), Fault> {
        self.write(what, ptr, &value.to_le_bytes())
    }

    /// The whole memory and the process's state at once (to copy between
    /// them without an intermediate buffer).
    pub fn memory_and_ctx(&mut self) -> Result<(&mut [u8], &mut T), Fault> {
        let memory = self.memory()?;
        Ok(memory.data_and_store_mut(&mut *self.caller))
    }

    /// Ends a host call: `Ok` is returned as is; an error code is recorded
    /// for `error_message` and returned as [`AbiReturn::on_error`] gives; a
    /// trap is returned to wasmtime, which unwinds the calling process.
    pub fn finish<R: AbiReturn>(self, result: Result<R, Fault>) -> wasmtime::Result<R> {
        match result {
            Ok(value) => Ok(value),
            Err(Fault::Code(e)) => Ok(R::on_error(self.caller.data_mut().record_error(e))),
            Err(Fault::Trap(e)) => Err(e),
        }
    }
}

/// The byte range `ptr..ptr + len` if it lies within `mem_len` bytes, else
/// the trap error naming `func` and the argument `what`.
pub fn range(
    func: &str,
    what: &str,
    ptr: i32,
    len: i32,
    mem_len: usize,
) -> wasmtime::Result<Range<usize>> {
    let start = ptr as u32 as usize;
    let n = len as u32 as usize;
    match start.checked_add(n) {
        Some(end) if end <= mem_len => Ok(start..end),
        _ => Err(wasmtime::format_err!(
            "{func}: {what} at {start:#x} with length {n} is outside the process's memory \
             ({mem_len} bytes)"
        )),
    }
}

/// Splits a list of NUL-terminated UTF-8 strings (the ABI's list encoding).
pub fn split_nul_list(bytes: &[u8], what: &str) -> Result<Vec<String>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if bytes.last() != Some(&0) {
        return Err(format!(
            "{what}: the list must end with a NUL byte (each item is NUL-terminated)"
        ));
    }
    bytes[..bytes.len() - 1]
        .split(|b| *b == 0)
        .map(|item| {
            std::str::from_utf8(item)
                .map(str::to_owned)
                .map_err(|e| format!("{what}: an item is not UTF-8: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_list_splits_items_and_keeps_empty_ones() {
        assert_eq!(
            split_nul_list(b"a\0\0bc\0", "args").unwrap(),
            vec!["a".to_string(), String::new(), "bc".to_string()]
        );
        assert_eq!(split_nul_list(b"", "args").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn nul_list_rejects_missing_terminator_and_bad_utf8() {
        assert!(split_nul_list(b"abc", "args")
            .unwrap_err()
            .contains("must end with a NUL"));
        assert!(split_nul_list(b"\xff\0", "args")
            .unwrap_err()
            .contains("not UTF-8"));
    }

    #[test]
    fn ranges_past_the_end_or_overflowing_are_rejected() {
        assert_eq!(range("f", "buf", 10, 6, 16).unwrap(), 10..16);
        let e = range("f", "buf", 10, 7, 16).unwrap_err().to_string();
        assert!(e.contains("f: buf at 0xa with length 7 is outside"), "{e}");
        // -1 as a pointer is 0xffffffff: out of any 32-bit memory's bounds.
        assert!(range("f", "buf", -1, 2, 1 << 16).is_err());
        assert!(range("f", "buf", 0, -1, 1 << 16).is_err());
    }
}
