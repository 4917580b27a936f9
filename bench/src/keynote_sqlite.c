/*
 * keynote_sqlite: the keynote transfers workload on SQLite, in process: one connection, the
 * database in WAL mode with synchronous = FULL (every commit is fsynced), one writer. Each
 * transfer is its own transaction: BEGIN IMMEDIATE, debit (refused below zero), credit, COMMIT.
 *
 * The transfers are those of the other clients (zipf.h, the same precomputed pairs): the
 * --connections logical clients, each walking the pairs from its own offset as keynote-2's
 * workers do, are served round-robin, as one writer would serve them. There is no network and no
 * queue: a transfer's latency is its transaction, BEGIN to the return of COMMIT (durable). A
 * source short of the amount is keynote-2's insufficient_funds: the transaction is rolled back,
 * not counted, and reported apart (refused_insufficient_funds). The database is created
 * (--accounts rows of --balance) in a new file; at the end the balances must add up. Any failed
 * statement is an error (exit status 1).
 */
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kn.h"
#include "zipf.h"

static struct {
  const char *db, *latency_out;
  int connections;
  uint32_t accounts, amount, seed;
  long long balance, pairs;
  double alpha, duration, warmup;
} opt = {NULL, NULL, KN_CONNECTIONS, KN_ACCOUNTS, KN_AMOUNT, KN_SEED, KN_BALANCE, KN_PAIRS, KN_ALPHA,
         10, 1};

static sqlite3 *db;

static void die(const char *what) {
  fprintf(stderr, "keynote_sqlite: %s: %s\n", what, sqlite3_errmsg(db));
  exit(1);
}

static void exec(const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "keynote_sqlite: %s: %s\n", sql, err ? err : "?");
    exit(1);
  }
}

static sqlite3_stmt *prepare(const char *sql) {
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) die(sql);
  return s;
}

/* Runs a prepared statement to completion; returns the rows it changed. */
static int step(sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) die(sqlite3_sql(s));
  sqlite3_reset(s);
  return sqlite3_changes(db);
}

static void check_balances(const char *when) {
  sqlite3_stmt *s = prepare("SELECT count(*), sum(balance), min(balance) FROM accounts");
  if (sqlite3_step(s) != SQLITE_ROW) die("check");
  long long n = sqlite3_column_int64(s, 0), sum = sqlite3_column_int64(s, 1),
            min = sqlite3_column_int64(s, 2);
  sqlite3_finalize(s);
  if (n != opt.accounts || sum != (long long)opt.accounts * opt.balance || min < 0) {
    fprintf(stderr,
            "keynote_sqlite: %s: %lld accounts holding %lld (min %lld), expected %u holding %lld\n",
            when, n, sum, min, opt.accounts, (long long)opt.accounts * opt.balance);
    exit(1);
  }
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: keynote_sqlite --db FILE [--accounts N] [--balance B] [--connections C]\n"
          "                      [--duration S] [--warmup S] [--alpha A] [--seed S] [--amount A]\n"
          "                      [--pairs P] [--latency-out FILE]\n"
          "The keynote transfers benchmark on SQLite in process (see bench/keynote): creates FILE\n"
          "(it must not exist) with N (%d) accounts of B (%d), WAL mode, synchronous=FULL, then\n"
          "runs transfers of --amount (%d) between Zipf(--alpha %.1f) accounts (P pairs drawn\n"
          "before the run as keynote-2 draws them), each its own transaction, one writer serving\n"
          "the streams of C (%d) clients in turn. Prints key=value\n"
          "figures over --duration (%g) s after --warmup (%g) s; latency is one transaction.\n",
          KN_ACCOUNTS, KN_BALANCE, KN_AMOUNT, KN_ALPHA, KN_CONNECTIONS, opt.duration, opt.warmup);
}

int main(int argc, char **argv) {
  static const struct option longs[] = {
      {"db", required_argument, 0, 'D'},          {"accounts", required_argument, 0, 'n'},
      {"balance", required_argument, 0, 'b'},     {"connections", required_argument, 0, 'C'},
      {"duration", required_argument, 0, 'd'},    {"warmup", required_argument, 0, 'W'},
      {"alpha", required_argument, 0, 'a'},       {"seed", required_argument, 0, 's'},
      {"amount", required_argument, 0, 'A'},      {"latency-out", required_argument, 0, 'L'},
      {"pairs", required_argument, 0, 'P'},       {"help", no_argument, 0, 'H'},
      {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (ch) {
    case 'D': opt.db = optarg; break;
    case 'n': opt.accounts = (uint32_t)kn_arg_int("accounts", optarg, 2, 100000000); break;
    case 'b': opt.balance = kn_arg_int("balance", optarg, 1, 1000000000000ll); break;
    case 'C': opt.connections = (int)kn_arg_int("connections", optarg, 1, 1000); break;
    case 'd': opt.duration = kn_arg_num("duration", optarg, 0.1, 86400); break;
    case 'W': opt.warmup = kn_arg_num("warmup", optarg, 0, 3600); break;
    case 'a': opt.alpha = kn_arg_num("alpha", optarg, 0.01, 10); break;
    case 's': opt.seed = (uint32_t)kn_arg_int("seed", optarg, 0, UINT32_MAX); break;
    case 'P': opt.pairs = kn_arg_int("pairs", optarg, 1, 100000000); break;
    case 'A': opt.amount = (uint32_t)kn_arg_int("amount", optarg, 1, 1000000); break;
    case 'L': opt.latency_out = optarg; break;
    case 'H': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!opt.db || optind < argc) {
    usage(stderr);
    return 2;
  }
  kn_pairs pairs;
  if (kn_pairs_init(&pairs, opt.accounts, opt.alpha, opt.seed, (size_t)opt.pairs)) {
    fprintf(stderr, "keynote_sqlite: cannot draw the transfer pairs\n");
    return 1;
  }
  if (sqlite3_open_v2(opt.db, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
    die(opt.db);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
  sqlite3_stmt *jm = prepare("PRAGMA journal_mode");
  if (sqlite3_step(jm) != SQLITE_ROW ||
      strcmp((const char *)sqlite3_column_text(jm, 0), "wal")) {
    fprintf(stderr, "keynote_sqlite: WAL mode refused\n");
    return 1;
  }
  sqlite3_finalize(jm);
  exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)");
  exec("BEGIN");
  sqlite3_stmt *ins = prepare("INSERT INTO accounts (id, balance) VALUES (?, ?)");
  for (uint32_t i = 0; i < opt.accounts; i++) {
    sqlite3_bind_int64(ins, 1, i);
    sqlite3_bind_int64(ins, 2, opt.balance);
    step(ins);
  }
  sqlite3_finalize(ins);
  exec("COMMIT");
  check_balances("before");

  sqlite3_stmt *begin = prepare("BEGIN IMMEDIATE"), *commit = prepare("COMMIT"),
               *rollback = prepare("ROLLBACK");
  sqlite3_stmt *debit =
      prepare("UPDATE accounts SET balance = balance - ?1 WHERE id = ?2 AND balance >= ?1");
  sqlite3_stmt *credit = prepare("UPDATE accounts SET balance = balance + ?1 WHERE id = ?2");
  kn_cursor *cur = calloc((size_t)opt.connections, sizeof *cur);
  if (!cur) return 1;
  for (int i = 0; i < opt.connections; i++) kn_cursor_init(&cur[i], &pairs, i, opt.connections);
  kn_lat lat = {0};
  uint64_t in_window = 0, total = 0, errors = 0, refused_in_window = 0, refused_total = 0;
  uint64_t t_measure = kn_now_ns() + (uint64_t)(opt.warmup * 1e9);
  uint64_t t_end = t_measure + (uint64_t)(opt.duration * 1e9);
  for (int turn = 0;; turn = (turn + 1) % opt.connections) {
    uint64_t t0 = kn_now_ns();
    if (t0 >= t_end) break;
    uint32_t from, to;
    kn_cursor_pair(&cur[turn], &from, &to);
    step(begin);
    sqlite3_bind_int64(debit, 1, opt.amount);
    sqlite3_bind_int64(debit, 2, from);
    sqlite3_bind_int64(credit, 1, opt.amount);
    sqlite3_bind_int64(credit, 2, to);
    if (step(debit) != 1) {
      /* Insufficient funds: nothing moves, and the transfer is not counted. */
      step(rollback);
      uint64_t t1 = kn_now_ns();
      refused_total++;
      refused_in_window += t0 >= t_measure && t1 < t_end;
      continue;
    }
    if (step(credit) != 1) {
      errors++;
      fprintf(stderr, "keynote_sqlite: transfer %u -> %u: no account %u\n", from, to, to);
      step(rollback);
      break;
    }
    step(commit);
    uint64_t t1 = kn_now_ns();
    total++;
    if (t0 >= t_measure && t1 < t_end) {
      in_window++;
      kn_lat_add(&lat, t1 - t0);
    }
  }
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_finalize(rollback);
  sqlite3_finalize(debit);
  sqlite3_finalize(credit);
  check_balances("after");
  sqlite3_close(db);

  printf("accounts=%u\nconnections=1\nversion=%s\n", opt.accounts, sqlite3_libversion());
  kn_report(&lat, in_window, opt.duration, errors);
  printf("durable_total=%llu\nbalances_conserved=1\n", (unsigned long long)total);
  printf("refused_insufficient_funds=%llu\nrefused_total=%llu\n",
         (unsigned long long)refused_in_window, (unsigned long long)refused_total);
  if (opt.latency_out && kn_lat_write_cdf(&lat, opt.latency_out))
    fprintf(stderr, "keynote_sqlite: cannot write %s\n", opt.latency_out);
  kn_pairs_free(&pairs);
  kn_lat_free(&lat);
  free(cur);
  return errors ? 1 : 0;
}
