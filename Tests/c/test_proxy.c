/*
 * test_proxy.c - the PROXY protocol (proxy_protocol in vigil_config_t)
 * over real loopback connections, as a load balancer and its clients
 * send it: v1 and v2 headers, whole, split byte by byte and followed by
 * pipelined requests in the same write; the addresses the handler reads
 * (vigil_request_remote_addr, _peer_addr, _proxy_dest_addr); connections
 * refused without an answer when the header is required and missing or
 * malformed; 400 + Connection: close for a header the server was not told
 * to take; the header timeout on a slow header.
 */
#include <vigil.h>

#include <arpa/inet.h>

#include "tc.h"

/* The handler answers with the three addresses it reads:
 * "remote A\npeer B\ndest C\n", "-" for an address it cannot have. */
static atomic_int handled;
/* Requests whose remote address had a byte set past the address itself
 * (a pooled request keeping an earlier request's longer address). */
static atomic_int stale_tail;
/* Requests whose vigil_request_local_addr was not the listener's address. */
static atomic_int local_wrong;

static void fmt_addr(int r, const struct sockaddr_storage *a, char *buf, size_t len) {
  char ip[INET6_ADDRSTRLEN];
  if (r != 0) {
    snprintf(buf, len, "-");
  } else if (a->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)a;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    snprintf(buf, len, "%s:%u", ip, ntohs(s->sin_port));
  } else if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    snprintf(buf, len, "[%s]:%u", ip, ntohs(s->sin6_port));
  } else {
    snprintf(buf, len, "family-%d", a->ss_family);
  }
}

static vigil_server_t *srv;

static void on_request(vigil_request_t *req, void *ud) {
  (void)ud;
  atomic_fetch_add(&handled, 1);
  struct sockaddr_storage a;
  char r[80], p[80], d[80], body[300];
  memset(&a, 0xAA, sizeof a);
  int rr = vigil_request_remote_addr(req, &a);
  if (rr == 0 && (a.ss_family == AF_INET || a.ss_family == AF_INET6)) {
    for (size_t i = sizeof(struct sockaddr_in6); i < sizeof a; i++)
      if (((const unsigned char *)&a)[i] != 0) {
        atomic_fetch_add(&stale_tail, 1);
        break;
      }
  }
  fmt_addr(rr, &a, r, sizeof r);
  int pr = vigil_request_peer_addr(req, &a);
  fmt_addr(pr, &a, p, sizeof p);
  int dr = vigil_request_proxy_dest_addr(req, &a);
  fmt_addr(dr, &a, d, sizeof d);
  /* Behind a header too, the local address is the socket's own: the
   * server's port on 127.0.0.1 (the header's destination is dest). */
  int lr = vigil_request_local_addr(req, &a);
  if (lr != 0 || a.ss_family != AF_INET ||
      ((struct sockaddr_in *)&a)->sin_addr.s_addr != htonl(INADDR_LOOPBACK) ||
      ntohs(((struct sockaddr_in *)&a)->sin_port) != vigil_server_port(srv))
    atomic_fetch_add(&local_wrong, 1);
  int n = snprintf(body, sizeof body, "remote %s\npeer %s\ndest %s\n", r, p, d);
  vigil_response_send(req, 200, NULL, 0, body, (size_t)n);
  vigil_request_finish(req);
}

static int port;

static int start(vigil_proxy_protocol_t mode, uint64_t header_ms, uint64_t idle_ms) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.proxy_protocol = mode;
  if (header_ms) cfg.header_timeout_ms = header_ms;
  if (idle_ms) cfg.idle_timeout_ms = idle_ms;
  atomic_store(&handled, 0);
  port = tc_server_start(&srv, &cfg);
  return port;
}

static void stop(void) {
  CHECK(tc_stats_settled(srv, 3000), "connections and requests did not settle");
  CHECK_EQ_INT(atomic_load(&local_wrong), 0);
  vigil_server_shutdown(srv, 1000);
  vigil_server_wait(srv);
  vigil_server_free(srv);
  srv = NULL;
}

static uint64_t bad_requests(void) {
  vigil_stats_t st;
  vigil_server_stats(srv, &st);
  return st.bad_requests;
}

/* The client's own port, as the server sees it (the real peer). */
static int local_port(tc_client_t *c) {
  struct sockaddr_in a;
  socklen_t l = sizeof a;
  getsockname(c->fd, (struct sockaddr *)&a, &l);
  return ntohs(a.sin_port);
}

static const char GET[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/* Send `pre` (len bytes) then a GET, in one write; expect a 200 whose
 * body is `want` ("%d" in it: the client's own port). */
static void expect_answer(const void *pre, size_t len, const char *want_fmt) {
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  char want[400];
  snprintf(want, sizeof want, want_fmt, local_port(&c), local_port(&c));
  char buf[4096];
  memcpy(buf, pre, len);
  memcpy(buf + len, GET, sizeof GET - 1);
  REQUIRE(tc_send(&c, buf, len + sizeof GET - 1) == 0, "send");
  tc_resp_t r;
  if (tc_read_response(&c, &r, 5000) != 0) {
    tc_fail_at(__FILE__, __LINE__, "no response");
  } else {
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body.p && strcmp(r.body.p, want) == 0, "body '%s', expected '%s'",
          r.body.p ? r.body.p : "", want);
  }
  tc_resp_free(&r);
  tc_close(&c);
}

/* Send `data` (maybe split: one byte per send, 1 ms apart); expect the
 * connection closed with no byte answered, and no handler called. */
static void expect_refused(const void *data, size_t len, int bytewise, int line) {
  tc_client_t c;
  if (tc_connect(&c, port) != 0) {
    tc_fail_at(__FILE__, line, "connect");
    return;
  }
  int before = atomic_load(&handled);
  uint64_t bad0 = bad_requests();
  const char *p = data;
  for (size_t i = 0; i < len;) {
    size_t k = bytewise ? 1 : len - i;
    if (tc_send(&c, p + i, k) != 0) break; /* closed under us: fine */
    i += k;
    if (bytewise) tc_sleep_ms(1);
  }
  int closed = tc_wait_closed(&c, 3000);
  if (!closed) tc_fail_at(__FILE__, line, "connection not closed");
  if (c.in.len != 0) tc_fail_at(__FILE__, line, "answered: %s", c.in.p);
  if (atomic_load(&handled) != before) tc_fail_at(__FILE__, line, "a handler ran");
  if (!TC_WAIT_UNTIL(bad_requests() == bad0 + 1, 1000))
    tc_fail_at(__FILE__, line, "bad_requests did not count it");
  tc_close(&c);
}
#define REFUSED(d, n) expect_refused(d, n, 0, __LINE__)
#define REFUSED_S(s) expect_refused(s, strlen(s), 0, __LINE__)

static const unsigned char SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

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

static const unsigned char V4[12] = {203, 0, 113, 7, 192, 0, 2, 1, 0xC8, 0x22, 0x01, 0xBB};

/* ------------------------------------------------------------------ */

static void t_v1(void) {
  REQUIRE(start(VIGIL_PROXY_V1, 0, 0) > 0, "server");
  const char *h4 = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n";
  expect_answer(h4, strlen(h4),
                "remote 203.0.113.7:51234\npeer 127.0.0.1:%d\ndest 192.0.2.1:443\n");
  const char *h6 = "PROXY TCP6 2001:db8::7 2001:db8::1 40000 8443\r\n";
  expect_answer(h6, strlen(h6),
                "remote [2001:db8::7]:40000\npeer 127.0.0.1:%d\ndest [2001:db8::1]:8443\n");
  /* UNKNOWN: the real peer, no destination. */
  const char *hu = "PROXY UNKNOWN\r\n";
  expect_answer(hu, strlen(hu), "remote 127.0.0.1:%d\npeer 127.0.0.1:%d\ndest -\n");
  const char *hu2 = "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n";
  expect_answer(hu2, strlen(hu2), "remote 127.0.0.1:%d\npeer 127.0.0.1:%d\ndest -\n");
  stop();
}

static void t_v2(void) {
  REQUIRE(start(VIGIL_PROXY_V2, 0, 0) > 0, "server");
  unsigned char b[256];
  size_t n = v2(b, 0x21, 0x11, V4, 12);
  expect_answer(b, n, "remote 203.0.113.7:51234\npeer 127.0.0.1:%d\ndest 192.0.2.1:443\n");
  unsigned char a6[36] = {0};
  inet_pton(AF_INET6, "2001:db8::7", a6);
  inet_pton(AF_INET6, "::1", a6 + 16);
  a6[32] = 0x9c; a6[33] = 0x40; a6[34] = 0x1f; a6[35] = 0x90;
  n = v2(b, 0x21, 0x21, a6, 36);
  expect_answer(b, n, "remote [2001:db8::7]:40000\npeer 127.0.0.1:%d\ndest [::1]:8080\n");
  /* LOCAL (health checks): the real peer. */
  n = v2(b, 0x20, 0x00, "", 0);
  expect_answer(b, n, "remote 127.0.0.1:%d\npeer 127.0.0.1:%d\ndest -\n");
  /* With TLVs (an authority, a NOOP pad). */
  unsigned char t[12 + 10];
  memcpy(t, V4, 12);
  memcpy(t + 12, "\x02\x00\x03" "a.b" "\x04\x00\x01" "\x00", 10);
  n = v2(b, 0x21, 0x11, t, sizeof t);
  expect_answer(b, n, "remote 203.0.113.7:51234\npeer 127.0.0.1:%d\ndest 192.0.2.1:443\n");
  stop();
}

/* Requests come from a per-loop pool: a request that follows one with a
 * long (UNIX, 108-byte path) header address, on a connection whose
 * header has none (v2 LOCAL, v1 UNKNOWN), reads its own address and
 * zeros after it, not the tail of the earlier path. Before the fix only
 * the connection's 28-byte peer was copied over the pooled 128-byte
 * storage: both such requests read stale bytes. */
static void t_pool_reuse(void) {
  REQUIRE(start(VIGIL_PROXY_ANY, 0, 0) > 0, "server");
  atomic_store(&stale_tail, 0);
  unsigned char b[256], u[216];
  memset(u, 'p', sizeof u);
  size_t n = v2(b, 0x21, 0x31, u, sizeof u);
  expect_answer(b, n, "remote family-1\npeer 127.0.0.1:%d\ndest family-1\n");
  n = v2(b, 0x20, 0x00, "", 0);
  expect_answer(b, n, "remote 127.0.0.1:%d\npeer 127.0.0.1:%d\ndest -\n");
  n = v2(b, 0x21, 0x31, u, sizeof u);
  expect_answer(b, n, "remote family-1\npeer 127.0.0.1:%d\ndest family-1\n");
  const char *hu = "PROXY UNKNOWN\r\n";
  expect_answer(hu, strlen(hu), "remote 127.0.0.1:%d\npeer 127.0.0.1:%d\ndest -\n");
  CHECK_EQ_INT(atomic_load(&stale_tail), 0);
  stop();
}

/* The header and the request one byte per write, 1 ms apart: the same
 * answer as whole. */
static void t_split(void) {
  REQUIRE(start(VIGIL_PROXY_ANY, 0, 0) > 0, "server");
  unsigned char b[256];
  const char *h1 = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n";
  size_t n2 = v2(b + 100, 0x21, 0x11, V4, 12);
  struct { const void *p; size_t n; } hs[2] = {{h1, strlen(h1)}, {b + 100, n2}};
  for (int k = 0; k < 2; k++) {
    tc_client_t c;
    REQUIRE(tc_connect(&c, port) == 0, "connect");
    char all[512];
    memcpy(all, hs[k].p, hs[k].n);
    memcpy(all + hs[k].n, GET, sizeof GET - 1);
    size_t len = hs[k].n + sizeof GET - 1;
    for (size_t i = 0; i < len; i++) {
      REQUIRE(tc_send(&c, all + i, 1) == 0, "send byte %zu", i);
      tc_sleep_ms(1);
    }
    tc_resp_t r;
    REQUIRE(tc_read_response(&c, &r, 5000) == 0, "no response (v%d)", k + 1);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body.p && strncmp(r.body.p, "remote 203.0.113.7:51234\n", 25) == 0,
          "v%d body '%s'", k + 1, r.body.p ? r.body.p : "");
    tc_resp_free(&r);
    tc_close(&c);
  }
  stop();
}

/* Header and three pipelined requests in one write: three answers, each
 * with the header's client; then a keep-alive request later on the same
 * connection keeps it (the header is the connection's, sent once), and a
 * second header on it is not a header but a bad request line. */
static void t_pipelined(void) {
  REQUIRE(start(VIGIL_PROXY_ANY, 0, 0) > 0, "server");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  char all[1024];
  int n = snprintf(all, sizeof all, "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n%s%s%s",
                   GET, GET, GET);
  REQUIRE(tc_send(&c, all, (size_t)n) == 0, "send");
  for (int i = 0; i < 3; i++) {
    tc_resp_t r;
    REQUIRE(tc_read_response(&c, &r, 5000) == 0, "response %d", i);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body.p && strncmp(r.body.p, "remote 203.0.113.7:51234\n", 25) == 0,
          "response %d body '%s'", i, r.body.p ? r.body.p : "");
    tc_resp_free(&r);
  }
  tc_sleep_ms(50);
  REQUIRE(tc_send_str(&c, GET) == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "keep-alive response");
  CHECK(r.body.p && strncmp(r.body.p, "remote 203.0.113.7:51234\n", 25) == 0,
        "keep-alive body '%s'", r.body.p ? r.body.p : "");
  tc_resp_free(&r);
  REQUIRE(tc_send_str(&c, "PROXY TCP4 198.51.100.1 192.0.2.1 1 2\r\n") == 0, "send");
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "answer to a second header");
  CHECK_EQ_INT(r.status, 400);
  CHECK(tc_resp_has(&r, "Connection", "close"), "no Connection: close");
  tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 3000), "not closed after the 400");
  CHECK_EQ_INT(atomic_load(&handled), 4);
  tc_close(&c);
  stop();
}

static void t_refused(void) {
  REQUIRE(start(VIGIL_PROXY_ANY, 0, 0) > 0, "server");
  /* Missing: a plain request, a TLS hello. */
  REFUSED_S(GET);
  REFUSED_S("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
  /* Garbage and malformed v1 headers. */
  REFUSED_S("PROXY TCP4 1.2.3.4 5.6.7.8 80 8080\n\r\nGET / HTTP/1.1\r\n\r\n");
  REFUSED_S("PROXY TCP4 1.2.3.4 5.6.7.8 080 8080\r\nGET / HTTP/1.1\r\n\r\n");
  REFUSED_S("PROXY TCP4 1.2.3.4 5.6.7.8 70000 8080\r\n");
  REFUSED_S("PROXY TCP4 1.2.3.999 5.6.7.8 80 8080\r\n");
  REFUSED_S("PROXY TCP6 1.2.3.4 ::1 80 8080\r\n");
  REFUSED_S("PROXY TCP4 1.2.3.4  5.6.7.8 80 8080\r\n");
  REFUSED("PROXY\x00TCP4 1", 12);
  char longline[300] = "PROXY UNKNOWN ";
  while (strlen(longline) < 200) strcat(longline, "x");
  strcat(longline, "\r\n");
  REFUSED_S(longline);
  /* Malformed v2: bad signature, version, command, a length past the
   * limit, a TLV past the end. */
  unsigned char b[256];
  size_t n = v2(b, 0x21, 0x11, V4, 12);
  b[7] = 'q';
  REFUSED(b, n);
  n = v2(b, 0x11, 0x11, V4, 12);
  REFUSED(b, n);
  n = v2(b, 0x23, 0x11, V4, 12);
  REFUSED(b, n);
  n = v2(b, 0x21, 0x11, V4, 12);
  b[14] = 0xff;
  b[15] = 0xff;
  REFUSED(b, 16); /* refused without waiting for 65535 bytes */
  unsigned char t[12 + 5];
  memcpy(t, V4, 12);
  memcpy(t + 12, "\x02\x00\x09" "ab", 5);
  n = v2(b, 0x21, 0x11, t, sizeof t);
  REFUSED(b, n);
  /* Split byte by byte, refused just the same. */
  expect_refused("PROXY TCP4 1.2.3.4 5.6.7.8 80 808x\r\n", 36, 1, __LINE__);
  expect_refused(GET, sizeof GET - 1, 1, __LINE__);
  /* A half header, then the client's FIN. */
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  tc_send_str(&c, "PROXY TCP4 1.2.3.4 ");
  shutdown(c.fd, SHUT_WR);
  CHECK(tc_wait_closed(&c, 3000), "half a header and a FIN: not closed");
  CHECK_EQ_INT(c.in.len, 0);
  tc_close(&c);
  CHECK_EQ_INT(atomic_load(&handled), 0);
  stop();
}

/* A server taking one version refuses the other. */
static void t_versions(void) {
  unsigned char b[64];
  size_t n = v2(b, 0x21, 0x11, V4, 12);
  const char *h1 = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n";
  REQUIRE(start(VIGIL_PROXY_V1, 0, 0) > 0, "server");
  REFUSED(b, n);
  stop();
  REQUIRE(start(VIGIL_PROXY_V2, 0, 0) > 0, "server");
  REFUSED_S(h1);
  stop();
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.proxy_protocol = (vigil_proxy_protocol_t)4;
  vigil_server_t *s = NULL;
  CHECK_EQ_INT(vigil_server_new(&s, &cfg), VIGIL_EINVAL);
}

/* Off (the default): a connection that begins with a PROXY header gets
 * 400 and Connection: close, whole or split; a request whose method is
 * the token PROXY is a request like any other. */
static void expect_400(const void *d, size_t len, int bytewise, int line) {
  tc_client_t c;
  if (tc_connect(&c, port) != 0) {
    tc_fail_at(__FILE__, line, "connect");
    return;
  }
  const char *p = d;
  for (size_t i = 0; i < len;) {
    size_t k = bytewise ? 1 : len - i;
    if (tc_send(&c, p + i, k) != 0) break;
    i += k;
    if (bytewise) tc_sleep_ms(1);
  }
  tc_resp_t r;
  if (tc_read_response(&c, &r, 5000) != 0) {
    tc_fail_at(__FILE__, line, "no answer");
  } else {
    if (r.status != 400) tc_fail_at(__FILE__, line, "status %d", r.status);
    if (!tc_resp_has(&r, "Connection", "close")) tc_fail_at(__FILE__, line, "no Connection: close");
    if (!tc_wait_closed(&c, 3000)) tc_fail_at(__FILE__, line, "not closed");
  }
  tc_resp_free(&r);
  tc_close(&c);
}

static void t_off(void) {
  REQUIRE(start(VIGIL_PROXY_OFF, 0, 0) > 0, "server");
  char all[512];
  int n = snprintf(all, sizeof all, "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n%s", GET);
  expect_400(all, (size_t)n, 0, __LINE__);
  expect_400(all, (size_t)n, 1, __LINE__);
  n = snprintf(all, sizeof all, "PROXY TCP6 ::1 ::1 1 2\r\n%s", GET);
  expect_400(all, (size_t)n, 0, __LINE__);
  n = snprintf(all, sizeof all, "PROXY UNKNOWN\r\n%s", GET);
  expect_400(all, (size_t)n, 0, __LINE__);
  unsigned char b[256];
  size_t k = v2(b, 0x21, 0x11, V4, 12);
  memcpy(b + k, GET, sizeof GET - 1);
  expect_400(b, k + sizeof GET - 1, 0, __LINE__);
  expect_400(b, k + sizeof GET - 1, 1, __LINE__);
  k = v2(b, 0x20, 0x00, "", 0);
  expect_400(b, k, 0, __LINE__);
  CHECK_EQ_INT(atomic_load(&handled), 0);
  /* Not headers: requests (PROXY as a method; empty lines first, RFC
   * 9112 2.2) reach the handler with the real peer. */
  expect_answer("", 0, "remote 127.0.0.1:%d\npeer 127.0.0.1:%d\ndest -\n");
  tc_resp_t r;
  REQUIRE(tc_roundtrip(port, "PROXY / HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 0, "PROXY method");
  CHECK_EQ_INT(r.status, 200);
  tc_resp_free(&r);
  REQUIRE(tc_roundtrip(port, "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", &r) == 0, "CRLFs first");
  CHECK_EQ_INT(r.status, 200);
  tc_resp_free(&r);
  stop();
}

/* A slow header: closed at the header timeout, without an answer; off,
 * bytes that might begin one and stop are a slow head (408). A header
 * that came whole and no request after it: the idle timeout, not the
 * header one. */
static void t_timeouts(void) {
  REQUIRE(start(VIGIL_PROXY_ANY, 300, 5000) > 0, "server");
  tc_client_t c;
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  uint64_t t0 = tc_now_ms();
  tc_send_str(&c, "PROXY TCP4 203.0.");
  CHECK(tc_wait_closed(&c, 3000), "slow header: not closed");
  uint64_t took = tc_now_ms() - t0;
  CHECK(took >= 250, "closed after %llu ms, before the header timeout",
        (unsigned long long)took);
  CHECK_EQ_INT(c.in.len, 0);
  tc_close(&c);

  REQUIRE(tc_connect(&c, port) == 0, "connect");
  tc_send_str(&c, "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n");
  CHECK(tc_still_open(&c, 800), "closed at the header timeout after a whole header");
  REQUIRE(tc_send_str(&c, GET) == 0, "send");
  tc_resp_t r;
  REQUIRE(tc_read_response(&c, &r, 5000) == 0, "response after a pause");
  CHECK(r.body.p && strncmp(r.body.p, "remote 203.0.113.7:51234\n", 25) == 0,
        "body '%s'", r.body.p ? r.body.p : "");
  tc_resp_free(&r);
  tc_close(&c);
  stop();

  REQUIRE(start(VIGIL_PROXY_OFF, 300, 5000) > 0, "server");
  REQUIRE(tc_connect(&c, port) == 0, "connect");
  tc_send_str(&c, "PROXY TC");
  REQUIRE(tc_read_response(&c, &r, 3000) == 0, "no 408");
  CHECK_EQ_INT(r.status, 408);
  tc_resp_free(&r);
  tc_close(&c);
  stop();
}

int main(void) {
  tc_init();
  RUN(t_v1, "v1 TCP4, TCP6, UNKNOWN: the handler reads the client, the proxy, the destination");
  RUN(t_v2, "v2 PROXY TCP4, TCP6, LOCAL, with TLVs");
  RUN(t_pool_reuse, "a pooled request after a long UNIX header address reads no stale bytes");
  RUN(t_split, "v1 and v2 headers and the request one byte per write");
  RUN(t_pipelined, "header + pipelined requests in one write; keep-alive keeps the client; a second header is a 400");
  RUN(t_refused, "required: missing, garbage, over-long, bad addresses, bad v2: closed without an answer");
  RUN(t_versions, "v1-only refuses v2, v2-only refuses v1; an unknown mode is EINVAL");
  RUN(t_off, "off: a PROXY header gets 400 + Connection: close; PROXY-method requests are served");
  RUN(t_timeouts, "a slow header is closed at the header timeout; a whole one waits as idle");
  return tc_summary();
}
