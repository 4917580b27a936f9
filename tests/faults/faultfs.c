/*
 * faultfs: a fault-injecting LD_PRELOAD shim for the store's data file. It wraps the calls LMDB
 * (0.9) makes to write and sync (open, write, pwrite, writev, pwritev, fsync, fdatasync; msync is
 * used only with MDB_WRITEMAP, which the store does not set) and, once armed, makes the next
 * matching call fail the way a sick disk does. Only file descriptors opened on the store's data
 * file are touched: everything else (the lock file, logs, sockets) passes straight through.
 *
 * LMDB opens data.mdb twice: a plain descriptor for the data pages (written with pwrite/writev,
 * then fdatasync or fsync) and an O_DSYNC one for the meta page (whose write is its sync).
 *
 * Configured from the environment of the process it is preloaded into:
 *   FAULTFS_KIND   eio_write     next page write of the data descriptor fails with EIO
 *                  enospc_write  ... fails with ENOSPC
 *                  short_write   ... writes only the first half and returns that count
 *                  eio_fsync     next fdatasync/fsync of the data descriptor syncs, then says EIO
 *                  eio_meta      next write of the O_DSYNC meta descriptor fails with EIO
 *                  unset: the shim passes everything through
 *   FAULTFS_FILE   base name of the file to watch (default data.mdb)
 *   FAULTFS_DIR    only paths starting with this prefix are watched (default: any)
 *   FAULTFS_ARM    a path: the shim is armed from the first matching call after this file exists
 *                  (so the server can start and recover first); unset: armed from the start
 *   FAULTFS_SKIP   matching calls let through after arming before the first fault (default 0)
 *   FAULTFS_TIMES  faults to inject, then pass through again (default 1, a transient fault like
 *                  the fsync error PostgreSQL met in 2018: a retry would succeed; 0: forever)
 *   FAULTFS_LOG    a file the shim appends one line to for every fault it injects
 *
 * Build it as a shared library and run: LD_PRELOAD=libfaultfs.so FAULTFS_KIND=... otherworld ...
 * Under AddressSanitizer, libasan must come first: LD_PRELOAD="libasan.so.N libfaultfs.so".
 */
#define _GNU_SOURCE
#undef _FORTIFY_SOURCE /* the wrappers define open() & co. themselves */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { K_NONE, K_EIO_WRITE, K_ENOSPC_WRITE, K_SHORT_WRITE, K_EIO_FSYNC, K_EIO_META };
enum { R_NONE, R_DATA, R_META };
enum { MAX_FD = 65536 };

static atomic_uchar roles[MAX_FD];
static atomic_int inited;
static int kind;
static const char *file = "data.mdb", *dir, *arm, *logpath;
static long skip, times = 1;
static atomic_bool armed;
static atomic_long seen;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

#define RESOLVE(name) real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name)

static void init(void) {
  if (atomic_load(&inited)) return;
  RESOLVE(open);
  RESOLVE(open64);
  RESOLVE(openat);
  RESOLVE(openat64);
  RESOLVE(close);
  RESOLVE(write);
  RESOLVE(pwrite);
  RESOLVE(pwrite64);
  RESOLVE(writev);
  RESOLVE(pwritev);
  RESOLVE(fsync);
  RESOLVE(fdatasync);
  const char *k = getenv("FAULTFS_KIND");
  kind = !k                           ? K_NONE
         : !strcmp(k, "eio_write")    ? K_EIO_WRITE
         : !strcmp(k, "enospc_write") ? K_ENOSPC_WRITE
         : !strcmp(k, "short_write")  ? K_SHORT_WRITE
         : !strcmp(k, "eio_fsync")    ? K_EIO_FSYNC
         : !strcmp(k, "eio_meta")     ? K_EIO_META
                                      : -1;
  if (kind < 0) {
    static const char msg[] = "faultfs: unknown FAULTFS_KIND (eio_write, enospc_write, "
                              "short_write, eio_fsync, eio_meta)\n";
    real_write(2, msg, sizeof msg - 1);
    abort();
  }
  if (getenv("FAULTFS_FILE")) file = getenv("FAULTFS_FILE");
  dir = getenv("FAULTFS_DIR");
  arm = getenv("FAULTFS_ARM");
  logpath = getenv("FAULTFS_LOG");
  if (getenv("FAULTFS_SKIP")) skip = atol(getenv("FAULTFS_SKIP"));
  if (getenv("FAULTFS_TIMES")) times = atol(getenv("FAULTFS_TIMES"));
  if (!arm) atomic_store(&armed, true);
  atomic_store(&inited, 1);
}

__attribute__((constructor)) static void faultfs_ctor(void) { init(); }

static void track(const char *path, int flags, int fd) {
  if (fd < 0 || fd >= MAX_FD || kind == K_NONE || !path) return;
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  if (strcmp(base, file) || (dir && strncmp(path, dir, strlen(dir)))) {
    atomic_store(&roles[fd], R_NONE);
    return;
  }
  atomic_store(&roles[fd], (flags & O_DSYNC) == O_DSYNC ? R_META : R_DATA);
}

static int role(int fd) { return fd >= 0 && fd < MAX_FD ? atomic_load(&roles[fd]) : R_NONE; }

/* Whether this matching call is the one to fail. Arming is checked until it happens, then kept. */
static bool hit(void) {
  if (!atomic_load(&armed)) {
    if (access(arm, F_OK)) return false;
    atomic_store(&armed, true);
  }
  long n = atomic_fetch_add(&seen, 1);
  if (n < skip) return false;
  return !times || n - skip < times;
}

static void note(const char *call, int fd, size_t bytes, long long off, const char *what) {
  if (!logpath) return;
  char line[256];
  int n = snprintf(line, sizeof line, "faultfs injected kind=%s call=%s fd=%d bytes=%zu off=%lld "
                   "result=%s\n", getenv("FAULTFS_KIND"), call, fd, bytes, off, what);
  int lfd = real_open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (lfd < 0) return;
  if (n > 0) (void)!real_write(lfd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
  real_close(lfd);
}

/* Decides the fate of a write of `n` bytes on fd: 0 to pass it through, -1 with errno set to fail
 * it, or 1 with *part set to write only that prefix. */
static int write_fault(const char *call, int fd, size_t n, long long off, size_t *part) {
  init();
  int r = role(fd);
  bool ours = (r == R_DATA && (kind == K_EIO_WRITE || kind == K_ENOSPC_WRITE ||
                               kind == K_SHORT_WRITE)) ||
              (r == R_META && kind == K_EIO_META);
  if (!ours || !hit()) return 0;
  if (kind == K_SHORT_WRITE && n > 1) {
    *part = n / 2;
    note(call, fd, n, off, "short");
    return 1;
  }
  int e = kind == K_ENOSPC_WRITE ? ENOSPC : EIO;
  note(call, fd, n, off, e == ENOSPC ? "ENOSPC" : "EIO");
  errno = e;
  return -1;
}

static size_t iov_total(const struct iovec *iov, int cnt) {
  size_t t = 0;
  for (int i = 0; i < cnt; i++) t += iov[i].iov_len;
  return t;
}

/* A copy of iov that covers only the first `part` bytes; *cnt is updated. Caller frees. */
static struct iovec *iov_prefix(const struct iovec *iov, int *cnt, size_t part) {
  struct iovec *v = malloc((size_t)*cnt * sizeof *v);
  if (!v) return NULL;
  int k = 0;
  for (int i = 0; i < *cnt && part; i++, k++) {
    v[k] = iov[i];
    if (v[k].iov_len > part) v[k].iov_len = part;
    part -= v[k].iov_len;
  }
  *cnt = k;
  return v;
}

/* ---- wrappers -------------------------------------------------------------------------------- */

#define OPEN_MODE(flags, mode)                                                                     \
  do {                                                                                             \
    if ((flags) & (O_CREAT | __O_TMPFILE)) {                                                       \
      va_list ap;                                                                                  \
      va_start(ap, flags);                                                                         \
      mode = va_arg(ap, int);                                                                      \
      va_end(ap);                                                                                  \
    }                                                                                              \
  } while (0)

int open(const char *path, int flags, ...) {
  init();
  int mode = 0;
  OPEN_MODE(flags, mode);
  int fd = real_open(path, flags, mode);
  track(path, flags, fd);
  return fd;
}

int open64(const char *path, int flags, ...) {
  init();
  int mode = 0;
  OPEN_MODE(flags, mode);
  int fd = real_open64(path, flags, mode);
  track(path, flags, fd);
  return fd;
}

int openat(int dfd, const char *path, int flags, ...) {
  init();
  int mode = 0;
  OPEN_MODE(flags, mode);
  int fd = real_openat(dfd, path, flags, mode);
  track(path, flags, fd);
  return fd;
}

int openat64(int dfd, const char *path, int flags, ...) {
  init();
  int mode = 0;
  OPEN_MODE(flags, mode);
  int fd = real_openat64(dfd, path, flags, mode);
  track(path, flags, fd);
  return fd;
}

int close(int fd) {
  init();
  if (fd >= 0 && fd < MAX_FD) atomic_store(&roles[fd], R_NONE);
  return real_close(fd);
}

ssize_t write(int fd, const void *buf, size_t n) {
  size_t part;
  int f = write_fault("write", fd, n, -1, &part);
  if (f < 0) return -1;
  return real_write(fd, buf, f ? part : n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  size_t part;
  int f = write_fault("pwrite", fd, n, (long long)off, &part);
  if (f < 0) return -1;
  return real_pwrite(fd, buf, f ? part : n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
  size_t part;
  int f = write_fault("pwrite64", fd, n, (long long)off, &part);
  if (f < 0) return -1;
  return real_pwrite64(fd, buf, f ? part : n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  size_t part;
  int f = write_fault("writev", fd, iov_total(iov, cnt), -1, &part);
  if (f < 0) return -1;
  if (!f) return real_writev(fd, iov, cnt);
  struct iovec *v = iov_prefix(iov, &cnt, part);
  if (!v) return errno = ENOMEM, -1;
  ssize_t r = real_writev(fd, v, cnt);
  free(v);
  return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
  size_t part;
  int f = write_fault("pwritev", fd, iov_total(iov, cnt), (long long)off, &part);
  if (f < 0) return -1;
  if (!f) return real_pwritev(fd, iov, cnt, off);
  struct iovec *v = iov_prefix(iov, &cnt, part);
  if (!v) return errno = ENOMEM, -1;
  ssize_t r = real_pwritev(fd, v, cnt, off);
  free(v);
  return r;
}

/* The sync really happens (the pages may well be on disk), but the caller is told it failed:
 * what matters is that nothing built on it is ever confirmed. */
static int sync_fault(const char *call, int fd, int rc) {
  if (kind == K_EIO_FSYNC && role(fd) == R_DATA && hit()) {
    note(call, fd, 0, -1, "EIO");
    errno = EIO;
    return -1;
  }
  return rc;
}

int fsync(int fd) {
  init();
  return sync_fault("fsync", fd, real_fsync(fd));
}

int fdatasync(int fd) {
  init();
  return sync_fault("fdatasync", fd, real_fdatasync(fd));
}
