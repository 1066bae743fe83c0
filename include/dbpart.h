/*
 * dbpart.h - `convctl db partition` and `db setup --layout partitioned`:
 * the time-partitioned history layout (native declarative partitioning,
 * RANGE on created_at, one partition per UTC month) and the online,
 * resumable conversion of a plain history table to it.
 *
 * The layout, in the schema convctl db manages:
 *   simple_conversation_history         partitioned, PRIMARY KEY
 *                                       (id, created_at); the same columns
 *                                       and indexes as the plain table
 *   simple_conversation_history_p0      FROM (MINVALUE) TO (the first
 *                                       month after the conversion): the
 *                                       former table, or an empty one
 *   simple_conversation_history_pYYYYMM one per month, made ahead of time
 *   simple_conversation_history_keys    (user_id, platform, idempotency_key)
 *                                       PRIMARY KEY, id, created_at: the
 *                                       uniqueness of idempotency keys,
 *                                       which a unique index of a
 *                                       partitioned table cannot give
 *                                       without created_at
 * and the functions convd calls: DBPART_PREMAKE_FN (partitions ahead) and
 * DBPART_DROP_FN (retention: drops the partitions wholly older than the
 * cut-off with their keys).  Triggers keep the key table in step with
 * every insert and delete (see dbpart.c).
 */
#ifndef CONVD_DBPART_H
#define CONVD_DBPART_H

#include <stdio.h>

#include <libpq-fe.h>

#include "common.h"
#include "consts.h"

/* Months made ahead of the current one, by setup and by convd's timer. */
#define DBPART_AHEAD 3

/* SELECT DBPART_PREMAKE_FN(months) -> partitions made */
#define DBPART_PREMAKE_FN "convd_history_premake"
/* SELECT DBPART_DROP_FN(cutoff timestamptz) -> rows the dropped partitions
 * held */
#define DBPART_DROP_FN "convd_history_drop_expired"

/* A boolean: whether the history table is the partitioned layout with
 * its functions (safe on either layout); and the query of it alone. */
#define DBPART_IS_PARTITIONED_EXPR                                         \
	"(coalesce((SELECT relkind = 'p' FROM pg_class WHERE oid ="        \
	" to_regclass('" CONVD_T_HISTORY "')), false)"                     \
	" AND to_regprocedure('" DBPART_DROP_FN "(timestamptz)') IS NOT NULL)"
#define DBPART_IS_PARTITIONED_QUERY "SELECT " DBPART_IS_PARTITIONED_EXPR

/*
 * Converts the history table of conn's current schema to the partitioned
 * layout, or finishes a conversion that was interrupted; on the
 * partitioned layout, makes the partitions ahead.  Writers may run all
 * along: only the key back-fill batches (SHARE lock, one batch each) and
 * the final swap (ACCESS EXCLUSIVE) make them wait, each lock waited for
 * 2 s at a time and tried again for lock_timeout_s in all.
 * Steps are printed to out.  Returns 0 or -1 with err set.
 */
CONVD_WUR int dbpart_convert(PGconn *conn, long lock_timeout_s, FILE *out,
			     char *err, size_t errlen);

#endif
