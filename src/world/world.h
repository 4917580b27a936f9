/*
 * world: the authoritative in-memory world of one zone: entities partitioned into regions, and
 * the actions that change them, rows of a table (actions.c), each validated completely before it
 * changes anything.
 * It knows nothing of sessions, frames or storage; it records which entities changed so that the
 * zone can commit them, and it encodes/decodes entity records for the store.
 */
#ifndef OW_WORLD_H
#define OW_WORLD_H

#include <stdbool.h>
#include <stdint.h>

#include "content/content.h"
#include "core/core.h"
#include "otherworld/protocol.h"
#include "otherworld/wire.h" /* ow_id, ow_action, ow_result */
#include "proto/wire.h"      /* their codec: ow_action_encode, ow_result_encode */
/* Ids are handed out one by one from 1 and never come near this bound: a larger stored id (or next
 * id) is corruption and is refused at recovery, which leaves the counter 2^62 ids of headroom
 * before it could wrap to 0, the id of a free slot (spawning asserts it never does). */
#define OW_ID_MAX (UINT64_C(1) << 62)

typedef struct ow_world ow_world;

typedef struct ow_world_config {
  float region_size; /* metres per region cell on the X/Z plane (default 256) */
  float reach;       /* how far an avatar may act, metres; 0 disables the check */
  float bound;       /* |x|, |y|, |z| limit of the world, metres */
} ow_world_config;

/* A region: one cell of the grid on the X/Z plane. */
typedef struct ow_cell {
  int32_t x, z;
} ow_cell;
static inline uint64_t ow_cell_key(ow_cell c) { return ((uint64_t)(uint32_t)c.x << 32) | (uint32_t)c.z; }

enum { OW_EF_DIRTY = 1, OW_EF_STREAM_DIRTY = 2 };
#define OW_NONE UINT32_MAX

/* An entity. Other modules read it through ow_world_get(); only world.c and actions.c write it. */
typedef struct ow_entity {
  ow_id id;     /* 0 marks a free slot */
  ow_id owner;  /* account id, 0 = public */
  ow_id parent; /* container, vehicle or avatar holding it; 0 = in the world */
  struct ow_props *props;
  ow_transform xf;         /* children: relative to the parent */
  int32_t hp;
  uint32_t count;          /* items: units in the stack; others: 1 */
  uint32_t region;         /* index into the region table (the root's cell) */
  uint32_t stored_region;  /* region of the key the store holds for it, OW_NONE if none */
  uint32_t rnext, rprev;   /* region membership list */
  uint32_t child, sibling; /* first child, next sibling */
  uint16_t type;
  uint16_t flags; /* OW_EF_* */
} ow_entity;

typedef struct ow_props {
  uint16_t n, cap;
  ow_prop p[];
} ow_props;

/* Creates an empty world over `content`, which must outlive it. */
ow_world *ow_world_create(const ow_world_config *cfg, ow_content *content);
void ow_world_destroy(ow_world *w);

ow_content *ow_world_content(const ow_world *w);
const ow_world_config *ow_world_config_get(const ow_world *w);

/* Returns the entity or NULL. The pointer stays valid until that entity is destroyed. */
const ow_entity *ow_world_get(const ow_world *w, ow_id id);
size_t ow_world_count(const ow_world *w);
/* The next id the world will assign; persisted by the zone, restored on load. */
ow_id ow_world_next_id(const ow_world *w);
void ow_world_set_next_id(ow_world *w, ow_id next);

/* Calls fn for every live entity (unspecified order). */
void ow_world_each(const ow_world *w, void (*fn)(void *ud, const ow_entity *e), void *ud);

/* The cell of a region index, the cell a position lies in, and the number of entities of one
 * region (children included). */
ow_cell ow_world_region_cell(const ow_world *w, uint32_t region);
ow_cell ow_world_cell_of(const ow_world *w, const float pos[3]);
size_t ow_world_region_count(const ow_world *w, ow_cell cell);

/* Creates an entity with a new id and the type's default hp and properties. parent must be 0 or
 * an existing entity. Marks it changed. Used for seeding and avatars; actions create their own. */
int ow_world_spawn(ow_world *w, uint16_t type, ow_id owner, ow_id parent, const ow_transform *xf,
                   ow_id *out);

/* Adds n units of item type `item` to container (or vehicle) `container` by the stacking rule
 * (docs/world.md), outside any action: used to seed the world. Stacks take the container's owner.
 * Returns 0 and the first receiving stack in *first (may be NULL), or OW_E_NOT_FOUND,
 * OW_E_NOT_CONTAINER, OW_E_NOT_ITEM, OW_E_BAD_COUNT (n = 0), OW_E_FULL; nothing changes then. */
int ow_world_give(ow_world *w, ow_id container, uint16_t item, uint32_t n, ow_id *first);

/* Property access. get returns NULL when absent; the pointer is valid until the next change. */
const ow_prop *ow_world_prop(const ow_entity *e, uint16_t key);

/* Actions are rows of the world's action table (Redis's command table): the seven built-in ones
 * (OW_ACT_*) are registered by ow_world_create; a later action (a Lua script, say) adds its own row
 * with a type id from OW_ACT_MAX_ to 255. An action is a type and an argument byte string
 * (ow_action in otherworld/wire.h): a row declares how many argument bytes it accepts, arg_min to
 * arg_size, and ow_world_apply refuses an action outside that range with OW_E_INVAL before the row
 * runs. The built-in rows take exactly OW_ACTION_BUILTIN_ARGS, the fixed layout that the codec has
 * already decoded into the action's named fields; any other row reads a->args[0..a->nargs) and
 * validates their content itself. */
typedef struct ow_action_row {
  uint8_t type;      /* 1..255: the action's type id, unique in the world */
  const char *name;  /* unique, non-empty, e.g. "move": must outlive the world (not copied) */
  uint16_t arg_size; /* the most argument bytes the row accepts, at most OW_ACTION_ARGS_MAX */
  /* Validates and applies `a` for `account`, whose avatar (owned by account) is `avatar`. Returns
   * 0 and fills res->entity and res->count, or a negative OW_E_* reason. A row outside the world
   * module reads `avatar` and changes the world only through the ow_world_* functions; a failing
   * row must leave the world as it found it. a->args is valid during the call only. */
  int (*apply)(ow_world *w, ow_id account, ow_entity *avatar, const ow_action *a, ow_result *res);
  uint16_t arg_min; /* the fewest argument bytes the row accepts (0 when left out) */
} ow_action_row;

/* Adds a row to w's action table; the row is copied (its name is not). Returns 0, or OW_E_INVAL and
 * changes nothing when the row is bad (type 0, no name or apply, arg_size above
 * OW_ACTION_ARGS_MAX or below arg_min) or its type id or name is taken (built-in rows included). */
int ow_world_action_register(ow_world *w, const ow_action_row *row);
/* The row of an action type, or NULL. Valid until the world is destroyed. */
const ow_action_row *ow_world_action_row(const ow_world *w, uint8_t type);

/* Applies one action for `account` whose avatar is `avatar` through its row. Always fills *res;
 * returns res->code: OW_E_NO_AVATAR when avatar is not account's, OW_E_UNKNOWN_ACTION for a type
 * with no row, OW_E_INVAL for argument bytes outside the row's arg_min..arg_size, else the row's
 * result. On failure nothing in the world changed. */
int ow_world_apply(ow_world *w, ow_id account, ow_id avatar, const ow_action *a, ow_result *res);

/* Latest-value-wins transform stream (avatar pose, held objects): validated like a move, applied
 * at once, never logged; the entity is written at the next checkpoint. OW_E_STATE when called from
 * an action row (a stream is never rolled back, so it cannot be part of an action). */
int ow_world_stream(ow_world *w, ow_id account, ow_id avatar, ow_id entity, const ow_transform *xf);

/* Change tracking. drain calls put() for every entity changed by actions since the last drain
 * (and, if `checkpoint`, every entity changed only by streams), and del() for every destroyed entity
 * the store holds; old_cell is the region its stored key lives under (had_old says whether there
 * is one). Then it forgets them. */
typedef struct ow_change_sink {
  void (*put)(void *ud, const ow_entity *e, ow_cell cell, bool had_old, ow_cell old_cell);
  void (*del)(void *ud, ow_id id, ow_cell old_cell);
  void *ud;
} ow_change_sink;
void ow_world_drain(ow_world *w, bool checkpoint, const ow_change_sink *sink);
/* Number of entities awaiting the next drain (actions) and the next checkpoint (streams). */
size_t ow_world_pending(const ow_world *w, size_t *stream_pending);

/* A decoded entity record. Strings point into the record bytes. */
typedef struct ow_record_view {
  uint16_t type;
  ow_id owner, parent;
  ow_transform xf;
  int32_t hp;
  uint32_t count;
  uint8_t nprops;
  struct {
    uint16_t key; /* content property key */
    uint8_t type; /* OW_PROP_* */
    union {
      int64_t i;
      double f;
      uint64_t ref;
      struct {
        const char *p;
        size_t n;
      } s;
    } v;
  } props[OW_PROPS_MAX];
} ow_record_view;

/* Decodes an entity record (property names are added to the content's key table when new).
 * OW_E_CORRUPT for malformed bytes, OW_E_UNKNOWN_TYPE for a type the content does not define. */
int ow_world_record_view(ow_world *w, const void *rec, size_t len, ow_record_view *out);

/* Entity records, the value stored under an entity key. encode appends to out. load decodes a
 * record into a new entity (not marked changed); call ow_world_link() after the last one. */
void ow_world_encode(const ow_world *w, const ow_entity *e, ow_buf *out);
int ow_world_load(ow_world *w, ow_id id, ow_cell stored_cell, const void *rec, size_t len);
/* Connects children to parents after loading; fails with OW_E_CORRUPT on a dangling parent. */
int ow_world_link(ow_world *w);

/* Sum of item units of each item type over the whole world, for conservation checks:
 * totals[type] for type < ntypes. */
void ow_world_item_totals(const ow_world *w, uint64_t *totals);

/* Bytes used by the world's own structures (pool, index, regions, properties). */
size_t ow_world_bytes(const ow_world *w);

#endif
