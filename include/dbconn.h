/*
 * dbconn.h - `convctl db`'s connection to PostgreSQL: blocking libpq, the
 * settings convd uses (dbconf), statements with and without parameters,
 * and the migration lock (CONVD_LOCK_MIGRATE).
 */
#ifndef CONVD_DBCONN_H
#define CONVD_DBCONN_H

#include "dbctx.h"

/*
 * Connects with the configuration and environment (dbconf), sets the
 * session up (no statement or lock timeout), finds the schema it works in
 * (c->nsp) and the history table's name in it (c->qhist), and who runs
 * (c->who).  Returns DBCTX_EX_OK, DBCTX_EX_CONN or DBCTX_EX_FAIL, the
 * reason said.
 */
CONVD_WUR int dbconn_open(struct dbctx *c);

/* Runs SQL without parameters / with text parameters: the result, or
 * NULL with the server's error in err. */
CONVD_WUR PGresult *dbconn_exec(struct dbctx *c, const char *sql, char *err,
				size_t errlen);
CONVD_WUR PGresult *dbconn_params(struct dbctx *c, const char *sql, int n,
				  const char *const *vals, char *err,
				  size_t errlen);
/* dbconn_exec without a result: 0, or -1 with err. */
CONVD_WUR int dbconn_ok(struct dbctx *c, const char *sql, char *err,
			size_t errlen);
/* ROLLBACK, whatever state the session is in. */
void dbconn_rollback(struct dbctx *c);

/*
 * Takes the migration lock (a session advisory lock), polling for up to
 * --lock-timeout seconds and naming who holds it.  Returns an exit status.
 */
CONVD_WUR int dbconn_lock(struct dbctx *c);

#endif
