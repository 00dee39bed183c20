/*
 * tc.h - the tiny harness of the C tests: test bookkeeping, a watchdog, and
 * a blocking HTTP/1.1 client over loopback sockets in which every wait has
 * a timeout. Header-only (static functions): each test program is one file.
 *
 * Output: "ok N - name" / "not ok N - name" per test, "# ..." diagnostics,
 * and a last line "N passed, M failed"; the exit status is 1 on failure.
 */
#ifndef TC_H
#define TC_H

#include <arpa/inet.h>
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
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define TC_UNUSED __attribute__((unused))

/* ------------------------------------------------------------------ */
/* bookkeeping */

static int tc_number, tc_passed, tc_failed;
static int tc_cur_failed;
static const char *tc_cur_name;
static unsigned tc_test_timeout_s = 30;

static volatile pid_t tc_child_pid; /* a child process to kill on timeout */

static void tc_on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "# watchdog: a test did not finish in time\n";
  ssize_t w = write(1, msg, sizeof msg - 1);
  (void)w;
  if (tc_child_pid > 0) kill(tc_child_pid, SIGKILL);
  _exit(3);
}

/* Call first in main: stdout line-buffered, SIGPIPE ignored (a test client
 * writing to a socket the server closed must see EPIPE, not die), and a
 * watchdog armed per test. */
static TC_UNUSED void tc_init(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGALRM, tc_on_alarm);
}

static TC_UNUSED void tc_begin(const char *name) {
  tc_cur_name = name;
  tc_cur_failed = 0;
  alarm(tc_test_timeout_s);
}

static TC_UNUSED void tc_end(void) {
  alarm(0);
  tc_number++;
  if (tc_cur_failed) {
    tc_failed++;
    printf("not ok %d - %s\n", tc_number, tc_cur_name);
  } else {
    tc_passed++;
    printf("ok %d - %s\n", tc_number, tc_cur_name);
  }
  fflush(stdout);
}

static TC_UNUSED int tc_summary(void) {
  printf("%d passed, %d failed\n", tc_passed, tc_failed);
  fflush(stdout);
  return tc_failed ? 1 : 0;
}

/* Diagnostics: "#   message", with CR, LF and other control bytes escaped
 * so that each stays one line. */
static TC_UNUSED void tc_vnote(const char *prefix, const char *fmt, va_list ap) {
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n > 0 && msg[n - 1] == '\n') msg[--n] = '\0'; /* a trailing newline */
  printf("#   %s", prefix);
  for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
    if (*p == '\n') fputs("\\n", stdout);
    else if (*p == '\r') fputs("\\r", stdout);
    else if (*p < 0x20 || *p == 0x7f) printf("\\x%02x", *p);
    else putchar(*p);
  }
  printf("\n");
  fflush(stdout);
}

static TC_UNUSED __attribute__((format(printf, 1, 2))) void tc_note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tc_vnote("", fmt, ap);
  va_end(ap);
}

static TC_UNUSED __attribute__((format(printf, 3, 4))) void tc_fail_at(const char *file, int line,
                                                                       const char *fmt, ...) {
  char where[512];
  va_list ap;
  tc_cur_failed = 1;
  snprintf(where, sizeof where, "%s:%d: ", file, line);
  va_start(ap, fmt);
  tc_vnote(where, fmt, ap);
  va_end(ap);
}

/* CHECK(cond, "fmt", ...): record a failure and go on. */
#define CHECK(cond, ...) \
  do { if (!(cond)) tc_fail_at(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define CHECK_EQ_INT(a, b) \
  do { long long _a = (long long)(a), _b = (long long)(b); \
       if (_a != _b) tc_fail_at(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", \
                                #a, _a, #b, _b); } while (0)
/* REQUIRE: like CHECK, but leave the test function (which returns void). */
#define REQUIRE(cond, ...) \
  do { if (!(cond)) { tc_fail_at(__FILE__, __LINE__, __VA_ARGS__); return; } } while (0)

#define RUN(fn, name) do { tc_begin(name); fn(); tc_end(); } while (0)

/* ------------------------------------------------------------------ */
/* time */

static TC_UNUSED uint64_t tc_now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static TC_UNUSED double tc_now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static TC_UNUSED void tc_sleep_ms(unsigned ms) {
  struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

/* Poll `cond` every millisecond until it holds or `ms` pass; evaluates to
 * whether it held. */
#define TC_WAIT_UNTIL(cond, ms) \
  ({ uint64_t _end = tc_now_ms() + (ms); int _ok; \
     while (!(_ok = !!(cond)) && tc_now_ms() < _end) { tc_sleep_ms(1); } \
     _ok; })

/* ------------------------------------------------------------------ */
/* a growable byte buffer for the client */

typedef struct {
  char *p;
  size_t len, cap;
} tc_buf_t;

static TC_UNUSED void tc_buf_add(tc_buf_t *b, const void *d, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n + 1) cap *= 2;
    b->p = realloc(b->p, cap);
    if (b->p == NULL) abort();
    b->cap = cap;
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static TC_UNUSED void tc_buf_consume(tc_buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
  } else {
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
  }
  if (b->p) b->p[b->len] = '\0';
}

static TC_UNUSED void tc_buf_free(tc_buf_t *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------ */
/* worker threads the tests start, joined at the end of a test */

#define TC_MAXTHREADS 256
static pthread_t tc_threads[TC_MAXTHREADS];
static int tc_nthreads;
static pthread_mutex_t tc_threads_mu = PTHREAD_MUTEX_INITIALIZER;

/* Start a worker thread (aborts if it cannot: the test would be void). */
static TC_UNUSED void tc_spawn(void *(*fn)(void *), void *arg) {
  pthread_mutex_lock(&tc_threads_mu);
  if (tc_nthreads >= TC_MAXTHREADS ||
      pthread_create(&tc_threads[tc_nthreads], NULL, fn, arg) != 0)
    abort();
  tc_nthreads++;
  pthread_mutex_unlock(&tc_threads_mu);
}

static TC_UNUSED void tc_join_workers(void) {
  pthread_mutex_lock(&tc_threads_mu);
  int n = tc_nthreads;
  pthread_t copy[TC_MAXTHREADS];
  memcpy(copy, tc_threads, sizeof(pthread_t) * (size_t)n);
  tc_nthreads = 0;
  pthread_mutex_unlock(&tc_threads_mu);
  for (int i = 0; i < n; i++) pthread_join(copy[i], NULL);
}

/* CLOCK_REALTIME `ms` from now, for pthread_cond_timedwait. */
static TC_UNUSED struct timespec tc_deadline_in(unsigned ms) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_sec += ms / 1000;
  t.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

/* ------------------------------------------------------------------ */
/* the client */

typedef struct {
  int fd;
  tc_buf_t in;    /* received, not yet consumed */
  int eof;        /* the server closed (FIN) */
  int reset;      /* ECONNRESET */
} tc_client_t;

static TC_UNUSED int tc_connect(tc_client_t *c, int port) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0) return -1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {5, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  return 0;
}

/* Read what is available within `ms` (at least one read attempt). Returns
 * bytes read, 0 on EOF/reset, -1 on timeout. */
static TC_UNUSED int tc_read_some(tc_client_t *c, int ms) {
  if (c->eof || c->reset) return 0;
  struct pollfd p = {c->fd, POLLIN, 0};
  int r = poll(&p, 1, ms < 0 ? 0 : ms);
  if (r <= 0) return -1;
  char buf[16384];
  ssize_t n = recv(c->fd, buf, sizeof buf, 0);
  if (n > 0) {
    tc_buf_add(&c->in, buf, (size_t)n);
    return (int)n;
  }
  if (n == 0) c->eof = 1;
  else if (errno == ECONNRESET) c->reset = 1;
  else if (errno == EAGAIN || errno == EINTR) return -1;
  else c->reset = 1;
  return 0;
}

/* Send everything, reading whatever arrives meanwhile (so a server that
 * answers while we still send cannot deadlock us). 0, or -1. */
static TC_UNUSED int tc_send(tc_client_t *c, const void *data, size_t len) {
  const char *p = data;
  uint64_t end = tc_now_ms() + 10000;
  while (len > 0) {
    if (tc_now_ms() > end) return -1;
    struct pollfd fds = {c->fd, POLLOUT | POLLIN, 0};
    if (poll(&fds, 1, 100) < 0) return -1;
    if ((fds.revents & POLLIN) && !c->eof && !c->reset) tc_read_some(c, 0);
    if (fds.revents & (POLLOUT | POLLERR | POLLHUP)) {
      ssize_t n = send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) return -1;
      if (n > 0) {
        p += n;
        len -= (size_t)n;
      }
    }
  }
  return 0;
}

static TC_UNUSED int tc_send_str(tc_client_t *c, const char *s) {
  return tc_send(c, s, strlen(s));
}

/* A parsed response. */
typedef struct {
  int status;
  char head[8192];     /* status line and headers, NUL-terminated */
  tc_buf_t body;
  int chunked;
  long long content_length; /* -1 if none */
} tc_resp_t;

static TC_UNUSED void tc_resp_free(tc_resp_t *r) { tc_buf_free(&r->body); }

/* The value of header `name` in r->head (first match), copied into out. */
static TC_UNUSED int tc_resp_header(const tc_resp_t *r, const char *name,
                                    char *out, size_t outlen) {
  size_t n = strlen(name);
  const char *line = strstr(r->head, "\r\n");
  while (line && line[2] != '\0' && !(line[2] == '\r' && line[3] == '\n')) {
    line += 2;
    const char *eol = strstr(line, "\r\n");
    if (eol == NULL) break;
    if ((size_t)(eol - line) > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
      const char *v = line + n + 1;
      while (*v == ' ' || *v == '\t') v++;
      size_t vl = (size_t)(eol - v);
      if (out && outlen) {
        if (vl >= outlen) vl = outlen - 1;
        memcpy(out, v, vl);
        out[vl] = '\0';
      }
      return 1;
    }
    line = eol;
  }
  return 0;
}

/* Does the comma separated list `v` hold `tok` (case-insensitive)? */
static TC_UNUSED int tc_has_token(const char *v, const char *tok) {
  size_t n = strlen(tok);
  for (const char *p = v; *p; p++)
    if (strncasecmp(p, tok, n) == 0 && (p == v || p[-1] == ' ' || p[-1] == ',') &&
        (p[n] == '\0' || p[n] == ' ' || p[n] == ','))
      return 1;
  return 0;
}

static TC_UNUSED int tc_resp_has(const tc_resp_t *r, const char *name, const char *value) {
  char v[512];
  return tc_resp_header(r, name, v, sizeof v) && strcasecmp(v, value) == 0;
}

/* Wait until `in` holds `n` bytes, or EOF, or the deadline. */
static TC_UNUSED int tc_fill(tc_client_t *c, size_t n, uint64_t deadline) {
  while (c->in.len < n) {
    int64_t left = (int64_t)(deadline - tc_now_ms());
    if (left <= 0) return -1;
    if (tc_read_some(c, (int)left) == 0 && (c->eof || c->reset)) return -1;
  }
  return 0;
}

static TC_UNUSED long tc_find(const tc_buf_t *b, size_t from, const char *s) {
  size_t n = strlen(s);
  for (size_t i = from; i + n <= b->len; i++)
    if (memcmp(b->p + i, s, n) == 0) return (long)i;
  return -1;
}

/* Read one response (skipping 1xx interim responses unless keep_1xx) within
 * `ms`. Body framing: Content-Length, chunked, or until close. For a
 * response to HEAD pass head_request=1. Returns 0, or -1 (timeout, EOF
 * before a complete response). */
static TC_UNUSED int tc_read_response_ex(tc_client_t *c, tc_resp_t *r, int ms,
                                         int head_request, int keep_1xx) {
  memset(r, 0, sizeof *r);
  r->content_length = -1;
  uint64_t deadline = tc_now_ms() + (uint64_t)ms;
  for (;;) {
    long end;
    while ((end = tc_find(&c->in, 0, "\r\n\r\n")) < 0) {
      if ((int64_t)(deadline - tc_now_ms()) <= 0) return -1;
      if (tc_read_some(c, (int)(deadline - tc_now_ms())) == 0 && (c->eof || c->reset))
        return -1;
    }
    size_t hl = (size_t)end + 4;
    if (hl >= sizeof r->head) return -1;
    memcpy(r->head, c->in.p, hl);
    r->head[hl] = '\0';
    tc_buf_consume(&c->in, hl);
    if (sscanf(r->head, "HTTP/1.%*d %d", &r->status) != 1) return -1;
    if (r->status >= 100 && r->status < 200 && !keep_1xx) continue;
    break;
  }
  char v[128];
  if (tc_resp_header(r, "Content-Length", v, sizeof v)) r->content_length = atoll(v);
  if (tc_resp_header(r, "Transfer-Encoding", v, sizeof v) && tc_has_token(v, "chunked"))
    r->chunked = 1;
  if (head_request || r->status < 200 || r->status == 204 || r->status == 304)
    return 0;
  if (r->chunked) {
    for (;;) {
      long eol;
      while ((eol = tc_find(&c->in, 0, "\r\n")) < 0)
        if (tc_fill(c, c->in.len + 1, deadline) != 0) return -1;
      unsigned long size = strtoul(c->in.p, NULL, 16);
      tc_buf_consume(&c->in, (size_t)eol + 2);
      if (size == 0) {
        /* trailers: until an empty line */
        for (;;) {
          while ((eol = tc_find(&c->in, 0, "\r\n")) < 0)
            if (tc_fill(c, c->in.len + 1, deadline) != 0) return -1;
          tc_buf_consume(&c->in, (size_t)eol + 2);
          if (eol == 0) return 0;
        }
      }
      if (tc_fill(c, size + 2, deadline) != 0) return -1;
      tc_buf_add(&r->body, c->in.p, size);
      tc_buf_consume(&c->in, size + 2);
    }
  }
  if (r->content_length >= 0) {
    if (tc_fill(c, (size_t)r->content_length, deadline) != 0) return -1;
    tc_buf_add(&r->body, c->in.p, (size_t)r->content_length);
    tc_buf_consume(&c->in, (size_t)r->content_length);
    return 0;
  }
  /* until close */
  while (!c->eof && !c->reset) {
    if ((int64_t)(deadline - tc_now_ms()) <= 0) return -1;
    tc_read_some(c, (int)(deadline - tc_now_ms()));
  }
  tc_buf_add(&r->body, c->in.p, c->in.len);
  tc_buf_consume(&c->in, c->in.len);
  return 0;
}

static TC_UNUSED int tc_read_response(tc_client_t *c, tc_resp_t *r, int ms) {
  return tc_read_response_ex(c, r, ms, 0, 0);
}

/* Did the server close the connection (FIN or RST) within `ms`? Bytes that
 * arrive meanwhile are kept in c->in. */
static TC_UNUSED int tc_wait_closed(tc_client_t *c, int ms) {
  uint64_t deadline = tc_now_ms() + (uint64_t)ms;
  while (!c->eof && !c->reset) {
    if ((int64_t)(deadline - tc_now_ms()) <= 0) return 0;
    tc_read_some(c, (int)(deadline - tc_now_ms()));
  }
  return 1;
}

/* Is the connection still open after `ms` of silence? */
static TC_UNUSED int tc_still_open(tc_client_t *c, int ms) {
  return !tc_wait_closed(c, ms);
}

static TC_UNUSED void tc_close(tc_client_t *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  tc_buf_free(&c->in);
}

/* Close with an RST: SO_LINGER {1, 0} then close. */
static TC_UNUSED void tc_close_rst(tc_client_t *c) {
  struct linger l = {1, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  tc_close(c);
}

/* One request, one response, on a fresh connection; 0 or -1. */
static TC_UNUSED int tc_roundtrip(int port, const char *request, tc_resp_t *r) {
  tc_client_t c;
  if (tc_connect(&c, port) != 0) return -1;
  int rc = tc_send_str(&c, request) == 0 ? tc_read_response(&c, r, 5000) : -1;
  tc_close(&c);
  return rc;
}

/* Does the request-target (or any span) t[0..len) start with `prefix`? */
static TC_UNUSED int tc_starts(const char *t, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(t, prefix, n) == 0;
}

/* ------------------------------------------------------------------ */
/* server helpers (only for programs that include vigil.h first) */
#ifdef VIGIL_H

/* A request handed to a worker thread that works for up to `ms` unless a
 * vigil_request_on_cancel callback cancels it first (tc_job_cancel wakes
 * tc_job_wait). Reference counted: one reference per holder (the worker,
 * the cancel callback); the last tc_job_unref frees it. `id` and `mode`
 * are the test's own. */
typedef struct {
  atomic_int refs;
  int id;
  vigil_request_t *req;
  unsigned ms;
  const char *mode;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int cancelled;
} tc_job_t;

static TC_UNUSED tc_job_t *tc_job_new(int refs, int id, vigil_request_t *req, unsigned ms) {
  tc_job_t *j = calloc(1, sizeof *j);
  if (j == NULL) abort();
  atomic_init(&j->refs, refs);
  j->id = id;
  j->req = req;
  j->ms = ms;
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  return j;
}

static TC_UNUSED void tc_job_unref(tc_job_t *j) {
  if (atomic_fetch_sub(&j->refs, 1) != 1) return;
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cv);
  free(j);
}

/* Mark the job cancelled and wake its worker. */
static TC_UNUSED void tc_job_cancel(tc_job_t *j) {
  pthread_mutex_lock(&j->mu);
  j->cancelled = 1;
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
}

/* Wait up to j->ms for a cancellation; 1 if cancelled. */
static TC_UNUSED int tc_job_wait(tc_job_t *j) {
  struct timespec until = tc_deadline_in(j->ms);
  pthread_mutex_lock(&j->mu);
  while (!j->cancelled && pthread_cond_timedwait(&j->cv, &j->mu, &until) == 0) {
  }
  int c = j->cancelled;
  pthread_mutex_unlock(&j->mu);
  return c;
}

static TC_UNUSED int tc_stats_settled(vigil_server_t *s, int ms) {
  vigil_stats_t st;
  int ok = TC_WAIT_UNTIL((vigil_server_stats(s, &st),
                          st.requests_live == 0 && st.connections_open == 0), ms);
  if (!ok)
    tc_note("stats: connections_open=%llu requests_live=%llu",
           (unsigned long long)st.connections_open,
           (unsigned long long)st.requests_live);
  return ok;
}

/* Start a server on 127.0.0.1, port 0; returns the port or -1. */
static TC_UNUSED int tc_server_start(vigil_server_t **out, vigil_config_t *cfg) {
  cfg->host = "127.0.0.1";
  cfg->port = 0;
  int r = vigil_server_new(out, cfg);
  if (r != 0) {
    tc_note("vigil_server_new: %s", vigil_strerror(r));
    return -1;
  }
  r = vigil_server_start(*out);
  if (r != 0) {
    tc_note("vigil_server_start: %s", vigil_strerror(r));
    vigil_server_free(*out);
    *out = NULL;
    return -1;
  }
  return vigil_server_port(*out);
}
#endif

#endif /* TC_H */
