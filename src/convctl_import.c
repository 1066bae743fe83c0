/*
 * convctl_import.c - the parser of `convctl import`'s JSON Lines: a
 * small strict JSON reader (RFC 8259) that keeps the members a message
 * needs and skips the others.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "convctl_import.h"

void convctl_import_row_free(struct convctl_import_row *r)
{
	free(r->user_id);
	free(r->idempotency_key);
	free(r->platform);
	free(r->provider);
	free(r->role);
	free(r->content);
	free(r->created_at);
	memset(r, 0, sizeof(*r));
}

struct jparser {
	const char *p, *end;
	char *err;
	size_t errlen;
};

static bool jfail(struct jparser *j, const char *fmt, ...) CONVD_PRINTF(2, 3);

static bool jfail(struct jparser *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->err, j->errlen, fmt, ap);
	va_end(ap);
	return false;
}

static void jws(struct jparser *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
				 *j->p == '\r' || *j->p == '\n'))
		j->p++;
}

static bool jhex4(struct jparser *j, uint32_t *v)
{
	*v = 0;
	if (j->end - j->p < 4)
		return jfail(j, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		int h = hex_digit(j->p[i]);

		if (h < 0)
			return jfail(j, "bad \\u escape");
		*v = *v << 4 | (uint32_t)h;
	}
	j->p += 4;
	return true;
}

static void put_utf8(struct buf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	buf_add(b, u, n);
}

/*
 * A JSON string at j->p (the opening quote) into out (when not NULL):
 * escapes decoded, \u surrogate pairs joined; raw bytes are copied as
 * they are (convd checks UTF-8).  Control characters must be escaped.
 */
static bool jstring(struct jparser *j, struct buf *out)
{
	if (j->p >= j->end || *j->p != '"')
		return jfail(j, "expected a string");
	j->p++;
	for (;;) {
		const char *q = j->p;
		uint32_t cp, lo;
		char c;

		while (q < j->end && *q != '"' && *q != '\\' &&
		       (unsigned char)*q >= 0x20)
			q++;
		if (out && q > j->p)
			buf_add(out, j->p, (size_t)(q - j->p));
		j->p = q;
		if (j->p >= j->end)
			return jfail(j, "unterminated string");
		c = *j->p++;
		if (c == '"')
			return out ? !out->nomem || jfail(j, "out of memory")
				   : true;
		if (c != '\\')
			return jfail(j, "control character in a string");
		if (j->p >= j->end)
			return jfail(j, "unterminated string");
		c = *j->p++;
		switch (c) {
		case '"': case '\\': case '/':
			cp = (unsigned char)c;
			break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			if (!jhex4(j, &cp))
				return false;
			if (cp >= 0xDC00 && cp <= 0xDFFF)
				return jfail(j, "lone low surrogate \\u%04X",
					     (unsigned)cp);
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (j->end - j->p < 2 || j->p[0] != '\\' ||
				    j->p[1] != 'u')
					return jfail(j, "lone high surrogate "
						     "\\u%04X", (unsigned)cp);
				j->p += 2;
				if (!jhex4(j, &lo))
					return false;
				if (lo < 0xDC00 || lo > 0xDFFF)
					return jfail(j, "bad surrogate pair");
				cp = 0x10000 + ((cp - 0xD800) << 10) +
				     (lo - 0xDC00);
			}
			break;
		default:
			return jfail(j, "bad escape \\%c", c);
		}
		if (out)
			put_utf8(out, cp);
	}
}

/* Skips a JSON number (grammar checked). */
static bool jnumber(struct jparser *j)
{
	const char *q = j->p;

	if (q < j->end && *q == '-')
		q++;
	if (q >= j->end || *q < '0' || *q > '9')
		return jfail(j, "bad number");
	if (*q == '0')
		q++;
	else
		while (q < j->end && *q >= '0' && *q <= '9')
			q++;
	if (q < j->end && *q == '.') {
		q++;
		if (q >= j->end || *q < '0' || *q > '9')
			return jfail(j, "bad number");
		while (q < j->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < j->end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < j->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= j->end || *q < '0' || *q > '9')
			return jfail(j, "bad number");
		while (q < j->end && *q >= '0' && *q <= '9')
			q++;
	}
	j->p = q;
	return true;
}

static bool jliteral(struct jparser *j, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
		return jfail(j, "unexpected character '%c'", *j->p);
	j->p += n;
	return true;
}

/* Skips any JSON value (the fields an import does not use). */
static bool jskip(struct jparser *j, int depth)
{
	jws(j);
	if (j->p >= j->end)
		return jfail(j, "expected a value");
	if (depth > 32)
		return jfail(j, "nested too deep");
	switch (*j->p) {
	case '"':
		return jstring(j, NULL);
	case 't':
		return jliteral(j, "true");
	case 'f':
		return jliteral(j, "false");
	case 'n':
		return jliteral(j, "null");
	case '[':
	case '{': {
		char close = *j->p == '[' ? ']' : '}';
		bool obj = close == '}';

		j->p++;
		jws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		for (;;) {
			if (obj) {
				jws(j);
				if (!jstring(j, NULL))
					return false;
				jws(j);
				if (j->p >= j->end || *j->p != ':')
					return jfail(j, "expected ':'");
				j->p++;
			}
			if (!jskip(j, depth + 1))
				return false;
			jws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == close) {
				j->p++;
				return true;
			}
			return jfail(j, "expected ',' or '%c'", close);
		}
	}
	default:
		return jnumber(j);
	}
}

/* One line (convctl_import.h). */
bool convctl_import_parse(const char *s, size_t len,
			  struct convctl_import_row *row, char *err,
			  size_t errlen)
{
	static const char *const names[] = { "user_id", "platform",
					     "provider", "role", "content",
					     "created_at", "idempotency_key" };
	struct jparser j = { s, s + len, err, errlen };
	char **slots[] = { &row->user_id, &row->platform, &row->provider,
			   &row->role, &row->content, &row->created_at,
			   &row->idempotency_key };
	struct buf key = { 0 };
	bool ok = false;

	memset(row, 0, sizeof(*row));
	jws(&j);
	if (j.p >= j.end || *j.p != '{') {
		jfail(&j, "not a JSON object");
		goto out;
	}
	j.p++;
	jws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
	} else {
		for (;;) {
			size_t k;

			jws(&j);
			key.len = 0;
			if (!jstring(&j, &key))
				goto out;
			jws(&j);
			if (j.p >= j.end || *j.p != ':') {
				jfail(&j, "expected ':'");
				goto out;
			}
			j.p++;
			jws(&j);
			for (k = 0; k < ARRAY_LEN(names); k++)
				if (key.p && strlen(names[k]) == key.len &&
				    memcmp(names[k], key.p, key.len) == 0)
					break;
			if (k < ARRAY_LEN(names)) {
				struct buf v = { 0 };

				if (*slots[k]) {
					jfail(&j, "'%s' given twice", names[k]);
					goto out;
				}
				if (j.p < j.end && *j.p != '"') {
					jfail(&j, "'%s' must be a string",
					      names[k]);
					goto out;
				}
				if (!jstring(&j, &v)) {
					free(v.p);
					goto out;
				}
				buf_add(&v, "", 0);	/* "" -> allocated */
				if (v.nomem) {
					free(v.p);
					jfail(&j, "out of memory");
					goto out;
				}
				*slots[k] = v.p;
				if (k == 4)
					row->content_len = v.len;
			} else if (!jskip(&j, 0)) {
				goto out;
			}
			jws(&j);
			if (j.p < j.end && *j.p == ',') {
				j.p++;
				continue;
			}
			if (j.p < j.end && *j.p == '}') {
				j.p++;
				break;
			}
			jfail(&j, "expected ',' or '}'");
			goto out;
		}
	}
	jws(&j);
	if (j.p != j.end) {
		jfail(&j, "text after the object");
		goto out;
	}
	for (size_t k = 0; k < ARRAY_LEN(names); k++) {
		if (k != 1 && k != 6 && !*slots[k]) {
			jfail(&j, "'%s' is missing", names[k]);
			goto out;
		}
	}
	ok = true;
out:
	free(key.p);
	if (!ok)
		convctl_import_row_free(row);
	return ok;
}
