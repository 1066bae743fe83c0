/*
 * dbhist.c - the history table (convd_schema_history): creating and
 * reading it, recording revisions, and what it says of the revisions
 * (current, pending, problems).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbconn.h"
#include "dbhist.h"
#include "dbsql.h"
#include "migrate_adopt.h"
#include "schema.h"

int dbhist_create(struct dbctx *c, char *err, size_t errlen)
{
	char *ddl = dbsql_history_ddl(c->qhist);
	int rc;

	if (!ddl) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = dbconn_ok(c, ddl, err, errlen);
	free(ddl);
	if (rc == 0)
		c->has_hist = true;
	return rc;
}

void dbhist_free(struct dbctx *c)
{
	for (int i = 0; i < c->nhist; i++) {
		struct dbctx_hist *h = &c->hist[i];

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
int dbhist_verify_schema(struct dbctx *c,
			 void (*cb)(void *arg, const char *msg), void *arg,
			 char *err, size_t errlen)
{
	PGresult *r;
	int n;

	if (!c->has_hist)
		return 0;
	r = dbconn_exec(c, SCHEMA_VERIFY_QUERY, err, errlen);
	if (!r)
		return -1;
	n = PQntuples(r);
	for (int i = 0; i < n && cb; i++)
		cb(arg, PQgetvalue(r, i, 0));
	PQclear(r);
	return n;
}

/* Reads the history table (if it exists) and marks what is applied. */
int dbhist_load(struct dbctx *c)
{
	char err[DBCTX_ERRLEN], *sql;
	const char *p[1] = {c->qhist};
	PGresult *r;
	bool oom = false;

	dbhist_free(c);
	r = dbconn_params(c, "SELECT to_regclass($1) IS NOT NULL", 1, p, err,
			  sizeof(err));
	if (!r) {
		dbctx_error("%s", err);
		return DBCTX_EX_FAIL;
	}
	c->has_hist = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!c->has_hist)
		return DBCTX_EX_OK;
	if (asprintf(&sql,
		     "SELECT revision, array_to_string(parents, ' '), message,"
		     " checksum, kind, to_char(applied_at AT TIME ZONE 'UTC',"
		     " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), applied_by,"
		     " duration_ms, dirty, note FROM %s"
		     " ORDER BY applied_at, revision",
		     c->qhist) < 0) {
		dbctx_error("out of memory");
		return DBCTX_EX_FAIL;
	}
	r = dbconn_exec(c, sql, err, sizeof(err));
	free(sql);
	if (!r) {
		dbctx_error("cannot read %s: %s", c->qhist, err);
		return DBCTX_EX_FAIL;
	}
	c->hist = calloc((size_t)PQntuples(r) + 1, sizeof(*c->hist));
	if (!c->hist) {
		PQclear(r);
		dbctx_error("out of memory");
		return DBCTX_EX_FAIL;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		struct dbctx_hist *h = &c->hist[c->nhist++];

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
		dbctx_error("out of memory");
		return DBCTX_EX_FAIL;
	}
	return DBCTX_EX_OK;
}

const struct dbctx_hist *dbhist_of(const struct dbctx *c, int idx)
{
	for (int i = 0; i < c->nhist; i++)
		if (c->hist[i].idx == idx)
			return &c->hist[i];
	return NULL;
}

/* Counts the problems and calls cb (if not NULL) with each as a
 * sentence. */
void dbhist_problems(const struct dbctx *c, struct dbhist_problems *pr,
		     void (*cb)(void *arg, const char *msg),
		     void *arg)
{
	char msg[DBCTX_ERRLEN];

	memset(pr, 0, sizeof(*pr));
	for (int i = 0; i < c->nhist; i++) {
		const struct dbctx_hist *h = &c->hist[i];

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

void dbhist_problems_print(const struct dbctx *c, struct dbhist_problems *pr,
			   bool print)
{
	dbhist_problems(c, pr, print ? dbctx_error_cb : NULL, NULL);
}

int dbhist_record(struct dbctx *c, const struct migrate_rev *rev,
		  const char *kind, int64_t ms, bool dirty,
		  const char *note, char *err, size_t errlen)
{
	char *parents = dbsql_parents_array(rev), *sql, msbuf[32];
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
	r = dbconn_params(c, sql, 9, p, err, errlen);
	free(sql);
	free(parents);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

/* UPDATE/DELETE of one history row: head, the table and tail make the
 * statement; $1 is the revision, $2 an optional text. */
int dbhist_change(struct dbctx *c, const char *head, const char *tail,
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
	r = dbconn_params(c, sql, arg ? 2 : 1, p, err, errlen);
	free(sql);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

int dbhist_prepare(struct dbctx *c, bool db, bool lock)
{
	int rc = dbctx_load_set(c);

	if (rc != DBCTX_EX_OK || !db)
		return rc;
	rc = dbconn_open(c);
	if (rc != DBCTX_EX_OK)
		return rc;
	if (lock) {
		rc = dbconn_lock(c);
		if (rc != DBCTX_EX_OK)
			return rc;
	}
	return dbhist_load(c);
}

/*
 * Before changing anything: dirty revisions and applied revisions whose
 * file is missing stop everything; changed files stop too unless
 * --accept-changed, which records the new checksums.
 */
int dbhist_gate(struct dbctx *c, bool record)
{
	struct dbhist_problems pr;
	char err[DBCTX_ERRLEN];

	dbhist_problems_print(c, &pr, true);
	if (pr.dirty || pr.missing) {
		dbctx_error("nothing was changed");
		return DBCTX_EX_FAIL;
	}
	if (!pr.changed)
		return DBCTX_EX_OK;
	if (!(c->o.given & DBCTX_O_ACCEPT_CHANGED)) {
		dbctx_error("applied revisions must not change: restore the "
			    "file%s, or run again with --accept-changed to "
			    "record the new checksum%s; nothing was changed",
			    pr.changed == 1 ? "" : "s",
			    pr.changed == 1 ? "" : "s");
		return DBCTX_EX_FAIL;
	}
	for (int i = 0; i < c->nhist; i++) {
		struct dbctx_hist *h = &c->hist[i];
		char note[1024];

		if (h->idx < 0 ||
		    strcmp(h->checksum, c->set.revs[h->idx].checksum) == 0)
			continue;
		if (!record) {
			dbctx_warn("revision %s: the changed file would be "
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
				dbctx_error("out of memory");
				return DBCTX_EX_FAIL;
			}
			r = dbconn_params(c, sql, 3, p, err, sizeof(err));
			free(sql);
			if (!r) {
				dbctx_error("%s", err);
				return DBCTX_EX_FAIL;
			}
			PQclear(r);
		}
		printf("accepted the changed file of revision %s\n",
		       h->revision);
		free(h->checksum);
		h->checksum = strdup(c->set.revs[h->idx].checksum);
		if (!h->checksum) {
			dbctx_error("out of memory");
			return DBCTX_EX_FAIL;
		}
	}
	return DBCTX_EX_OK;
}

/* Whether revision x is applied and none of its children is: one of the
 * database's current revisions. */
bool dbhist_is_current(const struct dbctx *c, int x)
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
void dbhist_current_text(const struct dbctx *c, char *buf, size_t len)
{
	size_t o = 0;
	bool any = false;

	buf[0] = '\0';
	for (int i = 0; i < c->set.n && o < len; i++) {
		int x = c->set.order[i];
		const struct migrate_rev *r = &c->set.revs[x];

		if (!dbhist_is_current(c, x))
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
int dbhist_require_managed(struct dbctx *c)
{
	struct migrate_adopt a;
	char err[DBCTX_ERRLEN];

	if (c->has_hist)
		return DBCTX_EX_OK;
	if (migrate_adopt_inspect(c->conn, c->nsp, SCHEMA_HISTORY_TABLE, &a,
				  err,
				  sizeof(err)) < 0) {
		dbctx_error("%s", err);
		return DBCTX_EX_FAIL;
	}
	migrate_adopt_free(&a);
	if (a.shape == MIGRATE_ADOPT_EMPTY || a.shape == MIGRATE_ADOPT_MANAGED)
		return DBCTX_EX_OK;
	if (a.shape == MIGRATE_ADOPT_UNKNOWN)
		dbctx_error("this database has conversation tables convctl db "
			    "does not recognise (%s); nothing was changed",
			    a.problem);
	else
		dbctx_error("this database was made before convctl db (%s): "
			    "run 'convctl db setup' to adopt it; nothing was "
			    "changed", a.found);
	return DBCTX_EX_FAIL;
}

const char *dbhist_state(const struct dbctx *c, int idx)
{
	const struct dbctx_hist *h = dbhist_of(c, idx);

	if (!h)
		return "pending";
	if (h->dirty)
		return "dirty";
	if (strcmp(h->checksum, c->set.revs[idx].checksum) != 0)
		return "changed";
	return h->kind; /* applied, stamped or adopted */
}

int dbhist_pending(const struct dbctx *c)
{
	int n = 0;

	for (int i = 0; i < c->set.n; i++)
		if (!c->applied[i])
			n++;
	return n;
}
