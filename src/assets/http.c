/*
 * The asset routes (http.h). An upload goes through three stages: on_request decides from the
 * headers alone (token, Content-Length against max_upload, the account's quota and the bytes
 * already in flight, all before a byte of the body is read), on_body keeps and hashes the bytes,
 * and on_end queues a job that validates and stores them on the thread pool. Jobs run one at a
 * time (a FIFO started from the previous job's completion): the zone's commits and the backups
 * also use the pool, and an upload must not hold back durability. A request whose connection
 * goes away keeps its job (the thread may be using the bytes); the job then only finishes
 * without a reply. Nothing is stored for a refused upload: the store is written only after the
 * validator accepted every byte.
 */
#include "assets/http.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/core.h"

typedef struct job job;

struct ow_assets {
  uv_loop_t *loop;
  ow_auth *auth;
  ow_assetstore *store;
  ow_assets_config cfg;
  ow_gltf_limits limits;
  ow_map reserved; /* account -> bytes of its uploads in flight (quota reservations) */
  uint64_t pending; /* bytes of every upload in flight */
  job *head, *tail; /* jobs waiting for the pool, in order */
  job *running;
  ow_assets_stats stats;
};

enum { JOB_PUT, JOB_GET };

struct job {
  ow_assets *a;
  ow_http_req *r; /* NULL once the connection went away */
  job *next;
  int kind;
  uint64_t account, reserved; /* reserved: what on_request counted in pending and reserved */
  uint8_t digest[OW_ASSET_DIGEST_LEN];
  crypto_generichash_state hash;
  ow_buf body;
  bool queued; /* on_end handed it to the queue (or the pool) */
  bool over_if_new; /* past the quota unless the account owns it already (decided at on_end) */
  /* results, written on the pool's thread and read after it */
  int rc;
  char err[512];
  ow_gltf_figures fig;
  bool stored_new, owned_new;
  uint8_t *out;
  size_t outlen;
  uv_work_t work;
};

/* ---- replies --------------------------------------------------------------------------------- */

static void reply_json(ow_http_req *r, int status, json_t *o) {
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!text) {
    ow_http_reply(r, 500, "text/plain", "500 out of memory\n", 18);
    return;
  }
  size_t n = strlen(text);
  char *line = ow_malloc(n + 2);
  memcpy(line, text, n);
  line[n] = '\n';
  ow_http_reply(r, status, "application/json", line, n + 1);
  ow_free(line);
  free(text);
}

/* {"error": "OW_E_..." or "QUOTA", "detail": "..."}: every refusal after the headers names its
 * problem (code 0: the quota, which has no OW_E_* code of its own). */
static void reply_error(ow_http_req *r, int status, int code, const char *detail) {
  reply_json(r, status, json_pack("{s:s, s:s}", "error", code ? ow_err_name(code) : "QUOTA", "detail", detail));
}

/* ---- the job queue ------------------------------------------------------------------------------ */

static void job_free(job *j) {
  ow_assets *a = j->a;
  if (j->reserved) {
    a->pending -= j->reserved;
    uint64_t *v = ow_map_get(&a->reserved, j->account);
    if (v && *v > j->reserved) *v -= j->reserved;
    else if (v) ow_map_del(&a->reserved, j->account);
  }
  ow_buf_deinit(&j->body);
  ow_free(j->out);
  ow_free(j);
}

static void work_cb(uv_work_t *w) {
  job *j = w->data;
  ow_assets *a = j->a;
  if (j->kind == JOB_GET) {
    j->rc = ow_assetstore_get(a->store, j->digest, &j->out, &j->outlen);
    return;
  }
  j->rc = ow_gltf_validate(j->body.data, j->body.len, &a->limits, NULL, NULL, &j->fig, j->err, sizeof j->err);
  if (j->rc) return;
  j->rc = ow_assetstore_put(a->store, j->account, j->digest, j->body.data, j->body.len, &j->stored_new,
                            &j->owned_new);
  if (j->rc) snprintf(j->err, sizeof j->err, "the asset could not be written: %s", ow_strerror(j->rc));
}

static void start_next(ow_assets *a);

static const char *type_of(const uint8_t *p, size_t n) {
  return n >= 4 && !memcmp(p, "glTF", 4) ? "model/gltf-binary" : "model/gltf+json";
}

static void finish_put(ow_assets *a, job *j) {
  if (!j->rc && j->owned_new) ow_assetstore_charge(a->store, j->account, j->body.len);
  if (j->rc) a->stats.uploads_refused++;
  else {
    a->stats.uploads_ok++;
    a->stats.bytes_in += j->body.len;
    if (!j->stored_new) a->stats.uploads_dedup++;
  }
  char hex[2 * OW_ASSET_DIGEST_LEN + 1];
  ow_asset_hex(j->digest, hex);
  OW_INFO("asset_upload", "account=%llu digest=%s bytes=%zu rc=%s stored_new=%d owned_new=%d err=\"%s\"",
          (unsigned long long)j->account, hex, j->body.len, ow_err_name(j->rc), j->stored_new, j->owned_new,
          j->err);
  if (!j->r) return;
  if (j->rc == OW_E_INVAL || j->rc == OW_E_TOO_LARGE) {
    reply_error(j->r, j->rc == OW_E_INVAL ? 422 : 413, j->rc, j->err);
    return;
  }
  if (j->rc) {
    reply_error(j->r, 500, j->rc, j->err);
    return;
  }
  const ow_gltf_figures *f = &j->fig;
  json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:b, s:I, s:I}", "digest", hex, "bytes", (json_int_t)j->body.len,
                        "type", type_of(j->body.data, j->body.len), "rank", ow_gltf_rank_name(f->rank),
                        "deduplicated", !j->stored_new, "used", (json_int_t)ow_assetstore_usage(a->store, j->account),
                        "quota", (json_int_t)a->cfg.quota);
  json_object_set_new(o, "figures",
                      json_pack("{s:I, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:I}", "triangles", (json_int_t)f->triangles,
                                "vertices", (json_int_t)f->vertices, "materials", (int)f->materials, "bones",
                                (int)f->bones, "draw_calls", (int)f->draw_calls, "meshes", (int)f->meshes, "nodes",
                                (int)f->nodes, "images", (int)f->images, "texture_mem", (json_int_t)f->texture_mem));
  reply_json(j->r, j->stored_new ? 201 : 200, o);
}

static void finish_get(ow_assets *a, job *j) {
  if (!j->r) return;
  if (j->rc == OW_E_NOT_FOUND) {
    reply_error(j->r, 404, j->rc, "no asset with this digest");
    return;
  }
  if (j->rc) {
    reply_error(j->r, 500, j->rc, ow_strerror(j->rc));
    return;
  }
  a->stats.downloads++;
  ow_http_reply(j->r, 200, type_of(j->out, j->outlen), j->out, j->outlen);
}

static void after_cb(uv_work_t *w, int status) {
  (void)status;
  job *j = w->data;
  ow_assets *a = j->a;
  a->running = NULL;
  /* Every finish replies when the request is still there; a replied request gets no on_abort,
   * so nothing refers to the job after this. */
  if (j->kind == JOB_PUT) finish_put(a, j);
  else finish_get(a, j);
  job_free(j);
  start_next(a);
}

static void start_next(ow_assets *a) {
  while (!a->running && a->head) {
    job *j = a->head;
    a->head = j->next;
    if (!a->head) a->tail = NULL;
    if (!j->r) { /* its connection left while it waited: nothing to do, nobody to answer */
      job_free(j);
      continue;
    }
    a->running = j;
    j->work.data = j;
    OW_ASSERT(uv_queue_work(a->loop, &j->work, work_cb, after_cb) == 0);
  }
}

static void enqueue(ow_assets *a, job *j) {
  j->queued = true;
  if (a->tail) a->tail->next = j;
  else a->head = j;
  a->tail = j;
  start_next(a);
}

/* ---- the routes ------------------------------------------------------------------------------------ */

/* The account of "Authorization: Bearer <64 hex digits>", or 0 after setting the reason. */
static uint64_t account_of(ow_assets *a, ow_http_req *r) {
  const char *h = ow_http_authorization(r);
  uint8_t token[OW_TOKEN_LEN];
  if (!*h) {
    ow_http_set_reason(r, "missing Authorization: Bearer <session token as 64 hex digits>");
    return 0;
  }
  if (strncmp(h, "Bearer ", 7) || strlen(h + 7) != 2 * OW_TOKEN_LEN || !ow_asset_parse_hex(h + 7, token)) {
    ow_http_set_reason(r, "Authorization must be Bearer <session token as 64 hex digits>");
    return 0;
  }
  ow_token_info ti;
  if (ow_auth_check(a->auth, token, (uint64_t)time(NULL), &ti)) {
    ow_http_set_reason(r, "the session token is unknown, revoked or expired (OW_E_TOKEN)");
    return 0;
  }
  return ti.account;
}

static int upload_request(void *ud, ow_http_req *r) {
  ow_assets *a = ud;
  uint64_t account = account_of(a, r);
  if (!account) {
    a->stats.uploads_refused++;
    return 401;
  }
  uint64_t n = ow_http_content_length(r);
  char why[200];
  if (!n) {
    a->stats.uploads_refused++;
    ow_http_set_reason(r, "empty body: send the GLB or glTF file as the body");
    return 400;
  }
  /* The quota counts what the account owns plus its uploads in flight. An upload larger than
   * the whole quota is refused here, before its body. One that would go past what is left may
   * still be an asset the account owns already, which costs nothing: that is known once its
   * bytes are hashed, so it is decided at on_end (and refused there, unstored, if it is new). */
  uint64_t *rv = ow_map_get(&a->reserved, account);
  uint64_t used = ow_assetstore_usage(a->store, account) + (rv ? *rv : 0);
  if (n > a->cfg.quota) {
    a->stats.uploads_refused++;
    snprintf(why, sizeof why, "upload quota exceeded: this upload is %llu bytes, the quota %llu",
             (unsigned long long)n, (unsigned long long)a->cfg.quota);
    ow_http_set_reason(r, why);
    return 403;
  }
  if (a->pending + n > a->cfg.max_pending) {
    a->stats.uploads_refused++;
    ow_http_set_reason(r, "too many uploads in progress; retry in a few seconds");
    return 503;
  }
  job *j = ow_calloc(1, sizeof *j);
  j->a = a;
  j->r = r;
  j->kind = JOB_PUT;
  j->account = account;
  j->reserved = n;
  j->over_if_new = used > a->cfg.quota - n;
  a->pending += n;
  ow_map_set(&a->reserved, account, (rv ? *rv : 0) + n);
  ow_buf_init(&j->body);
  crypto_generichash_init(&j->hash, NULL, 0, OW_ASSET_DIGEST_LEN);
  ow_http_set_user(r, j);
  return 0;
}

static int upload_body(void *ud, ow_http_req *r, const uint8_t *p, size_t n) {
  (void)ud;
  job *j = ow_http_user(r);
  ow_buf_put(&j->body, p, n);
  crypto_generichash_update(&j->hash, p, n);
  return 0;
}

static void upload_end(void *ud, ow_http_req *r) {
  ow_assets *a = ud;
  job *j = ow_http_user(r);
  crypto_generichash_final(&j->hash, j->digest, OW_ASSET_DIGEST_LEN);
  if (j->over_if_new && !ow_assetstore_owns(a->store, j->account, j->digest)) {
    uint64_t *rv = ow_map_get(&a->reserved, j->account);
    uint64_t used = ow_assetstore_usage(a->store, j->account) + (rv ? *rv : 0);
    char why[200];
    snprintf(why, sizeof why, "upload quota exceeded: %llu of %llu bytes used or in flight, this upload included",
             (unsigned long long)used, (unsigned long long)a->cfg.quota);
    a->stats.uploads_refused++;
    ow_http_set_user(r, NULL);
    job_free(j);
    reply_error(r, 403, 0, why);
    return;
  }
  enqueue(a, j);
}

static void any_abort(void *ud, ow_http_req *r) {
  (void)ud;
  job *j = ow_http_user(r);
  if (!j) return;
  if (j->queued) j->r = NULL; /* the queue or the pool still holds it */
  else job_free(j);
}

static int download_request(void *ud, ow_http_req *r) {
  ow_assets *a = ud;
  if (!account_of(a, r)) return 401;
  const char *hex = ow_http_path(r) + strlen("/assets/");
  uint8_t d[OW_ASSET_DIGEST_LEN];
  if (!ow_asset_parse_hex(hex, d)) {
    ow_http_set_reason(r, "GET /assets/<digest>: the digest is 64 hex digits (BLAKE2b-256)");
    return 404;
  }
  job *j = ow_calloc(1, sizeof *j);
  j->a = a;
  j->r = r;
  j->kind = JOB_GET;
  memcpy(j->digest, d, sizeof d);
  ow_buf_init(&j->body);
  ow_http_set_user(r, j);
  return 0;
}

static void download_end(void *ud, ow_http_req *r) { enqueue(ud, ow_http_user(r)); }

int ow_assets_create(ow_assets **out, uv_loop_t *loop, ow_auth *auth, const ow_assets_config *cfg) {
  *out = NULL;
  if (!cfg->dir || !*cfg->dir) return OW_E_INVAL;
  ow_assets *a = ow_calloc(1, sizeof *a);
  int rc = ow_assetstore_open(&a->store, cfg->dir);
  if (rc) {
    ow_free(a);
    return rc;
  }
  a->loop = loop;
  a->auth = auth;
  a->cfg = *cfg;
  a->cfg.dir = NULL; /* not kept: the store has its own copy */
  if (!a->cfg.max_pending) a->cfg.max_pending = 4 * a->cfg.max_upload;
  ow_gltf_limits_default(&a->limits);
  a->limits.max_file = cfg->max_upload;
  ow_map_init(&a->reserved);
  *out = a;
  return 0;
}

void ow_assets_routes(ow_assets *a, ow_net *net) {
  /* Validation and the thread pool's queue can take a while for a large file: a generous reply
   * timeout, well past what the limits allow to cost. */
  ow_http_route up = {.path = "/assets", .methods = OW_HTTP_POST, .max_body = a->cfg.max_upload,
                      .reply_timeout_s = 120, .on_request = upload_request, .on_body = upload_body,
                      .on_end = upload_end, .on_abort = any_abort, .ud = a};
  ow_http_route down = {.path = "/assets/", .prefix = true, .methods = OW_HTTP_GET, .reply_timeout_s = 120,
                        .on_request = download_request, .on_end = download_end, .on_abort = any_abort, .ud = a};
  ow_net_route(net, &up);
  ow_net_route(net, &down);
}

void ow_assets_destroy(ow_assets *a) {
  if (!a) return;
  while (a->head) {
    job *j = a->head;
    a->head = j->next;
    job_free(j);
  }
  ow_map_deinit(&a->reserved);
  ow_assetstore_close(a->store);
  ow_free(a);
}

const ow_assets_stats *ow_assets_stats_get(const ow_assets *a) { return &a->stats; }

ow_assetstore *ow_assets_store(ow_assets *a) { return a->store; }
