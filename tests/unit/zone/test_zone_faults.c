/* zone over the fault-injecting store (store/fault.h): a retryable write failure is retried and
 * the frame still becomes durable; a fatal one on the Nth commit is sticky, nothing after it is
 * confirmed, and reopening the real store underneath recovers every frame that was confirmed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "otherworld/protocol.h"
#include "store/fault.h"
#include "support.h"

typedef struct fixture {
  char *dir;
  ow_content *content;
  ow_store *store; /* the fault wrapper around the LMDB store */
  ow_zone *zone;
  uint64_t durable_actions, failed_actions;
} fixture;

static void on_durable(void *ud, const ow_frame_info *f) {
  fixture *fx = ud;
  if (f->status)
    fx->failed_actions += f->nactions;
  else
    fx->durable_actions += f->nactions;
}

static void open_zone(fixture *fx, bool faulty) {
  ow_zone_config zc = ow_test_zone_config();
  fx->store = ow_test_store(fx->dir);
  if (faulty) assert_int_equal(ow_store_fault_wrap(&fx->store, fx->store), 0);
  assert_int_equal(ow_zone_open(&fx->zone, &zc, fx->content, fx->store, on_durable, fx), 0);
}

static void close_zone(fixture *fx) {
  ow_zone_close(fx->zone);
  ow_store_close(fx->store);
  fx->zone = NULL;
  fx->store = NULL;
}

static int setup(void **state) {
  fixture *fx = ow_calloc(1, sizeof *fx);
  fx->dir = ow_test_mkdtemp("zone-faults");
  fx->content = ow_test_content();
  open_zone(fx, true);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  if (fx->zone) close_zone(fx);
  ow_content_destroy(fx->content);
  ow_test_rmdir(fx->dir);
  ow_free(fx);
  return 0;
}

/* Moves the avatar to x = seq, one action per commit. Returns the zone's answer to the action. */
static int move(fixture *fx, uint64_t sid, ow_id avatar, uint64_t seq) {
  ow_action mv = {.type = OW_ACT_MOVE, .target = avatar};
  ow_transform_identity(&mv.xf);
  mv.xf.pos[0] = (float)seq;
  ow_result r;
  uint64_t frame;
  bool replayed;
  int rc = ow_zone_act(fx->zone, sid, seq, &mv, &r, &frame, &replayed);
  if (!rc) assert_int_equal(r.code, 0);
  return rc;
}

static void test_retryable_write_is_retried(void **state) {
  fixture *fx = *state;
  uint64_t sid;
  ow_id avatar;
  assert_int_equal(ow_zone_login(fx->zone, 7, &sid, &avatar), 0);
  assert_int_equal(ow_zone_commit_sync(fx->zone, false), 0);
  uint64_t writes = ow_store_fault_calls(fx->store, OW_FAULT_WRITE);
  /* The next two writes fail as a networked store's conflict would; the third goes through. */
  ow_fault_rule twice = {.nth = writes + 1, .onward = true, .err = OW_E_RETRY};
  ow_store_fault_set(fx->store, OW_FAULT_WRITE, &twice);
  assert_int_equal(move(fx, sid, avatar, 1), 0);
  ow_zone_commit *c;
  assert_int_equal(ow_zone_commit_begin(fx->zone, false, &c), 0);
  assert_int_equal(ow_zone_commit_run(c), OW_E_RETRY); /* every attempt failed: reported */
  assert_int_equal(ow_store_fault_calls(fx->store, OW_FAULT_WRITE), writes + 8);
  /* Once the attempts are used up it counts as a failure: the zone is suspended. */
  ow_zone_commit_end(fx->zone, c, OW_E_RETRY);
  assert_int_equal(ow_zone_store_error(fx->zone), OW_E_RETRY);
  close_zone(fx);

  /* A fresh zone over the same files: one retryable failure, then success within one run. */
  open_zone(fx, true);
  assert_int_equal(ow_zone_session(fx->zone, sid, NULL, NULL, NULL), 0);
  writes = ow_store_fault_calls(fx->store, OW_FAULT_WRITE);
  ow_fault_rule once = {.nth = writes + 1, .err = OW_E_RETRY};
  ow_store_fault_set(fx->store, OW_FAULT_WRITE, &once);
  fx->durable_actions = 0;
  assert_int_equal(move(fx, sid, avatar, 2), 0);
  assert_int_equal(ow_zone_commit_sync(fx->zone, false), 0);
  assert_int_equal(ow_store_fault_calls(fx->store, OW_FAULT_WRITE), writes + 2);
  assert_int_equal(fx->durable_actions, 1);
  assert_int_equal(ow_zone_store_error(fx->zone), 0);
  close_zone(fx);
  open_zone(fx, false);
  assert_true(ow_world_get(ow_zone_world(fx->zone), avatar)->xf.pos[0] == 2);
}

/* The Nth commit fails with EIO, for N from 1 to 6 after the seed: every frame confirmed before it
 * is in the store, nothing after it was confirmed, and the zone refused work in between. */
static void test_nth_commit_fails(void **state) {
  fixture *fx = *state;
  uint64_t sid;
  ow_id avatar;
  assert_int_equal(ow_zone_login(fx->zone, 9, &sid, &avatar), 0);
  assert_int_equal(ow_zone_commit_sync(fx->zone, false), 0);
  uint64_t seq = 0;
  for (uint64_t n = 1; n <= 6; n++) {
    uint64_t writes = ow_store_fault_calls(fx->store, OW_FAULT_WRITE);
    ow_fault_rule nth = {.nth = writes + n, .err = -EIO};
    ow_store_fault_set(fx->store, OW_FAULT_WRITE, &nth);
    fx->durable_actions = fx->failed_actions = 0;
    uint64_t confirmed_x = 0, start_seq = seq;
    for (int i = 0; i < 8; i++) {
      int rc = move(fx, sid, avatar, seq + 1);
      if (rc) {
        assert_int_equal(rc, OW_E_STORE_FAILED); /* refused after the failure: seq stays free */
        break;
      }
      seq++;
      uint64_t before = fx->durable_actions;
      int crc = ow_zone_commit_sync(fx->zone, false);
      if (!crc) {
        assert_int_equal(fx->durable_actions, before + 1);
        confirmed_x = seq;
      } else {
        assert_int_equal(crc, -EIO);
      }
    }
    assert_int_equal(fx->durable_actions, n - 1);
    assert_int_equal(fx->failed_actions, 1);
    assert_int_equal(ow_zone_store_error(fx->zone), -EIO);
    /* Restart over the real store: what was confirmed is there, the failed frame is not. */
    close_zone(fx);
    open_zone(fx, true);
    uint64_t last_seq;
    assert_int_equal(ow_zone_session(fx->zone, sid, NULL, NULL, &last_seq), 0);
    assert_int_equal(last_seq, confirmed_x ? confirmed_x : start_seq);
    if (confirmed_x)
      assert_true(ow_world_get(ow_zone_world(fx->zone), avatar)->xf.pos[0] == (float)confirmed_x);
    seq = last_seq;
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_retryable_write_is_retried, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nth_commit_fails, setup, teardown),
  };
  return cmocka_run_group_tests_name("zone_faults", tests, NULL, NULL);
}
