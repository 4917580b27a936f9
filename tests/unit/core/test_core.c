/* core: byte codecs, the sticky reader, the u64 map, error names, memory accounting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>

#include "core/core.h"

static void test_buf_roundtrip(void **state) {
  (void)state;
  ow_buf b;
  ow_buf_init(&b);
  ow_buf_u8(&b, 0xab);
  ow_buf_u16(&b, 0x1234);
  ow_buf_u32(&b, 0xdeadbeef);
  ow_buf_u64(&b, 0x0102030405060708ULL);
  ow_buf_i32(&b, -7);
  ow_buf_f32(&b, 1.5f);
  ow_buf_f64(&b, -2.25);
  ow_buf_be32(&b, 0x01020304);
  ow_buf_be64(&b, 0x1122334455667788ULL);
  ow_buf_str16(&b, "hello", 5);
  /* Little-endian on the wire, whatever the host. */
  assert_int_equal(b.data[1], 0x34);
  assert_int_equal(b.data[2], 0x12);
  ow_reader r;
  ow_reader_init(&r, b.data, b.len);
  assert_int_equal(ow_rd_u8(&r), 0xab);
  assert_int_equal(ow_rd_u16(&r), 0x1234);
  assert_int_equal(ow_rd_u32(&r), 0xdeadbeef);
  assert_true(ow_rd_u64(&r) == 0x0102030405060708ULL);
  assert_int_equal(ow_rd_i32(&r), -7);
  assert_true(ow_rd_f32(&r) == 1.5f);
  assert_true(ow_rd_f64(&r) == -2.25);
  assert_int_equal(ow_rd_be32(&r), 0x01020304);
  assert_true(ow_rd_be64(&r) == 0x1122334455667788ULL);
  size_t n;
  const char *s = ow_rd_str16(&r, &n);
  assert_int_equal(n, 5);
  assert_memory_equal(s, "hello", 5);
  assert_int_equal(r.left, 0);
  assert_int_equal(r.err, 0);
  ow_buf_deinit(&b);
}

static void test_reader_sticky_error(void **state) {
  (void)state;
  uint8_t data[3] = {1, 2, 3};
  ow_reader r;
  ow_reader_init(&r, data, sizeof data);
  assert_int_equal(ow_rd_u16(&r), 0x0201);
  assert_int_equal(ow_rd_u32(&r), 0); /* short */
  assert_int_equal(r.err, OW_E_CORRUPT);
  assert_int_equal(ow_rd_u8(&r), 0); /* stays failed although one byte is left */
  size_t n;
  uint8_t str[4] = {10, 0, 'a', 'b'}; /* claims 10 bytes, has 2 */
  ow_reader_init(&r, str, sizeof str);
  assert_null(ow_rd_str16(&r, &n));
  assert_int_equal(n, 0);
  assert_int_equal(r.err, OW_E_CORRUPT);
}

static void test_map_against_array(void **state) {
  (void)state;
  enum { N = 20000 };
  ow_map m;
  ow_map_init(&m);
  uint64_t *vals = calloc(N, sizeof *vals);
  bool *present = calloc(N, sizeof *present);
  srand(1);
  /* Keys include 0 and collide heavily in the low bits. */
  for (int step = 0; step < 200000; step++) {
    int k = rand() % N;
    uint64_t key = (uint64_t)k << 20;
    if (rand() % 3) {
      vals[k] = (uint64_t)rand();
      present[k] = true;
      ow_map_set(&m, key, vals[k]);
    } else {
      assert_int_equal(ow_map_del(&m, key), present[k]);
      present[k] = false;
    }
    if (step % 1000 == 0) {
      size_t count = 0;
      for (int i = 0; i < N; i++) {
        uint64_t *v = ow_map_get(&m, (uint64_t)i << 20);
        count += present[i];
        if (present[i]) {
          assert_non_null(v);
          assert_true(*v == vals[i]);
        } else {
          assert_null(v);
        }
      }
      assert_int_equal(m.len, count);
    }
  }
  ow_map_deinit(&m);
  free(vals);
  free(present);
}

static void test_errors(void **state) {
  (void)state;
  assert_string_equal(ow_err_name(OW_E_NOT_FOUND), "OW_E_NOT_FOUND");
  assert_string_equal(ow_strerror(OW_E_FULL), "container or vehicle is full");
  assert_string_equal(ow_err_name(-ENOSPC), "ENOSPC");
  assert_string_equal(ow_err_name(0), "OK");
  assert_string_equal(ow_strerror(-99999), "unknown error");
}

static void test_mem_accounting(void **state) {
  (void)state;
  size_t before = ow_mem_used();
  void *p = ow_malloc(1000);
  assert_true(ow_mem_used() >= before + 1000);
  p = ow_realloc(p, 100000);
  assert_true(ow_mem_used() >= before + 100000);
  ow_free(p);
  assert_int_equal(ow_mem_used(), before);
  char *s = ow_strdup("abc");
  assert_string_equal(s, "abc");
  ow_free(s);
  assert_int_equal(ow_mem_used(), before);
}

static void test_samples(void **state) {
  (void)state;
  ow_samples *s = ow_calloc(1, sizeof *s);
  assert_int_equal(ow_samples_pct(s, 99), 0);
  for (uint64_t i = 1; i <= 100; i++) ow_samples_add(s, i);
  assert_int_equal(ow_samples_pct(s, 0), 1);
  assert_int_equal(ow_samples_pct(s, 50), 51);
  assert_int_equal(ow_samples_pct(s, 100), 100);
  /* Only the newest OW_SAMPLES are kept. */
  for (int i = 0; i < OW_SAMPLES; i++) ow_samples_add(s, 7);
  assert_int_equal(ow_samples_pct(s, 100), 7);
  ow_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buf_roundtrip),    cmocka_unit_test(test_reader_sticky_error),
      cmocka_unit_test(test_map_against_array), cmocka_unit_test(test_errors),
      cmocka_unit_test(test_mem_accounting),   cmocka_unit_test(test_samples),
  };
  return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
