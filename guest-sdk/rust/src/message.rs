//! Raw messaging: tagged byte payloads, the reusable buffers, the bincode
//! codec that the typed API uses, and selective receive on any condition.
//!
//! # The stash
//!
//! The VM selects messages on their tags only. To wait for one message that
//! a tag does not single out (the `DOWN` of one monitor, the `EXIT` of one
//! process), [`receive_matching`] takes messages in order and keeps the ones
//! it does not want in a queue of this process, the *stash*. Every receive
//! of the SDK looks in the stash before the VM's mailbox, so the stash and the
//! mailbox together behave as one mailbox in arrival order, as Erlang's
//! selective receive does.

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;
use troupe_abi::{err, info, val};

use crate::error::unexpected;
use crate::{host, Pid, ReceiveError, SendError};

/// Size the receive buffer starts at: typical messages fit, so a waiting
/// message costs one host call.
const INITIAL_BUFFER: usize = 1024;
/// A buffer grown past this by one big message is freed after use rather
/// than kept for the life of the process.
const KEEP_BUFFER_UP_TO: usize = 1 << 20;

thread_local! {
    // Taken out while in use (so a nested use, which should not happen,
    // would allocate rather than panic) and put back afterwards.
    static RECEIVE_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static SEND_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    // Messages taken from the VM's mailbox by `receive_matching` and not
    // wanted yet, oldest first: older than anything still in the mailbox.
    static STASH: RefCell<VecDeque<RawMessage>> = const { RefCell::new(VecDeque::new()) };
    // Reply tags whose requester gave up (timed out): a late reply with one
    // of these is dropped when `receive_matching` meets it.
    static ABANDONED: RefCell<Option<HashSet<u64>>> = const { RefCell::new(None) };
}

/// At most this many abandoned reply tags are remembered (then the set is
/// cleared: a later late reply simply stays queued).
const MAX_ABANDONED: usize = 1 << 16;

/// A message taken from the mailbox with its tag and sender, payload as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    /// The tag its sender chose (see [`troupe_abi::tag`]).
    pub tag: u64,
    /// The sender's pid (for [`troupe_abi::tag::SPAWN_ARG`]: the parent).
    pub from: Pid,
    /// The payload.
    pub data: Vec<u8>,
}

/// The bincode 1.3 configuration of Troupe payloads: little-endian,
/// fixed-width integers, `u64` lengths (the layout of `bincode::serialize`),
/// and a payload must be consumed entirely when decoded.
pub(crate) fn codec() -> impl Options + Copy {
    troupe_abi::payload_codec()
}

/// Encodes `value` as a Troupe payload (bincode 1.3).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, value);
    out
}

fn encode_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    if let Err(e) = codec().serialize_into(out, value) {
        panic!(
            "troupe: cannot encode a {} as a message: {e}",
            std::any::type_name::<T>()
        )
    }
}

/// Decodes a Troupe payload (bincode 1.3); the whole payload must be used.
pub fn decode<T: DeserializeOwned>(data: &[u8]) -> Result<T, String> {
    codec().deserialize(data).map_err(|e| e.to_string())
}

/// The `timeout_ns` argument of `receive` for an optional timeout:
/// `None` waits forever; durations beyond `i64::MAX` ns (292 years) saturate.
pub(crate) fn timeout_ns(timeout: Option<Duration>) -> i64 {
    match timeout {
        None => val::TIMEOUT_FOREVER,
        Some(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Sends `data` with `tag` to `pid`. Never blocks.
///
/// Typed code uses [`Process::send`](crate::Process::send) instead; this is
/// for protocols of your own (for example answering with a custom tag that
/// the receiver selects on with [`receive_tagged`]).
pub fn send_tagged(pid: Pid, tag: u64, data: &[u8]) -> Result<(), SendError> {
    let rc = host::send(pid.0, tag, data);
    match rc {
        err::OK => Ok(()),
        err::NO_PROCESS => Err(SendError::NoProcess(pid)),
        err::RESOURCE_LIMIT => Err(SendError::MailboxFull(pid)),
        code => unexpected("send", code),
    }
}

/// Encodes `value` into the reusable send buffer and sends it.
pub(crate) fn send_value<T: Serialize + ?Sized>(
    pid: Pid,
    tag: u64,
    value: &T,
) -> Result<(), SendError> {
    let mut buf = SEND_BUFFER.take();
    buf.clear();
    encode_into(&mut buf, value);
    let result = send_tagged(pid, tag, &buf);
    if buf.capacity() <= KEEP_BUFFER_UP_TO {
        SEND_BUFFER.set(buf);
    }
    result
}

/// Takes the oldest message whose tag is in `tags` (any tag if `tags` is
/// empty), waiting up to `timeout_ns`, and calls `f(tag, sender, payload)`
/// on it while it is still in the reusable receive buffer.
pub(crate) fn receive_with<T>(
    tags: &[u64],
    timeout_ns: i64,
    f: impl FnOnce(u64, Pid, &[u8]) -> T,
) -> Result<T, ReceiveError> {
    if let Some(m) = take_stashed(|m| tags.is_empty() || tags.contains(&m.tag)) {
        return Ok(f(m.tag, m.from, &m.data));
    }
    receive_from_vm(tags, timeout_ns, f)
}

/// [`receive_with`] on the VM's mailbox alone (the stash is not looked at).
fn receive_from_vm<T>(
    tags: &[u64],
    timeout_ns: i64,
    f: impl FnOnce(u64, Pid, &[u8]) -> T,
) -> Result<T, ReceiveError> {
    let mut buf = RECEIVE_BUFFER.take();
    if buf.len() < INITIAL_BUFFER {
        buf.resize(INITIAL_BUFFER, 0);
    }
    let mut record = [0u8; info::SIZE];
    let rc = host::receive(tags, timeout_ns, &mut buf, &mut record);
    let (tag, from, len) = parse_info(&record);
    match rc {
        err::OK => {}
        err::BUFFER_TOO_SMALL => {
            buf.resize(len, 0);
            let rc = host::read(&mut buf[..len]);
            if rc != err::OK {
                unexpected("read", rc);
            }
        }
        err::TIMEOUT => {
            RECEIVE_BUFFER.set(buf);
            return Err(ReceiveError::Timeout);
        }
        code => unexpected("receive", code),
    }
    let result = f(tag, from, &buf[..len]);
    if buf.len() <= KEEP_BUFFER_UP_TO {
        RECEIVE_BUFFER.set(buf);
    }
    Ok(result)
}

/// Reads the info record `receive` writes: (tag, sender, payload length).
fn parse_info(record: &[u8; info::SIZE]) -> (u64, Pid, usize) {
    let u64_at = |at: usize| u64::from_le_bytes(record[at..at + 8].try_into().unwrap());
    let len = u32::from_le_bytes(record[info::LEN..info::LEN + 4].try_into().unwrap());
    (u64_at(info::TAG), Pid(u64_at(info::SENDER)), len as usize)
}

/// Takes the oldest message whose tag is one of `tags` (any tag if `tags` is
/// empty; messages with other tags stay queued, in order), waiting at most
/// `timeout` (`None`: forever, `Some(Duration::ZERO)`: do not wait).
///
/// This is Erlang's selective receive on tags. The only error is
/// [`ReceiveError::Timeout`].
pub fn receive_tagged(tags: &[u64], timeout: Option<Duration>) -> Result<RawMessage, ReceiveError> {
    receive_with(tags, timeout_ns(timeout), |tag, from, data| RawMessage {
        tag,
        from,
        data: data.to_vec(),
    })
}

/// Whether the stash holds a message.
pub(crate) fn stash_is_empty() -> bool {
    STASH.with(|stash| stash.borrow().is_empty())
}

/// Takes the oldest stashed message for which `wanted` holds.
fn take_stashed(wanted: impl Fn(&RawMessage) -> bool) -> Option<RawMessage> {
    STASH.with(|stash| {
        let mut stash = stash.borrow_mut();
        if stash.is_empty() {
            return None;
        }
        let at = stash.iter().position(wanted)?;
        stash.remove(at)
    })
}

/// Removes every stashed message for which `unwanted` holds; whether any was.
pub(crate) fn drop_stashed(unwanted: impl Fn(&RawMessage) -> bool) -> bool {
    STASH.with(|stash| {
        let mut stash = stash.borrow_mut();
        let before = stash.len();
        stash.retain(|m| !unwanted(m));
        stash.len() != before
    })
}

/// Remembers that nobody waits for replies with `tag` any more.
pub(crate) fn abandon_reply_tag(tag: u64) {
    ABANDONED.with(|set| {
        let mut set = set.borrow_mut();
        let set = set.get_or_insert_with(HashSet::new);
        if set.len() >= MAX_ABANDONED {
            set.clear();
        }
        set.insert(tag);
    })
}

/// Whether `tag` is an abandoned reply tag (and forgets it: one reply each).
fn is_abandoned(tag: u64) -> bool {
    (troupe_abi::tag::REPLY_BASE..troupe_abi::tag::SYSTEM_BASE).contains(&tag)
        && ABANDONED.with(|set| set.borrow_mut().as_mut().is_some_and(|s| s.remove(&tag)))
}

/// Erlang's selective receive on any condition: takes the oldest message
/// for which `pick` returns `Ok`, waiting at most `timeout` (`None`: forever).
///
/// `pick` gets each message in arrival order and either takes it (`Ok`) or
/// hands it back (`Err`); messages handed back stay queued, in order, for
/// later receives (of this function or any other receive of the SDK: they
/// are kept in this process's stash, which every receive looks at first).
///
/// ```ignore
/// // Wait for the EXIT of one particular process, leaving everything else.
/// let reason = receive_matching(None, |m| match m {
///     m if m.tag == abi::tag::EXIT && m.from == child => Ok(m.data),
///     m => Err(m),
/// })?;
/// ```
///
/// Costs: messages that do not match are copied into this process's memory
/// until they are received. Prefer a receive on tags (for example
/// [`receive_tagged`]) when a tag tells the wanted message apart.
pub fn receive_matching<T>(
    timeout: Option<Duration>,
    mut pick: impl FnMut(RawMessage) -> Result<T, RawMessage>,
) -> Result<T, ReceiveError> {
    // The stash first: it is older than the mailbox.
    let stashed = STASH.with(|stash| std::mem::take(&mut *stash.borrow_mut()));
    if !stashed.is_empty() {
        let mut kept = VecDeque::with_capacity(stashed.len());
        let mut rest = stashed.into_iter();
        let mut found = None;
        for m in rest.by_ref() {
            match pick(m) {
                Ok(value) => {
                    found = Some(value);
                    break;
                }
                Err(m) => kept.push_back(m),
            }
        }
        kept.extend(rest);
        STASH.with(|stash| {
            let mut stash = stash.borrow_mut();
            // `pick` should not receive, but if it stashed, that is newer.
            kept.append(&mut stash);
            *stash = kept;
        });
        if let Some(value) = found {
            return Ok(value);
        }
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let wait = match (timeout, deadline) {
            (None, _) => val::TIMEOUT_FOREVER,
            (Some(_), None) => i64::MAX,
            (Some(_), Some(deadline)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                i64::try_from(left.as_nanos()).unwrap_or(i64::MAX)
            }
        };
        let m = receive_from_vm(&[], wait, |tag, from, data| RawMessage {
            tag,
            from,
            data: data.to_vec(),
        })?;
        if is_abandoned(m.tag) {
            continue;
        }
        match pick(m) {
            Ok(value) => return Ok(value),
            Err(m) => STASH.with(|stash| stash.borrow_mut().push_back(m)),
        }
    }
}

/// Receives the oldest message with tag `tag` and decodes it as `T`.
pub(crate) fn receive_decoded<T: DeserializeOwned>(
    tag: u64,
    timeout: Option<Duration>,
) -> Result<(Pid, T), ReceiveError> {
    receive_with(&[tag], timeout_ns(timeout), |_, from, data| {
        decode(data)
            .map(|value| (from, value))
            .map_err(|error| ReceiveError::Malformed { from, error })
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn codec_is_bincode_fixint_little_endian() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct S {
            a: u32,
            b: String,
        }
        let s = S {
            a: 0x0102_0304,
            b: "hi".into(),
        };
        let bytes = encode(&s);
        assert_eq!(bytes, [4, 3, 2, 1, 2, 0, 0, 0, 0, 0, 0, 0, b'h', b'i']);
        // Same bytes as the plain bincode 1.3 API (what other SDKs mirror).
        assert_eq!(bytes, bincode::serialize(&s).unwrap());
        assert_eq!(decode::<S>(&bytes).unwrap(), s);
    }

    #[test]
    fn decode_rejects_trailing_and_short_payloads() {
        assert!(decode::<u32>(&[1, 0, 0, 0, 9]).is_err());
        assert!(decode::<u32>(&[1, 0, 0]).is_err());
        assert_eq!(decode::<u32>(&[1, 0, 0, 0]), Ok(1));
    }

    #[test]
    fn timeouts_map_to_nanoseconds() {
        assert_eq!(timeout_ns(None), val::TIMEOUT_FOREVER);
        assert_eq!(timeout_ns(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ns(Some(Duration::from_millis(1500))), 1_500_000_000);
        assert_eq!(timeout_ns(Some(Duration::MAX)), i64::MAX);
    }

    #[test]
    fn info_record_is_parsed_at_abi_offsets() {
        let mut record = [0u8; info::SIZE];
        record[info::TAG..info::TAG + 8].copy_from_slice(&7u64.to_le_bytes());
        record[info::SENDER..info::SENDER + 8].copy_from_slice(&42u64.to_le_bytes());
        record[info::LEN..info::LEN + 4].copy_from_slice(&300u32.to_le_bytes());
        assert_eq!(parse_info(&record), (7, Pid(42), 300));
    }
}
