/*
 * migrate_sql.h - what `convctl db` needs to know about SQL text, and the
 * destructive-change guard (pure).
 *
 * The lexer knows PostgreSQL's comments (-- and nested block comments),
 * strings ('', E'', U&'', B'', X''), quoted identifiers and dollar quotes,
 * so that statements are split where PostgreSQL would split them.
 */
#ifndef CONVD_MIGRATE_SQL_H
#define CONVD_MIGRATE_SQL_H

#include "common.h"

struct migrate_sql_stmt {
	size_t off, len;	/* the statement without its ';' */
	int line;		/* 1-based line of its first token */
};

/*
 * Splits sql into statements at the semicolons psql would split at (not
 * inside strings, comments, parentheses or BEGIN ATOMIC ... END bodies);
 * empty statements are dropped.  An unterminated string, identifier or
 * comment is an error.
 */
CONVD_WUR int migrate_sql_split(const char *sql, struct migrate_sql_stmt **out,
				size_t *n, char *err, size_t errlen);

/*
 * The line of the first statement that starts or ends a transaction
 * (BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK but not ROLLBACK TO,
 * ABORT, PREPARE TRANSACTION), or 0 when there is none (or sql does not
 * lex).  A transactional revision runs inside convctl's own transaction,
 * so such statements would break it.
 */
int migrate_sql_txn_control(const char *sql);

/* True if sql holds nothing but white space and comments (or is NULL).
 * Exported for tests/unit/test_migrate.c. */
bool migrate_sql_is_empty(const char *sql);

enum migrate_sql_hazard {
	MIGRATE_SQL_DROP_TABLE,
	MIGRATE_SQL_DROP_SCHEMA,
	MIGRATE_SQL_DROP_COLUMN,
	MIGRATE_SQL_TRUNCATE,
	MIGRATE_SQL_TYPE_CHANGE,	/* static scan: may narrow */
	MIGRATE_SQL_TYPE_NARROWING,	/* guard: does narrow */
};

struct migrate_sql_finding {
	enum migrate_sql_hazard kind;
	int line;		/* static scan: line in the section; else 0 */
	char what[256];
};

/* "drops a table", ... */
const char *migrate_sql_hazard_name(enum migrate_sql_hazard h);

/*
 * Static scan for destructive statements: DROP TABLE, DROP SCHEMA,
 * ALTER TABLE ... DROP [COLUMN], TRUNCATE, ALTER TABLE ... ALTER COLUMN
 * ... TYPE (may narrow).  Function bodies (dollar quotes) are not looked
 * into.  *out is malloc'd (NULL when none).
 */
CONVD_WUR int migrate_sql_scan(const char *sql,
			       struct migrate_sql_finding **out,
			       size_t *n, char *err, size_t errlen);

/*
 * True if changing a column from (oldoid, oldmod) to (newoid, newmod)
 * keeps every value: a longer varchar, int to bigint, timestamp to
 * timestamptz, anything to text, ...  Unknown changes count as narrowing.
 */
bool migrate_sql_type_change_safe(uint32_t oldoid, int32_t oldmod,
				  uint32_t newoid, int32_t newmod);

/*
 * The guard: the user columns of the database before and after a revision
 * ran (in its transaction), sorted by (relid, attnum); every table has an
 * entry with attnum 0 and no column.
 */
struct migrate_sql_col {
	uint32_t relid;
	int attnum;
	char *table;		/* schema-qualified, quoted */
	char *column;		/* NULL for the table entry */
	uint32_t typid;
	int32_t typmod;
	char *type;		/* format_type */
};

struct migrate_sql_cols {
	struct migrate_sql_col *v;
	size_t n;
};

void migrate_sql_cols_free(struct migrate_sql_cols *c);

/* Dropped tables, dropped columns and narrowed types, in *out. */
CONVD_WUR int migrate_sql_guard_compare(const struct migrate_sql_cols *before,
					const struct migrate_sql_cols *after,
					struct migrate_sql_finding **out,
					size_t *n);

#endif
