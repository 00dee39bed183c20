/*
 * idle_conns.c — memory a server spends per idle keep-alive connection.
 *
 * Reads the server's VmRSS from /proc/PID/status, opens K keep-alive
 * connections to HOST:PORT (in batches of 64), sends one
 * `GET / HTTP/1.1` on each and reads its complete response, so every
 * connection has been through one request and sits idle in keep-alive.
 * Waits ~1 s, reads VmRSS again, prints (after - before) / K, then closes every
 * connection (with SO_LINGER {1,0}, i.e. RST, so that 10k client sockets do
 * not sit in TIME_WAIT between benchmark runs) and exits.
 *
 * Raises its own RLIMIT_NOFILE (soft up to the hard limit, the hard limit too
 * if it is allowed to). Every socket operation has a timeout, loops are
 * bounded.
 *
 * Build:  cc -O2 -o idle_conns idle_conns.c
 * Usage:  idle_conns --port N --pid SERVER_PID [--host 127.0.0.1]
 *                    [--conns 10000] [--settle-ms 1000]
 *
 * Output: a human-readable line, then one machine-readable line:
 *   RESULT conns=10000 ok=10000 rss_before_kib=... rss_after_kib=... bytes_per_conn=... closed_by_server=0
 * (closed_by_server: connections the server had closed by the time RSS was
 * read; the per-connection figure is then an underestimate).
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../bench_sock.h"

#define IO_TIMEOUT_MS 5000
#define BATCH 64

static const char *host = "127.0.0.1";
static int port = 0;

static long read_vmrss_kib(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmRSS:", 6)) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

/* Read one complete response (Content-Length or chunked). 0 on success. */
static int read_response(int fd) {
    char buf[4096];
    size_t len = 0;
    for (int iter = 0; iter < 64; iter++) {
        ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        len += (size_t)r;
        buf[len] = 0;
        char *e = memmem(buf, len, "\r\n\r\n", 4);
        if (e) {
            size_t hdr = (size_t)(e - buf) + 4;
            long cl = -1;
            int chunked = 0;
            for (char *p = buf; p < e; p++) {
                if (p != buf && p[-1] != '\n') continue;
                if (!strncasecmp(p, "content-length:", 15)) cl = strtol(p + 15, NULL, 10);
                if (!strncasecmp(p, "transfer-encoding:", 18)) {
                    char *eol = memmem(p, (size_t)(e + 2 - p), "\r\n", 2);
                    char *c = strcasestr(p, "chunked");
                    if (c && eol && c < eol) chunked = 1;
                }
            }
            if (cl >= 0 && len - hdr >= (size_t)cl) return 0;
            if (chunked && memmem(buf + hdr, len - hdr, "0\r\n\r\n", 5)) return 0;
            if (cl < 0 && !chunked) return 0; /* no body framing: assume head only */
        }
        if (len >= sizeof buf - 1) return -1; /* too big for a hello response */
    }
    return -1;
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s --port N --pid SERVER_PID [--host 127.0.0.1] [--conns 10000] [--settle-ms 1000]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv) {
    int pid = 0, conns = 10000, settle = 1000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
        else if (!strcmp(argv[i], "--pid") && i + 1 < argc) pid = atoi(argv[++i]);
        else if ((!strcmp(argv[i], "--conns") || !strcmp(argv[i], "-k")) && i + 1 < argc) conns = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--settle-ms") && i + 1 < argc) settle = atoi(argv[++i]);
        else usage(argv[0]);
    }
    if (port <= 0 || port > 65535 || pid <= 0 || conns < 1 || conns > 200000 || settle < 0 || settle > 60000)
        usage(argv[0]);

    /* File descriptors: need conns + a few. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = (rlim_t)conns + 64;
        if (rl.rlim_max < want) {
            struct rlimit up = {want, want};
            if (setrlimit(RLIMIT_NOFILE, &up) == 0) rl = up;
        }
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < want) {
            int fit = (int)rl.rlim_cur - 64;
            fprintf(stderr, "idle_conns: RLIMIT_NOFILE is %lu, using %d connections instead of %d\n",
                    (unsigned long)rl.rlim_cur, fit, conns);
            conns = fit;
            if (conns < 1) return 1;
        }
    }

    long before = read_vmrss_kib(pid);
    if (before < 0) {
        fprintf(stderr, "idle_conns: cannot read /proc/%d/status\n", pid);
        printf("RESULT conns=%d ok=0 rss_before_kib=NA rss_after_kib=NA bytes_per_conn=NA error=no_pid\n", conns);
        return 1;
    }

    int *fds = malloc((size_t)conns * sizeof *fds);
    if (!fds) abort();
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    int opened = 0, ok = 0, failures = 0;
    while (opened < conns && failures < 100) {
        int start = opened;
        int end = opened + BATCH < conns ? opened + BATCH : conns;
        for (int i = start; i < end; i++) {
            int fd = bs_connect(host, port, IO_TIMEOUT_MS);
            if (fd < 0 || bs_send_all(fd, req, sizeof req - 1) != 0) {
                if (fd >= 0) close(fd);
                failures++;
                end = i;
                break;
            }
            fds[opened++] = fd;
        }
        for (int i = start; i < end; i++) {
            if (read_response(fds[i]) == 0) ok++;
            else failures++;
        }
        if (end == start) bs_sleep_ms(10); /* connect failed: back off a little */
    }
    if (opened < conns) fprintf(stderr, "idle_conns: opened only %d of %d connections\n", opened, conns);

    bs_sleep_ms(settle);
    long after = read_vmrss_kib(pid);
    double per = opened > 0 && after >= 0 ? (double)(after - before) * 1024.0 / (double)opened : 0;

    /* Are they all still open? A server that closed idle connections early
     * would look cheaper than it is. */
    int closed = 0;
    struct pollfd *pfds = calloc((size_t)(opened ? opened : 1), sizeof *pfds);
    if (!pfds) abort();
    for (int i = 0; i < opened; i++) {
        pfds[i].fd = fds[i];
        pfds[i].events = POLLIN | POLLRDHUP;
    }
    if (opened > 0 && poll(pfds, (nfds_t)opened, 0) > 0) {
        for (int i = 0; i < opened; i++)
            if (pfds[i].revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) closed++;
    }
    free(pfds);

    printf("idle connections: %d open (%d answered), server pid %d VmRSS %ld KiB -> %ld KiB: %.0f bytes/conn (%.2f KiB)\n",
           opened, ok, pid, before, after, per, per / 1024.0);
    if (closed) printf("warning: %d connections were closed (or written to) by the server while idle\n", closed);
    printf("RESULT conns=%d ok=%d rss_before_kib=%ld rss_after_kib=%ld bytes_per_conn=%.0f closed_by_server=%d\n", opened,
           ok, before, after, per, closed);
    fflush(stdout);

    struct linger lg = {1, 0};
    for (int i = 0; i < opened; i++) {
        setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fds[i]);
    }
    free(fds);
    return ok == opened && opened == conns ? 0 : 1;
}
