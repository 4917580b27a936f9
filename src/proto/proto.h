/*
 * proto: the otherworld wire protocol (docs/protocol.md), encoded and decoded. Pure functions over
 * bytes: no sockets, no world state. Every field is written explicitly, little-endian; each
 * message's size is checked against its layout (the list in otherworld/protocol.h) before any field
 * is read. It uses nothing but core and proto/wire: with them it is the owwire library, which the C
 * client links instead of the server.
 */
#ifndef OW_PROTO_H
#define OW_PROTO_H

#include "core/core.h"
#include "otherworld/protocol.h"
#include "otherworld/wire.h"
#include "proto/wire.h"

#define OW_NAME_MAX OW_NAME_MAX_LEN

typedef struct ow_msg {
  uint8_t type;
  uint32_t req; /* request id (messages that have one), echoed by the reply */
  union {
    struct { uint16_t version; ow_str client; } hello;
    struct { ow_str name, password; } creds; /* REGISTER, LOGIN */
    struct { uint8_t token[OW_TOKEN_LEN]; } resume;
    struct { uint64_t seq; ow_action action; } action; /* action.args point into the input */
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

/* Human-readable name of a message type ("LOGIN"), for logs and errors. */
const char *ow_msg_name(uint8_t type);

#endif
