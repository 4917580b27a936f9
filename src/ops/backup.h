/*
 * ops/backup: hot backups of a world's store, their verification and their restore. A backup is a
 * directory holding a compacted copy of the store as of one committed frame (store/) and a manifest
 * (manifest.json: that frame, the number of keys, a BLAKE2b digest of every key and value), so
 * that verify can prove a copy whole and consistent long after it was made, without the live world.
 */
#ifndef OW_OPS_BACKUP_H
#define OW_OPS_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "content/content.h"
#include "store/store.h"
#include "world/world.h"
#include "zone/zone.h"

typedef struct ow_backup_info {
  uint64_t frame;     /* the last frame the copy holds */
  uint64_t keys;      /* keys in the copy */
  uint64_t entities;  /* of which entity records */
  uint64_t bytes;     /* bytes of keys and values */
  uint8_t digest[32]; /* BLAKE2b-256 over every key and value, in key order */
  double seconds;     /* time the operation took */
} ow_backup_info;

/* Makes a backup of the open store s in the directory dest (which must not exist: -EEXIST), while
 * writes to s go on: the copy holds exactly one commit. Made under dest + ".tmp" and renamed, so
 * dest is either a whole backup or absent. On failure writes a message into err. */
int ow_backup_make(ow_store *s, const char *dest, ow_backup_info *info, char *err, size_t errlen);

/* Checks the backup in dir: the copy's keys and values against the manifest's digest (integrity of
 * every byte), then a recovery of the world from it with the given content (every record decodes,
 * every child's container exists), every item stack between 1 and its type's stack_max, and every
 * frame record of the frame log readable. OW_E_CORRUPT with the first problem in err otherwise.
 * item_totals (may be NULL) receives the units of each item type (content->ntypes entries). */
int ow_backup_verify(const char *dir, const ow_zone_config *zc, ow_content *content,
                     ow_backup_info *info, uint64_t *item_totals, char *err, size_t errlen);

/* Verifies the backup in dir and copies its store into data_dir, which must not hold a store yet
 * (-EEXIST: a restore never overwrites a world). */
int ow_backup_restore(const char *dir, const char *data_dir, const ow_zone_config *zc,
                      ow_content *content, ow_backup_info *info, char *err, size_t errlen);

/* Removes the oldest backups named "backup-*" in parent beyond the newest `keep` (names sort by
 * time). Returns how many it removed, or -errno. */
int ow_backup_prune(const char *parent, unsigned keep);

/* Order-independent digest of a world's entities (each entity's id and record, summed), for
 * comparing a restored world with the live one. */
uint64_t ow_backup_world_digest(const ow_world *w);

#endif
