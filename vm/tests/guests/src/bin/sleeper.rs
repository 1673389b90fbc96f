//! A long-running actor app: a few processes wait for messages forever.
use troupe::{spawn, Mailbox};

fn wait(_: (), mailbox: Mailbox<()>) {
    mailbox.receive();
}

fn main() {
    for _ in 0..3 {
        spawn((), wait).unwrap();
    }
    println!("sleeper: ready");
    Mailbox::<()>::this().receive();
}
