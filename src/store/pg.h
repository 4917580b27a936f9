/*
 * store/pg: the keyspace in a PostgreSQL (or CockroachDB) table reached through libpq, for worlds
 * whose state must outlive one machine. A batch is one SERIALIZABLE transaction sent in pipeline
 * mode; dropped connections are reconnected and a commit whose outcome was lost is resolved by
 * reading the store's own commit number back (docs/storage.md, "PostgreSQL").
 */
#ifndef OW_STORE_PG_H
#define OW_STORE_PG_H

#include "store/store.h"

/* Opens the store in the database that `conninfo` names (a libpq keyword=value string or a
 * postgres:// / postgresql:// URL), creating its tables on first use. A store written with another
 * schema version returns OW_E_VERSION; an unreachable server or a refused login OW_E_STORE. On
 * failure err (may be NULL) holds a message naming the cause. The caller owns *out. */
int ow_store_pg_open(ow_store **out, const char *conninfo, const ow_store_options *opt, char *err,
                     size_t errlen);

/* Tests only: the next write drops its connection at a chosen point, to make its outcome unknown
 * to the store: OW_PG_DROP_BEFORE_COMMIT (the server never gets COMMIT: nothing is written) or
 * OW_PG_DROP_AFTER_COMMIT (COMMIT reached the server, its reply is never read). The write must
 * still report the truth. s must be a PostgreSQL store. */
enum { OW_PG_DROP_NONE = 0, OW_PG_DROP_BEFORE_COMMIT = 1, OW_PG_DROP_AFTER_COMMIT = 2 };
void ow_store_pg_test_drop(ow_store *s, int when);
/* Tests only: writes committed by this handle (its commit number). */
uint64_t ow_store_pg_commits(const ow_store *s);

#endif
