//! The sockets a process holds: the table, its VM-wide handles, moving
//! sockets with a message, and the bounds on how many a process may open.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use troupe_abi::err;

use crate::{HostError, ProcessCtx};

/// An open socket.
#[derive(Debug)]
pub enum Socket {
    /// A listening TCP socket (`tcp_listen`).
    Listener(TcpListener),
    /// A TCP connection (`tcp_accept`, `tcp_connect`).
    Stream(TcpStream),
    /// A UDP socket (`udp_bind`).
    Udp(UdpSocket),
}

/// The kinds of [`Socket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Listener,
    Stream,
    Udp,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Listener => "a TCP listener",
            Kind::Stream => "a TCP stream",
            Kind::Udp => "a UDP socket",
        })
    }
}

impl Socket {
    pub(super) fn kind(&self) -> Kind {
        match self {
            Socket::Listener(_) => Kind::Listener,
            Socket::Stream(_) => Kind::Stream,
            Socket::Udp(_) => Kind::Udp,
        }
    }

    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Socket::Listener(s) => s.local_addr(),
            Socket::Stream(s) => s.local_addr(),
            Socket::Udp(s) => s.local_addr(),
        }
    }
}

/// A socket shared between its table and the calls using it.
pub type SocketRef = Arc<Socket>;

/// Handles are VM-wide and never reused.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// The sockets one process holds. Closed (every socket dropped, no new one
/// accepted) when the process ends.
#[derive(Debug)]
pub struct Sockets {
    table: Mutex<Option<HashMap<u64, SocketRef>>>,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets {
            table: Mutex::new(Some(HashMap::new())),
        }
    }
}

impl Sockets {
    fn lock(&self) -> MutexGuard<'_, Option<HashMap<u64, SocketRef>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The socket with this handle, if this table holds it.
    pub fn get(&self, handle: u64) -> Option<SocketRef> {
        self.lock().as_ref()?.get(&handle).cloned()
    }

    /// Adds a socket under a new handle; `None` (and the socket is closed)
    /// if the table is closed.
    pub(super) fn add(&self, socket: Socket) -> Option<u64> {
        let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .as_mut()
            .map(|t| t.insert(handle, Arc::new(socket)))
            .map(|_| handle)
    }

    /// Takes sockets moved from another process. If this table is closed
    /// (the receiver ended) they are closed.
    pub fn receive(&self, sockets: Vec<(u64, SocketRef)>) {
        if let Some(table) = self.lock().as_mut() {
            table.extend(sockets);
        }
    }

    /// Removes a socket from the table (closing it unless a call still uses
    /// it).
    pub fn remove(&self, handle: u64) -> Option<SocketRef> {
        self.lock().as_mut()?.remove(&handle)
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.lock().as_ref().map_or(0, HashMap::len)
    }

    /// Whether no socket is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes every socket and the table itself (the process ended).
    pub fn close_all(&self) {
        let table = self.lock().take();
        drop(table);
    }
}

/// Removes the sockets the caller attached (`attach`) from its table, to be
/// moved with the message it is sending.
pub fn take_attached<T: ProcessCtx>(ctx: &mut T) -> Vec<(u64, SocketRef)> {
    let handles = std::mem::take(ctx.attachments());
    handles
        .into_iter()
        .filter_map(|h| ctx.sockets().remove(h).map(|s| (h, s)))
        .collect()
}

/// Moves the caller's attached sockets to process `to` (closing them if it
/// does not exist). Called by every send that carries attachments.
pub fn move_attached<T: ProcessCtx>(ctx: &mut T, to: u64) {
    if ctx.attachments().is_empty() {
        return;
    }
    let moving = take_attached(ctx);
    if let Some(target) = ctx.sockets_of(to) {
        target.receive(moving);
    }
}

/// Descriptors the VM keeps for itself (files, preopened directories,
/// spawning): a socket whose descriptor would leave fewer free is closed at
/// once and refused.
const RESERVED_DESCRIPTORS: u64 = 512;

/// Whether the process may keep a new socket: it holds fewer than
/// [`troupe_abi::limit::SOCKETS`], and the VM has descriptors to spare.
/// (Descriptors are given lowest first, so a socket's own number says how
/// many are open.)
pub(super) fn room_for(sockets: &Sockets, socket: &Socket) -> Result<(), HostError> {
    use std::os::fd::AsRawFd;
    let cap = troupe_abi::limit::SOCKETS;
    if sockets.len() >= cap as usize {
        return Err(HostError::new(
            err::RESOURCE_LIMIT,
            format!("this process already holds {cap} sockets, the most it may open"),
        ));
    }
    let fd = match socket {
        Socket::Listener(s) => s.as_raw_fd(),
        Socket::Stream(s) => s.as_raw_fd(),
        Socket::Udp(s) => s.as_raw_fd(),
    } as u64;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    if fd.saturating_add(RESERVED_DESCRIPTORS) >= limit {
        return Err(HostError::new(
            err::RESOURCE_LIMIT,
            format!(
                "the VM is near its limit of {limit} open descriptors (it keeps \
                 {RESERVED_DESCRIPTORS} for itself): no more sockets now"
            ),
        ));
    }
    Ok(())
}
