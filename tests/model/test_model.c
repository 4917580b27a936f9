/*
 * model_random: the model-based randomized test. Several players send thousands of random actions,
 * valid and invalid, through the zone (sessions, sequence numbers, frames, a real LMDB store) and
 * through the reference model of tests/model/model.c, which implements docs/world.md a second time.
 * After every action the results must agree; after every frame the whole world, the item ledger
 * and the regions must agree; every few hundred actions the zone and the store are closed and
 * reopened and the recovered world must still agree, old results must still replay, and the frame
 * log must hold exactly the actions that were applied.
 *
 * OW_MODEL_SEED and OW_MODEL_ACTIONS choose the seed and the number of actions per scenario
 * (default: from the clock, 5000); OW_MODEL_SCENARIO runs one scenario by name; OW_MODEL_VERBOSE
 * adds each scenario's reason codes per action type. The seed is printed first so that any failure
 * can be replayed exactly (session ids are random, but nothing the test compares depends on them).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "otherworld/protocol.h"
#include "support.h"

/* ---- random numbers -------------------------------------------------------------------------- */

/* splitmix64: small, fast and fully determined by the seed, so a failing run replays exactly. */
typedef struct rng {
  uint64_t s;
} rng;

static uint64_t rnd(rng *g) {
  uint64_t z = (g->s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t below(rng *g, uint64_t n) { return n ? rnd(g) % n : 0; }
static double unit(rng *g) { return (double)(rnd(g) >> 11) * 0x1p-53; }
static bool chance(rng *g, double p) { return unit(g) < p; }
static float frange(rng *g, double lo, double hi) { return (float)(lo + unit(g) * (hi - lo)); }

/* ---- scenarios and run state ----------------------------------------------------------------- */

/* A scenario is a content file and a zone configuration. "default" is the shipped world; the
 * others bend the numbers so that rules the default world rarely reaches (full containers, full
 * seats, public containers shared by players, region borders at the spawn, a short replay window,
 * recipes whose outputs include their inputs, reach disabled) are exercised often. */
typedef struct scenario {
  const char *name;
  ow_content *(*content)(void);
  ow_zone_config (*config)(void);
} scenario;

enum { MAX_PLAYERS = 5, INITIAL_PLAYERS = 4, RECOVERY_EVERY = 500, MAX_DIFFS = 20 };

typedef struct hist {
  uint64_t seq, frame;
  ow_result res;
} hist;

/* A session as the test knows it: every action it sent that the zone processed, in order. */
typedef struct session {
  uint64_t id;
  size_t player;
  uint64_t last_seq;
  OW_VEC(hist) h;
} session;

typedef struct player {
  ow_id account, avatar;
  size_t session; /* index of the session it currently sends on */
  bool joined;
} player;

/* One processed action, in the order the zone processed them: what the frame log must hold. */
typedef struct logged {
  uint64_t session, seq, frame, index;
  size_t player;
  ow_action action;
  ow_result res;
} logged;

typedef struct run {
  const scenario *sc;
  rng g;
  uint64_t seed, nactions, index;
  ow_content *content;
  ow_zone_config zc;
  char *dir;
  ow_store *store;
  ow_zone *zone;
  model m;
  player players[MAX_PLAYERS];
  OW_VEC(session) sessions;
  OW_VEC(logged) log;
  OW_VEC(ow_id) scratch;
  /* What on_durable saw, and the model's id counter when the last durable frame was sealed. */
  uint64_t durable_actions;
  int durable_status;
  ow_id durable_next_id;
  /* Figures for the report. */
  uint64_t frames, recoveries, replays, too_old, succeeded, processed;
  uint64_t by_type[OW_ACT_MAX_ + 1], ok_by_type[OW_ACT_MAX_ + 1];
  uint64_t codes[OW_ACT_MAX_ + 1][64]; /* [action type][-code - 1000], for tuning the generator */
  /* Successful actions of the kinds the default mix reaches least, to show they were reached. */
  uint64_t enters, leaves, drives, doors;
  int diffs;
} run;

/* Totals over every scenario, for the last line. */
static struct {
  uint64_t seed, actions, frames, recoveries;
  unsigned scenarios;
} g_total;

/* ---- describing things ----------------------------------------------------------------------- */

static const char *action_name(uint8_t t) {
  static const char *const names[] = {"unknown", "move",     "harvest",  "build",
                                      "craft",   "transfer", "interact", "destroy"};
  return t < OW_ACT_MAX_ ? names[t] : "unknown";
}

static const char *type_name(const run *r, uint16_t t) {
  return t < r->content->ntypes ? r->content->types[t].name : "?";
}

static void print_action(const run *r, FILE *f, const ow_action *a) {
  fprintf(f, "%s(type=%u", action_name(a->type), a->type);
  switch (a->type) {
  case OW_ACT_BUILD: fprintf(f, " kind=%u(%s)", a->kind, type_name(r, a->kind)); break;
  case OW_ACT_CRAFT:
    fprintf(f, " kind=%u(%s)", a->kind,
            a->kind < r->content->nrecipes ? r->content->recipes[a->kind].name : "?");
    break;
  default: fprintf(f, " kind=%u", a->kind);
  }
  fprintf(f, " target=%" PRIu64 " dest=%" PRIu64 " count=%" PRIu32, a->target, a->dest, a->count);
  fprintf(f, " pos=(%.9g,%.9g,%.9g) rot=(%.9g,%.9g,%.9g,%.9g) scale=(%.9g,%.9g,%.9g))",
          a->xf.pos[0], a->xf.pos[1], a->xf.pos[2], a->xf.rot[0], a->xf.rot[1], a->xf.rot[2],
          a->xf.rot[3], a->xf.scale[0], a->xf.scale[1], a->xf.scale[2]);
}

static void print_result(FILE *f, const ow_result *res) {
  fprintf(f, "{code=%d(%s) entity=%" PRIu64 " count=%" PRIu32 "}", res->code,
          res->code ? ow_err_name(res->code) : "ok", res->entity, res->count);
}

static void print_entity(const run *r, FILE *f, const mentity *e) {
  fprintf(f, "id=%" PRIu64 " type=%s owner=%" PRIu64 " parent=%" PRIu64, e->id,
          type_name(r, e->type), e->owner, e->parent);
  fprintf(f, " pos=(%.9g,%.9g,%.9g) hp=%d count=%u", e->xf.pos[0], e->xf.pos[1], e->xf.pos[2],
          e->hp, e->count);
}

/* The header of every mismatch report: enough to replay the run and find the step. */
static void mismatch_header(run *r, const char *what) {
  if (r->diffs++ == 0) {
    fflush(stdout);
    fprintf(stderr,
            "model_random MISMATCH seed=%" PRIu64 " scenario=%s action_index=%" PRIu64 " (%s)\n",
            r->seed, r->sc->name, r->index, what);
  }
}

static void diff(run *r, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void diff(run *r, const char *what, const char *fmt, ...) {
  mismatch_header(r, what);
  if (r->diffs > MAX_DIFFS) return;
  va_list ap;
  va_start(ap, fmt);
  fputs("  ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* Prints the last actions the zone processed, to give a mismatch its history. */
static void print_recent(const run *r) {
  size_t n = r->log.len < 16 ? r->log.len : 16;
  fprintf(stderr, "  last %zu processed actions:\n", n);
  for (size_t i = r->log.len - n; i < r->log.len; i++) {
    const logged *l = &r->log.v[i];
    fprintf(stderr, "    #%" PRIu64 " player=%zu account=%" PRIu64 " seq=%" PRIu64 " ", l->index,
            l->player, r->players[l->player].account, l->seq);
    print_action(r, stderr, &l->action);
    fputs(" -> ", stderr);
    print_result(stderr, &l->res);
    fputc('\n', stderr);
  }
}

/* Fails the cmocka test if anything differed since the last call. */
static void check_diffs(run *r, const char *what) {
  if (!r->diffs) return;
  if (r->diffs > MAX_DIFFS) fprintf(stderr, "  ... %d differences in all\n", r->diffs);
  print_recent(r);
  fprintf(stderr,
          "model_random FAILED seed=%" PRIu64 " scenario=%s action_index=%" PRIu64
          " (rerun with OW_MODEL_SEED=%" PRIu64 " OW_MODEL_ACTIONS=%" PRIu64
          " OW_MODEL_SCENARIO=%s)\n",
          r->seed, r->sc->name, r->index, g_total.seed, r->nactions, r->sc->name);
  fail_msg("model_random mismatch: %s (seed=%" PRIu64 " scenario=%s action_index=%" PRIu64 ")",
           what, g_total.seed, r->sc->name, r->index);
}

/* ---- picking entities ------------------------------------------------------------------------ */

enum { OWN_ANY, OWN_MINE, OWN_USABLE, OWN_OTHERS };

/* Which live entities of the model an action may aim at. Zero fields accept everything. */
typedef struct filter {
  uint32_t kinds; /* bit (1 << kind) for each accepted kind */
  int own;        /* OWN_*, relative to the acting player */
  bool near;      /* only entities the player's avatar reaches */
  bool root;      /* only entities without a parent */
  bool door;      /* only door types */
  bool empty;     /* only entities without children */
  ow_id parent;   /* only children of this entity */
  ow_id except;   /* never this entity */
} filter;

#define KIND(k) (1u << (k))

static const mentity *avatar_of(const run *r, const player *p) {
  return model_get(&r->m, p->avatar);
}

static bool accepts(const run *r, const player *p, const filter *f, const mentity *e) {
  const ow_type *t = model_type(&r->m, e->type);
  if (f->kinds && !(f->kinds & KIND(t->kind))) return false;
  if (f->own == OWN_MINE && e->owner != p->account) return false;
  if (f->own == OWN_USABLE && e->owner != 0 && e->owner != p->account) return false;
  if (f->own == OWN_OTHERS && (e->owner == 0 || e->owner == p->account)) return false;
  if (f->root && e->parent) return false;
  if (f->door && !t->door) return false;
  if (f->parent && e->parent != f->parent) return false;
  if (f->except && e->id == f->except) return false;
  if (f->empty && model_has_children(&r->m, e->id)) return false;
  if (f->near && !model_reaches(&r->m, avatar_of(r, p), e)) return false;
  return true;
}

/* A random live entity that the filter accepts, or 0 when there is none. */
static ow_id pick(run *r, const player *p, const filter *f) {
  r->scratch.len = 0;
  for (size_t i = 0; i < r->m.n; i++)
    if (r->m.ents[i].alive && accepts(r, p, f, &r->m.ents[i]))
      OW_VEC_PUSH(r->scratch, r->m.ents[i].id);
  return r->scratch.len ? r->scratch.v[below(&r->g, r->scratch.len)] : 0;
}

/* Tries the filter with `near` first (most of the time), then without. */
static ow_id pick_near(run *r, const player *p, filter f, double p_near) {
  ow_id id = 0;
  if (chance(&r->g, p_near)) {
    f.near = true;
    id = pick(r, p, &f);
    f.near = false;
  }
  return id ? id : pick(r, p, &f);
}

/* An id that names no live entity: never assigned, destroyed, or absurd. */
static ow_id dead_id(run *r) {
  switch (below(&r->g, 5)) {
  case 0: return 0;
  case 1: return r->m.next_id;
  case 2: return r->m.next_id + 1 + below(&r->g, 1000);
  case 3: return UINT64_MAX - below(&r->g, 2);
  default: {
    r->scratch.len = 0;
    for (size_t i = 0; i < r->m.n; i++)
      if (!r->m.ents[i].alive) OW_VEC_PUSH(r->scratch, r->m.ents[i].id);
    return r->scratch.len ? r->scratch.v[below(&r->g, r->scratch.len)] : r->m.next_id;
  }
  }
}

/* Any live entity (most of the time) or a dead id. */
static ow_id any_id(run *r, const player *p) {
  filter f = {0};
  ow_id id = chance(&r->g, 0.8) ? pick(r, p, &f) : 0;
  return id ? id : dead_id(r);
}

/* ---- positions and transforms ---------------------------------------------------------------- */

static const float *root_pos(const run *r, ow_id id) {
  return model_root(&r->m, model_get(&r->m, id))->xf.pos;
}

/* A point on the ground plane at a random horizontal distance in [dmin, dmax] from c. */
static void around(rng *g, const float c[3], double dmin, double dmax, float out[3]) {
  double ang = unit(g) * 6.283185307179586, d = dmin + unit(g) * (dmax - dmin);
  out[0] = (float)((double)c[0] + d * cos(ang));
  out[1] = c[1];
  out[2] = (float)((double)c[2] + d * sin(ang));
}

/* A point at (almost exactly) the reach distance from c, where float rounding decides whether it
 * is in reach: the rule says the check is made in double precision from the stored floats. */
static void reach_edge(run *r, const float c[3], float out[3]) {
  static const double delta[] = {-1e-3, -1e-6, 0, 0, 0, 1e-6, 1e-3};
  double d = (double)r->zc.world.reach + delta[below(&r->g, sizeof delta / sizeof *delta)];
  memcpy(out, c, 3 * sizeof *out);
  if (chance(&r->g, 0.5)) {
    int axis = (int)below(&r->g, 3);
    out[axis] = (float)((double)c[axis] + (chance(&r->g, 0.5) ? d : -d));
  } else {
    around(&r->g, c, d, d, out);
  }
}

/* Makes one component of the transform invalid, or puts it exactly on a limit (still valid). */
static void spoil(run *r, ow_transform *xf) {
  float bound = r->zc.world.bound, sign = chance(&r->g, 0.5) ? 1.0f : -1.0f;
  int i = (int)below(&r->g, 3), j = (int)below(&r->g, 4);
  switch (below(&r->g, 9)) {
  case 0: xf->pos[i] = NAN; break;
  case 1: xf->pos[i] = sign * INFINITY; break;
  case 2: xf->pos[i] = sign * nextafterf(bound, INFINITY); break;
  case 3: xf->pos[i] = sign * bound; break; /* on the limit: valid */
  case 4: xf->pos[i] = sign * bound * 4; break;
  case 5: xf->rot[j] = NAN; break;
  case 6: xf->rot[j] = sign * INFINITY; break;
  case 7: xf->rot[j] = sign * nextafterf(2.0f, 3.0f); break;
  default: xf->rot[j] = sign * 2.0f; break; /* on the limit: valid */
  }
}

static void random_rotation(run *r, ow_transform *xf) {
  double u = unit(&r->g);
  if (u < 0.75) return; /* identity */
  for (int i = 0; i < 4; i++) xf->rot[i] = frange(&r->g, u < 0.95 ? -1 : -2, u < 0.95 ? 1 : 2);
}

/* ---- the action generator -------------------------------------------------------------------- */

/* The generator plays a little: most actions are what a player would plausibly send next (walk to
 * a tree, chop it, craft, build, store things in a chest), so that a good share succeeds and the
 * world keeps changing; the rest are wrong in one way or another, so that every check of every
 * action is reached. It reads the model only; the engine never influences what is sent. */

static const mentity *inventory_of(const run *r, const player *p) {
  return model_inventory(&r->m, p->avatar);
}

/* Whether the player's inventory holds the given item counts. */
static bool affords(const run *r, const player *p, const ow_itemcount *ic, uint16_t n) {
  const mentity *inv = inventory_of(r, p);
  for (uint16_t i = 0; i < n; i++)
    if (model_units(&r->m, inv->id, ic[i].item) < ic[i].count) return false;
  return true;
}

/* A point a few metres from entity `id` (within reach of it), or near the spawn when id is 0. */
static void near_or_spawn(run *r, ow_id id, float out[3]) {
  if (id)
    around(&r->g, root_pos(r, id), 0.5, 6.5, out);
  else
    around(&r->g, r->content->spawn, 0, 6, out);
}

/* Walks the player's avatar to within reach of an entity the filter accepts (or, when it rides,
 * gets off first). Returns false, sending nothing, when no entity qualifies. */
static bool go_near(run *r, const player *p, filter f, ow_action *a) {
  f.near = false;
  ow_id id = pick(r, p, &f);
  if (!id) return false;
  const mentity *av = avatar_of(r, p);
  if (av->parent) {
    a->type = OW_ACT_INTERACT;
    a->target = av->parent;
    return true;
  }
  a->type = OW_ACT_MOVE;
  a->target = av->id;
  around(&r->g, root_pos(r, id), 0.5, 6.5, a->xf.pos);
  return true;
}

/* Picks a target by the filter among entities in reach; when there is none, usually walks to one
 * first (returning 0 with the move in *a), else returns a target out of reach or a dead id. */
static ow_id target_or_walk(run *r, const player *p, filter f, ow_action *a, bool *walked) {
  f.near = true;
  ow_id id = pick(r, p, &f);
  *walked = false;
  if (id && chance(&r->g, 0.9)) return id;
  if (!id && chance(&r->g, 0.6) && go_near(r, p, f, a)) {
    *walked = true;
    return 0;
  }
  f.near = false;
  id = pick(r, p, &f);
  return id ? id : chance(&r->g, 0.5) ? any_id(r, p) : dead_id(r);
}

static void gen_move(run *r, const player *p, ow_action *a) {
  const mentity *av = avatar_of(r, p);
  const float *home = root_pos(r, p->avatar);
  a->type = OW_ACT_MOVE;
  double u = unit(&r->g);
  if (u < 0.65) {
    /* The own avatar (refused while it rides). Mostly next to something worth acting on. */
    a->target = av->id;
    double v = unit(&r->g);
    filter f = {0};
    if (v < 0.32) {
      f.kinds = KIND(OW_KIND_RESOURCE);
      near_or_spawn(r, pick(r, p, &f), a->xf.pos);
    } else if (v < 0.52) {
      f.kinds = KIND(OW_KIND_STRUCTURE) | KIND(OW_KIND_CONTAINER) | KIND(OW_KIND_VEHICLE);
      f.root = true;
      f.own = chance(&r->g, 0.8) ? OWN_USABLE : OWN_ANY;
      near_or_spawn(r, pick(r, p, &f), a->xf.pos);
    } else if (v < 0.62) {
      f.root = true;
      ow_id id = pick(r, p, &f);
      if (id)
        reach_edge(r, root_pos(r, id), a->xf.pos);
      else
        near_or_spawn(r, 0, a->xf.pos);
    } else if (v < 0.68) {
      a->xf.pos[0] = frange(&r->g, -3000, 3000);
      a->xf.pos[2] = frange(&r->g, -3000, 3000);
    } else {
      near_or_spawn(r, 0, a->xf.pos);
    }
    if (chance(&r->g, 0.1)) a->xf.pos[1] = frange(&r->g, -2, 3);
  } else if (u < 0.8) {
    /* A held object: a vehicle, usually one the player may use, carried a few metres. */
    filter f = {.kinds = KIND(OW_KIND_VEHICLE), .own = chance(&r->g, 0.85) ? OWN_USABLE : OWN_ANY};
    a->target = pick_near(r, p, f, 0.85);
    if (!a->target) a->target = chance(&r->g, 0.8) ? av->id : dead_id(r);
    if (chance(&r->g, 0.1))
      reach_edge(r, home, a->xf.pos);
    else
      around(&r->g, home, 0, 6, a->xf.pos);
  } else {
    /* Something that cannot or may not be moved: another avatar, a stack, a tree, a wall... */
    filter f = {0};
    if (chance(&r->g, 0.3)) {
      f.kinds = KIND(OW_KIND_AVATAR);
      f.except = p->avatar;
    }
    a->target = chance(&r->g, 0.9) ? pick_near(r, p, f, 0.6) : dead_id(r);
    around(&r->g, home, 0, 6, a->xf.pos);
  }
  random_rotation(r, &a->xf);
  if (chance(&r->g, 0.12)) spoil(r, &a->xf);
  /* Move ignores the scale; a wild one must not matter. */
  if (chance(&r->g, 0.05)) a->xf.scale[(int)below(&r->g, 3)] = frange(&r->g, -5, 5);
}

static void gen_harvest(run *r, const player *p, ow_action *a) {
  double u = unit(&r->g);
  if (u < 0.85) {
    bool walked;
    filter f = {.kinds = KIND(OW_KIND_RESOURCE)};
    ow_id id = target_or_walk(r, p, f, a, &walked);
    if (walked) return;
    a->target = id;
  } else {
    a->target = chance(&r->g, 0.6) ? any_id(r, p) : dead_id(r);
  }
  a->type = OW_ACT_HARVEST;
}

/* A random buildable type the player can pay for, else any buildable type, else 0. */
static uint16_t buildable_type(run *r, const player *p, bool affordable) {
  const ow_content *c = r->content;
  uint16_t any = 0, afford = 0;
  uint32_t seen_any = 0, seen_afford = 0;
  for (uint16_t t = 0; t < c->ntypes; t++) {
    if (!c->types[t].ncost) continue;
    if (below(&r->g, ++seen_any) == 0) any = t;
    if (affords(r, p, c->types[t].cost, c->types[t].ncost) && below(&r->g, ++seen_afford) == 0)
      afford = t;
  }
  return affordable && seen_afford ? afford : any;
}

static void gen_build(run *r, const player *p, ow_action *a) {
  const ow_content *c = r->content;
  a->type = OW_ACT_BUILD;
  double u = unit(&r->g);
  if (u < 0.8)
    a->kind = buildable_type(r, p, chance(&r->g, 0.8));
  else if (u < 0.9)
    a->kind = (uint16_t)below(&r->g, c->ntypes); /* often not buildable */
  else
    a->kind = chance(&r->g, 0.5) ? (uint16_t)(c->ntypes + below(&r->g, 8)) : UINT16_MAX;
  const float *home = root_pos(r, p->avatar);
  double v = unit(&r->g);
  if (v < 0.85)
    around(&r->g, home, 0, 7.5, a->xf.pos);
  else if (v < 0.93)
    reach_edge(r, home, a->xf.pos);
  else
    around(&r->g, home, 9, 80, a->xf.pos);
  random_rotation(r, &a->xf);
  if (chance(&r->g, 0.12))
    for (int i = 0; i < 3; i++) a->xf.scale[i] = frange(&r->g, 0.05, 5);
  if (chance(&r->g, 0.1)) {
    static const float scales[] = {0.0f, -0.0f, -1.0f, 1000.0f, 1e-30f, 1000.001f, 1e9f};
    int i = (int)below(&r->g, 3);
    switch (below(&r->g, 4)) {
    case 0: a->xf.scale[i] = NAN; break;
    case 1: a->xf.scale[i] = INFINITY; break;
    case 2: a->xf.scale[i] = nextafterf(1000.0f, INFINITY); break;
    default: a->xf.scale[i] = scales[below(&r->g, sizeof scales / sizeof *scales)];
    }
  }
  if (chance(&r->g, 0.06)) spoil(r, &a->xf);
  if (chance(&r->g, 0.1)) a->target = any_id(r, p); /* a failure reports it as the entity */
}

static void gen_craft(run *r, const player *p, ow_action *a) {
  const ow_content *c = r->content;
  a->type = OW_ACT_CRAFT;
  if (chance(&r->g, 0.85) && c->nrecipes) {
    a->kind = (uint16_t)below(&r->g, c->nrecipes);
    if (chance(&r->g, 0.75)) {
      for (uint16_t i = 0; i < c->nrecipes; i++) {
        uint16_t k = (uint16_t)((a->kind + i) % c->nrecipes);
        if (affords(r, p, c->recipes[k].in, c->recipes[k].nin)) {
          a->kind = k;
          break;
        }
      }
    }
  } else {
    a->kind = chance(&r->g, 0.5) ? (uint16_t)(c->nrecipes + below(&r->g, 4)) : UINT16_MAX;
  }
  if (chance(&r->g, 0.1)) a->target = any_id(r, p);
}

/* A count for a transfer out of a stack of `have` units: mostly valid, sometimes not. */
static uint32_t transfer_count(run *r, uint32_t have) {
  double w = unit(&r->g);
  if (w < 0.6) return 1 + (uint32_t)below(&r->g, have);
  if (w < 0.8) return have;
  if (w < 0.85) return 0;
  if (w < 0.91) return have + 1;
  if (w < 0.95) return UINT32_MAX;
  return 1 + (uint32_t)below(&r->g, 250);
}

/* Whether the player's inventory holds as many stacks as it has slots. */
static bool inventory_full(const run *r, const player *p) {
  const mentity *inv = inventory_of(r, p);
  size_t n = 0;
  for (size_t i = 0; i < r->m.n; i++) {
    const mentity *e = &r->m.ents[i];
    n += e->alive && e->parent == inv->id && model_type(&r->m, e->type)->kind == OW_KIND_ITEM;
  }
  return n >= model_type(&r->m, inv->type)->slots;
}

/* Moves a whole stack from the inventory into a container in reach (walking there first). */
static void gen_store(run *r, const player *p, ow_action *a) {
  filter stacks = {.kinds = KIND(OW_KIND_ITEM), .parent = inventory_of(r, p)->id};
  filter boxes = {
      .kinds = KIND(OW_KIND_CONTAINER) | KIND(OW_KIND_VEHICLE), .root = true, .own = OWN_USABLE};
  bool walked;
  ow_id dest = target_or_walk(r, p, boxes, a, &walked);
  if (walked) return;
  a->type = OW_ACT_TRANSFER;
  a->target = pick(r, p, &stacks);
  a->dest = dest;
  const mentity *s = model_get(&r->m, a->target);
  a->count = s ? s->count : 1;
}

static void gen_transfer(run *r, const player *p, ow_action *a) {
  const mentity *inv = inventory_of(r, p);
  filter stacks = {.kinds = KIND(OW_KIND_ITEM)};
  filter boxes = {
      .kinds = KIND(OW_KIND_CONTAINER) | KIND(OW_KIND_VEHICLE), .root = true, .own = OWN_USABLE};
  double u = unit(&r->g);
  bool walked = false;
  if (u < 0.5) {
    /* Store: from the inventory into a chest or cart in reach. */
    stacks.parent = inv->id;
    a->target = pick(r, p, &stacks);
    ow_id box = target_or_walk(r, p, boxes, a, &walked);
    if (walked) return;
    a->dest = box;
  } else if (u < 0.78) {
    /* Fetch: from a chest or cart in reach into the inventory. */
    ow_id box = target_or_walk(r, p, boxes, a, &walked);
    if (walked) return;
    stacks.parent = box;
    a->target = box ? pick(r, p, &stacks) : 0;
    a->dest = inv->id;
  } else {
    /* Anything: other players' containers, non-containers, the same container, dead ids. */
    a->target = chance(&r->g, 0.7) ? pick_near(r, p, stacks, 0.6) : any_id(r, p);
    const mentity *s = model_get(&r->m, a->target);
    double v = unit(&r->g);
    if (v < 0.3 && s)
      a->dest = s->parent;
    else if (v < 0.6)
      a->dest = pick_near(r, p, (filter){.kinds = boxes.kinds}, 0.6);
    else if (v < 0.75)
      a->dest = pick(r, p, &(filter){.kinds = KIND(OW_KIND_CONTAINER), .own = OWN_OTHERS});
    else
      a->dest = any_id(r, p);
  }
  a->type = OW_ACT_TRANSFER;
  if (!a->target) a->target = chance(&r->g, 0.5) ? any_id(r, p) : dead_id(r);
  if (!a->dest) a->dest = chance(&r->g, 0.5) ? inv->id : dead_id(r);
  const mentity *s = model_get(&r->m, a->target);
  a->count = transfer_count(r, s ? s->count : 1);
}

static void gen_interact(run *r, const player *p, ow_action *a) {
  const mentity *av = avatar_of(r, p);
  double u = unit(&r->g);
  bool walked = false;
  ow_id target;
  if (av->parent && u < 0.3) {
    target = av->parent; /* get off */
  } else if (u < 0.5) {
    filter f = {.door = true, .own = chance(&r->g, 0.85) ? OWN_USABLE : OWN_ANY};
    target = target_or_walk(r, p, f, a, &walked);
  } else if (u < 0.85) {
    filter f = {.kinds = KIND(OW_KIND_VEHICLE), .own = chance(&r->g, 0.85) ? OWN_USABLE : OWN_ANY};
    target = target_or_walk(r, p, f, a, &walked);
  } else {
    target = any_id(r, p);
  }
  if (walked) return; /* *a is the walk */
  a->type = OW_ACT_INTERACT;
  a->target = target;
}

static void gen_destroy(run *r, const player *p, ow_action *a) {
  double u = unit(&r->g);
  bool walked = false;
  ow_id target = 0;
  filter f = {.kinds = KIND(OW_KIND_STRUCTURE) | KIND(OW_KIND_CONTAINER) | KIND(OW_KIND_VEHICLE),
              .root = true};
  if (u < 0.6) {
    /* Mostly the player's own things: public ones are shared by everybody and few. */
    double v = unit(&r->g);
    f.own = v < 0.75 ? OWN_MINE : v < 0.85 ? OWN_USABLE : OWN_OTHERS;
    f.empty = chance(&r->g, 0.7);
    target = target_or_walk(r, p, f, a, &walked);
  } else if (u < 0.75) {
    f.root = false;
    target = pick(r, p, &f);
  } else if (u < 0.92) {
    target = any_id(r, p);
  }
  if (walked) return; /* *a is the walk */
  a->type = OW_ACT_DESTROY;
  a->target = target ? target : dead_id(r);
}

static void gen_unknown(run *r, const player *p, ow_action *a) {
  static const uint8_t types[] = {0, OW_ACT_MAX_, OW_ACT_MAX_ + 1, 100, 255};
  a->type = types[below(&r->g, sizeof types / sizeof *types)];
  a->target = any_id(r, p);
  a->dest = any_id(r, p);
  a->kind = (uint16_t)below(&r->g, 4);
  a->count = (uint32_t)below(&r->g, 10);
}

/* One random action for player p: mostly plausible, often wrong in exactly one way. */
static void gen_action(run *r, const player *p, ow_action *a) {
  memset(a, 0, sizeof *a);
  ow_transform_identity(&a->xf);
  const mentity *av = avatar_of(r, p);
  /* A rider mostly wants to get off again, or to drive. */
  if (av->parent && chance(&r->g, 0.25)) {
    if (chance(&r->g, 0.6)) {
      a->type = OW_ACT_INTERACT;
      a->target = av->parent;
    } else {
      a->type = OW_ACT_MOVE;
      a->target = av->parent;
      around(&r->g, root_pos(r, av->parent), 2, 40, a->xf.pos);
    }
    return;
  }
  /* A player with a full inventory mostly builds, crafts or stores things away first; otherwise
   * small inventories (the "tight" scenario) stay full forever and little else succeeds. */
  if (inventory_full(r, p) && chance(&r->g, 0.6)) {
    uint64_t v = below(&r->g, 3);
    if (v == 0)
      gen_build(r, p, a);
    else if (v == 1)
      gen_craft(r, p, a);
    else
      gen_store(r, p, a);
    return;
  }
  uint64_t u = below(&r->g, 100);
  if (u < 20)
    gen_move(r, p, a);
  else if (u < 35)
    gen_harvest(r, p, a);
  else if (u < 48)
    gen_build(r, p, a);
  else if (u < 59)
    gen_craft(r, p, a);
  else if (u < 79)
    gen_transfer(r, p, a);
  else if (u < 89)
    gen_interact(r, p, a);
  else if (u < 97)
    gen_destroy(r, p, a);
  else
    gen_unknown(r, p, a);
}

/* ---- comparing the engine with the model ----------------------------------------------------- */

static bool same_float(float a, float b) { return a == b || (isnan(a) && isnan(b)); }

static bool same_xf(const ow_transform *a, const ow_transform *b) {
  for (int i = 0; i < 3; i++)
    if (!same_float(a->pos[i], b->pos[i]) || !same_float(a->scale[i], b->scale[i])) return false;
  for (int i = 0; i < 4; i++)
    if (!same_float(a->rot[i], b->rot[i])) return false;
  return true;
}

static bool same_result(const ow_result *a, const ow_result *b) {
  return a->code == b->code && a->entity == b->entity && a->count == b->count;
}

static bool same_prop_value(const ow_prop *a, const ow_prop *b) {
  if (a->type != b->type) return false;
  switch (a->type) {
  case OW_PROP_INT: return a->v.i == b->v.i;
  case OW_PROP_FLOAT: return a->v.f == b->v.f;
  case OW_PROP_STRING: return a->v.s && b->v.s && !strcmp(a->v.s, b->v.s);
  case OW_PROP_REF: return a->v.ref == b->v.ref;
  default: return false;
  }
}

/* Properties: the door's "open" as the model says, every other one as the type's default. */
static void compare_props(run *r, const char *what, const mentity *me, const ow_entity *e) {
  const ow_type *t = model_type(&r->m, me->type);
  uint16_t key_open = r->content->key_open;
  size_t expect = me->has_open ? 1 : 0;
  for (uint16_t i = 0; i < t->nprops; i++) expect += t->props[i].key != key_open;
  size_t have = e->props ? e->props->n : 0;
  if (have != expect)
    diff(r, what, "entity %" PRIu64 " (%s): %zu properties, model expects %zu", me->id,
         type_name(r, me->type), have, expect);
  const ow_prop *open = ow_world_prop(e, key_open);
  if (me->has_open != (open != NULL) ||
      (open && (open->type != OW_PROP_INT || open->v.i != me->open)))
    diff(r, what, "entity %" PRIu64 " (%s): open=%s%" PRId64 ", model open=%s%" PRId64, me->id,
         type_name(r, me->type), open ? "" : "absent/",
         open && open->type == OW_PROP_INT ? open->v.i : 0, me->has_open ? "" : "absent/",
         me->open);
  for (uint16_t i = 0; i < t->nprops; i++) {
    if (t->props[i].key == key_open) continue;
    const ow_prop *p = ow_world_prop(e, t->props[i].key);
    if (!p || !same_prop_value(p, &t->props[i]))
      diff(r, what, "entity %" PRIu64 " (%s): property '%s' differs from the type's default",
           me->id, type_name(r, me->type), r->content->keys[t->props[i].key]);
  }
}

static void compare_entity(run *r, const char *what, const mentity *me, const ow_entity *e) {
  ow_world *w = ow_zone_world(r->zone);
  bool same = e->type == me->type && e->owner == me->owner && e->parent == me->parent &&
              same_xf(&e->xf, &me->xf) && e->hp == me->hp && e->count == me->count;
  if (!same) {
    mentity got = {.id = e->id,
                   .type = e->type,
                   .owner = e->owner,
                   .parent = e->parent,
                   .xf = e->xf,
                   .hp = e->hp,
                   .count = e->count};
    diff(r, what, "entity %" PRIu64 " differs:", me->id);
    if (r->diffs <= MAX_DIFFS) {
      fputs("    engine: ", stderr);
      print_entity(r, stderr, &got);
      fprintf(
          stderr, " rot=(%.9g,%.9g,%.9g,%.9g) scale=(%.9g,%.9g,%.9g)\n    model:  ", e->xf.rot[0],
          e->xf.rot[1], e->xf.rot[2], e->xf.rot[3], e->xf.scale[0], e->xf.scale[1], e->xf.scale[2]);
      print_entity(r, stderr, me);
      fprintf(stderr, " rot=(%.9g,%.9g,%.9g,%.9g) scale=(%.9g,%.9g,%.9g)\n", me->xf.rot[0],
              me->xf.rot[1], me->xf.rot[2], me->xf.rot[3], me->xf.scale[0], me->xf.scale[1],
              me->xf.scale[2]);
    }
  }
  compare_props(r, what, me, e);
  /* The region rule: an entity lives in its root's cell. Only meaningful when the parents agree. */
  if (e->parent == me->parent) {
    ow_cell want = model_cell(&r->m, me), got = ow_world_region_cell(w, e->region);
    if (want.x != got.x || want.z != got.z)
      diff(r, what, "entity %" PRIu64 " (%s) is in region (%d,%d), model expects (%d,%d)", me->id,
           type_name(r, me->type), got.x, got.z, want.x, want.z);
  }
}

typedef struct each_ctx {
  run *r;
  const char *what;
  size_t seen;
} each_ctx;

static void each_engine_entity(void *ud, const ow_entity *e) {
  each_ctx *x = ud;
  x->seen++;
  if (!model_get(&x->r->m, e->id))
    diff(x->r, x->what,
         "engine has entity %" PRIu64 " (%s, owner %" PRIu64 ", parent %" PRIu64
         ") that the model does not",
         e->id, type_name(x->r, e->type), e->owner, e->parent);
}

/* The whole state: every entity both ways, the id counter, the regions and the item ledger. */
static void compare_state(run *r, const char *what) {
  ow_world *w = ow_zone_world(r->zone);
  model *m = &r->m;
  size_t live = model_count(m);
  if (ow_world_count(w) != live)
    diff(r, what, "engine has %zu entities, model %zu", ow_world_count(w), live);
  if (ow_world_next_id(w) != m->next_id)
    diff(r, what, "engine's next id is %" PRIu64 ", model's %" PRIu64, ow_world_next_id(w),
         m->next_id);
  for (size_t i = 0; i < m->n; i++) {
    const mentity *me = &m->ents[i];
    const ow_entity *e = ow_world_get(w, me->id);
    if (me->alive && !e)
      diff(r, what, "engine lacks entity %" PRIu64 " (%s, owner %" PRIu64 ")", me->id,
           type_name(r, me->type), me->owner);
    else if (!me->alive && e)
      diff(r, what, "engine still has entity %" PRIu64 " (%s) that the model destroyed", me->id,
           type_name(r, me->type));
    else if (e)
      compare_entity(r, what, me, e);
  }
  each_ctx x = {r, what, 0};
  ow_world_each(w, each_engine_entity, &x);
  if (x.seen != ow_world_count(w))
    diff(r, what, "ow_world_each visited %zu entities, ow_world_count says %zu", x.seen,
         ow_world_count(w));

  /* Region populations: every cell that holds a model entity holds as many in the engine. */
  ow_cell *cells = ow_malloc((live ? live : 1) * sizeof *cells);
  size_t nc = 0;
  for (size_t i = 0; i < m->n; i++)
    if (m->ents[i].alive) cells[nc++] = model_cell(m, &m->ents[i]);
  for (size_t i = 0; i < nc; i++) {
    bool seen = false;
    for (size_t j = 0; j < i && !seen; j++)
      seen = cells[j].x == cells[i].x && cells[j].z == cells[i].z;
    if (seen) continue;
    size_t want = 0;
    for (size_t j = i; j < nc; j++) want += cells[j].x == cells[i].x && cells[j].z == cells[i].z;
    size_t got = ow_world_region_count(w, cells[i]);
    if (got != want)
      diff(r, what, "region (%d,%d) holds %zu entities, model expects %zu", cells[i].x, cells[i].z,
           got, want);
  }
  ow_free(cells);

  /* Conservation: the engine's totals, the model's stacks and the ledger all agree. */
  uint16_t nt = r->content->ntypes;
  uint64_t *totals = ow_calloc(nt, sizeof *totals);
  ow_world_item_totals(w, totals);
  for (uint16_t t = 0; t < nt; t++) {
    int64_t want = m->ledger[t];
    uint64_t held = 0;
    for (size_t i = 0; i < m->n; i++)
      if (m->ents[i].alive && m->ents[i].type == t && r->content->types[t].kind == OW_KIND_ITEM)
        held += m->ents[i].count;
    if (want < 0 || totals[t] != (uint64_t)want)
      diff(r, what, "item totals of %s: engine %" PRIu64 ", ledger %" PRId64, type_name(r, t),
           totals[t], want);
    if (want < 0 || held != (uint64_t)want)
      diff(r, what, "model self-check: the model's stacks of %s hold %" PRIu64 ", ledger %" PRId64,
           type_name(r, t), held, want);
  }
  ow_free(totals);
  check_diffs(r, what);
}

/* ---- driving the zone ------------------------------------------------------------------------ */

static void on_durable(void *ud, const ow_frame_info *f) {
  run *r = ud;
  r->durable_actions += f->nactions;
  if (f->status && !r->durable_status) r->durable_status = f->status;
  /* The zone seals and writes on this thread (ow_zone_commit_sync), so the model is where the
   * zone was when it sealed the frame. */
  if (!f->status) r->durable_next_id = r->m.next_id;
}

static void open_zone(run *r) {
  r->store = ow_test_store(r->dir);
  int rc = ow_zone_open(&r->zone, &r->zc, r->content, r->store, on_durable, r);
  if (rc) {
    diff(r, "open", "ow_zone_open failed: %s", ow_err_name(rc));
    check_diffs(r, "open");
  }
}

static void close_zone(run *r) {
  if (r->zone) ow_zone_close(r->zone);
  if (r->store) ow_store_close(r->store);
  r->zone = NULL;
  r->store = NULL;
}

/* Ends a frame: everything applied so far becomes durable, and the world must equal the model. */
static void commit(run *r, bool checkpoint) {
  int rc = ow_zone_commit_sync(r->zone, checkpoint);
  if (rc || r->durable_status)
    diff(r, "commit", "commit failed: rc=%s status=%s", ow_err_name(rc),
         ow_err_name(r->durable_status));
  if (ow_zone_durable_frame(r->zone) + 1 != ow_zone_frame(r->zone))
    diff(r, "commit", "durable frame %" PRIu64 " but gathering frame %" PRIu64,
         ow_zone_durable_frame(r->zone), ow_zone_frame(r->zone));
  if (r->durable_actions != r->processed)
    diff(r, "commit", "%" PRIu64 " actions reported durable, %" PRIu64 " processed",
         r->durable_actions, r->processed);
  r->frames++;
  compare_state(r, "state after frame");
}

static session *new_session(run *r, size_t pi, uint64_t id) {
  session s = {.id = id, .player = pi};
  OW_VEC_PUSH(r->sessions, s);
  r->players[pi].session = r->sessions.len - 1;
  return &r->sessions.v[r->sessions.len - 1];
}

/* Logs a player in. The first login creates an avatar and an inventory (in the model too); a later
 * one only opens another session for the same avatar. */
static void login(run *r, size_t i) {
  player *p = &r->players[i];
  uint64_t sid;
  ow_id avatar;
  int rc = ow_zone_login(r->zone, p->account, &sid, &avatar);
  if (rc) diff(r, "login", "ow_zone_login(%" PRIu64 ") failed: %s", p->account, ow_err_name(rc));
  check_diffs(r, "login");
  ow_id want = p->joined ? p->avatar : model_login(&r->m, p->account);
  if (avatar != want)
    diff(r, "login", "account %" PRIu64 " got avatar %" PRIu64 ", model expects %" PRIu64,
         p->account, avatar, want);
  for (size_t j = 0; j < r->sessions.len; j++)
    if (r->sessions.v[j].id == sid) diff(r, "login", "session id %" PRIu64 " was reused", sid);
  p->avatar = want;
  p->joined = true;
  new_session(r, i, sid);
  check_diffs(r, "login");
}

static void report_action(run *r, const char *what, size_t pi, uint64_t seq, const ow_action *a,
                          const ow_result *want, const ow_result *got) {
  mismatch_header(r, what);
  fprintf(stderr, "  player=%zu account=%" PRIu64 " avatar=%" PRIu64 " seq=%" PRIu64 " action=", pi,
          r->players[pi].account, r->players[pi].avatar, seq);
  print_action(r, stderr, a);
  fputs("\n  engine: ", stderr);
  print_result(stderr, got);
  fputs("\n  model:  ", stderr);
  print_result(stderr, want);
  fputc('\n', stderr);
}

/* Compares the entities an action names or reports (and the actor's avatar and inventory) right
 * after it, so that a wrong effect is reported at the action that caused it rather than at the
 * end of the frame. */
static void compare_touched(run *r, const player *p, const ow_action *a, const ow_result *got) {
  const mentity *inv = inventory_of(r, p);
  ow_id ids[] = {a->target, a->dest, got->entity, p->avatar, inv ? inv->id : 0};
  for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
    if (!ids[i]) continue;
    const mentity *me = model_get(&r->m, ids[i]);
    const ow_entity *e = ow_world_get(ow_zone_world(r->zone), ids[i]);
    if (!me != !e)
      diff(r, "entity after action", "entity %" PRIu64 " %s in the engine but %s in the model",
           ids[i], e ? "exists" : "does not exist", me ? "exists" : "does not exist");
    else if (me)
      compare_entity(r, "entity after action", me, e);
  }
}

/* Counts the rarer successful events, given what the world looked like before the action: whether
 * the actor rode something and whether the target had children. */
static void count_events(run *r, const ow_action *a, bool was_riding, bool had_children) {
  const mentity *t = model_get(&r->m, a->target);
  const ow_type *tt = t ? model_type(&r->m, t->type) : NULL;
  if (!tt) return;
  if (a->type == OW_ACT_INTERACT && tt->door) r->doors++;
  if (a->type == OW_ACT_INTERACT && tt->kind == OW_KIND_VEHICLE) {
    if (was_riding)
      r->leaves++;
    else
      r->enters++;
  }
  if (a->type == OW_ACT_MOVE && tt->kind == OW_KIND_VEHICLE && had_children) r->drives++;
}

/* Sends a new action on the player's session and compares the result with the model's. */
static void act(run *r, size_t pi) {
  player *p = &r->players[pi];
  session *s = &r->sessions.v[p->session];
  ow_action a;
  gen_action(r, p, &a);
  uint64_t seq = s->last_seq + (chance(&r->g, 0.1) ? 2 + below(&r->g, 4) : 1);
  bool was_riding = avatar_of(r, p)->parent != 0;
  bool had_children = model_has_children(&r->m, a.target);
  ow_result want = model_apply(&r->m, p->account, p->avatar, &a);
  if (!want.code) count_events(r, &a, was_riding, had_children);
  ow_result got = {0};
  uint64_t frame = 0;
  bool replayed = true;
  int rc = ow_zone_act(r->zone, s->id, seq, &a, &got, &frame, &replayed);
  if (rc || replayed || frame != ow_zone_frame(r->zone)) {
    mismatch_header(r, "action");
    fprintf(stderr,
            "  ow_zone_act returned %s replayed=%d frame=%" PRIu64 " (gathering %" PRIu64 ")\n",
            ow_err_name(rc), replayed, frame, ow_zone_frame(r->zone));
  }
  if (!same_result(&want, &got)) report_action(r, "action result", pi, seq, &a, &want, &got);
  compare_touched(r, p, &a, &got);
  hist h = {.seq = seq, .frame = frame, .res = got};
  OW_VEC_PUSH(s->h, h);
  s->last_seq = seq;
  logged l = {.session = s->id,
              .seq = seq,
              .frame = frame,
              .index = r->index,
              .player = pi,
              .action = a,
              .res = got};
  OW_VEC_PUSH(r->log, l);
  r->processed++;
  int t = a.type >= 1 && a.type < OW_ACT_MAX_ ? a.type : OW_ACT_MAX_;
  r->by_type[t]++;
  if (!got.code) {
    r->succeeded++;
    r->ok_by_type[t]++;
  } else if (got.code <= -1000 && got.code > -1064) {
    r->codes[t][-got.code - 1000]++;
  }
  check_diffs(r, "action");
}

static uint32_t window(const run *r) { return r->zc.replay_window ? r->zc.replay_window : 64; }

/* Sends an old sequence number again on session s: within the window the zone must answer with the
 * original result and frame, older (or never used) it must refuse with OW_E_SEQ_TOO_OLD; either way
 * nothing changes, which the next state comparison checks. Returns false if s has no history. */
static bool replay(run *r, session *s, const char *what) {
  if (!s->h.len) return false;
  uint32_t win = window(r);
  size_t in_window = s->h.len < win ? s->h.len : win;
  const hist *h = NULL;
  uint64_t seq;
  double u = unit(&r->g);
  if (u < 0.75 || s->h.len <= win) {
    h = &s->h.v[s->h.len - 1 - below(&r->g, in_window)];
    seq = h->seq;
  } else if (u < 0.9) {
    seq = s->h.v[below(&r->g, s->h.len - win)].seq;
  } else {
    /* A sequence number the session skipped, if it skipped any. */
    seq = 0;
    for (int tries = 0; tries < 8 && !seq; tries++) {
      uint64_t cand = 1 + below(&r->g, s->last_seq);
      bool used = false;
      for (size_t i = 0; i < s->h.len && !used; i++) used = s->h.v[i].seq == cand;
      if (!used) seq = cand;
    }
    if (!seq) {
      h = &s->h.v[s->h.len - 1];
      seq = h->seq;
    }
  }
  ow_action a;
  gen_action(r, &r->players[s->player], &a); /* whatever it says, it must be ignored */
  ow_result got = {0};
  uint64_t frame = 0;
  bool replayed = false;
  ow_world *w = ow_zone_world(r->zone);
  size_t streamed, count = ow_world_count(w), pending = ow_world_pending(w, &streamed);
  ow_id next = ow_world_next_id(w);
  int rc = ow_zone_act(r->zone, s->id, seq, &a, &got, &frame, &replayed);
  size_t pending_after = ow_world_pending(w, &streamed);
  if (ow_world_count(w) != count || ow_world_next_id(w) != next || pending_after != pending)
    diff(r, what,
         "session %" PRIu64 " seq %" PRIu64 ": sending an old sequence number changed the "
         "world (entities %zu -> %zu, next id %" PRIu64 " -> %" PRIu64 ", pending changes "
         "%zu -> %zu)",
         s->id, seq, count, ow_world_count(w), next, ow_world_next_id(w), pending, pending_after);
  if (h) {
    if (rc || !replayed || frame != h->frame || !same_result(&got, &h->res)) {
      report_action(r, what, s->player, seq, &a, &h->res, &got);
      fprintf(stderr,
              "  replay: rc=%s replayed=%d frame=%" PRIu64 ", originally frame %" PRIu64 "\n",
              ow_err_name(rc), replayed, frame, h->frame);
    }
    r->replays++;
  } else {
    if (rc != OW_E_SEQ_TOO_OLD || replayed) {
      mismatch_header(r, what);
      fprintf(stderr,
              "  session %" PRIu64 " seq %" PRIu64 " (last %" PRIu64 ", not in the last %u"
              " actions): ow_zone_act returned %s replayed=%d, expected OW_E_SEQ_TOO_OLD\n",
              s->id, seq, s->last_seq, win, ow_err_name(rc), replayed);
    }
    r->too_old++;
  }
  check_diffs(r, what);
  return true;
}

/* Calls the zone the wrong way: an unknown session, or sequence number 0. */
static void bad_call(run *r, size_t pi) {
  ow_action a;
  gen_action(r, &r->players[pi], &a);
  ow_result got = {0};
  uint64_t frame = 0;
  bool replayed = false;
  if (chance(&r->g, 0.5)) {
    uint64_t sid = rnd(&r->g);
    for (size_t i = 0; i < r->sessions.len; i++)
      if (r->sessions.v[i].id == sid) return;
    int rc = ow_zone_act(r->zone, sid, 1 + below(&r->g, 100), &a, &got, &frame, &replayed);
    if (rc != OW_E_NO_SESSION)
      diff(r, "bad call", "unknown session: %s, expected OW_E_NO_SESSION", ow_err_name(rc));
  } else {
    int rc = ow_zone_act(r->zone, r->sessions.v[r->players[pi].session].id, 0, &a, &got, &frame,
                         &replayed);
    if (rc != OW_E_INVAL)
      diff(r, "bad call", "sequence number 0: %s, expected OW_E_INVAL", ow_err_name(rc));
  }
  check_diffs(r, "bad call");
}

/* ---- recovery -------------------------------------------------------------------------------- */

typedef struct log_ctx {
  run *r;
  size_t next;
  uint64_t last_frame;
} log_ctx;

static bool same_action(const ow_action *a, const ow_action *b) {
  /* The log keeps an action's encoding: a type that is not built-in is its type and argument
   * bytes only, whatever named fields the generator filled in. */
  if (!ow_action_builtin(a->type)) return ow_test_action_eq(a, b);
  return a->type == b->type && a->kind == b->kind && a->target == b->target && a->dest == b->dest &&
         a->count == b->count && same_xf(&a->xf, &b->xf);
}

static int visit_frame(void *ud, uint64_t frame, const ow_applied *a) {
  log_ctx *x = ud;
  run *r = x->r;
  if (frame < x->last_frame)
    diff(r, "frame log", "frame %" PRIu64 " logged after frame %" PRIu64, frame, x->last_frame);
  x->last_frame = frame;
  if (!a) return 0;
  if (x->next >= r->log.len) {
    diff(r, "frame log",
         "frame %" PRIu64 " logs session %" PRIu64 " seq %" PRIu64
         " beyond the %zu actions processed",
         frame, a->session, a->seq, r->log.len);
    return 0;
  }
  const logged *l = &r->log.v[x->next++];
  if (a->session != l->session || a->seq != l->seq || frame != l->frame ||
      !same_action(&a->action, &l->action) || !same_result(&a->result, &l->res)) {
    diff(r, "frame log",
         "entry %zu: frame %" PRIu64 " session %" PRIu64 " seq %" PRIu64 " code %d entity %" PRIu64
         "; applied as frame %" PRIu64 " session %" PRIu64 " seq %" PRIu64
         " code %d entity %" PRIu64 " (action index %" PRIu64 ")",
         x->next - 1, frame, a->session, a->seq, a->result.code, a->result.entity, l->frame,
         l->session, l->seq, l->res.code, l->res.entity, l->index);
  }
  return 0;
}

/* Closes the zone and the store, reopens both and checks that nothing was lost or changed. */
static void recover(run *r) {
  commit(r, true);
  uint64_t durable = ow_zone_durable_frame(r->zone);
  close_zone(r);
  open_zone(r);
  model_restart(&r->m, r->durable_next_id);
  const char *what = "recovery";
  if (ow_zone_load_info(r->zone)->seeded) diff(r, what, "the reopened store was seeded again");
  if (ow_zone_durable_frame(r->zone) != durable)
    diff(r, what, "durable frame %" PRIu64 " after reopening, %" PRIu64 " before",
         ow_zone_durable_frame(r->zone), durable);
  compare_state(r, what);

  /* Sessions survive with their account, avatar and last sequence number... */
  for (size_t i = 0; i < r->sessions.len; i++) {
    session *s = &r->sessions.v[i];
    ow_id account = 0, avatar = 0;
    uint64_t last = 0;
    int rc = ow_zone_session(r->zone, s->id, &account, &avatar, &last);
    const player *p = &r->players[s->player];
    if (rc || account != p->account || avatar != p->avatar || last != s->last_seq)
      diff(r, what,
           "session %" PRIu64 ": rc=%s account=%" PRIu64 " avatar=%" PRIu64 " last_seq=%" PRIu64
           ", expected account=%" PRIu64 " avatar=%" PRIu64 " last_seq=%" PRIu64,
           s->id, ow_err_name(rc), account, avatar, last, p->account, p->avatar, s->last_seq);
  }
  check_diffs(r, what);
  /* ...and still answer old sequence numbers with the original results. */
  for (size_t i = 0; i < r->sessions.len; i++)
    for (int k = 0; k < 4; k++) replay(r, &r->sessions.v[i], "replay after recovery");

  /* The frame log holds exactly the processed actions, in order, with their results. */
  log_ctx x = {r, 0, 0};
  int rc = ow_zone_frame_log_each(r->store, visit_frame, &x);
  if (rc) diff(r, "frame log", "ow_zone_frame_log_each failed: %s", ow_err_name(rc));
  if (x.next != r->log.len)
    diff(r, "frame log", "the log holds %zu actions, %zu were processed", x.next, r->log.len);
  check_diffs(r, "frame log");

  /* Sometimes a player reconnects: a new session, the same avatar, no new entities. */
  if (chance(&r->g, 0.5)) {
    size_t pi = below(&r->g, MAX_PLAYERS);
    if (r->players[pi].joined) {
      login(r, pi);
      compare_state(r, "state after a second login");
    }
  }
  r->recoveries++;
}

/* ---- scenarios ------------------------------------------------------------------------------- */

static ow_content *default_content(void) { return ow_test_content(); }
static ow_zone_config default_config(void) { return ow_test_zone_config(); }

static json_t *type_by_name(json_t *types, const char *name) {
  size_t i;
  json_t *t;
  json_array_foreach(types, i, t) {
    if (!strcmp(json_string_value(json_object_get(t, "name")), name)) return t;
  }
  fprintf(stderr, "model_random: content has no type '%s'\n", name);
  abort();
}

static void set_int(json_t *types, const char *type, const char *field, json_int_t v) {
  json_object_set_new(type_by_name(types, type), field, json_integer(v));
}

static void add_seed(json_t *ents, const char *type, double x, double y, double z) {
  json_t *e = json_object();
  json_object_set_new(e, "type", json_string(type));
  json_object_set_new(e, "pos", json_pack("[f,f,f]", x, y, z));
  json_array_append_new(ents, e);
}

/* The shipped content with small stacks, few slots, one seat and cheap carts, extra resources and
 * public containers, a door and a cart at the spawn, and recipes with two inputs or outputs or
 * whose output includes an input (for the rule that a stack emptied by a craft receives nothing;
 * they also keep small inventories from clogging for good). */
static ow_content *tight_content(void) {
  json_error_t jerr;
  json_t *root = json_load_file(ow_test_source_path("content/default.json"), 0, &jerr);
  if (!root) {
    fprintf(stderr, "model_random: content/default.json: %s\n", jerr.text);
    abort();
  }
  json_t *types = json_object_get(root, "types");
  set_int(types, "wood", "stack_max", 7);
  set_int(types, "stone", "stack_max", 5);
  set_int(types, "plank", "stack_max", 6);
  set_int(types, "stone_block", "stack_max", 3);
  set_int(types, "tree", "hp", 400);
  set_int(types, "rock", "hp", 300);
  set_int(types, "inventory", "slots", 4);
  set_int(types, "chest", "slots", 3);
  set_int(types, "cart", "slots", 2);
  set_int(types, "cart", "seats", 1);
  json_object_set_new(type_by_name(types, "cart"), "cost",
                      json_pack("{s:i, s:i}", "plank", 3, "stone", 1));
  json_t *recipes = json_object_get(root, "recipes");
  json_array_append_new(recipes,
                        json_pack("{s:s, s:{s:i, s:i}, s:{s:i, s:i}}", "name", "mixed", "in",
                                  "wood", 1, "stone", 1, "out", "plank", 2, "stone_block", 1));
  json_array_append_new(recipes, json_pack("{s:s, s:{s:i}, s:{s:i, s:i}}", "name", "recycle", "in",
                                           "plank", 3, "out", "plank", 1, "wood", 1));
  /* Sinks that always fit: a full stack goes in, one unit of the same type comes out. */
  json_array_append_new(recipes, json_pack("{s:s, s:{s:i}, s:{s:i}}", "name", "burn", "in", "wood",
                                           7, "out", "wood", 1));
  json_array_append_new(recipes, json_pack("{s:s, s:{s:i}, s:{s:i}}", "name", "crush", "in",
                                           "stone", 5, "out", "stone", 1));
  json_t *ents = json_object_get(json_object_get(root, "world"), "entities");
  add_seed(ents, "chest", 1, 0, 4);
  add_seed(ents, "chest", -1.5, 0, 0);
  add_seed(ents, "door", -1, 0, 4);
  add_seed(ents, "cart", 0, 0, 6);
  add_seed(ents, "cart", -2, 0, -2);
  add_seed(ents, "wall", 2, 0, -1);
  add_seed(ents, "tree", 5, 0, 0);
  add_seed(ents, "tree", -5, 0, 1);
  add_seed(ents, "rock", 0, 0, -3);
  add_seed(ents, "rock", 1, 0, 8);
  char *text = json_dumps(root, JSON_PRESERVE_ORDER);
  json_decref(root);
  ow_content *c;
  char err[512];
  if (ow_content_load_string(text, strlen(text), &c, err, sizeof err)) {
    fprintf(stderr, "model_random: tight content: %s\n", err);
    abort();
  }
  free(text);
  return c;
}

/* Regions of 16 m put region borders right at the spawn (x = 0 and z = 0); a window of 8 makes
 * replays fall out of it often. */
static ow_zone_config tight_config(void) {
  ow_zone_config c = ow_test_zone_config();
  c.world.region_size = 16;
  c.replay_window = 8;
  return c;
}

/* Reach disabled: everything is in reach, so far more actions get as far as the stacking rules. */
static ow_zone_config noreach_config(void) {
  ow_zone_config c = tight_config();
  c.world.reach = 0;
  c.replay_window = 64;
  return c;
}

static const scenario scenarios[] = {
    {"default", default_content, default_config},
    {"tight", tight_content, tight_config},
    {"noreach", tight_content, noreach_config},
};

/* ---- the test -------------------------------------------------------------------------------- */

static uint64_t env_u64(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  char *end;
  uint64_t x = strtoull(v, &end, 0);
  if (*end) {
    fprintf(stderr, "model_random: %s=%s is not a number\n", name, v);
    abort();
  }
  return x;
}

static int setup(void **state) {
  const scenario *sc = *state;
  run *r = ow_calloc(1, sizeof *r);
  r->sc = sc;
  /* Each scenario gets its own stream, derived from the one seed that is printed. */
  r->seed = g_total.seed;
  r->g.s = g_total.seed ^ (0x5bd1e995ULL * (uint64_t)(sc - scenarios + 1));
  r->nactions = g_total.actions;
  r->content = sc->content();
  r->zc = sc->config();
  r->dir = ow_test_mkdtemp("model");
  model_init(&r->m, r->content, &r->zc.world);
  for (size_t i = 0; i < MAX_PLAYERS; i++) r->players[i].account = 1001 + i * 7;
  *state = r;
  return 0;
}

/* Runs after the test whether it passed or not, so a failure leaves no directory behind. */
static int teardown(void **state) {
  run *r = *state;
  close_zone(r);
  ow_test_rmdir(r->dir);
  for (size_t i = 0; i < r->sessions.len; i++) OW_VEC_FREE(r->sessions.v[i].h);
  OW_VEC_FREE(r->sessions);
  OW_VEC_FREE(r->log);
  OW_VEC_FREE(r->scratch);
  model_deinit(&r->m);
  ow_content_destroy(r->content);
  ow_free(r);
  return 0;
}

static void run_scenario(void **state) {
  run *r = *state;
  const scenario *sc = r->sc;
  uint64_t t0 = ow_now_ns();
  open_zone(r);
  if (!ow_zone_load_info(r->zone)->seeded) diff(r, "open", "a new store was not seeded");
  model_seed(&r->m);
  compare_state(r, "seeded world");
  for (size_t i = 0; i < INITIAL_PLAYERS; i++) login(r, i);
  commit(r, false);

  uint64_t until_commit = 1 + below(&r->g, 20);
  for (r->index = 0; r->index < r->nactions; r->index++) {
    /* A latecomer joins a third of the way in: its avatar takes ids between those of actions. */
    if (r->index == r->nactions / 3 && !r->players[MAX_PLAYERS - 1].joined)
      login(r, MAX_PLAYERS - 1);
    size_t pi;
    do pi = below(&r->g, MAX_PLAYERS);
    while (!r->players[pi].joined);
    double u = unit(&r->g);
    if (u < 0.04) {
      if (!replay(r, &r->sessions.v[below(&r->g, r->sessions.len)], "replay")) act(r, pi);
    } else if (u < 0.045) {
      bad_call(r, pi);
    } else {
      act(r, pi);
    }
    if (--until_commit == 0) {
      commit(r, chance(&r->g, 0.3));
      until_commit = 1 + below(&r->g, 20);
    }
    if ((r->index + 1) % RECOVERY_EVERY == 0) recover(r);
  }
  recover(r);
  double secs = (double)(ow_now_ns() - t0) / 1e9;

  printf("model_random scenario=%s seed=%" PRIu64 " actions=%" PRIu64 " processed=%" PRIu64
         " succeeded=%" PRIu64 " (%.0f%%) replays=%" PRIu64 " too_old=%" PRIu64 " frames=%" PRIu64
         " recoveries=%" PRIu64 " entities=%zu next_id=%" PRIu64 " seconds=%.2f\n",
         sc->name, r->seed, r->nactions, r->processed, r->succeeded,
         r->processed ? 100.0 * (double)r->succeeded / (double)r->processed : 0.0, r->replays,
         r->too_old, r->frames, r->recoveries, model_count(&r->m), r->m.next_id, secs);
  printf("model_random scenario=%s enters=%" PRIu64 " leaves=%" PRIu64 " drives=%" PRIu64
         " door_toggles=%" PRIu64 " ok/sent by action:",
         sc->name, r->enters, r->leaves, r->drives, r->doors);
  for (int t = 1; t <= OW_ACT_MAX_; t++)
    if (r->by_type[t])
      printf(" %s=%" PRIu64 "/%" PRIu64, t < OW_ACT_MAX_ ? action_name((uint8_t)t) : "unknown",
             r->ok_by_type[t], r->by_type[t]);
  printf("\n");
  if (getenv("OW_MODEL_VERBOSE")) {
    for (int t = 1; t <= OW_ACT_MAX_; t++) {
      printf("  %s:", action_name((uint8_t)t));
      for (int c = 0; c < 64; c++)
        if (r->codes[t][c]) printf(" %s=%" PRIu64, ow_err_name(-1000 - c), r->codes[t][c]);
      printf("\n");
    }
  }
  fflush(stdout);
  g_total.frames += r->frames;
  g_total.recoveries += r->recoveries;
  g_total.scenarios++;
}

int main(void) {
  g_total.seed = env_u64("OW_MODEL_SEED", (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
  g_total.actions = env_u64("OW_MODEL_ACTIONS", 5000);
  const char *only = getenv("OW_MODEL_SCENARIO");
  printf("model_random seed=%" PRIu64 " actions=%" PRIu64 "\n", g_total.seed, g_total.actions);
  fflush(stdout);
  ow_log_level = OW_LOG_WARN;

  struct CMUnitTest tests[sizeof scenarios / sizeof *scenarios];
  size_t n = 0;
  for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++) {
    if (only && *only && strcmp(only, scenarios[i].name)) continue;
    tests[n] = (struct CMUnitTest){.name = scenarios[i].name,
                                   .test_func = run_scenario,
                                   .setup_func = setup,
                                   .teardown_func = teardown,
                                   .initial_state = (void *)&scenarios[i]};
    n++;
  }
  if (!n) {
    fprintf(stderr, "model_random: no scenario named '%s'\n", only);
    return 1;
  }
  int failed = _cmocka_run_group_tests("model_random", tests, n, NULL, NULL);
  if (!failed)
    printf("model_random seed=%" PRIu64 " actions=%" PRIu64 " scenarios=%u frames=%" PRIu64
           " recoveries=%" PRIu64 " ok\n",
           g_total.seed, g_total.actions, g_total.scenarios, g_total.frames, g_total.recoveries);
  return failed;
}
