/*
 * dbcheck.h - `convctl db check` (connection, server, the database against
 * the revisions) and `convctl db verify` (the files, graph, checksums and
 * destructive statements).
 *
 * Each command takes the run's context and returns the exit status (dbcmd.h).
 */
#ifndef CONVD_DBCHECK_H
#define CONVD_DBCHECK_H

#include "dbctx.h"

CONVD_WUR int dbcheck_check(struct dbctx *c);
CONVD_WUR int dbcheck_verify(struct dbctx *c);

#endif
