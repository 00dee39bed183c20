/*
 * latency.c - an open-loop, rate-limited HTTP/1.1 load client (what wrk2
 * does; Debian has no wrk2): latency percentiles at a fixed offered load.
 *
 * --conns C keep-alive connections share --rate R requests per second:
 * connection i sends its k-th request at t0 + (i + k*C) / R, one request in
 * flight per connection. A request whose time comes while the previous one
 * on its connection is still unanswered is sent as soon as that answer is
 * in, and its latency is still counted from its *scheduled* time, so a
 * server that stalls is charged for every request it delayed (no
 * coordinated omission). The first --warmup-ms are not counted.
 *
 * A response is complete when its head ("\r\n\r\n") and Content-Length
 * bytes of body are in (the servers answer GET / with a Content-Length).
 *
 * One thread, epoll, a timerfd for the next send time. Everything bounded:
 * connects and sends have timeouts (bs_connect), the run lasts --duration-ms
 * plus at most 2 s for the answers still owed, which then count as lost.
 *
 * Output: the percentiles in µs (sorted array of every latency, nearest
 * rank) and one line
 *   RESULT rate=R achieved=A count=N p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. lost=L errors=E
 *
 *   cc -O2 -o latency Benchmarks/latency/latency.c
 *   latency --port 8080 --rate 20000 [--conns 64] [--duration-ms 5000]
 *           [--warmup-ms 1000] [--host 127.0.0.1] [--path /]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include "../bench_sock.h"

typedef struct {
  int fd;
  int inflight;
  int dead;
  int64_t sched;     /* scheduled time of the request in flight */
  int64_t next;      /* scheduled time of the next request */
  char buf[4096];
  size_t len;
} conn_t;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int64_t *lat;
static size_t nlat, caplat;
static long lost, errors;
static char request[512];
static size_t request_len;

/* The length of the first complete response in c->buf, or 0. */
static size_t complete(conn_t *c) {
  char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
  if (!end) return 0;
  size_t head = (size_t)(end - c->buf) + 4;
  long body = 0;
  for (char *p = c->buf; p + 15 < end; p++) {
    if ((p == c->buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
      body = strtol(p + 15, NULL, 10);
      break;
    }
  }
  if (c->len < head + (size_t)body) return 0;
  return head + (size_t)body;
}

static void send_req(conn_t *c, int64_t sched) {
  c->sched = sched;
  c->inflight = 1;
  if (bs_send_all(c->fd, request, request_len) != 0) {
    c->dead = 1;
    c->inflight = 0;
    errors++;
  }
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *path = "/";
  int port = 0, conns = 64;
  double rate = 0;
  long duration_ms = 5000, warmup_ms = 1000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
    else if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rate") && i + 1 < argc) rate = atof(argv[++i]);
    else if (!strcmp(argv[i], "--conns") && i + 1 < argc) conns = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--duration-ms") && i + 1 < argc) duration_ms = atol(argv[++i]);
    else if (!strcmp(argv[i], "--warmup-ms") && i + 1 < argc) warmup_ms = atol(argv[++i]);
    else if (!strcmp(argv[i], "--path") && i + 1 < argc) path = argv[++i];
    else {
      fprintf(stderr, "usage: %s --port N --rate R [--conns 64] [--duration-ms 5000] [--warmup-ms 1000] [--host H] [--path /]\n", argv[0]);
      return 2;
    }
  }
  if (port <= 0 || rate <= 0 || conns <= 0 || duration_ms <= 0) {
    fprintf(stderr, "latency: --port and --rate are required\n");
    printf("RESULT rate=%.0f error=usage\n", rate);
    return 2;
  }
  request_len = (size_t)snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
  caplat = (size_t)(rate * (duration_ms + 3000) / 1000.0) + 1024;
  lat = malloc(caplat * sizeof *lat);
  conn_t *cs = calloc((size_t)conns, sizeof *cs);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (!lat || !cs || ep < 0 || tfd < 0) {
    printf("RESULT rate=%.0f error=setup\n", rate);
    return 1;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)-1};
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
  for (int i = 0; i < conns; i++) {
    cs[i].fd = bs_connect(host, port, 2000);
    if (cs[i].fd < 0) {
      printf("RESULT rate=%.0f error=connect\n", rate);
      return 1;
    }
    fcntl(cs[i].fd, F_SETFL, fcntl(cs[i].fd, F_GETFL) | O_NONBLOCK);
    ev.events = EPOLLIN;
    ev.data.u64 = (uint64_t)i;
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  const int64_t interval = (int64_t)(1e9 * conns / rate); /* per connection */
  const int64_t t0 = now_ns() + 1000000;
  const int64_t measure_from = t0 + warmup_ms * 1000000;
  const int64_t stop_at = t0 + duration_ms * 1000000;
  const int64_t give_up = stop_at + 2000000000LL;
  for (int i = 0; i < conns; i++) cs[i].next = t0 + (int64_t)(1e9 * i / rate);
  long sent_measured = 0;

  for (;;) {
    int64_t now = now_ns();
    /* send what is due; find the next due time */
    int64_t due = INT64_MAX;
    int busy = 0;
    for (int i = 0; i < conns; i++) {
      conn_t *c = &cs[i];
      if (c->dead) continue;
      if (c->inflight) busy++;
      if (c->next >= stop_at) continue;
      if (!c->inflight && c->next <= now) {
        if (c->next >= measure_from) sent_measured++;
        send_req(c, c->next);
        c->next += interval;
        if (c->inflight) busy++;
      }
      if (!c->inflight && c->next < due) due = c->next;
    }
    if (now >= stop_at && busy == 0) break;
    if (now >= give_up) break;
    int64_t wake = due < give_up ? due : give_up;
    if (wake <= now) continue;
    struct itimerspec its = {{0, 0}, {wake / 1000000000, wake % 1000000000}};
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, 1000);
    now = now_ns();
    for (int k = 0; k < n; k++) {
      if (evs[k].data.u64 == (uint64_t)-1) {
        uint64_t x;
        ssize_t r = read(tfd, &x, sizeof x);
        (void)r;
        continue;
      }
      conn_t *c = &cs[evs[k].data.u64];
      for (;;) {
        ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (r > 0) {
          c->len += (size_t)r;
          size_t done;
          while ((done = complete(c)) > 0) {
            memmove(c->buf, c->buf + done, c->len - done);
            c->len -= done;
            if (!c->inflight) continue;
            c->inflight = 0;
            if (c->sched >= measure_from && nlat < caplat) lat[nlat++] = now - c->sched;
          }
          if (c->len == sizeof c->buf) { /* a response larger than we take */
            errors++;
            c->dead = 1;
            break;
          }
          continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r < 0 && errno == EINTR) continue;
        /* closed or failed */
        errors++;
        c->dead = 1;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        break;
      }
      /* a request already due goes out at once */
      if (!c->dead && !c->inflight && c->next <= now && c->next < stop_at) {
        if (c->next >= measure_from) sent_measured++;
        send_req(c, c->next);
        c->next += interval;
      }
    }
  }
  for (int i = 0; i < conns; i++) {
    if (cs[i].inflight) lost++;
    close(cs[i].fd);
  }
  qsort(lat, nlat, sizeof *lat, cmp64);
  double secs = (stop_at - measure_from) / 1e9;
#define PCT(p) (nlat ? lat[(size_t)((p) / 100.0 * (double)(nlat - 1) + 0.5)] / 1000.0 : -1.0)
  double p50 = PCT(50), p90 = PCT(90), p99 = PCT(99), p999 = PCT(99.9);
  double mx = nlat ? lat[nlat - 1] / 1000.0 : -1;
  printf("offered %.0f req/s over %d connections, %.1f s measured (after %ld ms warm-up): %zu answered (%.0f/s), %ld sent\n",
         rate, conns, secs, warmup_ms, nlat, nlat / secs, sent_measured);
  printf("latency from the scheduled send: p50 %.0f µs, p90 %.0f, p99 %.0f, p99.9 %.0f, max %.0f; lost %ld, errors %ld\n",
         p50, p90, p99, p999, mx, lost, errors);
  printf("RESULT rate=%.0f achieved=%.0f count=%zu p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f lost=%ld errors=%ld\n",
         rate, nlat / secs, nlat, p50, p90, p99, p999, mx, lost, errors);
  return 0;
}
