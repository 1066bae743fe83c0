/*
 * config_parse.c - the INI parser of convd.conf: a whole file read (at
 * most CONFIG_MAX_FILE bytes), applied to a copy, kept only when every
 * line is right.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_internal.h"

#define CONFIG_MAX_FILE (1024 * 1024)	/* bytes per file */

/* Reads the whole file, at most CONFIG_MAX_FILE bytes, NUL-terminated. */
static int read_file(const char *path, char **bufp, size_t *lenp, char *err,
		     size_t errlen)
{
	size_t cap = 8192, len = 0;
	char *buf = NULL;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf = malloc(cap);
	if (!buf)
		goto nomem;
	for (;;) {
		ssize_t r;

		if (len + 1 == cap) {
			char *nb;

			if (cap > CONFIG_MAX_FILE) {
				snprintf(err, errlen,
					 "%s: larger than %d bytes", path,
					 CONFIG_MAX_FILE);
				goto fail;
			}
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb)
				goto nomem;
			buf = nb;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > CONFIG_MAX_FILE) {
			snprintf(err, errlen, "%s: larger than %d bytes", path,
				 CONFIG_MAX_FILE);
			goto fail;
		}
	}
	close(fd);
	buf[len] = '\0';
	*bufp = buf;
	*lenp = len;
	return 0;
nomem:
	snprintf(err, errlen, "%s: out of memory", path);
fail:
	free(buf);
	close(fd);
	return -1;
}

/* Copies user text into an error message, control characters as '?'. */
static void sanitize(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i;

	if (outlen == 0)
		return;
	for (i = 0; i < n && i + 1 < outlen; i++)
		out[i] = ((unsigned char)s[i] < ' ' || s[i] == 0x7f) ? '?' :
								       s[i];
	out[i] = '\0';
}

/* Removes "..." around v in place; v has no leading/trailing blanks. */
static int unquote(char *v, char *why, size_t whylen)
{
	char *r = v + 1, *w = v;

	for (;;) {
		if (*r == '\0') {
			snprintf(why, whylen, "missing closing quote");
			return -1;
		}
		if (*r == '"')
			break;
		if (*r == '\\') {
			if (r[1] != '"' && r[1] != '\\') {
				snprintf(why, whylen,
					 "only \\\" and \\\\ may follow a "
					 "backslash in a quoted value");
				return -1;
			}
			r++;
		}
		*w++ = *r++;
	}
	if (r[1] != '\0') {
		snprintf(why, whylen, "text after the closing quote");
		return -1;
	}
	*w = '\0';
	return 0;
}

struct parse_state {
	const char *path;
	unsigned line;
	char section[64];	/* "" = none yet */
	unsigned *seen;		/* per option: line it was set on, 0 = not */
	char *err;
	size_t errlen;
};

static int parse_line(struct config *cfg, struct parse_state *ps,
		      char *s)
{
	char why[CONFIG_WHY], name[128];
	const struct config_option *o;
	char *eq, *key, *val, *end;
	size_t idx;

	while (config_is_space(*s))
		s++;
	end = s + strlen(s);
	while (end > s && config_is_space(end[-1]))
		*--end = '\0';
	if (*s == '\0' || *s == '#' || *s == ';')
		return 0;

	if (*s == '[') {
		char *name_start = s + 1, *name_end;

		if (end[-1] != ']' || end - s < 2) {
			snprintf(ps->err, ps->errlen,
				 "%s:%u: expected [section]", ps->path,
				 ps->line);
			return -1;
		}
		name_end = end - 1;
		while (config_is_space(*name_start))
			name_start++;
		while (name_end > name_start && config_is_space(name_end[-1]))
			name_end--;
		*name_end = '\0';
		if (!config_section_known(name_start)) {
			sanitize(name_start, strlen(name_start), name,
				 sizeof(name));
			snprintf(ps->err, ps->errlen,
				 "%s:%u: unknown section [%s]", ps->path,
				 ps->line, name);
			return -1;
		}
		snprintf(ps->section, sizeof(ps->section), "%s", name_start);
		return 0;
	}

	eq = strchr(s, '=');
	key = s;
	if (eq) {
		char *kend = eq;

		while (kend > key && config_is_space(kend[-1]))
			kend--;
		*kend = '\0';
	}
	if (!eq || key[0] == '\0') {
		snprintf(ps->err, ps->errlen, "%s:%u: expected key = value",
			 ps->path, ps->line);
		return -1;
	}
	if (ps->section[0] == '\0') {
		snprintf(ps->err, ps->errlen,
			 "%s:%u: key outside of any section", ps->path,
			 ps->line);
		return -1;
	}
	o = config_find(ps->section, key);
	if (!o) {
		sanitize(key, strlen(key), name, sizeof(name));
		snprintf(ps->err, ps->errlen, "%s:%u: [%s] %s: unknown option",
			 ps->path, ps->line, ps->section, name);
		return -1;
	}
	idx = (size_t)(o - config_options);
	if (ps->seen[idx]) {
		snprintf(ps->err, ps->errlen,
			 "%s:%u: [%s] %s: duplicate option (first set on line "
			 "%u)", ps->path, ps->line, o->section, o->name,
			 ps->seen[idx]);
		return -1;
	}
	val = eq + 1;
	while (config_is_space(*val))
		val++;
	if (*val == '"' && unquote(val, why, sizeof(why)) < 0)
		goto bad_value;
	if (config_set(cfg, o, val, why, sizeof(why)) < 0)
		goto bad_value;
	ps->seen[idx] = ps->line;
	return 0;
bad_value:
	snprintf(ps->err, ps->errlen, "%s:%u: [%s] %s: %s", ps->path,
		 ps->line, o->section, o->name, why);
	return -1;
}

static int parse_buffer(struct config *cfg, const char *path,
			char *buf, size_t len, char *err, size_t errlen)
{
	struct parse_state ps = {.path = path, .err = err, .errlen = errlen};
	char *p = buf, *bufend = buf + len;
	int rc = 0;

	ps.seen = calloc(config_noptions, sizeof(*ps.seen));
	if (!ps.seen) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	/* A UTF-8 byte order mark, as some editors write. */
	if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (p < bufend) {
		char *nl = memchr(p, '\n', (size_t)(bufend - p));
		char *eol = nl ? nl : bufend;

		ps.line++;
		if ((size_t)(eol - p) > CONFIG_MAX_LINE) {
			snprintf(err, errlen,
				 "%s:%u: line longer than %d bytes", path,
				 ps.line, CONFIG_MAX_LINE);
			rc = -1;
			break;
		}
		if (memchr(p, '\0', (size_t)(eol - p))) {
			snprintf(err, errlen, "%s:%u: NUL byte in line", path,
				 ps.line);
			rc = -1;
			break;
		}
		*eol = '\0';
		if (parse_line(cfg, &ps, p) < 0) {
			rc = -1;
			break;
		}
		p = eol + 1;
	}
	free(ps.seen);
	return rc;
}

int config_load_file(struct config *cfg, const char *path, char *err,
		     size_t errlen)
{
	struct config tmp;
	char *buf, *newpath;
	size_t len;

	if (read_file(path, &buf, &len, err, errlen) < 0)
		return -1;
	if (config_copy(&tmp, cfg) < 0) {
		free(buf);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if (parse_buffer(&tmp, path, buf, len, err, errlen) < 0) {
		free(buf);
		config_free(&tmp);
		return -1;
	}
	free(buf);
	newpath = strdup(path);
	if (!newpath) {
		config_free(&tmp);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	free(tmp.path);
	tmp.path = newpath;
	config_free(cfg);
	*cfg = tmp;
	return 0;
}
