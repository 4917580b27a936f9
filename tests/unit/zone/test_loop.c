/* zone loop: on a real libuv loop, actions become durable within a few ticks, streamed transforms
 * are checkpointed, and stopping commits everything before it calls back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "otherworld/protocol.h"
#include "support.h"
#include "zone/loop.h"

typedef struct ctx {
  ow_zone *zone;
  ow_zone_loop *zl;
  uv_timer_t timer;
  uint64_t session;
  ow_id avatar;
  uint64_t seq, applied, durable;
  int phase;
  bool stopped;
} ctx;

static void on_durable(void *ud, const ow_frame_info *f) {
  ctx *c = ud;
  assert_int_equal(f->status, 0);
  c->durable += f->nactions;
}

static void stopped(void *ud) {
  ctx *c = ud;
  c->stopped = true;
  uv_close((uv_handle_t *)&c->timer, NULL);
}

static void step(uv_timer_t *t) {
  ctx *c = t->data;
  if (c->phase == 0) {
    /* 50 moves in one burst, then wait for them to be durable. */
    for (int i = 0; i < 50; i++) {
      ow_action a = {.type = OW_ACT_MOVE, .target = c->avatar};
      ow_transform_identity(&a.xf);
      a.xf.pos[0] = (float)i;
      ow_result r;
      uint64_t frame;
      bool rep;
      assert_int_equal(ow_zone_act(c->zone, c->session, ++c->seq, &a, &r, &frame, &rep), 0);
      assert_int_equal(r.code, 0);
      c->applied++;
    }
    ow_zone_loop_flush(c->zl);
    c->phase = 1;
  } else if (c->phase == 1 && c->durable == c->applied) {
    /* A stream that only the stop-time checkpoint writes. */
    ow_transform xf;
    ow_transform_identity(&xf);
    xf.pos[0] = 77;
    assert_int_equal(ow_zone_stream(c->zone, c->session, c->avatar, &xf), 0);
    c->phase = 2;
    ow_zone_loop_stop(c->zl, stopped, c);
  }
}

static void test_loop_durable_and_stop(void **state) {
  (void)state;
  char *dir = ow_test_mkdtemp("loop");
  ow_content *content = ow_test_content();
  ow_store *store = ow_test_store(dir);
  ctx c;
  memset(&c, 0, sizeof c);
  ow_zone_config zc = ow_test_zone_config();
  assert_int_equal(ow_zone_open(&c.zone, &zc, content, store, on_durable, &c), 0);
  assert_int_equal(ow_zone_login(c.zone, 5, &c.session, &c.avatar), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  assert_int_equal(ow_zone_loop_create(&c.zl, &loop, c.zone, 60, 30), 0);
  uv_timer_init(&loop, &c.timer);
  c.timer.data = &c;
  uv_timer_start(&c.timer, step, 1, 5);
  uint64_t t0 = uv_hrtime();
  while (!c.stopped && uv_hrtime() - t0 < 20ull * 1000000000ull) uv_run(&loop, UV_RUN_ONCE);
  assert_true(c.stopped);
  assert_int_equal(c.durable, 50);
  assert_true(ow_zone_loop_stats_get(c.zl)->commits >= 2);
  assert_int_equal(ow_zone_loop_stats_get(c.zl)->commit_failures, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  ow_zone_loop_destroy(c.zl);
  ow_zone_close(c.zone);
  ow_store_close(store);

  /* The checkpointed stream survived. */
  store = ow_test_store(dir);
  assert_int_equal(ow_zone_open(&c.zone, &zc, content, store, NULL, NULL), 0);
  assert_true(ow_world_get(ow_zone_world(c.zone), c.avatar)->xf.pos[0] == 77);
  ow_zone_close(c.zone);
  ow_store_close(store);
  ow_content_destroy(content);
  ow_test_rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_loop_durable_and_stop)};
  return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
