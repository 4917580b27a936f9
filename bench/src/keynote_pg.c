/*
 * keynote_pg: the keynote transfers workload against PostgreSQL, with libpq's pipeline mode.
 *
 * The database holds the table and function of bench/peers/postgres/keynote.sql. --connections
 * connections (one thread, poll) each keep --window calls of `SELECT transfer($1, $2, $3)` in
 * flight; every call is followed by its own Sync, so it is its own transaction (an implicit
 * transaction ends at the Sync) and PGRES_PIPELINE_SYNC arrives once it is committed: with
 * synchronous_commit = on, once its WAL is flushed to disk. That is the durable confirmation the
 * transfer is counted on, and its latency runs from queueing the call to it.
 *
 * The accounts come from the same Zipf generator and seed as the other clients (zipf.h). At the
 * end the balances must add up to accounts x balance. Any failed call is an error (exit status 1).
 */
#include <errno.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn.h"
#include "zipf.h"

static struct {
  const char *conninfo, *latency_out;
  int connections, window;
  uint32_t accounts, amount;
  long long balance;
  double alpha, duration, warmup;
  uint64_t seed;
  bool quiet;
} opt = {NULL, NULL, KN_CONNECTIONS, 16, KN_ACCOUNTS, KN_AMOUNT, KN_BALANCE, KN_ALPHA, 10, 1,
         KN_SEED, false};

typedef struct pgconn {
  PGconn *c;
  kn_rng rng;
  uint64_t *sent; /* FIFO of send times: results come back in order */
  int head, n;    /* oldest in flight, number in flight */
  bool want_write;
} pgconn;

static struct {
  kn_zipf zipf;
  pgconn *conns;
  bool running;
  uint64_t t_measure, t_end;
  kn_lat lat;
  uint64_t in_window, durable, issued, errors;
} g;

static void error(const char *what, const char *msg) {
  g.errors++;
  if (g.errors <= 20) fprintf(stderr, "keynote_pg: %s: %s\n", what, msg);
}

static void issue(pgconn *k) {
  while (g.running && k->n < opt.window) {
    uint32_t from, to;
    kn_zipf_pair(&g.zipf, &k->rng, &from, &to);
    char a[16], b[16], c[16];
    snprintf(a, sizeof a, "%u", from);
    snprintf(b, sizeof b, "%u", to);
    snprintf(c, sizeof c, "%u", opt.amount);
    const char *params[3] = {a, b, c};
    if (!PQsendQueryPrepared(k->c, "transfer", 3, params, NULL, NULL, 0) || !PQpipelineSync(k->c)) {
      error("send", PQerrorMessage(k->c));
      return;
    }
    k->sent[(k->head + k->n) % opt.window] = kn_now_ns();
    k->n++;
    g.issued++;
  }
  int f = PQflush(k->c);
  if (f < 0) error("flush", PQerrorMessage(k->c));
  k->want_write = f == 1;
}

/* Reads every complete result. A transfer is done at its PGRES_PIPELINE_SYNC. */
static void drain(pgconn *k) {
  if (!PQconsumeInput(k->c)) {
    error("read", PQerrorMessage(k->c));
    return;
  }
  int nulls = 0;
  while (k->n && !PQisBusy(k->c)) {
    PGresult *r = PQgetResult(k->c);
    if (!r) {
      if (++nulls > 1) break; /* between two calls' results, one NULL; two: nothing more yet */
      continue;
    }
    nulls = 0;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      uint64_t now = kn_now_ns();
      if (now >= g.t_measure && now < g.t_end) {
        g.in_window++;
        kn_lat_add(&g.lat, now - k->sent[k->head]);
      }
      g.durable++;
      k->head = (k->head + 1) % opt.window;
      k->n--;
    } else if (st != PGRES_TUPLES_OK) {
      error("transfer", PQresultErrorMessage(r));
    }
    PQclear(r);
  }
}

static PGresult *exec1(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
    fprintf(stderr, "keynote_pg: %s: %s", sql, PQresultErrorMessage(r));
    exit(1);
  }
  return r;
}

/* The sum of the balances and the number of accounts must not have changed. */
static void check_balances(PGconn *c, const char *when) {
  PGresult *r = exec1(c, "SELECT count(*), sum(balance), min(balance) FROM accounts");
  long long n = atoll(PQgetvalue(r, 0, 0)), sum = atoll(PQgetvalue(r, 0, 1)),
            min = atoll(PQgetvalue(r, 0, 2));
  PQclear(r);
  if (n != opt.accounts || sum != (long long)opt.accounts * opt.balance || min < 0) {
    fprintf(stderr, "keynote_pg: %s: %lld accounts holding %lld (min %lld), expected %u holding "
            "%lld: was the database loaded with the same --accounts and --balance?\n",
            when, n, sum, min, opt.accounts, (long long)opt.accounts * opt.balance);
    exit(1);
  }
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: keynote_pg --conninfo STR [--accounts N] [--balance B] [--connections C]\n"
          "                  [--window W] [--duration S] [--warmup S] [--alpha A] [--seed S]\n"
          "                  [--amount A] [--latency-out FILE] [--quiet]\n"
          "The keynote transfers benchmark against PostgreSQL (see bench/keynote), loaded with\n"
          "bench/peers/postgres/keynote.sql for N (%d) accounts of B (%d). C connections (%d) in\n"
          "libpq pipeline mode each keep W (%d) calls of transfer() in flight, each followed by a\n"
          "Sync: its own transaction, confirmed once committed. Prints key=value figures: tps and\n"
          "latency from queueing to commit over --duration (%g) s after --warmup (%g) s. Checks\n"
          "the balances before and after. Exit status 1 on any error.\n",
          KN_ACCOUNTS, KN_BALANCE, KN_CONNECTIONS, opt.window, opt.duration, opt.warmup);
}

int main(int argc, char **argv) {
  static const struct option longs[] = {
      {"conninfo", required_argument, 0, 'c'},    {"accounts", required_argument, 0, 'n'},
      {"balance", required_argument, 0, 'b'},     {"connections", required_argument, 0, 'C'},
      {"window", required_argument, 0, 'w'},      {"duration", required_argument, 0, 'd'},
      {"warmup", required_argument, 0, 'W'},      {"alpha", required_argument, 0, 'a'},
      {"seed", required_argument, 0, 's'},        {"amount", required_argument, 0, 'A'},
      {"latency-out", required_argument, 0, 'L'}, {"quiet", no_argument, 0, 'q'},
      {"help", no_argument, 0, 'H'},              {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (ch) {
    case 'c': opt.conninfo = optarg; break;
    case 'n': opt.accounts = (uint32_t)kn_arg_int("accounts", optarg, 2, 100000000); break;
    case 'b': opt.balance = kn_arg_int("balance", optarg, 1, 1000000000000ll); break;
    case 'C': opt.connections = (int)kn_arg_int("connections", optarg, 1, 1000); break;
    case 'w': opt.window = (int)kn_arg_int("window", optarg, 1, 100000); break;
    case 'd': opt.duration = kn_arg_num("duration", optarg, 0.1, 86400); break;
    case 'W': opt.warmup = kn_arg_num("warmup", optarg, 0, 3600); break;
    case 'a': opt.alpha = kn_arg_num("alpha", optarg, 0.01, 10); break;
    case 's': opt.seed = (uint64_t)kn_arg_int("seed", optarg, 0, INT64_MAX); break;
    case 'A': opt.amount = (uint32_t)kn_arg_int("amount", optarg, 1, 1000000); break;
    case 'L': opt.latency_out = optarg; break;
    case 'q': opt.quiet = true; break;
    case 'H': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!opt.conninfo || optind < argc) {
    usage(stderr);
    return 2;
  }
  if (kn_zipf_init(&g.zipf, opt.accounts, opt.alpha)) {
    fprintf(stderr, "keynote_pg: cannot build the Zipf table\n");
    return 1;
  }
  g.conns = calloc((size_t)opt.connections, sizeof *g.conns);
  struct pollfd *pfd = calloc((size_t)opt.connections, sizeof *pfd);
  if (!g.conns || !pfd) return 1;
  for (int i = 0; i < opt.connections; i++) {
    pgconn *k = &g.conns[i];
    k->c = PQconnectdb(opt.conninfo);
    if (PQstatus(k->c) != CONNECTION_OK) {
      fprintf(stderr, "keynote_pg: connect: %s", PQerrorMessage(k->c));
      return 1;
    }
    if (i == 0) check_balances(k->c, "before");
    PGresult *r = PQprepare(k->c, "transfer",
                            "SELECT transfer($1::integer, $2::integer, $3::bigint)", 3, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      fprintf(stderr, "keynote_pg: prepare: %s", PQresultErrorMessage(r));
      return 1;
    }
    PQclear(r);
    if (PQsetnonblocking(k->c, 1) || !PQenterPipelineMode(k->c)) {
      fprintf(stderr, "keynote_pg: pipeline mode: %s", PQerrorMessage(k->c));
      return 1;
    }
    kn_rng_seed(&k->rng, opt.seed, (uint64_t)i);
    k->sent = calloc((size_t)opt.window, sizeof *k->sent);
    if (!k->sent) return 1;
  }

  uint64_t t0 = kn_now_ns();
  g.t_measure = t0 + (uint64_t)(opt.warmup * 1e9);
  g.t_end = g.t_measure + (uint64_t)(opt.duration * 1e9);
  g.running = true;
  for (int i = 0; i < opt.connections; i++) issue(&g.conns[i]);
  uint64_t drain_deadline = 0;
  for (;;) {
    uint64_t now = kn_now_ns();
    if (g.running && now >= g.t_end) {
      g.running = false;
      drain_deadline = now + 60000000000ull;
    }
    int open = 0;
    for (int i = 0; i < opt.connections; i++) open += g.conns[i].n > 0;
    if (!g.running && !open) break;
    if (g.errors || (drain_deadline && now > drain_deadline)) {
      if (!g.errors) fprintf(stderr, "keynote_pg: timed out waiting for the last commits\n");
      return 1;
    }
    for (int i = 0; i < opt.connections; i++) {
      pfd[i].fd = PQsocket(g.conns[i].c);
      pfd[i].events = (short)(POLLIN | (g.conns[i].want_write ? POLLOUT : 0));
      pfd[i].revents = 0;
    }
    int rc = poll(pfd, (nfds_t)opt.connections, 10);
    if (rc < 0 && errno != EINTR) {
      perror("keynote_pg: poll");
      return 1;
    }
    for (int i = 0; i < opt.connections; i++) {
      pgconn *k = &g.conns[i];
      if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) drain(k);
      if (pfd[i].revents & (POLLIN | POLLOUT | POLLERR | POLLHUP) || !k->n) issue(k);
    }
  }
  for (int i = 0; i < opt.connections; i++) {
    PQexitPipelineMode(g.conns[i].c);
    PQsetnonblocking(g.conns[i].c, 0);
  }
  check_balances(g.conns[0].c, "after");
  for (int i = 0; i < opt.connections; i++) {
    PQfinish(g.conns[i].c);
    free(g.conns[i].sent);
  }
  free(g.conns);
  free(pfd);

  printf("accounts=%u\nconnections=%d\nwindow=%d\n", opt.accounts, opt.connections, opt.window);
  kn_report(&g.lat, g.in_window, opt.duration, g.errors);
  printf("issued=%llu\ndurable_total=%llu\nbalances_conserved=1\n", (unsigned long long)g.issued,
         (unsigned long long)g.durable);
  if (opt.latency_out && kn_lat_write_cdf(&g.lat, opt.latency_out))
    fprintf(stderr, "keynote_pg: cannot write %s\n", opt.latency_out);
  kn_zipf_free(&g.zipf);
  kn_lat_free(&g.lat);
  return g.errors ? 1 : 0;
}
