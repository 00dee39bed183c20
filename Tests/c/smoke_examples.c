/*
 * smoke_examples.c - start each example binary on a free port, talk to it,
 * stop it with SIGTERM, and expect exit status 0.
 *
 *   smoke_examples hello=PATH worker=PATH echo=PATH lines=PATH [hello=PATH ...]
 *
 * The kind before '=' says which checks to run (hello: GET /, 404;
 * worker: work answered from the worker thread, a cancelled request, a
 * request in flight during SIGTERM; echo: Content-Length and chunked
 * bodies streamed back; lines: a hijacked line-echo session). Each example prints "...listening on
 * http://127.0.0.1:PORT..." first; it is started with port 0.
 */
#include "tc.h"

#include <sys/wait.h>

typedef struct {
  pid_t pid;
  int out;    /* its stdout */
  int err;    /* its stderr */
  int port;
} child_t;

static int spawn(child_t *ch, const char *path, int dashdash_port) {
  int o[2], e[2];
  memset(ch, 0, sizeof *ch);
  if (pipe(o) != 0 || pipe(e) != 0) return -1;
  ch->pid = fork();
  if (ch->pid < 0) return -1;
  if (ch->pid == 0) {
    dup2(o[1], 1);
    dup2(e[1], 2);
    close(o[0]);
    close(o[1]);
    close(e[0]);
    close(e[1]);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    if (dashdash_port)
      execl(path, path, "--host", "127.0.0.1", "--port", "0", (char *)NULL);
    else
      execl(path, path, "0", (char *)NULL);
    _exit(127);
  }
  tc_child_pid = ch->pid;
  close(o[1]);
  close(e[1]);
  ch->out = o[0];
  ch->err = e[0];
  /* the first line says the port */
  char line[512];
  size_t n = 0;
  uint64_t end = tc_now_ms() + 5000;
  while (n < sizeof line - 1 && tc_now_ms() < end) {
    struct pollfd p = {ch->out, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    ssize_t r = read(ch->out, line + n, 1);
    if (r <= 0) break;
    if (line[n++] == '\n') break;
  }
  line[n] = '\0';
  const char *at = strstr(line, "127.0.0.1:");
  if (at == NULL) {
    tc_note("%s printed no port: '%s'", path, line);
    return -1;
  }
  ch->port = atoi(at + 10);
  return ch->port > 0 ? 0 : -1;
}

/* SIGTERM, then the exit status within 5 s (-1: still running, killed). */
static int stop(child_t *ch) {
  kill(ch->pid, SIGTERM);
  int st = 0;
  uint64_t end = tc_now_ms() + 5000;
  pid_t w;
  while ((w = waitpid(ch->pid, &st, WNOHANG)) == 0 && tc_now_ms() < end) tc_sleep_ms(5);
  if (w == 0) {
    kill(ch->pid, SIGKILL);
    waitpid(ch->pid, &st, 0);
    tc_child_pid = 0;
    return -1;
  }
  tc_child_pid = 0;
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return WEXITSTATUS(st);
}

static void drain_stderr(child_t *ch, tc_buf_t *into) {
  char buf[4096];
  for (;;) {
    struct pollfd p = {ch->err, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) break;
    ssize_t r = read(ch->err, buf, sizeof buf);
    if (r <= 0) break;
    tc_buf_add(into, buf, (size_t)r);
  }
}

static int get(int port, const char *req, int status, const char *body) {
  tc_resp_t r;
  int ok = tc_roundtrip(port, req, &r) == 0;
  if (!ok) {
    tc_note("no response to: %.40s", req);
  } else if (r.status != status || (body && (r.body.len != strlen(body) ||
                                              memcmp(r.body.p, body, r.body.len) != 0))) {
    tc_note("%.30s: status %d body '%.60s'", req, r.status, r.body.p ? r.body.p : "");
    ok = 0;
  }
  tc_resp_free(&r);
  return ok;
}

static child_t ch;
static const char *cur_path;
static const char *cur_kind;

static void t_hello(void) {
  CHECK(get(ch.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200, "Hello, World!"), "GET /");
  CHECK(get(ch.port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, NULL), "GET /nope");
  /* keep-alive and pipelining */
  tc_client_t c;
  REQUIRE(tc_connect(&c, ch.port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n") == 0,
          "send");
  for (int i = 0; i < 2; i++) {
    tc_resp_t r;
    CHECK(tc_read_response(&c, &r, 3000) == 0 && r.status == 200, "pipelined %d", i);
    tc_resp_free(&r);
  }
  tc_close(&c);
}

static void t_worker(void) {
  CHECK(get(ch.port, "GET /work?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n", 200, "work done after 50 ms\n"),
        "GET /work?ms=50");
  /* a client that leaves: the worker stops and says why */
  tc_client_t c;
  REQUIRE(tc_connect(&c, ch.port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /work?ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n") == 0, "send");
  tc_sleep_ms(50);
  tc_close_rst(&c);
  tc_buf_t err = {0};
  int seen = TC_WAIT_UNTIL((drain_stderr(&ch, &err), err.p && strstr(err.p, "cancelled") &&
                            strstr(err.p, "reset")), 3000);
  CHECK(seen, "the worker did not report the cancellation: '%s'", err.p ? err.p : "");
  tc_buf_free(&err);
  /* still serving */
  CHECK(get(ch.port, "GET /work?ms=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200, "work done after 1 ms\n"),
        "GET after the cancellation");
}

static void t_echo(void) {
  CHECK(get(ch.port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello echo", 200,
            "hello echo"), "Content-Length body");
  CHECK(get(ch.port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "4\r\nchun\r\n3\r\nked\r\n0\r\n\r\n", 200, "chunked"), "chunked body");
  CHECK(get(ch.port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 200, ""),
        "empty body");
  CHECK(get(ch.port, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 405, NULL), "GET /echo");
  /* 100-continue, as curl does for large uploads */
  tc_client_t c;
  REQUIRE(tc_connect(&c, ch.port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                          "Expect: 100-continue\r\n\r\n") == 0, "send");
  tc_resp_t r;
  CHECK(tc_read_response_ex(&c, &r, 3000, 0, 1) == 0 && r.status == 100, "no 100 Continue");
  tc_resp_free(&r);
  tc_send_str(&c, "abc");
  CHECK(tc_read_response(&c, &r, 3000) == 0 && r.status == 200 && r.body.len == 3,
        "no echo after 100 Continue");
  tc_resp_free(&r);
  tc_close(&c);
}

static void t_lines(void) {
  CHECK(get(ch.port, "GET /lines HTTP/1.1\r\nHost: x\r\n\r\n", 426, NULL), "no Upgrade: 426");
  tc_client_t c;
  REQUIRE(tc_connect(&c, ch.port) == 0, "connect");
  REQUIRE(tc_send_str(&c, "GET /lines HTTP/1.1\r\nHost: x\r\nUpgrade: lines\r\n"
                          "Connection: Upgrade\r\n\r\nhi\n") == 0, "send");
  tc_resp_t r;
  CHECK(tc_read_response_ex(&c, &r, 3000, 1, 1) == 0 && r.status == 101, "no 101");
  tc_resp_free(&r);
  tc_send_str(&c, "there\nquit\n");
  CHECK(tc_wait_closed(&c, 3000), "not closed after quit");
  CHECK(tc_find(&c.in, 0, "> hi\n> there\nbye\n") >= 0, "session: '%s'", c.in.p ? c.in.p : "");
  CHECK(tc_find(&c.in, 0, "HTTP/") < 0, "HTTP after the session: '%s'", c.in.p ? c.in.p : "");
  tc_close(&c);
}

/* A request in flight when SIGTERM arrives is answered (grace period). */
static tc_client_t inflight;
static int inflight_ok;

static void t_stop(void) {
  if (strcmp(cur_kind, "worker") == 0) {
    inflight_ok = tc_connect(&inflight, ch.port) == 0 &&
                  tc_send_str(&inflight, "GET /work?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n") == 0;
    tc_sleep_ms(50);
  }
  int st = stop(&ch);
  CHECK(st == 0, "%s: exit status %d after SIGTERM", cur_path, st);
  if (strcmp(cur_kind, "worker") == 0) {
    tc_resp_t r;
    CHECK(inflight_ok && tc_read_response(&inflight, &r, 3000) == 0 && r.status == 200,
          "the request in flight at SIGTERM was not answered");
    tc_resp_free(&r);
    tc_close(&inflight);
  }
  tc_buf_t err = {0};
  drain_stderr(&ch, &err);
  if (err.len) tc_note("stderr: %s", err.p);
  tc_buf_free(&err);
  close(ch.out);
  close(ch.err);
}

int main(int argc, char **argv) {
  tc_init();
  for (int i = 1; i < argc; i++) {
    static char name[512];
    char *eq = strchr(argv[i], '=');
    if (eq == NULL) {
      fprintf(stderr, "usage: %s kind=PATH ...\n", argv[0]);
      return 2;
    }
    *eq = '\0';
    cur_kind = argv[i];
    cur_path = eq + 1;
    const char *base = strrchr(cur_path, '/');
    base = base ? base + 1 : cur_path;
    void (*fn)(void) = strcmp(cur_kind, "hello") == 0    ? t_hello
                       : strcmp(cur_kind, "worker") == 0 ? t_worker
                       : strcmp(cur_kind, "echo") == 0   ? t_echo
                       : strcmp(cur_kind, "lines") == 0  ? t_lines
                                                         : NULL;
    if (fn == NULL) {
      fprintf(stderr, "unknown kind %s\n", cur_kind);
      return 2;
    }
    tc_begin(name);
    snprintf(name, sizeof name, "example %s starts and prints its port", base);
    int started = spawn(&ch, cur_path, strcmp(cur_kind, "hello") == 0) == 0;
    if (!started) {
      tc_fail_at(__FILE__, __LINE__, "could not start %s", cur_path);
      if (ch.pid > 0) stop(&ch);
    }
    tc_end();
    if (!started) continue;
    snprintf(name, sizeof name, "example %s answers (%s checks)", base, cur_kind);
    RUN(fn, name);
    snprintf(name, sizeof name, "example %s stops on SIGTERM with exit status 0", base);
    RUN(t_stop, name);
  }
  return tc_summary();
}
