/*
 * otherworld protocol constants shared by the server and every client. The numbers are part of
 * the wire contract (docs/protocol.md) and never change meaning once released.
 */
#ifndef OTHERWORLD_PROTOCOL_H
#define OTHERWORLD_PROTOCOL_H

/* Protocol version sent in HELLO and WELCOME. */
#define OW_PROTO_VERSION 1

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

/* Message types. Client to server: 0x01..0x7f; server to client: 0x81..0xff. */
enum {
  OW_MSG_HELLO = 0x01,
  OW_MSG_REGISTER = 0x02,
  OW_MSG_LOGIN = 0x03,
  OW_MSG_RESUME = 0x04,
  OW_MSG_JOIN = 0x05,
  OW_MSG_LEAVE = 0x06,
  OW_MSG_LOGOUT = 0x07,
  OW_MSG_ACTION = 0x08,
  OW_MSG_POSE = 0x09,
  OW_MSG_ACK = 0x0a,
  OW_MSG_CHAT = 0x0b,
  OW_MSG_PING = 0x0c,
  OW_MSG_BYE = 0x0d,
  OW_MSG_ADMIN = 0x0e,

  OW_MSG_WELCOME = 0x81,
  OW_MSG_OK = 0x82,
  OW_MSG_SESSION = 0x83,
  OW_MSG_ERROR = 0x84,
  OW_MSG_JOINED = 0x85,
  OW_MSG_APPLIED = 0x86,
  OW_MSG_DURABLE = 0x87,
  OW_MSG_SNAPSHOT = 0x88,
  OW_MSG_POSES = 0x89,
  OW_MSG_EVENT = 0x8a,
  OW_MSG_PONG = 0x8b,
  OW_MSG_SERVER_BYE = 0x8c,
};

/* Reasons carried by BYE in both directions. */
enum {
  OW_BYE_NORMAL = 1,         /* logout or client quit */
  OW_BYE_SHUTDOWN = 2,       /* server stopping or restarting; resume later */
  OW_BYE_TAKEN_OVER = 3,     /* the account logged in from another connection */
  OW_BYE_PROTOCOL = 4,       /* malformed or oversized message */
  OW_BYE_TOO_SLOW = 5,       /* the client read too slowly: send buffer limit reached */
  OW_BYE_RATE = 6,           /* rate limits exceeded repeatedly */
  OW_BYE_IDLE = 7,           /* nothing received for too long */
  OW_BYE_FULL = 8,           /* players per instance reached */
  OW_BYE_KICKED = 9,         /* an admin removed the player */
};

/* Roles of an account. */
enum { OW_ROLE_PLAYER = 0, OW_ROLE_BUILDER = 1, OW_ROLE_ADMIN = 2 };

/* Operations of ADMIN (accounts with the admin role only; others get OW_E_NOT_ADMIN). */
enum {
  OW_ADMIN_KICK = 1,     /* close the account's connection with BYE KICKED; text = reason */
  OW_ADMIN_ANNOUNCE = 2, /* a system EVENT to every player in the world; text = message */
  OW_ADMIN_SET_ROLE = 3, /* give the account `role` (persisted; OK once durable) */
  OW_ADMIN_REVOKE = 4,   /* revoke every session token of the account and kick it (OK once durable) */
  OW_ADMIN_MAX_ = 5
};

/* Event kinds. */
enum { OW_EVENT_CHAT = 1, OW_EVENT_SYSTEM = 2 };

/* Pose bones: bit i of the pose mask says bone i is present. Trackers follow. */
enum { OW_BONE_HEAD = 0, OW_BONE_LEFT_HAND = 1, OW_BONE_RIGHT_HAND = 2, OW_BONE_FIXED_ = 3 };
#define OW_POSE_MAX_TRACKERS 8

/* Properties one entity may carry. A snapshot's entity state counts them in a u8 and every client
 * decodes at most this many, so the content loader, the stored entity records and the wire all use
 * this one limit: content whose entities could exceed it is refused at load. */
#define OW_PROPS_MAX 16

#define OW_TOKEN_LEN 32
#define OW_NAME_MIN_LEN 3
#define OW_NAME_MAX_LEN 32

#endif
