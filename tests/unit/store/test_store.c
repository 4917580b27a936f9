/* store: batches are atomic and ordered, scans follow key order (FDB-style tuple ordering of
 * region cells), the map grows when full, and the store survives reopening. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "support.h"

static int collect(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  (void)v, (void)vl;
  ow_buf *b = ud;
  int32_t x, z;
  uint64_t id;
  assert_true(ow_key_parse_entity(k, kl, &x, &z, &id));
  ow_buf_i32(b, x);
  ow_buf_i32(b, z);
  ow_buf_u64(b, id);
  return 0;
}

static void test_batches_and_order(void **state) {
  (void)state;
  char *dir = ow_test_mkdtemp("store");
  ow_store *s = ow_test_store(dir);
  ow_batch b;
  ow_batch_init(&b);
  const int32_t cells[][2] = {{1, 0}, {-1, 5}, {0, 0}, {-2, -3}, {0, -1}};
  uint8_t k[OW_KEY_ENTITY_LEN];
  for (size_t i = 0; i < 5; i++) {
    ow_key_entity(k, cells[i][0], cells[i][1], 100 - i);
    ow_batch_put(&b, k, sizeof k, "v", 1);
  }
  assert_int_equal(ow_store_write(s, &b), 0);
  /* Keys sort as (x, z, id) with negative cells first, like a tuple layer. */
  ow_buf got;
  ow_buf_init(&got);
  uint8_t p = OW_KEY_REGION;
  assert_int_equal(ow_store_scan(s, &p, 1, collect, &got), 0);
  ow_reader r;
  ow_reader_init(&r, got.data, got.len);
  const int32_t want[][2] = {{-2, -3}, {-1, 5}, {0, -1}, {0, 0}, {1, 0}};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(ow_rd_i32(&r), want[i][0]);
    assert_int_equal(ow_rd_i32(&r), want[i][1]);
    ow_rd_u64(&r);
  }
  /* A region's entities are one prefix. */
  uint8_t rp[10];
  ow_key_region_prefix(rp, 0, 0);
  got.len = 0;
  assert_int_equal(ow_store_scan(s, rp, sizeof rp, collect, &got), 0);
  assert_int_equal(got.len, 16);
  /* Deletes and puts in one batch; deleting a missing key is not an error. */
  ow_batch_reset(&b);
  ow_key_entity(k, 0, 0, 98);
  ow_batch_del(&b, k, sizeof k);
  ow_key_entity(k, 7, 7, 1);
  ow_batch_del(&b, k, sizeof k);
  ow_key_id(k, OW_KEY_META, 0);
  ow_batch_put(&b, "Mname", 5, "value", 5);
  assert_int_equal(ow_store_write(s, &b), 0);
  ow_buf v;
  ow_buf_init(&v);
  assert_int_equal(ow_store_get(s, "Mname", 5, &v), 0);
  assert_int_equal(v.len, 5);
  assert_int_equal(ow_store_get(s, "Mnone", 5, &v), OW_E_NOT_FOUND);
  uint64_t entries;
  assert_int_equal(ow_store_stat(s, &entries, NULL), 0);
  assert_int_equal(entries, 5);
  ow_store_close(s);
  s = ow_test_store(dir);
  assert_int_equal(ow_store_stat(s, &entries, NULL), 0);
  assert_int_equal(entries, 5);
  ow_store_close(s);
  ow_batch_deinit(&b);
  ow_buf_deinit(&got);
  ow_buf_deinit(&v);
  ow_test_rmdir(dir);
}

static void test_map_grows(void **state) {
  (void)state;
  char *dir = ow_test_mkdtemp("store-grow");
  ow_store_options o = {.path = dir, .map_size = 1u << 20};
  ow_store *s;
  assert_int_equal(ow_store_open(&s, &o), 0);
  ow_batch b;
  ow_batch_init(&b);
  char val[1000];
  memset(val, 'x', sizeof val);
  for (int round = 0; round < 4; round++) {
    ow_batch_reset(&b);
    for (int i = 0; i < 2000; i++) {
      uint8_t k[OW_KEY_ID_LEN];
      ow_key_id(k, OW_KEY_FRAME, (uint64_t)(round * 2000 + i));
      ow_batch_put(&b, k, sizeof k, val, sizeof val);
    }
    assert_int_equal(ow_store_write(s, &b), 0);
  }
  uint64_t entries, bytes;
  assert_int_equal(ow_store_stat(s, &entries, &bytes), 0);
  assert_int_equal(entries, 8000);
  assert_true(bytes > 8000000);
  ow_store_close(s);
  ow_batch_deinit(&b);
  ow_test_rmdir(dir);
}

static void test_open_errors(void **state) {
  (void)state;
  ow_store_options o = {.path = "/proc/version/cannot", .map_size = 1u << 20};
  ow_store *s = (ow_store *)1;
  int rc = ow_store_open(&s, &o);
  assert_true(rc < 0);
  assert_null(s);
  /* A data directory that is a file. */
  char path[] = "/tmp/ow-store-file-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  o.path = path;
  assert_true(ow_store_open(&s, &o) < 0);
  unlink(path);
}

static void test_keys(void **state) {
  (void)state;
  uint8_t k[OW_KEY_ENTITY_LEN];
  ow_key_entity(k, INT32_MIN, INT32_MAX, UINT64_MAX);
  int32_t x, z;
  uint64_t id;
  assert_true(ow_key_parse_entity(k, sizeof k, &x, &z, &id));
  assert_int_equal(x, INT32_MIN);
  assert_int_equal(z, INT32_MAX);
  assert_true(id == UINT64_MAX);
  assert_false(ow_key_parse_entity(k, sizeof k - 1, &x, &z, &id));
  k[0] = 'F';
  assert_false(ow_key_parse_entity(k, sizeof k, &x, &z, &id));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batches_and_order),
      cmocka_unit_test(test_map_grows),
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_keys),
  };
  return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
