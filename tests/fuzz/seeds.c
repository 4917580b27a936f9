/*
 * fuzz_seeds: writes the seed inputs of every fuzz target from the code's own encoders, into
 * DIR/<target>/seed-*. Messages are what the server and the client library encode; snapshots
 * come from a real zone (on a temporary store) and its confirmed-read mirror, as the server builds
 * them; the recovery seed is that store's contents. Run it, then minimize the corpus together with
 * what fuzzing found (tests/fuzz/README.md).
 *
 *   fuzz_seeds DIR
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "config/config.h"
#include "fuzz.h"
#include "proto/proto.h"
#include "server/replica.h"
#include "store/store.h"
#include "world_fixture.h"
#include "zone/zone.h"

static const char *out_dir;

static void write_seed(const char *target, const char *name, const void *p, size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", out_dir, target);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/%s/seed-%s", out_dir, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
    fprintf(stderr, "fuzz_seeds: %s: %s\n", path, strerror(errno));
    exit(1);
  }
}

static void write_buf(const char *target, const char *name, const ow_buf *b) {
  write_seed(target, name, b->data, b->len);
}

static ow_str S(const char *s) { return (ow_str){s, strlen(s)}; }

static void copy_file(const char *target, const char *name, const char *rel) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", OW_SOURCE_DIR, rel);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "fuzz_seeds: %s: %s\n", path, strerror(errno));
    exit(1);
  }
  ow_buf b;
  ow_buf_init(&b);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) ow_buf_put(&b, chunk, n);
  fclose(f);
  write_buf(target, name, &b);
  ow_buf_deinit(&b);
}

/* ---- fixture ids -------------------------------------------------------------------------------- */

typedef struct find_ctx {
  const ow_content *c;
  const char *type;
  ow_id found;
} find_ctx;

static void find_one(void *ud, const ow_entity *e) {
  find_ctx *x = ud;
  /* The fixture's own entities come after the seed world's: the newest of the type. */
  if (e->id > x->found && !strcmp(x->c->types[e->type].name, x->type)) x->found = e->id;
}

static ow_id fixture_id(const fuzz_world *fw, const char *type) {
  find_ctx x = {ow_world_content(fw->w), type, 0};
  ow_world_each(fw->w, find_one, &x);
  if (!x.found) {
    fprintf(stderr, "fuzz_seeds: no %s in the fixture\n", type);
    exit(1);
  }
  return x.found;
}

/* ---- client to server ------------------------------------------------------------------------- */

static void msg(ow_buf *b, uint8_t type, uint32_t req) {
  ow_msg m = {.type = type, .req = req};
  ow_proto_encode(b, &m);
}

/* One action as a version 2 frame record holds it: u16 length, then the action. */
static void framed(ow_buf *b, const ow_action *a) {
  ow_buf_u16(b, (uint16_t)ow_action_size(a));
  ow_action_encode(a, b);
}

static void action(ow_buf *b, uint32_t req, uint64_t seq, uint8_t type, uint16_t kind, ow_id target,
                   ow_id dest, uint32_t count, float x, float z) {
  ow_msg m = {.type = OW_MSG_ACTION, .req = req};
  m.u.action.seq = seq;
  ow_action *a = &m.u.action.action;
  a->type = type;
  a->kind = kind;
  a->target = target;
  a->dest = dest;
  a->count = count;
  ow_transform_identity(&a->xf);
  a->xf.pos[0] = x;
  a->xf.pos[2] = z;
  ow_proto_encode(b, &m);
}

static void pose(ow_buf *b, uint8_t mask, uint8_t ntrackers, float x, float z) {
  ow_msg m = {.type = OW_MSG_POSE};
  ow_pose *p = &m.u.pose;
  p->mask = mask;
  p->ntrackers = ntrackers;
  p->root[0] = ow_quant_mm(x);
  p->root[2] = ow_quant_mm(z);
  float q[4] = {0, 0.3826834f, 0, 0.9238795f};
  p->root_rot = ow_quat_pack(q);
  p->nbones = 0;
  for (int i = 0; i < 3; i++) p->nbones += (mask >> i) & 1;
  p->nbones += ntrackers;
  for (uint8_t i = 0; i < p->nbones; i++) {
    p->bone[i].pos[0] = (int16_t)(100 * i - 300);
    p->bone[i].pos[1] = 1600;
    p->bone[i].rot = ow_quat_pack(q);
  }
  ow_proto_encode(b, &m);
}

static void seeds_proto_server(void) {
  const char *T = "proto_server";
  fuzz_world fw;
  fuzz_world_make(&fw, fuzz_default_content());
  ow_content *c = fuzz_default_content();
  ow_id tree = fixture_id(&fw, "tree"), rock = fixture_id(&fw, "rock"), chest = fixture_id(&fw, "chest"),
        cart = fixture_id(&fw, "cart"), door = fixture_id(&fw, "door"), wall = fixture_id(&fw, "wall"),
        plank = fixture_id(&fw, "plank");
  /* A tree of the seed world, out of reach. */
  ow_id far_tree = 0;
  for (ow_id id = 1; id < tree; id++) {
    const ow_entity *e = ow_world_get(fw.w, id);
    if (e && !strcmp(c->types[e->type].name, "tree")) {
      far_tree = id;
      break;
    }
  }
  ow_buf b;
  ow_buf_init(&b);

  ow_msg m = {.type = OW_MSG_HELLO, .req = 1};
  m.u.hello.version = OW_PROTO_VERSION;
  m.u.hello.client = S("otherworld-c/1");
  ow_proto_encode(&b, &m);
  write_buf(T, "hello", &b);

  /* The pipelined start of a session, as the client library and the Godot client send it. */
  m = (ow_msg){.type = OW_MSG_REGISTER, .req = 2};
  m.u.creds.name = S("alice_01");
  m.u.creds.password = S("correct horse battery");
  ow_proto_encode(&b, &m);
  m.type = OW_MSG_LOGIN;
  m.req = 3;
  ow_proto_encode(&b, &m);
  msg(&b, OW_MSG_JOIN, 4);
  write_buf(T, "login-pipeline", &b);

  b.len = 0;
  m = (ow_msg){.type = OW_MSG_RESUME, .req = 5};
  for (int i = 0; i < OW_TOKEN_LEN; i++) m.u.resume.token[i] = (uint8_t)(i * 7 + 1);
  ow_proto_encode(&b, &m);
  msg(&b, OW_MSG_JOIN, 6);
  write_buf(T, "resume-join", &b);

  /* Every action type on the fixture, valid ones and refused ones. */
  b.len = 0;
  uint32_t req = 10;
  uint64_t seq = 1;
  action(&b, req++, seq++, OW_ACT_MOVE, 0, fw.avatar, 0, 0, 1, 2);
  action(&b, req++, seq++, OW_ACT_HARVEST, 0, tree, 0, 0, 0, 0);
  action(&b, req++, seq++, OW_ACT_HARVEST, 0, rock, 0, 0, 0, 0);
  action(&b, req++, seq++, OW_ACT_CRAFT, 0, 0, 0, 0, 0, 0);
  action(&b, req++, seq++, OW_ACT_BUILD, (uint16_t)ow_content_type_id(c, "wall", 4), 0, 0, 0, 1, 1);
  action(&b, req++, seq++, OW_ACT_TRANSFER, 0, plank, chest, 1, 0, 0);
  action(&b, req++, seq++, OW_ACT_INTERACT, 0, door, 0, 0, 0, 0);
  action(&b, req++, seq++, OW_ACT_INTERACT, 0, cart, 0, 0, 0, 0);
  action(&b, req++, seq++, OW_ACT_MOVE, 0, cart, 0, 0, -1, 3);
  action(&b, req++, seq++, OW_ACT_INTERACT, 0, cart, 0, 0, 0, 0);
  action(&b, req++, seq++, OW_ACT_DESTROY, 0, wall, 0, 0, 0, 0);
  action(&b, req++, seq++, OW_ACT_DESTROY, 0, chest, 0, 0, 0, 0);
  action(&b, req++, seq++, OW_ACT_HARVEST, 0, far_tree, 0, 0, 0, 0);
  write_buf(T, "actions", &b);

  b.len = 0;
  for (int i = 0; i < 4; i++) action(&b, req++, seq++, OW_ACT_HARVEST, 0, tree, 0, 0, 0, 0);
  action(&b, req++, seq++, OW_ACT_CRAFT, 0, 0, 0, 0, 0, 0);
  action(&b, req++, seq++, OW_ACT_BUILD, (uint16_t)ow_content_type_id(c, "chest", 5), 0, 0, 0, 2, 0);
  action(&b, req++, seq++, OW_ACT_BUILD, (uint16_t)ow_content_type_id(c, "cart", 4), 0, 0, 0, -2, 0);
  write_buf(T, "harvest-craft-build", &b);

  /* ACTION of a type without a built-in layout: no, a few and the most argument bytes. */
  b.len = 0;
  static uint8_t own_args[OW_ACTION_ARGS_MAX];
  memset(own_args, 0x5a, sizeof own_args);
  const uint16_t own_n[] = {0, 5, OW_ACTION_ARGS_MAX};
  for (size_t i = 0; i < 3; i++) {
    m = (ow_msg){.type = OW_MSG_ACTION, .req = req++};
    m.u.action.seq = seq++;
    m.u.action.action = (ow_action){.type = 100, .nargs = own_n[i], .args = own_args};
    ow_proto_encode(&b, &m);
  }
  write_buf(T, "action-own-layout", &b);

  b.len = 0;
  pose(&b, 0, 0, 0, 2);
  pose(&b, 7, 0, 0.5f, 2);
  pose(&b, 7, OW_POSE_MAX_TRACKERS, 1, 2.5f);
  pose(&b, 5, 2, 300, -300); /* into another region cell */
  write_buf(T, "poses", &b);

  b.len = 0;
  m = (ow_msg){.type = OW_MSG_ACK};
  m.u.ack.snapshot = 1;
  ow_proto_encode(&b, &m);
  m = (ow_msg){.type = OW_MSG_CHAT, .req = 40};
  m.u.chat.text = S("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
  ow_proto_encode(&b, &m);
  m = (ow_msg){.type = OW_MSG_PING, .req = 41};
  m.u.ping.client_time = 123456789;
  ow_proto_encode(&b, &m);
  msg(&b, OW_MSG_LEAVE, 42);
  msg(&b, OW_MSG_LOGOUT, 43);
  m = (ow_msg){.type = OW_MSG_BYE};
  m.u.bye.reason = OW_BYE_NORMAL;
  m.u.bye.text = S("bye");
  ow_proto_encode(&b, &m);
  write_buf(T, "misc", &b);

  /* Edge cases: a server message from a client, an unknown type, a short header, a length past
   * the end, a body of the wrong size, bad UTF-8 in a chat. */
  b.len = 0;
  msg(&b, OW_MSG_OK, 1);
  write_buf(T, "server-type", &b);
  const uint8_t unknown[] = {0x7f, 0, 0};
  write_seed(T, "unknown-type", unknown, sizeof unknown);
  const uint8_t shorthdr[] = {OW_MSG_PING, 12};
  write_seed(T, "short-header", shorthdr, sizeof shorthdr);
  const uint8_t past[] = {OW_MSG_JOIN, 4, 0, 1, 0};
  write_seed(T, "length-past-end", past, sizeof past);
  const uint8_t wrong[] = {OW_MSG_JOIN, 5, 0, 1, 0, 0, 0, 0};
  write_seed(T, "wrong-size", wrong, sizeof wrong);
  const uint8_t badutf[] = {OW_MSG_CHAT, 9, 0, 1, 0, 0, 0, 3, 0, 0xc0, 0x80, 'a'};
  write_seed(T, "chat-overlong-utf8", badutf, sizeof badutf);

  /* The action codec alone: every seed action back to back, framed as in a frame record. */
  b.len = 0;
  ow_action a = {.type = OW_ACT_HARVEST, .target = tree};
  ow_transform_identity(&a.xf);
  framed(&b, &a);
  a = (ow_action){.type = OW_ACT_TRANSFER, .target = plank, .dest = chest, .count = 1};
  ow_transform_identity(&a.xf);
  framed(&b, &a);
  a = (ow_action){.type = OW_ACT_BUILD, .kind = (uint16_t)ow_content_type_id(c, "wall", 4)};
  ow_transform_identity(&a.xf);
  a.xf.pos[0] = 1;
  framed(&b, &a);
  a = (ow_action){.type = OW_ACT_INTERACT, .target = cart};
  ow_transform_identity(&a.xf);
  framed(&b, &a);
  a = (ow_action){.type = OW_ACT_MOVE, .target = fw.avatar};
  ow_transform_identity(&a.xf);
  a.xf.pos[0] = 3;
  framed(&b, &a);
  a = (ow_action){.type = OW_ACT_DESTROY, .target = wall};
  ow_transform_identity(&a.xf);
  framed(&b, &a);
  write_buf("action", "fixture-actions", &b);
  b.len = 0;
  for (int i = 0; i < 4; i++) {
    a = (ow_action){.type = OW_ACT_HARVEST, .target = tree};
    ow_transform_identity(&a.xf);
    framed(&b, &a);
  }
  a = (ow_action){.type = OW_ACT_CRAFT};
  ow_transform_identity(&a.xf);
  framed(&b, &a);
  write_buf("action", "harvest-craft", &b);
  /* The fuzz target's own row (type 200, 4 to 16 argument bytes): in range, too short, too long,
   * then a row-less type with the most argument bytes an action may have. */
  static uint8_t args[OW_ACTION_ARGS_MAX];
  memset(args, 7, sizeof args);
  b.len = 0;
  a = (ow_action){.type = 200, .nargs = 4, .args = args};
  framed(&b, &a);
  a.nargs = 16;
  framed(&b, &a);
  a.nargs = 3;
  framed(&b, &a);
  a.nargs = 17;
  framed(&b, &a);
  a = (ow_action){.type = 201, .nargs = OW_ACTION_ARGS_MAX, .args = args};
  framed(&b, &a);
  write_buf("action", "own-layout", &b);

  ow_buf_deinit(&b);
  fuzz_world_free(&fw);
}

/* ---- a real zone: snapshots, entity records, a store ----------------------------------------- */

typedef struct zone_run {
  ow_replica *replica;
  ow_view *view;
  ow_buf snaps; /* every snapshot message emitted, each as its own proto_client step */
  int nsnaps;
  uint32_t last_id;
} zone_run;

static void on_durable(void *ud, const ow_frame_info *f) {
  zone_run *r = ud;
  if (r->replica && !f->status && f->batch) ow_replica_apply(r->replica, f->batch, f->frame);
}

/* A proto_client step: one whole binary WebSocket message. */
static void step(ow_buf *b, const uint8_t *p, size_t n) {
  ow_buf_u8(b, 3);
  ow_buf_u16(b, (uint16_t)n);
  ow_buf_put(b, p, n);
}

static void on_snapshot(void *ud, const uint8_t *p, size_t n) {
  zone_run *r = ud;
  step(&r->snaps, p, n);
  r->nsnaps++;
  ow_reader rd;
  ow_reader_init(&rd, p + OW_MSG_HEADER, n - OW_MSG_HEADER);
  r->last_id = ow_rd_u32(&rd);
}

static void publish(zone_run *r, ow_zone *z) {
  (void)z;
  ow_view_update(r->view, r->replica, (ow_cell){0, 0}, 1, 0, on_snapshot, r);
  ow_view_ack(r->view, r->last_id);
}

typedef struct rec_ctx {
  ow_world *w;
  ow_buf *out;
  int n;
} rec_ctx;

static void record_one(void *ud, const ow_entity *e) {
  rec_ctx *x = ud;
  ow_buf rec;
  ow_buf_init(&rec);
  ow_world_encode(x->w, e, &rec);
  ow_cell cell = ow_world_region_cell(x->w, e->region);
  ow_buf_u64(x->out, e->id);
  ow_buf_u32(x->out, (uint32_t)cell.x);
  ow_buf_u32(x->out, (uint32_t)cell.z);
  ow_buf_u16(x->out, (uint16_t)rec.len);
  ow_buf_put(x->out, rec.data, rec.len);
  ow_buf_deinit(&rec);
  x->n++;
}

static int dump_entry(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  ow_buf *b = ud;
  ow_buf_u8(b, (uint8_t)kl);
  ow_buf_u16(b, (uint16_t)vl);
  ow_buf_put(b, k, kl);
  ow_buf_put(b, v, vl);
  return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static void joined(ow_buf *b, const ow_content *ct, uint32_t req) {
  /* As send_joined() in src/server/server.c. */
  size_t at = ow_proto_begin(b, OW_MSG_JOINED);
  ow_buf_u32(b, req);
  ow_buf_f32(b, 256);
  ow_buf_f32(b, 128);
  ow_buf_u16(b, ct->ntypes);
  for (uint16_t i = 0; i < ct->ntypes; i++) {
    ow_buf_u16(b, i);
    ow_buf_u8(b, ct->types[i].kind);
    ow_buf_u8(b, (uint8_t)strlen(ct->types[i].name));
    ow_buf_put(b, ct->types[i].name, strlen(ct->types[i].name));
  }
  ow_buf_u16(b, ct->nrecipes);
  for (uint16_t i = 0; i < ct->nrecipes; i++) {
    ow_buf_u16(b, i);
    ow_buf_u8(b, (uint8_t)strlen(ct->recipes[i].name));
    ow_buf_put(b, ct->recipes[i].name, strlen(ct->recipes[i].name));
  }
  ow_buf_u16(b, ct->nkeys);
  for (uint16_t i = 0; i < ct->nkeys; i++) {
    ow_buf_u8(b, (uint8_t)strlen(ct->keys[i]));
    ow_buf_put(b, ct->keys[i], strlen(ct->keys[i]));
  }
  ow_proto_end(b, at);
}

static void seeds_zone(void) {
  char dir[] = "/tmp/ow-fuzz-seeds-XXXXXX";
  if (!mkdtemp(dir)) exit(1);
  ow_store_options so = {.path = dir, .map_size = 64u << 20, .nosync = true};
  ow_store *store;
  FUZZ_CHECK(ow_store_open(&store, &so) == 0);
  /* A fresh content: the zone's records add property names to it. */
  ow_content *c;
  char err[512];
  char path[1024];
  snprintf(path, sizeof path, "%s/content/default.json", OW_SOURCE_DIR);
  FUZZ_CHECK(ow_content_load_file(path, &c, err, sizeof err) == 0);
  zone_run run = {0};
  ow_buf_init(&run.snaps);
  ow_zone_config zc = {.world = {.region_size = 256, .reach = 8, .bound = 1e6f}, .replay_window = 8,
                       .frame_log_keep = 0};
  ow_zone *z;
  FUZZ_CHECK(ow_zone_open(&z, &zc, c, store, on_durable, &run) == 0);
  ow_world *w = ow_zone_world(z);
  run.replica = ow_replica_create(w, 1);
  run.view = ow_view_create();
  ow_auth_config ac = {.pwhash_ops = 1, .pwhash_mem = 8192, .token_ttl_s = 86400 * 365 * 50,
                       .max_tokens = 4};
  ow_auth *auth;
  FUZZ_CHECK(ow_auth_create(&auth, store, &ac) == 0);
  char hash[crypto_pwhash_STRBYTES];
  FUZZ_CHECK(ow_auth_hash(auth, "correct horse battery", 21, hash) == 0);
  const ow_account *acc;
  FUZZ_CHECK(ow_auth_add(auth, z, "alice_01", 8, hash, OW_ROLE_PLAYER, &acc, NULL) == 0);
  uint64_t session;
  ow_id avatar;
  FUZZ_CHECK(ow_zone_login(z, acc->id, &session, &avatar) == 0);
  uint8_t tok[OW_TOKEN_LEN];
  FUZZ_CHECK(ow_auth_issue(auth, z, acc->id, session, (uint64_t)time(NULL), tok, NULL) == 0);
  FUZZ_CHECK(ow_zone_commit_sync(z, true) == 0);
  publish(&run, z); /* full state */

  /* A chest and a door near the avatar (as if built), then actions on them: deltas. */
  ow_transform xf;
  ow_transform_identity(&xf);
  xf.pos[0] = 1;
  xf.pos[2] = 3;
  ow_id chest, door;
  FUZZ_CHECK(ow_world_spawn(w, (uint16_t)ow_content_type_id(c, "chest", 5), 0, 0, &xf, &chest) == 0);
  xf.pos[0] = -1;
  FUZZ_CHECK(ow_world_spawn(w, (uint16_t)ow_content_type_id(c, "door", 4), acc->id, 0, &xf, &door) == 0);
  FUZZ_CHECK(ow_zone_commit_sync(z, true) == 0);
  publish(&run, z); /* delta: two new entities */
  uint64_t seq = 1;
  ow_result res;
  uint64_t frame;
  bool replayed;
  ow_action a = {.type = OW_ACT_INTERACT, .target = door};
  ow_transform_identity(&a.xf);
  FUZZ_CHECK(ow_zone_act(z, session, seq++, &a, &res, &frame, &replayed) == 0 && res.code == 0);
  a = (ow_action){.type = OW_ACT_MOVE, .target = avatar};
  ow_transform_identity(&a.xf);
  a.xf.pos[0] = 0.5f;
  a.xf.pos[2] = 2.5f;
  FUZZ_CHECK(ow_zone_act(z, session, seq++, &a, &res, &frame, &replayed) == 0 && res.code == 0);
  FUZZ_CHECK(ow_zone_commit_sync(z, true) == 0);
  publish(&run, z); /* delta: changed door (a property) and avatar */
  a = (ow_action){.type = OW_ACT_DESTROY, .target = chest};
  ow_transform_identity(&a.xf);
  FUZZ_CHECK(ow_zone_act(z, session, seq++, &a, &res, &frame, &replayed) == 0 && res.code == 0);
  FUZZ_CHECK(ow_zone_commit_sync(z, true) == 0);
  publish(&run, z); /* delta: a removal */

  /* proto_client: a whole session as the server sends it. */
  {
    const char *T = "proto_client";
    ow_buf s, m1;
    ow_buf_init(&s);
    ow_buf_init(&m1);
    ow_msg m = {.type = OW_MSG_WELCOME, .req = 1};
    m.u.welcome.version = OW_PROTO_VERSION;
    m.u.welcome.tick_hz = 60;
    m.u.welcome.pose_hz = 30;
    m.u.welcome.server_time_us = 1700000000000000ull;
    m.u.welcome.max_message = 4096;
    m.u.welcome.server_name = S("otherworld");
    ow_proto_encode(&m1, &m);
    step(&s, m1.data, m1.len);
    write_buf(T, "welcome", &s);

    m1.len = 0;
    m = (ow_msg){.type = OW_MSG_OK, .req = 2};
    ow_proto_encode(&m1, &m);
    m = (ow_msg){.type = OW_MSG_SESSION, .req = 3};
    memcpy(m.u.session.token, tok, OW_TOKEN_LEN);
    m.u.session.account = acc->id;
    m.u.session.avatar = avatar;
    m.u.session.last_seq = 0;
    m.u.session.expires_in_s = 86400;
    ow_proto_encode(&m1, &m);
    joined(&m1, c, 4);
    step(&s, m1.data, m1.len);
    /* Two actions of the application, their replies, then the snapshots of the run above. */
    ow_buf_u8(&s, 0xf1);
    ow_action_encode(&a, &s);
    ow_buf_u8(&s, 0xf1);
    ow_action_encode(&a, &s);
    m1.len = 0;
    m = (ow_msg){.type = OW_MSG_APPLIED, .req = 5};
    m.u.applied.seq = 1;
    m.u.applied.frame = 7;
    ow_proto_encode(&m1, &m);
    m.req = 6;
    m.u.applied.seq = 2;
    m.u.applied.result.code = OW_E_TOO_FAR;
    ow_proto_encode(&m1, &m);
    uint64_t seqs[] = {1, 2};
    ow_proto_put_durable(&m1, 7, 0, seqs, 2);
    step(&s, m1.data, m1.len);
    ow_buf_put(&s, run.snaps.data, run.snaps.len);
    write_buf(T, "session", &s);

    /* Poses, events, pong, errors and the goodbye, in one message. */
    s.len = m1.len = 0;
    size_t at = ow_proto_begin(&m1, OW_MSG_POSES);
    ow_buf_u32(&m1, 99);
    ow_buf_u16(&m1, 2);
    ow_buf tmp;
    ow_buf_init(&tmp);
    pose(&tmp, 7, 2, 1, 2);
    ow_buf_u64(&m1, avatar);
    ow_buf_put(&m1, tmp.data + OW_MSG_HEADER, tmp.len - OW_MSG_HEADER);
    tmp.len = 0;
    pose(&tmp, 0, 0, -1, 2);
    ow_buf_u64(&m1, avatar + 100);
    ow_buf_put(&m1, tmp.data + OW_MSG_HEADER, tmp.len - OW_MSG_HEADER);
    ow_buf_deinit(&tmp);
    ow_proto_end(&m1, at);
    m = (ow_msg){.type = OW_MSG_EVENT};
    m.u.event.kind = OW_EVENT_CHAT;
    m.u.event.from = 2;
    m.u.event.text = S("h\xc3\xa9llo");
    ow_proto_encode(&m1, &m);
    m = (ow_msg){.type = OW_MSG_PONG, .req = 7};
    m.u.pong.client_time = 12345;
    m.u.pong.server_time_us = 99;
    ow_proto_encode(&m1, &m);
    m = (ow_msg){.type = OW_MSG_ERROR, .req = 8};
    m.u.error.code = OW_E_RATE;
    m.u.error.text = S("too many actions per second");
    ow_proto_encode(&m1, &m);
    ow_proto_put_durable(&m1, 8, OW_E_STORE, seqs, 1);
    m = (ow_msg){.type = OW_MSG_SERVER_BYE};
    m.u.bye.reason = OW_BYE_SHUTDOWN;
    m.u.bye.text = S("server is restarting");
    ow_proto_encode(&m1, &m);
    step(&s, m1.data, m1.len);
    write_buf(T, "stream-messages", &s);

    /* The first snapshot in three fragments, then a reconnect and a resumed session. */
    s.len = 0;
    ow_reader rd;
    ow_reader_init(&rd, run.snaps.data, run.snaps.len);
    ow_rd_u8(&rd);
    size_t n = ow_rd_u16(&rd);
    const uint8_t *snap = ow_rd_bytes(&rd, n);
    size_t third = n / 3;
    ow_buf_u8(&s, 1);
    ow_buf_u16(&s, (uint16_t)third);
    ow_buf_put(&s, snap, third);
    ow_buf_u8(&s, 0);
    ow_buf_u16(&s, (uint16_t)third);
    ow_buf_put(&s, snap + third, third);
    ow_buf_u8(&s, 2);
    ow_buf_u16(&s, (uint16_t)(n - 2 * third));
    ow_buf_put(&s, snap + 2 * third, n - 2 * third);
    ow_buf_u8(&s, 0xf0);
    m1.len = 0;
    m = (ow_msg){.type = OW_MSG_SESSION, .req = 1};
    memcpy(m.u.session.token, tok, OW_TOKEN_LEN);
    m.u.session.account = acc->id;
    m.u.session.avatar = avatar;
    m.u.session.last_seq = 2;
    m.u.session.resumed = 1;
    ow_proto_encode(&m1, &m);
    step(&s, m1.data, m1.len);
    write_buf(T, "fragments-reconnect", &s);

    /* A chunked snapshot (more flag), built by hand: two chunks and a removal. */
    s.len = m1.len = 0;
    for (int chunk = 0; chunk < 2; chunk++) {
      at = ow_proto_begin(&m1, OW_MSG_SNAPSHOT);
      ow_buf_u32(&m1, 50);
      ow_buf_u32(&m1, 0);
      ow_buf_u64(&m1, 9);
      ow_buf_u8(&m1, chunk == 0);
      ow_buf_u16(&m1, 1);
      ow_wire_entity e;
      memset(&e, 0, sizeof e);
      e.id = 500 + (uint64_t)chunk;
      e.type = 4;
      e.count = 1;
      e.scale[0] = e.scale[1] = e.scale[2] = 1;
      e.nprops = 2;
      e.props[0].key = 0;
      e.props[0].type = OW_PROP_STRING;
      e.props[0].v.s = S("label");
      e.props[1].key = 1;
      e.props[1].type = OW_PROP_FLOAT;
      e.props[1].v.f = 0.5;
      ow_proto_put_entity(&m1, &e);
      ow_buf_u16(&m1, chunk == 1);
      if (chunk == 1) ow_buf_u64(&m1, 500);
      ow_proto_end(&m1, at);
    }
    step(&s, m1.data, m1.len);
    write_buf(T, "chunked-snapshot", &s);

    /* Destroyed from inside its first callback, and a tiny receive limit. */
    s.len = 0;
    ow_buf_u8(&s, 0xf3);
    ow_buf_u8(&s, 1);
    ow_buf_put(&s, run.snaps.data, run.snaps.len);
    write_buf(T, "destroy-in-callback", &s);
    s.len = 0;
    ow_buf_u8(&s, 0xf4);
    ow_buf_u16(&s, 4);
    ow_buf_put(&s, run.snaps.data, run.snaps.len);
    write_buf(T, "rx-limit", &s);
    ow_buf_deinit(&s);
    ow_buf_deinit(&m1);
  }

  /* entity_record: every entity of the world, one input; and the door alone (a property). */
  {
    ow_buf b;
    ow_buf_init(&b);
    rec_ctx x = {w, &b, 0};
    ow_world_each(w, record_one, &x);
    write_buf("entity_record", "world", &b);
    b.len = 0;
    record_one(&x, ow_world_get(w, door));
    write_buf("entity_record", "door", &b);
    b.len = 0;
    record_one(&x, ow_world_get(w, avatar));
    const ow_entity *av = ow_world_get(w, avatar);
    (void)av;
    write_buf("entity_record", "avatar", &b);
    ow_buf_deinit(&b);
  }

  ow_view_destroy(run.view);
  ow_replica_destroy(run.replica);
  ow_auth_destroy(auth);
  ow_zone_close(z);

  /* recovery: the store as it is now, every key. */
  {
    ow_buf b;
    ow_buf_init(&b);
    uint8_t all = 0;
    FUZZ_CHECK(ow_store_scan(store, &all, 0, dump_entry, &b) == 0);
    write_buf("recovery", "store", &b);
    ow_buf_deinit(&b);
  }
  ow_store_close(store);
  ow_content_destroy(c);
  ow_buf_deinit(&run.snaps);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- text inputs ---------------------------------------------------------------------------------- */

static void seeds_text(void) {
  copy_file("content", "default", "content/default.json");
  copy_file("content", "crash", "tests/crash/crash_content.json");
  const char *minimal =
      "{\"format\":1,\"types\":[{\"name\":\"a\",\"kind\":\"avatar\",\"hp\":1},"
      "{\"name\":\"inv\",\"kind\":\"container\",\"slots\":1}],\"avatar\":\"a\","
      "\"inventory\":\"inv\",\"world\":{\"spawn\":[0,0,0],\"entities\":[]}}";
  write_seed("content", "minimal", minimal, strlen(minimal));

  ow_config cfg;
  ow_config_init(&cfg);
  char *text = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&text, &n);
  fprintf(f, "# every setting, as --help lists them\n");
  ow_config_dump(&cfg, f);
  fclose(f);
  write_seed("config", "defaults", text, n);
  free(text);
  ow_config_deinit(&cfg);
  const char *conf = "  port = 0   # any free port\n\ndata_dir=/tmp/x\ndurability = nosync\n"
                     "tick_hz = 1e2\nlog_level = warn\n--max-message=8192\n--pose_hz\n90\n";
  write_seed("config", "mixed", conf, strlen(conf));
}

int main(int argc, char **argv) {
  if (argc != 2 || !strcmp(argv[1], "--help")) {
    printf("usage: %s DIR\nWrites seed inputs for every fuzz target into DIR/<target>/seed-*.\n",
           argv[0]);
    return argc == 2 ? 0 : 2;
  }
  out_dir = argv[1];
  ow_log_level = OW_LOG_WARN;
  mkdir(out_dir, 0755);
  seeds_proto_server();
  seeds_zone();
  seeds_text();
  printf("fuzz_seeds: seeds written to %s\n", out_dir);
  return 0;
}
