// Command httpcheck serves HTTP with net/http on a Troupe listener, in one
// process, while one goroutine waits for messages in troupe.Receive and
// another ticks: the CLI tests (cli/tests/all/services.rs) drive it with
// many clients at once, an idle connection, malformed requests and
// clients that leave mid-response. It prints "httpcheck: listening on
// ADDR" once it serves.
//
//	GOOS=wasip1 GOARCH=wasm go build -o httpcheck.wasm ./examples/httpcheck
//	troupe run --allow-net=127.0.0.1 httpcheck.wasm [ADDR]
//
// Endpoints:
//
//	GET  /hello      {"hello":"world"}
//	POST /echo       the request's body
//	GET  /big?n=N    N bytes (default 8 MiB)
//	POST /message    sends this process a message (the body, as a string)
//	GET  /received   the messages the Receive goroutine got, as JSON
//	GET  /ticks      how many times the ticker goroutine ticked (every 5 ms)
//	POST /quit       closes every connection and ends (exit 0, "httpcheck: closed")
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"troupe.dev/troupe"
)

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ln, err := troupe.ListenTCP(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpcheck:", err)
		os.Exit(1)
	}

	// A goroutine that waits for messages all the time.
	var mu sync.Mutex
	received := []string{}
	go func() {
		for {
			var text string
			if _, err := troupe.Receive(&text); err != nil {
				fmt.Fprintln(os.Stderr, "httpcheck: receive:", err)
				continue
			}
			mu.Lock()
			received = append(received, text)
			mu.Unlock()
		}
	}()
	// And one that ticks.
	var ticks atomic.Int64
	go func() {
		for range time.Tick(5 * time.Millisecond) {
			ticks.Add(1)
		}
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"hello": "world"})
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		n := 8 << 20
		if v, err := strconv.Atoi(r.URL.Query().Get("n")); err == nil && v >= 0 {
			n = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for n > 0 {
			part := chunk[:min(n, len(chunk))]
			if _, err := w.Write(part); err != nil {
				return // the client left
			}
			n -= len(part)
		}
	})
	mux.HandleFunc("POST /message", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := troupe.Self().Send(string(body)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /received", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(w).Encode(received)
	})
	mux.HandleFunc("GET /ticks", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, ticks.Load())
	})

	server := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute}
	closed := make(chan struct{})
	mux.HandleFunc("POST /quit", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		go func() {
			server.Close()
			close(closed)
		}()
	})

	fmt.Printf("httpcheck: listening on %s\n", ln.Addr())
	if err := server.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "httpcheck: serve:", err)
		os.Exit(1)
	}
	<-closed
	fmt.Println("httpcheck: closed")
}
