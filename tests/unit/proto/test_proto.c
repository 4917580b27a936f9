/* proto: every message round-trips; every malformed input (truncated, oversized, unknown type,
 * trailing bytes, bad strings) is refused with a reason naming the message; quantization error is
 * bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "proto/proto.h"

static ow_str S(const char *s) { return (ow_str){s, strlen(s)}; }

static void roundtrip(const ow_msg *m, ow_msg *out, ow_buf *b) {
  b->len = 0;
  ow_proto_encode(b, m);
  size_t used;
  char err[128];
  int rc = ow_proto_decode(b->data, b->len, &used, out, err, sizeof err);
  if (rc) fail_msg("%s: %s", ow_msg_name(m->type), err);
  assert_int_equal(used, b->len);
  assert_int_equal(out->type, m->type);
  assert_int_equal(out->req, m->req);
  /* Every prefix of a valid message is refused, never read past. */
  for (size_t n = 0; n < b->len; n++) {
    ow_msg junk;
    assert_int_equal(ow_proto_decode(b->data, n, &used, &junk, err, sizeof err), OW_E_PROTO);
  }
}

static void test_roundtrip_all(void **state) {
  (void)state;
  ow_buf b;
  ow_buf_init(&b);
  ow_msg m, o;
  memset(&m, 0, sizeof m);
  m = (ow_msg){.type = OW_MSG_HELLO, .req = 1, .u.hello = {OW_PROTO_VERSION, S("godot-3.2")}};
  roundtrip(&m, &o, &b);
  assert_int_equal(o.u.hello.version, OW_PROTO_VERSION);
  assert_memory_equal(o.u.hello.client.p, "godot-3.2", 9);
  m = (ow_msg){.type = OW_MSG_LOGIN, .req = 2, .u.creds = {S("alice"), S("correct horse")}};
  roundtrip(&m, &o, &b);
  assert_int_equal(o.u.creds.password.n, 13);
  m = (ow_msg){.type = OW_MSG_REGISTER, .req = 3, .u.creds = {S("bob"), S("")}};
  roundtrip(&m, &o, &b);
  m = (ow_msg){.type = OW_MSG_RESUME, .req = 4};
  for (int i = 0; i < OW_TOKEN_LEN; i++) m.u.resume.token[i] = (uint8_t)i;
  roundtrip(&m, &o, &b);
  assert_memory_equal(o.u.resume.token, m.u.resume.token, OW_TOKEN_LEN);
  uint8_t simple[] = {OW_MSG_JOIN, OW_MSG_LEAVE, OW_MSG_LOGOUT, OW_MSG_OK};
  for (size_t i = 0; i < sizeof simple; i++) {
    m = (ow_msg){.type = simple[i], .req = 77};
    roundtrip(&m, &o, &b);
  }
  m = (ow_msg){.type = OW_MSG_ACTION, .req = 5};
  m.u.action.seq = 123456789012345ULL;
  m.u.action.action = (ow_action){.type = OW_ACT_TRANSFER, .kind = 3, .target = 1ULL << 40, .dest = 9, .count = UINT32_MAX};
  m.u.action.action.xf.pos[1] = -2.5f;
  m.u.action.action.xf.rot[3] = 1;
  roundtrip(&m, &o, &b);
  assert_true(o.u.action.seq == m.u.action.seq);
  assert_memory_equal(&o.u.action.action, &m.u.action.action, sizeof(ow_action));
  m = (ow_msg){.type = OW_MSG_POSE};
  m.u.pose.mask = 7;
  m.u.pose.ntrackers = 8;
  m.u.pose.root[0] = -123456;
  m.u.pose.root_rot = 0xdeadbeef;
  for (int i = 0; i < 11; i++) {
    m.u.pose.bone[i].pos[0] = (int16_t)(-i * 1000);
    m.u.pose.bone[i].rot = (uint32_t)i;
  }
  roundtrip(&m, &o, &b);
  assert_int_equal(o.u.pose.nbones, 11);
  assert_int_equal(o.u.pose.bone[10].pos[0], -10000);
  assert_int_equal(o.u.pose.root[0], -123456);
  m = (ow_msg){.type = OW_MSG_ACK, .u.ack.snapshot = 99};
  roundtrip(&m, &o, &b);
  m = (ow_msg){.type = OW_MSG_CHAT, .req = 6, .u.chat.text = S("h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c")};
  roundtrip(&m, &o, &b);
  m = (ow_msg){.type = OW_MSG_PING, .req = 7, .u.ping.client_time = 42};
  roundtrip(&m, &o, &b);
  m = (ow_msg){.type = OW_MSG_BYE, .u.bye = {OW_BYE_NORMAL, S("see you")}};
  roundtrip(&m, &o, &b);
  m = (ow_msg){.type = OW_MSG_WELCOME, .req = 1, .u.welcome = {1, 60, 30, 1234567, 4096, S("otherworld")}};
  roundtrip(&m, &o, &b);
  assert_int_equal(o.u.welcome.pose_hz, 30);
  m = (ow_msg){.type = OW_MSG_SESSION, .req = 2};
  m.u.session.account = 5;
  m.u.session.avatar = 6;
  m.u.session.last_seq = 7;
  m.u.session.role = OW_ROLE_ADMIN;
  m.u.session.expires_in_s = 3600;
  m.u.session.resumed = 1;
  roundtrip(&m, &o, &b);
  assert_int_equal(o.u.session.last_seq, 7);
  m = (ow_msg){.type = OW_MSG_ERROR, .req = 3, .u.error = {OW_E_AUTH, S("wrong name or password")}};
  roundtrip(&m, &o, &b);
  assert_int_equal(o.u.error.code, OW_E_AUTH);
  m = (ow_msg){.type = OW_MSG_APPLIED, .req = 4};
  m.u.applied.seq = 10;
  m.u.applied.result = (ow_result){OW_E_FULL, 12, 0};
  m.u.applied.frame = 99;
  m.u.applied.replayed = 1;
  roundtrip(&m, &o, &b);
  assert_int_equal(o.u.applied.result.code, OW_E_FULL);
  m = (ow_msg){.type = OW_MSG_EVENT, .u.event = {OW_EVENT_SYSTEM, 0, S("restarting in 10 s")}};
  roundtrip(&m, &o, &b);
  m = (ow_msg){.type = OW_MSG_PONG, .req = 8, .u.pong = {1, 2}};
  roundtrip(&m, &o, &b);
  m = (ow_msg){.type = OW_MSG_SERVER_BYE, .u.bye = {OW_BYE_TAKEN_OVER, S("logged in elsewhere")}};
  roundtrip(&m, &o, &b);
  ow_buf_deinit(&b);
}

static void test_durable_and_batching(void **state) {
  (void)state;
  ow_buf b;
  ow_buf_init(&b);
  uint64_t seqs[] = {1, 2, UINT64_MAX};
  ow_proto_put_durable(&b, 77, 0, seqs, 3);
  ow_msg pong = {.type = OW_MSG_PONG, .req = 9};
  ow_proto_encode(&b, &pong);
  size_t used, off = 0;
  ow_msg m;
  char err[128];
  assert_int_equal(ow_proto_decode(b.data, b.len, &used, &m, err, sizeof err), 0);
  assert_int_equal(m.type, OW_MSG_DURABLE);
  assert_int_equal(m.u.durable.n, 3);
  assert_true(ow_proto_durable_seq(&m, 2) == UINT64_MAX);
  off += used;
  assert_int_equal(ow_proto_decode(b.data + off, b.len - off, &used, &m, err, sizeof err), 0);
  assert_int_equal(m.type, OW_MSG_PONG);
  assert_int_equal(off + used, b.len);
  ow_buf_deinit(&b);
}

static void expect_bad(const uint8_t *p, size_t n, const char *fragment) {
  ow_msg m;
  size_t used;
  char err[256] = "";
  int rc = ow_proto_decode(p, n, &used, &m, err, sizeof err);
  if (rc != OW_E_PROTO || !strstr(err, fragment)) fail_msg("expected '%s', got rc=%d '%s'", fragment, rc, err);
}

static void test_malformed(void **state) {
  (void)state;
  const uint8_t unknown[] = {0x7e, 0, 0};
  expect_bad(unknown, sizeof unknown, "unknown message type 0x7e");
  const uint8_t short_join[] = {OW_MSG_JOIN, 3, 0, 1, 2, 3};
  expect_bad(short_join, sizeof short_join, "JOIN (0x05): body of 3 bytes, expected 4");
  const uint8_t long_join[] = {OW_MSG_JOIN, 5, 0, 1, 2, 3, 4, 5};
  expect_bad(long_join, sizeof long_join, "JOIN (0x05): body of 5 bytes");
  const uint8_t past_end[] = {OW_MSG_JOIN, 4, 0, 1, 2};
  expect_bad(past_end, sizeof past_end, "runs past the end");
  /* LOGIN whose name claims more bytes than there are. */
  const uint8_t login[] = {OW_MSG_LOGIN, 7, 0, 1, 0, 0, 0, 200, 'a', 0};
  expect_bad(login, sizeof login, "LOGIN");
  /* LOGIN with a trailing byte after the password. */
  const uint8_t trailing[] = {OW_MSG_LOGIN, 8, 0, 1, 0, 0, 0, 1, 'a', 0, 9};
  expect_bad(trailing, sizeof trailing, "trailing bytes");
  /* Chat with invalid UTF-8, and with a NUL. */
  const uint8_t chat[] = {OW_MSG_CHAT, 8, 0, 1, 0, 0, 0, 2, 0, 0xc3, 0x28};
  expect_bad(chat, sizeof chat, "CHAT");
  const uint8_t chat0[] = {OW_MSG_CHAT, 8, 0, 1, 0, 0, 0, 2, 0, 'a', 0};
  expect_bad(chat0, sizeof chat0, "CHAT");
  /* A pose with 9 trackers, and one with an unknown bone bit. */
  uint8_t pose[3 + 18] = {OW_MSG_POSE, 18, 0, 0, 9};
  expect_bad(pose, sizeof pose, "POSE");
  pose[3] = 8;
  pose[4] = 0;
  expect_bad(pose, sizeof pose, "POSE");
  /* A pose whose mask promises a bone that is not there. */
  pose[3] = 1;
  expect_bad(pose, sizeof pose, "POSE");
  expect_bad(unknown, 2, "truncated header");
}

/* ACTION carries a type and its argument bytes; the body length delimits them. */
static void test_action_args(void **state) {
  (void)state;
  ow_buf b;
  ow_buf_init(&b);
  static uint8_t args[OW_ACTION_ARGS_MAX];
  for (size_t i = 0; i < sizeof args; i++) args[i] = (uint8_t)(i * 31 + 7);
  const uint16_t sizes[] = {0, 1, 5, OW_ACTION_BUILTIN_ARGS, OW_ACTION_ARGS_MAX};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    ow_msg m = {.type = OW_MSG_ACTION, .req = 9}, o;
    m.u.action.seq = 42;
    m.u.action.action = (ow_action){.type = 100, .nargs = sizes[i], .args = args};
    roundtrip(&m, &o, &b);
    assert_int_equal(b.len, OW_MSG_HEADER + 13 + sizes[i]);
    assert_int_equal(o.u.action.seq, 42);
    assert_int_equal(o.u.action.action.type, 100);
    assert_int_equal(o.u.action.action.nargs, sizes[i]);
    if (sizes[i]) {
      assert_memory_equal(o.u.action.action.args, args, sizes[i]);
      /* borrowed: the arguments are the message's own bytes */
      assert_ptr_equal(o.u.action.action.args, b.data + OW_MSG_HEADER + 13);
    }
    assert_true(o.u.action.action.target == 0 && o.u.action.action.kind == 0);
  }

  /* An ACTION from a client written before variable-length arguments: the fixed 75-byte body,
   * built by hand here, still decodes to the same built-in action. */
  uint8_t old[OW_MSG_HEADER + 75] = {OW_MSG_ACTION, 75, 0};
  ow_buf ob = {0};
  ow_buf_u32(&ob, 7);                     /* req */
  ow_buf_u64(&ob, 1000);                  /* seq */
  ow_buf_u8(&ob, OW_ACT_TRANSFER);        /* type */
  ow_buf_u16(&ob, 3);                     /* kind */
  ow_buf_u64(&ob, 0x0102030405060708ULL); /* target */
  ow_buf_u64(&ob, 99);                    /* dest */
  ow_buf_u32(&ob, 12);                    /* count */
  for (int i = 0; i < 10; i++) ow_buf_f32(&ob, (float)i);
  assert_int_equal(ob.len, 75);
  memcpy(old + OW_MSG_HEADER, ob.data, 75);
  ow_buf_deinit(&ob);
  ow_msg o;
  size_t used;
  char err[128];
  assert_int_equal(ow_proto_decode(old, sizeof old, &used, &o, err, sizeof err), 0);
  const ow_action *a = &o.u.action.action;
  assert_int_equal(a->type, OW_ACT_TRANSFER);
  assert_int_equal(a->kind, 3);
  assert_true(a->target == 0x0102030405060708ULL && a->dest == 99 && a->count == 12);
  assert_true(a->xf.pos[0] == 0 && a->xf.rot[3] == 6 && a->xf.scale[2] == 9);
  assert_int_equal(a->nargs, 0);
  b.len = 0;
  ow_proto_encode(&b, &o);
  assert_int_equal(b.len, sizeof old);
  assert_memory_equal(b.data, old, sizeof old);

  /* A built-in type with other than its 62 argument bytes is refused; so are arguments beyond
   * OW_ACTION_ARGS_MAX and an ACTION without a type. */
  uint8_t big[OW_MSG_HEADER + 13 + OW_ACTION_ARGS_MAX + 1] = {0};
  for (size_t len = 12; len <= 13 + OW_ACTION_ARGS_MAX + 1; len++) {
    bool builtin_ok = len == 13 + OW_ACTION_BUILTIN_ARGS;
    big[0] = OW_MSG_ACTION;
    big[1] = (uint8_t)len;
    big[2] = (uint8_t)(len >> 8);
    big[OW_MSG_HEADER + 12] = OW_ACT_HARVEST;
    int rc = ow_proto_decode(big, OW_MSG_HEADER + len, &used, &o, err, sizeof err);
    assert_int_equal(rc, builtin_ok ? 0 : OW_E_PROTO);
    if (rc) assert_non_null(strstr(err, "ACTION (0x08)"));
    big[OW_MSG_HEADER + 12] = 200; /* a type without the built-in layout */
    rc = ow_proto_decode(big, OW_MSG_HEADER + len, &used, &o, err, sizeof err);
    assert_int_equal(rc, len >= 13 && len <= 13 + OW_ACTION_ARGS_MAX ? 0 : OW_E_PROTO);
  }
  big[1] = (uint8_t)(13 + OW_ACTION_ARGS_MAX + 1), big[2] = (uint8_t)((13 + OW_ACTION_ARGS_MAX + 1) >> 8);
  expect_bad(big, sizeof big, "ACTION (0x08): body of 1038 bytes, expected 13 to 1037");
  ow_buf_deinit(&b);
}

/* The message list yields the enum and the codec's names and sizes from one place. */
static void test_message_table(void **state) {
  (void)state;
#define CHECK_NAME(name, num, lo, hi)                   \
  assert_string_equal(ow_msg_name(OW_MSG_##name), #name); \
  assert_true((lo) <= (hi) && (hi) <= OW_MSG_MAX_BODY);
  OW_MSG_MAP(CHECK_NAME)
#undef CHECK_NAME
  assert_string_equal(ow_msg_name(0x00), "UNKNOWN");
  assert_string_equal(ow_msg_name(0x7f), "UNKNOWN");
  assert_int_equal(OW_MSG_ACTION, 0x08);
  assert_int_equal(OW_MSG_SERVER_BYE, 0x8c);
}

static void test_random_bytes_never_crash(void **state) {
  (void)state;
  srand(7);
  uint8_t buf[256];
  int ok = 0;
  for (int i = 0; i < 200000; i++) {
    size_t n = (size_t)(rand() % (int)sizeof buf);
    for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)rand();
    if (n >= 3 && rand() % 2) { /* plausible header */
      buf[0] = (uint8_t)(rand() % 2 ? rand() % 14 : 0x81 + rand() % 12);
      size_t len = n - 3;
      buf[1] = (uint8_t)len;
      buf[2] = (uint8_t)(len >> 8);
    }
    ow_msg m;
    size_t used;
    char err[128];
    if (ow_proto_decode(buf, n, &used, &m, err, sizeof err) == 0) {
      ok++;
      assert_true(used <= n);
    }
  }
  assert_true(ok > 0);
}

static void test_quantization(void **state) {
  (void)state;
  assert_int_equal(ow_quant_mm(1.2345f), 1235);
  assert_int_equal(ow_quant_mm(-0.0004f), 0);
  assert_int_equal(ow_quant_mm(1e12f), INT32_MAX);
  assert_int_equal(ow_quant_mm(NAN), 0);
  assert_true(fabsf(ow_dequant_mm(1235) - 1.235f) < 1e-6f);
  srand(3);
  float worst = 0;
  for (int i = 0; i < 100000; i++) {
    float q[4], r[4], n = 0;
    for (int k = 0; k < 4; k++) {
      q[k] = (float)rand() / RAND_MAX * 2 - 1;
      n += q[k] * q[k];
    }
    n = sqrtf(n);
    for (int k = 0; k < 4; k++) q[k] /= n;
    ow_quat_unpack(ow_quat_pack(q), r);
    /* Same rotation: |dot| close to 1. The angle error of 10-bit smallest-three is below 0.25 deg. */
    float dot = fabsf(q[0] * r[0] + q[1] * r[1] + q[2] * r[2] + q[3] * r[3]);
    float angle = 2 * acosf(dot > 1 ? 1 : dot) * 57.29578f;
    if (angle > worst) worst = angle;
  }
  print_message("quaternion worst error %.3f deg\n", worst);
  assert_true(worst < 0.5f);
}

/* A pose with head, both hands and n trackers, bones at the given offsets. */
static ow_pose pose_with(int32_t x, int32_t y, int32_t z, uint8_t ntrackers, int16_t off) {
  ow_pose p;
  memset(&p, 0, sizeof p);
  p.mask = 7;
  p.ntrackers = ntrackers;
  p.root[0] = x, p.root[1] = y, p.root[2] = z;
  p.root_rot = 0x4012345u;
  p.nbones = (uint8_t)(3 + ntrackers);
  for (uint8_t b = 0; b < p.nbones; b++) {
    p.bone[b].pos[0] = (int16_t)(off + b), p.bone[b].pos[1] = (int16_t)(1650 - 7 * b);
    p.bone[b].pos[2] = (int16_t)(-off - 3 * b);
    p.bone[b].rot = 0x80000000u + b;
  }
  return p;
}

static ow_pose pose2_roundtrip(const ow_pose *p, float rs, int32_t bx, int32_t bz, size_t *len) {
  ow_buf b;
  ow_buf_init(&b);
  ow_pose2_put(&b, p, rs, bx, bz);
  *len = b.len;
  ow_pose o;
  ow_reader r;
  ow_reader_init(&r, b.data, b.len);
  assert_int_equal(ow_pose2_read(&r, rs, bx, bz, &o), 0);
  assert_int_equal(r.left, 0);
  /* Every prefix is refused. */
  for (size_t n = 0; n < b.len; n++) {
    ow_pose junk;
    ow_reader_init(&r, b.data, n);
    assert_int_equal(ow_pose2_read(&r, rs, bx, bz, &junk), OW_E_PROTO);
  }
  ow_buf_deinit(&b);
  return o;
}

static void test_compact_pose(void **state) {
  (void)state;
  /* Compact: the root within 127 cells of the base and under 32.767 m high. Region 256 m: X and
   * Z to 256000 / 65536 = 3.9 mm, so within 2 mm; Y exact; bones to 4 mm, within 2 mm; rotations
   * as they were. */
  ow_pose p = pose_with(-1234567, -850, 98765, 2, 333);
  size_t len;
  ow_pose o = pose2_roundtrip(&p, 256, -5, 0, &len);
  assert_int_equal(len, ow_pose2_size(&p));
  assert_int_equal(len, 13 + 8 * 5);
  assert_int_equal(o.mask, 7);
  assert_int_equal(o.ntrackers, 2);
  assert_int_equal(o.nbones, 5);
  assert_true(labs((long)o.root[0] - p.root[0]) <= 2);
  assert_int_equal(o.root[1], -850);
  assert_true(labs((long)o.root[2] - p.root[2]) <= 2);
  assert_int_equal(o.root_rot, p.root_rot);
  for (int b = 0; b < 5; b++) {
    for (int i = 0; i < 3; i++) assert_true(abs(o.bone[b].pos[i] - p.bone[b].pos[i]) <= 2);
    assert_int_equal(o.bone[b].rot, p.bone[b].rot);
  }
  /* The same pose against another base: the cell offset changes, the decoded root does not. */
  ow_pose o2 = pose2_roundtrip(&p, 256, -4, 1, &len);
  assert_memory_equal(o2.root, o.root, sizeof o.root);

  /* Wide: the root is 200 cells from the base, or too high: world millimetres, exact. */
  p = pose_with(200 * 256000 + 17, 12, -3, 0, 0);
  o = pose2_roundtrip(&p, 256, 0, 0, &len);
  assert_int_equal(len, ow_pose2_size(&p) + 4);
  assert_memory_equal(o.root, p.root, sizeof p.root);
  p = pose_with(1000, 40000, 1000, 0, 0);
  o = pose2_roundtrip(&p, 256, 0, 0, &len);
  assert_int_equal(o.root[1], 40000);
  assert_int_equal(o.root[0], 1000);

  /* A point exactly on a cell edge, and one that rounds up onto the next edge. */
  p = pose_with(256000, 0, -256000, 0, 0);
  o = pose2_roundtrip(&p, 256, 1, -1, &len);
  assert_int_equal(o.root[0], 256000);
  assert_int_equal(o.root[2], -256000);
  p = pose_with(255999, 0, -1, 0, 0);
  o = pose2_roundtrip(&p, 256, 0, 0, &len);
  assert_true(labs((long)o.root[0] - 255999) <= 2);
  assert_true(labs((long)o.root[2] + 1) <= 2);

  /* Bones beyond 2.044 m are clamped to the edge of the range, not wrapped. */
  p = pose_with(0, 0, 0, 0, 5000);
  o = pose2_roundtrip(&p, 256, 0, 0, &len);
  assert_int_equal(o.bone[0].pos[0], 511 * 4);
  assert_int_equal(o.bone[0].pos[2], -511 * 4);

  /* Nine trackers in the shape byte: refused. */
  uint8_t bad[64] = {0};
  bad[0] = 9 << 3;
  ow_reader r;
  ow_reader_init(&r, bad, sizeof bad);
  ow_pose junk;
  assert_int_equal(ow_pose2_read(&r, 256, 0, 0, &junk), OW_E_PROTO);
}

static void test_entity(void **state) {
  (void)state;
  ow_wire_entity e = {.id = 9, .owner = 3, .parent = 0, .type = 4, .pos = {1, -2, 3}, .rot = 77,
                      .scale = {1, 2, 3}, .hp = 50, .count = 1, .nprops = 2};
  e.props[0].key = 1;
  e.props[0].type = OW_PROP_INT;
  e.props[0].v.i = -5;
  e.props[1].key = 2;
  e.props[1].type = OW_PROP_STRING;
  e.props[1].v.s = S("head");
  ow_buf b;
  ow_buf_init(&b);
  ow_proto_put_entity(&b, &e);
  ow_reader r;
  ow_reader_init(&r, b.data, b.len);
  ow_wire_entity o;
  assert_int_equal(ow_proto_read_entity(&r, &o), 0);
  assert_int_equal(r.left, 0);
  assert_int_equal(o.pos[1], -2);
  assert_int_equal(o.props[0].v.i, -5);
  assert_memory_equal(o.props[1].v.s.p, "head", 4);
  for (size_t n = 0; n < b.len; n++) {
    ow_reader_init(&r, b.data, n);
    assert_int_equal(ow_proto_read_entity(&r, &o), OW_E_PROTO);
  }
  ow_buf_deinit(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_all),  cmocka_unit_test(test_durable_and_batching),
      cmocka_unit_test(test_malformed),      cmocka_unit_test(test_random_bytes_never_crash),
      cmocka_unit_test(test_quantization),   cmocka_unit_test(test_entity),
      cmocka_unit_test(test_compact_pose),
      cmocka_unit_test(test_action_args),    cmocka_unit_test(test_message_table),
  };
  return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
