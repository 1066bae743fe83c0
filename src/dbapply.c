/*
 * dbapply.c - the commands that change what is applied: upgrade,
 * downgrade, rollback, reset, stamp, resolve.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbapply.h"
#include "dbbackup.h"
#include "dbconn.h"
#include "dbhist.h"
#include "dboffline.h"
#include "dbrun.h"
#include "dbsql.h"

/*
 * Shows (--sql), rehearses (--try) or runs a computed plan: `up` for an
 * upgrade, else a downgrade.  Frees plan.
 */
static int execute_plan(struct dbctx *c, int *plan, int n, bool up,
			const char *target_text, bool allow_destructive)
{
	char err[DBCTX_ERRLEN], cur[512];
	bool sql = c->o.given & DBCTX_O_SQL, try_ = c->o.given & DBCTX_O_TRY;
	struct dbsql w;
	int rc;

	dbhist_current_text(c, cur, sizeof(cur));
	if (n == 0) {
		printf("nothing to do: the database is at %s\n", cur);
		rc = DBCTX_EX_OK;
	} else if (sql) {
		printf("-- convctl db %s %s: %d revision%s from %s\n",
		       up ? "upgrade" : "downgrade", target_text, n,
		       n == 1 ? "" : "s", cur);
		dboffline_writer(c, &w);
		if (up && !c->has_hist)
			dbsql_history(&w, "the history table");
		dbsql_plan(&w, &c->set, plan, n, up);
		rc = DBCTX_EX_OK;
	} else if (try_) {
		rc = dbbackup_check(c);
		if (rc == DBCTX_EX_OK)
			rc = dbrun_rehearse(c, plan, n, up, NULL,
					    allow_destructive);
	} else {
		rc = dbbackup_run(c);
		if (rc == DBCTX_EX_OK && up && !c->has_hist &&
		    dbhist_create(c, err, sizeof(err)) < 0) {
			dbctx_error("cannot create %s: %s", c->qhist, err);
			rc = DBCTX_EX_FAIL;
		}
		if (rc == DBCTX_EX_OK)
			rc = dbrun_plan(c, plan, n, up, allow_destructive);
	}
	free(plan);
	return rc;
}

static int do_upgrade(struct dbctx *c, const char *target_text)
{
	struct migrate_target t;
	int *plan, n = 0, rc;
	bool sql = c->o.given & DBCTX_O_SQL, try_ = c->o.given & DBCTX_O_TRY;

	rc = dbctx_parse_target(c, target_text, &t);
	if (rc != DBCTX_EX_OK)
		return rc;
	rc = dbhist_require_managed(c);
	if (rc != DBCTX_EX_OK)
		return rc;
	rc = dbhist_gate(c, !sql && !try_);
	if (rc != DBCTX_EX_OK)
		return rc;
	plan = dbctx_plan(c, true, c->applied, &t, &n);
	if (!plan)
		return DBCTX_EX_FAIL;
	return execute_plan(c, plan, n, true, target_text,
			    c->o.given & DBCTX_O_ALLOW_DESTRUCTIVE);
}

static int do_downgrade(struct dbctx *c, const struct migrate_target *t,
			const char *target_text, bool allow_destructive)
{
	int *plan, n = 0, rc;
	bool sql = c->o.given & DBCTX_O_SQL, try_ = c->o.given & DBCTX_O_TRY;

	if (!c->has_hist) {
		printf("nothing to do: nothing is applied (no history "
		       "table)\n");
		return DBCTX_EX_OK;
	}
	rc = dbhist_gate(c, !sql && !try_);
	if (rc != DBCTX_EX_OK)
		return rc;
	plan = dbctx_plan(c, false, c->applied, t, &n);
	if (!plan)
		return DBCTX_EX_FAIL;
	return execute_plan(c, plan, n, false, target_text, allow_destructive);
}

int dbapply_upgrade(struct dbctx *c)
{
	bool lock = !(c->o.given & DBCTX_O_SQL);
	int rc;

	if (c->o.nargs > 0 && strchr(c->o.args[0], ':'))
		return dboffline_range(c, c->o.args[0], true);
	rc = dbhist_prepare(c, true, lock);
	if (rc != DBCTX_EX_OK)
		return rc;
	return do_upgrade(c, c->o.nargs > 0 ? c->o.args[0] : "head");
}

int dbapply_downgrade(struct dbctx *c)
{
	bool lock = !(c->o.given & DBCTX_O_SQL);
	struct migrate_target t;
	int rc;

	if (strchr(c->o.args[0], ':'))
		return dboffline_range(c, c->o.args[0], false);
	rc = dbhist_prepare(c, true, lock);
	if (rc != DBCTX_EX_OK)
		return rc;
	rc = dbctx_parse_target(c, c->o.args[0], &t);
	if (rc != DBCTX_EX_OK)
		return rc;
	return do_downgrade(c, &t, c->o.args[0],
			    c->o.given & DBCTX_O_ALLOW_DESTRUCTIVE);
}

int dbapply_rollback(struct dbctx *c)
{
	bool lock = !(c->o.given & DBCTX_O_SQL);
	struct migrate_target t = {MIGRATE_TARGET_RELATIVE, 0, -1};
	char text[32];
	int rc;

	if (c->o.nargs > 0) {
		char *end;
		long v;

		errno = 0;
		v = strtol(c->o.args[0], &end, 10);
		if (errno || *end || end == c->o.args[0] || v < 1 ||
		    v > MIGRATE_REV_MAX_REVISIONS) {
			dbctx_error("rollback takes a count from 1 to %d, not "
				    "'%s'", MIGRATE_REV_MAX_REVISIONS,
				    c->o.args[0]);
			return DBCTX_EX_USAGE;
		}
		t.n = -(int)v;
	}
	rc = dbhist_prepare(c, true, lock);
	if (rc != DBCTX_EX_OK)
		return rc;
	snprintf(text, sizeof(text), "%d", t.n);
	return do_downgrade(c, &t, text,
			    c->o.given & DBCTX_O_ALLOW_DESTRUCTIVE);
}

/*
 * Runs steps [from, to) of a reset, each transactional: in one transaction.
 * Returns the index of the step that failed, or -1.
 */
static int reset_group(struct dbctx *c, const int *steps, const bool *up,
		       int from, int to)
{
	char err[DBCTX_ERRLEN];

	if (dbconn_ok(c, "BEGIN", err, sizeof(err)) < 0) {
		dbctx_error("%s", err);
		return from;
	}
	if (!c->has_hist && dbhist_create(c, err, sizeof(err)) < 0) {
		dbctx_error("cannot create %s: %s", c->qhist, err);
		dbconn_rollback(c);
		c->has_hist = false;
		return from;
	}
	for (int i = from; i < to; i++) {
		if (dbrun_transactional(c, steps[i], up[i], DBRUN_IN_TXN,
					true) !=
		    DBCTX_EX_OK) {
			dbconn_rollback(c);
			return i;
		}
	}
	if (dbconn_ok(c, "COMMIT", err, sizeof(err)) < 0) {
		dbctx_error("%s", err);
		return to - 1;
	}
	return -1;
}

/*
 * Down to base, then every revision up again (all heads).  When every
 * revision is transactional, the whole reset is one transaction; a
 * non-transactional revision cannot share one, so the steps around it run
 * in groups, and a failure names the step where the reset stopped and
 * what was committed before it.  Running reset again finishes the job.
 */
int dbapply_reset(struct dbctx *c)
{
	struct migrate_target base = {MIGRATE_TARGET_BASE, 0, 0};
	struct migrate_target heads = {MIGRATE_TARGET_HEADS, 0, 0};
	char err[DBCTX_ERRLEN], cur[512];
	int *steps = NULL, ndown = 0, nup = 0, n, failed = -1, committed = 0;
	bool *up = NULL, *none = NULL;
	int rc;

	if (!(c->o.given & DBCTX_O_YES)) {
		dbctx_error("reset reverts every revision (deleting all "
			    "data) and applies them again: run 'convctl db "
			    "reset --yes' to confirm");
		return DBCTX_EX_FAIL;
	}
	if (!c->cfg.migrations.allow_reset) {
		dbctx_error("reset is refused: the configuration does not "
			    "allow destructive commands (set [migrations] "
			    "allow_reset = yes, on development databases "
			    "only)");
		return DBCTX_EX_FAIL;
	}
	rc = dbhist_prepare(c, true, true);
	if (rc != DBCTX_EX_OK)
		return rc;
	rc = dbhist_require_managed(c);
	if (rc != DBCTX_EX_OK)
		return rc;
	rc = dbhist_gate(c, true);
	if (rc != DBCTX_EX_OK)
		return rc;
	steps = malloc(sizeof(int) * (2 * (size_t)c->set.n + 1));
	up = calloc(2 * (size_t)c->set.n + 1, sizeof(bool));
	none = calloc((size_t)c->set.n + 1, sizeof(bool));
	if (!steps || !up || !none) {
		dbctx_error("out of memory");
		rc = DBCTX_EX_FAIL;
		goto out;
	}
	/* Both plans first: nothing runs unless all of it can. */
	if ((c->has_hist &&
	     migrate_plan_downgrade(&c->set, c->applied, &base, steps, &ndown,
				    err, sizeof(err)) < 0) ||
	    migrate_plan_upgrade(&c->set, none, &heads, steps + ndown, &nup,
				 err, sizeof(err)) < 0) {
		dbctx_error("%s", err);
		rc = DBCTX_EX_FAIL;
		goto out;
	}
	n = ndown + nup;
	for (int i = ndown; i < n; i++)
		up[i] = true;
	rc = dbbackup_run(c);
	if (rc != DBCTX_EX_OK)
		goto out;
	if (!c->has_hist && n > 0 && !c->set.revs[steps[0]].transactional &&
	    dbhist_create(c, err, sizeof(err)) < 0) {
		dbctx_error("cannot create %s: %s", c->qhist, err);
		rc = DBCTX_EX_FAIL;
		goto out;
	}
	for (int i = 0; i < n && failed < 0;) {
		int j = i;

		if (!c->set.revs[steps[i]].transactional) {
			if (dbrun_nontransactional(c, steps[i], up[i], true) !=
			    DBCTX_EX_OK)
				failed = i;
			else
				committed = i + 1;
			i++;
			continue;
		}
		while (j < n && c->set.revs[steps[j]].transactional)
			j++;
		failed = reset_group(c, steps, up, i, j);
		if (failed < 0)
			committed = j;
		i = j;
	}
	if (failed < 0) {
		rc = dbhist_load(c);
		if (rc == DBCTX_EX_OK) {
			bool one = true;

			for (int i = 0; i < n; i++)
				one = one && c->set.revs[steps[i]].transactional;
			dbhist_current_text(c, cur, sizeof(cur));
			printf("reset: reverted %d and applied %d revision%s"
			       "%s; the database is at %s\n",
			       ndown, nup, nup == 1 ? "" : "s",
			       one ? " in one transaction" : "", cur);
		}
		goto out;
	}
	rc = DBCTX_EX_FAIL;
	if (committed == 0 && c->set.revs[steps[failed]].transactional) {
		dbctx_error("reset stopped at revision %s (%s) and nothing was "
			    "changed: everything it had done was rolled back",
			    c->set.revs[steps[failed]].id,
			    up[failed] ? "applying it" : "reverting it");
		goto out;
	}
	if (dbhist_load(c) == DBCTX_EX_OK)
		dbhist_current_text(c, cur, sizeof(cur));
	else
		snprintf(cur, sizeof(cur), "(unknown)");
	dbctx_error("reset stopped at step %d of %d, %s revision %s; the %d "
		    "step%s before it (%d revert%s, %d appl%s) %s committed, "
		    "since a non-transactional revision cannot share their "
		    "transaction; the database is now at %s",
		    failed + 1, n, up[failed] ? "applying" : "reverting",
		    c->set.revs[steps[failed]].id, committed,
		    committed == 1 ? "" : "s",
		    committed < ndown ? committed : ndown,
		    (committed < ndown ? committed : ndown) == 1 ? "" : "s",
		    committed > ndown ? committed - ndown : 0,
		    committed - ndown == 1 ? "y" : "ies",
		    committed == 1 ? "is" : "are", cur);
	dbctx_error("repair the cause%s, then run 'convctl db reset --yes' again: "
		    "it reverts what is applied and applies everything",
		    c->set.revs[steps[failed]].transactional
			    ? ""
			    : " and resolve the dirty revision (see above)");
out:
	free(steps);
	free(up);
	free(none);
	return rc;
}

int dbapply_stamp(struct dbctx *c)
{
	bool sql = c->o.given & DBCTX_O_SQL;
	struct migrate_target t;
	struct dbhist_problems pr;
	bool *want = NULL;
	char err[DBCTX_ERRLEN];
	int rc, changes = 0;
	struct dbsql w;

	rc = dbhist_prepare(c, true, !sql);
	if (rc != DBCTX_EX_OK)
		return rc;
	dboffline_writer(c, &w);
	rc = dbctx_parse_target(c, c->o.args[0], &t);
	if (rc != DBCTX_EX_OK)
		return rc;
	dbhist_problems_print(c, &pr, false);
	if (pr.dirty) {
		dbhist_problems_print(c, &pr, true);
		dbctx_error("resolve the dirty revision first; nothing was "
			    "changed");
		return DBCTX_EX_FAIL;
	}
	want = calloc((size_t)c->set.n + 1, sizeof(bool));
	if (!want) {
		dbctx_error("out of memory");
		return DBCTX_EX_FAIL;
	}
	if (migrate_plan_stamp(&c->set, c->applied, &t, want, err,
			       sizeof(err)) < 0) {
		dbctx_error("%s", err);
		free(want);
		return DBCTX_EX_FAIL;
	}
	for (int i = 0; i < c->set.n; i++)
		if (want[i] != c->applied[i])
			changes++;
	if (t.kind == MIGRATE_TARGET_BASE)
		for (int i = 0; i < c->nhist; i++)
			if (c->hist[i].idx < 0)
				changes++;
	if (changes == 0) {
		printf("nothing to do: the history already says so\n");
		free(want);
		return DBCTX_EX_OK;
	}
	if (sql) {
		printf("-- convctl db stamp %s\n", c->o.args[0]);
		if (!c->has_hist)
			dbsql_history(&w, "the history table");
		printf("BEGIN;\n");
	} else if (dbconn_ok(c, "BEGIN", err, sizeof(err)) < 0 ||
		   (!c->has_hist && dbhist_create(c, err, sizeof(err)) < 0)) {
		goto fail;
	}
	for (int i = 0; i < c->set.n; i++) {
		int x = c->set.order[i];
		const struct migrate_rev *rev = &c->set.revs[x];

		if (!want[x] || c->applied[x])
			continue;
		if (sql) {
			dbsql_insert(&w, rev, "stamped", false, NULL);
			continue;
		}
		if (dbhist_record(c, rev, "stamped", 0, false, NULL, err,
				  sizeof(err)) < 0)
			goto fail;
		printf("stamped %s\n", rev->id);
	}
	for (int i = c->set.n - 1; i >= 0; i--) {
		int x = c->set.order[i];

		if (want[x] || !c->applied[x])
			continue;
		if (sql) {
			printf("DELETE FROM %s WHERE revision = '%s';\n",
			       c->qhist, c->set.revs[x].id);
			continue;
		}
		if (dbhist_change(c, "DELETE FROM ", " WHERE revision = $1",
				  c->set.revs[x].id, NULL, err,
				  sizeof(err)) < 0)
			goto fail;
		printf("unstamped %s\n", c->set.revs[x].id);
	}
	for (int i = 0; t.kind == MIGRATE_TARGET_BASE && i < c->nhist; i++) {
		char *l;

		if (c->hist[i].idx >= 0)
			continue;
		if (sql) {
			l = dbsql_quote(&w, c->hist[i].revision);
			printf("DELETE FROM %s WHERE revision = %s;\n",
			       c->qhist, l ? l : "''");
			free(l);
			continue;
		}
		if (dbhist_change(c, "DELETE FROM ", " WHERE revision = $1",
				  c->hist[i].revision, NULL, err,
				  sizeof(err)) < 0)
			goto fail;
		printf("unstamped %s (no file)\n", c->hist[i].revision);
	}
	free(want);
	if (sql) {
		printf("COMMIT;\n");
		return DBCTX_EX_OK;
	}
	if (dbconn_ok(c, "COMMIT", err, sizeof(err)) < 0) {
		want = NULL;
		goto fail;
	}
	c->has_hist = true;
	if (dbhist_verify_schema(c, dbctx_warn_cb, NULL, err, sizeof(err)) > 0)
		dbctx_warn("the tables are not what the recorded revisions "
			   "promise: convd refuses this database and "
			   "'convctl db check' fails until they agree");
	return DBCTX_EX_OK;
fail:
	free(want);
	dbconn_rollback(c);
	dbctx_error("stamp failed: %s; nothing was changed", err);
	return DBCTX_EX_FAIL;
}

int dbapply_resolve(struct dbctx *c)
{
	bool applied = c->o.given & DBCTX_O_APPLIED;
	const char *text = c->o.args[0];
	struct dbctx_hist *h = NULL;
	char err[DBCTX_ERRLEN];
	int rc;

	if (applied == !!(c->o.given & DBCTX_O_ROLLED_BACK)) {
		dbctx_error("resolve needs exactly one of --applied and "
			    "--rolled-back");
		return DBCTX_EX_USAGE;
	}
	rc = dbhist_prepare(c, true, true);
	if (rc != DBCTX_EX_OK)
		return rc;
	for (int i = 0; i < c->nhist; i++) {
		size_t l = strlen(text);

		if (strncmp(c->hist[i].revision, text, l) != 0)
			continue;
		if (h && strcmp(h->revision, text) != 0 &&
		    strcmp(c->hist[i].revision, text) != 0) {
			dbctx_error("'%s' is ambiguous: %s, %s", text,
				    h->revision, c->hist[i].revision);
			return DBCTX_EX_USAGE;
		}
		if (!h || strcmp(c->hist[i].revision, text) == 0)
			h = &c->hist[i];
	}
	if (!h) {
		dbctx_error("revision '%s' is not in the history", text);
		return DBCTX_EX_FAIL;
	}
	if (!h->dirty) {
		dbctx_error("revision %s is not dirty: nothing to resolve",
			    h->revision);
		return DBCTX_EX_FAIL;
	}
	if (applied)
		rc = dbhist_change(c, "UPDATE ", " SET dirty = false, note = "
				   "$2 WHERE revision = $1", h->revision,
				   "resolved by hand as applied", err,
				   sizeof(err));
	else
		rc = dbhist_change(c, "DELETE FROM ", " WHERE revision = $1",
				   h->revision, NULL, err, sizeof(err));
	if (rc < 0) {
		dbctx_error("%s", err);
		return DBCTX_EX_FAIL;
	}
	printf("revision %s resolved as %s\n", h->revision,
	       applied ? "applied" : "rolled back (not applied)");
	return DBCTX_EX_OK;
}
