//! A module's layout, read from its sections when it is loaded: whether its
//! processes can hibernate, and if so the memory a fresh instance of it
//! starts with ([`InitialMemory`]), against which snapshots are taken.

use wasmparser::{ConstExpr, DataKind, ExternalKind, Operator, Parser, Payload, TypeRef, ValType};

use super::PAGE;

const WASM_PAGE: u64 = 65536;

/// What a fresh instance's memory starts as, for the pages a snapshot
/// keeps (the part above the shadow stack).
#[derive(Debug)]
pub(crate) struct InitialMemory {
    /// Bytes below this offset are the shadow stack, dead at hibernation.
    pub(super) keep_from: usize,
    /// The initial contents of `keep_from..initial size` (data segments
    /// applied).
    pub(super) initial: Box<[u8]>,
}

/// Whether a module's processes can hibernate: its [`InitialMemory`], or
/// why not.
#[derive(Debug)]
pub(crate) struct Layout(Result<InitialMemory, String>);

impl Layout {
    /// Reads a module's sections (binary or text, as loaded).
    pub(crate) fn of(bytes: &[u8]) -> Layout {
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

    /// The initial memory, or why the module cannot hibernate.
    pub(crate) fn initial_memory(&self) -> Result<&InitialMemory, &str> {
        self.0.as_ref().map_err(String::as_str)
    }
}

fn analyse(bytes: &[u8]) -> Result<InitialMemory, String> {
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
    Ok(InitialMemory { keep_from, initial })
}

fn const_i32(expr: &ConstExpr<'_>) -> Option<i32> {
    let mut ops = expr.get_operators_reader();
    match (ops.read().ok()?, ops.read().ok()?) {
        (Operator::I32Const { value }, Operator::End) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::hibernation) fn layout(wat: &str) -> Layout {
        Layout::of(wat.as_bytes())
    }

    pub(in crate::hibernation) const STACK_FIRST: &str = r#"(module
        (memory (export "memory") 2)
        (global $sp (mut i32) (i32.const 65536))
        (data (i32.const 65536) "hello")
        (data (i32.const 70000) "world"))"#;

    #[test]
    fn a_stack_first_module_keeps_only_what_is_above_its_stack() {
        let layout = layout(STACK_FIRST);
        let initial = layout.initial_memory().unwrap();
        assert_eq!(initial.keep_from, 65536);
        assert_eq!(initial.initial.len(), 65536);
        assert_eq!(&initial.initial[..5], b"hello");
        assert_eq!(&initial.initial[70000 - 65536..][..5], b"world");
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
            let err = layout(wat).initial_memory().unwrap_err().to_string();
            assert!(err.contains(why), "{wat}: {err}");
        }
    }
}
