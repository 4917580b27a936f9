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
 * The transfers are the same precomputed pairs as the other clients' (zipf.h), connection i
 * starting at its own offset as keynote-2's worker i does. A call that finds the source account
 * short of the amount moves nothing and returns false: keynote-2's insufficient_funds, confirmed
 * but not counted as a transfer, reported apart (refused_insufficient_funds). At the end the
 * balances must add up to accounts x balance. Any failed call is an error (exit status 1).
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
  uint32_t accounts, amount, seed;
  long long balance, pairs;
  double alpha, duration, warmup;
  bool quiet;
} opt = {NULL, NULL, KN_CONNECTIONS, 16, KN_ACCOUNTS, KN_AMOUNT, KN_SEED, KN_BALANCE, KN_PAIRS,
         KN_ALPHA, 10, 1, false};

typedef struct pgconn {
  PGconn *c;
  kn_cursor cur;
  uint64_t *sent; /* FIFO of send times: results come back in order */
  bool *refused;  /* parallel to sent: the call returned false (insufficient funds) */
  int head, n;    /* oldest in flight, number in flight */
  bool want_write;
} pgconn;

static struct {
  kn_pairs pairs;
  pgconn *conns;
  bool running;
  uint64_t t_measure, t_end;
  kn_lat lat;
  uint64_t in_window, durable, issued, errors;
  uint64_t refused_in_window, refused_total; /* insufficient funds, as keynote-2 counts them */
} g;

static void error(const char *what, const char *msg) {
  g.errors++;
  if (g.errors <= 20) fprintf(stderr, "keynote_pg: %s: %s\n", what, msg);
}

static void issue(pgconn *k) {
  while (g.running && k->n < opt.window) {
    uint32_t from, to;
    kn_cursor_pair(&k->cur, &from, &to);
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
    k->refused[(k->head + k->n) % opt.window] = false;
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
      bool in = now >= g.t_measure && now < g.t_end;
      if (k->refused[k->head]) {
        g.refused_total++;
        g.refused_in_window += in;
      } else {
        if (in) {
          g.in_window++;
          kn_lat_add(&g.lat, now - k->sent[k->head]);
        }
        g.durable++;
      }
      k->head = (k->head + 1) % opt.window;
      k->n--;
    } else if (st == PGRES_TUPLES_OK) {
      /* The head call's result, before its Sync: false when the source was short. */
      if (PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "f")) k->refused[k->head] = true;
    } else {
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
          "                  [--amount A] [--pairs P] [--latency-out FILE] [--quiet]\n"
          "The keynote transfers benchmark against PostgreSQL (see bench/keynote), loaded with\n"
          "bench/peers/postgres/keynote.sql for N (%d) accounts of B (%d). C connections (%d) in\n"
          "libpq pipeline mode each keep W (%d) calls of transfer() in flight, each followed by a\n"
          "Sync: its own transaction, confirmed once committed. The transfers are P (%d) pairs\n"
          "drawn before the run as keynote-2 draws them (seed S). Prints key=value figures: tps and\n"
          "latency from queueing to commit over --duration (%g) s after --warmup (%g) s. Checks\n"
          "the balances before and after. Exit status 1 on any error.\n",
          KN_ACCOUNTS, KN_BALANCE, KN_CONNECTIONS, opt.window, KN_PAIRS, opt.duration, opt.warmup);
}

int main(int argc, char **argv) {
  static const struct option longs[] = {
      {"conninfo", required_argument, 0, 'c'},    {"accounts", required_argument, 0, 'n'},
      {"balance", required_argument, 0, 'b'},     {"connections", required_argument, 0, 'C'},
      {"window", required_argument, 0, 'w'},      {"duration", required_argument, 0, 'd'},
      {"warmup", required_argument, 0, 'W'},      {"alpha", required_argument, 0, 'a'},
      {"seed", required_argument, 0, 's'},        {"amount", required_argument, 0, 'A'},
      {"latency-out", required_argument, 0, 'L'}, {"quiet", no_argument, 0, 'q'},
      {"pairs", required_argument, 0, 'P'},       {"help", no_argument, 0, 'H'},
      {0, 0, 0, 0}};
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
    case 's': opt.seed = (uint32_t)kn_arg_int("seed", optarg, 0, UINT32_MAX); break;
    case 'P': opt.pairs = kn_arg_int("pairs", optarg, 1, 100000000); break;
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
  if (kn_pairs_init(&g.pairs, opt.accounts, opt.alpha, opt.seed, (size_t)opt.pairs)) {
    fprintf(stderr, "keynote_pg: cannot draw the transfer pairs\n");
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
    kn_cursor_init(&k->cur, &g.pairs, i, opt.connections);
    k->sent = calloc((size_t)opt.window, sizeof *k->sent);
    k->refused = calloc((size_t)opt.window, sizeof *k->refused);
    if (!k->sent || !k->refused) return 1;
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
    free(g.conns[i].refused);
  }
  free(g.conns);
  free(pfd);

  printf("accounts=%u\nconnections=%d\nwindow=%d\n", opt.accounts, opt.connections, opt.window);
  kn_report(&g.lat, g.in_window, opt.duration, g.errors);
  printf("issued=%llu\ndurable_total=%llu\nbalances_conserved=1\n", (unsigned long long)g.issued,
         (unsigned long long)g.durable);
  printf("refused_insufficient_funds=%llu\nrefused_total=%llu\n",
         (unsigned long long)g.refused_in_window, (unsigned long long)g.refused_total);
  if (opt.latency_out && kn_lat_write_cdf(&g.lat, opt.latency_out))
    fprintf(stderr, "keynote_pg: cannot write %s\n", opt.latency_out);
  kn_pairs_free(&g.pairs);
  kn_lat_free(&g.lat);
  return g.errors ? 1 : 0;
}
