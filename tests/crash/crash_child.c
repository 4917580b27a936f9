/*
 * crash test, the child: recovers the zone from the store the way the server does, sends again
 * what a client would send again after a server restart (a few confirmed actions, which must come
 * back as replays with their recorded results, and every unconfirmed one), then runs a random
 * workload on the real libuv driver until the parent kills it. Every durable confirmation goes to
 * the side file. See crash.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#include "crash.h"
#include "otherworld/protocol.h"
#include "zone/loop.h"

enum {
  MAX_STACKS = 64, /* more stacks than any container here has slots */
  MAX_CHESTS = 16,
  LIFETIME_MS = 120000,    /* the parent kills us long before; this only bounds an orphan */
  REPLAY_CHECKS_LAST = 3,  /* confirmed actions re-sent per session after a restart: the newest */
  REPLAY_CHECKS_RANDOM = 2 /* ... and a few older ones inside the replay window */
};

typedef struct player {
  int32_t idx;
  ow_id account, avatar, inv;
  uint64_t session, next_seq;
} player;

/* A login is trusted (written to the side file) only once the frame that stores it is durable. */
typedef struct pending_login {
  int32_t player;
  ow_id account, avatar;
  uint64_t session, frame;
} pending_login;

typedef struct child {
  const char *dir;
  uint32_t run;
  uint64_t rng;
  ow_content *content;
  ow_store *store;
  ow_zone *z;
  ow_zone_loop *zl;
  uv_loop_t loop;
  uv_timer_t burst, life;
  uv_signal_t term;
  cr_side side;
  player pl[CR_PLAYERS];
  OW_VEC(pending_login) logins;
  ow_id chests[MAX_CHESTS];
  int nchests;
  ow_id resource; /* a tree: a valid entity that is not a container */
  uint32_t visitors;
} child;

static _Noreturn void fail(child *c, uint32_t code, uint64_t session, uint64_t seq,
                           const ow_result *got, const char *what) {
  cr_rec r = {.type = CR_ERROR, .account = code, .session = session, .seq = seq};
  if (got) r.res = *got;
  cr_side_add(&c->side, &r);
  cr_side_flush(&c->side);
  fprintf(stderr, "crash child run %u: %s (session=%016llx seq=%llu)\n", c->run, what,
          (unsigned long long)session, (unsigned long long)seq);
  _exit(3);
}

static void on_durable(void *ud, const ow_frame_info *f) {
  child *c = ud;
  if (f->status) fail(c, CR_ERR_STORE, 0, f->frame, NULL, "a commit failed");
  /* Logins first: a session's record must precede every confirmation of its actions, which can
   * only be in this frame or later ones. */
  size_t keep = 0;
  for (size_t i = 0; i < c->logins.len; i++) {
    pending_login *l = &c->logins.v[i];
    if (l->frame <= f->frame) {
      cr_rec r = {.type = CR_SESSION,
                  .player = l->player,
                  .account = l->account,
                  .avatar = l->avatar,
                  .session = l->session,
                  .frame = l->frame};
      cr_side_add(&c->side, &r);
    } else {
      c->logins.v[keep++] = *l;
    }
  }
  c->logins.len = keep;
  cr_side_add_durable(&c->side, f);
}

/* ---- the workload ---------------------------------------------------------------------------- */

typedef struct stacks {
  const ow_content *content;
  ow_id parent;
  int n;
  ow_id id[MAX_STACKS];
  uint32_t count[MAX_STACKS];
} stacks;

static void stacks_visit(void *ud, const ow_entity *e) {
  stacks *s = ud;
  if (e->parent != s->parent || s->content->types[e->type].kind != OW_KIND_ITEM) return;
  if (s->n < MAX_STACKS) {
    s->id[s->n] = e->id;
    s->count[s->n++] = e->count;
  }
}

static void stacks_of(child *c, ow_id container, stacks *s) {
  s->content = c->content;
  s->parent = container;
  s->n = 0;
  ow_world_each(ow_zone_world(c->z), stacks_visit, s);
}

static float rand_unit(child *c) {
  return (float)((double)(ow_test_rand(&c->rng) >> 11) / 9007199254740992.0);
}

/* Mostly valid counts, sometimes the whole stack, sometimes more than it holds (OW_E_BAD_COUNT). */
static uint32_t pick_count(child *c, uint32_t have) {
  uint32_t r = ow_test_below(&c->rng, 10);
  if (r == 0) return have + 1 + ow_test_below(&c->rng, 3);
  if (r == 1) return have;
  return 1 + ow_test_below(&c->rng, have);
}

/* A transfer of a random stack of `src` into `dst`; from an empty container it targets the
 * container itself, which the zone refuses (OW_E_NOT_ITEM). */
static void transfer(child *c, ow_action *a, ow_id src, ow_id dst) {
  stacks s;
  stacks_of(c, src, &s);
  a->type = OW_ACT_TRANSFER;
  a->dest = dst;
  if (!s.n) {
    a->target = src;
    a->count = 1;
    return;
  }
  int i = (int)ow_test_below(&c->rng, (uint32_t)s.n);
  a->target = s.id[i];
  a->count = pick_count(c, s.count[i]);
}

static ow_id random_chest(child *c) {
  return c->chests[ow_test_below(&c->rng, (uint32_t)c->nchests)];
}

static player *other_player(child *c, const player *p) {
  return &c->pl[(p->idx + 1 + (int32_t)ow_test_below(&c->rng, CR_PLAYERS - 1)) % CR_PLAYERS];
}

/* A pose near the spawn: every chest and resource stays within reach (8 m). */
static void near_spawn(child *c, ow_transform *xf) {
  ow_transform_identity(xf);
  xf->pos[0] = (rand_unit(c) * 2 - 1) * 1.7f;
  xf->pos[2] = (rand_unit(c) * 2 - 1) * 1.7f;
  float yaw = rand_unit(c) * 6.2831853f;
  xf->rot[1] = sinf(yaw / 2);
  xf->rot[3] = cosf(yaw / 2);
}

/* Transfers in both directions between the player's inventory and the public chests (they never
 * change the item totals), some invalid on purpose, and moves of the own avatar. Nothing here
 * creates or destroys items, so conservation must hold whatever gets lost in a crash. */
static void make_action(child *c, player *p, ow_action *a) {
  memset(a, 0, sizeof *a);
  ow_transform_identity(&a->xf);
  uint32_t r = ow_test_below(&c->rng, 100);
  if (r < 38) {
    transfer(c, a, p->inv, random_chest(c));
  } else if (r < 76) {
    transfer(c, a, random_chest(c), p->inv);
  } else if (r < 80) {
    ow_id from = random_chest(c), to = random_chest(c);
    transfer(c, a, from, to); /* the same chest twice gives OW_E_SAME_CONTAINER */
  } else if (r < 88) {
    switch (ow_test_below(&c->rng, 6)) {
    case 0: transfer(c, a, other_player(c, p)->inv, p->inv); break; /* OW_E_FORBIDDEN */
    case 1: transfer(c, a, p->inv, other_player(c, p)->inv); break; /* OW_E_FORBIDDEN */
    case 2: transfer(c, a, p->inv, c->resource); break;             /* OW_E_NOT_CONTAINER */
    case 3: transfer(c, a, p->inv, p->inv); break;                  /* OW_E_SAME_CONTAINER */
    case 4:
      transfer(c, a, p->inv, random_chest(c));
      a->count = 0; /* OW_E_BAD_COUNT */
      break;
    default:
      a->type = OW_ACT_TRANSFER; /* OW_E_NOT_FOUND: an id nobody has yet */
      a->target = ow_world_next_id(ow_zone_world(c->z)) + 1000 + ow_test_below(&c->rng, 1000);
      a->dest = random_chest(c);
      a->count = 1;
      break;
    }
  } else if (r < 97) {
    a->type = OW_ACT_MOVE;
    a->target = p->avatar;
    near_spawn(c, &a->xf);
  } else if (r < 98) {
    /* Out of reach of everything until the next move brings it back (OW_E_TOO_FAR meanwhile). */
    a->type = OW_ACT_MOVE;
    a->target = p->avatar;
    a->xf.pos[0] = 20 + rand_unit(c) * 5;
    a->xf.pos[2] = 20 + rand_unit(c) * 5;
  } else {
    a->type = 99; /* OW_E_UNKNOWN_ACTION */
    a->target = p->avatar;
  }
}

static void act_one(child *c, player *p) {
  ow_action a;
  make_action(c, p, &a);
  uint64_t seq = p->next_seq++;
  /* The intent reaches the side file before the zone sees the action, so a restart can always
   * send this very action again under the same sequence number. */
  cr_rec in = {.type = CR_INTENT, .player = p->idx, .session = p->session, .seq = seq, .action = a};
  cr_side_add(&c->side, &in);
  cr_side_flush(&c->side);
  ow_result res;
  uint64_t frame;
  bool replayed;
  int rc = ow_zone_act(c->z, p->session, seq, &a, &res, &frame, &replayed);
  if (rc) fail(c, CR_ERR_ACT, p->session, seq, &res, ow_err_name(rc));
  if (replayed) fail(c, CR_ERR_ACT, p->session, seq, &res, "a new sequence number was replayed");
}

static void login(child *c, int32_t idx, ow_id account, uint64_t *session, ow_id *avatar) {
  int rc = ow_zone_login(c->z, account, session, avatar);
  if (rc) fail(c, CR_ERR_ACT, 0, account, NULL, "login failed");
  pending_login l = {.player = idx,
                     .account = account,
                     .avatar = *avatar,
                     .session = *session,
                     .frame = ow_zone_frame(c->z)};
  OW_VEC_PUSH(c->logins, l);
}

/* A new session for an existing player: same avatar, sequence numbers start again at 1. Used at
 * once, like a client would; if it is lost in a crash, so are its actions, and the restart goes on
 * with the previous session. */
static void relogin(child *c, player *p) {
  uint64_t sid;
  ow_id av;
  login(c, p->idx, p->account, &sid, &av);
  if (av != p->avatar) fail(c, CR_ERR_AVATAR, sid, 0, NULL, "a new session got another avatar");
  p->session = sid;
  p->next_seq = 1;
}

/* A first login of a new account: creates an avatar and its inventory, which must survive once
 * the login is durable. The account never acts. */
static void visitor(child *c) {
  uint64_t sid;
  ow_id av;
  ow_id account = 1000000 + (ow_id)c->run * 1000 + c->visitors++;
  login(c, -1, account, &sid, &av);
  if (!cr_inventory_of(c->z, av)) fail(c, CR_ERR_AVATAR, sid, 0, NULL, "visitor has no inventory");
}

static void stream(child *c, player *p) {
  ow_transform xf;
  near_spawn(c, &xf);
  int rc = ow_zone_stream(c->z, p->session, p->avatar, &xf);
  if (rc) fail(c, CR_ERR_ACT, p->session, 0, NULL, "stream refused");
}

/* Every millisecond: a burst of 0 to 4 operations from random players, so that kills land
 * between, during and right after commits. */
static void burst_cb(uv_timer_t *t) {
  child *c = t->data;
  uint32_t n = ow_test_below(&c->rng, 5);
  for (uint32_t i = 0; i < n; i++) {
    player *p = &c->pl[ow_test_below(&c->rng, CR_PLAYERS)];
    uint32_t r = ow_test_below(&c->rng, 10000);
    if (r < 3)
      relogin(c, p);
    else if (r < 5)
      visitor(c);
    else if (r < 200)
      stream(c, p);
    else
      act_one(c, p);
  }
}

static void life_cb(uv_timer_t *t) {
  child *c = t->data;
  fprintf(stderr, "crash child run %u: never killed, giving up\n", c->run);
  _exit(4);
}

static void stopped(void *ud) { (void)ud; }

/* SIGTERM: the parent's final, clean stop. Everything applied is committed before exit. */
static void term_cb(uv_signal_t *s, int signum) {
  (void)signum;
  child *c = s->data;
  uv_timer_stop(&c->burst);
  uv_close((uv_handle_t *)&c->burst, NULL);
  uv_close((uv_handle_t *)&c->life, NULL);
  uv_close((uv_handle_t *)&c->term, NULL);
  ow_zone_loop_stop(c->zl, stopped, c);
}

/* ---- restart --------------------------------------------------------------------------------- */

typedef struct intent {
  uint64_t seq;
  size_t rec; /* index into the records */
} intent;

typedef OW_VEC(intent) intents;

static int cmp_intent(const void *a, const void *b) {
  uint64_t x = ((const intent *)a)->seq, y = ((const intent *)b)->seq;
  return x < y ? -1 : x > y;
}

static int player_of(const child *c, uint64_t session) {
  for (int i = 0; i < CR_PLAYERS; i++)
    if (c->pl[i].session == session) return i;
  return -1;
}

/* Sends (session, seq) again with its recorded intent and returns what the zone answered. */
static int resend(child *c, player *p, const cr_rec *intent_rec, uint64_t seq, ow_result *res,
                  uint64_t *frame, bool *replayed) {
  ow_action a;
  memset(&a, 0, sizeof a);
  if (intent_rec) a = intent_rec->action;
  return ow_zone_act(c->z, p->session, seq, &a, res, frame, replayed);
}

static void resume_player(child *c, player *p, const cr_recs *recs, intents *ints, ow_map *conf,
                          ow_map *int_of) {
  ow_id account, avatar;
  uint64_t last_seq;
  if (ow_zone_session(c->z, p->session, &account, &avatar, &last_seq))
    fail(c, CR_ERR_SESSION_LOST, p->session, 0, NULL,
         "a durable session is unknown after recovery");
  if (account != p->account || avatar != p->avatar)
    fail(c, CR_ERR_AVATAR, p->session, 0, NULL, "session has another account or avatar");
  p->inv = cr_inventory_of(c->z, avatar);
  if (!p->inv) fail(c, CR_ERR_AVATAR, p->session, 0, NULL, "avatar has no inventory");
  if (ints->len > 1) qsort(ints->v, ints->len, sizeof *ints->v, cmp_intent);
  uint64_t max_intent = ints->len ? ints->v[ints->len - 1].seq : 0;
  if (last_seq > max_intent)
    fail(c, CR_ERR_SEQ, p->session, last_seq, NULL, "store is ahead of intents");

  /* Replay checks: confirmed actions inside the replay window, the newest few and a few random
   * older ones. Each must come back flagged as a replay with exactly the recorded result. */
  OW_VEC(uint64_t) cand = {0};
  for (size_t i = 0; i < ints->len; i++) {
    uint64_t s = ints->v[i].seq;
    if (ow_map_get(conf, s) && last_seq - s < CR_REPLAY_WINDOW) OW_VEC_PUSH(cand, s);
  }
  OW_VEC(uint64_t) pick = {0};
  for (size_t i = cand.len > REPLAY_CHECKS_LAST ? cand.len - REPLAY_CHECKS_LAST : 0; i < cand.len;
       i++)
    OW_VEC_PUSH(pick, cand.v[i]);
  for (int i = 0; i < REPLAY_CHECKS_RANDOM && cand.len; i++)
    OW_VEC_PUSH(pick, cand.v[ow_test_below(&c->rng, (uint32_t)cand.len)]);
  for (size_t i = 0; i < pick.len; i++) {
    uint64_t s = pick.v[i];
    const cr_rec *want = &recs->v[*ow_map_get(conf, s)];
    uint64_t *ii = ow_map_get(int_of, s);
    ow_result got = {0};
    uint64_t frame = 0;
    bool replayed = false;
    int rc = resend(c, p, ii ? &recs->v[*ii] : NULL, s, &got, &frame, &replayed);
    bool ok = !rc && replayed && ow_test_result_eq(&got, &want->res) && frame == want->frame;
    cr_rec r = {.type = CR_REPLAY,
                .flags = CR_F_CHECK | (ok ? CR_F_OK : 0),
                .player = p->idx,
                .session = p->session,
                .seq = s,
                .frame = frame,
                .res = got};
    cr_side_add(&c->side, &r);
    if (!ok)
      fprintf(stderr,
              "crash child run %u: replay of seq %llu: rc=%s replayed=%d code=%d entity=%llu "
              "count=%u frame=%llu, recorded code=%d entity=%llu count=%u frame=%llu\n",
              c->run, (unsigned long long)s, ow_err_name(rc), replayed, got.code,
              (unsigned long long)got.entity, got.count, (unsigned long long)frame, want->res.code,
              (unsigned long long)want->res.entity, want->res.count,
              (unsigned long long)want->frame);
  }
  OW_VEC_FREE(cand);
  OW_VEC_FREE(pick);
  cr_side_flush(&c->side);

  /* Every unconfirmed intent again, in order: the durable ones come back as replays (and are
   * confirmed now), the lost ones are applied for the first time. */
  for (size_t i = 0; i < ints->len; i++) {
    uint64_t s = ints->v[i].seq;
    if (ow_map_get(conf, s)) continue;
    ow_result got;
    uint64_t frame;
    bool replayed;
    int rc = resend(c, p, &recs->v[ints->v[i].rec], s, &got, &frame, &replayed);
    if (rc) fail(c, CR_ERR_ACT, p->session, s, NULL, ow_err_name(rc));
    cr_rec r = {.type = CR_REPLAY,
                .flags = CR_F_RESEND | (replayed ? CR_F_REPLAYED : 0),
                .player = p->idx,
                .session = p->session,
                .seq = s,
                .frame = frame,
                .res = got};
    cr_side_add(&c->side, &r);
    if (replayed) {
      if (frame > ow_zone_durable_frame(c->z))
        fail(c, CR_ERR_REPLAY_FRAME, p->session, s, &got,
             "replay from a frame that is not durable");
      cr_rec d = {.type = CR_DURABLE,
                  .flags = CR_F_FROM_REPLAY,
                  .session = p->session,
                  .seq = s,
                  .frame = frame,
                  .res = got};
      cr_side_add(&c->side, &d);
    }
    cr_side_flush(&c->side);
  }
  p->next_seq = max_intent + 1;
}

static void resume(child *c, const char *side_path) {
  cr_recs recs = {0};
  bool torn;
  cr_side_read(side_path, 0, &recs, false, &torn);
  if (torn) fail(c, CR_ERR_SEQ, 0, 0, NULL, "side file has a torn tail (the parent truncates it)");
  /* The newest trusted session of each player. */
  for (size_t i = 0; i < recs.len; i++) {
    const cr_rec *r = &recs.v[i];
    if (r->type != CR_SESSION || r->player < 0 || r->player >= CR_PLAYERS) continue;
    player *p = &c->pl[r->player];
    p->session = r->session;
    p->account = r->account;
    p->avatar = r->avatar;
  }
  intents ints[CR_PLAYERS];
  ow_map conf[CR_PLAYERS], int_of[CR_PLAYERS];
  for (int i = 0; i < CR_PLAYERS; i++) {
    if (!c->pl[i].session) fail(c, CR_ERR_SESSION_LOST, 0, 0, NULL, "setup wrote no session");
    c->pl[i].idx = i;
    memset(&ints[i], 0, sizeof ints[i]);
    ow_map_init(&conf[i]);
    ow_map_init(&int_of[i]);
  }
  for (size_t i = 0; i < recs.len; i++) {
    const cr_rec *r = &recs.v[i];
    if (r->type != CR_INTENT && r->type != CR_DURABLE) continue;
    int pi = player_of(c, r->session);
    if (pi < 0) continue;
    if (r->type == CR_INTENT) {
      intent in = {r->seq, i};
      OW_VEC_PUSH(ints[pi], in);
      ow_map_set(&int_of[pi], r->seq, i);
    } else {
      ow_map_set(&conf[pi], r->seq, i);
    }
  }
  for (int i = 0; i < CR_PLAYERS; i++) {
    resume_player(c, &c->pl[i], &recs, &ints[i], &conf[i], &int_of[i]);
    OW_VEC_FREE(ints[i]);
    ow_map_deinit(&conf[i]);
    ow_map_deinit(&int_of[i]);
  }
  OW_VEC_FREE(recs);
}

typedef struct finder {
  child *c;
  uint16_t chest, tree;
} finder;

static void find_visit(void *ud, const ow_entity *e) {
  finder *f = ud;
  if (e->type == f->chest && !e->parent && f->c->nchests < MAX_CHESTS)
    f->c->chests[f->c->nchests++] = e->id;
  if (e->type == f->tree) f->c->resource = e->id;
}

int cr_child_main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s --child DIR SEED RUN\n", argv[0]);
    return 2;
  }
  ow_log_level = OW_LOG_WARN;
  static child c; /* static: the durable callback and libuv hold pointers into it */
  c.dir = argv[2];
  uint64_t seed = strtoull(argv[3], NULL, 0);
  c.run = (uint32_t)strtoul(argv[4], NULL, 0);
  c.rng = seed ^ ((uint64_t)c.run * 0xd1b54a32d192ed03ULL);
  ow_test_rand(&c.rng);

  char store_path[1024], side_path[1024];
  snprintf(store_path, sizeof store_path, "%s/store", c.dir);
  snprintf(side_path, sizeof side_path, "%s/side", c.dir);
  cr_side_open(&c.side, side_path);
  c.content = cr_content();
  c.store = ow_test_store(store_path);
  ow_zone_config zc = cr_zone_config();
  int rc = ow_zone_open(&c.z, &zc, c.content, c.store, on_durable, &c);
  if (rc) fail(&c, CR_ERR_STORE, 0, 0, NULL, "recovery failed");

  finder f = {&c, (uint16_t)ow_content_type_id(c.content, "chest", 5),
              (uint16_t)ow_content_type_id(c.content, "tree", 4)};
  ow_world_each(ow_zone_world(c.z), find_visit, &f);
  if (!c.nchests || !c.resource) fail(&c, CR_ERR_STORE, 0, 0, NULL, "chests or trees missing");
  resume(&c, side_path);

  uv_loop_init(&c.loop);
  ow_zone_loop_create(&c.zl, &c.loop, c.z, CR_TICK_HZ, CR_CHECKPOINT_S);
  uv_timer_init(&c.loop, &c.burst);
  uv_timer_init(&c.loop, &c.life);
  uv_signal_init(&c.loop, &c.term);
  c.burst.data = c.life.data = c.term.data = &c;
  uv_timer_start(&c.burst, burst_cb, 1, 1);
  uv_timer_start(&c.life, life_cb, LIFETIME_MS, 0);
  uv_signal_start(&c.term, term_cb, SIGTERM);
  /* Recovered, caught up and able to stop cleanly: the parent's kill timer starts now. */
  ssize_t w = write(CR_READY_FD, "R", 1);
  (void)w;
  close(CR_READY_FD);
  uv_run(&c.loop, UV_RUN_DEFAULT);

  rc = ow_zone_store_error(c.z);
  if (c.logins.len) fail(&c, CR_ERR_STORE, 0, 0, NULL, "a login was never confirmed durable");
  ow_zone_loop_destroy(c.zl);
  ow_zone_close(c.z);
  ow_store_close(c.store);
  ow_content_destroy(c.content);
  cr_side_close(&c.side);
  OW_VEC_FREE(c.logins);
  uv_loop_close(&c.loop);
  return rc ? 3 : 0;
}
