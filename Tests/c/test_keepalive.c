/*
 * test_keepalive.c - the options that notice a client that vanished
 * (tcp_keepalive_idle_ms / _interval_ms / _count, tcp_user_timeout_ms)
 * reach each accepted socket as vigil.h says: the defaults, milliseconds
 * rounded up to whole seconds, 0 meaning off or the kernel's value, an
 * older caller's smaller config getting the defaults, and the kernel's
 * limits refused by vigil_server_new.
 *
 * The server runs in this process, so its side of a loopback connection is
 * one of our own descriptors: found by its addresses (local = the server's
 * port, peer = the client's port) and read with getsockopt. That a probe
 * left unanswered then ends the request with VIGIL_REASON_PEER_UNREACHABLE
 * needs a network that loses packets: Tests/deploy/vanish.sh (network
 * namespaces). The zero-window path of the same reason is test_reasons.c's.
 */
#include <vigil.h>

#include <stddef.h>

#include "tc.h"

static void on_request_hello(vigil_request_t *req, void *ud) {
  (void)ud;
  vigil_response_send(req, 200, NULL, 0, "hi", 2);
  vigil_request_finish(req);
}

static int local_port(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &len) != 0 || a.sin_family != AF_INET)
    return -1;
  return ntohs(a.sin_port);
}

static int peer_port(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getpeername(fd, (struct sockaddr *)&a, &len) != 0 || a.sin_family != AF_INET)
    return -1;
  return ntohs(a.sin_port);
}

/* The server's end of the client's connection: the descriptor whose local
 * port is the server's and whose peer is the client; -1 if none. */
static int server_side_fd(int server_port, const tc_client_t *c) {
  int client_port = local_port(c->fd);
  for (int fd = 3; fd < 4096; fd++) {
    if (fd == c->fd) continue;
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
      continue;
    if (local_port(fd) == server_port && peer_port(fd) == client_port) return fd;
  }
  return -1;
}

typedef struct {
  int keepalive, idle, intvl, cnt;
  unsigned user_timeout;
} sock_opts_t;

static int read_opts(int fd, sock_opts_t *o) {
  socklen_t len = sizeof(int);
  if (getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &o->keepalive, &len) != 0) return -1;
  len = sizeof(int);
  if (getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &o->idle, &len) != 0) return -1;
  len = sizeof(int);
  if (getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &o->intvl, &len) != 0) return -1;
  len = sizeof(int);
  if (getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &o->cnt, &len) != 0) return -1;
  len = sizeof(unsigned);
  if (getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &o->user_timeout, &len) != 0) return -1;
  return 0;
}

/* Serve one request with `cfg` (its on_request set here), and read the
 * options of the server's end of that connection while it is open. */
static int accepted_opts(vigil_config_t *cfg, size_t struct_size, sock_opts_t *o) {
  cfg->on_request = on_request_hello;
  cfg->struct_size = struct_size;
  vigil_server_t *s;
  int port = tc_server_start(&s, cfg);
  if (port <= 0) return -1;
  int r = -1;
  tc_client_t c;
  if (tc_connect(&c, port) == 0) {
    tc_resp_t resp;
    tc_send_str(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    if (tc_read_response(&c, &resp, 5000) == 0) {
      tc_resp_free(&resp);
      /* Answered: accepted and set up (conn_start runs before the read
       * that got the request), and kept open (keep-alive). */
      int fd = server_side_fd(port, &c);
      if (fd < 0) tc_note("the server's end of the connection was not found");
      else r = read_opts(fd, o);
    }
    tc_close(&c);
  }
  CHECK(tc_stats_settled(s, 3000), "nothing left");
  vigil_server_free(s);
  return r;
}

static int sysctl_int(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  int v = -1;
  if (fscanf(f, "%d", &v) != 1) v = -1;
  fclose(f);
  return v;
}

static void test_defaults(void) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  CHECK(cfg.tcp_keepalive_idle_ms == 15000 && cfg.tcp_keepalive_interval_ms == 15000 &&
            cfg.tcp_keepalive_count == 3 && cfg.tcp_user_timeout_ms == 0,
        "vigil_config_init: keepalive 15 s, 15 s, 3; no user timeout");
  sock_opts_t o;
  REQUIRE(accepted_opts(&cfg, sizeof cfg, &o) == 0, "options read");
  CHECK_EQ_INT(o.keepalive, 1);
  CHECK_EQ_INT(o.idle, 15);
  CHECK_EQ_INT(o.intvl, 15);
  CHECK_EQ_INT(o.cnt, 3);
  CHECK_EQ_INT((int)o.user_timeout, 0);
}

/* Milliseconds to seconds, rounded up (never sooner than asked), and the
 * user timeout in milliseconds as given. */
static void test_configured(void) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.tcp_keepalive_idle_ms = 1500;
  cfg.tcp_keepalive_interval_ms = 1;
  cfg.tcp_keepalive_count = 5;
  cfg.tcp_user_timeout_ms = 2500;
  sock_opts_t o;
  REQUIRE(accepted_opts(&cfg, sizeof cfg, &o) == 0, "options read");
  CHECK_EQ_INT(o.keepalive, 1);
  CHECK_EQ_INT(o.idle, 2);
  CHECK_EQ_INT(o.intvl, 1);
  CHECK_EQ_INT(o.cnt, 5);
  CHECK_EQ_INT((int)o.user_timeout, 2500);
}

/* idle 0: keepalive off (SO_KEEPALIVE as the kernel leaves it); the user
 * timeout is set on its own. */
static void test_off(void) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.tcp_keepalive_idle_ms = 0;
  cfg.tcp_user_timeout_ms = 700;
  sock_opts_t o;
  REQUIRE(accepted_opts(&cfg, sizeof cfg, &o) == 0, "options read");
  CHECK_EQ_INT(o.keepalive, 0);
  CHECK_EQ_INT((int)o.user_timeout, 700);
}

/* interval 0 and count 0: the kernel's values (this network namespace's
 * net.ipv4.tcp_keepalive_intvl and _probes). */
static void test_kernel_values(void) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.tcp_keepalive_idle_ms = 1000;
  cfg.tcp_keepalive_interval_ms = 0;
  cfg.tcp_keepalive_count = 0;
  sock_opts_t o;
  REQUIRE(accepted_opts(&cfg, sizeof cfg, &o) == 0, "options read");
  CHECK_EQ_INT(o.keepalive, 1);
  CHECK_EQ_INT(o.idle, 1);
  int intvl = sysctl_int("/proc/sys/net/ipv4/tcp_keepalive_intvl");
  int probes = sysctl_int("/proc/sys/net/ipv4/tcp_keepalive_probes");
  if (intvl > 0) CHECK_EQ_INT(o.intvl, intvl);
  if (probes > 0) CHECK_EQ_INT(o.cnt, probes);
}

/* A caller compiled before the keepalive fields existed passes a smaller
 * struct: it gets the defaults, keepalive on. */
static void test_older_struct(void) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.tcp_keepalive_idle_ms = 0; /* past its struct_size: never read */
  sock_opts_t o;
  REQUIRE(accepted_opts(&cfg, offsetof(vigil_config_t, tcp_keepalive_idle_ms), &o) == 0,
          "options read");
  CHECK_EQ_INT(o.keepalive, 1);
  CHECK_EQ_INT(o.idle, 15);
  CHECK_EQ_INT(o.intvl, 15);
  CHECK_EQ_INT(o.cnt, 3);
}

static int try_new(uint64_t idle, uint64_t intvl, unsigned count) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request_hello;
  cfg.tcp_keepalive_idle_ms = idle;
  cfg.tcp_keepalive_interval_ms = intvl;
  cfg.tcp_keepalive_count = count;
  vigil_server_t *s = NULL;
  int r = vigil_server_new(&s, &cfg);
  vigil_server_free(s);
  return r;
}

/* The kernel's limits (32767 s, 127 probes) are accepted; past them
 * vigil_server_new says so rather than the socket keeping another value. */
static void test_limits(void) {
  CHECK_EQ_INT(try_new(32767000, 32767000, 127), 0);
  CHECK_EQ_INT(try_new(32767001, 1000, 1), VIGIL_EINVAL);
  CHECK_EQ_INT(try_new(1000, 32767001, 1), VIGIL_EINVAL);
  CHECK_EQ_INT(try_new(1000, 1000, 128), VIGIL_EINVAL);
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.tcp_keepalive_idle_ms = 32767000;
  cfg.tcp_keepalive_interval_ms = 32767000;
  cfg.tcp_keepalive_count = 127;
  sock_opts_t o;
  REQUIRE(accepted_opts(&cfg, sizeof cfg, &o) == 0, "options read");
  CHECK_EQ_INT(o.idle, 32767);
  CHECK_EQ_INT(o.intvl, 32767);
  CHECK_EQ_INT(o.cnt, 127);
}

static void test_reason_name(void) {
  CHECK(strcmp(vigil_reason_name(VIGIL_REASON_PEER_UNREACHABLE), "peerUnreachable") == 0,
        "reason name: %s", vigil_reason_name(VIGIL_REASON_PEER_UNREACHABLE));
}

int main(void) {
  tc_init();
  RUN(test_defaults, "defaults: keepalive 15 s idle, 15 s interval, 3 probes on each connection");
  RUN(test_configured, "configured: ms rounded up to seconds, count and user timeout as given");
  RUN(test_off, "idle 0: keepalive off, the user timeout still set");
  RUN(test_kernel_values, "interval 0, count 0: the kernel's values");
  RUN(test_older_struct, "an older caller's smaller config gets the keepalive defaults");
  RUN(test_limits, "the kernel's limits accepted, past them VIGIL_EINVAL");
  RUN(test_reason_name, "VIGIL_REASON_PEER_UNREACHABLE is named");
  return tc_summary();
}
