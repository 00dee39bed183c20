/*
 * hello.c - the smallest Vigil server: GET / answers "Hello, World!".
 *
 *   cc hello.c $(pkg-config --cflags --libs vigil) -o hello
 *   ./hello 8080                      # or: ./hello --host 0.0.0.0 --port 8080
 *
 * Port 0 picks a free port; the line printed at start says which. SIGINT or
 * SIGTERM stops it gracefully (shutdown, wait, free) and it exits 0.
 *
 * Also the C benchmark server: `make vigil-c-bench` builds this file as
 * .build-c/vigil-c-bench (statically linked against libvigil.a), started as
 * `vigil-c-bench --host H --port N [--loops N]`.
 */
#include <vigil.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char HELLO[] = "Hello, World!";
static const char NOT_FOUND[] = "Not Found\n";

/* on_request runs on a loop thread: answer at once, in the callback. */
static void on_request(vigil_request_t *req, void *userdata) {
  (void)userdata;
  static const vigil_header_t headers[] = {
      {"Content-Type", 12, "text/plain", 10},
  };
  size_t mlen, tlen;
  const char *method = vigil_request_method(req, &mlen);
  const char *target = vigil_request_target(req, &tlen);
  int get = (mlen == 3 && memcmp(method, "GET", 3) == 0) ||
            (mlen == 4 && memcmp(method, "HEAD", 4) == 0);
  if (get && tlen == 1 && target[0] == '/')
    vigil_response_send(req, 200, headers, 1, HELLO, sizeof HELLO - 1);
  else
    vigil_response_send(req, 404, headers, 1, NOT_FOUND, sizeof NOT_FOUND - 1);
  vigil_request_finish(req); /* give back the handler reference */
}

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s [--host H] [--port N | N] [--loops N]\n", argv0);
  exit(2);
}

static long number(const char *s, const char *argv0, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *s == '\0' || *end != '\0' || v < 0 || v > max) usage(argv0);
  return v;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  long port = 8080, loops = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) host = argv[++i];
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = number(argv[++i], argv[0], 65535);
    else if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc) loops = number(argv[++i], argv[0], 256);
    else if (argv[i][0] != '-') port = number(argv[i], argv[0], 65535);
    else usage(argv[0]);
  }

  /* Block SIGINT/SIGTERM before any thread exists: the loop threads inherit
   * the mask, and main receives the signals with sigwait() below, where it
   * may call anything (a signal handler could not call vigil_*). */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  vigil_config_t config;
  vigil_config_init(&config);
  config.host = host;
  config.port = (uint16_t)port;
  config.loops = loops > 0 ? (unsigned)loops : 1;
  config.on_request = on_request;

  vigil_server_t *server;
  int r = vigil_server_new(&server, &config);
  if (r != 0) {
    fprintf(stderr, "vigil_server_new: %s\n", vigil_strerror(r));
    return 1;
  }
  r = vigil_server_start(server);
  if (r != 0) {
    fprintf(stderr, "vigil_server_start %s:%ld: %s\n", host, port, vigil_strerror(r));
    vigil_server_free(server);
    return 1;
  }
  printf("hello: listening on http://%s:%d/\n", host, vigil_server_port(server));
  fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  fprintf(stderr, "hello: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  vigil_server_shutdown(server, 2000); /* in-flight requests get 2 s */
  vigil_server_wait(server);
  vigil_server_free(server);
  return 0;
}
