/*
 * floor.c — the "floor": the fastest an HTTP/1.1 responder on libuv can be on
 * this machine, used as the 100% mark for every other server.
 *
 * No parser. For each read it counts the occurrences of "\r\n\r\n" (the end of
 * a request head) and writes that many canned responses:
 *
 *   HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!
 *
 * A request head split across reads is handled by remembering how much of the
 * terminator the previous read ended with (0..3 bytes of "\r\n\r\n"; this is the
 * same information as keeping the last 3 bytes, in one small integer).
 * Request bodies are not supported (the benchmarks send none).
 *
 * One loop, one thread; one static read buffer (reads are handled one at a
 * time); responses are written from a static, pre-built buffer, with
 * uv_try_write first and uv_write only for what the kernel did not take.
 * Per connection memory: the uv_tcp_t plus a few bytes.
 *
 * Build:  cc -O2 -o floor floor.c -luv
 * Usage:  floor [--host 127.0.0.1] [--port 8080]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "../bench_sock.h"

#define RESPONSE \
    "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!"
#define RESPONSE_LEN (sizeof(RESPONSE) - 1)
#define CANNED_COUNT 64 /* responses in the pre-built buffer */
#define READ_BUF_SIZE 65536

typedef struct {
    uv_tcp_t tcp; /* must be first */
    unsigned match; /* bytes of "\r\n\r\n" matched at the end of the last read */
} conn_t;

static char canned[RESPONSE_LEN * CANNED_COUNT];
static char read_buf[READ_BUF_SIZE];
static int read_buf_busy;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    /* One loop thread, and libuv pairs each alloc with its read callback
     * before the next alloc, so one static buffer is enough. */
    if (read_buf_busy) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    read_buf_busy = 1;
    buf->base = read_buf;
    buf->len = sizeof(read_buf);
}

static void on_close(uv_handle_t *h) { free(h); }

static void on_write(uv_write_t *req, int status) {
    (void)status; /* on error the read side sees it too and closes */
    free(req);
}

/* Count complete "\r\n\r\n" terminators in p[0..n), continuing the match
 * state from the previous read. */
static size_t count_terminators(conn_t *c, const char *p, size_t n) {
    unsigned st = c->match;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '\r') {
            st = (st == 2) ? 3 : 1;
        } else if (ch == '\n') {
            if (st == 1) st = 2;
            else if (st == 3) { count++; st = 0; }
            else st = 0;
        } else {
            st = 0;
        }
    }
    c->match = st;
    return count;
}

static void send_responses(conn_t *c, size_t count) {
    while (count > 0) {
        size_t k = count > CANNED_COUNT ? CANNED_COUNT : count;
        count -= k;
        size_t len = k * RESPONSE_LEN;
        uv_buf_t b = uv_buf_init(canned, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n == (int)len) continue;
        if (n < 0 && n != UV_EAGAIN) {
            if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_close);
            return;
        }
        if (n > 0) {
            b.base += n;
            b.len -= (size_t)n;
        }
        uv_write_t *req = malloc(sizeof(*req));
        if (!req) abort();
        if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
            free(req);
            if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_close);
            return;
        }
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = (conn_t *)s;
    if (buf->base == read_buf) read_buf_busy = 0;
    if (nread > 0) {
        size_t count = count_terminators(c, buf->base, (size_t)nread);
        if (count) send_responses(c, count);
    } else if (nread < 0) {
        if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, on_close);
    }
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) abort();
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 8080;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--host") && i + 1 < argc) host = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--host 127.0.0.1] [--port 8080]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    bs_raise_nofile();
    for (int i = 0; i < CANNED_COUNT; i++) memcpy(canned + i * RESPONSE_LEN, RESPONSE, RESPONSE_LEN);

    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    struct sockaddr_storage addr;
    int r = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)
                              : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (r == 0) r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (r == 0) r = uv_listen((uv_stream_t *)&server, 4096, on_connection);
    if (r != 0) {
        fprintf(stderr, "floor: cannot listen on %s:%d: %s\n", host, port, uv_strerror(r));
        return 1;
    }
    printf("floor listening on %s:%d\n", host, port);
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
