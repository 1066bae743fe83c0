/*
 * jsonmp.c - JSON text to MessagePack (jsonmp.h).  A recursive descent
 * over the text, bounded in depth; a container's elements are counted by
 * a first pass that skips them (msgpack needs the count first), then
 * packed.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonmp.h"
#include "proto.h"

struct jp {
	const char *s;
	size_t len, pos;
	msgpack_packer *pk;	/* NULL: only skipping */
	char *err;
	size_t errlen;
	int depth;
	char *buf;		/* decoded strings */
};

static int fail(struct jp *j, const char *what)
{
	snprintf(j->err, j->errlen, "%s at byte %zu", what, j->pos + 1);
	return -1;
}

static void ws(struct jp *j)
{
	while (j->pos < j->len && strchr(" \t\r\n", j->s[j->pos]) &&
	       j->s[j->pos])
		j->pos++;
}

static int hex4(struct jp *j, unsigned *out)
{
	unsigned v = 0;

	if (j->len - j->pos < 4)
		return fail(j, "a short \\u escape");
	for (int i = 0; i < 4; i++) {
		char c = j->s[j->pos++];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return fail(j, "a bad \\u escape");
	}
	*out = v;
	return 0;
}

static size_t utf8_put(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string (after its opening quote), decoded into j->buf (never longer
 * than its text), packed as a str. */
static int string(struct jp *j)
{
	size_t n = 0;

	for (;;) {
		char c;

		if (j->pos >= j->len)
			return fail(j, "an unterminated string");
		c = j->s[j->pos++];
		if (c == '"')
			break;
		if ((unsigned char)c < 0x20)
			return fail(j, "a control character in a string");
		if (c != '\\') {
			j->buf[n++] = c;
			continue;
		}
		if (j->pos >= j->len)
			return fail(j, "an unterminated string");
		c = j->s[j->pos++];
		switch (c) {
		case '"': case '\\': case '/':
			j->buf[n++] = c;
			break;
		case 'b': j->buf[n++] = '\b'; break;
		case 'f': j->buf[n++] = '\f'; break;
		case 'n': j->buf[n++] = '\n'; break;
		case 'r': j->buf[n++] = '\r'; break;
		case 't': j->buf[n++] = '\t'; break;
		case 'u': {
			unsigned cp, lo;

			if (hex4(j, &cp) < 0)
				return -1;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (j->len - j->pos < 6 || j->s[j->pos] != '\\' ||
				    j->s[j->pos + 1] != 'u')
					return fail(j, "a lone surrogate");
				j->pos += 2;
				if (hex4(j, &lo) < 0)
					return -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return fail(j, "a lone surrogate");
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				return fail(j, "a lone surrogate");
			} else if (cp == 0) {
				/* convd's strs hold no NUL (convd-protocol(7)) */
				return fail(j, "a NUL character (\\u0000)");
			}
			n += utf8_put(j->buf + n, cp);
			break;
		}
		default:
			return fail(j, "a bad escape");
		}
	}
	if (!proto_utf8_valid(j->buf, n))
		return fail(j, "a string that is not UTF-8");
	return j->pk ? proto_pack_str(j->pk, j->buf, n) : 0;
}

static int number(struct jp *j)
{
	size_t start = j->pos;
	bool integral = true;
	char tmp[64], *end;

	while (j->pos < j->len && strchr("+-0123456789.eE", j->s[j->pos]) &&
	       j->s[j->pos]) {
		if (strchr(".eE", j->s[j->pos]))
			integral = false;
		j->pos++;
	}
	if (j->pos - start == 0 || j->pos - start >= sizeof(tmp))
		return fail(j, "a bad number");
	memcpy(tmp, j->s + start, j->pos - start);
	tmp[j->pos - start] = '\0';
	errno = 0;
	if (integral) {
		long long v = strtoll(tmp, &end, 10);
		unsigned long long u;

		if (*end == '\0' && errno == 0)
			return j->pk ? msgpack_pack_int64(j->pk, v) : 0;
		/* above INT64_MAX: uint64 up to UINT64_MAX, as msgpack has it */
		errno = 0;
		if (tmp[0] != '-') {
			u = strtoull(tmp, &end, 10);
			if (*end == '\0' && errno == 0)
				return j->pk ? msgpack_pack_uint64(j->pk, u) : 0;
		}
		/* a float would keep 53 bits of it and say nothing */
		return fail(j, "an integer beyond 64 bits");
	}
	{
		double d = strtod(tmp, &end);

		if (*end != '\0' || !isfinite(d))
			return fail(j, "a bad number");
		return j->pk ? msgpack_pack_double(j->pk, d) : 0;
	}
}

static int value(struct jp *j);

/* A container (after its opening bracket): counted, then packed. */
static int container(struct jp *j, bool map)
{
	char close = map ? '}' : ']';
	size_t start = j->pos;
	msgpack_packer *pk = j->pk;
	uint32_t n = 0;

	if (++j->depth > JSONMP_MAX_DEPTH)
		return fail(j, "nesting too deep");
	for (int pass = pk ? 0 : 1; pass < 2; pass++) {
		j->pk = pass == 0 ? NULL : pk;
		j->pos = start;
		if (pass == 1 && pk &&
		    (map ? msgpack_pack_map(pk, n) : msgpack_pack_array(pk, n)) < 0)
			return fail(j, "cannot pack");
		n = 0;
		ws(j);
		if (j->pos < j->len && j->s[j->pos] == close) {
			j->pos++;
			continue;
		}
		for (;;) {
			ws(j);
			if (map) {
				if (j->pos >= j->len || j->s[j->pos] != '"')
					return fail(j, "a key that is not a "
						       "string");
				j->pos++;
				if (string(j) < 0)
					return -1;
				ws(j);
				if (j->pos >= j->len || j->s[j->pos] != ':')
					return fail(j, "a missing ':'");
				j->pos++;
			}
			if (value(j) < 0)
				return -1;
			n++;
			ws(j);
			if (j->pos < j->len && j->s[j->pos] == ',') {
				j->pos++;
				continue;
			}
			if (j->pos < j->len && j->s[j->pos] == close) {
				j->pos++;
				break;
			}
			return fail(j, map ? "a missing ',' or '}'"
					   : "a missing ',' or ']'");
		}
	}
	j->pk = pk;
	j->depth--;
	return 0;
}

static bool word(struct jp *j, const char *w)
{
	size_t n = strlen(w);

	if (j->len - j->pos < n || memcmp(j->s + j->pos, w, n) != 0)
		return false;
	j->pos += n;
	return true;
}

static int value(struct jp *j)
{
	ws(j);
	if (j->pos >= j->len)
		return fail(j, "a missing value");
	switch (j->s[j->pos]) {
	case '{':
		j->pos++;
		return container(j, true);
	case '[':
		j->pos++;
		return container(j, false);
	case '"':
		j->pos++;
		return string(j);
	case 't':
		if (word(j, "true"))
			return j->pk ? msgpack_pack_true(j->pk) : 0;
		break;
	case 'f':
		if (word(j, "false"))
			return j->pk ? msgpack_pack_false(j->pk) : 0;
		break;
	case 'n':
		if (word(j, "null"))
			return j->pk ? msgpack_pack_nil(j->pk) : 0;
		break;
	default:
		return number(j);
	}
	return fail(j, "an unknown word");
}

int jsonmp_pack(const char *s, size_t len, msgpack_packer *pk, char *err,
		size_t errlen)
{
	struct jp j = { .s = s, .len = len, .pk = pk, .err = err,
			.errlen = errlen };
	int rc;

	j.buf = malloc(len + 1);
	if (!j.buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	rc = value(&j);
	if (rc == 0) {
		ws(&j);
		if (j.pos != len)
			rc = fail(&j, "text after the value");
	}
	free(j.buf);
	return rc;
}
