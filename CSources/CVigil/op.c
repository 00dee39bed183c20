/* op.c - ops: the handler's calls turned into work for the connection's
 * loop: building, submitting and running them (vigil__op_run dispatches
 * every op type), and the calls that are nothing but an op (body start and
 * pause). */
#include "vigil_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* building and submitting (any thread) */

void vigil__op_fill(vigil_op_t *op, int type, vigil_request_t *req,
                    const vigil_header_t *headers, size_t nheaders,
                    const void *body, size_t body_len, size_t head_len,
                    bool user_close, bool user_date) {
  memset(op, 0, sizeof *op);
  op->type = type;
  op->req = req;
  vigil_request_retain(req);
  op->user_close = user_close;
  op->user_date = user_date;
  op->head_len = head_len;
  op->body_len = body_len;
  char *p = vigil__headers_put(op->data, headers, nheaders);
  if (body_len) memcpy(p, body, body_len);
  op->body = p;
}

int vigil__op_new(vigil_op_t **out, int type, vigil_request_t *req,
                  const vigil_header_t *headers, size_t nheaders,
                  const void *body, size_t body_len) {
  size_t head_len;
  bool user_close, user_date;
  int r = vigil__headers_measure(headers, nheaders, &head_len, &user_close,
                                 &user_date);
  if (r != 0) return r;
  vigil_op_t *op = malloc(sizeof *op + head_len + body_len);
  if (op == NULL) return VIGIL_ENOMEM;
  vigil__op_fill(op, type, req, headers, nheaders, body, body_len, head_len,
                 user_close, user_date);
  *out = op;
  return 0;
}

void vigil__op_discard(vigil_op_t *op) {
  vigil__request_unref(op->req);
  free(op);
}

int vigil__op_submit(vigil_op_t *op) {
  int r = vigil__loop_submit(op->req->loop, op);
  if (r != 0) vigil__op_discard(op);
  return r;
}

int vigil__op_submit_simple(vigil_request_t *req, int type) {
  if (vigil__on_loop_thread(req->loop)) {
    /* The handler's thread is the loop's (a C callback, or a Swift handler
     * on the loop executor): run it now, from the stack, no allocation. */
    vigil_op_t op;
    memset(&op, 0, sizeof op);
    op.type = type;
    op.req = req;
    vigil_request_retain(req);
    vigil__op_run(req->loop, &op); /* runs it, frees nothing */
    return 0;
  }
  vigil_op_t *op;
  int r = vigil__op_new(&op, type, req, NULL, 0, NULL, 0);
  if (r != 0) return r;
  return vigil__op_submit(op);
}

int vigil__op_submit_write(vigil_request_t *req, int type, const void *data,
                           size_t len, vigil_write_cb cb, void *userdata) {
  if (vigil__on_loop_thread(req->loop)) {
    /* A C handler in its callback, or a Swift handler on the loop
     * executor: run now, from the caller's memory (vigil__loop_submit
     * would run a copy now anyway). The caller's reference keeps req
     * alive across the call. */
    if (req->loop->qclosed) return VIGIL_ESHUTDOWN;
    vigil_op_t op;
    memset(&op, 0, sizeof op);
    op.type = type;
    op.req = req;
    op.cb = cb;
    op.userdata = userdata;
    op.body = data;
    op.body_len = len;
    vigil_request_retain(req);
    vigil__op_run(req->loop, &op); /* runs it, frees nothing */
    return 0;
  }
  vigil_op_t *op;
  int r = vigil__op_new(&op, type, req, NULL, 0, data, len);
  if (r != 0) return r;
  op->cb = cb;
  op->userdata = userdata;
  return vigil__op_submit(op);
}

/* ------------------------------------------------------------------ */
/* running (loop thread) */

void vigil__op_fail(vigil_op_t *op, int err) {
  if (op->cb) op->cb(op->req, err, op->userdata);
}

int vigil__conn_gone_error(const vigil_request_t *req) {
  vigil_reason_t reason = vigil_request_reason(req);
  if (req->conn == NULL && reason == VIGIL_REASON_NONE) return VIGIL_ESHUTDOWN;
  /* Closing, not ended yet (a call from inside the abort): cancelled. */
  return reason == VIGIL_REASON_NONE ? VIGIL_ECANCELED : vigil__reason_error(reason);
}

static void run_finish(vigil_request_t *req) {
  vigil_conn_t *c = req->conn;
  VIGIL_ASSERT(!req->handler_done); /* vigil_request_finish lets one through */
  req->handler_done = true;
  if (atomic_load(&req->resp_public) == RESP_HIJACKED) {
    /* The handler is done with a connection it took: close it (if
     * vigil_hijack_close did not already). Never an HTTP answer here. */
    if (c != NULL) vigil__conn_hijack_close(c);
    c = NULL;
  } else if (c != NULL) {
    vigil__response_handler_done(req, c);
  }
  vigil__request_end(req, VIGIL_REASON_HANDLER_FINISHED);
  if (c != NULL) vigil__conn_request_progress(c);
  vigil__request_unref(req); /* the handler's reference */
}

void vigil__op_run(vigil_loop_t *loop, vigil_op_t *op) {
  VIGIL_ASSERT(vigil__on_loop_thread(loop));
  vigil_request_t *req = op->req;
  if (op->type == OP_TASK) {
    op->task(op->userdata);
    return;
  }
  VIGIL_ASSERT(req != NULL && req->loop == loop);
  if (op->type == OP_FINISH) {
    run_finish(req);
    goto done;
  }
  vigil_conn_t *c;
  int r = vigil__live_conn(req, &c);
  if (r != 0) {
    vigil__op_fail(op, r);
    goto done;
  }
  switch (op->type) {
    case OP_START: r = vigil__response_run_start(req, c, op); break;
    case OP_SEND: r = vigil__response_run_send(req, c, op); break;
    case OP_WRITE: r = vigil__response_run_write(req, c, op); break;
    case OP_END: r = vigil__response_run_end(req, c); break;
    case OP_HIJACK: vigil__conn_hijack(c); break;
    case OP_HIJACK_WRITE: r = vigil__hijack_run_write(c, op); break;
    case OP_HIJACK_CLOSE: vigil__conn_hijack_close(c); break;
    case OP_BODY_START: vigil__conn_body_start(c); break;
    case OP_BODY_PAUSE: vigil__conn_body_pause(c); break;
    default: VIGIL_ASSERT(!"unknown op type");
  }
  if (r != 0) vigil__op_fail(op, r);
  if (!c->closing) vigil__conn_mark_dirty(c);
done:
  vigil__request_unref(req); /* the op's reference; the op is its owner's */
}

/* ------------------------------------------------------------------ */
/* calls that are only an op */

static int body_call(vigil_request_t *req, int type) {
  int r = vigil__op_precheck(req);
  if (r != 0) return r;
  if (!vigil_request_has_body(req) &&
      atomic_load(&req->resp_public) != RESP_HIJACKED)
    return VIGIL_EALREADY; /* no body: nothing will come */
  return vigil__op_submit_simple(req, type);
}

int vigil_request_body_start(vigil_request_t *req) {
  if (req == NULL) return VIGIL_EINVAL;
  /* On the loop thread the op runs inline and may end the request (a body
   * over its limit): on_request_done may then give back the caller's last
   * reference. Hold one across the call. */
  vigil_request_retain(req);
  int r = body_call(req, OP_BODY_START);
  if (r == 0 && atomic_load(&req->resp_public) != RESP_HIJACKED) {
    /* Unless the loop delivered the whole body already (DELIVERED). */
    int expected = BODY_UNTOUCHED;
    atomic_compare_exchange_strong(&req->body_public, &expected, BODY_STARTED);
  }
  vigil__request_unref(req);
  return r;
}

int vigil_request_body_pause(vigil_request_t *req) {
  return body_call(req, OP_BODY_PAUSE);
}
