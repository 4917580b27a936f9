/*
 * fuzz target entity_record: entity records as recovery reads them back from the store
 * (src/world: ow_world_record_view, ow_world_load, ow_world_link), then the recovered world as
 * the server goes on to use it: the confirmed-read mirror builds snapshots of it (src/server/
 * replica.c), players act on it, and the next frame encodes what changed.
 *
 * The input is a list of records, each: u64 id, i32 cell x, i32 cell z (the key's parts), u16
 * length, then the record bytes.
 * Properties: a record that loads re-encodes to exactly its bytes; every SNAPSHOT built from a
 * recovered world decodes on a client; actions and the next frame keep the world consistent
 * (and terminate).
 */
#include "fuzz.h"

#include "proto/proto.h"
#include "server/replica.h"
#include "world/world.h"
#include "world_fixture.h"

static uint16_t base_keys;

typedef struct snap_ctx {
  int messages;
} snap_ctx;

/* A client must be able to decode every snapshot the server sends. */
static void on_snapshot(void *ud, const uint8_t *p, size_t n) {
  snap_ctx *x = ud;
  x->messages++;
  ow_msg m;
  size_t used;
  char err[160];
  int rc = ow_proto_decode(p, n, &used, &m, err, sizeof err);
  if (rc) fprintf(stderr, "snapshot does not decode: %s\n", err);
  FUZZ_CHECK(rc == 0 && used == n && m.type == OW_MSG_SNAPSHOT);
  ow_reader r;
  ow_reader_init(&r, m.u.body.p, m.u.body.n);
  ow_rd_u32(&r), ow_rd_u32(&r), ow_rd_u64(&r), ow_rd_u8(&r);
  uint16_t count = ow_rd_u16(&r);
  for (uint16_t i = 0; i < count; i++) {
    ow_wire_entity e;
    FUZZ_CHECK(ow_proto_read_entity(&r, &e) == 0);
  }
  uint16_t nremoved = ow_rd_u16(&r);
  ow_rd_bytes(&r, 8u * nremoved);
  FUZZ_CHECK(!r.err && !r.left);
}

typedef struct drain_ctx {
  ow_world *w;
  ow_buf b;
} drain_ctx;

static void drain_put(void *ud, const ow_entity *e, ow_cell cell, bool had_old, ow_cell old) {
  (void)cell, (void)had_old, (void)old;
  drain_ctx *x = ud;
  x->b.len = 0;
  ow_world_encode(x->w, e, &x->b);
  ow_record_view v;
  FUZZ_CHECK(ow_world_record_view(x->w, x->b.data, x->b.len, &v) == 0);
}
static void drain_del(void *ud, ow_id id, ow_cell old) { (void)ud, (void)id, (void)old; }

typedef struct list_ctx {
  const ow_content *c;
  ow_id ids[64];
  int n;
  ow_id avatars[4];
  ow_id owners[4];
  int navatars;
} list_ctx;

static void list_one(void *ud, const ow_entity *e) {
  list_ctx *x = ud;
  if (x->n < 64) x->ids[x->n++] = e->id;
  if (x->navatars < 4 && x->c->types[e->type].kind == OW_KIND_AVATAR) {
    x->avatars[x->navatars] = e->id;
    x->owners[x->navatars++] = e->owner;
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  ow_log_level = getenv("FUZZ_VERBOSE") ? OW_LOG_DEBUG : OW_LOG_ERROR + 1;
  base_keys = fuzz_default_content()->nkeys;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ow_content *c = fuzz_default_content();
  ow_world_config cfg = {.region_size = 256, .reach = 8, .bound = 1000000};
  ow_world *w = ow_world_create(&cfg, c);
  fuzz_in in = {data, size};
  ow_buf b;
  ow_buf_init(&b);
  while (in.left) {
    ow_id id = fz_u64(&in);
    ow_cell cell;
    cell.x = (int32_t)fz_u32(&in);
    cell.z = (int32_t)fz_u32(&in);
    size_t len = fz_u16(&in), got;
    const uint8_t *p = fz_bytes(&in, len, &got);
    uint8_t *rec = ow_malloc(got ? got : 1); /* exact size: ASan sees a read past the record */
    memcpy(rec, p, got);
    ow_record_view v;
    int vrc = ow_world_record_view(w, rec, got, &v);
    FUZZ_CHECK(vrc == 0 || vrc == OW_E_CORRUPT || vrc == OW_E_UNKNOWN_TYPE);
    int rc = ow_world_load(w, id, cell, rec, got);
    if (!rc) {
      FUZZ_CHECK(vrc == 0);
      const ow_entity *e = ow_world_get(w, id);
      FUZZ_CHECK(e && e->type == v.type);
      /* What recovery loads is what the next checkpoint writes back. */
      b.len = 0;
      ow_world_encode(w, e, &b);
      FUZZ_CHECK(b.len == got && !memcmp(b.data, rec, got));
    }
    ow_free(rec);
  }
  ow_buf_deinit(&b);

  if (ow_world_link(w) == 0) {
    /* Confirmed reads: the mirror of the recovered world, and a client's first snapshot. */
    ow_replica *r = ow_replica_create(w, 1);
    ow_view *view = ow_view_create();
    snap_ctx sx = {0};
    for (int cx = -1; cx <= 1; cx++)
      ow_view_update(view, r, (ow_cell){cx, 0}, 2, 0, on_snapshot, &sx);
    ow_view_destroy(view);
    ow_replica_destroy(r);

    /* Players act on it: every avatar (up to 4) on up to 64 entities, every action type. */
    list_ctx lx = {.c = c};
    ow_world_each(w, list_one, &lx);
    fuzz_world fw = {w, 0, 0};
    for (int a = 0; a < lx.navatars; a++)
      for (int t = 0; t < lx.n; t++)
        for (uint8_t type = OW_ACT_MOVE; type < OW_ACT_MAX_; type++) {
          const ow_entity *target = ow_world_get(w, lx.ids[t]);
          if (!target) continue;
          ow_action act = {.type = type, .target = target->id, .dest = lx.ids[(t + 1) % lx.n],
                           .count = 1, .kind = (uint16_t)(t % c->ntypes)};
          act.xf = target->xf;
          ow_result res;
          ow_world_apply(w, lx.owners[a], lx.avatars[a], &act, &res);
          fuzz_world_check(&fw);
        }
    /* The next frame and checkpoint encode everything that changed. */
    drain_ctx dx = {w, {0}};
    ow_change_sink sink = {drain_put, drain_del, &dx};
    ow_world_drain(w, true, &sink);
    ow_buf_deinit(&dx.b);
  }
  ow_world_destroy(w);
  fuzz_content_keep_keys(c, base_keys);
  return 0;
}
