/* zone loop: ticks, background commits, checkpoints and clean stop on libuv. See loop.h. */
#include "zone/loop.h"

struct ow_zone_loop {
  uv_loop_t *loop;
  ow_zone *z;
  uv_timer_t tick, checkpoint;
  uv_work_t work;
  ow_zone_commit *inflight;
  uint64_t sealed_ns;
  int work_rc;
  bool due;            /* a tick or flush arrived while a commit was in flight */
  bool checkpoint_due; /* the next commit also writes streamed transforms */
  bool stopping;
  int handles_open;
  void (*done)(void *);
  void *done_ud;
  ow_zone_loop_stats stats;
};

static void start_commit(ow_zone_loop *l);

static void work_cb(uv_work_t *w) {
  ow_zone_loop *l = w->data;
  l->work_rc = ow_zone_commit_run(l->inflight);
}

static void finish_stop(ow_zone_loop *l);

static void after_work_cb(uv_work_t *w, int status) {
  ow_zone_loop *l = w->data;
  ow_zone_commit *c = l->inflight;
  l->inflight = NULL;
  int rc = status ? status : l->work_rc;
  ow_zone_commit_end(l->z, c, rc);
  ow_samples_add(&l->stats.commit_ns, ow_now_ns() - l->sealed_ns);
  l->stats.commits++;
  if (rc) l->stats.commit_failures++;
  if (l->due || l->stopping) start_commit(l);
  if (l->stopping && !l->inflight) finish_stop(l);
}

static void start_commit(ow_zone_loop *l) {
  if (l->inflight) {
    l->due = true;
    return;
  }
  l->due = false;
  bool cp = l->checkpoint_due || l->stopping;
  ow_zone_commit *c;
  uint64_t t0 = ow_now_ns();
  int rc = ow_zone_commit_begin(l->z, cp, &c);
  if (rc || !c) return;
  l->sealed_ns = ow_now_ns();
  ow_samples_add(&l->stats.seal_ns, l->sealed_ns - t0);
  if (cp) l->checkpoint_due = false;
  l->inflight = c;
  l->work.data = l;
  rc = uv_queue_work(l->loop, &l->work, work_cb, after_work_cb);
  if (rc) { /* cannot happen with a valid loop; fall back to writing here */
    l->work_rc = ow_zone_commit_run(c);
    after_work_cb(&l->work, 0);
  }
}

static void tick_cb(uv_timer_t *t) {
  ow_zone_loop *l = t->data;
  l->stats.ticks++;
  start_commit(l);
}

static void checkpoint_cb(uv_timer_t *t) {
  ow_zone_loop *l = t->data;
  l->checkpoint_due = true;
  start_commit(l);
}

int ow_zone_loop_create(ow_zone_loop **out, uv_loop_t *loop, ow_zone *z, double tick_hz,
                        double checkpoint_s) {
  ow_zone_loop *l = ow_calloc(1, sizeof *l);
  l->loop = loop;
  l->z = z;
  uv_timer_init(loop, &l->tick);
  uv_timer_init(loop, &l->checkpoint);
  l->tick.data = l->checkpoint.data = l;
  l->handles_open = 2;
  uint64_t tick_ms = (uint64_t)(1000.0 / tick_hz);
  uint64_t cp_ms = (uint64_t)(checkpoint_s * 1000.0);
  uv_timer_start(&l->tick, tick_cb, tick_ms ? tick_ms : 1, tick_ms ? tick_ms : 1);
  uv_timer_start(&l->checkpoint, checkpoint_cb, cp_ms ? cp_ms : 1, cp_ms ? cp_ms : 1);
  *out = l;
  return 0;
}

void ow_zone_loop_flush(ow_zone_loop *l) {
  if (!l->stopping) start_commit(l);
}

void ow_zone_loop_checkpoint(ow_zone_loop *l) {
  l->checkpoint_due = true;
  ow_zone_loop_flush(l);
}

static void close_cb(uv_handle_t *h) {
  ow_zone_loop *l = h->data;
  if (--l->handles_open == 0 && l->done) l->done(l->done_ud);
}

static void finish_stop(ow_zone_loop *l) {
  if (!uv_is_closing((uv_handle_t *)&l->tick)) {
    uv_close((uv_handle_t *)&l->tick, close_cb);
    uv_close((uv_handle_t *)&l->checkpoint, close_cb);
  }
}

void ow_zone_loop_stop(ow_zone_loop *l, void (*done)(void *), void *ud) {
  if (l->stopping) return;
  l->stopping = true;
  l->done = done;
  l->done_ud = ud;
  uv_timer_stop(&l->tick);
  uv_timer_stop(&l->checkpoint);
  start_commit(l);
  if (!l->inflight) finish_stop(l);
}

void ow_zone_loop_destroy(ow_zone_loop *l) { ow_free(l); }

const ow_zone_loop_stats *ow_zone_loop_stats_get(const ow_zone_loop *l) { return &l->stats; }
