//! Spawn and load errors reach the guest as clear errors.
use troupe::{abi::err, Module, SpawnOptions};

fn main() {
    let this = Module::this();
    let e = this
        .spawn_export("no_such_function", &[], &SpawnOptions::new(), &[])
        .unwrap_err();
    assert_eq!(e.code, err::NO_SUCH_EXPORT);
    println!("missing export: {e}");

    let e = Module::load(b"definitely not wasm").unwrap_err();
    println!("bad module: {e}");

    let e = Module::from_handle(987_654)
        .spawn_start(&SpawnOptions::new(), &())
        .unwrap_err();
    assert_eq!(e.code, err::NO_SUCH_MODULE);
    println!("bad handle: {e}");

    let e = this
        .spawn_export("__troupe_entry", &[1], &SpawnOptions::new(), &[])
        .unwrap_err();
    assert_eq!(e.code, err::NO_SUCH_EXPORT);
    println!("wrong parameter count: {e}");

    let e = SpawnOptions::new()
        .preopens(["/not-mine"])
        .spawn((), |(), _: troupe::Mailbox<()>| {})
        .unwrap_err();
    assert_eq!(e.code, err::PERMISSION_DENIED);
    println!("wider preopens: {e}");

    // A module importing something the VM does not provide.
    let wasm = [
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type section: () -> ()
        0x02, 0x0b, 0x01, 0x03, b'e', b'n', b'v', 0x03, b'z', b'a', b'p', 0x00,
        0x00, // import env.zap
    ];
    let e = Module::load(&wasm).unwrap_err();
    println!("unknown import: {e}");
}
