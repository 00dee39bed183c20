/* timer.c - connection deadlines: header, idle, body, write, handler.
 *
 * One uv_timer per loop ticks while any deadline is armed. Each kind has a
 * fixed duration, so a FIFO list per kind is already sorted by deadline:
 * arming appends (re-arming on progress moves to the tail), and a tick pops
 * expired entries from the fronts only. Cost stays flat at 10 000
 * connections, unlike a uv_timer per connection or a sweep of them all. */
#include "vigil_internal.h"

#define TICK_MS 100

static uint64_t duration(const vigil_conn_t *c, int kind) {
  const vigil_config_t *cfg = &c->loop->server->config;
  VIGIL_ASSERT(kind >= 0 && kind < T_KINDS);
  switch (kind) {
    case T_HEADER: return cfg->header_timeout_ms;
    case T_IDLE: return cfg->idle_timeout_ms;
    case T_BODY: return cfg->body_timeout_ms;
    case T_WRITE: return cfg->write_timeout_ms;
    case T_HANDLER: return cfg->handler_timeout_ms;
  }
  return 0;
}

static void on_tick(uv_timer_t *t) {
  vigil_loop_t *loop = t->data;
  uint64_t now = uv_now(&loop->uv);
  bool any = false;
  for (int k = 0; k < T_KINDS; k++) {
    vigil_link_t *head = &loop->timers[k];
    while (!vigil__list_empty(head)) {
      vigil_conn_t *c = VIGIL_CONTAINER_OF(head->next, vigil_conn_t, tlink[k]);
      /* A closing connection has every timer disarmed (conn.c
       * mark_closing) and arms none. */
      VIGIL_ASSERT(c->loop == loop && !c->closing);
      if (c->deadline[k] > now) break;
      vigil__list_remove(&c->tlink[k]);
      vigil__conn_timeout(c, k);
    }
    if (!vigil__list_empty(head)) any = true;
  }
  if (!any) {
    uv_timer_stop(&loop->tick_timer);
    loop->tick_active = false;
  }
}

bool vigil__timer_armed(const vigil_conn_t *c, int kind) {
  VIGIL_ASSERT(kind >= 0 && kind < T_KINDS);
  return vigil__list_linked(&c->tlink[kind]);
}

void vigil__timer_arm(vigil_conn_t *c, int kind) {
  uint64_t d = duration(c, kind);
  if (d == 0 || c->closing) return;
  vigil_loop_t *loop = c->loop;
  VIGIL_ASSERT(vigil__on_loop_thread(loop));
  if (vigil__list_linked(&c->tlink[kind])) vigil__list_remove(&c->tlink[kind]);
  c->deadline[kind] = vigil__deadline(uv_now(&loop->uv), d);
  /* What on_tick relies on: appending keeps the list in deadline order
   * (one duration per kind, uv_now never goes back). */
  VIGIL_ASSERT(vigil__list_empty(&loop->timers[kind]) ||
               VIGIL_CONTAINER_OF(loop->timers[kind].prev, vigil_conn_t,
                                  tlink[kind])->deadline[kind] <= c->deadline[kind]);
  vigil__list_push(&loop->timers[kind], &c->tlink[kind]);
  if (!loop->tick_active) {
    uint64_t every = d < TICK_MS * 4 ? (d / 4 ? d / 4 : 1) : TICK_MS;
    uv_timer_start(&loop->tick_timer, on_tick, every, every);
    loop->tick_active = true;
  }
}

void vigil__timer_disarm(vigil_conn_t *c, int kind) {
  VIGIL_ASSERT(kind >= 0 && kind < T_KINDS);
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  if (vigil__list_linked(&c->tlink[kind])) vigil__list_remove(&c->tlink[kind]);
}

void vigil__timer_disarm_all(vigil_conn_t *c) {
  for (int k = 0; k < T_KINDS; k++) vigil__timer_disarm(c, k);
}
