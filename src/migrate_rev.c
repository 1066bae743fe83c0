/*
 * migrate_rev.c - revision files (pure): reading, parsing and writing the
 * text of one revision, its checksum, ids, messages and file names.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, strndup */
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "errbuf.h"
#include "migrate_rev.h"
#include "utf8.h"

/* ---------------------------------------------------------------- text */

int migrate_rev_message_check(const char *msg, char *err, size_t errlen)
{
	size_t len = strlen(msg);

	if (len > MIGRATE_REV_MESSAGE_MAX) {
		errbuf_set(err, errlen,
			   "message too long (%zu bytes, at most %d)", len,
			   MIGRATE_REV_MESSAGE_MAX);
		return -1;
	}
	if (!utf8_valid(msg, len)) {
		errbuf_set(err, errlen, "message is not valid UTF-8");
		return -1;
	}
	return 0;
}

char *migrate_rev_message_escape(const char *msg)
{
	size_t len = strlen(msg), o = 0;
	char *out;

	if (len > MIGRATE_REV_MESSAGE_MAX)
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

/* Inverse of migrate_rev_message_escape; an unknown escape stays as it is. */
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

bool migrate_rev_id_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > MIGRATE_REV_ID_MAX)
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

/* Computes r->checksum from r->transactional, r->up and r->down. */
static void checksum(struct migrate_rev *r)
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
		char id[MIGRATE_REV_ID_MAX + 1];
		char **np;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && v[i] != ' ' && v[i] != '\t' && v[i] != ',')
			i++;
		if (i - start > MIGRATE_REV_ID_MAX) {
			errbuf_set(err, errlen, "%s: parent id too long",
				   where);
			return -1;
		}
		memcpy(id, v + start, i - start);
		id[i - start] = '\0';
		if (!migrate_rev_id_valid(id)) {
			errbuf_set(err, errlen, "%s: invalid parent id '%s'",
				   where, id);
			return -1;
		}
		for (int k = 0; k < r->nparents; k++) {
			if (strcmp(r->parents[k], id) == 0) {
				errbuf_set(err, errlen,
					   "%s: parent '%s' given twice", where,
					   id);
				return -1;
			}
		}
		if (r->nparents >= MIGRATE_REV_MAX_PARENTS) {
			errbuf_set(err, errlen, "%s: more than %d parents",
				   where, MIGRATE_REV_MAX_PARENTS);
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
	errbuf_set(err, errlen, "out of memory");
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
		errbuf_set(err, errlen, "%s: unknown header '%.*s:' (known: "
			   "revision, parents, message, transactional, "
			   "created)", where, (int)k, t);
		return -1;
	}
	if (seen[which]) {
		errbuf_set(err, errlen, "%s: header '%s' given twice", where,
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
		char id[MIGRATE_REV_ID_MAX + 1];

		if (vlen > MIGRATE_REV_ID_MAX) {
			errbuf_set(err, errlen, "%s: revision id too long",
				   where);
			return -1;
		}
		memcpy(id, v, vlen);
		id[vlen] = '\0';
		if (!migrate_rev_id_valid(id)) {
			errbuf_set(err, errlen, "%s: invalid revision id '%s' "
				   "(1..%d letters, digits or '_'; not head, "
				   "heads or base)", where, id,
				   MIGRATE_REV_ID_MAX);
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
		if (vlen > MIGRATE_REV_MESSAGE_MAX * 4) {
			errbuf_set(err, errlen, "%s: message too long", where);
			return -1;
		}
		r->message = message_unescape(v, vlen);
		if (!r->message)
			goto nomem;
		if (migrate_rev_message_check(r->message, err, errlen) < 0) {
			char tmp[128];

			snprintf(tmp, sizeof(tmp), "%s", err);
			errbuf_set(err, errlen, "%s: %s", where, tmp);
			return -1;
		}
		return 0;
	case 3:
		if (parse_bool(v, vlen, &r->transactional) < 0) {
			errbuf_set(err, errlen,
				   "%s: transactional must be yes or no",
				   where);
			return -1;
		}
		return 0;
	default:
		if (vlen > 64) {
			errbuf_set(err, errlen, "%s: created too long", where);
			return -1;
		}
		r->created = strndup(v, vlen);
		if (!r->created)
			goto nomem;
		return 0;
	}
nomem:
	errbuf_set(err, errlen, "out of memory");
	return -1;
}

/* The text built in b, now the caller's ("" when empty; NULL when out of
 * memory); b is empty afterwards. */
static char *take_text(struct buf *b)
{
	char *p = b->nomem ? NULL : b->p ? b->p : strdup("");

	if (b->nomem)
		buf_free(b);
	*b = (struct buf){ 0 };
	return p;
}

int migrate_rev_parse(const char *text, size_t len, const char *path,
		      struct migrate_rev *out, char *err, size_t errlen)
{
	struct migrate_rev r;
	struct buf up = {0}, down = {0};
	bool seen[5] = {false};
	enum { S_HEADER, S_UP, S_DOWN } state = S_HEADER;
	const char *name = path ? path : "(revision)";
	char where[512];
	size_t pos = 0;
	int lineno = 0;

	memset(&r, 0, sizeof(r));
	r.transactional = true;
	if (len > MIGRATE_REV_MAX_FILE) {
		errbuf_set(err, errlen, "%s: larger than %u bytes", name,
			   MIGRATE_REV_MAX_FILE);
		return -1;
	}
	if (memchr(text, '\0', len)) {
		errbuf_set(err, errlen, "%s: contains a NUL byte", name);
		return -1;
	}
	if (!utf8_valid(text, len)) {
		errbuf_set(err, errlen, "%s: not valid UTF-8", name);
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
				errbuf_set(err, errlen, "%s: a second '-- +up'",
					   where);
				goto fail;
			}
			state = S_UP;
			r.up_line = lineno + 1;
			continue;
		}
		if (t && text_is(t, tlen, "+down")) {
			if (state != S_UP) {
				errbuf_set(err, errlen,
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
				errbuf_set(err, errlen, "%s: SQL before '-- "
					   "+up' (the header holds only '-- ' "
					   "comment lines)", where);
				goto fail;
			}
			rc = parse_header(&r, t, tlen, seen, err, errlen,
					  where);
			if (rc < 0)
				goto fail;
			continue;
		}
		buf_add(state == S_UP ? &up : &down, line, clen);
		buf_add(state == S_UP ? &up : &down, "\n", 1);
	}
	if (!r.id) {
		errbuf_set(err, errlen, "%s: no '-- revision:' header", name);
		goto fail;
	}
	if (state == S_HEADER) {
		errbuf_set(err, errlen, "%s: no '-- +up' section", name);
		goto fail;
	}
	if (state == S_UP) {
		errbuf_set(err, errlen, "%s: no '-- +down' section", name);
		goto fail;
	}
	for (int i = 0; i < r.nparents; i++) {
		if (strcmp(r.parents[i], r.id) == 0) {
			errbuf_set(err, errlen,
				   "%s: revision %s names itself as a parent",
				   name, r.id);
			goto fail;
		}
	}
	if (!r.message) {
		r.message = strdup("");
		if (!r.message) {
			errbuf_set(err, errlen, "out of memory");
			goto fail;
		}
	}
	r.up = take_text(&up);
	r.down = take_text(&down);
	if (!r.up || !r.down) {
		errbuf_set(err, errlen, "out of memory");
		goto fail;
	}
	if (path) {
		r.path = strdup(path);
		if (!r.path) {
			errbuf_set(err, errlen, "out of memory");
			goto fail;
		}
	}
	checksum(&r);
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
	struct buf b = {0};
	char *esc;

	if (!migrate_rev_id_valid(id)) {
		errbuf_set(err, errlen, "invalid revision id '%s'", id);
		return NULL;
	}
	if (nparents > MIGRATE_REV_MAX_PARENTS) {
		errbuf_set(err, errlen, "more than %d parents",
			   MIGRATE_REV_MAX_PARENTS);
		return NULL;
	}
	if (migrate_rev_message_check(message, err, errlen) < 0)
		return NULL;
	esc = migrate_rev_message_escape(message);
	if (!esc) {
		errbuf_set(err, errlen, "out of memory");
		return NULL;
	}
	buf_adds(&b, "-- revision: ");
	buf_adds(&b, id);
	buf_adds(&b, "\n");
	if (nparents > 0) {
		buf_adds(&b, "-- parents:");
		for (int i = 0; i < nparents; i++) {
			buf_adds(&b, " ");
			buf_adds(&b, parents[i]);
		}
		buf_adds(&b, "\n");
	}
	buf_adds(&b, "-- message: ");
	buf_adds(&b, esc);
	buf_adds(&b, "\n");
	free(esc);
	if (!transactional)
		buf_adds(&b, "-- transactional: no\n");
	if (created) {
		buf_adds(&b, "-- created: ");
		buf_add(&b, created, strnlen(created, 64));
		buf_adds(&b, "\n");
	}
	buf_adds(&b, "\n-- +up\n");
	buf_adds(&b, up);
	if (up[0] && up[strlen(up) - 1] != '\n')
		buf_adds(&b, "\n");
	buf_adds(&b, "\n-- +down\n");
	buf_adds(&b, down);
	if (down[0] && down[strlen(down) - 1] != '\n')
		buf_adds(&b, "\n");
	if (b.nomem) {
		buf_free(&b);
		errbuf_set(err, errlen, "out of memory");
		return NULL;
	}
	return take_text(&b);
}

char *migrate_rev_file_name(const char *id, const char *message)
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

int migrate_rev_new_id(char out[MIGRATE_REV_NEW_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[MIGRATE_REV_NEW_ID_LEN / 2];
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
	out[MIGRATE_REV_NEW_ID_LEN] = '\0';
	/* An id of digits only could be mistaken for a count: start with a
	 * letter. */
	if (out[0] >= '0' && out[0] <= '9')
		out[0] = (char)('a' + (out[0] - '0') % 6);
	return 0;
}

int migrate_rev_read_file(const char *path, char **out, size_t *outlen,
			  char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fd < 0) {
		errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		errbuf_set(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > MIGRATE_REV_MAX_FILE) {
		errbuf_set(err, errlen, "%s: larger than %u bytes", path,
			   MIGRATE_REV_MAX_FILE);
		close(fd);
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		errbuf_set(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			errbuf_set(err, errlen, "%s: %s", path,
				   strerror(errno));
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
