/*
 * test_phase.c - the connection's state machine checks itself: a phase
 * change that conn.c's transition table does not allow aborts a debug build
 * (VIGIL_DEBUG), and one it allows goes on.
 *
 * Death tests: each case forks a child that starts a server, sends it one
 * GET over loopback, and in on_request (the loop thread; the connection in
 * PHASE_RESPONDING, the request read whole) moves the connection through
 * vigil__conn_phase, the one writer of conn->phase. The parent expects the
 * child to die of SIGABRT with the table's check on its stderr, or, for an
 * allowed change, to answer and exit 0. Calls the core's internals, so
 * mk/c.mk builds it against the debug (ASan) objects only.
 */
#include <vigil.h>

#include "vigil_internal.h"

#include <sys/wait.h>

#include "tc.h"

#define NO_PHASE (-1)

/* The child's script, set before the fork. */
static int first_to, then_to;
static atomic_int saw_responding;

static void on_request(vigil_request_t *req, void *ud) {
  (void)ud;
  vigil_conn_t *c = req->conn;
  atomic_store(&saw_responding, c != NULL && c->phase == PHASE_RESPONDING);
  if (c != NULL) {
    vigil__conn_phase(c, (vigil_phase_t)first_to);
    if (then_to != NO_PHASE) vigil__conn_phase(c, (vigil_phase_t)then_to);
  }
  vigil_response_send(req, 200, NULL, 0, "ok", 2);
  vigil_request_finish(req);
}

/* The child: serve one request; exit 0 if it was answered 200 and the
 * phase seen in on_request was RESPONDING, 5 if not. Every wait bounded. */
static void child_main(void) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.on_request = on_request;
  vigil_server_t *s = NULL;
  int port = tc_server_start(&s, &cfg);
  if (port < 0) _exit(6);
  tc_client_t cl;
  tc_resp_t r;
  memset(&r, 0, sizeof r);
  int ok = tc_connect(&cl, port) == 0 &&
           tc_send_str(&cl, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 0 &&
           tc_read_response(&cl, &r, 3000) == 0 && r.status == 200;
  tc_resp_free(&r);
  tc_close(&cl);
  vigil_server_free(s);
  exit(ok && atomic_load(&saw_responding) ? 0 : 5);
}

typedef struct {
  int signaled, sig, exited, code;
  char err[4096]; /* the child's stderr, NUL-terminated */
} outcome_t;

/* Run the child with phase changes `first` then `then`; 0 or -1 if it
 * could not be run or did not end within 15 s (then killed). */
static int run_child(int first, int then, outcome_t *o) {
  memset(o, 0, sizeof *o);
  int p[2];
  if (pipe(p) != 0) return -1;
  first_to = first;
  then_to = then;
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], 2);
    child_main();
  }
  close(p[1]);
  tc_child_pid = pid; /* the watchdog kills it if we hang */
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  size_t n = 0;
  int status = 0, done = 0;
  uint64_t end = tc_now_ms() + 15000;
  while (!done && tc_now_ms() < end) {
    ssize_t k;
    while (n < sizeof o->err - 1 &&
           (k = read(p[0], o->err + n, sizeof o->err - 1 - n)) > 0)
      n += (size_t)k;
    done = waitpid(pid, &status, WNOHANG) == pid;
    if (!done) tc_sleep_ms(5);
  }
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  ssize_t k;
  while (n < sizeof o->err - 1 && (k = read(p[0], o->err + n, sizeof o->err - 1 - n)) > 0)
    n += (size_t)k;
  o->err[n] = '\0';
  close(p[0]);
  tc_child_pid = 0;
  if (!done) return -1;
  o->signaled = WIFSIGNALED(status);
  o->sig = o->signaled ? WTERMSIG(status) : 0;
  o->exited = WIFEXITED(status);
  o->code = o->exited ? WEXITSTATUS(status) : -1;
  return 0;
}

static void expect_abort(int first, int then) {
  outcome_t o;
  REQUIRE(run_child(first, then, &o) == 0, "child did not run or did not end in 15 s");
  CHECK(o.signaled && o.sig == SIGABRT,
        "child was not aborted: %s %d (a release build? VIGIL_DEBUG off?)",
        o.signaled ? "killed by signal" : "exited with status",
        o.signaled ? o.sig : o.code);
  /* The abort is the table's check, not any other. */
  CHECK(strstr(o.err, "invariant failed: phase_allowed(c->phase, to)") != NULL,
        "child's stderr: %s", o.err);
}

static void expect_no_abort(int first, int then) {
  outcome_t o;
  REQUIRE(run_child(first, then, &o) == 0, "child did not run or did not end in 15 s");
  CHECK(o.exited && o.code == 0, "child %s %d; stderr: %s",
        o.signaled ? "killed by signal" : "exited with status",
        o.signaled ? o.sig : o.code, o.err);
  CHECK(strstr(o.err, "invariant failed") == NULL, "child's stderr: %s", o.err);
}

/* RESPONDING -> CLOSING is allowed (the last response, then close): the
 * response still goes out and the child exits 0. */
static void t_allowed(void) { expect_no_abort(PHASE_CLOSING, NO_PHASE); }

/* RESPONDING -> DRAIN: draining starts only from a body phase. */
static void t_responding_to_drain(void) { expect_abort(PHASE_DRAIN, NO_PHASE); }

/* RESPONDING -> BODY: the body is read whole once RESPONDING. */
static void t_responding_to_body(void) { expect_abort(PHASE_BODY, NO_PHASE); }

/* PROXY is only ever a connection's first phase: RESPONDING -> PROXY
 * (a second PROXY header read mid-connection) aborts. */
static void t_responding_to_proxy(void) { expect_abort(PHASE_PROXY, NO_PHASE); }

/* CLOSING is the last phase: CLOSING -> HEAD aborts. */
static void t_closing_to_head(void) { expect_abort(PHASE_CLOSING, PHASE_HEAD); }

int main(void) {
  tc_init();
  RUN(t_allowed, "an allowed phase change (RESPONDING -> CLOSING) does not abort; the answer goes out");
  RUN(t_responding_to_drain, "RESPONDING -> DRAIN aborts a debug build");
  RUN(t_responding_to_body, "RESPONDING -> BODY aborts a debug build");
  RUN(t_responding_to_proxy, "RESPONDING -> PROXY aborts a debug build");
  RUN(t_closing_to_head, "CLOSING -> HEAD aborts a debug build");
  return tc_summary();
}
