/* world: action semantics (stacking, doors, vehicles, regions), records, and bad input: every
 * rejected action returns its reason code and leaves the world byte-for-byte unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "otherworld/protocol.h"
#include "support.h"
#include "world/world.h"

typedef struct fx {
  ow_content *c;
  ow_world *w;
  ow_id p1, a1, inv1; /* player 1: account, avatar, inventory */
  ow_id p2, a2, inv2;
  ow_id chest;        /* public */
  ow_id tree;
} fx;

static int type_id(fx *f, const char *name) { return ow_content_type_id(f->c, name, strlen(name)); }

static ow_id spawn_at(fx *f, const char *type, ow_id owner, ow_id parent, float x, float z) {
  ow_transform t;
  ow_transform_identity(&t);
  t.pos[0] = x;
  t.pos[2] = z;
  ow_id id;
  assert_int_equal(ow_world_spawn(f->w, (uint16_t)type_id(f, type), owner, parent, &t, &id), 0);
  return id;
}

static int setup(void **state) {
  fx *f = ow_calloc(1, sizeof *f);
  f->c = ow_test_content();
  ow_world_config wc = {.region_size = 256, .reach = 8, .bound = 1e6f};
  f->w = ow_world_create(&wc, f->c);
  f->p1 = 101;
  f->a1 = spawn_at(f, "avatar", f->p1, 0, 0, 0);
  f->inv1 = spawn_at(f, "inventory", f->p1, f->a1, 0, 0);
  f->p2 = 202;
  f->a2 = spawn_at(f, "avatar", f->p2, 0, 1, 0);
  f->inv2 = spawn_at(f, "inventory", f->p2, f->a2, 0, 0);
  f->chest = spawn_at(f, "chest", 0, 0, 2, 0);
  f->tree = spawn_at(f, "tree", 0, 0, 3, 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  ow_world_destroy(f->w);
  ow_content_destroy(f->c);
  ow_free(f);
  return 0;
}

static ow_result act(fx *f, ow_id account, ow_action a) {
  ow_result r;
  ow_world_apply(f->w, account, account == f->p1 ? f->a1 : f->a2, &a, &r);
  return r;
}

/* The whole world as bytes (ids and records, in id order), to prove "nothing changed". */
static void snapshot(fx *f, ow_buf *out) {
  out->len = 0;
  for (ow_id id = 1; id < ow_world_next_id(f->w); id++) {
    const ow_entity *e = ow_world_get(f->w, id);
    if (!e) continue;
    ow_buf_u64(out, id);
    ow_buf_u32(out, e->region);
    ow_world_encode(f->w, e, out);
  }
  ow_buf_u64(out, ow_world_next_id(f->w));
}

static void harvest_n(fx *f, int n) {
  for (int i = 0; i < n; i++) {
    ow_result r = act(f, f->p1, (ow_action){.type = OW_ACT_HARVEST, .target = f->tree});
    assert_int_equal(r.code, 0);
  }
}

static ow_id only_stack(fx *f, ow_id container) {
  ow_id found = 0;
  for (ow_id id = 1; id < ow_world_next_id(f->w); id++) {
    const ow_entity *e = ow_world_get(f->w, id);
    if (e && e->parent == container && f->c->types[e->type].kind == OW_KIND_ITEM) {
      assert_int_equal(found, 0);
      found = id;
    }
  }
  return found;
}

static void test_transfer_split_merge(void **state) {
  fx *f = *state;
  harvest_n(f, 2); /* 10 wood */
  ow_id s = only_stack(f, f->inv1);
  assert_int_equal(ow_world_get(f->w, s)->count, 10);
  ow_result r = act(f, f->p1, (ow_action){.type = OW_ACT_TRANSFER, .target = s, .dest = f->chest, .count = 7});
  assert_int_equal(r.code, 0);
  assert_int_equal(r.count, 7);
  ow_id cs = r.entity;
  assert_int_equal(ow_world_get(f->w, cs)->count, 7);
  assert_int_equal(ow_world_get(f->w, cs)->owner, 0); /* items take the chest's owner */
  assert_int_equal(ow_world_get(f->w, s)->count, 3);
  /* The rest merges into the chest's stack and the emptied stack disappears. */
  r = act(f, f->p1, (ow_action){.type = OW_ACT_TRANSFER, .target = s, .dest = f->chest, .count = 3});
  assert_int_equal(r.code, 0);
  assert_int_equal(r.entity, cs);
  assert_int_equal(ow_world_get(f->w, cs)->count, 10);
  assert_null(ow_world_get(f->w, s));
  /* Player 2 may take from the public chest into their own inventory. */
  r = act(f, f->p2, (ow_action){.type = OW_ACT_TRANSFER, .target = cs, .dest = f->inv2, .count = 4});
  assert_int_equal(r.code, 0);
  assert_int_equal(ow_world_get(f->w, r.entity)->owner, f->p2);
  uint64_t totals[64];
  ow_world_item_totals(f->w, totals);
  assert_int_equal(totals[type_id(f, "wood")], 10);
}

static void test_bad_input_changes_nothing(void **state) {
  fx *f = *state;
  harvest_n(f, 1);
  ow_id s1 = only_stack(f, f->inv1);
  ow_result r = act(f, f->p2, (ow_action){.type = OW_ACT_HARVEST, .target = f->tree});
  assert_int_equal(r.code, 0);
  ow_id s2 = only_stack(f, f->inv2);
  ow_id wall = 0;
  {
    ow_transform t;
    ow_transform_identity(&t);
    t.pos[0] = 1;
    assert_int_equal(ow_world_spawn(f->w, (uint16_t)type_id(f, "wall"), f->p2, 0, &t, &wall), 0);
  }
  ow_id far_rock = spawn_at(f, "rock", 0, 0, 100, 100);
  ow_transform nan_xf;
  ow_transform_identity(&nan_xf);
  nan_xf.pos[0] = NAN;
  ow_transform inf_xf;
  ow_transform_identity(&inf_xf);
  inf_xf.pos[2] = INFINITY;
  ow_transform huge_xf;
  ow_transform_identity(&huge_xf);
  huge_xf.pos[1] = 2e6f;
  ow_transform zero_scale;
  ow_transform_identity(&zero_scale);
  zero_scale.scale[1] = 0;

  struct {
    ow_action a;
    int expect;
  } cases[] = {
      /* unknown ids */
      {{.type = OW_ACT_MOVE, .target = 999999}, OW_E_NOT_FOUND},
      {{.type = OW_ACT_HARVEST, .target = 999999}, OW_E_NOT_FOUND},
      {{.type = OW_ACT_TRANSFER, .target = 999999, .dest = f->chest, .count = 1}, OW_E_NOT_FOUND},
      {{.type = OW_ACT_TRANSFER, .target = s1, .dest = 999999, .count = 1}, OW_E_NOT_FOUND},
      {{.type = OW_ACT_INTERACT, .target = 0}, OW_E_NOT_FOUND},
      {{.type = OW_ACT_DESTROY, .target = 999999}, OW_E_NOT_FOUND},
      {{.type = OW_ACT_BUILD, .kind = 9999}, OW_E_UNKNOWN_TYPE},
      {{.type = OW_ACT_CRAFT, .kind = 9999}, OW_E_UNKNOWN_RECIPE},
      /* other players' entities */
      {{.type = OW_ACT_MOVE, .target = f->a2}, OW_E_FORBIDDEN},
      {{.type = OW_ACT_TRANSFER, .target = s2, .dest = f->inv1, .count = 1}, OW_E_FORBIDDEN},
      {{.type = OW_ACT_TRANSFER, .target = s1, .dest = f->inv2, .count = 1}, OW_E_FORBIDDEN},
      {{.type = OW_ACT_DESTROY, .target = wall}, OW_E_FORBIDDEN},
      /* counts: zero, more than the stack, overflowing */
      {{.type = OW_ACT_TRANSFER, .target = s1, .dest = f->chest, .count = 0}, OW_E_BAD_COUNT},
      {{.type = OW_ACT_TRANSFER, .target = s1, .dest = f->chest, .count = 6}, OW_E_BAD_COUNT},
      {{.type = OW_ACT_TRANSFER, .target = s1, .dest = f->chest, .count = UINT32_MAX}, OW_E_BAD_COUNT},
      {{.type = OW_ACT_TRANSFER, .target = s1, .dest = f->chest, .count = (uint32_t)-1}, OW_E_BAD_COUNT},
      /* unknown action types */
      {{.type = 0, .target = f->a1}, OW_E_UNKNOWN_ACTION},
      {{.type = OW_ACT_MAX_, .target = f->a1}, OW_E_UNKNOWN_ACTION},
      {{.type = 255, .target = f->a1}, OW_E_UNKNOWN_ACTION},
      /* wrong kinds of target */
      {{.type = OW_ACT_HARVEST, .target = f->chest}, OW_E_NOT_HARVESTABLE},
      {{.type = OW_ACT_TRANSFER, .target = f->chest, .dest = f->inv1, .count = 1}, OW_E_NOT_ITEM},
      {{.type = OW_ACT_TRANSFER, .target = s1, .dest = f->tree, .count = 1}, OW_E_NOT_CONTAINER},
      {{.type = OW_ACT_TRANSFER, .target = s1, .dest = f->inv1, .count = 1}, OW_E_SAME_CONTAINER},
      {{.type = OW_ACT_MOVE, .target = f->tree}, OW_E_NOT_MOVABLE},
      {{.type = OW_ACT_MOVE, .target = s1}, OW_E_NOT_MOVABLE},
      {{.type = OW_ACT_INTERACT, .target = f->tree}, OW_E_NOT_INTERACTIVE},
      {{.type = OW_ACT_DESTROY, .target = f->tree}, OW_E_NOT_DESTROYABLE},
      {{.type = OW_ACT_DESTROY, .target = f->a1}, OW_E_NOT_DESTROYABLE},
      {{.type = OW_ACT_DESTROY, .target = f->inv1}, OW_E_NOT_DESTROYABLE},
      {{.type = OW_ACT_BUILD, .kind = 0 /* wood: an item */}, OW_E_NOT_BUILDABLE},
      /* positions */
      {{.type = OW_ACT_MOVE, .target = f->a1, .xf = nan_xf}, OW_E_OUT_OF_BOUNDS},
      {{.type = OW_ACT_MOVE, .target = f->a1, .xf = inf_xf}, OW_E_OUT_OF_BOUNDS},
      {{.type = OW_ACT_MOVE, .target = f->a1, .xf = huge_xf}, OW_E_OUT_OF_BOUNDS},
      {{.type = OW_ACT_HARVEST, .target = far_rock}, OW_E_TOO_FAR},
      /* resources */
      {{.type = OW_ACT_CRAFT, .kind = (uint16_t)ow_content_recipe_id(f->c, "stone_blocks")}, OW_E_NOT_ENOUGH},
  };
  ow_action build_zero = {.type = OW_ACT_BUILD, .kind = (uint16_t)type_id(f, "wall"), .xf = zero_scale};
  ow_buf before, after;
  ow_buf_init(&before);
  ow_buf_init(&after);
  snapshot(f, &before);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (cases[i].a.type == OW_ACT_MOVE && cases[i].a.xf.rot[3] == 0) cases[i].a.xf.rot[3] = 1;
    ow_result r1 = act(f, f->p1, cases[i].a);
    if (r1.code != cases[i].expect)
      fail_msg("case %zu (action %d): got %s, expected %s", i, cases[i].a.type, ow_err_name(r1.code),
               ow_err_name(cases[i].expect));
    assert_int_equal(r1.count, 0);
    snapshot(f, &after);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.data, before.data, before.len);
  }
  ow_result r1 = act(f, f->p1, build_zero);
  assert_int_equal(r1.code, OW_E_OUT_OF_BOUNDS);
  /* An avatar that does not belong to the account acts on nothing. */
  ow_result r2;
  ow_action mv = {.type = OW_ACT_MOVE, .target = f->a2};
  ow_transform_identity(&mv.xf);
  assert_int_equal(ow_world_apply(f->w, f->p1, f->a2, &mv, &r2), OW_E_NO_AVATAR);
  assert_int_equal(ow_world_stream(f->w, f->p1, f->a1, f->a2, &mv.xf), OW_E_FORBIDDEN);
  assert_int_equal(ow_world_stream(f->w, f->p1, f->a1, f->a1, &nan_xf), OW_E_OUT_OF_BOUNDS);
  snapshot(f, &after);
  assert_memory_equal(after.data, before.data, before.len);
  /* Nothing rejected is waiting to be committed beyond what setup created. */
  ow_buf_deinit(&before);
  ow_buf_deinit(&after);
}

static void test_full_inventory(void **state) {
  fx *f = *state;
  /* 16 slots of 100 wood: 1600 units fit, the next harvest does not, and changes nothing. */
  ow_id big = spawn_at(f, "tree", 0, 0, -3, 0);
  (void)big;
  for (int i = 0; i < 16 * 20; i++) {
    ow_id t = spawn_at(f, "tree", 0, 0, 0, 1);
    ow_result r = act(f, f->p1, (ow_action){.type = OW_ACT_HARVEST, .target = t});
    assert_int_equal(r.code, 0);
  }
  ow_id t = spawn_at(f, "tree", 0, 0, 0, 1);
  ow_result r = act(f, f->p1, (ow_action){.type = OW_ACT_HARVEST, .target = t});
  assert_int_equal(r.code, OW_E_FULL);
  assert_int_equal(ow_world_get(f->w, t)->hp, f->c->types[type_id(f, "tree")].hp);
}

static void test_build_craft_door_vehicle(void **state) {
  fx *f = *state;
  harvest_n(f, 4); /* 20 wood, tree depleted */
  assert_null(ow_world_get(f->w, f->tree));
  uint16_t planks = (uint16_t)ow_content_recipe_id(f->c, "planks");
  for (int i = 0; i < 10; i++) /* 2 wood each */
    assert_int_equal(act(f, f->p1, (ow_action){.type = OW_ACT_CRAFT, .kind = planks}).code, 0);
  assert_int_equal(act(f, f->p1, (ow_action){.type = OW_ACT_CRAFT, .kind = planks}).code, OW_E_NOT_ENOUGH);
  ow_action b = {.type = OW_ACT_BUILD, .kind = (uint16_t)type_id(f, "door")};
  ow_transform_identity(&b.xf);
  b.xf.pos[0] = 1;
  /* A door needs stone too. */
  assert_int_equal(act(f, f->p1, b).code, OW_E_NOT_ENOUGH);
  b.kind = (uint16_t)type_id(f, "wall");
  ow_result r = act(f, f->p1, b);
  assert_int_equal(r.code, 0);
  assert_int_equal(ow_world_get(f->w, r.entity)->owner, f->p1);
  b.xf.pos[0] = 50;
  assert_int_equal(act(f, f->p1, b).code, OW_E_TOO_FAR);
  /* Doors toggle their "open" property. */
  ow_id door = spawn_at(f, "door", 0, 0, 1, 1);
  r = act(f, f->p2, (ow_action){.type = OW_ACT_INTERACT, .target = door});
  assert_int_equal(r.code, 0);
  assert_int_equal(r.count, 1);
  const ow_prop *p = ow_world_prop(ow_world_get(f->w, door), f->c->key_open);
  assert_true(p && p->type == OW_PROP_INT && p->v.i == 1);
  assert_int_equal(act(f, f->p2, (ow_action){.type = OW_ACT_INTERACT, .target = door}).count, 0);
  /* A cart has two seats; riders move with it and leave where it stands. */
  ow_id cart = spawn_at(f, "cart", 0, 0, 0, 2);
  assert_int_equal(act(f, f->p1, (ow_action){.type = OW_ACT_INTERACT, .target = cart}).count, 1);
  assert_int_equal(ow_world_get(f->w, f->a1)->parent, cart);
  assert_int_equal(act(f, f->p2, (ow_action){.type = OW_ACT_INTERACT, .target = cart}).count, 1);
  ow_id a3 = spawn_at(f, "avatar", 303, 0, 0, 1);
  ow_result r3;
  ow_world_apply(f->w, 303, a3, &(ow_action){.type = OW_ACT_INTERACT, .target = cart}, &r3);
  assert_int_equal(r3.code, OW_E_FULL);
  ow_action mv = {.type = OW_ACT_MOVE, .target = f->a1};
  ow_transform_identity(&mv.xf);
  assert_int_equal(act(f, f->p1, mv).code, OW_E_NOT_MOVABLE); /* seated */
  mv.target = cart;
  mv.xf.pos[0] = 600; /* into region (2, 0) */
  mv.xf.pos[2] = 2;
  assert_int_equal(act(f, f->p1, mv).code, 0);
  ow_cell c = ow_world_region_cell(f->w, ow_world_get(f->w, f->a1)->region);
  assert_int_equal(c.x, 2);
  c = ow_world_region_cell(f->w, ow_world_get(f->w, f->inv1)->region);
  assert_int_equal(c.x, 2);
  assert_int_equal(ow_world_region_count(f->w, (ow_cell){2, 0}), 1 + 2 + 2 + 1); /* cart, avatars, inventories, 1 stack */
  assert_int_equal(act(f, f->p1, (ow_action){.type = OW_ACT_DESTROY, .target = cart}).code, OW_E_NOT_EMPTY);
  assert_int_equal(act(f, f->p1, (ow_action){.type = OW_ACT_INTERACT, .target = cart}).count, 0);
  assert_true(ow_world_get(f->w, f->a1)->xf.pos[0] == 600);
  assert_int_equal(ow_world_get(f->w, f->a1)->parent, 0);
  assert_int_equal(act(f, f->p2, (ow_action){.type = OW_ACT_INTERACT, .target = cart}).count, 0);
  assert_int_equal(act(f, f->p1, (ow_action){.type = OW_ACT_DESTROY, .target = cart}).code, 0);
  assert_null(ow_world_get(f->w, cart));
}

typedef struct drain_rec {
  int puts, dels, moved;
} drain_rec;
static void d_put(void *ud, const ow_entity *e, ow_cell c, bool had_old, ow_cell old) {
  (void)e, (void)c, (void)old;
  drain_rec *d = ud;
  d->puts++;
  d->moved += had_old;
}
static void d_del(void *ud, ow_id id, ow_cell old) {
  (void)id, (void)old;
  ((drain_rec *)ud)->dels++;
}

static void test_change_tracking(void **state) {
  fx *f = *state;
  drain_rec d = {0};
  ow_change_sink sink = {d_put, d_del, &d};
  ow_world_drain(f->w, false, &sink);
  assert_int_equal(d.puts, 6); /* everything setup spawned */
  assert_int_equal(ow_world_pending(f->w, NULL), 0);
  /* A stream that crosses into another region moves the keys of the whole subtree in the next
   * frame, without waiting for a checkpoint: a subtree is never stored split across regions. */
  ow_transform t;
  ow_transform_identity(&t);
  t.pos[0] = 300;
  assert_int_equal(ow_world_stream(f->w, f->p1, f->a1, f->a1, &t), 0);
  size_t sp;
  assert_int_equal(ow_world_pending(f->w, &sp), 2); /* avatar and its inventory */
  memset(&d, 0, sizeof d);
  ow_world_drain(f->w, false, &sink);
  assert_int_equal(d.puts, 2);
  assert_int_equal(d.moved, 2);
  /* Motion within a region waits for the checkpoint. */
  t.pos[0] = 301;
  assert_int_equal(ow_world_stream(f->w, f->p1, f->a1, f->a1, &t), 0);
  assert_int_equal(ow_world_pending(f->w, &sp), 0);
  assert_int_equal(sp, 1);
  memset(&d, 0, sizeof d);
  ow_world_drain(f->w, false, &sink);
  assert_int_equal(d.puts, 0);
  ow_world_drain(f->w, true, &sink);
  assert_int_equal(d.puts, 1);
  assert_int_equal(d.moved, 0);
  /* A destroyed entity that the store holds is deleted. */
  memset(&d, 0, sizeof d);
  ow_result r = act(f, f->p1, (ow_action){.type = OW_ACT_HARVEST, .target = f->tree});
  assert_int_equal(r.code, OW_E_TOO_FAR); /* the avatar streamed away */
  ow_world_drain(f->w, false, &sink);
  assert_int_equal(d.puts + d.dels, 0);
  t.pos[0] = 0;
  assert_int_equal(ow_world_stream(f->w, f->p1, f->a1, f->a1, &t), 0);
  harvest_n(f, 4);
  ow_world_drain(f->w, true, &sink);
  assert_int_equal(d.dels, 1); /* the tree */
}

static void test_records(void **state) {
  fx *f = *state;
  ow_id door = spawn_at(f, "door", 0, 0, 1, 1);
  act(f, f->p1, (ow_action){.type = OW_ACT_INTERACT, .target = door});
  ow_buf rec;
  ow_buf_init(&rec);
  ow_world_encode(f->w, ow_world_get(f->w, door), &rec);
  ow_world_config wc = {.region_size = 256, .reach = 8, .bound = 1e6f};
  ow_world *w2 = ow_world_create(&wc, f->c);
  assert_int_equal(ow_world_load(w2, door, (ow_cell){0, 0}, rec.data, rec.len), 0);
  assert_int_equal(ow_world_link(w2), 0);
  const ow_entity *e = ow_world_get(w2, door);
  assert_int_equal(e->type, type_id(f, "door"));
  assert_int_equal(ow_world_prop(e, f->c->key_open)->v.i, 1);
  assert_true(ow_world_next_id(w2) > door);
  /* Truncations, trailing bytes, a wrong version and a duplicate id are refused. */
  for (size_t n = 0; n < rec.len; n++)
    assert_int_equal(ow_world_load(w2, 5000 + n, (ow_cell){0, 0}, rec.data, n), OW_E_CORRUPT);
  ow_buf_u8(&rec, 0);
  assert_int_equal(ow_world_load(w2, 6000, (ow_cell){0, 0}, rec.data, rec.len), OW_E_CORRUPT);
  rec.len--;
  assert_int_equal(ow_world_load(w2, door, (ow_cell){0, 0}, rec.data, rec.len), OW_E_CORRUPT);
  rec.data[0] = 9;
  assert_int_equal(ow_world_load(w2, 6001, (ow_cell){0, 0}, rec.data, rec.len), OW_E_CORRUPT);
  /* A record whose type the content no longer defines. */
  ow_buf bad;
  ow_buf_init(&bad);
  ow_buf_u8(&bad, 1);
  ow_buf_str16(&bad, "dragon", 6);
  assert_int_equal(ow_world_load(w2, 6002, (ow_cell){0, 0}, bad.data, bad.len), OW_E_UNKNOWN_TYPE);
  /* A child whose parent is missing fails the link. */
  ow_buf child;
  ow_buf_init(&child);
  ow_world_encode(f->w, ow_world_get(f->w, f->inv1), &child);
  assert_int_equal(ow_world_load(w2, f->inv1, (ow_cell){0, 0}, child.data, child.len), 0);
  assert_int_equal(ow_world_link(w2), OW_E_CORRUPT);
  assert_int_equal(ow_world_count(w2), 2);
  ow_world_destroy(w2);
  ow_buf_deinit(&rec);
  ow_buf_deinit(&bad);
  ow_buf_deinit(&child);
}

/* Seeding: ow_world_give follows the stacking rule and refuses what would not fit, changing
 * nothing then. */
static void test_give(void **state) {
  fx *f = *state;
  uint16_t wood = (uint16_t)type_id(f, "wood");
  ow_id first;
  assert_int_equal(ow_world_give(f->w, f->chest, wood, 150, &first), 0);
  const ow_entity *s1 = ow_world_get(f->w, first);
  assert_non_null(s1);
  assert_int_equal(s1->count, 100);
  assert_int_equal(s1->parent, f->chest);
  assert_int_equal(s1->owner, 0);
  assert_int_equal(ow_world_get(f->w, first + 1)->count, 50);
  /* The second stack has room: it is filled first. */
  assert_int_equal(ow_world_give(f->w, f->chest, wood, 30, &first), 0);
  assert_int_equal(ow_world_get(f->w, first)->count, 80);
  size_t n = ow_world_count(f->w);
  assert_int_equal(ow_world_give(f->w, f->chest, wood, 100u * 24, NULL), OW_E_FULL);
  assert_int_equal(ow_world_give(f->w, f->tree, wood, 1, NULL), OW_E_NOT_CONTAINER);
  assert_int_equal(ow_world_give(f->w, f->chest, (uint16_t)type_id(f, "chest"), 1, NULL), OW_E_NOT_ITEM);
  assert_int_equal(ow_world_give(f->w, 999999, wood, 1, NULL), OW_E_NOT_FOUND);
  assert_int_equal(ow_world_give(f->w, f->chest, wood, 0, NULL), OW_E_BAD_COUNT);
  assert_int_equal(ow_world_count(f->w), n);
  uint64_t totals[64] = {0};
  ow_world_item_totals(f->w, totals);
  assert_int_equal(totals[wood], 180);
}

/* A row added at runtime (as a Lua action will be): plants a tree where its arguments say, three
 * f32 (x, y, z), the row's own layout. */
static int plant(ow_world *w, ow_id account, ow_entity *avatar, const ow_action *a, ow_result *res) {
  (void)avatar;
  assert_int_equal(a->nargs, 12); /* the engine checked the row's size */
  int tree = ow_content_type_id(ow_world_content(w), "tree", 4);
  ow_transform xf;
  ow_transform_identity(&xf);
  ow_reader r;
  ow_reader_init(&r, a->args, a->nargs);
  for (int i = 0; i < 3; i++) xf.pos[i] = ow_rd_f32(&r);
  ow_id id;
  int rc = ow_world_spawn(w, (uint16_t)tree, account, 0, &xf, &id);
  if (rc) return rc;
  res->entity = id;
  res->count = 1;
  return 0;
}

static void test_action_table(void **state) {
  fx *f = *state;
  const ow_action_row *move = ow_world_action_row(f->w, OW_ACT_MOVE);
  assert_non_null(move);
  assert_string_equal(move->name, "move");
  assert_null(ow_world_action_row(f->w, 100));

  /* Bad rows and taken ids or names are refused, and the table is unchanged. */
  ow_action_row bad[] = {
      {0, "plant", 0, plant, 0},                        /* type 0 */
      {100, NULL, 0, plant, 0},                         /* no name */
      {100, "", 0, plant, 0},                           /* empty name */
      {100, "plant", 0, NULL, 0},                       /* no function */
      {100, "plant", OW_ACTION_ARGS_MAX + 1, plant, 0}, /* arguments larger than an action's */
      {100, "plant", 12, plant, 13},                    /* minimum above the maximum */
      {OW_ACT_MOVE, "plant", 0, plant, 0},              /* a built-in's id */
      {100, "build", 0, plant, 0},                      /* a built-in's name */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(ow_world_action_register(f->w, &bad[i]), OW_E_INVAL);
  assert_null(ow_world_action_row(f->w, 100));
  assert_ptr_equal(ow_world_action_row(f->w, OW_ACT_MOVE)->apply, move->apply);
  assert_int_equal(ow_world_action_register(f->w, NULL), OW_E_INVAL);

  /* The built-in rows take exactly the fixed layout. */
  assert_int_equal(move->arg_min, OW_ACTION_BUILTIN_ARGS);
  assert_int_equal(move->arg_size, OW_ACTION_BUILTIN_ARGS);

  ow_action_row row = {.type = 100, .name = "plant", .arg_min = 12, .arg_size = 12, .apply = plant};
  assert_int_equal(ow_world_action_register(f->w, &row), 0);
  assert_int_equal(ow_world_action_register(f->w, &row), OW_E_INVAL); /* now taken */
  size_t n = ow_world_count(f->w);
  uint8_t args[13];
  ow_buf ab = {0};
  ow_buf_f32(&ab, 40), ow_buf_f32(&ab, 0), ow_buf_f32(&ab, 0), ow_buf_u8(&ab, 0xee);
  memcpy(args, ab.data, sizeof args);
  ow_buf_deinit(&ab);
  ow_action a = {.type = 100, .args = args};
  /* Arguments outside the row's size are refused before the row runs, and change nothing. */
  for (uint16_t len = 0; len <= 13; len++) {
    if (len == 12) continue;
    a.nargs = len;
    ow_result bad_r = act(f, f->p1, a);
    assert_int_equal(bad_r.code, OW_E_INVAL);
    assert_int_equal(ow_world_count(f->w), n);
  }
  a.nargs = 12;
  ow_result r = act(f, f->p1, a);
  assert_int_equal(r.code, 0);
  assert_int_equal(r.count, 1);
  const ow_entity *e = ow_world_get(f->w, r.entity);
  assert_non_null(e);
  assert_int_equal(e->type, type_id(f, "tree"));
  assert_int_equal(e->owner, f->p1);
  assert_true(e->xf.pos[0] == 40);
  assert_int_equal(ow_world_count(f->w), n + 1);

  /* A type without a row is refused as before, and the avatar is still checked first. */
  a.type = 101;
  assert_int_equal(act(f, f->p1, a).code, OW_E_UNKNOWN_ACTION);
  a.type = 100;
  ow_result r2;
  assert_int_equal(ow_world_apply(f->w, f->p1, f->a2, &a, &r2), OW_E_NO_AVATAR);
}

/* ---- the undo log ---- */

/* What a drain reports, as bytes: each put (id, cell, old cell, record) and each delete. */
typedef struct drain_bytes {
  ow_world *w;
  ow_buf b;
} drain_bytes;

static void db_put(void *ud, const ow_entity *e, ow_cell cell, bool had_old, ow_cell old_cell) {
  drain_bytes *d = ud;
  ow_buf_u8(&d->b, 'P');
  ow_buf_u64(&d->b, e->id);
  ow_buf_u32(&d->b, (uint32_t)cell.x);
  ow_buf_u32(&d->b, (uint32_t)cell.z);
  ow_buf_u8(&d->b, had_old);
  ow_buf_u32(&d->b, had_old ? (uint32_t)old_cell.x : 0);
  ow_buf_u32(&d->b, had_old ? (uint32_t)old_cell.z : 0);
  ow_world_encode(d->w, e, &d->b);
}

static void db_del(void *ud, ow_id id, ow_cell old_cell) {
  drain_bytes *d = ud;
  ow_buf_u8(&d->b, 'D');
  ow_buf_u64(&d->b, id);
  ow_buf_u32(&d->b, (uint32_t)old_cell.x);
  ow_buf_u32(&d->b, (uint32_t)old_cell.z);
}

static fx *botch_fx;
static ow_id botch_door, botch_cart;

static ow_result sub_act(ow_world *w, ow_id account, ow_id avatar, ow_action a) {
  ow_result r;
  assert_int_equal(ow_world_apply(w, account, avatar, &a, &r), 0);
  return r;
}

/* A row that changes a bit of everything through built-in actions and the public API, then fails:
 * the engine, not the row, must undo it all. */
static int botch(ow_world *w, ow_id account, ow_entity *avatar, const ow_action *a, ow_result *res) {
  (void)a;
  (void)res;
  fx *f = botch_fx;
  ow_id av = avatar->id;
  ow_transform t;
  ow_transform_identity(&t);
  t.pos[0] = 4;
  ow_id planted;
  assert_int_equal(ow_world_spawn(w, (uint16_t)type_id(f, "tree"), 0, 0, &t, &planted), 0);
  ow_id stack = sub_act(w, account, av, (ow_action){.type = OW_ACT_HARVEST, .target = f->tree}).entity;
  sub_act(w, account, av, (ow_action){.type = OW_ACT_HARVEST, .target = f->tree});
  ow_id moved = sub_act(w, account, av, (ow_action){.type = OW_ACT_TRANSFER, .target = stack,
                                                    .dest = f->chest, .count = 1}).entity;
  sub_act(w, account, av, (ow_action){.type = OW_ACT_TRANSFER, .target = moved, .dest = f->inv1, .count = 1});
  assert_null(ow_world_get(w, moved)); /* merged back: destroyed */
  sub_act(w, account, av, (ow_action){.type = OW_ACT_DESTROY, .target = f->chest});
  sub_act(w, account, av, (ow_action){.type = OW_ACT_INTERACT, .target = botch_door});
  sub_act(w, account, av, (ow_action){.type = OW_ACT_INTERACT, .target = botch_cart}); /* enter */
  sub_act(w, account, av, (ow_action){.type = OW_ACT_INTERACT, .target = botch_cart}); /* leave */
  ow_action mv = {.type = OW_ACT_MOVE, .target = av};
  ow_transform_identity(&mv.xf);
  mv.xf.pos[0] = 300; /* another region, with the inventory and its stacks */
  sub_act(w, account, av, mv);
  /* A stream cannot be part of an action: it would never be rolled back. */
  assert_int_equal(ow_world_stream(w, account, av, av, &t), OW_E_STATE);
  /* A failed nested action rolls back only itself. */
  ow_result r;
  assert_int_equal(ow_world_apply(w, account, av, &(ow_action){.type = OW_ACT_DESTROY, .target = f->inv1}, &r),
                   OW_E_NOT_DESTROYABLE);
  return OW_E_FULL;
}

static void prepare(fx *f) {
  botch_door = spawn_at(f, "door", 0, 0, 1, 1);
  botch_cart = spawn_at(f, "cart", 0, 0, 2, 2);
  drain_bytes d = {f->w, {0}};
  ow_change_sink sink = {db_put, db_del, &d};
  ow_world_drain(f->w, true, &sink); /* everything stored: destroys now leave tombstones */
  ow_buf_deinit(&d.b);
  harvest_n(f, 1); /* and something pending */
}

static void test_failed_row_rolls_back(void **state) {
  fx *f = *state, *g;
  void *gs;
  setup(&gs);
  g = gs;
  prepare(f);
  prepare(g);
  ow_action_row row = {120, "botch", 0, botch, 0};
  assert_int_equal(ow_world_action_register(f->w, &row), 0);
  botch_fx = f;
  for (int round = 0; round < 2; round++) { /* the second time on a reused undo buffer */
    ow_result r = act(f, f->p1, (ow_action){.type = 120, .target = 7});
    assert_int_equal(r.code, OW_E_FULL);
    assert_int_equal(r.entity, 7);
    assert_int_equal(r.count, 0);
  }
  ow_buf a = {0}, b = {0};
  snapshot(f, &a);
  snapshot(g, &b);
  assert_int_equal(a.len, b.len);
  assert_memory_equal(a.data, b.data, a.len);
  assert_int_equal(ow_world_count(f->w), ow_world_count(g->w));
  assert_int_equal(ow_world_next_id(f->w), ow_world_next_id(g->w));
  size_t sf, sg;
  assert_int_equal(ow_world_pending(f->w, &sf), ow_world_pending(g->w, &sg));
  assert_int_equal(sf, sg);
  drain_bytes df = {f->w, {0}}, dg = {g->w, {0}};
  ow_change_sink kf = {db_put, db_del, &df}, kg = {db_put, db_del, &dg};
  ow_world_drain(f->w, true, &kf);
  ow_world_drain(g->w, true, &kg);
  assert_true(df.b.len > 0);
  assert_int_equal(df.b.len, dg.b.len);
  assert_memory_equal(df.b.data, dg.b.data, df.b.len);
  /* And the worlds go on alike: the same action gets the same result. */
  ow_result rf = act(f, f->p1, (ow_action){.type = OW_ACT_DESTROY, .target = f->chest});
  ow_result rg = act(g, g->p1, (ow_action){.type = OW_ACT_DESTROY, .target = g->chest});
  assert_int_equal(rf.code, 0);
  assert_int_equal(rf.code, rg.code);
  assert_int_equal(rf.entity, rg.entity);
  assert_int_equal(rf.count, rg.count);
  ow_buf_deinit(&a);
  ow_buf_deinit(&b);
  ow_buf_deinit(&df.b);
  ow_buf_deinit(&dg.b);
  teardown(&gs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_transfer_split_merge, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_full_inventory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_build_craft_door_vehicle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_change_tracking, setup, teardown),
      cmocka_unit_test_setup_teardown(test_records, setup, teardown),
      cmocka_unit_test_setup_teardown(test_give, setup, teardown),
      cmocka_unit_test_setup_teardown(test_action_table, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_row_rolls_back, setup, teardown),
  };
  return cmocka_run_group_tests_name("world", tests, NULL, NULL);
}
