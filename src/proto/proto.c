/* proto: wire codec. See proto.h and docs/protocol.md. */
#include "proto/proto.h"

#include <math.h>
#include <stdio.h>

/* Body size limits per message type, checked before any field is read. exact = 1 means the body
 * has exactly `min` bytes; otherwise it has at least `min` and at most `max`. */
typedef struct layout {
  const char *name;
  uint16_t min, max;
  uint8_t exact;
} layout;

static const layout layouts[256] = {
    [OW_MSG_HELLO] = {"HELLO", 7, 4 + 2 + 1 + 64, 0},
    [OW_MSG_REGISTER] = {"REGISTER", 6, 4 + 2 + 2 * 255, 0},
    [OW_MSG_LOGIN] = {"LOGIN", 6, 4 + 2 + 2 * 255, 0},
    [OW_MSG_RESUME] = {"RESUME", 4 + OW_TOKEN_LEN, 0, 1},
    [OW_MSG_JOIN] = {"JOIN", 4, 0, 1},
    [OW_MSG_LEAVE] = {"LEAVE", 4, 0, 1},
    [OW_MSG_LOGOUT] = {"LOGOUT", 4, 0, 1},
    [OW_MSG_ACTION] = {"ACTION", 75, 0, 1},
    [OW_MSG_POSE] = {"POSE", 18, 18 + 10 * (OW_BONE_FIXED_ + OW_POSE_MAX_TRACKERS), 0},
    [OW_MSG_ACK] = {"ACK", 4, 0, 1},
    [OW_MSG_CHAT] = {"CHAT", 6, 6 + OW_TEXT_MAX, 0},
    [OW_MSG_PING] = {"PING", 12, 0, 1},
    [OW_MSG_BYE] = {"BYE", 4, 4 + OW_TEXT_MAX, 0},
    [OW_MSG_ADMIN] = {"ADMIN", 16, 16 + OW_TEXT_MAX, 0},
    [OW_MSG_WELCOME] = {"WELCOME", 23, 23 + 255, 0},
    [OW_MSG_OK] = {"OK", 4, 0, 1},
    [OW_MSG_SESSION] = {"SESSION", 66, 0, 1},
    [OW_MSG_ERROR] = {"ERROR", 10, 10 + OW_TEXT_MAX, 0},
    [OW_MSG_JOINED] = {"JOINED", 4, OW_MSG_MAX_BODY, 0},
    [OW_MSG_APPLIED] = {"APPLIED", 37, 0, 1},
    [OW_MSG_DURABLE] = {"DURABLE", 14, OW_MSG_MAX_BODY, 0},
    [OW_MSG_SNAPSHOT] = {"SNAPSHOT", 13, OW_MSG_MAX_BODY, 0},
    [OW_MSG_POSES] = {"POSES", 6, OW_MSG_MAX_BODY, 0},
    [OW_MSG_EVENT] = {"EVENT", 11, 11 + OW_TEXT_MAX, 0},
    [OW_MSG_PONG] = {"PONG", 20, 0, 1},
    [OW_MSG_SERVER_BYE] = {"SERVER_BYE", 4, 4 + OW_TEXT_MAX, 0},
};

const char *ow_msg_name(uint8_t type) { return layouts[type].name ? layouts[type].name : "UNKNOWN"; }

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

/* ---- helpers --------------------------------------------------------------------------------- */

size_t ow_proto_begin(ow_buf *out, uint8_t type) {
  size_t at = out->len;
  ow_buf_u8(out, type);
  ow_buf_u16(out, 0);
  return at;
}

void ow_proto_end(ow_buf *out, size_t at) {
  size_t n = out->len - at - OW_MSG_HEADER;
  OW_ASSERT(n <= OW_MSG_MAX_BODY);
  out->data[at + 1] = (uint8_t)n;
  out->data[at + 2] = (uint8_t)(n >> 8);
}

static void put_str8(ow_buf *b, ow_str s) {
  OW_ASSERT(s.n <= 255);
  ow_buf_u8(b, (uint8_t)s.n);
  ow_buf_put(b, s.p, s.n);
}

static void put_str16(ow_buf *b, ow_str s) { ow_buf_str16(b, s.p, s.n); }

static int rd_str(ow_reader *r, bool wide, size_t max, ow_str *s) {
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
    default: put_str16(out, e->props[i].v.s); break;
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
      if (rd_str(r, true, 1024, &e->props[i].v.s)) return OW_E_PROTO;
      break;
    default: return OW_E_PROTO;
    }
  }
  return r->err ? OW_E_PROTO : 0;
}

/* ---- durable --------------------------------------------------------------------------------- */

void ow_proto_put_durable(ow_buf *out, uint64_t frame, int32_t status, const uint64_t *seqs, uint16_t n) {
  size_t at = ow_proto_begin(out, OW_MSG_DURABLE);
  ow_buf_u64(out, frame);
  ow_buf_i32(out, status);
  ow_buf_u16(out, n);
  for (uint16_t i = 0; i < n; i++) ow_buf_u64(out, seqs[i]);
  ow_proto_end(out, at);
}

uint64_t ow_proto_durable_seq(const ow_msg *m, uint16_t i) {
  OW_ASSERT(i < m->u.durable.n);
  ow_reader r;
  ow_reader_init(&r, m->u.durable.seqs + 8u * i, 8);
  return ow_rd_u64(&r);
}

/* ---- fixed messages -------------------------------------------------------------------------- */

void ow_proto_encode(ow_buf *out, const ow_msg *m) {
  size_t at = ow_proto_begin(out, m->type);
  switch (m->type) {
  case OW_MSG_HELLO:
    ow_buf_u32(out, m->req);
    ow_buf_u16(out, m->u.hello.version);
    put_str8(out, m->u.hello.client);
    break;
  case OW_MSG_REGISTER:
  case OW_MSG_LOGIN:
    ow_buf_u32(out, m->req);
    put_str8(out, m->u.creds.name);
    put_str8(out, m->u.creds.password);
    break;
  case OW_MSG_RESUME:
    ow_buf_u32(out, m->req);
    ow_buf_put(out, m->u.resume.token, OW_TOKEN_LEN);
    break;
  case OW_MSG_JOIN:
  case OW_MSG_LEAVE:
  case OW_MSG_LOGOUT:
  case OW_MSG_OK:
    ow_buf_u32(out, m->req);
    break;
  case OW_MSG_ACTION:
    ow_buf_u32(out, m->req);
    ow_buf_u64(out, m->u.action.seq);
    ow_action_encode(&m->u.action.action, out);
    break;
  case OW_MSG_POSE: ow_proto_put_pose(out, &m->u.pose); break;
  case OW_MSG_ACK: ow_buf_u32(out, m->u.ack.snapshot); break;
  case OW_MSG_CHAT:
    ow_buf_u32(out, m->req);
    put_str16(out, m->u.chat.text);
    break;
  case OW_MSG_PING:
    ow_buf_u32(out, m->req);
    ow_buf_u64(out, m->u.ping.client_time);
    break;
  case OW_MSG_ADMIN:
    ow_buf_u32(out, m->req);
    ow_buf_u8(out, m->u.admin.op);
    ow_buf_u64(out, m->u.admin.account);
    ow_buf_u8(out, m->u.admin.role);
    put_str16(out, m->u.admin.text);
    break;
  case OW_MSG_BYE:
  case OW_MSG_SERVER_BYE:
    ow_buf_u16(out, m->u.bye.reason);
    put_str16(out, m->u.bye.text);
    break;
  case OW_MSG_WELCOME:
    ow_buf_u32(out, m->req);
    ow_buf_u16(out, m->u.welcome.version);
    ow_buf_u16(out, m->u.welcome.tick_hz);
    ow_buf_u16(out, m->u.welcome.pose_hz);
    ow_buf_u64(out, m->u.welcome.server_time_us);
    ow_buf_u32(out, m->u.welcome.max_message);
    put_str8(out, m->u.welcome.server_name);
    break;
  case OW_MSG_SESSION:
    ow_buf_u32(out, m->req);
    ow_buf_put(out, m->u.session.token, OW_TOKEN_LEN);
    ow_buf_u64(out, m->u.session.account);
    ow_buf_u64(out, m->u.session.avatar);
    ow_buf_u8(out, m->u.session.role);
    ow_buf_u64(out, m->u.session.last_seq);
    ow_buf_u32(out, m->u.session.expires_in_s);
    ow_buf_u8(out, m->u.session.resumed);
    break;
  case OW_MSG_ERROR:
    ow_buf_u32(out, m->req);
    ow_buf_i32(out, m->u.error.code);
    put_str16(out, m->u.error.text);
    break;
  case OW_MSG_APPLIED:
    ow_buf_u32(out, m->req);
    ow_buf_u64(out, m->u.applied.seq);
    ow_result_encode(&m->u.applied.result, out);
    ow_buf_u64(out, m->u.applied.frame);
    ow_buf_u8(out, m->u.applied.replayed);
    break;
  case OW_MSG_EVENT:
    ow_buf_u8(out, m->u.event.kind);
    ow_buf_u64(out, m->u.event.from);
    put_str16(out, m->u.event.text);
    break;
  case OW_MSG_PONG:
    ow_buf_u32(out, m->req);
    ow_buf_u64(out, m->u.pong.client_time);
    ow_buf_u64(out, m->u.pong.server_time_us);
    break;
  default: OW_ASSERT(!"ow_proto_encode: variable or unknown message type");
  }
  ow_proto_end(out, at);
}

static int bad(char *err, size_t errlen, const char *what, uint8_t type) {
  if (err && errlen) snprintf(err, errlen, "%s (0x%02x): %s", ow_msg_name(type), type, what);
  return OW_E_PROTO;
}

int ow_proto_decode(const uint8_t *p, size_t n, size_t *used, ow_msg *m, char *err, size_t errlen) {
  memset(m, 0, sizeof *m);
  if (n < OW_MSG_HEADER) {
    if (err && errlen) snprintf(err, errlen, "truncated header: %zu bytes", n);
    return OW_E_PROTO;
  }
  uint8_t type = p[0];
  size_t len = (size_t)p[1] | ((size_t)p[2] << 8);
  const layout *l = &layouts[type];
  if (!l->name) {
    if (err && errlen) snprintf(err, errlen, "unknown message type 0x%02x", type);
    return OW_E_PROTO;
  }
  if (len > n - OW_MSG_HEADER) return bad(err, errlen, "length runs past the end of the frame", type);
  if (l->exact ? len != l->min : (len < l->min || len > l->max)) {
    if (err && errlen)
      snprintf(err, errlen, "%s (0x%02x): body of %zu bytes, expected %s%u", l->name, type, len,
               l->exact ? "" : "at least ", l->min);
    return OW_E_PROTO;
  }
  m->type = type;
  ow_reader r;
  ow_reader_init(&r, p + OW_MSG_HEADER, len);
  int rc = 0;
  switch (type) {
  case OW_MSG_HELLO:
    m->req = ow_rd_u32(&r);
    m->u.hello.version = ow_rd_u16(&r);
    rc = rd_str(&r, false, 64, &m->u.hello.client);
    break;
  case OW_MSG_REGISTER:
  case OW_MSG_LOGIN:
    m->req = ow_rd_u32(&r);
    rc = rd_str(&r, false, 255, &m->u.creds.name);
    if (!rc) rc = rd_str(&r, false, 255, &m->u.creds.password);
    break;
  case OW_MSG_RESUME:
    m->req = ow_rd_u32(&r);
    memcpy(m->u.resume.token, ow_rd_bytes(&r, OW_TOKEN_LEN), OW_TOKEN_LEN);
    break;
  case OW_MSG_JOIN:
  case OW_MSG_LEAVE:
  case OW_MSG_LOGOUT:
  case OW_MSG_OK:
    m->req = ow_rd_u32(&r);
    break;
  case OW_MSG_ACTION:
    m->req = ow_rd_u32(&r);
    m->u.action.seq = ow_rd_u64(&r);
    ow_action_decode(&r, &m->u.action.action);
    break;
  case OW_MSG_POSE: rc = ow_proto_read_pose(&r, &m->u.pose); break;
  case OW_MSG_ACK: m->u.ack.snapshot = ow_rd_u32(&r); break;
  case OW_MSG_CHAT:
    m->req = ow_rd_u32(&r);
    rc = rd_str(&r, true, OW_TEXT_MAX, &m->u.chat.text);
    break;
  case OW_MSG_PING:
    m->req = ow_rd_u32(&r);
    m->u.ping.client_time = ow_rd_u64(&r);
    break;
  case OW_MSG_ADMIN:
    m->req = ow_rd_u32(&r);
    m->u.admin.op = ow_rd_u8(&r);
    m->u.admin.account = ow_rd_u64(&r);
    m->u.admin.role = ow_rd_u8(&r);
    rc = rd_str(&r, true, OW_TEXT_MAX, &m->u.admin.text);
    break;
  case OW_MSG_BYE:
  case OW_MSG_SERVER_BYE:
    m->u.bye.reason = ow_rd_u16(&r);
    rc = rd_str(&r, true, OW_TEXT_MAX, &m->u.bye.text);
    break;
  case OW_MSG_WELCOME:
    m->req = ow_rd_u32(&r);
    m->u.welcome.version = ow_rd_u16(&r);
    m->u.welcome.tick_hz = ow_rd_u16(&r);
    m->u.welcome.pose_hz = ow_rd_u16(&r);
    m->u.welcome.server_time_us = ow_rd_u64(&r);
    m->u.welcome.max_message = ow_rd_u32(&r);
    rc = rd_str(&r, false, 255, &m->u.welcome.server_name);
    break;
  case OW_MSG_SESSION:
    m->req = ow_rd_u32(&r);
    memcpy(m->u.session.token, ow_rd_bytes(&r, OW_TOKEN_LEN), OW_TOKEN_LEN);
    m->u.session.account = ow_rd_u64(&r);
    m->u.session.avatar = ow_rd_u64(&r);
    m->u.session.role = ow_rd_u8(&r);
    m->u.session.last_seq = ow_rd_u64(&r);
    m->u.session.expires_in_s = ow_rd_u32(&r);
    m->u.session.resumed = ow_rd_u8(&r);
    break;
  case OW_MSG_ERROR:
    m->req = ow_rd_u32(&r);
    m->u.error.code = ow_rd_i32(&r);
    rc = rd_str(&r, true, OW_TEXT_MAX, &m->u.error.text);
    break;
  case OW_MSG_APPLIED:
    m->req = ow_rd_u32(&r);
    m->u.applied.seq = ow_rd_u64(&r);
    ow_result_decode(&r, &m->u.applied.result);
    m->u.applied.frame = ow_rd_u64(&r);
    m->u.applied.replayed = ow_rd_u8(&r);
    break;
  case OW_MSG_DURABLE:
    m->u.durable.frame = ow_rd_u64(&r);
    m->u.durable.status = ow_rd_i32(&r);
    m->u.durable.n = ow_rd_u16(&r);
    m->u.durable.seqs = ow_rd_bytes(&r, 8u * m->u.durable.n);
    break;
  case OW_MSG_EVENT:
    m->u.event.kind = ow_rd_u8(&r);
    m->u.event.from = ow_rd_u64(&r);
    rc = rd_str(&r, true, OW_TEXT_MAX, &m->u.event.text);
    break;
  case OW_MSG_PONG:
    m->req = ow_rd_u32(&r);
    m->u.pong.client_time = ow_rd_u64(&r);
    m->u.pong.server_time_us = ow_rd_u64(&r);
    break;
  case OW_MSG_JOINED:
    m->req = ow_rd_u32(&r);
    m->u.body.p = r.p;
    m->u.body.n = r.left;
    ow_rd_bytes(&r, r.left);
    break;
  default: /* SNAPSHOT, POSES */
    m->u.body.p = r.p;
    m->u.body.n = r.left;
    ow_rd_bytes(&r, r.left);
    break;
  }
  if (rc || r.err) return bad(err, errlen, "field runs past the body or string is invalid", type);
  if (r.left) return bad(err, errlen, "trailing bytes after the last field", type);
  *used = OW_MSG_HEADER + len;
  return 0;
}
