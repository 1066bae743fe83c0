/*
 * dbadopt.c - adopting a legacy database (made by the seed bot, with or
 * without Alembic) as the first revision, in one checked transaction.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "dbadopt.h"
#include "dbconn.h"
#include "dbhist.h"
#include "migrate_catalog.h"
#include "migrate_diff.h"
#include "schema.h"

/* The user's objects that adoption keeps, one a line. */
static void print_kept(const struct migrate_adopt *a)
{
	const char *p = a->kept;

	while (*p) {
		const char *e = strstr(p, "; ");
		int len = e ? (int)(e - p) : (int)strlen(p);

		printf("adopt: kept %.*s\n", len, p);
		p += len + (e ? 2 : 0);
	}
}

/* The adoption in one transaction, with its checks; rehearse: in the
 * caller's transaction, which the caller rolls back. */
int dbadopt_run(struct dbctx *c, struct migrate_adopt *a, bool rehearse)
{
	char err[DBCTX_ERRLEN], fp_before[512], fp_after[512];
	struct migrate_diff_schema live = {0}, want = {0};
	struct migrate_diff d = {0};
	int r1 = migrate_set_find_exact(&c->set, MIGRATE_ADOPT_REVISION);
	usec_t t0 = clock_mono_usec();

	if (!rehearse && dbconn_ok(c, "BEGIN", err, sizeof(err)) < 0)
		goto fail;
	if (migrate_adopt_fingerprint(c->conn, c->nsp, a, false, fp_before,
				      sizeof(fp_before), err, sizeof(err)) < 0)
		goto fail;
	for (int i = 0; i < a->nsteps; i++) {
		printf("adopt: %s\n", a->steps[i].note);
		if (dbconn_ok(c, a->steps[i].sql, err, sizeof(err)) < 0) {
			dbctx_err_prefix(err, sizeof(err), "step %d (%s): ",
					 i + 1, a->steps[i].note);
			goto fail;
		}
	}
	if (migrate_adopt_fingerprint(c->conn, c->nsp, a, true, fp_after,
				      sizeof(fp_after), err, sizeof(err)) < 0)
		goto fail;
	if (strcmp(fp_before, fp_after) != 0) {
		snprintf(err, sizeof(err),
			 "the contents would change (before: %s; after: %s)",
			 fp_before, fp_after);
		goto fail;
	}
	printf("adopt: every row is unchanged (%" PRId64 " threads and %" PRId64
	       " messages compared column by column)\n",
	       a->threads, a->messages);
	if (migrate_catalog_load(c->conn, c->nsp, SCHEMA_HISTORY_TABLE, &live,
				 err,
				 sizeof(err)) < 0)
		goto fail;
	if (migrate_catalog_load_sql(c->conn, c->set.revs[r1].up, c->nsp,
				     SCHEMA_HISTORY_TABLE, &want, err,
				     sizeof(err)) < 0) {
		dbctx_err_prefix(err, sizeof(err), "cannot load revision %s: ",
				 MIGRATE_ADOPT_REVISION);
		goto fail;
	}
	if (migrate_diff_compute(&live, &want, MIGRATE_DIFF_ONLY_TO_TABLES,
				 &d) < 0) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	{
		/* What only the live tables have ("- ...": the user's
		 * columns, indexes and constraints) is kept on purpose; any
		 * other difference fails the adoption. */
		int bad = 0;

		for (int i = 0; i < d.n; i++) {
			if (!d.v[i].what || strncmp(d.v[i].what, "- ", 2) == 0)
				continue;
			dbctx_error("after adoption: %s", d.v[i].what);
			bad++;
		}
		if (bad > 0) {
			snprintf(err, sizeof(err),
				 "the result would differ from revision %s's "
				 "schema",
				 MIGRATE_ADOPT_REVISION);
			goto fail;
		}
	}
	printf("adopt: the schema is revision %s's%s\n", MIGRATE_ADOPT_REVISION,
	       a->kept[0] ? ", plus the user's objects kept below" : "");
	print_kept(a);
	if (dbhist_create(c, err, sizeof(err)) < 0 ||
	    dbhist_record(c, &c->set.revs[r1], "adopted",
			  (clock_mono_usec() - t0) / 1000, false, a->found,
			  err, sizeof(err)) < 0 ||
	    (!rehearse && dbconn_ok(c, "COMMIT", err, sizeof(err)) < 0))
		goto fail;
	migrate_diff_schema_free(&live);
	migrate_diff_schema_free(&want);
	migrate_diff_free(&d);
	if (rehearse) {
		printf("would adopt the database as revision %s\n",
		       MIGRATE_ADOPT_REVISION);
		return DBCTX_EX_OK;
	}
	printf("adopted the database as revision %s%s\n",
	       MIGRATE_ADOPT_REVISION,
	       a->alembic ? " (alembic_version dropped)" : "");
	return dbhist_load(c);
fail:
	if (!rehearse)
		dbconn_rollback(c);
	c->has_hist = false;
	migrate_diff_schema_free(&live);
	migrate_diff_schema_free(&want);
	migrate_diff_free(&d);
	dbctx_error("adoption %s: %s", rehearse ? "would fail" : "failed", err);
	dbctx_error("nothing was changed (the adoption runs in one "
		    "transaction)");
	return DBCTX_EX_FAIL;
}
