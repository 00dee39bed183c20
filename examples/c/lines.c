/*
 * lines.c - a hijacked connection: a line echo protocol behind an HTTP
 * Upgrade, the way WebSocket or CONNECT handlers take a connection over.
 *
 *   cc lines.c $(pkg-config --cflags --libs vigil) -o lines
 *   ./lines 8080
 *   printf 'GET /lines HTTP/1.1\r\nHost: x\r\nUpgrade: lines\r\nConnection: Upgrade\r\n\r\nhello\nquit\n' \
 *     | nc 127.0.0.1 8080
 *
 * After "101 Switching Protocols" every line the client sends comes back
 * as "> line"; "quit" ends the session ("bye"). Bytes the client sent right
 * behind the request head (here: "hello\nquit\n" in the same packet) are
 * not lost: the core hands them over first.
 *
 * vigil_request_hijack() stops HTTP on the connection;
 * vigil_request_body_start() then delivers the raw bytes to on_body;
 * vigil_hijack_write() writes, and vigil_request_finish() closes. The read
 * stays armed, so a client that goes away still ends the request
 * (on_request_done with the reason).
 *
 * SIGINT/SIGTERM: graceful shutdown, wait, free, exit 0.
 */
#include <vigil.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Per hijacked connection; only the loop thread touches it. */
typedef struct {
  char line[1024];
  size_t len;
  int overflow;   /* the current line is longer than `line`: dropped */
  int finished;   /* vigil_request_finish called */
  int in_body;    /* on_body is running */
  int done;       /* on_request_done ran: free when on_body returns */
} session_t;

static const char SWITCH[] =
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: lines\r\n\r\n"
    "welcome: type lines, \"quit\" to leave\n";

static void end_session(vigil_request_t *req, session_t *s) {
  if (s->finished) return;
  s->finished = 1;
  /* Gives the handler reference back and, the connection being hijacked,
   * closes it once what was written is flushed. (vigil_hijack_close() does
   * the close alone, for a handler that keeps its reference a while.) */
  vigil_request_finish(req);
}

static void on_request(vigil_request_t *req, void *userdata) {
  (void)userdata;
  static const vigil_header_t text[] = {{"Content-Type", 12, "text/plain", 10}};
  size_t tlen, ulen = 0;
  const char *target = vigil_request_target(req, &tlen);
  const char *upgrade = vigil_request_header(req, "Upgrade", &ulen);
  if (!(tlen == 6 && memcmp(target, "/lines", 6) == 0)) {
    static const char msg[] = "connect with GET /lines and Upgrade: lines\n";
    vigil_response_send(req, 404, text, 1, msg, sizeof msg - 1);
    vigil_request_finish(req);
    return;
  }
  if (upgrade == NULL || ulen != 5 || strncasecmp(upgrade, "lines", 5) != 0) {
    static const char msg[] = "this resource needs Upgrade: lines\n";
    static const vigil_header_t h[] = {{"Content-Type", 12, "text/plain", 10},
                                       {"Upgrade", 7, "lines", 5}};
    vigil_response_send(req, 426, h, 2, msg, sizeof msg - 1);
    vigil_request_finish(req);
    return;
  }
  session_t *s = calloc(1, sizeof *s);
  if (s == NULL || vigil_request_hijack(req) != 0) {
    free(s);
    vigil_request_finish(req); /* 500 */
    return;
  }
  vigil_request_set_data(req, s);
  /* The status line is ours to write now: the core speaks no more HTTP. */
  vigil_hijack_write(req, SWITCH, sizeof SWITCH - 1, NULL, NULL);
  vigil_request_body_start(req); /* raw bytes to on_body from here */
}

static void on_line(vigil_request_t *req, session_t *s, const char *line, size_t len) {
  if (len > 0 && line[len - 1] == '\r') len--;
  if (len == 4 && memcmp(line, "quit", 4) == 0) {
    vigil_hijack_write(req, "bye\n", 4, NULL, NULL);
    end_session(req, s);
    return;
  }
  char out[1100];
  int n = snprintf(out, sizeof out, "> %.*s\n", (int)len, line);
  vigil_hijack_write(req, out, (size_t)n, NULL, NULL);
}

static void on_bytes(vigil_request_t *req, session_t *s, const char *data, size_t len,
                     int end) {
  for (size_t i = 0; i < len && !s->finished; i++) {
    if (data[i] == '\n') {
      if (!s->overflow) on_line(req, s, s->line, s->len);
      s->len = 0;
      s->overflow = 0;
    } else if (s->len < sizeof s->line) {
      s->line[s->len++] = data[i];
    } else {
      s->overflow = 1;
    }
  }
  if (end) end_session(req, s); /* the client half-closed */
}

static void on_body(vigil_request_t *req, const char *data, size_t len, int end,
                    void *userdata) {
  (void)userdata;
  session_t *s = vigil_request_get_data(req);
  if (s == NULL) return; /* not a hijacked request: bodies are ignored */
  /* vigil_request_finish() called from here runs on_request_done at once,
   * before on_body returns: the session must outlive this call. */
  s->in_body = 1;
  on_bytes(req, s, data, len, end);
  s->in_body = 0;
  if (s->done) free(s);
}

static void on_request_done(vigil_request_t *req, vigil_reason_t reason, void *userdata) {
  (void)userdata;
  session_t *s = vigil_request_get_data(req);
  if (s == NULL) return;
  if (reason != VIGIL_REASON_HANDLER_FINISHED)
    fprintf(stderr, "lines: session ended: %s\n", vigil_reason_name(reason));
  if (!s->finished) { /* the client left first */
    s->finished = 1;
    vigil_request_finish(req);
  }
  vigil_request_set_data(req, NULL);
  s->done = 1;
  if (!s->in_body) free(s);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  long port = 8080;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) host = argv[++i];
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = strtol(argv[++i], NULL, 10);
    else if (argv[i][0] != '-') port = strtol(argv[i], NULL, 10);
    else {
      fprintf(stderr, "usage: %s [--host H] [--port N | N]\n", argv[0]);
      return 2;
    }
  }
  if (port < 0 || port > 65535) {
    fprintf(stderr, "bad port %ld\n", port);
    return 2;
  }

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by the loop thread */

  vigil_config_t config;
  vigil_config_init(&config);
  config.host = host;
  config.port = (uint16_t)port;
  config.on_request = on_request;
  config.on_body = on_body;
  config.on_request_done = on_request_done;
  /* A client that half-closes still gets the answers to what it sent. */
  config.half_close = VIGIL_HALF_CLOSE_FINISH;

  vigil_server_t *server;
  int r = vigil_server_new(&server, &config);
  if (r == 0 && (r = vigil_server_start(server)) != 0) vigil_server_free(server);
  if (r != 0) {
    fprintf(stderr, "lines: cannot start on %s:%ld: %s\n", host, port, vigil_strerror(r));
    return 1;
  }
  printf("lines: listening on http://%s:%d/lines (Upgrade: lines)\n", host,
         vigil_server_port(server));
  fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  fprintf(stderr, "lines: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  vigil_server_shutdown(server, 2000);
  vigil_server_wait(server);
  vigil_server_free(server);
  return 0;
}
