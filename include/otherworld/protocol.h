/*
 * otherworld protocol constants shared by the server and every client. The numbers are part of
 * the wire contract (docs/protocol.md) and never change meaning once released.
 */
#ifndef OTHERWORLD_PROTOCOL_H
#define OTHERWORLD_PROTOCOL_H

/* Protocol versions. A client sends the version it speaks in HELLO; the server speaks every version
 * from OW_PROTO_VERSION_MIN to OW_PROTO_VERSION and answers WELCOME with the same one, or refuses
 * it (OW_E_VERSION). Version 2 changes only POSES (compact poses, docs/protocol.md). */
#define OW_PROTO_VERSION 2
#define OW_PROTO_VERSION_MIN 1

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

/* Limits the message layouts below are written in. */
#define OW_MSG_HEADER 3        /* u8 type, u16 body length; one WebSocket message carries several */
#define OW_MSG_MAX_BODY 65535
#define OW_TEXT_MAX 512        /* chat and system text, bytes of UTF-8 */
#define OW_TOKEN_LEN 32
#define OW_NAME_MIN_LEN 3
#define OW_NAME_MAX_LEN 32
#define OW_PASSWORD_MIN 8
#define OW_PASSWORD_MAX 128

/* Actions: a type and up to OW_ACTION_ARGS_MAX argument bytes. The built-in types' arguments are
 * one fixed layout of OW_ACTION_BUILTIN_ARGS bytes (docs/protocol.md ACTION). */
#define OW_ACTION_ARGS_MAX 1024
#define OW_ACTION_BUILTIN_ARGS 62

/* Message types, one list: X(NAME, number, min body, max body), the body sizes in bytes checked
 * before any field is read (min == max: exactly that size). It yields the OW_MSG_* enum here and
 * the codec's size and name table (src/proto/proto.c). Client to server: 0x01..0x7f; server to
 * client: 0x81..0xff. */
#define OW_MSG_MAP(X)                                                                       \
  X(HELLO, 0x01, 7, 4 + 2 + 1 + 64)                                                         \
  X(REGISTER, 0x02, 6, 4 + 2 + 2 * 255)                                                     \
  X(LOGIN, 0x03, 6, 4 + 2 + 2 * 255)                                                        \
  X(RESUME, 0x04, 4 + OW_TOKEN_LEN, 4 + OW_TOKEN_LEN)                                       \
  X(JOIN, 0x05, 4, 4)                                                                       \
  X(LEAVE, 0x06, 4, 4)                                                                      \
  X(LOGOUT, 0x07, 4, 4)                                                                     \
  X(ACTION, 0x08, 4 + 8 + 1, 4 + 8 + 1 + OW_ACTION_ARGS_MAX)                                \
  X(POSE, 0x09, 18, 18 + 10 * (OW_BONE_FIXED_ + OW_POSE_MAX_TRACKERS))                      \
  X(ACK, 0x0a, 4, 4)                                                                        \
  X(CHAT, 0x0b, 6, 6 + OW_TEXT_MAX)                                                         \
  X(PING, 0x0c, 12, 12)                                                                     \
  X(BYE, 0x0d, 4, 4 + OW_TEXT_MAX)                                                          \
  X(ADMIN, 0x0e, 16, 16 + OW_TEXT_MAX)                                                      \
  X(WELCOME, 0x81, 23, 23 + 255)                                                            \
  X(OK, 0x82, 4, 4)                                                                         \
  X(SESSION, 0x83, 66, 66)                                                                  \
  X(ERROR, 0x84, 10, 10 + OW_TEXT_MAX)                                                      \
  X(JOINED, 0x85, 4, OW_MSG_MAX_BODY)                                                       \
  X(APPLIED, 0x86, 37, 37)                                                                  \
  X(DURABLE, 0x87, 14, OW_MSG_MAX_BODY)                                                     \
  X(SNAPSHOT, 0x88, 13, OW_MSG_MAX_BODY)                                                    \
  X(POSES, 0x89, 6, OW_MSG_MAX_BODY)                                                        \
  X(EVENT, 0x8a, 11, 11 + OW_TEXT_MAX)                                                      \
  X(PONG, 0x8b, 20, 20)                                                                     \
  X(SERVER_BYE, 0x8c, 4, 4 + OW_TEXT_MAX)

enum {
#define OW_MSG_ENUM(name, num, min, max) OW_MSG_##name = (num),
  OW_MSG_MAP(OW_MSG_ENUM)
#undef OW_MSG_ENUM
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

/* Types of a property value (entity records, content, snapshots' entity state). */
enum { OW_PROP_INT = 1, OW_PROP_FLOAT = 2, OW_PROP_STRING = 3, OW_PROP_REF = 4 };

#endif
