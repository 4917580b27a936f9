/* ops/backup: a hot backup made while frames are being committed holds exactly the world of one
 * frame (its restore recovers that world, byte for byte); verify refuses damaged copies; restore
 * never overwrites a world; retention keeps the newest backups. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ops/backup.h"
#include "otherworld/protocol.h"
#include "support.h"

#define FRAMES 400
#define BACKUPS 12

typedef struct fixture {
  char *dir;
  ow_content *content;
  ow_store *store;
  ow_zone *zone;
  ow_zone_config zc;
  /* the live world's digest after each durable frame (index: frame number) */
  uint64_t digest_at[FRAMES + 64];
  uint64_t first_frame, last_frame;
} fixture;

static int setup(void **state) {
  fixture *fx = ow_calloc(1, sizeof *fx);
  fx->dir = ow_test_mkdtemp("backup");
  fx->content = ow_test_content();
  fx->zc = ow_test_zone_config();
  char p[4200];
  snprintf(p, sizeof p, "%s/live", fx->dir);
  fx->store = ow_test_store(p);
  assert_int_equal(ow_zone_open(&fx->zone, &fx->zc, fx->content, fx->store, NULL, NULL), 0);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  ow_zone_close(fx->zone);
  ow_store_close(fx->store);
  ow_content_destroy(fx->content);
  ow_test_rmdir(fx->dir);
  ow_free(fx);
  return 0;
}

static void path(char *out, size_t n, const fixture *fx, const char *name, int i) {
  snprintf(out, n, "%s/%s%d", fx->dir, name, i);
}

/* One frame of work: a player logs in (a new avatar and its inventory) or an avatar moves. */
static void play_frame(fixture *fx, uint64_t i, uint64_t *sid, ow_id *avatar, uint64_t *seq) {
  if (i % 10 == 0) {
    assert_int_equal(ow_zone_login(fx->zone, 100 + i, sid, avatar), 0);
    *seq = 0;
  } else {
    ow_action mv = {.type = OW_ACT_MOVE, .target = *avatar};
    ow_transform_identity(&mv.xf);
    mv.xf.pos[0] = (float)i;
    ow_result r;
    uint64_t frame;
    bool replayed;
    assert_int_equal(ow_zone_act(fx->zone, *sid, ++*seq, &mv, &r, &frame, &replayed), 0);
    assert_int_equal(r.code, 0);
  }
  assert_int_equal(ow_zone_commit_sync(fx->zone, false), 0);
  uint64_t f = ow_zone_durable_frame(fx->zone);
  assert_true(f < FRAMES + 64);
  fx->digest_at[f] = ow_backup_world_digest(ow_zone_world(fx->zone));
  fx->last_frame = f;
}

typedef struct backer {
  fixture *fx;
  volatile int stop;
  int made, rc;
  char err[512];
} backer;

/* Backups on a thread of their own while the test's thread commits frames. */
static void *backup_thread(void *ud) {
  backer *b = ud;
  char dest[4200];
  for (int i = 0; i < BACKUPS && !b->rc; i++) {
    path(dest, sizeof dest, b->fx, "b", i);
    ow_backup_info bi;
    b->rc = ow_backup_make(b->fx->store, dest, &bi, b->err, sizeof b->err);
    if (!b->rc) b->made++;
    usleep(2000);
  }
  return NULL;
}

static void test_hot_backup_holds_one_frame(void **state) {
  fixture *fx = *state;
  fx->first_frame = ow_zone_durable_frame(fx->zone);
  fx->digest_at[fx->first_frame] = ow_backup_world_digest(ow_zone_world(fx->zone));
  backer b = {.fx = fx};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, backup_thread, &b), 0);
  uint64_t sid = 0, seq = 0;
  ow_id avatar = 0;
  for (uint64_t i = 0; i < FRAMES && fx->last_frame < FRAMES + 60; i++)
    play_frame(fx, i, &sid, &avatar, &seq);
  pthread_join(th, NULL);
  if (b.rc) fail_msg("backup failed: %s", b.err);
  assert_int_equal(b.made, BACKUPS);

  /* Every backup recovers to exactly the world the live zone had after the backup's frame. */
  uint64_t frames_seen[BACKUPS], distinct = 0;
  for (int i = 0; i < BACKUPS; i++) {
    char bdir[4200], rdir[4200], err[600];
    path(bdir, sizeof bdir, fx, "b", i);
    path(rdir, sizeof rdir, fx, "r", i);
    ow_backup_info bi;
    uint64_t totals[256] = {0};
    int rc = ow_backup_verify(bdir, &fx->zc, fx->content, &bi, totals, err, sizeof err);
    if (rc) fail_msg("verify %s: %s", bdir, err);
    assert_true(bi.frame >= fx->first_frame && bi.frame <= fx->last_frame);
    rc = ow_backup_restore(bdir, rdir, &fx->zc, fx->content, &bi, err, sizeof err);
    if (rc) fail_msg("restore %s: %s", bdir, err);
    ow_store *rs = ow_test_store(rdir);
    ow_zone *rz;
    assert_int_equal(ow_zone_open(&rz, &fx->zc, fx->content, rs, NULL, NULL), 0);
    assert_int_equal(ow_zone_durable_frame(rz), bi.frame);
    assert_true(ow_backup_world_digest(ow_zone_world(rz)) == fx->digest_at[bi.frame]);
    ow_zone_close(rz);
    ow_store_close(rs);
    frames_seen[i] = bi.frame;
    if (!i || frames_seen[i] != frames_seen[i - 1]) distinct++;
  }
  /* Not asserted (timing decides it), printed to show the copies overlapped the writes. */
  print_message("backups=%d distinct_frames=%llu frames=%llu..%llu\n", BACKUPS,
                (unsigned long long)distinct, (unsigned long long)fx->first_frame,
                (unsigned long long)fx->last_frame);
}

static void make_one(fixture *fx, char *bdir, size_t n) {
  char err[600];
  ow_backup_info bi;
  path(bdir, n, fx, "one", 0);
  int rc = ow_backup_make(fx->store, bdir, &bi, err, sizeof err);
  if (rc) fail_msg("backup: %s", err);
  assert_true(bi.keys > 0 && bi.entities > 0);
}

static void test_existing_destination_refused(void **state) {
  fixture *fx = *state;
  char bdir[4200], err[600];
  make_one(fx, bdir, sizeof bdir);
  ow_backup_info bi;
  assert_int_equal(ow_backup_make(fx->store, bdir, &bi, err, sizeof err), -EEXIST);
  assert_non_null(strstr(err, "already exists"));
  /* The first backup is untouched by the refused second one. */
  assert_int_equal(ow_backup_verify(bdir, &fx->zc, fx->content, &bi, NULL, err, sizeof err), 0);
}

static void write_file(const char *p, const char *text) {
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_verify_refuses_damage(void **state) {
  fixture *fx = *state;
  char bdir[4200], p[4300], err[600];
  ow_backup_info bi;
  make_one(fx, bdir, sizeof bdir);

  snprintf(p, sizeof p, "%s/manifest.json", bdir);
  FILE *f = fopen(p, "r");
  assert_non_null(f);
  char manifest[2048];
  size_t n = fread(manifest, 1, sizeof manifest - 1, f);
  fclose(f);
  manifest[n] = 0;

  /* A manifest whose digest is another one. */
  char *d = strstr(manifest, "\"digest\": \"");
  assert_non_null(d);
  d += strlen("\"digest\": \"");
  char saved = *d;
  *d = *d == '0' ? '1' : '0';
  write_file(p, manifest);
  assert_int_equal(ow_backup_verify(bdir, &fx->zc, fx->content, &bi, NULL, err, sizeof err),
                   OW_E_CORRUPT);
  assert_non_null(strstr(err, "differs from its manifest"));
  *d = saved;
  write_file(p, manifest);
  assert_int_equal(ow_backup_verify(bdir, &fx->zc, fx->content, &bi, NULL, err, sizeof err), 0);

  /* A damaged store file is not tested here: LMDB keeps no page checksums, and reading a
   * corrupted B-tree can fault inside LMDB before the digest could refuse it (seen under ASan). */

  /* No manifest: refused, named. */
  snprintf(p, sizeof p, "%s/manifest.json", bdir);
  unlink(p);
  assert_int_equal(ow_backup_verify(bdir, &fx->zc, fx->content, &bi, NULL, err, sizeof err),
                   OW_E_CORRUPT);
  assert_non_null(strstr(err, "manifest.json"));
  /* A directory that is no backup at all. */
  path(p, sizeof p, fx, "nothing", 0);
  assert_int_not_equal(ow_backup_verify(p, &fx->zc, fx->content, &bi, NULL, err, sizeof err), 0);
  struct stat none;
  assert_int_not_equal(stat(p, &none), 0); /* verify created nothing */
}

static void test_restore_never_overwrites(void **state) {
  fixture *fx = *state;
  char bdir[4200], target[4200], p[4300], err[600];
  ow_backup_info bi;
  make_one(fx, bdir, sizeof bdir);
  path(target, sizeof target, fx, "occupied", 0);
  assert_int_equal(mkdir(target, 0755), 0);
  snprintf(p, sizeof p, "%s/keep.txt", target);
  write_file(p, "mine");
  assert_int_equal(
      ow_backup_restore(bdir, target, &fx->zc, fx->content, &bi, err, sizeof err), -EEXIST);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  snprintf(p, sizeof p, "%s/data.mdb", target);
  assert_int_not_equal(stat(p, &st), 0);
}

static void test_prune_keeps_newest(void **state) {
  fixture *fx = *state;
  char parent[4200], p[4300], err[600];
  path(parent, sizeof parent, fx, "sched", 0);
  assert_int_equal(mkdir(parent, 0755), 0);
  const char *names[] = {"backup-20261203T100000Z", "backup-20261203T110000Z",
                         "backup-20261203T090000Z", "backup-20261203T120000Z"};
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s/%s", parent, names[i]);
    ow_backup_info bi;
    assert_int_equal(ow_backup_make(fx->store, p, &bi, err, sizeof err), 0);
  }
  snprintf(p, sizeof p, "%s/unrelated", parent);
  assert_int_equal(mkdir(p, 0755), 0);
  assert_int_equal(ow_backup_prune(parent, 2), 2);
  struct stat st;
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s/%s", parent, names[i]);
    bool kept = i == 1 || i == 3; /* the two newest names */
    assert_int_equal(stat(p, &st) == 0, kept);
  }
  snprintf(p, sizeof p, "%s/unrelated", parent);
  assert_int_equal(stat(p, &st), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_hot_backup_holds_one_frame, setup, teardown),
      cmocka_unit_test_setup_teardown(test_existing_destination_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_verify_refuses_damage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restore_never_overwrites, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prune_keeps_newest, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
