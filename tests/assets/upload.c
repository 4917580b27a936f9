/* integration_assets_upload: the asset routes of the real server over real HTTP (docs/assets.md).
 *
 * Two players log in over WebSocket (C client library) for their session tokens; then, over plain
 * HTTP/1.1 on the same port: a valid GLB is uploaded (201, its BLAKE2b-256 digest), fetched back
 * byte for byte, uploaded again (200, deduplicated, the quota unchanged) and by the other player
 * (deduplicated: one file on disk). Garbage, a truncated GLB, an asset whose accessor bounds lie,
 * an oversized Content-Length (413 before any body is sent), no token, a malformed and an unknown
 * token, the quota, and an upload abandoned half way are each refused with a clear error, and
 * nothing is stored for any of them (the files under data_dir/assets are counted). After a
 * restart the stored assets are served and the quota still counts them.
 * Usage: integration_assets_upload SERVER_BINARY [-v]. */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "otherworld/client.h"
#include "otherworld/protocol.h"
#include "support.h"

static char *dir;
static ow_test_server srv;
static ow_client_ctx *ctx;
static int verbose, checks;

static void die(const char *what) {
  fprintf(stderr, "assets_upload: FAIL: %s\n", what);
  if (srv.pid > 0) {
    fprintf(stderr, "server log: %s\n", srv.log);
    kill(srv.pid, SIGKILL);
  }
  exit(1);
}

static void check(bool ok, const char *what) {
  checks++;
  if (!ok) die(what);
  if (verbose) fprintf(stderr, "ok %s\n", what);
}

/* ---- players (for their tokens) -------------------------------------------------------------- */

typedef struct player {
  ow_client *c;
  int welcome, sessions, ok, err;
  ow_client_session s;
} player;

static void on_welcome(ow_client *c, void *ud, uint32_t req, const ow_client_welcome *w) {
  (void)c, (void)req, (void)w;
  ((player *)ud)->welcome++;
}
static void on_ok(ow_client *c, void *ud, uint32_t req) {
  (void)c, (void)req;
  ((player *)ud)->ok++;
}
static void on_error(ow_client *c, void *ud, uint32_t req, int code, const char *text) {
  (void)c, (void)req, (void)code, (void)text;
  ((player *)ud)->err++;
}
static void on_session(ow_client *c, void *ud, uint32_t req, const ow_client_session *s) {
  (void)c, (void)req;
  player *p = ud;
  p->s = *s;
  p->sessions++;
}
static const ow_client_callbacks callbacks = {
    .on_welcome = on_welcome, .on_ok = on_ok, .on_session = on_session, .on_error = on_error};

#define WAIT(cond, what)                                                    \
  do {                                                                      \
    double end_ = ow_test_now() + 60;                                       \
    while (!(cond) && ow_test_now() < end_) ow_client_ctx_service(ctx, 10); \
    if (!(cond)) die(what);                                                 \
  } while (0)

/* Registers (once) and logs in; returns the token as 64 hex digits in hex. */
static void login(player *p, const char *name, bool reg, char hex[2 * OW_TOKEN_LEN + 1]) {
  memset(p, 0, sizeof *p);
  p->c = ow_client_create(ctx, &callbacks, p);
  if (ow_client_connect(p->c, "127.0.0.1", srv.port, NULL) < 0) die("connect");
  ow_client_hello(p->c, "assets_upload");
  WAIT(p->welcome, "no WELCOME");
  char pw[64];
  snprintf(pw, sizeof pw, "%s-password", name);
  if (reg) {
    ow_client_register(p->c, name, pw);
    WAIT(p->ok || p->err, "no reply to REGISTER");
    if (!p->ok) die("REGISTER refused");
  }
  ow_client_login(p->c, name, pw);
  WAIT(p->sessions || p->err, "no reply to LOGIN");
  if (!p->sessions) die("LOGIN refused");
  sodium_bin2hex(hex, 2 * OW_TOKEN_LEN + 1, p->s.token, OW_TOKEN_LEN);
}

/* ---- HTTP (tests/support/http.c) ------------------------------------------------------------- */

typedef ow_test_resp resp;

static resp http_x(const char *method, const char *path, const char *auth, const void *body, size_t n,
                   size_t body_sent, bool hang_up) {
  resp r = ow_test_http(srv.port, method, path, auth, body, n, body_sent, hang_up);
  if (!hang_up && !r.status) die("no HTTP response");
  if (verbose && !hang_up)
    fprintf(stderr, "  %s %s -> %d %s %.300s", method, path, r.status, r.type, r.n < 400 ? (char *)r.body : "\n");
  return r;
}

static resp post(const char *auth, const void *body, size_t n) { return http_x("POST", "/assets", auth, body, n, n, false); }
static resp get(const char *auth, const char *path) { return http_x("GET", path, auth, NULL, 0, 0, false); }

static uint8_t *slurp(const char *rel, size_t *n) {
  FILE *f = fopen(ow_test_source_path(rel), "rb");
  if (!f) die("cannot read a seed asset");
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc(*n);
  if (fread(p, 1, *n, f) != *n) die("short read");
  fclose(f);
  return p;
}

/* Files in data/assets/SUB (names not starting with '.'), recursively for owners/. */
static int count_files(const char *sub) {
  char path[600];
  snprintf(path, sizeof path, "%s/data/assets/%s", dir, sub);
  DIR *d = opendir(path);
  if (!d) return 0;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    if (e->d_type == DT_DIR) {
      char s2[700];
      snprintf(s2, sizeof s2, "%s/%s", sub, e->d_name);
      n += count_files(s2);
    } else {
      n++;
    }
  }
  closedir(d);
  return n;
}

static bool has(const resp *r, const char *s) { return r->body && strstr((const char *)r->body, s); }

static void start(void) {
  /* A quota of 4194 bytes: the 2192-byte avatar and the 1408-byte sparse asset fit, a third does not. */
  const char *const args[] = {"--pwhash_ops", "1", "--pwhash_mem_kb", "64", "--shutdown_notice_s", "0",
                              "--asset_quota_mb", "0.004", NULL};
  char data[600], log[600];
  snprintf(data, sizeof data, "%s/data", dir);
  snprintf(log, sizeof log, "%s/server.log", dir);
  if (ow_test_server_start(&srv, getenv("OW_TEST_BIN"), data, log, args, 30000)) die("server did not start");
}

static void stop(void) {
  int st = ow_test_server_stop(&srv, SIGTERM);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("server did not exit 0 on SIGTERM");
}

static void free_resp(resp *r) { ow_test_resp_free(r); }

int main(int argc, char **argv) {
  if (argc < 2) die("usage: integration_assets_upload SERVER_BINARY [-v]");
  verbose = argc > 2 && !strcmp(argv[2], "-v");
  setenv("OW_TEST_BIN", argv[1], 1);
  if (sodium_init() < 0) die("sodium");
  dir = ow_test_mkdtemp("assets-upload");
  ow_client_ctx_opts o = {0};
  if (ow_client_ctx_create(&o, &ctx)) die("client context");
  start();
  player alice, bob;
  char ta[2 * OW_TOKEN_LEN + 1], tb[2 * OW_TOKEN_LEN + 1], auth_a[100], auth_b[100];
  login(&alice, "alice", true, ta);
  login(&bob, "bob", true, tb);
  snprintf(auth_a, sizeof auth_a, "Bearer %s", ta);
  snprintf(auth_b, sizeof auth_b, "Bearer %s", tb);

  size_t n, n2, n3;
  uint8_t *glb = slurp("tests/fuzz/corpus/gltf/seed-skinned.glb", &n);
  uint8_t *glb2 = slurp("tests/fuzz/corpus/gltf/seed-sparse-morph.glb", &n2);
  uint8_t *glb3 = slurp("tests/fuzz/corpus/gltf/seed-triangle.glb", &n3);
  uint8_t dg[32];
  char hex[65], path[100];
  crypto_generichash(dg, sizeof dg, glb, n, NULL, 0);
  sodium_bin2hex(hex, sizeof hex, dg, sizeof dg);
  snprintf(path, sizeof path, "/assets/%s", hex);

  /* A valid GLB: stored, named by its digest, served back byte for byte. */
  resp r = post(auth_a, glb, n);
  check(r.status == 201, "a valid GLB is stored (201)");
  check(has(&r, hex), "the reply names the BLAKE2b-256 digest");
  check(has(&r, "\"deduplicated\":false") && has(&r, "\"rank\":\"Excellent\"") && has(&r, "\"bones\":2"),
        "the reply says new, its rank and figures");
  free_resp(&r);
  check(count_files("blobs") == 1 && count_files("owners") == 1, "one blob, one ownership on disk");
  r = get(auth_b, path);
  check(r.status == 200 && r.n == n && !memcmp(r.body, glb, n), "GET returns the same bytes");
  check(!strcmp(r.type, "model/gltf-binary"), "as model/gltf-binary");
  free_resp(&r);

  /* Again: deduplicated, nothing new on disk, the quota unchanged. */
  r = post(auth_a, glb, n);
  check(r.status == 200 && has(&r, "\"deduplicated\":true"), "the same GLB again is deduplicated (200)");
  char used[64];
  snprintf(used, sizeof used, "\"used\":%zu", n);
  check(has(&r, used), "and alice's usage counts it once");
  free_resp(&r);
  r = post(auth_b, glb, n);
  check(r.status == 200 && has(&r, "\"deduplicated\":true") && has(&r, used), "bob's copy: deduplicated, charged to bob");
  free_resp(&r);
  check(count_files("blobs") == 1 && count_files("owners") == 2, "still one blob; two owners");

  /* Refusals: each names the problem, nothing is stored. */
  r = post(auth_a, "this is not a glTF asset at all", 31);
  check(r.status == 422 && has(&r, "\"error\":\"OW_E_INVAL\"") && has(&r, "JSON does not parse"), "garbage: 422 OW_E_INVAL");
  free_resp(&r);
  r = post(auth_a, glb, 100);
  check(r.status == 422 && has(&r, "GLB header declares"), "a truncated GLB: 422, the container named");
  free_resp(&r);
  /* The POSITION accessor's declared max x of 1 becomes 2: the data says otherwise. (The smaller
   * asset, which fits in what is left of alice's quota: the quota is decided first.) */
  uint8_t *liar = malloc(n2);
  memcpy(liar, glb2, n2);
  uint8_t *mx = memmem(liar, n2, "\"max\":[1,1,0]", 13);
  if (!mx) die("seed has no max to alter");
  mx[7] = '2';
  r = post(auth_a, liar, n2);
  check(r.status == 422 && has(&r, "/accessors/0/max/0"), "lying accessor bounds: 422 with the JSON path");
  free_resp(&r);
  r = http_x("POST", "/assets", auth_a, glb, 100000000, 0, false);
  check(r.status == 413, "Content-Length of 100 MB: 413 before the body is sent");
  free_resp(&r);
  r = post(NULL, glb, n);
  check(r.status == 401 && has(&r, "Bearer"), "no token: 401");
  free_resp(&r);
  r = post("Bearer 1234", glb, n);
  check(r.status == 401, "malformed token: 401");
  free_resp(&r);
  char forged[100];
  snprintf(forged, sizeof forged, "Bearer %s", ta);
  forged[7] = forged[7] == 'a' ? 'b' : 'a';
  r = post(forged, glb, n);
  check(r.status == 401 && has(&r, "unknown, revoked or expired"), "unknown token: 401");
  free_resp(&r);
  r = get(NULL, path);
  check(r.status == 401, "GET without a token: 401");
  free_resp(&r);
  r = get(auth_a, "/assets/00000000000000000000000000000000000000000000000000000000000000aa");
  check(r.status == 404 && has(&r, "no asset"), "GET of an unknown digest: 404");
  free_resp(&r);
  r = get(auth_a, "/assets/../../etc/passwd");
  check(r.status == 404, "GET of a path that is not a digest: 404");
  free_resp(&r);
  check(count_files("blobs") == 1 && count_files("owners") == 2 && count_files("tmp") == 0,
        "nothing stored by any refusal");

  /* The quota: 2192 + 1408 fit in 4194 bytes, 608 more do not. */
  r = post(auth_a, glb2, n2);
  check(r.status == 201, "a second asset within the quota is stored");
  free_resp(&r);
  r = post(auth_a, glb3, n3);
  check(r.status == 403 && has(&r, "\"error\":\"QUOTA\"") && has(&r, "quota exceeded"), "past the quota: 403, quota named");
  free_resp(&r);
  check(count_files("blobs") == 2 && count_files("owners") == 3, "the refused one is not stored");

  /* Abandoned half way: bob declares 1500 bytes, sends 700 and hangs up. Nothing is stored, the
   * server stays up, and the reservation is released: bob's 1408-byte upload then fits beside his
   * 2192 bytes (it would not while 1500 more were reserved). The release happens when the server
   * sees the close, so the upload is retried until then. */
  http_x("POST", "/assets", auth_b, glb2, 1500, 700, true);
  int st = 0;
  for (double end = ow_test_now() + 30; ow_test_now() < end;) {
    r = post(auth_b, glb2, n2);
    st = r.status;
    free_resp(&r);
    if (st != 403) break;
    usleep(50000);
  }
  check(st == 200, "after an abandoned upload the reservation is released (bob's upload dedups)");
  check(count_files("blobs") == 2 && count_files("tmp") == 0, "the abandoned upload stored nothing");
  r = get(NULL, "/status");
  check(r.status == 200, "the server is up");
  free_resp(&r);

  /* A restart: the assets are served, and the quota still counts them. */
  ow_client_destroy(alice.c);
  ow_client_destroy(bob.c);
  stop();
  start();
  login(&alice, "alice", false, ta);
  snprintf(auth_a, sizeof auth_a, "Bearer %s", ta);
  r = get(auth_a, path);
  check(r.status == 200 && r.n == n && !memcmp(r.body, glb, n), "after a restart the asset is served");
  free_resp(&r);
  r = post(auth_a, glb3, n3);
  check(r.status == 403, "after a restart the quota still counts alice's assets");
  free_resp(&r);
  ow_client_destroy(alice.c);
  stop();
  ow_client_ctx_destroy(ctx);
  free(glb), free(glb2), free(glb3), free(liar);
  ow_test_rmdir(dir);
  printf("assets_upload: %d checks passed\n", checks);
  return 0;
}
