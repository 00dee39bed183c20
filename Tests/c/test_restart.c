/*
 * test_restart.c - the edges of listening, hand-over and the shutdown's
 * drain: a hand-over with no environment at all (clearenv), two servers
 * racing for one Unix path (exactly one wins), a shutdown that begins while
 * a hand-over waits (the successor's socket file stays; a failed hand-over
 * still removes it), a successor that forks and exits (noticed at once, and
 * nothing it left behind keeps the socket), the parent's signal handlers
 * never run in the child before execve, a response whose head went out
 * before the shutdown (its connection is drained like an idle one), and
 * shutdown_idle_ms counted from when the connection became idle.
 *
 * `test_restart --successor` is the successor the hand-overs start.
 */
#include <vigil.h>

#include "tc.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

extern char **environ;

static const char *tag = "A";
static const char *self_exe;
static char tmpdir[64];

static void *stream_worker(void *arg) {
  vigil_request_t *req = arg;
  vigil_response_start(req, 200, NULL, 0, 5);
  vigil_response_write(req, "he", 2, NULL, NULL);
  tc_sleep_ms(300);
  vigil_response_write(req, "llo", 3, NULL, NULL);
  vigil_response_end(req);
  vigil_request_finish(req);
  return NULL;
}

static void on_request(vigil_request_t *req, void *ud) {
  (void)ud;
  size_t n;
  const char *t = vigil_request_target(req, &n);
  pthread_t th;
  if (tc_starts(t, n, "/stream") && pthread_create(&th, NULL, stream_worker, req) == 0) {
    pthread_detach(th);
    return;
  }
  char body[64];
  snprintf(body, sizeof body, "%s %d", tag, (int)getpid());
  vigil_response_send(req, 200, NULL, 0, body, strlen(body));
  vigil_request_finish(req);
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

static void stop(vigil_server_t *s) {
  vigil_server_shutdown(s, 0);
  vigil_server_wait(s);
  vigil_server_free(s);
}

static int tcp_config(vigil_config_t *cfg) {
  vigil_config_init(cfg);
  cfg->on_request = on_request;
  cfg->host = "127.0.0.1";
  cfg->port = 0;
  return 0;
}

static int unix_get(const char *path, char *out, size_t outlen) {
  tc_client_t c;
  memset(&c, 0, sizeof c);
  c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  if (connect(c.fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(c.fd);
    return 0;
  }
  tc_resp_t r;
  int ok = tc_send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
           tc_read_response(&c, &r, 3000) == 0 && r.status == 200;
  if (ok) {
    snprintf(out, outlen, "%.*s", (int)r.body.len, r.body.p ? r.body.p : "");
    tc_resp_free(&r);
  }
  tc_close(&c);
  return ok;
}

/* Runs fn in a child process (its own environment, signals, process
 * group); its exit status, or 128 + the signal that killed it. */
static int in_child(int (*fn)(void), unsigned timeout_s) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(timeout_s);
    _exit(fn());
  }
  int st = 0;
  tc_child_pid = pid;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  tc_child_pid = 0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------------ */
/* D1: no environment at all */

static int child_no_environ(void) {
  vigil_config_t cfg;
  tcp_config(&cfg);
  vigil_server_t *s;
  if (start(&s, &cfg) != 0) return 10;
  clearenv(); /* glibc: environ == NULL */
  int r = vigil_server_handover(s, "/bin/true", NULL, 2000, NULL);
  stop(s);
  return r == -ECHILD ? 0 : 11;
}

static void t_no_environ(void) {
  CHECK_EQ_INT(in_child(child_no_environ, 10), 0);
}

/* ------------------------------------------------------------------ */
/* D3: two servers start on one Unix path at once */

/* Starts a server on path once the parent says go (EOF on go_fd), says
 * how it went on res_fd, and stops once the parent has both answers (EOF
 * on end_fd): the two servers overlap whatever the scheduler does. */
static int race_one(const char *path, int go_fd, int res_fd, int end_fd) {
  char c;
  if (read(go_fd, &c, 1) < 0) return 2;
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.unix_path = path;
  cfg.unix_mode = 0660;
  vigil_server_t *s;
  int r = start(&s, &cfg);
  c = r == 0 ? 0 : r == -EADDRINUSE ? 1 : 3;
  if (write(res_fd, &c, 1) != 1) return 2;
  if (read(end_fd, &c, 1) < 0) return 2;
  if (r == 0) stop(s);
  return c;
}

static void t_unix_race(void) {
  char path[100];
  snprintf(path, sizeof path, "%s/race.sock", tmpdir);
  int both = 0, none = 0, odd = 0, rounds = 200;
  for (int i = 0; i < rounds; i++) {
    unlink(path);
    /* a stale file first: both go through the stale check */
    int p = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (bind(p, (struct sockaddr *)&a, sizeof a) != 0) odd++;
    close(p);
    int go[2], res[2], end[2];
    REQUIRE(pipe(go) == 0 && pipe(res) == 0 && pipe(end) == 0, "pipe");
    pid_t k[2];
    fflush(NULL);
    for (int j = 0; j < 2; j++)
      if ((k[j] = fork()) == 0) {
        close(go[1]);
        close(end[1]);
        alarm(10);
        _exit(race_one(path, go[0], res[1], end[0]));
      }
    close(go[0]);
    close(go[1]); /* EOF: go */
    close(res[1]);
    close(end[0]);
    char both_res[2] = {9, 9};
    for (int j = 0; j < 2; j++)
      if (read(res[0], &both_res[j], 1) != 1) odd++;
    close(res[0]);
    close(end[1]); /* EOF: stop */
    int won = 0;
    for (int j = 0; j < 2; j++) {
      int st = 0;
      waitpid(k[j], &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) > 1) odd++;
      if (both_res[j] == 0) won++;
    }
    if (won == 2) both++;
    if (won == 0) none++;
  }
  CHECK(both == 0, "both servers started on one path in %d of %d rounds", both, rounds);
  CHECK(none == 0, "neither server started in %d of %d rounds", none, rounds);
  CHECK_EQ_INT(odd, 0);
  /* nothing left behind: no socket file, no temporary names */
  struct stat st;
  CHECK(lstat(path, &st) != 0, "the socket file stayed");
  int entries = 0;
  DIR *d = opendir(tmpdir);
  for (struct dirent *e; d && (e = readdir(d)) != NULL;)
    if (e->d_name[0] != '.') entries++, tc_note("left: %s", e->d_name);
  if (d) closedir(d);
  CHECK_EQ_INT(entries, 0);
}

/* chmod never follows a symlink planted at the path: a symlink there is
 * another's file (EADDRINUSE), its target's mode stays. */
static void t_unix_symlink(void) {
  char path[100], target[128];
  snprintf(path, sizeof path, "%s/link.sock", tmpdir);
  snprintf(target, sizeof target, "%s/target", tmpdir);
  int fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0, "create");
  close(fd);
  REQUIRE(symlink(target, path) == 0, "symlink");
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.unix_path = path;
  cfg.unix_mode = 0666;
  vigil_server_t *s = NULL;
  CHECK_EQ_INT(start(&s, &cfg), -EADDRINUSE);
  struct stat st;
  CHECK(stat(target, &st) == 0 && (st.st_mode & 0777) == 0600, "target's mode changed: %o",
        (unsigned)(st.st_mode & 0777));
  CHECK(lstat(path, &st) == 0 && S_ISLNK(st.st_mode), "the symlink was removed");
  unlink(path);
  unlink(target);
}

/* ------------------------------------------------------------------ */
/* the successor: `test_restart --successor [delay_ms]` serves descriptor 3
 * as "B" until SIGTERM */

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

static int successor(unsigned delay_ms) {
  tag = "B";
  signal(SIGTERM, on_term);
  if (vigil_listen_fds(1) != 1) return 10;
  tc_sleep_ms(delay_ms); /* a successor that takes a while to start */
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.listen_fd = VIGIL_LISTEN_FDS_START;
  vigil_server_t *s;
  if (start(&s, &cfg) != 0) return 11;
  for (int i = 0; i < 3000 && !term; i++) tc_sleep_ms(10);
  vigil_server_shutdown(s, 1000);
  vigil_server_wait(s);
  vigil_server_free(s);
  return 0;
}

/* ------------------------------------------------------------------ */
/* D4: a shutdown that begins while the hand-over waits */

struct delayed { vigil_server_t *s; unsigned ms; };
static void *shutdown_later(void *arg) {
  struct delayed *d = arg;
  tc_sleep_ms(d->ms);
  vigil_server_shutdown(d->s, 1000);
  return NULL;
}

static void t_shutdown_during_handover(void) {
  char path[100], body[64] = "";
  snprintf(path, sizeof path, "%s/ho.sock", tmpdir);
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  cfg.unix_path = path;
  vigil_server_t *s;
  REQUIRE(start(&s, &cfg) == 0, "start");
  pthread_t th;
  struct delayed d = {s, 200};
  REQUIRE(pthread_create(&th, NULL, shutdown_later, &d) == 0, "thread");
  char *argv[] = {(char *)self_exe, "--successor", "600", NULL};
  int pid = 0;
  int r = vigil_server_handover(s, self_exe, argv, 5000, &pid);
  CHECK_EQ_INT(r, 0);
  pthread_join(th, NULL);
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  vigil_server_free(s);
  if (r == 0) tc_child_pid = pid;
  struct stat st;
  CHECK(lstat(path, &st) == 0, "the successor's socket file was removed");
  CHECK(unix_get(path, body, sizeof body) && body[0] == 'B', "successor on the path: '%s'", body);
  if (r == 0) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    tc_child_pid = 0;
  }
  unlink(path);

  /* the hand-over fails after the shutdown began: the file goes after all */
  REQUIRE(start(&s, &cfg) == 0, "start");
  d.s = s;
  d.ms = 100;
  REQUIRE(pthread_create(&th, NULL, shutdown_later, &d) == 0, "thread");
  char *sleeper[] = {"sleep", "5", NULL};
  CHECK_EQ_INT(vigil_server_handover(s, "/bin/sleep", sleeper, 400, NULL), -ETIMEDOUT);
  pthread_join(th, NULL);
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  vigil_server_free(s);
  CHECK(lstat(path, &st) != 0, "socket file left after a failed hand-over");
  unlink(path);
}

/* ------------------------------------------------------------------ */
/* R1: a successor that forks and exits */

static void t_forking_successor(void) {
  vigil_config_t cfg;
  tcp_config(&cfg);
  vigil_server_t *s;
  REQUIRE(start(&s, &cfg) == 0, "start");
  int port = vigil_server_port(s);
  char *argv[] = {"sh", "-c", "sleep 4 & exit 1", NULL};
  uint64_t t0 = tc_now_ms();
  CHECK_EQ_INT(vigil_server_handover(s, "/bin/sh", argv, 3000, NULL), -ECHILD);
  uint64_t dt = tc_now_ms() - t0;
  CHECK(dt < 1500, "its exit noticed after %llu ms (the timeout: 3000)", (unsigned long long)dt);
  /* one that forks and never gets ready: killed with what it started */
  char *argv2[] = {"sh", "-c", "sleep 4 & sleep 4", NULL};
  CHECK_EQ_INT(vigil_server_handover(s, "/bin/sh", argv2, 300, NULL), -ETIMEDOUT);
  stop(s);
  /* Nobody holds the listening socket any more. SIGKILL is delivered
   * asynchronously: the killed processes let go of the socket when they
   * are gone, a moment later on a loaded machine (2 s bound). */
  int connected = 1;
  for (uint64_t t1 = tc_now_ms(); connected && tc_now_ms() - t1 < 2000;) {
    tc_client_t c;
    connected = tc_connect(&c, port) == 0;
    if (connected) {
      tc_close(&c);
      tc_sleep_ms(20);
    }
  }
  CHECK(!connected, "a connection was accepted 2 s after the server stopped: a "
        "descendant of the failed successor holds the socket");
}

/* ------------------------------------------------------------------ */
/* R2: the child runs none of the parent's signal handlers */

static vigil_server_t *sig_server;
static pid_t sig_main;
static void on_usr1(int sig) {
  (void)sig;
  if (getpid() != sig_main) vigil_server_shutdown(sig_server, 0);
}

static int child_signals(void) {
  sig_main = getpid();
  setpgid(0, 0); /* a group of our own: the spammer signals it whole */
  vigil_config_t cfg;
  tcp_config(&cfg);
  if (start(&sig_server, &cfg) != 0) return 10;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  pid_t spam = fork();
  if (spam == 0) {
    signal(SIGUSR1, SIG_IGN);
    for (;;) kill(-sig_main, SIGUSR1);
  }
  int r = -ECHILD, i;
  for (i = 0; i < 300 && r == -ECHILD; i++)
    r = vigil_server_handover(sig_server, "/bin/true", NULL, 2000, NULL);
  kill(spam, SIGKILL);
  waitpid(spam, NULL, 0);
  stop(sig_server);
  if (r != -ECHILD) fprintf(stderr, "hand-over %d returned %d\n", i, r);
  return r == -ECHILD ? 0 : 11;
}

static void t_child_signals(void) {
  CHECK_EQ_INT(in_child(child_signals, 25), 0);
}

/* ------------------------------------------------------------------ */
/* R3: a response under way when the shutdown begins */

static void t_drain_response_in_flight(void) {
  vigil_config_t cfg;
  tcp_config(&cfg);
  cfg.shutdown_idle_ms = 1000;
  vigil_server_t *s;
  REQUIRE(start(&s, &cfg) == 0, "start");
  tc_client_t c;
  REQUIRE(tc_connect(&c, vigil_server_port(s)) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  tc_sleep_ms(100); /* the head is out, keep-alive */
  CHECK_EQ_INT(vigil_server_shutdown(s, 5000), 0);
  tc_resp_t r;
  int rr = tc_read_response(&c, &r, 3000);
  CHECK(rr == 0 && r.status == 200, "the response in flight: %d", rr);
  if (rr == 0) tc_resp_free(&r);
  /* the client's next request, sent right after that response */
  rr = tc_send_str(&c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 0 ? tc_read_response(&c, &r, 3000) : -1;
  CHECK(rr == 0 && r.status == 200, "the next request failed: %d", rr);
  CHECK(rr == 0 && tc_resp_has(&r, "Connection", "close"), "no Connection: close");
  if (rr == 0) tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 2000), "not closed after");
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  vigil_server_free(s);
  tc_close(&c);

  /* and one that brings nothing more is closed after shutdown_idle_ms */
  cfg.shutdown_idle_ms = 300;
  REQUIRE(start(&s, &cfg) == 0, "start");
  REQUIRE(tc_connect(&c, vigil_server_port(s)) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n") == 0, "send");
  tc_sleep_ms(100);
  CHECK_EQ_INT(vigil_server_shutdown(s, 5000), 0);
  rr = tc_read_response(&c, &r, 3000);
  CHECK(rr == 0 && r.status == 200, "the response in flight: %d", rr);
  if (rr == 0) tc_resp_free(&r);
  CHECK(tc_wait_closed(&c, 2000), "not closed after shutdown_idle_ms");
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  vigil_server_free(s);
  tc_close(&c);
}

/* ------------------------------------------------------------------ */
/* M1: shutdown_idle_ms counts from when the connection became idle */

static void t_drain_idle_since(void) {
  vigil_config_t cfg;
  tcp_config(&cfg);
  cfg.shutdown_idle_ms = 800;
  vigil_server_t *s;
  REQUIRE(start(&s, &cfg) == 0, "start");
  int port = vigil_server_port(s);
  tc_client_t early, late;
  REQUIRE(tc_connect(&early, port) == 0 && tc_connect(&late, port) == 0, "connect");
  tc_resp_t r;
  REQUIRE(tc_send_str(&early, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
              tc_read_response(&early, &r, 2000) == 0, "request");
  tc_resp_free(&r);
  tc_sleep_ms(600);
  REQUIRE(tc_send_str(&late, "GET / HTTP/1.1\r\nHost: t\r\n\r\n") == 0 &&
              tc_read_response(&late, &r, 2000) == 0, "request");
  tc_resp_free(&r);
  uint64_t t0 = tc_now_ms();
  CHECK_EQ_INT(vigil_server_shutdown(s, 5000), 0);
  /* `early` was idle 600 of its 800 ms: closed about 200 ms in */
  CHECK(tc_wait_closed(&early, 2000), "early not closed");
  uint64_t dt = tc_now_ms() - t0;
  CHECK(dt < 700, "closed %llu ms after the shutdown, idle %llu ms in all (shutdown_idle_ms 800)",
        (unsigned long long)dt, (unsigned long long)dt + 600);
  /* `late`, idle since just before the shutdown, about 800 ms in */
  dt = tc_now_ms() - t0;
  if (dt < 650)
    CHECK(tc_still_open(&late, (int)(650 - dt)), "late closed before its shutdown_idle_ms");
  CHECK(tc_wait_closed(&late, 2000), "late not closed");
  CHECK_EQ_INT(vigil_server_wait(s), 0);
  vigil_server_free(s);
  tc_close(&early);
  tc_close(&late);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--successor") == 0)
    return successor(argc > 2 ? (unsigned)atoi(argv[2]) : 0);
  tc_init();
  static char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  self_exe = n > 0 ? (exe[n] = '\0', exe) : argv[0];
  snprintf(tmpdir, sizeof tmpdir, "/tmp/vigil-restart-XXXXXX");
  if (mkdtemp(tmpdir) == NULL) return 1;
  RUN(t_no_environ, "hand-over with no environment (clearenv): no crash");
  RUN(t_unix_race, "two servers racing for one Unix path: exactly one starts");
  RUN(t_unix_symlink, "a symlink at the Unix path: refused, its target's mode untouched");
  RUN(t_shutdown_during_handover, "shutdown during a hand-over keeps the successor's socket file");
  RUN(t_forking_successor, "a successor that forks and exits: noticed at once, its children killed");
  RUN(t_child_signals, "the parent's signal handlers never run in the hand-over's child");
  RUN(t_drain_response_in_flight, "drain: a connection whose response was under way may bring one more request");
  RUN(t_drain_idle_since, "drain: shutdown_idle_ms counted from when the connection became idle");
  rmdir(tmpdir);
  return tc_summary();
}
