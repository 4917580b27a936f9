/* Test support: temporary store directories and the shipped content, for every test program. */
#ifndef OW_TEST_SUPPORT_H
#define OW_TEST_SUPPORT_H

#include <stdbool.h>

#include "content/content.h"
#include "store/store.h"
#include "zone/zone.h"

/* Creates a fresh directory under $TMPDIR (or /tmp) and returns its path (static buffer per call
 * site is not used: the caller frees it with ow_test_rmdir). */
char *ow_test_mkdtemp(const char *tag);
/* Removes the directory tree and frees the path. */
void ow_test_rmdir(char *path);
/* Loads content/default.json from the source tree; aborts the test program on failure. */
ow_content *ow_test_content(void);
/* Path of a file in the source tree (static storage, overwritten by the next call). */
const char *ow_test_source_path(const char *rel);
/* Opens a store in dir with full durability; aborts on failure. Under tests/pg/pg_env.sh the store
 * is the PostgreSQL schema that stands for dir (ow_test_store_uri). */
ow_store *ow_test_store(const char *dir);
/* Under tests/pg/pg_env.sh (OW_TEST_PG set): the URI of the PostgreSQL store that stands for dir,
 * its schema created if missing (caller frees); otherwise NULL (tests/pg/pgtest.c). */
char *ow_test_store_uri(const char *dir);
/* Default zone configuration used by the tests (reach 8 m, regions of 256 m, window 64). */
ow_zone_config ow_test_zone_config(void);

/* Same result? (code, entity, count) */
bool ow_test_result_eq(const ow_result *a, const ow_result *b);
/* Same action, compared through its frame-record encoding? */
bool ow_test_action_eq(const ow_action *a, const ow_action *b);

/* Small deterministic generator (splitmix64), so that a printed seed replays a workload. */
static inline uint64_t ow_test_rand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static inline uint32_t ow_test_below(uint64_t *s, uint32_t n) {
  return n ? (uint32_t)(ow_test_rand(s) % n) : 0;
}

/* ---- the real server binary (tests/support/server.c) ----------------------------------------- */

/* One run of the real `otherworld` binary: started on --port 0 with its stderr in its own log
 * file, its port read from the log's "listening" line. */
typedef struct ow_test_server {
  int pid;                  /* 0 when not running */
  int port;                 /* from the "listening" line */
  uint64_t recovered_frame; /* the store's frame when it started, from the "recovered" line */
  char log[1024];           /* the log file of this run */
} ow_test_server;

/* Starts `bin --data_dir data_dir --bind 127.0.0.1 --port 0 ARGS...` (args NULL-terminated, may
 * be NULL) with stderr appended to log_path, and waits until it listens. Returns 0; -1 if it
 * exited first or did not listen within timeout_ms (it is then killed); the log says why.
 * When the environment variable OW_SERVER_WRAPPER is set, the server runs under that command
 * line (split at spaces, e.g. valgrind) and the timeout is six times longer. */
int ow_test_server_start(ow_test_server *s, const char *bin, const char *data_dir,
                         const char *log_path, const char *const *args, int timeout_ms);
/* Sends sig (SIGKILL, SIGTERM; 0 sends nothing) and reaps the process; returns its wait status,
 * or -1 when it was not running. */
int ow_test_server_stop(ow_test_server *s, int sig);
/* Seconds on the monotonic clock, for deadlines of waits (never for assertions on speed). */
double ow_test_now(void);

/* ---- HTTP (tests/support/http.c) ---------------------------------------------------------------- */

/* One response; body is NUL-terminated (free with ow_test_resp_free). status 0: no response. */
typedef struct ow_test_resp {
  int status;
  char type[128];
  uint8_t *body;
  size_t n;
} ow_test_resp;

/* One request to 127.0.0.1:port on a fresh connection (Connection: close). auth: the
 * Authorization header's value, or NULL for none. A POST or PUT declares Content-Length n and
 * sends body_sent of the n bytes; with hang_up the connection is closed right after (an
 * abandoned request, status 0). */
ow_test_resp ow_test_http(int port, const char *method, const char *path, const char *auth, const void *body,
                          size_t n, size_t body_sent, bool hang_up);
void ow_test_resp_free(ow_test_resp *r);

#endif
