/*
 * dbhist.h - the history table (SCHEMA_HISTORY_TABLE in the schema convctl
 * works in): creating and reading it, recording revisions in it, and what
 * it says of the revision set (applied, current, pending, problems).
 */
#ifndef CONVD_DBHIST_H
#define CONVD_DBHIST_H

#include "dbctx.h"

/* Problems that stop changes: dirty, missing files, changed files. */
struct dbhist_problems {
	int dirty, missing, changed;
};

/*
 * What every command does first: reads the revision set; with db,
 * connects, with lock takes the migration lock, and reads the history.
 * Returns an exit status.
 */
CONVD_WUR int dbhist_prepare(struct dbctx *c, bool db, bool lock);

/* Creates the history table (sets c->has_hist); -1 with err. */
CONVD_WUR int dbhist_create(struct dbctx *c, char *err, size_t errlen);
/* Reads the history table if it exists and marks c->applied.  Returns an
 * exit status. */
CONVD_WUR int dbhist_load(struct dbctx *c);
/* Forgets what was read (c->hist, c->applied). */
void dbhist_free(struct dbctx *c);
/* The history row of revision idx, or NULL. */
const struct dbctx_hist *dbhist_of(const struct dbctx *c, int idx);

/*
 * The live columns, types and keys against what the recorded revisions
 * promise (SCHEMA_VERIFY_QUERY, the check convd makes): each difference
 * goes to cb.  Returns the number of differences, -1 with err on failure.
 */
CONVD_WUR int dbhist_verify_schema(struct dbctx *c,
				   void (*cb)(void *arg, const char *msg),
				   void *arg, char *err, size_t errlen);

/* Counts the problems and calls cb (if not NULL) with each as a
 * sentence. */
void dbhist_problems(const struct dbctx *c, struct dbhist_problems *pr,
		     void (*cb)(void *arg, const char *msg), void *arg);
/* The same, each said as an error when print. */
void dbhist_problems_print(const struct dbctx *c, struct dbhist_problems *pr,
			   bool print);

/*
 * Before changing anything: dirty revisions and applied revisions whose
 * file is missing stop everything; changed files stop too unless
 * --accept-changed, which records the new checksums when record.
 * Returns an exit status.
 */
CONVD_WUR int dbhist_gate(struct dbctx *c, bool record);
/* If the database has no history table: fine when it is empty (the table
 * will be made), refused when it has legacy tables. */
CONVD_WUR int dbhist_require_managed(struct dbctx *c);

/* INSERT of a revision's history row (kind: applied, stamped, adopted). */
CONVD_WUR int dbhist_record(struct dbctx *c, const struct migrate_rev *rev,
			    const char *kind, int64_t ms, bool dirty,
			    const char *note, char *err, size_t errlen);
/* UPDATE/DELETE of one history row: head, the table and tail make the
 * statement; $1 is the revision, $2 an optional text (arg). */
CONVD_WUR int dbhist_change(struct dbctx *c, const char *head,
			    const char *tail, const char *rev,
			    const char *arg, char *err, size_t errlen);

/* Whether revision x is applied and none of its children is: one of the
 * database's current revisions. */
bool dbhist_is_current(const struct dbctx *c, int x);
/* "a, b" of the current revisions, or "base". */
void dbhist_current_text(const struct dbctx *c, char *buf, size_t len);
/* The number of revisions not applied. */
int dbhist_pending(const struct dbctx *c);
/* pending, dirty, changed, or the row's kind (applied, stamped,
 * adopted). */
const char *dbhist_state(const struct dbctx *c, int idx);

#endif
