/* store: batches are atomic and ordered, scans follow key order (FDB-style tuple ordering of
 * region cells), the map grows when full, and the store survives reopening. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/fault.h"
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

static int get_str(ow_store *s, const char *k, char *out, size_t cap) {
  ow_buf v;
  ow_buf_init(&v);
  int rc = ow_store_get(s, k, strlen(k), &v);
  if (!rc) {
    assert_true(v.len < cap);
    memcpy(out, v.data, v.len);
    out[v.len] = 0;
  }
  ow_buf_deinit(&v);
  return rc;
}

/* The conditional write: the batch lands only when the key holds the expected value (or is
 * absent when none is expected); a mismatch is OW_E_CONFLICT, writes nothing and is not sticky. */
static void test_conditional_write(void **state) {
  (void)state;
  char *dir = ow_test_mkdtemp("store-cas");
  ow_store *s = ow_test_store(dir);
  ow_batch b;
  ow_batch_init(&b);
  char got[32];
  /* Absent expected, absent found: written. */
  ow_batch_put(&b, "Mepoch", 6, "1", 1);
  ow_batch_put(&b, "x", 1, "a", 1);
  ow_store_cond absent = {"Mepoch", 6, NULL, 0};
  assert_int_equal(ow_store_write_if(s, &b, &absent), 0);
  /* Absent expected, present found: conflict, nothing of the batch lands. */
  ow_batch_reset(&b);
  ow_batch_put(&b, "x", 1, "b", 1);
  assert_int_equal(ow_store_write_if(s, &b, &absent), OW_E_CONFLICT);
  assert_int_equal(get_str(s, "x", got, sizeof got), 0);
  assert_string_equal(got, "a");
  /* Wrong value, and a value that is a prefix of the stored one: conflict. */
  ow_store_cond wrong = {"Mepoch", 6, "2", 1}, longer = {"Mepoch", 6, "12", 2};
  assert_int_equal(ow_store_write_if(s, &b, &wrong), OW_E_CONFLICT);
  assert_int_equal(ow_store_write_if(s, &b, &longer), OW_E_CONFLICT);
  assert_int_equal(get_str(s, "x", got, sizeof got), 0);
  assert_string_equal(got, "a");
  /* The right value: written, and the store was never made unusable by the conflicts. */
  ow_batch_put(&b, "Mepoch", 6, "2", 1);
  ow_store_cond right = {"Mepoch", 6, "1", 1};
  assert_int_equal(ow_store_write_if(s, &b, &right), 0);
  assert_int_equal(get_str(s, "x", got, sizeof got), 0);
  assert_string_equal(got, "b");
  assert_int_equal(get_str(s, "Mepoch", got, sizeof got), 0);
  assert_string_equal(got, "2");
  /* The old epoch no longer fences in. */
  assert_int_equal(ow_store_write_if(s, &b, &right), OW_E_CONFLICT);
  assert_int_equal(ow_store_write(s, &b), 0);
  ow_batch_deinit(&b);
  ow_store_close(s);
  ow_test_rmdir(dir);
}

static void test_open_uri(void **state) {
  (void)state;
  char *dir = ow_test_mkdtemp("store-uri");
  char uri[512], err[256];
  snprintf(uri, sizeof uri, "lmdb:%s/w", dir);
  ow_store_options o = {.map_size = 1 << 24};
  ow_store *s;
  assert_int_equal(ow_store_open_uri(&s, uri, &o, err, sizeof err), 0);
  assert_string_equal(ow_store_scheme(s), "lmdb");
  ow_batch b;
  ow_batch_init(&b);
  ow_batch_put(&b, "k", 1, "v", 1);
  assert_int_equal(ow_store_write(s, &b), 0);
  ow_batch_deinit(&b);
  ow_store_close(s);
  /* The same directory opened the old way sees the write. */
  snprintf(uri, sizeof uri, "%s/w", dir);
  o.path = uri;
  assert_int_equal(ow_store_open(&s, &o), 0);
  char got[8];
  assert_int_equal(get_str(s, "k", got, sizeof got), 0);
  ow_store_close(s);
  /* Unknown schemes and no scheme are refused, naming what was asked for. */
  assert_int_equal(ow_store_open_uri(&s, "foundationdb:/etc/fdb.cluster", &o, err, sizeof err),
                   OW_E_INVAL);
  assert_null(s);
  assert_non_null(strstr(err, "unknown scheme 'foundationdb'"));
  assert_int_equal(ow_store_open_uri(&s, "/just/a/path", &o, err, sizeof err), OW_E_INVAL);
  assert_int_equal(ow_store_open_uri(&s, "lmdb:", &o, err, sizeof err), OW_E_INVAL);
  assert_false(ow_store_error_retryable(-EIO));
  assert_false(ow_store_error_retryable(OW_E_CONFLICT));
  assert_true(ow_store_error_retryable(OW_E_RETRY));
  ow_test_rmdir(dir);
}

/* What logs and /status show of a store URI: every password masked, in each form libpq reads,
 * and nothing else changed. */
static void redacted(const char *uri, const char *want) {
  char *got = ow_store_uri_redact(uri);
  assert_string_equal(got, want);
  ow_free(got);
}

static void test_uri_redact(void **state) {
  (void)state;
  redacted("lmdb:/var/lib/ow password=x", "lmdb:/var/lib/ow password=x"); /* a path */
  redacted("postgres:host=db port=5432 dbname=w", "postgres:host=db port=5432 dbname=w");
  redacted("postgres:host=db password=s3cret user=ow", "postgres:host=db password=*** user=ow");
  redacted("postgres:password = s3cret host=db", "postgres:password = *** host=db");
  redacted("postgres:password='a b\\'c' host=db", "postgres:password=*** host=db");
  redacted("postgres:host=db password=", "postgres:host=db password=***");
  redacted("postgres:dbname=postgres://u:pw@h/w host=x", "postgres:dbname=postgres://u:***@h/w host=x");
  redacted("postgres://ow:s3cret@db:5432/w", "postgres://ow:***@db:5432/w");
  redacted("postgresql://ow@db/w?password=s3cret&sslmode=require",
           "postgresql://ow@db/w?password=***&sslmode=require");
  redacted("postgres://ow:p@db/w?sslmode=require&password=s",
           "postgres://ow:***@db/w?sslmode=require&password=***");
  redacted("postgres://db/w@x", "postgres://db/w@x"); /* '@' after '/' is not user information */
  redacted("postgres://ow@db/w", "postgres://ow@db/w");
  redacted("", "");
  /* An unknown scheme's error message does not repeat a password either. */
  ow_store *s;
  char err[256];
  ow_store_options o = {0};
  assert_int_equal(ow_store_open_uri(&s, "pgsql://ow:s3cret@db/w", &o, err, sizeof err), OW_E_INVAL);
  assert_null(strstr(err, "s3cret"));
  assert_non_null(strstr(err, "pgsql://ow:***@db/w"));
}

/* The fault wrapper fails exactly the call its rule names, counts every call, and a failed write
 * reaches nothing unless the rule says the batch lands first. */
static void test_fault_wrapper(void **state) {
  (void)state;
  char *dir = ow_test_mkdtemp("store-fault");
  ow_store *f;
  assert_int_equal(ow_store_fault_wrap(&f, ow_test_store(dir)), 0);
  assert_string_equal(ow_store_scheme(f), "fault");
  ow_fault_rule second = {.nth = 2, .err = -EIO};
  ow_store_fault_set(f, OW_FAULT_WRITE, &second);
  ow_batch b;
  ow_batch_init(&b);
  char got[8];
  ow_batch_put(&b, "a", 1, "1", 1);
  assert_int_equal(ow_store_write(f, &b), 0);
  ow_batch_reset(&b);
  ow_batch_put(&b, "b", 1, "2", 1);
  ow_batch_put(&b, "c", 1, "3", 1);
  assert_int_equal(ow_store_write(f, &b), -EIO);
  assert_int_equal(get_str(f, "b", got, sizeof got), OW_E_NOT_FOUND);
  assert_int_equal(get_str(f, "c", got, sizeof got), OW_E_NOT_FOUND);
  assert_int_equal(ow_store_write(f, &b), 0); /* only the 2nd failed */
  assert_int_equal(get_str(f, "c", got, sizeof got), 0);
  assert_int_equal(ow_store_fault_calls(f, OW_FAULT_WRITE), 3);
  /* From the 4th write on, every one fails; "after" lands the batch, then reports the error. */
  ow_fault_rule onward = {.nth = 4, .onward = true, .after = true, .err = OW_E_RETRY};
  ow_store_fault_set(f, OW_FAULT_WRITE, &onward);
  ow_batch_reset(&b);
  ow_batch_put(&b, "d", 1, "4", 1);
  assert_int_equal(ow_store_write(f, &b), OW_E_RETRY);
  assert_int_equal(ow_store_write(f, &b), OW_E_RETRY);
  assert_int_equal(get_str(ow_store_fault_inner(f), "d", got, sizeof got), 0);
  /* Gets and scans. */
  ow_fault_rule get1 = {.nth = 4, .err = -EIO};
  ow_store_fault_set(f, OW_FAULT_GET, &get1);
  assert_int_equal(ow_store_fault_calls(f, OW_FAULT_GET), 3);
  assert_int_equal(get_str(f, "a", got, sizeof got), -EIO);
  assert_int_equal(get_str(f, "a", got, sizeof got), 0);
  ow_fault_rule scan1 = {.nth = 1, .err = -ENOSPC};
  ow_store_fault_set(f, OW_FAULT_SCAN, &scan1);
  ow_buf keys;
  ow_buf_init(&keys);
  assert_int_equal(ow_store_scan(f, "", 0, NULL, &keys), -ENOSPC);
  ow_buf_deinit(&keys);
  ow_batch_deinit(&b);
  ow_store_close(f); /* closes the wrapped store too (ASan's leak check) */
  ow_test_rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batches_and_order),
      cmocka_unit_test(test_map_grows),
      cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_keys),
      cmocka_unit_test(test_conditional_write),
      cmocka_unit_test(test_open_uri),
      cmocka_unit_test(test_fault_wrapper),
      cmocka_unit_test(test_uri_redact),
  };
  return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
