/*
 * bench_sock.h - the socket code the benchmark C helpers share: a bounded
 * TCP connect (IPv4 or IPv6 literal), a send of a whole buffer, a sleep
 * that survives signals, and raising RLIMIT_NOFILE. Header-only (static
 * functions): each helper stays one file to build, as
 * `cc -O2 -o x Benchmarks/dir/x.c` (the include is relative to the
 * source). The C examples (examples/c) stand alone and do not use it.
 */
#ifndef BENCH_SOCK_H
#define BENCH_SOCK_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BS_UNUSED __attribute__((unused))

static BS_UNUSED void bs_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* A connected TCP socket to host:port (a numeric IPv4 or IPv6 address),
 * TCP_NODELAY on, with send and receive timeouts of `timeout_ms` (Linux
 * applies SO_SNDTIMEO to connect too: no wait is unbounded). -1 on
 * failure. */
static BS_UNUSED int bs_connect(const char *host, int port, int timeout_ms) {
  struct sockaddr_storage ss;
  socklen_t len;
  int family;
  memset(&ss, 0, sizeof ss);
  if (strchr(host, ':')) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return -1;
    len = sizeof *a;
    family = AF_INET6;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return -1;
    len = sizeof *a;
    family = AF_INET;
  }
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
      connect(fd, (struct sockaddr *)&ss, len) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Send all n bytes (no SIGPIPE; EINTR retried a bounded number of times).
 * 0, or -1. */
static BS_UNUSED int bs_send_all(int fd, const char *p, size_t n) {
  int tries = 0;
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR && ++tries < 100) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The soft RLIMIT_NOFILE up to the hard limit: thousands of connections
 * need thousands of descriptors. */
static BS_UNUSED void bs_raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

#endif /* BENCH_SOCK_H */
