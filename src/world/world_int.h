/*
 * world_int: what world.c and actions.c share and nothing else may use: the world's structure, the
 * entity pool and index lookups, and the mutations the actions are built from. Every mutation here
 * keeps the region lists, the parent/child links and the change tracking consistent.
 */
#ifndef OW_WORLD_INT_H
#define OW_WORLD_INT_H

#include <math.h>
#include <string.h>

#include "world/world.h"

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

/* One undo entry: how to reverse one mutation made while an action runs (see world_begin). */
enum { U_CREATE = 1, U_DESTROY, U_XF, U_COUNT, U_HP, U_PARENT, U_REGION, U_PROP };
typedef struct undo {
  uint8_t op;
  uint32_t slot;
  union {
    ow_entity e;     /* U_DESTROY: the entity as it was, its properties still allocated */
    ow_transform xf; /* U_XF */
    uint32_t u;      /* U_COUNT, U_REGION: old value; U_CREATE: 1 if the slot came from hwm */
    int32_t hp;      /* U_HP */
    ow_id parent;    /* U_PARENT */
    struct {
      bool had;   /* the key existed (old holds it) or was appended */
      ow_prop old;
    } prop;
  } v;
} undo;

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
  /* the undo log of the running action(s), reused: see world_begin */
  OW_VEC(undo) undo;
  uint32_t undo_depth;
  /* the action table, indexed by type id; a row with apply == NULL is free */
  ow_action_row actions[256];
};

/* ---- pool and index ---- */

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

static inline uint32_t find(const ow_world *w, ow_id id) {
  if (!id || !w->index_cap) return OW_NONE;
  size_t mask = w->index_cap - 1;
  for (size_t i = ow_hash64(id) & mask;; i = (i + 1) & mask) {
    uint32_t s = w->index[i];
    if (!s) return OW_NONE;
    if (at(w, s - 1)->id == id) return s - 1;
  }
}

static inline void mark(ow_world *w, ow_entity *e) {
  if (!(e->flags & OW_EF_DIRTY)) {
    e->flags |= OW_EF_DIRTY;
    OW_VEC_PUSH(w->dirty, e->id);
  }
}

static inline void mark_stream(ow_world *w, ow_entity *e) {
  if (!(e->flags & OW_EF_STREAM_DIRTY)) {
    e->flags |= OW_EF_STREAM_DIRTY;
    OW_VEC_PUSH(w->sdirty, e->id);
  }
}

/* Rules shared by the actions and the transform stream. */

static inline const ow_type *type_of(const ow_world *w, const ow_entity *e) {
  return &w->content->types[e->type];
}

/* The one place where ownership is decided: a player may act on what they own and on what
 * belongs to nobody. Items take the owner of the container that holds them. */
static inline bool may_use(ow_id account, const ow_entity *e) {
  return e->owner == 0 || e->owner == account;
}

static inline const ow_entity *root_of(const ow_world *w, const ow_entity *e) {
  while (e->parent) e = at(w, find(w, e->parent));
  return e;
}

static inline bool within(const ow_world *w, const float a[3], const float b[3]) {
  if (w->cfg.reach <= 0) return true;
  double dx = (double)a[0] - b[0], dy = (double)a[1] - b[1], dz = (double)a[2] - b[2];
  return dx * dx + dy * dy + dz * dz <= (double)w->cfg.reach * w->cfg.reach;
}

/* Can the avatar reach entity e (measured between their roots)? */
static inline bool reaches(const ow_world *w, const ow_entity *avatar, const ow_entity *e) {
  return within(w, root_of(w, avatar)->xf.pos, root_of(w, e)->xf.pos);
}

static inline bool finite_in_bounds(const ow_world *w, const ow_transform *t) {
  for (int i = 0; i < 3; i++)
    if (!isfinite(t->pos[i]) || fabsf(t->pos[i]) > w->cfg.bound) return false;
  for (int i = 0; i < 4; i++)
    if (!isfinite(t->rot[i]) || fabsf(t->rot[i]) > 2) return false;
  return true;
}

/* ---- mutations (world.c) ---- */

uint32_t world_region_get(ow_world *w, ow_cell c);
/* Moves an entity and everything it holds into region `reg` (see world.c). */
void world_set_region(ow_world *w, uint32_t s, uint32_t reg);
void world_child_link(ow_world *w, uint32_t parent, uint32_t s);
void world_child_unlink(ow_world *w, uint32_t parent, uint32_t s);
/* Creates an entity with the next id, the type's hp and properties, at pos (relative to parent
 * when parent != OW_NONE), marked changed. Returns its slot. */
uint32_t world_spawn(ow_world *w, uint16_t type, ow_id owner, uint32_t parent, const float pos[3]);
/* Destroys a childless entity; a stored one leaves a tombstone for the next drain. */
void world_destroy(ow_world *w, uint32_t s);
void world_prop_set_int(ow_world *w, ow_entity *e, uint16_t key, int64_t v);

/* Mutations of fields an action changes: each records its undo entry while an action runs. They do
 * not mark the entity; the caller does. */
void world_set_xf(ow_world *w, uint32_t s, const ow_transform *xf);
void world_set_count(ow_world *w, uint32_t s, uint32_t count);
void world_set_hp(ow_world *w, uint32_t s, int32_t hp);
/* Moves entity s under parent slot p (OW_NONE: into the world); its region is left to the caller. */
void world_reparent(ow_world *w, uint32_t s, uint32_t p);

/* The undo log. world_begin opens a savepoint before an action runs: from then on every mutation
 * above (and create, destroy, region and property changes, the next id) records how to reverse
 * itself in a buffer the world reuses, so steady state allocates nothing. world_rollback reverses
 * everything since the savepoint, change tracking included (the dirty list, tombstones and flags
 * are as they were); world_commit keeps it. Savepoints nest (an action may apply others); memory
 * that a destroy or a property change would free is released when the outermost one commits. */
typedef struct world_savepoint {
  size_t undo, dirty, tombs;
  ow_id next_id;
} world_savepoint;
void world_begin(ow_world *w, world_savepoint *sp);
void world_rollback(ow_world *w, const world_savepoint *sp);
void world_commit(ow_world *w, const world_savepoint *sp);

/* ---- actions (actions.c) ---- */

/* Fills the world's action table with the built-in rows. */
void world_actions_init(ow_world *w);

#endif
