// main.go - the Go net/http side of the differential framing fuzzer
// (fuzz/diff/README.md). Answers every request net/http parses with a
// report of what it parsed; see fuzz/diff/vigil_report.c for the format,
// which all three servers share byte for byte.
//
//	vigil-diff-go --port N   (127.0.0.1; 0 picks one; prints "listening P")
//
// The whole body is read before answering. A body whose framing net/http
// refuses (bad chunked encoding) is answered 400 with Connection: close,
// as net/http's own 400s are; a body cut short by the client's FIN closes
// the connection without an answer (what net/http does with a head cut
// short).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// jsonStr escapes byte by byte: printable ASCII as is, the rest \u00XX.
func jsonStr(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			fmt.Fprintf(&b, "\\u00%02x", c)
		} else {
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func handler(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("Connection", "close")
		http.Error(w, "400 Bad Request: "+err.Error(), http.StatusBadRequest)
		return
	}
	report := fmt.Sprintf(`{"server":"go","method":%s,"target":%s,"version":"%d.%d","body_len":%d,"sha256":"%s"}`,
		jsonStr(r.Method), jsonStr(r.RequestURI), r.ProtoMajor, r.ProtoMinor, n,
		hex.EncodeToString(h.Sum(nil)))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Report", report)
	w.Header().Set("Content-Length", fmt.Sprint(len(report)))
	if r.Method == "CONNECT" {
		w.Header().Set("Connection", "close")
	}
	io.WriteString(w, report)
}

func main() {
	port := flag.Int("port", 0, "port (0: any)")
	flag.Parse()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(handler),
		ReadHeaderTimeout: 20 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          nil,
	}
	fmt.Printf("listening %d\n", ln.Addr().(*net.TCPAddr).Port)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sigs; srv.Close() }()
	srv.Serve(ln)
}
