/*
 * test_migrate.c - the pure parts of `convctl db`: SHA-256, revision
 * files, the revision graph and plans, SQL splitting and the destructive
 * scan, type narrowing, the guard and schema differences.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"
#include "migrate_diff.h"
#include "migrate_sha256.h"
#include "migrate_sql.h"
#include "tap.h"

/* ------------------------------------------------------------- sha256 */

static void test_sha256(void)
{
	char hex[MIGRATE_SHA256_HEXLEN + 1];
	struct migrate_sha256 s;
	uint8_t d[MIGRATE_SHA256_LEN];
	static const char *abc56 =
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	char *million;

	migrate_sha256_hex("", 0, hex);
	is_str(hex,
	       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	       "sha256 of the empty string");
	migrate_sha256_hex("abc", 3, hex);
	is_str(hex,
	       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "sha256 of abc");
	migrate_sha256_hex(abc56, strlen(abc56), hex);
	is_str(hex,
	       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
	       "sha256 of the 448-bit message");
	million = malloc(1000000);
	memset(million, 'a', 1000000);
	/* in uneven pieces, to exercise the buffering */
	migrate_sha256_init(&s);
	for (size_t off = 0, step = 1; off < 1000000; step = step * 7 % 997 + 1) {
		size_t n = step > 1000000 - off ? 1000000 - off : step;

		migrate_sha256_update(&s, million + off, n);
		off += n;
	}
	migrate_sha256_final(&s, d);
	migrate_sha256_tohex(d, hex);
	is_str(hex,
	       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
	       "sha256 of a million 'a' fed in pieces");
	free(million);
}

/* ------------------------------------------------------------- parsing */

static const char good[] =
	"-- revision: abc123\n"
	"-- parents: p1 p2\n"
	"-- message: it's a \\\"test\\\" with \\\\ and \\n and h\xc3\xa9llo\n"
	"-- transactional: no\n"
	"-- created: 2026-11-24T00:00:00Z\n"
	"-- A free comment: with a colon after a capital word.\n"
	"\n"
	"-- +up\n"
	"CREATE INDEX CONCURRENTLY i ON t (a);\n"
	"-- +down\n"
	"DROP INDEX CONCURRENTLY i;\n";

static int parse(const char *text, struct migrate_rev *r, char *err,
		 size_t errlen)
{
	return migrate_rev_parse(text, strlen(text), "f.sql", r, err, errlen);
}

static void expect_error(const char *text, const char *needle,
			 const char *name)
{
	struct migrate_rev r;
	char err[512] = "";
	int rc = parse(text, &r, err, sizeof(err));

	ok(rc < 0 && strstr(err, needle) != NULL, "%s (%s)", name, err);
	if (rc == 0)
		migrate_rev_free(&r);
}

static void test_parse(void)
{
	struct migrate_rev r, r2;
	char err[512] = "";
	char *crlf, *p;
	const char *q;

	is_int(parse(good, &r, err, sizeof(err)), 0, "a good file parses");
	is_str(r.id, "abc123", "id");
	is_int(r.nparents, 2, "two parents");
	is_str(r.parents[1], "p2", "second parent");
	is_str(r.message,
	       "it's a \\\"test\\\" with \\ and \n and h\xc3\xa9llo",
	       "message unescaped");
	ok(!r.transactional, "transactional: no");
	is_str(r.created, "2026-11-24T00:00:00Z", "created");
	is_str(r.up, "CREATE INDEX CONCURRENTLY i ON t (a);\n", "up section");
	is_str(r.down, "DROP INDEX CONCURRENTLY i;\n", "down section");
	is_int(r.up_line, 9, "up starts on line 9");
	is_int(r.down_line, 11, "down starts on line 11");
	is_int((long long)strlen(r.checksum), 64, "checksum is 64 hex digits");

	/* CRLF files give the same revision and checksum. */
	crlf = malloc(sizeof(good) * 2);
	for (p = crlf, q = good; *q; q++) {
		if (*q == '\n')
			*p++ = '\r';
		*p++ = *q;
	}
	*p = '\0';
	is_int(parse(crlf, &r2, err, sizeof(err)), 0, "CRLF parses");
	is_str(r2.checksum, r.checksum, "CRLF: same checksum");
	is_str(r2.message, r.message, "CRLF: same message");
	migrate_rev_free(&r2);
	free(crlf);

	/* The message is not in the checksum; the SQL is. */
	{
		char *t = strdup(good);

		memcpy(strstr(t, "it's"), "IT'S", 4);
		is_int(parse(t, &r2, err, sizeof(err)), 0, "edited message");
		is_str(r2.checksum, r.checksum, "message edits keep the checksum");
		migrate_rev_free(&r2);
		memcpy(strstr(t, "(a)"), "(b)", 3);
		is_int(parse(t, &r2, err, sizeof(err)), 0, "edited SQL");
		ok(strcmp(r2.checksum, r.checksum) != 0,
		   "SQL edits change the checksum");
		migrate_rev_free(&r2);
		free(t);
	}
	migrate_rev_free(&r);

	expect_error("-- revision: a\n-- +down\n-- +up\n", "before",
		     "+down before +up");
	expect_error("-- revision: a\n", "no '-- +up'", "no +up");
	expect_error("-- revision: a\n-- +up\nSELECT 1;\n", "no '-- +down'",
		     "no +down");
	expect_error("-- parents: b\n-- +up\n-- +down\n", "no '-- revision:'",
		     "no revision");
	expect_error("-- revision: a\n-- parent: b\n-- +up\n-- +down\n",
		     "unknown header 'parent:'", "a typo in a key is an error");
	expect_error("-- revision: a b\n-- +up\n-- +down\n", "invalid revision",
		     "an id with a space");
	expect_error("-- revision: head\n-- +up\n-- +down\n",
		     "invalid revision", "a reserved id");
	expect_error("-- revision: a\n-- revision: b\n-- +up\n-- +down\n",
		     "twice", "a key given twice");
	expect_error("-- revision: a\nSELECT 1;\n-- +up\n-- +down\n",
		     "SQL before", "SQL in the header");
	expect_error("-- revision: a\n-- parents: a\n-- +up\n-- +down\n",
		     "itself", "its own parent");
	expect_error("-- revision: a\n-- parents: b b\n-- +up\n-- +down\n",
		     "twice", "a parent twice");
	expect_error("-- revision: a\n-- transactional: maybe\n-- +up\n"
		     "-- +down\n",
		     "yes or no", "a bad boolean");
	expect_error("-- revision: a\n-- message: \xff\n-- +up\n-- +down\n",
		     "UTF-8", "invalid UTF-8");
	expect_error("-- revision: a\n-- +up\n-- +up\n-- +down\n", "second",
		     "two +up");
}

static void test_format(void)
{
	const char *msg = "quote ' double \" back \\ tab\t nl\n bell\x07 "
			  "\xe4\xb8\xad\xe6\x96\x87 emoji \xf0\x9f\x98\x80";
	char *parents[2] = {"p1", "p2"};
	char err[256];
	char *text = migrate_rev_format("newid", parents, 2, msg, "now", true,
					"SELECT 1;\n", "SELECT 2;", err,
					sizeof(err));
	struct migrate_rev r;
	char *name;

	ok(text != NULL, "format a revision");
	is_int(parse(text, &r, err, sizeof(err)), 0, "it parses back");
	is_str(r.message, msg, "the message survives");
	is_int(r.nparents, 2, "the parents survive");
	is_str(r.up, "SELECT 1;\n\n", "the up SQL survives");
	is_str(r.down, "SELECT 2;\n", "the down SQL survives");
	ok(strstr(text, "nl\\n bell\\x07 ") != NULL,
	   "line breaks and control characters are escaped");
	migrate_rev_free(&r);
	free(text);
	ok(migrate_rev_format("bad id", NULL, 0, "m", NULL, true, "", "", err,
			      sizeof(err)) == NULL,
	   "format refuses a bad id");
	ok(migrate_rev_message_check("\xc3(", err, sizeof(err)) < 0,
	   "invalid UTF-8 message refused");
	{
		char big[MIGRATE_REV_MESSAGE_MAX + 2];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		ok(migrate_rev_message_check(big, err, sizeof(err)) < 0,
		   "too long message refused");
	}
	name = migrate_rev_file_name("ab12", "Add the 'Users' table!");
	is_str(name, "ab12_add_the_users_table.sql", "file name slug");
	free(name);
	name = migrate_rev_file_name("ab12", "\xe4\xb8\xad\xe6\x96\x87");
	is_str(name, "ab12.sql", "file name without ASCII words");
	free(name);
	{
		char id[MIGRATE_REV_NEW_ID_LEN + 1];
		char id2[MIGRATE_REV_NEW_ID_LEN + 1];

		is_int(migrate_rev_new_id(id), 0, "new id");
		is_int(migrate_rev_new_id(id2), 0, "another new id");
		ok(migrate_rev_id_valid(id) && strlen(id) == 12 &&
			   strcmp(id, id2) != 0 && id[0] >= 'a',
		   "ids are valid, distinct and start with a letter (%s %s)",
		   id, id2);
	}
}

/* --------------------------------------------------------------- graph */

static void add(struct migrate_set *s, const char *id, const char *parents)
{
	char text[512], err[256];
	struct migrate_rev r;

	snprintf(text, sizeof(text),
		 "-- revision: %s\n-- parents: %s\n-- message: m %s\n"
		 "-- +up\nSELECT '%s';\n-- +down\n",
		 id, parents, id, id);
	if (parse(text, &r, err, sizeof(err)) < 0 ||
	    migrate_set_add(s, &r, err, sizeof(err)) < 0)
		ok(0, "add %s: %s", id, err);
}

static void names(const struct migrate_set *s, const int *v, int n,
		  char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? " " : "",
				      s->revs[v[i]].id);
}

static void test_graph(void)
{
	struct migrate_set s;
	struct migrate_target t;
	char err[512], buf[256];
	bool applied[16] = {false}, want[16];
	int plan[16], n;

	/* a - b - c, b - d (branch), merge e (c d) */
	migrate_set_init(&s);
	add(&s, "c", "b");
	add(&s, "a", "");
	add(&s, "d", "b");
	add(&s, "b", "a");
	is_int(migrate_set_build(&s, err, sizeof(err)), 0, "build");
	names(&s, s.order, s.n, buf, sizeof(buf));
	is_str(buf, "a b c d", "topological order, ties by id");
	names(&s, s.heads, s.nheads, buf, sizeof(buf));
	is_str(buf, "c d", "two heads");

	is_int(migrate_target_parse(&s, "head", &t, err, sizeof(err)), 0,
	       "parse head");
	ok(migrate_plan_upgrade(&s, applied, &t, plan, &n, err, sizeof(err)) < 0 &&
		   strstr(err, "c and d"),
	   "upgrade head refuses with two heads and names them (%s)", err);
	is_int(migrate_target_parse(&s, "heads", &t, err, sizeof(err)), 0,
	       "parse heads");
	is_int(migrate_plan_upgrade(&s, applied, &t, plan, &n, err, sizeof(err)),
	       0, "upgrade heads");
	names(&s, plan, n, buf, sizeof(buf));
	is_str(buf, "a b c d", "upgrade heads applies everything");
	is_int(migrate_target_parse(&s, "d", &t, err, sizeof(err)), 0,
	       "parse a full id");
	is_int(migrate_plan_upgrade(&s, applied, &t, plan, &n, err, sizeof(err)),
	       0, "upgrade to a branch");
	names(&s, plan, n, buf, sizeof(buf));
	is_str(buf, "a b d", "upgrade d applies its ancestors only");
	is_int(migrate_target_parse(&s, "+2", &t, err, sizeof(err)), 0,
	       "parse +2");
	is_int(t.n, 2, "+2 is 2");
	is_int(migrate_plan_upgrade(&s, applied, &t, plan, &n, err, sizeof(err)),
	       0, "upgrade +2");
	names(&s, plan, n, buf, sizeof(buf));
	is_str(buf, "a b", "+2 applies the next two");
	is_int(migrate_target_parse(&s, "+9", &t, err, sizeof(err)), 0,
	       "parse +9");
	ok(migrate_plan_upgrade(&s, applied, &t, plan, &n, err, sizeof(err)) < 0,
	   "+9 with 4 pending refuses (%s)", err);

	/* merge */
	add(&s, "e", "c d");
	is_int(migrate_set_build(&s, err, sizeof(err)), 0, "build with merge");
	names(&s, s.heads, s.nheads, buf, sizeof(buf));
	is_str(buf, "e", "one head after the merge");
	ok(migrate_set_is_ancestor(&s, migrate_set_find_exact(&s, "a"),
				   migrate_set_find_exact(&s, "e")),
	   "a is an ancestor of e");
	ok(!migrate_set_is_ancestor(&s, migrate_set_find_exact(&s, "c"),
				    migrate_set_find_exact(&s, "d")),
	   "c is not an ancestor of d");
	for (int i = 0; i < s.n; i++)
		applied[i] = true;
	is_int(migrate_target_parse(&s, "b", &t, err, sizeof(err)), 0,
	       "parse b");
	is_int(migrate_plan_downgrade(&s, applied, &t, plan, &n, err,
				      sizeof(err)),
	       0, "downgrade b");
	names(&s, plan, n, buf, sizeof(buf));
	is_str(buf, "e d c", "downgrade b reverts its descendants, children "
			     "first");
	is_int(migrate_target_parse(&s, "-2", &t, err, sizeof(err)), 0,
	       "parse -2");
	is_int(migrate_plan_downgrade(&s, applied, &t, plan, &n, err,
				      sizeof(err)),
	       0, "downgrade -2");
	names(&s, plan, n, buf, sizeof(buf));
	is_str(buf, "e d", "-2 reverts the last two");
	is_int(migrate_target_parse(&s, "base", &t, err, sizeof(err)), 0,
	       "parse base");
	is_int(migrate_plan_downgrade(&s, applied, &t, plan, &n, err,
				      sizeof(err)),
	       0, "downgrade base");
	names(&s, plan, n, buf, sizeof(buf));
	is_str(buf, "e d c b a", "base reverts everything");
	ok(migrate_plan_downgrade(&s, applied,
				  &(struct migrate_target){MIGRATE_TARGET_HEAD,
							   0, 0},
				  plan, &n, err, sizeof(err)) < 0,
	   "head is not a downgrade target");
	ok(migrate_plan_upgrade(&s, applied,
				&(struct migrate_target){
					MIGRATE_TARGET_RELATIVE, 0, -1},
				plan, &n, err, sizeof(err)) < 0,
	   "-1 is not an upgrade target");

	/* stamp */
	memset(applied, 0, sizeof(applied));
	is_int(migrate_target_parse(&s, "c", &t, err, sizeof(err)), 0,
	       "parse c");
	is_int(migrate_plan_stamp(&s, applied, &t, want, err, sizeof(err)), 0,
	       "stamp c");
	ok(want[migrate_set_find_exact(&s, "a")] &&
		   want[migrate_set_find_exact(&s, "b")] &&
		   want[migrate_set_find_exact(&s, "c")] &&
		   !want[migrate_set_find_exact(&s, "d")] &&
		   !want[migrate_set_find_exact(&s, "e")],
	   "stamp c records a, b and c");
	migrate_set_free(&s);

	/* prefixes */
	migrate_set_init(&s);
	add(&s, "abc111", "");
	add(&s, "abc222", "abc111");
	add(&s, "abd333", "abc222");
	is_int(migrate_set_build(&s, err, sizeof(err)), 0, "build prefixes");
	is_int(migrate_target_parse(&s, "abd", &t, err, sizeof(err)), 0,
	       "a unique prefix");
	is_str(s.revs[t.rev].id, "abd333", "the prefix finds its revision");
	ok(migrate_target_parse(&s, "abc", &t, err, sizeof(err)) < 0 &&
		   strstr(err, "ambiguous") && strstr(err, "abc111") &&
		   strstr(err, "abc222"),
	   "an ambiguous prefix names the candidates (%s)", err);
	ok(migrate_target_parse(&s, "zzz", &t, err, sizeof(err)) < 0 &&
		   strstr(err, "no revision"),
	   "an unknown revision (%s)", err);
	ok(migrate_target_parse(&s, "+x", &t, err, sizeof(err)) < 0,
	   "+x is not a target");
	ok(migrate_target_parse(&s, "-0", &t, err, sizeof(err)) < 0,
	   "-0 is not a target");
	migrate_set_free(&s);

	/* errors */
	migrate_set_init(&s);
	add(&s, "x", "y");
	add(&s, "y", "z");
	add(&s, "z", "x");
	add(&s, "w", "");
	ok(migrate_set_build(&s, err, sizeof(err)) < 0 &&
		   strstr(err, "cycle") && strstr(err, "->"),
	   "a cycle is found and shown (%s)", err);
	migrate_set_free(&s);
	migrate_set_init(&s);
	add(&s, "x", "nope");
	ok(migrate_set_build(&s, err, sizeof(err)) < 0 &&
		   strstr(err, "parent nope not found"),
	   "an unknown parent (%s)", err);
	migrate_set_free(&s);
	migrate_set_init(&s);
	add(&s, "x", "");
	add(&s, "x", "");
	ok(migrate_set_build(&s, err, sizeof(err)) < 0 &&
		   strstr(err, "defined twice"),
	   "a duplicate id (%s)", err);
	migrate_set_free(&s);
}

/* +N walks from the current revisions as Alembic does (issue 13). */
static void test_walk(void)
{
	struct migrate_set s;
	struct migrate_target t = {MIGRATE_TARGET_RELATIVE, 0, 1};
	char err[512], buf[256];
	bool applied[8] = {false};
	int plan[8], n;

	/* a - b - c, b - d; e merges c and d */
	migrate_set_init(&s);
	add(&s, "a", "");
	add(&s, "b", "a");
	add(&s, "c", "b");
	add(&s, "d", "b");
	is_int(migrate_set_build(&s, err, sizeof(err)), 0, "build");
	t.n = 3;
	ok(migrate_plan_upgrade(&s, applied, &t, plan, &n, err, sizeof(err)) <
			   0 &&
		   n == 0 && strstr(err, "ambiguous") &&
		   strstr(err, "after b, c and d could each come next") &&
		   strstr(err, "2 heads: c and d"),
	   "+3 from base crosses the branch point: refused (%s)", err);
	t.n = 2;
	is_int(migrate_plan_upgrade(&s, applied, &t, plan, &n, err,
				    sizeof(err)),
	       0, "+2 from base stops at the branch point");
	names(&s, plan, n, buf, sizeof(buf));
	is_str(buf, "a b", "+2: a b");
	applied[migrate_set_find_exact(&s, "a")] = true;
	applied[migrate_set_find_exact(&s, "b")] = true;
	applied[migrate_set_find_exact(&s, "c")] = true;
	t.n = 1;
	ok(migrate_plan_upgrade(&s, applied, &t, plan, &n, err, sizeof(err)) <
			   0 &&
		   strstr(err, "nothing follows c"),
	   "at the head c, +1 does not jump to the other branch (%s)", err);
	add(&s, "e", "c d");
	is_int(migrate_set_build(&s, err, sizeof(err)), 0, "build the merge");
	applied[migrate_set_find_exact(&s, "d")] = true;
	is_int(migrate_plan_upgrade(&s, applied, &t, plan, &n, err,
				    sizeof(err)),
	       0, "with both branches applied, +1 is the merge");
	names(&s, plan, n, buf, sizeof(buf));
	is_str(buf, "e", "+1: e");
	migrate_set_free(&s);
}

/* ----------------------------------------------------------------- SQL */

static void test_split(void)
{
	const char *sql =
		"-- a comment; with a semicolon\n"
		"CREATE TABLE t (a text DEFAULT 'x;y', \"we;ird\" int);\n"
		"/* block /* nested; */ still; */ INSERT INTO t VALUES "
		"(E'it\\'s;', 1);\n"
		"CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ "
		"LANGUAGE sql;\n"
		"CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC "
		"SELECT 1; SELECT CASE WHEN true THEN 2 END; END;\n"
		";;\n"
		"SELECT $1, $$a;b$$";
	struct migrate_sql_stmt *st = NULL;
	size_t n = 0;
	char err[256];

	is_int(migrate_sql_split(sql, &st, &n, err, sizeof(err)), 0, "split");
	is_int((long long)n, 5, "five statements");
	if (n == 5) {
		ok(strncmp(sql + st[0].off, "CREATE TABLE", 12) == 0 &&
			   sql[st[0].off + st[0].len - 1] == ')',
		   "first statement without its comment or ';'");
		is_int(st[0].line, 2, "its line");
		ok(strncmp(sql + st[1].off, "INSERT", 6) == 0,
		   "block comments skipped");
		ok(strncmp(sql + st[3].off, "CREATE FUNCTION g", 17) == 0 &&
			   strncmp(sql + st[3].off + st[3].len - 3, "END", 3) ==
				   0,
		   "BEGIN ATOMIC body kept whole");
		ok(strncmp(sql + st[4].off, "SELECT $1", 9) == 0,
		   "last statement without ';'");
	}
	free(st);
	ok(migrate_sql_split("SELECT 'oops", &st, &n, err, sizeof(err)) < 0 &&
		   strstr(err, "unterminated string"),
	   "unterminated string (%s)", err);
	ok(migrate_sql_split("SELECT $x$ oops", &st, &n, err, sizeof(err)) < 0,
	   "unterminated dollar quote");
	ok(migrate_sql_split("/* oops", &st, &n, err, sizeof(err)) < 0,
	   "unterminated comment");
	is_int(migrate_sql_txn_control("SELECT 1;\nCOMMIT;"), 2,
	       "COMMIT is transaction control, on line 2");
	is_int(migrate_sql_txn_control("begin; select 1"), 1, "BEGIN is");
	is_int(migrate_sql_txn_control("START TRANSACTION"), 1,
	       "START TRANSACTION is");
	is_int(migrate_sql_txn_control("SAVEPOINT a; ROLLBACK TO a; "
				       "RELEASE a"),
	       0, "savepoints are not");
	is_int(migrate_sql_txn_control("DO $$ BEGIN PERFORM 1; END $$; "
				       "CREATE FUNCTION f() RETURNS int "
				       "LANGUAGE sql BEGIN ATOMIC SELECT 1; "
				       "END"),
	       0, "bodies are not");
	ok(migrate_sql_is_empty("  -- nothing\n/* at all */\n"),
	   "comments only is empty");
	ok(!migrate_sql_is_empty("SELECT 1"), "a statement is not empty");
}

static int scan_kinds(const char *sql, char *buf, size_t len)
{
	struct migrate_sql_finding *f = NULL;
	size_t n = 0, o = 0;
	char err[256];

	buf[0] = '\0';
	if (migrate_sql_scan(sql, &f, &n, err, sizeof(err)) < 0)
		return -1;
	for (size_t i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? "," : "",
				      (int)f[i].kind);
	free(f);
	return (int)n;
}

static void test_scan(void)
{
	char buf[128];

	is_int(scan_kinds("DROP TABLE foo;", buf, sizeof(buf)), 1,
	       "DROP TABLE flagged");
	is_str(buf, "0", "as a dropped table");
	is_int(scan_kinds("alter table t drop column c;", buf, sizeof(buf)), 1,
	       "DROP COLUMN flagged");
	is_str(buf, "2", "as a dropped column");
	is_int(scan_kinds("ALTER TABLE IF EXISTS ONLY s.t DROP c, ADD d int;",
			  buf, sizeof(buf)),
	       1, "DROP without COLUMN flagged");
	is_int(scan_kinds("ALTER TABLE t DROP CONSTRAINT k, ALTER COLUMN c "
			  "DROP NOT NULL, ALTER c DROP DEFAULT;",
			  buf, sizeof(buf)),
	       0, "constraint, NOT NULL and default drops are not");
	is_int(scan_kinds("ALTER TABLE t ALTER COLUMN c TYPE varchar(10), "
			  "ALTER d SET DATA TYPE int;",
			  buf, sizeof(buf)),
	       2, "type changes flagged");
	is_str(buf, "4,4", "as possible narrowing");
	is_int(scan_kinds("TRUNCATE t; DROP SCHEMA s CASCADE;", buf,
			  sizeof(buf)),
	       2, "TRUNCATE and DROP SCHEMA flagged");
	is_int(scan_kinds("SELECT 'DROP TABLE x'; -- DROP TABLE y\n"
			  "CREATE INDEX i ON t (a); DROP INDEX i;"
			  " ALTER TABLE t ADD CONSTRAINT k CHECK (a > (1));",
			  buf, sizeof(buf)),
	       0, "strings, comments, indexes and constraints are not");
}

static void test_types(void)
{
	ok(migrate_sql_type_change_safe(1043, 54, 1043, 104),
	   "varchar 50 -> 100");
	ok(!migrate_sql_type_change_safe(1043, 104, 1043, 54),
	   "varchar 100 -> 50 narrows");
	ok(migrate_sql_type_change_safe(1043, 54, 1043, -1),
	   "varchar -> varchar");
	ok(migrate_sql_type_change_safe(1043, 54, 25, -1), "varchar -> text");
	ok(!migrate_sql_type_change_safe(25, -1, 1043, 14),
	   "text -> varchar(10)");
	ok(migrate_sql_type_change_safe(23, -1, 20, -1), "int -> bigint");
	ok(!migrate_sql_type_change_safe(20, -1, 23, -1), "bigint -> int");
	ok(migrate_sql_type_change_safe(1114, -1, 1184, -1),
	   "timestamp -> timestamptz");
	ok(!migrate_sql_type_change_safe(1184, -1, 1114, -1),
	   "timestamptz -> timestamp");
	/* numeric(p,s): typmod = (p << 16 | s) + 4 */
	ok(migrate_sql_type_change_safe(1700, (10 << 16 | 2) + 4, 1700,
					(12 << 16 | 2) + 4),
	   "numeric(10,2) -> numeric(12,2)");
	ok(!migrate_sql_type_change_safe(1700, (10 << 16 | 2) + 4, 1700,
					 (10 << 16 | 3) + 4),
	   "numeric(10,2) -> numeric(10,3) narrows the integer part");
	ok(migrate_sql_type_change_safe(1700, (10 << 16 | 2) + 4, 1700, -1),
	   "numeric(10,2) -> numeric");
	ok(migrate_sql_type_change_safe(23, -1, 1700, (12 << 16) + 4),
	   "int -> numeric(12)");
	ok(!migrate_sql_type_change_safe(20, -1, 1700, (12 << 16) + 4),
	   "bigint -> numeric(12) narrows");
	ok(!migrate_sql_type_change_safe(25, -1, 23, -1), "text -> int");
}

static void test_guard(void)
{
	struct migrate_sql_col b[] = {
		{1, 0, "public.t", NULL, 0, -1, NULL},
		{1, 1, "public.t", "a", 1043, 54, "character varying(50)"},
		{1, 2, "public.t", "b", 23, -1, "integer"},
		{1, 3, "public.t", "c", 23, -1, "integer"},
		{2, 0, "public.gone", NULL, 0, -1, NULL},
		{2, 1, "public.gone", "x", 23, -1, "integer"},
	};
	struct migrate_sql_col a[] = {
		{1, 0, "public.t", NULL, 0, -1, NULL},
		{1, 1, "public.t", "a", 1043, 24, "character varying(20)"},
		{1, 2, "public.t", "b", 20, -1, "bigint"},
		{3, 0, "public.new", NULL, 0, -1, NULL},
	};
	struct migrate_sql_cols before = {b, ARRAY_LEN(b)};
	struct migrate_sql_cols after = {a, ARRAY_LEN(a)};
	struct migrate_sql_finding *f = NULL;
	size_t n = 0;

	is_int(migrate_sql_guard_compare(&before, &after, &f, &n), 0,
	       "compare");
	is_int((long long)n, 3, "three findings");
	if (n == 3) {
		ok(f[0].kind == MIGRATE_SQL_TYPE_NARROWING &&
			   strstr(f[0].what, "public.t.a"),
		   "narrowed a (%s)", f[0].what);
		ok(f[1].kind == MIGRATE_SQL_DROP_COLUMN && strstr(f[1].what,
								  "t.c"),
		   "dropped c (%s)", f[1].what);
		ok(f[2].kind == MIGRATE_SQL_DROP_TABLE && strstr(f[2].what,
								 "gone"),
		   "dropped table (%s)", f[2].what);
	}
	free(f);
}

/* ---------------------------------------------------------------- diff */

static struct migrate_diff_column col(const char *name, const char *type,
				      uint32_t oid, int32_t mod, bool notnull,
				      const char *def)
{
	struct migrate_diff_column c;

	memset(&c, 0, sizeof(c));
	c.name = strdup(name);
	c.qname = strdup(name);
	c.type = strdup(type);
	c.typid = oid;
	c.typmod = mod;
	c.notnull = notnull;
	c.def = def ? strdup(def) : NULL;
	return c;
}

static void one_table(struct migrate_diff_schema *s, const char *name,
		      struct migrate_diff_column *cols, int n,
		      const char *idxtail)
{
	struct migrate_diff_table *t;

	memset(s, 0, sizeof(*s));
	s->tables = calloc(1, sizeof(*s->tables));
	s->ntables = 1;
	t = &s->tables[0];
	t->name = strdup(name);
	t->qname = strdup(name);
	t->cols = calloc((size_t)n, sizeof(*t->cols));
	for (int i = 0; i < n; i++) {
		t->cols[i] = cols[i];
		t->cols[i].attnum = i + 1;
	}
	t->ncols = n;
	if (idxtail) {
		t->idx = calloc(1, sizeof(*t->idx));
		t->idx[0].name = strdup("t_idx");
		t->idx[0].qname = strdup("t_idx");
		t->idx[0].tail = strdup(idxtail);
		t->nidx = 1;
	}
}

static void test_diff(void)
{
	struct migrate_diff_schema from, to, empty;
	struct migrate_diff d;
	struct migrate_diff_column fc[] = {
		col("id", "bigint", 20, -1, true, NULL),
		col("name", "character varying(100)", 1043, 104, false, NULL),
		col("old", "text", 25, -1, false, NULL),
	};
	struct migrate_diff_column tc[] = {
		col("id", "bigint", 20, -1, true, NULL),
		col("name", "character varying(50)", 1043, 54, true,
		    "'x'::character varying"),
		col("added", "integer", 23, -1, false, "0"),
	};
	char *script;

	one_table(&from, "t", fc, 3, "btree (name)");
	one_table(&to, "t", tc, 3, "btree (name DESC)");
	is_int(migrate_diff_compute(&from, &to, 0, &d), 0, "diff");
	script = migrate_diff_script(&d);
	ok(script && strstr(script, "DROP INDEX t_idx") &&
		   strstr(script, "CREATE INDEX t_idx ON t USING btree (name "
				  "DESC)"),
	   "a changed index is dropped and created");
	ok(script && strstr(script, "ALTER TABLE t ADD COLUMN added integer "
				    "DEFAULT 0"),
	   "an added column");
	ok(script && strstr(script, "ALTER TABLE t ALTER COLUMN name TYPE "
				    "character varying(50)"),
	   "a type change");
	ok(script && strstr(script, "SET DEFAULT 'x'::character varying") &&
		   strstr(script, "ALTER COLUMN name SET NOT NULL"),
	   "default and NOT NULL");
	ok(script && strstr(script, "ALTER TABLE t DROP COLUMN old"),
	   "a dropped column");
	{
		int destructive = 0;

		for (int i = 0; i < d.n; i++)
			if (d.v[i].destructive)
				destructive++;
		is_int(destructive, 2,
		       "the narrowing and the dropped column are destructive");
	}
	ok(script && strstr(script, "-- DESTRUCTIVE"),
	   "the script marks them");
	/* the drop of the old index comes before the column changes, the
	 * creation after */
	ok(script && strstr(script, "DROP INDEX") < strstr(script, "TYPE") &&
		   strstr(script, "CREATE INDEX") > strstr(script, "TYPE"),
	   "steps in a runnable order");
	free(script);
	migrate_diff_free(&d);

	memset(&empty, 0, sizeof(empty));
	is_int(migrate_diff_compute(&to, &to, 0, &d), 0, "diff with itself");
	is_int(d.n, 0, "no differences with itself");
	migrate_diff_free(&d);
	is_int(migrate_diff_compute(&empty, &to, 0, &d), 0,
	       "diff from nothing");
	script = migrate_diff_script(&d);
	ok(script && strstr(script, "CREATE TABLE t (\n    id bigint NOT NULL,"),
	   "a new table");
	free(script);
	migrate_diff_free(&d);
	is_int(migrate_diff_compute(&to, &empty, 0, &d), 0, "diff to nothing");
	ok(d.n == 1 && d.v[0].destructive &&
		   strcmp(d.v[0].sql, "DROP TABLE t") == 0,
	   "a dropped table is destructive");
	migrate_diff_free(&d);
	is_int(migrate_diff_compute(&to, &empty, MIGRATE_DIFF_ONLY_TO_TABLES,
				    &d), 0,
	       "restricted diff");
	is_int(d.n, 0, "restricted: extra tables of `from` are ignored");
	migrate_diff_free(&d);
	migrate_diff_schema_free(&from);
	migrate_diff_schema_free(&to);
}

static void test_enum_diff(void)
{
	struct migrate_diff_schema a, b;
	struct migrate_diff d;
	char *script;
	const char *la[] = {"'x'", "'z'"}, *lb[] = {"'w'", "'x'", "'y'", "'z'",
						    "'v'"};

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.enums = calloc(1, sizeof(*a.enums));
	b.enums = calloc(1, sizeof(*b.enums));
	a.nenums = b.nenums = 1;
	a.enums[0].name = strdup("e");
	a.enums[0].qname = strdup("e");
	b.enums[0].name = strdup("e");
	b.enums[0].qname = strdup("e");
	a.enums[0].labels = calloc(2, sizeof(char *));
	a.enums[0].qlabels = calloc(2, sizeof(char *));
	for (int i = 0; i < 2; i++) {
		a.enums[0].qlabels[i] = strdup(la[i]);
		a.enums[0].labels[i] = strndup(la[i] + 1, 1);
	}
	a.enums[0].nlabels = 2;
	b.enums[0].labels = calloc(5, sizeof(char *));
	b.enums[0].qlabels = calloc(5, sizeof(char *));
	for (int i = 0; i < 5; i++) {
		b.enums[0].qlabels[i] = strdup(lb[i]);
		b.enums[0].labels[i] = strndup(lb[i] + 1, 1);
	}
	b.enums[0].nlabels = 5;
	is_int(migrate_diff_compute(&a, &b, 0, &d), 0, "enum diff");
	script = migrate_diff_script(&d);
	ok(script && strstr(script, "ALTER TYPE e ADD VALUE 'w' BEFORE 'x'") &&
		   strstr(script, "ALTER TYPE e ADD VALUE 'y' AFTER 'x'") &&
		   strstr(script, "ALTER TYPE e ADD VALUE 'v' AFTER 'z'"),
	   "added values keep their places");
	free(script);
	migrate_diff_free(&d);
	is_int(migrate_diff_compute(&b, &a, 0, &d), 0, "enum diff back");
	script = migrate_diff_script(&d);
	ok(script && strstr(script, "ALTER TYPE e RENAME TO \"e__old\"") &&
		   strstr(script, "CREATE TYPE e AS ENUM ('x', 'z')") &&
		   strstr(script, "DROP TYPE \"e__old\""),
	   "removed values recreate the type");
	free(script);
	migrate_diff_free(&d);
	migrate_diff_schema_free(&a);
	migrate_diff_schema_free(&b);
}

int main(void)
{
	test_sha256();
	test_parse();
	test_format();
	test_graph();
	test_walk();
	test_split();
	test_scan();
	test_types();
	test_guard();
	test_diff();
	test_enum_diff();
	return tap_done();
}
