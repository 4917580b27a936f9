/* otherworld: wiring only. Reads the settings, loads the content, opens the store, recovers the
 * zone, loads the accounts, starts the network face and runs everything on one libuv loop until
 * SIGINT or SIGTERM. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "auth/auth.h"
#include "config/config.h"
#include "content/content.h"
#include "core/core.h"
#include "ops/backup.h"
#include "ops/notify.h"
#include "ops/schedule.h"
#include "server/server.h"
#include "store/store.h"
#include "zone/loop.h"
#include "zone/zone.h"

typedef struct app {
  uv_loop_t *loop;
  uv_signal_t sigint, sigterm;
  ow_zone_loop *zl;
  ow_zone *zone;
  ow_server *server;
  ow_backup_schedule *backups;
  ow_notify *notify;
  uint64_t durable_actions;
} app;

static void on_durable(void *ud, const ow_frame_info *f) {
  app *a = ud;
  if (!f->status) a->durable_actions += f->nactions;
  if (a->server) ow_server_on_durable(a->server, f);
}

static void stopped(void *ud) {
  app *a = ud;
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static void on_signal(uv_signal_t *s, int signum) {
  app *a = s->data;
  OW_INFO("shutdown", "signal=%d frame=%llu hint=\"warning players, committing, checkpointing\"",
          signum, (unsigned long long)ow_zone_frame(a->zone));
  uv_signal_stop(&a->sigint);
  uv_signal_stop(&a->sigterm);
  ow_backup_schedule_stop(a->backups);
  a->backups = NULL;
  ow_notify_stopping(a->notify);
  a->notify = NULL;
  ow_server_shutdown(a->server, stopped, a);
}

static void usage(void) {
  printf("otherworld - authoritative world server for V-Sekai open-world survival-craft worlds\n\n"
         "usage: otherworld [--config FILE] [--NAME=VALUE ...]\n"
         "       otherworld [settings] --backup DIR    hot backup of the store into DIR (also while\n"
         "                                             the server runs), verified, then exit (LMDB\n"
         "                                             stores; a PostgreSQL store: pg_dump)\n"
         "       otherworld [settings] --verify DIR    check a backup: digest, recovery, stacks\n"
         "       otherworld [settings] --restore DIR   verify a backup and copy it into data_dir\n"
         "                                             (which must be empty), then exit\n\n");
  ow_config_help(stdout);
  printf("\nClients connect with WebSocket to ws://HOST:PORT/ws (docs/protocol.md).\n"
         "Signals: SIGINT/SIGTERM warn players, commit every applied action, checkpoint, exit 0\n"
         "(exit 1 if a disk write failed: nothing was confirmed after it; see docs/storage.md).\n"
         "Docs: README.md, docs/architecture.md, docs/protocol.md, docs/storage.md, docs/world.md\n");
}

static int level_of(const char *s) {
  if (!strcmp(s, "debug")) return OW_LOG_DEBUG;
  if (!strcmp(s, "warn")) return OW_LOG_WARN;
  if (!strcmp(s, "error")) return OW_LOG_ERROR;
  return OW_LOG_INFO;
}

/* What the settings configure: one field per module, filled by apply_settings. */
typedef struct targets {
  ow_server_config srv;
  ow_zone_config zone;
  ow_auth_config auth;
  ow_store_options store;
  struct {
    double checkpoint_s;
  } loop;
  struct {
    const char *dir;
    double every_s;
    unsigned keep;
  } backup;
} targets;

/* Copies every setting to the module field its row in OW_SETTINGS names (config.h), so that a
 * setting is declared once; the BY_HAND ones are interpreted in main. */
static void apply_settings(const ow_config *cfg, targets *t) {
  memset(t, 0, sizeof *t);
#define TO(dst) t->dst =
#define KIB(dst) t->dst = 1024.0 *
#define MIB(dst) t->dst = 1048576.0 *
#define BY_HAND (void)
#define APPLY_STR(name, def, choices, empty_ok, maxlen, to, help) to cfg->name;
#define APPLY_NUM(name, def, lo, hi, to, help) to cfg->name;
  OW_SETTINGS(APPLY_STR, APPLY_NUM)
#undef APPLY_NUM
#undef APPLY_STR
#undef BY_HAND
#undef MIB
#undef KIB
#undef TO
}

/* The one-shot tools (--backup, --verify, --restore DIR): taken out of argv before the settings
 * are parsed, so that every setting still applies to them. */
typedef struct tool {
  const char *name; /* "backup", "verify", "restore" or NULL: run the server */
  const char *dir;
} tool;

static int take_tool(int *argc, char **argv, tool *t, char *err, size_t errlen) {
  static const char *const names[] = {"backup", "verify", "restore"};
  int out = 1;
  for (int i = 1; i < *argc; i++) {
    const char *arg = argv[i], *val = NULL;
    const char *hit = NULL;
    for (size_t n = 0; n < 3 && !hit; n++) {
      size_t l = strlen(names[n]);
      if (strncmp(arg, "--", 2) || strncmp(arg + 2, names[n], l)) continue;
      if (arg[2 + l] == '=') hit = names[n], val = arg + 3 + l;
      else if (!arg[2 + l]) hit = names[n], val = i + 1 < *argc ? argv[++i] : NULL;
    }
    if (!hit) {
      argv[out++] = argv[i];
      continue;
    }
    if (!val || !*val) return snprintf(err, errlen, "--%s needs a directory", hit), OW_E_CONFIG;
    if (t->name)
      return snprintf(err, errlen, "--%s and --%s: one at a time", t->name, hit), OW_E_CONFIG;
    t->name = hit;
    t->dir = val;
  }
  *argc = out;
  argv[out] = NULL;
  return 0;
}

static void print_info(const char *what, const char *dir, const ow_backup_info *bi) {
  char d[65];
  for (int i = 0; i < 32; i++) snprintf(d + 2 * i, 3, "%02x", bi->digest[i]);
  printf("%s=%s frame=%llu keys=%llu entities=%llu bytes=%llu digest=%s seconds=%.3f\n", what, dir,
         (unsigned long long)bi->frame, (unsigned long long)bi->keys,
         (unsigned long long)bi->entities, (unsigned long long)bi->bytes, d, bi->seconds);
}

/* Runs a one-shot tool on the store the settings name (shown: its URI without passwords);
 * returns the exit status. */
static int run_tool(const tool *t, targets *tg, const char *uri, const char *shown,
                    ow_content *content) {
  char err[4600];
  ow_backup_info bi;
  int rc;
  if (!strcmp(t->name, "verify") || !strcmp(t->name, "restore")) {
    rc = !strcmp(t->name, "verify")
             ? ow_backup_verify(t->dir, &tg->zone, content, &bi, NULL, err, sizeof err)
             : strncmp(uri, "lmdb:", 5)
                   ? (snprintf(err, sizeof err, "restore writes LMDB stores only (store = %s)", shown),
                      OW_E_CONFIG)
                   : ow_backup_restore(t->dir, uri + 5, &tg->zone, content, &bi, err, sizeof err);
    if (rc) {
      fprintf(stderr, "otherworld: %s %s: %s\n", t->name, t->dir, err);
      return 1;
    }
    print_info(!strcmp(t->name, "verify") ? "verified" : "restored", t->dir, &bi);
    if (!strcmp(t->name, "restore")) printf("into=%s\n", uri + 5);
    return 0;
  }
  /* --backup: opened read-only, so it can run beside the server that owns the store. */
  ow_store *store;
  tg->store.read_only = true;
  rc = ow_store_open_uri(&store, uri, &tg->store, err, sizeof err);
  if (rc) {
    fprintf(stderr, "otherworld: backup: cannot open %s: %s\n", shown,
            rc == OW_E_INVAL ? err : ow_strerror(rc));
    return rc == OW_E_INVAL ? 2 : 1;
  }
  if (!ow_store_can_copy(store)) {
    fprintf(stderr, "otherworld: backup: the %s store cannot be copied by otherworld (%s); back "
            "it up with the database's own tools (pg_dump; see docs/storage.md)\n",
            ow_store_scheme(store), ow_strerror(-ENOTSUP));
    ow_store_close(store);
    return 2;
  }
  rc = ow_backup_make(store, t->dir, &bi, err, sizeof err);
  ow_store_close(store);
  if (!rc) rc = ow_backup_verify(t->dir, &tg->zone, content, &bi, NULL, err, sizeof err);
  if (rc) {
    fprintf(stderr, "otherworld: backup %s: %s\n", t->dir, err);
    return 1;
  }
  print_info("backup", t->dir, &bi);
  return 0;
}

int main(int argc, char **argv) {
  ow_config cfg;
  ow_config_init(&cfg);
  char err[512];
  bool help;
  tool tl = {0};
  if (take_tool(&argc, argv, &tl, err, sizeof err) ||
      ow_config_args(&cfg, argc, argv, &help, err, sizeof err)) {
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
  targets t;
  apply_settings(&cfg, &t);
  t.store.nosync = nosync;
  if (t.backup.every_s > 0 && !tl.name && mkdir(t.backup.dir, 0755) && errno != EEXIST) {
    fprintf(stderr, "otherworld: backup_dir %s: %s\n", t.backup.dir, strerror(errno));
    ow_content_destroy(content);
    ow_config_deinit(&cfg);
    return 2;
  }
  char *uri = *cfg.store ? ow_strdup(cfg.store) : NULL;
  if (!uri) {
    size_t n = strlen(cfg.data_dir) + 6;
    uri = ow_malloc(n);
    snprintf(uri, n, "lmdb:%s", cfg.data_dir);
  }
  char *shown = ow_store_uri_redact(uri);
  if (tl.name) {
    int code = run_tool(&tl, &t, uri, shown, content);
    ow_free(shown);
    ow_free(uri);
    ow_content_destroy(content);
    ow_config_deinit(&cfg);
    return code;
  }
  ow_store *store;
  int rc = ow_store_open_uri(&store, uri, &t.store, err, sizeof err);
  if (rc) {
    fprintf(stderr, "otherworld: %s\n", err);
    ow_free(shown);
    ow_free(uri);
    ow_content_destroy(content);
    ow_config_deinit(&cfg);
    return rc == OW_E_INVAL ? 2 : 1;
  }

  app a;
  memset(&a, 0, sizeof a);
  int exit_code = 1;
  ow_auth *auth = NULL;
  if (t.backup.every_s > 0 && !ow_store_can_copy(store)) {
    /* Every scheduled backup would fail: refuse the setting rather than log failures forever. */
    fprintf(stderr, "otherworld: backup_every_s: the %s store cannot be copied by otherworld "
            "(%s); set backup_every_s = 0 and back it up with the database's own tools (pg_dump; "
            "see docs/storage.md)\n", ow_store_scheme(store), ow_strerror(-ENOTSUP));
    exit_code = 2;
    goto out;
  }
  rc = ow_zone_open(&a.zone, &t.zone, content, store, on_durable, &a);
  if (rc) {
    fprintf(stderr, "otherworld: recovery from %s failed: %s\n", shown, ow_strerror(rc));
    goto out;
  }
  const ow_zone_load_stats *ls = ow_zone_load_info(a.zone);
  OW_INFO("recovered", "store=%s seeded=%d entities=%llu sessions=%llu seconds=%.3f "
          "bytes_per_entity=%.1f frame=%llu", shown, ls->seeded,
          (unsigned long long)ls->entities, (unsigned long long)ls->sessions, ls->seconds,
          ls->bytes_per_entity, (unsigned long long)ow_zone_durable_frame(a.zone));
  rc = ow_auth_create(&auth, store, &t.auth);
  if (rc) {
    fprintf(stderr, "otherworld: cannot load accounts: %s\n", ow_strerror(rc));
    goto out;
  }

  if (!t.srv.pwhash_jobs) { /* half the cores: the other half stays with the loop and the store */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    t.srv.pwhash_jobs = cores >= 8 ? 4 : cores >= 2 ? (uint32_t)cores / 2 : 1;
  }

  a.loop = uv_default_loop();
  t.srv.store = store; /* its size for /metrics */
  ow_zone_loop_create(&a.zl, a.loop, a.zone, t.srv.tick_hz, t.loop.checkpoint_s);
  /* Uploaded assets live beside the store, as files (src/assets/store.h), not in it: in the LMDB
   * store's directory unless asset_dir names another. A database store has no directory of its
   * own (and zones on several hosts share it), so there uploads are off until asset_dir is set. */
  char *asset_dir = *cfg.asset_dir ? ow_strdup(cfg.asset_dir) : NULL;
  if (!asset_dir && !strncmp(uri, "lmdb:", 5)) {
    size_t n = strlen(uri + 5) + 8;
    asset_dir = ow_malloc(n);
    snprintf(asset_dir, n, "%s/assets", uri + 5);
  }
  t.srv.assets.dir = asset_dir;
  rc = ow_server_create(&a.server, a.loop, a.zone, a.zl, auth, &t.srv);
  ow_free(asset_dir); /* the asset store keeps its own copy */
  t.srv.assets.dir = NULL;
  if (rc) {
    fprintf(stderr, "otherworld: cannot listen on %s:%g: %s\n", cfg.bind, cfg.port, ow_strerror(rc));
    ow_zone_loop_stop(a.zl, NULL, NULL);
    uv_run(a.loop, UV_RUN_DEFAULT);
    ow_zone_loop_destroy(a.zl);
    goto out;
  }
  /* After the server listens: a schedule needs nothing but the store, and its directory was
   * checked before recovery. */
  if (t.backup.every_s > 0 &&
      !ow_backup_schedule_start(&a.backups, a.loop, store, t.backup.dir, t.backup.every_s,
                                t.backup.keep))
    OW_INFO("backups", "dir=%s every_s=%g keep=%u", t.backup.dir, t.backup.every_s,
            t.backup.keep);
  uv_signal_init(a.loop, &a.sigint);
  uv_signal_init(a.loop, &a.sigterm);
  a.sigint.data = a.sigterm.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  OW_INFO("listening", "url=ws://%s:%d/ws status=http://%s:%d/status accounts=%zu tick_hz=%g "
          "durability=%s pwhash_jobs=%u hint=\"stop with Ctrl-C or SIGTERM\"",
          strcmp(cfg.bind, "0.0.0.0") ? cfg.bind : "127.0.0.1", ow_server_port(a.server),
          strcmp(cfg.bind, "0.0.0.0") ? cfg.bind : "127.0.0.1", ow_server_port(a.server),
          ow_auth_accounts(auth), cfg.tick_hz, cfg.durability, t.srv.pwhash_jobs);

  char status[128];
  snprintf(status, sizeof status, "serving ws://%s:%d/ws, frame %llu",
           strcmp(cfg.bind, "0.0.0.0") ? cfg.bind : "127.0.0.1", ow_server_port(a.server),
           (unsigned long long)ow_zone_durable_frame(a.zone));
  ow_notify_ready(&a.notify, a.loop, status);

  uv_run(a.loop, UV_RUN_DEFAULT);

  int store_err = ow_zone_store_error(a.zone);
  const ow_server_stats *st = ow_server_stats_get(a.server);
  OW_INFO("stopped", "frame=%llu durable_actions=%llu ticks=%llu connections=%llu store_error=%s",
          (unsigned long long)ow_zone_durable_frame(a.zone), (unsigned long long)a.durable_actions,
          (unsigned long long)ow_zone_loop_stats_get(a.zl)->ticks,
          (unsigned long long)st->connections, ow_err_name(store_err));
  ow_server_free(a.server);
  a.server = NULL;
  ow_backup_schedule_stop(a.backups); /* when the loop ended without a signal */
  a.backups = NULL;
  if (a.notify) ow_notify_stopping(a.notify);
  a.notify = NULL;
  uv_run(a.loop, UV_RUN_DEFAULT); /* lws closes its last handles */
  ow_zone_loop_destroy(a.zl);
  uv_loop_close(a.loop);
  exit_code = store_err ? 1 : 0;
out:
  ow_auth_destroy(auth);
  ow_zone_close(a.zone);
  ow_store_close(store);
  ow_content_destroy(content);
  ow_free(shown);
  ow_free(uri);
  ow_config_deinit(&cfg);
  return exit_code;
}
