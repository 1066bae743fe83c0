/*
 * dbapply.h - the commands that change what is applied (upgrade [TARGET |
 * FROM:TO --sql], downgrade, rollback [N], reset --yes, stamp TARGET, resolve
 * REV).
 *
 * Each command takes the run's context and returns the exit status (dbcmd.h).
 */
#ifndef CONVD_DBAPPLY_H
#define CONVD_DBAPPLY_H

#include "dbctx.h"

CONVD_WUR int dbapply_upgrade(struct dbctx *c);
CONVD_WUR int dbapply_downgrade(struct dbctx *c);
CONVD_WUR int dbapply_rollback(struct dbctx *c);
CONVD_WUR int dbapply_reset(struct dbctx *c);
CONVD_WUR int dbapply_stamp(struct dbctx *c);
CONVD_WUR int dbapply_resolve(struct dbctx *c);

#endif
