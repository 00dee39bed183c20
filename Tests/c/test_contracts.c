/*
 * test_contracts.c - promises of vigil.h that a careful C user relies on:
 * vigil_strerror's strings, a per-request body limit above max_body_bytes,
 * vigil_server_shutdown from a signal handler, and the order of a cancelled
 * request's callbacks.
 */
#include <vigil.h>

#include "tc.h"

#include <signal.h>

/* ------------------------------------------------------------------ */
/* vigil_strerror */

/* Fails before the fix: codes that are not Vigil's own came from one
 * per-thread buffer, so the second call overwrote the first's text. */
static void t_strerror_stable(void) {
  const char *a = vigil_strerror(-98);  /* EADDRINUSE */
  const char *b = vigil_strerror(-104); /* ECONNRESET */
  CHECK(a != NULL && b != NULL, "NULL");
  CHECK(a != b && strcmp(a, b) != 0, "one buffer for two codes: \"%s\" / \"%s\"", a, b);
  CHECK(strstr(a, "address already in use") != NULL, "EADDRINUSE: %s", a);
  CHECK(strstr(b, "connection reset") != NULL, "ECONNRESET: %s", b);
  /* A code nobody knows: a fixed text (uv_strerror would leak one). */
  CHECK(strcmp(vigil_strerror(-4242), "unknown error") == 0, "unknown: %s",
        vigil_strerror(-4242));
  /* Stable across threads too: the same pointer from another thread. */
  CHECK(vigil_strerror(-98) == a, "not the same string on a second call");
}

/* ------------------------------------------------------------------ */
/* the body limit, checked when the body is read */

static atomic_int calls, done_reason;
static atomic_llong body_got;

static void on_request(vigil_request_t *req, void *ud) {
  size_t tl;
  const char *t = vigil_request_target(req, &tl);
  atomic_fetch_add(&calls, 1);
  atomic_store(&body_got, 0);
  if (tl >= 6 && memcmp(t, "/raise", 6) == 0)
    CHECK_EQ_INT(vigil_request_set_body_limit(req, 100000), 0);
  if (tl >= 7 && memcmp(t, "/ignore", 7) == 0) {
    /* Answers without reading: the body is never read past drain_limit. */
    vigil_response_send(req, 200, NULL, 0, "ignored", 7);
    vigil_request_finish(req);
    return;
  }
  vigil_request_body_start(req);
}

static void on_body(vigil_request_t *req, const char *data, size_t len, int end,
                    void *ud) {
  atomic_fetch_add(&body_got, (long long)len);
  if (!end) return;
  char b[32];
  int n = snprintf(b, sizeof b, "%lld", (long long)atomic_load(&body_got));
  vigil_response_send(req, 200, NULL, 0, b, (size_t)n);
  vigil_request_finish(req);
}

static void on_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  atomic_store(&done_reason, (int)reason);
  /* A request ended by the limit is still the handler's to finish. */
  if (reason != VIGIL_REASON_HANDLER_FINISHED) vigil_request_finish(req);
}

static vigil_server_t *server;
static int port;

static void start_limit_server(void) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.on_body = on_body;
  cfg.on_request_done = on_done;
  cfg.max_body_bytes = 1000;
  port = tc_server_start(&server, &cfg);
}

static char big[8192];

/* Fails before the fix: a Content-Length over max_body_bytes got 413 before
 * any handler ran, so no handler could raise the limit for its route. */
static void t_limit_raised(void) {
  REQUIRE(port > 0, "server");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  char head[128];
  snprintf(head, sizeof head, "POST /raise HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n");
  REQUIRE(tc_send_str(&c, head) == 0 && tc_send(&c, big, 5000) == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK(r.status == 200, "status %d", r.status);
  CHECK(r.body.len == 4 && memcmp(r.body.p, "5000", 4) == 0, "body %.*s",
        (int)r.body.len, r.body.p);
  CHECK(!tc_resp_has(&r, "Connection", "close"), "connection closed");
  tc_resp_free(&r);
  tc_close(&c);
}

/* The limit as the handler left it: a Content-Length over it ends the
 * request when the body is first read, with 413 and BODY_TOO_LARGE. */
static void t_limit_on_read(void) {
  REQUIRE(port > 0, "server");
  int calls0 = atomic_load(&calls);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST /read HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n") == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK(r.status == 413, "status %d", r.status);
  CHECK(tc_resp_has(&r, "Connection", "close"), "no Connection: close");
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 3000), "connection left open");
  tc_close(&c);
  CHECK(atomic_load(&calls) == calls0 + 1, "the handler did not run");
  CHECK(TC_WAIT_UNTIL(atomic_load(&done_reason) == VIGIL_REASON_BODY_TOO_LARGE, 3000),
        "reason %d", atomic_load(&done_reason));
  CHECK(atomic_load(&body_got) == 0, "%lld body bytes delivered", (long long)atomic_load(&body_got));
}

/* With the check moved to the first read, it must still come before
 * "100 Continue": a client waiting for it is told 413 instead of being
 * invited to send a body that would be refused (RFC 9110 10.1.1). Fails
 * with the check after vigil__send_continue in vigil__conn_body_start. */
static void t_limit_before_continue(void) {
  REQUIRE(port > 0, "server");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST /read HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                          "Content-Length: 2000\r\n\r\n") == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK(r.status == 413, "first status %d (a 100 Continue before the 413?)", r.status);
  tc_resp_free(&r);
  tc_close(&c);
}

/* A body nobody reads is not refused: the handler answered without
 * reading; the unread body is drained (it is under drain_limit). */
static void t_limit_unread(void) {
  REQUIRE(port > 0, "server");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n") == 0 &&
              tc_send(&c, big, 5000) == 0,
          "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK(r.status == 200, "status %d", r.status);
  tc_resp_free(&r);
  /* Drained: the connection serves the next request. */
  REQUIRE(tc_send_str(&c, "GET /ignore HTTP/1.1\r\nHost: a\r\n\r\n") == 0, "send 2");
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no second response");
  CHECK(r.status == 200, "second status %d", r.status);
  tc_resp_free(&r);
  tc_close(&c);
}

/* ------------------------------------------------------------------ */
/* vigil_server_shutdown from a signal handler */

static vigil_server_t *sig_server;
static pthread_t poster;
static atomic_int poster_stop;
static atomic_int wait_done;

static void on_sigusr1(int sig) {
  (void)sig;
  vigil_server_shutdown(sig_server, 0);
}

static void noop_task(void *ud) { (void)ud; }

static void *post_loop(void *arg) {
  /* Posting takes malloc's locks and the loop's queue lock, and wakes the
   * loop with a write(2) under that lock: a signal delivered when that
   * write returns finds the lock held. */
  while (!atomic_load(&poster_stop))
    if (vigil_server_post(sig_server, 0, noop_task, NULL) != 0) break;
  return NULL;
}

static void *wait_thread(void *arg) {
  vigil_server_wait(sig_server);
  atomic_store(&wait_done, 1);
  return NULL;
}

static void noop_request(vigil_request_t *req, void *ud) {
  vigil_response_send(req, 204, NULL, 0, NULL, 0);
  vigil_request_finish(req);
}

/* Fails before the fix: vigil_server_shutdown allocated and took the loop's
 * queue lock, so a handler interrupting a thread inside vigil_server_post
 * deadlocked on that lock (seen within a few rounds here). */
static void t_shutdown_from_signal(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigusr1;
  sigemptyset(&sa.sa_mask);
  REQUIRE(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
  for (int round = 0; round < 30; round++) {
    vigil_config_t cfg;
    vigil_config_init(&cfg);
    cfg.on_request = noop_request;
    int p = tc_server_start(&sig_server, &cfg);
    REQUIRE(p > 0, "server");
    atomic_store(&poster_stop, 0);
    atomic_store(&wait_done, 0);
    REQUIRE(pthread_create(&poster, NULL, post_loop, NULL) == 0, "poster");
    tc_sleep_ms(5 + (unsigned)(round % 7));
    pthread_kill(poster, SIGUSR1);
    pthread_t w;
    REQUIRE(pthread_create(&w, NULL, wait_thread, NULL) == 0, "waiter");
    if (!TC_WAIT_UNTIL(atomic_load(&wait_done), 5000)) {
      /* The poster is stuck inside its own signal handler: nothing can be
       * cleaned up. Report and leave. */
      CHECK(0, "round %d: the server did not stop after a shutdown from a signal handler", round);
      tc_end();
      fflush(stdout);
      _exit(tc_summary());
    }
    atomic_store(&poster_stop, 1);
    pthread_join(poster, NULL);
    pthread_join(w, NULL);
    vigil_server_free(sig_server);
    sig_server = NULL;
  }
  signal(SIGUSR1, SIG_DFL);
}

/* A server that is not started is an error; a second call is accepted
 * (returns 0) and the server still stops. (That the first call's grace
 * holds is not observable here: no request is in flight.) */
static void t_shutdown_returns(void) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = noop_request;
  vigil_server_t *s;
  REQUIRE(vigil_server_new(&s, &cfg) == 0, "new");
  CHECK_EQ_INT(vigil_server_shutdown(s, 0), VIGIL_EINVAL);
  vigil_server_free(s);
  REQUIRE(tc_server_start(&s, &cfg) > 0, "start");
  CHECK_EQ_INT(vigil_server_shutdown(s, 1000), 0);
  CHECK_EQ_INT(vigil_server_shutdown(s, 0), 0);
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* vigil_request_on_cancel: newest registration first, every one before
 * on_request_done (vigil.h), and vigil_request_finish allowed inside
 * on_request_done. Written into vigil.h from the code (run_regs walks the
 * list it pushes to); this test keeps the promise. */

static atomic_int order[8];
static atomic_int norder;

static void order_note(int what) {
  int i = atomic_fetch_add(&norder, 1);
  if (i < 8) atomic_store(&order[i], what);
}

static void order_cancel(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  (void)req;
  (void)reason;
  order_note((int)(intptr_t)ud);
}

static void order_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  (void)ud;
  order_note(reason == VIGIL_REASON_RESET ? 100 : 200 + (int)reason);
  vigil_request_finish(req); /* the handler's reference, given back here */
}

static void order_request(vigil_request_t *req, void *ud) {
  (void)ud;
  for (int i = 1; i <= 3; i++)
    CHECK_EQ_INT(vigil_request_on_cancel(req, order_cancel, (void *)(intptr_t)i), 0);
  /* No answer: the request stays in flight until the client resets. */
}

static void t_cancel_order(void) {
  atomic_store(&norder, 0);
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = order_request;
  cfg.on_request_done = order_done;
  vigil_server_t *s;
  int p = tc_server_start(&s, &cfg);
  REQUIRE(p > 0, "server start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, p) == 0, "connect");
  tc_send_str(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  tc_sleep_ms(100); /* the handler registered its callbacks */
  tc_close_rst(&c);
  CHECK(TC_WAIT_UNTIL(atomic_load(&norder) >= 4, 3000), "4 callbacks, saw %d",
        atomic_load(&norder));
  tc_sleep_ms(50); /* none runs twice */
  CHECK_EQ_INT(atomic_load(&norder), 4);
  CHECK_EQ_INT(atomic_load(&order[0]), 3);
  CHECK_EQ_INT(atomic_load(&order[1]), 2);
  CHECK_EQ_INT(atomic_load(&order[2]), 1);
  CHECK_EQ_INT(atomic_load(&order[3]), 100); /* on_request_done, RESET */
  vigil_server_shutdown(s, 0);
  vigil_server_wait(s);
  vigil_server_free(s);
}

int main(void) {
  tc_init();
  memset(big, 'b', sizeof big);
  RUN(t_strerror_stable, "vigil_strerror: stable strings, one per code, from any thread");
  start_limit_server();
  RUN(t_limit_raised, "body limit: a handler raises it above max_body_bytes for a Content-Length body");
  RUN(t_limit_on_read, "body limit: Content-Length over it gets 413 when the body is first read");
  RUN(t_limit_before_continue, "body limit: 413 instead of 100 Continue for a body over it");
  RUN(t_limit_unread, "body limit: an unread body over it is drained, not refused");
  if (server) {
    vigil_server_free(server);
    server = NULL;
  }
  RUN(t_shutdown_from_signal, "vigil_server_shutdown from a signal handler interrupting vigil_server_post");
  RUN(t_shutdown_returns, "vigil_server_shutdown: EINVAL before start, idempotent after");
  RUN(t_cancel_order, "on_cancel callbacks: newest first, all before on_request_done (finish inside it)");
  return tc_summary();
}
