//! `kv-load`: a load generator for the kv-server line protocol.
//!
//! It opens `--conns` connections, checks each with a `PING`, then, for
//! `--duration`, every connection sends requests one at a time (it waits for
//! each reply before the next request): a `SET` of a random key of
//! `--keys`, then a `GET` of the same key, and so on. The value of a key is
//! derived from the key, so every client writes the same value to it and a
//! `GET` must answer exactly `VALUE <that value>`: any other reply is counted
//! as a wrong reply. It reports the requests done, the rate and the latency
//! percentiles, and exits with 1 if any reply was wrong or any connection
//! failed.
//!
//! ```text
//! kv-load --addr 127.0.0.1:7000 --conns 100 --duration 5s [--keys 1000] [--json]
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(
    name = "kv-load",
    about = "Load generator for the kv-server line protocol (SET/GET, one request at a time per connection)"
)]
struct Args {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: String,
    /// Connections, each one request at a time.
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// How long to send requests (after all connections are open):
    /// `5s`, `500ms`, `1m`, or seconds.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Number of distinct keys (`k0` ... `k{keys-1}`).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Length of each value in bytes (at least the key's length + 2).
    #[arg(long, default_value_t = 16)]
    value_size: usize,
    /// Time allowed to open each connection and get its first `PONG`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Client threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON line instead of the text report.
    #[arg(long)]
    json: bool,
}

/// `5s`, `250ms`, `2m`, `1.5s`, `100us` or a plain number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 5s, 500ms, 1m)"))?;
    let seconds = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "m" | "min" => n * 60.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?} (use s, ms, us or m)"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

/// The value every client stores under key `k`: derived from the key,
/// padded to `size` bytes.
fn value_of(k: u64, size: usize) -> String {
    let mut v = format!("v{k}-");
    while v.len() < size {
        v.push((b'a' + (v.len() % 26) as u8) as char);
    }
    v
}

/// A small fast PRNG (xorshift64*): enough to pick keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One open connection: a line reader and the writing half.
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
}

impl Conn {
    /// Sends `request` (a full line) and reads the reply line, without its
    /// `\n`. The end of the stream is an error.
    async fn roundtrip(&mut self, request: &[u8]) -> std::io::Result<&str> {
        self.writer.write_all(request).await?;
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(self.line.trim_end_matches(['\n', '\r']))
    }
}

/// Opens a connection and checks it with `PING`.
async fn open(addr: &str) -> std::io::Result<Conn> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let mut conn = Conn {
        reader: BufReader::new(r),
        writer: w,
        line: String::new(),
    };
    let reply = conn.roundtrip(b"PING\n").await?;
    if reply != "PONG" {
        return Err(std::io::Error::other(format!(
            "PING: expected PONG, got {reply:?}"
        )));
    }
    Ok(conn)
}

/// What one connection did in the timed phase.
#[derive(Default)]
struct ConnStats {
    /// Latency of every request, in nanoseconds.
    latencies: Vec<u64>,
    wrong: u64,
    /// The first few wrong replies, described.
    wrong_examples: Vec<String>,
    /// The error that ended this connection early, if any.
    error: Option<String>,
}

/// Sends requests on `conn` until `deadline`.
async fn drive(mut conn: Conn, id: u64, args: &Args, deadline: Instant) -> ConnStats {
    let mut stats = ConnStats {
        latencies: Vec::with_capacity(1 << 14),
        ..ConnStats::default()
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0x1000_0000_01b3));
    let mut request = Vec::with_capacity(64 + args.value_size);
    let mut expected = String::with_capacity(16 + args.value_size);
    let mut key = 0;
    let mut is_set = false;
    while Instant::now() < deadline {
        // Alternate: SET k v, then GET k (which must give v back).
        is_set = !is_set;
        request.clear();
        expected.clear();
        if is_set {
            key = rng.next() % args.keys.max(1);
            let value = value_of(key, args.value_size);
            request.extend_from_slice(format!("SET k{key} {value}\n").as_bytes());
            expected.push_str("OK");
        } else {
            request.extend_from_slice(format!("GET k{key}\n").as_bytes());
            expected.push_str("VALUE ");
            expected.push_str(&value_of(key, args.value_size));
        }
        let start = Instant::now();
        let reply = match conn.roundtrip(&request).await {
            Ok(reply) => reply,
            Err(e) => {
                stats.error = Some(format!("connection {id}: {e}"));
                break;
            }
        };
        stats.latencies.push(start.elapsed().as_nanos() as u64);
        if reply != expected {
            stats.wrong += 1;
            if stats.wrong_examples.len() < 3 {
                let sent = String::from_utf8_lossy(&request);
                stats.wrong_examples.push(format!(
                    "connection {id}: {:?} -> expected {expected:?}, got {reply:?}",
                    sent.trim_end()
                ));
            }
        }
    }
    stats
}

/// The value at quantile `q` (0..=1) of sorted `v`, in microseconds.
fn percentile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1e3
}

/// Microseconds, readably: `87 us`, `1.25 ms`.
fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} us")
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.conns == 0 {
        eprintln!("kv-load: --conns must be at least 1");
        return ExitCode::from(2);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build().expect("a tokio runtime");
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let args = std::sync::Arc::new(args);

    // 1. Open every connection, and check it with PING, before timing.
    let mut opening = tokio::task::JoinSet::new();
    for id in 0..args.conns as u64 {
        let args = args.clone();
        opening.spawn(async move {
            let result = tokio::time::timeout(args.connect_timeout, open(&args.addr)).await;
            let result = match result {
                Ok(Ok(conn)) => Ok(conn),
                Ok(Err(e)) => Err(format!("connection {id}: {e}")),
                Err(_) => Err(format!(
                    "connection {id}: not open after {:?}",
                    args.connect_timeout
                )),
            };
            (id, result)
        });
    }
    let mut conns = Vec::with_capacity(args.conns);
    let mut errors = Vec::new();
    while let Some(joined) = opening.join_next().await {
        match joined.expect("a connecting task") {
            (id, Ok(conn)) => conns.push((id, conn)),
            (_, Err(e)) => errors.push(e),
        }
    }
    let connected = conns.len();

    // 2. The timed phase.
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut driving = tokio::task::JoinSet::new();
    for (id, conn) in conns {
        let args = args.clone();
        driving.spawn(async move { drive(conn, id, &args, deadline).await });
    }
    let mut latencies = Vec::new();
    let mut wrong = 0;
    let mut wrong_examples = Vec::new();
    while let Some(joined) = driving.join_next().await {
        let stats = joined.expect("a connection task");
        latencies.extend_from_slice(&stats.latencies);
        wrong += stats.wrong;
        wrong_examples.extend(stats.wrong_examples);
        errors.extend(stats.error);
    }
    let elapsed = start.elapsed().as_secs_f64();

    // 3. The report.
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    let rps = if connected > 0 {
        requests as f64 / elapsed
    } else {
        0.0
    };
    let mean_us = if requests > 0 {
        latencies.iter().sum::<u64>() as f64 / requests as f64 / 1e3
    } else {
        0.0
    };
    let (p50, p90, p99, max) = (
        percentile_us(&latencies, 0.50),
        percentile_us(&latencies, 0.90),
        percentile_us(&latencies, 0.99),
        percentile_us(&latencies, 1.0),
    );
    wrong_examples.truncate(5);
    let shown_errors: Vec<&String> = errors.iter().take(5).collect();
    if args.json {
        let line = serde_json::json!({
            "addr": args.addr,
            "conns": args.conns,
            "connected": connected,
            "duration_s": args.duration.as_secs_f64(),
            "elapsed_s": elapsed,
            "keys": args.keys,
            "value_size": args.value_size,
            "requests": requests,
            "rps": rps,
            "mean_us": mean_us,
            "p50_us": p50,
            "p90_us": p90,
            "p99_us": p99,
            "max_us": max,
            "wrong_replies": wrong,
            "conn_errors": errors.len(),
            "errors": shown_errors,
            "wrong_examples": wrong_examples,
        });
        println!("{line}");
    } else {
        println!(
            "kv-load: {}, {} connections ({connected} open), {:.2} s",
            args.addr, args.conns, elapsed
        );
        println!("requests:  {requests} ({rps:.0} req/s)");
        println!(
            "latency:   p50 {}, p90 {}, p99 {}, max {} (mean {})",
            fmt_us(p50),
            fmt_us(p90),
            fmt_us(p99),
            fmt_us(max),
            fmt_us(mean_us)
        );
        println!(
            "errors:    {wrong} wrong replies, {} connection errors",
            errors.len()
        );
        for e in &wrong_examples {
            println!("  wrong reply: {e}");
        }
        for e in &shown_errors {
            println!("  connection error: {e}");
        }
        if errors.len() > shown_errors.len() {
            println!(
                "  ... and {} more connection errors",
                errors.len() - shown_errors.len()
            );
        }
    }
    if wrong > 0 || !errors.is_empty() || connected == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn values_depend_on_the_key_only() {
        assert_eq!(value_of(7, 16), value_of(7, 16));
        assert_eq!(value_of(7, 16).len(), 16);
        assert_ne!(value_of(7, 16), value_of(8, 16));
        assert!(value_of(123456, 4).starts_with("v123456-"));
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_us(&v, 0.5), 50.0);
        assert_eq!(percentile_us(&v, 0.99), 99.0);
        assert_eq!(percentile_us(&v, 1.0), 100.0);
        assert_eq!(percentile_us(&[], 0.5), 0.0);
    }
}
