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

/* Compact poses (protocol version 2, docs/protocol.md "Compact poses"): the pose part of a POSES
 * version 2 entry, after its u16 slot (and u64 avatar). The root travels relative to a base region
 * cell (the receiver's, in the message header) as a cell offset and a fixed-point position inside
 * the cell (region_size / 65536 per unit on X and Z, millimetres on Y), or in world millimetres as
 * in version 1 ("wide") when the offset or the height does not fit; each bone's position relative
 * to the root is three 10-bit integers of 4 mm (clamped to +-2.044 m); rotations are the packed
 * quaternions of version 1.
 * ow_pose2_root computes what of the root does not depend on the receiver (once per sender and
 * publish); ow_pose2_put_root writes the shape byte and the root for one base cell;
 * ow_pose2_put_tail writes the root rotation and the bones (the same bytes for every receiver);
 * ow_pose2_put writes all three. ow_pose2_read decodes into an ow_pose with the root in world
 * millimetres and the bones in millimetres (multiples of 4), and returns OW_E_PROTO on a bad
 * mask, too many trackers or a short body; region_size must be > 0. */
#define OW_POSE2_WIDE 0x80 /* shape bit 7: the root is i32 world millimetres */
typedef struct ow_pose2_root {
  int32_t cell[2]; /* region cell of the root, X and Z */
  uint16_t f[2];   /* position inside the cell, region_size / 65536 per unit */
  int32_t mm[3];   /* the root in world millimetres, for the wide form */
} ow_pose2_root;
void ow_pose2_root_of(const ow_pose *p, float region_size, ow_pose2_root *out);
void ow_pose2_put_root(ow_buf *out, const ow_pose *p, const ow_pose2_root *r, int32_t base_x,
                       int32_t base_z);
void ow_pose2_put_tail(ow_buf *out, const ow_pose *p);
void ow_pose2_put(ow_buf *out, const ow_pose *p, float region_size, int32_t base_x, int32_t base_z);
int ow_pose2_read(ow_reader *r, float region_size, int32_t base_x, int32_t base_z, ow_pose *p);
/* Bytes of an entry's pose part in the compact form (the root not wide): 1 + 8 + 4 + 8 per bone. */
static inline size_t ow_pose2_size(const ow_pose *p) { return 13u + 8u * p->nbones; }
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
