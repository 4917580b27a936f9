/*
 * server_int: the server's shared state, private to src/server. One ow_server holds the clients,
 * the session and account maps, the confirmations waiting for durability and the job queue; each
 * part of the server (the files named below) owns a slice of it and calls the others only through
 * the functions declared here.
 *
 * Data flows one way: a net connection becomes a client (client.c), its messages log in and join
 * (session.c, with argon2 on jobs.c's threads), actions and poses go to the zone (route.c), the
 * zone's durable frames come back as DURABLE and feed the replica, and publish.c sends snapshots
 * and poses out; admin.c (chat, announcements, admin commands) and metrics.c (/status) read the
 * state. server.c creates, wires and destroys the parts.
 */
#ifndef OW_SERVER_INT_H
#define OW_SERVER_INT_H

#include <sodium.h>

#include "auth/throttle.h"
#include "proto/proto.h"
#include "server/replica.h"
#include "server/server.h"

enum { S_NEW, S_GREETED, S_AUTHED, S_JOINED };
enum { JOB_REGISTER, JOB_LOGIN };

/* Confirmations kept per session for a RESUME while nobody holds it; the oldest go first. */
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
  /* sender session -> pose priority, the version 2 slot this client knows the sender by and the
   * last pose seq sent (publish.c, PV_*) */
  ow_map prio;
  uint16_t proto; /* the protocol version agreed in HELLO (1 until then) */
  /* The next version 2 POSES slot to give; past the 15-bit range every slot is given anew. */
  uint16_t next_slot;
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

/* Bytes of messages held while a client's password is hashed (see process in client.c). */
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
  /* Snapshots go out on the first tick at or after next_snapshot_ns (snapshot_hz): at the default
   * 30 Hz against 60 Hz ticks every other tick, together with that tick's poses. */
  uint64_t next_snapshot_ns;
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
  struct hashers *hashers; /* jobs.c */
  ow_assets *assets;       /* NULL without cfg.assets.dir */
  ow_map action_results;   /* (type << 32) | -code -> actions (prom.c, server_count_action) */
};

/* ---- client.c: connections, decoding, dispatch, replies, rate limits ------------------------- */

/* The net handlers (ow_net_handlers): a connection becomes a client, its messages are decoded and
 * dispatched in order, its end drops the client. */
void server_on_open(void *ud, ow_conn *conn);
void server_on_message(void *ud, ow_conn *conn, const uint8_t *p, size_t n, bool binary);
void server_on_oversize(void *ud, ow_conn *conn);
void server_on_close(void *ud, ow_conn *conn);
/* Frees a client and forgets it everywhere (session, account, job, pending replies). */
void server_client_drop(ow_server *s, client *c);
/* Processes the messages that arrived while the client's job ran. */
void server_process_held(client *c);
/* Closes clients silent for longer than idle_s (the housekeeping timer). */
void server_housekeeping_cb(uv_timer_t *t);
/* Sends one encoded message; false if the client is closing or was too slow (it is then closed). */
bool server_send_raw(client *c, const uint8_t *p, size_t n);
void server_send_msg(client *c, const ow_msg *m);
void server_send_error(client *c, uint32_t req, int code, const char *text);
void server_send_ok(client *c, uint32_t req);
/* SERVER_BYE with the reason, then a close once the queue is written. At most once per client. */
void server_kick(client *c, uint16_t reason, const char *text);
/* ERROR and SERVER_BYE PROTOCOL for a malformed or misplaced message. */
void server_protocol_error(client *c, uint32_t req, int code, const char *text);
/* A token bucket: true and one token less, or false when empty. */
bool server_take_token(double *bucket, uint64_t *last_ns, double rate, double burst);
/* One more refusal for rate, weighing w; past rate_kick the client is disconnected. */
void server_rate_strike(client *c, double w);
/* ERROR RATE with the text, counted in rate_limited, and a strike. */
void server_rate_refused(client *c, uint32_t req, const char *text);
/* The same with a retry hint (in whole seconds when retry_s > 0) appended to the text. */
void server_refuse_rate(client *c, uint32_t req, const char *text, double retry_s);

/* Poses a client may send at once beyond pose_rate: a quarter of a second's worth. */
static inline double server_pose_burst(const ow_server *s) { return s->cfg.pose_rate / 4 + 1; }

/* ---- session.c: HELLO, REGISTER/LOGIN, RESUME, JOIN, LEAVE, LOGOUT --------------------------- */

void server_on_hello(client *c, const ow_msg *m);
void server_on_credentials(client *c, const ow_msg *m); /* REGISTER and LOGIN */
void server_on_resume(client *c, const ow_msg *m);
void server_on_join(client *c, const ow_msg *m);
void server_on_leave(client *c, const ow_msg *m);
void server_on_logout(client *c, const ow_msg *m);
/* The outcome of a finished job for a client still connected (called by jobs.c). */
void server_job_finished(client *c, const job *j);
/* Out of the world (a joined player only): the player count drops. */
void server_leave_world(client *c);
/* The client no longer holds its session and account in the maps. */
void server_unbind(client *c);
/* An account's role: the stored one, or admin when the `admins` setting names it. */
uint8_t server_role_of(const ow_server *s, const ow_account *acc);

/* ---- jobs.c: argon2 on threads of their own -------------------------------------------------- */

/* Starts n hashing threads; the pool is s->hashers. */
void server_jobs_start(ow_server *s, unsigned n);
/* Queues a job (admission was checked by the caller) and starts it if a thread is free. */
void server_job_start(client *c, uint8_t kind, uint32_t req, ow_str name, ow_str pw,
                      uint64_t name_key);
/* Stops the threads (a running job is finished first) and frees every job, queued or done. */
void server_jobs_stop(ow_server *s);

/* ---- route.c: actions and poses into the zone, confirmations back ---------------------------- */

void server_on_action(client *c, const ow_msg *m);
void server_on_pose(client *c, const ow_msg *m);
/* DURABLE for n seqs of one frame, chunked as the 16-bit count needs: the one place it is. */
void server_send_durable(client *c, uint64_t frame, int status, const uint64_t *seqs, size_t n);
/* After a RESUME: the confirmations kept while nobody held the session. */
void server_deliver_undelivered(client *c);
/* The system EVENT every client gets once after a disk fault. */
void server_send_store_failed(client *c);
/* A frame's confirmations grouped by session: group k is session sessions[k] with the seqs
 * seqs[start[k] .. start[k + 1]) in the order they were applied; groups come in the order of each
 * session's first action. */
typedef struct confirm_groups {
  size_t ngroups;
  uint64_t *sessions;
  size_t *start; /* ngroups + 1 entries */
  uint64_t *seqs;
} confirm_groups;
/* Groups n applied actions in O(n) (two passes and a map). *out is owned by the caller: free it
 * with server_groups_free. Zero actions give zero groups and nothing to free. */
void server_group_by_session(const ow_applied *a, size_t n, confirm_groups *out);
void server_groups_free(confirm_groups *g);
/* Frees the confirmations still kept for sessions nobody resumed. */
void server_undelivered_free(ow_server *s);

/* ---- publish.c: snapshots and poses out ------------------------------------------------------ */

void server_publish_cb(uv_timer_t *t); /* every tick: snapshots (and poses, when on the tick) */
void server_poses_cb(uv_timer_t *t);   /* pose_hz > tick_hz: poses on their own timer */

/* ---- admin.c: chat, announcements, admin commands -------------------------------------------- */

void server_on_chat(client *c, const ow_msg *m);
void server_on_admin(client *c, const ow_msg *m);

/* ---- metrics.c: the registry and /status ----------------------------------------------------- */

/* The net's /status handler: ow_server_status_json. */
void server_status_cb(void *ud, ow_buf *out);

/* ---- prom.c: GET /metrics, the registry in the Prometheus text format ------------------------ */

/* Registers GET /metrics on the server's net. */
void server_prom_routes(ow_server *s);
/* One more action of this type with this result (0 or a negative OW_E_* code). */
void server_count_action(ow_server *s, uint8_t type, int32_t code);

#endif
