/*
 * config_value.c - option values: text to typed value and back (as the
 * file says it), the defaults, copies, the cross-option checks and what a
 * reload cannot change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "config_internal.h"

static void *opt_ptr(struct config *cfg, const struct config_option *o)
{
	return (char *)cfg + o->offset;
}

static const void *opt_cptr(const struct config *cfg,
			    const struct config_option *o)
{
	return (const char *)cfg + o->offset;
}

/* Digits only, at least one, no sign, no overflow past INT64_MAX. */
static int parse_digits(const char **sp, int base, int64_t *out)
{
	const char *s = *sp;
	int64_t v = 0;

	if (!(*s >= '0' && *s < '0' + base))
		return -1;
	while (*s >= '0' && *s < '0' + base) {
		int d = *s - '0';

		if (v > (INT64_MAX - d) / base)
			return -1;
		v = v * base + d;
		s++;
	}
	*sp = s;
	*out = v;
	return 0;
}

static int parse_int(const char *s, int64_t *out)
{
	bool neg = false;
	int64_t v;

	if (*s == '-') {
		neg = true;
		s++;
	}
	if (parse_digits(&s, 10, &v) < 0 || *s != '\0')
		return -1;
	*out = neg ? -v : v;
	return 0;
}

static int parse_size(const char *s, int64_t *out)
{
	int64_t v, mul = 1;

	if (parse_digits(&s, 10, &v) < 0)
		return -1;
	switch (*s) {
	case '\0':
		break;
	case 'k': case 'K':
		mul = CONFIG_KIB;
		s++;
		break;
	case 'm': case 'M':
		mul = CONFIG_MIB;
		s++;
		break;
	case 'g': case 'G':
		mul = CONFIG_GIB;
		s++;
		break;
	default:
		return -1;
	}
	if (*s != '\0' || v > INT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static int parse_mode(const char *s, int64_t *out)
{
	size_t n = strlen(s);

	if (n == 0 || n > 4)
		return -1;
	if (parse_digits(&s, 8, out) < 0 || *s != '\0')
		return -1;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static void format_size(int64_t v, char *buf, size_t len)
{
	if (v != 0 && v % CONFIG_GIB == 0)
		snprintf(buf, len, "%lldG", (long long)(v / CONFIG_GIB));
	else if (v != 0 && v % CONFIG_MIB == 0)
		snprintf(buf, len, "%lldM", (long long)(v / CONFIG_MIB));
	else if (v != 0 && v % CONFIG_KIB == 0)
		snprintf(buf, len, "%lldK", (long long)(v / CONFIG_KIB));
	else
		snprintf(buf, len, "%lld", (long long)v);
}

static void range_error(const struct config_option *o, char *why, size_t whylen)
{
	char lo[32], hi[32];

	switch (o->type) {
	case CONFIG_T_SIZE:
		format_size(o->min, lo, sizeof(lo));
		format_size(o->max, hi, sizeof(hi));
		snprintf(why, whylen,
			 "must be a size from %s to %s (bytes, or with a K, M "
			 "or G suffix)", lo, hi);
		break;
	case CONFIG_T_MODE:
		snprintf(why, whylen, "must be an octal mode from %04llo to "
			 "%04llo", (unsigned long long)o->min,
			 (unsigned long long)o->max);
		break;
	default:
		snprintf(why, whylen, "must be an integer from %lld to %lld",
			 (long long)o->min, (long long)o->max);
		break;
	}
}

int config_set(struct config *cfg, const struct config_option *o,
	       const char *text, char *why, size_t whylen)
{
	void *p = opt_ptr(cfg, o);
	int64_t v;
	int rc;

	switch (o->type) {
	case CONFIG_T_STRING: {
		char *s, **dst = p;

		if (strlen(text) > CONFIG_MAX_LINE) {
			snprintf(why, whylen, "longer than %d bytes",
				 CONFIG_MAX_LINE);
			return -1;
		}
		s = strdup(text);
		if (!s) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		if (o->check && o->check(s, why, whylen) < 0) {
			free(s);
			return -1;
		}
		free(*dst);
		*dst = s;
		return 0;
	}
	case CONFIG_T_BOOL:
		if (parse_bool(text, p) < 0) {
			snprintf(why, whylen, "must be yes or no");
			return -1;
		}
		return 0;
	case CONFIG_T_LEVEL:
		if (log_level_parse(text, p) < 0) {
			snprintf(why, whylen, "must be one of error, warning, "
				 "notice, info or debug");
			return -1;
		}
		return 0;
	case CONFIG_T_INT:
		rc = parse_int(text, &v);
		break;
	case CONFIG_T_SIZE:
		rc = parse_size(text, &v);
		break;
	case CONFIG_T_MODE:
		rc = parse_mode(text, &v);
		break;
	default:
		snprintf(why, whylen, "unknown option type");
		return -1;
	}
	if (rc < 0 || v < o->min || v > o->max) {
		range_error(o, why, whylen);
		return -1;
	}
	*(int64_t *)p = v;
	return 0;
}

static bool needs_quotes(const char *s)
{
	size_t n = strlen(s);

	return n == 0 || s[0] == '"' || config_is_space(s[0]) ||
	       config_is_space(s[n - 1]);
}

/* s as the file would say it: quoted (with escapes) only when needed. */
static void format_string(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	if (len == 0)
		return;
	if (!needs_quotes(s)) {
		snprintf(buf, len, "%s", s);
		return;
	}
	if (len < 3) {
		buf[0] = '\0';
		return;
	}
	buf[n++] = '"';
	for (; *s && n + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			buf[n++] = '\\';
		buf[n++] = *s;
	}
	buf[n++] = '"';
	buf[n] = '\0';
}

void config_format_value(const struct config *cfg,
			 const struct config_option *o, char *buf, size_t len)
{
	const void *p = opt_cptr(cfg, o);

	if (len == 0)
		return;
	switch (o->type) {
	case CONFIG_T_STRING: {
		const char *s = *(char *const *)p;

		if (!s)
			s = "";
		if (o->secret && s[0] != '\0')
			snprintf(buf, len, "********");
		else
			format_string(s, buf, len);
		break;
	}
	case CONFIG_T_BOOL:
		snprintf(buf, len, "%s", *(const bool *)p ? "yes" : "no");
		break;
	case CONFIG_T_LEVEL:
		snprintf(buf, len, "%s",
			 log_level_name(*(const enum log_level *)p));
		break;
	case CONFIG_T_SIZE:
		format_size(*(const int64_t *)p, buf, len);
		break;
	case CONFIG_T_MODE:
		snprintf(buf, len, "%04llo",
			 (unsigned long long)*(const int64_t *)p);
		break;
	case CONFIG_T_INT:
	default:
		snprintf(buf, len, "%lld", (long long)*(const int64_t *)p);
		break;
	}
}

static bool opt_equal(const struct config *a,
		      const struct config *b,
		      const struct config_option *o)
{
	const void *pa = opt_cptr(a, o), *pb = opt_cptr(b, o);

	switch (o->type) {
	case CONFIG_T_STRING: {
		const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;

		return strcmp(sa ? sa : "", sb ? sb : "") == 0;
	}
	case CONFIG_T_BOOL:
		return *(const bool *)pa == *(const bool *)pb;
	case CONFIG_T_LEVEL:
		return *(const enum log_level *)pa ==
		       *(const enum log_level *)pb;
	default:
		return *(const int64_t *)pa == *(const int64_t *)pb;
	}
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];

		if (o->type == CONFIG_T_STRING) {
			char **s = opt_ptr(cfg, o);

			free(*s);
			*s = NULL;
		}
	}
	free(cfg->path);
	cfg->path = NULL;
}

int config_init(struct config *cfg)
{
	char why[CONFIG_WHY];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < config_noptions; i++) {
		if (config_set(cfg, &config_options[i], config_options[i].def,
			       why, sizeof(why)) < 0) {
			config_free(cfg);
			return -1;
		}
	}
	return 0;
}

/* A deep copy, so that a file that fails half-way changes nothing. */
int config_copy(struct config *dst, const struct config *src)
{
	memcpy(dst, src, sizeof(*dst));
	dst->path = NULL;
	for (size_t i = 0; i < config_noptions; i++)
		if (config_options[i].type == CONFIG_T_STRING)
			*(char **)opt_ptr(dst, &config_options[i]) = NULL;
	if (src->path && !(dst->path = strdup(src->path)))
		goto fail;
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		const char *s;

		if (o->type != CONFIG_T_STRING)
			continue;
		s = *(char *const *)opt_cptr(src, o);
		if (s && !(*(char **)opt_ptr(dst, o) = strdup(s)))
			goto fail;
	}
	return 0;
fail:
	config_free(dst);
	return -1;
}

/* "WHERE: [server] A (a) RULE B (b)" in err; returns -1. */
static int sizes_conflict(char *err, size_t errlen, const char *where,
			  const char *a, int64_t av, const char *rule,
			  const char *b, int64_t bv)
{
	char as[32], bs[32];

	format_size(av, as, sizeof(as));
	format_size(bv, bs, sizeof(bs));
	snprintf(err, errlen, "%s: [server] %s (%s) %s %s (%s)", where, a, as,
		 rule, b, bs);
	return -1;
}

int config_validate(const struct config *cfg, char *err, size_t errlen)
{
	const char *where = cfg->path ? cfg->path : "configuration";
	char why[CONFIG_WHY];

	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		const void *p = opt_cptr(cfg, o);

		if (o->type == CONFIG_T_INT || o->type == CONFIG_T_SIZE ||
		    o->type == CONFIG_T_MODE) {
			int64_t v = *(const int64_t *)p;

			if (v < o->min || v > o->max) {
				range_error(o, why, sizeof(why));
				goto bad_option;
			}
		} else if (o->type == CONFIG_T_STRING) {
			const char *s = *(char *const *)p;
			char *copy;
			int rc = 0;

			if (!s) {
				snprintf(why, sizeof(why), "not set");
				goto bad_option;
			}
			if (!o->check)
				continue;
			copy = strdup(s);
			if (!copy) {
				snprintf(err, errlen, "%s: out of memory",
					 where);
				return -1;
			}
			rc = o->check(copy, why, sizeof(why));
			free(copy);
			if (rc < 0)
				goto bad_option;
		}
		continue;
bad_option:
		snprintf(err, errlen, "%s: [%s] %s: %s", where, o->section,
			 o->name, why);
		return -1;
	}

	if (cfg->server.max_content_bytes >= cfg->server.max_request_bytes)
		return sizes_conflict(err, errlen, where, "max_content_bytes",
				      cfg->server.max_content_bytes,
				      "must be less than", "max_request_bytes",
				      cfg->server.max_request_bytes);
	if (cfg->server.max_output_bytes < cfg->server.max_request_bytes)
		return sizes_conflict(err, errlen, where, "max_output_bytes",
				      cfg->server.max_output_bytes,
				      "must be at least", "max_request_bytes",
				      cfg->server.max_request_bytes);
	if (cfg->server.memory_budget > 0 &&
	    cfg->server.memory_budget < 2 * cfg->server.max_output_bytes)
		return sizes_conflict(err, errlen, where, "memory_budget",
				      cfg->server.memory_budget,
				      "must be 0 or at least twice",
				      "max_output_bytes",
				      cfg->server.max_output_bytes);
	if (cfg->db.password[0] != '\0' && cfg->db.password_file[0] != '\0') {
		snprintf(err, errlen,
			 "%s: [database] password and password_file are both "
			 "set; keep one", where);
		return -1;
	}
	return 0;
}

int config_nonreloadable_changes(
	const struct config *old, const struct config *new,
	void (*cb)(const struct config_option *opt, void *arg), void *arg)
{
	int n = 0;

	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];

		if (o->reloadable || opt_equal(old, new, o))
			continue;
		n++;
		if (cb)
			cb(o, arg);
	}
	return n;
}
