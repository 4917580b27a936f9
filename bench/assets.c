/* bench_assets: the figures of user assets (docs/assets.md): validation MB/s (in process, the
 * validator on a large GLB), upload MB/s (the real server over HTTP on loopback: new assets, which
 * are validated, written and fsynced, and deduplicated ones, which are validated and hashed only)
 * and the dedup ratio (bytes uploaded / bytes stored in asset_dir/blobs, measured on disk).
 *
 * The asset is a grid of S x S vertices (float positions) and its 2 (S-1)^2 triangles (u32
 * indices): S = 1000 is 1,000,000 vertices and 1,996,002 triangles, 36 MB, just under the
 * default triangle limit. K variants differ in one vertex. Each is uploaded by two players, twice
 * each: 4K uploads, K stored, so the ratio is 4 when deduplication works (the workload sets it;
 * the bench checks that the disk agrees).
 *
 *   bench_assets SERVER_BINARY [--quick]     (bench/assets runs it on build/otherworld)
 *
 * Quick mode (S = 100, K = 2, under ctest) only proves the paths work; it fails on errors, never
 * on the figures. */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "assets/gltf.h"
#include "otherworld/client.h"
#include "otherworld/protocol.h"
#include "support.h"

static ow_test_server srv;
static ow_client_ctx *ctx;

static void die(const char *what) {
  fprintf(stderr, "bench_assets: FAIL: %s\n", what);
  if (srv.pid > 0) kill(srv.pid, SIGKILL);
  exit(1);
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static void putf(uint8_t *p, float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  put32(p, u);
}

/* The grid GLB, variant k (its centre vertex raised to k / (K + 1)). */
static uint8_t *make_glb(unsigned s, unsigned k, unsigned kmax, size_t *len) {
  size_t nv = (size_t)s * s, nt = 2 * (size_t)(s - 1) * (s - 1);
  size_t pos_len = nv * 12, ind_len = nt * 12, bin_len = pos_len + ind_len;
  char js[1024];
  int jl = snprintf(js, sizeof js,
                    "{\"asset\":{\"version\":\"2.0\",\"generator\":\"bench_assets\"},\"scene\":0,"
                    "\"scenes\":[{\"nodes\":[0]}],\"nodes\":[{\"mesh\":0}],"
                    "\"meshes\":[{\"primitives\":[{\"attributes\":{\"POSITION\":0},\"indices\":1}]}],"
                    "\"accessors\":[{\"bufferView\":0,\"componentType\":5126,\"count\":%zu,\"type\":\"VEC3\","
                    "\"min\":[0,0,0],\"max\":[1,1,1]},"
                    "{\"bufferView\":1,\"componentType\":5125,\"count\":%zu,\"type\":\"SCALAR\"}],"
                    "\"bufferViews\":[{\"buffer\":0,\"byteOffset\":0,\"byteLength\":%zu},"
                    "{\"buffer\":0,\"byteOffset\":%zu,\"byteLength\":%zu}],\"buffers\":[{\"byteLength\":%zu}]}",
                    nv, nt * 3, pos_len, pos_len, ind_len, bin_len);
  size_t jp = ((size_t)jl + 3) & ~(size_t)3;
  *len = 12 + 8 + jp + 8 + bin_len;
  uint8_t *p = calloc(1, *len);
  put32(p, 0x46546C67), put32(p + 4, 2), put32(p + 8, (uint32_t)*len);
  put32(p + 12, (uint32_t)jp), put32(p + 16, 0x4E4F534A);
  memcpy(p + 20, js, (size_t)jl);
  memset(p + 20 + jl, ' ', jp - (size_t)jl);
  uint8_t *b = p + 20 + jp;
  put32(b, (uint32_t)bin_len), put32(b + 4, 0x004E4942);
  uint8_t *q = b + 8;
  for (unsigned y = 0; y < s; y++)
    for (unsigned x = 0; x < s; x++) {
      size_t v = (size_t)y * s + x;
      float z = v == nv - 1 ? 1.0f : v == nv / 2 + s / 2 ? (float)(k + 1) / (float)(kmax + 1) : 0.0f;
      putf(q + 12 * v, (float)x / (float)(s - 1));
      putf(q + 12 * v + 4, (float)y / (float)(s - 1));
      putf(q + 12 * v + 8, z);
    }
  uint8_t *ind = q + pos_len;
  size_t t = 0;
  for (unsigned y = 0; y + 1 < s; y++)
    for (unsigned x = 0; x + 1 < s; x++) {
      uint32_t a = y * s + x, c = a + s;
      uint32_t tri[6] = {a, a + 1, c, a + 1, c + 1, c};
      for (int i = 0; i < 6; i++) put32(ind + 4 * (t + (size_t)i), tri[i]);
      t += 6;
    }
  return p;
}

/* ---- players, for their tokens ----------------------------------------------------------------- */

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
  ((player *)ud)->s = *s;
  ((player *)ud)->sessions++;
}
static const ow_client_callbacks callbacks = {
    .on_welcome = on_welcome, .on_ok = on_ok, .on_session = on_session, .on_error = on_error};

#define WAIT(cond, what)                                                    \
  do {                                                                      \
    double end_ = ow_test_now() + 60;                                       \
    while (!(cond) && ow_test_now() < end_) ow_client_ctx_service(ctx, 10); \
    if (!(cond)) die(what);                                                 \
  } while (0)

static void login(player *p, const char *name, char auth[100]) {
  memset(p, 0, sizeof *p);
  p->c = ow_client_create(ctx, &callbacks, p);
  if (ow_client_connect(p->c, "127.0.0.1", srv.port, NULL) < 0) die("connect");
  ow_client_hello(p->c, "bench_assets");
  WAIT(p->welcome, "no WELCOME");
  ow_client_register(p->c, name, "bench-password");
  WAIT(p->ok || p->err, "no reply to REGISTER");
  ow_client_login(p->c, name, "bench-password");
  WAIT(p->sessions || p->err > 1, "no reply to LOGIN");
  if (!p->sessions) die("LOGIN refused");
  char hex[2 * OW_TOKEN_LEN + 1];
  sodium_bin2hex(hex, sizeof hex, p->s.token, OW_TOKEN_LEN);
  snprintf(auth, 100, "Bearer %s", hex);
}

static uint64_t dir_bytes(const char *path) {
  DIR *d = opendir(path);
  uint64_t total = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", path, e->d_name);
    struct stat st;
    if (!stat(p, &st)) total += (uint64_t)st.st_size;
  }
  if (d) closedir(d);
  return total;
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: bench_assets SERVER_BINARY [--quick]");
  bool quick = argc > 2 && !strcmp(argv[2], "--quick");
  if (sodium_init() < 0) die("sodium");
  unsigned s = quick ? 100 : 1000, kmax = quick ? 2 : 4, reps = quick ? 1 : 5;
  size_t len;
  uint8_t **v = calloc(kmax, sizeof *v);
  for (unsigned k = 0; k < kmax; k++) v[k] = make_glb(s, k, kmax, &len);

  /* Validation, in process. */
  ow_gltf_limits lim;
  ow_gltf_limits_default(&lim);
  char err[512];
  ow_gltf_figures fig;
  double t0 = ow_test_now();
  for (unsigned r = 0; r < reps; r++)
    if (ow_gltf_validate(v[r % kmax], len, &lim, NULL, NULL, &fig, err, sizeof err)) {
      fprintf(stderr, "%s\n", err);
      die("the benchmark asset is refused");
    }
  double tv = ow_test_now() - t0;
  printf("asset bytes=%zu vertices=%llu triangles=%llu rank=%s\n", len, (unsigned long long)fig.vertices,
         (unsigned long long)fig.triangles, ow_gltf_rank_name(fig.rank));
  printf("validation runs=%u seconds=%.3f mb_per_s=%.1f\n", reps, tv, (double)len * reps / tv / 1e6);

  /* Uploads to the real server. */
  char *dir = ow_test_mkdtemp("bench-assets");
  char data[600], log[600], blobs[700];
  snprintf(data, sizeof data, "%s/data", dir);
  snprintf(log, sizeof log, "%s/server.log", dir);
  snprintf(blobs, sizeof blobs, "%s/assets/blobs", data);
  const char *const args[] = {"--pwhash_ops", "1", "--pwhash_mem_kb", "64", "--shutdown_notice_s", "0",
                              "--asset_quota_mb", "4096", NULL};
  if (ow_test_server_start(&srv, argv[1], data, log, args, 30000)) die("server did not start");
  ow_client_ctx_opts o = {0};
  if (ow_client_ctx_create(&o, &ctx)) die("client context");
  player pa, pb;
  char auth[2][100];
  login(&pa, "alice", auth[0]);
  login(&pb, "bob", auth[1]);
  double t_new = 0, t_dup = 0;
  uint64_t b_new = 0, b_dup = 0, uploads = 0;
  for (int round = 0; round < 2; round++)
    for (int who = 0; who < 2; who++)
      for (unsigned k = 0; k < kmax; k++) {
        double t1 = ow_test_now();
        ow_test_resp r = ow_test_http(srv.port, "POST", "/assets", auth[who], v[k], len, len, false);
        double dt = ow_test_now() - t1;
        bool fresh = round == 0 && who == 0;
        if (r.status != (fresh ? 201 : 200)) {
          fprintf(stderr, "upload %d/%d/%u: %d %s\n", round, who, k, r.status, r.body ? (char *)r.body : "");
          die("an upload was not answered as expected");
        }
        ow_test_resp_free(&r);
        uploads++;
        if (fresh) t_new += dt, b_new += len;
        else t_dup += dt, b_dup += len;
      }
  uint64_t stored = dir_bytes(blobs);
  printf("upload new uploads=%u bytes=%llu seconds=%.3f mb_per_s=%.1f\n", kmax, (unsigned long long)b_new, t_new,
         (double)b_new / t_new / 1e6);
  printf("upload dedup uploads=%llu bytes=%llu seconds=%.3f mb_per_s=%.1f\n", (unsigned long long)(uploads - kmax),
         (unsigned long long)b_dup, t_dup, (double)b_dup / t_dup / 1e6);
  printf("upload all uploads=%llu mb_per_s=%.1f\n", (unsigned long long)uploads,
         (double)(b_new + b_dup) / (t_new + t_dup) / 1e6);
  printf("dedup bytes_uploaded=%llu bytes_stored=%llu ratio=%.2f\n", (unsigned long long)(b_new + b_dup),
         (unsigned long long)stored, stored ? (double)(b_new + b_dup) / (double)stored : 0.0);
  if (stored != (uint64_t)len * kmax) die("the blobs on disk are not one copy of each variant");
  ow_client_destroy(pa.c);
  ow_client_destroy(pb.c);
  int st = ow_test_server_stop(&srv, SIGTERM);
  if (!WIFEXITED(st) || WEXITSTATUS(st)) die("server did not exit 0");
  ow_client_ctx_destroy(ctx);
  ow_test_rmdir(dir);
  for (unsigned k = 0; k < kmax; k++) free(v[k]);
  free(v);
  return 0;
}
