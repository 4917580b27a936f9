/* throttle: failed-attempt limits per key with growing locks. See throttle.h. */
#include "auth/throttle.h"

typedef struct rec {
  uint64_t key;
  uint32_t fails;    /* failures since the record was fresh */
  uint32_t inflight; /* attempts begun and not ended */
  uint32_t strikes;  /* locks so far: the next one lasts lock_s * 2^strikes */
  uint64_t last_ns;  /* last failure */
  uint64_t locked_until_ns;
} rec;

struct ow_throttle {
  ow_throttle_config cfg;
  ow_map index; /* key -> position in recs */
  OW_VEC(rec *) recs;
  size_t sweep_at;   /* sweep when this many records exist, */
  uint64_t swept_ns; /* or a window after the last sweep */
};

#define NS(s) ((uint64_t)((s)*1e9))

ow_throttle *ow_throttle_create(const ow_throttle_config *cfg) {
  ow_throttle *t = ow_calloc(1, sizeof *t);
  t->cfg = *cfg;
  if (!t->cfg.max_fails) t->cfg.max_fails = 1;
  ow_map_init(&t->index);
  t->sweep_at = 1024;
  return t;
}

void ow_throttle_destroy(ow_throttle *t) {
  if (!t) return;
  for (size_t i = 0; i < t->recs.len; i++) ow_free(t->recs.v[i]);
  OW_VEC_FREE(t->recs);
  ow_map_deinit(&t->index);
  ow_free(t);
}

static rec *find(const ow_throttle *t, uint64_t key) {
  const uint64_t *i = ow_map_get(&t->index, key);
  return i ? t->recs.v[*i] : NULL;
}

static void drop(ow_throttle *t, rec *r) {
  uint64_t *i = ow_map_get(&t->index, r->key);
  size_t at = (size_t)*i;
  ow_map_del(&t->index, r->key);
  rec *last = t->recs.v[--t->recs.len];
  if (last != r) {
    t->recs.v[at] = last;
    ow_map_set(&t->index, last->key, at);
  }
  ow_free(r);
}

/* Nothing running, no lock, and quiet for a window: the record says nothing any more. */
static bool stale(const ow_throttle *t, const rec *r, uint64_t now) {
  if (r->inflight || now < r->locked_until_ns) return false;
  uint64_t since = r->last_ns > r->locked_until_ns ? r->last_ns : r->locked_until_ns;
  return now - since > NS(t->cfg.window_s);
}

static void sweep(ow_throttle *t, uint64_t now) {
  for (size_t i = 0; i < t->recs.len;) {
    rec *r = t->recs.v[i];
    if (stale(t, r, now) || (!r->fails && !r->inflight && now >= r->locked_until_ns))
      drop(t, r); /* the last record moved to i: look at i again */
    else
      i++;
  }
  t->sweep_at = t->recs.len * 2 > 1024 ? t->recs.len * 2 : 1024;
  t->swept_ns = now;
}

int ow_throttle_check(ow_throttle *t, uint64_t key, uint64_t now_ns, double *retry_s) {
  if (retry_s) *retry_s = 0;
  const rec *r = find(t, key);
  if (!r || stale(t, r, now_ns)) return 0;
  if (now_ns < r->locked_until_ns) {
    if (retry_s) *retry_s = (double)(r->locked_until_ns - now_ns) / 1e9;
    return OW_E_RATE;
  }
  if (r->fails < t->cfg.max_fails) return r->fails + r->inflight < t->cfg.max_fails ? 0 : OW_E_RATE;
  /* A lock has run out but the failures stand: one attempt at a time, and its failure locks the
   * key again for twice as long. */
  return r->inflight ? OW_E_RATE : 0;
}

void ow_throttle_begin(ow_throttle *t, uint64_t key, uint64_t now_ns) {
  /* Stale records go in sweeps: when the table has doubled since the last one, or a window later
   * (so the table is at most twice the keys active within a window). */
  if (t->recs.len >= t->sweep_at || now_ns - t->swept_ns > NS(t->cfg.window_s)) sweep(t, now_ns);
  rec *r = find(t, key);
  if (!r) {
    r = ow_calloc(1, sizeof *r);
    r->key = key;
    ow_map_set(&t->index, key, t->recs.len);
    OW_VEC_PUSH(t->recs, r);
  } else if (stale(t, r, now_ns)) {
    r->fails = r->strikes = 0;
  }
  r->inflight++;
}

void ow_throttle_end(ow_throttle *t, uint64_t key, bool failed, bool forget, uint64_t now_ns) {
  rec *r = find(t, key);
  if (!r) return;
  if (r->inflight) r->inflight--;
  if (forget) {
    drop(t, r);
    return;
  }
  if (failed) {
    if (stale(t, r, now_ns)) r->fails = r->strikes = 0;
    r->fails++;
    r->last_ns = now_ns;
    if (r->fails >= t->cfg.max_fails) {
      double lock = t->cfg.lock_s;
      for (uint32_t i = 0; i < r->strikes && lock < t->cfg.lock_max_s; i++) lock *= 2;
      if (lock > t->cfg.lock_max_s) lock = t->cfg.lock_max_s;
      r->locked_until_ns = now_ns + NS(lock);
      if (r->strikes < 64) r->strikes++;
    }
  } else if (!r->fails && !r->inflight && now_ns >= r->locked_until_ns) {
    drop(t, r);
  }
}

size_t ow_throttle_size(const ow_throttle *t) { return t->recs.len; }
