/*
 * fuzz target proto_client: server-to-client bytes as the C client library (clients/c) receives
 * them, through its test hooks (client_int.h), which run the same fragment reassembly, decoding,
 * dispatch and snapshot application to the entity table as the libwebsockets receive callback.
 *
 * The input is a script of steps, each introduced by an op byte:
 *   0x00..0xef  a WebSocket fragment: bit 0 first, bit 1 final, bit 2 text (not binary); then a
 *               u16 length and that many bytes (fewer at the end of the input)
 *   0xf0        the transport closes and opens again (a reconnect: snapshot history is reset,
 *               unconfirmed actions are kept)
 *   0xf1        the application issues an action: the next 63 bytes in the action codec's layout
 *   0xf2        the application sends HELLO, PING and CHAT (request ids the server may echo)
 *   0xf3        the next callback number u8 destroys the client from inside the callback
 *   0xf4        ow_client_set_limits(rx_max = u16 * 16 + 1)
 * Properties: strings handed to callbacks are NUL-terminated at their length; the entity count
 * the library reports is the number of present entities it lists, each of which it finds by id.
 */
#include "fuzz.h"

#include "client_int.h"
#include "world/world.h"

typedef struct state {
  ow_client *c;
  int callbacks;
  int destroy_at; /* destroy the client in callback number destroy_at (0: never) */
  bool destroyed;
} state;

static void tick(ow_client *c, state *s) {
  if (++s->callbacks == s->destroy_at && !s->destroyed) {
    s->destroyed = true;
    ow_client_destroy(c);
  }
}

static void c_open(ow_client *c, void *ud) { tick(c, ud); }
static void c_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)req;
  FUZZ_CHECK(strlen(w->server_name) <= 255);
  tick(c, ud);
}
static void c_ok(ow_client *c, void *ud, uint32_t req) { (void)req, tick(c, ud); }
static void c_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)req, (void)s;
  tick(c, ud);
}
static void c_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)req;
  for (uint16_t i = 0; i < w->ntypes; i++) {
    FUZZ_CHECK(strlen(w->types[i].name) <= 255);
    FUZZ_CHECK(ow_client_world_type(w, w->types[i].name) >= 0);
  }
  for (uint16_t i = 0; i < w->nrecipes; i++)
    FUZZ_CHECK(ow_client_world_recipe(w, w->recipes[i].name) >= 0);
  for (uint16_t i = 0; i < w->nkeys; i++) FUZZ_CHECK(strlen(w->keys[i]) <= 255);
  FUZZ_CHECK(ow_client_world_get(c) == w);
  tick(c, ud);
}
static void c_applied(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                      uint64_t frame, bool replayed) {
  (void)req, (void)seq, (void)r, (void)frame, (void)replayed;
  tick(c, ud);
}
static void c_durable(ow_client *c, void *ud, uint64_t frame, int32_t status, const uint64_t *seqs,
                      size_t n) {
  (void)frame, (void)status;
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) sum += seqs[i]; /* every listed seq is readable */
  (void)sum;
  tick(c, ud);
}
static void check_entity(const ow_wire_entity *e) {
  FUZZ_CHECK(e->nprops <= 16);
  for (uint8_t i = 0; i < e->nprops; i++)
    if (e->props[i].type == OW_PROP_STRING)
      FUZZ_CHECK(strlen(e->props[i].v.s.p) == e->props[i].v.s.n);
}
static void c_entity(ow_client *c, void *ud, const ow_wire_entity *e) {
  check_entity(e);
  tick(c, ud);
}
static void c_removed(ow_client *c, void *ud, uint64_t id) {
  /* Removed means absent from the view. */
  FUZZ_CHECK(ow_client_entity(c, id) == NULL);
  tick(c, ud);
}
static void c_snapshot(ow_client *c, void *ud, uint32_t id, uint32_t base, uint64_t frame) {
  (void)id, (void)base, (void)frame;
  tick(c, ud);
}
static void c_poses(ow_client *c, void *ud, uint32_t t, uint64_t avatar, const ow_pose *p) {
  (void)t, (void)avatar;
  FUZZ_CHECK(p->nbones <= OW_BONE_FIXED_ + OW_POSE_MAX_TRACKERS);
  tick(c, ud);
}
static void c_event(ow_client *c, void *ud, uint8_t kind, uint64_t from, const char *text,
                    size_t len) {
  (void)kind, (void)from;
  FUZZ_CHECK(strlen(text) == len);
  tick(c, ud);
}
static void c_pong(ow_client *c, void *ud, uint32_t req, uint64_t ct, uint64_t st) {
  (void)req, (void)ct, (void)st;
  tick(c, ud);
}
static void c_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)req, (void)code;
  FUZZ_CHECK(strlen(text) < 4096);
  tick(c, ud);
}
static void c_bye(ow_client *c, void *ud, uint16_t reason, const char *text) {
  (void)reason;
  FUZZ_CHECK(strlen(text) <= OW_TEXT_MAX);
  tick(c, ud);
}
static void c_close(ow_client *c, void *ud) { tick(c, ud); }

static const ow_client_callbacks CB = {
    .on_open = c_open, .on_welcome = c_welcome, .on_ok = c_ok, .on_session = c_session,
    .on_joined = c_joined, .on_applied = c_applied, .on_durable = c_durable,
    .on_entity = c_entity, .on_removed = c_removed, .on_snapshot = c_snapshot,
    .on_poses = c_poses, .on_event = c_event, .on_pong = c_pong, .on_error = c_error,
    .on_bye = c_bye, .on_close = c_close};

typedef struct count_ctx {
  const ow_client *c;
  size_t n;
} count_ctx;

static void count_one(void *ud, const ow_wire_entity *e) {
  count_ctx *x = ud;
  x->n++;
  FUZZ_CHECK(ow_client_entity(x->c, e->id) == e);
  check_entity(e);
}

static void check_table(const ow_client *c) {
  count_ctx x = {c, 0};
  ow_client_entity_each(c, count_one, &x);
  FUZZ_CHECK(x.n == ow_client_entity_count(c));
  FUZZ_CHECK(ow_client__stored(c) >= x.n);
}

static ow_client_ctx *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  ow_log_level = getenv("FUZZ_VERBOSE") ? OW_LOG_DEBUG : OW_LOG_ERROR + 1;
  FUZZ_CHECK(ow_client_ctx_create(NULL, &ctx) == 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!ctx) LLVMFuzzerInitialize(NULL, NULL);
  state s = {0};
  s.c = ow_client_create(ctx, &CB, &s);
  ow_client__test_open(s.c);
  fuzz_in in = {data, size};
  while (in.left && !s.destroyed) {
    uint8_t op = fz_u8(&in);
    size_t got;
    if (op < 0xf0) {
      size_t len = fz_u16(&in);
      const uint8_t *p = fz_bytes(&in, len, &got);
      /* An exact-size copy: a read past the fragment is caught by AddressSanitizer. */
      uint8_t *frag = ow_malloc(got ? got : 1);
      memcpy(frag, p, got);
      ow_client__rx(s.c, frag, got, op & 1, op & 2, !(op & 4));
      ow_free(frag);
      if (!s.destroyed && !ow_client_connected(s.c)) ow_client__test_open(s.c);
    } else if (op == 0xf0) {
      ow_client__test_close(s.c);
      if (!s.destroyed) ow_client__test_open(s.c);
    } else if (op == 0xf1) {
      const uint8_t *p = fz_bytes(&in, 63, &got);
      ow_reader r;
      ow_reader_init(&r, p, got);
      ow_action a;
      /* A built-in type needs all 63 bytes; any other type takes what there is as arguments. */
      if (!ow_action_decode(&r, got, &a)) ow_client_action(s.c, &a, NULL);
    } else if (op == 0xf2) {
      ow_client_hello(s.c, "fuzz");
      ow_client_ping(s.c, 12345);
      ow_client_chat(s.c, "hello");
    } else if (op == 0xf3) {
      s.destroy_at = s.callbacks + 1 + fz_u8(&in);
    } else if (op == 0xf4) {
      ow_client_set_limits(s.c, (size_t)fz_u16(&in) * 16 + 1, 0);
    }
    if (s.destroyed) break;
    check_table(s.c);
    /* What the client queued (ACKs, requests) would go to the server: consume it. */
    ow_client__txq(s.c)->len = 0;
  }
  if (!s.destroyed) ow_client_destroy(s.c);
  return 0;
}
