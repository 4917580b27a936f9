/*
 * server: creates, wires and destroys the parts of the server (see server_int.h for the flow). It
 * owns the timers and the shutdown sequence: notice, last commit, BYE, drain, close.
 */
#include <math.h>
#include <stdio.h>

#include "server/server_int.h"

int ow_server_create(ow_server **out, uv_loop_t *loop, ow_zone *zone, ow_zone_loop *zl, ow_auth *auth,
                     const ow_server_config *cfg) {
  *out = NULL;
  ow_server *s = ow_calloc(1, sizeof *s);
  s->cfg = *cfg;
  s->loop = loop;
  s->zone = zone;
  s->zl = zl;
  s->auth = auth;
  ow_map_init(&s->by_session);
  ow_map_init(&s->by_account);
  ow_map_init(&s->undelivered);
  ow_map_init(&s->jobs_by_addr);
  ow_map_init(&s->action_results);
  randombytes_buf(s->name_key, sizeof s->name_key);
  ow_throttle_config ta = {.max_fails = cfg->login_fails_account,
                           .window_s = cfg->login_fail_window_s,
                           .lock_s = cfg->login_lock_s,
                           .lock_max_s = cfg->login_lock_max_s};
  ow_throttle_config tb = ta;
  tb.max_fails = cfg->login_fails_addr;
  s->fail_account = ow_throttle_create(&ta);
  s->fail_addr = ow_throttle_create(&tb);
  if (!s->cfg.pwhash_jobs) s->cfg.pwhash_jobs = 1;
  if (!s->cfg.pwhash_per_addr) s->cfg.pwhash_per_addr = 1;
  float rs = ow_world_config_get(ow_zone_world(zone))->region_size;
  s->radius_cells = (int)ceilf(cfg->interest_radius / rs);
  if (cfg->assets.dir) {
    int arc = ow_assets_create(&s->assets, loop, auth, &cfg->assets);
    if (arc) {
      OW_ERROR("assets", "dir=%s error=%s", cfg->assets.dir, ow_strerror(arc));
      ow_throttle_destroy(s->fail_account);
      ow_throttle_destroy(s->fail_addr);
      ow_map_deinit(&s->jobs_by_addr);
      ow_map_deinit(&s->undelivered);
      ow_map_deinit(&s->by_session);
      ow_map_deinit(&s->by_account);
      ow_free(s);
      return arc;
    }
  }
  s->replica = ow_replica_create(ow_zone_world(zone), ow_zone_durable_frame(zone));
  /* The one-way flow starts here: connections go to client.c, /status to metrics.c. */
  ow_net_handlers h = {server_on_open,  server_on_message, server_on_oversize,
                       server_on_close, server_status_cb,  s};
  /* docs/protocol.md: one WebSocket message carries one or more protocol messages, at most 60 KiB
   * from the server. Joining what is queued for a client saves a send (and its writable event) per
   * message: a pose publish and a snapshot of the same turn leave together. */
  ow_net_config nc = cfg->net;
  nc.coalesce = 60 * 1024;
  int rc = ow_net_create(&s->net, loop, &nc, &h);
  if (rc) {
    ow_assets_destroy(s->assets);
    ow_replica_destroy(s->replica);
    ow_throttle_destroy(s->fail_account);
    ow_throttle_destroy(s->fail_addr);
    ow_map_deinit(&s->jobs_by_addr);
    ow_map_deinit(&s->undelivered);
    ow_map_deinit(&s->by_session);
    ow_map_deinit(&s->by_account);
    ow_map_deinit(&s->action_results);
    ow_free(s);
    return rc;
  }
  if (s->assets) ow_assets_routes(s->assets, s->net); /* the asset routes, src/assets/http.c */
  s->cfg.assets.dir = NULL; /* the caller's string: the asset store keeps its own copy */
  server_prom_routes(s); /* GET /metrics, prom.c */
  server_jobs_start(s, s->cfg.pwhash_jobs);
  uv_timer_t *timers[] = {&s->publish, &s->poses, &s->housekeeping, &s->notice};
  for (int i = 0; i < 4; i++) {
    uv_timer_init(loop, timers[i]);
    timers[i]->data = s;
  }
  s->handles = 4;
  uint64_t tick = (uint64_t)(1000.0 / cfg->tick_hz), pose = (uint64_t)(1000.0 / cfg->pose_hz);
  uv_timer_start(&s->publish, server_publish_cb, tick ? tick : 1, tick ? tick : 1);
  s->poses_on_tick = cfg->pose_hz <= cfg->tick_hz;
  s->next_pose_ns = ow_now_ns();
  s->next_snapshot_ns = s->next_pose_ns;
  if (!s->poses_on_tick) uv_timer_start(&s->poses, server_poses_cb, pose ? pose : 1, pose ? pose : 1);
  uv_timer_start(&s->housekeeping, server_housekeeping_cb, 1000, 1000);
  *out = s;
  return 0;
}

int ow_server_port(const ow_server *s) { return ow_net_port(s->net); }

const ow_server_stats *ow_server_stats_get(const ow_server *s) { return &s->stats; }

static void handle_closed(uv_handle_t *h) {
  ow_server *s = h->data;
  if (--s->handles == 0) {
    /* Every BYE has been written or the drain gave up: let lws close what is left. Its on_close
     * callbacks still run on the loop, so the server stays allocated until ow_server_free(). */
    ow_net_destroy(s->net);
    if (s->done) s->done(s->done_ud);
  }
}

static void drain_cb(uv_timer_t *t) {
  ow_server *s = t->data;
  bool flushed = true;
  for (size_t i = 0; i < s->clients.len; i++)
    if (s->clients.v[i]->conn && ow_conn_queued(s->clients.v[i]->conn)) flushed = false;
  if (!flushed && ow_now_ns() - s->drain_start_ns < 1000000000ull) return;
  uv_close((uv_handle_t *)&s->publish, handle_closed);
  uv_close((uv_handle_t *)&s->poses, handle_closed);
  uv_close((uv_handle_t *)&s->housekeeping, handle_closed);
  uv_close((uv_handle_t *)&s->notice, handle_closed);
}

static void zone_stopped(void *ud) {
  ow_server *s = ud;
  /* The last frame is durable and its confirmations are queued: now say goodbye, and give the
   * connections up to a second to take it. */
  for (size_t i = 0; i < s->clients.len; i++)
    server_kick(s->clients.v[i], OW_BYE_SHUTDOWN, "server is restarting; resume with your token");
  uv_timer_stop(&s->publish);
  uv_timer_stop(&s->poses);
  s->drain_start_ns = ow_now_ns();
  uv_timer_start(&s->housekeeping, drain_cb, 10, 10);
}

static void notice_over(uv_timer_t *t) {
  ow_server *s = t->data;
  ow_zone_loop_stop(s->zl, zone_stopped, s);
}

void ow_server_shutdown(ow_server *s, void (*done)(void *), void *ud) {
  if (s->shutting) return;
  s->shutting = true;
  s->done = done;
  s->done_ud = ud;
  char text[96];
  snprintf(text, sizeof text, "restarting in %g s", s->cfg.shutdown_notice_s);
  ow_msg e = {.type = OW_MSG_EVENT};
  e.u.event.kind = OW_EVENT_SYSTEM;
  e.u.event.text = (ow_str){text, strlen(text)};
  for (size_t i = 0; i < s->clients.len; i++) server_send_msg(s->clients.v[i], &e);
  OW_INFO("shutdown_notice", "seconds=%g players=%u", s->cfg.shutdown_notice_s, s->joined);
  uv_timer_start(&s->notice, notice_over, (uint64_t)(s->cfg.shutdown_notice_s * 1000), 0);
}

void ow_server_free(ow_server *s) {
  if (!s) return;
  /* Normally empty by now: lws closed every connection before the loop drained. */
  while (s->clients.len) server_client_drop(s, s->clients.v[0]);
  OW_VEC_FREE(s->clients);
  ow_net_free(s->net);
  ow_assets_destroy(s->assets); /* after the net: no request refers to it any more */
  ow_replica_destroy(s->replica);
  server_undelivered_free(s);
  ow_map_deinit(&s->by_session);
  ow_map_deinit(&s->by_account);
  server_jobs_stop(s);
  ow_map_deinit(&s->jobs_by_addr);
  ow_throttle_destroy(s->fail_account);
  ow_throttle_destroy(s->fail_addr);
  ow_map_deinit(&s->action_results);
  OW_VEC_FREE(s->pending);
  ow_buf_deinit(&s->out);
  ow_free(s);
}
