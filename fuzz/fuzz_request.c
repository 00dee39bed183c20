/*
 * fuzz_request.c - libFuzzer target for Vigil's whole request path.
 *
 * Three long-lived servers are started once (LLVMFuzzerInitialize): A with
 * half_close = CANCEL (the default), B with half_close = FINISH, and C
 * (FINISH, a synchronous handler) for the whole-vs-split comparison; and
 * the same three again with proxy_protocol = VIGIL_PROXY_ANY (D, E, F),
 * for inputs whose flags ask for the PROXY protocol (bit 7). Each
 * input is played as one client connection: a socketpair(AF_UNIX,
 * SOCK_STREAM) whose server end is handed to the core with the testing
 * hook vigil__server_adopt (loop 0). The client writes the input's bytes
 * in pieces, half-closes (or closes abruptly), reads everything until EOF
 * and checks what came back. Then the same bytes go twice to C: in one
 * write, and cut into pieces (below), and both must get the same answers.
 * No network is involved.
 *
 * Input layout
 *   byte 0      flags
 *                 bits 0-2  number of split points (0..7)
 *                 bit 3     end abruptly: close() instead of shutdown(SHUT_WR)
 *                           (on AF_UNIX a close with unread data is an RST:
 *                           the server reads ECONNRESET)
 *                 bit 4     use server B (half_close FINISH) instead of A
 *                 bit 5     write the pieces back to back (do not wait for
 *                           the server to have read each piece)
 *                 bit 6     after the FIN, close at once without reading the
 *                           answers (the server's writes then fail)
 *                 bit 7     PROXY protocol: play on D/E and compare on F,
 *                           servers that require a v1 or v2 header first
 *                           (proxy.c); the stream then starts with one, or
 *                           is refused without an answer
 *   bytes 1..n  one byte per split point: the split is at byte*len/256 of
 *               the stream (n = bits 0-2); the split delivery to C cuts
 *               there too, plus at 1-8 points from a hash of the stream
 *   rest        the byte stream the client sends
 *
 * What is checked (abort() on any violation; libFuzzer saves the input):
 *   - sanitizers (ASan, UBSan, LSan) on the core, llhttp and this file;
 *   - no hang: the exchange must end within CLIENT_DEADLINE_MS of the
 *     input starting (the server's own timeouts are longer, so a connection
 *     that only ends because a server timer fired counts as a hang);
 *   - the output is a sequence of well-formed HTTP/1.1 responses: status
 *     line, header lines, at most one Content-Length, never both
 *     Content-Length and Transfer-Encoding, exact Content-Length bodies,
 *     well-formed chunked bodies; only the last response may be cut short
 *     (a cancelled or truncated response is closed, never continued);
 *   - every non-1xx response has a Date header; responses to HEAD (the
 *     handler logs each dispatched request's method; the k-th final
 *     response answers the k-th request), 204 and 304 carry no body;
 *   - a 4xx/5xx other than the handler-less 500 carries Connection: close,
 *     and any response with Connection: close is the last thing sent;
 *   - a hijacked stream (after our 101) echoes a contiguous run of the
 *     input, nothing else;
 *   - the addresses a handler reads: the client's (remote) is AF_INET,
 *     AF_INET6 or AF_UNIX; without the PROXY protocol it is the peer and
 *     there is no header destination; on F the split comparison logs all
 *     three, so a header read differently when cut is a difference;
 *   - handler side: the head reaching a handler is sane (version 1.0/1.1,
 *     one Host on 1.1, no CL+TE, header names are tokens, no control
 *     bytes), on_request_done runs exactly once per request, after the
 *     cancel callback with the same reason, on_body never runs after it,
 *     a Content-Length body delivers exactly that many bytes, requests on
 *     one connection never overlap;
 *   - one reading of every byte stream: on server C the input delivered
 *     in one write and delivered cut into pieces (each read by the server
 *     before the next is sent) give the same handler log (method, target,
 *     Content-Length of each request; how it ended, body length and
 *     digest) and byte-identical output (Date values masked);
 *   - after each input the server's counters come back: connections_open,
 *     requests_live, connections_idle, connections_hijacked to 0 (within
 *     STATS_DEADLINE_MS), connections_accepted + 1, every request we saw
 *     got its on_request_done; and every 1024 inputs the process's open
 *     fd count stays at its baseline.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <vigil.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The testing hook (CSources/CVigil/vigil_internal.h). */
int vigil__server_adopt(vigil_server_t *server, int fd);

#define CLIENT_DEADLINE_MS 2000   /* whole exchange, per input */
#define SERVER_TIMEOUT_MS 3000    /* header/idle/body/write timeouts */
#define PIECE_DRAIN_MS 20         /* wait for the server to read a piece */
#define STATS_DEADLINE_MS 2000    /* counters back to zero */
#define OUT_MAX (16u << 20)       /* more output than this is a runaway */
#define BIG_BODY 16384            /* "/big" response */
#define BODY_LIMIT (64 * 1024)    /* max_body_bytes */

/* ------------------------------------------------------------------ */
/* failure reporting */

static const uint8_t *cur_in;     /* the stream of the input being run */
static size_t cur_inlen;
static const char *cur_out;       /* what the server sent so far */
static size_t cur_outlen;

static void dump(const char *label, const void *p, size_t n) {
  const unsigned char *s = p;
  size_t max = n < 2048 ? n : 2048;
  fprintf(stderr, "%s (%zu bytes%s): \"", label, n, n > max ? ", first 2048" : "");
  for (size_t i = 0; i < max; i++) {
    unsigned char ch = s[i];
    if (ch == '\r') fputs("\\r", stderr);
    else if (ch == '\n') fputs("\\n", stderr);
    else if (ch == '"' || ch == '\\') fprintf(stderr, "\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f) fprintf(stderr, "\\x%02x", ch);
    else fputc(ch, stderr);
  }
  fputs("\"\n", stderr);
}

__attribute__((noreturn, format(printf, 1, 2)))
static void fail(const char *fmt, ...) {
  va_list ap;
  fputs("\n==== fuzz_request invariant violated: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  if (cur_in) dump("input stream", cur_in, cur_inlen);
  if (cur_out) dump("server output", cur_out, cur_outlen);
  abort();
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* the servers and their handler */

typedef struct {
  vigil_server_t *srv;
  const char *name;
  /* loop thread only */
  int in_flight;          /* requests between on_request and on_request_done */
  uint64_t seen, done;    /* per server, over the whole run */
  /* The methods of the requests dispatched on the current input, in order
   * (1 = HEAD): the checker needs them to know which responses have no
   * body. Written by the loop thread, read once the connection is gone. */
  int ndisp;
  unsigned char is_head[8192];
} fserver_t;

/* A, B, C: whole vs split (below); D, E, F: the same with the PROXY
 * protocol required. */
static fserver_t servers[6];

typedef enum {
  K_GET, K_ECHO, K_ECHO_LATE, K_IGNORE, K_LATE_BODY, K_NORESP, K_PARTIAL,
  K_UNENDED, K_CLOSE, K_BIG, K_DEFER, K_THREAD, K_PAUSE, K_LIMIT, K_204,
  K_STREAM, K_HIJACK
} kind_t;

static const struct { const char *prefix; kind_t kind; } routes[] = {
    {"/hijack", K_HIJACK},   {"/echo-late", K_ECHO_LATE}, {"/echo", K_ECHO},
    {"/ignore", K_IGNORE},   {"/late-body", K_LATE_BODY}, {"/noresp", K_NORESP},
    {"/partial", K_PARTIAL}, {"/unended", K_UNENDED},     {"/close", K_CLOSE},
    {"/big", K_BIG},         {"/defer", K_DEFER},         {"/thread", K_THREAD},
    {"/pause", K_PAUSE},     {"/limit", K_LIMIT},         {"/204", K_204},
    {"/304", K_204},         {"/stream", K_STREAM},
};

/* Per request, loop thread only. Freed once on_request_done ran and no
 * callback of ours for it is on the stack (depth). */
typedef struct {
  fserver_t *fs;
  kind_t kind;
  int depth;
  int finished;           /* vigil_request_finish called (or owned by a task) */
  int done;
  int cancel_calls;
  vigil_reason_t cancel_reason;
  int is_head;
  int hijacked;
  int body_end;
  uint64_t got;
  int64_t cl;
  char *acc;
  size_t acclen;
} st_t;

static const vigil_header_t H_TEXT = {"Content-Type", 12, "text/plain", 10};
static const vigil_header_t H_HEAD = {"X-Head", 6, "1", 1};
static const vigil_header_t H_CLOSE = {"Connection", 10, "close", 5};
static char big_body[BIG_BODY];

static size_t headers_for(int is_head, vigil_header_t *h) {
  size_t n = 0;
  h[n++] = H_TEXT;
  if (is_head) h[n++] = H_HEAD;
  return n;
}

static void st_leave(vigil_request_t *req, st_t *st) {
  if (--st->depth == 0 && st->done) {
    free(st->acc);
    free(st);
  }
  (void)req;
}

static void fin(vigil_request_t *req, st_t *st) {
  if (st->finished) return;
  st->finished = 1;
  vigil_request_finish(req);
}

static void send_text(vigil_request_t *req, int is_head, int status,
                      const char *body, size_t len) {
  vigil_header_t h[3];
  size_t n = headers_for(is_head, h);
  vigil_response_send(req, status, h, n, body, len);
}

/* --- the worker thread: answers "/thread" requests off the loop */

typedef struct job_s {
  struct job_s *next;
  vigil_request_t *req;
  int is_head;
  int variant;
} job_t;

static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_cv = PTHREAD_COND_INITIALIZER;
static job_t *job_head, *job_tail;

static void *worker_main(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&job_mu);
    while (job_head == NULL) pthread_cond_wait(&job_cv, &job_mu);
    job_t *j = job_head;
    job_head = j->next;
    if (job_head == NULL) job_tail = NULL;
    pthread_mutex_unlock(&job_mu);
    if (j->variant == 0) {
      send_text(j->req, j->is_head, 200, "thread\n", 7);
    } else {
      vigil_header_t h[3];
      size_t n = headers_for(j->is_head, h);
      if (vigil_response_start(j->req, 200, h, n, -1) == 0) {
        vigil_response_write(j->req, "from ", 5, NULL, NULL);
        vigil_response_write(j->req, "a thread\n", 9, NULL, NULL);
        vigil_response_end(j->req);
      }
    }
    vigil_request_finish(j->req);
    free(j);
  }
  return NULL;
}

static void job_push(vigil_request_t *req, int is_head, int variant) {
  job_t *j = calloc(1, sizeof *j);
  if (j == NULL) abort();
  j->req = req;
  j->is_head = is_head;
  j->variant = variant;
  pthread_mutex_lock(&job_mu);
  if (job_tail) job_tail->next = j; else job_head = j;
  job_tail = j;
  pthread_cond_signal(&job_cv);
  pthread_mutex_unlock(&job_mu);
}

/* --- deferred work on the loop (vigil_server_post) */

typedef struct {
  vigil_request_t *req;
  int is_head;
} defer_t;

static void deferred_answer(void *ud) {
  defer_t *d = ud;
  send_text(d->req, d->is_head, 200, "deferred\n", 9);
  vigil_request_finish(d->req);
  free(d);
}

static void deferred_resume(void *ud) {
  vigil_request_t *req = ud;
  vigil_request_body_start(req); /* may fail (cancelled, ended): fine */
  vigil_request_release(req);
}

/* --- head checks: what reaches a handler must be sane */

static int is_tchar(unsigned char ch) {
  if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
    return 1;
  return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int ieq(const char *a, size_t an, const char *b) {
  size_t bn = strlen(b);
  return an == bn && strncasecmp(a, b, an) == 0;
}

/* Methods are case-sensitive (RFC 9110 9.1): "head" is not HEAD. */
static int meq(const char *a, size_t an, const char *b) {
  return an == strlen(b) && memcmp(a, b, an) == 0;
}

/* The addresses, as "remote peer dest" (families and, for INET ones, the
 * address), for the split log. */
static int fmt_addr(int r, const struct sockaddr_storage *a, char *buf, size_t len) {
  char ip[INET6_ADDRSTRLEN];
  if (r != 0) return snprintf(buf, len, "-");
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)a;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    return snprintf(buf, len, "%s:%u", ip, ntohs(s->sin_port));
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    return snprintf(buf, len, "[%s]:%u", ip, ntohs(s->sin6_port));
  }
  if (a->ss_family == AF_UNIX) return snprintf(buf, len, "unix");
  fail("handler got an address of family %d", a->ss_family);
}

static void check_addrs(vigil_request_t *req, int proxied_server) {
  struct sockaddr_storage remote, peer, dest;
  int rr = vigil_request_remote_addr(req, &remote);
  int pr = vigil_request_peer_addr(req, &peer);
  int dr = vigil_request_proxy_dest_addr(req, &dest);
  char b[200];
  fmt_addr(rr, &remote, b, sizeof b);
  fmt_addr(pr, &peer, b, sizeof b);
  fmt_addr(dr, &dest, b, sizeof b);
  /* The peer is our socketpair's end. */
  if (rr != 0 || pr != 0 || peer.ss_family != AF_UNIX)
    fail("remote/peer address: %d %d family %d", rr, pr, peer.ss_family);
  if (!proxied_server && (dr == 0 || remote.ss_family != AF_UNIX))
    fail("a server without the PROXY protocol reported a header address");
  if (dr == 0 && dest.ss_family != remote.ss_family)
    fail("header source family %d, destination %d", remote.ss_family, dest.ss_family);
}

static void check_head(vigil_request_t *req) {
  int v = vigil_request_version(req);
  if (v != 10 && v != 11) fail("handler got HTTP version %d", v);
  size_t ml, tl;
  const char *m = vigil_request_method(req, &ml);
  const char *t = vigil_request_target(req, &tl);
  if (m == NULL || ml == 0) fail("handler got an empty method");
  if (tl == 0) fail("handler got an empty target");
  for (size_t i = 0; i < ml; i++)
    if (!is_tchar((unsigned char)m[i]))
      fail("handler got a method with byte 0x%02x", (unsigned char)m[i]);
  for (size_t i = 0; i < tl; i++) {
    unsigned char ch = (unsigned char)t[i];
    if (ch <= 0x20 || ch == 0x7f) fail("handler got a target with byte 0x%02x", ch);
  }
  if (meq(m, ml, "CONNECT") ? t[0] == '/' || t[0] == '*' : t[0] == '*' && !meq(m, ml, "OPTIONS"))
    fail("handler got target form %.*s for %.*s", (int)tl, t, (int)ml, m);
  size_t n = vigil_request_header_count(req);
  int hosts = 0, cls = 0, tes = 0;
  const char *clv = NULL;
  size_t clvl = 0;
  for (size_t i = 0; i < n; i++) {
    const char *name, *val;
    size_t nl, vl;
    if (vigil_request_header_at(req, i, &name, &nl, &val, &vl) != 0)
      fail("header_at(%zu) failed with count %zu", i, n);
    if (nl == 0) fail("handler got an empty header name");
    for (size_t k = 0; k < nl; k++)
      if (!is_tchar((unsigned char)name[k]))
        fail("handler got a header name with byte 0x%02x", (unsigned char)name[k]);
    if (vl > 0 && (val[0] == ' ' || val[0] == '\t' || val[vl - 1] == ' ' || val[vl - 1] == '\t'))
      fail("handler got a header value with OWS around it");
    for (size_t k = 0; k < vl; k++) {
      unsigned char ch = (unsigned char)val[k];
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
        fail("handler got a header value with byte 0x%02x", ch);
    }
    if (ieq(name, nl, "host")) hosts++;
    if (ieq(name, nl, "content-length")) { cls++; clv = val; clvl = vl; }
    if (ieq(name, nl, "transfer-encoding")) tes++;
  }
  if (hosts > 1) fail("handler got %d Host headers", hosts);
  if (v == 11 && hosts == 0) fail("handler got HTTP/1.1 without Host");
  if (cls > 1) fail("handler got %d Content-Length headers", cls);
  if (cls && tes) fail("handler got both Content-Length and Transfer-Encoding");
  int64_t cl = vigil_request_content_length(req);
  if (tes && cl != -1) fail("Transfer-Encoding without chunked framing (cl %lld)", (long long)cl);
  if (cl < -1) fail("content length %lld", (long long)cl);
  if (cls) {
    /* the value llhttp took must be the number the header says */
    uint64_t x = 0;
    size_t k = 0;
    while (k < clvl && (clv[k] == ' ' || clv[k] == '\t')) k++;
    size_t digits = 0;
    int over = 0;
    for (; k < clvl && clv[k] >= '0' && clv[k] <= '9'; k++, digits++) {
      uint64_t d = (uint64_t)(clv[k] - '0');
      /* exact: INT64_MAX itself is a valid length (a handler sees any
       * length now; the body limit is checked when the body is read) */
      if (over || x > ((uint64_t)INT64_MAX - d) / 10) over = 1;
      else x = x * 10 + d;
    }
    while (k < clvl && (clv[k] == ' ' || clv[k] == '\t')) k++;
    if (digits == 0 || k != clvl || over || (int64_t)x != cl)
      fail("Content-Length header vs content_length %lld", (long long)cl);
  }
  if (vigil_request_has_body(req) != (cl == -1 || cl > 0)) fail("has_body inconsistent");
  if (vigil_request_reason(req) != VIGIL_REASON_NONE) fail("new request already has a reason");
}

/* --- callbacks */

static void on_cancel(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  st_t *st = ud;
  (void)req;
  if (st->done) fail("cancel callback after on_request_done");
  st->cancel_calls++;
  st->cancel_reason = reason;
}

static kind_t classify(vigil_request_t *req) {
  size_t tl;
  const char *t = vigil_request_target(req, &tl);
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    size_t n = strlen(routes[i].prefix);
    if (tl >= n && memcmp(t, routes[i].prefix, n) == 0) return routes[i].kind;
  }
  return vigil_request_has_body(req) ? K_ECHO : K_GET;
}

static void on_request(vigil_request_t *req, void *ud) {
  fserver_t *fs = ud;
  if (fs->in_flight != 0) fail("%s: a request started while another was in flight", fs->name);
  fs->in_flight++;
  fs->seen++;
  check_head(req);
  check_addrs(req, fs >= &servers[3]);
  st_t *st = calloc(1, sizeof *st);
  if (st == NULL) abort();
  st->fs = fs;
  st->depth = 1;
  st->kind = classify(req);
  st->cl = vigil_request_content_length(req);
  size_t ml;
  const char *m = vigil_request_method(req, &ml);
  st->is_head = meq(m, ml, "HEAD");
  if (fs->ndisp < (int)sizeof fs->is_head) fs->is_head[fs->ndisp++] = (unsigned char)st->is_head;
  vigil_request_set_data(req, st);
  if (vigil_request_on_cancel(req, on_cancel, st) != 0) abort();
  int has_body = vigil_request_has_body(req);
  vigil_header_t h[3];
  size_t nh = headers_for(st->is_head, h);

  switch (st->kind) {
    case K_GET:
      send_text(req, st->is_head, 200, "hello\n", 6);
      fin(req, st);
      break;
    case K_ECHO:
      if (!has_body) {
        send_text(req, st->is_head, 200, "", 0);
        fin(req, st);
        break;
      }
      vigil_response_start(req, 200, h, nh, -1);
      vigil_request_body_start(req);
      break;
    case K_ECHO_LATE:
    case K_PAUSE:
    case K_LIMIT:
      if (!has_body) {
        send_text(req, st->is_head, 200, "nobody\n", 7);
        fin(req, st);
        break;
      }
      if (st->kind == K_LIMIT) vigil_request_set_body_limit(req, 16);
      /* With a Content-Length over the limit this ends the request inline:
       * on_request_done (which finishes) runs inside the call (finding 4
       * in fuzz/README.md) */
      vigil_request_body_start(req);
      if (st->kind == K_PAUSE && !st->done) {
        vigil_request_body_pause(req);
        vigil_request_retain(req);
        if (vigil_server_post(fs->srv, vigil_request_loop(req), deferred_resume, req) != 0)
          vigil_request_release(req);
      }
      break;
    case K_IGNORE:
      send_text(req, st->is_head, 200, "ignored\n", 8);
      fin(req, st);
      break;
    case K_LATE_BODY:
      /* answer, ask for the body, finish: no on_body may follow the done */
      send_text(req, st->is_head, 200, "late\n", 5);
      vigil_request_body_start(req);
      fin(req, st);
      break;
    case K_NORESP:
      fin(req, st); /* the core answers 500 */
      break;
    case K_PARTIAL:
      if (vigil_response_start(req, 200, h, nh, 10) == 0) {
        vigil_response_write(req, "abc", 3, NULL, NULL);
        vigil_response_end(req);
      }
      fin(req, st);
      break;
    case K_UNENDED:
      if (vigil_response_start(req, 200, h, nh, -1) == 0)
        vigil_response_write(req, "cut", 3, NULL, NULL);
      fin(req, st);
      break;
    case K_CLOSE: {
      h[nh++] = H_CLOSE;
      vigil_response_send(req, 200, h, nh, "bye\n", 4);
      fin(req, st);
      break;
    }
    case K_BIG:
      if (vigil_response_start(req, 200, h, nh, BIG_BODY) == 0) {
        for (int i = 0; i < 4; i++)
          vigil_response_write(req, big_body + i * (BIG_BODY / 4), BIG_BODY / 4, NULL, NULL);
        vigil_response_end(req);
      }
      fin(req, st);
      break;
    case K_DEFER: {
      defer_t *d = malloc(sizeof *d);
      if (d == NULL) abort();
      d->req = req;
      d->is_head = st->is_head;
      st->finished = 1; /* the task finishes */
      if (vigil_server_post(fs->srv, vigil_request_loop(req), deferred_answer, d) != 0) {
        free(d);
        vigil_request_finish(req);
      }
      break;
    }
    case K_THREAD: {
      size_t tl;
      const char *t = vigil_request_target(req, &tl);
      st->finished = 1; /* the worker finishes */
      job_push(req, st->is_head, tl > 7 && t[7] == 's');
      break;
    }
    case K_204:
      if (vigil_response_start(req, vigil_request_target(req, NULL)[1] == '3' ? 304 : 204,
                               h, nh, -1) == 0) {
        vigil_response_write(req, "dropped", 7, NULL, NULL);
        vigil_response_end(req);
      }
      fin(req, st);
      break;
    case K_STREAM:
      if (vigil_response_start(req, 200, h, nh, -1) == 0) {
        vigil_response_write(req, "one ", 4, NULL, NULL);
        vigil_response_write(req, "", 0, NULL, NULL);
        vigil_response_write(req, "two\n", 4, NULL, NULL);
        vigil_response_end(req);
      }
      fin(req, st);
      break;
    case K_HIJACK: {
      int r = vigil_request_hijack(req);
      if (r == 0) {
        static const char sw[] =
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";
        st->hijacked = 1;
        vigil_hijack_write(req, sw, sizeof sw - 1, NULL, NULL);
        vigil_request_body_start(req);
      } else {
        send_text(req, st->is_head, 200, "nohijack\n", 9);
        fin(req, st);
      }
      break;
    }
  }
  st_leave(req, st);
}

static void on_body(vigil_request_t *req, const char *data, size_t len, int end, void *ud) {
  fserver_t *fs = ud;
  st_t *st = vigil_request_get_data(req);
  if (st == NULL) fail("%s: on_body after on_request_done", fs->name);
  if (st->done) fail("%s: on_body after on_request_done", fs->name);
  if (st->body_end) fail("%s: on_body after end", fs->name);
  if (len && data == NULL) fail("on_body with NULL data");
  st->depth++;
  st->got += len;
  if (st->hijacked) {
    if (len) vigil_hijack_write(req, data, len, NULL, NULL);
    if (end) {
      st->body_end = 1;
      vigil_hijack_close(req);
      fin(req, st);
    }
    st_leave(req, st);
    return;
  }
  if (st->cl >= 0 && st->got > (uint64_t)st->cl)
    fail("body delivered %llu bytes past Content-Length %lld",
         (unsigned long long)st->got, (long long)st->cl);
  if (st->got > BODY_LIMIT) fail("body delivered past max_body_bytes");
  if (end) {
    st->body_end = 1;
    if (st->cl >= 0 && st->got != (uint64_t)st->cl)
      fail("body ended at %llu bytes, Content-Length %lld",
           (unsigned long long)st->got, (long long)st->cl);
  }
  switch (st->kind) {
    case K_ECHO:
      if (len) vigil_response_write(req, data, len, NULL, NULL);
      if (end) {
        vigil_response_end(req);
        fin(req, st);
      }
      break;
    case K_ECHO_LATE:
    case K_PAUSE:
    case K_LIMIT:
      if (len) {
        char *p = realloc(st->acc, st->acclen + len);
        if (p == NULL) abort();
        memcpy(p + st->acclen, data, len);
        st->acc = p;
        st->acclen += len;
      }
      if (end) {
        send_text(req, st->is_head, 200, st->acc ? st->acc : "", st->acclen);
        fin(req, st);
      }
      break;
    default:
      break; /* K_LATE_BODY: already finished; nothing may arrive */
  }
  st_leave(req, st);
}

static void on_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  fserver_t *fs = ud;
  st_t *st = vigil_request_get_data(req);
  if (st == NULL || st->done) fail("%s: on_request_done twice", fs->name);
  if (reason == VIGIL_REASON_NONE) fail("on_request_done with reason none");
  if (vigil_request_reason(req) != reason) fail("reason %d vs on_request_done %d",
                                                vigil_request_reason(req), reason);
  if (st->cancel_calls != 1 || st->cancel_reason != reason)
    fail("cancel callback ran %d times (reason %d), on_request_done reason %d",
         st->cancel_calls, st->cancel_reason, reason);
  if (reason == VIGIL_REASON_HANDLER_FINISHED && !st->finished &&
      !(st->hijacked && st->kind == K_HIJACK))
    fail("reason 'handlerFinished' before vigil_request_finish");
  st->done = 1;
  fs->in_flight--;
  fs->done++;
  vigil_request_set_data(req, NULL);
  st->depth++;
  fin(req, st); /* a cancelled request: the handler gives its reference back */
  st_leave(req, st);
}

/* ------------------------------------------------------------------ */
/* server C: the same bytes whole and split must get the same answers
 *
 * Every input is also played twice on server C (half_close FINISH): in one
 * write, and cut at points derived from the input (split_points), each
 * piece read by the server before the next is sent. Its handler is
 * synchronous and its answers depend on the bytes only, not on how body
 * spans were cut: "/ignore..." is answered at once with its body unread
 * (drained); a request with a body is read whole, then answered with its
 * length and FNV-1a digest; one without gets its method and target back.
 * The handler also logs each request (method, target, Content-Length) and
 * how it ended (reason, body length, digest). The two logs and the two
 * outputs (Date values masked) must be equal: one reading of every byte
 * stream, however it was segmented (issue 11, defect 20). */

static struct {
  char log[16384];
  size_t loglen;
  uint64_t hash, len;     /* the current request's body so far */
  int finished;
  int is_head;
} sc; /* loop thread; one connection at a time, requests never overlap */

static void sc_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (sc.loglen < sizeof sc.log) {
    int n = vsnprintf(sc.log + sc.loglen, sizeof sc.log - sc.loglen, fmt, ap);
    if (n > 0) sc.loglen += (size_t)n;
    if (sc.loglen > sizeof sc.log) sc.loglen = sizeof sc.log;
  }
  va_end(ap);
}

static void split_answer(vigil_request_t *req, const char *body, size_t len) {
  vigil_header_t h[3];
  size_t n = headers_for(sc.is_head, h);
  vigil_response_send(req, 200, h, n, body, len);
  sc.finished = 1;
  vigil_request_finish(req);
}

static void split_on_request(vigil_request_t *req, void *ud) {
  fserver_t *fs = ud;
  if (fs->in_flight != 0) fail("%s: a request started while another was in flight", fs->name);
  fs->in_flight++;
  fs->seen++;
  size_t ml, tl;
  const char *m = vigil_request_method(req, &ml);
  const char *t = vigil_request_target(req, &tl);
  int show = tl > 200 ? 200 : (int)tl;
  sc_log("request %.*s %.*s cl %lld\n", (int)ml, m, show, t,
         (long long)vigil_request_content_length(req));
  check_addrs(req, fs >= &servers[3]);
  struct sockaddr_storage a;
  char addrs[3][80];
  fmt_addr(vigil_request_remote_addr(req, &a), &a, addrs[0], sizeof addrs[0]);
  fmt_addr(vigil_request_peer_addr(req, &a), &a, addrs[1], sizeof addrs[1]);
  fmt_addr(vigil_request_proxy_dest_addr(req, &a), &a, addrs[2], sizeof addrs[2]);
  sc_log("from %s peer %s dest %s\n", addrs[0], addrs[1], addrs[2]);
  sc.hash = 1469598103934665603ull;
  sc.len = 0;
  sc.finished = 0;
  sc.is_head = ieq(m, ml, "HEAD");
  char body[300];
  if (tl >= 7 && memcmp(t, "/ignore", 7) == 0) {
    split_answer(req, "ignored\n", 8);
  } else if (vigil_request_has_body(req)) {
    vigil_request_body_start(req);
  } else {
    int n = snprintf(body, sizeof body, "%.*s %.*s\n", (int)ml, m, show, t);
    split_answer(req, body, (size_t)n);
  }
}

static void split_on_body(vigil_request_t *req, const char *data, size_t len, int end,
                          void *ud) {
  (void)ud;
  for (size_t i = 0; i < len; i++) {
    sc.hash ^= (unsigned char)data[i];
    sc.hash *= 1099511628211ull;
  }
  sc.len += len;
  if (end) {
    char body[64];
    int n = snprintf(body, sizeof body, "%llu %016llx\n", (unsigned long long)sc.len,
                     (unsigned long long)sc.hash);
    split_answer(req, body, (size_t)n);
  }
}

static void split_on_done(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  fserver_t *fs = ud;
  sc_log("done %d %llu %016llx\n", (int)reason, (unsigned long long)sc.len,
         (unsigned long long)sc.hash);
  fs->in_flight--;
  fs->done++;
  if (!sc.finished) {
    sc.finished = 1;
    vigil_request_finish(req); /* cancelled: the handler's reference */
  }
}

/* ------------------------------------------------------------------ */
/* setup */

static int fd_count(void) {
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  int n = 0;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n;
}

static void start_server(fserver_t *fs, const char *name, vigil_half_close_t hc,
                         vigil_request_cb req_cb, vigil_body_cb body_cb, vigil_done_cb done_cb,
                         vigil_proxy_protocol_t pp) {
  vigil_config_t cfg;
  vigil_config_init(&cfg);
  cfg.proxy_protocol = pp;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.half_close = hc;
  cfg.read_buffer_limit = 1024;   /* backpressure with small inputs */
  cfg.write_buffer_limit = 4096;
  cfg.drain_limit = 1024;
  cfg.max_header_bytes = 4096;
  cfg.max_chunk_ext_bytes = 64;
  cfg.max_headers = 32;
  cfg.max_target_bytes = 1024;
  cfg.max_body_bytes = BODY_LIMIT;
  cfg.header_timeout_ms = SERVER_TIMEOUT_MS;
  cfg.idle_timeout_ms = SERVER_TIMEOUT_MS;
  cfg.body_timeout_ms = SERVER_TIMEOUT_MS;
  cfg.write_timeout_ms = SERVER_TIMEOUT_MS;
  cfg.on_request = req_cb;
  cfg.on_body = body_cb;
  cfg.on_request_done = done_cb;
  cfg.userdata = fs;
  fs->name = name;
  int r = vigil_server_new(&fs->srv, &cfg);
  if (r == 0) r = vigil_server_start(fs->srv);
  if (r != 0) {
    fprintf(stderr, "fuzz_request: cannot start server %s: %s\n", name, vigil_strerror(r));
    exit(1);
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  for (size_t i = 0; i < sizeof big_body; i++) big_body[i] = (char)('a' + i % 26);
  for (int k = 0; k < 2; k++) {
    vigil_proxy_protocol_t pp = k ? VIGIL_PROXY_ANY : VIGIL_PROXY_OFF;
    start_server(&servers[3 * k], k ? "D(cancel,proxy)" : "A(cancel)", VIGIL_HALF_CLOSE_CANCEL,
                 on_request, on_body, on_done, pp);
    start_server(&servers[3 * k + 1], k ? "E(finish,proxy)" : "B(finish)",
                 VIGIL_HALF_CLOSE_FINISH, on_request, on_body, on_done, pp);
    start_server(&servers[3 * k + 2], k ? "F(split,proxy)" : "C(split)",
                 VIGIL_HALF_CLOSE_FINISH, split_on_request, split_on_body, split_on_done, pp);
  }
  pthread_t t;
  if (pthread_create(&t, NULL, worker_main, NULL) != 0) abort();
  pthread_detach(t);
  return 0;
}

/* ------------------------------------------------------------------ */
/* the client */

static char *obuf;
static size_t olen, ocap;

/* Read what is there. Returns 1 at EOF/reset, 0 otherwise. */
static int read_some(int fd) {
  for (;;) {
    if (ocap - olen < 65536) {
      size_t cap = ocap ? ocap * 2 : 1 << 20;
      if (cap > OUT_MAX + 65536) {
        cur_out = obuf, cur_outlen = olen;
        fail("server output passed %u bytes", OUT_MAX);
      }
      char *p = realloc(obuf, cap);
      if (p == NULL) abort();
      obuf = p;
      ocap = cap;
    }
    ssize_t n = recv(fd, obuf + olen, ocap - olen, 0);
    if (n > 0) {
      olen += (size_t)n;
      continue;
    }
    if (n == 0) return 1;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return 1; /* ECONNRESET: the server closed with our bytes unread */
  }
}

static void hang(const char *where, uint64_t t0) {
  cur_out = obuf, cur_outlen = olen;
  fail("no progress %s after %llu ms (hang)", where, (unsigned long long)(now_ms() - t0));
}

/* Write one piece, reading meanwhile. Returns 0, or -1 if the server no
 * longer takes bytes (closed, reset). */
static int write_piece(int fd, const uint8_t *p, size_t n, uint64_t t0, int *eof) {
  while (n > 0) {
    if (now_ms() - t0 > CLIENT_DEADLINE_MS) hang("writing", t0);
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    struct pollfd pfd = {fd, POLLOUT | (*eof ? 0 : POLLIN), 0};
    poll(&pfd, 1, 10);
    if (!*eof && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) *eof = read_some(fd);
    /* The server stopped reading (backpressure) and will not resume: it
     * closed or half-closed, and we would wait forever. */
    if (*eof && (pfd.revents & POLLOUT) == 0) {
      if (pfd.revents & (POLLERR | POLLHUP)) return -1;
    }
  }
  return 0;
}

/* Wait until the server has read everything we wrote (SIOCOUTQ on an
 * AF_UNIX socket counts the bytes the peer has not consumed), so that the
 * next piece arrives in a separate read. Bounded: a server that stopped
 * reading (backpressure, closing) is fine too. */
static void wait_drained(int fd, int *eof) {
  uint64_t until = now_ms() + PIECE_DRAIN_MS;
  for (int spins = 0;; spins++) {
    int q = 0;
    if (ioctl(fd, SIOCOUTQ, &q) != 0 || q == 0) return;
    if (!*eof) *eof = read_some(fd);
    if (now_ms() > until) return;
    if (spins < 200) sched_yield();
    else usleep(100);
  }
}

/* ------------------------------------------------------------------ */
/* the output checker */

static void check_output(const fserver_t *fs, const char *o, size_t n) {
  size_t p = 0;
  int idx = 0;
  int final = 0; /* non-1xx responses so far */
  cur_out = o, cur_outlen = n;
  while (p < n) {
    idx++;
    const char *ln = o + p;
    const char *eol = memmem(ln, n - p, "\r\n", 2);
    static const char proto[] = "HTTP/1.1 ";
    if (eol == NULL) {
      /* cut short: what there is must still look like a status line */
      size_t k = n - p < 9 ? n - p : 9;
      if (memcmp(ln, proto, k) != 0) fail("response %d: garbage instead of a status line", idx);
      return;
    }
    size_t ll = (size_t)(eol - ln);
    if (ll < 13 || memcmp(ln, proto, 9) != 0 || ln[9] < '1' || ln[9] > '9' ||
        ln[10] < '0' || ln[10] > '9' || ln[11] < '0' || ln[11] > '9' || ln[12] != ' ')
      fail("response %d: bad status line", idx);
    int status = (ln[9] - '0') * 100 + (ln[10] - '0') * 10 + (ln[11] - '0');
    for (size_t k = 13; k < ll; k++)
      if ((unsigned char)ln[k] < 0x20 || ln[k] == 0x7f) fail("response %d: control byte in reason", idx);
    p += ll + 2;
    /* headers */
    int cls = 0, tes = 0, date = 0, close = 0, xhead = 0;
    uint64_t cl = 0;
    int te_chunked = 0;
    for (;;) {
      ln = o + p;
      eol = memmem(ln, n - p, "\r\n", 2);
      if (eol == NULL) return; /* cut short inside the head */
      ll = (size_t)(eol - ln);
      p += ll + 2;
      if (ll == 0) break;
      const char *colon = memchr(ln, ':', ll);
      if (colon == NULL || colon == ln) fail("response %d: bad header line", idx);
      size_t nl = (size_t)(colon - ln);
      for (size_t k = 0; k < nl; k++)
        if (!is_tchar((unsigned char)ln[k])) fail("response %d: bad header name", idx);
      const char *v = colon + 1;
      size_t vl = ll - nl - 1;
      while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
      for (size_t k = 0; k < vl; k++)
        if (((unsigned char)v[k] < 0x20 && v[k] != '\t') || v[k] == 0x7f)
          fail("response %d: control byte in a header value", idx);
      if (ieq(ln, nl, "content-length")) {
        cls++;
        cl = 0;
        if (vl == 0 || vl > 18) fail("response %d: bad Content-Length", idx);
        for (size_t k = 0; k < vl; k++) {
          if (v[k] < '0' || v[k] > '9') fail("response %d: bad Content-Length", idx);
          cl = cl * 10 + (uint64_t)(v[k] - '0');
        }
      } else if (ieq(ln, nl, "transfer-encoding")) {
        tes++;
        te_chunked = ieq(v, vl, "chunked");
      } else if (ieq(ln, nl, "date")) {
        date++;
        if (vl != 29 || memcmp(v + 25, " GMT", 4) != 0) fail("response %d: bad Date", idx);
      } else if (ieq(ln, nl, "connection")) {
        if (ieq(v, vl, "close")) close = 1;
        else if (!ieq(v, vl, "keep-alive") && !ieq(v, vl, "upgrade"))
          fail("response %d: odd Connection header", idx);
      } else if (ieq(ln, nl, "x-head")) {
        xhead = 1;
      }
    }
    if (status < 200) {
      if (cls || tes) fail("response %d: 1xx with framing headers", idx);
      if (status == 101) {
        /* our hijack: the rest is the client's bytes echoed */
        size_t raw = n - p;
        if (raw && memmem(cur_in, cur_inlen, o + p, raw) == NULL)
          fail("hijacked stream: %zu bytes that the client never sent in one run", raw);
        return;
      }
      if (status != 100) fail("response %d: unexpected status %d", idx, status);
      continue;
    }
    /* The k-th final response answers the k-th dispatched request; those
     * past the dispatched ones are the core's answers to bad input. */
    int for_head = final < fs->ndisp && fs->is_head[final];
    final++;
    if (xhead && !for_head) fail("response %d: X-Head on a response to a non-HEAD request", idx);
    if (date != 1) fail("response %d (status %d): %d Date headers", idx, status, date);
    if (cls > 1 || tes > 1) fail("response %d: repeated framing headers", idx);
    if (cls && tes) fail("response %d: both Content-Length and Transfer-Encoding", idx);
    if (tes && !te_chunked) fail("response %d: Transfer-Encoding other than chunked", idx);
    if (status >= 400 && status != 500 && !close)
      fail("response %d: error status %d without Connection: close", idx, status);
    int nobody = for_head || status == 204 || status == 304;
    if ((status == 204 || status == 304) && (cls || tes))
      fail("response %d: %d with framing headers", idx, status);
    if (nobody) {
      /* no body bytes, whatever the framing headers say (HEAD) */
    } else if (tes) {
      for (;;) {
        ln = o + p;
        eol = memmem(ln, n - p, "\r\n", 2);
        if (eol == NULL) return; /* cut short */
        ll = (size_t)(eol - ln);
        if (ll == 0 || ll > 16) fail("response %d: bad chunk size line", idx);
        uint64_t sz = 0;
        for (size_t k = 0; k < ll; k++) {
          char ch = ln[k];
          int d = ch >= '0' && ch <= '9' ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
          if (d < 0) fail("response %d: bad chunk size", idx);
          sz = sz * 16 + (uint64_t)d;
        }
        p += ll + 2;
        if (sz == 0) {
          if (n - p < 2) return; /* cut short */
          if (memcmp(o + p, "\r\n", 2) != 0) fail("response %d: trailer or junk after last chunk", idx);
          p += 2;
          break;
        }
        if (n - p < sz + 2) return; /* cut short */
        if (memcmp(o + p + sz, "\r\n", 2) != 0) fail("response %d: chunk not followed by CRLF", idx);
        p += sz + 2;
      }
    } else if (cls) {
      if (n - p < cl) return; /* cut short: only ever the last one */
      p += cl;
    } else {
      if (!close) fail("response %d: no framing and no Connection: close", idx);
      p = n; /* the body runs to the end of the connection */
    }
    if (close && p != n) fail("response %d: %zu bytes after a Connection: close response", idx, n - p);
  }
}

/* ------------------------------------------------------------------ */

static void wait_stats(fserver_t *fs, uint64_t accepted_before) {
  uint64_t t0 = now_ms();
  vigil_stats_t s;
  for (;;) {
    vigil_server_stats(fs->srv, &s);
    int ok = s.connections_open == 0 && s.requests_live == 0 &&
             s.connections_idle == 0 && s.connections_hijacked == 0 &&
             s.connections_accepted == accepted_before + 1;
    /* seen/done/in_flight are loop-thread fields: read them only once the
     * connection is gone (its last callbacks ran before its close). */
    if (ok) break;
    if (now_ms() - t0 > STATS_DEADLINE_MS) {
      fail("%s: counters did not come back within %d ms: accepted %llu (before %llu) "
           "open %llu live %llu idle %llu hijacked %llu total %llu cancelled %llu bad %llu",
           fs->name, STATS_DEADLINE_MS, (unsigned long long)s.connections_accepted,
           (unsigned long long)accepted_before, (unsigned long long)s.connections_open,
           (unsigned long long)s.requests_live, (unsigned long long)s.connections_idle,
           (unsigned long long)s.connections_hijacked, (unsigned long long)s.requests_total,
           (unsigned long long)s.requests_cancelled, (unsigned long long)s.bad_requests);
    }
    usleep(50);
  }
  /* The worker may still be returning from vigil_request_finish: requests
   * are all freed (live 0), so the loop-side counters are settled. */
  if (s.requests_total != fs->seen)
    fail("%s: requests_total %llu but on_request ran %llu times", fs->name,
         (unsigned long long)s.requests_total, (unsigned long long)fs->seen);
  if (fs->done != fs->seen || fs->in_flight != 0)
    fail("%s: %llu requests, %llu on_request_done, %d in flight", fs->name,
         (unsigned long long)fs->seen, (unsigned long long)fs->done, fs->in_flight);
}

/* Play one client connection to fs: the stream in pieces [cuts[i],
 * cuts[i+1]), then a FIN (or a close), reading everything into obuf until
 * the server closes; then wait for fs's counters to come back. */
static void play(fserver_t *fs, const uint8_t *in, size_t inlen, const size_t *cuts,
                 size_t ncut, int abrupt, int nowait, int leave) {
  cur_in = in;
  cur_inlen = inlen;
  cur_out = NULL;
  olen = 0;

  vigil_stats_t before;
  vigil_server_stats(fs->srv, &before);
  fs->ndisp = 0; /* the previous connection is closed: no loop access now */

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    perror("socketpair");
    abort();
  }
  /* A small server send buffer: responses hit backpressure (partial
   * writes, uv_write in flight, write completions held back). */
  int sndbuf = 4096;
  setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
  if (vigil__server_adopt(fs->srv, sv[1]) != 0) abort();

  uint64_t t0 = now_ms();
  int eof = 0;
  for (size_t i = 0; i + 1 < ncut; i++) {
    size_t a = cuts[i], b = cuts[i + 1];
    if (b == a) continue;
    if (write_piece(sv[0], in + a, b - a, t0, &eof) != 0) break;
    if (!nowait && i + 2 < ncut) wait_drained(sv[0], &eof);
  }
  if (abrupt) {
    if (!eof) read_some(sv[0]);
  } else {
    shutdown(sv[0], SHUT_WR);
    if (!leave) {
      while (!eof) {
        if (now_ms() - t0 > CLIENT_DEADLINE_MS) hang("waiting for the server to close", t0);
        struct pollfd pfd = {sv[0], POLLIN, 0};
        poll(&pfd, 1, 10);
        if (pfd.revents) eof = read_some(sv[0]);
      }
    }
  }
  close(sv[0]);

  /* counters first: once the connection is gone every dispatch happened */
  cur_out = obuf, cur_outlen = olen;
  wait_stats(fs, before.connections_accepted);
}

static void add_cut(size_t *cuts, size_t *ncut, size_t c) {
  size_t j = *ncut;
  while (j > 1 && cuts[j - 1] > c) { cuts[j] = cuts[j - 1]; j--; }
  cuts[j] = c;
  (*ncut)++;
}

/* The cut points of the split delivery: the input's own (the flags
 * byte's split points, so that a reproducer can name them) and 1 to 8
 * more in (0, inlen) from a hash of the stream (a mutation anywhere moves
 * them all). `own` is play()'s cut list (ends included). Returns ncut for
 * play(). */
static size_t split_points(const uint8_t *in, size_t inlen, const size_t *own, size_t nown,
                           size_t *cuts) {
  uint64_t x = 1469598103934665603ull;
  for (size_t i = 0; i < inlen; i++) x = (x ^ in[i]) * 1099511628211ull;
  size_t ncut = 0;
  cuts[ncut++] = 0;
  for (size_t i = 1; i + 1 < nown; i++) add_cut(cuts, &ncut, own[i]);
  if (inlen > 1) {
    unsigned want = 1 + (unsigned)(x % 8);
    for (unsigned k = 0; k < want; k++) {
      x += 0x9e3779b97f4a7c15ull; /* splitmix64 */
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      add_cut(cuts, &ncut, 1 + (size_t)(z % (inlen - 1)));
    }
  }
  cuts[ncut++] = inlen;
  return ncut;
}

/* Date values differ between two runs: blank them. */
static void mask_dates(char *o, size_t n) {
  static const char key[] = "\r\nDate: ";
  for (char *p = o; (p = memmem(p, (size_t)(o + n - p), key, sizeof key - 1)) != NULL;) {
    p += sizeof key - 1;
    for (size_t k = 0; k < 29 && p < o + n; k++) *p++ = '#';
  }
}

static void split_compare(fserver_t *fs, const uint8_t *in, size_t inlen, const size_t *own,
                          size_t nown) {
  static char *wout;
  static size_t wcap;
  static char wlog[sizeof sc.log];
  size_t whole[2] = {0, inlen};
  sc.loglen = 0;
  play(fs, in, inlen, whole, 2, 0, 0, 0);
  mask_dates(obuf, olen);
  if (olen > wcap) {
    wout = realloc(wout, olen);
    if (wout == NULL) abort();
    wcap = olen;
  }
  size_t wlen = olen, wloglen = sc.loglen;
  if (wlen) memcpy(wout, obuf, wlen);
  memcpy(wlog, sc.log, wloglen);

  size_t cuts[18];
  size_t ncut = split_points(in, inlen, own, nown, cuts);
  sc.loglen = 0;
  play(fs, in, inlen, cuts, ncut, 0, 0, 0);
  mask_dates(obuf, olen);
  /* No output at all (a connection refused for its PROXY header): wout
   * may still be NULL, and memcmp must not see it. */
  if (wlen == olen && wloglen == sc.loglen && (wlen == 0 || memcmp(wout, obuf, wlen) == 0) &&
      memcmp(wlog, sc.log, wloglen) == 0)
    return;
  char where[256];
  size_t k = 0;
  for (size_t i = 1; i + 1 < ncut && k < sizeof where - 24; i++)
    k += (size_t)snprintf(where + k, sizeof where - k, "%s%zu", i > 1 ? "," : "", cuts[i]);
  fprintf(stderr, "\n==== whole delivery: handler log:\n%.*s", (int)wloglen, wlog);
  dump("whole delivery: server output", wout, wlen);
  fprintf(stderr, "==== split delivery (cut at %s): handler log:\n%.*s", where,
          (int)sc.loglen, sc.log);
  cur_out = NULL;
  dump("split delivery: server output", obuf, olen);
  fail("%s: the same bytes got different answers whole and cut at %s", fs->name, where);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint64_t runs;
  static int fd_base = -1;
  if (size < 1) return 0;
  unsigned flags = data[0];
  unsigned nsplit = flags & 7;
  if (size < 1 + nsplit) return 0;
  const uint8_t *in = data + 1 + nsplit;
  size_t inlen = size - 1 - nsplit;
  int proxy = (flags >> 7) & 1;
  fserver_t *fs = &servers[3 * proxy + ((flags >> 4) & 1)];
  int abrupt = (flags >> 3) & 1;
  int nowait = (flags >> 5) & 1;
  int leave = (flags >> 6) & 1;

  size_t cuts[9];
  size_t ncut = 0;
  cuts[ncut++] = 0;
  for (unsigned i = 0; i < nsplit; i++) {
    size_t c = (size_t)data[1 + i] * inlen / 256;
    size_t j = ncut;
    while (j > 1 && cuts[j - 1] > c) { cuts[j] = cuts[j - 1]; j--; }
    cuts[j] = c;
    ncut++;
  }
  cuts[ncut++] = inlen;

  play(fs, in, inlen, cuts, ncut, abrupt, nowait, leave);
  check_output(fs, obuf, olen);
  split_compare(&servers[3 * proxy + 2], in, inlen, cuts, ncut);

  if (++runs % 1024 == 0 || fd_base < 0) {
    int n = fd_count();
    if (fd_base < 0) fd_base = n;
    else if (n > fd_base + 4) fail("open fds grew from %d to %d", fd_base, n);
  }
  cur_in = NULL;
  cur_out = NULL;
  return 0;
}
