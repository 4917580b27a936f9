/*
 * config: every setting of the server in one declarative table, which drives the config file,
 * the OW_* environment overrides, the command line and --help. Later sources win:
 * defaults < config file < environment < command line.
 */
#ifndef OW_CONFIG_H
#define OW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct ow_config {
  char *data_dir;
  char *content;
  char *durability; /* "full" or "nosync" */
  char *log_level;
  char *bind;
  char *server_name;
  char *admins;
  double tick_hz;
  double region_size;
  double reach;
  double world_bound;
  double checkpoint_s;
  double replay_window;
  double frame_log_keep;
  double store_map_mb;
  double port;
  double pose_hz;
  double interest_radius;
  double max_players;
  double action_rate;
  double action_burst;
  double pose_rate;
  double down_kbps;
  double idle_s;
  double shutdown_notice_s;
  double max_message;
  double send_limit_kb;
  double token_ttl_s;
  double max_sessions;
  double pwhash_ops;
  double pwhash_mem_kb;
  double eager_commit;
  double max_conns;
  double max_conns_per_addr;
  double handshake_timeout_s;
  double login_fails_account;
  double login_fails_addr;
  double login_fail_window_s;
  double login_lock_s;
  double login_lock_max_s;
  double pwhash_jobs;
  double pwhash_queue;
  double pwhash_per_addr;
  double chat_rate;
  double chat_burst;
  double rate_kick;
  double rate_kick_decay;
} ow_config;

/* Fills defaults. */
void ow_config_init(ow_config *c);
void ow_config_deinit(ow_config *c);

/* Sets one setting from text; on error writes a message naming the setting and the problem. */
int ow_config_set(ow_config *c, const char *name, const char *value, char *err, size_t errlen);

/* Parses a config file's text ("key = value" lines, '#' comments). `origin` names the source in
 * error messages ("otherworld.conf:12: ..."). */
int ow_config_parse(ow_config *c, const char *text, size_t len, const char *origin, char *err,
                    size_t errlen);

/* Applies OW_<NAME> environment variables. */
int ow_config_env(ow_config *c, char *err, size_t errlen);

/* Applies argv: --config FILE, --NAME=VALUE or --NAME VALUE. Sets *help when --help is given. */
int ow_config_args(ow_config *c, int argc, char **argv, bool *help, char *err, size_t errlen);

/* Prints the settings table (name, default, environment variable, meaning). */
void ow_config_help(FILE *out);

/* Prints the settings in effect, one key=value per line. */
void ow_config_dump(const ow_config *c, FILE *out);

#endif
