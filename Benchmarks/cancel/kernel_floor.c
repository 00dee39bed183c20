/*
 * kernel_floor.c - what the kernel alone takes to tell a server that its
 * client closed: the floor under every "FIN/RST -> handler" figure.
 *
 * One process, two threads over 127.0.0.1. Per round the client thread
 * connects, sends a request line, waits until the server thread has read it
 * plus 5 ms, takes CLOCK_REALTIME and closes (FIN, or RST with --rst). The
 * server thread, in epoll_wait (blocking, or spinning with timeout 0 with
 * --spin), records CLOCK_REALTIME when its read returns EOF or an error.
 * Prints p50/p99/max of the difference over --rounds (default 200, at most
 * 10 000), nearest rank as cancel_latency computes them, and a line
 *   RESULT mode=fin rounds=N observed=N p50_us=... p99_us=... max_us=...
 * in cancel_latency's format, which run.sh reads for the floor row.
 *
 *   cc -O2 -pthread -o kernel_floor kernel_floor.c
 *   kernel_floor [--spin] [--rst] [--rounds N]
 *
 * Every wait is bounded (2 s per step); exits 1 on any failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 10000
#define STEP_LIMIT_NS 2000000000LL

static int listen_fd, spin;
static _Atomic int64_t t_seen;
static _Atomic int request_read;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void fail(const char *what) {
  perror(what);
  exit(1);
}

static void *server(void *arg) {
  (void)arg;
  int ep = epoll_create1(0);
  if (ep < 0) fail("epoll_create1");
  for (;;) {
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0) break; /* the listener closed: done */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) fail("epoll_ctl");
    int64_t deadline = now_ns() + 3 * STEP_LIMIT_NS;
    while (now_ns() < deadline) {
      struct epoll_event e;
      int n = epoll_wait(ep, &e, 1, spin ? 0 : 100);
      if (n <= 0) continue;
      char buf[256];
      ssize_t r = read(fd, buf, sizeof buf);
      if (r > 0) {
        atomic_store(&request_read, 1);
        continue;
      }
      atomic_store(&t_seen, now_ns()); /* EOF (FIN) or an error (RST) */
      break;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
  }
  close(ep);
  return NULL;
}

static int wait_flag(_Atomic int *flag) {
  int64_t deadline = now_ns() + STEP_LIMIT_NS;
  while (!atomic_load(flag))
    if (now_ns() > deadline) return -1;
    else usleep(100);
  return 0;
}

/* The nearest-rank percentile of sorted[0..n), as cancel_latency.c. */
static int64_t nearest_rank(const int64_t *sorted, int n, double p) {
  int rank = (int)(p * n + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int rst = 0, rounds = 200;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--spin")) spin = 1;
    else if (!strcmp(argv[i], "--rst")) rst = 1;
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: kernel_floor [--spin] [--rst] [--rounds N (1..%d)]\n", MAX_ROUNDS);
      return 2;
    }
  }
  if (rounds < 1 || rounds > MAX_ROUNDS) {
    fprintf(stderr, "kernel_floor: --rounds must be 1..%d\n", MAX_ROUNDS);
    return 2;
  }
  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  if (listen_fd < 0) fail("socket");
  struct sockaddr_in sa = {.sin_family = AF_INET};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t sl = sizeof sa;
  if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(listen_fd, 16) != 0 ||
      getsockname(listen_fd, (struct sockaddr *)&sa, &sl) != 0)
    fail("listen");
  pthread_t th;
  if (pthread_create(&th, NULL, server, NULL) != 0) fail("pthread_create");

  static int64_t d[MAX_ROUNDS];
  for (int i = 0; i < rounds; i++) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof sa) != 0) fail("connect");
    atomic_store(&request_read, 0);
    atomic_store(&t_seen, 0);
    static const char req[] = "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n";
    if (write(c, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) fail("write");
    if (wait_flag(&request_read) != 0) { fprintf(stderr, "server never read\n"); return 1; }
    usleep(5000);
    if (rst) {
      struct linger l = {1, 0};
      setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    int64_t t0 = now_ns();
    close(c);
    int64_t deadline = now_ns() + STEP_LIMIT_NS;
    while (atomic_load(&t_seen) == 0)
      if (now_ns() > deadline) { fprintf(stderr, "close never seen\n"); return 1; }
      else usleep(50);
    d[i] = atomic_load(&t_seen) - t0;
  }
  shutdown(listen_fd, SHUT_RDWR); /* accept fails: the server thread ends */
  close(listen_fd);
  pthread_join(th, NULL);
  qsort(d, (size_t)rounds, sizeof d[0], cmp);
  double p50 = nearest_rank(d, rounds, 0.50) / 1000.0, p99 = nearest_rank(d, rounds, 0.99) / 1000.0,
         max = d[rounds - 1] / 1000.0;
  printf("kernel floor (%s, server %s): p50 %.1f us, p99 %.1f us, max %.1f us over %d rounds\n",
         rst ? "RST" : "FIN", spin ? "spinning" : "blocking", p50, p99, max, rounds);
  printf("RESULT mode=%s rounds=%d observed=%d p50_us=%.1f p99_us=%.1f max_us=%.1f\n",
         rst ? "rst" : "fin", rounds, rounds, p50, p99, max);
  return 0;
}
