package bincode

import (
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Each type's encoder and decoder are built once, by reflection, and
// cached: encoding a value is then a cache look-up and direct calls.

type (
	encFn func(e *Encoder, v reflect.Value) error
	decFn func(d *Decoder, v reflect.Value) error
)

// codec is how one type is encoded. For an enum variant type, enc and dec
// include the variant index and content* do not; for other types they are
// the same.
type codec struct {
	enc, contentEnc encFn
	dec, contentDec decFn
	// minSize is the fewest bytes a value takes, to bound lengths read from
	// the input (0: unknown or zero-sized).
	minSize int
}

var (
	// codecs maps each type (by typeKey) to its complete *codec. It is
	// replaced, never changed, so reading it needs no lock.
	codecs atomic.Pointer[map[unsafe.Pointer]*codec]
	build  sync.Mutex // held while building codecs and registering enums
	// Under build: codecs being built (for recursive types), the enums.
	building = map[reflect.Type]*codec{}
	enums    = map[reflect.Type]*enumInfo{}   // interface type -> enum
	variants = map[reflect.Type]variantInfo{} // variant type -> enum, index
)

type enumInfo struct {
	iface    reflect.Type
	variants []reflect.Type
	index    map[reflect.Type]uint32
	// The interface words of each variant: its itab (or type, for an empty
	// interface), taken from the value given to RegisterEnum, and whether
	// the value itself is the data word (pointer-shaped types).
	tabs   []unsafe.Pointer
	direct []bool
}

// set stores the variant i value that p (a *variant) points to in dst, an
// addressable value of the enum's interface type, by writing the two
// interface words: reflect.Value.Set does the same through two more
// allocations and an itab look-up, which cost about 0.5 µs per message on
// wasm.
func (e *enumInfo) set(dst reflect.Value, i uint32, p unsafe.Pointer) {
	if e.direct[i] {
		p = *(*unsafe.Pointer)(p)
	}
	words := (*[2]unsafe.Pointer)(dst.Addr().UnsafePointer())
	words[0] = e.tabs[i]
	words[1] = p
}

// directIface reports whether Go stores a value of type t in an interface
// directly in its data word (the rule of the compiler's isdirectiface).
func directIface(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return true
	case reflect.Array:
		return t.Len() == 1 && directIface(t.Elem())
	case reflect.Struct:
		return t.NumField() == 1 && directIface(t.Field(0).Type)
	}
	return false
}

// typeKey identifies a type for the codec cache: the pointer inside the
// reflect.Type interface (always a *rtype), hashed much faster than the
// interface itself (about 20 ns against 200 ns on wasm).
func typeKey(t reflect.Type) unsafe.Pointer {
	return (*[2]unsafe.Pointer)(unsafe.Pointer(&t))[1]
}

type variantInfo struct {
	enum  *enumInfo
	index uint32
}

func (e *Encoder) value(v reflect.Value) error { return codecFor(v.Type()).enc(e, v) }

func (d *Decoder) value(v reflect.Value) error { return codecFor(v.Type()).dec(d, v) }

func codecFor(t reflect.Type) *codec {
	if m := codecs.Load(); m != nil {
		if c, ok := (*m)[typeKey(t)]; ok {
			return c
		}
	}
	build.Lock()
	defer build.Unlock()
	c := buildCodec(t)
	// Publish the codecs of this build only now that all are complete (a
	// recursive type's codec is used by those of its parts before it is
	// finished).
	next := map[unsafe.Pointer]*codec{}
	if m := codecs.Load(); m != nil {
		for k, c := range *m {
			next[k] = c
		}
	}
	for t, c := range building {
		next[typeKey(t)] = c
		delete(building, t)
	}
	codecs.Store(&next)
	return c
}

// buildCodec returns t's codec, building it (and those of the types it
// contains) if needed. Called with build held.
func buildCodec(t reflect.Type) *codec {
	if m := codecs.Load(); m != nil {
		if c, ok := (*m)[typeKey(t)]; ok {
			return c
		}
	}
	if c, ok := building[t]; ok {
		return c // built in this build, or a recursive type being built
	}
	c := &codec{}
	building[t] = c
	c.contentEnc, c.contentDec, c.minSize = contentCodec(t)
	c.enc, c.dec = c.contentEnc, c.contentDec
	if vi, ok := variants[t]; ok {
		c.enc, c.dec = variantCodec(t, vi, c)
		c.minSize += 4
	}
	return c
}

func variantCodec(t reflect.Type, vi variantInfo, c *codec) (encFn, decFn) {
	index := vi.index
	enc := func(e *Encoder, v reflect.Value) error {
		e.U32(index)
		return c.contentEnc(e, v)
	}
	dec := func(d *Decoder, v reflect.Value) error {
		got, err := d.U32()
		if err != nil {
			return err
		}
		if got != index {
			return fmt.Errorf("bincode: expected variant %d (%v) of %v, got variant %d",
				index, t, vi.enum.iface, got)
		}
		return c.contentDec(d, v)
	}
	return enc, dec
}

func errorCodec(err error) (encFn, decFn, int) {
	return func(*Encoder, reflect.Value) error { return err },
		func(*Decoder, reflect.Value) error { return err }, 0
}

var (
	marshalerType   = reflect.TypeOf((*Marshaler)(nil)).Elem()
	unmarshalerType = reflect.TypeOf((*Unmarshaler)(nil)).Elem()
)

// contentCodec builds the encoder and decoder of t's content.
func contentCodec(t reflect.Type) (encFn, decFn, int) {
	enc, encOK := marshalerEnc(t)
	dec, decOK := unmarshalerDec(t)
	switch {
	case encOK && decOK:
		return enc, dec, 0
	case encOK:
		return enc, func(*Decoder, reflect.Value) error {
			return fmt.Errorf("bincode: %v implements Marshaler but not Unmarshaler", t)
		}, 0
	case decOK:
		return func(*Encoder, reflect.Value) error {
			return fmt.Errorf("bincode: %v implements Unmarshaler but not Marshaler", t)
		}, dec, 0
	}
	switch t.Kind() {
	case reflect.Bool:
		return func(e *Encoder, v reflect.Value) error { e.Bool(v.Bool()); return nil },
			func(d *Decoder, v reflect.Value) error {
				b, err := d.Bool()
				v.SetBool(b)
				return err
			}, 1
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint,
		reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		return intCodec(t.Kind())
	case reflect.Float32:
		return func(e *Encoder, v reflect.Value) error { e.F32(float32(v.Float())); return nil },
			func(d *Decoder, v reflect.Value) error {
				f, err := d.F32()
				v.SetFloat(float64(f))
				return err
			}, 4
	case reflect.Float64:
		return func(e *Encoder, v reflect.Value) error { e.F64(v.Float()); return nil },
			func(d *Decoder, v reflect.Value) error {
				f, err := d.F64()
				v.SetFloat(f)
				return err
			}, 8
	case reflect.String:
		return func(e *Encoder, v reflect.Value) error { return e.String(v.String()) },
			func(d *Decoder, v reflect.Value) error {
				s, err := d.String()
				v.SetString(s)
				return err
			}, 8
	case reflect.Slice:
		return sliceCodec(t)
	case reflect.Array:
		return arrayCodec(t)
	case reflect.Struct:
		return structCodec(t)
	case reflect.Map:
		return mapCodec(t)
	case reflect.Pointer:
		return pointerCodec(t)
	case reflect.Interface:
		return interfaceCodec(t)
	}
	return errorCodec(fmt.Errorf("bincode: cannot encode or decode a %v", t))
}

func marshalerEnc(t reflect.Type) (encFn, bool) {
	if t.Implements(marshalerType) {
		return func(e *Encoder, v reflect.Value) error {
			if t.Kind() == reflect.Pointer && v.IsNil() {
				return fmt.Errorf("bincode: cannot encode a nil %v", t)
			}
			return v.Interface().(Marshaler).MarshalBincode(e)
		}, true
	}
	if t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(marshalerType) {
		return func(e *Encoder, v reflect.Value) error {
			if !v.CanAddr() {
				p := reflect.New(t)
				p.Elem().Set(v)
				v = p.Elem()
			}
			return v.Addr().Interface().(Marshaler).MarshalBincode(e)
		}, true
	}
	return nil, false
}

func unmarshalerDec(t reflect.Type) (decFn, bool) {
	if t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(unmarshalerType) {
		return func(d *Decoder, v reflect.Value) error {
			return v.Addr().Interface().(Unmarshaler).UnmarshalBincode(d)
		}, true
	}
	if t.Kind() == reflect.Pointer && t.Implements(unmarshalerType) {
		return func(d *Decoder, v reflect.Value) error {
			if v.IsNil() {
				v.Set(reflect.New(t.Elem()))
			}
			return v.Interface().(Unmarshaler).UnmarshalBincode(d)
		}, true
	}
	return nil, false
}

func intCodec(k reflect.Kind) (encFn, decFn, int) {
	signed := k >= reflect.Int && k <= reflect.Int64
	size := map[reflect.Kind]int{
		reflect.Uint8: 1, reflect.Int8: 1, reflect.Uint16: 2, reflect.Int16: 2,
		reflect.Uint32: 4, reflect.Int32: 4,
	}[k]
	if size == 0 {
		size = 8 // 64 bits, and Go's int and uint (usize and isize in bincode)
	}
	get := func(v reflect.Value) uint64 {
		if signed {
			return uint64(v.Int())
		}
		return v.Uint()
	}
	var enc encFn
	switch size {
	case 1:
		enc = func(e *Encoder, v reflect.Value) error { e.U8(uint8(get(v))); return nil }
	case 2:
		enc = func(e *Encoder, v reflect.Value) error { e.U16(uint16(get(v))); return nil }
	case 4:
		enc = func(e *Encoder, v reflect.Value) error { e.U32(uint32(get(v))); return nil }
	default:
		enc = func(e *Encoder, v reflect.Value) error { e.U64(get(v)); return nil }
	}
	dec := func(d *Decoder, v reflect.Value) error {
		b, err := d.take(size)
		if err != nil {
			return err
		}
		var u uint64
		for i := size - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		if signed {
			shift := 64 - 8*size // sign-extend
			v.SetInt(int64(u<<shift) >> shift)
		} else {
			v.SetUint(u)
		}
		return nil
	}
	return enc, dec, size
}

func sliceCodec(t reflect.Type) (encFn, decFn, int) {
	elemType := t.Elem()
	if elemType.Kind() == reflect.Uint8 && !hasCustomEncoding(elemType) {
		return func(e *Encoder, v reflect.Value) error { e.ByteSlice(v.Bytes()); return nil },
			func(d *Decoder, v reflect.Value) error {
				b, err := d.ByteSlice()
				if err == nil {
					v.SetBytes(b)
				}
				return err
			}, 8
	}
	elem := buildCodec(elemType)
	enc := func(e *Encoder, v reflect.Value) error {
		n := v.Len()
		e.Len(n)
		for i := 0; i < n; i++ {
			if err := elem.enc(e, v.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
	dec := func(d *Decoder, v reflect.Value) error {
		n, err := d.Len(elem.minSize)
		if err != nil {
			return err
		}
		s := reflect.MakeSlice(t, n, n)
		for i := 0; i < n; i++ {
			if err := elem.dec(d, s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	}
	return enc, dec, 8
}

func arrayCodec(t reflect.Type) (encFn, decFn, int) {
	elem := buildCodec(t.Elem())
	n := t.Len()
	enc := func(e *Encoder, v reflect.Value) error {
		for i := 0; i < n; i++ {
			if err := elem.enc(e, v.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
	dec := func(d *Decoder, v reflect.Value) error {
		for i := 0; i < n; i++ {
			if err := elem.dec(d, v.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
	return enc, dec, n * elem.minSize
}

func structCodec(t reflect.Type) (encFn, decFn, int) {
	type field struct {
		index int
		name  string
		c     *codec
	}
	var fs []field
	size := 0
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() || f.Tag.Get("bincode") == "-" {
			continue
		}
		c := buildCodec(f.Type)
		fs = append(fs, field{i, f.Name, c})
		size += c.minSize
	}
	enc := func(e *Encoder, v reflect.Value) error {
		for _, f := range fs {
			if err := f.c.enc(e, v.Field(f.index)); err != nil {
				return fmt.Errorf("%w (field %s of %v)", err, f.name, t)
			}
		}
		return nil
	}
	dec := func(d *Decoder, v reflect.Value) error {
		for _, f := range fs {
			if err := f.c.dec(d, v.Field(f.index)); err != nil {
				return fmt.Errorf("%w (field %s of %v)", err, f.name, t)
			}
		}
		return nil
	}
	return enc, dec, size
}

func mapCodec(t reflect.Type) (encFn, decFn, int) {
	key, val := buildCodec(t.Key()), buildCodec(t.Elem())
	enc := func(e *Encoder, v reflect.Value) error {
		keys := v.MapKeys()
		// Go maps have no order: sort the keys of basic types so that the
		// encoding is deterministic (Rust's HashMap has none either; a
		// BTreeMap takes the pairs in any order).
		sort.Slice(keys, func(i, j int) bool { return less(keys[i], keys[j]) })
		e.Len(len(keys))
		for _, k := range keys {
			if err := key.enc(e, k); err != nil {
				return err
			}
			if err := val.enc(e, v.MapIndex(k)); err != nil {
				return err
			}
		}
		return nil
	}
	dec := func(d *Decoder, v reflect.Value) error {
		n, err := d.Len(key.minSize + val.minSize)
		if err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(t, n)
		for i := 0; i < n; i++ {
			k := reflect.New(t.Key()).Elem()
			if err := key.dec(d, k); err != nil {
				return err
			}
			x := reflect.New(t.Elem()).Elem()
			if err := val.dec(d, x); err != nil {
				return err
			}
			m.SetMapIndex(k, x)
		}
		v.Set(m)
		return nil
	}
	return enc, dec, 8
}

func less(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() < b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return a.Uint() < b.Uint()
	case reflect.Float32, reflect.Float64:
		return a.Float() < b.Float()
	case reflect.String:
		return a.String() < b.String()
	case reflect.Bool:
		return !a.Bool() && b.Bool()
	}
	return false
}

func pointerCodec(t reflect.Type) (encFn, decFn, int) {
	elem := buildCodec(t.Elem())
	enc := func(e *Encoder, v reflect.Value) error {
		if v.IsNil() {
			return fmt.Errorf("bincode: cannot encode a nil %v (use bincode.Option for Rust's Option)", t)
		}
		return elem.enc(e, v.Elem())
	}
	dec := func(d *Decoder, v reflect.Value) error {
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return elem.dec(d, v.Elem())
	}
	return enc, dec, elem.minSize
}

func interfaceCodec(t reflect.Type) (encFn, decFn, int) {
	enum := enums[t]
	if enum == nil {
		return errorCodec(fmt.Errorf("bincode: interface type %v is not a registered enum", t))
	}
	// The variants' codecs, content only (the index is written here).
	content := make([]*codec, len(enum.variants))
	for i, vt := range enum.variants {
		content[i] = buildCodec(vt)
	}
	enc := func(e *Encoder, v reflect.Value) error {
		if v.IsNil() {
			return fmt.Errorf("bincode: cannot encode a nil %v", t)
		}
		inner := v.Elem()
		i, ok := enum.index[inner.Type()]
		if !ok {
			return fmt.Errorf("bincode: %v is not a registered variant of %v", inner.Type(), t)
		}
		e.U32(i)
		return content[i].contentEnc(e, inner)
	}
	dec := func(d *Decoder, v reflect.Value) error {
		i, err := d.U32()
		if err != nil {
			return err
		}
		if int(i) >= len(enum.variants) {
			return fmt.Errorf("bincode: variant index %d out of range for %v (%d variants)",
				i, t, len(enum.variants))
		}
		p := reflect.New(enum.variants[i])
		if err := content[i].contentDec(d, p.Elem()); err != nil {
			return err
		}
		enum.set(v, i, p.UnsafePointer())
		return nil
	}
	return enc, dec, 4
}

func hasCustomEncoding(t reflect.Type) bool {
	if t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType) {
		return true
	}
	_, ok := variants[t]
	return ok
}

// RegisterEnum declares the interface type I as a Rust enum whose variants,
// in order (index 0, 1, …), are the dynamic types of the given values:
//
//	// Rust: enum Shape { Circle(f64), Rect { w: f32, h: f32 }, Empty }
//	type Shape interface{ isShape() }
//	type Circle float64
//	type Rect struct{ W, H float32 }
//	type Empty struct{}
//	func (Circle) isShape() {}
//	func (Rect) isShape()   {}
//	func (Empty) isShape()  {}
//	func init() { bincode.RegisterEnum[Shape](Circle(0), Rect{}, Empty{}) }
//
// A value of a variant type is then encoded as its variant index (u32) and
// then its own content, wherever it appears: as a value of type I, or on its
// own (so Marshal(Circle(2)) encodes a Shape). Decoding into an I makes a
// value of the variant the index names; decoding into a variant type checks
// the index. A type can be a variant of only one enum; a tuple variant is a
// struct of its fields, a unit variant an empty struct. A variant may be a
// pointer type (decoding then allocates). Call it from init, before the
// types are used.
func RegisterEnum[I any](values ...I) {
	iface := reflect.TypeOf((*I)(nil)).Elem()
	if iface.Kind() != reflect.Interface {
		panic(fmt.Sprintf("bincode.RegisterEnum: %v is not an interface type", iface))
	}
	info := &enumInfo{iface: iface, index: map[reflect.Type]uint32{}}
	for _, v := range values {
		t := reflect.TypeOf(v)
		if t == nil {
			panic(fmt.Sprintf("bincode.RegisterEnum[%v]: nil variant", iface))
		}
		if _, dup := info.index[t]; dup {
			panic(fmt.Sprintf("bincode.RegisterEnum[%v]: %v is listed twice", iface, t))
		}
		info.index[t] = uint32(len(info.variants))
		info.variants = append(info.variants, t)
		info.tabs = append(info.tabs, (*[2]unsafe.Pointer)(unsafe.Pointer(&v))[0])
		info.direct = append(info.direct, directIface(t))
	}
	build.Lock()
	defer build.Unlock()
	if _, dup := enums[iface]; dup {
		panic(fmt.Sprintf("bincode.RegisterEnum: %v is already registered", iface))
	}
	for _, t := range info.variants {
		if old, dup := variants[t]; dup {
			panic(fmt.Sprintf("bincode.RegisterEnum[%v]: %v is already a variant of %v", iface, t, old.enum.iface))
		}
	}
	for i, t := range info.variants {
		variants[t] = variantInfo{enum: info, index: uint32(i)}
	}
	enums[iface] = info
	// Codecs built before now may have seen these types as plain types.
	codecs.Store(nil)
}
