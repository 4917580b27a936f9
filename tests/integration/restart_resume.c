/* After a restart, sessions whose tokens are still valid resume: a real server is started on a
 * fresh store, a client (the C client library) logs in, moves its avatar three times and waits for
 * DURABLE; the server is stopped with SIGTERM (the client must get the "restarting" EVENT and BYE
 * shutdown) and started again on the same store; a new connection RESUMEs with the token and must
 * get the same account and avatar, last_seq 3, and see its avatar where the last durable move put
 * it. Usage: restart_resume SERVER_BINARY */
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

static char dir[] = "/tmp/ow-restart-XXXXXX";
static ow_test_server server;

static void die(const char *what) {
  fprintf(stderr, "restart_resume: FAIL: %s\n", what);
  if (server.pid > 0) ow_test_server_stop(&server, SIGKILL);
  exit(1);
}

/* Starts the server on a free port (tests/support) and returns the port. */
static int start(const char *bin) {
  static int runs;
  char log[300], data[300];
  snprintf(log, sizeof log, "%s/server%d.log", dir, ++runs);
  snprintf(data, sizeof data, "%s/data", dir);
  const char *args[] = {"--shutdown_notice_s", "0.2", "--pwhash_ops", "1", "--pwhash_mem_kb", "64",
                        NULL};
  if (ow_test_server_start(&server, bin, data, log, args, 30000)) die("server did not start");
  return server.port;
}

typedef struct st {
  int welcome, ok, session, joined, durable, system_event, bye_shutdown, closed;
  ow_client_session s;
  uint64_t last_durable_seq;
} st;

static void on_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)c, (void)req, (void)w;
  ((st *)ud)->welcome = 1;
}
static void on_ok(ow_client *c, void *ud, uint32_t req) {
  (void)c, (void)req;
  ((st *)ud)->ok++;
}
static void on_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)c, (void)req;
  ((st *)ud)->session = 1;
  ((st *)ud)->s = *s;
}
static void on_joined(ow_client *c, void *ud, uint32_t req, const ow_client_world *w) {
  (void)c, (void)req, (void)w;
  ((st *)ud)->joined = 1;
}
static void on_durable(ow_client *c, void *ud, uint64_t frame, int32_t status, const uint64_t *seqs,
                       size_t n) {
  (void)c, (void)frame;
  st *x = ud;
  if (status) die("DURABLE with an error status");
  for (size_t i = 0; i < n; i++) {
    x->durable++;
    if (seqs[i] > x->last_durable_seq) x->last_durable_seq = seqs[i];
  }
}
static void on_event(ow_client *c, void *ud, uint8_t kind, uint64_t from, const char *text, size_t n) {
  (void)c, (void)from;
  if (kind == OW_EVENT_SYSTEM && n >= 10 && !strncmp(text, "restarting", 10)) ((st *)ud)->system_event = 1;
}
static void on_bye(ow_client *c, void *ud, uint16_t reason, const char *text) {
  (void)c, (void)text;
  if (reason == OW_BYE_SHUTDOWN) ((st *)ud)->bye_shutdown = 1;
}
static void on_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c, (void)ud, (void)req;
  fprintf(stderr, "server error %d: %s\n", code, text);
  die("unexpected ERROR");
}
static void on_close(ow_client *c, void *ud) {
  (void)c;
  ((st *)ud)->closed = 1;
}

static void pump(ow_client_ctx *ctx, int *flag, int want, const char *what) {
  for (double end = ow_test_now() + 60; *flag < want && ow_test_now() < end;)
    ow_client_ctx_service(ctx, 10);
  if (*flag < want) die(what);
}

static void move(ow_client *c, uint64_t avatar, float x) {
  ow_action a;
  memset(&a, 0, sizeof a);
  a.type = OW_ACT_MOVE;
  a.target = avatar;
  a.xf.pos[0] = x;
  a.xf.pos[2] = 2;
  a.xf.rot[3] = 1;
  a.xf.scale[0] = a.xf.scale[1] = a.xf.scale[2] = 1;
  uint64_t seq;
  if (ow_client_action(c, &a, &seq) < 0) die("could not send an action");
}

int main(int argc, char **argv) {
  if (argc != 2) die("usage: restart_resume SERVER_BINARY");
  if (!mkdtemp(dir)) die("mkdtemp");
  ow_client_ctx_opts o = {0};
  ow_client_ctx *ctx;
  if (ow_client_ctx_create(&o, &ctx)) die("client context");
  ow_client_callbacks cb = {.on_welcome = on_welcome, .on_ok = on_ok, .on_session = on_session,
                            .on_joined = on_joined, .on_durable = on_durable, .on_event = on_event,
                            .on_bye = on_bye, .on_error = on_error, .on_close = on_close};

  int port = start(argv[1]);
  st a = {0};
  ow_client *c = ow_client_create(ctx, &cb, &a);
  if (ow_client_connect(c, "127.0.0.1", port, NULL) < 0) die("connect");
  ow_client_hello(c, "restart_resume");
  pump(ctx, &a.welcome, 1, "no WELCOME");
  ow_client_register(c, "restarter", "restart-password");
  pump(ctx, &a.ok, 1, "no OK for REGISTER");
  ow_client_login(c, "restarter", "restart-password");
  pump(ctx, &a.session, 1, "no SESSION");
  ow_client_join(c);
  pump(ctx, &a.joined, 1, "no JOINED");
  for (int i = 1; i <= 3; i++) move(c, a.s.avatar, (float)i);
  pump(ctx, &a.durable, 3, "three moves not durable");

  kill(server.pid, SIGTERM);
  pump(ctx, &a.system_event, 1, "no 'restarting' EVENT");
  pump(ctx, &a.bye_shutdown, 1, "no BYE shutdown");
  int status = ow_test_server_stop(&server, 0); /* already signalled: reap it */
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("server did not exit 0 on SIGTERM");
  pump(ctx, &a.closed, 1, "connection not closed");
  ow_client_destroy(c);

  port = start(argv[1]);
  st b = {0};
  c = ow_client_create(ctx, &cb, &b);
  if (ow_client_connect(c, "127.0.0.1", port, NULL) < 0) die("reconnect");
  ow_client_hello(c, "restart_resume");
  pump(ctx, &b.welcome, 1, "no WELCOME after restart");
  ow_client_resume(c, a.s.token);
  pump(ctx, &b.session, 1, "no SESSION for RESUME after restart");
  if (!b.s.resumed) die("SESSION not marked resumed");
  if (b.s.account != a.s.account || b.s.avatar != a.s.avatar) die("another account or avatar");
  if (b.s.last_seq != 3) die("last_seq is not 3");
  ow_client_join(c);
  pump(ctx, &b.joined, 1, "no JOINED after resume");
  const ow_wire_entity *e = NULL;
  for (double end = ow_test_now() + 30; !(e = ow_client_entity(c, a.s.avatar)) && ow_test_now() < end;)
    ow_client_ctx_service(ctx, 10);
  if (!e) die("own avatar not replicated after resume");
  if (e->pos[0] != 3000) die("avatar is not where the last durable move put it");
  move(c, a.s.avatar, 4); /* continues with seq 4 */
  pump(ctx, &b.durable, 1, "new action not durable after resume");
  if (b.last_durable_seq != 4) die("new action did not get seq 4");

  ow_client_destroy(c);
  ow_client_ctx_destroy(ctx);
  status = ow_test_server_stop(&server, SIGTERM);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("server did not exit 0 the second time");
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) return 1;
  printf("restart_resume: 1 passed, 0 failed\n");
  return 0;
}
