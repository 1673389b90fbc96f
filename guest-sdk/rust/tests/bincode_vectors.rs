//! The bincode test vectors shared with the Go SDK
//! (`guest-sdk/testdata/bincode-vectors.json`): every value here must encode
//! to its vector's bytes with the SDK's codec, and the bytes must decode to
//! the value. The Go SDK checks the same file (`guest-sdk/go/bincode`), so a
//! Go and a Rust process agree on every layout listed.
//!
//! `TROUPE_BLESS=1 cargo test --test bincode_vectors` rewrites the file from
//! the Rust encodings (the reference); review the diff.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use troupe::abi::tag;
use troupe::{decode, encode, Pid, Reply};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Circle(f64),
    Rect { w: f32, h: f32 },
    Empty,
    Poly(Vec<Point>),
    Pair(u8, String),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Item {
    sku: String,
    qty: u32,
    price: f64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Order {
    id: u64,
    customer: String,
    items: Vec<Item>,
    note: Option<String>,
    express: bool,
    shape: Shape,
    tags: BTreeMap<String, u32>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct UnitStruct;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Newtype(u16);

/// One vector: its name, the Rust type (for readers), and its bytes.
struct Vector {
    name: &'static str,
    rust: &'static str,
    bytes: Vec<u8>,
}

/// Encodes `value`, checks that the bytes decode back to it, and records
/// the vector.
fn typed<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    out: &mut Vec<Vector>,
    name: &'static str,
    rust: &'static str,
    value: T,
) {
    let bytes = encode(&value);
    assert_eq!(
        bincode::serialize(&value).unwrap(),
        bytes,
        "{name}: the SDK's codec is plain bincode 1.3"
    );
    let back: T = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(back, value, "{name}: round trip");
    out.push(Vector { name, rust, bytes });
}

fn vectors() -> Vec<Vector> {
    let mut v = Vec::new();
    typed(&mut v, "bool_false", "bool", false);
    typed(&mut v, "bool_true", "bool", true);
    typed(&mut v, "u8", "u8", 200u8);
    typed(&mut v, "u16", "u16", 0x0102u16);
    typed(&mut v, "u32", "u32", 0x0102_0304u32);
    typed(&mut v, "u64", "u64", 0x0102_0304_0506_0708u64);
    typed(&mut v, "u64_max", "u64", u64::MAX);
    typed(&mut v, "i8", "i8", -2i8);
    typed(&mut v, "i16", "i16", -300i16);
    typed(&mut v, "i32_min", "i32", i32::MIN);
    typed(&mut v, "i64", "i64", -5i64);
    typed(&mut v, "i64_min", "i64", i64::MIN);
    typed(&mut v, "usize", "usize", 7usize);
    typed(&mut v, "f32", "f32", 1.5f32);
    typed(&mut v, "f64", "f64", -0.1f64);
    typed(&mut v, "f64_inf", "f64", f64::INFINITY);
    typed(&mut v, "char_1", "char", 'a');
    typed(&mut v, "char_2", "char", 'é');
    typed(&mut v, "char_3", "char", '✓');
    typed(&mut v, "char_4", "char", '🦀');
    typed(&mut v, "string_empty", "String", String::new());
    typed(&mut v, "string", "String", "héllo, wörld ✓".to_string());
    typed(&mut v, "bytes", "Vec<u8>", vec![0u8, 1, 2, 255]);
    typed(&mut v, "vec_u32", "Vec<u32>", vec![1u32, 2, 3]);
    typed(
        &mut v,
        "vec_string",
        "Vec<String>",
        vec!["a".to_string(), "bc".into()],
    );
    typed(&mut v, "vec_empty", "Vec<u64>", Vec::<u64>::new());
    typed(&mut v, "option_none", "Option<u32>", None::<u32>);
    typed(&mut v, "option_some", "Option<u32>", Some(7u32));
    typed(
        &mut v,
        "option_string",
        "Option<String>",
        Some("x".to_string()),
    );
    typed(
        &mut v,
        "option_nested",
        "Option<Option<u8>>",
        Some(Some(1u8)),
    );
    typed(
        &mut v,
        "tuple",
        "(u8, String, i64)",
        (1u8, "two".to_string(), -3i64),
    );
    typed(&mut v, "unit", "()", ());
    typed(&mut v, "unit_struct", "struct UnitStruct;", UnitStruct);
    typed(&mut v, "newtype", "struct Newtype(u16)", Newtype(9));
    typed(&mut v, "array", "[u16; 3]", [1u16, 2, 3]);
    typed(
        &mut v,
        "struct",
        "struct Point { x: i32, y: i32 }",
        Point { x: -1, y: 2 },
    );
    typed(
        &mut v,
        "enum_newtype",
        "Shape::Circle(f64)",
        Shape::Circle(2.5),
    );
    typed(
        &mut v,
        "enum_struct",
        "Shape::Rect { w: f32, h: f32 }",
        Shape::Rect { w: 1.0, h: 2.0 },
    );
    typed(&mut v, "enum_unit", "Shape::Empty", Shape::Empty);
    typed(
        &mut v,
        "enum_vec",
        "Shape::Poly(Vec<Point>)",
        Shape::Poly(vec![Point { x: 0, y: 0 }, Point { x: 1, y: 1 }]),
    );
    typed(
        &mut v,
        "enum_tuple",
        "Shape::Pair(u8, String)",
        Shape::Pair(4, "four".into()),
    );
    typed(
        &mut v,
        "map",
        "BTreeMap<String, u32>",
        BTreeMap::from([("a".to_string(), 1u32), ("b".to_string(), 2)]),
    );
    typed(
        &mut v,
        "nested",
        "Order",
        Order {
            id: 77,
            customer: "Zoë".into(),
            items: vec![
                Item {
                    sku: "tea".into(),
                    qty: 2,
                    price: 3.25,
                },
                Item {
                    sku: "cup".into(),
                    qty: 1,
                    price: 9.5,
                },
            ],
            note: Some("fragile".into()),
            express: true,
            shape: Shape::Rect { w: 0.5, h: 4.0 },
            tags: BTreeMap::from([("gift".to_string(), 1u32)]),
        },
    );
    typed(&mut v, "pid", "troupe::Pid", Pid(42));

    // A Reply cannot be built outside the SDK: its vector is the documented
    // layout (pid, then tag), checked by decoding it as a Reply.
    let reply_tag = tag::REPLY_BASE + 3;
    let bytes = encode(&(5u64, reply_tag));
    let reply: Reply<u64> = decode(&bytes).unwrap();
    assert_eq!((reply.pid(), reply.tag()), (Pid(5), reply_tag));
    assert_eq!(encode(&reply), bytes);
    v.push(Vector {
        name: "reply",
        rust: "troupe::Reply<u64>",
        bytes,
    });
    v
}

fn path() -> PathBuf {
    // At run time first: a shared target dir can hold a binary compiled in another clone.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../testdata/bincode-vectors.json")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn rust_encodings_match_the_shared_vectors() {
    let vectors = vectors();
    if std::env::var_os("TROUPE_BLESS").is_some() {
        let list: Vec<Value> = vectors
            .iter()
            .map(|v| json!({ "name": v.name, "rust": v.rust, "hex": hex(&v.bytes) }))
            .collect();
        let doc = json!({
            "about": "bincode 1.3 (fixint, little-endian) encodings shared by the Rust and Go SDKs: \
                      guest-sdk/rust/tests/bincode_vectors.rs and guest-sdk/go/bincode check them. \
                      Regenerate with TROUPE_BLESS=1 cargo test --test bincode_vectors in guest-sdk/rust.",
            "vectors": list,
        });
        let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        std::fs::write(path(), text).unwrap();
    }
    let text = std::fs::read_to_string(path())
        .unwrap_or_else(|e| panic!("read {}: {e}", path().display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let file: Vec<(String, String, String)> = doc["vectors"]
        .as_array()
        .expect("a \"vectors\" array")
        .iter()
        .map(|v| {
            let field = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{v}: no {k}"));
            (
                field("name").into(),
                field("rust").into(),
                field("hex").into(),
            )
        })
        .collect();
    assert_eq!(
        file.len(),
        vectors.len(),
        "the file and the test list different vectors"
    );
    for (v, (name, rust, hex_bytes)) in vectors.iter().zip(&file) {
        assert_eq!(v.name, name, "vectors out of order");
        assert_eq!(v.rust, rust, "{name}: type");
        assert_eq!(hex(&v.bytes), *hex_bytes, "{name}: Rust encodes otherwise");
    }
}
