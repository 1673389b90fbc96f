// Package troupe is the Go guest SDK of Troupe, an Erlang-style actor
// runtime for WebAssembly.
//
// A Troupe program in Go is an ordinary GOOS=wasip1 GOARCH=wasm command:
//
//	GOOS=wasip1 GOARCH=wasm go build -o app.wasm .
//	troupe run app.wasm
//
// Its main is the root process. Every process is a separate instance of a
// module, with its own linear memory, its own Go runtime and a mailbox;
// processes share nothing and talk by copying messages.
//
// # Starting processes
//
// Go 1.21–1.23 cannot export functions from a wasip1 program other than
// _start, so a Go process always starts in main. SpawnSelf starts another
// process of the same module with a role, which main dispatches on:
//
//	func main() {
//		switch troupe.Role() {
//		case "worker":
//			var id uint32
//			boss, _ := troupe.SpawnArg(&id) // the spawn argument, from the parent
//			work(boss, id)
//		default: // "": the root process
//			w, err := troupe.SpawnSelf("worker", uint32(7))
//			…
//		}
//	}
//
// The role travels in the child's environment (TROUPE_ROLE), the argument as
// the child's first message (tag abi.TagSpawnArg). Module.SpawnStart starts
// any module's _start, Go or Rust, with the argv, environment and
// directories the parent chooses (WithArgs, WithEnv, WithPreopens);
// LoadModule and LoadModuleFile compile other modules.
//
// # Messages
//
// Pid.Send encodes a value with package bincode (the layout of Rust's
// bincode 1.3, which the Rust SDK uses) and sends it with tag abi.TagData;
// Receive, ReceiveTimeout and TryReceive take the next such message and
// decode it. Request sends a message carrying a Reply handle (two u64: the
// requester's pid and a fresh reply tag, as Rust's Reply<R>) and waits for
// the answer alone; the server answers with Reply.Send. Pid.SendTagged and
// ReceiveTagged are raw messaging with selective receive on tags.
//
// Go and Rust processes exchange typed messages when their types have the
// same layout: a Go struct mirrors a Rust struct field by field, a Rust enum
// is a Go interface registered with bincode.RegisterEnum, Rust's Option<T>
// is bincode.Option[T]. See package bincode for the whole mapping.
//
// # What blocks what
//
// A Go process is one Wasm instance running one Go runtime on one thread:
// its goroutines are scheduled cooperatively inside it, and the Troupe VM
// schedules the process as a whole. Its mailbox and its sockets are WASI
// descriptors of the process (host-api/SPEC.md, "WASI descriptors"), which
// the Go runtime's netpoller waits on, so:
//
//   - Waiting for a message (Receive, ReceiveTimeout, ReceiveTagged,
//     Reply.Wait, Request, SpawnArg, ReceiveEvent...) parks only the calling
//     goroutine, as a channel receive would: the process's other goroutines
//     run on.
//   - So does waiting on a socket: Accept, Read, Write (while the socket's
//     buffer is full) and ReadFrom run on Go's own net package (a
//     *TCPListener is a net.Listener, a *TCPConn a net.Conn), so that
//     http.Serve(listener, handler) serves many connections at once in one
//     process, and a goroutine in conn.Read does not stop the others.
//   - When every goroutine waits (on messages, sockets, timers), the Go
//     runtime calls WASI poll_oneoff, which suspends only this process in
//     the VM until one of them is ready; other processes run on.
//   - Some calls still wait in the VM, suspending the whole process while
//     they do: DialTCP and Dialer (connecting), LookupHost (resolving),
//     UDPConn.WriteTo (while the socket's buffer is full). On a
//     local network these are short.
//   - Goroutines are not preempted on wasm: a goroutine in a busy loop keeps
//     the other goroutines of its process from running until it blocks. The
//     VM still preempts the process itself (about every millisecond), so
//     other processes are never starved.
//   - SendAfter timers run in the VM, and time.Sleep and Go timers in the
//     Go runtime: both fire while other goroutines wait in Receive.
//   - Sending never blocks.
//
// # Networking
//
// With permission from the VM (troupe run --allow-net), ListenTCP (or
// Listen), DialTCP (or Dialer), ListenUDP and LookupHost give sockets:
// *TCPListener is a net.Listener, *TCPConn a net.Conn, and errors match
// os.ErrPermission, os.ErrDeadlineExceeded and net.ErrClosed (see Code.Is)
// as well as the troupe codes (ErrConnectionReset...). Libraries that take
// a dialer (net/http's Transport, lib/pq, redigo) take Dialer:
//
//	ln, _ := troupe.ListenTCP("0.0.0.0:8080")
//	http.Serve(ln, mux)
//
//	db, _ := pq.DialOpen(troupe.Dialer{}, dsn)
//
// A socket belongs to one process and moves to another inside a message:
// encoding a *TCPConn (or *TCPListener, *UDPConn) in Send, SendNamed,
// Reply.Send, Request or a spawn argument hands it over, and the receiver
// decodes a *TCPConn that owns it:
//
//	conn, _ := ln.AcceptTCP()
//	troupe.SpawnSelf("handler", conn) // a process per connection
//
// WithNet narrows a child's permission.
//
// # Servers and supervisors
//
// Server (with Serve, StartServer and ServerRef) is Erlang/OTP's gen_server
// and Supervisor (SupervisorSpec, ChildSpec, StartSupervisor, Supervise,
// SupervisorRef) its supervisor, with the Rust SDK's semantics and wire
// format; each is a role of the module, whose branch of main calls Serve
// or Supervise. See server.go and supervisor.go.
//
// # Ending
//
// A process ends when its main returns (reason normal) or calls os.Exit (a
// non-zero code is reported as such). A panic in a Go process prints the
// panic and exits with code 2: for the VM that is an exit code, not a trap.
// When the root process ends, the VM ends, and every other process with it.
package troupe
