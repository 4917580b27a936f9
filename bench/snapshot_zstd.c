/*
 * bench_snapshot_zstd: would zstd pay for itself on snapshots? It builds real SNAPSHOT messages
 * (src/server/replica.c) for three views of a seeded world — the default seed world, a
 * settlement of 3,000 structures, and 100 avatars with inventories in one cell — compresses each
 * message with zstd at levels 1 and 3, and prints key=value lines: raw and compressed bytes,
 * ratio, and compression time per message. Deltas of a few changed entities are measured too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

#include "otherworld/protocol.h"
#include "server/replica.h"
#include "zone/zone.h"

typedef struct acc {
  size_t msgs, raw, z1, z3;
  double ns1, ns3;
  uint32_t last_id; /* snapshot id of the last message, to acknowledge like a prompt client */
} acc;

static ZSTD_CCtx *cctx; /* one context reused, as a server would per thread */

static void emit(void *ud, const uint8_t *p, size_t n) {
  acc *a = ud;
  a->last_id = (uint32_t)p[3] | (uint32_t)p[4] << 8 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 24;
  size_t cap = ZSTD_compressBound(n);
  void *out = malloc(cap);
  uint64_t t0 = ow_now_ns();
  size_t c1 = ZSTD_compressCCtx(cctx, out, cap, p, n, 1);
  uint64_t t1 = ow_now_ns();
  size_t c3 = ZSTD_compressCCtx(cctx, out, cap, p, n, 3);
  uint64_t t2 = ow_now_ns();
  if (ZSTD_isError(c1) || ZSTD_isError(c3)) {
    fprintf(stderr, "zstd: %s\n", ZSTD_getErrorName(ZSTD_isError(c1) ? c1 : c3));
    exit(1);
  }
  a->msgs++;
  a->raw += n;
  a->z1 += c1;
  a->z3 += c3;
  a->ns1 += (double)(t1 - t0);
  a->ns3 += (double)(t2 - t1);
  free(out);
}

static void report(const char *name, const acc *a) {
  printf("%s_messages=%zu\n%s_raw_bytes=%zu\n", name, a->msgs, name, a->raw);
  printf("%s_zstd1_bytes=%zu\n%s_zstd1_ratio=%.2f\n%s_zstd1_us_per_msg=%.1f\n", name, a->z1, name,
         a->z1 ? (double)a->raw / (double)a->z1 : 0, name, a->msgs ? a->ns1 / 1e3 / (double)a->msgs : 0);
  printf("%s_zstd3_bytes=%zu\n%s_zstd3_ratio=%.2f\n%s_zstd3_us_per_msg=%.1f\n", name, a->z3, name,
         a->z3 ? (double)a->raw / (double)a->z3 : 0, name, a->msgs ? a->ns3 / 1e3 / (double)a->msgs : 0);
}

static ow_zone *zone;
static ow_replica *rep;
static void on_durable(void *ud, const ow_frame_info *f) {
  (void)ud;
  if (rep && !f->status) ow_replica_apply(rep, f->batch, f->frame);
}

int main(int argc, char **argv) {
  (void)argc, (void)argv;
  cctx = ZSTD_createCCtx();
  char dir[] = "/tmp/ow-zstd-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char err[256];
  ow_content *content;
  if (ow_content_load_file(OW_DEFAULT_CONTENT, &content, err, sizeof err)) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  ow_store_options so = {.path = dir, .map_size = 256u << 20, .nosync = true};
  ow_store *store;
  if (ow_store_open(&store, &so)) return 1;
  ow_zone_config zc = {.world = {.region_size = 256, .reach = 8, .bound = 1e6f}, .replay_window = 64};
  if (ow_zone_open(&zone, &zc, content, store, on_durable, NULL)) return 1;
  ow_world *w = ow_zone_world(zone);
  rep = ow_replica_create(w, ow_zone_durable_frame(zone));
  ow_cell origin = {0, 0};

  acc seed = {0};
  ow_view *v = ow_view_create();
  ow_view_update(v, rep, origin, 1, 1, emit, &seed);
  report("seed_world_full", &seed);

  /* A settlement: walls, floors, doors and chests in a grid around the spawn. */
  const char *kinds[] = {"wall", "floor", "door", "chest"};
  for (int i = 0; i < 3000; i++) {
    ow_transform xf;
    ow_transform_identity(&xf);
    xf.pos[0] = (float)(i % 60) * 2.0f - 60;
    xf.pos[2] = (float)(i / 60) * 2.0f - 50;
    xf.rot[1] = 0.7071f;
    xf.rot[3] = 0.7071f;
    const char *k = kinds[i % 4];
    ow_world_spawn(w, (uint16_t)ow_content_type_id(content, k, strlen(k)), 1 + (uint64_t)(i % 7), 0, &xf, NULL);
  }
  for (uint64_t p = 1; p <= 100; p++) {
    uint64_t sid;
    ow_zone_login(zone, 1000 + p, &sid, NULL);
  }
  ow_zone_commit_sync(zone, false);
  acc town = {0};
  ow_view_reset(v);
  ow_view_update(v, rep, origin, 1, 2, emit, &town);
  report("settlement_full", &town);

  /* A typical delta: the client acknowledges each snapshot, then ten entities change. */
  ow_view_ack(v, town.last_id);
  acc delta = {0};
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < 10; i++) {
      ow_transform xf;
      ow_transform_identity(&xf);
      xf.pos[0] = (float)(round * 10 + i);
      ow_world_spawn(w, (uint16_t)ow_content_type_id(content, "wall", 4), 1, 0, &xf, NULL);
    }
    ow_zone_commit_sync(zone, false);
    ow_view_update(v, rep, origin, 1, 3 + (uint64_t)round, emit, &delta);
    ow_view_ack(v, delta.last_id);
  }
  report("delta_10_entities", &delta);

  ow_view_destroy(v);
  ow_replica_destroy(rep);
  ow_zone_close(zone);
  ow_store_close(store);
  ow_content_destroy(content);
  ZSTD_freeCCtx(cctx);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : 1;
}
