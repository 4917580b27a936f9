/*
 * otherworld error codes. Every function that can fail returns an int: 0 on success, a negative
 * OW_E_* code on failure, or -errno for system errors. The same codes are the "reason codes" an
 * action reply carries on the wire, so their numbers are part of the protocol and never change.
 */
#ifndef OTHERWORLD_ERROR_H
#define OTHERWORLD_ERROR_H

/* X(name, number, message). Numbers are negative and stay below -1000 so that they never collide
 * with -errno values (errno is < 1000 on every platform we build for). */
#define OW_ERROR_MAP(X)                                                                    \
  X(INVAL, -1001, "invalid argument")                                                      \
  X(NOMEM, -1002, "out of memory")                                                         \
  X(NOT_FOUND, -1003, "no such entity")                                                    \
  X(FORBIDDEN, -1004, "entity belongs to another player")                                 \
  X(BAD_COUNT, -1005, "count is zero, negative or larger than available")                \
  X(UNKNOWN_ACTION, -1006, "unknown action type")                                          \
  X(NOT_ENOUGH, -1007, "not enough items")                                                 \
  X(FULL, -1008, "container or vehicle is full")                                           \
  X(NOT_CONTAINER, -1009, "entity is not a container")                                     \
  X(NOT_HARVESTABLE, -1010, "entity is not a resource node")                               \
  X(NOT_BUILDABLE, -1011, "type cannot be built")                                          \
  X(UNKNOWN_TYPE, -1012, "unknown entity type")                                            \
  X(UNKNOWN_RECIPE, -1013, "unknown recipe")                                               \
  X(NOT_EMPTY, -1014, "container is not empty")                                            \
  X(NOT_INTERACTIVE, -1015, "entity has no interaction")                                   \
  X(OUT_OF_BOUNDS, -1016, "position outside the world or not a finite number")            \
  X(TOO_FAR, -1017, "entity is out of reach")                                              \
  X(NOT_MOVABLE, -1018, "entity cannot be moved")                                          \
  X(NOT_ITEM, -1019, "entity is not an item stack")                                        \
  X(NOT_DESTROYABLE, -1020, "entity cannot be destroyed")                                  \
  X(SEQ_TOO_OLD, -1021, "sequence number is older than the replay window")                 \
  X(NO_SESSION, -1022, "unknown session")                                                  \
  X(CONTENT, -1023, "content file is invalid")                                             \
  X(CONFIG, -1024, "configuration is invalid")                                             \
  X(STORE, -1025, "storage engine error")                                                  \
  X(CORRUPT, -1026, "stored record is corrupt")                                            \
  X(BUSY, -1027, "a commit is already in flight")                                          \
  X(STORE_FAILED, -1028, "storage failed earlier; durability is suspended until restart") \
  X(SAME_CONTAINER, -1029, "source and destination are the same container")               \
  X(NO_AVATAR, -1030, "session has no avatar")                                             \
  X(VERSION, -1031, "incompatible version")                                               \
  X(PROTO, -1032, "malformed message")                                                     \
  X(TOO_LARGE, -1033, "message too large")                                                 \
  X(AUTH, -1034, "wrong name or password")                                                 \
  X(NAME_TAKEN, -1035, "account name already taken")                                       \
  X(TOKEN, -1036, "session token invalid, expired or revoked")                            \
  X(RATE, -1037, "rate limit exceeded")                                                    \
  X(STATE, -1038, "message not allowed in this state")                                     \
  X(SERVER_FULL, -1039, "instance is full")                                                \
  X(TOO_MANY_SESSIONS, -1040, "too many sessions for this account")                        \
  X(BAD_NAME, -1041, "name or password has an invalid length or characters")             \
  X(TEXT_TOO_LONG, -1042, "text too long")                                                 \
  X(SHUTTING_DOWN, -1043, "server is shutting down")                                     \
  X(NOT_ADMIN, -1044, "operation requires the admin role")                                 \
  X(CONFLICT, -1045, "stored value is not the expected one; nothing was written")          \
  X(RETRY, -1046, "transient store failure; nothing was written, the write may be retried")

enum {
#define OW_ERROR_ENUM(name, num, msg) OW_E_##name = (num),
  OW_ERROR_MAP(OW_ERROR_ENUM)
#undef OW_ERROR_ENUM
};

/* Returns a static, human-readable message for an OW_E_* code or a -errno value. Never NULL. */
const char *ow_strerror(int code);

/* Returns the symbolic name ("OW_E_NOT_FOUND", "ENOSPC", ...) of a code. Never NULL. */
const char *ow_err_name(int code);

#endif
