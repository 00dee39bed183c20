/*
 * test_flow.c - connection flow: output backpressure on pipelined requests,
 * the walk over paused connections, the order of the last callbacks, the
 * write timeout as "no progress", half-close delivery of queued output,
 * paused connections' hang-up notification, unread chunked bodies drained.
 * Everything over loopback sockets, as clients do it.
 */
#include <vigil.h>

#include "tc.h"

#include <stdbool.h>
#include <sys/resource.h>

/* Which handler the running test wants. */
enum {
  M_PIPE = 1,    /* 10 KB answer naming the request's index */
  M_PAUSED,      /* keep the request, never read its body */
  M_ORDER,       /* write with a completion, then end and finish (sub-mode) */
  M_BIG,         /* vigil_response_send of big_len bytes (finish: see big_finish) */
  M_CHUNKED      /* answer without reading the body, finish */
};
static int mode;

static atomic_int dispatched;      /* on_request calls */
static atomic_int done_calls;
static atomic_int last_reason;
static atomic_int last_timeout;

/* ------------------------------------------------------------------ */
/* shared callbacks */

#define MAXREQ 8
static vigil_request_t *held[MAXREQ];
static atomic_int held_n;
static atomic_int held_finished[MAXREQ];
static atomic_int body_bytes;

static size_t big_len;
static char *big_body;
static int big_finish;             /* finish inside on_request */

/* M_ORDER */
static int order_path;             /* 0 response, 1 hijack, 2 response over the limit */
static atomic_int seq, cb_at, done_at, cb_status;
typedef struct { int magic; int writes; } order_data_t;

static void order_cb(vigil_request_t *req, int status, void *ud) {
  order_data_t *d = ud;
  d->writes++; /* a use-after-free under ASan if on_request_done freed it */
  atomic_store(&cb_status, status);
  atomic_store(&cb_at, atomic_fetch_add(&seq, 1) + 1);
}

static void on_request(vigil_request_t *req, void *ud) {
  int n = atomic_fetch_add(&dispatched, 1);
  switch (mode) {
    case M_PIPE: {
      static char body[10 * 1024];
      memset(body, 'x', sizeof body);
      int k = snprintf(body, 32, "resp %06d\n", n);
      body[k] = 'x';
      vigil_response_send(req, 200, NULL, 0, body, sizeof body);
      vigil_request_finish(req);
      return;
    }
    case M_PAUSED: {
      int i = atomic_fetch_add(&held_n, 1);
      if (i >= MAXREQ) abort();
      vigil_request_set_data(req, (void *)(intptr_t)(i + 1));
      held[i] = req;
      return;
    }
    case M_ORDER: {
      order_data_t *d = calloc(1, sizeof *d);
      d->magic = 42;
      vigil_request_set_data(req, d);
      if (order_path == 1) {
        vigil_request_hijack(req);
        vigil_hijack_write(req, "raw!", 4, order_cb, d);
        vigil_hijack_close(req);
      } else {
        size_t len = order_path == 2 ? big_len : 3;
        vigil_response_start(req, 200, NULL, 0, (int64_t)len);
        vigil_response_write(req, order_path == 2 ? big_body : "abc", len, order_cb, d);
        vigil_response_end(req);
      }
      vigil_request_finish(req);
      return;
    }
    case M_BIG:
      vigil_response_send(req, 200, NULL, 0, big_body, big_len);
      if (big_finish) {
        vigil_request_finish(req);
      } else {
        held[0] = req;
        atomic_store(&held_n, 1);
      }
      return;
    case M_CHUNKED:
      vigil_response_send(req, 200, NULL, 0, "ok", 2);
      vigil_request_finish(req);
      return;
  }
}

static void on_body(vigil_request_t *req, const char *data, size_t len, int end,
                    void *ud) {
  atomic_fetch_add(&body_bytes, (int)len);
}

/* The request passed to body_start from inside another request's
 * on_request_done (the walk test), or NULL. */
static vigil_request_t *start_in_done;

static void on_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  atomic_store(&last_timeout, (int)vigil_request_timeout(req));
  if (mode == M_ORDER) {
    atomic_store(&done_at, atomic_fetch_add(&seq, 1) + 1);
    order_data_t *d = vigil_request_get_data(req);
    free(d);
  }
  if (mode == M_PAUSED) {
    intptr_t i = (intptr_t)vigil_request_get_data(req) - 1;
    if (reason != VIGIL_REASON_HANDLER_FINISHED && i >= 0 &&
        !atomic_exchange(&held_finished[i], 1)) {
      vigil_request_finish(req);
      /* The handler of a paused connection reacting to another one's
       * end: it starts reading the other's body, inline. */
      vigil_request_t *other = start_in_done;
      start_in_done = NULL;
      if (other) vigil_request_body_start(other);
    }
  }
  if (mode == M_BIG && !big_finish && reason != VIGIL_REASON_HANDLER_FINISHED &&
      held[0] == req) {
    held[0] = NULL;
    vigil_request_finish(req);
  }
  atomic_store(&last_reason, (int)reason);
  atomic_fetch_add(&done_calls, 1);
}

static void reset(int m) {
  mode = m;
  atomic_store(&dispatched, 0);
  atomic_store(&done_calls, 0);
  atomic_store(&last_reason, 0);
  atomic_store(&last_timeout, 0);
  atomic_store(&held_n, 0);
  atomic_store(&body_bytes, 0);
  for (int i = 0; i < MAXREQ; i++) {
    held[i] = NULL;
    atomic_store(&held_finished[i], 0);
  }
  atomic_store(&seq, 0);
  atomic_store(&cb_at, 0);
  atomic_store(&done_at, 0);
  atomic_store(&cb_status, 1);
  start_in_done = NULL;
  big_finish = 1;
}

static void base_config(vigil_config_t *cfg) {
  vigil_config_init(cfg);
  cfg->on_request = on_request;
  cfg->on_body = on_body;
  cfg->on_request_done = on_done;
}

/* A client socket with a small receive buffer (set before connect, so the
 * window is small from the start). */
static int connect_small(tc_client_t *c, int port, int rcvbuf) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return -1;
  setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct timeval tv = {5, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  return 0;
}

/* Send without ever reading, for up to `ms`: returns the bytes sent. */
static size_t send_no_read(tc_client_t *c, const char *p, size_t len, int ms) {
  size_t sent = 0;
  uint64_t end = tc_now_ms() + (uint64_t)ms;
  while (sent < len && tc_now_ms() < end) {
    ssize_t n = send(c->fd, p + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) sent += (size_t)n;
    else if (n < 0 && errno != EAGAIN && errno != EINTR) break;
    else tc_sleep_ms(5);
  }
  return sent;
}

/* Read and count bytes until EOF/reset, `stop_at` bytes (0: no such
 * stop) or `ms`; `pace_bytes` per `pace_ms` (0: as fast as possible). */
static size_t read_all(tc_client_t *c, int ms, size_t pace_bytes, int pace_ms,
                       size_t stop_at) {
  size_t total = 0;
  char buf[65536];
  uint64_t end = tc_now_ms() + (uint64_t)ms;
  while (tc_now_ms() < end && (stop_at == 0 || total < stop_at)) {
    size_t want = pace_bytes && pace_bytes < sizeof buf ? pace_bytes : sizeof buf;
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t n = recv(c->fd, buf, want, 0);
    if (n <= 0) break;
    total += (size_t)n;
    if (pace_ms) tc_sleep_ms((unsigned)pace_ms);
  }
  return total;
}

/* Read at most `max` bytes (whatever is there within `ms`), then stop. */
static size_t read_upto(tc_client_t *c, size_t max, int ms) {
  size_t total = 0;
  char buf[4096];
  uint64_t end = tc_now_ms() + (uint64_t)ms;
  while (total < max && tc_now_ms() < end) {
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    size_t want = max - total < sizeof buf ? max - total : sizeof buf;
    ssize_t n = recv(c->fd, buf, want, 0);
    if (n <= 0) break;
    total += (size_t)n;
  }
  return total;
}

/* ------------------------------------------------------------------ */
/* 1. Pipelined responses are bounded by write_buffer_limit.
 * Fails before the fix: all 8000 requests were dispatched (about 80 MB of
 * responses queued in the server) while the client read nothing. */

#define PIPE_N 8000

static void test_pipeline_backpressure(void) {
  reset(M_PIPE);
  vigil_config_t cfg;
  base_config(&cfg);
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(connect_small(&c, port, 4096) == 0, "connect");
  static const char one[] = "GET /page HTTP/1.1\r\nHost: a\r\n\r\n";
  size_t rl = sizeof one - 1;
  char *all = malloc(rl * PIPE_N);
  for (int i = 0; i < PIPE_N; i++) memcpy(all + rl * (size_t)i, one, rl);
  size_t sent = send_no_read(&c, all, rl * PIPE_N, 1500);
  tc_sleep_ms(300);
  int held_at = atomic_load(&dispatched);
  /* Each response is 10 KB: the output a server holds for this client is
   * at most dispatched x 10 KB minus what the kernel took. The kernel takes
   * at most a few MB (send buffer autotuning up to tcp_wmem's 4 MB) and
   * the core at most write_buffer_limit + one response: 1000 is far above
   * that and far below 8000. */
  tc_note("sent %zu of %zu request bytes; %d requests dispatched while the client read nothing",
          sent, rl * PIPE_N, held_at);
  CHECK(held_at < 1000, "%d requests answered into an unread connection", held_at);
  /* Now read: the rest goes through, everything answered in order. */
  size_t rest = sent;
  if (sent < rl * PIPE_N) {
    /* send the remainder while reading (tc_send reads meanwhile) */
    CHECK(tc_send(&c, all + sent, rl * PIPE_N - sent) == 0, "send the rest");
    rest = rl * PIPE_N;
  }
  int nreq = (int)(rest / rl), got = 0, in_order = 1;
  for (int i = 0; i < nreq; i++) {
    tc_resp_t r;
    if (tc_read_response(&c, &r, 10000) != 0) break;
    char want[32];
    snprintf(want, sizeof want, "resp %06d\n", i);
    if (r.status != 200 || r.body.len != 10240 || memcmp(r.body.p, want, strlen(want)) != 0)
      in_order = 0;
    tc_resp_free(&r);
    got++;
  }
  CHECK(got == nreq, "%d of %d responses read", got, nreq);
  CHECK(in_order, "responses out of order or malformed");
  free(all);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 5000), "server settled");
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* 5. on_request_done is the last callback of a request.
 * Fails before the fix: the write completion ran after on_request_done
 * (cb_at > done_at), touching data on_request_done had freed (an ASan
 * heap-use-after-free in the sanitizer build). */

static void run_order(int path, const char *req_text) {
  reset(M_ORDER);
  order_path = path;
  vigil_config_t cfg;
  base_config(&cfg);
  cfg.write_buffer_limit = 16 * 1024;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, req_text) == 0, "send");
  if (path == 1) {
    CHECK(tc_wait_closed(&c, 5000), "hijacked connection closed");
    CHECK(c.in.len == 4 && memcmp(c.in.p, "raw!", 4) == 0, "raw bytes: %zu", c.in.len);
  } else {
    tc_resp_t r;
    CHECK(tc_read_response(&c, &r, 10000) == 0, "response");
    CHECK(r.status == 200 && r.body.len == (path == 2 ? big_len : 3), "status %d body %zu",
          r.status, r.body.len);
    tc_resp_free(&r);
  }
  CHECK(TC_WAIT_UNTIL(atomic_load(&done_at) != 0 && atomic_load(&cb_at) != 0, 3000),
        "both callbacks ran: completion #%d, done #%d", atomic_load(&cb_at),
        atomic_load(&done_at));
  CHECK(atomic_load(&cb_at) != 0 && atomic_load(&cb_at) < atomic_load(&done_at),
        "write completion #%d, on_request_done #%d: done must be last", atomic_load(&cb_at),
        atomic_load(&done_at));
  CHECK_EQ_INT(atomic_load(&cb_status), 0);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 5000), "server settled");
  vigil_server_free(s);
}

static void test_order_response(void) {
  run_order(0, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

static void test_order_hijack(void) {
  run_order(1, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

static void test_order_over_limit(void) {
  big_len = 4 * 1024 * 1024;
  run_order(2, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

/* ------------------------------------------------------------------ */
/* 6. The write timeout measures lack of progress.
 * Fails before the fix: the 8 MB response to a client reading ~3 MB/s was
 * cut write_timeout_ms (500 ms) after its single uv_write began (the client
 * still read what the kernel held: about 5.7 of 8 MB), the write never
 * completing within it. */

static void test_write_timeout_progress(void) {
  reset(M_BIG);
  big_len = 8 * 1024 * 1024;
  vigil_config_t cfg;
  base_config(&cfg);
  cfg.write_timeout_ms = 500;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(connect_small(&c, port, 65536) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n") == 0, "send");
  uint64_t t0 = tc_now_ms();
  size_t got = read_all(&c, 10000, 32 * 1024, 10, big_len + 1);
  tc_note("read %zu bytes in %llu ms", got, (unsigned long long)(tc_now_ms() - t0));
  CHECK(got > big_len, "the slow but steady reader got %zu of %zu body bytes", got, big_len);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 5000), "server settled");
  vigil_server_free(s);
}

/* The other half: a reader that stalls is still cut off, and the request
 * (still in its handler) ends with TIMED_OUT / WRITE. */
static void test_write_timeout_stall(void) {
  reset(M_BIG);
  big_len = 6 * 1024 * 1024;
  big_finish = 0;
  vigil_config_t cfg;
  base_config(&cfg);
  cfg.write_timeout_ms = 300;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(connect_small(&c, port, 65536) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n") == 0, "send");
  read_upto(&c, 256 * 1024, 2000); /* some progress first, then nothing */
  uint64_t t0 = tc_now_ms();
  CHECK(TC_WAIT_UNTIL(atomic_load(&done_calls) == 1, 5000), "the request ended");
  tc_note("ended %llu ms after the reader stalled", (unsigned long long)(tc_now_ms() - t0));
  CHECK_EQ_INT(atomic_load(&last_reason), VIGIL_REASON_TIMED_OUT);
  CHECK_EQ_INT(atomic_load(&last_timeout), VIGIL_TIMEOUT_WRITE);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 5000), "server settled");
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* 8. A FIN in cancel mode still gets what was queued before it.
 * Fails before the fix: the client got a few MB of the 8 MB queued, the
 * rest thrown away by the abort. */

static void test_fin_delivers_queued(void) {
  reset(M_BIG);
  big_len = 8 * 1024 * 1024;
  big_finish = 0;
  vigil_config_t cfg;
  base_config(&cfg);
  cfg.write_timeout_ms = 5000;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(connect_small(&c, port, 16384) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n") == 0, "send");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&dispatched) == 1, 3000), "dispatched");
  size_t got = read_upto(&c, 64 * 1024, 1000);
  shutdown(c.fd, SHUT_WR);
  /* The handler hears at once, long before the client read it all. */
  CHECK(TC_WAIT_UNTIL(atomic_load(&done_calls) == 1, 2000), "cancelled at once");
  CHECK_EQ_INT(atomic_load(&last_reason), VIGIL_REASON_CLIENT_CLOSED);
  got += read_all(&c, 10000, 0, 0, 0);
  tc_note("client read %zu bytes after its FIN", got);
  CHECK(got > big_len, "the half-closed client got %zu of the %zu queued body bytes", got,
        big_len);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 5000), "server settled");
  vigil_server_free(s);
}

/* An RST still drops everything at once. */
/* The same, on a connection paused by backpressure: the FIN comes through
 * the hang-up watch, with the client's pipelined requests still unread in
 * the kernel. Fails before the fix (found in review): closing with them
 * unread sent an RST, and the client got ~84 of 273 answers, then
 * ECONNRESET. */
static void test_fin_paused_delivers_queued(void) {
  reset(M_PIPE);
  vigil_config_t cfg;
  base_config(&cfg);
  cfg.read_buffer_limit = 1024;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(connect_small(&c, port, 4096) == 0, "connect");
  static const char one[] = "GET /page HTTP/1.1\r\nHost: a\r\n\r\n";
  size_t rl = sizeof one - 1;
  int n = 4000;
  char *all = malloc(rl * (size_t)n);
  for (int i = 0; i < n; i++) memcpy(all + rl * (size_t)i, one, rl);
  send_no_read(&c, all, rl * (size_t)n, 1500);
  free(all);
  CHECK(TC_WAIT_UNTIL(atomic_load(&dispatched) > 0, 3000), "nothing dispatched");
  tc_sleep_ms(200);
  shutdown(c.fd, SHUT_WR);
  tc_sleep_ms(200);
  int d = atomic_load(&dispatched);
  size_t total = 0;
  char buf[65536];
  ssize_t r = -1;
  uint64_t end = tc_now_ms() + 10000;
  while (tc_now_ms() < end) {
    struct pollfd p = {c.fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    r = recv(c.fd, buf, sizeof buf, 0);
    if (r <= 0) break;
    total += (size_t)r;
  }
  CHECK(r == 0, "the connection ended with %s after %zu bytes, not EOF",
        r < 0 ? strerror(errno) : "a timeout", total);
  CHECK(total >= (size_t)d * 10240, "got %zu bytes for %d dispatched answers", total, d);
  tc_close(&c);
  vigil_server_free(s);
}

/* 5, from another thread: writes queued for the loop when the request
 * ends. The loop is held inside a posted task past the handler timeout
 * while ten writes from this thread are queued; released, the loop runs
 * its timers (the timeout ends the request) before it drains the queue.
 * Every completion must still come before on_request_done. Fails before
 * the fix (found in review): the queued writes ran after the request
 * ended, and their completions came after on_request_done. */
static atomic_int xt_done_flag, xt_after_done, xt_cbs, xt_blocked, xt_release;
static vigil_request_t *_Atomic xt_req;

static void xt_cb(vigil_request_t *req, int st, void *ud) {
  atomic_fetch_add(&xt_cbs, 1);
  if (atomic_load(&xt_done_flag)) atomic_fetch_add(&xt_after_done, 1);
}

static void xt_on_request(vigil_request_t *req, void *ud) {
  vigil_response_start(req, 200, NULL, 0, -1);
  atomic_store(&xt_req, req);
}

static void xt_on_done(vigil_request_t *req, vigil_reason_t r, void *ud) {
  atomic_store(&xt_done_flag, 1);
}

static void xt_block(void *ud) {
  atomic_store(&xt_blocked, 1);
  TC_WAIT_UNTIL(atomic_load(&xt_release), 5000);
}

static void test_order_cross_thread(void) {
  atomic_store(&xt_done_flag, 0);
  atomic_store(&xt_after_done, 0);
  atomic_store(&xt_cbs, 0);
  atomic_store(&xt_blocked, 0);
  atomic_store(&xt_release, 0);
  atomic_store(&xt_req, NULL);
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = xt_on_request;
  cfg.on_request_done = xt_on_done;
  cfg.handler_timeout_ms = 100;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n") == 0, "send");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&xt_req) != NULL, 3000), "no request");
  vigil_request_t *req = atomic_load(&xt_req);
  REQUIRE(vigil_server_post(s, 0, xt_block, NULL) == 0, "post");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&xt_blocked), 3000), "the loop did not block");
  static char chunk[1024];
  int queued = 0;
  for (int i = 0; i < 10; i++)
    if (vigil_response_write(req, chunk, sizeof chunk, xt_cb, NULL) == 0) queued++;
  tc_sleep_ms(250); /* past the handler timeout */
  atomic_store(&xt_release, 1);
  CHECK(TC_WAIT_UNTIL(atomic_load(&xt_done_flag), 3000), "no on_request_done");
  CHECK(TC_WAIT_UNTIL(atomic_load(&xt_cbs) == queued, 3000), "%d of %d completions",
        atomic_load(&xt_cbs), queued);
  CHECK(atomic_load(&xt_after_done) == 0, "%d of %d write completions ran after on_request_done",
        atomic_load(&xt_after_done), queued);
  vigil_request_finish(req);
  tc_close(&c);
  vigil_server_free(s);
}

static void test_rst_drops(void) {
  reset(M_BIG);
  big_len = 8 * 1024 * 1024;
  big_finish = 0;
  vigil_config_t cfg;
  base_config(&cfg);
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(connect_small(&c, port, 16384) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n") == 0, "send");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&dispatched) == 1, 3000), "dispatched");
  tc_close_rst(&c);
  CHECK(TC_WAIT_UNTIL(atomic_load(&done_calls) == 1, 2000), "cancelled at once");
  /* Seen by the read (reset) or by the write in flight (write failed). */
  CHECK(atomic_load(&last_reason) == VIGIL_REASON_RESET ||
            atomic_load(&last_reason) == VIGIL_REASON_WRITE_FAILED,
        "reason %d", atomic_load(&last_reason));
  vigil_stats_t st;
  CHECK(TC_WAIT_UNTIL((vigil_server_stats(s, &st), st.connections_open == 0), 1000),
        "closed at once");
  CHECK(tc_stats_settled(s, 5000), "server settled");
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* 21. A small unread chunked body is drained; the pipelined request after
 * it is served on the same connection.
 * Fails before the fix: the first answer said Connection: close and the
 * second request was never answered. */

static void test_chunked_unread_drained(void) {
  reset(M_CHUNKED);
  vigil_config_t cfg;
  base_config(&cfg);
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhello\r\n0\r\n\r\n"
                          "GET /next HTTP/1.1\r\nHost: a\r\n\r\n") == 0, "send");
  tc_resp_t r;
  CHECK(tc_read_response(&c, &r, 3000) == 0 && r.status == 200, "first answer");
  CHECK(!tc_resp_has(&r, "Connection", "close"), "first answer closes: %s", r.head);
  tc_resp_free(&r);
  CHECK(tc_read_response(&c, &r, 3000) == 0 && r.status == 200, "the pipelined request answered");
  tc_resp_free(&r);
  CHECK_EQ_INT(atomic_load(&dispatched), 2);
  /* The body arriving after the answer (a later write) is drained too. */
  REQUIRE(tc_send_str(&c, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") == 0,
          "send head");
  CHECK(tc_read_response(&c, &r, 3000) == 0 && r.status == 200, "third answer");
  tc_resp_free(&r);
  REQUIRE(tc_send_str(&c, "3\r\nabc\r\n0\r\n\r\nGET /last HTTP/1.1\r\nHost: a\r\n\r\n") == 0,
          "send body");
  CHECK(tc_read_response(&c, &r, 3000) == 0 && r.status == 200, "fourth answer");
  tc_resp_free(&r);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 5000), "server settled");
  vigil_server_free(s);
}

/* Past drain_limit the connection still closes (after the answer). */
static void test_chunked_unread_too_big(void) {
  reset(M_CHUNKED);
  vigil_config_t cfg;
  base_config(&cfg);
  cfg.drain_limit = 1024;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") == 0,
          "send head");
  tc_resp_t r;
  CHECK(tc_read_response(&c, &r, 3000) == 0 && r.status == 200, "answer");
  tc_resp_free(&r);
  char chunk[4096 + 16];
  int k = snprintf(chunk, sizeof chunk, "1000\r\n");
  memset(chunk + k, 'z', 4096);
  memcpy(chunk + k + 4096, "\r\n", 2);
  tc_send(&c, chunk, (size_t)k + 4098);
  CHECK(tc_wait_closed(&c, 3000), "closed after more than drain_limit");
  tc_close(&c);
  CHECK(tc_stats_settled(s, 5000), "server settled");
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* 14. Paused connections: a hang-up is still seen (functional part; the
 * cost is measured by Benchmarks/mem/paused_conns.c, not asserted here). */

static const char paused_head[] =
    "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n";

/* A connection whose request holds more than read_buffer_limit unread
 * bytes: the core stops reading it. */
static int send_paused(tc_client_t *c, int index);
static int open_paused(tc_client_t *c, int port, int index) {
  if (tc_connect(c, port) != 0) return -1;
  return send_paused(c, index);
}

static int send_paused(tc_client_t *c, int index) {
  char buf[4096];
  memset(buf, 'b', sizeof buf);
  size_t hl = sizeof paused_head - 1;
  memcpy(buf, paused_head, hl);
  if (send_no_read(c, buf, sizeof buf, 1000) != sizeof buf) return -1;
  if (!TC_WAIT_UNTIL(atomic_load(&held_n) == index + 1, 3000)) return -1;
  tc_sleep_ms(50); /* let the core read up to its limit and pause */
  return 0;
}

static void test_paused_hangups(vigil_half_close_t hc) {
  reset(M_PAUSED);
  vigil_config_t cfg;
  base_config(&cfg);
  cfg.read_buffer_limit = 1024;
  cfg.half_close = hc;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t a, b;
  REQUIRE(open_paused(&a, port, 0) == 0, "paused connection A");
  REQUIRE(open_paused(&b, port, 1) == 0, "paused connection B");
  tc_close_rst(&a);
  CHECK(TC_WAIT_UNTIL(atomic_load(&done_calls) == 1, 1000), "RST on a paused connection seen");
  CHECK_EQ_INT(atomic_load(&last_reason), VIGIL_REASON_RESET);
  shutdown(b.fd, SHUT_WR);
  if (hc == VIGIL_HALF_CLOSE_CANCEL) {
    CHECK(TC_WAIT_UNTIL(atomic_load(&done_calls) == 2, 1000), "FIN on a paused connection seen");
    CHECK_EQ_INT(atomic_load(&last_reason), VIGIL_REASON_CLIENT_CLOSED);
  } else {
    /* "finish": a FIN alone is not an end while the body is unread; an
     * RST after it still is. */
    tc_sleep_ms(200);
    CHECK_EQ_INT(atomic_load(&done_calls), 1);
    tc_close_rst(&b);
    CHECK(TC_WAIT_UNTIL(atomic_load(&done_calls) == 2, 1000), "RST after FIN seen");
    CHECK_EQ_INT(atomic_load(&last_reason), VIGIL_REASON_RESET);
  }
  tc_close(&b);
  CHECK(tc_stats_settled(s, 5000), "server settled");
  vigil_server_free(s);
}

static void test_paused_hangups_cancel(void) { test_paused_hangups(VIGIL_HALF_CLOSE_CANCEL); }
static void test_paused_hangups_finish(void) { test_paused_hangups(VIGIL_HALF_CLOSE_FINISH); }

/* ------------------------------------------------------------------ */
/* 2. The walk over paused connections survives a callback that resumes
 * another paused connection (A's RST -> on_request_done -> body_start of
 * B's request, inline).
 * Fails before the fix (the probe variant; the epoll variant checks the
 * same scenario on the hang-up events that replaced the probes): the loop
 * thread spun forever on B's self-linked node; the server answered nothing
 * more (and could not be stopped: the test then leaves it and exits). */

static bool stuck_server;

/* probe: the paused connections are watched by the watch timer's probe
 * walk (on_watch), the fallback when the loop's epoll instance for
 * hang-ups cannot be created, forced with VIGIL_HUP_EPOLL=0. Otherwise by
 * the epoll instance. */
static void watch_walk(bool probe) {
  reset(M_PAUSED);
  vigil_config_t cfg;
  base_config(&cfg);
  cfg.read_buffer_limit = 1024;
  vigil_server_t *s;
  if (probe) setenv("VIGIL_HUP_EPOLL", "0", 1);
  int port = tc_server_start(&s, &cfg);
  unsetenv("VIGIL_HUP_EPOLL");
  REQUIRE(port > 0, "server start");
  tc_client_t a, b;
  REQUIRE(tc_connect(&a, port) == 0 && tc_connect(&b, port) == 0, "connect");
  tc_sleep_ms(50); /* both accepted: their sockets exist on the server */
  int ra = send_paused(&a, 0), rb = ra == 0 ? send_paused(&b, 1) : -1;
  REQUIRE(ra == 0, "paused connection A");
  REQUIRE(rb == 0, "paused connection B");
  start_in_done = held[1]; /* A's end starts B's body, inline */
  tc_close_rst(&a);
  CHECK(TC_WAIT_UNTIL(atomic_load(&done_calls) == 1, 1000), "A's RST seen");
  /* B resumed: its body flows to on_body. */
  CHECK(TC_WAIT_UNTIL(atomic_load(&body_bytes) > 0, 2000), "B's body delivered");
  /* The loop still serves. */
  mode = M_CHUNKED;
  tc_resp_t r;
  int rc = tc_roundtrip(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &r);
  CHECK(rc == 0 && r.status == 200, "the loop answers a new connection");
  if (rc == 0) tc_resp_free(&r);
  if (rc != 0) {
    stuck_server = true; /* cannot be stopped: leave it */
    return;
  }
  mode = M_PAUSED;
  tc_close(&b);
  /* B's on_request_done finishes it (done_calls also counts the
   * roundtrip's request). */
  CHECK(TC_WAIT_UNTIL(atomic_load(&held_finished[1]) == 1, 2000), "B ended");
  if (!atomic_load(&held_finished[1])) vigil_request_finish(held[1]);
  CHECK(tc_stats_settled(s, 5000), "server settled");
  vigil_server_free(s);
}

static void test_watch_walk_probe(void) { watch_walk(true); }
static void test_watch_walk_epoll(void) { watch_walk(false); }

/* An optional argument runs only the tests whose name contains it. */
static const char *only;
#define RUNF(fn, name) \
  do { if (only == NULL || strstr(name, only)) RUN(fn, name); } while (0)

int main(int argc, char **argv) {
  tc_init();
  only = argc > 1 ? argv[1] : NULL;
  big_body = malloc(8 * 1024 * 1024);
  memset(big_body, 'q', 8 * 1024 * 1024);
  RUNF(test_pipeline_backpressure,
      "pipelining without reading: dispatch stops past write_buffer_limit, all answered in order");
  RUNF(test_order_response, "order: response write completion before on_request_done");
  RUNF(test_order_hijack, "order: hijack write completion before on_request_done");
  RUNF(test_order_over_limit,
      "order: completion of a write over write_buffer_limit before on_request_done");
  RUNF(test_order_cross_thread,
       "order: completions of writes from another thread before on_request_done");
  RUNF(test_write_timeout_progress, "write timeout: a slow but steady reader gets 8 MB");
  RUNF(test_write_timeout_stall, "write timeout: a stalled reader is cut off (TIMED_OUT, WRITE)");
  RUNF(test_fin_delivers_queued, "half-close cancel: queued output delivered after the FIN");
  RUNF(test_fin_paused_delivers_queued,
       "half-close cancel, paused: queued output delivered after the FIN, no RST");
  RUNF(test_rst_drops, "RST: cancelled and closed at once");
  RUNF(test_chunked_unread_drained, "unread small chunked body drained, next request served");
  RUNF(test_chunked_unread_too_big, "unread chunked body past drain_limit: close");
  RUNF(test_paused_hangups_cancel, "paused connections: RST and FIN seen (cancel)");
  RUNF(test_paused_hangups_finish, "paused connections: RST after FIN seen (finish)");
  RUNF(test_watch_walk_epoll,
       "paused hang-ups (epoll): resuming another paused connection from a callback");
  RUNF(test_watch_walk_probe,
       "paused walk (probe): resuming another paused connection from a callback");
  free(big_body);
  int rc = tc_summary();
  if (stuck_server) _exit(rc ? rc : 1);
  return rc;
}
