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
#include <sys/file.h>
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
 * else (accepted, EAGAIN: a full backlog) that somebody does. Only ever
 * asked of a file at the final path, which is always listening already
 * when it appears there (unix_socket), so a server still starting is never
 * taken for a stale one. */
static bool unix_live(const struct sockaddr_un *sa, socklen_t len) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return true;
  int r = connect(fd, (const struct sockaddr *)sa, len);
  int err = r == 0 ? 0 : errno;
  close(fd);
  return err != ECONNREFUSED;
}

/* A Unix socket at s->unix_path, listening, atomically: it is bound,
 * given its mode and set listening under a temporary name in the same
 * directory, then link()ed to the path, which fails with EEXIST if any
 * file is there. A bound socket refuses connections until listen(), so a
 * server that bound the path itself would look stale to another starting
 * at the same moment (connect: ECONNREFUSED), which would replace it: two
 * servers started on one path, one of them unreachable. With the link, a
 * file at the path always listens already. A stale one (its connect
 * refused) is unlinked, if it is still the same file, and the link tried
 * once more. A crash between bind and link leaves the temporary file. The temporary name is ours alone, so chmod never follows a
 * symlink planted at the path. */
static int unix_socket(vigil_server_t *s, int *out) {
  struct sockaddr_un sa, tmp;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t n = strlen(s->unix_path);
  if (n == 0) return VIGIL_EINVAL;
  if (n >= sizeof sa.sun_path) return -ENAMETOOLONG;
  memcpy(sa.sun_path, s->unix_path, n);
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);

  /* The directory, and the file's name in it. */
  char dir[sizeof sa.sun_path];
  const char *slash = strrchr(s->unix_path, '/');
  const char *base = slash ? slash + 1 : s->unix_path;
  if (*base == '\0') return VIGIL_EINVAL;
  if (slash == NULL) snprintf(dir, sizeof dir, ".");
  else if (slash == s->unix_path) snprintf(dir, sizeof dir, "/");
  else snprintf(dir, sizeof dir, "%.*s", (int)(slash - s->unix_path), s->unix_path);
  int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -errno;

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int r = -errno;
    close(dfd);
    return r;
  }
  /* Bound under ".vigil-<pid>-<n>" in that directory (reached through
   * /proc/self/fd when the directory's name leaves no room for it). */
  static atomic_uint counter;
  char tname[48];
  int r = -EADDRINUSE;
  for (int tries = 0; tries < 8 && r == -EADDRINUSE; tries++) {
    snprintf(tname, sizeof tname, ".vigil-%d-%u", (int)getpid(), atomic_fetch_add(&counter, 1));
    memset(&tmp, 0, sizeof tmp);
    tmp.sun_family = AF_UNIX;
    int w = snprintf(tmp.sun_path, sizeof tmp.sun_path, "%s/%s", dir, tname);
    if (w < 0 || (size_t)w >= sizeof tmp.sun_path)
      snprintf(tmp.sun_path, sizeof tmp.sun_path, "/proc/self/fd/%d/%s", dfd, tname);
    r = bind(fd, (struct sockaddr *)&tmp, sizeof tmp) == 0 ? 0 : -errno;
  }
  bool tmp_made = r == 0;
  /* Before listen(): until then nobody can connect, so nobody gets in
   * through the umask's mode. */
  if (r == 0 && s->config.unix_mode != 0 &&
      fchmodat(dfd, tname, (mode_t)s->config.unix_mode, 0) != 0)
    r = -errno;
  if (r == 0 && listen(fd, s->config.backlog) != 0) r = -errno;
  struct stat mine;
  if (r == 0 && fstatat(dfd, tname, &mine, AT_SYMLINK_NOFOLLOW) != 0) r = -errno;
  if (r == 0 && linkat(dfd, tname, dfd, base, 0) != 0) {
    r = -errno;
    struct stat st;
    /* A socket file nobody listens on: replace it, if it is still that
     * file. Never another kind of file, and never a live socket. */
    /* Two servers replacing one stale file would each unlink what the
     * other just linked: the check and the replacement hold an flock on
     * the directory (between servers of this library). */
    int lock = r == -EEXIST ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (lock >= 0) flock(lock, LOCK_EX);
    if (r == -EEXIST && fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISSOCK(st.st_mode) && !unix_live(&sa, len)) {
      struct stat again;
      if (fstatat(dfd, base, &again, AT_SYMLINK_NOFOLLOW) == 0 &&
          again.st_dev == st.st_dev && again.st_ino == st.st_ino)
        unlinkat(dfd, base, 0);
      r = linkat(dfd, tname, dfd, base, 0) == 0 ? 0 : -errno;
    }
    if (lock >= 0) close(lock); /* and the flock with it */
    if (r == -EEXIST) r = -EADDRINUSE;
  }
  if (tmp_made) unlinkat(dfd, tname, 0);
  close(dfd);
  if (r != 0) {
    close(fd);
    return r;
  }
  pthread_mutex_lock(&s->listen_lock);
  s->unix_made = true;
  s->unix_dev = (uint64_t)mine.st_dev;
  s->unix_ino = (uint64_t)mine.st_ino;
  pthread_mutex_unlock(&s->listen_lock);
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

/* Remove the Unix socket file if it is still the one we made: another
 * server may have replaced it since (a new process started on the same
 * path after ours went stale). Under listen_lock. */
static void unix_unlink_locked(vigil_server_t *s) {
  struct stat st;
  if (s->unix_made && lstat(s->unix_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
      (uint64_t)st.st_dev == s->unix_dev && (uint64_t)st.st_ino == s->unix_ino)
    unlink(s->unix_path);
  s->unix_made = false;
}

void vigil__listen_close(vigil_server_t *s) {
  pthread_mutex_lock(&s->listen_lock);
  if (s->listen_sock >= 0) close(s->listen_sock);
  s->listen_sock = -1;
  /* A successor serves the file, or may yet (a hand-over waits for it:
   * vigil__listen_handover_end decides). */
  if (s->handed_over) s->unix_made = false;
  else if (!s->handover_pending) unix_unlink_locked(s);
  pthread_mutex_unlock(&s->listen_lock);
}

void vigil__listen_handover_end(vigil_server_t *s, bool ok) {
  pthread_mutex_lock(&s->listen_lock);
  s->handover_pending = false;
  if (ok) {
    s->handed_over = true;
    s->unix_made = false;
  } else if (s->listen_sock < 0) {
    unix_unlink_locked(s); /* the shutdown kept it for the successor */
  }
  pthread_mutex_unlock(&s->listen_lock);
}
