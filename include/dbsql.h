/*
 * dbsql.h - the SQL text `convctl db` writes (pure: no database): the
 * history table's DDL, the literals of its rows, and the scripts that
 * --sql prints in place of running a plan (as Alembic's offline mode).
 */
#ifndef CONVD_DBSQL_H
#define CONVD_DBSQL_H

#include <stdio.h>

#include "common.h"
#include "migrate.h"

/* Where and how a script is written. */
struct dbsql {
	FILE *f;
	const char *qhist;	/* the history table, as SQL names it */
	const char *who;	/* its rows' applied_by */
	bool offline;		/* no database: applied_by is current_user ||
				 * who, known only when the SQL runs */
	/* A string literal for s (malloc'd; NULL if out of memory); NULL:
	 * dbsql_literal.  A connection's own escaping goes here. */
	char *(*quote)(void *arg, const char *s);
	void *quote_arg;
};

/* CREATE TABLE IF NOT EXISTS of the history table (malloc'd, or NULL). */
CONVD_WUR char *dbsql_history_ddl(const char *qhist);
/* A revision's parents as a text[] literal's body: {a,b} (malloc'd). */
CONVD_WUR char *dbsql_parents_array(const struct migrate_rev *r);
/* A string literal that means s whatever standard_conforming_strings
 * says (E'' when it holds a backslash), for SQL written offline
 * (malloc'd, or NULL).  Exported for tests/unit/test_dbsql.c. */
CONVD_WUR char *dbsql_literal(const char *s);
/* s (NULL: '') as a literal through w's quoting (malloc'd, or NULL). */
CONVD_WUR char *dbsql_quote(const struct dbsql *w, const char *s);

/* A revision's SQL section as written, without trailing blank lines. */
void dbsql_section(FILE *f, const char *sql);
/* The INSERT of a history row (kind: applied, stamped, adopted). */
void dbsql_insert(const struct dbsql *w, const struct migrate_rev *rev,
		  const char *kind, bool dirty, const char *note);
/* Each revision of the plan, up or down, with its history change; a
 * transactional one between BEGIN and COMMIT, statements that lose data
 * marked "-- DESTRUCTIVE". */
void dbsql_plan(const struct dbsql *w, const struct migrate_set *set,
		const int *plan, int n, bool up);
/* The history table's DDL as a statement, after "-- comment" if given. */
void dbsql_history(const struct dbsql *w, const char *comment);

#endif
