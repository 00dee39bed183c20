/*
 * echo.c - POST /echo streams the request body back as it arrives.
 *
 *   cc echo.c $(pkg-config --cflags --libs vigil) -o echo
 *   ./echo 8080
 *   curl --data-binary @somefile http://127.0.0.1:8080/echo
 *   curl -T - http://127.0.0.1:8080/echo -X POST     # chunked, from stdin
 *
 * Everything runs on the loop thread, in callbacks:
 *   on_request  starts a streamed response (chunked for HTTP/1.1) and asks
 *               for the body with vigil_request_body_start(), which also
 *               answers "Expect: 100-continue";
 *   on_body     writes each piece back with vigil_response_write(), and
 *               pauses the body until that write completes, so a client
 *               that sends faster than it reads cannot make the server
 *               buffer without bound (the write callback resumes it);
 *   the last piece ends the response and finishes the request;
 *   on_request_done tells when a request ended early (client gone, bad
 *               chunked framing): the handler reference is given back there.
 *
 * SIGINT/SIGTERM: graceful shutdown, wait, free, exit 0.
 */
#include <vigil.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const vigil_header_t OCTETS[] = {
    {"Content-Type", 12, "application/octet-stream", 24},
};
static const vigil_header_t TEXT[] = {{"Content-Type", 12, "text/plain", 10}};

static int is(const char *s, size_t len, const char *lit) {
  return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

static void on_request(vigil_request_t *req, void *userdata) {
  (void)userdata;
  size_t mlen, tlen;
  const char *method = vigil_request_method(req, &mlen);
  const char *target = vigil_request_target(req, &tlen);
  if (!is(target, tlen, "/echo")) {
    static const char msg[] = "POST a body to /echo\n";
    vigil_response_send(req, 404, TEXT, 1, msg, sizeof msg - 1);
    vigil_request_finish(req);
    return;
  }
  if (!is(method, mlen, "POST") && !is(method, mlen, "PUT")) {
    static const char msg[] = "use POST\n";
    static const vigil_header_t allow[] = {
        {"Content-Type", 12, "text/plain", 10}, {"Allow", 5, "POST, PUT", 9}};
    vigil_response_send(req, 405, allow, 2, msg, sizeof msg - 1);
    vigil_request_finish(req);
    return;
  }
  /* Ask for the body first: that sends "100 Continue" to a client that
   * waits for it, which is no longer allowed once a response has started.
   * Without a body on_body would never be called: answer at once. */
  int has_body = vigil_request_has_body(req);
  if (has_body) vigil_request_body_start(req);
  /* The length is known up front when the client sent Content-Length. */
  int64_t length = vigil_request_content_length(req); /* -1: chunked */
  if (vigil_response_start(req, 200, OCTETS, 1, length) != 0) {
    /* Cancelled already (on_request_done finishes it) or out of memory. */
    if (vigil_request_reason(req) == VIGIL_REASON_NONE) vigil_request_finish(req);
    return;
  }
  if (!has_body) {
    vigil_response_end(req);
    vigil_request_finish(req);
  }
}

/* A write was queued and the output is under the server's limit again:
 * take more body. (After a cancellation status is VIGIL_ECANCELED and the
 * request is over: nothing to do.) */
static void on_written(vigil_request_t *req, int status, void *userdata) {
  (void)userdata;
  if (status == 0) vigil_request_body_start(req);
}

static void on_body(vigil_request_t *req, const char *data, size_t len, int end,
                    void *userdata) {
  (void)userdata;
  if (len > 0 && vigil_response_write(req, data, len, on_written, NULL) == 0)
    vigil_request_body_pause(req);
  if (end) {
    vigil_response_end(req);
    vigil_request_finish(req);
  }
}

static void on_request_done(vigil_request_t *req, vigil_reason_t reason,
                            void *userdata) {
  (void)userdata;
  /* Everything here runs on the loop thread, and our handlers finish
   * synchronously, so a reason other than "handlerFinished" means the
   * request ended before we finished it (client closed or reset, malformed
   * body): no more on_body calls will come; give the reference back. */
  if (reason != VIGIL_REASON_HANDLER_FINISHED) {
    fprintf(stderr, "echo: request ended early: %s\n", vigil_reason_name(reason));
    vigil_request_finish(req);
  }
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

  vigil_server_t *server;
  int r = vigil_server_new(&server, &config);
  if (r == 0 && (r = vigil_server_start(server)) != 0) vigil_server_free(server);
  if (r != 0) {
    fprintf(stderr, "echo: cannot start on %s:%ld: %s\n", host, port, vigil_strerror(r));
    return 1;
  }
  printf("echo: listening on http://%s:%d/echo\n", host, vigil_server_port(server));
  fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  fprintf(stderr, "echo: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  vigil_server_shutdown(server, 2000);
  vigil_server_wait(server);
  vigil_server_free(server);
  return 0;
}
