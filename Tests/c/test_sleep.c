/*
 * test_sleep.c - loop timers (vigil_timer_start / vigil_timer_stop): they
 * fire on the loop thread, never early; every timer gets exactly one last
 * call (a one-shot's fire, VIGIL_ECANCELED after a stop, VIGIL_ESHUTDOWN at
 * shutdown), never from inside start or stop; a stop from any thread, also
 * racing the fire, frees everything (LeakSanitizer in the ASan build).
 */
#include <vigil.h>

#include "tc.h"

static vigil_server_t *server;

/* What one timer saw. */
typedef struct {
  atomic_int fires;        /* calls with status 0 */
  atomic_int last_calls;   /* calls that were the last */
  atomic_int last_status;
  atomic_int calls_after_last;
  atomic_int off_loop;     /* a call not on the loop thread */
  atomic_int in_api;       /* a call from inside start/stop */
  atomic_int stop_in_cb;   /* stop the timer from its callback at this fire */
  _Atomic(vigil_timer_t *) handle; /* for stop_in_cb, and stops from a
                                      posted task */
  double started_us, fired_us;
  uint64_t repeat_ms;
} rec_t;

static pthread_t loop_tid;
static atomic_int loop_tid_known;
static _Thread_local int inside_api;

static void note_loop(void *ud) {
  loop_tid = pthread_self();
  atomic_store(&loop_tid_known, 1);
}

static void on_timer(vigil_timer_t *t, int status, void *ud) {
  rec_t *r = ud;
  if (!pthread_equal(pthread_self(), loop_tid)) atomic_store(&r->off_loop, 1);
  if (inside_api) atomic_store(&r->in_api, 1);
  if (atomic_load(&r->last_calls) > 0) atomic_fetch_add(&r->calls_after_last, 1);
  if (status == 0) {
    int n = atomic_fetch_add(&r->fires, 1) + 1;
    if (n == 1) r->fired_us = tc_now_us();
    if (r->repeat_ms == 0) {
      atomic_store(&r->last_status, 0);
      atomic_fetch_add(&r->last_calls, 1);
    } else if (atomic_load(&r->stop_in_cb) == n) {
      inside_api = 1;
      vigil_timer_stop(atomic_load(&r->handle));
      inside_api = 0;
    }
    return;
  }
  atomic_store(&r->last_status, status);
  atomic_fetch_add(&r->last_calls, 1);
}

static int start(rec_t *r, uint64_t timeout_ms, uint64_t repeat_ms, vigil_timer_t **t) {
  r->repeat_ms = repeat_ms;
  r->started_us = tc_now_us();
  inside_api = 1;
  int rc = vigil_timer_start(server, 0, timeout_ms, repeat_ms, on_timer, r, t);
  inside_api = 0;
  return rc;
}

static void stop(vigil_timer_t *t) {
  inside_api = 1;
  vigil_timer_stop(t);
  inside_api = 0;
}

static void check_clean(rec_t *r) {
  CHECK_EQ_INT(atomic_load(&r->last_calls), 1);
  CHECK_EQ_INT(atomic_load(&r->calls_after_last), 0);
  CHECK(!atomic_load(&r->off_loop), "a callback ran off the loop thread");
  CHECK(!atomic_load(&r->in_api), "a callback ran inside vigil_timer_start/stop");
}

/* ------------------------------------------------------------------ */

static void t_one_shot(void) {
  static rec_t r;
  vigil_timer_t *t;
  REQUIRE(start(&r, 50, 0, &t) == 0, "start");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&r.last_calls) == 1, 5000), "no fire in 5 s");
  tc_sleep_ms(100); /* a second fire would come now */
  CHECK_EQ_INT(atomic_load(&r.fires), 1);
  CHECK_EQ_INT(atomic_load(&r.last_status), 0);
  CHECK(r.fired_us - r.started_us >= 50000, "fired after %.0f us, before 50 ms",
        r.fired_us - r.started_us);
  stop(t); /* after the last call: only a release */
  tc_sleep_ms(20);
  check_clean(&r);
}

static void t_stop_before_fire(void) {
  static rec_t r;
  vigil_timer_t *t;
  REQUIRE(start(&r, 200, 0, &t) == 0, "start");
  stop(t);
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&r.last_calls) == 1, 5000), "no last call");
  CHECK_EQ_INT(atomic_load(&r.last_status), VIGIL_ECANCELED);
  tc_sleep_ms(300); /* past the deadline: no fire */
  CHECK_EQ_INT(atomic_load(&r.fires), 0);
  check_clean(&r);
}

static void t_repeat_stop_in_callback(void) {
  static rec_t r;
  vigil_timer_t *t;
  atomic_store(&r.stop_in_cb, 3);
  /* The first fire is 5 ms away: the handle is stored long before. */
  REQUIRE(start(&r, 5, 10, &t) == 0, "start");
  atomic_store(&r.handle, t);
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&r.last_calls) == 1, 5000), "no last call");
  tc_sleep_ms(60);
  CHECK_EQ_INT(atomic_load(&r.fires), 3);
  CHECK_EQ_INT(atomic_load(&r.last_status), VIGIL_ECANCELED);
  check_clean(&r);
}

static void t_repeat_stop_elsewhere(void) {
  static rec_t r;
  vigil_timer_t *t;
  REQUIRE(start(&r, 1, 1, &t) == 0, "start");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&r.fires) >= 5, 5000), "fewer than 5 fires");
  stop(t);
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&r.last_calls) == 1, 5000), "no last call");
  int fires = atomic_load(&r.fires);
  tc_sleep_ms(30);
  CHECK_EQ_INT(atomic_load(&r.fires), fires);
  CHECK_EQ_INT(atomic_load(&r.last_status), VIGIL_ECANCELED);
  check_clean(&r);
}

/* Started and stopped on the loop thread itself (a handler's case): the
 * last call comes later, not from inside the stop. */
static rec_t loop_rec;
static void start_stop_on_loop(void *ud) {
  vigil_timer_t *t;
  if (start(&loop_rec, 1000, 0, &t) == 0) stop(t);
}

static void t_on_loop_thread(void) {
  REQUIRE(vigil_server_post(server, 0, start_stop_on_loop, NULL) == 0, "post");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&loop_rec.last_calls) == 1, 5000), "no last call");
  CHECK_EQ_INT(atomic_load(&loop_rec.last_status), VIGIL_ECANCELED);
  CHECK_EQ_INT(atomic_load(&loop_rec.fires), 0);
  check_clean(&loop_rec);
}

/* Fire and stop racing: zero-timeout timers stopped at once from this
 * thread, and stopped from two threads' worth of timing. Each gets exactly
 * one last call; ASan's leak check sees every handle freed. */
#define RACE_N 2000
static rec_t race[RACE_N];

static void t_stop_races_fire(void) {
  for (int i = 0; i < RACE_N; i++) {
    vigil_timer_t *t;
    int rc = start(&race[i], 0, (uint64_t)(i % 2), &t);
    REQUIRE(rc == 0, "start %d: %s", i, vigil_strerror(rc));
    if (i % 3 == 0) tc_sleep_ms(0);
    stop(t);
  }
  int settled = TC_WAIT_UNTIL(({
    int all = 1;
    for (int i = 0; i < RACE_N && all; i++) all = atomic_load(&race[i].last_calls) == 1;
    all; }), 10000);
  REQUIRE(settled, "some timers got no last call");
  tc_sleep_ms(20);
  int fired_one_shots = 0;
  for (int i = 0; i < RACE_N; i++) {
    CHECK_EQ_INT(atomic_load(&race[i].calls_after_last), 0);
    CHECK(!atomic_load(&race[i].off_loop), "timer %d: off the loop thread", i);
    CHECK(!atomic_load(&race[i].in_api), "timer %d: inside the API", i);
    if (i % 2 == 0 && atomic_load(&race[i].last_status) == 0) fired_one_shots++;
  }
  tc_note("%d of %d one-shots fired before their stop", fired_one_shots, RACE_N / 2);
}


/* Never early, measured from the arm on the loop thread. libuv's loop time
 * is whole milliseconds rounded down (and may be the coarse clock), so a
 * bare uv timer armed at 10.9 ms for 3 ms fires at ~13.0, 2.1 ms after,
 * when anything wakes the loop then: here a 1 ms ticker on the same loop
 * (an idle loop sleeps in epoll_wait for the whole 3 ms). */
#define EARLY_N 40
static rec_t early[EARLY_N];
static atomic_int early_next;

static void sleep_us(unsigned us) {
  struct timespec t = {0, (long)us * 1000L};
  nanosleep(&t, NULL);
}

static void arm_early(void *ud) {
  int i = atomic_load(&early_next);
  vigil_timer_t *t;
  /* start() takes started_us right before the arm, on this thread. */
  if (start(&early[i], 3, 0, &t) == 0) atomic_store(&early[i].handle, t);
}

static void t_never_early(void) {
  static rec_t ticker;
  vigil_timer_t *tick;
  REQUIRE(start(&ticker, 1, 1, &tick) == 0, "start the ticker");
  int early_ones = 0;
  double worst = 1e9;
  for (int i = 0; i < EARLY_N; i++) {
    atomic_store(&early_next, i);
    /* Spread the arms over the millisecond. */
    sleep_us(137 * (unsigned)i % 1000);
    REQUIRE(vigil_server_post(server, 0, arm_early, NULL) == 0, "post");
    REQUIRE(TC_WAIT_UNTIL(atomic_load(&early[i].last_calls) == 1, 5000), "timer %d: no fire", i);
    double took = early[i].fired_us - early[i].started_us;
    if (took < 3000) early_ones++;
    if (took < worst) worst = took;
    stop(atomic_load(&early[i].handle));
    check_clean(&early[i]);
  }
  stop(tick);
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&ticker.last_calls) == 1, 5000), "the ticker: no last call");
  CHECK(early_ones == 0, "%d of %d 3 ms timers fired early (shortest %.0f us)",
        early_ones, EARLY_N, worst);
  tc_note("shortest: %.0f us", worst);
}

/* Started from this thread (the arm queued), stopped on the loop thread
 * before the arm ran: the arm finds it stopped; one last call, no fire. */
static rec_t pre_arm;
static atomic_int pre_arm_go;

static void stop_before_arm(void *ud) {
  /* Holds the loop until the timer is started: its arm is queued behind
   * this task. */
  while (!atomic_load(&pre_arm_go)) tc_sleep_ms(1);
  inside_api = 1;
  vigil_timer_stop(atomic_load(&pre_arm.handle));
  inside_api = 0;
}

static void t_stop_on_loop_before_arm(void) {
  vigil_timer_t *t;
  REQUIRE(vigil_server_post(server, 0, stop_before_arm, NULL) == 0, "post");
  REQUIRE(start(&pre_arm, 1, 0, &t) == 0, "start");
  atomic_store(&pre_arm.handle, t);
  atomic_store(&pre_arm_go, 1);
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&pre_arm.last_calls) == 1, 5000), "no last call");
  tc_sleep_ms(20);
  CHECK_EQ_INT(atomic_load(&pre_arm.last_status), VIGIL_ECANCELED);
  CHECK_EQ_INT(atomic_load(&pre_arm.fires), 0);
  check_clean(&pre_arm);
}

/* A timer started from another timer's callback must not keep the loop in
 * libuv's timer pass: a repeating 1 ms timer whose callback works 1.5 ms
 * and starts (and stops) a timer each time; a task posted meanwhile must
 * run. (With the loop time moved on at each arm, libuv 1.44 found the
 * repeating timer due again in the same pass, forever.) */
static atomic_int busy_fires, busy_give_up, busy_posted_ran;
static void noop_timer(vigil_timer_t *t, int status, void *ud) {}
static void busy_cb(vigil_timer_t *t, int status, void *ud) {
  if (status != 0) return;
  atomic_fetch_add(&busy_fires, 1);
  if (atomic_load(&busy_give_up)) {
    vigil_timer_stop(t);
    return;
  }
  double end = tc_now_us() + 1500;
  while (tc_now_us() < end) {
  }
  vigil_timer_t *o;
  if (vigil_timer_start(server, 0, 1000, 0, noop_timer, NULL, &o) == 0) vigil_timer_stop(o);
}
static void start_busy(void *ud) {
  vigil_timer_t *t; /* stopped by busy_cb */
  vigil_timer_start(server, 0, 1, 1, busy_cb, NULL, &t);
}
static void note_posted(void *ud) { atomic_store(&busy_posted_ran, 1); }

static void t_arm_in_timer_callback(void) {
  REQUIRE(vigil_server_post(server, 0, start_busy, NULL) == 0, "post");
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&busy_fires) >= 5, 5000), "the busy timer does not fire");
  REQUIRE(vigil_server_post(server, 0, note_posted, NULL) == 0, "post");
  int ran = TC_WAIT_UNTIL(atomic_load(&busy_posted_ran), 3000);
  /* Stopped from its own callback, which runs even if the loop is stuck
   * in its timer pass: the next tests get a loop back. */
  atomic_store(&busy_give_up, 1);
  CHECK(ran, "a posted task did not run in 3 s: the loop is stuck in its timers (%d fires)",
        atomic_load(&busy_fires));
  REQUIRE(TC_WAIT_UNTIL(atomic_load(&busy_posted_ran), 5000), "the loop did not come back");
  tc_sleep_ms(20);
}

static void t_bad_arguments(void) {
  vigil_timer_t *t = (vigil_timer_t *)1;
  static rec_t r;
  CHECK_EQ_INT(vigil_timer_start(NULL, 0, 1, 0, on_timer, &r, &t), VIGIL_EINVAL);
  CHECK(t == NULL, "*out not cleared");
  CHECK_EQ_INT(vigil_timer_start(server, 7, 1, 0, on_timer, &r, &t), VIGIL_EINVAL);
  CHECK_EQ_INT(vigil_timer_start(server, 0, 1, 0, NULL, &r, &t), VIGIL_EINVAL);
  CHECK_EQ_INT(vigil_timer_start(server, 0, 1, 0, on_timer, &r, NULL), VIGIL_EINVAL);
  vigil_timer_stop(NULL); /* a no-op */
  CHECK_EQ_INT(atomic_load(&r.last_calls), 0);
}

/* A shutdown ends a pending timer with VIGIL_ESHUTDOWN and does not wait
 * for it; a start afterwards is refused; the stop after the loop is gone
 * only releases. */
static atomic_int hold_go;
static void hold_loop(void *ud) {
  while (!atomic_load(&hold_go)) tc_sleep_ms(1);
}

static void t_shutdown(void) {
  static rec_t r, queued, after;
  vigil_timer_t *t, *tq, *t2 = NULL;
  REQUIRE(start(&r, 60000, 0, &t) == 0, "start");
  /* One more started while the loop is held: its arm is queued before the
   * shutdown's wake-up, so the loop arms it and vigil__timers_close ends it
   * (an arm drained after the loop began closing takes timer_arm's own
   * VIGIL_ESHUTDOWN path, which this does not reach). */
  REQUIRE(vigil_server_post(server, 0, hold_loop, NULL) == 0, "post");
  REQUIRE(start(&queued, 60000, 0, &tq) == 0, "start (queued)");
  double t0 = tc_now_us();
  REQUIRE(vigil_server_shutdown(server, 0) == 0, "shutdown");
  atomic_store(&hold_go, 1);
  REQUIRE(vigil_server_wait(server) == 0, "wait");
  CHECK_EQ_INT(atomic_load(&queued.last_calls), 1);
  CHECK_EQ_INT(atomic_load(&queued.last_status), VIGIL_ESHUTDOWN);
  stop(tq); /* the loop is gone: only a release */
  check_clean(&queued);
  CHECK(tc_now_us() - t0 < 10e6, "the shutdown waited for the timer");
  CHECK_EQ_INT(atomic_load(&r.last_calls), 1);
  CHECK_EQ_INT(atomic_load(&r.last_status), VIGIL_ESHUTDOWN);
  CHECK_EQ_INT(start(&after, 1, 0, &t2), VIGIL_ESHUTDOWN);
  CHECK(t2 == NULL, "a handle for a refused start");
  stop(t);
  check_clean(&r);
  CHECK_EQ_INT(atomic_load(&after.last_calls), 0);
}

/* No request comes: the timers need a running server, not a handler. */
static void on_request(vigil_request_t *req, void *ud) {
  vigil_response_send(req, 404, NULL, 0, NULL, 0);
  vigil_request_finish(req);
}

int main(void) {
  tc_init();
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.loops = 1;
  if (tc_server_start(&server, &cfg) <= 0) {
    printf("not ok 1 - server start\n0 passed, 1 failed\n");
    return 1;
  }
  if (vigil_server_post(server, 0, note_loop, NULL) != 0 ||
      !TC_WAIT_UNTIL(atomic_load(&loop_tid_known), 5000)) {
    printf("not ok 1 - the loop thread\n0 passed, 1 failed\n");
    return 1;
  }
  RUN(t_one_shot, "a one-shot timer fires once, on the loop thread, not early; its fire is its last call");
  RUN(t_stop_before_fire, "stopped before its deadline: one last call VIGIL_ECANCELED, no fire");
  RUN(t_repeat_stop_in_callback, "a repeating timer stopped from its own callback: no fire after, then VIGIL_ECANCELED");
  RUN(t_repeat_stop_elsewhere, "a repeating timer stopped from another thread: fires stop, one last call");
  RUN(t_on_loop_thread, "start and stop on the loop thread: the last call comes later, not from inside stop");
  RUN(t_stop_races_fire, "2000 zero-timeout timers stopped at once: one last call each, nothing leaked");
  RUN(t_never_early, "40 3 ms timers armed at spread points of the millisecond: none fires before 3 ms from its arm");
  RUN(t_stop_on_loop_before_arm, "started off the loop, stopped on it before the arm ran: VIGIL_ECANCELED, no fire");
  RUN(t_arm_in_timer_callback, "a timer started from a timer callback each time does not keep the loop from polling");
  RUN(t_bad_arguments, "bad arguments: VIGIL_EINVAL, *out NULL, no callback");
  RUN(t_shutdown, "shutdown: a pending timer gets VIGIL_ESHUTDOWN at once; start is refused after");
  vigil_server_free(server);
  return tc_summary();
}
