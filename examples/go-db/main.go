// Command go-db talks to Postgres with github.com/lib/pq and to Redis with
// github.com/gomodule/redigo, over Troupe connections (troupe.Dialer), from
// many goroutines of one process at once. It prints "ok: CHECK" per check
// and "done" (exit 0), or "FAIL: CHECK: why" (exit 1).
//
//	troupe run --allow-net=127.0.0.1 go-db.wasm \
//	  "host=127.0.0.1 port=5432 user=troupe dbname=postgres sslmode=disable" 127.0.0.1:6379
package main

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/lib/pq"
	"troupe.dev/troupe"
)

var failed bool

func check(name string, err error) {
	if err != nil {
		fmt.Printf("FAIL: %s: %v\n", name, err)
		failed = true
		return
	}
	fmt.Printf("ok: %s\n", name)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go-db POSTGRES_DSN REDIS_ADDR")
		os.Exit(2)
	}
	postgres(os.Args[1])
	redisChecks(os.Args[2])
	if failed {
		os.Exit(1)
	}
	fmt.Println("done")
}

func postgres(dsn string) {
	connector, err := pq.NewConnector(dsn)
	if err != nil {
		check("postgres: connection string", err)
		return
	}
	connector.Dialer(troupe.Dialer{Timeout: 10 * time.Second})
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxOpenConns(8)

	check("postgres: ping", db.Ping())
	_, err = db.Exec(`CREATE TABLE IF NOT EXISTS gocheck (id serial PRIMARY KEY, who int NOT NULL, note text NOT NULL)`)
	check("postgres: create table", err)
	_, err = db.Exec(`TRUNCATE gocheck`)
	check("postgres: truncate", err)

	// 16 goroutines insert 25 rows each, sharing 8 connections: each
	// waits on its own socket while the others run.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if _, err := db.Exec(`INSERT INTO gocheck (who, note) VALUES ($1, $2)`, g, fmt.Sprintf("row %d of %d", i, g)); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	check("postgres: 400 inserts from 16 goroutines", <-errs)

	var count, writers int
	err = db.QueryRow(`SELECT count(*), count(DISTINCT who) FROM gocheck`).Scan(&count, &writers)
	if err == nil && (count != 400 || writers != 16) {
		err = fmt.Errorf("%d rows from %d writers", count, writers)
	}
	check("postgres: the rows are there", err)

	// A transaction rolled back leaves nothing.
	err = func() error {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO gocheck (who, note) VALUES (99, 'rolled back')`); err != nil {
			return err
		}
		if err := tx.Rollback(); err != nil {
			return err
		}
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM gocheck WHERE who = 99`).Scan(&n); err != nil || n != 0 {
			return fmt.Errorf("%d rows after the rollback, %v", n, err)
		}
		return nil
	}()
	check("postgres: a rolled back transaction", err)

	// A bad query is the server's error, and the connection stays usable.
	_, err = db.Exec(`SELEKT nothing`)
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) || pqErr.Code.Name() != "syntax_error" {
		check("postgres: a syntax error", fmt.Errorf("got %v", err))
	} else {
		check("postgres: a syntax error", db.Ping())
	}

	var text string
	err = db.QueryRow(`SELECT repeat('x', 1000000)`).Scan(&text)
	if err == nil && len(text) != 1000000 {
		err = fmt.Errorf("%d bytes", len(text))
	}
	check("postgres: a 1 MB value", err)
}

func redisChecks(addr string) {
	pool := &redis.Pool{
		MaxIdle: 4,
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", addr, redis.DialNetDial(troupe.Dialer{Timeout: 10 * time.Second}.Dial))
		},
	}
	defer pool.Close()
	c := pool.Get()
	defer c.Close()
	_, err := c.Do("SET", "gocheck:greeting", "hello from a Troupe process")
	check("redis: set", err)
	got, err := redis.String(c.Do("GET", "gocheck:greeting"))
	if err == nil && got != "hello from a Troupe process" {
		err = fmt.Errorf("got %q", got)
	}
	check("redis: get", err)

	// 8 goroutines INCR a counter 50 times each, on pooled connections.
	c.Do("DEL", "gocheck:counter")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := pool.Get()
			defer conn.Close()
			for i := 0; i < 50; i++ {
				if _, err := conn.Do("INCR", "gocheck:counter"); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	n, err := redis.Int(c.Do("GET", "gocheck:counter"))
	if err == nil && n != 400 {
		err = fmt.Errorf("counter %d", n)
	}
	check("redis: 400 INCRs from 8 goroutines", errors.Join(firstErr, err))

	// A pipeline.
	for i := 0; i < 100; i++ {
		c.Send("RPUSH", "gocheck:list", i)
	}
	c.Send("LRANGE", "gocheck:list", 0, -1)
	c.Send("DEL", "gocheck:list")
	c.Flush()
	var last []string
	for i := 0; i < 102; i++ {
		v, err := c.Receive()
		if err != nil {
			check("redis: a pipeline", err)
			return
		}
		if i == 100 {
			last, _ = redis.Strings(v, nil)
		}
	}
	var perr error
	if len(last) != 100 || last[99] != "99" {
		perr = fmt.Errorf("LRANGE gave %s", strings.Join(last, ","))
	}
	check("redis: a pipeline", perr)
}
