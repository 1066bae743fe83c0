/*
 * dbpart.c - the partitioned history layout and the online conversion to
 * it (`convctl db partition`, `convctl db setup --layout partitioned`).
 *
 * Why native declarative partitioning rather than pg_partman: it needs no
 * extension (nothing to install on managed PostgreSQL services, nothing
 * for the DBA to upgrade with the server) and no background worker; the
 * two jobs pg_partman would do, making partitions ahead and dropping
 * expired ones, are each one function call that convd already has a
 * timer for (see partition.c and retention.c), under convd's advisory
 * lock, logged and counted in convd's stats.  What is given up: partman's
 * sub-partitioning and its many interval types (convd uses one partition
 * per UTC month, sized for retention periods of weeks to years).
 *
 * The conversion, in steps that each check what is already done, so that
 * it can be interrupted at any point and run again (the state of the key
 * back-fill, its watermark, and the chosen boundary live in
 * STATE_TABLE until the swap):
 *  1. the key table and the functions;
 *  2. the key triggers on the plain table (new writes fill the key
 *     table from now on);
 *  3. the back-fill of the key table from the rows with keys, in id
 *     ranges, each under a SHARE lock (writers wait for one batch, a
 *     delete cannot race the copy of its key);
 *  4. CHECK (created_at < B) NOT VALID, then VALIDATE (a scan that does
 *     not block writers); B is the start of the next UTC month, or of the
 *     one after when the next is less than a day away; for an empty table
 *     (a new database) the start of the current month, so that the
 *     months from now on are partitions of their own;
 *  5. a unique index (id, created_at) built CONCURRENTLY (the partition's
 *     half of the partitioned primary key);
 *  6. the partitioned table (under a temporary name), and in one short
 *     transaction with a bounded lock wait (tried again): the plain table
 *     becomes partition p0 FOR VALUES FROM (MINVALUE) TO (B) without a
 *     scan (step 4's constraint proves it), the names move, the id
 *     sequence moves to the new table, the triggers move to it, and the
 *     months from B on are made.
 * Nothing is copied: no row is lost or rewritten, ids and times stay.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consts.h"
#include "dbconf.h"
#include "dbpart.h"

#define H CONVD_T_HISTORY
#define KEYS H "_keys"
#define NEWT H "_new"
/* the names as LIKE patterns (_ escaped) */
#define H_LIKE "simple\\_conversation\\_history"
#define NEWT_LIKE H_LIKE "\\_new"
#define STATE_TABLE "convd_partition_state"
#define BACKFILL_RANGE "20000"
/* A DDL lock is waited for LOCK_TRY_S at a time (writers queue behind a
 * waiting ACCESS EXCLUSIVE request, so never longer), then tried again
 * until the caller's total wait is spent. */
#define LOCK_TRY_S 2

/* The key table, the trigger functions and the maintenance functions.
 * Every function runs with the search_path it was created with, in UTC. */
static const char sql_objects[] =
	"CREATE TABLE IF NOT EXISTS " KEYS " ("
	" user_id varchar(255) NOT NULL,"
	" platform varchar(50) NOT NULL,"
	" idempotency_key varchar(255) NOT NULL,"
	" id bigint NOT NULL,"
	" created_at timestamptz NOT NULL,"
	" CONSTRAINT " KEYS "_pkey PRIMARY KEY"
	" (user_id, platform, idempotency_key));"
	"CREATE INDEX IF NOT EXISTS " KEYS "_created_at_idx ON " KEYS
	" (created_at);"
	/* Before a row with a key is stored: its key, unless the key is
	 * taken, in which case the row is not stored (as ON CONFLICT DO
	 * NOTHING does with the plain layout's unique index).  A key
	 * another transaction is inserting is waited for, as with a unique
	 * index. */
	"CREATE OR REPLACE FUNCTION convd_history_key_insert()"
	" RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS"
	" $f$BEGIN"
	" IF NEW.idempotency_key IS NULL THEN RETURN NEW; END IF;"
	" INSERT INTO " KEYS " (user_id, platform, idempotency_key, id,"
	" created_at) VALUES (NEW.user_id, NEW.platform,"
	" NEW.idempotency_key, NEW.id, NEW.created_at) ON CONFLICT DO NOTHING;"
	" IF FOUND THEN RETURN NEW; END IF;"
	" RETURN NULL;"
	" END$f$;"
	/* A key lives as long as its message. */
	"CREATE OR REPLACE FUNCTION convd_history_key_delete()"
	" RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS"
	" $f$BEGIN"
	" DELETE FROM " KEYS " WHERE user_id = OLD.user_id"
	" AND platform = OLD.platform"
	" AND idempotency_key = OLD.idempotency_key;"
	" RETURN NULL;"
	" END$f$;"
	/* Partitions up to the end of the month `ahead` months after the
	 * current one (UTC), each made empty and then attached (SHARE UPDATE
	 * EXCLUSIVE on the parent: reads and writes go on). */
	"CREATE OR REPLACE FUNCTION " DBPART_PREMAKE_FN "(ahead integer)"
	" RETURNS integer LANGUAGE plpgsql SET search_path FROM CURRENT"
	" SET TimeZone = 'UTC' AS"
	" $f$DECLARE hi timestamptz; upto timestamptz; nm text; made int := 0;"
	" BEGIN"
	" SELECT max(substring(pg_get_expr(c.relpartbound, c.oid)"
	"  FROM 'TO \\(''([^'']*)''\\)')::timestamptz) INTO hi"
	"  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
	"  WHERE i.inhparent = '" H "'::regclass;"
	" IF hi IS NULL THEN hi := date_trunc('month', now()); END IF;"
	" upto := date_trunc('month', now())"
	"  + make_interval(months => greatest(ahead, 0) + 1);"
	" WHILE hi < upto LOOP"
	"  nm := '" H "_p' || to_char(hi, 'YYYYMM');"
	"  EXECUTE format('CREATE TABLE %I (LIKE " H " INCLUDING DEFAULTS)',"
	"   nm);"
	"  EXECUTE format('ALTER TABLE " H " ATTACH PARTITION %I"
	" FOR VALUES FROM (%L) TO (%L)', nm, hi, hi + interval '1 month');"
	"  hi := hi + interval '1 month'; made := made + 1;"
	" END LOOP;"
	" RETURN made;"
	" END$f$;"
	/* Retention: the partitions whose upper bound is at or before the
	 * cut-off are dropped whole, with their keys; returns how many rows
	 * they held.  DROP TABLE needs an ACCESS EXCLUSIVE lock on the parent
	 * for a moment: it is waited for 2 s at most (requests queue behind
	 * it meanwhile); if it cannot be had, the run fails and the next one
	 * tries again.  The batched DELETE that follows finds rows only in the
	 * partition the cut-off falls in. */
	"CREATE OR REPLACE FUNCTION " DBPART_DROP_FN "(cutoff timestamptz)"
	" RETURNS bigint LANGUAGE plpgsql SET search_path FROM CURRENT"
	" SET TimeZone = 'UTC' SET lock_timeout = '2s' AS"
	" $f$DECLARE r record; lo timestamptz; hi timestamptz; n bigint;"
	" total bigint := 0;"
	" BEGIN"
	" FOR r IN SELECT c.oid::regclass AS part,"
	"  pg_get_expr(c.relpartbound, c.oid) AS b"
	"  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
	"  WHERE i.inhparent = '" H "'::regclass LOOP"
	"  hi := substring(r.b FROM 'TO \\(''([^'']*)''\\)')::timestamptz;"
	"  CONTINUE WHEN hi IS NULL OR hi > cutoff;"
	"  lo := substring(r.b FROM 'FROM \\(''([^'']*)''\\)')::timestamptz;"
	"  EXECUTE format('SELECT count(*) FROM %s', r.part) INTO n;"
	"  DELETE FROM " KEYS " WHERE created_at < hi"
	"   AND (lo IS NULL OR created_at >= lo);"
	"  EXECUTE format('DROP TABLE %s', r.part);"
	"  total := total + n;"
	" END LOOP;"
	" RETURN total;"
	" END$f$;";

/* Checks that r succeeded (err set otherwise: "what: the server's
 * message"); keeps it in *want when want is set (caller clears it), else
 * clears it. */
static CONVD_WUR int finish(PGconn *conn, const char *what, PGresult *r,
			    PGresult **want, char *err, size_t errlen)
{
	ExecStatusType s = PQresultStatus(r);

	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		const char *m = r ? PQresultErrorMessage(r) : "";

		if (!m || !*m)
			m = PQerrorMessage(conn);
		snprintf(err, errlen, "%s: %.*s", what, dbconf_msg_len(m), m);
		PQclear(r);
		return -1;
	}
	if (want)
		*want = r;
	else
		PQclear(r);
	return 0;
}

/* Runs sql (no parameters): finish() of its result. */
static CONVD_WUR int run(PGconn *conn, const char *what, const char *sql,
			 PGresult **want, char *err, size_t errlen)
{
	return finish(conn, what, PQexec(conn, sql), want, err, errlen);
}

/* The first value of a one-row result of sql, into buf ("" for NULL). */
static CONVD_WUR int value(PGconn *conn, const char *what, const char *sql,
			   char *buf, size_t len, char *err, size_t errlen)
{
	PGresult *r = NULL;

	if (run(conn, what, sql, &r, err, errlen) < 0)
		return -1;
	snprintf(buf, len, "%s",
		 PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return 0;
}

/* "plain", "partitioned", "converting" (a conversion was begun), or NULL
 * (no history table, or the query failed). */
static const char *layout_of(PGconn *conn)
{
	char buf[16], err[256];

	if (value(conn, "layout",
		  "SELECT CASE WHEN c.relkind = 'p' THEN 'partitioned'"
		  " WHEN to_regclass('" STATE_TABLE "') IS NOT NULL"
		  " THEN 'converting' ELSE 'plain' END"
		  " FROM pg_class c WHERE c.oid = to_regclass('" H "')",
		  buf, sizeof(buf), err, sizeof(err)) < 0 || !buf[0])
		return NULL;
	return strcmp(buf, "partitioned") == 0 ? "partitioned"
	       : strcmp(buf, "converting") == 0 ? "converting"
						 : "plain";
}

/* Runs sql in a transaction with a bounded lock wait; a lock that cannot
 * be had in time (55P03) is waited for again, for wait_s in all. */
static CONVD_WUR int run_locked(PGconn *conn, const char *what,
				const char *sql, long wait_s,
				PGresult **want, char *err, size_t errlen)
{
	char set[64];
	long tries = wait_s / LOCK_TRY_S;

	snprintf(set, sizeof(set), "SET LOCAL lock_timeout = '%ds'",
		 LOCK_TRY_S);
	for (long t = 0;; t++) {
		PGresult *r = NULL;
		const char *state;
		bool retry;

		if (run(conn, what, "BEGIN", NULL, err, errlen) < 0 ||
		    run(conn, what, set, NULL, err, errlen) < 0)
			return -1;
		r = PQexec(conn, sql);
		state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		retry = state && strcmp(state, SQLSTATE_LOCK_NOT_AVAILABLE) == 0 && t + 1 < tries;
		if (finish(conn, what, r, want, err, errlen) == 0) {
			if (run(conn, what, "COMMIT", NULL, err, errlen) == 0)
				return 0;
			if (want)
				PQclear(*want);
			return -1;
		}
		PQclear(PQexec(conn, "ROLLBACK"));
		if (!retry)
			return -1;
		usleep(100000);
	}
}

static CONVD_WUR int backfill(PGconn *conn, long lock_timeout_s, FILE *out,
			      char *err, size_t errlen)
{
	char upto[32], from[32], sql[1024];
	int64_t hi, w;
	uint64_t copied = 0;

	PGresult *m = NULL;

	/* The last id under a SHARE lock: every insert that was under way
	 * while the triggers were made (and may not have fired them) has
	 * committed, so its row is at or below it; later ones fire them. */
	if (value(conn, "the key back-fill",
		  "SELECT backfilled_to FROM " STATE_TABLE, from, sizeof(from),
		  err, errlen) < 0 ||
	    run_locked(conn, "the key back-fill",
		       "LOCK TABLE " H " IN SHARE MODE;"
		       " SELECT coalesce(max(id), 0) FROM " H,
		       lock_timeout_s, &m, err, errlen) < 0)
		return -1;
	snprintf(upto, sizeof(upto), "%s", PQgetvalue(m, 0, 0));
	PQclear(m);
	w = strtoll(from, NULL, 10);
	hi = strtoll(upto, NULL, 10);
	if (w < hi)
		fprintf(out, "copying idempotency keys of ids %" PRId64
			     "..%" PRId64 " to " KEYS "\n", w + 1, hi);
	while (w < hi) {
		PGresult *r = NULL;

		/* the range and the watermark in one transaction: a run
		 * interrupted here starts again at the watermark */
		snprintf(sql, sizeof(sql),
			 "LOCK TABLE " H " IN SHARE MODE;"
			 " WITH i AS (INSERT INTO " KEYS " (user_id, platform,"
			 " idempotency_key, id, created_at)"
			 " SELECT user_id, platform, idempotency_key, id,"
			 " created_at FROM " H " WHERE id > %" PRId64
			 " AND id <= %" PRId64 " + " BACKFILL_RANGE
			 " AND idempotency_key IS NOT NULL"
			 " ON CONFLICT DO NOTHING RETURNING 1)"
			 " UPDATE " STATE_TABLE " SET backfilled_to ="
			 " %" PRId64 " + " BACKFILL_RANGE
			 " RETURNING (SELECT count(*) FROM i)",
			 w, w, w);
		if (run_locked(conn, "copying keys", sql, lock_timeout_s, &r,
			       err, errlen) < 0)
			return -1;
		copied += PQntuples(r) ? strtoull(PQgetvalue(r, 0, 0), NULL, 10)
				       : 0;
		PQclear(r);
		w += strtoll(BACKFILL_RANGE, NULL, 10);
	}
	if (copied)
		fprintf(out, "copied %" PRIu64 " idempotency keys\n", copied);
	return 0;
}

int dbpart_convert(PGconn *conn, long lock_timeout_s, FILE *out, char *err,
		   size_t errlen)
{
	const char *layout = layout_of(conn);
	char buf[256], sql[2048], seq[256];
	PGresult *r = NULL;

	if (!layout) {
		snprintf(err, errlen, "there is no table " H " (run 'convctl "
				      "db setup' first)");
		return -1;
	}
	if (run(conn, "creating the key table and functions", sql_objects,
		NULL, err, errlen) < 0)
		return -1;
	if (strcmp(layout, "partitioned") == 0) {
		snprintf(sql, sizeof(sql), "SELECT " DBPART_PREMAKE_FN "(%d)",
			 DBPART_AHEAD);
		if (value(conn, "making partitions", sql, buf, sizeof(buf), err,
			  errlen) < 0)
			return -1;
		fprintf(out, "the history is partitioned (%s new partitions "
			     "made)\n", buf);
		return 0;
	}
	/* 1. the state: the boundary B and the back-fill watermark */
	if (run(conn, "recording the conversion",
		"CREATE TABLE IF NOT EXISTS " STATE_TABLE
		" (boundary timestamptz NOT NULL, backfilled_to bigint NOT NULL);"
		" INSERT INTO " STATE_TABLE " SELECT CASE"
		" WHEN NOT EXISTS (SELECT 1 FROM " H ") THEN m"
		" WHEN n - now() < interval '1 day' THEN n + interval '1 month'"
		" ELSE n END, 0"
		" FROM (SELECT date_trunc('month', now() AT TIME ZONE 'UTC')"
		" AT TIME ZONE 'UTC' AS m, (date_trunc('month', now() AT TIME"
		" ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC' AS n) b"
		" WHERE NOT EXISTS (SELECT 1 FROM " STATE_TABLE ")",
		NULL, err, errlen) < 0 ||
	    value(conn, "recording the conversion",
		  "SELECT to_char(boundary AT TIME ZONE 'UTC',"
		  " 'YYYY-MM-DD HH24:MI:SS+00') FROM " STATE_TABLE,
		  buf, sizeof(buf), err, errlen) < 0)
		return -1;
	fprintf(out, "converting " H " to monthly partitions; the present "
		     "table becomes the partition " H "_p0 of everything "
		     "before %s\n", buf);
	/* 2. the key triggers on the plain table (once: a resumed run
	 * keeps them, so that no insert goes without them) */
	if (value(conn, "the key triggers",
		  "SELECT count(*) FROM pg_trigger WHERE tgrelid = '" H
		  "'::regclass AND tgname LIKE 'convd_history_key_%'",
		  buf, sizeof(buf), err, errlen) < 0)
		return -1;
	if (strcmp(buf, "2") != 0 &&
	    run_locked(conn, "installing the key triggers",
		       "DROP TRIGGER IF EXISTS convd_history_key_insert ON " H ";"
		       "DROP TRIGGER IF EXISTS convd_history_key_delete ON " H ";"
		       "CREATE TRIGGER convd_history_key_insert BEFORE INSERT"
		       " ON " H " FOR EACH ROW WHEN (NEW.idempotency_key IS"
		       " NOT NULL) EXECUTE FUNCTION convd_history_key_insert();"
		       "CREATE TRIGGER convd_history_key_delete AFTER DELETE"
		       " ON " H " FOR EACH ROW WHEN (OLD.idempotency_key IS"
		       " NOT NULL) EXECUTE FUNCTION convd_history_key_delete()",
		       lock_timeout_s, NULL, err, errlen) < 0)
		return -1;
	/* 3. the keys already stored */
	if (backfill(conn, lock_timeout_s, out, err, errlen) < 0)
		return -1;
	/* 4. the bound, proved by a scan that does not block writers */
	if (value(conn, "the bound",
		  "SELECT count(*) FROM pg_constraint WHERE conrelid = '" H
		  "'::regclass AND conname = '" H "_p0_bound'",
		  buf, sizeof(buf), err, errlen) < 0)
		return -1;
	if (strcmp(buf, "0") == 0) {
		if (value(conn, "adding the bound",
			  "SELECT format('ALTER TABLE " H " ADD CONSTRAINT "
			  H "_p0_bound CHECK (created_at < %L) NOT VALID',"
			  " boundary) FROM " STATE_TABLE,
			  sql, sizeof(sql), err, errlen) < 0)
			return -1;
		if (run_locked(conn, "adding the bound", sql, lock_timeout_s,
			       NULL, err, errlen) < 0)
			return -1;
	}
	fprintf(out, "checking that no row is past the bound\n");
	if (run(conn, "validating the bound",
		"ALTER TABLE " H " VALIDATE CONSTRAINT " H "_p0_bound", NULL,
		err, errlen) < 0)
		return -1;
	/* 5. the partition's half of the primary key (id, created_at) */
	if (value(conn, "the index",
		  "SELECT coalesce((SELECT i.indisvalid::text FROM pg_index i"
		  " WHERE i.indexrelid = to_regclass('" H "_p0_pkey')), 'none')",
		  buf, sizeof(buf), err, errlen) < 0)
		return -1;
	if (strcmp(buf, "false") == 0 &&
	    run(conn, "dropping an index left invalid",
		"DROP INDEX CONCURRENTLY " H "_p0_pkey", NULL, err, errlen) < 0)
		return -1;
	if (strcmp(buf, "true") != 0) {
		fprintf(out, "building the unique index (id, created_at) "
			     "concurrently\n");
		if (run(conn, "building the index",
			"CREATE UNIQUE INDEX CONCURRENTLY " H "_p0_pkey ON " H
			" (id, created_at)", NULL, err, errlen) < 0)
			return -1;
	}
	/* 6. the partitioned table, then the swap */
	if (value(conn, "the id sequence",
		  "SELECT coalesce(pg_get_serial_sequence('" H "', 'id'), '')",
		  seq, sizeof(seq), err, errlen) < 0)
		return -1;
	if (run(conn, "creating the partitioned table",
		"CREATE TABLE IF NOT EXISTS " NEWT " (LIKE " H
		" INCLUDING DEFAULTS, CONSTRAINT " NEWT "_pkey PRIMARY KEY"
		" (id, created_at)) PARTITION BY RANGE (created_at);"
		/* the plain table's own (H_...) non-unique indexes, whatever
		 * the revisions made them, as NEWT_... */
		"DO $m$DECLARE r record; BEGIN"
		" FOR r IN SELECT ic.relname AS nm,"
		"  pg_get_indexdef(x.indexrelid) AS def FROM pg_index x"
		"  JOIN pg_class ic ON ic.oid = x.indexrelid"
		"  WHERE x.indrelid = '" H "'::regclass AND NOT x.indisunique"
		"  AND x.indisvalid AND ic.relname LIKE '" H_LIKE "\\_%' LOOP"
		"  EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON " NEWT " %s',"
		"   '" NEWT "' || substr(r.nm, length('" H "') + 1),"
		"   substring(r.def FROM ' USING .*$'));"
		" END LOOP; END$m$",
		NULL, err, errlen) < 0)
		return -1;
	if (run(conn, "the swap", "SELECT to_char(boundary AT TIME ZONE 'UTC',"
		" 'YYYY-MM-DD HH24:MI:SS+00') FROM " STATE_TABLE, &r, err,
		errlen) < 0)
		return -1;
	snprintf(buf, sizeof(buf), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	{
		/* seq is pg_get_serial_sequence's, quoted as an identifier */
		bool sq = seq[0] != '\0';
		char *swap = NULL;
		int rc;

		if (asprintf(&swap,
			     "LOCK TABLE " H " IN ACCESS EXCLUSIVE MODE;"
			     "DROP TRIGGER IF EXISTS convd_history_key_insert"
			     " ON " H ";"
			     "DROP TRIGGER IF EXISTS convd_history_key_delete"
			     " ON " H ";"
			     "ALTER TABLE " H " RENAME TO " H "_p0;"
			     /* the partition's primary key is its half of
			      * the parent's, on the index of step 5 (else
			      * ATTACH would build one under the lock) */
			     "ALTER TABLE " H "_p0 DROP CONSTRAINT " H "_pkey;"
			     "ALTER TABLE " H "_p0 ADD CONSTRAINT " H
			     "_p0_pkey PRIMARY KEY USING INDEX " H "_p0_pkey;"
			     /* H_x becomes H_p0_x, NEWT_x becomes H_x */
			     "DO $m$DECLARE r record; BEGIN"
			     " FOR r IN SELECT ic.relname AS nm FROM pg_index x"
			     "  JOIN pg_class ic ON ic.oid = x.indexrelid"
			     "  WHERE x.indrelid = '" H "_p0'::regclass"
			     "  AND NOT x.indisprimary"
			     "  AND ic.relname LIKE '" H_LIKE "\\_%%'"
			     "  AND ic.relname NOT LIKE '" H_LIKE "\\_p0\\_%%'"
			     " LOOP EXECUTE format('ALTER INDEX %%I RENAME TO %%I',"
			     "  r.nm, '" H "_p0' || substr(r.nm, length('" H
			     "') + 1));"
			     " END LOOP; END$m$;"
			     "ALTER TABLE " NEWT " RENAME TO " H ";"
			     "ALTER TABLE " H " RENAME CONSTRAINT " NEWT
			     "_pkey TO " H "_pkey;"
			     "DO $m$DECLARE r record; BEGIN"
			     " FOR r IN SELECT ic.relname AS nm FROM pg_index x"
			     "  JOIN pg_class ic ON ic.oid = x.indexrelid"
			     "  WHERE x.indrelid = '" H "'::regclass"
			     "  AND NOT x.indisprimary"
			     "  AND ic.relname LIKE '" NEWT_LIKE "\\_%%'"
			     " LOOP EXECUTE format('ALTER INDEX %%I RENAME TO %%I',"
			     "  r.nm, '" H "' || substr(r.nm, length('" NEWT
			     "') + 1));"
			     " END LOOP; END$m$;"
			     "ALTER TABLE " H " ATTACH PARTITION " H "_p0"
			     " FOR VALUES FROM (MINVALUE) TO ('%s');"
			     "%s%s%s"
			     "CREATE TRIGGER convd_history_key_insert BEFORE"
			     " INSERT ON " H " FOR EACH ROW WHEN"
			     " (NEW.idempotency_key IS NOT NULL)"
			     " EXECUTE FUNCTION convd_history_key_insert();"
			     "CREATE TRIGGER convd_history_key_delete AFTER"
			     " DELETE ON " H " FOR EACH ROW WHEN"
			     " (OLD.idempotency_key IS NOT NULL)"
			     " EXECUTE FUNCTION convd_history_key_delete();"
			     "DROP TABLE " STATE_TABLE ";"
			     "SELECT " DBPART_PREMAKE_FN "(%d),"
			     " (SELECT coalesce(max(id), 0) FROM " H ")",
			     buf, sq ? "ALTER SEQUENCE " : "",
			     sq ? seq : "",
			     sq ? " OWNED BY " H ".id;" : "",
			     DBPART_AHEAD) < 0)
			swap = NULL;
		if (!swap) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		fprintf(out, "swapping the tables (the lock is waited for "
			     "%d s at a time, %ld s in all)\n",
			LOCK_TRY_S, lock_timeout_s);
		rc = run_locked(conn, "the swap", swap, lock_timeout_s, &r,
				err, errlen);
		free(swap);
		if (rc < 0)
			return -1;
		snprintf(buf, sizeof(buf), "%s", PQgetvalue(r, 0, 1));
		PQclear(r);
	}
	/* The inserts that waited for the swap have committed once this
	 * SHARE lock is had: their keys, if a trigger missed any. */
	snprintf(sql, sizeof(sql),
		 "LOCK TABLE " H " IN SHARE MODE;"
		 " INSERT INTO " KEYS " (user_id, platform, idempotency_key,"
		 " id, created_at) SELECT user_id, platform, idempotency_key,"
		 " id, created_at FROM " H " WHERE id > %" PRId64
		 " AND idempotency_key IS NOT NULL ON CONFLICT DO NOTHING",
		 (int64_t)strtoll(buf, NULL, 10));
	if (run_locked(conn, "the keys written during the swap", sql,
		       lock_timeout_s, NULL, err, errlen) < 0)
		return -1;
	fprintf(out, "the history is partitioned by month\n");
	return 0;
}
