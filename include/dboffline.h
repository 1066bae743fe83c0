/*
 * dboffline.h - --sql: the SQL of a run printed instead of run, with the
 * connected server's quoting, or without a database for a range FROM:TO
 * (as Alembic's offline mode).  The text itself is dbsql's.
 */
#ifndef CONVD_DBOFFLINE_H
#define CONVD_DBOFFLINE_H

#include "dbctx.h"
#include "dbsql.h"
#include "migrate_adopt.h"

/* A script writer on stdout for this run (its history table, its user,
 * the connection's quoting when there is one). */
void dboffline_writer(struct dbctx *c, struct dbsql *w);
/* The adoption of a legacy database as revision r1, as SQL. */
void dboffline_adoption(struct dbctx *c, const struct migrate_adopt *a, int r1);
/*
 * upgrade/downgrade FROM:TO --sql: the SQL from FROM (base, head, heads or
 * a revision and its ancestors applied) to TO, written without a
 * database; the history table is named without a schema.  Returns an exit
 * status.
 */
CONVD_WUR int dboffline_range(struct dbctx *c, const char *range, bool up);

#endif
