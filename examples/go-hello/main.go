// Command go-hello is a plain Go wasip1 program that knows nothing of
// Troupe: it prints what a process sees (platform, arguments, environment,
// the preopened directory /data, optionally stdin) and exits with a chosen
// code. It behaves the same under `troupe run` and `wasmtime run`.
//
// Options: --stdin reads stdin to its end and prints its length; --exit N
// exits with code N; --panic panics (a Go panic exits with code 2).
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
)

func main() {
	fmt.Println("Hello from Go on Troupe!")
	fmt.Printf("runtime: %s/%s %s\n", runtime.GOOS, runtime.GOARCH, runtime.Version())

	for i, arg := range os.Args {
		fmt.Printf("arg[%d] = %s\n", i, arg)
	}

	env := os.Environ()
	sort.Strings(env)
	fmt.Printf("env: %d variable(s)\n", len(env))
	for _, kv := range env {
		fmt.Printf("env %s\n", kv)
	}

	if entries, err := os.ReadDir("/data"); err != nil {
		fmt.Printf("/data: not available (%v)\n", err)
	} else {
		fmt.Printf("/data: %d entries\n", len(entries))
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() {
				name += "/"
			}
			fmt.Printf("/data/%s\n", name)
		}
	}

	for i, arg := range os.Args {
		switch arg {
		case "--stdin":
			input, err := io.ReadAll(os.Stdin)
			if err != nil {
				fmt.Fprintf(os.Stderr, "go-hello: reading stdin: %v\n", err)
				os.Exit(1)
			}
			fmt.Printf("stdin: %d bytes\n", len(input))
		case "--panic":
			panic("go-hello was asked to panic")
		case "--exit":
			code := -1
			if i+1 < len(os.Args) {
				code, _ = strconv.Atoi(os.Args[i+1])
			}
			if code < 0 {
				fmt.Fprintln(os.Stderr, "go-hello: --exit needs a number")
				os.Exit(2)
			}
			fmt.Printf("exiting with code %d\n", code)
			os.Exit(code)
		}
	}
}
