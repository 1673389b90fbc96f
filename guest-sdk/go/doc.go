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
// schedules the process as a whole. So:
//
//   - A Troupe host call that waits (Receive, ReceiveTimeout, Reply.Wait,
//     Request, SpawnArg, ReceiveTagged) suspends the whole process: none of
//     its goroutines runs until it returns, not even ones whose timers are
//     due. Other Troupe processes run on. A goroutine blocked in Receive
//     therefore also holds up every other goroutine of the process; keep
//     receiving on one goroutine, or poll with TryReceive.
//   - So does a socket call that waits (Accept, DialTCP, Read, a Write
//     while the socket's buffer is full, ReadFrom, WriteTo, LookupHost): a
//     goroutine in conn.Read holds up the goroutine that would write to the
//     same connection, or receive a message. Serve each connection in a
//     process of its own, and bound waits with deadlines.
//   - time.Sleep and timers are Go's: a sleeping goroutine lets the other
//     goroutines of the process run, and when all of them wait on timers the
//     Go runtime calls WASI poll_oneoff, which suspends only this process in
//     the Troupe VM.
//   - Goroutines are not preempted on wasm: a goroutine in a busy loop keeps
//     the other goroutines of its process from running until it blocks. The
//     VM still preempts the process itself (about every millisecond), so
//     other processes are never starved.
//   - SendAfter timers run in the VM, so they fire while the process waits
//     in Receive (a Go timer would not).
//   - Sending never blocks.
//
// Measured under troupe run --threads 1: a goroutine ticking every 20 ms
// does not tick while main waits 200 ms in Receive; main's time.Sleep(10ms)
// takes 100 ms while another goroutine waits in ReceiveTimeout(100ms), and
// 200 ms while another goroutine spins for 200 ms; meanwhile other Go
// processes sleeping or spinning finish on time.
//
// # Networking
//
// With permission from the VM (troupe run --allow-net), ListenTCP, DialTCP,
// ListenUDP and LookupHost give sockets: *TCPListener is a net.Listener,
// *TCPConn a net.Conn, deadlines become the time-out of each call, and
// errors match os.ErrPermission, os.ErrDeadlineExceeded and net.ErrClosed
// (see Code.Is). A socket belongs to one process and moves to another
// inside a message: encoding a *TCPConn (or *TCPListener, *UDPConn) in
// Send, SendNamed, Reply.Send, Request or a spawn argument hands it over,
// and the receiver decodes a *TCPConn that owns it:
//
//	conn, _ := ln.AcceptTCP()
//	troupe.SpawnSelf("handler", conn) // a process per connection
//
// WithNet narrows a child's permission.
//
// # Ending
//
// A process ends when its main returns (reason normal) or calls os.Exit (a
// non-zero code is reported as such). A panic in a Go process prints the
// panic and exits with code 2: for the VM that is an exit code, not a trap.
// When the root process ends, the VM ends, and every other process with it.
package troupe
