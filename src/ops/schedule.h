/*
 * ops/schedule: backups of a running world on a timer. Every `every_s` seconds a backup of the
 * store is made on libuv's thread pool (ops/backup.h) into dir/backup-<UTC time>, while the loop
 * goes on, and the oldest beyond `keep` are removed; one backup at a time, each one logged.
 */
#ifndef OW_OPS_SCHEDULE_H
#define OW_OPS_SCHEDULE_H

#include <uv.h>

#include "ops/backup.h"

typedef struct ow_backup_schedule ow_backup_schedule;

/* Starts the timer (every_s > 0) or only prepares on-demand backups (every_s == 0). dir is
 * created if missing. Returns 0 or -errno when dir cannot be created. */
int ow_backup_schedule_start(ow_backup_schedule **out, uv_loop_t *loop, ow_store *store,
                             const char *dir, double every_s, unsigned keep);
/* Starts a backup now unless one is running (OW_E_BUSY). */
int ow_backup_schedule_now(ow_backup_schedule *s);
/* The last backup's outcome: 0, or its error; *info its figures (may be NULL). Returns the number
 * of backups finished so far. */
uint64_t ow_backup_schedule_last(const ow_backup_schedule *s, int *rc, ow_backup_info *info);
/* Stops the timer; a backup in flight finishes on the pool and the schedule frees itself then. */
void ow_backup_schedule_stop(ow_backup_schedule *s);

#endif
