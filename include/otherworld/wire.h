/*
 * otherworld wire types: the plain structures that travel in protocol messages (actions, their
 * results, poses, entity states), shared by the server and the C client library.
 * Header only and dependency-free: the codec that reads and writes them is src/proto (the owwire
 * library); the field layouts are docs/protocol.md.
 */
#ifndef OTHERWORLD_WIRE_H
#define OTHERWORLD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "otherworld/protocol.h"

typedef uint64_t ow_id;

typedef struct ow_transform {
  float pos[3];
  float rot[4]; /* quaternion x, y, z, w */
  float scale[3];
} ow_transform;

/* The identity transform: at the origin, unrotated, scale 1. */
static inline void ow_transform_identity(ow_transform *t) {
  *t = (ow_transform){.rot = {0, 0, 0, 1}, .scale = {1, 1, 1}};
}

/* A string inside a decoded message: points into the input, not NUL-terminated. */
typedef struct ow_str {
  const char *p;
  size_t n;
} ow_str;

/* An action: a type and its argument bytes (at most OW_ACTION_ARGS_MAX, docs/protocol.md ACTION).
 * The built-in types (OW_ACT_MOVE .. OW_ACT_DESTROY) have one fixed 62-byte argument layout, which
 * the codec decodes into the named fields below and encodes from them; their args/nargs are
 * unused. Any other type (a row registered later, a Lua script's for instance) carries its
 * arguments as bytes in args/nargs, which its row reads; the codec leaves the named fields zero
 * and never writes them. args is borrowed: a decoded action points into the bytes it was decoded
 * from, and whoever keeps an action longer than that copies them (the zone does, for its frame;
 * the C client, for re-sending). */
typedef struct ow_action {
  uint8_t type;   /* OW_ACT_* (otherworld/protocol.h) or a registered row's type id */
  uint16_t kind;  /* build: structure type id; craft: recipe id */
  ow_id target;   /* the entity acted on */
  ow_id dest;     /* transfer: destination container */
  uint32_t count; /* transfer: units */
  ow_transform xf; /* move, build */
  uint16_t nargs;      /* other types: argument bytes, 0..OW_ACTION_ARGS_MAX */
  const uint8_t *args; /* other types: the argument bytes (may be NULL when nargs is 0) */
} ow_action;

/* True for the seven built-in types, whose arguments are the fixed layout of named fields. */
static inline int ow_action_builtin(uint8_t type) {
  return type >= OW_ACT_MOVE && type < OW_ACT_MAX_;
}

typedef struct ow_result {
  int32_t code;   /* 0 or a negative OW_E_* reason; nothing changed when negative */
  ow_id entity;   /* created or receiving entity (build, harvest, craft, transfer), else target */
  uint32_t count; /* units yielded, crafted or moved */
} ow_result;

/* A quantized VR pose. Root: world position in millimetres and a packed rotation. Bones (head, left
 * hand, right hand when their mask bit is set, then ntrackers trackers): position relative to the
 * root in millimetres (+-32.767 m) and a packed rotation. */
typedef struct ow_pose {
  uint8_t mask;
  uint8_t ntrackers;
  int32_t root[3];
  uint32_t root_rot;
  uint8_t nbones; /* bones present, in order: derived from mask and ntrackers */
  struct {
    int16_t pos[3];
    uint32_t rot;
  } bone[OW_BONE_FIXED_ + OW_POSE_MAX_TRACKERS];
} ow_pose;

/* Entity state as replicated in snapshots (docs/protocol.md "Entity state"). */
typedef struct ow_wire_entity {
  uint64_t id, owner, parent;
  uint16_t type;
  int32_t pos[3]; /* millimetres */
  uint32_t rot;   /* packed quaternion */
  float scale[3];
  int32_t hp;
  uint32_t count;
  uint8_t nprops;
  struct {
    uint16_t key;
    uint8_t type; /* OW_PROP_* */
    union {
      int64_t i;
      double f;
      uint64_t ref;
      ow_str s;
    } v;
  } props[OW_PROPS_MAX];
} ow_wire_entity;

#endif
