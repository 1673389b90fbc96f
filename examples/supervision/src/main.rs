//! A small supervision tree that heals itself.
//!
//! ```text
//! app (one_for_one, at most 10 restarts in 10 s)
//! ├── vault     a server keeping a copy of the store's data
//! ├── kv        the key-value store (a server named "kv"); it crashes on a
//! │             bad request, and reloads its data from the vault on start
//! └── sessions  (one_for_one, at most 1 restart in 10 s)
//!     └── greeter   a worker that crashes when told to
//! ```
//!
//! The root plays a client: it stores values, sends bad requests that crash
//! the store, and crashes the greeter twice so that its supervisor gives up
//! and the app restarts the whole `sessions` subtree. After each crash it
//! prints what the supervisors did, with their restart counts.
//!
//! `troupe run supervision.wasm`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe::{
    call_named, monitor, receive_down_from, whereis, CallError, CallResult, Caller, ChildSpec,
    ExitReason, Mailbox, Process, Server, Strategy, Supervisor, SupervisorRef, SupervisorSpec,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// The vault: keeps what the store saved, across the store's crashes.
struct Vault(BTreeMap<String, String>);

#[derive(Serialize, Deserialize)]
enum VaultCall {
    Load,
}

#[derive(Serialize, Deserialize)]
enum VaultCast {
    Save(String, String),
}

impl Server for Vault {
    type Arg = ();
    type Call = VaultCall;
    type Reply = BTreeMap<String, String>;
    type Cast = VaultCast;
    type Info = ();

    fn init((): ()) -> Result<Self, ExitReason> {
        Ok(Vault(BTreeMap::new()))
    }

    fn handle_call(&mut self, _: VaultCall, _: Caller<Self::Reply>) -> CallResult<Self::Reply> {
        CallResult::Reply(self.0.clone())
    }

    fn handle_cast(&mut self, VaultCast::Save(key, value): VaultCast) -> troupe::Next {
        self.0.insert(key, value);
        troupe::Next::Continue
    }
}

/// The key-value store.
struct Kv(BTreeMap<String, String>);

#[derive(Debug, Serialize, Deserialize)]
enum KvCall {
    Put(String, String),
    Get(String),
    /// The sum of the values of these keys, which must be numbers: a value
    /// that is not is a bad request, and the store crashes on it.
    Sum(Vec<String>),
}

#[derive(Debug, Serialize, Deserialize)]
enum KvReply {
    Done,
    Value(Option<String>),
    Sum(i64),
}

impl Server for Kv {
    type Arg = ();
    type Call = KvCall;
    type Reply = KvReply;
    type Cast = ();
    type Info = ();

    fn init((): ()) -> Result<Self, ExitReason> {
        let data = call_named::<Vault>("vault", VaultCall::Load, TIMEOUT)
            .map_err(|e| ExitReason::Custom(format!("no vault: {e}").into_bytes()))?;
        println!(
            "kv: started {}, {} keys loaded from the vault",
            troupe::self_pid(),
            data.len()
        );
        Ok(Kv(data))
    }

    fn handle_call(&mut self, request: KvCall, _: Caller<KvReply>) -> CallResult<KvReply> {
        CallResult::Reply(match request {
            KvCall::Put(key, value) => {
                if let Some(vault) = troupe::ServerRef::<Vault>::whereis("vault") {
                    let _ = vault.cast(VaultCast::Save(key.clone(), value.clone()));
                }
                self.0.insert(key, value);
                KvReply::Done
            }
            KvCall::Get(key) => KvReply::Value(self.0.get(&key).cloned()),
            KvCall::Sum(keys) => KvReply::Sum(
                keys.iter()
                    .map(|k| {
                        let v = self.0.get(k).map(String::as_str).unwrap_or("0");
                        // A bad request crashes the worker: "let it crash".
                        v.parse::<i64>().unwrap_or_else(|_| {
                            panic!("bad request: the value of {k:?} is {v:?}, not a number")
                        })
                    })
                    .sum(),
            ),
        })
    }
}

/// The greeter: greets, or crashes when asked to.
fn greeter(_: (), mailbox: Mailbox<String>) {
    println!("greeter: started {}", troupe::self_pid());
    loop {
        let name = mailbox.receive();
        if name == "crash" {
            panic!("the greeter was told to crash");
        }
        println!("greeter: hello, {name}");
    }
}

fn kv(request: KvCall) -> Result<KvReply, CallError> {
    call_named::<Kv>("kv", request, TIMEOUT)
}

/// The restart count of child `id` of `sup`.
fn restarts(sup: &SupervisorRef, id: &str) -> u32 {
    sup.which_children()
        .unwrap()
        .iter()
        .find(|c| c.id == id)
        .map_or(0, |c| c.restarts)
}

fn print_tree(app: &SupervisorRef) {
    println!("tree:");
    for c in app.which_children().unwrap() {
        let pid = c.pid.map_or("-".to_string(), |p| p.to_string());
        println!("  {:<9} {:<6} restarts {}", c.id, pid, c.restarts);
        if c.kind == troupe::ChildKind::Supervisor {
            if let Some(pid) = c.pid {
                let sub = SupervisorRef::from_pid(pid);
                for g in sub.which_children().unwrap() {
                    let pid = g.pid.map_or("-".to_string(), |p| p.to_string());
                    println!("    {:<7} {:<6} restarts {}", g.id, pid, g.restarts);
                }
            }
        }
    }
}

fn main() {
    let sessions = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(1, Duration::from_secs(10))
        .child(ChildSpec::worker("greeter", (), greeter).name("greeter"));
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(10))
        .child(ChildSpec::server::<Vault>("vault", ()).name("vault"))
        .child(ChildSpec::server::<Kv>("kv", ()).name("kv"))
        .child(ChildSpec::supervisor("sessions", sessions));
    let app = Supervisor::start_link(spec).expect("the tree starts");
    print_tree(&app);

    for (k, v) in [("apples", "3"), ("pears", "4"), ("note", "buy more")] {
        kv(KvCall::Put(k.into(), v.into())).unwrap();
        println!("client: put {k} = {v:?}");
    }
    let sum = kv(KvCall::Sum(vec!["apples".into(), "pears".into()])).unwrap();
    println!("client: sum of apples and pears: {sum:?}");

    // Bad requests: each crashes the store, which its supervisor restarts.
    let crashes = 3;
    for n in 1..=crashes {
        let t = Instant::now();
        match kv(KvCall::Sum(vec!["apples".into(), "note".into()])) {
            Err(CallError::Exit(reason)) => println!("client: the store crashed: {reason}"),
            other => panic!("a bad request should crash the store: {other:?}"),
        }
        // The supervisor got the EXIT before this call: it has restarted kv.
        let count = restarts(&app, "kv");
        let value = kv(KvCall::Get("apples".into())).unwrap();
        println!(
            "kv: the worker crashed on a bad request and was restarted (restarts: {count}); \
             the store answered again {} us after the crash",
            t.elapsed().as_micros()
        );
        assert_eq!(count, n);
        if let KvReply::Value(Some(v)) = &value {
            if v == "3" {
                println!("kv: the data survived the crash (apples = {v})");
            }
        }
    }

    // Crash the greeter twice within 10 s: its supervisor (intensity 1)
    // gives up, and the app restarts the whole sessions subtree.
    let greet = |name: &str| {
        let p: Process<String> = Process::from_pid(whereis("greeter").expect("greeter runs"));
        p.send(name.to_string()).unwrap();
    };
    greet("world");
    let sessions_before = app
        .which_children()
        .unwrap()
        .into_iter()
        .find(|c| c.id == "sessions")
        .and_then(|c| c.pid)
        .unwrap();
    let watch = monitor(sessions_before);
    for _ in 0..2 {
        let old = whereis("greeter").unwrap();
        let m = monitor(old);
        greet("crash");
        let reason = receive_down_from(m, Some(TIMEOUT)).unwrap();
        println!("client: the greeter crashed: {reason}");
        // Wait for the replacement (a new process under the same name).
        let t = Instant::now();
        while whereis("greeter").is_none_or(|p| p == old) && t.elapsed() < TIMEOUT {
            troupe::sleep(Duration::from_millis(1));
        }
    }
    let reason = receive_down_from(watch, Some(TIMEOUT)).unwrap();
    println!(
        "sessions: too many restarts, the subtree's supervisor ended ({reason}); \
         the app restarted it (restarts: {})",
        restarts(&app, "sessions")
    );
    greet("again");
    troupe::sleep(Duration::from_millis(20)); // let the greeter print

    print_tree(&app);
    let total = app.count_children().unwrap().restarts;
    let ok = matches!(kv(KvCall::Get("pears".into())), Ok(KvReply::Value(Some(v))) if v == "4");
    if ok {
        println!("the store is healthy after {crashes} crashes ({total} restarts by the app)");
    }
}
