//! The Rust half of the `mixed` example: a leader or a follower that
//! exchanges typed messages with the other half, written in Go
//! (`examples/mixed/main.go`). The two programs are the same protocol in two
//! languages, so either can lead:
//!
//! - `troupe run --dir DIR::/modules mixed-rust.wasm /modules/mixed.wasm`:
//!   this Rust root loads the Go module and spawns it as its follower;
//! - `troupe run --dir DIR::/modules mixed.wasm /modules/mixed-rust.wasm`:
//!   the Go root spawns this program, which runs as the follower
//!   (argument `--follow`).

use std::process::exit;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe::{self_pid, spawn_arg, Mailbox, Module, Pid, Process, Reply, SpawnOptions};

const LANG: &str = "rust";

/// The follower's spawn argument.
#[derive(Serialize, Deserialize, Debug)]
struct Hello {
    lang: String,
    leader: Pid,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Item {
    sku: String,
    qty: u32,
    price: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    customer: String,
    items: Vec<Item>,
    note: Option<String>,
    express: bool,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Quote {
    order_id: u64,
    total: f64,
    lines: u32,
    by: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct Report {
    lang: String,
    echoed: String,
}

/// What both sides' mailboxes take.
#[derive(Serialize, Deserialize, Debug)]
enum Request {
    /// Price an order (leader -> follower).
    Price(Order, Reply<Quote>),
    /// Echo a text back (follower -> leader).
    Echo(String, Reply<String>),
    /// The follower is done (follower -> leader).
    Done(Report),
}

fn order() -> Order {
    Order {
        id: 7,
        customer: "Zoë".into(),
        items: vec![
            Item {
                sku: "tea".into(),
                qty: 2,
                price: 3.25,
            },
            Item {
                sku: "cup".into(),
                qty: 1,
                price: 9.5,
            },
        ],
        note: Some("fragile ✓".into()),
        express: true,
    }
}

fn quote(order: &Order) -> Quote {
    Quote {
        order_id: order.id,
        total: order.items.iter().map(|i| f64::from(i.qty) * i.price).sum(),
        lines: order.items.len() as u32,
        by: LANG.into(),
    }
}

fn fail(what: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("mixed ({LANG}): {what}: {error}");
    exit(1)
}

fn follower() {
    let hello: Hello = spawn_arg().unwrap_or_else(|e| fail("spawn argument", e));
    println!(
        "follower ({LANG}) {}: hello from the {} leader {}",
        self_pid(),
        hello.lang,
        hello.leader
    );
    let leader = Process::<Request>::from_pid(hello.leader);
    let mailbox = Mailbox::<Request>::this();
    match mailbox
        .receive_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| fail("receive", e))
    {
        Request::Price(order, reply) => {
            println!(
                "follower ({LANG}): pricing order {} for {} ({} items, note {:?}, express {})",
                order.id,
                order.customer,
                order.items.len(),
                order.note,
                order.express
            );
            reply
                .send(quote(&order))
                .unwrap_or_else(|e| fail("reply", e));
        }
        other => fail("unexpected message", format!("{other:?}")),
    }
    let text = format!("hi from {LANG} {}", self_pid());
    let echoed: String = leader
        .request_timeout(|r| Request::Echo(text, r), Duration::from_secs(10))
        .unwrap_or_else(|e| fail("echo request", e));
    println!("follower ({LANG}): the leader echoed {echoed:?}");
    leader
        .send(Request::Done(Report {
            lang: LANG.into(),
            echoed,
        }))
        .unwrap_or_else(|e| fail("send", e));
}

fn leader(path: &str) {
    let module = Module::from_file(path).unwrap_or_else(|e| fail("load", e));
    let options = SpawnOptions::new().args(["mixed", "--follow"]);
    let hello = Hello {
        lang: LANG.into(),
        leader: self_pid(),
    };
    let pid = module
        .spawn_start(&options, &hello)
        .unwrap_or_else(|e| fail("spawn", e));
    println!("leader ({LANG}) {}: spawned {path} as {pid}", self_pid());
    let follower = Process::<Request>::from_pid(pid);
    let order = order();
    let quote: Quote = follower
        .request_timeout(
            |r| Request::Price(order.clone(), r),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| fail("price request", e));
    println!(
        "leader ({LANG}): quote for order {} from the {} follower: {} lines, total {:.2}",
        quote.order_id, quote.by, quote.lines, quote.total
    );
    let mut expected = self::quote(&order);
    expected.by = quote.by.clone();
    if quote != expected {
        fail("quote", format!("got {quote:?}, expected {expected:?}"));
    }

    let mailbox = Mailbox::<Request>::this();
    let timeout = Duration::from_secs(10);
    match mailbox
        .receive_timeout(timeout)
        .unwrap_or_else(|e| fail("receive", e))
    {
        Request::Echo(text, reply) => {
            println!("leader ({LANG}): echoing {text:?}");
            reply
                .send(format!("{text} / echoed by {LANG}"))
                .unwrap_or_else(|e| fail("reply", e));
        }
        other => fail("unexpected message", format!("{other:?}")),
    }
    let follower_lang = match mailbox
        .receive_timeout(timeout)
        .unwrap_or_else(|e| fail("receive", e))
    {
        Request::Done(report) => {
            println!(
                "leader ({LANG}): the {} follower is done, it got {:?}",
                report.lang, report.echoed
            );
            if !report.echoed.ends_with(&format!("/ echoed by {LANG}")) {
                fail("report", format!("{report:?}"));
            }
            report.lang
        }
        other => fail("unexpected message", format!("{other:?}")),
    };
    println!("mixed: OK ({LANG} leader, {follower_lang} follower)");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--follow") {
        follower();
    } else if let Some(path) = args.get(1) {
        leader(path);
    } else {
        eprintln!(
            "usage: mixed-rust MODULE.wasm   (the follower module, e.g. /modules/mixed.wasm)"
        );
        exit(2);
    }
}
