/*
 * cancel_latency.c — how long from a client going away to the server's
 * handler observing cancellation.
 *
 * Needs a server with the two routes of Vigil's demo server (and of
 * Benchmarks/go):
 *   GET /wait     blocks until the request is cancelled (client gone) and then
 *                 records the wall-clock time (ns since the epoch) it saw it
 *   GET /cancels  the recorded times, one per line, oldest first
 *
 * Per round: connect to HOST:PORT, send `GET /wait HTTP/1.1`, sleep ~5 ms so
 * the handler is running, take CLOCK_REALTIME (ns), then close():
 *   --mode fin   plain close(): the kernel sends FIN
 *   --mode rst   SO_LINGER {1,0} then close(): the kernel sends RST
 * then sleep --gap-ms (default 2) before the next round's connect.
 *
 * Why the gap: on loopback the close() itself delivers the FIN and wakes
 * the server's thread, and the kernel wakes it on *this* CPU (a "sync"
 * wake-up: the waker is expected to sleep next). Going straight on to the
 * next connect() keeps this CPU, and the server waits for it: a perf
 * sched trace here showed the server thread woken 26 µs into close() and
 * run only once the client blocked. That measured the client, not the
 * server (~100 µs more at p50 on a 2-core VM, the same for every server).
 * --gap-ms 0 gives the old behaviour.
 * After all rounds, wait ~200 ms, GET /cancels, take the entries that appeared
 * during the run (the last N lines), pair them in order with the client
 * timestamps and print p50 / p99 / max of (server time - client time) in µs.
 * Both ends read the same clock (same machine), so the difference is the
 * latency.
 *
 * Every socket operation has a timeout (SO_RCVTIMEO / SO_SNDTIMEO, connect
 * included), every loop is bounded.
 *
 * Build:  cc -O2 -o cancel_latency cancel_latency.c
 * Usage:  cancel_latency --port N [--host 127.0.0.1] [--rounds 200]
 *                        [--mode fin|rst] [--sleep-ms 5] [--gap-ms 2]
 *                        [--settle-ms 200]
 *
 * Output: a human-readable block, then one machine-readable line:
 *   RESULT mode=fin rounds=200 observed=200 p50_us=... p99_us=... max_us=...
 * observed < rounds means the server missed some disconnects (then the
 * percentiles are over the observed ones, each paired with the latest client
 * close before it). p50_us=NA if none were observed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../bench_sock.h"

#define IO_TIMEOUT_MS 3000
#define MAX_RESPONSE (32u << 20) /* cap on the /cancels response */

static const char *host = "127.0.0.1";
static int port = 0;

static int64_t now_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Decode a chunked body in place; returns the decoded length or -1. */
static long dechunk(char *body, size_t len) {
    size_t in = 0, out = 0;
    for (int guard = 0; guard < 10000000; guard++) {
        char *eol = memmem(body + in, len - in, "\r\n", 2);
        if (!eol) return -1;
        unsigned long sz = strtoul(body + in, NULL, 16);
        in = (size_t)(eol - body) + 2;
        if (sz == 0) return (long)out;
        if (in + sz > len) return -1;
        memmove(body + out, body + in, sz);
        out += sz;
        in += sz + 2;
        if (in > len) return -1;
    }
    return -1;
}

/* GET path with Connection: close; returns a malloc'd NUL-terminated body
 * (NULL on failure), *status gets the status code. */
static char *http_get(const char *path, int *status) {
    int fd = bs_connect(host, port, IO_TIMEOUT_MS);
    if (fd < 0) return NULL;
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    if (bs_send_all(fd, req, (size_t)n) != 0) {
        close(fd);
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) abort();
    long content_length = -1;
    size_t header_end = 0;
    int chunked = 0;
    int64_t deadline = now_realtime_ns() + 10LL * 1000000000LL;
    while (now_realtime_ns() < deadline) {
        if (len == cap) {
            if (cap >= MAX_RESPONSE) break;
            cap *= 2;
            buf = realloc(buf, cap + 1);
            if (!buf) abort();
        }
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break; /* EOF, error or timeout */
        len += (size_t)r;
        buf[len] = 0;
        if (!header_end) {
            char *e = memmem(buf, len, "\r\n\r\n", 4);
            if (e) {
                header_end = (size_t)(e - buf) + 4;
                for (char *p = buf; p < e; p++) {
                    if (p == buf || p[-1] == '\n') {
                        if (!strncasecmp(p, "content-length:", 15)) content_length = strtol(p + 15, NULL, 10);
                        if (!strncasecmp(p, "transfer-encoding:", 18)) {
                            char *eol = memmem(p, (size_t)(e + 2 - p), "\r\n", 2);
                            char *ch = strcasestr(p, "chunked");
                            if (ch && eol && ch < eol) chunked = 1;
                        }
                    }
                }
            }
        }
        if (header_end && content_length >= 0 && len - header_end >= (size_t)content_length) break;
        if (header_end && chunked && len >= header_end + 5 && memmem(buf + header_end, len - header_end, "0\r\n\r\n", 5))
            break;
    }
    close(fd);
    buf[len] = 0;
    if (!header_end || sscanf(buf, "HTTP/1.%*d %d", status) != 1) {
        free(buf);
        return NULL;
    }
    size_t blen = len - header_end;
    if (content_length >= 0 && (size_t)content_length < blen) blen = (size_t)content_length;
    memmove(buf, buf + header_end, blen);
    buf[blen] = 0;
    if (chunked) {
        long d = dechunk(buf, blen);
        if (d < 0) {
            free(buf);
            return NULL;
        }
        buf[d] = 0;
    }
    return buf;
}

/* Parse one integer per line; returns the count, *out malloc'd. */
static size_t parse_times(const char *body, int64_t **out) {
    size_t cap = 1024, n = 0;
    int64_t *v = malloc(cap * sizeof *v);
    if (!v) abort();
    const char *p = body;
    while (*p) {
        while (*p == '\n' || *p == '\r' || *p == ' ') p++;
        if (!*p) break;
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p) { /* not a number: skip the line */
            const char *nl = strchr(p, '\n');
            if (!nl) break;
            p = nl + 1;
            continue;
        }
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            if (!v) abort();
        }
        v[n++] = x;
        p = end;
    }
    *out = v;
    return n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p) {
    /* nearest rank */
    size_t rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s --port N [--host 127.0.0.1] [--rounds 200] [--mode fin|rst] "
            "[--sleep-ms 5] [--gap-ms 2] [--settle-ms 200]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv) {
    int rounds = 200, rst = 0, sleep_each = 5, gap = 2, settle = 200;
    const char *mode = "fin";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sleep-ms") && i + 1 < argc) sleep_each = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gap-ms") && i + 1 < argc) gap = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--settle-ms") && i + 1 < argc) settle = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else usage(argv[0]);
    }
    if (port <= 0 || port > 65535 || rounds < 1 || rounds > 100000 || sleep_each < 0 || sleep_each > 10000 ||
        gap < 0 || gap > 10000 || settle < 0 || settle > 60000)
        usage(argv[0]);
    if (!strcmp(mode, "rst")) rst = 1;
    else if (strcmp(mode, "fin")) usage(argv[0]);

    int status = 0;
    char *before = http_get("/cancels", &status);
    if (!before || status != 200) {
        fprintf(stderr, "cancel_latency: GET /cancels on %s:%d failed (status %d): server has no /cancels route?\n",
                host, port, status);
        printf("RESULT mode=%s rounds=%d observed=0 p50_us=NA p99_us=NA max_us=NA error=no_cancels_route\n", mode,
               rounds);
        return 1;
    }
    int64_t *tmp;
    size_t baseline = parse_times(before, &tmp);
    free(tmp);
    free(before);

    int64_t *client = calloc((size_t)rounds, sizeof *client);
    if (!client) abort();
    int failures = 0, early = 0, done = 0;
    static const char wait_req[] = "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int r = 0; r < rounds; r++) {
        int fd = bs_connect(host, port, IO_TIMEOUT_MS);
        if (fd < 0 || bs_send_all(fd, wait_req, sizeof wait_req - 1) != 0) {
            if (fd >= 0) close(fd);
            failures++;
            if (failures > 20) {
                fprintf(stderr, "cancel_latency: too many connect/send failures, stopping\n");
                break;
            }
            continue;
        }
        bs_sleep_ms(sleep_each);
        /* Did the server already answer? Then /wait is not blocking. */
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 0) == 1) early++;
        if (rst) {
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        client[done++] = now_realtime_ns();
        close(fd);
        bs_sleep_ms(gap);
    }

    bs_sleep_ms(settle);
    char *after = http_get("/cancels", &status);
    if (!after || status != 200) {
        fprintf(stderr, "cancel_latency: final GET /cancels failed\n");
        printf("RESULT mode=%s rounds=%d observed=0 p50_us=NA p99_us=NA max_us=NA error=cancels_failed\n", mode,
               rounds);
        return 1;
    }
    int64_t *server;
    size_t total = parse_times(after, &server);
    free(after);
    size_t observed = total > baseline ? total - baseline : 0;
    if (observed > (size_t)done) observed = (size_t)done; /* extra ones are not ours: take the last N */
    int64_t *ours = server + (total - observed);

    double *lat = calloc(observed ? observed : 1, sizeof *lat);
    if (!lat) abort();
    size_t nl = 0;
    if (observed == (size_t)done) {
        for (size_t i = 0; i < observed; i++) lat[nl++] = (double)(ours[i] - client[i]) / 1000.0;
    } else {
        /* Some were missed: pair each server time with the latest client
         * close that precedes it. */
        for (size_t i = 0; i < observed; i++) {
            int64_t best = -1;
            for (int j = 0; j < done; j++)
                if (client[j] <= ours[i]) best = client[j];
            if (best >= 0) lat[nl++] = (double)(ours[i] - best) / 1000.0;
        }
    }

    printf("cancel latency, %s:%d, mode=%s (%s), rounds=%d, completed=%d, observed by server=%zu\n", host, port, mode,
           rst ? "RST via SO_LINGER{1,0}" : "FIN via close()", rounds, done, observed);
    if (early) printf("warning: %d of %d /wait requests were answered before the close (route not blocking?)\n", early,
                      done);
    if (failures) printf("warning: %d rounds failed to connect/send\n", failures);
    if (done > 0 && early * 2 > done) {
        printf("error: /wait answered before the client closed in %d of %d rounds: not a blocking /wait route\n", early,
               done);
        printf("RESULT mode=%s rounds=%d observed=%zu p50_us=NA p99_us=NA max_us=NA error=wait_not_blocking\n", mode,
               done, observed);
        return 1;
    }
    if (nl == 0) {
        printf("no cancellations observed\n");
        printf("RESULT mode=%s rounds=%d observed=0 p50_us=NA p99_us=NA max_us=NA\n", mode, done);
        return 0;
    }
    qsort(lat, nl, sizeof *lat, cmp_double);
    double p50 = percentile(lat, nl, 0.50), p99 = percentile(lat, nl, 0.99), mx = lat[nl - 1];
    printf("  min %.1f us   p50 %.1f us   p99 %.1f us   max %.1f us\n", lat[0], p50, p99, mx);
    printf("RESULT mode=%s rounds=%d observed=%zu p50_us=%.1f p99_us=%.1f max_us=%.1f\n", mode, done, observed, p50, p99,
           mx);
    free(lat);
    free(server);
    free(client);
    return 0;
}
