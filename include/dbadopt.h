/*
 * dbadopt.h - adopting a legacy database (the seed's tables, with or
 * without Alembic) as the first revision: the steps that bring its tables
 * to that revision, every row compared before and after, the schema
 * compared with the revision's, all in one transaction.
 */
#ifndef CONVD_DBADOPT_H
#define CONVD_DBADOPT_H

#include "dbctx.h"
#include "migrate_adopt.h"

/* Runs the adoption a (migrate_adopt_inspect's); rehearse: in the caller's
 * transaction, which the caller rolls back.  Returns an exit status. */
CONVD_WUR int dbadopt_run(struct dbctx *c, struct migrate_adopt *a,
			  bool rehearse);

#endif
