/*
 * streams.c - many long server-sent-event style streams: --conns N clients
 * each GET --path (default "/stream?n=1000000&ms=1000": a chunked response,
 * one "chunk i\n" event per second), and read everything. Measures the
 * server (--pid): CPU per event and RSS per stream.
 *
 *   1. VmRSS of the server before;
 *   2. connects N clients in batches of 64 (bs_connect: bounded) and sends
 *      each its request, then reads all of them (epoll, non-blocking),
 *      counting events: occurrences of "chunk " in the bytes (a match state
 *      per connection, so an event split across reads counts once);
 *   3. after --warmup-ms from the last connect: the server's CPU
 *      (utime + stime of /proc/PID/stat, all threads) and the event count;
 *      again after --measure-ms, with VmRSS;
 *   4. closes everything with RST (no 10k sockets left in TIME_WAIT).
 *
 * Output: a summary and one line
 *   RESULT conns=N ok=K events=E seconds=S events_per_s=.. cpu_s=..
 *          cpu_us_per_event=.. rss_before_kb=.. rss_kb=.. bytes_per_stream=..
 *          silent=Z closed_by_server=C
 * (ok: streams that connected and got their head; silent: of those, how
 * many got no event during the measured window). Raises its own
 * RLIMIT_NOFILE.
 *
 *   cc -O2 -o streams Benchmarks/streams/streams.c
 *   streams --port 8080 --pid PID [--conns 10000] [--warmup-ms 2500]
 *           [--measure-ms 5000] [--host 127.0.0.1] [--path /stream?...]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "../bench_sock.h"

typedef struct {
  int fd;
  int match;  /* bytes of "chunk " matched at the end of the last read */
  int head;   /* the response head arrived */
  int closed;
  long events;
  long events_at_start;
} conn_t;

static const char PAT[] = "chunk ";

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long rss_kb(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

/* utime + stime of every thread, in seconds. */
static double cpu_s(int pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long ut = 0, st = 0;
  /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void count(conn_t *c, const char *p, size_t n) {
  int m = c->match;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == PAT[m]) {
      if (++m == 6) {
        c->events++;
        m = 0;
      }
    } else {
      m = (p[i] == 'c') ? 1 : 0;
    }
  }
  c->match = m;
}

static int ep;
static conn_t *cs;
static long closed_by_server;

static void pump(int timeout_ms) {
  static char buf[65536];
  struct epoll_event evs[256];
  int n = epoll_wait(ep, evs, 256, timeout_ms);
  for (int k = 0; k < n; k++) {
    conn_t *c = &cs[evs[k].data.u32];
    for (;;) {
      ssize_t r = read(c->fd, buf, sizeof buf);
      if (r > 0) {
        if (!c->head && memmem(buf, (size_t)r, "\r\n\r\n", 4)) c->head = 1;
        count(c, buf, (size_t)r);
        if ((size_t)r < sizeof buf) break;
        continue;
      }
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (r < 0 && errno == EINTR) continue;
      c->closed = 1;
      closed_by_server++;
      epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
      break;
    }
  }
}

/* keeps reading for `ms` */
static void pump_for(long ms) {
  int64_t end = now_ms() + ms;
  for (int64_t t; (t = now_ms()) < end;) pump((int)(end - t));
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *path = "/stream?n=1000000&ms=1000";
  int port = 0, pid = 0, conns = 10000;
  long warmup_ms = 2500, measure_ms = 5000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
    else if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--pid") && i + 1 < argc) pid = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--conns") && i + 1 < argc) conns = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--warmup-ms") && i + 1 < argc) warmup_ms = atol(argv[++i]);
    else if (!strcmp(argv[i], "--measure-ms") && i + 1 < argc) measure_ms = atol(argv[++i]);
    else if (!strcmp(argv[i], "--path") && i + 1 < argc) path = argv[++i];
    else {
      fprintf(stderr, "usage: %s --port N --pid PID [--conns 10000] [--warmup-ms 2500] [--measure-ms 5000] [--host H] [--path P]\n", argv[0]);
      return 2;
    }
  }
  if (port <= 0 || pid <= 0 || conns <= 0) {
    printf("RESULT conns=%d error=usage\n", conns);
    return 2;
  }
  bs_raise_nofile();
  char req[512];
  int reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
  cs = calloc((size_t)conns, sizeof *cs);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (!cs || ep < 0) {
    printf("RESULT conns=%d error=setup\n", conns);
    return 1;
  }
  long rss0 = rss_kb(pid);
  int opened = 0;
  int64_t t_conn = now_ms();
  for (int i = 0; i < conns; i++) {
    int fd = bs_connect(host, port, 3000);
    if (fd < 0) break;
    if (bs_send_all(fd, req, (size_t)reqlen) != 0) {
      close(fd);
      break;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    cs[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    opened++;
    if (opened % 64 == 0) pump(0); /* keep up with what arrives */
  }
  long connect_ms = (long)(now_ms() - t_conn);
  pump_for(warmup_ms);
  long ev0 = 0;
  for (int i = 0; i < opened; i++) {
    cs[i].events_at_start = cs[i].events;
    ev0 += cs[i].events;
  }
  double cpu0 = cpu_s(pid);
  int64_t t0 = now_ms();
  pump_for(measure_ms);
  double cpu1 = cpu_s(pid);
  double secs = (double)(now_ms() - t0) / 1000.0;
  long rss1 = rss_kb(pid);
  long ev1 = 0, ok = 0, silent = 0;
  for (int i = 0; i < opened; i++) {
    ev1 += cs[i].events;
    if (cs[i].head) ok++;
    if (cs[i].head && cs[i].events == cs[i].events_at_start) silent++;
  }
  long events = ev1 - ev0;
  double cpu = cpu1 - cpu0;
  double per_event_us = events > 0 ? cpu * 1e6 / (double)events : -1;
  double per_stream = opened > 0 ? (double)(rss1 - rss0) * 1024.0 / opened : -1;
  /* RST: no TIME_WAIT */
  struct linger lg = {1, 0};
  for (int i = 0; i < opened; i++) {
    setsockopt(cs[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(cs[i].fd);
  }
  printf("%d of %d streams opened in %ld ms, %ld answered; %ld events in %.2f s (%.0f/s), "
         "server CPU %.2f s = %.2f µs per event; VmRSS %ld -> %ld kB = %.0f bytes per stream; "
         "%ld silent in the window, %ld closed by the server\n",
         opened, conns, connect_ms, ok, events, secs, events / secs, cpu, per_event_us, rss0, rss1,
         per_stream, silent, closed_by_server);
  printf("RESULT conns=%d ok=%ld events=%ld seconds=%.2f events_per_s=%.0f cpu_s=%.3f "
         "cpu_us_per_event=%.2f rss_before_kb=%ld rss_kb=%ld bytes_per_stream=%.0f silent=%ld "
         "closed_by_server=%ld\n",
         opened, ok, events, secs, events / secs, cpu, per_event_us, rss0, rss1, per_stream, silent,
         closed_by_server);
  return 0;
}
