/*
 * crash test, the parent: sets up a world (players with full inventories, public chests), then
 * repeatedly starts the child (crash_child.c), kills it with SIGKILL at a random moment and
 * recovers the store itself to check it:
 *   - every action the side file records as durable is in the frame log exactly once, with the
 *     recorded frame and result, and with the action the child sent (its intent);
 *   - no (session, seq) is in the frame log twice, and the frame log has no gaps;
 *   - the item totals equal those after the setup (the workload only moves items around);
 *   - every trusted session and its avatar survived, and the entities are well-formed, each
 *     stored under its root's region (docs/storage.md).
 * A last run is stopped cleanly with SIGTERM, after which every intent of the players' current
 * sessions must be confirmed. The last line of stdout is `kills=N lost_durable=M`.
 *
 * Usage: crash_kill [--kills N] [--seed S]; or OW_CRASH_KILLS=N, OW_CRASH_SEED=S.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crash.h"
#include "otherworld/protocol.h"

enum {
  DEFAULT_KILLS = 50,
  READY_TIMEOUT_MS = 30000, /* recovery plus resends; generous for sanitizer builds */
  STOP_TIMEOUT_MS = 30000,
  PROBLEMS_SHOWN = 25, /* problems printed in full; the rest are only counted */
};

typedef struct sess {
  uint64_t id;
  ow_id account, avatar;
  int32_t player;
  bool trusted;          /* its login is durable (a CR_SESSION record) */
  uint64_t max_conf_seq; /* highest confirmed seq */
} sess;

typedef struct conf {
  uint64_t key, frame;
  ow_result res;
  bool lost, mismatched; /* already counted */
} conf;

typedef struct intent_rec {
  uint64_t key;
  ow_action action;
} intent_rec;

typedef struct state {
  uint64_t seed;
  uint32_t kills_wanted;
  uint64_t rng;
  char *dir;
  char store_path[1024], side_path[1024];
  ow_content *content;
  uint64_t *t0; /* item totals after the setup */
  cr_side side; /* the setup's writer */
  size_t side_off;
  bool setup_done;

  OW_VEC(sess) sessions;
  ow_map sess_of; /* session id -> index */
  OW_VEC(intent_rec) intents;
  ow_map intent_of; /* key -> index */
  OW_VEC(conf) confs;
  ow_map conf_of;              /* key -> index */
  ow_map dup_reported;         /* keys counted as duplicated */
  ow_map region_reported;      /* entities counted as stored in the wrong region */
  int32_t current[CR_PLAYERS]; /* each player's newest trusted session (index) */

  /* figures */
  uint32_t kills, early_kills, checks;
  uint64_t logged_actions, max_frame, max_conf_frame;
  uint64_t replays_checked, replay_bad, resent, resent_replayed, logins, torn_tails;
  uint64_t lost_durable, duplicated, mismatched, conservation_failures, region_errors, problems;
} state;

static state g_st;
static pid_t g_child;

static void problem(state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(state *st, const char *fmt, ...) {
  if (st->problems++ < PROBLEMS_SHOWN) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "crash: problem after kill %u: ", st->kills);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
  }
}

static uint64_t key_of(uint64_t sidx, uint64_t seq) {
  return (sidx << 40) | (seq & ((UINT64_C(1) << 40) - 1));
}

static uint64_t now_ms(void) { return ow_now_ns() / 1000000; }

static void sleep_ms(uint32_t ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

/* ---- what the side file says ----------------------------------------------------------------- */

static uint64_t sess_index(state *st, uint64_t id) {
  uint64_t *v = ow_map_get(&st->sess_of, id);
  if (v) return *v;
  sess s = {.id = id, .player = -1};
  OW_VEC_PUSH(st->sessions, s);
  ow_map_set(&st->sess_of, id, st->sessions.len - 1);
  return st->sessions.len - 1;
}

static void ingest(state *st, const cr_rec *r) {
  switch (r->type) {
  case CR_SESSION: {
    uint64_t i = sess_index(st, r->session);
    sess *s = &st->sessions.v[i];
    s->trusted = true;
    s->account = r->account;
    s->avatar = r->avatar;
    s->player = r->player;
    if (r->player >= 0 && r->player < CR_PLAYERS) st->current[r->player] = (int32_t)i;
    if (st->setup_done) st->logins++;
    break;
  }
  case CR_INTENT: {
    uint64_t k = key_of(sess_index(st, r->session), r->seq);
    uint64_t *v = ow_map_get(&st->intent_of, k);
    if (v) {
      if (!ow_test_action_eq(&st->intents.v[*v].action, &r->action))
        problem(st, "two different intents for session %016" PRIx64 " seq %" PRIu64, r->session,
                r->seq);
      break;
    }
    intent_rec in = {k, r->action};
    OW_VEC_PUSH(st->intents, in);
    ow_map_set(&st->intent_of, k, st->intents.len - 1);
    break;
  }
  case CR_DURABLE: {
    uint64_t si = sess_index(st, r->session);
    sess *s = &st->sessions.v[si];
    if (!s->trusted)
      problem(st, "confirmation for session %016" PRIx64 " before its login was durable",
              r->session);
    uint64_t k = key_of(si, r->seq);
    uint64_t *v = ow_map_get(&st->conf_of, k);
    if (v) {
      conf *c = &st->confs.v[*v];
      if (c->frame != r->frame || !ow_test_result_eq(&c->res, &r->res)) {
        problem(st,
                "session %016" PRIx64 " seq %" PRIu64 " confirmed twice with different results "
                "(frame %" PRIu64 " code %d, then frame %" PRIu64 " code %d)",
                r->session, r->seq, c->frame, c->res.code, r->frame, r->res.code);
        if (!c->mismatched) st->mismatched++;
        c->mismatched = true;
      }
      break;
    }
    conf c = {.key = k, .frame = r->frame, .res = r->res};
    if (r->frame > st->max_conf_frame) st->max_conf_frame = r->frame;
    OW_VEC_PUSH(st->confs, c);
    ow_map_set(&st->conf_of, k, st->confs.len - 1);
    if (r->seq > s->max_conf_seq) s->max_conf_seq = r->seq;
    break;
  }
  case CR_REPLAY:
    if (r->flags & CR_F_CHECK) {
      st->replays_checked++;
      if (!(r->flags & CR_F_OK)) {
        st->replay_bad++;
        problem(st,
                "replay of confirmed session %016" PRIx64 " seq %" PRIu64 " did not return the "
                "recorded result (got code %d entity %" PRIu64 " count %u frame %" PRIu64 ")",
                r->session, r->seq, r->res.code, r->res.entity, r->res.count, r->frame);
      }
    }
    if (r->flags & CR_F_RESEND) {
      st->resent++;
      if (r->flags & CR_F_REPLAYED) st->resent_replayed++;
    }
    break;
  case CR_ERROR:
    problem(st,
            "the child reported error %" PRIu64 " (session %016" PRIx64 " seq %" PRIu64 " code %d)",
            r->account, r->session, r->seq, r->res.code);
    break;
  }
}

static void read_side(state *st) {
  cr_recs recs = {0};
  bool torn;
  st->side_off = cr_side_read(st->side_path, st->side_off, &recs, true, &torn);
  if (torn) st->torn_tails++;
  for (size_t i = 0; i < recs.len; i++) ingest(st, &recs.v[i]);
  OW_VEC_FREE(recs);
}

/* ---- what the store says --------------------------------------------------------------------- */

typedef struct logged {
  uint64_t frame;
  ow_result res;
} logged;

typedef struct log_scan {
  state *st;
  ow_map seen; /* key -> index into `entries` */
  OW_VEC(logged) entries;
  uint64_t last_frame, nactions;
} log_scan;

static int log_visit(void *ud, uint64_t frame, const ow_applied *a) {
  log_scan *x = ud;
  state *st = x->st;
  if (frame != x->last_frame) {
    if (frame != x->last_frame + 1)
      problem(st, "frame log jumps from frame %" PRIu64 " to %" PRIu64, x->last_frame, frame);
    x->last_frame = frame;
  }
  if (!a) return 0;
  x->nactions++;
  uint64_t *si = ow_map_get(&st->sess_of, a->session);
  if (!si) {
    problem(st, "frame %" PRIu64 " holds an action of unknown session %016" PRIx64, frame,
            a->session);
    return 0;
  }
  uint64_t k = key_of(*si, a->seq);
  if (ow_map_get(&x->seen, k)) {
    if (!ow_map_get(&st->dup_reported, k)) {
      ow_map_set(&st->dup_reported, k, 1);
      st->duplicated++;
    }
    problem(st,
            "session %016" PRIx64 " seq %" PRIu64 " is logged twice (again in frame %" PRIu64 ")",
            a->session, a->seq, frame);
    return 0;
  }
  logged l = {frame, a->result};
  OW_VEC_PUSH(x->entries, l);
  ow_map_set(&x->seen, k, x->entries.len - 1);
  uint64_t *ii = ow_map_get(&st->intent_of, k);
  if (!ii)
    problem(st, "session %016" PRIx64 " seq %" PRIu64 " is logged but was never sent", a->session,
            a->seq);
  else if (!ow_test_action_eq(&st->intents.v[*ii].action, &a->action))
    problem(st,
            "session %016" PRIx64 " seq %" PRIu64 " is logged with another action than was sent",
            a->session, a->seq);
  return 0;
}

typedef struct ent {
  ow_id id, owner, parent;
  uint16_t type;
  uint32_t count;
} ent;

typedef struct ent_scan {
  OW_VEC(ent) v;
} ent_scan;

static void ent_visit(void *ud, const ow_entity *e) {
  ent_scan *s = ud;
  ent x = {e->id, e->owner, e->parent, e->type, e->count};
  OW_VEC_PUSH(s->v, x);
}

/* Entities are well-formed: items sit in containers with the container's owner and a sane count,
 * no container holds more stacks than its slots, each avatar has exactly one inventory, the
 * seeded entities are all there (nothing in the workload builds or destroys), and every entity is
 * stored in its root's region. */
static void check_entities(state *st, ow_zone *z) {
  ow_world *w = ow_zone_world(z);
  const ow_content *ct = st->content;
  ent_scan s = {0};
  ow_world_each(w, ent_visit, &s);
  ow_map stacks, invs;
  ow_map_init(&stacks);
  ow_map_init(&invs);
  uint64_t items = 0, avatars = 0, inventories = 0, others = 0;
  for (size_t i = 0; i < s.v.len; i++) {
    const ent *e = &s.v.v[i];
    const ow_type *t = &ct->types[e->type];
    const ow_entity *p = e->parent ? ow_world_get(w, e->parent) : NULL;
    if (e->parent && !p)
      problem(st, "entity %" PRIu64 " has a missing parent %" PRIu64, e->id, e->parent);
    if (t->kind == OW_KIND_ITEM) {
      items++;
      if (!p || !ct->types[p->type].slots)
        problem(st, "item stack %" PRIu64 " is not in a container", e->id);
      else if (p->owner != e->owner)
        problem(st, "item stack %" PRIu64 " has owner %" PRIu64 ", its container %" PRIu64, e->id,
                e->owner, p->owner);
      if (e->count < 1 || e->count > t->stack_max)
        problem(st, "item stack %" PRIu64 " holds %u units (stack_max %u)", e->id, e->count,
                t->stack_max);
      if (e->parent) {
        uint64_t *n = ow_map_get(&stacks, e->parent);
        ow_map_set(&stacks, e->parent, n ? *n + 1 : 1);
      }
    } else if (e->type == ct->avatar_type) {
      avatars++;
      if (!e->owner) problem(st, "avatar %" PRIu64 " has no owner", e->id);
    } else if (e->type == ct->inventory_type) {
      inventories++;
      if (!p || p->type != ct->avatar_type || p->owner != e->owner)
        problem(st, "inventory %" PRIu64 " is not held by its owner's avatar", e->id);
      else {
        uint64_t *n = ow_map_get(&invs, e->parent);
        ow_map_set(&invs, e->parent, n ? *n + 1 : 1);
      }
    } else {
      others++;
    }
  }
  /* Regions (docs/storage.md): every entity is stored under the cell of its root's position.
   * After recovery an entity's region is the cell of the key it was loaded from. */
  for (size_t i = 0; i < s.v.len; i++) {
    const ent *e = &s.v.v[i];
    const ow_entity *me = ow_world_get(w, e->id), *root = me;
    for (int depth = 0; root && root->parent && depth < 64; depth++)
      root = ow_world_get(w, root->parent);
    if (!root || root->parent) continue; /* reported above as a missing parent */
    ow_cell want = ow_world_cell_of(w, root->xf.pos), got = ow_world_region_cell(w, me->region);
    if ((want.x != got.x || want.z != got.z) && !ow_map_get(&st->region_reported, e->id)) {
      /* Counted once per entity: a misplaced key stays misplaced until its root moves again. */
      ow_map_set(&st->region_reported, e->id, 1);
      st->region_errors++;
      problem(st,
              "entity %" PRIu64 " (%s) is stored in cell (%d,%d) but its root %" PRIu64
              " (at x=%.2f z=%.2f) is in cell (%d,%d)",
              e->id, ct->types[e->type].name, got.x, got.z, root->id, (double)root->xf.pos[0],
              (double)root->xf.pos[2], want.x, want.z);
    }
  }
  for (size_t i = 0; i < s.v.len; i++) {
    const ent *e = &s.v.v[i];
    uint64_t *n = ow_map_get(&stacks, e->id);
    if (n && *n > ct->types[e->type].slots)
      problem(st, "container %" PRIu64 " holds %" PRIu64 " stacks in %u slots", e->id, *n,
              ct->types[e->type].slots);
    n = ow_map_get(&invs, e->id);
    if (e->type == ct->avatar_type && (!n || *n != 1))
      problem(st, "avatar %" PRIu64 " has %" PRIu64 " inventories", e->id, n ? *n : 0);
  }
  if (others != ct->nseeds)
    problem(st, "%" PRIu64 " seeded entities instead of %u", others, ct->nseeds);
  if (inventories != avatars)
    problem(st, "%" PRIu64 " avatars but %" PRIu64 " inventories", avatars, inventories);
  if (ow_world_count(w) != items + avatars + inventories + others)
    problem(st, "world counts %zu entities, the scan %" PRIu64, ow_world_count(w),
            items + avatars + inventories + others);
  ow_map_deinit(&stacks);
  ow_map_deinit(&invs);
  OW_VEC_FREE(s.v);
}

/* Every confirmed action: present once, in the recorded frame, with the recorded result. */
static void check_confirmed(state *st, const log_scan *x) {
  for (size_t i = 0; i < st->confs.len; i++) {
    conf *c = &st->confs.v[i];
    uint64_t *li = ow_map_get(&x->seen, c->key);
    sess *s = &st->sessions.v[c->key >> 40];
    uint64_t seq = c->key & ((UINT64_C(1) << 40) - 1);
    if (!li) {
      if (!c->lost) st->lost_durable++;
      c->lost = true;
      problem(st,
              "LOST: session %016" PRIx64 " seq %" PRIu64 " was confirmed durable in frame %" PRIu64
              " but is not in the frame log (which ends at frame %" PRIu64 ")",
              s->id, seq, c->frame, x->last_frame);
      continue;
    }
    const logged *l = &x->entries.v[*li];
    if (l->frame != c->frame || !ow_test_result_eq(&l->res, &c->res)) {
      if (!c->mismatched) st->mismatched++;
      c->mismatched = true;
      problem(st,
              "session %016" PRIx64 " seq %" PRIu64 " confirmed in frame %" PRIu64
              " code %d entity %" PRIu64 " count %u, logged in frame %" PRIu64
              " code %d entity %" PRIu64 " count %u",
              s->id, seq, c->frame, c->res.code, c->res.entity, c->res.count, l->frame, l->res.code,
              l->res.entity, l->res.count);
    }
  }
}

/* Recovers the store the child left behind and checks it against the side file. */
static void check_store(state *st, bool final) {
  st->checks++;
  read_side(st);
  ow_store_options so = {.path = st->store_path, .map_size = 64u << 20};
  ow_store *store;
  /* Under tests/pg/pg_env.sh the child's store is the PostgreSQL schema for the same path. */
  char *uri = ow_test_store_uri(st->store_path), err[512] = "";
  int rc = uri ? ow_store_open_uri(&store, uri, &so, err, sizeof err) : ow_store_open(&store, &so);
  ow_free(uri);
  if (rc) {
    problem(st, "cannot open the store: %s", ow_strerror(rc));
    return;
  }
  /* The frame log first, straight from the store: it needs no recovery, so a recovery that fails
   * still gets its lost actions counted. */
  log_scan x = {.st = st};
  ow_map_init(&x.seen);
  rc = ow_zone_frame_log_each(store, log_visit, &x);
  if (rc) problem(st, "frame log scan failed: %s", ow_err_name(rc));
  st->logged_actions = x.nactions;
  check_confirmed(st, &x);

  ow_zone_config zc = cr_zone_config();
  ow_zone *z;
  rc = ow_zone_open(&z, &zc, st->content, store, NULL, NULL);
  if (rc) {
    problem(st, "recovery failed: %s", ow_err_name(rc));
    ow_map_deinit(&x.seen);
    OW_VEC_FREE(x.entries);
    ow_store_close(store);
    return;
  }
  uint64_t durable = ow_zone_durable_frame(z);
  if (x.last_frame != durable)
    problem(st, "frame log ends at frame %" PRIu64 ", the store's frame is %" PRIu64, x.last_frame,
            durable);
  if (st->max_conf_frame > durable)
    problem(st, "frame %" PRIu64 " was confirmed durable, the store is at frame %" PRIu64,
            st->max_conf_frame, durable);
  st->max_frame = durable;

  /* Conservation: transfers only move units. */
  uint64_t *tot = ow_calloc(st->content->ntypes, sizeof *tot);
  ow_world_item_totals(ow_zone_world(z), tot);
  for (uint16_t t = 0; t < st->content->ntypes; t++)
    if (tot[t] != st->t0[t]) {
      st->conservation_failures++;
      problem(st, "conservation: %" PRIu64 " units of %s, %" PRIu64 " after the setup", tot[t],
              st->content->types[t].name, st->t0[t]);
    }
  ow_free(tot);

  /* Trusted sessions survive with their avatar and remember at least their confirmed actions. */
  for (size_t i = 0; i < st->sessions.len; i++) {
    const sess *s = &st->sessions.v[i];
    if (!s->trusted) continue;
    ow_id account, avatar;
    uint64_t last_seq;
    if (ow_zone_session(z, s->id, &account, &avatar, &last_seq)) {
      problem(st, "session %016" PRIx64 " (account %" PRIu64 ") was durable but is gone", s->id,
              s->account);
      continue;
    }
    if (account != s->account || avatar != s->avatar)
      problem(st,
              "session %016" PRIx64 " has account %" PRIu64 " avatar %" PRIu64 ", expected %" PRIu64
              " %" PRIu64,
              s->id, account, avatar, s->account, s->avatar);
    if (last_seq < s->max_conf_seq)
      problem(st,
              "session %016" PRIx64 " remembers seq %" PRIu64 " but seq %" PRIu64 " was confirmed",
              s->id, last_seq, s->max_conf_seq);
    const ow_entity *av = ow_world_get(ow_zone_world(z), avatar);
    if (!av || av->owner != account || av->type != st->content->avatar_type)
      problem(st, "session %016" PRIx64 ": avatar %" PRIu64 " is missing or not the account's",
              s->id, avatar);
  }
  check_entities(st, z);

  /* After a clean stop nothing applied may be left unconfirmed: every intent of the players'
   * current sessions was re-sent at the start of the last run and then committed by the stop. */
  if (final) {
    for (size_t i = 0; i < st->intents.len; i++) {
      uint64_t k = st->intents.v[i].key, si = k >> 40;
      bool current = false;
      for (int p = 0; p < CR_PLAYERS; p++) current |= st->current[p] == (int32_t)si;
      if (current && !ow_map_get(&st->conf_of, k))
        problem(st, "after the clean stop, session %016" PRIx64 " seq %" PRIu64 " is unconfirmed",
                st->sessions.v[si].id, k & ((UINT64_C(1) << 40) - 1));
    }
  }

  ow_map_deinit(&x.seen);
  OW_VEC_FREE(x.entries);
  ow_zone_close(z);
  ow_store_close(store);
}

/* ---- setup ----------------------------------------------------------------------------------- */

static void setup_on_durable(void *ud, const ow_frame_info *f) {
  state *st = ud;
  if (f->status)
    problem(st, "setup commit of frame %" PRIu64 " failed: %s", f->frame, ow_err_name(f->status));
  cr_side_add_durable(&st->side, f);
}

typedef struct res_find {
  uint16_t type;
  OW_VEC(ow_id) ids;
} res_find;

static void res_visit(void *ud, const ow_entity *e) {
  res_find *f = ud;
  if (e->type == f->type) OW_VEC_PUSH(f->ids, e->id);
}

/* Seeds the world, logs the players in and fills their inventories by harvesting; all of it
 * durable before the first child starts. The item totals afterwards are what every kill must
 * preserve. */
static void setup_world(state *st) {
  cr_side_open(&st->side, st->side_path);
  ow_store *store = ow_test_store(st->store_path);
  ow_zone_config zc = cr_zone_config();
  ow_zone *z;
  assert_int_equal(ow_zone_open(&z, &zc, st->content, store, setup_on_durable, st), 0);
  uint64_t sid[CR_PLAYERS];
  ow_id avatar[CR_PLAYERS];
  for (int i = 0; i < CR_PLAYERS; i++)
    assert_int_equal(ow_zone_login(z, (ow_id)i + 1, &sid[i], &avatar[i]), 0);
  assert_int_equal(ow_zone_commit_sync(z, true), 0);
  for (int i = 0; i < CR_PLAYERS; i++) {
    cr_rec r = {.type = CR_SESSION,
                .player = i,
                .account = (ow_id)i + 1,
                .avatar = avatar[i],
                .session = sid[i],
                .frame = ow_zone_durable_frame(z)};
    cr_side_add(&st->side, &r);
  }
  cr_side_flush(&st->side);

  static const struct {
    const char *type;
    int hits;
  } plan[] = {{"tree", 8}, {"rock", 10}, {"crystal", 6}};
  for (int i = 0; i < CR_PLAYERS; i++) {
    uint64_t seq = 1;
    for (size_t k = 0; k < sizeof plan / sizeof plan[0]; k++) {
      res_find f = {
          .type = (uint16_t)ow_content_type_id(st->content, plan[k].type, strlen(plan[k].type))};
      ow_world_each(ow_zone_world(z), res_visit, &f);
      assert_true(f.ids.len > 0);
      for (int h = 0; h < plan[k].hits; h++) {
        ow_action a = {.type = OW_ACT_HARVEST,
                       .target = f.ids.v[ow_test_below(&st->rng, (uint32_t)f.ids.len)]};
        ow_transform_identity(&a.xf);
        cr_rec in = {.type = CR_INTENT, .player = i, .session = sid[i], .seq = seq, .action = a};
        cr_side_add(&st->side, &in);
        cr_side_flush(&st->side);
        ow_result res;
        uint64_t frame;
        bool replayed;
        assert_int_equal(ow_zone_act(z, sid[i], seq++, &a, &res, &frame, &replayed), 0);
        assert_int_equal(res.code, 0);
      }
      OW_VEC_FREE(f.ids);
    }
  }
  assert_int_equal(ow_zone_commit_sync(z, true), 0);
  st->t0 = ow_calloc(st->content->ntypes, sizeof *st->t0);
  ow_world_item_totals(ow_zone_world(z), st->t0);
  printf("crash: setup: %d players, frame %" PRIu64 ", %zu entities, items", CR_PLAYERS,
         ow_zone_durable_frame(z), ow_world_count(ow_zone_world(z)));
  for (uint16_t t = 0; t < st->content->ntypes; t++)
    if (st->t0[t]) printf(" %s=%" PRIu64, st->content->types[t].name, st->t0[t]);
  printf("\n");
  ow_zone_close(z);
  ow_store_close(store);
  cr_side_close(&st->side);
  read_side(st); /* before setup_done: the setup's own sessions are not counted as logins */
  st->setup_done = true;
}

/* ---- the child ------------------------------------------------------------------------------- */

static pid_t spawn_child(state *st, uint32_t run, int *ready_fd) {
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  fflush(stdout);
  fflush(stderr);
  pid_t parent = getpid();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Never outlive the parent, even if it dies without killing us. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(5);
    if (p[1] == CR_READY_FD)
      fcntl(p[1], F_SETFD, 0);
    else if (dup2(p[1], CR_READY_FD) < 0)
      _exit(5);
    char seed[32], runs[16];
    snprintf(seed, sizeof seed, "%" PRIu64, st->seed);
    snprintf(runs, sizeof runs, "%u", run);
    char *args[] = {"crash_kill", "--child", st->dir, seed, runs, NULL};
    execv("/proc/self/exe", args);
    _exit(6);
  }
  close(p[1]);
  *ready_fd = p[0];
  g_child = pid;
  return pid;
}

/* 1 when the child said it is ready, 0 on timeout, -1 when it closed the pipe without a word. */
static int wait_ready(int fd, int timeout_ms) {
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    uint64_t now = now_ms();
    if (now >= end) return 0;
    int n = poll(&pf, 1, (int)(end - now));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    char b;
    ssize_t r = read(fd, &b, 1);
    if (r < 0 && errno == EINTR) continue;
    return r == 1 ? 1 : -1;
  }
}

static int reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (g_child == pid) g_child = 0;
  return status;
}

static void describe_exit(state *st, uint32_t run, int status, const char *expected) {
  if (WIFEXITED(status))
    problem(st, "child run %u exited with status %d (expected %s)", run, WEXITSTATUS(status),
            expected);
  else if (WIFSIGNALED(status))
    problem(st, "child run %u died of signal %d (expected %s)", run, WTERMSIG(status), expected);
}

/* One run: start the child, kill it at a random moment, reap it. */
static void kill_run(state *st, uint32_t run) {
  int fd;
  pid_t pid = spawn_child(st, run, &fd);
  uint32_t r = ow_test_below(&st->rng, 100);
  if (r < 8) {
    /* During recovery or the resends, before the child is ready. */
    sleep_ms(ow_test_below(&st->rng, 25));
    st->early_kills++;
  } else {
    int ready = wait_ready(fd, READY_TIMEOUT_MS);
    if (ready != 1)
      problem(st, "child run %u %s", run, ready ? "died before it was ready" : "was never ready");
    if (r < 18)
      sleep_ms(ow_test_below(&st->rng, 10)); /* right after the restart */
    else
      sleep_ms(30 + ow_test_below(&st->rng, 371));
  }
  kill(pid, SIGKILL);
  int status = reap(pid);
  close(fd);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
    describe_exit(st, run, status, "SIGKILL");
  st->kills++;
}

/* The last run: a clean stop with SIGTERM, which commits everything applied. */
static void final_run(state *st, uint32_t run) {
  int fd;
  pid_t pid = spawn_child(st, run, &fd);
  int ready = wait_ready(fd, READY_TIMEOUT_MS);
  if (ready != 1)
    problem(st, "final child %s", ready ? "died before it was ready" : "was never ready");
  sleep_ms(200);
  kill(pid, SIGTERM);
  int status = 0;
  uint64_t end = now_ms() + STOP_TIMEOUT_MS;
  pid_t w;
  while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < end) sleep_ms(5);
  if (w != pid) {
    problem(st, "final child did not stop within %d ms", STOP_TIMEOUT_MS);
    kill(pid, SIGKILL);
    status = reap(pid);
  }
  g_child = 0;
  close(fd);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) describe_exit(st, run, status, "exit 0");
}

/* ---- the test -------------------------------------------------------------------------------- */

static int teardown(void **state_) {
  (void)state_;
  if (g_child > 0) {
    kill(g_child, SIGKILL);
    reap(g_child);
  }
  return 0;
}

static void test_crash_kill(void **state_) {
  (void)state_;
  state *st = &g_st;
  uint64_t t_start = now_ms();
  st->rng = st->seed;
  st->dir = ow_test_mkdtemp("crash");
  snprintf(st->store_path, sizeof st->store_path, "%s/store", st->dir);
  snprintf(st->side_path, sizeof st->side_path, "%s/side", st->dir);
  st->content = cr_content();
  ow_map_init(&st->sess_of);
  ow_map_init(&st->intent_of);
  ow_map_init(&st->conf_of);
  ow_map_init(&st->dup_reported);
  ow_map_init(&st->region_reported);
  for (int i = 0; i < CR_PLAYERS; i++) st->current[i] = -1;
  printf("crash: seed=%" PRIu64 " kills=%u dir=%s (replay the workload with OW_CRASH_SEED=%" PRIu64
         ")\n",
         st->seed, st->kills_wanted, st->dir, st->seed);

  setup_world(st);
  check_store(st, false);
  /* Bounded in time whatever happens: a run is a few hundred milliseconds plus its check. */
  uint64_t budget_ms = 60000 + (uint64_t)st->kills_wanted * 2000;
  uint32_t run = 1;
  while (st->kills < st->kills_wanted) {
    if (now_ms() - t_start > budget_ms) {
      problem(st, "out of time after %u kills (budget %" PRIu64 " ms)", st->kills, budget_ms);
      break;
    }
    kill_run(st, run++);
    check_store(st, false);
  }
  final_run(st, run);
  check_store(st, true);

  double secs = (double)(now_ms() - t_start) / 1000.0;
  printf("crash: runs=%u early_kills=%u checks=%u frames=%" PRIu64 " logged_actions=%" PRIu64
         " logins=%" PRIu64 " runtime=%.1fs\n",
         run, st->early_kills, st->checks, st->max_frame, st->logged_actions, st->logins, secs);
  printf("confirmed=%zu replays_checked=%" PRIu64 " replay_mismatches=%" PRIu64 " resent=%" PRIu64
         " resent_replayed=%" PRIu64 " torn_tails=%" PRIu64 "\n",
         st->confs.len, st->replays_checked, st->replay_bad, st->resent, st->resent_replayed,
         st->torn_tails);
  printf("duplicated=%" PRIu64 " mismatched=%" PRIu64 " conservation_failures=%" PRIu64
         " region_errors=%" PRIu64 " problems=%" PRIu64 "\n",
         st->duplicated, st->mismatched, st->conservation_failures, st->region_errors,
         st->problems);
  fflush(stdout);
  bool ok = !st->problems && !st->lost_durable && !st->duplicated && !st->mismatched &&
            !st->conservation_failures && !st->replay_bad && !st->region_errors;
  if (ok)
    ow_test_rmdir(st->dir);
  else {
    fprintf(stderr, "crash: store and side file kept in %s\n", st->dir);
    ow_free(st->dir);
  }
  st->dir = NULL;
  ow_content_destroy(st->content);
  ow_free(st->t0);
  OW_VEC_FREE(st->sessions);
  OW_VEC_FREE(st->intents);
  OW_VEC_FREE(st->confs);
  ow_map_deinit(&st->sess_of);
  ow_map_deinit(&st->intent_of);
  ow_map_deinit(&st->conf_of);
  ow_map_deinit(&st->dup_reported);
  ow_map_deinit(&st->region_reported);

  assert_int_equal(st->lost_durable, 0);
  assert_int_equal(st->duplicated, 0);
  assert_int_equal(st->mismatched, 0);
  assert_int_equal(st->conservation_failures, 0);
  assert_int_equal(st->replay_bad, 0);
  assert_int_equal(st->region_errors, 0);
  assert_int_equal(st->problems, 0);
  assert_true(st->kills >= st->kills_wanted);
  assert_true(st->replays_checked > 0);
}

static uint64_t parse_u64(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || end == s || *end) {
    fprintf(stderr, "crash_kill: bad %s '%s'\n", what, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--child")) return cr_child_main(argc, argv);
  ow_log_level = OW_LOG_WARN;
  state *st = &g_st;
  st->kills_wanted = DEFAULT_KILLS;
  const char *e = getenv("OW_CRASH_KILLS");
  if (e && *e) st->kills_wanted = (uint32_t)parse_u64(e, "OW_CRASH_KILLS");
  bool have_seed = false;
  e = getenv("OW_CRASH_SEED");
  if (e && *e) {
    st->seed = parse_u64(e, "OW_CRASH_SEED");
    have_seed = true;
  }
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--kills") && i + 1 < argc) {
      st->kills_wanted = (uint32_t)parse_u64(argv[++i], "--kills");
    } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
      st->seed = parse_u64(argv[++i], "--seed");
      have_seed = true;
    } else {
      fprintf(stderr, "usage: %s [--kills N] [--seed S]   (or OW_CRASH_KILLS, OW_CRASH_SEED)\n",
              argv[0]);
      return 2;
    }
  }
  if (!have_seed && getrandom(&st->seed, sizeof st->seed, 0) != sizeof st->seed)
    st->seed = ow_now_ns() ^ ((uint64_t)getpid() << 32);

  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_crash_kill, teardown),
  };
  int rc = cmocka_run_group_tests_name("crash", tests, NULL, NULL);
  fflush(stderr);
  printf("kills=%u lost_durable=%" PRIu64 "\n", st->kills, st->lost_durable);
  fflush(stdout);
  return rc;
}
