/*
 * worker.c - slow work on a worker thread that stops when the client leaves.
 *
 *   cc worker.c $(pkg-config --cflags --libs vigil) -o worker
 *   ./worker 8080
 *   curl 'http://127.0.0.1:8080/work?ms=3000'    # answered after 3 s
 *   (press Ctrl-C in curl: the worker stops at once and logs why)
 *
 * The handler (on a loop thread, which must not block) registers a cancel
 * callback and hands the request to a new thread. The worker does its work
 * in small slices; between slices it checks whether the request was
 * cancelled (the cancel callback wakes it up at once through a condition
 * variable, and vigil_request_reason says why). When the work is done it
 * answers from the worker thread: vigil_response_* may be called from any
 * thread. Either way it gives the handler reference back with
 * vigil_request_finish().
 *
 * SIGINT/SIGTERM: graceful shutdown (running work gets 2 s, then it is
 * cancelled with "serverShutdown"), wait for the loop and the workers,
 * free, exit 0.
 */
#include <vigil.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One request's work. Two owners: the worker thread and the cancel callback
 * (which always runs exactly once: with the cancellation, or with
 * VIGIL_REASON_HANDLER_FINISHED after the worker finished). */
typedef struct job {
  atomic_int refs;
  vigil_request_t *req;        /* the handler reference, owned by the worker */
  unsigned ms;                 /* how long the work takes */
  pthread_mutex_t mu;
  pthread_cond_t cv;           /* signalled by the cancel callback */
  int cancelled;
} job_t;

/* Running workers, so that main can wait for them before exiting. */
static pthread_mutex_t workers_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t workers_cv = PTHREAD_COND_INITIALIZER;
static int workers;

static const vigil_header_t TEXT[] = {{"Content-Type", 12, "text/plain", 10}};

static void job_unref(job_t *job) {
  if (atomic_fetch_sub(&job->refs, 1) != 1) return;
  pthread_cond_destroy(&job->cv);
  pthread_mutex_destroy(&job->mu);
  free(job);
}

static double ms_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Loop thread, the moment the request ends. Must not block: wake the
 * worker and return. */
static void on_cancel(vigil_request_t *req, vigil_reason_t reason, void *ud) {
  job_t *job = ud;
  (void)req;
  if (reason != VIGIL_REASON_HANDLER_FINISHED) {
    pthread_mutex_lock(&job->mu);
    job->cancelled = 1;
    pthread_cond_signal(&job->cv);
    pthread_mutex_unlock(&job->mu);
  }
  job_unref(job);
}

static void *worker(void *arg) {
  job_t *job = arg;
  vigil_request_t *req = job->req;
  struct timespec t0, deadline;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int cancelled = 0;
  unsigned done_ms = 0;
  /* "Work" in 10 ms slices. A real worker would compute, query a database,
   * ...; here each slice waits on the condition variable, so a cancellation
   * interrupts it at once rather than at the end of the slice. */
  pthread_mutex_lock(&job->mu);
  while (done_ms < job->ms && !job->cancelled) {
    unsigned slice = job->ms - done_ms < 10 ? job->ms - done_ms : 10;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += (long)slice * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
    while (!job->cancelled &&
           pthread_cond_timedwait(&job->cv, &job->mu, &deadline) != ETIMEDOUT) {
    }
    if (!job->cancelled) done_ms += slice;
  }
  cancelled = job->cancelled;
  pthread_mutex_unlock(&job->mu);

  if (cancelled) {
    /* The client is gone (or the server is stopping): nobody will read an
     * answer. vigil_request_reason tells why; any response call would now
     * fail with VIGIL_ECANCELED (or VIGIL_ESHUTDOWN). */
    vigil_reason_t why = vigil_request_reason(req);
    fprintf(stderr, "worker: request on connection %llu cancelled after %.1f ms: %s\n",
            (unsigned long long)vigil_request_connection_id(req), ms_since(&t0),
            vigil_reason_name(why));
  } else {
    char body[96];
    int n = snprintf(body, sizeof body, "work done after %u ms\n", job->ms);
    int r = vigil_response_send(req, 200, TEXT, 1, body, (size_t)n);
    if (r != 0) /* cancelled between our check and the send: fine */
      fprintf(stderr, "worker: response not sent: %s\n", vigil_strerror(r));
  }
  vigil_request_finish(req); /* from the worker thread too */
  job_unref(job);

  pthread_mutex_lock(&workers_mu);
  if (--workers == 0) pthread_cond_broadcast(&workers_cv);
  pthread_mutex_unlock(&workers_mu);
  return NULL;
}

static unsigned query_ms(const char *target, size_t len) {
  /* "/work?ms=N" */
  const char *q = memchr(target, '?', len);
  if (q == NULL) return 2000;
  size_t rest = len - (size_t)(q + 1 - target);
  if (rest > 3 && memcmp(q + 1, "ms=", 3) == 0) {
    unsigned v = 0;
    for (size_t i = 4; i < rest + 1 && q[i] >= '0' && q[i] <= '9'; i++)
      if (v < 600000) v = v * 10 + (unsigned)(q[i] - '0');
    return v;
  }
  return 2000;
}

static void on_request(vigil_request_t *req, void *userdata) {
  (void)userdata;
  size_t tlen;
  const char *target = vigil_request_target(req, &tlen);
  if (!(tlen >= 5 && memcmp(target, "/work", 5) == 0 && (tlen == 5 || target[5] == '?'))) {
    static const char usage[] = "try GET /work?ms=3000 and hang up early\n";
    vigil_response_send(req, 200, TEXT, 1, usage, sizeof usage - 1);
    vigil_request_finish(req);
    return;
  }
  job_t *job = calloc(1, sizeof *job);
  if (job == NULL) {
    vigil_request_finish(req); /* answers 500 */
    return;
  }
  atomic_init(&job->refs, 2);
  job->req = req;
  job->ms = query_ms(target, tlen);
  pthread_mutex_init(&job->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&job->cv, &ca);
  pthread_condattr_destroy(&ca);
  /* Register before the worker starts, so no cancellation can be missed.
   * If the client already left, on_cancel runs right here. */
  vigil_request_on_cancel(req, on_cancel, job);

  pthread_mutex_lock(&workers_mu);
  workers++;
  pthread_mutex_unlock(&workers_mu);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  if (pthread_create(&t, &attr, worker, job) != 0) {
    pthread_mutex_lock(&workers_mu);
    workers--;
    pthread_mutex_unlock(&workers_mu);
    static const char busy[] = "no worker thread available\n";
    vigil_response_send(req, 503, TEXT, 1, busy, sizeof busy - 1);
    vigil_request_finish(req);
    job_unref(job); /* the worker's share; on_cancel drops the other */
  }
  pthread_attr_destroy(&attr);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  long port = 8080;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) host = argv[++i];
    else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = strtol(argv[++i], NULL, 10);
    else if (argv[i][0] != '-') port = strtol(argv[i], NULL, 10);
    else {
      fprintf(stderr, "usage: %s [--host H] [--port N | N]\n", argv[0]);
      return 2;
    }
  }
  if (port < 0 || port > 65535) {
    fprintf(stderr, "bad port %ld\n", port);
    return 2;
  }

  /* Signals are taken by sigwait in main; every other thread (loop threads,
   * workers) inherits the blocked mask. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  vigil_config_t config;
  vigil_config_init(&config);
  config.host = host;
  config.port = (uint16_t)port;
  config.on_request = on_request;

  vigil_server_t *server;
  int r = vigil_server_new(&server, &config);
  if (r == 0 && (r = vigil_server_start(server)) != 0) vigil_server_free(server);
  if (r != 0) {
    fprintf(stderr, "worker: cannot start on %s:%ld: %s\n", host, port, vigil_strerror(r));
    return 1;
  }
  printf("worker: listening on http://%s:%d/work?ms=3000\n", host, vigil_server_port(server));
  fflush(stdout);

  int sig = 0;
  sigwait(&sigs, &sig);
  fprintf(stderr, "worker: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  vigil_server_shutdown(server, 2000);
  vigil_server_wait(server);
  /* The loop is gone; every request still running was cancelled with
   * "serverShutdown", so the workers are finishing. Wait for them (they
   * may still call vigil_request_* on their request: that is allowed after
   * the server stopped, even after vigil_server_free, but we wait anyway so
   * that nothing runs while the process exits). */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 5;
  pthread_mutex_lock(&workers_mu);
  while (workers > 0 &&
         pthread_cond_timedwait(&workers_cv, &workers_mu, &until) != ETIMEDOUT) {
  }
  int left = workers;
  pthread_mutex_unlock(&workers_mu);
  vigil_server_free(server);
  if (left > 0) fprintf(stderr, "worker: %d worker(s) still running at exit\n", left);
  return 0;
}
