/*
 * dbauthor.h - writing revisions: `migrate -m MSG` (by hand, or
 * --autogenerate from the schema model), `merge`, and `diff` (the database
 * against the model).
 *
 * Each command takes the run's context and returns the exit status (dbcmd.h).
 */
#ifndef CONVD_DBAUTHOR_H
#define CONVD_DBAUTHOR_H

#include "dbctx.h"

CONVD_WUR int dbauthor_migrate(struct dbctx *c);
CONVD_WUR int dbauthor_merge(struct dbctx *c);
CONVD_WUR int dbauthor_diff(struct dbctx *c);

#endif
