/*
 * test_worker.c - requests handed to worker threads, and how they end:
 * answered from the worker, cancelled by a client RST / FIN / half-close,
 * "handlerFinished" on normal completion, the response calls after a
 * cancellation, double sends, and header validation.
 */
#include <vigil.h>

#include "tc.h"

/* ------------------------------------------------------------------ */
/* what each request saw, by request number (set_data holds number + 1) */

#define MAXREC 512

typedef struct {
  atomic_int started;
  atomic_int cancel_calls;       /* on_cancel callbacks run */
  atomic_int cancel_reason;
  atomic_int cancel_on_loop;     /* the callback ran on the loop thread */
  atomic_int done_calls;         /* on_request_done */
  atomic_int done_reason;
  atomic_int worker_done;        /* the worker made all its calls */
  atomic_int worker_reason;      /* vigil_request_reason seen by the worker */
  atomic_int off_loop;           /* the worker is not the loop thread */
  atomic_int write_cb_calls;
  atomic_int write_cb_errors;    /* ... with a negative status */
  atomic_int write_cb_seq;       /* event number of the last write callback */
  atomic_int done_seq;           /* event number of on_request_done */
  atomic_int finish_in_done;     /* on_done gives the handler reference back */
  double t_cancel_us;            /* when on_cancel ran (cancellations) */
  double t_woke_us;              /* when the worker woke up */
  /* return codes the worker or handler got */
  int rc[20];
} rec_t;

static rec_t recs[MAXREC];
static atomic_int next_rec;
static atomic_int event_seq; /* orders callbacks across requests */
static pthread_t loop_thread;
static atomic_int loop_thread_known;

static int rec_of(const vigil_request_t *req) {
  return (int)(intptr_t)vigil_request_get_data(req) - 1;
}

static void on_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  int id = rec_of(req);
  if (id < 0) return;
  atomic_store(&recs[id].done_reason, (int)reason);
  atomic_store(&recs[id].done_seq, atomic_fetch_add(&event_seq, 1) + 1);
  atomic_fetch_add(&recs[id].done_calls, 1);
  if (atomic_load(&recs[id].finish_in_done)) vigil_request_finish(req);
}

/* ------------------------------------------------------------------ */
/* workers */

/* tc_job_t (tc.h): references from the worker and the cancel callback. */
static void on_cancel(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  tc_job_t *j = ud;
  rec_t *r = &recs[j->id];
  r->t_cancel_us = tc_now_us();
  atomic_store(&r->cancel_on_loop, pthread_equal(pthread_self(), loop_thread));
  atomic_store(&r->cancel_reason, (int)reason);
  atomic_fetch_add(&r->cancel_calls, 1);
  if (reason != VIGIL_REASON_HANDLER_FINISHED) tc_job_cancel(j);
  tc_job_unref(j);
}

static void count_write_cb(vigil_request_t *req, int status, void *ud) {
  rec_t *r = &recs[(int)(intptr_t)ud];
  atomic_store(&r->write_cb_seq, atomic_fetch_add(&event_seq, 1) + 1);
  if (status < 0) atomic_fetch_add(&r->write_cb_errors, 1);
  atomic_fetch_add(&r->write_cb_calls, 1);
}

static void *worker(void *arg) {
  tc_job_t *j = arg;
  rec_t *r = &recs[j->id];
  vigil_request_t *req = j->req;
  atomic_store(&r->off_loop, !pthread_equal(pthread_self(), loop_thread));

  if (strcmp(j->mode, "twice") == 0) {
    r->rc[0] = vigil_response_send(req, 200, NULL, 0, "first", 5);
    r->rc[1] = vigil_response_send(req, 200, NULL, 0, "second", 6);
    r->rc[2] = vigil_response_start(req, 200, NULL, 0, -1);
    r->rc[3] = vigil_response_end(req);
    vigil_request_finish(req);
  } else if (strcmp(j->mode, "late") == 0) {
    /* Answer, finish, and register a cancel callback once the request has
     * ended: it must run at once, on this thread. */
    vigil_request_retain(req);
    r->rc[0] = vigil_response_send(req, 200, NULL, 0, "late", 4);
    vigil_request_finish(req);
    int ended = TC_WAIT_UNTIL(vigil_request_reason(req) != VIGIL_REASON_NONE, 5000);
    r->rc[1] = ended;
    atomic_store(&r->cancel_on_loop, -1);
    int before = atomic_load(&r->cancel_calls);
    tc_job_t *j2 = tc_job_new(1, j->id, NULL, 0);
    r->rc[2] = vigil_request_on_cancel(req, on_cancel, j2);
    /* ran synchronously: the count moved before on_cancel returned */
    r->rc[3] = atomic_load(&r->cancel_calls) - before;
    r->rc[4] = atomic_load(&r->cancel_on_loop); /* 0: ran on this thread */
    r->rc[5] = atomic_load(&r->cancel_reason);
    vigil_request_release(req);
  } else {
    /* "work": wait ms for the work, or less if cancelled */
    int cancelled = tc_job_wait(j);
    r->t_woke_us = tc_now_us();
    if (cancelled) {
      atomic_store(&r->worker_reason, (int)vigil_request_reason(req));
      r->rc[0] = vigil_response_send(req, 200, NULL, 0, "too late", 8);
      r->rc[1] = vigil_response_start(req, 200, NULL, 0, -1);
      r->rc[2] = vigil_response_write(req, "x", 1, count_write_cb, (void *)(intptr_t)j->id);
      r->rc[3] = vigil_response_end(req);
      r->rc[4] = vigil_request_body_start(req);
      r->rc[5] = vigil_request_body_pause(req);
    } else {
      char body[64];
      int n = snprintf(body, sizeof body, "worked %u", j->ms);
      r->rc[0] = vigil_response_send(req, 200, NULL, 0, body, (size_t)n);
    }
    vigil_request_finish(req);
  }
  atomic_store(&r->worker_done, 1);
  tc_job_unref(j);
  return NULL;
}

static unsigned query_num(const char *t, size_t len, const char *key, unsigned dflt) {
  char buf[256];
  if (len >= sizeof buf) return dflt;
  memcpy(buf, t, len);
  buf[len] = '\0';
  const char *p = strstr(buf, key);
  return p ? (unsigned)strtoul(p + strlen(key), NULL, 10) : dflt;
}

static void spawn(vigil_request_t *req, int id, const char *mode, unsigned ms) {
  int late = strcmp(mode, "late") == 0; /* no callback: the worker's reference only */
  tc_job_t *j = tc_job_new(late ? 1 : 2, id, req, ms);
  j->mode = mode;
  if (!late) vigil_request_on_cancel(req, on_cancel, j);
  tc_spawn(worker, j);
}

/* ------------------------------------------------------------------ */
/* the handler */

static void on_request(vigil_request_t *req, void *ud) {
  if (!atomic_load(&loop_thread_known)) {
    loop_thread = pthread_self();
    atomic_store(&loop_thread_known, 1);
  }
  int id = atomic_fetch_add(&next_rec, 1);
  if (id >= MAXREC) abort();
  vigil_request_set_data(req, (void *)(intptr_t)(id + 1));
  rec_t *r = &recs[id];
  atomic_store(&r->started, 1);
  size_t tl;
  const char *t = vigil_request_target(req, &tl);

  if (tc_starts(t, tl, "/work")) {
    spawn(req, id, "work", query_num(t, tl, "ms=", 10));
  } else if (tc_starts(t, tl, "/twice-worker")) {
    spawn(req, id, "twice", 0);
  } else if (tc_starts(t, tl, "/late")) {
    spawn(req, id, "late", 0);
  } else if (tc_starts(t, tl, "/twice")) {
    /* on the loop thread, inline */
    r->rc[0] = vigil_response_send(req, 200, NULL, 0, "first", 5);
    r->rc[1] = vigil_response_send(req, 200, NULL, 0, "second", 6);
    r->rc[2] = vigil_response_start(req, 200, NULL, 0, -1);
    r->rc[3] = vigil_response_write(req, "x", 1, count_write_cb, (void *)(intptr_t)id);
    r->rc[4] = vigil_response_end(req);
    vigil_request_retain(req); /* to call into it after finish */
    vigil_request_finish(req);
    r->rc[5] = vigil_response_send(req, 200, NULL, 0, "third", 5);
    r->rc[6] = vigil_response_end(req);
    vigil_request_release(req);
    atomic_store(&r->worker_done, 1);
  } else if (tc_starts(t, tl, "/big")) {
    /* 8 MiB streamed at once to a client that does not read: most write
     * completions stay pending (backpressure) */
    static char chunk[1 << 20];
    r->rc[0] = vigil_response_start(req, 200, NULL, 0, -1);
    for (int i = 0; i < 8; i++)
      r->rc[1] |= vigil_response_write(req, chunk, sizeof chunk, count_write_cb,
                                       (void *)(intptr_t)id);
    atomic_store(&r->finish_in_done, 1); /* hold the request until it ends */
    atomic_store(&r->worker_done, 1);
  } else if (tc_starts(t, tl, "/badhdr")) {
    int i = 0;
    vigil_header_t h;
#define BAD(n, nl, v, vl) \
    (h = (vigil_header_t){n, nl, v, vl}, \
     r->rc[i++] = vigil_response_start(req, 200, &h, 1, -1), \
     r->rc[i++] = vigil_response_send(req, 200, &h, 1, "x", 1))
    BAD("X-A", 3, "a\rb", 3);                       /* CR */
    BAD("X-A", 3, "a\nb", 3);                       /* LF */
    BAD("X-A", 3, "ok\r\nInjected: yes", 17);       /* response splitting */
    BAD("X-A", 3, "a\0b", 3);                       /* NUL */
    BAD("X A", 3, "v", 1);                          /* space in the name */
    BAD("X:A", 3, "v", 1);                          /* colon in the name */
    BAD("X\r\n", 3, "v", 1);                        /* CRLF in the name */
    BAD("", 0, "v", 1);                             /* empty name */
    /* the rest, checked together as rc[16] */
    int all = 1;
    h = (vigil_header_t){"X-A", 3, NULL, 2};        /* NULL value, length 2 */
    all &= vigil_response_start(req, 200, &h, 1, -1) == VIGIL_EINVAL;
    all &= vigil_response_start(req, 99, NULL, 0, -1) == VIGIL_EINVAL;
    all &= vigil_response_start(req, 1000, NULL, 0, -1) == VIGIL_EINVAL;
    all &= vigil_response_start(req, 200, NULL, 0, -2) == VIGIL_EINVAL;
    all &= vigil_response_send(req, 200, NULL, 0, NULL, 3) == VIGIL_EINVAL;
    all &= vigil_response_write(req, "x", 1, NULL, NULL) == VIGIL_EBUSY; /* not started */
    all &= vigil_response_end(req) == VIGIL_EBUSY;
    r->rc[16] = all;
    /* After all those refusals the response can still be made. */
    vigil_header_t ok[] = {{"X-Ok", 4, "yes", 3}, {"Content-Type", 12, "text/plain", 10}};
    int a = vigil_response_start(req, 200, ok, 2, 4);
    int b = vigil_response_write(req, "good", 4, NULL, NULL);
    int c = vigil_response_end(req);
    r->rc[17] = a || b || c;
    vigil_request_finish(req);
    atomic_store(&r->worker_done, 1);
  } else {
    vigil_response_send(req, 200, NULL, 0, "hi", 2);
    vigil_request_finish(req);
    atomic_store(&r->worker_done, 1);
  }
}

static vigil_server_t *server;
static int port;

static int start_server(vigil_half_close_t hc) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.on_request_done = on_done;
  cfg.half_close = hc;
  atomic_store(&loop_thread_known, 0);
  port = tc_server_start(&server, &cfg);
  return port;
}

/* ------------------------------------------------------------------ */
/* tests */

static void t_worker_answers(void) {
  int id = atomic_load(&next_rec);
  tc_resp_t r;
  REQUIRE(tc_roundtrip(port, "GET /work?ms=30 HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0,
          "no response");
  CHECK_EQ_INT(r.status, 200);
  CHECK(r.body.len == 9 && memcmp(r.body.p, "worked 30", 9) == 0, "body '%s'",
        r.body.p ? r.body.p : "");
  tc_resp_free(&r);
  rec_t *x = &recs[id];
  CHECK(TC_WAIT_UNTIL(atomic_load(&x->worker_done), 5000), "worker did not finish");
  CHECK(atomic_load(&x->off_loop) == 1, "the worker ran on the loop thread?");
  CHECK_EQ_INT(x->rc[0], 0);
}

static void t_handler_finished(void) {
  int id = atomic_load(&next_rec);
  tc_resp_t r;
  REQUIRE(tc_roundtrip(port, "GET /work?ms=5 HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0,
          "no response");
  tc_resp_free(&r);
  rec_t *x = &recs[id];
  CHECK(TC_WAIT_UNTIL(atomic_load(&x->cancel_calls) == 1 && atomic_load(&x->done_calls) == 1, 5000),
        "cancel callback / on_request_done not called");
  CHECK_EQ_INT(atomic_load(&x->cancel_reason), VIGIL_REASON_HANDLER_FINISHED);
  CHECK_EQ_INT(atomic_load(&x->done_reason), VIGIL_REASON_HANDLER_FINISHED);
  CHECK(atomic_load(&x->cancel_on_loop) == 1, "cancel callback not on the loop thread");
  tc_sleep_ms(20);
  CHECK_EQ_INT(atomic_load(&x->cancel_calls), 1);
  CHECK_EQ_INT(atomic_load(&x->done_calls), 1);
}

static void t_late_on_cancel(void) {
  int id = atomic_load(&next_rec);
  tc_resp_t r;
  REQUIRE(tc_roundtrip(port, "GET /late HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0, "no response");
  CHECK(r.status == 200 && r.body.len == 4, "status %d", r.status);
  tc_resp_free(&r);
  rec_t *x = &recs[id];
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&x->worker_done), 5000), "worker did not finish");
  CHECK(x->rc[1] == 1, "the request never ended after finish");
  CHECK_EQ_INT(x->rc[2], 0);
  CHECK(x->rc[3] == 1, "callback did not run synchronously (%d calls)", x->rc[3]);
  CHECK(x->rc[4] == 0, "callback did not run on the calling thread");
  CHECK_EQ_INT(x->rc[5], VIGIL_REASON_HANDLER_FINISHED);
}

/* Start a long job, end the connection with `how`, expect `reason`. */
static void cancel_case(const char *how, vigil_reason_t want) {
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /work?ms=10000 HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  rec_t *x = &recs[id];
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&x->started), 5000), "handler not called");
  tc_sleep_ms(20); /* the worker is waiting */
  double t0 = tc_now_us();
  if (strcmp(how, "rst") == 0) {
    tc_close_rst(&c);
  } else if (strcmp(how, "fin") == 0) {
    tc_close(&c);
  } else { /* half-close: shutdown(SHUT_WR), keep reading */
    shutdown(c.fd, SHUT_WR);
  }
  CHECK(TC_WAIT_UNTIL(atomic_load(&x->worker_done), 3000),
        "worker not cancelled (cancel calls %d)", atomic_load(&x->cancel_calls));
  CHECK_EQ_INT(atomic_load(&x->cancel_reason), want);
  CHECK_EQ_INT(atomic_load(&x->worker_reason), want);
  CHECK(TC_WAIT_UNTIL(atomic_load(&x->done_calls) == 1, 2000), "on_request_done not called");
  CHECK_EQ_INT(atomic_load(&x->done_reason), want);
  CHECK(atomic_load(&x->cancel_on_loop) == 1, "cancel callback not on the loop thread");
  if (atomic_load(&x->worker_done))
    tc_note("%s: cancel callback %.0f us after the close, worker awake %.0f us after",
           how, x->t_cancel_us - t0, x->t_woke_us - t0);
  CHECK(x->t_cancel_us - t0 < 1e6, "cancellation not prompt");
  if (strcmp(how, "half") == 0) {
    /* The server closes without an answer. */
    CHECK(tc_wait_closed(&c, 3000), "server kept the half-closed connection");
    CHECK(c.in.len == 0, "got bytes: %.40s", c.in.p);
    tc_close(&c);
  }
  tc_sleep_ms(20);
  CHECK_EQ_INT(atomic_load(&x->cancel_calls), 1);
}

static void t_cancel_rst(void) { cancel_case("rst", VIGIL_REASON_RESET); }
static void t_cancel_fin(void) { cancel_case("fin", VIGIL_REASON_CLIENT_CLOSED); }
static void t_cancel_half(void) { cancel_case("half", VIGIL_REASON_CLIENT_CLOSED); }

/* The response calls the cancelled workers above made. */
static void t_calls_after_cancel(void) {
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /work?ms=10000 HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  rec_t *x = &recs[id];
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&x->started), 5000), "handler not called");
  tc_close_rst(&c);
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&x->worker_done), 3000), "worker not cancelled");
  const char *names[] = {"send", "start", "write", "end", "body_start", "body_pause"};
  for (int i = 0; i < 6; i++)
    CHECK(x->rc[i] == VIGIL_ECANCELED, "vigil_%s after cancel: %d (%s), expected VIGIL_ECANCELED",
          names[i], x->rc[i], vigil_strerror(x->rc[i]));
  tc_sleep_ms(20);
  CHECK(atomic_load(&x->write_cb_calls) == 0, "write callback ran although write failed");
}

static void check_twice(rec_t *x, int inline_) {
  CHECK_EQ_INT(x->rc[0], 0);
  CHECK_EQ_INT(x->rc[1], VIGIL_EALREADY);
  CHECK_EQ_INT(x->rc[2], VIGIL_EALREADY);
  CHECK_EQ_INT(x->rc[3], VIGIL_EALREADY);
  if (inline_) {
    CHECK_EQ_INT(x->rc[4], VIGIL_EALREADY);
    CHECK_EQ_INT(x->rc[5], VIGIL_EALREADY); /* after finish */
    CHECK_EQ_INT(x->rc[6], VIGIL_EALREADY);
  }
}

static void twice_case(const char *path, int inline_) {
  int id = atomic_load(&next_rec);
  char req[128];
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, req) == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK(r.status == 200 && r.body.len == 5 && memcmp(r.body.p, "first", 5) == 0,
        "status %d body '%s'", r.status, r.body.p ? r.body.p : "");
  tc_resp_free(&r);
  /* nothing else was written: the connection still serves */
  REQUIRE(tc_send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send 2");
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no second response");
  CHECK(r.status == 200 && r.body.len == 2, "second response: status %d, %zu bytes", r.status,
        r.body.len);
  tc_resp_free(&r);
  tc_close(&c);
  rec_t *x = &recs[id];
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&x->worker_done), 5000), "handler did not finish");
  check_twice(x, inline_);
  CHECK(atomic_load(&x->write_cb_calls) == 0, "write callback ran although write failed");
}

static void t_send_twice_inline(void) { twice_case("/twice", 1); }
static void t_send_twice_worker(void) { twice_case("/twice-worker", 0); }

static void t_bad_headers(void) {
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /badhdr HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response");
  CHECK_EQ_INT(r.status, 200);
  CHECK(tc_resp_has(&r, "X-Ok", "yes"), "X-Ok missing: %s", r.head);
  CHECK(!tc_resp_header(&r, "Injected", NULL, 0), "header injection went through: %s", r.head);
  CHECK(!tc_resp_header(&r, "X-A", NULL, 0), "a refused header was sent: %s", r.head);
  CHECK(r.body.len == 4 && memcmp(r.body.p, "good", 4) == 0, "body '%s'", r.body.p ? r.body.p : "");
  tc_resp_free(&r);
  CHECK(tc_still_open(&c, 50), "connection closed");
  tc_close(&c);
  rec_t *x = &recs[id];
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&x->worker_done), 5000), "handler did not finish");
  for (int i = 0; i < 16; i++)
    CHECK(x->rc[i] == VIGIL_EINVAL, "case %d (%s): %d (%s), expected VIGIL_EINVAL", i / 2,
          i % 2 ? "send" : "start", x->rc[i], vigil_strerror(x->rc[i]));
  CHECK(x->rc[16] == 1, "NULL value / bad status / bad length / write or end before start "
                        "not refused as documented");
  CHECK(x->rc[17] == 0, "a valid response after the refusals failed");
}

static void t_write_callbacks_on_reset(void) {
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  int small = 4096;
  setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  REQUIRE(tc_send_str(&c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  rec_t *x = &recs[id];
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&x->worker_done), 3000), "handler not called");
  tc_sleep_ms(100);
  int before = atomic_load(&x->write_cb_calls);
  CHECK(before < 8, "all 8 MiB taken without the client reading? (%d completions)", before);
  tc_close_rst(&c);
  CHECK(TC_WAIT_UNTIL(atomic_load(&x->write_cb_calls) == 8 && atomic_load(&x->done_calls) == 1,
                      3000),
        "write callbacks %d of 8, on_request_done %d", atomic_load(&x->write_cb_calls),
        atomic_load(&x->done_calls));
  CHECK_EQ_INT(x->rc[0], 0);
  CHECK_EQ_INT(x->rc[1], 0);
  CHECK_EQ_INT(atomic_load(&x->write_cb_errors), 8 - before);
  CHECK_EQ_INT(atomic_load(&x->done_reason), VIGIL_REASON_RESET);
  tc_sleep_ms(20);
  CHECK_EQ_INT(atomic_load(&x->write_cb_calls), 8); /* exactly once each */
  /* vigil.h: on_request_done "is the last callback for req" */
  CHECK(atomic_load(&x->done_seq) > atomic_load(&x->write_cb_seq),
        "%d write callback(s) (VIGIL_ECANCELED) ran after on_request_done, documented as the "
        "last callback (conn.c vigil__conn_abort: request_end before fail_waiters)",
        8 - before);
}

static void t_concurrent_workers(void) {
  enum { N = 24 };
  tc_client_t c[N];
  int ms[N];
  for (int i = 0; i < N; i++) {
    ms[i] = (i * 37) % 60;
    char req[128];
    snprintf(req, sizeof req, "GET /work?ms=%d HTTP/1.1\r\nHost: t\r\n\r\n", ms[i]);
    REQUIRE(tc_connect(&c[i], port) == 0, "connect %d", i);
    REQUIRE(tc_send_str(&c[i], req) == 0, "send %d", i);
  }
  int good = 0;
  for (int i = 0; i < N; i++) {
    tc_resp_t r;
    char want[32];
    snprintf(want, sizeof want, "worked %d", ms[i]);
    if (tc_read_response(&c[i], &r, 5000) == 0 && r.status == 200 &&
        r.body.len == strlen(want) && memcmp(r.body.p, want, r.body.len) == 0)
      good++;
    else
      tc_note("client %d: no or bad response", i);
    tc_resp_free(&r);
    tc_close(&c[i]);
  }
  CHECK_EQ_INT(good, N);
}

static void t_half_close_finish(void) {
  /* A server with half_close = FINISH: a FIN while the worker runs does not
   * cancel; the answer is sent, then the connection closes. */
  tc_join_workers();
  vigil_server_free(server);
  REQUIRE(start_server(VIGIL_HALF_CLOSE_FINISH) > 0, "server");
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /work?ms=100 HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&recs[id].started), 5000), "handler not called");
  shutdown(c.fd, SHUT_WR);
  tc_resp_t r;
  CHECK(tc_read_response(&c, &r, 5000) == 0, "no response after the half-close");
  CHECK(r.status == 200 && r.body.len == 10, "status %d, %zu bytes", r.status, r.body.len);
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 3000), "connection not closed after the answer");
  tc_close(&c);
  CHECK(TC_WAIT_UNTIL(atomic_load(&recs[id].done_calls) == 1, 2000), "no on_request_done");
  CHECK_EQ_INT(atomic_load(&recs[id].cancel_reason), VIGIL_REASON_HANDLER_FINISHED);
  CHECK_EQ_INT(atomic_load(&recs[id].done_reason), VIGIL_REASON_HANDLER_FINISHED);
}

static void t_stats_settle(void) {
  tc_join_workers();
  CHECK(tc_stats_settled(server, 3000), "stats did not settle");
  vigil_stats_t st;
  vigil_server_stats(server, &st);
  CHECK(st.requests_total >= 1, "requests_total %llu", (unsigned long long)st.requests_total);
}

int main(void) {
  tc_init();
  if (start_server(VIGIL_HALF_CLOSE_CANCEL) <= 0) {
    printf("not ok 1 - server start\n0 passed, 1 failed\n");
    return 1;
  }
  RUN(t_worker_answers, "a request answered from a worker thread");
  RUN(t_handler_finished, "normal completion: on_cancel and on_request_done get VIGIL_REASON_HANDLER_FINISHED");
  RUN(t_late_on_cancel, "vigil_request_on_cancel after the end runs at once on the calling thread");
  RUN(t_cancel_rst, "client RST cancels the worker with VIGIL_REASON_RESET");
  RUN(t_cancel_fin, "client close (FIN) cancels the worker with VIGIL_REASON_CLIENT_CLOSED");
  RUN(t_cancel_half, "client half-close (shutdown SHUT_WR) cancels by default");
  RUN(t_calls_after_cancel, "vigil_response_*/body calls after cancellation return VIGIL_ECANCELED");
  RUN(t_send_twice_inline, "vigil_response_send twice returns VIGIL_EALREADY (loop thread)");
  RUN(t_send_twice_worker, "vigil_response_send twice returns VIGIL_EALREADY (worker thread)");
  RUN(t_bad_headers, "CR/LF/NUL in header values and bad names give VIGIL_EINVAL");
  RUN(t_write_callbacks_on_reset, "pending write callbacks fire once with VIGIL_ECANCELED on RST, before on_request_done");
  RUN(t_concurrent_workers, "24 concurrent requests answered from worker threads");
  RUN(t_stats_settle, "stats: requests_live and connections_open back to 0");
  RUN(t_half_close_finish, "half_close FINISH: a FIN does not cancel, the answer is sent");
  RUN(t_stats_settle, "stats back to 0 (half_close FINISH server)");
  tc_join_workers();
  vigil_server_free(server);
  return tc_summary();
}
