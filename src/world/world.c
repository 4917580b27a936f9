/* world: entities, regions and the built-in actions. See world.h and docs/world.md. */
#include "world/world.h"

#include <math.h>
#include <stdlib.h>

#include "otherworld/protocol.h"

#define CHUNK_BITS 12
#define CHUNK_SIZE (1u << CHUNK_BITS)

typedef struct region {
  int32_t x, z;
  uint32_t head;
  uint32_t count;
} region;

/* One stack in a container plan: the planned count of an existing stack (id != 0) or of a stack to
 * create (id == 0). */
typedef struct pslot {
  ow_id id;
  uint16_t type;
  uint32_t count, orig;
} pslot;

typedef struct plan {
  ow_entity *c;
  pslot *s;
  size_t n, cap;
  size_t first_recv; /* slot that received units first, or SIZE_MAX */
} plan;

typedef struct tomb {
  ow_id id;
  uint32_t region;
} tomb;

struct ow_world {
  ow_world_config cfg;
  ow_content *content;
  /* entity pool: fixed-size chunks so that entity pointers never move */
  ow_entity **chunks;
  uint32_t nchunks;
  uint32_t hwm;       /* slots ever used */
  uint32_t free_head; /* free slots linked through .sibling */
  size_t live;
  /* id -> slot index + 1; open addressing, linear probing */
  uint32_t *index;
  size_t index_cap;
  ow_id next_id;
  /* regions */
  region *regions;
  uint32_t nregions, capregions;
  ow_map region_of; /* packed cell -> region index + 1 */
  /* change tracking */
  OW_VEC(ow_id) dirty;
  OW_VEC(ow_id) sdirty;
  OW_VEC(tomb) tombs;
  size_t props_bytes;
  plan plans[2];
};

/* ---- pool and index -------------------------------------------------------------------------- */

static inline ow_entity *at(const ow_world *w, uint32_t i) {
  return &w->chunks[i >> CHUNK_BITS][i & (CHUNK_SIZE - 1)];
}

static inline uint32_t slot_of(const ow_world *w, const ow_entity *e) {
  /* Entities carry no back-index; the index map gives it. */
  size_t mask = w->index_cap - 1;
  for (size_t i = ow_hash64(e->id) & mask;; i = (i + 1) & mask) {
    uint32_t s = w->index[i];
    OW_ASSERT(s != 0);
    if (at(w, s - 1) == e) return s - 1;
  }
}

static uint32_t find(const ow_world *w, ow_id id) {
  if (!id || !w->index_cap) return OW_NONE;
  size_t mask = w->index_cap - 1;
  for (size_t i = ow_hash64(id) & mask;; i = (i + 1) & mask) {
    uint32_t s = w->index[i];
    if (!s) return OW_NONE;
    if (at(w, s - 1)->id == id) return s - 1;
  }
}

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

static uint32_t region_get(ow_world *w, ow_cell c) {
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

static void mark(ow_world *w, ow_entity *e);

/* Moves an entity and everything it holds into region `reg`. Each entity that changes region is
 * marked changed for the next frame, even when a stream moved it: its store key moves to the new
 * region's prefix, and a subtree must never be stored split across two regions (a crash before a
 * checkpoint would make the split permanent). Only motion within a region waits for checkpoints. */
static void set_region(ow_world *w, uint32_t s, uint32_t reg) {
  ow_entity *e = at(w, s);
  if (e->region != reg) {
    region_unlink(w, s);
    region_link(w, s, reg);
    mark(w, e);
  }
  for (uint32_t c = e->child; c != OW_NONE; c = at(w, c)->sibling) set_region(w, c, reg);
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

static void mark(ow_world *w, ow_entity *e) {
  if (!(e->flags & OW_EF_DIRTY)) {
    e->flags |= OW_EF_DIRTY;
    OW_VEC_PUSH(w->dirty, e->id);
  }
}

static void mark_stream(ow_world *w, ow_entity *e) {
  if (!(e->flags & OW_EF_STREAM_DIRTY)) {
    e->flags |= OW_EF_STREAM_DIRTY;
    OW_VEC_PUSH(w->sdirty, e->id);
  }
}

static void child_link(ow_world *w, uint32_t parent, uint32_t s) {
  at(w, s)->sibling = at(w, parent)->child;
  at(w, parent)->child = s;
}

static void child_unlink(ow_world *w, uint32_t parent, uint32_t s) {
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
  uint32_t s = alloc_slot(w);
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
    child_link(w, parent, s);
    reg = at(w, parent)->region;
  }
  region_link(w, s, reg);
  return s;
}

static uint32_t spawn(ow_world *w, uint16_t type, ow_id owner, uint32_t parent, const float pos[3]) {
  const ow_type *t = &w->content->types[type];
  uint32_t reg = parent == OW_NONE ? region_get(w, ow_world_cell_of(w, pos)) : 0;
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
  uint32_t s = spawn(w, type, owner, ps, xf->pos);
  at(w, s)->xf = *xf;
  if (out) *out = at(w, s)->id;
  return 0;
}

static void destroy(ow_world *w, uint32_t s) {
  ow_entity *e = at(w, s);
  OW_ASSERT(e->child == OW_NONE);
  if (e->stored_region != OW_NONE) {
    tomb t = {e->id, e->stored_region};
    OW_VEC_PUSH(w->tombs, t);
  }
  region_unlink(w, s);
  if (e->parent) child_unlink(w, find(w, e->parent), s);
  index_del(w, e->id);
  props_free(w, e->props);
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

static void prop_set_int(ow_world *w, ow_entity *e, uint16_t key, int64_t v) {
  ow_props *p = e->props;
  for (uint16_t i = 0; p && i < p->n; i++)
    if (p->p[i].key == key) {
      if (p->p[i].type == OW_PROP_STRING) {
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
  p->p[p->n].key = key;
  p->p[p->n].type = OW_PROP_INT;
  p->p[p->n].v.i = v;
  p->n++;
}

/* ---- rules shared by every action -------------------------------------------------------------- */

static inline const ow_type *type_of(const ow_world *w, const ow_entity *e) {
  return &w->content->types[e->type];
}

/* The one place where ownership is decided: a player may act on what they own and on what
 * belongs to nobody. Items take the owner of the container that holds them. */
static inline bool may_use(ow_id account, const ow_entity *e) {
  return e->owner == 0 || e->owner == account;
}

static const ow_entity *root_of(const ow_world *w, const ow_entity *e) {
  while (e->parent) e = at(w, find(w, e->parent));
  return e;
}

static bool within(const ow_world *w, const float a[3], const float b[3]) {
  if (w->cfg.reach <= 0) return true;
  double dx = (double)a[0] - b[0], dy = (double)a[1] - b[1], dz = (double)a[2] - b[2];
  return dx * dx + dy * dy + dz * dz <= (double)w->cfg.reach * w->cfg.reach;
}

/* Can the avatar reach entity e (measured between their roots)? */
static bool reaches(const ow_world *w, const ow_entity *avatar, const ow_entity *e) {
  return within(w, root_of(w, avatar)->xf.pos, root_of(w, e)->xf.pos);
}

static bool finite_in_bounds(const ow_world *w, const ow_transform *t) {
  for (int i = 0; i < 3; i++)
    if (!isfinite(t->pos[i]) || fabsf(t->pos[i]) > w->cfg.bound) return false;
  for (int i = 0; i < 4; i++)
    if (!isfinite(t->rot[i]) || fabsf(t->rot[i]) > 2) return false;
  return true;
}

static uint32_t inventory_of(const ow_world *w, const ow_entity *avatar) {
  for (uint32_t c = avatar->child; c != OW_NONE; c = at(w, c)->sibling)
    if (at(w, c)->type == w->content->inventory_type) return c;
  return OW_NONE;
}

static uint32_t riders(const ow_world *w, const ow_entity *v) {
  uint32_t n = 0;
  for (uint32_t c = v->child; c != OW_NONE; c = at(w, c)->sibling)
    if (type_of(w, at(w, c))->kind == OW_KIND_AVATAR) n++;
  return n;
}

/* ---- container plans: stacking rules computed before anything changes ------------------------ */

static int cmp_slot(const void *a, const void *b) {
  ow_id x = ((const pslot *)a)->id, y = ((const pslot *)b)->id;
  return x < y ? -1 : x > y;
}

static void plan_push(plan *p, ow_id id, uint16_t type, uint32_t count) {
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 32;
    p->s = ow_realloc(p->s, p->cap * sizeof *p->s);
  }
  p->s[p->n++] = (pslot){id, type, count, id ? count : 0};
}

/* Loads the item stacks of container c, in ascending id order. */
static plan *plan_load(ow_world *w, int which, ow_entity *c) {
  plan *p = &w->plans[which];
  p->c = c;
  p->n = 0;
  p->first_recv = SIZE_MAX;
  for (uint32_t s = c->child; s != OW_NONE; s = at(w, s)->sibling) {
    ow_entity *e = at(w, s);
    if (type_of(w, e)->kind == OW_KIND_ITEM) plan_push(p, e->id, e->type, e->count);
  }
  if (p->n > 1) qsort(p->s, p->n, sizeof *p->s, cmp_slot);
  return p;
}

/* Takes n units of `type` from the stacks in ascending id order. */
static int plan_remove(plan *p, uint16_t type, uint32_t n) {
  uint64_t have = 0;
  for (size_t i = 0; i < p->n; i++)
    if (p->s[i].type == type) have += p->s[i].count;
  if (have < n) return OW_E_NOT_ENOUGH;
  for (size_t i = 0; i < p->n && n; i++)
    if (p->s[i].type == type && p->s[i].id) {
      uint32_t take = p->s[i].count < n ? p->s[i].count : n;
      p->s[i].count -= take;
      n -= take;
    }
  return n ? OW_E_NOT_ENOUGH : 0;
}

/* Adds n units of `type`: existing stacks with room first (ascending id), then new stacks of at
 * most stack_max each. Fails with OW_E_FULL if the stacks would exceed the container's slots. */
static int plan_add(ow_world *w, plan *p, uint16_t type, uint32_t n) {
  uint32_t max = w->content->types[type].stack_max;
  for (size_t i = 0; i < p->n && n; i++)
    if (p->s[i].type == type && p->s[i].count > 0 && p->s[i].count < max) {
      uint32_t room = max - p->s[i].count, put = room < n ? room : n;
      p->s[i].count += put;
      n -= put;
      if (p->first_recv == SIZE_MAX) p->first_recv = i;
    }
  while (n) {
    uint32_t put = n < max ? n : max;
    if (p->first_recv == SIZE_MAX) p->first_recv = p->n;
    plan_push(p, 0, type, put);
    n -= put;
  }
  size_t used = 0;
  for (size_t i = 0; i < p->n; i++) used += p->s[i].count > 0;
  return used > type_of(w, p->c)->slots ? OW_E_FULL : 0;
}

/* Carries out a plan: changed stacks are updated, emptied ones destroyed, new ones created in
 * plan order. Returns the id of the stack that received first (0 if none). */
static ow_id plan_apply(ow_world *w, plan *p) {
  uint32_t cs = slot_of(w, p->c);
  ow_id first = 0;
  for (size_t i = 0; i < p->n; i++) {
    pslot *x = &p->s[i];
    if (x->id) {
      uint32_t s = find(w, x->id);
      if (x->count == 0) {
        destroy(w, s);
      } else if (x->count != x->orig) {
        at(w, s)->count = x->count;
        mark(w, at(w, s));
      }
    } else if (x->count) {
      /* A child's transform is relative to its parent: a new stack sits at its container's origin. */
      static const float origin[3] = {0, 0, 0};
      uint32_t s = spawn(w, x->type, at(w, cs)->owner, cs, origin);
      at(w, s)->count = x->count;
      x->id = at(w, s)->id;
    }
    if (i == p->first_recv) first = x->id;
  }
  return first;
}

int ow_world_give(ow_world *w, ow_id container, uint16_t item, uint32_t n, ow_id *first) {
  uint32_t cs = find(w, container);
  if (cs == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *c = at(w, cs);
  if (!type_of(w, c)->slots) return OW_E_NOT_CONTAINER;
  if (item >= w->content->ntypes || w->content->types[item].kind != OW_KIND_ITEM) return OW_E_NOT_ITEM;
  if (!n) return OW_E_BAD_COUNT;
  plan *p = plan_load(w, 0, c);
  int rc = plan_add(w, p, item, n);
  if (rc) return rc;
  ow_id f = plan_apply(w, p);
  if (first) *first = f;
  return 0;
}

/* ---- actions ----------------------------------------------------------------------------------- */

static int act_move(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  uint32_t s = find(w, a->target);
  if (s == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *e = at(w, s);
  if (!type_of(w, e)->movable || e->parent) return OW_E_NOT_MOVABLE;
  if (!may_use(account, e)) return OW_E_FORBIDDEN;
  if (!finite_in_bounds(w, &a->xf)) return OW_E_OUT_OF_BOUNDS;
  if (e != av && !reaches(w, av, e)) return OW_E_TOO_FAR;
  memcpy(e->xf.pos, a->xf.pos, sizeof e->xf.pos);
  memcpy(e->xf.rot, a->xf.rot, sizeof e->xf.rot);
  set_region(w, s, region_get(w, ow_world_cell_of(w, e->xf.pos)));
  mark(w, e);
  r->entity = e->id;
  return 0;
}

static int act_harvest(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  uint32_t s = find(w, a->target);
  if (s == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *node = at(w, s);
  const ow_type *t = type_of(w, node);
  if (t->kind != OW_KIND_RESOURCE) return OW_E_NOT_HARVESTABLE;
  if (!may_use(account, node)) return OW_E_FORBIDDEN;
  if (!reaches(w, av, node)) return OW_E_TOO_FAR;
  uint32_t inv = inventory_of(w, av);
  if (inv == OW_NONE) return OW_E_NO_AVATAR;
  plan *p = plan_load(w, 0, at(w, inv));
  int rc = plan_add(w, p, t->yield_item, t->yield_count);
  if (rc) return rc;
  r->entity = plan_apply(w, p);
  r->count = t->yield_count;
  node->hp -= t->harvest_damage < node->hp ? t->harvest_damage : node->hp;
  if (node->hp <= 0)
    destroy(w, s);
  else
    mark(w, node);
  return 0;
}

static int act_build(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  if (a->kind >= w->content->ntypes) return OW_E_UNKNOWN_TYPE;
  const ow_type *t = &w->content->types[a->kind];
  if (!t->ncost) return OW_E_NOT_BUILDABLE;
  if (!finite_in_bounds(w, &a->xf)) return OW_E_OUT_OF_BOUNDS;
  for (int i = 0; i < 3; i++)
    if (!(a->xf.scale[i] > 0 && a->xf.scale[i] <= 1000)) return OW_E_OUT_OF_BOUNDS;
  if (!within(w, root_of(w, av)->xf.pos, a->xf.pos)) return OW_E_TOO_FAR;
  uint32_t inv = inventory_of(w, av);
  if (inv == OW_NONE) return OW_E_NO_AVATAR;
  plan *p = plan_load(w, 0, at(w, inv));
  for (uint16_t i = 0; i < t->ncost; i++) {
    int rc = plan_remove(p, t->cost[i].item, t->cost[i].count);
    if (rc) return rc;
  }
  plan_apply(w, p);
  uint32_t s = spawn(w, t->id, account, OW_NONE, a->xf.pos);
  at(w, s)->xf = a->xf;
  r->entity = at(w, s)->id;
  r->count = 1;
  return 0;
}

static int act_craft(ow_world *w, ow_entity *av, const ow_action *a, ow_result *r) {
  if (a->kind >= w->content->nrecipes) return OW_E_UNKNOWN_RECIPE;
  const ow_recipe *rc = &w->content->recipes[a->kind];
  uint32_t inv = inventory_of(w, av);
  if (inv == OW_NONE) return OW_E_NO_AVATAR;
  plan *p = plan_load(w, 0, at(w, inv));
  for (uint16_t i = 0; i < rc->nin; i++) {
    int e = plan_remove(p, rc->in[i].item, rc->in[i].count);
    if (e) return e;
  }
  for (uint16_t i = 0; i < rc->nout; i++) {
    int e = plan_add(w, p, rc->out[i].item, rc->out[i].count);
    if (e) return e;
  }
  r->entity = plan_apply(w, p);
  r->count = rc->out[0].count;
  return 0;
}

static int act_transfer(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  uint32_t s = find(w, a->target);
  if (s == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *stack = at(w, s);
  if (type_of(w, stack)->kind != OW_KIND_ITEM || !stack->parent) return OW_E_NOT_ITEM;
  ow_entity *src = at(w, find(w, stack->parent));
  uint32_t ds = find(w, a->dest);
  if (ds == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *dst = at(w, ds);
  if (type_of(w, dst)->slots == 0) return OW_E_NOT_CONTAINER;
  if (dst == src) return OW_E_SAME_CONTAINER;
  if (a->count == 0 || a->count > stack->count) return OW_E_BAD_COUNT;
  if (!may_use(account, src) || !may_use(account, dst)) return OW_E_FORBIDDEN;
  if (!reaches(w, av, src) || !reaches(w, av, dst)) return OW_E_TOO_FAR;
  plan *pd = plan_load(w, 1, dst);
  int rc = plan_add(w, pd, stack->type, a->count);
  if (rc) return rc;
  if (a->count == stack->count) {
    destroy(w, s);
  } else {
    stack->count -= a->count;
    mark(w, stack);
  }
  r->entity = plan_apply(w, pd);
  r->count = a->count;
  return 0;
}

static int act_interact(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  uint32_t s = find(w, a->target);
  if (s == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *e = at(w, s);
  const ow_type *t = type_of(w, e);
  if (!t->door && t->kind != OW_KIND_VEHICLE) return OW_E_NOT_INTERACTIVE;
  if (!may_use(account, e)) return OW_E_FORBIDDEN;
  if (!reaches(w, av, e)) return OW_E_TOO_FAR;
  r->entity = e->id;
  if (t->door) {
    const ow_prop *open = ow_world_prop(e, w->content->key_open);
    int64_t now = (open && open->type == OW_PROP_INT && open->v.i) ? 0 : 1;
    prop_set_int(w, e, w->content->key_open, now);
    mark(w, e);
    r->count = (uint32_t)now;
    return 0;
  }
  uint32_t as = slot_of(w, av);
  if (av->parent == e->id) { /* leave the vehicle: stand where it is */
    child_unlink(w, s, as);
    av->parent = 0;
    av->sibling = OW_NONE;
    memcpy(av->xf.pos, e->xf.pos, sizeof av->xf.pos);
    set_region(w, as, region_get(w, ow_world_cell_of(w, av->xf.pos)));
    mark(w, av);
    r->count = 0;
    return 0;
  }
  if (av->parent) return OW_E_NOT_INTERACTIVE; /* seated elsewhere */
  if (riders(w, e) >= t->seats) return OW_E_FULL;
  av->parent = e->id;
  child_link(w, s, as);
  set_region(w, as, e->region);
  mark(w, av);
  r->count = 1;
  return 0;
}

static int act_destroy(ow_world *w, ow_id account, ow_entity *av, const ow_action *a, ow_result *r) {
  uint32_t s = find(w, a->target);
  if (s == OW_NONE) return OW_E_NOT_FOUND;
  ow_entity *e = at(w, s);
  uint8_t k = type_of(w, e)->kind;
  if ((k != OW_KIND_STRUCTURE && k != OW_KIND_CONTAINER && k != OW_KIND_VEHICLE) || e->parent)
    return OW_E_NOT_DESTROYABLE;
  if (!may_use(account, e)) return OW_E_FORBIDDEN;
  if (!reaches(w, av, e)) return OW_E_TOO_FAR;
  if (e->child != OW_NONE) return OW_E_NOT_EMPTY;
  r->entity = e->id;
  destroy(w, s);
  return 0;
}

int ow_world_apply(ow_world *w, ow_id account, ow_id avatar, const ow_action *a, ow_result *res) {
  res->code = 0;
  res->entity = a->target;
  res->count = 0;
  uint32_t as = find(w, avatar);
  int rc;
  if (as == OW_NONE || at(w, as)->owner != account) {
    rc = OW_E_NO_AVATAR;
  } else {
    ow_entity *av = at(w, as);
    switch (a->type) {
    case OW_ACT_MOVE: rc = act_move(w, account, av, a, res); break;
    case OW_ACT_HARVEST: rc = act_harvest(w, account, av, a, res); break;
    case OW_ACT_BUILD: rc = act_build(w, account, av, a, res); break;
    case OW_ACT_CRAFT: rc = act_craft(w, av, a, res); break;
    case OW_ACT_TRANSFER: rc = act_transfer(w, account, av, a, res); break;
    case OW_ACT_INTERACT: rc = act_interact(w, account, av, a, res); break;
    case OW_ACT_DESTROY: rc = act_destroy(w, account, av, a, res); break;
    default: rc = OW_E_UNKNOWN_ACTION; break;
    }
  }
  if (rc) {
    res->entity = a->target;
    res->count = 0;
  }
  res->code = rc;
  return rc;
}

int ow_world_stream(ow_world *w, ow_id account, ow_id avatar, ow_id entity, const ow_transform *xf) {
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
  if (!e->parent) set_region(w, s, region_get(w, ow_world_cell_of(w, e->xf.pos)));
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

/* ---- action encoding ---------------------------------------------------------------------------- */

void ow_action_encode(const ow_action *a, ow_buf *out) {
  ow_buf_u8(out, a->type);
  ow_buf_u16(out, a->kind);
  ow_buf_u64(out, a->target);
  ow_buf_u64(out, a->dest);
  ow_buf_u32(out, a->count);
  for (int i = 0; i < 3; i++) ow_buf_f32(out, a->xf.pos[i]);
  for (int i = 0; i < 4; i++) ow_buf_f32(out, a->xf.rot[i]);
  for (int i = 0; i < 3; i++) ow_buf_f32(out, a->xf.scale[i]);
}

int ow_action_decode(ow_reader *r, ow_action *a) {
  a->type = ow_rd_u8(r);
  a->kind = ow_rd_u16(r);
  a->target = ow_rd_u64(r);
  a->dest = ow_rd_u64(r);
  a->count = ow_rd_u32(r);
  for (int i = 0; i < 3; i++) a->xf.pos[i] = ow_rd_f32(r);
  for (int i = 0; i < 4; i++) a->xf.rot[i] = ow_rd_f32(r);
  for (int i = 0; i < 3; i++) a->xf.scale[i] = ow_rd_f32(r);
  return r->err;
}

void ow_result_encode(const ow_result *res, ow_buf *out) {
  ow_buf_i32(out, res->code);
  ow_buf_u64(out, res->entity);
  ow_buf_u32(out, res->count);
}

int ow_result_decode(ow_reader *r, ow_result *res) {
  res->code = ow_rd_i32(r);
  res->entity = ow_rd_u64(r);
  res->count = ow_rd_u32(r);
  return r->err;
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
  uint32_t reg = region_get(w, cell);
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
    child_link(w, p, s);
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
