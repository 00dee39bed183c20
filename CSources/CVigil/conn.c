/* conn.c - one connection: its state machine (the phases and the only
 * function that changes them), its reads, its closing, its timeouts.
 *
 * The read is always armed (golang/go#15224: "make http1 Server always in a
 * Read"), from accept to close: while a head arrives, while the body is
 * read, while the handler runs, while the response is written, while idle.
 * That is how a FIN, an RST or a read error is seen the moment it happens,
 * and turned into the end of the request in flight. Bytes that arrive ahead
 * (the next pipelined request) are kept in conn->in for the next parse; they
 * are not a disconnect (golang/go#20617, #23921). The one pause is
 * backpressure: past read_buffer_limit unconsumed bytes we stop reading and
 * have the kernel report the socket's hang-up instead (server.c,
 * "hang-ups"), so a disconnect is still noticed at once.
 *
 * Phases (vigil_phase_t). Every change goes through vigil__conn_phase(),
 * which checks it against phase_next[] below in debug builds; this diagram
 * and that table say the same:
 *
 *   PROXY --PROXY header read (proxy_protocol on); at once at accept
 *         (off)--> HEAD
 *   HEAD --head parsed, body to come--> BODY_WAIT
 *   HEAD --head parsed, no body or the message already whole--> RESPONDING
 *   BODY_WAIT, BODY_PAUSED --body_start--> BODY --body_pause--> BODY_PAUSED
 *   BODY, BODY_PAUSED (paused inside on_body) --message complete--> RESPONDING
 *   BODY_WAIT, BODY, BODY_PAUSED --handler finished, body unread:
 *       small enough--> DRAIN --complete, too big, bad framing--> RESPONDING
 *       otherwise (close_after)--> RESPONDING
 *   RESPONDING --response ended and handler finished--> HEAD (next request)
 *   BODY_WAIT, BODY, BODY_PAUSED, RESPONDING --hijack--> HIJACKED
 *   any but CLOSING --close_after / FIN / bad input / failure--> CLOSING
 *   CLOSING --flushed--> shutdown, linger, close (no phase change)
 *   any --RST, read or write error, cancel--> closed at once (conn_abort;
 *         c->closing, the phase stays)
 *
 * PROXY is a connection's first phase, left once: a PROXY protocol header
 * (proxy.c) comes before the first request only, so a keep-alive
 * connection's later heads never pass through it.
 *
 * Hijack from BODY or BODY_PAUSED: vigil_request_hijack refuses a started
 * body on the calling thread, but a body_start from another thread may run
 * on the loop between that check and the hijack op.
 */
#include "vigil_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define LINGER_MS 500
#define LINGER_STOPPING_MS 50

/* ------------------------------------------------------------------ */
/* phases: the allowed transitions (the diagram above), and the one
 * function that makes them. */

#define P(x) (1u << (x))
static const uint16_t phase_next[PHASE_CLOSING + 1] = {
  [PHASE_PROXY] = P(PHASE_HEAD) | P(PHASE_CLOSING),
  [PHASE_HEAD] = P(PHASE_BODY_WAIT) | P(PHASE_RESPONDING) | P(PHASE_CLOSING),
  [PHASE_BODY_WAIT] = P(PHASE_BODY) | P(PHASE_RESPONDING) | P(PHASE_DRAIN) |
                      P(PHASE_HIJACKED) | P(PHASE_CLOSING),
  [PHASE_BODY] = P(PHASE_BODY_PAUSED) | P(PHASE_RESPONDING) | P(PHASE_DRAIN) |
                 P(PHASE_HIJACKED) | P(PHASE_CLOSING),
  [PHASE_BODY_PAUSED] = P(PHASE_BODY) | P(PHASE_RESPONDING) | P(PHASE_DRAIN) |
                        P(PHASE_HIJACKED) | P(PHASE_CLOSING),
  [PHASE_RESPONDING] = P(PHASE_HEAD) | P(PHASE_HIJACKED) | P(PHASE_CLOSING),
  [PHASE_DRAIN] = P(PHASE_RESPONDING) | P(PHASE_CLOSING),
  [PHASE_HIJACKED] = P(PHASE_CLOSING),
  [PHASE_CLOSING] = 0, /* the last phase */
};
#undef P

static inline bool phase_allowed(vigil_phase_t from, vigil_phase_t to) {
  return (unsigned)from <= PHASE_CLOSING && (unsigned)to <= PHASE_CLOSING &&
         (phase_next[from] >> to & 1u) != 0;
}

/* Every phase change: a transition the table does not list is a bug in the
 * state machine, and stops a debug build here rather than running on in a
 * state no code expects. Compiled to one store in release builds. */
void vigil__conn_phase(vigil_conn_t *c, vigil_phase_t to) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  VIGIL_ASSERT(phase_allowed(c->phase, to));
  /* HEAD waits for a request; every phase between dispatch and the next
   * HEAD has one in flight (c->req). CLOSING may come with either. */
  VIGIL_ASSERT(to == PHASE_CLOSING || (c->req == NULL) == (to == PHASE_HEAD));
  c->phase = to;
}

/* The response in flight is the connection's last: it goes out with
 * `Connection: close`, and the connection closes once it is flushed. */
void vigil__conn_close_after(vigil_conn_t *c) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  c->close_after = true;
}

/* The observable state (Go's ConnState), its gauges and its callback. */
void vigil__conn_set_state(vigil_conn_t *c, int state) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  VIGIL_ASSERT(state >= VIGIL_CONN_NEW && state <= VIGIL_CONN_CLOSED);
  if (c->state == state) return;
  vigil_loop_t *loop = c->loop;
  /* The gauges count connections in a state: one never leaves a state it
   * was not counted in. */
  VIGIL_ASSERT(c->state != VIGIL_CONN_IDLE || atomic_load(&loop->idle) > 0);
  VIGIL_ASSERT(c->state != VIGIL_CONN_HIJACKED || atomic_load(&loop->hijacked) > 0);
  if (c->state == VIGIL_CONN_IDLE) atomic_fetch_sub(&loop->idle, 1);
  if (c->state == VIGIL_CONN_HIJACKED) atomic_fetch_sub(&loop->hijacked, 1);
  if (state == VIGIL_CONN_IDLE) atomic_fetch_add(&loop->idle, 1);
  if (state == VIGIL_CONN_HIJACKED) atomic_fetch_add(&loop->hijacked, 1);
  c->state = state;
  const vigil_config_t *cfg = &loop->server->config;
  if (cfg->on_conn_state)
    cfg->on_conn_state(c->id, (vigil_conn_state_t)state, cfg->userdata);
}

/* ------------------------------------------------------------------ */
/* input: the unparsed bytes are c->in.base[c->in_off .. c->in.len), and
 * c->in.len == 0 whenever none are left (so `c->in.len == 0` means "nothing
 * pending"). Consuming moves in_off: a batch of pipelined requests is parsed
 * in place, not moved down after each one.
 *
 * Reads go into the loop's slab. When nothing was pending, c->in *borrows*
 * the slab for the time of on_read (parsed in place: a keep-alive request
 * costs no copy and no allocation); what is left unparsed when on_read
 * returns is copied into a buffer of the connection's own (in_unborrow),
 * since the next read of any connection overwrites the slab. */

static inline const char *in_data(const vigil_conn_t *c) {
  return c->in.base + c->in_off;
}

static inline size_t in_pending(const vigil_conn_t *c) {
  return c->in.len - c->in_off;
}

static void in_consume(vigil_conn_t *c, size_t n) {
  VIGIL_ASSERT(n <= in_pending(c));
  c->in_off += n;
  if (c->in_off >= c->in.len) c->in_off = c->in.len = 0;
}

static bool in_borrowed(const vigil_conn_t *c) {
  return c->in.base == c->loop->slab;
}

static void in_free(vigil_conn_t *c) {
  if (in_borrowed(c)) c->in.base = NULL, c->in.len = c->in.cap = 0;
  else vigil__loop_buf_put(c->loop, &c->in);
  c->in_off = 0;
}

/* End of on_read: give the slab back, keeping what is unparsed. Only
 * on_read borrows, and nothing may keep a pointer into a borrowed `in`
 * (body spans are delivered before on_read returns). */
static int in_unborrow(vigil_conn_t *c) {
  if (!in_borrowed(c)) return 0;
  size_t n = in_pending(c);
  const char *rest = in_data(c);
  if (n >= VIGIL_SLAB_SIZE / 2 && !c->closing) {
    /* Most of a big read is left (a body its handler paused, a backlog
     * of pipelined requests): the connection keeps the slab, offset and
     * all, and the loop takes a new one - a malloc instead of copying
     * the bytes. Nothing else points into the slab: only on_read
     * borrows it, and this is the end of on_read. */
    char *fresh = c->loop->spare_slab;
    c->loop->spare_slab = NULL;
    if (fresh == NULL) fresh = malloc(VIGIL_SLAB_SIZE);
    if (fresh != NULL) {
      c->loop->slab = fresh;
      c->in.cap = VIGIL_SLAB_SIZE; /* all of it is the connection's now */
      return 0;
    }
  }
  in_free(c);
  if (n == 0 || c->closing) return 0;
  vigil__loop_buf_get(c->loop, &c->in);
  return vigil__buf_append(&c->in, rest, n);
}

/* ------------------------------------------------------------------ */
/* closing */

static void on_close(uv_handle_t *h) {
  vigil_conn_t *c = h->data;
  vigil_loop_t *loop = c->loop;
  VIGIL_ASSERT(vigil__on_loop_thread(loop));
  /* Freed below: on no list of the loop's any more (mark_closing took it
   * off them, and nothing puts a closing connection back), and holding no
   * request. */
  VIGIL_ASSERT(c->closing);
  VIGIL_ASSERT(!vigil__list_linked(&c->watch_link));
  VIGIL_ASSERT(!vigil__list_linked(&c->dirty_link));
  VIGIL_ASSERT(!c->hup_watched);
  for (int k = 0; k < T_KINDS; k++) VIGIL_ASSERT(!vigil__timer_armed(c, k));
  VIGIL_ASSERT(c->req == NULL && c->parsing == NULL);
  VIGIL_ASSERT(vigil__list_linked(&c->link));
  VIGIL_ASSERT(atomic_load(&loop->open) > 0 &&
               atomic_load(&loop->server->conns_open) > 0);
  vigil__conn_fail_waiters(c, VIGIL_ECANCELED);
  in_free(c);
  vigil__loop_buf_put(loop, &c->out);
  vigil__loop_buf_put(loop, &c->wbuf);
  free(c->ureq);
  free(c->proxy);
  vigil__list_remove(&c->link);
  atomic_fetch_sub_explicit(&loop->open, 1, memory_order_relaxed);
  atomic_fetch_sub(&loop->server->conns_open, 1);
  free(c);
  vigil__loop_conn_closed(loop);
}

static void detach_request(vigil_conn_t *c) {
  vigil_request_t *req = c->req;
  if (req == NULL) return;
  VIGIL_ASSERT(req->conn == c);
  c->req = NULL;
  req->conn = NULL;
  vigil__request_unref(req); /* the connection's reference */
}

/* The part of closing that makes no system call: the connection is gone
 * for every API call from here on (callbacks run after this may call back
 * in). close_now = mark_closing + close_handle. */
static void mark_closing(vigil_conn_t *c) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  VIGIL_ASSERT(!c->closing);
  c->closing = true;
  vigil__timer_disarm_all(c);
  vigil__loop_unwatch(c);
  vigil__loop_hup_del(c); /* before uv_close closes the socket */
  if (vigil__list_linked(&c->dirty_link)) vigil__list_remove(&c->dirty_link);
}

/* The part that talks to the kernel (epoll_ctl, close; a close may send our
 * FIN through the whole loopback stack before it returns). */
static void close_handle(vigil_conn_t *c) {
  if (c->parsing) {
    vigil__request_unref(c->parsing);
    c->parsing = NULL;
  }
  vigil__conn_set_state(c, VIGIL_CONN_CLOSED);
  uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void close_now(vigil_conn_t *c) {
  if (c->closing) return;
  mark_closing(c);
  if (c->req != NULL) {
    /* Only a hijacked connection closes with its request attached: the
     * request ends with the connection (no-op if it already ended). */
    vigil_request_t *req = c->req;
    vigil__conn_fail_waiters(c, VIGIL_ECANCELED);
    c->req = NULL;
    req->conn = NULL;
    vigil__request_end(req, c->read_eof ? VIGIL_REASON_CLIENT_CLOSED
                                        : VIGIL_REASON_HANDLER_FINISHED);
    vigil__request_unref(req);
  }
  close_handle(c);
}

static void begin_closing(vigil_conn_t *c);

/* The client half-closed (FIN) and the request in flight is cancelled for
 * it: the handler hears at once, but a FIN only closes the client's
 * sending side (RFC 9112 section 9.6): it can still read, so what was
 * queued for it before the cancellation is delivered, then the connection
 * closes (output_drained: shutdown; on_shutdown closes, the client's FIN
 * having come). The write timeout bounds that flush; an RST, or a write
 * failing, still closes at once. */
static void cancel_after_fin(vigil_conn_t *c) {
  vigil_request_t *req = c->req;
  c->req = NULL;
  vigil__conn_close_after(c);
  vigil__timer_disarm(c, T_HEADER);
  vigil__timer_disarm(c, T_IDLE);
  vigil__timer_disarm(c, T_BODY);
  vigil__timer_disarm(c, T_HANDLER);
  begin_closing(c); /* no more requests or body bytes parsed */
  /* Write completions first: on_request_done is the request's last
   * callback. */
  vigil__conn_fail_waiters(c, VIGIL_ECANCELED);
  if (req != NULL) {
    req->conn = NULL;
    vigil__request_end(req, VIGIL_REASON_CLIENT_CLOSED);
    vigil__request_unref(req);
  }
}

void vigil__conn_abort(vigil_conn_t *c, vigil_reason_t reason) {
  if (c->closing) return;
  if (reason == VIGIL_REASON_CLIENT_CLOSED) {
    cancel_after_fin(c);
    return;
  }
  vigil_request_t *req = c->req;
  c->req = NULL; /* ended below with the real reason, not close_now's */
  /* Mark closing first: the callbacks below may call back into the API,
   * and must find this connection gone. */
  mark_closing(c);
  /* Write completions first: on_request_done is the request's last
   * callback, and users free per-request state there. */
  vigil__conn_fail_waiters(c, VIGIL_ECANCELED);
  if (req != NULL) {
    req->conn = NULL;
    vigil__request_end(req, reason);
    vigil__request_unref(req);
  }
  /* The system calls last: the handler hears of the client's departure
   * before our close() runs, which may carry our FIN through the whole
   * loopback stack before it returns. */
  close_handle(c);
}

static void begin_closing(vigil_conn_t *c) {
  if (c->phase == PHASE_CLOSING) return;
  vigil__conn_phase(c, PHASE_CLOSING);
  vigil__conn_mark_dirty(c); /* the flush ends in output_drained */
}

/* End the request in flight with `reason` while the connection can still
 * carry an answer: `status` if no response was started, then close once it
 * is flushed. The handler is cancelled; its later calls fail. */
static void fail_request(vigil_conn_t *c, vigil_reason_t reason, int timeout,
                         int status) {
  vigil_request_t *req = c->req;
  if (req == NULL) return;
  c->req = NULL;
  req->conn = NULL;
  bool unanswered = req->resp_state == RESP_NONE;
  bool is_head = req->is_head;
  if (timeout) atomic_store(&req->timeout_kind, timeout);
  vigil__conn_fail_waiters(c, VIGIL_ECANCELED); /* before the last callback */
  vigil__request_end(req, reason);
  vigil__request_unref(req);
  if (c->closing) return;
  if (unanswered && status) vigil__conn_error_response(c, status, is_head);
  vigil__conn_close_after(c);
  begin_closing(c);
}

static void update_reading(vigil_conn_t *c);

/* Bytes the client sent that we have not read (the kernel's receive
 * queue). */
static bool unread_in_kernel(vigil_conn_t *c) {
  int fd, n = 0;
  return uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

static void on_shutdown(uv_shutdown_t *sr, int status) {
  vigil_conn_t *c = sr->data;
  if (c->closing) return;
  if (status < 0) {
    close_now(c);
    return;
  }
  if (c->read_eof) {
    if (!unread_in_kernel(c)) {
      close_now(c);
      return;
    }
    /* The FIN was seen through the hang-up watch while reading was paused:
     * the bytes the client sent before it are still unread, and a close()
     * with unread bytes sends an RST that destroys what we sent and the
     * client has not read yet. Read up to that FIN, discarding, as below;
     * the read's EOF closes. */
    c->read_eof = false;
  }
  /* Linger: read and discard until the client closes or the deadline, so
   * that unread request bytes do not turn our close into an RST that
   * destroys the response we just sent (Go's closeWriteAndWait). */
  c->linger_deadline = uv_now(&c->loop->uv) +
                       (vigil__loop_stopping(c->loop) ? LINGER_STOPPING_MS : LINGER_MS);
  vigil__loop_watch(c->loop, c);
  /* Reading may be paused (backpressure, a hijacked stream the handler
   * paused): the linger reads whatever the phase was. */
  update_reading(c);
}

void vigil__conn_output_drained(vigil_conn_t *c) {
  if (c->phase != PHASE_CLOSING || c->shutdown_sent || c->closing) return;
  c->shutdown_sent = true;
  if (c->ureq == NULL) c->ureq = malloc(sizeof *c->ureq);
  if (c->ureq == NULL) {
    close_now(c);
    return;
  }
  c->ureq->shutdown.data = c;
  if (uv_shutdown(&c->ureq->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
    close_now(c);
}

/* ------------------------------------------------------------------ */
/* reading */


/* Spare room in a connection's buffer worth reading into (on_alloc). */
#define OWN_READ_MIN 4096

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  vigil_conn_t *c = h->data;
  vigil_loop_t *loop = c->loop;
  size_t limit = loop->server->config.read_buffer_limit;
  size_t room = VIGIL_SLAB_SIZE;
  (void)suggested;
  /* The shared slab (on_read parses it in place or appends it to what is
   * pending): an idle connection owns no read buffer at all. With bytes
   * pending, read no further than read_buffer_limit, and straight into
   * the connection's own buffer when it has room enough to spare (a
   * paused body, a backlog of pipelined requests): what arrives then is
   * not copied from the slab. Only room it already has: a connection
   * trickling its head in never gets a bigger buffer for it. */
  if (c->phase != PHASE_CLOSING && c->in.len > 0) {
    size_t pending = in_pending(c);
    if (pending >= limit) {
      *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
      return;
    }
    if (limit - pending < room) room = limit - pending;
    VIGIL_ASSERT(!in_borrowed(c)); /* only on_read borrows */
    if (c->in_off > 0 && c->in.cap - c->in.len < room) { /* compact first */
      memmove(c->in.base, in_data(c), pending);
      c->in.len = pending;
      c->in_off = 0;
    }
    size_t spare = c->in.cap - c->in.len;
    if (spare >= OWN_READ_MIN) {
      if (spare < room) room = spare;
      *buf = uv_buf_init(c->in.base + c->in.len, (unsigned)room);
      return;
    }
  } else if (c->in.base != NULL && !in_borrowed(c) && c->in.cap >= OWN_READ_MIN &&
             (c->phase == PHASE_BODY_PAUSED || c->phase == PHASE_BODY_WAIT)) {
    /* Nothing pending, but the body waits for its handler: these bytes
     * would stay unparsed and be copied out of the slab (in_unborrow).
     * Into the emptied buffer the connection still has instead. */
    VIGIL_ASSERT(c->in_off == 0);
    if (c->in.cap < room) room = c->in.cap;
    if (limit < room) room = limit;
    *buf = uv_buf_init(c->in.base, (unsigned)room);
    return;
  }
  *buf = uv_buf_init(loop->slab, (unsigned)room);
}

/* After EOF libuv says only "EOF"; an RST that arrived behind data can look
 * the same. Ask the socket: VIGIL_REASON_NONE if it is still open (*fin
 * says whether the client's FIN came), else why it failed - a pending
 * error the kernel gave up with (keepalive, TCP_USER_TIMEOUT: reported
 * here when reading is paused) or a reset. */
static vigil_reason_t socket_failed(vigil_conn_t *c, bool *fin) {
  int fd;
  *fin = false;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) return VIGIL_REASON_NONE;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
    return vigil__io_reason(-err, VIGIL_REASON_RESET);
  if (c->handle.type == UV_NAMED_PIPE) {
    /* A Unix socket has no TCP_INFO: its peer's close or shutdown(SHUT_WR)
     * shows as POLLRDHUP (a close with unread bytes set SO_ERROR above). */
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP))) *fin = true;
    return VIGIL_REASON_NONE;
  }
  struct tcp_info ti;
  len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0) {
    if (ti.tcpi_state == TCP_CLOSE) return VIGIL_REASON_RESET;
    if (ti.tcpi_state == TCP_CLOSE_WAIT || ti.tcpi_state == TCP_LAST_ACK)
      *fin = true;
  }
  return VIGIL_REASON_NONE;
}

static void on_fin(vigil_conn_t *c) {
  c->read_eof = true;
  c->reading = false;
  if (c->loop->server->config.half_close == VIGIL_HALF_CLOSE_CANCEL) {
    if (c->req != NULL) {
      /* Like Go: the client went away; cancel what it asked for. */
      vigil__conn_abort(c, VIGIL_REASON_CLIENT_CLOSED);
    } else {
      /* Nothing in flight: send what is already answered, then close.
       * Requests buffered behind the FIN are not started. */
      begin_closing(c);
      vigil__conn_mark_dirty(c);
    }
    return;
  }
  /* Half-close "finish": keep going on what is buffered; the phases that
   * need more bytes than will ever come close the connection. */
  vigil__conn_process(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  vigil_conn_t *c = s->data;
  if (nread == 0 || c->closing) return;
  if (nread < 0) {
    if (c->phase == PHASE_CLOSING) {
      /* Lingering and the client is done too: close. Not lingering yet:
       * the output still has to go; on_shutdown closes. */
      c->read_eof = true;
      c->reading = false;
      if (c->shutdown_sent) close_now(c);
      return;
    }
    if (nread == UV_EOF) {
      bool fin;
      vigil_reason_t why = socket_failed(c, &fin);
      if (why != VIGIL_REASON_NONE) vigil__conn_abort(c, why);
      else on_fin(c);
    } else if (nread == UV_ENOBUFS) {
      update_reading(c);
    } else {
      vigil__conn_abort(c, nread == UV_ECONNRESET
                               ? VIGIL_REASON_RESET
                               : vigil__io_reason((int)nread, VIGIL_REASON_READ_FAILED));
    }
    return;
  }
  if (c->phase == PHASE_CLOSING) return; /* discarded while lingering */
  if (buf->base != c->loop->slab) {
    /* Read into the connection's own buffer, behind what is pending, or
     * into its emptied one while the body waits (on_alloc). */
    VIGIL_ASSERT(buf->base == c->in.base + c->in.len &&
                 (size_t)nread <= c->in.cap - c->in.len);
    c->in.len += (size_t)nread;
  } else if (c->in.len == 0) {
    in_free(c); /* an emptied buffer of our own: the slab serves instead */
    c->in.base = buf->base; /* borrow the slab: parsed in place */
    c->in.len = c->in.cap = (size_t)nread;
    c->in_off = 0;
  } else {
    if (c->in_off > 0) { /* compact before growing */
      memmove(c->in.base, in_data(c), in_pending(c));
      c->in.len -= c->in_off;
      c->in_off = 0;
    }
    if (vigil__buf_append(&c->in, buf->base, (size_t)nread) != 0) {
      vigil__conn_abort(c, VIGIL_REASON_READ_FAILED);
      return;
    }
  }
  if (c->state == VIGIL_CONN_NEW || c->state == VIGIL_CONN_IDLE)
    vigil__conn_set_state(c, VIGIL_CONN_ACTIVE);
  vigil__timer_disarm(c, T_IDLE);
  vigil__conn_process(c);
  /* on_close runs later (uv_close defers it): c is still ours here. */
  if (in_unborrow(c) != 0) vigil__conn_abort(c, VIGIL_REASON_READ_FAILED);
}

static void update_reading(vigil_conn_t *c) {
  if (c->closing || c->read_eof) return;
  size_t limit = c->loop->server->config.read_buffer_limit;
  bool want = c->phase == PHASE_CLOSING || in_pending(c) < limit;
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
      c->reading = true;
    vigil__loop_hup_del(c);
    if (c->linger_deadline == 0) vigil__loop_unwatch(c);
  } else if (!want && c->reading) {
    /* Backpressure: stop reading, and have the kernel tell us of a FIN or
     * an RST meanwhile (server.c, "hang-ups"), so that a client leaving is
     * still noticed while we do not read; failing that, probe it on the
     * watch timer. */
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    if (vigil__loop_hup_add(c->loop, c) != 0) vigil__loop_watch(c->loop, c);
  }
}

void vigil__conn_hangup(vigil_conn_t *c) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  if (c->closing) return;
  VIGIL_ASSERT(c->hup_watched); /* reported from loop->hup_fd only */
  bool fin;
  vigil_reason_t why = socket_failed(c, &fin);
  if (why != VIGIL_REASON_NONE) {
    vigil__conn_abort(c, why);
  } else if (fin && !c->hup_fin) {
    if (c->loop->server->config.half_close == VIGIL_HALF_CLOSE_CANCEL) {
      vigil__loop_hup_del(c);
      on_fin(c);
    } else {
      /* "finish": a FIN while paused waits until we read up to it (the
       * bytes before it are still the client's requests); an RST is still
       * of interest. */
      vigil__loop_hup_fin_seen(c);
    }
  } else {
    /* Reported, yet neither (level-triggered, it would come back at
     * once): leave it to the probe. */
    vigil__loop_hup_del(c);
    vigil__loop_watch(c->loop, c);
  }
}

void vigil__conn_watch(vigil_conn_t *c, uint64_t now) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  if (c->closing) return;
  VIGIL_ASSERT(vigil__list_linked(&c->watch_link)); /* called from loop->watch */
  if (c->linger_deadline != 0) {
    if (now >= c->linger_deadline) close_now(c);
    return;
  }
  if (c->reading || c->read_eof) {
    vigil__loop_unwatch(c);
    return;
  }
  bool fin;
  vigil_reason_t why = socket_failed(c, &fin);
  if (why != VIGIL_REASON_NONE) {
    vigil__conn_abort(c, why);
  } else if (fin &&
             c->loop->server->config.half_close == VIGIL_HALF_CLOSE_CANCEL) {
    /* In "finish" mode a FIN while paused waits until we read up to it:
     * the bytes before it are still the client's requests. */
    vigil__loop_unwatch(c);
    on_fin(c);
  }
}

/* ------------------------------------------------------------------ */
/* accepting */

/* A new connection on `loop`, its handle initialised; NULL if out of
 * memory. Listed in loop->conns from here on: close_now() frees it. */
static vigil_conn_t *conn_new(vigil_loop_t *loop, bool unix_sock) {
  VIGIL_ASSERT(vigil__on_loop_thread(loop));
  /* Zeroed: the phase starts as PHASE_PROXY, the machine's first. */
  _Static_assert(PHASE_PROXY == 0, "a new connection starts in PHASE_PROXY");
  vigil_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->loop = loop;
  c->state = -1;
  if (unix_sock) uv_pipe_init(&loop->uv, &c->pipe, 0);
  else uv_tcp_init(&loop->uv, &c->tcp);
  c->handle.data = c;
  vigil__list_init(&c->link);
  vigil__list_init(&c->watch_link);
  vigil__list_init(&c->dirty_link);
  vigil__list_init(&c->waiters);
  for (int k = 0; k < T_KINDS; k++) vigil__list_init(&c->tlink[k]);
  vigil__list_push(&loop->conns, &c->link);
  atomic_fetch_add_explicit(&loop->open, 1, memory_order_relaxed);
  atomic_fetch_add(&loop->server->conns_open, 1);
  return c;
}

/* Whole seconds for TCP_KEEPIDLE / TCP_KEEPINTVL, rounded up: a client is
 * never cut sooner than configured (vigil_server_new bounded `ms`). */
static int keepalive_seconds(uint64_t ms) {
  return (int)((ms + 999) / 1000);
}

/* How the kernel notices a client that vanished without FIN or RST
 * (vigil.h, tcp_user_timeout_ms and tcp_keepalive_*): the armed read then
 * fails with ETIMEDOUT. Failures are ignored: they leave the kernel's
 * defaults, and a socket that is not TCP (a test's socketpair) has none of
 * these. */
static void set_peer_checks(int fd, const vigil_config_t *cfg) {
  if (cfg->tcp_user_timeout_ms) {
    uint64_t uto = cfg->tcp_user_timeout_ms;
    unsigned v = uto > 0xffffffffu ? 0xffffffffu : (unsigned)uto;
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v);
  }
  if (cfg->tcp_keepalive_idle_ms == 0) return;
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0) return;
  int idle = keepalive_seconds(cfg->tcp_keepalive_idle_ms);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  if (cfg->tcp_keepalive_interval_ms) {
    int intvl = keepalive_seconds(cfg->tcp_keepalive_interval_ms);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  }
  if (cfg->tcp_keepalive_count) {
    int cnt = (int)cfg->tcp_keepalive_count;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  }
}

/* The connection's socket is ready: start serving it. */
static void conn_start(vigil_conn_t *c) {
  vigil_loop_t *loop = c->loop;
  atomic_fetch_add_explicit(&loop->accepted, 1, memory_order_relaxed);
  c->id = atomic_fetch_add(&loop->server->next_conn_id, 1);
  c->idle_since = uv_now(&loop->uv);
  if (c->handle.type == UV_NAMED_PIPE) {
    /* A Unix socket: no address worth keeping (clients' sockets are
     * unnamed), no TCP options. */
    c->peer.sin6_family = AF_UNIX;
    c->local.sin6_family = AF_UNIX;
  } else {
    int len = sizeof c->peer;
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len);
    len = sizeof c->local;
    uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&c->local, &len);
    uv_tcp_nodelay(&c->tcp, 1);
    int fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
      set_peer_checks(fd, &loop->server->config);
  }
  vigil__parser_init(c);
  vigil__head_reset(c);
  /* Without the PROXY protocol the first bytes are a request's. With it
   * off, a connection that sends a PROXY header anyway gets 400 and a
   * close from the request-line checks (checks.c): a v1 header is no
   * `method SP target SP HTTP/x.y` line, v2's signature has a NUL after
   * its CRLFs; whole or split, the same 400 (test_proxy.c). */
  if (loop->server->config.proxy_protocol == VIGIL_PROXY_OFF)
    vigil__conn_phase(c, PHASE_HEAD);
  vigil__conn_set_state(c, VIGIL_CONN_NEW);
  unsigned max = loop->server->config.max_connections;
  if (loop->stopping || (max && atomic_load(&loop->server->conns_open) > max)) {
    /* Over the limit: accepted (so it leaves the backlog) and closed at
     * once; the connections already served are not disturbed. */
    close_now(c);
    return;
  }
  vigil__timer_arm(c, T_IDLE);
  update_reading(c);
}

/* Waiting for a request: in HEAD with nothing read, or, with the PROXY
 * protocol on, still waiting for the proxy's header (the proxy sends it
 * with the request that follows). */
static bool awaits_request(const vigil_conn_t *c) {
  return c->phase == PHASE_HEAD || c->phase == PHASE_PROXY;
}

bool vigil__conn_waiting_idle(const vigil_conn_t *c) {
  return !c->closing && awaits_request(c) && c->req == NULL &&
         c->parsing == NULL && c->in.len == 0;
}

bool vigil__conn_shutdown_waits(const vigil_conn_t *c, uint64_t now,
                                uint64_t idle_ms) {
  if (idle_ms == 0 || c->closing || c->close_after) return false;
  /* A response whose head went out without `Connection: close`: the
   * client may send its next request the moment it ends (next_request
   * then drains the connection like an idle one). */
  if (c->req != NULL && (c->req->resp_state == RESP_STARTED || c->req->resp_state == RESP_ENDED))
    return true;
  if (!awaits_request(c) || c->req != NULL) return false;
  /* A head (or a PROXY header) on its way: let it finish (header
   * timeout, grace period). */
  if (c->in.len > 0 || c->parsing != NULL) return true;
  return now - c->idle_since < idle_ms;
}

void vigil__conn_accept(vigil_loop_t *loop) {
  vigil_conn_t *c = conn_new(loop, loop->listener.handle.type == UV_NAMED_PIPE);
  if (c == NULL) return;
  if (uv_accept(&loop->listener.stream, &c->stream) != 0) {
    close_now(c);
    return;
  }
  conn_start(c);
}

/* Testing hook (fuzz/): serve an already connected stream socket, such as
 * one end of a socketpair, on loop 0 - the whole request path without a
 * network. Takes ownership of fd. */
struct adopt { vigil_server_t *s; int fd; };
static void adopt_on_loop(void *ud) {
  struct adopt *a = ud;
  vigil_conn_t *c = conn_new(a->s->loops[0], false);
  if (c != NULL && uv_tcp_open(&c->tcp, a->fd) == 0) conn_start(c);
  else if (c != NULL) close_now(c);
  else close(a->fd);
  free(a);
}

int vigil__server_adopt(vigil_server_t *s, int fd) {
  struct adopt *a = malloc(sizeof *a);
  if (a == NULL) return VIGIL_ENOMEM;
  a->s = s;
  a->fd = fd;
  int r = vigil_server_post(s, 0, adopt_on_loop, a);
  if (r != 0) free(a);
  return r;
}

/* ------------------------------------------------------------------ */
/* the request cycle */

static void dispatch(vigil_conn_t *c) {
  vigil_request_t *req = c->parsing;
  vigil_server_t *s = c->loop->server;
  /* One request in flight per connection; the next waits in c->in. */
  VIGIL_ASSERT(req != NULL && c->req == NULL && c->phase == PHASE_HEAD);
  c->parsing = NULL;
  c->head_ready = false;
  c->req = req;
  c->body_read = 0;
  c->drained = 0;
  c->body_paused = false;
  /* The socket's own address, PROXY header or not: the header's
   * destination is proxy_dst. */
  memcpy(&req->local, &c->local, sizeof req->local);
  if (c->proxy != NULL) {
    /* The client's address from the PROXY header; the proxy's beside it. */
    memcpy(&req->peer, &c->proxy->src, sizeof req->peer);
    memcpy(&req->proxy_dst, &c->proxy->dst, sizeof req->proxy_dst);
    memset(&req->direct_peer, 0, sizeof req->direct_peer);
    memcpy(&req->direct_peer, &c->peer, sizeof c->peer);
    req->proxied = true;
  } else {
    /* The pooled request may hold a longer address from an earlier
     * request (a PROXY header's UNIX path): nothing of it may show. */
    memset(&req->peer, 0, sizeof req->peer);
    memcpy(&req->peer, &c->peer, sizeof c->peer);
  }
  bool has_body = req->chunked || req->content_length > 0;
  vigil__conn_phase(c, has_body && !c->msg_complete ? PHASE_BODY_WAIT
                                                   : PHASE_RESPONDING);
  c->msg_complete = false;
  vigil__conn_set_state(c, VIGIL_CONN_ACTIVE);
  vigil__timer_disarm(c, T_HEADER);
  c->served++;
  atomic_fetch_add_explicit(&c->loop->requests, 1, memory_order_relaxed);
  vigil_request_retain(req); /* the handler's reference */
  s->config.on_request(req, s->config.userdata);
  /* The handler timeout, armed only for a handler still running now: one
   * that answered and finished inside on_request (a C handler) never needs
   * it. Same deadline as arming before the call (uv_now is this loop
   * iteration's). c->req == req: the connection's reference keeps req
   * alive, and the next request cannot have been dispatched meanwhile
   * (vigil__conn_process does not re-enter). */
  if (c->req == req && !req->handler_done) vigil__timer_arm(c, T_HANDLER);
}

static void deliver_body(vigil_conn_t *c, const char *data, size_t len, int end) {
  vigil_server_t *s = c->loop->server;
  /* on_request_done is the last callback a request gets. */
  if (c->req == NULL || c->req->done_called) return;
  if (s->config.on_body) s->config.on_body(c->req, data, len, end, s->config.userdata);
}

/* The handler finished with the body unread: drain a little to keep the
 * connection, or give up on it (Go's TestHandlerFinishSkipBigContentLengthRead:
 * never read a huge body nobody wants). */
static void finish_unread_body(vigil_conn_t *c) {
  vigil_request_t *req = c->req;
  uint64_t limit = c->loop->server->config.drain_limit;
  bool expect_unanswered = req->expect_continue && !req->continue_sent;
  if (expect_unanswered || c->read_eof ||
      (!req->chunked && (uint64_t)req->content_length - c->body_read > limit)) {
    vigil__conn_close_after(c);
    vigil__conn_phase(c, PHASE_RESPONDING);
    c->msg_complete = false;
    return;
  }
  vigil__conn_phase(c, PHASE_DRAIN);
  vigil__timer_arm(c, T_BODY);
}

/* The request in flight is done on this connection: response ended and
 * handler finished. Move to the next one, or close. */
static void next_request(vigil_conn_t *c) {
  detach_request(c);
  vigil__timer_disarm(c, T_HANDLER);
  vigil__timer_disarm(c, T_BODY);
  /* During the shutdown, a response without `Connection: close` (its head
   * went out before) leaves the client free to send its next request at
   * once: the connection is drained like an idle one (one more request,
   * answered with close, or closed after shutdown_idle_ms). */
  bool stopping = vigil__loop_stopping(c->loop);
  if (c->close_after || (c->read_eof && c->in.len == 0) ||
      (stopping && c->loop->server->config.shutdown_idle_ms == 0)) {
    begin_closing(c);
    return;
  }
  vigil__conn_phase(c, PHASE_HEAD);
  vigil__head_reset(c);
  if (c->in.len == 0) {
    vigil__conn_set_state(c, VIGIL_CONN_IDLE);
    vigil__timer_arm(c, T_IDLE);
    c->idle_since = uv_now(&c->loop->uv);
    vigil__conn_drop_idle_buffers(c);
    if (stopping) vigil__loop_drain_watch(c->loop);
  }
}

/* An idle keep-alive connection keeps no buffers, so that thousands of
 * them cost little memory: what is empty goes back to the loop's spares. */
void vigil__conn_drop_idle_buffers(vigil_conn_t *c) {
  if (!c->writing) vigil__loop_buf_put(c->loop, &c->wbuf);
  if (c->out.len == 0) vigil__loop_buf_put(c->loop, &c->out);
  if (c->in.len == 0) in_free(c);
}

static void bad_input(vigil_conn_t *c, int status) {
  vigil__timer_disarm(c, T_HEADER);
  if (c->parsing) {
    vigil__request_unref(c->parsing);
    c->parsing = NULL;
  }
  in_consume(c, in_pending(c));
  /* RFC 9110 9.3.2: no body in any answer to HEAD. */
  vigil__conn_error_response(c, status, vigil__head_error_is_head(c));
  vigil__conn_close_after(c);
  begin_closing(c);
}

/* The phases' steps. Each returns false when nothing more can happen until
 * an event (bytes, a handler call, a timer), true to step again. */

/* proxy_protocol on, and the connection did not begin with a valid PROXY
 * header: closed without an answer (HAProxy's accept-proxy and nginx's
 * proxy_protocol do the same). Whatever the peer sent is not HTTP to
 * answer; it is discarded, and the close lingers as any other (so the
 * peer sees a FIN, not an RST). */
static void proxy_refuse(vigil_conn_t *c) {
  vigil__timer_disarm(c, T_HEADER);
  in_consume(c, in_pending(c));
  atomic_fetch_add_explicit(&c->loop->bad, 1, memory_order_relaxed);
  vigil__conn_close_after(c);
  begin_closing(c);
}

/* PROXY (proxy_protocol on): a header of an accepted version must come
 * whole before anything else; bytes that could still begin one wait for
 * more, under the header timeout. What follows it in the same read (the
 * first request, pipelined ones) stays in c->in for llhttp. A server's
 * shutdown sets close_after on every connection (server.c), which ends
 * this wait too. */
static bool step_proxy(vigil_conn_t *c) {
  if (c->close_after) {
    begin_closing(c);
    return true;
  }
  if (c->in.len == 0) {
    if (c->read_eof) begin_closing(c);
    return false;
  }
  unsigned versions = (unsigned)c->loop->server->config.proxy_protocol & VIGIL_PROXY_ANY;
  VIGIL_ASSERT(versions != 0); /* off, conn_start went on to HEAD */
  vigil__proxy_hdr_t h;
  int n = vigil__proxy_parse(in_data(c), in_pending(c), versions, &h);
  if (n == VIGIL__PROXY_MORE) {
    /* A header that cannot fit in what we read before pausing
     * (read_buffer_limit under VIGIL__PROXY_MAX) would never finish. */
    if (c->read_eof || in_pending(c) >= c->loop->server->config.read_buffer_limit) {
      proxy_refuse(c);
      return false;
    }
    /* A slow header (slowloris) is bounded as a slow head is. */
    if (!vigil__timer_armed(c, T_HEADER)) vigil__timer_arm(c, T_HEADER);
    return false;
  }
  if (n < 0) {
    proxy_refuse(c);
    return false;
  }
  if (h.has_addrs) {
    VIGIL_ASSERT(c->proxy == NULL); /* one header per connection */
    c->proxy = malloc(sizeof *c->proxy);
    if (c->proxy == NULL) {
      proxy_refuse(c);
      return false;
    }
    *c->proxy = h;
  }
  in_consume(c, (size_t)n);
  vigil__timer_disarm(c, T_HEADER);
  vigil__conn_phase(c, PHASE_HEAD);
  /* Nothing of a request yet (HAProxy in TCP mode sends the header on
   * connect): the connection waits for one as a new connection does. */
  if (c->in.len == 0 && !c->read_eof) vigil__timer_arm(c, T_IDLE);
  return true;
}

/* HEAD: parse a request head, and dispatch it once whole. */
static inline bool step_head(vigil_conn_t *c) {
  llhttp_errno_t err;
  /* Not on the loop's shutdown alone: a connection waiting for a request
   * then may still bring one (vigil__conn_shutdown_waits); the response
   * carries `Connection: close` (response.c), and next_request closes. */
  if (c->close_after) {
    begin_closing(c);
    return true;
  }
  if (c->in.len == 0) {
    if (c->read_eof) begin_closing(c);
    return false;
  }
  if (vigil__conn_queued(c) > c->loop->server->config.write_buffer_limit) {
    /* Output backpressure: a client that pipelines and does not read
     * would otherwise have every answer queued here, without bound. The
     * next request waits until the output drains below
     * write_buffer_limit (vigil__conn_flush resumes us), as Go stops
     * reading while its flush blocks; input stops too once it reaches
     * read_buffer_limit (update_reading). So a connection holds at most
     * both limits plus one response. */
    c->out_blocked = true;
    return false;
  }
  size_t used = vigil__parse(c, in_data(c), in_pending(c), &err);
  in_consume(c, used);
  if (err == HPE_OK) {
    /* Head incomplete: the header timeout runs from its first byte
     * (slowloris). Armed only now, not before the parse: a head that
     * arrived whole (every keep-alive and pipelined request) is
     * dispatched without arming and disarming it, and the deadline is
     * the same, uv_now being the time of this loop iteration. */
    if (!vigil__timer_armed(c, T_HEADER)) vigil__timer_arm(c, T_HEADER);
    /* Wait for more, unless no more will come. */
    if (c->read_eof) begin_closing(c);
    return false;
  }
  if ((err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) && c->head_ready) {
    dispatch(c);
    return true;
  }
  bad_input(c, vigil__parse_error_status(c));
  return false;
}

/* BODY and DRAIN: run the parser over what is buffered; false if there is
 * nothing to run it on. A parser paused after a body span may complete the
 * message without another byte (the span was the last of a Content-Length
 * body), so it runs even on an empty buffer. */
static bool body_parse(vigil_conn_t *c, size_t *used, llhttp_errno_t *err) {
  if (c->in.len == 0 && llhttp_get_errno(&c->parser) != HPE_PAUSED) {
    if (c->read_eof) vigil__conn_abort(c, VIGIL_REASON_CLIENT_CLOSED);
    return false;
  }
  *used = vigil__parse(c, c->in.len ? in_data(c) : "", in_pending(c), err);
  if (c->body_len) {
    c->body_read += c->body_len;
    vigil__timer_arm(c, T_BODY); /* progress */
  }
  return true;
}

/* BODY and DRAIN, the parse went well: an incomplete message whose client
 * sent its FIN can never complete. Else step again if the parser paused. */
static bool body_continue(vigil_conn_t *c, llhttp_errno_t err) {
  if (err == HPE_OK && c->in.len == 0 && c->read_eof) {
    /* Everything buffered is parsed, the message is incomplete, and the
     * client sent its FIN: a body resumed after the FIN was seen would
     * otherwise wait forever. */
    vigil__conn_abort(c, VIGIL_REASON_CLIENT_CLOSED);
    return false;
  }
  return err != HPE_OK;
}

/* BODY: the body flows to on_body. Its callbacks run user code, which may
 * pause the body (BODY_PAUSED) or start it again: the phase is read anew
 * after each. */
static bool step_body(vigil_conn_t *c) {
  llhttp_errno_t err;
  size_t used;
  VIGIL_ASSERT(c->req != NULL); /* BODY_* and DRAIN hold the request */
  if (c->req->handler_done) {
    /* The handler finished while its body was flowing: what is left is
     * drained (a little) or the connection closes. */
    finish_unread_body(c);
    return true;
  }
  if (!body_parse(c, &used, &err)) return false;
  if (c->body_len) {
    uint64_t limit = atomic_load(&c->req->body_limit);
    if (limit && c->body_read > limit) {
      in_consume(c, used);
      fail_request(c, VIGIL_REASON_BODY_TOO_LARGE, 0, 413);
      return false;
    }
    deliver_body(c, c->body_at, c->body_len, 0);
  }
  in_consume(c, used);
  if (c->closing) return false;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE || err == HPE_OK) {
    if (c->msg_complete) {
      c->msg_complete = false;
      vigil__timer_disarm(c, T_BODY);
      bool deliver_end = c->phase == PHASE_BODY;
      /* The body is complete before its last callback, not after: a
       * response sent from inside on_body(end=1) (a C handler) must find
       * the body read, or response.c takes the chunked body for unread and
       * closes the connection after answering. And a phase the callback
       * sets (hijack, a failure) is not overwritten. */
      vigil__conn_phase(c, PHASE_RESPONDING);
      if (deliver_end) {
        atomic_store(&c->req->body_public, BODY_DELIVERED);
        deliver_body(c, NULL, 0, 1);
      }
      if (c->closing) return false;
    } else if (c->phase == PHASE_BODY && c->body_paused) {
      vigil__conn_phase(c, PHASE_BODY_PAUSED);
      vigil__timer_disarm(c, T_BODY); /* the handler's pause, not the client's */
    }
    return body_continue(c, err);
  }
  /* A malformed body (bad chunk size, missing CRLF, oversized chunk
   * extension; 431: a trailer section, or any run of framing, over
   * max_header_bytes): the connection cannot be trusted any more. */
  if (c->req && c->req->resp_state == RESP_NONE && c->phase == PHASE_BODY) {
    vigil__conn_error_response(c, vigil__parse_error_status(c), c->req->is_head);
    vigil__conn_flush(c);
  }
  vigil__conn_abort(c, VIGIL_REASON_BAD_REQUEST);
  return false;
}

/* DRAIN: the handler finished and answered; the rest of its body is read
 * and discarded (no callbacks), up to drain_limit, to keep the
 * connection. */
static bool step_drain(vigil_conn_t *c) {
  llhttp_errno_t err;
  size_t used;
  VIGIL_ASSERT(c->req != NULL && c->req->handler_done);
  if (!body_parse(c, &used, &err)) return false;
  /* Wire bytes, framing included: one-byte chunks each with a long
   * extension would otherwise have us read a thousand times drain_limit
   * for a body nobody wants. */
  c->drained += used;
  in_consume(c, used);
  if (c->drained > c->loop->server->config.drain_limit) {
    /* More than we drain: stop and close. */
    vigil__conn_close_after(c);
    vigil__conn_phase(c, PHASE_RESPONDING);
    return true;
  }
  if (c->closing) return false;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE || err == HPE_OK) {
    if (c->msg_complete) {
      c->msg_complete = false;
      vigil__timer_disarm(c, T_BODY);
      vigil__conn_phase(c, PHASE_RESPONDING);
    }
    return body_continue(c, err);
  }
  /* A malformed body: the handler's answer still goes out, then the
   * connection closes; nothing after the bad framing is parsed (it must
   * never be read as a request). */
  vigil__conn_close_after(c);
  vigil__conn_phase(c, PHASE_RESPONDING);
  return true;
}

/* BODY_WAIT, BODY_PAUSED: the parser is paused until the handler asks for
 * the body (vigil__conn_body_start); meanwhile only the handler finishing,
 * or the client leaving, moves things. */
static bool step_body_wait(vigil_conn_t *c) {
  if (c->req && c->req->handler_done && c->req->resp_state == RESP_ENDED) {
    finish_unread_body(c);
    return true;
  }
  if (c->read_eof && c->in.len == 0) {
    /* The rest of the body can never come. */
    vigil__conn_abort(c, VIGIL_REASON_CLIENT_CLOSED);
  }
  return false;
}

/* RESPONDING: the request is read; the next one waits for the response to
 * end and the handler to finish. */
static inline bool step_responding(vigil_conn_t *c) {
  if (c->req == NULL || !c->req->handler_done ||
      c->req->resp_state != RESP_ENDED)
    return false;
  next_request(c);
  return true;
}

/* HIJACKED: buffered bytes go to the handler raw, while it has not paused
 * them, then the end once the client's FIN came. */
static bool step_hijacked(vigil_conn_t *c) {
  if (c->body_paused || c->req == NULL) return false;
  if (c->in.len > 0) {
    size_t n = in_pending(c);
    deliver_body(c, in_data(c), n, 0);
    if (c->closing) return false;
    in_consume(c, n);
    return true;
  }
  if (c->read_eof && !c->hijack_eof) {
    c->hijack_eof = true;
    deliver_body(c, NULL, 0, 1);
  }
  return false;
}

static inline bool step(vigil_conn_t *c) {
  switch (c->phase) {
    case PHASE_PROXY: return step_proxy(c);
    case PHASE_HEAD: return step_head(c);
    case PHASE_BODY_WAIT:
    case PHASE_BODY_PAUSED: return step_body_wait(c);
    case PHASE_BODY: return step_body(c);
    case PHASE_DRAIN: return step_drain(c);
    case PHASE_RESPONDING: return step_responding(c);
    case PHASE_HIJACKED: return step_hijacked(c);
    case PHASE_CLOSING: return false; /* the flush and the close are events */
  }
  return false;
}

void vigil__conn_process(vigil_conn_t *c) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  /* Re-entrancy: a C handler answering inside on_request runs ops inline,
   * and those call back here. The outer call picks the work up. */
  if (c->in_process) {
    c->reprocess = true;
    return;
  }
  c->in_process = true;
  do {
    c->reprocess = false;
    while (!c->closing && step(c)) {
    }
  } while (c->reprocess && !c->closing);
  c->in_process = false;
  if (!c->closing) {
    update_reading(c);
    vigil__conn_mark_dirty(c);
  }
}

void vigil__conn_request_progress(vigil_conn_t *c) { vigil__conn_process(c); }

void vigil__conn_body_start(vigil_conn_t *c) {
  vigil_request_t *req = c->req;
  if (req == NULL) return;
  c->body_paused = false;
  /* The body limit as the handler left it (vigil_request_set_body_limit),
   * checked before "100 Continue": a client that waits for it is told 413
   * instead of sending a body we would refuse (RFC 9110 10.1.1). */
  uint64_t limit = atomic_load(&req->body_limit);
  if (c->phase == PHASE_BODY_WAIT && limit && !req->chunked &&
      (uint64_t)req->content_length > limit) {
    fail_request(c, VIGIL_REASON_BODY_TOO_LARGE, 0, 413);
    return;
  }
  if (!req->body_started) {
    req->body_started = true;
    /* Not on a hijacked connection: its bytes are the handler's now. */
    if (c->phase != PHASE_HIJACKED) vigil__send_continue(req);
  }
  if (c->phase == PHASE_BODY_WAIT || c->phase == PHASE_BODY_PAUSED) {
    vigil__conn_phase(c, PHASE_BODY);
    vigil__timer_arm(c, T_BODY);
    vigil__conn_process(c);
  } else if (c->phase == PHASE_HIJACKED) {
    vigil__conn_process(c);
  }
}

/* The handler took the connection: from here on raw bytes, no HTTP. What
 * is buffered (an unread body, pipelined bytes) goes to it first (Go's
 * TestServerHijackGetsBackgroundByte). Delivery waits for body_start. */
void vigil__conn_hijack(vigil_conn_t *c) {
  VIGIL_ASSERT(c->req != NULL && !c->closing);
  vigil__conn_phase(c, PHASE_HIJACKED);
  /* A raw stream has no response to be the last one: it closes when the
   * handler closes it. */
  c->close_after = false;
  c->body_paused = true;
  c->hijack_eof = false;
  vigil__conn_set_state(c, VIGIL_CONN_HIJACKED);
  vigil__conn_process(c);
}

void vigil__conn_hijack_close(vigil_conn_t *c) {
  if (c->phase != PHASE_HIJACKED) return; /* closing already */
  vigil__conn_complete_waiters(c); /* before on_request_done, the last one */
  if (c->req != NULL) vigil__request_end(c->req, VIGIL_REASON_HANDLER_FINISHED);
  begin_closing(c);
}

void vigil__conn_body_pause(vigil_conn_t *c) {
  c->body_paused = true;
  if (c->phase == PHASE_BODY) {
    vigil__conn_phase(c, PHASE_BODY_PAUSED);
    vigil__timer_disarm(c, T_BODY);
  }
}

void vigil__conn_timeout(vigil_conn_t *c, int kind) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  VIGIL_ASSERT(kind >= 0 && kind < T_KINDS);
  if (c->closing) return;
  switch (kind) {
    case T_HEADER:
      /* A head that started and did not finish in time (slowloris). */
      if (c->phase == PHASE_HEAD) bad_input(c, 408);
      /* A PROXY header too slow: closed without an answer. */
      else if (c->phase == PHASE_PROXY) proxy_refuse(c);
      break;
    case T_IDLE:
      if ((c->phase == PHASE_HEAD || c->phase == PHASE_PROXY) && c->req == NULL &&
          c->in.len == 0)
        close_now(c);
      break;
    case T_BODY:
      if (c->phase == PHASE_BODY) fail_request(c, VIGIL_REASON_TIMED_OUT, VIGIL_TIMEOUT_BODY, 408);
      else if (c->phase == PHASE_DRAIN) close_now(c);
      break;
    case T_WRITE: {
      /* "No progress", not "not done": the client took some of the write
       * in flight since the deadline was armed (vigil__conn_flush), so it
       * is reading, slowly maybe. Look again one period later: a stall is
       * noticed between one and two periods after the last byte the client
       * took. */
      size_t left = vigil__conn_unacked(c);
      if (c->writing && left < c->write_mark) {
        c->write_mark = left;
        vigil__timer_arm(c, T_WRITE);
        break;
      }
      if (c->req) atomic_store(&c->req->timeout_kind, VIGIL_TIMEOUT_WRITE);
      vigil__conn_abort(c, VIGIL_REASON_TIMED_OUT);
      break;
    }
    case T_HANDLER:
      if (c->req && !c->req->handler_done && c->phase != PHASE_HIJACKED)
        fail_request(c, VIGIL_REASON_TIMED_OUT, VIGIL_TIMEOUT_HANDLER, 503);
      break;
  }
}
