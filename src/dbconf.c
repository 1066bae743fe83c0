/*
 * dbconf.c - libpq connection parameters from the config and environment.
 *
 * Pure code (no libpq calls): keyword/value arrays for
 * PQconnectStartParams(keys, vals, 1).  libpq processes the arrays in
 * order, the last non-empty value of a keyword wins, and only the first
 * dbname entry is expanded when it holds a URI or a key=value string: the
 * order of the entries is what implements the precedence (see dbconf.h).
 *
 * A URL is looked into only as far as needed: whether it names a database
 * (to know whether a separate database name may follow it), its
 * connect_timeout (convd enforces the timeout itself), and where its
 * passwords are (to mask them in `describe`).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbconf.h"

#define DBCONF_MAX_VALUE 4096	/* bytes of one environment value */
#define DBCONF_MAX_PWFILE 4096	/* bytes of a password file */
#define DBCONF_MAX_MASKS 8	/* passwords masked in one URL */

const char *dbconf_getenv(const char *name)
{
	return getenv(name);
}

/* ------------------------------------------------------------------ */
/* looking into a URL or connection string                             */

struct span {
	size_t start, end;
};

struct urlinfo {
	bool has_dbname;
	bool has_sslmode;	/* says sslmode (or requiressl) */
	bool has_service;	/* names a service, which may say sslmode */
	int tcp;		/* its host: -1 not given, 0 a socket, 1 TCP */
	int64_t connect_timeout;	/* 0 = not given or not usable */
	struct span masks[DBCONF_MAX_MASKS];
	int nmasks;
	bool too_many_masks;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

static void add_mask(struct urlinfo *ui, size_t start, size_t end)
{
	if (end <= start)
		return;
	if (ui->nmasks == DBCONF_MAX_MASKS) {
		ui->too_many_masks = true;
		return;
	}
	ui->masks[ui->nmasks].start = start;
	ui->masks[ui->nmasks].end = end;
	ui->nmasks++;
}

/* Percent-decodes s[0..n) into out (truncated to outlen - 1 bytes). */
static void uri_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < outlen; i++) {
		int hi, lo;

		if (s[i] == '%' && i + 2 < n &&
		    (hi = hex_digit(s[i + 1])) >= 0 &&
		    (lo = hex_digit(s[i + 2])) >= 0) {
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
}

/* connect_timeout as convd can enforce it: 1..3600 seconds, else 0. */
static int64_t timeout_value(const char *v)
{
	int64_t t = 0;

	if (*v == '\0')
		return 0;
	for (; *v; v++) {
		if (*v < '0' || *v > '9')
			return 0;
		t = t * 10 + (*v - '0');
		if (t > 3600)
			return 0;
	}
	return t;
}

static bool has_tcp_host(const char *h);

/* One parameter seen in a URI query or a key=value string. */
static void note_param(struct urlinfo *ui, const char *key, const char *val,
		       size_t vstart, size_t vend)
{
	if (strcmp(key, "sslmode") == 0 || strcmp(key, "requiressl") == 0)
		ui->has_sslmode = vend > vstart;
	else if (strcmp(key, "service") == 0)
		ui->has_service = vend > vstart;
	else if (strcmp(key, "host") == 0 && vend > vstart)
		ui->tcp = has_tcp_host(val);
	else if (strcmp(key, "hostaddr") == 0 && vend > vstart)
		ui->tcp = 1;
	if (strcmp(key, "password") == 0)
		add_mask(ui, vstart, vend);
	else if (strcmp(key, "dbname") == 0 && vend > vstart)
		ui->has_dbname = true;
	else if (strcmp(key, "connect_timeout") == 0)
		ui->connect_timeout = timeout_value(val);
}

/*
 * postgresql://[user[:password]@][host][:port][,...][/dbname][?k=v&...],
 * split as libpq does (credentials end at the first '@' before any '/').
 */
static void inspect_uri(const char *s, size_t p, struct urlinfo *ui)
{
	size_t q = p;

	while (s[q] && s[q] != '@' && s[q] != '/')
		q++;
	if (s[q] == '@') {
		const char *colon = memchr(s + p, ':', q - p);

		if (colon)
			add_mask(ui, (size_t)(colon - s) + 1, q);
		p = q + 1;
	}
	/* host[:port][,...]: TCP unless every host is a socket directory
	 * (percent-encoded "/...") */
	for (size_t h = p;; p++) {
		bool end = s[p] == '\0' || s[p] == '/' || s[p] == '?';
		char host[256];
		size_t n = p - h;

		if (!end && s[p] != ',')
			continue;
		if (n > 0 && s[h] != '[' && memchr(s + h, ':', n))
			n = (size_t)((const char *)memchr(s + h, ':',
							  n) - (s + h));
		uri_decode(s + h, n, host, sizeof(host));
		if (host[0] && ui->tcp < 1)
			ui->tcp = host[0] != '/';
		if (end)
			break;
		h = p + 1;
	}
	if (s[p] == '/') {
		size_t start = ++p;

		while (s[p] && s[p] != '?')
			p++;
		if (p > start)
			ui->has_dbname = true;
	}
	if (s[p] != '?')
		return;
	p++;
	while (s[p]) {
		size_t kstart = p, kend, vstart, vend;
		char key[64], val[64];

		while (s[p] && s[p] != '=' && s[p] != '&')
			p++;
		kend = p;
		vstart = vend = p;
		if (s[p] == '=') {
			vstart = ++p;
			while (s[p] && s[p] != '&')
				p++;
			vend = p;
		}
		uri_decode(s + kstart, kend - kstart, key, sizeof(key));
		uri_decode(s + vstart, vend - vstart, val, sizeof(val));
		note_param(ui, key, val, vstart, vend);
		if (s[p] == '&')
			p++;
	}
}

/*
 * key = value ... as libpq's conninfo_parse reads it: values bare or in
 * single quotes, backslash escaping the next character.
 */
static int inspect_kv(const char *s, struct urlinfo *ui, char *why,
		      size_t whylen)
{
	size_t p = 0;

	for (;;) {
		size_t kstart, kend, vstart, vend, vn = 0;
		char key[64], val[64];

		while (is_blank(s[p]))
			p++;
		if (s[p] == '\0')
			return 0;
		kstart = p;
		while (s[p] && s[p] != '=' && !is_blank(s[p]))
			p++;
		kend = p;
		while (is_blank(s[p]))
			p++;
		if (s[p] != '=') {
			snprintf(why, whylen,
				 "missing \"=\" after a keyword in the "
				 "connection string");
			return -1;
		}
		p++;
		while (is_blank(s[p]))
			p++;
		vstart = p;
		if (s[p] == '\'') {
			p++;
			for (;;) {
				if (s[p] == '\0') {
					snprintf(why, whylen,
						 "unterminated quoted value "
						 "in the connection string");
					return -1;
				}
				if (s[p] == '\'')
					break;
				if (s[p] == '\\' && s[p + 1])
					p++;
				if (vn + 1 < sizeof(val))
					val[vn++] = s[p];
				p++;
			}
			p++;
		} else {
			while (s[p] && !is_blank(s[p])) {
				if (s[p] == '\\' && s[p + 1])
					p++;
				if (vn + 1 < sizeof(val))
					val[vn++] = s[p];
				p++;
			}
		}
		vend = p;
		val[vn] = '\0';
		snprintf(key, sizeof(key), "%.*s", (int)(kend - kstart),
			 s + kstart);
		note_param(ui, key, val, vstart, vend);
	}
}

static bool is_uri(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 ||
	       strncmp(s, "postgres://", 11) == 0;
}

/*
 * A URI (postgresql://, postgres://) or a key=value string; anything else
 * (another scheme, a bare word that libpq would take for a database name
 * and then fail on a socket) is refused with why.  The value itself is
 * never quoted in why: it may hold a password.
 */
static int inspect_url(const char *s, struct urlinfo *ui, char *why,
		       size_t whylen)
{
	const char *sep = strstr(s, "://");
	size_t n = 0;

	memset(ui, 0, sizeof(*ui));
	ui->tcp = -1;
	if (strncmp(s, "postgresql://", 13) == 0) {
		inspect_uri(s, 13, ui);
		return 0;
	}
	if (strncmp(s, "postgres://", 11) == 0) {
		inspect_uri(s, 11, ui);
		return 0;
	}
	while (s + n < (sep ? sep : s) &&
	       ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
		(s[n] >= '0' && s[n] <= '9') || s[n] == '+' || s[n] == '-' ||
		s[n] == '.'))
		n++;
	if (sep && n > 0 && n <= 32 && s + n == sep) {
		snprintf(why, whylen,
			 "the scheme \"%.*s://\" is not PostgreSQL's: a URL "
			 "starts with postgresql:// or postgres://",
			 (int)n, s);
		return -1;
	}
	if (!sep && strchr(s, '='))
		return inspect_kv(s, ui, why, whylen);
	snprintf(why, whylen,
		 "not a connection URL: expected "
		 "postgresql://[user[:password]@][host][:port][/dbname]"
		 "[?param=value&...] or key=value pairs");
	return -1;
}

/* s with every password replaced by "***". */
static void mask_url(const char *s, const struct urlinfo *ui, char *out,
		     size_t outlen)
{
	size_t p = 0, o = 0;

	if (outlen == 0)
		return;
	if (ui->too_many_masks) {
		snprintf(out, outlen, "(connection string not shown)");
		return;
	}
	for (int i = 0; i <= ui->nmasks; i++) {
		size_t stop = i < ui->nmasks ? ui->masks[i].start : strlen(s);
		int w;

		w = snprintf(out + o, outlen - o, "%.*s%s", (int)(stop - p),
			     s + p, i < ui->nmasks ? "***" : "");
		if (w < 0 || (size_t)w >= outlen - o)
			return;
		o += (size_t)w;
		if (i < ui->nmasks)
			p = ui->masks[i].end;
	}
}

void dbconf_mask(const char *s, char *out, size_t outlen)
{
	struct urlinfo ui;
	char why[128];

	if (outlen == 0)
		return;
	if (!s) {
		out[0] = '\0';
		return;
	}
	/* A string convd cannot read is not shown at all: it may hold a
	 * password where the parser did not find one. */
	if (inspect_url(s, &ui, why, sizeof(why)) < 0) {
		snprintf(out, outlen, "%s",
			 s[0] ? "(connection string not shown)" : "");
		return;
	}
	mask_url(s, &ui, out, outlen);
}

/* ------------------------------------------------------------------ */
/* building the arrays                                                 */

static int add(struct dbconf *dc, const char *key, const char *val,
	       char *err, size_t errlen)
{
	char *copy;

	if (dc->n >= DBCONF_MAX_PARAMS ||
	    dc->nowned >= (int)ARRAY_LEN(dc->owned)) {
		snprintf(err, errlen, "too many connection parameters");
		return -1;
	}
	copy = strdup(val);
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	dc->owned[dc->nowned++] = copy;
	dc->keys[dc->n] = key;
	dc->vals[dc->n] = copy;
	dc->n++;
	dc->keys[dc->n] = NULL;
	dc->vals[dc->n] = NULL;
	return 0;
}

/* Adds key=val unless val is NULL or empty (libpq would ignore it). */
static int add_opt(struct dbconf *dc, const char *key, const char *val,
		   char *err, size_t errlen)
{
	if (!val || val[0] == '\0')
		return 0;
	return add(dc, key, val, err, errlen);
}

static int add_int(struct dbconf *dc, const char *key, int64_t v, char *err,
		   size_t errlen)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return add(dc, key, buf, err, errlen);
}

int dbconf_msg_len(const char *m)
{
	size_t l = strlen(m);

	while (l > 0 && (m[l - 1] == '\n' || m[l - 1] == ' '))
		l--;
	return l > INT_MAX ? INT_MAX : (int)l;
}

void dbconf_free(struct dbconf *dc)
{
	for (int i = 0; i < dc->nowned; i++) {
		if (dc->owned[i]) {
			explicit_bzero(dc->owned[i], strlen(dc->owned[i]));
			free(dc->owned[i]);
		}
	}
	memset(dc, 0, sizeof(*dc));
}

/* NULL if unset or empty; -1 if longer than we accept. */
static int getvar(const char *(*env)(const char *), const char *name,
		  const char **out, char *err, size_t errlen)
{
	const char *v = env(name);

	*out = NULL;
	if (!v || v[0] == '\0')
		return 0;
	if (strlen(v) > DBCONF_MAX_VALUE) {
		snprintf(err, errlen, "%s is longer than %d bytes", name,
			 DBCONF_MAX_VALUE);
		return -1;
	}
	*out = v;
	return 0;
}

/* "5432" or "5432,5433" (one per host): each 1..65535. */
static bool valid_ports(const char *s)
{
	for (;;) {
		long v = 0;
		int digits = 0;

		for (; *s >= '0' && *s <= '9'; s++) {
			v = v * 10 + (*s - '0');
			if (v > 65535)
				return false;
			digits++;
		}
		if (digits == 0 || v < 1)
			return false;
		if (*s != ',')
			return *s == '\0';
		s++;
	}
}

/* A database name that libpq would take for a connection string. */
static bool looks_like_conninfo(const char *s)
{
	return s && (is_uri(s) || strchr(s, '='));
}

/* Any element of a host list that is not a Unix socket directory. */
static bool has_tcp_host(const char *h)
{
	if (!h)
		return false;
	while (*h) {
		const char *end = strchr(h, ',');
		size_t n = end ? (size_t)(end - h) : strlen(h);

		if (n > 0 && h[0] != '/' && h[0] != '@')
			return true;
		h += n;
		if (*h == ',')
			h++;
	}
	return false;
}

/*
 * The first line of a file only its owner may read, without its line end.
 * Errors name the file, never what is in it.
 */
static int read_password_file(const char *path, char **out, char *err,
			      size_t errlen)
{
	char buf[DBCONF_MAX_PWFILE + 1];
	size_t len = 0, n;
	struct stat st;
	int fd, rc = -1;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "[database] password_file %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "[database] password_file %s: %s", path,
			 strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen,
			 "[database] password_file %s: not a regular file",
			 path);
		goto out;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "[database] password_file %s: group or others have "
			 "access to it (mode %04o); it must be 0600 or "
			 "stricter", path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size > DBCONF_MAX_PWFILE) {
		snprintf(err, errlen,
			 "[database] password_file %s: larger than %d bytes",
			 path, DBCONF_MAX_PWFILE);
		goto out;
	}
	while (len < sizeof(buf)) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen,
				 "[database] password_file %s: %s", path,
				 strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > DBCONF_MAX_PWFILE) {
		snprintf(err, errlen,
			 "[database] password_file %s: larger than %d bytes",
			 path, DBCONF_MAX_PWFILE);
		goto out;
	}
	n = 0;
	while (n < len && buf[n] != '\n')
		n++;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (memchr(buf, '\0', n)) {
		snprintf(err, errlen,
			 "[database] password_file %s: NUL byte in the "
			 "password", path);
		goto out;
	}
	if (n == 0) {
		snprintf(err, errlen,
			 "[database] password_file %s: the first line is "
			 "empty", path);
		goto out;
	}
	*out = strndup(buf, n);
	if (!*out) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

/* Appends " key=value" to describe, quoting the value as libpq would. */
static void describe_add(struct dbconf *dc, const char *key, const char *val)
{
	size_t o = strlen(dc->describe), room = sizeof(dc->describe) - o;
	bool quote = val[0] == '\0';
	char buf[sizeof(dc->describe)];
	size_t n = 0;

	for (const char *p = val; *p; p++)
		if (is_blank(*p) || *p == '\'' || *p == '\\')
			quote = true;
	if (quote)
		buf[n++] = '\'';
	for (const char *p = val; *p && n + 3 < sizeof(buf); p++) {
		if (quote && (*p == '\'' || *p == '\\'))
			buf[n++] = '\\';
		buf[n++] = *p;
	}
	if (quote)
		buf[n++] = '\'';
	buf[n] = '\0';
	snprintf(dc->describe + o, room, "%s%s=%s", o ? " " : "", key, buf);
}

/*
 * The URL (passwords masked) if one is used, then host, port, database,
 * user and sslmode as given after it (or at all, without a URL): the last
 * entry of each, as libpq will use it.  Fallbacks before a URL are not
 * shown: the URL may override them.
 */
static void describe(struct dbconf *dc, int url_idx, const char *url,
		     const struct urlinfo *ui)
{
	static const char *const shown[] = {"host", "port", "dbname", "user",
					    "sslmode"};
	int first = url_idx < 0 ? 0 : url_idx + 1;

	dc->describe[0] = '\0';
	if (url_idx >= 0)
		mask_url(url, ui, dc->describe, sizeof(dc->describe));
	for (size_t k = 0; k < ARRAY_LEN(shown); k++) {
		for (int i = dc->n - 1; i >= first; i--) {
			if (strcmp(dc->keys[i], shown[k]) == 0) {
				describe_add(dc, dc->keys[i], dc->vals[i]);
				break;
			}
		}
	}
	if (dc->describe[0] == '\0')
		snprintf(dc->describe, sizeof(dc->describe),
			 "(libpq defaults)");
}

struct target {
	const char *host, *port, *name, *user, *password;
};

static int add_target(struct dbconf *dc, const struct target *t,
		      bool with_name, char *err, size_t errlen)
{
	if (add_opt(dc, "host", t->host, err, errlen) < 0 ||
	    add_opt(dc, "port", t->port, err, errlen) < 0 ||
	    (with_name && add_opt(dc, "dbname", t->name, err, errlen) < 0) ||
	    add_opt(dc, "user", t->user, err, errlen) < 0 ||
	    add_opt(dc, "password", t->password, err, errlen) < 0)
		return -1;
	return 0;
}

static const char *pick(const char *a, const char *b)
{
	return a ? a : (b && b[0] ? b : NULL);
}

/*
 * The seed's sslmode=require, where nothing says otherwise: not
 * [database] sslmode (checked by the caller), not the URL, not PGSSLMODE
 * and no service file (PGSERVICE, service=), and only when the host that
 * will be used is a TCP host.  That host is the first of: DB_HOST over a
 * file url, the URL's host, the host under it (DB_HOST, else the file's),
 * PGHOSTADDR, PGHOST; with none, libpq uses the local Unix socket.
 */
static bool default_require(const char *(*env)(const char *),
			    const struct urlinfo *ui, bool url_from_env,
			    const struct target *e, const struct target *f)
{
	const char *v, *host;

	if ((v = env("PGSSLMODE")) && v[0])
		return false;
	if ((v = env("PGSERVICE")) && v[0])
		return false;
	if (ui && (ui->has_sslmode || ui->has_service))
		return false;
	if (ui && !url_from_env && e->host)
		return has_tcp_host(e->host);
	if (ui && ui->tcp >= 0)
		return ui->tcp == 1;
	host = pick(e->host, f->host);
	if (host)
		return has_tcp_host(host);
	if ((v = env("PGHOSTADDR")) && v[0])
		return true;
	return has_tcp_host(env("PGHOST"));
}

int dbconf_build(const struct config *cfg,
		 const char *(*env)(const char *name), struct dbconf *out,
		 char *err, size_t errlen)
{
	struct target e = {0}, f = {0}, r;
	const char *env_url, *url = NULL;
	char *file_password = NULL, port_buf[24], why[160];
	struct urlinfo ui;
	bool url_from_env = false;
	int url_idx = -1;

	memset(out, 0, sizeof(*out));
	memset(&ui, 0, sizeof(ui));
	if (!env)
		env = dbconf_getenv;

	if (getvar(env, "DATABASE_URL", &env_url, err, errlen) < 0 ||
	    getvar(env, "DB_HOST", &e.host, err, errlen) < 0 ||
	    getvar(env, "DB_PORT", &e.port, err, errlen) < 0 ||
	    getvar(env, "DB_NAME", &e.name, err, errlen) < 0 ||
	    getvar(env, "DB_USER", &e.user, err, errlen) < 0 ||
	    getvar(env, "DB_PASSWORD", &e.password, err, errlen) < 0)
		return -1;
	if (e.port && !valid_ports(e.port)) {
		snprintf(err, errlen, "DB_PORT must be a port number from 1 "
			 "to 65535 (or a comma-separated list of them)");
		return -1;
	}
	if (looks_like_conninfo(e.name)) {
		snprintf(err, errlen, "DB_NAME looks like a connection string; "
			 "put it in DATABASE_URL");
		return -1;
	}
	if (looks_like_conninfo(cfg->db.name)) {
		snprintf(err, errlen, "[database] name looks like a "
			 "connection string; put it in url");
		return -1;
	}

	if (env_url) {
		url = env_url;
		url_from_env = true;
	} else if (cfg->db.url && cfg->db.url[0]) {
		url = cfg->db.url;
	}
	if (url && inspect_url(url, &ui, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s",
			 url_from_env ? "DATABASE_URL" : "[database] url", why);
		return -1;
	}

	/* The password file is read only if its password may be used. */
	if (!e.password && cfg->db.password_file &&
	    cfg->db.password_file[0] &&
	    read_password_file(cfg->db.password_file, &file_password, err,
			       errlen) < 0)
		return -1;

	f.host = cfg->db.host;
	if (cfg->db.port > 0) {
		snprintf(port_buf, sizeof(port_buf), "%lld",
			 (long long)cfg->db.port);
		f.port = port_buf;
	}
	f.name = cfg->db.name;
	f.user = cfg->db.user;
	f.password = file_password ? file_password : cfg->db.password;

	r.host = pick(e.host, f.host);
	r.port = pick(e.port, f.port);
	r.name = pick(e.name, f.name);
	r.user = pick(e.user, f.user);
	r.password = pick(e.password, f.password);

	/* Options first: a URL that sets one of them wins. */
	if (cfg->db.sslmode && cfg->db.sslmode[0]) {
		if (add(out, "sslmode", cfg->db.sslmode, err, errlen) < 0)
			goto fail;
	} else if (default_require(env, url ? &ui : NULL, url_from_env, &e,
				   &f)) {
		if (add(out, "sslmode", "require", err, errlen) < 0)
			goto fail;
	}
	out->connect_timeout = cfg->db.connect_timeout;
	if (add_opt(out, "sslrootcert", cfg->db.sslrootcert, err, errlen) < 0 ||
	    add_opt(out, "sslcert", cfg->db.sslcert, err, errlen) < 0 ||
	    add_opt(out, "sslkey", cfg->db.sslkey, err, errlen) < 0 ||
	    add_int(out, "connect_timeout", cfg->db.connect_timeout, err,
		    errlen) < 0 ||
	    add(out, "keepalives", "1", err, errlen) < 0 ||
	    (cfg->db.keepalives_idle > 0 &&
	     add_int(out, "keepalives_idle", cfg->db.keepalives_idle, err,
		     errlen) < 0) ||
	    (cfg->db.keepalives_interval > 0 &&
	     add_int(out, "keepalives_interval", cfg->db.keepalives_interval,
		     err, errlen) < 0) ||
	    (cfg->db.keepalives_count > 0 &&
	     add_int(out, "keepalives_count", cfg->db.keepalives_count, err,
		     errlen) < 0) ||
	    (cfg->db.tcp_user_timeout > 0 &&
	     add_int(out, "tcp_user_timeout", cfg->db.tcp_user_timeout, err,
		     errlen) < 0) ||
	    add_opt(out, "target_session_attrs", cfg->db.target_session_attrs,
		    err, errlen) < 0 ||
	    add_opt(out, "application_name", cfg->db.application_name, err,
		    errlen) < 0)
		goto fail;

	if (!url) {
		if (add_target(out, &r, true, err, errlen) < 0)
			goto fail;
	} else if (url_from_env) {
		/* Fallbacks before the URL; a name only if it has none. */
		if (add_target(out, &r, false, err, errlen) < 0)
			goto fail;
		url_idx = out->n;
		if (add(out, "dbname", url, err, errlen) < 0 ||
		    (!ui.has_dbname &&
		     add_opt(out, "dbname", r.name, err, errlen) < 0))
			goto fail;
	} else {
		/* The file's keys under its url, DB_* over both. */
		if (add_target(out, &f, false, err, errlen) < 0)
			goto fail;
		url_idx = out->n;
		if (add(out, "dbname", url, err, errlen) < 0)
			goto fail;
		e.name = e.name ? e.name : (ui.has_dbname ? NULL : f.name);
		if (add_target(out, &e, true, err, errlen) < 0)
			goto fail;
	}
	if (url && ui.connect_timeout > 0)
		out->connect_timeout = ui.connect_timeout;

	describe(out, url_idx, url, url ? &ui : NULL);
	if (file_password) {
		explicit_bzero(file_password, strlen(file_password));
		free(file_password);
	}
	return 0;
fail:
	if (file_password) {
		explicit_bzero(file_password, strlen(file_password));
		free(file_password);
	}
	dbconf_free(out);
	return -1;
}
