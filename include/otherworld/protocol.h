/*
 * otherworld protocol constants shared by the server and every client. The numbers are part of
 * the wire contract (docs/protocol.md) and never change meaning once released.
 */
#ifndef OTHERWORLD_PROTOCOL_H
#define OTHERWORLD_PROTOCOL_H

/* Action types (the seed's input types). Each is one atomic, validated transaction. */
enum {
  OW_ACT_MOVE = 1,     /* move own avatar or a held object: target, transform */
  OW_ACT_HARVEST = 2,  /* hit a resource node: target */
  OW_ACT_BUILD = 3,    /* place a structure: kind = structure type, transform */
  OW_ACT_CRAFT = 4,    /* run a recipe on the inventory: kind = recipe */
  OW_ACT_TRANSFER = 5, /* move count units of stack target into container dest */
  OW_ACT_INTERACT = 6, /* open/close a door, enter/leave a vehicle: target */
  OW_ACT_DESTROY = 7,  /* remove an own or public structure, container or vehicle: target */
  OW_ACT_MAX_ = 8
};

#endif
