/*
 * hostile.c - hostile client shapes against the vigil demo server on
 * 127.0.0.1, with the server's RSS and CPU measured from /proc while each
 * shape runs. One shape per run; hostile/run.sh starts a fresh demo for
 * each and collects the rows.
 *
 *   hostile --port P --pid PID --shape NAME [--conns N] [--scale check|full]
 *
 * Shapes (the demo's default limits, README "Configuration"):
 *
 *   pipeline     GET /cancels (a ~10 KiB answer) pipelined thousands of times
 *                on a socket with SO_RCVBUF 4096 that is never read; ends by
 *                the write timeout (30 s, no progress)
 *   slowread     GET /stream?n=200000 (a ~3 MB chunked answer) read 8 bytes
 *                every 100 ms (SO_RCVBUF 4096); no server limit ends a
 *                reader that makes progress: the client leaves after a while
 *   slowloris    a head sent one byte per connection every 100 ms, never
 *                finished; ends by the header timeout (10 s, 408)
 *   headers-max  100 header lines, just under 16 KiB of head, never
 *                finished; ends by the header timeout (408)
 *   headers-over 101 header lines, or a head over 16 KiB; ends by the
 *                limit (431)
 *   onebyte      POST to a route that does not read its body, chunked, one
 *                byte per chunk, as fast as possible; ends by the drain
 *                limit (256 KiB of body; the answer is 404)
 *   onebyte-echo the same to POST /echo (the body is read and echoed);
 *                ends by max body size (8 MiB, bodyTooLarge)
 *   trailers     POST /echo, chunked, one byte of body and the last chunk,
 *                then trailer lines without end, as fast as possible: not
 *                body, so the body limit does not end it; ends by the
 *                trailer limit (16 KiB on the wire, 431)
 *   paused       GET /wait with a Content-Length body larger than the read
 *                buffer limit (64 KiB): every connection paused by
 *                backpressure; the server's CPU while nothing happens, then
 *                how fast an RST and a FIN on one of them are seen (the
 *                demo's /cancels times, CLOCK_REALTIME); then the client
 *                resets them all
 *   upload       POST with Content-Length 8 MiB to a route that never reads
 *                it; ends by the drain limit (404, then close)
 *   upload-over  Content-Length 8 MiB + 1, never read: the body limit is
 *                checked when a body is read, so the handler answers and
 *                the unread body closes the connection
 *   warmup       not a shape: one request of every route, before the
 *                baseline (run.sh runs it on each fresh demo)
 *
 * Measured: VmRSS (/proc/PID/status) before the shape (baseline), the peak
 * (sampled every 10 ms by a thread) and 2 s after the shape ended; server
 * CPU (utime+stime, /proc/PID/stat) over the shape; the server's open
 * descriptors (/proc/PID/fd) to see when it closed the connections.
 *
 * Output: one line "ROW|shape|conns|base_kb|peak_kb|after_kb|per_conn_kb|
 * bound_kb|cpu_s|ended|verdict" and "NOTE|shape|text" lines. Exit status 0
 * when the verdict is ok, 1 when a bound was exceeded or the shape did not
 * end, 2 on a usage or setup error.
 *
 * Every wait is bounded; all traffic goes to 127.0.0.1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The demo's configuration (README "Configuration"; the demo has no flags
 * for them). */
#define KIB 1024L
#define READ_LIMIT (64 * KIB)
#define WRITE_LIMIT (64 * KIB)
#define DRAIN_LIMIT (256 * KIB)
#define HEADER_BYTES (16 * KIB)
#define MAX_HEADERS 100
#define MAX_BODY (8 * KIB * KIB)
#define HEADER_TIMEOUT_S 10.0
#define WRITE_TIMEOUT_S 30.0
/* The bound: per connection, the limits that apply to the shape plus
 * CONN_CONST; for the process, PROC_CONST on top (allocator arenas, the
 * loop's slab, Swift tasks' first pages). After the shape the RSS must be
 * within AFTER_SLACK of the baseline. */
#define CONN_CONST (32 * KIB)
#define PROC_CONST (16 * KIB * KIB)
#define AFTER_SLACK (16 * KIB * KIB)
/* Defect 14's targets. */
#define IDLE_CPU_MAX 0.05
#define SEEN_MAX_MS 50.0

static int g_port;
static pid_t g_pid;
static int g_full;
static long g_hz;

/* ------------------------------------------------------------------ */
/* time, /proc */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t real_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static long status_kb(const char *key) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)g_pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long v = -1;
  size_t kl = strlen(key);
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
      v = strtol(line + kl + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return v;
}

static long rss_kb(void) { return status_kb("VmRSS"); }

/* utime + stime of the whole process (all threads), in clock ticks. */
static long cpu_ticks(void) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)g_pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (p == NULL) return -1;
  /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt
   * majflt cmajflt utime(14) stime(15) */
  unsigned long ut = 0, st = 0;
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
             &st) != 2)
    return -1;
  return (long)(ut + st);
}

/* CPU time of the whole process in ns: the sum of every thread's
 * /proc/PID/task/TID/schedstat (first field), finer than clock ticks. */
static int64_t cpu_ns(void) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%d/task", (int)g_pid);
  DIR *d = opendir(path);
  if (d == NULL) return -1;
  int64_t sum = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char p2[320];
    snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", (int)g_pid, e->d_name);
    FILE *f = fopen(p2, "r");
    if (f == NULL) continue;
    long long v = 0;
    if (fscanf(f, "%lld", &v) == 1) sum += v;
    fclose(f);
  }
  closedir(d);
  return sum;
}

/* The server's open sockets (the listener and its connections; the
 * runtime's other descriptors come and go on their own). */
static int fd_count(void) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)g_pid);
  DIR *d = opendir(path);
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char p2[320], link[64];
    snprintf(p2, sizeof p2, "%s/%s", path, e->d_name);
    ssize_t k = readlink(p2, link, sizeof link - 1);
    if (k > 7 && memcmp(link, "socket:", 7) == 0) n++;
  }
  closedir(d);
  return n;
}

static int server_alive(void) { return kill(g_pid, 0) == 0; }

/* Kernel memory the server's connections hold (not in its RSS): the sum
 * of skmem r (receive queue) and w (send queue, wmem_queued) over the
 * server's side of every connection to its port, from `ss -tmn`. Returns
 * KiB, -1 if ss is not there. */
static long kernel_kb(long *rq_kb, long *wq_kb) {
  char cmd[128], line[1024];
  snprintf(cmd, sizeof cmd, "ss -tmnH state established '( sport = :%d )' 2>/dev/null",
           g_port);
  FILE *f = popen(cmd, "r");
  if (f == NULL) return -1;
  long long r = 0, w = 0;
  int any = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    char *m = strstr(line, "skmem:(");
    if (m == NULL) continue;
    any = 1;
    for (char *q = m + 7; *q && *q != ')';) {
      if (q[0] == 'r' && q[1] >= '0' && q[1] <= '9') r += strtoll(q + 1, NULL, 10);
      if (q[0] == 'w' && q[1] >= '0' && q[1] <= '9') w += strtoll(q + 1, NULL, 10);
      q = strchr(q, ',');
      if (q == NULL) break;
      q++;
    }
  }
  pclose(f);
  if (!any) {
    *rq_kb = *wq_kb = -1;
    return -1;
  }
  *rq_kb = (long)(r / 1024);
  *wq_kb = (long)(w / 1024);
  return (long)((r + w) / 1024);
}

/* The peak sampler: a thread reading VmRSS every 10 ms. */
static atomic_long g_peak;
static atomic_int g_sampling;
static pthread_t g_sampler;

static void *sampler(void *arg) {
  (void)arg;
  while (atomic_load(&g_sampling)) {
    long r = rss_kb();
    if (r > atomic_load(&g_peak)) atomic_store(&g_peak, r);
    usleep(10000);
  }
  return NULL;
}

/* ------------------------------------------------------------------ */
/* results */

typedef struct {
  const char *shape;
  int conns;
  long base_kb, peak_kb, after_kb;
  long base_ticks, end_ticks;
  int base_fds;
  double t0;
  long bound_per_conn; /* bytes: the limits that apply + CONN_CONST */
  char ended[640];
  int end_ok;
  char fail[200]; /* empty: ok */
} result_t;

static void note(const result_t *r, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  printf("NOTE|%s|%s\n", r->shape, buf);
  fflush(stdout);
}

static void add_fail(result_t *r, const char *fmt, ...) {
  char buf[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  size_t l = strlen(r->fail);
  snprintf(r->fail + l, sizeof r->fail - l, "%s%s", l ? "; " : "", buf);
}

/* Wait (at most 5 s) until the server's descriptor count has not changed
 * for 300 ms: connections of a setup step still closing would otherwise
 * count in the baseline. */
static void settle_fds(void) {
  double end = now_s() + 5.0;
  int last = fd_count(), since = 0;
  while (now_s() < end && since < 6) {
    usleep(50000);
    int n = fd_count();
    since = n == last ? since + 1 : 0;
    last = n;
  }
}

static void measure_begin(result_t *r) {
  settle_fds();
  r->base_kb = rss_kb();
  r->base_ticks = cpu_ticks();
  r->base_fds = fd_count();
  r->t0 = now_s();
  atomic_store(&g_peak, r->base_kb);
  atomic_store(&g_sampling, 1);
  pthread_create(&g_sampler, NULL, sampler, NULL);
}

/* Wait until the server holds no more descriptors than at the start of the
 * shape (it closed every connection of the shape), at most `timeout` s.
 * Returns the time since the shape started, or -1. */
static double wait_server_closed(result_t *r, double timeout) {
  double end = now_s() + timeout;
  for (;;) {
    int n = fd_count();
    if (n >= 0 && n <= r->base_fds) return now_s() - r->t0;
    if (!server_alive() || now_s() >= end) return -1;
    usleep(50000);
  }
}

static void measure_end(result_t *r) {
  r->end_ticks = cpu_ticks();
  /* settle: what the server gives back, it gives back now */
  sleep_s(g_full ? 2.0 : 1.0);
  r->after_kb = rss_kb();
  atomic_store(&g_sampling, 0);
  pthread_join(g_sampler, NULL);
  r->peak_kb = atomic_load(&g_peak);
  if (!server_alive()) add_fail(r, "server died");
}

static int emit(result_t *r) {
  long delta = r->peak_kb - r->base_kb;
  double per = r->conns > 0 ? (double)delta / r->conns : 0;
  long bound_kb =
      (long)r->conns * (r->bound_per_conn / KIB) + PROC_CONST / KIB;
  if (delta > bound_kb)
    add_fail(r, "peak +%ld KiB > bound %ld KiB", delta, bound_kb);
  if (r->after_kb - r->base_kb > AFTER_SLACK / KIB)
    add_fail(r, "after +%ld KiB > %ld KiB", r->after_kb - r->base_kb,
             AFTER_SLACK / KIB);
  if (!r->end_ok) add_fail(r, "did not end");
  double cpu = (double)(r->end_ticks - r->base_ticks) / (double)g_hz;
  printf("ROW|%s|%d|%ld|%ld|%ld|%.1f|%ld|%.2f|%s|%s%s\n", r->shape, r->conns,
         r->base_kb, r->peak_kb, r->after_kb, per, r->bound_per_conn / KIB, cpu,
         r->ended, r->fail[0] ? "FAIL: " : "ok", r->fail);
  fflush(stdout);
  return r->fail[0] ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* sockets */

static int tcp_socket(int rcvbuf) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)g_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Open n connections in batches (the demo's backlog is 1024), each batch
 * waited for (bounded). Returns how many connected; fds[i] = -1 for a
 * failure. */
static int connect_many(int *fds, int n, int rcvbuf) {
  int ok = 0;
  const int batch = 256;
  for (int i = 0; i < n; i += batch) {
    int m = n - i < batch ? n - i : batch;
    for (int k = 0; k < m; k++) fds[i + k] = tcp_socket(rcvbuf);
    double end = now_s() + 5.0;
    for (int k = 0; k < m; k++) {
      int fd = fds[i + k];
      if (fd < 0) continue;
      struct pollfd p = {fd, POLLOUT, 0};
      int left = (int)((end - now_s()) * 1000);
      if (left < 0) left = 0;
      int err = 0;
      socklen_t len = sizeof err;
      if (poll(&p, 1, left) != 1 ||
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        close(fd);
        fds[i + k] = -1;
        continue;
      }
      ok++;
    }
  }
  return ok;
}

static void close_rst(int fd) {
  if (fd < 0) return;
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

/* One blocking exchange on a fresh connection: send `req`, read until the
 * server closes or `timeout`; the response in *out (malloc'd). */
static ssize_t fetch(const char *req, char **out, double timeout) {
  int fd = tcp_socket(0);
  if (fd < 0) return -1;
  struct pollfd p = {fd, POLLOUT, 0};
  if (poll(&p, 1, (int)(timeout * 1000)) != 1) {
    close(fd);
    return -1;
  }
  if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
    close(fd);
    return -1;
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  double end = now_s() + timeout;
  for (;;) {
    int left = (int)((end - now_s()) * 1000);
    if (left <= 0) break;
    p.events = POLLIN;
    if (poll(&p, 1, left) != 1) break;
    if (len + 4096 > cap) buf = realloc(buf, cap *= 2);
    ssize_t k = recv(fd, buf + len, cap - len - 1, 0);
    if (k <= 0) break;
    len += (size_t)k;
  }
  close(fd);
  buf[len] = 0;
  *out = buf;
  return (ssize_t)len;
}

/* A response's status code from its first bytes, 0 if none. */
static int status_of(const char *b, size_t n) {
  if (n < 12 || memcmp(b, "HTTP/1.", 7) != 0) return 0;
  return atoi(b + 9);
}

/* A connection that reads what the server sends: keeps the first bytes
 * for the status, counts the rest, notes when the server closed. */
typedef struct {
  int fd;
  int status;
  char head[16];
  size_t hlen;
  size_t got;
  size_t sent;
  double closed_at; /* 0: open */
  int reset;
} hc_t;

/* Read everything available; 1 if the server closed (EOF or error). */
static int hc_read(hc_t *c) {
  char buf[65536];
  for (;;) {
    ssize_t k = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (k > 0) {
      if (c->hlen < sizeof c->head) {
        size_t m = sizeof c->head - c->hlen < (size_t)k ? sizeof c->head - c->hlen
                                                         : (size_t)k;
        memcpy(c->head + c->hlen, buf, m);
        c->hlen += m;
        if (c->status == 0) c->status = status_of(c->head, c->hlen);
      }
      c->got += (size_t)k;
      continue;
    }
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (k < 0) c->reset = 1;
    return 1;
  }
}

static void hc_closed(hc_t *c, double t0) {
  if (c->closed_at == 0) c->closed_at = now_s() - t0;
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
}

static hc_t *hc_open(int n, int rcvbuf, int *opened) {
  int *fds = malloc(sizeof *fds * (size_t)n);
  *opened = connect_many(fds, n, rcvbuf);
  hc_t *cs = calloc((size_t)n, sizeof *cs);
  for (int i = 0; i < n; i++) cs[i].fd = fds[i];
  free(fds);
  return cs;
}

/* Status codes seen, as "408 x12, closed without one x3". */
static void status_summary(hc_t *cs, int n, char *out, size_t cap) {
  int codes[8] = {0}, counts[8] = {0}, none = 0, nc = 0;
  for (int i = 0; i < n; i++) {
    if (cs[i].status == 0) {
      none++;
      continue;
    }
    int k;
    for (k = 0; k < nc && codes[k] != cs[i].status; k++) {
    }
    if (k == nc && nc < 8) codes[nc++] = cs[i].status;
    if (k < 8) counts[k]++;
  }
  size_t l = 0;
  out[0] = 0;
  for (int k = 0; k < nc; k++)
    l += (size_t)snprintf(out + l, cap - l, "%s%d x%d", l ? ", " : "", codes[k],
                          counts[k]);
  if (none) snprintf(out + l, cap - l, "%sno status x%d", l ? ", " : "", none);
}

/* Drive connections until each is closed by the server or `until`: send
 * from `gen` while the socket takes it, read what comes. gen(c, buf, cap)
 * returns the next bytes for c (0: nothing more now). */
typedef size_t (*gen_fn)(hc_t *c, char *buf, size_t cap);

static void pump(hc_t *cs, int n, gen_fn gen, double until, double t0) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < n; i++) {
    if (cs[i].fd < 0) continue;
    struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.u32 = (uint32_t)i}};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  static char buf[1 << 16];
  struct epoll_event evs[256];
  int open = 0;
  for (int i = 0; i < n; i++) open += cs[i].fd >= 0;
  while (open > 0 && now_s() < until) {
    int left = (int)((until - now_s()) * 1000);
    int k = epoll_wait(ep, evs, 256, left < 100 ? left : 100);
    for (int e = 0; e < k; e++) {
      hc_t *c = &cs[evs[e].data.u32];
      if (c->fd < 0) continue;
      if (hc_read(c)) {
        hc_closed(c, t0);
        open--;
        continue;
      }
      if (gen != NULL) {
        for (;;) {
          size_t m = gen(c, buf, sizeof buf);
          if (m == 0) break;
          ssize_t w = send(c->fd, buf, m, MSG_NOSIGNAL | MSG_DONTWAIT);
          if (w > 0) c->sent += (size_t)w;
          if (w < (ssize_t)m) {
            if (w < 0 && errno != EAGAIN) {
              hc_read(c); /* the answer before the close, if any */
              hc_closed(c, t0);
              open--;
            }
            break;
          }
        }
      }
    }
  }
  close(ep);
}

static double max_closed(hc_t *cs, int n, int *count) {
  double m = 0;
  *count = 0;
  for (int i = 0; i < n; i++)
    if (cs[i].closed_at > 0) {
      (*count)++;
      if (cs[i].closed_at > m) m = cs[i].closed_at;
    }
  return m;
}

static void hc_close_all(hc_t *cs, int n) {
  for (int i = 0; i < n; i++)
    if (cs[i].fd >= 0) {
      close_rst(cs[i].fd);
      cs[i].fd = -1;
    }
}

/* ------------------------------------------------------------------ */
/* shapes */

/* pipeline: GET /cancels (its body grows with the recorded cancellations:
 * 20 bytes each; 512 of them make a ~10 KiB answer, the demo's only
 * whole-body route that can be made that large). */
static int fill_cancels(size_t want) {
  for (int round = 0; round < 10; round++) {
    char *body = NULL;
    ssize_t n = fetch("GET /cancels HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                      &body, 5.0);
    if (n < 0) return -1;
    char *b = strstr(body, "\r\n\r\n");
    size_t have = b ? (size_t)(body + n - (b + 4)) : 0;
    free(body);
    if (have >= want) return (int)have;
    int m = (int)((want - have) / 20 + 1);
    if (m > 500) m = 500;
    int *fds = malloc(sizeof *fds * (size_t)m);
    connect_many(fds, m, 0);
    const char *req = "GET /wait HTTP/1.1\r\nHost: a\r\n\r\n";
    for (int i = 0; i < m; i++)
      if (fds[i] >= 0) send(fds[i], req, strlen(req), MSG_NOSIGNAL);
    sleep_s(0.5);
    for (int i = 0; i < m; i++) close_rst(fds[i]);
    free(fds);
    sleep_s(0.3);
  }
  return -1;
}

static int shape_pipeline(int conns) {
  result_t r = {.shape = "pipeline", .conns = conns};
  r.bound_per_conn = READ_LIMIT + WRITE_LIMIT + CONN_CONST;
  int body = fill_cancels(10240);
  if (body < 0) {
    fprintf(stderr, "hostile: could not fill /cancels\n");
    return 2;
  }
  int nreq = g_full ? 20000 : 5000;
  const char *one = "GET /cancels HTTP/1.1\r\nHost: a\r\n\r\n";
  size_t ol = strlen(one), total = ol * (size_t)nreq;
  char *all = malloc(total);
  for (int i = 0; i < nreq; i++) memcpy(all + ol * (size_t)i, one, ol);
  note(&r, "route GET /cancels, body %d bytes; %d requests (%zu bytes) per "
           "connection, SO_RCVBUF 4096, never read",
       body, nreq, total);

  measure_begin(&r);
  int opened;
  hc_t *cs = hc_open(conns, 4096, &opened);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < conns; i++)
    if (cs[i].fd >= 0) {
      struct epoll_event ev = {EPOLLOUT | EPOLLET, {.u32 = (uint32_t)i}};
      epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
  /* Send what the sockets take, at most 10 s (a server that stops reading
   * stops us). */
  double send_end = now_s() + 10.0;
  int done = 0;
  for (int i = 0; i < conns; i++) done += cs[i].fd < 0;
  while (done < conns && now_s() < send_end) {
    struct epoll_event evs[64];
    int k = epoll_wait(ep, evs, 64, 100);
    for (int e = 0; e < k; e++) {
      hc_t *c = &cs[evs[e].data.u32];
      while (c->fd >= 0 && c->sent < total) {
        ssize_t w = send(c->fd, all + c->sent, total - c->sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0) break;
        c->sent += (size_t)w;
      }
      if (c->sent == total) {
        done++;
        c->sent++; /* counted once */
      }
    }
  }
  close(ep);
  size_t sent = 0;
  for (int i = 0; i < conns; i++) sent += cs[i].sent > total ? total : cs[i].sent;
  double t_sent = now_s() - r.t0;
  sleep_s(2.0);
  long rq, wq;
  kernel_kb(&rq, &wq);
  note(&r, "%d connections; sent %zu of %zu request bytes in %.1f s; 2 s "
           "later the server held %ld KiB RSS over its baseline, and its "
           "sockets %ld KiB unread + %ld KiB unsent in the kernel",
       opened, sent, total * (size_t)conns, t_sent, rss_kb() - r.base_kb, rq, wq);
  /* The server must end it: the write timeout (no progress for 30 s),
   * which notices a stall between one and two periods after the last
   * progress (vigil.h). */
  double closed = wait_server_closed(&r, 2 * WRITE_TIMEOUT_S + 15.0);
  if (closed > 0) {
    snprintf(r.ended, sizeof r.ended, "server closed @%.1fs (write timeout %.0fs)",
             closed, WRITE_TIMEOUT_S);
    r.end_ok = 1;
  } else {
    snprintf(r.ended, sizeof r.ended, "not closed by %.0fs; client reset",
             now_s() - r.t0);
  }
  hc_close_all(cs, conns);
  wait_server_closed(&r, 5.0);
  measure_end(&r);
  free(all);
  free(cs);
  return emit(&r);
}

/* slowread: a large chunked answer read 8 bytes per 100 ms. */
static int shape_slowread(int conns) {
  result_t r = {.shape = "slowread", .conns = conns};
  r.bound_per_conn = WRITE_LIMIT + CONN_CONST;
  double secs = g_full ? 30.0 : 5.0;
  const char *req = "GET /stream?n=200000 HTTP/1.1\r\nHost: a\r\n\r\n";
  measure_begin(&r);
  int opened;
  hc_t *cs = hc_open(conns, 4096, &opened);
  for (int i = 0; i < conns; i++)
    if (cs[i].fd >= 0) send(cs[i].fd, req, strlen(req), MSG_NOSIGNAL);
  double end = now_s() + secs, half = now_s() + secs / 2;
  int64_t half_ns = -1;
  int early = 0;
  size_t got = 0;
  while (now_s() < end) {
    if (half_ns < 0 && now_s() >= half) half_ns = cpu_ns();
    for (int i = 0; i < conns; i++) {
      hc_t *c = &cs[i];
      if (c->fd < 0) continue;
      char b[8];
      ssize_t k = recv(c->fd, b, sizeof b, MSG_DONTWAIT);
      if (k > 0) {
        c->got += (size_t)k;
        got += (size_t)k;
      } else if (k == 0 || errno != EAGAIN) {
        hc_closed(c, r.t0);
        early++;
      }
    }
    sleep_s(0.1);
  }
  double steady = (double)(cpu_ns() - half_ns) / 1e9 / (secs / 2);
  long rq, wq;
  kernel_kb(&rq, &wq);
  note(&r, "the server's sockets held %ld KiB unsent in the kernel (%.0f KiB "
           "per connection; not in RSS, not bounded by writeBufferLimit: "
           "tcp_wmem)",
       wq, (double)wq / (opened ? opened : 1));
  note(&r, "%d connections read 8 bytes per 100 ms for %.0f s (%zu bytes in "
           "all); %d closed by the server meanwhile; server CPU over the "
           "second half (steady state): %.0f%% of a core",
       opened, secs, got, early, steady * 100);
  if (early > 0) {
    int cnt;
    double t = max_closed(cs, conns, &cnt);
    snprintf(r.ended, sizeof r.ended, "server closed %d of %d, last @%.2fs", cnt,
             conns, t);
  } else {
    snprintf(r.ended, sizeof r.ended,
             "client left @%.0fs (reader making progress: no server limit)", secs);
  }
  hc_close_all(cs, conns);
  double closed = wait_server_closed(&r, 5.0);
  r.end_ok = closed > 0;
  if (!r.end_ok) strncat(r.ended, "; server kept them", sizeof r.ended - strlen(r.ended) - 1);
  measure_end(&r);
  free(cs);
  return emit(&r);
}

/* slowloris: one byte per connection per 100 ms, a head never finished. */
static const char *g_slow_head =
    "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: slowloris\r\nX-Slow: "
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static int shape_slowloris(int conns) {
  result_t r = {.shape = "slowloris", .conns = conns};
  r.bound_per_conn = HEADER_BYTES + CONN_CONST;
  size_t hl = strlen(g_slow_head);
  measure_begin(&r);
  int opened;
  hc_t *cs = hc_open(conns, 0, &opened);
  double end = now_s() + HEADER_TIMEOUT_S + 10.0;
  int open = opened;
  while (open > 0 && now_s() < end) {
    double tick = now_s();
    for (int i = 0; i < conns; i++) {
      hc_t *c = &cs[i];
      if (c->fd < 0) continue;
      if (hc_read(c)) {
        hc_closed(c, r.t0);
        open--;
        continue;
      }
      if (c->sent < hl) {
        ssize_t w = send(c->fd, g_slow_head + c->sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == 1) c->sent++;
      }
    }
    sleep_s(0.1 - (now_s() - tick));
  }
  int cnt;
  double last = max_closed(cs, conns, &cnt);
  char st[128];
  status_summary(cs, conns, st, sizeof st);
  note(&r, "%d connections, one byte each per 100 ms; answers: %s", opened, st);
  r.end_ok = cnt == opened && opened > 0;
  snprintf(r.ended, sizeof r.ended, "%d/%d closed by server, last @%.2fs (%s; header timeout %.0fs)",
           cnt, opened, last, st, HEADER_TIMEOUT_S);
  hc_close_all(cs, conns);
  if (wait_server_closed(&r, 5.0) < 0) r.end_ok = 0;
  measure_end(&r);
  free(cs);
  return emit(&r);
}

/* A head of `lines` header lines (Host included) of about `bytes` bytes
 * in all, without the blank line that would end it. */
static size_t make_head(char *buf, size_t cap, int lines, size_t bytes) {
  size_t l = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
  int rest = lines - 1;
  size_t per = rest > 0 && bytes > l ? (bytes - l) / (size_t)rest : 0;
  for (int i = 0; i < rest; i++) {
    int n = snprintf(buf + l, cap - l, "X-H%03d: ", i);
    l += (size_t)n;
    size_t v = per > (size_t)n + 2 ? per - (size_t)n - 2 : 1;
    memset(buf + l, 'v', v);
    l += v;
    memcpy(buf + l, "\r\n", 2);
    l += 2;
  }
  return l;
}

static int shape_headers_max(int conns) {
  result_t r = {.shape = "headers-max", .conns = conns};
  r.bound_per_conn = HEADER_BYTES + CONN_CONST;
  static char head[HEADER_BYTES * 2];
  size_t hl = make_head(head, sizeof head, MAX_HEADERS, HEADER_BYTES - 256);
  note(&r, "%d header lines, %zu bytes of head, the blank line never sent",
       MAX_HEADERS, hl);
  measure_begin(&r);
  int opened;
  hc_t *cs = hc_open(conns, 0, &opened);
  for (int i = 0; i < conns; i++)
    if (cs[i].fd >= 0) {
      ssize_t w = send(cs[i].fd, head, hl, MSG_NOSIGNAL);
      if (w > 0) cs[i].sent = (size_t)w;
    }
  pump(cs, conns, NULL, now_s() + HEADER_TIMEOUT_S + 10.0, r.t0);
  int cnt;
  double last = max_closed(cs, conns, &cnt);
  char st[128];
  status_summary(cs, conns, st, sizeof st);
  r.end_ok = cnt == opened && opened > 0;
  snprintf(r.ended, sizeof r.ended, "%d/%d closed by server, last @%.2fs (%s; header timeout %.0fs)",
           cnt, opened, last, st, HEADER_TIMEOUT_S);
  hc_close_all(cs, conns);
  if (wait_server_closed(&r, 5.0) < 0) r.end_ok = 0;
  measure_end(&r);
  free(cs);
  return emit(&r);
}

static int shape_headers_over(int conns) {
  result_t r = {.shape = "headers-over", .conns = conns};
  r.bound_per_conn = HEADER_BYTES + CONN_CONST;
  static char h1[HEADER_BYTES * 2], h2[HEADER_BYTES * 2];
  size_t l1 = make_head(h1, sizeof h1 - 2, MAX_HEADERS + 1, 4000);
  memcpy(h1 + l1, "\r\n", 2);
  l1 += 2;
  size_t l2 = make_head(h2, sizeof h2 - 2, 2, HEADER_BYTES + 64);
  memcpy(h2 + l2, "\r\n", 2);
  l2 += 2;
  note(&r, "half the connections: %d header lines (%zu bytes); the other half: "
           "%zu bytes of head",
       MAX_HEADERS + 1, l1, l2);
  measure_begin(&r);
  int opened;
  hc_t *cs = hc_open(conns, 0, &opened);
  for (int i = 0; i < conns; i++)
    if (cs[i].fd >= 0) {
      const char *h = i % 2 ? h2 : h1;
      size_t l = i % 2 ? l2 : l1;
      ssize_t w = send(cs[i].fd, h, l, MSG_NOSIGNAL);
      if (w > 0) cs[i].sent = (size_t)w;
    }
  pump(cs, conns, NULL, now_s() + 10.0, r.t0);
  int cnt, c431 = 0;
  double last = max_closed(cs, conns, &cnt);
  for (int i = 0; i < conns; i++) c431 += cs[i].status == 431;
  char st[128];
  status_summary(cs, conns, st, sizeof st);
  r.end_ok = cnt == opened && c431 == opened && opened > 0;
  snprintf(r.ended, sizeof r.ended, "%d/%d closed by server, last @%.2fs (%s: limit)",
           cnt, opened, last, st);
  hc_close_all(cs, conns);
  if (wait_server_closed(&r, 5.0) < 0) r.end_ok = 0;
  measure_end(&r);
  free(cs);
  return emit(&r);
}

/* onebyte: a chunked body, one byte per chunk, as fast as it goes.
 * trailers (mode 2): the body ends at once, then trailer lines stream. */
static const char *g_onebyte_path;

static int shape_onebyte(int conns, int mode) {
  int echo = mode != 0, trailers = mode == 2;
  result_t r = {.shape = trailers ? "trailers" : echo ? "onebyte-echo" : "onebyte",
                .conns = conns};
  r.bound_per_conn =
      (echo ? READ_LIMIT + WRITE_LIMIT : READ_LIMIT) + CONN_CONST;
  g_onebyte_path = echo ? "/echo" : "/nope";
  double limit_s = echo ? (g_full ? 120.0 : 30.0) : 30.0;
  measure_begin(&r);
  int opened;
  hc_t *cs = hc_open(conns, 0, &opened);
  /* The head goes first, alone; then whole 6-byte chunks (or, for
   * trailers, the body and its last chunk with the head, then 6-byte
   * trailer lines). */
  char head[160];
  int hl = snprintf(head, sizeof head,
                    "POST %s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                    g_onebyte_path, trailers ? "1\r\nx\r\n0\r\n" : "");
  for (int i = 0; i < conns; i++)
    if (cs[i].fd >= 0) send(cs[i].fd, head, (size_t)hl, MSG_NOSIGNAL);
  static char chunks[6 * 4096];
  for (size_t k = 0; k < sizeof chunks; k += 6)
    memcpy(chunks + k, trailers ? "a: b\r\n" : "1\r\nx\r\n", 6);
  size_t *off = calloc((size_t)conns, sizeof *off); /* within chunks */
  int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < conns; i++)
    if (cs[i].fd >= 0) {
      struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.u32 = (uint32_t)i}};
      epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
  double until = now_s() + limit_s;
  int open = opened;
  while (open > 0 && now_s() < until) {
    struct epoll_event evs[64];
    int k = epoll_wait(ep, evs, 64, 100);
    for (int e = 0; e < k; e++) {
      hc_t *c = &cs[evs[e].data.u32];
      if (c->fd < 0) continue;
      if (hc_read(c)) {
        hc_closed(c, r.t0);
        open--;
        continue;
      }
      size_t *o = &off[evs[e].data.u32];
      for (;;) {
        ssize_t w = send(c->fd, chunks + *o, sizeof chunks - *o,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0) {
          if (w < 0 && errno != EAGAIN) {
            hc_read(c);
            hc_closed(c, r.t0);
            open--;
          }
          break;
        }
        c->sent += (size_t)w;
        *o = (*o + (size_t)w) % sizeof chunks;
      }
    }
  }
  close(ep);
  free(off);
  int cnt;
  double last = max_closed(cs, conns, &cnt);
  size_t sent = 0;
  for (int i = 0; i < conns; i++) sent += cs[i].sent;
  char st[128];
  status_summary(cs, conns, st, sizeof st);
  note(&r, "%d connections to POST %s; %zu %s (%.0f per connection); answers: %s",
       opened, g_onebyte_path, sent / 6,
       trailers ? "trailer lines sent" : "body bytes sent in one-byte chunks",
       (double)sent / 6 / (opened ? opened : 1), st);
  r.end_ok = cnt == opened && opened > 0;
  snprintf(r.ended, sizeof r.ended, "%d/%d closed by server, last @%.2fs (%s; %s)", cnt,
           opened, last, st,
           trailers ? "trailer limit, 16 KiB"
           : echo   ? "max body 8 MiB"
                    : "unread body, drain limit 256 KiB");
  hc_close_all(cs, conns);
  if (wait_server_closed(&r, 5.0) < 0) r.end_ok = 0;
  measure_end(&r);
  free(cs);
  return emit(&r);
}

/* upload: Content-Length 8 MiB to a route that never reads it. */
static size_t g_upload_len;
static size_t gen_upload(hc_t *c, char *buf, size_t cap) {
  /* c->sent counts head + body bytes taken by the socket. */
  char head[160];
  int hl = snprintf(head, sizeof head,
                    "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n",
                    g_upload_len);
  size_t total = (size_t)hl + g_upload_len;
  if (c->sent >= total) return 0;
  size_t l = 0;
  if (c->sent < (size_t)hl) {
    memcpy(buf, head + c->sent, (size_t)hl - c->sent);
    l = (size_t)hl - c->sent;
  }
  size_t body_left = total - c->sent - l;
  size_t m = cap - l < body_left ? cap - l : body_left;
  memset(buf + l, 'u', m);
  return l + m;
}

static int shape_upload(int conns, int over) {
  result_t r = {.shape = over ? "upload-over" : "upload", .conns = conns};
  r.bound_per_conn = READ_LIMIT + CONN_CONST;
  g_upload_len = over ? (size_t)MAX_BODY + 1 : (size_t)MAX_BODY;
  measure_begin(&r);
  int opened;
  hc_t *cs = hc_open(conns, 0, &opened);
  pump(cs, conns, gen_upload, now_s() + 30.0, r.t0);
  int cnt;
  double last = max_closed(cs, conns, &cnt);
  size_t sent = 0;
  for (int i = 0; i < conns; i++) sent += cs[i].sent;
  char st[128];
  status_summary(cs, conns, st, sizeof st);
  note(&r, "%d connections, Content-Length %zu to POST /upload (not a route: "
           "the handler answers 404 without reading); %.0f bytes sent per "
           "connection; answers: %s",
       opened, g_upload_len, (double)sent / (opened ? opened : 1), st);
  r.end_ok = cnt == opened && opened > 0;
  snprintf(r.ended, sizeof r.ended, "%d/%d closed by server, last @%.2fs (%s; %s)", cnt,
           opened, last, st, "unread body over the drain limit 256 KiB");
  hc_close_all(cs, conns);
  if (wait_server_closed(&r, 5.0) < 0) r.end_ok = 0;
  measure_end(&r);
  free(cs);
  return emit(&r);
}

/* paused: every connection's handler (/wait) runs and does not read its
 * body; the body is larger than the read buffer limit, so the server
 * stops reading each of them. */
static int cancels_since(int ctl, int64_t since, int64_t *out, int max) {
  const char *req = "GET /cancels HTTP/1.1\r\nHost: a\r\n\r\n";
  if (send(ctl, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) return -1;
  static char buf[1 << 20];
  size_t len = 0;
  double end = now_s() + 5.0;
  long clen = -1;
  char *body = NULL;
  while (now_s() < end) {
    struct pollfd p = {ctl, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) continue;
    ssize_t k = recv(ctl, buf + len, sizeof buf - len - 1, 0);
    if (k <= 0) return -1;
    len += (size_t)k;
    buf[len] = 0;
    if (body == NULL && (body = strstr(buf, "\r\n\r\n")) != NULL) {
      body += 4;
      char *cl = strcasestr(buf, "content-length:");
      if (cl != NULL) clen = atol(cl + 15);
    }
    if (body != NULL && clen >= 0 && (long)(buf + len - body) >= clen) break;
  }
  if (body == NULL) return -1;
  int n = 0;
  for (char *p = body; *p && n < max;) {
    int64_t v = strtoll(p, &p, 10);
    if (v >= since) out[n++] = v;
    while (*p == '\n') p++;
    if (v == 0) break;
  }
  return n;
}

static int shape_paused(int conns) {
  result_t r = {.shape = "paused", .conns = conns};
  r.bound_per_conn = READ_LIMIT + CONN_CONST;
  double idle_s = g_full ? 10.0 : 5.0;
  size_t body = (size_t)READ_LIMIT + 4 * KIB;
  char head[160];
  int hl = snprintf(head, sizeof head,
                    "GET /wait HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n", body);
  size_t total = (size_t)hl + body;
  char *msg = malloc(total);
  memcpy(msg, head, (size_t)hl);
  memset(msg + hl, 'p', body);
  /* The control connection (keep-alive) that reads /cancels: opened first,
   * so that it is not refused at max_connections (10 000). */
  int ctl = -1;
  connect_many(&ctl, 1, 0);
  if (ctl < 0) return 2;
  int fl = fcntl(ctl, F_GETFL);
  fcntl(ctl, F_SETFL, fl & ~O_NONBLOCK);
  int paused = conns - 1; /* the control connection is one of them */
  measure_begin(&r);
  int opened;
  hc_t *cs = hc_open(paused, 0, &opened);
  /* Send every message whole (bounded). */
  double end = now_s() + 60.0;
  int done = 0;
  while (done < opened && now_s() < end) {
    done = 0;
    for (int i = 0; i < paused; i++) {
      hc_t *c = &cs[i];
      if (c->fd < 0) continue;
      if (c->sent < total) {
        ssize_t w = send(c->fd, msg + c->sent, total - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) c->sent += (size_t)w;
      }
      done += c->sent == total;
    }
    if (done < opened) sleep_s(0.01);
  }
  double t_sent = now_s() - r.t0;
  /* Let the server read up to its limit on each, then measure while
   * nothing happens. */
  sleep_s(2.0);
  long rss_paused = rss_kb();
  long rq, wq;
  kernel_kb(&rq, &wq);
  int64_t c1 = cpu_ns();
  double w0 = now_s();
  sleep_s(idle_s);
  int64_t c2 = cpu_ns();
  double idle_cpu = (double)(c2 - c1) / 1e9 / (now_s() - w0);
  /* Defect 14's target is for 10 000 paused connections; a run with fewer
   * gets the share of it that scales with the connections, plus 0.3% for
   * what the process costs with none. */
  double cpu_max = IDLE_CPU_MAX * (double)conns / 10000.0 + 0.003;
  if (cpu_max > IDLE_CPU_MAX) cpu_max = IDLE_CPU_MAX;
  note(&r, "%d paused connections + 1 control; each sent GET /wait with a "
           "%zu-byte body (read limit %ld) in %.1f s; RSS while paused %ld KiB; "
           "the server's sockets held %ld KiB unread in the kernel",
       done, body, READ_LIMIT, t_sent, rss_paused, rq);
  note(&r, "server CPU while %d connections were paused and nothing happened: "
           "%.2f%% of a core over %.0f s (bound %.2f%%; defect 14: < 5%% at "
           "10 000)",
       done, idle_cpu * 100, idle_s, cpu_max * 100);
  if (idle_cpu >= cpu_max)
    add_fail(&r, "idle CPU %.2f%% >= %.2f%%", idle_cpu * 100, cpu_max * 100);
  /* RSTs on some, FINs on others, one at a time at random moments: seen
   * when? The demo records the time its /wait handler saw the
   * cancellation (CLOCK_REALTIME); for a FIN the server's close shows too
   * (an RST or EOF on our half-closed socket). */
  enum { PROBES = 5 };
  double rst_ms[PROBES], fin_ms[PROBES], close_ms[PROBES];
  int nr = 0, nf = 0, nc = 0, next = 0;
  srand((unsigned)getpid());
  for (int k = 0; k < 2 * PROBES; k++) {
    int fin = k % 2;
    while (next < paused && (cs[next].fd < 0 || cs[next].sent != total)) next++;
    if (next >= paused) break;
    hc_t *c = &cs[next++];
    sleep_s((double)(rand() % 100) / 1000.0);
    int64_t t = real_ns();
    double m0 = now_s();
    if (fin) {
      shutdown(c->fd, SHUT_WR);
      struct pollfd p = {c->fd, POLLIN | POLLRDHUP, 0};
      if (poll(&p, 1, 2000) == 1) close_ms[nc++] = (now_s() - m0) * 1000;
      close_rst(c->fd);
    } else {
      close_rst(c->fd);
    }
    c->fd = -1;
    sleep_s(0.2);
    int64_t seen[8];
    int n = cancels_since(ctl, t, seen, 8);
    double ms = n >= 1 ? (double)(seen[0] - t) / 1e6 : 1e9;
    if (fin)
      fin_ms[nf++] = ms;
    else
      rst_ms[nr++] = ms;
  }
  double rst_max = 0, fin_max = 0, rst_sum = 0, fin_sum = 0, close_max = 0;
  for (int i = 0; i < nr; i++) {
    rst_sum += rst_ms[i];
    if (rst_ms[i] > rst_max) rst_max = rst_ms[i];
  }
  for (int i = 0; i < nf; i++) {
    fin_sum += fin_ms[i];
    if (fin_ms[i] > fin_max) fin_max = fin_ms[i];
  }
  for (int i = 0; i < nc; i++)
    if (close_ms[i] > close_max) close_max = close_ms[i];
  note(&r, "%d RSTs seen by the handler after %.1f ms on average, %.1f ms at "
           "most; %d FINs after %.1f ms on average, %.1f ms at most (the "
           "connection closed after %.1f ms at most) (target < %.0f ms)",
       nr, nr ? rst_sum / nr : -1, rst_max, nf, nf ? fin_sum / nf : -1, fin_max,
       close_max, SEEN_MAX_MS);
  if (nr < PROBES || rst_max >= SEEN_MAX_MS)
    add_fail(&r, "RST seen after up to %.0f ms", rst_max);
  if (nf < PROBES || fin_max >= SEEN_MAX_MS)
    add_fail(&r, "FIN seen after up to %.0f ms", fin_max);
  /* The end: the client resets them all (the server's own end would be
   * /wait's 30 s, then the body drained). */
  hc_close_all(cs, paused);
  close_rst(ctl);
  r.base_fds--; /* the control connection was counted in the baseline */
  double closed = wait_server_closed(&r, 15.0);
  r.end_ok = closed > 0 && done == paused;
  snprintf(r.ended, sizeof r.ended,
           "client RST all, server closed all @%.1fs; idle CPU %.2f%%, RST "
           "seen <= %.0f ms, FIN seen <= %.0f ms",
           closed, idle_cpu * 100, rst_max, fin_max);
  measure_end(&r);
  free(cs);
  free(msg);
  return emit(&r);
}

/* warmup: one request of every route (and one cancellation), so that the
 * baseline includes what the first request of each kind allocates for
 * good. */
static int warmup(void) {
  static char req[80000];
  const char *gets[] = {"/", "/stats", "/cancels", "/stream?n=100", "/nope", "/"};
  int ok = 0;
  for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
             gets[i]);
    char *out = NULL;
    if (fetch(req, &out, 5.0) > 0 && status_of(out, strlen(out)) != 0) ok++;
    free(out);
  }
  int l = snprintf(req, sizeof req,
                   "POST /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                   "Content-Length: 70000\r\n\r\n");
  memset(req + l, 'e', 70000);
  req[l + 70000] = 0;
  char *out = NULL;
  if (fetch(req, &out, 5.0) > 0) ok++;
  free(out);
  out = NULL;
  if (fetch("POST /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            &out, 5.0) > 0)
    ok++;
  free(out);
  out = NULL;
  /* /wait, then a FIN after 0.2 s: the cancellation path (its timers). */
  fetch("GET /wait HTTP/1.1\r\nHost: a\r\n\r\n", &out, 0.2);
  free(out);
  sleep_s(0.3);
  return ok == 8 ? 0 : 2;
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv) {
  const char *shape = NULL;
  int conns = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc)
      g_port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--pid") && i + 1 < argc)
      g_pid = (pid_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--shape") && i + 1 < argc)
      shape = argv[++i];
    else if (!strcmp(argv[i], "--conns") && i + 1 < argc)
      conns = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
      g_full = !strcmp(argv[++i], "full");
    else {
      fprintf(stderr, "usage: hostile --port P --pid PID --shape NAME "
                      "[--conns N] [--scale check|full]\n");
      return 2;
    }
  }
  if (g_port <= 0 || g_pid <= 0 || shape == NULL) {
    fprintf(stderr, "hostile: --port, --pid and --shape are required\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  g_hz = sysconf(_SC_CLK_TCK);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (!server_alive() || rss_kb() < 0) {
    fprintf(stderr, "hostile: no process %d to measure\n", (int)g_pid);
    return 2;
  }
  if (!strcmp(shape, "warmup")) return warmup();
  /* Defaults: full / check. */
  struct {
    const char *name;
    int full, check;
  } defs[] = {
      {"pipeline", 2, 1},      {"slowread", 200, 50},   {"slowloris", 2000, 500},
      {"headers-max", 2000, 300}, {"headers-over", 200, 50}, {"onebyte", 8, 2},
      {"onebyte-echo", 2, 1},  {"paused", 10000, 1000}, {"upload", 50, 10},
      {"upload-over", 50, 10}, {"trailers", 50, 10},
  };
  int found = 0;
  for (size_t k = 0; k < sizeof defs / sizeof defs[0]; k++)
    if (!strcmp(defs[k].name, shape)) {
      found = 1;
      if (conns <= 0) conns = g_full ? defs[k].full : defs[k].check;
    }
  if (!found) {
    fprintf(stderr, "hostile: unknown shape %s\n", shape);
    return 2;
  }
  if ((rlim_t)conns + 64 > rl.rlim_cur) {
    fprintf(stderr, "hostile: RLIMIT_NOFILE %lu is too low for %d connections\n",
            (unsigned long)rl.rlim_cur, conns);
    return 2;
  }
  if (!strcmp(shape, "pipeline")) return shape_pipeline(conns);
  if (!strcmp(shape, "slowread")) return shape_slowread(conns);
  if (!strcmp(shape, "slowloris")) return shape_slowloris(conns);
  if (!strcmp(shape, "headers-max")) return shape_headers_max(conns);
  if (!strcmp(shape, "headers-over")) return shape_headers_over(conns);
  if (!strcmp(shape, "onebyte")) return shape_onebyte(conns, 0);
  if (!strcmp(shape, "onebyte-echo")) return shape_onebyte(conns, 1);
  if (!strcmp(shape, "trailers")) return shape_onebyte(conns, 2);
  if (!strcmp(shape, "paused")) return shape_paused(conns);
  if (!strcmp(shape, "upload")) return shape_upload(conns, 0);
  if (!strcmp(shape, "upload-over")) return shape_upload(conns, 1);
  return 2;
}
