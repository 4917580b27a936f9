/*
 * metrics: every figure the server reports, in one X-macro list (name, kind, help, value), and the
 * emitters over it. /status is the list as one JSON object built with jansson (escaped, never
 * truncated); a Prometheus /metrics is one more emitter over the same rows (ow_metrics_list and
 * ow_metrics_read give it the names, kinds, help texts and values).
 */
#ifndef OW_SERVER_METRICS_H
#define OW_SERVER_METRICS_H

#include <jansson.h>

#include "server/server_int.h"

typedef enum ow_metric_kind {
  OW_METRIC_TEXT,    /* a string (JSON string; Prometheus: a label of an info metric) */
  OW_METRIC_FLAG,    /* true or false (JSON boolean; Prometheus: a gauge of 0 or 1) */
  OW_METRIC_GAUGE,   /* a level now, which goes up and down */
  OW_METRIC_COUNTER, /* a count since start, which only grows */
  /* The last OW_SAMPLES durations of some loop work (ow_samples, nanoseconds). JSON shows
   * <name>_p50_us and <name>_p99_us, in microseconds rounded to 0.1. */
  OW_METRIC_HISTOGRAM,
} ow_metric_kind;

/*
 * X(name, KIND, help, value). The value is an expression over s (const ow_server *), st (its
 * ow_server_stats), zs (the zone loop's stats) and ns (the net's stats), of type const char *
 * (TEXT), bool (FLAG), an unsigned integer (GAUGE, COUNTER) or const ow_samples * (HISTOGRAM).
 * The JSON names are what tests/, bench/ and operators read: never rename one; add rows instead.
 * The order is /status's.
 */
#define OW_SERVER_METRICS(X)                                                                       \
  X(name, TEXT, "the server_name setting", s->cfg.name ? s->cfg.name : "")                         \
  X(connections, GAUGE, "WebSocket connections open", s->clients.len)                             \
  X(players, GAUGE, "players joined into the world", s->joined)                                    \
  X(accounts, GAUGE, "accounts known", ow_auth_accounts(s->auth))                                  \
  X(entities, GAUGE, "entities in the zone's world", ow_world_count(ow_zone_world(s->zone)))       \
  X(frame, GAUGE, "the last frame sealed", ow_zone_frame(s->zone))                                 \
  X(durable_frame, GAUGE, "the last frame written to disk", ow_zone_durable_frame(s->zone))        \
  X(store_failed, FLAG, "a commit failed: durability suspended until restart", s->store_failed)    \
  X(store_error, TEXT, "the store's sticky error (OK when none)",                                  \
    ow_err_name(ow_zone_store_error(s->zone)))                                                     \
  X(actions, COUNTER, "actions applied", st->actions)                                              \
  X(seal, HISTOGRAM, "loop time to seal a frame", &zs->seal_ns)                                    \
  X(publish, HISTOGRAM, "loop time to build and queue every client's snapshot, per tick",          \
    &st->publish_ns)                                                                               \
  X(poses, HISTOGRAM, "loop time to build and queue every client's poses, per publish",           \
    &st->poses_ns)                                                                                 \
  X(commit, HISTOGRAM, "time to write a frame to the store", &zs->commit_ns)                       \
  X(bytes_in, COUNTER, "WebSocket message bytes received", st->bytes_in)                           \
  X(bytes_out, COUNTER, "protocol bytes queued to clients", st->bytes_out)                         \
  X(mem_bytes, GAUGE, "bytes allocated through ow_malloc", ow_mem_used())                          \
  X(tcp_open, GAUGE, "TCP connections open (HTTP and WebSocket)", ns->tcp_open)                    \
  X(tcp_accepted, COUNTER, "TCP connections accepted", ns->accepted)                               \
  X(conns_refused_total, COUNTER, "connections closed at accept: max_conns", ns->refused_total)    \
  X(conns_refused_addr, COUNTER, "connections closed at accept: max_conns_per_addr",               \
    ns->refused_addr)                                                                              \
  X(oversize, COUNTER, "WebSocket messages larger than max_message", ns->oversize)                 \
  X(protocol_errors, COUNTER, "clients disconnected for a protocol error", st->protocol_errors)    \
  X(too_slow, COUNTER, "clients disconnected with a full send queue", st->too_slow)                \
  X(rate_limited, COUNTER, "messages refused or dropped for rate", st->rate_limited)               \
  X(rate_kicks, COUNTER, "clients disconnected for rate (SERVER_BYE RATE)", st->rate_kicks)        \
  X(logins_failed, COUNTER, "logins with a wrong name or password", st->logins_failed)             \
  X(login_refused_account, COUNTER, "logins refused: the account is locked",                       \
    st->login_refused_account)                                                                     \
  X(login_refused_addr, COUNTER, "logins refused: the address is locked", st->login_refused_addr)  \
  X(pwhash_refused_addr, COUNTER, "password checks refused: pwhash_per_addr reached",              \
    st->pwhash_refused_addr)                                                                       \
  X(pwhash_refused_busy, COUNTER, "password checks refused: the queue is full",                   \
    st->pwhash_refused_busy)                                                                       \
  X(pwhash_running, GAUGE, "password checks running", s->jobs_running)                             \
  X(pwhash_waiting, GAUGE, "password checks waiting for a thread", s->jobs_queued)                 \
  X(connections_opened, COUNTER, "WebSocket connections opened", st->connections)                  \
  X(messages_in, COUNTER, "protocol messages received", st->messages_in)                           \
  X(poses_in, COUNTER, "poses accepted", st->poses_in)                                             \
  X(poses_out, COUNTER, "pose entries sent", st->poses_out)                                        \
  X(snapshots_out, COUNTER, "SNAPSHOT messages sent", st->snapshots_out)                           \
  X(http_requests, COUNTER, "HTTP requests routed", ns->http_requests)

enum {
#define OW_METRIC_ENUM_(name, kind, help, value) OW_METRIC_##name,
  OW_SERVER_METRICS(OW_METRIC_ENUM_)
#undef OW_METRIC_ENUM_
  OW_METRICS_N
};

/* A row of the list: static strings. */
typedef struct ow_metric {
  const char *name;
  ow_metric_kind kind;
  const char *help;
} ow_metric;

/* A value as read: the member the row's kind names. Pointers are valid until the server changes
 * (return to the loop) or is freed. */
typedef struct ow_metric_value {
  const char *text;
  bool flag;
  uint64_t u64; /* GAUGE and COUNTER */
  const ow_samples *samples;
} ow_metric_value;

/* The rows, OW_METRICS_N of them, in list order. */
const ow_metric *ow_metrics_list(void);
/* Reads every row's value now into out[0 .. OW_METRICS_N). */
void ow_metrics_read(const ow_server *s, ow_metric_value *out);
/* The list as one JSON object (a new reference; NULL when out of memory). */
json_t *ow_metrics_json(const ow_server *s);

#endif
