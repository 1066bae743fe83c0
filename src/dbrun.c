/*
 * dbrun.c - running revisions against the database: one revision with
 * its history row and destructive-change guard, a plan, a rehearsal.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dbadopt.h"
#include "dbconn.h"
#include "dbhist.h"
#include "dbrun.h"
#include "migrate_catalog.h"
#include "migrate_part.h"
#include "migrate_sql.h"

/* Line in a section for a 1-based character position in it. */
static int pos_line(const char *sql, long pos)
{
	int line = 1;
	long chars = 0;

	for (const unsigned char *p = (const unsigned char *)sql;
	     *p && chars < pos - 1; p++) {
		if ((*p & 0xc0) != 0x80)
			chars++;
		if (*p == '\n')
			line++;
	}
	return line;
}

/* "FILE:LINE: message" for an error in a statement starting at line0. */
static void stmt_error(struct dbctx *c, PGresult *r,
		       const struct migrate_rev *rev, const char *stmt,
		       int line0, char *out, size_t outlen)
{
	const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
	int line = line0;

	if (pos)
		line += pos_line(stmt, strtol(pos, NULL, 10)) - 1;
	migrate_catalog_result_error(r, c->conn, out, outlen);
	if (rev->path)
		dbctx_err_prefix(out, outlen, "%s:%d: ", rev->path, line);
}

/* Runs statement st of a revision's section (its first line is line0);
 * -1 with "FILE:LINE: error" in err. */
static int run_stmt(struct dbctx *c, const struct migrate_rev *rev,
		    const char *sql, const struct migrate_sql_stmt *st,
		    int line0, char *err, size_t errlen)
{
	char *one = strndup(sql + st->off, st->len);
	ExecStatusType status;
	PGresult *r;

	if (!one) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* CREATE/DROP INDEX CONCURRENTLY on a partitioned table: partition
	 * by partition (migrate_part.h) */
	r = migrate_part_exec(c->conn, one);
	status = PQresultStatus(r);
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK &&
	    status != PGRES_EMPTY_QUERY) {
		stmt_error(c, r, rev, one, line0 + st->line - 1, err, errlen);
		PQclear(r);
		free(one);
		return -1;
	}
	PQclear(r);
	free(one);
	return 0;
}

static void print_findings(const char *rev, const struct migrate_sql_finding *f,
			   size_t n)
{
	for (size_t i = 0; i < n; i++)
		dbctx_error("revision %s %s: %s", rev,
			    migrate_sql_hazard_name(f[i].kind), f[i].what);
}

/*
 * One transactional revision, up or down, with its history row and the
 * destructive-change guard: in its own transaction, or in the caller's
 * (DBRUN_IN_TXN, DBRUN_REHEARSE: every check and the history row alike, the
 * caller commits or rolls back).
 */
int dbrun_transactional(struct dbctx *c, int idx, bool up,
			enum dbrun_how how, bool allow_destructive)
{
	bool rehearse = how == DBRUN_REHEARSE, own = how == DBRUN_OWN_TXN;
	const struct migrate_rev *rev = &c->set.revs[idx];
	const char *sql = up ? rev->up : rev->down;
	int line0 = up ? rev->up_line : rev->down_line;
	struct migrate_sql_cols before = {NULL, 0}, after = {NULL, 0};
	struct migrate_sql_finding *f = NULL;
	struct migrate_sql_stmt *st = NULL;
	size_t nf = 0, nst = 0;
	char err[DBCTX_ERRLEN] = "";
	usec_t t0;
	int64_t ms;

	if (migrate_sql_split(sql, &st, &nst, err, sizeof(err)) < 0) {
		dbctx_error("revision %s (%s): %s", rev->id,
			    rev->path ? rev->path : "", err);
		return DBCTX_EX_FAIL;
	}
	if (migrate_sql_txn_control(sql)) {
		dbctx_error("revision %s (%s:%d): a transactional revision "
			    "runs in convctl's own transaction and must not "
			    "begin or end one; remove the statement, or mark "
			    "the revision '-- transactional: no'", rev->id,
			    rev->path ? rev->path : "",
			    line0 + migrate_sql_txn_control(sql) - 1);
		free(st);
		return DBCTX_EX_FAIL;
	}
	if (own && dbconn_ok(c, "BEGIN", err, sizeof(err)) < 0)
		goto fail;
	if (migrate_catalog_columns(c->conn, &before, err, sizeof(err)) < 0)
		goto fail;
	t0 = clock_mono_usec();
	/* Statement by statement (in the one transaction), so that an
	 * error names its file and line. */
	for (size_t i = 0; i < nst; i++)
		if (run_stmt(c, rev, sql, &st[i], line0, err, sizeof(err)) < 0)
			goto fail;
	ms = (clock_mono_usec() - t0) / 1000;
	if (migrate_catalog_columns(c->conn, &after, err, sizeof(err)) < 0 ||
	    migrate_sql_guard_compare(&before, &after, &f, &nf) < 0) {
		if (!err[0])
			snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (nf > 0) {
		if (allow_destructive) {
			for (size_t i = 0; i < nf; i++)
				dbctx_warn("revision %s %s: %s", rev->id,
					   migrate_sql_hazard_name(f[i].kind),
					   f[i].what);
		} else {
			print_findings(rev->id, f, nf);
			snprintf(err, sizeof(err),
				 "it is destructive: nothing was changed; run "
				 "again with --allow-destructive to accept "
				 "the loss");
			goto fail;
		}
	}
	if (up ? dbhist_record(c, rev, "applied", ms, false, NULL, err,
			       sizeof(err)) < 0
	       : dbhist_change(c, "DELETE FROM ", " WHERE revision = $1",
			       rev->id, NULL, err, sizeof(err)) < 0)
		goto fail;
	if (own && dbconn_ok(c, "COMMIT", err, sizeof(err)) < 0)
		goto fail;
	migrate_sql_cols_free(&before);
	migrate_sql_cols_free(&after);
	free(f);
	free(st);
	if (!c->json || !rehearse) {
		char *m = dbctx_oneline(rev->message);

		printf("%s %s: %s (%" PRId64 " ms)\n",
		       rehearse ? (up ? "would apply" : "would revert")
				: (up ? "applied" : "reverted"),
		       rev->id, m, ms);
		free(m);
	}
	return DBCTX_EX_OK;
fail:
	if (own)
		dbconn_rollback(c);
	migrate_sql_cols_free(&before);
	migrate_sql_cols_free(&after);
	free(f);
	free(st);
	dbctx_error("revision %s %s: %s", rev->id,
		    rehearse ? "would fail" : (up ? "failed" : "failed to revert"),
		    err);
	return DBCTX_EX_FAIL;
}

/*
 * A non-transactional revision: marked dirty first (committed), each
 * statement on its own, then marked clean.  On failure it stays dirty.
 */
/*
 * The checks made before a non-transactional revision runs (it splits,
 * and it is not destructive unless allowed); *st gets its statements
 * when st is not NULL.
 */
static int nontx_check(const struct migrate_rev *rev, bool up,
		       bool allow_destructive, struct migrate_sql_stmt **st,
		       size_t *nst)
{
	const char *sql = up ? rev->up : rev->down;
	struct migrate_sql_stmt *st1 = NULL;
	struct migrate_sql_finding *f = NULL;
	size_t nst1 = 0, nf = 0;
	char err[DBCTX_ERRLEN];

	if (migrate_sql_split(sql, &st1, &nst1, err, sizeof(err)) < 0 ||
	    migrate_sql_scan(sql, &f, &nf, err, sizeof(err)) < 0) {
		dbctx_error("revision %s: %s", rev->id, err);
		free(st1);
		return DBCTX_EX_FAIL;
	}
	if (nf > 0 && !allow_destructive) {
		print_findings(rev->id, f, nf);
		dbctx_error("revision %s is destructive: nothing was changed; "
			    "run again with --allow-destructive to accept the "
			    "loss", rev->id);
		free(st1);
		free(f);
		return DBCTX_EX_FAIL;
	}
	free(f);
	if (st) {
		*st = st1;
		*nst = nst1;
	} else {
		free(st1);
	}
	return DBCTX_EX_OK;
}

int dbrun_nontransactional(struct dbctx *c, int idx, bool up,
			   bool allow_destructive)
{
	const struct migrate_rev *rev = &c->set.revs[idx];
	const char *sql = up ? rev->up : rev->down;
	int line0 = up ? rev->up_line : rev->down_line;
	struct migrate_sql_stmt *st = NULL;
	size_t nst = 0;
	char err[DBCTX_ERRLEN], msbuf[32];
	usec_t t0 = clock_mono_usec();

	if (nontx_check(rev, up, allow_destructive, &st, &nst) != DBCTX_EX_OK)
		return DBCTX_EX_FAIL;
	if (up ? dbhist_record(c, rev, "applied", 0, true,
			       "running (non-transactional)", err,
			       sizeof(err)) < 0
	       : dbhist_change(c, "UPDATE ", " SET dirty = true, note = $2 "
			       "WHERE revision = $1", rev->id,
			       "reverting (non-transactional)", err,
			       sizeof(err)) < 0) {
		dbctx_error("revision %s: %s", rev->id, err);
		free(st);
		return DBCTX_EX_FAIL;
	}
	for (size_t i = 0; i < nst; i++) {
		char note[DBCTX_ERRLEN + 64], e2[DBCTX_ERRLEN];

		if (run_stmt(c, rev, sql, &st[i], line0, err,
			     sizeof(err)) < 0) {
			free(st);
			snprintf(note, sizeof(note), "%s failed at statement "
				 "%zu: %s", up ? "upgrade" : "downgrade", i + 1,
				 err);
			if (dbhist_change(c, "UPDATE ",
					  " SET note = $2 WHERE revision = $1",
					  rev->id, note, e2, sizeof(e2)) < 0)
				dbctx_error("cannot record the failure: %s",
					    e2);
			dbctx_error("revision %s (non-transactional) failed at "
				    "statement %zu: %s",
				    rev->id, i + 1, err);
			dbctx_error("revision %s is now marked dirty and "
				    "stops later runs: repair the database by "
				    "hand, then run 'convctl db resolve %s "
				    "--applied' or 'convctl db resolve %s "
				    "--rolled-back'", rev->id, rev->id,
				    rev->id);
			return DBCTX_EX_FAIL;
		}
	}
	free(st);
	snprintf(msbuf, sizeof(msbuf), "%" PRId64,
		 (int64_t)((clock_mono_usec() - t0) / 1000));
	if (up ? dbhist_change(c, "UPDATE ", " SET dirty = false, note = "
			       "NULL, applied_at = now(), duration_ms = "
			       "$2::bigint WHERE revision = $1", rev->id, msbuf,
			       err, sizeof(err)) < 0
	       : dbhist_change(c, "DELETE FROM ", " WHERE revision = $1",
			       rev->id, NULL, err, sizeof(err)) < 0) {
		dbctx_error("revision %s ran but cannot be recorded: %s",
			    rev->id, err);
		return DBCTX_EX_FAIL;
	}
	{
		char *m = dbctx_oneline(rev->message);

		printf("%s %s: %s (%s ms, non-transactional)\n",
		       up ? "applied" : "reverted", rev->id, m, msbuf);
		free(m);
	}
	return DBCTX_EX_OK;
}

/*
 * Before running anything: statements that certainly lose data (DROP
 * TABLE, DROP COLUMN, DROP SCHEMA, TRUNCATE) stop the whole plan unless
 * allowed.  Type changes are left to the guard, which knows whether they
 * narrow.
 */
static int precheck_destructive(struct dbctx *c, const int *plan, int n,
				bool up)
{
	int bad = 0;

	for (int i = 0; i < n; i++) {
		const struct migrate_rev *rev = &c->set.revs[plan[i]];
		struct migrate_sql_finding *f = NULL;
		size_t nf = 0;
		char err[DBCTX_ERRLEN];

		if (migrate_sql_scan(up ? rev->up : rev->down, &f, &nf, err,
				     sizeof(err)) < 0) {
			dbctx_error("revision %s (%s): %s", rev->id,
				    rev->path ? rev->path : "", err);
			return DBCTX_EX_FAIL;
		}
		for (size_t k = 0; k < nf; k++) {
			if (f[k].kind == MIGRATE_SQL_TYPE_CHANGE)
				continue;
			dbctx_error("revision %s %s: %s", rev->id,
				    migrate_sql_hazard_name(f[k].kind),
				    f[k].what);
			bad++;
		}
		free(f);
	}
	if (bad) {
		dbctx_error("destructive: nothing was changed; run again with "
			    "--allow-destructive to accept the loss");
		return DBCTX_EX_FAIL;
	}
	return DBCTX_EX_OK;
}

int dbrun_plan(struct dbctx *c, const int *plan, int n, bool up,
	       bool allow_destructive)
{
	if (!allow_destructive) {
		int rc = precheck_destructive(c, plan, n, up);

		if (rc != DBCTX_EX_OK)
			return rc;
	}
	for (int i = 0; i < n; i++) {
		const struct migrate_rev *rev = &c->set.revs[plan[i]];
		int rc = rev->transactional
				 ? dbrun_transactional(c, plan[i], up,
						       DBRUN_OWN_TXN,
						       allow_destructive)
				 : dbrun_nontransactional(c, plan[i], up,
							  allow_destructive);

		if (rc != DBCTX_EX_OK) {
			if (i > 0)
				dbctx_error("stopped: %d revision%s before %s "
					    "%s done and stay%s so", i,
					    i == 1 ? "" : "s", rev->id,
					    i == 1 ? "is" : "are",
					    i == 1 ? "s" : "");
			else
				dbctx_error("stopped: nothing was changed");
			return rc;
		}
	}
	return DBCTX_EX_OK;
}

/*
 * The statements of revisions that will not be rehearsed are still read
 * and checked as the real run would before running them.
 */
static int static_check(struct dbctx *c, int idx, bool up,
			bool allow_destructive)
{
	const struct migrate_rev *rev = &c->set.revs[idx];
	const char *sql = up ? rev->up : rev->down;
	struct migrate_sql_stmt *st = NULL;
	size_t nst = 0;
	char err[DBCTX_ERRLEN];
	int line;

	if (!rev->transactional)
		return nontx_check(rev, up, allow_destructive, NULL, NULL);
	if (migrate_sql_split(sql, &st, &nst, err, sizeof(err)) < 0) {
		dbctx_error("revision %s (%s): %s", rev->id,
			    rev->path ? rev->path : "", err);
		return DBCTX_EX_FAIL;
	}
	free(st);
	line = migrate_sql_txn_control(sql);
	if (line) {
		dbctx_error("revision %s (%s:%d): a transactional revision "
			    "must not begin or end a transaction", rev->id,
			    rev->path ? rev->path : "",
			    (up ? rev->up_line : rev->down_line) + line - 1);
		return DBCTX_EX_FAIL;
	}
	return DBCTX_EX_OK;
}

int dbrun_rehearse(struct dbctx *c, const int *plan, int n, bool up,
		   struct migrate_adopt *ma, bool allow_destructive)
{
	char err[DBCTX_ERRLEN];
	int done = 0, rc = DBCTX_EX_OK, stop = -1;
	bool had_hist = c->has_hist;

	if (!allow_destructive) {
		rc = precheck_destructive(c, plan, n, up);
		if (rc != DBCTX_EX_OK)
			return rc;
	}
	if (dbconn_ok(c, "BEGIN", err, sizeof(err)) < 0) {
		dbctx_error("%s", err);
		return DBCTX_EX_FAIL;
	}
	if (ma && dbadopt_run(c, ma, true) != DBCTX_EX_OK) {
		dbconn_rollback(c);
		c->has_hist = had_hist;
		return DBCTX_EX_FAIL;
	}
	if (n > 0 && !c->has_hist && dbhist_create(c, err, sizeof(err)) < 0) {
		dbctx_error("cannot create %s: %s", c->qhist, err);
		rc = DBCTX_EX_FAIL;
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		const struct migrate_rev *rev = &c->set.revs[plan[i]];

		if (!rev->transactional) {
			stop = i;
			break;
		}
		if (dbrun_transactional(c, plan[i], up, DBRUN_REHEARSE,
					allow_destructive) != DBCTX_EX_OK) {
			rc = DBCTX_EX_FAIL;
			break;
		}
		done++;
	}
	dbconn_rollback(c);
	c->has_hist = had_hist;
	if (stop >= 0) {
		const struct migrate_rev *rev = &c->set.revs[plan[stop]];

		for (int i = stop; i < n; i++)
			if (static_check(c, plan[i], up, allow_destructive) !=
			    DBCTX_EX_OK)
				rc = DBCTX_EX_FAIL;
		dbctx_error("revision %s is non-transactional: it cannot run "
			    "in the rehearsal's transaction, so the rehearsal "
			    "cannot tell whether it and the %d revision%s "
			    "after it would %s (their SQL was read and "
			    "checked, not run)", rev->id, n - stop - 1,
			    n - stop - 1 == 1 ? "" : "s",
			    up ? "apply" : "revert");
		rc = DBCTX_EX_FAIL;
	}
	printf("rehearsal: %d of %d revision%s would %s; everything was "
	       "rolled back\n",
	       done, n, n == 1 ? "" : "s", up ? "apply" : "revert");
	return rc;
}
