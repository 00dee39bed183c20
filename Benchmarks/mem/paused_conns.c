/*
 * paused_conns.c - what connections paused by backpressure cost a server
 * while nothing happens, and how fast a hang-up on one of them is seen.
 *
 * One process runs a Vigil server (one loop, read_buffer_limit 1024,
 * max_connections off) whose handler keeps each request and never reads its
 * body. A forked child opens N connections, each sending a POST head
 * announcing 100 000 body bytes and 4 KiB of them: more than the core reads
 * before it stops reading, so every connection is paused. Then:
 *   1. idle: the server process's CPU time (getrusage) over --idle-ms while
 *      nothing happens, as a percentage of one core;
 *   2. RST: the child resets one connection; the time until the server's
 *      on_request_done says "reset" (CLOCK_MONOTONIC, shared by both);
 *   3. FIN: the child half-closes another one; the time until "client
 *      closed" (half_close cancel mode).
 * The child then closes the rest and the server stops.
 *
 * A measurement, not a test: nothing is asserted. Raises RLIMIT_NOFILE
 * (each process needs N + a few descriptors). Every wait is bounded.
 *
 * Build (after `make test-c` or `make lib`):
 *   cc -O2 -pthread -I include -o .build-c/paused_conns \
 *      Benchmarks/mem/paused_conns.c .build-c/libvigil.a -luv -lpthread
 * Usage: .build-c/paused_conns [--conns 10000] [--idle-ms 5000]
 * Output: RESULT conns=N paused=P idle_cpu_pct=X rst_ms=Y fin_ms=Z
 */
#define _GNU_SOURCE
#include <vigil.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../bench_sock.h"

static atomic_int dispatched;
static atomic_int ended;
static _Atomic double end_at_ms; /* monotonic time of the last cancel */
static atomic_int end_reason;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double cpu_ms(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

static void on_request(vigil_request_t *req, void *ud) {
  (void)req;
  (void)ud;
  atomic_fetch_add(&dispatched, 1); /* kept: never read, never answered */
}

static void on_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  (void)ud;
  if (reason != VIGIL_REASON_HANDLER_FINISHED) {
    atomic_store(&end_at_ms, now_ms());
    atomic_store(&end_reason, (int)reason);
    atomic_fetch_add(&ended, 1);
    vigil_request_finish(req);
  }
}

/* The child: open n paused connections, then obey one-byte commands on
 * `cmd` ('r': reset #0, 'f': FIN #1, 'q': close all and exit), answering
 * each with the monotonic time it acted at. */
static int child(int port, int n, int cmd, int reply) {
  bs_raise_nofile();
  int *fds = calloc((size_t)n, sizeof *fds);
  char req[4096 + 128];
  int hl = snprintf(req, sizeof req,
                    "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
  memset(req + hl, 'b', 4096);
  size_t len = (size_t)hl + 4096;
  int opened = 0;
  for (int i = 0; i < n; i++) {
    int fd = bs_connect("127.0.0.1", port, 5000);
    if (fd < 0) break;
    if (bs_send_all(fd, req, len) != 0) {
      close(fd);
      break;
    }
    fds[opened++] = fd;
  }
  double t = opened;
  if (write(reply, &t, sizeof t) != sizeof t) return 1;
  for (;;) {
    char c;
    if (read(cmd, &c, 1) != 1) c = 'q';
    if (c == 'q') break;
    int i = c == 'r' ? 0 : 1;
    if (i >= opened) return 1;
    if (c == 'r') {
      struct linger l = {1, 0};
      setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof l);
      t = now_ms();
      close(fds[i]);
      fds[i] = -1;
    } else {
      t = now_ms();
      shutdown(fds[i], SHUT_WR);
    }
    if (write(reply, &t, sizeof t) != sizeof t) return 1;
  }
  for (int i = 0; i < opened; i++) {
    if (fds[i] < 0) continue;
    struct linger l = {1, 0};
    setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fds[i]);
  }
  return 0;
}

static int read_reply(int fd, double *t, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, ms) <= 0) return -1;
  return read(fd, t, sizeof *t) == sizeof *t ? 0 : -1;
}

/* Wait until `ended` reaches n (bounded); the latency from t0, or -1. */
static double wait_end(int n, double t0, vigil_reason_t want) {
  double limit = now_ms() + 3000;
  while (atomic_load(&ended) < n && now_ms() < limit) usleep(200);
  if (atomic_load(&ended) < n || atomic_load(&end_reason) != (int)want) return -1;
  return atomic_load(&end_at_ms) - t0;
}

int main(int argc, char **argv) {
  int conns = 10000, idle_ms = 5000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--conns") == 0) conns = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--idle-ms") == 0) idle_ms = atoi(argv[i + 1]);
  }
  bs_raise_nofile();
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.read_buffer_limit = 1024;
  cfg.max_connections = 0;
  cfg.idle_timeout_ms = 0;
  cfg.body_timeout_ms = 0;
  cfg.on_request = on_request;
  cfg.on_request_done = on_done;
  vigil_server_t *s;
  if (vigil_server_new(&s, &cfg) != 0 || vigil_server_start(s) != 0) {
    fprintf(stderr, "server start failed\n");
    return 1;
  }
  int port = vigil_server_port(s);
  int cmd[2], reply[2];
  if (pipe(cmd) != 0 || pipe(reply) != 0) return 1;
  pid_t pid = fork();
  if (pid == 0) _exit(child(port, conns, cmd[0], reply[1]));
  double opened = 0;
  if (read_reply(reply[0], &opened, 120000) != 0) {
    fprintf(stderr, "child did not open its connections\n");
    kill(pid, SIGKILL);
    return 1;
  }
  double limit = now_ms() + 30000;
  while (atomic_load(&dispatched) < (int)opened && now_ms() < limit) usleep(1000);
  usleep(500 * 1000); /* let every connection read to its limit and pause */

  double c0 = cpu_ms(), w0 = now_ms();
  usleep((useconds_t)idle_ms * 1000);
  double pct = 100.0 * (cpu_ms() - c0) / (now_ms() - w0);

  double t = 0, rst_ms = -1, fin_ms = -1;
  if (write(cmd[1], "r", 1) == 1 && read_reply(reply[0], &t, 3000) == 0)
    rst_ms = wait_end(1, t, VIGIL_REASON_RESET);
  if (write(cmd[1], "f", 1) == 1 && read_reply(reply[0], &t, 3000) == 0)
    fin_ms = wait_end(2, t, VIGIL_REASON_CLIENT_CLOSED);
  if (write(cmd[1], "q", 1) != 1) kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  vigil_server_shutdown(s, 0);
  vigil_server_wait(s);
  vigil_server_free(s);
  printf("%d connections opened, %d dispatched and paused; idle %.2f%% of a core over %d ms; "
         "RST seen in %.2f ms, FIN in %.2f ms\n",
         (int)opened, atomic_load(&dispatched), pct, idle_ms, rst_ms, fin_ms);
  printf("RESULT conns=%d paused=%d idle_cpu_pct=%.2f rst_ms=%.2f fin_ms=%.2f\n", (int)opened,
         atomic_load(&dispatched), pct, rst_ms, fin_ms);
  return 0;
}
