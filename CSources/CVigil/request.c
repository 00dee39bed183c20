/* request.c - the request object: references, head accessors, the
 * cancellation reason with its callbacks, and vigil_request_finish.
 *
 * The reason is the one piece of state every thread may race on: the loop
 * sets it when the connection fails, the handler's thread sets it (through
 * the loop) when it finishes. A compare-and-swap from NONE makes the first
 * one win, so clientClosed cannot be overwritten by a later
 * handlerFinished and vice versa. */
#include "vigil_internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REQUEST_RESET_FROM offsetof(vigil_request_t, refs)

/* req->cancel_regs once the request ended and its callbacks were taken. */
static char regs_fired_mark;
#define REGS_FIRED ((vigil_cancel_reg_t *)(void *)&regs_fired_mark)

vigil_request_t *vigil__request_new(vigil_loop_t *loop, vigil_conn_t *conn) {
  /* Loop thread only (the parser's on_message_begin): the pool is ours. */
  VIGIL_ASSERT(vigil__on_loop_thread(loop));
  vigil_request_t *req = loop->req_pool;
  if (req != NULL) {
    VIGIL_ASSERT(loop->req_pool_n > 0 && atomic_load(&req->refs) == 0);
    loop->req_pool = req->pool_next;
    loop->req_pool_n--;
    req->strings.len = 0;
  } else {
    req = malloc(sizeof *req);
    if (req == NULL) return NULL;
    memset(req, 0, REQUEST_RESET_FROM);
  }
  req->pool_next = NULL;
  memset((char *)req + REQUEST_RESET_FROM, 0, sizeof *req - REQUEST_RESET_FROM);
  atomic_init(&req->refs, 1); /* the connection's */
  vigil__loop_ref(loop);
  req->loop = loop;
  req->conn = conn;
  req->conn_id = conn->id;
  req->headers = req->inline_headers;
  req->headers_cap = VIGIL_INLINE_HEADERS;
  req->resp_remaining = -1;
  atomic_init(&req->body_limit, loop->server->config.max_body_bytes);
  atomic_fetch_add_explicit(&loop->live, 1, memory_order_relaxed);
  return req;
}

static void request_destroy(vigil_request_t *req) {
  vigil__buf_free(&req->strings);
  free(req);
}

static void request_free(vigil_request_t *req) {
  vigil_loop_t *loop = req->loop;
  vigil_cancel_reg_t *r = atomic_load_explicit(&req->cancel_regs, memory_order_acquire);
  if (r == REGS_FIRED) r = NULL;
  while (r) { /* only if the request never ended (cannot happen) */
    vigil_cancel_reg_t *next = r->next;
    free(r);
    r = next;
  }
  if (req->headers != req->inline_headers) free(req->headers);
  /* Back to the pool only on the loop thread, which alone touches it. The
   * last reference dropped there (acq_rel above) orders every other
   * thread's use of this request before the reuse. */
  if (VIGIL_POOLS && vigil__on_loop_thread(loop) &&
      loop->req_pool_n < VIGIL_REQ_POOL_MAX &&
      req->strings.cap <= VIGIL_REQ_POOL_STRINGS_MAX) {
    req->pool_next = loop->req_pool;
    loop->req_pool = req;
    loop->req_pool_n++;
  } else {
    request_destroy(req);
  }
  atomic_fetch_sub_explicit(&loop->live, 1, memory_order_relaxed);
  vigil__loop_unref(loop);
}

void vigil__request_pool_free(vigil_loop_t *loop) {
  while (loop->req_pool) {
    vigil_request_t *req = loop->req_pool;
    loop->req_pool = req->pool_next;
    request_destroy(req);
  }
  loop->req_pool_n = 0;
}

void vigil__request_unref(vigil_request_t *req) {
  unsigned old = atomic_fetch_sub_explicit(&req->refs, 1, memory_order_acq_rel);
  VIGIL_ASSERT(old > 0); /* a release too many */
  if (old == 1) request_free(req);
}

void vigil_request_retain(vigil_request_t *req) {
  unsigned old = atomic_fetch_add_explicit(&req->refs, 1, memory_order_relaxed);
  VIGIL_ASSERT(old > 0); /* retaining a request already released */
  (void)old;
}

void vigil_request_release(vigil_request_t *req) { vigil__request_unref(req); }

void vigil_request_set_data(vigil_request_t *req, void *data) {
  atomic_store_explicit(&req->data, data, memory_order_release);
}

void *vigil_request_get_data(const vigil_request_t *req) {
  return atomic_load_explicit(&((vigil_request_t *)req)->data,
                              memory_order_acquire);
}

/* ------------------------------------------------------------------ */
/* head */

int vigil__request_add_header(vigil_request_t *req) {
  if (req->nheaders == req->headers_cap) {
    uint32_t cap = req->headers_cap * 2;
    vigil_hdr_index_t *h = malloc(cap * sizeof *h);
    if (h == NULL) return VIGIL_ENOMEM;
    memcpy(h, req->headers, req->nheaders * sizeof *h);
    if (req->headers != req->inline_headers) free(req->headers);
    req->headers = h;
    req->headers_cap = cap;
  }
  vigil_hdr_index_t *h = &req->headers[req->nheaders++];
  memset(h, 0, sizeof *h);
  h->name_off = (uint32_t)req->strings.len;
  return 0;
}

const char *vigil_request_method(const vigil_request_t *req, size_t *len) {
  if (len) *len = strlen(req->method);
  return req->method;
}

const char *vigil_request_target(const vigil_request_t *req, size_t *len) {
  if (len) *len = req->target_len;
  return req->strings.base ? req->strings.base : "";
}

int vigil_request_version(const vigil_request_t *req) { return req->version; }

size_t vigil_request_header_count(const vigil_request_t *req) {
  return req->nheaders;
}

int vigil_request_header_at(const vigil_request_t *req, size_t i,
                            const char **name, size_t *name_len,
                            const char **value, size_t *value_len) {
  if (i >= req->nheaders) return VIGIL_EINVAL;
  const vigil_hdr_index_t *h = &req->headers[i];
  if (name) *name = req->strings.base + h->name_off;
  if (name_len) *name_len = h->name_len;
  if (value) *value = req->strings.base + h->value_off;
  if (value_len) *value_len = h->value_len;
  return 0;
}

const char *vigil_request_header(const vigil_request_t *req, const char *name,
                                 size_t *value_len) {
  size_t n = strlen(name);
  for (uint32_t i = 0; i < req->nheaders; i++) {
    const vigil_hdr_index_t *h = &req->headers[i];
    if (h->name_len == n &&
        strncasecmp(req->strings.base + h->name_off, name, n) == 0) {
      if (value_len) *value_len = h->value_len;
      return req->strings.base + h->value_off;
    }
  }
  return NULL;
}

int64_t vigil_request_content_length(const vigil_request_t *req) {
  return req->chunked ? -1 : req->content_length;
}

int vigil_request_has_body(const vigil_request_t *req) {
  return req->chunked || req->content_length > 0;
}

int vigil_request_remote_addr(const vigil_request_t *req,
                              struct sockaddr_storage *addr) {
  if (req == NULL || addr == NULL) return VIGIL_EINVAL;
  if (req->peer.ss_family == 0) return VIGIL_EINVAL;
  memcpy(addr, &req->peer, sizeof *addr);
  return 0;
}

int vigil_request_peer_addr(const vigil_request_t *req,
                            struct sockaddr_storage *addr) {
  if (req == NULL || addr == NULL) return VIGIL_EINVAL;
  if (!req->proxied) return vigil_request_remote_addr(req, addr);
  if (req->direct_peer.ss_family == 0) return VIGIL_EINVAL;
  memcpy(addr, &req->direct_peer, sizeof *addr);
  return 0;
}

int vigil_request_proxy_dest_addr(const vigil_request_t *req,
                                  struct sockaddr_storage *addr) {
  if (req == NULL || addr == NULL || !req->proxied) return VIGIL_EINVAL;
  memcpy(addr, &req->proxy_dst, sizeof *addr);
  return 0;
}

int vigil_request_local_addr(const vigil_request_t *req,
                             struct sockaddr_storage *addr) {
  if (req == NULL || addr == NULL) return VIGIL_EINVAL;
  if (req->local.sin6_family == 0) return VIGIL_EINVAL;
  memset(addr, 0, sizeof *addr);
  memcpy(addr, &req->local, sizeof req->local);
  return 0;
}

unsigned vigil_request_loop(const vigil_request_t *req) {
  return req->loop->index;
}

uint64_t vigil_request_connection_id(const vigil_request_t *req) {
  return req->conn_id;
}

/* ------------------------------------------------------------------ */
/* cancellation */

vigil_timeout_t vigil_request_timeout(const vigil_request_t *req) {
  return (vigil_timeout_t)atomic_load(&((vigil_request_t *)req)->timeout_kind);
}

int vigil_request_set_body_limit(vigil_request_t *req, uint64_t max_bytes) {
  if (req == NULL) return VIGIL_EINVAL;
  atomic_store(&req->body_limit, max_bytes);
  return 0;
}

vigil_reason_t vigil_request_reason(const vigil_request_t *req) {
  return (vigil_reason_t)atomic_load_explicit(
      &((vigil_request_t *)req)->reason, memory_order_acquire);
}

/* The public numbers are llhttp's (method_id holds an llhttp_method_t). */
_Static_assert((int)VIGIL_METHOD_DELETE == (int)HTTP_DELETE &&
                   (int)VIGIL_METHOD_GET == (int)HTTP_GET &&
                   (int)VIGIL_METHOD_HEAD == (int)HTTP_HEAD &&
                   (int)VIGIL_METHOD_POST == (int)HTTP_POST &&
                   (int)VIGIL_METHOD_PUT == (int)HTTP_PUT &&
                   (int)VIGIL_METHOD_CONNECT == (int)HTTP_CONNECT &&
                   (int)VIGIL_METHOD_OPTIONS == (int)HTTP_OPTIONS &&
                   (int)VIGIL_METHOD_PATCH == (int)HTTP_PATCH,
               "vigil_method_t follows llhttp_method_t");

vigil_method_t vigil_request_method_id(const vigil_request_t *req) {
  switch (req->method_id) { /* head: immutable once on_request ran */
    case HTTP_DELETE: case HTTP_GET: case HTTP_HEAD: case HTTP_POST:
    case HTTP_PUT: case HTTP_CONNECT: case HTTP_OPTIONS: case HTTP_PATCH:
      return (vigil_method_t)req->method_id;
    default: return VIGIL_METHOD_OTHER; /* VIGIL__METHOD_OTHER included */
  }
}

int vigil_request_hijacked(const vigil_request_t *req) {
  return atomic_load(&((vigil_request_t *)req)->resp_public) == RESP_HIJACKED;
}

int vigil__reason_error(vigil_reason_t reason) {
  switch (reason) {
    case VIGIL_REASON_NONE: return 0;
    case VIGIL_REASON_SERVER_SHUTDOWN: return VIGIL_ESHUTDOWN;
    case VIGIL_REASON_HANDLER_FINISHED: return VIGIL_EALREADY;
    default: return VIGIL_ECANCELED;
  }
}

static void run_regs(vigil_request_t *req, vigil_reason_t reason) {
  /* acq_rel: sees every registration pushed before (their release CAS). */
  vigil_cancel_reg_t *r =
      atomic_exchange_explicit(&req->cancel_regs, REGS_FIRED, memory_order_acq_rel);
  if (r == REGS_FIRED) r = NULL;
  while (r) {
    vigil_cancel_reg_t *next = r->next;
    r->cb(req, reason, r->userdata);
    free(r);
    r = next;
  }
}

bool vigil__request_end(vigil_request_t *req, vigil_reason_t reason) {
  VIGIL_ASSERT(vigil__on_loop_thread(req->loop) && reason != VIGIL_REASON_NONE);
  int expected = VIGIL_REASON_NONE;
  /* seq_cst, not acq_rel: vigil__loop_submit reads the reason after raising
   * queued_cbs, and this reads queued_cbs after setting the reason (below):
   * one of the two must see the other's write. */
  bool won = atomic_compare_exchange_strong_explicit(
      &req->reason, &expected, (int)reason, memory_order_seq_cst,
      memory_order_seq_cst);
  if (won && reason != VIGIL_REASON_HANDLER_FINISHED)
    atomic_fetch_add_explicit(&req->loop->cancelled, 1, memory_order_relaxed);
  /* on_request_done is the last callback for the request, delivered once:
   * with the cancellation if it came first, else with "handlerFinished". */
  if (!req->done_called) {
    req->done_called = true;
    /* Writes from other threads still queued for the loop: their
     * completions (with the error) come first. */
    if (atomic_load(&req->queued_cbs) > 0) vigil__loop_run_queued(req->loop, req);
    vigil_reason_t final = (vigil_reason_t)atomic_load(&req->reason);
    vigil_server_t *s = req->loop->server;
    run_regs(req, final);
    if (s->config.on_request_done)
      s->config.on_request_done(req, final, s->config.userdata);
  }
  return won;
}

int vigil_request_on_cancel(vigil_request_t *req, vigil_cancel_cb cb,
                            void *userdata) {
  if (req == NULL || cb == NULL) return VIGIL_EINVAL;
  vigil_cancel_reg_t *r = malloc(sizeof *r);
  if (r == NULL) return VIGIL_ENOMEM;
  r->cb = cb;
  r->userdata = userdata;
  vigil_cancel_reg_t *head = atomic_load_explicit(&req->cancel_regs, memory_order_acquire);
  while (head != REGS_FIRED) {
    r->next = head;
    if (atomic_compare_exchange_weak_explicit(&req->cancel_regs, &head, r,
                                              memory_order_release,
                                              memory_order_acquire))
      return 0;
  }
  /* The request ended already (its reason is set before the swap): now. */
  free(r);
  cb(req, vigil_request_reason(req), userdata);
  return 0;
}

/* ------------------------------------------------------------------ */
/* finish */

void vigil_request_finish(vigil_request_t *req) {
  if (req == NULL) return;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&req->finished, &expected, 1))
    return; /* a second finish is a caller bug; ignore it rather than crash */
  if (vigil__op_submit_simple(req, OP_FINISH) != 0) {
    /* The loop is gone: the server stopped and every request in flight was
     * ended with "serverShutdown" already. Just give back the reference. */
    vigil__request_unref(req);
  }
}
