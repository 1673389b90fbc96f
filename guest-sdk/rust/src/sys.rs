//! The raw host functions of the Troupe VM, exactly as `host-api/SPEC.md`
//! declares them.
//!
//! Everything here is `unsafe` and takes pointers as `i32` offsets into the
//! caller's linear memory. Use the safe API of the crate instead; this module
//! is public only for SDK authors and for experiments.
//!
//! On targets other than `wasm32` the functions exist (so that the crate
//! builds and its pure parts can be tested on the host) but panic with
//! "troupe guests run only on wasm32".

// The import module names must be string literals in `#[link]`; they are
// checked against `troupe_abi::module` by a test (see `tests` below).

/// Declares each host function once: as a Wasm import on `wasm32`, and as a
/// stub that panics elsewhere (so the crate builds and its pure parts test
/// on the host).
macro_rules! host_functions {
    ($(
        #[link(wasm_import_module = $module:literal)]
        { $(
            $(#[doc = $doc:literal])*
            $(#[link_name = $link_name:literal])?
            fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;
        )* }
    )*) => {
        $(
            #[cfg(target_arch = "wasm32")]
            #[link(wasm_import_module = $module)]
            extern "C" {
                $(
                    $(#[doc = $doc])*
                    $(#[link_name = $link_name])?
                    pub fn $name($($arg: $ty),*) $(-> $ret)?;
                )*
            }
        )*
        #[cfg(not(target_arch = "wasm32"))]
        mod host_stubs {
            #![allow(clippy::missing_safety_doc, clippy::too_many_arguments, unused_variables)]
            $($(
                $(#[doc = $doc])*
                pub unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
                    panic!("troupe guests run only on wasm32 (build with --target wasm32-wasip1)")
                }
            )*)*
        }
        #[cfg(not(target_arch = "wasm32"))]
        pub use host_stubs::*;
    };
}

host_functions! {
    #[link(wasm_import_module = "troupe_process")]
    {
        /// The caller's pid.
        fn self_pid() -> i64;
        /// Copies the explanation of the caller's last error into `buf`
        /// (truncated to `buf_len`) and returns its full length.
        fn error_message(buf_ptr: i32, buf_len: i32) -> i32;
        /// Compiles a module and writes its `u64` handle at `out_module`.
        fn module_load(bytes_ptr: i32, bytes_len: i32, out_module: i32) -> i32;
        /// The handle of the caller's own module.
        fn module_self() -> i64;
        /// Creates a spawn configuration ("inherit everything") and returns its handle.
        fn config_new() -> i64;
        /// Frees a spawn configuration.
        fn config_drop(config: i64) -> i32;
        /// Sets the child's argv: NUL-terminated UTF-8 strings.
        fn config_set_args(config: i64, ptr: i32, len: i32) -> i32;
        /// Replaces the child's environment: NUL-terminated `KEY=VALUE` strings.
        fn config_set_envs(config: i64, ptr: i32, len: i32) -> i32;
        /// Narrows the child's preopened directories: NUL-terminated guest paths.
        fn config_preopens_only(config: i64, ptr: i32, len: i32) -> i32;
        /// Links the child to the parent before it runs.
        fn config_link(config: i64) -> i32;
        /// Caps the child's linear memory (bytes).
        fn config_set_max_memory(config: i64, bytes: i64) -> i32;
        /// Gives the child a fuel budget (VMs started with `--fuel` only).
        fn config_set_fuel(config: i64, units: i64) -> i32;
        /// Allows (non-zero) or forbids (0) the child to spawn.
        fn config_set_can_spawn(config: i64, allowed: i32) -> i32;
        /// Narrows the child's network permission: NUL-terminated
        /// `HOST[:PORT]` rules (an empty list: no network).
        fn config_set_net(config: i64, ptr: i32, len: i32) -> i32;
        /// Starts a new process running export `entry` of `module`.
        fn spawn(
            module: i64,
            config: i64,
            entry_ptr: i32,
            entry_len: i32,
            params_ptr: i32,
            params_count: i32,
            arg_ptr: i32,
            arg_len: i32,
            out_pid: i32,
        ) -> i32;
        /// Links the caller and `pid`.
        fn link(pid: i64) -> i32;
        /// Removes the link with `pid`.
        fn unlink(pid: i64) -> i32;
        /// Monitors `pid`; returns the monitor reference.
        fn monitor(pid: i64) -> i64;
        /// Stops a monitor and flushes its DOWN message.
        fn demonitor(reference: i64) -> i32;
        /// Sets exit trapping; returns the previous setting.
        fn trap_exit(enable: i32) -> i32;
        /// Sends the untrappable kill signal.
        fn kill(pid: i64) -> i32;
        /// Sends an exit signal with an encoded reason.
        fn send_exit(pid: i64, reason_ptr: i32, reason_len: i32) -> i32;
        /// Ends the caller with an encoded reason; does not return.
        fn exit(reason_ptr: i32, reason_len: i32);
        /// Discards the caller's stack and instance until a message arrives,
        /// then calls export `entry(params)` in a fresh instance with the
        /// caller's memory; returns only on error.
        fn hibernate(entry_ptr: i32, entry_len: i32, params_ptr: i32, params_count: i32)
            -> i32;
    }
    #[link(wasm_import_module = "troupe_message")]
    {
        /// Queues a copy of `data` with `tag` in `pid`'s mailbox.
        fn send(pid: i64, tag: i64, data_ptr: i32, data_len: i32) -> i32;
        /// Takes the oldest message whose tag is one of `tags` (all if
        /// `tags_count` is 0), waiting up to `timeout_ns` (negative: forever).
        fn receive(
            tags_ptr: i32,
            tags_count: i32,
            timeout_ns: i64,
            buf_ptr: i32,
            buf_cap: i32,
            info_ptr: i32,
        ) -> i32;
        /// Copies the held message (after `BUFFER_TOO_SMALL`) into `buf`.
        fn read(buf_ptr: i32, buf_len: i32) -> i32;
    }
    #[link(wasm_import_module = "troupe_registry")]
    {
        /// Registers `name` for `pid`.
        fn register(name_ptr: i32, name_len: i32, pid: i64) -> i32;
        /// Frees `name`.
        fn unregister(name_ptr: i32, name_len: i32) -> i32;
        /// Writes the pid registered under `name` at `out_pid`.
        fn whereis(name_ptr: i32, name_len: i32, out_pid: i32) -> i32;
        /// Sends to the process registered under `name`.
        #[link_name = "send"]
        fn send_named(name_ptr: i32, name_len: i32, tag: i64, data_ptr: i32, data_len: i32) -> i32;
    }
    #[link(wasm_import_module = "troupe_timer")]
    {
        /// Suspends the caller for `ns` nanoseconds.
        fn sleep(ns: i64);
        /// Sends a message after `delay_ns`; writes the timer reference.
        fn send_after(
            pid: i64,
            tag: i64,
            data_ptr: i32,
            data_len: i32,
            delay_ns: i64,
            out_ref: i32,
        ) -> i32;
        /// Cancels a timer: 1 if it had not fired, 0 otherwise.
        fn cancel_timer(reference: i64) -> i32;
    }
    #[link(wasm_import_module = "troupe_net")]
    {
        /// Binds a TCP listener to `addr` (`HOST:PORT`); writes its `u64`
        /// handle at `out_handle`.
        fn tcp_listen(addr_ptr: i32, addr_len: i32, out_handle: i32) -> i32;
        /// Waits up to `timeout_ns` (negative: forever) for a connection;
        /// writes the new stream's handle.
        fn tcp_accept(listener: i64, timeout_ns: i64, out_handle: i32) -> i32;
        /// Connects to `addr` (`HOST:PORT`) within `timeout_ns`; writes the
        /// stream's handle.
        fn tcp_connect(addr_ptr: i32, addr_len: i32, timeout_ns: i64, out_handle: i32) -> i32;
        /// Reads up to `buf_len` bytes; writes the count (`u32`, 0 at the end
        /// of the stream) at `out_n`.
        #[link_name = "read"]
        fn net_read(stream: i64, buf_ptr: i32, buf_len: i32, timeout_ns: i64, out_n: i32) -> i32;
        /// Writes all of `buf`; writes the count written (`u32`) at `out_n`.
        #[link_name = "write"]
        fn net_write(stream: i64, buf_ptr: i32, buf_len: i32, timeout_ns: i64, out_n: i32) -> i32;
        /// Shuts the reading (0), writing (1) or both (2) halves of a stream.
        fn shutdown(stream: i64, how: i32) -> i32;
        /// Closes any socket and frees its handle.
        fn close(handle: i64) -> i32;
        /// Writes the socket's local address (`IP:PORT`) and its length.
        fn local_addr(handle: i64, buf_ptr: i32, buf_len: i32, out_len: i32) -> i32;
        /// Writes the stream's peer address (`IP:PORT`) and its length.
        fn peer_addr(handle: i64, buf_ptr: i32, buf_len: i32, out_len: i32) -> i32;
        /// Binds a UDP socket to `addr`; writes its handle.
        fn udp_bind(addr_ptr: i32, addr_len: i32, out_handle: i32) -> i32;
        /// Sends one datagram to `addr`; writes the count sent.
        fn udp_send_to(
            socket: i64,
            buf_ptr: i32,
            buf_len: i32,
            addr_ptr: i32,
            addr_len: i32,
            timeout_ns: i64,
            out_n: i32,
        ) -> i32;
        /// Waits for one datagram; writes its length and its sender's address.
        fn udp_recv_from(
            socket: i64,
            buf_ptr: i32,
            buf_len: i32,
            timeout_ns: i64,
            out_n: i32,
            addr_ptr: i32,
            addr_cap: i32,
            out_addr_len: i32,
        ) -> i32;
        /// Resolves a host name to its IP addresses, each followed by `\n`.
        fn resolve(name_ptr: i32, name_len: i32, buf_ptr: i32, buf_len: i32, out_len: i32) -> i32;
        /// Marks a socket to move with the caller's next message.
        fn attach(handle: i64) -> i32;
        /// Writes the WASI descriptor (`u32`) of a socket the caller holds.
        fn descriptor(handle: i64, out_fd: i32) -> i32;
        /// Writes the handle (`u64`) of the socket behind a WASI descriptor.
        fn handle_of(fd: i32, out_handle: i32) -> i32;
    }
}

/// A pointer as the `i32` offset the host functions take. On wasm32 this is
/// exact; elsewhere the value is meaningless (the stubs panic before using it).
#[inline(always)]
pub fn ptr<T: ?Sized>(p: *const T) -> i32 {
    p as *const u8 as usize as i32
}

/// A mutable pointer as the `i32` offset the host functions take.
#[inline(always)]
pub fn ptr_mut<T: ?Sized>(p: *mut T) -> i32 {
    p as *mut u8 as usize as i32
}

/// A length as the `i32` the host functions take.
///
/// # Panics
/// If `len` does not fit (impossible on wasm32 for a real buffer).
#[inline(always)]
pub fn len(len: usize) -> i32 {
    i32::try_from(len).expect("length does not fit in an i32")
}

#[cfg(test)]
mod tests {
    /// The `#[link(wasm_import_module = ...)]` literals above must be the
    /// names that `troupe-abi` defines.
    #[test]
    fn import_module_names_match_abi() {
        let src = include_str!("sys.rs");
        for name in [
            troupe_abi::module::PROCESS,
            troupe_abi::module::MESSAGE,
            troupe_abi::module::REGISTRY,
            troupe_abi::module::TIMER,
            troupe_abi::module::NET,
        ] {
            let attr = format!("#[link(wasm_import_module = \"{name}\")]");
            assert_eq!(src.matches(&attr).count(), 1, "missing {attr}");
        }
    }

    /// A host function's signature: (import module, name) -> (parameter
    /// types, result type).
    type Signatures = std::collections::BTreeMap<(String, String), (Vec<String>, Option<String>)>;

    /// Parses `name(a: i32, b: i64) -> i32` (parameter names are ignored).
    fn signature(text: &str) -> (String, Vec<String>, Option<String>) {
        let open = text.find('(').expect("(");
        let close = text.rfind(')').expect(")");
        let name = text[..open].trim().to_string();
        let params = text[open + 1..close]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.split(':').nth(1).expect("name: type").trim().to_string())
            .collect();
        let ret = text[close + 1..]
            .trim()
            .strip_prefix("->")
            .map(|r| r.trim().trim_end_matches(';').trim().to_string());
        (name, params, ret)
    }

    /// The functions `host-api/SPEC.md` declares, from its `### \`f(..)\``
    /// headings under each `## Namespace \`module\``.
    fn spec_signatures() -> Signatures {
        let spec = include_str!("../../../host-api/SPEC.md");
        let mut out = Signatures::new();
        let mut module = None;
        for line in spec.lines() {
            if let Some(rest) = line.strip_prefix("## ") {
                module = rest
                    .strip_prefix("Namespace `")
                    .map(|m| m.trim_end_matches('`').to_string());
            } else if let (Some(m), Some(h)) = (&module, line.strip_prefix("### `")) {
                let (name, params, ret) = signature(h.trim_end_matches('`'));
                out.insert((m.clone(), name), (params, ret));
            }
        }
        out
    }

    /// The functions declared above, with their import module and import
    /// name (`#[link_name]` if given).
    fn sys_signatures() -> Signatures {
        let src = include_str!("sys.rs");
        let start = src.find("\nhost_functions! {").expect("the invocation");
        let body = &src[start..src[start..].find("\n}\n").unwrap() + start];
        let mut out = Signatures::new();
        let (mut module, mut link_name) = (String::new(), None);
        let mut decl: Option<String> = None;
        for line in body.lines().map(str::trim) {
            if let Some(d) = &mut decl {
                d.push_str(line);
            } else if let Some(m) = line.strip_prefix("#[link(wasm_import_module = \"") {
                module = m.trim_end_matches("\")]").to_string();
            } else if let Some(n) = line.strip_prefix("#[link_name = \"") {
                link_name = Some(n.trim_end_matches("\"]").to_string());
            } else if let Some(f) = line.strip_prefix("fn ") {
                decl = Some(f.to_string());
            }
            if decl.as_deref().is_some_and(|d| d.ends_with(';')) {
                let (name, params, ret) = signature(&decl.take().unwrap());
                let name = link_name.take().unwrap_or(name);
                out.insert((module.clone(), name), (params, ret));
            }
        }
        out
    }

    /// Every function of the SPEC is declared here with the same import
    /// module, name, parameter types and result, and nothing else is.
    #[test]
    fn imports_match_the_spec() {
        let spec = spec_signatures();
        let sys = sys_signatures();
        assert!(spec.len() > 40, "the SPEC parser found only {spec:?}");
        for (key, sig) in &spec {
            assert_eq!(sys.get(key), Some(sig), "{key:?} differs from the SPEC");
        }
        for key in sys.keys() {
            assert!(spec.contains_key(key), "{key:?} is not in the SPEC");
        }
        assert!(spec.contains_key(&("troupe_net".into(), "udp_recv_from".into())));
        assert!(spec.contains_key(&("troupe_process".into(), "config_set_net".into())));
    }
}
