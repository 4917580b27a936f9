/*
 * The keynote workload's random source, shared by the three clients (keynote_ow, keynote_pg,
 * keynote_sqlite) so that each system receives exactly the same transfers: a seeded xoshiro256**
 * stream per client connection and a Zipf distribution over the accounts.
 *
 * Zipf(N, alpha): account k (0-based; rank k + 1) is drawn with probability proportional to
 * 1 / (k + 1)^alpha. Drawn by inverting an exact cumulative table (N doubles) with a binary search.
 * A transfer draws `from`, then draws `to` again until it differs (SpacetimeDB's keynote-2 does
 * the same). With alpha = 1.5 and 100,000 accounts, account 0 is drawn 38 % of the time and takes
 * part in 63 % of the transfers.
 */
#ifndef KN_ZIPF_H
#define KN_ZIPF_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct kn_rng {
  uint64_t s[4];
} kn_rng;

static inline uint64_t kn_splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Stream `stream` (a connection number) of the run seeded with `seed`. */
static inline void kn_rng_seed(kn_rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
  for (int i = 0; i < 4; i++) r->s[i] = kn_splitmix(&x);
}

static inline uint64_t kn_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t kn_rng_next(kn_rng *r) {
  uint64_t *s = r->s;
  uint64_t out = kn_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = kn_rotl(s[3], 45);
  return out;
}

/* Uniform in [0, 1). */
static inline double kn_rng_unit(kn_rng *r) { return (double)(kn_rng_next(r) >> 11) * 0x1p-53; }

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
  double sum = 0;
  for (uint32_t k = 0; k < n; k++) {
    sum += pow((double)k + 1, -alpha);
    z->cdf[k] = sum;
  }
  for (uint32_t k = 0; k < n; k++) z->cdf[k] /= sum;
  z->cdf[n - 1] = 1.0;
  return 0;
}

static inline void kn_zipf_free(kn_zipf *z) {
  free(z->cdf);
  z->cdf = NULL;
}

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

/* One transfer's accounts: two different Zipf draws. */
static inline void kn_zipf_pair(const kn_zipf *z, kn_rng *r, uint32_t *from, uint32_t *to) {
  *from = kn_zipf_draw(z, r);
  do *to = kn_zipf_draw(z, r);
  while (*to == *from);
}

#endif
