/* parse.c - llhttp's settings and callbacks: the request a connection is
 * parsing, built from them (method, target, headers, framing, the checks
 * of header values). checks.c runs llhttp and checks the bytes.
 *
 * No user callback runs inside llhttp: every callback here only records what
 * happened and pauses the parser (HPE_PAUSED) at the points where the
 * connection must act - head complete, each body span, message complete -
 * so conn.c acts after llhttp_execute returned, with the parser in a known
 * state and free to be re-entered. */
#include "vigil_internal.h"

#include <string.h>
#include <strings.h>

static vigil_conn_t *conn_of(llhttp_t *p) { return p->data; }

/* Header field/value assembly state, kept in the connection. */
enum { HS_NONE = 0, HS_FIELD, HS_VALUE };

static int on_message_begin(llhttp_t *p) {
  vigil_conn_t *c = conn_of(p);
  if (c->parsing == NULL) {
    c->parsing = vigil__request_new(c->loop, c);
    if (c->parsing == NULL) return HPE_USER;
  }
  c->msg_begun = true;
  c->in_header_value = HS_NONE;
  c->host_count = 0;
  c->version_seen = false;
  c->te_seen = false;
  c->method_other = false;
  c->method_retry = false;
  c->head_is_head = false;
  c->te_unknown = false;
  c->expect_other = false;
  c->conn_close = false;
  c->conn_keep = false;
  return 0;
}

static int on_method_complete(llhttp_t *p) {
  vigil_conn_t *c = conn_of(p);
  /* llhttp 8.1 takes RTSP's methods (DESCRIBE ... FLUSH, after PRI) and
   * then refuses them with an HTTP version: for HTTP they are tokens it
   * does not know, like any other (unknown_method). */
  if (p->method > HTTP_PRI) {
    c->method_retry = true;
    return -1; /* llhttp: HPE_CB_METHOD_COMPLETE */
  }
  c->head_is_head = p->method == HTTP_HEAD;
  return 0;
}

static int on_version_complete(llhttp_t *p) {
  conn_of(p)->version_seen = true;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  vigil_conn_t *c = conn_of(p);
  vigil_request_t *r = c->parsing;
  size_t max = c->loop->server->config.max_target_bytes;
  if (max && r->target_len + len > max) {
    if (c->head_error == 0) c->head_error = 414;
    c->head_error_at = at + (max - r->target_len); /* the first byte over */
    return HPE_USER;
  }
  if (vigil__buf_append(&r->strings, at, len) != 0) return HPE_USER;
  r->target_len += (uint32_t)len;
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  vigil_conn_t *c = conn_of(p);
  vigil_request_t *r = c->parsing;
  /* Trailers of a chunked body: the head went to the handler already and
   * is immutable now (other threads read it). They are dropped, and their
   * bytes bounded by the framing check (checks.c check_frame_bytes). */
  if (r == NULL) return 0;
  if (c->in_header_value != HS_FIELD) {
    unsigned max = c->loop->server->config.max_headers;
    if (max && r->nheaders >= max) {
      if (c->head_error == 0) c->head_error = 431;
      c->head_error_at = at;
      return HPE_USER;
    }
    if (vigil__request_add_header(r) != 0) return HPE_USER;
    c->in_header_value = HS_FIELD;
  }
  if (vigil__buf_append(&r->strings, at, len) != 0) return HPE_USER;
  r->headers[r->nheaders - 1].name_len += (uint32_t)len;
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  vigil_conn_t *c = conn_of(p);
  vigil_request_t *r = c->parsing;
  if (r == NULL) return 0; /* a trailer: dropped */
  if (c->in_header_value != HS_FIELD) {
    /* An empty header name (": x"): llhttp 8.1 lets it through. */
    if (c->head_error == 0) c->head_error = 400;
    return HPE_USER;
  }
  r->headers[r->nheaders - 1].value_off = (uint32_t)r->strings.len;
  c->in_header_value = HS_VALUE;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  vigil_conn_t *c = conn_of(p);
  vigil_request_t *r = c->parsing;
  if (r == NULL) return 0; /* a trailer: dropped */
  if (c->in_header_value != HS_VALUE || r->nheaders == 0) {
    if (c->head_error == 0) c->head_error = 400;
    return HPE_USER;
  }
  if (vigil__buf_append(&r->strings, at, len) != 0) return HPE_USER;
  r->headers[r->nheaders - 1].value_len += (uint32_t)len;
  return 0;
}

/* A header name against a lowercase token (letters and '-'): ASCII case
 * folding by OR 0x20, which maps only 'A'-'Z' onto 'a'-'z' among the token
 * characters llhttp lets into a name (and '-' onto itself). Inline: it runs
 * for every header line. */
static inline bool name_eq(vigil_request_t *r, const vigil_hdr_index_t *h,
                           const char *lower, size_t len) {
  if (h->name_len != len) return false;
  const char *n = r->strings.base + h->name_off;
  size_t i = 0;
  /* Eight, then four bytes per compare: OR 0x20 has no carries between
   * bytes, and with `lower` a literal the loops unroll into immediates. */
  for (; i + 8 <= len; i += 8) {
    uint64_t a, l;
    memcpy(&a, n + i, 8);
    memcpy(&l, lower + i, 8);
    if ((a | 0x2020202020202020ull) != l) return false;
  }
  for (; i + 4 <= len; i += 4) {
    uint32_t a, l;
    memcpy(&a, n + i, 4);
    memcpy(&l, lower + i, 4);
    if ((a | 0x20202020u) != l) return false;
  }
  for (; i < len; i++)
    if ((n[i] | 0x20) != lower[i]) return false;
  return true;
}

static bool is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* The next member of a list (RFC 9110 5.6.1: members separated by commas
 * with OWS around them; empty members allowed), from *i: v[*a, *b), OWS
 * trimmed. False once the list is done. */
static bool list_next(const char *v, size_t n, size_t *i, size_t *a, size_t *b) {
  if (*i >= n) return false;
  size_t j = *i;
  while (j < n && v[j] != ',') j++;
  *a = *i;
  *b = j;
  while (*a < *b && is_ows(v[*a])) (*a)++;
  while (*b > *a && is_ows(v[*b - 1])) (*b)--;
  *i = j + 1;
  return true;
}

/* Is every member of a Transfer-Encoding list "chunked"? RFC 9112 6.1:
 * a coding we do not implement (any other, or chunked with parameters)
 * gets 501. */
static bool only_chunked(const char *v, size_t n) {
  size_t i = 0, a, b;
  while (list_next(v, n, &i, &a, &b))
    if (b > a && !(b - a == 7 && strncasecmp(v + a, "chunked", 7) == 0)) return false;
  return true;
}

/* Does the list `v` hold `tok`, case-insensitively? */
static bool list_has(const char *v, size_t n, const char *tok, size_t tn) {
  size_t i = 0, a, b;
  while (list_next(v, n, &i, &a, &b))
    if (b - a == tn && strncasecmp(v + a, tok, tn) == 0) return true;
  return false;
}

static int on_header_value_complete(llhttp_t *p) {
  vigil_conn_t *c = conn_of(p);
  vigil_request_t *r = c->parsing;
  if (r == NULL) return 0; /* a trailer: dropped */
  vigil_hdr_index_t *h = &r->headers[r->nheaders - 1];
  c->in_header_value = HS_NONE;
  /* RFC 9110 5.5: OWS (SP and HTAB) around a field value is not part of
   * it. llhttp 8.1 skips the leading OWS and keeps the trailing. */
  const char *v = r->strings.base + h->value_off;
  if (h->value_len > 0 && (is_ows(v[h->value_len - 1]) || is_ows(*v))) {
    while (h->value_len > 0 && is_ows(v[h->value_len - 1])) h->value_len--;
    while (h->value_len > 0 && is_ows(*v)) v++, h->value_off++, h->value_len--;
  }
  if (name_eq(r, h, "connection", 10)) {
    /* llhttp 8.1 reads the options itself but takes only SP as OWS
     * (`close<HTAB>,x` is not close to it): read them again here
     * (on_headers_complete). */
    if (list_has(v, h->value_len, "close", 5)) c->conn_close = true;
    if (list_has(v, h->value_len, "keep-alive", 10)) c->conn_keep = true;
  } else if (name_eq(r, h, "transfer-encoding", 17)) {
    c->te_seen = true;
    if (!only_chunked(v, h->value_len)) c->te_unknown = true;
  } else if (name_eq(r, h, "host", 4)) {
    c->host_count++;
    if (!vigil__valid_host(v, h->value_len) && c->head_error == 0)
      c->head_error = 400;
  } else if (name_eq(r, h, "expect", 6)) {
    /* Honoured for HTTP/1.1 only (on_headers_complete). Any other
     * expectation gets 417 (RFC 9110 10.1.1 MAY; Go does the same); an
     * empty one is no expectation. */
    if (h->value_len == 12 && strncasecmp(v, "100-continue", 12) == 0)
      r->expect_continue = true;
    else if (h->value_len > 0)
      c->expect_other = true;
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  vigil_conn_t *c = conn_of(p);
  vigil_request_t *r = c->parsing;
  if (c->method_other) {
    /* llhttp parsed "GET" in its place (unknown_method). */
    r->method_id = VIGIL__METHOD_OTHER;
    r->method = r->method_token;
  } else {
    r->method_id = (uint8_t)p->method;
    r->method = llhttp_method_name((llhttp_method_t)p->method);
  }
  if (p->http_major == 1 && (p->http_minor == 0 || p->http_minor == 1)) {
    r->version = (uint8_t)(10 + p->http_minor);
  } else {
    /* llhttp takes any single digits; we speak 1.0 and 1.1 only (RFC 9110
     * 15.6.6: 505 for a major version we do not support, 0.9 included). A
     * request line with no version at all (HTTP/0.9's "GET /", which llhttp
     * completes as 0.9 when more lines follow in the same read) is 400, as
     * check_head_bytes answers when the line arrives alone: the answer must
     * not depend on how the bytes were split. */
    if (c->head_error == 0) c->head_error = c->version_seen ? 505 : 400;
    return HPE_USER;
  }
  /* RFC 9112 9.3: close wins; HTTP/1.0 persists only when asked to. */
  r->keep_alive = llhttp_should_keep_alive(p) != 0;
  if (c->conn_close) r->keep_alive = false;
  else if (r->version == 10 && c->conn_keep) r->keep_alive = true;
  r->chunked = (p->flags & F_CHUNKED) != 0;
  /* RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is faulty
   * framing (a 1.0 hop could not have sent it): 400 and close. */
  if (c->te_seen && r->version == 10 && c->head_error == 0) {
    c->head_error = 400;
    return HPE_USER;
  }
  /* llhttp 8.1 lets an empty Transfer-Encoding through and frames the body
   * by Content-Length (found by the fuzzer). RFC 9112 6.3: a request with
   * Transfer-Encoding not ending in chunked gets 400 - and TE with CL is
   * the classic smuggling pair. */
  if (c->te_seen && !r->chunked && c->head_error == 0) {
    c->head_error = 400;
    return HPE_USER;
  }
  r->content_length =
      r->chunked ? -1
                 : ((p->flags & F_CONTENT_LENGTH) ? (int64_t)p->content_length : 0);
  r->is_head = !c->method_other && p->method == HTTP_HEAD;
  r->is_connect = !c->method_other && p->method == HTTP_CONNECT;
  /* llhttp would stop parsing HTTP after an Upgrade or CONNECT head; we
   * keep speaking HTTP unless a handler hijacks the connection, which then
   * takes the raw bytes from the connection's buffer. */
  p->upgrade = 0;
  /* The request-target's form goes with the method (RFC 9112 3.2):
   * authority-form for CONNECT only and always (RFC 9110 9.3.6, a
   * malformed authority is 400, not a path to route), "*" for OPTIONS
   * only, otherwise origin-form or absolute-form. */
  const char *t = r->strings.base ? r->strings.base : "";
  size_t tl = r->target_len;
  bool form_ok;
  r->absolute_form = false;
  if (r->is_connect) {
    form_ok = vigil__authority_form(t, tl);
  } else if (tl == 1 && t[0] == '*') {
    form_ok = !c->method_other && p->method == HTTP_OPTIONS;
  } else if (tl > 0 && t[0] == '/') {
    form_ok = true;
  } else {
    form_ok = r->absolute_form = vigil__absolute_form(t, tl);
  }
  if (!form_ok && c->head_error == 0) c->head_error = 400;
  if (r->version != 11) r->expect_continue = false; /* RFC 9110 10.1.1 */
  /* RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without
   * Host (absolute-form and CONNECT included: "any HTTP/1.1 request
   * message"), and to any request with more than one Host line. */
  if (c->head_error == 0 &&
      (c->host_count > 1 || (r->version == 11 && c->host_count == 0)))
    c->head_error = 400;
  /* After the 400s, which are MUSTs (a missing or second Host above, the
   * target's form): a coding before chunked that we do not implement, 501
   * (RFC 9112 6.1 SHOULD; found by the differential fuzzer: two Host lines
   * got 501), then an expectation we do not meet, 417 (RFC 9110 10.1.1
   * MAY). */
  if (c->te_unknown && c->head_error == 0) c->head_error = 501;
  if (c->expect_other && c->head_error == 0) c->head_error = 417;
  /* llhttp takes Content-Length up to 2^64-1; we keep it in an int64. The
   * body limit is not checked here but when the body is first read
   * (vigil__conn_body_start): the handler may raise it for this request
   * (vigil_request_set_body_limit), and a body nobody reads is never read. */
  if (c->head_error == 0 && (p->flags & F_CONTENT_LENGTH) &&
      p->content_length > (uint64_t)INT64_MAX)
    c->head_error = 413;
  if (c->head_error != 0) return HPE_USER;
  c->head_ready = true;
  if (!r->chunked && r->content_length == 0) {
    /* No body: let llhttp run on to message complete in this same call. */
    return 0;
  }
  return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  vigil_conn_t *c = conn_of(p);
  /* llhttp flushes an open span at the end of every execute call, even an
   * empty one: pausing on that would stop the parser forever. */
  if (len == 0) return 0;
  c->body_at = at;
  c->body_len = len;
  return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p) {
  vigil_conn_t *c = conn_of(p);
  c->msg_complete = true;
  return HPE_PAUSED;
}

/* The first extension callback of a chunk-size line (always a name: a
 * value cannot come first). llhttp 8.1 gets extension lists wrong both
 * ways: after an unquoted value it consumes the ';' and then wants another
 * ';' or CR, so `5;a=b;c=d` (valid; Go and Node take it) is refused, as is
 * a quoted-pair (`;a="x\"y"`); and it lets `;a=`, `;=b` and `;;a` through.
 * So the parser pauses here and the core checks the rest of the line
 * itself (ext_scan, from `at`: the byte after the first ';'). */
static int on_chunk_ext_name(llhttp_t *p, const char *at, size_t len) {
  vigil_conn_t *c = conn_of(p);
  (void)len;
  c->ext_at = at;
  c->ext_size = p->content_length; /* the size digits llhttp parsed */
  c->ext_state = EXT_FIRST;
  c->chunk_ext_bytes = 1; /* the ';' */
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_method_complete = on_method_complete,
    .on_url = on_url,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_extension_name = on_chunk_ext_name,
};

void vigil__parser_init(vigil_conn_t *c) {
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
  /* Whether the connection persists is the core's call (r->keep_alive,
   * from llhttp's reading and the Connection options read again in
   * on_header_value_complete), and the core parses nothing after a
   * request it closes on. Without this llhttp 8.1 would refuse the next
   * request after an HTTP/1.0 one whose keep-alive it did not see
   * (`keep-alive<HTAB>, x`). */
  llhttp_set_lenient_keep_alive(&c->parser, 1);
}

void vigil__head_reset(vigil_conn_t *c) {
  c->head_bytes = 0;
  c->head_last = -1;
  c->head_line_start = 1;
  c->head_error = 0;
  c->head_ready = false;
  c->first_line_done = false;
  c->version_seen = false;
  c->head_is_head = false;
  c->rl_state = 0;
  c->rl_n = 0;
  c->rl_ver = 0;
  c->rl_bad = false;
}
