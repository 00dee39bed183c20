/*
 * bodyload.c - the big-body A/B client of Benchmarks/ab: one keep-alive
 * loopback connection, `--requests N` requests, each either
 *   --post BYTES   POST /echo with a Content-Length body of BYTES, the echo
 *                  read back while sending (poll), or
 *   --get PATH     GET PATH (e.g. /stream?n=1024&size=65536),
 * the response body read to its end (Content-Length or chunked, decoded)
 * and thrown away. Prints
 *   RESULT mbps=<body MB/s, request+response bytes / wall> bytes=<..> secs=<..>
 *          cpu=<server CPU seconds over the run, from /proc/PID/stat> cpu_per_gb=<..>
 * (--pid PID for the CPU figures). MB = 10^6 bytes.
 *   cc -O2 -o bodyload Benchmarks/ab/bodyload.c
 */
#define _GNU_SOURCE
#include "../bench_sock.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_of(int pid) {
  if (pid <= 0) return 0;
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  unsigned long ut = 0, st = 0;
  /* after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Response parser state */
static char rspace[1 << 20];
static char *rbuf = rspace; /* unconsumed bytes: rbuf[0..rlen) */
static size_t rlen;

/* Drop the first n unconsumed bytes (no copy: the window moves). */
static void consume(size_t n) {
  rbuf += n;
  rlen -= n;
  if (rlen == 0) rbuf = rspace;
}

static int fd;
static int rd(void) {
  if (rbuf != rspace && (size_t)(rbuf - rspace) + rlen > sizeof rspace / 2) {
    memmove(rspace, rbuf, rlen);
    rbuf = rspace;
  }
  size_t room = sizeof rspace - (size_t)(rbuf - rspace) - rlen;
  if (room == 0) return -1;
  ssize_t r = recv(fd, rbuf + rlen, room, 0);
  if (r <= 0) return -1;
  rlen += (size_t)r;
  return 0;
}

typedef struct {
  int stage; /* 0 head, 1 fixed body, 2 chunk size line, 3 chunk data, 4 chunk CRLF, 5 trailers, 6 done */
  long long left;
  long long body;
} resp_t;

/* Consume what is in rbuf; returns 1 when the response is complete. */
static int feed(resp_t *r) {
  for (;;) {
    if (r->stage == 0) {
      char *e = memmem(rbuf, rlen, "\r\n\r\n", 4);
      if (!e) return 0;
      size_t hl = (size_t)(e + 4 - rbuf);
      rbuf[hl - 1] = 0;
      if (strncmp(rbuf, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "bad response: %.80s\n", rbuf);
        exit(1);
      }
      char *cl = strcasestr(rbuf, "\r\ncontent-length:");
      if (cl) {
        r->left = atoll(cl + 17);
        r->stage = r->left ? 1 : 6;
      } else {
        r->stage = 2;
      }
      consume(hl);
    } else if (r->stage == 1 || r->stage == 3) {
      size_t n = rlen < (size_t)r->left ? rlen : (size_t)r->left;
      r->left -= (long long)n;
      r->body += (long long)n;
      consume(n);
      if (r->left) return 0;
      r->stage = r->stage == 1 ? 6 : 4;
    } else if (r->stage == 2 || r->stage == 4 || r->stage == 5) {
      char *e = memmem(rbuf, rlen, "\r\n", 2);
      if (!e) return 0;
      size_t ll = (size_t)(e + 2 - rbuf);
      if (r->stage == 2) {
        r->left = strtoll(rbuf, NULL, 16);
        r->stage = r->left ? 3 : 5;
      } else if (r->stage == 4) {
        r->stage = 2;
      } else if (ll == 2) {
        r->stage = 6;
      }
      consume(ll);
    } else {
      return 1;
    }
  }
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *path = NULL;
  int port = 0, pid = 0, requests = 10;
  size_t post = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--host")) host = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--pid")) pid = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--requests")) requests = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--post")) post = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--get")) path = argv[i + 1];
  }
  if (!port || (!post && !path)) {
    fprintf(stderr, "usage: bodyload --port N (--post BYTES | --get PATH) [--requests N] [--pid P]\n");
    return 2;
  }
  fd = bs_connect(host, port, 30000);
  if (fd < 0) { perror("connect"); return 1; }
  char *body = NULL;
  if (post) { body = malloc(post); memset(body, 'y', post); }
  char head[512];
  long long total = 0;
  double c0 = cpu_of(pid), t0 = now();
  for (int k = 0; k < requests; k++) {
    int hl = post ? snprintf(head, sizeof head,
                             "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n", post)
                  : snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    if (bs_send_all(fd, head, (size_t)hl) != 0) { perror("send"); return 1; }
    resp_t r = {0};
    size_t sent = 0;
    while (!feed(&r)) {
      struct pollfd p = {fd, POLLIN | (sent < post ? POLLOUT : 0), 0};
      if (poll(&p, 1, 30000) <= 0) { fprintf(stderr, "timeout\n"); return 1; }
      if (p.revents & POLLOUT) {
        ssize_t w = send(fd, body + sent, post - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) sent += (size_t)w;
        else if (w < 0 && errno != EAGAIN) { perror("send"); return 1; }
      }
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        if (rd() != 0) { fprintf(stderr, "connection closed\n"); return 1; }
      }
    }
    if (post && r.body != (long long)post) { fprintf(stderr, "echo length %lld\n", r.body); return 1; }
    total += r.body + (long long)sent;
  }
  double secs = now() - t0, cpu = cpu_of(pid) - c0;
  printf("RESULT mbps=%.1f bytes=%lld secs=%.3f cpu=%.2f cpu_per_gb=%.3f\n", total / secs / 1e6, total,
         secs, cpu, total ? cpu / (total / 1e9) : 0);
  close(fd);
  return 0;
}
