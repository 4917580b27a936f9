/*
 * store/pg: see pg.h. The keyspace is one table of BYTEA keys and values (ow_kv); byte order of
 * BYTEA is LMDB's order, so prefix scans are key ranges. The SQL is the subset CockroachDB also
 * accepts (no plpgsql, INSERT ... ON CONFLICT, unnest of arrays), listed in docs/storage.md.
 */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "store/store_int.h"

/* The version of the tables this file reads and writes, kept in ow_schema ('format'). */
#define PG_SCHEMA_VERSION 1
/* Operations per statement of a batch: bounds one message's size on a checkpoint of a million
 * entities, while a usual frame still goes as one DELETE and one INSERT. */
#define PG_CHUNK 8192
/* Rows per page of a scan. */
#define PG_PAGE 8192
/* How long a write waits for an unreachable server before it gives up, unless
 * ow_store_options.outage_s says otherwise, and how long a reply may take without any byte
 * arriving before the connection is taken for dead. */
#define PG_OUTAGE_S 30.0
#define PG_REPLY_MS 60000
#define BYTEA_OID 17
#define BYTEA_ARRAY_OID 1001

static const char SQL_CREATE_KV[] =
    "CREATE TABLE IF NOT EXISTS ow_kv (k BYTEA PRIMARY KEY, v BYTEA NOT NULL)";
static const char SQL_CREATE_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS ow_schema (name TEXT PRIMARY KEY, value INT8 NOT NULL)";
static const char SQL_CREATE_WRITERS[] =
    "CREATE TABLE IF NOT EXISTS ow_writers (writer INT8 PRIMARY KEY, seq INT8 NOT NULL)";
static const char SQL_SET_FORMAT[] =
    "INSERT INTO ow_schema (name, value) VALUES ('format', $1) ON CONFLICT (name) DO NOTHING";
static const char SQL_GET_FORMAT[] = "SELECT value FROM ow_schema WHERE name = 'format'";
static const char SQL_ADD_WRITER[] = "INSERT INTO ow_writers (writer, seq) VALUES ($1, 0)";
static const char SQL_DROP_WRITER[] = "DELETE FROM ow_writers WHERE writer = $1";
static const char SQL_BEGIN[] = "BEGIN ISOLATION LEVEL SERIALIZABLE";
static const char SQL_MARK[] = "UPDATE ow_writers SET seq = $2 WHERE writer = $1 AND seq = $3";
static const char SQL_READ_MARK[] = "SELECT seq FROM ow_writers WHERE writer = $1 FOR UPDATE";
static const char SQL_GET[] = "SELECT v FROM ow_kv WHERE k = $1";
static const char SQL_DEL[] = "DELETE FROM ow_kv WHERE k = ANY ($1::BYTEA[])";
static const char SQL_PUT[] =
    "INSERT INTO ow_kv (k, v) SELECT t.k, t.v FROM unnest($1::BYTEA[], $2::BYTEA[]) AS t (k, v) "
    "ON CONFLICT (k) DO UPDATE SET v = excluded.v";
static const char SQL_SCAN_FIRST[] =
    "SELECT k, v FROM ow_kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT 8192";
static const char SQL_SCAN_NEXT[] =
    "SELECT k, v FROM ow_kv WHERE k > $1 AND k < $2 ORDER BY k LIMIT 8192";
static const char SQL_STAT[] =
    "SELECT count(*), COALESCE(sum(length(k) + length(v)), 0) FROM ow_kv";

/* Internal outcome of one attempt: the connection is gone (positive, never returned). */
enum { LOST = 1 };

typedef struct pg_op {
  const uint8_t *k, *v;
  uint32_t kl, vl;
  uint32_t idx; /* position in the batch: the last operation on a key wins */
  uint8_t op;
} pg_op;

typedef struct pg_store {
  ow_store base; /* first: the dispatchers in store.c see an ow_store */
  pthread_mutex_t mu; /* one connection; a write on a worker and a read elsewhere take turns */
  PGconn *conn;
  char *conninfo;
  bool nosync;
  bool read_only; /* opened to be read (ow_store_options.read_only): no tables, no writer row */
  int64_t writer; /* this handle's row in ow_writers: its commit number, written in every batch */
  uint64_t seq;   /* the commit number of the last batch this handle committed */
  int failed;     /* the first fatal write error, sticky (see ow_store_write) */
  uint64_t outage_ns;  /* how long writes wait for an unreachable server */
  uint64_t down_since; /* when a write first found the server unreachable; 0 once one reached it */
  bool down_logged;    /* this outage's store_pg_unreachable line is written */
  int drop;       /* OW_PG_DROP_*: tests only */
  OW_VEC(pg_op) ops;
  ow_buf ka, va; /* the binary arrays of one statement */
} pg_store;

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- connections -------------------------------------------------------------------------------- */

static void disconnect(pg_store *s) {
  if (s->conn) PQfinish(s->conn);
  s->conn = NULL;
}

/* The server's notices ("relation already exists, skipping") are not the operator's concern. */
static void drop_notice(void *ud, const char *msg) { (void)ud, (void)msg; }

/* Connects, with defaults that notice a dead server in seconds rather than the kernel's minutes;
 * whatever the operator's conninfo says overrides them (it comes last). */
static int connect_db(pg_store *s, char *err, size_t errlen) {
  disconnect(s);
  const char *keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                        "keepalives_count", "tcp_user_timeout", "application_name", "dbname",
                        NULL};
  const char *vals[] = {"5", "1", "5", "2", "3", "10000", "otherworld", s->conninfo, NULL};
  s->conn = PQconnectdbParams(keys, vals, 1);
  if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
    if (err) {
      const char *m = s->conn ? PQerrorMessage(s->conn) : "out of memory";
      size_t n = strcspn(m, "\n");
      snprintf(err, errlen, "%.*s", (int)n, m);
    }
    disconnect(s);
    return LOST;
  }
  PQsetNoticeProcessor(s->conn, drop_notice, NULL);
  if (s->nosync) {
    /* The counterpart of MDB_NOSYNC: a crash of the server can lose the last commits, never
     * corrupt the store. CockroachDB has no such setting; a failure here is only logged. */
    PGresult *r = PQexec(s->conn, "SET synchronous_commit = off");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
      OW_WARN("store_pg_nosync_refused", "msg=\"%s\"", PQresultErrorMessage(r));
    PQclear(r);
  }
  if (s->read_only) {
    /* The server refuses every write of this session, whatever a bug here might send. */
    PGresult *r = PQexec(s->conn, "SET default_transaction_read_only = on");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
      if (err) snprintf(err, errlen, "cannot make the session read-only");
      disconnect(s);
      return LOST;
    }
  }
  return 0;
}

/* Maps a failed result to an error: serialization failures and deadlocks are retryable, a dead
 * connection or a server shutting down is LOST, a full disk -ENOSPC, anything else fatal. */
static int result_err(pg_store *s, const PGresult *r) {
  if (!r || PQstatus(s->conn) != CONNECTION_OK) return LOST;
  const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  if (!st) return PQresultStatus(r) == PGRES_FATAL_ERROR ? LOST : OW_E_STORE;
  if (!strcmp(st, "40001") || !strcmp(st, "40P01")) return OW_E_RETRY;
  if (!strncmp(st, "08", 2) || !strcmp(st, "57P01") || !strcmp(st, "57P02") ||
      !strcmp(st, "57P03"))
    return LOST;
  /* lock_not_available: only the resolution of a lost commit sets a lock timeout (resolve). */
  if (!strcmp(st, "55P03")) return LOST;
  if (!strcmp(st, "53100")) return -ENOSPC;
  if (!strncmp(st, "53", 2)) return OW_E_NOMEM;
  OW_ERROR("store_pg_error", "sqlstate=%s msg=\"%.*s\"", st,
           (int)strcspn(PQresultErrorMessage(r), "\n"), PQresultErrorMessage(r));
  return OW_E_STORE;
}

/* The next result of the connection, waiting at most PG_REPLY_MS without progress; NULL when the
 * connection failed or timed out (then it is closed, so PQstatus says so), or at the end of one
 * query's results. */
static PGresult *next_result(pg_store *s) {
  PGconn *c = s->conn;
  while (PQisBusy(c)) {
    struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
    int n = poll(&p, 1, PG_REPLY_MS);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !PQconsumeInput(c)) {
      OW_WARN("store_pg_reply_lost", "why=%s", n == 0 ? "timeout" : "connection");
      disconnect(s);
      return NULL;
    }
  }
  return PQgetResult(c);
}

/* Runs one statement outside a pipeline, with text or binary parameters (formats NULL: text) and
 * results in rfmt (0 text, 1 binary). Returns the result (caller clears it) or NULL with *rc set. */
static PGresult *run(pg_store *s, const char *sql, int n, const char *const *vals, const int *lens,
                     const int *fmts, int rfmt, ExecStatusType want, int *rc) {
  *rc = 0;
  if (!s->conn) {
    *rc = LOST;
    return NULL;
  }
  PGresult *r = PQexecParams(s->conn, sql, n, NULL, vals, lens, fmts, rfmt);
  if (PQresultStatus(r) == want) return r;
  *rc = result_err(s, r);
  PQclear(r);
  return NULL;
}

static bool exec_ok(pg_store *s, const char *sql, int *rc) {
  PGresult *r = run(s, sql, 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK, rc);
  PQclear(r);
  return r != NULL;
}

/* ---- batches ------------------------------------------------------------------------------------ */

static int collect_op(void *ud, int op, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  pg_store *s = ud;
  pg_op o = {k, v, (uint32_t)kl, (uint32_t)vl, (uint32_t)s->ops.len, (uint8_t)op};
  OW_VEC_PUSH(s->ops, o);
  return 0;
}

static int op_cmp(const void *a, const void *b) {
  const pg_op *x = a, *y = b;
  size_t n = x->kl < y->kl ? x->kl : y->kl;
  int c = memcmp(x->k, y->k, n);
  if (c) return c;
  if (x->kl != y->kl) return x->kl < y->kl ? -1 : 1;
  return x->idx < y->idx ? -1 : 1;
}

/* Reduces the batch to the last operation on each key, in key order. One statement may not touch
 * a row twice (ON CONFLICT DO UPDATE refuses it), and the result is what applying the operations
 * in order would leave; key order also takes the rows' locks in one order. */
static int gather(pg_store *s, const ow_batch *b) {
  s->ops.len = 0;
  int rc = ow_batch_each(b, collect_op, s);
  if (rc) return rc;
  if (s->ops.len > 1) qsort(s->ops.v, s->ops.len, sizeof *s->ops.v, op_cmp);
  size_t w = 0;
  for (size_t i = 0; i < s->ops.len; i++) {
    const pg_op *o = &s->ops.v[i];
    bool last = i + 1 == s->ops.len || o->kl != o[1].kl || memcmp(o->k, o[1].k, o->kl);
    if (last) s->ops.v[w++] = *o;
  }
  s->ops.len = w;
  return 0;
}

/* A one-dimensional BYTEA[] in PostgreSQL's binary array format (big-endian header, then each
 * element's length and bytes). */
static void array_begin(ow_buf *a, uint32_t n) {
  a->len = 0;
  ow_buf_be32(a, 1);         /* dimensions */
  ow_buf_be32(a, 0);         /* no NULLs */
  ow_buf_be32(a, BYTEA_OID); /* element type */
  ow_buf_be32(a, n);         /* length of the dimension */
  ow_buf_be32(a, 1);         /* lower bound */
}

static void array_add(ow_buf *a, const uint8_t *p, uint32_t n) {
  ow_buf_be32(a, n);
  ow_buf_put(a, p, n);
}

/* Sends the statements that apply ops of kind `op` (chunked); returns how many it sent, or -1
 * when sending failed (the connection is gone). */
static int send_ops(pg_store *s, int op) {
  int sent = 0;
  size_t i = 0;
  while (i < s->ops.len) {
    uint32_t n = 0;
    size_t j;
    for (j = i; j < s->ops.len && n < PG_CHUNK; j++) n += s->ops.v[j].op == op;
    if (!n) break;
    array_begin(&s->ka, n);
    array_begin(&s->va, n);
    for (size_t t = i; t < j; t++) {
      const pg_op *o = &s->ops.v[t];
      if (o->op != op) continue;
      array_add(&s->ka, o->k, o->kl);
      if (op == OW_BATCH_PUT) array_add(&s->va, o->v, o->vl);
    }
    i = j;
    const char *vals[2] = {(const char *)s->ka.data, (const char *)s->va.data};
    int lens[2] = {(int)s->ka.len, (int)s->va.len}, fmts[2] = {1, 1};
    Oid types[2] = {BYTEA_ARRAY_OID, BYTEA_ARRAY_OID};
    const char *sql = op == OW_BATCH_PUT ? SQL_PUT : SQL_DEL;
    if (!PQsendQueryParams(s->conn, sql, op == OW_BATCH_PUT ? 2 : 1, types, vals, lens, fmts, 0))
      return -1;
    sent++;
  }
  return sent;
}

/* Reads the results up to the pipeline's next sync. Result number `mark` (counted from 0) is the
 * commit-number update and must have changed one row; result `cond_at` (-1: none) is the
 * condition's read, checked against cond. Returns 0, LOST, OW_E_CONFLICT or the first error. */
static int drain(pg_store *s, int mark, int cond_at, const ow_store_cond *cond) {
  int rc = 0, i = 0;
  for (;;) {
    PGresult *r = next_result(s);
    if (!r) {
      if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) return LOST;
      continue; /* the end of one query's results */
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      return rc;
    }
    if (!rc) {
      if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR || st == PGRES_PIPELINE_ABORTED) {
        rc = st == PGRES_PIPELINE_ABORTED ? OW_E_STORE : result_err(s, r);
      } else if (i == mark && strcmp(PQcmdTuples(r), "1")) {
        /* Our commit number is not where this handle left it: another process writes with our
         * writer id, or the store was changed behind our back. Nothing is written. */
        OW_ERROR("store_pg_mark_mismatch", "writer=%" PRId64 " seq=%" PRIu64, s->writer, s->seq);
        rc = OW_E_STORE;
      } else if (i == cond_at) {
        bool present = PQntuples(r) == 1;
        bool holds = cond->expect ? present && (size_t)PQgetlength(r, 0, 0) == cond->el &&
                                        !memcmp(PQgetvalue(r, 0, 0), cond->expect, cond->el)
                                  : !present;
        if (!holds) rc = OW_E_CONFLICT;
      }
    }
    PQclear(r);
    i++;
  }
}

/* Ends a transaction that failed or was refused, leaving pipeline mode. */
static void rollback(pg_store *s) {
  if (!s->conn) return;
  if (PQpipelineStatus(s->conn) != PQ_PIPELINE_OFF && !PQexitPipelineMode(s->conn)) {
    disconnect(s);
    return;
  }
  int rc;
  if (!exec_ok(s, "ROLLBACK", &rc)) disconnect(s);
}

/* One attempt at writing the batch as one transaction: BEGIN, the commit number, (the condition's
 * read, and a sync to look at it), the deletes, the puts, COMMIT, all sent before any reply is
 * read. *unknown is set when the connection was lost after COMMIT may have reached the server. */
static int write_once(pg_store *s, const ow_store_cond *cond, bool *unknown) {
  *unknown = false;
  PGconn *c = s->conn;
  char w[24], next[24], cur[24];
  snprintf(w, sizeof w, "%" PRId64, s->writer);
  snprintf(next, sizeof next, "%" PRIu64, s->seq + 1);
  snprintf(cur, sizeof cur, "%" PRIu64, s->seq);
  const char *mv[3] = {w, next, cur};
  if (!PQenterPipelineMode(c)) return LOST;
  bool ok = PQsendQueryParams(c, SQL_BEGIN, 0, NULL, NULL, NULL, NULL, 0) &&
            PQsendQueryParams(c, SQL_MARK, 3, NULL, mv, NULL, NULL, 0);
  if (ok && cond) {
    /* The condition decides whether anything is written, so its answer is read before the rest
     * is sent: one more round trip, for conditional writes only. SERIALIZABLE makes the read
     * hold until COMMIT (a concurrent change to the key fails the commit with 40001). */
    const char *kv[1] = {cond->key};
    int kl[1] = {(int)cond->kl}, kf[1] = {1};
    Oid kt[1] = {BYTEA_OID};
    ok = PQsendQueryParams(c, SQL_GET, 1, kt, kv, kl, kf, 1) && PQpipelineSync(c);
    int rc = ok ? drain(s, 1, 2, cond) : LOST;
    if (rc) {
      rollback(s);
      return rc;
    }
    c = s->conn;
  }
  int dels = ok ? send_ops(s, OW_BATCH_DEL) : -1;
  int puts = dels >= 0 ? send_ops(s, OW_BATCH_PUT) : -1;
  if (puts < 0) {
    disconnect(s);
    return LOST;
  }
  if (s->drop == OW_PG_DROP_BEFORE_COMMIT) {
    /* The statements reached the server, COMMIT never does: the server rolls back. The store
     * cannot tell this from a lost COMMIT reply, so it resolves it the same way. */
    s->drop = OW_PG_DROP_NONE;
    PQflush(c);
    disconnect(s);
    *unknown = true;
    return LOST;
  }
  /* From here on COMMIT may reach the server: a lost connection leaves the outcome unknown. */
  *unknown = true;
  if (!PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) || !PQpipelineSync(c)) {
    disconnect(s);
    return LOST;
  }
  if (s->drop == OW_PG_DROP_AFTER_COMMIT) {
    s->drop = OW_PG_DROP_NONE;
    PQflush(c);
    disconnect(s);
    return LOST;
  }
  int rc = drain(s, cond ? -1 : 1, -1, NULL);
  if (rc == LOST) return LOST;
  /* Any reply means the server answered every statement: a failure aborted the transaction. */
  *unknown = false;
  if (rc) {
    rollback(s);
    return rc;
  }
  if (!PQexitPipelineMode(s->conn)) disconnect(s);
  return 0;
}

/* Settles a write whose COMMIT may or may not have happened by reading this handle's commit
 * number back. FOR UPDATE waits for the old connection's transaction if the server still runs it,
 * so the answer is final: *committed is true if the number moved to seq + 1. */
static int resolve(pg_store *s, bool *committed) {
  char w[24];
  snprintf(w, sizeof w, "%" PRId64, s->writer);
  const char *vals[1] = {w};
  int rc;
  /* A lock held past lock_timeout (the old connection's server process still waiting for its
   * client) is not an answer: the caller asks again, as after a lost connection. */
  if (!exec_ok(s, "BEGIN", &rc) || !exec_ok(s, "SET LOCAL lock_timeout = '5s'", &rc)) return rc;
  PGresult *r = run(s, SQL_READ_MARK, 1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, &rc);
  if (!r) {
    rollback(s);
    return rc;
  }
  uint64_t seq = PQntuples(r) == 1 ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : UINT64_MAX;
  PQclear(r);
  if (!exec_ok(s, "COMMIT", &rc)) return rc;
  if (seq != s->seq && seq != s->seq + 1) {
    OW_ERROR("store_pg_mark_mismatch", "writer=%" PRId64 " seq=%" PRIu64 " stored=%" PRIu64,
             s->writer, s->seq, seq);
    return OW_E_STORE;
  }
  *committed = seq == s->seq + 1;
  OW_WARN("store_pg_commit_resolved", "seq=%" PRIu64 " committed=%d", s->seq + 1, *committed);
  return 0;
}

static int pg_write(ow_store *base, const ow_batch *b, const ow_store_cond *cond) {
  pg_store *s = (pg_store *)base;
  /* As LMDB's MDB_RDONLY environment answers a write transaction. */
  if (s->read_only) return -EACCES;
  pthread_mutex_lock(&s->mu);
  int rc = s->failed;
  if (!rc) rc = gather(s, b);
  if (rc) goto out;
  /* The outage is timed from the first write that found the server gone, not from this one: once
   * a write has waited the whole window, the next ones (the zone's retries) try once and give up,
   * so that the zone suspends durability and tells the players within the window. */
  uint64_t t0 = s->down_since ? s->down_since : ow_now_ns();
  bool unknown = false, told = false, gave_up = false;
  long pause = 10;
  for (;;) {
    rc = s->conn && PQstatus(s->conn) == CONNECTION_OK ? 0 : connect_db(s, NULL, 0);
    if (!rc && unknown) {
      bool committed = false;
      rc = resolve(s, &committed);
      if (!rc && committed) break;
      if (!rc) unknown = false;
    }
    if (!rc) rc = write_once(s, cond, &unknown);
    if (rc != LOST) break;
    disconnect(s);
    if (!s->down_since) s->down_since = t0;
    if (ow_now_ns() - t0 > s->outage_ns) {
      /* Retrying is safe only when nothing can have been written. */
      rc = unknown ? OW_E_STORE : OW_E_RETRY;
      if (!s->down_logged)
        OW_ERROR("store_pg_unreachable", "seconds=%.1f unknown_commit=%d",
                 (ow_now_ns() - t0) / 1e9, unknown);
      s->down_logged = true;
      gave_up = true;
      break;
    }
    if (!told && !s->down_logged) OW_WARN("store_pg_reconnecting", "unknown_commit=%d", unknown);
    told = true;
    nap_ms(pause);
    if (pause < 1000) pause *= 2;
  }
  if (!gave_up) { /* the server answered */
    s->down_since = 0;
    s->down_logged = false;
  }
  if (!rc) {
    s->seq++;
    if (told) OW_INFO("store_pg_reconnected", "seconds=%.3f", (ow_now_ns() - t0) / 1e9);
  } else if (rc != OW_E_RETRY && rc != OW_E_CONFLICT && rc != OW_E_CORRUPT) {
    s->failed = rc;
  }
out:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* ---- reads -------------------------------------------------------------------------------------- */

/* Runs a read, reconnecting once if the connection was lost (reads are idempotent). */
static PGresult *read_run(pg_store *s, const char *sql, int n, const char *const *vals,
                          const int *lens, const int *fmts, int *rc) {
  for (int attempt = 0;; attempt++) {
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
      if (connect_db(s, NULL, 0)) {
        *rc = OW_E_RETRY;
        return NULL;
      }
    }
    PGresult *r = run(s, sql, n, vals, lens, fmts, 1, PGRES_TUPLES_OK, rc);
    if (r || *rc != LOST || attempt) {
      if (*rc == LOST) *rc = OW_E_RETRY;
      return r;
    }
    disconnect(s);
  }
}

static int pg_get(ow_store *base, const void *k, size_t kl, ow_buf *out) {
  pg_store *s = (pg_store *)base;
  pthread_mutex_lock(&s->mu);
  const char *vals[1] = {k};
  int lens[1] = {(int)kl}, fmts[1] = {1}, rc;
  PGresult *r = read_run(s, SQL_GET, 1, vals, lens, fmts, &rc);
  if (r) {
    if (PQntuples(r) == 1) {
      out->len = 0;
      ow_buf_put(out, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    } else {
      rc = OW_E_NOT_FOUND;
    }
    PQclear(r);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* The smallest key above every key that starts with prefix: the prefix with its trailing 0xff
 * bytes dropped and its last byte incremented; without one (empty or all 0xff), 512 bytes of 0xff,
 * above every key (keys are at most 511 bytes). */
static void prefix_end(const uint8_t *p, size_t pl, ow_buf *out) {
  out->len = 0;
  while (pl && p[pl - 1] == 0xff) pl--;
  if (!pl) {
    for (int i = 0; i < 512; i++) ow_buf_u8(out, 0xff);
    return;
  }
  ow_buf_put(out, p, pl);
  out->data[pl - 1]++;
}

static int pg_scan(ow_store *base, const void *prefix, size_t pl, ow_scan_fn fn, void *ud) {
  pg_store *s = (pg_store *)base;
  pthread_mutex_lock(&s->mu);
  ow_buf lo, hi;
  ow_buf_init(&lo);
  ow_buf_init(&hi);
  ow_buf_put(&lo, prefix, pl);
  prefix_end(prefix, pl, &hi);
  int rc = 0;
  if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) rc = connect_db(s, NULL, 0) ? OW_E_RETRY : 0;
  /* Pages of one REPEATABLE READ transaction read one snapshot, as LMDB's read transaction. */
  if (!rc && !exec_ok(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", &rc) && rc == LOST)
    rc = OW_E_RETRY;
  for (bool first = true; !rc; first = false) {
    /* An empty prefix is an empty value, not a NULL pointer (libpq's SQL NULL). */
    const char *vals[2] = {lo.len ? (const char *)lo.data : "", (const char *)hi.data};
    int lens[2] = {(int)lo.len, (int)hi.len}, fmts[2] = {1, 1};
    PGresult *r = run(s, first ? SQL_SCAN_FIRST : SQL_SCAN_NEXT, 2, vals, lens, fmts, 1,
                      PGRES_TUPLES_OK, &rc);
    if (!r) break;
    int n = PQntuples(r);
    for (int i = 0; i < n && !rc; i++)
      rc = fn(ud, (const uint8_t *)PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0),
              (const uint8_t *)PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1));
    if (!rc && n) {
      lo.len = 0;
      ow_buf_put(&lo, PQgetvalue(r, n - 1, 0), (size_t)PQgetlength(r, n - 1, 0));
    }
    PQclear(r);
    if (n < PG_PAGE) break;
  }
  if (rc == LOST) {
    disconnect(s);
    rc = OW_E_RETRY;
  } else if (s->conn && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
    int e;
    if (!exec_ok(s, "ROLLBACK", &e)) disconnect(s);
  }
  ow_buf_deinit(&lo);
  ow_buf_deinit(&hi);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int pg_stat(ow_store *base, uint64_t *entries, uint64_t *bytes) {
  pg_store *s = (pg_store *)base;
  pthread_mutex_lock(&s->mu);
  int rc;
  PGresult *r = NULL;
  for (int attempt = 0; attempt < 2 && !r; attempt++) {
    if ((!s->conn || PQstatus(s->conn) != CONNECTION_OK) && connect_db(s, NULL, 0)) {
      rc = OW_E_RETRY;
      break;
    }
    r = run(s, SQL_STAT, 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, &rc);
    if (!r && rc != LOST) break;
    if (!r) rc = OW_E_RETRY;
  }
  if (r) {
    if (entries) *entries = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    if (bytes) *bytes = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* ---- open and close ----------------------------------------------------------------------------- */

static void free_store(pg_store *s) {
  disconnect(s);
  pthread_mutex_destroy(&s->mu);
  OW_VEC_FREE(s->ops);
  ow_buf_deinit(&s->ka);
  ow_buf_deinit(&s->va);
  ow_free(s->conninfo);
  ow_free(s);
}

static void pg_close(ow_store *base) {
  pg_store *s = (pg_store *)base;
  /* The writer row only resolves this handle's own lost commits; a crashed process leaves its row
   * behind (a few bytes, harmless). */
  if (s->writer && s->conn && PQstatus(s->conn) == CONNECTION_OK) {
    char w[24];
    snprintf(w, sizeof w, "%" PRId64, s->writer);
    const char *vals[1] = {w};
    int rc;
    PQclear(run(s, SQL_DROP_WRITER, 1, vals, NULL, NULL, 0, PGRES_COMMAND_OK, &rc));
  }
  free_store(s);
}

static const ow_store_methods pg_methods = {
    .scheme = "postgres",
    .close = pg_close,
    .write = pg_write,
    .get = pg_get,
    .scan = pg_scan,
    .stat = pg_stat,
    /* No copy: ow_store_copy answers -ENOTSUP. A consistent copy of a PostgreSQL store is the
     * database server's business (pg_dump, or CockroachDB's BACKUP), not a directory this process
     * could write; docs/storage.md says how. */
    .copy = NULL,
};

/* A read-only open creates nothing: the store must exist already (-ENOENT otherwise, as for a
 * missing LMDB directory) and be of this build's schema version. */
static int check_schema(pg_store *s, char *err, size_t errlen) {
  PGresult *r = PQexec(s->conn, SQL_GET_FORMAT);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    bool missing = st && !strcmp(st, "42P01"); /* undefined_table */
    int rc = missing ? -ENOENT : result_err(s, r);
    if (err) {
      const char *m = PQresultErrorMessage(r);
      if (missing) snprintf(err, errlen, "the database holds no otherworld store");
      else snprintf(err, errlen, "reading the schema version failed: %.*s", (int)strcspn(m, "\n"), m);
    }
    PQclear(r);
    return rc == LOST || rc == OW_E_RETRY ? OW_E_STORE : rc;
  }
  long long found = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
  PQclear(r);
  if (found == PG_SCHEMA_VERSION) return 0;
  if (err)
    snprintf(err, errlen, "the database holds an otherworld store of schema version %lld; this "
             "build reads version %d only", found, PG_SCHEMA_VERSION);
  return OW_E_VERSION;
}

/* Creates the tables if missing and checks the schema version, in one transaction. */
static int prepare_schema(pg_store *s, char *err, size_t errlen) {
  int rc;
  char ver[24];
  snprintf(ver, sizeof ver, "%d", PG_SCHEMA_VERSION);
  const char *vv[1] = {ver};
  if (!exec_ok(s, "BEGIN", &rc) || !exec_ok(s, SQL_CREATE_KV, &rc) ||
      !exec_ok(s, SQL_CREATE_SCHEMA, &rc) || !exec_ok(s, SQL_CREATE_WRITERS, &rc)) goto fail;
  PGresult *r = run(s, SQL_SET_FORMAT, 1, vv, NULL, NULL, 0, PGRES_COMMAND_OK, &rc);
  if (!r) goto fail;
  PQclear(r);
  r = run(s, SQL_GET_FORMAT, 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, &rc);
  if (!r) goto fail;
  long long found = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
  PQclear(r);
  if (found != PG_SCHEMA_VERSION) {
    if (err)
      snprintf(err, errlen, "the database holds an otherworld store of schema version %lld; this "
               "build reads version %d only (use a build of the matching version, or another "
               "database)", found, PG_SCHEMA_VERSION);
    rollback(s);
    return OW_E_VERSION;
  }
  if (!exec_ok(s, "COMMIT", &rc)) goto fail;
  return 0;
fail:
  if (err) {
    const char *m = s->conn ? PQerrorMessage(s->conn) : "connection lost";
    snprintf(err, errlen, "creating the schema failed: %.*s", (int)strcspn(m, "\n"), m);
  }
  rollback(s);
  return rc == LOST || rc == OW_E_RETRY ? OW_E_STORE : rc;
}

int ow_store_pg_open(ow_store **out, const char *conninfo, const ow_store_options *opt, char *err,
                     size_t errlen) {
  *out = NULL;
  if (!*conninfo) {
    if (err) snprintf(err, errlen, "empty PostgreSQL connection string");
    return OW_E_INVAL;
  }
  pg_store *s = ow_calloc(1, sizeof *s);
  s->base.m = &pg_methods;
  pthread_mutex_init(&s->mu, NULL);
  s->conninfo = ow_strdup(conninfo);
  s->nosync = opt && opt->nosync;
  s->read_only = opt && opt->read_only;
  double outage_s = opt && opt->outage_s > 0 ? opt->outage_s : PG_OUTAGE_S;
  s->outage_ns = (uint64_t)(outage_s * 1e9);
  ow_buf_init(&s->ka);
  ow_buf_init(&s->va);
  int rc = connect_db(s, err, errlen) ? OW_E_STORE : 0;
  if (!rc) rc = s->read_only ? check_schema(s, err, errlen) : prepare_schema(s, err, errlen);
  if (!rc && !s->read_only) {
    /* A random id for this handle's commit number (63 bits: INT8 is signed). */
    uint64_t w = 0;
    while (!w) {
      if (getrandom(&w, sizeof w, 0) != (ssize_t)sizeof w) w = ow_now_ns() ^ (uint64_t)getpid() << 32;
      w &= INT64_MAX;
    }
    s->writer = (int64_t)w;
    char ws[24];
    snprintf(ws, sizeof ws, "%" PRId64, s->writer);
    const char *vals[1] = {ws};
    PGresult *r = run(s, SQL_ADD_WRITER, 1, vals, NULL, NULL, 0, PGRES_COMMAND_OK, &rc);
    PQclear(r);
    if (!r) {
      if (err) snprintf(err, errlen, "registering the writer failed: %s", ow_strerror(rc < 0 ? rc : OW_E_STORE));
      rc = rc < 0 ? rc : OW_E_STORE;
    }
  }
  if (rc) {
    OW_ERROR("store_open_failed", "scheme=postgres err=\"%s\"", err ? err : ow_err_name(rc));
    free_store(s);
    return rc;
  }
  *out = &s->base;
  return 0;
}

void ow_store_pg_test_drop(ow_store *base, int when) {
  OW_ASSERT(base->m == &pg_methods);
  ((pg_store *)base)->drop = when;
}

uint64_t ow_store_pg_commits(const ow_store *base) {
  OW_ASSERT(base->m == &pg_methods);
  return ((const pg_store *)base)->seq;
}
