/* checks.c - the core's own checks of the bytes llhttp 8.1 (strict) lets
 * through (the head's bytes and request line, OWS before a line's CR,
 * Host values and request-target forms, chunk extensions and framing
 * lines), and vigil__parse, which runs llhttp over a connection's input
 * with these checks around each call. The callbacks that build the
 * request are in parse.c. */
#include "vigil_internal.h"

#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static bool is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* Rare paths kept out of the per-request code. */
#define VIGIL__COLD __attribute__((noinline, cold))

/* tchar (RFC 9110 5.6.2): what a method token is made of (9.1). */
static const bool tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1, ['0' ... '9'] = 1, ['a' ... 'z'] = 1,
    ['A' ... 'Z'] = 1,
};

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
bool vigil__valid_host(const char *v, size_t n) {
  const unsigned char *s = (const unsigned char *)v;
  unsigned ok = 1;
  size_t i = 0;
  /* Four lookups per step and no branch per byte: a Host value is short
   * and nearly always valid. */
  for (; i + 4 <= n; i += 4)
    ok &= host_char[s[i]] & host_char[s[i + 1]] & host_char[s[i + 2]] &
          host_char[s[i + 3]];
  if (i < n && n >= 4) /* the last four again, overlapping */
    ok &= host_char[s[n - 4]] & host_char[s[n - 3]] & host_char[s[n - 2]] &
          host_char[s[n - 1]];
  else
    for (; i < n; i++) ok &= host_char[s[i]];
  return ok != 0;
}

/* authority-form (RFC 9112 3.2.3), CONNECT's only form: uri-host ":" port,
 * the host a reg-name or an IP-literal in [], the port 1 to 5 digits. */
bool vigil__authority_form(const char *t, size_t n) {
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
bool vigil__absolute_form(const char *t, size_t n) {
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
      return e > a && vigil__valid_host(a, (size_t)(e - a));
    }
    if (!((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') && !(ch >= '0' && ch <= '9') &&
        ch != '+' && ch != '-' && ch != '.')
      return false;
  }
  return false;
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
  /* The byte before s[0]: at a line start, as if an LF. */
  int before = last == '\r' ? '\r' : c->head_line_start ? '\n' : last;
  if ((before == '\r') != (s[0] == '\n')) return false;
  if (before == '\n' && head_class[s[0]] == HC_LEAD) return false;
  const __m128i tab = _mm_set1_epi8('\t'), lf = _mm_set1_epi8('\n'),
                cr = _mm_set1_epi8('\r'), del = _mm_set1_epi8(0x7f),
                ctl = _mm_set1_epi8(0x1f), sp = _mm_set1_epi8(' '),
                colon = _mm_set1_epi8(':');
  __m128i lfs = _mm_setzero_si128();
  size_t i = 0;
  for (;;) {
    /* Each byte with the one after it (0 past the range's end: a CR last
     * in the range fails, its LF is not known yet). */
    __m128i cur = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
    __m128i next = i + 16 < n
                       ? _mm_loadu_si128((const __m128i *)(const void *)(s + i + 1))
                       : _mm_srli_si128(cur, 1);
    __m128i is_tab = _mm_cmpeq_epi8(cur, tab), is_cr = _mm_cmpeq_epi8(cur, cr),
            is_lf = _mm_cmpeq_epi8(cur, lf);
    __m128i special = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(cur, ctl), cur),
                                   _mm_cmpeq_epi8(cur, del));
    __m128i ok = _mm_or_si128(is_tab, _mm_or_si128(is_cr, is_lf));
    __m128i next_lead = _mm_or_si128(_mm_cmpeq_epi8(next, tab),
                                     _mm_or_si128(_mm_cmpeq_epi8(next, sp),
                                                  _mm_cmpeq_epi8(next, colon)));
    /* A control byte; a CR without an LF next or an LF without a CR
     * before (the first byte's was checked above, the others' in the
     * previous block); a line starting with SP, HTAB or ':'. */
    __m128i fail = _mm_andnot_si128(ok, special);
    fail = _mm_or_si128(fail, _mm_xor_si128(is_cr, _mm_cmpeq_epi8(next, lf)));
    fail = _mm_or_si128(fail, _mm_and_si128(is_lf, next_lead));
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

/* Returns 0, or the status to answer at once, at *answer_at (the byte
 * after the line's CR): 505 for a version llhttp reads whole but we do not
 * speak, 400 for PRI with HTTP/1.x. PRI exists only as the first line of
 * the HTTP/2 connection preface, "PRI * HTTP/2.0" (RFC 9113 3.4, 11.6:
 * "never used by an actual client"); llhttp 8.1 reads a PRI line of any
 * version as that preface and waits for its "SM" after an empty line, so
 * a client would wait for the header timeout. Node (llhttp 9) refuses it
 * too. The parser has read the method when this runs (it runs over what
 * llhttp consumed). */
static int check_request_line(vigil_conn_t *c, const char *data, size_t len,
                              size_t *answer_at) {
  static const char proto[] = "HTTP/";
  const unsigned char *q = (const unsigned char *)data, *end = q + len;
  int st = c->rl_state, n = c->rl_n;
  bool bad = false;
  int now = 0;
  *answer_at = 0;
  /* Refused already: a later read must not go on from where it stopped
   * (it would find a version after a bad byte: 505 instead of 400). */
  if (c->rl_bad) return 0;
  /* The usual case, the whole line in this read with version 1.0 or 1.1,
   * in one pass without the byte-at-a-time state machine below; it ends in
   * the state that machine would reach. Anything else goes the long way. */
  if (st == RL_START && q < end && *q != '\r' && *q != '\n') {
    const unsigned char *m = q;
    uint32_t w;
    /* GET, the common method, in one compare. */
    if (end - q >= 4 && (memcpy(&w, q, 4), memcmp(&w, "GET ", 4) == 0)) m = q + 3;
    else
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
        *answer_at = (size_t)(t + 10 - q);
        return c->parser.method == HTTP_PRI ? 400 : 0;
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
          if (c->rl_ver == 9 || c->rl_ver == 20) now = 505;
          else if (c->parser.method == HTTP_PRI) now = 400;
        } else bad = true;
        n++;
        break;
    }
  }
  c->rl_state = (uint8_t)st;
  c->rl_n = (uint8_t)n;
  c->rl_bad = bad;
  *answer_at = (size_t)(q - (const unsigned char *)data);
  /* Over a status a header callback noted (417, 501, ...): this check runs
   * after llhttp returned, so in one write the callbacks of the whole head
   * ran first, while a read ending after the request line had this 400
   * noted first. The request line comes first in the stream; its answer
   * wins either way. (The byte checks, run after this, win over both.) */
  if (bad) c->head_error = 400;
  return now;
}

bool vigil__head_error_is_head(const vigil_conn_t *c) {
  /* llhttp may have read the method past a byte the checks refused (in one
   * write) or not (split before it): HEAD counts only when the request
   * line's own check got past the method. */
  return c->head_is_head && c->rl_state > RL_METHOD;
}

/* The byte checks and the request-line check over what llhttp consumed
 * in the head phase (see vigil__parse). */
static bool check_head(vigil_conn_t *c, const char *data, size_t *off,
                       size_t rl_len) {
  size_t stop;
  bool bad_bytes = check_head_bytes(c, data, *off, &stop);
  if (c->rl_state != RL_DONE) {
    /* The request line as far as the bytes before a bad one: llhttp may
     * have read on (in one write) or not (split there), and what the
     * answer says of the method (HEAD: no body) must not depend on it. */
    int bytes_status = c->head_error;
    size_t at;
    int now = check_request_line(c, data, bad_bytes && stop < rl_len ? stop : rl_len, &at);
    if (now != 0) {
      /* Decided at the request line's CR, before any byte after it: the
       * same answer however the head is split (505: RFC 9110 15.6.6). */
      c->head_error = now;
      *off = at;
      bad_bytes = true;
    } else if (bad_bytes) {
      c->head_error = bytes_status; /* the byte checks win */
    }
  }
  return bad_bytes;
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

/* Every line of chunked framing - size lines with their extensions, the
 * CRLF after each chunk's data, trailer fields, the last empty line - ends
 * in CRLF (RFC 9112 7.1, 7.1.2). llhttp 8.1 strict takes a bare LF in the
 * trailer section - `0\r\n\n` ends the message, and what follows is read
 * as the next request: request smuggling - and obs-fold, empty names and
 * control bytes in trailer fields. The bytes llhttp consumes in the body
 * phase outside the body spans it reports are exactly these lines; they get
 * the head's byte classes here, the state carried across reads.
 *
 * They are also counted: no more than max_header_bytes of them in a row
 * without a body byte (frame_run; the caller resets it at a body span).
 * That bounds a trailer section on the wire - names, values, the OWS
 * llhttp skips without reporting it, line ends - and any other run of
 * framing llhttp would read on without end (leading zeros of a chunk
 * size). A trailer section is not body, so max_body_bytes does not hold
 * it, and its bytes are not body progress: unbounded, a client could
 * stream one until body_timeout_ms, the handler waiting on the body's end.
 * Its lines are not limited on their own (max_headers): trailers are
 * dropped, a line costs nothing a byte does not. Each chunk's own framing is a size line (its extensions held to
 * max_chunk_ext_bytes) and a CRLF: the run's limit is never below
 * max_chunk_ext_bytes + 256, so extensions the extension limit lets
 * through are not refused by this one when max_header_bytes is small.
 *
 * Counted here, byte by byte in stream order with the other checks, and
 * not in llhttp's span callbacks: a span is reported at its end or at the
 * end of a read, and not at all when llhttp refuses a byte inside it, so a
 * count there would give 431 or 400 depending on how the bytes were split.
 * Returns FRAME_OK, FRAME_BAD (400) or FRAME_LONG (431), for the first
 * byte at fault. */
enum { FRAME_OK = 0, FRAME_BAD = -1, FRAME_LONG = -2 };

static int check_frame_bytes(vigil_conn_t *c, const char *data, size_t len) {
  const unsigned char *s = (const unsigned char *)data;
  int last = c->frame_last;
  bool line_start = c->frame_line_start;
  const vigil_config_t *cfg = &c->loop->server->config;
  size_t max = cfg->max_header_bytes;
  if (max < cfg->max_chunk_ext_bytes + 256) max = cfg->max_chunk_ext_bytes + 256;
  size_t room = max > c->frame_run ? max - c->frame_run : 0;
  size_t n = len < room ? len : room; /* a bad byte before the limit wins */
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = s[i];
    int cls = head_class[ch];
    if (cls == HC_LF) {
      if (last != '\r') return FRAME_BAD;
      line_start = true;
    } else if (last == '\r' || cls == HC_BAD || (line_start && cls == HC_LEAD)) {
      return FRAME_BAD; /* bare CR, control byte, obs-fold, empty name */
    } else if (cls != HC_CR) {
      line_start = false;
    }
    last = ch;
  }
  if (n < len) return FRAME_LONG;
  c->frame_last = (uint8_t)last;
  c->frame_line_start = line_start;
  c->frame_run += len;
  return FRAME_OK;
}

/* ------------------------------------------------------------------ */
/* llhttp with the checks around it */

/* The extension list is checked: put the parser back to where it was at
 * head complete - from there llhttp parses a chunk-size line exactly as
 * after any chunk (both lead to its chunk-size start with the message's
 * flags unchanged) - and give it the line without its extensions. llhttp
 * itself still parses every chunk size, chunk, trailer and the end. */
static VIGIL__COLD llhttp_errno_t ext_resume(vigil_conn_t *c) {
  char line[24];
  int n = snprintf(line, sizeof line, "%llx\r\n", (unsigned long long)c->ext_size);
  c->parser = c->chunk_snap;
  llhttp_resume(&c->parser);
  return llhttp_execute(&c->parser, line, (size_t)n);
}

/* Where the method of a message begun in this call starts: after the empty
 * lines llhttp skips before a request (RFC 9112 2.2), where it begins the
 * message and the method (in the head phase, data starts where the
 * previous message ended). */
static const char *method_start(const char *data, size_t len) {
  const char *q = data, *end = data + len;
  while (q < end && (*q == '\r' || *q == '\n')) q++;
  return q;
}

/* A message begun in this call whose method has no SP after it yet: *off
 * is set to the method's start. */
static bool partial_method(const char *data, size_t len, size_t *off) {
  const char *m = method_start(data, len);
  if (memchr(m, ' ', (size_t)(data + len - m)) != NULL) return false;
  *off = (size_t)(m - data);
  return true;
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
static VIGIL__COLD llhttp_errno_t unknown_method(vigil_conn_t *c, const char *data,
                                     size_t len, llhttp_errno_t e,
                                     size_t *used) {
  llhttp_t *p = &c->parser;
  const char *end = data + len, *start;
  if (c->msg_begun) {
    start = method_start(data, len);
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
static VIGIL__COLD void report_span_at_error(llhttp_t *p, const char *data, size_t len) {
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
  c->msg_begun = false;
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
    } else if (e == HPE_OK && c->msg_begun &&
               partial_method(data, len, &off)) {
      /* The read ended inside the method or before its SP: llhttp would
       * keep what it matched so far in its own state ("MKCOL" is complete
       * to it before the SP), and an unknown method found later
       * ("MKCOLA") could not be recovered. Not consumed: parsed again
       * whole with the next read (a method is short, VIGIL__METHOD_MAX). */
      vigil__parser_init(c);
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
    bool bad_bytes = check_head(c, data, &off, rl_len);
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
      c->frame_run = 0;
    }
  } else {
    /* At most one body span per call (on_body pauses); the rest is
     * framing. A body byte ends a run of framing. */
    int fr;
    if (c->body_len) {
      fr = check_frame_bytes(c, data, (size_t)(c->body_at - data));
      const char *bend = c->body_at + c->body_len;
      c->frame_run = 0;
      if (fr == FRAME_OK) fr = check_frame_bytes(c, bend, (size_t)(data + off - bend));
    } else {
      fr = check_frame_bytes(c, data, off);
    }
    if (fr != FRAME_OK) {
      /* Nothing parsed in this call may be acted on. No callback sets
       * head_error in the body phase: the answer is this check's. */
      if (fr == FRAME_LONG) c->head_error = 431;
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
