/*
 * vigil_internal.h - structs shared by the core's files. Not installed.
 *
 * Threads: everything marked "loop thread" is touched only by the thread
 * running that loop. Fields that other threads touch are atomics or sit
 * behind a named mutex; each says so.
 */
#ifndef VIGIL_INTERNAL_H
#define VIGIL_INTERNAL_H

#include "vigil.h"

#include <llhttp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

/* Invariants the ownership comments state, checked in debug builds
 * (SwiftPM debug configuration, the ASan/UBSan C build, the fuzzers:
 * VIGIL_DEBUG). A failed check prints where and aborts: a broken invariant
 * in a server core is a bug to stop at, not to run on from. Release builds
 * compile the checks out, so they may sit on the hot path. */
#ifdef VIGIL_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define VIGIL_ASSERT(e) \
  ((e) ? (void)0 : vigil__assert_fail(#e, __FILE__, __LINE__))
static inline __attribute__((noreturn, cold)) void
vigil__assert_fail(const char *expr, const char *file, int line) {
  fprintf(stderr, "vigil: %s:%d: invariant failed: %s\n", file, line, expr);
  abort();
}
#else
#define VIGIL_ASSERT(e) ((void)0)
#endif

typedef struct vigil_loop_s vigil_loop_t;
typedef struct vigil_conn_s vigil_conn_t;
typedef struct vigil_op_s vigil_op_t;

/* ------------------------------------------------------------------ */
/* buf.c: a growable byte buffer. Owner: whoever embeds it frees it with
 * vigil__buf_free. */
typedef struct {
  char *base;
  size_t len;
  size_t cap;
} vigil_buf_t;

int vigil__buf_reserve(vigil_buf_t *b, size_t extra);
int vigil__buf_append(vigil_buf_t *b, const void *data, size_t len);
void vigil__buf_free(vigil_buf_t *b);

/* A tiny intrusive doubly linked list (like libuv's queue.h). */
typedef struct vigil_link_s {
  struct vigil_link_s *prev, *next;
} vigil_link_t;
/* now + a configured duration, saturating: UINT64_MAX ms ("never") must
 * not wrap into a deadline already past. */
static inline uint64_t vigil__deadline(uint64_t now, uint64_t ms) {
  return ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
}

static inline void vigil__list_init(vigil_link_t *h) { h->prev = h->next = h; }
static inline bool vigil__list_empty(const vigil_link_t *h) { return h->next == h; }
static inline void vigil__list_push(vigil_link_t *h, vigil_link_t *n) {
  n->prev = h->prev; n->next = h; h->prev->next = n; h->prev = n;
}
static inline void vigil__list_remove(vigil_link_t *n) {
  n->prev->next = n->next; n->next->prev = n->prev; n->prev = n->next = n;
}
static inline bool vigil__list_linked(const vigil_link_t *n) { return n->next != n && n->next != NULL; }
#define VIGIL_CONTAINER_OF(ptr, type, field) \
  ((type *)((char *)(ptr) - offsetof(type, field)))

/* ------------------------------------------------------------------ */
/* request.c: one HTTP request.
 *
 * Owner: reference counted (refs). References are held by:
 *   - the connection, from head parsed until the request is done on the
 *     connection (response ended and handler finished) or the connection
 *     dies (conn->req);
 *   - the handler, from on_request until vigil_request_finish;
 *   - each queued op (vigil_op_t.req), until the loop ran it;
 *   - the user, through vigil_request_retain.
 * Released by vigil__request_unref when refs drops to 0, on whatever thread
 * dropped it; it then drops its reference on the loop. Released on its
 * loop's thread it goes back to the loop's pool (up to VIGIL_REQ_POOL_MAX,
 * with its strings buffer kept; a heap header array is freed), so that a
 * request costs no malloc in steady state; elsewhere it is freed. The pool
 * is the loop's, loop thread only, and freed with the loop. Under
 * AddressSanitizer there is no pool (VIGIL_POOLS 0): a request used after
 * its release must stay a use-after-free ASan and the fuzzer can see. */
typedef struct {
  uint32_t name_off, name_len, value_off, value_len;
} vigil_hdr_index_t;

#define VIGIL_INLINE_HEADERS 12
/* Longest method token llhttp 8.1 does not know that we take (longer: 501;
 * the registered ones are under 20 bytes). */
#define VIGIL__METHOD_MAX 64
#define VIGIL__METHOD_OTHER 0xff
/* Requests kept per loop for reuse (loop->req_pool), and the largest
 * strings buffer a pooled request may keep: a request with a bigger one is
 * freed whole (request_free), not pooled. The pool is freed with the loop
 * (vigil__request_pool_free from vigil__loop_unref). */
#if defined(__SANITIZE_ADDRESS__)
#define VIGIL_POOLS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VIGIL_POOLS 0
#endif
#endif
#ifndef VIGIL_POOLS
#define VIGIL_POOLS 1
#endif
#define VIGIL_REQ_POOL_MAX 256 /* none kept without VIGIL_POOLS */
#define VIGIL_REQ_POOL_STRINGS_MAX 4096

/* A vigil_request_on_cancel registration. Owner: req->cancel_regs until it
 * runs (run_regs frees it), or request_free. */
typedef struct vigil_cancel_reg_s {
  struct vigil_cancel_reg_s *next;
  vigil_cancel_cb cb;
  void *userdata;
} vigil_cancel_reg_t;

enum { RESP_NONE = 0, RESP_STARTED = 1, RESP_ENDED = 2, RESP_HIJACKED = 3 };
enum { BODY_UNTOUCHED = 0, BODY_STARTED = 1, BODY_DELIVERED = 2 };

struct vigil_request_s {
  /* ---- kept while the request waits in its loop's pool (request.c):
   * set up at the first allocation, not cleared between requests. */
  vigil_buf_t strings;       /* target, then header names and values;
                                emptied (not freed) for the next request */
  vigil_request_t *pool_next; /* loop->req_pool */
  /* Not cleared either: written before they are read (add_header zeroes
   * each entry it takes, dispatch copies the peer). 320 bytes of memset
   * per request otherwise. */
  vigil_hdr_index_t inline_headers[VIGIL_INLINE_HEADERS];
  struct sockaddr_storage peer;
  /* Behind a PROXY header with addresses (`proxied`): `peer` is the
   * client's address from the header, and these are the directly
   * connected peer (the proxy) and the header's destination. Written at
   * dispatch when proxied, read only then. */
  struct sockaddr_storage direct_peer;
  struct sockaddr_storage proxy_dst;
  /* The connection's `local`, copied at dispatch (a request may outlive
   * its connection, and is read from any thread). */
  struct sockaddr_in6 local;
  /* A method llhttp 8.1 does not know (parse.c: unknown_method), NUL
   * terminated; `method` points here then. Written before it is read. */
  char method_token[VIGIL__METHOD_MAX + 1];

  /* ---- zeroed for each request, from here to the end (REQUEST_RESET_FROM). */
  atomic_uint refs;
  vigil_loop_t *loop;        /* immutable; holds a loop reference */
  _Atomic(void *) data;      /* vigil_request_set_data */

  /* The end reason: set once with a compare-and-swap from NONE; first wins. */
  atomic_int reason;
  /* 1 once vigil_request_finish was called (any thread). */
  atomic_int finished;
  /* Mirror of resp_state for quick error returns off the loop thread. */
  atomic_int resp_public;
  /* BODY_*: body_start called / end delivered (hijack needs either none or
   * all of the body gone through). */
  atomic_int body_public;

  /* vigil_request_on_cancel registrations, a lock-free stack (any thread
   * pushes) until the request ends: the loop then swaps in REGS_FIRED
   * (request.c) and runs what it took; a registration that finds
   * REGS_FIRED runs at once. No lock: this runs for every request. */
  _Atomic(vigil_cancel_reg_t *) cancel_regs;

  /* ---- head: written by the loop before on_request, immutable after
   * (with `strings` above). */
  uint32_t target_len;
  uint32_t nheaders;
  uint32_t headers_cap;
  vigil_hdr_index_t *headers; /* points at inline_headers or a heap array */
  const char *method;        /* static string from llhttp, or method_token */
  uint8_t method_id;         /* llhttp_method_t, or VIGIL__METHOD_OTHER */
  uint8_t version;           /* 10 or 11 */
  bool keep_alive;           /* as the request asked (llhttp_should_keep_alive) */
  bool chunked;
  bool expect_continue;
  bool is_head;
  bool is_connect;           /* 2xx answers carry no framing (response.c) */
  bool absolute_form;
  bool proxied;              /* direct_peer and proxy_dst are set */
  int64_t content_length;    /* -1 chunked */
  uint64_t conn_id;

  /* ---- loop thread only. */
  vigil_conn_t *conn;        /* NULL once detached from its connection */
  int resp_state;            /* RESP_* */
  bool resp_chunked;         /* chunked framing on the wire */
  bool resp_no_body;         /* HEAD, 1xx, 204, 304: body bytes dropped */
  int64_t resp_remaining;    /* fixed length: body bytes still owed; -1 otherwise */
  bool continue_sent;        /* "100 Continue" written */
  bool body_started;         /* vigil_request_body_start seen */
  bool done_called;          /* on_request_done delivered */
  bool handler_done;         /* the loop has run this request's OP_FINISH */
  atomic_int timeout_kind;   /* vigil_timeout_t, set before a TIMED_OUT end */
  _Atomic uint64_t body_limit; /* 0: none */
  /* Ops with a completion callback submitted from other threads and not
   * yet taken off the loop's queue (server.c): when the request ends they
   * are run (and fail) before on_request_done, so that it stays the last
   * callback. */
  atomic_uint queued_cbs;
};

/* request.c zeroes a pooled request from `refs` on: what is kept must sit
 * above it. */
_Static_assert(offsetof(vigil_request_t, strings) < offsetof(vigil_request_t, refs) &&
                   offsetof(vigil_request_t, pool_next) < offsetof(vigil_request_t, refs) &&
                   offsetof(vigil_request_t, inline_headers) < offsetof(vigil_request_t, refs) &&
                   offsetof(vigil_request_t, peer) < offsetof(vigil_request_t, refs) &&
                   offsetof(vigil_request_t, direct_peer) < offsetof(vigil_request_t, refs) &&
                   offsetof(vigil_request_t, proxy_dst) < offsetof(vigil_request_t, refs) &&
                   offsetof(vigil_request_t, local) < offsetof(vigil_request_t, refs),
               "fields kept across pool reuse must precede refs");

vigil_request_t *vigil__request_new(vigil_loop_t *loop, vigil_conn_t *conn);
void vigil__request_unref(vigil_request_t *req);
/* The loop is being freed: free its pooled requests. */
void vigil__request_pool_free(vigil_loop_t *loop);
/* Loop thread: end the request with `reason` if it has none yet; runs
 * on_request_done and the registered cancel callbacks. Returns true if this
 * call set the reason. */
bool vigil__request_end(vigil_request_t *req, vigil_reason_t reason);
/* The error a call on a request that ended with `reason` returns, the same
 * from every function and thread: VIGIL_ESHUTDOWN (the server's shutdown
 * ended it), VIGIL_EALREADY (the handler finished it), VIGIL_ECANCELED
 * (anything else); 0 while it runs. */
int vigil__reason_error(vigil_reason_t reason);
/* Loop thread: append a header span while parsing. */
int vigil__request_add_header(vigil_request_t *req);

/* ------------------------------------------------------------------ */
/* ops: work for a loop, from any thread (built and run in op.c, queued in
 * server.c). Owner: whoever made it
 * until it is handed over, then the loop, which frees it after running it:
 *   - vigil__loop_submit accepts it: run at once on the loop thread (and
 *     freed there), else queued on qhead and freed by loop_drain;
 *   - vigil_server_post on the loop thread queues an OP_TASK on tasks_head,
 *     freed by run_local_tasks.
 * A refused op (VIGIL_ESHUTDOWN) stays the caller's (vigil__op_submit
 * frees it). vigil__op_run never frees: vigil__op_submit_simple runs an op
 * from its own stack through it. */
enum {
  OP_START = 1,   /* response head */
  OP_WRITE,       /* body bytes */
  OP_END,
  OP_SEND,        /* start + write + end */
  OP_FINISH,      /* handler finished */
  OP_BODY_START,
  OP_BODY_PAUSE,
  OP_HIJACK,
  OP_HIJACK_WRITE,
  OP_HIJACK_CLOSE,
  OP_TASK         /* vigil_server_post */
};

struct vigil_op_s {
  vigil_op_t *next;
  int type;
  vigil_request_t *req;      /* holds a reference; NULL for OP_TASK */
  int status;
  int64_t content_length;
  vigil_write_cb cb;
  void *userdata;
  bool user_close;           /* the user's headers asked for Connection: close */
  bool user_date;            /* the user supplied Date */
  size_t head_len;           /* serialized user header lines at data[0..head_len) */
  size_t body_len;           /* body bytes at data[head_len..] */
  /* OP_WRITE, OP_HIJACK_WRITE: the body bytes, data + head_len in an op
   * of its own (a copy), or the caller's memory in an op run from the
   * stack on the loop thread (vigil__op_submit_write). */
  const char *body;
  vigil_task_cb task;        /* OP_TASK */
  char data[];
};

/* Build an op holding serialized header lines and a body copy; validates
 * the headers. Any thread. */
int vigil__op_new(vigil_op_t **out, int type, vigil_request_t *req,
                  const vigil_header_t *headers, size_t nheaders,
                  const void *body, size_t body_len);
/* Lay an op out in `op`, which has room for head_len + body_len bytes
 * (head_len and the flags from vigil__headers_measure); takes a request
 * reference. */
void vigil__op_fill(vigil_op_t *op, int type, vigil_request_t *req,
                    const vigil_header_t *headers, size_t nheaders,
                    const void *body, size_t body_len, size_t head_len,
                    bool user_close, bool user_date);
/* An op not handed over (refused, or its call lost the race for the
 * response state): drop its request reference and free it. */
void vigil__op_discard(vigil_op_t *op);
/* Run op now if on the loop thread, else queue it. Takes ownership on
 * success; on failure (VIGIL_ESHUTDOWN) the op is still the caller's. */
int vigil__loop_submit(vigil_loop_t *loop, vigil_op_t *op);
/* vigil__loop_submit for an op holding a request reference: on failure
 * discards it (vigil__op_discard). Returns vigil__loop_submit's. */
int vigil__op_submit(vigil_op_t *op);
/* An op of `type` with nothing but the request: on the loop thread run at
 * once from the stack (no allocation), else built and submitted. */
int vigil__op_submit_simple(vigil_request_t *req, int type);
/* OP_WRITE / OP_HIJACK_WRITE of the caller's bytes with its completion:
 * on the loop thread run at once from the stack (the bytes are not copied
 * into an op; the run copies what the socket does not take at once), else
 * a copy queued. Returns as vigil__op_submit. */
int vigil__op_submit_write(vigil_request_t *req, int type, const void *data,
                           size_t len, vigil_write_cb cb, void *userdata);
/* Loop thread: run one op and drop its request reference. Does not free
 * it: that is its owner's business (see above). */
void vigil__op_run(vigil_loop_t *loop, vigil_op_t *op);
/* Loop thread: fail an op whose request can no longer be served. */
void vigil__op_fail(vigil_op_t *op, int err);

/* May a handler call on req proceed? Quick checks on the calling thread
 * (NULL, finished, ended); the loop checks again (vigil__live_conn), since
 * the connection may die between here and there. */
static inline int vigil__op_precheck(vigil_request_t *req) {
  if (req == NULL) return VIGIL_EINVAL;
  if (atomic_load(&req->finished)) return VIGIL_EALREADY;
  return vigil__reason_error(vigil_request_reason(req));
}
/* Loop thread, as `req` ends: run (and so fail) its queued ops that carry
 * a completion callback, ahead of the rest of the queue. */
void vigil__loop_run_queued(vigil_loop_t *loop, vigil_request_t *req);

/* ------------------------------------------------------------------ */
/* timer.c: deadlines. One FIFO list per kind and loop: every entry of a kind
 * has the same duration, so appending keeps each list in deadline order and
 * a tick looks only at the fronts: O(1) per tick at any connection count. */
enum { T_HEADER = 0, T_IDLE, T_BODY, T_WRITE, T_HANDLER, T_KINDS };

void vigil__timer_arm(vigil_conn_t *conn, int kind);
void vigil__timer_disarm(vigil_conn_t *conn, int kind);
void vigil__timer_disarm_all(vigil_conn_t *conn);
bool vigil__timer_armed(const vigil_conn_t *conn, int kind);
/* conn.c: a deadline passed. */
void vigil__conn_timeout(vigil_conn_t *conn, int kind);

/* ------------------------------------------------------------------ */
/* The connection (conn.c). Its state machine lives in conn.c alone.
 *
 * Owner: its loop. Allocated on accept, freed in the uv_close callback of
 * `tcp`. Requests point back at it only while attached (req->conn), and are
 * detached before it is freed. */

/* Where the connection is in its request cycle (the observable state, like
 * Go's ConnState, is vigil_conn_state_t). Written only by vigil__conn_phase,
 * which checks each change against conn.c's table of allowed transitions. */
typedef enum {
  PHASE_PROXY = 0,     /* waiting for the PROXY protocol header (proxy.c)
                          that begins every connection when proxy_protocol
                          is on; left at accept when it is off */
  PHASE_HEAD,          /* parsing a request head (or waiting for one) */
  PHASE_BODY_WAIT,     /* head dispatched; body not requested yet (parser paused) */
  PHASE_BODY,          /* body flowing to on_body */
  PHASE_BODY_PAUSED,   /* body paused by the handler (parser paused) */
  PHASE_RESPONDING,    /* request fully read; waiting for response end + finish */
  PHASE_DRAIN,         /* handler finished, unread body being discarded */
  PHASE_HIJACKED,      /* raw bytes to the handler; no HTTP any more */
  PHASE_CLOSING        /* no more requests: flush, shutdown, linger, close */
} vigil_phase_t;

/* A write completion owed (vigil_response_write / vigil_hijack_write with a
 * callback). Owner: conn->waiters; fire_waiters calls and frees it. */
typedef struct {
  vigil_link_t link;
  vigil_write_cb cb;
  void *userdata;
  vigil_request_t *req;      /* holds a reference */
} vigil_write_waiter_t;

/* A connection's or listener's libuv handle: TCP, or a Unix socket
 * (uv_pipe_t). uv_accept, reads, writes, shutdown and close are generic
 * over streams; only the TCP options (nodelay, TCP_USER_TIMEOUT, TCP_INFO)
 * are not: check handle.type == UV_NAMED_PIPE. */
#define VIGIL__STREAM_UNION \
  union {                   \
    uv_handle_t handle;     \
    uv_stream_t stream;     \
    uv_tcp_t tcp;           \
    uv_pipe_t pipe;         \
  }

struct vigil_conn_s {
  VIGIL__STREAM_UNION;       /* handle.data == this */
  vigil_loop_t *loop;
  uint64_t id;
  vigil_link_t link;         /* loop->conns */
  vigil_link_t watch_link;   /* loop->watch: lingering, or a paused read
                                probed (when hup_fd cannot be had) */
  vigil_link_t dirty_link;   /* loop->dirty: output to flush this tick */
  vigil_link_t tlink[T_KINDS]; /* loop->timers[kind] */
  uint64_t deadline[T_KINDS];
  uint64_t served;           /* requests dispatched on this connection */

  int state;                 /* vigil_conn_state_t; -1 before accept */
  vigil_phase_t phase;
  llhttp_t parser;

  /* Unconsumed input, kept for the next parse or (later) a hijacker:
   * in.base[in_off .. in.len). May borrow the loop's slab during on_read
   * (conn.c, "input"), and keep it when most of a read is left unparsed
   * (in_unborrow: the slab is the connection's then). Owner: the
   * connection, outside a borrow; given back with vigil__loop_buf_put. */
  vigil_buf_t in;
  size_t in_off;

  /* Output not yet handed to the kernel, and the buffer of the single
   * uv_write in flight (wbuf, written from wbuf_off). */
  vigil_buf_t out;
  vigil_buf_t wbuf;
  /* The uv_write in flight, or the final uv_shutdown: never both (shutdown
   * waits for the output to drain). Allocated on first need and kept until
   * close: most responses leave by uv_try_write and never need one, and an
   * idle connection should stay small. */
  union vigil_conn_req {
    uv_write_t write;
    uv_shutdown_t shutdown;
  } *ureq;
  bool writing;
  size_t write_mark;         /* vigil__conn_unacked when T_WRITE was armed
                                or last saw progress */
  vigil_link_t waiters;      /* vigil_write_waiter_t: write completions owed */

  vigil_request_t *req;      /* the request in flight (holds a reference) */
  vigil_request_t *parsing;  /* the head being parsed (holds a reference) */

  /* Header block checks the llhttp 8.1 strict parser leaves to us. */
  size_t head_bytes;
  int head_last;             /* previous byte in the header block, -1 at start */
  int head_line_start;       /* 1 when the next byte starts a line */
  int head_error;            /* HTTP status to answer, 0 if fine */
  const char *head_error_at; /* parse.c: where a span's limit was passed */
  int host_count;
  bool version_seen;         /* parse.c: the request line carried a version */
  bool te_seen;              /* parse.c: a Transfer-Encoding line was seen */
  bool first_line_done;      /* checks.c: the request line has ended */
  bool method_other;         /* parse.c: a token llhttp does not know, fed as GET */
  bool method_retry;         /* parse.c: llhttp took an RTSP method: redo as unknown */
  bool head_is_head;         /* parse.c: the method is HEAD (error answers) */
  bool te_unknown;           /* parse.c: a transfer coding other than chunked */
  bool expect_other;         /* parse.c: an expectation other than 100-continue */
  bool conn_close;           /* parse.c: Connection lists close */
  bool conn_keep;            /* parse.c: Connection lists keep-alive */
  uint8_t rl_state;          /* checks.c: check_request_line's state */
  uint8_t rl_n;              /* checks.c: bytes matched in that state */
  uint8_t rl_ver;            /* checks.c: the version's digits, major * 10 + minor */
  bool rl_bad;               /* checks.c: the request line was refused */
  bool msg_begun;            /* checks.c: a message began in this parse call */
  size_t chunk_ext_bytes;     /* parse.c: this size line's extension bytes */
  /* parse.c, chunked framing: the parser as it was paused at head complete
   * (restored after each extension list the core checked itself), the
   * extension scanner's state (0: llhttp parses), and the framing byte
   * check's state, carried across reads. */
  llhttp_t chunk_snap;
  const char *ext_at;        /* set by the extension callback: list start */
  uint64_t ext_size;         /* the chunk size llhttp parsed before it */
  uint8_t ext_state;
  uint8_t frame_last;        /* previous framing byte */
  bool frame_line_start;
  size_t frame_run;          /* checks.c: framing bytes since the last body byte */
  int in_header_value;       /* parse.c: which header part is being assembled */
  bool head_ready;           /* parse.c: a head is complete, to dispatch */
  bool msg_complete;         /* parse.c: the message ended */
  const char *body_at;       /* parse.c: the body span of the last parse call */
  size_t body_len;
  uint64_t body_read;        /* body bytes of the current request parsed */
  uint64_t drained;          /* body bytes discarded in PHASE_DRAIN */
  struct sockaddr_in6 peer;  /* big enough for AF_INET too */
  /* The socket's own address (getsockname), read once at accept; family
   * AF_UNIX alone on a Unix socket, 0 if it could not be read. */
  struct sockaddr_in6 local;
  /* The addresses a PROXY header carried (PROXY command, a known family):
   * NULL otherwise. Owner: the connection; freed in on_close. */
  struct vigil__proxy_hdr_s *proxy;

  bool reading;              /* uv_read_start is armed */
  bool read_eof;             /* the client half-closed (FIN) */
  bool close_after;          /* close once the current response is written;
                              * set only by vigil__conn_close_after */
  bool closing;              /* gone for the API: set first when closing
                                (conn.c mark_closing); uv_close follows */
  bool shutdown_sent;
  bool in_process;           /* re-entrancy guard for vigil__conn_process */
  bool reprocess;
  bool body_paused;          /* handler asked to pause the body */
  bool hijack_eof;           /* end delivered on a hijacked connection */
  bool out_blocked;          /* the next request waits for the output to
                                drain below write_buffer_limit */
  /* Registered in loop->hup_fd while reading is paused (server.c,
   * "hang-ups"); hup_fin: the FIN was seen there in "finish" mode, only an
   * RST is still of interest. */
  bool hup_watched;
  bool hup_fin;
  uint64_t linger_deadline;  /* uv_now ms; 0 = none */
  uint64_t idle_since;       /* uv_now ms when it last began waiting for a
                                request (accepted, or went IDLE) */
};

void vigil__conn_accept(vigil_loop_t *loop);
/* Shutdown began (at `now`): may this connection, waiting for a request
 * or with a response under way whose head said keep-alive, still bring
 * one (shutdown_idle_ms)? Else it closes like the others. */
bool vigil__conn_shutdown_waits(const vigil_conn_t *conn, uint64_t now,
                                uint64_t idle_ms);
/* Is it still waiting for a request, with nothing received? */
bool vigil__conn_waiting_idle(const vigil_conn_t *conn);
/* Testing hook: serve a connected stream socket (e.g. a socketpair end). */
int vigil__server_adopt(vigil_server_t *server, int fd);
/* Drive the state machine: parse what is buffered, advance requests. */
void vigil__conn_process(vigil_conn_t *conn);
/* Close at once (no flush), ending the request in flight with `reason`;
 * with VIGIL_REASON_CLIENT_CLOSED (a FIN) the request ends at once but what
 * is queued is still written before the close. */
void vigil__conn_abort(vigil_conn_t *conn, vigil_reason_t reason);
/* The reason a failed read or write (a negated errno / libuv code) ends a
 * request with: the kernel giving up on a silent peer (keepalive,
 * TCP_USER_TIMEOUT, retransmissions: ETIMEDOUT) or the network reporting it
 * unreachable is VIGIL_REASON_PEER_UNREACHABLE, whichever call saw it
 * first; anything else is `otherwise`. */
static inline vigil_reason_t vigil__io_reason(int err, vigil_reason_t otherwise) {
  switch (err) {
    case UV_ETIMEDOUT:
    case UV_EHOSTUNREACH:
    case UV_ENETUNREACH:
      return VIGIL_REASON_PEER_UNREACHABLE;
    default:
      return otherwise;
  }
}
/* The kernel's limits for TCP_KEEPIDLE / TCP_KEEPINTVL (seconds) and
 * TCP_KEEPCNT; vigil_server_new refuses more. */
#define VIGIL__KEEPALIVE_MAX_MS (32767ull * 1000)
#define VIGIL__KEEPALIVE_MAX_COUNT 127u
/* The watch timer tick: linger deadlines, and probes of paused reads that
 * could not be registered for hang-ups (server.c). */
void vigil__conn_watch(vigil_conn_t *conn, uint64_t now);
/* A response ended or the handler finished: maybe move to the next request. */
void vigil__conn_request_progress(vigil_conn_t *conn);
/* Body flow control from the handler. */
void vigil__conn_body_start(vigil_conn_t *conn);
void vigil__conn_body_pause(vigil_conn_t *conn);
void vigil__conn_hijack(vigil_conn_t *conn);
void vigil__conn_hijack_close(vigil_conn_t *conn);
void vigil__conn_set_state(vigil_conn_t *conn, int state);
/* Loop thread: move to phase `to`; a transition conn.c's table does not
 * allow aborts a debug build (VIGIL_ASSERT). The only writer of
 * conn->phase. */
void vigil__conn_phase(vigil_conn_t *conn, vigil_phase_t to);
/* Loop thread: the response in flight is the connection's last
 * (`Connection: close`; closes once it is flushed). */
void vigil__conn_close_after(vigil_conn_t *conn);
/* An idle connection gives its empty buffers back to the loop. */
void vigil__conn_drop_idle_buffers(vigil_conn_t *conn);

/* parse.c: the connection's llhttp parser and its callbacks. */
void vigil__parser_init(vigil_conn_t *conn);
/* Reset the header block checks before a new head. */
void vigil__head_reset(vigil_conn_t *conn);
/* checks.c: whether an error answer to the head being parsed goes to a HEAD
 * request (no body, RFC 9110 9.3.2). */
bool vigil__head_error_is_head(const vigil_conn_t *conn);
/* checks.c: run llhttp on data, with the core's checks; returns bytes
 * consumed and sets *err to the llhttp error (HPE_OK, HPE_PAUSED, or a
 * failure). */
size_t vigil__parse(vigil_conn_t *conn, const char *data, size_t len,
                    llhttp_errno_t *err);
/* checks.c: the status to answer for a parse failure: the head's own,
 * else 400 (llhttp's errors, whichever). */
int vigil__parse_error_status(const vigil_conn_t *conn);

/* checks.c: checks of header values, called from parse.c's callbacks.
 * A Host value (uri-host [":" port]; empty is valid). */
bool vigil__valid_host(const char *v, size_t n);
/* Request-target forms, RFC 9112 3.2.3 and 3.2.2. */
bool vigil__authority_form(const char *t, size_t n);
bool vigil__absolute_form(const char *t, size_t n);
/* States of the chunk extension scanner (conn->ext_state; checks.c). */
enum {
  EXT_NONE = 0, /* llhttp parses */
  EXT_FIRST,    /* the first name, right after the line's first ';' */
  EXT_NAME0,    /* a name, after a later ';' (BWS first allowed) */
  EXT_NAME,     /* in a name */
  EXT_NAME_BWS, /* BWS after a name: '=' or ';' must follow */
  EXT_VAL0,     /* after '=' (BWS first allowed) */
  EXT_TOKEN,    /* in a token value */
  EXT_QUOTED,   /* in a quoted-string */
  EXT_QPAIR,    /* after '\' in a quoted-string */
  EXT_VAL_END,  /* after a quoted-string: ';', BWS or CR */
  EXT_VAL_BWS,  /* BWS after a value: ';' must follow */
  EXT_CR,       /* the line's CR: LF must follow */
};

/* Output bytes this connection holds: not yet written, or in the
 * uv_write in flight. */
static inline size_t vigil__conn_queued(const vigil_conn_t *c) {
  return c->out.len + (c->writing ? c->wbuf.len : 0);
}

/* op.c, loop thread: why req can no longer write: its connection is gone
 * (ESHUTDOWN when no reason was given, as when the loop failed what it
 * still had queued), closing, or the request has ended. */
int vigil__conn_gone_error(const vigil_request_t *req);
/* Loop thread: the connection req can still write to (*c), or why not.
 * Asked by every op and by vigil_response_send's direct path, at the moment
 * they would write: the connection may have died since the caller's
 * precheck. Inline, the rare answer out of line: it runs per response. */
static inline int vigil__live_conn(vigil_request_t *req, vigil_conn_t **c) {
  *c = req->conn;
  if (*c != NULL && !(*c)->closing &&
      vigil_request_reason(req) == VIGIL_REASON_NONE)
    return 0;
  return vigil__conn_gone_error(req);
}

/* response.c: responses, serialization and the write queue. */
/* Validate the user's headers and size their serialized lines (head_len);
 * tells whether they ask for Connection: close or bring a Date. Any
 * thread. */
int vigil__headers_measure(const vigil_header_t *headers, size_t nheaders,
                           size_t *head_len, bool *user_close, bool *user_date);
/* The user's header lines, minus the framing ones, at p
 * (vigil__headers_measure's head_len bytes). Returns the end. */
char *vigil__headers_put(char *p, const vigil_header_t *headers, size_t nheaders);
/* Loop thread, the response ops (op.c dispatches them; c is live): they
 * return 0 or the error for the op's completion. */
int vigil__response_run_start(vigil_request_t *req, vigil_conn_t *c,
                              const vigil_op_t *op);
int vigil__response_run_send(vigil_request_t *req, vigil_conn_t *c,
                             const vigil_op_t *op);
int vigil__response_run_write(vigil_request_t *req, vigil_conn_t *c,
                              vigil_op_t *op);
int vigil__response_run_end(vigil_request_t *req, vigil_conn_t *c);
/* Loop thread: the handler finished (not hijacked): owed completions run,
 * a response never started becomes a 500, one never ended closes. */
void vigil__response_handler_done(vigil_request_t *req, vigil_conn_t *c);
/* Loop thread: op's completion is owed until the queue drains below
 * write_buffer_limit: a waiter takes it (op->cb becomes NULL).
 * VIGIL_ENOMEM leaves it with the op. */
int vigil__conn_add_waiter(vigil_conn_t *conn, vigil_op_t *op);
/* Bytes written and not yet acknowledged by the client, libuv's queue
 * included (write timeout progress). */
size_t vigil__conn_unacked(vigil_conn_t *conn);
void vigil__conn_mark_dirty(vigil_conn_t *conn);
void vigil__conn_flush(vigil_conn_t *conn);
/* Answer with an error status written by the core, then close. */
void vigil__conn_error_response(vigil_conn_t *conn, int status, bool is_head);
/* Fail every waiter with err (connection gone). */
void vigil__conn_fail_waiters(vigil_conn_t *conn, int err);
/* Complete every waiter with 0: the handler is done, and its completions
 * run before its on_request_done (response.c). */
void vigil__conn_complete_waiters(vigil_conn_t *conn);
void vigil__response_internal_error(vigil_request_t *req);
void vigil__send_continue(vigil_request_t *req);

/* proxy.c: the PROXY protocol header (HAProxy's proxy-protocol.txt), v1
 * and v2. Pure functions over the bytes buffered so far. */
#define VIGIL__PROXY_V1_MAX 107      /* v1 header with its CRLF (spec 2.1) */
#define VIGIL__PROXY_V2_MAX_LEN 2048 /* v2 length field (addresses + TLVs) */
#define VIGIL__PROXY_MAX (16 + VIGIL__PROXY_V2_MAX_LEN)
enum {
  VIGIL__PROXY_MORE = -1, /* not whole yet */
  VIGIL__PROXY_BAD = -2   /* not a valid header */
};
typedef struct vigil__proxy_hdr_s {
  uint8_t version;           /* 1 or 2 */
  bool has_addrs;            /* PROXY command and a known family: src, dst */
  struct sockaddr_storage src, dst;
} vigil__proxy_hdr_t;
/* A header of one of `versions` (VIGIL_PROXY_V1 | VIGIL_PROXY_V2) at the
 * start of p[0..n): its length once whole (*h filled), VIGIL__PROXY_MORE,
 * or VIGIL__PROXY_BAD (as soon as the bytes so far cannot begin one). */
int vigil__proxy_parse(const char *p, size_t n, unsigned versions,
                       vigil__proxy_hdr_t *h);

/* hijack.c, loop thread: OP_HIJACK_WRITE. */
int vigil__hijack_run_write(vigil_conn_t *conn, vigil_op_t *op);
/* response.c, loop thread: `data` then `tail` onto the connection's
 * output, a big piece first written from the caller's memory when no
 * write is in flight (only what the socket does not take is copied).
 * VIGIL_ENOMEM closes the connection after its output. */
int vigil__conn_out_put(vigil_conn_t *c, const char *data, size_t len,
                        const char *tail, size_t tail_len);

/* names.c: "OK", "Not Found", ...; "Unknown" for a status it lacks. */
const char *vigil__status_text(int status);

/* ------------------------------------------------------------------ */
/* The loop (server.c).
 *
 * Owner: reference counted: one reference from the server, one from each
 * live request (so a request outliving the server can still tell that its
 * loop is gone). The uv_loop_t and handles inside are used only while the
 * loop thread runs; after it exits only the queue fields, the counters and
 * the refcount are touched. Freed by vigil__loop_unref at zero. */
#define VIGIL_SLAB_SIZE (64 * 1024)
#define VIGIL_SPARE_BUFS 128 /* none kept without VIGIL_POOLS */
#define VIGIL_SPARE_BUF_MAX (8 * 1024)

struct vigil_loop_s {
  atomic_uint refs;
  vigil_server_t *server;    /* valid while the loop thread runs */
  unsigned index;

  uv_loop_t uv;
  uv_thread_t thread;
  uv_async_t async;
  uv_prepare_t prepare;      /* end-of-tick flush */
  uv_timer_t watch_timer;    /* linger deadlines (and paused-read probes
                                when hup_fd cannot be had) */
  /* Hang-ups of paused connections (server.c): an epoll instance of our
   * own, created at the first pause, watched by one uv_poll_t; -1 until
   * then. Closed with the loop's handles. */
  int hup_fd;
  uv_poll_t hup_poll;
  uv_timer_t grace_timer;    /* shutdown grace period */
  uv_timer_t tick_timer;     /* deadlines (timer.c) */
  uv_timer_t trim_timer;     /* malloc_trim after connections went away */
  uv_poll_t shutdown_poll;   /* the server's shutdown_fd */
  vigil_link_t timers[T_KINDS];
  bool tick_active;
  /* Its listening socket: a duplicate of the server's (one accept queue
   * for all loops), or with reuse_port a socket of its own (loops > 0). */
  VIGIL__STREAM_UNION listener;
  bool listening;
  uv_timer_t drain_timer;    /* shutdown: closes what stayed idle (shutdown_idle_ms) */

  /* Guards qhead/qtail/qclosed: the one cross-thread path into the loop. */
  pthread_mutex_t qlock;
  vigil_op_t *qhead, *qtail;
  bool qclosed;              /* set when the async handle is closing */

  /* Loop thread only. */
  vigil_link_t conns;
  vigil_link_t watch;
  vigil_link_t dirty;
  vigil_link_t user_timers;  /* armed vigil_timer_t, not closing (sleep.c) */
  vigil_op_t *tasks_head, *tasks_tail; /* OP_TASKs posted from this thread;
                                        * freed by run_local_tasks */
  vigil_request_t *req_pool; /* released requests for reuse (request.c) */
  unsigned req_pool_n;
  /* Buffers given back by connections going idle or closing (an idle
   * connection owns none; vigil__loop_buf_put), for the next one that needs
   * one (vigil__loop_buf_get): no malloc/free per keep-alive response. At
   * most VIGIL_SPARE_BUFS of at most VIGIL_SPARE_BUF_MAX (1 MiB per loop at
   * worst, kept for the loop's life); freed by vigil__loop_unref. */
  vigil_buf_t spare[VIGIL_SPARE_BUFS];
  unsigned nspare;
  bool stopping;
  bool grace_over;
  bool watch_active;
  bool hup_disabled;         /* VIGIL_HUP_EPOLL=0: probe paused connections */
  uint64_t trim_peak;        /* open connections since the last malloc_trim */
  int handles_open;          /* loop handles still to close at exit */
  uint64_t date_sec;
  uint64_t date_tick;        /* uv_now when the clock was last read */
  char date[64];             /* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" */
  size_t date_len;
  /* Owner of both: the loop (malloc'd in loop_new / taken back in
   * vigil__loop_buf_put, freed in vigil__loop_unref). */
  char *slab;                /* shared read buffer (VIGIL_SLAB_SIZE bytes)
                                 for connections with no pending bytes:
                                 idle connections own none. A connection
                                 left with most of a read unparsed takes it
                                 over, and the loop allocates another
                                 (conn.c in_unborrow) */
  char *spare_slab;          /* a VIGIL_SLAB_SIZE buffer a connection gave
                                back, for the next slab (no malloc/free
                                churn, which glibc answers with heap trims
                                and page faults); NULL when none */

  /* Counters (any thread reads). */
  atomic_uint_fast64_t accepted, open, requests, live, cancelled, bad;
  atomic_uint_fast64_t idle, hijacked; /* gauges, kept by conn_set_state */
};

bool vigil__loop_stopping(vigil_loop_t *loop);
/* A connection became idle during the shutdown: make sure the drain timer
 * will close it after shutdown_idle_ms. Loop thread. */
void vigil__loop_drain_watch(vigil_loop_t *loop);
/* sleep.c: the loop is closing (qclosed): end every armed vigil_timer_t,
 * whose last call is then VIGIL_ESHUTDOWN. Loop thread. */
void vigil__timers_close(vigil_loop_t *loop);
/* response.c -> conn.c: the output queue is empty. */
void vigil__conn_output_drained(vigil_conn_t *conn);
void vigil__loop_ref(vigil_loop_t *loop);
void vigil__loop_unref(vigil_loop_t *loop);
bool vigil__on_loop_thread(const vigil_loop_t *loop);
void vigil__loop_set_current(const vigil_loop_t *loop);
void vigil__loop_watch(vigil_loop_t *loop, vigil_conn_t *conn);
void vigil__loop_unwatch(vigil_conn_t *conn);
/* Paused connections' hang-ups (FIN, RST) as events (server.c): add
 * returns 0 or an error (the caller then probes on the watch timer);
 * fin_seen keeps only the RST of interest; del is a no-op if not added. */
int vigil__loop_hup_add(vigil_loop_t *loop, vigil_conn_t *conn);
void vigil__loop_hup_fin_seen(vigil_conn_t *conn);
void vigil__loop_hup_del(vigil_conn_t *conn);
/* conn.c: a paused connection's socket reported a hang-up. */
void vigil__conn_hangup(vigil_conn_t *conn);
/* Called by conn.c when a connection was freed (shutdown bookkeeping). */
void vigil__loop_conn_closed(vigil_loop_t *loop);
const char *vigil__loop_date(vigil_loop_t *loop, size_t *len);
/* Loop thread: b (empty) gives its memory to the loop's spares, or frees
 * it; b ends with none. */
void vigil__loop_buf_put(vigil_loop_t *loop, vigil_buf_t *b);
/* Loop thread: b, which has no memory, takes a spare buffer if any. */
void vigil__loop_buf_get(vigil_loop_t *loop, vigil_buf_t *b);

struct vigil_server_s {
  vigil_config_t config;
  char *host;
  int port;                  /* bound port */
  unsigned nloops;
  vigil_loop_t **loops;
  atomic_uint next_loop;
  atomic_uint_fast64_t next_conn_id;
  atomic_uint conns_open;    /* across loops, for max_connections */
  atomic_int started;
  atomic_int shutdown_requested;
  /* vigil_server_shutdown's only way in (async-signal-safe): an eventfd
   * that every loop polls, written once; the grace period beside it. Made
   * by vigil_server_new, closed by vigil_server_free. */
  int shutdown_fd;
  _Atomic uint64_t shutdown_grace_ms;
  atomic_uint loops_running;
  bool waited;

  /* listen.c: the listening socket. listen_sock is the server's own
   * descriptor of it (the loops listen on duplicates), kept for
   * vigil_server_handover and closed when the shutdown begins; -1 when
   * none. listen_lock guards it (a hand-over forks with it). */
  pthread_mutex_t listen_lock;
  int listen_sock;
  bool listen_unix;          /* the socket is AF_UNIX: loops use uv_pipe_t */
  char *unix_path;           /* config.unix_path, copied */
  bool unix_made;            /* we bound unix_path: remove it at shutdown */
  bool handed_over;          /* vigil_server_handover succeeded: keep the file */
  bool handover_pending;     /* a successor was forked and may yet serve the
                              * file: a shutdown meanwhile keeps it, and
                              * vigil__listen_handover_end removes it if
                              * the hand-over fails */
  uint64_t unix_dev, unix_ino; /* the socket file we made */
  atomic_int handover_busy;  /* a vigil_server_handover is under way */
};

/* listen.c: open the server's listening socket (s->listen_sock, s->port,
 * s->listen_unix) from the configuration. 0 or an error; nothing left open
 * on error. */
int vigil__listen_open(vigil_server_t *s);
/* listen.c: the descriptor loop `index` listens on (its own: the caller
 * owns it): a duplicate of listen_sock, or with reuse_port a new socket on
 * the same port for loops > 0. */
int vigil__listen_loop_fd(vigil_server_t *s, unsigned index, int *fd);
/* listen.c: close listen_sock and remove the Unix socket file if it is
 * still ours. Idempotent; any thread. */
void vigil__listen_close(vigil_server_t *s);
/* listen.c: a hand-over that forked (handover_pending) has ended: ok, the
 * successor serves the socket and its file; else, if the shutdown closed
 * the socket meanwhile, remove the file it kept. Any thread. */
void vigil__listen_handover_end(vigil_server_t *s, bool ok);
/* handover.c: a successful vigil_server_start on an inherited socket: tell
 * the predecessor (vigil_server_handover) that we serve. */
void vigil__handover_ready(vigil_server_t *s);

#endif /* VIGIL_INTERNAL_H */
