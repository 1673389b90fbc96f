//! The orders service of examples/orders, in Rust: a JSON HTTP API on axum,
//! on a current-thread tokio runtime inside one Troupe process, Postgres
//! behind it through tokio-postgres; a supervisor restarts it when it fails.
//!
//! ```text
//! troupe run --allow-net=0.0.0.0:8080,127.0.0.1:5432 orders-rust.wasm
//! ```
//!
//! The same environment and API as the Go service (examples/orders/go):
//! `ORDERS_LISTEN`, `ORDERS_DATABASE` (`host=... port=... user=...
//! password=... dbname=...`), `ORDERS_DEMO_CRASH=1`; `POST /orders`,
//! `GET /orders`, `GET /health` (and `POST /crash`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use troupe::{ChildSpec, Mailbox, Strategy, Supervisor, SupervisorSpec};

fn env(name: &str, fallback: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| fallback.into())
}

fn main() {
    // One worker, restarted when it fails, at most 5 times in 10 s.
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(10))
        .child(ChildSpec::worker("api", (), api));
    let _supervisor = Supervisor::start_link(spec).expect("the api process starts");
    // The root waits: if the supervisor gives up, the link ends the root.
    loop {
        troupe::sleep(Duration::from_secs(3600));
    }
}

/// The api process: its own tokio runtime, on this process's one thread.
fn api((): (), _mailbox: Mailbox<()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(e) = runtime.block_on(serve()) {
        eprintln!("orders: {e}");
        std::process::exit(1);
    }
}

/// The database connection, made again when it breaks.
struct Db {
    config: tokio_postgres::Config,
    address: String,
    client: Mutex<Option<Arc<tokio_postgres::Client>>>,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

impl Db {
    /// Connects through Troupe (the VM's permission applies), and hands
    /// the socket to tokio.
    async fn connect(&self) -> Result<Arc<tokio_postgres::Client>, Failure> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let stream =
            troupe::net::TcpStream::connect_timeout(&self.address, Duration::from_secs(5))?
                .into_std()?;
        stream.set_nonblocking(true)?;
        let stream = tokio::net::TcpStream::from_std(stream)?;
        let (client, connection) = self
            .config
            .connect_raw(stream, tokio_postgres::NoTls)
            .await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("orders: the database connection ended: {e}");
            }
        });
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }
}

async fn serve() -> Result<(), Failure> {
    let config: tokio_postgres::Config = env(
        "ORDERS_DATABASE",
        "host=127.0.0.1 port=5432 user=orders dbname=orders",
    )
    .parse()?;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = Arc::new(Db {
        config,
        address: format!("{host}:{port}"),
        client: Mutex::new(None),
    });

    // The schema, once the database answers (it may start after us).
    let mut attempt = 0;
    loop {
        let ready = async {
            db.connect()
                .await?
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS orders (
                        id bigserial PRIMARY KEY,
                        item text NOT NULL,
                        quantity int NOT NULL CHECK (quantity > 0),
                        created_at timestamptz NOT NULL DEFAULT now())",
                )
                .await
                .map_err(Failure::from)
        };
        match ready.await {
            Ok(()) => break,
            Err(e) if attempt == 60 => {
                return Err(format!("the database does not answer: {e}").into())
            }
            Err(_) => attempt += 1,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let listener = troupe::net::TcpListener::bind(&env("ORDERS_LISTEN", "0.0.0.0:8080"))?;
    let addr = listener.local_addr()?;
    let listener = listener.into_std()?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;

    let mut app = Router::new()
        .route("/orders", post(create_order).get(list_orders))
        .route("/health", get(health));
    if std::env::var("ORDERS_DEMO_CRASH").as_deref() == Ok("1") {
        app = app.route(
            "/crash",
            post(|| async {
                tokio::spawn(async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    panic!("orders: crashed on request (POST /crash)");
                });
                StatusCode::ACCEPTED
            }),
        );
    }
    println!("orders: serving on {addr} (process {})", troupe::self_pid());
    axum::serve(listener, app.with_state(db)).await?;
    Err("the server stopped".into())
}

#[derive(Serialize)]
struct Order {
    id: i64,
    item: String,
    quantity: i32,
    /// RFC 3339, as Postgres formats it for JSON.
    created_at: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    item: String,
    quantity: i64,
}

fn fail(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": message.to_string() })),
    )
        .into_response()
}

/// A database error: 503 if the database cannot be reached (the next
/// request connects again), else 500 with the server's message.
fn database_failed(e: Failure) -> Response {
    match e
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.as_db_error())
    {
        Some(db) => fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("database: {}", db.message()),
        ),
        None => fail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {e}"),
        ),
    }
}

async fn within<T>(f: impl std::future::Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .unwrap_or_else(|_| Err("timed out after 5 s".into()))
}

async fn create_order(State(db): State<Arc<Db>>, body: axum::body::Bytes) -> Response {
    let new: NewOrder = match serde_json::from_slice(&body) {
        Ok(o) => o,
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                format!("the body is not an order: {e}"),
            )
        }
    };
    let item = new.item.trim().to_string();
    if item.is_empty() || item.len() > 200 || !(1..=1000).contains(&new.quantity) {
        return fail(
            StatusCode::BAD_REQUEST,
            "an order needs an item (1 to 200 bytes) and a quantity from 1 to 1000",
        );
    }
    let quantity = new.quantity as i32;
    let row = within(async {
        let client = db.connect().await?;
        Ok(client
            .query_one(
                "INSERT INTO orders (item, quantity) VALUES ($1, $2) \
                 RETURNING id, to_json(created_at)#>>'{}'",
                &[&item, &quantity],
            )
            .await?)
    })
    .await;
    match row {
        Ok(row) => (
            StatusCode::CREATED,
            Json(Order {
                id: row.get(0),
                item,
                quantity,
                created_at: row.get(1),
            }),
        )
            .into_response(),
        Err(e) => database_failed(e),
    }
}

async fn list_orders(State(db): State<Arc<Db>>) -> Response {
    let rows = within(async {
        let client = db.connect().await?;
        Ok(client
            .query(
                "SELECT id, item, quantity, to_json(created_at)#>>'{}' FROM orders \
                 ORDER BY id DESC LIMIT 100",
                &[],
            )
            .await?)
    })
    .await;
    match rows {
        Ok(rows) => Json(
            rows.iter()
                .map(|r| Order {
                    id: r.get(0),
                    item: r.get(1),
                    quantity: r.get(2),
                    created_at: r.get(3),
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => database_failed(e),
    }
}

async fn health(State(db): State<Arc<Db>>) -> Response {
    match within(async { Ok(db.connect().await?.simple_query("SELECT 1").await?) }).await {
        Ok(_) => "ok\n".into_response(),
        Err(e) => fail(StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")),
    }
}
