/*
 * migrate_adopt.c - recognising legacy databases and planning their
 * adoption.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate_adopt.h"
#include "migrate_catalog.h"

#define T_THREADS "user_thread_table"
#define T_HISTORY "simple_conversation_history"
#define T_ALEMBIC "alembic_version"
#define SEQ_NAME "simple_conversation_history_id_seq"

enum {
	OID_INT8 = 20,
	OID_INT4 = 23,
	OID_TEXT = 25,
	OID_VARCHAR = 1043,
	OID_TIMESTAMP = 1114,
	OID_TIMESTAMPTZ = 1184,
};

static void CONVD_PRINTF(3, 4) seterr(char *err, size_t len, const char *fmt,
				       ...)
{
	va_list ap;

	if (!err || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static void CONVD_PRINTF(2, 3) unknown(struct madopt *a, const char *fmt, ...)
{
	va_list ap;

	a->shape = MA_UNKNOWN;
	va_start(ap, fmt);
	vsnprintf(a->problem, sizeof(a->problem), fmt, ap);
	va_end(ap);
}

static void CONVD_PRINTF(2, 3) found(struct madopt *a, const char *fmt, ...)
{
	size_t o = strlen(a->found);
	va_list ap;

	if (o >= sizeof(a->found) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(a->found + o, sizeof(a->found) - o, fmt, ap);
	va_end(ap);
}

void madopt_free(struct madopt *a)
{
	for (int i = 0; i < a->nsteps; i++) {
		free(a->steps[i].note);
		free(a->steps[i].sql);
	}
	free(a->steps);
	a->steps = NULL;
	a->nsteps = 0;
}

static int add_step(struct madopt *a, char *note, char *sql)
{
	struct madopt_step *ns;

	if (!note || !sql) {
		free(note);
		free(sql);
		return -1;
	}
	ns = realloc(a->steps, sizeof(*ns) * (size_t)(a->nsteps + 1));
	if (!ns) {
		free(note);
		free(sql);
		return -1;
	}
	a->steps = ns;
	a->steps[a->nsteps].note = note;
	a->steps[a->nsteps].sql = sql;
	a->nsteps++;
	return 0;
}

static char *CONVD_PRINTF(1, 2) xfmt(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static PGresult *query(PGconn *conn, const char *sql, int n,
		       const char *const *vals, char *err, size_t errlen)
{
	PGresult *r = PQexecParams(conn, sql, n, NULL, vals, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		char msg[1024];

		mcat_result_error(r, conn, msg, sizeof(msg));
		seterr(err, errlen, "%s", msg);
		PQclear(r);
		return NULL;
	}
	return r;
}

/* One column of a legacy table. */
struct lcol {
	char name[64];
	uint32_t typid;
	int32_t typmod;
	char type[64];
	bool notnull;
	char def[128];
	bool has_def;
	bool special;		/* identity or generated */
};

struct ltable {
	bool exists;
	char relkind;
	struct lcol cols[16];
	int ncols;
	bool too_many;
	char pk_name[64], pk_def[256];
	bool has_pk;
	char other_con[256];	/* first non-PK constraint, if any */
};

static const struct lcol *lcol_find(const struct ltable *t, const char *name)
{
	for (int i = 0; i < t->ncols; i++)
		if (strcmp(t->cols[i].name, name) == 0)
			return &t->cols[i];
	return NULL;
}

/* varchar(n) with n <= max. */
static bool is_varchar_upto(const struct lcol *c, int max)
{
	return c->typid == OID_VARCHAR && c->typmod >= 4 &&
	       c->typmod - 4 <= max;
}

static int load_tables(PGconn *conn, const char *nsp, struct ltable *th,
		       struct ltable *hi, struct ltable *al, char *err,
		       size_t errlen)
{
	const char *p[1] = {nsp};
	PGresult *r;

	r = query(conn,
		  "SELECT c.relname, c.relkind, a.attname, a.atttypid,"
		  " a.atttypmod, format_type(a.atttypid, a.atttypmod),"
		  " a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid),"
		  " a.attidentity <> '' OR a.attgenerated <> ''"
		  " FROM pg_class c JOIN pg_namespace n"
		  "  ON n.oid = c.relnamespace"
		  " LEFT JOIN pg_attribute a ON a.attrelid = c.oid"
		  "  AND a.attnum > 0 AND NOT a.attisdropped"
		  " LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid"
		  "  AND ad.adnum = a.attnum"
		  " WHERE n.nspname = $1 AND c.relname IN"
		  "  ('" T_THREADS "', '" T_HISTORY "', '" T_ALEMBIC "')"
		  " ORDER BY c.relname, a.attnum",
		  1, p, err, errlen);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *rel = PQgetvalue(r, i, 0);
		struct ltable *t = strcmp(rel, T_THREADS) == 0	 ? th
				   : strcmp(rel, T_HISTORY) == 0 ? hi
								 : al;
		struct lcol *c;

		t->exists = true;
		t->relkind = PQgetvalue(r, i, 1)[0];
		if (PQgetisnull(r, i, 2))
			continue;
		if (t->ncols >= (int)ARRAY_LEN(t->cols)) {
			t->too_many = true;
			continue;
		}
		c = &t->cols[t->ncols++];
		snprintf(c->name, sizeof(c->name), "%s", PQgetvalue(r, i, 2));
		c->typid = (uint32_t)strtoul(PQgetvalue(r, i, 3), NULL, 10);
		c->typmod = (int32_t)strtol(PQgetvalue(r, i, 4), NULL, 10);
		snprintf(c->type, sizeof(c->type), "%s", PQgetvalue(r, i, 5));
		c->notnull = PQgetvalue(r, i, 6)[0] == 't';
		c->has_def = !PQgetisnull(r, i, 7);
		snprintf(c->def, sizeof(c->def), "%s", PQgetvalue(r, i, 7));
		c->special = PQgetvalue(r, i, 8)[0] == 't';
	}
	PQclear(r);

	r = query(conn,
		  "SELECT c.relname, k.conname, k.contype,"
		  " pg_get_constraintdef(k.oid)"
		  " FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
		  " JOIN pg_namespace n ON n.oid = c.relnamespace"
		  " WHERE n.nspname = $1 AND c.relname IN"
		  "  ('" T_THREADS "', '" T_HISTORY "')"
		  " ORDER BY 1, 2",
		  1, p, err, errlen);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		struct ltable *t =
			strcmp(PQgetvalue(r, i, 0), T_THREADS) == 0 ? th : hi;

		if (PQgetvalue(r, i, 2)[0] == 'p') {
			t->has_pk = true;
			snprintf(t->pk_name, sizeof(t->pk_name), "%s",
				 PQgetvalue(r, i, 1));
			snprintf(t->pk_def, sizeof(t->pk_def), "%s",
				 PQgetvalue(r, i, 3));
		} else if (!t->other_con[0]) {
			snprintf(t->other_con, sizeof(t->other_con), "%s %s",
				 PQgetvalue(r, i, 1), PQgetvalue(r, i, 3));
		}
	}
	PQclear(r);
	return 0;
}

/* Checks a table's columns: required and optional names and types. */
struct expect {
	const char *name;
	bool optional;
	int kind;	/* 0 varchar(<= max), 1 text or varchar, 2 ts, 3 int */
	int max;
};

static bool check_cols(struct madopt *a, const char *table,
		       const struct ltable *t, const struct expect *ex,
		       size_t nex)
{
	if (t->relkind != 'r') {
		unknown(a, "%s is not a plain table", table);
		return false;
	}
	if (t->too_many) {
		unknown(a, "%s has more columns than the legacy tables had",
			table);
		return false;
	}
	for (int i = 0; i < t->ncols; i++) {
		const struct lcol *c = &t->cols[i];
		const struct expect *e = NULL;
		bool ok;

		for (size_t k = 0; k < nex; k++)
			if (strcmp(ex[k].name, c->name) == 0)
				e = &ex[k];
		if (!e) {
			unknown(a, "%s has a column %s that the legacy tables "
				   "did not have",
				table, c->name);
			return false;
		}
		if (c->special) {
			unknown(a, "%s.%s is an identity or generated column",
				table, c->name);
			return false;
		}
		switch (e->kind) {
		case 0:
			ok = is_varchar_upto(c, e->max);
			break;
		case 1:
			ok = c->typid == OID_TEXT || c->typid == OID_VARCHAR;
			break;
		case 2:
			ok = c->typid == OID_TIMESTAMP ||
			     c->typid == OID_TIMESTAMPTZ;
			break;
		default:
			ok = c->typid == OID_INT4 || c->typid == OID_INT8;
			break;
		}
		if (!ok) {
			char want[64];

			if (e->kind == 0)
				snprintf(want, sizeof(want),
					 "character varying(n <= %d)", e->max);
			else
				snprintf(want, sizeof(want), "%s",
					 e->kind == 1	? "text"
					 : e->kind == 2 ? "timestamp"
							: "integer or bigint");
			unknown(a, "%s.%s has type %s, expected %s", table,
				c->name, c->type, want);
			return false;
		}
	}
	for (size_t k = 0; k < nex; k++) {
		if (!ex[k].optional && !lcol_find(t, ex[k].name)) {
			unknown(a, "%s has no column %s", table, ex[k].name);
			return false;
		}
	}
	if (t->other_con[0]) {
		unknown(a, "%s has a constraint the legacy tables did not "
			   "have: %s",
			table, t->other_con);
		return false;
	}
	return true;
}

/* ALTER TABLE actions for a varchar/text column that must become
 * `type` NOT NULL. */
static int want_col(char **acts, const struct lcol *c, const char *type,
		    uint32_t typid, int32_t typmod)
{
	char *s = *acts, *n;

	if (c->typid != typid || c->typmod != typmod) {
		n = xfmt("%s%s    ALTER COLUMN %s TYPE %s", s ? s : "",
			 s ? ",\n" : "", c->name, type);
		free(s);
		if (!n)
			return -1;
		s = n;
	}
	if (!c->notnull) {
		n = xfmt("%s%s    ALTER COLUMN %s SET NOT NULL", s ? s : "",
			 s ? ",\n" : "", c->name);
		free(s);
		if (!n)
			return -1;
		s = n;
	}
	*acts = s;
	return 0;
}

static int append(char **acts, const char *text)
{
	char *n = xfmt("%s%s    %s", *acts ? *acts : "", *acts ? ",\n" : "",
		       text);

	free(*acts);
	*acts = n;
	return n ? 0 : -1;
}

/* The table's primary key must be `name` with definition `def`: any
 * other is dropped, then it is added.  -1 when out of memory. */
static int want_pk(PGconn *conn, char **acts, const struct ltable *t,
		   const char *name, const char *def)
{
	char *add;
	int rc;

	if (t->has_pk && strcmp(t->pk_name, name) == 0 &&
	    strcmp(t->pk_def, def) == 0)
		return 0;
	if (t->has_pk) {
		char *q = PQescapeIdentifier(conn, t->pk_name,
					     strlen(t->pk_name));
		char *s = q ? xfmt("DROP CONSTRAINT %s", q) : NULL;

		rc = s ? append(acts, s) : -1;
		PQfreemem(q);
		free(s);
		if (rc < 0)
			return -1;
	}
	add = xfmt("ADD CONSTRAINT %s %s", name, def);
	rc = add ? append(acts, add) : -1;
	free(add);
	return rc;
}

/* The platform column and created_at, the same in both tables. */
static int common_cols(char **acts, const struct ltable *t)
{
	const struct lcol *pl = lcol_find(t, "platform");
	const struct lcol *ca = lcol_find(t, "created_at");

	if (!pl) {
		if (append(acts, "ADD COLUMN platform varchar(50) NOT NULL "
				 "DEFAULT 'line'") < 0)
			return -1;
	} else {
		if (append(acts, "ALTER COLUMN platform SET DEFAULT 'line'") < 0)
			return -1;
		if (want_col(acts, pl, "varchar(50)", OID_VARCHAR, 50 + 4) < 0)
			return -1;
	}
	if (ca->typid == OID_TIMESTAMP) {
		if (ca->has_def &&
		    append(acts, "ALTER COLUMN created_at DROP DEFAULT") < 0)
			return -1;
		if (append(acts, "ALTER COLUMN created_at TYPE timestamptz "
				 "USING created_at AT TIME ZONE 'UTC'") < 0)
			return -1;
	}
	if (append(acts, "ALTER COLUMN created_at SET DEFAULT now()") < 0)
		return -1;
	if (!ca->notnull &&
	    append(acts, "ALTER COLUMN created_at SET NOT NULL") < 0)
		return -1;
	return 0;
}

static int plan(PGconn *conn, const char *nsp, struct madopt *a,
		const struct ltable *th, const struct ltable *hi, char *err,
		size_t errlen)
{
	const char *p[1] = {nsp};
	char *acts = NULL;
	PGresult *r;

	/* Indexes that back no constraint go: the next revision makes the
	 * ones convd's queries need. */
	r = query(conn,
		  "SELECT ci.relname, pg_get_indexdef(i.indexrelid)"
		  " FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid"
		  " JOIN pg_class c ON c.oid = i.indrelid"
		  " JOIN pg_namespace n ON n.oid = c.relnamespace"
		  " WHERE n.nspname = $1 AND c.relname IN"
		  "  ('" T_THREADS "', '" T_HISTORY "')"
		  " AND NOT EXISTS (SELECT 1 FROM pg_constraint k"
		  "  WHERE k.conindid = i.indexrelid AND k.conrelid = c.oid)"
		  " ORDER BY 1",
		  1, p, err, errlen);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		char *q = PQescapeIdentifier(conn, PQgetvalue(r, i, 0),
					     strlen(PQgetvalue(r, i, 0)));

		if (!q) {
			PQclear(r);
			goto nomem;
		}
		found(a, "; legacy index %s", PQgetvalue(r, i, 1));
		if (add_step(a,
			     xfmt("legacy index %s (the next revision creates "
				  "the indexes convd needs)",
				  PQgetvalue(r, i, 0)),
			     xfmt("DROP INDEX %s", q)) < 0) {
			PQfreemem(q);
			PQclear(r);
			goto nomem;
		}
		PQfreemem(q);
	}
	PQclear(r);

	/* user_thread_table */
	if (want_col(&acts, lcol_find(th, "user_id"), "varchar(255)",
		     OID_VARCHAR, 255 + 4) < 0 ||
	    common_cols(&acts, th) < 0 ||
	    want_col(&acts, lcol_find(th, "thread_id"), "varchar(255)",
		     OID_VARCHAR, 255 + 4) < 0)
		goto nomem;
	if (want_pk(conn, &acts, th, "user_thread_table_pkey",
		    "PRIMARY KEY (user_id, platform)") < 0)
		goto nomem;
	if (add_step(a,
		     xfmt("%s: platform, NOT NULL, timestamptz (stored values "
			  "are UTC), key (user_id, platform)",
			  T_THREADS),
		     xfmt("ALTER TABLE " T_THREADS "\n%s", acts)) < 0) {
		acts = NULL;
		goto nomem;
	}
	free(acts);
	acts = NULL;

	/* simple_conversation_history */
	{
		const struct lcol *id = lcol_find(hi, "id");
		const struct lcol *ct = lcol_find(hi, "content");

		if (id->typid != OID_INT8 &&
		    append(&acts, "ALTER COLUMN id TYPE bigint") < 0)
			goto nomem;
		if (!id->notnull &&
		    append(&acts, "ALTER COLUMN id SET NOT NULL") < 0)
			goto nomem;
		if (want_col(&acts, lcol_find(hi, "user_id"), "varchar(255)",
			     OID_VARCHAR, 255 + 4) < 0 ||
		    common_cols(&acts, hi) < 0 ||
		    want_col(&acts, lcol_find(hi, "model_provider"),
			     "varchar(50)", OID_VARCHAR, 50 + 4) < 0 ||
		    want_col(&acts, lcol_find(hi, "role"), "varchar(20)",
			     OID_VARCHAR, 20 + 4) < 0 ||
		    want_col(&acts, ct, "text", OID_TEXT, -1) < 0)
			goto nomem;
	}
	if (want_pk(conn, &acts, hi, "simple_conversation_history_pkey",
		    "PRIMARY KEY (id)") < 0)
		goto nomem;
	if (add_step(a,
		     xfmt("%s: bigint ids (kept), platform, NOT NULL, "
			  "timestamptz (stored values are UTC)",
			  T_HISTORY),
		     xfmt("ALTER TABLE " T_HISTORY "\n%s", acts)) < 0) {
		acts = NULL;
		goto nomem;
	}
	free(acts);
	acts = NULL;

	/* The id sequence: convd's name, bigint, and past max(id). */
	{
		char qn[512];
		char *qnsp = PQescapeIdentifier(conn, nsp, strlen(nsp));

		if (!qnsp)
			goto nomem;
		snprintf(qn, sizeof(qn), "%s." T_HISTORY, qnsp);
		PQfreemem(qnsp);
		p[0] = qn;
		r = query(conn,
			  "SELECT c.relname, format_type(s.seqtypid, NULL),"
			  " quote_ident(c.relname)"
			  " FROM pg_sequence s JOIN pg_class c"
			  "  ON c.oid = s.seqrelid"
			  " WHERE s.seqrelid = pg_get_serial_sequence($1, 'id')"
			  "  ::regclass",
			  1, p, err, errlen);
		if (!r)
			return -1;
		if (PQntuples(r) != 1) {
			PQclear(r);
			unknown(a, T_HISTORY ".id takes its values from no "
				   "sequence (it was a serial column)");
			return 0;
		}
		if (strcmp(PQgetvalue(r, 0, 0), SEQ_NAME) != 0 &&
		    add_step(a,
			     xfmt("the id sequence gets convd's name"),
			     xfmt("ALTER SEQUENCE %s RENAME TO " SEQ_NAME,
				  PQgetvalue(r, 0, 2))) < 0) {
			PQclear(r);
			goto nomem;
		}
		if (strcmp(PQgetvalue(r, 0, 1), "bigint") != 0 &&
		    add_step(a, xfmt("the id sequence becomes bigint"),
			     xfmt("ALTER SEQUENCE " SEQ_NAME " AS bigint")) <
			    0) {
			PQclear(r);
			goto nomem;
		}
		PQclear(r);
		if (add_step(a,
			     xfmt("new ids continue after the largest id "
				  "(only moves the sequence forward)"),
			     xfmt("SELECT setval('" SEQ_NAME "', m.id)"
				  " FROM (SELECT max(id) AS id FROM " T_HISTORY
				  ") m, " SEQ_NAME " s"
				  " WHERE m.id >= s.last_value + "
				  "CASE WHEN s.is_called THEN 1 ELSE 0 END")) <
		    0)
			goto nomem;
	}
	if (a->alembic &&
	    add_step(a,
		     xfmt("Alembic's version table: the history table "
			  "records the schema from now on"),
		     xfmt("DROP TABLE " T_ALEMBIC)) < 0)
		goto nomem;
	return 0;
nomem:
	free(acts);
	seterr(err, errlen, "out of memory");
	return -1;
}

static int count_rows(PGconn *conn, const char *nsp, const char *table,
		      int64_t *out, char *err, size_t errlen)
{
	char *qn = PQescapeIdentifier(conn, nsp, strlen(nsp));
	char *sql;
	PGresult *r;

	if (!qn) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	sql = xfmt("SELECT count(*) FROM %s.%s", qn, table);
	PQfreemem(qn);
	if (!sql) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	r = query(conn, sql, 0, NULL, err, errlen);
	free(sql);
	if (!r)
		return -1;
	*out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

int madopt_inspect(PGconn *conn, const char *nsp, const char *history_table,
		   struct madopt *a, char *err, size_t errlen)
{
	static const struct expect ex_threads[] = {
		{"user_id", false, 0, 255},
		{"platform", true, 0, 50},
		{"thread_id", false, 0, 255},
		{"created_at", false, 2, 0},
	};
	static const struct expect ex_history[] = {
		{"id", false, 3, 0},
		{"user_id", false, 0, 255},
		{"platform", true, 0, 50},
		{"model_provider", false, 0, 50},
		{"role", false, 0, 20},
		{"content", false, 1, 0},
		{"created_at", false, 2, 0},
	};
	struct ltable th, hi, al;
	const char *p[2] = {nsp, history_table};
	PGresult *r;
	bool pth, phi;

	memset(a, 0, sizeof(*a));
	memset(&th, 0, sizeof(th));
	memset(&hi, 0, sizeof(hi));
	memset(&al, 0, sizeof(al));
	r = query(conn,
		  "SELECT 1 FROM pg_class c JOIN pg_namespace n"
		  " ON n.oid = c.relnamespace"
		  " WHERE n.nspname = $1 AND c.relname = $2",
		  2, p, err, errlen);
	if (!r)
		return -1;
	if (PQntuples(r) > 0) {
		PQclear(r);
		a->shape = MA_MANAGED;
		snprintf(a->found, sizeof(a->found),
			 "a database managed by convctl db (table %s)",
			 history_table);
		return 0;
	}
	PQclear(r);
	if (load_tables(conn, nsp, &th, &hi, &al, err, errlen) < 0)
		return -1;
	if (!th.exists && !hi.exists) {
		if (al.exists) {
			unknown(a, "an alembic_version table but none of the "
				   "conversation tables");
			return 0;
		}
		a->shape = MA_EMPTY;
		snprintf(a->found, sizeof(a->found),
			 "no convd tables in schema %s: a new database", nsp);
		return 0;
	}
	if (!th.exists || !hi.exists) {
		unknown(a, "only %s exists (a legacy database has both "
			   "tables)",
			th.exists ? T_THREADS : T_HISTORY);
		return 0;
	}
	if (!check_cols(a, T_THREADS, &th, ex_threads, ARRAY_LEN(ex_threads)) ||
	    !check_cols(a, T_HISTORY, &hi, ex_history, ARRAY_LEN(ex_history)))
		return 0;
	pth = lcol_find(&th, "platform") != NULL;
	phi = lcol_find(&hi, "platform") != NULL;
	if (pth != phi) {
		unknown(a, "only %s has a platform column",
			pth ? T_THREADS : T_HISTORY);
		return 0;
	}
	a->had_platform = pth;
	a->threads_naive = lcol_find(&th, "created_at")->typid == OID_TIMESTAMP;
	a->history_naive = lcol_find(&hi, "created_at")->typid == OID_TIMESTAMP;
	if (al.exists) {
		char *qn = PQescapeIdentifier(conn, nsp, strlen(nsp));
		char *sql;

		if (al.ncols != 1 || strcmp(al.cols[0].name, "version_num") != 0) {
			PQfreemem(qn);
			unknown(a, "alembic_version does not look like "
				   "Alembic's");
			return 0;
		}
		sql = qn ? xfmt("SELECT version_num FROM %s." T_ALEMBIC, qn)
			 : NULL;
		PQfreemem(qn);
		if (!sql) {
			seterr(err, errlen, "out of memory");
			return -1;
		}
		r = query(conn, sql, 0, NULL, err, errlen);
		free(sql);
		if (!r)
			return -1;
		if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0) ||
		    strcmp(PQgetvalue(r, 0, 0), "001") != 0) {
			unknown(a, "alembic_version holds %s%s%s, convd knows "
				   "only the seed's revision 001",
				PQntuples(r) == 1 ? "'" : "",
				PQntuples(r) == 1 ? PQgetvalue(r, 0, 0)
				: PQntuples(r) == 0 ? "no row"
						    : "several rows",
				PQntuples(r) == 1 ? "'" : "");
			PQclear(r);
			return 0;
		}
		PQclear(r);
		if (!pth) {
			unknown(a, "alembic_version says 001 but the tables "
				   "have no platform column");
			return 0;
		}
		a->alembic = true;
	}
	if (count_rows(conn, nsp, T_THREADS, &a->threads, err, errlen) < 0 ||
	    count_rows(conn, nsp, T_HISTORY, &a->messages, err, errlen) < 0)
		return -1;
	if (pth) {
		a->shape = MA_LEGACY_ALEMBIC;
		found(a,
		      "the seed's tables with platform columns%s: %s "
		      "(%" PRId64 " rows, key %s) and %s (%" PRId64 " rows)",
		      a->alembic ? ", altered by Alembic revision 001 "
				   "(alembic_version = 001)"
				 : " (no alembic_version: altered by hand)",
		      T_THREADS, a->threads, th.has_pk ? th.pk_def : "none",
		      T_HISTORY, a->messages);
	} else {
		a->shape = MA_LEGACY_README;
		found(a,
		      "the seed's tables as made from its README SQL (no "
		      "platform column): %s (%" PRId64 " rows, key %s) and "
		      "%s (%" PRId64 " rows)",
		      T_THREADS, a->threads, th.has_pk ? th.pk_def : "none",
		      T_HISTORY, a->messages);
	}
	if (a->threads_naive || a->history_naive)
		found(a, "; timestamps without time zone (read as UTC)");
	if (plan(conn, nsp, a, &th, &hi, err, errlen) < 0) {
		madopt_free(a);
		return -1;
	}
	if (a->shape == MA_UNKNOWN)
		madopt_free(a);
	return 0;
}

int madopt_fingerprint(PGconn *conn, const char *nsp, const struct madopt *a,
		       bool after, char *out, size_t outlen, char *err,
		       size_t errlen)
{
	char *qn = PQescapeIdentifier(conn, nsp, strlen(nsp));
	const char *plat = after || a->had_platform ? "platform" : "'line'";
	const char *ts_th = !after && a->threads_naive
				    ? "created_at AT TIME ZONE 'UTC'"
				    : "created_at";
	const char *ts_hi = !after && a->history_naive
				    ? "created_at AT TIME ZONE 'UTC'"
				    : "created_at";
	char *sql;
	PGresult *r;

	if (!qn) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	sql = xfmt("SELECT (SELECT count(*) || '/' || coalesce(sum("
		   "hashtextextended(concat_ws(E'\\x1f', user_id, %s,"
		   " thread_id, extract(epoch FROM %s)::text), 0)::numeric), 0)"
		   " FROM %s." T_THREADS "),"
		   " (SELECT count(*) || '/' || coalesce(max(id), 0) || '/' ||"
		   " coalesce(sum(hashtextextended(concat_ws(E'\\x1f', id::text,"
		   " user_id, %s, model_provider, role, content,"
		   " extract(epoch FROM %s)::text), 0)::numeric), 0)"
		   " FROM %s." T_HISTORY ")",
		   plat, ts_th, qn, plat, ts_hi, qn);
	PQfreemem(qn);
	if (!sql) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	r = query(conn, sql, 0, NULL, err, errlen);
	free(sql);
	if (!r)
		return -1;
	snprintf(out, outlen, T_THREADS " %s, " T_HISTORY " %s",
		 PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
	PQclear(r);
	return 0;
}
