// Package bincode encodes and decodes Go values in the layout of Rust's
// bincode 1.3 as Troupe's Rust SDK uses it (little-endian, fixed-width
// integers, u64 lengths, trailing bytes rejected), so that Go and Rust
// processes can exchange typed messages.
//
// # Types
//
//	Rust type                        Go type
//	-------------------------------  ------------------------------------------
//	bool                             bool (one byte, 0 or 1)
//	u8 u16 u32 u64, i8 … i64         uint8 … uint64, int8 … int64
//	usize, isize                     uint, int (always 8 bytes, as in bincode)
//	f32, f64                         float32, float64
//	char                             Char (UTF-8, 1 to 4 bytes)
//	String, &str                     string (u64 length, UTF-8 bytes)
//	Vec<u8>                          []byte
//	Vec<T>, VecDeque<T>, HashSet<T>  []T (u64 length, then the elements)
//	[T; N], tuples, structs          [N]T, structs (fields in order, no length)
//	(), unit structs                 struct{}
//	Option<T>                        Option[T] (u8 0, or u8 1 then T)
//	HashMap<K, V>, BTreeMap<K, V>    map[K]V (u64 length, then key/value pairs)
//	enum                             interface + RegisterEnum (u32 index, content)
//	enum of unit variants only       uint32 (the variant index)
//	newtype struct, Pid              the inner type (e.g. type Pid uint64)
//
// Struct fields are encoded in declaration order; unexported fields and
// fields tagged `bincode:"-"` are skipped. Pointers are followed (a nil
// pointer is an encoding error): use Option for Rust's Option. u128 and i128
// are not supported. Types can take over their own encoding by implementing
// Marshaler and Unmarshaler.
//
// Decoding checks what Rust's decoder checks: booleans are 0 or 1, Option
// tags 0 or 1, strings and chars valid UTF-8, enum variant indexes known,
// and Unmarshal rejects trailing bytes.
package bincode

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync/atomic"
	"unicode/utf8"
)

// Marshaler is implemented by types that encode themselves.
type Marshaler interface {
	MarshalBincode(e *Encoder) error
}

// Unmarshaler is implemented by types that decode themselves (with a
// pointer receiver).
type Unmarshaler interface {
	UnmarshalBincode(d *Decoder) error
}

// Marshal encodes v.
func Marshal(v any) ([]byte, error) {
	return Append(nil, v)
}

// Append encodes v at the end of dst and returns the extended slice (so a
// caller can reuse a buffer: Append(buf[:0], v)).
func Append(dst []byte, v any) ([]byte, error) {
	// Common types without reflection (the general path gives the same bytes).
	switch x := v.(type) {
	case uint64:
		return binary.LittleEndian.AppendUint64(dst, x), nil
	case int64:
		return binary.LittleEndian.AppendUint64(dst, uint64(x)), nil
	case uint32:
		return binary.LittleEndian.AppendUint32(dst, x), nil
	case int32:
		return binary.LittleEndian.AppendUint32(dst, uint32(x)), nil
	case struct{}:
		return dst, nil
	}
	e := spareEncoder.Swap(nil)
	if e == nil {
		e = new(Encoder)
	}
	e.buf = dst
	err := e.Encode(v)
	out := e.buf
	e.buf = nil
	spareEncoder.Store(e)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// A spare encoder and decoder, reused to spare an allocation per message
// (they escape to the heap through the codecs).
var (
	spareEncoder atomic.Pointer[Encoder]
	spareDecoder atomic.Pointer[Decoder]
)

// Unmarshal decodes data into the value v points to. All of data must be
// used: trailing bytes are an error, as in the Rust SDK.
func Unmarshal(data []byte, v any) error {
	// Common types without reflection (the general path does the same).
	switch p := v.(type) {
	case *uint64:
		if len(data) == 8 {
			*p = binary.LittleEndian.Uint64(data)
			return nil
		}
	case *int64:
		if len(data) == 8 {
			*p = int64(binary.LittleEndian.Uint64(data))
			return nil
		}
	case *uint32:
		if len(data) == 4 {
			*p = binary.LittleEndian.Uint32(data)
			return nil
		}
	case *struct{}:
		if len(data) == 0 {
			return nil
		}
	}
	d := spareDecoder.Swap(nil)
	if d == nil {
		d = new(Decoder)
	}
	*d = Decoder{data: data}
	err := d.Decode(v)
	n := d.Remaining()
	*d = Decoder{}
	spareDecoder.Store(d)
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("bincode: %d trailing bytes after the value", n)
	}
	return nil
}

// Encoder appends encoded values to a buffer.
type Encoder struct {
	buf []byte
}

// NewEncoder returns an encoder appending to buf.
func NewEncoder(buf []byte) *Encoder { return &Encoder{buf: buf} }

// Bytes is what has been encoded so far.
func (e *Encoder) Bytes() []byte { return e.buf }

// Bool appends a bool (one byte).
func (e *Encoder) Bool(v bool) {
	if v {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

// U8 appends a u8.
func (e *Encoder) U8(v uint8) { e.buf = append(e.buf, v) }

// U16 appends a little-endian u16.
func (e *Encoder) U16(v uint16) { e.buf = binary.LittleEndian.AppendUint16(e.buf, v) }

// U32 appends a little-endian u32.
func (e *Encoder) U32(v uint32) { e.buf = binary.LittleEndian.AppendUint32(e.buf, v) }

// U64 appends a little-endian u64.
func (e *Encoder) U64(v uint64) { e.buf = binary.LittleEndian.AppendUint64(e.buf, v) }

// I64 appends a little-endian i64.
func (e *Encoder) I64(v int64) { e.U64(uint64(v)) }

// F32 appends an f32.
func (e *Encoder) F32(v float32) { e.U32(math.Float32bits(v)) }

// F64 appends an f64.
func (e *Encoder) F64(v float64) { e.U64(math.Float64bits(v)) }

// Len appends a length (u64).
func (e *Encoder) Len(n int) { e.U64(uint64(n)) }

// String appends a string: its length (u64), then its bytes, which must be
// valid UTF-8 (Rust's decoder rejects anything else).
func (e *Encoder) String(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("bincode: string is not valid UTF-8")
	}
	e.Len(len(s))
	e.buf = append(e.buf, s...)
	return nil
}

// ByteSlice appends a Vec<u8>: its length (u64), then the bytes.
func (e *Encoder) ByteSlice(b []byte) {
	e.Len(len(b))
	e.buf = append(e.buf, b...)
}

// Raw appends bytes as they are (no length).
func (e *Encoder) Raw(b []byte) { e.buf = append(e.buf, b...) }

// Variant appends an enum's variant index (u32).
func (e *Encoder) Variant(index uint32) { e.U32(index) }

// Encode appends any supported value.
func (e *Encoder) Encode(v any) error {
	if v == nil {
		return errors.New("bincode: cannot encode nil")
	}
	return e.value(reflect.ValueOf(v))
}

// Decoder reads encoded values from a byte slice.
type Decoder struct {
	data []byte
	off  int
}

// NewDecoder returns a decoder reading data.
func NewDecoder(data []byte) *Decoder { return &Decoder{data: data} }

// Remaining is the number of bytes not read yet.
func (d *Decoder) Remaining() int { return len(d.data) - d.off }

var errEOF = errors.New("bincode: unexpected end of input")

func (d *Decoder) take(n int) ([]byte, error) {
	if n < 0 || n > d.Remaining() {
		return nil, errEOF
	}
	b := d.data[d.off : d.off+n]
	d.off += n
	return b, nil
}

// Bool reads a bool (a byte that must be 0 or 1).
func (d *Decoder) Bool() (bool, error) {
	b, err := d.U8()
	if err != nil {
		return false, err
	}
	switch b {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, fmt.Errorf("bincode: invalid bool encoding %d", b)
}

// U8 reads a u8.
func (d *Decoder) U8() (uint8, error) {
	b, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// U16 reads a little-endian u16.
func (d *Decoder) U16() (uint16, error) {
	b, err := d.take(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

// U32 reads a little-endian u32.
func (d *Decoder) U32() (uint32, error) {
	b, err := d.take(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// U64 reads a little-endian u64.
func (d *Decoder) U64() (uint64, error) {
	b, err := d.take(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// I64 reads a little-endian i64.
func (d *Decoder) I64() (int64, error) {
	v, err := d.U64()
	return int64(v), err
}

// F32 reads an f32.
func (d *Decoder) F32() (float32, error) {
	v, err := d.U32()
	return math.Float32frombits(v), err
}

// F64 reads an f64.
func (d *Decoder) F64() (float64, error) {
	v, err := d.U64()
	return math.Float64frombits(v), err
}

// Len reads a length (u64) of items of at least minSize bytes each, and
// checks that that many could be in the rest of the input.
func (d *Decoder) Len(minSize int) (int, error) {
	n, err := d.U64()
	if err != nil {
		return 0, err
	}
	limit := uint64(d.Remaining())
	if minSize > 0 {
		limit /= uint64(minSize)
	} else {
		limit = 1 << 24 // zero-sized items: no input to bound them
	}
	if n > limit {
		return 0, fmt.Errorf("bincode: length %d is more than the input holds", n)
	}
	return int(n), nil
}

// String reads a string (u64 length, UTF-8 bytes).
func (d *Decoder) String() (string, error) {
	n, err := d.Len(1)
	if err != nil {
		return "", err
	}
	b, err := d.take(n)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errors.New("bincode: string is not valid UTF-8")
	}
	return string(b), nil
}

// ByteSlice reads a Vec<u8> (u64 length, bytes) into a new slice.
func (d *Decoder) ByteSlice() ([]byte, error) {
	n, err := d.Len(1)
	if err != nil {
		return nil, err
	}
	b, err := d.take(n)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// Variant reads an enum's variant index (u32).
func (d *Decoder) Variant() (uint32, error) { return d.U32() }

// Decode reads a value into what v points to.
func (d *Decoder) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("bincode: decode needs a non-nil pointer, not %T", v)
	}
	return d.value(rv.Elem())
}

// Char is a Rust char: a Unicode scalar value, encoded as its UTF-8 bytes
// (1 to 4, no length), as bincode 1.3 does.
type Char rune

// MarshalBincode encodes the char as UTF-8.
func (c Char) MarshalBincode(e *Encoder) error {
	r := rune(c)
	if !utf8.ValidRune(r) {
		return fmt.Errorf("bincode: %#x is not a Unicode scalar value", int32(r))
	}
	e.buf = utf8.AppendRune(e.buf, r)
	return nil
}

// UnmarshalBincode decodes a UTF-8 encoded char.
func (c *Char) UnmarshalBincode(d *Decoder) error {
	first, err := d.U8()
	if err != nil {
		return err
	}
	width := 0
	switch {
	case first < 0x80:
		width = 1
	case first&0xE0 == 0xC0:
		width = 2
	case first&0xF0 == 0xE0:
		width = 3
	case first&0xF8 == 0xF0:
		width = 4
	default:
		return fmt.Errorf("bincode: invalid char encoding (first byte %#x)", first)
	}
	rest, err := d.take(width - 1)
	if err != nil {
		return err
	}
	b := append([]byte{first}, rest...)
	r, size := utf8.DecodeRune(b)
	if r == utf8.RuneError || size != width {
		return fmt.Errorf("bincode: invalid char encoding % x", b)
	}
	*c = Char(r)
	return nil
}

// Option is Rust's Option<T>: None is the byte 0, Some(v) the byte 1 then v.
type Option[T any] struct {
	Value T
	Valid bool // false: None
}

// Some is Option's Some(v).
func Some[T any](v T) Option[T] { return Option[T]{Value: v, Valid: true} }

// None is Option's None.
func None[T any]() Option[T] { return Option[T]{} }

// Get returns the value and whether there is one.
func (o Option[T]) Get() (T, bool) { return o.Value, o.Valid }

// String shows Some(v) or None.
func (o Option[T]) String() string {
	if !o.Valid {
		return "None"
	}
	return fmt.Sprintf("Some(%v)", o.Value)
}

// MarshalBincode encodes the option.
func (o Option[T]) MarshalBincode(e *Encoder) error {
	if !o.Valid {
		e.U8(0)
		return nil
	}
	e.U8(1)
	return e.value(reflect.ValueOf(&o.Value).Elem())
}

// UnmarshalBincode decodes an option.
func (o *Option[T]) UnmarshalBincode(d *Decoder) error {
	tag, err := d.U8()
	if err != nil {
		return err
	}
	switch tag {
	case 0:
		*o = Option[T]{}
		return nil
	case 1:
		o.Valid = true
		return d.value(reflect.ValueOf(&o.Value).Elem())
	}
	return fmt.Errorf("bincode: invalid Option tag %d", tag)
}
