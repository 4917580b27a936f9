/* client: pose building; action numbering, holding and re-sending; snapshot chunks, full states and
 * deltas on the local entity table; fragment reassembly and its limit; connecting to a closed
 * port; and one whole session against an in-process libwebsockets server that fragments its
 * messages, so the transport path is exercised without the real server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "client_int.h"
#include "otherworld/client.h"

/* ---- recording callbacks ----------------------------------------------------------------------- */

typedef struct rec {
  int opens, welcomes, oks, sessions, joined, applied, durables, entities, removed, snapshots;
  int poses, events, pongs, errors, byes, closes;
  int last_error;
  uint32_t last_error_req;
  char last_error_text[256];
  uint32_t last_ok, last_snapshot, last_snapshot_base;
  uint64_t last_applied_seq, last_durable_frame, last_pose_avatar;
  int32_t last_pose_root[3];
  bool last_replayed;
  uint16_t last_bye;
  ow_client_session session;
  uint32_t welcome_max;
  bool destroy_on_close;
} rec;

static void r_open(ow_client *c, void *ud) { (void)c; ((rec *)ud)->opens++; }
static void r_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)c, (void)req;
  ((rec *)ud)->welcomes++;
  ((rec *)ud)->welcome_max = w->max_message;
  assert_string_equal(w->server_name, "mock");
}
static void r_ok(ow_client *c, void *ud, uint32_t req) {
  (void)c;
  ((rec *)ud)->oks++;
  ((rec *)ud)->last_ok = req;
}
static void r_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)c, (void)req;
  ((rec *)ud)->sessions++;
  ((rec *)ud)->session = *s;
}
static void r_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)c, (void)req, (void)w;
  ((rec *)ud)->joined++;
}
static void r_applied(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                      uint64_t frame, bool replayed) {
  (void)c, (void)req, (void)r, (void)frame;
  ((rec *)ud)->applied++;
  ((rec *)ud)->last_applied_seq = seq;
  ((rec *)ud)->last_replayed = replayed;
}
static void r_durable(ow_client *c, void *ud, uint64_t frame, int32_t status, const uint64_t *seqs,
                      size_t n) {
  (void)c, (void)status, (void)seqs, (void)n;
  ((rec *)ud)->durables++;
  ((rec *)ud)->last_durable_frame = frame;
}
static void r_entity(ow_client *c, void *ud, const ow_wire_entity *e) {
  (void)c, (void)e;
  ((rec *)ud)->entities++;
}
static void r_removed(ow_client *c, void *ud, uint64_t id) {
  (void)c, (void)id;
  ((rec *)ud)->removed++;
}
static void r_snapshot(ow_client *c, void *ud, uint32_t id, uint32_t base, uint64_t frame) {
  (void)c, (void)frame;
  ((rec *)ud)->snapshots++;
  ((rec *)ud)->last_snapshot = id;
  ((rec *)ud)->last_snapshot_base = base;
}
static void r_poses(ow_client *c, void *ud, uint32_t tick, uint64_t avatar, const ow_pose *p) {
  (void)c, (void)tick, (void)p;
  ((rec *)ud)->poses++;
  ((rec *)ud)->last_pose_avatar = avatar;
  memcpy(((rec *)ud)->last_pose_root, p->root, sizeof p->root);
}
static void r_event(ow_client *c, void *ud, uint8_t kind, uint64_t from, const char *text, size_t len) {
  (void)c, (void)kind, (void)from;
  assert_int_equal(strlen(text), len);
  ((rec *)ud)->events++;
}
static void r_pong(ow_client *c, void *ud, uint32_t req, uint64_t ct, uint64_t st) {
  (void)c, (void)req, (void)st;
  assert_int_equal(ct, 12345);
  ((rec *)ud)->pongs++;
}
static void r_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c;
  rec *r = ud;
  r->errors++;
  r->last_error = code;
  r->last_error_req = req;
  snprintf(r->last_error_text, sizeof r->last_error_text, "%s", text);
}
static void r_bye(ow_client *c, void *ud, uint16_t reason, const char *text) {
  (void)c, (void)text;
  ((rec *)ud)->byes++;
  ((rec *)ud)->last_bye = reason;
}
static void r_close(ow_client *c, void *ud) {
  rec *r = ud;
  r->closes++;
  if (r->destroy_on_close) ow_client_destroy(c);
}

static const ow_client_callbacks CB = {
    .on_open = r_open, .on_welcome = r_welcome, .on_ok = r_ok, .on_session = r_session,
    .on_joined = r_joined, .on_applied = r_applied, .on_durable = r_durable,
    .on_entity = r_entity, .on_removed = r_removed, .on_snapshot = r_snapshot,
    .on_poses = r_poses, .on_event = r_event, .on_pong = r_pong, .on_error = r_error,
    .on_bye = r_bye, .on_close = r_close};

/* ---- building server messages ------------------------------------------------------------------- */

static ow_str S(const char *s) { return (ow_str){s, strlen(s)}; }

static void put_str8(ow_buf *b, const char *s) {
  ow_buf_u8(b, (uint8_t)strlen(s));
  ow_buf_put(b, s, strlen(s));
}

static void m_session(ow_buf *b, uint32_t req, uint64_t last_seq, bool resumed) {
  ow_msg m = {.type = OW_MSG_SESSION, .req = req};
  memset(m.u.session.token, 0xab, OW_TOKEN_LEN);
  m.u.session.account = 7;
  m.u.session.avatar = 70;
  m.u.session.last_seq = last_seq;
  m.u.session.expires_in_s = 3600;
  m.u.session.resumed = resumed;
  ow_proto_encode(b, &m);
}

static void m_joined(ow_buf *b, uint32_t req) {
  size_t at = ow_proto_begin(b, OW_MSG_JOINED);
  ow_buf_u32(b, req);
  ow_buf_f32(b, 256);
  ow_buf_f32(b, 300);
  ow_buf_u16(b, 3);
  ow_buf_u16(b, 0), ow_buf_u8(b, 2), put_str8(b, "wood");
  ow_buf_u16(b, 4), ow_buf_u8(b, 1), put_str8(b, "tree");
  ow_buf_u16(b, 10), ow_buf_u8(b, 4), put_str8(b, "chest");
  ow_buf_u16(b, 1);
  ow_buf_u16(b, 0), put_str8(b, "planks");
  ow_buf_u16(b, 2);
  put_str8(b, "open");
  put_str8(b, "label");
  ow_proto_end(b, at);
}

static void m_applied(ow_buf *b, uint32_t req, uint64_t seq, int32_t code, uint64_t frame, bool replayed) {
  ow_msg m = {.type = OW_MSG_APPLIED, .req = req};
  m.u.applied.seq = seq;
  m.u.applied.result.code = code;
  m.u.applied.frame = frame;
  m.u.applied.replayed = replayed;
  ow_proto_encode(b, &m);
}

static void m_error(ow_buf *b, uint32_t req, int32_t code) {
  ow_msg m = {.type = OW_MSG_ERROR, .req = req};
  m.u.error.code = code;
  m.u.error.text = S("nope");
  ow_proto_encode(b, &m);
}

static ow_wire_entity ent(uint64_t id, int32_t hp, const char *label) {
  ow_wire_entity e;
  memset(&e, 0, sizeof e);
  e.id = id;
  e.type = 4;
  e.hp = hp;
  e.count = 1;
  e.scale[0] = e.scale[1] = e.scale[2] = 1;
  e.pos[0] = (int32_t)id * 1000;
  if (label) {
    e.nprops = 2;
    e.props[0].key = 1;
    e.props[0].type = OW_PROP_STRING;
    e.props[0].v.s = S(label);
    e.props[1].key = 0;
    e.props[1].type = OW_PROP_INT;
    e.props[1].v.i = -5;
  }
  return e;
}

static void m_snapshot(ow_buf *b, uint32_t id, uint32_t base, bool more, const ow_wire_entity *es,
                       int n, const uint64_t *removed, int nremoved) {
  size_t at = ow_proto_begin(b, OW_MSG_SNAPSHOT);
  ow_buf_u32(b, id);
  ow_buf_u32(b, base);
  ow_buf_u64(b, 100 + id);
  ow_buf_u8(b, more ? 1 : 0);
  ow_buf_u16(b, (uint16_t)n);
  for (int i = 0; i < n; i++) ow_proto_put_entity(b, &es[i]);
  ow_buf_u16(b, (uint16_t)nremoved);
  for (int i = 0; i < nremoved; i++) ow_buf_u64(b, removed[i]);
  ow_proto_end(b, at);
}

/* Feeds b as one complete binary WebSocket message and empties it. */
static int feed(ow_client *c, ow_buf *b) {
  int rc = ow_client__rx(c, b->data, b->len, true, true, true);
  b->len = 0;
  return rc;
}

/* Decodes the queued outgoing messages into out[] (at most max) and empties the queue. */
static int drain_tx(ow_client *c, ow_msg *out, int max, uint8_t *copy, size_t copycap) {
  ow_buf *q = ow_client__txq(c);
  assert_true(q->len <= copycap);
  memcpy(copy, q->data, q->len);
  size_t n = q->len, off = 0;
  q->len = 0;
  int k = 0;
  while (off < n) {
    size_t used;
    char err[128];
    assert_true(k < max);
    int rc = ow_proto_decode(copy + off, n - off, &used, &out[k], err, sizeof err);
    if (rc) fail_msg("queued message: %s", err);
    off += used;
    k++;
  }
  return k;
}

/* A context and one client whose connection is "open" without a socket (client_int.h). */
static ow_client *open_client(ow_client_ctx **ctx, rec *r) {
  assert_int_equal(ow_client_ctx_create(NULL, ctx), 0);
  ow_client *c = ow_client_create(*ctx, &CB, r);
  ow_client__test_open(c);
  return c;
}

/* ---- poses -------------------------------------------------------------------------------------- */

static double angle_deg(const float a[4], const float b[4]) {
  double d = 0;
  for (int i = 0; i < 4; i++) d += (double)a[i] * b[i];
  d = fabs(d);
  if (d > 1) d = 1;
  return 2 * acos(d) * 180 / M_PI;
}

static void test_pose_build(void **state) {
  (void)state;
  float root[3] = {1234.5678f, 1.5f, -20000.25f};
  float yaw[4] = {0, sinf(0.3f), 0, cosf(0.3f)};
  ow_client_bone bones[4] = {
      {{0, 1.6f, 0.05f}, {0.1f, 0.2f, 0.0f, 0.97f}},
      {{-0.3f, 1.2f, 0.3f}, {0, 0, 0.7071f, 0.7071f}},
      {{0.3f, 1.2f, 0.3f}, {0.5f, -0.5f, 0.5f, -0.5f}},
      {{0.0f, 0.9f, 0.0f}, {0, 0, 0, 2}}, /* not normalized: the builder normalizes */
  };
  ow_pose p;
  assert_int_equal(ow_client_pose_build(&p, root, yaw, 7, 1, bones), 0);
  assert_int_equal(p.nbones, 4);
  assert_int_equal(p.root[0], 1234568);
  assert_int_equal(p.root[2], -20000250);
  assert_int_equal(p.bone[0].pos[1], 1600);
  assert_int_equal(p.bone[1].pos[0], -300);

  /* Through the codec and back: rotations within the documented error. */
  ow_buf b;
  ow_buf_init(&b);
  size_t at = ow_proto_begin(&b, OW_MSG_POSE);
  ow_proto_put_pose(&b, &p);
  ow_proto_end(&b, at);
  ow_msg m;
  size_t used;
  assert_int_equal(ow_proto_decode(b.data, b.len, &used, &m, NULL, 0), 0);
  assert_int_equal(m.u.pose.nbones, 4);
  float q[4];
  ow_quat_unpack(m.u.pose.root_rot, q);
  assert_true(angle_deg(q, yaw) < 0.25);
  for (int i = 0; i < 3; i++) {
    float n[4];
    double s = 0;
    for (int k = 0; k < 4; k++) s += (double)bones[i].rot[k] * bones[i].rot[k];
    for (int k = 0; k < 4; k++) n[k] = (float)(bones[i].rot[k] / sqrt(s));
    ow_quat_unpack(m.u.pose.bone[i].rot, q);
    assert_true(angle_deg(q, n) < 0.25);
  }
  ow_buf_deinit(&b);

  /* Only the head: one bone. No bones at all: bones may be NULL. */
  assert_int_equal(ow_client_pose_build(&p, root, yaw, 1, 0, bones), 0);
  assert_int_equal(p.nbones, 1);
  assert_int_equal(ow_client_pose_build(&p, root, yaw, 0, 0, NULL), 0);
  assert_int_equal(p.nbones, 0);

  /* Refusals: nothing is clamped or guessed. */
  ow_client_bone far = {{40.0f, 0, 0}, {0, 0, 0, 1}};
  assert_int_equal(ow_client_pose_build(&p, root, yaw, 1, 0, &far), OW_E_OUT_OF_BOUNDS);
  ow_client_bone edge = {{32.767f, -32.767f, 0}, {0, 0, 0, 1}};
  assert_int_equal(ow_client_pose_build(&p, root, yaw, 1, 0, &edge), 0);
  ow_client_bone nan_bone = {{NAN, 0, 0}, {0, 0, 0, 1}};
  assert_int_equal(ow_client_pose_build(&p, root, yaw, 1, 0, &nan_bone), OW_E_OUT_OF_BOUNDS);
  float zero[4] = {0, 0, 0, 0};
  assert_int_equal(ow_client_pose_build(&p, root, zero, 0, 0, NULL), OW_E_INVAL);
  float inf_root[3] = {INFINITY, 0, 0};
  assert_int_equal(ow_client_pose_build(&p, inf_root, yaw, 0, 0, NULL), OW_E_OUT_OF_BOUNDS);
  assert_int_equal(ow_client_pose_build(&p, root, yaw, 8, 0, bones), OW_E_INVAL);
  assert_int_equal(ow_client_pose_build(&p, root, yaw, 0, 9, bones), OW_E_INVAL);
  assert_int_equal(ow_client_pose_build(&p, root, yaw, 1, 0, NULL), OW_E_INVAL);
}

/* Poses are latest-value-wins: only the last one set waits for the socket. */
static void test_pose_coalescing(void **state) {
  (void)state;
  ow_client_ctx *ctx;
  assert_int_equal(ow_client_ctx_create(NULL, &ctx), 0);
  rec r = {0};
  ow_client *c = ow_client_create(ctx, &CB, &r);
  ow_pose p;
  float root[3] = {0, 0, 0}, id[4] = {0, 0, 0, 1};
  assert_int_equal(ow_client_pose_build(&p, root, id, 0, 0, NULL), 0);
  assert_int_equal(ow_client_pose(c, &p), -ENOTCONN);
  ow_client__test_open(c);
  for (int i = 0; i < 5; i++) {
    root[0] = (float)i;
    assert_int_equal(ow_client_pose_build(&p, root, id, 0, 0, NULL), 0);
    assert_int_equal(ow_client_pose(c, &p), 0);
  }
  p.mask = 9;
  assert_int_equal(ow_client_pose(c, &p), OW_E_INVAL);
  ow_client_stats st;
  ow_client_stats_get(c, &st);
  assert_int_equal(st.poses_coalesced, 4);
  ow_buf b;
  ow_buf_init(&b);
  assert_true(ow_client__take_pose(c, &b));
  assert_false(ow_client__take_pose(c, &b));
  ow_msg m;
  size_t used;
  assert_int_equal(ow_proto_decode(b.data, b.len, &used, &m, NULL, 0), 0);
  assert_int_equal(m.u.pose.root[0], 4000);
  assert_int_equal(ow_client__txq(c)->len, 0); /* poses never enter the message queue */
  ow_buf_deinit(&b);
  ow_client_ctx_destroy(ctx);
}

/* ---- actions ------------------------------------------------------------------------------------ */

static void test_actions_seq_and_resend(void **state) {
  (void)state;
  ow_client_ctx *ctx;
  rec r = {0};
  ow_client *c = open_client(&ctx, &r);
  assert_int_equal(r.opens, 1);
  ow_buf in;
  ow_buf_init(&in);
  ow_msg out[16];
  uint8_t copy[4096];
  ow_action mv = {.type = OW_ACT_MOVE, .target = 70};
  mv.xf.rot[3] = 1;

  /* No session, no numbering. */
  assert_int_equal(ow_client_action(c, &mv, NULL), OW_E_STATE);

  int login = ow_client_login(c, "alice", "password1");
  assert_true(login > 0);
  assert_int_equal(ow_client_login(c, "al", "password1"), OW_E_BAD_NAME);
  assert_int_equal(ow_client_login(c, "alice", "short"), OW_E_BAD_NAME);
  assert_int_equal(ow_client_chat(c, "bad \xff utf8"), OW_E_INVAL);
  char longtext[600];
  memset(longtext, 'x', sizeof longtext - 1);
  longtext[sizeof longtext - 1] = 0;
  assert_int_equal(ow_client_chat(c, longtext), OW_E_TEXT_TOO_LONG);
  assert_int_equal(drain_tx(c, out, 16, copy, sizeof copy), 1);
  assert_int_equal(out[0].type, OW_MSG_LOGIN);
  assert_int_equal(out[0].req, (uint32_t)login);

  m_session(&in, (uint32_t)login, 41, false);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(r.sessions, 1);
  ow_client_session s;
  assert_true(ow_client_session_get(c, &s));
  assert_int_equal(s.last_seq, 41);

  /* Before JOINED: numbered and held, not sent (the server would answer OW_E_STATE). */
  uint64_t seq;
  int req42 = ow_client_action(c, &mv, &seq);
  assert_true(req42 > 0);
  assert_int_equal(seq, 42);
  assert_int_equal(ow_client__txq(c)->len, 0);
  assert_int_equal(ow_client_unconfirmed(c), 1);

  int join = ow_client_join(c);
  assert_int_equal(drain_tx(c, out, 16, copy, sizeof copy), 1);
  m_joined(&in, (uint32_t)join);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(r.joined, 1);
  const ow_client_world *w = ow_client_world_get(c);
  assert_non_null(w);
  assert_int_equal(w->ntypes, 3);
  assert_int_equal(ow_client_world_type(w, "chest"), 10);
  assert_int_equal(ow_client_world_recipe(w, "planks"), 0);
  assert_int_equal(ow_client_world_kind(w, 4), 1);
  assert_string_equal(w->keys[1], "label");
  /* JOINED released the held action. */
  assert_int_equal(drain_tx(c, out, 16, copy, sizeof copy), 1);
  assert_int_equal(out[0].type, OW_MSG_ACTION);
  assert_int_equal(out[0].u.action.seq, 42);
  assert_int_equal(out[0].req, (uint32_t)req42);

  /* In the world: sent at once, numbers strictly growing. */
  int req43 = ow_client_action(c, &mv, &seq);
  assert_int_equal(seq, 43);
  assert_int_equal(drain_tx(c, out, 16, copy, sizeof copy), 1);
  assert_int_equal(out[0].u.action.seq, 43);
  assert_int_equal(ow_client_unconfirmed(c), 2);

  m_applied(&in, (uint32_t)req42, 42, 0, 7, false);
  ow_proto_put_durable(&in, 7, 0, (uint64_t[]){42}, 1);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(r.applied, 1);
  assert_int_equal(r.durables, 1);
  assert_int_equal(ow_client_unconfirmed(c), 1); /* 43 is still open */

  /* A DURABLE that fails (full disk) confirms nothing. */
  m_applied(&in, (uint32_t)req43, 43, 0, 8, false);
  ow_proto_put_durable(&in, 8, -28, (uint64_t[]){43}, 1);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(ow_client_unconfirmed(c), 1);

  /* Connection lost; actions issued while away are numbered and held. */
  ow_client__test_close(c);
  assert_int_equal(r.closes, 1);
  assert_false(ow_client_connected(c));
  assert_int_equal(ow_client_join(c), -ENOTCONN);
  int req44 = ow_client_action(c, &mv, &seq);
  assert_int_equal(seq, 44);

  /* Reconnect, RESUME: the server applied up to 43. Nothing goes out before JOINED. */
  ow_client__test_open(c);
  assert_true(ow_client_resume(c, s.token) > 0);
  assert_int_equal(drain_tx(c, out, 16, copy, sizeof copy), 1);
  assert_int_equal(out[0].type, OW_MSG_RESUME);
  assert_memory_equal(out[0].u.resume.token, s.token, OW_TOKEN_LEN);
  m_session(&in, 0, 43, true);
  assert_int_equal(feed(c, &in), 0);
  int req45 = ow_client_action(c, &mv, &seq);
  assert_int_equal(seq, 45);
  assert_int_equal(ow_client__txq(c)->len, 0);
  m_joined(&in, 0);
  assert_int_equal(feed(c, &in), 0);
  /* Every unconfirmed action, in order, with its original number and request id. */
  assert_int_equal(drain_tx(c, out, 16, copy, sizeof copy), 3);
  assert_int_equal(out[0].u.action.seq, 43);
  assert_int_equal(out[0].req, (uint32_t)req43);
  assert_int_equal(out[1].u.action.seq, 44);
  assert_int_equal(out[1].req, (uint32_t)req44);
  assert_int_equal(out[2].u.action.seq, 45);
  assert_int_equal(ow_client_unconfirmed(c), 3);

  /* 43 comes back replayed; 44 is refused by the rate limit (never applied, not held); 45 is
   * refused by the world and its frame's DURABLE does not list it: the frame rule confirms it. */
  m_applied(&in, (uint32_t)req43, 43, 0, 8, true);
  assert_int_equal(feed(c, &in), 0);
  assert_true(r.last_replayed);
  assert_int_equal(r.last_applied_seq, 43);
  m_error(&in, (uint32_t)req44, OW_E_RATE);
  m_applied(&in, (uint32_t)req45, 45, OW_E_NOT_ENOUGH, 9, false);
  assert_int_equal(feed(c, &in), 0);
  assert_false(r.last_replayed);
  assert_int_equal(r.last_error, OW_E_RATE);
  assert_int_equal(r.last_error_req, (uint32_t)req44);
  assert_int_equal(ow_client_unconfirmed(c), 2);
  ow_proto_put_durable(&in, 9, 0, (uint64_t[]){43}, 1);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(ow_client_unconfirmed(c), 0);

  /* A fresh LOGIN (not a resume) starts a new numbering; held actions of the old session are
   * reported lost instead of being re-sent under the new one. */
  int req46 = ow_client_action(c, &mv, &seq);
  assert_int_equal(seq, 46);
  drain_tx(c, out, 16, copy, sizeof copy);
  r.errors = 0;
  m_session(&in, 0, 0, false);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(r.errors, 1);
  assert_int_equal(r.last_error, OW_E_NO_SESSION);
  assert_int_equal(r.last_error_req, (uint32_t)req46);
  assert_int_equal(ow_client_unconfirmed(c), 0);
  ow_client_action(c, &mv, &seq);
  assert_int_equal(seq, 1);

  /* The cap on unconfirmed actions. */
  int rc = 0, n = 0;
  while ((rc = ow_client_action(c, &mv, NULL)) > 0) n++;
  assert_int_equal(rc, -ENOBUFS);
  assert_int_equal(ow_client_unconfirmed(c), 1024);
  (void)n;

  ow_buf_deinit(&in);
  ow_client_ctx_destroy(ctx);
}

/* The send queue is bounded. */
static void test_send_queue_limit(void **state) {
  (void)state;
  ow_client_ctx *ctx;
  rec r = {0};
  ow_client *c = open_client(&ctx, &r);
  ow_client_set_limits(c, 0, 1000);
  int n = 0, rc;
  while ((rc = ow_client_ping(c, 1)) > 0) n++;
  assert_int_equal(rc, -ENOBUFS);
  assert_int_equal(n, 1000 / 15); /* PING is 15 bytes on the wire */
  assert_true(ow_client__txq(c)->len <= 1000);
  ow_client_ctx_destroy(ctx);
}

/* ---- snapshots ---------------------------------------------------------------------------------- */

static void sum_ids(void *ud, const ow_wire_entity *e) { *(uint64_t *)ud += e->id; }

static void test_snapshots(void **state) {
  (void)state;
  ow_client_ctx *ctx;
  rec r = {0};
  ow_client *c = open_client(&ctx, &r);
  ow_buf in;
  ow_buf_init(&in);
  ow_msg out[16];
  uint8_t copy[4096];

  /* Full state 1 in two chunks: applied chunk by chunk, acknowledged after the last. */
  ow_wire_entity a[3] = {ent(1, 10, "first"), ent(2, 20, NULL), ent(3, 30, "third")};
  m_snapshot(&in, 1, 0, true, a, 2, NULL, 0);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(ow_client_entity_count(c), 2);
  assert_int_equal(ow_client__txq(c)->len, 0);
  assert_int_equal(r.snapshots, 0);
  m_snapshot(&in, 1, 0, false, a + 2, 1, NULL, 0);
  /* Overwrite the input afterwards: the table must hold its own copy of string properties. */
  assert_int_equal(ow_client__rx(c, in.data, in.len, true, true, true), 0);
  memset(in.data, 0x55, in.len);
  in.len = 0;
  assert_int_equal(ow_client_entity_count(c), 3);
  assert_int_equal(r.snapshots, 1);
  assert_int_equal(r.last_snapshot_base, 0);
  assert_int_equal(drain_tx(c, out, 16, copy, sizeof copy), 1);
  assert_int_equal(out[0].type, OW_MSG_ACK);
  assert_int_equal(out[0].u.ack.snapshot, 1);
  const ow_wire_entity *e3 = ow_client_entity(c, 3);
  assert_non_null(e3);
  assert_int_equal(e3->nprops, 2);
  assert_int_equal(e3->props[0].v.s.n, 5);
  assert_memory_equal(e3->props[0].v.s.p, "third", 5);
  assert_int_equal(e3->props[1].v.i, -5);

  /* Delta 2 against 1: 2 changes, 3 goes, 4 arrives. */
  ow_wire_entity d[2] = {ent(2, 19, NULL), ent(4, 40, NULL)};
  m_snapshot(&in, 2, 1, false, d, 2, (uint64_t[]){3}, 1);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(ow_client_entity_count(c), 3);
  assert_null(ow_client_entity(c, 3));
  assert_int_equal(ow_client_entity(c, 2)->hp, 19);
  assert_int_equal(ow_client_entity(c, 1)->hp, 10);
  assert_int_equal(r.removed, 1);
  assert_int_equal(drain_tx(c, out, 16, copy, sizeof copy), 1);
  assert_int_equal(out[0].u.ack.snapshot, 2);
  uint64_t sum = 0;
  ow_client_entity_each(c, sum_ids, &sum);
  assert_int_equal(sum, 1 + 2 + 4);

  /* Full state 3 lists only 4 and 5: 1 and 2 are dropped, but only after its last chunk. */
  ow_wire_entity f[2] = {ent(4, 41, NULL), ent(5, 50, "five")};
  m_snapshot(&in, 3, 0, true, f, 1, NULL, 0);
  assert_int_equal(feed(c, &in), 0);
  assert_non_null(ow_client_entity(c, 1));
  m_snapshot(&in, 3, 0, false, f + 1, 1, NULL, 0);
  assert_int_equal(feed(c, &in), 0);
  assert_null(ow_client_entity(c, 1));
  assert_null(ow_client_entity(c, 2));
  assert_int_equal(ow_client_entity(c, 4)->hp, 41);
  assert_int_equal(ow_client_entity_count(c), 2);
  assert_int_equal(r.removed, 3);
  drain_tx(c, out, 16, copy, sizeof copy);

  /* A full state abandoned after its first chunk (the next snapshot starts) is never
   * acknowledged; the delta that follows is against 3, which never had 6. */
  ow_wire_entity g = ent(6, 60, NULL);
  m_snapshot(&in, 4, 0, true, &g, 1, NULL, 0);
  ow_wire_entity h = ent(7, 70, NULL);
  m_snapshot(&in, 5, 3, false, &h, 1, NULL, 0);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(ow_client_entity_count(c), 3);
  assert_null(ow_client_entity(c, 6));
  assert_non_null(ow_client_entity(c, 7));
  assert_int_equal(drain_tx(c, out, 16, copy, sizeof copy), 1);
  assert_int_equal(out[0].u.ack.snapshot, 5);

  /* Deltas are against their base snapshot, not against what the client applied since (Quake
   * III). Full 10 = {1, 2}; delta 11 (base 10) adds 3; the server has not seen ACK 11 yet, so
   * delta 12 is against 10 again and does not mention 3: 3 is gone. */
  ow_wire_entity f10[2] = {ent(1, 10, "one"), ent(2, 20, NULL)};
  m_snapshot(&in, 10, 0, false, f10, 2, NULL, 0);
  ow_wire_entity n3 = ent(3, 30, NULL);
  m_snapshot(&in, 11, 10, false, &n3, 1, NULL, 0);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(ow_client_entity_count(c), 3);
  ow_wire_entity n2 = ent(2, 21, NULL);
  m_snapshot(&in, 12, 10, false, &n2, 1, NULL, 0);
  assert_int_equal(feed(c, &in), 0);
  assert_null(ow_client_entity(c, 3));
  assert_int_equal(ow_client_entity_count(c), 2);
  /* Delta 13 (base 10) removes 1; delta 14 (base 10 still) does not list 1, which is in 10 and
   * unchanged: it is back, with the state the client kept. */
  m_snapshot(&in, 13, 10, false, NULL, 0, (uint64_t[]){1}, 1);
  assert_int_equal(feed(c, &in), 0);
  assert_null(ow_client_entity(c, 1));
  int entities_before = r.entities;
  m_snapshot(&in, 14, 10, false, &n2, 1, NULL, 0);
  assert_int_equal(feed(c, &in), 0);
  assert_non_null(ow_client_entity(c, 1));
  assert_int_equal(ow_client_entity(c, 1)->hp, 10);
  assert_memory_equal(ow_client_entity(c, 1)->props[0].v.s.p, "one", 3);
  assert_int_equal(r.entities, entities_before + 2); /* 2 listed, 1 revived */
  /* Once the server moves its base past every snapshot that listed 1, it is freed. */
  m_snapshot(&in, 15, 14, false, NULL, 0, (uint64_t[]){1}, 1);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(ow_client__stored(c), 2);
  m_snapshot(&in, 16, 15, false, NULL, 0, NULL, 0);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(ow_client__stored(c), 1);
  assert_int_equal(ow_client_entity_count(c), 1);
  drain_tx(c, out, 16, copy, sizeof copy);

  /* POSES: one callback per avatar. */
  size_t at = ow_proto_begin(&in, OW_MSG_POSES);
  ow_buf_u32(&in, 99);
  ow_buf_u16(&in, 2);
  ow_pose p;
  float root[3] = {1, 2, 3}, q[4] = {0, 0, 0, 1};
  ow_client_pose_build(&p, root, q, 0, 0, NULL);
  ow_buf_u64(&in, 70);
  ow_proto_put_pose(&in, &p);
  ow_buf_u64(&in, 71);
  ow_proto_put_pose(&in, &p);
  ow_proto_end(&in, at);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(r.poses, 2);
  assert_int_equal(r.last_pose_avatar, 71);

  /* A malformed snapshot (trailing byte) changes nothing and closes the connection. */
  int before = (int)ow_client_entity_count(c);
  at = ow_proto_begin(&in, OW_MSG_SNAPSHOT);
  ow_buf_u32(&in, 6), ow_buf_u32(&in, 0), ow_buf_u64(&in, 1), ow_buf_u8(&in, 0);
  ow_buf_u16(&in, 1);
  ow_proto_put_entity(&in, &h);
  ow_buf_u16(&in, 0);
  ow_buf_u8(&in, 0);
  ow_proto_end(&in, at);
  assert_int_equal(feed(c, &in), OW_E_PROTO);
  assert_int_equal(r.last_error, OW_E_PROTO);
  assert_int_equal((int)ow_client_entity_count(c), before);
  assert_int_equal(r.closes, 1);

  ow_buf_deinit(&in);
  ow_client_ctx_destroy(ctx);
}

/* ---- protocol version 2: compact POSES ---------------------------------------------------------- */

/* A version 2 POSES entry: the slot (bound with the avatar id when avatar != 0), the pose. */
static void put_entry2(ow_buf *b, uint16_t slot, uint64_t avatar, const ow_pose *p, int32_t bx,
                       int32_t bz) {
  ow_buf_u16(b, (uint16_t)(avatar ? 0x8000u | slot : slot));
  if (avatar) ow_buf_u64(b, avatar);
  ow_pose2_put(b, p, 256, bx, bz);
}

static void test_poses_v2(void **state) {
  (void)state;
  ow_client_ctx *ctx;
  rec r = {0};
  ow_client *c = open_client(&ctx, &r);
  ow_buf in;
  ow_buf_init(&in);
  ow_msg out[4];
  uint8_t copy[4096];

  /* HELLO asks for the newest version; other versions than 1 and 2 are not sent. */
  assert_true(ow_client_hello(c, "test") > 0);
  assert_int_equal(drain_tx(c, out, 4, copy, sizeof copy), 1);
  assert_int_equal(out[0].u.hello.version, 2);
  assert_int_equal(ow_client_hello_version(c, "test", 3), OW_E_INVAL);
  assert_int_equal(ow_client_hello_version(c, "test", 0), OW_E_INVAL);
  assert_true(ow_client_hello_version(c, "test", 1) > 0);
  drain_tx(c, out, 4, copy, sizeof copy);

  ow_msg m = {.type = OW_MSG_WELCOME, .req = 1};
  m.u.welcome.version = 2;
  m.u.welcome.max_message = 8192;
  m.u.welcome.server_name = S("mock");
  ow_proto_encode(&in, &m);
  m_joined(&in, 2);
  assert_int_equal(feed(c, &in), 0);

  /* Two avatars bound to slots 0 and 1 around base cell (1, -2), then slot 0 alone. */
  ow_pose p;
  float root[3] = {300.5f, 1.25f, -400.75f}, q[4] = {0, 0, 0, 1};
  ow_client_pose_build(&p, root, q, 0, 0, NULL);
  size_t at = ow_proto_begin(&in, OW_MSG_POSES);
  ow_buf_u32(&in, 5), ow_buf_i32(&in, 1), ow_buf_i32(&in, -2), ow_buf_u16(&in, 2);
  put_entry2(&in, 0, 70, &p, 1, -2);
  put_entry2(&in, 1, 71, &p, 1, -2);
  ow_proto_end(&in, at);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(r.poses, 2);
  assert_int_equal(r.last_pose_avatar, 71);
  at = ow_proto_begin(&in, OW_MSG_POSES);
  ow_buf_u32(&in, 6), ow_buf_i32(&in, 1), ow_buf_i32(&in, -2), ow_buf_u16(&in, 1);
  put_entry2(&in, 0, 0, &p, 1, -2);
  ow_proto_end(&in, at);
  assert_int_equal(feed(c, &in), 0);
  assert_int_equal(r.poses, 3);
  assert_int_equal(r.last_pose_avatar, 70);
  assert_true(labs((long)r.last_pose_root[0] - 300500) <= 2);
  assert_int_equal(r.last_pose_root[1], 1250);
  assert_true(labs((long)r.last_pose_root[2] + 400750) <= 2);

  /* A slot never bound: a protocol error, nothing delivered, the connection closes. */
  at = ow_proto_begin(&in, OW_MSG_POSES);
  ow_buf_u32(&in, 7), ow_buf_i32(&in, 1), ow_buf_i32(&in, -2), ow_buf_u16(&in, 2);
  put_entry2(&in, 0, 0, &p, 1, -2);
  put_entry2(&in, 9, 0, &p, 1, -2);
  ow_proto_end(&in, at);
  assert_int_equal(feed(c, &in), OW_E_PROTO);
  assert_int_equal(r.poses, 3);
  assert_int_equal(r.last_error, OW_E_PROTO);
  assert_int_equal(r.closes, 1);

  ow_buf_deinit(&in);
  ow_client_ctx_destroy(ctx);
}

/* ---- fragments ---------------------------------------------------------------------------------- */

static void test_fragments(void **state) {
  (void)state;
  ow_client_ctx *ctx;
  rec r = {0};
  ow_client *c = open_client(&ctx, &r);
  ow_buf in;
  ow_buf_init(&in);

  /* WELCOME + OK + EVENT in one WebSocket message, cut in the middle of headers and fields. */
  ow_msg m = {.type = OW_MSG_WELCOME, .req = 1};
  m.u.welcome.version = 1;
  m.u.welcome.max_message = 8192;
  m.u.welcome.server_name = S("mock");
  ow_proto_encode(&in, &m);
  m = (ow_msg){.type = OW_MSG_OK, .req = 9};
  ow_proto_encode(&in, &m);
  m = (ow_msg){.type = OW_MSG_EVENT};
  m.u.event.kind = OW_EVENT_CHAT;
  m.u.event.text = S("hello there");
  ow_proto_encode(&in, &m);
  size_t cut1 = 2, cut2 = in.len - 20;
  assert_int_equal(ow_client__rx(c, in.data, cut1, true, false, true), 0);
  assert_int_equal(r.welcomes, 0);
  assert_int_equal(ow_client__rx(c, in.data + cut1, cut2 - cut1, false, false, true), 0);
  assert_int_equal(ow_client__rx(c, in.data + cut2, in.len - cut2, false, true, true), 0);
  assert_int_equal(r.welcomes, 1);
  assert_int_equal(r.welcome_max, 8192);
  assert_int_equal(r.oks, 1);
  assert_int_equal(r.last_ok, 9);
  assert_int_equal(r.events, 1);
  ow_client_stats st;
  ow_client_stats_get(c, &st);
  assert_int_equal(st.bytes_down, in.len);
  assert_int_equal(st.msgs_down, 3);
  assert_int_equal(st.ws_down, 1);
  in.len = 0;

  /* A message cut inside a protocol message at its end is malformed. */
  m = (ow_msg){.type = OW_MSG_OK, .req = 3};
  ow_proto_encode(&in, &m);
  assert_int_equal(ow_client__rx(c, in.data, in.len - 1, true, true, true), OW_E_PROTO);
  assert_int_equal(r.closes, 1);
  in.len = 0;

  /* The reassembly limit: 3 fragments of 600 bytes against a 1 KiB cap. */
  ow_client__test_open(c);
  ow_client_set_limits(c, 1024, 0);
  uint8_t junk[600];
  memset(junk, 0, sizeof junk);
  r.errors = 0;
  assert_int_equal(ow_client__rx(c, junk, 600, true, false, true), 0);
  assert_int_equal(ow_client__rx(c, junk, 600, false, false, true), OW_E_TOO_LARGE);
  assert_int_equal(r.last_error, OW_E_TOO_LARGE);
  assert_int_equal(r.closes, 2);
  assert_int_equal(r.errors, 1);

  /* A text message is a protocol error. */
  ow_client__test_open(c);
  assert_int_equal(ow_client__rx(c, "hi", 2, true, true, false), OW_E_PROTO);
  assert_int_equal(r.closes, 3);

  /* A client message type from the server is refused. */
  ow_client__test_open(c);
  m = (ow_msg){.type = OW_MSG_JOIN, .req = 3};
  ow_proto_encode(&in, &m);
  assert_int_equal(feed(c, &in), OW_E_PROTO);
  assert_int_equal(r.closes, 4);

  /* A callback destroying its own client during a dispatch is safe. */
  ow_client__test_open(c);
  r.destroy_on_close = true;
  ow_client__test_close(c);
  assert_int_equal(r.closes, 5);

  ow_buf_deinit(&in);
  ow_client_ctx_destroy(ctx);
}

/* ---- the network -------------------------------------------------------------------------------- */

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t l = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &l);
  close(fd);
  return ntohs(a.sin_port);
}

static void test_closed_port(void **state) {
  (void)state;
  ow_client_ctx *ctx;
  assert_int_equal(ow_client_ctx_create(NULL, &ctx), 0);
  int port = free_port();
  rec r = {0}, r2 = {0};
  ow_client *c = ow_client_create(ctx, &CB, &r);
  ow_client *c2 = ow_client_create(ctx, &CB, &r2);
  r2.destroy_on_close = true;
  assert_int_equal(ow_client_connect(c, NULL, port, NULL), OW_E_INVAL);
  assert_int_equal(ow_client_connect(c, "127.0.0.1", 0, NULL), OW_E_INVAL);
  assert_int_equal(ow_client_connect(c, "127.0.0.1", port, NULL), 0);
  assert_int_equal(ow_client_connect(c, "127.0.0.1", port, NULL), OW_E_STATE);
  assert_int_equal(ow_client_connect(c2, "127.0.0.1", port, NULL), 0);
  assert_true(ow_client_hello(c, "test") > 0); /* queued while connecting */
  uint64_t t0 = ow_now_ns();
  while ((r.closes < 1 || r2.closes < 1) && ow_now_ns() - t0 < 10000000000ull)
    ow_client_ctx_service(ctx, 50);
  assert_int_equal(r.closes, 1);
  assert_int_equal(r.opens, 0);
  assert_int_equal(r.errors, 1);
  assert_int_equal(r.last_error, -ECONNREFUSED);
  assert_non_null(strstr(r.last_error_text, "127.0.0.1"));
  assert_int_equal(r2.closes, 1); /* and c2 destroyed itself in on_close */
  assert_false(ow_client_connected(c));

  /* The client can try again, and gets the same outcome once more. */
  assert_int_equal(ow_client_connect(c, "127.0.0.1", port, "/elsewhere"), 0);
  t0 = ow_now_ns();
  while (r.closes < 2 && ow_now_ns() - t0 < 10000000000ull) ow_client_ctx_service(ctx, 50);
  assert_int_equal(r.closes, 2);

  /* A service call with nothing to do returns after about its timeout. */
  t0 = ow_now_ns();
  ow_client_ctx_service(ctx, 30);
  uint64_t dt = ow_now_ns() - t0;
  assert_true(dt < 1000000000ull);

  /* Destroying a connecting client, then the context, with callbacks pending. */
  assert_int_equal(ow_client_connect(c, "127.0.0.1", port, NULL), 0);
  ow_client_destroy(c);
  ow_client_ctx_service(ctx, 10);
  ow_client *c3 = ow_client_create(ctx, &CB, &r);
  assert_int_equal(ow_client_connect(c3, "127.0.0.1", port, NULL), 0);
  ow_client_ctx_destroy(ctx);
}

/* A minimal server, on its own lws context and thread: answers the session flow, fragments its
 * WELCOME over two WebSocket frames, splits a snapshot over two WebSocket messages, and sends one
 * oversized message when asked with CHAT "big". */

typedef struct mock_out {
  uint8_t *p; /* LWS_PRE + n */
  size_t n;
  int flags;
  struct mock_out *next;
} mock_out;

typedef struct mock_conn {
  mock_out *head, *tail;
  bool close_after;
} mock_conn;

static atomic_int mock_stop, mock_woken, mock_bad;
static struct lws_context *_Atomic mock_ctx;
static atomic_int mock_port;
static atomic_int mock_actions, mock_acks, mock_poses, mock_byes;

static void mock_queue(struct lws *wsi, mock_conn *mc, const void *p, size_t n, int flags) {
  mock_out *o = calloc(1, sizeof *o);
  o->p = malloc(LWS_PRE + n);
  memcpy(o->p + LWS_PRE, p, n);
  o->n = n;
  o->flags = flags;
  if (mc->tail) mc->tail->next = o;
  else mc->head = o;
  mc->tail = o;
  lws_callback_on_writable(wsi);
}

static void mock_send(struct lws *wsi, mock_conn *mc, ow_buf *b) {
  mock_queue(wsi, mc, b->data, b->len, LWS_WRITE_BINARY);
  b->len = 0;
}

static void mock_handle(struct lws *wsi, mock_conn *mc, const ow_msg *m) {
  ow_buf b;
  ow_buf_init(&b);
  switch (m->type) {
  case OW_MSG_HELLO: {
    ow_msg w = {.type = OW_MSG_WELCOME, .req = m->req};
    w.u.welcome.version = 1;
    w.u.welcome.tick_hz = 60;
    w.u.welcome.pose_hz = 30;
    w.u.welcome.max_message = 4096;
    w.u.welcome.server_name = S("mock");
    ow_proto_encode(&b, &w);
    /* Two WebSocket frames of one message: the client must reassemble. */
    size_t half = b.len / 2;
    mock_queue(wsi, mc, b.data, half, LWS_WRITE_BINARY | LWS_WRITE_NO_FIN);
    mock_queue(wsi, mc, b.data + half, b.len - half, LWS_WRITE_CONTINUATION);
    b.len = 0;
    break;
  }
  case OW_MSG_LOGIN:
    m_session(&b, m->req, 0, false);
    mock_send(wsi, mc, &b);
    break;
  case OW_MSG_JOIN: {
    m_joined(&b, m->req);
    ow_wire_entity e[2] = {ent(1, 10, "one"), ent(2, 20, NULL)};
    m_snapshot(&b, 1, 0, true, e, 1, NULL, 0);
    mock_send(wsi, mc, &b);
    m_snapshot(&b, 1, 0, false, e + 1, 1, NULL, 0);
    mock_send(wsi, mc, &b);
    break;
  }
  case OW_MSG_ACTION:
    atomic_fetch_add(&mock_actions, 1);
    m_applied(&b, m->req, m->u.action.seq, 0, 5, false);
    ow_proto_put_durable(&b, 5, 0, (uint64_t[]){m->u.action.seq}, 1);
    mock_send(wsi, mc, &b);
    break;
  case OW_MSG_ACK: atomic_fetch_add(&mock_acks, 1); break;
  case OW_MSG_POSE: atomic_fetch_add(&mock_poses, 1); break;
  case OW_MSG_PING: {
    ow_msg p = {.type = OW_MSG_PONG, .req = m->req};
    p.u.pong.client_time = m->u.ping.client_time;
    p.u.pong.server_time_us = 1;
    ow_proto_encode(&b, &p);
    mock_send(wsi, mc, &b);
    break;
  }
  case OW_MSG_CHAT: {
    /* "big": 10 000 OK messages (70 000 bytes) in one WebSocket message, which lws hands to the
     * client in several pieces: well-formed, and above the client's cap if it set one. */
    if (m->u.chat.text.n == 3 && !memcmp(m->u.chat.text.p, "big", 3)) {
      ow_msg ok = {.type = OW_MSG_OK, .req = 1};
      for (int i = 0; i < 10000; i++) ow_proto_encode(&b, &ok);
      mock_send(wsi, mc, &b);
    }
    break;
  }
  case OW_MSG_LOGOUT: {
    ow_msg ok = {.type = OW_MSG_OK, .req = m->req};
    ow_proto_encode(&b, &ok);
    ow_msg bye = {.type = OW_MSG_SERVER_BYE};
    bye.u.bye.reason = OW_BYE_NORMAL;
    bye.u.bye.text = S("bye");
    ow_proto_encode(&b, &bye);
    mock_send(wsi, mc, &b);
    mc->close_after = true;
    break;
  }
  case OW_MSG_BYE: atomic_fetch_add(&mock_byes, 1); break;
  default: break;
  }
  ow_buf_deinit(&b);
}

static int mock_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  mock_conn *mc = user;
  switch (reason) {
  case LWS_CALLBACK_RECEIVE: {
    /* Client messages are small: lws hands each over whole. */
    /* cmocka's asserts are not for other threads: complain and drop the connection instead. */
    if (!lws_is_final_fragment(wsi) || !lws_frame_is_binary(wsi) || len > 4096) {
      fprintf(stderr, "mock: fragmented, text or oversized client message (%zu bytes)\n", len);
      atomic_fetch_add(&mock_bad, 1);
      return -1;
    }
    size_t off = 0;
    while (off < len) {
      ow_msg m;
      size_t used;
      char err[128];
      if (ow_proto_decode((uint8_t *)in + off, len - off, &used, &m, err, sizeof err)) {
        fprintf(stderr, "mock: %s\n", err);
        atomic_fetch_add(&mock_bad, 1);
        return -1;
      }
      mock_handle(wsi, mc, &m);
      off += used;
    }
    return 0;
  }
  case LWS_CALLBACK_SERVER_WRITEABLE: {
    mock_out *o = mc->head;
    if (!o) {
      if (mc->close_after) return -1;
      return 0;
    }
    mc->head = o->next;
    if (!mc->head) mc->tail = NULL;
    int n = lws_write(wsi, o->p + LWS_PRE, o->n, (enum lws_write_protocol)o->flags);
    free(o->p);
    free(o);
    if (n < 0) return -1;
    if (mc->head || mc->close_after) lws_callback_on_writable(wsi);
    return 0;
  }
  case LWS_CALLBACK_CLOSED:
    while (mc && mc->head) {
      mock_out *o = mc->head;
      mc->head = o->next;
      free(o->p);
      free(o);
    }
    return 0;
  default: return 0;
  }
}

static const struct lws_protocols mock_protocols[] = {
    {"otherworld.v1", mock_cb, sizeof(mock_conn), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *mock_main(void *arg) {
  (void)arg;
  struct lws_context_creation_info info;
  memset(&info, 0, sizeof info);
  info.port = 0;
  info.iface = "127.0.0.1";
  info.protocols = mock_protocols;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
  struct lws_context *ctx = lws_create_context(&info);
  if (!ctx) {
    atomic_store(&mock_port, -1);
    return NULL;
  }
  atomic_store(&mock_ctx, ctx);
  atomic_store(&mock_port, lws_get_vhost_listen_port(lws_get_vhost_by_name(ctx, "default")));
  while (!atomic_load(&mock_stop)) lws_service(ctx, 0);
  /* The main thread may still be calling lws_cancel_service() on this context. */
  while (!atomic_load(&mock_woken)) usleep(100);
  lws_context_destroy(ctx);
  return NULL;
}

typedef struct flow {
  rec r;
  int step;
} flow;

static void f_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  r_welcome(c, ud, req, w);
  assert_true(ow_client_login(c, "alice", "password1") > 0);
}
static void f_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  r_session(c, ud, req, s);
  assert_true(ow_client_join(c) > 0);
}
static void f_snapshot(ow_client *c, void *ud, uint32_t id, uint32_t base, uint64_t frame) {
  r_snapshot(c, ud, id, base, frame);
  ow_action mv = {.type = OW_ACT_MOVE, .target = 70};
  mv.xf.rot[3] = 1;
  for (int i = 0; i < 3; i++) assert_true(ow_client_action(c, &mv, NULL) > 0);
  ow_pose p;
  float root[3] = {0, 0, 0}, q[4] = {0, 0, 0, 1};
  ow_client_pose_build(&p, root, q, 0, 0, NULL);
  ow_client_pose(c, &p);
  assert_true(ow_client_ping(c, 12345) > 0);
}
static void f_pong(ow_client *c, void *ud, uint32_t req, uint64_t ct, uint64_t st) {
  r_pong(c, ud, req, ct, st);
  assert_true(ow_client_logout(c) > 0);
}

static void test_mock_server(void **state) {
  (void)state;
  pthread_t th;
  atomic_store(&mock_stop, 0);
  atomic_store(&mock_woken, 0);
  atomic_store(&mock_port, 0);
  assert_int_equal(pthread_create(&th, NULL, mock_main, NULL), 0);
  uint64_t t0 = ow_now_ns();
  while (!atomic_load(&mock_port) && ow_now_ns() - t0 < 5000000000ull) usleep(1000);
  if (atomic_load(&mock_port) < 0) fail_msg("mock server: lws_create_context failed");
  int port = atomic_load(&mock_port);
  assert_true(port > 0);

  ow_client_ctx *ctx;
  assert_int_equal(ow_client_ctx_create(NULL, &ctx), 0);
  ow_client_callbacks cb = CB;
  cb.on_welcome = f_welcome;
  cb.on_session = f_session;
  cb.on_snapshot = f_snapshot;
  cb.on_pong = f_pong;
  rec r = {0};
  ow_client *c = ow_client_create(ctx, &cb, &r);
  assert_int_equal(ow_client_connect(c, "127.0.0.1", port, NULL), 0);
  assert_true(ow_client_hello(c, "unit_client") > 0);
  t0 = ow_now_ns();
  while (r.closes == 0 && ow_now_ns() - t0 < 10000000000ull) ow_client_ctx_service(ctx, 20);
  assert_int_equal(r.opens, 1);
  assert_int_equal(r.welcomes, 1);
  assert_int_equal(r.sessions, 1);
  assert_int_equal(r.joined, 1);
  assert_int_equal(r.snapshots, 1);
  assert_int_equal(ow_client_entity_count(c), 2);
  assert_int_equal(r.applied, 3);
  assert_int_equal(r.durables, 3);
  assert_int_equal(ow_client_unconfirmed(c), 0);
  assert_int_equal(r.pongs, 1);
  assert_int_equal(r.oks, 1);
  assert_int_equal(r.byes, 1);
  assert_int_equal(r.last_bye, OW_BYE_NORMAL);
  assert_int_equal(r.errors, 0);
  assert_int_equal(r.closes, 1);
  assert_int_equal(atomic_load(&mock_actions), 3);
  assert_int_equal(atomic_load(&mock_acks), 1);
  assert_int_equal(atomic_load(&mock_poses), 1);
  ow_client_stats st;
  ow_client_stats_get(c, &st);
  assert_true(st.bytes_up > 0 && st.bytes_down > 0);
  /* Everything the client sent fitted in few WebSocket messages: queued messages are batched. */
  assert_true(st.ws_up < st.msgs_up);

  /* Second connection: a 70 000-byte server message arrives in pieces and is reassembled; then,
   * with a 64 KiB cap, the same message is refused and the connection closed. */
  memset(&r, 0, sizeof r);
  cb = CB;
  ow_client *c2 = ow_client_create(ctx, &cb, &r);
  assert_int_equal(ow_client_connect(c2, "127.0.0.1", port, NULL), 0);
  assert_true(ow_client_hello(c2, "unit_client") > 0);
  assert_true(ow_client_chat(c2, "big") > 0);
  t0 = ow_now_ns();
  while (r.oks < 10000 && r.closes == 0 && ow_now_ns() - t0 < 10000000000ull) ow_client_ctx_service(ctx, 20);
  assert_int_equal(r.oks, 10000);
  ow_client_set_limits(c2, 65536, 0);
  assert_true(ow_client_chat(c2, "big") > 0);
  while (r.closes == 0 && ow_now_ns() - t0 < 10000000000ull) ow_client_ctx_service(ctx, 20);
  assert_int_equal(r.welcomes, 1);
  assert_int_equal(r.oks, 10000);
  assert_int_equal(r.last_error, OW_E_TOO_LARGE);
  assert_int_equal(r.closes, 1);

  /* Third: a client that closes on its own sends BYE first. */
  memset(&r, 0, sizeof r);
  atomic_store(&mock_byes, 0);
  assert_int_equal(ow_client_connect(c2, "127.0.0.1", port, NULL), 0);
  assert_true(ow_client_hello(c2, "unit_client") > 0);
  t0 = ow_now_ns();
  while (r.welcomes == 0 && ow_now_ns() - t0 < 10000000000ull) ow_client_ctx_service(ctx, 20);
  /* With an idle open connection, a zero timeout does not wait (lws alone would sleep until the
   * next event), and a short one waits about that long. */
  for (int i = 0; i < 5; i++) {
    uint64_t t1 = ow_now_ns();
    ow_client_ctx_service(ctx, 0);
    assert_true(ow_now_ns() - t1 < 50000000ull);
    t1 = ow_now_ns();
    ow_client_ctx_service(ctx, 20);
    assert_true(ow_now_ns() - t1 < 500000000ull);
  }
  assert_int_equal(ow_client_close(c2), 0);
  while (r.closes == 0 && ow_now_ns() - t0 < 10000000000ull) ow_client_ctx_service(ctx, 20);
  assert_int_equal(r.closes, 1);
  assert_int_equal(r.errors, 0);
  t0 = ow_now_ns();
  while (atomic_load(&mock_byes) == 0 && ow_now_ns() - t0 < 2000000000ull) usleep(1000);
  assert_int_equal(atomic_load(&mock_byes), 1);

  ow_client_ctx_destroy(ctx);
  assert_int_equal(atomic_load(&mock_bad), 0);
  atomic_store(&mock_stop, 1);
  /* lws_service() sleeps until an event: wake it. */
  lws_cancel_service(atomic_load(&mock_ctx));
  atomic_store(&mock_woken, 1);
  pthread_join(th, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pose_build),        cmocka_unit_test(test_pose_coalescing),
      cmocka_unit_test(test_actions_seq_and_resend), cmocka_unit_test(test_send_queue_limit),
      cmocka_unit_test(test_snapshots),         cmocka_unit_test(test_fragments),
      cmocka_unit_test(test_poses_v2),
      cmocka_unit_test(test_closed_port),       cmocka_unit_test(test_mock_server),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
