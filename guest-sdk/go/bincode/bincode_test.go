package bincode_test

import (
	"bytes"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"troupe.dev/troupe/bincode"
)

func TestDecodeRejectsWhatRustRejects(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		into any
		want string
	}{
		{"trailing bytes", []byte{1, 0, 0, 0, 9}, new(uint32), "trailing"},
		{"short input", []byte{1, 0, 0}, new(uint32), "end of input"},
		{"bool 2", []byte{2}, new(bool), "invalid bool"},
		{"option tag 2", []byte{2, 0, 0, 0, 0}, new(bincode.Option[uint32]), "invalid Option tag"},
		{"bad utf-8", []byte{1, 0, 0, 0, 0, 0, 0, 0, 0xff}, new(string), "UTF-8"},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 'a'}, new(string), "more than the input"},
		{"huge vec", []byte{0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, new([]uint32), "more than the input"},
		{"unknown variant", []byte{9, 0, 0, 0}, new(Shape), "out of range"},
		{"other variant", []byte{2, 0, 0, 0}, new(Circle), "expected variant 0"},
		{"bad char", []byte{0xff}, new(bincode.Char), "invalid char"},
		{"surrogate char", []byte{0xed, 0xa0, 0x80}, new(bincode.Char), "invalid char"},
		{"not a pointer", []byte{1}, uint8(0), "non-nil pointer"},
		{"interface not an enum", []byte{0, 0, 0, 0}, new(any), "not a registered enum"},
	}
	for _, c := range cases {
		err := bincode.Unmarshal(c.data, c.into)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestEncodeRejectsWhatRustCannotRead(t *testing.T) {
	var nilPoint *Point
	var nilShape Shape
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"bad utf-8", "\xff", "UTF-8"},
		{"nil", nil, "nil"},
		{"nil pointer", nilPoint, "nil"},
		{"nil enum", struct{ S Shape }{nilShape}, "nil"},
		{"any field", struct{ X any }{1}, "not a registered enum"},
		{"channel", make(chan int), "cannot encode"},
		{"bad char", bincode.Char(0xD800), "scalar"},
	}
	for _, c := range cases {
		_, err := bincode.Marshal(c.v)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestPointersAreFollowedAndFilled(t *testing.T) {
	p := &Point{3, 4}
	b, err := bincode.Marshal(&p)
	if err != nil || !bytes.Equal(b, []byte{3, 0, 0, 0, 4, 0, 0, 0}) {
		t.Fatalf("Marshal(**Point) = %x, %v", b, err)
	}
	var q *Point
	if err := bincode.Unmarshal(b, &q); err != nil || *q != *p {
		t.Fatalf("Unmarshal into *Point: %v, %v", q, err)
	}
}

// A type with its own encoding: a u64 stored as a decimal string in Go.
type Decimal string

func (d Decimal) MarshalBincode(e *bincode.Encoder) error {
	var n uint64
	for _, c := range d {
		n = n*10 + uint64(c-'0')
	}
	e.U64(n)
	return nil
}

func (d *Decimal) UnmarshalBincode(dec *bincode.Decoder) error {
	n, err := dec.U64()
	if err != nil {
		return err
	}
	var s []byte
	for ; n > 0; n /= 10 {
		s = append([]byte{byte('0' + n%10)}, s...)
	}
	*d = Decimal(s)
	return nil
}

func TestMarshalerAndUnmarshaler(t *testing.T) {
	type S struct {
		A Decimal
		B []Decimal
	}
	in := S{"12", []Decimal{"3"}}
	b, err := bincode.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{12, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("got %x, want %x", b, want)
	}
	var out S
	if err := bincode.Unmarshal(b, &out); err != nil || out.A != "12" || out.B[0] != "3" {
		t.Fatalf("got %#v, %v", out, err)
	}
}

func TestSkippedFieldsAndAppend(t *testing.T) {
	type S struct {
		A      uint8
		Secret string `bincode:"-"`
		hidden int
		B      uint8
	}
	buf := make([]byte, 0, 16)
	buf = append(buf, 0xaa)
	out, err := bincode.Append(buf, S{1, "x", 2, 3})
	if err != nil || !bytes.Equal(out, []byte{0xaa, 1, 3}) {
		t.Fatalf("Append = %x, %v", out, err)
	}
}

func TestMapsEncodeInKeyOrder(t *testing.T) {
	m := map[int32]bool{3: true, -1: false, 2: true}
	b, err := bincode.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{3, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 2, 0, 0, 0, 1, 3, 0, 0, 0, 1}
	if !bytes.Equal(b, want) {
		t.Fatalf("got %x, want %x", b, want)
	}
}

type Dup interface{ isDup() }
type Dup2 interface{ isDup() }
type DupA struct{}
type DupB struct{}

func (DupA) isDup() {}
func (DupB) isDup() {}

var registerDup sync.Once

func TestRegisterEnumRefusesMistakes(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	mustPanic("not an interface", func() { bincode.RegisterEnum[int](1) })
	mustPanic("variant listed twice", func() { bincode.RegisterEnum[Dup](DupA{}, DupA{}) })
	registerDup.Do(func() { bincode.RegisterEnum[Dup](DupA{}) })
	mustPanic("variant of two enums", func() { bincode.RegisterEnum[Dup2](DupB{}, DupA{}) })
	// The refused registration left nothing behind.
	if _, err := bincode.Marshal(DupB{}); err != nil {
		t.Errorf("DupB: %v", err)
	} else if b, _ := bincode.Marshal(DupB{}); len(b) != 0 {
		t.Errorf("DupB was registered: %x", b)
	}
	mustPanic("twice", func() { bincode.RegisterEnum[Shape]() })
}

type Tree struct {
	V    int32
	Kids []Tree
	Next *Tree
}

func TestRecursiveTypes(t *testing.T) {
	in := Tree{V: 1, Kids: []Tree{{V: 2, Next: &Tree{V: 3}}}, Next: &Tree{V: 4}}
	// Tree { v: i32, kids: Vec<Tree>, next: Box<Tree> } would be infinite
	// in Rust without Option; a Go pointer is followed, so both are set.
	in.Kids[0].Next.Next = &Tree{V: 5}
	in.Kids[0].Next.Next.Next = nil
	if _, err := bincode.Marshal(in); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Fatalf("a nil pointer must not encode: %v", err)
	}
	type List struct {
		V    uint8
		Next []List
	}
	l := List{1, []List{{2, []List{{3, nil}}}}}
	b, err := bincode.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var back List
	if err := bincode.Unmarshal(b, &back); err != nil || back.Next[0].Next[0].V != 3 {
		t.Fatalf("%+v %v", back, err)
	}
}

// Variants that Go stores in an interface directly (pointer-shaped) or
// indirectly, and an enum with an empty interface type.
type Shaped interface{ isShaped() }

type (
	Spot        struct{ X, Y int32 }
	Boxed       struct{ P *Point }
	Single      [1]map[string]uint8
	Wide        struct{ A, B uint64 }
	ZeroVariant struct{}
)

func (*Spot) isShaped()       {}
func (Boxed) isShaped()       {}
func (Single) isShaped()      {}
func (Wide) isShaped()        {}
func (ZeroVariant) isShaped() {}

type Anything interface{}

type (
	AnyA uint16
	AnyB string
)

func init() {
	bincode.RegisterEnum[Shaped]((*Spot)(nil), Boxed{}, Single{}, Wide{}, ZeroVariant{})
	bincode.RegisterEnum[Anything](AnyA(0), AnyB(""))
}

func TestEnumVariantsOfEveryShapeDecodeIntoTheInterface(t *testing.T) {
	for _, in := range []Shaped{
		&Spot{1, 2}, Boxed{&Point{3, 4}}, Single{{"k": 5}}, Wide{6, 7}, ZeroVariant{},
	} {
		b, err := bincode.Marshal(&in)
		if err != nil {
			t.Fatalf("%#v: %v", in, err)
		}
		var out Shaped
		if err := bincode.Unmarshal(b, &out); err != nil {
			t.Fatalf("%#v: %v", in, err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Errorf("%#v came back as %#v", in, out)
		}
		// The decoded interface is an ordinary Go value.
		switch v := out.(type) {
		case *Spot:
			v.X++
		case Boxed:
			v.P.X++
		case Single:
			v[0]["k"]++
		case Wide, ZeroVariant:
		default:
			t.Errorf("unexpected dynamic type %T", out)
		}
	}
	for _, in := range []Anything{AnyA(9), AnyB("nine")} {
		b, err := bincode.Marshal(&in)
		if err != nil {
			t.Fatal(err)
		}
		var out Anything
		if err := bincode.Unmarshal(b, &out); err != nil || out != in {
			t.Errorf("%#v came back as %#v (%v)", in, out, err)
		}
	}
	runtime.GC() // the interface words written by the decoder hold up
}
