/*
 * test_unit_parse.c - parse.c on its own: the parser entry points
 * (vigil__parser_init, vigil__head_reset, vigil__parse,
 * vigil__parse_error_status, vigil__head_error_is_head) driven on a
 * connection this test sets up, with no socket and no loop thread, as
 * libuv's test/ and h2o's t/00unit test their parts. Linked against the
 * core's objects (mk/c.mk), not the installed library.
 *
 * The contract checked is the one conn.c relies on: what a head records
 * (method, target, version, headers, framing), the status of a refused
 * head and whether it answers a HEAD, how many bytes each call consumes
 * (a pipelined request's bytes are left alone), where the parser pauses
 * (head complete, each body span, message complete), and that the answer
 * is the same however the bytes are split across calls.
 */
#include "vigil_internal.h"

#include "tc.h"

/* ------------------------------------------------------------------ */
/* the fixture: a server config, a loop and a connection as conn.c makes
 * them (conn_start, next_request), minus the socket */

typedef struct {
  vigil_server_t server;
  vigil_loop_t *loop;
  vigil_conn_t *c;
  char in[16384];            /* input; vigil__parse may rewrite head OWS */
  size_t len, off;           /* bytes in `in`; consumed */
  vigil_request_t *req;      /* the head dispatched */
  int heads;                 /* heads dispatched */
  tc_buf_t body;             /* body spans, concatenated */
  int spans;                 /* body spans seen */
  int complete;              /* messages completed */
  int status;                /* vigil__parse_error_status of a refused head */
  int is_head;               /* vigil__head_error_is_head then */
  int body_error;            /* a body refused (the error, not HPE_OK/PAUSED) */
} px_t;

static void px_init(px_t *x, const vigil_config_t *cfg) {
  memset(x, 0, sizeof *x);
  if (cfg) x->server.config = *cfg;
  else vigil_config_init(&x->server.config);
  x->loop = calloc(1, sizeof *x->loop);
  if (x->loop == NULL) abort();
  atomic_init(&x->loop->refs, 1);
  x->loop->server = &x->server;
  pthread_mutex_init(&x->loop->qlock, NULL);
  vigil__loop_set_current(x->loop); /* this thread runs the loop's parts */
  x->c = calloc(1, sizeof *x->c);
  if (x->c == NULL) abort();
  x->c->loop = x->loop;
  x->c->id = 7;
  vigil__parser_init(x->c);
  vigil__head_reset(x->c);
  x->c->phase = PHASE_HEAD;
}

/* The request in flight is done: next head (conn.c: next_request). */
static void px_next(px_t *x) {
  if (x->req) vigil__request_unref(x->req);
  x->req = NULL;
  tc_buf_free(&x->body);
  x->spans = 0;
  x->complete = 0;
  x->c->phase = PHASE_HEAD;
  vigil__head_reset(x->c);
}

/* Every request the parser made is released again: live back to 0. */
static void px_free(px_t *x) {
  if (x->req) vigil__request_unref(x->req);
  if (x->c->parsing) vigil__request_unref(x->c->parsing);
  CHECK_EQ_INT(atomic_load(&x->loop->live), 0);
  CHECK_EQ_INT(atomic_load(&x->loop->refs), 1);
  tc_buf_free(&x->body);
  free(x->c);
  vigil__loop_unref(x->loop); /* the last reference: frees it */
}

/* Parse what is buffered as conn.c's step does, until more bytes are
 * needed, a head was refused, or the message is complete. The body is
 * read at once (the handler called vigil_request_body_start). */
static void px_pump(px_t *x) {
  vigil_conn_t *c = x->c;
  for (int guard = 0; guard < 100000; guard++) {
    llhttp_errno_t err;
    size_t used;
    if (x->status || x->body_error || c->phase == PHASE_RESPONDING) return;
    if (c->phase == PHASE_HEAD) {
      if (x->off == x->len) return;
      used = vigil__parse(c, x->in + x->off, x->len - x->off, &err);
      CHECK(used <= x->len - x->off, "consumed %zu of %zu", used, x->len - x->off);
      x->off += used;
      if (err == HPE_OK) return;
      if ((err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) && c->head_ready) {
        x->req = c->parsing;
        c->parsing = NULL;
        c->head_ready = false;
        x->heads++;
        bool has_body = x->req->chunked || x->req->content_length > 0;
        c->phase = c->msg_complete || !has_body ? PHASE_RESPONDING : PHASE_BODY;
        if (c->msg_complete) x->complete++;
        c->msg_complete = false;
        continue;
      }
      x->status = vigil__parse_error_status(c);
      x->is_head = vigil__head_error_is_head(c);
      return;
    }
    /* PHASE_BODY. A parser paused after a span may complete the message
     * with no further byte. */
    if (x->off == x->len && llhttp_get_errno(&c->parser) != HPE_PAUSED) return;
    used = vigil__parse(c, x->off < x->len ? x->in + x->off : "", x->len - x->off, &err);
    CHECK(used <= x->len - x->off, "consumed %zu of %zu", used, x->len - x->off);
    x->off += used;
    if (c->body_len) {
      CHECK(c->body_at != NULL, "a body span without its bytes");
      tc_buf_add(&x->body, c->body_at, c->body_len);
      x->spans++;
    }
    if (err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
      x->body_error = err;
      return;
    }
    if (c->msg_complete) {
      c->msg_complete = false;
      x->complete++;
      c->phase = PHASE_RESPONDING;
    }
    if (err == HPE_OK) return;
  }
  CHECK(0, "the parser made no progress");
}

/* Bytes arrive: `step` at a time (0: all at once). */
static void px_feed(px_t *x, const char *s, size_t n, size_t step) {
  if (step == 0) step = n ? n : 1;
  for (size_t i = 0; i < n; i += step) {
    size_t k = n - i < step ? n - i : step;
    if (x->len + k > sizeof x->in) abort();
    memcpy(x->in + x->len, s + i, k);
    x->len += k;
    px_pump(x);
  }
  if (n == 0) px_pump(x);
}

static void px_feed_str(px_t *x, const char *s, size_t step) {
  px_feed(x, s, strlen(s), step);
}

static int span_is(const char *p, size_t n, const char *want) {
  return n == strlen(want) && memcmp(p, want, n) == 0;
}

#define CHECK_SPAN(p, n, want)                                                  \
  do { const char *_p = (p); size_t _n = (n);                                  \
       CHECK(span_is(_p, _n, want), "%s is \"%.*s\", expected \"%s\"", #p,     \
             (int)_n, _p ? _p : "", want); } while (0)

static int has_header(vigil_request_t *r, const char *name, const char *value) {
  size_t vl;
  const char *v = vigil_request_header(r, name, &vl);
  return v != NULL && span_is(v, vl, value);
}

/* ------------------------------------------------------------------ */
/* heads */

static void t_simple_head(void) {
  static const size_t steps[] = {0, 1, 2, 7};
  for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
    px_t x;
    px_init(&x, NULL);
    const char *req = "GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\n"
                      "X-Two: one two\r\nAccept: */*\r\n\r\n";
    px_feed_str(&x, req, steps[s]);
    CHECK_EQ_INT(x.status, 0);
    CHECK_EQ_INT(x.heads, 1);
    CHECK_EQ_INT(x.complete, 1);
    CHECK_EQ_INT(x.off, strlen(req)); /* the whole head consumed */
    if (x.req) {
      size_t n;
      const char *m = vigil_request_method(x.req, &n);
      CHECK_SPAN(m, n, "GET");
      const char *t = vigil_request_target(x.req, &n);
      CHECK_SPAN(t, n, "/a/b?c=d");
      CHECK_EQ_INT(vigil_request_version(x.req), 11);
      CHECK_EQ_INT(vigil_request_header_count(x.req), 3);
      const char *hn, *hv;
      size_t hnl, hvl;
      CHECK_EQ_INT(vigil_request_header_at(x.req, 1, &hn, &hnl, &hv, &hvl), 0);
      CHECK_SPAN(hn, hnl, "X-Two");
      CHECK_SPAN(hv, hvl, "one two");
      CHECK_EQ_INT(vigil_request_header_at(x.req, 3, &hn, &hnl, &hv, &hvl), VIGIL_EINVAL);
      CHECK(has_header(x.req, "host", "example.com"), "Host");
      CHECK(has_header(x.req, "ACCEPT", "*/*"), "Accept");
      CHECK_EQ_INT(vigil_request_content_length(x.req), 0);
      CHECK_EQ_INT(vigil_request_has_body(x.req), 0);
      CHECK_EQ_INT(vigil_request_connection_id(x.req), 7);
      CHECK(x.req->keep_alive, "HTTP/1.1 persists by default");
      CHECK(!x.req->is_head, "GET is not HEAD");
    }
    if (tc_cur_failed) tc_note("split in pieces of %zu bytes (0: whole)", steps[s]);
    px_free(&x);
  }
}

/* OWS around a value is not part of it (RFC 9110 5.5); HTAB inside stays;
 * an HTAB in the OWS ending a line counts as OWS (parse.c: head_ows). */
static void t_ows_trimmed(void) {
  static const size_t steps[] = {0, 1};
  for (size_t s = 0; s < 2; s++) {
    px_t x;
    px_init(&x, NULL);
    px_feed_str(&x, "GET / HTTP/1.1\r\nHost: h\r\nA: \t v\t1 \t\r\nB:\t\r\n"
                    "Connection: close\t\r\n\r\n", steps[s]);
    CHECK_EQ_INT(x.status, 0);
    if (x.req) {
      CHECK(has_header(x.req, "A", "v\t1"), "A trimmed, inner HTAB kept");
      CHECK(has_header(x.req, "B", ""), "B empty");
      CHECK(!x.req->keep_alive, "Connection: close<HTAB> is close");
    }
    px_free(&x);
  }
}

static void t_keep_alive(void) {
  static const struct { const char *req; int version, keep; } cases[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 11, 1},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: x, close\r\n\r\n", 11, 0},
      {"GET / HTTP/1.0\r\n\r\n", 10, 0},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 10, 1},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 10, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    px_t x;
    px_init(&x, NULL);
    px_feed_str(&x, cases[i].req, 0);
    CHECK(x.status == 0 && x.req != NULL, "case %zu refused: %d", i, x.status);
    if (x.req) {
      CHECK(vigil_request_version(x.req) == cases[i].version, "case %zu: version %d", i,
            vigil_request_version(x.req));
      CHECK(x.req->keep_alive == cases[i].keep, "case %zu: keep_alive %d", i,
            x.req->keep_alive);
    }
    px_free(&x);
  }
}

/* RFC 9110 9.1: any token is a method; one llhttp 8.1 does not know is
 * recorded as sent, and is never HEAD or CONNECT. */
static void t_unknown_method(void) {
  static const char *methods[] = {"QUERY", "get", "MKCOLA", "DESCRIBE"};
  static const size_t steps[] = {0, 1, 3};
  for (size_t i = 0; i < 4; i++)
    for (size_t s = 0; s < 3; s++) {
      char req[128];
      snprintf(req, sizeof req, "%s /x HTTP/1.1\r\nHost: h\r\n\r\n", methods[i]);
      px_t x;
      px_init(&x, NULL);
      px_feed_str(&x, req, steps[s]);
      CHECK(x.status == 0 && x.req, "%s (step %zu) refused: %d", methods[i], steps[s],
            x.status);
      if (x.req) {
        size_t n;
        const char *m = vigil_request_method(x.req, &n);
        CHECK(span_is(m, n, methods[i]), "method \"%.*s\", sent %s", (int)n, m, methods[i]);
        CHECK(!x.req->is_head && !x.req->is_connect, "%s", methods[i]);
        const char *t = vigil_request_target(x.req, &n);
        CHECK_SPAN(t, n, "/x");
      }
      px_free(&x);
    }
}

/* Two requests in one read: the first call consumes the first request
 * only; the second is parsed after the first is done. */
static void t_pipelined(void) {
  const char *a = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n";
  const char *b = "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  const char *c = "HEAD /3 HTTP/1.1\r\nHost: h\r\n\r\n";
  char all[512];
  snprintf(all, sizeof all, "%s%s%s", a, b, c);
  px_t x;
  px_init(&x, NULL);
  px_feed_str(&x, all, 0);
  CHECK_EQ_INT(x.heads, 1);
  CHECK_EQ_INT(x.off, strlen(a));
  size_t n;
  if (x.req) CHECK_SPAN(vigil_request_target(x.req, &n), n, "/1");
  px_next(&x);
  px_pump(&x);
  CHECK_EQ_INT(x.heads, 2);
  CHECK_EQ_INT(x.complete, 1);
  CHECK_EQ_INT(x.off, strlen(a) + strlen(b));
  if (x.req) {
    CHECK_SPAN(vigil_request_method(x.req, &n), n, "POST");
    CHECK_EQ_INT(vigil_request_content_length(x.req), 3);
  }
  CHECK_SPAN(x.body.p, x.body.len, "abc");
  px_next(&x);
  px_pump(&x);
  CHECK_EQ_INT(x.heads, 3);
  CHECK_EQ_INT(x.off, strlen(all));
  if (x.req) CHECK(x.req->is_head, "HEAD recorded");
  px_free(&x);
}

/* ------------------------------------------------------------------ */
/* refused heads: the status, the same however the bytes are split */

typedef struct {
  const char *name;
  const char *req;
  int status;
  int is_head;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", 400, 0},
    {"two Host lines", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 0},
    {"two Host lines to HEAD", "HEAD / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 1},
    {"invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, 0},
    {"bare LF", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400, 0},
    {"bare LF in a header", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400, 0},
    {"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400, 0},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", 400, 0},
    {"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: y\r\n\r\n", 400, 0},
    {"control byte", "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", 400, 0},
    {"two SP in the request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
    {"HTTP/0.9 line", "GET /\r\nHost: a\r\n\r\n", 400, 0},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, 0},
    {"HTTP/0.9 versioned", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, 0},
    {"HEAD HTTP/2.0", "HEAD / HTTP/2.0\r\nHost: a\r\n\r\n", 505, 1},
    {"unknown coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     501, 0},
    {"TE not ending in chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n",
     400, 0},
    {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, 0},
    {"Expect other", "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417, 0},
    {"Content-Length over int64",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", 413, 0},
    {"'*' for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
    {"CONNECT to a path", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400, 0},
    {"absolute-form with userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, 0},
    {"method token too long",
     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA / HTTP/1.1\r\n"
     "Host: a\r\n\r\n", 501, 0},
};

static void t_refused_heads(void) {
  static const size_t steps[] = {0, 1, 2, 5};
  for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++)
    for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
      const bad_case_t *b = &bad_cases[i];
      px_t x;
      px_init(&x, NULL);
      px_feed_str(&x, b->req, steps[s]);
      CHECK(x.heads == 0, "%s (step %zu): head dispatched", b->name, steps[s]);
      CHECK(x.status == b->status, "%s (step %zu): status %d, expected %d", b->name,
            steps[s], x.status, b->status);
      CHECK(x.is_head == b->is_head, "%s (step %zu): is_head %d", b->name, steps[s],
            x.is_head);
      px_free(&x);
    }
}

/* The limits of the config: 431 (header lines, header bytes), 414
 * (target), each the same however the bytes are split. */
static void t_limits(void) {
  static const size_t steps[] = {0, 1, 3};
  for (size_t s = 0; s < 3; s++) {
    vigil_config_t cfg;
    vigil_config_init(&cfg);
    cfg.max_headers = 3;
    cfg.max_target_bytes = 16;
    cfg.max_header_bytes = 256;
    px_t x;
    /* three lines: fine; four: 431 */
    px_init(&x, &cfg);
    px_feed_str(&x, "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n", steps[s]);
    CHECK(x.status == 0 && x.heads == 1, "3 headers (step %zu): %d", steps[s], x.status);
    px_free(&x);
    px_init(&x, &cfg);
    px_feed_str(&x, "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n", steps[s]);
    CHECK(x.status == 431, "4 headers (step %zu): %d", steps[s], x.status);
    px_free(&x);
    /* a 16-byte target: fine; 17: 414 */
    px_init(&x, &cfg);
    px_feed_str(&x, "GET /234567890123456 HTTP/1.1\r\nHost: a\r\n\r\n", steps[s]);
    CHECK(x.status == 0 && x.heads == 1, "16-byte target (step %zu): %d", steps[s], x.status);
    px_free(&x);
    px_init(&x, &cfg);
    px_feed_str(&x, "GET /2345678901234567 HTTP/1.1\r\nHost: a\r\n\r\n", steps[s]);
    CHECK(x.status == 414, "17-byte target (step %zu): %d", steps[s], x.status);
    px_free(&x);
    /* the header block past 256 bytes: 431 */
    char big[400];
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\nX: %0260d\r\n\r\n", 0);
    px_init(&x, &cfg);
    px_feed_str(&x, big, steps[s]);
    CHECK(x.status == 431, "a 300-byte head (step %zu): %d", steps[s], x.status);
    px_free(&x);
  }
}

/* vigil__head_reset makes the next head independent of the last: an
 * error noted for one is not carried to the next. */
static void t_head_reset(void) {
  px_t x;
  px_init(&x, NULL);
  px_feed_str(&x, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0);
  CHECK_EQ_INT(x.heads, 1);
  if (x.req) CHECK(x.req->is_head, "first is HEAD");
  px_next(&x);
  px_pump(&x);
  CHECK_EQ_INT(x.status, 400); /* no Host */
  CHECK_EQ_INT(x.is_head, 0);  /* the GET's answer carries a body */
  px_free(&x);
}

/* ------------------------------------------------------------------ */
/* bodies: where the parser pauses */

static void t_body_content_length(void) {
  const char *head = "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n";
  px_t x;
  px_init(&x, NULL);
  char in[256];
  snprintf(in, sizeof in, "%s0123456789GET", head);
  memcpy(x.in, in, strlen(in));
  x.len = strlen(in);
  /* The head alone: paused at head complete, the body left unconsumed. */
  llhttp_errno_t err;
  size_t used = vigil__parse(x.c, x.in, x.len, &err);
  CHECK_EQ_INT(used, strlen(head));
  CHECK_EQ_INT(err, HPE_PAUSED);
  CHECK(x.c->head_ready && !x.c->msg_complete, "head ready, message not complete");
  x.req = x.c->parsing;
  x.c->parsing = NULL;
  x.c->head_ready = false;
  x.off = used;
  if (x.req) CHECK_EQ_INT(vigil_request_content_length(x.req), 10);
  /* The body: one span, paused after it; the pipelined bytes stay. */
  x.c->phase = PHASE_BODY;
  used = vigil__parse(x.c, x.in + x.off, x.len - x.off, &err);
  CHECK_EQ_INT(used, 10);
  CHECK_EQ_INT(err, HPE_PAUSED);
  CHECK_SPAN(x.c->body_at, x.c->body_len, "0123456789");
  CHECK(!x.c->msg_complete, "complete only on the next call");
  x.off += used;
  /* The message completes without another byte. */
  used = vigil__parse(x.c, x.in + x.off, 0, &err);
  CHECK_EQ_INT(used, 0);
  CHECK_EQ_INT(err, HPE_PAUSED);
  CHECK_EQ_INT(x.c->body_len, 0);
  CHECK(x.c->msg_complete, "message complete");
  x.c->msg_complete = false;
  px_free(&x);
}

static void t_body_chunked(void) {
  static const size_t steps[] = {0, 1, 4};
  for (size_t s = 0; s < 3; s++) {
    px_t x;
    px_init(&x, NULL);
    px_feed_str(&x, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "2\r\nab\r\n3;a=b;c=\"d\\\"e\"\r\ncde\r\n0\r\nT: x\r\n\r\n", steps[s]);
    CHECK(x.status == 0 && x.body_error == 0, "step %zu: status %d, body error %d", steps[s],
          x.status, x.body_error);
    if (x.req) CHECK_EQ_INT(vigil_request_content_length(x.req), -1);
    CHECK_SPAN(x.body.p, x.body.len, "abcde");
    CHECK(x.spans >= 2, "one span per chunk at least: %d", x.spans);
    if (steps[s] == 0) CHECK_EQ_INT(x.spans, 2); /* one span per call */
    CHECK_EQ_INT(x.complete, 1);
    CHECK_EQ_INT(x.off, x.len);
    /* Trailers are dropped: the head the handler saw is unchanged. */
    if (x.req) CHECK(vigil_request_header(x.req, "T", NULL) == NULL, "trailer added");
    px_free(&x);
  }
}

/* Framing llhttp 8.1 lets through and the core refuses. */
static void t_body_refused(void) {
  static const char *bodies[] = {
      "0\r\n\n",             /* bare LF ends the trailers: smuggling */
      "2\r\nab\r\n0\r\nT: x\r\n y\r\n\r\n", /* obs-fold in a trailer */
      "2;=x\r\nab\r\n0\r\n\r\n", /* an extension without a name */
      "2;a=\r\nab\r\n0\r\n\r\n", /* an extension without a value */
  };
  static const size_t steps[] = {0, 1};
  for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++)
    for (size_t s = 0; s < 2; s++) {
      px_t x;
      px_init(&x, NULL);
      px_feed_str(&x, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
                  steps[s]);
      px_feed_str(&x, bodies[i], steps[s]);
      CHECK(x.heads == 1 && x.body_error != 0 && x.complete == 0,
            "body %zu (step %zu): heads %d, body error %d, complete %d", i, steps[s], x.heads,
            x.body_error, x.complete);
      px_free(&x);
    }
}

/* A chunk extension list past max_chunk_ext_bytes is refused. */
static void t_chunk_ext_limit(void) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.max_chunk_ext_bytes = 8;
  const char *head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  px_t x;
  px_init(&x, &cfg);
  px_feed_str(&x, head, 0);
  px_feed_str(&x, "1;abcdefg\r\nx\r\n0\r\n\r\n", 0); /* 8 bytes from the ';' */
  CHECK(x.body_error == 0 && x.complete == 1, "8 bytes: error %d", x.body_error);
  px_free(&x);
  px_init(&x, &cfg);
  px_feed_str(&x, head, 0);
  px_feed_str(&x, "1;abcdefgh\r\nx\r\n0\r\n\r\n", 0);
  CHECK(x.body_error != 0 && x.complete == 0, "9 bytes taken");
  px_free(&x);
}

int main(void) {
  tc_init();
  RUN(t_simple_head, "unit parse: a head records method, target, version, headers (any split)");
  RUN(t_ows_trimmed, "unit parse: OWS around values trimmed, HTAB at a line end is OWS");
  RUN(t_keep_alive, "unit parse: keep-alive from version and Connection");
  RUN(t_unknown_method, "unit parse: an unknown method token recorded as sent (any split)");
  RUN(t_pipelined, "unit parse: pipelined requests consumed one at a time");
  RUN(t_refused_heads, "unit parse: refused heads get their status, HEAD noted (any split)");
  RUN(t_limits, "unit parse: header count, target and head size limits (any split)");
  RUN(t_head_reset, "unit parse: vigil__head_reset starts the next head afresh");
  RUN(t_body_content_length, "unit parse: pauses at head complete, after a span, at the end");
  RUN(t_body_chunked, "unit parse: chunked body spans, extensions, trailers dropped");
  RUN(t_body_refused, "unit parse: chunked framing the core refuses (any split)");
  RUN(t_chunk_ext_limit, "unit parse: max_chunk_ext_bytes");
  return tc_summary();
}
