/*
 * The keynote workload's transfers, shared by the three clients (keynote_ow, keynote_pg,
 * keynote_sqlite) so that each system receives exactly the same transfers, drawn the way
 * SpacetimeDB's keynote-2 draws them (templates/keynote-2/src/core/zipf.ts and runner.ts).
 *
 * - The random source is mulberry32 seeded with 0x12345678, computed as JavaScript computes it
 *   (its state is a double that is never wrapped, so it loses its low bits after about 5 million
 *   draws; the C code keeps the same double), giving the same stream of numbers in [0, 1).
 * - Zipf(N, alpha): account k (0-based; rank k + 1) is drawn with probability proportional to
 *   1 / (k + 1)^alpha, by a binary search in a cumulative table built with Kahan summation.
 * - A pair is two draws; the second is drawn again, at most 32 more times, while it equals the
 *   first (pickTwoDistinct). So `to` is not Zipf-distributed as `from` is: with alpha = 1.5 and
 *   100,000 accounts account 0 is `from` in 38.4 % of the pairs and `to` in 24.9 %, a net payer
 *   of 13.4 % of all transfers. keynote-2 lives with that bias through its starting balances of
 *   10,000,000 (KN_BALANCE); so do we.
 * - --pairs pairs (10,000,000, BENCH_PRECOMPUTED_TRANSFER_PAIRS) are drawn before the run from
 *   one sampler. Worker (connection) i of W starts at pair i x floor(pairs / W) and walks on,
 *   wrapping to the first pair at the end. The amount is always 1 (KN_AMOUNT).
 */
#ifndef KN_ZIPF_H
#define KN_ZIPF_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* mulberry32 with JavaScript's arithmetic: `t` is a double incremented without wrapping, and
 * every bit operation sees it modulo 2^32 (ToInt32 / ToUint32). */
typedef struct kn_rng {
  double t;
} kn_rng;

static inline void kn_rng_seed(kn_rng *r, uint32_t seed) { r->t = (double)seed; }

static inline uint32_t kn_imul(uint32_t a, uint32_t b) { return a * b; }

/* Uniform in [0, 1), as mulberry32's next(). */
static inline double kn_rng_unit(kn_rng *r) {
  r->t += 1831565813.0; /* 0x6d2b79f5 */
  uint32_t t = (uint32_t)fmod(r->t, 4294967296.0);
  uint32_t x = kn_imul(t ^ (t >> 15), 1u | t);
  x ^= x + kn_imul(x ^ (x >> 7), 61u | x);
  return (double)(x ^ (x >> 14)) / 4294967296.0;
}

typedef struct kn_zipf {
  uint32_t n;
  double *cdf; /* cdf[k] = P(draw <= k); cdf[n - 1] = 1 */
} kn_zipf;

/* Returns 0, or -1 when n < 2, alpha <= 0 or memory is short. */
static inline int kn_zipf_init(kn_zipf *z, uint32_t n, double alpha) {
  z->n = n;
  z->cdf = NULL;
  if (n < 2 || !(alpha > 0)) return -1;
  z->cdf = malloc((size_t)n * sizeof *z->cdf);
  if (!z->cdf) return -1;
  /* Two Kahan sums, as keynote-2: the total, then the normalised running sum. */
  double sum = 0, c = 0;
  for (uint32_t k = 0; k < n; k++) {
    double y = 1 / pow((double)k + 1, alpha) - c, t = sum + y;
    c = t - sum - y;
    sum = t;
  }
  double cum = 0;
  c = 0;
  for (uint32_t k = 0; k < n; k++) {
    double y = 1 / pow((double)k + 1, alpha) / sum - c, t = cum + y;
    c = t - cum - y;
    cum = t;
    z->cdf[k] = cum;
  }
  z->cdf[n - 1] = 1.0;
  return 0;
}

static inline void kn_zipf_free(kn_zipf *z) {
  free(z->cdf);
  z->cdf = NULL;
}

/* The first k with cdf[k] >= u. */
static inline uint32_t kn_zipf_draw(const kn_zipf *z, kn_rng *r) {
  double u = kn_rng_unit(r);
  uint32_t lo = 0, hi = z->n - 1;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (z->cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* The precomputed transfers: pair j is from[j] -> to[j]. */
typedef struct kn_pairs {
  uint32_t *from, *to;
  size_t count;
} kn_pairs;

/* Draws `count` pairs over `accounts` accounts from one sampler seeded with `seed`. Returns 0, or
 * -1 on bad arguments or when memory is short (nothing is then held). */
static inline int kn_pairs_init(kn_pairs *p, uint32_t accounts, double alpha, uint32_t seed,
                                size_t count) {
  p->from = p->to = NULL;
  p->count = 0;
  kn_zipf z;
  if (count < 1 || kn_zipf_init(&z, accounts, alpha)) return -1;
  p->from = malloc(count * sizeof *p->from);
  p->to = malloc(count * sizeof *p->to);
  if (!p->from || !p->to) {
    free(p->from);
    free(p->to);
    p->from = p->to = NULL;
    kn_zipf_free(&z);
    return -1;
  }
  kn_rng r;
  kn_rng_seed(&r, seed);
  for (size_t j = 0; j < count; j++) {
    uint32_t a = kn_zipf_draw(&z, &r), b = kn_zipf_draw(&z, &r);
    for (int spins = 0; b == a && spins < 32; spins++) b = kn_zipf_draw(&z, &r);
    p->from[j] = a;
    p->to[j] = b;
  }
  p->count = count;
  kn_zipf_free(&z);
  return 0;
}

static inline void kn_pairs_free(kn_pairs *p) {
  free(p->from);
  free(p->to);
  p->from = p->to = NULL;
  p->count = 0;
}

/* One worker's walk through the pairs. */
typedef struct kn_cursor {
  const kn_pairs *p;
  size_t next;
} kn_cursor;

/* Worker `worker` of `workers` starts at worker x floor(count / workers) (at least 1). */
static inline void kn_cursor_init(kn_cursor *c, const kn_pairs *p, int worker, int workers) {
  size_t per = p->count / (size_t)workers;
  if (per < 1) per = 1;
  c->p = p;
  c->next = (size_t)worker * per;
}

static inline void kn_cursor_pair(kn_cursor *c, uint32_t *from, uint32_t *to) {
  if (c->next >= c->p->count) c->next = 0;
  *from = c->p->from[c->next];
  *to = c->p->to[c->next];
  c->next++;
}

#endif
