/*
 * What the three keynote clients share besides the workload (zipf.h): the clock, latency samples
 * (send -> durable confirmation, one per transfer, kept exactly and sorted at the end), and the
 * key=value report every client prints. See bench/keynote for how they are run.
 */
#ifndef KN_H
#define KN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults shared by the clients, so that one run gives all three the same workload; those of
 * SpacetimeDB's keynote-2 (src/config.ts, src/opts.ts, src/core/zipf.ts). */
#define KN_ACCOUNTS 100000
#define KN_BALANCE 10000000 /* SEED_INITIAL_BALANCE: no account runs dry in a 20 s run */
#define KN_ALPHA 1.5
#define KN_SEED 0x12345678u  /* makeRng's default seed */
#define KN_PAIRS 10000000    /* BENCH_PRECOMPUTED_TRANSFER_PAIRS */
#define KN_CONNECTIONS 50
#define KN_AMOUNT 1

uint64_t kn_now_ns(void);

typedef struct kn_lat {
  uint32_t *us; /* microseconds, clamped to UINT32_MAX */
  size_t n, cap;
} kn_lat;

void kn_lat_add(kn_lat *l, uint64_t ns);
void kn_lat_free(kn_lat *l);

/* Prints, on stdout: transfers, seconds, tps, p50/p90/p99/p999/max/mean latency in ms (sorting
 * the samples), and errors. */
void kn_report(kn_lat *l, uint64_t transfers, double seconds, uint64_t errors);

/* Writes the latency distribution for plotting: lines "latency_ms fraction_at_or_below", about
 * 400 points spaced evenly on a log scale of 1 - fraction. Returns 0 or -1. Call after
 * kn_report (which sorts the samples). */
int kn_lat_write_cdf(const kn_lat *l, const char *path);

/* Parses a positive integer / number option; exits with a message on a bad value. */
long long kn_arg_int(const char *name, const char *v, long long lo, long long hi);
double kn_arg_num(const char *name, const char *v, double lo, double hi);

#endif
