package troupe

import (
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"troupe.dev/troupe/bincode"
)

// The server messages have the Rust SDK's layout (enum Msg<C, R, K, I>),
// so Go and Rust callers and servers understand each other.
func TestServerMessagesHaveTheRustLayout(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  serverMsg[uint32, uint64, uint16, bool]
		hex  string
	}{
		{"call", serverMsg[uint32, uint64, uint16, bool]{kind: msgCall, call: 7, from: Caller[uint64]{Pid: 2, Tag: 1 << 62}},
			"00000000" + "07000000" + "0200000000000000" + "0000000000000040"},
		{"cast", serverMsg[uint32, uint64, uint16, bool]{kind: msgCast, cast: 9}, "01000000" + "0900"},
		{"info", serverMsg[uint32, uint64, uint16, bool]{kind: msgInfo, info: true}, "02000000" + "01"},
		{"stop", serverMsg[uint32, uint64, uint16, bool]{kind: msgStop, stop: ExitShutdown{}}, "03000000" + "07000000"},
	} {
		b, err := bincode.Marshal(&tc.msg)
		if err != nil || hex.EncodeToString(b) != tc.hex {
			t.Errorf("%s: %x, %v; want %s", tc.name, b, err, tc.hex)
			continue
		}
		var back serverMsg[uint32, uint64, uint16, bool]
		if err := bincode.Unmarshal(b, &back); err != nil || back.kind != tc.msg.kind ||
			back.call != tc.msg.call || back.from != tc.msg.from || back.cast != tc.msg.cast ||
			back.info != tc.msg.info {
			t.Errorf("%s: decoded %+v, %v", tc.name, back, err)
		}
	}
	var bad serverMsg[uint32, uint64, uint16, bool]
	if err := bincode.Unmarshal([]byte{9, 0, 0, 0}, &bad); err == nil {
		t.Error("variant 9 decoded")
	}
}

// The start acknowledgement is Rust's Result<(), NotStarted>.
func TestStartAcknowledgementsHaveTheRustLayout(t *testing.T) {
	reason, _ := CustomReason("x")
	for _, tc := range []struct {
		ack serverAck
		hex string
	}{
		{serverAck{ok: true}, "00000000"},
		{serverAck{owner: 5}, "01000000" + "00000000" + "0500000000000000"},
		{serverAck{reason: reason}, "01000000" + "01000000" + "05000000" + "0900000000000000" + "010000000000000078"},
	} {
		b, err := bincode.Marshal(&tc.ack)
		if err != nil || hex.EncodeToString(b) != tc.hex {
			t.Errorf("%+v: %x, %v; want %s", tc.ack, b, err, tc.hex)
			continue
		}
		var back serverAck
		if err := bincode.Unmarshal(b, &back); err != nil || back.ok != tc.ack.ok || back.owner != tc.ack.owner ||
			!sameReason(orNormal(back.reason), orNormal(tc.ack.reason)) {
			t.Errorf("%x decoded %+v, %v", b, back, err)
		}
	}
}

// A server's spawn argument is its header, then init's argument, however
// the starter encoded it (a supervisor passes one already encoded).
func TestAStartArgumentIsItsHeaderThenInitsArgument(t *testing.T) {
	out := serverStartOut{Ack: Caller[serverAck]{Pid: 3, Tag: 4}, Name: bincode.Some("kv"), Arg: uint32(6)}
	b, err := bincode.Marshal(&out)
	if err != nil {
		t.Fatal(err)
	}
	raw := serverStartOut{Ack: out.Ack, Name: out.Name, Arg: rawArg([]byte{6, 0, 0, 0})}
	b2, err := bincode.Marshal(&raw)
	if err != nil || string(b) != string(b2) {
		t.Fatalf("raw argument: %x, %v; want %x", b2, err, b)
	}
	var in serverStart[uint32]
	if err := bincode.Unmarshal(b, &in); err != nil || in.Ack != out.Ack || in.Name != out.Name || in.Arg != 6 {
		t.Fatalf("decoded %+v, %v", in, err)
	}
	none := serverStartOut{Ack: out.Ack}
	b, err = bincode.Marshal(&none)
	var unit serverStart[struct{}]
	if err != nil || bincode.Unmarshal(b, &unit) != nil {
		t.Fatalf("no argument: %x, %v", b, err)
	}
}

// A ServerRef is its pid on the wire, as the Rust SDK's.
func TestAServerRefIsItsPid(t *testing.T) {
	b, err := bincode.Marshal(SupervisorRef{ServerRef[supCall, supReply, struct{}, struct{}]{Pid: 9}})
	if err != nil || hex.EncodeToString(b) != "0900000000000000" {
		t.Fatalf("%x, %v", b, err)
	}
}

// Child specs travel in messages (StartChild) and keep every field; an
// argument that does not encode is an error before anything is sent.
func TestChildSpecsTravelInMessages(t *testing.T) {
	spec := SupervisorSpec{Strategy: RestForOne, Intensity: 3, Period: 1500 * time.Millisecond,
		Children: []ChildSpec{
			WorkerChild("w", "worker", uint32(5)).WithRestart(Transient),
			ServerChild("s", "kv", "cfg").WithName("kv").WithShutdown(BrutalKill),
		}}
	nested := SupervisorChild("inner", "sup", spec)
	b, err := bincode.Marshal(&nested)
	if err != nil {
		t.Fatal(err)
	}
	var back ChildSpec
	if err := bincode.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != "inner" || back.Kind != SupervisorKind || back.Shutdown != ShutdownInfinity {
		t.Fatalf("decoded %+v", back)
	}
	var inner SupervisorSpec
	if err := bincode.Unmarshal(back.Arg, &inner); err != nil {
		t.Fatal(err)
	}
	if inner.Strategy != RestForOne || inner.Intensity != 3 || inner.Period != 1500*time.Millisecond ||
		len(inner.Children) != 2 || inner.Children[0].Restart != Transient ||
		inner.Children[1].Name != "kv" || inner.Children[1].Shutdown != BrutalKill ||
		inner.Children[0].Shutdown != DefaultShutdown {
		t.Fatalf("inner spec %+v", inner)
	}
	bad := WorkerChild("bad", "worker", make(chan int))
	if bad.err == nil {
		t.Fatal("a channel argument encoded")
	}
	if _, err := StartSupervisor("sup", SupervisorSpec{Children: []ChildSpec{bad}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("StartSupervisor with a bad child: %v", err)
	}
}

func TestServerErrorsMatchTheirCodes(t *testing.T) {
	if !errors.Is(&ServerError{Op: "call", Reason: ExitNoProc{}}, ErrNoProcess) {
		t.Error("noproc is not ErrNoProcess")
	}
	if errors.Is(&ServerError{Op: "call", Reason: ExitKilled{}}, ErrNoProcess) {
		t.Error("killed is ErrNoProcess")
	}
	if !errors.Is(&AlreadyStartedError{Name: "x", Pid: 2}, ErrAlreadyRegistered) {
		t.Error("already started is not ErrAlreadyRegistered")
	}
	e := &SupervisorError{Op: "delete_child", Message: "m", code: supErrRunning}
	if !errors.Is(e, ErrChildRunning) || errors.Is(e, ErrChildNotFound) {
		t.Error("supervisor error codes")
	}
}
