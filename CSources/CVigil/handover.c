/* handover.c - restarts that lose no request: systemd socket activation
 * (vigil_listen_fds), and a running server handing its listening socket
 * to its successor (vigil_server_handover), as nginx's binary upgrade.
 *
 * The trap both avoid: connections wait in a listening socket's accept
 * queue, and closing the last descriptor of that socket resets every one
 * of them. So the socket must outlive the process: held by systemd, or
 * passed to the new process before the old one closes its descriptors.
 * Old and new then accept from the same queue until the old one stops
 * accepting; it finishes what it has (vigil_server_shutdown) and exits.
 *
 * The successor gets the socket the systemd way - descriptor 3,
 * LISTEN_FDS=1, LISTEN_PID=<its pid> - so that the same program serves
 * under systemd and after a hand-over, and a readiness pipe at descriptor
 * 4 (VIGIL_READY_FD=4): its vigil_server_start writes one byte there once
 * it serves, and only then does the old server stop. LISTEN_PID must be
 * the child's own pid, known only after fork: the child writes its digits
 * into an environment string prepared before fork, with async-signal-safe
 * code only (a multi-threaded parent's child may call nothing else until
 * execve). */
#include "vigil_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define READY_ENV "VIGIL_READY_FD"
#define CHILD_READY_FD 4
#define DEFAULT_TIMEOUT_MS 10000

/* ------------------------------------------------------------------ */
/* socket activation */

/* The first answer of vigil_listen_fds (the variables may be gone after
 * it), and the readiness pipe it found: -2 not asked yet. */
static pthread_mutex_t fds_lock = PTHREAD_MUTEX_INITIALIZER;
static int fds_answer = -2;
static atomic_int ready_fd = -1;

/* A non-negative decimal that fits an int, the whole string; else -1. */
static long parse_uint(const char *s) {
  if (s == NULL || *s == '\0') return -1;
  long v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
    if (v > 0x7fffffff) return -1;
  }
  return v;
}

static int listen_fds_parse(void) {
  const char *pid_s = getenv("LISTEN_PID");
  const char *fds_s = getenv("LISTEN_FDS");
  if (pid_s == NULL || fds_s == NULL) return 0;
  long pid = parse_uint(pid_s), n = parse_uint(fds_s);
  if (pid <= 0 || n < 0) return -EINVAL;
  /* Meant for another process (a parent that left them set). */
  if ((pid_t)pid != getpid()) return 0;
  if (n > 0x10000) return -EINVAL;
  for (long i = 0; i < n; i++) {
    int fd = VIGIL_LISTEN_FDS_START + (int)i;
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -EBADF;
    /* Ours now: not for the programs we start. */
    if (!(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
  /* The readiness pipe of a hand-over: a FIFO, or nothing. */
  long rfd = parse_uint(getenv(READY_ENV));
  struct stat st;
  if (rfd > 2 && fstat((int)rfd, &st) == 0 && S_ISFIFO(st.st_mode)) {
    fcntl((int)rfd, F_SETFD, FD_CLOEXEC);
    atomic_store(&ready_fd, (int)rfd);
  }
  return (int)n;
}

int vigil_listen_fds(int unset_environment) {
  pthread_mutex_lock(&fds_lock);
  if (fds_answer == -2) fds_answer = listen_fds_parse();
  int n = fds_answer;
  if (unset_environment) {
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    unsetenv(READY_ENV);
  }
  pthread_mutex_unlock(&fds_lock);
  return n;
}

void vigil__handover_ready(vigil_server_t *s) {
  (void)s;
  int fd = atomic_exchange(&ready_fd, -1);
  if (fd < 0) return;
  ssize_t w;
  do w = write(fd, "R", 1);
  while (w < 0 && errno == EINTR);
  close(fd);
}

/* ------------------------------------------------------------------ */
/* hand-over */

static bool env_dropped(const char *e) {
  static const char *const names[] = {"LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=",
                                      READY_ENV "="};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strncmp(e, names[i], strlen(names[i])) == 0) return true;
  return false;
}

/* The child, between fork and execve: async-signal-safe calls only. All
 * signals are blocked on entry (the parent blocked them around fork). */
static void __attribute__((noreturn))
child(int lfd, int wfd, const char *path, char *const argv[], char **envp,
      char *pid_digits) {
  /* The parent's handlers are the parent's: one that runs here before
   * execve would act on the parent's objects through what fork shared (a
   * SIGTERM handler's vigil_server_shutdown writes the parent's eventfd).
   * Caught signals go back to SIG_DFL, as posix_spawn does; ignored ones
   * stay ignored across execve. */
  for (int sig = 1; sig < NSIG; sig++) {
    struct sigaction old;
    if (sigaction(sig, NULL, &old) != 0 || old.sa_handler == SIG_DFL ||
        old.sa_handler == SIG_IGN)
      continue;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
  }
  /* A process group of its own: a failed successor is killed with every
   * process it started (kill(-pid)), such as a wrapper script's children,
   * which would otherwise keep the listening socket. */
  setpgid(0, 0);
  /* Move both above 4 first, so that neither dup2 below overwrites the
   * other (either may be 3 or 4 now); the copies are close-on-exec, and
   * dup2 gives 3 and 4 without it. */
  int l = fcntl(lfd, F_DUPFD_CLOEXEC, 10);
  int w = fcntl(wfd, F_DUPFD_CLOEXEC, 10);
  if (l < 0 || w < 0 || dup2(l, VIGIL_LISTEN_FDS_START) < 0 || dup2(w, CHILD_READY_FD) < 0)
    _exit(127);
  /* LISTEN_PID=<getpid()>, into the buffer made before fork. */
  char tmp[24];
  int n = 0;
  unsigned long v = (unsigned long)getpid();
  do tmp[n++] = (char)('0' + v % 10), v /= 10;
  while (v > 0);
  for (int i = 0; i < n; i++) pid_digits[i] = tmp[n - 1 - i];
  pid_digits[n] = '\0';
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(path, argv, envp);
  /* Tell the parent why: 'E' and errno, then go. */
  char msg[1 + sizeof(int)];
  int err = errno;
  msg[0] = 'E';
  memcpy(msg + 1, &err, sizeof err);
  ssize_t wr = write(CHILD_READY_FD, msg, sizeof msg);
  (void)wr;
  _exit(127);
}

static uint64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* The successor failed: kill its process group (itself and whatever it
 * started), then reap it. The group is killed before the reaping, while
 * the child (even a zombie) still holds the group's id for us. */
static void reap(pid_t pid) {
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL); /* if its setpgid has not run yet */
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

/* Has the child exited (not reaped: its group id stays ours)? */
static bool child_exited(pid_t pid) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* Read what the successor wrote on rfd (non-blocking): 0 ready, an error
 * it reported, or 1 nothing decisive yet (-ECHILD on EOF). */
static int read_word(int rfd, char *buf, size_t *got) {
  for (;;) {
    ssize_t n = read(rfd, buf + *got, 1 + sizeof(int) - *got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return 1; /* EAGAIN: nothing (more) now */
    if (n == 0) return -ECHILD; /* EOF: it exited, or closed the pipe unready */
    *got += (size_t)n;
    if (buf[0] == 'R') return 0;
    if (*got == 1 + sizeof(int) && buf[0] == 'E') {
      int err;
      memcpy(&err, buf + 1, sizeof err);
      return err > 0 ? -err : -ECHILD;
    }
    if (buf[0] != 'E') return -ECHILD;
  }
}

/* Wait for the successor's word on rfd (non-blocking): 0 ready, or the
 * error, the successor killed and reaped. Also watches the child itself
 * (a pidfd; where there is none, a check every 50 ms): one that exits
 * without a word is noticed at once, even when a process it started
 * keeps the pipe open. */
static int wait_ready(int rfd, pid_t pid, uint64_t timeout_ms) {
  uint64_t deadline = vigil__deadline(now_ms(), timeout_ms);
  char buf[1 + sizeof(int)];
  size_t got = 0;
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  int r = 1;
  while (r == 1) {
    r = read_word(rfd, buf, &got);
    if (r != 1) break;
    if (child_exited(pid)) {
      r = read_word(rfd, buf, &got); /* its last word */
      if (r == 1) r = -ECHILD;
      break;
    }
    uint64_t now = now_ms();
    if (now >= deadline) {
      r = -ETIMEDOUT;
      break;
    }
    struct pollfd p[2] = {{.fd = rfd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
    uint64_t left = deadline - now;
    int cap = pidfd >= 0 ? 60000 : 50;
    if (poll(p, pidfd >= 0 ? 2 : 1, left > (uint64_t)cap ? cap : (int)left) < 0 &&
        errno != EINTR)
      r = -errno;
  }
  if (pidfd >= 0) close(pidfd);
  if (r != 0) reap(pid);
  return r;
}

/* A copy of the environment, without the variables we set, with room
 * for three more entries and the NULL; free with env_free. Copied under
 * fds_lock, which vigil_listen_fds's unsetenv takes too; other threads
 * must not change the environment during a hand-over (vigil.h). environ
 * may be NULL (after clearenv). */
static char **env_copy(void) {
  pthread_mutex_lock(&fds_lock);
  size_t n = 0, bytes = 0;
  for (char **e = environ; e != NULL && *e != NULL; e++, n++) bytes += strlen(*e) + 1;
  char **envp = malloc((n + 4) * sizeof *envp + bytes);
  if (envp != NULL) {
    char *p = (char *)(envp + n + 4);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
      if (env_dropped(environ[i])) continue;
      size_t len = strlen(environ[i]) + 1;
      memcpy(p, environ[i], len);
      envp[k++] = p;
      p += len;
    }
    envp[k] = NULL;
  }
  pthread_mutex_unlock(&fds_lock);
  return envp;
}

static void env_free(char **envp) { free(envp); }

int vigil_server_handover(vigil_server_t *s, const char *path, char *const argv[],
                          uint64_t timeout_ms, int *pid_out) {
  if (s == NULL || path == NULL || !atomic_load(&s->started) || s->loops == NULL)
    return VIGIL_EINVAL;
  if (s->config.reuse_port && s->nloops > 1 && s->config.listen_fd < 0 && !s->listen_unix)
    return VIGIL_EINVAL;
  for (unsigned i = 0; i < s->nloops; i++)
    if (vigil__on_loop_thread(s->loops[i])) return VIGIL_EBUSY;
  if (atomic_load(&s->shutdown_requested)) return VIGIL_ESHUTDOWN;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&s->handover_busy, &expected, 1)) return VIGIL_EBUSY;
  pthread_mutex_lock(&s->listen_lock);
  bool done = s->handed_over;
  pthread_mutex_unlock(&s->listen_lock);
  if (done) { /* one successor per server */
    atomic_store(&s->handover_busy, 0);
    return VIGIL_EALREADY;
  }
  if (timeout_ms == 0) timeout_ms = DEFAULT_TIMEOUT_MS;

  /* Everything the child needs, made before fork. */
  char *default_argv[] = {(char *)path, NULL};
  if (argv == NULL) argv = default_argv;
  char pid_env[40] = "LISTEN_PID=";
  char ready_env[32];
  snprintf(ready_env, sizeof ready_env, READY_ENV "=%d", CHILD_READY_FD);
  char **envp = env_copy();
  int fds[2] = {-1, -1};
  int r = 0;
  if (envp == NULL) r = VIGIL_ENOMEM;
  else if (pipe2(fds, O_CLOEXEC) != 0) r = -errno;
  else if (fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) r = -errno;
  if (r != 0) {
    free(envp);
    if (fds[0] >= 0) close(fds[0]), close(fds[1]);
    atomic_store(&s->handover_busy, 0);
    return r;
  }
  size_t k = 0;
  while (envp[k] != NULL) k++;
  envp[k++] = "LISTEN_FDS=1";
  envp[k++] = pid_env;
  envp[k++] = ready_env;
  envp[k] = NULL;
  char *pid_digits = pid_env + strlen("LISTEN_PID=");

  /* Every signal blocked across fork: the child must not run a handler
   * of ours before it has reset them (child()). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  /* The socket must stay open while we fork: the shutdown closes it under
   * the same lock. From fork on, a shutdown keeps the Unix socket file
   * (handover_pending): the successor may serve it. */
  pthread_mutex_lock(&s->listen_lock);
  pid_t pid = -1;
  if (s->listen_sock < 0) {
    r = VIGIL_ESHUTDOWN;
  } else {
    pid = fork();
    if (pid == 0) child(s->listen_sock, fds[1], path, argv, envp, pid_digits);
    if (pid < 0) r = -errno;
    else s->handover_pending = true;
  }
  pthread_mutex_unlock(&s->listen_lock);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  /* Its own group from here on, whichever of us runs setpgid first (a
   * kill(-pid) must not miss it; EACCES once it has exec'd is fine). */
  if (pid > 0) setpgid(pid, pid);
  close(fds[1]); /* the child's now: EOF on fds[0] once it is gone */
  env_free(envp);
  if (r == 0) r = wait_ready(fds[0], pid, timeout_ms);
  close(fds[0]);
  if (pid > 0) vigil__listen_handover_end(s, r == 0);
  if (r == 0 && pid_out != NULL) *pid_out = (int)pid;
  atomic_store(&s->handover_busy, 0);
  return r;
}
