//! Hibernation: a process that waits for a message without an instance.
//!
//! A process that calls `troupe_process::hibernate(entry, params)` gives up
//! its call stack. The VM keeps only what a fresh instance of its module
//! would not recreate, the pages of its linear memory that differ from the
//! module's initial image, compressed, and frees the instance: its linear
//! memory slot, its fiber stack, its `Store`. When a message arrives it
//! instantiates the module again, puts those pages back and calls
//! `entry(params)`.
//!
//! That is all of a process's state only for modules whose other state is
//! recreated as it was: exactly one (defined, not shared) memory, no
//! imported memory, table or mutable global, no passive data, no start
//! function, and at most
//! one mutable global, which must be an `i32` (the shadow-stack pointer:
//! with the frames gone it is reset to its initial value, which is what a
//! fresh instance has). Rust's `wasm32-wasip1` programs are such modules
//! (checked by [`Layout::of`] when the module is loaded). Tables are not
//! saved: compilers for Rust and C never change a table at run time.
//!
//! A stack-first layout (the stack below the data, as Rust links by
//! default) lets the shadow stack itself be skipped: once the frames are
//! gone nothing below the stack pointer's initial value is live.

use wasmparser::{ConstExpr, DataKind, ExternalKind, Operator, Parser, Payload, TypeRef, ValType};

/// The granularity at which memory is compared and saved.
const PAGE: usize = 4096;
const WASM_PAGE: u64 = 65536;
/// Saved pages are stored as the 64-byte chunks that changed (most do not).
const CHUNK: usize = PAGE / 64;
static ZERO: [u8; PAGE] = [0; PAGE];

/// What a module's memory starts as, for the pages that are kept.
#[derive(Debug)]
pub struct Image {
    /// Bytes below this offset are the shadow stack, dead at hibernation.
    keep_from: usize,
    /// The initial contents of `keep_from..initial size` (data segments
    /// applied).
    initial: Box<[u8]>,
}

/// Whether a module's processes can hibernate: its [`Image`], or why not.
#[derive(Debug)]
pub struct Layout(Result<Image, String>);

impl Layout {
    /// Reads a module's sections (binary or text, as loaded).
    pub fn of(bytes: &[u8]) -> Layout {
        let binary;
        let bytes = if bytes.starts_with(b"\0asm") {
            bytes
        } else {
            match wat::parse_bytes(bytes) {
                Ok(b) => {
                    binary = b.into_owned();
                    &binary
                }
                Err(e) => return Layout(Err(format!("its text does not parse: {e}"))),
            }
        };
        Layout(analyse(bytes))
    }

    /// The image, or why the module cannot hibernate.
    pub fn image(&self) -> Result<&Image, &str> {
        self.0.as_ref().map_err(String::as_str)
    }
}

fn analyse(bytes: &[u8]) -> Result<Image, String> {
    let mut memories = Vec::new();
    let mut mutable = Vec::new();
    let mut segments = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| e.to_string())? {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import.map_err(|e| e.to_string())?;
                    let what = match import.ty {
                        TypeRef::Memory(_) => "a memory",
                        TypeRef::Table(_) => "a table",
                        TypeRef::Global(g) if g.mutable => "a mutable global",
                        _ => continue,
                    };
                    return Err(format!(
                        "it imports {what} ({}::{}), whose state the VM cannot keep",
                        import.module, import.name
                    ));
                }
            }
            Payload::MemorySection(mems) => {
                for m in mems {
                    memories.push(m.map_err(|e| e.to_string())?);
                }
            }
            Payload::GlobalSection(globals) => {
                for g in globals {
                    let g = g.map_err(|e| e.to_string())?;
                    if g.ty.mutable {
                        mutable.push((g.ty.content_type, const_i32(&g.init_expr)));
                    }
                }
            }
            Payload::DataSection(data) => {
                for d in data {
                    let d = d.map_err(|e| e.to_string())?;
                    match d.kind {
                        DataKind::Active {
                            memory_index: 0,
                            offset_expr,
                        } => {
                            let offset = const_i32(&offset_expr)
                                .ok_or("a data segment's offset is not a constant".to_string())?;
                            segments.push((offset as u32 as usize, d.data));
                        }
                        _ => return Err("it has passive data segments".into()),
                    }
                }
            }
            Payload::StartSection { .. } => {
                // It would run again in each fresh instance, before the
                // saved memory is put back, and its effects on the host
                // (messages, sockets) would repeat.
                return Err("it has a start function, which would run again at each wake".into());
            }
            Payload::ExportSection(exports) => {
                for e in exports {
                    let e = e.map_err(|e| e.to_string())?;
                    if e.kind == ExternalKind::Table {
                        return Err(format!(
                            "it exports its table ({:?}), which others could change",
                            e.name
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    let [memory] = memories[..] else {
        return Err(format!(
            "it defines {} memories; only a module with one can hibernate",
            memories.len()
        ));
    };
    if memory.memory64 || memory.shared {
        return Err("its memory is 64-bit or shared".into());
    }
    let stack_top = match mutable[..] {
        [] => 0,
        [(ValType::I32, Some(top))] => top as u32 as usize,
        _ => {
            return Err(format!(
                "it has {} mutable globals; only a module with at most one, an i32 stack \
                 pointer, can hibernate",
                mutable.len()
            ))
        }
    };
    let size = (memory.initial * WASM_PAGE) as usize;
    // Stack-first: nothing but the stack below the stack pointer's start.
    let keep_from = if segments.iter().all(|(at, _)| *at >= stack_top) {
        stack_top.min(size) / PAGE * PAGE
    } else {
        0
    };
    let mut initial = vec![0u8; size - keep_from].into_boxed_slice();
    for (at, data) in segments {
        let end = at
            .checked_add(data.len())
            .filter(|end| *end <= size)
            .ok_or("a data segment lies outside the initial memory")?;
        let from = at.max(keep_from);
        if from < end {
            initial[from - keep_from..end - keep_from].copy_from_slice(&data[from - at..]);
        }
    }
    Ok(Image { keep_from, initial })
}

fn const_i32(expr: &ConstExpr<'_>) -> Option<i32> {
    let mut ops = expr.get_operators_reader();
    match (ops.read().ok()?, ops.read().ok()?) {
        (Operator::I32Const { value }, Operator::End) => Some(value),
        _ => None,
    }
}

/// A hibernated process's memory: the pages that differ from the module's
/// image, XORed with it (so mostly zeros), without their all-zero 64-byte
/// chunks, LZ4-compressed.
pub struct Snapshot {
    /// The memory's size, bytes.
    size: usize,
    /// LZ4 of: the number of pages (`u32` LE), then for each page its index
    /// (`u32` LE), a bitmap of its non-zero chunks (`u64` LE) and those
    /// chunks. (Long zero runs are left out before LZ4 because LZ4's safe
    /// decoder copies them byte by byte.)
    packed: Box<[u8]>,
}

impl Snapshot {
    /// Saves `memory` (the whole linear memory) against `image`.
    pub fn take(memory: &[u8], image: &Image) -> Snapshot {
        let mut raw = vec![0; 4];
        let mut pages = 0u32;
        let mut delta = [0u8; PAGE];
        let start = image.keep_from.min(memory.len());
        for (i, page) in memory[start..].chunks(PAGE).enumerate() {
            let at = i * PAGE;
            let init = image.initial.get(at..).unwrap_or(&[]);
            let init = &init[..init.len().min(page.len())];
            let (same, rest) = page.split_at(init.len());
            if same == init && rest == &ZERO[..rest.len()] {
                continue;
            }
            pages += 1;
            let delta = &mut delta[..page.len()];
            delta.copy_from_slice(page);
            for (now, was) in delta.iter_mut().zip(init) {
                *now ^= was;
            }
            // The page's index, a bitmap of its non-zero chunks, the chunks.
            raw.extend_from_slice(&(((start + at) / PAGE) as u32).to_le_bytes());
            let mask_at = raw.len();
            raw.extend_from_slice(&0u64.to_le_bytes());
            let mut mask = 0u64;
            for (c, chunk) in delta.chunks(CHUNK).enumerate() {
                if chunk != &ZERO[..chunk.len()] {
                    mask |= 1 << c;
                    raw.extend_from_slice(chunk);
                }
            }
            raw[mask_at..mask_at + 8].copy_from_slice(&mask.to_le_bytes());
        }
        raw[..4].copy_from_slice(&pages.to_le_bytes());
        Snapshot {
            size: memory.len(),
            packed: lz4_flex::compress_prepend_size(&raw).into_boxed_slice(),
        }
    }

    /// The memory size to grow a fresh instance's memory to, bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes held while hibernated.
    pub fn packed_len(&self) -> usize {
        self.packed.len()
    }

    /// Puts the saved pages back into `memory`, a fresh instance's memory
    /// already grown to [`Snapshot::size`].
    pub fn restore(&self, memory: &mut [u8]) -> Result<(), String> {
        const BAD: &str = "the saved memory is malformed";
        let raw = lz4_flex::decompress_size_prepended(&self.packed)
            .map_err(|e| format!("the saved memory does not decompress: {e}"))?;
        let mut rest = &raw[..];
        let mut take = |n: usize| -> Result<&[u8], String> {
            let (head, tail) = rest.split_at_checked(n).ok_or(BAD)?;
            rest = tail;
            Ok(head)
        };
        let pages = u32::from_le_bytes(take(4)?.try_into().unwrap());
        for _ in 0..pages {
            let at = u32::from_le_bytes(take(4)?.try_into().unwrap()) as usize * PAGE;
            let mask = u64::from_le_bytes(take(8)?.try_into().unwrap());
            let page = memory
                .get_mut(at..at + PAGE)
                .ok_or("a saved page lies outside the memory")?;
            for (c, target) in page.chunks_mut(CHUNK).enumerate() {
                if mask & (1 << c) != 0 {
                    for (t, d) in target.iter_mut().zip(take(CHUNK)?) {
                        *t ^= d;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(wat: &str) -> Layout {
        Layout::of(wat.as_bytes())
    }

    const STACK_FIRST: &str = r#"(module
        (memory (export "memory") 2)
        (global $sp (mut i32) (i32.const 65536))
        (data (i32.const 65536) "hello")
        (data (i32.const 70000) "world"))"#;

    #[test]
    fn a_stack_first_module_keeps_only_what_is_above_its_stack() {
        let layout = layout(STACK_FIRST);
        let image = layout.image().unwrap();
        assert_eq!(image.keep_from, 65536);
        assert_eq!(image.initial.len(), 65536);
        assert_eq!(&image.initial[..5], b"hello");
        assert_eq!(&image.initial[70000 - 65536..][..5], b"world");
    }

    #[test]
    fn modules_with_state_the_vm_cannot_keep_are_refused_with_a_reason() {
        for (wat, why) in [
            (
                r#"(module (memory 1) (global (mut i32) (i32.const 0)) (global (mut i32) (i32.const 0)))"#,
                "2 mutable globals",
            ),
            (
                r#"(module (import "a" "m" (memory 1)))"#,
                "imports a memory",
            ),
            (r#"(module)"#, "defines 0 memories"),
            (r#"(module (memory 1) (data "x"))"#, "passive data"),
            (
                r#"(module (memory 1) (table (export "t") 1 funcref))"#,
                "exports its table",
            ),
            (
                r#"(module (memory 1) (global (mut i64) (i64.const 0)))"#,
                "at most one, an i32",
            ),
        ] {
            let err = layout(wat).image().unwrap_err().to_string();
            assert!(err.contains(why), "{wat}: {err}");
        }
    }

    #[test]
    fn a_snapshot_restores_changed_pages_and_grown_memory_exactly() {
        let layout = layout(STACK_FIRST);
        let image = layout.image().unwrap();
        // The memory as a fresh instance has it, then grown by one page and
        // changed in the data, in the grown part and in the (dead) stack.
        let fresh = |size: usize| {
            let mut m = vec![0u8; size];
            m[65536..65536 + 5].copy_from_slice(b"hello");
            m[70000..70005].copy_from_slice(b"world");
            m
        };
        let mut live = fresh(3 * 65536);
        live[70001] = b'W';
        live[150_000..150_004].copy_from_slice(b"heap");
        live[100] = 7; // the stack: not kept
        let snap = Snapshot::take(&live, image);
        assert_eq!(snap.size(), 3 * 65536);
        assert!(
            snap.packed_len() < 200,
            "two XORed pages compress: {}",
            snap.packed_len()
        );

        let mut woken = fresh(snap.size());
        snap.restore(&mut woken).unwrap();
        live[100] = 0;
        assert!(woken == live, "the memory is back, the stack aside");
    }

    #[test]
    fn an_unchanged_memory_saves_no_page() {
        let layout = layout(STACK_FIRST);
        let image = layout.image().unwrap();
        let mut m = vec![0u8; 2 * 65536];
        m[65536..65536 + 5].copy_from_slice(b"hello");
        m[70000..70005].copy_from_slice(b"world");
        let snap = Snapshot::take(&m, image);
        let raw = lz4_flex::decompress_size_prepended(&snap.packed).unwrap();
        assert_eq!(raw, 0u32.to_le_bytes());
        let mut m2 = m.clone();
        snap.restore(&mut m2).unwrap();
        assert!(m2 == m);
    }
}
