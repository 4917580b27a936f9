/* replica: confirmed reads (only durable frames are visible), full states and deltas against the
 * acknowledged snapshot, removals, area of interest, chunks of at most 60 KiB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "otherworld/protocol.h"
#include "server/replica.h"
#include "support.h"

typedef struct fx {
  char *dir;
  ow_content *content;
  ow_store *store;
  ow_zone *zone;
  ow_replica *rep;
  ow_view *view;
} fx;

/* What one update sent: entity ids, removed ids, chunks, and the snapshot header. */
typedef struct seen {
  OW_VEC(ow_id) ids;
  OW_VEC(ow_id) removed;
  int chunks;
  uint32_t id, base;
  uint64_t frame;
  size_t largest;
} seen;

static void on_durable(void *ud, const ow_frame_info *f) {
  fx *x = ud;
  if (x->rep && !f->status) ow_replica_apply(x->rep, f->batch, f->frame);
}

static void emit(void *ud, const uint8_t *p, size_t n) {
  seen *s = ud;
  ow_msg m;
  size_t used;
  char err[128];
  assert_int_equal(ow_proto_decode(p, n, &used, &m, err, sizeof err), 0);
  assert_int_equal(used, n);
  assert_int_equal(m.type, OW_MSG_SNAPSHOT);
  if (n > s->largest) s->largest = n;
  ow_reader r;
  ow_reader_init(&r, m.u.body.p, m.u.body.n);
  s->id = ow_rd_u32(&r);
  s->base = ow_rd_u32(&r);
  s->frame = ow_rd_u64(&r);
  ow_rd_u8(&r);
  uint16_t cnt = ow_rd_u16(&r);
  for (uint16_t i = 0; i < cnt; i++) {
    ow_wire_entity e;
    assert_int_equal(ow_proto_read_entity(&r, &e), 0);
    OW_VEC_PUSH(s->ids, e.id);
  }
  uint16_t nrem = ow_rd_u16(&r);
  for (uint16_t i = 0; i < nrem; i++) OW_VEC_PUSH(s->removed, ow_rd_u64(&r));
  assert_int_equal(r.err, 0);
  assert_int_equal(r.left, 0);
  s->chunks++;
}

static seen update_view(fx *f, ow_view *v, ow_cell c, int radius, uint64_t now) {
  seen s;
  memset(&s, 0, sizeof s);
  ow_view_update(v, f->rep, c, radius, now, emit, &s);
  return s;
}

static seen update(fx *f, ow_cell c, int radius, uint64_t now) {
  return update_view(f, f->view, c, radius, now);
}

/* The player moves its avatar to x (metres) with action `seq`, and the frame is made durable. */
static void move_to(fx *f, uint64_t sid, ow_id avatar, uint64_t seq, float x) {
  ow_action mv = {.type = OW_ACT_MOVE, .target = avatar};
  ow_transform_identity(&mv.xf);
  mv.xf.pos[0] = x;
  ow_result r;
  uint64_t frame;
  bool rep;
  assert_int_equal(ow_zone_act(f->zone, sid, seq, &mv, &r, &frame, &rep), 0);
  assert_int_equal(ow_zone_commit_sync(f->zone, false), 0);
}

static void seen_free(seen *s) {
  OW_VEC_FREE(s->ids);
  OW_VEC_FREE(s->removed);
}

static bool has(const seen *s, ow_id id) {
  for (size_t i = 0; i < s->ids.len; i++)
    if (s->ids.v[i] == id) return true;
  return false;
}

static int setup(void **state) {
  fx *f = ow_calloc(1, sizeof *f);
  f->dir = ow_test_mkdtemp("replica");
  f->content = ow_test_content();
  f->store = ow_test_store(f->dir);
  ow_zone_config zc = ow_test_zone_config();
  assert_int_equal(ow_zone_open(&f->zone, &zc, f->content, f->store, on_durable, f), 0);
  f->rep = ow_replica_create(ow_zone_world(f->zone), ow_zone_durable_frame(f->zone));
  f->view = ow_view_create();
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  ow_view_destroy(f->view);
  ow_replica_destroy(f->rep);
  ow_zone_close(f->zone);
  ow_store_close(f->store);
  ow_content_destroy(f->content);
  ow_test_rmdir(f->dir);
  ow_free(f);
  return 0;
}

static void test_full_delta_confirmed(void **state) {
  fx *f = *state;
  /* Radius 1: cells -1..1, which hold the whole seed world (it spans about +-60 m). */
  ow_cell origin = {0, 0};
  seen s = update(f, origin, 1, 1);
  assert_int_equal(s.base, 0); /* nothing acknowledged: a full state */
  assert_int_equal(s.ids.len, ow_replica_count(f->rep));
  assert_int_equal(s.chunks, 1);
  uint32_t first = s.id;
  seen_free(&s);
  /* Nothing changed and the snapshot is recent: nothing is sent. */
  s = update(f, origin, 1, 2);
  assert_int_equal(s.chunks, 0);
  seen_free(&s);
  ow_view_ack(f->view, first);

  /* A player logs in and builds: not visible until the frame is durable. */
  uint64_t sid;
  ow_id avatar;
  assert_int_equal(ow_zone_login(f->zone, 1, &sid, &avatar), 0);
  s = update(f, origin, 1, 3);
  assert_int_equal(s.chunks, 0);
  seen_free(&s);
  assert_int_equal(ow_zone_commit_sync(f->zone, false), 0);
  s = update(f, origin, 1, 4);
  assert_int_equal(s.base, first); /* a delta against the acknowledged snapshot */
  assert_int_equal(s.ids.len, 2);  /* the avatar and its inventory */
  assert_true(has(&s, avatar));
  uint32_t second = s.id;
  seen_free(&s);

  /* Until it is acknowledged, later deltas stay against the first snapshot. */
  move_to(f, sid, avatar, 1, 5);
  s = update(f, origin, 1, 5);
  assert_int_equal(s.base, first);
  assert_true(has(&s, avatar));
  seen_free(&s);
  ow_view_ack(f->view, second);
  ow_view_ack(f->view, 12345); /* never sent: ignored */

  /* The avatar walks out of the area of interest: it is removed, with its inventory. */
  move_to(f, sid, avatar, 2, 700);
  s = update(f, origin, 1, 6);
  assert_int_equal(s.removed.len, 2);
  assert_int_equal(s.ids.len, 0);
  seen_free(&s);
  /* With a radius of 3 cells it is back in view. */
  s = update(f, origin, 3, 7);
  assert_true(has(&s, avatar));
  seen_free(&s);
  /* A reset sends everything again. */
  ow_view_reset(f->view);
  s = update(f, origin, 3, 8);
  assert_int_equal(s.base, 0);
  assert_int_equal(s.ids.len, ow_replica_count(f->rep));
  seen_free(&s);
}

/* A replica built after recovery says which durable frame it shows, before any new frame (it said
 * frame 1 after every restart: found by tests/chaos). */
static void test_frame_after_recovery(void **state) {
  fx *f = *state;
  uint64_t sid;
  ow_id avatar;
  assert_int_equal(ow_zone_login(f->zone, 1, &sid, &avatar), 0);
  assert_int_equal(ow_zone_commit_sync(f->zone, false), 0);
  uint64_t durable = ow_zone_durable_frame(f->zone);
  assert_true(durable > 1);
  ow_replica_destroy(f->rep);
  f->rep = ow_replica_create(ow_zone_world(f->zone), durable);
  ow_cell origin = {0, 0};
  seen s = update(f, origin, 1, 1);
  assert_int_equal(s.base, 0);
  assert_int_equal(s.frame, durable);
  assert_true(has(&s, avatar));
  seen_free(&s);
}

/* A client that acknowledges slowly: everything it may hold (the base and every snapshot sent
 * after it) is covered by removals, each id once and in ascending order, however many
 * unacknowledged snapshots it appeared in. */
static void test_removals_unacknowledged(void **state) {
  fx *f = *state;
  ow_cell origin = {0, 0};
  seen s = update(f, origin, 1, 1);
  uint32_t first = s.id;
  seen_free(&s);
  ow_view_ack(f->view, first);

  uint64_t sid[2];
  ow_id avatar[2];
  for (int i = 0; i < 2; i++) assert_int_equal(ow_zone_login(f->zone, 1 + (uint64_t)i, &sid[i], &avatar[i]), 0);
  assert_int_equal(ow_zone_commit_sync(f->zone, false), 0);
  s = update(f, origin, 1, 2);
  assert_int_equal(s.base, first);
  assert_int_equal(s.ids.len, 4); /* two avatars and their inventories */
  seen_free(&s);

  /* Three more unacknowledged deltas in which both avatars move about. */
  ow_action mv = {.type = OW_ACT_MOVE};
  ow_transform_identity(&mv.xf);
  ow_result r;
  uint64_t frame;
  bool rep;
  for (uint64_t k = 1; k <= 3; k++) {
    for (int i = 0; i < 2; i++) {
      mv.target = avatar[i];
      mv.xf.pos[0] = (float)(k + (uint64_t)i);
      assert_int_equal(ow_zone_act(f->zone, sid[i], k, &mv, &r, &frame, &rep), 0);
    }
    assert_int_equal(ow_zone_commit_sync(f->zone, false), 0);
    s = update(f, origin, 1, 2 + k);
    assert_int_equal(s.base, first);
    assert_int_equal(s.removed.len, 0);
    seen_free(&s);
  }

  /* Both walk out of the area of interest: neither is in the base, both are in four sent
   * snapshots. */
  for (int i = 0; i < 2; i++) {
    mv.target = avatar[i];
    mv.xf.pos[0] = 700;
    assert_int_equal(ow_zone_act(f->zone, sid[i], 4, &mv, &r, &frame, &rep), 0);
  }
  assert_int_equal(ow_zone_commit_sync(f->zone, false), 0);
  s = update(f, origin, 1, 10);
  assert_int_equal(s.base, first);
  assert_int_equal(s.ids.len, 0);
  assert_int_equal(s.removed.len, 4);
  for (size_t i = 1; i < s.removed.len; i++) assert_true(s.removed.v[i - 1] < s.removed.v[i]);
  bool found[2] = {false, false};
  for (size_t i = 0; i < s.removed.len; i++)
    for (int a = 0; a < 2; a++) found[a] |= s.removed.v[i] == avatar[a];
  assert_true(found[0] && found[1]);
  seen_free(&s);
}

static void test_chunks(void **state) {
  fx *f = *state;
  /* 3,000 boxes in one cell are more than one 60 KiB message. */
  int box = ow_content_type_id(f->content, "box_collider", 12);
  for (int i = 0; i < 3000; i++) {
    ow_transform xf;
    ow_transform_identity(&xf);
    xf.pos[0] = (float)(i % 100);
    xf.pos[2] = (float)(i / 100);
    assert_int_equal(ow_world_spawn(ow_zone_world(f->zone), (uint16_t)box, 0, 0, &xf, NULL), 0);
  }
  assert_int_equal(ow_zone_commit_sync(f->zone, false), 0);
  seen s = update(f, (ow_cell){0, 0}, 1, 1);
  assert_true(s.chunks >= 2);
  assert_true(s.largest <= 60 * 1024);
  assert_int_equal(s.ids.len, ow_replica_count(f->rep));
  seen_free(&s);
}

/* Views in different cells, updated in turn, share the replica's gathered areas; a change makes
 * every gathered area stale. Removals merge every unacknowledged snapshot, without duplicates. */
static void test_views_in_turn(void **state) {
  fx *f = *state;
  ow_view *far = ow_view_create();
  ow_cell origin = {0, 0}, east = {2, 0}; /* east: x in [512, 768) m, nothing of the seed world */
  seen a = update(f, origin, 0, 1), s = update_view(f, far, east, 0, 1);
  assert_true(a.ids.len > 0);
  assert_int_equal(s.ids.len, 0);
  ow_view_ack(f->view, a.id);
  ow_view_ack(far, s.id);
  seen_free(&a);
  seen_free(&s);

  uint64_t sid;
  ow_id avatar;
  assert_int_equal(ow_zone_login(f->zone, 1, &sid, &avatar), 0);
  assert_int_equal(ow_zone_commit_sync(f->zone, false), 0);
  a = update(f, origin, 0, 2); /* S1: the avatar and its inventory, left unacknowledged */
  s = update_view(f, far, east, 0, 2);
  assert_true(has(&a, avatar));
  assert_int_equal(s.chunks, 0); /* nothing changed in the east */
  seen_free(&a);
  seen_free(&s);

  move_to(f, sid, avatar, 1, 3);
  s = update_view(f, far, east, 0, 3);
  assert_int_equal(s.chunks, 0);
  seen_free(&s);
  a = update(f, origin, 0, 3); /* S2: the avatar moved, still unacknowledged */
  assert_true(has(&a, avatar));
  seen_free(&a);

  move_to(f, sid, avatar, 2, 600); /* into the east cell */
  s = update_view(f, far, east, 0, 4);
  assert_true(has(&s, avatar));
  seen_free(&s);
  a = update(f, origin, 0, 4);
  /* The avatar and its inventory were in S1 and S2: each is removed once. */
  assert_int_equal(a.ids.len, 0);
  assert_int_equal(a.removed.len, 2);
  assert_true(a.removed.v[0] != a.removed.v[1]);
  assert_true(a.removed.v[0] == avatar || a.removed.v[1] == avatar);
  seen_free(&a);
  ow_view_destroy(far);
}

/* A view that expects the player's avatar sends no snapshot until the mirror holds it within the
 * area (a first login's avatar is not durable yet when JOIN is answered), then a full state with
 * it and its inventory; later snapshots do not wait. */
static void test_first_waits_for_self(void **state) {
  fx *f = *state;
  uint64_t sid;
  ow_id avatar;
  assert_int_equal(ow_zone_login(f->zone, 1, &sid, &avatar), 0);
  ow_view_expect(f->view, avatar);
  ow_cell origin = {0, 0};
  seen s = update(f, origin, 1, 1);
  assert_int_equal(s.chunks, 0); /* not durable yet */
  seen_free(&s);
  assert_int_equal(ow_zone_commit_sync(f->zone, false), 0);
  s = update(f, (ow_cell){5, 0}, 1, 2);
  assert_int_equal(s.chunks, 0); /* durable, but in cell (0, 0), outside cells 4..6 */
  seen_free(&s);
  s = update(f, origin, 1, 3);
  assert_int_equal(s.base, 0);
  assert_true(has(&s, avatar));
  assert_int_equal(s.ids.len, ow_replica_count(f->rep)); /* the seed world, avatar, inventory */
  ow_view_ack(f->view, s.id);
  seen_free(&s);
  move_to(f, sid, avatar, 1, 700);
  s = update(f, origin, 1, 4);
  assert_int_equal(s.removed.len, 2); /* the avatar and its inventory */
  seen_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_full_delta_confirmed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_frame_after_recovery, setup, teardown),
      cmocka_unit_test_setup_teardown(test_removals_unacknowledged, setup, teardown),
      cmocka_unit_test_setup_teardown(test_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_views_in_turn, setup, teardown),
      cmocka_unit_test_setup_teardown(test_first_waits_for_self, setup, teardown),
  };
  return cmocka_run_group_tests_name("replica", tests, NULL, NULL);
}
