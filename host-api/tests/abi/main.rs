//! The ABI's edge cases, against the real host functions and a fake VM
//! ([`fake::Fake`]): WAT guests call them with the arguments a careless or
//! hostile guest would pass, and the tests check what `host-api/SPEC.md`
//! promises: a pointer out of bounds traps the caller only, naming the
//! function and the range; a bad argument is an error code with a sentence
//! in `error_message`; nothing half-done reaches the VM.

mod fake;

use fake::{Fake, Guest};
use troupe_host_api::{abi::err, ExitReason, GuestExit};

/// A guest with one page (64 KiB) of memory, the imports and exports in
/// `body`, and `data` segments.
fn module(body: &str) -> String {
    format!("(module {body} (memory (export \"memory\") 1))")
}

const PAGE: u64 = 65536;

#[tokio::test]
async fn pointers_outside_memory_trap_the_caller_naming_the_function_and_the_range() {
    let mut g = Guest::new(
        &module(
            r#"
            (import "troupe_message" "send" (func $send (param i64 i64 i32 i32) (result i32)))
            (data (i32.const 0) "ping")
            (func (export "past_end") (result i32) (call $send (i64.const 2) (i64.const 0) (i32.const 65530) (i32.const 100)))
            (func (export "negative_len") (result i32) (call $send (i64.const 2) (i64.const 0) (i32.const 0) (i32.const -1)))
            (func (export "wrapping") (result i32) (call $send (i64.const 2) (i64.const 0) (i32.const -16) (i32.const 32)))
            (func (export "at_the_end") (result i32) (call $send (i64.const 2) (i64.const 0) (i32.const 65536) (i32.const 0)))
            (func (export "ok") (result i32) (call $send (i64.const 2) (i64.const 7) (i32.const 0) (i32.const 4)))
            "#,
        ),
        Fake::default(),
    )
    .await;
    let trap = g.trap("past_end").await;
    assert!(
        trap.contains(&format!(
            "troupe_message::send: data at 0xfffa with length 100 is outside the process's memory ({PAGE} bytes)"
        )),
        "{trap}"
    );
    let trap = g.trap("negative_len").await;
    assert!(
        trap.contains("data at 0x0 with length 4294967295 is outside"),
        "{trap}"
    );
    let trap = g.trap("wrapping").await;
    assert!(
        trap.contains("data at 0xfffffff0 with length 32 is outside"),
        "{trap}"
    );
    assert!(g.fake().sent.lock().unwrap().is_empty(), "nothing was sent");

    // An empty range at the very end is inside; the same instance goes on
    // working after its traps.
    assert_eq!(g.code("at_the_end").await, err::OK);
    assert_eq!(g.code("ok").await, err::OK);
    let sent = g.fake().sent.lock().unwrap().clone();
    assert_eq!(sent, vec![(2, 0, vec![]), (2, 7, b"ping".to_vec())]);
}

#[tokio::test]
async fn a_module_without_memory_traps_on_a_call_with_pointers_and_not_on_one_without() {
    let mut g = Guest::new(
        r#"(module
            (import "troupe_process" "self_pid" (func $self_pid (result i64)))
            (import "troupe_registry" "whereis" (func $whereis (param i32 i32 i32) (result i32)))
            (func (export "self_pid") (result i64) (call $self_pid))
            (func (export "whereis") (result i32) (call $whereis (i32.const 0) (i32.const 0) (i32.const 0))))"#,
        Fake {
            pid: 42,
            ..Fake::default()
        },
    )
    .await;
    assert_eq!(g.call("self_pid").await, Ok(42));
    let trap = g.trap("whereis").await;
    assert!(
        trap.contains(
            "troupe_registry::whereis: the module exports no linear memory named \"memory\""
        ),
        "{trap}"
    );
}

#[tokio::test]
async fn an_error_code_leaves_a_sentence_that_error_message_copies_truncated_and_measures() {
    let mut g = Guest::new(
        &module(
            r#"
            (import "troupe_registry" "register" (func $register (param i32 i32 i64) (result i32)))
            (import "troupe_process" "error_message" (func $error_message (param i32 i32) (result i32)))
            (data (i32.const 0) "\ff\fe")
            (data (i32.const 205) "*")
            (func (export "register_bad_utf8") (result i32) (call $register (i32.const 0) (i32.const 2) (i64.const 1)))
            (func (export "message_5") (result i32) (call $error_message (i32.const 200) (i32.const 5)))
            (func (export "message_0") (result i32) (call $error_message (i32.const 65536) (i32.const 0)))
            (func (export "message_all") (result i32) (call $error_message (i32.const 1000) (i32.const 1000)))
            (func (export "message_out_of_bounds") (result i32) (call $error_message (i32.const 65535) (i32.const 2)))
            "#,
        ),
        Fake::default(),
    )
    .await;
    assert_eq!(g.code("register_bad_utf8").await, err::INVALID_ARGUMENT);
    assert!(g.fake().names.is_empty());
    let sentence = g.fake().last_error.clone();
    assert!(sentence.starts_with("name is not UTF-8"), "{sentence}");

    // The full length, whatever the buffer; the copy stops at the buffer.
    assert_eq!(g.code("message_5").await as usize, sentence.len());
    assert_eq!(g.memory(200, 6), [&sentence.as_bytes()[..5], b"*"].concat());
    assert_eq!(g.code("message_0").await as usize, sentence.len());
    assert_eq!(g.code("message_all").await as usize, sentence.len());
    assert_eq!(g.memory(1000, sentence.len()), sentence.as_bytes());
    assert!(g
        .trap("message_out_of_bounds")
        .await
        .contains("troupe_process::error_message: buf"));
}

#[tokio::test]
async fn a_message_too_big_for_the_buffer_is_held_until_read_and_then_is_gone() {
    let mut fake = Fake::default();
    let payload: Vec<u8> = (0..100u8).collect();
    fake.deliver(5, 9, &payload);
    let mut g = Guest::new(
        &module(
            r#"
            (import "troupe_message" "receive" (func $receive (param i32 i32 i64 i32 i32 i32) (result i32)))
            (import "troupe_message" "read" (func $read (param i32 i32) (result i32)))
            (func (export "receive_10") (result i32)
              (call $receive (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 1000) (i32.const 10) (i32.const 2000)))
            (func (export "read_50") (result i32) (call $read (i32.const 1000) (i32.const 50)))
            (func (export "read_100") (result i32) (call $read (i32.const 1000) (i32.const 100)))
            (func (export "read_out_of_bounds") (result i32) (call $read (i32.const 65500) (i32.const 100)))
            "#,
        ),
        fake,
    )
    .await;
    assert_eq!(g.code("receive_10").await, err::BUFFER_TOO_SMALL);
    // The info record: tag, sender, length.
    assert_eq!(g.u64_at(2000), 5);
    assert_eq!(g.u64_at(2008), 9);
    assert_eq!(g.memory(2016, 4), 100u32.to_le_bytes());
    assert_eq!(
        g.memory(1000, 10),
        [0; 10],
        "nothing is copied into a small buffer"
    );

    // Too small again: still held. A bad buffer traps and loses nothing.
    assert_eq!(g.code("read_50").await, err::BUFFER_TOO_SMALL);
    assert!(g
        .trap("read_out_of_bounds")
        .await
        .contains("troupe_message::read: buf at 0xffdc"));
    assert_eq!(g.code("read_100").await, err::OK);
    assert_eq!(g.memory(1000, 100), payload);
    assert_eq!(g.code("read_100").await, err::NO_MESSAGE);
    assert_eq!(g.fake().last_error, "no message is held");
}

#[tokio::test]
async fn receive_selects_by_tag_times_out_with_a_code_and_refuses_too_many_tags() {
    let mut fake = Fake::default();
    fake.deliver(1, 3, b"a");
    fake.deliver(2, 3, b"b");
    let mut g = Guest::new(
        &module(
            r#"
            (import "troupe_message" "receive" (func $receive (param i32 i32 i64 i32 i32 i32) (result i32)))
            (data (i32.const 3000) "\02\00\00\00\00\00\00\00\03\00\00\00\00\00\00\00")
            (func (export "tag_2") (result i32)
              (call $receive (i32.const 3000) (i32.const 1) (i64.const 0) (i32.const 1000) (i32.const 10) (i32.const 2000)))
            (func (export "tag_3_for_1ms") (result i32)
              (call $receive (i32.const 3008) (i32.const 1) (i64.const 1000000) (i32.const 1000) (i32.const 10) (i32.const 2000)))
            (func (export "tags_1025") (result i32)
              (call $receive (i32.const 0) (i32.const 1025) (i64.const 0) (i32.const 1000) (i32.const 10) (i32.const 2000)))
            (func (export "tags_negative") (result i32)
              (call $receive (i32.const 0) (i32.const -1) (i64.const 0) (i32.const 1000) (i32.const 10) (i32.const 2000)))
            (func (export "tags_past_end") (result i32)
              (call $receive (i32.const 60000) (i32.const 1024) (i64.const 0) (i32.const 1000) (i32.const 10) (i32.const 2000)))
            (func (export "info_past_end") (result i32)
              (call $receive (i32.const 0) (i32.const 0) (i64.const 0) (i32.const 1000) (i32.const 10) (i32.const 65530)))
            "#,
        ),
        fake,
    )
    .await;
    assert_eq!(g.code("tag_2").await, err::OK);
    assert_eq!(g.u64_at(2000), 2);
    assert_eq!(g.memory(1000, 1), b"b");
    assert_eq!(g.code("tag_3_for_1ms").await, err::TIMEOUT);
    assert_eq!(g.code("tags_1025").await, err::INVALID_ARGUMENT);
    assert!(g
        .fake()
        .last_error
        .contains("at most 1024 tags; 1025 given"));
    assert_eq!(g.code("tags_negative").await, err::INVALID_ARGUMENT);
    assert!(g
        .trap("tags_past_end")
        .await
        .contains("troupe_message::receive: tags at 0xea60"));
    // Ranges are checked before a message is taken: it stays queued.
    assert!(g
        .trap("info_past_end")
        .await
        .contains("troupe_message::receive: info at 0xfffa"));
    let left: Vec<u64> = g.fake().mailbox.iter().map(|m| m.tag).collect();
    assert_eq!(left, [1]);
}

#[tokio::test]
async fn names_are_checked_for_length_and_utf8_and_whereis_writes_where_it_is_told() {
    let mut g = Guest::new(
        &module(
            r#"
            (import "troupe_registry" "register" (func $register (param i32 i32 i64) (result i32)))
            (import "troupe_registry" "whereis" (func $whereis (param i32 i32 i32) (result i32)))
            (import "troupe_registry" "send" (func $send (param i32 i32 i64 i32 i32) (result i32)))
            (data (i32.const 100) "db")
            (func (export "register_db") (result i32) (call $register (i32.const 100) (i32.const 2) (i64.const 7)))
            (func (export "register_1025") (result i32) (call $register (i32.const 100) (i32.const 1025) (i64.const 7)))
            (func (export "register_1025_past_end") (result i32) (call $register (i32.const 65000) (i32.const 1025) (i64.const 7)))
            (func (export "whereis_db_unaligned") (result i32) (call $whereis (i32.const 100) (i32.const 2) (i32.const 3)))
            (func (export "whereis_d") (result i32) (call $whereis (i32.const 100) (i32.const 1) (i32.const 16)))
            (func (export "whereis_out_past_end") (result i32) (call $whereis (i32.const 100) (i32.const 2) (i32.const 65530)))
            (func (export "send_to_db") (result i32) (call $send (i32.const 100) (i32.const 2) (i64.const 4) (i32.const 100) (i32.const 2)))
            "#,
        ),
        Fake::default(),
    )
    .await;
    assert_eq!(g.code("register_1025").await, err::INVALID_ARGUMENT);
    assert!(g
        .fake()
        .last_error
        .contains("at most 1024 bytes; this one is 1025"));
    assert!(g
        .trap("register_1025_past_end")
        .await
        .contains("troupe_registry::register: name at 0xfde8"));
    assert_eq!(g.code("register_db").await, err::OK);
    assert_eq!(g.code("register_db").await, err::ALREADY_REGISTERED);

    assert_eq!(g.code("whereis_db_unaligned").await, err::OK);
    assert_eq!(g.u64_at(3), 7);
    assert_eq!(g.code("whereis_d").await, err::NOT_FOUND);
    assert_eq!(g.u64_at(16), 0, "nothing written for a name not found");
    assert!(g
        .trap("whereis_out_past_end")
        .await
        .contains("out_pid at 0xfffa with length 8"));

    assert_eq!(g.code("send_to_db").await, err::OK);
    let sent = g.fake().sent.lock().unwrap().clone();
    assert_eq!(sent, [(7, 4, b"db".to_vec())]);
}

#[tokio::test]
async fn spawn_decodes_its_arguments_and_checks_every_pointer_before_any_argument() {
    let mut g = Guest::new(
        &module(
            r#"
            (import "troupe_process" "config_new" (func $config_new (result i64)))
            (import "troupe_process" "config_set_args" (func $set_args (param i64 i32 i32) (result i32)))
            (import "troupe_process" "config_preopens_only" (func $preopens (param i64 i32 i32) (result i32)))
            (import "troupe_process" "spawn" (func $spawn (param i64 i64 i32 i32 i32 i32 i32 i32 i32) (result i32)))
            (global $config (mut i64) (i64.const 0))
            (data (i32.const 0) "a\00b\00")
            (data (i32.const 16) "/data\00")
            (data (i32.const 32) "/etc\00")
            (data (i32.const 48) "work")
            (data (i32.const 64) "\01\00\00\00\00\00\00\00\fe\ff\ff\ff\ff\ff\ff\ff")
            (data (i32.const 96) "hello")
            (data (i32.const 112) "\ff")
            (func (export "config_new") (result i64) (global.set $config (call $config_new)) (global.get $config))
            (func (export "args") (result i32) (call $set_args (global.get $config) (i32.const 0) (i32.const 4)))
            (func (export "args_without_nul") (result i32) (call $set_args (global.get $config) (i32.const 0) (i32.const 3)))
            (func (export "preopens_data") (result i32) (call $preopens (global.get $config) (i32.const 16) (i32.const 6)))
            (func (export "preopens_etc") (result i32) (call $preopens (global.get $config) (i32.const 32) (i32.const 5)))
            (func (export "args_unknown_config") (result i32) (call $set_args (i64.const 999) (i32.const 0) (i32.const 4)))
            (func (export "spawn") (result i32)
              (call $spawn (i64.const 7) (global.get $config) (i32.const 48) (i32.const 4)
                (i32.const 64) (i32.const 2) (i32.const 96) (i32.const 5) (i32.const 200)))
            (func (export "spawn_17_params") (result i32)
              (call $spawn (i64.const 7) (i64.const 0) (i32.const 48) (i32.const 4)
                (i32.const 64) (i32.const 17) (i32.const 96) (i32.const 5) (i32.const 200)))
            (func (export "spawn_bad_entry_and_arg_past_end") (result i32)
              (call $spawn (i64.const 7) (i64.const 0) (i32.const 112) (i32.const 1)
                (i32.const 64) (i32.const 2) (i32.const 65535) (i32.const 5) (i32.const 200)))
            (func (export "spawn_unknown_config") (result i32)
              (call $spawn (i64.const 7) (i64.const 999) (i32.const 48) (i32.const 4)
                (i32.const 64) (i32.const 2) (i32.const 96) (i32.const 5) (i32.const 200)))
            "#,
        ),
        Fake::default(),
    )
    .await;
    let config = g.call("config_new").await.unwrap();
    assert_ne!(config, 0);
    assert_eq!(g.code("args").await, err::OK);
    assert_eq!(g.code("args_without_nul").await, err::INVALID_ARGUMENT);
    assert!(
        g.fake().last_error.contains("must end with a NUL"),
        "{}",
        g.fake().last_error
    );
    assert_eq!(g.code("preopens_data").await, err::OK);
    // A directory the parent does not hold cannot be given.
    assert_eq!(g.code("preopens_etc").await, err::PERMISSION_DENIED);
    assert_eq!(g.code("args_unknown_config").await, err::INVALID_ARGUMENT);

    assert_eq!(g.code("spawn").await, err::OK);
    assert_eq!(g.u64_at(200), 100, "the child's pid");
    let request = &g.fake().spawned[0];
    assert_eq!((request.module, request.entry.as_str()), (7, "work"));
    assert_eq!(request.params, [1, -2]);
    assert_eq!(request.arg, b"hello");
    assert_eq!(
        request.config.args,
        Some(vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(request.config.preopens, Some(vec!["/data".to_string()]));

    assert_eq!(g.code("spawn_17_params").await, err::INVALID_ARGUMENT);
    assert!(g
        .fake()
        .last_error
        .contains("17 entry parameters given; at most 16"));
    // A bad entry name (a code) and an argument out of bounds (a trap):
    // the trap wins, and no spawn is asked for.
    assert!(g
        .trap("spawn_bad_entry_and_arg_past_end")
        .await
        .contains("troupe_process::spawn: arg at 0xffff"));
    assert_eq!(g.code("spawn_unknown_config").await, err::INVALID_ARGUMENT);
    assert_eq!(g.fake().spawned.len(), 1);
}

#[tokio::test]
async fn exit_reasons_are_decoded_and_a_bad_one_is_refused_or_traps() {
    let mut long = ExitReason::Custom(vec![1; 5000]).encode();
    long.truncate(4097);
    let mut g = Guest::new(
        &module(&format!(
            r#"
            (import "troupe_process" "send_exit" (func $send_exit (param i64 i32 i32) (result i32)))
            (import "troupe_process" "exit" (func $exit (param i32 i32)))
            (data (i32.const 0) "\07\00\00\00")
            (data (i32.const 16) "\63\00\00\00")
            (data (i32.const 32) "\01\00\00\00\ff\00\00\00\00\00\00\00")
            (func (export "shutdown_3") (result i32) (call $send_exit (i64.const 3) (i32.const 0) (i32.const 4)))
            (func (export "kind_99") (result i32) (call $send_exit (i64.const 3) (i32.const 16) (i32.const 4)))
            (func (export "trap_longer_than_its_bytes") (result i32) (call $send_exit (i64.const 3) (i32.const 32) (i32.const 12)))
            (func (export "too_long") (result i32) (call $send_exit (i64.const 3) (i32.const 1024) (i32.const {n})))
            (func (export "exit_shutdown") (call $exit (i32.const 0) (i32.const 4)))
            (func (export "exit_kind_99") (call $exit (i32.const 16) (i32.const 4)))
            "#,
            n = long.len()
        )),
        Fake::default(),
    )
    .await;
    assert_eq!(g.code("shutdown_3").await, err::OK);
    assert_eq!(g.fake().exits_sent, [(3, ExitReason::Shutdown)]);
    assert_eq!(g.code("kind_99").await, err::INVALID_ARGUMENT);
    assert!(
        g.fake().last_error.starts_with("bad exit reason"),
        "{}",
        g.fake().last_error
    );
    assert_eq!(
        g.code("trap_longer_than_its_bytes").await,
        err::INVALID_ARGUMENT
    );
    g.write(1024, &long);
    assert_eq!(g.code("too_long").await, err::INVALID_ARGUMENT);
    assert!(g
        .fake()
        .last_error
        .contains("at most 4096 bytes; this one is 4097"));
    assert_eq!(g.fake().exits_sent.len(), 1, "no bad reason was sent");

    // `exit` does not return: it unwinds with the reason, or traps if the
    // reason is bad.
    let exit = g
        .instance_func("exit_shutdown")
        .call_async(&mut g.store, &[], &mut [])
        .await
        .unwrap_err();
    assert!(
        matches!(
            exit.downcast_ref::<GuestExit>(),
            Some(GuestExit(ExitReason::Shutdown))
        ),
        "{exit:?}"
    );
    let trap = g.trap("exit_kind_99").await;
    assert!(
        trap.contains("troupe_process::exit: bad exit reason"),
        "{trap}"
    );
}
