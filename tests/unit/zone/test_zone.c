/* zone: sessions, exactly-once replays, frames, durability callbacks and recovery. */
#include <errno.h>
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_seed_world, setup, teardown),
      cmocka_unit_test_setup_teardown(test_seed_items, setup, teardown),
      cmocka_unit_test_setup_teardown(test_harvest_craft_build_recover, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_sessions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_frame_log, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_commit_is_sticky, setup, teardown),
  };
  return cmocka_run_group_tests_name("zone", tests, NULL, NULL);
}
