/*
 * store_int: the method table every store implementation fills (SQLite's VFS habit), private to
 * src/store. An implementation embeds ow_store as the first member of its own handle; store.c's
 * dispatchers call through the table, so the zone never knows which store runs.
 */
#ifndef OW_STORE_INT_H
#define OW_STORE_INT_H

#include "store/store.h"

typedef struct ow_store_methods {
  const char *scheme; /* the URI scheme that opens it: "lmdb" */
  void (*close)(ow_store *s);
  /* Applies the batch atomically and durably, only if cond (may be NULL) holds; see
   * ow_store_write_if() for the contract every implementation keeps. */
  int (*write)(ow_store *s, const ow_batch *b, const ow_store_cond *cond);
  int (*get)(ow_store *s, const void *k, size_t kl, ow_buf *out);
  int (*scan)(ow_store *s, const void *prefix, size_t pl, ow_scan_fn fn, void *ud);
  int (*stat)(ow_store *s, uint64_t *entries, uint64_t *bytes);
  /* Writes a consistent copy into the directory dest, which exists and is empty (see
   * ow_store_copy; store.c makes the directory and renames it into place). NULL: -ENOTSUP. */
  int (*copy)(ow_store *s, const char *dest);
} ow_store_methods;

struct ow_store {
  const ow_store_methods *m;
};

/* Opens the LMDB store in directory `path` (created if missing). */
int ow_store_lmdb_open(ow_store **out, const char *path, const ow_store_options *opt);

#endif
