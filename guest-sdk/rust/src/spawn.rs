//! Spawning processes: functions of this module, and `_start` or any export
//! of another module, with spawn configurations.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use troupe_abi::{err, tag, val};

use crate::error::{last_error_message, unexpected};
use crate::host::{self, ConfigList};
use crate::message::{encode, receive_decoded};
use crate::{LoadError, Mailbox, Pid, Process, ReceiveError, SpawnError};

/// A compiled WebAssembly module the VM can spawn processes of.
///
/// Handles are VM-wide: a `Module` can be sent in a message and spawned by
/// the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Module {
    handle: u64,
}

impl Module {
    /// Compiles `bytes` (a `.wasm` module). The VM caches modules by the
    /// SHA-256 of their bytes, so loading the same bytes again is immediate.
    pub fn load(bytes: &[u8]) -> Result<Module, LoadError> {
        let mut handle = 0u64;
        let rc = host::module_load(bytes, &mut handle);
        match rc {
            err::OK => Ok(Module { handle }),
            code => Err(LoadError::Module {
                code,
                message: last_error_message(),
            }),
        }
    }

    /// Reads `path` through WASI (so only files this process may read can be
    /// loaded) and compiles it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Module, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|error| LoadError::Io {
            path: path.to_owned(),
            error,
        })?;
        Module::load(&bytes)
    }

    /// The calling process's own module.
    pub fn this() -> Module {
        Module {
            handle: host::module_self(),
        }
    }

    /// The VM's handle of the module.
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// A module from a handle received some other way (the handle is checked
    /// by the VM when spawning).
    pub fn from_handle(handle: u64) -> Module {
        Module { handle }
    }

    /// Starts a process running the module's `_start` (its `main`),
    /// configured by `options`, with `arg` (bincode) as its spawn argument,
    /// which the child can read with [`spawn_arg`].
    pub fn spawn_start(
        &self,
        options: &SpawnOptions,
        arg: &impl Serialize,
    ) -> Result<Pid, SpawnError> {
        self.spawn_export(val::START, &[], options, &encode(arg))
    }

    /// Starts a process running export `export` with `params` as its
    /// parameters (each parameter of the export must be `i32`, which gets
    /// the value truncated, or `i64`; at most
    /// [`MAX_SPAWN_PARAMS`](troupe_abi::val::MAX_SPAWN_PARAMS)), configured
    /// by `options`, with the raw bytes `arg` as its spawn argument.
    pub fn spawn_export(
        &self,
        export: &str,
        params: &[i64],
        options: &SpawnOptions,
        arg: &[u8],
    ) -> Result<Pid, SpawnError> {
        let config = Config::new(options)?;
        spawn_raw(self.handle, config.0, export, params, arg)
    }
}

/// How a spawned process is set up. Each field left `None` is inherited from
/// the parent (its args, its environment, its preopened directories, its
/// network permission).
///
/// ```ignore
/// let options = SpawnOptions::new()
///     .args(["child", "--fast"])
///     .env("LEVEL", "3")
///     .preopens(["/data"]);
/// let pid = Module::from_file("/data/child.wasm")?.spawn_start(&options, &42u32)?;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpawnOptions {
    /// The child's argv, including `argv[0]`.
    pub args: Option<Vec<String>>,
    /// The child's whole environment (`(KEY, VALUE)` pairs; an empty list
    /// clears it).
    pub envs: Option<Vec<(String, String)>>,
    /// The guest paths of the preopened directories the child keeps; each
    /// must be one the parent holds. An empty list gives it no directory.
    pub preopens: Option<Vec<String>>,
    /// Link the child to the parent before it runs (atomic spawn-and-link).
    pub link: bool,
    /// The child's maximum linear memory in bytes (at most the parent's).
    pub max_memory: Option<u64>,
    /// The child's fuel budget (VMs started with `--fuel` only).
    pub fuel: Option<u64>,
    /// Whether the child may spawn processes (never if the parent may not).
    pub can_spawn: Option<bool>,
    /// The child's network permission: `HOST[:PORT]` rules, each allowed by
    /// the parent's own permission (`None`: the parent's; an empty list: no
    /// network).
    pub net: Option<Vec<String>>,
}

impl SpawnOptions {
    /// Inherit everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the child's argv (including `argv[0]`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the child's whole environment.
    pub fn envs<I, K, V>(mut self, envs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.envs = Some(
            envs.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Adds one variable to the child's environment. The environment is
    /// then no longer inherited: it holds exactly the variables given.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs
            .get_or_insert_with(Vec::new)
            .push((key.into(), value.into()));
        self
    }

    /// Keeps only these preopened directories (guest paths the parent holds).
    pub fn preopens<I, S>(mut self, dirs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.preopens = Some(dirs.into_iter().map(Into::into).collect());
        self
    }

    /// Links the child to this process before it runs.
    pub fn link(mut self) -> Self {
        self.link = true;
        self
    }

    /// Caps the child's linear memory: growing past `bytes` ends it with
    /// [`ExitReason::Limit`](crate::ExitReason::Limit)`(Memory)`.
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// Gives the child a fuel budget: running out ends it with
    /// [`ExitReason::Limit`](crate::ExitReason::Limit)`(Fuel)`. Only in a VM
    /// started with `troupe run --fuel N` (otherwise the spawn fails).
    pub fn fuel(mut self, units: u64) -> Self {
        self.fuel = Some(units);
        self
    }

    /// Allows or forbids the child to spawn.
    pub fn can_spawn(mut self, allowed: bool) -> Self {
        self.can_spawn = Some(allowed);
        self
    }

    /// Narrows the child's network permission to these rules, written as
    /// `troupe run --allow-net=` takes them: `HOST[:PORT]`, where HOST is an
    /// IP address (IPv6 in brackets), a host name or `*`, and no port means
    /// any port. An empty list gives the child no network (see also
    /// [`no_net`](Self::no_net)).
    ///
    /// Each rule must be allowed by this process's own permission (a rule
    /// with the same host or `*`, and the same port or none): otherwise the
    /// spawn fails with [`PERMISSION_DENIED`](troupe_abi::err::PERMISSION_DENIED)
    /// naming the rule (a malformed rule:
    /// [`INVALID_ARGUMENT`](troupe_abi::err::INVALID_ARGUMENT)). A child
    /// never gets more network than its parent.
    ///
    /// ```ignore
    /// // The child may only connect to (or listen on) 127.0.0.1:5432.
    /// SpawnOptions::new().net(["127.0.0.1:5432"]).spawn(config, db_client)?;
    /// ```
    pub fn net<I, S>(mut self, rules: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.net = Some(rules.into_iter().map(Into::into).collect());
        self
    }

    /// The child gets no network at all (`net` with an empty list).
    pub fn no_net(mut self) -> Self {
        self.net = Some(Vec::new());
        self
    }

    /// Spawns `f(arg, mailbox)` as a new process of this module, configured
    /// by these options. See [`spawn`].
    pub fn spawn<A, M>(&self, arg: A, f: fn(A, Mailbox<M>)) -> Result<Process<M>, SpawnError>
    where
        A: Serialize + DeserializeOwned,
        M: DeserializeOwned,
    {
        let pid = spawn_function(self, entry_params(f), &encode(&arg))?;
        Ok(Process::from_pid(pid))
    }
}

/// The two parameters of `__troupe_entry` that run `f` in a child: the table
/// indices of its trampoline and of `f` (valid in every instance of this
/// module, and only there).
pub(crate) fn entry_params<A, M>(f: fn(A, Mailbox<M>)) -> [i64; 2]
where
    A: DeserializeOwned,
    M: DeserializeOwned,
{
    let entry: fn(usize) = trampoline::<A, M>;
    [entry as usize as i64, f as usize as i64]
}

/// Spawns a function of this module from its [`entry_params`] and its
/// encoded argument.
pub(crate) fn spawn_function(
    options: &SpawnOptions,
    params: [i64; 2],
    arg: &[u8],
) -> Result<Pid, SpawnError> {
    keep_entry();
    let config = Config::new(options)?;
    spawn_raw(val::MODULE_SELF, config.0, val::SDK_ENTRY, &params, arg)
}

/// Spawns `f(arg, mailbox)` as a new process: a fresh instance of this
/// module with its own memory, running concurrently with the caller, which
/// gets the handle of the child's mailbox.
///
/// A panic in the child ends it with
/// [`ExitReason::Trap`](crate::ExitReason::Trap)`("panicked at <file:line>:
/// <message>")`, the reason its links and monitors see (after the usual
/// panic message on stderr).
///
/// `arg` is copied to the child as its spawn argument (bincode), and `f` is
/// a plain function (or a closure that captures nothing): the child shares
/// no memory with the parent, its statics start from their initial values,
/// and `main` does not run in it. The child inherits the parent's args,
/// environment and preopened directories (see [`SpawnOptions::spawn`] to
/// change them), and its stdout and stderr.
///
/// ```ignore
/// fn counter(start: u64, mailbox: Mailbox<u64>) {
///     let mut total = start;
///     loop { total += mailbox.receive(); println!("total {total}"); }
/// }
/// let c = spawn(10, counter)?;
/// c.send(5)?;
/// ```
pub fn spawn<A, M>(arg: A, f: fn(A, Mailbox<M>)) -> Result<Process<M>, SpawnError>
where
    A: Serialize + DeserializeOwned,
    M: DeserializeOwned,
{
    SpawnOptions::new().spawn(arg, f)
}

/// [`spawn`], linked: the child is linked to the caller before it runs, so
/// there is no moment when it could end unnoticed.
pub fn spawn_link<A, M>(arg: A, f: fn(A, Mailbox<M>)) -> Result<Process<M>, SpawnError>
where
    A: Serialize + DeserializeOwned,
    M: DeserializeOwned,
{
    SpawnOptions::new().link().spawn(arg, f)
}

/// Receives and decodes the spawn argument of this process (the first
/// message of every spawned process, tag
/// [`SPAWN_ARG`](troupe_abi::tag::SPAWN_ARG)), for a process started by
/// [`Module::spawn_start`]. Waits if it is not there (it always is, unless it
/// was already taken, or this is the root process, which has none).
pub fn spawn_arg<A: DeserializeOwned>() -> Result<A, ReceiveError> {
    receive_decoded(tag::SPAWN_ARG, None).map(|(_, arg)| arg)
}

/// A spawn configuration handle, dropped with this value. Handle 0 means
/// "inherit everything" and is not a configuration to drop.
struct Config(i64);

impl Config {
    fn new(options: &SpawnOptions) -> Result<Config, SpawnError> {
        if *options == SpawnOptions::default() {
            return Ok(Config(val::CONFIG_INHERIT as i64));
        }
        // Encode first so that a bad list creates no configuration.
        let args = options.args.as_deref().map(nul_list).transpose()?;
        let envs = options.envs.as_deref().map(env_list).transpose()?;
        let preopens = options.preopens.as_deref().map(nul_list).transpose()?;
        let net = options.net.as_deref().map(nul_list).transpose()?;
        let config = match host::config_new() {
            // The process holds `troupe_abi::limit::CONFIGS` of them.
            0 => return Err(SpawnError::from_host(err::RESOURCE_LIMIT)),
            handle => Config(handle),
        };
        let check = |rc: i32| match rc {
            err::OK => Ok(()),
            code => Err(SpawnError::from_host(code)),
        };
        if let Some(list) = &args {
            check(host::config_set_list(config.0, ConfigList::Args, list))?;
        }
        if let Some(list) = &envs {
            check(host::config_set_list(config.0, ConfigList::Envs, list))?;
        }
        if let Some(list) = &preopens {
            check(host::config_set_list(
                config.0,
                ConfigList::PreopensOnly,
                list,
            ))?;
        }
        if let Some(list) = &net {
            check(host::config_set_list(config.0, ConfigList::Net, list))?;
        }
        if options.link {
            check(host::config_link(config.0))?;
        }
        if let Some(bytes) = options.max_memory {
            let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
            check(host::config_set_max_memory(config.0, bytes))?;
        }
        if let Some(units) = options.fuel {
            let units = i64::try_from(units).unwrap_or(i64::MAX);
            check(host::config_set_fuel(config.0, units))?;
        }
        if let Some(allowed) = options.can_spawn {
            check(host::config_set_can_spawn(config.0, allowed))?;
        }
        Ok(config)
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        if self.0 != val::CONFIG_INHERIT as i64 {
            let rc = host::config_drop(self.0);
            if rc != err::OK {
                unexpected("config_drop", rc);
            }
        }
    }
}

/// Encodes strings as the host's lists: each UTF-8 string followed by a NUL.
fn nul_list<S: AsRef<str>>(items: &[S]) -> Result<Vec<u8>, SpawnError> {
    let mut out = Vec::new();
    for item in items {
        let item = item.as_ref();
        if item.contains('\0') {
            return Err(SpawnError::invalid(format!("{item:?} contains a NUL byte")));
        }
        out.extend_from_slice(item.as_bytes());
        out.push(0);
    }
    Ok(out)
}

/// Encodes an environment as the host's list of `KEY=VALUE` strings.
fn env_list(envs: &[(String, String)]) -> Result<Vec<u8>, SpawnError> {
    let mut pairs = Vec::with_capacity(envs.len());
    for (key, value) in envs {
        if key.is_empty() || key.contains('=') {
            return Err(SpawnError::invalid(format!(
                "environment variable name {key:?} is empty or contains '='"
            )));
        }
        pairs.push(format!("{key}={value}"));
    }
    nul_list(&pairs)
}

/// The `spawn` host call.
fn spawn_raw(
    module: u64,
    config: i64,
    entry: &str,
    params: &[i64],
    arg: &[u8],
) -> Result<Pid, SpawnError> {
    let mut pid = 0u64;
    let rc = host::spawn(module, config, entry, params, arg, &mut pid);
    match rc {
        err::OK => Ok(Pid(pid)),
        code => Err(SpawnError::from_host(code)),
    }
}

/// Runs in the child: takes the spawn argument and calls the user's function.
/// `f` is the table index of a `fn(A, Mailbox<M>)`, produced by
/// [`SpawnOptions::spawn`] for exactly these `A` and `M`.
fn trampoline<A: DeserializeOwned, M: DeserializeOwned>(f: usize) {
    crate::signal::exit_on_panic();
    let arg: A = match receive_decoded(tag::SPAWN_ARG, None) {
        Ok((_, arg)) => arg,
        Err(e) => panic!(
            "troupe: the spawn argument of process {} is not a {}: {e}",
            crate::self_pid(),
            std::any::type_name::<A>()
        ),
    };
    // SAFETY: `f` was made from a `fn(A, Mailbox<M>)` by the parent, an
    // instance of the same module, whose function table is the same. A bogus
    // value from a foreign spawner fails wasm's call_indirect signature check
    // and traps this process only.
    let f = unsafe { std::mem::transmute::<usize, fn(A, Mailbox<M>)>(f) };
    f(arg, Mailbox::this())
}

/// The export `spawn` starts (its name is [`troupe_abi::val::SDK_ENTRY`]):
/// `a` is the table index of a `trampoline::<A, M>`, `b` that of the user's
/// function. Not for direct use.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[export_name = "__troupe_entry"]
pub extern "C" fn __troupe_entry(a: i32, b: i32) {
    // SAFETY: see `trampoline`.
    let trampoline = unsafe { std::mem::transmute::<usize, fn(usize)>(a as u32 as usize) };
    trampoline(b as u32 as usize);
    // `main`'s return would flush stdout; this entry bypasses it.
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// Waits for the next message *hibernated*: without a call stack and without
/// an instance, as Erlang's `erlang:hibernate/3`. When a message arrives
/// (any message: data, a reply, an `EXIT` or `DOWN` signal), `f(state,
/// mailbox)` runs, as a process function does after spawn; when it returns,
/// the process ends normally. A message already waiting wakes it at once.
///
/// While hibernated, a process holds only its saved memory (the pages that
/// differ from the module's initial image, compressed: typically 1-3 KiB),
/// not its linear memory slot, fiber stack and instance (about 37 KB
/// resident): a VM can keep far more hibernated processes than
/// `--max-processes` allows live ones. Waking costs about a spawn (a fresh
/// instance gets the memory back), so hibernate processes that wait long,
/// not ones that get a message every few microseconds.
///
/// The call stack is discarded without unwinding, as by
/// [`std::process::exit`]: values owned by the callers of `hibernate` are
/// never dropped (their heap memory leaks), so call it at the end of a
/// process function, with all the state in `state`, and keep nothing that
/// points into those frames (such as a future pinned on the stack and
/// registered with an executor). The heap, statics and this crate's message
/// stash are kept.
///
/// # Panics
///
/// If the VM cannot hibernate this module (it keeps state the VM cannot
/// restore, such as a second mutable global; Rust `wasm32-wasip1` programs
/// can); the panic message says why.
///
/// ```ignore
/// fn session(count: u64, mailbox: Mailbox<u64>) {
///     let count = count + mailbox.receive();
///     hibernate(count, session) // wait for the next one without an instance
/// }
/// ```
pub fn hibernate<S: 'static, M: DeserializeOwned>(state: S, f: fn(S, Mailbox<M>)) -> ! {
    if !crate::message::stash_is_empty() {
        // A message is already here (in the stash, which the VM does not
        // see): hibernating would not wake.
        f(state, Mailbox::this());
        crate::exit(crate::ExitReason::Normal);
    }
    keep_entry();
    let boxed = Box::into_raw(Box::new((f, state)));
    let wake: fn(usize) = wake::<S, M>;
    let params = [wake as usize as i64, boxed as usize as i64];
    // Returns only on error. The state is in the heap, handed over by
    // address: nothing refers to the frames the call discards.
    let rc = host::hibernate(val::SDK_ENTRY, &params);
    // SAFETY: `boxed` came from `Box::into_raw` above and, the call having
    // failed, was not handed over: this is its only owner.
    drop(unsafe { Box::from_raw(boxed) });
    panic!(
        "troupe: process {} cannot hibernate ({}): {}",
        crate::self_pid(),
        err::name(rc),
        last_error_message()
    )
}

/// Runs in a woken process: `p` is the `(f, state)` boxed by [`hibernate`]
/// in the same memory, which the VM has restored. The panic hook set at
/// spawn is in that memory too.
fn wake<S, M: DeserializeOwned>(p: usize) {
    // SAFETY: `p` came from `Box::into_raw` of exactly this type, in
    // `hibernate`, and is taken once: the VM calls the entry once per wake.
    let (f, state) = *unsafe { Box::from_raw(p as *mut (fn(S, Mailbox<M>), S)) };
    f(state, Mailbox::this())
}

/// Makes sure the entry is linked into every program that spawns.
#[inline(always)]
fn keep_entry() {
    #[cfg(target_arch = "wasm32")]
    std::hint::black_box(__troupe_entry as extern "C" fn(i32, i32));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_nul_terminated_strings() {
        assert_eq!(nul_list(&["prog", "a b", ""]).unwrap(), b"prog\0a b\0\0");
        assert_eq!(nul_list::<&str>(&[]).unwrap(), b"");
        assert_eq!(nul_list(&["é"]).unwrap(), "é\0".as_bytes());
        let e = nul_list(&["a\0b"]).unwrap_err();
        assert_eq!(e.code, err::INVALID_ARGUMENT);
    }

    #[test]
    fn envs_are_key_equals_value() {
        let envs = vec![
            ("A".to_string(), "1".to_string()),
            ("B".into(), "x=y".into()),
        ];
        assert_eq!(env_list(&envs).unwrap(), b"A=1\0B=x=y\0");
        assert_eq!(env_list(&[]).unwrap(), b"");
        for bad in ["", "K=V"] {
            let e = env_list(&[(bad.to_string(), "v".to_string())]).unwrap_err();
            assert_eq!(e.code, err::INVALID_ARGUMENT);
        }
    }

    #[test]
    fn builder_fills_options() {
        let o = SpawnOptions::new()
            .args(["p", "1"])
            .env("K", "V")
            .preopens(["/data"])
            .net(["127.0.0.1:80", "*"]);
        assert_eq!(o.args, Some(vec!["p".to_string(), "1".to_string()]));
        assert_eq!(o.envs, Some(vec![("K".to_string(), "V".to_string())]));
        assert_eq!(o.preopens, Some(vec!["/data".to_string()]));
        assert_eq!(
            o.net,
            Some(vec!["127.0.0.1:80".to_string(), "*".to_string()])
        );
        assert_eq!(SpawnOptions::new().no_net().net, Some(vec![]));
        // Inheriting everything needs no configuration (and no host call).
        assert_eq!(Config::new(&SpawnOptions::new()).unwrap().0, 0);
    }

    #[test]
    fn entry_export_name_matches_abi() {
        let attr = format!("#[export_name = \"{}\"]", val::SDK_ENTRY);
        assert_eq!(include_str!("spawn.rs").matches(&attr).count(), 1);
    }
}
