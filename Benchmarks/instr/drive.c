/*
 * drive.c - a deterministic load for instruction counting: one connection,
 * N requests `GET / HTTP/1.1` with the Host header wrk sends, written DEPTH
 * at a time (DEPTH 1 = keep-alive, one request per write; 16 = wrk's
 * pipeline.lua). Reads until N responses have arrived (every response to
 * GET / has the same length, learnt from the first), then exits 0.
 *
 *   drive --port N [--requests 1000] [--depth 1]
 *
 * Every socket operation has a 10 s timeout; exits 1 on any error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../bench_sock.h"

static int die(const char *what) {
  perror(what);
  exit(1);
}

static void write_all(int fd, const char *p, size_t n) {
  if (bs_send_all(fd, p, n) != 0) die("write");
}

int main(int argc, char **argv) {
  int port = 0;
  long requests = 1000, depth = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--requests")) requests = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--depth")) depth = atol(argv[i + 1]);
  }
  if (port <= 0 || requests <= 0 || depth <= 0 || depth > 1024) {
    fprintf(stderr, "usage: drive --port N [--requests N] [--depth D]\n");
    return 2;
  }
  int fd = bs_connect("127.0.0.1", port, 10000);
  if (fd < 0) die("connect");

  char req[128];
  int rlen = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
  char *batch = malloc((size_t)rlen * (size_t)depth);
  if (!batch) die("malloc");
  for (long i = 0; i < depth; i++) memcpy(batch + i * rlen, req, (size_t)rlen);

  /* The first response alone, to learn its length. */
  static char buf[1 << 16];
  write_all(fd, req, (size_t)rlen);
  size_t have = 0, resp_len = 0;
  while (resp_len == 0) {
    ssize_t r = read(fd, buf + have, sizeof buf - have - 1);
    if (r <= 0) die("read");
    have += (size_t)r;
    buf[have] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    char *cl = strcasestr(buf, "\r\ncontent-length:");
    if (end && cl && cl < end) {
      size_t body = strtoul(cl + 17, NULL, 10);
      resp_len = (size_t)(end + 4 - buf) + body;
      if (have > resp_len) { fprintf(stderr, "unexpected extra bytes\n"); return 1; }
      while (have < resp_len) {
        r = read(fd, buf + have, sizeof buf - have);
        if (r <= 0) die("read");
        have += (size_t)r;
      }
    }
  }

  long sent = 1;
  size_t expect = resp_len * (size_t)(requests - 1), got = 0;
  while (sent < requests) {
    long n = requests - sent < depth ? requests - sent : depth;
    write_all(fd, batch, (size_t)rlen * (size_t)n);
    sent += n;
    size_t want = got + resp_len * (size_t)n;
    while (got < want) {
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0) die("read");
      got += (size_t)r;
    }
  }
  if (got != expect) { fprintf(stderr, "got %zu bytes, expected %zu\n", got, expect); return 1; }
  close(fd);
  free(batch);
  return 0;
}
