/*
 * migrate_catalog.h - reading schemas out of PostgreSQL's catalog (libpq,
 * blocking) for `convctl db diff`, autogenerate, adoption checks and the
 * destructive-change guard.
 */
#ifndef CONVD_MIGRATE_CATALOG_H
#define CONVD_MIGRATE_CATALOG_H

#include <libpq-fe.h>

#include "common.h"
#include "migrate_diff.h"
#include "migrate_sql.h"

/*
 * Reads the tables, columns, constraints, indexes, enums and sequences of
 * schema nsp, except table `exclude` (may be NULL) and objects belonging
 * to extensions.  Sets the transaction's search_path to nsp first (so the
 * caller must be in a transaction), so deparsed text carries no schema.
 */
CONVD_WUR int migrate_catalog_load(PGconn *conn, const char *nsp,
				   const char *exclude,
				   struct migrate_diff_schema *out, char *err,
				   size_t errlen);

/*
 * Runs sql (a schema model or a revision's up SQL) in a fresh scratch
 * schema, with search_path "scratch, nsp", and reads the result.  Must run
 * inside a transaction; it uses a savepoint and rolls back to it, so
 * nothing stays behind.  On an SQL error err holds the server's message.
 */
CONVD_WUR int migrate_catalog_load_sql(PGconn *conn, const char *sql,
				       const char *nsp, const char *exclude,
				       struct migrate_diff_schema *out,
				       char *err, size_t errlen);

/* The columns of every user table of the database (for the guard). */
CONVD_WUR int migrate_catalog_columns(PGconn *conn,
				      struct migrate_sql_cols *out,
				      char *err, size_t errlen);

/* The first existing schema of the search_path (malloc'd). */
CONVD_WUR int migrate_catalog_current_schema(PGconn *conn, char **out,
					     char *err,
					     size_t errlen);

/* "message (SQLSTATE) DETAIL/HINT" of a failed result, in buf. */
void migrate_catalog_result_error(const PGresult *res, PGconn *conn, char *buf,
				  size_t len);

#endif
