/*
 * migrate.c - revision files and the revision graph (pure).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, strndup */
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate.h"

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

/* ---------------------------------------------------------------- text */

bool migrate_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t n;
		uint32_t cp;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

int migrate_message_check(const char *msg, char *err, size_t errlen)
{
	size_t len = strlen(msg);

	if (len > MIGRATE_MESSAGE_MAX) {
		seterr(err, errlen, "message too long (%zu bytes, at most %d)",
		       len, MIGRATE_MESSAGE_MAX);
		return -1;
	}
	if (!migrate_utf8_valid(msg, len)) {
		seterr(err, errlen, "message is not valid UTF-8");
		return -1;
	}
	return 0;
}

char *migrate_message_escape(const char *msg)
{
	size_t len = strlen(msg), o = 0;
	char *out;

	if (len > MIGRATE_MESSAGE_MAX)
		return NULL;
	out = malloc(len * 4 + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];

		if (c == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c == '\r') {
			out[o++] = '\\';
			out[o++] = 'r';
		} else if (c == '\t') {
			out[o++] = '\\';
			out[o++] = 't';
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)sprintf(out + o, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}

/* Inverse of migrate_message_escape; an unknown escape stays as it is. */
static char *message_unescape(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\\' || i + 1 == len) {
			out[o++] = s[i];
			continue;
		}
		switch (s[i + 1]) {
		case '\\':
			out[o++] = '\\';
			i++;
			break;
		case 'n':
			out[o++] = '\n';
			i++;
			break;
		case 'r':
			out[o++] = '\r';
			i++;
			break;
		case 't':
			out[o++] = '\t';
			i++;
			break;
		case 'x':
			if (i + 3 < len && hex_digit(s[i + 2]) >= 0 &&
			    hex_digit(s[i + 3]) >= 0) {
				int v = hex_digit(s[i + 2]) * 16 + hex_digit(s[i + 3]);

				if (v != 0) {
					out[o++] = (char)v;
					i += 3;
					break;
				}
			}
			out[o++] = s[i];
			break;
		default:
			out[o++] = s[i];
			break;
		}
	}
	out[o] = '\0';
	return out;
}

bool migrate_id_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > MIGRATE_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return strcmp(s, "head") != 0 && strcmp(s, "heads") != 0 &&
	       strcmp(s, "base") != 0;
}

/* ------------------------------------------------------------- parsing */

void migrate_rev_free(struct migrate_rev *r)
{
	if (!r)
		return;
	free(r->id);
	for (int i = 0; i < r->nparents; i++)
		free(r->parents[i]);
	free(r->parents);
	free(r->message);
	free(r->created);
	free(r->up);
	free(r->down);
	free(r->path);
	free(r->parent_idx);
	free(r->child_idx);
	memset(r, 0, sizeof(*r));
}

void migrate_rev_checksum(struct migrate_rev *r)
{
	struct migrate_sha256 s;
	uint8_t d[MIGRATE_SHA256_LEN];
	const char *t = r->transactional ? "transactional: yes\n"
					 : "transactional: no\n";

	migrate_sha256_init(&s);
	migrate_sha256_update(&s, t, strlen(t));
	migrate_sha256_update(&s, "-- +up\n", 7);
	if (r->up)
		migrate_sha256_update(&s, r->up, strlen(r->up));
	migrate_sha256_update(&s, "-- +down\n", 9);
	if (r->down)
		migrate_sha256_update(&s, r->down, strlen(r->down));
	migrate_sha256_final(&s, d);
	migrate_sha256_tohex(d, r->checksum);
}

/* A growable buffer for the sections. */
struct sbuf {
	char *p;
	size_t len, cap;
};

static int sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static char *sbuf_take(struct sbuf *b)
{
	char *p = b->p;

	if (!p)
		p = strdup("");
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

/* The comment text of a line starting with "--", without leading blanks
 * and trailing white space; NULL when the line is not a comment. */
static const char *comment_text(const char *line, size_t len, size_t *tlen)
{
	size_t i = 0;

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (len - i < 2 || line[i] != '-' || line[i + 1] != '-')
		return NULL;
	i += 2;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	while (len > i && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	*tlen = len - i;
	return line + i;
}

static bool is_blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			return false;
	return true;
}

static bool text_is(const char *t, size_t tlen, const char *word)
{
	return tlen == strlen(word) && memcmp(t, word, tlen) == 0;
}

static int parse_bool(const char *v, size_t len, bool *out)
{
	if (text_is(v, len, "yes") || text_is(v, len, "true") ||
	    text_is(v, len, "on")) {
		*out = true;
		return 0;
	}
	if (text_is(v, len, "no") || text_is(v, len, "false") ||
	    text_is(v, len, "off")) {
		*out = false;
		return 0;
	}
	return -1;
}

static int parse_parents(struct migrate_rev *r, const char *v, size_t len,
			 char *err, size_t errlen, const char *where)
{
	size_t i = 0;

	while (i < len) {
		size_t start;
		char id[MIGRATE_ID_MAX + 1];
		char **np;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && v[i] != ' ' && v[i] != '\t' && v[i] != ',')
			i++;
		if (i - start > MIGRATE_ID_MAX) {
			seterr(err, errlen, "%s: parent id too long", where);
			return -1;
		}
		memcpy(id, v + start, i - start);
		id[i - start] = '\0';
		if (!migrate_id_valid(id)) {
			seterr(err, errlen, "%s: invalid parent id '%s'", where,
			       id);
			return -1;
		}
		for (int k = 0; k < r->nparents; k++) {
			if (strcmp(r->parents[k], id) == 0) {
				seterr(err, errlen,
				       "%s: parent '%s' given twice", where,
				       id);
				return -1;
			}
		}
		if (r->nparents >= MIGRATE_MAX_PARENTS) {
			seterr(err, errlen, "%s: more than %d parents", where,
			       MIGRATE_MAX_PARENTS);
			return -1;
		}
		np = realloc(r->parents,
			     sizeof(char *) * (size_t)(r->nparents + 1));
		if (!np)
			goto nomem;
		r->parents = np;
		r->parents[r->nparents] = strdup(id);
		if (!r->parents[r->nparents])
			goto nomem;
		r->nparents++;
	}
	return 0;
nomem:
	seterr(err, errlen, "out of memory");
	return -1;
}

/* A header line "key: value": 0 = set, 1 = not a header line, -1 error. */
static int parse_header(struct migrate_rev *r, const char *t, size_t tlen,
			bool *seen, char *err, size_t errlen,
			const char *where)
{
	static const char *const keys[] = {"revision", "parents", "message",
					   "transactional", "created"};
	size_t k = 0;
	const char *v;
	size_t vlen;
	int which = -1;

	while (k < tlen && ((t[k] >= 'a' && t[k] <= 'z') || t[k] == '_' ||
			    t[k] == '-'))
		k++;
	if (k == 0 || k == tlen || t[k] != ':')
		return 1;
	for (size_t i = 0; i < ARRAY_LEN(keys); i++)
		if (text_is(t, k, keys[i]))
			which = (int)i;
	if (which < 0) {
		seterr(err, errlen,
		       "%s: unknown header '%.*s:' (known: revision, parents, "
		       "message, transactional, created)",
		       where, (int)k, t);
		return -1;
	}
	if (seen[which]) {
		seterr(err, errlen, "%s: header '%s' given twice", where,
		       keys[which]);
		return -1;
	}
	seen[which] = true;
	v = t + k + 1;
	vlen = tlen - k - 1;
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	switch (which) {
	case 0: {
		char id[MIGRATE_ID_MAX + 1];

		if (vlen > MIGRATE_ID_MAX) {
			seterr(err, errlen, "%s: revision id too long", where);
			return -1;
		}
		memcpy(id, v, vlen);
		id[vlen] = '\0';
		if (!migrate_id_valid(id)) {
			seterr(err, errlen,
			       "%s: invalid revision id '%s' (1..%d letters, "
			       "digits or '_'; not head, heads or base)",
			       where, id, MIGRATE_ID_MAX);
			return -1;
		}
		r->id = strdup(id);
		if (!r->id)
			goto nomem;
		return 0;
	}
	case 1:
		if (text_is(v, vlen, "(none)"))
			return 0;
		return parse_parents(r, v, vlen, err, errlen, where);
	case 2:
		if (vlen > MIGRATE_MESSAGE_MAX * 4) {
			seterr(err, errlen, "%s: message too long", where);
			return -1;
		}
		r->message = message_unescape(v, vlen);
		if (!r->message)
			goto nomem;
		if (migrate_message_check(r->message, err, errlen) < 0) {
			char tmp[128];

			snprintf(tmp, sizeof(tmp), "%s", err);
			seterr(err, errlen, "%s: %s", where, tmp);
			return -1;
		}
		return 0;
	case 3:
		if (parse_bool(v, vlen, &r->transactional) < 0) {
			seterr(err, errlen,
			       "%s: transactional must be yes or no", where);
			return -1;
		}
		return 0;
	default:
		if (vlen > 64) {
			seterr(err, errlen, "%s: created too long", where);
			return -1;
		}
		r->created = strndup(v, vlen);
		if (!r->created)
			goto nomem;
		return 0;
	}
nomem:
	seterr(err, errlen, "out of memory");
	return -1;
}

int migrate_rev_parse(const char *text, size_t len, const char *path,
		      struct migrate_rev *out, char *err, size_t errlen)
{
	struct migrate_rev r;
	struct sbuf up = {0}, down = {0};
	bool seen[5] = {false};
	enum { S_HEADER, S_UP, S_DOWN } state = S_HEADER;
	const char *name = path ? path : "(revision)";
	char where[512];
	size_t pos = 0;
	int lineno = 0;

	memset(&r, 0, sizeof(r));
	r.transactional = true;
	if (len > MIGRATE_MAX_FILE) {
		seterr(err, errlen, "%s: larger than %u bytes", name,
		       MIGRATE_MAX_FILE);
		return -1;
	}
	if (memchr(text, '\0', len)) {
		seterr(err, errlen, "%s: contains a NUL byte", name);
		return -1;
	}
	if (!migrate_utf8_valid(text, len)) {
		seterr(err, errlen, "%s: not valid UTF-8", name);
		return -1;
	}
	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos;
		size_t clen = llen, tlen = 0;
		const char *t;

		pos += llen + (nl ? 1 : 0);
		lineno++;
		if (clen > 0 && line[clen - 1] == '\r')
			clen--;
		snprintf(where, sizeof(where), "%s:%d", name, lineno);
		t = comment_text(line, clen, &tlen);
		if (t && text_is(t, tlen, "+up")) {
			if (state != S_HEADER) {
				seterr(err, errlen, "%s: a second '-- +up'",
				       where);
				goto fail;
			}
			state = S_UP;
			r.up_line = lineno + 1;
			continue;
		}
		if (t && text_is(t, tlen, "+down")) {
			if (state != S_UP) {
				seterr(err, errlen,
				       "%s: '-- +down' %s", where,
				       state == S_HEADER ? "before '-- +up'"
							 : "given twice");
				goto fail;
			}
			state = S_DOWN;
			r.down_line = lineno + 1;
			continue;
		}
		if (state == S_HEADER) {
			int rc;

			if (is_blank(line, clen))
				continue;
			if (!t) {
				seterr(err, errlen,
				       "%s: SQL before '-- +up' (the header "
				       "holds only '-- ' comment lines)",
				       where);
				goto fail;
			}
			rc = parse_header(&r, t, tlen, seen, err, errlen,
					  where);
			if (rc < 0)
				goto fail;
			continue;
		}
		if (sbuf_add(state == S_UP ? &up : &down, line, clen) < 0 ||
		    sbuf_add(state == S_UP ? &up : &down, "\n", 1) < 0) {
			seterr(err, errlen, "out of memory");
			goto fail;
		}
	}
	if (!r.id) {
		seterr(err, errlen, "%s: no '-- revision:' header", name);
		goto fail;
	}
	if (state == S_HEADER) {
		seterr(err, errlen, "%s: no '-- +up' section", name);
		goto fail;
	}
	if (state == S_UP) {
		seterr(err, errlen, "%s: no '-- +down' section", name);
		goto fail;
	}
	for (int i = 0; i < r.nparents; i++) {
		if (strcmp(r.parents[i], r.id) == 0) {
			seterr(err, errlen,
			       "%s: revision %s names itself as a parent", name,
			       r.id);
			goto fail;
		}
	}
	if (!r.message) {
		r.message = strdup("");
		if (!r.message) {
			seterr(err, errlen, "out of memory");
			goto fail;
		}
	}
	r.up = sbuf_take(&up);
	r.down = sbuf_take(&down);
	if (!r.up || !r.down) {
		seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (path) {
		r.path = strdup(path);
		if (!r.path) {
			seterr(err, errlen, "out of memory");
			goto fail;
		}
	}
	migrate_rev_checksum(&r);
	*out = r;
	return 0;
fail:
	free(up.p);
	free(down.p);
	migrate_rev_free(&r);
	return -1;
}

char *migrate_rev_format(const char *id, char *const *parents, int nparents,
			 const char *message, const char *created,
			 bool transactional, const char *up, const char *down,
			 char *err, size_t errlen)
{
	struct sbuf b = {0};
	char *esc;
	int rc = 0;

	if (!migrate_id_valid(id)) {
		seterr(err, errlen, "invalid revision id '%s'", id);
		return NULL;
	}
	if (nparents > MIGRATE_MAX_PARENTS) {
		seterr(err, errlen, "more than %d parents", MIGRATE_MAX_PARENTS);
		return NULL;
	}
	if (migrate_message_check(message, err, errlen) < 0)
		return NULL;
	esc = migrate_message_escape(message);
	if (!esc) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	rc |= sbuf_add(&b, "-- revision: ", 13);
	rc |= sbuf_add(&b, id, strlen(id));
	rc |= sbuf_add(&b, "\n", 1);
	if (nparents > 0) {
		rc |= sbuf_add(&b, "-- parents:", 11);
		for (int i = 0; i < nparents; i++) {
			rc |= sbuf_add(&b, " ", 1);
			rc |= sbuf_add(&b, parents[i], strlen(parents[i]));
		}
		rc |= sbuf_add(&b, "\n", 1);
	}
	rc |= sbuf_add(&b, "-- message: ", 12);
	rc |= sbuf_add(&b, esc, strlen(esc));
	rc |= sbuf_add(&b, "\n", 1);
	free(esc);
	if (!transactional)
		rc |= sbuf_add(&b, "-- transactional: no\n", 21);
	if (created) {
		rc |= sbuf_add(&b, "-- created: ", 12);
		rc |= sbuf_add(&b, created, strnlen(created, 64));
		rc |= sbuf_add(&b, "\n", 1);
	}
	rc |= sbuf_add(&b, "\n-- +up\n", 8);
	rc |= sbuf_add(&b, up, strlen(up));
	if (up[0] && up[strlen(up) - 1] != '\n')
		rc |= sbuf_add(&b, "\n", 1);
	rc |= sbuf_add(&b, "\n-- +down\n", 10);
	rc |= sbuf_add(&b, down, strlen(down));
	if (down[0] && down[strlen(down) - 1] != '\n')
		rc |= sbuf_add(&b, "\n", 1);
	if (rc) {
		free(b.p);
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	return sbuf_take(&b);
}

char *migrate_file_name(const char *id, const char *message)
{
	char slug[41];
	size_t n = 0;
	bool under = false;
	char *out;

	for (const char *p = message; *p && n < sizeof(slug) - 1; p++) {
		char c = *p;

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			slug[n++] = c;
			under = false;
		} else if (c >= 'A' && c <= 'Z') {
			slug[n++] = (char)(c - 'A' + 'a');
			under = false;
		} else if (n > 0 && !under) {
			slug[n++] = '_';
			under = true;
		}
	}
	while (n > 0 && slug[n - 1] == '_')
		n--;
	slug[n] = '\0';
	if (asprintf(&out, "%s%s%s.sql", id, n ? "_" : "", slug) < 0)
		return NULL;
	return out;
}

int migrate_new_id(char out[MIGRATE_NEW_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[MIGRATE_NEW_ID_LEN / 2];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[MIGRATE_NEW_ID_LEN] = '\0';
	/* An id of digits only could be mistaken for a count: start with a
	 * letter. */
	if (out[0] >= '0' && out[0] <= '9')
		out[0] = (char)('a' + (out[0] - '0') % 6);
	return 0;
}

/* ----------------------------------------------------------------- set */

void migrate_set_init(struct migrate_set *s)
{
	memset(s, 0, sizeof(*s));
}

void migrate_set_free(struct migrate_set *s)
{
	for (int i = 0; i < s->n; i++)
		migrate_rev_free(&s->revs[i]);
	free(s->revs);
	free(s->order);
	free(s->heads);
	memset(s, 0, sizeof(*s));
}

int migrate_set_add(struct migrate_set *s, struct migrate_rev *r, char *err,
		    size_t errlen)
{
	if (s->n >= MIGRATE_MAX_REVISIONS) {
		seterr(err, errlen, "more than %d revisions",
		       MIGRATE_MAX_REVISIONS);
		return -1;
	}
	if (s->n == s->cap) {
		int cap = s->cap ? s->cap * 2 : 16;
		struct migrate_rev *nr =
			realloc(s->revs, sizeof(*nr) * (size_t)cap);

		if (!nr) {
			seterr(err, errlen, "out of memory");
			return -1;
		}
		s->revs = nr;
		s->cap = cap;
	}
	s->revs[s->n++] = *r;
	memset(r, 0, sizeof(*r));
	s->built = false;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_file(const char *path, char **out, size_t *outlen, char *err,
		     size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fd < 0) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		seterr(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > MIGRATE_MAX_FILE) {
		seterr(err, errlen, "%s: larger than %u bytes", path,
		       MIGRATE_MAX_FILE);
		close(fd);
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		seterr(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			seterr(err, errlen, "%s: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*outlen = got;
	return 0;
}

int migrate_set_load_dir(struct migrate_set *s, const char *dir,
			 const char *skip,
			 void (*report)(const char *msg, void *arg), void *arg,
			 char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t nnames = 0, cap = 0;
	int bad = 0, rc = -1;

	if (!d) {
		seterr(err, errlen, "cannot read the migrations directory %s: %s",
		       dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len < 5 || de->d_name[0] == '.' ||
		    strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		if (skip && strcmp(de->d_name, skip) == 0)
			continue;
		if (nnames >= MIGRATE_MAX_REVISIONS) {
			seterr(err, errlen, "%s: more than %d files", dir,
			       MIGRATE_MAX_REVISIONS);
			goto out;
		}
		if (nnames == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **nn = realloc(names, sizeof(char *) * ncap);

			if (!nn)
				goto nomem;
			names = nn;
			cap = ncap;
		}
		names[nnames] = strdup(de->d_name);
		if (!names[nnames])
			goto nomem;
		nnames++;
	}
	if (nnames > 0)
		qsort(names, nnames, sizeof(char *), cmp_str);
	for (size_t i = 0; i < nnames; i++) {
		char *path, *text = NULL, msg[1024];
		size_t len = 0;
		struct migrate_rev r;

		if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
			goto nomem;
		if (read_file(path, &text, &len, msg, sizeof(msg)) < 0 ||
		    migrate_rev_parse(text, len, path, &r, msg, sizeof(msg)) <
			    0) {
			bad++;
			if (report)
				report(msg, arg);
			else if (bad == 1)
				seterr(err, errlen, "%s", msg);
			free(text);
			free(path);
			continue;
		}
		free(text);
		free(path);
		if (migrate_set_add(s, &r, msg, sizeof(msg)) < 0) {
			migrate_rev_free(&r);
			seterr(err, errlen, "%s", msg);
			goto out;
		}
	}
	if (bad) {
		if (report)
			seterr(err, errlen, "%d broken revision file%s in %s",
			       bad, bad == 1 ? "" : "s", dir);
		goto out;
	}
	rc = 0;
	goto out;
nomem:
	seterr(err, errlen, "out of memory");
out:
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

int migrate_set_find_exact(const struct migrate_set *s, const char *id)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->revs[i].id, id) == 0)
			return i;
	return -1;
}

/* A min-heap of revision indexes ordered by id. */
struct idheap {
	int *v;
	int n;
	const struct migrate_set *s;
};

static bool heap_less(const struct idheap *h, int a, int b)
{
	return strcmp(h->s->revs[h->v[a]].id, h->s->revs[h->v[b]].id) < 0;
}

static void heap_push(struct idheap *h, int x)
{
	int i = h->n++;

	h->v[i] = x;
	while (i > 0) {
		int p = (i - 1) / 2;

		if (!heap_less(h, i, p))
			break;
		int t = h->v[p];
		h->v[p] = h->v[i];
		h->v[i] = t;
		i = p;
	}
}

static int heap_pop(struct idheap *h)
{
	int top = h->v[0], i = 0;

	h->v[0] = h->v[--h->n];
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->n && heap_less(h, l, m))
			m = l;
		if (r < h->n && heap_less(h, r, m))
			m = r;
		if (m == i)
			break;
		int t = h->v[m];
		h->v[m] = h->v[i];
		h->v[i] = t;
		i = m;
	}
	return top;
}

/* Describes one cycle among the nodes not ordered (indeg > 0). */
static void describe_cycle(const struct migrate_set *s, const int *indeg,
			   char *err, size_t errlen)
{
	int start = -1, cur;
	int *seen_at = NULL;
	size_t o;

	for (int i = 0; i < s->n; i++)
		if (indeg[i] > 0) {
			start = i;
			break;
		}
	if (start < 0) {
		seterr(err, errlen, "the revision graph has a cycle");
		return;
	}
	seen_at = calloc((size_t)s->n, sizeof(int));
	if (!seen_at) {
		seterr(err, errlen, "the revision graph has a cycle");
		return;
	}
	/* Walk parents that are also unordered until a node repeats. */
	cur = start;
	for (int step = 1;; step++) {
		const struct migrate_rev *r = &s->revs[cur];
		int next = -1;

		if (seen_at[cur])
			break;
		seen_at[cur] = step;
		for (int k = 0; k < r->nparents; k++)
			if (indeg[r->parent_idx[k]] > 0) {
				next = r->parent_idx[k];
				break;
			}
		if (next < 0)
			break;
		cur = next;
	}
	/* cur is on the cycle: print it. */
	o = (size_t)snprintf(err, errlen, "the revision graph has a cycle: %s",
			     s->revs[cur].id);
	for (int x = cur, guard = 0; guard < s->n && o < errlen; guard++) {
		const struct migrate_rev *r = &s->revs[x];
		int next = -1;

		for (int k = 0; k < r->nparents; k++)
			if (indeg[r->parent_idx[k]] > 0) {
				next = r->parent_idx[k];
				break;
			}
		if (next < 0)
			break;
		o += (size_t)snprintf(err + o, errlen - o, " -> %s",
				      s->revs[next].id);
		if (next == cur)
			break;
		x = next;
	}
	free(seen_at);
}

int migrate_set_build(struct migrate_set *s, char *err, size_t errlen)
{
	int *indeg = NULL, norder = 0;
	struct idheap h = {NULL, 0, s};

	free(s->order);
	free(s->heads);
	s->order = NULL;
	s->heads = NULL;
	s->nheads = 0;
	s->built = false;
	for (int i = 0; i < s->n; i++) {
		struct migrate_rev *r = &s->revs[i];

		free(r->parent_idx);
		free(r->child_idx);
		r->parent_idx = NULL;
		r->child_idx = NULL;
		r->nchildren = 0;
	}
	for (int i = 0; i < s->n; i++) {
		for (int j = i + 1; j < s->n; j++) {
			if (strcmp(s->revs[i].id, s->revs[j].id) == 0) {
				seterr(err, errlen,
				       "revision %s is defined twice (%s and "
				       "%s)",
				       s->revs[i].id,
				       s->revs[i].path ? s->revs[i].path : "?",
				       s->revs[j].path ? s->revs[j].path : "?");
				return -1;
			}
		}
	}
	/* Parents, and a child count per revision. */
	for (int i = 0; i < s->n; i++) {
		struct migrate_rev *r = &s->revs[i];

		if (r->nparents == 0)
			continue;
		r->parent_idx = malloc(sizeof(int) * (size_t)r->nparents);
		if (!r->parent_idx)
			goto nomem;
		for (int k = 0; k < r->nparents; k++) {
			int p = migrate_set_find_exact(s, r->parents[k]);

			if (p < 0) {
				seterr(err, errlen,
				       "revision %s (%s): parent %s not found",
				       r->id, r->path ? r->path : "?",
				       r->parents[k]);
				return -1;
			}
			r->parent_idx[k] = p;
			s->revs[p].nchildren++;
		}
	}
	for (int i = 0; i < s->n; i++) {
		struct migrate_rev *r = &s->revs[i];

		if (r->nchildren > 0) {
			r->child_idx = malloc(sizeof(int) * (size_t)r->nchildren);
			if (!r->child_idx)
				goto nomem;
		}
		r->nchildren = 0;
	}
	for (int i = 0; i < s->n; i++) {
		struct migrate_rev *r = &s->revs[i];

		for (int k = 0; k < r->nparents; k++) {
			struct migrate_rev *p = &s->revs[r->parent_idx[k]];

			p->child_idx[p->nchildren++] = i;
		}
	}
	/* Kahn's algorithm, smallest id first among the ready ones. */
	indeg = calloc((size_t)s->n + 1, sizeof(int));
	h.v = malloc(sizeof(int) * ((size_t)s->n + 1));
	s->order = malloc(sizeof(int) * ((size_t)s->n + 1));
	s->heads = malloc(sizeof(int) * ((size_t)s->n + 1));
	if (!indeg || !h.v || !s->order || !s->heads)
		goto nomem;
	for (int i = 0; i < s->n; i++) {
		indeg[i] = s->revs[i].nparents;
		if (indeg[i] == 0)
			heap_push(&h, i);
	}
	while (h.n > 0) {
		int x = heap_pop(&h);
		struct migrate_rev *r = &s->revs[x];

		r->pos = norder;
		s->order[norder++] = x;
		for (int k = 0; k < r->nchildren; k++)
			if (--indeg[r->child_idx[k]] == 0)
				heap_push(&h, r->child_idx[k]);
	}
	if (norder < s->n) {
		describe_cycle(s, indeg, err, errlen);
		free(indeg);
		free(h.v);
		return -1;
	}
	for (int i = 0; i < s->n; i++) {
		int x = s->order[i];

		if (s->revs[x].nchildren == 0)
			s->heads[s->nheads++] = x;
	}
	free(indeg);
	free(h.v);
	s->built = true;
	return 0;
nomem:
	free(indeg);
	free(h.v);
	seterr(err, errlen, "out of memory");
	return -1;
}

int migrate_set_find(const struct migrate_set *s, const char *text,
		     char *err, size_t errlen)
{
	size_t len = strlen(text);
	int found = -1, nfound = 0;
	char cands[256];
	size_t o = 0;

	if (len == 0 || len > MIGRATE_ID_MAX) {
		seterr(err, errlen, "invalid revision '%s'", text);
		return -1;
	}
	found = migrate_set_find_exact(s, text);
	if (found >= 0)
		return found;
	cands[0] = '\0';
	for (int i = 0; i < s->n; i++) {
		if (strncmp(s->revs[i].id, text, len) != 0)
			continue;
		if (nfound < 5 && o < sizeof(cands))
			o += (size_t)snprintf(cands + o, sizeof(cands) - o,
					      "%s%s", nfound ? ", " : "",
					      s->revs[i].id);
		found = i;
		nfound++;
	}
	if (nfound == 1)
		return found;
	if (nfound == 0)
		seterr(err, errlen, "no revision '%s'", text);
	else
		seterr(err, errlen, "'%s' is ambiguous: %s%s", text, cands,
		       nfound > 5 ? ", ..." : "");
	return -1;
}

void migrate_set_ancestors(const struct migrate_set *s, int idx, bool *mark)
{
	int *stack, n = 0;

	stack = malloc(sizeof(int) * ((size_t)s->n + 1));
	if (!stack) {
		/* Fall back to recursion-free marking by order. */
		mark[idx] = true;
		for (int i = s->revs[idx].pos; i >= 0; i--) {
			int x = s->order[i];

			if (!mark[x])
				continue;
			for (int k = 0; k < s->revs[x].nparents; k++)
				mark[s->revs[x].parent_idx[k]] = true;
		}
		return;
	}
	if (!mark[idx]) {
		mark[idx] = true;
		stack[n++] = idx;
	} else {
		stack[n++] = idx;
	}
	while (n > 0) {
		const struct migrate_rev *r = &s->revs[stack[--n]];

		for (int k = 0; k < r->nparents; k++) {
			int p = r->parent_idx[k];

			if (!mark[p]) {
				mark[p] = true;
				stack[n++] = p;
			}
		}
	}
	free(stack);
}

void migrate_set_descendants(const struct migrate_set *s, int idx,
			     bool *mark)
{
	/* In topological order every descendant comes after idx. */
	bool *in = calloc((size_t)s->n + 1, sizeof(bool));

	if (!in) {
		for (int i = s->revs[idx].pos + 1; i < s->n; i++)
			mark[s->order[i]] = true;
		return;
	}
	in[idx] = true;
	for (int i = s->revs[idx].pos + 1; i < s->n; i++) {
		int x = s->order[i];
		const struct migrate_rev *r = &s->revs[x];

		for (int k = 0; k < r->nparents; k++) {
			if (in[r->parent_idx[k]]) {
				in[x] = true;
				mark[x] = true;
				break;
			}
		}
	}
	free(in);
}

bool migrate_set_is_ancestor(const struct migrate_set *s, int a, int b)
{
	bool *mark;
	bool res;

	if (a == b)
		return false;
	mark = calloc((size_t)s->n + 1, sizeof(bool));
	if (!mark)
		return false;
	migrate_set_ancestors(s, b, mark);
	res = mark[a];
	free(mark);
	return res;
}

void migrate_set_heads_text(const struct migrate_set *s, char *buf,
			    size_t len)
{
	size_t o = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (int i = 0; i < s->nheads && o < len; i++) {
		const char *sep = i == 0		  ? ""
				  : i == s->nheads - 1 ? " and "
						       : ", ";

		o += (size_t)snprintf(buf + o, len - o, "%s%s", sep,
				      s->revs[s->heads[i]].id);
	}
}

/* --------------------------------------------------------------- plans */

int migrate_target_parse(const struct migrate_set *s, const char *text,
			 struct migrate_target *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	if (strcmp(text, "head") == 0) {
		t->kind = MT_HEAD;
		return 0;
	}
	if (strcmp(text, "heads") == 0) {
		t->kind = MT_HEADS;
		return 0;
	}
	if (strcmp(text, "base") == 0) {
		t->kind = MT_BASE;
		return 0;
	}
	if (text[0] == '+' || text[0] == '-') {
		long v = 0;
		const char *p = text + 1;

		if (!*p) {
			seterr(err, errlen, "invalid target '%s'", text);
			return -1;
		}
		for (; *p; p++) {
			if (*p < '0' || *p > '9' || v > MIGRATE_MAX_REVISIONS) {
				seterr(err, errlen,
				       "invalid target '%s' (+N or -N, N from 1 "
				       "to %d)",
				       text, MIGRATE_MAX_REVISIONS);
				return -1;
			}
			v = v * 10 + (*p - '0');
		}
		if (v < 1 || v > MIGRATE_MAX_REVISIONS) {
			seterr(err, errlen,
			       "invalid target '%s' (+N or -N, N from 1 to %d)",
			       text, MIGRATE_MAX_REVISIONS);
			return -1;
		}
		t->kind = MT_RELATIVE;
		t->n = text[0] == '+' ? (int)v : -(int)v;
		return 0;
	}
	t->kind = MT_REV;
	t->rev = migrate_set_find(s, text, err, errlen);
	return t->rev < 0 ? -1 : 0;
}

static int plan_pending_closure(const struct migrate_set *s,
				const bool *applied, const bool *want,
				int *out, int *nout)
{
	*nout = 0;
	for (int i = 0; i < s->n; i++) {
		int x = s->order[i];

		if (want[x] && !applied[x])
			out[(*nout)++] = x;
	}
	return 0;
}

/* Whether x is applied (in done[]) and none of its children is. */
static bool walk_current(const struct migrate_set *s, const bool *done,
			 int x)
{
	if (!done[x])
		return false;
	for (int k = 0; k < s->revs[x].nchildren; k++)
		if (done[s->revs[x].child_idx[k]])
			return false;
	return true;
}

/* Whether x may come next in a walk: pending, its parents applied, and
 * a root (when nothing is applied) or a child of a current revision. */
static bool walk_next(const struct migrate_set *s, const bool *done,
		      bool any, int x)
{
	const struct migrate_rev *r = &s->revs[x];
	bool from_current = false;

	if (done[x])
		return false;
	for (int k = 0; k < r->nparents; k++) {
		if (!done[r->parent_idx[k]])
			return false;
		if (walk_current(s, done, r->parent_idx[k]))
			from_current = true;
	}
	return any ? from_current : r->nparents == 0;
}

/* "a, b and c" of the revisions marked in set[] (size s->n). */
static void ids_text(const struct migrate_set *s, const bool *set, char *buf,
		     size_t len)
{
	int total = 0, k = 0;
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < s->n; i++)
		total += set[s->order[i]];
	for (int i = 0; i < s->n && o < len; i++) {
		int x = s->order[i];

		if (!set[x])
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%s%s",
				      k == 0 ? "" : k == total - 1 ? " and "
								  : ", ",
				      s->revs[x].id);
		k++;
	}
	if (total == 0)
		snprintf(buf, len, "base");
}

/*
 * +N, as Alembic walks it: N steps forward from the current revisions,
 * each to the one pending revision that follows them (a child of a current
 * revision whose parents are all applied; a root when nothing is).  Where
 * two revisions could come next the walk is ambiguous and refused, naming
 * them and the heads.  done[] (size s->n) is scratch space.
 */
static int plan_walk(const struct migrate_set *s, const bool *applied,
		     int steps, bool *done, int *out, int *nout, char *err,
		     size_t errlen)
{
	char cur[512], next[512], heads[512];
	bool *mark = calloc((size_t)s->n + 1, sizeof(bool));
	bool any = false;
	int rc = 0;

	if (!mark) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	memcpy(done, applied, sizeof(bool) * (size_t)s->n);
	for (int i = 0; i < s->n; i++)
		any = any || done[i];
	for (int step = 0; step < steps && rc == 0; step++) {
		int found = 0, pick = -1;

		memset(mark, 0, sizeof(bool) * (size_t)s->n);
		for (int i = 0; i < s->n; i++) {
			int x = s->order[i];

			if (walk_next(s, done, any, x)) {
				mark[x] = true;
				found++;
				if (pick < 0)
					pick = x;
			}
		}
		if (found == 1) {
			done[pick] = true;
			any = true;
			out[(*nout)++] = pick;
			continue;
		}
		for (int i = 0; i < s->n; i++)
			mark[i] = walk_current(s, done, i);
		ids_text(s, mark, cur, sizeof(cur));
		migrate_set_heads_text(s, heads, sizeof(heads));
		if (found == 0) {
			seterr(err, errlen,
			       "cannot upgrade +%d: nothing follows %s after "
			       "%d step%s (the heads are %s); upgrade to a "
			       "revision or to 'heads' instead",
			       steps, cur, step, step == 1 ? "" : "s", heads);
		} else {
			for (int i = 0; i < s->n; i++)
				mark[i] = walk_next(s, done, any, i);
			ids_text(s, mark, next, sizeof(next));
			seterr(err, errlen,
			       "+%d is ambiguous: after %s, %s could each come "
			       "next (%d heads: %s); upgrade to a revision or "
			       "to 'heads' instead",
			       steps, cur, next, s->nheads, heads);
		}
		*nout = 0;
		rc = -1;
	}
	free(mark);
	return rc;
}

int migrate_plan_upgrade(const struct migrate_set *s, const bool *applied,
			 const struct migrate_target *t, int *out, int *nout,
			 char *err, size_t errlen)
{
	bool *want;
	int rc = 0;

	*nout = 0;
	if (!s->built) {
		seterr(err, errlen, "revision graph not built");
		return -1;
	}
	want = calloc((size_t)s->n + 1, sizeof(bool));
	if (!want) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	switch (t->kind) {
	case MT_HEAD:
		if (s->nheads > 1) {
			char heads[512];

			migrate_set_heads_text(s, heads, sizeof(heads));
			seterr(err, errlen,
			       "there are %d heads (%s): upgrade to one of "
			       "them, to 'heads', or merge them with "
			       "'convctl db merge'",
			       s->nheads, heads);
			rc = -1;
			break;
		}
		if (s->nheads == 1)
			migrate_set_ancestors(s, s->heads[0], want);
		rc = plan_pending_closure(s, applied, want, out, nout);
		break;
	case MT_HEADS:
		for (int i = 0; i < s->nheads; i++)
			migrate_set_ancestors(s, s->heads[i], want);
		rc = plan_pending_closure(s, applied, want, out, nout);
		break;
	case MT_BASE:
		break;
	case MT_REV:
		migrate_set_ancestors(s, t->rev, want);
		rc = plan_pending_closure(s, applied, want, out, nout);
		break;
	case MT_RELATIVE: {
		int pending = 0;

		if (t->n < 0) {
			seterr(err, errlen,
			       "upgrade takes +N, not -N (see downgrade and "
			       "rollback)");
			rc = -1;
			break;
		}
		for (int i = 0; i < s->n; i++)
			if (!applied[s->order[i]])
				pending++;
		if (pending < t->n) {
			seterr(err, errlen,
			       "cannot upgrade +%d: only %d revision%s "
			       "pending",
			       t->n, pending, pending == 1 ? "" : "s");
			rc = -1;
			break;
		}
		rc = plan_walk(s, applied, t->n, want, out, nout, err, errlen);
		break;
	}
	}
	free(want);
	return rc;
}

int migrate_plan_downgrade(const struct migrate_set *s, const bool *applied,
			   const struct migrate_target *t, int *out,
			   int *nout, char *err, size_t errlen)
{
	bool *drop;
	int rc = 0;

	*nout = 0;
	if (!s->built) {
		seterr(err, errlen, "revision graph not built");
		return -1;
	}
	drop = calloc((size_t)s->n + 1, sizeof(bool));
	if (!drop) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	switch (t->kind) {
	case MT_BASE:
		for (int i = 0; i < s->n; i++)
			drop[i] = true;
		break;
	case MT_REV:
		if (!applied[t->rev]) {
			seterr(err, errlen,
			       "revision %s is not applied: a downgrade "
			       "target must be applied",
			       s->revs[t->rev].id);
			rc = -1;
			break;
		}
		migrate_set_descendants(s, t->rev, drop);
		break;
	case MT_RELATIVE: {
		int napplied = 0, left;

		if (t->n > 0) {
			seterr(err, errlen,
			       "downgrade takes -N, not +N (see upgrade)");
			rc = -1;
			break;
		}
		for (int i = 0; i < s->n; i++)
			if (applied[i])
				napplied++;
		if (napplied < -t->n) {
			seterr(err, errlen,
			       "cannot go back %d: only %d revision%s applied",
			       -t->n, napplied, napplied == 1 ? "" : "s");
			rc = -1;
			break;
		}
		left = -t->n;
		for (int i = s->n - 1; i >= 0 && left > 0; i--) {
			if (applied[s->order[i]]) {
				drop[s->order[i]] = true;
				left--;
			}
		}
		break;
	}
	case MT_HEAD:
	case MT_HEADS:
		seterr(err, errlen,
		       "head is not a downgrade target (use base, a revision "
		       "or -N)");
		rc = -1;
		break;
	}
	if (rc == 0)
		for (int i = s->n - 1; i >= 0; i--)
			if (drop[s->order[i]] && applied[s->order[i]])
				out[(*nout)++] = s->order[i];
	free(drop);
	return rc;
}

int migrate_plan_stamp(const struct migrate_set *s, const bool *applied,
		       const struct migrate_target *t, bool *want, char *err,
		       size_t errlen)
{
	int *list = NULL, n = 0, rc = 0;

	if (!s->built) {
		seterr(err, errlen, "revision graph not built");
		return -1;
	}
	memset(want, 0, sizeof(bool) * (size_t)s->n);
	switch (t->kind) {
	case MT_HEAD:
		if (s->nheads > 1) {
			char heads[512];

			migrate_set_heads_text(s, heads, sizeof(heads));
			seterr(err, errlen,
			       "there are %d heads (%s): stamp one of them or "
			       "'heads'",
			       s->nheads, heads);
			return -1;
		}
		if (s->nheads == 1)
			migrate_set_ancestors(s, s->heads[0], want);
		return 0;
	case MT_HEADS:
		for (int i = 0; i < s->n; i++)
			want[i] = true;
		return 0;
	case MT_BASE:
		return 0;
	case MT_REV:
		migrate_set_ancestors(s, t->rev, want);
		return 0;
	case MT_RELATIVE:
		list = malloc(sizeof(int) * ((size_t)s->n + 1));
		if (!list) {
			seterr(err, errlen, "out of memory");
			return -1;
		}
		for (int i = 0; i < s->n; i++)
			want[i] = applied[i];
		if (t->n > 0)
			rc = migrate_plan_upgrade(s, applied, t, list, &n, err,
						  errlen);
		else
			rc = migrate_plan_downgrade(s, applied, t, list, &n,
						    err, errlen);
		for (int i = 0; rc == 0 && i < n; i++)
			want[list[i]] = t->n > 0;
		free(list);
		return rc;
	}
	return 0;
}
