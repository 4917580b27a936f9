/*
 * assets_store: the content-addressed asset files (src/assets/store.h). A put stores the bytes
 * once under their digest and records the owner; a second put of the same bytes writes nothing
 * new, by the same or another account; get returns the bytes; usage is rebuilt at open from the
 * ownership files; a file left in tmp/ by a crash is removed at open; a damaged blob (wrong size)
 * is replaced; an unwritable directory is an error that leaves nothing visible.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assets/store.h"
#include "core/core.h"
#include "support.h"

static void digest_of(const void *p, size_t n, uint8_t d[OW_ASSET_DIGEST_LEN]) {
  crypto_generichash(d, OW_ASSET_DIGEST_LEN, p, n, NULL, 0);
}

static bool exists(const char *dir, const char *a, const char *b) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s/%s", dir, a, b);
  struct stat st;
  return !stat(path, &st);
}

static void test_put_get_dedup(void **state) {
  (void)state;
  char *dir = ow_test_mkdtemp("assetstore");
  char sub[600];
  snprintf(sub, sizeof sub, "%s/assets", dir);
  ow_assetstore *s;
  assert_int_equal(ow_assetstore_open(&s, sub), 0);
  const char *a = "first asset bytes", *b = "second, longer asset bytes";
  uint8_t da[32], db[32];
  digest_of(a, strlen(a), da);
  digest_of(b, strlen(b), db);
  bool stored, owned;
  assert_int_equal(ow_assetstore_put(s, 7, da, (const uint8_t *)a, strlen(a), &stored, &owned), 0);
  assert_true(stored && owned);
  ow_assetstore_charge(s, 7, strlen(a));
  /* The same bytes again: nothing new, by the owner; by another account: a new owner only. */
  assert_int_equal(ow_assetstore_put(s, 7, da, (const uint8_t *)a, strlen(a), &stored, &owned), 0);
  assert_false(stored || owned);
  assert_int_equal(ow_assetstore_put(s, 9, da, (const uint8_t *)a, strlen(a), &stored, &owned), 0);
  assert_true(!stored && owned);
  ow_assetstore_charge(s, 9, strlen(a));
  assert_int_equal(ow_assetstore_put(s, 7, db, (const uint8_t *)b, strlen(b), &stored, &owned), 0);
  assert_true(stored && owned);
  ow_assetstore_charge(s, 7, strlen(b));
  assert_int_equal(ow_assetstore_usage(s, 7), strlen(a) + strlen(b));
  assert_int_equal(ow_assetstore_usage(s, 9), strlen(a));
  assert_int_equal(ow_assetstore_usage(s, 8), 0);
  assert_true(ow_assetstore_owns(s, 9, da));
  assert_false(ow_assetstore_owns(s, 9, db));
  assert_int_equal(ow_assetstore_stats_get(s).blobs, 2);
  uint8_t *p;
  size_t n;
  assert_int_equal(ow_assetstore_get(s, db, &p, &n), 0);
  assert_int_equal(n, strlen(b));
  assert_memory_equal(p, b, n);
  ow_free(p);
  uint8_t none[32] = {1};
  assert_int_equal(ow_assetstore_get(s, none, &p, &n), OW_E_NOT_FOUND);
  assert_null(p);
  char hex[65];
  ow_asset_hex(da, hex);
  assert_true(exists(sub, "blobs", hex));
  ow_assetstore_close(s);

  /* A crash mid-write left a temp file; a blob was cut short. Reopening removes the one, the next
   * put of the same bytes replaces the other, and usage is what the ownership files say. */
  char tmpf[700], blob[700];
  snprintf(tmpf, sizeof tmpf, "%s/tmp/leftover", sub);
  int fd = open(tmpf, O_WRONLY | O_CREAT, 0644);
  assert_true(fd >= 0);
  close(fd);
  ow_asset_hex(db, hex);
  snprintf(blob, sizeof blob, "%s/blobs/%s", sub, hex);
  assert_int_equal(truncate(blob, 3), 0);
  assert_int_equal(ow_assetstore_open(&s, sub), 0);
  assert_false(exists(sub, "tmp", "leftover"));
  assert_int_equal(ow_assetstore_usage(s, 9), strlen(a));
  assert_int_equal(ow_assetstore_usage(s, 7), strlen(a) + 3); /* what is on disk now */
  assert_int_equal(ow_assetstore_put(s, 7, db, (const uint8_t *)b, strlen(b), &stored, &owned), 0);
  assert_true(stored && !owned);
  assert_int_equal(ow_assetstore_get(s, db, &p, &n), 0);
  assert_int_equal(n, strlen(b));
  ow_free(p);
  ow_assetstore_close(s);
  ow_test_rmdir(dir);
}

static void test_hex(void **state) {
  (void)state;
  uint8_t d[32], e[32];
  for (int i = 0; i < 32; i++) d[i] = (uint8_t)(i * 37);
  char hex[65];
  ow_asset_hex(d, hex);
  assert_int_equal(strlen(hex), 64);
  assert_true(ow_asset_parse_hex(hex, e));
  assert_memory_equal(d, e, 32);
  hex[5] = 'G';
  assert_false(ow_asset_parse_hex(hex, e));
  assert_false(ow_asset_parse_hex("abcd", e));
  char longer[70];
  ow_asset_hex(d, longer);
  strcat(longer, "00");
  assert_false(ow_asset_parse_hex(longer, e));
  assert_false(ow_asset_parse_hex("../../../../etc/passwd", e));
}

static void test_errors(void **state) {
  (void)state;
  ow_assetstore *s;
  /* A path under a regular file cannot be a directory. */
  char *dir = ow_test_mkdtemp("assetstore-err");
  char file[600], sub[700];
  snprintf(file, sizeof file, "%s/file", dir);
  int fd = open(file, O_WRONLY | O_CREAT, 0644);
  close(fd);
  snprintf(sub, sizeof sub, "%s/assets", file);
  assert_true(ow_assetstore_open(&s, sub) < 0);
  assert_null(s);
  /* blobs/ made read-only after open (root ignores modes, so replace it by a file instead). */
  snprintf(sub, sizeof sub, "%s/assets", dir);
  assert_int_equal(ow_assetstore_open(&s, sub), 0);
  char blobs[800];
  snprintf(blobs, sizeof blobs, "%s/blobs", sub);
  assert_int_equal(rmdir(blobs), 0);
  fd = open(blobs, O_WRONLY | O_CREAT, 0644);
  close(fd);
  uint8_t d[32];
  digest_of("x", 1, d);
  bool stored, owned;
  assert_true(ow_assetstore_put(s, 1, d, (const uint8_t *)"x", 1, &stored, &owned) < 0);
  assert_false(stored || owned);
  assert_false(ow_assetstore_owns(s, 1, d));
  char tmpd[800];
  snprintf(tmpd, sizeof tmpd, "%s/tmp", sub);
  assert_int_equal(rmdir(tmpd), 0); /* empty: the failed write removed its temp file */
  ow_assetstore_close(s);
  ow_test_rmdir(dir);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_put_get_dedup),
      cmocka_unit_test(test_hex),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
