//! The sockets a process holds: the table, its VM-wide handles and the
//! process's WASI descriptors for them, moving sockets with a message, and
//! the bounds on how many a process may open.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use troupe_abi::{err, val};

use crate::{HostError, ProcessCtx};

/// A listening TCP socket, with the connection `poll_oneoff` accepted to
/// learn that one was waiting (the next accept takes it first).
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub(crate) inner: TcpListener,
    /// A connection accepted ahead of the guest's accept.
    pub(crate) pending: Mutex<Option<(TcpStream, SocketAddr)>>,
}

impl Listener {
    /// A listener with no connection taken ahead.
    pub fn new(inner: TcpListener) -> Listener {
        Listener {
            inner,
            pending: Mutex::new(None),
        }
    }

    /// The next connection: the one taken ahead, or a new one.
    pub(crate) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        if let Some(conn) = lock(&self.pending).take() {
            return Ok(conn);
        }
        self.inner.accept().await
    }
}

/// The connection taken ahead of the guest's accept, locked.
pub(crate) fn lock_pending(l: &Listener) -> MutexGuard<'_, Option<(TcpStream, SocketAddr)>> {
    lock(&l.pending)
}

/// An open socket.
#[derive(Debug)]
pub enum Socket {
    /// A listening TCP socket (`tcp_listen`).
    Listener(Listener),
    /// A TCP connection (`tcp_accept`, `tcp_connect`, `sock_accept`).
    Stream(TcpStream),
    /// A UDP socket (`udp_bind`).
    Udp(UdpSocket),
}

/// The kinds of [`Socket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
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
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Socket::Listener(_) => Kind::Listener,
            Socket::Stream(_) => Kind::Stream,
            Socket::Udp(_) => Kind::Udp,
        }
    }

    pub(super) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Socket::Listener(s) => s.inner.local_addr(),
            Socket::Stream(s) => s.local_addr(),
            Socket::Udp(s) => s.local_addr(),
        }
    }
}

/// A socket shared between its table and the calls using it.
pub type SocketRef = Arc<Socket>;

/// Handles are VM-wide and never reused.
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A socket in its process's table: the socket, its WASI descriptor there,
/// and the descriptor's state.
#[derive(Debug)]
struct Entry {
    socket: SocketRef,
    fd: u32,
    state: FdState,
}

/// The state of one of a process's descriptors (a socket's or the
/// mailbox's) that `poll_oneoff` and the WASI calls share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdState {
    /// `FDFLAGS_NONBLOCK`: a call that would wait returns `EAGAIN`.
    pub nonblock: bool,
    /// Readiness to read (or accept) may be reported: it has not been since
    /// a read last found nothing (edge-triggered, see SPEC.md).
    pub read_armed: bool,
    /// The same for writing.
    pub write_armed: bool,
}

impl FdState {
    const NEW: FdState = FdState {
        nonblock: false,
        read_armed: true,
        write_armed: true,
    };
}

#[derive(Debug, Default)]
struct Table {
    by_handle: HashMap<u64, Entry>,
    by_fd: HashMap<u32, u64>,
    /// The next descriptor to give. Numbers go up, skipping those in use,
    /// and wrap around only after [`MAX_FD`]: a closed or moved socket's
    /// number is not given to another socket for a long time, so that a
    /// guest's late `fd_close` of it (Go closes its side of a socket after
    /// the socket moved away) cannot close a newer socket.
    next_fd: u32,
    /// The mailbox's descriptor: readiness may be reported once a message
    /// arrives after the `n`-th (`Some(n)`), or not at all (`None`, just
    /// reported).
    mailbox_armed: Option<u64>,
}

impl Table {
    fn new() -> Table {
        Table {
            next_fd: val::FD_BASE,
            mailbox_armed: Some(0),
            ..Table::default()
        }
    }

    fn insert(&mut self, handle: u64, socket: SocketRef) -> u32 {
        // At most limit::SOCKETS numbers are in use, so this ends soon.
        let mut fd = self.next_fd;
        while self.by_fd.contains_key(&fd) {
            fd = next_descriptor(fd);
        }
        self.next_fd = next_descriptor(fd);
        self.by_fd.insert(fd, handle);
        self.by_handle.insert(
            handle,
            Entry {
                socket,
                fd,
                state: FdState::NEW,
            },
        );
        fd
    }

    fn remove(&mut self, handle: u64) -> Option<SocketRef> {
        let entry = self.by_handle.remove(&handle)?;
        self.by_fd.remove(&entry.fd);
        Some(entry.socket)
    }
}

/// The highest descriptor a socket gets (WASI descriptors are `i32`s).
const MAX_FD: u32 = i32::MAX as u32;

fn next_descriptor(fd: u32) -> u32 {
    if fd >= MAX_FD {
        val::FD_BASE
    } else {
        fd + 1
    }
}

/// The sockets one process holds, each under its VM-wide handle and its
/// WASI descriptor in this process (from [`val::FD_BASE`] up). Closed (every
/// socket dropped, no new one accepted) when the process ends.
#[derive(Debug)]
pub struct Sockets {
    table: Mutex<Option<Table>>,
}

impl Default for Sockets {
    fn default() -> Self {
        Sockets {
            table: Mutex::new(Some(Table::new())),
        }
    }
}

impl Sockets {
    fn lock(&self) -> MutexGuard<'_, Option<Table>> {
        lock(&self.table)
    }

    /// The socket with this handle, if this table holds it.
    pub fn get(&self, handle: u64) -> Option<SocketRef> {
        Some(self.lock().as_ref()?.by_handle.get(&handle)?.socket.clone())
    }

    /// Adds a socket under a new handle and descriptor; `None` (and the
    /// socket is closed) if the table is closed.
    pub(crate) fn add(&self, socket: Socket) -> Option<(u64, u32)> {
        let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        let mut table = self.lock();
        let fd = table.as_mut()?.insert(handle, Arc::new(socket));
        Some((handle, fd))
    }

    /// Takes sockets moved from another process (each gets a descriptor
    /// here). If this table is closed (the receiver ended) they are closed.
    pub fn receive(&self, sockets: Vec<(u64, SocketRef)>) {
        if let Some(table) = self.lock().as_mut() {
            for (handle, socket) in sockets {
                table.insert(handle, socket);
            }
        }
    }

    /// Removes a socket from the table and frees its descriptor (closing the
    /// socket unless a call still uses it).
    pub fn remove(&self, handle: u64) -> Option<SocketRef> {
        self.lock().as_mut()?.remove(handle)
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.lock().as_ref().map_or(0, |t| t.by_handle.len())
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

    /// The descriptor of the socket with this handle.
    pub fn fd_of(&self, handle: u64) -> Option<u32> {
        Some(self.lock().as_ref()?.by_handle.get(&handle)?.fd)
    }

    /// The handle and socket behind descriptor `fd`, with its state.
    pub fn by_fd(&self, fd: u32) -> Option<(u64, SocketRef, FdState)> {
        let table = self.lock();
        let table = table.as_ref()?;
        let handle = *table.by_fd.get(&fd)?;
        let entry = &table.by_handle[&handle];
        Some((handle, entry.socket.clone(), entry.state))
    }

    /// Lets readiness to read of the socket with this handle be reported
    /// again (a troupe_net call that reads without waiting found nothing,
    /// or may).
    pub fn rearm_read(&self, handle: u64) {
        if let Some(table) = self.lock().as_mut() {
            if let Some(entry) = table.by_handle.get_mut(&handle) {
                entry.state.read_armed = true;
            }
        }
    }

    /// Changes descriptor `fd`'s state; `false` if it is not a socket here.
    pub fn update(&self, fd: u32, change: impl FnOnce(&mut FdState)) -> bool {
        let mut table = self.lock();
        let Some(table) = table.as_mut() else {
            return false;
        };
        let Some(handle) = table.by_fd.get(&fd) else {
            return false;
        };
        match table.by_handle.get_mut(handle) {
            Some(entry) => {
                change(&mut entry.state);
                true
            }
            None => false,
        }
    }

    /// Arms the mailbox's descriptor: its readiness is reported once more
    /// than `arrivals` messages have arrived (a receive that found nothing
    /// calls this with the count it saw before it looked).
    pub fn arm_mailbox(&self, arrivals: u64) {
        if let Some(t) = self.lock().as_mut() {
            t.mailbox_armed = Some(match t.mailbox_armed {
                Some(n) => n.min(arrivals),
                None => arrivals,
            });
        }
    }

    /// The arrival count past which the mailbox's readiness is reported
    /// (`None`: it was reported and no receive has found nothing since).
    pub fn mailbox_armed(&self) -> Option<u64> {
        self.lock().as_ref()?.mailbox_armed
    }

    /// Marks the mailbox's readiness as reported.
    pub fn disarm_mailbox(&self) {
        if let Some(t) = self.lock().as_mut() {
            t.mailbox_armed = None;
        }
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
/// (The VM's own descriptors are given lowest first, so a socket's own
/// number says how many are open.)
pub(crate) fn room_for(sockets: &Sockets, socket: &Socket) -> Result<(), HostError> {
    use std::os::fd::AsRawFd;
    let cap = troupe_abi::limit::SOCKETS;
    if sockets.len() >= cap as usize {
        return Err(HostError::new(
            err::RESOURCE_LIMIT,
            format!("this process already holds {cap} sockets, the most it may open"),
        ));
    }
    let fd = match socket {
        Socket::Listener(s) => s.inner.as_raw_fd(),
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
