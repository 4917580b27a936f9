/* fuzz: the world fixture. See world_fixture.h. */
#include "world_fixture.h"

#include "fuzz.h"

static ow_id spawn_at(ow_world *w, const char *type, ow_id owner, ow_id parent, float x, float z) {
  ow_content *c = ow_world_content(w);
  int t = ow_content_type_id(c, type, strlen(type));
  FUZZ_CHECK(t >= 0);
  ow_transform xf;
  ow_transform_identity(&xf);
  if (!parent) {
    xf.pos[0] = x;
    xf.pos[2] = z;
  }
  ow_id id = 0;
  FUZZ_CHECK(ow_world_spawn(w, (uint16_t)t, owner, parent, &xf, &id) == 0);
  return id;
}

void fuzz_world_make(fuzz_world *fw, ow_content *c) {
  ow_world_config cfg = {.region_size = 256, .reach = 8, .bound = 1000000};
  fw->w = ow_world_create(&cfg, c);
  for (uint32_t i = 0; i < c->nseeds; i++)
    FUZZ_CHECK(ow_world_spawn(fw->w, c->seeds[i].type, 0, 0, &c->seeds[i].xf, NULL) == 0);
  fw->avatar = spawn_at(fw->w, "avatar", FUZZ_ACCOUNT, 0, 0, 2);
  fw->inventory = spawn_at(fw->w, "inventory", FUZZ_ACCOUNT, fw->avatar, 0, 0);
  spawn_at(fw->w, "tree", 0, 0, 2, 2);
  spawn_at(fw->w, "rock", 0, 0, -2, 2);
  ow_id chest = spawn_at(fw->w, "chest", 0, 0, 1, 4);
  spawn_at(fw->w, "cart", 0, 0, -1, 4);
  spawn_at(fw->w, "door", FUZZ_ACCOUNT, 0, 0, 5);
  /* z = -0.5 is in the cell (0, -1), the avatar in (0, 0): actions cross a region edge. */
  spawn_at(fw->w, "wall", 0, 0, 0.5f, -0.5f);
  for (int i = 0; i < 3; i++) spawn_at(fw->w, "plank", 0, fw->inventory, 0, 0);
  spawn_at(fw->w, "wood", 0, fw->inventory, 0, 0);
  spawn_at(fw->w, "stone", 0, chest, 0, 0);
}

void fuzz_world_free(fuzz_world *fw) {
  ow_world_destroy(fw->w);
  fw->w = NULL;
}

typedef struct check_ctx {
  const ow_world *w;
  size_t n;
} check_ctx;

static void check_one(void *ud, const ow_entity *e) {
  check_ctx *x = ud;
  x->n++;
  FUZZ_CHECK(e->id != 0);
  FUZZ_CHECK(ow_world_get(x->w, e->id) == e);
  FUZZ_CHECK(e->type < ow_world_content(x->w)->ntypes);
  if (e->parent) FUZZ_CHECK(ow_world_get(x->w, e->parent) != NULL);
}

void fuzz_world_check(const fuzz_world *fw) {
  check_ctx x = {fw->w, 0};
  ow_world_each(fw->w, check_one, &x);
  FUZZ_CHECK(x.n == ow_world_count(fw->w));
}
