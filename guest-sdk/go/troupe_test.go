package troupe

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"troupe.dev/troupe/abi"
	"troupe.dev/troupe/bincode"
)

func TestListsAreNulTerminated(t *testing.T) {
	b, err := nulList([]string{"prog", "a b", ""})
	if err != nil || string(b) != "prog\x00a b\x00\x00" {
		t.Fatalf("nulList = %q, %v", b, err)
	}
	if b, err := nulList(nil); err != nil || len(b) != 0 {
		t.Fatalf("empty list = %q, %v", b, err)
	}
	if _, err := nulList([]string{"a\x00b"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("NUL inside: %v", err)
	}
	if b, err := envList([]string{"A=1", "B=x=y"}); err != nil || string(b) != "A=1\x00B=x=y\x00" {
		t.Fatalf("envList = %q, %v", b, err)
	}
	for _, bad := range []string{"", "=v", "NOVALUE"} {
		if _, err := envList([]string{bad}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("envList(%q): %v", bad, err)
		}
	}
}

func TestRoleReplacesAnInheritedRole(t *testing.T) {
	got := withRole([]string{"A=1", "TROUPE_ROLE=old", "TROUPE_ROLEX=keep"}, "worker")
	want := []string{"A=1", "TROUPE_ROLEX=keep", "TROUPE_ROLE=worker"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("withRole = %q", got)
	}
}

func TestOptionsThatNeedNoConfiguration(t *testing.T) {
	if !options(nil).inheritsAll() {
		t.Error("no options should inherit everything")
	}
	for name, opt := range map[string]SpawnOption{
		"args": WithArgs(), "env": WithEnv(), "preopens": WithPreopens(),
		"link": WithLink(), "memory": WithMaxMemory(1 << 24), "fuel": WithFuel(1), "spawn": WithoutSpawn(),
		"net": WithNet(),
	} {
		if options([]SpawnOption{opt}).inheritsAll() {
			t.Errorf("%s: should need a configuration", name)
		}
	}
}

func TestInfoRecordIsParsedAtABIOffsets(t *testing.T) {
	var info [abi.InfoSize]byte
	info[abi.InfoTag] = 7
	info[abi.InfoSender] = 42
	info[abi.InfoLen], info[abi.InfoLen+1] = 0x2c, 0x01
	tag, from, n := parseInfo(&info)
	if tag != 7 || from != 42 || n != 300 {
		t.Fatalf("parseInfo = %d %d %d", tag, from, n)
	}
}

func TestReplyTagsAreFreshAndInTheReplyRange(t *testing.T) {
	replyTag.Store(0) // as in a fresh process
	first, second := nextReplyTag(), nextReplyTag()
	if first != abi.TagReplyBase || second != abi.TagReplyBase+1 {
		t.Fatalf("first tags %#x %#x", first, second)
	}
	last := abi.TagSystemBase - 1
	if followingReplyTag(last-1) != last || followingReplyTag(last) != abi.TagReplyBase {
		t.Fatal("reply tags must wrap inside the reply range")
	}
}

// The Reply layout is the shared vector "reply" (Rust's Reply<u64>).
func TestReplyHasTheRustLayout(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "testdata", "bincode-vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Vectors []struct{ Name, Hex string } }
	if err := json.Unmarshal(text, &doc); err != nil {
		t.Fatal(err)
	}
	for _, v := range doc.Vectors {
		if v.Name != "reply" {
			continue
		}
		b, err := bincode.Marshal(Reply{Pid: 5, Tag: abi.TagReplyBase + 3})
		if err != nil || hex.EncodeToString(b) != v.Hex {
			t.Fatalf("Reply encodes as %x (%v), Rust as %s", b, err, v.Hex)
		}
		var r Reply
		raw, _ := hex.DecodeString(v.Hex)
		if err := bincode.Unmarshal(raw, &r); err != nil || r != (Reply{5, abi.TagReplyBase + 3}) {
			t.Fatalf("decoded %+v, %v", r, err)
		}
		return
	}
	t.Fatal("no reply vector")
}

func TestPidAndModuleEncodeAsU64(t *testing.T) {
	for _, v := range []any{Pid(77), Module(77)} {
		b, err := bincode.Marshal(v)
		if err != nil || hex.EncodeToString(b) != "4d00000000000000" {
			t.Errorf("%T encodes as %x, %v", v, b, err)
		}
	}
	if Pid(3).String() != "<3>" {
		t.Error(Pid(3).String())
	}
}

func TestErrorsCarryCodeAndMessage(t *testing.T) {
	var err error = &Error{Op: "spawn", Code: ErrNoSuchExport, Message: `module has no export "x"`}
	if !errors.Is(err, ErrNoSuchExport) || errors.Is(err, ErrNoProcess) {
		t.Fatal("errors.Is by code")
	}
	if got := err.Error(); got != `troupe: spawn: no such export: module has no export "x"` {
		t.Fatalf("Error() = %q", got)
	}
	var e *Error
	if !errors.As(err, &e) || e.Message == "" {
		t.Fatal("errors.As")
	}
	timeout := &Error{Op: "receive", Code: ErrTimeout}
	if timeout.Error() != "troupe: receive: timed out" || !errors.Is(timeout, ErrTimeout) {
		t.Fatal(timeout.Error())
	}
	bad := &MalformedError{From: 2, Tag: 0, Err: errors.New("boom")}
	if !strings.Contains(bad.Error(), "<2>") || errors.Unwrap(bad).Error() != "boom" {
		t.Fatal(bad.Error())
	}
}

// binding is one host function: its import module, name and wasm types.
type binding struct {
	module, name string
	params       []string // "i32" or "i64"
	result       string   // "", "i32" or "i64"
}

func (b binding) String() string {
	return b.module + "::" + b.name + "(" + strings.Join(b.params, ", ") + ") -> " + b.result
}

// specBindings reads every host function of host-api/SPEC.md.
func specBindings(t *testing.T) map[string]binding {
	text, err := os.ReadFile(filepath.Join("..", "..", "host-api", "SPEC.md"))
	if err != nil {
		t.Fatal(err)
	}
	nsRe := regexp.MustCompile("^## Namespace `(\\w+)`")
	fnRe := regexp.MustCompile("^### `(\\w+)\\(([^)]*)\\)(?: -> (\\w+))?`")
	out := map[string]binding{}
	ns := ""
	for _, line := range strings.Split(string(text), "\n") {
		if m := nsRe.FindStringSubmatch(line); m != nil {
			ns = m[1]
			continue
		}
		m := fnRe.FindStringSubmatch(line)
		if m == nil || ns == "" {
			continue
		}
		b := binding{module: ns, name: m[1], result: m[3]}
		for _, p := range strings.Split(m[2], ",") {
			if p = strings.TrimSpace(p); p != "" {
				b.params = append(b.params, strings.TrimSpace(p[strings.Index(p, ":")+1:]))
			}
		}
		out[ns+"::"+b.name] = b
	}
	if len(out) < 30 {
		t.Fatalf("found only %d host functions in SPEC.md", len(out))
	}
	return out
}

// goBindings reads the //go:wasmimport declarations of a file.
func goBindings(t *testing.T, file string) map[string]binding {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	wasmType := func(e ast.Expr) string {
		switch x := e.(type) {
		case *ast.Ident:
			switch x.Name {
			case "int32", "uint32":
				return "i32"
			case "int64", "uint64":
				return "i64"
			}
		case *ast.SelectorExpr:
			if x.Sel.Name == "Pointer" {
				return "i32" // unsafe.Pointer is an i32 on wasm
			}
		}
		t.Errorf("%s: type %v cannot cross the ABI", file, e)
		return "?"
	}
	out := map[string]binding{}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Doc == nil {
			continue
		}
		for _, c := range fn.Doc.List {
			fields := strings.Fields(c.Text)
			if len(fields) != 3 || fields[0] != "//go:wasmimport" {
				continue
			}
			b := binding{module: fields[1], name: fields[2]}
			for _, p := range fn.Type.Params.List {
				for range p.Names {
					b.params = append(b.params, wasmType(p.Type))
				}
			}
			if fn.Type.Results != nil {
				b.result = wasmType(fn.Type.Results.List[0].Type)
			}
			out[b.module+"::"+b.name] = b
		}
	}
	return out
}

// Every host function of SPEC.md has a //go:wasmimport with its exact
// signature, and there is no other.
func TestBindingsMatchTheSpec(t *testing.T) {
	spec := specBindings(t)
	mine := goBindings(t, "sys_wasip1.go")
	for key, want := range spec {
		got, ok := mine[key]
		if !ok {
			t.Errorf("no binding for %v", want)
		} else if got.String() != want.String() {
			t.Errorf("binding %v, SPEC.md says %v", got, want)
		}
	}
	for key, got := range mine {
		if _, ok := spec[key]; !ok {
			t.Errorf("binding %v is not in SPEC.md", got)
		}
	}
	for _, m := range []string{abi.ModuleProcess, abi.ModuleMessage, abi.ModuleRegistry, abi.ModuleTimer, abi.ModuleNet} {
		found := false
		for _, b := range mine {
			found = found || b.module == m
		}
		if !found {
			t.Errorf("no binding in import module %s", m)
		}
	}
}

// The native stand-ins have the same functions and signatures as the
// bindings, so code that builds natively builds for wasip1 too.
func TestStubsMatchBindings(t *testing.T) {
	sigs := func(file string) map[string]string {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && strings.HasPrefix(fn.Name.Name, "sys") {
				var b strings.Builder
				for _, p := range fn.Type.Params.List {
					b.WriteString(types(p.Type, len(p.Names)))
				}
				if fn.Type.Results != nil {
					b.WriteString("-> " + types(fn.Type.Results.List[0].Type, 1))
				}
				out[fn.Name.Name] = b.String()
			}
		}
		return out
	}
	wasm, native := sigs("sys_wasip1.go"), sigs("sys_other.go")
	if !reflect.DeepEqual(wasm, native) {
		t.Fatalf("sys_other.go differs from sys_wasip1.go:\n%v\n%v", native, wasm)
	}
}

func types(e ast.Expr, n int) string {
	var s string
	switch x := e.(type) {
	case *ast.Ident:
		s = x.Name
	case *ast.SelectorExpr:
		s = x.Sel.Name
	}
	return strings.Repeat(s+" ", n)
}
