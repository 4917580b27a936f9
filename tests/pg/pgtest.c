/* Test support for the PostgreSQL store: under tests/pg/pg_env.sh (OW_TEST_PG set), every test
 * directory stands for its own schema in the throwaway server, so a test that opens a fresh
 * directory gets an empty store and one that reopens a directory finds what it wrote there. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* A schema name from the directory's path: FNV-1a, 64 bits, as hex (lower case, no quoting). */
static void schema_name(const char *dir, char out[24]) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = dir; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  snprintf(out, 24, "t%016llx", (unsigned long long)h);
}

char *ow_test_store_uri(const char *dir) {
  const char *base = getenv("OW_TEST_PG");
  if (!base || !*base) return NULL;
  char schema[24];
  schema_name(dir, schema);
  PGconn *c = PQconnectdb(base);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "pgtest: %s", PQerrorMessage(c));
    abort();
  }
  PQclear(PQexec(c, "SET client_min_messages = warning"));
  char sql[96];
  snprintf(sql, sizeof sql, "CREATE SCHEMA IF NOT EXISTS %s", schema);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    fprintf(stderr, "pgtest: %s", PQresultErrorMessage(r));
    abort();
  }
  PQclear(r);
  PQfinish(c);
  size_t n = strlen(base) + 96;
  char *uri = ow_malloc(n);
  snprintf(uri, n, "postgres:%s options=-csearch_path=%s", base, schema);
  return uri;
}
