/* world: entities, regions, change tracking and entity records. The actions are in actions.c.
 * See world.h and docs/world.md. */
#include "world/world.h"

#include <math.h>
#include <stdlib.h>

#include "otherworld/protocol.h"
#include "world/world_int.h"

/* ---- pool and index -------------------------------------------------------------------------- */

static void index_put(ow_world *w, ow_id id, uint32_t slot);

static void index_grow(ow_world *w) {
  uint32_t *old = w->index;
  size_t oldcap = w->index_cap;
  w->index_cap = oldcap ? oldcap * 2 : 1024;
  w->index = ow_calloc(w->index_cap, sizeof *w->index);
  for (size_t i = 0; i < oldcap; i++)
    if (old[i]) index_put(w, at(w, old[i] - 1)->id, old[i] - 1);
  ow_free(old);
}

static void index_put(ow_world *w, ow_id id, uint32_t slot) {
  size_t mask = w->index_cap - 1;
  for (size_t i = ow_hash64(id) & mask;; i = (i + 1) & mask)
    if (!w->index[i]) {
      w->index[i] = slot + 1;
      return;
    }
}

static void index_del(ow_world *w, ow_id id) {
  size_t mask = w->index_cap - 1, i = ow_hash64(id) & mask;
  while (at(w, w->index[i] - 1)->id != id) i = (i + 1) & mask;
  for (size_t j = (i + 1) & mask; w->index[j]; j = (j + 1) & mask) {
    size_t home = ow_hash64(at(w, w->index[j] - 1)->id) & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      w->index[i] = w->index[j];
      i = j;
    }
  }
  w->index[i] = 0;
}

static uint32_t alloc_slot(ow_world *w) {
  uint32_t s;
  if (w->free_head != OW_NONE) {
    s = w->free_head;
    w->free_head = at(w, s)->sibling;
  } else {
    if (w->hwm == w->nchunks * CHUNK_SIZE) {
      OW_ASSERT(w->nchunks < (OW_NONE >> CHUNK_BITS));
      w->chunks = ow_realloc(w->chunks, (w->nchunks + 1) * sizeof *w->chunks);
      w->chunks[w->nchunks++] = ow_malloc(CHUNK_SIZE * sizeof(ow_entity));
    }
    s = w->hwm++;
  }
  if ((w->live + 1) * 2 > w->index_cap) index_grow(w);
  w->live++;
  return s;
}

/* ---- regions --------------------------------------------------------------------------------- */

ow_cell ow_world_cell_of(const ow_world *w, const float pos[3]) {
  ow_cell c = {(int32_t)floorf(pos[0] / w->cfg.region_size),
               (int32_t)floorf(pos[2] / w->cfg.region_size)};
  return c;
}

uint32_t world_region_get(ow_world *w, ow_cell c) {
  uint64_t *v = ow_map_get(&w->region_of, ow_cell_key(c));
  if (v) return (uint32_t)(*v - 1);
  if (w->nregions == w->capregions) {
    w->capregions = w->capregions ? w->capregions * 2 : 16;
    w->regions = ow_realloc(w->regions, w->capregions * sizeof *w->regions);
  }
  region *r = &w->regions[w->nregions];
  r->x = c.x;
  r->z = c.z;
  r->head = OW_NONE;
  r->count = 0;
  ow_map_set(&w->region_of, ow_cell_key(c), w->nregions + 1);
  return w->nregions++;
}

ow_cell ow_world_region_cell(const ow_world *w, uint32_t reg) {
  ow_cell c = {w->regions[reg].x, w->regions[reg].z};
  return c;
}

static void region_unlink(ow_world *w, uint32_t s) {
  ow_entity *e = at(w, s);
  region *r = &w->regions[e->region];
  if (e->rprev != OW_NONE)
    at(w, e->rprev)->rnext = e->rnext;
  else
    r->head = e->rnext;
  if (e->rnext != OW_NONE) at(w, e->rnext)->rprev = e->rprev;
  r->count--;
}

static void region_link(ow_world *w, uint32_t s, uint32_t reg) {
  ow_entity *e = at(w, s);
  region *r = &w->regions[reg];
  e->region = reg;
  e->rprev = OW_NONE;
  e->rnext = r->head;
  if (r->head != OW_NONE) at(w, r->head)->rprev = s;
  r->head = s;
  r->count++;
}

/* Moves an entity and everything it holds into region `reg`. Each entity that changes region is
 * marked changed for the next frame, even when a stream moved it: its store key moves to the new
 * region's prefix, and a subtree must never be stored split across two regions (a crash before a
 * checkpoint would make the split permanent). Only motion within a region waits for checkpoints. */
void world_set_region(ow_world *w, uint32_t s, uint32_t reg) {
  ow_entity *e = at(w, s);
  if (e->region != reg) {
    if (w->undo_depth) {
      undo u = {.op = U_REGION, .slot = s, .v.u = e->region};
      OW_VEC_PUSH(w->undo, u);
    }
    region_unlink(w, s);
    region_link(w, s, reg);
    mark(w, e);
  }
  for (uint32_t c = e->child; c != OW_NONE; c = at(w, c)->sibling) world_set_region(w, c, reg);
}

size_t ow_world_region_count(const ow_world *w, ow_cell cell) {
  uint64_t *v = ow_map_get(&w->region_of, ow_cell_key(cell));
  return v ? w->regions[*v - 1].count : 0;
}

/* ---- create / destroy ------------------------------------------------------------------------- */

ow_world *ow_world_create(const ow_world_config *cfg, ow_content *content) {
  ow_world *w = ow_calloc(1, sizeof *w);
  w->cfg = *cfg;
  if (!(w->cfg.region_size > 0)) w->cfg.region_size = 256;
  if (!(w->cfg.bound > 0)) w->cfg.bound = 1e6f;
  w->content = content;
  w->free_head = OW_NONE;
  w->next_id = 1;
  ow_map_init(&w->region_of);
  world_actions_init(w);
  return w;
}

static void props_free(ow_world *w, ow_props *p) {
  if (!p) return;
  for (uint16_t i = 0; i < p->n; i++)
    if (p->p[i].type == OW_PROP_STRING) {
      w->props_bytes -= strlen(p->p[i].v.s) + 1;
      ow_free(p->p[i].v.s);
    }
  w->props_bytes -= sizeof(ow_props) + p->cap * sizeof(ow_prop);
  ow_free(p);
}

void ow_world_destroy(ow_world *w) {
  if (!w) return;
  for (uint32_t s = 0; s < w->hwm; s++)
    if (at(w, s)->id) props_free(w, at(w, s)->props);
  for (uint32_t i = 0; i < w->nchunks; i++) ow_free(w->chunks[i]);
  ow_free(w->chunks);
  ow_free(w->index);
  ow_free(w->regions);
  ow_map_deinit(&w->region_of);
  OW_VEC_FREE(w->dirty);
  OW_VEC_FREE(w->sdirty);
  OW_VEC_FREE(w->tombs);
  OW_VEC_FREE(w->undo);
  for (int i = 0; i < 2; i++) ow_free(w->plans[i].s);
  ow_free(w);
}

ow_content *ow_world_content(const ow_world *w) { return w->content; }
const ow_world_config *ow_world_config_get(const ow_world *w) { return &w->cfg; }
size_t ow_world_count(const ow_world *w) { return w->live; }
ow_id ow_world_next_id(const ow_world *w) { return w->next_id; }
void ow_world_set_next_id(ow_world *w, ow_id next) { w->next_id = next; }

const ow_entity *ow_world_get(const ow_world *w, ow_id id) {
  uint32_t s = find(w, id);
  return s == OW_NONE ? NULL : at(w, s);
}

void ow_world_each(const ow_world *w, void (*fn)(void *, const ow_entity *), void *ud) {
  for (uint32_t s = 0; s < w->hwm; s++)
    if (at(w, s)->id) fn(ud, at(w, s));
}

size_t ow_world_bytes(const ow_world *w) {
  return sizeof *w + (size_t)w->nchunks * CHUNK_SIZE * sizeof(ow_entity) +
         w->index_cap * sizeof(uint32_t) + w->capregions * sizeof(region) +
         w->region_of.cap * 16 + w->props_bytes;
}

void world_child_link(ow_world *w, uint32_t parent, uint32_t s) {
  at(w, s)->sibling = at(w, parent)->child;
  at(w, parent)->child = s;
}

void world_child_unlink(ow_world *w, uint32_t parent, uint32_t s) {
  uint32_t *p = &at(w, parent)->child;
  while (*p != s) p = &at(w, *p)->sibling;
  *p = at(w, s)->sibling;
}

static ow_props *props_dup(ow_world *w, const ow_prop *src, uint16_t n) {
  if (!n) return NULL;
  ow_props *p = ow_malloc(sizeof(ow_props) + n * sizeof(ow_prop));
  w->props_bytes += sizeof(ow_props) + n * sizeof(ow_prop);
  p->n = p->cap = n;
  for (uint16_t i = 0; i < n; i++) {
    p->p[i] = src[i];
    if (src[i].type == OW_PROP_STRING) {
      p->p[i].v.s = ow_strdup(src[i].v.s);
      w->props_bytes += strlen(src[i].v.s) + 1;
    }
  }
  return p;
}

/* Creates an entity in a fresh slot (id given) and links it under its parent and region. */
static uint32_t create(ow_world *w, ow_id id, uint16_t type, ow_id owner, uint32_t parent,
                       uint32_t reg) {
  bool fresh = w->free_head == OW_NONE;
  uint32_t s = alloc_slot(w);
  if (w->undo_depth) {
    undo u = {.op = U_CREATE, .slot = s, .v.u = fresh};
    OW_VEC_PUSH(w->undo, u);
  }
  ow_entity *e = at(w, s);
  memset(e, 0, sizeof *e);
  e->id = id;
  e->type = type;
  e->owner = owner;
  e->count = 1;
  e->stored_region = OW_NONE;
  e->child = e->sibling = OW_NONE;
  ow_transform_identity(&e->xf);
  index_put(w, id, s);
  if (parent != OW_NONE) {
    e->parent = at(w, parent)->id;
    world_child_link(w, parent, s);
    reg = at(w, parent)->region;
  }
  region_link(w, s, reg);
  return s;
}

uint32_t world_spawn(ow_world *w, uint16_t type, ow_id owner, uint32_t parent, const float pos[3]) {
  const ow_type *t = &w->content->types[type];
  uint32_t reg = parent == OW_NONE ? world_region_get(w, ow_world_cell_of(w, pos)) : 0;
  OW_ASSERT(w->next_id && w->next_id < 2 * OW_ID_MAX);
  uint32_t s = create(w, w->next_id++, type, owner, parent, reg);
  ow_entity *e = at(w, s);
  e->hp = t->hp;
  e->props = props_dup(w, t->props, t->nprops);
  memcpy(e->xf.pos, pos, sizeof e->xf.pos);
  mark(w, e);
  return s;
}

int ow_world_spawn(ow_world *w, uint16_t type, ow_id owner, ow_id parent, const ow_transform *xf,
                   ow_id *out) {
  if (type >= w->content->ntypes) return OW_E_UNKNOWN_TYPE;
  uint32_t ps = OW_NONE;
  if (parent && (ps = find(w, parent)) == OW_NONE) return OW_E_NOT_FOUND;
  uint32_t s = world_spawn(w, type, owner, ps, xf->pos);
  at(w, s)->xf = *xf;
  if (out) *out = at(w, s)->id;
  return 0;
}

void world_destroy(ow_world *w, uint32_t s) {
  ow_entity *e = at(w, s);
  OW_ASSERT(e->child == OW_NONE);
  if (e->stored_region != OW_NONE) {
    tomb t = {e->id, e->stored_region};
    OW_VEC_PUSH(w->tombs, t);
  }
  region_unlink(w, s);
  if (e->parent) world_child_unlink(w, find(w, e->parent), s);
  index_del(w, e->id);
  if (w->undo_depth) {
    /* Its properties stay allocated in the undo entry until the action commits. */
    undo u = {.op = U_DESTROY, .slot = s, .v.e = *e};
    OW_VEC_PUSH(w->undo, u);
  } else {
    props_free(w, e->props);
  }
  e->props = NULL;
  e->id = 0;
  e->sibling = w->free_head;
  w->free_head = s;
  w->live--;
}

/* ---- properties ------------------------------------------------------------------------------ */

const ow_prop *ow_world_prop(const ow_entity *e, uint16_t key) {
  if (!e->props) return NULL;
  for (uint16_t i = 0; i < e->props->n; i++)
    if (e->props->p[i].key == key) return &e->props->p[i];
  return NULL;
}

void world_prop_set_int(ow_world *w, ow_entity *e, uint16_t key, int64_t v) {
  ow_props *p = e->props;
  for (uint16_t i = 0; p && i < p->n; i++)
    if (p->p[i].key == key) {
      if (w->undo_depth) {
        /* The old value (a string stays allocated) goes to the undo entry. */
        undo u = {.op = U_PROP, .slot = slot_of(w, e), .v.prop = {true, p->p[i]}};
        OW_VEC_PUSH(w->undo, u);
      } else if (p->p[i].type == OW_PROP_STRING) {
        w->props_bytes -= strlen(p->p[i].v.s) + 1;
        ow_free(p->p[i].v.s);
      }
      p->p[i].type = OW_PROP_INT;
      p->p[i].v.i = v;
      return;
    }
  if (!p || p->n == p->cap) {
    uint16_t cap = p ? (uint16_t)(p->cap * 2) : 2;
    size_t old = p ? sizeof(ow_props) + p->cap * sizeof(ow_prop) : 0;
    p = ow_realloc(p, sizeof(ow_props) + cap * sizeof(ow_prop));
    if (!e->props) p->n = 0;
    p->cap = cap;
    w->props_bytes += sizeof(ow_props) + cap * sizeof(ow_prop) - old;
    e->props = p;
  }
  if (w->undo_depth) {
    undo u = {.op = U_PROP, .slot = slot_of(w, e), .v.prop = {false, {.key = key}}};
    OW_VEC_PUSH(w->undo, u);
  }
  p->p[p->n].key = key;
  p->p[p->n].type = OW_PROP_INT;
  p->p[p->n].v.i = v;
  p->n++;
}

void world_set_xf(ow_world *w, uint32_t s, const ow_transform *xf) {
  if (w->undo_depth) {
    undo u = {.op = U_XF, .slot = s, .v.xf = at(w, s)->xf};
    OW_VEC_PUSH(w->undo, u);
  }
  at(w, s)->xf = *xf;
}

void world_set_count(ow_world *w, uint32_t s, uint32_t count) {
  if (w->undo_depth) {
    undo u = {.op = U_COUNT, .slot = s, .v.u = at(w, s)->count};
    OW_VEC_PUSH(w->undo, u);
  }
  at(w, s)->count = count;
}

void world_set_hp(ow_world *w, uint32_t s, int32_t hp) {
  if (w->undo_depth) {
    undo u = {.op = U_HP, .slot = s, .v.hp = at(w, s)->hp};
    OW_VEC_PUSH(w->undo, u);
  }
  at(w, s)->hp = hp;
}

/* Without recording: the undo of a reparent is a reparent. */
static void reparent(ow_world *w, uint32_t s, uint32_t p) {
  ow_entity *e = at(w, s);
  if (e->parent) world_child_unlink(w, find(w, e->parent), s);
  e->sibling = OW_NONE;
  e->parent = p == OW_NONE ? 0 : at(w, p)->id;
  if (p != OW_NONE) world_child_link(w, p, s);
}

void world_reparent(ow_world *w, uint32_t s, uint32_t p) {
  if (w->undo_depth) {
    undo u = {.op = U_PARENT, .slot = s, .v.parent = at(w, s)->parent};
    OW_VEC_PUSH(w->undo, u);
  }
  reparent(w, s, p);
}

/* ---- the undo log ---------------------------------------------------------------------------- */

void world_begin(ow_world *w, world_savepoint *sp) {
  sp->undo = w->undo.len;
  sp->dirty = w->dirty.len;
  sp->tombs = w->tombs.len;
  sp->next_id = w->next_id;
  w->undo_depth++;
}

static void undo_one(ow_world *w, const undo *u) {
  ow_entity *e = at(w, u->slot);
  switch (u->op) {
  case U_CREATE: /* later entries, its children included, are already reversed */
    OW_ASSERT(e->child == OW_NONE);
    region_unlink(w, u->slot);
    if (e->parent) world_child_unlink(w, find(w, e->parent), u->slot);
    index_del(w, e->id);
    props_free(w, e->props);
    e->props = NULL;
    e->id = 0;
    w->live--;
    if (u->v.u && u->slot == w->hwm - 1) {
      w->hwm--;
    } else {
      e->sibling = w->free_head;
      w->free_head = u->slot;
    }
    break;
  case U_DESTROY: /* the free list is as the destroy left it: its slot is on top */
    OW_ASSERT(w->free_head == u->slot);
    w->free_head = e->sibling;
    *e = u->v.e;
    w->live++;
    index_put(w, e->id, u->slot);
    region_link(w, u->slot, e->region);
    e->sibling = OW_NONE;
    if (e->parent) world_child_link(w, find(w, e->parent), u->slot);
    break;
  case U_XF: e->xf = u->v.xf; break;
  case U_COUNT: e->count = u->v.u; break;
  case U_HP: e->hp = u->v.hp; break;
  case U_PARENT: reparent(w, u->slot, u->v.parent ? find(w, u->v.parent) : OW_NONE); break;
  case U_REGION:
    region_unlink(w, u->slot);
    region_link(w, u->slot, u->v.u);
    break;
  case U_PROP:
    for (uint16_t i = 0; i < e->props->n; i++)
      if (e->props->p[i].key == u->v.prop.old.key) {
        if (e->props->p[i].type == OW_PROP_STRING) {
          w->props_bytes -= strlen(e->props->p[i].v.s) + 1;
          ow_free(e->props->p[i].v.s);
        }
        if (u->v.prop.had) {
          e->props->p[i] = u->v.prop.old;
        } else {
          OW_ASSERT(i == e->props->n - 1); /* appended last; later appends are reversed */
          e->props->n--;
        }
        break;
      }
    break;
  default: OW_ASSERT(0);
  }
}

void world_rollback(ow_world *w, const world_savepoint *sp) {
  OW_ASSERT(w->undo_depth > 0);
  while (w->undo.len > sp->undo) undo_one(w, &w->undo.v[--w->undo.len]);
  /* Entities first marked since the savepoint were not marked before it: unmark those that
   * still exist (the rest were created since, and are gone again). */
  for (size_t i = sp->dirty; i < w->dirty.len; i++) {
    uint32_t s = find(w, w->dirty.v[i]);
    if (s != OW_NONE) at(w, s)->flags &= (uint16_t)~OW_EF_DIRTY;
  }
  w->dirty.len = sp->dirty;
  w->tombs.len = sp->tombs;
  w->next_id = sp->next_id;
  w->undo_depth--;
}

void world_commit(ow_world *w, const world_savepoint *sp) {
  (void)sp;
  OW_ASSERT(w->undo_depth > 0);
  if (--w->undo_depth) return; /* an enclosing action may still roll this one back */
  for (size_t i = 0; i < w->undo.len; i++) {
    undo *u = &w->undo.v[i];
    if (u->op == U_DESTROY) {
      props_free(w, u->v.e.props);
    } else if (u->op == U_PROP && u->v.prop.had && u->v.prop.old.type == OW_PROP_STRING) {
      w->props_bytes -= strlen(u->v.prop.old.v.s) + 1;
      ow_free(u->v.prop.old.v.s);
    }
  }
  w->undo.len = 0;
}

int ow_world_stream(ow_world *w, ow_id account, ow_id avatar, ow_id entity, const ow_transform *xf) {
  /* A stream is not part of any action and is never rolled back: an action row may not use it. */
  if (w->undo_depth) return OW_E_STATE;
  uint32_t as = find(w, avatar), s = find(w, entity);
  if (as == OW_NONE || at(w, as)->owner != account) return OW_E_NO_AVATAR;
  if (s == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *e = at(w, s), *av = at(w, as);
  if (e != av && (!type_of(w, e)->movable || e->parent)) return OW_E_NOT_MOVABLE;
  if (!may_use(account, e)) return OW_E_FORBIDDEN;
  if (!finite_in_bounds(w, xf)) return OW_E_OUT_OF_BOUNDS;
  if (e != av && !reaches(w, av, e)) return OW_E_TOO_FAR;
  memcpy(e->xf.pos, xf->pos, sizeof e->xf.pos);
  memcpy(e->xf.rot, xf->rot, sizeof e->xf.rot);
  if (!e->parent) world_set_region(w, s, world_region_get(w, ow_world_cell_of(w, e->xf.pos)));
  mark_stream(w, e);
  return 0;
}

/* ---- change tracking ---------------------------------------------------------------------------- */

static void drain_one(ow_world *w, ow_entity *e, const ow_change_sink *sink) {
  bool had = e->stored_region != OW_NONE;
  ow_cell old = had ? ow_world_region_cell(w, e->stored_region) : (ow_cell){0, 0};
  sink->put(sink->ud, e, ow_world_region_cell(w, e->region), had && e->stored_region != e->region,
            old);
  e->stored_region = e->region;
  e->flags &= (uint16_t)~(OW_EF_DIRTY | OW_EF_STREAM_DIRTY);
}

void ow_world_drain(ow_world *w, bool checkpoint, const ow_change_sink *sink) {
  for (size_t i = 0; i < w->tombs.len; i++)
    sink->del(sink->ud, w->tombs.v[i].id, ow_world_region_cell(w, w->tombs.v[i].region));
  w->tombs.len = 0;
  for (size_t i = 0; i < w->dirty.len; i++) {
    uint32_t s = find(w, w->dirty.v[i]);
    if (s != OW_NONE && (at(w, s)->flags & OW_EF_DIRTY)) drain_one(w, at(w, s), sink);
  }
  w->dirty.len = 0;
  if (!checkpoint) {
    /* Entities just written in full no longer wait for the checkpoint: drop them from its list so
     * that it stays exact and bounded however long checkpoints are apart. */
    size_t keep = 0;
    for (size_t i = 0; i < w->sdirty.len; i++) {
      uint32_t s = find(w, w->sdirty.v[i]);
      if (s != OW_NONE && (at(w, s)->flags & OW_EF_STREAM_DIRTY)) w->sdirty.v[keep++] = w->sdirty.v[i];
    }
    w->sdirty.len = keep;
    return;
  }
  for (size_t i = 0; i < w->sdirty.len; i++) {
    uint32_t s = find(w, w->sdirty.v[i]);
    if (s != OW_NONE && (at(w, s)->flags & OW_EF_STREAM_DIRTY)) drain_one(w, at(w, s), sink);
  }
  w->sdirty.len = 0;
}

size_t ow_world_pending(const ow_world *w, size_t *stream_pending) {
  if (stream_pending) *stream_pending = w->sdirty.len;
  return w->dirty.len + w->tombs.len;
}

/* ---- records ------------------------------------------------------------------------------------ */

enum { RECORD_VERSION = 1 };

void ow_world_encode(const ow_world *w, const ow_entity *e, ow_buf *out) {
  const char *tn = w->content->types[e->type].name;
  ow_buf_u8(out, RECORD_VERSION);
  ow_buf_str16(out, tn, strlen(tn));
  ow_buf_u64(out, e->owner);
  ow_buf_u64(out, e->parent);
  for (int i = 0; i < 3; i++) ow_buf_f32(out, e->xf.pos[i]);
  for (int i = 0; i < 4; i++) ow_buf_f32(out, e->xf.rot[i]);
  for (int i = 0; i < 3; i++) ow_buf_f32(out, e->xf.scale[i]);
  ow_buf_i32(out, e->hp);
  ow_buf_u32(out, e->count);
  uint16_t n = e->props ? e->props->n : 0;
  ow_buf_u8(out, (uint8_t)n);
  for (uint16_t i = 0; i < n; i++) {
    const ow_prop *p = &e->props->p[i];
    const char *k = w->content->keys[p->key];
    ow_buf_str16(out, k, strlen(k));
    ow_buf_u8(out, p->type);
    switch (p->type) {
    case OW_PROP_INT: ow_buf_u64(out, (uint64_t)p->v.i); break;
    case OW_PROP_FLOAT: ow_buf_f64(out, p->v.f); break;
    case OW_PROP_REF: ow_buf_u64(out, p->v.ref); break;
    default: ow_buf_str16(out, p->v.s, strlen(p->v.s)); break;
    }
  }
}

int ow_world_record_view(ow_world *w, const void *rec, size_t len, ow_record_view *v) {
  ow_reader r;
  ow_reader_init(&r, rec, len);
  if (ow_rd_u8(&r) != RECORD_VERSION) return OW_E_CORRUPT;
  size_t tl;
  const char *tn = ow_rd_str16(&r, &tl);
  if (r.err) return OW_E_CORRUPT;
  int type = ow_content_type_id(w->content, tn, tl);
  if (type < 0) {
    OW_ERROR("record_unknown_type", "type=%.*s hint=\"the content file no longer defines this "
             "type\"", (int)tl, tn);
    return OW_E_UNKNOWN_TYPE;
  }
  v->type = (uint16_t)type;
  v->owner = ow_rd_u64(&r);
  v->parent = ow_rd_u64(&r);
  for (int i = 0; i < 3; i++) v->xf.pos[i] = ow_rd_f32(&r);
  for (int i = 0; i < 4; i++) v->xf.rot[i] = ow_rd_f32(&r);
  for (int i = 0; i < 3; i++) v->xf.scale[i] = ow_rd_f32(&r);
  v->hp = ow_rd_i32(&r);
  v->count = ow_rd_u32(&r);
  v->nprops = ow_rd_u8(&r);
  if (r.err || v->nprops > OW_PROPS_MAX) return OW_E_CORRUPT;
  for (uint8_t i = 0; i < v->nprops; i++) {
    size_t kl;
    const char *k = ow_rd_str16(&r, &kl);
    v->props[i].type = ow_rd_u8(&r);
    /* Names and strings as the content file allows them (1-64 bytes; at most 1024), and text a
     * client accepts: the world never writes anything else, and snapshots and the JOINED world
     * description carry them to every client. */
    if (r.err || kl == 0 || kl > 64 || !ow_utf8_ok(k, kl)) return OW_E_CORRUPT;
    int key = ow_content_key(w->content, k, kl, true);
    if (key < 0) return OW_E_CORRUPT;
    v->props[i].key = (uint16_t)key;
    switch (v->props[i].type) {
    case OW_PROP_INT: v->props[i].v.i = (int64_t)ow_rd_u64(&r); break;
    case OW_PROP_FLOAT: v->props[i].v.f = ow_rd_f64(&r); break;
    case OW_PROP_REF: v->props[i].v.ref = ow_rd_u64(&r); break;
    case OW_PROP_STRING:
      v->props[i].v.s.p = ow_rd_str16(&r, &v->props[i].v.s.n);
      if (v->props[i].v.s.n > 1024 || !ow_utf8_ok(v->props[i].v.s.p, v->props[i].v.s.n))
        return OW_E_CORRUPT;
      break;
    default: return OW_E_CORRUPT;
    }
  }
  return r.err || r.left ? OW_E_CORRUPT : 0;
}

int ow_world_load(ow_world *w, ow_id id, ow_cell cell, const void *rec, size_t len) {
  if (!id || id >= OW_ID_MAX) return OW_E_CORRUPT;
  ow_record_view v;
  int rc = ow_world_record_view(w, rec, len, &v);
  if (rc) {
    if (rc == OW_E_UNKNOWN_TYPE) OW_ERROR("load_unknown_type", "id=%llu", (unsigned long long)id);
    return rc;
  }
  if (find(w, id) != OW_NONE) return OW_E_CORRUPT;
  ow_props *props = NULL;
  if (v.nprops) {
    props = ow_calloc(1, sizeof(ow_props) + v.nprops * sizeof(ow_prop));
    props->n = props->cap = v.nprops;
    w->props_bytes += sizeof(ow_props) + v.nprops * sizeof(ow_prop);
    for (uint8_t i = 0; i < v.nprops; i++) {
      ow_prop *p = &props->p[i];
      p->key = v.props[i].key;
      p->type = v.props[i].type;
      if (p->type == OW_PROP_STRING) {
        p->v.s = ow_strndup(v.props[i].v.s.p, v.props[i].v.s.n);
        w->props_bytes += v.props[i].v.s.n + 1;
      } else {
        p->v.ref = v.props[i].v.ref; /* the union's widest member carries every other type */
      }
    }
  }
  uint32_t reg = world_region_get(w, cell);
  uint32_t s = create(w, id, v.type, v.owner, OW_NONE, reg);
  ow_entity *e = at(w, s);
  e->parent = v.parent; /* linked by ow_world_link() */
  e->xf = v.xf;
  e->hp = v.hp;
  e->count = v.count;
  e->props = props;
  e->stored_region = reg;
  if (id >= w->next_id) w->next_id = id + 1;
  return 0;
}

int ow_world_link(ow_world *w) {
  for (uint32_t s = 0; s < w->hwm; s++) {
    ow_entity *e = at(w, s);
    if (!e->id || !e->parent) continue;
    uint32_t p = find(w, e->parent);
    if (p == OW_NONE || p == s) {
      OW_ERROR("load_dangling_parent", "id=%llu parent=%llu", (unsigned long long)e->id,
               (unsigned long long)e->parent);
      return OW_E_CORRUPT;
    }
    /* Only the shapes the actions build: an avatar holds its inventory (a container), containers
     * hold items, vehicles hold items and seated avatars. The actions rely on it: a harvested node
     * or an emptied stack is destroyed assuming it holds nothing, and an avatar entering a vehicle
     * it held itself would close a cycle. Since vehicle > avatar > container > item, no stored
     * parent chain can be a cycle either (each action walks to the root). */
    uint8_t pk = type_of(w, at(w, p))->kind, ck = type_of(w, e)->kind;
    bool ok = (pk == OW_KIND_AVATAR && ck == OW_KIND_CONTAINER) ||
              (pk == OW_KIND_CONTAINER && ck == OW_KIND_ITEM) ||
              (pk == OW_KIND_VEHICLE && (ck == OW_KIND_ITEM || ck == OW_KIND_AVATAR));
    if (!ok) {
      OW_ERROR("load_bad_parent", "id=%llu type=%s parent=%llu parent_type=%s",
               (unsigned long long)e->id, type_of(w, e)->name, (unsigned long long)e->parent,
               type_of(w, at(w, p))->name);
      return OW_E_CORRUPT;
    }
    world_child_link(w, p, s);
  }
  return 0;
}

void ow_world_item_totals(const ow_world *w, uint64_t *totals) {
  memset(totals, 0, w->content->ntypes * sizeof *totals);
  for (uint32_t s = 0; s < w->hwm; s++) {
    const ow_entity *e = at(w, s);
    if (e->id && type_of(w, e)->kind == OW_KIND_ITEM) totals[e->type] += e->count;
  }
}
