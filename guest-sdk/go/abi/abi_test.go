package abi

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// rustABI is the file that defines the ABI's constants; spec documents them.
var (
	rustABI = filepath.Join("..", "..", "..", "host-api", "abi", "src", "lib.rs")
	spec    = filepath.Join("..", "..", "..", "host-api", "SPEC.md")
)

// goValues holds every constant of abi.go by name. TestEveryGoConstantIsListed
// makes sure no constant is missing here.
var goValues = map[string]any{
	"ModuleProcess":        ModuleProcess,
	"ModuleMessage":        ModuleMessage,
	"ModuleRegistry":       ModuleRegistry,
	"ModuleTimer":          ModuleTimer,
	"ModuleNet":            ModuleNet,
	"ErrOk":                ErrOk,
	"ErrNoProcess":         ErrNoProcess,
	"ErrTimeout":           ErrTimeout,
	"ErrBufferTooSmall":    ErrBufferTooSmall,
	"ErrNoMessage":         ErrNoMessage,
	"ErrInvalidModule":     ErrInvalidModule,
	"ErrNoSuchModule":      ErrNoSuchModule,
	"ErrNoSuchExport":      ErrNoSuchExport,
	"ErrResourceLimit":     ErrResourceLimit,
	"ErrPermissionDenied":  ErrPermissionDenied,
	"ErrInvalidArgument":   ErrInvalidArgument,
	"ErrSpawnFailed":       ErrSpawnFailed,
	"ErrAlreadyRegistered": ErrAlreadyRegistered,
	"ErrNotFound":          ErrNotFound,
	"ErrBadHandle":         ErrBadHandle,
	"ErrConnectionRefused": ErrConnectionRefused,
	"ErrConnectionReset":   ErrConnectionReset,
	"ErrAddrInUse":         ErrAddrInUse,
	"ErrAddrNotAvailable":  ErrAddrNotAvailable,
	"ErrNotConnected":      ErrNotConnected,
	"ErrHostNotFound":      ErrHostNotFound,
	"ErrIoError":           ErrIoError,
	"ErrUnsupported":       ErrUnsupported,
	"TagData":              TagData,
	"TagReplyBase":         TagReplyBase,
	"TagSystemBase":        TagSystemBase,
	"TagSpawnArg":          TagSpawnArg,
	"TagExit":              TagExit,
	"TagDown":              TagDown,
	"ReasonNormal":         ReasonNormal,
	"ReasonTrap":           ReasonTrap,
	"ReasonKilled":         ReasonKilled,
	"ReasonLimit":          ReasonLimit,
	"ReasonExitCode":       ReasonExitCode,
	"ReasonCustom":         ReasonCustom,
	"ReasonNoproc":         ReasonNoproc,
	"ReasonShutdown":       ReasonShutdown,
	"ReasonLimitMemory":    ReasonLimitMemory,
	"ReasonLimitFuel":      ReasonLimitFuel,
	"ValModuleSelf":        ValModuleSelf,
	"ValConfigInherit":     ValConfigInherit,
	"ValTimeoutForever":    ValTimeoutForever,
	"ValMaxSpawnParams":    ValMaxSpawnParams,
	"ValSdkEntry":          ValSdkEntry,
	"ValStart":             ValStart,
	"ValTimerCancelled":    ValTimerCancelled,
	"ValTimerNotPending":   ValTimerNotPending,
	"ValShutdownRead":      ValShutdownRead,
	"ValShutdownWrite":     ValShutdownWrite,
	"ValShutdownBoth":      ValShutdownBoth,
	"ValFdBase":            ValFdBase,
	"ValMailboxFd":         ValMailboxFd,
	"LimitTimers":          LimitTimers,
	"LimitMonitors":        LimitMonitors,
	"LimitLinks":           LimitLinks,
	"LimitNames":           LimitNames,
	"LimitNameLen":         LimitNameLen,
	"LimitConfigs":         LimitConfigs,
	"LimitReceiveTags":     LimitReceiveTags,
	"LimitSockets":         LimitSockets,
	"LimitWasiHandles":     LimitWasiHandles,
	"LimitReasonLen":       LimitReasonLen,
	"InfoTag":              InfoTag,
	"InfoSender":           InfoSender,
	"InfoLen":              InfoLen,
	"InfoSize":             InfoSize,
	"ExitTrap":             ExitTrap,
	"ExitLoadError":        ExitLoadError,
	"ExitKilled":           ExitKilled,
}

// rustConst is one `pub const` of the Rust file.
type rustConst struct {
	module, name, typ string
	value             string // decimal for integers, the text for strings
}

// goName is the Go name of a Rust constant: module::SOME_NAME -> ModuleSomeName.
func (c rustConst) goName() string {
	return camel(c.module) + camel(c.name)
}

func camel(s string) string {
	var b strings.Builder
	for _, part := range strings.Split(strings.ToLower(s), "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

var (
	modRe   = regexp.MustCompile(`^pub mod (\w+) \{`)
	constRe = regexp.MustCompile(`^\s*pub const (\w+): ([^=]+?) = (.+);\s*$`)
	armRe   = regexp.MustCompile(`^\s*(\w+) => "([^"]*)",`)
)

// parseRust reads the Rust file's constants (evaluating the simple
// expressions it uses: literals, `a << b`, `a + b`, names of the same module)
// and the arms of err::name.
func parseRust(t *testing.T) ([]rustConst, map[string]string) {
	t.Helper()
	src, err := os.ReadFile(rustABI)
	if err != nil {
		t.Fatalf("read the Rust ABI: %v", err)
	}
	var consts []rustConst
	names := map[string]string{}
	module := ""
	values := map[string]uint64{}
	for i, line := range strings.Split(string(src), "\n") {
		if m := modRe.FindStringSubmatch(line); m != nil {
			module = m[1]
			continue
		}
		if strings.HasPrefix(line, "}") {
			module = ""
			continue
		}
		if m := constRe.FindStringSubmatch(line); m != nil {
			if module == "" {
				t.Fatalf("%s:%d: constant outside a module: %s", rustABI, i+1, line)
			}
			c := rustConst{module: module, name: m[1], typ: strings.TrimSpace(m[2])}
			if c.typ == "&str" {
				s, err := strconv.Unquote(m[3])
				if err != nil {
					t.Fatalf("%s:%d: string %s: %v", rustABI, i+1, m[3], err)
				}
				c.value = s
			} else {
				v, err := eval(m[3], module, values)
				if err != nil {
					t.Fatalf("%s:%d: %v", rustABI, i+1, err)
				}
				values[module+"::"+c.name] = v
				c.value = render(v, c.typ)
			}
			consts = append(consts, c)
			continue
		}
		if module == "err" {
			if m := armRe.FindStringSubmatch(line); m != nil {
				names[m[1]] = m[2]
			}
		}
	}
	if len(consts) < 20 {
		t.Fatalf("found only %d constants in %s: did its layout change?", len(consts), rustABI)
	}
	return consts, names
}

// eval computes `operand (op operand)*` left to right, as two's-complement
// 64-bit values.
func eval(expr, module string, values map[string]uint64) (uint64, error) {
	fields := strings.Fields(expr)
	operand := func(s string) (uint64, error) {
		if v, ok := values[module+"::"+s]; ok {
			return v, nil
		}
		s = strings.ReplaceAll(s, "_", "") // digit separators
		if n, err := strconv.ParseInt(s, 0, 64); err == nil {
			return uint64(n), nil
		}
		n, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot evaluate %q in %q", s, expr)
		}
		return n, nil
	}
	if len(fields)%2 == 0 {
		return 0, fmt.Errorf("cannot evaluate %q", expr)
	}
	acc, err := operand(fields[0])
	if err != nil {
		return 0, err
	}
	for i := 1; i < len(fields); i += 2 {
		rhs, err := operand(fields[i+1])
		if err != nil {
			return 0, err
		}
		switch fields[i] {
		case "+":
			acc += rhs
		case "-":
			acc -= rhs
		case "<<":
			acc <<= rhs
		case "|":
			acc |= rhs
		default:
			return 0, fmt.Errorf("unknown operator %q in %q", fields[i], expr)
		}
	}
	return acc, nil
}

func render(v uint64, typ string) string {
	if strings.HasPrefix(typ, "i") {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatUint(v, 10)
}

// goType is the Go type that mirrors a Rust type (usize offsets are untyped
// constants, so int).
var goType = map[string]reflect.Kind{
	"&str":  reflect.String,
	"i32":   reflect.Int32,
	"i64":   reflect.Int64,
	"u32":   reflect.Uint32,
	"u64":   reflect.Uint64,
	"usize": reflect.Int,
}

func TestConstantsMatchRust(t *testing.T) {
	consts, _ := parseRust(t)
	seen := map[string]bool{}
	for _, c := range consts {
		name := c.goName()
		seen[name] = true
		v, ok := goValues[name]
		if !ok {
			t.Errorf("%s::%s (%s) has no Go constant %s in abi.go", c.module, c.name, c.value, name)
			continue
		}
		if kind, ok := goType[c.typ]; !ok || reflect.TypeOf(v).Kind() != kind {
			t.Errorf("%s: Go type %T does not mirror Rust type %s", name, v, c.typ)
		}
		if got := fmt.Sprint(v); got != c.value {
			t.Errorf("%s = %s in Go, but %s::%s = %s in Rust", name, got, c.module, c.name, c.value)
		}
	}
	for name := range goValues {
		if !seen[name] {
			t.Errorf("Go constant %s has no counterpart in %s", name, rustABI)
		}
	}
}

func TestErrorNamesMatchRust(t *testing.T) {
	consts, names := parseRust(t)
	n := 0
	for _, c := range consts {
		if c.module != "err" {
			continue
		}
		want, ok := names[c.name]
		if !ok {
			t.Errorf("err::name has no arm for %s", c.name)
			continue
		}
		code, _ := strconv.ParseInt(c.value, 10, 32)
		if got := ErrorName(int32(code)); got != want {
			t.Errorf("ErrorName(%d) = %q, Rust says %q", code, got, want)
		}
		n++
	}
	if n < 23 { // OK ..= UNSUPPORTED
		t.Fatalf("checked only %d error names", n)
	}
	if got := ErrorName(9999); got != "unknown error" {
		t.Errorf("ErrorName(9999) = %q", got)
	}
}

// The error table of SPEC.md lists every error code of the Rust crate, with
// its value, and no other: so a code mirrored in Go is also documented.
func TestErrorTableOfTheSpecMatchesRust(t *testing.T) {
	consts, _ := parseRust(t)
	want := map[string]string{}
	for _, c := range consts {
		if c.module == "err" {
			want[c.name] = c.value
		}
	}
	text, err := os.ReadFile(spec)
	if err != nil {
		t.Fatalf("read the spec: %v", err)
	}
	rowRe := regexp.MustCompile("^\\| (\\d+) \\| `([A-Z_]+)` \\|")
	got := map[string]string{}
	inTable := false
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(line, "### Error codes") {
			inTable = true
			continue
		}
		if inTable && strings.HasPrefix(line, "#") {
			break
		}
		if m := rowRe.FindStringSubmatch(line); inTable && m != nil {
			got[m[2]] = m[1]
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("SPEC.md's error table %v, Rust's err %v", got, want)
	}
	// And the Go side names every one of them.
	for name, value := range want {
		code, _ := strconv.ParseInt(value, 10, 32)
		if name != "OK" && ErrorName(int32(code)) == "unknown error" {
			t.Errorf("ErrorName(%s) is unknown in Go", name)
		}
	}
}

// TestEveryGoConstantIsListed parses abi.go so that a constant added there
// but not to goValues (and so not checked) fails.
func TestEveryGoConstantIsListed(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "abi.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := 0
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			for _, name := range spec.(*ast.ValueSpec).Names {
				declared++
				if _, ok := goValues[name.Name]; !ok {
					t.Errorf("constant %s of abi.go is not in goValues", name.Name)
				}
			}
		}
	}
	if declared != len(goValues) {
		t.Errorf("abi.go declares %d constants, goValues lists %d", declared, len(goValues))
	}
}
