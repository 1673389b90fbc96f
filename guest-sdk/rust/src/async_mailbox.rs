//! Waiting for messages from async Rust, on tokio (feature `tokio`).
//!
//! A process that runs a tokio runtime (a current-thread one: a process
//! has one thread) serves sockets from many tasks; a task that waited in
//! [`Mailbox::receive`] would stop all of them until a message came.
//! [`AsyncMailbox`] waits in tokio's reactor instead: the mailbox is a WASI
//! descriptor of every process (`abi::val::MAILBOX_FD`, see
//! host-api/SPEC.md "WASI descriptors"), ready to read once a message
//! arrives after a receive found none, and tokio (mio) waits on it with
//! the sockets, in one `poll_oneoff`.
//!
//! ```ignore
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let mailbox = AsyncMailbox::<Command>::new(Mailbox::this())?;
//!     tokio::spawn(serve_http());            // runs while the loop below waits
//!     loop {
//!         match mailbox.receive().await? { Command::Stop => break, other => handle(other) }
//!     }
//!     Ok(())
//! })
//! ```
//!
//! Tokio's networking on wasm32-wasip1 needs `--cfg tokio_unstable` (this
//! repository's `.cargo/config.toml` sets it for the wasm target).

use std::io;
use std::os::fd::FromRawFd;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::Interest;

use crate::{Envelope, Mailbox, ReceiveError};

/// A [`Mailbox`] whose receives are `async`: they wait in tokio's reactor,
/// so the process's other tasks run meanwhile. Make it inside the runtime
/// (it registers the mailbox's descriptor with the runtime's reactor).
#[derive(Debug)]
pub struct AsyncMailbox<M> {
    mailbox: Mailbox<M>,
    /// The mailbox's descriptor in tokio's reactor. A `TcpStream` only as
    /// the registration tokio offers for a raw descriptor on WASI: nothing
    /// reads or writes it. Dropping it closes the descriptor, which does
    /// nothing for the mailbox's (it cannot be closed).
    ready: tokio::net::TcpStream,
}

impl<M: DeserializeOwned> AsyncMailbox<M> {
    /// The mailbox, waited on in the current tokio runtime's reactor.
    ///
    /// Errors: no runtime with I/O enabled is running.
    pub fn new(mailbox: Mailbox<M>) -> io::Result<Self> {
        // SAFETY: MAILBOX_FD is a descriptor of every process, which no
        // one can close (fd_close of it does nothing), so the value owns
        // a descriptor that stays valid for as long as it lives.
        let std = unsafe { std::net::TcpStream::from_raw_fd(crate::abi::val::MAILBOX_FD as i32) };
        let ready = tokio::net::TcpStream::from_std(std)?;
        Ok(AsyncMailbox { mailbox, ready })
    }

    /// The synchronous mailbox.
    pub fn mailbox(&self) -> &Mailbox<M> {
        &self.mailbox
    }

    /// Waits for the next message. Errors: a payload that does not decode
    /// as `M` ([`ReceiveError::Malformed`]; the message is consumed).
    pub async fn receive(&self) -> Result<M, ReceiveError> {
        self.receive_envelope().await.map(|e| e.msg)
    }

    /// Waits for the next message, with its sender.
    pub async fn receive_envelope(&self) -> Result<Envelope<M>, ReceiveError> {
        let take = || self.mailbox.receive_envelope_timeout(Some(Duration::ZERO));
        loop {
            // Look first: a receive that finds nothing arms the descriptor.
            match take() {
                Err(ReceiveError::Timeout) => {}
                done => return done,
            }
            if self.ready.readable().await.is_err() {
                // The reactor is gone (the runtime is shutting down).
                std::future::pending::<()>().await;
            }
            // Ready: look again; finding nothing clears tokio's readiness.
            let looked = self.ready.try_io(Interest::READABLE, || match take() {
                Err(ReceiveError::Timeout) => Err(io::ErrorKind::WouldBlock.into()),
                done => Ok(done),
            });
            if let Ok(done) = looked {
                return done;
            }
        }
    }
}
