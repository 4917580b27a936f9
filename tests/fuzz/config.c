/*
 * fuzz target config: the settings parser (src/config) through its three outside sources. The
 * whole input is parsed as a config file ("name = value" lines, '#' comments); then its lines are
 * used as command-line arguments (ow_config_args, without --config, which names a file) and as
 * OW_* environment values (ow_config_env). All three share the table-driven value parser.
 * Properties: a refused input names its problem; an accepted one leaves the numeric settings
 * finite and every string setting non-empty.
 */
#include "fuzz.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>

#include "config/config.h"

/* Every setting name, for the environment step (config.h has no list of them). */
static const char *const names[] = {
    "data_dir", "content", "durability", "log_level", "tick_hz", "region_size", "reach",
    "world_bound", "checkpoint_s", "replay_window", "frame_log_keep", "store_map_mb", "bind",
    "port", "server_name", "pose_hz", "interest_radius", "max_players", "action_rate",
    "action_burst", "pose_rate", "down_kbps", "idle_s", "shutdown_notice_s", "max_message",
    "send_limit_kb", "token_ttl_s", "max_sessions", "pwhash_ops", "pwhash_mem_kb", "eager_commit"};
#define NNAMES (sizeof names / sizeof names[0])

static char *dump(const ow_config *c, size_t *len) {
  char *text = NULL;
  FILE *f = open_memstream(&text, len);
  ow_config_dump(c, f);
  fclose(f);
  return text;
}

static void check(const ow_config *c) {
  const double *nums[] = {&c->tick_hz, &c->region_size, &c->reach, &c->world_bound, &c->port,
                          &c->max_message, &c->pwhash_mem_kb, &c->eager_commit};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) FUZZ_CHECK(isfinite(*nums[i]));
  const char *strs[] = {c->data_dir, c->content, c->durability, c->log_level, c->bind, c->server_name};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) FUZZ_CHECK(strs[i] && strs[i][0]);
  /* The settings in effect print (one line per setting). */
  size_t n;
  char *d = dump(c, &n);
  size_t lines = 0;
  for (size_t i = 0; i < n; i++) lines += d[i] == '\n';
  FUZZ_CHECK(lines >= NNAMES);
  free(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  ow_log_level = getenv("FUZZ_VERBOSE") ? OW_LOG_DEBUG : OW_LOG_ERROR + 1;
  /* Only this target's own OW_* variables may be set. */
  for (size_t i = 0; i < NNAMES; i++) {
    char env[64] = "OW_";
    for (size_t j = 0; names[i][j]; j++) env[3 + j] = (char)toupper((unsigned char)names[i][j]);
    unsetenv(env);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* 1. The config file. */
  ow_config c;
  ow_config_init(&c);
  char err[512] = "";
  int rc = ow_config_parse(&c, (const char *)data, size, "fuzz.conf", err, sizeof err);
  FUZZ_CHECK(rc == 0 || (rc == OW_E_CONFIG && err[0]));
  if (!rc) check(&c);
  ow_config_deinit(&c);

  /* 2. The same lines as argv (NUL bytes end an argument, as they would in a real argv). */
  size_t nlines = 1;
  for (size_t i = 0; i < size; i++) nlines += data[i] == '\n';
  if (nlines > 64) nlines = 64;
  char **argv = calloc(nlines + 2, sizeof *argv);
  int argc = 0;
  argv[argc++] = strdup("otherworld");
  size_t pos = 0;
  while (pos <= size && (size_t)argc < nlines + 1) {
    size_t end = pos;
    while (end < size && data[end] != '\n') end++;
    char *a = malloc(end - pos + 1); /* the input is not NUL-terminated: no strndup */
    memcpy(a, data + pos, end - pos);
    a[end - pos] = 0;
    if (!strncmp(a, "--config", 8)) {
      free(a); /* a file name: not this target's input */
    } else {
      argv[argc++] = a;
    }
    pos = end + 1;
  }
  ow_config_init(&c);
  bool help = false;
  rc = ow_config_args(&c, argc, argv, &help, err, sizeof err);
  FUZZ_CHECK(rc == 0 || (rc == OW_E_CONFIG && err[0]));
  if (!rc) check(&c);
  ow_config_deinit(&c);

  /* 3. Each line "name=value" (or just a value for the next setting) as an OW_* variable.
   * putenv with buffers of our own: setenv keeps every value it was ever given. */
  static char envbuf[NNAMES][4200];
  bool set[NNAMES] = {0};
  size_t k = 0;
  for (int i = 1; i < argc && k < NNAMES; i++, k++) {
    const char *a = argv[i];
    const char *eq = strchr(a, '=');
    size_t which = k;
    if (eq) {
      for (size_t j = 0; j < NNAMES; j++)
        if (strlen(names[j]) == (size_t)(eq - a) && !strncmp(names[j], a, (size_t)(eq - a))) which = j;
      a = eq + 1;
    }
    char env[64] = "OW_";
    for (size_t j = 0; names[which][j]; j++) env[3 + j] = (char)toupper((unsigned char)names[which][j]);
    snprintf(envbuf[which], sizeof envbuf[which], "%s=%.4096s", env, a);
    putenv(envbuf[which]);
    set[which] = true;
  }
  ow_config_init(&c);
  rc = ow_config_env(&c, err, sizeof err);
  FUZZ_CHECK(rc == 0 || (rc == OW_E_CONFIG && err[0]));
  if (!rc) check(&c);
  ow_config_deinit(&c);
  for (size_t i = 0; i < NNAMES; i++)
    if (set[i]) {
      char env[64];
      snprintf(env, sizeof env, "%.*s", (int)(strchr(envbuf[i], '=') - envbuf[i]), envbuf[i]);
      unsetenv(env);
    }

  for (int i = 0; i < argc; i++) free(argv[i]);
  free(argv);
  return 0;
}
