/*
 * test_bigbody.c - big bodies byte for byte: the paths that avoid copies
 * (BENCHMARKS.md round 4) must still deliver every byte once, in order.
 *   - echo, the handler pausing the body until each write completes (the
 *     read slab kept by a connection whose body waits, reads into a
 *     buffer's spare room), over keep-alive, Content-Length and chunked;
 *   - streamed responses whose pieces go to the socket from the caller's
 *     memory (writev with the pending head or chunk size line; the rest
 *     copied when the socket is full), chunked and with Content-Length,
 *     pieces of many sizes around the 4 KiB threshold, a client that
 *     first does not read at all;
 *   - the same stream written from another thread (the copying path).
 * Over loopback sockets, as clients do it.
 */
#include <vigil.h>

#include "tc.h"

#include <stdbool.h>

static unsigned char pattern_at(size_t i) {
  return (unsigned char)((i * 7u) ^ (i >> 11) ^ (i >> 19));
}

static char *pattern; /* PATTERN_LEN bytes of pattern_at */
#define PATTERN_LEN (6u << 20)

static int body_matches(const tc_buf_t *b, size_t len, size_t offset) {
  if (b->len != len) {
    tc_note("body length %zu, want %zu", b->len, len);
    return 0;
  }
  for (size_t i = 0; i < len; i++) {
    if ((unsigned char)b->p[i] != pattern_at(offset + i)) {
      tc_note("byte %zu differs", i);
      return 0;
    }
  }
  return 1;
}

/* ------------------------------------------------------------------ */
/* the handlers */

enum { M_ECHO = 1, M_STREAM };
static int mode;
static int stream_chunked;    /* M_STREAM: -1 length (chunked) or Content-Length */
static size_t stream_total;
static int stream_thread;     /* write from a thread of our own */
static atomic_int failures;   /* a vigil call that failed in a handler */

/* The piece sizes a stream cycles through: around DIRECT_WRITE_MIN. */
static const size_t pieces[] = {1, 4095, 4096, 4097, 70000, 65536, 300000, 17, 1 << 20};
#define NPIECES (sizeof pieces / sizeof pieces[0])

typedef struct {
  vigil_request_t *req;
  size_t sent;
  unsigned k;
} stream_t;

static void stream_next(vigil_request_t *req, int status, void *ud);

/* Writes the next piece, or ends. On the loop thread: from on_request,
 * then from each completion. */
static void stream_step(stream_t *s) {
  if (s->sent >= stream_total) {
    if (vigil_response_end(s->req) != 0) atomic_fetch_add(&failures, 1);
    vigil_request_finish(s->req);
    free(s);
    return;
  }
  size_t n = pieces[s->k++ % NPIECES];
  if (n > stream_total - s->sent) n = stream_total - s->sent;
  const char *at = pattern + s->sent;
  s->sent += n;
  if (vigil_response_write(s->req, at, n, stream_next, s) != 0) {
    atomic_fetch_add(&failures, 1);
    vigil_request_finish(s->req);
    free(s);
  }
}

static void stream_next(vigil_request_t *req, int status, void *ud) {
  stream_t *s = ud;
  if (status != 0) {
    atomic_fetch_add(&failures, 1);
    vigil_request_finish(req);
    free(s);
    return;
  }
  stream_step(s);
}

/* From a thread of our own: every write blocks on its completion. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done, status;
} waiter_t;

static void thread_written(vigil_request_t *req, int status, void *ud) {
  waiter_t *w = ud;
  pthread_mutex_lock(&w->mu);
  w->done = 1;
  w->status = status;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void *stream_thread_main(void *arg) {
  vigil_request_t *req = arg;
  size_t sent = 0;
  unsigned k = 0;
  waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
  while (sent < stream_total) {
    size_t n = pieces[k++ % NPIECES];
    if (n > stream_total - sent) n = stream_total - sent;
    w.done = 0;
    if (vigil_response_write(req, pattern + sent, n, thread_written, &w) != 0) {
      atomic_fetch_add(&failures, 1);
      break;
    }
    sent += n;
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (w.status != 0) {
      atomic_fetch_add(&failures, 1);
      break;
    }
  }
  if (sent >= stream_total && vigil_response_end(req) != 0) atomic_fetch_add(&failures, 1);
  vigil_request_finish(req);
  return NULL;
}

static void echo_written(vigil_request_t *req, int status, void *ud) {
  if (status == 0) vigil_request_body_start(req);
}

static void on_request(vigil_request_t *req, void *ud) {
  if (mode == M_STREAM) {
    int64_t len = stream_chunked ? -1 : (int64_t)stream_total;
    if (vigil_response_start(req, 200, NULL, 0, len) != 0) {
      atomic_fetch_add(&failures, 1);
      vigil_request_finish(req);
      return;
    }
    if (stream_thread) {
      tc_spawn(stream_thread_main, req);
      return;
    }
    stream_t *s = calloc(1, sizeof *s);
    s->req = req;
    stream_step(s);
    return;
  }
  /* M_ECHO (examples/c/echo.c's scheme) */
  int has_body = vigil_request_has_body(req);
  if (has_body) vigil_request_body_start(req);
  if (vigil_response_start(req, 200, NULL, 0, vigil_request_content_length(req)) != 0) {
    atomic_fetch_add(&failures, 1);
    vigil_request_finish(req);
    return;
  }
  if (!has_body) {
    vigil_response_end(req);
    vigil_request_finish(req);
  }
}

static void on_body(vigil_request_t *req, const char *data, size_t len, int end,
                    void *ud) {
  if (len > 0 && vigil_response_write(req, data, len, echo_written, NULL) == 0)
    vigil_request_body_pause(req);
  if (end) {
    vigil_response_end(req);
    vigil_request_finish(req);
  }
}

static void on_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  if (reason != VIGIL_REASON_HANDLER_FINISHED) {
    tc_note("request ended: %s", vigil_reason_name(reason));
    atomic_fetch_add(&failures, 1);
  }
}

static int start(vigil_server_t **s) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.on_body = on_body;
  cfg.on_request_done = on_done;
  cfg.max_body_bytes = 64u << 20;
  atomic_store(&failures, 0);
  return tc_server_start(s, &cfg);
}

static void stop(vigil_server_t *s) {
  tc_join_workers();
  vigil_server_shutdown(s, 1000);
  vigil_server_wait(s);
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* the tests */

/* Sends `len` pattern bytes from `offset` as one request (Content-Length,
 * or chunked in pieces of `chunk`), reads the echo, checks it. */
static void echo_once(tc_client_t *c, size_t len, size_t offset, size_t chunk) {
  char head[160];
  tc_resp_t r;
  if (chunk == 0) {
    int hl = snprintf(head, sizeof head,
                      "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n", len);
    REQUIRE(tc_send(c, head, (size_t)hl) == 0, "send head");
    REQUIRE(tc_send(c, pattern + offset, len) == 0, "send body");
  } else {
    REQUIRE(tc_send_str(c, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") == 0,
            "send head");
    for (size_t at = 0; at < len; at += chunk) {
      size_t n = len - at < chunk ? len - at : chunk;
      int hl = snprintf(head, sizeof head, "%zx\r\n", n);
      REQUIRE(tc_send(c, head, (size_t)hl) == 0, "send chunk size");
      REQUIRE(tc_send(c, pattern + offset + at, n) == 0, "send chunk");
      REQUIRE(tc_send(c, "\r\n", 2) == 0, "send CRLF");
    }
    REQUIRE(tc_send_str(c, "0\r\n\r\n") == 0, "send last chunk");
  }
  REQUIRE(tc_read_response(c, &r, 20000) == 0, "echo response");
  CHECK_EQ_INT(r.status, 200);
  CHECK(body_matches(&r.body, len, offset), "echo of %zu bytes at %zu", len, offset);
  tc_resp_free(&r);
}

static void test_echo_keepalive(void) {
  mode = M_ECHO;
  vigil_server_t *s;
  int port = start(&s);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  echo_once(&c, 3u << 20, 0, 0);
  echo_once(&c, 100000, 12345, 0);
  echo_once(&c, 5u << 20, 777, 0);
  echo_once(&c, 1, 3, 0);
  tc_close(&c);
  CHECK_EQ_INT(atomic_load(&failures), 0);
  CHECK(tc_stats_settled(s, 5000), "settled");
  stop(s);
}

static void test_echo_chunked(void) {
  mode = M_ECHO;
  vigil_server_t *s;
  int port = start(&s);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  echo_once(&c, 2u << 20, 5, 100000);
  echo_once(&c, 300000, 9, 4096);
  echo_once(&c, 1u << 20, 1, 1u << 20);
  tc_close(&c);
  CHECK_EQ_INT(atomic_load(&failures), 0);
  CHECK(tc_stats_settled(s, 5000), "settled");
  stop(s);
}

/* The request line and the first body bytes in one send, then a pipelined
 * second request behind the first body: bytes the handler has not asked
 * for yet wait in the connection, and the next request starts right after
 * the body's last byte. */
static void test_echo_pipelined(void) {
  mode = M_ECHO;
  vigil_server_t *s;
  int port = start(&s);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  size_t len = 200000;
  char head[128];
  int hl = snprintf(head, sizeof head,
                    "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n", len);
  tc_buf_t all = {0};
  for (int k = 0; k < 3; k++) {
    tc_buf_add(&all, head, (size_t)hl);
    tc_buf_add(&all, pattern + (size_t)k * 1000, len);
  }
  REQUIRE(tc_send(&c, all.p, all.len) == 0, "send three requests at once");
  tc_buf_free(&all);
  for (int k = 0; k < 3; k++) {
    tc_resp_t r;
    REQUIRE(tc_read_response(&c, &r, 20000) == 0, "response %d", k);
    CHECK_EQ_INT(r.status, 200);
    CHECK(body_matches(&r.body, len, (size_t)k * 1000), "echo %d", k);
    tc_resp_free(&r);
  }
  tc_close(&c);
  CHECK_EQ_INT(atomic_load(&failures), 0);
  CHECK(tc_stats_settled(s, 5000), "settled");
  stop(s);
}

static void stream_case(int chunked, int thread, int stall_ms) {
  mode = M_STREAM;
  stream_chunked = chunked;
  stream_thread = thread;
  stream_total = PATTERN_LEN - 3;
  vigil_server_t *s;
  int port = start(&s);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  /* A small receive buffer: the socket fills and pieces are left over. */
  int small = 16384;
  setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  for (int k = 0; k < 2; k++) {
    REQUIRE(tc_send_str(&c, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n") == 0, "send");
    if (stall_ms) tc_sleep_ms((unsigned)stall_ms); /* not reading: the socket fills */
    tc_resp_t r;
    REQUIRE(tc_read_response(&c, &r, 30000) == 0, "response %d", k);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.chunked == chunked, "chunked %d", r.chunked);
    CHECK(body_matches(&r.body, stream_total, 0), "stream %d", k);
    tc_resp_free(&r);
  }
  tc_close(&c);
  CHECK_EQ_INT(atomic_load(&failures), 0);
  CHECK(tc_stats_settled(s, 5000), "settled");
  stop(s);
}

static void test_stream_chunked(void) { stream_case(1, 0, 0); }
static void test_stream_length(void) { stream_case(0, 0, 0); }
static void test_stream_chunked_stalled(void) { stream_case(1, 0, 300); }
static void test_stream_length_stalled(void) { stream_case(0, 0, 300); }
static void test_stream_thread(void) { stream_case(1, 1, 200); }

/* An optional argument runs only the tests whose name contains it. */
static const char *only;
#define RUNF(fn, name) \
  do { if (only == NULL || strstr(name, only)) RUN(fn, name); } while (0)

int main(int argc, char **argv) {
  tc_init();
  only = argc > 1 ? argv[1] : NULL;
  pattern = malloc(PATTERN_LEN);
  for (size_t i = 0; i < PATTERN_LEN; i++) pattern[i] = (char)pattern_at(i);
  RUNF(test_echo_keepalive, "echo, Content-Length, paused until written: every byte, 4 requests");
  RUNF(test_echo_chunked, "echo, chunked request bodies: every byte");
  RUNF(test_echo_pipelined, "echo, three requests in one send: every byte, in order");
  RUNF(test_stream_chunked, "stream, chunked, pieces around 4 KiB: every byte");
  RUNF(test_stream_length, "stream, Content-Length, pieces around 4 KiB: every byte");
  RUNF(test_stream_chunked_stalled, "stream, chunked, client not reading at first: every byte");
  RUNF(test_stream_length_stalled, "stream, Content-Length, client not reading at first: every byte");
  RUNF(test_stream_thread, "stream written from another thread: every byte");
  free(pattern);
  return tc_summary();
}
