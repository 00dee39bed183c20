/* sleep.c - timers on a loop for embedders and for Swift's Request.sleep:
 * vigil_timer_start / vigil_timer_stop.
 *
 * A handler that waits between events (server-sent events, polling, a
 * retry's back-off) would otherwise wait on a timer of another thread's -
 * Dispatch's, a thread of its own - and hop back to its loop for every
 * event. A timer of the loop itself fires where the connection is served:
 * no other thread wakes, and a stopped timer is gone at once (a cancelled
 * Task.sleep keeps its job and timer until the original deadline).
 *
 * The last call rule is what makes stop safe from any thread without the
 * caller's own lock: the callback is never called from inside start or
 * stop, it runs on the loop thread only, and it is told which call is its
 * last (a one-shot's fire, or a negative status). The handle itself lives
 * until both the caller has stopped it and the loop is done with it. */
#include "vigil_internal.h"

#include <stdlib.h>

/* Owner: reference counted (refs), freed by timer_unref at zero, on
 * whatever thread drops the last reference. References are held by:
 *   - the caller, from vigil_timer_start until vigil_timer_stop;
 *   - the loop, from vigil_timer_start until the callback's last call was
 *     made and the uv handle (if it was armed) closed;
 *   - each stop op queued from another thread, until the loop ran it.
 * The timer holds a loop reference, so that a stop from another thread
 * after the loop exited finds the loop's queue (closed) and not freed
 * memory. */
struct vigil_timer_s {
  uv_timer_t uv;             /* loop thread only; initialised by timer_arm */
  vigil_loop_t *loop;
  vigil_link_t link;         /* in loop->user_timers while the uv handle is
                                initialised and not closing */
  vigil_timer_cb cb;
  void *userdata;
  uint64_t timeout_ms, repeat_ms;
  /* uv_hrtime() at arm + timeout_ms: libuv's loop time is in whole
   * milliseconds, rounded down (and may come from the coarse clock), and
   * timer_arm does not bring it up to date, so a uv timer can fire before
   * its timeout has passed (by ~2 ms, plus the work the loop did since the
   * iteration began). The first fire checks this deadline and re-arms for
   * the rest. Loop thread. */
  uint64_t deadline_ns;
  bool first_fired;          /* loop thread: the deadline was reached */
  /* The op a stop from another thread queues, allocated at start so that a
   * stop cannot fail for memory (and leave the timer running to its
   * deadline). Owner: the timer until submitted, then the loop (which
   * frees it after running it), or the stopping thread if the loop
   * refused it (it frees it); freed by timer_unref if never used. */
  vigil_op_t *stop_op;
  atomic_uint refs;
  atomic_bool stopped;       /* vigil_timer_stop was called (any thread) */
  /* Loop thread only. */
  bool armed;                /* uv handle initialised (handles_open counts it) */
  bool closing;              /* uv_close called */
  bool last_made;            /* the callback's last call was made */
  int end_status;            /* the last call's status if made at close:
                                VIGIL_ECANCELED or VIGIL_ESHUTDOWN */
};

static void timer_unref(vigil_timer_t *t) {
  unsigned old = atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel);
  VIGIL_ASSERT(old > 0);
  if (old != 1) return;
  VIGIL_ASSERT(!t->armed || t->closing);
  vigil_loop_t *loop = t->loop;
  free(t->stop_op);
  free(t);
  vigil__loop_unref(loop);
}

static void last_call(vigil_timer_t *t, int status) {
  VIGIL_ASSERT(!t->last_made && status != 0);
  t->last_made = true;
  t->cb(t, status, t->userdata);
}

static void on_closed(uv_handle_t *h) {
  vigil_timer_t *t = h->data;
  vigil_loop_t *loop = t->loop;
  VIGIL_ASSERT(vigil__on_loop_thread(loop) && t->closing);
  VIGIL_ASSERT(loop->handles_open > 0);
  loop->handles_open--;
  if (!t->last_made) last_call(t, t->end_status);
  timer_unref(t); /* the loop's */
}

/* Ends an armed timer: its handle closes, and the close callback makes the
 * last call (if a one-shot's fire has not) - later, never inside the call
 * that got here (vigil_timer_stop on the loop thread, or the callback
 * itself). */
static void timer_close(vigil_timer_t *t, int status) {
  VIGIL_ASSERT(t->armed && !t->closing);
  t->closing = true;
  t->end_status = status;
  vigil__list_remove(&t->link);
  uv_timer_stop(&t->uv);
  uv_close((uv_handle_t *)&t->uv, on_closed);
}

static void on_fire(uv_timer_t *h) {
  vigil_timer_t *t = h->data;
  VIGIL_ASSERT(vigil__on_loop_thread(t->loop) && t->armed && !t->closing);
  /* A stop from another thread is on its way (its op queued): it ends
   * here, and the op finds it closing. */
  if (atomic_load(&t->stopped)) {
    timer_close(t, VIGIL_ECANCELED);
    return;
  }
  if (!t->first_fired) {
    uint64_t now = uv_hrtime();
    if (now < t->deadline_ns) {
      uint64_t rest_ms = (t->deadline_ns - now + 999999) / 1000000;
      uv_timer_start(&t->uv, on_fire, rest_ms, t->repeat_ms);
      return;
    }
    t->first_fired = true;
  }
  if (t->repeat_ms == 0) {
    /* The fire is the last call; the callback may stop the timer (a
     * release then) and must not touch it after stopping. */
    t->last_made = true;
    timer_close(t, VIGIL_ECANCELED);
    t->cb(t, 0, t->userdata);
    return;
  }
  t->cb(t, 0, t->userdata);
  /* Stopped from inside the callback (on this thread): vigil_timer_stop
   * closed it already. */
}

/* On the loop thread: start the uv timer, unless the timer was stopped
 * before it got here or the loop is closing. */
static void timer_arm(vigil_timer_t *t) {
  vigil_loop_t *loop = t->loop;
  VIGIL_ASSERT(vigil__on_loop_thread(loop) && !t->armed);
  if (atomic_load(&t->stopped) || loop->qclosed) {
    last_call(t, loop->qclosed ? VIGIL_ESHUTDOWN : VIGIL_ECANCELED);
    timer_unref(t); /* the loop's */
    return;
  }
  uv_timer_init(&loop->uv, &t->uv);
  t->uv.data = t;
  t->armed = true;
  loop->handles_open++;
  vigil__list_push(&loop->user_timers, &t->link);
  /* Not uv_update_time: armed from another timer's callback, a loop time
   * moved on inside libuv 1.44's timer pass makes a repeating timer due
   * again in that same pass, which then never ends (the loop stops polling
   * sockets). The cached time may lag by this iteration's work, so the
   * uv timer may come early: on_fire checks the real deadline. */
  uint64_t now = uv_hrtime();
  t->deadline_ns = t->timeout_ms > (UINT64_MAX - now) / 1000000
                       ? UINT64_MAX
                       : now + t->timeout_ms * 1000000;
  uv_timer_start(&t->uv, on_fire, t->timeout_ms, t->repeat_ms);
}

static void arm_task(void *arg) { timer_arm(arg); }

/* On the loop thread: the stop of a timer that may not have been armed yet
 * (then timer_arm sees `stopped` and makes the last call), or was ended
 * already (fired, closed at shutdown). */
static void timer_stop_on_loop(vigil_timer_t *t) {
  VIGIL_ASSERT(vigil__on_loop_thread(t->loop));
  if (t->armed && !t->closing) timer_close(t, VIGIL_ECANCELED);
}

static void stop_task(void *arg) {
  vigil_timer_t *t = arg;
  timer_stop_on_loop(t);
  timer_unref(t); /* the op's */
}

void vigil__timers_close(vigil_loop_t *loop) {
  VIGIL_ASSERT(vigil__on_loop_thread(loop) && loop->qclosed);
  while (!vigil__list_empty(&loop->user_timers)) {
    vigil_timer_t *t = VIGIL_CONTAINER_OF(loop->user_timers.next, vigil_timer_t, link);
    timer_close(t, VIGIL_ESHUTDOWN);
  }
}

int vigil_timer_start(vigil_server_t *s, unsigned index, uint64_t timeout_ms,
                      uint64_t repeat_ms, vigil_timer_cb cb, void *userdata,
                      vigil_timer_t **out) {
  if (out != NULL) *out = NULL;
  if (s == NULL || cb == NULL || out == NULL || s->loops == NULL ||
      index >= s->nloops)
    return VIGIL_EINVAL;
  vigil_loop_t *loop = s->loops[index];
  vigil_timer_t *t = calloc(1, sizeof *t);
  vigil_op_t *stop_op = calloc(1, sizeof *stop_op);
  vigil_op_t *arm_op = NULL;
  int r = VIGIL_ENOMEM;
  if (t == NULL || stop_op == NULL) goto fail;
  t->stop_op = stop_op;
  t->loop = loop;
  t->cb = cb;
  t->userdata = userdata;
  t->timeout_ms = timeout_ms;
  t->repeat_ms = repeat_ms;
  vigil__list_init(&t->link);
  atomic_init(&t->refs, 2); /* the caller's and the loop's */
  atomic_init(&t->stopped, false);
  if (vigil__on_loop_thread(loop)) {
    r = VIGIL_ESHUTDOWN;
    if (loop->qclosed) goto fail;
    vigil__loop_ref(loop);
    timer_arm(t);
  } else {
    arm_op = calloc(1, sizeof *arm_op);
    if (arm_op == NULL) goto fail;
    arm_op->type = OP_TASK;
    arm_op->task = arm_task;
    arm_op->userdata = t;
    /* Taken before the timer is published to the loop's queue. */
    vigil__loop_ref(loop);
    r = vigil__loop_submit(loop, arm_op);
    if (r != 0) {
      vigil__loop_unref(loop);
      goto fail;
    }
  }
  *out = t;
  return 0;

fail:
  free(arm_op);
  free(stop_op);
  free(t);
  return r;
}

void vigil_timer_stop(vigil_timer_t *t) {
  if (t == NULL) return;
  /* A second stop is a use after free (the first may have freed t): the
   * debug build's assertion may catch it, nothing can in general. */
  bool was = atomic_exchange(&t->stopped, true);
  VIGIL_ASSERT(!was && "vigil_timer_stop called twice");
  (void)was;
  vigil_loop_t *loop = t->loop;
  if (vigil__on_loop_thread(loop)) {
    timer_stop_on_loop(t);
  } else {
    /* The loop may be firing it right now: the op ends it there, or
     * finds it ended. Refused (the loop is closing): vigil__timers_close
     * or the drain of a queued arm, later in the same loop_close_handles,
     * ends it (or a one-shot's fire already was its last call) - nothing
     * is left for the op to do. */
    vigil_op_t *op = t->stop_op;
    t->stop_op = NULL;
    op->type = OP_TASK;
    op->task = stop_task;
    op->userdata = t;
    atomic_fetch_add(&t->refs, 1);
    if (vigil__loop_submit(loop, op) != 0) {
      free(op);
      timer_unref(t); /* the op's */
    }
  }
  timer_unref(t); /* the caller's */
}
