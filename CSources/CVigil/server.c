/* server.c - the server and its loops: configuration, threads, start and
 * shutdown, each loop's services to its connections (spare buffers, the
 * watch timer, hang-ups, Date), and the one cross-thread path into a loop:
 * the op queue drained by an uv_async_t.
 *
 * libuv is not thread-safe except uv_async_send, so anything another thread
 * wants done (a response written from a Swift task, a C worker finishing a
 * request) becomes a vigil_op_t queued here; the async callback drains the
 * whole queue at once (uv_async_send calls coalesce). */
#include "vigil_internal.h"

#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define WATCH_INTERVAL_MS 50

void vigil_config_init(vigil_config_t *c) {
  memset(c, 0, sizeof *c);
  c->struct_size = sizeof *c;
  c->host = "127.0.0.1";
  c->port = 8080;
  c->loops = 1;
  c->backlog = 1024;
  c->half_close = VIGIL_HALF_CLOSE_CANCEL;
  c->read_buffer_limit = 64 * 1024;
  c->write_buffer_limit = 64 * 1024;
  c->drain_limit = 256 * 1024;
  c->max_header_bytes = 16 * 1024;
  c->max_chunk_ext_bytes = 1024;
  c->max_headers = 100;
  c->max_target_bytes = 8 * 1024;
  c->max_body_bytes = 8 * 1024 * 1024;
  c->max_connections = 10000;
  c->max_requests_per_connection = 0;
  c->header_timeout_ms = 10 * 1000;
  c->idle_timeout_ms = 60 * 1000;
  c->body_timeout_ms = 30 * 1000;
  c->write_timeout_ms = 30 * 1000;
  c->handler_timeout_ms = 0;
  c->listen_fd = -1;
  c->shutdown_idle_ms = 1000;
  /* vigil.h says why: a vanished client noticed within 60 s, the time an
   * idle connection is kept. */
  c->tcp_keepalive_idle_ms = 15 * 1000;
  c->tcp_keepalive_interval_ms = 15 * 1000;
  c->tcp_keepalive_count = 3;
}

/* ------------------------------------------------------------------ */
/* loop references */

void vigil__loop_ref(vigil_loop_t *loop) {
  /* Only a holder of a reference makes another: a loop at zero is freed. */
  unsigned old = atomic_fetch_add_explicit(&loop->refs, 1, memory_order_relaxed);
  VIGIL_ASSERT(old > 0);
  (void)old;
}

void vigil__loop_unref(vigil_loop_t *loop) {
  unsigned old = atomic_fetch_sub_explicit(&loop->refs, 1, memory_order_acq_rel);
  VIGIL_ASSERT(old > 0);
  if (old != 1) return;
  vigil__request_pool_free(loop);
  while (loop->nspare > 0) vigil__buf_free(&loop->spare[--loop->nspare]);
  pthread_mutex_destroy(&loop->qlock);
  free(loop->slab);
  free(loop->spare_slab);
  free(loop);
}

void vigil__loop_buf_put(vigil_loop_t *loop, vigil_buf_t *b) {
  VIGIL_ASSERT(vigil__on_loop_thread(loop));
  VIGIL_ASSERT(loop->nspare <= VIGIL_SPARE_BUFS);
  if (b->base == NULL) return;
  if (VIGIL_POOLS && b->cap == VIGIL_SLAB_SIZE && loop->spare_slab == NULL) {
    loop->spare_slab = b->base; /* the next slab (conn.c in_unborrow) */
    b->base = NULL;
    b->len = b->cap = 0;
    return;
  }
  if (VIGIL_POOLS && b->cap <= VIGIL_SPARE_BUF_MAX &&
      loop->nspare < VIGIL_SPARE_BUFS) {
    b->len = 0;
    loop->spare[loop->nspare++] = *b;
    b->base = NULL;
    b->cap = 0;
    return;
  }
  vigil__buf_free(b);
}

void vigil__loop_buf_get(vigil_loop_t *loop, vigil_buf_t *b) {
  VIGIL_ASSERT(vigil__on_loop_thread(loop));
  if (b->base == NULL && loop->nspare > 0) *b = loop->spare[--loop->nspare];
}

/* The loop this thread runs, while it runs it. A thread-local, not a
 * thread id in the loop: the check runs several times per request. */
static _Thread_local const vigil_loop_t *current_loop;

bool vigil__on_loop_thread(const vigil_loop_t *loop) {
  return current_loop == loop;
}

/* The calling thread runs `loop` from now on (NULL: none). loop_thread's
 * own, and the unit tests' that run a loop's parts on their own thread. */
void vigil__loop_set_current(const vigil_loop_t *loop) {
  current_loop = loop;
}

/* ------------------------------------------------------------------ */
/* the op queue */

static void loop_drain(vigil_loop_t *loop) {
  VIGIL_ASSERT(vigil__on_loop_thread(loop));
  pthread_mutex_lock(&loop->qlock);
  vigil_op_t *op = loop->qhead;
  loop->qhead = loop->qtail = NULL;
  pthread_mutex_unlock(&loop->qlock);
  while (op != NULL) {
    vigil_op_t *next = op->next;
    VIGIL_ASSERT(op->req == NULL || op->req->loop == loop);
    if (op->cb != NULL && op->req != NULL)
      atomic_fetch_sub(&op->req->queued_cbs, 1);
    vigil__op_run(loop, op);
    free(op); /* popped from the queue: ours */
    op = next;
  }
}

void vigil__loop_run_queued(vigil_loop_t *loop, vigil_request_t *req) {
  VIGIL_ASSERT(vigil__on_loop_thread(loop) && req->loop == loop);
  vigil_op_t *mine = NULL, **tail = &mine;
  pthread_mutex_lock(&loop->qlock);
  vigil_op_t **pp = &loop->qhead, *prev = NULL;
  while (*pp != NULL) {
    vigil_op_t *op = *pp;
    if (op->req == req && op->cb != NULL) {
      *pp = op->next; /* unlinked, order kept */
      op->next = NULL;
      *tail = op;
      tail = &op->next;
    } else {
      prev = op;
      pp = &op->next;
    }
  }
  loop->qtail = prev;
  VIGIL_ASSERT((loop->qhead == NULL) == (loop->qtail == NULL));
  pthread_mutex_unlock(&loop->qlock);
  while (mine != NULL) {
    vigil_op_t *next = mine->next;
    atomic_fetch_sub(&req->queued_cbs, 1);
    vigil__op_run(loop, mine); /* the request ended: its callback gets the error */
    free(mine);
    mine = next;
  }
}

static void on_async(uv_async_t *h) { loop_drain(h->data); }

/* Tasks posted from the loop thread itself wait for the end of the current
 * callback: they run in the prepare phase, before the loop polls. */
static bool run_local_tasks(vigil_loop_t *loop) {
  VIGIL_ASSERT(vigil__on_loop_thread(loop));
  bool ran = false;
  while (loop->tasks_head != NULL) {
    vigil_op_t *op = loop->tasks_head;
    loop->tasks_head = loop->tasks_tail = NULL;
    while (op != NULL) {
      vigil_op_t *next = op->next;
      vigil__op_run(loop, op);
      free(op);
      op = next;
      ran = true;
    }
  }
  return ran;
}

int vigil_server_post(vigil_server_t *s, unsigned index, vigil_task_cb fn,
                      void *userdata) {
  if (s == NULL || fn == NULL || s->loops == NULL || index >= s->nloops)
    return VIGIL_EINVAL;
  vigil_loop_t *loop = s->loops[index];
  vigil_op_t *op = malloc(sizeof *op);
  if (op == NULL) return VIGIL_ENOMEM;
  memset(op, 0, sizeof *op);
  op->type = OP_TASK;
  op->task = fn;
  op->userdata = userdata;
  if (vigil__on_loop_thread(loop) && !loop->qclosed) {
    if (loop->tasks_tail) loop->tasks_tail->next = op; else loop->tasks_head = op;
    loop->tasks_tail = op;
    return 0;
  }
  int r = vigil__loop_submit(loop, op);
  if (r != 0) free(op);
  return r;
}

int vigil__loop_submit(vigil_loop_t *loop, vigil_op_t *op) {
  if (vigil__on_loop_thread(loop)) {
    /* The loop is closing (no connection is left; a callback of its last
     * drain submits): refused, as from any other thread. qclosed is
     * written only on this thread. */
    if (loop->qclosed) return VIGIL_ESHUTDOWN;
    /* A C handler answering from its callback: no queue, no wake-up. */
    vigil__op_run(loop, op);
    free(op); /* accepted: the loop's, and run */
    return 0;
  }
  op->next = NULL;
  /* An op with a completion for a request that ended must not be queued:
   * its callback would come after on_request_done. The count is raised
   * before the reason is read, and vigil__request_end sets the reason
   * before it reads the count (both seq_cst): either the loop sees the
   * count and takes the op off the queue before on_request_done (under
   * qlock, so not before it is queued), or this sees the reason and
   * refuses it (the caller gets the error and no callback). */
  vigil_request_t *creq = op->cb != NULL ? op->req : NULL;
  if (creq != NULL) atomic_fetch_add(&creq->queued_cbs, 1);
  pthread_mutex_lock(&loop->qlock);
  int refused = loop->qclosed ? VIGIL_ESHUTDOWN
                : creq != NULL ? vigil__reason_error((vigil_reason_t)atomic_load(&creq->reason))
                               : 0;
  if (refused != 0) {
    /* The async handle is closing or closed (the loop is gone), or the
     * request ended. */
    pthread_mutex_unlock(&loop->qlock);
    if (creq != NULL) atomic_fetch_sub(&creq->queued_cbs, 1);
    return refused;
  }
  bool wake = loop->qhead == NULL;
  VIGIL_ASSERT((loop->qhead == NULL) == (loop->qtail == NULL));
  if (loop->qtail) loop->qtail->next = op; else loop->qhead = op;
  loop->qtail = op;
  /* Sent under the lock so that the loop cannot close the async handle
   * between our check of qclosed and this call. */
  if (wake) uv_async_send(&loop->async);
  pthread_mutex_unlock(&loop->qlock);
  return 0;
}

/* ------------------------------------------------------------------ */
/* per-tick flush, watch timer, date */

static void on_prepare(uv_prepare_t *h) {
  vigil_loop_t *loop = h->data;
  /* Tasks (handlers on the loop executor) answer requests and so dirty
   * connections; flushing fires write completions, which resume tasks. Go
   * round until both are quiet, then let the loop poll. */
  do {
    run_local_tasks(loop);
    while (!vigil__list_empty(&loop->dirty)) {
      vigil_link_t *l = loop->dirty.next;
      vigil_conn_t *c = VIGIL_CONTAINER_OF(l, vigil_conn_t, dirty_link);
      /* mark_closing takes a connection off loop->dirty. */
      VIGIL_ASSERT(c->loop == loop && !c->closing);
      vigil__list_remove(l);
      vigil__conn_flush(c);
    }
  } while (loop->tasks_head != NULL);
}

static void on_watch(uv_timer_t *t) {
  vigil_loop_t *loop = t->data;
  uint64_t now = uv_now(&loop->uv);
  /* A callback run for one connection (its abort ends a request, and the
   * user's on_request_done may start or finish another connection's
   * request inline) can unwatch, or watch anew, any other connection: a
   * saved `next` may be unlinked (self-linked) by then, and the walk would
   * spin on it forever. So the list moves to a local head first; each
   * connection is taken off it and put back on loop->watch before its
   * callback, and one that another callback unwatched is simply no longer
   * on the local list. */
  vigil_link_t pending;
  vigil__list_init(&pending);
  if (!vigil__list_empty(&loop->watch)) {
    pending.next = loop->watch.next;
    pending.prev = loop->watch.prev;
    pending.next->prev = &pending;
    pending.prev->next = &pending;
    vigil__list_init(&loop->watch);
  }
  while (!vigil__list_empty(&pending)) {
    vigil_link_t *l = pending.next;
    vigil_conn_t *c = VIGIL_CONTAINER_OF(l, vigil_conn_t, watch_link);
    /* mark_closing unwatches: a closing connection is on neither list. */
    VIGIL_ASSERT(c->loop == loop && !c->closing);
    vigil__list_remove(l);
    vigil__list_push(&loop->watch, l);
    vigil__conn_watch(c, now);
  }
  if (vigil__list_empty(&loop->watch) && loop->watch_active) {
    uv_timer_stop(&loop->watch_timer);
    loop->watch_active = false;
  }
}

void vigil__loop_watch(vigil_loop_t *loop, vigil_conn_t *conn) {
  VIGIL_ASSERT(vigil__on_loop_thread(loop) && conn->loop == loop);
  /* A closing connection on the list would be walked after it is freed. */
  VIGIL_ASSERT(!conn->closing);
  if (!vigil__list_linked(&conn->watch_link))
    vigil__list_push(&loop->watch, &conn->watch_link);
  if (!loop->watch_active) {
    uv_timer_start(&loop->watch_timer, on_watch, WATCH_INTERVAL_MS,
                   WATCH_INTERVAL_MS);
    loop->watch_active = true;
  }
}

void vigil__loop_unwatch(vigil_conn_t *conn) {
  VIGIL_ASSERT(vigil__on_loop_thread(conn->loop));
  if (vigil__list_linked(&conn->watch_link))
    vigil__list_remove(&conn->watch_link);
}

/* ------------------------------------------------------------------ */
/* hang-ups of paused connections
 *
 * A connection paused by backpressure (conn.c update_reading) reads
 * nothing, so libuv would not tell us that its client left. Probing each
 * one on a timer (two getsockopt per connection per tick) costs 400 000
 * system calls a second at 10 000 paused connections. Instead the kernel
 * tells us: EPOLLRDHUP on the socket is the client's FIN, EPOLLHUP and
 * EPOLLERR (always reported) its RST.
 *
 * libuv allows one handle per fd (a uv_poll_t on a uv_tcp_t's socket
 * fails), and its own epoll registration of the socket wants EPOLLIN,
 * which we must not take while paused. So each loop has one more epoll
 * instance of its own, hup_fd, watched by a single uv_poll_t (an epoll fd
 * is readable while it has events ready); a paused socket is registered
 * there for EPOLLRDHUP only, level-triggered, and removed when reading
 * resumes or the connection closes (mark_closing, before uv_close closes
 * the socket). The socket itself is registered, not a dup(): epoll drops a
 * registration by itself when the last descriptor of the socket closes, so
 * a registration missed on some path cannot keep a closed connection's
 * socket open, as a dup would. Idle paused connections then cost nothing;
 * one costs two epoll_ctl calls per pause. If the epoll instance cannot be
 * had (EMFILE), the connection is probed on the watch timer instead. */

static void on_hup(uv_poll_t *h, int status, int events) {
  vigil_loop_t *loop = h->data;
  (void)status;
  (void)events;
  struct epoll_event ev[64];
  /* Bounded: what is left is level-triggered and comes next iteration. */
  for (int round = 0; round < 16; round++) {
    int n = epoll_wait(loop->hup_fd, ev, 64, 0);
    if (n <= 0) break;
    for (int i = 0; i < n; i++) {
      /* A connection handled earlier in this batch may have closed or
       * resumed another one: it is no longer registered then. Its memory
       * is still valid: connections are freed in uv_close callbacks, a
       * later phase of the loop. */
      vigil_conn_t *c = ev[i].data.ptr;
      VIGIL_ASSERT(c->loop == loop);
      if (c->hup_watched && !c->closing) vigil__conn_hangup(c);
    }
    if (n < 64) break;
  }
}

static void on_hup_closed(uv_handle_t *h) {
  vigil_loop_t *loop = h->data;
  VIGIL_ASSERT(loop->handles_open > 0);
  close(loop->hup_fd);
  loop->hup_fd = -1;
  loop->handles_open--;
}

static int hup_open(vigil_loop_t *loop) {
  if (loop->hup_fd >= 0) return 0;
  if (loop->hup_disabled) return VIGIL_EINVAL;
  if (loop->qclosed) return VIGIL_ESHUTDOWN;
  int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return -errno;
  int r = uv_poll_init(&loop->uv, &loop->hup_poll, fd);
  if (r != 0) {
    close(fd);
    return r;
  }
  loop->hup_fd = fd;
  loop->hup_poll.data = loop;
  loop->handles_open++;
  uv_poll_start(&loop->hup_poll, UV_READABLE, on_hup);
  return 0;
}

int vigil__loop_hup_add(vigil_loop_t *loop, vigil_conn_t *c) {
  VIGIL_ASSERT(vigil__on_loop_thread(loop) && c->loop == loop);
  /* mark_closing takes a connection out before uv_close closes its socket:
   * a closing one must not come back in. */
  VIGIL_ASSERT(!c->closing);
  if (c->hup_watched) return 0;
  int r = hup_open(loop);
  if (r != 0) return r;
  int fd;
  if ((r = uv_fileno((uv_handle_t *)&c->tcp, &fd)) != 0) return r;
  struct epoll_event ev = {.events = EPOLLRDHUP, .data.ptr = c};
  if (epoll_ctl(loop->hup_fd, EPOLL_CTL_ADD, fd, &ev) != 0) return -errno;
  c->hup_watched = true;
  c->hup_fin = false;
  VIGIL_ASSERT(loop->hup_fd >= 0);
  return 0;
}

void vigil__loop_hup_fin_seen(vigil_conn_t *c) {
  int fd;
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  if (!c->hup_watched || c->hup_fin) return;
  /* EPOLLRDHUP stays set after a FIN (level-triggered): keep only
   * EPOLLHUP/EPOLLERR, which epoll reports without being asked. */
  struct epoll_event ev = {.events = 0, .data.ptr = c};
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
      epoll_ctl(c->loop->hup_fd, EPOLL_CTL_MOD, fd, &ev) == 0) {
    c->hup_fin = true;
    return;
  }
  vigil__loop_hup_del(c);
  vigil__loop_watch(c->loop, c); /* probe it instead */
}

void vigil__loop_hup_del(vigil_conn_t *c) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  /* hup_fin only qualifies a registration. */
  VIGIL_ASSERT(c->hup_watched || !c->hup_fin);
  if (!c->hup_watched) return;
  c->hup_watched = false;
  int fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
    (void)epoll_ctl(c->loop->hup_fd, EPOLL_CTL_DEL, fd, NULL);
}

const char *vigil__loop_date(vigil_loop_t *loop, size_t *len) {
  /* The wall clock is read once per loop iteration at most (uv_now, cached
   * per iteration, has moved), not per response: a pipelined batch is
   * answered within one iteration. The header is re-formatted only when the
   * second changes. */
  uint64_t tick = uv_now(&loop->uv);
  if (tick == loop->date_tick && loop->date_len != 0) {
    *len = loop->date_len;
    return loop->date;
  }
  loop->date_tick = tick;
  time_t now = time(NULL);
  if ((uint64_t)now != loop->date_sec) {
    struct tm tm;
    gmtime_r(&now, &tm);
    loop->date_len = strftime(loop->date, sizeof loop->date,
                              "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    loop->date_sec = (uint64_t)now;
  }
  *len = loop->date_len;
  return loop->date;
}

/* ------------------------------------------------------------------ */
/* shutdown */

static void on_handle_closed(uv_handle_t *h) {
  vigil_loop_t *loop = h->data;
  VIGIL_ASSERT(loop->handles_open > 0);
  loop->handles_open--;
}

static void loop_close_handles(vigil_loop_t *loop) {
  /* Last: no connection is left. Close the async handle only once no
   * producer can reach it (qclosed under qlock), then fail what is queued. */
  VIGIL_ASSERT(vigil__on_loop_thread(loop));
  VIGIL_ASSERT(vigil__list_empty(&loop->conns) && !loop->qclosed);
  pthread_mutex_lock(&loop->qlock);
  loop->qclosed = true;
  pthread_mutex_unlock(&loop->qlock);
  loop_drain(loop);
  run_local_tasks(loop);
  /* After the drain: a timer whose arm was queued has had its last call. */
  vigil__timers_close(loop);
  uv_close((uv_handle_t *)&loop->async, on_handle_closed);
  uv_close((uv_handle_t *)&loop->prepare, on_handle_closed);
  uv_close((uv_handle_t *)&loop->watch_timer, on_handle_closed);
  uv_close((uv_handle_t *)&loop->grace_timer, on_handle_closed);
  uv_close((uv_handle_t *)&loop->drain_timer, on_handle_closed);
  uv_close((uv_handle_t *)&loop->tick_timer, on_handle_closed);
  uv_close((uv_handle_t *)&loop->trim_timer, on_handle_closed);
  uv_close((uv_handle_t *)&loop->shutdown_poll, on_handle_closed);
  if (loop->hup_fd >= 0) uv_close((uv_handle_t *)&loop->hup_poll, on_hup_closed);
}

static void loop_maybe_exit(vigil_loop_t *loop) {
  if (loop->stopping && vigil__list_empty(&loop->conns) && !loop->qclosed)
    loop_close_handles(loop);
}

/* Memory a burst of connections leaves behind. glibc keeps freed blocks
 * below its mmap threshold (the connections' 16-64 KiB buffers) in its
 * free lists, so after a burst of paused connections closed, RSS would stay
 * hundreds of MB above where it started (hostile/RESULTS.md): reused by the
 * next burst, never returned. When the open count has halved from a peak of at least
 * VIGIL_TRIM_MIN_CONNS, malloc_trim returns the free pages of every arena,
 * from a timer, at most once per VIGIL_TRIM_MS: a trim walks the heaps
 * under their locks, and a client swinging the count up and down must not
 * make the loop do that per connection. */
#define VIGIL_TRIM_MIN_CONNS 32
#define VIGIL_TRIM_MS 1000

static void loop_note_open(vigil_loop_t *loop) {
  uint64_t open = atomic_load_explicit(&loop->open, memory_order_relaxed);
  if (open > loop->trim_peak) loop->trim_peak = open;
}

static void on_trim(uv_timer_t *t) {
  vigil_loop_t *loop = t->data;
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
  loop->trim_peak = atomic_load_explicit(&loop->open, memory_order_relaxed);
}

void vigil__loop_conn_closed(vigil_loop_t *loop) {
  VIGIL_ASSERT(vigil__on_loop_thread(loop));
  uint64_t open = atomic_load_explicit(&loop->open, memory_order_relaxed);
  if (loop->trim_peak >= VIGIL_TRIM_MIN_CONNS && open <= loop->trim_peak / 2 &&
      !uv_is_active((uv_handle_t *)&loop->trim_timer) && !loop->qclosed)
    uv_timer_start(&loop->trim_timer, on_trim, VIGIL_TRIM_MS, 0);
  loop_maybe_exit(loop);
}

static void on_grace(uv_timer_t *t) {
  vigil_loop_t *loop = t->data;
  loop->grace_over = true;
  /* The grace period ran out: cancel what is still in flight. */
  vigil_link_t *l = loop->conns.next;
  while (l != &loop->conns) {
    vigil_link_t *next = l->next;
    VIGIL_ASSERT(VIGIL_CONTAINER_OF(l, vigil_conn_t, link)->loop == loop);
    vigil__conn_abort(VIGIL_CONTAINER_OF(l, vigil_conn_t, link),
                      VIGIL_REASON_SERVER_SHUTDOWN);
    l = next;
  }
}

static void on_drain(uv_timer_t *t);

/* The drain timer, due when the first connection waiting for a request
 * has been idle shutdown_idle_ms, counted from when it became idle (not
 * from the shutdown: a connection idle for most of it already goes soon). */
static void drain_arm(vigil_loop_t *loop) {
  uint64_t idle_ms = loop->server->config.shutdown_idle_ms;
  uint64_t now = uv_now(&loop->uv), first = UINT64_MAX;
  for (vigil_link_t *l = loop->conns.next; l != &loop->conns; l = l->next) {
    vigil_conn_t *c = VIGIL_CONTAINER_OF(l, vigil_conn_t, link);
    if (vigil__conn_waiting_idle(c) && vigil__deadline(c->idle_since, idle_ms) < first)
      first = vigil__deadline(c->idle_since, idle_ms);
  }
  if (first == UINT64_MAX) uv_timer_stop(&loop->drain_timer);
  else uv_timer_start(&loop->drain_timer, on_drain, first > now ? first - now : 0, 0);
}

/* Closes what has waited for a request shutdown_idle_ms, and re-arms for
 * the rest. */
static void on_drain(uv_timer_t *t) {
  vigil_loop_t *loop = t->data;
  uint64_t idle_ms = loop->server->config.shutdown_idle_ms, now = uv_now(&loop->uv);
  vigil_link_t *l = loop->conns.next;
  while (l != &loop->conns) {
    vigil_link_t *next = l->next;
    vigil_conn_t *c = VIGIL_CONTAINER_OF(l, vigil_conn_t, link);
    if (vigil__conn_waiting_idle(c) && now - c->idle_since >= idle_ms) {
      vigil__conn_close_after(c);
      vigil__conn_process(c);
    }
    l = next;
  }
  drain_arm(loop);
}

void vigil__loop_drain_watch(vigil_loop_t *loop) {
  if (loop->stopping && !uv_is_active((uv_handle_t *)&loop->drain_timer)) drain_arm(loop);
}

static void on_listener_closed(uv_handle_t *h) {
  vigil_loop_t *loop = h->data;
  loop->handles_open--;
  loop_maybe_exit(loop);
}

static void loop_begin_shutdown(vigil_loop_t *loop, uint64_t grace_ms) {
  if (loop->stopping) return;
  loop->stopping = true;
  if (loop->listening) {
    loop->listening = false;
    uv_close((uv_handle_t *)&loop->listener.handle, on_listener_closed);
  }
  /* No descriptor of the socket left in this process: a connection that
   * arrives now is refused, or waits for the process that shares the
   * socket (a successor), instead of sitting in a queue nobody serves. */
  vigil__listen_close(loop->server);
  uint64_t now = uv_now(&loop->uv);
  uint64_t idle_ms = loop->server->config.shutdown_idle_ms;
  bool waiting = false;
  vigil_link_t *l = loop->conns.next;
  while (l != &loop->conns) {
    vigil_link_t *next = l->next;
    vigil_conn_t *c = VIGIL_CONTAINER_OF(l, vigil_conn_t, link);
    /* Those with a request in flight get `Connection: close` on their
     * response and close after it. One waiting for a request may still
     * bring one (answered with `Connection: close`) unless it has been
     * idle shutdown_idle_ms already: wrk, or a proxy's keep-alive pool,
     * sends its next request microseconds after a response, and would see
     * its connection closed under that request. */
    if (vigil__conn_shutdown_waits(c, now, idle_ms)) {
      waiting = true;
    } else {
      vigil__conn_close_after(c);
      vigil__conn_process(c);
    }
    l = next;
  }
  if (waiting) drain_arm(loop);
  if (grace_ms == 0) on_grace(&loop->grace_timer);
  else uv_timer_start(&loop->grace_timer, on_grace, grace_ms, 0);
  loop_maybe_exit(loop);
}

bool vigil__loop_stopping(vigil_loop_t *loop) { return loop->stopping; }

/* vigil_server_shutdown wrote the server's eventfd. Nobody reads it: it
 * stays readable for every loop, and each stops watching it here. */
static void on_shutdown_signal(uv_poll_t *h, int status, int events) {
  vigil_loop_t *loop = h->data;
  (void)status;
  (void)events;
  uv_poll_stop(h);
  loop_begin_shutdown(loop, atomic_load(&loop->server->shutdown_grace_ms));
}

/* ------------------------------------------------------------------ */
/* listening */

static void on_connection(uv_stream_t *listener, int status) {
  vigil_loop_t *loop = listener->data;
  if (status < 0) return; /* EMFILE and friends: try again next time */
  vigil__conn_accept(loop);
  loop_note_open(loop);
}

/* Loop `index` listens on `fd` (which it owns from here on, even on
 * error): its own duplicate of the server's socket, or with reuse_port a
 * socket of its own (listen.c). */
static int loop_listen(vigil_server_t *s, vigil_loop_t *loop, int fd) {
  int r;
  if (s->listen_unix) {
    uv_pipe_init(&loop->uv, &loop->listener.pipe, 0);
    r = uv_pipe_open(&loop->listener.pipe, fd);
  } else {
    uv_tcp_init(&loop->uv, &loop->listener.tcp);
    r = uv_tcp_open(&loop->listener.tcp, fd);
  }
  loop->listener.handle.data = loop;
  loop->handles_open++;
  if (r != 0) close(fd); /* not the handle's: uv_close will not close it */
  if (r == 0) r = uv_listen(&loop->listener.stream, s->config.backlog, on_connection);
  if (r != 0) {
    uv_close(&loop->listener.handle, on_handle_closed);
    uv_run(&loop->uv, UV_RUN_NOWAIT);
    return r;
  }
  loop->listening = true;
  return 0;
}

/* ------------------------------------------------------------------ */
/* loop lifetime */

static int loop_new(vigil_server_t *s, unsigned index, vigil_loop_t **out) {
  vigil_loop_t *loop = calloc(1, sizeof *loop);
  if (loop == NULL) return VIGIL_ENOMEM;
  loop->slab = malloc(VIGIL_SLAB_SIZE);
  if (loop->slab == NULL) {
    free(loop);
    return VIGIL_ENOMEM;
  }
  atomic_init(&loop->refs, 1);
  loop->server = s;
  loop->index = index;
  loop->hup_fd = -1;
  pthread_mutex_init(&loop->qlock, NULL);
  vigil__list_init(&loop->conns);
  vigil__list_init(&loop->watch);
  vigil__list_init(&loop->dirty);
  vigil__list_init(&loop->user_timers);
  int r = uv_loop_init(&loop->uv);
  if (r != 0) {
    vigil__loop_unref(loop);
    return r;
  }
  loop->uv.data = loop;
  r = uv_poll_init(&loop->uv, &loop->shutdown_poll, s->shutdown_fd);
  if (r != 0) {
    uv_loop_close(&loop->uv);
    vigil__loop_unref(loop);
    return r;
  }
  uv_async_init(&loop->uv, &loop->async, on_async);
  uv_prepare_init(&loop->uv, &loop->prepare);
  uv_timer_init(&loop->uv, &loop->watch_timer);
  uv_timer_init(&loop->uv, &loop->grace_timer);
  uv_timer_init(&loop->uv, &loop->drain_timer);
  uv_timer_init(&loop->uv, &loop->tick_timer);
  uv_timer_init(&loop->uv, &loop->trim_timer);
  /* Not a reason to keep running: the loop exits with a trim pending. */
  uv_unref((uv_handle_t *)&loop->trim_timer);
  for (int k = 0; k < T_KINDS; k++) vigil__list_init(&loop->timers[k]);
  loop->async.data = loop->prepare.data = loop;
  loop->watch_timer.data = loop->grace_timer.data = loop->tick_timer.data = loop;
  loop->drain_timer.data = loop;
  loop->trim_timer.data = loop;
  loop->shutdown_poll.data = loop;
  loop->handles_open = 8;
  uv_prepare_start(&loop->prepare, on_prepare);
  uv_poll_start(&loop->shutdown_poll, UV_READABLE, on_shutdown_signal);
  /* The hang-up epoll instance now, not at the first pause: one descriptor
   * per loop for its life, rather than one appearing under load (a program
   * counting its descriptors would take it for a leak). Failing here is not fatal:
   * the first pause tries again, then falls back to the watch timer.
   * VIGIL_HUP_EPOLL=0 in the environment (tests, debugging) forces that
   * fallback. */
  const char *hup_env = getenv("VIGIL_HUP_EPOLL");
  loop->hup_disabled = hup_env != NULL && strcmp(hup_env, "0") == 0;
  (void)hup_open(loop);
  /* The watch timer must not keep the loop from noticing it is idle, but
   * while it runs it has work: keep it referenced. */
  *out = loop;
  return 0;
}

/* Tear down a loop that never started its thread (start failed). */
static void loop_discard(vigil_loop_t *loop) {
  pthread_mutex_lock(&loop->qlock);
  loop->qclosed = true;
  pthread_mutex_unlock(&loop->qlock);
  if (loop->listening) {
    loop->listening = false;
    uv_close(&loop->listener.handle, on_handle_closed);
  }
  uv_close((uv_handle_t *)&loop->async, on_handle_closed);
  uv_close((uv_handle_t *)&loop->prepare, on_handle_closed);
  uv_close((uv_handle_t *)&loop->watch_timer, on_handle_closed);
  uv_close((uv_handle_t *)&loop->grace_timer, on_handle_closed);
  uv_close((uv_handle_t *)&loop->drain_timer, on_handle_closed);
  uv_close((uv_handle_t *)&loop->tick_timer, on_handle_closed);
  uv_close((uv_handle_t *)&loop->trim_timer, on_handle_closed);
  uv_close((uv_handle_t *)&loop->shutdown_poll, on_handle_closed);
  if (loop->hup_fd >= 0) uv_close((uv_handle_t *)&loop->hup_poll, on_hup_closed);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  uv_loop_close(&loop->uv);
}

static void loop_thread(void *arg) {
  vigil_loop_t *loop = arg;
  vigil_server_t *s = loop->server;
  vigil__loop_set_current(loop);
  /* Ops queued before this thread started were queued (not run inline):
   * the async handle is already pending for them. */
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  /* The loop ran out of handles: every connection was closed and freed,
   * and every handle of the loop's own closed. */
  VIGIL_ASSERT(vigil__list_empty(&loop->conns) && loop->handles_open == 0);
  int r = uv_loop_close(&loop->uv);
  VIGIL_ASSERT(r == 0);
  (void)r;
  vigil__loop_set_current(NULL);
  unsigned running = atomic_fetch_sub(&s->loops_running, 1);
  VIGIL_ASSERT(running > 0);
  if (running == 1 && s->config.on_stopped)
    s->config.on_stopped(s, s->config.userdata);
}

/* ------------------------------------------------------------------ */
/* public API */

int vigil_server_new(vigil_server_t **out, const vigil_config_t *config) {
  if (out == NULL || config == NULL || config->struct_size == 0 ||
      config->struct_size > sizeof(vigil_config_t))
    return VIGIL_EINVAL;
  vigil_server_t *s = calloc(1, sizeof *s);
  if (s == NULL) return VIGIL_ENOMEM;
  /* An older caller's smaller struct: the fields it lacks keep defaults. */
  vigil_config_init(&s->config);
  memcpy(&s->config, config, config->struct_size);
  s->config.struct_size = sizeof s->config;
  vigil_config_t *c = &s->config;
  if (c->on_request == NULL ||
      (c->host == NULL && c->unix_path == NULL && c->listen_fd < 0) ||
      (unsigned)c->proxy_protocol > VIGIL_PROXY_ANY ||
      c->tcp_keepalive_idle_ms > VIGIL__KEEPALIVE_MAX_MS ||
      c->tcp_keepalive_interval_ms > VIGIL__KEEPALIVE_MAX_MS ||
      c->tcp_keepalive_count > VIGIL__KEEPALIVE_MAX_COUNT) {
    free(s);
    return VIGIL_EINVAL;
  }
  if (c->loops == 0) c->loops = 1;
  if (c->backlog <= 0) c->backlog = 1024;
  if (c->read_buffer_limit < 1024) c->read_buffer_limit = 1024;
  /* The largest PROXY header we take must fit in what is read before
   * reading pauses. */
  if (c->proxy_protocol && c->read_buffer_limit < VIGIL__PROXY_MAX)
    c->read_buffer_limit = VIGIL__PROXY_MAX;
  if (c->write_buffer_limit == 0) c->write_buffer_limit = 64 * 1024;
  if (c->max_header_bytes < 256) c->max_header_bytes = 256;
  if (c->max_chunk_ext_bytes == 0) c->max_chunk_ext_bytes = 1024;
  s->host = strdup(c->host != NULL ? c->host : "");
  c->host = s->host;
  const char *want_unix = c->unix_path; /* the caller's, or the default */
  s->unix_path = want_unix != NULL ? strdup(want_unix) : NULL;
  c->unix_path = s->unix_path;
  if (s->host == NULL || (s->unix_path == NULL) != (want_unix == NULL)) {
    free(s->host);
    free(s->unix_path);
    free(s);
    return VIGIL_ENOMEM;
  }
  s->listen_sock = -1;
  pthread_mutex_init(&s->listen_lock, NULL);
  s->nloops = c->loops;
  s->port = -1;
  /* The one way into the loops that a signal handler may take
   * (vigil_server_shutdown): a write to an eventfd each loop polls. Made
   * here, not in start, so that it exists before `started` is published: a
   * signal during start is not lost. */
  s->shutdown_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->shutdown_fd < 0) {
    int err = -errno;
    free(s->host);
    free(s->unix_path);
    pthread_mutex_destroy(&s->listen_lock);
    free(s);
    return err;
  }
  atomic_init(&s->next_conn_id, 1);
  *out = s;
  return 0;
}

int vigil_server_start(vigil_server_t *s) {
  if (s == NULL) return VIGIL_EINVAL;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&s->started, &expected, 1))
    return VIGIL_EALREADY;
  /* A write to a socket the peer reset raises SIGPIPE; libuv does not mask
   * it, and a server must never die of a client leaving. */
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);

  s->loops = calloc(s->nloops, sizeof *s->loops);
  if (s->loops == NULL) {
    atomic_store(&s->started, 0);
    return VIGIL_ENOMEM;
  }
  int r = vigil__listen_open(s);
  unsigned made = 0;
  for (; r == 0 && made < s->nloops; made++) {
    r = loop_new(s, made, &s->loops[made]);
    if (r != 0) break;
    int fd;
    r = vigil__listen_loop_fd(s, made, &fd);
    if (r == 0) r = loop_listen(s, s->loops[made], fd);
    if (r != 0) {
      made++;
      break;
    }
  }
  if (r != 0) {
    vigil__listen_close(s);
    for (unsigned i = 0; i < made; i++) {
      loop_discard(s->loops[i]);
      vigil__loop_unref(s->loops[i]);
    }
    free(s->loops);
    s->loops = NULL;
    s->port = -1;
    /* A shutdown that came during the failed start (a signal) is void:
     * forget it, so that a later start can be shut down. */
    uint64_t drained;
    while (read(s->shutdown_fd, &drained, sizeof drained) > 0) {
    }
    atomic_store(&s->shutdown_requested, 0);
    atomic_store(&s->started, 0);
    return r;
  }
  atomic_store(&s->loops_running, s->nloops);
  for (unsigned i = 0; i < s->nloops; i++) {
    r = uv_thread_create(&s->loops[i]->thread, loop_thread, s->loops[i]);
    if (r != 0) abort(); /* cannot unwind running loops sanely */
  }
  if (s->config.listen_fd >= 0) vigil__handover_ready(s);
  return 0;
}

int vigil_server_port(const vigil_server_t *s) {
  if (s == NULL || s->port < 0) return VIGIL_EINVAL;
  return s->port;
}

/* Async-signal-safe (a SIGTERM handler may call it): lock-free atomics and
 * one write(2), no allocation, no lock. The loops begin the shutdown when
 * they see the eventfd readable, never inside the caller - not even on a
 * loop thread, where the caller may be a signal handler that interrupted
 * libuv. */
int vigil_server_shutdown(vigil_server_t *s, uint64_t grace_ms) {
  if (s == NULL || !atomic_load(&s->started) || s->shutdown_fd < 0)
    return VIGIL_EINVAL;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&s->shutdown_requested, &expected, 1))
    return 0;
  atomic_store(&s->shutdown_grace_ms, grace_ms);
  int saved = errno; /* a signal handler must leave errno as it found it */
  uint64_t one = 1;
  ssize_t w;
  do w = write(s->shutdown_fd, &one, sizeof one);
  while (w < 0 && errno == EINTR);
  errno = saved;
  /* EAGAIN cannot happen: the counter is written once. */
  return 0;
}

int vigil_server_wait(vigil_server_t *s) {
  if (s == NULL || !atomic_load(&s->started)) return VIGIL_EINVAL;
  if (s->waited) return 0;
  for (unsigned i = 0; i < s->nloops; i++) {
    if (vigil__on_loop_thread(s->loops[i])) return VIGIL_EBUSY;
  }
  for (unsigned i = 0; i < s->nloops; i++) uv_thread_join(&s->loops[i]->thread);
  s->waited = true;
  return 0;
}

void vigil_server_free(vigil_server_t *s) {
  if (s == NULL) return;
  if (atomic_load(&s->started)) {
    vigil_server_shutdown(s, 0);
    vigil_server_wait(s);
    for (unsigned i = 0; i < s->nloops; i++) vigil__loop_unref(s->loops[i]);
    free(s->loops);
  }
  if (s->shutdown_fd >= 0) close(s->shutdown_fd);
  vigil__listen_close(s); /* a start that failed left none; idempotent */
  pthread_mutex_destroy(&s->listen_lock);
  free(s->host);
  free(s->unix_path);
  free(s);
}

void vigil_server_stats(const vigil_server_t *s, vigil_stats_t *st) {
  memset(st, 0, sizeof *st);
  if (s == NULL || s->loops == NULL) return;
  for (unsigned i = 0; i < s->nloops; i++) {
    vigil_loop_t *l = s->loops[i];
    st->connections_accepted += atomic_load(&l->accepted);
    st->connections_open += atomic_load(&l->open);
    st->requests_total += atomic_load(&l->requests);
    st->requests_live += atomic_load(&l->live);
    st->requests_cancelled += atomic_load(&l->cancelled);
    st->bad_requests += atomic_load(&l->bad);
    st->connections_idle += atomic_load(&l->idle);
    st->connections_hijacked += atomic_load(&l->hijacked);
  }
}
