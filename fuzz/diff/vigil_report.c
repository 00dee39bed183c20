/*
 * vigil_report.c - the Vigil side of the differential framing fuzzer
 * (fuzz/diff/README.md): answers every request the core parses with a
 * report of what it parsed, so fuzzdiff.py can compare Vigil's reading of a
 * byte stream with Go's net/http (go/main.go) and Node's http (report.js).
 *
 *   vigil_report --port N      (127.0.0.1; port 0 picks one, printed)
 *
 * Report: 200, `X-Report: <json>` (the same JSON as the body; in a header
 * too so a HEAD answer carries it), JSON:
 *   {"server":"vigil","method":M,"target":T,"version":"1.1",
 *    "body_len":N,"sha256":HEX}
 * method/target bytes outside 0x20..0x7e (and " \) are written \u00XX, one
 * per byte, the same escaping as the two other servers. The whole body is
 * read before answering. Anything the core rejects itself shows as the
 * core's own status. CONNECT answers carry `Connection: close`: tunnels are
 * not compared.
 *
 * Limits are set far above anything the fuzzer sends, so they are not what
 * differs; half-close is FINISH: the driver half-closes after its last byte
 * and still wants the answers (Go and Node answer the requests before the
 * FIN).
 */
#include <vigil.h>

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SHA-256 (FIPS 180-4), written from the standard ---- */

typedef struct {
  uint32_t h[8];
  uint64_t n;        /* bytes hashed */
  uint8_t buf[64];
  size_t used;
} sha256_t;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_init(sha256_t *s) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, h0, sizeof h0);
  s->n = 0;
  s->used = 0;
}

static void sha256_block(sha256_t *s, const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
  uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g; g = f; f = e; e = d + t1;
    d = c; c = b; b = a; a = t1 + t2;
  }
  s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
  s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void sha256_update(sha256_t *s, const void *data, size_t len) {
  const uint8_t *p = data;
  s->n += len;
  while (len > 0) {
    size_t take = 64 - s->used;
    if (take > len) take = len;
    memcpy(s->buf + s->used, p, take);
    s->used += take;
    p += take;
    len -= take;
    if (s->used == 64) {
      sha256_block(s, s->buf);
      s->used = 0;
    }
  }
}

static void sha256_hex(sha256_t *s, char out[65]) {
  uint64_t bits = s->n * 8;
  uint8_t pad = 0x80, zero = 0, lenbe[8];
  sha256_update(s, &pad, 1);
  while (s->used != 56) sha256_update(s, &zero, 1);
  for (int i = 0; i < 8; i++) lenbe[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha256_update(s, lenbe, 8);
  for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", s->h[i]);
}

/* ---- the report ---- */

typedef struct {
  sha256_t sha;
  int answered;
} report_t; /* owned by the request (set_data); freed in on_request_done */

/* Append `s` as a JSON string, one \u00XX per byte outside printable ASCII,
 * so that all three servers escape bytes alike. */
static size_t json_str(char *out, size_t cap, size_t at, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  if (at < cap) out[at] = '"';
  at++;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    char tmp[7];
    size_t n;
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
      tmp[0] = '\\'; tmp[1] = 'u'; tmp[2] = '0'; tmp[3] = '0';
      tmp[4] = hex[c >> 4]; tmp[5] = hex[c & 15];
      n = 6;
    } else {
      tmp[0] = (char)c;
      n = 1;
    }
    for (size_t j = 0; j < n; j++, at++)
      if (at < cap) out[at] = tmp[j];
  }
  if (at < cap) out[at] = '"';
  return at + 1;
}

static void answer(vigil_request_t *req, report_t *r) {
  size_t mlen, tlen;
  const char *method = vigil_request_method(req, &mlen);
  const char *target = vigil_request_target(req, &tlen);
  int version = vigil_request_version(req);
  uint64_t body_len = r->sha.n;
  char hex[65];
  sha256_hex(&r->sha, hex);

  size_t cap = 6 * (mlen + tlen) + 256;
  char *json = malloc(cap);
  if (!json) {
    vigil_response_send(req, 500, NULL, 0, NULL, 0);
    return;
  }
  size_t at = (size_t)snprintf(json, cap, "{\"server\":\"vigil\",\"method\":");
  at = json_str(json, cap, at, method, mlen);
  at += (size_t)snprintf(json + at, cap - at, ",\"target\":");
  at = json_str(json, cap, at, target, tlen);
  at += (size_t)snprintf(json + at, cap - at,
                         ",\"version\":\"%d.%d\",\"body_len\":%llu,\"sha256\":\"%s\"}",
                         version / 10, version % 10, (unsigned long long)body_len, hex);
  vigil_header_t h[3] = {
      {"Content-Type", 12, "application/json", 16},
      {"X-Report", 8, json, at},
      {"Connection", 10, "close", 5},
  };
  int is_connect = mlen == 7 && memcmp(method, "CONNECT", 7) == 0;
  vigil_response_send(req, 200, h, is_connect ? 3 : 2, json, at);
  free(json);
}

static void on_request(vigil_request_t *req, void *userdata) {
  (void)userdata;
  report_t *r = calloc(1, sizeof *r);
  if (!r) {
    vigil_response_send(req, 500, NULL, 0, NULL, 0);
    vigil_request_finish(req);
    return;
  }
  sha256_init(&r->sha);
  vigil_request_set_data(req, r);
  if (!vigil_request_has_body(req) || vigil_request_body_start(req) != 0) {
    r->answered = 1;
    answer(req, r);
    vigil_request_finish(req); /* on_request_done frees r */
  }
}

static void on_body(vigil_request_t *req, const char *data, size_t len, int end,
                    void *userdata) {
  (void)userdata;
  report_t *r = vigil_request_get_data(req);
  if (!r || r->answered) return;
  sha256_update(&r->sha, data, len);
  if (end) {
    r->answered = 1;
    answer(req, r);
    vigil_request_finish(req); /* on_request_done frees r */
  }
}

static void on_request_done(vigil_request_t *req, vigil_reason_t reason,
                            void *userdata) {
  (void)userdata;
  report_t *r = vigil_request_get_data(req);
  vigil_request_set_data(req, NULL);
  int answered = r ? r->answered : 1;
  free(r);
  /* Ended before the body was whole (bad chunked framing, client gone):
   * the core answers or closes; give the handler reference back. */
  if (reason != VIGIL_REASON_HANDLER_FINISHED && !answered) vigil_request_finish(req);
}

int main(int argc, char **argv) {
  long port = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = strtol(argv[++i], NULL, 10);
    else {
      fprintf(stderr, "usage: %s [--port N]\n", argv[0]);
      return 2;
    }
  }
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by the loop thread */

  vigil_config_t config;
  vigil_config_init(&config);
  config.host = "127.0.0.1";
  config.port = (uint16_t)port;
  config.on_request = on_request;
  config.on_body = on_body;
  config.on_request_done = on_request_done;
  config.half_close = VIGIL_HALF_CLOSE_FINISH;
  /* Generous limits: the fuzzer's inputs are a few KiB; the references'
   * own limits (Node: 16 KiB of head) are not reached either. */
  config.max_header_bytes = 1 << 20;
  config.max_headers = 10000;
  config.max_target_bytes = 1 << 20;
  config.max_chunk_ext_bytes = 1 << 20;
  config.max_body_bytes = 0; /* none: Go and Node have none either */
  config.drain_limit = 1 << 20;
  config.header_timeout_ms = 20000;
  config.idle_timeout_ms = 60000;
  config.body_timeout_ms = 20000;

  vigil_server_t *server;
  int r = vigil_server_new(&server, &config);
  if (r == 0 && (r = vigil_server_start(server)) != 0) vigil_server_free(server);
  if (r != 0) {
    fprintf(stderr, "vigil_report: cannot start: %s\n", vigil_strerror(r));
    return 1;
  }
  printf("listening %d\n", vigil_server_port(server));
  fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  vigil_server_shutdown(server, 0);
  vigil_server_wait(server);
  vigil_server_free(server);
  return 0;
}
