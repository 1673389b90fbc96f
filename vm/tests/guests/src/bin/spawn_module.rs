//! Loads another module from a file this process may read (`/mods/hello.wasm`
//! in a preopened directory), spawns its `_start` with argv and env of its
//! choosing, loads it again (same handle, from the cache), and waits for the
//! child to finish.
use std::time::Duration;
use troupe::{Module, Process, SendError, SpawnOptions};

fn main() {
    let path = std::env::args().nth(1).unwrap_or("/mods/hello.wasm".into());
    let hello = Module::from_file(&path).expect("load a module from a preopened file");
    let again = Module::from_file(&path).unwrap();
    assert_eq!(
        hello.handle(),
        again.handle(),
        "same bytes, same cached module"
    );
    assert_ne!(hello.handle(), Module::this().handle());
    let opts = SpawnOptions::new()
        .args(["hello.wasm", "from-parent", "--exit", "0"])
        .envs([("ROLE", "worker")]);
    let child = hello.spawn_start(&opts, &()).expect("spawn _start");
    let child = Process::<()>::from_pid(child);
    for _ in 0..5000 {
        if let Err(SendError::NoProcess(_)) = child.send(()) {
            println!("spawn_module: child {} ran and exited", child.pid());
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the hello child did not finish");
}
