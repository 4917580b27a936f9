/*
 * assets/store: the content-addressed files of uploaded assets under one directory (data_dir's
 * assets/), named by the BLAKE2b-256 digest of their bytes, so identical uploads are stored once,
 * and each account's ownership of them, which the per-account quota counts. Files are written to
 * a temporary name, fsynced and renamed into place (then the directory is fsynced), so a crash
 * leaves either the whole asset or none of it; nothing of this lives in the LMDB store.
 *
 * Layout: DIR/blobs/<64 hex digits> (the asset), DIR/owners/<account>/<64 hex> (an empty file:
 * the account uploaded it), DIR/tmp/ (files being written; emptied at open). The put and get
 * calls only touch files and may run on a worker thread; usage and charge are for the loop.
 */
#ifndef OW_ASSETS_STORE_H
#define OW_ASSETS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OW_ASSET_DIGEST_LEN 32

typedef struct ow_assetstore ow_assetstore;

/* Opens (creating it, its parents and its subdirectories when missing) the store in dir, empties tmp/, and
 * adds up each account's usage from owners/. Returns 0, or -errno (the store cannot be used). */
int ow_assetstore_open(ow_assetstore **out, const char *dir);
void ow_assetstore_close(ow_assetstore *s);

/* The 64 lowercase hex digits of a digest, NUL-terminated. */
void ow_asset_hex(const uint8_t digest[OW_ASSET_DIGEST_LEN], char out[2 * OW_ASSET_DIGEST_LEN + 1]);
/* Parses 64 hex digits (either case; nothing else). */
bool ow_asset_parse_hex(const char *hex, uint8_t digest[OW_ASSET_DIGEST_LEN]);

/* Stores p/n under its digest (computed by the caller, who hashed the bytes as they came) for
 * account: writes the blob unless a file of that digest exists (*stored_new says whether it was
 * written), then records the ownership (*owned_new: the account did not own it before; only then
 * does its usage grow by n, see ow_assetstore_charge). Any thread. Returns 0 or -errno; on an
 * error nothing new is visible (a temp file is removed). */
int ow_assetstore_put(ow_assetstore *s, uint64_t account, const uint8_t digest[OW_ASSET_DIGEST_LEN],
                      const uint8_t *p, size_t n, bool *stored_new, bool *owned_new);

/* Reads the blob of a digest into a fresh allocation (*p, *n; the caller frees it with ow_free).
 * Any thread. OW_E_NOT_FOUND when there is none, -errno on a read error. */
int ow_assetstore_get(ow_assetstore *s, const uint8_t digest[OW_ASSET_DIGEST_LEN], uint8_t **p, size_t *n);

/* Whether the account owns the asset (its ownership file exists). Any thread; one stat. */
bool ow_assetstore_owns(const ow_assetstore *s, uint64_t account, const uint8_t digest[OW_ASSET_DIGEST_LEN]);

/* Bytes of the assets an account owns (each counted once, however often it uploaded it). Loop
 * thread, as is charge, which adds n after a put that reported owned_new. */
uint64_t ow_assetstore_usage(const ow_assetstore *s, uint64_t account);
void ow_assetstore_charge(ow_assetstore *s, uint64_t account, uint64_t n);

/* Counts for /status and tests: blobs on disk and their bytes (as of open plus the puts since). */
typedef struct ow_assetstore_stats {
  uint64_t blobs, bytes;
} ow_assetstore_stats;
ow_assetstore_stats ow_assetstore_stats_get(const ow_assetstore *s);

#endif
