/*
 * otherworld-godot-companion: the second player of the Godot integration test (tests/godot/run.sh),
 * written with the C client library (clients/c, otherworld/client.h).
 *
 *   otherworld-godot-companion HOST PORT [TIMEOUT_S]
 *
 * It registers a fresh account, logs in, joins, harvests the tree at (3, 0, 3), crafts planks and
 * builds a wall at (1, 0, 6), each confirmed by APPLIED code 0 and DURABLE. Then it prints one
 * line on stdout:
 *
 *   COMPANION_READY account=A avatar=V wall=W
 *
 * and streams its pose at 30 Hz: root (1.25, 0, 2.75) turned 90 degrees about Y, head 1.7 m above
 * the root, two hands (the Godot test checks these values). When it has seen another avatar's pose
 * in POSES and a wall owned by that avatar's account in its snapshots, it prints
 * "COMPANION_SAW avatar=X wall=Y" and says "seen avatar=X wall=Y" in the chat, once.
 *
 * It runs until SIGTERM or SIGINT (then logs out: BYE, close, exit 0) or TIMEOUT_S seconds
 * (default 120; exit 3). Any failure before READY (connection, ERROR, APPLIED with a reason code)
 * prints "COMPANION_FAIL: reason" on stderr and exits 1.
 */
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "otherworld/client.h"

#define TREE_X 3.0f
#define TREE_Z 3.0f

enum step { S_CONNECT, S_REGISTER, S_LOGIN, S_JOIN, S_SNAPSHOT, S_HARVEST, S_CRAFT, S_BUILD, S_READY };

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

typedef struct comp {
  ow_client *c;
  int step;
  bool failed, closed;
  char name[40], password[40];
  uint32_t register_req, login_req, join_req;
  uint64_t account, avatar;
  int wall_type, tree_type, planks;
  uint64_t tree, wall;
  uint64_t pending_seq; /* the action waiting for APPLIED + DURABLE */
  bool pending_applied, pending_durable;
  uint64_t other_avatar, other_account, other_wall;
  bool announced;
} comp;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void failf(comp *p, const char *fmt, ...) {
  if (p->failed) return;
  p->failed = true;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "COMPANION_FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
}

static void act(comp *p, uint8_t type, uint16_t kind, uint64_t target, const float pos[3]) {
  ow_action a;
  memset(&a, 0, sizeof a);
  a.type = type;
  a.kind = kind;
  a.target = target;
  a.xf.rot[3] = 1;
  for (int i = 0; i < 3; i++) a.xf.scale[i] = 1;
  if (pos)
    for (int i = 0; i < 3; i++) a.xf.pos[i] = pos[i];
  p->pending_applied = p->pending_durable = false;
  int rc = ow_client_action(p->c, &a, &p->pending_seq);
  if (rc < 0) failf(p, "ow_client_action(%u): %s", type, ow_err_name(rc));
}

/* Moves to the next step once the pending action is applied and durable. */
static void advance(comp *p) {
  if (!p->pending_applied || !p->pending_durable) return;
  if (p->step == S_HARVEST) {
    p->step = S_CRAFT;
    act(p, OW_ACT_CRAFT, (uint16_t)p->planks, 0, NULL);
  } else if (p->step == S_CRAFT) {
    p->step = S_BUILD;
    const float pos[3] = {1.0f, 0.0f, 6.0f};
    act(p, OW_ACT_BUILD, (uint16_t)p->wall_type, 0, pos);
  } else if (p->step == S_BUILD) {
    p->step = S_READY;
    printf("COMPANION_READY account=%" PRIu64 " avatar=%" PRIu64 " wall=%" PRIu64 "\n", p->account,
           p->avatar, p->wall);
    fflush(stdout);
  }
}

static void cb_open(ow_client *c, void *ud) {
  (void)ud;
  ow_client_hello(c, "otherworld-godot-companion");
}

static void cb_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  comp *p = ud;
  (void)req;
  if (w->version != OW_PROTO_VERSION) failf(p, "WELCOME version %u", w->version);
  p->step = S_REGISTER;
  int rc = ow_client_register(c, p->name, p->password);
  if (rc < 0) failf(p, "register: %s", ow_err_name(rc));
  p->register_req = (uint32_t)rc;
}

static void cb_ok(ow_client *c, void *ud, uint32_t req) {
  comp *p = ud;
  if (p->step == S_REGISTER && req == p->register_req) {
    p->step = S_LOGIN;
    int rc = ow_client_login(c, p->name, p->password);
    if (rc < 0) failf(p, "login: %s", ow_err_name(rc));
    p->login_req = (uint32_t)rc;
  }
}

static void cb_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  comp *p = ud;
  (void)req;
  p->account = s->account;
  p->avatar = s->avatar;
  if (p->step == S_LOGIN) {
    p->step = S_JOIN;
    int rc = ow_client_join(c);
    if (rc < 0) failf(p, "join: %s", ow_err_name(rc));
    p->join_req = (uint32_t)rc;
  }
}

static void cb_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  comp *p = ud;
  (void)c;
  (void)req;
  p->wall_type = ow_client_world_type(w, "wall");
  p->tree_type = ow_client_world_type(w, "tree");
  p->planks = ow_client_world_recipe(w, "planks");
  if (p->wall_type < 0 || p->tree_type < 0 || p->planks < 0) failf(p, "JOINED lacks wall/tree/planks");
  if (p->step == S_JOIN) p->step = S_SNAPSHOT;
}

static void cb_entity(ow_client *c, void *ud, const ow_wire_entity *e) {
  comp *p = ud;
  (void)c;
  if (p->tree_type >= 0 && e->type == (uint16_t)p->tree_type && e->parent == 0 &&
      e->pos[0] == (int32_t)(TREE_X * 1000) && e->pos[2] == (int32_t)(TREE_Z * 1000))
    p->tree = e->id;
}

/* ow_client_entity_each() visitor: the lowest-id wall owned by p->other_account. */
static void find_wall(void *ud, const ow_wire_entity *e) {
  comp *p = ud;
  if (p->wall_type >= 0 && e->type == (uint16_t)p->wall_type && e->owner == p->other_account &&
      (!p->other_wall || e->id < p->other_wall))
    p->other_wall = e->id;
}

static void cb_snapshot(ow_client *c, void *ud, uint32_t id, uint32_t base, uint64_t frame) {
  comp *p = ud;
  (void)id;
  (void)base;
  (void)frame;
  if (p->step != S_SNAPSHOT) return;
  if (!p->tree) {
    failf(p, "no tree at (3, 0, 3) in the first snapshot");
    return;
  }
  p->step = S_HARVEST;
  act(p, OW_ACT_HARVEST, 0, p->tree, NULL);
  (void)c;
}

static void cb_applied(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                       uint64_t frame, bool replayed) {
  comp *p = ud;
  (void)c;
  (void)req;
  (void)frame;
  if (seq != p->pending_seq || p->step == S_READY) return;
  if (r->code != 0 || replayed) {
    failf(p, "step %d: APPLIED seq %" PRIu64 " code %s replayed %d", p->step, seq,
          ow_err_name(r->code), replayed);
    return;
  }
  if (p->step == S_BUILD) p->wall = r->entity;
  p->pending_applied = true;
  advance(p);
}

static void cb_durable(ow_client *c, void *ud, uint64_t frame, int32_t status, const uint64_t *seqs,
                       size_t n) {
  comp *p = ud;
  (void)c;
  (void)frame;
  for (size_t i = 0; i < n; i++) {
    if (seqs[i] != p->pending_seq || p->step == S_READY) continue;
    if (status != 0) {
      failf(p, "DURABLE status %d", status);
      return;
    }
    p->pending_durable = true;
    advance(p);
  }
}

static void cb_poses(ow_client *c, void *ud, uint32_t tick, uint64_t avatar, const ow_pose *pose) {
  comp *p = ud;
  (void)c;
  (void)tick;
  (void)pose;
  if (avatar != p->avatar && !p->other_avatar) {
    p->other_avatar = avatar;
    fprintf(stderr, "companion: sees the pose of avatar %" PRIu64 "\n", avatar);
  }
}

static void cb_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  comp *p = ud;
  (void)c;
  if (p->step != S_READY) failf(p, "ERROR req %u %s: %s", req, ow_err_name(code), text);
  else fprintf(stderr, "companion: ERROR req %u %s: %s\n", req, ow_err_name(code), text);
}

static void cb_bye(ow_client *c, void *ud, uint16_t reason, const char *text) {
  comp *p = ud;
  (void)c;
  if (!g_stop) failf(p, "SERVER_BYE %u: %s", reason, text);
}

static void cb_close(ow_client *c, void *ud) {
  comp *p = ud;
  (void)c;
  p->closed = true;
  if (!g_stop) failf(p, "connection closed");
}

static void send_pose(comp *p, double t) {
  const float root[3] = {1.25f, 0.0f, 2.75f};
  const float s = sqrtf(0.5f);
  const float rot[4] = {0, s, 0, s}; /* 90 degrees about Y */
  float sway = 0.05f * sinf((float)t * 2.0f);
  ow_client_bone bones[3] = {
      {{0.0f, 1.7f, 0.0f}, {0, 0, 0, 1}},
      {{-0.3f, 1.1f, -0.3f + sway}, {0, 0, 0, 1}},
      {{0.3f, 1.1f, -0.3f - sway}, {0, 0, 0, 1}},
  };
  ow_pose pose;
  int rc = ow_client_pose_build(&pose, root, rot, 7, 0, bones);
  if (rc == 0) rc = ow_client_pose(p->c, &pose);
  if (rc < 0) fprintf(stderr, "companion: pose: %s\n", ow_err_name(rc));
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s HOST PORT [TIMEOUT_S]\n", argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  double timeout_s = argc > 3 ? atof(argv[3]) : 120;
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);

  comp p;
  memset(&p, 0, sizeof p);
  p.wall_type = p.tree_type = p.planks = -1;
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  snprintf(p.name, sizeof p.name, "companion_%d_%04x", (int)getpid() % 100000, rand() & 0xffff);
  snprintf(p.password, sizeof p.password, "companion-pw-%08x", (unsigned)rand());

  ow_client_ctx *ctx;
  if (ow_client_ctx_create(NULL, &ctx) != 0) {
    fprintf(stderr, "COMPANION_FAIL: cannot create the client context\n");
    return 1;
  }
  ow_client_callbacks cb = {
      .on_open = cb_open,
      .on_welcome = cb_welcome,
      .on_ok = cb_ok,
      .on_session = cb_session,
      .on_joined = cb_joined,
      .on_applied = cb_applied,
      .on_durable = cb_durable,
      .on_entity = cb_entity,
      .on_snapshot = cb_snapshot,
      .on_poses = cb_poses,
      .on_error = cb_error,
      .on_bye = cb_bye,
      .on_close = cb_close,
  };
  p.c = ow_client_create(ctx, &cb, &p);
  int rc = ow_client_connect(p.c, host, port, NULL);
  if (rc != 0) {
    fprintf(stderr, "COMPANION_FAIL: connect: %s\n", ow_err_name(rc));
    return 1;
  }

  double start = now_s(), next_pose = start;
  int exit_code = 0;
  while (!g_stop && !p.failed) {
    ow_client_ctx_service(ctx, 5);
    double t = now_s();
    if (t - start > timeout_s) {
      fprintf(stderr, "companion: timeout after %.0f s (step %d)\n", timeout_s, p.step);
      exit_code = 3;
      break;
    }
    if (p.step >= S_HARVEST && p.step <= S_READY && t >= next_pose) {
      next_pose = t + 1.0 / 30;
      send_pose(&p, t - start);
    }
    /* The other player: the avatar seen in POSES, its owner from the avatar entity, and a wall
     * of that owner from the snapshots. */
    if (p.step == S_READY && !p.announced && p.other_avatar && !p.other_wall) {
      const ow_wire_entity *av = ow_client_entity(p.c, p.other_avatar);
      if (av) {
        p.other_account = av->owner;
        ow_client_entity_each(p.c, find_wall, &p);
        if (p.other_wall)
          fprintf(stderr, "companion: sees wall %" PRIu64 " of account %" PRIu64 "\n",
                  p.other_wall, p.other_account);
      }
    }
    if (p.step == S_READY && !p.announced && p.other_avatar && p.other_wall) {
      char text[128];
      snprintf(text, sizeof text, "seen avatar=%" PRIu64 " wall=%" PRIu64, p.other_avatar,
               p.other_wall);
      printf("COMPANION_SAW avatar=%" PRIu64 " wall=%" PRIu64 "\n", p.other_avatar, p.other_wall);
      rc = ow_client_chat(p.c, text);
      if (rc < 0) fprintf(stderr, "companion: chat: %s\n", ow_err_name(rc));
      p.announced = true;
    }
  }
  if (p.failed) exit_code = 1;

  /* Leave politely: BYE, then wait (at most 2 s) for the close. */
  if (!p.closed && ow_client_connected(p.c)) {
    ow_client_close(p.c);
    double until = now_s() + 2;
    while (!p.closed && now_s() < until) ow_client_ctx_service(ctx, 10);
  }
  ow_client_destroy(p.c);
  ow_client_ctx_destroy(ctx);
  if (exit_code == 0) fprintf(stderr, "companion: stopped\n");
  return exit_code;
}
