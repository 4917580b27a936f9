/* store: the dispatchers of the store method table, opening by URI, batches and the keyspace. See
 * store.h and docs/storage.md; the LMDB implementation is store/lmdb.c. */
#include "store/store.h"

#include <stdio.h>
#include <string.h>

#include "store/pg.h"
#include "store/store_int.h"

int ow_store_open(ow_store **out, const ow_store_options *opt) {
  return ow_store_lmdb_open(out, opt->path, opt);
}

int ow_store_open_uri(ow_store **out, const char *uri, const ow_store_options *opt, char *err,
                      size_t errlen) {
  *out = NULL;
  const char *colon = strchr(uri, ':');
  size_t sl = colon ? (size_t)(colon - uri) : 0;
  if (colon && sl == 4 && !memcmp(uri, "lmdb", 4)) {
    int rc = ow_store_lmdb_open(out, colon + 1, opt);
    if (rc && err) snprintf(err, errlen, "cannot open store %s: %s", uri, ow_strerror(rc));
    return rc;
  }
  /* PostgreSQL (or CockroachDB): "postgres:" followed by a libpq conninfo, or a postgres:// or
   * postgresql:// URL, which libpq reads whole. */
  if (colon && (!strncmp(uri, "postgres://", 11) || !strncmp(uri, "postgresql://", 13)))
    return ow_store_pg_open(out, uri, opt, err, errlen);
  if (colon && ((sl == 8 && !memcmp(uri, "postgres", 8)) || (sl == 10 && !memcmp(uri, "postgresql", 10))))
    return ow_store_pg_open(out, colon + 1, opt, err, errlen);
  if (err)
    snprintf(err, errlen, "store '%s': unknown scheme '%.*s' (known: lmdb:DIR, postgres:CONNINFO, "
             "postgres://URL)", uri,
             colon ? (int)(sl > 32 ? 32 : sl) : 0, uri);
  return OW_E_INVAL;
}

void ow_store_close(ow_store *s) {
  if (s) s->m->close(s);
}

int ow_store_write(ow_store *s, const ow_batch *b) {
  OW_ASSERT(!b->open_val);
  return s->m->write(s, b, NULL);
}

int ow_store_write_if(ow_store *s, const ow_batch *b, const ow_store_cond *cond) {
  OW_ASSERT(!b->open_val && cond && cond->kl > 0);
  return s->m->write(s, b, cond);
}

int ow_store_get(ow_store *s, const void *k, size_t kl, ow_buf *out) {
  return s->m->get(s, k, kl, out);
}

int ow_store_scan(ow_store *s, const void *prefix, size_t pl, ow_scan_fn fn, void *ud) {
  return s->m->scan(s, prefix, pl, fn, ud);
}

int ow_store_stat(ow_store *s, uint64_t *entries, uint64_t *bytes) {
  return s->m->stat(s, entries, bytes);
}

const char *ow_store_scheme(const ow_store *s) { return s->m->scheme; }

bool ow_store_error_retryable(int rc) { return rc == OW_E_RETRY; }

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

/* ---- keys --------------------------------------------------------------------------------------- */

void ow_key_region_prefix(uint8_t out[10], int32_t x, int32_t z) {
  /* Flipping the sign bit makes negative cells sort before positive ones, as a tuple layer does. */
  out[0] = OW_KEY_REGION;
  ow_be32_write(out + 1, (uint32_t)x ^ 0x80000000u);
  ow_be32_write(out + 5, (uint32_t)z ^ 0x80000000u);
  out[9] = 'E';
}

void ow_key_entity(uint8_t out[OW_KEY_ENTITY_LEN], int32_t x, int32_t z, uint64_t id) {
  ow_key_region_prefix(out, x, z);
  ow_be64_write(out + 10, id);
}

bool ow_key_parse_entity(const uint8_t *k, size_t kl, int32_t *x, int32_t *z, uint64_t *id) {
  if (kl != OW_KEY_ENTITY_LEN || k[0] != OW_KEY_REGION || k[9] != 'E') return false;
  *x = (int32_t)(ow_be32_read(k + 1) ^ 0x80000000u);
  *z = (int32_t)(ow_be32_read(k + 5) ^ 0x80000000u);
  *id = ow_be64_read(k + 10);
  return true;
}

void ow_key_id(uint8_t out[OW_KEY_ID_LEN], uint8_t tag, uint64_t id) {
  out[0] = tag;
  ow_be64_write(out + 1, id);
}
