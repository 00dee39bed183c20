// Go net/http comparison server for the Vigil benchmarks (stdlib only).
//
//	GET /         -> 200 "Hello, World!" text/plain
//	GET /wait     -> blocks until the request's context is done (the client
//	                 went away) or 30 s pass; when it observes cancellation it
//	                 appends time.Now().UnixNano() (wall clock) to a list
//	GET /cancels  -> the recorded times, one per line, oldest first (never cleared)
//	POST /echo    -> 200 with the request body (read whole first: Go's HTTP/1
//	                 server does not promise reads after the response began)
//	GET /stream?n=N[&size=B][&ms=M] -> chunked: N chunks of B bytes ('x'), or
//	                 "chunk i\n" lines without size; M ms between chunks (a
//	                 flush after each), stopping when the client goes away
//
// The /wait and /cancels routes have the same semantics as Vigil's demo
// server, so Benchmarks/cancel/cancel_latency can measure both.
//
// Usage: go-bench [--host 127.0.0.1] [--port 8080]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
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

func echo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := io.Copy(&buf, r.Body); err != nil {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Write(buf.Bytes())
}

func queryInt(r *http.Request, key string, def int) int {
	if v, err := strconv.Atoi(r.URL.Query().Get(key)); err == nil && v >= 0 {
		return v
	}
	return def
}

func stream(w http.ResponseWriter, r *http.Request) {
	n := queryInt(r, "n", 10)
	size := queryInt(r, "size", 0)
	ms := queryInt(r, "ms", 0)
	w.Header().Set("Content-Type", "text/plain")
	flusher, _ := w.(http.Flusher)
	var block []byte
	if size > 0 {
		block = bytes.Repeat([]byte{'x'}, size)
	}
	var ticker *time.Ticker
	if ms > 0 {
		ticker = time.NewTicker(time.Duration(ms) * time.Millisecond)
		defer ticker.Stop()
	}
	ctx := r.Context()
	for i := 0; i < n; i++ {
		if ticker != nil && i > 0 {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
		var err error
		if block != nil {
			_, err = w.Write(block)
		} else {
			_, err = fmt.Fprintf(w, "chunk %d\n", i)
		}
		if err != nil {
			return
		}
		if ms > 0 && flusher != nil {
			flusher.Flush()
		}
	}
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 8080, "port to listen on")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("/", hello)
	mux.HandleFunc("/wait", wait)
	mux.HandleFunc("/cancels", listCancels)
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("/stream", stream)

	addr := net.JoinHostPort(*host, strconv.Itoa(*port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("go-bench: %v", err)
	}
	fmt.Printf("go-bench listening on %s\n", addr)
	log.Fatal(http.Serve(ln, mux))
}
