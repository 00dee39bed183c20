/*
 * test_lifecycle.c - the server's life: argument checks, start failures,
 * graceful shutdown (in-flight requests finish, idle connections close,
 * on_stopped), the grace period running out, vigil_server_free with
 * connections open in every phase (idle, mid-head, body unread, handler on
 * a worker), requests that outlive the server, and the counters.
 * Run under ASan/LSan too: everything must be freed.
 */
#include <vigil.h>

#include "tc.h"

#include <stddef.h>

/* ------------------------------------------------------------------ */
/* "/hold?ms=N": a worker keeps the request up to N ms, or until
 * cancelled, then tries to answer. What it saw is kept per request. */

#define MAXREC 256

typedef struct {
  atomic_int started;
  atomic_int cancel_calls;
  atomic_int cancel_reason;
  atomic_int done_calls;
  atomic_int done_reason;
  atomic_int worker_done;
  int send_rc;            /* vigil_response_send from the worker */
  int head_ok;            /* the head was still readable */
  double t_cancel_us;
} rec_t;

static rec_t recs[MAXREC];
static atomic_int next_rec;
static atomic_int stopped_calls;
static atomic_int release_after_server_free; /* worker waits for this */

static void on_cancel(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  tc_job_t *j = ud;
  recs[j->id].t_cancel_us = tc_now_us();
  atomic_store(&recs[j->id].cancel_reason, (int)reason);
  atomic_fetch_add(&recs[j->id].cancel_calls, 1);
  tc_job_cancel(j);
  tc_job_unref(j);
}

static void *hold_worker(void *arg) {
  tc_job_t *j = arg;
  rec_t *r = &recs[j->id];
  tc_job_wait(j);
  /* Optionally wait until the test freed the server, to call into the
   * request afterwards. */
  if (atomic_load(&release_after_server_free))
    TC_WAIT_UNTIL(atomic_load(&release_after_server_free) == 2, 5000);
  size_t tl;
  const char *t = vigil_request_target(j->req, &tl);
  r->head_ok = tl >= 5 && memcmp(t, "/hold", 5) == 0;
  r->send_rc = vigil_response_send(j->req, 200, NULL, 0, "held", 4);
  vigil_request_finish(j->req);
  atomic_store(&r->worker_done, 1);
  tc_job_unref(j);
  return NULL;
}

static vigil_request_t *kept; /* "/keep": a reference the test keeps */
static pthread_t handler_thread;
static atomic_int handler_loop = -1;

/* vigil_server_post from the loop thread: runs after the callback */
static atomic_int post_flag, post_seen_flag, post_on_handler_thread;
static void post_from_loop(void *ud) {
  atomic_store(&post_seen_flag, atomic_load(&post_flag));
  atomic_store(&post_on_handler_thread, pthread_equal(pthread_self(), handler_thread));
}

static void on_request(vigil_request_t *req, void *ud) {
  handler_thread = pthread_self();
  atomic_store(&handler_loop, (int)vigil_request_loop(req));
  int id = atomic_fetch_add(&next_rec, 1);
  if (id >= MAXREC) abort();
  vigil_request_set_data(req, (void *)(intptr_t)(id + 1));
  atomic_store(&recs[id].started, 1);
  size_t tl;
  const char *t = vigil_request_target(req, &tl);
  if (tl >= 5 && memcmp(t, "/hold", 5) == 0) {
    const char *q = memchr(t, '=', tl);
    tc_job_t *j = tc_job_new(2, id, req, q ? (unsigned)strtoul(q + 1, NULL, 10) : 10000);
    vigil_request_on_cancel(req, on_cancel, j);
    tc_spawn(hold_worker, j);
    return;
  }
  if (tl == 5 && memcmp(t, "/keep", 5) == 0) {
    vigil_request_retain(req);
    kept = req;
  }

  vigil_response_send(req, 200, NULL, 0, "ok", 2);
  vigil_request_finish(req);
}

static void on_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  intptr_t v = (intptr_t)vigil_request_get_data(req);
  if (v <= 0) return;
  atomic_store(&recs[v - 1].done_reason, (int)reason);
  atomic_fetch_add(&recs[v - 1].done_calls, 1);
}

static void on_stopped(vigil_server_t *s, void *ud) { atomic_fetch_add(&stopped_calls, 1); }

static void config(vigil_config_t *cfg) {
  vigil_config_init(cfg);
  cfg->on_request = on_request;
  cfg->on_request_done = on_done;
  cfg->on_stopped = on_stopped;
}

static int ok_roundtrip(tc_client_t *c, const char *path) {
  char req[128];
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
  tc_resp_t r;
  int ok = tc_send_str(c, req) == 0 && tc_read_response(c, &r, 5000) == 0 && r.status == 200;
  tc_resp_free(&r);
  return ok;
}

/* ------------------------------------------------------------------ */
/* tests */

static void t_basics(void) {
  CHECK_EQ_INT(vigil_version(), VIGIL_VERSION_HEX);
  CHECK(strcmp(vigil_version_string(), "0.1.0") == 0, "version string %s", vigil_version_string());
  CHECK(strcmp(vigil_strerror(VIGIL_ECANCELED), "request cancelled") == 0, "strerror");
  /* Stable strings for every code: test_contracts.c. */
  CHECK(vigil_strerror(-98) != NULL && vigil_strerror(-104) != NULL, "strerror NULL");
  CHECK(strcmp(vigil_reason_name(VIGIL_REASON_RESET), "reset") == 0, "reason name");
  CHECK(vigil_reason_name((vigil_reason_t)99) != NULL, "reason name NULL");
}

static void t_bad_config(void) {
  vigil_config_t cfg;
  vigil_server_t *s = NULL;
  vigil_config_init(&cfg);
  CHECK_EQ_INT(vigil_server_new(&s, &cfg), VIGIL_EINVAL); /* no on_request */
  config(&cfg);
  cfg.struct_size = 0;
  CHECK_EQ_INT(vigil_server_new(&s, &cfg), VIGIL_EINVAL);
  cfg.struct_size = sizeof cfg + 8;
  CHECK_EQ_INT(vigil_server_new(&s, &cfg), VIGIL_EINVAL);
  CHECK_EQ_INT(vigil_server_new(NULL, &cfg), VIGIL_EINVAL);
  /* an older caller's smaller struct (up to `userdata`) is accepted */
  config(&cfg);
  cfg.struct_size = offsetof(vigil_config_t, userdata) + sizeof(void *);
  cfg.port = 0;
  int r = vigil_server_new(&s, &cfg);
  CHECK_EQ_INT(r, 0);
  if (r == 0) {
    CHECK_EQ_INT(vigil_server_port(s), VIGIL_EINVAL); /* not started */
    CHECK_EQ_INT(vigil_server_shutdown(s, 0), VIGIL_EINVAL);
    CHECK_EQ_INT(vigil_server_wait(s), VIGIL_EINVAL);
    vigil_server_free(s); /* never started */
  }
  vigil_server_free(NULL);
}

static void t_port_in_use(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0, "bind");
  socklen_t al = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &al);
  vigil_config_t cfg;
  config(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = ntohs(a.sin_port);
  vigil_server_t *s;
  REQUIRE(vigil_server_new(&s, &cfg) == 0, "new");
  CHECK_EQ_INT(vigil_server_start(s), -98); /* EADDRINUSE */
  CHECK_EQ_INT(vigil_server_port(s), VIGIL_EINVAL);
  vigil_server_free(s);
  close(fd);
}

static void t_start_twice(void) {
  vigil_config_t cfg;
  config(&cfg);
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "start");
  CHECK_EQ_INT(vigil_server_start(s), VIGIL_EALREADY);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  CHECK(ok_roundtrip(&c, "/"), "request");
  tc_close(&c);
  CHECK_EQ_INT(vigil_server_shutdown(s, 0), 0);
  CHECK_EQ_INT(vigil_server_shutdown(s, 0), 0); /* idempotent */
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  vigil_server_free(s);
}

static void t_counters(void) {
  vigil_config_t cfg;
  config(&cfg);
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "start");
  tc_client_t c[3];
  for (int i = 0; i < 3; i++) REQUIRE(tc_connect(&c[i], port) == 0, "connect");
  for (int i = 0; i < 3; i++) CHECK(ok_roundtrip(&c[i], "/"), "request %d", i);
  vigil_stats_t st;
  CHECK(TC_WAIT_UNTIL((vigil_server_stats(s, &st), st.connections_open == 3 &&
                       st.requests_live == 0), 2000), "3 open idle connections expected");
  /* one cancelled request: RST during a hold */
  int id = atomic_load(&next_rec);
  REQUIRE(tc_send_str(&c[0], "GET /hold?ms=5000 HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&recs[id].started), 2000), "hold not started");
  vigil_server_stats(s, &st);
  CHECK_EQ_INT(st.requests_live, 1);
  tc_close_rst(&c[0]);
  CHECK(TC_WAIT_UNTIL(atomic_load(&recs[id].worker_done), 3000), "worker not cancelled");
  tc_join_workers();
  for (int i = 1; i < 3; i++) tc_close(&c[i]);
  CHECK(tc_stats_settled(s, 3000), "counters did not settle");
  vigil_server_stats(s, &st);
  CHECK_EQ_INT(st.connections_accepted, 3);
  CHECK_EQ_INT(st.requests_total, 4);
  CHECK_EQ_INT(st.requests_cancelled, 1);
  CHECK_EQ_INT(st.bad_requests, 0);
  vigil_server_free(s);
}

static void t_graceful(void) {
  vigil_config_t cfg;
  config(&cfg);
  /* Idle connections close at once (0); the default drain that lets them
   * bring one more request is test_listen.c's t_drain. */
  cfg.shutdown_idle_ms = 0;
  vigil_server_t *s;
  atomic_store(&stopped_calls, 0);
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "start");
  tc_client_t idle, busy;
  REQUIRE(tc_connect(&idle, port) == 0 && tc_connect(&busy, port) == 0, "connect");
  CHECK(ok_roundtrip(&idle, "/"), "idle request");
  int id = atomic_load(&next_rec);
  REQUIRE(tc_send_str(&busy, "GET /hold?ms=800 HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&recs[id].started), 2000), "hold not started");
  uint64_t t0 = tc_now_ms();
  CHECK_EQ_INT(vigil_server_shutdown(s, 3000), 0);
  CHECK(tc_wait_closed(&idle, 1000), "idle connection not closed at once");
  CHECK(tc_now_ms() - t0 < 600, "idle connection closed only after %llu ms",
        (unsigned long long)(tc_now_ms() - t0));
  CHECK(busy.in.len == 0 && !busy.eof, "the in-flight request ended before its time");
  /* no new connections */
  tc_client_t late;
  int refused = TC_WAIT_UNTIL(tc_connect(&late, port) != 0 || (tc_close(&late), 0), 1000);
  CHECK(refused, "still accepting after shutdown");
  tc_resp_t r;
  CHECK(tc_read_response(&busy, &r, 3000) == 0, "in-flight request got no answer");
  CHECK(r.status == 200 && r.body.len == 4, "status %d", r.status);
  CHECK(tc_resp_has(&r, "Connection", "close"), "no Connection: close: %s", r.head);
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&busy, 2000), "connection not closed after the answer");
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  CHECK_EQ_INT(atomic_load(&stopped_calls), 1);
  CHECK_EQ_INT(atomic_load(&recs[id].cancel_reason), VIGIL_REASON_HANDLER_FINISHED);
  CHECK_EQ_INT(recs[id].send_rc, 0);
  tc_join_workers();
  vigil_stats_t st;
  vigil_server_stats(s, &st);
  CHECK(st.connections_open == 0 && st.requests_live == 0, "open %llu live %llu",
        (unsigned long long)st.connections_open, (unsigned long long)st.requests_live);
  tc_close(&idle);
  tc_close(&busy);
  vigil_server_free(s);
}

static void t_grace_runs_out(void) {
  vigil_config_t cfg;
  config(&cfg);
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  int id = atomic_load(&next_rec);
  REQUIRE(tc_send_str(&c, "GET /hold?ms=10000 HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&recs[id].started), 2000), "hold not started");
  double t0 = tc_now_us();
  CHECK_EQ_INT(vigil_server_shutdown(s, 100), 0);
  CHECK(TC_WAIT_UNTIL(atomic_load(&recs[id].worker_done), 3000), "not cancelled");
  CHECK_EQ_INT(atomic_load(&recs[id].cancel_reason), VIGIL_REASON_SERVER_SHUTDOWN);
  /* on_request_done runs after the cancel callbacks: wait for it too */
  CHECK(TC_WAIT_UNTIL(atomic_load(&recs[id].done_calls) == 1, 2000), "no on_request_done");
  CHECK_EQ_INT(atomic_load(&recs[id].done_reason), VIGIL_REASON_SERVER_SHUTDOWN);
  double dt = (recs[id].t_cancel_us - t0) / 1000;
  CHECK(dt >= 90 && dt < 1000, "cancelled %.0f ms after shutdown (grace 100)", dt);
  CHECK(recs[id].send_rc == VIGIL_ESHUTDOWN || recs[id].send_rc == VIGIL_ECANCELED,
        "send after shutdown: %d", recs[id].send_rc);
  CHECK(tc_wait_closed(&c, 2000), "connection not closed");
  CHECK(c.in.len == 0, "got a response: %.60s", c.in.p);
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  tc_join_workers();
  tc_close(&c);
  vigil_server_free(s);
}

static void t_free_with_connections(void) {
  /* free() with: an idle keep-alive connection, one mid-head, one whose
   * body is unread (handler on a worker), and one with a worker in flight
   * that keeps using its request after the server is gone. */
  vigil_config_t cfg;
  config(&cfg);
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "start");
  tc_client_t idle, midhead, body, busy;
  REQUIRE(tc_connect(&idle, port) == 0 && tc_connect(&midhead, port) == 0 &&
          tc_connect(&body, port) == 0 && tc_connect(&busy, port) == 0, "connect");
  CHECK(ok_roundtrip(&idle, "/"), "idle request");
  REQUIRE(tc_send_str(&midhead, "GET / HTTP/1.1\r\nHo") == 0, "send");
  atomic_store(&release_after_server_free, 1);
  int id1 = atomic_load(&next_rec);
  REQUIRE(tc_send_str(&body, "POST /hold HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123") == 0,
          "send");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&recs[id1].started), 2000), "hold 1 not started");
  int id2 = atomic_load(&next_rec);
  REQUIRE(tc_send_str(&busy, "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&recs[id2].started), 2000), "hold 2 not started");
  tc_sleep_ms(20);

  uint64_t t0 = tc_now_ms();
  vigil_server_free(s);
  CHECK(tc_now_ms() - t0 < 2000, "vigil_server_free took %llu ms",
        (unsigned long long)(tc_now_ms() - t0));
  /* the requests were cancelled with "serverShutdown" */
  for (int k = 0; k < 2; k++) {
    int id = k ? id2 : id1;
    CHECK_EQ_INT(atomic_load(&recs[id].cancel_calls), 1);
    CHECK_EQ_INT(atomic_load(&recs[id].cancel_reason), VIGIL_REASON_SERVER_SHUTDOWN);
    CHECK_EQ_INT(atomic_load(&recs[id].done_calls), 1);
  }
  /* now the workers use their requests, after the server is gone */
  atomic_store(&release_after_server_free, 2);
  for (int k = 0; k < 2; k++) {
    int id = k ? id2 : id1;
    CHECK(TC_WAIT_UNTIL(atomic_load(&recs[id].worker_done), 3000), "worker %d stuck", k);
    CHECK(recs[id].head_ok, "head of request %d unreadable after free", k);
    CHECK(recs[id].send_rc == VIGIL_ESHUTDOWN || recs[id].send_rc == VIGIL_ECANCELED,
          "send after free: %d (%s)", recs[id].send_rc, vigil_strerror(recs[id].send_rc));
  }
  tc_join_workers();
  atomic_store(&release_after_server_free, 0);
  CHECK(tc_wait_closed(&idle, 2000), "idle connection left open");
  CHECK(tc_wait_closed(&midhead, 2000), "mid-head connection left open");
  CHECK(tc_wait_closed(&body, 2000), "body connection left open");
  CHECK(tc_wait_closed(&busy, 2000), "busy connection left open");
  tc_close(&idle);
  tc_close(&midhead);
  tc_close(&body);
  tc_close(&busy);
}

static void t_request_outlives_server(void) {
  vigil_config_t cfg;
  config(&cfg);
  vigil_server_t *s;
  kept = NULL;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "start");
  tc_resp_t r;
  REQUIRE(tc_roundtrip(port, "GET /keep HTTP/1.1\r\nHost: t\r\nX-Kept: yes\r\n\r\n", &r) == 0,
          "request");
  tc_resp_free(&r);
  REQUIRE(TC_WAIT_UNTIL(kept != NULL && vigil_request_reason(kept) != VIGIL_REASON_NONE, 2000),
          "no kept request");
  vigil_server_free(s);
  size_t n;
  const char *v = vigil_request_header(kept, "x-kept", &n);
  CHECK(v && n == 3 && memcmp(v, "yes", 3) == 0, "header unreadable");
  const char *m = vigil_request_method(kept, &n);
  CHECK(n == 3 && memcmp(m, "GET", 3) == 0, "method");
  CHECK_EQ_INT(vigil_request_reason(kept), VIGIL_REASON_HANDLER_FINISHED);
  CHECK_EQ_INT(vigil_response_send(kept, 200, NULL, 0, "x", 1), VIGIL_EALREADY);
  CHECK_EQ_INT(vigil_request_body_start(kept), VIGIL_EALREADY);
  vigil_request_release(kept);
  kept = NULL;
}

static void t_free_twice_started(void) {
  /* shutdown + wait + free, the examples' order, with an idle client */
  vigil_config_t cfg;
  config(&cfg);
  cfg.loops = 3;
  vigil_server_t *s;
  atomic_store(&stopped_calls, 0);
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "start");
  tc_client_t c[4];
  for (int i = 0; i < 4; i++) {
    REQUIRE(tc_connect(&c[i], port) == 0, "connect");
    CHECK(ok_roundtrip(&c[i], "/"), "request");
  }
  CHECK_EQ_INT(vigil_server_shutdown(s, 1000), 0);
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  CHECK_EQ_INT(atomic_load(&stopped_calls), 1);
  vigil_server_free(s);
  for (int i = 0; i < 4; i++) {
    CHECK(tc_wait_closed(&c[i], 1000), "connection %d left open", i);
    tc_close(&c[i]);
  }
}

/* --- vigil_server_post and connection states ------------------------- */

static atomic_int task_runs;
static pthread_t task_thread;
static void task(void *ud) {
  task_thread = pthread_self();
  atomic_fetch_add(&task_runs, 1);
}

static vigil_server_t *post_server;
static void t_post_runs(void) {
  vigil_config_t cfg;
  config(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  REQUIRE(vigil_server_new(&post_server, &cfg) == 0, "new");
  CHECK_EQ_INT(vigil_server_post(post_server, 0, task, NULL), VIGIL_EINVAL); /* not started */
  REQUIRE(vigil_server_start(post_server) == 0, "start");
  int port = vigil_server_port(post_server);
  atomic_store(&task_runs, 0);
  CHECK_EQ_INT(vigil_server_post(post_server, 0, task, NULL), 0);
  CHECK_EQ_INT(vigil_server_post(post_server, 1, task, NULL), VIGIL_EINVAL); /* one loop */
  CHECK_EQ_INT(vigil_server_post(post_server, 0, NULL, NULL), VIGIL_EINVAL);
  CHECK(TC_WAIT_UNTIL(atomic_load(&task_runs) == 1, 2000), "task did not run");
  tc_resp_t r;
  REQUIRE(tc_roundtrip(port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0, "request");
  tc_resp_free(&r);
  CHECK(pthread_equal(task_thread, handler_thread), "task not on the loop thread");
  CHECK_EQ_INT(atomic_load(&handler_loop), 0);
  CHECK_EQ_INT(vigil_server_shutdown(post_server, 0), 0);
  CHECK_EQ_INT(vigil_server_wait(post_server), 0);
  CHECK_EQ_INT(vigil_server_post(post_server, 0, task, NULL), VIGIL_ESHUTDOWN);
  CHECK_EQ_INT(atomic_load(&task_runs), 1);
  vigil_server_free(post_server);
}

static vigil_server_t *self_server;
static void on_request_post(vigil_request_t *req, void *ud) {
  atomic_store(&post_flag, 0);
  vigil_server_post(self_server, vigil_request_loop(req), post_from_loop, NULL);
  atomic_store(&post_flag, 1);
  handler_thread = pthread_self();
  vigil_response_send(req, 200, NULL, 0, "ok", 2);
  vigil_request_finish(req);
}

static void t_post_inside_callback(void) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request_post;
  int port = tc_server_start(&self_server, &cfg);
  REQUIRE(port > 0, "start");
  atomic_store(&post_seen_flag, -1);
  tc_resp_t r;
  REQUIRE(tc_roundtrip(port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0, "request");
  tc_resp_free(&r);
  CHECK(TC_WAIT_UNTIL(atomic_load(&post_seen_flag) != -1, 2000), "posted task did not run");
  CHECK(atomic_load(&post_seen_flag) == 1, "the task ran inside the callback, not after it");
  CHECK(atomic_load(&post_on_handler_thread) == 1, "the task ran on another thread");
  vigil_server_free(self_server);
}

#define MAXSTATES 64
static atomic_int nstates;
static int states[MAXSTATES];
static void on_conn_state(uint64_t id, vigil_conn_state_t st, void *ud) {
  int i = atomic_fetch_add(&nstates, 1);
  if (i < MAXSTATES) states[i] = (int)st;
}

static void t_conn_states(void) {
  vigil_config_t cfg;
  config(&cfg);
  cfg.on_conn_state = on_conn_state;
  atomic_store(&nstates, 0);
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  CHECK(ok_roundtrip(&c, "/"), "request 1");
  vigil_stats_t st;
  CHECK(TC_WAIT_UNTIL((vigil_server_stats(s, &st), st.connections_idle == 1), 2000),
        "connections_idle %llu", (unsigned long long)st.connections_idle);
  CHECK(ok_roundtrip(&c, "/"), "request 2");
  tc_close(&c);
  CHECK(TC_WAIT_UNTIL((vigil_server_stats(s, &st), st.connections_open == 0), 2000), "not closed");
  vigil_server_stats(s, &st);
  CHECK_EQ_INT(st.connections_idle, 0);
  int n = atomic_load(&nstates);
  char seq[256] = "";
  static const char *names[] = {"NEW", "ACTIVE", "IDLE", "HIJACKED", "CLOSED"};
  for (int i = 0; i < n && i < MAXSTATES; i++) {
    strcat(seq, states[i] >= 0 && states[i] <= 4 ? names[states[i]] : "?");
    strcat(seq, " ");
  }
  CHECK(strcmp(seq, "NEW ACTIVE IDLE ACTIVE IDLE CLOSED ") == 0, "states: %s", seq);
  vigil_server_free(s);
}

/* --- timeouts ------------------------------------------------------------ */

static void t_header_timeout(void) {
  vigil_config_t cfg;
  config(&cfg);
  cfg.header_timeout_ms = 150;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  uint64_t t0 = tc_now_ms();
  REQUIRE(tc_send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n") == 0, "send");
  tc_resp_t r;
  CHECK(tc_read_response(&c, &r, 3000) == 0 && r.status == 408, "no 408 (status %d)", r.status);
  uint64_t dt = tc_now_ms() - t0;
  CHECK(dt >= 140 && dt < 2000, "408 after %llu ms (timeout 150)", (unsigned long long)dt);
  CHECK(tc_resp_has(&r, "Connection", "close"), "no Connection: close");
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 2000), "connection left open");
  tc_close(&c);
  vigil_server_free(s);
}

static void t_handler_timeout(void) {
  vigil_config_t cfg;
  config(&cfg);
  cfg.handler_timeout_ms = 150;
  vigil_server_t *s;
  int port = tc_server_start(&s, &cfg);
  REQUIRE(port > 0, "start");
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /hold?ms=10000 HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  tc_resp_t r;
  CHECK(tc_read_response(&c, &r, 3000) == 0 && r.status == 503, "no 503 (status %d)", r.status);
  tc_resp_free(&r);
  CHECK(TC_WAIT_UNTIL(atomic_load(&recs[id].worker_done), 3000), "worker not cancelled");
  CHECK_EQ_INT(atomic_load(&recs[id].cancel_reason), VIGIL_REASON_TIMED_OUT);
  CHECK(recs[id].send_rc == VIGIL_ECANCELED, "send after the timeout: %d", recs[id].send_rc);
  tc_join_workers();
  tc_close(&c);
  CHECK(tc_stats_settled(s, 2000), "stats did not settle");
  vigil_server_free(s);
}

int main(void) {
  tc_init();
  RUN(t_basics, "version, strerror, reason names");
  RUN(t_bad_config, "bad configurations refused; an older, smaller config struct accepted");
  RUN(t_port_in_use, "start on a port in use fails with EADDRINUSE, leaves nothing running");
  RUN(t_start_twice, "start twice: VIGIL_EALREADY; shutdown and wait idempotent");
  RUN(t_counters, "stats: accepted/total/cancelled counted, open/live back to 0");
  RUN(t_graceful, "graceful shutdown (shutdown_idle_ms 0): idle closed at once, in-flight answered with Connection: close");
  RUN(t_grace_runs_out, "grace period over: request cancelled with VIGIL_REASON_SERVER_SHUTDOWN");
  RUN(t_free_with_connections, "vigil_server_free with idle, mid-head, unread-body and busy connections");
  RUN(t_request_outlives_server, "a retained request stays readable after vigil_server_free");
  RUN(t_free_twice_started, "three loops: shutdown, wait, on_stopped once, free");
  RUN(t_post_runs, "vigil_server_post runs on the loop thread; EINVAL / ESHUTDOWN as documented");
  RUN(t_post_inside_callback, "vigil_server_post from a loop callback runs after it, same thread");
  RUN(t_conn_states, "on_conn_state: NEW ACTIVE IDLE ACTIVE IDLE CLOSED; connections_idle gauge");
  RUN(t_header_timeout, "header_timeout_ms: an unfinished head gets 408 + close");
  RUN(t_handler_timeout, "handler_timeout_ms: 503, the worker cancelled with VIGIL_REASON_TIMED_OUT");
  return tc_summary();
}
