/* ops/backup: see backup.h. The manifest is written with jansson; the digest is libsodium's
 * BLAKE2b over every key and value in key order, read in one read transaction of the copy. */
#include "ops/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MANIFEST_FORMAT 1

static int fail(char *err, size_t errlen, int rc, const char *fmt, const char *arg) {
  if (err && errlen) {
    char msg[4400];
    snprintf(msg, sizeof msg, fmt, arg);
    snprintf(err, errlen, "%s (%s)", msg, ow_strerror(rc));
  }
  return rc;
}

/* dir/name; a path too long for out becomes "", which every later call refuses (ENOENT). */
static void join(char *out, size_t n, const char *dir, const char *name) {
  int r = snprintf(out, n, "%s/%s", dir, name);
  if (r < 0 || (size_t)r >= n) out[0] = 0;
}

/* ---- the summary of a store: what the manifest records and verify recomputes ------------------- */

typedef struct summary {
  crypto_generichash_state h;
  ow_backup_info *info;
} summary;

static int summarize_one(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  summary *s = ud;
  uint8_t len[8];
  /* Lengths go into the digest too, so that moving a byte from a key to its value changes it. */
  ow_be64_write(len, ((uint64_t)kl << 32) | vl);
  crypto_generichash_update(&s->h, len, sizeof len);
  crypto_generichash_update(&s->h, k, kl);
  crypto_generichash_update(&s->h, v, vl);
  s->info->keys++;
  s->info->bytes += kl + vl;
  if (kl == OW_KEY_ENTITY_LEN && k[0] == OW_KEY_REGION) s->info->entities++;
  if (kl == 6 && !memcmp(k, "Mframe", 6) && vl == 8) {
    ow_reader r;
    ow_reader_init(&r, v, vl);
    s->info->frame = ow_rd_u64(&r);
  }
  return 0;
}

static int summarize(ow_store *st, ow_backup_info *info) {
  summary s = {.info = info};
  info->keys = info->entities = info->bytes = info->frame = 0;
  crypto_generichash_init(&s.h, NULL, 0, sizeof info->digest);
  int rc = ow_store_scan(st, "", 0, summarize_one, &s);
  crypto_generichash_final(&s.h, info->digest, sizeof info->digest);
  return rc;
}

static void hex(char out[65], const uint8_t d[32]) {
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int open_copy(ow_store **out, const char *dir) {
  char path[4200];
  join(path, sizeof path, dir, "store");
  ow_store_options o = {.path = path, .read_only = true};
  return ow_store_open(out, &o);
}

static int sync_path(const char *path, int flags) {
  int fd = open(path, flags);
  if (fd < 0) return -errno;
  int rc = fsync(fd) ? -errno : 0;
  close(fd);
  return rc;
}

/* Removes a backup directory: its manifest and its store's files. */
static void remove_backup(const char *dir) {
  const char *files[] = {"store/data.mdb", "store/lock.mdb", "manifest.json"};
  char p[4200];
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    join(p, sizeof p, dir, files[i]);
    unlink(p);
  }
  join(p, sizeof p, dir, "store");
  rmdir(p);
  rmdir(dir);
}

/* ---- make --------------------------------------------------------------------------------------- */

static int write_manifest(const char *dir, const ow_backup_info *info) {
  char d[65], path[4200];
  hex(d, info->digest);
  json_t *m = json_pack("{s:i, s:I, s:I, s:I, s:I, s:s, s:I}", "format", MANIFEST_FORMAT, "frame",
                        (json_int_t)info->frame, "keys", (json_int_t)info->keys, "entities",
                        (json_int_t)info->entities, "bytes", (json_int_t)info->bytes, "digest", d,
                        "created_unix", (json_int_t)time(NULL));
  join(path, sizeof path, dir, "manifest.json");
  int rc = json_dump_file(m, path, JSON_INDENT(2) | JSON_SORT_KEYS) ? -EIO : 0;
  json_decref(m);
  return rc ? rc : sync_path(path, O_RDONLY);
}

int ow_backup_make(ow_store *s, const char *dest, ow_backup_info *info, char *err, size_t errlen) {
  uint64_t t0 = ow_now_ns();
  memset(info, 0, sizeof *info);
  struct stat st;
  if (!stat(dest, &st)) return fail(err, errlen, -EEXIST, "backup %s already exists", dest);
  char tmp[4200], path[4200];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", dest) >= (int)sizeof tmp - 16)
    return fail(err, errlen, OW_E_INVAL, "backup path too long: %s", dest);
  remove_backup(tmp); /* what a crash during an earlier attempt left */
  if (mkdir(tmp, 0755)) return fail(err, errlen, -errno, "cannot create %s", tmp);
  join(path, sizeof path, tmp, "store");
  int rc = ow_store_copy(s, path);
  if (rc) {
    remove_backup(tmp);
    return fail(err, errlen, rc, "cannot copy the store into %s", path);
  }
  /* The digest is taken from the copy, not the live store: it describes exactly these bytes. */
  ow_store *copy;
  rc = open_copy(&copy, tmp);
  if (!rc) {
    rc = summarize(copy, info);
    ow_store_close(copy);
  }
  if (!rc) rc = write_manifest(tmp, info);
  if (!rc) rc = sync_path(tmp, O_RDONLY | O_DIRECTORY);
  if (!rc && rename(tmp, dest)) rc = -errno;
  if (rc) {
    remove_backup(tmp);
    return fail(err, errlen, rc, "backup into %s failed", dest);
  }
  snprintf(path, sizeof path, "%s/..", dest);
  sync_path(path, O_RDONLY | O_DIRECTORY);
  info->seconds = (double)(ow_now_ns() - t0) / 1e9;
  return 0;
}

/* ---- verify ------------------------------------------------------------------------------------- */

static int read_manifest(const char *dir, ow_backup_info *m, char *err, size_t errlen) {
  char path[4200];
  join(path, sizeof path, dir, "manifest.json");
  json_error_t je;
  json_t *j = json_load_file(path, 0, &je);
  if (!j) return fail(err, errlen, OW_E_CORRUPT, "cannot read %s", path);
  json_int_t format = 0, frame = -1, keys = -1;
  const char *digest = NULL;
  int rc = json_unpack(j, "{s:I, s:I, s:I, s:s}", "format", &format, "frame", &frame, "keys",
                       &keys, "digest", &digest);
  if (rc || format != MANIFEST_FORMAT || frame < 0 || keys < 0 || !digest || strlen(digest) != 64 ||
      sodium_hex2bin(m->digest, sizeof m->digest, digest, 64, NULL, NULL, NULL)) {
    json_decref(j);
    return fail(err, errlen, OW_E_CORRUPT, "%s: not a manifest of format 1", path);
  }
  m->frame = (uint64_t)frame;
  m->keys = (uint64_t)keys;
  json_decref(j);
  return 0;
}

typedef struct stack_check {
  const ow_content *content;
  ow_id bad;
} stack_check;

static void check_stack(void *ud, const ow_entity *e) {
  stack_check *c = ud;
  const ow_type *t = &c->content->types[e->type];
  if (t->kind == OW_KIND_ITEM && (e->count == 0 || e->count > t->stack_max) && !c->bad)
    c->bad = e->id;
}

static int frame_seen(void *ud, uint64_t frame, const ow_applied *a) {
  (void)a;
  uint64_t *n = ud;
  if (frame) (*n)++;
  return 0;
}

int ow_backup_verify(const char *dir, const ow_zone_config *zc, ow_content *content,
                     ow_backup_info *info, uint64_t *item_totals, char *err, size_t errlen) {
  uint64_t t0 = ow_now_ns();
  memset(info, 0, sizeof *info);
  ow_backup_info want;
  int rc = read_manifest(dir, &want, err, errlen);
  if (rc) return rc;
  ow_store *copy;
  rc = open_copy(&copy, dir);
  if (rc) return fail(err, errlen, rc, "cannot open the store of backup %s", dir);
  rc = summarize(copy, info);
  if (rc) {
    ow_store_close(copy);
    return fail(err, errlen, rc, "cannot read the store of backup %s", dir);
  }
  if (info->keys != want.keys || info->frame != want.frame ||
      sodium_memcmp(info->digest, want.digest, sizeof want.digest)) {
    ow_store_close(copy);
    return fail(err, errlen, OW_E_CORRUPT,
                "backup %s: its store differs from its manifest (keys, frame or digest)", dir);
  }
  ow_zone *z;
  rc = ow_zone_open(&z, zc, content, copy, NULL, NULL);
  if (rc) {
    ow_store_close(copy);
    return fail(err, errlen, rc, "backup %s: the world does not recover from it", dir);
  }
  const ow_world *w = ow_zone_world(z);
  stack_check sc = {.content = content};
  ow_world_each(w, check_stack, &sc);
  if (item_totals) ow_world_item_totals(w, item_totals);
  ow_zone_close(z);
  uint64_t frames = 0;
  if (!sc.bad) rc = ow_zone_frame_log_each(copy, frame_seen, &frames);
  ow_store_close(copy);
  if (sc.bad) {
    char id[32];
    snprintf(id, sizeof id, "%llu", (unsigned long long)sc.bad);
    return fail(err, errlen, OW_E_CORRUPT, "item stack %s holds 0 or more than its stack_max", id);
  }
  if (rc) return fail(err, errlen, rc, "backup %s: its frame log does not decode", dir);
  info->seconds = (double)(ow_now_ns() - t0) / 1e9;
  return 0;
}

/* ---- restore ------------------------------------------------------------------------------------ */

static bool dir_empty(const char *path) {
  DIR *d = opendir(path);
  if (!d) return true;
  struct dirent *e;
  bool empty = true;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
  closedir(d);
  return empty;
}

int ow_backup_restore(const char *dir, const char *data_dir, const ow_zone_config *zc,
                      ow_content *content, ow_backup_info *info, char *err, size_t errlen) {
  if (!dir_empty(data_dir))
    return fail(err, errlen, -EEXIST, "%s is not empty: a restore never overwrites a world",
                data_dir);
  int rc = ow_backup_verify(dir, zc, content, info, NULL, err, errlen);
  if (rc) return rc;
  rmdir(data_dir); /* empty or absent: ow_store_copy creates it whole */
  ow_store *copy;
  rc = open_copy(&copy, dir);
  if (rc) return fail(err, errlen, rc, "cannot open the store of backup %s", dir);
  rc = ow_store_copy(copy, data_dir);
  ow_store_close(copy);
  if (rc) return fail(err, errlen, rc, "cannot copy the backup into %s", data_dir);
  return 0;
}

/* ---- retention ---------------------------------------------------------------------------------- */

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int ow_backup_prune(const char *parent, unsigned keep) {
  DIR *d = opendir(parent);
  if (!d) return -errno;
  OW_VEC(char *) names = {0};
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t n = strlen(e->d_name);
    if (!strncmp(e->d_name, "backup-", 7) && (n < 4 || strcmp(e->d_name + n - 4, ".tmp")))
      OW_VEC_PUSH(names, ow_strdup(e->d_name));
  }
  closedir(d);
  qsort(names.v, names.len, sizeof *names.v, by_name);
  int removed = 0;
  char p[4200];
  for (size_t i = 0; i < names.len; i++) {
    if (i + keep < names.len) {
      snprintf(p, sizeof p, "%s/%s", parent, names.v[i]);
      remove_backup(p);
      removed++;
    }
    ow_free(names.v[i]);
  }
  OW_VEC_FREE(names);
  return removed;
}

/* ---- world digest ------------------------------------------------------------------------------- */

typedef struct digest_ctx {
  const ow_world *w;
  ow_buf rec;
  uint64_t sum;
} digest_ctx;

static void digest_one(void *ud, const ow_entity *e) {
  digest_ctx *c = ud;
  c->rec.len = 0;
  ow_buf_u64(&c->rec, e->id);
  ow_world_encode(c->w, e, &c->rec);
  uint8_t h[8];
  crypto_generichash(h, sizeof h, c->rec.data, c->rec.len, NULL, 0);
  uint64_t x;
  memcpy(&x, h, sizeof x);
  c->sum += x;
}

uint64_t ow_backup_world_digest(const ow_world *w) {
  digest_ctx c = {.w = w};
  ow_buf_init(&c.rec);
  ow_world_each(w, digest_one, &c);
  ow_buf_deinit(&c.rec);
  return c.sum;
}
