/*
 * store/lmdb: the embedded default store, one LMDB environment holding the whole keyspace. A batch
 * is one LMDB write transaction, synced at commit unless the operator chose nosync; its failures
 * are sticky, as LMDB's own are, until the store is closed and opened again.
 */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_int.h"

typedef struct lmdb_store {
  ow_store base; /* first: the dispatchers in store.c see an ow_store */
  MDB_env *env;
  MDB_dbi dbi;
  uint64_t map_size;
  char *path;
  int failed; /* the first failed commit, sticky (see ow_store_write) */
} lmdb_store;

static int lmdb_err(int rc) {
  if (rc > 0) return -rc; /* LMDB passes errno values through */
  return OW_E_STORE;
}

static void lmdb_close(ow_store *base) {
  lmdb_store *s = (lmdb_store *)base;
  mdb_env_close(s->env);
  ow_free(s->path);
  ow_free(s);
}

typedef struct apply_ctx {
  lmdb_store *s;
  MDB_txn *txn;
} apply_ctx;

static int apply_one(void *ud, int op, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  apply_ctx *x = ud;
  MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
  int rc = op == OW_BATCH_PUT ? mdb_put(x->txn, x->s->dbi, &key, &val, 0)
                              : mdb_del(x->txn, x->s->dbi, &key, NULL);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The condition is read inside the write transaction, so nothing can change the key between the
 * check and the commit (LMDB has one writer at a time). */
static int check(lmdb_store *s, MDB_txn *txn, const ow_store_cond *cond) {
  MDB_val key = {cond->kl, (void *)cond->key}, val;
  int rc = mdb_get(txn, s->dbi, &key, &val);
  if (rc == MDB_NOTFOUND) return cond->expect ? OW_E_CONFLICT : 0;
  if (rc) return rc;
  if (!cond->expect || val.mv_size != cond->el || memcmp(val.mv_data, cond->expect, cond->el))
    return OW_E_CONFLICT;
  return 0;
}

static int lmdb_write(ow_store *base, const ow_batch *b, const ow_store_cond *cond) {
  lmdb_store *s = (lmdb_store *)base;
  /* After a failed commit the pages of the file can no longer be trusted (a failed fsync may have
   * dropped dirty pages that a second fsync then reports clean; a failed meta write leaves LMDB
   * in MDB_PANIC): the first error is sticky, as in LMDB's own API, and only a reopen clears it. */
  if (s->failed) return s->failed;
  for (int attempt = 0;; attempt++) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) return s->failed = lmdb_err(rc);
    rc = cond ? check(s, txn, cond) : 0;
    if (!rc) {
      apply_ctx x = {s, txn};
      rc = ow_batch_each(b, apply_one, &x);
    }
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
    /* A malformed batch or a condition that does not hold: nothing was written, nothing suspect. */
    if (rc == OW_E_CORRUPT || rc == OW_E_CONFLICT) return rc;
    if (rc) {
      /* Any other failure may come from the disk (a put can spill pages to the file), so it is
       * sticky. The caller (the zone) logs the one error line of a failed commit. */
      OW_DEBUG("store_commit_failed", "err=\"%s\" ops=%zu", mdb_strerror(rc), b->n);
      return s->failed = lmdb_err(rc);
    }
    return 0;
  }
}

static int lmdb_get(ow_store *base, const void *key, size_t kl, ow_buf *out) {
  lmdb_store *s = (lmdb_store *)base;
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

static int lmdb_scan(ow_store *base, const void *prefix, size_t pl, ow_scan_fn fn, void *ud) {
  lmdb_store *s = (lmdb_store *)base;
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

static int lmdb_stat(ow_store *base, uint64_t *entries, uint64_t *bytes) {
  lmdb_store *s = (lmdb_store *)base;
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

/* LMDB's compacting copy reads through one read transaction, so writers go on meanwhile and the
 * copy holds exactly one commit. Another process that grew the map makes the read fail with
 * MDB_MAP_RESIZED: adopt the new size and try again. */
static int lmdb_copy(ow_store *base, const char *dest) {
  lmdb_store *s = (lmdb_store *)base;
  int rc = mdb_env_copy2(s->env, dest, MDB_CP_COMPACT);
  if (rc == MDB_MAP_RESIZED && !mdb_env_set_mapsize(s->env, 0))
    rc = mdb_env_copy2(s->env, dest, MDB_CP_COMPACT);
  if (rc) {
    OW_ERROR("store_copy_failed", "dest=%s err=\"%s\"", dest, mdb_strerror(rc));
    return lmdb_err(rc);
  }
  char p[4200];
  snprintf(p, sizeof p, "%s/data.mdb", dest);
  int fd = open(p, O_RDONLY);
  if (fd < 0) return -errno;
  rc = fsync(fd) ? -errno : 0;
  close(fd);
  return rc;
}

static const ow_store_methods lmdb_methods = {
    .scheme = "lmdb",
    .close = lmdb_close,
    .write = lmdb_write,
    .get = lmdb_get,
    .scan = lmdb_scan,
    .stat = lmdb_stat,
    .copy = lmdb_copy,
};

int ow_store_lmdb_open(ow_store **out, const char *path, const ow_store_options *opt) {
  *out = NULL;
  if (!*path) return OW_E_INVAL;
  struct stat st;
  if (opt->read_only && stat(path, &st)) return -errno; /* never create what is only read */
  if (!opt->read_only && mkdir(path, 0755) && errno != EEXIST) return -errno;
  lmdb_store *s = ow_calloc(1, sizeof *s);
  s->base.m = &lmdb_methods;
  s->map_size = opt->map_size ? opt->map_size : (1ULL << 30);
  s->path = ow_strdup(path);
  int rc = mdb_env_create(&s->env);
  if (!rc) rc = mdb_env_set_mapsize(s->env, s->map_size);
  if (!rc) rc = mdb_env_set_maxreaders(s->env, 16);
  /* MDB_NOTLS: read transactions are not tied to a thread. The write thread and the loop thread
   * never hold read transactions at the same time as a write. */
  unsigned flags = MDB_NOTLS | (opt->nosync ? MDB_NOSYNC : 0) | (opt->read_only ? MDB_RDONLY : 0);
  if (!rc) rc = mdb_env_open(s->env, path, flags, 0644);
  if (rc) {
    OW_ERROR("store_open_failed", "path=%s err=\"%s\"", path, mdb_strerror(rc));
    if (s->env) mdb_env_close(s->env);
    ow_free(s->path);
    ow_free(s);
    return lmdb_err(rc);
  }
  MDB_txn *txn;
  rc = mdb_txn_begin(s->env, NULL, opt->read_only ? MDB_RDONLY : 0, &txn);
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
  *out = &s->base;
  return 0;
}
