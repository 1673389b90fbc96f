//! Timers: [`send_after`] and [`cancel_timer`]. (For sleeping, see
//! [`sleep`](crate::sleep).)

use std::time::Duration;

use serde::Serialize;
use troupe_abi::{err, tag, val};

use crate::error::unexpected;
use crate::message::encode;
use crate::{host, Process};

/// A timer started by [`send_after`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerRef(pub u64);

/// Sends `msg` to `to` after `delay` (from this process). If `to` has ended
/// by then, the message is dropped. The timer belongs to this process: only
/// it can cancel it, and it is cancelled when this process ends.
///
/// # Panics
/// If this process already has `troupe_abi::limit::TIMERS` pending timers.
pub fn send_after<M: Serialize>(to: &Process<M>, msg: &M, delay: Duration) -> TimerRef {
    let data = encode(msg);
    let mut reference = 0u64;
    let delay_ns = i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX);
    let rc = host::send_after(to.pid().0, tag::DATA, &data, delay_ns, &mut reference);
    if rc != err::OK {
        unexpected("send_after", rc);
    }
    TimerRef(reference)
}

/// Cancels a timer: `true` if it had not fired yet (the message will not be
/// sent), `false` if it already fired.
pub fn cancel_timer(timer: TimerRef) -> bool {
    host::cancel_timer(timer.0) == val::TIMER_CANCELLED
}
