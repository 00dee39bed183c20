/* listen.c - the server's listening socket: bound from host and port, a
 * Unix socket path, or a socket the process inherited (systemd, a
 * predecessor's hand-over, `--fd N`); and its end at shutdown.
 *
 * One socket, one accept queue: every loop listens on a duplicate of the
 * server's descriptor (each loop's epoll has its own), so a connection
 * waits in one queue whichever loop takes it, and a process that shares
 * the socket (a successor after vigil_server_handover) takes over that
 * queue whole. SO_REUSEPORT (reuse_port) gives each loop its own socket
 * and queue instead; it is never implied, so that a second server started
 * on the same port by mistake fails with EADDRINUSE rather than silently
 * taking half the connections. */
#include "vigil_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int resolve(const char *host, uint16_t port,
                   struct sockaddr_storage *ss, socklen_t *len) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
  int r = getaddrinfo(host, portstr, &hints, &res);
  if (r != 0 || res == NULL) return VIGIL_EINVAL;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

static int bound_port(int fd) {
  struct sockaddr_storage got;
  socklen_t len = sizeof got;
  if (getsockname(fd, (struct sockaddr *)&got, &len) != 0) return 0;
  if (got.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
  if (got.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&got)->sin_port);
  return 0; /* AF_UNIX */
}

/* A TCP socket bound to host:port and listening. */
static int tcp_socket(vigil_server_t *s, uint16_t port, int *out) {
  struct sockaddr_storage ss;
  socklen_t sslen;
  int r = resolve(s->host, port, &ss, &sslen);
  if (r != 0) return r;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1, zero = 0;
  /* SO_REUSEADDR: rebind while old connections sit in TIME_WAIT. On Linux
   * it never lets two sockets listen on one port; SO_REUSEPORT does, and
   * only between sockets that all asked for it. */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (s->config.reuse_port &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    r = -errno;
    close(fd);
    return r;
  }
  /* "::" serves IPv4 too, whatever net.ipv6.bindv6only says. */
  if (ss.ss_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 ||
      listen(fd, s->config.backlog) != 0) {
    r = -errno;
    close(fd);
    return r;
  }
  *out = fd;
  return 0;
}

/* Does a process listen on the socket file at `sa`? A refused connect()
 * says nobody does (a stale file left by a process that died); anything
 * else (accepted, EAGAIN: a full backlog) that somebody does. */
static bool unix_live(const struct sockaddr_un *sa, socklen_t len) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return true;
  int r = connect(fd, (const struct sockaddr *)sa, len);
  int err = r == 0 ? 0 : errno;
  close(fd);
  return err != ECONNREFUSED;
}

static int unix_socket(vigil_server_t *s, int *out) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t n = strlen(s->unix_path);
  if (n == 0) return VIGIL_EINVAL;
  if (n >= sizeof sa.sun_path) return -ENAMETOOLONG;
  memcpy(sa.sun_path, s->unix_path, n);
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int r = 0;
  if (bind(fd, (struct sockaddr *)&sa, len) != 0) {
    r = -errno;
    struct stat st;
    /* A socket file nobody listens on: replace it. Never another kind of
     * file, and never a live socket. */
    if (r == -EADDRINUSE && lstat(s->unix_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        !unix_live(&sa, len) && unlink(s->unix_path) == 0)
      r = bind(fd, (struct sockaddr *)&sa, len) == 0 ? 0 : -errno;
  }
  struct stat st;
  if (r == 0 && stat(s->unix_path, &st) != 0) r = -errno;
  if (r == 0) {
    s->unix_made = true;
    s->unix_dev = (uint64_t)st.st_dev;
    s->unix_ino = (uint64_t)st.st_ino;
    /* Before listen(): until then nobody can connect, so nobody gets in
     * through the umask's mode. */
    if (s->config.unix_mode != 0 && chmod(s->unix_path, (mode_t)s->config.unix_mode) != 0)
      r = -errno;
    if (r == 0 && listen(fd, s->config.backlog) != 0) r = -errno;
  }
  if (r != 0) {
    close(fd);
    vigil__listen_close(s); /* removes the file if we made it */
    return r;
  }
  *out = fd;
  return 0;
}

/* An inherited socket: it must be a listening stream socket of a family
 * we serve. We keep a duplicate; the caller keeps theirs. */
static int inherited_socket(vigil_server_t *s, int *out) {
  int fd = s->config.listen_fd, v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) != 0)
    return errno == ENOTSOCK ? -ENOTSOCK : VIGIL_EINVAL;
  if (v != SOCK_STREAM) return VIGIL_EINVAL;
  len = sizeof v;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 || v != 1)
    return VIGIL_EINVAL;
  len = sizeof v;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) != 0 ||
      (v != AF_INET && v != AF_INET6 && v != AF_UNIX))
    return VIGIL_EINVAL;
  s->listen_unix = v == AF_UNIX;
  int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (dup < 0) return -errno;
  *out = dup;
  return 0;
}

int vigil__listen_open(vigil_server_t *s) {
  int fd = -1, r;
  s->listen_unix = false;
  if (s->config.listen_fd >= 0) {
    r = inherited_socket(s, &fd);
  } else if (s->unix_path != NULL) {
    s->listen_unix = true;
    r = unix_socket(s, &fd);
  } else {
    r = tcp_socket(s, s->config.port, &fd);
  }
  if (r != 0) return r;
  pthread_mutex_lock(&s->listen_lock);
  s->listen_sock = fd;
  pthread_mutex_unlock(&s->listen_lock);
  s->port = bound_port(fd);
  return 0;
}

int vigil__listen_loop_fd(vigil_server_t *s, unsigned index, int *out) {
  if (index > 0 && s->config.reuse_port && s->config.listen_fd < 0 && !s->listen_unix)
    return tcp_socket(s, (uint16_t)s->port, out); /* the port loop 0 got */
  pthread_mutex_lock(&s->listen_lock);
  int fd = s->listen_sock < 0 ? -1 : fcntl(s->listen_sock, F_DUPFD_CLOEXEC, 3);
  int r = fd >= 0 ? 0 : s->listen_sock < 0 ? VIGIL_ESHUTDOWN : -errno;
  pthread_mutex_unlock(&s->listen_lock);
  *out = fd;
  return r;
}

void vigil__listen_close(vigil_server_t *s) {
  pthread_mutex_lock(&s->listen_lock);
  if (s->listen_sock >= 0) close(s->listen_sock);
  s->listen_sock = -1;
  struct stat st;
  /* Still the file we bound? Another server may have replaced it since
   * (a new process started on the same path after ours went stale). */
  if (s->unix_made && !s->handed_over && lstat(s->unix_path, &st) == 0 &&
      S_ISSOCK(st.st_mode) && (uint64_t)st.st_dev == s->unix_dev &&
      (uint64_t)st.st_ino == s->unix_ino)
    unlink(s->unix_path);
  s->unix_made = false;
  pthread_mutex_unlock(&s->listen_lock);
}
