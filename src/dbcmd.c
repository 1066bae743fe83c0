/*
 * dbcmd.c - `convctl db ...`: the schema migration commands.
 *
 * Every command that changes the database takes a session advisory lock
 * (MIGRATE_LOCK_KEY, bounded wait), then reads the history table, so that
 * concurrent runs from several hosts apply each revision exactly once.
 * Each transactional revision runs in its own transaction together with
 * its history row and the destructive-change guard; a non-transactional
 * one is marked dirty while it runs and stays dirty if it fails.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, getopt_long */
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "clock.h"
#include "config.h"
#include "dbcmd.h"
#include "dbconf.h"
#include "migrate.h"
#include "migrate_adopt.h"
#include "migrate_catalog.h"
#include "migrate_diff.h"
#include "migrate_sql.h"
#include "schema.h"
#include "dbpart.h"
#include "json.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef PKGDATADIR
#define PKGDATADIR "/usr/share/convd"
#endif

#define EX_OK 0
#define EX_FAIL 1
#define EX_USAGE 2
#define EX_CONN 3

#define MODEL_FILE "schema.sql"
#define DEFAULT_LOCK_TIMEOUT 60
#define ERRLEN 2048

/* ------------------------------------------------------------- options */

enum {
	O_SQL = 1u << 0,
	O_TRY = 1u << 1,
	O_YES = 1u << 2,
	O_ALLOW_DESTRUCTIVE = 1u << 3,
	O_ACCEPT_CHANGED = 1u << 4,
	O_AUTOGENERATE = 1u << 5,
	O_OFFLINE = 1u << 6,
	O_APPLIED = 1u << 7,
	O_ROLLED_BACK = 1u << 8,
	O_MESSAGE = 1u << 9,
	O_BACKUP = 1u << 10,
	O_MODEL = 1u << 11,
	O_LOCK_TIMEOUT = 1u << 12,
	O_LEGACY_TZ = 1u << 13,
	O_HEAD = 1u << 14,
	O_SPLICE = 1u << 15,
	O_LAYOUT = 1u << 16,
};

struct opts {
	unsigned given;
	const char *message, *backup, *model, *head;
	const char *legacy_tz;		/* setup --legacy-timezone ZONE */
	long lock_timeout;
	bool partitioned;	/* setup --layout partitioned */
	char **args;
	int nargs;
};

/* One applied revision, as the history table has it. */
struct hist {
	char *revision, *parents, *message, *checksum, *kind, *applied_at,
		*applied_by, *note;
	int64_t duration_ms;
	bool dirty;
	int idx;	/* in the set, or -1 */
};

struct ctx {
	const char *cmd;
	bool json;
	struct json out;	/* stdout, with --json */
	struct opts o;
	struct convd_config cfg;
	bool cfg_ok;
	const char *dir;
	char *model_path;
	struct migrate_set set;
	bool set_ok;
	PGconn *conn;
	char describe[512];
	char *nsp;		/* schema we work in */
	char *qhist;		/* "nsp".convd_schema_history */
	bool has_hist;
	struct hist *hist;
	int nhist;
	bool *applied;		/* per revision of the set (clean or dirty) */
	char who[512];
};

/* Set while a database is only tried (db show): its errors are not ours. */
static bool quiet_errors;

static void CONVD_PRINTF(1, 2) errmsg(const char *fmt, ...)
{
	va_list ap;

	if (quiet_errors)
		return;
	fflush(stdout);
	fputs("convctl db: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void CONVD_PRINTF(1, 2) warnmsg(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("convctl db: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Puts a formatted prefix before the text already in err. */
static void CONVD_PRINTF(3, 4) err_prefix(char *err, size_t len,
					  const char *fmt, ...)
{
	char pre[512], *old = strdup(err);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	snprintf(err, len, "%s%s", pre, old ? old : "");
	free(old);
}

/* A message on one line (newlines and control characters escaped). */
static char *oneline(const char *msg)
{
	char *s = migrate_message_escape(msg ? msg : "");

	return s ? s : strdup("?");
}

/* -------------------------------------------------------------- set-up */

static const char *env_get(const char *name)
{
	return getenv(name);
}

static int load_config(struct ctx *c, const char *config_path)
{
	char err[ERRLEN];
	const char *path = config_path;

	if (config_init(&c->cfg) < 0) {
		errmsg("cannot initialise the configuration");
		return EX_FAIL;
	}
	c->cfg_ok = true;
	if (!path && access(SYSCONFDIR "/convd.conf", F_OK) == 0)
		path = SYSCONFDIR "/convd.conf";
	if (path && config_load_file(&c->cfg, path, err, sizeof(err)) < 0) {
		errmsg("%s", err);
		return EX_FAIL;
	}
	c->dir = c->cfg.migrations.directory && c->cfg.migrations.directory[0]
			 ? c->cfg.migrations.directory
			 : PKGDATADIR "/migrations";
	if (c->o.model) {
		c->model_path = strdup(c->o.model);
	} else if (asprintf(&c->model_path, "%s/%s", c->dir, MODEL_FILE) < 0) {
		c->model_path = NULL;
	}
	if (!c->model_path) {
		errmsg("out of memory");
		return EX_FAIL;
	}
	return EX_OK;
}

static void report_file(const char *msg, void *arg)
{
	(void)arg;
	errmsg("%s", msg);
}

/* Reads and checks the revisions of the migrations directory. */
static int load_set(struct ctx *c)
{
	char err[ERRLEN];

	migrate_set_init(&c->set);
	c->set_ok = true;
	if (migrate_set_load_dir(&c->set, c->dir, MODEL_FILE, report_file,
				 NULL, err, sizeof(err)) < 0) {
		errmsg("%s", err);
		return EX_FAIL;
	}
	if (migrate_set_build(&c->set, err, sizeof(err)) < 0) {
		errmsg("%s: %s", c->dir, err);
		return EX_FAIL;
	}
	c->applied = calloc((size_t)c->set.n + 1, sizeof(bool));
	if (!c->applied) {
		errmsg("out of memory");
		return EX_FAIL;
	}
	return EX_OK;
}

static void notice_processor(void *arg, const char *message)
{
	(void)arg;
	fflush(stdout);
	fprintf(stderr, "convctl db: server: %s", message);
}

static void set_who(struct ctx *c)
{
	struct passwd *pw = getpwuid(geteuid());
	char host[256] = "?";

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "?");
	host[sizeof(host) - 1] = '\0';
	snprintf(c->who, sizeof(c->who), "%s (%s@%s)", PQuser(c->conn),
		 pw ? pw->pw_name : "?", host);
}

static int db_connect(struct ctx *c)
{
	struct dbconf dc;
	char err[ERRLEN];
	PGresult *r;
	char *q;

	memset(&dc, 0, sizeof(dc));
	if (dbconf_build(&c->cfg, env_get, &dc, err, sizeof(err)) < 0) {
		errmsg("database settings: %s", err);
		return EX_FAIL;
	}
	snprintf(c->describe, sizeof(c->describe), "%s", dc.describe);
	c->conn = PQconnectdbParams(dc.keys, dc.vals, 1);
	dbconf_free(&dc);
	if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
		const char *m = c->conn ? PQerrorMessage(c->conn) : "out of memory";
		size_t l = strlen(m);

		while (l > 0 && (m[l - 1] == '\n' || m[l - 1] == ' '))
			l--;
		errmsg("cannot connect to the database (%s): %.*s", c->describe,
		       (int)l, m);
		return EX_CONN;
	}
	PQsetNoticeProcessor(c->conn, notice_processor, NULL);
	r = PQexec(c->conn, "SET client_min_messages = warning;"
			    " SET statement_timeout = 0;"
			    " SET lock_timeout = 0;"
			    " SET idle_in_transaction_session_timeout = 0");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		mcat_result_error(r, c->conn, err, sizeof(err));
		PQclear(r);
		errmsg("%s", err);
		return EX_FAIL;
	}
	PQclear(r);
	if (mcat_current_schema(c->conn, &c->nsp, err, sizeof(err)) < 0) {
		errmsg("%s", err);
		return EX_FAIL;
	}
	q = PQescapeIdentifier(c->conn, c->nsp, strlen(c->nsp));
	if (!q || asprintf(&c->qhist, "%s.%s", q, SCHEMA_HISTORY_TABLE) < 0) {
		c->qhist = NULL;
		PQfreemem(q);
		errmsg("out of memory");
		return EX_FAIL;
	}
	PQfreemem(q);
	set_who(c);
	return EX_OK;
}

/* Runs SQL without parameters; returns the result or NULL (err). */
static PGresult *sql_exec(struct ctx *c, const char *sql, char *err,
			  size_t errlen)
{
	PGresult *r = PQexec(c->conn, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    st != PGRES_EMPTY_QUERY) {
		mcat_result_error(r, c->conn, err, errlen);
		PQclear(r);
		return NULL;
	}
	return r;
}

static PGresult *sql_params(struct ctx *c, const char *sql, int n,
			    const char *const *vals, char *err, size_t errlen)
{
	PGresult *r = PQexecParams(c->conn, sql, n, NULL, vals, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		mcat_result_error(r, c->conn, err, errlen);
		PQclear(r);
		return NULL;
	}
	return r;
}

static int sql_ok(struct ctx *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = sql_exec(c, sql, err, errlen);

	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

static void sql_rollback(struct ctx *c)
{
	PGresult *r = PQexec(c->conn, "ROLLBACK");

	PQclear(r);
}

/* ------------------------------------------------------ history table */

static char *history_ddl(struct ctx *c)
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
		     c->qhist) < 0)
		return NULL;
	return s;
}

static int history_create(struct ctx *c, char *err, size_t errlen)
{
	char *ddl = history_ddl(c);
	int rc;

	if (!ddl) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = sql_ok(c, ddl, err, errlen);
	free(ddl);
	if (rc == 0)
		c->has_hist = true;
	return rc;
}

static void hist_free(struct ctx *c)
{
	for (int i = 0; i < c->nhist; i++) {
		struct hist *h = &c->hist[i];

		free(h->revision);
		free(h->parents);
		free(h->message);
		free(h->checksum);
		free(h->kind);
		free(h->applied_at);
		free(h->applied_by);
		free(h->note);
	}
	free(c->hist);
	c->hist = NULL;
	c->nhist = 0;
	if (c->applied)
		memset(c->applied, 0, sizeof(bool) * (size_t)c->set.n);
}

/*
 * The live columns, types and keys against what the recorded revisions
 * promise (SCHEMA_VERIFY_QUERY, the check convd makes): each difference
 * goes to cb.  Returns the number of differences, -1 with err on failure.
 */
static int verify_schema(struct ctx *c, void (*cb)(void *arg, const char *msg),
			 void *arg, char *err, size_t errlen)
{
	PGresult *r;
	int n;

	if (!c->has_hist)
		return 0;
	r = sql_exec(c, SCHEMA_VERIFY_QUERY, err, errlen);
	if (!r)
		return -1;
	n = PQntuples(r);
	for (int i = 0; i < n && cb; i++)
		cb(arg, PQgetvalue(r, i, 0));
	PQclear(r);
	return n;
}

/* Reads the history table (if it exists) and marks what is applied. */
static int history_load(struct ctx *c)
{
	char err[ERRLEN], *sql;
	const char *p[1] = {c->qhist};
	PGresult *r;
	bool oom = false;

	hist_free(c);
	r = sql_params(c, "SELECT to_regclass($1) IS NOT NULL", 1, p, err,
		       sizeof(err));
	if (!r) {
		errmsg("%s", err);
		return EX_FAIL;
	}
	c->has_hist = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!c->has_hist)
		return EX_OK;
	if (asprintf(&sql,
		     "SELECT revision, array_to_string(parents, ' '), message,"
		     " checksum, kind, to_char(applied_at AT TIME ZONE 'UTC',"
		     " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), applied_by,"
		     " duration_ms, dirty, note FROM %s"
		     " ORDER BY applied_at, revision",
		     c->qhist) < 0) {
		errmsg("out of memory");
		return EX_FAIL;
	}
	r = sql_exec(c, sql, err, sizeof(err));
	free(sql);
	if (!r) {
		errmsg("cannot read %s: %s", c->qhist, err);
		return EX_FAIL;
	}
	c->hist = calloc((size_t)PQntuples(r) + 1, sizeof(*c->hist));
	if (!c->hist) {
		PQclear(r);
		errmsg("out of memory");
		return EX_FAIL;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		struct hist *h = &c->hist[c->nhist++];

#define DUP(col) (PQgetisnull(r, i, col) ? NULL : strdup(PQgetvalue(r, i, col)))
		h->revision = DUP(0);
		h->parents = DUP(1);
		h->message = DUP(2);
		h->checksum = DUP(3);
		h->kind = DUP(4);
		h->applied_at = DUP(5);
		h->applied_by = DUP(6);
		h->note = DUP(9);
#undef DUP
		h->duration_ms = strtoll(PQgetvalue(r, i, 7), NULL, 10);
		h->dirty = PQgetvalue(r, i, 8)[0] == 't';
		if (!h->revision || !h->parents || !h->message ||
		    !h->checksum || !h->kind || !h->applied_at ||
		    !h->applied_by)
			oom = true;
		h->idx = h->revision ? migrate_set_find_exact(&c->set,
							      h->revision)
				     : -1;
		if (h->idx >= 0)
			c->applied[h->idx] = true;
	}
	PQclear(r);
	if (oom) {
		errmsg("out of memory");
		return EX_FAIL;
	}
	return EX_OK;
}

static const struct hist *hist_of(const struct ctx *c, int idx)
{
	for (int i = 0; i < c->nhist; i++)
		if (c->hist[i].idx == idx)
			return &c->hist[i];
	return NULL;
}

/* Problems that stop changes: dirty, missing files, changed files. */
struct problems {
	int dirty, missing, changed;
};

static void problem_print(void *arg, const char *msg)
{
	(void)arg;
	errmsg("%s", msg);
}

/* Counts the problems and calls cb (if not NULL) with each as a
 * sentence. */
static void find_problems_cb(const struct ctx *c, struct problems *pr,
			     void (*cb)(void *arg, const char *msg),
			     void *arg)
{
	char msg[ERRLEN];

	memset(pr, 0, sizeof(*pr));
	for (int i = 0; i < c->nhist; i++) {
		const struct hist *h = &c->hist[i];

		if (h->dirty) {
			pr->dirty++;
			snprintf(msg, sizeof(msg),
				 "revision %s is dirty: a non-transactional "
				 "run did not finish (%s).  Repair the "
				 "database by hand, then run 'convctl db "
				 "resolve %s --applied' if its changes are in "
				 "place or 'convctl db resolve %s "
				 "--rolled-back' if they are not",
				 h->revision, h->note ? h->note : "no note",
				 h->revision, h->revision);
			if (cb)
				cb(arg, msg);
		}
		if (h->idx < 0) {
			pr->missing++;
			snprintf(msg, sizeof(msg),
				 "revision %s is applied but not in %s (its "
				 "file is missing)",
				 h->revision, c->dir);
			if (cb)
				cb(arg, msg);
		} else if (strcmp(h->checksum,
				  c->set.revs[h->idx].checksum) != 0) {
			pr->changed++;
			snprintf(msg, sizeof(msg),
				 "revision %s (%s) changed since it was "
				 "applied (checksum %.12s, file %.12s)",
				 h->revision, c->set.revs[h->idx].path,
				 h->checksum, c->set.revs[h->idx].checksum);
			if (cb)
				cb(arg, msg);
		}
	}
}

static void find_problems(const struct ctx *c, struct problems *pr,
			  bool print)
{
	find_problems_cb(c, pr, print ? problem_print : NULL, NULL);
}

/* ---------------------------------------------------------------- lock */

static char lock_key_text[32];

/* One pg_try_advisory_lock: *got says whether the lock is ours now. */
static CONVD_WUR int lock_try(struct ctx *c, bool *got)
{
	const char *p[1] = {lock_key_text};
	char err[ERRLEN];
	PGresult *r = sql_params(c, "SELECT pg_try_advisory_lock($1::bigint)",
				 1, p, err, sizeof(err));

	if (!r) {
		errmsg("cannot take the migration lock: %s", err);
		return -1;
	}
	*got = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return 0;
}

static int lock_acquire(struct ctx *c)
{
	char err[ERRLEN];
	usec_t deadline;
	bool got;
	const char *p[1] = {lock_key_text};
	PGresult *r;
	long secs = c->o.given & O_LOCK_TIMEOUT ? c->o.lock_timeout
						 : DEFAULT_LOCK_TIMEOUT;

	snprintf(lock_key_text, sizeof(lock_key_text), "%lld",
		 (long long)MIGRATE_LOCK_KEY);
	if (lock_try(c, &got) < 0)
		return EX_FAIL;
	if (got)
		return EX_OK;
	r = sql_params(c,
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
		warnmsg("another convctl db run holds the migration lock (pid "
			"%s, user %s, from %s, %s): waiting up to %ld s",
			PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
			PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3), secs);
	else
		warnmsg("another convctl db run holds the migration lock: "
			"waiting up to %ld s",
			secs);
	PQclear(r);
	if (secs == 0) {
		errmsg("the migration lock is taken and --lock-timeout is 0: "
		       "not waiting");
		return EX_FAIL;
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
			return EX_FAIL;
		if (got)
			return EX_OK;
		if (clock_mono_usec() >= deadline) {
			errmsg("gave up after %ld s waiting for the migration "
			       "lock (see --lock-timeout)",
			       secs);
			return EX_FAIL;
		}
	}
}

/* ------------------------------------------------- running revisions */

/* Line in a section for a 1-based character position in it. */
static int pos_line(const char *sql, long pos)
{
	int line = 1;
	long chars = 0;

	for (const unsigned char *p = (const unsigned char *)sql;
	     *p && chars < pos - 1; p++) {
		if ((*p & 0xc0) != 0x80)
			chars++;
		if (*p == '\n')
			line++;
	}
	return line;
}

/* "FILE:LINE: message" for an error in a statement starting at line0. */
static void stmt_error(struct ctx *c, PGresult *r,
		       const struct migrate_rev *rev, const char *stmt,
		       int line0, char *out, size_t outlen)
{
	const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
	int line = line0;

	if (pos)
		line += pos_line(stmt, strtol(pos, NULL, 10)) - 1;
	mcat_result_error(r, c->conn, out, outlen);
	if (rev->path)
		err_prefix(out, outlen, "%s:%d: ", rev->path, line);
}

static char *parents_array(const struct migrate_rev *r)
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

static int record_applied(struct ctx *c, const struct migrate_rev *rev,
			  const char *kind, int64_t ms, bool dirty,
			  const char *note, char *err, size_t errlen)
{
	char *parents = parents_array(rev), *sql, msbuf[32];
	const char *p[9];
	PGresult *r;

	snprintf(msbuf, sizeof(msbuf), "%" PRId64, ms);
	if (!parents ||
	    asprintf(&sql,
		     "INSERT INTO %s (revision, parents, message, checksum,"
		     " kind, applied_by, duration_ms, dirty, note)"
		     " VALUES ($1, $2::text[], $3, $4, $5, $6, $7::bigint,"
		     " $8::boolean, $9)",
		     c->qhist) < 0) {
		free(parents);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p[0] = rev->id;
	p[1] = parents;
	p[2] = rev->message;
	p[3] = rev->checksum;
	p[4] = kind;
	p[5] = c->who;
	p[6] = msbuf;
	p[7] = dirty ? "true" : "false";
	p[8] = note;
	r = sql_params(c, sql, 9, p, err, errlen);
	free(sql);
	free(parents);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

/* UPDATE/DELETE of one history row: head, the table and tail make the
 * statement; $1 is the revision, $2 an optional text. */
static int record_change(struct ctx *c, const char *head, const char *tail,
			 const char *rev, const char *arg, char *err,
			 size_t errlen)
{
	char *sql;
	const char *p[2] = {rev, arg};
	PGresult *r;

	if (asprintf(&sql, "%s%s%s", head, c->qhist, tail) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r = sql_params(c, sql, arg ? 2 : 1, p, err, errlen);
	free(sql);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

static void print_findings(const char *rev, const struct migrate_finding *f,
			   size_t n)
{
	for (size_t i = 0; i < n; i++)
		errmsg("revision %s %s: %s", rev,
		       migrate_hazard_name(f[i].kind), f[i].what);
}

/* How run_transactional runs a revision. */
enum run_how {
	RUN_OWN_TXN,	/* in a transaction of its own, committed */
	RUN_IN_TXN,	/* in the caller's transaction (reset) */
	RUN_REHEARSE,	/* in the caller's transaction, rolled back later */
};

/*
 * One transactional revision, up or down, with its history row and the
 * destructive-change guard: in its own transaction, or in the caller's
 * (RUN_IN_TXN, RUN_REHEARSE: every check and the history row alike, the
 * caller commits or rolls back).
 */
static int run_transactional(struct ctx *c, int idx, bool up,
			     enum run_how how, bool allow_destructive)
{
	bool rehearse = how == RUN_REHEARSE, own = how == RUN_OWN_TXN;
	const struct migrate_rev *rev = &c->set.revs[idx];
	const char *sql = up ? rev->up : rev->down;
	int line0 = up ? rev->up_line : rev->down_line;
	struct migrate_cols before = {NULL, 0}, after = {NULL, 0};
	struct migrate_finding *f = NULL;
	struct migrate_stmt *st = NULL;
	size_t nf = 0, nst = 0;
	char err[ERRLEN] = "";
	usec_t t0;
	int64_t ms;
	PGresult *r;

	if (migrate_sql_split(sql, &st, &nst, err, sizeof(err)) < 0) {
		errmsg("revision %s (%s): %s", rev->id,
		       rev->path ? rev->path : "", err);
		return EX_FAIL;
	}
	if (migrate_sql_txn_control(sql)) {
		errmsg("revision %s (%s:%d): a transactional revision runs in "
		       "convctl's own transaction and must not begin or end "
		       "one; remove the statement, or mark the revision "
		       "'-- transactional: no'",
		       rev->id, rev->path ? rev->path : "",
		       line0 + migrate_sql_txn_control(sql) - 1);
		free(st);
		return EX_FAIL;
	}
	if (own && sql_ok(c, "BEGIN", err, sizeof(err)) < 0)
		goto fail;
	if (mcat_columns(c->conn, &before, err, sizeof(err)) < 0)
		goto fail;
	t0 = clock_mono_usec();
	/* Statement by statement (in the one transaction), so that an
	 * error names its file and line. */
	for (size_t i = 0; i < nst; i++) {
		char *one = strndup(sql + st[i].off, st[i].len);

		if (!one) {
			snprintf(err, sizeof(err), "out of memory");
			goto fail;
		}
		r = PQexec(c->conn, one);
		if (PQresultStatus(r) != PGRES_COMMAND_OK &&
		    PQresultStatus(r) != PGRES_TUPLES_OK &&
		    PQresultStatus(r) != PGRES_EMPTY_QUERY) {
			stmt_error(c, r, rev, one, line0 + st[i].line - 1, err,
				   sizeof(err));
			PQclear(r);
			free(one);
			goto fail;
		}
		PQclear(r);
		free(one);
	}
	ms = (clock_mono_usec() - t0) / 1000;
	if (mcat_columns(c->conn, &after, err, sizeof(err)) < 0 ||
	    migrate_guard_compare(&before, &after, &f, &nf) < 0) {
		if (!err[0])
			snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	if (nf > 0) {
		if (allow_destructive) {
			for (size_t i = 0; i < nf; i++)
				warnmsg("revision %s %s: %s", rev->id,
					migrate_hazard_name(f[i].kind),
					f[i].what);
		} else {
			print_findings(rev->id, f, nf);
			snprintf(err, sizeof(err),
				 "it is destructive: nothing was changed; run "
				 "again with --allow-destructive to accept "
				 "the loss");
			goto fail;
		}
	}
	if (up ? record_applied(c, rev, "applied", ms, false, NULL, err,
				sizeof(err)) < 0
	       : record_change(c, "DELETE FROM ", " WHERE revision = $1",
			       rev->id, NULL, err, sizeof(err)) < 0)
		goto fail;
	if (own && sql_ok(c, "COMMIT", err, sizeof(err)) < 0)
		goto fail;
	migrate_cols_free(&before);
	migrate_cols_free(&after);
	free(f);
	free(st);
	if (!c->json || !rehearse) {
		char *m = oneline(rev->message);

		printf("%s %s: %s (%" PRId64 " ms)\n",
		       rehearse ? (up ? "would apply" : "would revert")
				: (up ? "applied" : "reverted"),
		       rev->id, m, ms);
		free(m);
	}
	return EX_OK;
fail:
	if (own)
		sql_rollback(c);
	migrate_cols_free(&before);
	migrate_cols_free(&after);
	free(f);
	free(st);
	errmsg("revision %s %s: %s", rev->id,
	       rehearse ? "would fail" : (up ? "failed" : "failed to revert"),
	       err);
	return EX_FAIL;
}

/*
 * A non-transactional revision: marked dirty first (committed), each
 * statement on its own, then marked clean.  On failure it stays dirty.
 */
/*
 * The checks made before a non-transactional revision runs (it splits,
 * and it is not destructive unless allowed); *st gets its statements
 * when st is not NULL.
 */
static int nontx_check(const struct migrate_rev *rev, bool up,
		       bool allow_destructive, struct migrate_stmt **st,
		       size_t *nst)
{
	const char *sql = up ? rev->up : rev->down;
	struct migrate_stmt *st1 = NULL;
	struct migrate_finding *f = NULL;
	size_t nst1 = 0, nf = 0;
	char err[ERRLEN];

	if (migrate_sql_split(sql, &st1, &nst1, err, sizeof(err)) < 0 ||
	    migrate_sql_scan(sql, &f, &nf, err, sizeof(err)) < 0) {
		errmsg("revision %s: %s", rev->id, err);
		free(st1);
		return EX_FAIL;
	}
	if (nf > 0 && !allow_destructive) {
		print_findings(rev->id, f, nf);
		errmsg("revision %s is destructive: nothing was changed; run "
		       "again with --allow-destructive to accept the loss",
		       rev->id);
		free(st1);
		free(f);
		return EX_FAIL;
	}
	free(f);
	if (st) {
		*st = st1;
		*nst = nst1;
	} else {
		free(st1);
	}
	return EX_OK;
}

static int run_nontransactional(struct ctx *c, int idx, bool up,
				bool allow_destructive)
{
	const struct migrate_rev *rev = &c->set.revs[idx];
	const char *sql = up ? rev->up : rev->down;
	int line0 = up ? rev->up_line : rev->down_line;
	struct migrate_stmt *st = NULL;
	size_t nst = 0;
	char err[ERRLEN], msbuf[32];
	usec_t t0 = clock_mono_usec();

	if (nontx_check(rev, up, allow_destructive, &st, &nst) != EX_OK)
		return EX_FAIL;
	if (up ? record_applied(c, rev, "applied", 0, true,
				"running (non-transactional)", err,
				sizeof(err)) < 0
	       : record_change(c, "UPDATE ", " SET dirty = true, note = $2 WHERE revision = $1",
			       rev->id, "reverting (non-transactional)", err,
			       sizeof(err)) < 0) {
		errmsg("revision %s: %s", rev->id, err);
		free(st);
		return EX_FAIL;
	}
	for (size_t i = 0; i < nst; i++) {
		char *one = strndup(sql + st[i].off, st[i].len);
		PGresult *r;
		char note[ERRLEN + 64], e2[ERRLEN];

		if (!one) {
			errmsg("out of memory");
			free(st);
			return EX_FAIL;
		}
		r = PQexec(c->conn, one);
		if (PQresultStatus(r) != PGRES_COMMAND_OK &&
		    PQresultStatus(r) != PGRES_TUPLES_OK &&
		    PQresultStatus(r) != PGRES_EMPTY_QUERY) {
			stmt_error(c, r, rev, one, line0 + st[i].line - 1, err,
				   sizeof(err));
			PQclear(r);
			free(one);
			free(st);
			snprintf(note, sizeof(note), "%s failed at statement "
				 "%zu: %s", up ? "upgrade" : "downgrade", i + 1,
				 err);
			if (record_change(c, "UPDATE ", " SET note = $2 WHERE revision = $1",
					  rev->id, note, e2, sizeof(e2)) < 0)
				errmsg("cannot record the failure: %s", e2);
			errmsg("revision %s (non-transactional) failed at "
			       "statement %zu: %s",
			       rev->id, i + 1, err);
			errmsg("revision %s is now marked dirty and stops later "
			       "runs: repair the database by hand, then run "
			       "'convctl db resolve %s --applied' or "
			       "'convctl db resolve %s --rolled-back'",
			       rev->id, rev->id, rev->id);
			return EX_FAIL;
		}
		PQclear(r);
		free(one);
	}
	free(st);
	snprintf(msbuf, sizeof(msbuf), "%" PRId64,
		 (int64_t)((clock_mono_usec() - t0) / 1000));
	if (up ? record_change(c, "UPDATE ", " SET dirty = false, note = NULL, applied_at = now(), duration_ms = $2::bigint WHERE revision = $1",
			       rev->id, msbuf, err, sizeof(err)) < 0
	       : record_change(c, "DELETE FROM ", " WHERE revision = $1",
			       rev->id, NULL, err, sizeof(err)) < 0) {
		errmsg("revision %s ran but cannot be recorded: %s", rev->id,
		       err);
		return EX_FAIL;
	}
	{
		char *m = oneline(rev->message);

		printf("%s %s: %s (%s ms, non-transactional)\n",
		       up ? "applied" : "reverted", rev->id, m, msbuf);
		free(m);
	}
	return EX_OK;
}

/*
 * Before running anything: statements that certainly lose data (DROP
 * TABLE, DROP COLUMN, DROP SCHEMA, TRUNCATE) stop the whole plan unless
 * allowed.  Type changes are left to the guard, which knows whether they
 * narrow.
 */
static int precheck_destructive(struct ctx *c, const int *plan, int n,
				bool up)
{
	int bad = 0;

	for (int i = 0; i < n; i++) {
		const struct migrate_rev *rev = &c->set.revs[plan[i]];
		struct migrate_finding *f = NULL;
		size_t nf = 0;
		char err[ERRLEN];

		if (migrate_sql_scan(up ? rev->up : rev->down, &f, &nf, err,
				     sizeof(err)) < 0) {
			errmsg("revision %s (%s): %s", rev->id,
			       rev->path ? rev->path : "", err);
			return EX_FAIL;
		}
		for (size_t k = 0; k < nf; k++) {
			if (f[k].kind == MH_TYPE_CHANGE)
				continue;
			errmsg("revision %s %s: %s", rev->id,
			       migrate_hazard_name(f[k].kind), f[k].what);
			bad++;
		}
		free(f);
	}
	if (bad) {
		errmsg("destructive: nothing was changed; run again with "
		       "--allow-destructive to accept the loss");
		return EX_FAIL;
	}
	return EX_OK;
}

static int run_plan(struct ctx *c, const int *plan, int n, bool up,
		    bool allow_destructive)
{
	if (!allow_destructive) {
		int rc = precheck_destructive(c, plan, n, up);

		if (rc != EX_OK)
			return rc;
	}
	for (int i = 0; i < n; i++) {
		const struct migrate_rev *rev = &c->set.revs[plan[i]];
		int rc = rev->transactional
				 ? run_transactional(c, plan[i], up,
						     RUN_OWN_TXN,
						     allow_destructive)
				 : run_nontransactional(c, plan[i], up,
							allow_destructive);

		if (rc != EX_OK) {
			if (i > 0)
				errmsg("stopped: %d revision%s before %s %s "
				       "done and stay%s so",
				       i, i == 1 ? "" : "s", rev->id,
				       i == 1 ? "is" : "are",
				       i == 1 ? "s" : "");
			else
				errmsg("stopped: nothing was changed");
			return rc;
		}
	}
	return EX_OK;
}

/*
 * The statements of revisions that will not be rehearsed are still read
 * and checked as the real run would before running them.
 */
static int static_check(struct ctx *c, int idx, bool up,
			bool allow_destructive)
{
	const struct migrate_rev *rev = &c->set.revs[idx];
	const char *sql = up ? rev->up : rev->down;
	struct migrate_stmt *st = NULL;
	size_t nst = 0;
	char err[ERRLEN];
	int line;

	if (!rev->transactional)
		return nontx_check(rev, up, allow_destructive, NULL, NULL);
	if (migrate_sql_split(sql, &st, &nst, err, sizeof(err)) < 0) {
		errmsg("revision %s (%s): %s", rev->id,
		       rev->path ? rev->path : "", err);
		return EX_FAIL;
	}
	free(st);
	line = migrate_sql_txn_control(sql);
	if (line) {
		errmsg("revision %s (%s:%d): a transactional revision must "
		       "not begin or end a transaction",
		       rev->id, rev->path ? rev->path : "",
		       (up ? rev->up_line : rev->down_line) + line - 1);
		return EX_FAIL;
	}
	return EX_OK;
}

/*
 * --try: the plan as the real run would run it (the destructive pre-check,
 * the backup's prerequisites, the adoption with its checks, each revision
 * with its guard and history row) in one transaction that is rolled back.  A
 * non-transactional revision cannot run in it: the rehearsal stops
 * there, checks the rest without running it, and fails, since it cannot
 * say that the real run would succeed.
 */
static int adopt(struct ctx *c, struct madopt *a, bool rehearse);

static int rehearse(struct ctx *c, const int *plan, int n, bool up,
		    struct madopt *ma, bool allow_destructive)
{
	char err[ERRLEN];
	int done = 0, rc = EX_OK, stop = -1;
	bool had_hist = c->has_hist;

	if (!allow_destructive) {
		rc = precheck_destructive(c, plan, n, up);
		if (rc != EX_OK)
			return rc;
	}
	if (sql_ok(c, "BEGIN", err, sizeof(err)) < 0) {
		errmsg("%s", err);
		return EX_FAIL;
	}
	if (ma && adopt(c, ma, true) != EX_OK) {
		sql_rollback(c);
		c->has_hist = had_hist;
		return EX_FAIL;
	}
	if (n > 0 && !c->has_hist && history_create(c, err, sizeof(err)) < 0) {
		errmsg("cannot create %s: %s", c->qhist, err);
		rc = EX_FAIL;
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		const struct migrate_rev *rev = &c->set.revs[plan[i]];

		if (!rev->transactional) {
			stop = i;
			break;
		}
		if (run_transactional(c, plan[i], up, RUN_REHEARSE,
				      allow_destructive) != EX_OK) {
			rc = EX_FAIL;
			break;
		}
		done++;
	}
	sql_rollback(c);
	c->has_hist = had_hist;
	if (stop >= 0) {
		const struct migrate_rev *rev = &c->set.revs[plan[stop]];

		for (int i = stop; i < n; i++)
			if (static_check(c, plan[i], up, allow_destructive) !=
			    EX_OK)
				rc = EX_FAIL;
		errmsg("revision %s is non-transactional: it cannot run in the "
		       "rehearsal's transaction, so the rehearsal cannot tell "
		       "whether it and the %d revision%s after it would %s "
		       "(their SQL was read and checked, not run)",
		       rev->id, n - stop - 1, n - stop - 1 == 1 ? "" : "s",
		       up ? "apply" : "revert");
		rc = EX_FAIL;
	}
	printf("rehearsal: %d of %d revision%s would %s; everything was "
	       "rolled back\n",
	       done, n, n == 1 ? "" : "s", up ? "apply" : "revert");
	return rc;
}

/* ------------------------------------------------------------- backup */

/* Whether any user table of the database holds a row. */
static int holds_data(struct ctx *c, bool *out)
{
	char err[ERRLEN];
	PGresult *r = sql_exec(c,
			       "SELECT format('%I.%I', n.nspname, c.relname)"
			       " FROM pg_class c JOIN pg_namespace n"
			       " ON n.oid = c.relnamespace"
			       " WHERE c.relkind IN ('r', 'p')"
			       " AND n.nspname NOT IN ('pg_catalog',"
			       " 'information_schema')"
			       " AND n.nspname !~ '^pg_(toast|temp_)'",
			       err, sizeof(err));

	*out = false;
	if (!r) {
		errmsg("%s", err);
		return EX_FAIL;
	}
	for (int i = 0; i < PQntuples(r) && !*out; i++) {
		char *sql;
		PGresult *e;

		if (asprintf(&sql, "SELECT EXISTS (SELECT 1 FROM %s)",
			     PQgetvalue(r, i, 0)) < 0) {
			PQclear(r);
			errmsg("out of memory");
			return EX_FAIL;
		}
		e = sql_exec(c, sql, err, sizeof(err));
		free(sql);
		if (!e) {
			PQclear(r);
			errmsg("%s", err);
			return EX_FAIL;
		}
		*out = PQgetvalue(e, 0, 0)[0] == 't';
		PQclear(e);
	}
	PQclear(r);
	return EX_OK;
}

/* 'value' for a conninfo string. */
static int conninfo_add(char **buf, size_t *len, const char *key,
			const char *val)
{
	size_t need = strlen(key) + 2 * strlen(val) + 5;
	char *nb = realloc(*buf, *len + need + 1), *p;

	if (!nb)
		return -1;
	*buf = nb;
	p = nb + *len;
	p += sprintf(p, "%s%s='", *len ? " " : "", key);
	for (const char *s = val; *s; s++) {
		if (*s == '\'' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p++ = '\'';
	*p = '\0';
	*len = (size_t)(p - nb);
	return 0;
}

/* Runs pg_dump -Fc into path, with the connection's own parameters; the
 * password (if any) goes through a private passfile, never argv. */
static int run_pg_dump(struct ctx *c, const char *path)
{
	PQconninfoOption *opts = PQconninfo(c->conn), *o;
	char *conninfo = NULL, *password = NULL;
	size_t len = 0;
	char dir[] = "/tmp/convctl-backup-XXXXXX", passfile[64] = "";
	pid_t pid;
	int status, rc = EX_FAIL;
	struct stat st;

	if (!opts) {
		errmsg("out of memory");
		return EX_FAIL;
	}
	for (o = opts; o->keyword; o++) {
		if (!o->val || !o->val[0])
			continue;
		if (strcmp(o->keyword, "password") == 0) {
			password = strdup(o->val);
			continue;
		}
		if (strcmp(o->keyword, "passfile") == 0)
			continue;
		if (conninfo_add(&conninfo, &len, o->keyword, o->val) < 0) {
			errmsg("out of memory");
			goto out;
		}
	}
	if (!conninfo && conninfo_add(&conninfo, &len, "dbname",
				      PQdb(c->conn)) < 0) {
		errmsg("out of memory");
		goto out;
	}
	if (password) {
		FILE *f;
		int fd;

		if (!mkdtemp(dir)) {
			errmsg("backup: cannot make a temporary directory: %s",
			       strerror(errno));
			goto out;
		}
		snprintf(passfile, sizeof(passfile), "%s/pgpass", dir);
		fd = open(passfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			  0600);
		f = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (!f) {
			if (fd >= 0)
				close(fd);
			errmsg("backup: cannot write %s: %s", passfile,
			       strerror(errno));
			goto out;
		}
		fputs("*:*:*:*:", f);
		for (const char *s = password; *s; s++) {
			if (*s == ':' || *s == '\\')
				fputc('\\', f);
			fputc(*s, f);
		}
		fputc('\n', f);
		if (fclose(f) != 0) {
			errmsg("backup: cannot write %s", passfile);
			goto out;
		}
	}
	printf("backup: pg_dump --format=custom --file=%s\n", path);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		errmsg("backup: fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		char *argv[] = {"pg_dump", "--format=custom", "--no-password",
				NULL, NULL, NULL};
		char *fileopt = NULL, *dbopt = NULL;

		if (asprintf(&fileopt, "--file=%s", path) < 0 ||
		    asprintf(&dbopt, "--dbname=%s", conninfo) < 0)
			_exit(127);
		argv[3] = fileopt;
		argv[4] = dbopt;
		if (passfile[0])
			setenv("PGPASSFILE", passfile, 1);
		unsetenv("PGPASSWORD");
		execvp("pg_dump", argv);
		fprintf(stderr, "convctl db: backup: cannot run pg_dump: %s\n",
			strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			errmsg("backup: waitpid: %s", strerror(errno));
			goto out;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		errmsg("backup: pg_dump failed (%s %d): nothing was changed",
		       WIFEXITED(status) ? "exit status" : "signal",
		       WIFEXITED(status) ? WEXITSTATUS(status)
					 : WTERMSIG(status));
		goto out;
	}
	if (stat(path, &st) == 0)
		printf("backup: %s written (%lld bytes)\n", path,
		       (long long)st.st_size);
	rc = EX_OK;
out:
	if (passfile[0])
		unlink(passfile);
	if (strcmp(dir, "/tmp/convctl-backup-XXXXXX") != 0)
		rmdir(dir);
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	free(conninfo);
	PQconninfoFree(opts);
	return rc;
}

/* --backup FILE, when given and the database holds data. */
static int maybe_backup(struct ctx *c)
{
	bool data;
	int rc;

	if (!(c->o.given & O_BACKUP))
		return EX_OK;
	rc = holds_data(c, &data);
	if (rc != EX_OK)
		return rc;
	if (!data) {
		printf("backup: the database holds no data, no backup "
		       "needed\n");
		return EX_OK;
	}
	return run_pg_dump(c, c->o.backup);
}

/* --try --backup FILE: what the backup needs, without writing it. */
static int backup_check(struct ctx *c)
{
	const char *path = getenv("PATH"), *slash;
	char dir[PATH_MAX], exe[PATH_MAX];
	bool data, found = false;
	int rc;

	if (!(c->o.given & O_BACKUP))
		return EX_OK;
	rc = holds_data(c, &data);
	if (rc != EX_OK || !data)
		return rc;
	for (const char *p = path ? path : "/usr/bin:/bin"; p && !found;) {
		const char *end = strchr(p, ':');
		int len = end ? (int)(end - p) : (int)strlen(p);

		if (len > 0)
			snprintf(exe, sizeof(exe), "%.*s/pg_dump", len, p);
		else
			snprintf(exe, sizeof(exe), "./pg_dump");
		found = access(exe, X_OK) == 0;
		p = end ? end + 1 : NULL;
	}
	slash = strrchr(c->o.backup, '/');
	snprintf(dir, sizeof(dir), "%.*s",
		 slash ? (int)(slash - c->o.backup) + (slash == c->o.backup)
		       : 1,
		 slash ? c->o.backup : ".");
	if (!found) {
		errmsg("backup: pg_dump is not in PATH: the real run would "
		       "fail before changing anything");
		return EX_FAIL;
	}
	if (access(dir, W_OK | X_OK) < 0) {
		errmsg("backup: cannot write into %s: %s", dir,
		       strerror(errno));
		return EX_FAIL;
	}
	printf("backup: would run pg_dump --format=custom --file=%s\n",
	       c->o.backup);
	return EX_OK;
}

/* ---------------------------------------------------------- --sql text */

/* A string literal that means s whatever standard_conforming_strings
 * says (E'' when it holds a backslash), for SQL written offline. */
static char *lit_offline(const char *s)
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

static char *lit(struct ctx *c, const char *s)
{
	char *q, *d;

	if (!c->conn)
		return lit_offline(s ? s : "");
	q = PQescapeLiteral(c->conn, s ? s : "", s ? strlen(s) : 0);
	if (!q)
		return strdup("''");
	d = strdup(q);
	PQfreemem(q);
	return d;
}

static void print_section(const char *sql)
{
	size_t n = strlen(sql);

	/* the section as written, without trailing blank lines */
	while (n > 0 && (sql[n - 1] == '\n' || sql[n - 1] == ' ' ||
			 sql[n - 1] == '\t'))
		n--;
	if (n > 0)
		printf("%.*s\n", (int)n, sql);
}

static void print_insert(struct ctx *c, const struct migrate_rev *rev,
			 const char *kind, bool dirty, const char *note)
{
	char *parents = parents_array(rev);
	char *lp = lit(c, parents ? parents : "{}"), *lm = lit(c, rev->message);
	char *lc = lit(c, rev->checksum), *lw = lit(c, c->who);
	char *ln = note ? lit(c, note) : NULL;

	if (!c->conn && lw) {
		/* offline: the role is known only when the SQL runs */
		char *e = NULL;

		if (asprintf(&e, "current_user || %s", lw) < 0)
			e = NULL;
		free(lw);
		lw = e;
	}

	printf("INSERT INTO %s (revision, parents, message, checksum, kind,"
	       " applied_by, dirty, note)\n    VALUES ('%s', %s, %s, %s, '%s',"
	       " %s, %s, %s);\n",
	       c->qhist, rev->id, lp ? lp : "'{}'", lm ? lm : "''",
	       lc ? lc : "''", kind, lw ? lw : "''", dirty ? "true" : "false",
	       ln ? ln : "NULL");
	free(parents);
	free(lp);
	free(lm);
	free(lc);
	free(lw);
	free(ln);
}

static void print_findings_sql(const struct migrate_rev *rev, bool up)
{
	struct migrate_finding *f = NULL;
	size_t nf = 0;
	char err[256];

	if (migrate_sql_scan(up ? rev->up : rev->down, &f, &nf, err,
			     sizeof(err)) < 0)
		return;
	for (size_t i = 0; i < nf; i++)
		printf("-- DESTRUCTIVE (%s): %s\n",
		       migrate_hazard_name(f[i].kind), f[i].what);
	free(f);
}

static void print_plan_sql(struct ctx *c, const int *plan, int n, bool up)
{
	for (int i = 0; i < n; i++) {
		const struct migrate_rev *rev = &c->set.revs[plan[i]];
		char *m = oneline(rev->message);

		printf("\n-- %s %s%s: %s\n", up ? "upgrade to" : "revert",
		       rev->id, rev->transactional ? "" : " (non-transactional)",
		       m);
		free(m);
		print_findings_sql(rev, up);
		if (rev->transactional) {
			printf("BEGIN;\n");
			print_section(up ? rev->up : rev->down);
			if (up)
				print_insert(c, rev, "applied", false, NULL);
			else
				printf("DELETE FROM %s WHERE revision = '%s';\n",
				       c->qhist, rev->id);
			printf("COMMIT;\n");
		} else {
			if (up)
				print_insert(c, rev, "applied", true,
					     "running (non-transactional)");
			else
				printf("UPDATE %s SET dirty = true WHERE "
				       "revision = '%s';\n",
				       c->qhist, rev->id);
			print_section(up ? rev->up : rev->down);
			if (up)
				printf("UPDATE %s SET dirty = false, note = NULL"
				       " WHERE revision = '%s';\n",
				       c->qhist, rev->id);
			else
				printf("DELETE FROM %s WHERE revision = '%s';\n",
				       c->qhist, rev->id);
		}
	}
}

static void print_history_ddl(struct ctx *c)
{
	char *ddl = history_ddl(c);

	printf("\n-- the history table\n%s;\n", ddl ? ddl : "");
	free(ddl);
}

static void print_adoption_sql(struct ctx *c, const struct madopt *a,
			       int r1)
{
	printf("\n-- adoption as revision %s, in one transaction\n",
	       MADOPT_REVISION);
	printf("BEGIN;\n");
	for (int i = 0; i < a->nsteps; i++)
		printf("-- %s\n%s;\n", a->steps[i].note, a->steps[i].sql);
	printf("-- (convctl db checks here that every row is unchanged and "
	       "that the schema\n-- is revision %s's plus the objects kept; "
	       "any difference rolls everything back)\n",
	       MADOPT_REVISION);
	{
		char *ddl = history_ddl(c);

		printf("%s;\n", ddl ? ddl : "");
		free(ddl);
	}
	print_insert(c, &c->set.revs[r1], "adopted", false, a->found);
	printf("COMMIT;\n");
}

/* ------------------------------------------------------------ helpers */

static int prepare(struct ctx *c, bool db, bool lock)
{
	int rc = load_set(c);

	if (rc != EX_OK || !db)
		return rc;
	rc = db_connect(c);
	if (rc != EX_OK)
		return rc;
	if (lock) {
		rc = lock_acquire(c);
		if (rc != EX_OK)
			return rc;
	}
	return history_load(c);
}

/*
 * Before changing anything: dirty revisions and applied revisions whose
 * file is missing stop everything; changed files stop too unless
 * --accept-changed, which records the new checksums.
 */
static int gate(struct ctx *c, bool record)
{
	struct problems pr;
	char err[ERRLEN];

	find_problems(c, &pr, true);
	if (pr.dirty || pr.missing) {
		errmsg("nothing was changed");
		return EX_FAIL;
	}
	if (!pr.changed)
		return EX_OK;
	if (!(c->o.given & O_ACCEPT_CHANGED)) {
		errmsg("applied revisions must not change: restore the "
		       "file%s, or run again with --accept-changed to record "
		       "the new checksum%s; nothing was changed",
		       pr.changed == 1 ? "" : "s", pr.changed == 1 ? "" : "s");
		return EX_FAIL;
	}
	for (int i = 0; i < c->nhist; i++) {
		struct hist *h = &c->hist[i];
		char note[1024];

		if (h->idx < 0 ||
		    strcmp(h->checksum, c->set.revs[h->idx].checksum) == 0)
			continue;
		if (!record) {
			warnmsg("revision %s: the changed file would be "
				"accepted",
				h->revision);
			continue;
		}
		snprintf(note, sizeof(note),
			 "checksum %.64s accepted by %s (was %.64s)",
			 c->set.revs[h->idx].checksum, c->who, h->checksum);
		{
			char *sql;
			const char *p[3] = {h->revision,
					    c->set.revs[h->idx].checksum, note};
			PGresult *r;

			if (asprintf(&sql,
				     "UPDATE %s SET checksum = $2, note = $3"
				     " WHERE revision = $1",
				     c->qhist) < 0) {
				errmsg("out of memory");
				return EX_FAIL;
			}
			r = sql_params(c, sql, 3, p, err, sizeof(err));
			free(sql);
			if (!r) {
				errmsg("%s", err);
				return EX_FAIL;
			}
			PQclear(r);
		}
		printf("accepted the changed file of revision %s\n",
		       h->revision);
		free(h->checksum);
		h->checksum = strdup(c->set.revs[h->idx].checksum);
		if (!h->checksum) {
			errmsg("out of memory");
			return EX_FAIL;
		}
	}
	return EX_OK;
}

static int parse_target(struct ctx *c, const char *text,
			struct migrate_target *t)
{
	char err[ERRLEN];

	if (migrate_target_parse(&c->set, text, t, err, sizeof(err)) < 0) {
		errmsg("%s", err);
		return EX_USAGE;
	}
	return EX_OK;
}

/* Whether revision x is applied and none of its children is: one of the
 * database's current revisions. */
static bool is_current(const struct ctx *c, int x)
{
	const struct migrate_rev *r = &c->set.revs[x];

	if (!c->applied[x])
		return false;
	for (int k = 0; k < r->nchildren; k++)
		if (c->applied[r->child_idx[k]])
			return false;
	return true;
}

/* "a, b" of the applied revisions that have no applied child. */
static void current_text(const struct ctx *c, char *buf, size_t len)
{
	size_t o = 0;
	bool any = false;

	buf[0] = '\0';
	for (int i = 0; i < c->set.n && o < len; i++) {
		int x = c->set.order[i];
		const struct migrate_rev *r = &c->set.revs[x];

		if (!is_current(c, x))
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%s%s",
				      any ? ", " : "", r->id);
		any = true;
	}
	if (!any)
		snprintf(buf, len, "base");
}

/* If the database has no history table: fine when it is empty (the table
 * will be made), refused when it has legacy tables. */
static int require_new_or_managed(struct ctx *c)
{
	struct madopt a;
	char err[ERRLEN];

	if (c->has_hist)
		return EX_OK;
	if (madopt_inspect(c->conn, c->nsp, SCHEMA_HISTORY_TABLE, &a, err,
			   sizeof(err)) < 0) {
		errmsg("%s", err);
		return EX_FAIL;
	}
	madopt_free(&a);
	if (a.shape == MA_EMPTY || a.shape == MA_MANAGED)
		return EX_OK;
	if (a.shape == MA_UNKNOWN)
		errmsg("this database has conversation tables convctl db does "
		       "not recognise (%s); nothing was changed",
		       a.problem);
	else
		errmsg("this database was made before convctl db (%s): run "
		       "'convctl db setup' to adopt it; nothing was changed",
		       a.found);
	return EX_FAIL;
}

/* ------------------------------------------------- upgrade / downgrade */

/*
 * Shows (--sql), rehearses (--try) or runs a computed plan: `up` for an
 * upgrade, else a downgrade.  Frees plan.
 */
static int execute_plan(struct ctx *c, int *plan, int n, bool up,
			const char *target_text, bool allow_destructive)
{
	char err[ERRLEN], cur[512];
	bool sql = c->o.given & O_SQL, try_ = c->o.given & O_TRY;
	int rc;

	current_text(c, cur, sizeof(cur));
	if (n == 0) {
		printf("nothing to do: the database is at %s\n", cur);
		rc = EX_OK;
	} else if (sql) {
		printf("-- convctl db %s %s: %d revision%s from %s\n",
		       up ? "upgrade" : "downgrade", target_text, n,
		       n == 1 ? "" : "s", cur);
		if (up && !c->has_hist)
			print_history_ddl(c);
		print_plan_sql(c, plan, n, up);
		rc = EX_OK;
	} else if (try_) {
		rc = backup_check(c);
		if (rc == EX_OK)
			rc = rehearse(c, plan, n, up, NULL, allow_destructive);
	} else {
		rc = maybe_backup(c);
		if (rc == EX_OK && up && !c->has_hist &&
		    history_create(c, err, sizeof(err)) < 0) {
			errmsg("cannot create %s: %s", c->qhist, err);
			rc = EX_FAIL;
		}
		if (rc == EX_OK)
			rc = run_plan(c, plan, n, up, allow_destructive);
	}
	free(plan);
	return rc;
}

static int *plan_alloc(const struct ctx *c)
{
	int *plan = malloc(sizeof(int) * ((size_t)c->set.n + 1));

	if (!plan)
		errmsg("out of memory");
	return plan;
}

static int do_upgrade(struct ctx *c, const char *target_text)
{
	struct migrate_target t;
	char err[ERRLEN];
	int *plan, n = 0, rc;
	bool sql = c->o.given & O_SQL, try_ = c->o.given & O_TRY;

	rc = parse_target(c, target_text, &t);
	if (rc != EX_OK)
		return rc;
	rc = require_new_or_managed(c);
	if (rc != EX_OK)
		return rc;
	rc = gate(c, !sql && !try_);
	if (rc != EX_OK)
		return rc;
	plan = plan_alloc(c);
	if (!plan)
		return EX_FAIL;
	if (migrate_plan_upgrade(&c->set, c->applied, &t, plan, &n, err,
				 sizeof(err)) < 0) {
		errmsg("%s", err);
		free(plan);
		return EX_FAIL;
	}
	return execute_plan(c, plan, n, true, target_text,
			    c->o.given & O_ALLOW_DESTRUCTIVE);
}

static int do_downgrade(struct ctx *c, const struct migrate_target *t,
			const char *target_text, bool allow_destructive)
{
	char err[ERRLEN];
	int *plan, n = 0, rc;
	bool sql = c->o.given & O_SQL, try_ = c->o.given & O_TRY;

	if (!c->has_hist) {
		printf("nothing to do: nothing is applied (no history "
		       "table)\n");
		return EX_OK;
	}
	rc = gate(c, !sql && !try_);
	if (rc != EX_OK)
		return rc;
	plan = plan_alloc(c);
	if (!plan)
		return EX_FAIL;
	if (migrate_plan_downgrade(&c->set, c->applied, t, plan, &n, err,
				   sizeof(err)) < 0) {
		errmsg("%s", err);
		free(plan);
		return EX_FAIL;
	}
	return execute_plan(c, plan, n, false, target_text, allow_destructive);
}

/*
 * --sql with FROM:TO: the SQL from revision FROM (base, head, heads or a
 * revision and its ancestors applied) to TO, written without a database,
 * as Alembic's offline mode does.  The history table is named without a
 * schema (the search_path decides when the SQL runs).
 */
static int offline_sql(struct ctx *c, const char *range, bool up)
{
	const char *colon = strchr(range, ':');
	char *from = NULL, err[ERRLEN], host[256] = "?";
	struct migrate_target f, t;
	struct passwd *pw = getpwuid(geteuid());
	int *plan = NULL, n = 0, rc;

	if (!(c->o.given & O_SQL) || colon == range || !colon[1]) {
		errmsg("a range FROM:TO goes with --sql (offline SQL): "
		       "'convctl db %s FROM:TO --sql'",
		       up ? "upgrade" : "downgrade");
		return EX_USAGE;
	}
	rc = prepare(c, false, false);
	if (rc != EX_OK)
		return rc;
	from = strndup(range, (size_t)(colon - range));
	if (!from) {
		errmsg("out of memory");
		return EX_FAIL;
	}
	rc = parse_target(c, from, &f);
	if (rc == EX_OK)
		rc = parse_target(c, colon + 1, &t);
	if (rc == EX_OK && f.kind == MT_RELATIVE) {
		errmsg("the start of a range is base, head, heads or a "
		       "revision, not '%s'", from);
		rc = EX_USAGE;
	}
	if (rc != EX_OK)
		goto out;
	if (f.kind == MT_HEAD && c->set.nheads > 1) {
		char heads[512];

		migrate_set_heads_text(&c->set, heads, sizeof(heads));
		errmsg("there are %d heads (%s): start from one of them or "
		       "from 'heads'", c->set.nheads, heads);
		rc = EX_FAIL;
		goto out;
	}
	for (int i = 0; i < c->set.nheads; i++)
		if (f.kind == MT_HEADS || f.kind == MT_HEAD)
			migrate_set_ancestors(&c->set, c->set.heads[i],
					      c->applied);
	if (f.kind == MT_REV)
		migrate_set_ancestors(&c->set, f.rev, c->applied);
	c->has_hist = f.kind != MT_BASE;
	c->qhist = strdup(SCHEMA_HISTORY_TABLE);
	plan = plan_alloc(c);
	if (!c->qhist || !plan) {
		errmsg("out of memory");
		rc = EX_FAIL;
		goto out;
	}
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "?");
	host[sizeof(host) - 1] = '\0';
	snprintf(c->who, sizeof(c->who), " (offline SQL by %s@%s)",
		 pw ? pw->pw_name : "?", host);
	if ((up ? migrate_plan_upgrade(&c->set, c->applied, &t, plan, &n, err,
				       sizeof(err))
		: migrate_plan_downgrade(&c->set, c->applied, &t, plan, &n,
					 err, sizeof(err))) < 0) {
		errmsg("%s", err);
		rc = EX_FAIL;
		goto out;
	}
	printf("-- convctl db %s %s --sql: %d revision%s, written without a "
	       "database\n",
	       up ? "upgrade" : "downgrade", range, n, n == 1 ? "" : "s");
	if (up && !c->has_hist)
		print_history_ddl(c);
	print_plan_sql(c, plan, n, up);
out:
	free(plan);
	free(from);
	return rc;
}

static int cmd_upgrade(struct ctx *c)
{
	bool lock = !(c->o.given & O_SQL);
	int rc;

	if (c->o.nargs > 0 && strchr(c->o.args[0], ':'))
		return offline_sql(c, c->o.args[0], true);
	rc = prepare(c, true, lock);
	if (rc != EX_OK)
		return rc;
	return do_upgrade(c, c->o.nargs > 0 ? c->o.args[0] : "head");
}

static int cmd_downgrade(struct ctx *c)
{
	bool lock = !(c->o.given & O_SQL);
	struct migrate_target t;
	int rc;

	if (strchr(c->o.args[0], ':'))
		return offline_sql(c, c->o.args[0], false);
	rc = prepare(c, true, lock);
	if (rc != EX_OK)
		return rc;
	rc = parse_target(c, c->o.args[0], &t);
	if (rc != EX_OK)
		return rc;
	return do_downgrade(c, &t, c->o.args[0],
			    c->o.given & O_ALLOW_DESTRUCTIVE);
}

static int cmd_rollback(struct ctx *c)
{
	bool lock = !(c->o.given & O_SQL);
	struct migrate_target t = {MT_RELATIVE, 0, -1};
	char text[32];
	int rc;

	if (c->o.nargs > 0) {
		char *end;
		long v;

		errno = 0;
		v = strtol(c->o.args[0], &end, 10);
		if (errno || *end || end == c->o.args[0] || v < 1 ||
		    v > MIGRATE_MAX_REVISIONS) {
			errmsg("rollback takes a count from 1 to %d, not '%s'",
			       MIGRATE_MAX_REVISIONS, c->o.args[0]);
			return EX_USAGE;
		}
		t.n = -(int)v;
	}
	rc = prepare(c, true, lock);
	if (rc != EX_OK)
		return rc;
	snprintf(text, sizeof(text), "%d", t.n);
	return do_downgrade(c, &t, text, c->o.given & O_ALLOW_DESTRUCTIVE);
}

/* --------------------------------------------------------------- setup */

/* The user's objects that adoption keeps, one a line. */
static void print_kept(const struct madopt *a)
{
	const char *p = a->kept;

	while (*p) {
		const char *e = strstr(p, "; ");
		int len = e ? (int)(e - p) : (int)strlen(p);

		printf("adopt: kept %.*s\n", len, p);
		p += len + (e ? 2 : 0);
	}
}

/*
 * What the configured retention would delete on its first run, so that
 * nobody finds out afterwards: [retention] days_to_keep of the file that
 * convctl read (the one convd reads, normally).
 */
static void retention_preview(struct ctx *c)
{
	char err[ERRLEN], days[32];
	const char *p[1] = {days};
	PGresult *r;

	if (!c->cfg_ok || c->cfg.retention.days_to_keep <= 0) {
		printf("retention: off ([retention] days_to_keep = 0): convd "
		       "deletes no messages\n");
		return;
	}
	snprintf(days, sizeof(days), "%" PRId64,
		 c->cfg.retention.days_to_keep);
	r = sql_params(c,
		       "SELECT count(*) FILTER (WHERE created_at < now()"
		       " - $1::int * interval '86400 seconds'), count(*)"
		       " FROM simple_conversation_history",
		       1, p, err, sizeof(err));
	if (!r) {
		warnmsg("cannot count what retention would delete: %s", err);
		return;
	}
	printf("retention: [retention] days_to_keep = %s: convd's first run "
	       "will delete %s of %s messages (those older than %s days); "
	       "set days_to_keep = 0 to keep them\n",
	       days, PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), days);
	PQclear(r);
}

/* The adoption in one transaction, with its checks; rehearse: in the
 * caller's transaction, which the caller rolls back. */
static int adopt(struct ctx *c, struct madopt *a, bool rehearse)
{
	char err[ERRLEN], fp_before[512], fp_after[512];
	struct mschema live = {0}, want = {0};
	struct mdiff d = {0};
	int r1 = migrate_set_find_exact(&c->set, MADOPT_REVISION);
	usec_t t0 = clock_mono_usec();

	if (!rehearse && sql_ok(c, "BEGIN", err, sizeof(err)) < 0)
		goto fail;
	if (madopt_fingerprint(c->conn, c->nsp, a, false, fp_before,
			       sizeof(fp_before), err, sizeof(err)) < 0)
		goto fail;
	for (int i = 0; i < a->nsteps; i++) {
		printf("adopt: %s\n", a->steps[i].note);
		if (sql_ok(c, a->steps[i].sql, err, sizeof(err)) < 0) {
			err_prefix(err, sizeof(err), "step %d (%s): ", i + 1,
				   a->steps[i].note);
			goto fail;
		}
	}
	if (madopt_fingerprint(c->conn, c->nsp, a, true, fp_after,
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
	if (mcat_load(c->conn, c->nsp, SCHEMA_HISTORY_TABLE, &live, err,
		      sizeof(err)) < 0)
		goto fail;
	if (mcat_load_sql(c->conn, c->set.revs[r1].up, c->nsp,
			  SCHEMA_HISTORY_TABLE, &want, err, sizeof(err)) < 0) {
		err_prefix(err, sizeof(err), "cannot load revision %s: ",
			   MADOPT_REVISION);
		goto fail;
	}
	if (mdiff_compute(&live, &want, MDIFF_ONLY_TO_TABLES, &d) < 0) {
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
			errmsg("after adoption: %s", d.v[i].what);
			bad++;
		}
		if (bad > 0) {
			snprintf(err, sizeof(err),
				 "the result would differ from revision %s's "
				 "schema",
				 MADOPT_REVISION);
			goto fail;
		}
	}
	printf("adopt: the schema is revision %s's%s\n", MADOPT_REVISION,
	       a->kept[0] ? ", plus the user's objects kept below" : "");
	print_kept(a);
	if (history_create(c, err, sizeof(err)) < 0 ||
	    record_applied(c, &c->set.revs[r1], "adopted",
			   (clock_mono_usec() - t0) / 1000, false, a->found,
			   err, sizeof(err)) < 0 ||
	    (!rehearse && sql_ok(c, "COMMIT", err, sizeof(err)) < 0))
		goto fail;
	mschema_free(&live);
	mschema_free(&want);
	mdiff_free(&d);
	if (rehearse) {
		printf("would adopt the database as revision %s\n",
		       MADOPT_REVISION);
		return EX_OK;
	}
	printf("adopted the database as revision %s%s\n", MADOPT_REVISION,
	       a->alembic ? " (alembic_version dropped)" : "");
	return history_load(c);
fail:
	if (!rehearse)
		sql_rollback(c);
	c->has_hist = false;
	mschema_free(&live);
	mschema_free(&want);
	mdiff_free(&d);
	errmsg("adoption %s: %s", rehearse ? "would fail" : "failed", err);
	errmsg("nothing was changed (the adoption runs in one transaction)");
	return EX_FAIL;
}

/* The partitioned layout (dbpart.c): DDL locks are waited for 2 s at a
 * time, so that writers never queue behind the conversion for longer,
 * for --lock-timeout seconds in all. */
static int partition(struct ctx *c)
{
	char err[ERRLEN];
	long wait = c->o.given & O_LOCK_TIMEOUT ? c->o.lock_timeout
						: DEFAULT_LOCK_TIMEOUT;

	if (dbpart_convert(c->conn, wait, stdout, err, sizeof(err)) < 0) {
		errmsg("%s", err);
		errmsg("the conversion stopped; nothing is lost: run 'convctl db "
		       "partition' again to go on");
		return EX_FAIL;
	}
	return EX_OK;
}

static int cmd_partition(struct ctx *c)
{
	int rc = prepare(c, true, true);

	if (rc != EX_OK)
		return rc;
	if (!c->has_hist) {
		errmsg("the database is not set up: run 'convctl db setup "
		       "--layout partitioned'");
		return EX_FAIL;
	}
	return partition(c);
}

static int cmd_setup(struct ctx *c)
{
	bool sql = c->o.given & O_SQL, try_ = c->o.given & O_TRY;
	struct madopt a;
	struct migrate_target t = {MT_HEAD, 0, 0};
	char err[ERRLEN];
	bool *applied2 = NULL;
	int *plan = NULL, n = 0, r1 = -1, rc;
	bool legacy;

	rc = prepare(c, true, !sql);
	if (rc != EX_OK)
		return rc;
	if (c->o.legacy_tz &&
	    madopt_check_zone(c->conn, c->o.legacy_tz, err, sizeof(err)) < 0) {
		errmsg("--legacy-timezone: %s", err);
		return EX_USAGE;
	}
	if (madopt_inspect_tz(c->conn, c->nsp, SCHEMA_HISTORY_TABLE,
			      c->o.legacy_tz, &a, err, sizeof(err)) < 0) {
		errmsg("cannot inspect the database: %s", err);
		return EX_FAIL;
	}
	if (a.shape == MA_UNKNOWN) {
		errmsg("found tables convctl db does not recognise: %s", a.problem);
		errmsg("nothing was changed: bring the tables to one of the "
		       "legacy shapes that setup adopts (see ADOPTING A "
		       "LEGACY DATABASE in convctl(1))");
		return EX_FAIL;
	}
	printf("%sfound: %s\n", sql ? "-- " : "", a.found);
	legacy = a.shape == MA_LEGACY_README || a.shape == MA_LEGACY_ALEMBIC;
	if (legacy && a.tz_doubt && !c->o.legacy_tz) {
		fprintf(stderr,
			"convctl db: the legacy times (timestamp without time "
			"zone) may not all be UTC:\n%s",
			a.tz_evidence);
		errmsg("say how to read them with --legacy-timezone ZONE: the "
		       "IANA name of the zone they were written in (such as "
		       "Asia/Taipei), or UTC; when some were written in UTC "
		       "and some in local time no tool can tell which, see "
		       "\"Time zones\" in convctl(1); nothing was changed");
		madopt_free(&a);
		return EX_FAIL;
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
		warnmsg("--legacy-timezone only applies to the times without "
			"time zone of a legacy database: ignored");
	if (legacy) {
		r1 = migrate_set_find_exact(&c->set, MADOPT_REVISION);
		if (r1 < 0) {
			errmsg("adoption needs revision %s, which %s does not "
			       "have; nothing was changed",
			       MADOPT_REVISION, c->dir);
			madopt_free(&a);
			return EX_FAIL;
		}
	}
	if (a.shape == MA_MANAGED) {
		rc = gate(c, !sql && !try_);
		if (rc != EX_OK) {
			madopt_free(&a);
			return rc;
		}
	}
	applied2 = calloc((size_t)c->set.n + 1, sizeof(bool));
	plan = malloc(sizeof(int) * ((size_t)c->set.n + 1));
	if (!applied2 || !plan) {
		errmsg("out of memory");
		rc = EX_FAIL;
		goto out;
	}
	memcpy(applied2, c->applied, sizeof(bool) * (size_t)c->set.n);
	if (legacy)
		applied2[r1] = true;
	if (migrate_plan_upgrade(&c->set, applied2, &t, plan, &n, err,
				 sizeof(err)) < 0) {
		errmsg("%s", err);
		rc = EX_FAIL;
		goto out;
	}
	if (sql) {
		printf("-- convctl db setup: %s\n",
		       legacy ? "adoption, then upgrade to head"
			      : "upgrade to head");
		if (legacy)
			print_adoption_sql(c, &a, r1);
		else if (!c->has_hist)
			print_history_ddl(c);
		print_plan_sql(c, plan, n, true);
		rc = EX_OK;
		goto out;
	}
	if (try_) {
		rc = legacy || n > 0 ? backup_check(c) : EX_OK;
		if (rc == EX_OK)
			rc = rehearse(c, plan, n, true, legacy ? &a : NULL,
				      c->o.given & O_ALLOW_DESTRUCTIVE);
		goto out;
	}
	if (legacy || n > 0) {
		rc = maybe_backup(c);
		if (rc != EX_OK)
			goto out;
	}
	if (legacy) {
		rc = adopt(c, &a, false);
		if (rc != EX_OK)
			goto out;
	} else if (!c->has_hist) {
		if (history_create(c, err, sizeof(err)) < 0) {
			errmsg("cannot create %s: %s", c->qhist, err);
			rc = EX_FAIL;
			goto out;
		}
		printf("created the history table %s\n", c->qhist);
	}
	rc = run_plan(c, plan, n, true, c->o.given & O_ALLOW_DESTRUCTIVE);
	if (rc == EX_OK) {
		char cur[512];

		for (int i = 0; i < n; i++)
			c->applied[plan[i]] = true;
		current_text(c, cur, sizeof(cur));
		printf("the database is at head (%s)\n", cur);
		retention_preview(c);
	}
	if (rc == EX_OK && c->o.partitioned)
		rc = partition(c);
out:
	madopt_free(&a);
	free(applied2);
	free(plan);
	return rc;
}

/* --------------------------------------------------------------- reset */

/*
 * Runs steps [from, to) of a reset, each transactional: in one transaction.
 * Returns the index of the step that failed, or -1.
 */
static int reset_group(struct ctx *c, const int *steps, const bool *up,
		       int from, int to)
{
	char err[ERRLEN];

	if (sql_ok(c, "BEGIN", err, sizeof(err)) < 0) {
		errmsg("%s", err);
		return from;
	}
	if (!c->has_hist && history_create(c, err, sizeof(err)) < 0) {
		errmsg("cannot create %s: %s", c->qhist, err);
		sql_rollback(c);
		c->has_hist = false;
		return from;
	}
	for (int i = from; i < to; i++) {
		if (run_transactional(c, steps[i], up[i], RUN_IN_TXN, true) !=
		    EX_OK) {
			sql_rollback(c);
			return i;
		}
	}
	if (sql_ok(c, "COMMIT", err, sizeof(err)) < 0) {
		errmsg("%s", err);
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
static int cmd_reset(struct ctx *c)
{
	struct migrate_target base = {MT_BASE, 0, 0}, heads = {MT_HEADS, 0, 0};
	char err[ERRLEN], cur[512];
	int *steps = NULL, ndown = 0, nup = 0, n, failed = -1, committed = 0;
	bool *up = NULL, *none = NULL;
	int rc;

	if (!(c->o.given & O_YES)) {
		errmsg("reset reverts every revision (deleting all data) and "
		       "applies them again: run 'convctl db reset --yes' to "
		       "confirm");
		return EX_FAIL;
	}
	if (!c->cfg.migrations.allow_reset) {
		errmsg("reset is refused: the configuration does not allow "
		       "destructive commands (set [migrations] allow_reset = "
		       "yes, on development databases only)");
		return EX_FAIL;
	}
	rc = prepare(c, true, true);
	if (rc != EX_OK)
		return rc;
	rc = require_new_or_managed(c);
	if (rc != EX_OK)
		return rc;
	rc = gate(c, true);
	if (rc != EX_OK)
		return rc;
	steps = malloc(sizeof(int) * (2 * (size_t)c->set.n + 1));
	up = calloc(2 * (size_t)c->set.n + 1, sizeof(bool));
	none = calloc((size_t)c->set.n + 1, sizeof(bool));
	if (!steps || !up || !none) {
		errmsg("out of memory");
		rc = EX_FAIL;
		goto out;
	}
	/* Both plans first: nothing runs unless all of it can. */
	if ((c->has_hist &&
	     migrate_plan_downgrade(&c->set, c->applied, &base, steps, &ndown,
				    err, sizeof(err)) < 0) ||
	    migrate_plan_upgrade(&c->set, none, &heads, steps + ndown, &nup,
				 err, sizeof(err)) < 0) {
		errmsg("%s", err);
		rc = EX_FAIL;
		goto out;
	}
	n = ndown + nup;
	for (int i = ndown; i < n; i++)
		up[i] = true;
	rc = maybe_backup(c);
	if (rc != EX_OK)
		goto out;
	if (!c->has_hist && n > 0 && !c->set.revs[steps[0]].transactional &&
	    history_create(c, err, sizeof(err)) < 0) {
		errmsg("cannot create %s: %s", c->qhist, err);
		rc = EX_FAIL;
		goto out;
	}
	for (int i = 0; i < n && failed < 0;) {
		int j = i;

		if (!c->set.revs[steps[i]].transactional) {
			if (run_nontransactional(c, steps[i], up[i], true) !=
			    EX_OK)
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
		rc = history_load(c);
		if (rc == EX_OK) {
			bool one = true;

			for (int i = 0; i < n; i++)
				one = one && c->set.revs[steps[i]].transactional;
			current_text(c, cur, sizeof(cur));
			printf("reset: reverted %d and applied %d revision%s"
			       "%s; the database is at %s\n",
			       ndown, nup, nup == 1 ? "" : "s",
			       one ? " in one transaction" : "", cur);
		}
		goto out;
	}
	rc = EX_FAIL;
	if (committed == 0 && c->set.revs[steps[failed]].transactional) {
		errmsg("reset stopped at revision %s (%s) and nothing was "
		       "changed: everything it had done was rolled back",
		       c->set.revs[steps[failed]].id,
		       up[failed] ? "applying it" : "reverting it");
		goto out;
	}
	if (history_load(c) == EX_OK)
		current_text(c, cur, sizeof(cur));
	else
		snprintf(cur, sizeof(cur), "(unknown)");
	errmsg("reset stopped at step %d of %d, %s revision %s; the %d "
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
	errmsg("repair the cause%s, then run 'convctl db reset --yes' again: "
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

/* --------------------------------------------------------------- stamp */

static void stamp_warn(void *arg, const char *msg)
{
	(void)arg;
	warnmsg("%s", msg);
}

static int cmd_stamp(struct ctx *c)
{
	bool sql = c->o.given & O_SQL;
	struct migrate_target t;
	struct problems pr;
	bool *want = NULL;
	char err[ERRLEN];
	int rc, changes = 0;

	rc = prepare(c, true, !sql);
	if (rc != EX_OK)
		return rc;
	rc = parse_target(c, c->o.args[0], &t);
	if (rc != EX_OK)
		return rc;
	find_problems(c, &pr, false);
	if (pr.dirty) {
		find_problems(c, &pr, true);
		errmsg("resolve the dirty revision first; nothing was changed");
		return EX_FAIL;
	}
	want = calloc((size_t)c->set.n + 1, sizeof(bool));
	if (!want) {
		errmsg("out of memory");
		return EX_FAIL;
	}
	if (migrate_plan_stamp(&c->set, c->applied, &t, want, err,
			       sizeof(err)) < 0) {
		errmsg("%s", err);
		free(want);
		return EX_FAIL;
	}
	for (int i = 0; i < c->set.n; i++)
		if (want[i] != c->applied[i])
			changes++;
	if (t.kind == MT_BASE)
		for (int i = 0; i < c->nhist; i++)
			if (c->hist[i].idx < 0)
				changes++;
	if (changes == 0) {
		printf("nothing to do: the history already says so\n");
		free(want);
		return EX_OK;
	}
	if (sql) {
		printf("-- convctl db stamp %s\n", c->o.args[0]);
		if (!c->has_hist)
			print_history_ddl(c);
		printf("BEGIN;\n");
	} else if (sql_ok(c, "BEGIN", err, sizeof(err)) < 0 ||
		   (!c->has_hist && history_create(c, err, sizeof(err)) < 0)) {
		goto fail;
	}
	for (int i = 0; i < c->set.n; i++) {
		int x = c->set.order[i];
		const struct migrate_rev *rev = &c->set.revs[x];

		if (!want[x] || c->applied[x])
			continue;
		if (sql) {
			print_insert(c, rev, "stamped", false, NULL);
			continue;
		}
		if (record_applied(c, rev, "stamped", 0, false, NULL, err,
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
		if (record_change(c, "DELETE FROM ", " WHERE revision = $1",
				  c->set.revs[x].id, NULL, err,
				  sizeof(err)) < 0)
			goto fail;
		printf("unstamped %s\n", c->set.revs[x].id);
	}
	for (int i = 0; t.kind == MT_BASE && i < c->nhist; i++) {
		char *l;

		if (c->hist[i].idx >= 0)
			continue;
		if (sql) {
			l = lit(c, c->hist[i].revision);
			printf("DELETE FROM %s WHERE revision = %s;\n",
			       c->qhist, l ? l : "''");
			free(l);
			continue;
		}
		if (record_change(c, "DELETE FROM ", " WHERE revision = $1",
				  c->hist[i].revision, NULL, err,
				  sizeof(err)) < 0)
			goto fail;
		printf("unstamped %s (no file)\n", c->hist[i].revision);
	}
	free(want);
	if (sql) {
		printf("COMMIT;\n");
		return EX_OK;
	}
	if (sql_ok(c, "COMMIT", err, sizeof(err)) < 0) {
		want = NULL;
		goto fail;
	}
	c->has_hist = true;
	if (verify_schema(c, stamp_warn, NULL, err, sizeof(err)) > 0)
		warnmsg("the tables are not what the recorded revisions "
			"promise: convd refuses this database and 'convctl db "
			"check' fails until they agree");
	return EX_OK;
fail:
	free(want);
	sql_rollback(c);
	errmsg("stamp failed: %s; nothing was changed", err);
	return EX_FAIL;
}

/* ------------------------------------------------------------- resolve */

static int cmd_resolve(struct ctx *c)
{
	bool applied = c->o.given & O_APPLIED;
	const char *text = c->o.args[0];
	struct hist *h = NULL;
	char err[ERRLEN];
	int rc;

	if (applied == !!(c->o.given & O_ROLLED_BACK)) {
		errmsg("resolve needs exactly one of --applied and "
		       "--rolled-back");
		return EX_USAGE;
	}
	rc = prepare(c, true, true);
	if (rc != EX_OK)
		return rc;
	for (int i = 0; i < c->nhist; i++) {
		size_t l = strlen(text);

		if (strncmp(c->hist[i].revision, text, l) != 0)
			continue;
		if (h && strcmp(h->revision, text) != 0 &&
		    strcmp(c->hist[i].revision, text) != 0) {
			errmsg("'%s' is ambiguous: %s, %s", text, h->revision,
			       c->hist[i].revision);
			return EX_USAGE;
		}
		if (!h || strcmp(c->hist[i].revision, text) == 0)
			h = &c->hist[i];
	}
	if (!h) {
		errmsg("revision '%s' is not in the history", text);
		return EX_FAIL;
	}
	if (!h->dirty) {
		errmsg("revision %s is not dirty: nothing to resolve",
		       h->revision);
		return EX_FAIL;
	}
	if (applied)
		rc = record_change(c, "UPDATE ", " SET dirty = false, note = $2 WHERE revision = $1",
				   h->revision, "resolved by hand as applied",
				   err, sizeof(err));
	else
		rc = record_change(c, "DELETE FROM ", " WHERE revision = $1",
				   h->revision, NULL, err, sizeof(err));
	if (rc < 0) {
		errmsg("%s", err);
		return EX_FAIL;
	}
	printf("revision %s resolved as %s\n", h->revision,
	       applied ? "applied" : "rolled back (not applied)");
	return EX_OK;
}

/* ------------------------------------------------ status and friends */

/* Problems collected as strings (for status, check and verify). */
struct strlist {
	char **v;
	int n;
};

static void strlist_add(void *arg, const char *msg)
{
	struct strlist *l = arg;
	char **nv = realloc(l->v, sizeof(char *) * (size_t)(l->n + 1));

	if (!nv)
		return;
	l->v = nv;
	l->v[l->n] = strdup(msg);
	if (l->v[l->n])
		l->n++;
}

static void strlist_free(struct strlist *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static const char *rev_state(const struct ctx *c, int idx)
{
	const struct hist *h = hist_of(c, idx);

	if (!h)
		return "pending";
	if (h->dirty)
		return "dirty";
	if (strcmp(h->checksum, c->set.revs[idx].checksum) != 0)
		return "changed";
	return h->kind; /* applied, stamped or adopted */
}

static int pending_count(const struct ctx *c)
{
	int n = 0;

	for (int i = 0; i < c->set.n; i++)
		if (!c->applied[i])
			n++;
	return n;
}

static void put_current(struct json *j, const struct ctx *c)
{
	bool first = true;

	fputc('[', j->f);
	for (int i = 0; i < c->set.n; i++) {
		int x = c->set.order[i];
		const struct migrate_rev *r = &c->set.revs[x];

		if (!is_current(c, x))
			continue;
		if (!first)
			fputc(',', j->f);
		first = false;
		json_cstr(j, r->id);
	}
	fputc(']', j->f);
}

static void put_heads(struct json *j, const struct ctx *c)
{
	fputc('[', j->f);
	for (int i = 0; i < c->set.nheads; i++) {
		if (i)
			fputc(',', j->f);
		json_cstr(j, c->set.revs[c->set.heads[i]].id);
	}
	fputc(']', j->f);
}

static void put_strlist(struct json *j, const struct strlist *l)
{
	fputc('[', j->f);
	for (int i = 0; i < l->n; i++) {
		if (i)
			fputc(',', j->f);
		json_cstr(j, l->v[i]);
	}
	fputc(']', j->f);
}

/* One revision as a JSON object (with what the history says of it). */
static void put_rev(struct json *j, const struct ctx *c, int idx,
		    bool with_sql)
{
	const struct migrate_rev *r = &c->set.revs[idx];
	const struct hist *h = c->conn ? hist_of(c, idx) : NULL;
	bool first = true;

	fputc('{', j->f);
	json_kv_str(j, &first, "revision", r->id);
	json_key(j, &first, "parents");
	fputc('[', j->f);
	for (int k = 0; k < r->nparents; k++) {
		if (k)
			fputc(',', j->f);
		json_cstr(j, r->parents[k]);
	}
	fputc(']', j->f);
	json_key(j, &first, "children");
	fputc('[', j->f);
	for (int k = 0; k < r->nchildren; k++) {
		if (k)
			fputc(',', j->f);
		json_cstr(j, c->set.revs[r->child_idx[k]].id);
	}
	fputc(']', j->f);
	json_kv_str(j, &first, "message", r->message);
	json_kv_bool(j, &first, "head", r->nchildren == 0);
	json_kv_bool(j, &first, "transactional", r->transactional);
	json_kv_str(j, &first, "checksum", r->checksum);
	json_kv_str(j, &first, "file", r->path);
	if (c->conn) {
		json_kv_str(j, &first, "state", rev_state(c, idx));
		json_kv_str(j, &first, "applied_at", h ? h->applied_at : NULL);
		json_kv_str(j, &first, "applied_by", h ? h->applied_by : NULL);
		json_key(j, &first, "duration_ms");
		if (h)
			json_int(j, h->duration_ms);
		else
			json_null(j);
		json_kv_str(j, &first, "note", h ? h->note : NULL);
	}
	if (with_sql) {
		json_kv_str(j, &first, "created", r->created);
		json_kv_str(j, &first, "up", r->up);
		json_kv_str(j, &first, "down", r->down);
	}
	fputc('}', j->f);
}

static int cmd_status(struct ctx *c)
{
	struct strlist probs = {NULL, 0};
	struct problems pr;
	char cur[512], heads[512];
	int rc = prepare(c, true, false), pending;

	if (rc != EX_OK)
		return rc;
	find_problems_cb(c, &pr, strlist_add, &probs);
	pending = pending_count(c);
	current_text(c, cur, sizeof(cur));
	migrate_set_heads_text(&c->set, heads, sizeof(heads));
	if (c->json) {
		bool first = true;

		printf("{");
		json_kv_str(&c->out, &first, "database", c->describe);
		json_kv_str(&c->out, &first, "server_version",
			    PQparameterStatus(c->conn, "server_version"));
		json_kv_str(&c->out, &first, "schema", c->nsp);
		json_kv_bool(&c->out, &first, "history_table", c->has_hist);
		json_key(&c->out, &first, "current");
		put_current(&c->out, c);
		json_key(&c->out, &first, "heads");
		put_heads(&c->out, c);
		json_kv_int(&c->out, &first, "pending", pending);
		json_kv_bool(&c->out, &first, "at_head",
			     pending == 0 && c->has_hist);
		json_key(&c->out, &first, "revisions");
		printf("[");
		for (int i = 0; i < c->set.n; i++) {
			if (i)
				printf(",");
			put_rev(&c->out, c, c->set.order[i], false);
		}
		printf("]");
		json_key(&c->out, &first, "problems");
		put_strlist(&c->out, &probs);
		printf("}\n");
	} else {
		printf("database: %s (PostgreSQL %s), schema %s\n", c->describe,
		       PQparameterStatus(c->conn, "server_version"), c->nsp);
		printf("history:  %s\n",
		       c->has_hist ? c->qhist
				   : "none (run 'convctl db setup')");
		printf("current:  %s\n", cur);
		printf("heads:    %s\n", c->set.nheads ? heads : "(none)");
		if (!c->has_hist)
			printf("state:    not set up\n");
		else if (pending == 0)
			printf("state:    at head\n");
		else
			printf("state:    %d revision%s pending (run 'convctl "
			       "db upgrade')\n",
			       pending, pending == 1 ? "" : "s");
		printf("\n");
		for (int i = 0; i < c->set.n; i++) {
			int x = c->set.order[i];
			const struct hist *h = hist_of(c, x);
			char *m = oneline(c->set.revs[x].message);

			printf("  %-8s %s  %-20s  %s\n", rev_state(c, x),
			       c->set.revs[x].id, h ? h->applied_at : "", m);
			free(m);
		}
		for (int i = 0; i < c->nhist; i++)
			if (c->hist[i].idx < 0)
				printf("  %-8s %s  %-20s  (no file)\n", "missing",
				       c->hist[i].revision,
				       c->hist[i].applied_at);
		for (int i = 0; i < probs.n; i++)
			printf("problem: %s\n", probs.v[i]);
	}
	rc = probs.n ? EX_FAIL : EX_OK;
	strlist_free(&probs);
	return rc;
}

static int cmd_current(struct ctx *c)
{
	char cur[512];
	int rc = prepare(c, true, false);

	if (rc != EX_OK)
		return rc;
	if (c->json) {
		printf("{\"current\":");
		put_current(&c->out, c);
		printf(",\"at_head\":%s}\n",
		       pending_count(c) == 0 && c->has_hist ? "true" : "false");
		return EX_OK;
	}
	current_text(c, cur, sizeof(cur));
	if (strcmp(cur, "base") == 0) {
		printf("base (nothing applied)\n");
		return EX_OK;
	}
	for (int i = 0; i < c->set.n; i++) {
		int x = c->set.order[i];
		const struct migrate_rev *r = &c->set.revs[x];
		char *m;

		if (!is_current(c, x))
			continue;
		m = oneline(r->message);
		printf("%s%s %s\n", r->id, r->nchildren == 0 ? " (head)" : "",
		       m);
		free(m);
	}
	return EX_OK;
}

static int cmd_heads(struct ctx *c)
{
	int rc = prepare(c, false, false);

	if (rc != EX_OK)
		return rc;
	if (c->json) {
		printf("{\"heads\":[");
		for (int i = 0; i < c->set.nheads; i++) {
			if (i)
				printf(",");
			put_rev(&c->out, c, c->set.heads[i], false);
		}
		printf("]}\n");
		return EX_OK;
	}
	for (int i = 0; i < c->set.nheads; i++) {
		char *m = oneline(c->set.revs[c->set.heads[i]].message);

		printf("%s %s\n", c->set.revs[c->set.heads[i]].id, m);
		free(m);
	}
	if (c->set.nheads > 1)
		warnmsg("%d heads: merge them with 'convctl db merge %s %s "
			"-m MESSAGE'",
			c->set.nheads, c->set.revs[c->set.heads[0]].id,
			c->set.revs[c->set.heads[1]].id);
	return EX_OK;
}

/* Branch points: the revisions with more than one child, and the
 * children, as Alembic's `branches` shows them.  Reads only the files. */
static int cmd_branches(struct ctx *c)
{
	int rc = prepare(c, false, false), nb = 0;

	if (rc != EX_OK)
		return rc;
	if (c->json)
		printf("{\"branches\":[");
	for (int i = 0; i < c->set.n; i++) {
		const struct migrate_rev *r = &c->set.revs[c->set.order[i]];

		if (r->nchildren < 2)
			continue;
		if (c->json) {
			bool first = true;

			printf("%s{", nb ? "," : "");
			json_kv_str(&c->out, &first, "revision", r->id);
			json_kv_str(&c->out, &first, "message", r->message);
			json_key(&c->out, &first, "children");
			printf("[");
			for (int k = 0; k < r->nchildren; k++) {
				const struct migrate_rev *ch =
					&c->set.revs[r->child_idx[k]];
				bool f2 = true;

				printf("%s{", k ? "," : "");
				json_kv_str(&c->out, &f2, "revision", ch->id);
				json_kv_bool(&c->out, &f2, "head",
					     ch->nchildren == 0);
				printf("}");
			}
			printf("]}");
		} else {
			char *m = oneline(r->message);

			printf("%s (branch point) %s\n", r->id, m);
			free(m);
			for (int k = 0; k < r->nchildren; k++) {
				const struct migrate_rev *ch =
					&c->set.revs[r->child_idx[k]];

				m = oneline(ch->message);
				printf("    -> %s%s %s\n", ch->id,
				       ch->nchildren == 0 ? " (head)" : "", m);
				free(m);
			}
		}
		nb++;
	}
	if (c->json)
		printf("]}\n");
	else if (nb == 0)
		printf("no branch points\n");
	return EX_OK;
}

static int cmd_history(struct ctx *c)
{
	int rc = prepare(c, true, false);

	if (rc != EX_OK)
		return rc;
	if (c->json) {
		printf("{\"revisions\":[");
		for (int i = c->set.n - 1; i >= 0; i--) {
			if (i != c->set.n - 1)
				printf(",");
			put_rev(&c->out, c, c->set.order[i], false);
		}
		printf("]}\n");
		return EX_OK;
	}
	for (int i = c->set.n - 1; i >= 0; i--) {
		int x = c->set.order[i];
		const struct migrate_rev *r = &c->set.revs[x];
		const struct hist *h = hist_of(c, x);
		char *m = oneline(r->message);

		printf("%s%s%s %s\n", r->id, r->nchildren == 0 ? " (head)" : "",
		       r->nparents > 1 ? " (merge)" : "", m);
		free(m);
		printf("    parents: ");
		if (r->nparents == 0)
			printf("(base)");
		for (int k = 0; k < r->nparents; k++)
			printf("%s%s", k ? " " : "", r->parents[k]);
		printf("\n");
		if (h)
			printf("    %s %s by %s in %" PRId64 " ms%s%s\n",
			       h->dirty ? "dirty since" : h->kind, h->applied_at,
			       h->applied_by, h->duration_ms,
			       h->note ? ": " : "", h->note ? h->note : "");
		else
			printf("    not applied\n");
	}
	for (int i = 0; i < c->nhist; i++)
		if (c->hist[i].idx < 0)
			printf("%s (no file)\n    %s %s by %s\n",
			       c->hist[i].revision, c->hist[i].kind,
			       c->hist[i].applied_at, c->hist[i].applied_by);
	return EX_OK;
}

static int cmd_show(struct ctx *c)
{
	char err[ERRLEN];
	int rc = prepare(c, false, false), idx;
	const struct migrate_rev *r;
	struct migrate_finding *f = NULL;
	size_t nf = 0;

	if (rc != EX_OK)
		return rc;
	idx = migrate_set_find(&c->set, c->o.args[0], err, sizeof(err));
	if (idx < 0) {
		errmsg("%s", err);
		return EX_FAIL;
	}
	r = &c->set.revs[idx];
	/* what the database's history says of it, when there is one */
	quiet_errors = true;
	if (db_connect(c) != EX_OK || history_load(c) != EX_OK) {
		PQfinish(c->conn);
		c->conn = NULL;
	}
	quiet_errors = false;
	if (c->json) {
		put_rev(&c->out, c, idx, true);
		printf("\n");
		return EX_OK;
	}
	printf("revision:      %s%s\n", r->id,
	       r->nchildren == 0 ? " (head)" : "");
	printf("parents:       ");
	if (r->nparents == 0)
		printf("(base)");
	for (int k = 0; k < r->nparents; k++)
		printf("%s%s", k ? " " : "", r->parents[k]);
	printf("\nchildren:      ");
	if (r->nchildren == 0)
		printf("(none)");
	for (int k = 0; k < r->nchildren; k++)
		printf("%s%s", k ? " " : "", c->set.revs[r->child_idx[k]].id);
	printf("\nmessage:       %s\n", r->message);
	printf("file:          %s\n", r->path ? r->path : "");
	if (r->created)
		printf("created:       %s\n", r->created);
	printf("transactional: %s\n", r->transactional ? "yes" : "no");
	printf("checksum:      %s\n", r->checksum);
	if (c->conn) {
		const struct hist *h = hist_of(c, idx);

		if (h)
			printf("state:         %s %s by %s in %" PRId64 " ms\n",
			       rev_state(c, idx), h->applied_at, h->applied_by,
			       h->duration_ms);
		else
			printf("state:         pending (%s)\n", c->describe);
		if (h && h->note)
			printf("note:          %s\n", h->note);
	}
	if (migrate_sql_scan(r->up, &f, &nf, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < nf; i++)
			printf("destructive:   %s (up, line %d): %s\n",
			       migrate_hazard_name(f[i].kind),
			       r->up_line + f[i].line - 1, f[i].what);
		free(f);
	}
	printf("\n-- +up\n");
	print_section(r->up);
	printf("\n-- +down\n");
	print_section(r->down);
	return EX_OK;
}

/* Table names of the schema with estimated row counts. */
static int list_tables(struct ctx *c, struct strlist *out, char *err,
		       size_t errlen)
{
	const char *p[1] = {c->nsp};
	PGresult *r = sql_params(c,
				 "SELECT c.relname, CASE WHEN c.reltuples < 0"
				 " THEN NULL ELSE c.reltuples::bigint END"
				 " FROM pg_class c JOIN pg_namespace n"
				 " ON n.oid = c.relnamespace"
				 " WHERE n.nspname = $1 AND c.relkind IN"
				 " ('r', 'p') ORDER BY 1",
				 1, p, err, errlen);

	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		char buf[512];

		if (PQgetisnull(r, i, 1))
			snprintf(buf, sizeof(buf), "%s", PQgetvalue(r, i, 0));
		else
			snprintf(buf, sizeof(buf), "%s (~%s rows)",
				 PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
		strlist_add(out, buf);
	}
	PQclear(r);
	return 0;
}

static int cmd_check(struct ctx *c)
{
	struct strlist probs = {NULL, 0}, tables = {NULL, 0};
	struct problems pr;
	struct madopt a;
	char err[ERRLEN], cur[512];
	int rc, pending;
	bool ok;

	memset(&a, 0, sizeof(a));
	rc = load_set(c);
	if (rc != EX_OK)
		return rc;
	rc = db_connect(c);
	if (rc != EX_OK) {
		if (c->json)
			printf("{\"ok\":false,\"connection\":false}\n");
		return rc;
	}
	rc = history_load(c);
	if (rc != EX_OK)
		return rc;
	if (list_tables(c, &tables, err, sizeof(err)) < 0) {
		errmsg("%s", err);
		return EX_FAIL;
	}
	find_problems_cb(c, &pr, strlist_add, &probs);
	if (verify_schema(c, strlist_add, &probs, err, sizeof(err)) > 0)
		strlist_add(&probs,
			    "the tables differ from what the recorded "
			    "revisions promise (above): convd refuses this "
			    "database until they agree");
	pending = pending_count(c);
	current_text(c, cur, sizeof(cur));
	if (!c->has_hist) {
		if (madopt_inspect(c->conn, c->nsp, SCHEMA_HISTORY_TABLE, &a,
				   err, sizeof(err)) < 0) {
			errmsg("%s", err);
			strlist_free(&tables);
			strlist_free(&probs);
			return EX_FAIL;
		}
		madopt_free(&a);
		strlist_add(&probs,
			    a.shape == MA_UNKNOWN
				    ? "no history table, and tables convctl db "
				      "does not recognise"
				    : "no history table: run 'convctl db "
				      "setup'");
	} else if (pending > 0) {
		char msg[128];

		snprintf(msg, sizeof(msg),
			 "%d revision%s pending: run 'convctl db upgrade'",
			 pending, pending == 1 ? "" : "s");
		strlist_add(&probs, msg);
	}
	ok = probs.n == 0;
	if (c->json) {
		bool first = true;

		printf("{");
		json_kv_bool(&c->out, &first, "ok", ok);
		json_kv_bool(&c->out, &first, "connection", true);
		json_kv_str(&c->out, &first, "database", c->describe);
		json_kv_str(&c->out, &first, "server_version",
			    PQparameterStatus(c->conn, "server_version"));
		json_kv_str(&c->out, &first, "schema", c->nsp);
		json_kv_bool(&c->out, &first, "history_table", c->has_hist);
		if (!c->has_hist)
			json_kv_str(&c->out, &first, "found",
				    a.shape == MA_UNKNOWN ? a.problem : a.found);
		json_key(&c->out, &first, "current");
		put_current(&c->out, c);
		json_key(&c->out, &first, "heads");
		put_heads(&c->out, c);
		json_kv_int(&c->out, &first, "pending", pending);
		json_kv_bool(&c->out, &first, "at_head",
			     pending == 0 && c->has_hist);
		json_key(&c->out, &first, "tables");
		put_strlist(&c->out, &tables);
		json_key(&c->out, &first, "problems");
		put_strlist(&c->out, &probs);
		printf("}\n");
	} else {
		printf("connection: ok (%s)\n", c->describe);
		printf("server:     PostgreSQL %s\n",
		       PQparameterStatus(c->conn, "server_version"));
		printf("schema:     %s\n", c->nsp);
		if (c->has_hist)
			printf("history:    %s, %d revision%s recorded\n",
			       c->qhist, c->nhist, c->nhist == 1 ? "" : "s");
		else
			printf("history:    none; found %s\n",
			       a.shape == MA_UNKNOWN ? a.problem : a.found);
		printf("revision:   %s", cur);
		if (c->has_hist && pending == 0)
			printf(" (head)");
		printf("\ntables:     ");
		for (int i = 0; i < tables.n; i++)
			printf("%s%s", i ? ", " : "", tables.v[i]);
		printf("%s\n", tables.n ? "" : "(none)");
		for (int i = 0; i < probs.n; i++)
			printf("problem:    %s\n", probs.v[i]);
		printf("check:      %s\n", ok ? "ok" : "FAILED");
	}
	strlist_free(&tables);
	strlist_free(&probs);
	return ok ? EX_OK : EX_FAIL;
}

/* -------------------------------------------------------------- verify */

static int cmd_verify(struct ctx *c)
{
	struct strlist probs = {NULL, 0}, flags = {NULL, 0};
	struct problems pr;
	char err[ERRLEN];
	int rc, bad = 0;

	rc = load_set(c);
	if (rc != EX_OK)
		return rc;
	for (int i = 0; i < c->set.n; i++) {
		const struct migrate_rev *r = &c->set.revs[c->set.order[i]];
		struct migrate_finding *f = NULL;
		size_t nf = 0;
		int lex;

		/* both sections must lex; the up section's findings count */
		lex = migrate_sql_scan(r->down, &f, &nf, err, sizeof(err));

		free(f);
		f = NULL;
		if (lex == 0)
			lex = migrate_sql_scan(r->up, &f, &nf, err,
					       sizeof(err));
		if (lex < 0) {
			char msg[ERRLEN + 128];

			snprintf(msg, sizeof(msg), "revision %s (%s): %s",
				 r->id, r->path, err);
			strlist_add(&probs, msg);
			continue;
		}
		if (r->transactional && (migrate_sql_txn_control(r->up) ||
					 migrate_sql_txn_control(r->down))) {
			char msg[1024];

			snprintf(msg, sizeof(msg),
				 "revision %s (%s) begins or ends a "
				 "transaction, but is transactional",
				 r->id, r->path);
			strlist_add(&probs, msg);
		}
		for (size_t k = 0; k < nf; k++) {
			char msg[1024];

			snprintf(msg, sizeof(msg),
				 "revision %s (%s:%d) %s: %s", r->id, r->path,
				 r->up_line + f[k].line - 1,
				 migrate_hazard_name(f[k].kind), f[k].what);
			strlist_add(&flags, msg);
		}
		free(f);
	}
	if (!(c->o.given & O_OFFLINE)) {
		rc = db_connect(c);
		if (rc != EX_OK) {
			strlist_free(&probs);
			strlist_free(&flags);
			return rc;
		}
		rc = history_load(c);
		if (rc != EX_OK) {
			strlist_free(&probs);
			strlist_free(&flags);
			return rc;
		}
		find_problems_cb(c, &pr, strlist_add, &probs);
	}
	bad = probs.n;
	if (c->json) {
		bool first = true;

		printf("{");
		json_kv_bool(&c->out, &first, "ok", bad == 0);
		json_kv_int(&c->out, &first, "revisions", c->set.n);
		json_key(&c->out, &first, "heads");
		put_heads(&c->out, c);
		json_kv_bool(&c->out, &first, "database", c->conn != NULL);
		json_key(&c->out, &first, "destructive");
		put_strlist(&c->out, &flags);
		json_key(&c->out, &first, "problems");
		put_strlist(&c->out, &probs);
		printf("}\n");
	} else {
		char heads[512];

		migrate_set_heads_text(&c->set, heads, sizeof(heads));
		printf("%d revision%s in %s, %d head%s%s%s%s\n", c->set.n,
		       c->set.n == 1 ? "" : "s", c->dir, c->set.nheads,
		       c->set.nheads == 1 ? "" : "s",
		       c->set.nheads ? " (" : "", heads,
		       c->set.nheads ? ")" : "");
		if (c->set.nheads > 1)
			printf("note: several heads: 'convctl db upgrade head' "
			       "refuses until they are merged\n");
		for (int i = 0; i < flags.n; i++)
			printf("destructive: %s\n", flags.v[i]);
		if (c->conn)
			printf("checksums: %d applied revision%s compared with "
			       "their files\n",
			       c->nhist, c->nhist == 1 ? "" : "s");
		for (int i = 0; i < probs.n; i++)
			printf("problem: %s\n", probs.v[i]);
		printf("verify: %s\n", bad ? "FAILED" : "ok");
	}
	strlist_free(&probs);
	strlist_free(&flags);
	return bad ? EX_FAIL : EX_OK;
}

/* ---------------------------------------------------- diff and migrate */

static char *read_text_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long len;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 ||
	    len > (long)MIGRATE_MAX_FILE || fseek(f, 0, SEEK_SET) < 0) {
		snprintf(err, errlen, "%s: unreadable or larger than %u bytes",
			 path, MIGRATE_MAX_FILE);
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)len + 1);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		snprintf(err, errlen, "%s: cannot read", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[len] = '\0';
	fclose(f);
	if (strlen(buf) != (size_t)len ||
	    !migrate_utf8_valid(buf, (size_t)len)) {
		snprintf(err, errlen, "%s: not UTF-8 text", path);
		free(buf);
		return NULL;
	}
	return buf;
}

/* The differences database -> model (up) and model -> database (down). */
static int model_diff(struct ctx *c, struct mdiff *up, struct mdiff *down)
{
	struct mschema live = {0}, model = {0};
	char err[ERRLEN];
	char *sql = read_text_file(c->model_path, err, sizeof(err));
	int rc = EX_FAIL;

	memset(up, 0, sizeof(*up));
	memset(down, 0, sizeof(*down));
	if (!sql) {
		errmsg("schema model: %s", err);
		return EX_FAIL;
	}
	if (sql_ok(c, "BEGIN", err, sizeof(err)) < 0) {
		errmsg("%s", err);
		free(sql);
		return EX_FAIL;
	}
	if (mcat_load(c->conn, c->nsp, SCHEMA_HISTORY_TABLE, &live, err,
		      sizeof(err)) < 0) {
		errmsg("reading the database: %s", err);
		goto out;
	}
	if (mcat_load_sql(c->conn, sql, c->nsp, SCHEMA_HISTORY_TABLE, &model,
			  err, sizeof(err)) < 0) {
		errmsg("loading the schema model %s: %s", c->model_path, err);
		goto out;
	}
	if (mdiff_compute(&live, &model, 0, up) < 0 ||
	    mdiff_compute(&model, &live, 0, down) < 0) {
		errmsg("out of memory");
		goto out;
	}
	rc = EX_OK;
out:
	sql_rollback(c);
	mschema_free(&live);
	mschema_free(&model);
	free(sql);
	return rc;
}

static int cmd_diff(struct ctx *c)
{
	struct mdiff up, down;
	int rc = prepare(c, true, false);

	if (rc != EX_OK)
		return rc;
	rc = model_diff(c, &up, &down);
	if (rc != EX_OK)
		return rc;
	if (c->json) {
		bool first = true;

		printf("{");
		json_kv_str(&c->out, &first, "model", c->model_path);
		json_kv_bool(&c->out, &first, "drift", up.n > 0);
		json_key(&c->out, &first, "differences");
		printf("[");
		for (int i = 0, k = 0; i < up.n; i++) {
			bool f2 = true;

			if (!up.v[i].what)
				continue;
			printf("%s{", k++ ? "," : "");
			json_kv_str(&c->out, &f2, "what", up.v[i].what);
			json_kv_bool(&c->out, &f2, "destructive",
				     up.v[i].destructive);
			printf("}");
		}
		printf("]");
		if (c->o.given & O_SQL) {
			char *s = mdiff_script(&up);

			json_kv_str(&c->out, &first, "sql", s);
			free(s);
		}
		printf("}\n");
	} else if (up.n == 0) {
		printf("no differences between the database and the model "
		       "(%s)\n",
		       c->model_path);
	} else {
		printf("the database differs from the model (%s): + only in "
		       "the model, - only in the database, ~ database -> "
		       "model\n",
		       c->model_path);
		for (int i = 0; i < up.n; i++)
			if (up.v[i].what)
				printf("%s\n", up.v[i].what);
		if (c->o.given & O_SQL) {
			char *s = mdiff_script(&up);

			printf("\n-- SQL that brings the database to the "
			       "model\n%s",
			       s ? s : "");
			free(s);
		}
	}
	rc = up.n > 0 ? EX_FAIL : EX_OK;
	mdiff_free(&up);
	mdiff_free(&down);
	return rc;
}

/* Writes a new revision file; prints its path. */
static int write_revision(struct ctx *c, char *const *parents, int nparents,
			  const char *message, const char *up,
			  const char *down)
{
	char id[MIGRATE_NEW_ID_LEN + 1], created[32], err[ERRLEN];
	char *text = NULL, *name = NULL, *path = NULL;
	struct migrate_rev check;
	time_t now = time(NULL);
	struct tm tm;
	int fd = -1, rc = EX_FAIL, tries = 0;
	size_t len, off = 0;

	do {
		if (migrate_new_id(id) < 0) {
			errmsg("cannot make a revision id: %s",
			       strerror(errno));
			return EX_FAIL;
		}
	} while (migrate_set_find_exact(&c->set, id) >= 0 && ++tries < 100);
	gmtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	text = migrate_rev_format(id, parents, nparents, message, created,
				  true, up, down, err, sizeof(err));
	if (!text) {
		errmsg("%s", err);
		return EX_FAIL;
	}
	/* What is written must read back as the same revision. */
	if (migrate_rev_parse(text, strlen(text), NULL, &check, err,
			      sizeof(err)) < 0) {
		errmsg("internal error: the new revision does not parse: %s",
		       err);
		free(text);
		return EX_FAIL;
	}
	if (strcmp(check.message, message) != 0 ||
	    check.nparents != nparents) {
		errmsg("internal error: the new revision does not read back");
		migrate_rev_free(&check);
		free(text);
		return EX_FAIL;
	}
	migrate_rev_free(&check);
	name = migrate_file_name(id, message);
	if (!name || asprintf(&path, "%s/%s", c->dir, name) < 0) {
		path = NULL;
		errmsg("out of memory");
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		errmsg("cannot create %s: %s", path, strerror(errno));
		goto out;
	}
	len = strlen(text);
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			errmsg("cannot write %s: %s", path, strerror(errno));
			close(fd);
			unlink(path);
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		errmsg("cannot write %s: %s", path, strerror(errno));
		unlink(path);
		goto out;
	}
	if (c->json) {
		bool first = true;

		printf("{");
		json_kv_str(&c->out, &first, "revision", id);
		json_kv_str(&c->out, &first, "file", path);
		printf("}\n");
	} else {
		printf("created revision %s in %s\n", id, path);
	}
	rc = EX_OK;
out:
	free(text);
	free(name);
	free(path);
	return rc;
}

static int check_message(const char *msg)
{
	char err[256];

	if (!msg || !msg[0]) {
		errmsg("a message is needed: -m MESSAGE");
		return EX_USAGE;
	}
	if (migrate_message_check(msg, err, sizeof(err)) < 0) {
		errmsg("%s", err);
		return EX_USAGE;
	}
	return EX_OK;
}

/* Whether exactly x and its ancestors are applied. */
static bool at_revision(const struct ctx *c, int x)
{
	bool *mark = calloc((size_t)c->set.n + 1, sizeof(bool)), same = true;

	if (!mark)
		return false;
	migrate_set_ancestors(&c->set, x, mark);
	for (int i = 0; i < c->set.n; i++)
		same = same && mark[i] == c->applied[i];
	free(mark);
	return same;
}

static int cmd_migrate(struct ctx *c)
{
	char *parents[1];
	int nparents = 0, rc, on = -1;
	bool autogen = c->o.given & O_AUTOGENERATE;
	struct mdiff up = {0}, down = {0};
	char *ups = NULL, *downs = NULL;

	rc = check_message(c->o.message);
	if (rc != EX_OK)
		return rc;
	rc = prepare(c, autogen, false);
	if (rc != EX_OK)
		return rc;
	if ((c->o.given & O_SPLICE) && !(c->o.given & O_HEAD)) {
		errmsg("--splice goes with --head REV");
		return EX_USAGE;
	}
	if ((c->o.given & O_HEAD) && strcmp(c->o.head, "head") != 0) {
		char err[ERRLEN];

		on = migrate_set_find(&c->set, c->o.head, err, sizeof(err));
		if (on < 0) {
			errmsg("--head: %s", err);
			return EX_FAIL;
		}
		if (c->set.revs[on].nchildren > 0 &&
		    !(c->o.given & O_SPLICE)) {
			errmsg("revision %s is not a head (%s follows it): give "
			       "--splice as well to start a new branch from it",
			       c->set.revs[on].id,
			       c->set.revs[c->set.revs[on].child_idx[0]].id);
			return EX_FAIL;
		}
		parents[0] = c->set.revs[on].id;
		nparents = 1;
	} else if (c->set.nheads > 1) {
		char heads[512];

		migrate_set_heads_text(&c->set, heads, sizeof(heads));
		errmsg("there are %d heads (%s): merge them first with "
		       "'convctl db merge %s %s -m MESSAGE'",
		       c->set.nheads, heads, c->set.revs[c->set.heads[0]].id,
		       c->set.revs[c->set.heads[1]].id);
		return EX_FAIL;
	}
	if (on < 0 && c->set.nheads == 1) {
		parents[0] = c->set.revs[c->set.heads[0]].id;
		nparents = 1;
	}
	if (!autogen)
		return write_revision(c, parents, nparents, c->o.message,
				      "-- the SQL that applies this revision\n",
				      "-- the SQL that reverts it\n");
	{
		struct problems pr;

		find_problems(c, &pr, true);
		if (pr.dirty || pr.missing || pr.changed) {
			errmsg("fix the history first; nothing was written");
			return EX_FAIL;
		}
		if (on >= 0 && !at_revision(c, on)) {
			errmsg("the database is not at %s: autogenerate compares "
			       "the model with a database that has exactly %s "
			       "and its ancestors applied",
			       c->set.revs[on].id, c->set.revs[on].id);
			return EX_FAIL;
		}
		if (on < 0 && (!c->has_hist || pending_count(c) > 0)) {
			errmsg("the database is not at head: autogenerate "
			       "compares the model with a database that has "
			       "every revision; run 'convctl db upgrade "
			       "heads' first");
			return EX_FAIL;
		}
	}
	rc = model_diff(c, &up, &down);
	if (rc != EX_OK)
		return rc;
	if (up.n == 0) {
		printf("no differences between the database and the model "
		       "(%s): no revision written\n",
		       c->model_path);
		mdiff_free(&up);
		mdiff_free(&down);
		return EX_OK;
	}
	for (int i = 0; i < up.n; i++) {
		if (up.v[i].what)
			printf("%s\n", up.v[i].what);
		if (up.v[i].destructive)
			warnmsg("destructive: %s (%s)", up.v[i].sql,
				up.v[i].warning ? up.v[i].warning
						: "loses data");
	}
	ups = mdiff_script(&up);
	downs = mdiff_script(&down);
	if (!ups || !downs) {
		errmsg("out of memory");
		rc = EX_FAIL;
	} else {
		char *u2 = NULL;

		if (asprintf(&u2,
			     "-- generated by convctl db migrate --autogenerate"
			     "\n-- from the differences between the database "
			     "and the model; review it\n\n%s",
			     ups) < 0) {
			errmsg("out of memory");
			rc = EX_FAIL;
		} else {
			rc = write_revision(c, parents, nparents, c->o.message,
					    u2, downs);
			free(u2);
		}
	}
	free(ups);
	free(downs);
	mdiff_free(&up);
	mdiff_free(&down);
	return rc;
}

static int cmd_merge(struct ctx *c)
{
	char err[ERRLEN];
	char *parents[MIGRATE_MAX_PARENTS];
	int idx[MIGRATE_MAX_PARENTS];
	int rc;

	rc = check_message(c->o.message);
	if (rc != EX_OK)
		return rc;
	rc = prepare(c, false, false);
	if (rc != EX_OK)
		return rc;
	for (int i = 0; i < c->o.nargs; i++) {
		idx[i] = migrate_set_find(&c->set, c->o.args[i], err,
					  sizeof(err));
		if (idx[i] < 0) {
			errmsg("%s", err);
			return EX_FAIL;
		}
		parents[i] = c->set.revs[idx[i]].id;
		for (int k = 0; k < i; k++) {
			if (idx[k] == idx[i]) {
				errmsg("%s is named twice", parents[i]);
				return EX_FAIL;
			}
			if (migrate_set_is_ancestor(&c->set, idx[k], idx[i]) ||
			    migrate_set_is_ancestor(&c->set, idx[i], idx[k])) {
				errmsg("%s and %s are on one line of history: "
				       "there is nothing to merge",
				       parents[k], parents[i]);
				return EX_FAIL;
			}
		}
	}
	return write_revision(c, parents, c->o.nargs, c->o.message,
			      "-- a merge: no SQL of its own\n",
			      "-- a merge: no SQL of its own\n");
}

/* ------------------------------------------------------------ dispatch */

struct command {
	const char *name;
	int (*fn)(struct ctx *c);
	unsigned opts;
	int min_args, max_args;
	const char *args;
};

#define RUN_OPTS                                                           \
	(O_SQL | O_TRY | O_BACKUP | O_ALLOW_DESTRUCTIVE | O_ACCEPT_CHANGED | \
	 O_LOCK_TIMEOUT)

static const struct command commands[] = {
	{"setup", cmd_setup, RUN_OPTS | O_LEGACY_TZ | O_LAYOUT, 0, 0,
	 " [--layout plain|partitioned]"},
	{"partition", cmd_partition, O_LOCK_TIMEOUT, 0, 0, ""},
	{"check", cmd_check, 0, 0, 0, ""},
	{"status", cmd_status, 0, 0, 0, ""},
	{"current", cmd_current, 0, 0, 0, ""},
	{"history", cmd_history, 0, 0, 0, ""},
	{"heads", cmd_heads, 0, 0, 0, ""},
	{"branches", cmd_branches, 0, 0, 0, ""},
	{"show", cmd_show, 0, 1, 1, " REV"},
	{"upgrade", cmd_upgrade, RUN_OPTS, 0, 1, " [TARGET]"},
	{"downgrade", cmd_downgrade, RUN_OPTS, 1, 1, " TARGET"},
	{"rollback", cmd_rollback, RUN_OPTS, 0, 1, " [N]"},
	{"merge", cmd_merge, O_MESSAGE, 2, MIGRATE_MAX_PARENTS,
	 " REV REV... -m MESSAGE"},
	{"stamp", cmd_stamp, O_SQL | O_LOCK_TIMEOUT, 1, 1, " TARGET"},
	{"verify", cmd_verify, O_OFFLINE, 0, 0, ""},
	{"migrate", cmd_migrate,
	 O_MESSAGE | O_AUTOGENERATE | O_MODEL | O_HEAD | O_SPLICE, 0, 0,
	 " -m MESSAGE [--autogenerate] [--head REV [--splice]]"},
	{"diff", cmd_diff, O_MODEL | O_SQL, 0, 0, ""},
	{"reset", cmd_reset, O_YES | O_BACKUP | O_LOCK_TIMEOUT, 0, 0, ""},
	{"resolve", cmd_resolve, O_APPLIED | O_ROLLED_BACK | O_LOCK_TIMEOUT, 1,
	 1, " REV"},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: convctl [-c FILE] [--json] db COMMAND [OPTIONS] [ARGS]\n"
		"\n"
		"  setup                   create the history table, adopt a "
		"legacy database,\n"
		"                          upgrade to head (idempotent)\n"
		"  setup --layout partitioned   the same, history partitioned "
		"by month\n"
		"  partition               convert the history to monthly "
		"partitions (online,\n"
		"                          resumable)\n"
		"  check                   connection, server, schema state, "
		"tables\n"
		"  status | current | history | heads | branches | show REV\n"
		"  upgrade [TARGET]        TARGET: head (default), heads, REV, "
		"+N\n"
		"  downgrade TARGET        TARGET: base, REV, -N\n"
		"  upgrade|downgrade FROM:TO --sql   offline SQL, no database\n"
		"  rollback [N]            revert the last N (default 1)\n"
		"  merge REV REV... -m MSG a revision joining heads\n"
		"  stamp TARGET            record as applied without running\n"
		"  verify [--offline]      files, graph, checksums, destructive "
		"statements\n"
		"  migrate -m MSG [--autogenerate] [--model FILE] [--head REV "
		"[--splice]]\n"
		"  diff [--model FILE] [--sql]  database against the schema "
		"model\n"
		"  reset --yes             down to base and up to head (needs "
		"allow_reset)\n"
		"  resolve REV --applied | --rolled-back   clear a dirty "
		"revision\n"
		"\n"
		"options: --sql  --try  --backup FILE  --allow-destructive  "
		"--accept-changed\n"
		"         --legacy-timezone ZONE (setup: how to read a legacy "
		"database's times)\n"
		"         --lock-timeout SECONDS (default %d)\n"
		"exit status: 0 ok, 1 failed, 2 usage, 3 cannot reach the "
		"database\n",
		DEFAULT_LOCK_TIMEOUT);
}

struct optdef {
	const char *name;
	unsigned bit;
	bool arg;
};

static const struct optdef optdefs[] = {
	{"sql", O_SQL, false},
	{"try", O_TRY, false},
	{"yes", O_YES, false},
	{"allow-destructive", O_ALLOW_DESTRUCTIVE, false},
	{"accept-changed", O_ACCEPT_CHANGED, false},
	{"autogenerate", O_AUTOGENERATE, false},
	{"offline", O_OFFLINE, false},
	{"applied", O_APPLIED, false},
	{"rolled-back", O_ROLLED_BACK, false},
	{"message", O_MESSAGE, true},
	{"backup", O_BACKUP, true},
	{"model", O_MODEL, true},
	{"lock-timeout", O_LOCK_TIMEOUT, true},
	{"legacy-timezone", O_LEGACY_TZ, true},
	{"head", O_HEAD, true},
	{"splice", O_SPLICE, false},
	{"layout", O_LAYOUT, true},
};

static bool is_relative(const char *s)
{
	if ((s[0] != '-' && s[0] != '+') || !s[1])
		return false;
	for (const char *p = s + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static int set_opt(struct ctx *c, const struct optdef *d, const char *val)
{
	c->o.given |= d->bit;
	switch (d->bit) {
	case O_MESSAGE:
		c->o.message = val;
		break;
	case O_BACKUP:
		if (!val[0]) {
			errmsg("--backup needs a file name");
			return EX_USAGE;
		}
		c->o.backup = val;
		break;
	case O_MODEL:
		c->o.model = val;
		break;
	case O_LEGACY_TZ:
		c->o.legacy_tz = val;
		break;
	case O_HEAD:
		c->o.head = val;
		break;
	case O_LAYOUT:
		if (strcmp(val, "plain") && strcmp(val, "partitioned")) {
			errmsg("--layout is plain or partitioned");
			return EX_USAGE;
		}
		c->o.partitioned = strcmp(val, "partitioned") == 0;
		break;
	case O_LOCK_TIMEOUT: {
		char *end;

		errno = 0;
		c->o.lock_timeout = strtol(val, &end, 10);
		if (errno || *end || end == val || c->o.lock_timeout < 0 ||
		    c->o.lock_timeout > 86400) {
			errmsg("--lock-timeout takes seconds from 0 to 86400");
			return EX_USAGE;
		}
		break;
	}
	default:
		break;
	}
	return EX_OK;
}

/* Options anywhere among the arguments; "-N"/"+N" are arguments. */
static int parse_args(struct ctx *c, int argc, char **argv, int *help)
{
	bool only_args = false;

	c->o.args = calloc((size_t)argc + 1, sizeof(char *));
	if (!c->o.args) {
		errmsg("out of memory");
		return EX_FAIL;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const struct optdef *d = NULL;
		const char *val = NULL;

		if (only_args || a[0] != '-' || !a[1] || is_relative(a)) {
			c->o.args[c->o.nargs++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = true;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			*help = 1;
			continue;
		}
		if (strcmp(a, "--json") == 0) {
			c->json = true;
			continue;
		}
		if (a[1] == 'm') {
			d = &optdefs[9];
			val = a[2] ? a + 2 : NULL;
		} else if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);

			for (size_t k = 0; k < ARRAY_LEN(optdefs); k++)
				if (strlen(optdefs[k].name) == n &&
				    strncmp(optdefs[k].name, a + 2, n) == 0)
					d = &optdefs[k];
			if (d && eq) {
				if (!d->arg) {
					errmsg("option --%s takes no value",
					       d->name);
					return EX_USAGE;
				}
				val = eq + 1;
			}
		}
		if (!d) {
			errmsg("unknown option '%s'", a);
			return EX_USAGE;
		}
		if (d->arg && !val) {
			if (i + 1 >= argc) {
				errmsg("option %s needs a value", a);
				return EX_USAGE;
			}
			val = argv[++i];
		}
		if (set_opt(c, d, val ? val : "") != EX_OK)
			return EX_USAGE;
	}
	return EX_OK;
}

static void ctx_free(struct ctx *c)
{
	hist_free(c);
	if (c->conn)
		PQfinish(c->conn);
	if (c->set_ok)
		migrate_set_free(&c->set);
	if (c->cfg_ok)
		config_free(&c->cfg);
	free(c->applied);
	free(c->nsp);
	free(c->qhist);
	free(c->model_path);
	free(c->o.args);
}

int dbcmd_main(int argc, char **argv, const char *config_path, bool json)
{
	struct ctx c;
	const struct command *cmd = NULL;
	int help = 0, rc;

	memset(&c, 0, sizeof(c));
	c.json = json;
	c.out = JSON_INIT(stdout);
	if (argc < 2 || strcmp(argv[1], "help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EX_USAGE : EX_OK;
	}
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].name, argv[1]) == 0)
			cmd = &commands[i];
	if (!cmd) {
		errmsg("unknown command '%s' (see 'convctl db help')", argv[1]);
		return EX_USAGE;
	}
	c.cmd = cmd->name;
	rc = parse_args(&c, argc - 2, argv + 2, &help);
	if (rc != EX_OK)
		goto out;
	if (help) {
		printf("usage: convctl db %s%s\n", cmd->name, cmd->args);
		rc = EX_OK;
		goto out;
	}
	if (c.o.given & ~cmd->opts) {
		for (size_t k = 0; k < ARRAY_LEN(optdefs); k++)
			if (c.o.given & ~cmd->opts & optdefs[k].bit)
				errmsg("%s does not take --%s", cmd->name,
				       optdefs[k].name);
		rc = EX_USAGE;
		goto out;
	}
	if (c.o.nargs < cmd->min_args || c.o.nargs > cmd->max_args) {
		errmsg("usage: convctl db %s%s", cmd->name, cmd->args);
		rc = EX_USAGE;
		goto out;
	}
	if ((c.o.given & O_SQL) && (c.o.given & O_TRY)) {
		errmsg("--sql and --try do not go together");
		rc = EX_USAGE;
		goto out;
	}
	rc = load_config(&c, config_path);
	if (rc == EX_OK)
		rc = cmd->fn(&c);
out:
	json_warn_replaced(&c.out, "convctl db");
	fflush(stdout);
	ctx_free(&c);
	return rc;
}
