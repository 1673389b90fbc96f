//! How a process's call ended, as an [`ExitReason`].

use troupe_host_api::{GuestExit, LimitExceeded};

use crate::{ExitReason, Limit};

/// Classifies the result of a process's entry call.
pub(crate) fn exit_reason(result: wasmtime::Result<()>) -> ExitReason {
    let Err(e) = result else {
        return ExitReason::Normal;
    };
    if let Some(wasmtime_wasi::I32Exit(code)) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return match code {
            0 => ExitReason::Normal,
            c => ExitReason::ExitCode(*c),
        };
    }
    if let Some(GuestExit(reason)) = e.downcast_ref::<GuestExit>() {
        return reason.clone();
    }
    if let Some(LimitExceeded(limit)) = e.downcast_ref::<LimitExceeded>() {
        return ExitReason::Limit(*limit);
    }
    if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::OutOfFuel) {
        return ExitReason::Limit(Limit::Fuel);
    }
    // The cause first (it is what one-line displays show), then the whole
    // error with its Wasm backtrace, cut: it is copied into every EXIT and
    // DOWN of the process, and a deep recursion's backtrace is long.
    let mut text = format!("{}\n{e:?}", e.root_cause());
    truncate(&mut text, troupe_abi::limit::REASON_LEN as usize);
    ExitReason::Trap(text)
}

/// Cuts `text` to at most `max` bytes (at a character boundary), marking
/// the cut.
pub(crate) fn truncate(text: &mut String, max: usize) {
    const MARK: &str = " [...]";
    if text.len() <= max {
        return;
    }
    let mut end = max - MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trap_of(wat: &str) -> ExitReason {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wat).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let f = instance.get_typed_func::<(), ()>(&mut store, "f").unwrap();
        exit_reason(f.call(&mut store, ()))
    }

    #[test]
    fn a_trap_reason_starts_with_its_cause_then_the_backtrace() {
        let ExitReason::Trap(text) = trap_of(r#"(module (func (export "f") unreachable))"#) else {
            panic!("not a trap");
        };
        let first = text.lines().next().unwrap();
        assert!(first.contains("unreachable"), "{text}");
        assert!(text.contains("wasm backtrace"), "{text}");
    }
}
