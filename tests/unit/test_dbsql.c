/*
 * test_dbsql.c - the SQL text `convctl db` writes (dbsql.h), which now
 * links without a database: literals, the history table's DDL and rows,
 * and the --sql scripts of a plan, exactly as they are printed.
 * tests/integration/test_migrate_ops.py runs such scripts on a server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbsql.h"
#include "tap.h"

static char *out;
static size_t outlen;

static FILE *start(void)
{
	FILE *f = open_memstream(&out, &outlen);

	if (!f) {
		perror("open_memstream");
		exit(99);
	}
	return f;
}

static void literal_case(const char *in, const char *want)
{
	char *got = dbsql_literal(in);

	is_str(got, want, "dbsql_literal(%s)", in);
	free(got);
}

static void test_literals(void)
{
	char *s;
	struct migrate_rev r = { 0 };
	char *parents[] = { "a1", "b2" };

	literal_case("", "''");
	literal_case("plain", "'plain'");
	literal_case("it's", "'it''s'");
	literal_case("a\\b", "E'a\\\\b'");
	literal_case("x'\\'", "E'x''\\\\'''");
	literal_case("caf\xc3\xa9", "'caf\xc3\xa9'");

	s = dbsql_parents_array(&r);
	is_str(s, "{}", "no parents: {}");
	free(s);
	r.parents = parents;
	r.nparents = 2;
	s = dbsql_parents_array(&r);
	is_str(s, "{a1,b2}", "two parents");
	free(s);

	s = dbsql_history_ddl("\"s\".convd_schema_history");
	ok(s && strncmp(s, "CREATE TABLE IF NOT EXISTS \"s\".convd_schema_history"
			" (\n    revision    text PRIMARY KEY,\n", 79) == 0,
	   "history DDL names the table");
	ok(s && strstr(s, "CHECK (kind IN ('applied', 'stamped', 'adopted'))"),
	   "history DDL: the kinds");
	ok(s && s[strlen(s) - 1] == ')', "history DDL: no semicolon");
	free(s);
}

static void test_section(void)
{
	FILE *f = start();

	dbsql_section(f, "CREATE TABLE t (i int);\n\n  \t\n");
	dbsql_section(f, "\n\n");
	dbsql_section(f, "SELECT 1;");
	fclose(f);
	is_str(out, "CREATE TABLE t (i int);\nSELECT 1;\n",
	       "sections without trailing blank lines; empty ones print "
	       "nothing");
	free(out);
}

static const char rev_a[] =
	"-- revision: a1\n"
	"-- message: first\\nline\n"
	"\n-- +up\n"
	"CREATE TABLE t (i int);\n"
	"\n-- +down\n"
	"DROP TABLE t;\n";

static const char rev_b[] =
	"-- revision: b2\n"
	"-- parents: a1\n"
	"-- message: index it\n"
	"-- transactional: no\n"
	"\n-- +up\n"
	"CREATE INDEX CONCURRENTLY ti ON t (i);\n"
	"\n-- +down\n"
	"DROP INDEX CONCURRENTLY ti;\n";

static int load(struct migrate_set *set)
{
	const char *texts[] = { rev_b, rev_a };
	char err[256];

	migrate_set_init(set);
	for (int i = 0; i < 2; i++) {
		struct migrate_rev r;

		if (migrate_rev_parse(texts[i], strlen(texts[i]), NULL, &r, err,
				      sizeof(err)) < 0 ||
		    migrate_set_add(set, &r, err, sizeof(err)) < 0) {
			printf("# %s\n", err);
			return -1;
		}
	}
	if (migrate_set_build(set, err, sizeof(err)) < 0) {
		printf("# %s\n", err);
		return -1;
	}
	return 0;
}

/* A quoting callback such as a connection's: marks what it quoted. */
static char *mark_quote(void *arg, const char *s)
{
	char *q;

	(*(int *)arg)++;
	if (asprintf(&q, "Q(%s)", s) < 0)
		return NULL;
	return q;
}

static void test_plan(void)
{
	struct migrate_set set;
	int plan[2], calls = 0;
	struct dbsql w = {
		.qhist = "convd_schema_history",
		.who = " (offline SQL by me@host)",
		.offline = true,
	};
	char *want = NULL, *ddl;

	if (!ok(load(&set) == 0, "two revisions load"))
		return;
	plan[0] = migrate_set_find_exact(&set, "a1");
	plan[1] = migrate_set_find_exact(&set, "b2");

	w.f = start();
	dbsql_history(&w, "the history table");
	dbsql_plan(&w, &set, plan, 2, true);
	fclose(w.f);
	ddl = dbsql_history_ddl(w.qhist);
	if (!ddl || asprintf(&want,
		     "\n-- the history table\n%s;\n"
		     "\n-- upgrade to a1: first\\nline\n"
		     "BEGIN;\n"
		     "CREATE TABLE t (i int);\n"
		     "INSERT INTO convd_schema_history (revision, parents, "
		     "message, checksum, kind, applied_by, dirty, note)\n"
		     "    VALUES ('a1', '{}', 'first\nline', '%s', 'applied', "
		     "current_user || ' (offline SQL by me@host)', false, "
		     "NULL);\n"
		     "COMMIT;\n"
		     "\n-- upgrade to b2 (non-transactional): index it\n"
		     "INSERT INTO convd_schema_history (revision, parents, "
		     "message, checksum, kind, applied_by, dirty, note)\n"
		     "    VALUES ('b2', '{a1}', 'index it', '%s', 'applied', "
		     "current_user || ' (offline SQL by me@host)', true, "
		     "'running (non-transactional)');\n"
		     "CREATE INDEX CONCURRENTLY ti ON t (i);\n"
		     "UPDATE convd_schema_history SET dirty = false, note = NULL"
		     " WHERE revision = 'b2';\n",
		     ddl, set.revs[plan[0]].checksum,
		     set.revs[plan[1]].checksum) < 0)
		want = NULL;
	is_str(out, want, "upgrade script, offline");
	free(want);
	free(ddl);
	free(out);

	/* down: in reverse order, DESTRUCTIVE marked, connection quoting */
	plan[0] = migrate_set_find_exact(&set, "b2");
	plan[1] = migrate_set_find_exact(&set, "a1");
	w.offline = false;
	w.who = "role (me@host)";
	w.quote = mark_quote;
	w.quote_arg = &calls;
	w.f = start();
	dbsql_plan(&w, &set, plan, 2, false);
	fclose(w.f);
	is_str(out,
	       "\n-- revert b2 (non-transactional): index it\n"
	       "UPDATE convd_schema_history SET dirty = true WHERE revision = "
	       "'b2';\n"
	       "DROP INDEX CONCURRENTLY ti;\n"
	       "DELETE FROM convd_schema_history WHERE revision = 'b2';\n"
	       "\n-- revert a1: first\\nline\n"
	       "-- DESTRUCTIVE (drops a table): DROP TABLE t\n"
	       "BEGIN;\n"
	       "DROP TABLE t;\n"
	       "DELETE FROM convd_schema_history WHERE revision = 'a1';\n"
	       "COMMIT;\n",
	       "downgrade script");
	free(out);

	w.f = start();
	dbsql_insert(&w, &set.revs[plan[1]], "stamped", false, "n'o");
	fclose(w.f);
	ok(strstr(out, "VALUES ('a1', Q({}), Q(first\nline), Q(") &&
	   strstr(out, "'stamped', Q(role (me@host)), false, Q(n'o));\n"),
	   "a connection's quoting for every literal");
	is_int(calls, 5, "parents, message, checksum, who and note quoted");
	free(out);
	migrate_set_free(&set);
}

int main(void)
{
	test_literals();
	test_section();
	test_plan();
	return tap_done();
}
