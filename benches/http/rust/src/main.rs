//! The HTTP benchmark's Rust server: `GET /hello` on axum, on a
//! current-thread tokio runtime, natively or in a Troupe process.
//!
//! `http-bench-axum [ADDR]` prints `http: listening on ADDR` and serves
//! until killed.

use axum::routing::get;
use axum::{Json, Router};

use std::net::SocketAddr;

/// The listener and its address: Troupe's (within `--allow-net`) in a
/// Troupe process (WASI preview 1 cannot tell a socket's address, so
/// Troupe's socket is asked before it becomes the standard library's).
#[cfg(target_os = "wasi")]
fn listen(addr: &str) -> std::io::Result<(std::net::TcpListener, SocketAddr)> {
    let listener = troupe::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    Ok((listener.into_std()?, local))
}

/// The listener and its address: the operating system's, natively.
#[cfg(not(target_os = "wasi"))]
fn listen(addr: &str) -> std::io::Result<(std::net::TcpListener, SocketAddr)> {
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let (listener, local) = listen(&addr)?;
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            println!("http: listening on {local}");
            let app = Router::new().route(
                "/hello",
                get(|| async { Json(serde_json::json!({ "hello": "world" })) }),
            );
            axum::serve(listener, app).await
        })
}
