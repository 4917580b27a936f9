/* zone: sessions, exactly-once replays, frames, durability callbacks and recovery. */
#include <errno.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "otherworld/protocol.h"
#include "support.h"

typedef struct fixture {
  char *dir;
  ow_content *content;
  ow_store *store;
  ow_zone *zone;
  uint64_t durable_frames, durable_actions, last_frame;
  int last_status;
} fixture;

static void on_durable(void *ud, const ow_frame_info *f) {
  fixture *fx = ud;
  fx->durable_frames++;
  fx->durable_actions += f->nactions;
  fx->last_frame = f->frame;
  fx->last_status = f->status;
}

static void open_zone(fixture *fx) {
  ow_zone_config zc = ow_test_zone_config();
  fx->store = ow_test_store(fx->dir);
  assert_int_equal(ow_zone_open(&fx->zone, &zc, fx->content, fx->store, on_durable, fx), 0);
}

static void close_zone(fixture *fx) {
  ow_zone_close(fx->zone);
  ow_store_close(fx->store);
  fx->zone = NULL;
  fx->store = NULL;
}

static int setup(void **state) {
  fixture *fx = ow_calloc(1, sizeof *fx);
  fx->dir = ow_test_mkdtemp("zone");
  fx->content = ow_test_content();
  open_zone(fx);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  if (fx->zone) close_zone(fx);
  ow_content_destroy(fx->content);
  ow_test_rmdir(fx->dir);
  ow_free(fx);
  return 0;
}

static ow_id find_type_near(ow_zone *z, const char *type, float x, float zz) {
  ow_content *c = ow_world_content(ow_zone_world(z));
  int t = ow_content_type_id(c, type, strlen(type));
  ow_id best = 0;
  float bd = 1e30f;
  for (ow_id id = 1; id < ow_world_next_id(ow_zone_world(z)); id++) {
    const ow_entity *e = ow_world_get(ow_zone_world(z), id);
    if (!e || e->type != t) continue;
    float d = (e->xf.pos[0] - x) * (e->xf.pos[0] - x) + (e->xf.pos[2] - zz) * (e->xf.pos[2] - zz);
    if (d < bd) {
      bd = d;
      best = id;
    }
  }
  return best;
}

static void test_seed_world(void **state) {
  fixture *fx = *state;
  const ow_zone_load_stats *ls = ow_zone_load_info(fx->zone);
  assert_true(ls->seeded);
  assert_int_equal(ls->entities, fx->content->nseeds);
  ow_id marker = find_type_near(fx->zone, "marker3d", 0, 1);
  const ow_entity *m = ow_world_get(ow_zone_world(fx->zone), marker);
  assert_non_null(m);
  assert_true(m->xf.pos[0] == 0 && m->xf.pos[1] == 0 && m->xf.pos[2] == 1);
  assert_non_null(ow_world_get(ow_zone_world(fx->zone), find_type_near(fx->zone, "quad_plane", 0, 0)));
  assert_int_equal(ow_zone_durable_frame(fx->zone), 1);
}

/* A seeded container receives its items by the stacking rule, in the first frame, and keeps
 * them across a restart. */
static void test_seed_items(void **state) {
  fixture *fx = *state;
  close_zone(fx);
  ow_test_rmdir(fx->dir);
  fx->dir = ow_test_mkdtemp("zone");
  ow_content_destroy(fx->content);
  const char *j = "{\"format\":1,\"types\":[{\"name\":\"coin\",\"kind\":\"item\",\"stack_max\":100},"
                  "{\"name\":\"av\",\"kind\":\"avatar\"},{\"name\":\"vault\",\"kind\":\"container\","
                  "\"slots\":3}],\"avatar\":\"av\",\"inventory\":\"vault\",\"world\":{\"spawn\":[0,0,0],"
                  "\"entities\":[{\"type\":\"vault\",\"pos\":[900,0,0],\"items\":{\"coin\":250}}]}}";
  char err[256];
  assert_int_equal(ow_content_load_string(j, strlen(j), &fx->content, err, sizeof err), 0);
  for (int round = 0; round < 2; round++) {
    open_zone(fx);
    assert_int_equal(ow_zone_load_info(fx->zone)->seeded, round == 0);
    ow_world *w = ow_zone_world(fx->zone);
    assert_int_equal(ow_world_count(w), 4); /* the vault and stacks of 100, 100 and 50 */
    const ow_entity *v = ow_world_get(w, 1);
    assert_non_null(v);
    uint32_t counts[3] = {100, 100, 50};
    for (ow_id id = 2; id <= 4; id++) {
      const ow_entity *st = ow_world_get(w, id);
      assert_non_null(st);
      assert_int_equal(st->parent, 1);
      assert_int_equal(st->owner, 0);
      assert_int_equal(st->count, counts[id - 2]);
    }
    uint64_t totals[3];
    ow_world_item_totals(w, totals);
    assert_int_equal(totals[0], 250);
    close_zone(fx);
  }
  open_zone(fx);
}

static void test_harvest_craft_build_recover(void **state) {
  fixture *fx = *state;
  uint64_t sid;
  ow_id avatar;
  assert_int_equal(ow_zone_login(fx->zone, 42, &sid, &avatar), 0);
  ow_id tree = find_type_near(fx->zone, "tree", 3, 3);
  ow_action a = {.type = OW_ACT_HARVEST, .target = tree};
  ow_result r;
  uint64_t frame;
  bool replayed;
  uint64_t seq = 1;
  assert_int_equal(ow_zone_act(fx->zone, sid, seq++, &a, &r, &frame, &replayed), 0);
  assert_int_equal(r.code, 0);
  assert_int_equal(r.count, 5);
  assert_false(replayed);
  assert_int_equal(ow_world_get(ow_zone_world(fx->zone), tree)->hp, 75);
  ow_id stack = r.entity;
  /* Replaying the same sequence number returns the same result and changes nothing. */
  ow_result r2;
  assert_int_equal(ow_zone_act(fx->zone, sid, 1, &a, &r2, &frame, &replayed), 0);
  assert_true(replayed);
  assert_int_equal(r2.entity, stack);
  assert_int_equal(ow_world_get(ow_zone_world(fx->zone), tree)->hp, 75);
  /* Three more hits deplete the tree: 20 wood, tree gone. */
  for (int i = 0; i < 3; i++) assert_int_equal(ow_zone_act(fx->zone, sid, seq++, &a, &r, &frame, &replayed), 0);
  assert_int_equal(r.code, 0);
  assert_null(ow_world_get(ow_zone_world(fx->zone), tree));
  assert_int_equal(ow_world_get(ow_zone_world(fx->zone), stack)->count, 20);
  assert_int_equal(ow_zone_act(fx->zone, sid, seq++, &a, &r, &frame, &replayed), 0);
  assert_int_equal(r.code, OW_E_NOT_FOUND);

  ow_action craft = {.type = OW_ACT_CRAFT, .kind = (uint16_t)ow_content_recipe_id(fx->content, "planks")};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(ow_zone_act(fx->zone, sid, seq++, &craft, &r, &frame, &replayed), 0);
    assert_int_equal(r.code, 0);
  }
  ow_action build = {.type = OW_ACT_BUILD, .kind = (uint16_t)ow_content_type_id(fx->content, "wall", 4)};
  ow_transform_identity(&build.xf);
  build.xf.pos[0] = 2;
  build.xf.pos[2] = 4;
  assert_int_equal(ow_zone_act(fx->zone, sid, seq++, &build, &r, &frame, &replayed), 0);
  assert_int_equal(r.code, 0);
  ow_id wall = r.entity;
  assert_int_equal(ow_world_get(ow_zone_world(fx->zone), wall)->owner, 42);

  assert_int_equal(ow_zone_commit_sync(fx->zone, true), 0);
  assert_int_equal(fx->last_status, 0);
  assert_int_equal(fx->durable_actions, seq - 1);
  uint64_t durable = ow_zone_durable_frame(fx->zone);
  size_t count = ow_world_count(ow_zone_world(fx->zone));

  close_zone(fx);
  open_zone(fx);
  assert_false(ow_zone_load_info(fx->zone)->seeded);
  assert_int_equal(ow_zone_durable_frame(fx->zone), durable);
  assert_int_equal(ow_world_count(ow_zone_world(fx->zone)), count);
  const ow_entity *w = ow_world_get(ow_zone_world(fx->zone), wall);
  assert_non_null(w);
  assert_true(w->xf.pos[0] == 2 && w->xf.pos[2] == 4);
  /* After recovery the session still knows its results. */
  assert_int_equal(ow_zone_act(fx->zone, sid, seq - 1, &build, &r, &frame, &replayed), 0);
  assert_true(replayed);
  assert_int_equal(r.entity, wall);
  /* And its avatar is the same one. */
  uint64_t sid2;
  ow_id avatar2;
  assert_int_equal(ow_zone_login(fx->zone, 42, &sid2, &avatar2), 0);
  assert_int_equal(avatar2, avatar);
  assert_int_not_equal(sid2, sid);
}

static void test_bad_sessions(void **state) {
  fixture *fx = *state;
  ow_action a = {.type = OW_ACT_MOVE};
  ow_result r;
  uint64_t frame;
  bool replayed;
  assert_int_equal(ow_zone_act(fx->zone, 12345, 1, &a, &r, &frame, &replayed), OW_E_NO_SESSION);
  uint64_t sid;
  assert_int_equal(ow_zone_login(fx->zone, 0, &sid, NULL), OW_E_INVAL);
  assert_int_equal(ow_zone_login(fx->zone, 7, &sid, NULL), 0);
  assert_int_equal(ow_zone_act(fx->zone, sid, 0, &a, &r, &frame, &replayed), OW_E_INVAL);
  a.type = 99;
  assert_int_equal(ow_zone_act(fx->zone, sid, 100, &a, &r, &frame, &replayed), 0);
  assert_int_equal(r.code, OW_E_UNKNOWN_ACTION);
  /* Sequence numbers older than the replay window are refused. */
  for (uint64_t s = 101; s < 101 + 64; s++)
    assert_int_equal(ow_zone_act(fx->zone, sid, s, &a, &r, &frame, &replayed), 0);
  assert_int_equal(ow_zone_act(fx->zone, sid, 100, &a, &r, &frame, &replayed), OW_E_SEQ_TOO_OLD);
  assert_int_equal(ow_zone_act(fx->zone, sid, 101, &a, &r, &frame, &replayed), 0);
  assert_true(replayed);
}

static void test_frame_log(void **state) {
  fixture *fx = *state;
  uint64_t sid;
  ow_id avatar;
  assert_int_equal(ow_zone_login(fx->zone, 9, &sid, &avatar), 0);
  ow_action mv = {.type = OW_ACT_MOVE, .target = avatar};
  ow_transform_identity(&mv.xf);
  ow_result r;
  uint64_t frame;
  bool replayed;
  for (uint64_t s = 1; s <= 10; s++) {
    mv.xf.pos[0] = (float)s * 100;
    assert_int_equal(ow_zone_act(fx->zone, sid, s, &mv, &r, &frame, &replayed), 0);
    assert_int_equal(r.code, 0);
    if (s % 3 == 0) assert_int_equal(ow_zone_commit_sync(fx->zone, false), 0);
  }
  assert_int_equal(ow_zone_commit_sync(fx->zone, false), 0);
  /* The avatar walked through several regions; its key moved with it. */
  const ow_entity *e = ow_world_get(ow_zone_world(fx->zone), avatar);
  ow_cell c = ow_world_region_cell(ow_zone_world(fx->zone), e->region);
  assert_int_equal(c.x, 3);
  close_zone(fx);
  open_zone(fx);
  e = ow_world_get(ow_zone_world(fx->zone), avatar);
  assert_non_null(e);
  assert_true(e->xf.pos[0] == 1000);
  c = ow_world_region_cell(ow_zone_world(fx->zone), e->region);
  assert_int_equal(c.x, 3);
}

/* A failed write (the rc the thread pool hands back) is sticky: nothing later is ever confirmed,
 * new actions and logins are refused, and a reopen re-reads only what was confirmed. The real
 * disk faults (EIO, ENOSPC, short writes, failed fsync) are injected under the real server by
 * tests/faults. */
static void test_failed_commit_is_sticky(void **state) {
  fixture *fx = *state;
  uint64_t sid, frame, f2;
  ow_id avatar;
  assert_int_equal(ow_zone_login(fx->zone, 5, &sid, &avatar), 0);
  ow_action mv = {.type = OW_ACT_MOVE, .target = avatar};
  ow_transform_identity(&mv.xf);
  ow_result r;
  bool replayed;
  mv.xf.pos[0] = 1;
  assert_int_equal(ow_zone_act(fx->zone, sid, 1, &mv, &r, &frame, &replayed), 0);
  assert_int_equal(ow_zone_commit_sync(fx->zone, false), 0);
  uint64_t durable = ow_zone_durable_frame(fx->zone);
  assert_int_equal(durable, frame);

  mv.xf.pos[0] = 2;
  assert_int_equal(ow_zone_act(fx->zone, sid, 2, &mv, &r, &f2, &replayed), 0);
  ow_zone_commit *c;
  assert_int_equal(ow_zone_commit_begin(fx->zone, false, &c), 0);
  assert_non_null(c);
  /* Applied while the write is in flight: gathers into the next frame. */
  mv.xf.pos[0] = 3;
  assert_int_equal(ow_zone_act(fx->zone, sid, 3, &mv, &r, &frame, &replayed), 0);
  assert_true(frame > f2);
  fx->durable_actions = 0;
  ow_zone_commit_end(fx->zone, c, -EIO);
  assert_int_equal(fx->last_status, -EIO);
  assert_int_equal(fx->last_frame, f2);
  assert_int_equal(ow_zone_durable_frame(fx->zone), durable);
  assert_int_equal(ow_zone_store_error(fx->zone), -EIO);

  /* Refused, not applied: the avatar stays where seq 3 put it in memory. */
  mv.xf.pos[0] = 4;
  assert_int_equal(ow_zone_act(fx->zone, sid, 4, &mv, &r, &frame, &replayed), OW_E_STORE_FAILED);
  assert_true(ow_world_get(ow_zone_world(fx->zone), avatar)->xf.pos[0] == 3);
  uint64_t sid2;
  assert_int_equal(ow_zone_login(fx->zone, 6, &sid2, NULL), OW_E_STORE_FAILED);
  /* Replays are answered from memory, with frames that say whether they are durable. */
  assert_int_equal(ow_zone_act(fx->zone, sid, 1, &mv, &r, &frame, &replayed), 0);
  assert_true(replayed && frame <= durable);
  assert_int_equal(ow_zone_act(fx->zone, sid, 2, &mv, &r, &frame, &replayed), 0);
  assert_true(replayed && frame == f2);
  /* The next commit writes nothing and reports what gathered (seq 3) with the same error. */
  fx->durable_actions = 0;
  assert_int_equal(ow_zone_commit_begin(fx->zone, true, &c), -EIO);
  assert_null(c);
  assert_int_equal(fx->durable_actions, 1);
  assert_int_equal(fx->last_status, -EIO);
  assert_int_equal(ow_zone_commit_sync(fx->zone, true), -EIO);
  assert_int_equal(ow_zone_durable_frame(fx->zone), durable);

  /* A restart re-reads the store: seq 1 is there, seq 2 and 3 are not. */
  close_zone(fx);
  open_zone(fx);
  assert_int_equal(ow_zone_store_error(fx->zone), 0);
  assert_int_equal(ow_zone_durable_frame(fx->zone), durable);
  uint64_t last_seq;
  assert_int_equal(ow_zone_session(fx->zone, sid, NULL, NULL, &last_seq), 0);
  assert_int_equal(last_seq, 1);
  assert_true(ow_world_get(ow_zone_world(fx->zone), avatar)->xf.pos[0] == 1);
  assert_int_equal(ow_zone_act(fx->zone, sid, 2, &mv, &r, &frame, &replayed), 0);
  assert_false(replayed);
}

/* ---- frame records: version 2 and the version 1 written before it ---------------------------- */

/* The frame log as read back: every action with its frame and its argument bytes. */
typedef struct logged {
  uint64_t frame, session, seq;
  ow_action a;
  uint8_t args[OW_ACTION_ARGS_MAX];
  ow_result r;
} logged;
typedef OW_VEC(logged) logvec;

static int collect(void *ud, uint64_t frame, const ow_applied *a) {
  logvec *v = ud;
  if (!a) return 0;
  logged l = {.frame = frame, .session = a->session, .seq = a->seq, .a = a->action, .r = a->result};
  if (a->action.nargs) memcpy(l.args, a->action.args, a->action.nargs);
  l.a.args = NULL;
  OW_VEC_PUSH(*v, l);
  return 0;
}

static void assert_same_log(const logvec *x, const logvec *y) {
  assert_int_equal(x->len, y->len);
  for (size_t i = 0; i < x->len; i++) {
    const logged *a = &x->v[i], *b = &y->v[i];
    assert_true(a->frame == b->frame && a->session == b->session && a->seq == b->seq);
    assert_int_equal(a->a.type, b->a.type);
    assert_true(a->a.kind == b->a.kind && a->a.target == b->a.target && a->a.dest == b->a.dest &&
                a->a.count == b->a.count);
    assert_memory_equal(&a->a.xf, &b->a.xf, sizeof a->a.xf);
    assert_int_equal(a->a.nargs, b->a.nargs);
    assert_memory_equal(a->args, b->args, a->a.nargs);
    assert_true(a->r.code == b->r.code && a->r.entity == b->r.entity && a->r.count == b->r.count);
  }
}

/* Every entity as bytes (id, then its record), in id order: two worlds with equal bytes are equal. */
static void world_bytes(ow_world *w, ow_buf *out) {
  out->len = 0;
  ow_buf_u64(out, ow_world_count(w));
  for (ow_id id = 1; id < ow_world_next_id(w); id++) {
    const ow_entity *e = ow_world_get(w, id);
    if (!e) continue;
    ow_buf_u64(out, id);
    ow_world_encode(w, e, out);
  }
}

/* The frame record as the code before variable-length actions wrote it (commit ecedcdd): u64
 * frame, u32 n, n x (u64 session, u64 seq, the fixed 63-byte action, 16-byte result), u32 m,
 * m x u64 changed id. This is the test's own copy of that encoder, rewriting a version 2 record of
 * built-in actions into it field by field. */
static void v1_from_v2(const uint8_t *v, size_t vl, ow_buf *out) {
  ow_reader r;
  ow_reader_init(&r, v, vl);
  assert_int_equal(ow_rd_u8(&r), 2);
  out->len = 0;
  ow_buf_u64(out, ow_rd_u64(&r));
  uint32_t n = ow_rd_u32(&r);
  ow_buf_u32(out, n);
  for (uint32_t i = 0; i < n; i++) {
    ow_buf_u64(out, ow_rd_u64(&r)); /* session */
    ow_buf_u64(out, ow_rd_u64(&r)); /* seq */
    assert_int_equal(ow_rd_u16(&r), 63);
    ow_buf_put(out, ow_rd_bytes(&r, 63), 63);
    ow_buf_put(out, ow_rd_bytes(&r, 16), 16);
  }
  uint32_t m = ow_rd_u32(&r);
  ow_buf_u32(out, m);
  for (uint32_t i = 0; i < m; i++) ow_buf_u64(out, ow_rd_u64(&r));
  assert_int_equal(r.err, 0);
  assert_int_equal(r.left, 0);
}

typedef struct rewrite {
  ow_batch b;
  ow_buf v1;
  size_t n;
} rewrite;

static int to_v1(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  rewrite *x = ud;
  v1_from_v2(v, vl, &x->v1);
  ow_batch_put(&x->b, k, kl, x->v1.data, x->v1.len);
  x->n++;
  return 0;
}

/* A store whose frame log was written before version 2 recovers with the same world, its frame
 * log reads back the same, and later frames (version 2) follow it in one log. */
static void test_frame_log_v1(void **state) {
  fixture *fx = *state;
  ow_zone *z = fx->zone;
  uint64_t sid, frame;
  ow_id avatar;
  bool replayed;
  ow_result r;
  assert_int_equal(ow_zone_login(z, 9, &sid, &avatar), 0);
  const ow_entity *av = ow_world_get(ow_zone_world(z), avatar);
  ow_id tree = find_type_near(z, "tree", av->xf.pos[0], av->xf.pos[2]);
  assert_true(tree != 0);
  const ow_entity *t = ow_world_get(ow_zone_world(z), tree);
  uint64_t seq = 1;
  /* Walk to the tree, harvest it (creates stacks), craft, and a few refused ones. */
  ow_action mv = {.type = OW_ACT_MOVE, .target = avatar};
  ow_transform_identity(&mv.xf);
  memcpy(mv.xf.pos, t->xf.pos, sizeof mv.xf.pos);
  mv.xf.pos[0] += 1;
  assert_int_equal(ow_zone_act(z, sid, seq++, &mv, &r, &frame, &replayed), 0);
  assert_int_equal(r.code, 0);
  assert_int_equal(ow_zone_commit_sync(z, false), 0);
  for (int i = 0; i < 3; i++) {
    ow_action h = {.type = OW_ACT_HARVEST, .target = tree};
    assert_int_equal(ow_zone_act(z, sid, seq++, &h, &r, &frame, &replayed), 0);
  }
  ow_action craft = {.type = OW_ACT_CRAFT, .kind = 0};
  assert_int_equal(ow_zone_act(z, sid, seq++, &craft, &r, &frame, &replayed), 0);
  ow_action bad = {.type = OW_ACT_TRANSFER, .target = 999999, .dest = 1, .count = 1};
  assert_int_equal(ow_zone_act(z, sid, seq++, &bad, &r, &frame, &replayed), 0);
  assert_int_equal(r.code, OW_E_NOT_FOUND);
  assert_int_equal(ow_zone_commit_sync(z, false), 0);
  mv.xf.pos[2] += 2;
  assert_int_equal(ow_zone_act(z, sid, seq++, &mv, &r, &frame, &replayed), 0);
  assert_int_equal(ow_zone_commit_sync(z, true), 0);

  ow_buf before, after;
  ow_buf_init(&before);
  ow_buf_init(&after);
  world_bytes(ow_zone_world(z), &before);
  logvec log2 = {0}, log1 = {0};
  assert_int_equal(ow_zone_frame_log_each(fx->store, collect, &log2), 0);
  assert_int_equal(log2.len, seq - 1);
  close_zone(fx);

  /* Rewrite every frame record as the old code wrote it. */
  fx->store = ow_test_store(fx->dir);
  rewrite x = {0};
  ow_batch_init(&x.b);
  ow_buf_init(&x.v1);
  uint8_t prefix = OW_KEY_FRAME;
  assert_int_equal(ow_store_scan(fx->store, &prefix, 1, to_v1, &x), 0);
  assert_true(x.n >= 3);
  assert_int_equal(ow_store_write(fx->store, &x.b), 0);
  ow_batch_deinit(&x.b);
  ow_buf_deinit(&x.v1);
  ow_store_close(fx->store);
  fx->store = NULL;

  open_zone(fx);
  z = fx->zone;
  world_bytes(ow_zone_world(z), &after);
  assert_int_equal(before.len, after.len);
  assert_memory_equal(before.data, after.data, before.len);
  assert_int_equal(ow_zone_frame_log_each(fx->store, collect, &log1), 0);
  assert_same_log(&log2, &log1);
  uint64_t last_seq;
  assert_int_equal(ow_zone_session(z, sid, NULL, NULL, &last_seq), 0);
  assert_int_equal(last_seq, seq - 1);
  /* A replay of an old seq still answers its remembered result. */
  assert_int_equal(ow_zone_act(z, sid, seq - 2, &bad, &r, &frame, &replayed), 0);
  assert_true(replayed);
  assert_int_equal(r.code, OW_E_NOT_FOUND);

  /* The next frame is version 2, after the version 1 ones. */
  assert_int_equal(ow_zone_act(z, sid, seq++, &mv, &r, &frame, &replayed), 0);
  assert_int_equal(ow_zone_commit_sync(z, false), 0);
  log1.len = 0;
  assert_int_equal(ow_zone_frame_log_each(fx->store, collect, &log1), 0);
  assert_int_equal(log1.len, log2.len + 1);
  assert_int_equal(log1.v[log1.len - 1].seq, seq - 1);
  assert_true(log1.v[log1.len - 1].frame > log2.v[log2.len - 1].frame);
  OW_VEC_FREE(log1);
  OW_VEC_FREE(log2);
  ow_buf_deinit(&before);
  ow_buf_deinit(&after);
}

/* A row with its own argument layout: the zone keeps a copy of the arguments for the frame (the
 * caller's buffer is reused at once), logs them in the version 2 record and reads them back. */
static uint8_t seen_args[OW_ACTION_ARGS_MAX];
static uint16_t seen_nargs;

static int note(ow_world *w, ow_id account, ow_entity *avatar, const ow_action *a, ow_result *res) {
  (void)w, (void)account, (void)avatar;
  res->count = a->nargs;
  return a->nargs && a->args[0] == 0xff ? OW_E_INVAL : 0;
}

static void on_durable_args(void *ud, const ow_frame_info *f) {
  on_durable(ud, f);
  for (size_t i = 0; i < f->nactions; i++)
    if (f->actions[i].action.type == 150) {
      seen_nargs = f->actions[i].action.nargs;
      if (seen_nargs) memcpy(seen_args, f->actions[i].action.args, seen_nargs);
    }
}

static void test_action_args_logged(void **state) {
  fixture *fx = *state;
  close_zone(fx);
  ow_zone_config zc = ow_test_zone_config();
  fx->store = ow_test_store(fx->dir);
  assert_int_equal(ow_zone_open(&fx->zone, &zc, fx->content, fx->store, on_durable_args, fx), 0);
  ow_zone *z = fx->zone;
  ow_action_row row = {.type = 150, .name = "note", .arg_min = 0, .arg_size = OW_ACTION_ARGS_MAX,
                       .apply = note};
  assert_int_equal(ow_world_action_register(ow_zone_world(z), &row), 0);
  uint64_t sid, frame;
  ow_id avatar;
  bool replayed;
  ow_result r;
  assert_int_equal(ow_zone_login(z, 4, &sid, &avatar), 0);
  uint8_t buf[OW_ACTION_ARGS_MAX];
  const uint16_t sizes[] = {0, 3, OW_ACTION_ARGS_MAX};
  for (size_t i = 0; i < 3; i++) {
    for (size_t k = 0; k < sizeof buf; k++) buf[k] = (uint8_t)(k + i);
    ow_action a = {.type = 150, .nargs = sizes[i], .args = buf};
    assert_int_equal(ow_zone_act(z, sid, i + 1, &a, &r, &frame, &replayed), 0);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.count, sizes[i]);
    memset(buf, 0xee, sizeof buf); /* the caller's bytes are gone */
    seen_nargs = 0xffff;
    assert_int_equal(ow_zone_commit_sync(z, false), 0);
    assert_int_equal(seen_nargs, sizes[i]);
    for (size_t k = 0; k < sizes[i]; k++) assert_int_equal(seen_args[k], (uint8_t)(k + i));
  }
  logvec log = {0};
  assert_int_equal(ow_zone_frame_log_each(fx->store, collect, &log), 0);
  assert_int_equal(log.len, 3);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(log.v[i].a.type, 150);
    assert_int_equal(log.v[i].a.nargs, sizes[i]);
    for (size_t k = 0; k < sizes[i]; k++) assert_int_equal(log.v[i].args[k], (uint8_t)(k + i));
    assert_int_equal(log.v[i].r.count, sizes[i]);
  }
  OW_VEC_FREE(log);
}

/* ---- a store written by the old code -------------------------------------------------------- */

static void read_fixture(const char *name, ow_buf *out) {
  char rel[256];
  snprintf(rel, sizeof rel, "tests/unit/zone/fixtures/%s", name);
  FILE *f = fopen(ow_test_source_path(rel), "rb");
  assert_non_null(f);
  uint8_t chunk[4096];
  size_t n;
  out->len = 0;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) ow_buf_put(out, chunk, n);
  fclose(f);
  assert_true(out->len > 0);
}

/* The frame log encoded as the old code's make_v1_store dumped it (fixtures/make_v1_store.c). */
static int dump_log(void *ud, uint64_t frame, const ow_applied *a) {
  ow_buf *b = ud;
  if (!a) return 0;
  ow_buf_u64(b, frame);
  ow_buf_u64(b, a->session);
  ow_buf_u64(b, a->seq);
  ow_action_encode(&a->action, b);
  ow_result_encode(&a->result, b);
  return 0;
}

/* A store made by the code of commit ecedcdd (fixtures/README.md) recovers with today's code to the
 * world that code recovered, its version 1 frame log reads back the same (a type without a row
 * included: its 62 bytes of fields come back as argument bytes and re-encode identically), and new
 * frames (version 2) follow in the same log. */
static void test_v1_store_fixture(void **state) {
  fixture *fx = *state;
  close_zone(fx);
  ow_test_rmdir(fx->dir);
  fx->dir = ow_test_mkdtemp("zone-v1");
  ow_buf store, world, log, got;
  ow_buf_init(&store);
  ow_buf_init(&world);
  ow_buf_init(&log);
  ow_buf_init(&got);
  read_fixture("v1_store.bin", &store);
  read_fixture("v1_world.bin", &world);
  read_fixture("v1_log.bin", &log);

  fx->store = ow_test_store(fx->dir);
  ow_batch b;
  ow_batch_init(&b);
  ow_reader r;
  ow_reader_init(&r, store.data, store.len);
  size_t frames = 0;
  while (r.left) {
    size_t kl = ow_rd_u16(&r), vl = ow_rd_u32(&r);
    const uint8_t *k = ow_rd_bytes(&r, kl), *v = ow_rd_bytes(&r, vl);
    assert_int_equal(r.err, 0);
    if (kl == OW_KEY_ID_LEN && k[0] == OW_KEY_FRAME) {
      /* version 1: the record starts with its key's frame number, no version byte */
      ow_reader fr;
      ow_reader_init(&fr, v, vl);
      assert_true(ow_rd_u64(&fr) == ow_be64_read(k + 1));
      frames++;
    }
    ow_batch_put(&b, k, kl, v, vl);
  }
  assert_true(frames >= 4);
  assert_int_equal(ow_store_write(fx->store, &b), 0);
  ow_batch_deinit(&b);
  ow_store_close(fx->store);

  open_zone(fx);
  world_bytes(ow_zone_world(fx->zone), &got);
  assert_int_equal(got.len, world.len);
  assert_memory_equal(got.data, world.data, world.len);
  got.len = 0;
  assert_int_equal(ow_zone_frame_log_each(fx->store, dump_log, &got), 0);
  assert_int_equal(got.len, log.len);
  assert_memory_equal(got.data, log.data, log.len);

  /* The old accounts play on: a new frame, version 2, after the version 1 ones. */
  uint64_t sid, frame;
  ow_id avatar;
  bool replayed;
  ow_result res;
  assert_int_equal(ow_zone_login(fx->zone, 101, &sid, &avatar), 0);
  ow_action mv = {.type = OW_ACT_MOVE, .target = avatar};
  ow_transform_identity(&mv.xf);
  assert_int_equal(ow_zone_act(fx->zone, sid, 1, &mv, &res, &frame, &replayed), 0);
  assert_int_equal(res.code, 0);
  assert_int_equal(ow_zone_commit_sync(fx->zone, false), 0);
  logvec all = {0};
  assert_int_equal(ow_zone_frame_log_each(fx->store, collect, &all), 0);
  size_t old_actions = log.len / (8 + 8 + 8 + 63 + 16);
  assert_int_equal(log.len % (8 + 8 + 8 + 63 + 16), 0);
  assert_int_equal(all.len, old_actions + 1);
  assert_int_equal(all.v[old_actions].session, sid);
  assert_int_equal(all.v[old_actions].a.type, OW_ACT_MOVE);
  OW_VEC_FREE(all);
  close_zone(fx);
  open_zone(fx);
  const ow_entity *e = ow_world_get(ow_zone_world(fx->zone), avatar);
  assert_non_null(e);
  assert_true(e->xf.pos[0] == 0 && e->xf.pos[2] == 0);
  ow_buf_deinit(&store);
  ow_buf_deinit(&world);
  ow_buf_deinit(&log);
  ow_buf_deinit(&got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_seed_world, setup, teardown),
      cmocka_unit_test_setup_teardown(test_seed_items, setup, teardown),
      cmocka_unit_test_setup_teardown(test_harvest_craft_build_recover, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_sessions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_frame_log, setup, teardown),
      cmocka_unit_test_setup_teardown(test_frame_log_v1, setup, teardown),
      cmocka_unit_test_setup_teardown(test_v1_store_fixture, setup, teardown),
      cmocka_unit_test_setup_teardown(test_action_args_logged, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_commit_is_sticky, setup, teardown),
  };
  return cmocka_run_group_tests_name("zone", tests, NULL, NULL);
}
