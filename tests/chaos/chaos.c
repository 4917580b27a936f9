/*
 * chaos_network: crash chaos over the network. The real server binary runs on a store in a temp
 * directory under the load of several players built on the C client library (clients/c). Each
 * player harvests its own tree and rock, crafts, builds chests, walls and doors, moves items
 * between its inventory and its chests, opens and closes its doors, tears its structures down and
 * walks around its home, so every player's part of the world is touched by that player only. At
 * random moments (seeded) the harness kills the server with SIGKILL and starts it again on the
 * same store; the players reconnect, RESUME and JOIN, and the library re-sends every action not
 * yet confirmed with its original sequence number.
 *
 * Each player keeps a log of what it issued and of every APPLIED and DURABLE it received. After
 * every kill the harness opens the store itself (the project's store and zone code) and checks:
 *  - every action confirmed DURABLE is in the frame log exactly once, in the confirmed frame, with
 *    the confirmed result and the action that was sent; no (session, seq) is logged twice;
 *  - the store's frame is at least the highest frame any client saw in a DURABLE or a SNAPSHOT,
 *    and every entity of each client's last snapshot is still as the client saw it unless a later
 *    frame changed it (no client was shown a durable state that disappeared);
 *  - conservation: the item units in the world are exactly what the logged harvests, crafts and
 *    builds created and consumed (transfers only move units);
 *  - each player's part of the world (avatar, inventory, chests and their item totals, built
 *    structures, door states, the hp of its tree and rock) equals a reference model replayed from
 *    the logged results; and the restarted server reports the same frame.
 * After every JOINED each player re-sends a few confirmed sequence numbers inside the replay window
 * and must get APPLIED replayed=1 with the original result and frame. At the end the server is
 * stopped cleanly (every issued action must then be confirmed) and started once more: every
 * player's snapshot, and the store, must show each player's part exactly as the model built from
 * the confirmed results predicts.
 *
 * The last line is `kills=N confirmed=M lost_durable=L duplicated=D`; any problem fails the test.
 *
 * With --pg-faults (under tests/pg/pg_env.sh, the store in PostgreSQL) the server is never killed:
 * PostgreSQL is, in turn killed with SIGKILL and started again, restarted (fast shutdown), and
 * paused (SIGSTOP: unreachable, connections hang) and resumed, N times in all, while the players go
 * on playing. The server must keep applying actions, confirm nothing it could not commit, and once
 * the store is back every confirmed frame must be there exactly once: the final checks above, and
 * the last line `pg_kills=N lost_durable=L duplicated=D` (ctest pg_faults).
 *
 * Usage: chaos SERVER_BINARY [--kills N] [--seed S] [--players P] [--keep] [--pg-faults]
 *        environment: OW_CHAOS_KILLS=N, OW_CHAOS_SEED=S (flags win).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_int.h"
#include "otherworld/client.h"
#include "support.h"

enum {
  MAX_PLAYERS = 8, /* homes in chaos_content.json */
  DEFAULT_PLAYERS = 6,
  DEFAULT_KILLS = 20,
  PIPELINE = 8,       /* unconfirmed actions per player: far inside the replay window */
  REPLAY_WINDOW = 64, /* --replay_window */
  PROBE_SPAN = 40,    /* probes re-send confirmed seqs at most this far below the newest issued */
  PROBES = 3,         /* confirmed seqs re-sent after each JOINED */
  MAX_THINGS = 10,    /* structures a player keeps standing before it prefers tearing down */
  MAX_CHESTS = 3,
  PROBLEMS_SHOWN = 40, /* problems printed in full; the rest are only counted */
  MAX_TYPES = 32,
};

#define CONTENT "tests/chaos/chaos_content.json"
#define PASSWORD "chaos-password"
#define REGION_SIZE "16" /* small regions: homes and walks cross region boundaries */

/* ---- what a player knows --------------------------------------------------------------------- */

/* One issued action, indexed by seq - 1 (the library numbers a session's actions 1, 2, ...). */
typedef struct act_rec {
  ow_action a;
  uint32_t req;  /* request id (the library re-sends with the same one) */
  ow_id src;     /* transfer: the stack's container, from the snapshot it was chosen in */
  uint16_t item; /* transfer: the stack's item type */
  /* the latest APPLIED, in server run `arun` */
  bool applied;
  uint32_t arun;
  ow_result ar;
  uint64_t aframe;
  /* DURABLE: the definitive result */
  bool confirmed;
  ow_result res;
  uint64_t frame;
  bool refused;       /* ERROR OW_E_RATE: not applied, never will be */
  bool lost_reported; /* counted once in lost_durable */
} act_rec;

/* An entity as a client saw it in a snapshot or as the store holds it, in wire units. */
typedef struct obs {
  ow_id id, owner, parent;
  uint16_t type;
  int32_t pos[3];
  uint32_t rot;
  float scale[3];
  int32_t hp;
  uint32_t count;
  uint64_t props; /* order-independent hash of every property */
  bool has_open;
  int64_t open;
} obs;

typedef OW_VEC(obs) obsvec;

typedef struct probe {
  uint32_t req;
  uint64_t seq;
} probe;

enum { PH_DOWN, PH_HELLO, PH_REGISTER, PH_LOGIN, PH_RESUME, PH_JOIN, PH_IN };

typedef struct player {
  int idx;
  ow_client *c;
  int phase;
  char name[32];
  bool have_session;
  uint8_t token[OW_TOKEN_LEN];
  ow_id account, avatar, inventory, tree, rock;
  float home[3];
  OW_VEC(act_rec) acts;
  OW_VEC(probe) probes;
  uint64_t max_conf_seq;
  uint64_t max_durable_frame, max_snapshot_frame; /* over every connection */
  obsvec seen;                                    /* the table at the last complete snapshot */
  uint64_t seen_frame;                            /* its frame */
  uint32_t seen_run;                              /* the server run it came from */
  uint64_t next_action_ns, reconnect_ns;
} player;

/* ---- the reference model of one player's part -------------------------------------------------
 */

typedef struct mcont {
  ow_id id;
  int64_t units[MAX_TYPES];
} mcont;

typedef struct mthing {
  ow_id id;
  uint16_t type;
  float pos[3], rot[4];
  int64_t open;
} mthing;

typedef struct pmodel {
  float pos[3], rot[4];  /* the avatar */
  OW_VEC(mcont) conts;   /* [0] is the inventory */
  OW_VEC(mthing) things; /* built and standing */
  uint64_t tree_hits, rock_hits;
} pmodel;

/* ---- the harness ----------------------------------------------------------------------------- */

static struct {
  const char *bin;
  char *dir;
  char data[1024], log[1024];
  uint64_t seed, rng;
  int players;
  uint32_t kills_wanted;
  bool keep;
  bool pg_faults;             /* --pg-faults: fail PostgreSQL, not the server */
  uint32_t pg_kills, pg_restarts, pg_pauses;
  ow_content *content;
  uint16_t t_wood, t_stone, t_plank, t_block, t_tree, t_rock, t_wall, t_door, t_chest, t_inventory,
      t_avatar;
  ow_client_ctx *ctx;
  player ps[MAX_PLAYERS];
  ow_test_server srv;
  bool up;           /* the server runs: players may (re)connect */
  bool expect_close; /* a stop is under way: closes and BYE shutdown are expected */
  bool quiesce;      /* no new actions */
  uint32_t run;      /* server runs, from 1 */
  uint32_t kills;
  uint64_t checked_frame; /* the store's frame at the last offline check, 0 if none since */
  /* figures */
  uint64_t issued, confirmed, resent_replayed, probes_sent, probes_ok, refused, checks;
  uint64_t connect_failures, logged_actions, seen_checked, max_frame;
  uint64_t lost_durable, duplicated, problems;
} g;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...) {
  if (g.problems++ < PROBLEMS_SHOWN) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chaos: problem (run %u, after %u kills): ", g.run, g.kills);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
  }
}

static void fatal(const char *what) {
  fprintf(stderr, "chaos: FATAL: %s (seed %" PRIu64 ", files kept in %s)\n", what, g.seed, g.dir);
  if (g.srv.pid > 0) ow_test_server_stop(&g.srv, SIGKILL);
  exit(1);
}

static uint32_t below(uint32_t n) { return ow_test_below(&g.rng, n); }
static float frand(void) { return (float)(ow_test_rand(&g.rng) >> 40) / (float)(1u << 24); }

static act_rec *act_of(player *p, uint64_t seq) {
  return seq >= 1 && seq <= p->acts.len ? &p->acts.v[seq - 1] : NULL;
}

static void yaw_quat(float yaw, float q[4]) {
  q[0] = 0;
  q[1] = sinf(yaw / 2);
  q[2] = 0;
  q[3] = cosf(yaw / 2);
}

/* ---- observations ---------------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

static uint64_t prop_hash(uint16_t key, uint8_t type, const void *v, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  h = fnv(h, &key, sizeof key);
  h = fnv(h, &type, sizeof type);
  return ow_hash64(fnv(h, v, n));
}

static void obs_from_wire(const ow_wire_entity *e, obs *o) {
  memset(o, 0, sizeof *o);
  o->id = e->id;
  o->owner = e->owner;
  o->parent = e->parent;
  o->type = e->type;
  memcpy(o->pos, e->pos, sizeof o->pos);
  o->rot = e->rot;
  memcpy(o->scale, e->scale, sizeof o->scale);
  o->hp = e->hp;
  o->count = e->count;
  for (uint8_t i = 0; i < e->nprops; i++) {
    uint16_t k = e->props[i].key;
    uint8_t t = e->props[i].type;
    if (t == OW_PROP_STRING)
      o->props += prop_hash(k, t, e->props[i].v.s.p, e->props[i].v.s.n);
    else
      o->props += prop_hash(k, t, &e->props[i].v.i, 8);
    if (k == g.content->key_open && t == OW_PROP_INT) {
      o->has_open = true;
      o->open = e->props[i].v.i;
    }
  }
}

static void obs_from_world(const ow_entity *e, obs *o) {
  memset(o, 0, sizeof *o);
  o->id = e->id;
  o->owner = e->owner;
  o->parent = e->parent;
  o->type = e->type;
  for (int i = 0; i < 3; i++) {
    o->pos[i] = ow_quant_mm(e->xf.pos[i]);
    o->scale[i] = e->xf.scale[i];
  }
  o->rot = ow_quat_pack(e->xf.rot);
  o->hp = e->hp;
  o->count = e->count;
  for (uint16_t i = 0; e->props && i < e->props->n; i++) {
    const ow_prop *pr = &e->props->p[i];
    if (pr->type == OW_PROP_STRING)
      o->props += prop_hash(pr->key, pr->type, pr->v.s, strlen(pr->v.s));
    else
      o->props += prop_hash(pr->key, pr->type, &pr->v.i, 8);
    if (pr->key == g.content->key_open && pr->type == OW_PROP_INT) {
      o->has_open = true;
      o->open = pr->v.i;
    }
  }
}

static bool obs_eq(const obs *a, const obs *b) {
  return a->id == b->id && a->owner == b->owner && a->parent == b->parent && a->type == b->type &&
         !memcmp(a->pos, b->pos, sizeof a->pos) && a->rot == b->rot &&
         !memcmp(a->scale, b->scale, sizeof a->scale) && a->hp == b->hp && a->count == b->count &&
         a->props == b->props;
}

static void table_visit(void *ud, const ow_wire_entity *e) {
  obs o;
  obs_from_wire(e, &o);
  OW_VEC_PUSH(*(obsvec *)ud, o);
}

static void world_visit(void *ud, const ow_entity *e) {
  obs o;
  obs_from_world(e, &o);
  OW_VEC_PUSH(*(obsvec *)ud, o);
}

static const obs *obs_find(const obsvec *v, ow_id id) {
  for (size_t i = 0; i < v->len; i++)
    if (v->v[i].id == id) return &v->v[i];
  return NULL;
}

/* ---- the model ------------------------------------------------------------------------------- */

static void model_init(pmodel *m, const player *p) {
  memset(m, 0, sizeof *m);
  memcpy(m->pos, g.content->spawn, sizeof m->pos);
  m->rot[3] = 1;
  mcont inv = {.id = p->inventory};
  OW_VEC_PUSH(m->conts, inv);
}

static void model_free(pmodel *m) {
  OW_VEC_FREE(m->conts);
  OW_VEC_FREE(m->things);
}

static mcont *model_cont(pmodel *m, ow_id id) {
  for (size_t i = 0; i < m->conts.len; i++)
    if (m->conts.v[i].id == id) return &m->conts.v[i];
  return NULL;
}

static mthing *model_thing(pmodel *m, ow_id id) {
  for (size_t i = 0; i < m->things.len; i++)
    if (m->things.v[i].id == id) return &m->things.v[i];
  return NULL;
}

static void units_add(const player *p, uint64_t seq, mcont *c, uint16_t item, int64_t n) {
  c->units[item] += n;
  if (c->units[item] < 0)
    problem("player %d seq %" PRIu64 ": container %" PRIu64 " would hold %" PRId64 " %s", p->idx,
            seq, c->id, c->units[item], g.content->types[item].name);
}

/* Applies one action's definitive result to the model of its player's part. Results the rules
 * could not have produced are reported. */
static void model_apply(const player *p, pmodel *m, uint64_t seq, const act_rec *r,
                        const ow_result *res) {
  const ow_action *a = &r->a;
  if (res->code) return;
  const ow_content *ct = g.content;
  mcont *inv = &m->conts.v[0];
  switch (a->type) {
  case OW_ACT_MOVE:
    memcpy(m->pos, a->xf.pos, sizeof m->pos);
    memcpy(m->rot, a->xf.rot, sizeof m->rot);
    break;
  case OW_ACT_HARVEST: {
    if (a->target != p->tree && a->target != p->rock) {
      problem("player %d seq %" PRIu64 ": harvest of a node it never targets", p->idx, seq);
      break;
    }
    const ow_type *t = &ct->types[a->target == p->tree ? g.t_tree : g.t_rock];
    if (res->count != t->yield_count)
      problem("player %d seq %" PRIu64 ": harvest yielded %u, the rule says %u", p->idx, seq,
              res->count, t->yield_count);
    units_add(p, seq, inv, t->yield_item, res->count);
    if (a->target == p->tree)
      m->tree_hits++;
    else
      m->rock_hits++;
    break;
  }
  case OW_ACT_CRAFT: {
    const ow_recipe *rc = &ct->recipes[a->kind];
    for (uint16_t i = 0; i < rc->nin; i++)
      units_add(p, seq, inv, rc->in[i].item, -(int64_t)rc->in[i].count);
    for (uint16_t i = 0; i < rc->nout; i++)
      units_add(p, seq, inv, rc->out[i].item, rc->out[i].count);
    if (res->count != rc->out[0].count)
      problem("player %d seq %" PRIu64 ": craft made %u, the recipe says %u", p->idx, seq,
              res->count, rc->out[0].count);
    break;
  }
  case OW_ACT_BUILD: {
    const ow_type *t = &ct->types[a->kind];
    for (uint16_t i = 0; i < t->ncost; i++)
      units_add(p, seq, inv, t->cost[i].item, -(int64_t)t->cost[i].count);
    mthing th = {.id = res->entity, .type = a->kind};
    memcpy(th.pos, a->xf.pos, sizeof th.pos);
    memcpy(th.rot, a->xf.rot, sizeof th.rot);
    if (model_thing(m, res->entity) || model_cont(m, res->entity))
      problem("player %d seq %" PRIu64 ": build returned id %" PRIu64 " that already exists",
              p->idx, seq, res->entity);
    OW_VEC_PUSH(m->things, th);
    if (t->slots) {
      mcont c = {.id = res->entity};
      OW_VEC_PUSH(m->conts, c);
    }
    break;
  }
  case OW_ACT_TRANSFER: {
    mcont *src = model_cont(m, r->src), *dst = model_cont(m, a->dest);
    if (!src || !dst) {
      problem("player %d seq %" PRIu64 ": transfer between containers the model does not have "
              "(%" PRIu64 " -> %" PRIu64 ")",
              p->idx, seq, r->src, a->dest);
      break;
    }
    if (res->count != a->count)
      problem("player %d seq %" PRIu64 ": transfer moved %u of %u", p->idx, seq, res->count,
              a->count);
    units_add(p, seq, src, r->item, -(int64_t)res->count);
    units_add(p, seq, dst, r->item, res->count);
    break;
  }
  case OW_ACT_INTERACT: {
    mthing *th = model_thing(m, a->target);
    if (!th || !ct->types[th->type].door)
      problem("player %d seq %" PRIu64 ": interact with %" PRIu64 ", not a door of its own", p->idx,
              seq, a->target);
    else if (res->count != (th->open ? 0u : 1u))
      problem("player %d seq %" PRIu64 ": door %" PRIu64 " went from %" PRId64 " to %u", p->idx,
              seq, a->target, th->open, res->count);
    else
      th->open = res->count;
    break;
  }
  case OW_ACT_DESTROY: {
    mthing *th = model_thing(m, a->target);
    if (!th) {
      problem("player %d seq %" PRIu64 ": destroyed %" PRIu64 ", not one of its structures", p->idx,
              seq, a->target);
      break;
    }
    *th = m->things.v[--m->things.len];
    mcont *c = model_cont(m, a->target);
    if (c) {
      for (int t = 0; t < MAX_TYPES; t++)
        if (c->units[t])
          problem("player %d seq %" PRIu64 ": destroyed chest %" PRIu64 " still held %" PRId64
                  " %s",
                  p->idx, seq, a->target, c->units[t], ct->types[t].name);
      *c = m->conts.v[--m->conts.len];
    }
    break;
  }
  default: problem("player %d seq %" PRIu64 ": unknown action type %u", p->idx, seq, a->type);
  }
}

/* Builds the model of p's part from results: results[seq - 1] when present[seq - 1]. */
static void model_build(const player *p, pmodel *m, const ow_result *results, const bool *present) {
  model_init(m, p);
  for (size_t i = 0; i < p->acts.len; i++)
    if (present[i]) model_apply(p, m, i + 1, &p->acts.v[i], &results[i]);
}

/* Builds the model from the confirmed results. */
static void model_confirmed(const player *p, pmodel *m) {
  size_t n = p->acts.len ? p->acts.len : 1;
  ow_result *res = ow_calloc(n, sizeof *res);
  bool *present = ow_calloc(n, sizeof *present);
  for (size_t i = 0; i < p->acts.len; i++) {
    present[i] = p->acts.v[i].confirmed;
    res[i] = p->acts.v[i].res;
  }
  model_build(p, m, res, present);
  ow_free(res);
  ow_free(present);
}

static bool same_mm(const int32_t mm[3], const float pos[3]) {
  for (int i = 0; i < 3; i++)
    if (mm[i] != ow_quant_mm(pos[i])) return false;
  return true;
}

/* Compares p's part of a set of observations (a client's table or the store) with the model. */
static void compare_part(const player *p, const pmodel *m, const obsvec *v, const char *where) {
  const ow_content *ct = g.content;
  const obs *av = obs_find(v, p->avatar);
  if (!av) {
    problem("%s: player %d's avatar %" PRIu64 " is missing", where, p->idx, p->avatar);
  } else if (av->owner != p->account || av->parent || av->type != g.t_avatar ||
             !same_mm(av->pos, m->pos) || av->rot != ow_quat_pack(m->rot)) {
    problem("%s: player %d's avatar is at (%d,%d,%d) mm rot %08x, the model says (%d,%d,%d) "
            "rot %08x",
            where, p->idx, av->pos[0], av->pos[1], av->pos[2], av->rot, ow_quant_mm(m->pos[0]),
            ow_quant_mm(m->pos[1]), ow_quant_mm(m->pos[2]), ow_quat_pack(m->rot));
  }
  const obs *inv = obs_find(v, p->inventory);
  if (!inv || inv->owner != p->account || inv->parent != p->avatar || inv->type != g.t_inventory)
    problem("%s: player %d's inventory %" PRIu64 " is missing or not held by its avatar", where,
            p->idx, p->inventory);
  const ow_id nodes[2] = {p->tree, p->rock};
  const uint64_t hits[2] = {m->tree_hits, m->rock_hits};
  for (int k = 0; k < 2; k++) {
    const obs *n = obs_find(v, nodes[k]);
    const ow_type *t = n ? &ct->types[n->type] : NULL;
    if (!n || (int64_t)n->hp != (int64_t)t->hp - (int64_t)hits[k] * t->harvest_damage)
      problem("%s: player %d's %s %" PRIu64 " has hp %d after %" PRIu64 " harvests", where, p->idx,
              k ? "rock" : "tree", nodes[k], n ? n->hp : -1, hits[k]);
  }
  /* Item totals per container, built structures, and nothing else owned by the player. */
  size_t nc = m->conts.len;
  int64_t(*units)[MAX_TYPES] = ow_calloc(nc ? nc : 1, sizeof *units);
  uint32_t *stacks = ow_calloc(nc ? nc : 1, sizeof *stacks);
  bool *matched = ow_calloc(m->things.len ? m->things.len : 1, sizeof *matched);
  for (size_t i = 0; i < v->len; i++) {
    const obs *o = &v->v[i];
    if (o->owner != p->account || o->id == p->avatar || o->id == p->inventory) continue;
    const ow_type *t = &ct->types[o->type];
    if (t->kind == OW_KIND_ITEM) {
      size_t k = 0;
      while (k < nc && m->conts.v[k].id != o->parent) k++;
      if (k == nc) {
        problem("%s: player %d's stack %" PRIu64 " (%u %s) is in %" PRIu64 ", not one of its "
                "containers",
                where, p->idx, o->id, o->count, t->name, o->parent);
        continue;
      }
      if (o->count < 1 || o->count > t->stack_max)
        problem("%s: stack %" PRIu64 " holds %u %s (stack_max %u)", where, o->id, o->count, t->name,
                t->stack_max);
      units[k][o->type] += o->count;
      stacks[k]++;
      continue;
    }
    size_t k = 0;
    while (k < m->things.len && m->things.v[k].id != o->id) k++;
    if (k == m->things.len) {
      problem("%s: player %d owns %s %" PRIu64 " that the model does not have", where, p->idx,
              t->name, o->id);
      continue;
    }
    const mthing *th = &m->things.v[k];
    matched[k] = true;
    if (o->type != th->type || o->parent || !same_mm(o->pos, th->pos) ||
        o->rot != ow_quat_pack(th->rot) || o->hp != t->hp || (t->door && o->open != th->open))
      problem("%s: player %d's %s %" PRIu64 " differs from the model (type %u/%u, pos %d,%d,%d "
              "mm, hp %d, open %" PRId64 "/%" PRId64 ")",
              where, p->idx, t->name, o->id, o->type, th->type, o->pos[0], o->pos[1], o->pos[2],
              o->hp, o->open, th->open);
  }
  for (size_t k = 0; k < m->things.len; k++)
    if (!matched[k])
      problem("%s: player %d's %s %" PRIu64 " is missing", where, p->idx,
              ct->types[m->things.v[k].type].name, m->things.v[k].id);
  for (size_t k = 0; k < nc; k++) {
    const mcont *c = &m->conts.v[k];
    uint16_t ctype = k == 0 ? g.t_inventory : g.t_chest;
    if (stacks[k] > ct->types[ctype].slots)
      problem("%s: container %" PRIu64 " holds %u stacks in %u slots", where, c->id, stacks[k],
              ct->types[ctype].slots);
    for (int t = 0; t < MAX_TYPES && t < ct->ntypes; t++)
      if (units[k][t] != c->units[t])
        problem("%s: player %d's container %" PRIu64 " holds %" PRId64 " %s, the model says "
                "%" PRId64,
                where, p->idx, c->id, units[k][t], ct->types[t].name, c->units[t]);
  }
  ow_free(units);
  ow_free(stacks);
  ow_free(matched);
}

/* ---- client callbacks ------------------------------------------------------------------------ */

static void send_probes(player *p) {
  /* Confirmed sequence numbers near the newest issued one are inside the server's replay window
   * whatever the server applied since (it never applied more than was issued). */
  uint64_t lo = p->acts.len > PROBE_SPAN ? p->acts.len - PROBE_SPAN : 1;
  for (int k = 0; k < PROBES; k++) {
    uint64_t seq = lo + below((uint32_t)(p->acts.len - lo + 1));
    act_rec *r = act_of(p, seq);
    if (!r || !r->confirmed) continue;
    int rc = ow_client__action_at(p->c, seq, &r->a);
    if (rc < 0) {
      problem("player %d: could not send a probe: %s", p->idx, ow_err_name(rc));
      continue;
    }
    probe pr = {(uint32_t)rc, seq};
    OW_VEC_PUSH(p->probes, pr);
    g.probes_sent++;
  }
}

static void cb_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)req, (void)w;
  player *p = ud;
  if (p->have_session) {
    ow_client_resume(c, p->token);
    p->phase = PH_RESUME;
  } else {
    ow_client_register(c, p->name, PASSWORD);
    p->phase = PH_REGISTER;
  }
}

static void cb_ok(ow_client *c, void *ud, uint32_t req) {
  (void)req;
  player *p = ud;
  if (p->phase == PH_REGISTER) {
    ow_client_login(c, p->name, PASSWORD);
    p->phase = PH_LOGIN;
  }
}

static void cb_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)req;
  player *p = ud;
  if (p->have_session) {
    if (!s->resumed || s->account != p->account || s->avatar != p->avatar)
      problem("player %d: RESUME answered another session (resumed %d account %" PRIu64 ")", p->idx,
              s->resumed, s->account);
    if (s->last_seq < p->max_conf_seq)
      problem("player %d: resumed with last_seq %" PRIu64 " but seq %" PRIu64 " was confirmed",
              p->idx, s->last_seq, p->max_conf_seq);
    if (s->last_seq > p->acts.len)
      problem("player %d: resumed with last_seq %" PRIu64 ", only %zu were sent", p->idx,
              s->last_seq, p->acts.len);
  } else {
    memcpy(p->token, s->token, OW_TOKEN_LEN);
    p->account = s->account;
    p->avatar = s->avatar;
    p->have_session = true;
    if (s->last_seq)
      problem("player %d: a fresh session starts at seq %" PRIu64, p->idx, s->last_seq);
  }
  ow_client_join(c);
  p->phase = PH_JOIN;
}

static void cb_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)c, (void)req, (void)w;
  player *p = ud;
  p->phase = PH_IN;
  send_probes(p);
}

static void cb_applied(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                       uint64_t frame, bool replayed) {
  (void)c;
  player *p = ud;
  for (size_t i = 0; i < p->probes.len; i++) {
    if (p->probes.v[i].req != req) continue;
    act_rec *a = act_of(p, p->probes.v[i].seq);
    if (seq != p->probes.v[i].seq || !replayed || !ow_test_result_eq(r, &a->res) ||
        frame != a->frame)
      problem("player %d: confirmed seq %" PRIu64 " re-sent: APPLIED seq %" PRIu64 " replayed=%d "
              "code %d entity %" PRIu64 " count %u frame %" PRIu64 "; confirmed code %d entity "
              "%" PRIu64 " count %u frame %" PRIu64,
              p->idx, p->probes.v[i].seq, seq, replayed, r->code, r->entity, r->count, frame,
              a->res.code, a->res.entity, a->res.count, a->frame);
    else
      g.probes_ok++;
    p->probes.v[i] = p->probes.v[--p->probes.len];
    return;
  }
  act_rec *a = act_of(p, seq);
  if (!a) {
    problem("player %d: APPLIED for seq %" PRIu64 " that was never sent", p->idx, seq);
    return;
  }
  if (a->confirmed) {
    /* Only probes re-send confirmed actions; anything else must still be the original result. */
    if (!replayed || !ow_test_result_eq(r, &a->res) || frame != a->frame) {
      problem("player %d: confirmed seq %" PRIu64 " APPLIED again (replayed=%d code %d frame "
              "%" PRIu64 ")",
              p->idx, seq, replayed, r->code, frame);
      if (!replayed) g.duplicated++;
    }
    return;
  }
  if (replayed) {
    /* The server remembers only an application that became durable, and the client re-sends
     * until it learns one did: so the latest APPLIED it got, in whatever run, is that one. */
    g.resent_replayed++;
    if (a->applied && (!ow_test_result_eq(r, &a->ar) || frame != a->aframe))
      problem("player %d: seq %" PRIu64 " replayed with code %d entity %" PRIu64 " frame %" PRIu64
              ", it was last applied with code %d entity %" PRIu64 " frame %" PRIu64 " (run %u)",
              p->idx, seq, r->code, r->entity, frame, a->ar.code, a->ar.entity, a->aframe, a->arun);
  }
  a->applied = true;
  a->arun = g.run;
  a->ar = *r;
  a->aframe = frame;
}

static void cb_durable(ow_client *c, void *ud, uint64_t frame, int32_t status, const uint64_t *seqs,
                       size_t n) {
  (void)c;
  player *p = ud;
  if (status) {
    problem("player %d: DURABLE frame %" PRIu64 " with status %d", p->idx, frame, status);
    return;
  }
  if (frame > p->max_durable_frame) p->max_durable_frame = frame;
  for (size_t i = 0; i < n; i++) {
    act_rec *a = act_of(p, seqs[i]);
    if (!a) {
      problem("player %d: DURABLE for seq %" PRIu64 " that was never sent", p->idx, seqs[i]);
      continue;
    }
    if (a->confirmed) { /* a probe's confirmation */
      if (a->frame != frame)
        problem("player %d: seq %" PRIu64 " confirmed in frame %" PRIu64 ", again in %" PRIu64,
                p->idx, seqs[i], a->frame, frame);
      continue;
    }
    if (!a->applied || a->arun != g.run || a->aframe != frame) {
      problem("player %d: DURABLE frame %" PRIu64 " for seq %" PRIu64 " applied in frame "
              "%" PRIu64 " of run %u",
              p->idx, frame, seqs[i], a->aframe, a->arun);
      continue;
    }
    a->confirmed = true;
    a->res = a->ar;
    a->frame = frame;
    g.confirmed++;
    if (seqs[i] > p->max_conf_seq) p->max_conf_seq = seqs[i];
  }
}

static void cb_snapshot(ow_client *c, void *ud, uint32_t id, uint32_t base, uint64_t frame) {
  (void)id, (void)base;
  player *p = ud;
  if (frame > p->max_snapshot_frame) p->max_snapshot_frame = frame;
  p->seen.len = 0;
  ow_client_entity_each(c, table_visit, &p->seen);
  p->seen_frame = frame;
  p->seen_run = g.run;
}

static void cb_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c;
  player *p = ud;
  if (req == 0 && code == -ECONNREFUSED && !g.up) {
    g.connect_failures++;
    return;
  }
  for (size_t i = 0; req && i < p->probes.len; i++)
    if (p->probes.v[i].req == req) {
      problem("player %d: probe of seq %" PRIu64 " got ERROR %s: %s", p->idx, p->probes.v[i].seq,
              ow_err_name(code), text);
      p->probes.v[i] = p->probes.v[--p->probes.len];
      return;
    }
  for (size_t i = p->acts.len; req && i-- > 0;)
    if (p->acts.v[i].req == req && !p->acts.v[i].confirmed) {
      if (code == OW_E_RATE) {
        p->acts.v[i].refused = true;
        g.refused++;
      } else {
        problem("player %d: seq %zu got ERROR %s: %s", p->idx, i + 1, ow_err_name(code), text);
      }
      return;
    }
  if (code == -ECONNREFUSED) {
    g.connect_failures++; /* the server was killed while this connection was being opened */
    return;
  }
  problem("player %d: ERROR %s (req %u, phase %d): %s", p->idx, ow_err_name(code), req, p->phase,
          text);
}

static void cb_bye(ow_client *c, void *ud, uint16_t reason, const char *text) {
  (void)c;
  player *p = ud;
  if (!(reason == OW_BYE_SHUTDOWN && g.expect_close))
    problem("player %d: SERVER_BYE %u: %s", p->idx, reason, text);
}

static void cb_close(ow_client *c, void *ud) {
  (void)c;
  player *p = ud;
  p->phase = PH_DOWN;
  p->probes.len = 0; /* their answers died with the connection */
  if (!g.expect_close) {
    problem("player %d: connection closed while the server was up", p->idx);
    p->reconnect_ns = ow_now_ns() + 50000000ull;
  }
}

/* ---- the workload ---------------------------------------------------------------------------- */

/* What the player sees of its own part in its table (confirmed reads). */
typedef struct own_view {
  const player *p;
  const ow_wire_entity *stacks[96];
  int nstacks, inv_stacks;
  uint32_t inv_units[MAX_TYPES];
  ow_id containers[1 + MAX_CHESTS + 8];
  int ncontainers;
  const ow_wire_entity *things[64];
  int nthings, nchests, ndoors;
} own_view;

static void own_visit(void *ud, const ow_wire_entity *e) {
  own_view *v = ud;
  if (e->owner != v->p->account || e->id == v->p->avatar || e->id == v->p->inventory) return;
  if (g.content->types[e->type].kind == OW_KIND_ITEM) {
    if (v->nstacks < 96) v->stacks[v->nstacks++] = e;
    if (e->parent == v->p->inventory) {
      v->inv_stacks++;
      v->inv_units[e->type] += e->count;
    }
  } else if (v->nthings < 64) {
    v->things[v->nthings++] = e;
    v->ndoors += e->type == g.t_door;
    if (e->type == g.t_chest) {
      v->nchests++;
      if (v->ncontainers < (int)(sizeof v->containers / sizeof v->containers[0]))
        v->containers[v->ncontainers++] = e->id;
    }
  }
}

static bool has_stacks(const own_view *v, ow_id container) {
  for (int i = 0; i < v->nstacks; i++)
    if (v->stacks[i]->parent == container) return true;
  return false;
}

static void issue(player *p, const ow_action *a, ow_id src, uint16_t item) {
  uint64_t seq;
  int rc = ow_client_action(p->c, a, &seq);
  if (rc < 0) {
    problem("player %d: could not issue an action: %s", p->idx, ow_err_name(rc));
    return;
  }
  if (seq != p->acts.len + 1) fatal("the client library numbered an action out of order");
  act_rec r = {.a = *a, .req = (uint32_t)rc, .src = src, .item = item};
  OW_VEC_PUSH(p->acts, r);
  g.issued++;
}

static void xf_at(ow_action *a, float x, float z, float yaw) {
  a->xf.pos[0] = x;
  a->xf.pos[1] = 0;
  a->xf.pos[2] = z;
  yaw_quat(yaw, a->xf.rot);
  a->xf.scale[0] = a->xf.scale[1] = a->xf.scale[2] = 1;
}

/* A player's next action, drawn with weights from what its table shows, so that most actions
 * succeed and the inventory keeps turning over: harvest while there is room, craft what can be
 * crafted, build what can be paid for, tear down when too much stands, shuffle items between
 * inventory and chests. The table lags behind APPLIED (it shows durable state), so some actions
 * fail (stale ids, not enough, full): failures are logged, replayed and checked like the rest. */
enum {
  W_HARVEST,
  W_PLANKS,
  W_BLOCKS,
  W_CHEST,
  W_WALL,
  W_DOOR,
  W_TRANSFER,
  W_INTERACT,
  W_DESTROY,
  W_MOVE,
  W_N
};

static void next_action(player *p) {
  own_view v = {.p = p, .containers = {p->inventory}, .ncontainers = 1};
  ow_client_entity_each(p->c, own_visit, &v);
  const ow_content *ct = g.content;
  const uint16_t slots = ct->types[g.t_inventory].slots;
  uint32_t plank = v.inv_units[g.t_plank], block = v.inv_units[g.t_block];
  uint32_t w[W_N] = {
      [W_HARVEST] = v.inv_stacks < slots - 1 ? 30 : 2,
      [W_PLANKS] = v.inv_units[g.t_wood] >= 2 ? 14 : 1,
      [W_BLOCKS] = v.inv_units[g.t_stone] >= 3 ? 8 : 1,
      [W_CHEST] = v.nchests < MAX_CHESTS && plank >= 6 ? 8 : 0,
      [W_WALL] = plank >= 4 ? (v.nthings < MAX_THINGS ? 8 : 1) : 1,
      [W_DOOR] = plank >= 2 && block >= 1 ? (v.nthings < MAX_THINGS ? 8 : 1) : 0,
      [W_TRANSFER] = v.nstacks && v.ncontainers > 1 ? 14 : 0,
      [W_INTERACT] = v.ndoors ? 6 : 0,
      [W_DESTROY] = v.nthings ? (v.nthings >= MAX_THINGS ? 16 : 3) : 0,
      [W_MOVE] = 4,
  };
  uint32_t sum = 0;
  for (int k = 0; k < W_N; k++) sum += w[k];
  uint32_t r = below(sum);
  int pick = 0;
  while (r >= w[pick]) r -= w[pick++];

  ow_action a = {0};
  xf_at(&a, 0, 0, 0);
  switch (pick) {
  case W_HARVEST:
    a.type = OW_ACT_HARVEST;
    a.target = below(3) ? p->tree : p->rock;
    break;
  case W_PLANKS:
  case W_BLOCKS:
    a.type = OW_ACT_CRAFT;
    a.kind = (uint16_t)ow_content_recipe_id(ct, pick == W_PLANKS ? "planks" : "blocks");
    break;
  case W_CHEST:
  case W_WALL:
  case W_DOOR: {
    /* Within reach of anywhere the avatar walks around its home. */
    float ang = frand() * 6.2831853f, rad = 2 + frand() * 2.5f;
    a.type = OW_ACT_BUILD;
    a.kind = pick == W_CHEST ? g.t_chest : pick == W_WALL ? g.t_wall : g.t_door;
    xf_at(&a, p->home[0] + rad * cosf(ang), p->home[2] + rad * sinf(ang), ang);
    break;
  }
  case W_TRANSFER: {
    /* Part of a stack into another of its containers; now and then more than the stack holds. */
    const ow_wire_entity *s = v.stacks[below((uint32_t)v.nstacks)];
    ow_id dest = s->parent;
    while (dest == s->parent) dest = v.containers[below((uint32_t)v.ncontainers)];
    a.type = OW_ACT_TRANSFER;
    a.target = s->id;
    a.dest = dest;
    a.count = below(20) ? 1 + below(s->count) : s->count + 1;
    issue(p, &a, s->parent, s->type);
    return;
  }
  case W_INTERACT:
  case W_DESTROY: {
    const ow_wire_entity *th = v.things[below((uint32_t)v.nthings)];
    for (int k = 0; k < 4 && pick == W_INTERACT && th->type != g.t_door; k++)
      th = v.things[below((uint32_t)v.nthings)];
    for (int k = 0; k < 4 && pick == W_DESTROY && has_stacks(&v, th->id); k++)
      th = v.things[below((uint32_t)v.nthings)];
    a.type = pick == W_INTERACT ? OW_ACT_INTERACT : OW_ACT_DESTROY;
    a.target = th->id;
    break;
  }
  default:
    a.type = OW_ACT_MOVE;
    a.target = p->avatar;
    xf_at(&a, p->home[0] + (frand() - 0.5f) * 2.4f, p->home[2] + (frand() - 0.5f) * 2.4f,
          frand() * 6.2831853f);
    break;
  }
  issue(p, &a, 0, 0);
}

/* ---- the server ------------------------------------------------------------------------------ */

/* One round: network, reconnects and (unless quiescing) the workload. */
static void step(void) {
  uint64_t now = ow_now_ns();
  for (int i = 0; i < g.players; i++) {
    player *p = &g.ps[i];
    if (p->phase == PH_DOWN && g.up && !g.expect_close && now >= p->reconnect_ns &&
        !ow_client_connected(p->c)) {
      if (ow_client_connect(p->c, "127.0.0.1", g.srv.port, NULL) == 0 &&
          ow_client_hello(p->c, "chaos") > 0)
        p->phase = PH_HELLO;
      else
        p->reconnect_ns = now + 20000000ull;
    }
    if (p->phase != PH_IN || g.quiesce || !p->inventory || now < p->next_action_ns) continue;
    if (ow_client_unconfirmed(p->c) >= PIPELINE) continue;
    next_action(p);
    p->next_action_ns = now + (1 + below(6)) * 1000000ull;
  }
  ow_client_ctx_service(g.ctx, 1);
}

static bool pump_until(bool (*done)(void), uint32_t timeout_ms, const char *what) {
  uint64_t end = ow_now_ns() + (uint64_t)timeout_ms * 1000000ull;
  while (!done()) {
    if (ow_now_ns() > end) {
      problem("timed out waiting: %s", what);
      return false;
    }
    step();
  }
  return true;
}

static bool all_down(void) {
  for (int i = 0; i < g.players; i++)
    if (ow_client_connected(g.ps[i].c)) return false;
  return true;
}

static void start_server(void) {
  g.run++;
  static const char *ticks[] = {"30", "60", "120"};
  const char *eager = below(4) ? "1" : "0"; /* both commit modes: eager and at ticks only */
  char content[1024];
  snprintf(content, sizeof content, "%s", ow_test_source_path(CONTENT));
  const char *args[] = {"--content",
                        content,
                        "--region_size",
                        REGION_SIZE,
                        "--frame_log_keep",
                        "0",
                        "--replay_window",
                        "64",
                        "--action_rate",
                        "100000",
                        "--action_burst",
                        "100000",
                        "--pwhash_ops",
                        "1",
                        "--pwhash_mem_kb",
                        "64",
                        /* every player is 127.0.0.1: no per-address limits */
                        "--config",
                        ow_test_source_path("bench/local.conf"),
                        "--shutdown_notice_s",
                        "0",
                        "--idle_s",
                        "3600",
                        "--store_map_mb",
                        "64",
                        "--checkpoint_s",
                        "0.5",
                        "--tick_hz",
                        ticks[below(3)],
                        "--eager_commit",
                        eager,
                        NULL};
  if (ow_test_server_start(&g.srv, g.bin, g.data, g.log, args, 60000)) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "tail -n 20 %s >&2", g.log);
    if (system(cmd)) {
    }
    fatal("the server did not start");
  }
  /* The server's own recovery must agree with the store the harness checked, and must not be
   * behind anything a client saw. */
  if (g.checked_frame && g.srv.recovered_frame != g.checked_frame)
    problem("the server recovered frame %" PRIu64 ", the store holds frame %" PRIu64,
            g.srv.recovered_frame, g.checked_frame);
  for (int i = 0; i < g.players && g.run > 1; i++) {
    const player *p = &g.ps[i];
    if (g.srv.recovered_frame < p->max_durable_frame ||
        g.srv.recovered_frame < p->max_snapshot_frame)
      problem("the server recovered frame %" PRIu64 ", player %d saw DURABLE %" PRIu64
              " and SNAPSHOT %" PRIu64,
              g.srv.recovered_frame, i, p->max_durable_frame, p->max_snapshot_frame);
  }
  g.checked_frame = 0;
  g.up = true;
  g.expect_close = false;
  uint64_t now = ow_now_ns();
  for (int i = 0; i < g.players; i++) g.ps[i].reconnect_ns = now + below(60) * 1000000ull;
}

static void kill_server(void) {
  g.expect_close = true;
  g.up = false;
  int st = ow_test_server_stop(&g.srv, SIGKILL);
  if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL))
    problem("the server had already exited (status %d) when it was to be killed", st);
  g.kills++;
  pump_until(all_down, 20000, "every connection closed after the kill");
}

static void stop_server_clean(void) {
  g.expect_close = true;
  kill(g.srv.pid, SIGTERM);
  pump_until(all_down, 30000, "every connection closed after SIGTERM");
  g.up = false;
  int st = ow_test_server_stop(&g.srv, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    problem("the server did not exit 0 after SIGTERM (status %d); see %s", st, g.log);
}

/* ---- the store, read offline ----------------------------------------------------------------- */

typedef struct lact {
  uint64_t session, seq, frame;
  ow_action a;
  ow_result r;
} lact;

typedef struct lframe {
  uint64_t frame;
  size_t c0, nc; /* ids changed, in the log's `changed` vector */
} lframe;

typedef struct flog {
  OW_VEC(lact) acts;
  OW_VEC(lframe) frames;
  OW_VEC(ow_id) changed;
} flog;

/* Frame records as docs/storage.md describes them: u64 frame, u32 n, n x (u64 session, u64 seq,
 * action, i32 code, u64 entity, u32 count), u32 nchanged, nchanged x u64 id. Read here rather than
 * with ow_zone_frame_log_each because the check needs the changed ids too. */
static int scan_frame(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  flog *l = ud;
  ow_reader r;
  ow_reader_init(&r, v, vl);
  if (ow_rd_u8(&r) != 2) return OW_E_CORRUPT; /* frame record version 2 (docs/storage.md) */
  lframe f = {.frame = ow_rd_u64(&r)};
  uint32_t n = ow_rd_u32(&r);
  if (kl != 9 || f.frame != ow_be64_read(k + 1)) return OW_E_CORRUPT;
  for (uint32_t i = 0; i < n && !r.err; i++) {
    lact a = {.session = ow_rd_u64(&r), .seq = ow_rd_u64(&r), .frame = f.frame};
    size_t len = ow_rd_u16(&r);
    if (ow_action_decode(&r, len, &a.a)) return OW_E_CORRUPT;
    a.r.code = ow_rd_i32(&r);
    a.r.entity = ow_rd_u64(&r);
    a.r.count = ow_rd_u32(&r);
    OW_VEC_PUSH(l->acts, a);
  }
  uint32_t nc = ow_rd_u32(&r);
  f.c0 = l->changed.len;
  for (uint32_t i = 0; i < nc && !r.err; i++) OW_VEC_PUSH(l->changed, ow_rd_u64(&r));
  f.nc = nc;
  if (r.err || r.left) return OW_E_CORRUPT;
  OW_VEC_PUSH(l->frames, f);
  return 0;
}

static int player_of_account(ow_id account) {
  for (int i = 0; i < g.players; i++)
    if (g.ps[i].account == account) return i;
  return -1;
}

/* Opens the store the server left behind and checks it (see the top of the file). final: the
 * server was stopped cleanly after every action was confirmed. */
static void check_store(bool final) {
  g.checks++;
  ow_store_options so = {.path = g.data, .map_size = 64u << 20};
  ow_store *store;
  char *uri = ow_test_store_uri(g.data), err[512] = "";
  int rc = uri ? ow_store_open_uri(&store, uri, &so, err, sizeof err) : ow_store_open(&store, &so);
  ow_free(uri);
  if (rc) {
    problem("cannot open the store: %s", ow_strerror(rc));
    return;
  }
  flog l = {0};
  uint8_t pf = 'F';
  rc = ow_store_scan(store, &pf, 1, scan_frame, &l);
  if (rc) problem("the frame log does not parse: %s", ow_err_name(rc));
  ow_zone_config zc = {.world = {.region_size = 16, .reach = 8, .bound = 1e6f},
                       .replay_window = REPLAY_WINDOW};
  ow_zone *z;
  rc = ow_zone_open(&z, &zc, g.content, store, NULL, NULL);
  if (rc) {
    problem("recovery of the store failed: %s", ow_err_name(rc));
    ow_store_close(store);
    return;
  }
  uint64_t durable = ow_zone_durable_frame(z);
  g.checked_frame = durable;
  if (durable > g.max_frame) g.max_frame = durable;
  for (size_t i = 0; i < l.frames.len; i++)
    if (l.frames.v[i].frame != i + 1) {
      problem("the frame log has frame %" PRIu64 " at position %zu", l.frames.v[i].frame, i + 1);
      break;
    }
  if (l.frames.len != durable)
    problem("the frame log holds %zu frames, the store is at frame %" PRIu64, l.frames.len,
            durable);
  g.logged_actions = l.acts.len;

  /* Logged actions, per player and seq. */
  size_t total = 0;
  for (int i = 0; i < g.players; i++) total += g.ps[i].acts.len;
  ow_result *res = ow_calloc(total ? total : 1, sizeof *res);
  uint64_t *frame_of = ow_calloc(total ? total : 1, sizeof *frame_of);
  bool *present = ow_calloc(total ? total : 1, sizeof *present);
  size_t base[MAX_PLAYERS];
  for (int i = 0, at = 0; i < g.players; at += (int)g.ps[i].acts.len, i++) base[i] = (size_t)at;
  ow_map session_player;
  ow_map_init(&session_player);
  int64_t ledger[MAX_TYPES] = {0};
  for (size_t i = 0; i < l.acts.len; i++) {
    const lact *a = &l.acts.v[i];
    uint64_t *sp = ow_map_get(&session_player, a->session);
    if (!sp) {
      ow_id account = 0;
      int pi =
          ow_zone_session(z, a->session, &account, NULL, NULL) ? -1 : player_of_account(account);
      ow_map_set(&session_player, a->session, (uint64_t)(int64_t)pi);
      sp = ow_map_get(&session_player, a->session);
      if (pi < 0)
        problem("frame %" PRIu64 " logs session %016" PRIx64 " of no player", a->frame, a->session);
    }
    int pi = (int)(int64_t)*sp;
    if (pi < 0) continue;
    player *p = &g.ps[pi];
    act_rec *r = act_of(p, a->seq);
    if (!r) {
      problem("frame %" PRIu64 " logs player %d's seq %" PRIu64 ", which was never sent", a->frame,
              pi, a->seq);
      continue;
    }
    size_t k = base[pi] + a->seq - 1;
    if (present[k]) {
      g.duplicated++;
      problem("player %d's seq %" PRIu64 " is logged twice (frames %" PRIu64 " and %" PRIu64 ")",
              pi, a->seq, frame_of[k], a->frame);
      continue;
    }
    present[k] = true;
    res[k] = a->r;
    frame_of[k] = a->frame;
    if (!ow_test_action_eq(&a->a, &r->a))
      problem("player %d's seq %" PRIu64 " is logged with another action than was sent", pi,
              a->seq);
    /* The conservation ledger: what harvests, crafts and builds created and consumed. */
    if (a->r.code) continue;
    const ow_content *ct = g.content;
    if (a->a.type == OW_ACT_HARVEST) {
      const ow_entity *node = ow_world_get(ow_zone_world(z), a->a.target);
      if (node) ledger[ct->types[node->type].yield_item] += a->r.count;
    } else if (a->a.type == OW_ACT_CRAFT && a->a.kind < ct->nrecipes) {
      const ow_recipe *rc2 = &ct->recipes[a->a.kind];
      for (uint16_t j = 0; j < rc2->nin; j++) ledger[rc2->in[j].item] -= rc2->in[j].count;
      for (uint16_t j = 0; j < rc2->nout; j++) ledger[rc2->out[j].item] += rc2->out[j].count;
    } else if (a->a.type == OW_ACT_BUILD && a->a.kind < ct->ntypes) {
      const ow_type *t = &ct->types[a->a.kind];
      for (uint16_t j = 0; j < t->ncost; j++) ledger[t->cost[j].item] -= t->cost[j].count;
    }
  }

  /* Every confirmed action is logged once, in its frame, with its result. */
  for (int i = 0; i < g.players; i++) {
    player *p = &g.ps[i];
    for (size_t s = 0; s < p->acts.len; s++) {
      act_rec *r = &p->acts.v[s];
      size_t k = base[i] + s;
      if (r->confirmed && !present[k]) {
        if (!r->lost_reported) g.lost_durable++;
        r->lost_reported = true;
        problem("LOST: player %d's seq %zu was confirmed durable in frame %" PRIu64 " but is not "
                "in the frame log (which ends at frame %" PRIu64 ")",
                i, s + 1, r->frame, durable);
      } else if (r->confirmed &&
                 (frame_of[k] != r->frame || !ow_test_result_eq(&res[k], &r->res))) {
        problem("player %d's seq %zu was confirmed in frame %" PRIu64 " code %d entity %" PRIu64
                " count %u, logged in frame %" PRIu64 " code %d entity %" PRIu64 " count %u",
                i, s + 1, r->frame, r->res.code, r->res.entity, r->res.count, frame_of[k],
                res[k].code, res[k].entity, res[k].count);
      } else if (final && !r->confirmed && !r->refused) {
        problem("after the clean stop, player %d's seq %zu is still unconfirmed", i, s + 1);
      } else if (r->refused && present[k]) {
        problem("player %d's seq %zu was refused but is logged", i, s + 1);
      }
    }
    if (durable < p->max_durable_frame || durable < p->max_snapshot_frame)
      problem("the store is at frame %" PRIu64 ", player %d saw DURABLE %" PRIu64
              " and SNAPSHOT %" PRIu64,
              durable, i, p->max_durable_frame, p->max_snapshot_frame);
  }

  /* Conservation: the units in the world are those the ledger says were made. */
  uint64_t *totals = ow_calloc(g.content->ntypes, sizeof *totals);
  ow_world_item_totals(ow_zone_world(z), totals);
  for (uint16_t t = 0; t < g.content->ntypes && t < MAX_TYPES; t++)
    if ((int64_t)totals[t] != ledger[t])
      problem("conservation: %" PRIu64 " units of %s in the world, the logged actions made "
              "%" PRId64,
              totals[t], g.content->types[t].name, ledger[t]);
  ow_free(totals);

  obsvec world = {0};
  ow_world_each(ow_zone_world(z), world_visit, &world);

  /* What each client last saw is still there, unless a later frame changed it. */
  ow_map changed;
  ow_map_init(&changed);
  for (int i = 0; i < g.players; i++) {
    player *p = &g.ps[i];
    if (!p->seen_frame) continue;
    ow_map_deinit(&changed);
    ow_map_init(&changed);
    for (size_t f = p->seen_frame; f < l.frames.len; f++) /* frames after seen_frame */
      for (size_t c = 0; c < l.frames.v[f].nc; c++)
        ow_map_set(&changed, l.changed.v[l.frames.v[f].c0 + c], 1);
    for (size_t k = 0; k < p->seen.len; k++) {
      const obs *o = &p->seen.v[k];
      if (ow_map_get(&changed, o->id)) continue;
      g.seen_checked++;
      const obs *w = obs_find(&world, o->id);
      if (!w || !obs_eq(o, w))
        problem("player %d saw entity %" PRIu64 " (%s) in the snapshot of frame %" PRIu64
                "; no later frame changed it, but the store %s",
                i, o->id, g.content->types[o->type].name, p->seen_frame,
                w ? "holds it differently" : "does not hold it");
    }
  }
  ow_map_deinit(&changed);

  /* Each player's part equals the model replayed from the logged results (which, for confirmed
   * actions, were just checked to be the confirmed ones). */
  for (int i = 0; i < g.players; i++) {
    player *p = &g.ps[i];
    if (!p->inventory) continue;
    pmodel m;
    model_build(p, &m, res + base[i], present + base[i]);
    compare_part(p, &m, &world, final ? "store after the clean stop" : "store after the kill");
    model_free(&m);
  }

  OW_VEC_FREE(world);
  ow_map_deinit(&session_player);
  ow_free(res);
  ow_free(frame_of);
  ow_free(present);
  OW_VEC_FREE(l.acts);
  OW_VEC_FREE(l.frames);
  OW_VEC_FREE(l.changed);
  ow_zone_close(z);
  ow_store_close(store);
}

/* ---- phases ---------------------------------------------------------------------------------- */

static bool setup_known(void) {
  for (int i = 0; i < g.players; i++) {
    player *p = &g.ps[i];
    if (p->phase != PH_IN || !p->seen_frame) return false;
    if (!p->inventory || !p->tree || !p->rock) {
      /* Learn the inventory and the nodes at home from the first snapshot. */
      for (size_t k = 0; k < p->seen.len; k++) {
        const obs *o = &p->seen.v[k];
        if (o->type == g.t_inventory && o->parent == p->avatar) p->inventory = o->id;
        float want[2][3] = {{p->home[0] + 2.5f, 0, p->home[2]}, {p->home[0], 0, p->home[2] + 2.5f}};
        for (int n = 0; n < 2; n++)
          if (o->type == (n ? g.t_rock : g.t_tree) &&
              abs(o->pos[0] - ow_quant_mm(want[n][0])) < 3 &&
              abs(o->pos[2] - ow_quant_mm(want[n][2])) < 3)
            *(n ? &p->rock : &p->tree) = o->id;
      }
      if (!p->inventory || !p->tree || !p->rock) return false;
    }
  }
  return true;
}

static bool all_quiet(void) {
  for (int i = 0; i < g.players; i++) {
    const player *p = &g.ps[i];
    if (p->phase != PH_IN || ow_client_unconfirmed(p->c) || p->probes.len) return false;
  }
  return true;
}

static bool all_seen_recovered(void) {
  for (int i = 0; i < g.players; i++) {
    const player *p = &g.ps[i];
    if (p->phase != PH_IN || p->seen_run != g.run || p->seen_frame < g.srv.recovered_frame)
      return false;
  }
  return true;
}

static void setup(void) {
  g.quiesce = true; /* no workload before every player has walked home */
  start_server();
  if (!pump_until(setup_known, 60000, "players registered, logged in and joined"))
    fatal("setup failed");
  for (int i = 0; i < g.players; i++) {
    player *p = &g.ps[i];
    ow_action a = {.type = OW_ACT_MOVE, .target = p->avatar};
    xf_at(&a, p->home[0], p->home[2], 0);
    issue(p, &a, 0, 0);
  }
  if (!pump_until(all_quiet, 60000, "the walk home confirmed")) fatal("setup failed");
  g.quiesce = false;
}

/* How long the server lives before the next kill: a quarter of the kills land while the players
 * are still reconnecting, resuming and re-sending. */
static uint64_t uptime_ns(void) {
  uint32_t ms = below(4) ? 250 + below(1500) : below(250);
  return (uint64_t)ms * 1000000ull;
}

static void run_for(uint64_t ns) {
  uint64_t end = ow_now_ns() + ns;
  while (ow_now_ns() < end) step();
}

static void final_phase(void) {
  /* Everything re-sent and confirmed, probes answered, then a clean stop. */
  if (!g.srv.pid) start_server(); /* after the last kill (with --kills 0 the setup's still runs) */
  g.quiesce = true;
  pump_until(all_quiet, 120000, "every action confirmed after the last restart");
  stop_server_clean();
  check_store(true);
  /* A clean restart: every player's snapshot of every part must equal the models. */
  start_server();
  pump_until(all_quiet, 60000, "every player back in the world");
  pump_until(all_seen_recovered, 60000, "a snapshot of the recovered frame for every player");
  for (int i = 0; i < g.players; i++) {
    pmodel m;
    model_confirmed(&g.ps[i], &m);
    for (int q = 0; q < g.players; q++) {
      char where[64];
      snprintf(where, sizeof where, "player %d's snapshot of frame %" PRIu64, q,
               g.ps[q].seen_frame);
      compare_part(&g.ps[i], &m, &g.ps[q].seen, where);
    }
    model_free(&m);
  }
  stop_server_clean();
  check_store(true);
}

/* Runs the fault script of tests/pg/pg_env.sh (start, stop, kill, pause, resume). */
static void pg_ctl(const char *what) {
  const char *ctl = getenv("OW_TEST_PG_CTL");
  if (!ctl || !*ctl) fatal("--pg-faults needs tests/pg/pg_env.sh (OW_TEST_PG_CTL)");
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "%s %s", ctl, what);
  if (system(cmd)) problem("'%s' failed", cmd);
}

/* One PostgreSQL fault, in turn SIGKILL, restart and pause, while the players keep playing: the
 * store stays down for a while (actions are applied, nothing can be confirmed), then comes back. */
static void pg_fault(void) {
  uint32_t n = g.pg_kills + g.pg_restarts + g.pg_pauses;
  const char *kind = n % 3 == 0 ? "kill" : n % 3 == 1 ? "stop" : "pause";
  pg_ctl(kind);
  if (n % 3 == 0) g.pg_kills++;
  if (n % 3 == 1) g.pg_restarts++;
  if (n % 3 == 2) g.pg_pauses++;
  run_for((uint64_t)(200 + below(1500)) * 1000000ull);
  pg_ctl(n % 3 == 2 ? "resume" : "start");
}

static void usage(void) {
  fprintf(stderr,
          "usage: chaos SERVER_BINARY [--kills N] [--seed S] [--players 1..%d] [--keep] [--pg-faults]\n"
          "  environment: OW_CHAOS_KILLS=N, OW_CHAOS_SEED=S (flags win)\n",
          MAX_PLAYERS);
  exit(2);
}

int main(int argc, char **argv) {
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) usage();
  if (argc < 2) usage();
  g.bin = argv[1];
  g.players = DEFAULT_PLAYERS;
  g.kills_wanted = DEFAULT_KILLS;
  const char *e = getenv("OW_CHAOS_KILLS");
  if (e && *e) g.kills_wanted = (uint32_t)strtoul(e, NULL, 10);
  e = getenv("OW_CHAOS_SEED");
  bool have_seed = e && *e;
  if (have_seed) g.seed = strtoull(e, NULL, 0);
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--kills") && i + 1 < argc)
      g.kills_wanted = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
      g.seed = strtoull(argv[++i], NULL, 0), have_seed = true;
    else if (!strcmp(argv[i], "--players") && i + 1 < argc)
      g.players = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--keep"))
      g.keep = true;
    else if (!strcmp(argv[i], "--pg-faults"))
      g.pg_faults = true;
    else
      usage();
  }
  if (g.players < 1 || g.players > MAX_PLAYERS) usage();
  if (!have_seed && getrandom(&g.seed, sizeof g.seed, 0) != sizeof g.seed) g.seed = ow_now_ns();
  g.rng = g.seed;
  printf("chaos: seed=%" PRIu64
         " kills=%u players=%d (replay the choices with OW_CHAOS_SEED=%" PRIu64 ")\n",
         g.seed, g.kills_wanted, g.players, g.seed);
  fflush(stdout);
  signal(SIGPIPE, SIG_IGN);

  g.dir = ow_test_mkdtemp("chaos");
  snprintf(g.data, sizeof g.data, "%s/data", g.dir);
  snprintf(g.log, sizeof g.log, "%s/server.log", g.dir);
  char err[512];
  if (ow_content_load_file(ow_test_source_path(CONTENT), &g.content, err, sizeof err)) {
    fprintf(stderr, "chaos: content: %s\n", err);
    return 1;
  }
  if (g.content->ntypes > MAX_TYPES) fatal("the content has too many types");
  struct {
    uint16_t *id;
    const char *name;
  } names[] = {{&g.t_wood, "wood"},           {&g.t_stone, "stone"},  {&g.t_plank, "plank"},
               {&g.t_block, "block"},         {&g.t_tree, "tree"},    {&g.t_rock, "rock"},
               {&g.t_wall, "wall"},           {&g.t_door, "door"},    {&g.t_chest, "chest"},
               {&g.t_inventory, "inventory"}, {&g.t_avatar, "avatar"}};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    int id = ow_content_type_id(g.content, names[i].name, strlen(names[i].name));
    if (id < 0) fatal("the content lacks a type the workload uses");
    *names[i].id = (uint16_t)id;
  }

  ow_client_ctx_opts co = {.max_connections = 64};
  if (ow_client_ctx_create(&co, &g.ctx)) fatal("client context");
  ow_client_callbacks cb = {.on_welcome = cb_welcome,
                            .on_ok = cb_ok,
                            .on_session = cb_session,
                            .on_joined = cb_joined,
                            .on_applied = cb_applied,
                            .on_durable = cb_durable,
                            .on_snapshot = cb_snapshot,
                            .on_error = cb_error,
                            .on_bye = cb_bye,
                            .on_close = cb_close};
  for (int i = 0; i < g.players; i++) {
    player *p = &g.ps[i];
    p->idx = i;
    snprintf(p->name, sizeof p->name, "chaos%d", i);
    /* The homes of chaos_content.json: beside region boundaries, so that walks cross them. */
    p->home[0] = 16.0f * (float)(i - 4) + 0.5f;
    p->home[2] = i % 2 ? 15.6f : -0.4f;
    p->c = ow_client_create(g.ctx, &cb, p);
  }

  uint64_t t0 = ow_now_ns();
  setup();
  while (g.pg_faults && g.pg_kills + g.pg_restarts + g.pg_pauses < g.kills_wanted) {
    run_for(uptime_ns());
    pg_fault();
  }
  while (!g.pg_faults && g.kills < g.kills_wanted) {
    run_for(uptime_ns());
    kill_server();
    check_store(false);
    if (g.kills < g.kills_wanted) start_server();
  }
  final_phase();
  double secs = (double)(ow_now_ns() - t0) / 1e9;

  printf("chaos: seconds=%.1f runs=%u checks=%" PRIu64 " issued=%" PRIu64 " logged=%" PRIu64
         " refused=%" PRIu64 " resent_replayed=%" PRIu64 " probes=%" PRIu64 " probes_ok=%" PRIu64
         " seen_checked=%" PRIu64 " connect_failures=%" PRIu64 " max_frame=%" PRIu64
         " problems=%" PRIu64 "\n",
         secs, g.run, g.checks, g.issued, g.logged_actions, g.refused, g.resent_replayed,
         g.probes_sent, g.probes_ok, g.seen_checked, g.connect_failures, g.max_frame, g.problems);
  static const char *const act_names[OW_ACT_MAX_] = {"",      "move",     "harvest",  "build",
                                                     "craft", "transfer", "interact", "destroy"};
  printf("chaos: final model, confirmed results per action (ok/failed):");
  for (int k = 1; k < OW_ACT_MAX_; k++) {
    uint64_t ok = 0, failed = 0;
    for (int i = 0; i < g.players; i++)
      for (size_t s = 0; s < g.ps[i].acts.len; s++) {
        const act_rec *r = &g.ps[i].acts.v[s];
        if (r->confirmed && r->a.type == k) *(r->res.code ? &failed : &ok) += 1;
      }
    printf(" %s=%" PRIu64 "/%" PRIu64, act_names[k], ok, failed);
  }
  printf("\n");
  if (g.pg_faults) {
    printf("chaos: pg_restarts=%u pg_pauses=%u\n", g.pg_restarts, g.pg_pauses);
    printf("pg_kills=%u confirmed=%" PRIu64 " lost_durable=%" PRIu64 " duplicated=%" PRIu64 "\n",
           g.pg_kills, g.confirmed, g.lost_durable, g.duplicated);
  } else {
    printf("kills=%u confirmed=%" PRIu64 " lost_durable=%" PRIu64 " duplicated=%" PRIu64 "\n",
           g.kills, g.confirmed, g.lost_durable, g.duplicated);
  }
  fflush(stdout);

  bool failed = g.problems || g.lost_durable || g.duplicated ||
                (g.pg_faults ? g.pg_kills + g.pg_restarts + g.pg_pauses : g.kills) < g.kills_wanted;
  for (int i = 0; i < g.players; i++) {
    ow_client_destroy(g.ps[i].c);
    OW_VEC_FREE(g.ps[i].acts);
    OW_VEC_FREE(g.ps[i].probes);
    OW_VEC_FREE(g.ps[i].seen);
  }
  ow_client_ctx_destroy(g.ctx);
  ow_content_destroy(g.content);
  if (failed || g.keep) {
    fprintf(stderr, "chaos: %s; files kept in %s (seed %" PRIu64 ")\n",
            failed ? "FAILED" : "passed", g.dir, g.seed);
    ow_free(g.dir);
  } else {
    ow_test_rmdir(g.dir);
  }
  return failed ? 1 : 0;
}
