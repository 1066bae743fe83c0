/*
 * migrate_part.h - online index changes of a non-transactional revision on
 * a partitioned table.
 *
 * PostgreSQL refuses CREATE INDEX CONCURRENTLY and DROP INDEX CONCURRENTLY
 * on a partitioned table (and its partitioned indexes), yet a revision
 * written for the plain layout uses them to change indexes with writers
 * running.  `convctl db` runs each statement of a non-transactional
 * revision through migrate_part_exec(), which, when the table (or index)
 * is partitioned, does what PostgreSQL's documentation prescribes instead:
 *
 *   CREATE [UNIQUE] INDEX CONCURRENTLY [IF NOT EXISTS] name ON t rest
 *     1. CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON ONLY t rest
 *        (the parent's index, invalid for now: a catalog change only);
 *     2. for each partition P of t that has no index attached to it yet:
 *        CREATE [UNIQUE] INDEX CONCURRENTLY P_suffix ON P rest (an index
 *        of that name left invalid by an interrupted run is dropped
 *        first, one left valid is reused), then
 *        ALTER INDEX name ATTACH PARTITION P_suffix; suffix is name
 *        without the "t_" prefix, so the history's
 *        simple_conversation_history_conversation_idx becomes
 *        simple_conversation_history_p0_conversation_idx on p0;
 *     3. with the last partition attached, PostgreSQL marks the parent's
 *        index valid.  A run that stops half way is finished by running
 *        the statement again.
 *   DROP INDEX CONCURRENTLY [IF EXISTS] name [CASCADE|RESTRICT]
 *     on a partitioned index: DROP INDEX [IF EXISTS] name ... (a catalog
 *     change under a short ACCESS EXCLUSIVE lock of the table and its
 *     partitions; PostgreSQL has no concurrent form).
 * Every other statement, and these on plain tables, run as written.
 */
#ifndef CONVD_MIGRATE_PART_H
#define CONVD_MIGRATE_PART_H

#include <stddef.h>

#include <libpq-fe.h>

#include "common.h"

enum migrate_part_kind {
	MIGRATE_PART_OTHER,	/* run as written */
	/* CREATE [UNIQUE] INDEX CONCURRENTLY name ON t */
	MIGRATE_PART_CREATE_INDEX,
	MIGRATE_PART_DROP_INDEX, /* DROP INDEX CONCURRENTLY name */
};

/* What a statement is, as byte ranges of it (pure). */
struct migrate_part_stmt {
	enum migrate_part_kind kind;
	bool unique;
	bool if_exists;		/* IF NOT EXISTS (create), IF EXISTS (drop) */
	size_t name_off, name_len;	/* the index, as written */
	size_t table_off, table_len;	/* create: the table, as written */
	size_t rest_off;	/* create: after the table; drop: after name */
};

/*
 * Recognises the two statements above in stmt[0..len) (comments and white
 * space anywhere between tokens, keywords in any case, names quoted or
 * not, the table schema-qualified or not).  A CREATE INDEX without a name
 * or with ONLY, a DROP INDEX of several indexes, and anything else are
 * MIGRATE_PART_OTHER.  Exported for tests/unit/test_migrate_part.c.
 */
void migrate_part_parse(const char *stmt, size_t len,
			struct migrate_part_stmt *out);

/*
 * Runs one statement (NUL-terminated) as PQexec would, doing the above on
 * a partitioned table.  Returns the result of the last statement run, or
 * of the first that failed (never NULL unless libpq is out of memory).
 */
PGresult *migrate_part_exec(PGconn *conn, const char *stmt);

#endif
