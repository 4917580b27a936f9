/*
 * The asset files (store.h). Writes follow the usual crash-safe order: the bytes go to a file in
 * tmp/ (same file system), which is fsynced, renamed to its digest in blobs/, and blobs/ is
 * fsynced so the rename itself survives a power loss. An ownership is an empty file created with
 * O_EXCL, so two uploads of the same asset by one account race to one winner, which is the one
 * charged. Usage per account is rebuilt at open from owners/ and the blob sizes.
 */
#include "assets/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

struct ow_assetstore {
  char *dir;
  ow_map usage; /* account -> bytes owned */
  _Atomic uint64_t blobs, bytes;
};

void ow_asset_hex(const uint8_t d[OW_ASSET_DIGEST_LEN], char out[2 * OW_ASSET_DIGEST_LEN + 1]) {
  static const char hx[] = "0123456789abcdef";
  for (int i = 0; i < OW_ASSET_DIGEST_LEN; i++) out[2 * i] = hx[d[i] >> 4], out[2 * i + 1] = hx[d[i] & 15];
  out[2 * OW_ASSET_DIGEST_LEN] = 0;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

bool ow_asset_parse_hex(const char *hex, uint8_t d[OW_ASSET_DIGEST_LEN]) {
  for (int i = 0; i < OW_ASSET_DIGEST_LEN; i++) {
    int hi = hexval((unsigned char)hex[2 * i]), lo = hi < 0 ? -1 : hexval((unsigned char)hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    d[i] = (uint8_t)(hi << 4 | lo);
  }
  return hex[2 * OW_ASSET_DIGEST_LEN] == 0;
}

/* dir/a[/b], into a fresh allocation. */
static char *join(const char *dir, const char *a, const char *b) {
  size_t n = strlen(dir) + strlen(a) + (b ? strlen(b) + 1 : 0) + 2;
  char *p = ow_malloc(n);
  snprintf(p, n, b ? "%s/%s/%s" : "%s/%s", dir, a, b ? b : "");
  return p;
}

static int mkdir_ok(const char *path) { return mkdir(path, 0755) && errno != EEXIST ? -errno : 0; }

static int fsync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) ? -errno : 0;
  close(fd);
  return rc;
}

/* Loads the usage of one account from owners/<account>/: the size of each blob it names. */
static void load_owner(ow_assetstore *s, const char *odir, uint64_t account) {
  DIR *d = opendir(odir);
  if (!d) return;
  uint64_t total = 0;
  for (struct dirent *e; (e = readdir(d));) {
    uint8_t dg[OW_ASSET_DIGEST_LEN];
    if (!ow_asset_parse_hex(e->d_name, dg)) continue;
    char *blob = join(s->dir, "blobs", e->d_name);
    struct stat st;
    if (!stat(blob, &st)) total += (uint64_t)st.st_size;
    ow_free(blob);
  }
  closedir(d);
  if (total) ow_map_set(&s->usage, account, total);
}

int ow_assetstore_open(ow_assetstore **out, const char *dir) {
  *out = NULL;
  /* mkdir -p: the parents first (an asset_dir of its own may name a new tree). */
  char *parent = ow_strdup(dir);
  int rc = 0;
  for (char *q = parent + 1; *q && !rc; q++)
    if (*q == '/') {
      *q = 0;
      rc = mkdir_ok(parent);
      *q = '/';
    }
  ow_free(parent);
  if (!rc) rc = mkdir_ok(dir);
  const char *subs[] = {"blobs", "owners", "tmp"};
  for (int i = 0; i < 3 && !rc; i++) {
    char *p = join(dir, subs[i], NULL);
    rc = mkdir_ok(p);
    ow_free(p);
  }
  if (rc) return rc;
  ow_assetstore *s = ow_calloc(1, sizeof *s);
  s->dir = ow_strdup(dir);
  ow_map_init(&s->usage);
  /* Files left in tmp/ by a crash mid-write were never renamed: nobody refers to them. */
  char *tmp = join(dir, "tmp", NULL);
  DIR *d = opendir(tmp);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char *p = join(tmp, e->d_name, NULL);
    unlink(p);
    ow_free(p);
  }
  if (d) closedir(d);
  ow_free(tmp);
  char *blobs = join(dir, "blobs", NULL);
  d = opendir(blobs);
  for (struct dirent *e; d && (e = readdir(d));) {
    uint8_t dg[OW_ASSET_DIGEST_LEN];
    struct stat st;
    char *p = join(blobs, e->d_name, NULL);
    if (ow_asset_parse_hex(e->d_name, dg) && !stat(p, &st)) {
      s->blobs++;
      s->bytes += (uint64_t)st.st_size;
    }
    ow_free(p);
  }
  if (d) closedir(d);
  ow_free(blobs);
  char *owners = join(dir, "owners", NULL);
  d = opendir(owners);
  for (struct dirent *e; d && (e = readdir(d));) {
    char *end;
    errno = 0;
    unsigned long long acc = strtoull(e->d_name, &end, 10);
    if (errno || *end || end == e->d_name || !acc) continue;
    char *p = join(owners, e->d_name, NULL);
    load_owner(s, p, acc);
    ow_free(p);
  }
  if (d) closedir(d);
  ow_free(owners);
  *out = s;
  return 0;
}

void ow_assetstore_close(ow_assetstore *s) {
  if (!s) return;
  ow_map_deinit(&s->usage);
  ow_free(s->dir);
  ow_free(s);
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Writes the blob: tmp file, fsync, rename, fsync of blobs/. */
static int write_blob(ow_assetstore *s, const char *hex, const uint8_t *p, size_t n) {
  char name[2 * OW_ASSET_DIGEST_LEN + 24];
  uint8_t r[8];
  randombytes_buf(r, sizeof r);
  char rh[17];
  for (int i = 0; i < 8; i++) snprintf(rh + 2 * i, 3, "%02x", r[i]);
  snprintf(name, sizeof name, "%.16s-%s", hex, rh);
  char *tmp = join(s->dir, "tmp", name), *dst = join(s->dir, "blobs", hex), *blobs = join(s->dir, "blobs", NULL);
  int rc = 0;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = -errno;
  } else {
    rc = write_all(fd, p, n);
    if (!rc && fsync(fd)) rc = -errno;
    if (close(fd) && !rc) rc = -errno;
    if (!rc && rename(tmp, dst)) rc = -errno;
    if (rc) unlink(tmp);
    else rc = fsync_dir(blobs);
  }
  ow_free(tmp);
  ow_free(dst);
  ow_free(blobs);
  return rc;
}

int ow_assetstore_put(ow_assetstore *s, uint64_t account, const uint8_t digest[OW_ASSET_DIGEST_LEN],
                      const uint8_t *p, size_t n, bool *stored_new, bool *owned_new) {
  *stored_new = *owned_new = false;
  char hex[2 * OW_ASSET_DIGEST_LEN + 1];
  ow_asset_hex(digest, hex);
  char *dst = join(s->dir, "blobs", hex);
  struct stat st;
  int rc = 0;
  /* A blob of this digest is this content (BLAKE2b-256 collisions aside); a file of another size
   * under its name is damage, and is replaced. */
  if (stat(dst, &st) || (uint64_t)st.st_size != n) {
    rc = write_blob(s, hex, p, n);
    if (!rc) {
      *stored_new = true;
      s->blobs++;
      s->bytes += n;
    }
  }
  ow_free(dst);
  if (rc) return rc;
  char acc[24];
  snprintf(acc, sizeof acc, "%" PRIu64, account);
  char *odir = join(s->dir, "owners", acc), *owners = join(s->dir, "owners", NULL);
  rc = mkdir_ok(odir);
  if (!rc) rc = fsync_dir(owners);
  char *mark = join(odir, hex, NULL);
  if (!rc) {
    int fd = open(mark, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      close(fd);
      *owned_new = true;
      rc = fsync_dir(odir);
    } else if (errno != EEXIST) {
      rc = -errno;
    }
  }
  ow_free(mark);
  ow_free(odir);
  ow_free(owners);
  return rc;
}

int ow_assetstore_get(ow_assetstore *s, const uint8_t digest[OW_ASSET_DIGEST_LEN], uint8_t **p, size_t *n) {
  *p = NULL;
  *n = 0;
  char hex[2 * OW_ASSET_DIGEST_LEN + 1];
  ow_asset_hex(digest, hex);
  char *path = join(s->dir, "blobs", hex);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ow_free(path);
  if (fd < 0) return errno == ENOENT ? OW_E_NOT_FOUND : -errno;
  struct stat st;
  if (fstat(fd, &st)) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  size_t len = (size_t)st.st_size, got = 0;
  uint8_t *buf = ow_malloc(len ? len : 1);
  while (got < len) {
    ssize_t r = read(fd, buf + got, len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int rc = r < 0 ? -errno : -EIO; /* shorter than fstat said: changed under us */
      close(fd);
      ow_free(buf);
      return rc;
    }
    got += (size_t)r;
  }
  close(fd);
  *p = buf;
  *n = len;
  return 0;
}

bool ow_assetstore_owns(const ow_assetstore *s, uint64_t account, const uint8_t digest[OW_ASSET_DIGEST_LEN]) {
  char hex[2 * OW_ASSET_DIGEST_LEN + 1], acc[24];
  ow_asset_hex(digest, hex);
  snprintf(acc, sizeof acc, "%" PRIu64, account);
  char *odir = join(s->dir, "owners", acc), *mark = join(odir, hex, NULL);
  struct stat st;
  bool owns = !stat(mark, &st);
  ow_free(mark);
  ow_free(odir);
  return owns;
}

uint64_t ow_assetstore_usage(const ow_assetstore *s, uint64_t account) {
  const uint64_t *v = ow_map_get(&s->usage, account);
  return v ? *v : 0;
}

void ow_assetstore_charge(ow_assetstore *s, uint64_t account, uint64_t n) {
  ow_map_set(&s->usage, account, ow_assetstore_usage(s, account) + n);
}

ow_assetstore_stats ow_assetstore_stats_get(const ow_assetstore *s) {
  return (ow_assetstore_stats){.blobs = s->blobs, .bytes = s->bytes};
}
