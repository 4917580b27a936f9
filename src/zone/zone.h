/*
 * zone: one zone's world, its player sessions and its frames (the seed's T1/T2). Actions are
 * applied the moment they arrive and answered "applied"; everything applied since the last commit
 * forms a frame that is written to the store as one transaction (group commit), after which its
 * actions are "durable". It is loop-agnostic: a driver (src/zone/loop.c) decides when to commit
 * and on which thread the store write runs.
 */
#ifndef OW_ZONE_H
#define OW_ZONE_H

#include "store/store.h"
#include "world/world.h"

typedef struct ow_zone ow_zone;
typedef struct ow_zone_commit ow_zone_commit;

typedef struct ow_zone_config {
  ow_world_config world;
  uint32_t replay_window;  /* results remembered per session for replays (default 64) */
  uint64_t frame_log_keep; /* frames kept in the store's frame log; 0 keeps all */
} ow_zone_config;

/* One action as applied: who sent it, its sequence number, the action and its result. The action's
 * argument bytes (a type that is not built-in) belong to the zone and stay valid as long as the
 * ow_applied does (the frame's callback, a frame log visit). */
typedef struct ow_applied {
  uint64_t session, seq;
  ow_action action;
  ow_result result;
  uint64_t evicted;       /* seq whose remembered result this action pushed out of the window, or 0 */
  uint64_t evicted_frame; /* the frame of that result */
} ow_applied;

/* What a durable (or failed) commit reports. Pointers are valid during the callback only. */
typedef struct ow_frame_info {
  uint64_t frame;
  int status; /* 0: durable; negative: not written, these actions are not durable */
  const ow_applied *actions;
  size_t nactions;
  const ow_id *changed; /* entities written or deleted by this frame */
  size_t nchanged;
  uint64_t commit_ns; /* time from sealing to durable */
  /* Everything the frame wrote, as sealed: entity records here are the state as of this frame,
   * which is what confirmed reads publish. NULL when status != 0. */
  const ow_batch *batch;
} ow_frame_info;

typedef void (*ow_durable_fn)(void *ud, const ow_frame_info *f);

/* Opens the zone over a store: rebuilds the world from it, or, if the store is empty, seeds the
 * content's default world and commits it. content and store must outlive the zone. */
int ow_zone_open(ow_zone **out, const ow_zone_config *cfg, ow_content *content, ow_store *store,
                 ow_durable_fn on_durable, void *ud);
/* Frees the zone. Call ow_zone_commit_sync(z, true) first to keep what was applied. */
void ow_zone_close(ow_zone *z);

ow_world *ow_zone_world(ow_zone *z);

/* Starts a session for `account` (any non-zero id), creating its avatar and inventory on first
 * login. Session ids are random 64-bit numbers, never reused. OW_E_STORE_FAILED after a failed
 * write: the session could never be written. */
int ow_zone_login(ow_zone *z, ow_id account, uint64_t *session, ow_id *avatar);
/* Looks a session up (after a reconnect or a restart). OW_E_NO_SESSION if unknown. */
int ow_zone_session(ow_zone *z, uint64_t session, ow_id *account, ow_id *avatar, uint64_t *last_seq);

/* Applies one action exactly once. seq must grow strictly per session (gaps allowed); a seq already
 * seen returns the original result (and *replayed = true) and changes nothing. Fills *res and
 * *frame (the frame the action belongs to; durable once ow_zone_durable_frame() >= *frame). The
 * action's argument bytes (a->args) are copied for the frame: the caller's may go on return.
 * Returns 0 when the action was processed (its own outcome is in res->code), OW_E_NO_SESSION,
 * OW_E_INVAL (seq 0), OW_E_SEQ_TOO_OLD (seq older than the replay window) or OW_E_STORE_FAILED
 * (a write failed earlier: the action is not applied and its seq stays free; replays of applied
 * actions are still answered, and are durable only if *frame <= ow_zone_durable_frame()). */
int ow_zone_act(ow_zone *z, uint64_t session, uint64_t seq, const ow_action *a, ow_result *res,
                uint64_t *frame, bool *replayed);

/* Latest-value-wins transform stream for the session's avatar or a held object. */
int ow_zone_stream(ow_zone *z, uint64_t session, ow_id entity, const ow_transform *xf);

/* Adds a put or delete of a key outside the zone's own keyspace (accounts, tokens) to the gathering
 * frame: it becomes durable with that frame, in the same transaction. Returns the frame number. */
uint64_t ow_zone_put(ow_zone *z, const void *k, size_t kl, const void *v, size_t vl);
uint64_t ow_zone_del(ow_zone *z, const void *k, size_t kl);

/* True when a frame has something to commit (actions, changes, or stream changes if checkpoint). */
bool ow_zone_commit_wanted(const ow_zone *z, bool checkpoint);
/* Seals the gathering frame into a commit. Returns OW_E_BUSY while one is in flight, the sticky
 * store error after a failed write, or 0 with *out NULL when there is nothing to commit. */
int ow_zone_commit_begin(ow_zone *z, bool checkpoint, ow_zone_commit **out);
/* Writes the commit to the store. Safe on any thread; touches only the commit and the store. */
int ow_zone_commit_run(ow_zone_commit *c);
/* Back on the zone's thread: reports the frame through on_durable. A failure is sticky: nothing is
 * written again and no later frame is ever confirmed durable until the process restarts and
 * re-reads the store; later commit_begin calls report what gathered (actions, puts) with the same
 * error, and new actions and logins are refused with OW_E_STORE_FAILED. */
void ow_zone_commit_end(ow_zone *z, ow_zone_commit *c, int rc);
/* begin + run + end on the calling thread, until nothing is left to commit. */
int ow_zone_commit_sync(ow_zone *z, bool checkpoint);

uint64_t ow_zone_frame(const ow_zone *z);         /* frame now gathering */
uint64_t ow_zone_durable_frame(const ow_zone *z); /* last frame confirmed durable */
int ow_zone_store_error(const ow_zone *z);        /* 0, or the sticky error */

/* Figures of the last open: load time and resident bytes per entity. */
typedef struct ow_zone_load_stats {
  uint64_t entities, sessions;
  double seconds;
  double bytes_per_entity;
  bool seeded;
} ow_zone_load_stats;
const ow_zone_load_stats *ow_zone_load_info(const ow_zone *z);

/* Reads the store's frame log in frame order: fn is called once per logged action (and once with
 * a == NULL for a frame without actions). Used by recovery checks, tests and tools. */
typedef int (*ow_frame_visit_fn)(void *ud, uint64_t frame, const ow_applied *a);
int ow_zone_frame_log_each(ow_store *store, ow_frame_visit_fn fn, void *ud);


#endif
