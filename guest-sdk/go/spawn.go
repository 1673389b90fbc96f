package troupe

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"troupe.dev/troupe/abi"
)

// Module is a compiled WebAssembly module the VM can start processes of.
// Handles are VM-wide: a Module can be sent in a message (it is a u64, as
// the Rust SDK's Module) and spawned by the receiver.
type Module uint64

// ThisModule is the calling process's own module.
func ThisModule() Module { return Module(sysModuleSelf()) }

// LoadModule compiles a .wasm module. The VM caches modules by the SHA-256
// of their bytes, so loading the same bytes again is immediate.
func LoadModule(wasm []byte) (Module, error) {
	var handle uint64
	rc := sysModuleLoad(unsafe.Pointer(unsafe.SliceData(wasm)), int32(len(wasm)), unsafe.Pointer(&handle))
	if rc != abi.ErrOk {
		return 0, hostError("module_load", rc)
	}
	return Module(handle), nil
}

// LoadModuleFile reads path through WASI (so only a file in one of this
// process's preopened directories can be loaded) and compiles it.
func LoadModuleFile(path string) (Module, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("troupe: cannot read module: %w", err)
	}
	return LoadModule(wasm)
}

// SpawnOption configures a spawned process. Whatever is not set is
// inherited from the parent: its args, its environment, its preopened
// directories.
type SpawnOption func(*spawnOptions)

type spawnOptions struct {
	args, env, preopens []string
	hasArgs, hasEnv     bool
	hasPreopens         bool
	// err is an option's argument that the SDK refused (spawn returns it
	// before any host call).
	err error
	// Settings made by a host call each. The call is in the option's
	// closure, so that a program imports only the host functions of the
	// options it uses.
	settings []func(config int64) int32
}

func (o *spawnOptions) inheritsAll() bool {
	return !o.hasArgs && !o.hasEnv && !o.hasPreopens && len(o.settings) == 0 && o.err == nil
}

func setting(f func(config int64) int32) SpawnOption {
	return func(o *spawnOptions) { o.settings = append(o.settings, f) }
}

// WithArgs sets the child's argv, argv[0] included.
func WithArgs(args ...string) SpawnOption {
	return func(o *spawnOptions) { o.args, o.hasArgs = args, true }
}

// WithEnv sets the child's whole environment, as "KEY=VALUE" strings (as
// os/exec's Cmd.Env). No strings: an empty environment.
func WithEnv(env ...string) SpawnOption {
	return func(o *spawnOptions) { o.env, o.hasEnv = env, true }
}

// WithPreopens keeps only these preopened directories (guest paths that the
// parent holds); none: the child gets no directory.
func WithPreopens(dirs ...string) SpawnOption {
	return func(o *spawnOptions) { o.preopens, o.hasPreopens = dirs, true }
}

// WithLink links the child to the parent before it runs (spawn and link
// are one step).
func WithLink() SpawnOption {
	return setting(func(config int64) int32 { return sysConfigLink(config) })
}

// WithMaxMemory caps the child's linear memory (at most the parent's own
// limit). A Go child needs a few MiB to start.
func WithMaxMemory(bytes int64) SpawnOption {
	return setting(func(config int64) int32 { return sysConfigSetMaxMemory(config, bytes) })
}

// WithFuel limits how many instructions the child may run (only in a VM
// started with --fuel).
func WithFuel(units int64) SpawnOption {
	return setting(func(config int64) int32 { return sysConfigSetFuel(config, units) })
}

// WithoutSpawn forbids the child (and so its descendants) to spawn.
func WithoutSpawn() SpawnOption {
	return setting(func(config int64) int32 { return sysConfigSetCanSpawn(config, 0) })
}

// WithNet narrows the child's network permission to these rules, written
// as troupe run's --allow-net takes them: "HOST[:PORT]", HOST an IP address
// (IPv6 in brackets), a host name or "*", no port meaning any port. Each
// rule must be allowed to the parent (a parent rule with the same host or
// "*", and the same port or none), else spawn fails with an error that
// errors.Is(err, ErrPermissionDenied). No rules: the child has no network.
// Without WithNet the child has the parent's permission.
func WithNet(rules ...string) SpawnOption {
	list, err := nulList(rules)
	return func(o *spawnOptions) {
		if err != nil {
			o.err = err
			return
		}
		o.settings = append(o.settings, func(config int64) int32 {
			return sysConfigSetNet(config, unsafe.Pointer(unsafe.SliceData(list)), int32(len(list)))
		})
	}
}

// RoleEnv is the environment variable that carries a process's role (see
// SpawnSelf and Role).
const RoleEnv = "TROUPE_ROLE"

// Role is the role this process was spawned with by SpawnSelf: the value
// of TROUPE_ROLE, "" for the root process. A Go program's main dispatches
// on it, since every Go process of a module starts in main:
//
//	func main() {
//		switch troupe.Role() {
//		case "worker":
//			worker()
//		default:
//			root()
//		}
//	}
func Role() string { return os.Getenv(RoleEnv) }

// SpawnSelf starts a new process of this module, in its role role: the
// child runs the module's _start (so its main), with the parent's
// environment plus TROUPE_ROLE=role (or, with WithEnv, that environment
// plus TROUPE_ROLE=role), and arg (bincode) as its spawn argument, which
// it reads with SpawnArg. Args and preopened directories are inherited
// unless options say otherwise.
//
// Go has no way to start a process in another function: the child is a
// fresh Go program, with a fresh runtime and fresh globals, which starts in
// main and learns what to do from Role and SpawnArg.
func SpawnSelf(role string, arg any, opts ...SpawnOption) (Pid, error) {
	o := options(opts)
	base := o.env
	if !o.hasEnv {
		base = os.Environ()
	}
	o.env, o.hasEnv = withRole(base, role), true
	return ThisModule().spawnStart(arg, o)
}

// withRole is env without any TROUPE_ROLE, plus TROUPE_ROLE=role.
func withRole(env []string, role string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, RoleEnv+"=") {
			out = append(out, kv)
		}
	}
	return append(out, RoleEnv+"="+role)
}

// SpawnStart starts a new process running the module's _start (its main),
// with arg (bincode) as its spawn argument, which the child reads with
// SpawnArg (Go) or troupe::spawn_arg (Rust). Works for modules of any
// language: this is how a Go process starts a Rust program and the other
// way round.
func (m Module) SpawnStart(arg any, opts ...SpawnOption) (Pid, error) {
	return m.spawnStart(arg, options(opts))
}

func (m Module) spawnStart(arg any, o *spawnOptions) (Pid, error) {
	return spawn(uint64(m), abi.ValStart, nil, func() ([]byte, error) {
		// Sockets in arg move to the child (see TCPConn).
		data, err := encodeMessage(nil, arg)
		if err != nil {
			return nil, invalid("spawn", "cannot encode the spawn argument: %v", err)
		}
		return data, nil
	}, o)
}

// SpawnExport starts a new process running the module's export export
// with params as its parameters (each parameter of the export must be i32,
// which gets the value truncated, or i64; at most abi.ValMaxSpawnParams),
// and the raw bytes arg as its spawn argument.
func (m Module) SpawnExport(export string, params []int64, arg []byte, opts ...SpawnOption) (Pid, error) {
	return spawn(uint64(m), export, params, func() ([]byte, error) { return arg, nil }, options(opts))
}

func options(opts []SpawnOption) *spawnOptions {
	o := &spawnOptions{}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// spawn makes the configuration, then the argument (encoding it attaches
// the sockets it holds, so it comes last before the host call that takes
// them), then the process.
func spawn(module uint64, entry string, params []int64, encodeArg func() ([]byte, error), o *spawnOptions) (Pid, error) {
	config, err := newConfig(o)
	if err != nil {
		return 0, err
	}
	if config != int64(abi.ValConfigInherit) {
		defer func() {
			if rc := sysConfigDrop(config); rc != abi.ErrOk {
				unexpected("config_drop", rc)
			}
		}()
	}
	arg, err := encodeArg()
	if err != nil {
		return 0, err
	}
	entryBytes := []byte(entry)
	var pid uint64
	rc := sysSpawn(int64(module), config,
		unsafe.Pointer(unsafe.SliceData(entryBytes)), int32(len(entryBytes)),
		unsafe.Pointer(unsafe.SliceData(params)), int32(len(params)),
		unsafe.Pointer(unsafe.SliceData(arg)), int32(len(arg)),
		unsafe.Pointer(&pid))
	messageSent(rc)
	if rc != abi.ErrOk {
		return 0, hostError("spawn", rc)
	}
	return Pid(pid), nil
}

// newConfig makes the spawn configuration of o (0: inherit everything).
func newConfig(o *spawnOptions) (int64, error) {
	if o.err != nil {
		return 0, o.err
	}
	if o.inheritsAll() {
		return int64(abi.ValConfigInherit), nil
	}
	// Encode first, so that a bad list creates no configuration.
	var args, env, preopens []byte
	var err error
	if o.hasArgs {
		if args, err = nulList(o.args); err != nil {
			return 0, err
		}
	}
	if o.hasEnv {
		if env, err = envList(o.env); err != nil {
			return 0, err
		}
	}
	if o.hasPreopens {
		if preopens, err = nulList(o.preopens); err != nil {
			return 0, err
		}
	}
	config := sysConfigNew()
	if config == 0 { // the process holds abi.LimitConfigs configurations
		return 0, hostError("spawn", abi.ErrResourceLimit)
	}
	check := func(rc int32) error {
		if rc == abi.ErrOk {
			return nil
		}
		err := hostError("spawn", rc)
		sysConfigDrop(config)
		return err
	}
	list := func(set func(int64, unsafe.Pointer, int32) int32, b []byte) error {
		return check(set(config, unsafe.Pointer(unsafe.SliceData(b)), int32(len(b))))
	}
	if o.hasArgs {
		if err := list(sysConfigSetArgs, args); err != nil {
			return 0, err
		}
	}
	if o.hasEnv {
		if err := list(sysConfigSetEnvs, env); err != nil {
			return 0, err
		}
	}
	if o.hasPreopens {
		if err := list(sysConfigPreopensOnly, preopens); err != nil {
			return 0, err
		}
	}
	for _, set := range o.settings {
		if err := check(set(config)); err != nil {
			return 0, err
		}
	}
	return config, nil
}

// nulList encodes strings as the host's lists: each followed by a NUL.
func nulList(items []string) ([]byte, error) {
	var out []byte
	for _, s := range items {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, invalid("spawn", "%q contains a NUL byte", s)
		}
		out = append(out, s...)
		out = append(out, 0)
	}
	return out, nil
}

// envList checks "KEY=VALUE" strings and encodes them as a NUL list.
func envList(env []string) ([]byte, error) {
	for _, kv := range env {
		if i := strings.IndexByte(kv, '='); i <= 0 {
			return nil, invalid("spawn", "environment entry %q is not KEY=VALUE", kv)
		}
	}
	return nulList(env)
}

// SpawnArg receives this process's spawn argument (the first message of
// every spawned process, tag abi.TagSpawnArg) into the value v points to,
// and returns the parent's pid. It works in a Go process started by any
// parent, Go or Rust. It can be read once; the root process has none (an
// ErrNoMessage error).
func SpawnArg(v any) (parent Pid, err error) {
	if Self() == 1 {
		return 0, &Error{Op: "spawn_arg", Code: ErrNoMessage, Message: "the root process has no spawn argument"}
	}
	return receiveDecoded(abi.TagSpawnArg, Forever, v, errReceiveTimeout)
}
