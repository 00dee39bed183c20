/*
 * test_listen.c - where the server listens, and restarts that lose nothing:
 * a port is one server's unless all ask for reuse_port (loops > 1 share one
 * socket); Unix sockets (serve, file mode, removal, a stale file replaced,
 * a live one refused); an inherited listening descriptor (checked, served,
 * left to its owner); IPv6 "::" serving IPv4; systemd's LISTEN_FDS /
 * LISTEN_PID (vigil_listen_fds); the graceful shutdown's drain (a request
 * sent on an idle connection just after the shutdown began is served); and
 * vigil_server_handover to this very program started as a successor
 * (`test_listen --successor`).
 */
#include <vigil.h>

#include "tc.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

/* ------------------------------------------------------------------ */
/* the handler: "/" answers "<tag>", "/slow?ms=N" answers after N ms (a
 * worker thread) */

static const char *tag = "A";

static void *slow_worker(void *arg) {
  vigil_request_t *req = arg;
  size_t n;
  const char *t = vigil_request_target(req, &n);
  unsigned ms = 300;
  if (n > 9 && memcmp(t, "/slow?ms=", 9) == 0) ms = (unsigned)atoi(t + 9);
  tc_sleep_ms(ms);
  vigil_response_send(req, 200, NULL, 0, "slow", 4);
  vigil_request_finish(req);
  return NULL;
}

static void on_request(vigil_request_t *req, void *ud) {
  (void)ud;
  size_t n;
  const char *t = vigil_request_target(req, &n);
  if (tc_starts(t, n, "/slow")) {
    pthread_t th;
    if (pthread_create(&th, NULL, slow_worker, req) == 0) {
      pthread_detach(th);
      return;
    }
  }
  if (tc_starts(t, n, "/local")) {
    /* vigil_request_local_addr as "A:port" / "[A]:port" / "unix" */
    struct sockaddr_storage ss;
    char body[80], ip[INET6_ADDRSTRLEN] = "";
    int r = vigil_request_local_addr(req, &ss);
    if (r != 0) {
      snprintf(body, sizeof body, "error %d", r);
    } else if (ss.ss_family == AF_INET) {
      const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
      snprintf(body, sizeof body, "%s:%u", ip, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
      const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
      snprintf(body, sizeof body, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
      snprintf(body, sizeof body, ss.ss_family == AF_UNIX ? "unix" : "family %d", ss.ss_family);
    }
    vigil_response_send(req, 200, NULL, 0, body, strlen(body));
  } else if (tc_starts(t, n, "/family")) {
    struct sockaddr_storage ss;
    char body[16];
    int r = vigil_request_remote_addr(req, &ss);
    snprintf(body, sizeof body, "%d", r == 0 ? ss.ss_family : -1);
    vigil_response_send(req, 200, NULL, 0, body, strlen(body));
  } else {
    char body[64];
    snprintf(body, sizeof body, "%s %d", tag, (int)getpid());
    vigil_response_send(req, 200, NULL, 0, body, strlen(body));
  }
  vigil_request_finish(req);
}

static void config(vigil_config_t *cfg) {
  vigil_config_init(cfg);
  cfg->on_request = on_request;
}

static int start(vigil_server_t **s, vigil_config_t *cfg) {
  int r = vigil_server_new(s, cfg);
  if (r != 0) return r;
  r = vigil_server_start(*s);
  if (r != 0) {
    vigil_server_free(*s);
    *s = NULL;
  }
  return r;
}

/* GET path on c; 1 if answered 200, body copied to out. */
static int get(tc_client_t *c, const char *path, char *out, size_t outlen, int *closes) {
  char req[128];
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
  tc_resp_t r;
  int ok = tc_send_str(c, req) == 0 && tc_read_response(c, &r, 5000) == 0 && r.status == 200;
  if (ok && out) snprintf(out, outlen, "%.*s", (int)r.body.len, r.body.p ? r.body.p : "");
  if (ok && closes) *closes = tc_resp_has(&r, "Connection", "close");
  if (ok || r.status) tc_resp_free(&r);
  return ok;
}

static int get_port(int port, const char *path, char *out, size_t outlen) {
  tc_client_t c;
  if (tc_connect(&c, port) != 0) return 0;
  int ok = get(&c, path, out, outlen, NULL);
  tc_close(&c);
  return ok;
}

static int unix_connect(tc_client_t *c, const char *path) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  struct timeval tv = {5, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  return 0;
}

static char tmpdir[64];

static void unix_path(char *out, size_t n, const char *name) {
  snprintf(out, n, "%s/%s", tmpdir, name);
}

/* ------------------------------------------------------------------ */
/* ports */

static void t_port_exclusive(void) {
  vigil_config_t cfg;
  config(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.loops = 2; /* used to imply SO_REUSEPORT */
  vigil_server_t *a, *b;
  REQUIRE(start(&a, &cfg) == 0, "start a");
  cfg.port = (uint16_t)vigil_server_port(a);
  CHECK_EQ_INT(start(&b, &cfg), -98); /* EADDRINUSE */
  cfg.reuse_port = 1; /* asking alone is not enough: a did not */
  CHECK_EQ_INT(start(&b, &cfg), -98);
  /* both loops of a serve from its one socket */
  for (int i = 0; i < 8; i++) CHECK(get_port(cfg.port, "/", NULL, 0), "request %d", i);
  vigil_server_free(a);
}

static void t_reuse_port(void) {
  vigil_config_t cfg;
  config(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.loops = 2;
  cfg.reuse_port = 1;
  vigil_server_t *a, *b, *c;
  REQUIRE(start(&a, &cfg) == 0, "start a");
  cfg.port = (uint16_t)vigil_server_port(a);
  cfg.loops = 1;
  CHECK_EQ_INT(start(&b, &cfg), 0);
  cfg.reuse_port = 0;
  CHECK_EQ_INT(start(&c, &cfg), -98); /* c did not ask */
  /* the kernel spreads connections over a's two sockets and b's */
  for (int i = 0; i < 8; i++) CHECK(get_port(cfg.port, "/", NULL, 0), "request %d", i);
  /* one-socket-per-loop servers cannot hand over */
  CHECK_EQ_INT(vigil_server_handover(a, "/bin/true", NULL, 100, NULL), VIGIL_EINVAL);
  vigil_server_free(a);
  if (b) vigil_server_free(b);
}

static void t_ipv6_dual_stack(void) {
  int probe = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  int usable = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof a6) == 0;
  if (probe >= 0) close(probe);
  if (!usable) {
    tc_note("skipped: ::1 is not usable here");
    return;
  }
  vigil_config_t cfg;
  config(&cfg);
  cfg.host = "::";
  cfg.port = 0;
  vigil_server_t *s;
  REQUIRE(start(&s, &cfg) == 0, "start on ::");
  char body[16] = "";
  /* over IPv4: the v4-mapped address, family AF_INET6 */
  CHECK(get_port(vigil_server_port(s), "/family", body, sizeof body), "IPv4 client of ::");
  CHECK(atoi(body) == AF_INET6, "family %s", body);
  vigil_server_free(s);
}

/* vigil_request_local_addr: the accepted socket's own address, on an IPv4
 * listener, an IPv6 one (::1) and a Unix socket (AF_UNIX, no path); NULLs
 * refused. */
static void t_local_addr(void) {
  vigil_config_t cfg;
  config(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  vigil_server_t *s;
  REQUIRE(start(&s, &cfg) == 0, "start on 127.0.0.1");
  char body[80] = "", want[80];
  snprintf(want, sizeof want, "127.0.0.1:%d", vigil_server_port(s));
  CHECK(get_port(vigil_server_port(s), "/local", body, sizeof body), "GET /local");
  CHECK(strcmp(body, want) == 0, "local '%s', expected '%s'", body, want);
  CHECK_EQ_INT(vigil_request_local_addr(NULL, NULL), VIGIL_EINVAL);
  vigil_server_free(s);

  int probe = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  int usable = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof a6) == 0;
  if (probe >= 0) close(probe);
  if (usable) {
    config(&cfg);
    cfg.host = "::1";
    cfg.port = 0;
    REQUIRE(start(&s, &cfg) == 0, "start on ::1");
    tc_client_t c;
    memset(&c, 0, sizeof c);
    c.fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {5, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    a6.sin6_port = htons((uint16_t)vigil_server_port(s));
    CHECK(connect(c.fd, (struct sockaddr *)&a6, sizeof a6) == 0, "connect to ::1");
    snprintf(want, sizeof want, "[::1]:%d", vigil_server_port(s));
    body[0] = 0;
    CHECK(get(&c, "/local", body, sizeof body, NULL), "GET /local over ::1");
    CHECK(strcmp(body, want) == 0, "local '%s', expected '%s'", body, want);
    tc_close(&c);
    vigil_server_free(s);
  } else {
    tc_note("IPv6 part skipped: ::1 is not usable here");
  }

  char path[100];
  unix_path(path, sizeof path, "local.sock");
  config(&cfg);
  cfg.unix_path = path;
  REQUIRE(start(&s, &cfg) == 0, "start on a Unix socket");
  tc_client_t u;
  REQUIRE(unix_connect(&u, path) == 0, "connect");
  body[0] = 0;
  CHECK(get(&u, "/local", body, sizeof body, NULL), "GET /local over a Unix socket");
  CHECK(strcmp(body, "unix") == 0, "local '%s', expected 'unix'", body);
  tc_close(&u);
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* Unix sockets */

static void t_unix_serve(void) {
  char path[100];
  unix_path(path, sizeof path, "serve.sock");
  vigil_config_t cfg;
  config(&cfg);
  cfg.unix_path = path;
  cfg.unix_mode = 0600;
  cfg.loops = 2;
  vigil_server_t *s;
  REQUIRE(start(&s, &cfg) == 0, "start");
  CHECK_EQ_INT(vigil_server_port(s), 0);
  struct stat st;
  CHECK(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600,
        "mode %o", (unsigned)st.st_mode);
  tc_client_t c;
  REQUIRE(unix_connect(&c, path) == 0, "connect");
  char body[64];
  CHECK(get(&c, "/", body, sizeof body, NULL), "request");
  CHECK(get(&c, "/family", body, sizeof body, NULL), "second request, keep-alive");
  CHECK(atoi(body) == AF_UNIX, "remote address family %s", body);
  /* a client that leaves is seen (no TCP_INFO on a Unix socket) */
  CHECK(tc_send_str(&c, "GET /slow?ms=2000 HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  tc_sleep_ms(50);
  tc_close(&c);
  vigil_stats_t sts;
  CHECK(TC_WAIT_UNTIL((vigil_server_stats(s, &sts), sts.connections_open == 0), 1500),
        "closed Unix client not noticed");
  /* a second server on the live socket: EADDRINUSE */
  vigil_server_t *b;
  CHECK_EQ_INT(start(&b, &cfg), -98);
  CHECK(stat(path, &st) == 0, "the live socket file was removed");
  vigil_server_shutdown(s, 1000);
  vigil_server_wait(s);
  CHECK(stat(path, &st) != 0 && errno == ENOENT, "socket file left after shutdown");
  vigil_server_free(s);
  tc_sleep_ms(400); /* the slow worker answers into the void */
}

static void t_unix_stale_and_others(void) {
  char path[100];
  unix_path(path, sizeof path, "stale.sock");
  /* a stale socket file: bound, never listened on, closed */
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0, "bind");
  close(fd);
  vigil_config_t cfg;
  config(&cfg);
  cfg.unix_path = path;
  vigil_server_t *s;
  CHECK_EQ_INT(start(&s, &cfg), 0);
  if (s) {
    tc_client_t c;
    CHECK(unix_connect(&c, path) == 0 && get(&c, "/", NULL, 0, NULL), "serves");
    tc_close(&c);
    /* replaced by another file meanwhile: not ours, not removed */
    unlink(path);
    int other = socket(AF_UNIX, SOCK_STREAM, 0);
    bind(other, (struct sockaddr *)&a, sizeof a);
    vigil_server_free(s);
    struct stat st;
    CHECK(stat(path, &st) == 0, "another server's socket file was removed");
    close(other);
    unlink(path);
  }
  /* a regular file is never replaced */
  FILE *f = fopen(path, "w");
  REQUIRE(f != NULL, "fopen");
  fclose(f);
  CHECK_EQ_INT(start(&s, &cfg), -98);
  struct stat st;
  CHECK(stat(path, &st) == 0 && S_ISREG(st.st_mode), "regular file touched");
  unlink(path);
  /* too long a path */
  char longp[200];
  memset(longp, 'x', sizeof longp - 1);
  longp[sizeof longp - 1] = '\0';
  cfg.unix_path = longp;
  CHECK_EQ_INT(start(&s, &cfg), -36); /* ENAMETOOLONG */
}

/* ------------------------------------------------------------------ */
/* inherited descriptors */

static int listening_socket(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) return -1;
  socklen_t l = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &l);
  *port = ntohs(a.sin_port);
  return fd;
}

static void t_inherited_fd(void) {
  int port;
  int fd = listening_socket(&port);
  REQUIRE(fd >= 0, "socket");
  vigil_config_t cfg;
  config(&cfg);
  cfg.listen_fd = fd;
  cfg.loops = 2;
  cfg.host = "203.0.113.1"; /* unused */
  vigil_server_t *s;
  REQUIRE(start(&s, &cfg) == 0, "start on an inherited socket");
  CHECK_EQ_INT(vigil_server_port(s), port);
  for (int i = 0; i < 4; i++) CHECK(get_port(port, "/", NULL, 0), "request %d", i);
  vigil_server_free(s);
  /* the descriptor is still the caller's, and still listening */
  int v = 0;
  socklen_t l = sizeof v;
  CHECK(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) == 0 && v == 1,
        "the caller's descriptor was closed");
  close(fd);

  /* refused: not listening, a datagram socket, not a socket, not open */
  int notl = socket(AF_INET, SOCK_STREAM, 0);
  int dgram = socket(AF_INET, SOCK_DGRAM, 0);
  int p[2];
  REQUIRE(pipe(p) == 0, "pipe");
  cfg.listen_fd = notl;
  CHECK_EQ_INT(start(&s, &cfg), VIGIL_EINVAL);
  cfg.listen_fd = dgram;
  CHECK_EQ_INT(start(&s, &cfg), VIGIL_EINVAL);
  cfg.listen_fd = p[0];
  CHECK_EQ_INT(start(&s, &cfg), -88); /* ENOTSOCK */
  cfg.listen_fd = 999;
  CHECK_EQ_INT(start(&s, &cfg), VIGIL_EINVAL);
  close(notl);
  close(dgram);
  close(p[0]);
  close(p[1]);
}

/* ------------------------------------------------------------------ */
/* systemd's variables, each case in a child process (vigil_listen_fds
 * remembers its first answer, and changes the environment) */

static int in_child(int (*fn)(void)) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

static int unset_all(void) {
  return getenv("LISTEN_PID") == NULL && getenv("LISTEN_FDS") == NULL &&
         getenv("LISTEN_FDNAMES") == NULL;
}

static int child_wrong_pid(void) {
  char pid[16];
  snprintf(pid, sizeof pid, "%d", (int)getppid());
  setenv("LISTEN_PID", pid, 1);
  setenv("LISTEN_FDS", "1", 1);
  setenv("LISTEN_FDNAMES", "x", 1);
  if (vigil_listen_fds(1) != 0) return 1;
  return unset_all() ? 0 : 2;
}

static int child_malformed(void) {
  char pid[16];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  setenv("LISTEN_PID", pid, 1);
  setenv("LISTEN_FDS", "1x", 1);
  return vigil_listen_fds(0) == -EINVAL && getenv("LISTEN_FDS") != NULL ? 0 : 1;
}

static int child_not_open(void) {
  char pid[16];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  setenv("LISTEN_PID", pid, 1);
  setenv("LISTEN_FDS", "2", 1);
  close(3);
  close(4);
  return vigil_listen_fds(1) == -EBADF ? 0 : 1;
}

/* A socket at 3, the right pid: found, close-on-exec, variables gone, and
 * a server on it serves; a second call says the same. */
static int child_serves(void) {
  int port;
  int fd = listening_socket(&port);
  if (fd < 0 || dup2(fd, 3) != 3) return 1;
  close(fd);
  char pid[16];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  setenv("LISTEN_PID", pid, 1);
  setenv("LISTEN_FDS", "1", 1);
  if (vigil_listen_fds(1) != 1) return 2;
  if (!unset_all()) return 3;
  if (!(fcntl(3, F_GETFD) & FD_CLOEXEC)) return 4;
  if (vigil_listen_fds(1) != 1) return 5;
  vigil_config_t cfg;
  config(&cfg);
  cfg.listen_fd = VIGIL_LISTEN_FDS_START;
  vigil_server_t *s;
  if (start(&s, &cfg) != 0) return 6;
  int ok = vigil_server_port(s) == port && get_port(port, "/", NULL, 0);
  vigil_server_free(s);
  return ok ? 0 : 7;
}

static void t_listen_fds(void) {
  CHECK_EQ_INT(in_child(child_wrong_pid), 0);
  CHECK_EQ_INT(in_child(child_malformed), 0);
  CHECK_EQ_INT(in_child(child_not_open), 0);
  CHECK_EQ_INT(in_child(child_serves), 0);
}

/* ------------------------------------------------------------------ */
/* the graceful shutdown's drain */

static void t_drain(void) {
  vigil_config_t cfg;
  config(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.shutdown_idle_ms = 600;
  vigil_server_t *s;
  REQUIRE(start(&s, &cfg) == 0, "start");
  int port = vigil_server_port(s);
  tc_client_t old, busy, quiet;
  REQUIRE(tc_connect(&old, port) == 0 && tc_connect(&busy, port) == 0 &&
              tc_connect(&quiet, port) == 0, "connect");
  CHECK(get(&old, "/", NULL, 0, NULL), "request");
  tc_sleep_ms(700); /* `old` has been idle longer than shutdown_idle_ms */
  CHECK(get(&busy, "/", NULL, 0, NULL), "request");
  CHECK(get(&quiet, "/", NULL, 0, NULL), "request");
  uint64_t t0 = tc_now_ms();
  CHECK_EQ_INT(vigil_server_shutdown(s, 5000), 0);
  tc_sleep_ms(30);
  /* a client that sends its next request right after: served, told to close */
  int closes = 0;
  char body[64] = "";
  CHECK(get(&busy, "/", body, sizeof body, &closes), "the next request on a busy "
        "keep-alive connection failed during the shutdown");
  CHECK(closes, "no Connection: close during the shutdown");
  CHECK(tc_wait_closed(&busy, 2000), "not closed after its last response");
  CHECK(tc_wait_closed(&old, 300), "a long idle connection was not closed at once");
  CHECK(tc_wait_closed(&quiet, 2000), "an idle connection stayed open");
  uint64_t dt = tc_now_ms() - t0;
  CHECK(dt >= 500, "idle connection closed after %llu ms, before shutdown_idle_ms",
        (unsigned long long)dt);
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  tc_close(&old);
  tc_close(&busy);
  tc_close(&quiet);
  vigil_server_free(s);
}

/* ------------------------------------------------------------------ */
/* hand-over */

static const char *self_exe;

/* `test_listen --successor`: serve the inherited socket as "B" until
 * SIGTERM. */
static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

static int successor(void) {
  tag = "B";
  signal(SIGTERM, on_term);
  if (vigil_listen_fds(1) != 1) return 10;
  vigil_config_t cfg;
  config(&cfg);
  cfg.listen_fd = VIGIL_LISTEN_FDS_START;
  vigil_server_t *s;
  if (start(&s, &cfg) != 0) return 11;
  for (int i = 0; i < 3000 && !term; i++) tc_sleep_ms(10);
  vigil_server_shutdown(s, 2000);
  vigil_server_wait(s);
  vigil_server_free(s);
  return 0;
}

static void t_handover(void) {
  vigil_config_t cfg;
  config(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.loops = 2;
  vigil_server_t *s;
  REQUIRE(start(&s, &cfg) == 0, "start");
  int port = vigil_server_port(s);
  char body[64];
  CHECK(get_port(port, "/", body, sizeof body) && body[0] == 'A', "A serves: %s", body);

  /* failures leave A serving */
  char *none[] = {"/nonexistent/x", NULL};
  CHECK_EQ_INT(vigil_server_handover(s, "/nonexistent/x", none, 2000, NULL), -ENOENT);
  CHECK_EQ_INT(vigil_server_handover(s, "/bin/true", NULL, 2000, NULL), -ECHILD);
  char *sleeper[] = {"sleep", "5", NULL};
  uint64_t t0 = tc_now_ms();
  CHECK_EQ_INT(vigil_server_handover(s, "/bin/sleep", sleeper, 300, NULL), -ETIMEDOUT);
  CHECK(tc_now_ms() - t0 < 2000, "timeout took %llu ms", (unsigned long long)(tc_now_ms() - t0));
  CHECK(get_port(port, "/", body, sizeof body) && body[0] == 'A', "A still serves: %s", body);

  /* a slow request in flight on A, and a keep-alive client */
  tc_client_t slow, ka;
  REQUIRE(tc_connect(&slow, port) == 0 && tc_connect(&ka, port) == 0, "connect");
  CHECK(get(&ka, "/", NULL, 0, NULL), "keep-alive request");
  REQUIRE(tc_send_str(&slow, "GET /slow?ms=800 HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  char *argv[] = {(char *)self_exe, "--successor", NULL};
  int pid = 0;
  int r = vigil_server_handover(s, self_exe, argv, 5000, &pid);
  CHECK_EQ_INT(r, 0);
  REQUIRE(r == 0 && pid > 0, "hand-over");
  tc_child_pid = pid; /* the watchdog kills it */
  CHECK_EQ_INT(vigil_server_handover(s, self_exe, argv, 5000, NULL), VIGIL_EALREADY);
  CHECK_EQ_INT(vigil_server_shutdown(s, 3000), 0);
  /* the keep-alive client's next request: still A's, with close */
  int closes = 0;
  CHECK(get(&ka, "/", body, sizeof body, &closes) && body[0] == 'A' && closes,
        "keep-alive request during the drain: %s close=%d", body, closes);
  /* new connections: B's */
  int bs = 0;
  for (int i = 0; i < 10; i++)
    if (get_port(port, "/", body, sizeof body) && body[0] == 'B' && atoi(body + 2) == pid) bs++;
  CHECK_EQ_INT(bs, 10);
  tc_resp_t rr;
  CHECK(tc_read_response(&slow, &rr, 3000) == 0 && rr.status == 200, "slow request lost");
  tc_resp_free(&rr);
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  vigil_server_free(s);
  for (int i = 0; i < 5; i++) CHECK(get_port(port, "/", NULL, 0), "B after A's exit");
  kill(pid, SIGTERM);
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "successor status %d", st);
  tc_child_pid = 0;
  tc_close(&slow);
  tc_close(&ka);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--successor") == 0) return successor();
  tc_init();
  static char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  self_exe = n > 0 ? (exe[n] = '\0', exe) : argv[0];
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vigil-listen-XXXXXX");
  if (mkdtemp(tmpdir) == NULL) return 1;
  RUN(t_port_exclusive, "a port is one server's: EADDRINUSE without reuse_port, loops > 1 share one socket");
  RUN(t_reuse_port, "reuse_port: servers that all ask share the port");
  RUN(t_ipv6_dual_stack, "\"::\" serves IPv4 too (IPV6_V6ONLY off)");
  RUN(t_local_addr, "vigil_request_local_addr: 127.0.0.1, ::1 and a Unix socket");
  RUN(t_unix_serve, "Unix socket: served, file mode, AF_UNIX peer, live one refused, removed at shutdown");
  RUN(t_unix_stale_and_others, "Unix socket: stale file replaced, others' files kept, regular file refused");
  RUN(t_inherited_fd, "inherited listening descriptor: checked, served, left open for its owner");
  RUN(t_listen_fds, "vigil_listen_fds: wrong pid ignored, variables unset, malformed, fd 3 served");
  RUN(t_drain, "shutdown drain: the next request on a busy keep-alive connection is served");
  RUN(t_handover, "hand-over: failures keep serving; successor serves, in-flight finished by the old");
  rmdir(tmpdir);
  return tc_summary();
}
