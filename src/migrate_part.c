/*
 * migrate_part.c - online index changes of a non-transactional revision on
 * a partitioned table (see migrate_part.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <stdarg.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <strings.h>

#include "migrate_part.h"

/* ------------------------------------------------------ the statement */

struct lex {
	const char *s;
	size_t len, pos;
};

/* Skips white space and comments (-- to the end of the line, nested
 * block comments). */
static void skip_space(struct lex *l)
{
	for (;;) {
		while (l->pos < l->len &&
		       strchr(" \t\r\n\f\v", l->s[l->pos]) != NULL)
			l->pos++;
		if (l->pos + 1 < l->len && l->s[l->pos] == '-' &&
		    l->s[l->pos + 1] == '-') {
			while (l->pos < l->len && l->s[l->pos] != '\n')
				l->pos++;
			continue;
		}
		if (l->pos + 1 < l->len && l->s[l->pos] == '/' &&
		    l->s[l->pos + 1] == '*') {
			int depth = 0;

			while (l->pos + 1 < l->len) {
				if (l->s[l->pos] == '/' &&
				    l->s[l->pos + 1] == '*') {
					depth++;
					l->pos += 2;
				} else if (l->s[l->pos] == '*' &&
					   l->s[l->pos + 1] == '/') {
					l->pos += 2;
					if (--depth == 0)
						break;
				} else {
					l->pos++;
				}
			}
			if (depth != 0)
				l->pos = l->len;
			continue;
		}
		return;
	}
}

static bool ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       c >= 0x80;
}

static bool ident_char(unsigned char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* The keyword kw (lower case) as the next token, consumed if so. */
static bool keyword(struct lex *l, const char *kw)
{
	size_t n = strlen(kw), p;

	skip_space(l);
	p = l->pos;
	if (l->len - p < n || strncasecmp(l->s + p, kw, n) != 0)
		return false;
	if (p + n < l->len && ident_char((unsigned char)l->s[p + n]))
		return false;
	l->pos = p + n;
	return true;
}

/* One identifier, quoted or not: its range; false if there is none. */
static bool ident(struct lex *l, size_t *off, size_t *len)
{
	size_t p;

	skip_space(l);
	p = l->pos;
	if (p >= l->len)
		return false;
	if (l->s[p] == '"') {
		p++;
		for (;;) {
			if (p >= l->len)
				return false;
			if (l->s[p] == '"') {
				if (p + 1 < l->len && l->s[p + 1] == '"') {
					p += 2;
					continue;
				}
				p++;
				break;
			}
			p++;
		}
	} else {
		if (!ident_start((unsigned char)l->s[p]))
			return false;
		while (p < l->len && ident_char((unsigned char)l->s[p]))
			p++;
	}
	*off = l->pos;
	*len = p - l->pos;
	l->pos = p;
	return true;
}

/* A name, qualified (a.b.c) or not. */
static bool qualified(struct lex *l, size_t *off, size_t *len)
{
	size_t o, n;

	if (!ident(l, &o, &n))
		return false;
	*off = o;
	for (;;) {
		size_t save = l->pos, o2, n2;

		skip_space(l);
		if (l->pos < l->len && l->s[l->pos] == '.') {
			l->pos++;
			if (!ident(l, &o2, &n2))
				return false;
			n = o2 + n2 - o;
			continue;
		}
		l->pos = save;
		break;
	}
	*len = n;
	return true;
}

void migrate_part_parse(const char *stmt, size_t len,
			struct migrate_part_stmt *out)
{
	struct lex l = { .s = stmt, .len = len, .pos = 0 };

	memset(out, 0, sizeof(*out));
	out->kind = MIGRATE_PART_OTHER;
	if (keyword(&l, "create")) {
		out->unique = keyword(&l, "unique");
		if (!keyword(&l, "index") || !keyword(&l, "concurrently"))
			goto other;
		if (keyword(&l, "if")) {
			if (!keyword(&l, "not") || !keyword(&l, "exists"))
				goto other;
			out->if_exists = true;
		}
		if (keyword(&l, "on"))	/* no name: PostgreSQL picks one */
			goto other;
		if (!ident(&l, &out->name_off, &out->name_len) ||
		    !keyword(&l, "on") || keyword(&l, "only") ||
		    !qualified(&l, &out->table_off, &out->table_len))
			goto other;
		out->rest_off = l.pos;
		out->kind = MIGRATE_PART_CREATE_INDEX;
		return;
	}
	if (keyword(&l, "drop")) {
		if (!keyword(&l, "index") || !keyword(&l, "concurrently"))
			goto other;
		if (keyword(&l, "if")) {
			if (!keyword(&l, "exists"))
				goto other;
			out->if_exists = true;
		}
		if (!qualified(&l, &out->name_off, &out->name_len))
			goto other;
		out->rest_off = l.pos;
		skip_space(&l);
		if (l.pos < l.len && l.s[l.pos] == ',')
			goto other;	/* several indexes */
		out->kind = MIGRATE_PART_DROP_INDEX;
		return;
	}
other:
	memset(out, 0, sizeof(*out));
	out->kind = MIGRATE_PART_OTHER;
}

/* ------------------------------------------------------ running it */

static PGresult *failed(PGconn *conn)
{
	return PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
}

static bool ok(const PGresult *r)
{
	ExecStatusType s = PQresultStatus(r);

	return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

/* relkind of the relation named name (as written), '\0' when none, or
 * '?' with *err set to the failed result. */
static char relkind(PGconn *conn, const char *name, PGresult **err)
{
	const char *p[1] = { name };
	PGresult *r = PQexecParams(conn,
				   "SELECT relkind FROM pg_class"
				   " WHERE oid = to_regclass($1)",
				   1, NULL, p, NULL, NULL, 0);
	char k;

	if (!r || !ok(r)) {
		*err = r ? r : failed(conn);
		return '?';
	}
	k = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0)[0] : '\0';
	PQclear(r);
	return k;
}

/* Runs sql (formatted), replacing *last with its result; false when it
 * failed (then *last is the failure). */
static bool CONVD_PRINTF(3, 4) step(PGconn *conn, PGresult **last,
				    const char *fmt, ...)
{
	va_list ap;
	char *sql = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&sql, fmt, ap);
	va_end(ap);
	PQclear(*last);
	if (n < 0) {
		*last = failed(conn);
		return false;
	}
	*last = PQexec(conn, sql);
	free(sql);
	if (!*last)
		*last = failed(conn);
	return ok(*last);
}

/* The partitions of table that have no index attached to index yet: the
 * partition, the name of its index (quoted, and qualified), and whether
 * an index of that name exists on it ('t' valid, 'f' invalid, '' none). */
static const char q_partitions[] =
	"WITH p AS (SELECT t.oid AS toid, ix.oid AS ioid,"
	" CASE WHEN left(ix.relname, length(t.relname) + 1) = t.relname || '_'"
	" THEN substr(ix.relname, length(t.relname) + 2)"
	" ELSE ix.relname::text END AS suffix"
	" FROM pg_class t, pg_class ix"
	" WHERE t.oid = to_regclass($1) AND ix.oid = to_regclass($2))"
	" SELECT c.oid::regclass::text, quote_ident(n.nm),"
	" quote_ident(ns.nspname) || '.' || quote_ident(n.nm),"
	" coalesce((SELECT x.indisvalid::text FROM pg_class ic"
	"  JOIN pg_index x ON x.indexrelid = ic.oid"
	"  WHERE ic.relname = n.nm AND ic.relnamespace = c.relnamespace"
	"  AND x.indrelid = c.oid), '')"
	" FROM p JOIN pg_inherits i ON i.inhparent = p.toid"
	" JOIN pg_class c ON c.oid = i.inhrelid"
	" JOIN pg_namespace ns ON ns.oid = c.relnamespace"
	" CROSS JOIN LATERAL (SELECT left(c.relname || '_' || p.suffix, 63)"
	"  AS nm) n"
	" WHERE NOT EXISTS (SELECT 1 FROM pg_inherits ii"
	"  JOIN pg_index x ON x.indexrelid = ii.inhrelid"
	"  WHERE ii.inhparent = p.ioid AND x.indrelid = c.oid)"
	" ORDER BY c.oid";

static PGresult *create_partitioned(PGconn *conn, const char *stmt,
				    const struct migrate_part_stmt *m)
{
	const char *uniq = m->unique ? "UNIQUE " : "";
	const char *rest = stmt + m->rest_off;
	char *name = strndup(stmt + m->name_off, m->name_len);
	char *table = strndup(stmt + m->table_off, m->table_len);
	PGresult *last = NULL, *parts = NULL;
	const char *p[2];

	if (!name || !table) {
		free(name);
		free(table);
		return failed(conn);
	}
	if (!step(conn, &last, "CREATE %sINDEX %s%s ON ONLY %s%s", uniq,
		  m->if_exists ? "IF NOT EXISTS " : "", name, table, rest))
		goto out;
	p[0] = table;
	p[1] = name;
	parts = PQexecParams(conn, q_partitions, 2, NULL, p, NULL, NULL, 0);
	if (!parts || !ok(parts)) {
		PQclear(last);
		last = parts ? parts : failed(conn);
		parts = NULL;
		goto out;
	}
	for (int i = 0; i < PQntuples(parts); i++) {
		const char *part = PQgetvalue(parts, i, 0);
		const char *idx = PQgetvalue(parts, i, 1);
		const char *qidx = PQgetvalue(parts, i, 2);
		const char *valid = PQgetvalue(parts, i, 3);

		if (strcmp(valid, "false") == 0 &&
		    !step(conn, &last, "DROP INDEX CONCURRENTLY %s", qidx))
			goto out;
		if (strcmp(valid, "true") != 0 &&
		    !step(conn, &last, "CREATE %sINDEX CONCURRENTLY %s ON %s%s",
			  uniq, idx, part, rest))
			goto out;
		if (!step(conn, &last, "ALTER INDEX %s ATTACH PARTITION %s",
			  name, qidx))
			goto out;
	}
out:
	PQclear(parts);
	free(name);
	free(table);
	return last;
}

PGresult *migrate_part_exec(PGconn *conn, const char *stmt)
{
	struct migrate_part_stmt m;
	PGresult *err = NULL, *r = NULL;
	char *name;
	char k;

	migrate_part_parse(stmt, strlen(stmt), &m);
	if (m.kind == MIGRATE_PART_OTHER)
		return PQexec(conn, stmt);
	name = m.kind == MIGRATE_PART_CREATE_INDEX
		       ? strndup(stmt + m.table_off, m.table_len)
		       : strndup(stmt + m.name_off, m.name_len);
	if (!name)
		return failed(conn);
	k = relkind(conn, name, &err);
	free(name);
	if (k == '?')
		return err;
	if (m.kind == MIGRATE_PART_CREATE_INDEX && k == 'p')
		return create_partitioned(conn, stmt, &m);
	if (m.kind == MIGRATE_PART_DROP_INDEX && k == 'I') {
		(void)step(conn, &r, "DROP INDEX %s%.*s%s",
		     m.if_exists ? "IF EXISTS " : "", (int)m.name_len,
		     stmt + m.name_off, stmt + m.rest_off);
		return r;
	}
	return PQexec(conn, stmt);
}
