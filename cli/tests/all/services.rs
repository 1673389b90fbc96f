//! Real services in Troupe processes: Go's `net/http` serving many clients
//! from one process (the Go SDK's `httpcheck` guest), Go's database
//! drivers against real Postgres and Redis (`examples/go-db`), and the
//! orders demo (`examples/orders`) behind nginx with Postgres, stopped and
//! restarted under it. Driven from outside the VM with plain HTTP/1.1 over
//! `std::net`; the servers are Debian's, started by the tests on loopback
//! (`troupe_test_support::servers`).

use crate::common::{go_guest, repo, servers};
use crate::net::Running;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long one request may take on a loaded 2-core machine before the
/// test calls it stalled.
const STALL: Duration = Duration::from_secs(30);

/// A keep-alive HTTP/1.1 connection.
struct Http {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A response: status and body.
#[derive(Debug)]
struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Response {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Http {
    fn connect(addr: &str) -> Http {
        let stream = TcpStream::connect_timeout(&addr.parse().unwrap(), STALL)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_read_timeout(Some(STALL)).unwrap();
        stream.set_write_timeout(Some(STALL)).unwrap();
        Http {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, method: &str, path: &str, body: &[u8]) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: troupe\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer
            .write_all(head.as_bytes())
            .and_then(|()| self.writer.write_all(body))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    }

    /// Reads one response (with a Content-Length, or chunked).
    fn read_response(&mut self) -> Response {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading the status line: {e}"));
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {line:?}"));
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("reading headers: {e}"));
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
                if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        if chunked {
            let mut body = Vec::new();
            loop {
                line.clear();
                self.reader.read_line(&mut line).unwrap();
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap(), 16)
                    .unwrap_or_else(|_| panic!("not a chunk size: {line:?}"));
                let mut chunk = vec![0; size + 2]; // and its CRLF
                self.reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    return Response { status, body };
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        let length = length.unwrap_or_else(|| panic!("no Content-Length (status {status})"));
        let mut body = vec![0; length];
        self.reader
            .read_exact(&mut body)
            .unwrap_or_else(|e| panic!("reading a body of {length} bytes: {e}"));
        Response { status, body }
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Response {
        self.send(method, path, body);
        self.read_response()
    }
}

/// `httpcheck` running in the VM, and its address.
fn start_httpcheck(flags: &[&str]) -> (Running, String) {
    let mut argv = vec!["--allow-net=127.0.0.1"];
    argv.extend_from_slice(flags);
    let mut vm = Running::start_module(&argv, &go_guest("httpcheck"), &[]);
    let addr = vm.wait_line("httpcheck: listening on");
    (vm, addr)
}

/// Ends `httpcheck` with POST /quit; checks that it ended cleanly.
fn quit(vm: Running, addr: &str) {
    assert_eq!(
        Http::connect(addr).request("POST", "/quit", b"").status,
        200
    );
    let (status, stdout, stderr) = vm.finish();
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("httpcheck: closed"), "{stdout}\n{stderr}");
}

#[test]
fn go_net_http_serves_many_clients_at_once_from_one_process() {
    const CLIENTS: usize = 200;
    const REQUESTS: usize = 5;
    let (vm, addr) = start_httpcheck(&[]);

    // One client holds a connection with half a request on it, the whole
    // time: before, its read stopped the process.
    let mut idle = Http::connect(&addr);
    idle.writer
        .write_all(b"GET /hello HTTP/1.1\r\nHost: troupe\r\n")
        .unwrap();

    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = Http::connect(&addr);
                let mut slowest = Duration::ZERO;
                for _ in 0..REQUESTS {
                    let t = Instant::now();
                    let r = c.request("GET", "/hello", b"");
                    slowest = slowest.max(t.elapsed());
                    assert_eq!(
                        (r.status, r.text()),
                        (200, "{\"hello\":\"world\"}\n".into())
                    );
                }
                slowest
            })
        })
        .collect();
    let slowest = clients
        .into_iter()
        .map(|c| c.join().expect("a client failed"))
        .max()
        .unwrap();
    eprintln!(
        "{CLIENTS} clients x {REQUESTS} keep-alive requests, one idle connection: {:?} in all, \
         slowest request {slowest:?}",
        start.elapsed()
    );

    // The idle client finishes its request, and is answered.
    idle.writer.write_all(b"\r\n").unwrap();
    let r = idle.read_response();
    assert_eq!(r.status, 200, "{r:?}");

    // A goroutine waiting in troupe.Receive gets the messages sent while
    // HTTP is served; the ticker goroutine ticks.
    let mut c = Http::connect(&addr);
    let ticks = |c: &mut Http| {
        c.request("GET", "/ticks", b"")
            .text()
            .parse::<u64>()
            .unwrap()
    };
    let before = ticks(&mut c);
    for text in ["one", "two"] {
        assert_eq!(c.request("POST", "/message", text.as_bytes()).status, 202);
    }
    let deadline = Instant::now() + STALL;
    loop {
        let got = c.request("GET", "/received", b"").text();
        if got.trim() == r#"["one","two"]"# {
            break;
        }
        assert!(Instant::now() < deadline, "the Receive goroutine has {got}");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(ticks(&mut c) > before, "the ticker stopped");
    quit(vm, &addr);
}

#[test]
fn go_net_http_shrugs_off_malformed_requests_leaving_clients_and_a_thousand_connections() {
    const CONNECTIONS: usize = 1000;
    let (vm, addr) = start_httpcheck(&["--max-memory=512M"]);

    // A malformed request: 400, and the connection is closed.
    let mut bad = Http::connect(&addr);
    bad.writer.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
    let mut answer = String::new();
    bad.reader.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");

    // Clients that leave in the middle of a large response.
    for _ in 0..3 {
        let mut c = Http::connect(&addr);
        c.send("GET", "/big?n=67108864", b"");
        let mut some = [0; 4096];
        c.reader.read_exact(&mut some).unwrap();
        drop(c);
    }

    // A thousand connections at once, each with a request in flight.
    let start = Instant::now();
    let mut all: Vec<Http> = (0..CONNECTIONS).map(|_| Http::connect(&addr)).collect();
    for (i, c) in all.iter_mut().enumerate() {
        c.send("POST", "/echo", format!("request {i}").as_bytes());
    }
    for (i, c) in all.iter_mut().enumerate() {
        let r = c.read_response();
        assert_eq!(
            (r.status, r.text()),
            (200, format!("request {i}")),
            "connection {i}"
        );
    }
    eprintln!(
        "{CONNECTIONS} connections, a request each: {:?}",
        start.elapsed()
    );
    drop(all);

    // And the server is as it was.
    let mut c = Http::connect(&addr);
    assert_eq!(c.request("GET", "/hello", b"").status, 200);
    let big = c.request("GET", "/big?n=1000000", b"");
    assert_eq!((big.status, big.body.len()), (200, 1_000_000));
    quit(vm, &addr);
}

#[test]
fn go_talks_to_postgres_with_lib_pq_and_to_redis_with_redigo() {
    let pg = servers::Postgres::start();
    let redis = servers::Redis::start();
    let module = go_guest("go-db");
    let out = crate::common::troupe(&[
        "run",
        "--allow-net=127.0.0.1",
        module.to_str().unwrap(),
        &pg.dsn(),
        &redis.addr(),
    ]);
    let (stdout, stderr) = (
        crate::common::text(&out.stdout),
        crate::common::text(&out.stderr),
    );
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{stderr}\npostgres:\n{}",
        pg.log()
    );
    assert!(out.status.success(), "{context}");
    for check in [
        "postgres: ping",
        "postgres: 400 inserts from 16 goroutines",
        "postgres: the rows are there",
        "postgres: a rolled back transaction",
        "postgres: a syntax error",
        "postgres: a 1 MB value",
        "redis: get",
        "redis: 400 INCRs from 8 goroutines",
        "redis: a pipeline",
    ] {
        assert!(
            stdout.contains(&format!("ok: {check}\n")),
            "no `ok: {check}` in {context}"
        );
    }
    assert!(stdout.ends_with("done\n"), "{context}");
}

/// The orders service on Troupe, nginx in front (the page at /, the API
/// at /api/), Postgres behind: the compose stack of examples/orders,
/// started natively.
struct Orders {
    vm: Running,
    pg: servers::Postgres,
    nginx: servers::Nginx,
    api: String,
}

impl Orders {
    fn start(module: &std::path::Path) -> Orders {
        let pg = servers::Postgres::start();
        let port = servers::free_port();
        let listen = format!("ORDERS_LISTEN=127.0.0.1:{port}");
        let database = format!("ORDERS_DATABASE={}", pg.dsn());
        let mut vm = Running::start_module(
            &[
                "--allow-net=127.0.0.1",
                "--env",
                &listen,
                "--env",
                &database,
                "--env",
                "ORDERS_DEMO_CRASH=1",
            ],
            module,
            &[],
        );
        let api = vm.wait_line("orders: serving on");
        assert!(api.starts_with(&format!("127.0.0.1:{port}")), "{api}");
        let web = repo().join("examples/orders/web");
        let nginx = servers::Nginx::start(&format!(
            "server {{\n  listen 127.0.0.1:{{port}};\n  root {};\n  \
             location /api/ {{\n    proxy_pass http://127.0.0.1:{port}/;\n    \
             proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n  }}\n}}",
            web.display()
        ));
        Orders {
            vm,
            pg,
            nginx,
            api: format!("127.0.0.1:{port}"),
        }
    }

    fn web(&self) -> Http {
        Http::connect(&format!("127.0.0.1:{}", self.nginx.port))
    }
}

/// Retries `f` every 100 ms until it is true, for at most [`STALL`].
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + STALL;
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_orders_demo_in_go_serves_the_page_and_the_api_and_survives_its_database_and_itself_failing()
{
    orders_demo(&go_guest("orders-go"));
}

#[test]
fn the_orders_demo_in_rust_on_axum_and_tokio_postgres_does_the_same() {
    orders_demo(&crate::common::guest("orders-rust"));
}

/// The demo's scenario, for either language's service.
fn orders_demo(module: &std::path::Path) {
    let mut o = Orders::start(module);
    let mut web = o.web();

    let page = web.request("GET", "/", b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<h1>Orders</h1>"), "{}", page.text());

    // Orders in, orders out, through nginx.
    for (item, quantity) in [("coffee", 2), ("tea", 1), ("croissant", 12)] {
        let body = format!(r#"{{"item":"{item}","quantity":{quantity}}}"#);
        let r = web.request("POST", "/api/orders", body.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
        assert!(
            r.text()
                .contains(&format!(r#""item":"{item}","quantity":{quantity}"#)),
            "{}",
            r.text()
        );
    }
    let list = web.request("GET", "/api/orders", b"");
    assert_eq!(list.status, 200);
    let text = list.text();
    let (c, t, k) = (
        text.find("croissant"),
        text.find("tea"),
        text.find("coffee"),
    );
    assert!(c.is_some() && c < t && t < k, "newest first: {text}");

    // Bad input: clear errors, nothing stored.
    for bad in [
        &b"not json"[..],
        br#"{"item":"x","quantity":0}"#,
        br#"{"item":"","quantity":1}"#,
        br#"{"item":"x","quantity":1,"extra":1}"#,
    ] {
        let r = web.request("POST", "/api/orders", bad);
        assert_eq!(
            r.status,
            400,
            "{}: {}",
            String::from_utf8_lossy(bad),
            r.text()
        );
        assert!(r.text().contains("\"error\""), "{}", r.text());
    }

    // Postgres stops: errors to the client (503), not a hang; it comes
    // back: the service recovers by itself.
    o.pg.stop();
    let mut api = Http::connect(&o.api);
    let r = api.request("POST", "/orders", br#"{"item":"while down","quantity":1}"#);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(api.request("GET", "/health", b"").status, 503);
    o.pg.restart();
    eventually("the service uses the restarted database", || {
        api.request(
            "POST",
            "/orders",
            br#"{"item":"after restart","quantity":1}"#,
        )
        .status
            == 201
    });

    // The service itself fails: its supervisor starts it again.
    assert_eq!(api.request("POST", "/crash", b"").status, 202);
    eventually("the api process is back", || {
        let mut c = match TcpStream::connect(&o.api) {
            Ok(s) => s,
            Err(_) => return false,
        };
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut head = [0; 12];
        c.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
    });
    let list = o.web().request("GET", "/api/orders", b"").text();
    assert!(
        list.contains("after restart") && list.contains("croissant"),
        "{list}"
    );

    drop(o.nginx);
    drop(o.vm); // kills the VM
    drop(o.pg);
}

#[test]
fn an_async_rust_task_awaits_the_mailbox_while_other_tasks_serve_connections() {
    let mut vm = Running::start_module(
        &["--allow-net=127.0.0.1"],
        &crate::common::guest("tokio_mailbox"),
        &["127.0.0.1:0"],
    );
    let addr = vm.wait_line("listening ");
    // Another process's message wakes the runtime, idle in poll_oneoff.
    assert_eq!(vm.wait_line("got "), "from child");
    let mut clients: Vec<_> = (0..3)
        .map(|_| {
            let s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(STALL)).unwrap();
            (s.try_clone().unwrap(), BufReader::new(s))
        })
        .collect();
    for round in 0..3 {
        for (i, (w, r)) in clients.iter_mut().enumerate() {
            let mut line = String::new();
            writeln!(w, "hello {round} {i}").unwrap();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, format!("hello {round} {i}\n"));
            line.clear();
            writeln!(w, "send m{round}{i}").unwrap();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, format!("sent m{round}{i}\n"));
            // The main task, awaiting the mailbox, got it.
            assert_eq!(vm.wait_line("got "), format!("m{round}{i}"));
        }
    }
    writeln!(clients[0].0, "send stop").unwrap();
    let (status, stdout, stderr) = vm.finish();
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(stdout.ends_with("done\n"), "{stdout}\n{stderr}");
}
