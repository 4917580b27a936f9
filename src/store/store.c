/* store: LMDB-backed batches and scans. See store.h and docs/storage.md. */
#include "store/store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <sys/stat.h>

struct ow_store {
  MDB_env *env;
  MDB_dbi dbi;
  uint64_t map_size;
  char *path;
  int failed; /* the first failed commit, sticky (see ow_store_write) */
};

static int lmdb_err(int rc) {
  if (rc > 0) return -rc; /* LMDB passes errno values through */
  return OW_E_STORE;
}

int ow_store_open(ow_store **out, const ow_store_options *opt) {
  *out = NULL;
  if (mkdir(opt->path, 0755) && errno != EEXIST) return -errno;
  ow_store *s = ow_calloc(1, sizeof *s);
  s->map_size = opt->map_size ? opt->map_size : (1ULL << 30);
  s->path = ow_strdup(opt->path);
  int rc = mdb_env_create(&s->env);
  if (!rc) rc = mdb_env_set_mapsize(s->env, s->map_size);
  if (!rc) rc = mdb_env_set_maxreaders(s->env, 16);
  /* MDB_NOTLS: read transactions are not tied to a thread. The write thread and the loop thread
   * never hold read transactions at the same time as a write. */
  unsigned flags = MDB_NOTLS | (opt->nosync ? MDB_NOSYNC : 0);
  if (!rc) rc = mdb_env_open(s->env, opt->path, flags, 0644);
  if (rc) {
    OW_ERROR("store_open_failed", "path=%s err=\"%s\"", opt->path, mdb_strerror(rc));
    if (s->env) mdb_env_close(s->env);
    ow_free(s->path);
    ow_free(s);
    return lmdb_err(rc);
  }
  MDB_txn *txn;
  rc = mdb_txn_begin(s->env, NULL, 0, &txn);
  if (!rc) rc = mdb_dbi_open(txn, NULL, 0, &s->dbi);
  if (!rc) rc = mdb_txn_commit(txn);
  if (rc) {
    mdb_env_close(s->env);
    ow_free(s->path);
    ow_free(s);
    return lmdb_err(rc);
  }
  MDB_envinfo info;
  mdb_env_info(s->env, &info);
  s->map_size = info.me_mapsize;
  *out = s;
  return 0;
}

void ow_store_close(ow_store *s) {
  if (!s) return;
  mdb_env_close(s->env);
  ow_free(s->path);
  ow_free(s);
}

/* ---- batches ------------------------------------------------------------------------------------ */

void ow_batch_init(ow_batch *b) { memset(b, 0, sizeof *b); }
void ow_batch_deinit(ow_batch *b) { ow_buf_deinit(&b->ops); }
void ow_batch_reset(ow_batch *b) {
  b->ops.len = 0;
  b->n = 0;
  b->open_val = 0;
}

void ow_batch_put_begin(ow_batch *b, const void *k, size_t kl) {
  OW_ASSERT(!b->open_val && kl > 0 && kl <= 511);
  ow_buf_u8(&b->ops, OW_BATCH_PUT);
  ow_buf_u32(&b->ops, (uint32_t)kl);
  ow_buf_put(&b->ops, k, kl);
  b->open_val = b->ops.len;
  ow_buf_u32(&b->ops, 0);
}

void ow_batch_put_end(ow_batch *b) {
  OW_ASSERT(b->open_val);
  uint32_t vl = (uint32_t)(b->ops.len - b->open_val - 4);
  for (int i = 0; i < 4; i++) b->ops.data[b->open_val + (size_t)i] = (uint8_t)(vl >> (8 * i));
  b->open_val = 0;
  b->n++;
}

void ow_batch_put(ow_batch *b, const void *k, size_t kl, const void *v, size_t vl) {
  ow_batch_put_begin(b, k, kl);
  ow_buf_put(&b->ops, v, vl);
  ow_batch_put_end(b);
}

void ow_batch_del(ow_batch *b, const void *k, size_t kl) {
  OW_ASSERT(!b->open_val && kl > 0 && kl <= 511);
  ow_buf_u8(&b->ops, OW_BATCH_DEL);
  ow_buf_u32(&b->ops, (uint32_t)kl);
  ow_buf_put(&b->ops, k, kl);
  b->n++;
}

int ow_batch_each(const ow_batch *b, ow_batch_fn fn, void *ud) {
  ow_reader r;
  ow_reader_init(&r, b->ops.data, b->ops.len);
  for (size_t i = 0; i < b->n; i++) {
    uint8_t op = ow_rd_u8(&r);
    size_t kl = ow_rd_u32(&r);
    const uint8_t *k = ow_rd_bytes(&r, kl), *v = NULL;
    size_t vl = 0;
    if (op == OW_BATCH_PUT) {
      vl = ow_rd_u32(&r);
      v = ow_rd_bytes(&r, vl);
    }
    if (r.err || (op != OW_BATCH_PUT && op != OW_BATCH_DEL)) return OW_E_CORRUPT;
    int rc = fn(ud, op, k, kl, v, vl);
    if (rc) return rc;
  }
  return 0;
}

typedef struct apply_ctx {
  ow_store *s;
  MDB_txn *txn;
} apply_ctx;

static int apply_one(void *ud, int op, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  apply_ctx *x = ud;
  MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
  int rc = op == OW_BATCH_PUT ? mdb_put(x->txn, x->s->dbi, &key, &val, 0)
                              : mdb_del(x->txn, x->s->dbi, &key, NULL);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

static int apply(ow_store *s, MDB_txn *txn, const ow_batch *b) {
  apply_ctx x = {s, txn};
  return ow_batch_each(b, apply_one, &x);
}

int ow_store_write(ow_store *s, const ow_batch *b) {
  OW_ASSERT(!b->open_val);
  /* After a failed commit the pages of the file can no longer be trusted (a failed fsync may have
   * dropped dirty pages that a second fsync then reports clean; a failed meta write leaves LMDB
   * in MDB_PANIC): the first error is sticky, as in LMDB's own API, and only a reopen clears it. */
  if (s->failed) return s->failed;
  for (int attempt = 0;; attempt++) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return s->failed = lmdb_err(rc);
    rc = apply(s, txn, b);
    if (rc) {
      mdb_txn_abort(txn);
    } else {
      rc = mdb_txn_commit(txn); /* consumes the txn, success or not */
    }
    if (rc == MDB_MAP_FULL && attempt < 8) {
      /* Safe: no transaction of ours is open now, and only this thread writes. */
      uint64_t size = s->map_size * 2;
      int e = mdb_env_set_mapsize(s->env, size);
      if (e) return lmdb_err(e);
      s->map_size = size;
      OW_INFO("store_map_grow", "map_size=%llu", (unsigned long long)size);
      continue;
    }
    if (rc == OW_E_CORRUPT) return rc; /* a malformed batch: nothing was written */
    if (rc) {
      /* Any other failure may come from the disk (a put can spill pages to the file), so it is
       * sticky. The caller (the zone) logs the one error line of a failed commit. */
      OW_DEBUG("store_commit_failed", "err=\"%s\" ops=%zu", mdb_strerror(rc), b->n);
      return s->failed = lmdb_err(rc);
    }
    return 0;
  }
}

int ow_store_get(ow_store *s, const void *key, size_t kl, ow_buf *out) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
  if (rc) return lmdb_err(rc);
  MDB_val k = {kl, (void *)key}, v;
  rc = mdb_get(txn, s->dbi, &k, &v);
  if (!rc) {
    out->len = 0;
    ow_buf_put(out, v.mv_data, v.mv_size);
  }
  mdb_txn_abort(txn);
  if (rc == MDB_NOTFOUND) return OW_E_NOT_FOUND;
  return rc ? lmdb_err(rc) : 0;
}

int ow_store_scan(ow_store *s, const void *prefix, size_t pl, ow_scan_fn fn, void *ud) {
  MDB_txn *txn;
  MDB_cursor *cur;
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
  if (rc) return lmdb_err(rc);
  rc = mdb_cursor_open(txn, s->dbi, &cur);
  if (rc) {
    mdb_txn_abort(txn);
    return lmdb_err(rc);
  }
  MDB_val k = {pl, (void *)prefix}, v;
  int result = 0;
  for (rc = mdb_cursor_get(cur, &k, &v, pl ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (k.mv_size < pl || memcmp(k.mv_data, prefix, pl)) break;
    result = fn(ud, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
    if (result) break;
  }
  if (rc && rc != MDB_NOTFOUND) result = lmdb_err(rc);
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  return result;
}

int ow_store_stat(ow_store *s, uint64_t *entries, uint64_t *bytes) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
  if (rc) return lmdb_err(rc);
  MDB_stat st;
  rc = mdb_stat(txn, s->dbi, &st);
  MDB_envinfo info;
  mdb_env_info(s->env, &info);
  mdb_txn_abort(txn);
  if (rc) return lmdb_err(rc);
  if (entries) *entries = st.ms_entries;
  if (bytes) *bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
  return 0;
}

/* ---- keys --------------------------------------------------------------------------------------- */

static void be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static uint32_t rd32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void ow_key_region_prefix(uint8_t out[10], int32_t x, int32_t z) {
  /* Flipping the sign bit makes negative cells sort before positive ones, as a tuple layer does. */
  out[0] = OW_KEY_REGION;
  be32(out + 1, (uint32_t)x ^ 0x80000000u);
  be32(out + 5, (uint32_t)z ^ 0x80000000u);
  out[9] = 'E';
}

void ow_key_entity(uint8_t out[OW_KEY_ENTITY_LEN], int32_t x, int32_t z, uint64_t id) {
  ow_key_region_prefix(out, x, z);
  ow_be64_write(out + 10, id);
}

bool ow_key_parse_entity(const uint8_t *k, size_t kl, int32_t *x, int32_t *z, uint64_t *id) {
  if (kl != OW_KEY_ENTITY_LEN || k[0] != OW_KEY_REGION || k[9] != 'E') return false;
  *x = (int32_t)(rd32(k + 1) ^ 0x80000000u);
  *z = (int32_t)(rd32(k + 5) ^ 0x80000000u);
  *id = ow_be64_read(k + 10);
  return true;
}

void ow_key_id(uint8_t out[OW_KEY_ID_LEN], uint8_t tag, uint64_t id) {
  out[0] = tag;
  ow_be64_write(out + 1, id);
}
