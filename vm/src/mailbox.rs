//! Mailboxes: a FIFO queue per process with selective receive.
//!
//! A send locks the queue, appends and wakes the receiver if it is waiting:
//! it never blocks on the receiver. A receive takes the oldest message whose
//! tag it accepts and leaves the others queued in order, like Erlang's
//! `receive`.
//!
//! Queued messages are charged to the receiver's memory budget
//! ([`crate::budget`]): a send that would take it past it is refused.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use troupe_host_api::{Message, TagSet};

use crate::budget::{Budget, Over, MESSAGE_OVERHEAD};

#[derive(Default)]
struct Inner {
    queue: VecDeque<Message>,
    waker: Option<Waker>,
    closed: bool,
    /// Bytes charged for the queued messages.
    bytes: u64,
    /// Messages pushed so far (the mailbox descriptor's readiness).
    arrivals: u64,
}

/// What a queued message costs its receiver.
fn cost(msg: &Message) -> u64 {
    msg.data.len() as u64 + MESSAGE_OVERHEAD
}

/// Why a message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The mailbox's process has ended.
    Closed,
    /// The receiver's memory budget (or the VM's) cannot hold it.
    Full(Over),
}

impl Inner {
    /// Makes the next push wake `waker` (a clone is kept only when the
    /// waiting task's waker changed).
    fn park(&mut self, waker: &Waker) {
        match &mut self.waker {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }
}

/// A process's mailbox.
pub(crate) struct Mailbox {
    inner: Mutex<Inner>,
    budget: Arc<Budget>,
}

impl Mailbox {
    /// An empty mailbox whose messages are charged to `budget`.
    pub(crate) fn new(budget: Arc<Budget>) -> Mailbox {
        Mailbox {
            inner: Mutex::default(),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::lock(&self.inner)
    }

    /// Queues a message sent by a process: refused (and dropped) if the
    /// mailbox's process has ended or its budget cannot hold it.
    pub(crate) fn push(&self, msg: Message) -> Result<(), PushError> {
        self.push_checked(msg, true)
    }

    /// Queues a message the VM itself sends (an EXIT, a DOWN): never
    /// refused for its size, which the limits on reasons bound, nor for
    /// their number, which the limits on links and monitors bound.
    pub(crate) fn push_signal(&self, msg: Message) -> bool {
        self.push_checked(msg, false).is_ok()
    }

    fn push_checked(&self, msg: Message, check: bool) -> Result<(), PushError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(PushError::Closed);
        }
        let n = cost(&msg);
        self.budget.charge(n, check).map_err(PushError::Full)?;
        inner.bytes += n;
        inner.arrivals += 1;
        inner.queue.push_back(msg);
        let waker = inner.waker.take();
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Takes the oldest message whose tag `tags` accepts, if any.
    pub(crate) fn take(&self, tags: &TagSet) -> Option<Message> {
        self.take_from(&mut self.lock(), tags)
    }

    fn take_from(&self, inner: &mut Inner, tags: &TagSet) -> Option<Message> {
        let msg = match inner.queue.front() {
            Some(front) if tags.matches(front.tag) => inner.queue.pop_front(),
            _ => {
                let at = inner.queue.iter().position(|m| tags.matches(m.tag))?;
                inner.queue.remove(at)
            }
        }?;
        self.uncharge(inner, &msg);
        Some(msg)
    }

    fn uncharge(&self, inner: &mut Inner, msg: &Message) {
        let n = cost(msg);
        inner.bytes -= n;
        self.budget.release(n);
    }

    /// Waits for a message whose tag `tags` accepts, for at most `timeout`
    /// (`None`: forever; zero: poll). `None` on time-out.
    pub(crate) async fn receive(&self, tags: TagSet, timeout: Option<Duration>) -> Option<Message> {
        // Without a time-out the first poll below looks at the queue; with
        // one, look first, so a waiting message costs no timer.
        if timeout.is_some() {
            if let Some(msg) = self.take(&tags) {
                return Some(msg);
            }
        }
        let wait = poll_fn(|cx| {
            let mut inner = self.lock();
            match self.take_from(&mut inner, &tags) {
                Some(msg) => Poll::Ready(msg),
                None => {
                    inner.park(cx.waker());
                    Poll::Pending
                }
            }
        });
        match timeout {
            None => Some(wait.await),
            Some(d) if d.is_zero() => None,
            Some(d) => tokio::time::timeout(d, wait).await.ok(),
        }
    }

    /// How many messages have been pushed so far.
    pub(crate) fn arrivals(&self) -> u64 {
        self.lock().arrivals
    }

    /// Ready once more than `after` messages have been pushed; otherwise the
    /// receiver's task is woken at the next push.
    pub(crate) fn poll_arrival(&self, after: u64, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let mut inner = self.lock();
        if inner.arrivals > after || inner.closed {
            return Poll::Ready(());
        }
        inner.park(cx.waker());
        Poll::Pending
    }

    /// Waits until a message is queued (of any tag), without taking it.
    pub(crate) async fn wait_nonempty(&self) {
        poll_fn(|cx| {
            let mut inner = self.lock();
            if !inner.queue.is_empty() {
                return Poll::Ready(());
            }
            inner.park(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Removes the oldest message for which `pred` holds; whether there was one.
    pub(crate) fn remove_first(&self, pred: impl Fn(&Message) -> bool) -> bool {
        let mut inner = self.lock();
        let Some(at) = inner.queue.iter().position(pred) else {
            return false;
        };
        let msg = inner.queue.remove(at).expect("found");
        self.uncharge(&mut inner, &msg);
        true
    }

    /// Ends the mailbox: queued messages are dropped (their charge given
    /// back) and later pushes fail.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.queue = VecDeque::new();
        inner.waker = None;
        self.budget.release(std::mem::take(&mut inner.bytes));
    }

    /// How many messages are queued.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no message is queued.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::VmBudget;

    impl Default for Mailbox {
        fn default() -> Self {
            Mailbox::new(Arc::new(Budget::new(u64::MAX, VmBudget::new(u64::MAX))))
        }
    }

    #[test]
    fn a_full_budget_refuses_data_but_not_signals_and_receiving_frees_it() {
        let budget = Arc::new(Budget::new(1000, VmBudget::new(u64::MAX)));
        let mb = Mailbox::new(budget.clone());
        let big = |n| Message {
            tag: 0,
            sender: 1,
            data: vec![0; n],
        };
        mb.push(big(600)).unwrap();
        assert!(matches!(mb.push(big(600)), Err(PushError::Full(_))));
        assert!(mb.push_signal(big(600)), "a signal is never refused");
        assert_eq!(budget.used(), 1200 + 2 * MESSAGE_OVERHEAD);
        mb.take(&TagSet::Any).unwrap();
        mb.take(&TagSet::Any).unwrap();
        assert_eq!(budget.used(), 0);
        mb.push(big(600)).unwrap();
        mb.close();
        assert_eq!(budget.used(), 0, "closing gives the queue's charge back");
        assert_eq!(mb.push(big(1)), Err(PushError::Closed));
    }

    fn msg(tag: u64, n: u8) -> Message {
        Message {
            tag,
            sender: 1,
            data: vec![n],
        }
    }

    #[tokio::test]
    async fn selective_receive_keeps_other_messages_in_order() {
        let mb = Mailbox::default();
        for (tag, n) in [(1, 1), (2, 2), (1, 3), (3, 4), (2, 5)] {
            mb.push(msg(tag, n)).unwrap();
        }
        let got = mb.receive(TagSet::One(2), None).await.unwrap();
        assert_eq!(got.data, vec![2]);
        let got = mb.receive(TagSet::many(vec![3, 2]), None).await.unwrap();
        assert_eq!(got.data, vec![4], "oldest message among the accepted tags");
        let rest: Vec<u8> = std::iter::from_fn(|| mb.take(&TagSet::Any))
            .map(|m| m.data[0])
            .collect();
        assert_eq!(rest, vec![1, 3, 5]);
    }

    #[tokio::test]
    async fn receive_times_out_and_zero_polls() {
        let mb = Mailbox::default();
        assert!(mb
            .receive(TagSet::Any, Some(Duration::ZERO))
            .await
            .is_none());
        let t = std::time::Instant::now();
        assert!(mb
            .receive(TagSet::Any, Some(Duration::from_millis(30)))
            .await
            .is_none());
        assert!(t.elapsed() >= Duration::from_millis(30));
        mb.push(msg(7, 1)).unwrap();
        assert!(mb
            .receive(TagSet::One(8), Some(Duration::ZERO))
            .await
            .is_none());
        assert_eq!(mb.len(), 1, "a non-matching message stays queued");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_receive_is_woken_by_a_send() {
        let mb = std::sync::Arc::new(Mailbox::default());
        let mb2 = mb.clone();
        let waiter = tokio::spawn(async move { mb2.receive(TagSet::One(9), None).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        mb.push(msg(1, 1)).unwrap();
        mb.push(msg(9, 2)).unwrap();
        assert_eq!(waiter.await.unwrap().unwrap().data, vec![2]);
        assert_eq!(mb.len(), 1);
    }

    #[test]
    fn a_closed_mailbox_drops_messages() {
        let mb = Mailbox::default();
        mb.push(msg(1, 1)).unwrap();
        mb.close();
        assert!(mb.is_empty());
        assert_eq!(mb.push(msg(1, 2)), Err(PushError::Closed));
    }
}
