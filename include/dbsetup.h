/*
 * dbsetup.h - `convctl db setup` (history table, adoption of a legacy
 * database, upgrade to head, --layout partitioned) and `convctl db partition`.
 *
 * Each command takes the run's context and returns the exit status (dbcmd.h).
 */
#ifndef CONVD_DBSETUP_H
#define CONVD_DBSETUP_H

#include "dbctx.h"

CONVD_WUR int dbsetup_setup(struct dbctx *c);
CONVD_WUR int dbsetup_partition(struct dbctx *c);

#endif
