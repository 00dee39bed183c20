/*
 * test_hijack.c - hijacked connections (vigil_request_hijack): a line echo
 * behind an Upgrade, bytes sent right behind the head handed over, closing
 * by vigil_request_finish or vigil_hijack_close + finish, the end of the
 * connection still reported (RST, FIN) through the reason and the cancel
 * callbacks, the refusals (after a response, twice, mid-body), and the
 * counters.
 */
#include <vigil.h>

#include "tc.h"

typedef struct {
  char line[256];
  size_t len;
  int finished;
  int use_hijack_close;   /* "/lines?close": vigil_hijack_close, then finish */
  int id;
  int in_body;            /* inside on_body: on_done must not free */
  int done;               /* on_done ran */
} session_t;

#define MAXREC 64
typedef struct {
  atomic_int started;
  atomic_int done_calls;
  atomic_int done_reason;
  atomic_int cancel_calls;
  atomic_int cancel_reason;
  atomic_int ended;        /* on_body end=1 */
  int rc[8];
  atomic_int rc_ready;
} rec_t;
static rec_t recs[MAXREC];
static atomic_int next_rec;

static const char SWITCH[] =
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: lines\r\n\r\n";

static void on_cancel(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  rec_t *r = &recs[(int)(intptr_t)ud];
  atomic_store(&r->cancel_reason, (int)reason);
  atomic_fetch_add(&r->cancel_calls, 1);
}

static void end_session(vigil_request_t *req, session_t *s) {
  if (s->finished) return;
  s->finished = 1;
  if (s->use_hijack_close) vigil_hijack_close(req);
  vigil_request_finish(req);
}

static void on_request(vigil_request_t *req, void *ud) {
  int id = atomic_fetch_add(&next_rec, 1);
  if (id >= MAXREC) abort();
  rec_t *r = &recs[id];
  atomic_store(&r->started, 1);
  size_t tl;
  const char *t = vigil_request_target(req, &tl);
  if (tl >= 6 && memcmp(t, "/lines", 6) == 0) {
    session_t *s = calloc(1, sizeof *s);
    s->id = id;
    s->use_hijack_close = tl > 6 && strstr(t, "close") != NULL;
    vigil_request_on_cancel(req, on_cancel, (void *)(intptr_t)id);
    r->rc[0] = vigil_request_hijack(req);
    r->rc[1] = vigil_request_hijack(req);                     /* twice */
    r->rc[2] = vigil_response_send(req, 200, NULL, 0, "x", 1); /* no HTTP any more */
    vigil_request_set_data(req, s);
    vigil_hijack_write(req, SWITCH, sizeof SWITCH - 1, NULL, NULL);
    vigil_request_body_start(req);
    atomic_store(&r->rc_ready, 1);
  } else if (tl >= 7 && memcmp(t, "/answer", 7) == 0) {
    /* answer first, then try to hijack */
    vigil_request_on_cancel(req, on_cancel, (void *)(intptr_t)id);
    r->rc[0] = vigil_hijack_write(req, "x", 1, NULL, NULL); /* not hijacked */
    r->rc[1] = vigil_hijack_close(req);
    vigil_response_send(req, 200, NULL, 0, "answered", 8);
    r->rc[2] = vigil_request_hijack(req);
    vigil_request_finish(req);
    atomic_store(&r->rc_ready, 1);
  } else if (tl >= 8 && memcmp(t, "/midbody", 8) == 0) {
    /* reading the body, then a hijack: refused (two framings mixed) */
    session_t *s = calloc(1, sizeof *s);
    s->id = id;
    s->finished = -1; /* marks "a body reader" for on_body */
    vigil_request_set_data(req, s);
    vigil_request_body_start(req);
    r->rc[0] = vigil_request_hijack(req);
    atomic_store(&r->rc_ready, 1);
  } else {
    vigil_response_send(req, 200, NULL, 0, "plain", 5);
    vigil_request_finish(req);
  }
}

static void on_body_session(vigil_request_t *req, session_t *s, const char *data, size_t len,
                            int end);

/* vigil_request_finish inside on_body runs on_request_done right away, in
 * the middle of on_body: the session is freed by whichever runs last. */
static void on_body(vigil_request_t *req, const char *data, size_t len, int end, void *ud) {
  session_t *s = vigil_request_get_data(req);
  if (s == NULL) return;
  s->in_body = 1;
  on_body_session(req, s, data, len, end);
  s->in_body = 0;
  if (s->done) free(s);
}

static void on_body_session(vigil_request_t *req, session_t *s, const char *data, size_t len,
                            int end) {
  if (s->finished == -1) { /* /midbody */
    if (end) {
      vigil_response_send(req, 200, NULL, 0, "read", 4);
      s->finished = 1;
      vigil_request_finish(req);
    }
    return;
  }
  if (s->finished) return;
  for (size_t i = 0; i < len && !s->finished; i++) {
    if (data[i] != '\n') {
      if (s->len < sizeof s->line) s->line[s->len++] = data[i];
      continue;
    }
    if (s->len == 4 && memcmp(s->line, "quit", 4) == 0) {
      vigil_hijack_write(req, "bye\n", 4, NULL, NULL);
      end_session(req, s);
    } else {
      char out[300];
      int n = snprintf(out, sizeof out, "> %.*s\n", (int)s->len, s->line);
      vigil_hijack_write(req, out, (size_t)n, NULL, NULL);
    }
    s->len = 0;
  }
  if (end && !s->finished) {
    atomic_store(&recs[s->id].ended, 1);
    end_session(req, s);
  }
}

static void on_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  session_t *s = vigil_request_get_data(req);
  int id = -1;
  if (s) id = s->id;
  if (id >= 0) {
    atomic_store(&recs[id].done_reason, (int)reason);
    atomic_fetch_add(&recs[id].done_calls, 1);
  }
  if (s) {
    if (!s->finished || s->finished == -1) vigil_request_finish(req);
    vigil_request_set_data(req, NULL);
    s->done = 1;
    if (!s->in_body) free(s);
  }
}

static vigil_server_t *server;
static int port;

static int upgrade(tc_client_t *c, const char *path, const char *extra) {
  char req[512];
  snprintf(req, sizeof req,
           "GET %s HTTP/1.1\r\nHost: t\r\nUpgrade: lines\r\nConnection: Upgrade\r\n\r\n%s", path,
           extra);
  if (tc_connect(c, port) != 0 || tc_send_str(c, req) != 0) return -1;
  tc_resp_t r;
  int ok = tc_read_response_ex(c, &r, 3000, 1, 1) == 0 && r.status == 101;
  tc_resp_free(&r);
  return ok ? 0 : -1;
}

/* Read until `in` holds `s`, or ms pass. */
static int expect(tc_client_t *c, const char *s, int ms) {
  uint64_t end = tc_now_ms() + (uint64_t)ms;
  while (tc_find(&c->in, 0, s) < 0) {
    if (tc_now_ms() >= end || c->eof || c->reset) return 0;
    tc_read_some(c, (int)(end - tc_now_ms()));
  }
  return 1;
}

static void t_early_bytes(void) {
  /* lines sent with the head, in one write, come out first */
  tc_client_t c;
  REQUIRE(upgrade(&c, "/lines", "one\ntwo\n") == 0, "no 101");
  CHECK(expect(&c, "> one\n> two\n", 3000), "early lines: '%s'", c.in.p ? c.in.p : "");
  tc_send_str(&c, "three\nGET / HTTP/1.1\n");
  CHECK(expect(&c, "> three\n> GET / HTTP/1.1\n", 3000), "later lines: '%s'", c.in.p ? c.in.p : "");
  tc_close(&c);
}

static void quit_case(const char *path) {
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(upgrade(&c, path, "") == 0, "no 101");
  tc_send_str(&c, "a\nquit\n");
  CHECK(tc_wait_closed(&c, 3000), "not closed after quit");
  CHECK(c.in.len == 8 && memcmp(c.in.p, "> a\nbye\n", 8) == 0,
        "the session ended with '%s', expected '> a\\nbye\\n'", c.in.p ? c.in.p : "");
  tc_close(&c);
  rec_t *r = &recs[id];
  CHECK(TC_WAIT_UNTIL(atomic_load(&r->done_calls) == 1, 2000), "no on_request_done");
  CHECK_EQ_INT(atomic_load(&r->done_reason), VIGIL_REASON_HANDLER_FINISHED);
  CHECK_EQ_INT(atomic_load(&r->cancel_reason), VIGIL_REASON_HANDLER_FINISHED);
  CHECK_EQ_INT(r->rc[0], 0);
  CHECK_EQ_INT(r->rc[1], VIGIL_EALREADY);
  CHECK(r->rc[2] == VIGIL_EALREADY || r->rc[2] == VIGIL_EBUSY, "response_send after hijack: %d",
        r->rc[2]);
}

static void t_quit_finish(void) { quit_case("/lines"); }
static void t_quit_hijack_close(void) { quit_case("/lines?close"); }

static void end_case(int rst, vigil_reason_t want) {
  int id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(upgrade(&c, "/lines", "x\n") == 0, "no 101");
  CHECK(expect(&c, "> x\n", 3000), "no echo");
  if (rst) tc_close_rst(&c);
  else tc_close(&c);
  rec_t *r = &recs[id];
  CHECK(TC_WAIT_UNTIL(atomic_load(&r->done_calls) == 1, 2000), "no on_request_done");
  CHECK_EQ_INT(atomic_load(&r->done_reason), want);
  CHECK_EQ_INT(atomic_load(&r->cancel_calls), 1);
  CHECK_EQ_INT(atomic_load(&r->cancel_reason), want);
}

static void t_rst(void) { end_case(1, VIGIL_REASON_RESET); }
static void t_fin(void) { end_case(0, VIGIL_REASON_CLIENT_CLOSED); }

static void t_refusals(void) {
  int id = atomic_load(&next_rec);
  tc_resp_t r;
  REQUIRE(tc_roundtrip(port, "GET /answer HTTP/1.1\r\nHost: t\r\n\r\n", &r) == 0, "no response");
  CHECK(r.status == 200 && r.body.len == 8, "status %d", r.status);
  tc_resp_free(&r);
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&recs[id].rc_ready), 2000), "handler");
  CHECK_EQ_INT(recs[id].rc[0], VIGIL_EBUSY);    /* hijack_write, not hijacked */
  CHECK_EQ_INT(recs[id].rc[1], VIGIL_EBUSY);    /* hijack_close, not hijacked */
  CHECK_EQ_INT(recs[id].rc[2], VIGIL_EALREADY); /* after the response */

  id = atomic_load(&next_rec);
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST /midbody HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab") == 0,
          "send");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&recs[id].rc_ready), 2000), "handler");
  tc_send_str(&c, "cd");
  REQUIRE(tc_read_response(&c, &r, 3000) == 0, "no response");
  CHECK(r.status == 200 && r.body.len == 4, "status %d", r.status);
  tc_resp_free(&r);
  tc_close(&c);
  CHECK_EQ_INT(recs[id].rc[0], VIGIL_EBUSY); /* mid-body */
}

static void t_stats(void) {
  vigil_stats_t st;
  CHECK(tc_stats_settled(server, 3000), "stats did not settle");
  vigil_server_stats(server, &st);
  CHECK_EQ_INT(st.connections_hijacked, 0);
}

int main(void) {
  tc_init();
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.on_body = on_body;
  cfg.on_request_done = on_done;
  port = tc_server_start(&server, &cfg);
  if (port <= 0) {
    printf("not ok 1 - server start\n0 passed, 1 failed\n");
    return 1;
  }
  RUN(t_early_bytes, "hijack: bytes sent with the head are handed over first, then the rest");
  RUN(t_quit_finish, "hijack: vigil_request_finish flushes and closes; reason HANDLER_FINISHED");
  RUN(t_quit_hijack_close, "hijack: vigil_hijack_close then vigil_request_finish writes nothing more");
  RUN(t_rst, "hijack: a client RST ends the request with VIGIL_REASON_RESET");
  RUN(t_fin, "hijack: a client FIN ends the request with VIGIL_REASON_CLIENT_CLOSED");
  RUN(t_refusals, "hijack refused after a response or mid-body; hijack_* refused when not hijacked");
  RUN(t_stats, "stats: no hijacked, open or live left");
  vigil_server_free(server);
  return tc_summary();
}
