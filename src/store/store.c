/* store: the dispatchers of the store method table, opening by URI, batches and the keyspace. See
 * store.h and docs/storage.md; the LMDB implementation is store/lmdb.c. */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
  if (err) {
    char *shown = ow_store_uri_redact(uri);
    snprintf(err, errlen, "store '%s': unknown scheme '%.*s' (known: lmdb:DIR, postgres:CONNINFO, "
             "postgres://URL)", shown, colon ? (int)(sl > 32 ? 32 : sl) : 0, uri);
    ow_free(shown);
  }
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

bool ow_store_can_copy(const ow_store *s) { return s->m->copy != NULL; }

/* ---- URIs shown to people ----------------------------------------------------------------------- */

static const char REDACTED[] = "***";

static void put_str(ow_buf *o, const char *p, size_t n) { ow_buf_put(o, p, n); }

/* A URL (scheme://[user[:password]@]host...[?k=v&...]): libpq takes the user information to end at
 * the first '@' before any '/', and the password to start after its first ':'. */
static void redact_url(ow_buf *o, const char *p, size_t n) {
  const char *end = p + n, *sep = strstr(p, "://");
  if (!sep || sep + 3 > end) {
    put_str(o, p, n);
    return;
  }
  const char *q = sep + 3, *at = q;
  while (at < end && *at != '@' && *at != '/') at++;
  if (at < end && *at == '@') {
    const char *colon = memchr(q, ':', (size_t)(at - q));
    if (colon) {
      put_str(o, p, (size_t)(colon + 1 - p));
      put_str(o, REDACTED, sizeof REDACTED - 1);
      p = at;
    }
  }
  const char *query = memchr(p, '?', (size_t)(end - p));
  if (!query) {
    put_str(o, p, (size_t)(end - p));
    return;
  }
  put_str(o, p, (size_t)(query + 1 - p));
  for (const char *f = query + 1; f < end;) {
    const char *amp = memchr(f, '&', (size_t)(end - f));
    const char *fe = amp ? amp : end;
    if ((size_t)(fe - f) >= 9 && !memcmp(f, "password=", 9)) {
      put_str(o, f, 9);
      put_str(o, REDACTED, sizeof REDACTED - 1);
    } else {
      put_str(o, f, (size_t)(fe - f));
    }
    if (amp) put_str(o, "&", 1);
    f = amp ? amp + 1 : end;
  }
}

/* A libpq conninfo: keyword = value pairs separated by spaces, a value either bare or in single
 * quotes with backslash escapes. The password's value is replaced; a value that is itself a URL
 * (dbname may be one) is redacted as a URL. Anything unparsable is copied as it is. */
static void redact_conninfo(ow_buf *o, const char *p) {
  while (*p) {
    const char *key = p;
    while (*p && *p != '=' && *p != ' ' && *p != '\t' && *p != '\n') p++;
    size_t kl = (size_t)(p - key);
    while (*p == ' ' || *p == '\t' || *p == '\n') p++;
    if (*p != '=') {
      put_str(o, key, (size_t)(p - key));
      continue;
    }
    p++;
    while (*p == ' ' || *p == '\t' || *p == '\n') p++;
    const char *val = p;
    if (*p == '\'') {
      for (p++; *p && *p != '\''; p++)
        if (*p == '\\' && p[1]) p++;
      if (*p) p++;
    } else {
      while (*p && *p != ' ' && *p != '\t' && *p != '\n') p++;
    }
    put_str(o, key, (size_t)(val - key));
    if (kl == 8 && !memcmp(key, "password", 8))
      put_str(o, REDACTED, sizeof REDACTED - 1);
    else
      redact_url(o, val, (size_t)(p - val));
    while (*p == ' ' || *p == '\t' || *p == '\n') put_str(o, p++, 1);
  }
}

char *ow_store_uri_redact(const char *uri) {
  ow_buf o;
  ow_buf_init(&o);
  const char *colon = strchr(uri, ':');
  if (colon && colon - uri == 4 && !memcmp(uri, "lmdb", 4)) {
    put_str(&o, uri, strlen(uri)); /* a directory: nothing secret */
  } else if (strstr(uri, "://") && (!colon || strstr(uri, "://") == colon)) {
    redact_url(&o, uri, strlen(uri));
  } else {
    /* "postgres:CONNINFO", or an unknown scheme whose text might still hold a password. */
    size_t pre = colon && !memchr(uri, '=', (size_t)(colon - uri)) ? (size_t)(colon + 1 - uri) : 0;
    put_str(&o, uri, pre);
    redact_conninfo(&o, uri + pre);
  }
  ow_buf_u8(&o, 0);
  return (char *)o.data;
}

/* Removes a directory holding only files (a copy left half-made by a crash). */
static void remove_flat_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d) return;
  struct dirent *e;
  char p[4200];
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(p, sizeof p, "%s/%s", path, e->d_name);
      unlink(p);
    }
  closedir(d);
  rmdir(path);
}

/* fsync of a directory, so that the names created or renamed in it survive a power loss. */
static int sync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return -errno;
  int rc = fsync(fd) ? -errno : 0;
  close(fd);
  return rc;
}

int ow_store_copy(ow_store *s, const char *dest) {
  if (!s->m->copy) return -ENOTSUP;
  struct stat st;
  if (!stat(dest, &st)) return -EEXIST;
  char tmp[4200], parent[4200];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", dest) >= (int)sizeof tmp) return OW_E_INVAL;
  remove_flat_dir(tmp);
  if (mkdir(tmp, 0755)) return -errno;
  int rc = s->m->copy(s, tmp);
  if (!rc) rc = sync_dir(tmp);
  if (!rc && rename(tmp, dest)) rc = -errno;
  if (rc) {
    remove_flat_dir(tmp);
    return rc;
  }
  snprintf(parent, sizeof parent, "%s", dest);
  char *slash = strrchr(parent, '/');
  if (slash == parent) slash[1] = 0;
  else if (slash) *slash = 0;
  else snprintf(parent, sizeof parent, ".");
  return sync_dir(parent);
}

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
