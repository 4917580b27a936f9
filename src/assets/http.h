/*
 * assets/http: the upload and download routes of user assets on the server's HTTP port. POST
 * /assets takes one GLB or self-contained glTF file from a logged-in player (Bearer session
 * token), refuses it from its Content-Length when it is too large or past the account's quota,
 * validates it (assets/gltf.h) and stores it by its BLAKE2b-256 digest (assets/store.h); GET
 * /assets/<digest> serves a stored asset. Validation and file writes run on libuv's thread pool,
 * one at a time, so the loop never waits for them and the store's commits keep their threads.
 */
#ifndef OW_ASSETS_HTTP_H
#define OW_ASSETS_HTTP_H

#include <uv.h>

#include "assets/gltf.h"
#include "assets/store.h"
#include "auth/auth.h"
#include "net/net.h"

typedef struct ow_assets ow_assets;

typedef struct ow_assets_config {
  const char *dir;      /* the asset store's directory (main.c: assets/ beside the LMDB store) */
  uint64_t max_upload;  /* bytes of one upload, decided from Content-Length (413 beyond) */
  uint64_t quota;       /* bytes of distinct assets one account may own (403 beyond) */
  uint64_t max_pending; /* bytes of uploads being received or validated at once (503 beyond) */
} ow_assets_config;

/* Counters for /status and tests. */
typedef struct ow_assets_stats {
  uint64_t uploads_ok;       /* stored (new blob) or deduplicated */
  uint64_t uploads_dedup;    /* of those, the blob existed already */
  uint64_t uploads_refused;  /* any 4xx or 5xx answer to POST /assets */
  uint64_t bytes_in;         /* bytes of accepted uploads */
  uint64_t downloads;        /* GET answered 200 */
} ow_assets_stats;

/* Opens the store (creating cfg->dir); auth must outlive the returned object. Returns 0, or
 * -errno when the store cannot be opened, OW_E_INVAL for a config without dir. */
int ow_assets_create(ow_assets **out, uv_loop_t *loop, ow_auth *auth, const ow_assets_config *cfg);
/* Registers POST /assets and GET /assets/<digest> on net (which must outlive a). */
void ow_assets_routes(ow_assets *a, ow_net *net);
/* After uv_run has returned (no work is in flight then): frees everything. NULL is ignored. */
void ow_assets_destroy(ow_assets *a);
const ow_assets_stats *ow_assets_stats_get(const ow_assets *a);
ow_assetstore *ow_assets_store(ow_assets *a);

#endif
