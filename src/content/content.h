/*
 * content: the data that defines what exists in a world: entity types (resource nodes, items,
 * structures, containers, vehicles, colliders, avatar capsules, markers, planes), recipes and the
 * seed world. It is read from a JSON file the operator can replace, validated strictly, and then
 * read-only, apart from the append-only table of property names.
 */
#ifndef OW_CONTENT_H
#define OW_CONTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "otherworld/wire.h" /* ow_transform and the OW_PROP_* value types */

typedef enum ow_kind {
  OW_KIND_RESOURCE = 1,
  OW_KIND_ITEM,
  OW_KIND_STRUCTURE,
  OW_KIND_CONTAINER,
  OW_KIND_VEHICLE,
  OW_KIND_COLLIDER,
  OW_KIND_CAPSULE,
  OW_KIND_MARKER,
  OW_KIND_PLANE,
  OW_KIND_AVATAR,
} ow_kind;

/* Typed property values (OW_PROP_*). Strings are owned by whoever holds the property. */
typedef struct ow_prop {
  uint16_t key; /* index into the content's property-name table */
  uint8_t type; /* OW_PROP_* */
  union {
    int64_t i;
    double f;
    uint64_t ref;
    char *s;
  } v;
} ow_prop;

typedef struct ow_itemcount {
  uint16_t item; /* type id of an item type */
  uint32_t count;
} ow_itemcount;

typedef struct ow_type {
  char *name;
  uint16_t id;
  uint8_t kind;       /* ow_kind */
  bool movable;       /* may be moved by actions and streams */
  bool door;          /* interact toggles the "open" property */
  int32_t hp;         /* hit points when created */
  uint32_t stack_max; /* items: units per stack */
  uint16_t slots;     /* containers and vehicles: capacity in item stacks */
  uint16_t seats;     /* vehicles: riders */
  /* resource nodes */
  uint16_t yield_item;
  uint32_t yield_count;
  int32_t harvest_damage;
  /* buildable types (structures, containers, vehicles) have a non-empty cost */
  ow_itemcount *cost;
  uint16_t ncost;
  /* default properties of a new entity of this type */
  ow_prop *props;
  uint16_t nprops;
} ow_type;

typedef struct ow_recipe {
  char *name;
  uint16_t id;
  ow_itemcount *in, *out;
  uint16_t nin, nout;
} ow_recipe;

typedef struct ow_seed {
  uint16_t type;
  ow_transform xf;
  /* containers and vehicles: item units put into it when the world is seeded (stacking rule) */
  ow_itemcount *items;
  uint16_t nitems;
} ow_seed;

typedef struct ow_content {
  ow_type *types;
  uint16_t ntypes;
  ow_recipe *recipes;
  uint16_t nrecipes;
  ow_seed *seeds;
  uint32_t nseeds;
  float spawn[3];
  uint16_t avatar_type;    /* created for each new account */
  uint16_t inventory_type; /* created as the avatar's child */
  uint16_t key_open;       /* property key "open" used by doors */
  /* property names, append-only */
  char **keys;
  uint16_t nkeys, capkeys;
  uint64_t hash; /* hash of the file's bytes, logged at start */
} ow_content;

/* Parses and validates content. On failure returns OW_E_CONTENT and writes one line naming the
 * first problem and where it is ("types[3].cost.plank: unknown item type") into err. The caller
 * owns *out and releases it with ow_content_destroy(). */
int ow_content_load_file(const char *path, ow_content **out, char *err, size_t errlen);
int ow_content_load_string(const char *json, size_t len, ow_content **out, char *err,
                           size_t errlen);
void ow_content_destroy(ow_content *c);

/* Bytes of the world description that JOINED carries to every client (docs/protocol.md "The world
 * description": types, recipes and property names after the u32 req). A message body holds at
 * most 65535 bytes, so the loader refuses content whose description would not fit in
 * OW_CONTENT_DESCRIPTION_MAX, which leaves room for property names that records bring back. */
#define OW_CONTENT_DESCRIPTION_MAX 60000u
size_t ow_content_description_size(const ow_content *c);

/* Type lookups. Return NULL / a negative code when unknown. */
const ow_type *ow_content_type(const ow_content *c, uint16_t id);
int ow_content_type_id(const ow_content *c, const char *name, size_t len);
int ow_content_recipe_id(const ow_content *c, const char *name);
/* Returns the key id for a property name, adding it when `create` is set (or -1). */
int ow_content_key(ow_content *c, const char *name, size_t len, bool create);

#endif
