/*
 * fuzz target content: a content file (src/content, JSON through jansson), as the server reads
 * --content at start. A file that loads is then used as the zone uses it on an empty store: its
 * seed world is spawned, and every entity's record is encoded and decoded again (src/world).
 * Properties: a refused file names the problem; every accepted type, recipe and seed refers to
 * things that exist; the world description (JOINED) fits in one message; every record of the
 * seed world decodes to what was encoded.
 */
#include "fuzz.h"

#include <math.h>

#include "content/content.h"
#include "proto/proto.h"
#include "world/world.h"

typedef struct rt_ctx {
  ow_world *w;
  ow_buf b;
} rt_ctx;

static void roundtrip(void *ud, const ow_entity *e) {
  rt_ctx *x = ud;
  x->b.len = 0;
  ow_world_encode(x->w, e, &x->b);
  ow_record_view v;
  FUZZ_CHECK(ow_world_record_view(x->w, x->b.data, x->b.len, &v) == 0);
  FUZZ_CHECK(v.type == e->type && v.owner == e->owner && v.parent == e->parent);
  FUZZ_CHECK(v.hp == e->hp && v.count == e->count);
  FUZZ_CHECK(v.nprops == (e->props ? e->props->n : 0));
}

static void check_content(const ow_content *c) {
  FUZZ_CHECK(c->ntypes >= 1);
  FUZZ_CHECK(c->avatar_type < c->ntypes && c->types[c->avatar_type].kind == OW_KIND_AVATAR);
  FUZZ_CHECK(c->inventory_type < c->ntypes && c->types[c->inventory_type].kind == OW_KIND_CONTAINER);
  FUZZ_CHECK(c->key_open < c->nkeys);
  for (uint16_t i = 0; i < c->ntypes; i++) {
    const ow_type *t = &c->types[i];
    FUZZ_CHECK(t->id == i && t->name && t->kind >= OW_KIND_RESOURCE && t->kind <= OW_KIND_AVATAR);
    FUZZ_CHECK(ow_content_type_id(c, t->name, strlen(t->name)) == i);
    for (uint16_t k = 0; k < t->ncost; k++)
      FUZZ_CHECK(t->cost[k].item < c->ntypes && c->types[t->cost[k].item].kind == OW_KIND_ITEM);
    for (uint16_t k = 0; k < t->nprops; k++) FUZZ_CHECK(t->props[k].key < c->nkeys);
    if (t->kind == OW_KIND_RESOURCE)
      FUZZ_CHECK(t->yield_item < c->ntypes && c->types[t->yield_item].kind == OW_KIND_ITEM);
  }
  for (uint16_t i = 0; i < c->nrecipes; i++) {
    const ow_recipe *r = &c->recipes[i];
    FUZZ_CHECK(r->nin >= 1 && r->nout >= 1);
    for (uint16_t k = 0; k < r->nin; k++) FUZZ_CHECK(c->types[r->in[k].item].kind == OW_KIND_ITEM);
    for (uint16_t k = 0; k < r->nout; k++) FUZZ_CHECK(c->types[r->out[k].item].kind == OW_KIND_ITEM);
  }
  for (uint32_t i = 0; i < c->nseeds; i++) {
    FUZZ_CHECK(c->seeds[i].type < c->ntypes);
    for (int k = 0; k < 3; k++) FUZZ_CHECK(isfinite(c->seeds[i].xf.pos[k]));
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  ow_log_level = getenv("FUZZ_VERBOSE") ? OW_LOG_DEBUG : OW_LOG_ERROR + 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ow_content *c = NULL;
  char err[400] = "";
  int rc = ow_content_load_string((const char *)data, size, &c, err, sizeof err);
  if (rc) {
    FUZZ_CHECK(rc == OW_E_CONTENT && c == NULL);
    FUZZ_CHECK(err[0] != 0);
    return 0;
  }
  check_content(c);
  /* JOINED carries the world description to every client: it must fit in one message. As
   * send_joined() in src/server/server.c builds it (ow_proto_end asserts the size). */
  ow_buf j;
  ow_buf_init(&j);
  size_t at = ow_proto_begin(&j, OW_MSG_JOINED);
  ow_buf_u32(&j, 1);
  ow_buf_f32(&j, 256);
  ow_buf_f32(&j, 128);
  ow_buf_u16(&j, c->ntypes);
  for (uint16_t i = 0; i < c->ntypes; i++) {
    ow_buf_u16(&j, i);
    ow_buf_u8(&j, c->types[i].kind);
    ow_buf_u8(&j, (uint8_t)strlen(c->types[i].name));
    ow_buf_put(&j, c->types[i].name, strlen(c->types[i].name));
  }
  ow_buf_u16(&j, c->nrecipes);
  for (uint16_t i = 0; i < c->nrecipes; i++) {
    ow_buf_u16(&j, i);
    ow_buf_u8(&j, (uint8_t)strlen(c->recipes[i].name));
    ow_buf_put(&j, c->recipes[i].name, strlen(c->recipes[i].name));
  }
  ow_buf_u16(&j, c->nkeys);
  for (uint16_t i = 0; i < c->nkeys; i++) {
    ow_buf_u8(&j, (uint8_t)strlen(c->keys[i]));
    ow_buf_put(&j, c->keys[i], strlen(c->keys[i]));
  }
  FUZZ_CHECK(j.len - at - OW_MSG_HEADER <= OW_MSG_MAX_BODY);
  FUZZ_CHECK(j.len - at - OW_MSG_HEADER - 4 == ow_content_description_size(c));
  ow_proto_end(&j, at);
  ow_buf_deinit(&j);
  /* As recover() seeds an empty store. */
  ow_world_config cfg = {.region_size = 256, .reach = 8, .bound = 1000000};
  ow_world *w = ow_world_create(&cfg, c);
  for (uint32_t i = 0; i < c->nseeds; i++)
    FUZZ_CHECK(ow_world_spawn(w, c->seeds[i].type, 0, 0, &c->seeds[i].xf, NULL) == 0);
  ow_id avatar = 0;
  ow_transform xf;
  ow_transform_identity(&xf);
  memcpy(xf.pos, c->spawn, sizeof xf.pos);
  FUZZ_CHECK(ow_world_spawn(w, c->avatar_type, 1, 0, &xf, &avatar) == 0);
  FUZZ_CHECK(ow_world_spawn(w, c->inventory_type, 1, avatar, &xf, NULL) == 0);
  rt_ctx x = {w, {0}};
  ow_world_each(w, roundtrip, &x);
  ow_buf_deinit(&x.b);
  ow_world_destroy(w);
  ow_content_destroy(c);
  return 0;
}
