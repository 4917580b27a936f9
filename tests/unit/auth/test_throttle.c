/* throttle: failed-attempt limits with growing locks (the login limits per account and per
 * address), on a clock the test drives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "auth/throttle.h"

#define S(x) ((uint64_t)((x)*1e9))

static const ow_throttle_config cfg = {
    .max_fails = 3, .window_s = 60, .lock_s = 5, .lock_max_s = 18};

/* One attempt that was allowed, then failed. */
static void fail_once(ow_throttle *t, uint64_t key, uint64_t now) {
  assert_int_equal(ow_throttle_check(t, key, now, NULL), 0);
  ow_throttle_begin(t, key, now);
  ow_throttle_end(t, key, true, false, now);
}

static void test_locks_after_max_fails_and_doubles(void **state) {
  (void)state;
  ow_throttle *t = ow_throttle_create(&cfg);
  uint64_t now = S(1000);
  for (int i = 0; i < 3; i++) fail_once(t, 7, now);
  double retry;
  assert_int_equal(ow_throttle_check(t, 7, now, &retry), OW_E_RATE);
  assert_true(retry > 4.9 && retry <= 5.0);
  assert_int_equal(ow_throttle_check(t, 8, now, NULL), 0); /* other keys are not affected */
  assert_int_equal(ow_throttle_check(t, 7, now + S(4.9), NULL), OW_E_RATE);
  /* The lock ran out: one attempt on probation; its failure locks for twice as long. */
  now += S(5.1);
  fail_once(t, 7, now);
  assert_int_equal(ow_throttle_check(t, 7, now + S(9.9), &retry), OW_E_RATE);
  assert_true(retry > 0 && retry < 0.2);
  now += S(10.1);
  fail_once(t, 7, now);
  assert_int_equal(ow_throttle_check(t, 7, now, &retry), OW_E_RATE);
  assert_true(retry > 17.9 && retry <= 18.0); /* 20 s capped at lock_max_s */
  now += S(18.1);
  fail_once(t, 7, now);
  assert_int_equal(ow_throttle_check(t, 7, now, &retry), OW_E_RATE);
  assert_true(retry > 17.9 && retry <= 18.0);
  ow_throttle_destroy(t);
}

static void test_running_attempts_count(void **state) {
  (void)state;
  ow_throttle *t = ow_throttle_create(&cfg);
  uint64_t now = S(5);
  /* A burst of parallel guesses: no more than max_fails start. */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(ow_throttle_check(t, 1, now, NULL), 0);
    ow_throttle_begin(t, 1, now);
  }
  assert_int_equal(ow_throttle_check(t, 1, now, NULL), OW_E_RATE);
  /* One succeeds (not a failure, not forgotten: an address): room for one more. */
  ow_throttle_end(t, 1, false, false, now);
  assert_int_equal(ow_throttle_check(t, 1, now, NULL), 0);
  ow_throttle_end(t, 1, true, false, now);
  ow_throttle_end(t, 1, true, false, now);
  assert_int_equal(ow_throttle_check(t, 1, now, NULL), 0);
  fail_once(t, 1, now);
  assert_int_equal(ow_throttle_check(t, 1, now, NULL), OW_E_RATE);
  ow_throttle_destroy(t);
}

static void test_success_forgets_and_window_expires(void **state) {
  (void)state;
  ow_throttle *t = ow_throttle_create(&cfg);
  uint64_t now = S(100);
  fail_once(t, 3, now);
  fail_once(t, 3, now);
  ow_throttle_begin(t, 3, now);
  ow_throttle_end(t, 3, false, true, now); /* the right password */
  assert_int_equal(ow_throttle_size(t), 0);
  fail_once(t, 3, now);
  fail_once(t, 3, now);
  assert_int_equal(ow_throttle_size(t), 1);
  /* Quiet for a window: the two failures are forgotten, three more are allowed. */
  now += S(61);
  fail_once(t, 3, now);
  fail_once(t, 3, now);
  assert_int_equal(ow_throttle_check(t, 3, now, NULL), 0);
  fail_once(t, 3, now);
  assert_int_equal(ow_throttle_check(t, 3, now, NULL), OW_E_RATE);
  /* A window after the lock ended, the key starts from zero (first lock again: 5 s). */
  now += S(5 + 61);
  fail_once(t, 3, now);
  fail_once(t, 3, now);
  fail_once(t, 3, now);
  double retry;
  assert_int_equal(ow_throttle_check(t, 3, now, &retry), OW_E_RATE);
  assert_true(retry > 4.9 && retry <= 5.0);
  ow_throttle_destroy(t);
}

static void test_records_are_bounded(void **state) {
  (void)state;
  ow_throttle *t = ow_throttle_create(&cfg);
  uint64_t now = S(1);
  for (uint64_t k = 0; k < 5000; k++) fail_once(t, k, now);
  assert_int_equal(ow_throttle_size(t), 5000);
  /* A window later, new attempts sweep the stale records away. */
  now += S(61);
  for (uint64_t k = 10000; k < 10000 + 20000; k++) {
    ow_throttle_begin(t, k, now);
    ow_throttle_end(t, k, false, false, now);
  }
  assert_true(ow_throttle_size(t) < 100);
  ow_throttle_destroy(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_locks_after_max_fails_and_doubles),
      cmocka_unit_test(test_running_attempts_count),
      cmocka_unit_test(test_success_forgets_and_window_expires),
      cmocka_unit_test(test_records_are_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
