// Command http is the HTTP benchmark's Go server (benches/http.sh): one
// small JSON endpoint on net/http, GET /hello. The same program runs
// natively (GOOS=linux: net.Listen) and in a Troupe process (GOOS=wasip1:
// troupe.ListenTCP); only listen_*.go differs.
//
//	http [ADDR]     prints "http: listening on ADDR", serves until killed
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
)

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ln, err := listen(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "http:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"hello": "world"})
	})
	fmt.Printf("http: listening on %s\n", ln.Addr())
	fmt.Fprintln(os.Stderr, http.Serve(ln, mux))
	os.Exit(1)
}
