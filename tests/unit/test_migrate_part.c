/*
 * test_migrate_part.c - which statements of a non-transactional revision
 * migrate_part.c treats as index changes to run per partition, and the
 * byte ranges it takes from them.
 */
#include <stdlib.h>
#include <string.h>

#include "migrate_part.h"
#include "tap.h"

static char *part(const char *s, size_t off, size_t len)
{
	static char buf[4][256];
	static int k;
	char *b = buf[k++ % 4];

	snprintf(b, 256, "%.*s", (int)len, s + off);
	return b;
}

static void create(const char *s, bool unique, bool ine, const char *name,
		   const char *table, const char *rest)
{
	struct migrate_part_stmt m;

	migrate_part_parse(s, strlen(s), &m);
	if (!ok(m.kind == MIGRATE_PART_CREATE_INDEX, "create: %s", s))
		return;
	ok(m.unique == unique, "unique %d: %s", unique, s);
	ok(m.if_exists == ine, "if not exists %d: %s", ine, s);
	is_str(part(s, m.name_off, m.name_len), name, "name of %s", s);
	is_str(part(s, m.table_off, m.table_len), table, "table of %s", s);
	is_str(s + m.rest_off, rest, "rest of %s", s);
}

static void drop(const char *s, bool ie, const char *name, const char *rest)
{
	struct migrate_part_stmt m;

	migrate_part_parse(s, strlen(s), &m);
	if (!ok(m.kind == MIGRATE_PART_DROP_INDEX, "drop: %s", s))
		return;
	ok(m.if_exists == ie, "if exists %d: %s", ie, s);
	is_str(part(s, m.name_off, m.name_len), name, "name of %s", s);
	is_str(s + m.rest_off, rest, "rest of %s", s);
}

static void other(const char *s)
{
	struct migrate_part_stmt m;

	migrate_part_parse(s, strlen(s), &m);
	ok(m.kind == MIGRATE_PART_OTHER, "run as written: %s", s);
}

int main(void)
{
	create("CREATE INDEX CONCURRENTLY IF NOT EXISTS h_conv_idx\n"
	       "    ON simple_conversation_history\n    (a, b DESC)",
	       false, true, "h_conv_idx", "simple_conversation_history",
	       "\n    (a, b DESC)");
	create("-- a comment\ncreate unique index concurrently \"Odd \"\"x\"\"\""
	       " on public.t using btree (a) where a is not null",
	       true, false, "\"Odd \"\"x\"\"\"", "public.t",
	       " using btree (a) where a is not null");
	create("CREATE /* c /* nested */ */ INDEX CONCURRENTLY i ON \"S\" . t(a)",
	       false, false, "i", "\"S\" . t", "(a)");
	drop("DROP INDEX CONCURRENTLY IF EXISTS simple_conversation_history_recent_idx",
	     true, "simple_conversation_history_recent_idx", "");
	drop("drop index concurrently s.i cascade", false, "s.i", " cascade");
	other("CREATE INDEX i ON t (a)");		/* not concurrent */
	other("CREATE INDEX CONCURRENTLY ON t (a)");	/* no name */
	other("CREATE INDEX CONCURRENTLY i ON ONLY t (a)");
	other("CREATE INDEX CONCURRENTLYX i ON t (a)");
	other("DROP INDEX CONCURRENTLY a, b");
	other("DROP INDEX i");
	other("ALTER TABLE t ADD COLUMN x int");
	other("CREATE TABLE index_concurrently (a int)");
	other("");
	other("CREATE INDEX CONCURRENTLY \"unterminated ON t (a)");
	return tap_done();
}
