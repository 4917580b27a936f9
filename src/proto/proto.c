/* proto: wire codec. See proto.h and docs/protocol.md. */
#include "proto/proto.h"

#include <stdio.h>

/* Body size limits and names per message type, from the one list in otherworld/protocol.h, checked
 * before any field is read: min == max means exactly that size. */
typedef struct layout {
  const char *name;
  uint16_t min, max;
} layout;

static const layout layouts[256] = {
#define LAYOUT(name, num, lo, hi) [num] = {#name, (lo), (hi)},
    OW_MSG_MAP(LAYOUT)
#undef LAYOUT
};

const char *ow_msg_name(uint8_t type) { return layouts[type].name ? layouts[type].name : "UNKNOWN"; }

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
  if (len < l->min || len > l->max) {
    if (err && errlen) {
      if (l->min == l->max)
        snprintf(err, errlen, "%s (0x%02x): body of %zu bytes, expected %u", l->name, type, len, l->min);
      else
        snprintf(err, errlen, "%s (0x%02x): body of %zu bytes, expected %u to %u", l->name, type, len,
                 l->min, l->max);
    }
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
    rc = ow_proto_read_str(&r, false, 64, &m->u.hello.client);
    break;
  case OW_MSG_REGISTER:
  case OW_MSG_LOGIN:
    m->req = ow_rd_u32(&r);
    rc = ow_proto_read_str(&r, false, 255, &m->u.creds.name);
    if (!rc) rc = ow_proto_read_str(&r, false, 255, &m->u.creds.password);
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
    rc = ow_action_decode(&r, r.left, &m->u.action.action);
    break;
  case OW_MSG_POSE: rc = ow_proto_read_pose(&r, &m->u.pose); break;
  case OW_MSG_ACK: m->u.ack.snapshot = ow_rd_u32(&r); break;
  case OW_MSG_CHAT:
    m->req = ow_rd_u32(&r);
    rc = ow_proto_read_str(&r, true, OW_TEXT_MAX, &m->u.chat.text);
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
    rc = ow_proto_read_str(&r, true, OW_TEXT_MAX, &m->u.admin.text);
    break;
  case OW_MSG_BYE:
  case OW_MSG_SERVER_BYE:
    m->u.bye.reason = ow_rd_u16(&r);
    rc = ow_proto_read_str(&r, true, OW_TEXT_MAX, &m->u.bye.text);
    break;
  case OW_MSG_WELCOME:
    m->req = ow_rd_u32(&r);
    m->u.welcome.version = ow_rd_u16(&r);
    m->u.welcome.tick_hz = ow_rd_u16(&r);
    m->u.welcome.pose_hz = ow_rd_u16(&r);
    m->u.welcome.server_time_us = ow_rd_u64(&r);
    m->u.welcome.max_message = ow_rd_u32(&r);
    rc = ow_proto_read_str(&r, false, 255, &m->u.welcome.server_name);
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
    rc = ow_proto_read_str(&r, true, OW_TEXT_MAX, &m->u.error.text);
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
    rc = ow_proto_read_str(&r, true, OW_TEXT_MAX, &m->u.event.text);
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
