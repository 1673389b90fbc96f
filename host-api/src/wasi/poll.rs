//! `poll_oneoff` over Troupe's descriptors (sockets, the mailbox) and
//! clocks: it waits, suspending only the calling process, until one of them
//! is ready or a clock's time-out passes.
//!
//! Readiness is edge-triggered (Linux's `EPOLLET`, for which Go's netpoller
//! and mio are written): a descriptor's readiness to read is reported only
//! if, since it was last reported, a read (or accept) on it returned
//! `EAGAIN`, and the same for writing; the mailbox's once a message arrives
//! after a receive found none. A poller that reads until `EAGAIN` before it
//! waits misses nothing, and one that keeps every descriptor subscribed (as
//! mio does) does not spin on the ones it is not using.
//!
//! A poll that names none of Troupe's descriptors is `wasmtime-wasi`'s own.
//! One that mixes them with `wasmtime-wasi`'s descriptors (stdin, files)
//! reports those with `NOTSUP` (a limitation, in the README).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use troupe_abi::val;
use wasmtime::{Caller, Linker};

use super::io::ready;
use super::{delegate, errno, finish, is_ours, MODULE};
use crate::call::{Fault, Guest};
use crate::ProcessCtx;

const FUNC: &str = "wasi_snapshot_preview1::poll_oneoff";
const SUBSCRIPTION_SIZE: i32 = 48;
const EVENT_SIZE: usize = 32;
const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_READ: u8 = 1;
const EVENTTYPE_FD_WRITE: u8 = 2;
const SUBCLOCKFLAGS_ABSTIME: u16 = 1;
const EVENTRWFLAGS_HANGUP: u16 = 1;
const CLOCKID_REALTIME: u32 = 0;
/// The most subscriptions one call may have (Go and mio use a handful).
const MAX_SUBSCRIPTIONS: u32 = 4096;

/// Shadows `poll_oneoff`.
pub(super) fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        "poll_oneoff",
        |mut c: Caller<'_, T>, (subs, events, n, out_n): (i32, i32, i32, i32)| {
            Box::new(async move {
                let parsed = {
                    let mut g = Guest::new(&mut c, FUNC);
                    match subscriptions(&mut g, subs, n) {
                        Ok(parsed) => parsed,
                        Err(Fault::Trap(e)) => return Err(e),
                        Err(Fault::Code(_)) => return Ok(errno::INVAL),
                    }
                };
                let ours = parsed
                    .iter()
                    .any(|s| matches!(s.what, What::Read(fd) | What::Write(fd) if is_ours(fd)));
                if !ours {
                    return delegate!(c, poll_oneoff(subs, events, n, out_n).await);
                }
                let mut g = Guest::new(&mut c, FUNC);
                let result = poll(&mut g, parsed, events, out_n).await;
                finish(g.ctx_mut(), result)
            })
        },
    )?;
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum What {
    Clock {
        id: u32,
        timeout: u64,
        abstime: bool,
    },
    Read(i32),
    Write(i32),
}

#[derive(Clone, Copy, Debug)]
struct Subscription {
    userdata: u64,
    what: What,
}

/// The subscriptions at `ptr` (`n` of them; `INVAL` for none, too many, or
/// an unknown kind).
fn subscriptions<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    ptr: i32,
    n: i32,
) -> Result<Vec<Subscription>, Fault> {
    let count = n as u32;
    let bytes = g.bytes(
        "in",
        ptr,
        (count.min(MAX_SUBSCRIPTIONS) as i32) * SUBSCRIPTION_SIZE,
    )?;
    if count == 0 || count > MAX_SUBSCRIPTIONS {
        return Err(
            crate::HostError::new(troupe_abi::err::INVALID_ARGUMENT, "subscriptions").into(),
        );
    }
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let mut out = Vec::with_capacity(count as usize);
    for s in bytes.chunks_exact(SUBSCRIPTION_SIZE as usize) {
        let what = match s[8] {
            EVENTTYPE_CLOCK => What::Clock {
                id: u32_at(s, 16),
                timeout: u64_at(s, 24),
                abstime: u16::from_le_bytes([s[40], s[41]]) & SUBCLOCKFLAGS_ABSTIME != 0,
            },
            EVENTTYPE_FD_READ => What::Read(u32_at(s, 16) as i32),
            EVENTTYPE_FD_WRITE => What::Write(u32_at(s, 16) as i32),
            _ => {
                return Err(crate::HostError::new(
                    troupe_abi::err::INVALID_ARGUMENT,
                    "subscription",
                )
                .into())
            }
        };
        out.push(Subscription {
            userdata: u64_at(s, 0),
            what,
        });
    }
    Ok(out)
}

/// One event to report.
struct Event {
    userdata: u64,
    error: u16,
    kind: u8,
    flags: u16,
}

/// What one subscription to a descriptor waits on.
enum Wait {
    /// A socket: ready when this future is.
    Socket {
        fd: u32,
        read: bool,
        future: Pin<Box<dyn Future<Output = std::io::Result<tokio::io::Ready>> + Send>>,
    },
    /// The mailbox: ready once more than this many messages have arrived.
    Mailbox(Pin<Box<dyn Future<Output = ()> + Send>>),
    /// Never ready (not armed, or writing to a listener or the mailbox).
    Never,
}

async fn poll<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    subs: Vec<Subscription>,
    events_ptr: i32,
    out_n: i32,
) -> Result<i32, Fault> {
    g.check("out", events_ptr, (subs.len() * EVENT_SIZE) as i32)?;
    g.check("nevents", out_n, 4)?;
    let now = Instant::now();
    let mut deadline: Option<Instant> = None;
    let mut at_once: Vec<Event> = Vec::new();
    let mut clocks: Vec<(u64, Instant)> = Vec::new();
    let mut waits: Vec<(u64, Wait)> = Vec::new();
    for s in &subs {
        match s.what {
            What::Clock {
                id,
                timeout,
                abstime,
            } => {
                let due = if !abstime {
                    now.checked_add(Duration::from_nanos(timeout))
                } else if id == CLOCKID_REALTIME {
                    let wall = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    now.checked_add(Duration::from_nanos(timeout).saturating_sub(wall))
                } else {
                    // The guest's monotonic clock has wasmtime-wasi's origin,
                    // which this side cannot see.
                    at_once.push(Event {
                        userdata: s.userdata,
                        error: errno::NOTSUP as u16,
                        kind: EVENTTYPE_CLOCK,
                        flags: 0,
                    });
                    continue;
                };
                // A time-out too far to represent never comes.
                if let Some(due) = due {
                    deadline = Some(deadline.map_or(due, |d| d.min(due)));
                    clocks.push((s.userdata, due));
                }
            }
            What::Read(fd) | What::Write(fd) => {
                let read = matches!(s.what, What::Read(_));
                let kind = if read {
                    EVENTTYPE_FD_READ
                } else {
                    EVENTTYPE_FD_WRITE
                };
                let error = |e: i32| Event {
                    userdata: s.userdata,
                    error: e as u16,
                    kind,
                    flags: 0,
                };
                if !is_ours(fd) {
                    at_once.push(error(errno::NOTSUP));
                } else if fd as u32 == val::MAILBOX_FD {
                    let wait = match (read, g.ctx().sockets().mailbox_armed()) {
                        (true, Some(after)) => {
                            Wait::Mailbox(Box::pin(g.ctx().mailbox_arrival(after)))
                        }
                        _ => Wait::Never,
                    };
                    waits.push((s.userdata, wait));
                } else {
                    match g.ctx().sockets().by_fd(fd as u32) {
                        None => at_once.push(error(errno::BADF)),
                        Some((_, socket, state)) => {
                            let armed = if read {
                                state.read_armed
                            } else {
                                state.write_armed
                            };
                            let wait = if armed {
                                let interest = if read {
                                    tokio::io::Interest::READABLE
                                } else {
                                    tokio::io::Interest::WRITABLE
                                };
                                Wait::Socket {
                                    fd: fd as u32,
                                    read,
                                    future: Box::pin(ready(&socket, interest)),
                                }
                            } else {
                                Wait::Never
                            };
                            waits.push((s.userdata, wait));
                        }
                    }
                }
            }
        }
    }

    let mut events = at_once;
    if events.is_empty() {
        let mut sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into())));
        let sockets = g.ctx().sockets();
        let fired: Vec<Event> = std::future::poll_fn(|cx| {
            let mut fired = Vec::new();
            for (userdata, wait) in waits.iter_mut() {
                match wait {
                    Wait::Socket { fd, read, future } => {
                        if let Poll::Ready(result) = future.as_mut().poll(cx) {
                            let closed = match &result {
                                Ok(r) => r.is_read_closed() || r.is_write_closed(),
                                Err(_) => true,
                            };
                            let (fd, read) = (*fd, *read);
                            sockets.update(fd, |s| {
                                if read {
                                    s.read_armed = false
                                } else {
                                    s.write_armed = false
                                }
                            });
                            fired.push(Event {
                                userdata: *userdata,
                                error: 0,
                                kind: if read {
                                    EVENTTYPE_FD_READ
                                } else {
                                    EVENTTYPE_FD_WRITE
                                },
                                flags: if closed { EVENTRWFLAGS_HANGUP } else { 0 },
                            });
                            *wait = Wait::Never;
                        }
                    }
                    Wait::Mailbox(arrival) => {
                        if arrival.as_mut().poll(cx).is_ready() {
                            sockets.disarm_mailbox();
                            fired.push(Event {
                                userdata: *userdata,
                                error: 0,
                                kind: EVENTTYPE_FD_READ,
                                flags: 0,
                            });
                            *wait = Wait::Never;
                        }
                    }
                    Wait::Never => {}
                }
            }
            let timed_out = sleep
                .as_mut()
                .is_some_and(|s| s.as_mut().poll(cx).is_ready());
            if timed_out || !fired.is_empty() {
                let now = Instant::now();
                for (userdata, due) in &clocks {
                    if *due <= now {
                        fired.push(Event {
                            userdata: *userdata,
                            error: 0,
                            kind: EVENTTYPE_CLOCK,
                            flags: 0,
                        });
                    }
                }
                return Poll::Ready(fired);
            }
            Poll::Pending
        })
        .await;
        events = fired;
    }

    let mut out = vec![0u8; events.len() * EVENT_SIZE];
    for (e, b) in events.iter().zip(out.chunks_exact_mut(EVENT_SIZE)) {
        b[0..8].copy_from_slice(&e.userdata.to_le_bytes());
        b[8..10].copy_from_slice(&e.error.to_le_bytes());
        b[10] = e.kind;
        b[24..26].copy_from_slice(&e.flags.to_le_bytes());
    }
    g.write("out", events_ptr, &out)?;
    g.write_u32("nevents", out_n, events.len() as u32)?;
    Ok(errno::SUCCESS)
}
