/*
 * migrate_catalog.c - schemas out of PostgreSQL's catalog.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrate_catalog.h"

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

void mcat_result_error(const PGresult *res, PGconn *conn, char *buf,
		       size_t len)
{
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
			      : NULL;
	const char *state =
		res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *detail =
		res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	const char *hint =
		res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
	const char *pos =
		res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
	size_t o;

	if (!msg) {
		const char *m = PQerrorMessage(conn);
		size_t l = strlen(m);

		while (l > 0 && (m[l - 1] == '\n' || m[l - 1] == ' '))
			l--;
		snprintf(buf, len, "%.*s", (int)l, l ? m : "unknown error");
		return;
	}
	o = (size_t)snprintf(buf, len, "%s", msg);
	if (state && o < len)
		o += (size_t)snprintf(buf + o, len - o, " (SQLSTATE %s)", state);
	if (pos && o < len)
		o += (size_t)snprintf(buf + o, len - o, " at character %s",
				      pos);
	if (detail && o < len)
		o += (size_t)snprintf(buf + o, len - o, "; %s", detail);
	if (hint && o < len)
		snprintf(buf + o, len - o, "; hint: %s", hint);
}

/* Runs a parameterised query that must return rows (or a command). */
static PGresult *run(PGconn *conn, const char *sql, int n,
		     const char *const *vals, char *err, size_t errlen)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, vals, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		char msg[1024];

		mcat_result_error(res, conn, msg, sizeof(msg));
		seterr(err, errlen, "%s", msg);
		PQclear(res);
		return NULL;
	}
	return res;
}

static char *dupval(const PGresult *r, int row, int col, bool *oom)
{
	char *s;

	if (PQgetisnull(r, row, col))
		return NULL;
	s = strdup(PQgetvalue(r, row, col));
	if (!s)
		*oom = true;
	return s;
}

static int64_t intval(const PGresult *r, int row, int col)
{
	return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static bool boolval(const PGresult *r, int row, int col)
{
	return PQgetvalue(r, row, col)[0] == 't';
}

#define TABS_CTE                                                            \
	"WITH tabs AS ("                                                    \
	" SELECT c.oid, c.relname FROM pg_class c"                          \
	" JOIN pg_namespace n ON n.oid = c.relnamespace"                    \
	" WHERE n.nspname = $1 AND c.relkind = 'r' AND NOT c.relispartition" \
	" AND c.relname <> $2"                                              \
	" AND NOT EXISTS (SELECT 1 FROM pg_depend d"                        \
	"  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid"      \
	"  AND d.deptype = 'e')) "

static const char q_columns[] = TABS_CTE
	"SELECT t.relname, quote_ident(t.relname), a.attname,"
	" quote_ident(a.attname), a.attnum,"
	" format_type(a.atttypid, a.atttypmod), a.atttypid, a.atttypmod,"
	" CASE WHEN ty.typcategory = 'A' THEN et.typname ELSE ty.typname END,"
	" ty.typcategory = 'A',"
	" CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation"
	"  THEN quote_ident(co.collname) END,"
	" a.attnotnull,"
	" CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid)"
	"  END,"
	" a.attidentity,"
	" CASE WHEN a.attgenerated <> '' THEN"
	"  pg_get_expr(ad.adbin, ad.adrelid) END"
	" FROM tabs t"
	" LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0"
	"  AND NOT a.attisdropped"
	" LEFT JOIN pg_type ty ON ty.oid = a.atttypid"
	" LEFT JOIN pg_type et ON et.oid = ty.typelem AND ty.typcategory = 'A'"
	" LEFT JOIN pg_collation co ON co.oid = a.attcollation"
	" LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid"
	"  AND ad.adnum = a.attnum"
	" ORDER BY t.relname, a.attnum";

static const char q_constraints[] = TABS_CTE
	"SELECT t.relname, k.conname, quote_ident(k.conname), k.contype,"
	" pg_get_constraintdef(k.oid, true)"
	" FROM tabs t JOIN pg_constraint k ON k.conrelid = t.oid"
	" WHERE k.contype IN ('p', 'u', 'c', 'f', 'x')"
	" ORDER BY 1, 2";

static const char q_indexes[] = TABS_CTE
	"SELECT t.relname, ci.relname, quote_ident(ci.relname), i.indisunique,"
	" CASE WHEN starts_with(d.def, d.prefix)"
	"  THEN substr(d.def, length(d.prefix) + 1) END, d.def"
	" FROM tabs t JOIN pg_index i ON i.indrelid = t.oid"
	" JOIN pg_class ci ON ci.oid = i.indexrelid"
	" CROSS JOIN LATERAL (SELECT pg_get_indexdef(i.indexrelid, 0, true)"
	"  AS def, format('CREATE %sINDEX %s ON %s USING ',"
	"  CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END,"
	"  quote_ident(ci.relname), t.oid::regclass) AS prefix) d"
	" WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k"
	"  WHERE k.conindid = i.indexrelid AND k.conrelid = t.oid"
	"  AND k.contype IN ('p', 'u', 'x'))"
	" ORDER BY 1, 2";

static const char q_enums[] =
	"SELECT ty.typname, quote_ident(ty.typname), e.enumlabel,"
	" quote_literal(e.enumlabel)"
	" FROM pg_type ty JOIN pg_namespace n ON n.oid = ty.typnamespace"
	" LEFT JOIN pg_enum e ON e.enumtypid = ty.oid"
	" WHERE n.nspname = $1 AND ty.typtype = 'e'"
	" AND NOT EXISTS (SELECT 1 FROM pg_depend d"
	"  WHERE d.classid = 'pg_type'::regclass AND d.objid = ty.oid"
	"  AND d.deptype = 'e')"
	" ORDER BY ty.typname, e.enumsortorder";

static const char q_sequences[] =
	"SELECT c.relname, quote_ident(c.relname), format_type(s.seqtypid,"
	" NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache,"
	" s.seqcycle, ot.relname, quote_ident(ot.relname), oa.attname,"
	" quote_ident(oa.attname)"
	" FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid"
	" JOIN pg_namespace n ON n.oid = c.relnamespace"
	" LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass"
	"  AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass"
	"  AND d.deptype = 'a'"
	" LEFT JOIN pg_class ot ON ot.oid = d.refobjid"
	" LEFT JOIN pg_attribute oa ON oa.attrelid = d.refobjid"
	"  AND oa.attnum = d.refobjsubid"
	" WHERE n.nspname = $1"
	" AND NOT EXISTS (SELECT 1 FROM pg_depend di"
	"  WHERE di.classid = 'pg_class'::regclass AND di.objid = c.oid"
	"  AND di.deptype IN ('i', 'e'))"
	" ORDER BY 1";

static struct mschema_table *table_by_name(struct mschema *s,
					   const char *name)
{
	for (int i = s->ntables - 1; i >= 0; i--)
		if (strcmp(s->tables[i].name, name) == 0)
			return &s->tables[i];
	return NULL;
}

static int load_columns(PGconn *conn, const char *const *p,
			struct mschema *s, char *err, size_t errlen)
{
	PGresult *r = run(conn, q_columns, 2, p, err, errlen);
	bool oom = false;
	int n;

	if (!r)
		return -1;
	n = PQntuples(r);
	s->tables = calloc((size_t)n + 1, sizeof(*s->tables));
	if (!s->tables)
		oom = true;
	for (int i = 0; i < n && !oom; i++) {
		const char *tname = PQgetvalue(r, i, 0);
		struct mschema_table *t = NULL;
		struct mschema_column *c;

		if (s->ntables > 0 &&
		    strcmp(s->tables[s->ntables - 1].name, tname) == 0)
			t = &s->tables[s->ntables - 1];
		if (!t) {
			t = &s->tables[s->ntables++];
			t->name = dupval(r, i, 0, &oom);
			t->qname = dupval(r, i, 1, &oom);
			t->cols = calloc((size_t)n, sizeof(*t->cols));
			if (!t->cols)
				oom = true;
		}
		if (oom || PQgetisnull(r, i, 2))
			continue;
		c = &t->cols[t->ncols++];
		c->name = dupval(r, i, 2, &oom);
		c->qname = dupval(r, i, 3, &oom);
		c->attnum = (int)intval(r, i, 4);
		c->type = dupval(r, i, 5, &oom);
		c->typid = (uint32_t)strtoul(PQgetvalue(r, i, 6), NULL, 10);
		c->typmod = (int32_t)intval(r, i, 7);
		c->typname = dupval(r, i, 8, &oom);
		c->is_array = boolval(r, i, 9);
		c->collation = dupval(r, i, 10, &oom);
		c->notnull = boolval(r, i, 11);
		c->def = dupval(r, i, 12, &oom);
		c->identity = PQgetvalue(r, i, 13)[0];
		c->generated = dupval(r, i, 14, &oom);
	}
	PQclear(r);
	if (oom) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int load_constraints(PGconn *conn, const char *const *p,
			    struct mschema *s, char *err, size_t errlen)
{
	PGresult *r = run(conn, q_constraints, 2, p, err, errlen);
	bool oom = false;
	int n;

	if (!r)
		return -1;
	n = PQntuples(r);
	for (int i = 0; i < n && !oom; i++) {
		struct mschema_table *t = table_by_name(s, PQgetvalue(r, i, 0));
		struct mschema_constraint *k;

		if (!t)
			continue;
		if (!t->cons) {
			t->cons = calloc((size_t)n, sizeof(*t->cons));
			if (!t->cons) {
				oom = true;
				break;
			}
		}
		k = &t->cons[t->ncons++];
		k->name = dupval(r, i, 1, &oom);
		k->qname = dupval(r, i, 2, &oom);
		k->type = PQgetvalue(r, i, 3)[0];
		k->def = dupval(r, i, 4, &oom);
	}
	PQclear(r);
	if (oom) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int load_indexes(PGconn *conn, const char *const *p,
			struct mschema *s, char *err, size_t errlen)
{
	PGresult *r = run(conn, q_indexes, 2, p, err, errlen);
	bool oom = false;
	int n;

	if (!r)
		return -1;
	n = PQntuples(r);
	for (int i = 0; i < n && !oom; i++) {
		struct mschema_table *t = table_by_name(s, PQgetvalue(r, i, 0));
		struct mschema_index *x;

		if (!t)
			continue;
		if (PQgetisnull(r, i, 4)) {
			seterr(err, errlen,
			       "cannot take index %s apart: %s",
			       PQgetvalue(r, i, 1), PQgetvalue(r, i, 5));
			PQclear(r);
			return -1;
		}
		if (!t->idx) {
			t->idx = calloc((size_t)n, sizeof(*t->idx));
			if (!t->idx) {
				oom = true;
				break;
			}
		}
		x = &t->idx[t->nidx++];
		x->name = dupval(r, i, 1, &oom);
		x->qname = dupval(r, i, 2, &oom);
		x->unique = boolval(r, i, 3);
		x->tail = dupval(r, i, 4, &oom);
	}
	PQclear(r);
	if (oom) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int load_enums(PGconn *conn, const char *const *p, struct mschema *s,
		      char *err, size_t errlen)
{
	PGresult *r = run(conn, q_enums, 1, p, err, errlen);
	bool oom = false;
	int n;

	if (!r)
		return -1;
	n = PQntuples(r);
	s->enums = calloc((size_t)n + 1, sizeof(*s->enums));
	if (!s->enums)
		oom = true;
	for (int i = 0; i < n && !oom; i++) {
		struct mschema_enum *e = NULL;

		if (s->nenums > 0 &&
		    strcmp(s->enums[s->nenums - 1].name, PQgetvalue(r, i, 0)) ==
			    0)
			e = &s->enums[s->nenums - 1];
		if (!e) {
			e = &s->enums[s->nenums++];
			e->name = dupval(r, i, 0, &oom);
			e->qname = dupval(r, i, 1, &oom);
			e->labels = calloc((size_t)n, sizeof(char *));
			e->qlabels = calloc((size_t)n, sizeof(char *));
			if (!e->labels || !e->qlabels) {
				oom = true;
				break;
			}
		}
		if (PQgetisnull(r, i, 2))
			continue;
		e->labels[e->nlabels] = dupval(r, i, 2, &oom);
		e->qlabels[e->nlabels] = dupval(r, i, 3, &oom);
		e->nlabels++;
	}
	PQclear(r);
	if (oom) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int load_sequences(PGconn *conn, const char *const *p,
			  struct mschema *s, char *err, size_t errlen)
{
	PGresult *r = run(conn, q_sequences, 1, p, err, errlen);
	bool oom = false;
	int n;

	if (!r)
		return -1;
	n = PQntuples(r);
	s->seqs = calloc((size_t)n + 1, sizeof(*s->seqs));
	if (!s->seqs)
		oom = true;
	for (int i = 0; i < n && !oom; i++) {
		struct mschema_sequence *q = &s->seqs[s->nseqs++];

		q->name = dupval(r, i, 0, &oom);
		q->qname = dupval(r, i, 1, &oom);
		q->type = dupval(r, i, 2, &oom);
		q->start = intval(r, i, 3);
		q->inc = intval(r, i, 4);
		q->min = intval(r, i, 5);
		q->max = intval(r, i, 6);
		q->cache = intval(r, i, 7);
		q->cycle = boolval(r, i, 8);
		q->owner_table = dupval(r, i, 9, &oom);
		q->owner_qtable = dupval(r, i, 10, &oom);
		q->owner_column = dupval(r, i, 11, &oom);
		q->owner_qcolumn = dupval(r, i, 12, &oom);
	}
	PQclear(r);
	if (oom) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* SET LOCAL search_path to the given (already quoted) list. */
static int set_search_path(PGconn *conn, const char *path, char *err,
			   size_t errlen)
{
	const char *p[1] = {path};
	PGresult *r = run(conn,
			  "SELECT pg_catalog.set_config('search_path', $1, true)",
			  1, p, err, errlen);

	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

static char *quote_ident(PGconn *conn, const char *name, char *err,
			 size_t errlen)
{
	char *q = PQescapeIdentifier(conn, name, strlen(name));
	char *s;

	if (!q) {
		seterr(err, errlen, "%s", PQerrorMessage(conn));
		return NULL;
	}
	s = strdup(q);
	PQfreemem(q);
	if (!s)
		seterr(err, errlen, "out of memory");
	return s;
}

int mcat_load(PGconn *conn, const char *nsp, const char *exclude,
	      struct mschema *out, char *err, size_t errlen)
{
	const char *p[2] = {nsp, exclude ? exclude : ""};
	char *qn = quote_ident(conn, nsp, err, errlen);
	int rc;

	memset(out, 0, sizeof(*out));
	if (!qn)
		return -1;
	rc = set_search_path(conn, qn, err, errlen);
	free(qn);
	if (rc < 0)
		return -1;
	if (load_columns(conn, p, out, err, errlen) < 0 ||
	    load_constraints(conn, p, out, err, errlen) < 0 ||
	    load_indexes(conn, p, out, err, errlen) < 0 ||
	    load_enums(conn, p, out, err, errlen) < 0 ||
	    load_sequences(conn, p, out, err, errlen) < 0) {
		mschema_free(out);
		return -1;
	}
	mschema_sort(out);
	return 0;
}

static int exec_simple(PGconn *conn, const char *sql, char *err,
		       size_t errlen)
{
	PGresult *r = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    st != PGRES_EMPTY_QUERY) {
		char msg[1024];

		mcat_result_error(r, conn, msg, sizeof(msg));
		seterr(err, errlen, "%s", msg);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}

int mcat_load_sql(PGconn *conn, const char *sql, const char *nsp,
		  const char *exclude, struct mschema *out, char *err,
		  size_t errlen)
{
	char scratch[64], *qs = NULL, *qn = NULL, *path = NULL, *create = NULL;
	unsigned rnd = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (getentropy(&rnd, sizeof(rnd)) < 0)
		rnd = (unsigned)getpid();
	snprintf(scratch, sizeof(scratch), "convd_scratch_%ld_%08x",
		 (long)getpid(), rnd);
	qs = quote_ident(conn, scratch, err, errlen);
	qn = quote_ident(conn, nsp, err, errlen);
	if (!qs || !qn)
		goto out;
	if (asprintf(&path, "%s, %s", qs, qn) < 0 ||
	    asprintf(&create, "CREATE SCHEMA %s", qs) < 0) {
		path = create = NULL;
		seterr(err, errlen, "out of memory");
		goto out;
	}
	if (exec_simple(conn, "SAVEPOINT convd_scratch", err, errlen) < 0)
		goto out;
	if (exec_simple(conn, create, err, errlen) < 0 ||
	    set_search_path(conn, path, err, errlen) < 0 ||
	    exec_simple(conn, sql, err, errlen) < 0) {
		char e2[64];

		if (exec_simple(conn, "ROLLBACK TO SAVEPOINT convd_scratch", e2,
				sizeof(e2)) == 0)
			exec_simple(conn, "RELEASE SAVEPOINT convd_scratch",
				    e2, sizeof(e2));
		goto out;
	}
	{
		const char *p[2] = {scratch, exclude ? exclude : ""};

		if (load_columns(conn, p, out, err, errlen) < 0 ||
		    load_constraints(conn, p, out, err, errlen) < 0 ||
		    load_indexes(conn, p, out, err, errlen) < 0 ||
		    load_enums(conn, p, out, err, errlen) < 0 ||
		    load_sequences(conn, p, out, err, errlen) < 0) {
			mschema_free(out);
			goto rollback;
		}
	}
	mschema_sort(out);
	rc = 0;
rollback:
	if (exec_simple(conn, "ROLLBACK TO SAVEPOINT convd_scratch", err,
			errlen) < 0 ||
	    exec_simple(conn, "RELEASE SAVEPOINT convd_scratch", err,
			errlen) < 0) {
		if (rc == 0)
			mschema_free(out);
		rc = -1;
	}
out:
	free(qs);
	free(qn);
	free(path);
	free(create);
	return rc;
}

static const char q_guard[] =
	"WITH rels AS (SELECT c.oid, format('%I.%I', n.nspname, c.relname)"
	"  AS name FROM pg_class c JOIN pg_namespace n"
	"  ON n.oid = c.relnamespace"
	"  WHERE c.relkind IN ('r', 'p', 'm')"
	"  AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
	"  AND n.nspname !~ '^pg_(toast|temp_)')"
	" SELECT oid, 0, name, NULL, 0, -1, NULL FROM rels"
	" UNION ALL"
	" SELECT r.oid, a.attnum, r.name, a.attname, a.atttypid, a.atttypmod,"
	"  format_type(a.atttypid, a.atttypmod)"
	" FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid"
	"  AND a.attnum > 0 AND NOT a.attisdropped"
	" ORDER BY 1, 2";

int mcat_columns(PGconn *conn, struct migrate_cols *out, char *err,
		 size_t errlen)
{
	PGresult *r = run(conn, q_guard, 0, NULL, err, errlen);
	bool oom = false;
	int n;

	out->v = NULL;
	out->n = 0;
	if (!r)
		return -1;
	n = PQntuples(r);
	out->v = calloc((size_t)n + 1, sizeof(*out->v));
	if (!out->v) {
		PQclear(r);
		seterr(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < n && !oom; i++) {
		struct migrate_col *c = &out->v[out->n++];

		c->relid = (uint32_t)strtoul(PQgetvalue(r, i, 0), NULL, 10);
		c->attnum = (int)intval(r, i, 1);
		c->table = dupval(r, i, 2, &oom);
		c->column = dupval(r, i, 3, &oom);
		c->typid = (uint32_t)strtoul(PQgetvalue(r, i, 4), NULL, 10);
		c->typmod = (int32_t)intval(r, i, 5);
		c->type = dupval(r, i, 6, &oom);
	}
	PQclear(r);
	if (oom) {
		migrate_cols_free(out);
		seterr(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int mcat_current_schema(PGconn *conn, char **out, char *err, size_t errlen)
{
	PGresult *r = run(conn, "SELECT current_schema()", 0, NULL, err,
			  errlen);

	*out = NULL;
	if (!r)
		return -1;
	if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
		PQclear(r);
		seterr(err, errlen,
		       "no schema to work in: the search_path names no "
		       "existing schema");
		return -1;
	}
	*out = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (!*out) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}
