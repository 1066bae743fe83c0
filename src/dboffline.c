/*
 * dboffline.c - --sql: the SQL of a run written instead of run, with a
 * database or (FROM:TO) without one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbhist.h"
#include "dboffline.h"
#include "dbsql.h"
#include "migrate_adopt.h"
#include "schema.h"

/* A literal as the connected server would escape it. */
static char *conn_quote(void *arg, const char *s)
{
	struct dbctx *c = arg;
	char *q = PQescapeLiteral(c->conn, s, strlen(s)), *d;

	if (!q)
		return strdup("''");
	d = strdup(q);
	PQfreemem(q);
	return d;
}

void dboffline_writer(struct dbctx *c, struct dbsql *w)
{
	*w = (struct dbsql){
		.f = stdout,
		.qhist = c->qhist,
		.who = c->who,
		.offline = !c->conn,
		.quote = c->conn ? conn_quote : NULL,
		.quote_arg = c,
	};
}

void dboffline_adoption(struct dbctx *c, const struct migrate_adopt *a, int r1)
{
	struct dbsql w;

	dboffline_writer(c, &w);
	printf("\n-- adoption as revision %s, in one transaction\n",
	       MIGRATE_ADOPT_REVISION);
	printf("BEGIN;\n");
	for (int i = 0; i < a->nsteps; i++)
		printf("-- %s\n%s;\n", a->steps[i].note, a->steps[i].sql);
	printf("-- (convctl db checks here that every row is unchanged and "
	       "that the schema\n-- is revision %s's plus the objects kept; "
	       "any difference rolls everything back)\n",
	       MIGRATE_ADOPT_REVISION);
	dbsql_history(&w, NULL);
	dbsql_insert(&w, &c->set.revs[r1], "adopted", false, a->found);
	printf("COMMIT;\n");
}

/*
 * --sql with FROM:TO: the SQL from revision FROM (base, head, heads or a
 * revision and its ancestors applied) to TO, written without a database,
 * as Alembic's offline mode does.  The history table is named without a
 * schema (the search_path decides when the SQL runs).
 */
int dboffline_range(struct dbctx *c, const char *range, bool up)
{
	const char *colon = strchr(range, ':');
	char *from = NULL, uh[320];
	struct migrate_target f, t;
	int *plan = NULL, n = 0, rc;
	struct dbsql w;

	if (!(c->o.given & DBCTX_O_SQL) || colon == range || !colon[1]) {
		dbctx_error("a range FROM:TO goes with --sql (offline SQL): "
			    "'convctl db %s FROM:TO --sql'",
			    up ? "upgrade" : "downgrade");
		return DBCTX_EX_USAGE;
	}
	rc = dbhist_prepare(c, false, false);
	if (rc != DBCTX_EX_OK)
		return rc;
	from = strndup(range, (size_t)(colon - range));
	if (!from) {
		dbctx_error("out of memory");
		return DBCTX_EX_FAIL;
	}
	rc = dbctx_parse_target(c, from, &f);
	if (rc == DBCTX_EX_OK)
		rc = dbctx_parse_target(c, colon + 1, &t);
	if (rc == DBCTX_EX_OK && f.kind == MIGRATE_TARGET_RELATIVE) {
		dbctx_error("the start of a range is base, head, heads or a "
			    "revision, not '%s'", from);
		rc = DBCTX_EX_USAGE;
	}
	if (rc != DBCTX_EX_OK)
		goto out;
	if (f.kind == MIGRATE_TARGET_HEAD && c->set.nheads > 1) {
		char heads[512];

		migrate_set_heads_text(&c->set, heads, sizeof(heads));
		dbctx_error("there are %d heads (%s): start from one of them "
			    "or from 'heads'", c->set.nheads, heads);
		rc = DBCTX_EX_FAIL;
		goto out;
	}
	for (int i = 0; i < c->set.nheads; i++)
		if (f.kind == MIGRATE_TARGET_HEADS ||
		    f.kind == MIGRATE_TARGET_HEAD)
			migrate_set_ancestors(&c->set, c->set.heads[i],
					      c->applied);
	if (f.kind == MIGRATE_TARGET_REV)
		migrate_set_ancestors(&c->set, f.rev, c->applied);
	c->has_hist = f.kind != MIGRATE_TARGET_BASE;
	c->qhist = strdup(SCHEMA_HISTORY_TABLE);
	if (!c->qhist) {
		dbctx_error("out of memory");
		rc = DBCTX_EX_FAIL;
		goto out;
	}
	dbctx_user_host(uh, sizeof(uh));
	snprintf(c->who, sizeof(c->who), " (offline SQL by %s)", uh);
	plan = dbctx_plan(c, up, c->applied, &t, &n);
	if (!plan) {
		rc = DBCTX_EX_FAIL;
		goto out;
	}
	printf("-- convctl db %s %s --sql: %d revision%s, written without a "
	       "database\n",
	       up ? "upgrade" : "downgrade", range, n, n == 1 ? "" : "s");
	dboffline_writer(c, &w);
	if (up && !c->has_hist)
		dbsql_history(&w, "the history table");
	dbsql_plan(&w, &c->set, plan, n, up);
out:
	free(plan);
	free(from);
	return rc;
}
