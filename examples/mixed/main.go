// Command mixed is the Go half of the mixed example: a leader or a follower
// that exchanges typed messages with the other half, written in Rust
// (rust/src/main.rs). The two programs are the same protocol in two
// languages, so either can lead:
//
//	troupe run --dir DIR::/modules mixed.wasm /modules/mixed-rust.wasm
//	troupe run --dir DIR::/modules mixed-rust.wasm /modules/mixed.wasm
//
// The leader loads the other module from a preopened directory, starts it
// with Module.SpawnStart (argv [mixed --follow], spawn argument Hello),
// sends it an order to price (Go -> Rust request, Rust -> Go reply, or the
// other way round), answers the follower's echo request, and gets its final
// report.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"troupe.dev/troupe"
	"troupe.dev/troupe/bincode"
)

const lang = "go"

// The Go mirrors of the Rust types, field by field.

// Hello is the follower's spawn argument.
type Hello struct {
	Lang   string
	Leader troupe.Pid
}

type Item struct {
	Sku   string
	Qty   uint32
	Price float64
}

type Order struct {
	ID       uint64
	Customer string
	Items    []Item
	Note     bincode.Option[string]
	Express  bool
}

type Quote struct {
	OrderID uint64
	Total   float64
	Lines   uint32
	By      string
}

type Report struct {
	Lang   string
	Echoed string
}

// Request is the Rust enum
// Request { Price(Order, Reply<Quote>), Echo(String, Reply<String>), Done(Report) }.
type Request interface{ isRequest() }

type (
	// Price asks to price an order (leader -> follower).
	Price struct {
		Order Order
		Reply troupe.Reply
	}
	// Echo asks to echo a text back (follower -> leader).
	Echo struct {
		Text  string
		Reply troupe.Reply
	}
	// Done is the follower's report (follower -> leader).
	Done Report
)

func (Price) isRequest() {}
func (Echo) isRequest()  {}
func (Done) isRequest()  {}

func init() { bincode.RegisterEnum[Request](Price{}, Echo{}, Done{}) }

func order() Order {
	return Order{
		ID:       7,
		Customer: "Zoë",
		Items:    []Item{{"tea", 2, 3.25}, {"cup", 1, 9.5}},
		Note:     bincode.Some("fragile ✓"),
		Express:  true,
	}
}

func quote(o Order) Quote {
	total := 0.0
	for _, i := range o.Items {
		total += float64(i.Qty) * i.Price
	}
	return Quote{OrderID: o.ID, Total: total, Lines: uint32(len(o.Items)), By: lang}
}

func fail(what string, err any) {
	fmt.Fprintf(os.Stderr, "mixed (%s): %s: %v\n", lang, what, err)
	os.Exit(1)
}

const timeout = 10 * time.Second

func follower() {
	var hello Hello
	if _, err := troupe.SpawnArg(&hello); err != nil {
		fail("spawn argument", err)
	}
	fmt.Printf("follower (%s) %v: hello from the %s leader %v\n", lang, troupe.Self(), hello.Lang, hello.Leader)
	var req Request
	if _, err := troupe.ReceiveTimeout(&req, timeout); err != nil {
		fail("receive", err)
	}
	price, ok := req.(Price)
	if !ok {
		fail("unexpected message", fmt.Sprintf("%#v", req))
	}
	o := price.Order
	fmt.Printf("follower (%s): pricing order %d for %s (%d items, note %v, express %v)\n",
		lang, o.ID, o.Customer, len(o.Items), o.Note, o.Express)
	if err := price.Reply.Send(quote(o)); err != nil {
		fail("reply", err)
	}
	text := fmt.Sprintf("hi from %s %v", lang, troupe.Self())
	var echoed string
	echo := func(r troupe.Reply) any { return Echo{text, r} }
	if err := troupe.RequestTimeout(hello.Leader, echo, &echoed, timeout); err != nil {
		fail("echo request", err)
	}
	fmt.Printf("follower (%s): the leader echoed %q\n", lang, echoed)
	if err := hello.Leader.Send(Done{Lang: lang, Echoed: echoed}); err != nil {
		fail("send", err)
	}
}

func leader(path string) {
	module, err := troupe.LoadModuleFile(path)
	if err != nil {
		fail("load", err)
	}
	pid, err := module.SpawnStart(Hello{Lang: lang, Leader: troupe.Self()}, troupe.WithArgs("mixed", "--follow"))
	if err != nil {
		fail("spawn", err)
	}
	fmt.Printf("leader (%s) %v: spawned %s as %v\n", lang, troupe.Self(), path, pid)

	o := order()
	var q Quote
	price := func(r troupe.Reply) any { return Price{o, r} }
	if err := troupe.RequestTimeout(pid, price, &q, timeout); err != nil {
		fail("price request", err)
	}
	fmt.Printf("leader (%s): quote for order %d from the %s follower: %d lines, total %.2f\n",
		lang, q.OrderID, q.By, q.Lines, q.Total)
	want := quote(o)
	want.By = q.By
	if q != want {
		fail("quote", fmt.Sprintf("got %+v, expected %+v", q, want))
	}

	var req Request
	if _, err := troupe.ReceiveTimeout(&req, timeout); err != nil {
		fail("receive", err)
	}
	echo, ok := req.(Echo)
	if !ok {
		fail("unexpected message", fmt.Sprintf("%#v", req))
	}
	fmt.Printf("leader (%s): echoing %q\n", lang, echo.Text)
	if err := echo.Reply.Send(echo.Text + " / echoed by " + lang); err != nil {
		fail("reply", err)
	}

	if _, err := troupe.ReceiveTimeout(&req, timeout); err != nil {
		fail("receive", err)
	}
	done, ok := req.(Done)
	if !ok {
		fail("unexpected message", fmt.Sprintf("%#v", req))
	}
	fmt.Printf("leader (%s): the %s follower is done, it got %q\n", lang, done.Lang, done.Echoed)
	if !strings.HasSuffix(done.Echoed, "/ echoed by "+lang) {
		fail("report", fmt.Sprintf("%+v", done))
	}
	fmt.Printf("mixed: OK (%s leader, %s follower)\n", lang, done.Lang)
}

func main() {
	for _, a := range os.Args[1:] {
		if a == "--follow" {
			follower()
			return
		}
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mixed MODULE.wasm   (the follower module, e.g. /modules/mixed-rust.wasm)")
		os.Exit(2)
	}
	leader(os.Args[1])
}
