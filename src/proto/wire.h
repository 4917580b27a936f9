/*
 * proto/wire: the codec of the shared wire types (otherworld/wire.h): actions, results, poses,
 * entity states and the quantization of positions and rotations, written explicitly little-endian.
 * It depends on nothing but the core byte helpers, so the world and zone (frame records), the
 * message codec (proto.h) and the C client library all use this one copy; with core and proto.c it
 * forms the owwire library.
 */
#ifndef OW_PROTO_WIRE_H
#define OW_PROTO_WIRE_H

#include "core/core.h"
#include "otherworld/protocol.h"
#include "otherworld/wire.h"

/* Actions: u8 type, then the arguments. A built-in type's arguments are the fixed 62 bytes
 * (OW_ACTION_BUILTIN_ARGS): u16 kind, u64 target, u64 dest, u32 count, f32 pos[3], rot[4], scale[3];
 * any other type's are its nargs bytes as they are. The encoding carries no length of its own: the
 * ACTION message's body length or the frame record's u16 delimits it.
 * ow_action_size is the encoded size (1 + the argument bytes). ow_action_encode asserts nargs <=
 * OW_ACTION_ARGS_MAX. ow_action_decode reads exactly len bytes: OW_E_PROTO when len is 0, a
 * built-in type's arguments are not its 62 bytes or another type's exceed OW_ACTION_ARGS_MAX, and
 * the reader's sticky error when fewer than len bytes are left. A decoded action's args point into
 * the reader's bytes. */
size_t ow_action_size(const ow_action *a);
void ow_action_encode(const ow_action *a, ow_buf *out);
int ow_action_decode(ow_reader *r, size_t len, ow_action *a);

/* The fixed 16-byte encoding of a result, used by the zone's remembered results and frame records
 * and by the wire protocol's APPLIED: i32 code, u64 entity, u32 count. decode returns the reader's
 * sticky error. */
#define OW_RESULT_SIZE 16
void ow_result_encode(const ow_result *res, ow_buf *out);
int ow_result_decode(ow_reader *r, ow_result *res);

/* A string of the protocol: a u8 (wide: u16) length and that many bytes of well-formed UTF-8 (text
 * goes to players verbatim), at most max. OW_E_PROTO otherwise; *s points into the reader's bytes. */
int ow_proto_read_str(ow_reader *r, bool wide, size_t max, ow_str *s);

/* Poses (docs/protocol.md POSE). read returns OW_E_PROTO on a bad mask, too many trackers or a
 * short body. */
void ow_proto_put_pose(ow_buf *out, const ow_pose *p);
int ow_proto_read_pose(ow_reader *r, ow_pose *p);

/* Entity state (docs/protocol.md "Entity state"). read returns OW_E_PROTO on malformed bytes;
 * strings point into the reader's bytes. */
void ow_proto_put_entity(ow_buf *out, const ow_wire_entity *e);
int ow_proto_read_entity(ow_reader *r, ow_wire_entity *e);

/* Quantization. Positions: metres <-> millimetres, clamped to int32. Rotations: "smallest three":
 * 2 bits index of the largest component, three 10-bit signed components scaled by sqrt(2). */
int32_t ow_quant_mm(float metres);
float ow_dequant_mm(int32_t mm);
uint32_t ow_quat_pack(const float q[4]);
void ow_quat_unpack(uint32_t packed, float q[4]);

#endif
