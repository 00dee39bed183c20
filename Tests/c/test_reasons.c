/*
 * test_reasons.c - the reasons the other C tests do not reach:
 * "writeFailed", "bodyTooLarge" and "peerUnreachable", each over loopback,
 * as seen by on_request_done and vigil_request_on_cancel; and every
 * reason's name.
 */
#include <vigil.h>

#include "tc.h"

static atomic_int done_reason;  /* from on_request_done */
static atomic_int cb_reason;    /* from vigil_request_on_cancel */
static atomic_int worker_stop;
/* Who gives back the handler reference of a cancelled request: the test's
 * worker thread (write failed), or on_done (the others). Fixed per test
 * before the server starts: deciding it from a flag the worker clears
 * would let both finish the request if on_done ran in between. */
static int done_finishes;

/* What the trickle worker saw after the write failure was reported: the
 * return codes of the response calls it made then, and how many write
 * callbacks ran for those calls (an error return means the callback never
 * runs, and nothing was queued). */
static atomic_int after_saw_done;
static atomic_int after_write_rc, after_write0_rc, after_end_rc, after_start_rc,
    after_send_rc;
static atomic_int after_write_cbs;
/* The same from the loop thread, inside the failure itself: the trickle
 * writes' callback reports the error while the connection is being closed,
 * before the request's reason is set, so the calls it makes there pass the
 * caller-side check (precheck) and run on a closing connection, re-entering
 * the abort. A write accepted then must still get its one callback, with
 * the error; send is refused (the response was started). */
static atomic_int inloop_seen, inloop_write_rc, inloop_send_rc, inloop_cb_status;

static void on_cancel_cb(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  (void)req;
  (void)ud;
  atomic_store(&cb_reason, (int)reason);
}

static void on_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  (void)ud;
  atomic_store(&done_reason, (int)reason);
  if (reason != VIGIL_REASON_HANDLER_FINISHED) {
    atomic_store(&worker_stop, 1);
    if (done_finishes) vigil_request_finish(req);
  }
}

static void reset_state(void) {
  atomic_store(&done_reason, VIGIL_REASON_NONE);
  atomic_store(&cb_reason, VIGIL_REASON_NONE);
  atomic_store(&worker_stop, 0);
  atomic_store(&after_saw_done, 0);
  atomic_store(&after_write_cbs, 0);
  atomic_store(&inloop_seen, 0);
  atomic_store(&inloop_write_rc, 1);
  atomic_store(&inloop_send_rc, 1);
  atomic_store(&inloop_cb_status, 1);
  done_finishes = 0;
}

/* ------------------------------------------------------------------ */
/* write failed: with the "finish" half-close policy the core stops reading
 * after the client's FIN, so an RST after it is learnt from a write. */

static void after_write_cb(vigil_request_t *req, int status, void *ud) {
  (void)req;
  (void)status;
  (void)ud;
  atomic_fetch_add(&after_write_cbs, 1);
}

static void inloop_write_cb(vigil_request_t *req, int status, void *ud) {
  (void)req;
  (void)ud;
  atomic_store(&inloop_cb_status, status);
}

static void trickle_write_cb(vigil_request_t *req, int status, void *ud) {
  (void)ud;
  if (status == 0 || atomic_exchange(&inloop_seen, 1)) return;
  atomic_store(&inloop_write_rc, vigil_response_write(req, "late\n", 5, inloop_write_cb, NULL));
  atomic_store(&inloop_send_rc, vigil_response_send(req, 200, NULL, 0, "late", 4));
}

static void *trickle(void *arg) {
  vigil_request_t *req = arg;
  while (!atomic_load(&worker_stop)) {
    if (vigil_response_write(req, "tick\n", 5, trickle_write_cb, NULL) != 0) break;
    tc_sleep_ms(10);
  }
  /* The handler still holds its reference: once the failure is reported
   * (on_request_done ran), every response call must fail and queue
   * nothing. */
  if (TC_WAIT_UNTIL(atomic_load(&done_reason) != VIGIL_REASON_NONE, 5000)) {
    atomic_store(&after_saw_done, 1);
    atomic_store(&after_write_rc,
                 vigil_response_write(req, "late\n", 5, after_write_cb, NULL));
    atomic_store(&after_write0_rc, vigil_response_write(req, "", 0, after_write_cb, NULL));
    atomic_store(&after_end_rc, vigil_response_end(req));
    atomic_store(&after_start_rc, vigil_response_start(req, 200, NULL, 0, -1));
    atomic_store(&after_send_rc, vigil_response_send(req, 200, NULL, 0, "late", 4));
    tc_sleep_ms(100); /* a callback wrongly queued would have run by now */
  }
  vigil_request_finish(req);
  return NULL;
}

static void on_request_trickle(vigil_request_t *req, void *ud) {
  (void)ud;
  vigil_request_on_cancel(req, on_cancel_cb, NULL);
  vigil_response_start(req, 200, NULL, 0, -1);
  tc_spawn(trickle, req);
}

static void test_write_failed(void) {
  reset_state();
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.half_close = VIGIL_HALF_CLOSE_FINISH;
  /* Every write waits for its flush: the one in flight when the write
   * fails has a callback still to run, with the error. */
  cfg.write_buffer_limit = 1;
  cfg.on_request = on_request_trickle;
  cfg.on_request_done = on_done;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  tc_send_str(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  shutdown(c.fd, SHUT_WR);
  TC_WAIT_UNTIL((tc_read_some(&c, 50), c.in.len > 20), 3000);
  tc_sleep_ms(100); /* the loop has read the FIN: no read is armed now */
  tc_close_rst(&c);
  CHECK(TC_WAIT_UNTIL(atomic_load(&done_reason) != VIGIL_REASON_NONE, 5000),
        "request ended");
  CHECK_EQ_INT(atomic_load(&done_reason), VIGIL_REASON_WRITE_FAILED);
  CHECK_EQ_INT(atomic_load(&cb_reason), VIGIL_REASON_WRITE_FAILED);
  tc_join_workers();
  /* After the failure is reported, every call is refused before it
   * queues anything: the request's reason is set, so VIGIL_ECANCELED
   * ("the request was cancelled"), whatever the response's state. No
   * callback. */
  CHECK(atomic_load(&after_saw_done), "the worker saw the request end");
  CHECK_EQ_INT(atomic_load(&after_write_rc), VIGIL_ECANCELED);
  CHECK_EQ_INT(atomic_load(&after_write0_rc), VIGIL_ECANCELED);
  CHECK_EQ_INT(atomic_load(&after_end_rc), VIGIL_ECANCELED);
  CHECK_EQ_INT(atomic_load(&after_start_rc), VIGIL_ECANCELED);
  CHECK_EQ_INT(atomic_load(&after_send_rc), VIGIL_ECANCELED);
  int rc;
  CHECK_EQ_INT(atomic_load(&after_write_cbs), 0);
  /* Inside the failure, on the loop thread: a write is accepted and then
   * failed through its callback, or refused; send is refused. Neither may
   * reach the closing connection as a success. */
  CHECK(atomic_load(&inloop_seen), "a trickle write reported the failure");
  rc = atomic_load(&inloop_write_rc);
  CHECK(rc < 0 || (rc == 0 && atomic_load(&inloop_cb_status) < 0),
        "vigil_response_write inside the failure: rc %d, callback status %d", rc,
        atomic_load(&inloop_cb_status));
  CHECK_EQ_INT(atomic_load(&inloop_send_rc), VIGIL_EALREADY);
  CHECK(tc_stats_settled(s, 3000), "nothing left");
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* body too large: a chunked body passing max_body_bytes */

#define BODY_LIMIT 100

/* What on_body saw: the body bytes delivered, the calls, whether end=1 came. */
static atomic_ullong body_bytes;
static atomic_int body_calls;
static atomic_int body_ended;

static void on_request_body(vigil_request_t *req, void *ud) {
  (void)ud;
  vigil_request_on_cancel(req, on_cancel_cb, NULL);
  vigil_request_body_start(req);
}

static void on_body_count(vigil_request_t *req, const char *d, size_t n, int end,
                          void *ud) {
  (void)d;
  (void)ud;
  atomic_fetch_add(&body_bytes, (unsigned long long)n);
  atomic_fetch_add(&body_calls, 1);
  if (end) {
    atomic_store(&body_ended, 1);
    vigil_response_send(req, 200, NULL, 0, "all", 3);
    vigil_request_finish(req);
  }
}

static void reset_body_counts(void) {
  atomic_store(&body_bytes, 0);
  atomic_store(&body_calls, 0);
  atomic_store(&body_ended, 0);
}

/* Sends a chunked POST whose body is `nchunks` chunks of `chunk` bytes
 * each, a chunk per write with a pause between them, so that the core
 * sees the body in several reads (and delivers it in several spans).
 * Stops early once the server answered or closed. */
static void send_chunked(tc_client_t *c, int nchunks, size_t chunk) {
  char data[512];
  char size[32];
  memset(data, 'z', sizeof data);
  tc_send_str(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < nchunks; i++) {
    /* An answer (the 413) or a close: the rest would only meet an RST. */
    tc_read_some(c, 0);
    if (c->in.len > 0 || c->eof || c->reset) return;
    snprintf(size, sizeof size, "%zx\r\n", chunk);
    tc_send_str(c, size);
    tc_send(c, data, chunk);
    tc_send_str(c, "\r\n");
    tc_sleep_ms(20);
  }
  tc_send_str(c, "0\r\n\r\n");
}

/* A fresh state (the handler finishes in on_done) and a server with the
 * body limit and the counting on_body. */
static vigil_server_t *start_body_server(void) {
  reset_state();
  reset_body_counts();
  done_finishes = 1;
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.max_body_bytes = BODY_LIMIT;
  cfg.on_request = on_request_body;
  cfg.on_body = on_body_count;
  cfg.on_request_done = on_done;
  vigil_server_t *s;
  if (tc_server_start(&s, &cfg) <= 0) return NULL;
  return s;
}

static void test_body_too_large(void) {
  vigil_server_t *s = start_body_server();
  REQUIRE(s != NULL, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, vigil_server_port(s)) == 0, "connect");
  /* 60 + 60 + ...: the second chunk passes the limit of 100. */
  send_chunked(&c, 5, 60);
  tc_resp_t r;
  CHECK(tc_read_response(&c, &r, 5000) == 0, "a response");
  CHECK_EQ_INT(r.status, 413);
  CHECK(tc_resp_has(&r, "connection", "close"), "Connection: close");
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 3000), "closed");
  CHECK_EQ_INT(atomic_load(&done_reason), VIGIL_REASON_BODY_TOO_LARGE);
  CHECK_EQ_INT(atomic_load(&cb_reason), VIGIL_REASON_BODY_TOO_LARGE);
  /* The exact bound: the bytes handed to on_body never pass the limit (a
   * span that would pass it is not delivered at all), the body did flow
   * (the first chunk fits), and no end=1 came for a body that failed. */
  unsigned long long got = atomic_load(&body_bytes);
  CHECK(got <= BODY_LIMIT, "on_body got %llu bytes in %d calls, over max_body_bytes %d",
        got, atomic_load(&body_calls), BODY_LIMIT);
  CHECK(got >= 60, "on_body got %llu bytes: the first chunk (60) fits the limit", got);
  CHECK_EQ_INT(atomic_load(&body_ended), 0);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 3000), "nothing left");
  vigil_server_free(s);
}

/* The other side of the bound: a chunked body of exactly max_body_bytes is
 * delivered whole and answered by the handler. */
static void test_body_at_limit(void) {
  vigil_server_t *s = start_body_server();
  REQUIRE(s != NULL, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, vigil_server_port(s)) == 0, "connect");
  send_chunked(&c, 2, BODY_LIMIT / 2);
  tc_resp_t r;
  CHECK(tc_read_response(&c, &r, 5000) == 0, "a response");
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.body.len == 3 && memcmp(r.body.p, "all", 3) == 0, "body 'all'");
  /* The body was read whole: the connection stays open. (A response made
   * inside on_body(end=1) used to find the connection still in PHASE_BODY
   * and close it after answering.) */
  CHECK(!tc_resp_has(&r, "connection", "close"), "no Connection: close after a whole body");
  tc_resp_free(&r);
  CHECK_EQ_INT(atomic_load(&body_bytes), BODY_LIMIT);
  CHECK_EQ_INT(atomic_load(&body_ended), 1);
  CHECK(TC_WAIT_UNTIL(atomic_load(&done_reason) != VIGIL_REASON_NONE, 3000),
        "request done");
  CHECK_EQ_INT(atomic_load(&done_reason), VIGIL_REASON_HANDLER_FINISHED);
  /* And it carries the next request. */
  reset_body_counts();
  send_chunked(&c, 1, 10);
  CHECK(tc_read_response(&c, &r, 5000) == 0, "a second response on the connection");
  CHECK_EQ_INT(r.status, 200);
  tc_resp_free(&r);
  CHECK_EQ_INT(atomic_load(&body_bytes), 10);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 3000), "nothing left");
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* peer unreachable: a client that never reads keeps a zero window; past
 * TCP_USER_TIMEOUT the kernel drops it and the armed read (or the write in
 * flight) gets ETIMEDOUT - the kernel gave up on the peer, as it does for
 * a client that vanished (Tests/deploy/vanish.sh). Before that reason
 * existed this was readFailed, which said nothing of why. */

static void on_request_flood(vigil_request_t *req, void *ud) {
  (void)ud;
  static char block[65536];
  vigil_request_on_cancel(req, on_cancel_cb, NULL);
  vigil_response_start(req, 200, NULL, 0, -1);
  for (int i = 0; i < 64; i++) vigil_response_write(req, block, sizeof block, NULL, NULL);
}

static void test_peer_unreachable(void) {
  reset_state();
  done_finishes = 1;
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.tcp_user_timeout_ms = 300;
  cfg.write_timeout_ms = 0;
  cfg.on_request = on_request_flood;
  cfg.on_request_done = on_done;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  memset(&c, 0, sizeof c);
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  int small = 4096;
  setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  tc_send_str(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  /* Never read. */
  CHECK(TC_WAIT_UNTIL(atomic_load(&done_reason) != VIGIL_REASON_NONE, 10000),
        "request ended");
  CHECK_EQ_INT(atomic_load(&done_reason), VIGIL_REASON_PEER_UNREACHABLE);
  CHECK_EQ_INT(atomic_load(&cb_reason), VIGIL_REASON_PEER_UNREACHABLE);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 3000), "nothing left");
  vigil_server_free(s);
}

/* The same while the server does not read (backpressure: the handler
 * leaves a large body unread): the kernel's error then comes through the
 * hang-up watch or the write in flight, never as a "reset". */
static void test_peer_unreachable_paused(void) {
  reset_state();
  done_finishes = 1;
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.tcp_user_timeout_ms = 300;
  cfg.write_timeout_ms = 0;
  cfg.read_buffer_limit = 1024;
  cfg.on_request = on_request_flood; /* never starts the body */
  cfg.on_request_done = on_done;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  int small = 4096;
  setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  tc_send_str(&c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
  /* Body bytes until the kernel takes no more (the server stopped reading
   * them), never reading the response. */
  static char body[65536];
  uint64_t end = tc_now_ms() + 3000;
  while (tc_now_ms() < end) {
    ssize_t n = send(c.fd, body, sizeof body, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno != EINTR) break;
  }
  CHECK(TC_WAIT_UNTIL(atomic_load(&done_reason) != VIGIL_REASON_NONE, 10000),
        "request ended");
  CHECK_EQ_INT(atomic_load(&done_reason), VIGIL_REASON_PEER_UNREACHABLE);
  CHECK_EQ_INT(atomic_load(&cb_reason), VIGIL_REASON_PEER_UNREACHABLE);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 3000), "nothing left");
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* names: identifiers ([a-z][A-Za-z]*) that serve as metric labels and log
 * values, the Swift enum's case names (ErrorNameTests checks Swift's side
 * against this function). */

static int is_identifier(const char *s) {
  if (s == NULL || !(*s >= 'a' && *s <= 'z')) return 0;
  for (s++; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) return 0;
  return 1;
}

static void test_reason_names(void) {
  static const char *const expected[] = {
      "none",           "clientClosed",    "reset",      "readFailed",
      "writeFailed",    "timedOut",        "serverShutdown", "handlerFinished",
      "badRequest",     "bodyTooLarge",    "peerUnreachable",
  };
  size_t n = sizeof expected / sizeof expected[0];
  CHECK_EQ_INT((int)n, VIGIL_REASON_PEER_UNREACHABLE + 1);
  for (size_t i = 0; i < n; i++) {
    const char *name = vigil_reason_name((vigil_reason_t)i);
    CHECK(is_identifier(name), "reason %zu: \"%s\" is not [a-z][A-Za-z]*", i, name);
    CHECK(strcmp(name, expected[i]) == 0, "reason %zu: \"%s\", expected \"%s\"", i, name,
          expected[i]);
  }
  CHECK(strcmp(vigil_reason_name((vigil_reason_t)99), "unknown") == 0, "outside the enum");
}

int main(void) {
  tc_init();
  RUN(test_reason_names, "reason names: identifiers, the Swift case names");
  RUN(test_write_failed, "write failed: FIN, then RST seen by a write");
  RUN(test_body_too_large,
      "body too large: chunked body over max_body_bytes gets 413, on_body gets at most the limit");
  RUN(test_body_at_limit, "body at the limit: a chunked body of exactly max_body_bytes is delivered");
  RUN(test_peer_unreachable, "peer unreachable: zero window past TCP_USER_TIMEOUT");
  RUN(test_peer_unreachable_paused,
      "peer unreachable: zero window past TCP_USER_TIMEOUT while reading is paused");
  return tc_summary();
}
