// Command orders is the orders service of examples/orders: a JSON HTTP API
// on net/http, Postgres behind it through database/sql and lib/pq, in a
// Troupe process, under the SDK's Supervisor (restarted when it fails, up
// to a limit).
//
//	troupe run --allow-net=0.0.0.0:8080,127.0.0.1:5432 orders.wasm
//
// Environment: ORDERS_LISTEN (default 0.0.0.0:8080), ORDERS_DATABASE (a
// lib/pq connection string, default "host=127.0.0.1 port=5432 user=orders
// dbname=orders sslmode=disable"), ORDERS_MAX_CONNS (the database pool,
// default 8), ORDERS_DEMO_CRASH=1 (adds POST /crash, which makes the
// service fail, to show the restart).
//
// API:
//
//	POST /orders   {"item": "coffee", "quantity": 2}  -> 201 the order
//	GET  /orders   the latest 100 orders, newest first
//	GET  /health   200 "ok", or 503 if the database does not answer
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
	"troupe.dev/troupe"
)

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	switch troupe.Role() {
	case "api":
		api()
		return
	case "sup":
		troupe.Supervise()
	}
	supervise()
}

// supervise starts the supervisor of the api process (the SDK's
// Supervisor, OTP's one_for_one: the api process is restarted each time it
// fails, at most 5 times in 10 seconds; one more and the supervisor gives
// up) and waits until it ends.
func supervise() {
	sup, err := troupe.StartSupervisor("sup", troupe.SupervisorSpec{
		Strategy: troupe.OneForOne, Intensity: 5, Period: 10 * time.Second,
		Children: []troupe.ChildSpec{troupe.WorkerChild("api", "api", nil)},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "orders: cannot start the api process:", err)
		os.Exit(1)
	}
	troupe.Monitor(sup.Pid)
	ev, _ := troupe.ReceiveDown(troupe.Forever)
	fmt.Fprintf(os.Stderr, "orders: the supervisor ended (%v): giving up\n", ev.Reason)
	os.Exit(1)
}

// Order is one order, as the API shows it.
type Order struct {
	ID        int64     `json:"id"`
	Item      string    `json:"item"`
	Quantity  int       `json:"quantity"`
	CreatedAt time.Time `json:"created_at"`
}

func api() {
	troupe.SpawnArg(&struct{}{})
	connector, err := pq.NewConnector(env("ORDERS_DATABASE",
		"host=127.0.0.1 port=5432 user=orders dbname=orders sslmode=disable"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "orders: ORDERS_DATABASE:", err)
		os.Exit(2)
	}
	connector.Dialer(troupe.Dialer{Timeout: 5 * time.Second})
	db := sql.OpenDB(connector)
	conns, _ := strconv.Atoi(env("ORDERS_MAX_CONNS", "8"))
	db.SetMaxOpenConns(max(conns, 1))
	db.SetMaxIdleConns(max(conns, 1))

	// The schema, once the database answers (it may start after us).
	for attempt := 0; ; attempt++ {
		_, err = db.Exec(`CREATE TABLE IF NOT EXISTS orders (
			id bigserial PRIMARY KEY,
			item text NOT NULL,
			quantity int NOT NULL CHECK (quantity > 0),
			created_at timestamptz NOT NULL DEFAULT now())`)
		if err == nil {
			break
		}
		if attempt == 60 {
			fmt.Fprintln(os.Stderr, "orders: the database does not answer:", err)
			os.Exit(1)
		}
		time.Sleep(500 * time.Millisecond)
	}

	ln, err := troupe.ListenTCP(env("ORDERS_LISTEN", "0.0.0.0:8080"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "orders: listen:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) { createOrder(db, w, r) })
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, r *http.Request) { listOrders(db, w, r) })
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := db.PingContext(ctx); err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if os.Getenv("ORDERS_DEMO_CRASH") == "1" {
		mux.HandleFunc("POST /crash", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
			w.(http.Flusher).Flush()
			go func() { panic("orders: crashed on request (POST /crash)") }()
		})
	}
	fmt.Printf("orders: serving on %s (process %v)\n", ln.Addr(), troupe.Self())
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	err = server.Serve(ln)
	fmt.Fprintln(os.Stderr, "orders: serve:", err)
	os.Exit(1)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// databaseFailed answers a database error: 503 if the database cannot be
// reached (it may come back: database/sql reconnects), else 500.
func databaseFailed(w http.ResponseWriter, err error) {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		fail(w, http.StatusInternalServerError, "database: %s", pqErr.Message)
		return
	}
	fail(w, http.StatusServiceUnavailable, "database unavailable: %v", err)
}

func createOrder(db *sql.DB, w http.ResponseWriter, r *http.Request) {
	var in struct {
		Item     string `json:"item"`
		Quantity int    `json:"quantity"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fail(w, http.StatusBadRequest, "the body is not an order: %v", err)
		return
	}
	in.Item = strings.TrimSpace(in.Item)
	if in.Item == "" || len(in.Item) > 200 || in.Quantity <= 0 || in.Quantity > 1000 {
		fail(w, http.StatusBadRequest, "an order needs an item (1 to 200 bytes) and a quantity from 1 to 1000")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	o := Order{Item: in.Item, Quantity: in.Quantity}
	err := db.QueryRowContext(ctx,
		`INSERT INTO orders (item, quantity) VALUES ($1, $2) RETURNING id, created_at`,
		o.Item, o.Quantity).Scan(&o.ID, &o.CreatedAt)
	if err != nil {
		databaseFailed(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, o)
}

func listOrders(db *sql.DB, w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx,
		`SELECT id, item, quantity, created_at FROM orders ORDER BY id DESC LIMIT 100`)
	if err != nil {
		databaseFailed(w, err)
		return
	}
	defer rows.Close()
	orders := []Order{}
	for rows.Next() {
		var o Order
		if err := rows.Scan(&o.ID, &o.Item, &o.Quantity, &o.CreatedAt); err != nil {
			databaseFailed(w, err)
			return
		}
		orders = append(orders, o)
	}
	if err := rows.Err(); err != nil {
		databaseFailed(w, err)
		return
	}
	writeJSON(w, http.StatusOK, orders)
}
