/* store/pg: what only the PostgreSQL store does. A commit whose reply was lost is resolved by the
 * commit number (committed or not, the batch is there exactly once), a killed connection is
 * reconnected, a serialization failure is retryable, a store of another schema version is refused,
 * batches keep their order within a key and are chunked and paged, both URI forms open, and a
 * read-only store writes and creates nothing.
 * Runs under tests/pg/pg_env.sh (ctest pg_unit_pg). */
#define _GNU_SOURCE
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pg.h"
#include "support.h"

static char *g_dir;

/* A side connection into the schema the test store lives in, for looking behind its back. */
static PGconn *side(const char *dir) {
  char *uri = ow_test_store_uri(dir);
  PGconn *c = PQconnectdb(uri + strlen("postgres:"));
  ow_free(uri);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  return c;
}

static void side_exec(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fprintf(stderr, "%s", PQerrorMessage(c));
  assert_true(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
  PQclear(r);
}

static long long side_num(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
  assert_int_equal(PQntuples(r), 1);
  long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return v;
}

static void put1(ow_store *s, const char *k, const char *v, int want) {
  ow_batch b;
  ow_batch_init(&b);
  ow_batch_put(&b, k, strlen(k), v, strlen(v));
  assert_int_equal(ow_store_write(s, &b), want);
  ow_batch_deinit(&b);
}

static bool holds(ow_store *s, const char *k, const char *v) {
  ow_buf got;
  ow_buf_init(&got);
  int rc = ow_store_get(s, k, strlen(k), &got);
  bool eq = v ? !rc && got.len == strlen(v) && !memcmp(got.data, v, got.len)
              : rc == OW_E_NOT_FOUND;
  ow_buf_deinit(&got);
  return eq;
}

static int setup(void **state) {
  (void)state;
  g_dir = ow_test_mkdtemp("pg");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  ow_test_rmdir(g_dir);
  return 0;
}

static void test_lost_commit_resolved(void **state) {
  (void)state;
  ow_store *s = ow_test_store(g_dir);
  assert_string_equal(ow_store_scheme(s), "postgres");
  put1(s, "Ma", "1", 0);
  assert_int_equal(ow_store_pg_commits(s), 1);
  /* COMMIT reached the server, its reply did not reach us: the write must say committed, and the
   * batch is there once (the commit number moved by one, not two). */
  ow_store_pg_test_drop(s, OW_PG_DROP_AFTER_COMMIT);
  put1(s, "Mb", "2", 0);
  assert_true(holds(s, "Mb", "2"));
  assert_int_equal(ow_store_pg_commits(s), 2);
  /* COMMIT never left: the store finds its number unmoved and writes the batch again. */
  ow_store_pg_test_drop(s, OW_PG_DROP_BEFORE_COMMIT);
  put1(s, "Mc", "3", 0);
  assert_true(holds(s, "Mc", "3"));
  assert_int_equal(ow_store_pg_commits(s), 3);
  PGconn *c = side(g_dir);
  assert_int_equal(side_num(c, "SELECT max(seq) FROM ow_writers"), 3);
  assert_int_equal(side_num(c, "SELECT count(*) FROM ow_kv"), 3);
  ow_store_close(s);
  /* A clean close removes the handle's writer row. */
  assert_int_equal(side_num(c, "SELECT count(*) FROM ow_writers"), 0);
  PQfinish(c);
}

static void test_killed_connection_reconnects(void **state) {
  (void)state;
  ow_store *s = ow_test_store(g_dir);
  put1(s, "Md", "4", 0);
  PGconn *c = side(g_dir);
  assert_true(side_num(c, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                          "pg_stat_activity WHERE application_name = 'otherworld') t") >= 1);
  /* The write finds its connection dead, reconnects and writes. */
  put1(s, "Me", "5", 0);
  assert_true(holds(s, "Me", "5"));
  side_exec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
               "'otherworld'");
  /* Reads reconnect too. */
  assert_true(holds(s, "Md", "4"));
  ow_store_close(s);
  PQfinish(c);
}

static void pg_ctl(const char *what) {
  const char *ctl = getenv("OW_TEST_PG_CTL");
  assert_non_null(ctl);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "'%s' %s", ctl, what);
  assert_int_equal(system(cmd), 0);
}

/* The database stopped: a write waits outage_s for it and fails retryable (nothing written), and
 * so does the next one (the outage is timed from the first); the failure is not sticky, and once
 * the server is back the same batch lands. A read first notices the dead connection, so that the
 * write's COMMIT never leaves this process and its outcome is known (a write on a connection the
 * client has not yet seen die is an unknown outcome: pg_store_down has that case). */
static void test_outage_retryable(void **state) {
  (void)state;
  char *dir = ow_test_mkdtemp("pg-outage");
  char *uri = ow_test_store_uri(dir), err[512] = "";
  ow_store_options o = {.outage_s = 0.2};
  ow_store *s;
  assert_int_equal(ow_store_open_uri(&s, uri, &o, err, sizeof err), 0);
  put1(s, "Ma", "1", 0);
  pg_ctl("stop");
  ow_buf got;
  ow_buf_init(&got);
  assert_int_equal(ow_store_get(s, "Ma", 2, &got), OW_E_RETRY);
  ow_buf_deinit(&got);
  put1(s, "Mb", "2", OW_E_RETRY);
  put1(s, "Mb", "2", OW_E_RETRY);
  pg_ctl("start");
  put1(s, "Mb", "2", 0);
  assert_true(holds(s, "Ma", "1"));
  assert_true(holds(s, "Mb", "2"));
  ow_store_close(s);
  ow_free(uri);
  ow_test_rmdir(dir);
}

typedef struct writer_arg {
  ow_store *s;
  int rc;
} writer_arg;

static void *write_x(void *ud) {
  writer_arg *a = ud;
  ow_batch b;
  ow_batch_init(&b);
  ow_batch_put(&b, "Mx", 2, "mine", 4);
  a->rc = ow_store_write(a->s, &b);
  ow_batch_deinit(&b);
  return NULL;
}

static void test_serialization_failure_retryable(void **state) {
  (void)state;
  ow_store *s = ow_test_store(g_dir);
  put1(s, "Mx", "0", 0);
  /* Another transaction holds the row; our write waits for its lock, then finds it changed by a
   * transaction that committed after ours began: SQLSTATE 40001. */
  PGconn *c = side(g_dir);
  side_exec(c, "BEGIN ISOLATION LEVEL SERIALIZABLE");
  side_exec(c, "UPDATE ow_kv SET v = 'theirs' WHERE k = 'Mx'");
  writer_arg a = {s, 1};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, write_x, &a), 0);
  PGconn *w = side(g_dir);
  while (side_num(w, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                     "'otherworld' AND wait_event_type = 'Lock'") == 0) {
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  side_exec(c, "COMMIT");
  pthread_join(t, NULL);
  assert_int_equal(a.rc, OW_E_RETRY);
  assert_true(ow_store_error_retryable(a.rc));
  assert_true(holds(s, "Mx", "theirs"));
  /* Nothing was written and the store stays usable: the same batch goes through now. */
  assert_int_equal(ow_store_pg_commits(s), 1);
  write_x(&a);
  assert_int_equal(a.rc, 0);
  assert_true(holds(s, "Mx", "mine"));
  ow_store_close(s);
  PQfinish(c);
  PQfinish(w);
}

static void test_schema_version_refused(void **state) {
  (void)state;
  ow_store *s = ow_test_store(g_dir);
  ow_store_close(s);
  PGconn *c = side(g_dir);
  side_exec(c, "UPDATE ow_schema SET value = 99 WHERE name = 'format'");
  char *uri = ow_test_store_uri(g_dir), err[512] = "";
  ow_store_options o = {0};
  assert_int_equal(ow_store_open_uri(&s, uri, &o, err, sizeof err), OW_E_VERSION);
  assert_null(s);
  assert_non_null(strstr(err, "schema version 99"));
  side_exec(c, "UPDATE ow_schema SET value = 1 WHERE name = 'format'");
  assert_int_equal(ow_store_open_uri(&s, uri, &o, err, sizeof err), 0);
  ow_store_close(s);
  ow_free(uri);
  PQfinish(c);
}

/* Opened read-only (--backup, --verify), the store reads what is there, refuses every write
 * without reaching the server, creates nothing in a database that holds no store, checks the
 * schema version, and cannot be copied (backups of PostgreSQL are pg_dump's). */
static int count_rows(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  (void)k, (void)kl, (void)v, (void)vl;
  ++*(int *)ud;
  return 0;
}

static void test_read_only(void **state) {
  (void)state;
  char *dir = ow_test_mkdtemp("pg-ro");
  ow_store *w = ow_test_store(dir);
  put1(w, "Ma", "1", 0);
  put1(w, "Mb", "2", 0);
  char *uri = ow_test_store_uri(dir), err[512] = "";
  ow_store_options ro = {.read_only = true};
  ow_store *r;
  assert_int_equal(ow_store_open_uri(&r, uri, &ro, err, sizeof err), 0);
  assert_true(holds(r, "Mb", "2"));
  int n = 0;
  assert_int_equal(ow_store_scan(r, "M", 1, count_rows, &n), 0);
  assert_int_equal(n, 2);
  put1(r, "Mc", "3", -EACCES);
  assert_true(holds(w, "Mc", NULL));
  /* The writer goes on beside the reader, which sees its commits. */
  put1(w, "Mc", "3", 0);
  assert_true(holds(r, "Mc", "3"));
  assert_false(ow_store_can_copy(r));
  assert_false(ow_store_can_copy(w));
  assert_int_equal(ow_store_copy(r, "/nonexistent/never-made"), -ENOTSUP);
  PGconn *c = side(dir);
  /* Only the writer registered itself; the reader left no row. */
  assert_int_equal(side_num(c, "SELECT count(*) FROM ow_writers"), 1);
  ow_store_close(r);
  assert_int_equal(side_num(c, "SELECT count(*) FROM ow_writers"), 1);
  side_exec(c, "UPDATE ow_schema SET value = 98 WHERE name = 'format'");
  assert_int_equal(ow_store_open_uri(&r, uri, &ro, err, sizeof err), OW_E_VERSION);
  assert_null(r);
  assert_non_null(strstr(err, "schema version 98"));
  side_exec(c, "UPDATE ow_schema SET value = 1 WHERE name = 'format'");
  ow_store_close(w);
  PQfinish(c);
  ow_free(uri);
  /* A schema without a store: refused, and still without tables afterwards. */
  char *empty = ow_test_mkdtemp("pg-ro-empty");
  uri = ow_test_store_uri(empty);
  assert_int_equal(ow_store_open_uri(&r, uri, &ro, err, sizeof err), -ENOENT);
  assert_null(r);
  assert_non_null(strstr(err, "no otherworld store"));
  c = side(empty);
  assert_int_equal(side_num(c, "SELECT count(*) FROM information_schema.tables WHERE "
                               "table_schema = current_schema()"), 0);
  PQfinish(c);
  ow_free(uri);
  ow_test_rmdir(empty);
  ow_test_rmdir(dir);
}

static int count_scan(void *ud, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
  (void)v, (void)vl;
  ow_buf *last = ud;
  /* Strictly increasing byte order, as LMDB's. */
  if (last->len) {
    size_t n = kl < last->len ? kl : last->len;
    int c = memcmp(last->data, k, n);
    assert_true(c < 0 || (c == 0 && last->len < kl));
  }
  last->len = 0;
  ow_buf_put(last, k, kl);
  return 0;
}

static void test_batches_chunks_pages(void **state) {
  (void)state;
  char *dir = ow_test_mkdtemp("pg-batch");
  ow_store *s = ow_test_store(dir);
  ow_batch b;
  ow_batch_init(&b);
  /* Several operations on one key: the last one wins, as LMDB applies them in order. */
  ow_batch_put(&b, "Mk", 2, "1", 1);
  ow_batch_del(&b, "Mk", 2);
  ow_batch_put(&b, "Mk", 2, "2", 1);
  ow_batch_put(&b, "Mj", 2, "1", 1);
  ow_batch_del(&b, "Mj", 2);
  assert_int_equal(ow_store_write(s, &b), 0);
  assert_true(holds(s, "Mk", "2"));
  assert_true(holds(s, "Mj", NULL));
  /* More operations than one statement carries, then more rows than one page of a scan. */
  ow_batch_reset(&b);
  enum { N = 20000 };
  for (uint32_t i = 0; i < N; i++) {
    uint8_t k[OW_KEY_ENTITY_LEN];
    ow_key_entity(k, (int32_t)(i % 7) - 3, -(int32_t)(i % 5), i);
    ow_batch_put(&b, k, sizeof k, &i, sizeof i);
  }
  assert_int_equal(ow_store_write(s, &b), 0);
  ow_batch_reset(&b);
  for (uint32_t i = 0; i < N; i += 2) {
    uint8_t k[OW_KEY_ENTITY_LEN];
    ow_key_entity(k, (int32_t)(i % 7) - 3, -(int32_t)(i % 5), i);
    ow_batch_del(&b, k, sizeof k);
  }
  assert_int_equal(ow_store_write(s, &b), 0);
  uint64_t entries = 0;
  assert_int_equal(ow_store_stat(s, &entries, NULL), 0);
  assert_int_equal(entries, N / 2 + 1);
  ow_buf last;
  ow_buf_init(&last);
  uint8_t p = OW_KEY_REGION;
  assert_int_equal(ow_store_scan(s, &p, 1, count_scan, &last), 0);
  /* Prefixes ending in 0xff bytes end where they should. */
  ow_batch_reset(&b);
  ow_batch_put(&b, "\xff\xff", 2, "a", 1);
  ow_batch_put(&b, "\xff\xff\x01", 3, "b", 1);
  ow_batch_put(&b, "\xff\xfe\xff", 3, "c", 1);
  assert_int_equal(ow_store_write(s, &b), 0);
  ow_buf got;
  ow_buf_init(&got);
  assert_int_equal(ow_store_scan(s, "\xff\xff", 2, count_scan, &got), 0);
  assert_int_equal(got.len, 3); /* the last key seen: \xff\xff\x01 */
  got.len = 0;
  assert_int_equal(ow_store_scan(s, "\xff", 1, count_scan, &got), 0);
  assert_memory_equal(got.data, "\xff\xff\x01", 3);
  ow_buf_deinit(&got);
  ow_buf_deinit(&last);
  ow_batch_deinit(&b);
  ow_store_close(s);
  ow_test_rmdir(dir);
}

static void test_uri_forms(void **state) {
  (void)state;
  const char *base = getenv("OW_TEST_PG");
  const char *port = strstr(base, "port=");
  assert_non_null(port);
  char uri[256], err[512] = "";
  snprintf(uri, sizeof uri, "postgresql://postgres@127.0.0.1:%d/postgres", atoi(port + 5));
  ow_store_options o = {0};
  ow_store *s;
  assert_int_equal(ow_store_open_uri(&s, uri, &o, err, sizeof err), 0);
  assert_string_equal(ow_store_scheme(s), "postgres");
  put1(s, "Murl", "1", 0);
  ow_store_close(s);
  /* No server there: refused at open, with libpq's reason. */
  assert_int_equal(ow_store_open_uri(&s, "postgres:host=127.0.0.1 port=1 connect_timeout=2", &o,
                                     err, sizeof err),
                   OW_E_STORE);
  assert_null(s);
  assert_true(strlen(err) > 0);
  assert_int_equal(ow_store_open_uri(&s, "postgres:", &o, err, sizeof err), OW_E_INVAL);
}

int main(void) {
  if (!getenv("OW_TEST_PG")) {
    fprintf(stderr, "unit_pg_store: run it under tests/pg/pg_env.sh (ctest -R pg_unit_pg)\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lost_commit_resolved),
      cmocka_unit_test(test_killed_connection_reconnects),
      cmocka_unit_test(test_serialization_failure_retryable),
      cmocka_unit_test(test_schema_version_refused),
      cmocka_unit_test(test_batches_chunks_pages),
      cmocka_unit_test(test_uri_forms),
      cmocka_unit_test(test_read_only),
      cmocka_unit_test(test_outage_retryable),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
