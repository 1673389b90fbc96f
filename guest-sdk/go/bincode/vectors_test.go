package bincode_test

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"troupe.dev/troupe/bincode"
)

// The Go mirrors of the Rust types in guest-sdk/rust/tests/bincode_vectors.rs.

type Point struct{ X, Y int32 }

// Shape is the Rust enum Shape { Circle(f64), Rect { w: f32, h: f32 },
// Empty, Poly(Vec<Point>), Pair(u8, String) }.
type Shape interface{ isShape() }

type (
	Circle float64
	Rect   struct{ W, H float32 }
	Empty  struct{}
	Poly   []Point
	Pair   struct {
		A uint8
		B string
	}
)

func (Circle) isShape() {}
func (Rect) isShape()   {}
func (Empty) isShape()  {}
func (Poly) isShape()   {}
func (Pair) isShape()   {}

func init() {
	bincode.RegisterEnum[Shape](Circle(0), Rect{}, Empty{}, Poly(nil), Pair{})
}

type Item struct {
	Sku   string
	Qty   uint32
	Price float64
}

type Order struct {
	ID       uint64
	Customer string
	Items    []Item
	Note     bincode.Option[string]
	Express  bool
	Shape    Shape
	Tags     map[string]uint32
	internal int // unexported: not encoded
}

type Reply struct {
	Pid uint64
	Tag uint64
}

type Tuple struct {
	A uint8
	B string
	C int64
}

// goValues are the Go values of the vectors, by name. Each must encode to
// the vector's bytes and decode from them to an equal value.
var goValues = map[string]any{
	"bool_false":    false,
	"bool_true":     true,
	"u8":            uint8(200),
	"u16":           uint16(0x0102),
	"u32":           uint32(0x01020304),
	"u64":           uint64(0x0102030405060708),
	"u64_max":       uint64(math.MaxUint64),
	"i8":            int8(-2),
	"i16":           int16(-300),
	"i32_min":       int32(math.MinInt32),
	"i64":           int64(-5),
	"i64_min":       int64(math.MinInt64),
	"usize":         uint(7),
	"f32":           float32(1.5),
	"f64":           -0.1,
	"f64_inf":       math.Inf(1),
	"char_1":        bincode.Char('a'),
	"char_2":        bincode.Char('é'),
	"char_3":        bincode.Char('✓'),
	"char_4":        bincode.Char('🦀'),
	"string_empty":  "",
	"string":        "héllo, wörld ✓",
	"bytes":         []byte{0, 1, 2, 255},
	"vec_u32":       []uint32{1, 2, 3},
	"vec_string":    []string{"a", "bc"},
	"vec_empty":     []uint64{},
	"option_none":   bincode.None[uint32](),
	"option_some":   bincode.Some[uint32](7),
	"option_string": bincode.Some("x"),
	"option_nested": bincode.Some(bincode.Some[uint8](1)),
	"tuple":         Tuple{1, "two", -3},
	"unit":          struct{}{},
	"unit_struct":   struct{}{},
	"newtype":       uint16(9),
	"array":         [3]uint16{1, 2, 3},
	"struct":        Point{-1, 2},
	"enum_newtype":  Circle(2.5),
	"enum_struct":   Rect{1, 2},
	"enum_unit":     Empty{},
	"enum_vec":      Poly{{0, 0}, {1, 1}},
	"enum_tuple":    Pair{4, "four"},
	"map":           map[string]uint32{"b": 2, "a": 1},
	"nested": Order{
		ID:       77,
		Customer: "Zoë",
		Items:    []Item{{"tea", 2, 3.25}, {"cup", 1, 9.5}},
		Note:     bincode.Some("fragile"),
		Express:  true,
		Shape:    Rect{0.5, 4},
		Tags:     map[string]uint32{"gift": 1},
	},
	"pid":   uint64(42),
	"reply": Reply{5, 1<<62 + 3},
}

type vector struct {
	Name, Rust, Hex string
	bytes           []byte
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "bincode-vectors.json")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Vectors []vector }
	if err := json.Unmarshal(text, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(doc.Vectors) < 40 {
		t.Fatalf("%s has only %d vectors", path, len(doc.Vectors))
	}
	for i := range doc.Vectors {
		v := &doc.Vectors[i]
		if v.bytes, err = hex.DecodeString(v.Hex); err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
	}
	return doc.Vectors
}

func TestGoEncodesTheSharedVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		value, ok := goValues[v.Name]
		if !ok {
			t.Errorf("vector %s (%s) has no Go value", v.Name, v.Rust)
			continue
		}
		got, err := bincode.Marshal(value)
		if err != nil {
			t.Errorf("%s: Marshal(%#v): %v", v.Name, value, err)
			continue
		}
		if hex.EncodeToString(got) != v.Hex {
			t.Errorf("%s (%s): Go encodes %x, Rust %s", v.Name, v.Rust, got, v.Hex)
		}
	}
}

func TestGoDecodesTheSharedVectors(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range loadVectors(t) {
		seen[v.Name] = true
		want, ok := goValues[v.Name]
		if !ok {
			continue // reported by TestGoEncodesTheSharedVectors
		}
		got := reflect.New(reflect.TypeOf(want))
		if err := bincode.Unmarshal(v.bytes, got.Interface()); err != nil {
			t.Errorf("%s (%s): Unmarshal %s: %v", v.Name, v.Rust, v.Hex, err)
			continue
		}
		if !reflect.DeepEqual(got.Elem().Interface(), want) {
			t.Errorf("%s: decoded %#v, want %#v", v.Name, got.Elem().Interface(), want)
		}
	}
	for name := range goValues {
		if !seen[name] {
			t.Errorf("Go value %s has no vector in the file", name)
		}
	}
}

// A variant decodes into its enum's interface type too.
func TestEnumVectorsDecodeIntoTheInterface(t *testing.T) {
	for _, v := range loadVectors(t) {
		want, ok := goValues[v.Name].(Shape)
		if !ok {
			continue
		}
		var got Shape
		if err := bincode.Unmarshal(v.bytes, &got); err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decoded %#v, want %#v", v.Name, got, want)
		}
		// And a variant encodes the same through a pointer to the interface.
		b, err := bincode.Marshal(&got)
		if err != nil || hex.EncodeToString(b) != v.Hex {
			t.Errorf("%s: Marshal(&Shape) = %x, %v", v.Name, b, err)
		}
	}
}
