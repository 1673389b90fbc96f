//! Links, monitors, exit signals and exit reasons: Erlang's fault-tolerance
//! primitives (see `host-api/SPEC.md`, "Links, monitors and exit signals").
//!
//! - [`link`]: a bidirectional link. When a process ends abnormally its
//!   linked processes end with the same reason, unless they [`trap_exit`],
//!   in which case they receive an [`Event::Exit`] instead.
//! - [`monitor`]: one-way; the watcher receives one [`Event::Down`].
//! - [`kill`] cannot be trapped; [`send_exit`] can.
//! - [`exit`] ends the calling process with a reason of its own.
//!
//! Events arrive in the mailbox next to ordinary messages: take them with
//! [`Mailbox::receive_event`](crate::Mailbox::receive_event).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe_abi::{err, tag};

use crate::error::unexpected;
use crate::message::{codec, receive_with, timeout_ns};
use crate::{host, Pid, ReceiveError, SendError};

/// Why a process ended, and which limit it exceeded: defined once, in
/// `troupe-abi`, for the host and the guests alike.
pub use troupe_abi::{ExitReason, Limit};

/// A monitor, as returned by [`monitor`]; its DOWN event carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MonitorRef(pub u64);

/// Something that arrives in a mailbox: an ordinary message, or a signal
/// turned into a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Event<M> {
    /// An ordinary message and its sender.
    Message {
        /// The sender.
        from: Pid,
        /// The message.
        msg: M,
    },
    /// A linked process ended (this process traps exits), or `from` sent
    /// an exit signal with [`send_exit`].
    Exit {
        /// The process that ended (or sent the signal).
        from: Pid,
        /// Its reason.
        reason: ExitReason,
    },
    /// A monitored process ended.
    Down {
        /// The monitor that fired.
        monitor: MonitorRef,
        /// The process that ended.
        pid: Pid,
        /// Its reason.
        reason: ExitReason,
    },
}

fn no_process(pid: Pid, rc: i32, function: &str) -> Result<(), SendError> {
    match rc {
        err::OK => Ok(()),
        err::NO_PROCESS => Err(SendError::NoProcess(pid)),
        code => unexpected(function, code),
    }
}

/// Links this process and `pid`: if either ends abnormally, the other ends
/// too (or, trapping exits, gets an [`Event::Exit`]). `NoProcess` if `pid`
/// does not exist (Erlang raises `noproc` in the caller instead).
pub fn link(pid: Pid) -> Result<(), SendError> {
    no_process(pid, host::link(pid.0), "link")
}

/// Removes the link with `pid`, if any.
pub fn unlink(pid: Pid) {
    host::unlink(pid.0);
}

/// Monitors `pid`: when it ends this process receives one
/// [`Event::Down`] with the returned reference (at once, with
/// [`ExitReason::NoProc`], if `pid` does not exist).
///
/// # Panics
/// If this process already holds `troupe_abi::limit::MONITORS` monitors.
pub fn monitor(pid: Pid) -> MonitorRef {
    match host::monitor(pid.0) {
        0 => unexpected("monitor", err::RESOURCE_LIMIT),
        reference => MonitorRef(reference),
    }
}

/// Stops a monitor and removes its DOWN event if already queued (Erlang's
/// `demonitor(Ref, [flush])`). `false` if this process holds no such
/// monitor and no DOWN of it was queued.
pub fn demonitor(monitor: MonitorRef) -> bool {
    let held = match host::demonitor(monitor.0) {
        err::OK => true,
        err::NOT_FOUND => false,
        code => unexpected("demonitor", code),
    };
    // A DOWN already taken into this process's stash is flushed too.
    let stashed = crate::message::drop_stashed(|m| is_down_of(m, monitor));
    held || stashed
}

/// Whether `m` is the DOWN message of `monitor`.
pub(crate) fn is_down_of(m: &crate::RawMessage, monitor: MonitorRef) -> bool {
    m.tag == tag::DOWN && m.data.get(..8) == Some(&monitor.0.to_le_bytes()[..])
}

/// Stops a monitor this process holds and has not seen fire, making sure
/// its DOWN never arrives: if the monitored process ended at the same moment
/// (`demonitor` found neither the monitor nor its DOWN), the DOWN is on its
/// way and is waited for and dropped.
pub(crate) fn demonitor_surely(monitor: MonitorRef) {
    if !demonitor(monitor) {
        let _ = crate::message::receive_matching(Some(Duration::from_secs(5)), |m| {
            if is_down_of(&m, monitor) {
                Ok(())
            } else {
                Err(m)
            }
        });
    }
}

/// Waits for an EXIT message from `pid` alone (this process traps exits;
/// other messages stay queued): its reason, or `Timeout`.
pub fn receive_exit_from(pid: Pid, timeout: Option<Duration>) -> Result<ExitReason, ReceiveError> {
    crate::message::receive_matching(timeout, |m| {
        if m.tag == tag::EXIT && m.from == pid {
            Ok(m)
        } else {
            Err(m)
        }
    })
    .map(|m| match system_event::<()>(m.tag, m.from, &m.data) {
        Some(Event::Exit { reason, .. }) => reason,
        _ => ExitReason::NoProc,
    })
}

/// Waits for the DOWN of `monitor` only (other messages stay queued), at
/// most `timeout` (`None`: forever): the reason the process ended with.
pub fn receive_down_from(
    monitor: MonitorRef,
    timeout: Option<Duration>,
) -> Result<ExitReason, ReceiveError> {
    crate::message::receive_matching(timeout, |m| {
        if is_down_of(&m, monitor) {
            Ok(m)
        } else {
            Err(m)
        }
    })
    .map(|m| match system_event::<()>(m.tag, m.from, &m.data) {
        Some(Event::Down { reason, .. }) => reason,
        _ => ExitReason::NoProc,
    })
}

/// Turns exit trapping on or off; returns the previous setting. A process
/// that traps exits receives [`Event::Exit`] instead of dying with its links.
pub fn trap_exit(enable: bool) -> bool {
    host::trap_exit(enable)
}

/// Kills `pid` (untrappable): it ends with [`ExitReason::Killed`].
pub fn kill(pid: Pid) -> Result<(), SendError> {
    no_process(pid, host::kill(pid.0), "kill")
}

/// Sends the exit signal `reason` to `pid`, as if a linked process had ended
/// with it (Erlang's `exit(Pid, Reason)`): a trapping process gets an
/// [`Event::Exit`]; otherwise `Normal` is ignored and any other reason ends
/// it.
pub fn send_exit(pid: Pid, reason: &ExitReason) -> Result<(), SendError> {
    let data = reason.encode();
    let rc = host::send_exit(pid.0, &data);
    no_process(pid, rc, "send_exit")
}

/// Ends this process now with `reason`.
pub fn exit(reason: ExitReason) -> ! {
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let data = reason.encode();
    host::exit(&data)
}

/// Makes a panic end this process with [`ExitReason::Trap`] carrying the
/// panic's message and place (after the usual report on stderr), instead of
/// the bare `unreachable` trap of `panic = "abort"`: links and monitors then
/// see why it crashed, as Erlang's exit reasons say.
pub(crate) fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("Box<dyn Any>");
        let reason = match info.location() {
            Some(at) => format!("panicked at {at}: {message}"),
            None => format!("panicked: {message}"),
        };
        exit(ExitReason::Trap(reason));
    }));
}

/// Decodes an EXIT or DOWN payload into an event.
pub(crate) fn system_event<M>(tag: u64, from: Pid, data: &[u8]) -> Option<Event<M>> {
    use bincode::Options;
    match tag {
        tag::EXIT => {
            let (pid, reason): (u64, ExitReason) = codec().deserialize(data).ok()?;
            Some(Event::Exit {
                from: Pid(pid),
                reason,
            })
        }
        tag::DOWN => {
            let (monitor, pid, reason): (u64, u64, ExitReason) = codec().deserialize(data).ok()?;
            debug_assert_eq!(pid, from.0);
            Some(Event::Down {
                monitor: MonitorRef(monitor),
                pid: Pid(pid),
                reason,
            })
        }
        _ => None,
    }
}

/// Waits for the next DOWN event (other messages stay queued): the
/// monitor, the pid and the reason.
pub fn receive_down(
    timeout: Option<Duration>,
) -> Result<(MonitorRef, Pid, ExitReason), ReceiveError> {
    receive_with(&[tag::DOWN], timeout_ns(timeout), |t, from, data| {
        system_event::<()>(t, from, data)
    })
    .and_then(|e| match e {
        Some(Event::Down {
            monitor,
            pid,
            reason,
        }) => Ok((monitor, pid, reason)),
        _ => Err(ReceiveError::Malformed {
            from: Pid(0),
            error: "a DOWN message that does not decode".into(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reasons_encode_as_the_abi_says() {
        let k = |r: &ExitReason| u32::from_le_bytes(r.encode()[..4].try_into().unwrap());
        use troupe_abi::reason as kind;
        assert_eq!(k(&ExitReason::Normal), kind::NORMAL);
        assert_eq!(k(&ExitReason::Trap("x".into())), kind::TRAP);
        assert_eq!(k(&ExitReason::Killed), kind::KILLED);
        assert_eq!(k(&ExitReason::Limit(Limit::Fuel)), kind::LIMIT);
        assert_eq!(
            ExitReason::Limit(Limit::Fuel).encode()[4..],
            kind::LIMIT_FUEL.to_le_bytes()
        );
        assert_eq!(k(&ExitReason::ExitCode(3)), kind::EXIT_CODE);
        assert_eq!(k(&ExitReason::Custom(vec![])), kind::CUSTOM);
        assert_eq!(k(&ExitReason::NoProc), kind::NOPROC);
        assert_eq!(k(&ExitReason::Shutdown), kind::SHUTDOWN);
        assert_eq!(
            ExitReason::Trap("ab".into()).encode(),
            [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b']
        );
    }

    #[test]
    fn down_and_exit_payloads_decode() {
        let mut down = 7u64.to_le_bytes().to_vec();
        down.extend_from_slice(&9u64.to_le_bytes());
        down.extend_from_slice(&ExitReason::Killed.encode());
        assert_eq!(
            system_event::<()>(tag::DOWN, Pid(9), &down),
            Some(Event::Down {
                monitor: MonitorRef(7),
                pid: Pid(9),
                reason: ExitReason::Killed
            })
        );
        let mut exit = 4u64.to_le_bytes().to_vec();
        exit.extend_from_slice(&ExitReason::custom(&"bye").encode());
        let Some(Event::Exit { from, reason }) = system_event::<()>(tag::EXIT, Pid(4), &exit)
        else {
            panic!("not an exit event");
        };
        assert_eq!(from, Pid(4));
        assert_eq!(reason.decode_custom::<String>().as_deref(), Some("bye"));
        assert!(system_event::<()>(tag::EXIT, Pid(4), &[1, 2]).is_none());
    }
}
