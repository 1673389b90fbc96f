//! Namespace `troupe_net`: TCP, UDP and name resolution, off unless the VM
//! was started with permission. See `host-api/SPEC.md`.
//!
//! Sockets are tokio sockets held in the owning process's [`Sockets`] table
//! under VM-wide handles; a call that waits (accept, read, a full write)
//! suspends only the calling process. A socket moves to another process with
//! a message: [`take_attached`] removes the sockets the caller attached from
//! its table, and the VM puts them in the receiver's before queueing the
//! message.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use troupe_abi::{err, module::NET, val};
use wasmtime::{Caller, Linker, Memory};

use crate::memory::{memory_of, read_str, read_str_arg, slice, slice_mut, write_u64};
use crate::{HostError, ProcessCtx};

/// An open socket.
#[derive(Debug)]
pub enum Socket {
    Listener(TcpListener),
    Stream(TcpStream),
    Udp(UdpSocket),
}

/// The kinds of [`Socket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
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
    fn kind(&self) -> Kind {
        match self {
            Socket::Listener(_) => Kind::Listener,
            Socket::Stream(_) => Kind::Stream,
            Socket::Udp(_) => Kind::Udp,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
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
    fn add(&self, socket: Socket) -> Option<u64> {
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

// ---------------------------------------------------------------------------
// Permission

/// The host part of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RuleHost {
    Any,
    Ip(IpAddr),
    /// Lower-case.
    Name(String),
}

/// One `HOST[:PORT]` rule of `--allow-net`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRule {
    host: RuleHost,
    port: Option<u16>,
}

impl NetRule {
    /// Parses `*`, `*:PORT`, `IP`, `IP:PORT`, `[IPv6]`, `[IPv6]:PORT`,
    /// `NAME`, `NAME:PORT`.
    pub fn parse(text: &str) -> Result<NetRule, String> {
        let bad = |why: &str| format!("bad network rule {text:?}: {why} (expected HOST[:PORT])");
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("empty"));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(NetRule {
                host: RuleHost::Ip(ip),
                port: None,
            });
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (ip, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            };
            (ip, port)
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not 0..65535"))?,
            ),
        };
        let host = if host == "*" {
            RuleHost::Any
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            RuleHost::Ip(ip)
        } else if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            RuleHost::Name(host.to_ascii_lowercase())
        } else {
            return Err(bad("the host is not an IP address, a host name or *"));
        };
        Ok(NetRule { host, port })
    }

    fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    /// Whether `other` allows nothing this rule does not.
    fn covers(&self, other: &NetRule) -> bool {
        let host = self.host == RuleHost::Any || self.host == other.host;
        let port = self.port.is_none() || self.port == other.port;
        host && port
    }
}

impl std::fmt::Display for NetRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            RuleHost::Any => write!(f, "*")?,
            RuleHost::Ip(IpAddr::V6(ip)) if self.port.is_some() => write!(f, "[{ip}]")?,
            RuleHost::Ip(ip) => write!(f, "{ip}")?,
            RuleHost::Name(n) => write!(f, "{n}")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// Which addresses a process may listen on, bind, connect and send to.
/// Empty: no network at all (the default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetPolicy {
    rules: Vec<NetRule>,
}

impl NetPolicy {
    /// No network.
    pub fn deny() -> NetPolicy {
        NetPolicy::default()
    }

    /// Any address (`--allow-net`).
    pub fn allow_all() -> NetPolicy {
        NetPolicy {
            rules: vec![NetRule {
                host: RuleHost::Any,
                port: None,
            }],
        }
    }

    /// The rules of a comma-separated list (`--allow-net=a:1,b`).
    pub fn parse(list: &str) -> Result<NetPolicy, String> {
        let items: Vec<&str> = list.split(',').filter(|s| !s.trim().is_empty()).collect();
        if items.is_empty() {
            return Err("an empty list of network rules (use --allow-net for any address)".into());
        }
        NetPolicy::from_rules(items)
    }

    /// The policy made of these rules.
    pub fn from_rules<S: AsRef<str>>(
        rules: impl IntoIterator<Item = S>,
    ) -> Result<NetPolicy, String> {
        Ok(NetPolicy {
            rules: rules
                .into_iter()
                .map(|r| NetRule::parse(r.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The rules of both policies.
    pub fn union(mut self, other: &NetPolicy) -> NetPolicy {
        self.rules.extend(other.rules.iter().cloned());
        self
    }

    /// Whether any network access is allowed.
    pub fn is_enabled(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The first rule of `child` this policy does not cover, if any.
    pub fn uncovered<'a>(&self, child: &'a NetPolicy) -> Option<&'a NetRule> {
        child
            .rules
            .iter()
            .find(|c| !self.rules.iter().any(|r| r.covers(c)))
    }

    /// The rules, as `--allow-net` takes them.
    pub fn describe(&self) -> String {
        if self.rules.is_empty() {
            return "none".into();
        }
        let rules: Vec<String> = self.rules.iter().map(ToString::to_string).collect();
        rules.join(",")
    }

    /// Whether the VM may look `host` (a name, as the guest wrote it) up in
    /// the DNS for this process: only a name a rule names, unless a rule is
    /// `*`. Any other look-up would let a guest send data out in the names
    /// it asks for, whatever its rules allow it to connect to.
    pub fn may_resolve(&self, host: &str) -> bool {
        self.rules.iter().any(|r| match &r.host {
            RuleHost::Any => true,
            RuleHost::Ip(_) => false,
            RuleHost::Name(name) => name.eq_ignore_ascii_case(host),
        })
    }

    /// Of `addrs` (what `host`, as the guest wrote it, resolved to), those
    /// this policy allows.
    async fn allowed(&self, host: &str, addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut allowed = Vec::with_capacity(addrs.len());
        for addr in addrs {
            if self.allows(host, addr).await {
                allowed.push(addr);
            }
        }
        allowed
    }

    async fn allows(&self, host: &str, addr: SocketAddr) -> bool {
        for rule in self.rules.iter().filter(|r| r.port_matches(addr.port())) {
            let ok = match &rule.host {
                RuleHost::Any => true,
                RuleHost::Ip(ip) => *ip == addr.ip(),
                RuleHost::Name(name) => {
                    name.eq_ignore_ascii_case(host)
                        || tokio::net::lookup_host((name.as_str(), addr.port()))
                            .await
                            .is_ok_and(|mut a| a.any(|a| a.ip() == addr.ip()))
                }
            };
            if ok {
                return true;
            }
        }
        false
    }
}

// ---------------------------------------------------------------------------
// Errors and helpers

fn host_error(code: i32, message: impl Into<String>) -> HostError {
    HostError::new(code, message)
}

/// An I/O error as an ABI error.
fn io_error(what: &str, e: &io::Error) -> HostError {
    use io::ErrorKind as K;
    let code = match e.kind() {
        K::ConnectionRefused => err::CONNECTION_REFUSED,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => err::CONNECTION_RESET,
        K::AddrInUse => err::ADDR_IN_USE,
        K::AddrNotAvailable => err::ADDR_NOT_AVAILABLE,
        K::NotConnected => err::NOT_CONNECTED,
        K::TimedOut => err::TIMEOUT,
        K::PermissionDenied => err::PERMISSION_DENIED,
        K::InvalidInput => err::INVALID_ARGUMENT,
        _ => err::IO_ERROR,
    };
    host_error(code, format!("{what}: {e}"))
}

fn timed_out(what: &str, timeout: Duration) -> HostError {
    host_error(err::TIMEOUT, format!("{what}: timed out after {timeout:?}"))
}

/// Runs `f` within `timeout_ns` (negative: no limit).
async fn within<R>(
    what: &str,
    timeout_ns: i64,
    f: impl Future<Output = Result<R, HostError>>,
) -> Result<R, HostError> {
    if timeout_ns < 0 {
        return f.await;
    }
    let d = Duration::from_nanos(timeout_ns as u64);
    tokio::time::timeout(d, f)
        .await
        .unwrap_or_else(|_| Err(timed_out(what, d)))
}

/// Splits `HOST:PORT` (HOST may be `[IPv6]`).
fn split_addr(addr: &str) -> Result<(String, u16), HostError> {
    let bad = |why: &str| {
        host_error(
            err::INVALID_ARGUMENT,
            format!("address {addr:?}: {why} (expected HOST:PORT)"),
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| bad("the port is not 0..65535"))?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']').ok_or_else(|| bad("missing ']'"))?,
        None if host.contains(':') => return Err(bad("an IPv6 address must be in brackets")),
        None => host,
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((host.to_owned(), port))
}

/// Resolves `host` (a name or an IP) with `port`.
async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, HostError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| host_error(err::HOST_NOT_FOUND, format!("cannot resolve {host:?}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(host_error(
            err::HOST_NOT_FOUND,
            format!("{host:?} has no address"),
        ));
    }
    Ok(addrs)
}

/// Resolves `addr` and keeps the addresses the caller's policy allows for
/// `action` (e.g. "connect to").
async fn permitted(
    policy: &NetPolicy,
    action: &str,
    addr: &str,
) -> Result<Vec<SocketAddr>, HostError> {
    let (host, port) = split_addr(addr)?;
    if !policy.is_enabled() || !(host.parse::<IpAddr>().is_ok() || policy.may_resolve(&host)) {
        return Err(denied(action, addr, policy));
    }
    let addrs = lookup(&host, port).await?;
    let allowed = policy.allowed(&host, addrs).await;
    if allowed.is_empty() {
        return Err(denied(action, addr, policy));
    }
    Ok(allowed)
}

fn denied(action: &str, addr: &str, policy: &NetPolicy) -> HostError {
    let why = if policy.is_enabled() {
        format!("this process may use only {}", policy.describe())
    } else {
        "this process has no network permission: networking is off unless the VM is \
         started with --allow-net (any address) or --allow-net=HOST:PORT,... (those only), \
         and a parent can spawn a child with less (or none)"
            .to_string()
    };
    host_error(
        err::PERMISSION_DENIED,
        format!("not allowed to {action} {addr}: {why}"),
    )
}

/// The socket `handle` of the caller, as long as it is of the kind
/// `wanted` (`None`: any kind).
fn socket_of<T: ProcessCtx>(
    ctx: &T,
    handle: i64,
    wanted: Option<Kind>,
) -> Result<SocketRef, HostError> {
    let handle = handle as u64;
    let socket = ctx.sockets().get(handle).ok_or_else(|| {
        host_error(
            err::BAD_HANDLE,
            format!(
                "{handle} is not a socket this process holds (never opened, closed, or moved \
                 to another process)"
            ),
        )
    })?;
    match wanted {
        Some(kind) if kind != socket.kind() => Err(host_error(
            err::BAD_HANDLE,
            format!("socket {handle} is {}, not {kind}", socket.kind()),
        )),
        _ => Ok(socket),
    }
}

/// Records `e` (if any) and returns the code.
fn finish<T: ProcessCtx>(caller: &mut Caller<'_, T>, result: Result<(), HostError>) -> i32 {
    match result {
        Ok(()) => err::OK,
        Err(e) => caller.data_mut().record_error(e),
    }
}

fn write_u32<T: ProcessCtx>(
    memory: &Memory,
    caller: &mut Caller<'_, T>,
    f: &str,
    what: &str,
    ptr: i32,
    value: u32,
) -> wasmtime::Result<()> {
    slice_mut(memory, caller, f, what, ptr, 4)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// Descriptors the VM keeps for itself (files, preopened directories,
/// spawning): a socket whose descriptor would leave fewer free is closed at
/// once and refused.
const RESERVED_DESCRIPTORS: u64 = 512;

/// Whether the process may keep a new socket: it holds fewer than
/// [`troupe_abi::limit::SOCKETS`], and the VM has descriptors to spare.
/// (Descriptors are given lowest first, so a socket's own number says how
/// many are open.)
fn room_for(sockets: &Sockets, socket: &Socket) -> Result<(), HostError> {
    use std::os::fd::AsRawFd;
    let cap = troupe_abi::limit::SOCKETS;
    if sockets.len() >= cap as usize {
        return Err(host_error(
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
        return Err(host_error(
            err::RESOURCE_LIMIT,
            format!(
                "the VM is near its limit of {limit} open descriptors (it keeps \
                 {RESERVED_DESCRIPTORS} for itself): no more sockets now"
            ),
        ));
    }
    Ok(())
}

/// Adds a new socket to the caller's table and writes its handle.
fn add_socket<T: ProcessCtx>(
    memory: &Memory,
    caller: &mut Caller<'_, T>,
    f: &str,
    out_handle: i32,
    socket: Socket,
) -> wasmtime::Result<i32> {
    if let Err(e) = room_for(caller.data().sockets(), &socket) {
        drop(socket);
        return Ok(caller.data_mut().record_error(e));
    }
    match caller.data().sockets().add(socket) {
        Some(handle) => {
            write_u64(memory, caller, f, "out_handle", out_handle, handle)?;
            Ok(err::OK)
        }
        None => Ok(caller.data_mut().record_error(host_error(
            err::IO_ERROR,
            "the process is ending: its sockets are closed",
        ))),
    }
}

/// Writes `text` into `buf` and its length at `out_len`
/// (`BUFFER_TOO_SMALL` if it does not fit).
#[allow(clippy::too_many_arguments)]
fn write_text<T: ProcessCtx>(
    memory: &Memory,
    caller: &mut Caller<'_, T>,
    f: &str,
    text: &str,
    buf_ptr: i32,
    buf_len: i32,
    out_len: i32,
) -> wasmtime::Result<i32> {
    write_u32(memory, caller, f, "out_len", out_len, text.len() as u32)?;
    if text.len() > buf_len as u32 as usize {
        return Ok(caller.data_mut().record_error(host_error(
            err::BUFFER_TOO_SMALL,
            format!("{} bytes are needed, the buffer has {buf_len}", text.len()),
        )));
    }
    slice_mut(memory, caller, f, "buf", buf_ptr, text.len() as i32)?
        .copy_from_slice(text.as_bytes());
    Ok(err::OK)
}

// ---------------------------------------------------------------------------
// The host functions

/// Registers `troupe_net` into `linker`.
pub fn register<T: ProcessCtx>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.func_wrap_async(NET, "tcp_listen", |c: Caller<'_, T>, (p, l, o)| {
        Box::new(bind(c, "troupe_net::tcp_listen", p, l, o, false))
    })?;
    linker.func_wrap_async(NET, "udp_bind", |c: Caller<'_, T>, (p, l, o)| {
        Box::new(bind(c, "troupe_net::udp_bind", p, l, o, true))
    })?;
    linker.func_wrap_async(NET, "tcp_accept", |c: Caller<'_, T>, (h, t, o)| {
        Box::new(tcp_accept(c, h, t, o))
    })?;
    linker.func_wrap_async(NET, "tcp_connect", |c: Caller<'_, T>, (p, l, t, o)| {
        Box::new(tcp_connect(c, p, l, t, o))
    })?;
    linker.func_wrap_async(NET, "read", |c: Caller<'_, T>, (h, p, l, t, o)| {
        Box::new(read(c, h, p, l, t, o))
    })?;
    linker.func_wrap_async(NET, "write", |c: Caller<'_, T>, (h, p, l, t, o)| {
        Box::new(write(c, h, p, l, t, o))
    })?;
    linker.func_wrap_async(
        NET,
        "udp_send_to",
        |c: Caller<'_, T>, (h, p, l, ap, al, t, o)| Box::new(udp_send_to(c, h, p, l, ap, al, t, o)),
    )?;
    linker.func_wrap_async(
        NET,
        "udp_recv_from",
        |c: Caller<'_, T>, (h, p, l, t, o, ap, ac, ao)| {
            Box::new(udp_recv_from(c, h, p, l, t, o, ap, ac, ao))
        },
    )?;
    linker.func_wrap_async(NET, "resolve", |c: Caller<'_, T>, (p, l, bp, bl, o)| {
        Box::new(resolve(c, p, l, bp, bl, o))
    })?;
    linker.func_wrap(NET, "shutdown", shutdown::<T>)?;
    linker.func_wrap(NET, "close", close::<T>)?;
    linker.func_wrap(NET, "attach", attach::<T>)?;
    linker.func_wrap(
        NET,
        "local_addr",
        |c: Caller<'_, T>, h: i64, p: i32, l: i32, o: i32| {
            addr_of(c, "troupe_net::local_addr", h, p, l, o, false)
        },
    )?;
    linker.func_wrap(
        NET,
        "peer_addr",
        |c: Caller<'_, T>, h: i64, p: i32, l: i32, o: i32| {
            addr_of(c, "troupe_net::peer_addr", h, p, l, o, true)
        },
    )?;
    Ok(())
}

/// `tcp_listen` and `udp_bind`.
async fn bind<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    f: &'static str,
    addr_ptr: i32,
    addr_len: i32,
    out_handle: i32,
    udp: bool,
) -> wasmtime::Result<i32> {
    let memory = memory_of(&mut caller, f)?;
    slice(&memory, &caller, f, "out_handle", out_handle, 8)?;
    let addr = match read_str_arg(&memory, &caller, f, "addr", addr_ptr, addr_len)? {
        Ok(a) => a,
        Err(e) => return Ok(caller.data_mut().record_error(e)),
    };
    let policy = caller.data().net_policy().clone();
    let action = if udp { "bind" } else { "listen on" };
    let result = async {
        let addrs = permitted(&policy, action, &addr).await?;
        let mut last = None;
        for a in addrs {
            let opened = if udp {
                UdpSocket::bind(a).await.map(Socket::Udp)
            } else {
                listen(a).map(Socket::Listener)
            };
            match opened {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        let e = last.expect("permitted() returns at least one address");
        Err(io_error(&format!("cannot {action} {addr}"), &e))
    }
    .await;
    match result {
        Ok(socket) => add_socket(&memory, &mut caller, f, out_handle, socket),
        Err(e) => Ok(caller.data_mut().record_error(e)),
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn tcp_accept<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    listener: i64,
    timeout_ns: i64,
    out_handle: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_net::tcp_accept";
    let memory = memory_of(&mut caller, F)?;
    slice(&memory, &caller, F, "out_handle", out_handle, 8)?;
    let result = match socket_of(caller.data(), listener, Some(Kind::Listener)) {
        Err(e) => Err(e),
        Ok(socket) => {
            let Socket::Listener(l) = &*socket else {
                unreachable!("checked by socket_of")
            };
            within(F, timeout_ns, async {
                let (stream, _) = l.accept().await.map_err(|e| io_error("accept", &e))?;
                let _ = stream.set_nodelay(true);
                Ok(stream)
            })
            .await
        }
    };
    match result {
        Ok(stream) => add_socket(&memory, &mut caller, F, out_handle, Socket::Stream(stream)),
        Err(e) => Ok(caller.data_mut().record_error(e)),
    }
}

async fn tcp_connect<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    addr_ptr: i32,
    addr_len: i32,
    timeout_ns: i64,
    out_handle: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_net::tcp_connect";
    let memory = memory_of(&mut caller, F)?;
    slice(&memory, &caller, F, "out_handle", out_handle, 8)?;
    let addr = match read_str_arg(&memory, &caller, F, "addr", addr_ptr, addr_len)? {
        Ok(a) => a,
        Err(e) => return Ok(caller.data_mut().record_error(e)),
    };
    let policy = caller.data().net_policy().clone();
    let result = within(F, timeout_ns, async {
        let addrs = permitted(&policy, "connect to", &addr).await?;
        let mut last = None;
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        let e = last.expect("permitted() returns at least one address");
        Err(io_error(&format!("cannot connect to {addr}"), &e))
    })
    .await;
    match result {
        Ok(stream) => add_socket(&memory, &mut caller, F, out_handle, Socket::Stream(stream)),
        Err(e) => Ok(caller.data_mut().record_error(e)),
    }
}

/// Waits until `ready` says the socket is readable and runs `try_read` on
/// the guest's buffer `buf_ptr..+buf_len` (already checked), again while it
/// would block; within `timeout_ns`. The guest's memory is borrowed only
/// between the waits.
#[allow(clippy::too_many_arguments)]
async fn read_ready<T: ProcessCtx, R, W: Future<Output = io::Result<()>>>(
    caller: &mut Caller<'_, T>,
    memory: &Memory,
    buf_ptr: i32,
    buf_len: i32,
    what: &str,
    timeout_ns: i64,
    ready: impl Fn() -> W,
    mut try_read: impl FnMut(&mut [u8]) -> io::Result<R>,
) -> Result<R, HostError> {
    let (at, len) = (buf_ptr as u32 as usize, buf_len as u32 as usize);
    within(what, timeout_ns, async {
        loop {
            ready().await.map_err(|e| io_error(what, &e))?;
            // The range was checked by the caller and memory never shrinks.
            let buf = &mut memory.data_mut(&mut *caller)[at..at + len];
            match try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return done.map_err(|e| io_error(what, &e)),
            }
        }
    })
    .await
}

async fn read<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    handle: i64,
    buf_ptr: i32,
    buf_len: i32,
    timeout_ns: i64,
    out_n: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_net::read";
    let memory = memory_of(&mut caller, F)?;
    slice(&memory, &caller, F, "buf", buf_ptr, buf_len)?;
    slice(&memory, &caller, F, "out_n", out_n, 4)?;
    let socket = match socket_of(caller.data(), handle, Some(Kind::Stream)) {
        Ok(s) => s,
        Err(e) => return Ok(caller.data_mut().record_error(e)),
    };
    let Socket::Stream(stream) = &*socket else {
        unreachable!("checked by socket_of")
    };
    let result = read_ready(
        &mut caller,
        &memory,
        buf_ptr,
        buf_len,
        F,
        timeout_ns,
        || stream.readable(),
        |buf| stream.try_read(buf),
    )
    .await;
    match result {
        Ok(n) => {
            write_u32(&memory, &mut caller, F, "out_n", out_n, n as u32)?;
            Ok(err::OK)
        }
        Err(e) => Ok(caller.data_mut().record_error(e)),
    }
}

async fn write<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    handle: i64,
    buf_ptr: i32,
    buf_len: i32,
    timeout_ns: i64,
    out_n: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_net::write";
    let memory = memory_of(&mut caller, F)?;
    slice(&memory, &caller, F, "buf", buf_ptr, buf_len)?;
    slice(&memory, &caller, F, "out_n", out_n, 4)?;
    let socket = match socket_of(caller.data(), handle, Some(Kind::Stream)) {
        Ok(s) => s,
        Err(e) => return Ok(caller.data_mut().record_error(e)),
    };
    let Socket::Stream(stream) = &*socket else {
        unreachable!("checked by socket_of")
    };
    let (at, len) = (buf_ptr as u32 as usize, buf_len as u32 as usize);
    let mut written = 0usize;
    let (caller_ref, written_ref) = (&mut caller, &mut written);
    let result = within(F, timeout_ns, async {
        while *written_ref < len {
            // Try first: a socket with room in its buffer needs no wait.
            let tried = {
                let buf = &memory.data(&mut *caller_ref)[at + *written_ref..at + len];
                stream.try_write(buf)
            };
            match tried {
                Ok(n) => *written_ref += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    stream.writable().await.map_err(|e| io_error("write", &e))?
                }
                Err(e) => return Err(io_error("write", &e)),
            }
        }
        Ok(())
    })
    .await;
    write_u32(&memory, &mut caller, F, "out_n", out_n, written as u32)?;
    Ok(finish(&mut caller, result))
}

#[allow(clippy::too_many_arguments)]
async fn udp_send_to<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    handle: i64,
    buf_ptr: i32,
    buf_len: i32,
    addr_ptr: i32,
    addr_len: i32,
    timeout_ns: i64,
    out_n: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_net::udp_send_to";
    let memory = memory_of(&mut caller, F)?;
    let data = slice(&memory, &caller, F, "buf", buf_ptr, buf_len)?.to_vec();
    slice(&memory, &caller, F, "out_n", out_n, 4)?;
    let addr = match read_str_arg(&memory, &caller, F, "addr", addr_ptr, addr_len)? {
        Ok(a) => a,
        Err(e) => return Ok(caller.data_mut().record_error(e)),
    };
    let socket = match socket_of(caller.data(), handle, Some(Kind::Udp)) {
        Ok(s) => s,
        Err(e) => return Ok(caller.data_mut().record_error(e)),
    };
    let Socket::Udp(udp) = &*socket else {
        unreachable!("checked by socket_of")
    };
    let policy = caller.data().net_policy().clone();
    let result = within(F, timeout_ns, async {
        let addrs = permitted(&policy, "send to", &addr).await?;
        udp.send_to(&data, addrs[0])
            .await
            .map_err(|e| io_error(&format!("send to {addr}"), &e))
    })
    .await;
    match result {
        Ok(n) => {
            write_u32(&memory, &mut caller, F, "out_n", out_n, n as u32)?;
            Ok(err::OK)
        }
        Err(e) => Ok(caller.data_mut().record_error(e)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn udp_recv_from<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    handle: i64,
    buf_ptr: i32,
    buf_len: i32,
    timeout_ns: i64,
    out_n: i32,
    addr_ptr: i32,
    addr_cap: i32,
    out_addr_len: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_net::udp_recv_from";
    let memory = memory_of(&mut caller, F)?;
    slice(&memory, &caller, F, "buf", buf_ptr, buf_len)?;
    slice(&memory, &caller, F, "out_n", out_n, 4)?;
    slice(&memory, &caller, F, "addr", addr_ptr, addr_cap)?;
    slice(&memory, &caller, F, "out_addr_len", out_addr_len, 4)?;
    let socket = match socket_of(caller.data(), handle, Some(Kind::Udp)) {
        Ok(s) => s,
        Err(e) => return Ok(caller.data_mut().record_error(e)),
    };
    let Socket::Udp(udp) = &*socket else {
        unreachable!("checked by socket_of")
    };
    let result = read_ready(
        &mut caller,
        &memory,
        buf_ptr,
        buf_len,
        F,
        timeout_ns,
        || udp.readable(),
        |buf| udp.try_recv_from(buf),
    )
    .await;
    match result {
        Ok((n, from)) => {
            write_u32(&memory, &mut caller, F, "out_n", out_n, n as u32)?;
            let text = from.to_string();
            let shown = text.len().min(addr_cap as u32 as usize);
            slice_mut(&memory, &mut caller, F, "addr", addr_ptr, shown as i32)?
                .copy_from_slice(&text.as_bytes()[..shown]);
            write_u32(
                &memory,
                &mut caller,
                F,
                "out_addr_len",
                out_addr_len,
                text.len() as u32,
            )?;
            Ok(err::OK)
        }
        Err(e) => Ok(caller.data_mut().record_error(e)),
    }
}

async fn resolve<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    name_ptr: i32,
    name_len: i32,
    buf_ptr: i32,
    buf_len: i32,
    out_len: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "troupe_net::resolve";
    let memory = memory_of(&mut caller, F)?;
    slice(&memory, &caller, F, "buf", buf_ptr, buf_len)?;
    slice(&memory, &caller, F, "out_len", out_len, 4)?;
    let name = match read_str(&memory, &caller, F, "name", name_ptr, name_len)? {
        Ok(n) => n,
        Err(e) => {
            return Ok(caller
                .data_mut()
                .record_error(host_error(err::INVALID_ARGUMENT, e)))
        }
    };
    let policy = caller.data().net_policy().clone();
    let result = async {
        if !policy.is_enabled() {
            return Err(denied("resolve", &name, &policy));
        }
        let host = name.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(host_error(err::INVALID_ARGUMENT, "an empty host name"));
        }
        if host.parse::<IpAddr>().is_err() && !policy.may_resolve(host) {
            return Err(host_error(
                err::PERMISSION_DENIED,
                format!(
                    "not allowed to resolve {host:?}: this process may resolve only the names \
                     its rules name ({}), or any name with a rule `*`",
                    policy.describe()
                ),
            ));
        }
        let mut ips: Vec<IpAddr> = Vec::new();
        for a in lookup(host, 0).await? {
            if !ips.contains(&a.ip()) {
                ips.push(a.ip());
            }
        }
        Ok(ips.iter().map(|ip| format!("{ip}\n")).collect::<String>())
    }
    .await;
    match result {
        Ok(text) => write_text(&memory, &mut caller, F, &text, buf_ptr, buf_len, out_len),
        Err(e) => Ok(caller.data_mut().record_error(e)),
    }
}

fn shutdown<T: ProcessCtx>(mut caller: Caller<'_, T>, handle: i64, how: i32) -> i32 {
    let result = socket_of(caller.data(), handle, Some(Kind::Stream)).and_then(|socket| {
        let Socket::Stream(stream) = &*socket else {
            unreachable!("checked by socket_of")
        };
        let how = match how {
            val::SHUTDOWN_READ => std::net::Shutdown::Read,
            val::SHUTDOWN_WRITE => std::net::Shutdown::Write,
            val::SHUTDOWN_BOTH => std::net::Shutdown::Both,
            other => {
                return Err(host_error(
                    err::INVALID_ARGUMENT,
                    format!("shutdown: how must be 0 (read), 1 (write) or 2 (both), not {other}"),
                ))
            }
        };
        socket2::SockRef::from(stream)
            .shutdown(how)
            .map_err(|e| io_error("shutdown", &e))
    });
    finish(&mut caller, result)
}

fn close<T: ProcessCtx>(mut caller: Caller<'_, T>, handle: i64) -> i32 {
    let state = caller.data_mut();
    let result = match state.sockets().remove(handle as u64) {
        Some(_) => {
            state.attachments().retain(|h| *h != handle as u64);
            Ok(())
        }
        None => socket_of(&*state, handle, None).map(drop),
    };
    finish(&mut caller, result)
}

fn attach<T: ProcessCtx>(mut caller: Caller<'_, T>, handle: i64) -> i32 {
    let state = caller.data_mut();
    let result = socket_of(&*state, handle, None).map(|_| {
        let pending = state.attachments();
        if !pending.contains(&(handle as u64)) {
            pending.push(handle as u64);
        }
    });
    finish(&mut caller, result)
}

fn addr_of<T: ProcessCtx>(
    mut caller: Caller<'_, T>,
    f: &str,
    handle: i64,
    buf_ptr: i32,
    buf_len: i32,
    out_len: i32,
    peer: bool,
) -> wasmtime::Result<i32> {
    let memory = memory_of(&mut caller, f)?;
    slice(&memory, &caller, f, "buf", buf_ptr, buf_len)?;
    slice(&memory, &caller, f, "out_len", out_len, 4)?;
    let wanted = peer.then_some(Kind::Stream);
    let addr = socket_of(caller.data(), handle, wanted).and_then(|socket| {
        let a = match &*socket {
            Socket::Stream(s) if peer => s.peer_addr(),
            s => s.local_addr(),
        };
        a.map_err(|e| io_error(f, &e))
    });
    match addr {
        Ok(a) => write_text(
            &memory,
            &mut caller,
            f,
            &a.to_string(),
            buf_ptr,
            buf_len,
            out_len,
        ),
        Err(e) => Ok(caller.data_mut().record_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> NetRule {
        NetRule::parse(s).unwrap()
    }

    #[test]
    fn rules_parse_hosts_and_ports() {
        assert_eq!(rule("*").to_string(), "*");
        assert_eq!(rule("*:80").to_string(), "*:80");
        assert_eq!(rule("127.0.0.1").to_string(), "127.0.0.1");
        assert_eq!(rule("127.0.0.1:8080").to_string(), "127.0.0.1:8080");
        assert_eq!(rule("::1").to_string(), "::1");
        assert_eq!(rule("[::1]:7").to_string(), "[::1]:7");
        assert_eq!(rule("DB:5432").to_string(), "db:5432");
        for bad in ["", "db:99999", "db:x", "[::1", "a b", "[::1]x", ":80"] {
            assert!(NetRule::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(NetPolicy::parse(",").is_err());
        assert_eq!(
            NetPolicy::parse("a:1, b").unwrap().describe(),
            "a:1,b".to_string()
        );
    }

    #[test]
    fn only_names_a_rule_names_are_looked_up_unless_a_rule_is_any() {
        let ips = NetPolicy::parse("127.0.0.1:8080,[::1]").unwrap();
        assert!(!ips.may_resolve("localhost"));
        assert!(!ips.may_resolve("secret-data.attacker.example"));
        let named = NetPolicy::parse("DB:5432,127.0.0.1").unwrap();
        assert!(named.may_resolve("db") && named.may_resolve("Db"));
        assert!(!named.may_resolve("db.attacker.example"));
        assert!(NetPolicy::parse("*:443").unwrap().may_resolve("anything"));
        assert!(!NetPolicy::deny().may_resolve("localhost"));
    }

    #[tokio::test]
    async fn a_name_no_rule_names_is_refused_before_any_lookup() {
        // With a rule for 127.0.0.1 only, "localhost" (which would resolve
        // to it) is refused: looking it up at all is what is not allowed.
        let policy = NetPolicy::parse("127.0.0.1").unwrap();
        let e = permitted(&policy, "connect to", "localhost:80")
            .await
            .unwrap_err();
        assert_eq!(e.code, err::PERMISSION_DENIED, "{e}");
        let ok = permitted(&policy, "connect to", "127.0.0.1:80").await;
        assert_eq!(ok.unwrap(), vec!["127.0.0.1:80".parse().unwrap()]);
    }

    #[test]
    fn children_get_no_more_than_their_parent() {
        let parent = NetPolicy::parse("127.0.0.1:8080,db").unwrap();
        let ok = NetPolicy::parse("127.0.0.1:8080,db:5432").unwrap();
        assert_eq!(parent.uncovered(&ok), None);
        for wider in ["127.0.0.1", "*:8080", "db2", "10.0.0.1:8080"] {
            let child = NetPolicy::parse(wider).unwrap();
            assert!(parent.uncovered(&child).is_some(), "{wider} allowed");
        }
        assert_eq!(NetPolicy::allow_all().uncovered(&parent), None);
        assert!(NetPolicy::deny().uncovered(&parent).is_some());
        assert_eq!(parent.uncovered(&NetPolicy::deny()), None);
    }

    #[tokio::test]
    async fn policies_match_addresses_by_ip_port_and_name() {
        let p = NetPolicy::parse("127.0.0.1:8080,localhost:9000").unwrap();
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert!(p.allows("127.0.0.1", a("127.0.0.1:8080")).await);
        assert!(!p.allows("127.0.0.1", a("127.0.0.1:8081")).await);
        assert!(!p.allows("127.0.0.2", a("127.0.0.2:8080")).await);
        // By the name as written, and by an address the rule's name has.
        assert!(p.allows("LOCALHOST", a("127.0.0.1:9000")).await);
        assert!(p.allows("127.0.0.1", a("127.0.0.1:9000")).await);
        assert!(!NetPolicy::deny().allows("x", a("127.0.0.1:1")).await);
        let denied = permitted(&NetPolicy::deny(), "connect to", "127.0.0.1:1")
            .await
            .unwrap_err();
        assert_eq!(denied.code, err::PERMISSION_DENIED);
        assert!(denied.message.contains("--allow-net"), "{}", denied.message);
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_addr("a:1").unwrap(), ("a".into(), 1));
        assert_eq!(split_addr("[::1]:80").unwrap(), ("::1".into(), 80));
        for bad in ["a", "a:x", ":80", "::1:80", "[::1:80"] {
            assert_eq!(
                split_addr(bad).unwrap_err().code,
                err::INVALID_ARGUMENT,
                "{bad}"
            );
        }
    }
}
