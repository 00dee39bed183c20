/*
 * bench_server.c - Vigil's C handler for the benchmarks (the `vigil-c` row
 * of Benchmarks/run.sh), linked against libvigil.a. Every route a server of
 * the harness has, as a C embedder would write it, all on the loop thread:
 *
 *   GET /          200 "Hello, World!" text/plain: the same handler as
 *                  examples/c/hello.c (this route is tested first, so the
 *                  keep-alive and pipelined figures measure the same path)
 *   GET /wait      held until the request ends: a cancellation callback
 *                  (vigil_request_on_cancel, the first thing C sees) records
 *                  CLOCK_REALTIME in ns, then the handler reference is given
 *                  back; after 30 s nothing special happens (no timer: the
 *                  benchmark's client always closes first)
 *   GET /cancels   the recorded times, one per line, oldest first
 *   POST /echo     the body written back as it arrives, the request's
 *                  Content-Length when it has one, else chunked; the body
 *                  paused until each write's completion (as examples/c/echo.c)
 *   GET /stream?n=N[&size=B][&ms=M]  chunked: N chunks of B bytes ('x'), or
 *                  "chunk i\n" lines without size. ms=0: each write issued
 *                  from the previous one's completion (backpressure); ms>0:
 *                  one ticker thread posts a task to the loop every M ms
 *                  (vigil_server_post) that writes one chunk to every open
 *                  stream (all streams of a run share the period of the
 *                  first one)
 *
 *   cc -O2 -pthread -I include -o bench_server Benchmarks/vigil-c/bench_server.c \
 *      .build-c/libvigil.a $(pkg-config --libs libuv)
 *   bench_server [--host H] [--port N]
 *
 * One loop. SIGINT/SIGTERM: shutdown, wait, free, exit 0.
 */
#include <vigil.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char HELLO[] = "Hello, World!";
static const char NOT_FOUND[] = "Not Found\n";
static const vigil_header_t TEXT[] = {{"Content-Type", 12, "text/plain", 10}};
static const vigil_header_t OCTETS[] = {{"Content-Type", 12, "application/octet-stream", 24}};

static vigil_server_t *server;

static int is(const char *s, size_t len, const char *lit) {
  size_t n = strlen(lit);
  return len == n && memcmp(s, lit, n) == 0;
}
static int starts(const char *s, size_t len, const char *lit) {
  size_t n = strlen(lit);
  return len >= n && memcmp(s, lit, n) == 0;
}

/* ---- /wait and /cancels ------------------------------------------------ */
static pthread_mutex_t cancels_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t *cancels;
static size_t ncancels, capcancels;

static void on_wait_cancel(vigil_request_t *req, vigil_reason_t reason, void *userdata) {
  (void)req;
  (void)userdata;
  if (reason == VIGIL_REASON_HANDLER_FINISHED) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  pthread_mutex_lock(&cancels_lock);
  if (ncancels == capcancels) {
    size_t cap = capcancels ? capcancels * 2 : 1024;
    int64_t *p = realloc(cancels, cap * sizeof *p);
    if (p) {
      cancels = p;
      capcancels = cap;
    }
  }
  if (ncancels < capcancels) cancels[ncancels++] = now;
  pthread_mutex_unlock(&cancels_lock);
}

static void send_cancels(vigil_request_t *req) {
  pthread_mutex_lock(&cancels_lock);
  size_t cap = ncancels * 21 + 1, len = 0;
  char *text = malloc(cap);
  for (size_t i = 0; text && i < ncancels; i++)
    len += (size_t)snprintf(text + len, cap - len, "%lld\n", (long long)cancels[i]);
  pthread_mutex_unlock(&cancels_lock);
  vigil_response_send(req, 200, TEXT, 1, text ? text : "", len);
  free(text);
}

/* ---- /stream ------------------------------------------------------------ */
#define BLOCK_MAX (1024 * 1024)
static char block[BLOCK_MAX];

typedef struct stream_s {
  vigil_request_t *req;
  long left, index;
  size_t size;
  struct stream_s *prev, *next; /* the ticking list (ms > 0) */
  int ticking, ended;
} stream_t;

static stream_t ticking; /* list head (loop thread only) */
static pthread_mutex_t ticker_lock = PTHREAD_MUTEX_INITIALIZER;
static long ticker_ms; /* 0: no ticker thread yet */
static int stopping;    /* set under ticker_lock before the server is freed */

static void stream_unlink(stream_t *s) {
  if (!s->ticking) return;
  s->prev->next = s->next;
  s->next->prev = s->prev;
  s->ticking = 0;
}

/* Registered with vigil_request_on_cancel: runs once, when the request
 * ends either way; the last callback that touches `s`. */
static void on_stream_end(vigil_request_t *req, vigil_reason_t reason, void *userdata) {
  stream_t *s = userdata;
  stream_unlink(s);
  if (reason != VIGIL_REASON_HANDLER_FINISHED) vigil_request_finish(req);
  free(s);
}

static int stream_write_one(stream_t *s, vigil_write_cb cb) {
  s->left--;
  if (s->size > 0) return vigil_response_write(s->req, block, s->size, cb, s);
  char line[32];
  int k = snprintf(line, sizeof line, "chunk %ld\n", s->index++);
  return vigil_response_write(s->req, line, (size_t)k, cb, s);
}

static void stream_end(stream_t *s) {
  if (s->ended) return;
  s->ended = 1;
  stream_unlink(s);
  vigil_response_end(s->req);
  vigil_request_finish(s->req); /* on_stream_end frees s */
}

/* ms = 0: the next chunk once the previous one is queued under the limit. */
static void on_block_written(vigil_request_t *req, int status, void *userdata) {
  (void)req;
  stream_t *s = userdata;
  if (status != 0 || s->ended) return;
  if (s->left == 0) {
    stream_end(s);
    return;
  }
  stream_write_one(s, on_block_written);
}

static void tick(void *userdata) {
  (void)userdata;
  stream_t *s = ticking.next, *next;
  for (; s != &ticking; s = next) {
    next = s->next;
    if (stream_write_one(s, NULL) != 0 || s->left == 0) stream_end(s);
  }
}

static void *ticker_main(void *arg) {
  long ms = (long)(intptr_t)arg;
  for (;;) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&ticker_lock);
    int r = stopping ? VIGIL_ESHUTDOWN : vigil_server_post(server, 0, tick, NULL);
    pthread_mutex_unlock(&ticker_lock);
    if (r == VIGIL_ESHUTDOWN) return NULL;
  }
}

static long query(const char *t, size_t len, const char *key) {
  const char *q = memchr(t, '?', len);
  size_t k = strlen(key);
  while (q && q < t + len) {
    q++;
    if ((size_t)(t + len - q) > k && memcmp(q, key, k) == 0 && q[k] == '=')
      return strtol(q + k + 1, NULL, 10);
    q = memchr(q, '&', (size_t)(t + len - q));
  }
  return -1;
}

static void start_stream(vigil_request_t *req, const char *target, size_t tlen) {
  long n = query(target, tlen, "n"), size = query(target, tlen, "size"), ms = query(target, tlen, "ms");
  stream_t *s = calloc(1, sizeof *s);
  if (!s || vigil_response_start(req, 200, TEXT, 1, -1) != 0) {
    free(s);
    if (vigil_request_reason(req) == VIGIL_REASON_NONE) vigil_request_finish(req);
    return;
  }
  s->req = req;
  s->left = n < 0 ? 10 : n;
  s->size = size <= 0 ? 0 : (size_t)(size > BLOCK_MAX ? BLOCK_MAX : size);
  vigil_request_on_cancel(req, on_stream_end, s);
  if (vigil_request_reason(req) != VIGIL_REASON_NONE) return; /* ended: on_stream_end ran */
  if (s->left == 0) {
    stream_end(s);
    return;
  }
  if (ms <= 0) {
    stream_write_one(s, on_block_written);
    return;
  }
  /* the first chunk now, then one per tick */
  if (stream_write_one(s, NULL) != 0 || s->left == 0) {
    stream_end(s);
    return;
  }
  s->next = &ticking;
  s->prev = ticking.prev;
  ticking.prev->next = s;
  ticking.prev = s;
  s->ticking = 1;
  pthread_mutex_lock(&ticker_lock);
  if (ticker_ms == 0) {
    pthread_t t;
    ticker_ms = ms;
    if (pthread_create(&t, NULL, ticker_main, (void *)(intptr_t)ms) == 0) pthread_detach(t);
  }
  pthread_mutex_unlock(&ticker_lock);
}

/* ---- /echo -------------------------------------------------------------- */
static void on_echo_written(vigil_request_t *req, int status, void *userdata) {
  (void)userdata;
  if (status == 0) vigil_request_body_start(req);
}

static void on_body(vigil_request_t *req, const char *data, size_t len, int end, void *userdata) {
  (void)userdata;
  if (len > 0 && vigil_response_write(req, data, len, on_echo_written, NULL) == 0)
    vigil_request_body_pause(req);
  if (end) {
    vigil_response_end(req);
    vigil_request_finish(req);
  }
}

static void on_request_done(vigil_request_t *req, vigil_reason_t reason, void *userdata) {
  (void)userdata;
  /* /echo ended early (client gone): give the handler reference back.
   * /wait and /stream give theirs back in their cancellation callbacks (a
   * second finish is ignored). */
  if (reason != VIGIL_REASON_HANDLER_FINISHED) vigil_request_finish(req);
}

static void on_request(vigil_request_t *req, void *userdata) {
  (void)userdata;
  size_t mlen, tlen;
  const char *method = vigil_request_method(req, &mlen);
  const char *target = vigil_request_target(req, &tlen);
  int get = (mlen == 3 && memcmp(method, "GET", 3) == 0) ||
            (mlen == 4 && memcmp(method, "HEAD", 4) == 0);
  if (get && tlen == 1 && target[0] == '/') { /* as examples/c/hello.c */
    vigil_response_send(req, 200, TEXT, 1, HELLO, sizeof HELLO - 1);
    vigil_request_finish(req);
    return;
  }
  if (get && is(target, tlen, "/wait")) {
    vigil_request_on_cancel(req, on_wait_cancel, NULL);
    return; /* held: on_request_done finishes it */
  }
  if (get && is(target, tlen, "/cancels")) {
    send_cancels(req);
    vigil_request_finish(req);
    return;
  }
  if (get && (is(target, tlen, "/stream") || starts(target, tlen, "/stream?"))) {
    start_stream(req, target, tlen);
    return;
  }
  if (is(method, mlen, "POST") && is(target, tlen, "/echo")) {
    int has_body = vigil_request_has_body(req);
    if (has_body) vigil_request_body_start(req);
    if (vigil_response_start(req, 200, OCTETS, 1, vigil_request_content_length(req)) != 0) {
      if (vigil_request_reason(req) == VIGIL_REASON_NONE) vigil_request_finish(req);
      return;
    }
    if (!has_body) {
      vigil_response_end(req);
      vigil_request_finish(req);
    }
    return;
  }
  vigil_response_send(req, 404, TEXT, 1, NOT_FOUND, sizeof NOT_FOUND - 1);
  vigil_request_finish(req);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  long port = 8080;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) host = argv[++i];
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = strtol(argv[++i], NULL, 10);
    else {
      fprintf(stderr, "usage: %s [--host H] [--port N]\n", argv[0]);
      return 2;
    }
  }
  memset(block, 'x', sizeof block);
  ticking.next = ticking.prev = &ticking;

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  vigil_config_t config;
  vigil_config_init(&config);
  config.host = host;
  config.port = (uint16_t)port;
  config.on_request = on_request;
  config.on_body = on_body;
  config.on_request_done = on_request_done;

  int r = vigil_server_new(&server, &config);
  if (r == 0 && (r = vigil_server_start(server)) != 0) vigil_server_free(server);
  if (r != 0) {
    fprintf(stderr, "bench_server: cannot start on %s:%ld: %s\n", host, port, vigil_strerror(r));
    return 1;
  }
  printf("bench_server: listening on http://%s:%d/\n", host, vigil_server_port(server));
  fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  vigil_server_shutdown(server, 2000);
  vigil_server_wait(server);
  pthread_mutex_lock(&ticker_lock);
  stopping = 1;
  pthread_mutex_unlock(&ticker_lock);
  vigil_server_free(server);
  return 0;
}
