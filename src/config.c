/*
 * config.c - the option table: every option of convd.conf with its type,
 * default, bounds, documentation and reload behaviour, its sections, and
 * the checks of string options.  Everything else is driven by it:
 * config_value.c (values, defaults, cross-checks), config_parse.c (the INI
 * parser) and config_doc.c (`convd --help`, the sample etc/convd.conf, the
 * option list of convd.conf(5), `convd --check-config`).
 *
 * Defaults are written as text in the table and go through the same code
 * as values read from a file, so a default can never be something the
 * file could not say.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "addr.h"
#include "config.h"
#include "config_internal.h"

#ifndef PKGDATADIR
#define PKGDATADIR "/usr/local/share/convd"
#endif

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

static const char *const prepare_modes[] = {"auto", "yes", "no", NULL};

static int check_prepare(char *v, char *why, size_t whylen)
{
	if (one_of(v, prepare_modes))
		return 0;
	list_choices(prepare_modes, why, whylen);
	return -1;
}

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

static int check_http_listen(char *v, char *why, size_t whylen)
{
	struct addr_listen a;

	if (v[0] == '\0')
		return 0;
	return addr_parse_listen(v, &a, why, whylen);
}

static int check_nonempty(char *v, char *why, size_t whylen)
{
	if (v[0] == '\0') {
		snprintf(why, whylen, "must not be empty");
		return -1;
	}
	return 0;
}

bool config_is_space(char c)
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

		while (config_is_space(*p))
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && config_is_space(end[-1]))
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

#define OFF(f) offsetof(struct config, f)

static const struct {
	const char *name;
	const char *doc;
} config_sections[] = {
	{"database",
	 "How to connect to PostgreSQL. DATABASE_URL, and then DB_HOST, "
	 "DB_PORT, DB_NAME, DB_USER and DB_PASSWORD, in the environment take "
	 "precedence over this section, which takes precedence over libpq's "
	 "PG* variables."},
	{"pool", "The pool of database connections."},
	{"server", "The Unix socket and the clients that use it."},
	{"retention", "The periodic deletion of old messages."},
	{"http",
	 "The HTTP endpoint for operators: GET /metrics (Prometheus), /healthz "
	 "and /readyz. Off unless listen is set."},
	{"log", "Logging."},
	{"migrations",
	 "The schema migrations run by convctl db; convd itself does not use "
	 "this section."},
};

const struct config_option config_options[] = {
	/* [database] */
	{.section = "database", .name = "url", .type = CONFIG_T_STRING,
	 .offset = OFF(db.url), .def = "",
	 .doc = "PostgreSQL connection URI "
		"(postgresql://user@host:port/dbname?param=value) or key=value "
		"connection string. When set, it takes precedence over the "
		"other connection options of this section, which then only "
		"supply what it leaves out; DATABASE_URL replaces it."},
	{.section = "database", .name = "host", .type = CONFIG_T_STRING,
	 .offset = OFF(db.host), .def = "",
	 .doc = "Database server host name, IP address, or the directory of "
		"its Unix socket (a path starting with /). Empty means libpq's "
		"default: PGHOST, else the local Unix socket. DB_HOST "
		"overrides it."},
	{.section = "database", .name = "port", .type = CONFIG_T_INT,
	 .offset = OFF(db.port), .def = "0", .min = 0, .max = 65535,
	 .doc = "Database server port; 0 means libpq's default: PGPORT, else "
		"5432. DB_PORT overrides it."},
	{.section = "database", .name = "name", .type = CONFIG_T_STRING,
	 .offset = OFF(db.name), .def = "",
	 .doc = "Database name. Empty means libpq's default: PGDATABASE, else "
		"the user name. DB_NAME overrides it."},
	{.section = "database", .name = "user", .type = CONFIG_T_STRING,
	 .offset = OFF(db.user), .def = "",
	 .doc = "Database user. Empty means libpq's default: PGUSER, else the "
		"name of the user convd runs as. DB_USER overrides it."},
	{.section = "database", .name = "password", .type = CONFIG_T_STRING,
	 .offset = OFF(db.password), .def = "", .secret = true,
	 .doc = "Database password. Prefer password_file, which keeps the "
		"secret out of this file; DB_PASSWORD overrides both."},
	{.section = "database", .name = "password_file",
	 .type = CONFIG_T_STRING, .offset = OFF(db.password_file), .def = "",
	 .doc = "File whose first line is the database password. It must be "
		"a regular file that neither its group nor others may read or "
		"write."},
	{.section = "database", .name = "sslmode", .type = CONFIG_T_STRING,
	 .offset = OFF(db.sslmode), .def = "", .check = check_sslmode,
	 .doc = "SSL mode: disable, allow, prefer, require, verify-ca or "
		"verify-full. It wins over PGSSLMODE; a URL's sslmode wins "
		"over it. Empty means require for a TCP host where nothing "
		"else says a mode (the URL, PGSSLMODE, a service file), and "
		"libpq's default for a Unix socket."},
	{.section = "database", .name = "sslrootcert", .type = CONFIG_T_STRING,
	 .offset = OFF(db.sslrootcert), .def = "",
	 .doc = "File of the certificate authorities trusted by verify-ca and "
		"verify-full. Empty means libpq's default."},
	{.section = "database", .name = "sslcert", .type = CONFIG_T_STRING,
	 .offset = OFF(db.sslcert), .def = "",
	 .doc = "Client certificate file. Empty means libpq's default."},
	{.section = "database", .name = "sslkey", .type = CONFIG_T_STRING,
	 .offset = OFF(db.sslkey), .def = "",
	 .doc = "Private key of the client certificate. Empty means libpq's "
		"default."},
	{.section = "database", .name = "connect_timeout", .type = CONFIG_T_INT,
	 .offset = OFF(db.connect_timeout), .def = "10", .min = 1,
	 .max = 3600,
	 .doc = "Seconds allowed to open a database connection, "
		"authentication included.  With a list of hosts each host "
		"has this long before the next one is tried, and a host that "
		"did not answer is skipped by the connections opened in the "
		"next 30 seconds."},
	{.section = "database", .name = "keepalives_idle", .type = CONFIG_T_INT,
	 .offset = OFF(db.keepalives_idle), .def = "600", .min = 0,
	 .max = 86400,
	 .doc = "Seconds without traffic before TCP sends a keepalive probe "
		"to the server; 0 means the system default."},
	{.section = "database", .name = "keepalives_interval",
	 .type = CONFIG_T_INT,
	 .offset = OFF(db.keepalives_interval), .def = "30", .min = 0,
	 .max = 3600,
	 .doc = "Seconds between unanswered TCP keepalive probes; 0 means the "
		"system default."},
	{.section = "database", .name = "keepalives_count",
	 .type = CONFIG_T_INT,
	 .offset = OFF(db.keepalives_count), .def = "3", .min = 0, .max = 100,
	 .doc = "Unanswered TCP keepalive probes after which the connection "
		"is considered dead; 0 means the system default."},
	{.section = "database", .name = "tcp_user_timeout",
	 .type = CONFIG_T_INT,
	 .offset = OFF(db.tcp_user_timeout), .def = "0", .min = 0,
	 .max = 3600000,
	 .doc = "Milliseconds that data sent may remain unacknowledged before "
		"the connection is dropped; 0 means the system default."},
	{.section = "database", .name = "target_session_attrs",
	 .type = CONFIG_T_STRING, .offset = OFF(db.target_session_attrs),
	 .def = "any", .check = check_session_attrs,
	 .doc = "Which server of a list of hosts to accept: any, read-write, "
		"read-only, primary, standby or prefer-standby."},
	{.section = "database", .name = "application_name",
	 .type = CONFIG_T_STRING,
	 .offset = OFF(db.application_name), .def = "convd",
	 .doc = "Name that the server shows for convd's connections, in "
		"pg_stat_activity for one."},
	{.section = "database", .name = "statement_timeout",
	 .type = CONFIG_T_INT,
	 .offset = OFF(db.statement_timeout), .def = "0", .min = 0,
	 .max = 2147483647, .reloadable = true,
	 .doc = "Milliseconds after which the server cancels a statement; 0 "
		"means no limit."},
	{.section = "database", .name = "prepared_statements",
	 .type = CONFIG_T_STRING, .offset = OFF(db.prepared_statements),
	 .def = "auto", .check = check_prepare,
	 .doc = "Whether convd prepares its statements on each connection: "
		"yes, no, or auto. Set no behind a transaction-mode pooler "
		"(PgBouncer pool_mode = transaction, pgpool-II, Odyssey...): "
		"statements are then sent unnamed and no session state "
		"outlives a transaction. auto prepares them unless a pooler "
		"is seen: the server process that answers is not the one "
		"the connection was opened with, or a prepared statement is "
		"missing or already there (SQLSTATE 26000, 42P05)."},
	{.section = "database", .name = "recheck_interval",
	 .type = CONFIG_T_INT,
	 .offset = OFF(db.recheck_interval), .def = "5", .min = 1,
	 .max = 3600, .reloadable = true,
	 .doc = "With target_session_attrs read-write or primary: seconds "
		"after which a connection is checked again before use (is "
		"its server still a writable primary?). Every connection is "
		"also checked after any sign of a failover: a read-only "
		"error, a lost connection, a failed connect or pre-ping. As "
		"often, with a list of hosts, one probe connection looks for "
		"another writable host on a newer timeline (the primary "
		"convd uses is then stale, and is left)."},

	/* [pool] */
	{.section = "pool", .name = "size", .type = CONFIG_T_INT,
	 .offset = OFF(pool.size), .def = "20", .min = 1, .max = 1000,
	 .reloadable = true,
	 .doc = "Most connections opened for steady load: connections are "
		"opened as requests need them, up to this many (plus "
		"max_overflow while requests wait), and closed again when "
		"idle (see min_size and idle_timeout)."},
	{.section = "pool", .name = "min_size", .type = CONFIG_T_INT,
	 .offset = OFF(pool.min_size), .def = "2", .min = 0, .max = 1000,
	 .reloadable = true,
	 .doc = "Connections kept open even when idle (at most size). "
		"Across every convd on one server, the sum of min_size must "
		"fit in max_connections: see SIZING in convd(8)."},
	{.section = "pool", .name = "idle_timeout", .type = CONFIG_T_INT,
	 .offset = OFF(pool.idle_timeout), .def = "60", .min = 1,
	 .max = 86400, .reloadable = true,
	 .doc = "Seconds a connection above min_size may stay idle before it "
		"is closed."},
	{.section = "pool", .name = "reconnect_backoff_min",
	 .type = CONFIG_T_INT,
	 .offset = OFF(pool.reconnect_backoff_min), .def = "50", .min = 1,
	 .max = 60000, .reloadable = true,
	 .doc = "Milliseconds before the second attempt to reach a database "
		"that cannot be reached (the first is immediate); each "
		"further attempt waits twice as long, up to "
		"reconnect_backoff_max, with jitter."},
	{.section = "pool", .name = "reconnect_backoff_max",
	 .type = CONFIG_T_INT,
	 .offset = OFF(pool.reconnect_backoff_max), .def = "250", .min = 1,
	 .max = 600000, .reloadable = true,
	 .doc = "Most milliseconds between two attempts to reach the "
		"database: convd serves again at most this long after the "
		"database (a new primary) accepts connections."},
	{.section = "pool", .name = "max_overflow", .type = CONFIG_T_INT,
	 .offset = OFF(pool.max_overflow), .def = "30", .min = 0, .max = 1000,
	 .reloadable = true,
	 .doc = "Further connections opened while requests wait for one; they "
		"are closed again once idle."},
	{.section = "pool", .name = "timeout", .type = CONFIG_T_INT,
	 .offset = OFF(pool.timeout), .def = "30", .min = 1, .max = 3600,
	 .reloadable = true,
	 .doc = "Seconds a request waits for a connection before it fails "
		"with the error timeout."},
	{.section = "pool", .name = "recycle", .type = CONFIG_T_INT,
	 .offset = OFF(pool.recycle), .def = "3600", .min = 0,
	 .max = 7 * 86400, .reloadable = true,
	 .doc = "Seconds after which a connection is closed and replaced, "
		"once it is idle; 0 means never."},
	{.section = "pool", .name = "pre_ping", .type = CONFIG_T_BOOL,
	 .offset = OFF(pool.pre_ping), .def = "yes", .reloadable = true,
	 .doc = "Check that an idle connection still works before handing it "
		"out, and replace it if it does not."},
	{.section = "pool", .name = "pre_ping_after", .type = CONFIG_T_INT,
	 .offset = OFF(pool.pre_ping_after), .def = "5", .min = 0,
	 .max = 86400, .reloadable = true,
	 .doc = "Seconds a connection must have been idle before pre_ping "
		"checks it; 0 checks it before every use. After a connection "
		"is found broken, every connection older than the failure is "
		"checked whatever its idle time."},
	{.section = "pool", .name = "overflow_idle_timeout",
	 .type = CONFIG_T_INT,
	 .offset = OFF(pool.overflow_idle_timeout), .def = "30", .min = 1,
	 .max = 86400, .reloadable = true,
	 .doc = "Seconds an overflow connection (one above size) may stay "
		"idle before it is closed."},

	/* [server] */
	{.section = "server", .name = "socket", .type = CONFIG_T_STRING,
	 .offset = OFF(server.socket), .def = CONVD_DEFAULT_SOCKET,
	 .check = check_socket,
	 .doc = "Path of the Unix socket convd listens on, unless systemd "
		"passes it one. It must be shorter than 108 bytes."},
	{.section = "server", .name = "socket_mode", .type = CONFIG_T_MODE,
	 .offset = OFF(server.socket_mode), .def = "0660", .min = 0,
	 .max = 0777,
	 .doc = "Permissions of the socket, in octal."},
	{.section = "server", .name = "socket_group", .type = CONFIG_T_STRING,
	 .offset = OFF(server.socket_group), .def = "",
	 .doc = "Group (name or numeric id) that owns the socket. Empty means "
		"the group convd runs as."},
	{.section = "server", .name = "max_clients", .type = CONFIG_T_INT,
	 .offset = OFF(server.max_clients), .def = "1024", .min = 1,
	 .max = 1000000, .reloadable = true,
	 .doc = "Client connections served at once; further ones are "
		"refused."},
	{.section = "server", .name = "max_request_bytes",
	 .type = CONFIG_T_SIZE,
	 .offset = OFF(server.max_request_bytes),
	 .def = "2M", .min = CONFIG_KIB,
	 .max = CONFIG_GIB, .reloadable = true,
	 .doc = "Largest request accepted; a client that sends a larger one "
		"is disconnected."},
	{.section = "server", .name = "max_content_bytes",
	 .type = CONFIG_T_SIZE,
	 .offset = OFF(server.max_content_bytes), .def = "1M", .min = 1,
	 .max = CONFIG_GIB, .reloadable = true,
	 .doc = "Largest message content that add_message accepts. It must be "
		"smaller than max_request_bytes."},
	{.section = "server", .name = "max_inflight", .type = CONFIG_T_INT,
	 .offset = OFF(server.max_inflight), .def = "128", .min = 1,
	 .max = 65536, .reloadable = true,
	 .doc = "Requests of one client in flight at once; while a client has "
		"that many, convd stops reading from it."},
	{.section = "server", .name = "max_output_bytes", .type = CONFIG_T_SIZE,
	 .offset = OFF(server.max_output_bytes),
	 .def = "16M", .min = CONFIG_KIB,
	 .max = 4 * CONFIG_GIB, .reloadable = true,
	 .doc = "A client whose unsent responses exceed this size is "
		"disconnected, and a single response larger than this is "
		"refused with result_too_large. It must be at least "
		"max_request_bytes."},
	{.section = "server", .name = "idle_timeout", .type = CONFIG_T_INT,
	 .offset = OFF(server.idle_timeout), .def = "0", .min = 0,
	 .max = 7 * 86400, .reloadable = true,
	 .doc = "Seconds after which a client with no request in flight is "
		"disconnected; 0 means never."},
	{.section = "server", .name = "request_timeout", .type = CONFIG_T_INT,
	 .offset = OFF(server.request_timeout), .def = "30000", .min = 0,
	 .max = 86400000, .reloadable = true,
	 .doc = "Milliseconds a database request may take from the moment it "
		"is read to its answer: its wait for a connection, its query "
		"and its commit. Past it the client gets timeout, and the query "
		"is cancelled and its connection closed (a write answered "
		"timeout may or may not have been stored). 0 means no limit. "
		"cleanup_old_conversations has no deadline."},
	{.section = "server", .name = "memory_budget", .type = CONFIG_T_SIZE,
	 .offset = OFF(server.memory_budget), .def = "256M", .min = 0,
	 .max = 64 * CONFIG_GIB, .reloadable = true,
	 .doc = "Bytes that all clients' buffered requests and unsent "
		"responses may hold together. When a new buffer would go past "
		"it, the clients holding the most (half-sent requests, unread "
		"responses) are disconnected first, until the new buffer "
		"fits. The process's memory then stays within the budget plus "
		"a margin of about 16 MiB and (1 + size + max_overflow of "
		"[pool]) times max_output_bytes: the answer being packed and "
		"one result per database connection, each read within "
		"max_output_bytes. 0 means no budget. It must be at least "
		"twice max_output_bytes."},
	{.section = "server", .name = "shutdown_timeout", .type = CONFIG_T_INT,
	 .offset = OFF(server.shutdown_timeout), .def = "10", .min = 0,
	 .max = 3600, .reloadable = true,
	 .doc = "Seconds convd waits, when it stops, for requests in flight "
		"to finish."},
	{.section = "server", .name = "allow_users", .type = CONFIG_T_STRING,
	 .offset = OFF(server.allow_users), .def = "", .reloadable = true,
	 .check = check_idlist,
	 .doc = "Comma-separated user names or numeric user ids that may use "
		"the socket. When allow_users and allow_groups are both "
		"empty, anyone who can open the socket may."},
	{.section = "server", .name = "allow_groups", .type = CONFIG_T_STRING,
	 .offset = OFF(server.allow_groups), .def = "", .reloadable = true,
	 .check = check_idlist,
	 .doc = "Comma-separated group names or numeric group ids whose "
		"members may use the socket; see allow_users."},
	{.section = "server", .name = "admin_users", .type = CONFIG_T_STRING,
	 .offset = OFF(server.admin_users), .def = "", .reloadable = true,
	 .check = check_idlist,
	 .doc = "Comma-separated user names or numeric user ids that may call "
		"the admin methods, such as cleanup_old_conversations. When "
		"admin_users and admin_groups are both empty, only root and "
		"the user convd runs as may."},
	{.section = "server", .name = "admin_groups", .type = CONFIG_T_STRING,
	 .offset = OFF(server.admin_groups), .def = "", .reloadable = true,
	 .check = check_idlist,
	 .doc = "Comma-separated group names or numeric group ids whose "
		"members may call the admin methods; see admin_users."},

	/* [retention] */
	{.section = "retention", .name = "days_to_keep", .type = CONFIG_T_INT,
	 .offset = OFF(retention.days_to_keep), .def = "0", .min = 0,
	 .max = 36500, .reloadable = true, .example = "30",
	 .doc = "Off (0) by default: convd deletes nothing. Set to N, and "
		"messages older than N days are deleted by the periodic "
		"cleanup, of every user, for good (30: everything older than "
		"a month goes, the first run shortly after start; convd logs "
		"how many its first run deletes, and `convctl cleanup "
		"--dry-run` counts them without deleting). It is also the "
		"default of cleanup_old_conversations. Messages only: thread "
		"ids and provider states stay until deleted (forget_user)."},
	{.section = "retention", .name = "interval", .type = CONFIG_T_INT,
	 .offset = OFF(retention.interval), .def = "3600", .min = 60,
	 .max = 604800, .reloadable = true,
	 .doc = "Seconds between two runs of the cleanup."},
	{.section = "retention", .name = "batch_size", .type = CONFIG_T_INT,
	 .offset = OFF(retention.batch_size), .def = "5000", .min = 1,
	 .max = 1000000, .reloadable = true,
	 .doc = "Messages deleted per transaction by the cleanup, so that it "
		"never holds locks for long."},

	/* [http] */
	{.section = "http", .name = "listen", .type = CONFIG_T_STRING,
	 .offset = OFF(http.listen), .def = "", .check = check_http_listen,
	 .doc = "Where to serve HTTP: a loopback HOST:PORT (127.0.0.1:9650, "
		"[::1]:9650, localhost:9650; port 0 picks a free one, logged) "
		"or the absolute path of a Unix socket, created with "
		"[server] socket_mode and socket_group. Empty: no HTTP."},
	{.section = "http", .name = "max_connections", .type = CONFIG_T_INT,
	 .offset = OFF(http.max_connections), .def = "16", .min = 1,
	 .max = 1024,
	 .doc = "HTTP connections open at once; while that many are open, "
		"further ones wait in the listen queue."},
	{.section = "http", .name = "timeout", .type = CONFIG_T_INT,
	 .offset = OFF(http.timeout), .def = "10", .min = 1, .max = 3600,
	 .doc = "Seconds an HTTP client has to send its request, and to read "
		"the answer, before it is disconnected."},
	{.section = "http", .name = "max_header_bytes", .type = CONFIG_T_SIZE,
	 .offset = OFF(http.max_header_bytes), .def = "8K", .min = CONFIG_KIB,
	 .max = CONFIG_MIB,
	 .doc = "Largest request line and headers of an HTTP request; "
		"a larger one is answered 400 and disconnected. Requests with "
		"a body are refused."},

	/* [log] */
	{.section = "log", .name = "level", .type = CONFIG_T_LEVEL,
	 .offset = OFF(log.level), .def = "info", .reloadable = true,
	 .doc = "Least important messages logged: error, warning, notice, "
		"info or debug."},

	/* [migrations] */
	{.section = "migrations", .name = "directory", .type = CONFIG_T_STRING,
	 .offset = OFF(migrations.directory), .def = PKGDATADIR "/migrations",
	 .reloadable = true, .check = check_nonempty,
	 .doc = "Directory of the schema revision files."},
	{.section = "migrations", .name = "allow_reset", .type = CONFIG_T_BOOL,
	 .offset = OFF(migrations.allow_reset), .def = "no",
	 .reloadable = true,
	 .doc = "Let convctl db reset drop convd's tables and all their data. "
		"Leave it off in production."},
};

const size_t config_noptions = ARRAY_LEN(config_options);

const struct config_option *config_find(const char *section, const char *name)
{
	for (size_t i = 0; i < config_noptions; i++)
		if (strcmp(config_options[i].section, section) == 0 &&
		    strcmp(config_options[i].name, name) == 0)
			return &config_options[i];
	return NULL;
}

bool config_section_known(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(config_sections); i++)
		if (strcmp(config_sections[i].name, name) == 0)
			return true;
	return false;
}

const char *config_section_doc(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(config_sections); i++)
		if (strcmp(config_sections[i].name, name) == 0)
			return config_sections[i].doc;
	return "";
}
