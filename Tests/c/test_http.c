/*
 * test_http.c - the HTTP side seen from a client on loopback: keep-alive,
 * pipelining (answered in order, also from worker threads), request bodies
 * streamed back (chunked, Content-Length, 100-continue, large with
 * backpressure), bad input (400/431/505 + Connection: close, never reaching
 * the handler), unread bodies, HTTP/1.0, HEAD, the head accessors, and a
 * server with two loops.
 */
#include <vigil.h>

#include "tc.h"

#include <sys/wait.h>

#define MAXREC 1024

typedef struct {
  int kind;                 /* route */
  atomic_int done_calls;
  atomic_int done_reason;
  atomic_int body_calls_after_end;
  atomic_int ended;         /* on_body(end=1) seen */
  atomic_llong body_bytes;
} rec_t;

enum { K_HELLO = 1, K_P, K_ECHO, K_SINK, K_IGNORE, K_NOTHING, K_HEADERS };

static rec_t recs[MAXREC];
static atomic_int next_rec;
static atomic_int handler_calls;

static rec_t *rec_of(const vigil_request_t *req) {
  intptr_t v = (intptr_t)vigil_request_get_data(req);
  return v > 0 ? &recs[v - 1] : NULL;
}

static const vigil_header_t TEXT[] = {{"Content-Type", 12, "text/plain", 10}};

/* ------------------------------------------------------------------ */
/* delayed answers from worker threads */

typedef struct {
  vigil_request_t *req;
  unsigned ms;
  char body[64];
} delayed_t;

static void *delayed_worker(void *arg) {
  delayed_t *d = arg;
  tc_sleep_ms(d->ms);
  vigil_response_send(d->req, 200, TEXT, 1, d->body, strlen(d->body));
  vigil_request_finish(d->req);
  free(d);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* callbacks */

static void on_written(vigil_request_t *req, int status, void *ud) {
  if (status == 0) vigil_request_body_start(req); /* resume */
}

static void on_request(vigil_request_t *req, void *ud) {
  atomic_fetch_add(&handler_calls, 1);
  int id = atomic_fetch_add(&next_rec, 1);
  if (id >= MAXREC) abort();
  rec_t *r = &recs[id];
  vigil_request_set_data(req, (void *)(intptr_t)(id + 1));
  size_t tl, ml;
  const char *t = vigil_request_target(req, &tl);
  const char *m = vigil_request_method(req, &ml);

  if (tc_starts(t, tl, "/p/")) {
    /* "/p/N?d=MS": answered "N" by a worker thread after MS ms */
    r->kind = K_P;
    delayed_t *d = calloc(1, sizeof *d);
    d->req = req;
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%.*s", (int)(tl < 100 ? tl : 100), t);
    char *q = strchr(tmp, '?');
    if (q) {
      *q = '\0';
      if (strncmp(q + 1, "d=", 2) == 0) d->ms = (unsigned)atoi(q + 3);
    }
    snprintf(d->body, sizeof d->body, "%.60s", tmp + 3);
    tc_spawn(delayed_worker, d);
  } else if (tc_starts(t, tl, "/echo")) {
    r->kind = K_ECHO;
    /* body_start before the response starts, so that 100-continue is sent */
    int has_body = vigil_request_has_body(req);
    if (has_body) vigil_request_body_start(req);
    vigil_response_start(req, 200, NULL, 0, vigil_request_content_length(req));
    if (!has_body) {
      vigil_response_end(req);
      vigil_request_finish(req);
    }
  } else if (tc_starts(t, tl, "/sink")) {
    /* read the whole body, then answer with its size */
    r->kind = K_SINK;
    if (!vigil_request_has_body(req)) {
      vigil_response_send(req, 200, TEXT, 1, "0", 1);
      vigil_request_finish(req);
      return;
    }
    vigil_request_body_start(req);
  } else if (tc_starts(t, tl, "/ignore")) {
    r->kind = K_IGNORE;
    vigil_response_send(req, 200, TEXT, 1, "ignored", 7);
    vigil_request_finish(req);
  } else if (tc_starts(t, tl, "/nothing")) {
    r->kind = K_NOTHING;
    vigil_request_finish(req); /* no response: the core answers 500 */
  } else if (tc_starts(t, tl, "/headers")) {
    r->kind = K_HEADERS;
    size_t hl = 0, n = vigil_request_header_count(req);
    const char *two = vigil_request_header(req, "X-TWO", &hl);
    const char *name, *value;
    size_t nl, vl;
    int at_ok = vigil_request_header_at(req, n - 1, &name, &nl, &value, &vl) == 0 &&
                vigil_request_header_at(req, n, &name, &nl, &value, &vl) == VIGIL_EINVAL;
    vigil_request_header_at(req, n - 1, &name, &nl, &value, &vl);
    struct sockaddr_storage ss;
    int addr_ok = vigil_request_remote_addr(req, &ss) == 0 && ss.ss_family == AF_INET &&
                  ((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    char body[512];
    int len = snprintf(body, sizeof body, "%.*s %.*s %d %zu %.*s %.*s=%.*s %d %d %lld %d", (int)ml,
                       m, (int)tl, t, vigil_request_version(req), n, two ? (int)hl : 4,
                       two ? two : "none", (int)nl, name, (int)vl, value, at_ok, addr_ok,
                       (long long)vigil_request_content_length(req), vigil_request_has_body(req));
    vigil_response_send(req, 200, TEXT, 1, body, (size_t)len);
    vigil_request_finish(req);
  } else {
    r->kind = K_HELLO;
    vigil_response_send(req, 200, TEXT, 1, "Hello, World!", 13);
    vigil_request_finish(req);
  }
}

static void on_body(vigil_request_t *req, const char *data, size_t len, int end, void *ud) {
  rec_t *r = rec_of(req);
  if (atomic_load(&r->ended)) atomic_fetch_add(&r->body_calls_after_end, 1);
  atomic_fetch_add(&r->body_bytes, (long long)len);
  if (r->kind == K_ECHO) {
    if (len > 0 && vigil_response_write(req, data, len, on_written, NULL) == 0)
      vigil_request_body_pause(req); /* until the write is taken */
    if (end) {
      atomic_store(&r->ended, 1);
      vigil_response_end(req);
      vigil_request_finish(req);
    }
  } else if (end) {
    atomic_store(&r->ended, 1);
    char body[32];
    int n = snprintf(body, sizeof body, "%lld", (long long)atomic_load(&r->body_bytes));
    vigil_response_send(req, 200, TEXT, 1, body, (size_t)n);
    vigil_request_finish(req);
  }
}

static void on_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  rec_t *r = rec_of(req);
  if (r == NULL) return;
  atomic_store(&r->done_reason, (int)reason);
  atomic_fetch_add(&r->done_calls, 1);
  /* A body route cancelled before it finished: give the reference back. */
  if (reason != VIGIL_REASON_HANDLER_FINISHED && (r->kind == K_ECHO || r->kind == K_SINK))
    vigil_request_finish(req);
}

static vigil_server_t *server;
static int port;

static int start_server(unsigned loops) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.on_body = on_body;
  cfg.on_request_done = on_done;
  cfg.loops = loops;
  port = tc_server_start(&server, &cfg);
  return port;
}

/* ------------------------------------------------------------------ */
/* tests */

static int body_is(const tc_resp_t *r, const char *s) {
  return r->body.len == strlen(s) && memcmp(r->body.p, s, r->body.len) == 0;
}

static void t_keepalive(void) {
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  for (int i = 0; i < 3; i++) {
    tc_resp_t r;
    REQUIRE(tc_send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send %d", i);
    REQUIRE(tc_read_response(&c, &r, 5000) == 0, "response %d", i);
    CHECK(r.status == 200 && body_is(&r, "Hello, World!"), "status %d", r.status);
    CHECK(!tc_resp_header(&r, "Connection", NULL, 0), "Connection header on keep-alive: %s", r.head);
    CHECK(tc_resp_header(&r, "Date", NULL, 0), "no Date");
    tc_resp_free(&r);
  }
  CHECK(tc_still_open(&c, 50), "keep-alive connection closed");
  tc_close(&c);
}

static void t_pipelined_workers(void) {
  /* The first takes longest: answers must still come in request order. */
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  char req[2048] = "";
  for (int i = 1; i <= 6; i++) {
    char one[128];
    snprintf(one, sizeof one, "GET /p/%d?d=%d HTTP/1.1\r\nHost: t\r\n\r\n", i, 70 - 10 * i);
    strcat(req, one);
  }
  REQUIRE(tc_send_str(&c, req) == 0, "send");
  for (int i = 1; i <= 6; i++) {
    tc_resp_t r;
    char want[16];
    snprintf(want, sizeof want, "%d", i);
    REQUIRE(tc_read_response(&c, &r, 5000) == 0, "response %d", i);
    CHECK(r.status == 200 && body_is(&r, want), "response %d: status %d body '%s'", i, r.status,
          r.body.p ? r.body.p : "");
    tc_resp_free(&r);
  }
  tc_close(&c);
}

static void t_pipelined_inline(void) {
  enum { N = 32 };
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  tc_buf_t b = {0};
  for (int i = 0; i < N; i++) {
    char one[128];
    int n = snprintf(one, sizeof one, "GET /headers/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    tc_buf_add(&b, one, (size_t)n);
  }
  REQUIRE(tc_send(&c, b.p, b.len) == 0, "send");
  tc_buf_free(&b);
  for (int i = 0; i < N; i++) {
    tc_resp_t r;
    char want[64];
    snprintf(want, sizeof want, "GET /headers/%d 11", i);
    REQUIRE(tc_read_response(&c, &r, 5000) == 0, "response %d", i);
    CHECK(r.status == 200 && r.body.len > strlen(want) &&
              memcmp(r.body.p, want, strlen(want)) == 0,
          "response %d out of order: '%s'", i, r.body.p ? r.body.p : "");
    tc_resp_free(&r);
  }
  tc_close(&c);
}

static void t_pipelined_mixed(void) {
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  const char *req =
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
      "GET /p/2?d=20 HTTP/1.1\r\nHost: t\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nd\r\n1\r\ne\r\n0\r\n\r\n"
      "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n12345"
      "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
  REQUIRE(tc_send_str(&c, req) == 0, "send");
  const char *want[] = {"abc", "2", "de", "5", "Hello, World!"};
  for (int i = 0; i < 5; i++) {
    tc_resp_t r;
    REQUIRE(tc_read_response(&c, &r, 5000) == 0, "response %d", i);
    CHECK(r.status == 200 && body_is(&r, want[i]), "response %d: status %d body '%s', want '%s'",
          i, r.status, r.body.p ? r.body.p : "", want[i]);
    tc_resp_free(&r);
  }
  CHECK(tc_still_open(&c, 50), "connection closed");
  tc_close(&c);
}

static void t_chunked_echo(void) {
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  const char *parts[] = {
      "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
      "5\r\nhello\r\n",
      "1;ext=1\r\n,\r\n8\r\n wor",      /* a chunk split across writes */
      "ld, \r\n",
      "10\r\nchunked request\n\r\n",
      "0\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    REQUIRE(tc_send_str(&c, parts[i]) == 0, "send part %zu", i);
    tc_sleep_ms(10);
  }
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.chunked, "response not chunked: %s", r.head);
  CHECK(body_is(&r, "hello, world, chunked request\n"), "echoed '%s'", r.body.p ? r.body.p : "");
  tc_resp_free(&r);
  CHECK(tc_still_open(&c, 30), "connection closed after the echo");
  tc_close(&c);
  CHECK(TC_WAIT_UNTIL(atomic_load(&recs[id].done_calls) == 1, 2000), "on_request_done");
  CHECK_EQ_INT(atomic_load(&recs[id].done_reason), VIGIL_REASON_HANDLER_FINISHED);
  CHECK_EQ_INT(atomic_load(&recs[id].body_calls_after_end), 0);
}

static void t_big_chunked_echo(void) {
  /* 1 MiB in chunks of varying size, sent in one go while reading: the echo
   * pauses the body until each write is taken. */
  size_t total = 1 << 20;
  unsigned char *data = malloc(total);
  uint32_t x = 12345;
  for (size_t i = 0; i < total; i++) {
    x = x * 1103515245u + 12345u;
    data[i] = (unsigned char)(x >> 16);
  }
  tc_buf_t b = {0};
  const char *head = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  tc_buf_add(&b, head, strlen(head));
  size_t off = 0, k = 0;
  while (off < total) {
    size_t n = 1 + (k++ * 7919) % 12000;
    if (n > total - off) n = total - off;
    char sz[32];
    int sl = snprintf(sz, sizeof sz, "%zx\r\n", n);
    tc_buf_add(&b, sz, (size_t)sl);
    tc_buf_add(&b, data + off, n);
    tc_buf_add(&b, "\r\n", 2);
    off += n;
  }
  tc_buf_add(&b, "0\r\n\r\n", 5);
  tc_client_t c;
  if (tc_connect(&c, port) != 0) {
    CHECK(0, "connect");
  } else {
    CHECK(tc_send(&c, b.p, b.len) == 0, "send");
    tc_resp_t r;
    CHECK(tc_read_response(&c, &r, 10000) == 0, "no response");
    CHECK(r.body.len == total && memcmp(r.body.p, data, total) == 0,
          "echo differs (%zu bytes back of %zu)", r.body.len, total);
    tc_resp_free(&r);
    tc_close(&c);
  }
  tc_buf_free(&b);
  free(data);
}

static void t_length_echo(void) {
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello") == 0,
          "send");
  tc_sleep_ms(20);
  REQUIRE(tc_send_str(&c, " world") == 0, "send 2");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK(r.status == 200 && r.content_length == 11 && !r.chunked, "head: %s", r.head);
  CHECK(body_is(&r, "hello world"), "echoed '%s'", r.body.p ? r.body.p : "");
  tc_resp_free(&r);
  tc_close(&c);
}

static void t_expect_continue(void) {
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                          "Expect: 100-continue\r\n\r\n") == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response_ex(&c, &r, 3000, 0, 1) == 0, "no 100 Continue");
  CHECK_EQ_INT(r.status, 100);
  tc_resp_free(&r);
  REQUIRE(tc_send_str(&c, "ping") == 0, "send body");
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK(r.status == 200 && body_is(&r, "ping"), "status %d body '%s'", r.status,
        r.body.p ? r.body.p : "");
  tc_resp_free(&r);
  tc_close(&c);
}

/* --- bad input ---------------------------------------------------------- */

typedef struct {
  const char *name;
  const char *raw;
  size_t len;      /* 0: strlen(raw) */
  int status;
  int alt_status;  /* also acceptable (0: none) */
} bad_t;

static char big_head[20000];

static const bad_t bad_cases[] = {
    {"garbage request line", "FOO\r\n\r\n", 0, 400, 0},
    {"obs-fold (line starting with SP)", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 0, 400, 0},
    {"obs-fold (line starting with HTAB)", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 0, 400, 0},
    {"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 0, 400, 0},
    {"space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, 400, 0},
    {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 0, 400, 0},
    {"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 400, 0},
    {"invalid Host value", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0, 400, 0},
    {"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", 0, 400, 0},
    {"CRLF LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 0, 400, 0},
    {"bare CR in the head", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 0, 400, 0},
    {"NUL in a header value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
     sizeof "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n" - 1, 400, 0},
    {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0, 400, 0},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, 505, 0},
    {"Content-Length with chunked",
     "POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     0, 400, 0},
    {"invalid Content-Length", "POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 0, 400, 0},
    {"two different Content-Lengths",
     "POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 0, 400, 0},
    {"header block over 16 KiB", big_head, 0, 431, 0},
    /* A Content-Length over max_body_bytes is the handler's (it may raise
     * its limit): test_contracts.c. */
};
static int bad_i;
static char bad_name[256];

static void t_bad_one(void) {
  const bad_t *b = &bad_cases[bad_i];
  vigil_stats_t st0, st1;
  vigil_server_stats(server, &st0);
  int calls = atomic_load(&handler_calls);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send(&c, b->raw, b->len ? b->len : strlen(b->raw)) == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK(r.status == b->status || (b->alt_status && r.status == b->alt_status),
        "status %d, expected %d", r.status, b->status);
  CHECK(tc_resp_has(&r, "Connection", "close"), "no Connection: close: %s", r.head);
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 3000), "connection left open");
  tc_close(&c);
  CHECK_EQ_INT(atomic_load(&handler_calls), calls);
  vigil_server_stats(server, &st1);
  CHECK(st1.bad_requests == st0.bad_requests + 1, "bad_requests %llu -> %llu",
        (unsigned long long)st0.bad_requests, (unsigned long long)st1.bad_requests);
}

static void t_bad_after_good(void) {
  /* A good request pipelined before a bad one is answered, then 400. */
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n") == 0,
          "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no first response");
  CHECK(r.status == 200 && body_is(&r, "Hello, World!"), "first: %d", r.status);
  tc_resp_free(&r);
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no second response");
  CHECK_EQ_INT(r.status, 400);
  CHECK(tc_resp_has(&r, "Connection", "close"), "no Connection: close");
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 3000), "connection left open");
  tc_close(&c);
}

static void t_bad_chunk(void) {
  /* A malformed chunked body, read by a handler that has not answered yet:
   * the core answers 400 + close, the request ends with BAD_REQUEST. */
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\nzz\r\n") == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK_EQ_INT(r.status, 400);
  CHECK(tc_resp_has(&r, "Connection", "close"), "no Connection: close: %s", r.head);
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 3000), "connection left open");
  tc_close(&c);
  CHECK(TC_WAIT_UNTIL(atomic_load(&recs[id].done_calls) == 1, 2000), "on_request_done");
  CHECK_EQ_INT(atomic_load(&recs[id].done_reason), VIGIL_REASON_BAD_REQUEST);
}

static void t_bad_chunk_ext(void) {
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  char req[4096];
  int n = snprintf(req, sizeof req, "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;x=");
  memset(req + n, 'a', 2000);
  strcpy(req + n + 2000, "\r\nabc\r\n0\r\n\r\n");
  REQUIRE(tc_send_str(&c, req) == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK_EQ_INT(r.status, 400);
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 3000), "connection left open");
  tc_close(&c);
  CHECK(TC_WAIT_UNTIL(atomic_load(&recs[id].done_calls) == 1, 2000), "on_request_done");
  CHECK_EQ_INT(atomic_load(&recs[id].done_reason), VIGIL_REASON_BAD_REQUEST);
}

static void t_bad_chunk_mid_response(void) {
  /* The echo already started its (chunked) answer: the connection is cut,
   * without the terminating chunk, so the truncation is visible. */
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\n") == 0, "send");
  tc_sleep_ms(30);
  REQUIRE(tc_send_str(&c, "zz\r\n") == 0, "send");
  CHECK(tc_wait_closed(&c, 3000), "connection left open");
  CHECK(tc_find(&c.in, 0, "\r\n0\r\n\r\n") < 0, "a truncated echo looked complete: %s", c.in.p);
  tc_close(&c);
  CHECK(TC_WAIT_UNTIL(atomic_load(&recs[id].done_calls) == 1, 2000), "on_request_done");
  CHECK_EQ_INT(atomic_load(&recs[id].done_reason), VIGIL_REASON_BAD_REQUEST);
}

/* Chunked bodies with trailer fields, in a child process with its own
 * server: a crash there is reported as a failure instead of ending the
 * whole program. Run first, before this process has threads. */
static int trailer_child(void) {
  if (start_server(1) <= 0) return 2;
  int bad = 0;
  const char *cases[][2] = {
      /* a body the handler reads (echo) */
      {"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
       "3\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n", "abc"},
      /* a body nobody reads (drained) */
      {"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
       "3\r\nabc\r\n0\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n", "Hello, World!"},
  };
  for (int i = 0; i < 2; i++) {
    tc_client_t c;
    tc_resp_t r;
    if (tc_connect(&c, port) != 0) return 3;
    if (tc_send_str(&c, cases[i][0]) != 0) {
      tc_note("trailers case %d: send failed", i);
      bad++;
    } else if (tc_read_response(&c, &r, 3000) != 0 || r.status != 200 ||
               !body_is(&r, cases[i][1])) {
      tc_note("trailers case %d: no or wrong response (status %d)", i, r.status);
      bad++;
    } else if (tc_resp_has(&r, "Connection", "close")) {
      /* (an unread chunked body past drain_limit closes) */
      if (!tc_wait_closed(&c, 3000)) {
        tc_note("trailers case %d: Connection: close, but left open", i);
        bad++;
      }
    } else {
      /* the connection goes on: the next request is parsed right */
      tc_resp_free(&r);
      if (tc_send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") != 0 ||
          tc_read_response(&c, &r, 3000) != 0 || r.status != 200) {
        tc_note("trailers case %d: no response to the request after it", i);
        bad++;
      }
    }
    tc_resp_free(&r);
    tc_close(&c);
  }
  tc_join_workers();
  vigil_server_free(server);
  return bad ? 1 : 0;
}

static void t_trailers(void) {
  fflush(stdout);
  pid_t pid = fork();
  REQUIRE(pid >= 0, "fork");
  if (pid == 0) _exit(trailer_child());
  tc_child_pid = pid;
  int st = 0;
  uint64_t end = tc_now_ms() + 15000;
  pid_t w;
  while ((w = waitpid(pid, &st, WNOHANG)) == 0 && tc_now_ms() < end) tc_sleep_ms(5);
  tc_child_pid = 0;
  if (w == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    CHECK(0, "the server hung on a chunked body with trailers");
    return;
  }
  CHECK(!WIFSIGNALED(st), "the server process died of signal %d on a chunked body with "
                          "trailer fields (parse.c: header callbacks run with c->parsing == NULL)",
        WTERMSIG(st));
  CHECK(WIFSIGNALED(st) || WEXITSTATUS(st) == 0,
        "child exit status %d (1: wrong answers or a sanitizer report above)", WEXITSTATUS(st));
}

static void t_still_serving(void) {
  tc_resp_t r;
  REQUIRE(tc_roundtrip(port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0, "no response");
  CHECK(r.status == 200 && body_is(&r, "Hello, World!"), "status %d", r.status);
  tc_resp_free(&r);
}

/* --- other shapes -------------------------------------------------------- */

static void t_http10(void) {
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET / HTTP/1.0\r\n\r\n") == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK(r.status == 200 && body_is(&r, "Hello, World!"), "status %d", r.status);
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 3000), "HTTP/1.0 connection left open");
  tc_close(&c);

  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") == 0, "send");
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK(tc_resp_has(&r, "Connection", "keep-alive"), "no Connection: keep-alive: %s", r.head);
  tc_resp_free(&r);
  CHECK(tc_still_open(&c, 50), "HTTP/1.0 keep-alive connection closed");
  tc_close(&c);
}

static void t_head(void) {
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n") == 0,
          "send");
  tc_resp_t r;
  REQUIRE(tc_read_response_ex(&c, &r, 5000, 1, 0) == 0, "no HEAD response");
  CHECK(r.status == 200 && r.content_length == 13, "HEAD: %s", r.head);
  tc_resp_free(&r);
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no GET response");
  CHECK(r.status == 200 && body_is(&r, "Hello, World!"), "GET after HEAD: '%s'",
        r.body.p ? r.body.p : "");
  tc_resp_free(&r);
  tc_close(&c);
}

static void t_unread_small_body(void) {
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  char req[4096];
  int n = snprintf(req, sizeof req, "POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
  memset(req + n, 'x', 1000);
  strcpy(req + n + 1000, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  REQUIRE(tc_send_str(&c, req) == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no first response");
  CHECK(r.status == 200 && body_is(&r, "ignored"), "first: %d", r.status);
  CHECK(!tc_resp_has(&r, "Connection", "close"), "closing for a small unread body");
  tc_resp_free(&r);
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no second response (body not drained?)");
  CHECK(r.status == 200 && body_is(&r, "Hello, World!"), "second: %d", r.status);
  tc_resp_free(&r);
  tc_close(&c);
}

static void t_unread_big_body(void) {
  /* Go's TestHandlerFinishSkipBigContentLengthRead: a 4 MB body nobody
   * reads (over drain_limit, under max_body_bytes) is not read; the answer
   * says Connection: close. */
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 4000000\r\n\r\n") == 0,
          "send");
  char chunk[16384];
  memset(chunk, 'y', sizeof chunk);
  REQUIRE(tc_send(&c, chunk, sizeof chunk) == 0, "send body");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK(r.status == 200 && tc_resp_has(&r, "Connection", "close"), "head: %s", r.head);
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 3000), "connection left open");
  tc_close(&c);
}

static void t_no_response(void) {
  tc_resp_t r;
  REQUIRE(tc_roundtrip(port, "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0, "no response");
  CHECK_EQ_INT(r.status, 500);
  tc_resp_free(&r);
}

static void t_accessors(void) {
  tc_resp_t r;
  REQUIRE(tc_roundtrip(port, "PUT /headers?x=1 HTTP/1.1\r\nHost: t\r\nX-One: 1\r\nx-two: two\r\n"
                             "Content-Length: 0\r\nLast: v\r\n\r\n", &r) == 0, "no response");
  CHECK(body_is(&r, "PUT /headers?x=1 11 5 two Last=v 1 1 0 0"), "accessors: '%s'",
        r.body.p ? r.body.p : "");
  tc_resp_free(&r);
}

static void t_two_loops(void) {
  tc_join_workers();
  vigil_server_free(server);
  REQUIRE(start_server(2) > 0, "server with 2 loops");
  enum { N = 12 };
  tc_client_t c[N];
  int good = 0;
  for (int i = 0; i < N; i++) REQUIRE(tc_connect(&c[i], port) == 0, "connect %d", i);
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < N; i++) {
      tc_resp_t r;
      if (tc_send_str(&c[i], "GET /p/7?d=1 HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
          tc_read_response(&c[i], &r, 5000) == 0 && r.status == 200 && body_is(&r, "7"))
        good++;
      tc_resp_free(&r);
    }
  for (int i = 0; i < N; i++) tc_close(&c[i]);
  CHECK_EQ_INT(good, 3 * N);
  vigil_stats_t st;
  vigil_server_stats(server, &st);
  CHECK_EQ_INT(st.connections_accepted, N);
  CHECK_EQ_INT(st.requests_total, 3 * N);
}

static void t_stats(void) {
  tc_join_workers();
  CHECK(tc_stats_settled(server, 3000), "stats did not settle");
}

int main(void) {
  tc_init();
  /* a header block of ~20 KB */
  strcpy(big_head, "GET / HTTP/1.1\r\nHost: a\r\n");
  for (int i = 0; i < 200; i++) strcat(big_head, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
  strcat(big_head, "\r\n");
  RUN(t_trailers, "chunked request bodies with trailer fields (read and drained)");
  if (start_server(1) <= 0) {
    printf("not ok 1 - server start\n0 passed, 1 failed\n");
    return 1;
  }
  RUN(t_keepalive, "keep-alive: three requests on one connection");
  RUN(t_pipelined_workers, "pipelined requests answered in order (slow first, worker threads)");
  RUN(t_pipelined_inline, "32 pipelined requests in one write answered in order");
  RUN(t_pipelined_mixed, "pipelined bodies (length, chunked) and GETs answered in order");
  RUN(t_chunked_echo, "chunked request body (split chunks, extension) echoed");
  RUN(t_big_chunked_echo, "1 MiB chunked body echoed with backpressure (pause/resume)");
  RUN(t_length_echo, "Content-Length body echoed with a fixed-length response");
  RUN(t_expect_continue, "Expect: 100-continue answered by vigil_request_body_start");
  for (bad_i = 0; bad_i < (int)(sizeof bad_cases / sizeof bad_cases[0]); bad_i++) {
    snprintf(bad_name, sizeof bad_name, "bad request (%s) -> %d + Connection: close, handler not called",
             bad_cases[bad_i].name, bad_cases[bad_i].status);
    RUN(t_bad_one, bad_name);
  }
  RUN(t_bad_after_good, "a good request pipelined before a bad one is answered first");
  RUN(t_bad_chunk, "malformed chunk size -> 400 + close, reason VIGIL_REASON_BAD_REQUEST");
  RUN(t_bad_chunk_ext, "chunk extension over the limit -> 400 + close");
  RUN(t_bad_chunk_mid_response, "malformed chunk after the response started: cut, not completed");
  RUN(t_still_serving, "the server still serves after bad input");
  RUN(t_http10, "HTTP/1.0: closes by default, keeps alive when asked");
  RUN(t_head, "HEAD: Content-Length without a body, next request parsed right");
  RUN(t_unread_small_body, "a small unread body is drained and the connection kept");
  RUN(t_unread_big_body, "a huge unread body is not read: Connection: close");
  RUN(t_no_response, "finish without a response -> 500");
  RUN(t_accessors, "head accessors: method, target, version, headers, peer, length");
  RUN(t_stats, "stats: requests_live and connections_open back to 0");
  RUN(t_two_loops, "two loops: 12 connections x 3 requests");
  RUN(t_stats, "stats back to 0 (two loops)");
  tc_join_workers();
  vigil_server_free(server);
  return tc_summary();
}
