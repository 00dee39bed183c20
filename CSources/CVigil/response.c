/* response.c - responses: the public response API, how a response is put on
 * the wire (serialization), the write completions owed, and the flush.
 *
 * Output is appended to conn->out and flushed once per loop tick (the
 * prepare handle, right before the loop polls), so the responses to a batch
 * of pipelined requests leave in one write. A flush tries uv_try_write
 * first; what the kernel does not take moves to the single uv_write in
 * flight. */
#include "vigil_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>


/* ------------------------------------------------------------------ */
/* the user's header lines (any thread) */

/* RFC 9110 token characters (header names). */
static const bool tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0' ... '9'] = 1, ['a' ... 'z'] = 1,
    ['A' ... 'Z'] = 1,
};

/* CR/LF/NUL in a value would let a handler split the response. */
static const bool value_bad[256] = {[0] = 1, ['\r'] = 1, ['\n'] = 1};

static bool name_is(const vigil_header_t *h, const char *name, size_t n) {
  return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Framing is ours: Content-Length and Transfer-Encoding come from the
 * content_length argument, Connection from the keep-alive decision. Asked
 * twice per user header (vigil__headers_measure, vigil__headers_put): inline, and by
 * length first, so that any other name costs a compare. */
static inline bool framing_header(const vigil_header_t *h) {
  switch (h->name_len) {
    case 10: return name_is(h, "connection", 10);
    case 14: return name_is(h, "content-length", 14);
    case 17: return name_is(h, "transfer-encoding", 17);
  }
  return false;
}

static bool value_has_token(const vigil_header_t *h, const char *tok) {
  size_t n = strlen(tok);
  for (size_t i = 0; i + n <= h->value_len; i++) {
    if (strncasecmp(h->value + i, tok, n) == 0 &&
        (i == 0 || h->value[i - 1] == ' ' || h->value[i - 1] == ',') &&
        (i + n == h->value_len || h->value[i + n] == ' ' ||
         h->value[i + n] == ','))
      return true;
  }
  return false;
}

int vigil__headers_measure(const vigil_header_t *headers, size_t nheaders,
                           size_t *head_len, bool *user_close, bool *user_date) {
  *head_len = 0;
  *user_close = *user_date = false;
  for (size_t i = 0; i < nheaders; i++) {
    const vigil_header_t *h = &headers[i];
    if (h->name == NULL || h->name_len == 0 || (h->value == NULL && h->value_len))
      return VIGIL_EINVAL;
    for (size_t k = 0; k < h->name_len; k++)
      if (!tchar[(unsigned char)h->name[k]]) return VIGIL_EINVAL;
    for (size_t k = 0; k < h->value_len; k++)
      if (value_bad[(unsigned char)h->value[k]]) return VIGIL_EINVAL;
    if (framing_header(h)) {
      if (name_is(h, "connection", 10) && value_has_token(h, "close"))
        *user_close = true;
      continue;
    }
    if (name_is(h, "date", 4)) *user_date = true;
    *head_len += h->name_len + 2 + h->value_len + 2;
  }
  return 0;
}

char *vigil__headers_put(char *p, const vigil_header_t *headers,
                         size_t nheaders) {
  for (size_t i = 0; i < nheaders; i++) {
    const vigil_header_t *h = &headers[i];
    if (framing_header(h)) continue;
    memcpy(p, h->name, h->name_len); p += h->name_len;
    *p++ = ':'; *p++ = ' ';
    if (h->value_len) { memcpy(p, h->value, h->value_len); p += h->value_len; }
    *p++ = '\r'; *p++ = '\n';
  }
  return p;
}

/* ------------------------------------------------------------------ */
/* the public API (any thread) */

/* resp_public from -> to, the one move a response call may make, or the
 * error for where it stands. */
static int claim(vigil_request_t *req, int from, int to) {
  VIGIL_ASSERT((from == RESP_NONE && (to == RESP_STARTED || to == RESP_ENDED)) ||
               (from == RESP_STARTED && to == RESP_ENDED));
  int expected = from;
  if (atomic_compare_exchange_strong(&req->resp_public, &expected, to)) return 0;
  return expected == RESP_NONE ? VIGIL_EBUSY : VIGIL_EALREADY;
}

int vigil_response_start(vigil_request_t *req, int status,
                         const vigil_header_t *headers, size_t nheaders,
                         int64_t content_length) {
  int r = vigil__op_precheck(req);
  if (r != 0) return r;
  if (status < 200 || status > 999 || content_length < -1) return VIGIL_EINVAL;
  vigil_op_t *op;
  r = vigil__op_new(&op, OP_START, req, headers, nheaders, NULL, 0);
  if (r != 0) return r;
  if ((r = claim(req, RESP_NONE, RESP_STARTED)) != 0) {
    vigil__op_discard(op);
    return r;
  }
  op->status = status;
  op->content_length = content_length;
  return vigil__op_submit(op);
}

int vigil_response_write(vigil_request_t *req, const void *data, size_t len,
                         vigil_write_cb cb, void *userdata) {
  int r = vigil__op_precheck(req);
  if (r != 0) return r;
  if (data == NULL && len) return VIGIL_EINVAL;
  int st = atomic_load(&req->resp_public);
  if (st != RESP_STARTED) return st == RESP_NONE ? VIGIL_EBUSY : VIGIL_EALREADY;
  return vigil__op_submit_write(req, OP_WRITE, data, len, cb, userdata);
}

int vigil_response_end(vigil_request_t *req) {
  int r = vigil__op_precheck(req);
  if (r != 0) return r;
  vigil_op_t *op;
  r = vigil__op_new(&op, OP_END, req, NULL, 0, NULL, 0);
  if (r != 0) return r;
  if ((r = claim(req, RESP_STARTED, RESP_ENDED)) != 0) {
    vigil__op_discard(op);
    return r;
  }
  return vigil__op_submit(op);
}

static int run_send(vigil_request_t *req, vigil_conn_t *c, int status,
                    const vigil_header_t *headers, size_t nheaders,
                    const char *lines, size_t head_len, const char *body,
                    size_t body_len, bool user_close, bool user_date);

int vigil_response_send(vigil_request_t *req, int status,
                        const vigil_header_t *headers, size_t nheaders,
                        const void *body, size_t len) {
  int r = vigil__op_precheck(req);
  if (r != 0) return r;
  if (status < 200 || status > 999 || (body == NULL && len)) return VIGIL_EINVAL;
  size_t head_len;
  bool user_close, user_date;
  r = vigil__headers_measure(headers, nheaders, &head_len, &user_close,
                             &user_date);
  if (r != 0) return r;
  if (vigil__on_loop_thread(req->loop)) {
    /* From the loop thread (a C handler answering in its callback, or a
     * Swift handler on the loop executor): serialized straight into the
     * connection's output. No op, no queue, no intermediate copy. The
     * caller's handler reference keeps req alive across the call. */
    if ((r = claim(req, RESP_NONE, RESP_ENDED)) != 0) return r;
    vigil_conn_t *c;
    if ((r = vigil__live_conn(req, &c)) != 0) return r;
    r = run_send(req, c, status, headers, nheaders, NULL, head_len, body, len,
                 user_close, user_date);
    if (!c->closing) vigil__conn_mark_dirty(c);
    return r;
  }
  vigil_op_t *op = malloc(sizeof(vigil_op_t) + head_len + len);
  if (op == NULL) return VIGIL_ENOMEM;
  vigil__op_fill(op, OP_SEND, req, headers, nheaders, body, len, head_len,
                 user_close, user_date);
  if ((r = claim(req, RESP_NONE, RESP_ENDED)) != 0) {
    vigil__op_discard(op);
    return r;
  }
  op->status = status;
  op->content_length = (int64_t)len;
  return vigil__op_submit(op);
}

/* ------------------------------------------------------------------ */
/* serialization (loop thread) */

/* Decimal digits of v ending at `end` (room for 20); returns the first.
 * Not printf: this runs for every response. */
static char *fmt_u64(char *end, uint64_t v) {
  char *p = end;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return p;
}

/* Lowercase hex digits of v ending at `end` (room for 16), as a chunk size
 * line wants them; returns the first. */
static char *fmt_hex(char *end, uint64_t v) {
  char *p = end;
  do {
    *--p = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  return p;
}

/* "HTTP/1.1 SSS Text\r\n" at p, at most STATUS_LINE_MAX bytes (the longest
 * text of vigil__status_text is 31); returns the end. status has three
 * digits (checked by the API). */
#define STATUS_LINE_MAX (13 + 31 + 2)
static inline char *put_status_line(char *p, int status) {
  if (status == 200) { /* most responses: one constant store, no lookup */
    memcpy(p, "HTTP/1.1 200 OK\r\n", 17);
    return p + 17;
  }
  const char *text = vigil__status_text(status);
  size_t tl = strlen(text);
  memcpy(p, "HTTP/1.1 ", 9);
  p[9] = (char)('0' + status / 100 % 10);
  p[10] = (char)('0' + status / 10 % 10);
  p[11] = (char)('0' + status % 10);
  p[12] = ' ';
  p += 13;
  memcpy(p, text, tl); p += tl;
  *p++ = '\r'; *p++ = '\n';
  return p;
}

/* "Content-Length: N\r\n" at p (at most 38 bytes); returns the end. */
static inline char *put_content_length(char *p, uint64_t n) {
  char num[20];
  char *d = fmt_u64(num + sizeof num, n);
  memcpy(p, "Content-Length: ", 16); p += 16;
  memcpy(p, d, (size_t)(num + sizeof num - d)); p += num + sizeof num - d;
  *p++ = '\r'; *p++ = '\n';
  return p;
}

static bool body_complete(vigil_conn_t *c) {
  return c->phase != PHASE_BODY_WAIT && c->phase != PHASE_BODY &&
         c->phase != PHASE_BODY_PAUSED && c->phase != PHASE_DRAIN;
}

/* The response head, into c->out. The user's header lines come either
 * from `headers` (the direct path) or serialized already in `lines` (an
 * op); head_len is their serialized size either way. */
static int write_head(vigil_request_t *req, vigil_conn_t *c, int status,
                      const vigil_header_t *headers, size_t nheaders,
                      const char *lines, size_t head_len, bool user_close,
                      bool user_date, int64_t content_length, bool whole) {
  VIGIL_ASSERT(req->resp_state == RESP_NONE && req->conn == c);
  vigil_loop_t *loop = c->loop;
  const vigil_config_t *cfg = &loop->server->config;
  bool no_body_status = status < 200 || status == 204 || status == 304;
  req->resp_no_body = no_body_status || req->is_head;
  req->resp_chunked = false;
  req->resp_remaining = -1;

  if (user_close || !req->keep_alive || vigil__loop_stopping(loop) ||
      (cfg->max_requests_per_connection &&
       c->served >= cfg->max_requests_per_connection))
    vigil__conn_close_after(c);
  if (!body_complete(c)) {
    /* The client asked for 100-continue and never got it: it may or may not
     * send the body now, so the connection cannot be reused. */
    if (req->expect_continue && !req->continue_sent) vigil__conn_close_after(c);
    /* A whole response while the body is unread: the handler is done with
     * it, and if it is larger than we would drain, say so now. A chunked
     * body's size is unknown here: it is drained like the others (up to
     * drain_limit, conn.c finish_unread_body) and the connection closes
     * after this response only if it turns out bigger (Go and Node keep
     * the connection for a small one). */
    if (whole && !req->chunked &&
        (uint64_t)req->content_length - c->body_read > cfg->drain_limit)
      vigil__conn_close_after(c);
  }

  /* One reservation, then plain stores: this runs for every response. */
  size_t dl = 0;
  const char *date = user_date ? NULL : vigil__loop_date(loop, &dl);
  vigil_buf_t *out = &c->out;
  vigil__loop_buf_get(loop, out);
  int r = vigil__buf_reserve(out, STATUS_LINE_MAX + head_len + dl + 160);
  if (r != 0) return r;
  char *p = put_status_line(out->base + out->len, status);
  if (headers != NULL) p = vigil__headers_put(p, headers, nheaders);
  else if (head_len) { memcpy(p, lines, head_len); p += head_len; }
  if (date) { memcpy(p, date, dl); p += dl; }
  if (no_body_status) {
    req->resp_remaining = 0;
  } else if (req->is_connect && status < 300) {
    /* RFC 9110 9.3.6: a 2xx to CONNECT starts a tunnel and MUST NOT carry
     * Content-Length or Transfer-Encoding. Not hijacked: what the handler
     * writes follows the head as tunnel bytes, and the connection closes
     * after it (the client no longer speaks HTTP on it). */
    req->resp_remaining = content_length;
    vigil__conn_close_after(c);
  } else if (content_length >= 0) {
    p = put_content_length(p, (uint64_t)content_length);
    req->resp_remaining = content_length;
  } else if (req->version == 11) {
    memcpy(p, "Transfer-Encoding: chunked\r\n", 28); p += 28;
    req->resp_chunked = true;
  } else {
    /* HTTP/1.0 has no chunking: the body ends when the connection does. */
    vigil__conn_close_after(c);
  }
  if (c->close_after) { memcpy(p, "Connection: close\r\n", 19); p += 19; }
  else if (req->version == 10) { memcpy(p, "Connection: keep-alive\r\n", 24); p += 24; }
  *p++ = '\r'; *p++ = '\n';
  out->len = (size_t)(p - out->base);
  req->resp_state = RESP_STARTED;
  return 0;
}

static inline int out_put(vigil_conn_t *c, const char *data, size_t len,
                          const char *tail, size_t tail_len);

/* One chunk: size line, data, CRLF. Out of line: a whole response (the
 * common case) is never chunked, and write_body stays small. */
static __attribute__((noinline)) int write_chunk(vigil_conn_t *c,
                                                 const char *data, size_t len) {
  char hex[16];
  char *d = fmt_hex(hex + sizeof hex, len);
  size_t n = (size_t)(hex + sizeof hex - d);
  int r = vigil__buf_reserve(&c->out, n + 2);
  if (r != 0) return r;
  char *p = c->out.base + c->out.len;
  memcpy(p, d, n); p += n;
  *p++ = '\r'; *p++ = '\n';
  c->out.len = (size_t)(p - c->out.base);
  return out_put(c, data, len, "\r\n", 2);
}

/* Body bytes at least this long go to the socket straight from the
 * caller's memory when no write is in flight. Below it the copy costs
 * less than the system call. */
#ifndef DIRECT_WRITE_MIN
#define DIRECT_WRITE_MIN 4096
#endif

/* Adds `data` then `tail` to the connection's output (c->out). A body
 * piece worth it (DIRECT_WRITE_MIN) is first offered to the socket
 * together with what c->out holds, in one writev from the caller's memory
 * (uv_try_write, when no uv_write is in flight: order is kept), and only
 * what the kernel did not take is copied: a big body is not copied at all
 * while the client keeps up. A failed try is left to the flush that
 * follows, which meets the error again and aborts the connection there
 * (not inside a handler's write call). */
static __attribute__((noinline)) int out_put_big(vigil_conn_t *c,
                                                 const char *data, size_t len,
                                                 const char *tail,
                                                 size_t tail_len) {
  if (len <= UINT32_MAX / 2 && !c->writing && !c->closing &&
      c->out.len <= UINT32_MAX / 2) {
    uv_buf_t b[3];
    unsigned nb = 0;
    if (c->out.len) b[nb++] = uv_buf_init(c->out.base, (unsigned)c->out.len);
    b[nb++] = uv_buf_init((char *)data, (unsigned)len);
    if (tail_len) b[nb++] = uv_buf_init((char *)tail, (unsigned)tail_len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, b, nb);
    if (n > 0) {
      size_t k = (size_t)n;
      if (k < c->out.len) {
        memmove(c->out.base, c->out.base + k, c->out.len - k);
        c->out.len -= k;
        k = 0;
      } else {
        k -= c->out.len;
        c->out.len = 0;
      }
      if (k >= len) {
        k -= len;
        len = 0;
        tail += k;
        tail_len -= k;
      } else {
        data += k;
        len -= k;
      }
    }
  }
  int r = vigil__buf_reserve(&c->out, len + tail_len);
  if (r != 0) {
    /* Part of this piece (or of a chunk's size line before it) may be on
     * the wire already: the output no longer matches its framing. Send
     * what is there and close; the client sees a cut body, never a
     * wrong one. */
    vigil__conn_close_after(c);
    return r;
  }
  if (len) memcpy(c->out.base + c->out.len, data, len);
  if (tail_len) memcpy(c->out.base + c->out.len + len, tail, tail_len);
  c->out.len += len + tail_len;
  return 0;
}

/* The usual small piece is appended here; a big one goes to out_put_big. */
static inline int out_put(vigil_conn_t *c, const char *data, size_t len,
                          const char *tail, size_t tail_len) {
  if (len >= DIRECT_WRITE_MIN) return out_put_big(c, data, len, tail, tail_len);
  int r = vigil__buf_reserve(&c->out, len + tail_len);
  if (r != 0) {
    vigil__conn_close_after(c); /* a chunk's size line may be in c->out */
    return r;
  }
  if (len) memcpy(c->out.base + c->out.len, data, len);
  if (tail_len) memcpy(c->out.base + c->out.len + len, tail, tail_len);
  c->out.len += len + tail_len;
  return 0;
}

int vigil__conn_out_put(vigil_conn_t *c, const char *data, size_t len,
                        const char *tail, size_t tail_len) {
  return out_put(c, data, len, tail, tail_len);
}

static int write_body(vigil_request_t *req, vigil_conn_t *c, const char *data,
                      size_t len) {
  VIGIL_ASSERT(req->resp_state == RESP_STARTED);
  if (req->resp_remaining >= 0) {
    if ((uint64_t)len > (uint64_t)req->resp_remaining) return VIGIL_EINVAL;
    req->resp_remaining -= (int64_t)len;
  }
  if (req->resp_no_body || len == 0) return 0;
  if (req->resp_chunked) return write_chunk(c, data, len);
  return out_put(c, data, len, NULL, 0);
}

static void write_end(vigil_request_t *req, vigil_conn_t *c) {
  VIGIL_ASSERT(req->resp_state == RESP_STARTED);
  if (req->resp_chunked && !req->resp_no_body)
    vigil__buf_append(&c->out, "0\r\n\r\n", 5);
  if (req->resp_remaining > 0 && !req->resp_no_body) {
    /* Shorter than its Content-Length: the client would wait for the rest,
     * or read our next response as this body. Only closing is honest. */
    vigil__conn_close_after(c);
  }
  req->resp_state = RESP_ENDED;
}

void vigil__send_continue(vigil_request_t *req) {
  vigil_conn_t *c = req->conn;
  if (c == NULL || !req->expect_continue || req->continue_sent ||
      req->resp_state != RESP_NONE)
    return;
  req->continue_sent = true;
  vigil__buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  vigil__conn_mark_dirty(c);
}

void vigil__response_internal_error(vigil_request_t *req) {
  vigil_conn_t *c = req->conn;
  static const char body[] = "Internal Server Error";
  static const char lines[] = "Content-Type: text/plain\r\n";
  if (write_head(req, c, 500, NULL, 0, lines, sizeof lines - 1, false, false,
                 sizeof body - 1, true) == 0) {
    write_body(req, c, body, sizeof body - 1);
    write_end(req, c);
  } else {
    vigil__conn_close_after(c);
    req->resp_state = RESP_ENDED;
  }
  atomic_store(&req->resp_public, RESP_ENDED);
  vigil__conn_mark_dirty(c);
}

/* The status text is the body, so that a client showing it says why. */
void vigil__conn_error_response(vigil_conn_t *c, int status, bool is_head) {
  static const char ctype[] = "Content-Type: text/plain\r\n";
  static const char cclose[] = "Connection: close\r\n";
  const char *text = vigil__status_text(status);
  size_t tl = strlen(text), dl;
  const char *date = vigil__loop_date(c->loop, &dl);
  vigil__loop_buf_get(c->loop, &c->out);
  if (vigil__buf_reserve(&c->out, STATUS_LINE_MAX + (sizeof ctype - 1) + 38 +
                                      (sizeof cclose - 1) + dl + 2 + tl) == 0) {
    char *p = put_status_line(c->out.base + c->out.len, status);
    memcpy(p, ctype, sizeof ctype - 1); p += sizeof ctype - 1;
    p = put_content_length(p, tl);
    memcpy(p, cclose, sizeof cclose - 1); p += sizeof cclose - 1;
    memcpy(p, date, dl); p += dl;
    *p++ = '\r'; *p++ = '\n';
    if (!is_head) { memcpy(p, text, tl); p += tl; } /* HEAD: no body */
    c->out.len = (size_t)(p - c->out.base);
  }
  atomic_fetch_add_explicit(&c->loop->bad, 1, memory_order_relaxed);
  vigil__conn_mark_dirty(c);
}

/* ------------------------------------------------------------------ */
/* write waiters: completions of vigil_response_write, owed until the
 * connection's queue is under write_buffer_limit */

static size_t queued(const vigil_conn_t *c) { return vigil__conn_queued(c); }

static void fire_waiters(vigil_conn_t *c, int status, bool all) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  size_t limit = c->loop->server->config.write_buffer_limit;
  while (!vigil__list_empty(&c->waiters) && (all || queued(c) <= limit)) {
    vigil_write_waiter_t *w =
        VIGIL_CONTAINER_OF(c->waiters.next, vigil_write_waiter_t, link);
    vigil__list_remove(&w->link);
    w->cb(w->req, status, w->userdata);
    vigil__request_unref(w->req);
    free(w);
  }
}

void vigil__conn_fail_waiters(vigil_conn_t *c, int err) {
  fire_waiters(c, err, true);
}

/* The handler finished (or closed its hijacked connection): the write
 * completions still owed run now, before on_request_done, which vigil.h
 * promises is the request's last callback (users free the completions'
 * data there). Status 0: the bytes are queued and will be written; holding
 * the completion back for backpressure means nothing to a handler that is
 * done. */
void vigil__conn_complete_waiters(vigil_conn_t *c) { fire_waiters(c, 0, true); }

int vigil__conn_add_waiter(vigil_conn_t *c, vigil_op_t *op) {
  VIGIL_ASSERT(op->cb != NULL && op->req->conn == c);
  vigil_write_waiter_t *w = malloc(sizeof *w);
  if (w == NULL) return VIGIL_ENOMEM;
  w->cb = op->cb;
  w->userdata = op->userdata;
  w->req = op->req;
  vigil_request_retain(op->req);
  vigil__list_push(&c->waiters, &w->link);
  op->cb = NULL; /* the waiter owns the completion now */
  return 0;
}

/* ------------------------------------------------------------------ */
/* flushing */

/* Bytes of the write in flight the client has not acknowledged yet: what
 * libuv still holds plus the socket's send queue (SIOCOUTQ: unsent and
 * unacknowledged). libuv's part alone is not enough: a send buffer
 * autotuned to megabytes is refilled only once it is half empty (the
 * socket signals writable then), which takes a client reading 3 MB/s longer
 * than a short write timeout, though it reads all along. New bytes moving
 * from libuv into the socket leave the sum unchanged; it drops exactly
 * when the client acknowledges data. Asked only when the write deadline is
 * armed or passes, never per write. */
size_t vigil__conn_unacked(vigil_conn_t *c) {
  size_t n = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
  int fd, outq = 0;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQ, &outq) == 0 &&
      outq > 0)
    n += (size_t)outq;
  return n;
}

void vigil__conn_mark_dirty(vigil_conn_t *c) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  if (!c->closing && !vigil__list_linked(&c->dirty_link))
    vigil__list_push(&c->loop->dirty, &c->dirty_link);
}

static void on_write(uv_write_t *wr, int status) {
  vigil_conn_t *c = wr->data;
  c->writing = false;
  if (c->closing) return; /* UV_ECANCELED from uv_close; buffers go in on_close */
  if (status < 0) {
    vigil__conn_abort(c, vigil__io_reason(status, VIGIL_REASON_WRITE_FAILED));
    return;
  }
  c->wbuf.len = 0;
  vigil__timer_disarm(c, T_WRITE);
  vigil__conn_flush(c);
}

void vigil__conn_flush(vigil_conn_t *c) {
  VIGIL_ASSERT(vigil__on_loop_thread(c->loop));
  if (c->closing) return;
  if (!c->writing && c->out.len > 0) {
    uv_buf_t b = uv_buf_init(c->out.base, (unsigned)c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS) n = 0;
    if (n < 0) {
      vigil__conn_abort(c, vigil__io_reason(n, VIGIL_REASON_WRITE_FAILED));
      return;
    }
    if ((size_t)n == c->out.len) {
      c->out.len = 0;
    } else {
      /* The kernel took part of it: the rest leaves with the one uv_write
       * in flight, from its own buffer, while new output collects in out. */
      vigil_buf_t tmp = c->wbuf;
      c->wbuf = c->out;
      c->out = tmp;
      c->out.len = 0;
      uv_buf_t rest = uv_buf_init(c->wbuf.base + n, (unsigned)(c->wbuf.len - (size_t)n));
      if (c->ureq == NULL) c->ureq = malloc(sizeof *c->ureq);
      if (c->ureq == NULL) {
        vigil__conn_abort(c, VIGIL_REASON_WRITE_FAILED);
        return;
      }
      c->ureq->write.data = c;
      int r = uv_write(&c->ureq->write, (uv_stream_t *)&c->tcp, &rest, 1, on_write);
      if (r != 0) {
        vigil__conn_abort(c, vigil__io_reason(r, VIGIL_REASON_WRITE_FAILED));
        return;
      }
      c->writing = true;
    }
  }
  /* The write timeout runs while output waits on the client. Progress is
   * any byte the client takes: libuv writes one big uv_write in pieces as
   * the client reads, and says nothing until the last one, so the deadline
   * remembers how much was left (write_mark, vigil__conn_unacked) and, when
   * it passes, looks again (conn.c vigil__conn_timeout): less left means
   * progress, and it is re-armed. A completed uv_write disarms it
   * (on_write). */
  if (c->writing) {
    if (!vigil__timer_armed(c, T_WRITE)) {
      c->write_mark = vigil__conn_unacked(c);
      vigil__timer_arm(c, T_WRITE);
    }
  }
  fire_waiters(c, 0, false);
  if (c->out_blocked && !c->closing &&
      queued(c) <= c->loop->server->config.write_buffer_limit) {
    /* Pipelined requests waited for the output to drain (conn.c step). */
    c->out_blocked = false;
    vigil__conn_process(c);
  }
  if (!c->closing && !c->writing && c->out.len == 0) {
    if (c->req == NULL && c->phase == PHASE_HEAD && c->in.len == 0)
      vigil__conn_drop_idle_buffers(c);
    vigil__conn_output_drained(c);
  }
}

/* ------------------------------------------------------------------ */
/* the response ops, run on the loop (op.c dispatches them; the caller
 * checked the connection with vigil__live_conn) */

/* A whole response: head, body, end. */
static int run_send(vigil_request_t *req, vigil_conn_t *c, int status,
                    const vigil_header_t *headers, size_t nheaders,
                    const char *lines, size_t head_len, const char *body,
                    size_t body_len, bool user_close, bool user_date) {
  int r = write_head(req, c, status, headers, nheaders, lines, head_len,
                     user_close, user_date, (int64_t)body_len, true);
  if (r == 0) r = write_body(req, c, body, body_len);
  if (r == 0) {
    write_end(req, c);
    vigil__conn_request_progress(c);
  }
  return r;
}

int vigil__response_run_start(vigil_request_t *req, vigil_conn_t *c,
                              const vigil_op_t *op) {
  return write_head(req, c, op->status, NULL, 0, op->data, op->head_len,
                    op->user_close, op->user_date, op->content_length, false);
}

int vigil__response_run_send(vigil_request_t *req, vigil_conn_t *c,
                             const vigil_op_t *op) {
  return run_send(req, c, op->status, NULL, 0, op->data, op->head_len,
                  op->data + op->head_len, op->body_len, op->user_close,
                  op->user_date);
}

int vigil__response_run_write(vigil_request_t *req, vigil_conn_t *c,
                              vigil_op_t *op) {
  if (req->resp_state != RESP_STARTED) return VIGIL_EALREADY;
  int r = write_body(req, c, op->body, op->body_len);
  if (r == 0 && op->cb) r = vigil__conn_add_waiter(c, op);
  return r;
}

int vigil__response_run_end(vigil_request_t *req, vigil_conn_t *c) {
  if (req->resp_state != RESP_STARTED) return VIGIL_EALREADY;
  write_end(req, c);
  vigil__conn_request_progress(c);
  return 0;
}

void vigil__response_handler_done(vigil_request_t *req, vigil_conn_t *c) {
  vigil__conn_complete_waiters(c);
  if (req->resp_state == RESP_NONE) {
    vigil__response_internal_error(req);
  } else if (req->resp_state == RESP_STARTED) {
    /* Started and never ended: no terminating chunk, and close, so that
     * a truncated body cannot look complete. */
    vigil__conn_close_after(c);
    req->resp_state = RESP_ENDED;
  }
}
