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

static bool valid_host(const char *v, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (!host_char[(unsigned char)v[i]]) return false;
  return true;
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

static int on_header_value_complete(llhttp_t *p) {
  vigil_conn_t *c = conn_of(p);
  vigil_request_t *r = c->parsing;
  if (r == NULL) return 0; /* a trailer: dropped */
  vigil_hdr_index_t *h = &r->headers[r->nheaders - 1];
  c->in_header_value = HS_NONE;
  if (name_eq(r, h, "transfer-encoding", 17)) {
    c->te_seen = true;
  } else if (name_eq(r, h, "host", 4)) {
    c->host_count++;
    if (!valid_host(r->strings.base + h->value_off, h->value_len) &&
        c->head_error == 0)
      c->head_error = 400;
  } else if (name_eq(r, h, "expect", 6)) {
    /* Honoured for HTTP/1.1 only (on_headers_complete). */
    if (h->value_len == 12 &&
        strncasecmp(r->strings.base + h->value_off, "100-continue", 12) == 0)
      r->expect_continue = true;
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  vigil_conn_t *c = conn_of(p);
  vigil_request_t *r = c->parsing;
  r->method_id = (uint8_t)p->method;
  r->method = llhttp_method_name((llhttp_method_t)p->method);
  if (p->http_major == 1 && (p->http_minor == 0 || p->http_minor == 1)) {
    r->version = (uint8_t)(10 + p->http_minor);
  } else {
    /* llhttp takes any single digits; we speak 1.0 and 1.1 only. */
    if (c->head_error == 0) c->head_error = p->http_major >= 2 ? 505 : 400;
    return HPE_USER;
  }
  r->keep_alive = llhttp_should_keep_alive(p) != 0;
  r->chunked = (p->flags & F_CHUNKED) != 0;
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
  r->is_head = p->method == HTTP_HEAD;
  /* llhttp would stop parsing HTTP after an Upgrade or CONNECT head; we
   * keep speaking HTTP unless a handler hijacks the connection, which then
   * takes the raw bytes from the connection's buffer. */
  r->upgrade = p->upgrade != 0;
  p->upgrade = 0;
  const char *t = r->strings.base ? r->strings.base : "";
  r->absolute_form =
      (r->target_len > 7 && strncasecmp(t, "http://", 7) == 0) ||
      (r->target_len > 8 && strncasecmp(t, "https://", 8) == 0) ||
      p->method == HTTP_CONNECT;
  if (r->version != 11) r->expect_continue = false; /* RFC 9110 10.1.1 */
  /* RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without
   * Host, and to any request with more than one Host line (absolute-form
   * targets may omit it: the target names the host). */
  if (c->head_error == 0 &&
      (c->host_count > 1 ||
       (r->version == 11 && c->host_count == 0 && !r->absolute_form)))
    c->head_error = 400;
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

static int on_chunk_header(llhttp_t *p) {
  conn_of(p)->chunk_ext_bytes = 0;
  return 0;
}

static int on_chunk_ext(llhttp_t *p, const char *at, size_t len) {
  vigil_conn_t *c = conn_of(p);
  (void)at;
  c->chunk_ext_bytes += len;
  if (c->chunk_ext_bytes > c->loop->server->config.max_chunk_ext_bytes)
    return HPE_USER;
  return 0;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
    .on_chunk_extension_name = on_chunk_ext,
    .on_chunk_extension_value = on_chunk_ext,
};

void vigil__parser_init(vigil_conn_t *c) {
  llhttp_init(&c->parser, HTTP_REQUEST, &settings);
  c->parser.data = c;
}

void vigil__head_reset(vigil_conn_t *c) {
  c->head_bytes = 0;
  c->head_last = -1;
  c->head_line_start = 1;
  c->head_error = 0;
  c->head_ready = false;
  c->first_line_done = false;
  c->version_seen = false;
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

/* The header block checks llhttp 8.1 strict still lets through, run over
 * every byte of the head: bare LF (and so "\r\n\n" ending the block), bare
 * CR, a line starting with SP/HTAB (obs-fold, CVE-2024-27982), a line
 * starting with ':' (empty name), control bytes, and the size limit. The
 * first offending byte decides the status; past max_header_bytes, 431.
 * This runs on every request: the middle of a line is skipped through a
 * table, only line ends and line starts take the slow path. */
static void check_head_bytes(vigil_conn_t *c, const char *data, size_t len) {
  if (c->head_error != 0) return;
  size_t limit = c->loop->server->config.max_header_bytes;
  size_t room = c->head_bytes < limit ? limit - c->head_bytes : 0;
  const unsigned char *s = (const unsigned char *)data, *p = s;
  const unsigned char *end = s + (len < room ? len : room);
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
    int cls = head_class[ch];
    if (cls == HC_LF) {
      if (last != '\r') {
        err = 400;
        break;
      }
      /* HTTP/0.9 ("GET /" and no version): llhttp would wait for headers
       * that never come. The request line ended: it must have had one. */
      if (!c->first_line_done && c->head_bytes + (size_t)(p - s) + 1 > 2) {
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
  if (err != 0) c->head_error = err;
  else if (len > room) c->head_error = 431;
}

size_t vigil__parse(vigil_conn_t *c, const char *data, size_t len,
                    llhttp_errno_t *err) {
  llhttp_t *p = &c->parser;
  llhttp_errno_t e = llhttp_get_errno(p);
  if (e == HPE_PAUSED) llhttp_resume(p);
  else if (e == HPE_PAUSED_UPGRADE) llhttp_resume_after_upgrade(p);
  c->body_at = NULL;
  c->body_len = 0;
  bool in_head = c->phase == PHASE_HEAD;
  e = llhttp_execute(p, data, len);
  size_t used = len;
  if (e != HPE_OK) {
    const char *pos = llhttp_get_error_pos(p);
    used = pos ? (size_t)(pos - data) : 0;
    if (used > len) used = len;
  }
  if (in_head) {
    /* With the parser pausing at head complete, what this call consumed in
     * the head phase is head bytes only (plus, for a body-less request,
     * nothing after the final CRLF). */
    check_head_bytes(c, data, used);
    if (c->head_error != 0 && e != HPE_OK && e != HPE_PAUSED &&
        e != HPE_PAUSED_UPGRADE)
      e = HPE_USER;
    else if (c->head_error != 0)
      e = HPE_USER;
  }
  *err = e;
  return used;
}

int vigil__parse_error_status(vigil_conn_t *c, llhttp_errno_t err) {
  if (c->head_error != 0) return c->head_error;
  /* llhttp stops at a version it does not know (HTTP/3.0, HTTP/1.2). */
  if (err == HPE_INVALID_VERSION) return 505;
  return 400;
}
