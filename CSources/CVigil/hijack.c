/* hijack.c - taking a connection over: the handler gets the raw bytes
 * both ways, and HTTP is done on it (vigil_request_hijack and friends). */
#include "vigil_internal.h"

int vigil_request_hijack(vigil_request_t *req) {
  int r = vigil__op_precheck(req);
  if (r != 0) return r;
  /* Mid-body, the bytes buffered are the middle of a (maybe chunked)
   * body: handing them over raw would mix two framings. */
  if (atomic_load(&req->body_public) == BODY_STARTED) return VIGIL_EBUSY;
  int expected = RESP_NONE;
  if (!atomic_compare_exchange_strong(&req->resp_public, &expected, RESP_HIJACKED))
    return VIGIL_EALREADY;
  r = vigil__op_submit_simple(req, OP_HIJACK);
  /* Refused (no memory, the loop stopping): nothing changed, so a response
   * may still be sent (no response call could succeed meanwhile: they
   * all find RESP_HIJACKED). */
  if (r != 0) atomic_store(&req->resp_public, RESP_NONE);
  return r;
}

int vigil_hijack_write(vigil_request_t *req, const void *data, size_t len,
                       vigil_write_cb cb, void *userdata) {
  int r = vigil__op_precheck(req);
  if (r != 0) return r;
  if (data == NULL && len) return VIGIL_EINVAL;
  if (atomic_load(&req->resp_public) != RESP_HIJACKED) return VIGIL_EBUSY;
  return vigil__op_submit_write(req, OP_HIJACK_WRITE, data, len, cb, userdata);
}

int vigil_hijack_close(vigil_request_t *req) {
  if (req == NULL) return VIGIL_EINVAL;
  if (atomic_load(&req->resp_public) != RESP_HIJACKED) return VIGIL_EBUSY;
  if (atomic_load(&req->finished)) return VIGIL_EALREADY;
  return vigil__op_submit_simple(req, OP_HIJACK_CLOSE);
}

/* OP_HIJACK_WRITE on the loop: raw bytes out, once the connection was
 * handed over (PHASE_HIJACKED). */
int vigil__hijack_run_write(vigil_conn_t *c, vigil_op_t *op) {
  if (c->phase != PHASE_HIJACKED) return VIGIL_EALREADY;
  int r = vigil__conn_out_put(c, op->body, op->body_len, NULL, 0);
  if (r == 0 && op->cb) r = vigil__conn_add_waiter(c, op);
  return r;
}
