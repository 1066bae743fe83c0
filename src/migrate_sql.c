/*
 * migrate_sql.c - lexing, splitting and scanning SQL; the destructive
 * change guard (pure).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errbuf.h"
#include "migrate_sql.h"

/* ---------------------------------------------------------------- lexer */

enum tok_kind { T_EOF, T_WORD, T_QIDENT, T_STRING, T_NUMBER, T_PUNCT };

struct tok {
	enum tok_kind kind;
	size_t off, len;
};

struct lexer {
	const char *s;
	size_t len, pos;
	const char *err;	/* what is unterminated */
	size_t err_off;
};

static bool is_ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       c >= 0x80;
}

static bool is_ident_char(unsigned char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Skips white space and comments; -1 on an unterminated comment. */
static int lex_skip(struct lexer *lx)
{
	const char *s = lx->s;

	while (lx->pos < lx->len) {
		char c = s[lx->pos];

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		    c == '\f' || c == '\v') {
			lx->pos++;
		} else if (c == '-' && lx->pos + 1 < lx->len &&
			   s[lx->pos + 1] == '-') {
			while (lx->pos < lx->len && s[lx->pos] != '\n')
				lx->pos++;
		} else if (c == '/' && lx->pos + 1 < lx->len &&
			   s[lx->pos + 1] == '*') {
			int depth = 1;
			size_t start = lx->pos;

			lx->pos += 2;
			while (lx->pos < lx->len && depth > 0) {
				if (s[lx->pos] == '/' && lx->pos + 1 < lx->len &&
				    s[lx->pos + 1] == '*') {
					depth++;
					lx->pos += 2;
				} else if (s[lx->pos] == '*' &&
					   lx->pos + 1 < lx->len &&
					   s[lx->pos + 1] == '/') {
					depth--;
					lx->pos += 2;
				} else {
					lx->pos++;
				}
			}
			if (depth > 0) {
				lx->err = "block comment";
				lx->err_off = start;
				return -1;
			}
		} else {
			break;
		}
	}
	return 0;
}

/* A quoted run ending at an undoubled q; backslashes escape if esc. */
static int lex_quoted(struct lexer *lx, char q, bool esc, const char *what,
		      size_t start)
{
	lx->pos++; /* the opening quote */
	while (lx->pos < lx->len) {
		char c = lx->s[lx->pos];

		if (esc && c == '\\' && lx->pos + 1 < lx->len) {
			lx->pos += 2;
			continue;
		}
		if (c == q) {
			if (lx->pos + 1 < lx->len && lx->s[lx->pos + 1] == q) {
				lx->pos += 2;
				continue;
			}
			lx->pos++;
			return 0;
		}
		lx->pos++;
	}
	lx->err = what;
	lx->err_off = start;
	return -1;
}

/* Length of a dollar-quote tag "$tag$" at pos, or 0 if there is none. */
static size_t dollar_tag(const struct lexer *lx, size_t pos)
{
	size_t i = pos + 1;

	if (i < lx->len && lx->s[i] == '$')
		return 2;
	if (i >= lx->len || !is_ident_start((unsigned char)lx->s[i]))
		return 0;
	while (i < lx->len && lx->s[i] != '$') {
		unsigned char c = (unsigned char)lx->s[i];

		if (!is_ident_start(c) && !(c >= '0' && c <= '9'))
			return 0;
		i++;
	}
	if (i >= lx->len)
		return 0;
	return i - pos + 1;
}

static int lex_next(struct lexer *lx, struct tok *t)
{
	const char *s = lx->s;
	size_t start;
	unsigned char c;

	if (lex_skip(lx) < 0)
		return -1;
	start = lx->pos;
	t->off = start;
	if (lx->pos >= lx->len) {
		t->kind = T_EOF;
		t->len = 0;
		return 0;
	}
	c = (unsigned char)s[lx->pos];
	if ((c == 'E' || c == 'e') && lx->pos + 1 < lx->len &&
	    s[lx->pos + 1] == '\'') {
		lx->pos++;
		if (lex_quoted(lx, '\'', true, "string", start) < 0)
			return -1;
		t->kind = T_STRING;
	} else if ((c == 'U' || c == 'u') && lx->pos + 2 < lx->len &&
		   s[lx->pos + 1] == '&' &&
		   (s[lx->pos + 2] == '\'' || s[lx->pos + 2] == '"')) {
		char q = s[lx->pos + 2];

		lx->pos += 2;
		if (lex_quoted(lx, q, false, q == '"' ? "identifier" : "string",
			       start) < 0)
			return -1;
		t->kind = q == '"' ? T_QIDENT : T_STRING;
	} else if ((c == 'B' || c == 'b' || c == 'X' || c == 'x' || c == 'N' ||
		    c == 'n') &&
		   lx->pos + 1 < lx->len && s[lx->pos + 1] == '\'') {
		lx->pos++;
		if (lex_quoted(lx, '\'', false, "string", start) < 0)
			return -1;
		t->kind = T_STRING;
	} else if (c == '\'') {
		if (lex_quoted(lx, '\'', false, "string", start) < 0)
			return -1;
		t->kind = T_STRING;
	} else if (c == '"') {
		if (lex_quoted(lx, '"', false, "quoted identifier", start) < 0)
			return -1;
		t->kind = T_QIDENT;
	} else if (c == '$' && dollar_tag(lx, lx->pos) > 0) {
		size_t tl = dollar_tag(lx, lx->pos);
		const char *tag = s + lx->pos;
		bool found = false;

		lx->pos += tl;
		while (lx->pos + tl <= lx->len) {
			if (s[lx->pos] == '$' &&
			    memcmp(s + lx->pos, tag, tl) == 0) {
				lx->pos += tl;
				found = true;
				break;
			}
			lx->pos++;
		}
		if (!found) {
			lx->err = "dollar-quoted string";
			lx->err_off = start;
			return -1;
		}
		t->kind = T_STRING;
	} else if (is_ident_start(c)) {
		while (lx->pos < lx->len &&
		       is_ident_char((unsigned char)s[lx->pos]))
			lx->pos++;
		t->kind = T_WORD;
	} else if (c >= '0' && c <= '9') {
		while (lx->pos < lx->len &&
		       (is_ident_char((unsigned char)s[lx->pos]) ||
			s[lx->pos] == '.'))
			lx->pos++;
		t->kind = T_NUMBER;
	} else {
		lx->pos++;
		t->kind = T_PUNCT;
	}
	t->len = lx->pos - start;
	return 0;
}

static bool tok_is(const struct lexer *lx, const struct tok *t,
		   const char *word)
{
	return t->kind == T_WORD && t->len == strlen(word) &&
	       strncasecmp(lx->s + t->off, word, t->len) == 0;
}

static bool tok_punct(const struct lexer *lx, const struct tok *t, char c)
{
	return t->kind == T_PUNCT && lx->s[t->off] == c;
}

static int line_of(const char *s, size_t off)
{
	int line = 1;

	for (size_t i = 0; i < off; i++)
		if (s[i] == '\n')
			line++;
	return line;
}

static void lex_error(const struct lexer *lx, char *err, size_t errlen)
{
	errbuf_set(err, errlen, "line %d: unterminated %s",
		   line_of(lx->s, lx->err_off), lx->err);
}

/* ------------------------------------------------------------ splitting */

int migrate_sql_split(const char *sql, struct migrate_sql_stmt **out, size_t *n,
		      char *err, size_t errlen)
{
	struct lexer lx = {sql, strlen(sql), 0, NULL, 0};
	struct migrate_sql_stmt *v = NULL;
	size_t nv = 0, cap = 0;
	bool in_stmt = false;
	size_t first = 0, last_end = 0;
	int ntok = 0, atomic = 0, depth = 0;
	struct tok prev = {T_EOF, 0, 0};

	for (;;) {
		struct tok t;
		bool end;

		if (lex_next(&lx, &t) < 0) {
			lex_error(&lx, err, errlen);
			free(v);
			return -1;
		}
		end = t.kind == T_EOF ||
		      (tok_punct(&lx, &t, ';') && atomic == 0 && depth == 0);
		if (end) {
			if (in_stmt) {
				if (nv == cap) {
					size_t ncap = cap ? cap * 2 : 16;
					struct migrate_sql_stmt *nvv =
						realloc(v, sizeof(*v) * ncap);

					if (!nvv) {
						free(v);
						errbuf_set(err, errlen,
							   "out of memory");
						return -1;
					}
					v = nvv;
					cap = ncap;
				}
				v[nv].off = first;
				v[nv].len = last_end - first;
				v[nv].line = line_of(sql, first);
				nv++;
			}
			in_stmt = false;
			ntok = 0;
			atomic = 0;
			depth = 0;
			if (t.kind == T_EOF)
				break;
			continue;
		}
		if (!in_stmt) {
			in_stmt = true;
			first = t.off;
		}
		/* As psql: no split inside parentheses (CREATE RULE ... DO
		 * (a; b)) or SQL-standard bodies (BEGIN ATOMIC ... END). */
		if (tok_punct(&lx, &t, '('))
			depth++;
		else if (tok_punct(&lx, &t, ')') && depth > 0)
			depth--;
		if (ntok > 0 && tok_is(&lx, &t, "atomic") &&
		    tok_is(&lx, &prev, "begin"))
			atomic++;
		else if (atomic > 0 && tok_is(&lx, &t, "case"))
			atomic++;
		else if (atomic > 0 && tok_is(&lx, &t, "end"))
			atomic--;
		last_end = t.off + t.len;
		prev = t;
		ntok++;
	}
	*out = v;
	*n = nv;
	return 0;
}

int migrate_sql_txn_control(const char *sql)
{
	struct migrate_sql_stmt *st = NULL;
	size_t n = 0;
	char err[64];
	int line = 0;

	if (!sql || migrate_sql_split(sql, &st, &n, err, sizeof(err)) < 0)
		return 0;
	for (size_t i = 0; i < n && !line; i++) {
		struct lexer lx = {sql, st[i].off + st[i].len, st[i].off, NULL,
				   0};
		struct tok a, b;

		if (lex_next(&lx, &a) < 0 || lex_next(&lx, &b) < 0)
			continue;
		if (tok_is(&lx, &a, "begin") || tok_is(&lx, &a, "commit") ||
		    tok_is(&lx, &a, "end") || tok_is(&lx, &a, "abort") ||
		    (tok_is(&lx, &a, "start") &&
		     tok_is(&lx, &b, "transaction")) ||
		    (tok_is(&lx, &a, "rollback") && !tok_is(&lx, &b, "to")) ||
		    (tok_is(&lx, &a, "prepare") &&
		     tok_is(&lx, &b, "transaction")))
			line = st[i].line;
	}
	free(st);
	return line;
}

bool migrate_sql_is_empty(const char *sql)
{
	struct lexer lx;

	if (!sql)
		return true;
	lx = (struct lexer){sql, strlen(sql), 0, NULL, 0};
	if (lex_skip(&lx) < 0)
		return false;
	return lx.pos >= lx.len;
}

/* ------------------------------------------------------------- scanning */

const char *migrate_sql_hazard_name(enum migrate_sql_hazard h)
{
	switch (h) {
	case MIGRATE_SQL_DROP_TABLE:
		return "drops a table";
	case MIGRATE_SQL_DROP_SCHEMA:
		return "drops a schema";
	case MIGRATE_SQL_DROP_COLUMN:
		return "drops a column";
	case MIGRATE_SQL_TRUNCATE:
		return "empties a table";
	case MIGRATE_SQL_TYPE_CHANGE:
		return "changes a column type (may narrow)";
	case MIGRATE_SQL_TYPE_NARROWING:
		return "narrows a column type";
	}
	return "destructive";
}

struct findings {
	struct migrate_sql_finding *v;
	size_t n, cap;
};

static int add_finding(struct findings *f, enum migrate_sql_hazard kind,
		       int line, const char *what, size_t wlen)
{
	struct migrate_sql_finding *x;
	size_t o = 0;
	bool space = false;

	if (f->n == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 8;
		struct migrate_sql_finding *nv =
			realloc(f->v, sizeof(*nv) * ncap);

		if (!nv)
			return -1;
		f->v = nv;
		f->cap = ncap;
	}
	x = &f->v[f->n++];
	x->kind = kind;
	x->line = line;
	/* The statement text with white space collapsed, cut short. */
	for (size_t i = 0; i < wlen && o < sizeof(x->what) - 4; i++) {
		char c = what[i];

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			space = true;
			continue;
		}
		if (space && o > 0)
			x->what[o++] = ' ';
		space = false;
		x->what[o++] = c;
	}
	if (o >= sizeof(x->what) - 4) {
		memcpy(x->what + o, "...", 3);
		o += 3;
	}
	x->what[o] = '\0';
	return 0;
}

/* Looks at one statement's tokens. */
static int scan_stmt(const char *sql, const struct migrate_sql_stmt *st,
		     struct findings *f)
{
	struct lexer lx = {sql, st->off + st->len, st->off, NULL, 0};
	struct tok t[4];
	const char *text = sql + st->off;

	for (int i = 0; i < 3; i++)
		if (lex_next(&lx, &t[i]) < 0)
			return 0;
	if (tok_is(&lx, &t[0], "drop") && tok_is(&lx, &t[1], "table"))
		return add_finding(f, MIGRATE_SQL_DROP_TABLE, st->line, text,
				   st->len);
	if (tok_is(&lx, &t[0], "drop") && tok_is(&lx, &t[1], "schema"))
		return add_finding(f, MIGRATE_SQL_DROP_SCHEMA, st->line, text,
				   st->len);
	if (tok_is(&lx, &t[0], "truncate"))
		return add_finding(f, MIGRATE_SQL_TRUNCATE, st->line, text,
				   st->len);
	if (!(tok_is(&lx, &t[0], "alter") && tok_is(&lx, &t[1], "table")))
		return 0;
	/* ALTER TABLE [IF EXISTS] [ONLY] name [*] action [, action ...] */
	lx.pos = t[1].off + t[1].len;
	if (lex_next(&lx, &t[0]) < 0)
		return 0;
	if (tok_is(&lx, &t[0], "if")) {
		if (lex_next(&lx, &t[0]) < 0 || lex_next(&lx, &t[0]) < 0)
			return 0;
	}
	if (tok_is(&lx, &t[0], "only") && lex_next(&lx, &t[0]) < 0)
		return 0;
	/* the (possibly qualified) name */
	for (;;) {
		if (lex_next(&lx, &t[1]) < 0)
			return 0;
		if (tok_punct(&lx, &t[1], '.')) {
			if (lex_next(&lx, &t[1]) < 0)
				return 0;
			continue;
		}
		break;
	}
	if (tok_punct(&lx, &t[1], '*') && lex_next(&lx, &t[1]) < 0)
		return 0;
	/* t[1] starts the first action */
	for (;;) {
		int depth = 0;
		struct tok a = t[1], b, c, d;

		if (a.kind == T_EOF)
			return 0;
		if (lex_next(&lx, &b) < 0)
			return 0;
		if (tok_is(&lx, &a, "drop") && !tok_is(&lx, &b, "constraint")) {
			/* DROP [COLUMN] [IF EXISTS] name */
			if (add_finding(f, MIGRATE_SQL_DROP_COLUMN, st->line,
					text,
					st->len) < 0)
				return -1;
		} else if (tok_is(&lx, &a, "alter")) {
			/* ALTER [COLUMN] name [SET DATA] TYPE */
			c = b;
			if (tok_is(&lx, &c, "column") && lex_next(&lx, &c) < 0)
				return 0;
			if (c.kind == T_WORD || c.kind == T_QIDENT) {
				if (lex_next(&lx, &d) < 0)
					return 0;
				if (tok_is(&lx, &d, "set") &&
				    (lex_next(&lx, &d) < 0 ||
				     !tok_is(&lx, &d, "data") ||
				     lex_next(&lx, &d) < 0))
					goto next_action;
				if (tok_is(&lx, &d, "type") &&
				    add_finding(f, MIGRATE_SQL_TYPE_CHANGE,
						st->line,
						text, st->len) < 0)
					return -1;
			}
		}
	next_action:
		/* to the next top-level comma */
		lx.pos = b.off;
		for (;;) {
			struct tok x;

			if (lex_next(&lx, &x) < 0 || x.kind == T_EOF)
				return 0;
			if (tok_punct(&lx, &x, '('))
				depth++;
			else if (tok_punct(&lx, &x, ')'))
				depth--;
			else if (depth == 0 && tok_punct(&lx, &x, ','))
				break;
		}
		if (lex_next(&lx, &t[1]) < 0)
			return 0;
	}
}

int migrate_sql_scan(const char *sql, struct migrate_sql_finding **out,
		     size_t *n, char *err, size_t errlen)
{
	struct migrate_sql_stmt *st = NULL;
	size_t nst = 0;
	struct findings f = {NULL, 0, 0};

	*out = NULL;
	*n = 0;
	if (migrate_sql_split(sql, &st, &nst, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < nst; i++) {
		if (scan_stmt(sql, &st[i], &f) < 0) {
			free(st);
			free(f.v);
			errbuf_set(err, errlen, "out of memory");
			return -1;
		}
	}
	free(st);
	*out = f.v;
	*n = f.n;
	return 0;
}

/* ----------------------------------------------------------- type rules */

enum {
	OID_CHAR = 18,
	OID_NAME = 19,
	OID_INT8 = 20,
	OID_INT2 = 21,
	OID_INT4 = 23,
	OID_TEXT = 25,
	OID_FLOAT4 = 700,
	OID_FLOAT8 = 701,
	OID_BPCHAR = 1042,
	OID_VARCHAR = 1043,
	OID_DATE = 1082,
	OID_TIME = 1083,
	OID_TIMESTAMP = 1114,
	OID_TIMESTAMPTZ = 1184,
	OID_INTERVAL = 1186,
	OID_TIMETZ = 1266,
	OID_BIT = 1560,
	OID_VARBIT = 1562,
	OID_NUMERIC = 1700,
};

/* Digits before the point that numeric(typmod) can hold; -1 unlimited. */
static int numeric_int_digits(int32_t mod)
{
	int p, s;

	if (mod < 4)
		return -1;
	p = ((mod - 4) >> 16) & 0xffff;
	s = (mod - 4) & 0x7ff;
	if (s & 0x400)
		s -= 0x800;
	return p - s;
}

static int numeric_scale(int32_t mod)
{
	int s;

	if (mod < 4)
		return -1;
	s = (mod - 4) & 0x7ff;
	if (s & 0x400)
		s -= 0x800;
	return s;
}

static bool numeric_holds(int32_t mod, int digits)
{
	int d = numeric_int_digits(mod);

	return d < 0 || d >= digits;
}

bool migrate_sql_type_change_safe(uint32_t oldoid, int32_t oldmod,
				  uint32_t newoid, int32_t newmod)
{
	if (oldoid == newoid) {
		if (oldmod == newmod)
			return true;
		switch (oldoid) {
		case OID_VARCHAR:
		case OID_VARBIT:
			return newmod < 0 || (oldmod >= 0 && newmod >= oldmod);
		case OID_BPCHAR:
			return newmod < 0 || (oldmod >= 0 && newmod >= oldmod);
		case OID_NUMERIC:
			if (newmod < 4)
				return true;
			if (oldmod < 4)
				return false;
			return numeric_scale(newmod) >= numeric_scale(oldmod) &&
			       numeric_int_digits(newmod) >=
				       numeric_int_digits(oldmod);
		case OID_TIMESTAMP:
		case OID_TIMESTAMPTZ:
		case OID_TIME:
		case OID_TIMETZ:
			return newmod < 0 ||
			       (oldmod >= 0 && newmod >= oldmod);
		default:
			return false;
		}
	}
	/* Every value has a text form. */
	if (newoid == OID_TEXT || (newoid == OID_VARCHAR && newmod < 0))
		return true;
	switch (oldoid) {
	case OID_INT2:
		return newoid == OID_INT4 || newoid == OID_INT8 ||
		       newoid == OID_FLOAT4 || newoid == OID_FLOAT8 ||
		       (newoid == OID_NUMERIC && numeric_holds(newmod, 5));
	case OID_INT4:
		return newoid == OID_INT8 || newoid == OID_FLOAT8 ||
		       (newoid == OID_NUMERIC && numeric_holds(newmod, 10));
	case OID_INT8:
		return newoid == OID_NUMERIC && numeric_holds(newmod, 19);
	case OID_FLOAT4:
		return newoid == OID_FLOAT8;
	case OID_DATE:
		return newoid == OID_TIMESTAMP || newoid == OID_TIMESTAMPTZ;
	case OID_TIMESTAMP:
		return newoid == OID_TIMESTAMPTZ &&
		       (newmod < 0 || (oldmod >= 0 && newmod >= oldmod));
	case OID_TIME:
		return newoid == OID_INTERVAL && newmod < 0;
	case OID_BIT:
		return newoid == OID_VARBIT &&
		       (newmod < 0 || (oldmod >= 0 && newmod >= oldmod));
	case OID_CHAR:
	case OID_NAME:
		return newoid == OID_VARCHAR && newmod >= 4 + 64;
	default:
		return false;
	}
}

/* ---------------------------------------------------------------- guard */

void migrate_sql_cols_free(struct migrate_sql_cols *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].table);
		free(c->v[i].column);
		free(c->v[i].type);
	}
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

static int col_cmp(const struct migrate_sql_col *a, uint32_t relid, int attnum)
{
	if (a->relid != relid)
		return a->relid < relid ? -1 : 1;
	if (a->attnum != attnum)
		return a->attnum < attnum ? -1 : 1;
	return 0;
}

static const struct migrate_sql_col *col_find(const struct migrate_sql_cols *c,
					      uint32_t relid, int attnum)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = col_cmp(&c->v[mid], relid, attnum);

		if (r == 0)
			return &c->v[mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int migrate_sql_guard_compare(const struct migrate_sql_cols *before,
			      const struct migrate_sql_cols *after,
			      struct migrate_sql_finding **out, size_t *n)
{
	struct findings f = {NULL, 0, 0};

	for (size_t i = 0; i < before->n; i++) {
		const struct migrate_sql_col *b = &before->v[i];
		const struct migrate_sql_col *a;
		char what[256];
		int len = 0;
		enum migrate_sql_hazard kind;

		if (b->attnum == 0) {
			if (col_find(after, b->relid, 0))
				continue;
			kind = MIGRATE_SQL_DROP_TABLE;
			len = snprintf(what, sizeof(what), "table %s",
				       b->table);
		} else {
			if (!col_find(after, b->relid, 0))
				continue; /* reported with its table */
			a = col_find(after, b->relid, b->attnum);
			if (!a) {
				kind = MIGRATE_SQL_DROP_COLUMN;
				len = snprintf(what, sizeof(what),
					       "column %s.%s", b->table,
					       b->column);
			} else if (migrate_sql_type_change_safe(b->typid,
								b->typmod,
								a->typid,
								a->typmod)) {
				continue;
			} else {
				kind = MIGRATE_SQL_TYPE_NARROWING;
				len = snprintf(what, sizeof(what),
					       "column %s.%s from %s to %s",
					       b->table, b->column, b->type,
					       a->type);
			}
		}
		if (len < 0)
			len = 0;
		if ((size_t)len >= sizeof(what))
			len = (int)sizeof(what) - 1;
		if (add_finding(&f, kind, 0, what, (size_t)len) < 0) {
			free(f.v);
			return -1;
		}
	}
	*out = f.v;
	*n = f.n;
	return 0;
}
