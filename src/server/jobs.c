/*
 * jobs: the argon2 pool. REGISTER and LOGIN hash or verify a password on pwhash_jobs threads of
 * their own, queued FIFO on the loop thread with per-address and total limits, and the result comes
 * back to the loop through a uv_async (session.c acts on it).
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "server/server_int.h"

/* Argon2 is slow on purpose. It runs on pwhash_jobs threads of its own, not on libuv's thread
 * pool, so that the store write never waits behind it, and at a lower priority than the loop and
 * the store (HASH_NICE), so that on a machine with few cores a flood of logins slows the logins,
 * not the world. Up to pwhash_queue more jobs wait here on the loop thread; beyond that LOGIN and
 * REGISTER are refused with OW_E_RATE. */
#define HASH_NICE 10

struct hashers {
  ow_server *srv;
  uv_async_t async; /* a job is done */
  uv_mutex_t mu;
  uv_cond_t cv;
  job *queue, *queue_tail; /* handed over, not started */
  job *done;             /* finished, newest first */
  bool stop;
  unsigned n;
  uv_thread_t *threads;
};
typedef struct hashers hashers;

static void job_work(job *j) {
  if (j->kind == JOB_REGISTER) {
    j->rc = ow_auth_hash(j->srv->auth, j->pw, j->pl, j->hash);
  } else if (j->hash[0]) {
    j->ok = ow_auth_verify(j->hash, j->pw, j->pl);
  } else {
    /* An unknown name costs what a verification costs, so that timing does not reveal names. */
    char scratch[crypto_pwhash_STRBYTES];
    j->rc = ow_auth_hash(j->srv->auth, j->pw, j->pl, scratch);
    j->ok = false;
  }
}

/* The job leaves the server's books: its address slot, and its throttle attempt (a failure if a
 * LOGIN's verification ran and failed; a success forgets the account's failures). */
static void job_release(ow_server *s, job *j, bool ran) {
  uint64_t *v = ow_map_get(&s->jobs_by_addr, j->addr);
  if (v && *v > 1)
    (*v)--;
  else
    ow_map_del(&s->jobs_by_addr, j->addr);
  if (j->kind == JOB_LOGIN) {
    uint64_t now = ow_now_ns();
    bool failed = ran && !j->rc && !j->ok;
    bool ok = ran && !j->rc && j->ok;
    ow_throttle_end(s->fail_account, j->name_key, failed, ok, now);
    ow_throttle_end(s->fail_addr, j->addr, failed, false, now);
    if (failed) s->stats.logins_failed++;
  }
  sodium_memzero(j->pw, sizeof j->pw);
}

static void hasher_main(void *arg) {
  hashers *h = arg;
  /* Per-thread on Linux: only this thread yields to the loop and the store. */
  setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), HASH_NICE);
  uv_mutex_lock(&h->mu);
  for (;;) {
    while (!h->queue && !h->stop) uv_cond_wait(&h->cv, &h->mu);
    if (h->stop) break;
    job *j = h->queue;
    h->queue = j->next;
    if (!h->queue) h->queue_tail = NULL;
    uv_mutex_unlock(&h->mu);
    job_work(j);
    uv_mutex_lock(&h->mu);
    j->next = h->done;
    h->done = j;
    uv_async_send(&h->async);
  }
  uv_mutex_unlock(&h->mu);
}

/* Hands waiting jobs to the hashing threads while threads are free. A job whose client left while
 * it waited is dropped unhashed. */
static void run_jobs(ow_server *s) {
  hashers *h = s->hashers;
  while (s->jobq && s->jobs_running < s->cfg.pwhash_jobs) {
    job *j = s->jobq;
    s->jobq = j->next;
    if (!s->jobq) s->jobq_tail = NULL;
    s->jobs_queued--;
    if (!j->c || s->shutting) {
      if (j->c) {
        j->c->job = NULL;
        server_send_error(j->c, j->req, OW_E_SHUTTING_DOWN, "the server is stopping");
      }
      job_release(s, j, false);
      ow_free(j);
      continue;
    }
    s->jobs_running++;
    j->next = NULL;
    uv_mutex_lock(&h->mu);
    if (h->queue_tail)
      h->queue_tail->next = j;
    else
      h->queue = j;
    h->queue_tail = j;
    uv_cond_signal(&h->cv);
    uv_mutex_unlock(&h->mu);
  }
}

/* On the loop: the job leaves the books, the next waiting one starts, and the outcome goes to the
 * client if it is still there (session.c), then the messages it sent meanwhile. */
static void job_done(job *j) {
  client *c = j->c;
  ow_server *s = j->srv;
  s->jobs_running--;
  job_release(s, j, true);
  if (c) c->job = NULL;
  run_jobs(s);
  bool live = c && c->conn && !s->shutting;
  if (live) server_job_finished(c, j);
  ow_free(j);
  if (live) server_process_held(c);
}

static void hashers_done(uv_async_t *a) {
  hashers *h = a->data;
  uv_mutex_lock(&h->mu);
  job *list = h->done;
  h->done = NULL;
  uv_mutex_unlock(&h->mu);
  job *fifo = NULL; /* in the order they finished */
  while (list) {
    job *next = list->next;
    list->next = fifo;
    fifo = list;
    list = next;
  }
  while (fifo) {
    job *next = fifo->next;
    job_done(fifo);
    fifo = next;
  }
}

void server_jobs_start(ow_server *s, unsigned n) {
  hashers *h = ow_calloc(1, sizeof *h);
  h->srv = s;
  h->n = n;
  uv_mutex_init(&h->mu);
  uv_cond_init(&h->cv);
  uv_async_init(s->loop, &h->async, hashers_done);
  h->async.data = h;
  uv_unref((uv_handle_t *)&h->async); /* the loop's life is the server's timers' */
  h->threads = ow_calloc(n, sizeof *h->threads);
  for (unsigned i = 0; i < n; i++) OW_ASSERT(uv_thread_create(&h->threads[i], hasher_main, h) == 0);
  s->hashers = h;
}

static void hashers_free_cb(uv_handle_t *a) {
  hashers *h = a->data;
  uv_mutex_destroy(&h->mu);
  uv_cond_destroy(&h->cv);
  ow_free(h->threads);
  ow_free(h);
}

/* The threads stop (after the job they may be running); then the jobs that never got a thread are
 * freed. The loop runs once more after this (see main), which closes the async handle. */
void server_jobs_stop(ow_server *s) {
  hashers *h = s->hashers;
  uv_mutex_lock(&h->mu);
  h->stop = true;
  uv_cond_broadcast(&h->cv);
  uv_mutex_unlock(&h->mu);
  for (unsigned i = 0; i < h->n; i++) uv_thread_join(&h->threads[i]);
  job *lists[2] = {h->queue, h->done};
  for (int k = 0; k < 2; k++)
    for (job *j = lists[k], *next; j; j = next) {
      next = j->next;
      sodium_memzero(j->pw, sizeof j->pw);
      ow_free(j);
    }
  h->queue = h->done = NULL;
  uv_close((uv_handle_t *)&h->async, hashers_free_cb);
  for (job *j = s->jobq, *next; j; j = next) {
    next = j->next;
    sodium_memzero(j->pw, sizeof j->pw);
    ow_free(j);
  }
  s->jobq = s->jobq_tail = NULL;
}

/* Queues the job (admission was checked by the caller) and starts it if a thread is free. */
void server_job_start(client *c, uint8_t kind, uint32_t req, ow_str name, ow_str pw,
                      uint64_t name_key) {
  ow_server *s = c->srv;
  job *j = ow_calloc(1, sizeof *j);
  j->srv = s;
  j->c = c;
  j->kind = kind;
  j->req = req;
  j->addr = ow_conn_addr(c->conn);
  j->name_key = name_key;
  memcpy(j->name, name.p, name.n);
  j->nl = name.n;
  memcpy(j->pw, pw.p, pw.n);
  j->pl = pw.n;
  if (kind == JOB_LOGIN) {
    const ow_account *acc = ow_auth_by_name(s->auth, name.p, name.n);
    if (acc) snprintf(j->hash, sizeof j->hash, "%s", acc->hash);
    uint64_t now = ow_now_ns();
    ow_throttle_begin(s->fail_account, name_key, now);
    ow_throttle_begin(s->fail_addr, j->addr, now);
  }
  uint64_t *v = ow_map_get(&s->jobs_by_addr, j->addr);
  ow_map_set(&s->jobs_by_addr, j->addr, v ? *v + 1 : 1);
  c->job = j;
  if (s->jobq_tail)
    s->jobq_tail->next = j;
  else
    s->jobq = j;
  s->jobq_tail = j;
  s->jobs_queued++;
  run_jobs(s);
}
