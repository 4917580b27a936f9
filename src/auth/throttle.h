/*
 * throttle: limits failed attempts per key (an account, a remote address) for password guessing.
 * A key that failed max_fails times gets locked for lock_s, and every further failure after a
 * lock doubles the lock, up to lock_max_s; a key with no failure and no lock for window_s is
 * forgotten. Attempts still running count against the limit, so a burst of parallel guesses gets
 * no more than max_fails through. Pure bookkeeping on a caller-given clock: no I/O, no threads.
 */
#ifndef OW_THROTTLE_H
#define OW_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"

typedef struct ow_throttle ow_throttle;

typedef struct ow_throttle_config {
  uint32_t max_fails; /* failures before the first lock (>= 1) */
  double window_s;    /* a key quiet for this long, after its last failure or lock, is forgotten */
  double lock_s;      /* first lock */
  double lock_max_s;  /* longest lock */
} ow_throttle_config;

ow_throttle *ow_throttle_create(const ow_throttle_config *cfg);
void ow_throttle_destroy(ow_throttle *t);

/* May an attempt for `key` start at `now_ns`? Returns 0, or OW_E_RATE with *retry_s (if not
 * NULL) set to the seconds until the lock ends (0 when only running attempts are in the way).
 * Changes nothing. */
int ow_throttle_check(ow_throttle *t, uint64_t key, uint64_t now_ns, double *retry_s);
/* An attempt for `key` starts (after a check said yes): it counts until ow_throttle_end(). */
void ow_throttle_begin(ow_throttle *t, uint64_t key, uint64_t now_ns);
/* The attempt begun for `key` is over: `failed` counts a failure (and may lock the key).
 * `forget` (a successful login to an account) drops the key's record. */
void ow_throttle_end(ow_throttle *t, uint64_t key, bool failed, bool forget, uint64_t now_ns);

/* Keys with a record (failures, a lock or attempts running). */
size_t ow_throttle_size(const ow_throttle *t);

#endif
