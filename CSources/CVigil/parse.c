/* parse.c - glue between a connection and llhttp, and the checks that
 * llhttp 8.1 (even strict) leaves to us.
 *
 * No user callback runs inside llhttp: every callback here only records what
 * happened and pauses the parser (HPE_PAUSED) at the points where the
 * connection must act - head complete, each body span, message complete -
 * so conn.c acts after llhttp_execute returned, with the parser in a known
 * state and free to be re-entered. */
#include "vigil_internal.h"

#include <string.h>
#include <strings.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static vigil_conn_t *conn_of(llhttp_t *p) { return p->data; }

/* Header field/value assembly state, kept in the connection. */
enum { HS_NONE = 0, HS_FIELD, HS_VALUE };

static int on_message_begin(llhttp_t *p) {
  vigil_conn_t *c = conn_of(p);
  if (c->parsing == NULL) {
    c->parsing = vigil__request_new(c->loop, c);
    if (c->parsing == NULL) return HPE_USER;
  }
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

/* tchar (RFC 9110 5.6.2): what a method token is made of (9.1). */
static const bool tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0' ... '9'] = 1, ['a' ... 'z'] = 1,
    ['A' ... 'Z'] = 1,
};

static int on_method(llhttp_t *p, const char *at, size_t len) {
  vigil_conn_t *c = conn_of(p);
  (void)len;
  if (c->method_at == NULL) c->method_at = at;
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
   * is immutable now (other threads read it). They are dropped. */
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

/* uri-host [ ":" port ]: reg-name characters (unreserved, sub-delims,
 * pct-encoded), or an IP-literal in []. A table: this runs on every
 * request. */
static const bool host_char[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['!'] = 1, ['$'] = 1,
    ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1,
    [','] = 1, [';'] = 1, ['='] = 1, [':'] = 1, ['['] = 1, [']'] = 1,
    ['%'] = 1, ['0' ... '9'] = 1, ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1,
};

/* An empty value is valid: RFC 9110 7.2 has a client send `Host:` empty
 * when the target URI has no authority (Go and Node take it too). */
static bool valid_host(const char *v, size_t n) {
  const unsigned char *s = (const unsigned char *)v;
  unsigned ok = 1;
  size_t i = 0;
  /* Four lookups per step and no branch per byte: a Host value is short
   * and nearly always valid. */
  for (; i + 4 <= n; i += 4)
    ok &= host_char[s[i]] & host_char[s[i + 1]] & host_char[s[i + 2]] &
          host_char[s[i + 3]];
  for (; i < n; i++) ok &= host_char[s[i]];
  return ok != 0;
}

/* A header name against a lowercase token (letters and '-'): ASCII case
 * folding by OR 0x20, which maps only 'A'-'Z' onto 'a'-'z' among the token
 * characters llhttp lets into a name (and '-' onto itself). Inline: it runs
 * for every header line. */
static bool name_eq(vigil_request_t *r, const vigil_hdr_index_t *h,
                    const char *lower, size_t len) {
  if (h->name_len != len) return false;
  const char *n = r->strings.base + h->name_off;
  for (size_t i = 0; i < len; i++)
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
    if (!valid_host(v, h->value_len) && c->head_error == 0)
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

/* authority-form (RFC 9112 3.2.3), CONNECT's only form: uri-host ":" port,
 * the host a reg-name or an IP-literal in [], the port 1 to 5 digits. */
static bool authority_form(const char *t, size_t n) {
  size_t colon = n;
  while (colon > 0 && t[colon - 1] != ':') colon--;
  if (colon < 2) return false; /* no ':' or no host */
  size_t plen = n - colon;
  if (plen == 0 || plen > 5) return false;
  unsigned port = 0;
  for (size_t i = colon; i < n; i++) {
    if (t[i] < '0' || t[i] > '9') return false;
    port = port * 10 + (unsigned)(t[i] - '0');
  }
  if (port > 65535) return false;
  size_t hlen = colon - 1;
  if (t[0] == '[') {
    if (hlen < 3 || t[hlen - 1] != ']') return false;
    for (size_t i = 1; i < hlen - 1; i++) {
      char ch = t[i];
      if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
            (ch >= 'A' && ch <= 'F') || ch == ':' || ch == '.'))
        return false;
    }
    return true;
  }
  for (size_t i = 0; i < hlen; i++)
    if (!host_char[(unsigned char)t[i]] || t[i] == ':' || t[i] == '[' ||
        t[i] == ']')
      return false;
  return true;
}

/* absolute-form (RFC 9112 3.2.2): scheme ":" ... (RFC 3986 3.1). */
static bool absolute_form(const char *t, size_t n) {
  if (n < 2 || !((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z')) return false;
  for (size_t i = 1; i < n; i++) {
    char ch = t[i];
    if (ch == ':') {
      /* The authority ("//" authority, RFC 3986 3) is checked as a Host
       * value is, since it stands for Host (RFC 9112 3.2.2): no userinfo
       * (RFC 9110 4.2.4: a recipient treats it as an error), not empty
       * (4.2.1: an http URI without a host is invalid). A URI with no
       * authority ("urn:a", "mailto:x") names nothing this server routes. */
      const char *a = t + i + 1, *end = t + n;
      if (end - a < 2 || a[0] != '/' || a[1] != '/') return false;
      a += 2;
      const char *e = a;
      while (e < end && *e != '/' && *e != '?' && *e != '#') e++;
      return e > a && valid_host(a, (size_t)(e - a));
    }
    if (!((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') && !(ch >= '0' && ch <= '9') &&
        ch != '+' && ch != '-' && ch != '.')
      return false;
  }
  return false;
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
    form_ok = authority_form(t, tl);
  } else if (tl == 1 && t[0] == '*') {
    form_ok = !c->method_other && p->method == HTTP_OPTIONS;
  } else if (tl > 0 && t[0] == '/') {
    form_ok = true;
  } else {
    form_ok = r->absolute_form = absolute_form(t, tl);
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

/* Scanner states for a chunk's extension list (ext_scan). */
enum {
  EXT_NONE = 0, /* llhttp parses */
  EXT_FIRST,    /* the first name, right after the line's first ';' */
  EXT_NAME0,    /* a name, after a later ';' (BWS first allowed) */
  EXT_NAME,     /* in a name */
  EXT_NAME_BWS, /* BWS after a name: '=' or ';' must follow */
  EXT_VAL0,     /* after '=' (BWS first allowed) */
  EXT_TOKEN,    /* in a token value */
  EXT_QUOTED,   /* in a quoted-string */
  EXT_QPAIR,    /* after '\' in a quoted-string */
  EXT_VAL_END,  /* after a quoted-string: ';', BWS or CR */
  EXT_VAL_BWS,  /* BWS after a value: ';' must follow */
  EXT_CR,       /* the line's CR: LF must follow */
};

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
    .on_method = on_method,
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

/* Byte classes for the head checks below. */
enum { HC_PLAIN = 0, HC_LEAD, HC_CR, HC_LF, HC_BAD };
static const unsigned char head_class[256] = {
    [0x00 ... 0x08] = HC_BAD, ['\t'] = HC_LEAD, ['\n'] = HC_LF,
    [0x0b ... 0x0c] = HC_BAD, ['\r'] = HC_CR, [0x0e ... 0x1f] = HC_BAD,
    [0x7f] = HC_BAD,
    [' '] = HC_LEAD, [':'] = HC_LEAD, /* with HTAB: bad at a line start */
};

/* The bytes of w (eight mid-line bytes, read little-endian) below 0x20 or
 * equal to 0x7f, flagged by their high bit: the classic has-less/has-zero
 * bit tricks. Zero means none; otherwise the lowest flag is exact (higher
 * ones may be false, borrows only run upward). HTAB is flagged too. */
static inline uint64_t word_special(uint64_t w) {
  const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
  uint64_t below = (w - ones * 0x20) & ~w & high;
  uint64_t del = w ^ (ones * 0x7f);
  return below | ((del - ones) & ~del & high);
}

/* Eight bytes, the first in the least significant place on any machine:
 * borrows then run in memory order and word_special's lowest flag is the
 * first special byte. */
static inline uint64_t load_le64(const unsigned char *p) {
  uint64_t w;
  memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

#if defined(__SSE2__)
/* check_head_bytes over n >= 16 bytes that pass all its checks, sixteen
 * at a time: every byte below 0x20 or 0x7f is HTAB, CR or LF, a CR has an
 * LF after it, an LF a CR before it, and no line starts with SP, HTAB or
 * ':'. True leaves the state as the byte-at-a-time scan would; false
 * changes nothing, and that scan decides. Only asked once the request
 * line's LF can no longer fail (version_seen or first_line_done). */
static bool head_bytes_clean(vigil_conn_t *c, const unsigned char *s, size_t n) {
  int last = c->head_last;
  if (last == '\r' && s[0] != '\n') return false;
  /* The byte before s[0]: at a line start, as if an LF. */
  int before = last == '\r' ? '\r' : c->head_line_start ? '\n' : last;
  const __m128i tab = _mm_set1_epi8('\t'), lf = _mm_set1_epi8('\n'),
                cr = _mm_set1_epi8('\r'), del = _mm_set1_epi8(0x7f),
                ctl = _mm_set1_epi8(0x1f), sp = _mm_set1_epi8(' '),
                colon = _mm_set1_epi8(':');
  __m128i lfs = _mm_setzero_si128();
  size_t i = 0;
  for (;;) {
    __m128i cur = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
    __m128i prev = i == 0 ? _mm_or_si128(_mm_slli_si128(cur, 1),
                                         _mm_cvtsi32_si128(before & 0xff))
                          : _mm_loadu_si128((const __m128i *)(const void *)(s + i - 1));
    __m128i next = i + 16 < n
                       ? _mm_loadu_si128((const __m128i *)(const void *)(s + i + 1))
                       : _mm_srli_si128(cur, 1);
    __m128i is_tab = _mm_cmpeq_epi8(cur, tab), is_cr = _mm_cmpeq_epi8(cur, cr),
            is_lf = _mm_cmpeq_epi8(cur, lf);
    __m128i special = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(cur, ctl), cur),
                                   _mm_cmpeq_epi8(cur, del));
    __m128i lead = _mm_or_si128(is_tab, _mm_or_si128(_mm_cmpeq_epi8(cur, sp),
                                                     _mm_cmpeq_epi8(cur, colon)));
    __m128i fail = _mm_andnot_si128(_mm_or_si128(is_tab, _mm_or_si128(is_cr, is_lf)), special);
    fail = _mm_or_si128(fail, _mm_andnot_si128(_mm_cmpeq_epi8(next, lf), is_cr));
    fail = _mm_or_si128(fail, _mm_andnot_si128(_mm_cmpeq_epi8(prev, cr), is_lf));
    fail = _mm_or_si128(fail, _mm_and_si128(_mm_cmpeq_epi8(prev, lf), lead));
    if (_mm_movemask_epi8(fail) != 0) return false;
    lfs = _mm_or_si128(lfs, is_lf);
    if (i + 16 >= n) break;
    i = n - i - 16 >= 16 ? i + 16 : n - 16; /* the last block may overlap */
  }
  if (_mm_movemask_epi8(lfs) != 0) c->first_line_done = true;
  c->head_bytes += n;
  c->head_last = s[n - 1];
  c->head_line_start = s[n - 1] == '\n';
  return true;
}
#endif

/* The header block checks llhttp 8.1 strict still lets through, run over
 * every byte of the head: bare LF (and so "\r\n\n" ending the block), bare
 * CR, a line starting with SP/HTAB (obs-fold, CVE-2024-27982), a line
 * starting with ':' (empty name), control bytes, and the size limit. The
 * first offending byte decides the status; past max_header_bytes, 431;
 * either replaces a status a callback noted (returns true then).
 * This runs on every request: the middle of a line is skipped through a
 * table, only line ends and line starts take the slow path. */
static bool check_head_bytes(vigil_conn_t *c, const char *data, size_t len,
                             size_t *stop) {
  size_t limit = c->loop->server->config.max_header_bytes;
  size_t room = c->head_bytes < limit ? limit - c->head_bytes : 0;
  const unsigned char *s = (const unsigned char *)data, *p = s;
  const unsigned char *end = s + (len < room ? len : room);
#if defined(__SSE2__)
  if (len >= 16 && len <= room && (c->first_line_done || c->version_seen) &&
      head_bytes_clean(c, s, len)) {
    *stop = len;
    return false;
  }
#endif
  int last = c->head_last;
  bool line_start = c->head_line_start;
  int err = 0;
  while (p < end) {
    if (!line_start && last != '\r') {
      const unsigned char *q = p;
      while (end - q >= 8) {
        uint64_t m = word_special(load_le64(q));
        if (m == 0) {
          q += 8;
          continue;
        }
        q += (unsigned)__builtin_ctzll(m) >> 3;
        if (*q != '\t') break; /* HTAB mid-line is fine: go on */
        q++;
      }
      if (end - q < 8)
        while (q < end && head_class[*q] <= HC_LEAD) q++;
      if (q > p) {
        last = q[-1];
        p = q;
        if (p == end) break;
      }
    }
    unsigned char ch = *p;
    if (ch == '\r' && last != '\r' && end - p >= 2 && p[1] == '\n') {
      /* A line's CRLF at once, and the next line's first byte if plain:
       * what the byte-at-a-time steps below would decide for them. */
      if (!c->first_line_done && !line_start) {
        c->first_line_done = true;
        if (!c->version_seen) { /* HTTP/0.9, see below */
          last = ch;
          p++;
          err = 400;
          break;
        }
      }
      p += 2;
      last = '\n';
      line_start = true;
      if (p < end && head_class[*p] == HC_PLAIN) {
        last = *p++;
        line_start = false;
      }
      continue;
    }
    int cls = head_class[ch];
    if (cls == HC_LF) {
      if (last != '\r') {
        err = 400;
        break;
      }
      /* HTTP/0.9 ("GET /" and no version): llhttp would wait for headers
       * that never come. The request line ended: it must have had one.
       * Empty lines (CRLF) before it are not it: RFC 9112 2.2 says to
       * ignore them, and llhttp skips them (counted here against
       * max_header_bytes). Deciding by the line, not by the offset, keeps
       * the answer the same however the bytes were split across reads. */
      if (!c->first_line_done && !line_start) {
        c->first_line_done = true;
        if (!c->version_seen) {
          err = 400;
          break;
        }
      }
      line_start = true;
    } else if (last == '\r' || cls == HC_BAD || (line_start && cls == HC_LEAD)) {
      err = 400;
      break;
    } else if (cls != HC_CR) {
      line_start = false;
    }
    last = ch;
    p++;
  }
  c->head_bytes += (size_t)(p - s);
  c->head_last = last;
  c->head_line_start = line_start;
  *stop = (size_t)(p - s);
  if (err != 0) c->head_error = err;
  else if (len > room) c->head_error = 431;
  return err != 0 || len > room;
}

/* ------------------------------------------------------------------ */
/* chunked framing */

/* qdtext (RFC 9110 5.6.4): HTAB, SP, VCHAR but '"' and '\', obs-text. */
static const bool qdtext[256] = {
    ['\t'] = 1, [' '] = 1, ['!'] = 1, ['#' ... '['] = 1, [']' ... '~'] = 1,
    [0x80 ... 0xff] = 1,
};

/* The rest of a chunk-size line after its first ';', against RFC 9112
 * 7.1.1:
 *   chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   chunk-ext-val = token / quoted-string
 * then CRLF. State in c->ext_state, so a list may arrive in any number of
 * reads; every byte up to the CR counts against max_chunk_ext_bytes.
 * Returns the bytes consumed; *res is 1 once the line's LF was consumed, 0
 * if more bytes are needed, -1 if the line is malformed. BWS next to the
 * first ';' is refused (llhttp 8.1 refuses a SP there before the core sees
 * the line, so HTAB is refused too). */
static size_t ext_scan(vigil_conn_t *c, const unsigned char *s, size_t len, int *res) {
  size_t max = c->loop->server->config.max_chunk_ext_bytes;
  int st = c->ext_state;
  size_t i = 0;
  *res = 0;
  for (; i < len; i++) {
    unsigned char ch = s[i];
    bool ws = ch == ' ' || ch == '\t';
    if (st == EXT_CR) {
      if (ch != '\n') goto bad;
      c->ext_state = EXT_NONE;
      *res = 1;
      return i + 1;
    }
    if (ch == '\r') {
      if (st != EXT_NAME && st != EXT_TOKEN && st != EXT_VAL_END) goto bad;
      st = EXT_CR;
      continue;
    }
    if (++c->chunk_ext_bytes > max) goto bad;
    switch (st) {
      case EXT_FIRST:
      case EXT_NAME0:
        if (tchar[ch]) st = EXT_NAME;
        else if (!ws || st == EXT_FIRST) goto bad;
        break;
      case EXT_NAME:
        if (tchar[ch]) break;
        if (ch == '=') st = EXT_VAL0;
        else if (ch == ';') st = EXT_NAME0;
        else if (ws) st = EXT_NAME_BWS;
        else goto bad;
        break;
      case EXT_NAME_BWS:
        if (ch == '=') st = EXT_VAL0;
        else if (ch == ';') st = EXT_NAME0;
        else if (!ws) goto bad;
        break;
      case EXT_VAL0:
        if (tchar[ch]) st = EXT_TOKEN;
        else if (ch == '"') st = EXT_QUOTED;
        else if (!ws) goto bad;
        break;
      case EXT_TOKEN:
        if (tchar[ch]) break;
        if (ch == ';') st = EXT_NAME0;
        else if (ws) st = EXT_VAL_BWS;
        else goto bad;
        break;
      case EXT_QUOTED:
        if (ch == '"') st = EXT_VAL_END;
        else if (ch == '\\') st = EXT_QPAIR;
        else if (!qdtext[ch]) goto bad;
        break;
      case EXT_QPAIR: /* HTAB, SP, VCHAR, obs-text */
        if (!qdtext[ch] && ch != '"' && ch != '\\') goto bad;
        st = EXT_QUOTED;
        break;
      case EXT_VAL_END:
      case EXT_VAL_BWS:
        if (ch == ';') st = EXT_NAME0;
        else if (ws) st = EXT_VAL_BWS;
        else goto bad;
        break;
      default:
        goto bad;
    }
  }
  c->ext_state = (uint8_t)st;
  return i;
bad:
  c->ext_state = EXT_NONE;
  *res = -1;
  return i;
}

/* The extension list is checked: put the parser back to where it was at
 * head complete - from there llhttp parses a chunk-size line exactly as
 * after any chunk (both lead to its chunk-size start with the message's
 * flags unchanged) - and give it the line without its extensions. llhttp
 * itself still parses every chunk size, chunk, trailer and the end. */
static llhttp_errno_t ext_resume(vigil_conn_t *c) {
  char line[24];
  int n = snprintf(line, sizeof line, "%llx\r\n", (unsigned long long)c->ext_size);
  c->parser = c->chunk_snap;
  llhttp_resume(&c->parser);
  return llhttp_execute(&c->parser, line, (size_t)n);
}

/* Every line of chunked framing - size lines with their extensions, the
 * CRLF after each chunk's data, trailer fields, the last empty line - ends
 * in CRLF (RFC 9112 7.1, 7.1.2). llhttp 8.1 strict takes a bare LF in the
 * trailer section - `0\r\n\n` ends the message, and what follows is read
 * as the next request: request smuggling - and obs-fold, empty names and
 * control bytes in trailer fields. The bytes llhttp consumes in the body
 * phase outside the body spans it reports are exactly these lines; they get
 * the head's byte classes here, the state carried across reads. */
static bool check_frame_bytes(vigil_conn_t *c, const char *data, size_t len) {
  const unsigned char *s = (const unsigned char *)data;
  int last = c->frame_last;
  bool line_start = c->frame_line_start;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = s[i];
    int cls = head_class[ch];
    if (cls == HC_LF) {
      if (last != '\r') return false;
      line_start = true;
    } else if (last == '\r' || cls == HC_BAD || (line_start && cls == HC_LEAD)) {
      return false; /* bare CR, control byte, obs-fold, empty name */
    } else if (cls != HC_CR) {
      line_start = false;
    }
    last = ch;
  }
  c->frame_last = (uint8_t)last;
  c->frame_line_start = line_start;
  return true;
}

/* The request line, exactly as RFC 9112 3 has it: method SP
 * request-target SP HTTP-version CRLF, one SP each, the method a token and
 * the version "HTTP/" DIGIT "." DIGIT. llhttp 8.1 takes several SP between
 * the parts (a smuggling risk: another reader may split them otherwise)
 * and other protocols (RTSP/1.0, ICE/1.0). Runs over the head's first line
 * only, across reads; what llhttp refuses itself is refused either way.
 * Empty lines before the request line are left to the other checks. */
enum { RL_START = 0, RL_METHOD, RL_TARGET0, RL_TARGET, RL_VERSION, RL_DONE };

/* "HTTP/1.0" as load_le64 reads it. */
#define HTTP_1_0_LE 0x302e312f50545448ull

static bool check_request_line(vigil_conn_t *c, const char *data, size_t len,
                               size_t *unsupported_at) {
  static const char proto[] = "HTTP/";
  const unsigned char *q = (const unsigned char *)data, *end = q + len;
  int st = c->rl_state, n = c->rl_n;
  bool bad = false, unsupported = false;
  *unsupported_at = 0;
  /* Refused already: a later read must not go on from where it stopped
   * (it would find a version after a bad byte: 505 instead of 400). */
  if (c->rl_bad) return false;
  /* The usual case, the whole line in this read with version 1.0 or 1.1,
   * in one pass without the byte-at-a-time state machine below; it ends in
   * the state that machine would reach. Anything else goes the long way. */
  if (st == RL_START && q < end && *q != '\r' && *q != '\n') {
    const unsigned char *m = q;
    while (m < end && tchar[*m]) m++;
    if (m > q && end - m > 2 && m[0] == ' ' && m[1] != ' ' && m[1] != '\r' &&
        m[1] != '\n') {
      const unsigned char *t = m + 2;
      while (t < end && *t != ' ' && *t != '\r' && *t != '\n') t++;
      /* "HTTP/1.0" or "HTTP/1.1": one compare of eight bytes, the last
       * digit's low bit masked. */
      if (end - t >= 10 && t[0] == ' ' && t[9] == '\r' &&
          (load_le64(t + 1) & ~(0x01ull << 56)) == HTTP_1_0_LE) {
        c->rl_state = RL_DONE;
        c->rl_n = 9;
        VIGIL_ASSERT(c->rl_ver == 0); /* digits come in RL_VERSION only */
        c->rl_ver = (uint8_t)(10 + (t[8] - '0'));
        *unsupported_at = (size_t)(t + 10 - q);
        return false;
      }
    }
  }
  while (q < end && st != RL_DONE && !bad) {
    unsigned char ch = *q++;
    switch (st) {
      case RL_START:
        if (ch == '\r' || ch == '\n') break;
        st = RL_METHOD;
        /* fall through */
      case RL_METHOD:
        if (ch == ' ') st = RL_TARGET0;
        else bad = !tchar[ch];
        break;
      case RL_TARGET0:
        st = RL_TARGET;
        bad = ch == ' ' || ch == '\r' || ch == '\n';
        break;
      case RL_TARGET:
        while (ch != ' ' && ch != '\r' && ch != '\n' && q < end) ch = *q++;
        if (ch == ' ') st = RL_VERSION, n = 0;
        else bad = ch == '\r' || ch == '\n';
        break;
      case RL_VERSION:
        if (n < 5) bad = ch != (unsigned char)proto[n];
        else if (n == 5 || n == 7) {
          bad = ch < '0' || ch > '9';
          c->rl_ver = (uint8_t)(c->rl_ver * 10 + (ch - '0'));
        } else if (n == 6) bad = ch != '.';
        else if (ch == '\r') {
          st = RL_DONE;
          /* The versions llhttp reads whole besides 1.0 and 1.1 (0.9 and
           * 2.0; it stops inside any other: 400 then, see
           * vigil__parse_error_status): known here, at the line's end,
           * and answered now - llhttp would wait for the rest of the head,
           * and for PRI with 2.0 for an HTTP/2 preface that never comes. */
          unsupported = c->rl_ver == 9 || c->rl_ver == 20;
        } else bad = true;
        n++;
        break;
    }
  }
  c->rl_state = (uint8_t)st;
  c->rl_n = (uint8_t)n;
  c->rl_bad = bad;
  *unsupported_at = (size_t)(q - (const unsigned char *)data);
  /* Over a status a header callback noted (417, 501, ...): this check runs
   * after llhttp returned, so in one write the callbacks of the whole head
   * ran first, while a read ending after the request line had this 400
   * noted first. The request line comes first in the stream; its answer
   * wins either way. (The byte checks, run after this, win over both.) */
  if (bad) c->head_error = 400;
  return unsupported;
}

bool vigil__head_error_is_head(const vigil_conn_t *c) {
  /* llhttp may have read the method past a byte the checks refused (in one
   * write) or not (split before it): HEAD counts only when the request
   * line's own check got past the method. */
  return c->head_is_head && c->rl_state > RL_METHOD;
}

/* llhttp 8.1 takes SP but not HTAB as OWS after a value it reads itself:
 * `Connection: close<HTAB>` is not "close" to it, `Content-Length:
 * 5<HTAB>` and `Transfer-Encoding: chunked<HTAB>` are refused (RFC 9110
 * 5.6.3: OWS is SP and HTAB). So in the head, an HTAB in the OWS that ends
 * a line becomes SP before llhttp sees it: the handler never sees that OWS
 * (on_header_value_complete trims it), and an HTAB inside a value stays.
 * Only up to the end of the head: body bytes are not ours to touch. And an
 * OWS run at the end of what arrived so far is held back (not given to
 * llhttp) until the byte after it shows whether it ends the line: unless
 * long, when the head limit is the better answer. Returns how many bytes
 * llhttp may take. */
#define OWS_HOLD_MAX 256

/* Is there an HTAB in the head, in d[0, len)? True may also mean "not
 * known"; then head_ows walks the lines. Past the head's end - the CR of
 * the first empty line after a line with content, where head_ows stops -
 * pipelined requests and body bytes are not read. */
static bool tab_in_head(const vigil_conn_t *c, const char *d, size_t len) {
  /* A short read, as a head without a body mostly is: libc's memchr over
   * all of it costs less than finding the head's end. */
  if (len <= 64) return memchr(d, '\t', len) != NULL;
  /* Empty lines first (RFC 9112 2.2): the end is not the first empty line. */
  if (c->rl_state == RL_START && (d[0] == '\r' || d[0] == '\n')) return true;
  size_t i = 0;
#if defined(__SSE2__)
  const __m128i tab = _mm_set1_epi8('\t'), lf = _mm_set1_epi8('\n'),
                cr = _mm_set1_epi8('\r');
  for (; len - i >= 17; i += 16) {
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(d + i));
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(d + i + 1));
    unsigned t = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(a, tab));
    unsigned e = (unsigned)_mm_movemask_epi8(
        _mm_and_si128(_mm_cmpeq_epi8(a, lf), _mm_cmpeq_epi8(b, cr)));
    if ((t | e) != 0)
      return t != 0 && (e == 0 || __builtin_ctz(t) < __builtin_ctz(e));
  }
#endif
  for (; i < len; i++) {
    if (d[i] == '\t') return true;
    if (d[i] == '\n' && i + 1 < len && d[i + 1] == '\r') return false;
  }
  return false;
}

static size_t head_ows(vigil_conn_t *c, char *data, size_t len) {
  size_t give = len;
  if (len > 0 && is_ows(data[len - 1])) {
    size_t run = 1;
    while (run < len && is_ows(data[len - 1 - run])) run++;
    if (run < OWS_HOLD_MAX) give = len - run;
  }
  /* Only an HTAB is rewritten: none in the head, nothing to walk. */
  if (!tab_in_head(c, data, len)) return give;
  char *q = data, *end = data + len;
  bool line_start = c->head_line_start;
  bool content = c->rl_state != RL_START; /* empty lines before it: not the end */
  /* The empty line's CR came last time: only its LF is head. */
  if (line_start && content && c->head_last == '\r') return give;
  while (q < end) {
    if (line_start && content && *q == '\r') break; /* the empty line: head ends */
    char *lf = memchr(q, '\n', (size_t)(end - q));
    char *eol = lf != NULL ? lf : end;
    char *cr = eol > q && eol[-1] == '\r' ? eol - 1 : NULL;
    if (cr != NULL)
      for (char *w = cr; w > q && is_ows(w[-1]); w--) w[-1] = ' ';
    if ((cr != NULL ? cr : eol) > q) content = true;
    if (lf == NULL) break;
    q = lf + 1;
    line_start = true;
  }
  return give;
}

/* A method llhttp 8.1 does not know (RFC 9110 9.1: any token is a method:
 * QUERY, a lowercase get, MKCOLA) or takes only for RTSP. The token is
 * checked here (tchar+ then one SP) and kept for the request, and llhttp
 * is started over on "GET " and the rest of the line: request framing does
 * not depend on the method (CONNECT aside, which llhttp knows), so llhttp
 * still parses all the rest. A partial method is never consumed (see
 * vigil__parse), so the whole token is in `data`, after nothing but the
 * empty lines llhttp skips. Returns llhttp's state; *used as for a call of
 * llhttp_execute on data. */
static llhttp_errno_t unknown_method(vigil_conn_t *c, const char *data,
                                     size_t len, llhttp_errno_t e,
                                     size_t *used) {
  llhttp_t *p = &c->parser;
  const char *end = data + len, *start;
  if (c->method_at != NULL && c->method_at >= data && c->method_at < end) {
    start = c->method_at;
  } else {
    start = data + *used; /* the error position */
    while (start > data && tchar[(unsigned char)start[-1]]) start--;
  }
  const char *q = start;
  while (q < end && tchar[(unsigned char)*q] && q - start <= VIGIL__METHOD_MAX) q++;
  size_t n = (size_t)(q - start);
  if (n > VIGIL__METHOD_MAX) {
    /* RFC 9110 9.1: an unrecognised method SHOULD get 501. */
    c->head_error = 501;
    *used = (size_t)(q - data);
    return HPE_USER;
  }
  if (q == end) {
    /* The token goes on in the next read: start this message over then. */
    vigil__parser_init(c);
    *used = (size_t)(start - data);
    return HPE_OK;
  }
  if (n == 0 || *q != ' ') return e; /* not a token and SP: llhttp's 400 */
  vigil__parser_init(c);
  if (llhttp_execute(p, "GET ", 4) != HPE_OK || c->parsing == NULL) {
    *used = (size_t)(start - data);
    return HPE_USER;
  }
  memcpy(c->parsing->method_token, start, n);
  c->parsing->method_token[n] = '\0';
  c->method_other = true;
  c->head_is_head = false;
  const char *rest = q + 1;
  e = llhttp_execute(p, rest, (size_t)(end - rest));
  *used = len;
  if (e != HPE_OK) {
    const char *pos = llhttp_get_error_pos(p);
    *used = pos ? (size_t)(pos - data) : (size_t)(rest - data);
    if (*used > len) *used = len;
  }
  return e;
}

/* llhttp reports an open span (the target, a header name or value) at the
 * end of every execute call, but not when it stops at an error. Report it
 * up to the offending byte, as a read ending there would have: the checks
 * on spans (target length: 414, header count: 431) then see the same bytes
 * before the error however the head was split. */
static void report_span_at_error(llhttp_t *p, const char *data, size_t len) {
  typedef int (*span_cb)(llhttp_t *, const char *, const char *);
  const char *pos = llhttp_get_error_pos(p);
  const char *start = p->_span_pos0;
  p->_span_pos0 = NULL;
  if (pos != NULL && pos >= start && pos <= data + len)
    ((span_cb)p->_span_cb0)(p, start, pos);
}

static inline void report_open_span(llhttp_t *p, llhttp_errno_t e,
                                    const char *data, size_t len) {
  if (e != HPE_OK && e != HPE_PAUSED && e != HPE_PAUSED_UPGRADE &&
      e != HPE_USER && p->_span_pos0 != NULL)
    report_span_at_error(p, data, len);
}

size_t vigil__parse(vigil_conn_t *c, const char *data, size_t len,
                    llhttp_errno_t *err) {
  llhttp_t *p = &c->parser;
  llhttp_errno_t e;
  c->body_at = NULL;
  c->body_len = 0;
  bool in_head = c->phase == PHASE_HEAD;
  /* The connection's own input bytes (conn.c hands us c->in): head_ows
   * may rewrite OWS in the head. */
  if (in_head) len = head_ows(c, (char *)data, len);
  c->method_at = NULL;
  size_t off = 0; /* consumed */
  for (;;) {
    if (c->ext_state != EXT_NONE) {
      int res;
      off += ext_scan(c, (const unsigned char *)data + off, len - off, &res);
      if (res <= 0) {
        e = res < 0 ? HPE_USER : HPE_OK; /* HPE_OK: more bytes needed */
        break;
      }
      if (ext_resume(c) != HPE_OK) {
        e = HPE_USER;
        break;
      }
    } else {
      e = llhttp_get_errno(p);
      if (e == HPE_PAUSED) llhttp_resume(p);
      else if (e == HPE_PAUSED_UPGRADE) llhttp_resume_after_upgrade(p);
    }
    e = llhttp_execute(p, data + off, len - off);
    if (e == HPE_PAUSED && c->ext_at != NULL) {
      /* The first extension of a size line: the rest of it is ours. */
      const char *at = c->ext_at;
      c->ext_at = NULL;
      if (at < data + off || at > data + len) {
        e = HPE_USER;
        break;
      }
      off = (size_t)(at - data);
      continue;
    }
    size_t used = len - off;
    if (e != HPE_OK) {
      const char *pos = llhttp_get_error_pos(p);
      used = pos && pos >= data + off ? (size_t)(pos - (data + off)) : 0;
      if (used > len - off) used = len - off;
    }
    off += used;
    break;
  }
  if (in_head) {
    report_open_span(p, e, data, len);
    if (e == HPE_INVALID_METHOD ||
        (e == HPE_CB_METHOD_COMPLETE && c->method_retry)) {
      e = unknown_method(c, data, len, e, &off);
      report_open_span(p, e, data, len);
    } else if (e == HPE_OK && c->method_at != NULL &&
               memchr(c->method_at, ' ', (size_t)(data + len - c->method_at)) == NULL) {
      /* The read ended inside the method or before its SP: llhttp would
       * keep what it matched so far in its own state ("MKCOL" is complete
       * to it before the SP), and an unknown method found later
       * ("MKCOLA") could not be recovered. Not consumed: parsed again
       * whole with the next read (a method is short, VIGIL__METHOD_MAX). */
      vigil__parser_init(c);
      off = (size_t)(c->method_at - data);
    }
    /* Where llhttp stopped on an error of its own, its offending byte is
     * checked too (a SP after the version: 400, not llhttp's error). Not
     * where we stopped it (HPE_USER: a limit, a method token too long):
     * that decision took no later byte, and a read may have ended there. */
    bool failed = e != HPE_OK && e != HPE_PAUSED && e != HPE_PAUSED_UPGRADE &&
                  e != HPE_USER;
    size_t rl_len = failed && off < len ? off + 1 : off;
    /* A span's limit was passed in this call (a span is reported at its end
     * or at the end of the call): the head ends for us where it was passed,
     * not where llhttp stopped. */
    if (c->head_error_at != NULL && c->head_error_at >= data && c->head_error_at <= data + off)
      off = rl_len = (size_t)(c->head_error_at - data);
    c->head_error_at = NULL;
    /* With the parser pausing at head complete, what this call consumed in
     * the head phase is head bytes only (plus, for a body-less request,
     * nothing after the final CRLF).
     * One answer whatever the segmentation: the byte checks cover every
     * byte llhttp consumed, which ends where a callback stopped it, so
     * what they find lies before a callback's error and replaces it. A
     * callback's error that did not stop llhttp (an invalid Host value, a
     * malformed request line) is acted on when llhttp stops: at head
     * complete, another error, or the size limit - not at the end of
     * whichever read it came in. */
    size_t stop;
    bool bad_bytes = check_head_bytes(c, data, off, &stop);
    if (c->rl_state != RL_DONE) {
      /* The request line as far as the bytes before a bad one: llhttp may
       * have read on (in one write) or not (split there), and what the
       * answer says of the method (HEAD: no body) must not depend on it. */
      int bytes_status = c->head_error;
      size_t at;
      if (check_request_line(c, data, bad_bytes && stop < rl_len ? stop : rl_len, &at)) {
        /* RFC 9110 15.6.6: 505, decided at the request line's CR, before
         * any byte after it: the same answer however the head is split. */
        c->head_error = 505;
        off = at;
        bad_bytes = true;
      } else if (bad_bytes) {
        c->head_error = bytes_status; /* the byte checks win */
      }
    }
    if (bad_bytes || (c->head_error != 0 && e != HPE_OK))
      e = HPE_USER;
    else if (e == HPE_PAUSED && c->head_ready && (p->flags & F_CHUNKED)) {
      /* A chunked body follows: the parser state its size lines start
       * from, and fresh framing checks. */
      c->chunk_snap = *p;
      c->ext_state = EXT_NONE;
      c->ext_at = NULL;
      c->frame_last = '\n';
      c->frame_line_start = true;
    }
  } else {
    /* At most one body span per call (on_body pauses); the rest is
     * framing. */
    const char *bend = c->body_len ? c->body_at + c->body_len : data;
    bool ok = c->body_len ? check_frame_bytes(c, data, (size_t)(c->body_at - data)) &&
                                check_frame_bytes(c, bend, (size_t)(data + off - bend))
                          : check_frame_bytes(c, data, off);
    if (!ok) {
      /* Nothing parsed in this call may be acted on. */
      c->body_at = NULL;
      c->body_len = 0;
      c->msg_complete = false;
      e = HPE_USER;
    }
  }
  *err = e;
  return off;
}

/* 505 only comes from on_headers_complete, for a version llhttp read whole
 * (0.9, 2.0). Where llhttp stops inside a version (HTTP/1.2, HTTP/3.0,
 * HTTP/1.01, HTTP/11) it may not have seen the bytes that tell a version
 * we do not support from a malformed line ("HTTP/0.1" then "/1.1" in a
 * later read): 400, the same however the line was split. */
int vigil__parse_error_status(const vigil_conn_t *c) {
  return c->head_error != 0 ? c->head_error : 400;
}
