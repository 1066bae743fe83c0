/*
 * migrate_catalog.c - schemas out of PostgreSQL's catalog.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbconf.h"
#include "errbuf.h"
#include "migrate_catalog.h"

void migrate_catalog_result_error(const PGresult *res, PGconn *conn, char *buf,
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
		int l = dbconf_msg_len(m);

		snprintf(buf, len, "%.*s", l, l ? m : "unknown error");
		return;
	}
	o = (size_t)snprintf(buf, len, "%s", msg);
	if (state && o < len)
		o += (size_t)snprintf(buf + o, len - o, " (SQLSTATE %s)",
				      state);
	if (pos && o < len)
		o += (size_t)snprintf(buf + o, len - o, " at character %s",
				      pos);
	if (detail && o < len)
		o += (size_t)snprintf(buf + o, len - o, "; %s", detail);
	if (hint && o < len)
		snprintf(buf + o, len - o, "; hint: %s", hint);
}

/* Sets err from a failed result, and clears the result. */
static void result_fail(PGresult *res, PGconn *conn, char *err, size_t errlen)
{
	char msg[1024];

	migrate_catalog_result_error(res, conn, msg, sizeof(msg));
	errbuf_set(err, errlen, "%s", msg);
	PQclear(res);
}

/* Runs a parameterised query that must return rows (or a command). */
static PGresult *run(PGconn *conn, const char *sql, int n,
		     const char *const *vals, char *err, size_t errlen)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, vals, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		result_fail(res, conn, err, errlen);
		return NULL;
	}
	return res;
}

/* One row of a loader's query, as its store callback sees it. */
struct row {
	const PGresult *res;
	int i;		/* this row */
	int n;		/* of how many (an upper bound for any array) */
	bool oom;	/* set by str() and the callbacks */
	char *err;	/* for errors other than out of memory */
	size_t errlen;
};

static const char *val(const struct row *w, int col)
{
	return PQgetvalue(w->res, w->i, col);
}

static bool isnull(const struct row *w, int col)
{
	return PQgetisnull(w->res, w->i, col);
}

/* A copy of the value, or NULL for SQL NULL (or out of memory). */
static char *str(struct row *w, int col)
{
	char *s;

	if (isnull(w, col))
		return NULL;
	s = strdup(val(w, col));
	if (!s)
		w->oom = true;
	return s;
}

static int64_t intval(const struct row *w, int col)
{
	return strtoll(val(w, col), NULL, 10);
}

static uint32_t oidval(const struct row *w, int col)
{
	return (uint32_t)strtoul(val(w, col), NULL, 10);
}

static bool boolval(const struct row *w, int col)
{
	return val(w, col)[0] == 't';
}

/* Whether the first column of the row is name (rows of a group). */
static bool first_is(const struct row *w, const char *name)
{
	return strcmp(val(w, 0), name) == 0;
}

/*
 * A query and what to do with its rows: prepare (may be NULL) makes room
 * for n rows and returns false when out of memory; store takes one row,
 * returning -1 (with err set) to stop on an error other than out of
 * memory.
 */
struct loader {
	const char *sql;
	int nparams;
	bool (*prepare)(void *dst, int n);
	int (*store)(struct row *w, void *dst);
};

/* Runs the loader's query with parameters p and stores its rows in dst. */
static int load_rows(PGconn *conn, const struct loader *l,
		     const char *const *p, void *dst, char *err, size_t errlen)
{
	PGresult *r = run(conn, l->sql, l->nparams, p, err, errlen);
	struct row w = {.res = r, .err = err, .errlen = errlen};
	int rc = 0;

	if (!r)
		return -1;
	w.n = PQntuples(r);
	if (l->prepare && !l->prepare(dst, w.n))
		w.oom = true;
	for (w.i = 0; w.i < w.n && !w.oom && rc == 0; w.i++)
		rc = l->store(&w, dst);
	PQclear(r);
	if (rc < 0)
		return -1;
	if (w.oom) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	return 0;
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

/* The table of s named name (they are not sorted yet), or NULL. */
static struct migrate_diff_table *table_by_name(struct migrate_diff_schema *s,
						const char *name)
{
	/* s is ours: the const of the lookup does not apply */
	return (struct migrate_diff_table *)migrate_diff_schema_table(s, name);
}

static bool alloc_tables(void *dst, int n)
{
	struct migrate_diff_schema *s = dst;

	s->tables = calloc((size_t)n + 1, sizeof(*s->tables));
	return s->tables != NULL;
}

/* q_columns: one row per column, grouped by table; a table without
 * columns has one row whose column fields are NULL. */
static int store_column(struct row *w, void *dst)
{
	struct migrate_diff_schema *s = dst;
	struct migrate_diff_table *t;
	struct migrate_diff_column *c;

	if (s->ntables == 0 || !first_is(w, s->tables[s->ntables - 1].name)) {
		t = &s->tables[s->ntables++];
		t->name = str(w, 0);
		t->qname = str(w, 1);
		t->cols = calloc((size_t)w->n, sizeof(*t->cols));
		if (!t->cols)
			w->oom = true;
	}
	t = &s->tables[s->ntables - 1];
	if (w->oom || isnull(w, 2))
		return 0;
	c = &t->cols[t->ncols++];
	c->name = str(w, 2);
	c->qname = str(w, 3);
	c->attnum = (int)intval(w, 4);
	c->type = str(w, 5);
	c->typid = oidval(w, 6);
	c->typmod = (int32_t)intval(w, 7);
	c->typname = str(w, 8);
	c->is_array = boolval(w, 9);
	c->collation = str(w, 10);
	c->notnull = boolval(w, 11);
	c->def = str(w, 12);
	c->identity = val(w, 13)[0];
	c->generated = str(w, 14);
	return 0;
}

static int store_constraint(struct row *w, void *dst)
{
	struct migrate_diff_table *t = table_by_name(dst, val(w, 0));
	struct migrate_diff_constraint *k;

	if (!t)
		return 0;
	if (!t->cons)
		t->cons = calloc((size_t)w->n, sizeof(*t->cons));
	if (!t->cons) {
		w->oom = true;
		return 0;
	}
	k = &t->cons[t->ncons++];
	k->name = str(w, 1);
	k->qname = str(w, 2);
	k->type = val(w, 3)[0];
	k->def = str(w, 4);
	return 0;
}

static int store_index(struct row *w, void *dst)
{
	struct migrate_diff_table *t = table_by_name(dst, val(w, 0));
	struct migrate_diff_index *x;

	if (!t)
		return 0;
	if (isnull(w, 4)) {
		errbuf_set(w->err, w->errlen, "cannot take index %s apart: %s",
			   val(w, 1), val(w, 5));
		return -1;
	}
	if (!t->idx)
		t->idx = calloc((size_t)w->n, sizeof(*t->idx));
	if (!t->idx) {
		w->oom = true;
		return 0;
	}
	x = &t->idx[t->nidx++];
	x->name = str(w, 1);
	x->qname = str(w, 2);
	x->unique = boolval(w, 3);
	x->tail = str(w, 4);
	return 0;
}

static bool alloc_enums(void *dst, int n)
{
	struct migrate_diff_schema *s = dst;

	s->enums = calloc((size_t)n + 1, sizeof(*s->enums));
	return s->enums != NULL;
}

/* q_enums: one row per label, grouped by type; a type without labels
 * has one row whose label fields are NULL. */
static int store_enum(struct row *w, void *dst)
{
	struct migrate_diff_schema *s = dst;
	struct migrate_diff_enum *e;

	if (s->nenums == 0 || !first_is(w, s->enums[s->nenums - 1].name)) {
		e = &s->enums[s->nenums++];
		e->name = str(w, 0);
		e->qname = str(w, 1);
		e->labels = calloc((size_t)w->n, sizeof(char *));
		e->qlabels = calloc((size_t)w->n, sizeof(char *));
		if (!e->labels || !e->qlabels) {
			w->oom = true;
			return 0;
		}
	}
	e = &s->enums[s->nenums - 1];
	if (isnull(w, 2))
		return 0;
	e->labels[e->nlabels] = str(w, 2);
	e->qlabels[e->nlabels] = str(w, 3);
	e->nlabels++;
	return 0;
}

static bool alloc_seqs(void *dst, int n)
{
	struct migrate_diff_schema *s = dst;

	s->seqs = calloc((size_t)n + 1, sizeof(*s->seqs));
	return s->seqs != NULL;
}

static int store_sequence(struct row *w, void *dst)
{
	struct migrate_diff_schema *s = dst;
	struct migrate_diff_sequence *q = &s->seqs[s->nseqs++];

	q->name = str(w, 0);
	q->qname = str(w, 1);
	q->type = str(w, 2);
	q->start = intval(w, 3);
	q->inc = intval(w, 4);
	q->min = intval(w, 5);
	q->max = intval(w, 6);
	q->cache = intval(w, 7);
	q->cycle = boolval(w, 8);
	q->owner_table = str(w, 9);
	q->owner_qtable = str(w, 10);
	q->owner_column = str(w, 11);
	q->owner_qcolumn = str(w, 12);
	return 0;
}

/* What a schema is read with, in this order (the tables first: the
 * constraints and indexes are attached to them). */
static const struct loader schema_loaders[] = {
	{q_columns, 2, alloc_tables, store_column},
	{q_constraints, 2, NULL, store_constraint},
	{q_indexes, 2, NULL, store_index},
	{q_enums, 1, alloc_enums, store_enum},
	{q_sequences, 1, alloc_seqs, store_sequence},
};

/* Reads schema nsp, except table exclude (may be NULL), into the zeroed
 * out; frees what it read on failure. */
static int load_schema(PGconn *conn, const char *nsp, const char *exclude,
		       struct migrate_diff_schema *out, char *err,
		       size_t errlen)
{
	const char *p[2] = {nsp, exclude ? exclude : ""};

	for (size_t i = 0; i < ARRAY_LEN(schema_loaders); i++) {
		const struct loader *l = &schema_loaders[i];

		if (load_rows(conn, l, p, out, err, errlen) < 0) {
			migrate_diff_schema_free(out);
			return -1;
		}
	}
	migrate_diff_schema_sort(out);
	return 0;
}

/* SET LOCAL search_path to the given (already quoted) list. */
static int set_search_path(PGconn *conn, const char *path, char *err,
			   size_t errlen)
{
	const char *p[1] = {path};
	PGresult *r = run(conn, "SELECT pg_catalog.set_config('search_path', "
			  "$1, true)", 1, p, err, errlen);

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
		errbuf_set(err, errlen, "%s", PQerrorMessage(conn));
		return NULL;
	}
	s = strdup(q);
	PQfreemem(q);
	if (!s)
		errbuf_set(err, errlen, "out of memory");
	return s;
}

int migrate_catalog_load(PGconn *conn, const char *nsp, const char *exclude,
			 struct migrate_diff_schema *out, char *err,
			 size_t errlen)
{
	char *qn = quote_ident(conn, nsp, err, errlen);
	int rc;

	memset(out, 0, sizeof(*out));
	if (!qn)
		return -1;
	rc = set_search_path(conn, qn, err, errlen);
	free(qn);
	if (rc < 0)
		return -1;
	return load_schema(conn, nsp, exclude, out, err, errlen);
}

static int exec_simple(PGconn *conn, const char *sql, char *err,
		       size_t errlen)
{
	PGresult *r = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    st != PGRES_EMPTY_QUERY) {
		result_fail(r, conn, err, errlen);
		return -1;
	}
	PQclear(r);
	return 0;
}

/*
 * A revision generated from a model writes the model's deparsed text; the
 * server deparses that text differently again for some expressions (an IN
 * list on varchar: ARRAY[...]::text[] becomes ARRAY[...::text, ...]), so a
 * database built from the revision would never compare equal to the model.
 * Here every check and exclusion constraint, index, default and generation
 * expression of the scratch schema is made once more from its own
 * deparsed text (copies under temporary names; defaults in place), read
 * back, and kept as the object's alternative text where it differs.  Best
 * effort: if anything fails, the model simply has no alternatives.
 */
static void settle(PGconn *conn, const char *scratch, const char *qs,
		   const char *exclude, struct migrate_diff_schema *m)
{
	struct migrate_diff_schema m2 = {0};
	char *script = NULL, err[256], name[64];
	size_t len = 0;
	FILE *f = open_memstream(&script, &len);
	bool ok;

	if (!f)
		return;
	for (int ti = 0; ti < m->ntables; ti++) {
		const struct migrate_diff_table *t = &m->tables[ti];

		for (int k = 0; k < t->ncons; k++)
			if (t->cons[k].type == 'c' || t->cons[k].type == 'x')
				fprintf(f, "ALTER TABLE %s.%s ADD CONSTRAINT "
					   "convd_settle_c%d_%d %s;\n",
					qs, t->qname, ti, k, t->cons[k].def);
		for (int k = 0; k < t->nidx; k++)
			fprintf(f, "CREATE %sINDEX convd_settle_i%d_%d ON "
				"%s.%s USING %s;\n",
				t->idx[k].unique ? "UNIQUE " : "", ti, k, qs,
				t->qname, t->idx[k].tail);
		for (int k = 0; k < t->ncols; k++) {
			const struct migrate_diff_column *c = &t->cols[k];

			if (c->generated)
				fprintf(f, "ALTER TABLE %s.%s ADD COLUMN "
					   "convd_settle_g%d_%d %s GENERATED "
					   "ALWAYS AS (%s) STORED;\n",
					qs, t->qname, ti, k, c->type,
					c->generated);
			else if (c->def)
				fprintf(f, "ALTER TABLE %s.%s ALTER COLUMN %s "
					   "SET DEFAULT %s;\n",
					qs, t->qname, c->qname, c->def);
		}
	}
	if (fclose(f) != 0 || !script) {
		free(script);
		return;
	}
	if (exec_simple(conn, "SAVEPOINT convd_settle", err, sizeof(err)) < 0) {
		free(script);
		return;
	}
	ok = exec_simple(conn, script, err, sizeof(err)) == 0 &&
	     load_schema(conn, scratch, exclude, &m2, err, sizeof(err)) == 0;
	free(script);
	for (int ti = 0; ok && ti < m->ntables; ti++) {
		struct migrate_diff_table *t = &m->tables[ti];
		const struct migrate_diff_table *t2 =
			migrate_diff_schema_table(&m2, t->name);

		for (int k = 0; t2 && k < t->ncons; k++) {
			snprintf(name, sizeof(name), "convd_settle_c%d_%d", ti,
				 k);
			for (int j = 0; j < t2->ncons; j++)
				if (strcmp(t2->cons[j].name, name) == 0 &&
				    strcmp(t2->cons[j].def,
					   t->cons[k].def) != 0)
					t->cons[k].alt_def =
						strdup(t2->cons[j].def);
		}
		for (int k = 0; t2 && k < t->nidx; k++) {
			snprintf(name, sizeof(name), "convd_settle_i%d_%d", ti,
				 k);
			for (int j = 0; j < t2->nidx; j++)
				if (strcmp(t2->idx[j].name, name) == 0 &&
				    strcmp(t2->idx[j].tail,
					   t->idx[k].tail) != 0)
					t->idx[k].alt_tail =
						strdup(t2->idx[j].tail);
		}
		for (int k = 0; t2 && k < t->ncols; k++) {
			struct migrate_diff_column *c = &t->cols[k];

			snprintf(name, sizeof(name), "convd_settle_g%d_%d", ti,
				 k);
			for (int j = 0; j < t2->ncols; j++) {
				const struct migrate_diff_column *c2 =
					&t2->cols[j];

				if (c->generated && c2->generated &&
				    strcmp(c2->name, name) == 0 &&
				    strcmp(c2->generated, c->generated) != 0)
					c->alt_generated = strdup(c2->generated);
				if (!c->generated && c->def && c2->def &&
				    strcmp(c2->name, c->name) == 0 &&
				    strcmp(c2->def, c->def) != 0)
					c->alt_def = strdup(c2->def);
			}
		}
	}
	migrate_diff_schema_free(&m2);
	if (exec_simple(conn, "ROLLBACK TO SAVEPOINT convd_settle", err,
			sizeof(err)) == 0)
		exec_simple(conn, "RELEASE SAVEPOINT convd_settle", err,
			    sizeof(err));
}

int migrate_catalog_load_sql(PGconn *conn, const char *sql, const char *nsp,
			     const char *exclude,
			     struct migrate_diff_schema *out, char *err,
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
	if (asprintf(&path, "%s, %s", qs, qn) < 0)
		path = NULL;
	else if (asprintf(&create, "CREATE SCHEMA %s", qs) < 0)
		create = NULL;
	if (!path || !create) {
		errbuf_set(err, errlen, "out of memory");
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
	if (load_schema(conn, scratch, exclude, out, err, errlen) < 0)
		goto rollback;
	settle(conn, scratch, qs, exclude, out);
	rc = 0;
rollback:
	if (exec_simple(conn, "ROLLBACK TO SAVEPOINT convd_scratch", err,
			errlen) < 0 ||
	    exec_simple(conn, "RELEASE SAVEPOINT convd_scratch", err,
			errlen) < 0) {
		if (rc == 0)
			migrate_diff_schema_free(out);
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

static bool alloc_cols(void *dst, int n)
{
	struct migrate_sql_cols *out = dst;

	out->v = calloc((size_t)n + 1, sizeof(*out->v));
	return out->v != NULL;
}

static int store_col(struct row *w, void *dst)
{
	struct migrate_sql_cols *out = dst;
	struct migrate_sql_col *c = &out->v[out->n++];

	c->relid = oidval(w, 0);
	c->attnum = (int)intval(w, 1);
	c->table = str(w, 2);
	c->column = str(w, 3);
	c->typid = oidval(w, 4);
	c->typmod = (int32_t)intval(w, 5);
	c->type = str(w, 6);
	return 0;
}

int migrate_catalog_columns(PGconn *conn, struct migrate_sql_cols *out,
			    char *err,
			    size_t errlen)
{
	static const struct loader guard = {q_guard, 0, alloc_cols, store_col};

	out->v = NULL;
	out->n = 0;
	if (load_rows(conn, &guard, NULL, out, err, errlen) < 0) {
		migrate_sql_cols_free(out);
		return -1;
	}
	return 0;
}

int migrate_catalog_current_schema(PGconn *conn, char **out, char *err,
				   size_t errlen)
{
	PGresult *r = run(conn, "SELECT current_schema()", 0, NULL, err,
			  errlen);

	*out = NULL;
	if (!r)
		return -1;
	if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
		PQclear(r);
		errbuf_set(err, errlen,
			   "no schema to work in: the search_path names no "
			   "existing schema");
		return -1;
	}
	*out = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (!*out) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}
