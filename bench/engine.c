/*
 * bench_engine: the engine benchmark. It drives the zone API in process (no network, no libuv) and
 * prints its figures as key=value lines on stdout; diagnostics go to stderr. It fails (exit 1)
 * only on real errors: an action that should succeed and does not, a store error, a world that
 * does not come back whole after a restart. The figures themselves never fail it.
 *
 * What each figure measures:
 *
 * applied_actions_per_sec   Simple moves and transfers through ow_zone_act, one core. `sessions`
 *                           players each own an avatar; groups of 8 share a public chest. Each
 *                           player repeats: move, transfer 1 unit inventory -> chest, move,
 *                           transfer 1 unit chest -> inventory (so half moves, half transfers, and
 *                           no stack is ever created or emptied). The wood was harvested first.
 *                           Frames are sealed and committed while measuring, as the server does:
 *                           at 60 Hz (or at once after an overdue tick) the main thread seals the
 *                           frame (ow_zone_commit_begin) and a writer pthread writes it to LMDB
 *                           with fsync (ow_zone_commit_run); the main thread finishes it
 *                           (ow_zone_commit_end) when the writer is done. The figure is actions /
 *                           wall time of the main thread's loop, which never waits for the writer;
 *                           applied_actions_per_sec_cpu uses the main thread's CPU time instead.
 *                           Like the server, the main thread seals only when no write is in
 *                           flight, so when the writer falls behind, frames grow:
 *                           applied_frames and applied_max_frame_actions show it,
 *                           applied_seal_share is the share of the loop spent in commit_begin and
 *                           commit_end (applied_seal_ns_per_action: the same per action), and
 *                           applied_durable_actions_per_sec counts up to the moment the last
 *                           action is durable.
 * applied_move_ns_p50/p99,  Latency of one ow_zone_act, measured in a second, shorter run of the
 * applied_transfer_ns_*     same workload that reads the clock around every call (the clock read,
 *                           about 20-40 ns, is included).
 * steady_*                  The same workload in frames of a fixed 33,333 actions (2M/s at 60 Hz),
 *                           each written before the next starts, so frames never grow:
 *                           steady_apply_ns_per_action (ow_zone_act) and steady_seal_ns_per_action
 *                           (commit_begin + commit_end) on the zone thread, and
 *                           steady_actions_per_sec = 1 / their sum, the zone thread's ceiling when
 *                           the store keeps up.
 * durable_commit_p50/p99_ms 60 frames per second; in each frame `frame_entities` players move
 *                           their avatar once (1,000 actions, 1,000 changed entities, 1,000 dirty
 *                           sessions), then the frame is sealed, written by the writer thread to
 *                           the real LMDB store with full durability (fsync), and finished. The
 *                           latency is ow_frame_info.commit_ns: from sealing (commit_begin) to
 *                           durable (commit_end). It runs against the store that also holds the
 *                           `entities` of the resident world below, after `replay_window` warm-up
 *                           frames that fill every session's replay ring (steady state).
 *                           durable_bytes_per_frame is what the process wrote per frame
 *                           (/proc/self/io wchar), i.e. what LMDB wrote before its fsyncs.
 * durable_stream_commit_*   The same, but the avatars move by ow_zone_stream and every frame is a
 *                           checkpoint: 1,000 entity records and no actions or session records.
 *                           It separates the store's cost from the per-action bookkeeping.
 * bytes_per_entity          ow_mem_used() growth while `entities` entities are spawned with
 *                           ow_world_spawn (resource nodes, structures, doors, carts, colliders,
 *                           chests holding item stacks, spread over regions of 256 m), divided by
 *                           their number. It includes the world's list of changes awaiting commit.
 *                           world_bytes_per_entity is ow_world_bytes() / entities;
 *                           bytes_per_entity_committed is the growth after that world was committed
 *                           (the zone keeps its commit buffers); bytes_per_entity_reloaded is the
 *                           zone's own figure after the cold start; rss_bytes_per_entity is the
 *                           process's resident-set growth during the spawn.
 * resident_heap_mb,         ow_mem_used() and the process's resident set right after the spawn
 * resident_rss_mb           (the whole engine: world, content, and the avatars of the first part
 *                           unless --only world); reloaded_heap_mb is ow_mem_used() right after
 *                           the cold start below: what a server holding this world starts with.
 * store_bytes_per_entity    LMDB data file bytes in use (ow_store_stat) / entities, after the
 *                           commit.
 * commit_entities_s         ow_zone_commit_sync of the freshly spawned world (one transaction).
 * cold_start_s              After the durable runs, everything is committed, the zone and store
 *                           are closed, then reopening the store and ow_zone_open are timed: it
 *                           rebuilds the world of `entities` (+ avatars) from LMDB. The data file
 *                           is still in the page cache, as after a process restart.
 * cold_start_uncached_s     The same after evicting the data file from the page cache
 *                           (posix_fadvise DONTNEED), as after a reboot (as far as the VM's host
 *                           cache allows). With the default 1 M entities both are also printed as
 *                           cold_start_1m_s and cold_start_1m_uncached_s, the goal's names.
 *
 * --entities N sizes the resident world (bench/scaling runs it from 10k to 10M with --only world);
 * --frames N the durable runs.
 *
 * Every figure has a goal_* line beside it with the target from the issue (not enforced).
 *
 * usage: bench_engine [--quick] [--sessions N] [--actions N] [--entities N] [--frames N]
 *                     [--replay-window N] [--only applied|world] [--store URI]
 *
 * --store URI runs against that store (e.g. postgres:CONNINFO, docs/storage.md) instead of LMDB
 * directories: every run empties it first (it must hold nothing else); the bytes figures are then
 * the store's (keys and values).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "content/content.h"
#include "core/core.h"
#include "otherworld/protocol.h"
#include "store/store.h"
#include "world/world.h"
#include "zone/zone.h"

/* Goals from the issue; printed beside the figures, never enforced. */
#define GOAL_ACTIONS_PER_SEC 2000000
#define GOAL_DURABLE_P99_MS 2.0
#define GOAL_BYTES_PER_ENTITY 150
#define GOAL_COLD_START_S 2.0

enum { CHEST_GROUP = 8, HARVESTS = 4, CHEST_SEED_UNITS = 10, PUMP_EVERY = 32 };

typedef struct sizes {
  bool quick;
  bool applied, world;      /* which parts run (--only) */
  uint64_t sessions;        /* players in the applied-actions run */
  uint64_t actions;         /* actions in the throughput run */
  uint64_t latency_actions; /* actions in the latency run */
  uint64_t steady_frames;   /* frames of the steady run */
  uint64_t entities;        /* resident world */
  uint64_t frames;          /* durable frames (60 per second) */
  uint64_t frame_entities;  /* avatars moved per durable frame */
  uint64_t replay_window;   /* 0: the server's default */
} sizes;

/* ---- errors and the temporary directory ------------------------------------------------------ */

static char *tmp_root;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static void rm_tree(const char *path) {
  if (path) nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static _Noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench_engine: error: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  rm_tree(tmp_root);
  exit(1);
}

static void check(int rc, const char *what) {
  if (rc) fail("%s: %s (%s)", what, ow_err_name(rc), ow_strerror(rc));
}

/* Bench-own arrays use plain malloc so that ow_mem_used() counts the engine only. */
static void *xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) fail("out of memory (%zu bytes)", n);
  return q;
}

typedef struct u64vec {
  uint64_t *v;
  size_t len, cap;
} u64vec;

static void vec_push(u64vec *a, uint64_t x) {
  if (a->len == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 1024;
    a->v = xrealloc(a->v, a->cap * sizeof *a->v);
  }
  a->v[a->len++] = x;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile (q in [0, 1]) of a, which it sorts. */
static uint64_t percentile(u64vec *a, double q) {
  if (!a->len) return 0;
  qsort(a->v, a->len, sizeof *a->v, cmp_u64);
  size_t rank = (size_t)ceil(q * (double)a->len);
  return a->v[rank ? rank - 1 : 0];
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) { /* splitmix64: deterministic, so every run builds the same world */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static double rnd01(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t ns) {
  struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ULL),
                        .tv_nsec = (long)(ns % 1000000000ULL)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) {
  }
}

static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, res = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    fclose(f);
  }
  return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Bytes this process has written through write(2) and friends so far (/proc/self/io wchar). */
static uint64_t bytes_written(void) {
  FILE *f = fopen("/proc/self/io", "r");
  char line[128];
  unsigned long long v = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "wchar: %llu", &v) == 1) break;
  if (f) fclose(f);
  return v;
}

static uint16_t type_id(ow_content *c, const char *name) {
  int t = ow_content_type_id(c, name, strlen(name));
  if (t < 0) fail("content has no type '%s'", name);
  return (uint16_t)t;
}

/* ---- the writer thread: ow_zone_commit_run off the zone's thread, as the server does --------- */

typedef struct writer {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ow_zone_commit *job; /* handed over by the zone's thread, taken by the writer */
  atomic_int done;     /* the result of the last job is ready */
  int rc;
  bool quit;
} writer;

static void *writer_main(void *arg) {
  writer *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->job && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
    if (w->quit) break;
    ow_zone_commit *c = w->job;
    w->job = NULL;
    pthread_mutex_unlock(&w->mu);
    int rc = ow_zone_commit_run(c);
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    atomic_store_explicit(&w->done, 1, memory_order_release);
    pthread_cond_broadcast(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static void writer_start(writer *w) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  if (pthread_create(&w->thread, NULL, writer_main, w)) fail("pthread_create failed");
  pthread_setname_np(w->thread, "ow-writer"); /* tells the threads apart in perf */
}

static void writer_stop(writer *w) {
  pthread_mutex_lock(&w->mu);
  w->quit = true;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
}

static void writer_submit(writer *w, ow_zone_commit *c) {
  pthread_mutex_lock(&w->mu);
  atomic_store_explicit(&w->done, 0, memory_order_relaxed);
  w->job = c;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* True (and *rc set) when the submitted job has been written. Never blocks. */
static bool writer_poll(writer *w, int *rc) {
  if (!atomic_load_explicit(&w->done, memory_order_acquire)) return false;
  atomic_store_explicit(&w->done, 0, memory_order_relaxed);
  *rc = w->rc;
  return true;
}

static int writer_wait(writer *w) {
  pthread_mutex_lock(&w->mu);
  while (!atomic_load_explicit(&w->done, memory_order_acquire)) pthread_cond_wait(&w->cv, &w->mu);
  atomic_store_explicit(&w->done, 0, memory_order_relaxed);
  int rc = w->rc;
  pthread_mutex_unlock(&w->mu);
  return rc;
}

/* ---- the committer: the loop's tick logic (src/zone/loop.c) without libuv -------------------- */

typedef struct committer {
  ow_zone *z;
  writer w;
  ow_zone_commit *inflight;
  uint64_t tick_ns, next_tick;
  bool due; /* a tick passed while a frame was in flight: seal as soon as it is written */
  uint64_t frames;
  uint64_t seal_ns; /* zone-thread time spent in ow_zone_commit_begin and _end */
} committer;

static void committer_start(committer *cm, ow_zone *z, double tick_hz) {
  memset(cm, 0, sizeof *cm);
  cm->z = z;
  cm->tick_ns = (uint64_t)(1e9 / tick_hz);
  cm->next_tick = ow_now_ns() + cm->tick_ns;
  writer_start(&cm->w);
}

static void finish(committer *cm, int rc) {
  uint64_t t0 = ow_now_ns();
  ow_zone_commit_end(cm->z, cm->inflight, rc);
  cm->seal_ns += ow_now_ns() - t0;
  cm->inflight = NULL;
  cm->frames++;
  check(rc, "frame write");
}

static void seal(committer *cm) {
  ow_zone_commit *c;
  uint64_t t0 = ow_now_ns();
  check(ow_zone_commit_begin(cm->z, false, &c), "ow_zone_commit_begin");
  cm->seal_ns += ow_now_ns() - t0;
  cm->due = false;
  if (!c) return;
  cm->inflight = c;
  writer_submit(&cm->w, c);
}

/* Called by the zone's thread between actions: finishes a written frame, seals the next one when a
 * tick is due. Never blocks. */
static void pump(committer *cm, uint64_t now) {
  int rc;
  if (cm->inflight && writer_poll(&cm->w, &rc)) finish(cm, rc);
  if (now >= cm->next_tick) {
    cm->due = true;
    cm->next_tick += cm->tick_ns;
    if (cm->next_tick <= now) cm->next_tick = now + cm->tick_ns;
  }
  if (cm->due && !cm->inflight) seal(cm);
}

/* Waits for the frame in flight, commits what is left and stops the writer. */
static void committer_stop(committer *cm) {
  if (cm->inflight) finish(cm, writer_wait(&cm->w));
  writer_stop(&cm->w);
  check(ow_zone_commit_sync(cm->z, false), "final commit");
}

/* ---- zone and store -------------------------------------------------------------------------- */

typedef struct bench {
  sizes sz;
  ow_config cfg;
  ow_zone_config zc;
  ow_content *content;
  /* durability callback state */
  bool recording;
  u64vec commit_ns;
  uint64_t durable_actions;
  uint64_t max_frame_actions;
} bench;

static void on_durable(void *ud, const ow_frame_info *f) {
  bench *b = ud;
  if (f->status)
    fail("frame %llu not durable: %s", (unsigned long long)f->frame, ow_err_name(f->status));
  b->durable_actions += f->nactions;
  if (f->nactions > b->max_frame_actions) b->max_frame_actions = f->nactions;
  if (b->recording) vec_push(&b->commit_ns, f->commit_ns);
}

/* --store URI: every run's store, instead of an LMDB directory per run. */
static const char *g_store_uri;

static int del_each(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  (void)v, (void)vl;
  ow_batch_del(ud, k, kl);
  return 0;
}

static ow_store *open_store(bench *b, const char *dir) {
  ow_store_options so = {.path = dir,
                         .map_size = (uint64_t)b->cfg.store_map_mb << 20,
                         .nosync = false}; /* full durability: every frame is fsynced */
  ow_store *s;
  if (!g_store_uri) {
    check(ow_store_open(&s, &so), "ow_store_open");
    return s;
  }
  char err[512] = "";
  if (ow_store_open_uri(&s, g_store_uri, &so, err, sizeof err)) fail("--store: %s", err);
  /* A run's first open starts from an empty store, as a fresh directory would; its reopens (the
   * cold starts) keep what it wrote. */
  static char last[1024];
  if (strcmp(last, dir)) {
    snprintf(last, sizeof last, "%s", dir);
    ow_batch all;
    ow_batch_init(&all);
    check(ow_store_scan(s, "", 0, del_each, &all), "ow_store_scan (emptying --store)");
    check(ow_store_write(s, &all), "ow_store_write (emptying --store)");
    ow_batch_deinit(&all);
  }
  return s;
}

static char *subdir(const char *name) {
  char *p = xrealloc(NULL, strlen(tmp_root) + strlen(name) + 2);
  sprintf(p, "%s/%s", tmp_root, name);
  return p;
}

static void act(ow_zone *z, uint64_t sid, uint64_t seq, const ow_action *a, ow_result *r) {
  uint64_t frame;
  bool replayed;
  int rc = ow_zone_act(z, sid, seq, a, r, &frame, &replayed);
  if (rc || r->code || replayed)
    fail("action type %u seq %llu on session %016llx: rc=%s code=%s replayed=%d", a->type,
         (unsigned long long)seq, (unsigned long long)sid, ow_err_name(rc), ow_err_name(r->code),
         replayed);
}

/* ---- 1. applied actions ---------------------------------------------------------------------- */

typedef struct player {
  uint64_t sid, seq;
  ow_id avatar, chest, inv_stack, chest_stack;
  uint32_t step;
} player;

static const float POS_A[3] = {0.5f, 0, 2.0f}, POS_B[3] = {1.5f, 0, 2.5f}, CHEST_POS[3] = {1, 0, 3};

/* Logs the players in, gives each 20 wood by harvesting a tree, and puts 10 of it into the chest
 * its group shares. */
static player *setup_players(bench *b, ow_zone *z) {
  ow_world *w = ow_zone_world(z);
  uint16_t tree = type_id(b->content, "tree"), chest = type_id(b->content, "chest");
  player *ps = xrealloc(NULL, b->sz.sessions * sizeof *ps);
  memset(ps, 0, b->sz.sessions * sizeof *ps);
  ow_transform xf;
  for (uint64_t i = 0; i < b->sz.sessions; i++) {
    player *p = &ps[i];
    check(ow_zone_login(z, 1 + i, &p->sid, &p->avatar), "ow_zone_login");
    if (i % CHEST_GROUP == 0) {
      ow_transform_identity(&xf);
      memcpy(xf.pos, CHEST_POS, sizeof xf.pos);
      check(ow_world_spawn(w, chest, 0, 0, &xf, &p->chest), "spawn chest");
    } else {
      p->chest = ps[i - i % CHEST_GROUP].chest;
    }
    ow_transform_identity(&xf);
    xf.pos[2] = 3;
    ow_id t;
    check(ow_world_spawn(w, tree, 0, 0, &xf, &t), "spawn tree");
    ow_result r;
    ow_action h = {.type = OW_ACT_HARVEST, .target = t};
    for (int k = 0; k < HARVESTS; k++) act(z, p->sid, ++p->seq, &h, &r);
    p->inv_stack = r.entity;
    if (ow_world_get(w, t)) fail("tree %llu survived %d harvests", (unsigned long long)t, HARVESTS);
    ow_action tr = {.type = OW_ACT_TRANSFER, .target = p->inv_stack, .dest = p->chest,
                    .count = CHEST_SEED_UNITS};
    act(z, p->sid, ++p->seq, &tr, &r);
    p->chest_stack = r.entity;
  }
  check(ow_zone_commit_sync(z, false), "setup commit");
  return ps;
}

/* The next action of player p: move, put 1 unit into the chest, move, take 1 unit back into the
 * inventory `inv`. */
static void next_action(player *p, ow_id inv, ow_action *a) {
  uint32_t k = p->step++ & 3;
  memset(a, 0, sizeof *a);
  if (k == 0 || k == 2) {
    a->type = OW_ACT_MOVE;
    a->target = p->avatar;
    ow_transform_identity(&a->xf);
    memcpy(a->xf.pos, k == 0 ? POS_A : POS_B, sizeof a->xf.pos);
    a->xf.rot[1] = k == 0 ? 0.38268343f : 0; /* a 45 degree turn and back, |q| = 1 */
    a->xf.rot[3] = k == 0 ? 0.92387953f : 1;
  } else if (k == 1) {
    *a = (ow_action){.type = OW_ACT_TRANSFER, .target = p->inv_stack, .dest = p->chest, .count = 1};
  } else {
    *a = (ow_action){.type = OW_ACT_TRANSFER, .target = p->chest_stack, .dest = inv, .count = 1};
  }
}

/* Remembers which stacks received units: the next transfer takes from them. */
static void after_action(player *p, const ow_action *a, const ow_result *r) {
  if (a->type != OW_ACT_TRANSFER) return;
  if (a->dest == p->chest)
    p->chest_stack = r->entity;
  else
    p->inv_stack = r->entity;
}

typedef struct run_result {
  uint64_t actions, wall_ns, cpu_ns, durable_ns, frames, seal_ns;
  u64vec move_ns, transfer_ns;
} run_result;

static void run_actions(bench *b, ow_zone *z, player *ps, ow_id *inventories, uint64_t n,
                        bool timed, run_result *out) {
  committer cm;
  committer_start(&cm, z, b->cfg.tick_hz);
  uint64_t ns = b->sz.sessions;
  ow_action a;
  ow_result r;
  uint64_t frame;
  bool replayed;
  uint64_t t0 = ow_now_ns(), c0 = thread_cpu_ns();
  for (uint64_t i = 0; i < n; i++) {
    player *p = &ps[i % ns];
    next_action(p, inventories[i % ns], &a);
    int rc;
    if (timed) {
      uint64_t s = ow_now_ns();
      rc = ow_zone_act(z, p->sid, ++p->seq, &a, &r, &frame, &replayed);
      vec_push(a.type == OW_ACT_MOVE ? &out->move_ns : &out->transfer_ns, ow_now_ns() - s);
    } else {
      rc = ow_zone_act(z, p->sid, ++p->seq, &a, &r, &frame, &replayed);
    }
    if (rc || r.code)
      fail("action %llu (type %u) of session %llu: rc=%s code=%s", (unsigned long long)i, a.type,
           (unsigned long long)(i % ns), ow_err_name(rc), ow_err_name(r.code));
    after_action(p, &a, &r);
    if (i % PUMP_EVERY == PUMP_EVERY - 1) pump(&cm, ow_now_ns());
  }
  out->wall_ns = ow_now_ns() - t0;
  out->cpu_ns = thread_cpu_ns() - c0;
  out->actions = n;
  out->seal_ns = cm.seal_ns;
  committer_stop(&cm);
  out->durable_ns = ow_now_ns() - t0;
  out->frames = cm.frames;
}

/* Steady frames: the same workload in frames of a fixed size (what 2M actions/s gives at 60 Hz),
 * each sealed, written and finished before the next one starts, so that frames never grow. Only the
 * zone thread's apply and seal/finish times are counted; the wait for the writer is not. */
typedef struct steady_result {
  uint64_t actions, apply_ns, seal_ns;
} steady_result;

static steady_result run_steady(bench *b, ow_zone *z, player *ps, ow_id *inventories,
                                uint64_t frames, uint64_t per_frame) {
  writer wr;
  writer_start(&wr);
  steady_result sr = {0};
  uint64_t ns = b->sz.sessions, i = 0;
  ow_action a;
  ow_result r;
  for (uint64_t f = 0; f < frames; f++) {
    uint64_t t0 = ow_now_ns();
    for (uint64_t k = 0; k < per_frame; k++, i++) {
      player *p = &ps[i % ns];
      next_action(p, inventories[i % ns], &a);
      act(z, p->sid, ++p->seq, &a, &r);
      after_action(p, &a, &r);
    }
    uint64_t t1 = ow_now_ns();
    ow_zone_commit *c;
    check(ow_zone_commit_begin(z, false, &c), "ow_zone_commit_begin");
    if (!c) fail("steady frame %llu had nothing to commit", (unsigned long long)f);
    uint64_t t2 = ow_now_ns();
    writer_submit(&wr, c);
    int rc = writer_wait(&wr);
    uint64_t t3 = ow_now_ns();
    ow_zone_commit_end(z, c, rc);
    check(rc, "steady frame write");
    uint64_t t4 = ow_now_ns();
    sr.apply_ns += t1 - t0;
    sr.seal_ns += (t2 - t1) + (t4 - t3);
  }
  sr.actions = i;
  writer_stop(&wr);
  return sr;
}

static void bench_applied(bench *b) {
  char *dir = subdir("applied");
  ow_store *store = open_store(b, dir);
  ow_zone *z;
  check(ow_zone_open(&z, &b->zc, b->content, store, on_durable, b), "ow_zone_open");
  player *ps = setup_players(b, z);
  ow_id *inv = xrealloc(NULL, b->sz.sessions * sizeof *inv);
  ow_world *w = ow_zone_world(z);
  for (uint64_t i = 0; i < b->sz.sessions; i++) inv[i] = ow_world_get(w, ps[i].inv_stack)->parent;

  run_result thr, lat;
  memset(&thr, 0, sizeof thr);
  memset(&lat, 0, sizeof lat);
  b->durable_actions = b->max_frame_actions = 0;
  run_actions(b, z, ps, inv, b->sz.actions, false, &thr);
  uint64_t max_frame = b->max_frame_actions;
  run_actions(b, z, ps, inv, b->sz.latency_actions, true, &lat);
  uint64_t per_frame = GOAL_ACTIONS_PER_SEC / 60;
  steady_result st = run_steady(b, z, ps, inv, b->sz.steady_frames, per_frame);
  if (b->durable_actions != thr.actions + lat.actions + st.actions)
    fail("%llu actions applied but %llu durable",
         (unsigned long long)(thr.actions + lat.actions + st.actions),
         (unsigned long long)b->durable_actions);

  /* Conservation: transfers never create or destroy units. */
  ow_content *c = b->content;
  uint64_t *totals = xrealloc(NULL, c->ntypes * sizeof *totals);
  ow_world_item_totals(w, totals);
  uint64_t wood = totals[type_id(c, "wood")], want = b->sz.sessions * HARVESTS * 5;
  if (wood != want) fail("wood not conserved: %llu units, expected %llu", (unsigned long long)wood,
                         (unsigned long long)want);
  free(totals);

  printf("sessions=%llu\n", (unsigned long long)b->sz.sessions);
  printf("applied_actions=%llu\n", (unsigned long long)thr.actions);
  printf("applied_seconds=%.3f\n", (double)thr.wall_ns / 1e9);
  printf("applied_frames=%llu\n", (unsigned long long)thr.frames);
  printf("applied_max_frame_actions=%llu\n", (unsigned long long)max_frame);
  printf("applied_seal_share=%.3f\n", (double)thr.seal_ns / (double)thr.wall_ns);
  printf("applied_seal_ns_per_action=%.1f\n", (double)thr.seal_ns / (double)thr.actions);
  printf("applied_actions_per_sec=%.0f\n", (double)thr.actions * 1e9 / (double)thr.wall_ns);
  printf("applied_actions_per_sec_cpu=%.0f\n", (double)thr.actions * 1e9 / (double)thr.cpu_ns);
  printf("applied_durable_actions_per_sec=%.0f\n",
         (double)thr.actions * 1e9 / (double)thr.durable_ns);
  printf("applied_move_ns_p50=%llu\n", (unsigned long long)percentile(&lat.move_ns, 0.50));
  printf("applied_move_ns_p99=%llu\n", (unsigned long long)percentile(&lat.move_ns, 0.99));
  printf("applied_transfer_ns_p50=%llu\n", (unsigned long long)percentile(&lat.transfer_ns, 0.50));
  printf("applied_transfer_ns_p99=%llu\n", (unsigned long long)percentile(&lat.transfer_ns, 0.99));
  printf("steady_frame_actions=%llu\n", (unsigned long long)per_frame);
  printf("steady_apply_ns_per_action=%.1f\n", (double)st.apply_ns / (double)st.actions);
  printf("steady_seal_ns_per_action=%.1f\n", (double)st.seal_ns / (double)st.actions);
  printf("steady_actions_per_sec=%.0f\n",
         (double)st.actions * 1e9 / (double)(st.apply_ns + st.seal_ns));
  fflush(stdout);

  free(lat.move_ns.v);
  free(lat.transfer_ns.v);
  free(inv);
  free(ps);
  ow_zone_close(z);
  ow_store_close(store);
  rm_tree(dir);
  free(dir);
}

/* ---- 2. resident world, 3. durable frames, 4. cold start ------------------------------------- */

typedef struct kinds {
  uint16_t tree, rock, wall, floor, stone_wall, door, cart, chest, collider;
  uint16_t items[4];
} kinds;

static void spawn_at(ow_world *w, uint16_t type, ow_id owner, double side_m, ow_id *out) {
  ow_transform xf;
  ow_transform_identity(&xf);
  xf.pos[0] = (float)((rnd01() - 0.5) * side_m);
  xf.pos[2] = (float)((rnd01() - 0.5) * side_m);
  double yaw = rnd01() * 6.283185307179586;
  xf.rot[1] = (float)sin(yaw / 2);
  xf.rot[3] = (float)cos(yaw / 2);
  check(ow_world_spawn(w, type, owner, 0, &xf, out), "ow_world_spawn");
}

static ow_id some_owner(void) { return rnd() % 4 ? 1 + rnd() % 10000 : 0; }

/* Spawns exactly n entities: 45% trees, 20% rocks, 12% walls, 8% floors, 4% stone walls, 3% doors,
 * 1% carts, 5% colliders and 2% chests with 5 item stacks each, about 250 per region. */
static void spawn_world(bench *b, ow_world *w, uint64_t n) {
  ow_content *c = b->content;
  kinds k = {type_id(c, "tree"), type_id(c, "rock"), type_id(c, "wall"), type_id(c, "floor"),
             type_id(c, "stone_wall"), type_id(c, "door"), type_id(c, "cart"), type_id(c, "chest"),
             type_id(c, "box_collider"),
             {type_id(c, "wood"), type_id(c, "stone"), type_id(c, "plank"),
              type_id(c, "stone_block")}};
  double regions_side = ceil(sqrt((double)n / 250.0));
  double side = regions_side * b->zc.world.region_size;
  uint64_t made = 0;
  while (made < n) {
    unsigned r = (unsigned)(rnd() % 100);
    uint16_t t;
    ow_id owner = 0;
    if (r < 45) t = k.tree;
    else if (r < 65) t = k.rock;
    else if (r < 77) t = k.wall, owner = some_owner();
    else if (r < 85) t = k.floor, owner = some_owner();
    else if (r < 89) t = k.stone_wall, owner = some_owner();
    else if (r < 92) t = k.door, owner = some_owner();
    else if (r < 93) t = k.cart, owner = some_owner();
    else if (r < 98) t = k.collider;
    else t = k.chest, owner = some_owner();
    ow_id id;
    spawn_at(w, t, owner, side, &id);
    made++;
    if (t != k.chest) continue;
    ow_transform xf;
    ow_transform_identity(&xf);
    for (int i = 0; i < 5 && made < n; i++, made++)
      check(ow_world_spawn(w, k.items[i % 4], owner, id, &xf, NULL), "spawn item");
  }
}

typedef struct mover {
  uint64_t sid, seq;
  ow_id avatar;
} mover;

/* One durable frame: every mover moves its avatar once (an action, or a stream when `stream`),
 * then the frame is sealed, written on the writer thread and finished. */
static void durable_frame(bench *b, ow_zone *z, writer *wr, mover *ms, uint64_t f, bool stream) {
  ow_action a;
  ow_result r;
  for (uint64_t i = 0; i < b->sz.frame_entities; i++) {
    mover *m = &ms[i];
    memset(&a, 0, sizeof a);
    a.type = OW_ACT_MOVE;
    a.target = m->avatar;
    ow_transform_identity(&a.xf);
    a.xf.pos[0] = (float)(1 + (f + i) % 32) * 0.25f; /* stays in region (0, 0) */
    a.xf.pos[2] = 2.0f + (float)(f % 2);
    if (stream)
      check(ow_zone_stream(z, m->sid, m->avatar, &a.xf), "ow_zone_stream");
    else
      act(z, m->sid, ++m->seq, &a, &r);
  }
  ow_zone_commit *c;
  check(ow_zone_commit_begin(z, stream, &c), "ow_zone_commit_begin");
  if (!c) fail("frame %llu had nothing to commit", (unsigned long long)f);
  writer_submit(wr, c);
  int rc = writer_wait(wr);
  ow_zone_commit_end(z, c, rc);
  check(rc, "durable frame write");
}

typedef struct durable_result {
  double p50_ms, p99_ms, max_ms;
  uint64_t bytes_per_frame; /* written to the store's file per recorded frame */
  uint64_t late; /* frames whose commit took longer than a tick */
} durable_result;

/* Runs `warmup` unrecorded frames (so that every session's replay ring is full, as on a server
 * that has been up for a while), then b->sz.frames recorded ones, 60 per second. */
static durable_result run_durable(bench *b, ow_zone *z, mover *ms, bool stream, uint64_t warmup) {
  writer wr;
  writer_start(&wr);
  uint64_t tick = (uint64_t)(1e9 / 60.0), t0 = ow_now_ns() + tick, w0 = 0;
  for (uint64_t f = 0; f < warmup + b->sz.frames; f++) {
    if (f == warmup) {
      b->commit_ns.len = 0;
      b->recording = true;
      w0 = bytes_written();
    }
    sleep_until(t0 + f * tick);
    durable_frame(b, z, &wr, ms, f, stream);
  }
  b->recording = false;
  writer_stop(&wr);
  durable_result d = {0};
  d.bytes_per_frame = (bytes_written() - w0) / b->sz.frames;
  if (b->commit_ns.len != b->sz.frames)
    fail("%zu durable frames reported, %llu expected", b->commit_ns.len,
         (unsigned long long)b->sz.frames);
  for (size_t i = 0; i < b->commit_ns.len; i++) d.late += b->commit_ns.v[i] > tick;
  d.p50_ms = (double)percentile(&b->commit_ns, 0.50) / 1e6;
  d.p99_ms = (double)percentile(&b->commit_ns, 0.99) / 1e6;
  d.max_ms = (double)b->commit_ns.v[b->commit_ns.len - 1] / 1e6;
  return d;
}

static void evict_page_cache(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/data.mdb", dir);
  int fd = open(path, O_RDONLY);
  if (fd < 0) fail("open %s failed", path);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

/* Reopens the store and times ow_zone_open; checks that the whole world came back. */
static double cold_start(bench *b, const char *dir, ow_store **store, ow_zone **z, size_t want) {
  uint64_t t0 = ow_now_ns();
  *store = open_store(b, dir);
  check(ow_zone_open(z, &b->zc, b->content, *store, on_durable, b), "ow_zone_open (cold start)");
  double s = (double)(ow_now_ns() - t0) / 1e9;
  const ow_zone_load_stats *ls = ow_zone_load_info(*z);
  if (ls->seeded || ls->entities != want || ls->sessions != b->sz.frame_entities)
    fail("cold start rebuilt %llu entities and %llu sessions, expected %zu and %llu",
         (unsigned long long)ls->entities, (unsigned long long)ls->sessions, want,
         (unsigned long long)b->sz.frame_entities);
  return s;
}

static void bench_world(bench *b) {
  char *dir = subdir("world");
  ow_store *store = open_store(b, dir);
  ow_zone *z;
  check(ow_zone_open(&z, &b->zc, b->content, store, on_durable, b), "ow_zone_open");
  ow_world *w = ow_zone_world(z);
  uint64_t n = b->sz.entities;

  /* 2. Resident bytes. */
  malloc_trim(0); /* so that the spawn cannot reuse heap freed by the first run unnoticed */
  size_t mem0 = ow_mem_used(), rss0 = rss_bytes(), wb0 = ow_world_bytes(w);
  uint64_t t0 = ow_now_ns();
  spawn_world(b, w, n);
  double spawn_s = (double)(ow_now_ns() - t0) / 1e9;
  size_t mem1 = ow_mem_used(), rss1 = rss_bytes(), wb1 = ow_world_bytes(w);
  t0 = ow_now_ns();
  check(ow_zone_commit_sync(z, false), "commit of the resident world");
  double commit_s = (double)(ow_now_ns() - t0) / 1e9;
  size_t mem2 = ow_mem_used();
  uint64_t entries, bytes;
  check(ow_store_stat(store, &entries, &bytes), "ow_store_stat");
  printf("entities=%llu\n", (unsigned long long)n);
  printf("spawn_s=%.3f\n", spawn_s);
  printf("bytes_per_entity=%.1f\n", (double)(mem1 - mem0) / (double)n);
  printf("world_bytes_per_entity=%.1f\n", (double)(wb1 - wb0) / (double)n);
  printf("rss_bytes_per_entity=%.1f\n", (double)(rss1 - rss0) / (double)n);
  printf("bytes_per_entity_committed=%.1f\n", (double)(mem2 - mem0) / (double)n);
  printf("resident_heap_mb=%.1f\n", (double)mem1 / 1048576.0);
  printf("resident_rss_mb=%.1f\n", (double)rss1 / 1048576.0);
  printf("commit_entities_s=%.3f\n", commit_s);
  printf("store_entries=%llu\n", (unsigned long long)entries);
  printf("store_bytes_per_entity=%.1f\n", (double)bytes / (double)ow_world_count(w));
  fflush(stdout);

  /* 3. Durable frames, against the store that holds this world. */
  mover *ms = xrealloc(NULL, b->sz.frame_entities * sizeof *ms);
  for (uint64_t i = 0; i < b->sz.frame_entities; i++) {
    ms[i].seq = 0;
    check(ow_zone_login(z, 1000000 + i, &ms[i].sid, &ms[i].avatar), "ow_zone_login");
  }
  check(ow_zone_commit_sync(z, false), "login commit");
  durable_result da = run_durable(b, z, ms, false, b->zc.replay_window);
  printf("durable_frames=%llu\n", (unsigned long long)b->sz.frames);
  printf("durable_frame_entities=%llu\n", (unsigned long long)b->sz.frame_entities);
  printf("durable_commit_p50_ms=%.3f\n", da.p50_ms);
  printf("durable_commit_p99_ms=%.3f\n", da.p99_ms);
  printf("durable_commit_max_ms=%.3f\n", da.max_ms);
  printf("durable_frames_over_tick=%llu\n", (unsigned long long)da.late);
  printf("durable_bytes_per_frame=%llu\n", (unsigned long long)da.bytes_per_frame);
  fflush(stdout);
  durable_result ds = run_durable(b, z, ms, true, 10);
  printf("durable_stream_commit_p50_ms=%.3f\n", ds.p50_ms);
  printf("durable_stream_commit_p99_ms=%.3f\n", ds.p99_ms);
  printf("durable_stream_commit_max_ms=%.3f\n", ds.max_ms);
  printf("durable_stream_bytes_per_frame=%llu\n", (unsigned long long)ds.bytes_per_frame);
  fflush(stdout);
  free(ms);

  /* 4. Cold start: everything committed, closed, reopened. */
  check(ow_zone_commit_sync(z, true), "final commit");
  size_t want = ow_world_count(w);
  ow_zone_close(z);
  ow_store_close(store);
  double warm = cold_start(b, dir, &store, &z, want);
  printf("cold_start_s=%.3f\n", warm);
  if (n == 1000000) printf("cold_start_1m_s=%.3f\n", warm);
  printf("bytes_per_entity_reloaded=%.1f\n", ow_zone_load_info(z)->bytes_per_entity);
  printf("reloaded_heap_mb=%.1f\n", (double)ow_mem_used() / 1048576.0);
  fflush(stdout);
  ow_zone_close(z);
  ow_store_close(store);
  /* The page cache of a database server is not this process's to drop: with --store there is no
   * uncached figure. */
  if (!g_store_uri) {
    evict_page_cache(dir);
    double cold = cold_start(b, dir, &store, &z, want);
    printf("cold_start_uncached_s=%.3f\n", cold);
    if (n == 1000000) printf("cold_start_1m_uncached_s=%.3f\n", cold);
    fflush(stdout);
    ow_zone_close(z);
    ow_store_close(store);
  }
  rm_tree(dir);
  free(dir);
}

/* ---- main ------------------------------------------------------------------------------------ */

static void usage(FILE *out) {
  fprintf(out, "usage: bench_engine [--quick] [--sessions N] [--actions N] [--entities N] "
               "[--frames N]\n"
               "                    [--replay-window N] [--only applied|world] [--store URI]\n"
               "Prints key=value figures on stdout; see the header of bench/engine.c.\n");
}

static uint64_t num_arg(int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    usage(stderr);
    exit(2);
  }
  char *end;
  unsigned long long v = strtoull(argv[++*i], &end, 10);
  if (*end || !v) {
    fprintf(stderr, "bench_engine: %s needs a positive integer\n", argv[*i - 1]);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  bench b;
  memset(&b, 0, sizeof b);
  b.sz = (sizes){.quick = false, .sessions = 1000, .actions = 30000000, .latency_actions = 1000000,
                 .steady_frames = 120,
                 .entities = 1000000, .frames = 600, .frame_entities = 1000,
                 .applied = true, .world = true};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      b.sz.quick = true;
      b.sz.actions = 1000000;
      b.sz.latency_actions = 100000;
      b.sz.steady_frames = 20;
      b.sz.entities = 20000;
      b.sz.frames = 60;
    } else if (!strcmp(argv[i], "--sessions")) {
      b.sz.sessions = num_arg(argc, argv, &i);
    } else if (!strcmp(argv[i], "--actions")) {
      b.sz.actions = num_arg(argc, argv, &i);
    } else if (!strcmp(argv[i], "--entities")) {
      b.sz.entities = num_arg(argc, argv, &i);
    } else if (!strcmp(argv[i], "--frames")) {
      b.sz.frames = num_arg(argc, argv, &i);
    } else if (!strcmp(argv[i], "--replay-window")) {
      b.sz.replay_window = num_arg(argc, argv, &i);
    } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
      i++;
      b.sz.applied = !strcmp(argv[i], "applied");
      b.sz.world = !strcmp(argv[i], "world");
      if (!b.sz.applied && !b.sz.world) {
        usage(stderr);
        return 2;
      }
    } else if (!strcmp(argv[i], "--store") && i + 1 < argc) {
      g_store_uri = argv[++i];
    } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  ow_log_level = OW_LOG_WARN;

  /* The server's defaults: 60 Hz ticks, reach 8 m, regions of 256 m, window 64, full durability. */
  ow_config_init(&b.cfg);
  b.zc = (ow_zone_config){.world = {.region_size = (float)b.cfg.region_size,
                                    .reach = (float)b.cfg.reach,
                                    .bound = (float)b.cfg.world_bound},
                          .replay_window = (uint32_t)b.cfg.replay_window,
                          .frame_log_keep = (uint64_t)b.cfg.frame_log_keep};
  if (b.sz.replay_window) b.zc.replay_window = (uint32_t)b.sz.replay_window;
  char err[512];
  if (ow_content_load_file(b.cfg.content, &b.content, err, sizeof err)) {
    fprintf(stderr, "bench_engine: content %s: %s\n", b.cfg.content, err);
    return 1;
  }

  const char *tmp = getenv("TMPDIR");
  char buf[4096];
  snprintf(buf, sizeof buf, "%s/ow-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(buf)) {
    perror("bench_engine: mkdtemp");
    return 1;
  }
  tmp_root = buf;

  printf("mode=%s\n", b.sz.quick ? "quick" : "full");
  printf("replay_window=%u\n", b.zc.replay_window);
  printf("goal_applied_actions_per_sec=%d\n", GOAL_ACTIONS_PER_SEC);
  printf("goal_durable_commit_p99_ms=%.1f\n", GOAL_DURABLE_P99_MS);
  printf("goal_bytes_per_entity=%d\n", GOAL_BYTES_PER_ENTITY);
  printf("goal_cold_start_1m_s=%.1f\n", GOAL_COLD_START_S);
  fflush(stdout);

  if (b.sz.applied) bench_applied(&b);
  if (b.sz.world) bench_world(&b);

  rm_tree(tmp_root);
  tmp_root = NULL;
  free(b.commit_ns.v);
  ow_content_destroy(b.content);
  ow_config_deinit(&b.cfg);
  return 0;
}
