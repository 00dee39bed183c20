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
 * --full (the new scenarios of Benchmarks/run.sh; without it nothing above
 * changes): still no HTTP parser, but each request head is looked at once
 * its "\r\n\r\n" has arrived (kept in a per-connection buffer of <= 8 KiB):
 *   - "POST": the number after "content-length:" (any case) is the body's
 *     length; a canned head with that Content-Length is written, then the
 *     body's bytes are written back as they are read (uv_try_write from the
 *     read buffer, a copy only of what the kernel did not take; reading
 *     stops while more than 1 MiB waits to be written);
 *   - "GET /stream?...size=B...n=N" (no "ms="): a canned head with
 *     Content-Length N*B, then N*B bytes of a static 256 KiB block, queued
 *     as one uv_write of many buffers;
 *   - anything else: the hello response; when the head contains
 *     "connection: close" (any case) the connection is closed once that
 *     response is written.
 * This is the same bytes a server would read and write, without HTTP.
 *
 * Build:  cc -O2 -o floor floor.c -luv
 * Usage:  floor [--host 127.0.0.1] [--port 8080] [--full]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
static int full_mode;

/* --full: per-connection state (allocated on the first read). */
#define HEAD_MAX 8192
#define BLOCK_SIZE (256 * 1024)
#define ECHO_HIGH (1024 * 1024)
typedef struct {
    char head[HEAD_MAX];
    size_t head_len;
    uint64_t body_left; /* POST body bytes still to echo */
    int close_after;    /* close once the write queue is empty */
    int paused;
    char out_head[128];
} full_t;
typedef struct {
    uv_tcp_t tcp;
    unsigned match;
    full_t *f;
} fconn_t;
static char block[BLOCK_SIZE];
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
static void on_close_full(uv_handle_t *h);
static void on_read_full(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_connection_plain(uv_stream_t *server, int status);

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

/* ---- --full ------------------------------------------------------------ */

static void full_close(fconn_t *c) {
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, on_close_full);
}

static void on_close_full(uv_handle_t *h) {
    fconn_t *c = (fconn_t *)h;
    free(c->f);
    free(c);
}

typedef struct {
    uv_write_t w;
    fconn_t *c;
    char *copy;
} fwrite_t;

static void on_write_full(uv_write_t *req, int status) {
    fwrite_t *fw = (fwrite_t *)req;
    fconn_t *c = fw->c;
    free(fw->copy);
    free(fw);
    if (status < 0 || uv_is_closing((uv_handle_t *)&c->tcp)) return;
    size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    if (c->f->close_after && q == 0) {
        full_close(c);
        return;
    }
    if (c->f->paused && q < ECHO_HIGH / 2) {
        c->f->paused = 0;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read_full);
    }
}

/* Writes p[0..n): what the kernel takes now, the rest copied (if `copy`) or
 * referenced (static data) in a uv_write. 0, or -1 (connection closed). */
static int full_write(fconn_t *c, uv_buf_t *bufs, unsigned nbufs, int copy) {
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
        if (n < 0 && n != UV_EAGAIN) {
            full_close(c);
            return -1;
        }
        size_t taken = n > 0 ? (size_t)n : 0;
        while (nbufs > 0 && taken >= bufs[0].len) {
            taken -= bufs[0].len;
            bufs++;
            nbufs--;
        }
        if (nbufs == 0) return 0;
        bufs[0].base += taken;
        bufs[0].len -= taken;
    }
    fwrite_t *fw = calloc(1, sizeof *fw);
    if (!fw) abort();
    fw->c = c;
    if (copy) { /* one buffer: the read's remainder */
        fw->copy = malloc(bufs[0].len);
        if (!fw->copy) abort();
        memcpy(fw->copy, bufs[0].base, bufs[0].len);
        bufs[0].base = fw->copy;
    }
    if (uv_write(&fw->w, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write_full) != 0) {
        free(fw->copy);
        free(fw);
        full_close(c);
        return -1;
    }
    return 0;
}

static const char *find_ci(const char *h, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(h + i, needle, k) == 0) return h + i;
    return NULL;
}

static uint64_t query_num(const char *h, size_t n, const char *key) {
    const char *p = find_ci(h, n, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* A whole head is in f->head: answer it. -1 if the connection closed. */
static int full_request(fconn_t *c) {
    full_t *f = c->f;
    const char *h = f->head;
    size_t n = f->head_len;
    const char *eol = memchr(h, '\n', n);
    size_t line = eol ? (size_t)(eol - h) : n;
    char hdr[128];
    (void)line;
    if (n >= 5 && memcmp(h, "POST ", 5) == 0) {
        f->body_left = query_num(h, n, "content-length:");
        int k = snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
                         (unsigned long long)f->body_left);
        uv_buf_t b = uv_buf_init(hdr, (unsigned)k);
        return full_write(c, &b, 1, 1);
    }
    if (n >= 12 && memcmp(h, "GET /stream?", 12) == 0 && !find_ci(h, line, "ms=")) {
        uint64_t count = query_num(h, line, "n="), size = query_num(h, line, "size=");
        if (size > BLOCK_SIZE) size = BLOCK_SIZE;
        int k = snprintf(f->out_head, sizeof f->out_head,
                         "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
                         (unsigned long long)(count * size));
        uv_buf_t *bufs = malloc(sizeof(uv_buf_t) * (count + 1));
        if (!bufs) abort();
        bufs[0] = uv_buf_init(f->out_head, (unsigned)k);
        for (uint64_t i = 0; i < count; i++) bufs[i + 1] = uv_buf_init(block, (unsigned)size);
        /* nothing is copied: the head lives in the connection's state (one
         * download at a time per connection), the blocks are static */
        int r = full_write(c, bufs, (unsigned)(count + 1), 0);
        free(bufs);
        return r;
    }
    static const char closing[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: "
                                  "text/plain\r\nConnection: close\r\n\r\nHello, World!";
    uv_buf_t b = uv_buf_init(canned, (unsigned)RESPONSE_LEN);
    if (find_ci(h, n, "connection: close")) {
        f->close_after = 1;
        b = uv_buf_init((char *)closing, sizeof closing - 1);
    }
    if (full_write(c, &b, 1, 0) != 0) return -1;
    if (f->close_after && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        full_close(c);
        return -1;
    }
    return 0;
}

static void on_read_full(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    fconn_t *c = (fconn_t *)s;
    if (buf->base == read_buf) read_buf_busy = 0;
    if (nread < 0) {
        full_close(c);
        return;
    }
    if (nread == 0) return;
    if (!c->f && !(c->f = calloc(1, sizeof *c->f))) abort();
    full_t *f = c->f;
    const char *p = buf->base;
    size_t n = (size_t)nread;
    while (n > 0 && !f->close_after) {
        if (f->body_left > 0) { /* echo */
            size_t k = n < f->body_left ? n : (size_t)f->body_left;
            uv_buf_t b = uv_buf_init((char *)p, (unsigned)k);
            if (full_write(c, &b, 1, 1) != 0) return;
            f->body_left -= k;
            p += k;
            n -= k;
            continue;
        }
        /* head bytes, up to and including "\r\n\r\n" */
        size_t i = 0;
        int done = 0;
        unsigned st = c->match;
        while (i < n && !done) {
            char ch = p[i++];
            if (ch == '\r') st = (st == 2) ? 3 : 1;
            else if (ch == '\n') {
                if (st == 1) st = 2;
                else if (st == 3) { done = 1; st = 0; }
                else st = 0;
            } else st = 0;
        }
        c->match = st;
        size_t room = HEAD_MAX - f->head_len;
        memcpy(f->head + f->head_len, p, i < room ? i : room);
        f->head_len += i < room ? i : room;
        p += i;
        n -= i;
        if (done) {
            if (full_request(c) != 0) return;
            f->head_len = 0;
        }
    }
    if (!uv_is_closing((uv_handle_t *)s) &&
        uv_stream_get_write_queue_size(s) > ECHO_HIGH && !f->paused) {
        f->paused = 1;
        uv_read_stop(s);
    }
}

static void on_connection(uv_stream_t *server, int status) {
    if (full_mode) {
        if (status < 0) return;
        fconn_t *c = calloc(1, sizeof(*c));
        if (!c) abort();
        uv_tcp_init(server->loop, &c->tcp);
        if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
            uv_close((uv_handle_t *)&c->tcp, on_close_full);
            return;
        }
        uv_tcp_nodelay(&c->tcp, 1);
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read_full);
        return;
    }
    on_connection_plain(server, status);
}

static void on_connection_plain(uv_stream_t *server, int status) {
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
        else if (!strcmp(argv[i], "--full")) full_mode = 1;
        else {
            fprintf(stderr, "usage: %s [--host 127.0.0.1] [--port 8080] [--full]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    bs_raise_nofile();
    memset(block, 'x', sizeof block);
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
