/*
 * keynote_ow: the keynote transfers workload against a running otherworld server, over loopback
 * WebSocket with the real protocol, on the C client library (clients/c).
 *
 * Accounts are public containers ("vault", 1 slot) each holding one stack of "coin"; a transfer is
 * the world's TRANSFER action: `amount` units of the source account's stack into the destination
 * vault, where they merge into its stack (docs/world.md). The server is started on a content file
 * this program writes (--write-content): the vaults are part of the seed world, in groups of
 * --per-cell in region cells three cells apart, far from the spawn point, so that no player's area
 * of interest holds them and their changes are replicated to nobody during the run.
 *
 * Run:
 *  1. A scout account joins and walks from group to group; from the snapshots it receives it
 *     learns every vault and its stack (ids, counts). Account k is the k-th vault by id.
 *  2. --connections clients register, log in and join (at the spawn point). Each keeps --window
 *     transfers unconfirmed (pipelined); a transfer counts when its DURABLE confirmation arrives,
 *     and its latency is from the moment it was queued to that confirmation. Figures are taken
 *     over --duration seconds after --warmup seconds.
 *  3. Issuing stops; every unconfirmed transfer must become durable. A second scout then walks the
 *     vaults again and checks that every vault still holds one stack (none if it was drained)
 *     and that the coins add up to accounts x balance (what the replica shows is the durable
 *     state).
 *
 * The transfers are the precomputed pairs of zipf.h, keynote-2's, connection i starting at its
 * own offset as keynote-2's worker i does.
 *
 * Every transfer's APPLIED result must be code 0 (the receiving stack it names becomes the
 * destination's stack) or OW_E_NOT_FOUND, the source account having been drained (its stack is
 * destroyed at zero): that is keynote-2's insufficient_funds, not counted as a transfer and
 * reported apart. Anything else, a lost connection or a failed check is an error (exit status 1).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/core.h" /* ow_map */
#include "kn.h"
#include "otherworld/client.h"
#include "zipf.h"

/* The server's default region size and interest radius: groups 3 cells apart are never in the
 * same area of interest (the view spans 1 cell around the avatar's). */
#define REGION 256.0f
#define GROUP_STEP 3
#define FIRST_GROUP 10 /* cells from the spawn point */
#define RING 4096      /* per-connection ring of send times, > the library's 1024 unconfirmed */
/* A coin stack holds up to the content loader's largest stack_max, so that an account stays one
 * stack however many coins it gains (account 1 gains about 1.6 % of all transfers). */
#define COIN_STACK_MAX 1000000000u

static struct {
  const char *host, *content_out, *latency_out;
  int port, connections, window, per_cell, server_pid;
  uint32_t accounts, balance, amount, seed;
  long long pairs;
  double alpha, duration, warmup;
  bool quiet;
} opt = {"127.0.0.1", NULL, NULL, 0, KN_CONNECTIONS, 1024, 1000, 0,
         KN_ACCOUNTS, KN_BALANCE, KN_AMOUNT, KN_SEED, KN_PAIRS, KN_ALPHA, 10, 1, false};

static void vault_pos(uint32_t k, float pos[3]) {
  uint32_t g = k / (uint32_t)opt.per_cell;
  pos[0] = ((float)(FIRST_GROUP + GROUP_STEP * g) + 0.5f) * REGION;
  pos[1] = 0;
  pos[2] = 0.5f * REGION;
}

/* ---- the content file -------------------------------------------------------------------- */

static int write_content(const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return 1;
  }
  fprintf(f, "{\"format\":1,\"types\":[\n"
             " {\"name\":\"coin\",\"kind\":\"item\",\"stack_max\":%u},\n"
             " {\"name\":\"vault\",\"kind\":\"container\",\"slots\":1},\n"
             " {\"name\":\"avatar\",\"kind\":\"avatar\",\"hp\":100},\n"
             " {\"name\":\"pack\",\"kind\":\"container\",\"slots\":1}],\n"
             "\"recipes\":[],\"avatar\":\"avatar\",\"inventory\":\"pack\",\n"
             "\"world\":{\"spawn\":[0,0,0],\"entities\":[\n",
          COIN_STACK_MAX);
  for (uint32_t k = 0; k < opt.accounts; k++) {
    float p[3];
    vault_pos(k, p);
    fprintf(f, "%s{\"type\":\"vault\",\"pos\":[%.1f,0,%.1f],\"items\":{\"coin\":%u}}\n",
            k ? "," : " ", p[0], p[2], opt.balance);
  }
  fprintf(f, "]}}\n");
  if (fclose(f)) {
    fprintf(stderr, "%s: %s\n", path, strerror(errno));
    return 1;
  }
  return 0;
}

/* ---- shared state -------------------------------------------------------------------------- */

typedef struct conn {
  int idx;
  ow_client *c;
  bool ready, closed;
  uint32_t register_req;
  char name[32];
  kn_cursor cur;
  uint64_t sent_ns[RING];
  uint64_t seq_at[RING];
  uint32_t to[RING];     /* the destination account, whose stack id the APPLIED result names */
  bool refused[RING];    /* refused for lack of funds: confirmed, but not counted */
} conn;

typedef struct scout {
  ow_client *c;
  char name[32];
  uint32_t register_req;
  int coin, vault; /* type ids */
  ow_id avatar;
  bool joined, closed;
  uint32_t group, ngroups; /* the group of vaults walked to, of how many */
  bool done;
  /* What the snapshots showed, kept when it leaves the view (leaving the view is not leaving the
   * world). */
  ow_map vaults; /* vault id -> 1 */
  ow_map stacks; /* vault id -> stack id */
  ow_map counts; /* stack id -> count */
} scout;

static struct {
  ow_client_ctx *ctx;
  kn_pairs pairs;
  ow_id *vault, *stack; /* per account */
  conn *conns;
  int nready;
  bool running, measuring;
  uint64_t t_measure, t_end;
  kn_lat lat;
  uint64_t in_window, total_durable, issued;
  uint64_t refused_in_window, refused_total; /* insufficient funds, as keynote-2 counts them */
  uint64_t errors;
} g;

static void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error(const char *fmt, ...) {
  g.errors++;
  if (g.errors > 20) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("keynote_ow: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void service_until(bool (*cond)(void *), void *ud, double timeout_s, const char *what) {
  uint64_t deadline = kn_now_ns() + (uint64_t)(timeout_s * 1e9);
  while (!cond(ud)) {
    if (kn_now_ns() > deadline) {
      fprintf(stderr, "keynote_ow: timed out waiting for %s\n", what);
      exit(1);
    }
    if (ow_client_ctx_service(g.ctx, 10)) {
      fprintf(stderr, "keynote_ow: client context failed\n");
      exit(1);
    }
  }
}

/* ---- the scout: learns (and later audits) every account from the replicated snapshots ------ */

static void scout_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)req, (void)w;
  scout *s = ud;
  int rc = ow_client_register(c, s->name, "keynote-password");
  if (rc < 0) error("scout register: %s", ow_err_name(rc));
  s->register_req = (uint32_t)rc;
}

static void scout_ok(ow_client *c, void *ud, uint32_t req) {
  scout *s = ud;
  if (req != s->register_req) return;
  int rc = ow_client_login(c, s->name, "keynote-password");
  if (rc < 0) error("scout login: %s", ow_err_name(rc));
}

static void scout_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *ss) {
  (void)req;
  scout *s = ud;
  s->avatar = ss->avatar;
  int rc = ow_client_join(c);
  if (rc < 0) error("scout join: %s", ow_err_name(rc));
}

static void scout_move(scout *s) {
  ow_action a = {.type = OW_ACT_MOVE, .target = s->avatar};
  ow_transform_identity(&a.xf);
  vault_pos(s->group * (uint32_t)opt.per_cell, a.xf.pos);
  int rc = ow_client_action(s->c, &a, NULL);
  if (rc < 0) error("scout move: %s", ow_err_name(rc));
}

static void scout_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)c, (void)req;
  scout *s = ud;
  s->coin = ow_client_world_type(w, "coin");
  s->vault = ow_client_world_type(w, "vault");
  if (s->coin < 0 || s->vault < 0) {
    error("the server's content has no coin or vault type: start it on --write-content's file");
    s->done = true;
    return;
  }
  s->joined = true;
  scout_move(s);
}

static void scout_applied(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                          uint64_t frame, bool replayed) {
  (void)c, (void)req, (void)seq, (void)frame, (void)replayed;
  if (r->code) error("scout move refused: %s", ow_err_name(r->code));
  (void)ud;
}

static void scout_entity(ow_client *c, void *ud, const ow_wire_entity *e) {
  (void)c;
  scout *s = ud;
  if (e->type == s->vault) {
    ow_map_set(&s->vaults, e->id, 1);
  } else if (e->type == s->coin && e->parent) {
    uint64_t *old = ow_map_get(&s->stacks, e->parent);
    if (old && *old != e->id) error("vault %llu holds two stacks", (unsigned long long)e->parent);
    ow_map_set(&s->stacks, e->parent, e->id);
    ow_map_set(&s->counts, e->id, e->count);
  }
}

/* After each complete snapshot: once the current group is all seen, walk to the next one. */
static void scout_snapshot(ow_client *c, void *ud, uint32_t id, uint32_t base, uint64_t frame) {
  (void)c, (void)id, (void)base, (void)frame;
  scout *s = ud;
  if (!s->joined || s->done) return;
  uint32_t want = (s->group + 1) * (uint32_t)opt.per_cell;
  if (want > opt.accounts) want = opt.accounts;
  if (s->vaults.len < want || s->stacks.len < want) return;
  if (++s->group < s->ngroups) {
    scout_move(s);
  } else {
    s->done = true;
  }
}

static void scout_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c, (void)ud;
  error("scout: error req=%u code=%s text=\"%s\"", req, ow_err_name(code), text);
}

static void scout_close(ow_client *c, void *ud) {
  (void)c;
  scout *s = ud;
  s->closed = true;
  if (!s->done) {
    error("scout: connection closed");
    s->done = true;
  }
}

static bool scout_finished(void *ud) { return ((scout *)ud)->done; }
static bool scout_gone(void *ud) { return ((scout *)ud)->closed; }

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Walks every group. Fills the sorted vault ids and their stacks (learn) or checks them against
 * what was learnt (audit); returns the sum of the coins seen. */
static uint64_t scout_run(const char *name, bool learn) {
  scout s = {0};
  snprintf(s.name, sizeof s.name, "%s", name);
  s.coin = s.vault = -1;
  s.ngroups = (opt.accounts + (uint32_t)opt.per_cell - 1) / (uint32_t)opt.per_cell;
  ow_map_init(&s.vaults);
  ow_map_init(&s.stacks);
  ow_map_init(&s.counts);
  ow_client_callbacks cb = {.on_welcome = scout_welcome, .on_ok = scout_ok,
                            .on_session = scout_session, .on_joined = scout_joined,
                            .on_applied = scout_applied, .on_entity = scout_entity,
                            .on_snapshot = scout_snapshot,
                            .on_error = scout_error, .on_close = scout_close};
  s.c = ow_client_create(g.ctx, &cb, &s);
  if (ow_client_connect(s.c, opt.host, opt.port, "/ws") || ow_client_hello(s.c, "keynote_ow") < 0) {
    fprintf(stderr, "keynote_ow: cannot connect to %s:%d\n", opt.host, opt.port);
    exit(1);
  }
  uint64_t t0 = kn_now_ns();
  service_until(scout_finished, &s, 120, "the scout");
  if (!opt.quiet)
    fprintf(stderr, "keynote_ow: %s saw %zu vaults and %zu stacks in %.2f s\n", name, s.vaults.len,
            s.stacks.len, (kn_now_ns() - t0) / 1e9);
  if (g.errors) exit(1);
  /* After the run an emptied account holds no stack (the world destroys an empty stack), so
   * only the first walk must see one stack per vault. */
  if (s.vaults.len != opt.accounts || s.stacks.len > opt.accounts ||
      (learn && s.stacks.len != opt.accounts)) {
    fprintf(stderr, "keynote_ow: the server holds %zu vaults and %zu stacks, expected %u each: "
            "was it started on a content file written with the same --accounts?\n",
            s.vaults.len, s.stacks.len, opt.accounts);
    exit(1);
  }
  uint64_t *ids = malloc(opt.accounts * sizeof *ids);
  size_t n = 0;
  for (size_t i = 0; i < s.vaults.cap; i++)
    if (s.vaults.keys[i]) ids[n++] = s.vaults.keys[i];
  qsort(ids, n, sizeof *ids, cmp_u64);
  uint64_t sum = 0;
  for (uint32_t k = 0; k < opt.accounts; k++) {
    uint64_t *st = ow_map_get(&s.stacks, ids[k]);
    if (!st && learn) {
      error("vault %llu has no stack", (unsigned long long)ids[k]);
      continue;
    }
    if (st) sum += *ow_map_get(&s.counts, *st);
    if (learn) {
      g.vault[k] = ids[k];
      g.stack[k] = *st;
    } else if (g.vault[k] != ids[k]) {
      /* The stack may differ: an account drained to zero gets a new stack at its next credit. */
      error("account %u is now vault %llu, was vault %llu", k, (unsigned long long)ids[k],
            (unsigned long long)g.vault[k]);
    }
  }
  free(ids);
  ow_client_close(s.c);
  service_until(scout_gone, &s, 10, "the scout to leave");
  ow_client_destroy(s.c);
  ow_map_deinit(&s.vaults);
  ow_map_deinit(&s.stacks);
  ow_map_deinit(&s.counts);
  return sum;
}

/* ---- the load connections ------------------------------------------------------------------ */

static void issue(conn *k) {
  while (g.running && ow_client_unconfirmed(k->c) < (size_t)opt.window) {
    uint32_t from, to;
    kn_cursor_pair(&k->cur, &from, &to);
    ow_action a = {.type = OW_ACT_TRANSFER, .target = g.stack[from], .dest = g.vault[to],
                   .count = opt.amount};
    uint64_t seq;
    int rc = ow_client_action(k->c, &a, &seq);
    if (rc == -ENOBUFS) return; /* the send queue is full: more after the next confirmations */
    if (rc < 0) {
      error("connection %d: action: %s", k->idx, ow_err_name(rc));
      return;
    }
    size_t i = seq % RING;
    k->seq_at[i] = seq;
    k->sent_ns[i] = kn_now_ns();
    k->to[i] = to;
    k->refused[i] = false;
    g.issued++;
  }
}

static void conn_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)req, (void)w;
  conn *k = ud;
  int rc = ow_client_register(c, k->name, "keynote-password");
  if (rc < 0) error("connection %d: register: %s", k->idx, ow_err_name(rc));
  k->register_req = (uint32_t)rc;
}

static void conn_ok(ow_client *c, void *ud, uint32_t req) {
  conn *k = ud;
  if (req != k->register_req) return;
  int rc = ow_client_login(c, k->name, "keynote-password");
  if (rc < 0) error("connection %d: login: %s", k->idx, ow_err_name(rc));
}

static void conn_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)req, (void)s;
  conn *k = ud;
  int rc = ow_client_join(c);
  if (rc < 0) error("connection %d: join: %s", k->idx, ow_err_name(rc));
}

static void conn_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)c, (void)req, (void)w;
  conn *k = ud;
  if (!k->ready) g.nready++;
  k->ready = true;
}

static void conn_applied(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                         uint64_t frame, bool replayed) {
  (void)c, (void)req, (void)frame;
  conn *k = ud;
  size_t i = seq % RING;
  if (r->code == OW_E_NOT_FOUND && k->seq_at[i] == seq) {
    /* The source stack is gone: the world destroyed it when the account's last coin left
     * (docs/world.md). That is keynote-2's insufficient_funds: confirmed, counted apart. */
    k->refused[i] = true;
  } else if (r->code) {
    error("connection %d: transfer seq %llu refused: %s", k->idx, (unsigned long long)seq,
          ow_err_name(r->code));
  } else if (k->seq_at[i] == seq) {
    /* A credit to an emptied account creates a new stack in its vault; later debits name it.
     * Results reach the 50 connections in no fixed order, so an older id may win for a while:
     * a debit naming a destroyed stack is then refused, and the next credit corrects it. */
    g.stack[k->to[i]] = r->entity;
  }
  if (replayed) error("connection %d: seq %llu replayed", k->idx, (unsigned long long)seq);
}

static void conn_durable(ow_client *c, void *ud, uint64_t frame, int32_t status,
                         const uint64_t *seqs, size_t n) {
  (void)c, (void)frame;
  conn *k = ud;
  if (status) {
    error("connection %d: frame %llu not written: %s", k->idx, (unsigned long long)frame,
          ow_err_name(status));
    return;
  }
  uint64_t now = kn_now_ns();
  bool in = g.measuring && now >= g.t_measure && now < g.t_end;
  for (size_t j = 0; j < n; j++) {
    size_t i = seqs[j] % RING;
    if (k->seq_at[i] != seqs[j]) continue;
    k->seq_at[i] = 0;
    if (k->refused[i]) {
      g.refused_total++;
      if (in) g.refused_in_window++;
      continue;
    }
    g.total_durable++;
    if (in) {
      g.in_window++;
      kn_lat_add(&g.lat, now - k->sent_ns[i]);
    }
  }
  issue(k);
}

static void conn_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c;
  conn *k = ud;
  error("connection %d: error req=%u code=%s text=\"%s\"", k->idx, req, ow_err_name(code), text);
}

static void conn_close(ow_client *c, void *ud) {
  (void)c;
  conn *k = ud;
  k->closed = true;
  if (g.running || g.measuring) error("connection %d closed during the run", k->idx);
}

static bool all_ready(void *ud) {
  (void)ud;
  return g.nready == opt.connections || g.errors;
}

static bool all_confirmed(void *ud) {
  (void)ud;
  if (g.errors) return true;
  for (int i = 0; i < opt.connections; i++)
    if (ow_client_unconfirmed(g.conns[i].c)) return false;
  return true;
}

static bool all_closed(void *ud) {
  (void)ud;
  for (int i = 0; i < opt.connections; i++)
    if (!g.conns[i].closed) return false;
  return true;
}

/* utime + stime of a process in clock ticks, or -1. */
static long long proc_cpu_ticks(int pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *s = strrchr(buf, ')');
  long long ut = 0, st = 0;
  if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st) != 2)
    return -1;
  return ut + st;
}

static double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: keynote_ow --write-content FILE [--accounts N] [--balance B] [--per-cell N]\n"
          "       keynote_ow --port PORT [--host H] [--accounts N] [--balance B] [--per-cell N]\n"
          "                  [--connections C] [--window W] [--duration S] [--warmup S]\n"
          "                  [--alpha A] [--seed S] [--amount A] [--pairs P]\n"
          "                  [--latency-out FILE] [--server-pid PID] [--quiet]\n"
          "The keynote transfers benchmark against an otherworld server (see bench/keynote).\n"
          "--write-content writes the content file to start the server with (--content): one\n"
          "public vault per account holding one stack of B coins, in groups of --per-cell (%d)\n"
          "far from the spawn point. Then, against the server: C connections (%d) each keep W\n"
          "transfers (%d, at most 1024) unconfirmed; a transfer of --amount (%d) coin between two\n"
          "Zipf(--alpha %.1f) accounts of N (%d) counts once DURABLE; the transfers are P (%d)\n"
          "pairs drawn before the run as keynote-2 draws them (seed S), connection i starting at\n"
          "pair i x P / C. Prints key=value figures:\n"
          "tps and latency from queueing to DURABLE over --duration (%g) s after --warmup (%g) s,\n"
          "and checks at the end that every coin is still there. --latency-out writes the\n"
          "latency distribution for plotting. Exit status 1 on any error.\n",
          opt.per_cell, KN_CONNECTIONS, opt.window, KN_AMOUNT, KN_ALPHA, KN_ACCOUNTS, KN_PAIRS,
          opt.duration, opt.warmup);
}

int main(int argc, char **argv) {
  static const struct option longs[] = {
      {"host", required_argument, 0, 'h'},        {"port", required_argument, 0, 'p'},
      {"accounts", required_argument, 0, 'n'},    {"balance", required_argument, 0, 'b'},
      {"per-cell", required_argument, 0, 'g'},    {"connections", required_argument, 0, 'c'},
      {"window", required_argument, 0, 'w'},      {"duration", required_argument, 0, 'd'},
      {"warmup", required_argument, 0, 'W'},      {"alpha", required_argument, 0, 'a'},
      {"seed", required_argument, 0, 's'},        {"amount", required_argument, 0, 'A'},
      {"pairs", required_argument, 0, 'R'},
      {"latency-out", required_argument, 0, 'L'}, {"write-content", required_argument, 0, 'C'},
      {"server-pid", required_argument, 0, 'P'},  {"quiet", no_argument, 0, 'q'},
      {"help", no_argument, 0, 'H'},              {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (ch) {
    case 'h': opt.host = optarg; break;
    case 'p': opt.port = (int)kn_arg_int("port", optarg, 1, 65535); break;
    case 'n': opt.accounts = (uint32_t)kn_arg_int("accounts", optarg, 2, 1000000); break;
    case 'b': opt.balance = (uint32_t)kn_arg_int("balance", optarg, 1, COIN_STACK_MAX / 2); break;
    case 'g': opt.per_cell = (int)kn_arg_int("per-cell", optarg, 1, 8000); break;
    case 'c': opt.connections = (int)kn_arg_int("connections", optarg, 1, 1000); break;
    case 'w': opt.window = (int)kn_arg_int("window", optarg, 1, 1024); break;
    case 'd': opt.duration = kn_arg_num("duration", optarg, 0.1, 86400); break;
    case 'W': opt.warmup = kn_arg_num("warmup", optarg, 0, 3600); break;
    case 'a': opt.alpha = kn_arg_num("alpha", optarg, 0.01, 10); break;
    case 's': opt.seed = (uint32_t)kn_arg_int("seed", optarg, 0, UINT32_MAX); break;
    case 'R': opt.pairs = kn_arg_int("pairs", optarg, 1, 100000000); break;
    case 'A': opt.amount = (uint32_t)kn_arg_int("amount", optarg, 1, 1000000); break;
    case 'L': opt.latency_out = optarg; break;
    case 'C': opt.content_out = optarg; break;
    case 'P': opt.server_pid = (int)kn_arg_int("server-pid", optarg, 1, INT32_MAX); break;
    case 'q': opt.quiet = true; break;
    case 'H': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind < argc) {
    usage(stderr);
    return 2;
  }
  if (opt.content_out) return write_content(opt.content_out);
  if (!opt.port) {
    usage(stderr);
    return 2;
  }
  if (kn_pairs_init(&g.pairs, opt.accounts, opt.alpha, opt.seed, (size_t)opt.pairs)) {
    fprintf(stderr, "keynote_ow: cannot draw the transfer pairs\n");
    return 1;
  }
  ow_client_ctx_opts copts = {.max_connections = (unsigned)opt.connections + 16};
  if (ow_client_ctx_create(&copts, &g.ctx)) {
    fprintf(stderr, "keynote_ow: cannot create the client context\n");
    return 1;
  }
  g.vault = calloc(opt.accounts, sizeof *g.vault);
  g.stack = calloc(opt.accounts, sizeof *g.stack);
  g.conns = calloc((size_t)opt.connections, sizeof *g.conns);
  if (!g.vault || !g.stack || !g.conns) return 1;

  /* 1. Learn the accounts. */
  uint64_t coins = scout_run("kn-scout", true);
  uint64_t expect = (uint64_t)opt.accounts * opt.balance;
  if (coins != expect) {
    fprintf(stderr, "keynote_ow: the vaults hold %llu coins, expected %llu\n",
            (unsigned long long)coins, (unsigned long long)expect);
    return 1;
  }

  /* 2. Connect, register, log in, join. */
  ow_client_callbacks cb = {.on_welcome = conn_welcome, .on_ok = conn_ok,
                            .on_session = conn_session, .on_joined = conn_joined,
                            .on_applied = conn_applied,
                            .on_durable = conn_durable, .on_error = conn_error,
                            .on_close = conn_close};
  for (int i = 0; i < opt.connections; i++) {
    conn *k = &g.conns[i];
    k->idx = i;
    snprintf(k->name, sizeof k->name, "kn-%d", i);
    kn_cursor_init(&k->cur, &g.pairs, i, opt.connections);
    k->c = ow_client_create(g.ctx, &cb, k);
    if (ow_client_connect(k->c, opt.host, opt.port, "/ws") ||
        ow_client_hello(k->c, "keynote_ow") < 0) {
      fprintf(stderr, "keynote_ow: cannot connect\n");
      return 1;
    }
  }
  service_until(all_ready, NULL, 60, "the connections to join");
  if (g.errors) return 1;

  /* 3. Run: every connection keeps its window full from its confirmations. */
  uint64_t t0 = kn_now_ns();
  g.t_measure = t0 + (uint64_t)(opt.warmup * 1e9);
  g.t_end = g.t_measure + (uint64_t)(opt.duration * 1e9);
  g.running = g.measuring = true;
  for (int i = 0; i < opt.connections; i++) issue(&g.conns[i]);
  bool started = false;
  long long cpu0 = -1, cpu1 = -1;
  double self0 = 0, self1 = 0;
  while (!g.errors) {
    uint64_t now = kn_now_ns();
    if (!started && now >= g.t_measure) {
      started = true;
      if (opt.server_pid) cpu0 = proc_cpu_ticks(opt.server_pid);
      self0 = self_cpu_s();
    }
    if (now >= g.t_end) break;
    if (ow_client_ctx_service(g.ctx, 10)) {
      error("client context failed");
      break;
    }
    /* A connection whose queue was full refills here. */
    for (int i = 0; i < opt.connections; i++) issue(&g.conns[i]);
  }
  g.running = false;
  if (opt.server_pid) cpu1 = proc_cpu_ticks(opt.server_pid);
  self1 = self_cpu_s();
  service_until(all_confirmed, NULL, 60, "the last confirmations");
  g.measuring = false;
  if (g.errors) return 1;

  /* 4. Audit. */
  coins = scout_run("kn-audit", false);
  if (coins != expect)
    error("after the run the vaults hold %llu coins, expected %llu", (unsigned long long)coins,
          (unsigned long long)expect);
  for (int i = 0; i < opt.connections; i++) ow_client_close(g.conns[i].c);
  service_until(all_closed, NULL, 10, "the connections to close");

  printf("accounts=%u\nconnections=%d\nwindow=%d\n", opt.accounts, opt.connections, opt.window);
  kn_report(&g.lat, g.in_window, opt.duration, g.errors);
  printf("issued=%llu\ndurable_total=%llu\n", (unsigned long long)g.issued,
         (unsigned long long)g.total_durable);
  printf("refused_insufficient_funds=%llu\nrefused_total=%llu\n",
         (unsigned long long)g.refused_in_window, (unsigned long long)g.refused_total);
  printf("coins_conserved=%d\n", coins == expect);
  if (cpu0 >= 0 && cpu1 >= 0)
    printf("server_cpu_pct=%.1f\n", (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK) /
                                         opt.duration * 100);
  printf("client_cpu_pct=%.1f\n", (self1 - self0) / opt.duration * 100);
  if (opt.latency_out && kn_lat_write_cdf(&g.lat, opt.latency_out))
    fprintf(stderr, "keynote_ow: cannot write %s\n", opt.latency_out);
  for (int i = 0; i < opt.connections; i++) ow_client_destroy(g.conns[i].c);
  ow_client_ctx_destroy(g.ctx);
  kn_pairs_free(&g.pairs);
  kn_lat_free(&g.lat);
  return g.errors ? 1 : 0;
}
