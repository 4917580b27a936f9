/* ops/schedule: see schedule.h. The timer and the bookkeeping live on the loop thread; only
 * ow_backup_make and the pruning run on the pool, and they touch nothing but the store (whose
 * copy reads through its own read transaction) and the backup directory. */
#include "ops/schedule.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct ow_backup_schedule {
  uv_loop_t *loop;
  uv_timer_t timer;
  uv_work_t work;
  ow_store *store;
  char *dir;
  unsigned keep;
  bool running, stopping;
  /* the backup in flight (written on the pool, read on the loop after it) */
  char dest[4200];
  char err[512];
  int rc;
  int pruned;
  ow_backup_info info;
  /* the last finished one */
  uint64_t done;
  int last_rc;
  ow_backup_info last;
};

static void run(uv_work_t *w) {
  ow_backup_schedule *s = w->data;
  s->rc = ow_backup_make(s->store, s->dest, &s->info, s->err, sizeof s->err);
  s->pruned = s->rc ? 0 : ow_backup_prune(s->dir, s->keep);
}

static void closed(uv_handle_t *h) { ow_free(h->data); }

static void after(uv_work_t *w, int status) {
  ow_backup_schedule *s = w->data;
  s->running = false;
  if (status) s->rc = status; /* cancelled */
  s->done++;
  s->last_rc = s->rc;
  s->last = s->info;
  if (s->rc)
    OW_ERROR("backup_failed", "dest=%s err=%s msg=\"%s\"", s->dest, ow_err_name(s->rc), s->err);
  else
    OW_INFO("backup", "dest=%s frame=%llu keys=%llu bytes=%llu seconds=%.3f pruned=%d", s->dest,
            (unsigned long long)s->info.frame, (unsigned long long)s->info.keys,
            (unsigned long long)s->info.bytes, s->info.seconds, s->pruned);
  if (s->stopping) {
    ow_free(s->dir);
    uv_close((uv_handle_t *)&s->timer, closed);
  }
}

int ow_backup_schedule_now(ow_backup_schedule *s) {
  if (s->running || s->stopping) return OW_E_BUSY;
  /* Names sort by time, which ow_backup_prune relies on; a second backup within the same second
   * gets a suffix instead of failing on the existing name. */
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  struct stat st;
  snprintf(s->dest, sizeof s->dest, "%s/backup-%s", s->dir, stamp);
  for (int i = 1; !stat(s->dest, &st) && i < 100; i++)
    snprintf(s->dest, sizeof s->dest, "%s/backup-%s-%02d", s->dir, stamp, i);
  s->err[0] = 0;
  s->running = true;
  s->work.data = s;
  uv_queue_work(s->loop, &s->work, run, after);
  return 0;
}

static void tick(uv_timer_t *t) { ow_backup_schedule_now(t->data); }

int ow_backup_schedule_start(ow_backup_schedule **out, uv_loop_t *loop, ow_store *store,
                             const char *dir, double every_s, unsigned keep) {
  *out = NULL;
  if (mkdir(dir, 0755) && errno != EEXIST) return -errno;
  ow_backup_schedule *s = ow_calloc(1, sizeof *s);
  s->loop = loop;
  s->store = store;
  s->dir = ow_strdup(dir);
  s->keep = keep ? keep : 1;
  uv_timer_init(loop, &s->timer);
  uv_unref((uv_handle_t *)&s->timer); /* a backup in flight keeps the loop alive, the timer not */
  s->timer.data = s;
  if (every_s > 0) {
    uint64_t ms = (uint64_t)(every_s * 1000);
    uv_timer_start(&s->timer, tick, ms, ms);
  }
  *out = s;
  return 0;
}

uint64_t ow_backup_schedule_last(const ow_backup_schedule *s, int *rc, ow_backup_info *info) {
  if (rc) *rc = s->last_rc;
  if (info) *info = s->last;
  return s->done;
}

void ow_backup_schedule_stop(ow_backup_schedule *s) {
  if (!s) return;
  uv_timer_stop(&s->timer);
  s->stopping = true;
  if (s->running) return; /* after() closes it */
  ow_free(s->dir);
  uv_close((uv_handle_t *)&s->timer, closed);
}
