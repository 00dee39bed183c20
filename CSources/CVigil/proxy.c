/* proxy.c - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) that a load balancer sends before the first byte of
 * the client's stream, to say whose connection it is carrying.
 *
 * PROXY is not HTTP: it is a fixed preamble, read here by hand, byte-exact
 * and strict, before llhttp sees anything. The functions are pure: they
 * look at the bytes buffered so far (conn.c keeps them in conn->in until
 * the header is whole, so a header split anywhere, byte by byte included,
 * reads the same as one that came in one piece) and say "whole, this
 * long", "not yet" or "not a valid header". Each call rescans from the
 * start; a header is at most VIGIL__PROXY_MAX bytes, so that costs little
 * and keeps no state between reads that a hostile peer could grow.
 *
 * Version 1 (text), section 2.1:
 *   "PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF
 *   "PROXY" SP "UNKNOWN" [ SP anything ] CRLF
 * at most 107 bytes with the CRLF. Addresses must parse as their family
 * (inet_pton), ports are decimal 0-65535 without sign, leading zero or
 * other junk, one SP between fields.
 *
 * Version 2 (binary), section 2.2: a 12-byte signature, a version/command
 * byte (version 2; LOCAL or PROXY), a family/transport byte (UNSPEC, INET,
 * INET6, UNIX; UNSPEC, STREAM, DGRAM), a 16-bit length of what follows
 * (addresses, then TLVs). The length field can claim 65535 bytes; we take
 * at most VIGIL__PROXY_V2_MAX_LEN (2048: the addresses - 216 bytes for
 * UNIX - and the TLVs real senders add, SSL and AWS/Azure/GCP ones
 * included, fit well within it) and refuse a longer header as soon as its
 * fixed part is in. TLVs are skipped, but each must fit in the length.
 * A LOCAL header (a proxy's own connection: health checks) is discarded
 * whole after its length, as the spec asks.
 */
#include "vigil_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

static const char v1_prefix[] = "PROXY ";  /* 6 bytes */
static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* The first n bytes of data match the first n of pat (n <= pat_len). */
static bool prefix_ok(const char *data, size_t n, const void *pat, size_t pat_len) {
  return memcmp(data, pat, n < pat_len ? n : pat_len) == 0;
}

/* ------------------------------------------------------------------ */
/* version 1 */

/* A decimal port, 0-65535: digits only, no leading zero but "0". */
static bool v1_port(const char *s, size_t n, uint16_t *out) {
  if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return false;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v > 65535) return false;
  *out = (uint16_t)v;
  return true;
}

/* An address of `family` in s[0..n) (inet_pton needs it NUL-terminated). */
static bool v1_addr(int family, const char *s, size_t n, void *dst) {
  char buf[INET6_ADDRSTRLEN];
  if (n == 0 || n >= sizeof buf) return false;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return inet_pton(family, buf, dst) == 1;
}

/* The next field of line[*at .. end), up to the next SP (or the end when
 * `last`): exactly one SP separates fields, so an empty field, a double
 * SP or a trailing SP is refused. */
static bool v1_field(const char *line, size_t end, size_t *at, bool last,
                     const char **f, size_t *flen) {
  size_t i = *at;
  while (i < end && line[i] != ' ') i++;
  if (i == *at) return false;
  if (last ? i != end : i == end) return false;
  *f = line + *at;
  *flen = i - *at;
  *at = last ? i : i + 1;
  return true;
}

/* line[0..end): what follows "PROXY " up to the CR. */
static bool v1_line(const char *line, size_t end, vigil__proxy_hdr_t *h) {
  if (end >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (end == 7 || line[7] == ' ')) {
    /* Section 2.1: the receiver ignores the rest and uses the real
     * endpoints. */
    return true;
  }
  if (end < 5 || memcmp(line, "TCP", 3) != 0 || (line[3] != '4' && line[3] != '6') ||
      line[4] != ' ')
    return false;
  bool v6 = line[3] == '6';
  size_t at = 5;
  const char *f[4];
  size_t fl[4];
  for (int k = 0; k < 4; k++)
    if (!v1_field(line, end, &at, k == 3, &f[k], &fl[k])) return false;
  uint16_t sport, dport;
  if (!v1_port(f[2], fl[2], &sport) || !v1_port(f[3], fl[3], &dport)) return false;
  memset(&h->src, 0, sizeof h->src);
  memset(&h->dst, 0, sizeof h->dst);
  if (v6) {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
    struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst;
    if (!v1_addr(AF_INET6, f[0], fl[0], &s->sin6_addr) ||
        !v1_addr(AF_INET6, f[1], fl[1], &d->sin6_addr))
      return false;
    s->sin6_family = d->sin6_family = AF_INET6;
    s->sin6_port = htons(sport);
    d->sin6_port = htons(dport);
  } else {
    struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
    struct sockaddr_in *d = (struct sockaddr_in *)&h->dst;
    if (!v1_addr(AF_INET, f[0], fl[0], &s->sin_addr) ||
        !v1_addr(AF_INET, f[1], fl[1], &d->sin_addr))
      return false;
    s->sin_family = d->sin_family = AF_INET;
    s->sin_port = htons(sport);
    d->sin_port = htons(dport);
  }
  h->has_addrs = true;
  return true;
}

static int v1_parse(const char *p, size_t n, vigil__proxy_hdr_t *h) {
  if (!prefix_ok(p, n, v1_prefix, 6)) return VIGIL__PROXY_BAD;
  /* The CR, within 107 bytes; every byte before it printable ASCII, so
   * that garbage is refused at once, not after 107 bytes. */
  size_t lim = n < VIGIL__PROXY_V1_MAX ? n : VIGIL__PROXY_V1_MAX;
  for (size_t i = 6; i < lim; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (ch == '\r') {
      if (i + 2 > VIGIL__PROXY_V1_MAX) return VIGIL__PROXY_BAD;
      if (i + 1 >= n) return VIGIL__PROXY_MORE;
      if (p[i + 1] != '\n') return VIGIL__PROXY_BAD;
      h->version = 1;
      return v1_line(p + 6, i - 6, h) ? (int)(i + 2) : VIGIL__PROXY_BAD;
    }
    if (ch < 0x20 || ch > 0x7e) return VIGIL__PROXY_BAD;
  }
  return n >= VIGIL__PROXY_V1_MAX ? VIGIL__PROXY_BAD : VIGIL__PROXY_MORE;
}

/* ------------------------------------------------------------------ */
/* version 2 */

static uint16_t be16(const unsigned char *b) { return (uint16_t)(b[0] << 8 | b[1]); }

static int v2_parse(const char *p, size_t n, vigil__proxy_hdr_t *h) {
  const unsigned char *b = (const unsigned char *)p;
  if (!prefix_ok(p, n, v2_sig, sizeof v2_sig)) return VIGIL__PROXY_BAD;
  if (n < 13) return VIGIL__PROXY_MORE;
  unsigned version = b[12] >> 4, command = b[12] & 0xf;
  if (version != 2 || command > 1) return VIGIL__PROXY_BAD; /* 0 LOCAL, 1 PROXY */
  if (n < 14) return VIGIL__PROXY_MORE;
  unsigned family = b[13] >> 4, transport = b[13] & 0xf;
  /* LOCAL: "the receiver must ... discard the protocol block including
   * the family" (section 2.2), so nothing past the length is checked. */
  if (command == 1 && (family > 3 || transport > 2)) return VIGIL__PROXY_BAD;
  if (n < 16) return VIGIL__PROXY_MORE;
  size_t len = be16(b + 14);
  if (len > VIGIL__PROXY_V2_MAX_LEN) return VIGIL__PROXY_BAD;
  if (command == 0) {
    if (n < 16 + len) return VIGIL__PROXY_MORE;
    h->version = 2;
    return (int)(16 + len);
  }
  /* Addresses by family (section 2.2): UNSPEC none, INET 4+4+2+2, INET6
   * 16+16+2+2, UNIX 108+108. */
  static const size_t addr_len[4] = {0, 12, 36, 216};
  if (len < addr_len[family]) return VIGIL__PROXY_BAD;
  if (n < 16 + len) return VIGIL__PROXY_MORE;
  /* TLVs: type, 16-bit length, value; each must end within the header. */
  for (size_t at = 16 + addr_len[family]; at < 16 + len;) {
    if (16 + len - at < 3) return VIGIL__PROXY_BAD;
    size_t vl = be16(b + at + 1);
    if (vl > 16 + len - at - 3) return VIGIL__PROXY_BAD;
    at += 3 + vl;
  }
  h->version = 2;
  /* UNSPEC: the receiver uses the real endpoints and ignores any
   * address given. */
  if (family == 0) return (int)(16 + len);
  const unsigned char *a = b + 16;
  memset(&h->src, 0, sizeof h->src);
  memset(&h->dst, 0, sizeof h->dst);
  if (family == 1) {
    struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
    struct sockaddr_in *d = (struct sockaddr_in *)&h->dst;
    s->sin_family = d->sin_family = AF_INET;
    memcpy(&s->sin_addr, a, 4);
    memcpy(&d->sin_addr, a + 4, 4);
    memcpy(&s->sin_port, a + 8, 2); /* network order, as sockaddr keeps it */
    memcpy(&d->sin_port, a + 10, 2);
  } else if (family == 2) {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
    struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst;
    s->sin6_family = d->sin6_family = AF_INET6;
    memcpy(&s->sin6_addr, a, 16);
    memcpy(&d->sin6_addr, a + 16, 16);
    memcpy(&s->sin6_port, a + 32, 2);
    memcpy(&d->sin6_port, a + 34, 2);
  } else {
    struct sockaddr_un *s = (struct sockaddr_un *)&h->src;
    struct sockaddr_un *d = (struct sockaddr_un *)&h->dst;
    _Static_assert(sizeof s->sun_path == 108, "PROXY v2 UNIX addresses are 108 bytes");
    _Static_assert(sizeof(struct sockaddr_un) <= sizeof(struct sockaddr_storage),
                   "a sockaddr_un fits a sockaddr_storage");
    s->sun_family = d->sun_family = AF_UNIX;
    memcpy(s->sun_path, a, 108);
    memcpy(d->sun_path, a + 108, 108);
  }
  h->has_addrs = true;
  return (int)(16 + len);
}

/* ------------------------------------------------------------------ */

int vigil__proxy_parse(const char *p, size_t n, unsigned versions,
                       vigil__proxy_hdr_t *h) {
  memset(h, 0, offsetof(vigil__proxy_hdr_t, src));
  if (n == 0) return VIGIL__PROXY_MORE;
  /* The first byte tells the version: 'P' or CR. */
  if (p[0] == 'P' && (versions & VIGIL_PROXY_V1)) return v1_parse(p, n, h);
  if (p[0] == '\r' && (versions & VIGIL_PROXY_V2)) return v2_parse(p, n, h);
  return VIGIL__PROXY_BAD;
}
