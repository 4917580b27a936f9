/* disk_faults: the real server binary on a real LMDB store under the faultfs shim (faultfs.c),
 * played by real clients (the C client library), for each way a disk can fail. Per case:
 *
 *  1. Start the server with the shim preloaded but not armed. Two players (alice, bob) register,
 *     log in, join; alice moves five times and every move is confirmed DURABLE (status 0); bob's
 *     view (confirmed reads) shows alice where the last move put her. /status gives the durable
 *     frame D.
 *  2. Arm the shim (create its trigger file) and make the next commit fail: an action's commit
 *     (eager, or at the tick), a checkpoint of streamed poses, or the final commit of SIGTERM.
 *  3. Check: the failed action gets DURABLE with the disk's error and no DURABLE with status 0
 *     ever arrives again; both players get one system EVENT "durability suspended"; a new action
 *     gets ERROR OW_E_STORE_FAILED and is not applied; PING, CHAT and POSE still work; bob's view
 *     still shows the last durable state; /status says "store_failed":true with the error and the
 *     durable frame is still D; a late client gets the EVENT after WELCOME, and REGISTER and LOGIN
 *     are refused with OW_E_STORE_FAILED; the shim injected exactly one fault; the server logged
 *     exactly one error line; SIGTERM makes it say goodbye and exit 1 (not 0: the final commit did
 *     not succeed).
 *  4. Restart without the shim on the same store: recovery reports frame D; bob RESUMEs and sees
 *     alice at the last confirmed position; alice RESUMEs with last_seq 5 (every confirmed action
 *     is there, none of the unconfirmed ones), and the client library re-sends the action that
 *     failed, which is applied as new (replayed = 0) and now confirmed; the refused account does
 *     not exist; SIGTERM exits 0.
 *
 * The case pg_down is the same story on a PostgreSQL store (run under tests/pg/pg_env.sh, ctest
 * pg_store_down): step 2 stops the database instead of arming the shim, and the server, waiting
 * store_outage_s = 1 for it, suspends durability the same way; step 4 starts it again first.
 *
 * Usage: disk_faults SERVER_BINARY FAULTFS_SO [CASE...]   (no CASE: all of the store's cases)
 * DISK_FAULTS_KEEP=1 keeps each case's directory (server logs, shim log, store) for inspection.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "otherworld/client.h"
#include "support.h"
#include "otherworld/protocol.h"

enum via { VIA_ACTION, VIA_CHECKPOINT, VIA_SHUTDOWN };

typedef struct fcase {
  const char *name;
  const char *kind; /* FAULTFS_KIND, or "pg_down": no shim, the PostgreSQL server is stopped */
  int status;       /* the error the failed frame must report */
  int status_or;    /* another one it may report instead (0: none) */
  enum via via;
  int eager; /* --eager_commit */
} fcase;

static const fcase cases[] = {
    {"eio_write", "eio_write", -EIO, 0, VIA_ACTION, 1},
    {"enospc_write", "enospc_write", -ENOSPC, 0, VIA_ACTION, 1},
    /* LMDB turns a short page write into EIO ("short write, filesystem full?"). */
    {"short_write", "short_write", -EIO, 0, VIA_ACTION, 1},
    {"eio_fsync", "eio_fsync", -EIO, 0, VIA_ACTION, 1},
    {"eio_fsync_tick", "eio_fsync", -EIO, 0, VIA_ACTION, 0},
    /* The O_DSYNC meta page write: LMDB also enters MDB_PANIC. */
    {"eio_meta", "eio_meta", -EIO, 0, VIA_ACTION, 1},
    {"checkpoint_eio_write", "eio_write", -EIO, 0, VIA_CHECKPOINT, 1},
    {"shutdown_eio_fsync", "eio_fsync", -EIO, 0, VIA_SHUTDOWN, 1},
    /* Nothing written (OW_E_RETRY, every attempt refused), or OW_E_STORE when the frame's COMMIT
     * was already sent as the database went away: its outcome is unknown and cannot be read back,
     * so the store may not call the failure retryable. Which one depends on when the client side
     * saw the connection close. */
    {"pg_down", "pg_down", OW_E_RETRY, OW_E_STORE, VIA_ACTION, 1},
};

#define MOVES 5
#define SUSPENDED "durability suspended"

static const fcase *cur;
static char dir[PATH_MAX];
static pid_t server = -1;
static int port, runs;
static char logpath[PATH_MAX + 32];
static int armed; /* the fault is armed: a DURABLE with status 0 is a failure from now on */
static int want_status; /* the error the failed frame reported (cur->status or cur->status_or) */

static bool is_pg(void) { return !strcmp(cur->kind, "pg_down"); }

/* Runs tests/pg/pg_env.sh's control script: "start" or "stop" the PostgreSQL server. */
static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void pg_ctl(const char *what) {
  const char *ctl = getenv("OW_TEST_PG_CTL");
  char cmd[PATH_MAX + 16];
  if (!ctl) die("pg_down needs tests/pg/pg_env.sh (OW_TEST_PG_CTL)");
  snprintf(cmd, sizeof cmd, "'%s' %s", ctl, what);
  if (system(cmd)) die("%s failed", cmd);
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "disk_faults: FAIL [%s]: ", cur ? cur->name : "-");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  if (logpath[0]) {
    char cmd[PATH_MAX + 64];
    fprintf(stderr, "--- server log %s\n", logpath);
    snprintf(cmd, sizeof cmd, "tail -n 40 '%s' >&2", logpath);
    if (system(cmd)) {}
  }
  if (server > 0) kill(server, SIGKILL);
  exit(1);
}

/* ---- the server ---------------------------------------------------------------------------- */

/* Under AddressSanitizer (gcc links libasan dynamically) the runtime must be the first library the
 * server loads, before the shim: find the one this harness itself runs with. */
static char asan_lib[PATH_MAX];
static int find_asan(struct dl_phdr_info *info, size_t size, void *ud) {
  (void)size, (void)ud;
  if (info->dlpi_name && strstr(info->dlpi_name, "/libasan.so")) {
    snprintf(asan_lib, sizeof asan_lib, "%s", info->dlpi_name);
    return 1;
  }
  return 0;
}

/* Starts the server (under the shim when shim != NULL) and returns once it listens. */
static void start(const char *bin, const char *shim, const char *checkpoint_s) {
  char data[PATH_MAX + 8];
  snprintf(logpath, sizeof logpath, "%s/server%d.log", dir, ++runs);
  snprintf(data, sizeof data, "%s/data", dir);
  /* The shim's settings go to the child through the environment, set only around its start. */
  static const char *const vars[] = {"LD_PRELOAD", "FAULTFS_KIND", "FAULTFS_DIR", "FAULTFS_ARM",
                                     "FAULTFS_LOG"};
  if (shim) {
    char pre[2 * PATH_MAX + 2], arm[PATH_MAX + 8], flog[PATH_MAX + 16];
    snprintf(pre, sizeof pre, "%s%s%s", asan_lib, asan_lib[0] ? " " : "", shim);
    snprintf(arm, sizeof arm, "%s/arm", dir);
    snprintf(flog, sizeof flog, "%s/faultfs.log", dir);
    setenv("LD_PRELOAD", pre, 1);
    setenv("FAULTFS_KIND", cur->kind, 1);
    setenv("FAULTFS_DIR", data, 1);
    setenv("FAULTFS_ARM", arm, 1);
    setenv("FAULTFS_LOG", flog, 1);
  }
  /* store_outage_s matters only on PostgreSQL: how long the frame waits for a stopped server. */
  const char *const args[] = {"--shutdown_notice_s", "0.2", "--pwhash_ops", "1", "--pwhash_mem_kb",
                              "64", "--checkpoint_s", checkpoint_s, "--eager_commit",
                              cur->eager ? "1" : "0", "--store_outage_s", "1", NULL};
  ow_test_server ts;
  int rc = ow_test_server_start(&ts, bin, data, logpath, args, 30000);
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  if (rc) die("server did not start (see %s)", logpath);
  server = ts.pid;
  port = ts.port;
}

/* The exit code of the server (or die if it did not exit normally). */
static int wait_exit(void) {
  int st;
  if (waitpid(server, &st, 0) != server) die("waitpid: %s", strerror(errno));
  server = -1;
  if (!WIFEXITED(st)) die("server did not exit normally (signal %d)", WTERMSIG(st));
  return WEXITSTATUS(st);
}

static int stop(void) {
  kill(server, SIGTERM);
  return wait_exit();
}

/* Counts the lines of a file containing `needle` (all of them when needle is NULL). */
static int count_lines(const char *path, const char *needle, char *first, size_t firstn) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[4096];
  int n = 0;
  while (fgets(line, sizeof line, f))
    if (!needle || strstr(line, needle)) {
      if (!n && first) snprintf(first, firstn, "%s", line);
      n++;
    }
  fclose(f);
  return n;
}

/* GET /status: the body in out. */
static void get_status(char *out, size_t n) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) die("status: connect");
  const char req[] = "GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (write(fd, req, sizeof req - 1) != (ssize_t)sizeof req - 1) die("status: write");
  size_t got = 0;
  ssize_t r;
  while (got + 1 < n && (r = read(fd, out + got, n - 1 - got)) > 0) got += (size_t)r;
  out[got] = 0;
  close(fd);
  char *body = strstr(out, "\r\n\r\n");
  if (!body || !strchr(body, '{')) die("status: no JSON in %s", out);
  memmove(out, strchr(body, '{'), strlen(strchr(body, '{')) + 1);
}

static unsigned long long json_u64(const char *json, const char *key) {
  char k[64];
  snprintf(k, sizeof k, "\"%s\":", key);
  const char *p = strstr(json, k);
  if (!p) die("status has no %s: %s", key, json);
  return strtoull(p + strlen(k), NULL, 10);
}

/* ---- players ------------------------------------------------------------------------------- */

typedef struct player {
  const char *name;
  ow_client *c;
  /* this connection */
  int welcome, ok, session, joined, snapshots, closed, bye_shutdown, restarting, pongs;
  int suspended;      /* system EVENTs saying durability is suspended */
  ow_client_session s;
  /* whole run */
  uint64_t watch;     /* avatar whose poses we count */
  int poses_seen;     /* POSES entries about `watch` */
  int chats;          /* chat EVENTs */
  int applied;        /* APPLIED replies */
  uint64_t applied_seq;
  int applied_code, applied_replayed;
  int durable_ok;     /* actions confirmed with status 0 */
  uint64_t confirmed_max;
  int durable_fail;   /* DURABLE messages with a negative status */
  int fail_status;
  uint64_t fail_seq;  /* a seq listed by a failed DURABLE */
  int errors, error_code;
  uint32_t error_req;
} player;

static void cb_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)c, (void)req, (void)w;
  ((player *)ud)->welcome++;
}
static void cb_ok(ow_client *c, void *ud, uint32_t req) {
  (void)c, (void)req;
  ((player *)ud)->ok++;
}
static void cb_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)c, (void)req;
  player *p = ud;
  p->session++;
  p->s = *s;
}
static void cb_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)c, (void)req, (void)w;
  ((player *)ud)->joined++;
}
static void cb_snapshot(ow_client *c, void *ud, uint32_t id, uint32_t base, uint64_t frame) {
  (void)c, (void)id, (void)base, (void)frame;
  ((player *)ud)->snapshots++;
}
static void cb_applied(ow_client *c, void *ud, uint32_t req, uint64_t seq, const ow_result *r,
                       uint64_t frame, bool replayed) {
  (void)c, (void)req, (void)frame;
  player *p = ud;
  p->applied++;
  p->applied_seq = seq;
  p->applied_code = r->code;
  p->applied_replayed = replayed;
}
static void cb_durable(ow_client *c, void *ud, uint64_t frame, int32_t status, const uint64_t *seqs,
                       size_t n) {
  (void)c;
  player *p = ud;
  if (status == 0) {
    if (armed)
      die("%s: DURABLE status 0 for frame %llu (%zu actions) after the disk fault", p->name,
          (unsigned long long)frame, n);
    for (size_t i = 0; i < n; i++) {
      p->durable_ok++;
      if (seqs[i] > p->confirmed_max) p->confirmed_max = seqs[i];
    }
  } else {
    if (!armed) die("%s: DURABLE status %d before the fault was armed", p->name, status);
    p->durable_fail++;
    p->fail_status = status;
    for (size_t i = 0; i < n; i++) p->fail_seq = seqs[i];
  }
}
static void cb_poses(ow_client *c, void *ud, uint32_t tick, uint64_t avatar, const ow_pose *pose) {
  (void)c, (void)tick, (void)pose;
  player *p = ud;
  if (avatar == p->watch) p->poses_seen++;
}
static void cb_event(ow_client *c, void *ud, uint8_t kind, uint64_t from, const char *text,
                     size_t n) {
  (void)c, (void)from, (void)n;
  player *p = ud;
  if (kind == OW_EVENT_CHAT) p->chats++;
  if (kind == OW_EVENT_SYSTEM && strstr(text, SUSPENDED)) {
    p->suspended++;
    if (p->suspended > 1) die("%s: told twice on one connection", p->name);
  }
  if (kind == OW_EVENT_SYSTEM && !strncmp(text, "restarting", 10)) p->restarting++;
}
static void cb_pong(ow_client *c, void *ud, uint32_t req, uint64_t ct, uint64_t st) {
  (void)c, (void)req, (void)ct, (void)st;
  ((player *)ud)->pongs++;
}
static void cb_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c;
  player *p = ud;
  if (!req) die("%s: local or unsolicited error %s: %s", p->name, ow_err_name(code), text);
  p->errors++;
  p->error_code = code;
  p->error_req = req;
}
static void cb_bye(ow_client *c, void *ud, uint16_t reason, const char *text) {
  (void)c;
  player *p = ud;
  if (reason != OW_BYE_SHUTDOWN) die("%s: unexpected BYE %u: %s", p->name, reason, text);
  p->bye_shutdown++;
}
static void cb_close(ow_client *c, void *ud) {
  (void)c;
  ((player *)ud)->closed++;
}

static const ow_client_callbacks callbacks = {
    .on_welcome = cb_welcome, .on_ok = cb_ok, .on_session = cb_session, .on_joined = cb_joined,
    .on_applied = cb_applied, .on_durable = cb_durable, .on_snapshot = cb_snapshot,
    .on_poses = cb_poses, .on_event = cb_event, .on_pong = cb_pong, .on_error = cb_error,
    .on_bye = cb_bye, .on_close = cb_close};

static ow_client_ctx *ctx;

/* Runs the clients until *flag reaches want. The bound only turns a hang into a failure. */
static void pump(int *flag, int want, const char *what, const char *who) {
  for (int i = 0; i < 3000 && *flag < want; i++) ow_client_ctx_service(ctx, 10);
  if (*flag < want) die("%s: %s", who, what);
}

static void connect_player(player *p) {
  p->welcome = p->ok = p->session = p->joined = p->snapshots = p->closed = 0;
  p->bye_shutdown = p->restarting = p->pongs = p->suspended = 0;
  if (ow_client_connect(p->c, "127.0.0.1", port, NULL) < 0) die("%s: connect", p->name);
  ow_client_hello(p->c, "disk_faults");
  pump(&p->welcome, 1, "no WELCOME", p->name);
}

static void enter(player *p) {
  connect_player(p);
  ow_client_register(p->c, p->name, "fault-password");
  pump(&p->ok, 1, "no OK for REGISTER", p->name);
  ow_client_login(p->c, p->name, "fault-password");
  pump(&p->session, 1, "no SESSION", p->name);
  ow_client_join(p->c);
  pump(&p->joined, 1, "no JOINED", p->name);
}

static void rejoin(player *p) {
  connect_player(p);
  ow_client_resume(p->c, p->s.token);
  pump(&p->session, 1, "no SESSION for RESUME", p->name);
  if (!p->s.resumed) die("%s: SESSION not marked resumed", p->name);
  ow_client_join(p->c);
  pump(&p->joined, 1, "no JOINED after RESUME", p->name);
  /* The first snapshot after JOIN is a full state: the table no longer holds the old server's. */
  pump(&p->snapshots, 1, "no snapshot after JOIN", p->name);
}

static int move(player *p, float x) {
  ow_action a;
  memset(&a, 0, sizeof a);
  a.type = OW_ACT_MOVE;
  a.target = p->s.avatar;
  a.xf.pos[0] = x;
  a.xf.pos[2] = 2;
  a.xf.rot[3] = 1;
  a.xf.scale[0] = a.xf.scale[1] = a.xf.scale[2] = 1;
  int req = ow_client_action(p->c, &a, NULL);
  if (req < 0) die("%s: could not send an action: %s", p->name, ow_err_name(req));
  return req;
}

static void pose(player *p, float x) {
  ow_pose po;
  float pos[3] = {x, 0, 2}, rot[4] = {0, 0, 0, 1};
  if (ow_client_pose_build(&po, pos, rot, 0, 0, NULL) || ow_client_pose(p->c, &po))
    die("%s: could not send a pose", p->name);
}

/* Where `viewer`'s confirmed-read view puts `p`'s avatar (x in millimetres). */
static int seen_x(player *viewer, const player *p) {
  const ow_wire_entity *e = ow_client_entity(viewer->c, p->s.avatar);
  return e ? e->pos[0] : INT_MIN;
}

static void await_seen_x(player *viewer, const player *p, int x_mm, const char *what) {
  for (int i = 0; i < 3000 && seen_x(viewer, p) != x_mm; i++) ow_client_ctx_service(ctx, 10);
  if (seen_x(viewer, p) != x_mm)
    die("%s: %s sees %s at x=%d mm, want %d", what, viewer->name, p->name, seen_x(viewer, p), x_mm);
}

/* ---- one case ------------------------------------------------------------------------------ */

static void run_case(const char *bin, const char *shim) {
  char tmpl[] = "/tmp/ow-faults-XXXXXX";
  if (!mkdtemp(tmpl)) die("mkdtemp: %s", strerror(errno));
  snprintf(dir, sizeof dir, "%s", tmpl);
  runs = 0;
  armed = 0;
  const char *cp = cur->via == VIA_CHECKPOINT ? "0.3" : "60";
  start(bin, is_pg() ? NULL : shim, cp);
  want_status = cur->status;

  player a = {.name = "alice"}, b = {.name = "bob"}, c = {.name = "carol"};
  a.c = ow_client_create(ctx, &callbacks, &a);
  b.c = ow_client_create(ctx, &callbacks, &b);
  enter(&a);
  enter(&b);
  a.watch = b.s.avatar;
  b.watch = a.s.avatar;

  /* 1. Confirmed actions and the view of them. */
  for (int i = 1; i <= MOVES; i++) move(&a, (float)i);
  pump(&a.durable_ok, MOVES, "moves not confirmed durable", a.name);
  if (a.confirmed_max != MOVES)
    die("confirmed up to seq %llu", (unsigned long long)a.confirmed_max);
  await_seen_x(&b, &a, MOVES * 1000, "before the fault");
  char st[4096];
  get_status(st, sizeof st);
  if (!strstr(st, "\"store_failed\":false")) die("status before the fault: %s", st);
  unsigned long long d0 = json_u64(st, "durable_frame");

  /* 2. Arm the shim and make the next commit fail. */
  if (is_pg()) {
    pg_ctl("stop");
  } else {
    char armpath[PATH_MAX + 8];
    snprintf(armpath, sizeof armpath, "%s/arm", dir);
    int fd = open(armpath, O_WRONLY | O_CREAT, 0644);
    if (fd < 0) die("arm: %s", strerror(errno));
    close(fd);
  }
  armed = 1;
  int applied0 = a.applied;
  if (cur->via == VIA_ACTION) {
    move(&a, 50);
    pump(&a.durable_fail, 1, "no failed DURABLE for the action after the fault", a.name);
    if (a.applied != applied0 + 1 || a.applied_seq != MOVES + 1 || a.applied_code ||
        a.applied_replayed)
      die("the action after the fault was not APPLIED as seq %d", MOVES + 1);
    if (cur->status_or && a.fail_status == cur->status_or) want_status = cur->status_or;
    if (a.fail_status != want_status || a.fail_seq != MOVES + 1)
      die("failed DURABLE status %s for seq %llu, want %s for seq %d", ow_err_name(a.fail_status),
          (unsigned long long)a.fail_seq, ow_err_name(cur->status), MOVES + 1);
    if (ow_client_unconfirmed(a.c) != 1) die("the failed action is not kept for re-sending");
  } else {
    /* No action: the streamed pose is written only by a checkpoint (timer, or SIGTERM's). */
    pose(&a, 9);
    pump(&b.poses_seen, 1, "the pose after arming did not reach bob", b.name);
  }

  if (cur->via == VIA_SHUTDOWN) {
    kill(server, SIGTERM);
    pump(&a.bye_shutdown, 1, "no BYE after SIGTERM", a.name);
    pump(&b.bye_shutdown, 1, "no BYE after SIGTERM", b.name);
    if (a.suspended != 1 || b.suspended != 1) die("the failed final commit was not told");
  } else {
    pump(&a.suspended, 1, "not told that durability is suspended", a.name);
    pump(&b.suspended, 1, "not told that durability is suspended", b.name);

    /* 3. New actions are refused; the rest keeps working from the last good state. */
    int errors0 = a.errors;
    int req = move(&a, 60);
    pump(&a.errors, errors0 + 1, "no ERROR for an action after the fault", a.name);
    if (a.error_code != OW_E_STORE_FAILED || a.error_req != (uint32_t)req)
      die("action after the fault: %s, want OW_E_STORE_FAILED", ow_err_name(a.error_code));
    ow_client_ping(a.c, 42);
    pump(&a.pongs, 1, "no PONG after the fault", a.name);
    int ok0 = a.ok;
    ow_client_chat(a.c, "still here");
    pump(&a.ok, ok0 + 1, "no OK for CHAT after the fault", a.name);
    pump(&b.chats, 1, "chat after the fault not delivered", b.name);
    int poses0 = b.poses_seen;
    pose(&a, 7);
    pump(&b.poses_seen, poses0 + 1, "poses stopped after the fault", b.name);
    if (a.applied != applied0 + (cur->via == VIA_ACTION))
      die("an action was applied after the fault");
    if (seen_x(&b, &a) != MOVES * 1000)
      die("bob's view left the last durable state: alice at x=%d mm", seen_x(&b, &a));

    /* RESUME needs no write and still works; the client library re-sends the action whose frame
     * failed, which is answered from memory (replayed) and told at once that it is not durable. */
    int fail0 = a.durable_fail, applied2 = a.applied;
    ow_client_close(a.c);
    pump(&a.closed, 1, "connection not closed", a.name);
    rejoin(&a);
    pump(&a.suspended, 1, "not told again after RESUME", a.name);
    if (a.s.last_seq != (uint64_t)MOVES + (cur->via == VIA_ACTION))
      die("RESUME during the fault: last_seq %llu", (unsigned long long)a.s.last_seq);
    if (cur->via == VIA_ACTION) {
      pump(&a.applied, applied2 + 1, "the failed action was not re-sent after RESUME", a.name);
      if (a.applied_seq != MOVES + 1 || !a.applied_replayed)
        die("re-sent seq %llu not answered as a replay", (unsigned long long)a.applied_seq);
      pump(&a.durable_fail, fail0 + 1, "the replayed action was not told it is not durable",
           a.name);
      if (a.fail_status != want_status || a.fail_seq != MOVES + 1)
        die("replay: DURABLE status %s for seq %llu", ow_err_name(a.fail_status),
            (unsigned long long)a.fail_seq);
      if (ow_client_unconfirmed(a.c) != 1) die("the failed action is no longer kept");
    }
    get_status(st, sizeof st);
    char want[96];
    snprintf(want, sizeof want, "\"store_failed\":true,\"store_error\":\"%s\"",
             ow_err_name(want_status));
    if (!strstr(st, want) || json_u64(st, "durable_frame") != d0)
      die("status after the fault: %s (want %s and durable_frame %llu)", st, want, d0);

    /* A client arriving now is told too, and cannot create an account or a session. */
    c.c = ow_client_create(ctx, &callbacks, &c);
    connect_player(&c);
    pump(&c.suspended, 1, "a late client was not told", c.name);
    ow_client_register(c.c, "carol", "fault-password");
    pump(&c.errors, 1, "no ERROR for REGISTER after the fault", c.name);
    if (c.error_code != OW_E_STORE_FAILED) die("REGISTER: %s", ow_err_name(c.error_code));
    ow_client_login(c.c, "bob", "fault-password");
    pump(&c.errors, 2, "no ERROR for LOGIN after the fault", c.name);
    if (c.error_code != OW_E_STORE_FAILED) die("LOGIN: %s", ow_err_name(c.error_code));
    ow_client_destroy(c.c);

    int rc = stop();
    if (rc != 1) die("exit code %d after SIGTERM with a failed store, want 1", rc);
    pump(&a.bye_shutdown, 1, "no BYE after SIGTERM", a.name);
    pump(&b.bye_shutdown, 1, "no BYE after SIGTERM", b.name);
  }
  if (cur->via == VIA_SHUTDOWN) {
    int rc = wait_exit();
    if (rc != 1) die("exit code %d after SIGTERM with a failed final commit, want 1", rc);
  }
  if (a.restarting != 1 || b.restarting != 1) die("no 'restarting' EVENT");
  pump(&a.closed, 1, "connection not closed", a.name);
  pump(&b.closed, 1, "connection not closed", b.name);

  /* What the faulted run left behind. */
  char flog[PATH_MAX + 16], line[4096] = "";
  if (is_pg()) {
    /* The store's own line, once however many writes found the server gone. */
    int down = count_lines(logpath, "event=store_pg_unreachable", line, sizeof line);
    if (down != 1) die("%d store_pg_unreachable lines, want 1", down);
  } else {
    snprintf(flog, sizeof flog, "%s/faultfs.log", dir);
    int injected = count_lines(flog, "faultfs injected", line, sizeof line);
    if (injected != 1) die("the shim injected %d faults, want 1", injected);
  }
  fprintf(stderr, "disk_faults: [%s] %s", cur->name, line);
  int errlines = count_lines(logpath, "level=error", NULL, 0);
  int suspended = count_lines(logpath, "event=durability_suspended", line, sizeof line);
  if (errlines != 1 + is_pg() || suspended != 1)
    die("%d error lines in the server log, want %d with 1 durability_suspended (%d)", errlines,
        1 + is_pg(), suspended);
  if (cur->via != VIA_ACTION && !strstr(line, " actions=0 "))
    die("the failed frame should hold no action: %s", line);
  fprintf(stderr, "disk_faults: [%s] %s", cur->name, line);
  char stopped[64];
  snprintf(stopped, sizeof stopped, "store_error=%s", ow_err_name(want_status));
  if (count_lines(logpath, stopped, NULL, 0) != 1) die("the stopped line does not say %s", stopped);

  /* 4. Restart without the shim: recovery re-reads what is really on disk. */
  armed = 0;
  if (is_pg()) pg_ctl("start");
  start(bin, NULL, "60");
  char rec[PATH_MAX + 64];
  snprintf(rec, sizeof rec, "event=recovered store=lmdb:%s/data seeded=0", dir);
  if (count_lines(logpath, is_pg() ? "event=recovered store=postgres:" : rec, line, sizeof line) != 1 ||
      !strstr(line, " seeded=0 "))
    die("no recovery line");
  char *fr = strstr(line, " frame=");
  if (!fr || strtoull(fr + 7, NULL, 10) != d0)
    die("recovered %s, want frame=%llu (the last durable frame)", line, d0);
  rejoin(&b);
  await_seen_x(&b, &a, MOVES * 1000, "after the restart");
  if (b.suspended) die("the restarted server says durability is suspended");
  int durable0 = a.durable_ok, applied1 = a.applied;
  rejoin(&a);
  if (a.s.last_seq != MOVES)
    die("alice resumed with last_seq %llu, want %d (the confirmed ones, no more)",
        (unsigned long long)a.s.last_seq, MOVES);
  if (cur->via == VIA_ACTION) {
    /* The library re-sends the action whose frame failed: it was not on disk, so it is new. */
    pump(&a.applied, applied1 + 1, "the failed action was not re-sent", a.name);
    if (a.applied_seq != MOVES + 1 || a.applied_replayed || a.applied_code)
      die("re-sent seq %llu replayed=%d code=%d", (unsigned long long)a.applied_seq,
          a.applied_replayed, a.applied_code);
    pump(&a.durable_ok, durable0 + 1, "the re-sent action was not confirmed", a.name);
    await_seen_x(&b, &a, 50000, "after the re-sent move");
  } else {
    move(&a, 11);
    pump(&a.durable_ok, durable0 + 1, "a new action was not confirmed", a.name);
    await_seen_x(&b, &a, 11000, "after a new move");
  }
  if (ow_client_unconfirmed(a.c)) die("actions left unconfirmed after the restart");
  c = (player){.name = "carol"};
  c.c = ow_client_create(ctx, &callbacks, &c);
  connect_player(&c);
  if (c.suspended) die("the restarted server still says durability is suspended");
  ow_client_login(c.c, "carol", "fault-password");
  pump(&c.errors, 1, "no ERROR for carol's LOGIN", c.name);
  if (c.error_code != OW_E_AUTH)
    die("carol's refused account exists: %s", ow_err_name(c.error_code));
  get_status(st, sizeof st);
  if (!strstr(st, "\"store_failed\":false,\"store_error\":\"OK\""))
    die("status after restart: %s", st);
  ow_client_destroy(c.c);
  ow_client_destroy(a.c);
  ow_client_destroy(b.c);
  int rc = stop();
  if (rc != 0) die("exit code %d after SIGTERM on a healthy store", rc);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (getenv("DISK_FAULTS_KEEP")) fprintf(stderr, "disk_faults: [%s] kept %s\n", cur->name, dir);
  else if (system(cmd)) die("rm -rf %s", dir);
  logpath[0] = 0;
  fprintf(stderr, "disk_faults: [%s] ok: durable_frame=%llu confirmed=%d status=%s\n", cur->name,
          d0, MOVES, ow_err_name(want_status));
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: disk_faults SERVER_BINARY FAULTFS_SO [CASE...]\ncases:");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) fprintf(stderr, " %s", cases[i].name);
    fprintf(stderr, "\n");
    return 2;
  }
  char shim[PATH_MAX];
  if (!realpath(argv[2], shim)) die("shim %s: %s", argv[2], strerror(errno));
  dl_iterate_phdr(find_asan, NULL);
  if (asan_lib[0])
    fprintf(stderr, "disk_faults: AddressSanitizer build: preloading %s first\n", asan_lib);
  ow_client_ctx_opts o = {0};
  if (ow_client_ctx_create(&o, &ctx)) die("client context");
  int passed = 0;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    /* All cases: the shim's on LMDB, pg_down under tests/pg/pg_env.sh (OW_TEST_PG). */
    bool chosen = argc == 3 && !strcmp(cases[i].kind, "pg_down") == !!getenv("OW_TEST_PG");
    for (int k = 3; k < argc; k++) chosen |= !strcmp(argv[k], cases[i].name);
    if (!chosen) continue;
    cur = &cases[i];
    run_case(argv[1], shim);
    passed++;
  }
  ow_client_ctx_destroy(ctx);
  if (!passed) die("no such case");
  printf("disk_faults: %d passed, 0 failed\n", passed);
  return 0;
}
