/*
 * test_unit_proxy.c - proxy.c on its own: vigil__proxy_parse over byte
 * strings, no socket, no loop. Linked against
 * the core's objects (mk/c.mk), not the installed library.
 *
 * The contract conn.c relies on: a whole header gives its exact length
 * (bytes after it are not its own), every proper prefix of a valid header
 * gives "more", never "bad" (so a header split anywhere, byte by byte
 * included, reads the same), anything that cannot begin a valid header
 * gives "bad" as soon as the bytes show it, and nothing is read past n.
 * Every buffer handed to the parser is a heap copy of exactly n bytes, so
 * that ASan sees a read past the end.
 */
#include "vigil_internal.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include "tc.h"

/* Parse an exact-size heap copy of p[0..n). */
static int parse_n(const void *p, size_t n, unsigned versions, vigil__proxy_hdr_t *h) {
  char *copy = malloc(n ? n : 1);
  if (copy == NULL) abort();
  memcpy(copy, p, n);
  int r = vigil__proxy_parse(copy, n, versions, h);
  free(copy);
  return r;
}

/* The header h is n bytes long: every proper prefix is "more", the whole
 * gives n, and with bytes after it still n. */
static void expect_whole(const void *p, size_t n, unsigned versions, vigil__proxy_hdr_t *h) {
  for (size_t k = 0; k < n; k++) {
    int r = parse_n(p, k, versions, h);
    if (r != VIGIL__PROXY_MORE) {
      tc_fail_at(__FILE__, __LINE__, "prefix of %zu bytes of a %zu-byte header: %d", k, n, r);
      return;
    }
  }
  char *more = malloc(n + 18);
  memcpy(more, p, n);
  memcpy(more + n, "GET / HTTP/1.1\r\n\r\n", 18);
  CHECK_EQ_INT(parse_n(more, n + 18, versions, h), (int)n);
  free(more);
  CHECK_EQ_INT(parse_n(p, n, versions, h), (int)n);
}

static void expect_bad(const void *p, size_t n, unsigned versions, int line) {
  vigil__proxy_hdr_t h;
  int r = parse_n(p, n, versions, &h);
  if (r != VIGIL__PROXY_BAD) tc_fail_at(__FILE__, line, "expected BAD, got %d", r);
}
#define BAD_S(s) expect_bad(s, strlen(s), VIGIL_PROXY_ANY, __LINE__)

static const char *ntop(const struct sockaddr_storage *a, char *buf, size_t len) {
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)a;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    snprintf(buf, len, "%s:%u", ip, ntohs(s->sin_port));
  } else if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
    char ip[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    snprintf(buf, len, "[%s]:%u", ip, ntohs(s->sin6_port));
  } else if (a->ss_family == AF_UNIX) {
    snprintf(buf, len, "unix:%.108s", ((const struct sockaddr_un *)a)->sun_path);
  } else {
    snprintf(buf, len, "family %d", a->ss_family);
  }
  return buf;
}

#define CHECK_ADDR(a, want) do { char _b[160]; ntop(&(a), _b, sizeof _b); \
  CHECK(strcmp(_b, want) == 0, "address %s, expected %s", _b, want); } while (0)

static const unsigned char SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: signature, ver_cmd, fam, length, then `body`. */
static size_t v2(unsigned char *out, unsigned ver_cmd, unsigned fam, const void *body,
                 size_t blen) {
  memcpy(out, SIG, 12);
  out[12] = (unsigned char)ver_cmd;
  out[13] = (unsigned char)fam;
  out[14] = (unsigned char)(blen >> 8);
  out[15] = (unsigned char)blen;
  memcpy(out + 16, body, blen);
  return 16 + blen;
}

/* ------------------------------------------------------------------ */

static void t_v1_tcp4(void) {
  const char *s = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n";
  vigil__proxy_hdr_t h;
  expect_whole(s, strlen(s), VIGIL_PROXY_V1, &h);
  CHECK_EQ_INT(h.version, 1);
  CHECK(h.has_addrs, "no addresses");
  CHECK_ADDR(h.src, "203.0.113.7:51234");
  CHECK_ADDR(h.dst, "192.0.2.1:443");
  expect_whole(s, strlen(s), VIGIL_PROXY_ANY, &h);
  CHECK_ADDR(h.src, "203.0.113.7:51234");
  const char *edge = "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n";
  expect_whole(edge, strlen(edge), VIGIL_PROXY_V1, &h);
  CHECK_ADDR(h.src, "0.0.0.0:0");
  CHECK_ADDR(h.dst, "255.255.255.255:65535");
}

static void t_v1_tcp6(void) {
  const char *s = "PROXY TCP6 2001:db8::7 ::1 40000 8080\r\n";
  vigil__proxy_hdr_t h;
  expect_whole(s, strlen(s), VIGIL_PROXY_V1, &h);
  CHECK(h.has_addrs, "no addresses");
  CHECK_ADDR(h.src, "[2001:db8::7]:40000");
  CHECK_ADDR(h.dst, "[::1]:8080");
  const char *m = "PROXY TCP6 ::ffff:10.1.2.3 ::ffff:10.0.0.1 1 2\r\n";
  expect_whole(m, strlen(m), VIGIL_PROXY_V1, &h);
  CHECK_ADDR(h.src, "[::ffff:10.1.2.3]:1");
  /* The longest header: two full IPv6 addresses, five-digit ports. */
  const char *max = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  CHECK_EQ_INT(strlen(max), 104);
  expect_whole(max, strlen(max), VIGIL_PROXY_V1, &h);
}

static void t_v1_unknown(void) {
  vigil__proxy_hdr_t h;
  const char *a = "PROXY UNKNOWN\r\n";
  expect_whole(a, strlen(a), VIGIL_PROXY_V1, &h);
  CHECK(!h.has_addrs, "UNKNOWN carries no address");
  CHECK_EQ_INT(h.version, 1);
  const char *b = "PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n";
  expect_whole(b, strlen(b), VIGIL_PROXY_V1, &h);
  CHECK(!h.has_addrs, "UNKNOWN's addresses are ignored");
  /* 107 bytes with the CRLF is the most; 108 is refused. */
  char line[200] = "PROXY UNKNOWN ";
  while (strlen(line) < 105) strcat(line, "x");
  strcat(line, "\r\n");
  CHECK_EQ_INT(strlen(line), 107);
  expect_whole(line, 107, VIGIL_PROXY_V1, &h);
  line[105] = 'x';
  line[106] = '\r';
  line[107] = '\n';
  line[108] = 0;
  expect_bad(line, 108, VIGIL_PROXY_V1, __LINE__);
  /* Refused as soon as 107 bytes came without a CRLF, not later. */
  memset(line + 14, 'x', 120);
  expect_bad(line, 107, VIGIL_PROXY_V1, __LINE__);
  CHECK_EQ_INT(parse_n(line, 106, VIGIL_PROXY_V1, &h), VIGIL__PROXY_MORE);
}

static void t_v1_bad(void) {
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 80 8080\n");       /* bare LF */
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 80 8080\r\r");
  BAD_S("PROXY TCP4 1.2.3.4  5.6.7.8 80 8080\r\n");    /* two SP */
  BAD_S("PROXY  TCP4 1.2.3.4 5.6.7.8 80 8080\r\n");
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 80 8080 \r\n");    /* trailing SP */
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n");          /* a field missing */
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 80 8080 9\r\n");   /* one too many */
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 080 8080\r\n");    /* leading zero */
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 +80 8080\r\n");
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 -1 8080\r\n");
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 65536 8080\r\n");
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 99999 8080\r\n");
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 100000 8080\r\n");
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 8o 8080\r\n");
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 80 0x50\r\n");
  BAD_S("PROXY TCP4 256.2.3.4 5.6.7.8 80 8080\r\n");
  BAD_S("PROXY TCP4 1.2.3 5.6.7.8 80 8080\r\n");
  BAD_S("PROXY TCP4 01.2.3.4 5.6.7.8 80 8080\r\n");
  BAD_S("PROXY TCP4 ::1 5.6.7.8 80 8080\r\n");         /* family mismatch */
  BAD_S("PROXY TCP6 1.2.3.4 ::1 80 8080\r\n");
  BAD_S("PROXY TCP6 ::1 ::g 80 8080\r\n");
  BAD_S("PROXY TCP6 fe80::1%lo ::1 80 8080\r\n");      /* no zone ids */
  BAD_S("PROXY tcp4 1.2.3.4 5.6.7.8 80 8080\r\n");
  BAD_S("PROXY TCP5 1.2.3.4 5.6.7.8 80 8080\r\n");
  BAD_S("PROXY UDP4 1.2.3.4 5.6.7.8 80 8080\r\n");
  BAD_S("PROXY UNKNOWNX\r\n");
  BAD_S("PROXY \r\n");
  BAD_S("PROXY TCP4\r\n");
  BAD_S("PROXY TCP4 \r\n");
  BAD_S("PROXY TCP4 1.2.3.4 5.6.7.8 80 80\x01\r\n");
  BAD_S("PROXY TCP4 1.2.3.4\t5.6.7.8 80 8080\r\n");
  BAD_S("PROXY UNKNOWN \x80\r\n");
  BAD_S("PROXYTCP4 1.2.3.4 5.6.7.8 80 8080\r\n");
  BAD_S("proxy TCP4 1.2.3.4 5.6.7.8 80 8080\r\n");
  BAD_S("GET / HTTP/1.1\r\nHost: x\r\n\r\n");           /* no header at all */
  BAD_S("POST / HTTP/1.1\r\n");                         /* 'P', then not PROXY */
  BAD_S("PRO\r\n");
  BAD_S("\x16\x03\x01\x02\x00");                        /* a TLS hello */
  /* A v1 header to a server that takes v2 only, and the reverse. */
  const char *v1 = "PROXY TCP4 1.2.3.4 5.6.7.8 80 8080\r\n";
  expect_bad(v1, strlen(v1), VIGIL_PROXY_V2, __LINE__);
  expect_bad(v1, 1, VIGIL_PROXY_V2, __LINE__);
  unsigned char b[64];
  size_t n = v2(b, 0x20, 0x00, "", 0);
  expect_bad(b, n, VIGIL_PROXY_V1, __LINE__);
  expect_bad(b, 1, VIGIL_PROXY_V1, __LINE__);
  /* Garbage is refused at its first wrong byte. */
  vigil__proxy_hdr_t h;
  CHECK_EQ_INT(parse_n("PROXZ", 5, VIGIL_PROXY_ANY, &h), VIGIL__PROXY_BAD);
  CHECK_EQ_INT(parse_n("PROX", 4, VIGIL_PROXY_ANY, &h), VIGIL__PROXY_MORE);
  CHECK_EQ_INT(parse_n("", 0, VIGIL_PROXY_ANY, &h), VIGIL__PROXY_MORE);
}

static void t_v2_inet(void) {
  unsigned char body[12 + 7] = {203, 0, 113, 7, 192, 0, 2, 1, 0xC8, 0x22, 0x01, 0xBB,
                                /* a TLV: PP2_TYPE_AUTHORITY "a.b" */ 0x02, 0x00, 0x03, 'a', '.', 'b',
                                /* PP2_TYPE_NOOP, empty */ 0x04};
  unsigned char b[128];
  vigil__proxy_hdr_t h;
  size_t n = v2(b, 0x21, 0x11, body, 12);
  expect_whole(b, n, VIGIL_PROXY_V2, &h);
  CHECK_EQ_INT(h.version, 2);
  CHECK(h.has_addrs, "no addresses");
  CHECK_ADDR(h.src, "203.0.113.7:51234");
  CHECK_ADDR(h.dst, "192.0.2.1:443");
  /* With TLVs, and with a truncated one (the NOOP's length is missing). */
  n = v2(b, 0x21, 0x11, body, 18);
  expect_whole(b, n, VIGIL_PROXY_ANY, &h);
  CHECK_ADDR(h.src, "203.0.113.7:51234");
  n = v2(b, 0x21, 0x11, body, 19);
  expect_bad(b, n, VIGIL_PROXY_V2, __LINE__);
  /* Too short for the family's addresses. */
  n = v2(b, 0x21, 0x11, body, 11);
  expect_bad(b, n, VIGIL_PROXY_V2, __LINE__);
  /* DGRAM and UNSPEC transports are taken; 3 is not a transport. */
  n = v2(b, 0x21, 0x12, body, 12);
  CHECK_EQ_INT(parse_n(b, n, VIGIL_PROXY_V2, &h), (int)n);
  n = v2(b, 0x21, 0x10, body, 12);
  CHECK_EQ_INT(parse_n(b, n, VIGIL_PROXY_V2, &h), (int)n);
  n = v2(b, 0x21, 0x13, body, 12);
  expect_bad(b, 14, VIGIL_PROXY_V2, __LINE__); /* known at byte 14 */
}

static void t_v2_inet6_unix(void) {
  unsigned char body[216];
  unsigned char b[300];
  vigil__proxy_hdr_t h;
  memset(body, 0, sizeof body);
  inet_pton(AF_INET6, "2001:db8::7", body);
  inet_pton(AF_INET6, "::1", body + 16);
  body[32] = 0x9c; body[33] = 0x40; /* 40000 */
  body[34] = 0x1f; body[35] = 0x90; /* 8080 */
  size_t n = v2(b, 0x21, 0x21, body, 36);
  expect_whole(b, n, VIGIL_PROXY_V2, &h);
  CHECK_ADDR(h.src, "[2001:db8::7]:40000");
  CHECK_ADDR(h.dst, "[::1]:8080");
  n = v2(b, 0x21, 0x21, body, 35);
  expect_bad(b, n, VIGIL_PROXY_V2, __LINE__);

  memset(body, 0, sizeof body);
  strcpy((char *)body, "/run/client.sock");
  memset(body + 108, 'p', 108); /* a full 108-byte path, no NUL */
  n = v2(b, 0x21, 0x31, body, 216);
  expect_whole(b, n, VIGIL_PROXY_V2, &h);
  CHECK(h.has_addrs, "no addresses");
  CHECK_ADDR(h.src, "unix:/run/client.sock");
  CHECK_EQ_INT(h.dst.ss_family, AF_UNIX);
  CHECK(memcmp(((struct sockaddr_un *)&h.dst)->sun_path, body + 108, 108) == 0,
        "destination path");
  n = v2(b, 0x21, 0x31, body, 215);
  expect_bad(b, n, VIGIL_PROXY_V2, __LINE__);
}

static void t_v2_local_unspec(void) {
  unsigned char b[64];
  unsigned char addrs[12] = {10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0, 81};
  vigil__proxy_hdr_t h;
  /* LOCAL, as HAProxy's health checks send it: no addresses. */
  size_t n = v2(b, 0x20, 0x00, "", 0);
  expect_whole(b, n, VIGIL_PROXY_V2, &h);
  CHECK_EQ_INT(h.version, 2);
  CHECK(!h.has_addrs, "LOCAL carries no client address");
  /* LOCAL with addresses: ignored (spec 2.2). */
  n = v2(b, 0x20, 0x11, addrs, 12);
  expect_whole(b, n, VIGIL_PROXY_V2, &h);
  CHECK(!h.has_addrs, "LOCAL's addresses are ignored");
  /* LOCAL: the block is discarded, family included (spec 2.2): a family
   * whose addresses do not fit, an unknown family or transport, TLVs that
   * do not parse are all taken. Refused before the fix. */
  n = v2(b, 0x20, 0x11, "", 0);
  expect_whole(b, n, VIGIL_PROXY_V2, &h);
  CHECK(!h.has_addrs, "LOCAL, INET, no addresses");
  n = v2(b, 0x20, 0xff, "\x01\x02\x03", 3);
  expect_whole(b, n, VIGIL_PROXY_V2, &h);
  CHECK(!h.has_addrs, "LOCAL, unknown family and transport");
  n = v2(b, 0x20, 0x11, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x04\x00\x09", 15);
  expect_whole(b, n, VIGIL_PROXY_V2, &h);
  CHECK(!h.has_addrs, "LOCAL, a TLV longer than the block");
  /* PROXY with UNSPEC: the real endpoints. */
  n = v2(b, 0x21, 0x00, "", 0);
  expect_whole(b, n, VIGIL_PROXY_V2, &h);
  CHECK(!h.has_addrs, "UNSPEC carries no address");
}

static void t_v2_bad(void) {
  unsigned char b[64];
  unsigned char addrs[12] = {10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0, 81};
  vigil__proxy_hdr_t h;
  size_t n = v2(b, 0x21, 0x11, addrs, 12);
  /* Each signature byte, flipped, is refused as soon as it is in. */
  for (size_t i = 1; i < 12; i++) {
    unsigned char c[64];
    memcpy(c, b, n);
    c[i] ^= 0x20;
    int r = parse_n(c, i + 1, VIGIL_PROXY_V2, &h);
    CHECK(r == VIGIL__PROXY_BAD, "signature byte %zu wrong: %d", i, r);
  }
  n = v2(b, 0x11, 0x11, addrs, 12); /* version 1 */
  expect_bad(b, 13, VIGIL_PROXY_V2, __LINE__);
  n = v2(b, 0x31, 0x11, addrs, 12); /* version 3 */
  expect_bad(b, n, VIGIL_PROXY_V2, __LINE__);
  n = v2(b, 0x22, 0x11, addrs, 12); /* command 2 */
  expect_bad(b, 13, VIGIL_PROXY_V2, __LINE__);
  n = v2(b, 0x2F, 0x11, addrs, 12);
  expect_bad(b, n, VIGIL_PROXY_V2, __LINE__);
  n = v2(b, 0x21, 0x41, addrs, 12); /* family 4 */
  expect_bad(b, 14, VIGIL_PROXY_V2, __LINE__);
  /* A length over the limit is refused at byte 16, without waiting for
   * the bytes it claims. */
  n = v2(b, 0x21, 0x11, addrs, 12);
  b[14] = 0xff;
  b[15] = 0xff;
  expect_bad(b, 16, VIGIL_PROXY_V2, __LINE__);
  b[14] = (VIGIL__PROXY_V2_MAX_LEN + 1) >> 8;
  b[15] = (VIGIL__PROXY_V2_MAX_LEN + 1) & 0xff;
  expect_bad(b, 16, VIGIL_PROXY_V2, __LINE__);
  /* The limit itself is taken: addresses and a TLV filling it. */
  unsigned char *big = calloc(1, 16 + VIGIL__PROXY_V2_MAX_LEN);
  unsigned char body[VIGIL__PROXY_V2_MAX_LEN];
  memset(body, 0, sizeof body);
  memcpy(body, addrs, 12);
  body[12] = 0xEE; /* a custom TLV */
  body[13] = (unsigned char)((VIGIL__PROXY_V2_MAX_LEN - 15) >> 8);
  body[14] = (unsigned char)((VIGIL__PROXY_V2_MAX_LEN - 15) & 0xff);
  n = v2(big, 0x21, 0x11, body, VIGIL__PROXY_V2_MAX_LEN);
  CHECK_EQ_INT(parse_n(big, n, VIGIL_PROXY_V2, &h), VIGIL__PROXY_MAX);
  CHECK_EQ_INT(parse_n(big, n - 1, VIGIL_PROXY_V2, &h), VIGIL__PROXY_MORE);
  /* The TLV one byte too long. */
  big[16 + 14] += 1;
  CHECK_EQ_INT(parse_n(big, n, VIGIL_PROXY_V2, &h), VIGIL__PROXY_BAD);
  free(big);
}

int main(void) {
  tc_init();
  RUN(t_v1_tcp4, "v1 TCP4: exact length, addresses, every prefix is 'more'");
  RUN(t_v1_tcp6, "v1 TCP6: addresses, the longest header");
  RUN(t_v1_unknown, "v1 UNKNOWN: no addresses; 107 bytes the most");
  RUN(t_v1_bad, "v1: strict syntax, addresses of their family, ports 0-65535, versions taken");
  RUN(t_v2_inet, "v2 PROXY INET: addresses, TLVs skipped and bounded");
  RUN(t_v2_inet6_unix, "v2 PROXY INET6 and UNIX");
  RUN(t_v2_local_unspec, "v2 LOCAL and UNSPEC: the real endpoints");
  RUN(t_v2_bad, "v2: signature, version, command, family, length limit");
  return tc_summary();
}
