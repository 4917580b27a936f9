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

/* Every setting, once: STR(name, default, allowed values or NULL, empty allowed, longest value in
 * bytes, help) and NUM(name, default, lowest, highest, help). This list makes the struct below, the
 * config file parser, the OW_* environment names, the command line and --help (config.c), so a
 * setting is added in one place. Lengths and ranges are those of the field a value ends up in:
 * server_name travels in WELCOME as a string of at most 255 bytes. The "choices" names are arrays
 * defined in config.c. */
#define OW_SETTINGS(STR, NUM) \
    STR(data_dir, "./data", NULL, 0, 4096, "directory of the embedded LMDB store") \
    STR(store, "", NULL, 1, 4096, "where the world is kept, as a URI: lmdb:DIR (empty: lmdb: " \
      "followed by data_dir), postgres:CONNINFO (a libpq conninfo) or a postgres:// URL " \
      "(PostgreSQL or CockroachDB)") \
    STR(content, OW_DEFAULT_CONTENT, NULL, 0, 4096, "content file: entity types, recipes, seed world (JSON)") \
    STR(durability, "full", durability_choices, 0, 4096, \
      "full: every confirmed frame is fsynced; nosync: a process crash loses nothing, but a power " \
      "loss or kernel crash can lose the frames of the last seconds") \
    STR(log_level, "info", level_choices, 0, 4096, "debug, info, warn or error") \
    NUM(tick_hz, "60", 1, 1000, "zone ticks per second; each tick commits the frame gathered so far") \
    NUM(region_size, "256", 1, 100000, "edge of a region cell on the X/Z plane, metres") \
    NUM(reach, "8", 0, 100000, "how far an avatar can act, metres (0: unlimited)") \
    NUM(world_bound, "1000000", 1, 1e9, "largest |x|, |y|, |z| of any position, metres") \
    NUM(checkpoint_s, "5", 0.1, 3600, "seconds between checkpoints of streamed transforms") \
    NUM(replay_window, "64", 1, 65535, "action results remembered per session for exactly-once retries") \
    NUM(frame_log_keep, "36000", 0, 1e12, "frames kept in the store's frame log (0: keep all)") \
    NUM(store_map_mb, "1024", 16, 1 << 24, "initial LMDB map size in MiB (grows when full)") \
    STR(bind, "0.0.0.0", NULL, 0, 4096, "address to listen on (127.0.0.1 for this machine only)") \
    NUM(port, "7480", 0, 65535, "HTTP + WebSocket port (0: any free port, printed at start)") \
    STR(server_name, "otherworld", NULL, 0, 255, "name shown to clients in WELCOME") \
    NUM(pose_hz, "30", 1, 240, "pose publish rate to each client") \
    NUM(interest_radius, "128", 1, 100000, "area of interest around an avatar, metres") \
    NUM(max_players, "100", 1, 100000, "players joined per instance") \
    NUM(action_rate, "20", 0.1, 100000, "actions per second per session (token bucket)") \
    NUM(action_burst, "40", 1, 100000, "action burst per session") \
    NUM(pose_rate, "90", 1, 1000, "poses per second accepted per session (more are dropped)") \
    NUM(down_kbps, "240", 8, 100000, "downstream budget per client, kbit/s: snapshots first, poses fill the rest") \
    NUM(idle_s, "60", 1, 86400, "close connections that send nothing for this long") \
    NUM(shutdown_notice_s, "5", 0, 3600, "warning given to players before a SIGTERM shutdown") \
    NUM(max_message, "4096", 128, 1048576, "largest message a client may send, bytes") \
    NUM(send_limit_kb, "1024", 16, 1048576, "queued bytes per client before it is dropped as too slow") \
    NUM(token_ttl_s, "86400", 1, 31536000, "session token lifetime, seconds") \
    NUM(max_sessions, "4", 1, 1000, "live session tokens per account; older ones are revoked") \
    STR(admins, "", NULL, 1, 4096, "comma-separated account names that always have the admin role (ADMIN " \
      "operations: kick, announce, set role, revoke; docs/protocol.md)") \
    NUM(pwhash_ops, "2", 1, 20, "argon2id passes") \
    NUM(pwhash_mem_kb, "19456", 64, 4194304, "argon2id memory, KiB") \
    NUM(eager_commit, "1", 0, 1, "1: an action starts a commit at once when none is in flight (lower " \
      "durable latency, still one commit at a time); 0: commit only at ticks") \
    NUM(max_conns, "20000", 0, 1e7, "TCP connections (HTTP and WebSocket) open at once; more are " \
      "closed at accept (0: no limit; always kept below the descriptor limit, ulimit -n)") \
    NUM(max_conns_per_addr, "64", 0, 1e7, "TCP connections open at once per remote address (IPv6: " \
      "per /64); more are closed at accept (0: no limit)") \
    NUM(handshake_timeout_s, "10", 1, 3600, "seconds a connection may take to send its HTTP request " \
      "or WebSocket handshake, however slowly it trickles the bytes") \
    NUM(login_fails_account, "5", 1, 1e6, "failed logins to one account before it is locked (LOGIN " \
      "answers OW_E_RATE without checking the password); RESUME is not affected") \
    NUM(login_fails_addr, "20", 1, 1e6, \
      "failed logins from one address before the address is locked") \
    NUM(login_fail_window_s, "600", 1, 1e7, "an account or address without failures or lock for this " \
      "long starts again from zero") \
    NUM(login_lock_s, "5", 0.01, 1e7, "first lock after too many failed logins; each further failure " \
      "doubles it") \
    NUM(login_lock_max_s, "900", 0.01, 1e7, "longest lock after failed logins") \
    NUM(pwhash_jobs, "0", 0, 256, "argon2id jobs (LOGIN, REGISTER) running at once, on threads of " \
      "their own at a lower priority (nice +10) than the world loop and the store write (0: half " \
      "the cores, 1 to 4)") \
    NUM(pwhash_queue, "64", 0, 1e6, "argon2id jobs waiting for a thread; beyond, LOGIN and REGISTER " \
      "answer OW_E_RATE") \
    NUM(pwhash_per_addr, "4", 1, 1e6, "argon2id jobs running or waiting per remote address; beyond, " \
      "OW_E_RATE") \
    NUM(chat_rate, "2", 0.01, 100000, "chat messages per second per client (token bucket)") \
    NUM(chat_burst, "10", 1, 100000, "chat burst per client") \
    NUM(rate_kick, "500", 0, 1e9, "refusals for rate (actions, chat, logins; a dropped pose counts a " \
      "quarter) a client may pile up before SERVER_BYE RATE (0: never)") \
    NUM(rate_kick_decay, "50", 0, 1e9, "refusals per second forgiven from that pile")

typedef struct ow_config {
#define OW_CFG_STR_FIELD(name, ...) char *name;
#define OW_CFG_NUM_FIELD(name, ...) double name;
  OW_SETTINGS(OW_CFG_STR_FIELD, OW_CFG_NUM_FIELD)
#undef OW_CFG_STR_FIELD
#undef OW_CFG_NUM_FIELD
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
