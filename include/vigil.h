/*
 * vigil.h - the public C API of Vigil, an HTTP/1.1 server core over libuv
 * that notices at once when a client goes away.
 *
 * Model
 * -----
 * A server owns one or more event loops, each on its own thread. Every
 * connection belongs to one loop, and every callback you register in
 * vigil_config_t runs on the loop thread of the connection it concerns.
 * Do not block in a callback: hand slow work to another thread. All the
 * request and response functions below may be called from any thread; calls
 * made off the loop thread are queued to the loop (uv_async_send) and run in
 * order.
 *
 * While a connection is open its read is always armed, so a FIN, an RST or a
 * failed write is seen immediately, even while your handler runs or the
 * response is being written. The request then ends with a reason
 * (vigil_reason_t) and your on_request_done callback runs at once.
 *
 * Errors are negative integers (negated errno values, as in libuv); 0 is
 * success. vigil_strerror() names them.
 *
 * Ownership
 * ---------
 * - vigil_server_t: created by vigil_server_new, freed by vigil_server_free.
 * - vigil_request_t: reference counted. on_request hands you the *handler
 *   reference*; give it back exactly once with vigil_request_finish() when
 *   your handler is done. vigil_request_retain()/vigil_request_release() add
 *   and drop extra references (e.g. for a worker thread that wants to read
 *   the reason after the handler finished). The request's head (method,
 *   target, headers) stays readable while you hold any reference.
 * - Pointers passed into vigil functions (headers, body bytes) are copied
 *   before the function returns; you keep ownership.
 * - Pointers passed to your callbacks are valid only during the callback.
 */
#ifndef VIGIL_H
#define VIGIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
# define VIGIL_EXPORT __attribute__((visibility("default")))
#else
# define VIGIL_EXPORT
#endif

#define VIGIL_VERSION_MAJOR 0
#define VIGIL_VERSION_MINOR 1
#define VIGIL_VERSION_PATCH 0
#define VIGIL_VERSION_HEX \
  ((VIGIL_VERSION_MAJOR << 16) | (VIGIL_VERSION_MINOR << 8) | VIGIL_VERSION_PATCH)

/* The version the library was built as, VIGIL_VERSION_HEX form. */
VIGIL_EXPORT unsigned vigil_version(void);
/* "0.1.0" */
VIGIL_EXPORT const char *vigil_version_string(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

#define VIGIL_EINVAL      (-22)   /* a bad argument */
#define VIGIL_ENOMEM      (-12)   /* out of memory */
#define VIGIL_ECANCELED   (-125)  /* the request was cancelled (see reason) */
#define VIGIL_EALREADY    (-114)  /* response already started / ended, or request finished */
#define VIGIL_ESHUTDOWN   (-108)  /* the server is stopped or stopping */
#define VIGIL_EBUSY       (-16)   /* not possible in the current state */
/* Other negative values come from the system or libuv: for example
 * -98 (EADDRINUSE) from vigil_server_start. */

/* A short English description of an error code: a static string, never
 * NULL, valid for the life of the program and the same from every thread
 * (so two calls may appear in one printf). Codes neither Vigil nor libuv
 * knows get "unknown error". */
VIGIL_EXPORT const char *vigil_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Why a request ended                                                      */

typedef enum {
  VIGIL_REASON_NONE = 0,             /* still running */
  VIGIL_REASON_CLIENT_CLOSED = 1,    /* the client closed its side (FIN) */
  VIGIL_REASON_RESET = 2,            /* the connection was reset (RST) */
  VIGIL_REASON_READ_FAILED = 3,      /* another read error on the socket */
  VIGIL_REASON_WRITE_FAILED = 4,     /* writing the response failed (EPIPE, ...) */
  VIGIL_REASON_TIMED_OUT = 5,        /* a server timeout fired */
  VIGIL_REASON_SERVER_SHUTDOWN = 6,  /* shutdown's grace period ran out */
  VIGIL_REASON_HANDLER_FINISHED = 7, /* vigil_request_finish() was called first */
  VIGIL_REASON_BAD_REQUEST = 8,      /* the request body was malformed */
  VIGIL_REASON_BODY_TOO_LARGE = 9,   /* the body passed its limit (413) */
  /* The kernel gave up on the peer, which sent neither FIN nor RST: a read
   * or a write failed with ETIMEDOUT (TCP keepalive probes unanswered, or
   * data unacknowledged - or a zero window kept - past tcp_user_timeout_ms
   * or the kernel's retransmission limit), or with EHOSTUNREACH /
   * ENETUNREACH (the network said so, ICMP or a failed neighbour lookup).
   * A client whose host crashed or whose network went away. */
  VIGIL_REASON_PEER_UNREACHABLE = 10
} vigil_reason_t;

/* Which timeout ended a request whose reason is VIGIL_REASON_TIMED_OUT. */
typedef enum {
  VIGIL_TIMEOUT_NONE = 0,
  VIGIL_TIMEOUT_BODY = 1,    /* no request body bytes for body_timeout_ms */
  VIGIL_TIMEOUT_WRITE = 2,   /* no response progress for write_timeout_ms */
  VIGIL_TIMEOUT_HANDLER = 3  /* handler_timeout_ms since the head arrived */
} vigil_timeout_t;

/* The reason's name, an identifier ([a-z][A-Za-z]*: no spaces) that works
 * as a metric label or log value as it is, the same as the Swift
 * CancellationReason case: "none", "clientClosed", "reset", "readFailed",
 * "writeFailed", "timedOut", "serverShutdown", "handlerFinished",
 * "badRequest", "bodyTooLarge", "peerUnreachable"; "unknown" for a value
 * outside the enum. Never NULL; a static string. */
VIGIL_EXPORT const char *vigil_reason_name(vigil_reason_t reason);

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */

typedef struct vigil_server_s vigil_server_t;
typedef struct vigil_request_s vigil_request_t;

/* What a client's FIN (half-close) means while a request is in flight.
 * An RST always cancels. RFC 9112 section 9.6 allows a client to half-close
 * and still want its answer; Go, Node and NIO treat it as "client gone"
 * (golang/go#18527). */
typedef enum {
  /* Cancel the request at once (default, like Go): on_request_done gets
   * VIGIL_REASON_CLIENT_CLOSED. The client can still read, so the output
   * queued before the cancellation is still written (bounded by
   * write_timeout_ms), then the connection closes. */
  VIGIL_HALF_CLOSE_CANCEL = 0,
  VIGIL_HALF_CLOSE_FINISH = 1  /* finish the response, then close */
} vigil_half_close_t;

/* A new request's head has been parsed (loop thread). You own the handler
 * reference: answer with the vigil_response_* functions and call
 * vigil_request_finish() exactly once, from any thread, now or later. */
typedef void (*vigil_request_cb)(vigil_request_t *req, void *userdata);

/* A piece of the request body (loop thread), delivered only after
 * vigil_request_body_start(). `data`/`len` hold bytes; `end` is 1 on the last
 * call for this body (len may then be 0); by then the body has been read
 * whole, so a response sent from inside that call keeps the connection for
 * the next request. Not called after on_request_done. */
typedef void (*vigil_body_cb)(vigil_request_t *req, const char *data,
                              size_t len, int end, void *userdata);

/* The request ended (loop thread): called exactly once per request, with the
 * cancellation reason as soon as the connection fails, or with
 * VIGIL_REASON_HANDLER_FINISHED once vigil_request_finish() has been
 * processed without a cancellation. It is the last callback for `req`:
 * every write completion of the request has run before it (with its
 * status, or with an error on a cancellation), and so has every
 * vigil_request_on_cancel callback registered before the end, so
 * per-request data they use may be freed here.
 * A cancelled request still holds the handler reference: give it back with
 * vigil_request_finish(), from this callback or later, from any thread
 * (calling it here is fine). With VIGIL_REASON_HANDLER_FINISHED the
 * handler has finished already. */
typedef void (*vigil_done_cb)(vigil_request_t *req, vigil_reason_t reason,
                              void *userdata);

/* Connection states, as Go's ConnState: NEW (accepted, nothing read yet),
 * ACTIVE (a request is being read or served), IDLE (between keep-alive
 * requests), HIJACKED (taken over by vigil_request_hijack), CLOSED. */
typedef enum {
  VIGIL_CONN_NEW = 0,
  VIGIL_CONN_ACTIVE = 1,
  VIGIL_CONN_IDLE = 2,
  VIGIL_CONN_HIJACKED = 3,
  VIGIL_CONN_CLOSED = 4
} vigil_conn_state_t;

/* A connection changed state (loop thread). `conn_id` is the number
 * vigil_request_connection_id() gives its requests. Every connection starts
 * with NEW and ends with CLOSED, hijacked ones included. A request that the
 * connection's end cancels gets on_request_done before CLOSED is
 * reported. */
typedef void (*vigil_conn_state_cb)(uint64_t conn_id, vigil_conn_state_t state,
                                    void *userdata);

/* The server has stopped: every loop has exited (called on the last loop
 * thread, just before it exits). vigil_server_wait() returns after it. */
typedef void (*vigil_stopped_cb)(vigil_server_t *server, void *userdata);

/* The PROXY protocol (HAProxy's proxy-protocol.txt; HAProxy's
 * `send-proxy` / `send-proxy-v2`, nginx's `proxy_protocol on`, AWS NLB,
 * ...): a header the load balancer sends before the client's bytes,
 * naming the client's address. Which versions a server takes, in
 * vigil_config_t.proxy_protocol. */
typedef enum {
  VIGIL_PROXY_OFF = 0, /* none: a connection that starts with one gets 400 */
  VIGIL_PROXY_V1 = 1,  /* the text header is required */
  VIGIL_PROXY_V2 = 2,  /* the binary header is required */
  VIGIL_PROXY_ANY = 3  /* either is required (VIGIL_PROXY_V1 | VIGIL_PROXY_V2) */
} vigil_proxy_protocol_t;

typedef struct vigil_config_s {
  /* sizeof(vigil_config_t) as the caller was compiled: set by
   * vigil_config_init. Fields are only ever appended, so an older caller's
   * smaller struct keeps working. */
  size_t struct_size;

  /* "127.0.0.1", "::1", "0.0.0.0", "::" ... An IPv6 address is bound
   * with IPV6_V6ONLY off whatever net.ipv6.bindv6only says, so "::" serves
   * IPv4 too (its clients' addresses come as ::ffff:a.b.c.d). */
  const char *host;
  uint16_t port;             /* 0 picks a free port: see vigil_server_port() */
  /* Event loops (threads); 1 by default. Without reuse_port they share
   * one listening socket: every new connection wakes every loop (libuv
   * has no EPOLLEXCLUSIVE) and the split between loops can be uneven (one
   * loop taking 80 of 400 connections, another 320, was measured). See
   * reuse_port for the trade-off. */
  unsigned loops;
  int backlog;               /* listen backlog; 1024 (capped by net.core.somaxconn) */

  vigil_half_close_t half_close;
  /* Unconsumed bytes buffered per connection before reading pauses (64 KiB).
   * While paused the kernel reports the socket's FIN or RST (an epoll
   * instance per loop), so a disconnect is still seen at once. */
  size_t read_buffer_limit;
  /* Output bytes queued per connection before vigil_response_write delays
   * its completion callback (backpressure, 64 KiB), and before the next
   * pipelined request is parsed: a client pipelining without reading makes
   * the server hold at most read_buffer_limit + write_buffer_limit + one
   * response. */
  size_t write_buffer_limit;
  /* Unread request body (Content-Length or chunked) the server will still
   * read and discard after the handler finished, to keep the connection;
   * past it the connection closes (256 KiB, like Go's
   * maxPostHandlerReadBytes). Counted in bytes on the wire, chunk framing
   * included. */
  size_t drain_limit;
  /* Header block bytes (request line included) before 431 (16 KiB). A
   * chunked body's trailer section is held to it too, on the wire, as is
   * any run of chunk framing without a body byte (never below
   * max_chunk_ext_bytes + 256): past it, 431 + close. */
  size_t max_header_bytes;
  /* Bytes of a chunk-size line's extensions (everything from the first ';'
   * to the CRLF) before 400 (1 KiB). */
  size_t max_chunk_ext_bytes;

  vigil_request_cb on_request; /* required */
  vigil_body_cb on_body;       /* optional: without it bodies are discarded */
  vigil_done_cb on_request_done; /* optional */
  vigil_stopped_cb on_stopped;   /* optional */
  void *userdata;                /* passed to every callback above */
  vigil_conn_state_cb on_conn_state; /* optional */

  /* Limits. 0 turns one off. */
  unsigned max_headers;          /* header lines before 431 (100) */
  size_t max_target_bytes;       /* request-target bytes before 414 (8 KiB) */
  /* Request body bytes (8 MiB), the default of each request's body limit
   * (vigil_request_set_body_limit), checked when the body is read, not
   * before the handler runs: a Content-Length above the request's limit
   * ends the request at vigil_request_body_start (413, before any
   * "100 Continue"); a chunked body passing it ends the request as it
   * passes. Either way with VIGIL_REASON_BODY_TOO_LARGE, a 413 if no
   * response started, and the connection closes. A body the handler never
   * reads is never read past drain_limit (the connection closes instead). */
  uint64_t max_body_bytes;
  /* Open connections per server (10000): past it new connections are
   * accepted and closed at once, the others undisturbed. */
  unsigned max_connections;
  /* Requests per connection (0: unlimited): the last response carries
   * `Connection: close`. */
  uint64_t max_requests_per_connection;

  /* Timeouts in milliseconds. 0 turns one off. */
  uint64_t header_timeout_ms;  /* first byte of a head to its end: 408 + close (10 s) */
  uint64_t idle_timeout_ms;    /* keep-alive connection with no request: close (60 s) */
  uint64_t body_timeout_ms;    /* no body progress while the handler reads it (30 s) */
  /* No progress writing the response (30 s): no byte of the output taken
   * (acknowledged) by the client for this long. A slow but steady reader
   * is never cut; the check runs when the deadline passes, so a stall is
   * noticed between one and two periods after the last progress. It runs
   * while output waits in the server (a write libuv has not finished);
   * bytes the kernel took whole and the client then leaves unread are
   * bounded by tcp_user_timeout_ms and, once the connection is idle, by
   * idle_timeout_ms. */
  uint64_t write_timeout_ms;
  uint64_t handler_timeout_ms; /* head arrived to handler finished (0: none): 503 */
  /* TCP_USER_TIMEOUT on each connection (0: not set, the kernel's
   * retransmission limit applies, about 15 minutes): how long sent data may
   * stay unacknowledged - or a client keep a zero window - before the
   * kernel gives up on the peer. The read that is always armed then fails
   * with ETIMEDOUT: VIGIL_REASON_PEER_UNREACHABLE. This is how a client
   * that vanished (cable, crash of its host, network gone: no FIN, no RST)
   * is noticed while the server has response bytes in flight to it, which
   * keepalive does not probe. When set it also replaces the keepalive
   * count (tcp(7)): a connection whose keepalive probes go unanswered is
   * dropped at the first probe at or after tcp_user_timeout_ms of silence
   * (at least one probe unanswered), whatever tcp_keepalive_count says;
   * set it to about the keepalive detection time below (idle + interval *
   * count) for one bound on both paths. Off by default, as in Go and
   * nginx: with it, a client whose network stalls for that long while
   * data is in flight is cut even if it would have come back. */
  uint64_t tcp_user_timeout_ms;

  /* ---- Where to listen, and restarts (fields appended together).
   * One of three: host/port above (the default), a Unix socket
   * (unix_path), or a socket already listening (listen_fd). */
  /* A Unix domain socket path to bind and listen on instead of host/port
   * (NULL: none; copied). A stale socket file that nobody listens on (a
   * connect() is refused) is replaced; a live one gives -98 EADDRINUSE,
   * any other kind of file too (never removed). Two servers started on
   * one path at once: exactly one gets it (the socket is bound, given its
   * mode and made listening under a temporary name ".vigil-<pid>-<n>" in
   * the same directory, then linked to the path, which fails if anything
   * is there; a crash in between can leave that temporary file, and the
   * socket's own name, as getsockname() and `ss -lx` show it, is that
   * temporary name). The directory must be writable. The file is removed at
   * shutdown if it is still the one this server made (same device and
   * inode), unless the server handed its socket over
   * (vigil_server_handover). A request's vigil_request_remote_addr then
   * gives family AF_UNIX and no path. */
  const char *unix_path;
  /* The socket file's mode (chmod of the temporary name, before listen:
   * nobody can connect in between, and no symlink is followed), e.g.
   * 0660; 0 leaves what the umask gave. */
  unsigned unix_mode;
  /* A socket already bound and listening that this process inherited
   * (`--fd N`, systemd: vigil_listen_fds), or -1 (the default: none).
   * Checked at start (a stream socket, listening, family AF_INET,
   * AF_INET6 or AF_UNIX; else VIGIL_EINVAL, or -88 ENOTSOCK); host, port,
   * unix_path and reuse_port are then unused, vigil_server_port gives its
   * bound port (0 for a Unix socket). Ownership: the descriptor stays
   * yours; the server serves duplicates of it (one per loop, close-on-exec)
   * and closes them when it shuts down. Never removes a socket file. But
   * duplicates share the open file description: the server sets
   * O_NONBLOCK on it (your descriptor, and any other process's copy of
   * the socket, is non-blocking from then on, also after the server is
   * freed), and listen() again with `backlog`, which replaces the
   * socket's backlog. */
  int listen_fd;
  /* 1: SO_REUSEPORT, each loop its own listening socket and accept queue
   * (the kernel spreads connections over them), and other sockets that
   * also ask for it may share the port - other processes too. 0 (the
   * default): the port is this server's alone (a second server on it gets
   * -98 EADDRINUSE) and all loops accept from one socket (one accept
   * queue). The trade-off with loops > 1: one shared socket wakes every
   * loop for each connection and may spread connections unevenly (see
   * loops), but has one queue that a hand-over passes whole; reuse_port
   * spreads connections evenly, but each socket has its own queue, so
   * with reuse_port and loops > 1, vigil_server_handover is refused: the
   * other loops' queues would be lost with their sockets. */
  int reuse_port;
  /* During a graceful shutdown, how long a connection waiting for a
   * request (idle keep-alive, or accepted with nothing sent yet) may still
   * bring one, counted from when it became idle (1000 ms); also one whose
   * response was under way when the shutdown began, its head sent without
   * `Connection: close`, counted from when that response ended. A client that
   * sends its next request microseconds after the previous response (wrk,
   * a proxy's pool) would otherwise find its connection closed under it
   * and see an error: instead that request is served, with `Connection:
   * close`. Connections idle longer are closed. 0: close idle connections
   * at once. */
  uint64_t shutdown_idle_ms;

  /* PROXY protocol (VIGIL_PROXY_OFF by default). On, every connection
   * must begin with a header of an accepted version before any HTTP byte:
   * a connection without one, or with a malformed one (v1 over 107 bytes,
   * addresses that do not parse as their family, a port outside 0-65535
   * or with leading zeros, a bad v2 signature, version or command, a v2
   * length over 2048 bytes, a TLV past the end) is closed without an HTTP
   * answer, as HAProxy and nginx do: its peer is not the proxy, or not
   * speaking the protocol, and nothing it sent is HTTP to answer. The
   * header counts against header_timeout_ms (from its first byte) and,
   * complete, the connection waits for its first request as a new one
   * (idle_timeout_ms). Off, a connection that begins with a PROXY header
   * (a proxy sends one the server was not told of) gets `400 Bad Request`
   * and `Connection: close`, whole or split: a v1 header is no HTTP
   * request line, and v2's signature has a NUL byte after two empty
   * lines. Only enable it behind a proxy that sends
   * the header on every connection and where clients cannot reach the
   * server directly: whoever connects can claim any address in it.
   * vigil_request_remote_addr gives the header's client address. On,
   * read_buffer_limit is at least 2064 (the largest header taken). */
  vigil_proxy_protocol_t proxy_protocol;

  /* TCP keepalive on each connection (SO_KEEPALIVE, TCP_KEEPIDLE,
   * TCP_KEEPINTVL, TCP_KEEPCNT): after tcp_keepalive_idle_ms without any
   * segment from the client, the kernel probes it every
   * tcp_keepalive_interval_ms; after tcp_keepalive_count unanswered probes
   * it gives up, and the armed read fails with ETIMEDOUT (or EHOSTUNREACH):
   * VIGIL_REASON_PEER_UNREACHABLE. This is how a client that vanished
   * while the server has nothing in flight to it (its handler works, or
   * waits, before answering) is noticed: within idle + interval * count of
   * its last segment. The kernel does not probe while sent data is
   * unacknowledged: that case is tcp_user_timeout_ms's (and the write
   * timeout's, while output waits in the server).
   * Linux takes whole seconds: the milliseconds are rounded up (1 ms to
   * 1000 ms is 1 s, 1500 ms is 2 s), so a client is never cut sooner than
   * asked. idle 0 turns keepalive off (the socket's SO_KEEPALIVE is left
   * off, the kernel's default); interval 0 or count 0 leave the kernel's
   * values (net.ipv4.tcp_keepalive_intvl, 75 s, and _probes, 9).
   * vigil_server_new refuses (VIGIL_EINVAL) more than 32767 s for idle or
   * interval and more than 127 probes: the kernel's limits.
   * Defaults: 15 s, 15 s, 3 - a vanished client is noticed within 60 s,
   * the idle_timeout_ms an idle connection is kept. Go probes after 15 s
   * too, every 15 s, 9 times (150 s: longer than its requests' usual life,
   * longer than an idle connection of ours lives); the kernel alone would
   * never probe (SO_KEEPALIVE off) or wait two hours. A probe every 15 s
   * of silence is one small segment per connection (and keeps NAT and
   * firewall state of long requests alive); a client whose network is out
   * for longer than 45 s after 15 s of silence loses its request, as it
   * would to the write and body timeouts (30 s). */
  uint64_t tcp_keepalive_idle_ms;
  uint64_t tcp_keepalive_interval_ms;
  unsigned tcp_keepalive_count;
} vigil_config_t;

/* Fill `config` with the defaults above (host 127.0.0.1, port 8080,
 * listen_fd -1). Always start from it: a zeroed struct has listen_fd 0. */
VIGIL_EXPORT void vigil_config_init(vigil_config_t *config);

/* ------------------------------------------------------------------------ */
/* Server                                                                   */

/* Create a server (nothing is bound yet). The config is copied, `host`
 * included. Returns 0 and sets *out; VIGIL_EINVAL (`out` or `config` NULL,
 * config->struct_size 0 or larger than this library's vigil_config_t,
 * on_request NULL, no host, unix_path or listen_fd, proxy_protocol not a
 * vigil_proxy_protocol_t, a keepalive setting past the kernel's limits);
 * VIGIL_ENOMEM; or a negated errno (the
 * server's shutdown eventfd could not be made, e.g. -24 EMFILE). */
VIGIL_EXPORT int vigil_server_new(vigil_server_t **out,
                                  const vigil_config_t *config);

/* Bind, listen and start the loop threads. Returns 0 once listening, or:
 * VIGIL_EINVAL (`server` NULL, `host` does not resolve, or listen_fd is
 * not a listening stream socket), VIGIL_EALREADY
 * (started before: a start that failed does not count, it may be tried
 * again), VIGIL_ENOMEM, a negated errno from socket or bind (e.g. -98
 * EADDRINUSE, -13 EACCES), or a libuv error (loop set-up, listen). On error
 * nothing is left running (a Unix socket file it made is removed).
 * Call from the thread that owns the server
 * object. On an inherited socket (listen_fd) in a process started by
 * vigil_server_handover, a successful start tells the predecessor that
 * this server is ready (once per process: see vigil_listen_fds). If SIGPIPE is at its default disposition, this sets it to ignored
 * for the process: a write to a client that reset must be an error (EPIPE),
 * not a kill. */
VIGIL_EXPORT int vigil_server_start(vigil_server_t *server);

/* The bound port (useful with port 0; 0 on a Unix socket), or
 * VIGIL_EINVAL (`server` NULL, or not started). Any thread. */
VIGIL_EXPORT int vigil_server_port(const vigil_server_t *server);

/* Begin a graceful shutdown; any thread, never blocks, idempotent, and
 * async-signal-safe: a SIGTERM handler may call it (then call
 * vigil_server_wait and vigil_server_free outside the handler). The loops
 * begin it on their next iteration, never inside this call. Stops
 * accepting (the server's descriptors of its listening socket are closed,
 * its Unix socket file removed; connections still in the accept queue of
 * a socket another process shares are that process's). Requests in flight
 * get `Connection: close` and may finish within `grace_ms`; one whose
 * response head went out before the shutdown, without it, is kept like an
 * idle connection once that response ends (see below). A connection
 * waiting for a request (idle keep-alive, or accepted with nothing sent)
 * closes at once if it has been idle shutdown_idle_ms already, else it
 * may still bring one request until it has (served with `Connection:
 * close`): closing it at once would fail the request a busy client sends
 * the next instant. After `grace_ms` what is still in flight is
 * cancelled with VIGIL_REASON_SERVER_SHUTDOWN and every connection
 * closed. Once everything is closed the loops exit and on_stopped runs.
 * Returns 0 (also when a shutdown was already requested: the first call's
 * grace_ms holds), or VIGIL_EINVAL (`server` NULL, or not started). Never
 * VIGIL_EBUSY: it does not wait. */
VIGIL_EXPORT int vigil_server_shutdown(vigil_server_t *server,
                                       uint64_t grace_ms);

/* Block until every loop thread has exited (after vigil_server_shutdown).
 * Returns 0 (at once if an earlier call already waited), VIGIL_EINVAL
 * (`server` NULL, or not started), or VIGIL_EBUSY when called on one of
 * the server's loop threads (from a callback: the loop would wait for
 * itself), without waiting. */
VIGIL_EXPORT int vigil_server_wait(vigil_server_t *server);

/* Free the server. If it still runs, this shuts it down with no grace and
 * waits. Requests you still hold stay valid until you release them; their
 * response calls then fail with VIGIL_ESHUTDOWN or VIGIL_ECANCELED.
 * Threads: any thread except the server's loop threads (never from a
 * callback: it waits for the loops, and would free the loop it runs on)
 * and except a signal handler (it blocks and frees); call it once, after
 * every other call on the server from other threads (vigil_server_post,
 * _stats, _shutdown, ...) has returned: `server` is gone after it. NULL is
 * a no-op. */
VIGIL_EXPORT void vigil_server_free(vigil_server_t *server);

/* ------------------------------------------------------------------------ */
/* Inherited sockets and restarts without losing a request                  */

/* The first descriptor systemd (or vigil_server_handover) passes. */
#define VIGIL_LISTEN_FDS_START 3

/* Socket activation, as systemd's sd_listen_fds(3): the number of
 * listening sockets this process was given, at descriptors
 * VIGIL_LISTEN_FDS_START (3), 4, ...; 0 when LISTEN_FDS is unset, or
 * LISTEN_PID is not this process's pid (the variables were meant for
 * another process: a parent that did not clear them); or a negative
 * error (-EINVAL: malformed variables; -EBADF: a descriptor is not open).
 * The descriptors get FD_CLOEXEC. With `unset_environment` non-zero,
 * LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed from the
 * environment (so that child processes do not take them for theirs), as
 * sd_listen_fds(1) does; the first answer is remembered, so a later call
 * returns it again. A process started by vigil_server_handover also finds
 * the readiness descriptor here (VIGIL_READY_FD, taken and removed with the
 * others); the first vigil_server_start on an inherited socket (listen_fd)
 * then reports readiness through it. Changes the environment: call it
 * early, before other threads read the environment (getenv), as for
 * setenv. Any thread otherwise; returns the same from every call. */
VIGIL_EXPORT int vigil_listen_fds(int unset_environment);

/* Restart without losing a request, like nginx's binary upgrade: start
 * `path` (execve: no PATH search) with `argv` (NULL-terminated; NULL:
 * { path, NULL }) as this server's successor, giving it the listening
 * socket the systemd way: descriptor 3, LISTEN_FDS=1, LISTEN_PID=its pid,
 * plus VIGIL_READY_FD=4, a pipe (the rest of the environment is this
 * process's). The successor finds the socket with vigil_listen_fds(),
 * serves it (listen_fd = 3) and, once vigil_server_start has succeeded,
 * says it is ready. Then this returns 0 (the successor's pid in *pid if
 * `pid` is not NULL): both serve the same accept queue, so nothing is
 * lost. Call vigil_server_shutdown(server, grace) next: this server stops
 * accepting, finishes what it has (see shutdown_idle_ms) and stops; exit
 * then. The successor is your child, in a process group of its own (a
 * terminal's Ctrl-C no longer reaches it: signal it by its pid); when you
 * exit it is re-parented to the nearest subreaper or init, so it dies
 * with a container whose PID 1 you were, or with a systemd service of
 * Type=simple/exec whose main process you were (its cgroup is stopped):
 * use socket activation there (vigil_listen_fds) rather than a hand-over.
 * The successor must exec the server itself (a wrapper script ends with
 * `exec`), not fork it and exit: the child's exit counts as a failure.
 * Blocks up to `timeout_ms` (0: 10 s) for the readiness. On an error this
 * server keeps serving as before and no successor is left running:
 * VIGIL_EINVAL (`server` or `path` NULL, not started, or reuse_port with
 * loops > 1), VIGIL_ESHUTDOWN (shutdown begun), VIGIL_EBUSY (on a loop
 * thread, or another hand-over of this server is under way), -110
 * ETIMEDOUT (not ready in time: the successor's process group is killed
 * with SIGKILL, so also what it started, and it is reaped), -10 ECHILD
 * (the successor exited, noticed at once, or closed the readiness pipe
 * without saying it was ready; its process group is killed, and it is
 * reaped), VIGIL_EALREADY (handed over already: one successor per
 * server), the errno of a failed execve (e.g. -2 ENOENT, -13 EACCES), or
 * of pipe/fork. Signal dispositions set to "ignore" and the rest of the
 * environment pass to the successor (POSIX exec); the signal mask is
 * emptied. Signals are blocked from fork to execve and caught ones reset
 * to their default first, as posix_spawn does: none of your handlers runs
 * in the child. Any thread but the loop threads (not from a signal
 * handler: it allocates and waits); while it runs, other threads must not
 * change the environment (setenv, putenv, unsetenv: it is copied for the
 * child under vigil_listen_fds's lock only). A server whose socket was
 * handed over leaves its Unix socket file in place at shutdown (the
 * successor serves it); a shutdown that begins while the hand-over waits
 * leaves it too, and removes it only if the hand-over then fails. */
VIGIL_EXPORT int vigil_server_handover(vigil_server_t *server, const char *path,
                                       char *const argv[], uint64_t timeout_ms,
                                       int *pid);

/* Run fn(userdata) on the thread of loop `loop` (0 .. loops-1), soon: in
 * the current or next loop iteration, before the loop waits for I/O. Any
 * thread; calls from one thread run in order. Swift's loop executor is
 * built on this; C embedders can use it to get back onto a loop. Returns 0,
 * VIGIL_EINVAL (`server` or `fn` NULL, not started, or no such loop),
 * VIGIL_ENOMEM, or VIGIL_ESHUTDOWN (the loop has exited: fn will not
 * run). */
typedef void (*vigil_task_cb)(void *userdata);
VIGIL_EXPORT int vigil_server_post(vigil_server_t *server, unsigned loop,
                                   vigil_task_cb fn, void *userdata);

/* The loop a request belongs to (its connection's), for vigil_server_post:
 * 0 .. loops-1. Any thread. */
VIGIL_EXPORT unsigned vigil_request_loop(const vigil_request_t *req);

/* A timer on loop `loop`'s thread: cb(timer, 0, userdata) after
 * timeout_ms, then every repeat_ms if repeat_ms > 0. For a handler that
 * waits between events (server-sent events, a back-off): it fires where the
 * connection is served, wakes no other thread, and a stopped timer is gone
 * at once. The first call with status 0 never comes before timeout_ms has
 * passed (measured from the arm on the loop thread); it may come later by
 * the loop's other work.
 *
 * Any thread. Returns 0 and the timer in *out, or VIGIL_EINVAL (NULL
 * argument, server not started, no such loop), VIGIL_ENOMEM, or
 * VIGIL_ESHUTDOWN (the loop has exited or is exiting; *out is NULL and cb
 * is never called).
 *
 * The callback runs on the loop's thread only, never from inside
 * vigil_timer_start or vigil_timer_stop, and is told which call is its
 * last: a one-shot timer's fire (status 0, repeat_ms == 0), or a call with
 * VIGIL_ECANCELED (stopped) or VIGIL_ESHUTDOWN (the loop exited: the server
 * shut down). After its last call it is never called again, so userdata
 * may be freed there. Stopped from another thread, a timer may still fire
 * (status 0) before the stop reaches the loop: a one-shot's last call is
 * then that fire, a repeating timer's the VIGIL_ECANCELED after it.
 *
 * A callback that starts a new 0 ms timer every time runs again in the
 * same loop iteration and can keep the loop from reading sockets; give a
 * loop-thread retry at least 1 ms.
 *
 * Owner: the caller calls vigil_timer_stop exactly once for every timer
 * started, from any thread, at any time - also after the last call, when it
 * only releases the handle - and uses the handle no more after it. A stop
 * never fails (its memory is taken at start). The timer does not keep the
 * server running: when its loop exits it ends with VIGIL_ESHUTDOWN. */
typedef struct vigil_timer_s vigil_timer_t;
typedef void (*vigil_timer_cb)(vigil_timer_t *timer, int status, void *userdata);
VIGIL_EXPORT int vigil_timer_start(vigil_server_t *server, unsigned loop,
                                   uint64_t timeout_ms, uint64_t repeat_ms,
                                   vigil_timer_cb cb, void *userdata,
                                   vigil_timer_t **out);
VIGIL_EXPORT void vigil_timer_stop(vigil_timer_t *timer);

typedef struct vigil_stats_s {
  uint64_t connections_accepted; /* since start */
  uint64_t connections_open;     /* now */
  uint64_t requests_total;       /* heads dispatched to on_request */
  uint64_t requests_live;        /* request objects not yet freed */
  uint64_t requests_cancelled;   /* ended with a reason other than finished */
  uint64_t bad_requests;         /* answered 4xx/5xx by the core itself, or
                                    closed for a missing or malformed PROXY
                                    header (proxy_protocol on) */
  uint64_t connections_idle;     /* now, in state IDLE */
  uint64_t connections_hijacked; /* now, hijacked and not yet closed */
} vigil_stats_t;

/* A snapshot of the counters (summed over loops); any thread. */
VIGIL_EXPORT void vigil_server_stats(const vigil_server_t *server,
                                     vigil_stats_t *stats);

/* ------------------------------------------------------------------------ */
/* Request                                                                  */

/* Reference counting; any thread. */
VIGIL_EXPORT void vigil_request_retain(vigil_request_t *req);
VIGIL_EXPORT void vigil_request_release(vigil_request_t *req);

/* Your pointer, stored on the request; any thread. */
VIGIL_EXPORT void vigil_request_set_data(vigil_request_t *req, void *data);
VIGIL_EXPORT void *vigil_request_get_data(const vigil_request_t *req);

/* Head accessors; any thread, while you hold a reference. The strings
 * they return (method, target, header names and values) are NOT
 * NUL-terminated: use the length given with each. */
/* The method as sent: any token (RFC 9110 9.1), case kept ("get" is not
 * "GET"). One llhttp does not know (QUERY, MKCOLA, "get") reaches you as
 * sent, like the registered ones; a token over 64 bytes gets 501 before any
 * handler. Compare it as a string: no other part of the core takes an
 * unknown method for a known one (it is never HEAD or CONNECT). */
VIGIL_EXPORT const char *vigil_request_method(const vigil_request_t *req,
                                              size_t *len);
/* The method as a number, for the common ones: the core's own reading of
 * the request line, so a caller need not compare strings to find GET.
 * VIGIL_METHOD_OTHER for any other token (TRACE, QUERY, "get", ...): take
 * vigil_request_method then. Any thread. */
typedef enum {
  VIGIL_METHOD_OTHER = -1,
  VIGIL_METHOD_DELETE = 0,
  VIGIL_METHOD_GET = 1,
  VIGIL_METHOD_HEAD = 2,
  VIGIL_METHOD_POST = 3,
  VIGIL_METHOD_PUT = 4,
  VIGIL_METHOD_CONNECT = 5,
  VIGIL_METHOD_OPTIONS = 6,
  VIGIL_METHOD_PATCH = 28
} vigil_method_t;
VIGIL_EXPORT vigil_method_t vigil_request_method_id(const vigil_request_t *req);
/* The request-target as sent (RFC 9112 3.2), in the form its method allows
 * (anything else got 400 before any handler): origin-form ("/a?b"),
 * absolute-form as the whole URI ("http://h/a?b", not just its path; an
 * HTTP/1.1 request still needs Host), authority-form for CONNECT only
 * ("h:443"), "*" for OPTIONS only. */
VIGIL_EXPORT const char *vigil_request_target(const vigil_request_t *req,
                                              size_t *len);
/* 10 for HTTP/1.0, 11 for HTTP/1.1 */
VIGIL_EXPORT int vigil_request_version(const vigil_request_t *req);
VIGIL_EXPORT size_t vigil_request_header_count(const vigil_request_t *req);
/* The i-th header in arrival order: 0, or VIGIL_EINVAL if out of range.
 * Any of the out-pointers may be NULL.
 * Values here and in vigil_request_header come without the OWS (SP, HTAB)
 * before and after them (RFC 9110 5.5); an HTAB inside a value stays. */
VIGIL_EXPORT int vigil_request_header_at(const vigil_request_t *req, size_t i,
                                         const char **name, size_t *name_len,
                                         const char **value, size_t *value_len);
/* The first header named `name` (a NUL-terminated string, compared
 * case-insensitively), or NULL; the value is not NUL-terminated: its length
 * goes to *value_len (which may be NULL). */
VIGIL_EXPORT const char *vigil_request_header(const vigil_request_t *req,
                                              const char *name,
                                              size_t *value_len);
/* Content-Length, or -1 when the body is chunked; 0 when there is none. */
VIGIL_EXPORT int64_t vigil_request_content_length(const vigil_request_t *req);
/* 1 if the request has a body (Content-Length > 0 or chunked). */
VIGIL_EXPORT int vigil_request_has_body(const vigil_request_t *req);
/* The client's address: the source address of the connection's PROXY
 * header when it carried one (proxy_protocol on; a v1 TCP4/TCP6 or a v2
 * PROXY command with an INET, INET6 or UNIX address), else the connected
 * peer's (no header; v1 UNKNOWN; v2 LOCAL, as health checks send, or
 * UNSPEC). AF_INET, AF_INET6 or AF_UNIX, port in network order. 0, or
 * VIGIL_EINVAL (`req` or `addr` NULL, or the peer's address could not be
 * read when the connection was accepted). Any thread. On a Unix socket
 * without a header: family AF_UNIX and nothing else (no path: clients'
 * sockets are almost always unnamed). A client of "::" over IPv4:
 * AF_INET6, ::ffff:a.b.c.d.
 *
 * X-Forwarded-For, Forwarded and X-Real-IP are ordinary headers here:
 * the core neither reads nor strips them (vigil_request_header gives
 * them as sent). Which hops to believe is the deployment's decision -
 * which proxies sit in front, which of them append and which overwrite -
 * and a core that guessed would let any client that reaches the server
 * directly name itself. */
VIGIL_EXPORT int vigil_request_remote_addr(const vigil_request_t *req,
                                           struct sockaddr_storage *addr);
/* The directly connected peer's address: the proxy's when the PROXY
 * header carried a client address, else the same as
 * vigil_request_remote_addr. 0 or VIGIL_EINVAL, as that one. Any
 * thread. */
VIGIL_EXPORT int vigil_request_peer_addr(const vigil_request_t *req,
                                         struct sockaddr_storage *addr);
/* The destination address the PROXY header carried (the address the
 * client connected to, at the proxy): 0, or VIGIL_EINVAL (`req` or
 * `addr` NULL, or no header address: see vigil_request_remote_addr). Any
 * thread. */
VIGIL_EXPORT int vigil_request_proxy_dest_addr(const vigil_request_t *req,
                                               struct sockaddr_storage *addr);
/* The server's own address on the request's connection (getsockname of
 * the accepted socket, read once when the connection was accepted): the
 * listener's address, or with "0.0.0.0" / "::" the address the client
 * reached; AF_INET or AF_INET6, port in network order (an IPv4 client of
 * "::": AF_INET6, ::ffff:a.b.c.d). Behind a PROXY header it stays the
 * socket's own address (the proxy connected to it); the address the client
 * connected to at the proxy is vigil_request_proxy_dest_addr. On a Unix
 * socket: family AF_UNIX and nothing else. 0, or VIGIL_EINVAL (`req` or
 * `addr` NULL, or the address could not be read). Any thread. */
VIGIL_EXPORT int vigil_request_local_addr(const vigil_request_t *req,
                                          struct sockaddr_storage *addr);
/* A number identifying the connection (unique per server run). */
VIGIL_EXPORT uint64_t vigil_request_connection_id(const vigil_request_t *req);

/* Request body flow control; any thread. The body is not read until you call
 * vigil_request_body_start() (which also sends `100 Continue` when the client
 * asked for it and no response was started yet: call it before
 * vigil_response_start, or the client may wait for its 100), so a body
 * nobody wants is never read (Go's TestHandlerFinishSkipBigContentLengthRead).
 * vigil_request_body_pause() stops delivery (a few chunks already on their
 * way may still arrive); bytes stay buffered in the core and the socket read
 * stays armed up to read_buffer_limit. Returns 0, VIGIL_EINVAL (`req`
 * NULL), VIGIL_EALREADY when the request has no body
 * (vigil_request_has_body), the body ended or the request finished,
 * VIGIL_ESHUTDOWN when the server's shutdown ended it (or, off the loop
 * thread, the loop has stopped), VIGIL_ECANCELED, or VIGIL_ENOMEM (off the
 * loop thread).
 *
 * Re-entrancy: called on the loop thread (from a callback), these functions
 * and vigil_request_finish() run at once, and may run other callbacks
 * before they return: vigil_request_finish() inside on_body runs
 * on_request_done before it returns, so do not touch state that
 * on_request_done frees after calling it. */
VIGIL_EXPORT int vigil_request_body_start(vigil_request_t *req);
VIGIL_EXPORT int vigil_request_body_pause(vigil_request_t *req);

/* Cancellation */

/* VIGIL_REASON_NONE while the request runs; then the reason it ended. The
 * first reason wins and never changes. Any thread. */
VIGIL_EXPORT vigil_reason_t vigil_request_reason(const vigil_request_t *req);

/* With VIGIL_REASON_TIMED_OUT: which timeout. Any thread. */
VIGIL_EXPORT vigil_timeout_t vigil_request_timeout(const vigil_request_t *req);

/* Lower or raise this request's body limit, which starts at
 * max_body_bytes (so one upload route can take more than the rest); 0 means
 * none. Call before vigil_request_body_start: a Content-Length above it
 * then ends the request there (413); a chunked body ends when it passes it.
 * Any thread. Returns 0 (also once the request has ended: the limit no
 * longer matters then), or VIGIL_EINVAL for a NULL request. */
VIGIL_EXPORT int vigil_request_set_body_limit(vigil_request_t *req,
                                              uint64_t max_bytes);

typedef void (*vigil_cancel_cb)(vigil_request_t *req, vigil_reason_t reason,
                                void *userdata);
/* Register `cb`, called exactly once with the reason the request ended: a
 * cancellation reason (on the loop thread, the moment it happens), or
 * VIGIL_REASON_HANDLER_FINISHED. If the request has already ended, `cb` runs
 * at once on the calling thread, before this returns. Order: when the
 * request ends, its registered callbacks run one after the other on the
 * loop thread, the most recently registered first, and all of them before
 * on_request_done. Any thread. Returns 0, VIGIL_EINVAL (`req` or `cb`
 * NULL) or VIGIL_ENOMEM. */
VIGIL_EXPORT int vigil_request_on_cancel(vigil_request_t *req,
                                         vigil_cancel_cb cb, void *userdata);

/* The handler is done with this request: gives back the handler reference.
 * Call exactly once, from any thread, cancelled or not: a cancelled
 * request still holds the handler reference until this call (calling it
 * inside on_request_done is fine; a second call is ignored). If no
 * response was started, a `500 Internal Server Error` is sent; a response
 * started but not ended is cut off and the connection closed (a truncated
 * body must not look complete). Unless the request was cancelled first, its
 * reason becomes VIGIL_REASON_HANDLER_FINISHED. NULL is a no-op. */
VIGIL_EXPORT void vigil_request_finish(vigil_request_t *req);

/* ------------------------------------------------------------------------ */
/* Response                                                                 */

typedef struct vigil_header_s {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} vigil_header_t;

/* Start the response (status 200..999; for 101 Switching Protocols,
 * vigil_request_hijack() and write the status line with
 * vigil_hijack_write(), as Go's Hijack does). `content_length` >= 0 sends
 * Content-Length; -1 streams
 * the body (chunked for HTTP/1.1, until close for HTTP/1.0). The core adds
 * Date, and Connection when it decides to close. A `Connection: close`
 * header of yours closes the connection after this response. A 2xx to
 * CONNECT (not hijacked) gets neither Content-Length nor Transfer-Encoding
 * (RFC 9110 9.3.6): its body is sent as is and the connection closes after
 * it (`content_length` still limits what you may write). Names and
 * values must not contain CR, LF or NUL (VIGIL_EINVAL); `headers` may be
 * NULL when `nheaders` is 0.
 * Returns 0; VIGIL_EALREADY (a response started, ended or hijacked, or the
 * request finished); VIGIL_ECANCELED or VIGIL_ESHUTDOWN (the request was
 * cancelled, by its connection or by the server's shutdown; ESHUTDOWN also
 * when the loop has stopped); VIGIL_EINVAL (`req` NULL, a status out of
 * range, content_length < -1, a bad header); or VIGIL_ENOMEM. Any
 * thread. */
VIGIL_EXPORT int vigil_response_start(vigil_request_t *req, int status,
                                      const vigil_header_t *headers,
                                      size_t nheaders, int64_t content_length);

/* Completion of a write: status 0 once the bytes are queued and the
 * connection's queue is under write_buffer_limit (so awaiting it gives
 * backpressure), or a negative error (VIGIL_ECANCELED when the connection
 * died). Runs on the loop thread, always before the request's
 * on_request_done: a completion still owed when the handler finishes
 * (vigil_request_finish, vigil_hijack_close) runs then, with 0 (the bytes
 * are queued and will be written). */
typedef void (*vigil_write_cb)(vigil_request_t *req, int status,
                               void *userdata);

/* Queue body bytes (written to the socket or copied before it returns: the
 * memory stays yours). If it returns 0, `cb` (may be NULL) is called
 * exactly once; if it returns an error, never. Returns 0; VIGIL_EBUSY (no
 * response started yet); VIGIL_EALREADY (the response ended or the
 * connection was hijacked, or the request finished); VIGIL_ECANCELED or
 * VIGIL_ESHUTDOWN (as for vigil_response_start); VIGIL_EINVAL (`req` NULL,
 * or `data` NULL with len > 0); or VIGIL_ENOMEM. Any thread. */
VIGIL_EXPORT int vigil_response_write(vigil_request_t *req, const void *data,
                                      size_t len, vigil_write_cb cb,
                                      void *userdata);

/* End the response (the terminating chunk for a chunked body). A fixed
 * length body that came out short closes the connection. Returns 0;
 * VIGIL_EBUSY (no response started); VIGIL_EALREADY (ended already,
 * hijacked, or the request finished); VIGIL_ECANCELED or VIGIL_ESHUTDOWN
 * (as for vigil_response_start); VIGIL_EINVAL (`req` NULL); or
 * VIGIL_ENOMEM. Any thread. */
VIGIL_EXPORT int vigil_response_end(vigil_request_t *req);

/* A whole response in one call: start with Content-Length `len`, write,
 * end. The cheapest path. Any thread. Returns as vigil_response_start; on
 * the request's loop thread (a C handler answering in on_request) the
 * response is written at once, so a connection found gone says so here
 * (VIGIL_ECANCELED / VIGIL_ESHUTDOWN) rather than being dropped silently
 * later. */
VIGIL_EXPORT int vigil_response_send(vigil_request_t *req, int status,
                                     const vigil_header_t *headers,
                                     size_t nheaders, const void *body,
                                     size_t len);

/* ------------------------------------------------------------------------ */
/* Hijack                                                                   */

/* Take the connection over from HTTP (for Upgrade, CONNECT, or a protocol of
 * your own). Any thread. Allowed before a response was started, and while
 * the request body is either untouched or fully delivered (VIGIL_EBUSY
 * otherwise). After it:
 *   - the core parses no more HTTP on this connection;
 *   - on_body delivers the connection's raw bytes, starting with those that
 *     already arrived after the head (an unread body, pipelined bytes), once
 *     vigil_request_body_start() was called; end=1 when the client half-closes
 *     (in VIGIL_HALF_CLOSE_FINISH mode; in CANCEL mode a FIN cancels);
 *   - write raw bytes with vigil_hijack_write(), end with vigil_hijack_close();
 *   - the read stays armed: the request's reason and its cancel callbacks
 *     still report the end of the connection (reset, client closed, ...);
 *   - vigil_request_finish() closes the connection if still open.
 * Returns 0, VIGIL_EALREADY (response started, already hijacked, or the
 * request finished), VIGIL_EBUSY (the body is being read), VIGIL_ECANCELED,
 * VIGIL_ESHUTDOWN (the server's shutdown ended the request, or the loop
 * has stopped), VIGIL_EINVAL (`req` NULL) or VIGIL_ENOMEM; on an error
 * nothing changed (a response may still be sent). */
VIGIL_EXPORT int vigil_request_hijack(vigil_request_t *req);

/* 1 once vigil_request_hijack() took the connection (it returned 0), and
 * from then on; 0 before, and after one that failed. Any thread. A
 * vigil_request_hijack() still under way on another thread claims first
 * and gives the claim back if it fails: a reader racing with it can see 1
 * for a moment. */
VIGIL_EXPORT int vigil_request_hijacked(const vigil_request_t *req);

/* Queue raw bytes on a hijacked connection; `cb` as for
 * vigil_response_write. Returns 0; VIGIL_EBUSY (not hijacked);
 * VIGIL_EALREADY (the request finished, or vigil_hijack_close was
 * processed); VIGIL_ECANCELED or VIGIL_ESHUTDOWN (the connection ended, or
 * the loop has stopped); VIGIL_EINVAL (`req` NULL, or `data` NULL with
 * len > 0); or VIGIL_ENOMEM. Any thread. */
VIGIL_EXPORT int vigil_hijack_write(vigil_request_t *req, const void *data,
                                    size_t len, vigil_write_cb cb,
                                    void *userdata);

/* Close a hijacked connection once what was written is flushed. The
 * request's reason becomes VIGIL_REASON_HANDLER_FINISHED unless it already
 * ended. Any thread. Returns 0 (also when the connection has already
 * closed: nothing to do then), VIGIL_EBUSY (not hijacked), VIGIL_EALREADY
 * (the request finished), VIGIL_EINVAL (`req` NULL), or, off the loop
 * thread, VIGIL_ENOMEM or VIGIL_ESHUTDOWN (the loop has stopped). */
VIGIL_EXPORT int vigil_hijack_close(vigil_request_t *req);

#ifdef __cplusplus
}
#endif
#endif /* VIGIL_H */
