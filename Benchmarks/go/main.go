// Go net/http comparison server for the Vigil benchmarks (stdlib only).
//
//	GET /         -> 200 "Hello, World!" text/plain
//	GET /wait     -> blocks until the request's context is done (the client
//	                 went away) or 30 s pass; when it observes cancellation it
//	                 appends time.Now().UnixNano() (wall clock) to a list
//	GET /cancels  -> the recorded times, one per line, oldest first (never cleared)
//
// The /wait and /cancels routes have the same semantics as Vigil's demo
// server, so Benchmarks/cancel/cancel_latency can measure both.
//
// Usage: go-bench [--host 127.0.0.1] [--port 8080]
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	mu      sync.Mutex
	cancels []int64
)

func hello(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", "13")
	w.Write([]byte("Hello, World!"))
}

func wait(w http.ResponseWriter, r *http.Request) {
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-r.Context().Done():
		now := time.Now().UnixNano()
		mu.Lock()
		cancels = append(cancels, now)
		mu.Unlock()
		return
	case <-t.C:
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("waited 30s\n"))
	}
}

func listCancels(w http.ResponseWriter, r *http.Request) {
	mu.Lock()
	var b strings.Builder
	for _, t := range cancels {
		b.WriteString(strconv.FormatInt(t, 10))
		b.WriteByte('\n')
	}
	mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.Write([]byte(b.String()))
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 8080, "port to listen on")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("/", hello)
	mux.HandleFunc("/wait", wait)
	mux.HandleFunc("/cancels", listCancels)

	addr := net.JoinHostPort(*host, strconv.Itoa(*port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("go-bench: %v", err)
	}
	fmt.Printf("go-bench listening on %s\n", addr)
	log.Fatal(http.Serve(ln, mux))
}
