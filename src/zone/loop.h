/*
 * zone loop: drives one zone on a libuv loop, Redis-style: the loop thread owns the world; a tick
 * timer seals frames; the store write of a frame runs on libuv's thread pool (at most one at a
 * time) and its durable replies are released back on the loop thread. Streams are checkpointed on
 * a timer. Stopping commits what was applied, checkpoints and then calls back.
 */
#ifndef OW_ZONE_LOOP_H
#define OW_ZONE_LOOP_H

#include <uv.h>

#include "zone/zone.h"

typedef struct ow_zone_loop ow_zone_loop;

typedef struct ow_zone_loop_stats {
  uint64_t ticks, commits, commit_failures;
  ow_samples seal_ns;   /* loop-thread time to seal a frame */
  ow_samples commit_ns; /* seal to durable, including the fsync on the thread pool */
} ow_zone_loop_stats;

/* Starts ticking `z` on `loop`. The caller owns *out; z must outlive it. */
int ow_zone_loop_create(ow_zone_loop **out, uv_loop_t *loop, ow_zone *z, double tick_hz,
                        double checkpoint_s);
/* Asks for a commit now instead of at the next tick (a caller that needs durability sooner). */
void ow_zone_loop_flush(ow_zone_loop *l);
/* Asks for a commit now that also writes every streamed transform (a player logging out). */
void ow_zone_loop_checkpoint(ow_zone_loop *l);
/* Stops ticking, commits everything applied and the streamed transforms, waits for the write, then
 * calls done(ud) on the loop thread. */
void ow_zone_loop_stop(ow_zone_loop *l, void (*done)(void *ud), void *ud);
/* Frees the loop after stop has called back (its handles are closed by then). */
void ow_zone_loop_destroy(ow_zone_loop *l);
const ow_zone_loop_stats *ow_zone_loop_stats_get(const ow_zone_loop *l);

#endif
