package troupe

import (
	"sync/atomic"
	"time"

	"troupe.dev/troupe/abi"
)

// Reply is the handle a server answers a request with: the requester's
// pid and a reply tag that the requester alone waits on. In messages it is
// two u64 (pid, then tag), the layout of the Rust SDK's Reply<R>, so Go and
// Rust processes can serve each other's requests.
//
// Put a Reply in a request message (see Request); the server answers with
// Reply.Send.
type Reply struct {
	Pid Pid
	Tag uint64
}

var replyTag atomic.Uint64

// followingReplyTag is the reply tag after tag: the range
// abi.TagReplyBase ..< abi.TagSystemBase, wrapping.
func followingReplyTag(tag uint64) uint64 {
	if tag+1 >= abi.TagSystemBase || tag < abi.TagReplyBase {
		return abi.TagReplyBase
	}
	return tag + 1
}

// nextReplyTag is a fresh reply tag of this process.
func nextReplyTag() uint64 {
	for {
		old := replyTag.Load()
		tag := old
		if tag == 0 {
			tag = abi.TagReplyBase
		}
		if replyTag.CompareAndSwap(old, followingReplyTag(tag)) {
			return tag
		}
	}
}

// NewReply makes a reply handle with a fresh tag, for requests made by hand
// (for example many requests sent before the answers are awaited with
// Wait). Request does this for you.
func NewReply() Reply { return Reply{Pid: Self(), Tag: nextReplyTag()} }

// Send answers the request with v (bincode). A requester that has exited
// gives ErrNoProcess; one that gave up waiting gets the answer in its
// mailbox, where it stays unread.
func (r Reply) Send(v any) error { return sendValue("reply", r.Pid, r.Tag, v) }

// Wait waits for the answer to this reply handle and decodes it into the
// value resp points to. Only the answer is selected: other messages stay
// queued.
func (r Reply) Wait(resp any) error { return r.WaitTimeout(resp, Forever) }

// WaitTimeout is Wait giving up after d (ErrTimeout). An answer arriving
// later stays in the mailbox.
func (r Reply) WaitTimeout(resp any, d time.Duration) error {
	_, err := receiveDecoded(r.Tag, d, resp, errRequestTimeout)
	return err
}

// Request sends p the message makeMsg builds around a fresh Reply handle
// and waits for the answer, which it decodes into the value resp points to:
//
//	var total uint64
//	err := troupe.Request(counter, func(r troupe.Reply) any { return Get{r} }, &total)
//
// It waits forever if the server never answers, including when it dies
// after receiving the request; RequestTimeout does not.
func Request(p Pid, makeMsg func(Reply) any, resp any) error {
	return RequestTimeout(p, makeMsg, resp, Forever)
}

// RequestTimeout is Request giving up after d (ErrTimeout).
func RequestTimeout(p Pid, makeMsg func(Reply) any, resp any, d time.Duration) error {
	r := NewReply()
	if err := sendValue("request", p, abi.TagData, makeMsg(r)); err != nil {
		return err
	}
	return r.WaitTimeout(resp, d)
}
