//! The kv-server line protocol and the store's operations.
//!
//! A crate of its own, so that both servers speak exactly the same protocol:
//! the Troupe server (`examples/kv-server`, built for wasm32-wasip1) and the
//! native tokio baseline of the benchmark (`examples/kv-server/load`'s
//! `kv-native`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A request to the store.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Set(String, String),
    Get(String),
    Del(String),
    Count,
}

/// The store's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    Value(Option<String>),
    Deleted(bool),
    Count(u64),
}

impl Reply {
    /// The reply line, with its `\n`.
    pub fn line(&self) -> String {
        match self {
            Reply::Ok => "OK\n".to_string(),
            Reply::Value(Some(value)) => format!("VALUE {value}\n"),
            Reply::Value(None) | Reply::Deleted(false) => "NOT_FOUND\n".to_string(),
            Reply::Deleted(true) => "DELETED\n".to_string(),
            Reply::Count(n) => format!("COUNT {n}\n"),
        }
    }
}

/// Carries out `request` on the store's data.
pub fn apply(data: &mut HashMap<String, String>, request: Request) -> Reply {
    match request {
        Request::Set(key, value) => {
            data.insert(key, value);
            Reply::Ok
        }
        Request::Get(key) => Reply::Value(data.get(&key).cloned()),
        Request::Del(key) => Reply::Deleted(data.remove(&key).is_some()),
        Request::Count => Reply::Count(data.len() as u64),
    }
}

/// What one line asks for.
pub enum Command {
    Store(Request),
    Ping,
    Crash,
}

/// The answer to a line that is not a command with the right arguments.
pub const UNKNOWN: &str = "ERR unknown command\n";

/// Parses one line (without its `\n`): `None` if it is not a command with
/// the right arguments. Command words are case-insensitive; a key is one
/// word; a value is the rest of the line, spaces included.
pub fn parse(line: &str) -> Option<Command> {
    let (word, rest) = match line.split_once(' ') {
        Some((word, rest)) => (word, Some(rest)),
        None => (line, None),
    };
    let is_key = |k: &str| !k.is_empty() && !k.contains(' ');
    Some(match (word.to_ascii_uppercase().as_str(), rest) {
        ("SET", Some(rest)) => {
            let (key, value) = rest.split_once(' ')?;
            if !is_key(key) {
                return None;
            }
            Command::Store(Request::Set(key.to_string(), value.to_string()))
        }
        ("GET", Some(key)) if is_key(key) => Command::Store(Request::Get(key.to_string())),
        ("DEL", Some(key)) if is_key(key) => Command::Store(Request::Del(key.to_string())),
        ("COUNT", None) => Command::Store(Request::Count),
        ("PING", None) => Command::Ping,
        ("CRASH", None) => Command::Crash,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> bool {
        parse(line).is_some()
    }

    #[test]
    fn the_grammar() {
        assert!(ok("SET k some value with spaces"));
        assert!(ok("SET k "));
        assert!(ok("set k v"));
        assert!(!ok("SET k"));
        assert!(!ok("SET  v"));
        assert!(ok("GET k"));
        assert!(!ok("GET"));
        assert!(!ok("GET a b"));
        assert!(ok("DEL k"));
        assert!(ok("COUNT"));
        assert!(!ok("COUNT x"));
        assert!(ok("PING"));
        assert!(ok("CRASH"));
        assert!(!ok(""));
        assert!(!ok("FLY away"));
        match parse("SET k a b ") {
            Some(Command::Store(Request::Set(k, v))) => {
                assert_eq!(k, "k");
                assert_eq!(v, "a b ");
            }
            _ => panic!("SET parses"),
        }
    }
}
