/*
 * otherworld-load: N simulated VR players against a running server, all in one thread on one
 * client context. Each player says HELLO, optionally REGISTERs (a taken name is fine), LOGs IN,
 * JOINs, then streams poses (root, head and two hands moving like a standing player) at --pose-hz
 * and issues an action every --action-interval-ms: moves of its own avatar, and when the world
 * allows it harvest (trees near it), craft planks, build a chest, and transfer wood into it.
 *
 * It measures, over the steady phase after every player joined (or the setup timeout passed):
 * applied latency (action queued -> APPLIED), durable latency (queued -> DURABLE listing it),
 * actions per second, WebSocket payload bytes per second per client in both directions, poses
 * received and their latency (a player's pose handed to its library -> another player receives
 * it in POSES), errors and disconnects, and optionally the server's CPU from /proc. Results are
 * printed as key=value lines on stdout; progress goes to stderr unless --quiet. SIGTERM or SIGINT
 * ends the run early, with the same report (a benchmark holds sessions until it has measured).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otherworld/client.h"
#include "proto/wire.h" /* ow_dequant_mm */

/* Send times are kept per sequence number in a ring: far more than the actions a session can
 * have open (the server's replay window is 64, the library holds at most 1024). */
#define RING 2048
/* --spread: grid cells per row. Fixed, so that several load generators (--spread-base) lay their
 * players out on one grid without overlapping. */
#define SPREAD_ROW 64
/* Poses sent are remembered this far back: the server publishes at most a few ticks late. */
#define POSE_RING 64

/* P_WAIT: disconnected, reconnecting at retry_ns (--reconnect); P_RESUME: reconnected, RESUME
 * sent after WELCOME. */
enum phase { P_CONNECTING, P_REGISTER, P_LOGIN, P_JOIN, P_WORLD, P_WAIT, P_RESUME, P_GONE, P_LOBBY };

typedef struct player {
  int idx;
  ow_client *c;
  int phase;
  uint32_t register_req, login_req, join_req;
  uint64_t avatar;
  float home[3], pos[3];
  float yaw;
  double t_phase; /* animation phase offset, seconds */
  uint64_t next_pose_ns, next_action_ns;
  uint64_t retry_ns;
  uint64_t connect_ns; /* --join-rate: when this player connects; 0 once it has */
  /* the last poses sent, to recognise them in other players' POSES (pose latency) */
  uint32_t npose;
  struct {
    uint64_t ns;
    int32_t root[3];
    uint32_t rot;
  } sent_pose[POSE_RING];
  bool has_session;
  uint8_t token[OW_TOKEN_LEN];
  bool at_home;
  /* what the player believes about its inventory, from APPLIED results */
  uint64_t chest, stack;
  float chest_pos[3], build_pos[3];
  uint32_t wood, planks;
  uint64_t target; /* resource it walked to */
  /* per-seq bookkeeping */
  uint64_t ring_seq[RING];
  uint64_t ring_ns[RING];
  uint8_t ring_act[RING];
  bool ring_measured[RING];
  bool ring_applied[RING];
} player;

typedef struct samples {
  uint32_t *v; /* microseconds */
  size_t n, cap;
} samples;

static struct {
  const char *host, *prefix;
  int port, players, pose_hz, action_ms, duration_s, server_pid;
  bool do_register, spread, quiet, reconnect, no_join;
  double join_rate;
  int spread_base;
} opt = {"127.0.0.1", "load", 7480, 10, 60, 2000, 10, 0, false, false, false, false, false, 0, 0};

static struct {
  bool measuring;
  uint64_t t_measure, t_end;
  samples applied, durable, pose;
  ow_map by_avatar; /* avatar id -> player index + 1 */
  player *players;
  uint64_t actions_sent, actions_applied, actions_rejected, actions_durable;
  uint64_t errors, errors_rate, disconnects, poses_recv, byes, reconnects, resumed, replayed;
  uint64_t reconnect_failures;
  bool over; /* the run is over: closes are expected */
  int joined;
  int tree_type, rock_type, chest_type, planks_recipe, resource_kind;
  uint64_t rejected_by_code[64];
  uint64_t sent_by_type[OW_ACT_MAX_];
  /* Protocol version 2 sends the root's X and Z in units of region_size / 65536: a received root
   * matches a sent one within half of that (millimetres; 0 until JOINED, exact match). */
  int32_t root_slack_mm;
} g;

static void sample_add(samples *s, uint64_t ns) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 4096;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (!s->v) abort();
  }
  uint64_t us = ns / 1000;
  s->v[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile in milliseconds; -1 without samples. */
static double pct_ms(const samples *s, double p) {
  if (!s->n) return -1;
  size_t i = (size_t)ceil(p * (double)s->n);
  if (i) i--;
  if (i >= s->n) i = s->n - 1;
  return s->v[i] / 1000.0;
}

static double frand(void) { return (double)rand() / RAND_MAX; }

static void yaw_quat(float yaw, float q[4]) {
  q[0] = 0;
  q[1] = sinf(yaw / 2);
  q[2] = 0;
  q[3] = cosf(yaw / 2);
}

/* A rotation from yaw (about Y) then pitch (about X), as a quaternion x, y, z, w. */
static void yaw_pitch_quat(float yaw, float pitch, float q[4]) {
  float cy = cosf(yaw / 2), sy = sinf(yaw / 2), cp = cosf(pitch / 2), sp = sinf(pitch / 2);
  q[0] = cy * sp;
  q[1] = sy * cp;
  q[2] = -sy * sp;
  q[3] = cy * cp;
}

/* ---- actions ------------------------------------------------------------------------------------ */

static void record_send(player *p, uint64_t seq, uint8_t act) {
  size_t i = seq % RING;
  p->ring_seq[i] = seq;
  p->ring_ns[i] = ow_now_ns();
  p->ring_act[i] = act;
  p->ring_measured[i] = g.measuring;
  p->ring_applied[i] = false;
}

static void act(player *p, const ow_action *a) {
  uint64_t seq;
  int rc = ow_client_action(p->c, a, &seq);
  if (rc < 0) {
    g.errors++;
    if (!opt.quiet) fprintf(stderr, "player=%d action_error=%s\n", p->idx, ow_err_name(rc));
    return;
  }
  record_send(p, seq, a->type);
  if (g.measuring) {
    g.actions_sent++;
    if (a->type < OW_ACT_MAX_) g.sent_by_type[a->type]++;
  }
}

static void move_to(player *p, const float to[3]) {
  ow_action a = {.type = OW_ACT_MOVE, .target = p->avatar};
  memcpy(a.xf.pos, to, sizeof a.xf.pos);
  yaw_quat(p->yaw, a.xf.rot);
  a.xf.scale[0] = a.xf.scale[1] = a.xf.scale[2] = 1;
  memcpy(p->pos, to, sizeof p->pos);
  act(p, &a);
}

typedef struct nearest {
  const player *p;
  int type;
  uint64_t id;
  float d2, at[3];
} nearest;

static void find_nearest(void *ud, const ow_wire_entity *e) {
  nearest *n = ud;
  if (e->type != n->type || e->parent) return;
  float d2 = 0, at[3];
  for (int i = 0; i < 3; i++) {
    at[i] = ow_dequant_mm(e->pos[i]);
    float d = at[i] - n->p->pos[i];
    d2 += d * d;
  }
  if (!n->id || d2 < n->d2) {
    n->id = e->id;
    n->d2 = d2;
    memcpy(n->at, at, sizeof at);
  }
}

static void next_action(player *p) {
  if (opt.spread && !p->at_home) {
    p->at_home = true;
    move_to(p, p->home);
    return;
  }
  if (!p->chest && p->planks >= 6 && g.chest_type >= 0) {
    ow_action a = {.type = OW_ACT_BUILD, .kind = (uint16_t)g.chest_type};
    a.xf.pos[0] = p->pos[0] + 1.5f * cosf(p->yaw);
    a.xf.pos[1] = p->pos[1];
    a.xf.pos[2] = p->pos[2] - 1.5f * sinf(p->yaw);
    memcpy(p->build_pos, a.xf.pos, sizeof p->build_pos);
    yaw_quat(p->yaw, a.xf.rot);
    a.xf.scale[0] = a.xf.scale[1] = a.xf.scale[2] = 1;
    act(p, &a);
    return;
  }
  if (p->wood >= 2 && p->planks < 6 && !p->chest && g.planks_recipe >= 0) {
    ow_action a = {.type = OW_ACT_CRAFT, .kind = (uint16_t)g.planks_recipe};
    act(p, &a);
    return;
  }
  if (p->chest && p->stack && p->wood) {
    float d2 = 0;
    for (int i = 0; i < 3; i++) d2 += (p->chest_pos[i] - p->pos[i]) * (p->chest_pos[i] - p->pos[i]);
    if (d2 > 5.0f * 5.0f) {
      /* Carry the wood back to the chest first. */
      float to[3] = {p->chest_pos[0] - 1.5f, p->chest_pos[1], p->chest_pos[2]};
      p->yaw = 0;
      move_to(p, to);
      return;
    }
    ow_action a = {.type = OW_ACT_TRANSFER, .target = p->stack, .dest = p->chest};
    a.count = p->wood < 5 ? p->wood : 5;
    act(p, &a);
    return;
  }
  /* Harvest the nearest tree (rocks when no tree is left), walking to it first. */
  for (int k = 0; k < 2; k++) {
    nearest n = {.p = p, .type = k == 0 ? g.tree_type : g.rock_type};
    if (n.type < 0) continue;
    ow_client_entity_each(p->c, find_nearest, &n);
    if (!n.id || n.d2 > 150.0f * 150.0f) continue;
    if (n.d2 <= 6.0f * 6.0f) {
      ow_action a = {.type = OW_ACT_HARVEST, .target = n.id};
      p->target = n.id;
      act(p, &a);
      return;
    }
    /* Stand 2 m from it, on the side we come from. */
    float d = sqrtf(n.d2), to[3];
    for (int i = 0; i < 3; i++) to[i] = n.at[i] + (p->pos[i] - n.at[i]) * (2.0f / d);
    to[1] = n.at[1];
    p->yaw = atan2f(-(n.at[2] - to[2]), n.at[0] - to[0]);
    p->target = n.id;
    move_to(p, to);
    return;
  }
  /* Nothing to do: wander near home. */
  float to[3] = {p->home[0] + (float)(frand() * 8 - 4), p->home[1], p->home[2] + (float)(frand() * 8 - 4)};
  p->yaw = (float)(frand() * 2 * M_PI);
  move_to(p, to);
}

/* ---- poses ------------------------------------------------------------------------------------- */

static void send_pose(player *p, uint64_t now) {
  double t = (double)now / 1e9 + p->t_phase;
  /* The root height steps by a millimetre per pose (tracking noise of a standing player): with
   * the sway it makes each pose of the last POSE_RING recognisable when it comes back in POSES. */
  float root[3] = {p->pos[0] + 0.05f * (float)sin(t * 0.5),
                   p->pos[1] + 0.001f * (float)(p->npose % 8),
                   p->pos[2] + 0.05f * (float)cos(t * 0.4)};
  float rr[4];
  yaw_quat(p->yaw + 0.2f * (float)sin(t * 0.3), rr);
  ow_client_bone b[3];
  /* Head: slight sway and nodding; hands: slow circles in front of the body. */
  b[0] = (ow_client_bone){{0.02f * (float)sin(t * 1.1), 1.62f + 0.02f * (float)sin(t * 2.0),
                           0.01f * (float)cos(t * 0.9)}, {0}};
  yaw_pitch_quat(0.3f * (float)sin(t * 0.7), 0.15f * (float)sin(t * 1.3), b[0].rot);
  b[1] = (ow_client_bone){{-0.25f + 0.10f * (float)cos(t * 1.3), 1.15f + 0.12f * (float)sin(t * 1.7),
                           0.30f + 0.08f * (float)sin(t * 1.1)}, {0}};
  yaw_pitch_quat(0.4f * (float)sin(t * 0.8), -0.5f + 0.3f * (float)cos(t * 1.2), b[1].rot);
  b[2] = (ow_client_bone){{0.25f + 0.10f * (float)cos(t * 1.5), 1.15f + 0.12f * (float)cos(t * 1.9),
                           0.30f + 0.08f * (float)cos(t * 1.0)}, {0}};
  yaw_pitch_quat(-0.4f * (float)sin(t * 0.9), -0.5f + 0.3f * (float)sin(t * 1.4), b[2].rot);
  ow_pose pose;
  if (ow_client_pose_build(&pose, root, rr, 7, 0, b) || ow_client_pose(p->c, &pose)) return;
  size_t k = p->npose++ % POSE_RING;
  p->sent_pose[k].ns = now;
  memcpy(p->sent_pose[k].root, pose.root, sizeof pose.root);
  p->sent_pose[k].rot = pose.root_rot;
}

/* ---- callbacks ---------------------------------------------------------------------------------- */

static void name_of(const player *p, char *out, size_t n) { snprintf(out, n, "%s%d", opt.prefix, p->idx); }
static void password_of(const player *p, char *out, size_t n) {
  snprintf(out, n, "%s-password-%d", opt.prefix, p->idx);
}

static void login(player *p) {
  char name[64], pw[96];
  name_of(p, name, sizeof name);
  password_of(p, pw, sizeof pw);
  int rc = ow_client_login(p->c, name, pw);
  if (rc < 0) {
    fprintf(stderr, "player=%d login_error=%s\n", p->idx, ow_err_name(rc));
    g.errors++;
    p->phase = P_GONE;
    return;
  }
  p->login_req = (uint32_t)rc;
  p->phase = P_LOGIN;
}

static void cb_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)c, (void)req, (void)w;
  player *p = ud;
  if (p->phase == P_RESUME) {
    int rc = ow_client_resume(p->c, p->token);
    if (rc > 0) {
      p->login_req = (uint32_t)rc;
      return;
    }
    login(p);
    return;
  }
  if (opt.do_register) {
    char name[64], pw[96];
    name_of(p, name, sizeof name);
    password_of(p, pw, sizeof pw);
    int rc = ow_client_register(p->c, name, pw);
    if (rc > 0) {
      p->register_req = (uint32_t)rc;
      p->phase = P_REGISTER;
      return;
    }
    fprintf(stderr, "player=%d register_error=%s\n", p->idx, ow_err_name(rc));
  }
  login(p);
}

static void cb_ok(ow_client *c, void *ud, uint32_t req) {
  (void)c;
  player *p = ud;
  if (p->phase == P_REGISTER && req == p->register_req) login(p);
}

static void cb_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)req;
  player *p = ud;
  p->avatar = s->avatar;
  ow_map_set(&g.by_avatar, s->avatar, (uint64_t)p->idx + 1);
  p->has_session = true;
  memcpy(p->token, s->token, OW_TOKEN_LEN);
  if (s->resumed) g.resumed++;
  if (opt.no_join) { /* an idle, logged-in session: counted as ready, sends nothing more */
    p->phase = P_LOBBY;
    g.joined++;
    return;
  }
  int rc = ow_client_join(c);
  if (rc < 0) {
    g.errors++;
    p->phase = P_GONE;
    return;
  }
  p->join_req = (uint32_t)rc;
  p->phase = P_JOIN;
}

static void cb_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)c, (void)req;
  player *p = ud;
  if (p->phase != P_JOIN) return;
  p->phase = P_WORLD;
  g.joined++;
  if (w->region_size > 0) g.root_slack_mm = (int32_t)ceil(w->region_size * 1000.0 / 65536.0 / 2.0) + 1;
  if (opt.spread) {
    /* Each player sees the cells within ceil(radius / region) of its own: 2 * that + 1 cells
     * apart, no player is in another's area of interest. */
    float cells = w->region_size > 0 ? ceilf(w->interest_radius / w->region_size) : 1;
    float step = (2 * cells + 1) * w->region_size;
    int cell = opt.spread_base + p->idx;
    p->home[0] = (float)(cell % SPREAD_ROW) * step;
    p->home[1] = 0;
    p->home[2] = (float)(cell / SPREAD_ROW) * step;
  }
  if (g.tree_type == -2) {
    g.tree_type = ow_client_world_type(w, "tree");
    g.rock_type = ow_client_world_type(w, "rock");
    g.chest_type = ow_client_world_type(w, "chest");
    g.planks_recipe = ow_client_world_recipe(w, "planks");
  }
  uint64_t now = ow_now_ns();
  /* Spread the first pose and action of each player over one period, so load is smooth. */
  p->next_pose_ns = now + (opt.pose_hz ? (uint64_t)(frand() * 1e9 / opt.pose_hz) : 0);
  p->next_action_ns = now + (uint64_t)(frand() * opt.action_ms * 1e6);
  /* --spread: the walk home is the first action, at once, so that the crowd at the spawn point
   * (where every view sees every join) lasts as short as possible; it happens even when the
   * players are otherwise idle (--action-interval-ms 0). */
  if (opt.spread) p->next_action_ns = now;
}

static void cb_applied(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                       uint64_t frame, bool replayed) {
  (void)c, (void)req, (void)frame;
  player *p = ud;
  if (replayed) g.replayed++;
  size_t i = seq % RING;
  if (p->ring_seq[i] != seq || p->ring_applied[i]) return;
  p->ring_applied[i] = true;
  if (p->ring_measured[i] && g.measuring) sample_add(&g.applied, ow_now_ns() - p->ring_ns[i]);
  if (p->ring_measured[i] && g.measuring) {
    g.actions_applied++;
    if (r->code) {
      g.actions_rejected++;
      int k = -r->code - 1000;
      if (k >= 0 && k < 64) g.rejected_by_code[k]++;
    }
  }
  uint8_t a = p->ring_act[i];
  if (r->code) {
    if (r->code == OW_E_NOT_ENOUGH) p->wood = p->planks = 0;
    if (a == OW_ACT_TRANSFER) p->stack = 0, p->wood = 0;
    if (a == OW_ACT_BUILD && r->code != OW_E_NOT_ENOUGH) p->planks = 0; /* give up building */
    return;
  }
  switch (a) {
  case OW_ACT_HARVEST:
    if (p->target && ow_client_entity(c, p->target) &&
        ow_client_entity(c, p->target)->type == (uint16_t)g.tree_type) {
      p->wood += r->count;
      p->stack = r->entity;
    }
    break;
  case OW_ACT_CRAFT:
    p->wood = p->wood >= 2 ? p->wood - 2 : 0;
    p->planks += r->count;
    break;
  case OW_ACT_BUILD:
    p->chest = r->entity;
    memcpy(p->chest_pos, p->build_pos, sizeof p->chest_pos);
    p->planks = p->planks >= 6 ? p->planks - 6 : 0;
    break;
  case OW_ACT_TRANSFER:
    p->wood = p->wood >= r->count ? p->wood - r->count : 0;
    break;
  default: break;
  }
}

static void cb_durable(ow_client *c, void *ud, uint64_t frame, int32_t status, const uint64_t *seqs,
                       size_t n) {
  (void)c, (void)frame;
  player *p = ud;
  if (status) {
    g.errors++;
    if (!opt.quiet) fprintf(stderr, "player=%d durable_status=%s\n", p->idx, ow_err_name(status));
    return;
  }
  uint64_t now = ow_now_ns();
  for (size_t k = 0; k < n; k++) {
    size_t i = seqs[k] % RING;
    if (p->ring_seq[i] != seqs[k] || !p->ring_ns[i]) continue;
    if (p->ring_measured[i] && g.measuring) {
      sample_add(&g.durable, now - p->ring_ns[i]);
      g.actions_durable++;
    }
    p->ring_ns[i] = 0; /* counted once */
  }
}

/* Pose latency: from the moment a player handed a pose to its client library to the moment
 * another player receives it in POSES, found by its quantized root among the sender's last poses
 * (the newest match). It includes waiting for the server's next publish (1 / pose_hz). */
static void cb_poses(ow_client *c, void *ud, uint32_t tick, uint64_t avatar, const ow_pose *pose) {
  (void)c, (void)ud, (void)tick;
  if (!g.measuring) return;
  g.poses_recv++;
  uint64_t *v = ow_map_get(&g.by_avatar, avatar);
  if (!v) return;
  const player *q = &g.players[*v - 1];
  uint32_t n = q->npose < POSE_RING ? q->npose : POSE_RING;
  for (uint32_t i = 1; i <= n; i++) {
    size_t k = (q->npose - i) % POSE_RING;
    const int32_t *sr = q->sent_pose[k].root;
    if (q->sent_pose[k].rot == pose->root_rot && sr[1] == pose->root[1] &&
        labs((long)sr[0] - pose->root[0]) <= g.root_slack_mm &&
        labs((long)sr[2] - pose->root[2]) <= g.root_slack_mm) {
      sample_add(&g.pose, ow_now_ns() - q->sent_pose[k].ns);
      return;
    }
  }
}

static void cb_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c;
  player *p = ud;
  if (p->phase == P_REGISTER && req == p->register_req) {
    /* The account exists from an earlier run: fine. */
    if (code != OW_E_NAME_TAKEN) {
      g.errors++;
      fprintf(stderr, "player=%d register_error=%s text=\"%s\"\n", p->idx, ow_err_name(code), text);
    }
    login(p);
    return;
  }
  if (p->phase == P_RESUME && req == 0 && code == -ECONNREFUSED) {
    g.reconnect_failures++; /* the server is still away: expected while reconnecting */
    return;
  }
  g.errors++;
  if (code == OW_E_RATE) g.errors_rate++;
  if (p->phase == P_RESUME && req == p->login_req) {
    /* The token is no good (expired, revoked, or the store lost it): log in afresh. */
    login(p);
    return;
  }
  if (p->phase == P_LOGIN && req == p->login_req) p->phase = P_GONE;
  if (p->phase == P_JOIN && req == p->join_req) p->phase = P_GONE;
  if (!opt.quiet || p->phase == P_GONE)
    fprintf(stderr, "player=%d error=%s req=%u text=\"%s\"\n", p->idx, ow_err_name(code), req, text);
}

static void cb_bye(ow_client *c, void *ud, uint16_t reason, const char *text) {
  (void)c;
  player *p = ud;
  g.byes++;
  if (reason != OW_BYE_NORMAL || !opt.quiet)
    fprintf(stderr, "player=%d server_bye=%u text=\"%s\"\n", p->idx, reason, text);
}

static void cb_close(ow_client *c, void *ud) {
  (void)c;
  player *p = ud;
  if (p->phase == P_WORLD || p->phase == P_LOBBY) g.joined--;
  if (p->phase != P_GONE && p->phase != P_WAIT && p->phase != P_RESUME) {
    g.disconnects++;
    if (!opt.quiet) fprintf(stderr, "player=%d disconnected phase=%d\n", p->idx, p->phase);
  }
  if (opt.reconnect && !g.over && p->has_session) {
    /* Try again shortly, and keep trying while the server is away. */
    p->phase = P_WAIT;
    p->retry_ns = ow_now_ns() + 300000000ull;
    return;
  }
  p->phase = P_GONE;
}

/* ---- server CPU -------------------------------------------------------------------------------- */

/* utime + stime of a process in clock ticks, or -1. */
static long long proc_cpu_ticks(int pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  /* The command name may hold spaces and parentheses: fields restart after the last ')'. */
  char *s = strrchr(buf, ')');
  if (!s) return -1;
  long long ut = 0, st = 0;
  /* field 3 is state; utime and stime are fields 14 and 15. */
  if (sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st) != 2) return -1;
  return ut + st;
}

/* ---- main -------------------------------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: otherworld-load [--host H (127.0.0.1)] [--port PORT (7480)] [--players N] [--pose-hz HZ]\n"
          "         [--action-interval-ms MS] [--duration-s S] [--register] [--spread]\n"
          "         [--prefix NAME] [--server-pid PID] [--reconnect] [--no-join] [--join-rate N]\n"
          "         [--spread-base N] [--quiet]\n"
          "Simulates N VR players (accounts PREFIX0..PREFIX<N-1>, password PREFIX-password-I) and\n"
          "prints key=value figures. --register creates the accounts (taken names are fine);\n"
          "--spread moves the players onto a grid of regions far enough apart that none is in\n"
          "another's area of interest (64 per row; --spread-base N starts at the Nth place, for\n"
          "several load generators on one grid). --no-join logs in and stays idle outside the world (a\n"
          "lobby session). --join-rate N connects N players per second instead of all at once\n"
          "(the measurement still starts when every player is in). --reconnect reconnects lost\n"
          "players and RESUMEs their session (unconfirmed actions are re-sent by the client\n"
          "library). SIGTERM or SIGINT ends the run early and prints the report.\n");
}

static volatile sig_atomic_t stop_requested;
static void on_stop_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void stats_sum(player *ps, uint64_t *up, uint64_t *down) {
  *up = *down = 0;
  for (int i = 0; i < opt.players; i++) {
    if (!ps[i].c) continue;
    ow_client_stats st;
    ow_client_stats_get(ps[i].c, &st);
    *up += st.bytes_up;
    *down += st.bytes_down;
  }
}

int main(int argc, char **argv) {
  static const struct option longs[] = {
      {"host", required_argument, 0, 'h'},         {"port", required_argument, 0, 'p'},
      {"players", required_argument, 0, 'n'},      {"pose-hz", required_argument, 0, 'z'},
      {"action-interval-ms", required_argument, 0, 'a'},
      {"duration-s", required_argument, 0, 'd'},   {"register", no_argument, 0, 'r'},
      {"spread", no_argument, 0, 's'},             {"quiet", no_argument, 0, 'q'},
      {"server-pid", required_argument, 0, 'P'},   {"prefix", required_argument, 0, 'x'},
      {"reconnect", no_argument, 0, 'R'},           {"no-join", no_argument, 0, 'J'},
      {"join-rate", required_argument, 0, 'j'},    {"spread-base", required_argument, 0, 'b'},
      {"help", no_argument, 0, '?'},               {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    switch (ch) {
    case 'h': opt.host = optarg; break;
    case 'p': opt.port = atoi(optarg); break;
    case 'n': opt.players = atoi(optarg); break;
    case 'z': opt.pose_hz = atoi(optarg); break;
    case 'a': opt.action_ms = atoi(optarg); break;
    case 'd': opt.duration_s = atoi(optarg); break;
    case 'r': opt.do_register = true; break;
    case 's': opt.spread = true; break;
    case 'q': opt.quiet = true; break;
    case 'J': opt.no_join = true; break;
    case 'j': opt.join_rate = atof(optarg); break;
    case 'b': opt.spread_base = atoi(optarg); break;
    case 'P': opt.server_pid = atoi(optarg); break;
    case 'x': opt.prefix = optarg; break;
    case 'R': opt.reconnect = true; break;
    default: usage(); return 2;
    }
  }
  if (opt.port <= 0 || opt.players <= 0 || opt.pose_hz < 0 || opt.action_ms < 0 || opt.duration_s <= 0 ||
      opt.join_rate < 0 || opt.spread_base < 0 ||
      strlen(opt.prefix) > 20) {
    usage();
    return 2;
  }
  srand(12345);
  struct sigaction sa = {.sa_handler = on_stop_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  g.tree_type = g.rock_type = g.chest_type = g.planks_recipe = -2;

  ow_client_ctx *ctx;
  ow_client_ctx_opts copts = {.max_connections = (unsigned)opt.players + 16};
  if (ow_client_ctx_create(&copts, &ctx)) {
    fprintf(stderr, "cannot create the client context\n");
    return 1;
  }
  ow_client_callbacks cb = {.on_welcome = cb_welcome, .on_ok = cb_ok, .on_session = cb_session,
                            .on_joined = cb_joined, .on_applied = cb_applied,
                            .on_durable = cb_durable, .on_poses = cb_poses, .on_error = cb_error,
                            .on_bye = cb_bye, .on_close = cb_close};
  player *ps = calloc((size_t)opt.players, sizeof *ps);
  if (!ps) return 1;
  g.players = ps;
  ow_map_init(&g.by_avatar);
  uint64_t t0 = ow_now_ns();
  for (int i = 0; i < opt.players; i++) {
    player *p = &ps[i];
    p->idx = i;
    p->t_phase = frand() * 100;
    p->yaw = (float)(frand() * 2 * M_PI);
    /* Start where the server spawns avatars (content world.spawn) and learn the real position
     * from nothing else: poses and moves set it from here on. */
    p->pos[0] = (float)(frand() * 6 - 3);
    p->pos[2] = (float)(frand() * 6 - 3);
    memcpy(p->home, p->pos, sizeof p->home); /* --spread sets it at JOINED */
    p->c = ow_client_create(ctx, &cb, p);
    if (opt.join_rate > 0 && i > 0) {
      p->connect_ns = t0 + (uint64_t)((double)i / opt.join_rate * 1e9);
      continue;
    }
    int rc = ow_client_connect(p->c, opt.host, opt.port, "/ws");
    if (rc == 0) rc = ow_client_hello(p->c, "otherworld-load");
    if (rc < 0) {
      fprintf(stderr, "player=%d connect_error=%s\n", i, ow_err_name(rc));
      p->phase = P_GONE;
    }
    /* Stagger the handshakes a little so the server's accept queue is not flooded. */
    if (i % 50 == 49) ow_client_ctx_service(ctx, 1);
  }

  uint64_t setup_deadline = t0 + 10000000000ull + (uint64_t)opt.players * 20000000ull +
                            (opt.join_rate > 0 ? (uint64_t)(opt.players / opt.join_rate * 1e9) : 0);
  uint64_t pose_period = opt.pose_hz ? 1000000000ull / (uint64_t)opt.pose_hz : 0;
  uint64_t action_period = (uint64_t)opt.action_ms * 1000000ull;
  uint64_t up0 = 0, down0 = 0, setup_ns = 0;
  long long cpu0 = -1;
  uint64_t last_progress = t0, sent_at_progress = 0;
  for (;;) {
    uint64_t now = ow_now_ns();
    if (stop_requested) {
      if (!g.measuring) { /* stopped during setup: the figures cover the whole run */
        g.t_measure = t0;
        setup_ns = now - t0;
      }
      break;
    }
    if (!g.measuring) {
      int alive = 0;
      for (int i = 0; i < opt.players; i++) alive += ps[i].phase != P_GONE;
      if ((g.joined == alive && alive > 0) || now >= setup_deadline || alive == 0) {
        g.measuring = true;
        g.t_measure = now;
        g.t_end = now + (uint64_t)opt.duration_s * 1000000000ull;
        setup_ns = now - t0;
        stats_sum(ps, &up0, &down0);
        if (opt.server_pid) cpu0 = proc_cpu_ticks(opt.server_pid);
        if (!opt.quiet)
          fprintf(stderr, "setup_done joined=%d of=%d setup_s=%.2f\n", g.joined, opt.players, setup_ns / 1e9);
        if (alive == 0) break;
      }
    } else if (now >= g.t_end) {
      break;
    }
    uint64_t soonest = now + 10000000ull;
    for (int i = 0; i < opt.players; i++) {
      player *p = &ps[i];
      if (p->connect_ns && now >= p->connect_ns) {
        p->connect_ns = 0;
        if (ow_client_connect(p->c, opt.host, opt.port, "/ws") || ow_client_hello(p->c, "otherworld-load") < 0) {
          fprintf(stderr, "player=%d connect_error\n", i);
          p->phase = P_GONE;
        }
      }
      if (p->phase == P_WAIT && now >= p->retry_ns) {
        g.reconnects++;
        p->phase = P_RESUME;
        if (ow_client_connect(p->c, opt.host, opt.port, "/ws") || ow_client_hello(p->c, "otherworld-load") < 0) {
          p->phase = P_WAIT;
          p->retry_ns = now + 500000000ull;
        }
      }
      if (p->phase != P_WORLD) continue;
      if (pose_period && now >= p->next_pose_ns) {
        send_pose(p, now);
        p->next_pose_ns += pose_period;
        if (p->next_pose_ns < now) p->next_pose_ns = now + pose_period; /* fell behind: skip */
      }
      bool walk_home = opt.spread && !p->at_home;
      if ((action_period || walk_home) && now >= p->next_action_ns) {
        next_action(p);
        p->next_action_ns += action_period;
        if (p->next_action_ns < now) p->next_action_ns = now + action_period;
      }
      if (pose_period && p->next_pose_ns < soonest) soonest = p->next_pose_ns;
      if (action_period && p->next_action_ns < soonest) soonest = p->next_action_ns;
    }
    int wait_ms = soonest > now ? (int)((soonest - now) / 1000000ull) : 0;
    ow_client_ctx_service(ctx, wait_ms);
    if (!opt.quiet && now - last_progress >= 1000000000ull) {
      fprintf(stderr, "t=%.1f joined=%d actions_sent=%llu (+%llu) applied=%llu durable=%llu errors=%llu\n",
              (now - t0) / 1e9, g.joined, (unsigned long long)g.actions_sent,
              (unsigned long long)(g.actions_sent - sent_at_progress), (unsigned long long)g.actions_applied,
              (unsigned long long)g.actions_durable, (unsigned long long)g.errors);
      sent_at_progress = g.actions_sent;
      last_progress = now;
    }
  }
  uint64_t t_stop = ow_now_ns();
  double secs = (t_stop - g.t_measure) / 1e9;
  uint64_t up1, down1;
  stats_sum(ps, &up1, &down1);
  long long cpu1 = opt.server_pid ? proc_cpu_ticks(opt.server_pid) : -1;
  int joined_at_end = g.joined;
  uint64_t poses_recv = g.poses_recv;

  /* Let confirmations of the last actions arrive (they are measured), then log out. */
  uint64_t drain_until = ow_now_ns() + 3000000000ull;
  for (;;) {
    size_t open = 0;
    for (int i = 0; i < opt.players; i++)
      if (ps[i].phase == P_WORLD) open += ow_client_unconfirmed(ps[i].c);
    if (!open || ow_now_ns() >= drain_until) break;
    ow_client_ctx_service(ctx, 10);
  }
  size_t unconfirmed = 0;
  for (int i = 0; i < opt.players; i++) unconfirmed += ow_client_unconfirmed(ps[i].c);
  g.measuring = false;
  g.over = true;
  for (int i = 0; i < opt.players; i++) {
    if (ps[i].phase == P_GONE) continue;
    ps[i].phase = P_GONE; /* the closes that follow are not disconnects */
    if (ow_client_logout(ps[i].c) < 0) ow_client_close(ps[i].c);
  }
  uint64_t close_until = ow_now_ns() + 2000000000ull;
  for (;;) {
    int open = 0;
    for (int i = 0; i < opt.players; i++) open += ow_client_connected(ps[i].c);
    if (!open || ow_now_ns() >= close_until) break;
    ow_client_ctx_service(ctx, 10);
  }

  if (g.applied.n) qsort(g.applied.v, g.applied.n, sizeof *g.applied.v, cmp_u32);
  if (g.durable.n) qsort(g.durable.v, g.durable.n, sizeof *g.durable.v, cmp_u32);
  if (g.pose.n) qsort(g.pose.v, g.pose.n, sizeof *g.pose.v, cmp_u32);
  int clients = joined_at_end > 0 ? joined_at_end : 1;
  double upc = (double)(up1 - up0) / secs / clients, downc = (double)(down1 - down0) / secs / clients;
  printf("players=%d\n", opt.players);
  printf("players_joined=%d\n", joined_at_end);
  printf("setup_s=%.3f\n", setup_ns / 1e9);
  printf("duration_s=%.3f\n", secs);
  printf("pose_hz=%d\n", opt.pose_hz);
  printf("action_interval_ms=%d\n", opt.action_ms);
  printf("actions_sent=%llu\n", (unsigned long long)g.actions_sent);
  printf("actions_applied=%llu\n", (unsigned long long)g.actions_applied);
  static const char *const act_names[OW_ACT_MAX_] = {"", "move", "harvest", "build", "craft",
                                                      "transfer", "interact", "destroy"};
  for (int k = 1; k < OW_ACT_MAX_; k++)
    if (g.sent_by_type[k]) printf("actions_%s=%llu\n", act_names[k], (unsigned long long)g.sent_by_type[k]);
  printf("actions_rejected=%llu\n", (unsigned long long)g.actions_rejected);
  for (int k = 0; k < 64; k++)
    if (g.rejected_by_code[k]) printf("rejected_%s=%llu\n", ow_err_name(-1000 - k), (unsigned long long)g.rejected_by_code[k]);
  printf("actions_durable=%llu\n", (unsigned long long)g.actions_durable);
  printf("actions_unconfirmed_at_end=%zu\n", unconfirmed);
  printf("actions_per_sec=%.1f\n", g.actions_applied / secs);
  printf("applied_p50_ms=%.3f\n", pct_ms(&g.applied, 0.50));
  printf("applied_p99_ms=%.3f\n", pct_ms(&g.applied, 0.99));
  printf("applied_p999_ms=%.3f\n", pct_ms(&g.applied, 0.999));
  printf("applied_max_ms=%.3f\n", g.applied.n ? g.applied.v[g.applied.n - 1] / 1000.0 : -1.0);
  printf("durable_p50_ms=%.3f\n", pct_ms(&g.durable, 0.50));
  printf("durable_p99_ms=%.3f\n", pct_ms(&g.durable, 0.99));
  printf("durable_p999_ms=%.3f\n", pct_ms(&g.durable, 0.999));
  printf("durable_max_ms=%.3f\n", g.durable.n ? g.durable.v[g.durable.n - 1] / 1000.0 : -1.0);
  printf("up_bytes_per_sec_per_client=%.0f\n", upc);
  printf("down_bytes_per_sec_per_client=%.0f\n", downc);
  printf("up_kbps_per_client=%.1f\n", upc * 8 / 1000);
  printf("down_kbps_per_client=%.1f\n", downc * 8 / 1000);
  printf("poses_recv_per_sec_per_client=%.1f\n", poses_recv / secs / clients);
  printf("pose_latency_p50_ms=%.3f\n", pct_ms(&g.pose, 0.50));
  printf("pose_latency_p99_ms=%.3f\n", pct_ms(&g.pose, 0.99));
  printf("pose_latency_p999_ms=%.3f\n", pct_ms(&g.pose, 0.999));
  printf("errors=%llu\n", (unsigned long long)g.errors);
  printf("errors_rate=%llu\n", (unsigned long long)g.errors_rate);
  printf("disconnects=%llu\n", (unsigned long long)g.disconnects);
  if (opt.reconnect) {
    printf("reconnects=%llu\n", (unsigned long long)g.reconnects);
    printf("reconnect_failures=%llu\n", (unsigned long long)g.reconnect_failures);
    printf("resumed=%llu\n", (unsigned long long)g.resumed);
    printf("applied_replayed=%llu\n", (unsigned long long)g.replayed);
  }
  if (opt.server_pid) {
    if (cpu0 >= 0 && cpu1 >= 0)
      printf("server_cpu_pct=%.1f\n", (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK) / secs * 100.0);
    else
      printf("server_cpu_pct=n/a\n");
  }
  fflush(stdout);

  ow_client_ctx_destroy(ctx);
  free(ps);
  free(g.applied.v);
  free(g.durable.v);
  free(g.pose.v);
  ow_map_deinit(&g.by_avatar);
  return joined_at_end > 0 ? 0 : 1;
}
