/* server: protocol sessions over WebSocket connections. See server.h and docs/protocol.md. */
#include "server/server.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "auth/throttle.h"
#include "proto/proto.h"
#include "server/interest.h"
#include "server/replica.h"

enum { S_NEW, S_GREETED, S_AUTHED, S_JOINED };
enum { JOB_REGISTER, JOB_LOGIN };

#define UNDELIVERED_MAX 256
/* seqs per DURABLE message (its count is 16 bits; 4096 seqs keep it near 32 KiB). */
#define DURABLE_CHUNK 4096

typedef struct job job;
typedef struct client client;

struct client {
  ow_server *srv;
  ow_conn *conn;
  uint8_t state;
  job *job; /* an argon2 job in flight for this client */
  uint64_t account, session;
  ow_id avatar;
  uint8_t role;
  uint8_t token[OW_TOKEN_LEN];
  double bucket;
  uint64_t bucket_ns;
  double pose_bucket;
  uint64_t pose_ns;
  uint64_t last_rx_ns;
  /* the latest pose, and how many have arrived */
  ow_pose pose;
  uint32_t pose_seq;
  /* replication */
  ow_view *view;
  ow_map prio; /* sender session -> (u32 float priority bits << 32) | last pose seq sent */
  ow_buf held; /* messages that arrived while a login or registration was being hashed */
  double reliable_bps; /* recent rate of snapshot bytes, which the pose budget leaves room for */
  uint64_t pose_warned_ns; /* last time the client was told its poses are over the rate */
  uint64_t reliable_bytes, reliable_ns;
  double chat_bucket;
  uint64_t chat_ns;
  double strikes; /* recent rate refusals, draining at rate_kick_decay per second */
  uint64_t strike_ns;
  bool bye_sent;
};

#define HELD_MAX (16u * 1024u)
/* A client with more than this queued is backing up: it gets no poses and no new snapshot until
 * its queue drains (poses are latest-value-wins; a snapshot is a delta against what the client
 * acknowledged, so the next one carries whatever a skipped round would have). */
#define BACKLOG_BYTES (64u * 1024u)

struct job {
  ow_server *srv;
  client *c; /* NULL once the client is gone */
  job *next; /* in one list: waiting (s->jobq), handed to a thread, or done */
  uint64_t addr;     /* the client's address: per-address job count and login throttle */
  uint64_t name_key; /* account_key() of the name, for LOGIN */
  uint8_t kind;
  uint32_t req;
  char name[OW_NAME_MAX_LEN + 1];
  size_t nl;
  char pw[OW_PASSWORD_MAX + 1];
  size_t pl;
  char hash[crypto_pwhash_STRBYTES];
  int rc;
  bool ok;
};

typedef struct pending_reply {
  uint64_t frame;
  client *c;
  uint32_t req;
} pending_reply;

typedef struct undelivered {
  OW_VEC(uint64_t) frames;
  OW_VEC(uint64_t) seqs;
} undelivered;

struct ow_server {
  ow_server_config cfg;
  uv_loop_t *loop;
  ow_zone *zone;
  ow_zone_loop *zl;
  ow_auth *auth;
  ow_net *net;
  ow_replica *replica;
  uv_timer_t publish, poses, housekeeping, notice;
  /* When pose_hz <= tick_hz, poses are published from the tick (the first tick at or after
   * next_pose_ns) rather than from their own timer: a client's POSES and SNAPSHOT of that tick are
   * then queued together and leave in one WebSocket message. */
  bool poses_on_tick;
  uint64_t next_pose_ns;
  int handles;
  OW_VEC(client *) clients; /* every connection, for publishing */
  ow_map by_session;        /* zone session -> client* */
  ow_map by_account;        /* account -> client* */
  ow_map undelivered;       /* zone session -> undelivered* */
  OW_VEC(pending_reply) pending;
  uint32_t joined;
  int radius_cells;
  ow_buf out;
  bool shutting;
  bool store_failed; /* a commit failed: durability is suspended until restart */
  uint64_t drain_start_ns;
  void (*done)(void *);
  void *done_ud;
  ow_server_stats stats;
  /* password guessing and argon2 work (on_credentials) */
  ow_throttle *fail_account, *fail_addr;
  uint8_t name_key[crypto_shorthash_KEYBYTES];
  uint32_t jobs_running, jobs_queued;
  job *jobq, *jobq_tail;
  ow_map jobs_by_addr; /* address -> jobs running or waiting */
  struct hashers *hashers;
};

/* ---- sending --------------------------------------------------------------------------------------- */

static void kick(client *c, uint16_t reason, const char *text);

/* Sends one WebSocket message. A client that cannot take a reliable message is too slow: it is
 * disconnected, since dropping replies would break the protocol's promises. */
static bool send_raw(client *c, const uint8_t *p, size_t n) {
  if (!c->conn || ow_conn_closing(c->conn)) return false;
  int rc = ow_net_send(c->conn, p, n);
  if (rc == OW_E_FULL) {
    c->srv->stats.too_slow++;
    OW_WARN("client_too_slow", "peer=%s account=%llu queued=%zu", ow_conn_peer(c->conn),
            (unsigned long long)c->account, ow_conn_queued(c->conn));
    ow_conn_close(c->conn, true);
    return false;
  }
  if (!rc) c->srv->stats.bytes_out += n;
  return rc == 0;
}

static void send_msg(client *c, const ow_msg *m) {
  ow_buf *b = &c->srv->out;
  b->len = 0;
  ow_proto_encode(b, m);
  send_raw(c, b->data, b->len);
}

static void send_error(client *c, uint32_t req, int code, const char *text) {
  ow_msg m = {.type = OW_MSG_ERROR, .req = req};
  m.u.error.code = code;
  m.u.error.text = (ow_str){text, strlen(text)};
  send_msg(c, &m);
}

static void send_ok(client *c, uint32_t req) {
  ow_msg m = {.type = OW_MSG_OK, .req = req};
  send_msg(c, &m);
}

/* The system EVENT every client gets once after a disk fault: at the fault, or after WELCOME. */
static void send_store_failed(client *c) {
  int err = ow_zone_store_error(c->srv->zone);
  char text[320];
  snprintf(text, sizeof text,
           "durability suspended: the server could not write to disk (%s: %s); nothing more is "
           "saved until it restarts, so actions, registrations and logins are refused, and the "
           "world you see is the last saved state", ow_err_name(err), ow_strerror(err));
  ow_msg e = {.type = OW_MSG_EVENT};
  e.u.event.kind = OW_EVENT_SYSTEM;
  e.u.event.text = (ow_str){text, strlen(text)};
  send_msg(c, &e);
}

/* Says why, then closes once the queue is written. */
static void kick(client *c, uint16_t reason, const char *text) {
  if (!c->conn || c->bye_sent) return;
  ow_msg m = {.type = OW_MSG_SERVER_BYE};
  m.u.bye.reason = reason;
  m.u.bye.text = (ow_str){text, strlen(text)};
  send_msg(c, &m);
  c->bye_sent = true;
  if (c->conn) ow_conn_close(c->conn, false);
}

static void protocol_error(client *c, uint32_t req, int code, const char *text) {
  c->srv->stats.protocol_errors++;
  OW_INFO("protocol_error", "peer=%s account=%llu code=%s text=\"%s\"", ow_conn_peer(c->conn),
          (unsigned long long)c->account, ow_err_name(code), text);
  send_error(c, req, code, text);
  kick(c, OW_BYE_PROTOCOL, text);
}

/* ---- sessions -------------------------------------------------------------------------------------- */

static void leave_world(client *c) {
  if (c->state == S_JOINED) {
    c->srv->joined--;
    c->state = S_AUTHED;
  }
}

static void unbind(client *c) {
  ow_server *s = c->srv;
  if (c->session) {
    uint64_t *v = ow_map_get(&s->by_session, c->session);
    if (v && (client *)(uintptr_t)*v == c) ow_map_del(&s->by_session, c->session);
  }
  if (c->account) {
    uint64_t *v = ow_map_get(&s->by_account, c->account);
    if (v && (client *)(uintptr_t)*v == c) ow_map_del(&s->by_account, c->account);
  }
}

/* A second connection to the same account takes over: the old one is told why and closed. */
static void take_over(ow_server *s, uint64_t account, client *newc) {
  uint64_t *v = ow_map_get(&s->by_account, account);
  client *old = v ? (client *)(uintptr_t)*v : NULL;
  if (!old || old == newc) return;
  leave_world(old);
  unbind(old);
  old->session = old->account = 0;
  old->state = S_GREETED;
  kick(old, OW_BYE_TAKEN_OVER, "this account logged in on another connection");
}

/* DURABLE for n seqs of one frame, as many messages as the 16-bit count needs (4096 per message,
 * which keeps each well under the WebSocket message size). The one place DURABLE is chunked. */
static void send_durable(client *c, uint64_t frame, int status, const uint64_t *seqs, size_t n) {
  ow_server *s = c->srv;
  for (size_t k = 0; k < n; k += DURABLE_CHUNK) {
    size_t cnt = n - k < DURABLE_CHUNK ? n - k : DURABLE_CHUNK;
    s->out.len = 0;
    ow_proto_put_durable(&s->out, frame, status, seqs + k, (uint16_t)cnt);
    send_raw(c, s->out.data, s->out.len);
  }
}

static void deliver_undelivered(client *c) {
  ow_server *s = c->srv;
  uint64_t *v = ow_map_get(&s->undelivered, c->session);
  if (!v) return;
  undelivered *u = (undelivered *)(uintptr_t)*v;
  size_t i = 0;
  while (i < u->frames.len) {
    size_t j = i;
    while (j < u->frames.len && u->frames.v[j] == u->frames.v[i]) j++;
    send_durable(c, u->frames.v[i], 0, u->seqs.v + i, j - i);
    i = j;
  }
  OW_VEC_FREE(u->frames);
  OW_VEC_FREE(u->seqs);
  ow_free(u);
  ow_map_del(&s->undelivered, c->session);
}

static void bind_session(client *c, uint64_t account, uint64_t session, ow_id avatar, uint8_t role) {
  ow_server *s = c->srv;
  take_over(s, account, c);
  /* The session may still be held by an older connection of the same account (resume). */
  uint64_t *v = ow_map_get(&s->by_session, session);
  if (v && (client *)(uintptr_t)*v != c) take_over(s, ((client *)(uintptr_t)*v)->account, c);
  c->account = account;
  c->session = session;
  c->avatar = avatar;
  c->role = role;
  c->state = S_AUTHED;
  ow_map_set(&s->by_session, session, (uint64_t)(uintptr_t)c);
  ow_map_set(&s->by_account, account, (uint64_t)(uintptr_t)c);
}

/* An account's role: the stored one, or admin when the `admins` setting names it. */
static uint8_t role_of(const ow_server *s, const ow_account *acc) {
  if (!acc) return OW_ROLE_PLAYER;
  const char *list = s->cfg.admins ? s->cfg.admins : "";
  size_t n = strlen(acc->name);
  for (const char *p = list; *p;) {
    while (*p == ',' || *p == ' ') p++;
    const char *e = p;
    while (*e && *e != ',' && *e != ' ') e++;
    if ((size_t)(e - p) == n && n && !memcmp(p, acc->name, n)) return OW_ROLE_ADMIN;
    p = e;
  }
  return acc->role;
}

static void send_session(client *c, uint32_t req, uint64_t expires, bool resumed) {
  uint64_t last_seq = 0;
  ow_zone_session(c->srv->zone, c->session, NULL, NULL, &last_seq);
  ow_msg m = {.type = OW_MSG_SESSION, .req = req};
  memcpy(m.u.session.token, c->token, OW_TOKEN_LEN);
  m.u.session.account = c->account;
  m.u.session.avatar = c->avatar;
  m.u.session.role = c->role;
  m.u.session.last_seq = last_seq;
  uint64_t now = (uint64_t)time(NULL);
  m.u.session.expires_in_s = expires > now ? (uint32_t)(expires - now) : 0;
  m.u.session.resumed = resumed;
  send_msg(c, &m);
}

static void process_held(client *c);

/* ---- argon2 jobs on threads of their own ------------------------------------------------------------- */

/* Argon2 is slow on purpose. It runs on pwhash_jobs threads of its own, not on libuv's thread
 * pool, so that the store write never waits behind it, and at a lower priority than the loop and
 * the store (HASH_NICE), so that on a machine with few cores a flood of logins slows the logins,
 * not the world. Up to pwhash_queue more jobs wait here on the loop thread; beyond that LOGIN and
 * REGISTER are refused with OW_E_RATE. */
#define HASH_NICE 10

typedef struct hashers {
  ow_server *srv;
  uv_async_t async; /* a job is done */
  uv_mutex_t mu;
  uv_cond_t cv;
  job *queue, *queue_tail; /* handed over, not started */
  job *done;             /* finished, newest first */
  bool stop;
  unsigned n;
  uv_thread_t *threads;
} hashers;

/* A keyed hash of an account name: the throttle's key, not guessable from outside, so that no
 * chosen name can share an account's record. */
static uint64_t account_key(ow_server *s, const char *name, size_t n) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, (const unsigned char *)name, n, s->name_key);
  uint64_t k;
  memcpy(&k, h, sizeof k);
  return k;
}

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
        send_error(j->c, j->req, OW_E_SHUTTING_DOWN, "the server is stopping");
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

static void job_done(job *j);

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

static hashers *hashers_start(ow_server *s, unsigned n) {
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
  return h;
}

static void hashers_free_cb(uv_handle_t *a) {
  hashers *h = a->data;
  uv_mutex_destroy(&h->mu);
  uv_cond_destroy(&h->cv);
  ow_free(h->threads);
  ow_free(h);
}

/* Stops the threads (a job running is finished first) and frees every job they still hold. */
static void hashers_stop(hashers *h) {
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
}

static void job_done(job *j) {
  client *c = j->c;
  ow_server *s = j->srv;
  s->jobs_running--;
  job_release(s, j, true);
  if (c) c->job = NULL;
  run_jobs(s);
  if (!c || !c->conn || s->shutting) {
    ow_free(j);
    return;
  }
  if (j->rc) {
    send_error(c, j->req, OW_E_NOMEM, "could not hash the password");
  } else if (j->kind == JOB_REGISTER && s->store_failed) {
    /* The disk failed while the password was being hashed: the account could never be saved. */
    send_error(c, j->req, OW_E_STORE_FAILED, "the server cannot save accounts until it restarts");
  } else if (j->kind == JOB_REGISTER) {
    const ow_account *acc;
    uint64_t frame;
    int rc = ow_auth_add(s->auth, s->zone, j->name, j->nl, j->hash, OW_ROLE_PLAYER, &acc, &frame);
    if (rc) {
      send_error(c, j->req, rc, ow_strerror(rc));
    } else {
      OW_INFO("account_created", "account=%llu name=%s", (unsigned long long)acc->id, acc->name);
      pending_reply p = {frame, c, j->req};
      OW_VEC_PUSH(s->pending, p);
      ow_zone_loop_flush(s->zl);
    }
  } else { /* login */
    const ow_account *acc = ow_auth_by_name(s->auth, j->name, j->nl);
    if (!j->ok || !acc) {
      OW_INFO("login_failed", "peer=%s name=%.*s", ow_conn_peer(c->conn), (int)j->nl, j->name);
      send_error(c, j->req, OW_E_AUTH, "wrong name or password");
    } else {
      uint64_t session;
      ow_id avatar;
      int rc = ow_zone_login(s->zone, acc->id, &session, &avatar);
      ow_token_info ti;
      if (!rc) rc = ow_auth_issue(s->auth, s->zone, acc->id, session, (uint64_t)time(NULL), c->token, &ti);
      if (rc) {
        send_error(c, j->req, rc, ow_strerror(rc));
      } else {
        bind_session(c, acc->id, session, avatar, role_of(s, acc));
        OW_INFO("login", "account=%llu session=%016llx peer=%s", (unsigned long long)acc->id,
                (unsigned long long)session, ow_conn_peer(c->conn));
        send_session(c, j->req, ti.expires, false);
      }
    }
  }
  ow_free(j);
  process_held(c);
}

/* Queues the job (admission was checked by the caller) and starts it if a thread is free. */
static void start_job(client *c, uint8_t kind, uint32_t req, ow_str name, ow_str pw,
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

/* One more refusal for rate (weighing `w`): a client that keeps going past its limits is
 * disconnected. */
static void rate_strike(client *c, double w) {
  ow_server *s = c->srv;
  if (s->cfg.rate_kick <= 0 || c->bye_sent) return;
  uint64_t now = ow_now_ns();
  if (c->strike_ns) {
    c->strikes -= (double)(now - c->strike_ns) / 1e9 * s->cfg.rate_kick_decay;
    if (c->strikes < 0) c->strikes = 0;
  }
  c->strike_ns = now;
  c->strikes += w;
  if (c->strikes <= s->cfg.rate_kick) return;
  s->stats.rate_kicks++;
  OW_INFO("rate_kick", "peer=%s account=%llu", ow_conn_peer(c->conn),
          (unsigned long long)c->account);
  kick(c, OW_BYE_RATE, "rate limits exceeded repeatedly");
}

static void refuse_rate(client *c, uint32_t req, const char *text, double retry_s) {
  char msg[160];
  if (retry_s > 0)
    snprintf(msg, sizeof msg, "%s; retry in %.0f s", text, ceil(retry_s));
  else
    snprintf(msg, sizeof msg, "%s; retry in a moment", text);
  c->srv->stats.rate_limited++;
  send_error(c, req, OW_E_RATE, msg);
  rate_strike(c, 1);
}

/* ---- handlers ------------------------------------------------------------------------------------ */

static void on_hello(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (m->u.hello.version != OW_PROTO_VERSION) {
    send_error(c, m->req, OW_E_VERSION, "this server speaks protocol version 1");
    kick(c, OW_BYE_PROTOCOL, "unsupported protocol version");
    return;
  }
  if (c->state == S_NEW) c->state = S_GREETED;
  ow_msg w = {.type = OW_MSG_WELCOME, .req = m->req};
  w.u.welcome.version = OW_PROTO_VERSION;
  w.u.welcome.tick_hz = (uint16_t)s->cfg.tick_hz;
  w.u.welcome.pose_hz = (uint16_t)s->cfg.pose_hz;
  w.u.welcome.server_time_us = ow_now_ns() / 1000;
  w.u.welcome.max_message = (uint32_t)s->cfg.net.max_message;
  w.u.welcome.server_name = (ow_str){s->cfg.name, strlen(s->cfg.name)};
  send_msg(c, &w);
  if (s->store_failed) send_store_failed(c);
}

static void on_credentials(client *c, const ow_msg *m) {
  if (c->state != S_GREETED) {
    send_error(c, m->req, OW_E_STATE, c->state == S_NEW ? "send HELLO first" : "already logged in");
    return;
  }
  if (c->job) {
    send_error(c, m->req, OW_E_STATE, "a login or registration is already in progress");
    return;
  }
  ow_str name = m->u.creds.name, pw = m->u.creds.password;
  if (!ow_auth_name_ok(name.p, name.n) || !ow_auth_password_ok(pw.n)) {
    send_error(c, m->req, OW_E_BAD_NAME,
               "names are 3-32 of A-Z a-z 0-9 _ - . and passwords 8-128 bytes");
    return;
  }
  ow_server *s = c->srv;
  if (s->store_failed) {
    /* A new account and a new session token are writes that could never become durable. */
    send_error(c, m->req, OW_E_STORE_FAILED,
               m->type == OW_MSG_REGISTER ? "the server cannot save accounts until it restarts"
                                          : "the server cannot save sessions until it restarts; "
                                            "RESUME with an existing token still works");
    return;
  }
  if (m->type == OW_MSG_REGISTER && ow_auth_by_name(s->auth, name.p, name.n)) {
    send_error(c, m->req, OW_E_NAME_TAKEN, "account name already taken");
    return;
  }
  /* Refusals first, before any argon2 work: a locked account or address, then the job limits. */
  uint64_t now = ow_now_ns(), addr = ow_conn_addr(c->conn), name_key = 0;
  double retry;
  if (m->type == OW_MSG_LOGIN) {
    name_key = account_key(s, name.p, name.n);
    if (ow_throttle_check(s->fail_account, name_key, now, &retry)) {
      s->stats.login_refused_account++;
      refuse_rate(c, m->req, "too many failed logins for this account", retry);
      return;
    }
    if (ow_throttle_check(s->fail_addr, addr, now, &retry)) {
      s->stats.login_refused_addr++;
      refuse_rate(c, m->req, "too many failed logins from this address", retry);
      return;
    }
  }
  const uint64_t *per_addr = ow_map_get(&s->jobs_by_addr, addr);
  if (per_addr && *per_addr >= s->cfg.pwhash_per_addr) {
    s->stats.pwhash_refused_addr++;
    refuse_rate(c, m->req, "too many password checks from this address", 0);
    return;
  }
  if (s->jobs_running >= s->cfg.pwhash_jobs && s->jobs_queued >= s->cfg.pwhash_queue) {
    s->stats.pwhash_refused_busy++;
    refuse_rate(c, m->req, "too many password checks waiting", 0);
    return;
  }
  start_job(c, m->type == OW_MSG_REGISTER ? JOB_REGISTER : JOB_LOGIN, m->req, name, pw, name_key);
}

static void on_resume(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state != S_GREETED) {
    send_error(c, m->req, OW_E_STATE, c->state == S_NEW ? "send HELLO first" : "already logged in");
    return;
  }
  ow_token_info ti;
  ow_id account, avatar;
  if (ow_auth_check(s->auth, m->u.resume.token, (uint64_t)time(NULL), &ti) ||
      ow_zone_session(s->zone, ti.session, &account, &avatar, NULL)) {
    send_error(c, m->req, OW_E_TOKEN, "session token invalid, expired or revoked");
    return;
  }
  const ow_account *acc = ow_auth_by_id(s->auth, ti.account);
  memcpy(c->token, m->u.resume.token, OW_TOKEN_LEN);
  bind_session(c, ti.account, ti.session, avatar, role_of(s, acc));
  OW_INFO("resume", "account=%llu session=%016llx peer=%s", (unsigned long long)ti.account,
          (unsigned long long)ti.session, ow_conn_peer(c->conn));
  send_session(c, m->req, ti.expires, true);
  deliver_undelivered(c);
}

static void send_joined(client *c, uint32_t req) {
  ow_server *s = c->srv;
  ow_content *ct = ow_world_content(ow_zone_world(s->zone));
  ow_buf *b = &s->out;
  b->len = 0;
  size_t at = ow_proto_begin(b, OW_MSG_JOINED);
  ow_buf_u32(b, req);
  ow_buf_f32(b, ow_world_config_get(ow_zone_world(s->zone))->region_size);
  ow_buf_f32(b, s->cfg.interest_radius);
  ow_buf_u16(b, ct->ntypes);
  for (uint16_t i = 0; i < ct->ntypes; i++) {
    ow_buf_u16(b, i);
    ow_buf_u8(b, ct->types[i].kind);
    size_t n = strlen(ct->types[i].name);
    ow_buf_u8(b, (uint8_t)n);
    ow_buf_put(b, ct->types[i].name, n);
  }
  ow_buf_u16(b, ct->nrecipes);
  for (uint16_t i = 0; i < ct->nrecipes; i++) {
    ow_buf_u16(b, i);
    size_t n = strlen(ct->recipes[i].name);
    ow_buf_u8(b, (uint8_t)n);
    ow_buf_put(b, ct->recipes[i].name, n);
  }
  ow_buf_u16(b, ct->nkeys);
  for (uint16_t i = 0; i < ct->nkeys; i++) {
    size_t n = strlen(ct->keys[i]);
    ow_buf_u8(b, (uint8_t)n);
    ow_buf_put(b, ct->keys[i], n);
  }
  ow_proto_end(b, at);
  send_raw(c, b->data, b->len);
}

static void on_join(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state != S_AUTHED) {
    send_error(c, m->req, OW_E_STATE, c->state == S_JOINED ? "already joined" : "log in first");
    return;
  }
  if (s->joined >= s->cfg.max_players) {
    send_error(c, m->req, OW_E_SERVER_FULL, "this instance is full");
    return;
  }
  c->state = S_JOINED;
  s->joined++;
  ow_view_reset(c->view);
  ow_view_expect(c->view, c->avatar);
  send_joined(c, m->req);
}

static bool take_token(double *bucket, uint64_t *last_ns, double rate, double burst) {
  uint64_t now = ow_now_ns();
  *bucket += (double)(now - *last_ns) / 1e9 * rate;
  if (*bucket > burst) *bucket = burst;
  *last_ns = now;
  if (*bucket < 1) return false;
  *bucket -= 1;
  return true;
}

static void on_action(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state != S_JOINED) {
    send_error(c, m->req, OW_E_STATE, "join the world first");
    return;
  }
  if (!take_token(&c->bucket, &c->bucket_ns, s->cfg.action_rate, s->cfg.action_burst)) {
    s->stats.rate_limited++;
    send_error(c, m->req, OW_E_RATE, "too many actions per second");
    rate_strike(c, 1);
    return;
  }
  ow_result r;
  uint64_t frame;
  bool replayed;
  int rc = ow_zone_act(s->zone, c->session, m->u.action.seq, &m->u.action.action, &r, &frame, &replayed);
  if (rc) {
    send_error(c, m->req, rc, ow_strerror(rc));
    return;
  }
  s->stats.actions++;
  /* Players wait for durable confirmations (and other players for the result): rather than wait
   * for the next tick, ask for the commit now. While one is in flight, actions keep gathering
   * into the next frame, so under load this is still group commit. */
  if (s->cfg.eager_commit && !replayed) ow_zone_loop_flush(s->zl);
  ow_msg a = {.type = OW_MSG_APPLIED, .req = m->req};
  a.u.applied.seq = m->u.action.seq;
  a.u.applied.result = r;
  a.u.applied.frame = frame;
  a.u.applied.replayed = replayed;
  send_msg(c, &a);
  /* A replay of an action whose frame is already durable is confirmed at once; after a disk
   * fault, a replay of one that never became durable is told so at once too. */
  int status = frame <= ow_zone_durable_frame(s->zone) ? 0 : ow_zone_store_error(s->zone);
  if (replayed && (frame <= ow_zone_durable_frame(s->zone) || status)) {
    uint64_t seq = m->u.action.seq;
    send_durable(c, frame, status, &seq, 1);
  }
}

/* Poses a client may send at once beyond pose_rate: a quarter of a second's worth. */
static double pose_burst(const ow_server *s) { return s->cfg.pose_rate / 4 + 1; }

static void on_pose(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state != S_JOINED) return;
  if (!take_token(&c->pose_bucket, &c->pose_ns, s->cfg.pose_rate, pose_burst(s))) {
    /* Poses are a stream: extra ones are dropped, and the client is told at most once a second. */
    s->stats.rate_limited++;
    if (c->pose_ns - c->pose_warned_ns > 1000000000ull) {
      c->pose_warned_ns = c->pose_ns;
      send_error(c, 0, OW_E_RATE, "poses above pose_rate are dropped");
    }
    /* A headset tracking faster than pose_rate (144 Hz against 90) is not an attack: a dropped
     * pose weighs a quarter, so only a flood far above the rate gets the client disconnected. */
    rate_strike(c, 0.25);
    return;
  }
  s->stats.poses_in++;
  c->pose = m->u.pose;
  c->pose_seq++;
  ow_transform xf;
  ow_transform_identity(&xf);
  for (int i = 0; i < 3; i++) xf.pos[i] = ow_dequant_mm(m->u.pose.root[i]);
  ow_quat_unpack(m->u.pose.root_rot, xf.rot);
  /* The root moves the avatar (validated like a move); a seated avatar keeps its seat. */
  ow_zone_stream(s->zone, c->session, c->avatar, &xf);
}

/* An EVENT to every player in the world, encoded once. */
static void broadcast_event(ow_server *s, uint8_t kind, uint64_t from, ow_str text) {
  ow_msg e = {.type = OW_MSG_EVENT};
  e.u.event.kind = kind;
  e.u.event.from = from;
  e.u.event.text = text;
  ow_buf b;
  ow_buf_init(&b);
  ow_proto_encode(&b, &e);
  for (size_t i = 0; i < s->clients.len; i++)
    if (s->clients.v[i]->state == S_JOINED) send_raw(s->clients.v[i], b.data, b.len);
  ow_buf_deinit(&b);
}

static void on_chat(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state != S_JOINED) {
    send_error(c, m->req, OW_E_STATE, "join the world first");
    return;
  }
  /* Every chat message goes to every player: the rate limit keeps one client from multiplying
   * its traffic by the number of players. */
  if (!take_token(&c->chat_bucket, &c->chat_ns, s->cfg.chat_rate, s->cfg.chat_burst)) {
    s->stats.rate_limited++;
    send_error(c, m->req, OW_E_RATE, "too many chat messages per second");
    rate_strike(c, 1);
    return;
  }
  broadcast_event(s, OW_EVENT_CHAT, c->account, m->u.chat.text);
  send_ok(c, m->req);
}

static void on_logout(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state < S_AUTHED) {
    send_error(c, m->req, OW_E_STATE, "not logged in");
    return;
  }
  leave_world(c);
  ow_auth_revoke(s->auth, s->zone, c->token);
  ow_zone_loop_checkpoint(s->zl); /* the avatar's last streamed pose is saved now */
  OW_INFO("logout", "account=%llu", (unsigned long long)c->account);
  unbind(c);
  c->account = c->session = 0;
  send_ok(c, m->req);
  kick(c, OW_BYE_NORMAL, "logged out");
}

/* ADMIN: operations on other accounts and on everyone, for the admin role only. Every operation is
 * logged with who asked for it. */
static void on_admin(client *c, const ow_msg *m) {
  ow_server *s = c->srv;
  if (c->state < S_AUTHED) {
    send_error(c, m->req, OW_E_STATE, "log in first");
    return;
  }
  uint8_t op = m->u.admin.op;
  uint64_t target = m->u.admin.account;
  if (c->role != OW_ROLE_ADMIN) {
    OW_WARN("admin_refused", "op=%u account=%llu by=%llu peer=%s", op, (unsigned long long)target,
            (unsigned long long)c->account, ow_conn_peer(c->conn));
    send_error(c, m->req, OW_E_NOT_ADMIN, "this operation requires the admin role");
    return;
  }
  if (op == 0 || op >= OW_ADMIN_MAX_) {
    send_error(c, m->req, OW_E_INVAL, "unknown admin operation");
    return;
  }
  char text[OW_TEXT_MAX + 1];
  memcpy(text, m->u.admin.text.p, m->u.admin.text.n);
  text[m->u.admin.text.n] = 0;
  const ow_account *acc = ow_auth_by_id(s->auth, target);
  if (op != OW_ADMIN_ANNOUNCE && !acc) {
    send_error(c, m->req, OW_E_NOT_FOUND, "no such account");
    return;
  }
  if (op == OW_ADMIN_SET_ROLE && m->u.admin.role > OW_ROLE_ADMIN) {
    send_error(c, m->req, OW_E_INVAL, "unknown role");
    return;
  }
  OW_INFO("admin", "op=%u account=%llu role=%u by=%llu", op, (unsigned long long)target,
          m->u.admin.role, (unsigned long long)c->account);
  uint64_t *v = op == OW_ADMIN_ANNOUNCE ? NULL : ow_map_get(&s->by_account, target);
  client *t = v ? (client *)(uintptr_t)*v : NULL;
  uint64_t frame = 0;
  switch (op) {
  case OW_ADMIN_KICK:
    if (t) kick(t, OW_BYE_KICKED, text[0] ? text : "removed by an admin");
    break;
  case OW_ADMIN_ANNOUNCE: broadcast_event(s, OW_EVENT_SYSTEM, 0, m->u.admin.text); break;
  case OW_ADMIN_SET_ROLE:
    ow_auth_set_role(s->auth, s->zone, target, m->u.admin.role, &frame);
    if (t) t->role = role_of(s, acc);
    break;
  case OW_ADMIN_REVOKE:
    ow_auth_revoke_account(s->auth, s->zone, target, &frame);
    if (t) kick(t, OW_BYE_KICKED, text[0] ? text : "sessions revoked by an admin");
    break;
  }
  if (!frame) {
    send_ok(c, m->req);
    return;
  }
  /* A stored change is confirmed once its frame is durable, as REGISTER is. */
  pending_reply p = {frame, c, m->req};
  OW_VEC_PUSH(s->pending, p);
  ow_zone_loop_flush(s->zl);
}

static void dispatch(client *c, const ow_msg *m) {
  switch (m->type) {
  case OW_MSG_HELLO: on_hello(c, m); break;
  case OW_MSG_REGISTER:
  case OW_MSG_LOGIN: on_credentials(c, m); break;
  case OW_MSG_RESUME: on_resume(c, m); break;
  case OW_MSG_JOIN: on_join(c, m); break;
  case OW_MSG_LEAVE:
    if (c->state != S_JOINED) {
      send_error(c, m->req, OW_E_STATE, "not in the world");
    } else {
      leave_world(c);
      send_ok(c, m->req);
    }
    break;
  case OW_MSG_LOGOUT: on_logout(c, m); break;
  case OW_MSG_ACTION: on_action(c, m); break;
  case OW_MSG_POSE: on_pose(c, m); break;
  case OW_MSG_ACK: ow_view_ack(c->view, m->u.ack.snapshot); break;
  case OW_MSG_CHAT: on_chat(c, m); break;
  case OW_MSG_ADMIN: on_admin(c, m); break;
  case OW_MSG_PING: {
    ow_msg p = {.type = OW_MSG_PONG, .req = m->req};
    p.u.pong.client_time = m->u.ping.client_time;
    p.u.pong.server_time_us = ow_now_ns() / 1000;
    send_msg(c, &p);
    break;
  }
  case OW_MSG_BYE:
    c->bye_sent = true; /* the client is leaving: no BYE back */
    ow_conn_close(c->conn, false);
    break;
  default: protocol_error(c, m->req, OW_E_PROTO, "server-to-client message sent by a client"); break;
  }
}

/* ---- connections ------------------------------------------------------------------------------------ */

static void on_open(void *ud, ow_conn *conn) {
  ow_server *s = ud;
  client *c = ow_calloc(1, sizeof *c);
  c->srv = s;
  c->conn = conn;
  c->view = ow_view_create();
  c->bucket = s->cfg.action_burst;
  c->pose_bucket = pose_burst(s); /* full, as the action bucket */
  c->bucket_ns = c->pose_ns = c->last_rx_ns = ow_now_ns();
  ow_map_init(&c->prio);
  ow_conn_set_user(conn, c);
  OW_VEC_PUSH(s->clients, c);
  s->stats.connections++;
  if (s->shutting) kick(c, OW_BYE_SHUTDOWN, "server is restarting");
}

/* Decodes and dispatches the protocol messages of one WebSocket message, in order. While an
 * argon2 job runs for the client, the rest is held and processed when the job is done, so that a
 * client may pipeline REGISTER, LOGIN and JOIN. */
static void process(client *c, const uint8_t *p, size_t n) {
  ow_server *s = c->srv;
  size_t off = 0;
  while (off < n && c->conn && !c->bye_sent) {
    if (c->job) {
      if (c->held.len + (n - off) > HELD_MAX) {
        protocol_error(c, 0, OW_E_TOO_LARGE, "too many messages sent while logging in");
        return;
      }
      ow_buf_put(&c->held, p + off, n - off);
      return;
    }
    ow_msg m;
    size_t used;
    char err[160];
    if (ow_proto_decode(p + off, n - off, &used, &m, err, sizeof err)) {
      protocol_error(c, 0, OW_E_PROTO, err);
      return;
    }
    s->stats.messages_in++;
    dispatch(c, &m);
    off += used;
  }
}

static void process_held(client *c) {
  if (!c->held.len) return;
  ow_buf pending = c->held;
  ow_buf_init(&c->held);
  process(c, pending.data, pending.len);
  ow_buf_deinit(&pending);
}

static void on_message(void *ud, ow_conn *conn, const uint8_t *p, size_t n, bool binary) {
  ow_server *s = ud;
  client *c = ow_conn_user(conn);
  if (!c || c->bye_sent) return;
  c->last_rx_ns = ow_now_ns();
  s->stats.bytes_in += n;
  if (!binary) {
    protocol_error(c, 0, OW_E_PROTO, "text WebSocket messages are not part of the protocol");
    return;
  }
  process(c, p, n);
}

static void on_oversize(void *ud, ow_conn *conn) {
  (void)ud;
  client *c = ow_conn_user(conn);
  if (c) protocol_error(c, 0, OW_E_TOO_LARGE, "message larger than max_message");
}

static void client_drop(ow_server *s, client *c) {
  leave_world(c);
  unbind(c);
  if (c->job) c->job->c = NULL;
  for (size_t i = 0; i < s->pending.len; i++)
    if (s->pending.v[i].c == c) s->pending.v[i].c = NULL;
  for (size_t i = 0; i < s->clients.len; i++)
    if (s->clients.v[i] == c) {
      s->clients.v[i] = s->clients.v[--s->clients.len];
      break;
    }
  ow_view_destroy(c->view);
  ow_map_deinit(&c->prio);
  ow_buf_deinit(&c->held);
  ow_free(c);
}

static void on_close(void *ud, ow_conn *conn) {
  client *c = ow_conn_user(conn);
  if (c) client_drop(ud, c);
}

/* A timing percentile in microseconds, rounded to 0.1 us as /status has always shown it. */
static json_t *pct_us(const ow_samples *sm, int pct) {
  return json_real(round(ow_samples_pct(sm, pct) / 1e2) / 10.0);
}

/* The server name as a JSON string. jansson refuses bytes that are not UTF-8; such a name is shown
 * with those bytes as '?' rather than leaving the field out. */
static json_t *name_string(const char *name) {
  json_t *j = json_string(name);
  if (j) return j;
  size_t n = strlen(name);
  char *copy = ow_malloc(n + 1);
  for (size_t i = 0; i <= n; i++) copy[i] = (unsigned char)name[i] < 0x80 ? name[i] : '?';
  j = json_string(copy);
  ow_free(copy);
  return j;
}

static void set_u64(json_t *o, const char *key, uint64_t v) {
  json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* /status as a jansson object: names are escaped by jansson, and nothing is truncated. The field
 * names and their order are what tests, bench/lib.sh and the soak script read; the abuse counters
 * come last. */
static json_t *status_object(const ow_server *s) {
  const ow_zone_loop_stats *zs = ow_zone_loop_stats_get(s->zl);
  const ow_net_stats *ns = ow_net_stats_get(s->net);
  const ow_server_stats *st = &s->stats;
  json_t *o = json_object();
  json_object_set_new(o, "name", name_string(s->cfg.name ? s->cfg.name : ""));
  set_u64(o, "connections", s->clients.len);
  set_u64(o, "players", s->joined);
  set_u64(o, "accounts", ow_auth_accounts(s->auth));
  set_u64(o, "entities", ow_world_count(ow_zone_world(s->zone)));
  set_u64(o, "frame", ow_zone_frame(s->zone));
  set_u64(o, "durable_frame", ow_zone_durable_frame(s->zone));
  json_object_set_new(o, "store_failed", json_boolean(s->store_failed));
  json_object_set_new(o, "store_error", json_string(ow_err_name(ow_zone_store_error(s->zone))));
  set_u64(o, "actions", st->actions);
  json_object_set_new(o, "seal_p50_us", pct_us(&zs->seal_ns, 50));
  json_object_set_new(o, "seal_p99_us", pct_us(&zs->seal_ns, 99));
  json_object_set_new(o, "publish_p50_us", pct_us(&st->publish_ns, 50));
  json_object_set_new(o, "publish_p99_us", pct_us(&st->publish_ns, 99));
  json_object_set_new(o, "poses_p50_us", pct_us(&st->poses_ns, 50));
  json_object_set_new(o, "poses_p99_us", pct_us(&st->poses_ns, 99));
  json_object_set_new(o, "commit_p50_us", pct_us(&zs->commit_ns, 50));
  json_object_set_new(o, "commit_p99_us", pct_us(&zs->commit_ns, 99));
  set_u64(o, "bytes_in", st->bytes_in);
  set_u64(o, "bytes_out", st->bytes_out);
  set_u64(o, "mem_bytes", ow_mem_used());
  set_u64(o, "tcp_open", ns->tcp_open);
  set_u64(o, "tcp_accepted", ns->accepted);
  set_u64(o, "conns_refused_total", ns->refused_total);
  set_u64(o, "conns_refused_addr", ns->refused_addr);
  set_u64(o, "oversize", ns->oversize);
  set_u64(o, "protocol_errors", st->protocol_errors);
  set_u64(o, "too_slow", st->too_slow);
  set_u64(o, "rate_limited", st->rate_limited);
  set_u64(o, "rate_kicks", st->rate_kicks);
  set_u64(o, "logins_failed", st->logins_failed);
  set_u64(o, "login_refused_account", st->login_refused_account);
  set_u64(o, "login_refused_addr", st->login_refused_addr);
  set_u64(o, "pwhash_refused_addr", st->pwhash_refused_addr);
  set_u64(o, "pwhash_refused_busy", st->pwhash_refused_busy);
  set_u64(o, "pwhash_running", s->jobs_running);
  set_u64(o, "pwhash_waiting", s->jobs_queued);
  return o;
}

int ow_server_status_json(const ow_server *s, ow_buf *out) {
  json_t *o = status_object(s);
  /* One compact line (bench/lib.sh reads the body's last line); 15 significant digits print
   * the rounded timings without binary noise and without an exponent. */
  char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
  json_decref(o);
  if (!text) return OW_E_NOMEM;
  ow_buf_put(out, text, strlen(text));
  ow_buf_put(out, "\n", 1);
  free(text);
  return 0;
}

static void status_json(void *ud, ow_buf *out) { ow_server_status_json(ud, out); }

/* ---- durable frames ------------------------------------------------------------------------------ */

/* One session's confirmations of one frame: sent when its client is connected; kept for a RESUME
 * when nobody holds the session, but only those of a durable frame. */
static void confirm_session(ow_server *s, uint64_t session, uint64_t frame, int status,
                            const uint64_t *seqs, size_t n) {
  uint64_t *cv = ow_map_get(&s->by_session, session);
  client *c = cv ? (client *)(uintptr_t)*cv : NULL;
  if (c && c->conn) {
    send_durable(c, frame, status, seqs, n);
    return;
  }
  if (status) return;
  uint64_t *uv = ow_map_get(&s->undelivered, session);
  undelivered *u = uv ? (undelivered *)(uintptr_t)*uv : NULL;
  if (!u) {
    u = ow_calloc(1, sizeof *u);
    ow_map_set(&s->undelivered, session, (uint64_t)(uintptr_t)u);
  }
  for (size_t k = 0; k < n; k++) {
    if (u->frames.len >= UNDELIVERED_MAX) { /* keep the newest: the client also has last_seq */
      memmove(u->frames.v, u->frames.v + 1, (u->frames.len - 1) * sizeof *u->frames.v);
      memmove(u->seqs.v, u->seqs.v + 1, (u->seqs.len - 1) * sizeof *u->seqs.v);
      u->frames.len--;
      u->seqs.len--;
    }
    OW_VEC_PUSH(u->frames, frame);
    OW_VEC_PUSH(u->seqs, seqs[k]);
  }
}

void ow_server_on_durable(ow_server *s, const ow_frame_info *f) {
  if (!f->status && f->batch) ow_replica_apply(s->replica, f->batch, f->frame);
  if (f->status && !s->store_failed) {
    /* The first failed frame (it may hold no action at all: a checkpoint): every client learns
     * once that nothing more will be confirmed. The replica keeps the last durable state, so
     * views go on showing what is really on disk. */
    s->store_failed = true;
    ow_net_status_changed(s->net);
    for (size_t i = 0; i < s->clients.len; i++)
      if (s->clients.v[i]->state != S_NEW) send_store_failed(s->clients.v[i]);
  }
  /* Confirmations, grouped per session, in the order the actions were applied: one pass buckets
   * the frame's actions by session (groups in order of each session's first action), a second
   * places each seq in its group's run of one flat array. */
  size_t n = f->nactions;
  if (n) {
    ow_map group_of;
    ow_map_init(&group_of);
    uint64_t *sessions = ow_malloc(n * sizeof *sessions);
    size_t *start = ow_calloc(n + 1, sizeof *start);
    size_t *group = ow_malloc(n * sizeof *group);
    size_t ngroups = 0;
    for (size_t i = 0; i < n; i++) {
      uint64_t *g = ow_map_get(&group_of, f->actions[i].session);
      if (!g) {
        sessions[ngroups] = f->actions[i].session;
        ow_map_set(&group_of, f->actions[i].session, ngroups);
        group[i] = ngroups++;
      } else {
        group[i] = (size_t)*g;
      }
      start[group[i] + 1]++;
    }
    for (size_t g = 0; g < ngroups; g++) start[g + 1] += start[g];
    uint64_t *seqs = ow_malloc(n * sizeof *seqs);
    size_t *fill = ow_malloc((ngroups ? ngroups : 1) * sizeof *fill);
    memcpy(fill, start, ngroups * sizeof *fill);
    for (size_t i = 0; i < n; i++) seqs[fill[group[i]]++] = f->actions[i].seq;
    for (size_t g = 0; g < ngroups; g++)
      confirm_session(s, sessions[g], f->frame, f->status, seqs + start[g], start[g + 1] - start[g]);
    ow_free(fill);
    ow_free(seqs);
    ow_free(group);
    ow_free(start);
    ow_free(sessions);
    ow_map_deinit(&group_of);
  }
  /* Replies that waited for durability (REGISTER). */
  size_t keep = 0;
  for (size_t i = 0; i < s->pending.len; i++) {
    pending_reply *p = &s->pending.v[i];
    if (p->frame > f->frame && !f->status) {
      s->pending.v[keep++] = *p;
      continue;
    }
    if (!p->c) continue;
    if (f->status)
      send_error(p->c, p->req, f->status, "the account could not be written to disk");
    else
      send_ok(p->c, p->req);
  }
  s->pending.len = keep;
}

/* ---- publishing ---------------------------------------------------------------------------------- */

static ow_cell avatar_cell(ow_server *s, client *c) {
  const ow_entity *e = ow_world_get(ow_zone_world(s->zone), c->avatar);
  ow_cell none = {0, 0};
  return e ? ow_world_region_cell(ow_zone_world(s->zone), e->region) : none;
}

static void emit_snapshot(void *ud, const uint8_t *p, size_t n) {
  client *c = ud;
  if (send_raw(c, p, n)) {
    c->srv->stats.snapshots_out++;
    c->reliable_bytes += n;
  }
}

/* Bytes per second of reliable traffic (snapshots) to this client, smoothed over about a second. */
static double reliable_rate(client *c, uint64_t now) {
  double dt = (double)(now - c->reliable_ns) / 1e9;
  if (dt >= 0.25) {
    double inst = (double)c->reliable_bytes / dt;
    c->reliable_bps = c->reliable_ns ? 0.7 * c->reliable_bps + 0.3 * inst : inst;
    c->reliable_bytes = 0;
    c->reliable_ns = now;
  }
  return c->reliable_bps;
}

static void publish_poses(ow_server *s);

static void publish_cb(uv_timer_t *t) {
  ow_server *s = t->data;
  uint64_t now = ow_now_ns();
  if (s->poses_on_tick && now >= s->next_pose_ns) {
    uint64_t period = (uint64_t)(1e9 / s->cfg.pose_hz);
    s->next_pose_ns += period;
    if (s->next_pose_ns < now) s->next_pose_ns = now + period; /* fell behind: no burst */
    publish_poses(s);
    now = ow_now_ns();
  }
  double budget = s->cfg.down_kbps * 1000.0 / 8.0; /* bytes per second per client */
  for (size_t i = 0; i < s->clients.len; i++) {
    client *c = s->clients.v[i];
    if (c->state != S_JOINED || !c->conn || ow_conn_closing(c->conn)) continue;
    /* Snapshots come first in the client's budget, but stay within it. A snapshot is a delta
     * against what the client acknowledged, so a client that acknowledges late got the same
     * growing delta every tick: 1.5 Mbit/s each in a 200-player room (bench/scaling), with its
     * APPLIED replies queued behind them for seconds, or, with its queue past send_limit_kb, a
     * disconnection. A round skipped here loses nothing: the next delta carries it. */
    if (ow_conn_queued(c->conn) > BACKLOG_BYTES || reliable_rate(c, now) > budget) continue;
    ow_view_update(c->view, s->replica, avatar_cell(s, c), s->radius_cells, now, emit_snapshot, c);
  }
  ow_samples_add(&s->stats.publish_ns, ow_now_ns() - now);
}

typedef struct cand {
  uint32_t j; /* index of the sender in the publish's posers */
  float prio;
} cand;

static int cmp_cand(const void *a, const void *b) {
  float x = ((const cand *)a)->prio, y = ((const cand *)b)->prio;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Poses: every receiver gets the freshest poses of the avatars around it, nearest first, as many as
 * its bandwidth budget allows; a priority accumulator makes sure far avatars are updated too, less
 * often. A client whose send queue is backing up gets none this round: stale poses are never
 * queued. */
static void poses_cb(uv_timer_t *t) { publish_poses(t->data); }

static void publish_poses(ow_server *s) {
  uint64_t t0 = ow_now_ns();
  ow_world *w = ow_zone_world(s->zone);
  double total = s->cfg.down_kbps * 1000.0 / 8.0; /* bytes per second per client */
  /* Joined players with a pose, bucketed by region cell once per publish, so that each receiver
   * looks only at the cells around it instead of at every player in the zone. Each one's POSES
   * entry (avatar id and pose) is encoded once here and copied into every receiver's message. */
  OW_VEC(client *) posers = {0};
  OW_VEC(const ow_entity *) where = {0};
  OW_VEC(uint32_t) ent_at = {0}; /* poser j's entry is ents[ent_at[j] .. ent_at[j + 1]) */
  ow_buf ents;
  ow_buf_init(&ents);
  ow_map first;      /* cell -> index + 1 of the first poser in it */
  ow_map_init(&first);
  OW_VEC(uint32_t) next = {0};
  for (size_t k = 0; k < s->clients.len; k++) {
    client *sc = s->clients.v[k];
    if (sc->state != S_JOINED || !sc->pose_seq) continue;
    const ow_entity *e = ow_world_get(w, sc->avatar);
    if (!e) continue;
    uint64_t key = ow_cell_key(ow_world_region_cell(w, e->region));
    uint64_t *head = ow_map_get(&first, key);
    OW_VEC_PUSH(next, head ? (uint32_t)*head : 0);
    OW_VEC_PUSH(posers, sc);
    OW_VEC_PUSH(where, e);
    OW_VEC_PUSH(ent_at, (uint32_t)ents.len);
    ow_buf_u64(&ents, sc->avatar);
    ow_proto_put_pose(&ents, &sc->pose);
    ow_map_set(&first, key, posers.len);
  }
  OW_VEC_PUSH(ent_at, (uint32_t)ents.len);
  OW_VEC(cand) cands = {0};
  for (size_t i = 0; i < s->clients.len && posers.len; i++) {
    client *rc = s->clients.v[i];
    if (rc->state != S_JOINED || !rc->conn || ow_conn_closing(rc->conn)) continue;
    if (ow_conn_queued(rc->conn) > BACKLOG_BYTES) continue;
    const ow_entity *me = ow_world_get(w, rc->avatar);
    if (!me) continue;
    ow_cell mc = ow_world_region_cell(w, me->region);
    cands.len = 0;
    size_t need = 0; /* bytes of every candidate's entry */
    ow_cell cc;
    for (ow_interest it = ow_interest_begin(mc, s->radius_cells); ow_interest_next(&it, &cc);) {
      uint64_t *head = ow_map_get(&first, ow_cell_key(cc));
      for (uint32_t j = head ? (uint32_t)*head : 0; j; j = next.v[j - 1]) {
        client *sc = posers.v[j - 1];
        if (sc == rc) continue;
        uint64_t *pv = ow_map_get(&rc->prio, sc->session);
        if (!pv) {
          ow_map_set(&rc->prio, sc->session, 0);
          pv = ow_map_get(&rc->prio, sc->session);
        }
        uint32_t sent_seq = (uint32_t)*pv;
        if (sent_seq == sc->pose_seq) continue; /* nothing new from this one */
        const ow_entity *other = where.v[j - 1];
        float prio;
        uint32_t bits = (uint32_t)(*pv >> 32);
        memcpy(&prio, &bits, 4);
        float ddx = other->xf.pos[0] - me->xf.pos[0], ddz = other->xf.pos[2] - me->xf.pos[2];
        prio += 1.0f / (1.0f + sqrtf(ddx * ddx + ddz * ddz) / 4.0f);
        memcpy(&bits, &prio, 4);
        *pv = ((uint64_t)bits << 32) | sent_seq;
        cand cd = {j - 1, prio};
        OW_VEC_PUSH(cands, cd);
        need += ent_at.v[j] - ent_at.v[j - 1];
      }
    }
    if (!cands.len) continue;
    /* Reliable traffic comes first; poses get what is left of the client's budget, and never less
     * than one pose per publish so that the nearest avatar keeps moving. Priority order decides
     * only when they do not all fit (header: type, length, server_time_ms, n). */
    double left = total - reliable_rate(rc, t0);
    size_t budget = left > 0 ? (size_t)(left / s->cfg.pose_hz) : 0;
    if (3 + 4 + 2 + need > budget) qsort(cands.v, cands.len, sizeof *cands.v, cmp_cand);
    ow_buf *b = &s->out;
    b->len = 0;
    size_t at = ow_proto_begin(b, OW_MSG_POSES);
    ow_buf_u32(b, (uint32_t)(ow_now_ns() / 1000000));
    size_t count_at = b->len;
    ow_buf_u16(b, 0);
    uint16_t n = 0;
    for (size_t k = 0; k < cands.len; k++) {
      uint32_t j = cands.v[k].j;
      client *sc = posers.v[j];
      size_t entry = ent_at.v[j + 1] - ent_at.v[j];
      if (n && b->len + entry > budget) break;
      ow_buf_put(b, ents.data + ent_at.v[j], entry);
      n++;
      *ow_map_get(&rc->prio, sc->session) = sc->pose_seq; /* priority back to 0 */
    }
    b->data[count_at] = (uint8_t)n;
    b->data[count_at + 1] = (uint8_t)(n >> 8);
    ow_proto_end(b, at);
    /* Poses are latest-value-wins: a full queue drops them instead of disconnecting. */
    if (ow_conn_queued(rc->conn) + b->len <= BACKLOG_BYTES && !ow_net_send(rc->conn, b->data, b->len)) {
      s->stats.poses_out += n;
      s->stats.bytes_out += b->len;
    }
  }
  OW_VEC_FREE(cands);
  OW_VEC_FREE(posers);
  OW_VEC_FREE(where);
  OW_VEC_FREE(ent_at);
  OW_VEC_FREE(next);
  ow_buf_deinit(&ents);
  ow_map_deinit(&first);
  ow_samples_add(&s->stats.poses_ns, ow_now_ns() - t0);
}

static void housekeeping_cb(uv_timer_t *t) {
  ow_server *s = t->data;
  uint64_t now = ow_now_ns();
  for (size_t i = 0; i < s->clients.len; i++) {
    client *c = s->clients.v[i];
    if (c->conn && !c->bye_sent && (double)(now - c->last_rx_ns) / 1e9 > s->cfg.idle_s)
      kick(c, OW_BYE_IDLE, "no message received for too long");
  }
}

/* ---- life cycle ------------------------------------------------------------------------------------ */

int ow_server_create(ow_server **out, uv_loop_t *loop, ow_zone *zone, ow_zone_loop *zl, ow_auth *auth,
                     const ow_server_config *cfg) {
  *out = NULL;
  ow_server *s = ow_calloc(1, sizeof *s);
  s->cfg = *cfg;
  s->loop = loop;
  s->zone = zone;
  s->zl = zl;
  s->auth = auth;
  ow_map_init(&s->by_session);
  ow_map_init(&s->by_account);
  ow_map_init(&s->undelivered);
  ow_map_init(&s->jobs_by_addr);
  randombytes_buf(s->name_key, sizeof s->name_key);
  ow_throttle_config ta = {.max_fails = cfg->login_fails_account,
                           .window_s = cfg->login_fail_window_s,
                           .lock_s = cfg->login_lock_s,
                           .lock_max_s = cfg->login_lock_max_s};
  ow_throttle_config tb = ta;
  tb.max_fails = cfg->login_fails_addr;
  s->fail_account = ow_throttle_create(&ta);
  s->fail_addr = ow_throttle_create(&tb);
  if (!s->cfg.pwhash_jobs) s->cfg.pwhash_jobs = 1;
  if (!s->cfg.pwhash_per_addr) s->cfg.pwhash_per_addr = 1;
  float rs = ow_world_config_get(ow_zone_world(zone))->region_size;
  s->radius_cells = (int)ceilf(cfg->interest_radius / rs);
  s->replica = ow_replica_create(ow_zone_world(zone), ow_zone_durable_frame(zone));
  ow_net_handlers h = {on_open, on_message, on_oversize, on_close, status_json, s};
  /* docs/protocol.md: one WebSocket message carries one or more protocol messages, at most 60 KiB
   * from the server. Joining what is queued for a client saves a send (and its writable event) per
   * message: a pose publish and a snapshot of the same turn leave together. */
  ow_net_config nc = cfg->net;
  nc.coalesce = 60 * 1024;
  int rc = ow_net_create(&s->net, loop, &nc, &h);
  if (rc) {
    ow_replica_destroy(s->replica);
    ow_throttle_destroy(s->fail_account);
    ow_throttle_destroy(s->fail_addr);
    ow_map_deinit(&s->jobs_by_addr);
    ow_map_deinit(&s->undelivered);
    ow_map_deinit(&s->by_session);
    ow_map_deinit(&s->by_account);
    ow_free(s);
    return rc;
  }
  s->hashers = hashers_start(s, s->cfg.pwhash_jobs);
  uv_timer_t *timers[] = {&s->publish, &s->poses, &s->housekeeping, &s->notice};
  for (int i = 0; i < 4; i++) {
    uv_timer_init(loop, timers[i]);
    timers[i]->data = s;
  }
  s->handles = 4;
  uint64_t tick = (uint64_t)(1000.0 / cfg->tick_hz), pose = (uint64_t)(1000.0 / cfg->pose_hz);
  uv_timer_start(&s->publish, publish_cb, tick ? tick : 1, tick ? tick : 1);
  s->poses_on_tick = cfg->pose_hz <= cfg->tick_hz;
  s->next_pose_ns = ow_now_ns();
  if (!s->poses_on_tick) uv_timer_start(&s->poses, poses_cb, pose ? pose : 1, pose ? pose : 1);
  uv_timer_start(&s->housekeeping, housekeeping_cb, 1000, 1000);
  *out = s;
  return 0;
}

int ow_server_port(const ow_server *s) { return ow_net_port(s->net); }
const ow_server_stats *ow_server_stats_get(const ow_server *s) { return &s->stats; }

static void handle_closed(uv_handle_t *h) {
  ow_server *s = h->data;
  if (--s->handles == 0) {
    /* Every BYE has been written or the drain gave up: let lws close what is left. Its on_close
     * callbacks still run on the loop, so the server stays allocated until ow_server_free(). */
    ow_net_destroy(s->net);
    if (s->done) s->done(s->done_ud);
  }
}

static void drain_cb(uv_timer_t *t) {
  ow_server *s = t->data;
  bool flushed = true;
  for (size_t i = 0; i < s->clients.len; i++)
    if (s->clients.v[i]->conn && ow_conn_queued(s->clients.v[i]->conn)) flushed = false;
  if (!flushed && ow_now_ns() - s->drain_start_ns < 1000000000ull) return;
  uv_close((uv_handle_t *)&s->publish, handle_closed);
  uv_close((uv_handle_t *)&s->poses, handle_closed);
  uv_close((uv_handle_t *)&s->housekeeping, handle_closed);
  uv_close((uv_handle_t *)&s->notice, handle_closed);
}

static void zone_stopped(void *ud) {
  ow_server *s = ud;
  /* The last frame is durable and its confirmations are queued: now say goodbye, and give the
   * connections up to a second to take it. */
  for (size_t i = 0; i < s->clients.len; i++)
    kick(s->clients.v[i], OW_BYE_SHUTDOWN, "server is restarting; resume with your token");
  uv_timer_stop(&s->publish);
  uv_timer_stop(&s->poses);
  s->drain_start_ns = ow_now_ns();
  uv_timer_start(&s->housekeeping, drain_cb, 10, 10);
}

static void notice_over(uv_timer_t *t) {
  ow_server *s = t->data;
  ow_zone_loop_stop(s->zl, zone_stopped, s);
}

void ow_server_shutdown(ow_server *s, void (*done)(void *), void *ud) {
  if (s->shutting) return;
  s->shutting = true;
  s->done = done;
  s->done_ud = ud;
  char text[96];
  snprintf(text, sizeof text, "restarting in %g s", s->cfg.shutdown_notice_s);
  ow_msg e = {.type = OW_MSG_EVENT};
  e.u.event.kind = OW_EVENT_SYSTEM;
  e.u.event.text = (ow_str){text, strlen(text)};
  for (size_t i = 0; i < s->clients.len; i++) send_msg(s->clients.v[i], &e);
  OW_INFO("shutdown_notice", "seconds=%g players=%u", s->cfg.shutdown_notice_s, s->joined);
  uv_timer_start(&s->notice, notice_over, (uint64_t)(s->cfg.shutdown_notice_s * 1000), 0);
}

void ow_server_free(ow_server *s) {
  if (!s) return;
  /* Normally empty by now: lws closed every connection before the loop drained. */
  while (s->clients.len) client_drop(s, s->clients.v[0]);
  OW_VEC_FREE(s->clients);
  ow_net_free(s->net);
  ow_replica_destroy(s->replica);
  for (size_t i = 0; i < s->undelivered.cap; i++)
    if (s->undelivered.keys[i]) {
      undelivered *u = (undelivered *)(uintptr_t)s->undelivered.vals[i];
      OW_VEC_FREE(u->frames);
      OW_VEC_FREE(u->seqs);
      ow_free(u);
    }
  ow_map_deinit(&s->undelivered);
  ow_map_deinit(&s->by_session);
  ow_map_deinit(&s->by_account);
  /* The hashing threads stop (after the job they may be running); then the jobs that never got a
   * thread. The loop runs once more after this (see main), which closes the async handle. */
  hashers_stop(s->hashers);
  for (job *j = s->jobq, *next; j; j = next) {
    next = j->next;
    sodium_memzero(j->pw, sizeof j->pw);
    ow_free(j);
  }
  ow_map_deinit(&s->jobs_by_addr);
  ow_throttle_destroy(s->fail_account);
  ow_throttle_destroy(s->fail_addr);
  OW_VEC_FREE(s->pending);
  ow_buf_deinit(&s->out);
  ow_free(s);
}
