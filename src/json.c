/*
 * json.c - the one JSON writer (see json.h for the rules).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "json.h"
#include "utf8.h"

void json_str(struct json *j, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	FILE *f = j->f;
	size_t i = 0;

	fputc('"', f);
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_next(p + i, len - i, &cp);

		switch (cp) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		case UTF8_INVALID:
			fputs("\\ufffd", f);
			j->replaced++;
			break;
		default:
			if (cp < 0x20 || cp == 0x7F)
				fprintf(f, "\\u%04x", (unsigned)cp);
			else
				fwrite(p + i, 1, n, f);
		}
		i += n;
	}
	fputc('"', f);
}

void json_cstr(struct json *j, const char *s)
{
	if (s)
		json_str(j, s, strlen(s));
	else
		json_null(j);
}

void json_null(struct json *j)
{
	fputs("null", j->f);
}

void json_bool(struct json *j, bool v)
{
	fputs(v ? "true" : "false", j->f);
}

void json_int(struct json *j, int64_t v)
{
	fprintf(j->f, "%" PRId64, v);
}

void json_uint(struct json *j, uint64_t v)
{
	fprintf(j->f, "%" PRIu64, v);
}

void json_double(struct json *j, double v)
{
	char buf[64];

	if (!isfinite(v)) {
		json_null(j);
		return;
	}
	buf_fmt_double(buf, sizeof(buf), v);
	fputs(buf, j->f);
}

void json_hex(struct json *j, const void *p, size_t n)
{
	const unsigned char *b = p;

	fputc('"', j->f);
	for (size_t i = 0; i < n; i++)
		fprintf(j->f, "%02x", b[i]);
	fputc('"', j->f);
}

void json_sep(struct json *j, bool *first)
{
	if (!*first)
		fputc(',', j->f);
	*first = false;
}

void json_key(struct json *j, bool *first, const char *key)
{
	json_sep(j, first);
	json_cstr(j, key);
	fputc(':', j->f);
}

void json_kv_str(struct json *j, bool *first, const char *key,
		 const char *val)
{
	json_key(j, first, key);
	json_cstr(j, val);
}

void json_kv_bool(struct json *j, bool *first, const char *key, bool val)
{
	json_key(j, first, key);
	json_bool(j, val);
}

void json_kv_int(struct json *j, bool *first, const char *key, int64_t val)
{
	json_key(j, first, key);
	json_int(j, val);
}

bool json_warn_replaced(const struct json *j, const char *prog)
{
	if (j->replaced == 0)
		return false;
	fflush(j->f);
	fprintf(stderr,
		"%s: warning: %" PRIu64 " byte%s of invalid UTF-8 written as "
		"U+FFFD in the JSON output\n",
		prog, j->replaced, j->replaced == 1 ? "" : "s");
	return true;
}
