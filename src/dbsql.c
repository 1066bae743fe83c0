/*
 * dbsql.c - the SQL text `convctl db` writes (pure): the history table's
 * DDL, its rows' literals, and the scripts of --sql (see dbsql.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbsql.h"
#include "migrate_sql.h"

char *dbsql_history_ddl(const char *qhist)
{
	char *s;

	if (asprintf(&s,
		     "CREATE TABLE IF NOT EXISTS %s (\n"
		     "    revision    text PRIMARY KEY,\n"
		     "    parents     text[] NOT NULL DEFAULT '{}',\n"
		     "    message     text NOT NULL DEFAULT '',\n"
		     "    checksum    text NOT NULL,\n"
		     "    kind        text NOT NULL DEFAULT 'applied'\n"
		     "                CHECK (kind IN ('applied', 'stamped', "
		     "'adopted')),\n"
		     "    applied_at  timestamptz NOT NULL DEFAULT now(),\n"
		     "    applied_by  text NOT NULL DEFAULT current_user,\n"
		     "    duration_ms bigint NOT NULL DEFAULT 0,\n"
		     "    dirty       boolean NOT NULL DEFAULT false,\n"
		     "    note        text\n"
		     ")",
		     qhist) < 0)
		return NULL;
	return s;
}

char *dbsql_parents_array(const struct migrate_rev *r)
{
	size_t len = 3;
	char *s;

	for (int i = 0; i < r->nparents; i++)
		len += strlen(r->parents[i]) + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	strcpy(s, "{");
	for (int i = 0; i < r->nparents; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, r->parents[i]);
	}
	strcat(s, "}");
	return s;
}

char *dbsql_literal(const char *s)
{
	bool bs = strchr(s, '\\') != NULL;
	char *d = malloc(2 * strlen(s) + 4), *o = d;

	if (!d)
		return NULL;
	if (bs)
		*o++ = 'E';
	*o++ = '\'';
	for (; *s; s++) {
		if (*s == '\'' || *s == '\\')
			*o++ = *s;
		*o++ = *s;
	}
	*o++ = '\'';
	*o = '\0';
	return d;
}

char *dbsql_quote(const struct dbsql *w, const char *s)
{
	if (w->quote)
		return w->quote(w->quote_arg, s ? s : "");
	return dbsql_literal(s ? s : "");
}

void dbsql_section(FILE *f, const char *sql)
{
	size_t n = strlen(sql);

	/* the section as written, without trailing blank lines */
	while (n > 0 && (sql[n - 1] == '\n' || sql[n - 1] == ' ' ||
			 sql[n - 1] == '\t'))
		n--;
	if (n > 0)
		fprintf(f, "%.*s\n", (int)n, sql);
}

void dbsql_insert(const struct dbsql *w, const struct migrate_rev *rev,
		  const char *kind, bool dirty, const char *note)
{
	char *parents = dbsql_parents_array(rev);
	char *lp = dbsql_quote(w, parents ? parents : "{}");
	char *lm = dbsql_quote(w, rev->message);
	char *lc = dbsql_quote(w, rev->checksum), *lw = dbsql_quote(w, w->who);
	char *ln = note ? dbsql_quote(w, note) : NULL;

	if (w->offline && lw) {
		/* offline: the role is known only when the SQL runs */
		char *e = NULL;

		if (asprintf(&e, "current_user || %s", lw) < 0)
			e = NULL;
		free(lw);
		lw = e;
	}

	fprintf(w->f,
		"INSERT INTO %s (revision, parents, message, checksum, kind,"
		" applied_by, dirty, note)\n    VALUES ('%s', %s, %s, %s, '%s',"
		" %s, %s, %s);\n",
		w->qhist, rev->id, lp ? lp : "'{}'", lm ? lm : "''",
		lc ? lc : "''", kind, lw ? lw : "''", dirty ? "true" : "false",
		ln ? ln : "NULL");
	free(parents);
	free(lp);
	free(lm);
	free(lc);
	free(lw);
	free(ln);
}

static void findings(FILE *f, const struct migrate_rev *rev, bool up)
{
	struct migrate_sql_finding *fd = NULL;
	size_t nf = 0;
	char err[256];

	if (migrate_sql_scan(up ? rev->up : rev->down, &fd, &nf, err,
			     sizeof(err)) < 0)
		return;
	for (size_t i = 0; i < nf; i++)
		fprintf(f, "-- DESTRUCTIVE (%s): %s\n",
			migrate_sql_hazard_name(fd[i].kind), fd[i].what);
	free(fd);
}

void dbsql_plan(const struct dbsql *w, const struct migrate_set *set,
		const int *plan, int n, bool up)
{
	FILE *f = w->f;

	for (int i = 0; i < n; i++) {
		const struct migrate_rev *rev = &set->revs[plan[i]];
		char *m = migrate_rev_message_escape(rev->message ?
						     rev->message : "");

		fprintf(f, "\n-- %s %s%s: %s\n", up ? "upgrade to" : "revert",
			rev->id,
			rev->transactional ? "" : " (non-transactional)",
			m ? m : "?");
		free(m);
		findings(f, rev, up);
		if (rev->transactional) {
			fprintf(f, "BEGIN;\n");
			dbsql_section(f, up ? rev->up : rev->down);
			if (up)
				dbsql_insert(w, rev, "applied", false, NULL);
			else
				fprintf(f, "DELETE FROM %s WHERE revision = "
					"'%s';\n", w->qhist, rev->id);
			fprintf(f, "COMMIT;\n");
		} else {
			if (up)
				dbsql_insert(w, rev, "applied", true,
					     "running (non-transactional)");
			else
				fprintf(f,
					"UPDATE %s SET dirty = true WHERE "
					"revision = '%s';\n",
					w->qhist, rev->id);
			dbsql_section(f, up ? rev->up : rev->down);
			if (up)
				fprintf(f, "UPDATE %s SET dirty = false, note "
					"= NULL WHERE revision = '%s';\n",
					w->qhist, rev->id);
			else
				fprintf(f, "DELETE FROM %s WHERE revision = "
					"'%s';\n", w->qhist, rev->id);
		}
	}
}

void dbsql_history(const struct dbsql *w, const char *comment)
{
	char *ddl = dbsql_history_ddl(w->qhist);

	if (comment)
		fprintf(w->f, "\n-- %s\n", comment);
	fprintf(w->f, "%s;\n", ddl ? ddl : "");
	free(ddl);
}
