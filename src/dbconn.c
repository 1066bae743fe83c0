/*
 * dbconn.c - `convctl db`'s database connection: connecting with convd's
 * settings, running SQL, and the migration lock.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "consts.h"
#include "dbconf.h"
#include "dbconn.h"
#include "migrate_catalog.h"
#include "schema.h"

static const char *env_get(const char *name)
{
	return getenv(name);
}

static void notice_processor(void *arg, const char *message)
{
	(void)arg;
	fflush(stdout);
	fprintf(stderr, "convctl db: server: %s", message);
}

static void set_who(struct dbctx *c)
{
	char uh[320];

	dbctx_user_host(uh, sizeof(uh));
	snprintf(c->who, sizeof(c->who), "%s (%s)", PQuser(c->conn), uh);
}

int dbconn_open(struct dbctx *c)
{
	struct dbconf dc;
	char err[DBCTX_ERRLEN];
	PGresult *r;
	char *q;

	memset(&dc, 0, sizeof(dc));
	if (dbconf_build(&c->cfg, env_get, &dc, err, sizeof(err)) < 0) {
		dbctx_error("database settings: %s", err);
		return DBCTX_EX_FAIL;
	}
	snprintf(c->describe, sizeof(c->describe), "%s", dc.describe);
	c->conn = PQconnectdbParams(dc.keys, dc.vals, 1);
	dbconf_free(&dc);
	if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
		const char *m = c->conn ? PQerrorMessage(c->conn) : "out of memory";

		dbctx_error("cannot connect to the database (%s): %.*s",
			    c->describe, dbconf_msg_len(m), m);
		return DBCTX_EX_CONN;
	}
	PQsetNoticeProcessor(c->conn, notice_processor, NULL);
	r = PQexec(c->conn, "SET client_min_messages = warning;"
			    " SET statement_timeout = 0;"
			    " SET lock_timeout = 0;"
			    " SET idle_in_transaction_session_timeout = 0");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		migrate_catalog_result_error(r, c->conn, err, sizeof(err));
		PQclear(r);
		dbctx_error("%s", err);
		return DBCTX_EX_FAIL;
	}
	PQclear(r);
	if (migrate_catalog_current_schema(c->conn, &c->nsp, err,
					   sizeof(err)) < 0) {
		dbctx_error("%s", err);
		return DBCTX_EX_FAIL;
	}
	q = PQescapeIdentifier(c->conn, c->nsp, strlen(c->nsp));
	if (!q || asprintf(&c->qhist, "%s.%s", q, SCHEMA_HISTORY_TABLE) < 0) {
		c->qhist = NULL;
		PQfreemem(q);
		dbctx_error("out of memory");
		return DBCTX_EX_FAIL;
	}
	PQfreemem(q);
	set_who(c);
	return DBCTX_EX_OK;
}

/* Runs SQL without parameters; returns the result or NULL (err). */
PGresult *dbconn_exec(struct dbctx *c, const char *sql, char *err,
		      size_t errlen)
{
	PGresult *r = PQexec(c->conn, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    st != PGRES_EMPTY_QUERY) {
		migrate_catalog_result_error(r, c->conn, err, errlen);
		PQclear(r);
		return NULL;
	}
	return r;
}

PGresult *dbconn_params(struct dbctx *c, const char *sql, int n,
			const char *const *vals, char *err, size_t errlen)
{
	PGresult *r = PQexecParams(c->conn, sql, n, NULL, vals, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		migrate_catalog_result_error(r, c->conn, err, errlen);
		PQclear(r);
		return NULL;
	}
	return r;
}

int dbconn_ok(struct dbctx *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = dbconn_exec(c, sql, err, errlen);

	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

void dbconn_rollback(struct dbctx *c)
{
	PGresult *r = PQexec(c->conn, "ROLLBACK");

	PQclear(r);
}

static char lock_key_text[32];

/* One pg_try_advisory_lock: *got says whether the lock is ours now. */
static CONVD_WUR int lock_try(struct dbctx *c, bool *got)
{
	const char *p[1] = {lock_key_text};
	char err[DBCTX_ERRLEN];
	PGresult *r = dbconn_params(c,
				    "SELECT pg_try_advisory_lock($1::bigint)",
				    1, p, err, sizeof(err));

	if (!r) {
		dbctx_error("cannot take the migration lock: %s", err);
		return -1;
	}
	*got = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return 0;
}

int dbconn_lock(struct dbctx *c)
{
	char err[DBCTX_ERRLEN];
	usec_t deadline;
	bool got;
	const char *p[1] = {lock_key_text};
	PGresult *r;
	long secs = c->o.given & DBCTX_O_LOCK_TIMEOUT ? c->o.lock_timeout
						 : DBCTX_DEFAULT_LOCK_TIMEOUT;

	snprintf(lock_key_text, sizeof(lock_key_text), "%lld",
		 (long long)CONVD_LOCK_MIGRATE);
	if (lock_try(c, &got) < 0)
		return DBCTX_EX_FAIL;
	if (got)
		return DBCTX_EX_OK;
	r = dbconn_params(c,
			  "SELECT a.pid, coalesce(a.usename, '?'),"
			  " coalesce(host(a.client_addr), 'local'),"
			  " coalesce(nullif(a.application_name, ''), '?')"
			  " FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
			  " WHERE l.locktype = 'advisory' AND l.granted"
			  " AND l.database = (SELECT oid FROM pg_database"
			  "  WHERE datname = current_database())"
			  " AND l.classid = ($1::bigint >> 32)::oid"
			  " AND l.objid = ($1::bigint & 4294967295)::oid"
			  " AND l.objsubid = 1",
			  1, p, err, sizeof(err));
	if (r && PQntuples(r) > 0)
		dbctx_warn("another convctl db run holds the migration lock "
			   "(pid %s, user %s, from %s, %s): waiting up to %ld "
			   "s", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
			   PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3), secs);
	else
		dbctx_warn("another convctl db run holds the migration lock: "
			   "waiting up to %ld s",
			   secs);
	PQclear(r);
	if (secs == 0) {
		dbctx_error("the migration lock is taken and --lock-timeout "
			    "is 0: not waiting");
		return DBCTX_EX_FAIL;
	}
	/*
	 * Polled, not waited for in pg_advisory_lock(): a session blocked in
	 * a statement is an open transaction, and CREATE INDEX CONCURRENTLY
	 * in the run that holds the lock (a non-transactional revision) waits
	 * for every older transaction to end: the two runs would deadlock.
	 */
	deadline = clock_mono_usec() + (usec_t)secs * USEC_PER_SEC;
	for (;;) {
		poll(NULL, 0, 100);
		if (lock_try(c, &got) < 0)
			return DBCTX_EX_FAIL;
		if (got)
			return DBCTX_EX_OK;
		if (clock_mono_usec() >= deadline) {
			dbctx_error("gave up after %ld s waiting for the "
				    "migration lock (see --lock-timeout)",
				    secs);
			return DBCTX_EX_FAIL;
		}
	}
}
