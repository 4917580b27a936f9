/* The authorization matrix, against the real server over WebSocket (C client library).
 *
 * alice gathers, crafts and builds (a chest holding planks, a door, a cart; a wall she destroys;
 * the tree she fells). bob then tries every action type on alice's entities, on an id that never
 * existed, on destroyed entities and in another region: every attempt must come back with the
 * reason the rules (docs/world.md) give, and alice's view of the world (confirmed reads) must be
 * exactly what it was. Then every admin operation with a player's session (OW_E_NOT_ADMIN, no
 * effect), before login (OW_E_STATE), and with the admin's session (takes effect); then forged,
 * altered, logged-out, revoked and expired tokens (OW_E_TOKEN, and no admin operation on such a
 * connection). Usage: authz SERVER_BINARY. Prints one line per checked case with -v. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "otherworld/client.h"
#include "otherworld/protocol.h"
#include "support.h"

#define MAXREQ 4096

static char dir[] = "/tmp/ow-authz-XXXXXX";
static ow_test_server srv;
static ow_client_ctx *ctx;
static int verbose, checks;

static void die(const char *what) {
  fprintf(stderr, "authz: FAIL: %s\n", what);
  if (srv.pid > 0) kill(srv.pid, SIGKILL);
  exit(1);
}

typedef struct player {
  const char *name;
  ow_client *c;
  ow_client_session s;
  int welcome, sessions, joined, closed, system_events, bye;
  char last_system[600];
  uint64_t snapshot_frame;
  /* per request id: 1 OK, 2 ERROR (code in err), 3 APPLIED (result in res) */
  uint8_t done[MAXREQ];
  int err[MAXREQ];
  ow_result res[MAXREQ];
  uint64_t frame[MAXREQ];
} player;

static void on_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)c, (void)req, (void)w;
  ((player *)ud)->welcome++;
}
static void on_ok(ow_client *c, void *ud, uint32_t req) {
  (void)c;
  if (req < MAXREQ) ((player *)ud)->done[req] = 1;
}
static void on_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)c, (void)req;
  player *p = ud;
  p->s = *s;
  p->sessions++;
}
static void on_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)c, (void)req, (void)w;
  ((player *)ud)->joined++;
}
static void on_applied(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                       uint64_t frame, bool replayed) {
  (void)c, (void)seq, (void)replayed;
  player *p = ud;
  if (req >= MAXREQ) return;
  p->done[req] = 3;
  p->res[req] = *r;
  p->frame[req] = frame;
}
static void on_snapshot(ow_client *c, void *ud, uint32_t id, uint32_t base, uint64_t frame) {
  (void)c, (void)id, (void)base;
  player *p = ud;
  if (frame > p->snapshot_frame) p->snapshot_frame = frame;
}
static void on_event(ow_client *c, void *ud, uint8_t kind, uint64_t from, const char *text, size_t n) {
  (void)c, (void)from;
  player *p = ud;
  if (kind != OW_EVENT_SYSTEM) return;
  p->system_events++;
  snprintf(p->last_system, sizeof p->last_system, "%.*s", (int)n, text);
}
static void on_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c;
  player *p = ud;
  if (verbose) fprintf(stderr, "  %s: ERROR req=%u %s: %s\n", p->name, req, ow_err_name(code), text);
  if (req == 0 || req >= MAXREQ) return;
  p->done[req] = 2;
  p->err[req] = code;
}
static void on_bye(ow_client *c, void *ud, uint16_t reason, const char *text) {
  (void)c, (void)text;
  ((player *)ud)->bye = reason;
}
static void on_close(ow_client *c, void *ud) {
  (void)c;
  ((player *)ud)->closed++;
}

static const ow_client_callbacks callbacks = {
    .on_welcome = on_welcome, .on_ok = on_ok, .on_session = on_session, .on_joined = on_joined,
    .on_applied = on_applied, .on_snapshot = on_snapshot, .on_event = on_event,
    .on_error = on_error, .on_bye = on_bye, .on_close = on_close};

#define WAIT(cond, what)                                                               \
  do {                                                                                 \
    double end_ = ow_test_now() + 60; /* generous: valgrind runs this too */          \
    while (!(cond) && ow_test_now() < end_) ow_client_ctx_service(ctx, 10);            \
    if (!(cond)) die(what);                                                            \
  } while (0)

static void check(bool ok, const char *what) {
  checks++;
  if (!ok) die(what);
  if (verbose) fprintf(stderr, "ok %s\n", what);
}

static int req_ok(int req, const char *what) {
  if (req <= 0 || req >= MAXREQ) {
    fprintf(stderr, "%s: %s\n", what, ow_err_name(req));
    die("a request could not be queued");
  }
  return req;
}

/* Connects and says HELLO. */
static void connect_player(player *p, const char *name) {
  memset(p, 0, sizeof *p);
  p->name = name;
  p->c = ow_client_create(ctx, &callbacks, p);
  if (ow_client_connect(p->c, "127.0.0.1", srv.port, NULL) < 0) die("connect");
  ow_client_hello(p->c, "authz");
  WAIT(p->welcome, "no WELCOME");
}

static void login(player *p, const char *name, bool reg) {
  char pw[64];
  snprintf(pw, sizeof pw, "%s-password", name);
  connect_player(p, name);
  if (reg) {
    int r = req_ok(ow_client_register(p->c, name, pw), "register");
    WAIT(p->done[r], "no reply to REGISTER");
    if (p->done[r] != 1) die("REGISTER refused");
  }
  req_ok(ow_client_login(p->c, name, pw), "login");
  WAIT(p->sessions, "no SESSION");
}

static void join(player *p) {
  req_ok(ow_client_join(p->c), "join");
  WAIT(p->joined, "no JOINED");
}

/* Sends an action and waits for its APPLIED; returns the result. */
static ow_result act(player *p, const ow_action *a) {
  int r = req_ok(ow_client_action(p->c, a, NULL), "action");
  WAIT(p->done[r], "no reply to an ACTION");
  if (p->done[r] != 3) {
    fprintf(stderr, "%s: action type %u refused with %s\n", p->name, a->type, ow_err_name(p->err[r]));
    die("ACTION answered with ERROR instead of APPLIED");
  }
  return p->res[r];
}

static ow_action action(uint8_t type, uint64_t target) {
  ow_action a;
  memset(&a, 0, sizeof a);
  a.type = type;
  a.target = target;
  a.xf.rot[3] = 1;
  a.xf.scale[0] = a.xf.scale[1] = a.xf.scale[2] = 1;
  return a;
}

static ow_action at(ow_action a, float x, float y, float z) {
  a.xf.pos[0] = x, a.xf.pos[1] = y, a.xf.pos[2] = z;
  return a;
}

/* Must succeed (setup): returns the result's entity. */
static uint64_t must(player *p, ow_action a, const char *what) {
  ow_result r = act(p, &a);
  if (r.code) {
    fprintf(stderr, "%s: %s\n", what, ow_err_name(r.code));
    die("a setup action failed");
  }
  return r.entity;
}

/* Must be refused with `code`. */
static void refused(player *p, ow_action a, int code, const char *what) {
  ow_result r = act(p, &a);
  char line[200];
  snprintf(line, sizeof line, "%s -> %s (got %s)", what, ow_err_name(code), ow_err_name(r.code));
  check(r.code == code, line);
}

/* ---- world lookups in a player's confirmed view ---------------------------------------------- */

typedef struct find {
  uint16_t type;
  uint64_t parent, owner;
  int32_t x, z; /* mm; INT32_MIN: any */
  uint64_t found;
} find;

static void find_fn(void *ud, const ow_wire_entity *e) {
  find *f = ud;
  if (e->type != f->type || (f->parent && e->parent != f->parent) || (f->owner && e->owner != f->owner))
    return;
  if (f->x != INT32_MIN && (e->pos[0] != f->x || e->pos[2] != f->z)) return;
  f->found = e->id;
}

static uint64_t find_entity(player *p, const char *type, uint64_t parent, uint64_t owner, int32_t x,
                            int32_t z) {
  const ow_client_world *w = ow_client_world_get(p->c);
  find f = {(uint16_t)ow_client_world_type(w, type), parent, owner, x, z, 0};
  for (double end = ow_test_now() + 30; !f.found && ow_test_now() < end;) {
    ow_client_entity_each(p->c, find_fn, &f);
    if (!f.found) ow_client_ctx_service(ctx, 10);
  }
  if (!f.found) {
    fprintf(stderr, "no %s in %s's view\n", type, p->name);
    die("entity not found");
  }
  return f.found;
}

/* An order-independent digest of every entity in the view not owned by `skip`, but `skip_id`. */
typedef struct digest {
  uint64_t skip, skip_id, sum;
  size_t n;
} digest;

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}

static void digest_fn(void *ud, const ow_wire_entity *e) {
  digest *d = ud;
  if (e->owner == d->skip || e->id == d->skip_id) return;
  uint64_t h = mix(mix(mix(e->id, e->owner), e->parent), e->type);
  for (int i = 0; i < 3; i++) h = mix(h, (uint32_t)e->pos[i]);
  h = mix(mix(mix(h, e->rot), (uint32_t)e->hp), e->count);
  for (uint8_t i = 0; i < e->nprops; i++) h = mix(mix(h, e->props[i].key), (uint64_t)e->props[i].v.i);
  d->sum += h;
  d->n++;
}

static digest view_digest(player *p, uint64_t skip, uint64_t skip_id) {
  digest d = {skip, skip_id, 0, 0};
  ow_client_entity_each(p->c, digest_fn, &d);
  return d;
}

/* The frame of p's latest applied action. */
static uint64_t last_frame(const player *p) {
  uint64_t f = 0;
  for (int i = 0; i < MAXREQ; i++)
    if (p->done[i] == 3 && p->frame[i] > f) f = p->frame[i];
  return f;
}

/* Waits until `p` has seen a snapshot as of `frame` (a frame known to change its view). */
static void settle(player *p, uint64_t frame) { WAIT(p->snapshot_frame >= frame, "view not updated"); }

/* ---- the matrix -------------------------------------------------------------------------------- */

static int admin(player *p, uint8_t op, uint64_t account, uint8_t role, const char *text) {
  int r = req_ok(ow_client_admin(p->c, op, account, role, text), "admin");
  WAIT(p->done[r], "no reply to ADMIN");
  return p->done[r] == 1 ? 0 : p->err[r];
}

static void expect_admin(player *p, uint8_t op, uint64_t account, uint8_t role, int code,
                         const char *what) {
  int got = admin(p, op, account, role, "authz");
  char line[200];
  snprintf(line, sizeof line, "%s -> %s (got %s)", what, code ? ow_err_name(code) : "OK",
           got ? ow_err_name(got) : "OK");
  check(got == code, line);
}

/* RESUME with `token` on a fresh connection; returns 0 or the ERROR code. */
static int resume(player *p, const char *name, const uint8_t token[OW_TOKEN_LEN]) {
  connect_player(p, name);
  int r = req_ok(ow_client_resume(p->c, token), "resume");
  WAIT(p->done[r] || p->sessions, "no reply to RESUME");
  return p->sessions ? 0 : p->err[r];
}

static void start(const char *bin, const char *tag, const char *ttl) {
  const char *const args[] = {"--admins", "boss", "--region_size", "16", "--action_burst", "400",
                              "--pwhash_ops", "1", "--pwhash_mem_kb", "64", "--shutdown_notice_s",
                              "0", "--token_ttl_s", ttl, NULL};
  char data[300], log[300];
  snprintf(data, sizeof data, "%s/%s", dir, tag);
  snprintf(log, sizeof log, "%s/%s.log", dir, tag);
  if (ow_test_server_start(&srv, bin, data, log, args, 30000)) die("server did not start");
}

static void stop(void) {
  int st = ow_test_server_stop(&srv, SIGTERM);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("server did not exit 0 on SIGTERM");
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: authz SERVER_BINARY [-v]");
  verbose = argc > 2 && !strcmp(argv[2], "-v");
  if (!mkdtemp(dir)) die("mkdtemp");
  ow_client_ctx_opts o = {0};
  if (ow_client_ctx_create(&o, &ctx)) die("client context");
  start(argv[1], "main", "86400");

  static player alice, bob, boss, carol, x;
  login(&alice, "alice", true);
  login(&bob, "bob", true);
  login(&boss, "boss", true);
  login(&carol, "carol", true);
  check(boss.s.role == OW_ROLE_ADMIN && alice.s.role == OW_ROLE_PLAYER, "roles from --admins");
  join(&alice);
  join(&bob);
  join(&boss);

  /* alice: fell the tree at (3,0,3), quarry the rock at (-3,0,3), craft, build. */
  uint64_t tree = find_entity(&alice, "tree", 0, 0, 3000, 3000);
  uint64_t rock = find_entity(&alice, "rock", 0, 0, -3000, 3000);
  uint64_t far_tree = find_entity(&alice, "tree", 0, 0, 18110, -51310);
  for (int i = 0; i < 4; i++) must(&alice, action(OW_ACT_HARVEST, tree), "harvest tree");
  for (int i = 0; i < 2; i++) must(&alice, action(OW_ACT_HARVEST, rock), "harvest rock");
  const ow_client_world *w = ow_client_world_get(alice.c);
  for (int i = 0; i < 6; i++) {
    ow_action a = action(OW_ACT_CRAFT, 0);
    a.kind = (uint16_t)ow_client_world_recipe(w, "planks");
    must(&alice, a, "craft planks");
  }
  ow_action b = action(OW_ACT_BUILD, 0);
  b.kind = (uint16_t)ow_client_world_type(w, "chest");
  uint64_t chest = must(&alice, at(b, 1, 0, 5), "build chest");
  b.kind = (uint16_t)ow_client_world_type(w, "door");
  uint64_t door = must(&alice, at(b, -1, 0, 5), "build door");
  b.kind = (uint16_t)ow_client_world_type(w, "cart");
  uint64_t cart = must(&alice, at(b, 0, 0, 6), "build cart");
  b.kind = (uint16_t)ow_client_world_type(w, "wall");
  uint64_t wall = must(&alice, at(b, 2, 0, 6), "build wall");
  must(&alice, action(OW_ACT_DESTROY, wall), "destroy wall");
  uint64_t inv = find_entity(&alice, "inventory", alice.s.avatar, 0, INT32_MIN, 0);
  uint64_t planks = find_entity(&alice, "plank", inv, 0, INT32_MIN, 0);
  uint64_t wood = find_entity(&alice, "wood", inv, 0, INT32_MIN, 0);
  ow_action t = action(OW_ACT_TRANSFER, planks);
  t.dest = chest;
  t.count = 2;
  uint64_t chest_planks = must(&alice, t, "transfer planks into the chest");
  /* bob: three stones of his own, from the public rock. */
  must(&bob, action(OW_ACT_HARVEST, rock), "bob harvests the rock");
  uint64_t bob_inv = find_entity(&bob, "inventory", bob.s.avatar, 0, INT32_MIN, 0);
  uint64_t bob_stone = find_entity(&bob, "stone", bob_inv, 0, INT32_MIN, 0);

  /* The world as alice sees it once bob's harvest is published. */
  ow_action m = at(action(OW_ACT_MOVE, boss.s.avatar), 0.5f, 0, 2);
  must(&boss, m, "boss moves");
  settle(&alice, last_frame(&boss));
  digest before = view_digest(&alice, boss.s.account, bob.s.avatar);
  if (before.n < 10) die("alice sees too few entities");

  /* Another player's entities. */
  refused(&bob, at(action(OW_ACT_MOVE, cart), 0, 0, 7), OW_E_FORBIDDEN, "move alice's cart");
  refused(&bob, at(action(OW_ACT_MOVE, alice.s.avatar), 0, 0, 7), OW_E_FORBIDDEN, "move alice's avatar");
  refused(&bob, at(action(OW_ACT_MOVE, chest), 0, 0, 7), OW_E_NOT_MOVABLE, "move alice's chest");
  refused(&bob, action(OW_ACT_HARVEST, chest), OW_E_NOT_HARVESTABLE, "harvest alice's chest");
  t = action(OW_ACT_TRANSFER, chest_planks);
  t.dest = bob_inv;
  t.count = 1;
  refused(&bob, t, OW_E_FORBIDDEN, "transfer from alice's chest");
  t = action(OW_ACT_TRANSFER, wood);
  t.dest = bob_inv;
  t.count = 1;
  refused(&bob, t, OW_E_FORBIDDEN, "transfer from alice's inventory");
  t = action(OW_ACT_TRANSFER, bob_stone);
  t.dest = chest;
  t.count = 1;
  refused(&bob, t, OW_E_FORBIDDEN, "transfer into alice's chest");
  t.dest = inv;
  refused(&bob, t, OW_E_FORBIDDEN, "transfer into alice's inventory");
  refused(&bob, action(OW_ACT_INTERACT, door), OW_E_FORBIDDEN, "open alice's door");
  refused(&bob, action(OW_ACT_INTERACT, cart), OW_E_FORBIDDEN, "ride alice's cart");
  refused(&bob, action(OW_ACT_DESTROY, chest), OW_E_FORBIDDEN, "destroy alice's chest");
  refused(&bob, action(OW_ACT_DESTROY, door), OW_E_FORBIDDEN, "destroy alice's door");
  refused(&bob, action(OW_ACT_DESTROY, cart), OW_E_FORBIDDEN, "destroy alice's cart");
  refused(&bob, action(OW_ACT_DESTROY, alice.s.avatar), OW_E_NOT_DESTROYABLE, "destroy alice's avatar");
  ow_action c = action(OW_ACT_CRAFT, 0);
  c.kind = (uint16_t)ow_client_world_recipe(w, "planks");
  refused(&bob, c, OW_E_NOT_ENOUGH, "craft with alice's wood (crafting uses only bob's own)");
  b.kind = (uint16_t)ow_client_world_type(w, "wall");
  refused(&bob, at(b, 1, 0, 3), OW_E_NOT_ENOUGH, "build with alice's planks (only bob's own)");

  /* Nobody's: an id that never existed. */
  const uint64_t none = 0x7fffffffffffull;
  refused(&bob, at(action(OW_ACT_MOVE, none), 0, 0, 3), OW_E_NOT_FOUND, "move a missing entity");
  refused(&bob, action(OW_ACT_HARVEST, none), OW_E_NOT_FOUND, "harvest a missing entity");
  t = action(OW_ACT_TRANSFER, none);
  t.dest = bob_inv;
  t.count = 1;
  refused(&bob, t, OW_E_NOT_FOUND, "transfer a missing stack");
  t = action(OW_ACT_TRANSFER, bob_stone);
  t.dest = none;
  t.count = 1;
  refused(&bob, t, OW_E_NOT_FOUND, "transfer into a missing container");
  refused(&bob, action(OW_ACT_INTERACT, none), OW_E_NOT_FOUND, "interact with a missing entity");
  refused(&bob, action(OW_ACT_DESTROY, none), OW_E_NOT_FOUND, "destroy a missing entity");
  refused(&bob, action(OW_ACT_DESTROY, 0), OW_E_NOT_FOUND, "destroy entity 0");

  /* Destroyed: the felled tree, the destroyed wall. */
  refused(&bob, action(OW_ACT_HARVEST, tree), OW_E_NOT_FOUND, "harvest the felled tree");
  refused(&bob, at(action(OW_ACT_MOVE, wall), 0, 0, 3), OW_E_NOT_FOUND, "move the destroyed wall");
  refused(&bob, action(OW_ACT_INTERACT, wall), OW_E_NOT_FOUND, "interact with the destroyed wall");
  refused(&bob, action(OW_ACT_DESTROY, wall), OW_E_NOT_FOUND, "destroy the destroyed wall");
  t.dest = wall;
  refused(&bob, t, OW_E_NOT_FOUND, "transfer into the destroyed wall");
  refused(&alice, action(OW_ACT_DESTROY, wall), OW_E_NOT_FOUND, "alice destroys her wall twice");

  /* Another region (cells of 16 m; reach 8 m). */
  refused(&bob, action(OW_ACT_HARVEST, far_tree), OW_E_TOO_FAR, "harvest a tree in another region");
  refused(&bob, at(b, 18, 0, -51), OW_E_TOO_FAR, "build in another region");
  must(&bob, at(action(OW_ACT_MOVE, bob.s.avatar), 18, 0, -45), "bob walks to another region");
  refused(&bob, action(OW_ACT_HARVEST, rock), OW_E_TOO_FAR, "harvest the spawn rock from another region");
  t = action(OW_ACT_TRANSFER, bob_stone);
  t.dest = chest;
  t.count = 1;
  refused(&bob, t, OW_E_FORBIDDEN, "transfer into alice's chest from another region");

  /* Nothing changed: alice's view after a later change by boss is the view before. */
  m = at(action(OW_ACT_MOVE, boss.s.avatar), 0.75f, 0, 2);
  must(&boss, m, "boss moves again");
  settle(&alice, last_frame(&boss));
  digest after = view_digest(&alice, boss.s.account, bob.s.avatar);
  check(after.n == before.n && after.sum == before.sum, "alice's world unchanged by bob's attempts");

  /* Admin operations. Before login: state. */
  connect_player(&x, "anonymous");
  expect_admin(&x, OW_ADMIN_ANNOUNCE, 0, 0, OW_E_STATE, "ANNOUNCE before login");
  ow_client_destroy(x.c);
  /* With a player's session: refused, no effect. */
  int events = alice.system_events;
  expect_admin(&bob, OW_ADMIN_KICK, alice.s.account, 0, OW_E_NOT_ADMIN, "player KICKs alice");
  expect_admin(&bob, OW_ADMIN_ANNOUNCE, 0, 0, OW_E_NOT_ADMIN, "player ANNOUNCEs");
  expect_admin(&bob, OW_ADMIN_SET_ROLE, bob.s.account, OW_ROLE_ADMIN, OW_E_NOT_ADMIN,
               "player makes himself admin");
  expect_admin(&bob, OW_ADMIN_REVOKE, carol.s.account, 0, OW_E_NOT_ADMIN, "player REVOKEs carol");
  expect_admin(&bob, 99, 0, 0, OW_E_NOT_ADMIN, "player sends an unknown admin op");
  /* A PING round trip after the refusals: anything they caused would have arrived by now. */
  req_ok(ow_client_ping(alice.c, 1), "ping");
  for (int i = 0; i < 20; i++) ow_client_ctx_service(ctx, 10);
  check(!alice.closed && !alice.bye, "alice still connected after a player's KICK");
  check(alice.system_events == events, "no announcement from a player");
  player bob2;
  login(&bob2, "bob", false);
  check(bob2.s.role == OW_ROLE_PLAYER, "bob is still a player");
  player carol2;
  check(resume(&carol2, "carol", carol.s.token) == 0, "carol's token survives a player's REVOKE");
  ow_client_destroy(carol2.c);

  /* With the admin's session: each operation takes effect. */
  expect_admin(&boss, OW_ADMIN_ANNOUNCE, 0, 0, 0, "admin ANNOUNCEs");
  WAIT(alice.system_events > events, "alice got no announcement");
  check(!strcmp(alice.last_system, "authz"), "announcement text");
  expect_admin(&boss, OW_ADMIN_SET_ROLE, bob.s.account, OW_ROLE_BUILDER, 0, "admin makes bob a builder");
  player bob3;
  login(&bob3, "bob", false);
  check(bob3.s.role == OW_ROLE_BUILDER, "bob's new role is stored");
  expect_admin(&boss, OW_ADMIN_SET_ROLE, bob.s.account, 7, OW_E_INVAL, "admin sets an unknown role");
  expect_admin(&boss, OW_ADMIN_KICK, 0x7fffffffull, 0, OW_E_NOT_FOUND, "admin KICKs a missing account");
  expect_admin(&boss, 99, alice.s.account, 0, OW_E_INVAL, "admin sends an unknown op");
  expect_admin(&boss, OW_ADMIN_KICK, alice.s.account, 0, 0, "admin KICKs alice");
  WAIT(alice.bye == OW_BYE_KICKED, "alice not kicked");
  WAIT(alice.closed, "alice's connection not closed");
  player carol3;
  check(resume(&carol3, "carol", carol.s.token) == 0, "carol resumes before the revoke");
  expect_admin(&boss, OW_ADMIN_REVOKE, carol.s.account, 0, 0, "admin REVOKEs carol");
  WAIT(carol3.bye == OW_BYE_KICKED, "carol not kicked by the revoke");
  player carol4;
  check(resume(&carol4, "carol", carol.s.token) == OW_E_TOKEN, "a revoked token does not resume");
  expect_admin(&carol4, OW_ADMIN_KICK, boss.s.account, 0, OW_E_STATE, "ADMIN after a failed RESUME");

  /* Tokens: forged, altered, logged out. */
  uint8_t forged[OW_TOKEN_LEN];
  for (int i = 0; i < OW_TOKEN_LEN; i++) forged[i] = (uint8_t)(i * 37 + 11);
  player f;
  check(resume(&f, "forged", forged) == OW_E_TOKEN, "a forged token does not resume");
  expect_admin(&f, OW_ADMIN_ANNOUNCE, 0, 0, OW_E_STATE, "ADMIN with a forged token");
  uint8_t altered[OW_TOKEN_LEN];
  memcpy(altered, boss.s.token, OW_TOKEN_LEN);
  altered[OW_TOKEN_LEN - 1] ^= 1;
  player g;
  check(resume(&g, "altered", altered) == OW_E_TOKEN, "the admin's token with one bit flipped");
  expect_admin(&g, OW_ADMIN_REVOKE, alice.s.account, 0, OW_E_STATE, "ADMIN with an altered token");
  player dave;
  login(&dave, "dave", true);
  uint8_t dave_token[OW_TOKEN_LEN];
  memcpy(dave_token, dave.s.token, OW_TOKEN_LEN);
  int lr = req_ok(ow_client_logout(dave.c), "logout");
  WAIT(dave.done[lr], "no reply to LOGOUT");
  player dave2;
  check(resume(&dave2, "dave", dave_token) == OW_E_TOKEN, "a logged-out token does not resume");
  stop();

  /* The stored changes survive a restart: the role, the revocation, the logout. */
  start(argv[1], "main", "86400");
  player bob4, carol5, dave3;
  login(&bob4, "bob", false);
  check(bob4.s.role == OW_ROLE_BUILDER, "bob's role after a restart");
  check(resume(&carol5, "carol", carol.s.token) == OW_E_TOKEN, "carol's revoked token after a restart");
  check(resume(&dave3, "dave", dave_token) == OW_E_TOKEN, "dave's logged-out token after a restart");
  stop();

  /* Expired: a server whose tokens live 1 s; the admin's own token expires too. */
  start(argv[1], "ttl", "1");
  player e;
  login(&e, "boss", true);
  uint8_t tok[OW_TOKEN_LEN];
  memcpy(tok, e.s.token, OW_TOKEN_LEN);
  usleep(2500000);
  player e2;
  check(resume(&e2, "boss", tok) == OW_E_TOKEN, "an expired token does not resume");
  expect_admin(&e2, OW_ADMIN_ANNOUNCE, 0, 0, OW_E_STATE, "ADMIN with an expired admin token");
  stop();

  ow_client_ctx_destroy(ctx);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) return 1;
  printf("authz: %d checks passed, 0 failed\n", checks);
  return 0;
}
