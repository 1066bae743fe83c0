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

#include "errbuf.h"
#include "consts.h"
#include "migrate_adopt.h"
#include "migrate_catalog.h"

#define T_THREADS CONVD_T_THREADS
#define T_HISTORY CONVD_T_HISTORY
#define T_ALEMBIC "alembic_version"
#define SEQ_NAME CONVD_T_HISTORY "_id_seq"

enum {
	OID_INT8 = 20,
	OID_INT4 = 23,
	OID_TEXT = 25,
	OID_VARCHAR = 1043,
	OID_TIMESTAMP = 1114,
	OID_TIMESTAMPTZ = 1184,
};

static void CONVD_PRINTF(2, 3) unknown(struct migrate_adopt *a, const char *fmt,
				       ...)
{
	va_list ap;

	a->shape = MIGRATE_ADOPT_UNKNOWN;
	va_start(ap, fmt);
	vsnprintf(a->problem, sizeof(a->problem), fmt, ap);
	va_end(ap);
}

/* Appends to a fixed buffer (truncated when full). */
static void CONVD_PRINTF(3, 0) vcat(char *buf, size_t size, const char *fmt,
				    va_list ap)
{
	size_t o = strlen(buf);

	if (o < size - 1)
		vsnprintf(buf + o, size - o, fmt, ap);
}

static void CONVD_PRINTF(3, 4) cat(char *buf, size_t size, const char *fmt,
				   ...)
{
	va_list ap;

	va_start(ap, fmt);
	vcat(buf, size, fmt, ap);
	va_end(ap);
}

#define found(a, ...) cat((a)->found, sizeof((a)->found), __VA_ARGS__)
#define evidence(a, ...) \
	cat((a)->tz_evidence, sizeof((a)->tz_evidence), __VA_ARGS__)

/* One more of the user's objects that adoption keeps. */
static void CONVD_PRINTF(2, 3) kept(struct migrate_adopt *a, const char *fmt,
				    ...)
{
	va_list ap;

	if (a->kept[0])
		cat(a->kept, sizeof(a->kept), "; ");
	va_start(ap, fmt);
	vcat(a->kept, sizeof(a->kept), fmt, ap);
	va_end(ap);
}

void migrate_adopt_free(struct migrate_adopt *a)
{
	for (int i = 0; i < a->nsteps; i++) {
		free(a->steps[i].note);
		free(a->steps[i].sql);
	}
	free(a->steps);
	a->steps = NULL;
	a->nsteps = 0;
}

static int add_step(struct migrate_adopt *a, char *note, char *sql)
{
	struct migrate_adopt_step *ns;

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

		migrate_catalog_result_error(r, conn, msg, sizeof(msg));
		errbuf_set(err, errlen, "%s", msg);
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
	struct lcol cols[64];
	int ncols;
	bool too_many;
	char pk_name[64], pk_def[256];
	bool has_pk;
	char other_con[1024];	/* the other constraints (kept), listed */
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
		} else {
			cat(t->other_con, sizeof(t->other_con), "%sconstraint "
			    "%s %s", t->other_con[0] ? "; " : "",
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

static bool check_cols(struct migrate_adopt *a, const char *table,
		       const struct ltable *t, const struct expect *ex,
		       size_t nex)
{
	if (t->relkind != 'r') {
		unknown(a, "%s is not a plain table", table);
		return false;
	}
	if (t->too_many) {
		unknown(a, "%s has more than %zu columns", table,
			ARRAY_LEN(t->cols));
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
			/* the user's own column: kept, if convd's inserts,
			 * which do not name it, can leave it to its default */
			if (c->notnull && !c->has_def && !c->special) {
				unknown(a, "%s.%s (the user's column) is NOT "
					   "NULL without a default: convd's "
					   "inserts could not fill it (give it "
					   "a default or allow NULL)",
					table, c->name);
				return false;
			}
			kept(a, "column %s.%s %s", table, c->name, c->type);
			continue;
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
	if (t->other_con[0])
		kept(a, "%s: %s", table, t->other_con);
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

/* The platform column and created_at, the same in both tables; zlit:
 * the zone the legacy times are read in, as an SQL literal. */
static int common_cols(char **acts, const struct ltable *t, const char *zlit)
{
	const struct lcol *pl = lcol_find(t, "platform");
	const struct lcol *ca = lcol_find(t, "created_at");

	if (!pl) {
		if (append(acts, "ADD COLUMN platform varchar(50) NOT NULL "
				 "DEFAULT 'line'") < 0)
			return -1;
	} else {
		if (append(acts,
			   "ALTER COLUMN platform SET DEFAULT 'line'") < 0)
			return -1;
		if (want_col(acts, pl, "varchar(50)", OID_VARCHAR, 50 + 4) < 0)
			return -1;
	}
	if (ca->typid == OID_TIMESTAMP) {
		if (ca->has_def &&
		    append(acts, "ALTER COLUMN created_at DROP DEFAULT") < 0)
			return -1;
		char *s = xfmt("ALTER COLUMN created_at TYPE timestamptz "
			       "USING created_at AT TIME ZONE %s", zlit);
		int rc = s ? append(acts, s) : -1;

		free(s);
		if (rc < 0)
			return -1;
	}
	if (append(acts, "ALTER COLUMN created_at SET DEFAULT now()") < 0)
		return -1;
	if (!ca->notnull &&
	    append(acts, "ALTER COLUMN created_at SET NOT NULL") < 0)
		return -1;
	return 0;
}

static int plan(PGconn *conn, const char *nsp, struct migrate_adopt *a,
		const struct ltable *th, const struct ltable *hi, char *err,
		size_t errlen)
{
	const char *p[1] = {nsp};
	char *acts = NULL, *zq, zlit[160];
	PGresult *r;

	/*
	 * The indexes the seed created go (the next revision makes the ones
	 * convd's queries need); they are recognised by their definition, not
	 * their name: plain btree indexes of the history table on
	 * (user_id, platform), (user_id, platform, model_provider),
	 * (created_at) or (user_id, model_provider, created_at DESC), with
	 * the default operator classes, no predicate, no expression, no
	 * INCLUDE.  Every other index is the user's, and kept.
	 */
	r = query(conn,
		  "SELECT ci.relname, pg_get_indexdef(i.indexrelid),"
		  " c.relname = '" T_HISTORY "' AND NOT i.indisunique"
		  " AND i.indpred IS NULL AND i.indexprs IS NULL"
		  " AND am.amname = 'btree' AND i.indnatts = i.indnkeyatts"
		  " AND (SELECT bool_and(oc.opcdefault)"
		  "  FROM unnest(i.indclass::oid[]) u(c)"
		  "  JOIN pg_opclass oc ON oc.oid = u.c)"
		  " AND (SELECT string_agg(a.attname || ':' ||"
		  "  i.indoption[u.o - 1], ',' ORDER BY u.o)"
		  "  FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(n, o)"
		  "  JOIN pg_attribute a ON a.attrelid = i.indrelid"
		  "  AND a.attnum = u.n) IN ('user_id:0,platform:0',"
		  "  'user_id:0,platform:0,model_provider:0', 'created_at:0',"
		  "  'user_id:0,model_provider:0,created_at:3')"
		  " FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid"
		  " JOIN pg_am am ON am.oid = ci.relam"
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
		char *q;

		if (PQgetvalue(r, i, 2)[0] != 't') {
			kept(a, "index %s", PQgetvalue(r, i, 1));
			continue;
		}
		q = PQescapeIdentifier(conn, PQgetvalue(r, i, 0),
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

	/* the schema's other tables and views: untouched, and listed */
	r = query(conn,
		  "SELECT CASE c.relkind WHEN 'v' THEN 'view ' WHEN 'm' THEN"
		  " 'materialized view ' ELSE 'table ' END || c.relname"
		  " FROM pg_class c JOIN pg_namespace n"
		  " ON n.oid = c.relnamespace WHERE n.nspname = $1"
		  " AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition"
		  " AND c.relname NOT IN ('" T_THREADS "', '" T_HISTORY "',"
		  "  '" T_ALEMBIC "') ORDER BY c.relname",
		  1, p, err, errlen);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++)
		kept(a, "%s", PQgetvalue(r, i, 0));
	PQclear(r);

	zq = PQescapeLiteral(conn, a->zone, strlen(a->zone));
	if (!zq)
		goto nomem;
	snprintf(zlit, sizeof(zlit), "%s", zq);
	PQfreemem(zq);
	/* user_thread_table */
	if (want_col(&acts, lcol_find(th, "user_id"), "varchar(255)",
		     OID_VARCHAR, 255 + 4) < 0 ||
	    common_cols(&acts, th, zlit) < 0 ||
	    want_col(&acts, lcol_find(th, "thread_id"), "varchar(255)",
		     OID_VARCHAR, 255 + 4) < 0)
		goto nomem;
	if (want_pk(conn, &acts, th, T_THREADS "_pkey",
		    "PRIMARY KEY (user_id, platform)") < 0)
		goto nomem;
	if (add_step(a,
		     xfmt("%s: platform, NOT NULL, timestamptz (legacy times "
			  "read as %s), key (user_id, platform)",
			  T_THREADS, a->zone),
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
		    common_cols(&acts, hi, zlit) < 0 ||
		    want_col(&acts, lcol_find(hi, "model_provider"),
			     "varchar(50)", OID_VARCHAR, 50 + 4) < 0 ||
		    want_col(&acts, lcol_find(hi, "role"), "varchar(20)",
			     OID_VARCHAR, 20 + 4) < 0 ||
		    want_col(&acts, ct, "text", OID_TEXT, -1) < 0)
			goto nomem;
	}
	if (want_pk(conn, &acts, hi, T_HISTORY "_pkey",
		    "PRIMARY KEY (id)") < 0)
		goto nomem;
	if (add_step(a,
		     xfmt("%s: bigint ids (kept), platform, NOT NULL, "
			  "timestamptz (legacy times read as %s)",
			  T_HISTORY, a->zone),
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
	errbuf_set(err, errlen, "out of memory");
	return -1;
}

/*
 * A query on tables of schema nsp: in tmpl, {S} stands for the quoted
 * schema and {T} for `table` (a constant name).
 */
static PGresult *query_nsp(PGconn *conn, const char *nsp, const char *table,
			   const char *tmpl, int n, const char *const *vals,
			   char *err, size_t errlen)
{
	char *qn = PQescapeIdentifier(conn, nsp, strlen(nsp));
	size_t cap = strlen(tmpl) + 1, len = 0;
	char *sql = NULL;
	PGresult *r;

	if (qn) {
		/* each {S} or {T} (3 bytes) grows by at most its value */
		for (const char *p = tmpl; (p = strchr(p, '{')); p++)
			cap += strlen(qn) + (table ? strlen(table) : 0);
		sql = malloc(cap);
	}
	for (const char *p = tmpl; sql && *p; p++) {
		const char *v = strncmp(p, "{S}", 3) == 0   ? qn
				: strncmp(p, "{T}", 3) == 0 ? table
							    : NULL;

		if (v) {
			memcpy(sql + len, v, strlen(v));
			len += strlen(v);
			p += 2;
		} else {
			sql[len++] = *p;
		}
	}
	PQfreemem(qn);
	if (!sql) {
		errbuf_set(err, errlen, "out of memory");
		return NULL;
	}
	sql[len] = '\0';
	r = query(conn, sql, n, vals, err, errlen);
	free(sql);
	return r;
}

static int count_rows(PGconn *conn, const char *nsp, const char *table,
		      int64_t *out, char *err, size_t errlen)
{
	PGresult *r = query_nsp(conn, nsp, table,
				"SELECT count(*) FROM {S}.{T}", 0, NULL, err,
				errlen);

	if (!r)
		return -1;
	*out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

int migrate_adopt_check_zone(PGconn *conn, const char *zone, char *err,
			     size_t errlen)
{
	const char *p[1] = {zone};
	PGresult *r;
	bool ok;

	if (strlen(zone) >= sizeof(((struct migrate_adopt *)0)->zone)) {
		errbuf_set(err, errlen, "'%.80s' is not a time zone name",
			   zone);
		return -1;
	}
	r = query(conn,
		  "SELECT $1 = 'UTC' OR EXISTS (SELECT 1 FROM"
		  " pg_timezone_names WHERE name = $1)",
		  1, p, err, errlen);
	if (!r)
		return -1;
	ok = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!ok) {
		errbuf_set(err, errlen,
			   "'%s' is not a time zone name PostgreSQL knows (an "
			   "IANA name such as Asia/Taipei or Europe/Berlin, or "
			   "UTC; see pg_timezone_names)",
			   zone);
		return -1;
	}
	return 0;
}

/* Whether zone has been UTC+0 all along (UTC, Etc/UTC, GMT, ...): every
 * month from 1970 to 2040 has the same wall clock as UTC. */
static int zone_is_utc(PGconn *conn, const char *zone, bool *out, char *err,
		       size_t errlen)
{
	const char *p[1] = {zone};
	PGresult *r = query(conn,
			    "SELECT NOT EXISTS (SELECT 1 FROM generate_series("
			    "timestamptz '1970-01-01 00:00+00',"
			    " timestamptz '2040-01-01 00:00+00', '1 month') t"
			    " WHERE (t AT TIME ZONE $1) <> (t AT TIME ZONE "
			    "'UTC'))",
			    1, p, err, errlen);

	if (!r)
		return -1;
	*out = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return 0;
}

/* Rows of a legacy table: how many, how many would be dated in the future
 * if read as UTC, and the newest (as stored). */
static int future_rows(PGconn *conn, const char *nsp, const char *table,
		       struct migrate_adopt *a, bool *doubt, char *err,
		       size_t errlen)
{
	PGresult *r = query_nsp(conn, nsp, table, "SELECT count(*), count(*) "
				"FILTER (WHERE created_at > (now() AT TIME "
				"ZONE 'UTC') + interval '1 minute'), "
				"coalesce(to_char(max(created_at), "
				"'YYYY-MM-DD HH24:MI:SS'), ''), "
				"coalesce(round(extract(epoch FROM "
				"max(created_at) - (now() AT TIME ZONE "
				"'UTC')) / 3600.0, 1)::text, '') FROM {S}.{T}",
				0, NULL, err, errlen);
	int64_t n, fut;

	if (!r)
		return -1;
	n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	fut = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	if (n > 0)
		a->naive_rows = true;
	if (fut > 0) {
		*doubt = true;
		evidence(a,
			 "  - %" PRId64 " of %" PRId64 " rows of %s (%.1f%%) "
			 "would be dated in the future if read as UTC (the "
			 "newest, %s, %s hours after now in UTC)\n",
			 fut, n, table, 100.0 * (double)fut / (double)n,
			 PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3));
	} else if (n > 0) {
		evidence(a,
			 "  - no row of %s (%" PRId64 ") would be dated in the "
			 "future if read as UTC (the newest: %s)\n",
			 table, n, PQgetvalue(r, 0, 2));
	}
	PQclear(r);
	return 0;
}

/* For a zone that is not UTC: the rows that would still be in the future
 * if read in that zone (a zone that explains the future rows gives 0). */
static int future_in_zone(PGconn *conn, const char *nsp, const char *zone,
			  struct migrate_adopt *a, char *err, size_t errlen)
{
	const char *p[1] = {zone};
	PGresult *r = query_nsp(
		conn, nsp, NULL,
		"SELECT (SELECT count(*) FROM {S}." T_HISTORY
		" WHERE created_at AT TIME ZONE $1 > now() + interval '1 minute')"
		" + (SELECT count(*) FROM {S}." T_THREADS
		" WHERE created_at AT TIME ZONE $1 > now() + interval '1 minute')",
		1, p, err, errlen);

	if (!r)
		return -1;
	evidence(a, "  - read as %s, %s rows would be dated in the future\n",
		 zone, PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

/*
 * What the database says about the zone of its timestamps without time
 * zone: the TimeZone of the server (as this session sees it), of the
 * database and of roles (ALTER DATABASE/ROLE ... SET TimeZone), the
 * columns' defaults, and rows in the future if read as UTC.
 */
static int tz_look(PGconn *conn, const char *nsp, struct migrate_adopt *a,
		   const struct lcol *const *cols, const char *const *tables,
		   int ncols, char *err, size_t errlen)
{
	char zones[8][64];
	int nz = 0;
	bool doubt = false, any_naive = false;
	PGresult *r;

	for (int i = 0; i < ncols; i++) {
		if (cols[i]->typid != OID_TIMESTAMP)
			continue;
		any_naive = true;
		if (future_rows(conn, nsp, tables[i], a, &doubt, err,
				errlen) < 0)
			return -1;
		if (cols[i]->has_def)
			evidence(a,
				 "  - %s.created_at defaults to %s: rows "
				 "written without a time hold the wall clock "
				 "of the writing session's TimeZone\n",
				 tables[i], cols[i]->def);
	}
	if (!any_naive)
		return 0;

	r = query(conn,
		  "SELECT current_setting('TimeZone'), source FROM pg_settings"
		  " WHERE name = 'TimeZone'",
		  0, NULL, err, errlen);
	if (!r)
		return -1;
	if (PQntuples(r) == 1) {
		snprintf(zones[nz++], sizeof(zones[0]), "%s",
			 PQgetvalue(r, 0, 0));
		evidence(a, "  - this session's TimeZone is %s (source: %s%s)\n",
			 PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
			 strcmp(PQgetvalue(r, 0, 1), "client") == 0
				 ? ", e.g. PGTZ: the server's own may differ"
				 : "");
	}
	PQclear(r);
	r = query(conn,
		  "SELECT CASE WHEN s.setrole = 0 THEN 'database '"
		  "  || quote_ident(d.datname) WHEN s.setdatabase = 0"
		  "  THEN 'role ' || quote_ident(ro.rolname) ELSE 'role '"
		  "  || quote_ident(ro.rolname) || ' in database '"
		  "  || quote_ident(d.datname) END, substr(c, 10)"
		  " FROM pg_db_role_setting s"
		  " LEFT JOIN pg_database d ON d.oid = s.setdatabase"
		  " LEFT JOIN pg_roles ro ON ro.oid = s.setrole,"
		  " unnest(s.setconfig) c"
		  " WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database"
		  "  WHERE datname = current_database()))"
		  " AND lower(c) LIKE 'timezone=%' ORDER BY 1",
		  0, NULL, err, errlen);
	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *z = PQgetvalue(r, i, 1);
		bool dup = false;

		evidence(a, "  - %s has TimeZone = %s\n", PQgetvalue(r, i, 0),
			 z);
		for (int k = 0; k < nz; k++)
			dup = dup || strcmp(zones[k], z) == 0;
		if (!dup && nz < (int)ARRAY_LEN(zones) &&
		    strlen(z) < sizeof(zones[0]))
			snprintf(zones[nz++], sizeof(zones[0]), "%s", z);
	}
	PQclear(r);
	for (int k = 0; k < nz; k++) {
		bool utc;

		if (zone_is_utc(conn, zones[k], &utc, err, errlen) < 0)
			return -1;
		if (utc)
			continue;
		evidence(a, "  - %s is not UTC: sessions in it write local "
			    "wall-clock times\n",
			 zones[k]);
		doubt = true;
		if (a->naive_rows &&
		    future_in_zone(conn, nsp, zones[k], a, err, errlen) < 0)
			return -1;
	}
	a->tz_doubt = doubt && a->naive_rows;
	return 0;
}

int migrate_adopt_inspect(PGconn *conn, const char *nsp,
			  const char *history_table,
			  struct migrate_adopt *a, char *err, size_t errlen)
{
	return migrate_adopt_inspect_tz(conn, nsp, history_table, NULL, a, err,
					errlen);
}

int migrate_adopt_inspect_tz(PGconn *conn, const char *nsp,
			     const char *history_table, const char *zone,
			     struct migrate_adopt *a, char *err, size_t errlen)
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
		a->shape = MIGRATE_ADOPT_MANAGED;
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
		a->shape = MIGRATE_ADOPT_EMPTY;
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
		if (al.ncols != 1 || strcmp(al.cols[0].name,
					    "version_num") != 0) {
			unknown(a, "alembic_version does not look like "
				   "Alembic's");
			return 0;
		}
		r = query_nsp(conn, nsp, NULL,
			      "SELECT version_num FROM {S}." T_ALEMBIC
			      " ORDER BY 1",
			      0, NULL, err, errlen);
		if (!r)
			return -1;
		/* any revision: 001, or the user's own after it (several
		 * rows when Alembic had several heads) */
		for (int i = 0; i < PQntuples(r); i++)
			cat(a->alembic_revs, sizeof(a->alembic_revs), "%s'%s'",
			    i ? ", " : "",
			    PQgetisnull(r, i, 0) ? "" : PQgetvalue(r, i, 0));
		if (PQntuples(r) == 0)
			snprintf(a->alembic_revs, sizeof(a->alembic_revs),
				 "no row");
		PQclear(r);
		a->alembic = true;
	}
	if (count_rows(conn, nsp, T_THREADS, &a->threads, err, errlen) < 0 ||
	    count_rows(conn, nsp, T_HISTORY, &a->messages, err, errlen) < 0)
		return -1;
	if (pth) {
		a->shape = MIGRATE_ADOPT_LEGACY_ALEMBIC;
		found(a,
		      "the seed's tables with platform columns: %s "
		      "(%" PRId64 " rows, key %s) and %s (%" PRId64 " rows)",
		      T_THREADS, a->threads, th.has_pk ? th.pk_def : "none",
		      T_HISTORY, a->messages);
	} else {
		a->shape = MIGRATE_ADOPT_LEGACY_README;
		found(a,
		      "the seed's tables as made from its README SQL (no "
		      "platform column): %s (%" PRId64 " rows, key %s) and "
		      "%s (%" PRId64 " rows)",
		      T_THREADS, a->threads, th.has_pk ? th.pk_def : "none",
		      T_HISTORY, a->messages);
	}
	if (a->alembic)
		found(a, "; managed by Alembic, at revision %s "
			 "(alembic_version)",
		      a->alembic_revs);
	else if (pth)
		found(a, " (no alembic_version: altered by hand)");
	snprintf(a->zone, sizeof(a->zone), "%s", zone ? zone : "UTC");
	{
		const struct lcol *cols[2] = {lcol_find(&hi, "created_at"),
					      lcol_find(&th, "created_at")};
		const char *tables[2] = {T_HISTORY, T_THREADS};

		if (tz_look(conn, nsp, a, cols, tables, 2, err, errlen) < 0)
			return -1;
	}
	if ((a->threads_naive || a->history_naive) && a->tz_doubt && !zone)
		found(a, "; timestamps without time zone, whose zone is in "
			 "doubt");
	else if (a->threads_naive || a->history_naive)
		found(a, "; timestamps without time zone, read as %s%s",
		      a->zone,
		      zone ? " (--legacy-timezone)"
			   : " (nothing says otherwise)");

	if (plan(conn, nsp, a, &th, &hi, err, errlen) < 0) {
		migrate_adopt_free(a);
		return -1;
	}
	if (a->kept[0])
		found(a, "; kept: %s", a->kept);
	if (a->shape == MIGRATE_ADOPT_UNKNOWN)
		migrate_adopt_free(a);
	return 0;
}

int migrate_adopt_fingerprint(PGconn *conn, const char *nsp,
			      const struct migrate_adopt *a,
			      bool after, char *out, size_t outlen, char *err,
			      size_t errlen)
{
	char *qn = PQescapeIdentifier(conn, nsp, strlen(nsp));
	char *zl = PQescapeLiteral(conn, a->zone, strlen(a->zone));
	const char *plat = after || a->had_platform ? "platform" : "'line'";
	char ts_th[256], ts_hi[256];
	char *sql;
	PGresult *r;

	if (!qn || !zl) {
		PQfreemem(qn);
		PQfreemem(zl);
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	/* the legacy times as the instants the plan makes of them */
	snprintf(ts_th, sizeof(ts_th), "created_at%s%s",
		 !after && a->threads_naive ? " AT TIME ZONE " : "",
		 !after && a->threads_naive ? zl : "");
	snprintf(ts_hi, sizeof(ts_hi), "created_at%s%s",
		 !after && a->history_naive ? " AT TIME ZONE " : "",
		 !after && a->history_naive ? zl : "");
	PQfreemem(zl);
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
		errbuf_set(err, errlen, "out of memory");
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
