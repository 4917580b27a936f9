/*
 * server: the network face of a zone. It speaks docs/protocol.md over src/net connections: accounts
 * and sessions (src/auth), actions into the zone with applied and durable replies, poses, chat,
 * and replication of the confirmed-read mirror (src/server/replica) to each client's area of
 * interest. Everything runs on the zone's loop thread.
 *
 * Its parts, one file each (server_int.h describes the one-way flow between them): client.c
 * (connections, dispatch, replies), session.c (login and join), jobs.c (argon2 threads), route.c
 * (actions in, confirmations back), publish.c (snapshots and poses out), admin.c (chat and admin
 * commands), metrics.c (/status from the list in metrics.h), server.c (create, wire, shut down).
 */
#ifndef OW_SERVER_H
#define OW_SERVER_H

#include "assets/http.h"
#include "auth/auth.h"
#include "net/net.h"
#include "zone/loop.h"
#include "zone/zone.h"

typedef struct ow_server ow_server;

typedef struct ow_server_config {
  ow_net_config net;
  const char *name;         /* shown in WELCOME */
  const char *admins;       /* comma-separated account names that always have the admin role */
  double tick_hz;           /* zone ticks per second: the publish timer's rate */
  double pose_hz;           /* pose publish rate */
  double snapshot_hz;       /* snapshot publish rate (at most tick_hz; 0: every tick) */
  float interest_radius;    /* metres; rounded up to whole region cells */
  uint32_t max_players;     /* joined players per instance */
  double action_rate;       /* actions per second per session (token bucket refill) */
  double action_burst;      /* token bucket size */
  double pose_rate;         /* poses per second accepted per session */
  double down_kbps;         /* per-client downstream budget: snapshots first, poses fill the rest */
  double idle_s;            /* close connections silent for this long */
  double shutdown_notice_s; /* "restarting in N s" before closing on SIGTERM */
  bool eager_commit;        /* an action starts a commit at once when none is in flight */
  /* Abuse limits (docs/protocol.md, "Limits"). Password guessing: failed logins per account and
   * per remote address before the account or address is locked (growing locks). */
  uint32_t login_fails_account, login_fails_addr;
  double login_fail_window_s, login_lock_s, login_lock_max_s;
  /* argon2 jobs running at once (on threads of their own, at a lower priority than the loop and
   * the store write), jobs waiting for one, and jobs running or waiting per address. */
  uint32_t pwhash_jobs, pwhash_queue, pwhash_per_addr;
  double chat_rate, chat_burst; /* chat messages per second per client (token bucket) */
  /* Refusals for rate (actions, poses, chat, logins) add one each to a count that drains at
   * rate_kick_decay per second; past rate_kick the client gets SERVER_BYE RATE. 0: never. */
  double rate_kick, rate_kick_decay;
  /* Uploaded assets (src/assets/http.h): POST /assets and GET /assets/<digest> when assets.dir is
   * set; no asset routes otherwise. */
  ow_assets_config assets;
  /* The store, for its size in /metrics and /status (not owned; may be NULL). */
  ow_store *store;
  /* GET /metrics (Prometheus) needs "Authorization: Bearer <metrics_token>" when this is set and
   * not empty; without it /metrics is as open as /status (prom.c). */
  const char *metrics_token;
} ow_server_config;

/* What the server counts as it runs; metrics.h lists them (with names, kinds and help texts) for
 * /status. */
typedef struct ow_server_stats {
  uint64_t connections, messages_in, actions, poses_in, poses_out, snapshots_out;
  uint64_t bytes_in, bytes_out, protocol_errors, too_slow, rate_limited;
  uint64_t logins_failed;         /* wrong name or password (argon2 ran) */
  uint64_t login_refused_account; /* LOGIN refused without argon2: the account is locked */
  uint64_t login_refused_addr;    /* ... the address is locked */
  uint64_t pwhash_refused_addr;   /* LOGIN/REGISTER refused: pwhash_per_addr jobs already */
  uint64_t pwhash_refused_busy;   /* ... pwhash_jobs running and pwhash_queue waiting */
  uint64_t rate_kicks;            /* SERVER_BYE RATE sent */
  ow_samples publish_ns; /* loop time to build and queue every client's snapshot, per tick */
  ow_samples poses_ns;   /* loop time to build and queue every client's poses, per publish */
} ow_server_stats;

/* Starts listening. zone, loop and auth must outlive the server. */
int ow_server_create(ow_server **out, uv_loop_t *loop, ow_zone *zone, ow_zone_loop *zl,
                     ow_auth *auth, const ow_server_config *cfg);
int ow_server_port(const ow_server *s);
/* Wire the zone's durable callback here: confirmations, replication, durable replies. */
void ow_server_on_durable(ow_server *s, const ow_frame_info *f);
/* SIGTERM: stop accepting, tell players "restarting in N s", then commit and checkpoint through the
 * zone loop, deliver the last confirmations, say BYE (shutdown) and close. done(ud) runs on the loop
 * when the server has let go of its timers and started closing connections; the caller closes its
 * own handles and lets uv_run drain. */
void ow_server_shutdown(ow_server *s, void (*done)(void *ud), void *ud);
/* Frees the server once uv_run has returned. */
void ow_server_free(ow_server *s);
const ow_server_stats *ow_server_stats_get(const ow_server *s);
/* Appends the /status body to out: one line of JSON (built with jansson, so every string is
 * escaped and nothing is truncated) and a newline. Returns 0, or OW_E_NOMEM when jansson could not
 * encode it (out is then unchanged). */
int ow_server_status_json(const ow_server *s, ow_buf *out);
/* Appends the body of GET /metrics to out: the same figures in the Prometheus text format 0.0.4
 * (prom.c). Returns 0. */
int ow_server_prom_text(const ow_server *s, ow_buf *out);

#endif
