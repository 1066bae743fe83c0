/*
 * dbsetup.c - `convctl db setup` (history table, adoption, upgrade to
 * head, the partitioned layout) and `convctl db partition`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consts.h"
#include "dbadopt.h"
#include "dbbackup.h"
#include "dbconn.h"
#include "dbhist.h"
#include "dboffline.h"
#include "dbpart.h"
#include "dbrun.h"
#include "dbsetup.h"
#include "dbsql.h"
#include "migrate_adopt.h"
#include "schema.h"

/*
 * What the configured retention would delete on its first run, so that
 * nobody finds out afterwards: [retention] days_to_keep of the file that
 * convctl read (the one convd reads, normally).
 */
static void retention_preview(struct dbctx *c)
{
	char err[DBCTX_ERRLEN], days[32];
	const char *p[1] = {days};
	PGresult *r;

	if (!c->cfg_ok || c->cfg.retention.days_to_keep <= 0) {
		printf("retention: off ([retention] days_to_keep = 0): convd "
		       "deletes no messages\n");
		return;
	}
	snprintf(days, sizeof(days), "%" PRId64,
		 c->cfg.retention.days_to_keep);
	r = dbconn_params(c,
			  "SELECT count(*) FILTER (WHERE created_at < now()"
			  " - $1::int * interval '86400 seconds'), count(*)"
			  " FROM " CONVD_T_HISTORY,
			  1, p, err, sizeof(err));
	if (!r) {
		dbctx_warn("cannot count what retention would delete: %s", err);
		return;
	}
	printf("retention: [retention] days_to_keep = %s: convd's first run "
	       "will delete %s of %s messages (those older than %s days); "
	       "set days_to_keep = 0 to keep them\n",
	       days, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), days);
	PQclear(r);
}

/* The partitioned layout (dbpart.c): DDL locks are waited for 2 s at a
 * time, so that writers never queue behind the conversion for longer,
 * for --lock-timeout seconds in all. */
static int partition(struct dbctx *c)
{
	char err[DBCTX_ERRLEN];
	long wait = c->o.given & DBCTX_O_LOCK_TIMEOUT ? c->o.lock_timeout
						: DBCTX_DEFAULT_LOCK_TIMEOUT;

	if (dbpart_convert(c->conn, wait, stdout, err, sizeof(err)) < 0) {
		dbctx_error("%s", err);
		dbctx_error("the conversion stopped; nothing is lost: run "
			    "'convctl db partition' again to go on");
		return DBCTX_EX_FAIL;
	}
	return DBCTX_EX_OK;
}

int dbsetup_partition(struct dbctx *c)
{
	int rc = dbhist_prepare(c, true, true);

	if (rc != DBCTX_EX_OK)
		return rc;
	if (!c->has_hist) {
		dbctx_error("the database is not set up: run 'convctl db setup "
			    "--layout partitioned'");
		return DBCTX_EX_FAIL;
	}
	return partition(c);
}

int dbsetup_setup(struct dbctx *c)
{
	bool sql = c->o.given & DBCTX_O_SQL, try_ = c->o.given & DBCTX_O_TRY;
	struct migrate_adopt a;
	struct migrate_target t = {MIGRATE_TARGET_HEAD, 0, 0};
	char err[DBCTX_ERRLEN];
	bool *applied2 = NULL;
	int *plan = NULL, n = 0, r1 = -1, rc;
	bool legacy;

	rc = dbhist_prepare(c, true, !sql);
	if (rc != DBCTX_EX_OK)
		return rc;
	if (c->o.legacy_tz &&
	    migrate_adopt_check_zone(c->conn, c->o.legacy_tz, err,
				     sizeof(err)) < 0) {
		dbctx_error("--legacy-timezone: %s", err);
		return DBCTX_EX_USAGE;
	}
	if (migrate_adopt_inspect_tz(c->conn, c->nsp, SCHEMA_HISTORY_TABLE,
				     c->o.legacy_tz, &a, err,
				     sizeof(err)) < 0) {
		dbctx_error("cannot inspect the database: %s", err);
		return DBCTX_EX_FAIL;
	}
	if (a.shape == MIGRATE_ADOPT_UNKNOWN) {
		dbctx_error("found tables convctl db does not recognise: %s",
			    a.problem);
		dbctx_error("nothing was changed: bring the tables to one of "
			    "the legacy shapes that setup adopts (see "
			    "ADOPTING A LEGACY DATABASE in convctl(1))");
		return DBCTX_EX_FAIL;
	}
	printf("%sfound: %s\n", sql ? "-- " : "", a.found);
	legacy = a.shape == MIGRATE_ADOPT_LEGACY_README ||
		 a.shape == MIGRATE_ADOPT_LEGACY_ALEMBIC;
	if (legacy && a.tz_doubt && !c->o.legacy_tz) {
		fprintf(stderr,
			"convctl db: the legacy times (timestamp without time "
			"zone) may not all be UTC:\n%s",
			a.tz_evidence);
		dbctx_error("say how to read them with --legacy-timezone "
			    "ZONE: the IANA name of the zone they were "
			    "written in (such as Asia/Taipei), or UTC; when "
			    "some were written in UTC and some in local time "
			    "no tool can tell which, see \"Time zones\" in "
			    "convctl(1); nothing was changed");
		migrate_adopt_free(&a);
		return DBCTX_EX_FAIL;
	}
	if (legacy && a.tz_evidence[0]) {
		printf("%slegacy times read as %s; what the database says of "
		       "their zone:\n",
		       sql ? "-- " : "", a.zone);
		for (const char *p = a.tz_evidence; *p;) {
			const char *e = strchr(p, '\n');
			int len = e ? (int)(e - p) : (int)strlen(p);

			printf("%s%.*s\n", sql ? "--" : "", len, p);
			p += len + (e ? 1 : 0);
		}
	}
	if (c->o.legacy_tz && !(legacy && (a.threads_naive ||
					   a.history_naive)))
		dbctx_warn("--legacy-timezone only applies to the times "
			   "without time zone of a legacy database: ignored");
	if (legacy) {
		r1 = migrate_set_find_exact(&c->set, MIGRATE_ADOPT_REVISION);
		if (r1 < 0) {
			dbctx_error("adoption needs revision %s, which %s "
				    "does not have; nothing was changed",
				    MIGRATE_ADOPT_REVISION, c->dir);
			migrate_adopt_free(&a);
			return DBCTX_EX_FAIL;
		}
	}
	if (a.shape == MIGRATE_ADOPT_MANAGED) {
		rc = dbhist_gate(c, !sql && !try_);
		if (rc != DBCTX_EX_OK) {
			migrate_adopt_free(&a);
			return rc;
		}
	}
	applied2 = calloc((size_t)c->set.n + 1, sizeof(bool));
	if (!applied2) {
		dbctx_error("out of memory");
		rc = DBCTX_EX_FAIL;
		goto out;
	}
	memcpy(applied2, c->applied, sizeof(bool) * (size_t)c->set.n);
	if (legacy)
		applied2[r1] = true;
	plan = dbctx_plan(c, true, applied2, &t, &n);
	if (!plan) {
		rc = DBCTX_EX_FAIL;
		goto out;
	}
	if (sql) {
		struct dbsql w;

		printf("-- convctl db setup: %s\n",
		       legacy ? "adoption, then upgrade to head"
			      : "upgrade to head");
		dboffline_writer(c, &w);
		if (legacy)
			dboffline_adoption(c, &a, r1);
		else if (!c->has_hist)
			dbsql_history(&w, "the history table");
		dbsql_plan(&w, &c->set, plan, n, true);
		rc = DBCTX_EX_OK;
		goto out;
	}
	if (try_) {
		rc = legacy || n > 0 ? dbbackup_check(c) : DBCTX_EX_OK;
		if (rc == DBCTX_EX_OK)
			rc = dbrun_rehearse(
				c, plan, n, true, legacy ? &a : NULL,
				c->o.given & DBCTX_O_ALLOW_DESTRUCTIVE);
		goto out;
	}
	if (legacy || n > 0) {
		rc = dbbackup_run(c);
		if (rc != DBCTX_EX_OK)
			goto out;
	}
	if (legacy) {
		rc = dbadopt_run(c, &a, false);
		if (rc != DBCTX_EX_OK)
			goto out;
	} else if (!c->has_hist) {
		if (dbhist_create(c, err, sizeof(err)) < 0) {
			dbctx_error("cannot create %s: %s", c->qhist, err);
			rc = DBCTX_EX_FAIL;
			goto out;
		}
		printf("created the history table %s\n", c->qhist);
	}
	rc = dbrun_plan(c, plan, n, true,
			c->o.given & DBCTX_O_ALLOW_DESTRUCTIVE);
	if (rc == DBCTX_EX_OK) {
		char cur[512];

		for (int i = 0; i < n; i++)
			c->applied[plan[i]] = true;
		dbhist_current_text(c, cur, sizeof(cur));
		printf("the database is at head (%s)\n", cur);
		retention_preview(c);
	}
	if (rc == DBCTX_EX_OK && c->o.partitioned)
		rc = partition(c);
out:
	migrate_adopt_free(&a);
	free(applied2);
	free(plan);
	return rc;
}
