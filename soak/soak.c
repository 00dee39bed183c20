/*
 * soak.c - a one-thread epoll client that holds many concurrent
 * connections against the vigil demo server (127.0.0.1 only) and sends a
 * random mix of traffic until a request budget or a time limit is reached:
 *
 *   gets     keep-alive GET / one at a time (1..64 on a connection)
 *   burst    2..32 GET / pipelined in one write
 *   echo     POST /echo with a 0..8 KiB body (Content-Length or chunked,
 *            sometimes Expect: 100-continue); the echo is checked byte by byte
 *   waitfin  GET /wait, then a FIN after 1..50 ms: the server must cancel and
 *            close without answering
 *   waitrst  GET /wait, then an RST (SO_LINGER 0) after 1..50 ms
 *   abort    half a request (a partial head, or a POST body cut short), then
 *            an RST
 *
 * First every connection is opened and answers one GET; when all --conns
 * are open and answered at once they are held idle for a second
 * (peak_open_answered_conns), then the random traffic starts.
 *
 * A connection that finished gets/burst/echo goes on with another scenario
 * (keep-alive), half-closes and waits for the server to close, or asks the
 * server to close (Connection: close on its last request). Closed slots
 * reconnect after 20..60 ms, so the number of open connections stays at
 * --conns.
 *
 * The budget (--requests) counts requests *answered*: a complete response,
 * or a /wait the server cancelled and closed after our FIN. At exactly
 * --conns 10000 the demo server is at its max_connections (10 000): a new
 * connection that reaches it before it has processed one of our closes is
 * accepted and closed at once. Such a connection (closed before a single
 * byte came back) is counted as "refused" and its slot retries; its
 * requests count as sent, not answered.
 *
 *   soak --port P [--conns 10000] [--requests 1000000] [--time 480]
 *        [--seed N]                       run; exit 0 if no error was seen
 *   soak --port P --get /stats            print one GET's body and exit
 *
 * Every response is parsed (status line, Content-Length or chunked framing)
 * and counted; anything unexpected (a non-200 answer, a wrong echo, a close
 * before the answer, an answer to a cancelled /wait, no progress for 30 s)
 * is an error. The last lines are "key value" figures for soak/run.sh.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}
static uint32_t rnd_in(uint32_t lo, uint32_t hi) { return lo + rnd() % (hi - lo + 1); }

enum { S_GETS, S_BURST, S_ECHO, S_WAITFIN, S_WAITRST, S_ABORT, S_COUNT };
static const char *scen_name[S_COUNT] = {"gets", "burst", "echo", "waitfin", "waitrst", "abort"};

enum { AFTER_CONTINUE, AFTER_CLIENT_CLOSE, AFTER_SERVER_CLOSE };

enum { C_FREE, C_CONNECTING, C_OPEN, C_DRAINING };

enum { P_HEAD, P_BODY_CL, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_CRLF, P_TRAILER, P_BODY_EOF };

typedef struct {
  int fd;
  int state;
  int scen;
  int after;
  uint64_t timer;          /* ms: reconnect, FIN/RST time; 0 = none */
  uint64_t progress;       /* last byte in or out */
  /* output */
  char *w;
  size_t wlen, woff, wcap;
  /* what is owed to us */
  int owed;                /* responses still expected */
  int rounds;              /* gets: requests still to send after this one */
  int fin_sent;
  int got_bytes;           /* any byte received on this connection */
  int want_out;            /* EPOLLOUT registered */
  int warm;                /* answered its ramp-up GET and still open */
  /* echo */
  uint32_t eseed;
  size_t elen, eoff;
  /* response parser */
  int p;
  char h[2048];
  size_t hlen;
  uint64_t remain;
  int status;
  int resp_close;
  int is_echo_resp;
  size_t body_seen;
} conn_t;

static conn_t *conns;
static int nconns;
static int ep;
static uint16_t port;
static uint64_t target_requests = 1000000;
static uint64_t t_start, t_deadline;
static int stopping;      /* budget reached: no new scenarios */
/* Ramp-up: every connection sends one GET and then idles until all
 * --conns of them have been answered; they are held together for a second
 * (all open at once, each known to be served), then the traffic starts. */
static int ramping = 1;
static int warm_now;

static struct {
  uint64_t sent, responses, connects, connect_fail, refused, peak_open, open;
  uint64_t scen[S_COUNT];
  uint64_t wait_closed_ok, rst_sent, fin_sent;
  uint64_t echo_bytes, echo_ok;
  uint64_t errors, err_status, err_echo, err_early_close, err_wait_answered,
      err_stall, err_parse, err_reset;
  uint64_t eaddrnotavail;
  uint64_t reached_all_open_ms;
  uint64_t peak_warm;
} st;

static int verbose_errors = 20;
static void err(conn_t *c, uint64_t *counter, const char *fmt, ...) {
  st.errors++;
  (*counter)++;
  if (verbose_errors > 0) {
    verbose_errors--;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "soak: error (%s, conn fd %d): ", scen_name[c->scen], c->fd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
  }
}

/* ------------------------------------------------------------------ */
/* output */

static void wreserve(conn_t *c, size_t n) {
  if (c->wcap - c->wlen >= n) return;
  size_t cap = c->wcap ? c->wcap : 512;
  while (cap - c->wlen < n) cap *= 2;
  c->w = realloc(c->w, cap);
  if (c->w == NULL) { perror("realloc"); exit(2); }
  c->wcap = cap;
}

static void wput(conn_t *c, const void *p, size_t n) {
  wreserve(c, n);
  memcpy(c->w + c->wlen, p, n);
  c->wlen += n;
}

static void wputs(conn_t *c, const char *s) { wput(c, s, strlen(s)); }

static void set_out(conn_t *c, int on) {
  if (c->want_out == on) return;
  c->want_out = on;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0),
                           .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(conn_t *c, int rst);

static void flush(conn_t *c) {
  while (c->woff < c->wlen) {
    ssize_t n = send(c->fd, c->w + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
    if (n > 0) {
      c->woff += (size_t)n;
      c->progress = now_ms();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      set_out(c, 1);
      return;
    }
    /* EPIPE / ECONNRESET: the read side will tell what happened */
    c->woff = c->wlen;
    break;
  }
  c->wlen = c->woff = 0;
  if (c->wcap > 65536) {
    free(c->w);
    c->w = NULL;
    c->wcap = 0;
  }
  set_out(c, 0);
}

/* ------------------------------------------------------------------ */
/* requests */

static char echo_byte(uint32_t seed, size_t i) {
  return (char)('a' + (seed + i * 7 + (i >> 5)) % 26);
}

static const char HOST[] = "Host: 127.0.0.1\r\n";

static void put_get(conn_t *c, int last) {
  wputs(c, "GET / HTTP/1.1\r\n");
  wputs(c, HOST);
  if (last && c->after == AFTER_SERVER_CLOSE) wputs(c, "Connection: close\r\n");
  wputs(c, "\r\n");
  st.sent++;
}

static void start_scenario(conn_t *c);

static void put_echo(conn_t *c, int last) {
  size_t len = rnd() % 4 == 0 ? 0 : rnd_in(1, 8192);
  int chunked = rnd() % 10 < 3;
  int expect = rnd() % 10 == 0;
  c->eseed = rnd();
  c->elen = len;
  c->eoff = 0;
  wputs(c, "POST /echo HTTP/1.1\r\n");
  wputs(c, HOST);
  if (last && c->after == AFTER_SERVER_CLOSE) wputs(c, "Connection: close\r\n");
  if (expect) wputs(c, "Expect: 100-continue\r\n");
  char line[64];
  if (chunked) {
    wputs(c, "Transfer-Encoding: chunked\r\n\r\n");
    size_t off = 0;
    while (off < len) {
      size_t n = rnd_in(1, 3000);
      if (n > len - off) n = len - off;
      snprintf(line, sizeof line, "%zx\r\n", n);
      wputs(c, line);
      wreserve(c, n + 2);
      for (size_t i = 0; i < n; i++) c->w[c->wlen++] = echo_byte(c->eseed, off + i);
      wputs(c, "\r\n");
      off += n;
    }
    wputs(c, "0\r\n\r\n");
  } else {
    snprintf(line, sizeof line, "Content-Length: %zu\r\n\r\n", len);
    wputs(c, line);
    wreserve(c, len);
    for (size_t i = 0; i < len; i++) c->w[c->wlen++] = echo_byte(c->eseed, i);
  }
  st.sent++;
}

static void start_scenario(conn_t *c) {
  uint32_t r = rnd() % 100;
  int s = r < 40 ? S_GETS : r < 60 ? S_BURST : r < 75 ? S_ECHO
        : r < 84 ? S_WAITFIN : r < 93 ? S_WAITRST : S_ABORT;
  c->scen = s;
  st.scen[s]++;
  uint32_t a = rnd() % 100;
  c->after = a < 70 ? AFTER_CONTINUE : a < 85 ? AFTER_CLIENT_CLOSE : AFTER_SERVER_CLOSE;
  c->is_echo_resp = 0;
  switch (s) {
    case S_GETS:
      c->rounds = (int)rnd_in(1, 64) - 1;
      c->owed = 1;
      put_get(c, c->rounds == 0);
      break;
    case S_BURST: {
      int n = (int)rnd_in(2, 32);
      c->owed = n;
      for (int i = 0; i < n; i++) put_get(c, i == n - 1);
      break;
    }
    case S_ECHO:
      c->owed = 1;
      c->is_echo_resp = 1;
      put_echo(c, 1);
      break;
    case S_WAITFIN:
    case S_WAITRST:
      c->owed = 0;
      wputs(c, "GET /wait HTTP/1.1\r\n");
      wputs(c, HOST);
      wputs(c, "\r\n");
      st.sent++;
      c->timer = now_ms() + rnd_in(1, 50);
      break;
    case S_ABORT: {
      c->owed = 0;
      if (rnd() % 2) {
        static const char head[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: yes\r\n\r\n";
        wput(c, head, rnd_in(1, sizeof head - 3));
      } else {
        wputs(c, "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n");
        size_t n = rnd_in(0, 4000);
        wreserve(c, n);
        memset(c->w + c->wlen, 'q', n);
        c->wlen += n;
      }
      c->timer = now_ms() + rnd_in(0, 20);
      break;
    }
  }
  flush(c);
}

/* ------------------------------------------------------------------ */
/* connections */

static void conn_open(conn_t *c) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE) {
      fprintf(stderr, "soak: out of file descriptors (RLIMIT_NOFILE)\n");
      exit(2);
    }
    perror("socket");
    exit(2);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  if (r != 0 && errno != EINPROGRESS) {
    if (errno == EADDRNOTAVAIL) st.eaddrnotavail++;
    st.connect_fail++;
    close(fd);
    c->state = C_FREE;
    c->timer = now_ms() + 100;
    return;
  }
  memset(&c->fd, 0, offsetof(conn_t, w) - offsetof(conn_t, fd));
  c->fd = fd;
  c->state = C_CONNECTING;
  c->progress = now_ms();
  c->owed = c->rounds = c->fin_sent = c->got_bytes = 0;
  c->p = P_HEAD;
  c->hlen = 0;
  c->want_out = 1;
  c->wlen = c->woff = 0;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  st.connects++;
}

static void conn_close(conn_t *c, int rst) {
  if (c->state == C_FREE) return;
  if (rst) {
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    st.rst_sent++;
  }
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (c->warm) {
    c->warm = 0;
    warm_now--;
  }
  if (c->state == C_OPEN || c->state == C_DRAINING) st.open--;
  c->fd = -1;
  c->state = C_FREE;
  c->wlen = c->woff = 0;
  /* Reconnect a little later: the server sees the close first, so the
   * number it counts stays under its max_connections. */
  c->timer = stopping ? 0 : now_ms() + rnd_in(20, 60);
}

/* The scenario's requests are all answered. */
static void scenario_done(conn_t *c) {
  if (ramping) {
    if (!c->warm) {
      c->warm = 1;
      warm_now++;
      if ((uint64_t)warm_now > st.peak_warm) st.peak_warm = (uint64_t)warm_now;
    }
    return; /* idle until the ramp-up is over */
  }
  switch (c->after) {
    case AFTER_CONTINUE:
      if (!stopping) start_scenario(c);
      break;
    case AFTER_CLIENT_CLOSE:
      /* FIN, then wait for the server's EOF: it has then seen our close
       * (and will not count this connection against max_connections when
       * the slot reconnects) */
      shutdown(c->fd, SHUT_WR);
      c->fin_sent = 1;
      c->progress = now_ms();
      c->state = C_DRAINING;
      break;
    case AFTER_SERVER_CLOSE:
      /* our last request said Connection: close: wait for the EOF */
      c->state = C_DRAINING;
      break;
  }
}

static void response_done(conn_t *c) {
  st.responses++;
  if (c->status != 200) err(c, &st.err_status, "status %d", c->status);
  if (c->is_echo_resp) {
    if (c->eoff != c->elen)
      err(c, &st.err_echo, "echo of %zu bytes came back with %zu", c->elen, c->eoff);
    else
      st.echo_ok++;
    st.echo_bytes += c->eoff;
  }
  c->p = P_HEAD;
  c->hlen = 0;
  c->owed--;
  if (c->owed > 0) return;
  if (c->scen == S_GETS && c->rounds > 0) {
    if (stopping) {
      /* cut short: our Connection: close was never sent, so we close */
      c->rounds = 0;
      conn_close(c, 0);
      return;
    } else {
      c->rounds--;
      c->owed = 1;
      put_get(c, c->rounds == 0);
      flush(c);
      return;
    }
  }
  if (c->resp_close && c->after != AFTER_SERVER_CLOSE) {
    err(c, &st.err_early_close, "unexpected Connection: close");
    conn_close(c, 0);
    return;
  }
  scenario_done(c);
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

static void parse_head(conn_t *c) {
  c->status = 0;
  c->resp_close = 0;
  c->body_seen = 0;
  int cl = -1, chunked = 0;
  if (c->hlen < 12 || memcmp(c->h, "HTTP/1.1 ", 9) != 0) {
    err(c, &st.err_parse, "bad status line");
    c->status = -1;
  } else {
    c->status = atoi(c->h + 9);
  }
  char *line = strstr(c->h, "\r\n");
  while (line && line[2] != '\r') {
    line += 2;
    char *eol = strstr(line, "\r\n");
    if (eol == NULL) break;
    if (strncasecmp(line, "content-length:", 15) == 0) cl = atoi(line + 15);
    else if (strncasecmp(line, "transfer-encoding:", 18) == 0 && strstr(line, "chunked") &&
             strstr(line, "chunked") < eol)
      chunked = 1;
    else if (strncasecmp(line, "connection:", 11) == 0) {
      char *v = line + 11;
      while (*v == ' ') v++;
      if (strncasecmp(v, "close", 5) == 0) c->resp_close = 1;
    }
    line = eol;
  }
  if (c->status == 100) {
    c->p = P_HEAD;
    c->hlen = 0;
    return;
  }
  if (chunked) c->p = P_CHUNK_SIZE;
  else if (cl >= 0) {
    c->remain = (uint64_t)cl;
    c->p = P_BODY_CL;
  } else c->p = P_BODY_EOF;
  c->hlen = 0;
}

static void body_bytes(conn_t *c, const char *p, size_t n) {
  if (c->is_echo_resp) {
    for (size_t i = 0; i < n; i++) {
      if (c->eoff >= c->elen || p[i] != echo_byte(c->eseed, c->eoff)) {
        err(c, &st.err_echo, "echo byte %zu differs", c->eoff);
        c->is_echo_resp = 0;
        return;
      }
      c->eoff++;
    }
  }
  c->body_seen += n;
}

/* Feed received bytes to the response parser. */
static void feed(conn_t *c, const char *d, size_t n) {
  size_t i = 0;
  while (i < n && c->state != C_FREE) {
    switch (c->p) {
      case P_HEAD:
      case P_CHUNK_SIZE:
      case P_TRAILER: {
        /* line-oriented states: collect into h */
        char ch = d[i++];
        if (c->hlen + 1 >= sizeof c->h) {
          err(c, &st.err_parse, "head too long");
          conn_close(c, 1);
          return;
        }
        c->h[c->hlen++] = ch;
        c->h[c->hlen] = 0;
        if (c->p == P_HEAD) {
          if (c->hlen >= 4 && memcmp(c->h + c->hlen - 4, "\r\n\r\n", 4) == 0) {
            if (c->owed <= 0 && c->scen != S_ABORT) {
              err(c, &st.err_wait_answered, "an answer nobody asked for: %.40s", c->h);
            }
            parse_head(c);
            if (c->p == P_BODY_CL && c->remain == 0) response_done(c);
          }
        } else if (ch == '\n') {
          if (c->p == P_CHUNK_SIZE) {
            uint64_t sz = 0;
            size_t k = 0;
            int v;
            while (k < c->hlen && (v = hexval(c->h[k])) >= 0) sz = sz * 16 + (uint64_t)v, k++;
            if (k == 0) {
              err(c, &st.err_parse, "bad chunk size");
              conn_close(c, 1);
              return;
            }
            c->hlen = 0;
            if (sz == 0) c->p = P_TRAILER;
            else {
              c->remain = sz;
              c->p = P_CHUNK_DATA;
            }
          } else { /* trailer lines until an empty one */
            int empty = c->hlen == 2;
            c->hlen = 0;
            if (empty) response_done(c);
          }
        }
        break;
      }
      case P_BODY_CL:
      case P_CHUNK_DATA: {
        size_t k = n - i;
        if (k > c->remain) k = (size_t)c->remain;
        body_bytes(c, d + i, k);
        i += k;
        c->remain -= k;
        if (c->remain == 0) {
          if (c->p == P_BODY_CL) response_done(c);
          else {
            c->p = P_CHUNK_CRLF;
            c->remain = 2;
          }
        }
        break;
      }
      case P_CHUNK_CRLF:
        i++;
        if (--c->remain == 0) c->p = P_CHUNK_SIZE;
        break;
      case P_BODY_EOF:
        body_bytes(c, d + i, n - i);
        i = n;
        break;
    }
  }
}

static char rbuf[1 << 16];

static void on_eof(conn_t *c, int reset) {
  if (c->p == P_BODY_EOF && c->owed > 0) response_done(c);
  if (c->state == C_FREE) return;
  if (c->scen == S_WAITFIN && c->fin_sent) {
    st.wait_closed_ok++;
  } else if (c->state == C_DRAINING) {
    /* the server closed after our Connection: close: expected */
  } else if (c->owed > 0 || c->scen == S_WAITFIN || c->scen == S_WAITRST ||
             (c->scen == S_GETS && c->rounds > 0)) {
    if (!c->got_bytes) {
      /* closed before a single byte: the server was at max_connections
       * (it had not yet seen one of our closes); try again */
      st.refused++;
      conn_close(c, 0);
      c->timer = stopping ? 0 : now_ms() + rnd_in(50, 150);
      return;
    } else {
      err(c, reset ? &st.err_reset : &st.err_early_close,
          "server closed with %d answers owed (%s)", c->owed, reset ? "reset" : "eof");
    }
  } else if (c->scen == S_ABORT) {
    /* a server may close on a partial request only by timeout: not here */
  } else if (c->state == C_OPEN && c->owed == 0 && c->after == AFTER_CONTINUE) {
    /* idle between scenarios, closed by the server: only when stopping */
    if (!stopping) err(c, &st.err_early_close, "idle keep-alive connection closed");
  }
  conn_close(c, 0);
}

static void on_readable(conn_t *c) {
  for (;;) {
    ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
    if (n > 0) {
      c->got_bytes = 1;
      c->progress = now_ms();
      feed(c, rbuf, (size_t)n);
      if (c->state == C_FREE) return;
      if ((size_t)n < sizeof rbuf) return;
      continue;
    }
    if (n == 0) {
      on_eof(c, 0);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    on_eof(c, 1);
    return;
  }
}

static void on_event(conn_t *c, uint32_t ev) {
  if (c->state == C_FREE) return; /* closed earlier in this batch */
  if (c->state == C_CONNECTING) {
    if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
      int e = 0;
      socklen_t l = sizeof e;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l);
      if (e != 0) {
        st.connect_fail++;
        if (e == EADDRNOTAVAIL) st.eaddrnotavail++;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->state = C_FREE;
        c->timer = now_ms() + 50;
        return;
      }
      c->state = C_OPEN;
      st.open++;
      if (st.open > st.peak_open) st.peak_open = st.open;
      if (st.open >= (uint64_t)nconns && !st.reached_all_open_ms)
        st.reached_all_open_ms = now_ms() - t_start;
      set_out(c, 0);
      if (stopping) {
        conn_close(c, 0);
        return;
      }
      if (ramping) {
        c->scen = S_GETS;
        c->after = AFTER_CONTINUE;
        c->is_echo_resp = 0;
        c->rounds = 0;
        c->owed = 1;
        put_get(c, 1);
        flush(c);
        return;
      }
      start_scenario(c);
      if (c->state == C_FREE) return;
    }
    return;
  }
  if (ev & EPOLLOUT) flush(c);
  if (c->state == C_FREE) return;
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
}

/* timers, stalls, reconnects: a sweep every few ms */
static void sweep(uint64_t now) {
  for (int i = 0; i < nconns; i++) {
    conn_t *c = &conns[i];
    if (c->state == C_FREE) {
      if (!stopping && c->timer && now >= c->timer) conn_open(c);
      continue;
    }
    if (c->timer && now >= c->timer &&
        (c->scen == S_WAITFIN || c->scen == S_WAITRST || c->scen == S_ABORT) &&
        c->state == C_OPEN) {
      c->timer = 0;
      if (c->scen == S_WAITFIN) {
        shutdown(c->fd, SHUT_WR);
        c->fin_sent = 1;
        st.fin_sent++;
        c->progress = now;
      } else {
        conn_close(c, 1);
        continue;
      }
    }
    int waiting = c->state == C_CONNECTING || c->owed > 0 || c->fin_sent ||
                  c->state == C_DRAINING || c->woff < c->wlen;
    if (waiting && now - c->progress > 30000) {
      err(c, &st.err_stall, "no progress for 30 s (owed %d, state %d)", c->owed, c->state);
      conn_close(c, 1);
    }
  }
}

/* ------------------------------------------------------------------ */

static int get_once(const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    perror("connect");
    return 1;
  }
  char req[512];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
  if (write(fd, req, (size_t)n) != n) return 1;
  static char buf[1 << 20];
  size_t len = 0;
  ssize_t r;
  while ((r = read(fd, buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)r;
  close(fd);
  buf[len] = 0;
  char *body = strstr(buf, "\r\n\r\n");
  if (strncmp(buf, "HTTP/1.1 200", 12) != 0 || body == NULL) {
    fprintf(stderr, "soak: GET %s: %.80s\n", path, buf);
    return 1;
  }
  fputs(body + 4, stdout);
  return 0;
}

int main(int argc, char **argv) {
  int want = 10000;
  unsigned time_limit = 480;
  const char *get = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) port = (uint16_t)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--conns") && i + 1 < argc) want = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--requests") && i + 1 < argc) target_requests = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--time") && i + 1 < argc) time_limit = (unsigned)atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc) rng = strtoull(argv[++i], NULL, 10) | 1;
    else if (!strcmp(argv[i], "--get") && i + 1 < argc) get = argv[++i];
    else {
      fprintf(stderr, "usage: soak --port P [--conns N] [--requests N] [--time S] [--seed N] | --port P --get PATH\n");
      return 2;
    }
  }
  if (port == 0) {
    fprintf(stderr, "soak: --port is required\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (get) return get_once(get);

  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) perror("setrlimit");
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)want + 64) {
    fprintf(stderr, "soak: RLIMIT_NOFILE %llu is too low for %d connections\n",
            (unsigned long long)rl.rlim_cur, want);
    return 2;
  }
  nconns = want;
  conns = calloc((size_t)nconns, sizeof *conns);
  ep = epoll_create1(EPOLL_CLOEXEC);
  t_start = now_ms();
  t_deadline = t_start + (uint64_t)time_limit * 1000;
  printf("soak: %d connections, %llu requests, %u s limit, port %u\n", nconns,
         (unsigned long long)target_requests, time_limit, port);
  fflush(stdout);

  /* Ramp up: at most 256 connects in flight at once (the listen backlog). */
  for (int i = 0; i < nconns; i++) {
    conns[i].state = C_FREE;
    conns[i].fd = -1;
    conns[i].timer = t_start + (uint64_t)(i / 256) * 5 + 1;
  }
  struct epoll_event evs[1024];
  uint64_t last_sweep = 0, last_report = t_start;
  uint64_t stop_at = 0;
  int timed_out = 0;
  for (;;) {
    int n = epoll_wait(ep, evs, 1024, 5);
    for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events);
    uint64_t now = now_ms();
    if (now - last_sweep < 5) continue;
    sweep(now);
    last_sweep = now;
    if (now - last_report >= 10000) {
      last_report = now;
      printf("soak: %5.1f s  open %llu  sent %llu  answered %llu  errors %llu  refused %llu\n",
             (now - t_start) / 1000.0, (unsigned long long)st.open, (unsigned long long)st.sent,
             (unsigned long long)(st.responses + st.wait_closed_ok),
             (unsigned long long)st.errors, (unsigned long long)st.refused);
      fflush(stdout);
    }
    if (ramping) {
      static uint64_t hold_until;
      if (warm_now >= nconns && !hold_until) {
        st.reached_all_open_ms = now - t_start;
        hold_until = now + 1000;
        printf("soak: all %d connections open and answered after %.1f s; holding 1 s\n", nconns,
               (now - t_start) / 1000.0);
        fflush(stdout);
      }
      if ((hold_until && now >= hold_until) || now - t_start > 60000) {
        if (!hold_until)
          printf("soak: ramp-up incomplete after 60 s: %d of %d connections answered\n",
                 warm_now, nconns);
        ramping = 0;
        for (int i = 0; i < nconns; i++) {
          conn_t *c = &conns[i];
          if (c->state == C_OPEN && c->owed == 0 && c->woff == c->wlen) start_scenario(c);
        }
      }
    }
    uint64_t answered = st.responses + st.wait_closed_ok;
    if (!stopping && (answered >= target_requests || now >= t_deadline)) {
      stopping = 1;
      timed_out = now >= t_deadline && answered < target_requests;
      stop_at = now;
    }
    if (stopping) {
      /* let what is in flight finish (bounded), then close everything */
      int busy = 0;
      for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        if (c->state == C_FREE) continue;
        if (c->owed > 0 || c->fin_sent || c->state == C_DRAINING || c->state == C_CONNECTING ||
            (c->timer && (c->scen == S_WAITFIN || c->scen == S_WAITRST || c->scen == S_ABORT)))
          busy++;
        else
          conn_close(c, 0);
      }
      if (busy == 0) break;
      if (now - stop_at > 40000) {
        fprintf(stderr, "soak: %d connections still busy 40 s after the end\n", busy);
        for (int i = 0; i < nconns; i++)
          if (conns[i].state != C_FREE) {
            err(&conns[i], &st.err_stall, "still busy at the end");
            conn_close(&conns[i], 1);
          }
        break;
      }
    }
  }
  double secs = (now_ms() - t_start) / 1000.0;
  printf("\n");
  printf("elapsed_s %.1f\n", secs);
  printf("timed_out %d\n", timed_out);
  printf("target_requests %llu\n", (unsigned long long)target_requests);
  printf("requests_sent %llu\n", (unsigned long long)st.sent);
  printf("responses %llu\n", (unsigned long long)st.responses);
  printf("requests_answered %llu\n", (unsigned long long)(st.responses + st.wait_closed_ok));
  printf("requests_per_s %.0f\n", st.sent / secs);
  printf("target_conns %d\n", nconns);
  printf("peak_open_conns %llu\n", (unsigned long long)st.peak_open);
  printf("peak_open_answered_conns %llu\n", (unsigned long long)st.peak_warm);
  printf("all_open_after_ms %llu\n", (unsigned long long)st.reached_all_open_ms);
  printf("connects %llu\n", (unsigned long long)st.connects);
  printf("connect_failures %llu\n", (unsigned long long)st.connect_fail);
  printf("eaddrnotavail %llu\n", (unsigned long long)st.eaddrnotavail);
  printf("refused_before_any_byte %llu\n", (unsigned long long)st.refused);
  for (int s = 0; s < S_COUNT; s++)
    printf("scenario_%s %llu\n", scen_name[s], (unsigned long long)st.scen[s]);
  printf("fin_sent %llu\n", (unsigned long long)st.fin_sent);
  printf("wait_cancelled_and_closed %llu\n", (unsigned long long)st.wait_closed_ok);
  printf("rst_sent %llu\n", (unsigned long long)st.rst_sent);
  printf("echo_ok %llu\n", (unsigned long long)st.echo_ok);
  printf("echo_bytes %llu\n", (unsigned long long)st.echo_bytes);
  printf("err_status %llu\n", (unsigned long long)st.err_status);
  printf("err_echo %llu\n", (unsigned long long)st.err_echo);
  printf("err_early_close %llu\n", (unsigned long long)st.err_early_close);
  printf("err_reset %llu\n", (unsigned long long)st.err_reset);
  printf("err_wait_answered %llu\n", (unsigned long long)st.err_wait_answered);
  printf("err_parse %llu\n", (unsigned long long)st.err_parse);
  printf("err_stall %llu\n", (unsigned long long)st.err_stall);
  printf("errors %llu\n", (unsigned long long)st.errors);
  return st.errors == 0 && !timed_out ? 0 : 1;
}
