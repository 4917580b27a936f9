/* kn: clock, latency samples and the report of the keynote clients. See kn.h. */
#include "kn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

uint64_t kn_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void kn_lat_add(kn_lat *l, uint64_t ns) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 1 << 16;
    l->us = realloc(l->us, l->cap * sizeof *l->us);
    if (!l->us) {
      fprintf(stderr, "out of memory for latency samples\n");
      exit(1);
    }
  }
  uint64_t us = ns / 1000;
  l->us[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

void kn_lat_free(kn_lat *l) {
  free(l->us);
  l->us = NULL;
  l->n = l->cap = 0;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest rank, in milliseconds. */
static double pct_ms(const kn_lat *l, double p) {
  if (!l->n) return -1;
  size_t i = (size_t)ceil(p * (double)l->n);
  if (i) i--;
  if (i >= l->n) i = l->n - 1;
  return l->us[i] / 1000.0;
}

void kn_report(kn_lat *l, uint64_t transfers, double seconds, uint64_t errors) {
  if (l->n > 1) qsort(l->us, l->n, sizeof *l->us, cmp_u32);
  double sum = 0;
  for (size_t i = 0; i < l->n; i++) sum += l->us[i];
  printf("transfers=%llu\n", (unsigned long long)transfers);
  printf("seconds=%.3f\n", seconds);
  printf("tps=%.0f\n", seconds > 0 ? (double)transfers / seconds : 0);
  printf("p50_ms=%.3f\n", pct_ms(l, 0.50));
  printf("p90_ms=%.3f\n", pct_ms(l, 0.90));
  printf("p99_ms=%.3f\n", pct_ms(l, 0.99));
  printf("p999_ms=%.3f\n", pct_ms(l, 0.999));
  printf("max_ms=%.3f\n", pct_ms(l, 1.0));
  printf("mean_ms=%.3f\n", l->n ? sum / (double)l->n / 1000.0 : -1);
  printf("errors=%llu\n", (unsigned long long)errors);
  fflush(stdout);
}

int kn_lat_write_cdf(const kn_lat *l, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fprintf(f, "# latency_ms fraction_at_or_below (%zu samples)\n", l->n);
  if (l->n) {
    /* Tail fractions 1 - q from 1 down to 1/n, evenly on a log scale, then the maximum. */
    double lo = log10(1.0 / (double)l->n);
    for (int k = 0; k <= 400; k++) {
      double tail = pow(10, lo * k / 400.0), q = 1 - tail;
      fprintf(f, "%.4f %.7f\n", pct_ms(l, q > 0 ? q : 0), q);
    }
    fprintf(f, "%.4f 1\n", pct_ms(l, 1.0));
  }
  return fclose(f) ? -1 : 0;
}

long long kn_arg_int(const char *name, const char *v, long long lo, long long hi) {
  char *end;
  long long x = strtoll(v, &end, 10);
  if (!*v || *end || x < lo || x > hi) {
    fprintf(stderr, "--%s: '%s' is not an integer in [%lld, %lld]\n", name, v, lo, hi);
    exit(2);
  }
  return x;
}

double kn_arg_num(const char *name, const char *v, double lo, double hi) {
  char *end;
  double x = strtod(v, &end);
  if (!*v || *end || !(x >= lo && x <= hi)) {
    fprintf(stderr, "--%s: '%s' is not a number in [%g, %g]\n", name, v, lo, hi);
    exit(2);
  }
  return x;
}
