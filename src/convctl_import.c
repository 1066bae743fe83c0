/*
 * convctl_import.c - the parser of `convctl import`'s JSON Lines: a
 * small strict JSON reader (RFC 8259) that takes every member of a
 * message (convctl(1) EXPORT FORMAT) and refuses the ones it does not
 * know; structured values as base64 msgpack, or JSON packed by jsonmp.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "content.h"
#include "convctl_import.h"
#include "jsonmp.h"

void convctl_import_row_free(struct convctl_import_row *r)
{
	free(r->user_id);
	free(r->idempotency_key);
	free(r->platform);
	free(r->provider);
	free(r->role);
	free(r->content);
	free(r->created_at);
	free(r->conversation_id);
	free(r->tool_call_id);
	free(r->name);
	free(r->model);
	free(r->content_mp);
	free(r->metadata_mp);
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

/* Skips any JSON value (id; finds the end of a JSON content or
 * metadata, which jsonmp then packs). */
static bool jskip(struct jparser *j, int depth)
{
	jws(j);
	if (j->p >= j->end)
		return jfail(j, "expected a value");
	if (depth >= JSONMP_MAX_DEPTH)
		return jfail(j, "nested deeper than %d levels",
			     JSONMP_MAX_DEPTH);
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

/* The members of a line, in the order of convctl(1) EXPORT FORMAT. */
enum member {
	M_ID,
	M_USER_ID,
	M_PLATFORM,
	M_PROVIDER,
	M_CONVERSATION_ID,
	M_ROLE,
	M_CONTENT,
	M_CONTENT_MP,
	M_CREATED_AT,
	M_TOOL_CALL_ID,
	M_NAME,
	M_MODEL,
	M_TOKENS,
	M_METADATA,
	M_METADATA_MP,
	M_IDEMPOTENCY_KEY,
	M_COUNT
};

static const char *const member_names[M_COUNT] = {
	[M_ID] = "id",
	[M_USER_ID] = "user_id",
	[M_PLATFORM] = "platform",
	[M_PROVIDER] = "provider",
	[M_CONVERSATION_ID] = "conversation_id",
	[M_ROLE] = "role",
	[M_CONTENT] = "content",
	[M_CONTENT_MP] = "content_mp",
	[M_CREATED_AT] = "created_at",
	[M_TOOL_CALL_ID] = "tool_call_id",
	[M_NAME] = "name",
	[M_MODEL] = "model",
	[M_TOKENS] = "tokens",
	[M_METADATA] = "metadata",
	[M_METADATA_MP] = "metadata_mp",
	[M_IDEMPOTENCY_KEY] = "idempotency_key",
};

/* The string member m's place in row, or NULL if m is not a string. */
static char **str_slot(struct convctl_import_row *row, enum member m)
{
	switch (m) {
	case M_USER_ID: return &row->user_id;
	case M_PLATFORM: return &row->platform;
	case M_PROVIDER: return &row->provider;
	case M_CONVERSATION_ID: return &row->conversation_id;
	case M_ROLE: return &row->role;
	case M_CREATED_AT: return &row->created_at;
	case M_TOOL_CALL_ID: return &row->tool_call_id;
	case M_NAME: return &row->name;
	case M_MODEL: return &row->model;
	case M_IDEMPOTENCY_KEY: return &row->idempotency_key;
	default: return NULL;
	}
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Base64 (RFC 4648, padded) s[0..n) into a malloc'd *out; false if s is
 * not base64 (or memory ran out: *out NULL then too, *nomem set). */
static bool b64_decode(const char *s, size_t n, uint8_t **out,
		       size_t *outlen, bool *nomem)
{
	size_t pad = 0, o = 0;
	uint8_t *p;

	*out = NULL;
	*nomem = false;
	if (n == 0 || n % 4 != 0)
		return false;
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	p = malloc(n / 4 * 3);		/* n is bounded by the line */
	if (!p) {
		*nomem = true;
		return false;
	}
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		bool last = i + 4 == n;

		for (int k = 0; k < 4; k++) {
			v[k] = b64_value((unsigned char)s[i + (size_t)k]);
			if (v[k] < 0 && !(last && s[i + (size_t)k] == '=' &&
					  k >= 4 - (int)pad)) {
				free(p);
				return false;
			}
		}
		p[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (!(last && pad == 2))
			p[o++] = (uint8_t)((v[1] & 0xF) << 4 | v[2] >> 2);
		if (!(last && pad >= 1))
			p[o++] = (uint8_t)((v[2] & 0x3) << 6 | v[3]);
	}
	*out = p;
	*outlen = o;
	return true;
}

/* The JSON value at j->p (an array or object) packed as msgpack into a
 * malloc'd *out. */
static bool json_to_mp(struct jparser *j, const char *what, uint8_t **out,
		       size_t *outlen)
{
	const char *start = j->p;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char err[160];

	if (!jskip(j, 0))
		return false;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (jsonmp_pack(start, (size_t)(j->p - start), &pk, err,
			sizeof(err)) < 0) {
		msgpack_sbuffer_destroy(&sb);
		return jfail(j, "'%s': %s", what, err);
	}
	*out = (uint8_t *)sb.data;	/* NULL only if nothing was packed */
	*outlen = sb.size;
	return *out != NULL || jfail(j, "out of memory");
}

/* A base64 string member into *out. */
static bool b64_member(struct jparser *j, const char *what, uint8_t **out,
		       size_t *outlen)
{
	struct buf v = { 0 };
	bool nomem, ok;

	if (!jstring(j, &v)) {
		free(v.p);
		return false;
	}
	ok = b64_decode(v.p ? v.p : "", v.len, out, outlen, &nomem);
	free(v.p);
	if (nomem)
		return jfail(j, "out of memory");
	return ok || jfail(j, "'%s' is not base64 (RFC 4648, padded)", what);
}

/* tokens: an integer from 0 to 2147483647. */
static bool tokens_member(struct jparser *j, struct convctl_import_row *row)
{
	const char *start = j->p;
	int64_t v = 0;

	if (!jnumber(j))
		return false;
	for (const char *q = start; q < j->p; q++) {
		if (*q < '0' || *q > '9' || v > INT32_MAX)
			return jfail(j, "'tokens' must be an integer from 0 "
				     "to 2147483647");
		v = v * 10 + (*q - '0');
	}
	if (v > INT32_MAX)
		return jfail(j, "'tokens' must be an integer from 0 to "
			     "2147483647");
	row->has_tokens = true;
	row->tokens = v;
	return true;
}

/* The value of member m at j->p into row. */
static bool member_value(struct jparser *j, enum member m,
			 struct convctl_import_row *row, bool *json_content)
{
	char **slot = str_slot(row, m);
	const char *name = member_names[m];
	bool null = j->p < j->end && *j->p == 'n';

	if (m == M_ID)
		return jskip(j, 0);
	if (null && m != M_USER_ID && m != M_PROVIDER && m != M_ROLE &&
	    m != M_CREATED_AT && m != M_CONTENT)
		return jliteral(j, "null");	/* as if absent */
	if (m == M_TOKENS)
		return tokens_member(j, row);
	if (m == M_METADATA) {
		if (j->p >= j->end || *j->p != '{')
			return jfail(j, "'metadata' must be an object");
		return json_to_mp(j, name, &row->metadata_mp,
				  &row->metadata_mp_len);
	}
	if (m == M_CONTENT && j->p < j->end && (*j->p == '[' || *j->p == '{')) {
		*json_content = true;
		return json_to_mp(j, name, &row->content_mp,
				  &row->content_mp_len);
	}
	if ((j->p >= j->end || *j->p != '"') && m == M_CONTENT)
		return jfail(j, "'content' must be a string, an array or an "
			     "object");
	if (j->p >= j->end || *j->p != '"')
		return jfail(j, "'%s' must be a string", name);
	if (m == M_CONTENT_MP)
		return b64_member(j, name, &row->content_mp,
				  &row->content_mp_len);
	if (m == M_METADATA_MP)
		return b64_member(j, name, &row->metadata_mp,
				  &row->metadata_mp_len);
	{
		struct buf v = { 0 };

		if (!jstring(j, &v)) {
			free(v.p);
			return false;
		}
		buf_add(&v, "", 0);	/* "" -> allocated */
		if (v.nomem) {
			free(v.p);
			return jfail(j, "out of memory");
		}
		if (m == M_CONTENT) {
			row->content = v.p;
			row->content_len = v.len;
		} else {
			*slot = v.p;
		}
	}
	return true;
}

/* The msgpack value of a structured member: one well-formed array or
 * map (a map for metadata), nested CONTENT_MAX_DEPTH deep at most. */
static bool check_mp(struct jparser *j, const char *what, const uint8_t *p,
		     size_t n, bool map_only)
{
	int d = content_depth((struct strview){ (const char *)p, n },
			      CONTENT_MAX_DEPTH);
	bool is_map = n > 0 && ((p[0] & 0xF0) == 0x80 || p[0] == 0xDE ||
				p[0] == 0xDF);

	if (d == -2)
		return jfail(j, "'%s' is nested deeper than %d levels", what,
			     CONTENT_MAX_DEPTH);
	if (d < 1 || (map_only && !is_map))
		return jfail(j, "'%s' is not one msgpack %s", what,
			     map_only ? "map" : "array or map");
	return true;
}

/* The checks across members, once the line is read. */
static bool check_row(struct jparser *j, struct convctl_import_row *row,
		      unsigned seen, bool json_content)
{
	static const enum member required[] = { M_USER_ID, M_PROVIDER,
						 M_ROLE, M_CREATED_AT };

	for (size_t k = 0; k < ARRAY_LEN(required); k++)
		if (!(seen & 1u << required[k]))
			return jfail(j, "'%s' is missing",
				     member_names[required[k]]);
	if (!row->content && !row->content_mp)
		return jfail(j, "'content' is missing");
	if (json_content && (seen & 1u << M_CONTENT_MP))
		return jfail(j, "'content' and 'content_mp' both give "
			     "structured content");
	if ((seen & 1u << M_METADATA) && (seen & 1u << M_METADATA_MP))
		return jfail(j, "'metadata' and 'metadata_mp' exclude each "
			     "other");
	if (row->metadata_mp &&
	    !check_mp(j, "metadata_mp", row->metadata_mp, row->metadata_mp_len,
		      true))
		return false;
	if (row->content_mp && !json_content &&
	    !check_mp(j, "content_mp", row->content_mp, row->content_mp_len,
		      false))
		return false;
	if (row->content_mp && row->content) {
		/* the text must be content_mp's: an edit of one of them
		 * alone is not dropped without a word */
		char *text = malloc(row->content_mp_len + 1);
		ssize_t n;
		bool same;

		if (!text)
			return jfail(j, "out of memory");
		n = content_text((struct strview){ (const char *)
						   row->content_mp,
						   row->content_mp_len },
				 text, row->content_mp_len + 1);
		same = n >= 0 && (size_t)n == row->content_len &&
		       memcmp(text, row->content, (size_t)n) == 0;
		free(text);
		if (!same)
			return jfail(j, "'content' is not the text of "
				     "'content_mp' (edit both, or leave "
				     "'content' out)");
		free(row->content);
		row->content = NULL;
		row->content_len = 0;
	}
	return true;
}

/* One line (convctl_import.h). */
bool convctl_import_parse(const char *s, size_t len,
			  struct convctl_import_row *row, char *err,
			  size_t errlen)
{
	struct jparser j = { s, s + len, err, errlen };
	struct buf key = { 0 };
	unsigned seen = 0;
	bool ok = false, json_content = false;

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
			for (k = 0; k < M_COUNT; k++)
				if (key.p && strlen(member_names[k]) == key.len &&
				    memcmp(member_names[k], key.p, key.len) == 0)
					break;
			if (k == M_COUNT) {
				/* never dropped without a word */
				jfail(&j, "unknown member \"%.*s\"",
				      key.len > 64 ? 64 : (int)key.len,
				      key.p ? key.p : "");
				goto out;
			}
			if (seen & 1u << k) {
				jfail(&j, "'%s' given twice", member_names[k]);
				goto out;
			}
			seen |= 1u << k;
			if (!member_value(&j, (enum member)k, row,
					  &json_content))
				goto out;
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
	ok = check_row(&j, row, seen, json_content);
out:
	free(key.p);
	if (!ok)
		convctl_import_row_free(row);
	return ok;
}
