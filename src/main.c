/* otherworld: wiring only. Reads the settings, loads the content, opens the store, recovers the
 * zone and runs it on a libuv loop until SIGINT or SIGTERM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config/config.h"
#include "content/content.h"
#include "core/core.h"
#include "store/store.h"
#include "zone/loop.h"
#include "zone/zone.h"

typedef struct app {
  uv_loop_t *loop;
  uv_signal_t sigint, sigterm;
  ow_zone_loop *zl;
  ow_zone *zone;
  uint64_t durable_actions;
} app;

static void on_durable(void *ud, const ow_frame_info *f) {
  app *a = ud;
  if (!f->status) a->durable_actions += f->nactions;
}

static void stopped(void *ud) {
  app *a = ud;
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
  app *a = s->data;
  OW_INFO("shutdown", "signal=%d frame=%llu hint=\"committing and checkpointing\"", signum,
          (unsigned long long)ow_zone_frame(a->zone));
  uv_signal_stop(&a->sigint);
  uv_signal_stop(&a->sigterm);
  ow_zone_loop_stop(a->zl, stopped, a);
}

static void usage(void) {
  printf("otherworld - authoritative world server for V-Sekai open-world survival-craft worlds\n\n"
         "usage: otherworld [--config FILE] [--NAME=VALUE ...]\n\n");
  ow_config_help(stdout);
  printf("\nSignals: SIGINT/SIGTERM commit every applied action, checkpoint and exit 0.\n"
         "Docs: README.md, docs/architecture.md, docs/storage.md, docs/world.md\n");
}

static int level_of(const char *s) {
  if (!strcmp(s, "debug")) return OW_LOG_DEBUG;
  if (!strcmp(s, "warn")) return OW_LOG_WARN;
  if (!strcmp(s, "error")) return OW_LOG_ERROR;
  return OW_LOG_INFO;
}

int main(int argc, char **argv) {
  ow_config cfg;
  ow_config_init(&cfg);
  char err[512];
  bool help;
  if (ow_config_args(&cfg, argc, argv, &help, err, sizeof err)) {
    fprintf(stderr, "otherworld: %s\n", err);
    ow_config_deinit(&cfg);
    return 2;
  }
  if (help) {
    usage();
    ow_config_deinit(&cfg);
    return 0;
  }
  ow_log_level = level_of(cfg.log_level);

  ow_content *content;
  if (ow_content_load_file(cfg.content, &content, err, sizeof err)) {
    fprintf(stderr, "otherworld: content: %s\n", err);
    ow_config_deinit(&cfg);
    return 2;
  }
  OW_INFO("content", "path=%s types=%u recipes=%u seeds=%u hash=%016llx", cfg.content,
          content->ntypes, content->nrecipes, content->nseeds, (unsigned long long)content->hash);

  bool nosync = !strcmp(cfg.durability, "nosync");
  if (nosync)
    OW_WARN("durability", "mode=nosync hint=\"a power loss or kernel crash can lose the last "
            "confirmed frames; a process crash loses nothing\"");
  ow_store_options so = {.path = cfg.data_dir,
                         .map_size = (uint64_t)cfg.store_map_mb << 20,
                         .nosync = nosync};
  ow_store *store;
  int rc = ow_store_open(&store, &so);
  if (rc) {
    fprintf(stderr, "otherworld: cannot open store %s: %s\n", cfg.data_dir, ow_strerror(rc));
    ow_content_destroy(content);
    ow_config_deinit(&cfg);
    return 1;
  }

  app a;
  memset(&a, 0, sizeof a);
  ow_zone_config zc = {.world = {.region_size = (float)cfg.region_size,
                                 .reach = (float)cfg.reach,
                                 .bound = (float)cfg.world_bound},
                       .replay_window = (uint32_t)cfg.replay_window,
                       .frame_log_keep = (uint64_t)cfg.frame_log_keep};
  rc = ow_zone_open(&a.zone, &zc, content, store, on_durable, &a);
  if (rc) {
    fprintf(stderr, "otherworld: recovery from %s failed: %s\n", cfg.data_dir, ow_strerror(rc));
    ow_store_close(store);
    ow_content_destroy(content);
    ow_config_deinit(&cfg);
    return 1;
  }
  const ow_zone_load_stats *ls = ow_zone_load_info(a.zone);
  OW_INFO("recovered", "store=%s seeded=%d entities=%llu sessions=%llu seconds=%.3f "
          "bytes_per_entity=%.1f frame=%llu", cfg.data_dir, ls->seeded,
          (unsigned long long)ls->entities, (unsigned long long)ls->sessions, ls->seconds,
          ls->bytes_per_entity, (unsigned long long)ow_zone_durable_frame(a.zone));

  a.loop = uv_default_loop();
  ow_zone_loop_create(&a.zl, a.loop, a.zone, cfg.tick_hz, cfg.checkpoint_s);
  uv_signal_init(a.loop, &a.sigint);
  uv_signal_init(a.loop, &a.sigterm);
  a.sigint.data = a.sigterm.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  OW_INFO("running", "tick_hz=%g durability=%s data_dir=%s hint=\"zone is ticking; stop with "
          "Ctrl-C or SIGTERM\"", cfg.tick_hz, cfg.durability, cfg.data_dir);

  uv_run(a.loop, UV_RUN_DEFAULT);

  int store_err = ow_zone_store_error(a.zone);
  OW_INFO("stopped", "frame=%llu durable_actions=%llu ticks=%llu store_error=%s",
          (unsigned long long)ow_zone_durable_frame(a.zone), (unsigned long long)a.durable_actions,
          (unsigned long long)ow_zone_loop_stats_get(a.zl)->ticks, ow_err_name(store_err));
  ow_zone_loop_destroy(a.zl);
  ow_zone_close(a.zone);
  ow_store_close(store);
  ow_content_destroy(content);
  ow_config_deinit(&cfg);
  uv_loop_close(a.loop);
  return store_err ? 1 : 0;
}
