//! The errors that end or unwind a process from a host function or its
//! limiter: [`GuestExit`], [`Hibernate`], [`LimitExceeded`]. Exit reasons
//! themselves ([`ExitReason`], [`Limit`]) are defined once, in `troupe-abi`.

pub use troupe_abi::{ExitReason, Limit};

/// The error a host function returns to end the calling process with a
/// reason of its own (`exit`); the VM turns it into that exit reason.
#[derive(Debug)]
pub struct GuestExit(pub ExitReason);

impl std::fmt::Display for GuestExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the process exited with reason {}", self.0)
    }
}

impl std::error::Error for GuestExit {}

/// The error `hibernate` returns to unwind the calling process's stack; the
/// VM then keeps its memory, frees its instance, and calls `entry(params)`
/// in a fresh instance when a message arrives.
#[derive(Debug)]
pub struct Hibernate {
    /// The export to call when the process wakes.
    pub entry: String,
    /// Its parameters.
    pub params: Vec<i64>,
}

impl std::fmt::Display for Hibernate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the process hibernated (to wake in {:?})", self.entry)
    }
}

impl std::error::Error for Hibernate {}

/// The error a process's resource limiter returns when a limit is passed.
#[derive(Debug)]
pub struct LimitExceeded(pub Limit);

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", ExitReason::Limit(self.0))
    }
}

impl std::error::Error for LimitExceeded {}
