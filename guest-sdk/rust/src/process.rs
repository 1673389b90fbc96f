//! Pids, typed process handles, mailboxes, and request/reply.

use std::cell::Cell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use troupe_abi::tag;

use crate::message::{receive_decoded, send_value};
use crate::{ReceiveError, RequestError, SendError};

/// A process identifier: unique for the whole life of the VM, never reused.
/// The root process is pid 1.
///
/// Encoded in messages as a `u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pid(pub u64);

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

thread_local! {
    static SELF_PID: Cell<u64> = const { Cell::new(0) };
}

/// The calling process's pid (asked from the VM once, then remembered).
pub fn self_pid() -> Pid {
    SELF_PID.with(|cached| {
        if cached.get() == 0 {
            cached.set(crate::host::self_pid());
        }
        Pid(cached.get())
    })
}

/// Suspends the calling process for `duration`: only this process waits,
/// the others run on (so does [`std::thread::sleep`], whose WASI
/// `poll_oneoff` is asynchronous in the VM). To wait for a message *or* a
/// time, use [`Mailbox::receive_timeout`] instead.
pub fn sleep(duration: Duration) {
    let ns = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
    crate::host::sleep(ns)
}

/// A typed handle to a process whose mailbox receives messages of type `M`.
///
/// It is a pid with a type: `Copy`, cheap, and encoded in messages as the
/// pid alone, so handles can be sent to other processes. The type is a
/// promise, not a check: a payload that the receiver cannot decode as its
/// `M` is reported at the receiver (see [`Mailbox::receive`]).
pub struct Process<M> {
    pid: Pid,
    _message: PhantomData<fn(M)>,
}

impl<M> Process<M> {
    /// The handle of process `pid`, whose mailbox you claim takes `M`.
    pub fn from_pid(pid: Pid) -> Self {
        Process {
            pid,
            _message: PhantomData,
        }
    }

    /// The process's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }
}

impl<M: Serialize> Process<M> {
    /// Sends `msg` (bincode, tag [`DATA`](troupe_abi::tag::DATA)). Never
    /// blocks and is not acknowledged: `Ok` means the message was queued,
    /// not that it will be handled (the process may die first).
    ///
    /// Errors: [`SendError::NoProcess`] (the target does not exist any
    /// more) and [`SendError::MailboxFull`] (the message would take the
    /// target past its memory budget, which counts its queued messages).
    pub fn send(&self, msg: M) -> Result<(), SendError> {
        send_value(self.pid, tag::DATA, &msg)
    }

    /// Sends a request built by `make` around a fresh [`Reply`] handle and
    /// waits for the answer.
    ///
    /// ```ignore
    /// #[derive(Serialize, Deserialize)]
    /// enum Msg { Job(u32), Get(Reply<u64>) }
    /// let n: u64 = worker.request(Msg::Get)?;
    /// ```
    ///
    /// Only the reply is selected: other messages stay queued, in order.
    ///
    /// **Waits forever** if the server never answers, including when it dies
    /// after receiving the request. Prefer
    /// [`request_timeout`](Self::request_timeout) unless the server is known
    /// to answer, or a [`Server`](crate::Server) and [`call`](crate::call),
    /// which watch the server with a monitor.
    pub fn request<R: DeserializeOwned>(
        &self,
        make: impl FnOnce(Reply<R>) -> M,
    ) -> Result<R, RequestError> {
        self.request_inner(make, None)
    }

    /// Like [`request`](Self::request), giving up with
    /// [`RequestError::Timeout`] after `timeout`. A reply arriving later is
    /// never selected: it stays in the mailbox until a
    /// [`receive_matching`](crate::receive_matching) meets and drops it.
    pub fn request_timeout<R: DeserializeOwned>(
        &self,
        make: impl FnOnce(Reply<R>) -> M,
        timeout: Duration,
    ) -> Result<R, RequestError> {
        self.request_inner(make, Some(timeout))
    }

    fn request_inner<R: DeserializeOwned>(
        &self,
        make: impl FnOnce(Reply<R>) -> M,
        timeout: Option<Duration>,
    ) -> Result<R, RequestError> {
        let reply_tag = next_reply_tag();
        let reply = Reply {
            pid: self_pid(),
            tag: reply_tag,
            _reply: PhantomData,
        };
        self.send(make(reply)).map_err(|e| match e {
            SendError::NoProcess(pid) => RequestError::NoProcess(pid),
            SendError::MailboxFull(pid) => RequestError::MailboxFull(pid),
        })?;
        match receive_decoded::<R>(reply_tag, timeout) {
            Ok((_, value)) => Ok(value),
            Err(ReceiveError::Timeout) => {
                crate::message::abandon_reply_tag(reply_tag);
                Err(RequestError::Timeout)
            }
            Err(ReceiveError::Malformed { from, error }) => {
                Err(RequestError::Malformed { from, error })
            }
        }
    }
}

// Manual impls: none of them needs anything of `M`.
impl<M> Clone for Process<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Process<M> {}
impl<M> PartialEq for Process<M> {
    fn eq(&self, other: &Self) -> bool {
        self.pid == other.pid
    }
}
impl<M> Eq for Process<M> {}
impl<M> Hash for Process<M> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.pid.hash(state)
    }
}
impl<M> fmt::Debug for Process<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Process({})", self.pid)
    }
}
impl<M> fmt::Display for Process<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.pid.fmt(f)
    }
}
impl<M> Serialize for Process<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.pid.serialize(serializer)
    }
}
impl<'de, M> Deserialize<'de> for Process<M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Pid::deserialize(deserializer).map(Process::from_pid)
    }
}

/// The handle of the calling process, for mailbox type `M`.
pub fn this_process<M>() -> Process<M> {
    Process::from_pid(self_pid())
}

/// A message with its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope<M> {
    /// The sender's pid.
    pub from: Pid,
    /// The decoded message.
    pub msg: M,
}

/// The calling process's mailbox, seen as holding messages of type `M`.
///
/// Its receives select messages with tag [`DATA`](troupe_abi::tag::DATA)
/// only: replies to requests, spawn arguments and VM messages stay queued
/// for the code that waits for them.
pub struct Mailbox<M> {
    _message: PhantomData<fn() -> M>,
}

impl<M> fmt::Debug for Mailbox<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mailbox({})", self_pid())
    }
}

impl<M: DeserializeOwned> Mailbox<M> {
    /// The calling process's mailbox.
    pub fn this() -> Self {
        Mailbox {
            _message: PhantomData,
        }
    }

    /// The handle others use to send to this mailbox.
    pub fn process(&self) -> Process<M> {
        this_process()
    }

    /// Waits for the next message.
    ///
    /// # Panics
    /// If its payload does not decode as `M` (the panic names the sender).
    /// A panic traps this process only: the VM and the others carry on.
    /// Use [`receive_timeout`](Self::receive_timeout) or
    /// [`receive_envelope_timeout`](Self::receive_envelope_timeout) to get
    /// the error as a value instead.
    pub fn receive(&self) -> M {
        self.receive_envelope().msg
    }

    /// Waits for the next message and returns it with its sender.
    ///
    /// # Panics
    /// As [`receive`](Self::receive).
    pub fn receive_envelope(&self) -> Envelope<M> {
        match self.receive_envelope_timeout(None) {
            Ok(envelope) => envelope,
            Err(ReceiveError::Malformed { from, error }) => panic!(
                "troupe: process {} received a message from {from} that is not a {}: {error}",
                self_pid(),
                std::any::type_name::<M>()
            ),
            Err(ReceiveError::Timeout) => unreachable!("a receive without timeout timed out"),
        }
    }

    /// Takes the next message if one is waiting, without waiting.
    /// [`ReceiveError::Timeout`] means none was.
    pub fn try_receive(&self) -> Result<M, ReceiveError> {
        self.receive_timeout(Duration::ZERO)
    }

    /// Waits at most `timeout` for the next message.
    pub fn receive_timeout(&self, timeout: Duration) -> Result<M, ReceiveError> {
        self.receive_envelope_timeout(Some(timeout))
            .map(|envelope| envelope.msg)
    }

    /// Waits at most `timeout` (`None`: forever) for the next message and
    /// returns it with its sender. Never panics on a malformed payload.
    pub fn receive_envelope_timeout(
        &self,
        timeout: Option<Duration>,
    ) -> Result<Envelope<M>, ReceiveError> {
        receive_decoded(tag::DATA, timeout).map(|(from, msg)| Envelope { from, msg })
    }

    /// Waits for the next ordinary message *or* signal event: an
    /// [`Event::Exit`](crate::Event::Exit) (this process traps exits) or an
    /// [`Event::Down`](crate::Event::Down) (a monitor fired). A malformed
    /// ordinary message panics, as in [`receive`](Self::receive).
    pub fn receive_event(&self) -> crate::Event<M> {
        match self.receive_event_timeout(None) {
            Ok(event) => event,
            Err(ReceiveError::Malformed { from, error }) => panic!(
                "troupe: process {} received a message from {from} that is not a {}: {error}",
                self_pid(),
                std::any::type_name::<M>()
            ),
            Err(ReceiveError::Timeout) => unreachable!("a receive without timeout timed out"),
        }
    }

    /// [`receive_event`](Self::receive_event), waiting at most `timeout`
    /// (`None`: forever); never panics.
    pub fn receive_event_timeout(
        &self,
        timeout: Option<Duration>,
    ) -> Result<crate::Event<M>, ReceiveError> {
        let tags = [tag::DATA, tag::EXIT, tag::DOWN];
        crate::message::receive_with(
            &tags,
            crate::message::timeout_ns(timeout),
            |t, from, data| {
                if t == tag::DATA {
                    crate::message::decode::<M>(data)
                        .map(|msg| crate::Event::Message { from, msg })
                        .map_err(|error| ReceiveError::Malformed { from, error })
                } else {
                    crate::signal::system_event(t, from, data).ok_or(ReceiveError::Malformed {
                        from,
                        error: "a system message that does not decode".into(),
                    })
                }
            },
        )?
    }

    /// Takes the next message if one is waiting: `None` if none is.
    ///
    /// # Panics
    /// As [`receive`](Self::receive), if the waiting message is malformed.
    pub fn poll(&self) -> Option<M> {
        match self.try_receive() {
            Ok(msg) => Some(msg),
            Err(ReceiveError::Timeout) => None,
            Err(ReceiveError::Malformed { from, error }) => panic!(
                "troupe: process {} received a message from {from} that is not a {}: {error}",
                self_pid(),
                std::any::type_name::<M>()
            ),
        }
    }
}

/// The handle a server answers a request with: the requester's pid and a
/// reply tag that the requester alone waits on.
///
/// Put a `Reply<R>` in a message (see [`Process::request`]); the server
/// answers with [`Reply::send`]. Encoded as two `u64` (bincode: 16 bytes,
/// pid then tag, little-endian), the convention of `host-api/SPEC.md` shared
/// with the other SDKs.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Reply<R> {
    pid: Pid,
    tag: u64,
    #[serde(skip)]
    _reply: PhantomData<fn(R)>,
}

impl<R> Reply<R> {
    /// The requester's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The reply tag the requester waits on.
    pub fn tag(&self) -> u64 {
        self.tag
    }
}

impl<R: Serialize> Reply<R> {
    /// Answers the request. [`SendError::NoProcess`] if the requester has
    /// exited; a requester that timed out drops nothing: the late reply
    /// stays in its mailbox.
    pub fn send(self, value: R) -> Result<(), SendError> {
        send_value(self.pid, self.tag, &value)
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("pid", &self.pid)
            .field("tag", &self.tag)
            .finish()
    }
}

thread_local! {
    static NEXT_REPLY_TAG: Cell<u64> = const { Cell::new(tag::REPLY_BASE) };
}

/// The reply tag after `tag`: the range `REPLY_BASE..SYSTEM_BASE`, wrapping
/// (after 2^62 requests).
fn following_reply_tag(tag: u64) -> u64 {
    if tag + 1 >= tag::SYSTEM_BASE {
        tag::REPLY_BASE
    } else {
        tag + 1
    }
}

/// A fresh reply tag of this process.
pub(crate) fn next_reply_tag() -> u64 {
    NEXT_REPLY_TAG.with(|next| {
        let tag = next.get();
        next.set(following_reply_tag(tag));
        tag
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{decode, encode};

    #[test]
    fn reply_is_sixteen_bytes_pid_then_tag_little_endian() {
        let reply: Reply<String> = Reply {
            pid: Pid(0x0102_0304_0506_0708),
            tag: tag::REPLY_BASE + 5,
            _reply: PhantomData,
        };
        let bytes = encode(&reply);
        let mut expected = 0x0102_0304_0506_0708u64.to_le_bytes().to_vec();
        expected.extend_from_slice(&(tag::REPLY_BASE + 5).to_le_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(bincode::serialize(&reply).unwrap(), expected);
        let back: Reply<String> = decode(&bytes).unwrap();
        assert_eq!((back.pid(), back.tag()), (reply.pid(), reply.tag()));
    }

    #[test]
    fn reply_inside_an_enum_keeps_its_layout() {
        #[derive(Serialize, Deserialize)]
        enum Msg {
            Job(u32),
            Get(Reply<u64>),
        }
        let bytes = encode(&Msg::Get(Reply {
            pid: Pid(3),
            tag: tag::REPLY_BASE,
            _reply: PhantomData,
        }));
        // variant index (u32), then the two u64.
        assert_eq!(bytes.len(), 4 + 16);
        assert_eq!(&bytes[..4], &1u32.to_le_bytes());
        assert_eq!(&bytes[4..12], &3u64.to_le_bytes());
        assert!(matches!(
            decode::<Msg>(&encode(&Msg::Job(9))),
            Ok(Msg::Job(9))
        ));
    }

    #[test]
    fn reply_tags_are_fresh_and_in_the_reply_range() {
        // Each test runs on its own thread, so this counter starts afresh.
        let first = next_reply_tag();
        let second = next_reply_tag();
        assert_eq!(first, tag::REPLY_BASE);
        assert_eq!(second, tag::REPLY_BASE + 1);
        let last = tag::SYSTEM_BASE - 1;
        assert_eq!(following_reply_tag(last - 1), last);
        assert_eq!(following_reply_tag(last), tag::REPLY_BASE);
        for t in [first, second, last] {
            assert!((tag::REPLY_BASE..tag::SYSTEM_BASE).contains(&t));
            assert_ne!(t, tag::DATA);
        }
    }

    #[test]
    fn process_handles_encode_as_their_pid() {
        let p: Process<Vec<String>> = Process::from_pid(Pid(77));
        assert_eq!(encode(&p), 77u64.to_le_bytes());
        let back: Process<Vec<String>> = decode(&encode(&p)).unwrap();
        assert_eq!(back, p);
        assert_eq!(Pid(77).to_string(), "<77>");
    }
}
