/* proto/wire: codec of the shared wire types. See wire.h and docs/protocol.md. */
#include "proto/wire.h"

#include <math.h>

/* ---- quantization ---------------------------------------------------------------------------- */

int32_t ow_quant_mm(float metres) {
  double mm = round((double)metres * 1000.0);
  if (!(mm == mm)) return 0;
  if (mm > INT32_MAX) return INT32_MAX;
  if (mm < INT32_MIN) return INT32_MIN;
  return (int32_t)mm;
}

float ow_dequant_mm(int32_t mm) { return (float)((double)mm / 1000.0); }

#define QSCALE 511.0f /* 10-bit signed range */
#define QMAX 0.70710678f

uint32_t ow_quat_pack(const float q[4]) {
  int big = 0;
  for (int i = 1; i < 4; i++)
    if (fabsf(q[i]) > fabsf(q[big])) big = i;
  /* q and -q are the same rotation: make the dropped component positive. */
  float sign = q[big] < 0 ? -1.0f : 1.0f;
  uint32_t out = (uint32_t)big << 30;
  int shift = 20;
  for (int i = 0; i < 4; i++) {
    if (i == big) continue;
    float v = q[i] * sign / QMAX;
    if (!(v == v)) v = 0;
    if (v > 1) v = 1;
    if (v < -1) v = -1;
    int32_t iv = (int32_t)lroundf(v * QSCALE);
    out |= ((uint32_t)iv & 0x3ffu) << shift;
    shift -= 10;
  }
  return out;
}

void ow_quat_unpack(uint32_t packed, float q[4]) {
  int big = (int)(packed >> 30);
  int shift = 20;
  float sum = 0;
  for (int i = 0; i < 4; i++) {
    if (i == big) continue;
    int32_t iv = (int32_t)((packed >> shift) & 0x3ffu);
    if (iv & 0x200) iv -= 0x400;
    q[i] = (float)iv / QSCALE * QMAX;
    sum += q[i] * q[i];
    shift -= 10;
  }
  q[big] = sum < 1 ? sqrtf(1 - sum) : 0;
}

/* ---- strings --------------------------------------------------------------------------------- */

int ow_proto_read_str(ow_reader *r, bool wide, size_t max, ow_str *s) {
  size_t n = wide ? ow_rd_u16(r) : ow_rd_u8(r);
  const uint8_t *p = ow_rd_bytes(r, n);
  if (r->err) return OW_E_PROTO;
  if (n > max || !ow_utf8_ok(p, n)) return OW_E_PROTO; /* text goes to players verbatim */
  s->p = (const char *)p;
  s->n = n;
  return 0;
}

/* ---- poses ----------------------------------------------------------------------------------- */

static uint8_t bones_of(uint8_t mask, uint8_t ntrackers) {
  uint8_t n = ntrackers;
  for (int i = 0; i < OW_BONE_FIXED_; i++) n += (mask >> i) & 1;
  return n;
}

void ow_proto_put_pose(ow_buf *out, const ow_pose *p) {
  ow_buf_u8(out, p->mask);
  ow_buf_u8(out, p->ntrackers);
  for (int i = 0; i < 3; i++) ow_buf_i32(out, p->root[i]);
  ow_buf_u32(out, p->root_rot);
  uint8_t n = bones_of(p->mask, p->ntrackers);
  for (uint8_t b = 0; b < n; b++) {
    for (int i = 0; i < 3; i++) ow_buf_u16(out, (uint16_t)p->bone[b].pos[i]);
    ow_buf_u32(out, p->bone[b].rot);
  }
}

int ow_proto_read_pose(ow_reader *r, ow_pose *p) {
  p->mask = ow_rd_u8(r);
  p->ntrackers = ow_rd_u8(r);
  if (r->err || p->mask >> OW_BONE_FIXED_ || p->ntrackers > OW_POSE_MAX_TRACKERS) return OW_E_PROTO;
  for (int i = 0; i < 3; i++) p->root[i] = ow_rd_i32(r);
  p->root_rot = ow_rd_u32(r);
  p->nbones = bones_of(p->mask, p->ntrackers);
  for (uint8_t b = 0; b < p->nbones; b++) {
    for (int i = 0; i < 3; i++) p->bone[b].pos[i] = (int16_t)ow_rd_u16(r);
    p->bone[b].rot = ow_rd_u32(r);
  }
  return r->err ? OW_E_PROTO : 0;
}

/* ---- compact poses (protocol version 2) ------------------------------------------------------ */

#define BONE_UNIT_MM 4 /* a compact bone coordinate counts 4 mm */
#define BONE_QMAX 511  /* 10-bit two's complement: -512 .. 511, kept symmetric */

static uint32_t bone_pack(const int16_t pos[3]) {
  uint32_t out = 0;
  for (int i = 0; i < 3; i++) {
    /* Round half away from zero, then clamp: a bone beyond 2.044 m of the root is drawn at the
     * edge of that range rather than wrapped around to the other side. */
    int32_t v = pos[i] >= 0 ? (pos[i] + BONE_UNIT_MM / 2) / BONE_UNIT_MM
                            : -((-pos[i] + BONE_UNIT_MM / 2) / BONE_UNIT_MM);
    if (v > BONE_QMAX) v = BONE_QMAX;
    if (v < -BONE_QMAX) v = -BONE_QMAX;
    out |= ((uint32_t)v & 0x3ffu) << (20 - 10 * i);
  }
  return out;
}

static void bone_unpack(uint32_t v, int16_t pos[3]) {
  for (int i = 0; i < 3; i++) {
    int32_t q = (int32_t)((v >> (20 - 10 * i)) & 0x3ffu);
    if (q & 0x200) q -= 0x400;
    pos[i] = (int16_t)(q * BONE_UNIT_MM);
  }
}

void ow_pose2_root_of(const ow_pose *p, float region_size, ow_pose2_root *out) {
  double cell_mm = (double)region_size * 1000.0;
  for (int k = 0; k < 2; k++) {
    int32_t mm = p->root[k * 2]; /* X, then Z */
    double c = floor((double)mm / cell_mm);
    double f = round(((double)mm - c * cell_mm) / cell_mm * 65536.0);
    /* Rounding may reach the next cell's edge: that is the next cell's 0. */
    if (f >= 65536.0) {
      f = 0;
      c += 1;
    }
    out->cell[k] = c > INT32_MAX ? INT32_MAX : c < INT32_MIN ? INT32_MIN : (int32_t)c;
    out->f[k] = (uint16_t)f;
  }
  for (int i = 0; i < 3; i++) out->mm[i] = p->root[i];
}

void ow_pose2_put_root(ow_buf *out, const ow_pose *p, const ow_pose2_root *r, int32_t base_x,
                       int32_t base_z) {
  int64_t dx = (int64_t)r->cell[0] - base_x, dz = (int64_t)r->cell[1] - base_z;
  bool wide = dx < INT8_MIN || dx > INT8_MAX || dz < INT8_MIN || dz > INT8_MAX ||
              r->mm[1] < INT16_MIN || r->mm[1] > INT16_MAX;
  ow_buf_u8(out, (uint8_t)(p->mask | p->ntrackers << 3 | (wide ? OW_POSE2_WIDE : 0)));
  if (wide) {
    for (int i = 0; i < 3; i++) ow_buf_i32(out, r->mm[i]);
    return;
  }
  ow_buf_u8(out, (uint8_t)(int8_t)dx);
  ow_buf_u8(out, (uint8_t)(int8_t)dz);
  ow_buf_u16(out, r->f[0]);
  ow_buf_u16(out, r->f[1]);
  ow_buf_u16(out, (uint16_t)(int16_t)r->mm[1]);
}

void ow_pose2_put_tail(ow_buf *out, const ow_pose *p) {
  ow_buf_u32(out, p->root_rot);
  uint8_t n = bones_of(p->mask, p->ntrackers);
  for (uint8_t b = 0; b < n; b++) {
    ow_buf_u32(out, bone_pack(p->bone[b].pos));
    ow_buf_u32(out, p->bone[b].rot);
  }
}

void ow_pose2_put(ow_buf *out, const ow_pose *p, float region_size, int32_t base_x, int32_t base_z) {
  ow_pose2_root r;
  ow_pose2_root_of(p, region_size, &r);
  ow_pose2_put_root(out, p, &r, base_x, base_z);
  ow_pose2_put_tail(out, p);
}

static int32_t clamp_mm(double mm) {
  mm = round(mm);
  return mm > INT32_MAX ? INT32_MAX : mm < INT32_MIN ? INT32_MIN : (int32_t)mm;
}

int ow_pose2_read(ow_reader *r, float region_size, int32_t base_x, int32_t base_z, ow_pose *p) {
  uint8_t shape = ow_rd_u8(r);
  p->mask = shape & 7u;
  p->ntrackers = (shape >> 3) & 15u;
  if (r->err || p->ntrackers > OW_POSE_MAX_TRACKERS) return OW_E_PROTO;
  if (shape & OW_POSE2_WIDE) {
    for (int i = 0; i < 3; i++) p->root[i] = ow_rd_i32(r);
  } else {
    int8_t dx = (int8_t)ow_rd_u8(r), dz = (int8_t)ow_rd_u8(r);
    uint16_t fx = ow_rd_u16(r), fz = ow_rd_u16(r);
    int16_t y = (int16_t)ow_rd_u16(r);
    double cell_mm = (double)region_size * 1000.0;
    p->root[0] = clamp_mm(((double)base_x + dx + fx / 65536.0) * cell_mm);
    p->root[1] = y;
    p->root[2] = clamp_mm(((double)base_z + dz + fz / 65536.0) * cell_mm);
  }
  p->root_rot = ow_rd_u32(r);
  p->nbones = bones_of(p->mask, p->ntrackers);
  for (uint8_t b = 0; b < p->nbones; b++) {
    bone_unpack(ow_rd_u32(r), p->bone[b].pos);
    p->bone[b].rot = ow_rd_u32(r);
  }
  return r->err ? OW_E_PROTO : 0;
}

/* ---- entities -------------------------------------------------------------------------------- */

void ow_proto_put_entity(ow_buf *out, const ow_wire_entity *e) {
  ow_buf_u64(out, e->id);
  ow_buf_u16(out, e->type);
  ow_buf_u64(out, e->owner);
  ow_buf_u64(out, e->parent);
  for (int i = 0; i < 3; i++) ow_buf_i32(out, e->pos[i]);
  ow_buf_u32(out, e->rot);
  for (int i = 0; i < 3; i++) ow_buf_f32(out, e->scale[i]);
  ow_buf_i32(out, e->hp);
  ow_buf_u32(out, e->count);
  ow_buf_u8(out, e->nprops);
  for (uint8_t i = 0; i < e->nprops; i++) {
    ow_buf_u16(out, e->props[i].key);
    ow_buf_u8(out, e->props[i].type);
    switch (e->props[i].type) {
    case OW_PROP_INT: ow_buf_u64(out, (uint64_t)e->props[i].v.i); break;
    case OW_PROP_FLOAT: ow_buf_f64(out, e->props[i].v.f); break;
    case OW_PROP_REF: ow_buf_u64(out, e->props[i].v.ref); break;
    default: ow_buf_str16(out, e->props[i].v.s.p, e->props[i].v.s.n); break;
    }
  }
}

int ow_proto_read_entity(ow_reader *r, ow_wire_entity *e) {
  e->id = ow_rd_u64(r);
  e->type = ow_rd_u16(r);
  e->owner = ow_rd_u64(r);
  e->parent = ow_rd_u64(r);
  for (int i = 0; i < 3; i++) e->pos[i] = ow_rd_i32(r);
  e->rot = ow_rd_u32(r);
  for (int i = 0; i < 3; i++) e->scale[i] = ow_rd_f32(r);
  e->hp = ow_rd_i32(r);
  e->count = ow_rd_u32(r);
  e->nprops = ow_rd_u8(r);
  if (r->err || e->nprops > OW_PROPS_MAX) return OW_E_PROTO;
  for (uint8_t i = 0; i < e->nprops; i++) {
    e->props[i].key = ow_rd_u16(r);
    e->props[i].type = ow_rd_u8(r);
    switch (e->props[i].type) {
    case OW_PROP_INT: e->props[i].v.i = (int64_t)ow_rd_u64(r); break;
    case OW_PROP_FLOAT: e->props[i].v.f = ow_rd_f64(r); break;
    case OW_PROP_REF: e->props[i].v.ref = ow_rd_u64(r); break;
    case OW_PROP_STRING:
      if (ow_proto_read_str(r, true, 1024, &e->props[i].v.s)) return OW_E_PROTO;
      break;
    default: return OW_E_PROTO;
    }
  }
  return r->err ? OW_E_PROTO : 0;
}

/* ---- actions and results ---------------------------------------------------------------------- */

size_t ow_action_size(const ow_action *a) {
  return 1 + (ow_action_builtin(a->type) ? OW_ACTION_BUILTIN_ARGS : a->nargs);
}

void ow_action_encode(const ow_action *a, ow_buf *out) {
  ow_buf_u8(out, a->type);
  if (!ow_action_builtin(a->type)) {
    OW_ASSERT(a->nargs <= OW_ACTION_ARGS_MAX);
    ow_buf_put(out, a->args, a->nargs);
    return;
  }
  ow_buf_u16(out, a->kind);
  ow_buf_u64(out, a->target);
  ow_buf_u64(out, a->dest);
  ow_buf_u32(out, a->count);
  for (int i = 0; i < 3; i++) ow_buf_f32(out, a->xf.pos[i]);
  for (int i = 0; i < 4; i++) ow_buf_f32(out, a->xf.rot[i]);
  for (int i = 0; i < 3; i++) ow_buf_f32(out, a->xf.scale[i]);
}

int ow_action_decode(ow_reader *r, size_t len, ow_action *a) {
  memset(a, 0, sizeof *a);
  if (!len || len - 1 > OW_ACTION_ARGS_MAX) return OW_E_PROTO;
  if (r->left < len) {
    ow_rd_bytes(r, len); /* sets the sticky error */
    return r->err;
  }
  a->type = ow_rd_u8(r);
  size_t n = len - 1;
  if (!ow_action_builtin(a->type)) {
    a->nargs = (uint16_t)n;
    a->args = n ? ow_rd_bytes(r, n) : NULL;
    return r->err;
  }
  /* The built-in layout is fixed: a shorter or longer argument string is not a move or a build. */
  if (n != OW_ACTION_BUILTIN_ARGS) return OW_E_PROTO;
  a->kind = ow_rd_u16(r);
  a->target = ow_rd_u64(r);
  a->dest = ow_rd_u64(r);
  a->count = ow_rd_u32(r);
  for (int i = 0; i < 3; i++) a->xf.pos[i] = ow_rd_f32(r);
  for (int i = 0; i < 4; i++) a->xf.rot[i] = ow_rd_f32(r);
  for (int i = 0; i < 3; i++) a->xf.scale[i] = ow_rd_f32(r);
  return r->err;
}

void ow_result_encode(const ow_result *res, ow_buf *out) {
  ow_buf_i32(out, res->code);
  ow_buf_u64(out, res->entity);
  ow_buf_u32(out, res->count);
}

int ow_result_decode(ow_reader *r, ow_result *res) {
  res->code = ow_rd_i32(r);
  res->entity = ow_rd_u64(r);
  res->count = ow_rd_u32(r);
  return r->err;
}
