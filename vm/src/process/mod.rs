//! Processes: the record other processes reach (`shared`: [`ProcessShared`]
//! and its [`Ties`]), what a process may do (`perms`: [`Perms`], [`Limits`],
//! [`Preopen`]), the data of its `Store` and its `ProcessCtx` implementation
//! (`state`: [`ProcessState`]), and how it ended (`exit`: [`exit_reason`]).

mod exit;
mod perms;
mod shared;
mod state;
mod ties;

pub(crate) use exit::{exit_reason, truncate};
pub(crate) use perms::{Limits, Perms, Preopen};
pub(crate) use shared::ProcessShared;
pub(crate) use state::ProcessState;
pub(crate) use ties::{hold, over_limit, Ties};
