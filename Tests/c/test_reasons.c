/*
 * test_reasons.c - the reasons the other C tests do not reach: "write
 * failed", "body too large" and "read failed", each over loopback, as seen
 * by on_request_done and vigil_request_on_cancel.
 */
#include <vigil.h>

#include "tc.h"

static atomic_int done_reason;  /* from on_request_done */
static atomic_int cb_reason;    /* from vigil_request_on_cancel */
static atomic_int worker_stop;
static pthread_t worker;
static atomic_int worker_started;
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
  atomic_store(&worker_started, 0);
  atomic_store(&after_saw_done, 0);
  atomic_store(&after_write_cbs, 0);
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

static void *trickle(void *arg) {
  vigil_request_t *req = arg;
  while (!atomic_load(&worker_stop)) {
    if (vigil_response_write(req, "tick\n", 5, NULL, NULL) != 0) break;
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
  if (pthread_create(&worker, NULL, trickle, req) == 0) atomic_store(&worker_started, 1);
  else vigil_request_finish(req);
}

static void test_write_failed(void) {
  reset_state();
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.half_close = VIGIL_HALF_CLOSE_FINISH;
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
  if (atomic_load(&worker_started)) pthread_join(worker, NULL);
  /* After the failure: the response was started and not ended, so write
   * and end can only fail as cancelled (vigil.h: VIGIL_ECANCELED, "the
   * request was cancelled"); start and send may also say the response was
   * already started (VIGIL_EALREADY). Nothing was queued: no callback. */
  CHECK(atomic_load(&after_saw_done), "the worker saw the request end");
  CHECK_EQ_INT(atomic_load(&after_write_rc), VIGIL_ECANCELED);
  CHECK_EQ_INT(atomic_load(&after_write0_rc), VIGIL_ECANCELED);
  CHECK_EQ_INT(atomic_load(&after_end_rc), VIGIL_ECANCELED);
  int rc = atomic_load(&after_start_rc);
  CHECK(rc == VIGIL_ECANCELED || rc == VIGIL_EALREADY,
        "vigil_response_start after the failure: %d (%s)", rc, vigil_strerror(rc));
  rc = atomic_load(&after_send_rc);
  CHECK(rc == VIGIL_ECANCELED || rc == VIGIL_EALREADY,
        "vigil_response_send after the failure: %d (%s)", rc, vigil_strerror(rc));
  CHECK_EQ_INT(atomic_load(&after_write_cbs), 0);
  CHECK(tc_stats_settled(s, 3000), "nothing left");
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* body too large: a chunked body passing max_body_bytes */

static void on_request_body(vigil_request_t *req, void *ud) {
  (void)ud;
  vigil_request_on_cancel(req, on_cancel_cb, NULL);
  vigil_request_body_start(req);
}

static void on_body_discard(vigil_request_t *req, const char *d, size_t n, int end,
                            void *ud) {
  (void)d;
  (void)n;
  (void)ud;
  if (end) {
    vigil_response_send(req, 200, NULL, 0, "all", 3);
    vigil_request_finish(req);
  }
}

static void test_body_too_large(void) {
  reset_state();
  done_finishes = 1;
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.max_body_bytes = 100;
  cfg.on_request = on_request_body;
  cfg.on_body = on_body_discard;
  cfg.on_request_done = on_done;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  char chunk[300];
  memset(chunk, 'z', sizeof chunk);
  tc_send_str(&c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n12c\r\n");
  tc_send(&c, chunk, sizeof chunk);
  tc_send_str(&c, "\r\n0\r\n\r\n");
  tc_resp_t r;
  CHECK(tc_read_response(&c, &r, 5000) == 0, "a response");
  CHECK_EQ_INT(r.status, 413);
  CHECK(tc_resp_has(&r, "connection", "close"), "Connection: close");
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 3000), "closed");
  CHECK_EQ_INT(atomic_load(&done_reason), VIGIL_REASON_BODY_TOO_LARGE);
  CHECK_EQ_INT(atomic_load(&cb_reason), VIGIL_REASON_BODY_TOO_LARGE);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 3000), "nothing left");
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* read failed: a client that never reads keeps a zero window; past
 * TCP_USER_TIMEOUT the kernel drops it and the armed read gets ETIMEDOUT */

static void on_request_flood(vigil_request_t *req, void *ud) {
  (void)ud;
  static char block[65536];
  vigil_request_on_cancel(req, on_cancel_cb, NULL);
  vigil_response_start(req, 200, NULL, 0, -1);
  for (int i = 0; i < 64; i++) vigil_response_write(req, block, sizeof block, NULL, NULL);
}

static void test_read_failed(void) {
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
  CHECK_EQ_INT(atomic_load(&done_reason), VIGIL_REASON_READ_FAILED);
  CHECK_EQ_INT(atomic_load(&cb_reason), VIGIL_REASON_READ_FAILED);
  tc_close(&c);
  CHECK(tc_stats_settled(s, 3000), "nothing left");
  vigil_server_free(s);
}

int main(void) {
  tc_init();
  RUN(test_write_failed, "write failed: FIN, then RST seen by a write");
  RUN(test_body_too_large, "body too large: chunked body over max_body_bytes gets 413");
  RUN(test_read_failed, "read failed: zero window past TCP_USER_TIMEOUT");
  return tc_summary();
}
