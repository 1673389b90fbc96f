//! Mailboxes: a FIFO queue per process with selective receive.
//!
//! A send locks the queue, appends and wakes the receiver if it is waiting:
//! it never blocks on the receiver. A receive takes the oldest message whose
//! tag it accepts and leaves the others queued in order, like Erlang's
//! `receive`.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Mutex;
use std::task::{Poll, Waker};
use std::time::Duration;

use troupe_host_api::{Message, TagSet};

#[derive(Default)]
struct Inner {
    queue: VecDeque<Message>,
    waker: Option<Waker>,
    closed: bool,
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
#[derive(Default)]
pub struct Mailbox {
    inner: Mutex<Inner>,
}

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::lock(&self.inner)
    }

    /// Queues a message; `false` (and the message is dropped) if the
    /// mailbox's process has ended.
    pub fn push(&self, msg: Message) -> bool {
        let mut inner = self.lock();
        if inner.closed {
            return false;
        }
        inner.queue.push_back(msg);
        let waker = inner.waker.take();
        drop(inner);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Takes the oldest message whose tag `tags` accepts, if any.
    pub fn take(&self, tags: &TagSet) -> Option<Message> {
        Self::take_from(&mut self.lock(), tags)
    }

    fn take_from(inner: &mut Inner, tags: &TagSet) -> Option<Message> {
        if let Some(front) = inner.queue.front() {
            if tags.matches(front.tag) {
                return inner.queue.pop_front();
            }
        }
        let at = inner.queue.iter().position(|m| tags.matches(m.tag))?;
        inner.queue.remove(at)
    }

    /// Waits for a message whose tag `tags` accepts, for at most `timeout`
    /// (`None`: forever; zero: poll). `None` on time-out.
    pub async fn receive(&self, tags: TagSet, timeout: Option<Duration>) -> Option<Message> {
        // Without a time-out the first poll below looks at the queue; with
        // one, look first, so a waiting message costs no timer.
        if timeout.is_some() {
            if let Some(msg) = self.take(&tags) {
                return Some(msg);
            }
        }
        let wait = poll_fn(|cx| {
            let mut inner = self.lock();
            match Self::take_from(&mut inner, &tags) {
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

    /// Waits until a message is queued (of any tag), without taking it.
    pub async fn wait_nonempty(&self) {
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
    pub fn remove_first(&self, pred: impl Fn(&Message) -> bool) -> bool {
        let mut inner = self.lock();
        match inner.queue.iter().position(pred) {
            Some(at) => inner.queue.remove(at).is_some(),
            None => false,
        }
    }

    /// Ends the mailbox: queued messages are dropped and later pushes fail.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.queue = VecDeque::new();
        inner.waker = None;
    }

    /// How many messages are queued.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no message is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert!(mb.push(msg(tag, n)));
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
        mb.push(msg(7, 1));
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
        mb.push(msg(1, 1));
        mb.push(msg(9, 2));
        assert_eq!(waiter.await.unwrap().unwrap().data, vec![2]);
        assert_eq!(mb.len(), 1);
    }

    #[test]
    fn a_closed_mailbox_drops_messages() {
        let mb = Mailbox::default();
        mb.push(msg(1, 1));
        mb.close();
        assert!(mb.is_empty());
        assert!(!mb.push(msg(1, 2)));
    }
}
