/*
 * migrate_diff.c - differences between two schemas, and the SQL that
 * turns one into the other (pure).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf */
#endif

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate_diff.h"
#include "migrate_sql.h"

/* ------------------------------------------------------------- schemas */

static void column_free(struct migrate_diff_column *c)
{
	free(c->name);
	free(c->qname);
	free(c->type);
	free(c->typname);
	free(c->collation);
	free(c->def);
	free(c->generated);
	free(c->alt_def);
	free(c->alt_generated);
}

void migrate_diff_schema_free(struct migrate_diff_schema *s)
{
	for (int i = 0; i < s->ntables; i++) {
		struct migrate_diff_table *t = &s->tables[i];

		for (int k = 0; k < t->ncols; k++)
			column_free(&t->cols[k]);
		for (int k = 0; k < t->ncons; k++) {
			free(t->cons[k].name);
			free(t->cons[k].qname);
			free(t->cons[k].def);
			free(t->cons[k].alt_def);
		}
		for (int k = 0; k < t->nidx; k++) {
			free(t->idx[k].name);
			free(t->idx[k].qname);
			free(t->idx[k].tail);
			free(t->idx[k].alt_tail);
		}
		free(t->name);
		free(t->qname);
		free(t->cols);
		free(t->cons);
		free(t->idx);
	}
	for (int i = 0; i < s->nenums; i++) {
		struct migrate_diff_enum *e = &s->enums[i];

		for (int k = 0; k < e->nlabels; k++) {
			free(e->labels[k]);
			free(e->qlabels[k]);
		}
		free(e->labels);
		free(e->qlabels);
		free(e->name);
		free(e->qname);
	}
	for (int i = 0; i < s->nseqs; i++) {
		struct migrate_diff_sequence *q = &s->seqs[i];

		free(q->name);
		free(q->qname);
		free(q->type);
		free(q->owner_table);
		free(q->owner_qtable);
		free(q->owner_column);
		free(q->owner_qcolumn);
	}
	free(s->tables);
	free(s->enums);
	free(s->seqs);
	memset(s, 0, sizeof(*s));
}

/*
 * Tables, columns, constraints, indexes, enums and sequences all start
 * with their name, so that one comparator sorts them and one loop finds
 * them by name.
 */
static_assert(offsetof(struct migrate_diff_table, name) == 0, "name first");
static_assert(offsetof(struct migrate_diff_column, name) == 0, "name first");
static_assert(offsetof(struct migrate_diff_constraint, name) == 0,
	      "name first");
static_assert(offsetof(struct migrate_diff_index, name) == 0, "name first");
static_assert(offsetof(struct migrate_diff_enum, name) == 0, "name first");
static_assert(offsetof(struct migrate_diff_sequence, name) == 0, "name first");

static const char *name_of(const void *obj)
{
	return *(char *const *)obj;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(name_of(a), name_of(b));
}

static int cmp_col(const void *a, const void *b)
{
	return ((const struct migrate_diff_column *)a)->attnum -
	       ((const struct migrate_diff_column *)b)->attnum;
}

/* qsort for the n elements of size size at v (n may be 0). */
static void sort(void *v, int n, size_t size,
		 int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(v, (size_t)n, size, cmp);
}

void migrate_diff_schema_sort(struct migrate_diff_schema *s)
{
	sort(s->tables, s->ntables, sizeof(*s->tables), cmp_name);
	for (int i = 0; i < s->ntables; i++) {
		struct migrate_diff_table *t = &s->tables[i];

		sort(t->cols, t->ncols, sizeof(*t->cols), cmp_col);
		sort(t->cons, t->ncons, sizeof(*t->cons), cmp_name);
		sort(t->idx, t->nidx, sizeof(*t->idx), cmp_name);
	}
	sort(s->enums, s->nenums, sizeof(*s->enums), cmp_name);
	sort(s->seqs, s->nseqs, sizeof(*s->seqs), cmp_name);
}

/* The first of the n objects of size size at v named name, or NULL. */
static const void *find_named(const void *v, int n, size_t size,
			      const char *name)
{
	for (int i = 0; i < n; i++) {
		const void *obj = (const char *)v + (size_t)i * size;

		if (strcmp(name_of(obj), name) == 0)
			return obj;
	}
	return NULL;
}

const struct migrate_diff_table *
migrate_diff_schema_table(const struct migrate_diff_schema *s,
			  const char *name)
{
	return find_named(s->tables, s->ntables, sizeof(*s->tables), name);
}

/* The finders of a table's parts take a NULL table (none there). */
static const struct migrate_diff_column *
find_col(const struct migrate_diff_table *t, const char *name)
{
	return t ? find_named(t->cols, t->ncols, sizeof(*t->cols), name)
		 : NULL;
}

static const struct migrate_diff_constraint *
find_con(const struct migrate_diff_table *t, const char *name)
{
	return t ? find_named(t->cons, t->ncons, sizeof(*t->cons), name)
		 : NULL;
}

static const struct migrate_diff_index *
find_idx(const struct migrate_diff_table *t, const char *name)
{
	return t ? find_named(t->idx, t->nidx, sizeof(*t->idx), name) : NULL;
}

static const struct migrate_diff_enum *
find_enum(const struct migrate_diff_schema *s, const char *name)
{
	return find_named(s->enums, s->nenums, sizeof(*s->enums), name);
}

static const struct migrate_diff_sequence *
find_seq(const struct migrate_diff_schema *s, const char *name)
{
	return find_named(s->seqs, s->nseqs, sizeof(*s->seqs), name);
}

/* --------------------------------------------------------------- steps */

void migrate_diff_free(struct migrate_diff *d)
{
	for (int i = 0; i < d->n; i++) {
		free(d->v[i].what);
		free(d->v[i].sql);
		free(d->v[i].warning);
	}
	free(d->v);
	memset(d, 0, sizeof(*d));
}

struct gen {
	const struct migrate_diff_schema *from, *to;
	unsigned flags;
	struct migrate_diff *out;
	bool oom;
};

static char *CONVD_PRINTF(2, 3) fmt(struct gen *g, const char *f, ...)
{
	va_list ap;
	char *s;

	if (g->oom)
		return NULL;
	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0) {
		s = NULL;
		g->oom = true;
	}
	va_end(ap);
	return s;
}

/* Makes room for one more step; false when out of memory. */
static bool reserve(struct migrate_diff *d)
{
	int cap;
	struct migrate_diff_step *nv;

	if (d->n < d->cap)
		return true;
	cap = d->cap ? d->cap * 2 : 16;
	nv = realloc(d->v, sizeof(*nv) * (size_t)cap);
	if (!nv)
		return false;
	d->v = nv;
	d->cap = cap;
	return true;
}

/* Adds a step; takes the strings (what and warning may be NULL). */
static void step(struct gen *g, char *what, char *sql, bool destructive,
		 char *warning)
{
	struct migrate_diff *d = g->out;

	if (g->oom || !sql || !reserve(d)) {
		g->oom = true;
		free(what);
		free(sql);
		free(warning);
		return;
	}
	d->v[d->n].what = what;
	d->v[d->n].sql = sql;
	d->v[d->n].destructive = destructive;
	d->v[d->n].warning = warning;
	d->n++;
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Equal texts, either of them taken in its alternative form too. */
static bool text_same(const char *a, const char *a_alt, const char *b,
		      const char *b_alt)
{
	return str_eq(a, b) || (a_alt && str_eq(a_alt, b)) ||
	       (b_alt && str_eq(a, b_alt));
}

/* Whether the table of `from` takes part (MIGRATE_DIFF_ONLY_TO_TABLES). */
static bool from_table_compared(const struct gen *g,
				const struct migrate_diff_table *t)
{
	return !(g->flags & MIGRATE_DIFF_ONLY_TO_TABLES) ||
	       migrate_diff_schema_table(g->to, t->name) != NULL;
}

/*
 * Steps through the tables kept (in both schemas) in the order of schema
 * a: the next table of a from index *i on that b has too, with b's table
 * of that name in *b_table; NULL after the last.
 */
static const struct migrate_diff_table *
next_kept(const struct migrate_diff_schema *a,
	  const struct migrate_diff_schema *b, int *i,
	  const struct migrate_diff_table **b_table)
{
	while (*i < a->ntables) {
		const struct migrate_diff_table *t = &a->tables[(*i)++];

		*b_table = migrate_diff_schema_table(b, t->name);
		if (*b_table)
			return t;
	}
	return NULL;
}

static char *column_def(struct gen *g, const struct migrate_diff_column *c)
{
	const char *ident = c->identity == 'a'	 ? " GENERATED ALWAYS AS IDENTITY"
			    : c->identity == 'd' ? " GENERATED BY DEFAULT AS "
						   "IDENTITY"
						 : "";
	char *gen = NULL, *def = NULL, *coll = NULL, *s;

	if (c->generated)
		gen = fmt(g, " GENERATED ALWAYS AS (%s) STORED", c->generated);
	if (c->def)
		def = fmt(g, " DEFAULT %s", c->def);
	if (c->collation)
		coll = fmt(g, " COLLATE %s", c->collation);
	s = fmt(g, "%s %s%s%s%s%s%s", c->qname, c->type, coll ? coll : "",
		gen ? gen : "", ident, def ? def : "",
		c->notnull && !c->identity ? " NOT NULL" : "");
	free(gen);
	free(def);
	free(coll);
	return s;
}

static const char *con_kind(char type)
{
	switch (type) {
	case 'p':
		return "primary key";
	case 'u':
		return "unique constraint";
	case 'c':
		return "check constraint";
	case 'f':
		return "foreign key";
	case 'x':
		return "exclusion constraint";
	}
	return "constraint";
}

/* Whether constraint a (may be NULL) is the same as b. */
static bool con_same(const struct migrate_diff_constraint *a,
		     const struct migrate_diff_constraint *b)
{
	return a && a->type == b->type &&
	       text_same(a->def, a->alt_def, b->def, b->alt_def);
}

/* Whether index a (may be NULL) is the same as b. */
static bool idx_same(const struct migrate_diff_index *a,
		     const struct migrate_diff_index *b)
{
	return a && a->unique == b->unique &&
	       text_same(a->tail, a->alt_tail, b->tail, b->alt_tail);
}

/* P1/P2: constraints of `from` that go away or change. */
static void drop_constraints(struct gen *g, bool fks)
{
	for (int i = 0; i < g->from->ntables; i++) {
		const struct migrate_diff_table *ft = &g->from->tables[i];
		const struct migrate_diff_table *tt =
			migrate_diff_schema_table(g->to, ft->name);

		if (!from_table_compared(g, ft))
			continue;
		if (!tt && !fks)
			continue; /* goes with its table */
		for (int k = 0; k < ft->ncons; k++) {
			const struct migrate_diff_constraint *fc = &ft->cons[k];
			const struct migrate_diff_constraint *tc =
				find_con(tt, fc->name);
			char *what = NULL;

			if ((fc->type == 'f') != fks)
				continue;
			if (con_same(tc, fc))
				continue;
			if (!tt)
				what = NULL; /* reported as the table */
			else if (tc)
				what = fmt(g, "~ %s %s on %s: %s -> %s",
					   con_kind(fc->type), fc->name,
					   ft->name, fc->def, tc->def);
			else
				what = fmt(g, "- %s %s on %s: %s",
					   con_kind(fc->type), fc->name,
					   ft->name, fc->def);
			step(g, what,
			     fmt(g, "ALTER TABLE %s DROP CONSTRAINT %s",
				 ft->qname, fc->qname),
			     false, NULL);
		}
	}
}

/* P3: indexes of `from` that go away or change. */
static void drop_indexes(struct gen *g)
{
	const struct migrate_diff_table *ft, *tt;

	for (int i = 0; (ft = next_kept(g->from, g->to, &i, &tt)) != NULL;) {
		for (int k = 0; k < ft->nidx; k++) {
			const struct migrate_diff_index *fi = &ft->idx[k];
			const struct migrate_diff_index *ti =
				find_idx(tt, fi->name);
			char *what;

			if (idx_same(ti, fi))
				continue;
			if (ti)
				what = fmt(g, "~ index %s on %s: %s%s -> %s%s",
					   fi->name, ft->name,
					   fi->unique ? "UNIQUE " : "",
					   fi->tail,
					   ti->unique ? "UNIQUE " : "",
					   ti->tail);
			else
				what = fmt(g, "- index %s on %s: %s%s",
					   fi->name, ft->name,
					   fi->unique ? "UNIQUE " : "",
					   fi->tail);
			step(g, what, fmt(g, "DROP INDEX %s", fi->qname), false,
			     NULL);
		}
	}
}

static char *label_list(struct gen *g, const struct migrate_diff_enum *e,
			bool quoted)
{
	size_t len = 1;
	char *s, *p;

	for (int i = 0; i < e->nlabels; i++)
		len += strlen(quoted ? e->qlabels[i] : e->labels[i]) + 2;
	s = malloc(len);
	if (!s) {
		g->oom = true;
		return NULL;
	}
	p = s;
	*p = '\0';
	for (int i = 0; i < e->nlabels; i++)
		p += sprintf(p, "%s%s", i ? ", " : "",
			     quoted ? e->qlabels[i] : e->labels[i]);
	return s;
}

static int label_index(const struct migrate_diff_enum *e, const char *label)
{
	for (int i = 0; i < e->nlabels; i++)
		if (strcmp(e->labels[i], label) == 0)
			return i;
	return -1;
}

/* Whether `to` only adds labels to `from`, keeping their order. */
static bool enum_only_adds(const struct migrate_diff_enum *from,
			   const struct migrate_diff_enum *to)
{
	int last = -1;

	for (int i = 0; i < from->nlabels; i++) {
		int k = label_index(to, from->labels[i]);

		if (k < 0 || k < last)
			return false;
		last = k;
	}
	return true;
}

/* Columns of kept tables that use enum `name` in both schemas. */
static void enum_recreate(struct gen *g, const struct migrate_diff_enum *fe,
			  const struct migrate_diff_enum *te, bool removes)
{
	char *tmpname;
	char *list = label_list(g, te, true);
	const struct migrate_diff_table *ft, *tt;

	/* The old type is renamed, so that its name can be reused; it is
	 * dropped with the other types at the end. */
	tmpname = fmt(g, "%s__old", fe->name);
	if (!tmpname || !list) {
		g->oom = true;
		free(tmpname);
		free(list);
		return;
	}
	step(g, NULL,
	     fmt(g, "ALTER TYPE %s RENAME TO \"%s\"", fe->qname, tmpname),
	     false, NULL);
	step(g, NULL, fmt(g, "CREATE TYPE %s AS ENUM (%s)", te->qname, list),
	     false, NULL);
	for (int i = 0; (ft = next_kept(g->from, g->to, &i, &tt)) != NULL;) {
		for (int k = 0; k < ft->ncols; k++) {
			const struct migrate_diff_column *fc = &ft->cols[k];
			const struct migrate_diff_column *tc =
				find_col(tt, fc->name);

			if (!fc->typname || strcmp(fc->typname, fe->name) != 0)
				continue;
			if (!tc || !tc->typname ||
			    strcmp(tc->typname, te->name) != 0 ||
			    tc->is_array != fc->is_array)
				continue;
			if (fc->def)
				step(g, NULL,
				     fmt(g,
					 "ALTER TABLE %s ALTER COLUMN %s DROP "
					 "DEFAULT",
					 ft->qname, fc->qname),
				     false, NULL);
			step(g, NULL,
			     fmt(g,
				 "ALTER TABLE %s ALTER COLUMN %s TYPE %s "
				 "USING %s::text%s::%s",
				 ft->qname, fc->qname, fc->type, fc->qname,
				 fc->is_array ? "[]" : "", fc->type),
			     removes,
			     removes ? fmt(g,
					   "fails if a row of %s.%s holds a "
					   "removed value",
					   ft->name, fc->name)
				     : NULL);
			if (fc->def)
				step(g, NULL,
				     fmt(g,
					 "ALTER TABLE %s ALTER COLUMN %s SET "
					 "DEFAULT %s",
					 ft->qname, fc->qname, fc->def),
				     false, NULL);
		}
	}
	free(tmpname);
	free(list);
}

/* P4: enum types. */
static void enums_create_alter(struct gen *g)
{
	for (int i = 0; i < g->to->nenums; i++) {
		const struct migrate_diff_enum *te = &g->to->enums[i];
		const struct migrate_diff_enum *fe = find_enum(g->from,
							       te->name);
		char *a, *b;

		if (!fe) {
			char *list = label_list(g, te, true);
			char *raw = label_list(g, te, false);

			step(g, fmt(g, "+ enum %s (%s)", te->name, raw),
			     fmt(g, "CREATE TYPE %s AS ENUM (%s)", te->qname,
				 list ? list : ""),
			     false, NULL);
			free(list);
			free(raw);
			continue;
		}
		a = label_list(g, fe, false);
		b = label_list(g, te, false);
		if (!a || !b || strcmp(a, b) == 0) {
			free(a);
			free(b);
			continue;
		}
		if (enum_only_adds(fe, te)) {
			bool first = true;

			for (int k = 0; k < te->nlabels; k++) {
				char *sql;

				if (label_index(fe, te->labels[k]) >= 0)
					continue;
				if (k > 0)
					sql = fmt(g,
						  "ALTER TYPE %s ADD VALUE %s "
						  "AFTER %s",
						  te->qname, te->qlabels[k],
						  te->qlabels[k - 1]);
				else if (te->nlabels > 1)
					sql = fmt(g,
						  "ALTER TYPE %s ADD VALUE %s "
						  "BEFORE %s",
						  te->qname, te->qlabels[k],
						  te->qlabels[k + 1]);
				else
					sql = fmt(g,
						  "ALTER TYPE %s ADD VALUE %s",
						  te->qname, te->qlabels[k]);
				step(g,
				     first ? fmt(g, "~ enum %s: (%s) -> (%s)",
						 te->name, a, b)
					   : NULL,
				     sql, false,
				     fmt(g, "the new value cannot be used "
					    "before this transaction commits"));
				first = false;
			}
		} else {
			bool removes = false;

			for (int k = 0; k < fe->nlabels; k++)
				if (label_index(te, fe->labels[k]) < 0)
					removes = true;
			int first = g->out->n;
			char *what = fmt(g, "~ enum %s: (%s) -> (%s)%s",
					 te->name, a, b,
					 removes ? " (values removed)"
						 : " (values reordered)");

			enum_recreate(g, fe, te, removes);
			/* The first step (the rename) carries the
			 * description. */
			if (!g->oom && first < g->out->n &&
			    !g->out->v[first].what) {
				g->out->v[first].what = what;
				what = NULL;
			}
			free(what);
		}
		free(a);
		free(b);
	}
}

static char *seq_params(struct gen *g, const struct migrate_diff_sequence *q)
{
	return fmt(g,
		   "AS %s INCREMENT BY %" PRId64 " MINVALUE %" PRId64
		   " MAXVALUE %" PRId64 " START WITH %" PRId64
		   " CACHE %" PRId64 "%s",
		   q->type, q->inc, q->min, q->max, q->start, q->cache,
		   q->cycle ? " CYCLE" : " NO CYCLE");
}

/* P5: sequences. */
static void seqs_create_alter(struct gen *g)
{
	for (int i = 0; i < g->to->nseqs; i++) {
		const struct migrate_diff_sequence *tq = &g->to->seqs[i];
		const struct migrate_diff_sequence *fq = find_seq(g->from,
								  tq->name);
		char *p;

		if (!fq) {
			p = seq_params(g, tq);
			step(g, fmt(g, "+ sequence %s", tq->name),
			     fmt(g, "CREATE SEQUENCE %s %s", tq->qname,
				 p ? p : ""),
			     false, NULL);
			free(p);
			continue;
		}
		if (str_eq(fq->type, tq->type) && fq->inc == tq->inc &&
		    fq->min == tq->min && fq->max == tq->max &&
		    fq->start == tq->start && fq->cache == tq->cache &&
		    fq->cycle == tq->cycle)
			continue;
		p = seq_params(g, tq);
		step(g,
		     fmt(g,
			 "~ sequence %s: %s increment %" PRId64
			 " min %" PRId64 " max %" PRId64 " start %" PRId64
			 " cache %" PRId64 "%s -> %s increment %" PRId64
			 " min %" PRId64 " max %" PRId64 " start %" PRId64
			 " cache %" PRId64 "%s",
			 tq->name, fq->type, fq->inc, fq->min, fq->max,
			 fq->start, fq->cache, fq->cycle ? " cycle" : "",
			 tq->type, tq->inc, tq->min, tq->max, tq->start,
			 tq->cache, tq->cycle ? " cycle" : ""),
		     fmt(g, "ALTER SEQUENCE %s %s", tq->qname, p ? p : ""),
		     false, NULL);
		free(p);
	}
}

/* P6: new tables. */
static void tables_create(struct gen *g)
{
	for (int i = 0; i < g->to->ntables; i++) {
		const struct migrate_diff_table *tt = &g->to->tables[i];
		size_t len = 0, o = 0;
		char **defs;
		char *sql;

		if (migrate_diff_schema_table(g->from, tt->name))
			continue;
		defs = calloc((size_t)tt->ncols + 1, sizeof(char *));
		if (!defs) {
			g->oom = true;
			return;
		}
		for (int k = 0; k < tt->ncols; k++) {
			defs[k] = column_def(g, &tt->cols[k]);
			len += (defs[k] ? strlen(defs[k]) : 0) + 8;
		}
		len += strlen(tt->qname) + 32;
		sql = g->oom ? NULL : malloc(len);
		if (sql) {
			o = (size_t)sprintf(sql, "CREATE TABLE %s (",
					    tt->qname);
			for (int k = 0; k < tt->ncols; k++)
				o += (size_t)sprintf(sql + o, "%s\n    %s",
						     k ? "," : "", defs[k]);
			sprintf(sql + o, "%s)", tt->ncols ? "\n" : "");
		} else {
			g->oom = true;
		}
		for (int k = 0; k < tt->ncols; k++)
			free(defs[k]);
		free(defs);
		step(g, fmt(g, "+ table %s", tt->name), sql, false, NULL);
	}
}

static const char *identity_name(char c)
{
	return c == 'a' ? "ALWAYS" : c == 'd' ? "BY DEFAULT" : "none";
}

/* P7: new and changed columns of kept tables. */
static void columns_add_alter(struct gen *g)
{
	const struct migrate_diff_table *ft, *tt;

	for (int i = 0; (tt = next_kept(g->to, g->from, &i, &ft)) != NULL;) {
		for (int k = 0; k < tt->ncols; k++) {
			const struct migrate_diff_column *tc = &tt->cols[k];
			const struct migrate_diff_column *fc =
				find_col(ft, tc->name);
			const char *T = tt->qname, *C = tc->qname;
			bool type_changes, def_changes;

			if (!fc) {
				char *def = column_def(g, tc);

				step(g,
				     fmt(g, "+ column %s.%s %s", tt->name,
					 tc->name, tc->type),
				     fmt(g, "ALTER TABLE %s ADD COLUMN %s", T,
					 def ? def : ""),
				     false,
				     tc->notnull && !tc->def && !tc->identity &&
						     !tc->generated
					     ? fmt(g, "NOT NULL without a "
						   "default: fails if %s has "
						   "rows", tt->name)
					     : NULL);
				free(def);
				continue;
			}
			if (!text_same(fc->generated, fc->alt_generated,
				       tc->generated, tc->alt_generated)) {
				char *def = column_def(g, tc);

				if (fc->generated && !tc->generated &&
				    str_eq(fc->type, tc->type)) {
					step(g,
					     fmt(g,
						 "~ column %s.%s: generated "
						 "(%s) -> stored values",
						 tt->name, tc->name,
						 fc->generated),
					     fmt(g,
						 "ALTER TABLE %s ALTER COLUMN "
						 "%s DROP EXPRESSION",
						 T, C),
					     false, NULL);
					free(def);
				} else {
					step(g,
					     fmt(g,
						 "~ column %s.%s: generated %s "
						 "-> %s (dropped and added)",
						 tt->name, tc->name,
						 fc->generated ? fc->generated
							       : "no",
						 tc->generated ? tc->generated
							       : "no"),
					     fmt(g, "ALTER TABLE %s DROP "
						 "COLUMN %s", T, C),
					     !fc->generated,
					     !fc->generated
						     ? fmt(g, "the values of "
							   "%s.%s are lost",
							   tt->name, tc->name)
						     : NULL);
					step(g, NULL,
					     fmt(g,
						 "ALTER TABLE %s ADD COLUMN %s",
						 T, def ? def : ""),
					     false, NULL);
					free(def);
					continue;
				}
				/* now a plain column: the rest compares as
				 * for one */
			}
			type_changes = !str_eq(fc->type, tc->type) ||
				       !str_eq(fc->collation, tc->collation);
			def_changes = !text_same(fc->def, fc->alt_def, tc->def,
						 tc->alt_def);
			if (fc->identity && fc->identity != tc->identity &&
			    !tc->identity)
				step(g,
				     fmt(g,
					 "~ column %s.%s: identity %s -> "
					 "none",
					 tt->name, tc->name,
					 identity_name(fc->identity)),
				     fmt(g,
					 "ALTER TABLE %s ALTER COLUMN %s DROP "
					 "IDENTITY",
					 T, C),
				     false, NULL);
			if (fc->def && (type_changes || def_changes))
				step(g,
				     !def_changes || tc->def
					     ? NULL
					     : fmt(g,
						   "~ column %s.%s: default %s "
						   "-> none",
						   tt->name, tc->name, fc->def),
				     fmt(g,
					 "ALTER TABLE %s ALTER COLUMN %s DROP "
					 "DEFAULT",
					 T, C),
				     false, NULL);
			if (type_changes && !tc->generated) {
				bool safe = migrate_sql_type_change_safe(
					fc->typid, fc->typmod, tc->typid,
					tc->typmod);
				char *coll = tc->collation
						     ? fmt(g, " COLLATE %s",
							   tc->collation)
						     : NULL;

				if (str_eq(fc->type, tc->type))
					safe = true; /* collation only */
				step(g,
				     fmt(g, "~ column %s.%s: type %s%s%s -> "
					 "%s%s%s", tt->name, tc->name, fc->type,
					 fc->collation ? " COLLATE " : "",
					 fc->collation ? fc->collation : "",
					 tc->type,
					 tc->collation ? " COLLATE " : "",
					 tc->collation ? tc->collation : ""),
				     fmt(g,
					 "ALTER TABLE %s ALTER COLUMN %s TYPE "
					 "%s%s USING %s::%s",
					 T, C, tc->type, coll ? coll : "", C,
					 tc->type),
				     !safe,
				     !safe ? fmt(g,
						 "narrows %s.%s: values that "
						 "do not fit make it fail or "
						 "are changed",
						 tt->name, tc->name)
					   : NULL);
				free(coll);
			}
			if (tc->def && (type_changes || def_changes))
				step(g,
				     def_changes
					     ? fmt(g,
						   "~ column %s.%s: default %s "
						   "-> %s",
						   tt->name, tc->name,
						   fc->def ? fc->def : "none",
						   tc->def)
					     : NULL,
				     fmt(g,
					 "ALTER TABLE %s ALTER COLUMN %s SET "
					 "DEFAULT %s",
					 T, C, tc->def),
				     false, NULL);
			if (tc->identity && fc->identity != tc->identity)
				step(g,
				     fmt(g,
					 "~ column %s.%s: identity %s -> %s",
					 tt->name, tc->name,
					 identity_name(fc->identity),
					 identity_name(tc->identity)),
				     fc->identity
					     ? fmt(g, "ALTER TABLE %s ALTER "
						   "COLUMN %s SET GENERATED %s",
						   T, C,
						   identity_name(tc->identity))
					     : fmt(g, "ALTER TABLE %s ALTER "
						   "COLUMN %s ADD GENERATED "
						   "%s AS IDENTITY", T, C,
						   identity_name(tc->identity)),
				     false, NULL);
			if (fc->notnull != tc->notnull &&
			    !(tc->identity && tc->notnull))
				step(g,
				     fmt(g, "~ column %s.%s: %s -> %s",
					 tt->name, tc->name,
					 fc->notnull ? "NOT NULL" : "NULL",
					 tc->notnull ? "NOT NULL" : "NULL"),
				     fmt(g,
					 "ALTER TABLE %s ALTER COLUMN %s %s "
					 "NOT NULL",
					 T, C, tc->notnull ? "SET" : "DROP"),
				     false,
				     tc->notnull
					     ? fmt(g,
						   "fails if %s.%s holds NULLs",
						   tt->name, tc->name)
					     : NULL);
		}
	}
}

/* P8: OWNED BY of sequences. */
static void seqs_owner(struct gen *g)
{
	for (int i = 0; i < g->to->nseqs; i++) {
		const struct migrate_diff_sequence *tq = &g->to->seqs[i];
		const struct migrate_diff_sequence *fq = find_seq(g->from,
								  tq->name);

		if (fq && str_eq(fq->owner_table, tq->owner_table) &&
		    str_eq(fq->owner_column, tq->owner_column))
			continue;
		if (!fq && !tq->owner_table)
			continue;
		if (tq->owner_table)
			step(g,
			     fq ? fmt(g, "~ sequence %s: owned by %s%s%s -> %s.%s",
				      tq->name,
				      fq->owner_table ? fq->owner_table
						      : "none",
				      fq->owner_table ? "." : "",
				      fq->owner_table ? fq->owner_column : "",
				      tq->owner_table, tq->owner_column)
				: NULL,
			     fmt(g, "ALTER SEQUENCE %s OWNED BY %s.%s",
				 tq->qname, tq->owner_qtable,
				 tq->owner_qcolumn),
			     false, NULL);
		else
			step(g,
			     fmt(g, "~ sequence %s: owned by %s.%s -> none",
				 tq->name, fq->owner_table, fq->owner_column),
			     fmt(g, "ALTER SEQUENCE %s OWNED BY NONE",
				 tq->qname),
			     false, NULL);
	}
}

/* P9: constraints of `to` that are new or changed. */
static void add_constraints(struct gen *g, bool fks)
{
	for (int i = 0; i < g->to->ntables; i++) {
		const struct migrate_diff_table *tt = &g->to->tables[i];
		const struct migrate_diff_table *ft =
			migrate_diff_schema_table(g->from, tt->name);

		for (int k = 0; k < tt->ncons; k++) {
			const struct migrate_diff_constraint *tc = &tt->cons[k];
			const struct migrate_diff_constraint *fc =
				find_con(ft, tc->name);
			bool changed;

			if ((tc->type == 'f') != fks)
				continue;
			if (con_same(fc, tc))
				continue;
			changed = fc != NULL;
			step(g,
			     ft && !changed ? fmt(g, "+ %s %s on %s: %s",
						  con_kind(tc->type), tc->name,
						  tt->name, tc->def)
					    : NULL,
			     fmt(g, "ALTER TABLE %s ADD CONSTRAINT %s %s",
				 tt->qname, tc->qname, tc->def),
			     false,
			     ft && tc->type != 'f'
				     ? fmt(g, "fails if rows of %s violate it",
					   tt->name)
				     : NULL);
		}
	}
}

/* P10: indexes of `to` that are new or changed. */
static void create_indexes(struct gen *g)
{
	for (int i = 0; i < g->to->ntables; i++) {
		const struct migrate_diff_table *tt = &g->to->tables[i];
		const struct migrate_diff_table *ft =
			migrate_diff_schema_table(g->from, tt->name);

		for (int k = 0; k < tt->nidx; k++) {
			const struct migrate_diff_index *ti = &tt->idx[k];
			const struct migrate_diff_index *fi =
				find_idx(ft, ti->name);

			if (idx_same(fi, ti))
				continue;
			step(g,
			     ft && !fi ? fmt(g, "+ index %s on %s: %s%s",
					     ti->name, tt->name,
					     ti->unique ? "UNIQUE " : "",
					     ti->tail)
				       : NULL,
			     fmt(g, "CREATE %sINDEX %s ON %s USING %s",
				 ti->unique ? "UNIQUE " : "", ti->qname,
				 tt->qname, ti->tail),
			     false,
			     ti->unique && ft
				     ? fmt(g,
					   "fails if %s has duplicate values",
					   tt->name)
				     : NULL);
		}
	}
}

/* P11: columns that go away. */
static void drop_columns(struct gen *g)
{
	const struct migrate_diff_table *ft, *tt;

	for (int i = 0; (ft = next_kept(g->from, g->to, &i, &tt)) != NULL;) {
		for (int k = 0; k < ft->ncols; k++) {
			const struct migrate_diff_column *fc = &ft->cols[k];

			if (find_col(tt, fc->name))
				continue;
			step(g, fmt(g, "- column %s.%s", ft->name, fc->name),
			     fmt(g, "ALTER TABLE %s DROP COLUMN %s", ft->qname,
				 fc->qname),
			     !fc->generated,
			     fc->generated ? NULL
					   : fmt(g, "the values of %s.%s are "
						    "lost",
						 ft->name, fc->name));
		}
	}
}

/* P12: tables that go away. */
static void drop_tables(struct gen *g)
{
	for (int i = 0; i < g->from->ntables; i++) {
		const struct migrate_diff_table *ft = &g->from->tables[i];

		if (migrate_diff_schema_table(g->to, ft->name) ||
		    (g->flags & MIGRATE_DIFF_ONLY_TO_TABLES))
			continue;
		step(g, fmt(g, "- table %s", ft->name),
		     fmt(g, "DROP TABLE %s", ft->qname), true,
		     fmt(g, "the rows of %s are lost", ft->name));
	}
}

/* Whether the sequence goes away with a dropped table or column. */
static bool seq_dropped_with_owner(const struct gen *g,
				   const struct migrate_diff_sequence *q)
{
	const struct migrate_diff_table *tt;

	if (!q->owner_table)
		return false;
	tt = migrate_diff_schema_table(g->to, q->owner_table);
	return !tt || !find_col(tt, q->owner_column);
}

/* P13/P14: sequences and enums that go away. */
static void drop_seqs_enums(struct gen *g)
{
	for (int i = 0; i < g->from->nseqs; i++) {
		const struct migrate_diff_sequence *fq = &g->from->seqs[i];

		if (find_seq(g->to, fq->name))
			continue;
		if (g->flags & MIGRATE_DIFF_ONLY_TO_TABLES) {
			if (!fq->owner_table ||
			    !migrate_diff_schema_table(g->to, fq->owner_table))
				continue;
		}
		if (seq_dropped_with_owner(g, fq))
			continue;
		step(g, fmt(g, "- sequence %s", fq->name),
		     fmt(g, "DROP SEQUENCE %s", fq->qname), false, NULL);
	}
	for (int i = 0; i < g->from->nenums; i++) {
		const struct migrate_diff_enum *fe = &g->from->enums[i];
		const struct migrate_diff_enum *te = find_enum(g->to, fe->name);

		if (!te) {
			if (g->flags & MIGRATE_DIFF_ONLY_TO_TABLES)
				continue;
			step(g, fmt(g, "- enum %s", fe->name),
			     fmt(g, "DROP TYPE %s", fe->qname), false, NULL);
		} else if (!enum_only_adds(fe, te)) {
			step(g, NULL, fmt(g, "DROP TYPE \"%s__old\"", fe->name),
			     false, NULL);
		}
	}
}

int migrate_diff_compute(const struct migrate_diff_schema *from,
			 const struct migrate_diff_schema *to,
			 unsigned flags, struct migrate_diff *out)
{
	struct gen g = {from, to, flags, out, false};

	memset(out, 0, sizeof(*out));
	drop_constraints(&g, true);
	drop_constraints(&g, false);
	drop_indexes(&g);
	enums_create_alter(&g);
	seqs_create_alter(&g);
	tables_create(&g);
	columns_add_alter(&g);
	seqs_owner(&g);
	add_constraints(&g, false);
	add_constraints(&g, true);
	create_indexes(&g);
	drop_columns(&g);
	drop_tables(&g);
	drop_seqs_enums(&g);
	if (g.oom) {
		migrate_diff_free(out);
		return -1;
	}
	return 0;
}

static int sb_add(char **buf, size_t *len, size_t *cap, const char *s,
		  size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 1024;
		char *nb;

		while (c < *len + n + 1)
			c *= 2;
		nb = realloc(*buf, c);
		if (!nb)
			return -1;
		*buf = nb;
		*cap = c;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

/* "-- text" with line breaks turned into spaces. */
static int sb_comment(char **buf, size_t *len, size_t *cap,
		      const char *prefix, const char *text)
{
	int rc = sb_add(buf, len, cap, "-- ", 3);

	rc |= sb_add(buf, len, cap, prefix, strlen(prefix));
	for (const char *p = text; *p && rc == 0; p++) {
		char c = (*p == '\n' || *p == '\r') ? ' ' : *p;

		rc |= sb_add(buf, len, cap, &c, 1);
	}
	rc |= sb_add(buf, len, cap, "\n", 1);
	return rc;
}

char *migrate_diff_script(const struct migrate_diff *d)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = sb_add(&buf, &len, &cap, "", 0);

	for (int i = 0; i < d->n && rc == 0; i++) {
		const struct migrate_diff_step *s = &d->v[i];

		if (s->what)
			rc |= sb_comment(&buf, &len, &cap, "", s->what);
		if (s->destructive)
			rc |= sb_comment(&buf, &len, &cap, "DESTRUCTIVE: ",
					 s->warning ? s->warning
						    : "loses data");
		else if (s->warning)
			rc |= sb_comment(&buf, &len, &cap, "warning: ",
					 s->warning);
		rc |= sb_add(&buf, &len, &cap, s->sql, strlen(s->sql));
		rc |= sb_add(&buf, &len, &cap, ";\n", 2);
		if (i + 1 < d->n && d->v[i + 1].what)
			rc |= sb_add(&buf, &len, &cap, "\n", 1);
	}
	if (rc) {
		free(buf);
		return NULL;
	}
	return buf;
}
