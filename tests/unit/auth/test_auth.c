/* auth: names and passwords, argon2id, accounts and tokens persisted through zone frames, expiry,
 * revocation, the per-account token limit. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "support.h"

typedef struct fx {
  char *dir;
  ow_content *content;
  ow_store *store;
  ow_zone *zone;
  ow_auth *auth;
} fx;

/* Cheap argon2id parameters: the tests check behaviour, not strength. */
static const ow_auth_config cfg = {.pwhash_ops = 1, .pwhash_mem = 64u << 10, .token_ttl_s = 100, .max_tokens = 2};

static void open_all(fx *f) {
  ow_zone_config zc = ow_test_zone_config();
  f->store = ow_test_store(f->dir);
  assert_int_equal(ow_zone_open(&f->zone, &zc, f->content, f->store, NULL, NULL), 0);
  assert_int_equal(ow_auth_create(&f->auth, f->store, &cfg), 0);
}

static void close_all(fx *f) {
  ow_auth_destroy(f->auth);
  ow_zone_close(f->zone);
  ow_store_close(f->store);
}

static int setup(void **state) {
  fx *f = ow_calloc(1, sizeof *f);
  f->dir = ow_test_mkdtemp("auth");
  f->content = ow_test_content();
  open_all(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  close_all(f);
  ow_content_destroy(f->content);
  ow_test_rmdir(f->dir);
  ow_free(f);
  return 0;
}

static void test_names_and_passwords(void **state) {
  (void)state;
  assert_true(ow_auth_name_ok("alice", 5));
  assert_true(ow_auth_name_ok("a.b-c_9", 7));
  assert_false(ow_auth_name_ok("al", 2));
  assert_false(ow_auth_name_ok("al ice", 6));
  assert_false(ow_auth_name_ok("\xc3\xa9lise", 6));
  assert_false(ow_auth_name_ok("0123456789012345678901234567890123", 33));
  assert_true(ow_auth_password_ok(8));
  assert_false(ow_auth_password_ok(7));
  assert_false(ow_auth_password_ok(129));
}

static void test_accounts_and_tokens(void **state) {
  fx *f = *state;
  char hash[crypto_pwhash_STRBYTES];
  assert_int_equal(ow_auth_hash(f->auth, "correct horse", 13, hash), 0);
  assert_true(ow_auth_verify(hash, "correct horse", 13));
  assert_false(ow_auth_verify(hash, "correct horsf", 13));
  const ow_account *acc;
  uint64_t frame;
  assert_int_equal(ow_auth_add(f->auth, f->zone, "alice", 5, hash, OW_ROLE_ADMIN, &acc, &frame), 0);
  assert_int_equal(ow_auth_add(f->auth, f->zone, "alice", 5, hash, OW_ROLE_PLAYER, NULL, NULL), OW_E_NAME_TAKEN);
  assert_int_equal(ow_auth_add(f->auth, f->zone, "x", 1, hash, OW_ROLE_PLAYER, NULL, NULL), OW_E_BAD_NAME);
  uint64_t id = acc->id;
  assert_ptr_equal(ow_auth_by_name(f->auth, "alice", 5), acc);
  assert_null(ow_auth_by_name(f->auth, "alicf", 5));
  uint8_t t1[OW_TOKEN_LEN], t2[OW_TOKEN_LEN], t3[OW_TOKEN_LEN];
  ow_token_info ti;
  assert_int_equal(ow_auth_issue(f->auth, f->zone, id, 77, 1000, t1, &ti), 0);
  assert_int_equal(ti.expires, 1100);
  assert_int_equal(ow_auth_check(f->auth, t1, 1050, &ti), 0);
  assert_int_equal(ti.session, 77);
  assert_int_equal(ow_auth_check(f->auth, t1, 1100, &ti), OW_E_TOKEN); /* expired */
  uint8_t forged[OW_TOKEN_LEN];
  memcpy(forged, t1, sizeof forged);
  forged[5] ^= 1;
  assert_int_equal(ow_auth_check(f->auth, forged, 1050, &ti), OW_E_TOKEN);
  /* At most two live tokens: the third revokes the oldest. */
  assert_int_equal(ow_auth_issue(f->auth, f->zone, id, 78, 1001, t2, NULL), 0);
  assert_int_equal(ow_auth_issue(f->auth, f->zone, id, 79, 1002, t3, NULL), 0);
  assert_int_equal(ow_auth_check(f->auth, t1, 1050, NULL), OW_E_TOKEN);
  assert_int_equal(ow_auth_check(f->auth, t2, 1050, NULL), 0);
  ow_auth_revoke(f->auth, f->zone, t2);
  assert_int_equal(ow_auth_check(f->auth, t2, 1050, NULL), OW_E_TOKEN);
  assert_int_equal(ow_auth_issue(f->auth, f->zone, 999, 1, 1000, t1, NULL), OW_E_NOT_FOUND);

  /* Everything above is durable once its frame commits, and survives a restart. */
  assert_int_equal(ow_zone_commit_sync(f->zone, false), 0);
  close_all(f);
  open_all(f);
  acc = ow_auth_by_name(f->auth, "alice", 5);
  assert_non_null(acc);
  assert_int_equal(acc->id, id);
  assert_int_equal(acc->role, OW_ROLE_ADMIN);
  assert_true(ow_auth_verify(acc->hash, "correct horse", 13));
  /* t3 expired long ago by the wall clock (it was issued at t=1002), so loading dropped it. */
  assert_int_equal(ow_auth_check(f->auth, t3, 1050, &ti), OW_E_TOKEN);
  assert_int_equal(ow_auth_accounts(f->auth), 1);
}

static int append_all(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  ow_buf_put(ud, k, kl);
  ow_buf_put(ud, v, vl);
  return 0;
}

static void test_tokens_survive_restart(void **state) {
  fx *f = *state;
  char hash[crypto_pwhash_STRBYTES];
  assert_int_equal(ow_auth_hash(f->auth, "password1", 9, hash), 0);
  const ow_account *acc;
  assert_int_equal(ow_auth_add(f->auth, f->zone, "bob", 3, hash, OW_ROLE_PLAYER, &acc, NULL), 0);
  uint8_t tok[OW_TOKEN_LEN];
  uint64_t now = (uint64_t)time(NULL);
  assert_int_equal(ow_auth_issue(f->auth, f->zone, acc->id, 5, now, tok, NULL), 0);
  assert_int_equal(ow_zone_commit_sync(f->zone, false), 0);
  close_all(f);
  open_all(f);
  ow_token_info ti;
  assert_int_equal(ow_auth_check(f->auth, tok, now + 1, &ti), 0);
  assert_int_equal(ti.session, 5);
  /* Only the token's hash is in the store: the raw bytes appear nowhere in it (every key and value
   * of the store, whichever implementation keeps them). */
  ow_buf all;
  ow_buf_init(&all);
  assert_int_equal(ow_store_scan(f->store, "", 0, append_all, &all), 0);
  assert_true(all.len > 0);
  assert_null(memmem(all.data, all.len, tok, OW_TOKEN_LEN));
  ow_buf_deinit(&all);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_and_passwords),
      cmocka_unit_test_setup_teardown(test_accounts_and_tokens, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tokens_survive_restart, setup, teardown),
  };
  return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
