/*
 * cbig.c - the big-body A/B server of Benchmarks/ab: Vigil's C API, every
 * callback on the loop thread.
 *   POST /echo          the body streamed back (Content-Length when the
 *                       request had one, else chunked), paused until each
 *                       write completes (examples/c/echo.c's scheme);
 *   GET /stream?...     a body of `bytes` (default 64 MiB) in writes of
 *                       `size` (default 64 KiB), chunked (as vigil-demo's
 *                       /stream?n=..&size=..), the next write issued from
 *                       the previous one's completion.
 * Build (release objects): cc -O2 -I include cbig.c .build-c/libvigil.a $(pkg-config --libs libuv) -pthread
 */
#include <vigil.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const vigil_header_t OCTETS[] = {{"Content-Type", 12, "application/octet-stream", 24}};
static char block[1 << 20];

typedef struct { size_t left, size; } stream_t;

static size_t param(const char *t, size_t tl, const char *key, size_t dflt) {
  const char *q = memchr(t, '?', tl);
  size_t kl = strlen(key);
  while (q && q < t + tl) {
    q++;
    if ((size_t)(t + tl - q) > kl && memcmp(q, key, kl) == 0 && q[kl] == '=')
      return strtoull(q + kl + 1, NULL, 10);
    q = memchr(q, '&', (size_t)(t + tl - q));
  }
  return dflt;
}

static void stream_next(vigil_request_t *req, int status, void *ud);

static void stream_write(vigil_request_t *req, stream_t *s) {
  while (s->left > 0) {
    size_t n = s->left < s->size ? s->left : s->size;
    s->left -= n;
    if (vigil_response_write(req, block, n, stream_next, s) != 0) {
      free(s);
      vigil_request_finish(req);
    }
    return;
  }
  vigil_response_end(req);
  free(s);
  vigil_request_finish(req);
}

static void stream_next(vigil_request_t *req, int status, void *ud) {
  stream_t *s = ud;
  if (status != 0) {
    free(s);
    vigil_request_finish(req);
    return;
  }
  stream_write(req, s);
}

static void on_request(vigil_request_t *req, void *userdata) {
  (void)userdata;
  size_t tl;
  const char *t = vigil_request_target(req, &tl);
  if (tl >= 7 && memcmp(t, "/stream", 7) == 0) {
    stream_t *s = malloc(sizeof *s);
    s->left = param(t, tl, "bytes", 64u << 20);
    s->size = param(t, tl, "size", 64u << 10);
    if (s->size == 0 || s->size > sizeof block) s->size = 64u << 10;
    if (vigil_response_start(req, 200, OCTETS, 1, -1) != 0) {
      free(s);
      if (vigil_request_reason(req) == VIGIL_REASON_NONE) vigil_request_finish(req);
      return;
    }
    stream_write(req, s);
    return;
  }
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
}

static void on_written(vigil_request_t *req, int status, void *userdata) {
  (void)userdata;
  if (status == 0) vigil_request_body_start(req);
}

static void on_body(vigil_request_t *req, const char *data, size_t len, int end, void *userdata) {
  (void)userdata;
  if (len > 0 && vigil_response_write(req, data, len, on_written, NULL) == 0)
    vigil_request_body_pause(req);
  if (end) {
    vigil_response_end(req);
    vigil_request_finish(req);
  }
}

static void on_request_done(vigil_request_t *req, vigil_reason_t reason, void *userdata) {
  (void)userdata;
  if (reason != VIGIL_REASON_HANDLER_FINISHED) vigil_request_finish(req);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 8080;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) host = argv[++i];
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
  }
  memset(block, 'x', sizeof block);
  vigil_config_t config;
  vigil_config_init(&config);
  config.host = host;
  config.port = (uint16_t)port;
  config.max_body_bytes = 1ull << 40;
  config.on_request = on_request;
  config.on_body = on_body;
  config.on_request_done = on_request_done;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL); /* the loop threads inherit it */
  vigil_server_t *server;
  if (vigil_server_new(&server, &config) != 0 || vigil_server_start(server) != 0) return 1;
  int sig;
  sigwait(&set, &sig);
  vigil_server_shutdown(server, 1000);
  vigil_server_wait(server);
  vigil_server_free(server);
  return 0;
}
