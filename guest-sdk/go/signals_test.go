package troupe

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"

	"troupe.dev/troupe/abi"
	"troupe.dev/troupe/bincode"
)

// The exit reasons have the ABI's layout (and so the Rust SDK's).
func TestExitReasonsEncodeAsTheABISays(t *testing.T) {
	kinds := map[uint32]ExitReason{
		abi.ReasonNormal:   ExitNormal{},
		abi.ReasonTrap:     ExitTrap("x"),
		abi.ReasonKilled:   ExitKilled{},
		abi.ReasonLimit:    ExitLimit(LimitFuel),
		abi.ReasonExitCode: ExitCode(3),
		abi.ReasonCustom:   ExitCustom{1},
		abi.ReasonNoproc:   ExitNoProc{},
		abi.ReasonShutdown: ExitShutdown{},
	}
	for kind, r := range kinds {
		b, err := bincode.Marshal(&r)
		if err != nil || binary.LittleEndian.Uint32(b) != kind {
			t.Errorf("%v encodes as %x (%v), kind %d", r, b, err, kind)
		}
		var back ExitReason
		if err := bincode.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, r) {
			t.Errorf("%v decodes as %v (%v)", r, back, err)
		}
	}
	b, _ := bincode.Marshal(ExitTrap("ab"))
	if !bytes.Equal(b, []byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 'a', 'b'}) {
		t.Errorf("ExitTrap(ab) = %x", b)
	}
	b, _ = bincode.Marshal(ExitLimit(LimitFuel))
	if !bytes.Equal(b, []byte{3, 0, 0, 0, byte(abi.ReasonLimitFuel), 0, 0, 0}) {
		t.Errorf("ExitLimit(fuel) = %x", b)
	}
	if IsAbnormal(ExitNormal{}) || IsAbnormal(ExitShutdown{}) || !IsAbnormal(ExitKilled{}) {
		t.Error("IsAbnormal")
	}
}

func TestDownAndExitPayloadsDecode(t *testing.T) {
	down := binary.LittleEndian.AppendUint64(nil, 7)
	down = binary.LittleEndian.AppendUint64(down, 9)
	down, _ = bincode.Append(down, ExitKilled{})
	e, err := systemEvent(abi.TagDown, 9, down)
	if err != nil || e != (Event{Kind: EventDown, From: 9, Monitor: 7, Reason: ExitKilled{}}) {
		t.Fatalf("down: %+v %v", e, err)
	}
	custom, _ := CustomReason("bye")
	exit := binary.LittleEndian.AppendUint64(nil, 4)
	exit, _ = bincode.Append(exit, custom)
	e, err = systemEvent(abi.TagExit, 4, exit)
	var s string
	if err != nil || e.Kind != EventExit || e.From != 4 ||
		bincode.Unmarshal(e.Reason.(ExitCustom), &s) != nil || s != "bye" {
		t.Fatalf("exit: %+v %v", e, err)
	}
	if _, err := systemEvent(abi.TagExit, 4, []byte{1, 2}); err == nil {
		t.Fatal("a short payload must not decode")
	}
}
