//! A plain WASI program (no Troupe SDK): it shows what a process sees of its
//! arguments, environment, preopened directories and stdin, and exits with a
//! chosen code. It behaves the same under `troupe run` and `wasmtime run`.
//!
//! Options: `--stdin` reads stdin to its end and prints its length;
//! `--exit N` exits with code N.

use std::io::Read;
use std::process::exit;

fn main() {
    println!("Hello from Troupe!");

    let args: Vec<String> = std::env::args().collect();
    for (i, arg) in args.iter().enumerate() {
        println!("arg[{i}] = {arg}");
    }

    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    println!("env: {} variable(s)", vars.len());
    for (key, value) in &vars {
        println!("env {key}={value}");
    }

    match std::fs::read_dir("/data") {
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    match e.file_type() {
                        Ok(t) if t.is_dir() => name + "/",
                        _ => name,
                    }
                })
                .collect();
            names.sort();
            println!(
                "/data: {} entr{}",
                names.len(),
                if names.len() == 1 { "y" } else { "ies" }
            );
            for name in names {
                println!("/data/{name}");
            }
        }
        Err(e) => println!("/data: not available ({e})"),
    }

    if args.iter().any(|a| a == "--stdin") {
        let mut input = Vec::new();
        match std::io::stdin().read_to_end(&mut input) {
            Ok(n) => println!("stdin: {n} bytes"),
            Err(e) => {
                eprintln!("hello: reading stdin: {e}");
                exit(1)
            }
        }
    }

    if let Some(i) = args.iter().position(|a| a == "--exit") {
        let code = args
            .get(i + 1)
            .and_then(|n| n.parse::<i32>().ok())
            .unwrap_or_else(|| {
                eprintln!("hello: --exit needs a number");
                exit(2)
            });
        println!("exiting with code {code}");
        exit(code);
    }
}
