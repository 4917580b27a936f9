/*
 * store: the durable ordered keyspace, laid out as FoundationDB's would be (docs/storage.md),
 * behind a method table so that the zone never knows which engine runs: LMDB (store/lmdb.c) is the
 * embedded default, a fault-injecting wrapper (store/fault.h) stands in for tests, and a SQL store
 * can follow. A batch of puts and deletes is applied as one ACID transaction; the module never
 * includes world or zone headers: it stores bytes under keys.
 */
#ifndef OW_STORE_H
#define OW_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/core.h"

typedef struct ow_store ow_store;

typedef struct ow_store_options {
  const char *path;  /* directory; created if missing */
  uint64_t map_size; /* initial LMDB map size in bytes; grows by doubling when full */
  bool nosync;       /* MDB_NOSYNC: the operator accepts losing the last commits on power loss
                        (a process crash still loses nothing) */
  bool read_only;    /* open an existing store for reading only (backups, verify); it may be in
                        use by a running server at the same time (LMDB's lock file) */
  double outage_s;   /* networked stores: how long writes wait for an unreachable server before
                        they fail with OW_E_RETRY, timed from the first write that found it gone
                        (0: 30 s) */
} ow_store_options;

/* Opens (creating if needed) the LMDB store in opt->path. The caller owns *out. */
int ow_store_open(ow_store **out, const ow_store_options *opt);
/* Opens the store a URI names: "lmdb:DIR" (opt->path is ignored). An unknown scheme returns
 * OW_E_INVAL with a message naming it in err (may be NULL); other failures as ow_store_open. */
int ow_store_open_uri(ow_store **out, const char *uri, const ow_store_options *opt, char *err,
                      size_t errlen);
/* Closes the store (NULL is ignored). */
void ow_store_close(ow_store *s);
/* The scheme of the implementation behind s ("lmdb"), for logs and /status. */
const char *ow_store_scheme(const ow_store *s);
/* Whether ow_store_copy can copy s (false: it answers -ENOTSUP), so that a backup on a store that
 * cannot be copied is refused before anything is made. */
bool ow_store_can_copy(const ow_store *s);
/* A copy of a store URI fit for logs and /status: every password (a conninfo's password=, a URL's
 * user:password@ and ?password=) replaced by "***", the rest as written. The caller frees it with
 * ow_free. */
char *ow_store_uri_redact(const char *uri);

/* A batch of operations, applied in order by ow_store_write(). Encoded in one flat buffer:
 * [u8 op][u32 klen][key][u32 vlen][value] (value only for puts). */
typedef struct ow_batch {
  ow_buf ops;
  size_t n;
  size_t open_val; /* offset of the length of a value being written, 0 if none */
} ow_batch;

void ow_batch_init(ow_batch *b);
void ow_batch_deinit(ow_batch *b);
void ow_batch_reset(ow_batch *b);
void ow_batch_put(ow_batch *b, const void *k, size_t kl, const void *v, size_t vl);
/* Starts a put whose value the caller appends to b->ops afterwards; ow_batch_put_end() closes it. */
void ow_batch_put_begin(ow_batch *b, const void *k, size_t kl);
void ow_batch_put_end(ow_batch *b);
void ow_batch_del(ow_batch *b, const void *k, size_t kl);

/* Calls fn for each operation of the batch in order: op is OW_BATCH_PUT (v, vl valid) or
 * OW_BATCH_DEL. A non-zero return stops the walk and is returned. */
enum { OW_BATCH_PUT = 1, OW_BATCH_DEL = 2 };
typedef int (*ow_batch_fn)(void *ud, int op, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl);
int ow_batch_each(const ow_batch *b, ow_batch_fn fn, void *ud);

/* Applies the batch in one write transaction and makes it durable (unless nosync). Returns 0,
 * -errno (EIO, ENOSPC, ...) or OW_E_STORE. May run on a thread other than the one that opened the
 * store, but only one write at a time. On failure nothing of the batch is applied. A failure is
 * sticky (LMDB's habit): every later write returns the same error without touching the file, until
 * the store is closed and opened again, which re-reads what is really on disk. Only OW_E_CORRUPT
 * (a malformed batch, refused before anything is written) is not sticky. */
int ow_store_write(ow_store *s, const ow_batch *b);

/* A condition on one key, checked inside the write's own transaction: the key must hold exactly
 * `expect` (el bytes), or be absent when expect is NULL. For fencing (a region lease's epoch). */
typedef struct ow_store_cond {
  const void *key;
  size_t kl;
  const void *expect; /* NULL: the key must be absent */
  size_t el;
} ow_store_cond;
/* As ow_store_write, but only if cond holds; otherwise OW_E_CONFLICT and nothing is written.
 * OW_E_CONFLICT is not sticky: the store stays usable. */
int ow_store_write_if(ow_store *s, const ow_batch *b, const ow_store_cond *cond);

/* Errors of a write fall in two classes. Retryable (OW_E_RETRY: a serialization conflict or a
 * dropped connection of a networked store): nothing was written and the same batch may be written
 * again. Fatal (-EIO, -ENOSPC, OW_E_STORE, and anything else but the two below): sticky as
 * described above; the process must restart and re-read the store. Neither class: OW_E_CORRUPT (a
 * malformed batch) and OW_E_CONFLICT (a condition that does not hold), which leave the store usable
 * but will fail the same way again. */
bool ow_store_error_retryable(int rc);

/* Writes a consistent, compacted copy of the store as of its last commit into directory dest
 * (created; it must not hold a store already: -EEXIST), durably (fsynced), while writes go on.
 * The copy is made under dest + ".tmp" and renamed into place, so dest either holds a whole copy
 * or does not exist. -ENOTSUP for an implementation that cannot copy itself. */
int ow_store_copy(ow_store *s, const char *dest);

/* Reads one value into out (replacing its contents). OW_E_NOT_FOUND if absent. */
int ow_store_get(ow_store *s, const void *k, size_t kl, ow_buf *out);

/* Calls fn for every key starting with prefix, in key order, inside one read transaction. The
 * pointers are valid only during the call. A non-zero return from fn stops the scan and is
 * returned. */
typedef int (*ow_scan_fn)(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl);
int ow_store_scan(ow_store *s, const void *prefix, size_t pl, ow_scan_fn fn, void *ud);

/* Entries in the keyspace and bytes of the data file in use. */
int ow_store_stat(ow_store *s, uint64_t *entries, uint64_t *bytes);

/* ---- keyspace (docs/storage.md) ----------------------------------------------------------------- */

enum {
  OW_KEY_META = 'M',    /* 'M' name                          -> meta value */
  OW_KEY_REGION = 'R',  /* 'R' be32(x^2^31) be32(z^2^31) 'E' be64(id) -> entity record */
  OW_KEY_FRAME = 'F',   /* 'F' be64(frame)                   -> frame record */
  OW_KEY_SESSION = 'S', /* 'S' be64(session)                 -> session record */
  OW_KEY_RESULT = 'Q',  /* 'Q' be64(session) be64(seq)       -> remembered action result */
  OW_KEY_PLAYER = 'P',  /* 'P' be64(account)                 -> player record */
  OW_KEY_ACCOUNT = 'A', /* 'A' be64(account)                 -> account record */
  OW_KEY_TOKEN = 'T',   /* 'T' blake2b-256(token)            -> token record */
};
#define OW_KEY_ENTITY_LEN 18
#define OW_KEY_ID_LEN 9

/* Writes the key of an entity in region cell (x, z). */
void ow_key_entity(uint8_t out[OW_KEY_ENTITY_LEN], int32_t x, int32_t z, uint64_t id);
/* Parses an entity key; false if it is not one. */
bool ow_key_parse_entity(const uint8_t *k, size_t kl, int32_t *x, int32_t *z, uint64_t *id);
/* Writes the 9-byte key of prefix tag + big-endian id (frames, sessions, players). */
void ow_key_id(uint8_t out[OW_KEY_ID_LEN], uint8_t tag, uint64_t id);
/* Writes the 10-byte prefix of a region's entity keys: 'R', be32(x ^ 2^31), be32(z ^ 2^31), 'E'
 * (the flipped sign bit sorts negative cells before positive ones). */
void ow_key_region_prefix(uint8_t out[10], int32_t x, int32_t z);

#endif
