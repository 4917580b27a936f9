/*
 * model: a second, deliberately simple implementation of the world rules in docs/world.md, used by
 * the model-based randomized test to check the engine. It is written from the document only, never
 * from src/world/: entities live in one flat array in ascending id order, every lookup is a linear
 * scan, and an action that fails half-way is undone by restoring a copy of the whole state.
 */
#ifndef OW_TEST_MODEL_H
#define OW_TEST_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "content/content.h"
#include "world/world.h"

/* One entity as the model sees it. Destroyed entities stay in the array with alive = false so
 * that the array stays sorted by id without ever moving anything. */
typedef struct mentity {
  ow_id id;
  bool alive;
  uint16_t type;
  ow_id owner, parent;
  ow_transform xf; /* relative to the parent, as in the engine */
  int32_t hp;
  uint32_t count;
  /* The door property "open": whether the entity has it, and its integer value. The model tracks
   * no other property because no action changes any other; the test compares the rest against
   * the type's defaults. */
  bool has_open;
  int64_t open;
} mentity;

typedef struct model {
  const ow_content *content;
  ow_world_config cfg;
  mentity *ents; /* ascending ids */
  size_t n, cap;
  ow_id next_id;
  /* Item units per item type, kept from what the actions say they create and consume (harvest +,
   * build cost -, craft in - and out +), never from counting stacks, so that it is an independent
   * witness for the conservation check. Indexed by type id. */
  int64_t *ledger;
  /* A copy of the state taken before an action starts changing stacks; restored on failure. */
  mentity *saved;
  size_t saved_n, saved_cap;
  ow_id saved_next_id;
} model;

void model_init(model *m, const ow_content *content, const ow_world_config *cfg);
void model_deinit(model *m);

/* Lookups: NULL when the id does not name a live entity. The pointer is valid until the next
 * entity is created. */
mentity *model_get(const model *m, ow_id id);
const ow_type *model_type(const model *m, uint16_t type);
/* The entity at the top of e's parent chain (e itself when it has no parent). */
const mentity *model_root(const model *m, const mentity *e);
/* Whether avatar `a` reaches entity `e`, and a position, by the reach rule. */
bool model_reaches(const model *m, const mentity *a, const mentity *e);
bool model_reaches_pos(const model *m, const mentity *a, const float pos[3]);
/* The account's inventory: the avatar's child of the inventory type, or NULL. */
const mentity *model_inventory(const model *m, ow_id avatar);
/* The region cell of an entity (its root's cell). */
ow_cell model_cell(const model *m, const mentity *e);
/* Units of item type `item` held by container `c`. */
uint64_t model_units(const model *m, ow_id container, uint16_t item);
/* Whether any live entity has `id` as its parent. */
bool model_has_children(const model *m, ow_id id);
/* Number of live entities. */
size_t model_count(const model *m);

/* After a restart the id counter continues this far above its value at the last durable frame, so
 * that ids handed out in frames a crash lost are never given to another entity (docs/world.md). */
#define MODEL_ID_RESTART_GAP ((ow_id)1 << 20)

/* A restart: the counter continues from `durable_next` (its value when the last durable frame was
 * sealed) plus MODEL_ID_RESTART_GAP. The entities are unchanged when every frame was durable. */
void model_restart(model *m, ow_id durable_next);

/* Seeds the content's default world, as the zone does for an empty store. */
void model_seed(model *m);
/* A player's first login (the caller knows it is the first): creates the avatar at the spawn and,
 * as its child, the inventory; returns the avatar. */
ow_id model_login(model *m, ow_id account);

/* Applies one action for account `p` whose avatar is `avatar`, by the rules of docs/world.md, and
 * returns its result. On failure nothing changes. */
ow_result model_apply(model *m, ow_id p, ow_id avatar, const ow_action *a);

#endif
