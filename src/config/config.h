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
 * bytes, destination, help) and NUM(name, default, lowest, highest, destination, help). This list
 * makes the struct below, the config file parser, the OW_* environment names, the command line and
 * --help (config.c), and main.c's copy of each setting into the module that uses it, so a setting
 * is added in one place. The destination is TO(field), KIB(field) or MIB(field) (the value times
 * 1024 or 1024 * 1024) of one of the module configurations main.c fills (srv: ow_server_config,
 * zone: ow_zone_config, auth: ow_auth_config, store: ow_store_options, loop: the zone loop's
 * timers, backup: the backup schedule), or BY_HAND for the few main.c interprets itself (paths,
 * URIs, modes). Lengths and ranges are those of the field a value ends up in: server_name travels
 * in WELCOME as a string of at most 255 bytes. The "choices" names are arrays defined in config.c. */
#define OW_SETTINGS(STR, NUM) \
    STR(data_dir, "./data", NULL, 0, 4096, BY_HAND, "directory of the embedded LMDB store") \
    STR(store, "", NULL, 1, 4096, BY_HAND, "where the world is kept, as a URI: lmdb:DIR (empty: lmdb: " \
      "followed by data_dir), postgres:CONNINFO (a libpq conninfo) or a postgres:// URL " \
      "(PostgreSQL or CockroachDB)") \
    STR(content, OW_DEFAULT_CONTENT, NULL, 0, 4096, BY_HAND, "content file: entity types, recipes, seed world (JSON)") \
    STR(durability, "full", durability_choices, 0, 4096, BY_HAND, \
      "full: every confirmed frame is fsynced; nosync: a process crash loses nothing, but a power " \
      "loss or kernel crash can lose the frames of the last seconds") \
    STR(log_level, "info", level_choices, 0, 4096, BY_HAND, "debug, info, warn or error") \
    NUM(tick_hz, "60", 1, 1000, TO(srv.tick_hz), "zone ticks per second; each tick commits the frame gathered so far") \
    NUM(region_size, "256", 1, 100000, TO(zone.world.region_size), "edge of a region cell on the X/Z plane, metres") \
    NUM(reach, "8", 0, 100000, TO(zone.world.reach), "how far an avatar can act, metres (0: unlimited)") \
    NUM(world_bound, "1000000", 1, 1e9, TO(zone.world.bound), "largest |x|, |y|, |z| of any position, metres") \
    NUM(checkpoint_s, "5", 0.1, 3600, TO(loop.checkpoint_s), "seconds between checkpoints of streamed transforms") \
    NUM(replay_window, "64", 1, 65535, TO(zone.replay_window), "action results remembered per session for exactly-once retries") \
    NUM(frame_log_keep, "36000", 0, 1e12, TO(zone.frame_log_keep), "frames kept in the store's frame log (0: keep all)") \
    NUM(store_map_mb, "1024", 16, 1 << 24, MIB(store.map_size), "initial LMDB map size in MiB (grows when full)") \
    NUM(store_outage_s, "30", 0.1, 86400, TO(store.outage_s), "PostgreSQL store: seconds the frame " \
      "in flight waits for an unreachable database; then durability is suspended (players are " \
      "told, actions refused) until restart") \
    STR(bind, "0.0.0.0", NULL, 0, 4096, TO(srv.net.bind), "address to listen on (127.0.0.1 for this machine only)") \
    NUM(port, "7480", 0, 65535, TO(srv.net.port), "HTTP + WebSocket port (0: any free port, printed at start)") \
    STR(server_name, "otherworld", NULL, 0, 255, TO(srv.name), "name shown to clients in WELCOME") \
    NUM(pose_hz, "30", 1, 240, TO(srv.pose_hz), "pose publish rate to each client") \
    NUM(snapshot_hz, "30", 0, 1000, TO(srv.snapshot_hz), "snapshot publish rate to each client, at most tick_hz " \
      "(0: every tick); at pose_hz a client's snapshot and poses leave in one message") \
    NUM(interest_radius, "128", 1, 100000, TO(srv.interest_radius), "area of interest around an avatar, metres") \
    NUM(max_players, "100", 1, 100000, TO(srv.max_players), "players joined per instance") \
    NUM(action_rate, "20", 0.1, 100000, TO(srv.action_rate), "actions per second per session (token bucket)") \
    NUM(action_burst, "40", 1, 100000, TO(srv.action_burst), "action burst per session") \
    NUM(pose_rate, "90", 1, 1000, TO(srv.pose_rate), "poses per second accepted per session (more are dropped)") \
    NUM(down_kbps, "240", 8, 100000, TO(srv.down_kbps), "downstream budget per client, kbit/s: snapshots first, poses fill the rest") \
    NUM(idle_s, "60", 1, 86400, TO(srv.idle_s), "close connections that send nothing for this long") \
    NUM(shutdown_notice_s, "5", 0, 3600, TO(srv.shutdown_notice_s), "warning given to players before a SIGTERM shutdown") \
    NUM(max_message, "4096", 128, 1048576, TO(srv.net.max_message), "largest message a client may send, bytes") \
    NUM(send_limit_kb, "1024", 16, 1048576, KIB(srv.net.send_limit), "queued bytes per client before it is dropped as too slow") \
    NUM(token_ttl_s, "86400", 1, 31536000, TO(auth.token_ttl_s), "session token lifetime, seconds") \
    NUM(max_sessions, "4", 1, 1000, TO(auth.max_tokens), "live session tokens per account; older ones are revoked") \
    STR(admins, "", NULL, 1, 4096, TO(srv.admins), "comma-separated account names that always have the admin role (ADMIN " \
      "operations: kick, announce, set role, revoke; docs/protocol.md)") \
    NUM(pwhash_ops, "2", 1, 20, TO(auth.pwhash_ops), "argon2id passes") \
    NUM(pwhash_mem_kb, "19456", 64, 4194304, KIB(auth.pwhash_mem), "argon2id memory, KiB") \
    NUM(eager_commit, "1", 0, 1, TO(srv.eager_commit), "1: an action starts a commit at once when none is in flight (lower " \
      "durable latency, still one commit at a time); 0: commit only at ticks") \
    NUM(max_conns, "20000", 0, 1e7, TO(srv.net.max_conns), "TCP connections (HTTP and WebSocket) open at once; more are " \
      "closed at accept (0: no limit; always kept below the descriptor limit, ulimit -n)") \
    NUM(max_conns_per_addr, "64", 0, 1e7, TO(srv.net.max_conns_per_addr), "TCP connections open at once per remote address (IPv6: " \
      "per /64); more are closed at accept (0: no limit)") \
    NUM(handshake_timeout_s, "10", 1, 3600, TO(srv.net.handshake_timeout_s), "seconds a connection may take to send its HTTP request " \
      "or WebSocket handshake, however slowly it trickles the bytes") \
    NUM(login_fails_account, "5", 1, 1e6, TO(srv.login_fails_account), "failed logins to one account before it is locked (LOGIN " \
      "answers OW_E_RATE without checking the password); RESUME is not affected") \
    NUM(login_fails_addr, "20", 1, 1e6, TO(srv.login_fails_addr), \
      "failed logins from one address before the address is locked") \
    NUM(login_fail_window_s, "600", 1, 1e7, TO(srv.login_fail_window_s), "an account or address without failures or lock for this " \
      "long starts again from zero") \
    NUM(login_lock_s, "5", 0.01, 1e7, TO(srv.login_lock_s), "first lock after too many failed logins; each further failure " \
      "doubles it") \
    NUM(login_lock_max_s, "900", 0.01, 1e7, TO(srv.login_lock_max_s), "longest lock after failed logins") \
    NUM(pwhash_jobs, "0", 0, 256, TO(srv.pwhash_jobs), "argon2id jobs (LOGIN, REGISTER) running at once, on threads of " \
      "their own at a lower priority (nice +10) than the world loop and the store write (0: half " \
      "the cores, 1 to 4)") \
    NUM(pwhash_queue, "64", 0, 1e6, TO(srv.pwhash_queue), "argon2id jobs waiting for a thread; beyond, LOGIN and REGISTER " \
      "answer OW_E_RATE") \
    NUM(pwhash_per_addr, "4", 1, 1e6, TO(srv.pwhash_per_addr), "argon2id jobs running or waiting per remote address; beyond, " \
      "OW_E_RATE") \
    NUM(chat_rate, "2", 0.01, 100000, TO(srv.chat_rate), "chat messages per second per client (token bucket)") \
    NUM(chat_burst, "10", 1, 100000, TO(srv.chat_burst), "chat burst per client") \
    NUM(rate_kick, "500", 0, 1e9, TO(srv.rate_kick), "refusals for rate (actions, chat, logins; a dropped pose counts a " \
      "quarter) a client may pile up before SERVER_BYE RATE (0: never)") \
    STR(backup_dir, "./backups", NULL, 0, 4000, TO(backup.dir), "directory of the scheduled " \
      "backups (backup-<UTC time>/, each a compacted copy of the store and its manifest)") \
    NUM(backup_every_s, "0", 0, 1e8, TO(backup.every_s), "seconds between hot backups while the " \
      "server runs (0: none; otherworld --backup DIR makes one on demand)") \
    NUM(backup_keep, "24", 1, 1e6, TO(backup.keep), "scheduled backups kept; older ones are removed") \
    NUM(rate_kick_decay, "50", 0, 1e9, TO(srv.rate_kick_decay), "refusals per second forgiven from that pile") \
    STR(asset_dir, "", NULL, 1, 4000, BY_HAND, "directory of uploaded assets (POST /assets, " \
      "docs/assets.md; empty: assets/ in the LMDB store's directory; with a database store, no uploads)") \
    NUM(asset_max_mb, "64", 0.001, 4096, MIB(srv.assets.max_upload), "largest asset upload, refused " \
      "from its Content-Length before the body is read (413)") \
    NUM(asset_quota_mb, "256", 0, 1e7, MIB(srv.assets.quota), "bytes of distinct assets one account " \
      "may own (403 beyond; an asset uploaded twice counts once)") \
    STR(metrics_token, "", NULL, 1, 4096, TO(srv.metrics_token), "bearer token GET /metrics (Prometheus) " \
      "requires when set (Authorization: Bearer TOKEN; others get 403); empty: /metrics is as open " \
      "as /status, for a server bound to loopback or behind a firewall")

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
