/* Unit tests of src/server in process: a store in a temporary directory, a zone, auth, a libuv loop
 * and ow_server_create on port 0, driven by real C-library clients on a thread of their own (the
 * client context runs its own poll loop; the server's loop stays on the test's main thread). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "otherworld/client.h"
#include "server/metrics.h"
#include "server/server.h"
#include "support.h"

/* ---- the server in process ----------------------------------------------------------------- */

typedef struct fixture {
  char *dir;
  ow_content *content;
  ow_store *store;
  ow_zone *zone;
  ow_auth *auth;
  uv_loop_t loop;
  ow_zone_loop *zl;
  ow_server *server;
  uv_async_t stop; /* the client thread asks the loop thread to shut the server down */
} fixture;

static void on_durable(void *ud, const ow_frame_info *f) {
  fixture *fx = ud;
  if (fx->server) ow_server_on_durable(fx->server, f);
}

static void stopped(void *ud) {
  fixture *fx = ud;
  uv_close((uv_handle_t *)&fx->stop, NULL);
}

static void on_stop(uv_async_t *a) {
  fixture *fx = a->data;
  ow_server_shutdown(fx->server, stopped, fx);
}

static void start(fixture *fx, const char *name) {
  memset(fx, 0, sizeof *fx);
  fx->dir = ow_test_mkdtemp("server");
  fx->content = ow_test_content();
  fx->store = ow_test_store(fx->dir);
  ow_zone_config zc = ow_test_zone_config();
  assert_int_equal(ow_zone_open(&fx->zone, &zc, fx->content, fx->store, on_durable, fx), 0);
  /* The cheapest argon2 libsodium allows: the tests register many accounts. */
  ow_auth_config ac = {.pwhash_ops = 1, .pwhash_mem = 64u << 10, .token_ttl_s = 600,
                       .max_tokens = 1000};
  assert_int_equal(ow_auth_create(&fx->auth, fx->store, &ac), 0);
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  assert_int_equal(ow_zone_loop_create(&fx->zl, &fx->loop, fx->zone, 20, 5), 0);
  ow_server_config sc = {
      .net = {.bind = "127.0.0.1", .port = 0, .max_message = 64 << 10, .send_limit = 4 << 20,
              .max_conns = 256, .max_conns_per_addr = 256, .handshake_timeout_s = 10},
      .name = name, .admins = "", .tick_hz = 20, .pose_hz = 10, .interest_radius = 64,
      .max_players = 256, .action_rate = 1000, .action_burst = 1000, .pose_rate = 100,
      .down_kbps = 10000, .idle_s = 60, .shutdown_notice_s = 0, .eager_commit = false,
      .login_fails_account = 100, .login_fails_addr = 1000, .login_fail_window_s = 60,
      .login_lock_s = 1, .login_lock_max_s = 1, .pwhash_jobs = 1, .pwhash_queue = 256,
      .pwhash_per_addr = 256, .chat_rate = 10, .chat_burst = 10, .rate_kick = 0,
      .rate_kick_decay = 1};
  assert_int_equal(ow_server_create(&fx->server, &fx->loop, fx->zone, fx->zl, fx->auth, &sc), 0);
  assert_true(ow_server_port(fx->server) > 0);
  uv_async_init(&fx->loop, &fx->stop, on_stop);
  fx->stop.data = fx;
}

/* Runs the loop until the server has shut down (the stop handle was signalled), then frees
 * everything in the order main.c does. */
static void run_and_finish(fixture *fx) {
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  ow_server_free(fx->server);
  fx->server = NULL;
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  ow_zone_loop_destroy(fx->zl);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  ow_auth_destroy(fx->auth);
  ow_zone_close(fx->zone);
  ow_store_close(fx->store);
  ow_content_destroy(fx->content);
  ow_test_rmdir(fx->dir);
}

/* ---- players on the client thread ---------------------------------------------------------- */

#define MAX_PLAYERS 40
#define ACTIONS 3

typedef struct player {
  ow_client *c;
  char name[32];
  ow_client_session s;
  int step;                 /* 0 connecting .. 4 joined */
  int failed;               /* an ERROR or a BYE arrived */
  uint64_t sent[ACTIONS];   /* the seqs of this player's actions */
  size_t nsent, napplied, applied_ok;
  uint64_t got[ACTIONS * 2]; /* the seqs DURABLE named for this player */
  size_t ngot;
  bool foreign; /* DURABLE named a seq this player did not send */
} player;

typedef struct crowd {
  fixture *fx;
  int port, n;
  player p[MAX_PLAYERS];
  atomic_int ok; /* set by the thread: every player finished as expected */
} crowd;

static void c_open(ow_client *c, void *ud) {
  (void)ud;
  ow_client_hello(c, "test_server");
}
static void c_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)req, (void)w;
  player *p = ud;
  p->step = 1;
  ow_client_register(c, p->name, "correct horse battery");
}
static void c_ok(ow_client *c, void *ud, uint32_t req) {
  (void)req;
  player *p = ud;
  if (p->step == 1) {
    p->step = 2;
    ow_client_login(c, p->name, "correct horse battery");
  }
}
static void c_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)req;
  player *p = ud;
  p->s = *s;
  p->step = 3;
  ow_client_join(c);
}
static void c_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)req, (void)w;
  player *p = ud;
  p->step = 4;
  /* A few moves of the player's own avatar, sent back to back: they land in the same frame as
   * other players' (the tick is 50 ms), which is what the one-pass grouping must sort out. */
  for (int i = 0; i < ACTIONS; i++) {
    ow_action a;
    memset(&a, 0, sizeof a);
    a.type = OW_ACT_MOVE;
    a.target = p->s.avatar;
    a.xf.pos[0] = 0.5f + 0.25f * (float)i;
    a.xf.pos[2] = 2;
    a.xf.rot[3] = 1;
    a.xf.scale[0] = a.xf.scale[1] = a.xf.scale[2] = 1;
    uint64_t seq = 0;
    if (ow_client_action(c, &a, &seq) > 0) p->sent[p->nsent++] = seq;
  }
}
static void c_applied(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                      uint64_t frame, bool replayed) {
  (void)c, (void)req, (void)seq, (void)frame, (void)replayed;
  player *p = ud;
  p->napplied++;
  if (!r->code) p->applied_ok++;
}
static void c_durable(ow_client *c, void *ud, uint64_t frame, int32_t status, const uint64_t *seqs,
                      size_t n) {
  (void)c, (void)frame;
  player *p = ud;
  if (status) p->failed = 1;
  for (size_t i = 0; i < n; i++) {
    bool mine = false;
    for (size_t k = 0; k < p->nsent; k++) mine |= p->sent[k] == seqs[i];
    if (!mine) p->foreign = true;
    if (p->ngot < ACTIONS * 2) p->got[p->ngot++] = seqs[i];
  }
}
static void c_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c, (void)req;
  player *p = ud;
  fprintf(stderr, "%s: ERROR %s: %s\n", p->name, ow_err_name(code), text);
  p->failed = 1;
}

static bool player_done(const player *p) {
  return p->failed || (p->step == 4 && p->nsent == ACTIONS && p->napplied == ACTIONS &&
                       p->ngot >= ACTIONS);
}

static void *crowd_thread(void *arg) {
  crowd *cr = arg;
  ow_client_ctx *ctx;
  ow_client_ctx_opts o = {.max_connections = MAX_PLAYERS + 8};
  int ok = 0;
  if (ow_client_ctx_create(&o, &ctx) == 0) {
    ow_client_callbacks cb = {.on_open = c_open, .on_welcome = c_welcome, .on_ok = c_ok,
                              .on_session = c_session, .on_joined = c_joined,
                              .on_applied = c_applied, .on_durable = c_durable,
                              .on_error = c_error};
    for (int i = 0; i < cr->n; i++) {
      player *p = &cr->p[i];
      snprintf(p->name, sizeof p->name, "player%02d", i);
      p->c = ow_client_create(ctx, &cb, p);
      ow_client_connect(p->c, "127.0.0.1", cr->port, "/ws");
    }
    /* A deadline only so that a broken server fails the test instead of hanging it. */
    double deadline = ow_test_now() + 60;
    for (;;) {
      bool all = true;
      for (int i = 0; i < cr->n; i++) all &= player_done(&cr->p[i]);
      if (all || ow_test_now() > deadline) break;
      ow_client_ctx_service(ctx, 20);
    }
    ok = 1;
    for (int i = 0; i < cr->n; i++) {
      player *p = &cr->p[i];
      if (!player_done(p) || p->failed || p->foreign || p->applied_ok != ACTIONS ||
          p->ngot != ACTIONS) {
        fprintf(stderr, "%s: step=%d sent=%zu applied=%zu ok=%zu durable=%zu foreign=%d\n",
                p->name, p->step, p->nsent, p->napplied, p->applied_ok, p->ngot, p->foreign);
        ok = 0;
      }
      /* Exactly its own seqs, each once, in the order they were sent. */
      for (size_t k = 0; ok && k < p->ngot; k++)
        if (p->got[k] != p->sent[k]) ok = 0;
    }
    for (int i = 0; i < cr->n; i++) ow_client_logout(cr->p[i].c);
    for (int r = 0; r < 10; r++) ow_client_ctx_service(ctx, 10);
    ow_client_ctx_destroy(ctx);
  }
  atomic_store(&cr->ok, ok);
  uv_async_send(&cr->fx->stop);
  return NULL;
}

static void run_crowd(int n) {
  fixture fx;
  start(&fx, "crowd");
  crowd *cr = calloc(1, sizeof *cr);
  cr->fx = &fx;
  cr->port = ow_server_port(fx.server);
  cr->n = n;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, crowd_thread, cr), 0);
  run_and_finish(&fx);
  pthread_join(t, NULL);
  int ok = atomic_load(&cr->ok);
  free(cr);
  assert_true(ok);
}

/* One player: register, login, join, actions answered applied and then durable, clean shutdown. */
static void test_one_player(void **state) {
  (void)state;
  run_crowd(1);
}

/* Many sessions in the same frames: each client's DURABLE names exactly its own seqs, once each,
 * in order (ow_server_on_durable buckets a frame's actions by session in one pass). */
static void test_many_sessions_own_seqs(void **state) {
  (void)state;
  run_crowd(MAX_PLAYERS);
}

/* ---- protocol versions 1 and 2 in one room -------------------------------------------------- */

#define POSERS 3
#define POSES_WANTED 8 /* of each other player, enough for slots to be named without their id */

typedef struct poser {
  ow_client *c;
  char name[32];
  uint16_t want, version; /* asked in HELLO, agreed in WELCOME */
  int step, failed;
  uint64_t avatar;
  int32_t root[3]; /* what this player sends, in millimetres */
  struct {
    uint64_t avatar;
    int n, bad; /* poses received; of them, roots too far from what was sent */
  } got[POSERS];
} poser;

static poser posers[POSERS];

static void q_open(ow_client *c, void *ud) {
  poser *p = ud;
  ow_client_hello_version(c, "test_server", p->want);
}
static void q_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)req;
  poser *p = ud;
  p->version = w->version;
  p->step = 1;
  ow_client_register(c, p->name, "correct horse battery");
}
static void q_ok(ow_client *c, void *ud, uint32_t req) {
  (void)req;
  poser *p = ud;
  if (p->step == 1) {
    p->step = 2;
    ow_client_login(c, p->name, "correct horse battery");
  }
}
static void q_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)req;
  poser *p = ud;
  p->avatar = s->avatar;
  p->step = 3;
  ow_client_join(c);
}
static void q_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)c, (void)req, (void)w;
  ((poser *)ud)->step = 4;
}
static void q_poses(ow_client *c, void *ud, uint32_t tick, uint64_t avatar, const ow_pose *pose) {
  (void)c, (void)tick;
  poser *p = ud;
  for (int k = 0; k < POSERS; k++) {
    if (posers[k].avatar != avatar || &posers[k] == p) continue;
    p->got[k].avatar = avatar;
    p->got[k].n++;
    /* Version 2 roots are within 2 mm on X and Z (region 256 m: 3.9 mm units), exact on Y. */
    long slack = p->version >= 2 ? 2 : 0;
    if (labs((long)pose->root[0] - posers[k].root[0]) > slack || pose->root[1] != posers[k].root[1] ||
        labs((long)pose->root[2] - posers[k].root[2]) > slack)
      p->got[k].bad++;
  }
}
static void q_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c, (void)req;
  poser *p = ud;
  fprintf(stderr, "%s: ERROR %s: %s\n", p->name, ow_err_name(code), text);
  p->failed = 1;
}

static bool poser_done(const poser *p) {
  if (p->failed) return true;
  for (int k = 0; k < POSERS; k++)
    if (&posers[k] != p && p->got[k].n < POSES_WANTED) return false;
  return true;
}

static void *posers_thread(void *arg) {
  fixture *fx = arg;
  ow_client_ctx *ctx;
  if (ow_client_ctx_create(NULL, &ctx) == 0) {
    ow_client_callbacks cb = {.on_open = q_open, .on_welcome = q_welcome, .on_ok = q_ok,
                              .on_session = q_session, .on_joined = q_joined,
                              .on_poses = q_poses, .on_error = q_error};
    for (int i = 0; i < POSERS; i++) {
      poser *p = &posers[i];
      p->c = ow_client_create(ctx, &cb, p);
      ow_client_connect(p->c, "127.0.0.1", ow_server_port(fx->server), "/ws");
    }
    double deadline = ow_test_now() + 60, next_pose = 0;
    for (;;) {
      bool all = true;
      for (int i = 0; i < POSERS; i++) all &= poser_done(&posers[i]);
      if (all || ow_test_now() > deadline) break;
      /* 25 poses a second each, under the fixture's pose_rate of 100. */
      bool send = ow_test_now() >= next_pose;
      if (send) next_pose = ow_test_now() + 0.04;
      for (int i = 0; i < POSERS && send; i++) {
        poser *p = &posers[i];
        if (p->step != 4) continue;
        float root[3] = {p->root[0] / 1000.0f, p->root[1] / 1000.0f, p->root[2] / 1000.0f};
        float q[4] = {0, 0, 0, 1};
        ow_pose pose;
        if (!ow_client_pose_build(&pose, root, q, 0, 0, NULL)) ow_client_pose(p->c, &pose);
      }
      ow_client_ctx_service(ctx, 20);
    }
    for (int i = 0; i < POSERS; i++) ow_client_logout(posers[i].c);
    for (int r = 0; r < 10; r++) ow_client_ctx_service(ctx, 10);
    ow_client_ctx_destroy(ctx);
  }
  uv_async_send(&fx->stop);
  return NULL;
}

/* Players of versions 2, 1 and 2 in one room: each gets the others' poses in its own version
 * (WELCOME agrees the version asked for), the version 2 ones by slots bound once, with roots
 * within the compact form's precision; the version 1 one exactly as before. */
static void test_pose_versions(void **state) {
  (void)state;
  memset(posers, 0, sizeof posers);
  const uint16_t want[POSERS] = {2, 1, 2};
  for (int i = 0; i < POSERS; i++) {
    snprintf(posers[i].name, sizeof posers[i].name, "poser%d", i);
    posers[i].want = want[i];
    /* Roots in two neighbouring cells of the 256 m grid (interest radius 64 m: one cell), one at
     * negative X. */
    posers[i].root[0] = 1234 + 70001 * (i - 1);
    posers[i].root[1] = 250 * i;
    posers[i].root[2] = 2000 + 333 * i;
  }
  fixture fx;
  start(&fx, "versions");
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, posers_thread, &fx), 0);
  run_and_finish(&fx);
  pthread_join(t, NULL);
  for (int i = 0; i < POSERS; i++) {
    const poser *p = &posers[i];
    assert_false(p->failed);
    assert_int_equal(p->version, want[i]);
    for (int k = 0; k < POSERS; k++) {
      if (k == i) continue;
      assert_true(p->got[k].n >= POSES_WANTED);
      assert_int_equal(p->got[k].bad, 0);
    }
  }
}

/* ---- /status ------------------------------------------------------------------------------- */

static void status_of(const char *name) {
  fixture fx;
  start(&fx, name);
  ow_buf b;
  ow_buf_init(&b);
  assert_int_equal(ow_server_status_json(fx.server, &b), 0);
  assert_true(b.len > 0 && b.data[b.len - 1] == '\n');
  json_error_t err;
  json_t *j = json_loadb((const char *)b.data, b.len, 0, &err);
  if (!j) fprintf(stderr, "status is not JSON: %s: %.*s\n", err.text, (int)b.len, b.data);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "name")), name);
  /* A few of the fields readers rely on, with their types. */
  assert_true(json_is_integer(json_object_get(j, "entities")));
  assert_true(json_is_integer(json_object_get(j, "durable_frame")));
  assert_true(json_is_false(json_object_get(j, "store_failed")));
  assert_true(json_is_real(json_object_get(j, "commit_p99_us")));
  assert_true(json_is_integer(json_object_get(j, "pwhash_waiting")));
  json_decref(j);
  ow_buf_deinit(&b);
  uv_async_send(&fx.stop);
  run_and_finish(&fx);
}

/* Regression: a quote, a backslash and a control character in the name made /status invalid JSON
 * (it was printed with snprintf, unescaped); a long name was truncated. */
static void test_status_escapes_name(void **state) {
  (void)state;
  status_of("a\"b");
  status_of("back\\slash and \x01 control\ttab");
  char longname[3000];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  status_of(longname);
}


/* Every field /status had before the metrics registry, which tests/, bench/ and the soak script
 * read by name: none may disappear or be renamed. */
static const char *const status_fields[] = {
    "name", "connections", "players", "accounts", "entities", "frame", "durable_frame",
    "store_failed", "store_error", "actions", "seal_p50_us", "seal_p99_us", "publish_p50_us",
    "publish_p99_us", "poses_p50_us", "poses_p99_us", "commit_p50_us", "commit_p99_us",
    "bytes_in", "bytes_out", "mem_bytes", "tcp_open", "tcp_accepted", "conns_refused_total",
    "conns_refused_addr", "oversize", "protocol_errors", "too_slow", "rate_limited", "rate_kicks",
    "logins_failed", "login_refused_account", "login_refused_addr", "pwhash_refused_addr",
    "pwhash_refused_busy", "pwhash_running", "pwhash_waiting"};

/* /status is exactly the registry: every row once, under its name (histograms as _p50_us and
 * _p99_us), with the JSON type its kind gives, plus nothing else; every row has a help text; the
 * old fields are all there; values are read from where the server keeps them. */
static void test_metrics_registry(void **state) {
  (void)state;
  fixture fx;
  start(&fx, "metrics");
  const ow_metric *rows = ow_metrics_list();
  size_t keys = 0;
  for (size_t i = 0; i < OW_METRICS_N; i++) {
    assert_non_null(rows[i].name);
    assert_true(rows[i].help && rows[i].help[0]);
    for (size_t k = 0; k < i; k++) assert_string_not_equal(rows[i].name, rows[k].name);
    keys += rows[i].kind == OW_METRIC_HISTOGRAM ? 2 : 1;
  }
  ow_buf b;
  ow_buf_init(&b);
  assert_int_equal(ow_server_status_json(fx.server, &b), 0);
  json_t *j = json_loadb((const char *)b.data, b.len, 0, NULL);
  assert_non_null(j);
  assert_int_equal(json_object_size(j), keys);
  for (size_t i = 0; i < OW_METRICS_N; i++) {
    const char *n = rows[i].name;
    char key[96];
    switch (rows[i].kind) {
    case OW_METRIC_TEXT: assert_true(json_is_string(json_object_get(j, n))); break;
    case OW_METRIC_FLAG: assert_true(json_is_boolean(json_object_get(j, n))); break;
    case OW_METRIC_GAUGE:
    case OW_METRIC_COUNTER: assert_true(json_is_integer(json_object_get(j, n))); break;
    case OW_METRIC_HISTOGRAM:
      snprintf(key, sizeof key, "%s_p50_us", n);
      assert_true(json_is_number(json_object_get(j, key)));
      snprintf(key, sizeof key, "%s_p99_us", n);
      assert_true(json_is_number(json_object_get(j, key)));
      break;
    case OW_METRIC_ACTIONS: assert_true(json_is_object(json_object_get(j, n))); break;
    }
  }
  for (size_t i = 0; i < sizeof status_fields / sizeof *status_fields; i++) {
    if (!json_object_get(j, status_fields[i])) fprintf(stderr, "missing: %s\n", status_fields[i]);
    assert_non_null(json_object_get(j, status_fields[i]));
  }
  /* The rows read the server's own state. */
  ow_metric_value v[OW_METRICS_N];
  ow_metrics_read(fx.server, v);
  assert_string_equal(v[OW_METRIC_name].text, "metrics");
  assert_string_equal(v[OW_METRIC_store_error].text, "OK");
  assert_int_equal(v[OW_METRIC_durable_frame].u64, ow_zone_durable_frame(fx.zone));
  assert_int_equal(v[OW_METRIC_connections_opened].u64, ow_server_stats_get(fx.server)->connections);
  assert_int_equal(json_integer_value(json_object_get(j, "entities")),
                   ow_world_count(ow_zone_world(fx.zone)));
  json_decref(j);
  ow_buf_deinit(&b);
  uv_async_send(&fx.stop);
  run_and_finish(&fx);
}

/* ---- /metrics (Prometheus text) ------------------------------------------------------------ */

/* The value of the sample line that starts with `head` followed by a space; -1 when none. */
static double prom_value(const char *text, const char *head) {
  size_t hl = strlen(head);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (!strncmp(p, head, hl) && p[hl] == ' ') return strtod(p + hl + 1, NULL);
  return -1;
}

/* /metrics is the registry in the text format: a HELP and a TYPE line for every row (counters
 * with _total, histograms in seconds), every other line a sample of the family just declared;
 * histogram buckets are cumulative with +Inf equal to _count and _sum in seconds; actions by type
 * and result as labels; a label value with a quote, a backslash and a newline is escaped. */
static void test_prom_text(void **state) {
  (void)state;
  fixture fx;
  start(&fx, "q\"uote\\back\nline");
  ow_server *s = fx.server;
  /* Known durations into the publish histogram: 40 us, 3 ms twice, 4 s (above every bucket). */
  ow_samples_add(&s->stats.publish_ns, 40000);
  ow_samples_add(&s->stats.publish_ns, 3000000);
  ow_samples_add(&s->stats.publish_ns, 3000000);
  ow_samples_add(&s->stats.publish_ns, 4000000000ull);
  server_count_action(s, OW_ACT_MOVE, 0);
  server_count_action(s, OW_ACT_MOVE, 0);
  server_count_action(s, OW_ACT_MOVE, OW_E_TOO_FAR);
  server_count_action(s, 200, OW_E_UNKNOWN_ACTION);
  ow_buf b;
  ow_buf_init(&b);
  assert_int_equal(ow_server_prom_text(s, &b), 0);
  ow_buf_put(&b, "", 1);
  const char *t = (const char *)b.data;
  const ow_metric *rows = ow_metrics_list();
  for (size_t i = 0; i < OW_METRICS_N; i++) {
    char line[160];
    const char *type = rows[i].kind == OW_METRIC_HISTOGRAM ? "histogram"
                       : rows[i].kind == OW_METRIC_COUNTER || rows[i].kind == OW_METRIC_ACTIONS
                           ? "counter"
                           : "gauge";
    const char *suffix = rows[i].kind == OW_METRIC_HISTOGRAM ? "_seconds"
                         : rows[i].kind == OW_METRIC_TEXT    ? "_info"
                         : (rows[i].kind == OW_METRIC_COUNTER || rows[i].kind == OW_METRIC_ACTIONS) &&
                                 !strstr(rows[i].name, "_total")
                             ? "_total"
                             : "";
    snprintf(line, sizeof line, "# TYPE otherworld_%s%s %s\n", rows[i].name, suffix, type);
    if (!strstr(t, line)) fprintf(stderr, "missing: %s", line);
    assert_non_null(strstr(t, line));
  }
  /* Every sample line belongs to the family of the TYPE line above it. */
  char family[128] = "";
  for (const char *p = t; *p;) {
    const char *e = strchr(p, '\n');
    assert_non_null(e);
    if (!strncmp(p, "# TYPE ", 7)) {
      const char *sp = memchr(p + 7, ' ', (size_t)(e - p - 7));
      assert_non_null(sp);
      snprintf(family, sizeof family, "%.*s", (int)(sp - p - 7), p + 7);
    } else if (*p != '#') {
      assert_true(family[0]);
      assert_int_equal(strncmp(p, family, strlen(family)), 0);
    }
    p = e + 1;
  }
  const char *h = "otherworld_publish_seconds";
  char head[160];
  snprintf(head, sizeof head, "%s_bucket{le=\"5e-05\"}", h);
  assert_true(prom_value(t, head) == 1);
  snprintf(head, sizeof head, "%s_bucket{le=\"0.001\"}", h);
  assert_true(prom_value(t, head) == 1);
  snprintf(head, sizeof head, "%s_bucket{le=\"0.005\"}", h);
  assert_true(prom_value(t, head) == 3);
  snprintf(head, sizeof head, "%s_bucket{le=\"2.5\"}", h);
  assert_true(prom_value(t, head) == 3);
  snprintf(head, sizeof head, "%s_bucket{le=\"+Inf\"}", h);
  assert_true(prom_value(t, head) == 4);
  snprintf(head, sizeof head, "%s_count", h);
  assert_true(prom_value(t, head) == 4);
  snprintf(head, sizeof head, "%s_sum", h);
  double sum = prom_value(t, head);
  assert_true(sum > 4.00603 && sum < 4.00605);
  assert_true(prom_value(t, "otherworld_action_results_total{type=\"move\",result=\"ok\"}") == 2);
  assert_true(prom_value(t, "otherworld_action_results_total{type=\"move\",result=\"OW_E_TOO_FAR\"}") == 1);
  assert_true(prom_value(t, "otherworld_action_results_total{type=\"type_200\",result=\"OW_E_UNKNOWN_ACTION\"}") == 1);
  assert_true(prom_value(t, "otherworld_name_info{value=\"q\\\"uote\\\\back\\nline\"}") == 1);
  assert_true(prom_value(t, "otherworld_players") == 0);
  assert_true(prom_value(t, "otherworld_sessions") == 0);
  assert_true(prom_value(t, "otherworld_rss_bytes") > 0);
  assert_true(prom_value(t, "otherworld_store_failed") == 0);
  ow_buf_deinit(&b);
  /* The same counts in /status, as an object of types of results. */
  json_t *j = ow_metrics_json(s);
  json_t *ar = json_object_get(j, "action_results");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(ar, "move"), "ok")), 2);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(ar, "move"), "OW_E_TOO_FAR")), 1);
  json_decref(j);
  uv_async_send(&fx.stop);
  run_and_finish(&fx);
}

/* ---- confirmations grouped by session ------------------------------------------------------ */

static void check_groups(const ow_applied *a, size_t n) {
  confirm_groups g;
  server_group_by_session(a, n, &g);
  /* Every action lands in exactly one group, at its place: rebuild the frame from the groups by
   * walking them in order with a cursor each, and compare with the input. */
  size_t total = g.ngroups ? g.start[g.ngroups] : 0;
  assert_int_equal(total, n);
  size_t *cur = calloc(g.ngroups + 1, sizeof *cur);
  for (size_t i = 0; i < n; i++) {
    size_t k = 0;
    while (k < g.ngroups && g.sessions[k] != a[i].session) k++;
    assert_true(k < g.ngroups);
    assert_true(g.start[k] + cur[k] < g.start[k + 1]);
    assert_int_equal(g.seqs[g.start[k] + cur[k]], a[i].seq);
    cur[k]++;
  }
  for (size_t k = 1; k < g.ngroups; k++) {
    /* Groups come in the order of each session's first action. */
    size_t fk = 0, fp = 0;
    while (a[fk].session != g.sessions[k]) fk++;
    while (a[fp].session != g.sessions[k - 1]) fp++;
    assert_true(fp < fk);
  }
  free(cur);
  server_groups_free(&g);
}

/* ow_server_on_durable's grouping (one pass and a map instead of one scan per session): sessions
 * interleaved, repeated, a session 0, one action, none, and a frame where every player acted. */
static void test_group_by_session(void **state) {
  (void)state;
  ow_applied a[8];
  memset(a, 0, sizeof a);
  uint64_t sess[] = {5, 7, 5, 9, 7, 5, 0, 9}, seq[] = {1, 1, 2, 1, 2, 3, 4, 2};
  for (int i = 0; i < 8; i++) a[i].session = sess[i], a[i].seq = seq[i];
  confirm_groups g;
  server_group_by_session(a, 8, &g);
  assert_int_equal(g.ngroups, 4);
  uint64_t want_sess[] = {5, 7, 9, 0}, want_seqs[] = {1, 2, 3, 1, 2, 1, 2, 4};
  size_t want_start[] = {0, 3, 5, 7, 8};
  for (int k = 0; k < 4; k++) assert_int_equal(g.sessions[k], want_sess[k]);
  for (int k = 0; k < 5; k++) assert_int_equal(g.start[k], want_start[k]);
  for (int i = 0; i < 8; i++) assert_int_equal(g.seqs[i], want_seqs[i]);
  server_groups_free(&g);
  server_group_by_session(a, 0, &g);
  assert_int_equal(g.ngroups, 0);
  server_groups_free(&g);
  check_groups(a, 1);
  check_groups(a, 8);
  /* 2000 sessions acting three times each in one frame, round-robin. */
  size_t n = 6000;
  ow_applied *big = calloc(n, sizeof *big);
  for (size_t i = 0; i < n; i++) big[i].session = 1000 + i % 2000, big[i].seq = 1 + i / 2000;
  server_group_by_session(big, n, &g);
  assert_int_equal(g.ngroups, 2000);
  for (size_t k = 0; k < g.ngroups; k++) {
    assert_int_equal(g.sessions[k], 1000 + k);
    assert_int_equal(g.start[k + 1] - g.start[k], 3);
    for (size_t r = 0; r < 3; r++) assert_int_equal(g.seqs[g.start[k] + r], 1 + r);
  }
  server_groups_free(&g);
  free(big);
}

int main(void) {
  ow_log_level = OW_LOG_WARN; /* one line per login and logout would bury cmocka's report */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_group_by_session),
      cmocka_unit_test(test_status_escapes_name),
      cmocka_unit_test(test_metrics_registry),
      cmocka_unit_test(test_prom_text),
      cmocka_unit_test(test_one_player),
      cmocka_unit_test(test_many_sessions_own_seqs),
      cmocka_unit_test(test_pose_versions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
