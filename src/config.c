/*
 * config.c - the option table and everything driven by it: defaults, the
 * INI parser, `convd --help`, the sample etc/convd.conf, the option list of
 * convd.conf(5) and the effective configuration of `convd --check-config`.
 *
 * Defaults are written as text in the table and go through the same code
 * as values read from a file, so a default can never be something the
 * file could not say.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"

#ifndef PKGDATADIR
#define PKGDATADIR "/usr/local/share/convd"
#endif

#define CONFIG_MAX_LINE 4096		/* bytes per line, without "\n" */
#define CONFIG_MAX_FILE (1024 * 1024)	/* bytes per file */
#define CONFIG_WHY 256			/* reason buffers */

#define KIB ((int64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

/* ------------------------------------------------------------------ */
/* checks of string options                                            */

static bool one_of(const char *v, const char *const *choices)
{
	for (size_t i = 0; choices[i]; i++)
		if (strcmp(v, choices[i]) == 0)
			return true;
	return false;
}

static void list_choices(const char *const *choices, char *why,
			 size_t whylen)
{
	size_t n = 0;
	int w;

	w = snprintf(why, whylen, "must be one of");
	if (w < 0 || (size_t)w >= whylen)
		return;
	n = (size_t)w;
	for (size_t i = 0; choices[i]; i++) {
		w = snprintf(why + n, whylen - n, "%s %s",
			     i == 0 ? "" : (choices[i + 1] ? "," : " or"),
			     choices[i]);
		if (w < 0 || (size_t)w >= whylen - n)
			return;
		n += (size_t)w;
	}
}

static const char *const sslmodes[] = {
	"disable", "allow", "prefer", "require", "verify-ca", "verify-full",
	NULL,
};

static const char *const session_attrs[] = {
	"any", "read-write", "read-only", "primary", "standby",
	"prefer-standby", NULL,
};

static int check_sslmode(char *v, char *why, size_t whylen)
{
	if (v[0] == '\0' || one_of(v, sslmodes))
		return 0;
	list_choices(sslmodes, why, whylen);
	return -1;
}

static int check_session_attrs(char *v, char *why, size_t whylen)
{
	if (v[0] == '\0' || one_of(v, session_attrs))
		return 0;
	list_choices(session_attrs, why, whylen);
	return -1;
}

static int check_socket(char *v, char *why, size_t whylen)
{
	if (v[0] == '\0') {
		snprintf(why, whylen, "must not be empty");
		return -1;
	}
	if (strlen(v) >= SUN_PATH_MAX) {
		snprintf(why, whylen, "must be shorter than %zu bytes",
			 SUN_PATH_MAX);
		return -1;
	}
	return 0;
}

static int check_nonempty(char *v, char *why, size_t whylen)
{
	if (v[0] == '\0') {
		snprintf(why, whylen, "must not be empty");
		return -1;
	}
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * "alice, 1001 ,bob" -> "alice,1001,bob": names or numeric ids separated
 * by commas, blanks around them dropped; no empty element, no blank or
 * control character inside one.
 */
static int check_idlist(char *v, char *why, size_t whylen)
{
	char *out = v;
	const char *p = v;

	if (v[0] == '\0')
		return 0;
	for (;;) {
		const char *start, *end;

		while (is_space(*p))
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && is_space(end[-1]))
			end--;
		if (end == start) {
			snprintf(why, whylen,
				 "must be a comma-separated list of names or "
				 "numeric ids (empty element)");
			return -1;
		}
		for (const char *q = start; q < end; q++) {
			if ((unsigned char)*q <= ' ' || *q == 0x7f) {
				snprintf(why, whylen,
					 "must be a comma-separated list of "
					 "names or numeric ids (blank inside "
					 "a name)");
				return -1;
			}
		}
		if (out != v)
			*out++ = ',';
		memmove(out, start, (size_t)(end - start));
		out += end - start;
		if (*p == '\0')
			break;
		p++;	/* the comma */
	}
	*out = '\0';
	return 0;
}

/* ------------------------------------------------------------------ */
/* the table                                                           */

#define OFF(f) offsetof(struct convd_config, f)

static const struct {
	const char *name;
	const char *doc;
} config_sections[] = {
	{"database",
	 "How to connect to PostgreSQL. DATABASE_URL, and then DB_HOST, "
	 "DB_PORT, DB_NAME, DB_USER and DB_PASSWORD, in the environment take "
	 "precedence over this section."},
	{"pool", "The pool of database connections."},
	{"server", "The Unix socket and the clients that use it."},
	{"retention", "The periodic deletion of old messages."},
	{"log", "Logging."},
	{"migrations",
	 "The schema migrations run by convctl db; convd itself does not use "
	 "this section."},
};

const struct config_option config_options[] = {
	/* [database] */
	{.section = "database", .name = "url", .type = CT_STRING,
	 .offset = OFF(db.url), .def = "",
	 .doc = "PostgreSQL connection URI "
		"(postgresql://user@host:port/dbname?param=value) or key=value "
		"connection string. When set, it takes precedence over the "
		"other connection options of this section, which then only "
		"supply what it leaves out; DATABASE_URL replaces it."},
	{.section = "database", .name = "host", .type = CT_STRING,
	 .offset = OFF(db.host), .def = "",
	 .doc = "Database server host name, IP address, or the directory of "
		"its Unix socket (a path starting with /). Empty means libpq's "
		"default: PGHOST, else the local Unix socket. DB_HOST "
		"overrides it."},
	{.section = "database", .name = "port", .type = CT_INT,
	 .offset = OFF(db.port), .def = "0", .min = 0, .max = 65535,
	 .doc = "Database server port; 0 means libpq's default: PGPORT, else "
		"5432. DB_PORT overrides it."},
	{.section = "database", .name = "name", .type = CT_STRING,
	 .offset = OFF(db.name), .def = "",
	 .doc = "Database name. Empty means libpq's default: PGDATABASE, else "
		"the user name. DB_NAME overrides it."},
	{.section = "database", .name = "user", .type = CT_STRING,
	 .offset = OFF(db.user), .def = "",
	 .doc = "Database user. Empty means libpq's default: PGUSER, else the "
		"name of the user convd runs as. DB_USER overrides it."},
	{.section = "database", .name = "password", .type = CT_STRING,
	 .offset = OFF(db.password), .def = "", .secret = true,
	 .doc = "Database password. Prefer password_file, which keeps the "
		"secret out of this file; DB_PASSWORD overrides both."},
	{.section = "database", .name = "password_file", .type = CT_STRING,
	 .offset = OFF(db.password_file), .def = "",
	 .doc = "File whose first line is the database password. It must be "
		"a regular file that neither its group nor others may read or "
		"write."},
	{.section = "database", .name = "sslmode", .type = CT_STRING,
	 .offset = OFF(db.sslmode), .def = "", .check = check_sslmode,
	 .doc = "SSL mode: disable, allow, prefer, require, verify-ca or "
		"verify-full. Empty means require for a TCP host, and libpq's "
		"default for a Unix socket or when a URL is used."},
	{.section = "database", .name = "sslrootcert", .type = CT_STRING,
	 .offset = OFF(db.sslrootcert), .def = "",
	 .doc = "File of the certificate authorities trusted by verify-ca and "
		"verify-full. Empty means libpq's default."},
	{.section = "database", .name = "sslcert", .type = CT_STRING,
	 .offset = OFF(db.sslcert), .def = "",
	 .doc = "Client certificate file. Empty means libpq's default."},
	{.section = "database", .name = "sslkey", .type = CT_STRING,
	 .offset = OFF(db.sslkey), .def = "",
	 .doc = "Private key of the client certificate. Empty means libpq's "
		"default."},
	{.section = "database", .name = "connect_timeout", .type = CT_INT,
	 .offset = OFF(db.connect_timeout), .def = "10", .min = 1,
	 .max = 3600,
	 .doc = "Seconds allowed to open a database connection, "
		"authentication included.  With a list of hosts each host "
		"has this long before the next one is tried, and a host that "
		"did not answer is skipped by the connections opened in the "
		"next 30 seconds."},
	{.section = "database", .name = "keepalives_idle", .type = CT_INT,
	 .offset = OFF(db.keepalives_idle), .def = "600", .min = 0,
	 .max = 86400,
	 .doc = "Seconds without traffic before TCP sends a keepalive probe "
		"to the server; 0 means the system default."},
	{.section = "database", .name = "keepalives_interval", .type = CT_INT,
	 .offset = OFF(db.keepalives_interval), .def = "30", .min = 0,
	 .max = 3600,
	 .doc = "Seconds between unanswered TCP keepalive probes; 0 means the "
		"system default."},
	{.section = "database", .name = "keepalives_count", .type = CT_INT,
	 .offset = OFF(db.keepalives_count), .def = "3", .min = 0, .max = 100,
	 .doc = "Unanswered TCP keepalive probes after which the connection "
		"is considered dead; 0 means the system default."},
	{.section = "database", .name = "tcp_user_timeout", .type = CT_INT,
	 .offset = OFF(db.tcp_user_timeout), .def = "0", .min = 0,
	 .max = 3600000,
	 .doc = "Milliseconds that data sent may remain unacknowledged before "
		"the connection is dropped; 0 means the system default."},
	{.section = "database", .name = "target_session_attrs",
	 .type = CT_STRING, .offset = OFF(db.target_session_attrs),
	 .def = "any", .check = check_session_attrs,
	 .doc = "Which server of a list of hosts to accept: any, read-write, "
		"read-only, primary, standby or prefer-standby."},
	{.section = "database", .name = "application_name", .type = CT_STRING,
	 .offset = OFF(db.application_name), .def = "convd",
	 .doc = "Name that the server shows for convd's connections, in "
		"pg_stat_activity for one."},
	{.section = "database", .name = "statement_timeout", .type = CT_INT,
	 .offset = OFF(db.statement_timeout), .def = "0", .min = 0,
	 .max = 2147483647, .reloadable = true,
	 .doc = "Milliseconds after which the server cancels a statement; 0 "
		"means no limit."},

	/* [pool] */
	{.section = "pool", .name = "size", .type = CT_INT,
	 .offset = OFF(pool.size), .def = "20", .min = 1, .max = 1000,
	 .reloadable = true,
	 .doc = "Connections kept open to the database."},
	{.section = "pool", .name = "max_overflow", .type = CT_INT,
	 .offset = OFF(pool.max_overflow), .def = "30", .min = 0, .max = 1000,
	 .reloadable = true,
	 .doc = "Further connections opened while requests wait for one; they "
		"are closed again once idle."},
	{.section = "pool", .name = "timeout", .type = CT_INT,
	 .offset = OFF(pool.timeout), .def = "30", .min = 1, .max = 3600,
	 .reloadable = true,
	 .doc = "Seconds a request waits for a connection before it fails "
		"with the error timeout."},
	{.section = "pool", .name = "recycle", .type = CT_INT,
	 .offset = OFF(pool.recycle), .def = "3600", .min = 0,
	 .max = 7 * 86400, .reloadable = true,
	 .doc = "Seconds after which a connection is closed and replaced, "
		"once it is idle; 0 means never."},
	{.section = "pool", .name = "pre_ping", .type = CT_BOOL,
	 .offset = OFF(pool.pre_ping), .def = "yes", .reloadable = true,
	 .doc = "Check that an idle connection still works before handing it "
		"out, and replace it if it does not."},
	{.section = "pool", .name = "pre_ping_after", .type = CT_INT,
	 .offset = OFF(pool.pre_ping_after), .def = "5", .min = 0,
	 .max = 86400, .reloadable = true,
	 .doc = "Seconds a connection must have been idle before pre_ping "
		"checks it; 0 checks it before every use. After a connection "
		"is found broken, every connection older than the failure is "
		"checked whatever its idle time."},
	{.section = "pool", .name = "overflow_idle_timeout", .type = CT_INT,
	 .offset = OFF(pool.overflow_idle_timeout), .def = "30", .min = 1,
	 .max = 86400, .reloadable = true,
	 .doc = "Seconds an overflow connection (one above size) may stay "
		"idle before it is closed."},

	/* [server] */
	{.section = "server", .name = "socket", .type = CT_STRING,
	 .offset = OFF(server.socket), .def = CONVD_DEFAULT_SOCKET,
	 .check = check_socket,
	 .doc = "Path of the Unix socket convd listens on, unless systemd "
		"passes it one. It must be shorter than 108 bytes."},
	{.section = "server", .name = "socket_mode", .type = CT_MODE,
	 .offset = OFF(server.socket_mode), .def = "0660", .min = 0,
	 .max = 0777,
	 .doc = "Permissions of the socket, in octal."},
	{.section = "server", .name = "socket_group", .type = CT_STRING,
	 .offset = OFF(server.socket_group), .def = "",
	 .doc = "Group (name or numeric id) that owns the socket. Empty means "
		"the group convd runs as."},
	{.section = "server", .name = "max_clients", .type = CT_INT,
	 .offset = OFF(server.max_clients), .def = "1024", .min = 1,
	 .max = 1000000, .reloadable = true,
	 .doc = "Client connections served at once; further ones are "
		"refused."},
	{.section = "server", .name = "max_request_bytes", .type = CT_SIZE,
	 .offset = OFF(server.max_request_bytes), .def = "2M", .min = KIB,
	 .max = GIB, .reloadable = true,
	 .doc = "Largest request accepted; a client that sends a larger one "
		"is disconnected."},
	{.section = "server", .name = "max_content_bytes", .type = CT_SIZE,
	 .offset = OFF(server.max_content_bytes), .def = "1M", .min = 1,
	 .max = GIB, .reloadable = true,
	 .doc = "Largest message content that add_message accepts. It must be "
		"smaller than max_request_bytes."},
	{.section = "server", .name = "max_inflight", .type = CT_INT,
	 .offset = OFF(server.max_inflight), .def = "128", .min = 1,
	 .max = 65536, .reloadable = true,
	 .doc = "Requests of one client in flight at once; while a client has "
		"that many, convd stops reading from it."},
	{.section = "server", .name = "max_output_bytes", .type = CT_SIZE,
	 .offset = OFF(server.max_output_bytes), .def = "16M", .min = KIB,
	 .max = 4 * GIB, .reloadable = true,
	 .doc = "A client whose unsent responses exceed this size is "
		"disconnected, and a single response larger than this is "
		"refused with result_too_large. It must be at least "
		"max_request_bytes."},
	{.section = "server", .name = "idle_timeout", .type = CT_INT,
	 .offset = OFF(server.idle_timeout), .def = "0", .min = 0,
	 .max = 7 * 86400, .reloadable = true,
	 .doc = "Seconds after which a client with no request in flight is "
		"disconnected; 0 means never."},
	{.section = "server", .name = "shutdown_timeout", .type = CT_INT,
	 .offset = OFF(server.shutdown_timeout), .def = "10", .min = 0,
	 .max = 3600, .reloadable = true,
	 .doc = "Seconds convd waits, when it stops, for requests in flight "
		"to finish."},
	{.section = "server", .name = "allow_users", .type = CT_STRING,
	 .offset = OFF(server.allow_users), .def = "", .reloadable = true,
	 .check = check_idlist,
	 .doc = "Comma-separated user names or numeric user ids that may use "
		"the socket. When allow_users and allow_groups are both "
		"empty, anyone who can open the socket may."},
	{.section = "server", .name = "allow_groups", .type = CT_STRING,
	 .offset = OFF(server.allow_groups), .def = "", .reloadable = true,
	 .check = check_idlist,
	 .doc = "Comma-separated group names or numeric group ids whose "
		"members may use the socket; see allow_users."},
	{.section = "server", .name = "admin_users", .type = CT_STRING,
	 .offset = OFF(server.admin_users), .def = "", .reloadable = true,
	 .check = check_idlist,
	 .doc = "Comma-separated user names or numeric user ids that may call "
		"the admin methods, such as cleanup_old_conversations. When "
		"admin_users and admin_groups are both empty, only root and "
		"the user convd runs as may."},
	{.section = "server", .name = "admin_groups", .type = CT_STRING,
	 .offset = OFF(server.admin_groups), .def = "", .reloadable = true,
	 .check = check_idlist,
	 .doc = "Comma-separated group names or numeric group ids whose "
		"members may call the admin methods; see admin_users."},

	/* [retention] */
	{.section = "retention", .name = "days_to_keep", .type = CT_INT,
	 .offset = OFF(retention.days_to_keep), .def = "0", .min = 0,
	 .max = 36500, .reloadable = true, .example = "30",
	 .doc = "Off (0) by default: convd deletes nothing. Set to N, and "
		"messages older than N days are deleted by the periodic "
		"cleanup, of every user, for good (30: everything older than "
		"a month goes, the first run shortly after start; convd logs "
		"how many its first run deletes, and `convctl cleanup "
		"--dry-run` counts them without deleting). It is also the "
		"default of cleanup_old_conversations."},
	{.section = "retention", .name = "interval", .type = CT_INT,
	 .offset = OFF(retention.interval), .def = "3600", .min = 60,
	 .max = 604800, .reloadable = true,
	 .doc = "Seconds between two runs of the cleanup."},
	{.section = "retention", .name = "batch_size", .type = CT_INT,
	 .offset = OFF(retention.batch_size), .def = "5000", .min = 1,
	 .max = 1000000, .reloadable = true,
	 .doc = "Messages deleted per transaction by the cleanup, so that it "
		"never holds locks for long."},

	/* [log] */
	{.section = "log", .name = "level", .type = CT_LEVEL,
	 .offset = OFF(log.level), .def = "info", .reloadable = true,
	 .doc = "Least important messages logged: error, warning, notice, "
		"info or debug."},

	/* [migrations] */
	{.section = "migrations", .name = "directory", .type = CT_STRING,
	 .offset = OFF(migrations.directory), .def = PKGDATADIR "/migrations",
	 .reloadable = true, .check = check_nonempty,
	 .doc = "Directory of the schema revision files."},
	{.section = "migrations", .name = "allow_reset", .type = CT_BOOL,
	 .offset = OFF(migrations.allow_reset), .def = "no",
	 .reloadable = true,
	 .doc = "Let convctl db reset drop convd's tables and all their data. "
		"Leave it off in production."},
};

const size_t config_noptions = ARRAY_LEN(config_options);

/* ------------------------------------------------------------------ */
/* values                                                              */

static void *opt_ptr(struct convd_config *cfg, const struct config_option *o)
{
	return (char *)cfg + o->offset;
}

static const void *opt_cptr(const struct convd_config *cfg,
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
		mul = KIB;
		s++;
		break;
	case 'm': case 'M':
		mul = MIB;
		s++;
		break;
	case 'g': case 'G':
		mul = GIB;
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
	if (v != 0 && v % GIB == 0)
		snprintf(buf, len, "%lldG", (long long)(v / GIB));
	else if (v != 0 && v % MIB == 0)
		snprintf(buf, len, "%lldM", (long long)(v / MIB));
	else if (v != 0 && v % KIB == 0)
		snprintf(buf, len, "%lldK", (long long)(v / KIB));
	else
		snprintf(buf, len, "%lld", (long long)v);
}

static void range_error(const struct config_option *o, char *why,
			size_t whylen)
{
	char lo[32], hi[32];

	switch (o->type) {
	case CT_SIZE:
		format_size(o->min, lo, sizeof(lo));
		format_size(o->max, hi, sizeof(hi));
		snprintf(why, whylen,
			 "must be a size from %s to %s (bytes, or with a K, M "
			 "or G suffix)", lo, hi);
		break;
	case CT_MODE:
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

int config_set(struct convd_config *cfg, const struct config_option *o,
	       const char *text, char *why, size_t whylen)
{
	void *p = opt_ptr(cfg, o);
	int64_t v;
	int rc;

	switch (o->type) {
	case CT_STRING: {
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
	case CT_BOOL:
		if (parse_bool(text, p) < 0) {
			snprintf(why, whylen, "must be yes or no");
			return -1;
		}
		return 0;
	case CT_LEVEL:
		if (log_level_parse(text, p) < 0) {
			snprintf(why, whylen, "must be one of error, warning, "
				 "notice, info or debug");
			return -1;
		}
		return 0;
	case CT_INT:
		rc = parse_int(text, &v);
		break;
	case CT_SIZE:
		rc = parse_size(text, &v);
		break;
	case CT_MODE:
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

	return n == 0 || s[0] == '"' || is_space(s[0]) || is_space(s[n - 1]);
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

void config_format_value(const struct convd_config *cfg,
			 const struct config_option *o, char *buf, size_t len)
{
	const void *p = opt_cptr(cfg, o);

	if (len == 0)
		return;
	switch (o->type) {
	case CT_STRING: {
		const char *s = *(char *const *)p;

		if (!s)
			s = "";
		if (o->secret && s[0] != '\0')
			snprintf(buf, len, "********");
		else
			format_string(s, buf, len);
		break;
	}
	case CT_BOOL:
		snprintf(buf, len, "%s", *(const bool *)p ? "yes" : "no");
		break;
	case CT_LEVEL:
		snprintf(buf, len, "%s",
			 log_level_name(*(const enum log_level *)p));
		break;
	case CT_SIZE:
		format_size(*(const int64_t *)p, buf, len);
		break;
	case CT_MODE:
		snprintf(buf, len, "%04llo",
			 (unsigned long long)*(const int64_t *)p);
		break;
	case CT_INT:
	default:
		snprintf(buf, len, "%lld", (long long)*(const int64_t *)p);
		break;
	}
}

static bool opt_equal(const struct convd_config *a,
		      const struct convd_config *b,
		      const struct config_option *o)
{
	const void *pa = opt_cptr(a, o), *pb = opt_cptr(b, o);

	switch (o->type) {
	case CT_STRING: {
		const char *sa = *(char *const *)pa, *sb = *(char *const *)pb;

		return strcmp(sa ? sa : "", sb ? sb : "") == 0;
	}
	case CT_BOOL:
		return *(const bool *)pa == *(const bool *)pb;
	case CT_LEVEL:
		return *(const enum log_level *)pa ==
		       *(const enum log_level *)pb;
	default:
		return *(const int64_t *)pa == *(const int64_t *)pb;
	}
}

const struct config_option *config_find(const char *section,
					const char *name)
{
	for (size_t i = 0; i < config_noptions; i++)
		if (strcmp(config_options[i].section, section) == 0 &&
		    strcmp(config_options[i].name, name) == 0)
			return &config_options[i];
	return NULL;
}

static bool section_known(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(config_sections); i++)
		if (strcmp(config_sections[i].name, name) == 0)
			return true;
	return false;
}

static const char *section_doc(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(config_sections); i++)
		if (strcmp(config_sections[i].name, name) == 0)
			return config_sections[i].doc;
	return "";
}

/* ------------------------------------------------------------------ */
/* life cycle                                                          */

void config_free(struct convd_config *cfg)
{
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];

		if (o->type == CT_STRING) {
			char **s = opt_ptr(cfg, o);

			free(*s);
			*s = NULL;
		}
	}
	free(cfg->path);
	cfg->path = NULL;
}

int config_init(struct convd_config *cfg)
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
static int config_copy(struct convd_config *dst,
		       const struct convd_config *src)
{
	memcpy(dst, src, sizeof(*dst));
	dst->path = NULL;
	for (size_t i = 0; i < config_noptions; i++)
		if (config_options[i].type == CT_STRING)
			*(char **)opt_ptr(dst, &config_options[i]) = NULL;
	if (src->path && !(dst->path = strdup(src->path)))
		goto fail;
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		const char *s;

		if (o->type != CT_STRING)
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

/* ------------------------------------------------------------------ */
/* the parser                                                          */

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

static int parse_line(struct convd_config *cfg, struct parse_state *ps,
		      char *s)
{
	char why[CONFIG_WHY], name[128];
	const struct config_option *o;
	char *eq, *key, *val, *end;
	size_t idx;

	while (is_space(*s))
		s++;
	end = s + strlen(s);
	while (end > s && is_space(end[-1]))
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
		while (is_space(*name_start))
			name_start++;
		while (name_end > name_start && is_space(name_end[-1]))
			name_end--;
		*name_end = '\0';
		if (!section_known(name_start)) {
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

		while (kend > key && is_space(kend[-1]))
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
	while (is_space(*val))
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

static int parse_buffer(struct convd_config *cfg, const char *path,
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

int config_load_file(struct convd_config *cfg, const char *path, char *err,
		     size_t errlen)
{
	struct convd_config tmp;
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

/* ------------------------------------------------------------------ */
/* cross checks                                                        */

int config_validate(const struct convd_config *cfg, char *err, size_t errlen)
{
	const char *where = cfg->path ? cfg->path : "configuration";
	char why[CONFIG_WHY], a[32], b[32];

	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		const void *p = opt_cptr(cfg, o);

		if (o->type == CT_INT || o->type == CT_SIZE ||
		    o->type == CT_MODE) {
			int64_t v = *(const int64_t *)p;

			if (v < o->min || v > o->max) {
				range_error(o, why, sizeof(why));
				goto bad_option;
			}
		} else if (o->type == CT_STRING) {
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

	if (cfg->server.max_content_bytes >= cfg->server.max_request_bytes) {
		format_size(cfg->server.max_content_bytes, a, sizeof(a));
		format_size(cfg->server.max_request_bytes, b, sizeof(b));
		snprintf(err, errlen,
			 "%s: [server] max_content_bytes (%s) must be less "
			 "than max_request_bytes (%s)", where, a, b);
		return -1;
	}
	if (cfg->server.max_output_bytes < cfg->server.max_request_bytes) {
		format_size(cfg->server.max_output_bytes, a, sizeof(a));
		format_size(cfg->server.max_request_bytes, b, sizeof(b));
		snprintf(err, errlen,
			 "%s: [server] max_output_bytes (%s) must be at least "
			 "max_request_bytes (%s)", where, a, b);
		return -1;
	}
	if (cfg->db.password[0] != '\0' && cfg->db.password_file[0] != '\0') {
		snprintf(err, errlen,
			 "%s: [database] password and password_file are both "
			 "set; keep one", where);
		return -1;
	}
	return 0;
}

int config_nonreloadable_changes(const struct convd_config *old,
				 const struct convd_config *new,
				 void (*cb)(const struct config_option *opt,
					    void *arg),
				 void *arg)
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

/* ------------------------------------------------------------------ */
/* generators                                                          */

#define HELP_COL 40
#define HELP_WIDTH 79
#define SAMPLE_WIDTH 76

/*
 * Writes text word by word.  The current line already holds col columns;
 * lines end before width columns (a word longer than that gets a line of
 * its own), later lines start with indent.
 */
static void wrap(FILE *out, const char *text, size_t col, const char *indent,
		 size_t width)
{
	const char *p = text;
	bool line_empty = true;

	for (;;) {
		size_t wl;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		wl = strcspn(p, " ");
		if (!line_empty && col + 1 + wl > width) {
			fputc('\n', out);
			fputs(indent, out);
			col = strlen(indent);
			line_empty = true;
		}
		if (!line_empty) {
			fputc(' ', out);
			col++;
		}
		fwrite(p, 1, wl, out);
		col += wl;
		line_empty = false;
		p += wl;
	}
	fputc('\n', out);
}

/* The default as the file writes it ("" for an empty string). */
static const char *def_text(const struct config_option *o)
{
	return o->def[0] == '\0' ? "\"\"" : o->def;
}

void config_print_help(FILE *out)
{
	char indent[HELP_COL + 1];

	memset(indent, ' ', HELP_COL);
	indent[HELP_COL] = '\0';
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		int col;

		col = fprintf(out, "  [%s] %s = %s", o->section, o->name,
			      def_text(o));
		if (col < 0)
			return;
		if (col > HELP_COL - 2) {
			fputc('\n', out);
			col = 0;
		}
		fprintf(out, "%*s", HELP_COL - col, "");
		wrap(out, o->doc, HELP_COL, indent, HELP_WIDTH);
	}
}

void config_print_sample(FILE *out)
{
	const char *section = NULL;

	fputs("# convd.conf - configuration of convd(8) and convctl(1); see "
	      "convd.conf(5).\n#\n# ", out);
	wrap(out,
	     "Every option is listed with its description and its default "
	     "value, commented out: remove the # and change the value to set "
	     "it. Values may be \"double quoted\", with \\\" and \\\\ "
	     "escapes. Times are in seconds unless an option says otherwise, "
	     "sizes in bytes with an optional K, M or G suffix (1024-based), "
	     "modes in octal, and booleans are yes or no. Comments (# or ;) "
	     "take whole lines. DATABASE_URL, and then DB_HOST, DB_PORT, "
	     "DB_NAME, DB_USER and DB_PASSWORD, in the environment override "
	     "[database]. `convd --check-config` prints the values in effect.",
	     2, "# ", SAMPLE_WIDTH);
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];

		if (!section || strcmp(section, o->section) != 0) {
			section = o->section;
			fprintf(out, "\n[%s]\n# ", section);
			wrap(out, section_doc(section), 2, "# ",
			     SAMPLE_WIDTH);
		}
		fputs("\n# ", out);
		wrap(out, o->doc, 2, "# ", SAMPLE_WIDTH);
		fprintf(out, "# reloadable: %s\n",
			o->reloadable ? "yes" : "no");
		fprintf(out, "#%s = %s\n", o->name,
			o->example ? o->example : def_text(o));
	}
}

#define MAN_WIDTH 72

/* One word of roff text: backslashes escaped, a leading dot made inert. */
static void man_word(FILE *out, const char *s, size_t n, bool line_start)
{
	if (line_start && n > 0 && (s[0] == '.' || s[0] == '\''))
		fputs("\\&", out);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\')
			fputs("\\e", out);
		else
			fputc(s[i], out);
	}
}

/*
 * Each sentence on a line of its own, as mdoc wants it, and lines kept
 * short (a line break inside a sentence is just a space to roff).
 */
static void man_sentences(FILE *out, const char *doc)
{
	const char *p = doc;

	while (*p) {
		const char *stop = strstr(p, ". ");
		const char *end = stop ? stop + 1 : p + strlen(p);
		size_t col = 0;

		while (p < end) {
			size_t wl;

			while (p < end && *p == ' ')
				p++;
			if (p == end)
				break;
			wl = strcspn(p, " ");
			if (wl > (size_t)(end - p))
				wl = (size_t)(end - p);
			if (col > 0 && col + 1 + wl > MAN_WIDTH) {
				fputc('\n', out);
				col = 0;
			}
			if (col > 0) {
				fputc(' ', out);
				col++;
			}
			man_word(out, p, wl, col == 0);
			col += wl;
			p += wl;
		}
		fputc('\n', out);
		while (*p == ' ')
			p++;
	}
}

void config_print_man(FILE *out)
{
	const char *section = NULL;

	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];

		if (!section || strcmp(section, o->section) != 0) {
			if (section)
				fputs(".El\n", out);
			section = o->section;
			fprintf(out, ".Ss \\&[%s]\\&\n", section);
			man_sentences(out, section_doc(section));
			fputs(".Bl -tag -width Ds\n", out);
		}
		fprintf(out, ".It Cm %s Ns = Ns ", o->name);
		if (o->def[0] == '\0') {
			fputs("Qq \"\"\n", out);
		} else {
			fputs("Ar ", out);
			man_word(out, o->def, strlen(o->def), false);
			fputc('\n', out);
		}
		man_sentences(out, o->doc);
		fprintf(out, "Reloadable: %s.\n", o->reloadable ? "yes" : "no");
	}
	if (section)
		fputs(".El\n", out);
}

void config_print_effective(FILE *out, const struct convd_config *cfg)
{
	const char *section = NULL;
	char buf[2 * CONFIG_MAX_LINE + 8];

	fprintf(out, "# effective configuration (%s%s)\n",
		cfg->path ? "file " : "defaults, no file",
		cfg->path ? cfg->path : "");
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];

		if (!section || strcmp(section, o->section) != 0) {
			section = o->section;
			fprintf(out, "\n[%s]\n", section);
		}
		config_format_value(cfg, o, buf, sizeof(buf));
		fprintf(out, "%s = %s\n", o->name, buf);
	}
}
