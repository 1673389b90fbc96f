//! What the test guests share: the line format vm/tests/all asserts on.

/// Prints `ok: <what>` or `FAIL: <what>`.
pub fn check(ok: bool, what: &str) {
    if ok {
        println!("ok: {what}");
    } else {
        println!("FAIL: {what}");
    }
}
