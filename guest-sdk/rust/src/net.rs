//! Networking: TCP listeners and streams, UDP sockets and name resolution,
//! over the VM's `troupe_net` host functions.
//!
//! The API follows `std::net`, and blocks as `std::net` does; but a call
//! that waits (accept, connect, read, a full write, a datagram to come)
//! suspends **only the calling process**: the VM runs the others meanwhile,
//! so a server can be a listener process plus one process per connection,
//! each written as plain blocking code.
//!
//! # Permission
//!
//! Networking is off unless the VM was started with it:
//! `troupe run --allow-net app.wasm` (any address) or
//! `--allow-net=HOST[:PORT],...` (only these; for example
//! `--allow-net=127.0.0.1:8080,example.com:443`). A refused call fails with
//! [`io::ErrorKind::PermissionDenied`] and a message naming the address and
//! the flag. A child inherits its parent's permission;
//! [`SpawnOptions::net`](crate::SpawnOptions::net) narrows it (never widens
//! it).
//!
//! # Sockets belong to one process, and can move
//!
//! A socket is owned by the process that opened (or accepted) it; every other
//! process that uses its handle gets an [`io::ErrorKind::InvalidInput`] error
//! ("not a socket this process holds"). A process's sockets are closed when
//! it ends, whatever the reason (a panic, a kill), and dropping a
//! [`TcpStream`], [`TcpListener`] or [`UdpSocket`] closes it.
//!
//! To hand a socket to another process, put it in a message: the three types
//! implement serde's `Serialize` and `Deserialize`. Encoding one attaches it
//! to the message (`troupe_net::attach`), and the send (or the spawn, whose
//! argument is a message) moves it: the receiver owns the socket as soon as
//! the message is queued, and decoding the message gives it a working value.
//! The sender's value is marked as moved, so dropping it does not close the
//! socket; any further use of it (or of its handle) by the sender fails with
//! `InvalidInput`.
//!
//! - If the send fails (the target process does not exist, no process has
//!   the name, the spawn fails), the VM closes the attached sockets: they
//!   went with the lost message.
//! - Only sends and spawns take attachments. Do not encode a socket for
//!   anything else ([`encode`](crate::encode) of your own, a
//!   [`send_after`](crate::send_after) message, another serde format): it
//!   would be attached, and then move with the next message this process
//!   sends.
//! - Encoding a socket that this process does not hold (already moved or
//!   closed) is an error, and the SDK's message encoder panics on it.
//! - Time-outs set on a value are not sent with it.
//!
//! # Example
//!
//! An echo server with one process per connection, the connection being the
//! spawn argument of its process:
//!
//! ```ignore
//! use std::io::{BufRead, BufReader, Write};
//! use troupe::net::{TcpListener, TcpStream};
//! use troupe::{spawn, Mailbox};
//!
//! fn echo(stream: TcpStream, _: Mailbox<()>) {
//!     let mut lines = BufReader::new(&stream);
//!     let mut line = String::new();
//!     while lines.read_line(&mut line).unwrap_or(0) > 0 {
//!         if (&stream).write_all(line.as_bytes()).is_err() {
//!             break;
//!         }
//!         line.clear();
//!     }
//! } // the process ends and its socket is closed
//!
//! fn main() -> std::io::Result<()> {
//!     // troupe run --allow-net=127.0.0.1:7000 echo.wasm
//!     let listener = TcpListener::bind("127.0.0.1:7000")?;
//!     for stream in listener.incoming() {
//!         spawn(stream?, echo).expect("spawn a connection handler");
//!     }
//!     Ok(())
//! }
//! ```
//!
//! A client, and a socket sent in a message:
//!
//! ```ignore
//! #[derive(Serialize, Deserialize)]
//! enum Msg { Conn(TcpStream) }
//!
//! let mut stream = TcpStream::connect_timeout("example.com:80", Duration::from_secs(5))?;
//! stream.set_read_timeout(Some(Duration::from_secs(10)))?;
//! stream.write_all(b"HEAD / HTTP/1.0\r\nHost: example.com\r\n\r\n")?;
//! worker.send(Msg::Conn(stream))?; // the worker owns it now
//! ```

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use troupe_abi::{err, val};

use crate::error::last_error_message;
use crate::host;
use crate::message::timeout_ns;

// ---------------------------------------------------------------------------
// Errors

/// The error of a `troupe_net` host call: the ABI's error code and the VM's
/// explanation. Every [`io::Error`] this module returns for a host error
/// carries one (see [`error_code`]); its kind is derived from the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetError {
    /// The error code, one of [`troupe_abi::err`].
    pub code: i32,
    /// The VM's explanation (`troupe_process::error_message`).
    pub message: String,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NetError {}

/// The `troupe_abi::err` code of an error returned by this module, if it
/// came from the VM (`None` for other errors, such as those of
/// `std::io::Read::read_exact`).
pub fn error_code(error: &io::Error) -> Option<i32> {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<NetError>())
        .map(|e| e.code)
}

/// The kind of `io::Error` for a `troupe_net` error code.
fn error_kind(code: i32) -> io::ErrorKind {
    use io::ErrorKind as K;
    match code {
        err::PERMISSION_DENIED => K::PermissionDenied,
        err::TIMEOUT => K::TimedOut,
        err::BAD_HANDLE | err::INVALID_ARGUMENT => K::InvalidInput,
        err::CONNECTION_REFUSED => K::ConnectionRefused,
        err::CONNECTION_RESET => K::ConnectionReset,
        err::ADDR_IN_USE => K::AddrInUse,
        err::ADDR_NOT_AVAILABLE => K::AddrNotAvailable,
        err::NOT_CONNECTED => K::NotConnected,
        err::HOST_NOT_FOUND => K::NotFound,
        _ => K::Other,
    }
}

/// The `io::Error` for `code` with the VM's `message` (or a default
/// sentence if the VM gave none).
fn error_from(code: i32, message: String) -> io::Error {
    let message = if !message.is_empty() {
        message
    } else if code == err::BAD_HANDLE {
        "not a socket this process holds (never opened, closed, moved to another process, \
         or of the wrong kind)"
            .to_string()
    } else {
        err::name(code).to_string()
    };
    io::Error::new(error_kind(code), NetError { code, message })
}

/// The `io::Error` for the code a host call just returned.
fn host_error(code: i32) -> io::Error {
    error_from(code, last_error_message())
}

/// `Ok` for `OK`, else the host's error.
fn check(code: i32) -> io::Result<()> {
    match code {
        err::OK => Ok(()),
        code => Err(host_error(code)),
    }
}

// ---------------------------------------------------------------------------
// Addresses

/// Parses an address the VM wrote (`IP:PORT`).
fn parse_addr(text: &[u8]) -> io::Result<SocketAddr> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the VM gave a malformed address {:?}",
                    String::from_utf8_lossy(text)
                ),
            )
        })
}

/// Parses the text `resolve` writes: IP addresses, each followed by `\n`.
fn parse_ips(text: &[u8]) -> io::Result<Vec<IpAddr>> {
    let malformed = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the VM gave a malformed address list {:?}",
                String::from_utf8_lossy(text)
            ),
        )
    };
    let text = std::str::from_utf8(text).map_err(|_| malformed())?;
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| line.parse().map_err(|_| malformed()))
        .collect()
}

/// Calls a host function that writes text into a buffer and its length at
/// an out pointer, growing the buffer on `BUFFER_TOO_SMALL`.
fn text_of(mut call: impl FnMut(&mut [u8], &mut u32) -> i32) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 64];
    loop {
        let mut len = 0u32;
        let rc = call(&mut buf, &mut len);
        match rc {
            err::OK => {
                buf.truncate(len as usize);
                return Ok(buf);
            }
            // The length needed is at `len`; it may change before the retry
            // (resolve), hence the loop.
            err::BUFFER_TOO_SMALL if len as usize > buf.len() => buf.resize(len as usize, 0),
            code => return Err(host_error(code)),
        }
    }
}

fn local_addr_of(handle: u64) -> io::Result<SocketAddr> {
    let text = text_of(|buf, n| host::local_addr(handle, buf, n))?;
    parse_addr(&text)
}

fn peer_addr_of(handle: u64) -> io::Result<SocketAddr> {
    let text = text_of(|buf, n| host::peer_addr(handle, buf, n))?;
    parse_addr(&text)
}

/// Resolves a host name (or checks an IP address) to its IP addresses, with
/// the VM's resolver.
///
/// Needs network permission (any rule). Errors:
/// [`io::ErrorKind::NotFound`] if the name does not resolve,
/// [`io::ErrorKind::PermissionDenied`].
///
/// ```ignore
/// let ips = troupe::net::resolve("localhost")?;
/// assert!(ips.iter().any(|ip| ip.is_loopback()));
/// ```
pub fn resolve(name: &str) -> io::Result<Vec<IpAddr>> {
    let text = text_of(|buf, n| host::resolve(name, buf, n))?;
    parse_ips(&text)
}

// ---------------------------------------------------------------------------
// The owned handle shared by the three socket types

/// A socket handle owned by this process: closed on drop unless it was
/// moved (encoded into a message).
struct Handle {
    handle: u64,
    moved: Cell<bool>,
}

impl Handle {
    fn new(handle: u64) -> Handle {
        Handle {
            handle,
            moved: Cell::new(false),
        }
    }

    /// Gives up ownership: the socket is no longer closed on drop.
    fn release(self) -> u64 {
        self.moved.set(true);
        self.handle
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.moved.get() {
            // BAD_HANDLE (the socket is already gone) is nothing to report.
            let _ = host::close(self.handle);
        }
    }
}

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let rc = host::attach(self.handle);
        if rc != err::OK {
            return Err(serde::ser::Error::custom(format_args!(
                "cannot move socket {} in a message: {}",
                self.handle,
                host_error(rc)
            )));
        }
        self.moved.set(true);
        serializer.serialize_u64(self.handle)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u64::deserialize(deserializer).map(Handle::new)
    }
}

/// Takes a new socket's handle from a host call that writes it at an out
/// pointer.
fn open(call: impl FnOnce(&mut u64) -> i32) -> io::Result<Handle> {
    let mut handle = 0u64;
    check(call(&mut handle))?;
    Ok(Handle::new(handle))
}

macro_rules! socket_common {
    ($ty:ident) => {
        impl $ty {
            /// The VM's handle of the socket (a `u64`, never 0, unique in the
            /// VM and never reused). It names the socket only in the process
            /// that holds it.
            pub fn handle(&self) -> u64 {
                self.handle.handle
            }

            /// Takes ownership of socket `handle`, obtained some other way
            /// (for example from [`into_handle`](Self::into_handle), or a
            /// `u64` received in a message whose socket was attached). The
            /// VM checks the handle at each use: a handle this process does
            /// not hold, or of another kind, gives
            /// [`io::ErrorKind::InvalidInput`] errors. Dropping the value
            /// closes the socket.
            pub fn from_handle(handle: u64) -> Self {
                Self::from_owned(Handle::new(handle))
            }

            /// Gives up the value without closing the socket and returns its
            /// handle (see [`from_handle`](Self::from_handle)).
            pub fn into_handle(self) -> u64 {
                self.handle.release()
            }

            /// The local address of the socket.
            pub fn local_addr(&self) -> io::Result<SocketAddr> {
                local_addr_of(self.handle.handle)
            }

            /// The socket's WASI file descriptor in this process (see "WASI
            /// descriptors" in `host-api/SPEC.md`): WASI's `fd_read`,
            /// `fd_write`, `sock_accept` and `poll_oneoff` work on it.
            pub fn descriptor(&self) -> io::Result<u32> {
                let mut fd = 0u32;
                check(host::descriptor(self.handle.handle, &mut fd))?;
                Ok(fd)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("handle", &self.handle.handle)
                    .field("moved", &self.handle.moved.get())
                    .finish()
            }
        }

        /// Moves the socket with the message being encoded (see the
        /// [module documentation](crate::net)): attaches it and writes its handle
        /// as a `u64`. The value is then marked as moved, and dropping it
        /// does not close the socket.
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.handle.serialize(serializer)
            }
        }

        /// Reads the handle (a `u64`) of a socket that came with the message
        /// and owns it.
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Handle::deserialize(deserializer).map(Self::from_owned)
            }
        }
    };
}

// ---------------------------------------------------------------------------
// TCP

/// A TCP listener: [`bind`](Self::bind) it, then [`accept`](Self::accept)
/// connections.
///
/// ```ignore
/// let listener = TcpListener::bind("127.0.0.1:0")?; // port 0: any free port
/// println!("listening on {}", listener.local_addr()?);
/// for stream in listener.incoming() {
///     spawn(stream?, handle_connection)?;
/// }
/// ```
pub struct TcpListener {
    handle: Handle,
}

socket_common!(TcpListener);

impl TcpListener {
    /// This listener as the standard library's, on its WASI descriptor: for
    /// an async runtime in the process, e.g. tokio's
    /// `TcpListener::from_std(listener.into_std()?)` after
    /// `set_nonblocking(true)`. The standard value owns the socket now
    /// (dropping it closes it); each connection it accepts is a new
    /// descriptor of this process ([`TcpStream::from_std`] gives it back as
    /// a Troupe stream, to move it in a message or ask its peer's address).
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        let fd = self.descriptor()?;
        self.handle.release();
        // SAFETY: `fd` is this process's descriptor of the socket, which
        // this value owned and, released, no longer closes: the standard
        // value is its only owner.
        Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as std::os::fd::RawFd) })
    }

    fn from_owned(handle: Handle) -> Self {
        TcpListener { handle }
    }

    /// Listens on `addr` (`HOST:PORT`, for example `0.0.0.0:8080`,
    /// `[::1]:0` or `localhost:9000`; port 0 picks a free port, see
    /// [`local_addr`](Self::local_addr)). The socket has `SO_REUSEADDR` and a
    /// backlog of 1024.
    ///
    /// Errors: [`io::ErrorKind::PermissionDenied`] (no rule of this
    /// process's permission names the address), `AddrInUse`,
    /// `AddrNotAvailable`, `NotFound` (a host name that does not resolve),
    /// `InvalidInput` (not `HOST:PORT`).
    pub fn bind(addr: &str) -> io::Result<TcpListener> {
        open(|out| host::tcp_listen(addr, out)).map(Self::from_owned)
    }

    /// Waits for a connection; returns the new stream, owned by this
    /// process, and the peer's address. Only this process waits.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_within(val::TIMEOUT_FOREVER)
    }

    /// [`accept`](Self::accept), waiting at most `timeout`
    /// ([`io::ErrorKind::TimedOut`] then; `Duration::ZERO` takes only a
    /// connection that is already waiting).
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<(TcpStream, SocketAddr)> {
        self.accept_within(timeout_ns(Some(timeout)))
    }

    fn accept_within(&self, timeout_ns: i64) -> io::Result<(TcpStream, SocketAddr)> {
        let stream = self.accept_stream(timeout_ns)?;
        let peer = stream.peer_addr()?;
        Ok((stream, peer))
    }

    fn accept_stream(&self, timeout_ns: i64) -> io::Result<TcpStream> {
        open(|out| host::tcp_accept(self.handle.handle, timeout_ns, out)).map(TcpStream::from_owned)
    }

    /// The connections, as [`accept`](Self::accept) gives them (without
    /// the peer's address). The iterator never ends; each item is an
    /// accepted stream or the error of one accept.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }
}

/// The iterator of [`TcpListener::incoming`].
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept_stream(val::TIMEOUT_FOREVER))
    }
}

/// A TCP connection, from [`TcpStream::connect`] or
/// [`TcpListener::accept`].
///
/// Read and write it with `std::io::Read` and `Write`, on the value or on a
/// shared reference (`&TcpStream`), so that a `BufReader<&TcpStream>` and
/// writes can share one stream. A write sends the whole buffer before it
/// returns (waiting while the socket's buffer is full); nothing is buffered
/// in the process, so `flush` does nothing.
///
/// ```ignore
/// let mut stream = TcpStream::connect("127.0.0.1:7000")?;
/// stream.set_read_timeout(Some(Duration::from_secs(5)))?;
/// stream.write_all(b"hello\n")?;
/// let mut line = String::new();
/// BufReader::new(&stream).read_line(&mut line)?;
/// ```
pub struct TcpStream {
    handle: Handle,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

socket_common!(TcpStream);

impl TcpStream {
    /// This stream as the standard library's, on its WASI descriptor (see
    /// [`TcpListener::into_std`]).
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let fd = self.descriptor()?;
        self.handle.release();
        // SAFETY: as in `TcpListener::into_std`.
        Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as std::os::fd::RawFd) })
    }

    /// A Troupe stream from the standard library's (or one a runtime
    /// accepted, by its descriptor): the same socket, owned by the returned
    /// value.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        use std::os::fd::IntoRawFd;
        let fd = stream.into_raw_fd();
        let mut handle = 0u64;
        check(host::handle_of(fd as u32, &mut handle))?;
        Ok(Self::from_owned(Handle::new(handle)))
    }

    fn from_owned(handle: Handle) -> Self {
        TcpStream {
            handle,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        }
    }

    /// Connects to `addr` (`HOST:PORT`; a host name is resolved by the VM,
    /// which tries each of its addresses in turn). `TCP_NODELAY` is set.
    ///
    /// Errors: [`io::ErrorKind::PermissionDenied`] (no rule of this
    /// process's permission names the address), `ConnectionRefused`,
    /// `NotFound` (the name does not resolve), `InvalidInput` (not
    /// `HOST:PORT`), `TimedOut`.
    pub fn connect(addr: &str) -> io::Result<TcpStream> {
        Self::connect_within(addr, val::TIMEOUT_FOREVER)
    }

    /// [`connect`](Self::connect), giving up after `timeout`
    /// ([`io::ErrorKind::TimedOut`]); the time-out covers the resolution
    /// of the name and every attempt.
    pub fn connect_timeout(addr: &str, timeout: Duration) -> io::Result<TcpStream> {
        Self::connect_within(addr, timeout_ns(Some(timeout)))
    }

    fn connect_within(addr: &str, timeout_ns: i64) -> io::Result<TcpStream> {
        open(|out| host::tcp_connect(addr, timeout_ns, out)).map(Self::from_owned)
    }

    /// The address of the other end.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        peer_addr_of(self.handle.handle)
    }

    /// Sets how long a read waits for data (`None`: forever, the default;
    /// `Some(Duration::ZERO)`: a read returns only data already there, else
    /// fails). A read that times out fails with
    /// [`io::ErrorKind::TimedOut`].
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(timeout);
        Ok(())
    }

    /// Sets how long a write may wait while the socket's buffer is full
    /// (`None`: forever, the default). A write that times out fails with
    /// [`io::ErrorKind::TimedOut`], or returns the count of bytes written
    /// before it.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(timeout);
        Ok(())
    }

    /// The read time-out (see [`set_read_timeout`](Self::set_read_timeout)).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.read_timeout.get())
    }

    /// The write time-out (see [`set_write_timeout`](Self::set_write_timeout)).
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout.get())
    }

    /// Shuts the reading half, the writing half (the peer reads the end of
    /// the stream) or both. The socket stays open until it is dropped.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => val::SHUTDOWN_READ,
            Shutdown::Write => val::SHUTDOWN_WRITE,
            Shutdown::Both => val::SHUTDOWN_BOTH,
        };
        check(host::shutdown(self.handle.handle, how))
    }

    fn read_into(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len().min(i32::MAX as usize);
        let mut n = 0u32;
        let timeout = timeout_ns(self.read_timeout.get());
        let rc = host::net_read(self.handle.handle, &mut buf[..len], timeout, &mut n);
        check(rc)?;
        Ok(n as usize)
    }

    fn write_from(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len().min(i32::MAX as usize);
        let mut n = 0u32;
        let timeout = timeout_ns(self.write_timeout.get());
        let rc = host::net_write(self.handle.handle, &buf[..len], timeout, &mut n);
        match rc {
            err::OK => Ok(n as usize),
            // Part of the buffer went before the error: report that part, as
            // `Write::write` must; the next write meets the error again.
            _ if n > 0 => Ok(n as usize),
            code => Err(host_error(code)),
        }
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_into(buf)
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_into(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_from(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_from(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// UDP

/// A UDP socket.
///
/// ```ignore
/// let socket = UdpSocket::bind("127.0.0.1:0")?;
/// socket.send_to(b"ping", "127.0.0.1:9000")?;
/// let mut buf = [0u8; 1500];
/// let (n, from) = socket.recv_from(&mut buf)?;
/// ```
pub struct UdpSocket {
    handle: Handle,
    read_timeout: Cell<Option<Duration>>,
    write_timeout: Cell<Option<Duration>>,
}

socket_common!(UdpSocket);

impl UdpSocket {
    fn from_owned(handle: Handle) -> Self {
        UdpSocket {
            handle,
            read_timeout: Cell::new(None),
            write_timeout: Cell::new(None),
        }
    }

    /// Binds a UDP socket to `addr` (`HOST:PORT`; port 0 picks a free
    /// port). Errors as [`TcpListener::bind`].
    pub fn bind(addr: &str) -> io::Result<UdpSocket> {
        open(|out| host::udp_bind(addr, out)).map(Self::from_owned)
    }

    /// Sends `buf` as one datagram to `addr` (`HOST:PORT`, resolved by the
    /// VM if a name); returns the count sent.
    ///
    /// Errors: [`io::ErrorKind::PermissionDenied`] (no rule names the
    /// address), `NotFound`, `InvalidInput`, `TimedOut` (see
    /// [`set_write_timeout`](Self::set_write_timeout)), `Other` (for example
    /// a datagram too large).
    pub fn send_to(&self, buf: &[u8], addr: &str) -> io::Result<usize> {
        let mut n = 0u32;
        let timeout = timeout_ns(self.write_timeout.get());
        let rc = host::udp_send_to(self.handle.handle, buf, addr, timeout, &mut n);
        check(rc)?;
        Ok(n as usize)
    }

    /// Waits for one datagram (see [`set_read_timeout`](Self::set_read_timeout)),
    /// copies it into `buf` (the rest of a datagram longer than `buf` is
    /// lost) and returns its length and its sender's address.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let mut n = 0u32;
        let mut addr = [0u8; 128];
        let mut addr_len = 0u32;
        let timeout = timeout_ns(self.read_timeout.get());
        let rc = host::udp_recv_from(
            self.handle.handle,
            buf,
            timeout,
            &mut n,
            &mut addr,
            &mut addr_len,
        );
        check(rc)?;
        // The SPEC says 47 bytes always suffice; a longer one was truncated
        // and fails to parse.
        let from = parse_addr(&addr[..(addr_len as usize).min(addr.len())])?;
        Ok((n as usize, from))
    }

    /// Sets how long [`recv_from`](Self::recv_from) waits (`None`: forever,
    /// the default). It then fails with [`io::ErrorKind::TimedOut`].
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.read_timeout.set(timeout);
        Ok(())
    }

    /// Sets how long [`send_to`](Self::send_to) may wait (`None`: forever,
    /// the default).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_timeout.set(timeout);
        Ok(())
    }

    /// The read time-out (see [`set_read_timeout`](Self::set_read_timeout)).
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.read_timeout.get())
    }

    /// The write time-out (see [`set_write_timeout`](Self::set_write_timeout)).
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.write_timeout.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn error_codes_map_to_io_kinds() {
        use io::ErrorKind as K;
        let cases = [
            (err::PERMISSION_DENIED, K::PermissionDenied),
            (err::TIMEOUT, K::TimedOut),
            (err::BAD_HANDLE, K::InvalidInput),
            (err::CONNECTION_REFUSED, K::ConnectionRefused),
            (err::CONNECTION_RESET, K::ConnectionReset),
            (err::ADDR_IN_USE, K::AddrInUse),
            (err::ADDR_NOT_AVAILABLE, K::AddrNotAvailable),
            (err::NOT_CONNECTED, K::NotConnected),
            (err::HOST_NOT_FOUND, K::NotFound),
            (err::INVALID_ARGUMENT, K::InvalidInput),
            (err::IO_ERROR, K::Other),
            (err::NO_PROCESS, K::Other),
        ];
        for (code, kind) in cases {
            let e = error_from(code, "why".into());
            assert_eq!(e.kind(), kind, "code {code}");
            assert_eq!(error_code(&e), Some(code));
            assert_eq!(e.to_string(), "why");
        }
        assert_eq!(error_code(&io::Error::other("x")), None);
    }

    #[test]
    fn errors_without_a_message_get_a_sentence() {
        let e = error_from(err::BAD_HANDLE, String::new());
        assert!(e.to_string().contains("not a socket this process holds"));
        let e = error_from(err::CONNECTION_REFUSED, String::new());
        assert_eq!(e.to_string(), "connection refused");
    }

    #[test]
    fn addresses_parse_as_ip_and_port() {
        assert_eq!(
            parse_addr(b"127.0.0.1:8080").unwrap(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))
        );
        assert_eq!(
            parse_addr(b"[::1]:9").unwrap(),
            SocketAddr::from((Ipv6Addr::LOCALHOST, 9))
        );
        for bad in [&b"localhost:80"[..], b"1.2.3.4", b"", b"\xff"] {
            let e = parse_addr(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn resolve_output_is_one_ip_per_line() {
        assert_eq!(
            parse_ips(b"127.0.0.1\n::1\n").unwrap(),
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(parse_ips(b"").unwrap(), Vec::<IpAddr>::new());
        assert!(parse_ips(b"127.0.0.1\nnot-an-ip\n").is_err());
    }
}
