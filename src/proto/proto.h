/*
 * proto: the otherworld wire protocol (docs/protocol.md), encoded and decoded. Pure functions over
 * bytes: no sockets, no world state. Every field is written explicitly, little-endian; each
 * message's size is checked against its layout before any field is read.
 */
#ifndef OW_PROTO_H
#define OW_PROTO_H

#include "core/core.h"
#include "otherworld/protocol.h"
#include "world/world.h"

/* Header of every message: u8 type, u16 body length. One WebSocket message carries one or more. */
#define OW_MSG_HEADER 3
#define OW_MSG_MAX_BODY 65535
#define OW_NAME_MAX OW_NAME_MAX_LEN
#define OW_PASSWORD_MIN 8
#define OW_PASSWORD_MAX 128
#define OW_TEXT_MAX 512      /* chat and system text */

/* A string inside a decoded message: points into the input, not NUL-terminated. */
typedef struct ow_str {
  const char *p;
  size_t n;
} ow_str;

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

typedef struct ow_msg {
  uint8_t type;
  uint32_t req; /* request id (messages that have one), echoed by the reply */
  union {
    struct { uint16_t version; ow_str client; } hello;
    struct { ow_str name, password; } creds; /* REGISTER, LOGIN */
    struct { uint8_t token[OW_TOKEN_LEN]; } resume;
    struct { uint64_t seq; ow_action action; } action;
    ow_pose pose;
    struct { uint32_t snapshot; } ack;
    struct { ow_str text; } chat;
    struct { uint64_t client_time; } ping;
    struct { uint8_t op; uint64_t account; uint8_t role; ow_str text; } admin;
    struct { uint16_t reason; ow_str text; } bye; /* BYE and SERVER_BYE */
    struct {
      uint16_t version, tick_hz, pose_hz;
      uint64_t server_time_us;
      uint32_t max_message;
      ow_str server_name;
    } welcome;
    struct {
      uint8_t token[OW_TOKEN_LEN];
      uint64_t account, avatar, last_seq;
      uint8_t role, resumed;
      uint32_t expires_in_s;
    } session;
    struct { int32_t code; ow_str text; } error;
    struct { uint64_t seq; ow_result result; uint64_t frame; uint8_t replayed; } applied;
    struct { uint64_t frame; int32_t status; uint16_t n; const uint8_t *seqs; } durable;
    struct { uint8_t kind; uint64_t from; ow_str text; } event;
    struct { uint64_t client_time, server_time_us; } pong;
    struct { const uint8_t *p; size_t n; } body; /* JOINED, SNAPSHOT, POSES: read with the readers below */
  } u;
} ow_msg;

/* Decodes the message at the start of p[0..n). On success sets *used to its total size. On failure
 * returns OW_E_PROTO (or OW_E_TOO_LARGE) and writes a one-line reason naming the message and field
 * into err. Strings and bodies in *m point into p. */
int ow_proto_decode(const uint8_t *p, size_t n, size_t *used, ow_msg *m, char *err, size_t errlen);

/* Encodes a fixed-layout message (every type but JOINED, SNAPSHOT, POSES, DURABLE) and appends it. */
void ow_proto_encode(ow_buf *out, const ow_msg *m);

/* Variable messages are built in place: begin writes the header, the caller appends the body with
 * the helpers below (or ow_buf_*), end patches the length. Returns the header offset. */
size_t ow_proto_begin(ow_buf *out, uint8_t type);
void ow_proto_end(ow_buf *out, size_t at);

/* DURABLE: u64 frame, i32 status, u16 n, u64 seq[n]. */
void ow_proto_put_durable(ow_buf *out, uint64_t frame, int32_t status, const uint64_t *seqs, uint16_t n);
uint64_t ow_proto_durable_seq(const ow_msg *m, uint16_t i);

/* Poses. */
void ow_proto_put_pose(ow_buf *out, const ow_pose *p);
int ow_proto_read_pose(ow_reader *r, ow_pose *p);

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
    uint8_t type;
    union {
      int64_t i;
      double f;
      uint64_t ref;
      ow_str s;
    } v;
  } props[OW_PROPS_MAX];
} ow_wire_entity;
void ow_proto_put_entity(ow_buf *out, const ow_wire_entity *e);
int ow_proto_read_entity(ow_reader *r, ow_wire_entity *e);

/* Quantization. Positions: metres <-> millimetres, clamped to int32. Rotations: "smallest three":
 * 2 bits index of the largest component, three 10-bit signed components scaled by sqrt(2). */
int32_t ow_quant_mm(float metres);
float ow_dequant_mm(int32_t mm);
uint32_t ow_quat_pack(const float q[4]);
void ow_quat_unpack(uint32_t packed, float q[4]);

/* Human-readable name of a message type ("LOGIN"), for logs and errors. */
const char *ow_msg_name(uint8_t type);

#endif
