//! Checked access to a guest's linear memory.
//!
//! Every pointer and length a guest passes goes through these helpers: a
//! range outside the memory becomes an error that traps the calling process
//! (and only it) with a message naming the host function and the range.

use wasmtime::{AsContext, AsContextMut, Caller, Memory};

use crate::ProcessCtx;

/// The caller's memory, or a trap if the module exports none. (Until the
/// VM has the instance, as in a module's start function, which runs while
/// it is being made, the memory is found through the caller.)
pub fn memory_of<T: ProcessCtx>(
    caller: &mut Caller<'_, T>,
    func: &str,
) -> wasmtime::Result<Memory> {
    caller
        .data()
        .memory()
        .or_else(|| caller.get_export("memory")?.into_memory())
        .ok_or_else(|| {
            wasmtime::format_err!("{func}: the module exports no linear memory named \"memory\"")
        })
}

/// The byte range `ptr..ptr + len` if it lies within `mem_len` bytes, else
/// the trap error naming `func` and `what` (as [`slice`] gives).
pub fn range(
    func: &str,
    what: &str,
    ptr: i32,
    len: i32,
    mem_len: usize,
) -> wasmtime::Result<std::ops::Range<usize>> {
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

/// Borrows `len` bytes at `ptr`.
pub fn slice<'a, T: ProcessCtx>(
    memory: &Memory,
    store: &'a impl AsContext<Data = T>,
    func: &str,
    what: &str,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<&'a [u8]> {
    let data = memory.data(store);
    let r = range(func, what, ptr, len, data.len())?;
    Ok(&data[r])
}

/// Borrows `len` bytes at `ptr` mutably.
pub fn slice_mut<'a, T: ProcessCtx>(
    memory: &Memory,
    store: &'a mut impl AsContextMut<Data = T>,
    func: &str,
    what: &str,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<&'a mut [u8]> {
    let data = memory.data_mut(store);
    let r = range(func, what, ptr, len, data.len())?;
    Ok(&mut data[r])
}

/// Writes a little-endian `u64` at `ptr`.
pub fn write_u64<T: ProcessCtx>(
    memory: &Memory,
    store: &mut impl AsContextMut<Data = T>,
    func: &str,
    what: &str,
    ptr: i32,
    value: u64,
) -> wasmtime::Result<()> {
    slice_mut(memory, store, func, what, ptr, 8)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// Reads a UTF-8 string of `len` bytes at `ptr`; `Ok(Err(..))` if it is not
/// UTF-8 (an argument error, not a trap).
pub fn read_str<T: ProcessCtx>(
    memory: &Memory,
    store: &impl AsContext<Data = T>,
    func: &str,
    what: &str,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Result<String, String>> {
    let bytes = slice(memory, store, func, what, ptr, len)?;
    Ok(std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|e| format!("{what} is not UTF-8: {e}")))
}

/// [`read_str`] for an argument: text that is not UTF-8 is an
/// `INVALID_ARGUMENT` error for the caller (a bad pointer still traps).
pub fn read_str_arg<T: ProcessCtx>(
    memory: &Memory,
    store: &impl AsContext<Data = T>,
    func: &str,
    what: &str,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Result<String, crate::HostError>> {
    Ok(read_str(memory, store, func, what, ptr, len)?
        .map_err(|e| crate::HostError::new(troupe_abi::err::INVALID_ARGUMENT, e)))
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
