/* buf.c - growable byte buffers, and the small tables (errors, reasons). */
#include "vigil_internal.h"

#include <stdlib.h>
#include <string.h>

int vigil__buf_reserve(vigil_buf_t *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(b->base, cap);
  if (p == NULL) return VIGIL_ENOMEM;
  b->base = p;
  b->cap = cap;
  return 0;
}

int vigil__buf_append(vigil_buf_t *b, const void *data, size_t len) {
  int r = vigil__buf_reserve(b, len);
  if (r != 0) return r;
  if (len) memcpy(b->base + b->len, data, len);
  b->len += len;
  return 0;
}

void vigil__buf_free(vigil_buf_t *b) {
  free(b->base);
  b->base = NULL;
  b->len = b->cap = 0;
}

unsigned vigil_version(void) { return VIGIL_VERSION_HEX; }

const char *vigil_version_string(void) { return "0.1.0"; }

const char *vigil_strerror(int err) {
  switch (err) {
    case 0: return "success";
    case VIGIL_EINVAL: return "invalid argument";
    case VIGIL_ENOMEM: return "out of memory";
    case VIGIL_ECANCELED: return "request cancelled";
    case VIGIL_EALREADY: return "already done (response started or ended, or request finished)";
    case VIGIL_ESHUTDOWN: return "server stopped";
    case VIGIL_EBUSY: return "not possible in the current state";
  }
  /* A libuv (negated errno) code: its static message, so that every call
   * returns a string that stays valid and two calls in one printf do not
   * share a buffer. uv_strerror itself allocates, and leaks, a string for a
   * code it does not know; such a code gets a fixed text here instead. */
  switch (err) {
#define VIGIL_UV_MSG(name, msg) \
    case UV_##name: return msg;
    UV_ERRNO_MAP(VIGIL_UV_MSG)
#undef VIGIL_UV_MSG
  }
  return "unknown error";
}

const char *vigil_reason_name(vigil_reason_t reason) {
  switch (reason) {
    case VIGIL_REASON_NONE: return "none";
    case VIGIL_REASON_CLIENT_CLOSED: return "client closed";
    case VIGIL_REASON_RESET: return "reset";
    case VIGIL_REASON_READ_FAILED: return "read failed";
    case VIGIL_REASON_WRITE_FAILED: return "write failed";
    case VIGIL_REASON_TIMED_OUT: return "timed out";
    case VIGIL_REASON_SERVER_SHUTDOWN: return "server shutdown";
    case VIGIL_REASON_HANDLER_FINISHED: return "handler finished";
    case VIGIL_REASON_BAD_REQUEST: return "bad request";
    case VIGIL_REASON_BODY_TOO_LARGE: return "body too large";
  }
  return "unknown";
}

const char *vigil__status_text(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
  }
  return "Unknown";
}
