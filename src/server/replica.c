/* replica: confirmed-read mirror and per-client snapshot deltas. See replica.h. */
#include "server/replica.h"
#include "server/interest.h"

#include <stdlib.h>

#define RING 32
#define CHUNK_LIMIT (56u * 1024u)
#define RESEND_NS (500ull * 1000000ull)

typedef struct ment {
  ow_id id;
  int32_t cx, cz;
  uint64_t ver;
  uint32_t cell;     /* index of the cell */
  uint32_t cell_pos; /* position in the cell's vector */
  uint32_t len;
  uint8_t *rec;
} ment;

typedef struct cell {
  int32_t x, z;
  uint64_t ver; /* newest change (put or delete) in this cell */
  OW_VEC(ment *) ents;
} cell;

typedef struct pair {
  ow_id id;
  uint64_t ver;
} pair;

/* An area gathered by a view (the cells within a radius of a centre cell), sorted by id, kept
 * while the replica does not change: the players of a room share a few centre cells, so one gather
 * and one sort per tick serve all of them. */
#define AREAS 8
typedef struct area {
  OW_VEC(pair) ents;
  ow_cell center;
  int radius;
  uint64_t changes; /* the replica's change count it was gathered at */
} area;

struct ow_replica {
  ow_world *world;
  ow_map by_id;   /* id -> ment* */
  ow_map cell_of; /* packed cell -> index + 1 */
  OW_VEC(cell) cells;
  uint64_t ver;
  /* puts and deletes applied, from 1: an area gathered before a change is stale */
  uint64_t changes;
  area areas[AREAS];
  unsigned next_area; /* the one replaced next when none matches */
  /* The message being built by ow_view_update. Views are updated one at a time on the loop's
   * thread and emit copies it out, so one buffer serves them all; a buffer per view would keep the
   * size of the largest snapshot it ever sent (up to a 56 KiB chunk) for the life of the
   * connection. */
  ow_buf chunk;
};

typedef struct snap {
  uint32_t id;
  size_t n;
  ow_id *ids;
  uint64_t *vers;
} snap;

struct ow_view {
  snap ring[RING];
  uint32_t next_id;   /* id of the next snapshot */
  uint32_t acked;     /* newest acknowledged id, 0 if none */
  uint32_t last_sent; /* id of the newest sent, 0 if none */
  uint64_t last_sent_ns;
  uint64_t built_ver; /* replica version of the last build */
  ow_cell built_center;
  int built_radius;
  bool built;
  ow_id self; /* the player's avatar: the first snapshot waits for it (ow_view_expect) */
};


static uint32_t cell_get(ow_replica *r, int32_t x, int32_t z) {
  uint64_t *v = ow_map_get(&r->cell_of, ow_cell_key((ow_cell){x, z}));
  if (v) return (uint32_t)(*v - 1);
  cell c = {.x = x, .z = z};
  OW_VEC_PUSH(r->cells, c);
  ow_map_set(&r->cell_of, ow_cell_key((ow_cell){x, z}), r->cells.len);
  return (uint32_t)(r->cells.len - 1);
}

static void unlink_ment(ow_replica *r, ment *m) {
  cell *c = &r->cells.v[m->cell];
  ment *last = c->ents.v[--c->ents.len];
  c->ents.v[m->cell_pos] = last;
  last->cell_pos = m->cell_pos;
}

static void put(ow_replica *r, ow_id id, int32_t x, int32_t z, const uint8_t *rec, size_t len, uint64_t ver) {
  uint64_t *v = ow_map_get(&r->by_id, id);
  ment *m = v ? (ment *)(uintptr_t)*v : NULL;
  if (!m) {
    m = ow_calloc(1, sizeof *m);
    m->id = id;
    m->cell = UINT32_MAX;
    ow_map_set(&r->by_id, id, (uint64_t)(uintptr_t)m);
  }
  if (m->cell != UINT32_MAX && (m->cx != x || m->cz != z)) {
    r->cells.v[m->cell].ver = ver;
    unlink_ment(r, m);
    m->cell = UINT32_MAX;
  }
  if (m->cell == UINT32_MAX) {
    m->cx = x;
    m->cz = z;
    m->cell = cell_get(r, x, z);
    cell *c = &r->cells.v[m->cell];
    m->cell_pos = (uint32_t)c->ents.len;
    OW_VEC_PUSH(c->ents, m);
  }
  m->rec = ow_realloc(m->rec, len);
  memcpy(m->rec, rec, len);
  m->len = (uint32_t)len;
  m->ver = ver;
  r->cells.v[m->cell].ver = ver;
  if (ver > r->ver) r->ver = ver;
  r->changes++;
}

static void del(ow_replica *r, ow_id id, int32_t x, int32_t z, uint64_t ver) {
  uint64_t *v = ow_map_get(&r->by_id, id);
  ment *m = v ? (ment *)(uintptr_t)*v : NULL;
  /* A move deletes the old key and writes the new one: only a delete of the current key counts. */
  if (!m || m->cx != x || m->cz != z) return;
  r->cells.v[m->cell].ver = ver;
  if (ver > r->ver) r->ver = ver;
  r->changes++;
  unlink_ment(r, m);
  ow_map_del(&r->by_id, id);
  ow_free(m->rec);
  ow_free(m);
}

typedef struct seed_ctx {
  ow_replica *r;
  ow_buf buf;
  uint64_t frame;
} seed_ctx;

static void seed_one(void *ud, const ow_entity *e) {
  seed_ctx *x = ud;
  x->buf.len = 0;
  ow_world_encode(x->r->world, e, &x->buf);
  ow_cell c = ow_world_region_cell(x->r->world, e->region);
  put(x->r, e->id, c.x, c.z, x->buf.data, x->buf.len, x->frame);
}

ow_replica *ow_replica_create(ow_world *w, uint64_t frame) {
  ow_replica *r = ow_calloc(1, sizeof *r);
  r->world = w;
  r->changes = 1; /* never 0: the areas start zeroed and must not match */
  ow_map_init(&r->by_id);
  ow_map_init(&r->cell_of);
  /* The version of every entity is the recovered frame, so that snapshots sent before the next
   * commit say which durable frame they show (they said 1 after every restart). */
  seed_ctx x = {r, {0}, frame ? frame : 1};
  ow_world_each(w, seed_one, &x);
  ow_buf_deinit(&x.buf);
  return r;
}

void ow_replica_destroy(ow_replica *r) {
  if (!r) return;
  for (size_t i = 0; i < r->cells.len; i++) {
    for (size_t k = 0; k < r->cells.v[i].ents.len; k++) {
      ow_free(r->cells.v[i].ents.v[k]->rec);
      ow_free(r->cells.v[i].ents.v[k]);
    }
    OW_VEC_FREE(r->cells.v[i].ents);
  }
  OW_VEC_FREE(r->cells);
  for (int i = 0; i < AREAS; i++) OW_VEC_FREE(r->areas[i].ents);
  ow_map_deinit(&r->by_id);
  ow_map_deinit(&r->cell_of);
  ow_buf_deinit(&r->chunk);
  ow_free(r);
}

size_t ow_replica_count(const ow_replica *r) { return r->by_id.len; }

typedef struct apply_ctx {
  ow_replica *r;
  uint64_t frame;
} apply_ctx;

static int apply_op(void *ud, int op, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  apply_ctx *x = ud;
  int32_t cx, cz;
  uint64_t id;
  if (!ow_key_parse_entity(k, kl, &cx, &cz, &id)) return 0; /* not an entity: sessions, meta */
  if (op == OW_BATCH_PUT)
    put(x->r, id, cx, cz, v, vl, x->frame);
  else
    del(x->r, id, cx, cz, x->frame);
  return 0;
}

void ow_replica_apply(ow_replica *r, const ow_batch *b, uint64_t frame) {
  apply_ctx x = {r, frame};
  ow_batch_each(b, apply_op, &x);
}

/* ---- views --------------------------------------------------------------------------------------- */

ow_view *ow_view_create(void) {
  ow_view *v = ow_calloc(1, sizeof *v);
  v->next_id = 1;
  return v;
}

void ow_view_destroy(ow_view *v) {
  if (!v) return;
  for (int i = 0; i < RING; i++) {
    ow_free(v->ring[i].ids);
    ow_free(v->ring[i].vers);
  }
  ow_free(v);
}

void ow_view_ack(ow_view *v, uint32_t id) {
  snap *s = &v->ring[id % RING];
  if (!id || s->id != id || id <= v->acked) return;
  v->acked = id;
  /* Bases only move forward: snapshots older than the acknowledged one are never needed again, so
   * an idle client that acknowledges keeps one or two sets of ids, not the whole ring. */
  for (int i = 0; i < RING; i++) {
    snap *o = &v->ring[i];
    if (o->id && o->id < id) {
      ow_free(o->ids);
      ow_free(o->vers);
      o->ids = NULL;
      o->vers = NULL;
      o->id = 0;
      o->n = 0;
    }
  }
}

void ow_view_expect(ow_view *v, ow_id self) { v->self = self; }

/* Whether the mirror holds entity `id` in the cells within `radius` of `c`. */
static bool holds(ow_replica *r, ow_id id, ow_cell c, int radius) {
  uint64_t *p = ow_map_get(&r->by_id, id);
  const ment *m = p ? (const ment *)(uintptr_t)*p : NULL;
  return m && llabs((int64_t)m->cx - c.x) <= radius && llabs((int64_t)m->cz - c.z) <= radius;
}

void ow_view_reset(ow_view *v) {
  for (int i = 0; i < RING; i++) v->ring[i].id = 0;
  v->acked = v->last_sent = 0;
  v->built = false;
}

static int cmp_id(const void *a, const void *b) {
  ow_id x = *(const ow_id *)a, y = *(const ow_id *)b;
  return x < y ? -1 : x > y;
}

static int cmp_pair(const void *a, const void *b) {
  ow_id x = ((const pair *)a)->id, y = ((const pair *)b)->id;
  return x < y ? -1 : x > y;
}

/* Turns a record into the wire's entity state. */
static bool to_wire(ow_replica *r, const ment *m, ow_wire_entity *e) {
  ow_record_view rv;
  if (ow_world_record_view(r->world, m->rec, m->len, &rv)) return false;
  e->id = m->id;
  e->type = rv.type;
  e->owner = rv.owner;
  e->parent = rv.parent;
  for (int i = 0; i < 3; i++) {
    e->pos[i] = ow_quant_mm(rv.xf.pos[i]);
    e->scale[i] = rv.xf.scale[i];
  }
  e->rot = ow_quat_pack(rv.xf.rot);
  e->hp = rv.hp;
  e->count = rv.count;
  /* The content loader and the record decoder both hold entities to OW_PROPS_MAX properties. */
  OW_ASSERT(rv.nprops <= OW_PROPS_MAX);
  e->nprops = rv.nprops;
  for (uint8_t i = 0; i < e->nprops; i++) {
    e->props[i].key = rv.props[i].key;
    e->props[i].type = rv.props[i].type;
    if (rv.props[i].type == OW_PROP_STRING) {
      e->props[i].v.s.p = rv.props[i].v.s.p;
      e->props[i].v.s.n = rv.props[i].v.s.n;
    } else {
      e->props[i].v.ref = rv.props[i].v.ref;
    }
  }
  return true;
}

typedef struct chunker {
  ow_buf *b;
  uint32_t id, base;
  uint64_t frame;
  size_t at, count_at;
  uint16_t count;
  ow_emit_fn emit;
  void *ud;
  int emitted;
} chunker;

static void chunk_open(chunker *c) {
  ow_buf *b = c->b;
  b->len = 0;
  c->at = ow_proto_begin(b, OW_MSG_SNAPSHOT);
  ow_buf_u32(b, c->id);
  ow_buf_u32(b, c->base);
  ow_buf_u64(b, c->frame);
  ow_buf_u8(b, 0); /* flags, patched when another chunk follows */
  c->count_at = b->len;
  ow_buf_u16(b, 0);
  c->count = 0;
}

static void chunk_close(chunker *c, bool more, const ow_id *removed, size_t nremoved) {
  ow_buf *b = c->b;
  b->data[c->count_at - 1] = more ? 1 : 0;
  b->data[c->count_at] = (uint8_t)c->count;
  b->data[c->count_at + 1] = (uint8_t)(c->count >> 8);
  ow_buf_u16(b, (uint16_t)nremoved);
  for (size_t i = 0; i < nremoved; i++) ow_buf_u64(b, removed[i]);
  ow_proto_end(b, c->at);
  c->emit(c->ud, b->data, b->len);
  c->emitted++;
}

int ow_view_update(ow_view *v, ow_replica *r, ow_cell center, int radius_cells, uint64_t now_ns,
                   ow_emit_fn emit, void *ud) {
  /* A first login creates the avatar and its inventory in a frame that is not durable yet, and a
   * JOIN sent with the LOGIN is answered before it is: the first snapshot then showed a world
   * without the player in it. It waits instead until the mirror holds the avatar in the area (the
   * inventory is its child, written in the same frame and stored in the same cell). */
  if (v->self && !v->last_sent && !holds(r, v->self, center, radius_cells)) return 0;
  bool moved = !v->built || v->built_center.x != center.x || v->built_center.z != center.z ||
               v->built_radius != radius_cells;
  bool unacked = v->last_sent && v->acked != v->last_sent;
  bool resend = unacked && now_ns - v->last_sent_ns > RESEND_NS;
  if (!moved && r->ver <= v->built_ver && !resend) return 0;
  /* Skip cheaply when no cell in range changed since the last build. */
  uint64_t newest = 0;
  OW_VEC(pair) cur = {0}; /* the area, borrowed from the replica below */
  ow_cell at;
  for (ow_interest it = ow_interest_begin(center, radius_cells); ow_interest_next(&it, &at);) {
    uint64_t *ci = ow_map_get(&r->cell_of, ow_cell_key(at));
    if (!ci) continue;
    cell *c = &r->cells.v[*ci - 1];
    if (c->ver > newest) newest = c->ver;
  }
  if (!moved && !resend && newest <= v->built_ver) {
    v->built_ver = r->ver;
    return 0;
  }
  area *a = NULL;
  for (int k = 0; k < AREAS && !a; k++) {
    area *x = &r->areas[k];
    if (x->changes == r->changes && x->radius == radius_cells && x->center.x == center.x &&
        x->center.z == center.z)
      a = x;
  }
  if (!a) {
    a = &r->areas[r->next_area++ % AREAS];
    a->ents.len = 0;
    for (ow_interest it = ow_interest_begin(center, radius_cells); ow_interest_next(&it, &at);) {
      uint64_t *ci = ow_map_get(&r->cell_of, ow_cell_key(at));
      if (!ci) continue;
      cell *c = &r->cells.v[*ci - 1];
      for (size_t k = 0; k < c->ents.len; k++) {
        pair p = {c->ents.v[k]->id, c->ents.v[k]->ver};
        OW_VEC_PUSH(a->ents, p);
      }
    }
    if (a->ents.len > 1) qsort(a->ents.v, a->ents.len, sizeof *a->ents.v, cmp_pair);
    a->changes = r->changes;
    a->center = center;
    a->radius = radius_cells;
  }
  cur.v = a->ents.v; /* borrowed: read only, never freed here */
  cur.len = a->ents.len;
  v->built = true;
  v->built_center = center;
  v->built_radius = radius_cells;
  v->built_ver = r->ver;

  snap *base = v->acked ? &v->ring[v->acked % RING] : NULL;
  if (base && base->id != v->acked) base = NULL;
  /* Merge the sorted current set against the base: changed or new entities. */
  OW_VEC(ow_id) changed = {0};
  OW_VEC(ow_id) removed = {0};
  size_t i = 0, j = 0, nb = base ? base->n : 0;
  while (i < cur.len) {
    while (j < nb && base->ids[j] < cur.v[i].id) j++;
    if (j >= nb || base->ids[j] != cur.v[i].id || base->vers[j] != cur.v[i].ver)
      OW_VEC_PUSH(changed, cur.v[i].id);
    i++;
  }
  /* Removals cover everything the client may hold: the base and every snapshot sent after it. A
   * client can then apply a delta straight onto its current table. Each snapshot's ids are sorted,
   * so each is merged against the current set on its own; only the (usually empty) result needs
   * sorting and deduplicating when several snapshots contributed. */
  int sources = 0;
  if (base) {
    for (uint32_t id = base->id; id && id <= v->last_sent; id++) {
      snap *k = &v->ring[id % RING];
      if (k->id != id) continue;
      size_t before = removed.len;
      for (i = 0, j = 0; i < k->n; i++) {
        while (j < cur.len && cur.v[j].id < k->ids[i]) j++;
        if (j >= cur.len || cur.v[j].id != k->ids[i]) OW_VEC_PUSH(removed, k->ids[i]);
      }
      if (removed.len > before) sources++;
    }
  }
  if (sources > 1) {
    qsort(removed.v, removed.len, sizeof *removed.v, cmp_id);
    size_t n = 0;
    for (i = 0; i < removed.len; i++)
      if (!n || removed.v[n - 1] != removed.v[i]) removed.v[n++] = removed.v[i];
    removed.len = n;
  }
  /* Nothing new for the client: unless the last snapshot is unacknowledged and old, stay quiet. */
  snap *last = v->last_sent ? &v->ring[v->last_sent % RING] : NULL;
  bool same_as_last = last && last->n == cur.len;
  for (size_t k = 0; same_as_last && k < cur.len; k++)
    same_as_last = last->ids[k] == cur.v[k].id && last->vers[k] == cur.v[k].ver;
  int emitted = 0;
  if ((base && !changed.len && !removed.len) || (same_as_last && !resend)) goto done;

  ow_buf *chunk = &r->chunk;
  chunker ch = {.b = chunk, .id = v->next_id++, .base = base ? base->id : 0, .frame = r->ver,
                .emit = emit, .ud = ud};
  if (!ch.id) ch.id = v->next_id++; /* 0 means "none" */
  chunk_open(&ch);
  for (size_t k = 0; k < changed.len; k++) {
    uint64_t *mp = ow_map_get(&r->by_id, changed.v[k]);
    ow_wire_entity e;
    if (!mp || !to_wire(r, (ment *)(uintptr_t)*mp, &e)) continue;
    if (chunk->len > CHUNK_LIMIT || ch.count == UINT16_MAX) {
      chunk_close(&ch, true, NULL, 0);
      chunk_open(&ch);
    }
    ow_proto_put_entity(chunk, &e);
    ch.count++;
  }
  /* Removals go in the last chunk; split them if there are very many. */
  size_t off = 0;
  while (removed.len - off > (CHUNK_LIMIT - chunk->len) / 8) {
    size_t fit = (CHUNK_LIMIT - chunk->len) / 8;
    chunk_close(&ch, true, removed.v + off, fit);
    off += fit;
    chunk_open(&ch);
  }
  /* removed.v is NULL when nothing was removed, and NULL + 0 is undefined in C. */
  chunk_close(&ch, false, removed.len ? removed.v + off : NULL, removed.len - off);
  emitted = ch.emitted;

  snap *s = &v->ring[ch.id % RING];
  s->id = ch.id;
  s->n = cur.len;
  s->ids = ow_realloc(s->ids, (cur.len ? cur.len : 1) * sizeof *s->ids);
  s->vers = ow_realloc(s->vers, (cur.len ? cur.len : 1) * sizeof *s->vers);
  for (size_t k = 0; k < cur.len; k++) {
    s->ids[k] = cur.v[k].id;
    s->vers[k] = cur.v[k].ver;
  }
  if (v->acked && v->ring[v->acked % RING].id != v->acked) v->acked = 0; /* overwritten */
  v->last_sent = ch.id;
  v->last_sent_ns = now_ns;
done:
  OW_VEC_FREE(changed);
  OW_VEC_FREE(removed);
  return emitted;
}
