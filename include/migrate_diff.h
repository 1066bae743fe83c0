/*
 * migrate_diff.h - a schema as data, the differences between two schemas
 * and the SQL that turns one into the other (pure; the catalog queries
 * that fill a schema are in migrate_catalog).
 *
 * Names are kept twice: raw (to match objects) and quoted by the server's
 * quote_ident (to write SQL).  Types, defaults, index and constraint
 * definitions are the server's own deparsed text, taken with the schema
 * on the search_path so that they carry no schema name; two schemas
 * deparsed by the same server compare as text.
 *
 * What is compared: tables; columns (type with length and precision,
 * collation, nullability, default, identity, generated expression);
 * indexes that back no constraint (unique, partial, expression, sort
 * order, method); primary key, unique, check, exclusion and foreign key
 * constraints; enum types and their values; sequences (type, start,
 * increment, bounds, cache, cycle, owner).  Not compared: column order,
 * renames (seen as a drop and an add), views, functions, triggers,
 * partitions, comments, privileges.
 */
#ifndef CONVD_MIGRATE_DIFF_H
#define CONVD_MIGRATE_DIFF_H

#include "common.h"

struct migrate_diff_column {
	char *name, *qname;
	int attnum;
	char *type;		/* format_type(), e.g. "character varying(50)" */
	uint32_t typid;
	int32_t typmod;
	char *typname;		/* raw type name (enums: to find users) */
	bool is_array;
	char *collation;	/* quoted, when not the type's default */
	bool notnull;
	char *def;		/* default expression or NULL */
	char identity;		/* 0, 'a' (always) or 'd' (by default) */
	char *generated;	/* stored generated expression or NULL */
	/* Schemas loaded from SQL (migrate_catalog_load_sql): the text the
	 * server shows for an object made again from its own deparsed text,
	 * where that differs (the server deparses "x IN ('a')" on varchar one way,
	 * and its own deparse another).  Either text compares equal. */
	char *alt_def, *alt_generated;
};

struct migrate_diff_constraint {
	char *name, *qname;
	char type;		/* p, u, c, f, x */
	char *def;		/* pg_get_constraintdef */
	char *alt_def;		/* see struct migrate_diff_column */
};

struct migrate_diff_index {
	char *name, *qname;
	bool unique;
	char *tail;		/* pg_get_indexdef after "... USING " */
	char *alt_tail;		/* see struct migrate_diff_column */
};

struct migrate_diff_table {
	char *name, *qname;
	struct migrate_diff_column *cols;
	int ncols;
	struct migrate_diff_constraint *cons;
	int ncons;
	struct migrate_diff_index *idx;
	int nidx;
};

struct migrate_diff_enum {
	char *name, *qname;
	char **labels, **qlabels;	/* raw / quote_literal */
	int nlabels;
};

struct migrate_diff_sequence {
	char *name, *qname;
	char *type;
	int64_t start, inc, min, max, cache;
	bool cycle;
	char *owner_table, *owner_qtable;	/* OWNED BY, or NULL */
	char *owner_column, *owner_qcolumn;
};

struct migrate_diff_schema {
	struct migrate_diff_table *tables;
	int ntables;
	struct migrate_diff_enum *enums;
	int nenums;
	struct migrate_diff_sequence *seqs;
	int nseqs;
};

void migrate_diff_schema_free(struct migrate_diff_schema *s);
/* Sorts everything by name (catalog order does not matter). */
void migrate_diff_schema_sort(struct migrate_diff_schema *s);

const struct migrate_diff_table *
migrate_diff_schema_table(const struct migrate_diff_schema *s,
			  const char *name);

/* One step of a change: a difference (what, may be NULL for the second
 * statement of one difference) and the SQL that makes it. */
struct migrate_diff_step {
	char *what;		/* "+ table t", "~ column t.c: type a -> b" */
	char *sql;		/* one statement, no ';' */
	bool destructive;	/* loses data when run */
	char *warning;		/* may fail or lose data: why, or NULL */
};

struct migrate_diff {
	struct migrate_diff_step *v;
	int n, cap;
};

void migrate_diff_free(struct migrate_diff *d);

/* Only the tables of `to` (and their sequences) are compared: extra
 * tables, enums and sequences of `from` are ignored. */
#define MIGRATE_DIFF_ONLY_TO_TABLES 1u

/*
 * The steps that turn schema `from` into schema `to`, in an order that
 * runs: drops of constraints and indexes first, then types, sequences,
 * tables, columns, constraints, indexes, and the drops of columns,
 * tables, sequences and types last.  Returns -1 on ENOMEM.
 */
CONVD_WUR int migrate_diff_compute(const struct migrate_diff_schema *from,
				   const struct migrate_diff_schema *to,
				   unsigned flags, struct migrate_diff *out);

/* Joins the steps' SQL as a script ("stmt;\n" each, with "-- " comments
 * for what and warnings).  malloc'd, NULL on ENOMEM. */
char *migrate_diff_script(const struct migrate_diff *d);

#endif
