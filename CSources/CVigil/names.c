/* names.c - the library's names and texts: version, error messages, end
 * reason names, HTTP status texts. */
#include "vigil_internal.h"

unsigned vigil_version(void) { return VIGIL_VERSION_HEX; }

/* The one version is vigil.h's macros; the string is made from them. */
#define VIGIL__STR(x) #x
#define VIGIL__XSTR(x) VIGIL__STR(x)

const char *vigil_version_string(void) {
  return VIGIL__XSTR(VIGIL_VERSION_MAJOR) "." VIGIL__XSTR(VIGIL_VERSION_MINOR) "."
      VIGIL__XSTR(VIGIL_VERSION_PATCH);
}

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

/* The names are identifiers ([a-z][A-Za-z]*), the Swift enum's case names,
 * so that they serve as metric labels and log values as they are. */
const char *vigil_reason_name(vigil_reason_t reason) {
  switch (reason) {
    case VIGIL_REASON_NONE: return "none";
    case VIGIL_REASON_CLIENT_CLOSED: return "clientClosed";
    case VIGIL_REASON_RESET: return "reset";
    case VIGIL_REASON_READ_FAILED: return "readFailed";
    case VIGIL_REASON_WRITE_FAILED: return "writeFailed";
    case VIGIL_REASON_TIMED_OUT: return "timedOut";
    case VIGIL_REASON_SERVER_SHUTDOWN: return "serverShutdown";
    case VIGIL_REASON_HANDLER_FINISHED: return "handlerFinished";
    case VIGIL_REASON_BAD_REQUEST: return "badRequest";
    case VIGIL_REASON_BODY_TOO_LARGE: return "bodyTooLarge";
    case VIGIL_REASON_PEER_UNREACHABLE: return "peerUnreachable";
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
