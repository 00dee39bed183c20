/*
 * test_unit_timer.c - timer.c on its own: vigil__timer_arm, _disarm,
 * _disarm_all, _armed and the tick, on connections this test sets up and
 * a real uv loop, as libuv's test/ and h2o's t/00unit test their parts.
 * Linked against the core's objects with conn.c's vigil__conn_timeout
 * wrapped (mk/c.mk: -Wl,--wrap): the tick's expiries are recorded here
 * instead of closing connections.
 *
 * The contract checked: a deadline never fires before its duration has
 * passed and fires once; kinds are independent; within a kind, deadlines
 * fire in the order they were armed; re-arming moves a deadline to now +
 * duration; a disarmed deadline never fires; an expired one is no longer
 * armed when its callback runs (which may arm it again); a duration of 0
 * or a closing connection arms nothing; and the tick stops once nothing is
 * armed, so the loop can exit.
 */
#include "vigil_internal.h"

#include "tc.h"

#define NCONN 64

typedef struct {
  vigil_conn_t *c;
  int kind;
  uint64_t at;     /* uv_now when it fired */
  bool armed_then; /* vigil__timer_armed inside the callback */
} fired_t;

static vigil_server_t server;
static vigil_loop_t *loop;
static vigil_conn_t *conns[NCONN];
static uint64_t armed_at[NCONN][T_KINDS];
static fired_t fired[4096];
static int nfired;
/* What the callback does besides recording: re-arm the connection once. */
static int rearm_in_cb;

/* The tick's way out of timer.c (conn.c's, replaced at link time). */
void __wrap_vigil__conn_timeout(vigil_conn_t *c, int kind);
void __wrap_vigil__conn_timeout(vigil_conn_t *c, int kind) {
  if (nfired < (int)(sizeof fired / sizeof *fired))
    fired[nfired++] = (fired_t){c, kind, uv_now(&loop->uv), vigil__timer_armed(c, kind)};
  if (rearm_in_cb > 0) {
    rearm_in_cb--;
    vigil__timer_arm(c, kind);
  }
}

static int conn_index(const vigil_conn_t *c) {
  for (int i = 0; i < NCONN; i++)
    if (conns[i] == c) return i;
  return -1;
}

/* A fresh loop and connections, as server.c's loop_new and conn.c's
 * accept leave what timer.c uses. */
static void setup(uint64_t header_ms, uint64_t idle_ms) {
  memset(&server, 0, sizeof server);
  vigil_config_init(&server.config);
  server.config.header_timeout_ms = header_ms;
  server.config.idle_timeout_ms = idle_ms;
  server.config.body_timeout_ms = 0;
  server.config.write_timeout_ms = 0;
  server.config.handler_timeout_ms = 0;
  loop = calloc(1, sizeof *loop);
  if (loop == NULL) abort();
  loop->server = &server;
  if (uv_loop_init(&loop->uv) != 0) abort();
  vigil__loop_set_current(loop); /* this thread runs the loop's parts */
  uv_timer_init(&loop->uv, &loop->tick_timer);
  loop->tick_timer.data = loop;
  for (int k = 0; k < T_KINDS; k++) vigil__list_init(&loop->timers[k]);
  for (int i = 0; i < NCONN; i++) {
    conns[i] = calloc(1, sizeof *conns[i]);
    if (conns[i] == NULL) abort();
    conns[i]->loop = loop;
    for (int k = 0; k < T_KINDS; k++) vigil__list_init(&conns[i]->tlink[k]);
  }
  nfired = 0;
  rearm_in_cb = 0;
}

static void teardown(void) {
  for (int i = 0; i < NCONN; i++) {
    vigil__timer_disarm_all(conns[i]);
    free(conns[i]);
    conns[i] = NULL;
  }
  uv_close((uv_handle_t *)&loop->tick_timer, NULL);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop->uv), 0);
  free(loop);
  loop = NULL;
}

static void arm(int i, int kind) {
  uv_update_time(&loop->uv);
  armed_at[i][kind] = uv_now(&loop->uv);
  vigil__timer_arm(conns[i], kind);
}

/* Run the loop until `n` expiries were recorded or `ms` passed. */
static int run_until(int n, unsigned ms) {
  uint64_t end = tc_now_ms() + ms;
  while (nfired < n && tc_now_ms() < end) uv_run(&loop->uv, UV_RUN_ONCE);
  return nfired >= n;
}

/* Every recorded expiry came no earlier than its duration after arming. */
static void check_not_early(uint64_t header_ms, uint64_t idle_ms) {
  for (int f = 0; f < nfired; f++) {
    int i = conn_index(fired[f].c);
    uint64_t d = fired[f].kind == T_HEADER ? header_ms : idle_ms;
    CHECK(fired[f].at >= armed_at[i][fired[f].kind] + d,
          "conn %d kind %d fired at %llu, armed at %llu for %llu ms", i, fired[f].kind,
          (unsigned long long)fired[f].at, (unsigned long long)armed_at[i][fired[f].kind],
          (unsigned long long)d);
    CHECK(!fired[f].armed_then, "conn %d still armed in its own callback", i);
  }
}

static void t_arm_disarm(void) {
  setup(1000, 0);
  CHECK(!vigil__timer_armed(conns[0], T_HEADER), "armed before arm");
  arm(0, T_HEADER);
  CHECK(vigil__timer_armed(conns[0], T_HEADER), "not armed after arm");
  CHECK(!vigil__timer_armed(conns[0], T_IDLE), "another kind armed");
  vigil__timer_disarm(conns[0], T_HEADER);
  CHECK(!vigil__timer_armed(conns[0], T_HEADER), "armed after disarm");
  vigil__timer_disarm(conns[0], T_HEADER); /* twice: a no-op */
  CHECK(!vigil__timer_armed(conns[0], T_HEADER), "armed after a second disarm");
  /* A duration of 0 turns the timeout off: nothing armed. */
  arm(1, T_IDLE);
  CHECK(!vigil__timer_armed(conns[1], T_IDLE), "armed with a duration of 0");
  /* A closing connection gets no new deadline. */
  conns[2]->closing = true;
  arm(2, T_HEADER);
  CHECK(!vigil__timer_armed(conns[2], T_HEADER), "a closing connection armed");
  /* disarm_all clears every kind. */
  server.config.idle_timeout_ms = 1000;
  arm(3, T_HEADER);
  arm(3, T_IDLE);
  vigil__timer_disarm_all(conns[3]);
  CHECK(!vigil__timer_armed(conns[3], T_HEADER) && !vigil__timer_armed(conns[3], T_IDLE),
        "armed after disarm_all");
  /* Nothing armed: the loop has nothing to wait for and returns at once. */
  uint64_t t0 = tc_now_ms();
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  CHECK(tc_now_ms() - t0 < 900, "the loop waited %llu ms for a disarmed deadline",
        (unsigned long long)(tc_now_ms() - t0));
  CHECK_EQ_INT(nfired, 0);
  teardown();
}

/* Armed one after the other, they fire in that order, each once, none
 * early; then the tick stops by itself (uv_run DEFAULT returns). */
static void t_expiry_order(void) {
  const uint64_t d = 40;
  setup(d, 0);
  int order[] = {5, 2, 9, 0, 7};
  for (int j = 0; j < 5; j++) {
    arm(order[j], T_HEADER);
    tc_sleep_ms(3);
  }
  uint64_t t0 = tc_now_ms();
  uv_run(&loop->uv, UV_RUN_DEFAULT); /* returns once the tick stopped */
  CHECK(tc_now_ms() - t0 < 5000, "the tick ran on after every deadline fired");
  CHECK_EQ_INT(nfired, 5);
  for (int j = 0; j < 5 && j < nfired; j++) {
    CHECK(fired[j].c == conns[order[j]] && fired[j].kind == T_HEADER,
          "expiry %d: conn %d, expected %d", j, conn_index(fired[j].c), order[j]);
  }
  for (int j = 0; j < 5; j++)
    CHECK(!vigil__timer_armed(conns[order[j]], T_HEADER), "conn %d still armed", order[j]);
  check_not_early(d, 0);
  teardown();
}

/* Re-arming moves a deadline: to the back of its kind, from now. */
static void t_rearm(void) {
  const uint64_t d = 200;
  setup(d, 0);
  arm(1, T_HEADER);
  arm(2, T_HEADER);
  tc_sleep_ms(100); /* 1 fires 100 ms after 2: room for a loaded machine */
  arm(1, T_HEADER); /* progress: 1 now after 2 */
  CHECK(run_until(1, 3000), "nothing fired");
  CHECK(nfired >= 1 && fired[0].c == conns[2], "conn 2 first, got %d",
        nfired ? conn_index(fired[0].c) : -1);
  CHECK(vigil__timer_armed(conns[1], T_HEADER), "the re-armed one fired with the old deadline");
  CHECK(run_until(2, 3000), "the re-armed one never fired");
  CHECK(nfired == 2 && fired[1].c == conns[1], "conn 1 second");
  check_not_early(d, 0);
  teardown();
}

/* A disarmed deadline never fires; the others still do. */
static void t_disarm_before_expiry(void) {
  const uint64_t d = 30;
  setup(d, 0);
  for (int i = 0; i < 4; i++) arm(i, T_HEADER);
  vigil__timer_disarm(conns[0], T_HEADER);
  vigil__timer_disarm(conns[2], T_HEADER);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  CHECK_EQ_INT(nfired, 2);
  CHECK(nfired == 2 && fired[0].c == conns[1] && fired[1].c == conns[3],
        "fired: %d %d", nfired > 0 ? conn_index(fired[0].c) : -1,
        nfired > 1 ? conn_index(fired[1].c) : -1);
  check_not_early(d, 0);
  teardown();
}

/* Kinds are lists of their own: a short kind armed after a long one
 * fires first, and each fires with its kind. */
static void t_kinds_independent(void) {
  const uint64_t hd = 30, id = 120;
  setup(hd, id);
  arm(0, T_IDLE);
  arm(1, T_HEADER);
  arm(0, T_HEADER);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  CHECK_EQ_INT(nfired, 3);
  if (nfired == 3) {
    CHECK(fired[0].c == conns[1] && fired[0].kind == T_HEADER, "first: conn 1 header");
    CHECK(fired[1].c == conns[0] && fired[1].kind == T_HEADER, "second: conn 0 header");
    CHECK(fired[2].c == conns[0] && fired[2].kind == T_IDLE, "third: conn 0 idle");
  }
  check_not_early(hd, id);
  teardown();
}

/* The callback may arm the same deadline again (a write timeout that saw
 * progress does): it fires again one duration later, not in the same
 * tick. */
static void t_rearm_in_callback(void) {
  const uint64_t d = 30;
  setup(d, 0);
  rearm_in_cb = 2;
  arm(4, T_HEADER);
  uint64_t t0 = uv_now(&loop->uv);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  CHECK_EQ_INT(nfired, 3);
  if (nfired == 3) {
    CHECK(fired[1].at >= fired[0].at + d && fired[2].at >= fired[1].at + d,
          "re-armed deadlines fired early: %llu %llu %llu", (unsigned long long)fired[0].at,
          (unsigned long long)fired[1].at, (unsigned long long)fired[2].at);
    CHECK(fired[2].at >= t0 + 3 * d, "three durations did not pass");
  }
  CHECK(!vigil__timer_armed(conns[4], T_HEADER), "still armed");
  teardown();
}

/* Many connections: all fire, in arming order (one FIFO per kind). */
static void t_many(void) {
  const uint64_t d = 20;
  setup(d, 0);
  for (int i = 0; i < NCONN; i++) {
    arm(i, T_HEADER);
    if (i % 8 == 7) tc_sleep_ms(2);
  }
  /* Disarm and re-arm every fourth: they go to the back. */
  for (int i = 0; i < NCONN; i += 4) {
    vigil__timer_disarm(conns[i], T_HEADER);
    arm(i, T_HEADER);
  }
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  CHECK_EQ_INT(nfired, NCONN);
  int f = 0;
  for (int i = 0; i < NCONN && f < nfired; i++)
    if (i % 4 != 0) {
      CHECK(fired[f].c == conns[i], "expiry %d: conn %d, expected %d", f,
            conn_index(fired[f].c), i);
      f++;
    }
  for (int i = 0; i < NCONN && f < nfired; i += 4, f++)
    CHECK(fired[f].c == conns[i], "expiry %d: conn %d, expected %d", f, conn_index(fired[f].c),
          i);
  check_not_early(d, 0);
  teardown();
}

/* A duration too large for now + duration ("never": UINT64_MAX, as a
 * Swift `.seconds(Int64.max)` becomes) is a deadline at the end of time,
 * not one that wrapped into the past. Before the fix the deadline wrapped
 * and fired at the first tick. */
static void t_huge_duration(void) {
  setup(50, UINT64_MAX);
  arm(0, T_IDLE);
  arm(1, T_HEADER);
  CHECK(vigil__timer_armed(conns[0], T_IDLE), "a huge duration armed nothing");
  CHECK(run_until(1, 2000), "the 50 ms header deadline did not fire");
  run_until(2, 200);
  CHECK_EQ_INT(nfired, 1);
  CHECK(nfired >= 1 && fired[0].c == conns[1], "the huge deadline fired");
  CHECK(vigil__timer_armed(conns[0], T_IDLE), "the huge deadline is no longer armed");
  teardown();
}

int main(void) {
  tc_init();
  RUN(t_arm_disarm, "unit timer: arm, armed, disarm, disarm_all; 0 and closing arm nothing");
  RUN(t_expiry_order, "unit timer: deadlines fire once, in arming order, never early; tick stops");
  RUN(t_rearm, "unit timer: re-arming moves a deadline to now + duration");
  RUN(t_disarm_before_expiry, "unit timer: a disarmed deadline never fires");
  RUN(t_kinds_independent, "unit timer: kinds are independent");
  RUN(t_rearm_in_callback, "unit timer: the expiry callback may arm again");
  RUN(t_huge_duration, "unit timer: a duration past the end of time never fires");
  RUN(t_many, "unit timer: 64 connections, re-armed ones at the back");
  return tc_summary();
}
