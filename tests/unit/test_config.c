/*
 * test_config.c - the option table, the INI parser, the generators (checked
 * against etc/convd.conf and man/convd.conf.5) and dbconf's precedence.
 *
 * Also the generator of those files:
 *   test_config --print-sample > etc/convd.conf
 *   test_config --print-man     (the block between the OPTIONS markers of
 *                                man/convd.conf.5)
 *   test_config --print-help
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "dbconf.h"
#include "tap.h"

#ifndef PKGDATADIR
#define PKGDATADIR "/usr/local/share/convd"
#endif

/* The data directory etc/convd.conf and convd.conf(5) were made with. */
#define DOC_PKGDATADIR "/usr/local/share/convd"

static char tmpdir[256];
static char cpath[320];		/* the config file the tests write */

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static void write_file(const char *path, const char *data, size_t len,
		       mode_t mode)
{
	FILE *f;

	unlink(path);
	f = fopen(path, "w");
	if (!f) {
		printf("Bail out! cannot write %s: %s\n", path,
		       strerror(errno));
		exit(1);
	}
	if (len && fwrite(data, 1, len, f) != len) {
		printf("Bail out! cannot write %s\n", path);
		exit(1);
	}
	fclose(f);
	if (chmod(path, mode) < 0) {
		printf("Bail out! chmod %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

/* Reads a whole file; NULL if it cannot. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f)
		return NULL;
	for (;;) {
		size_t r;

		if (len + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 16384;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		r = fread(buf + len, 1, 4096, f);
		len += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* What a generator prints, as one string. */
static char *capture(void (*fn)(FILE *))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fn(f);
	fclose(f);
	return buf;
}

static char *capture_effective(const struct config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	config_print_effective(f, cfg);
	fclose(f);
	return buf;
}

/* Replaces every from with to (a new string; s is freed). */
static char *replace_all(char *s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0, o = 0;
	char *out, *p;

	if (!s || strcmp(from, to) == 0)
		return s;
	for (p = s; (p = strstr(p, from)); p += fl)
		n++;
	out = malloc(strlen(s) + n * (tl > fl ? tl - fl : 0) + 1);
	if (!out) {
		free(s);
		return NULL;
	}
	for (p = s; *p;) {
		if (strncmp(p, from, fl) == 0) {
			memcpy(out + o, to, tl);
			o += tl;
			p += fl;
		} else {
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	free(s);
	return out;
}

/* Generator output as the files in the source tree have it. */
static char *doc_text(char *s)
{
	return replace_all(s, PKGDATADIR, DOC_PKGDATADIR);
}

static int load_text(struct config *cfg, const char *text, char *err,
		     size_t errlen)
{
	write_file(cpath, text, strlen(text), 0600);
	return config_load_file(cfg, cpath, err, errlen);
}

/* Loads text over the defaults and checks the exact error. */
static void expect_error(const char *text, const char *want_after_path)
{
	struct config cfg;
	char err[1024], want[1024];
	int rc;

	if (config_init(&cfg) < 0) {
		ok(0, "config_init");
		return;
	}
	rc = load_text(&cfg, text, err, sizeof(err));
	snprintf(want, sizeof(want), "%s%s", cpath, want_after_path);
	if (!ok(rc == -1, "error: %s", want_after_path))
		return config_free(&cfg);
	is_str(err, want, "message: %s", want_after_path);
	config_free(&cfg);
}

static void expect_value(const char *text, const char *section,
			 const char *name, const char *want)
{
	struct config cfg;
	char err[1024] = "", buf[8300];
	const struct config_option *o = config_find(section, name);

	if (!o || config_init(&cfg) < 0) {
		ok(0, "[%s] %s exists", section, name);
		return;
	}
	if (!ok(load_text(&cfg, text, err, sizeof(err)) == 0,
		"[%s] %s loads", section, name)) {
		printf("#   %s\n", err);
		config_free(&cfg);
		return;
	}
	config_format_value(&cfg, o, buf, sizeof(buf));
	is_str(buf, want, "[%s] %s reads back", section, name);
	config_free(&cfg);
}

/* ------------------------------------------------------------------ */
/* the table and the defaults                                          */

static void test_table(void)
{
	size_t nonreload = 0;

	is_int(config_noptions, 58, "58 options");
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		size_t dl = strlen(o->doc);

		ok(config_find(o->section, o->name) == o,
		   "[%s] %s is unique", o->section, o->name);
		ok(dl > 10 && o->doc[dl - 1] == '.' && o->doc[0] >= 'A' &&
			   o->doc[0] <= 'Z',
		   "[%s] %s doc is a sentence", o->section, o->name);
		if (o->type == CONFIG_T_INT || o->type == CONFIG_T_SIZE ||
		    o->type == CONFIG_T_MODE)
			ok(o->min <= o->max, "[%s] %s min <= max",
			   o->section, o->name);
		ok(o->offset < sizeof(struct config),
		   "[%s] %s offset", o->section, o->name);
		if (!o->reloadable)
			nonreload++;
	}
	is_int(nonreload, 26, "26 options need a restart");
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		bool want;

		if (strcmp(o->section, "database") == 0)
			want = strcmp(o->name, "statement_timeout") == 0 ||
			       strcmp(o->name, "recheck_interval") == 0;
		else if (strcmp(o->section, "server") == 0)
			want = strcmp(o->name, "socket") != 0 &&
			       strcmp(o->name, "socket_mode") != 0 &&
			       strcmp(o->name, "socket_group") != 0;
		else if (strcmp(o->section, "http") == 0)
			want = false;	/* the listener is made at start-up */
		else
			want = true;
		ok(o->reloadable == want, "[%s] %s reloadable: %s",
		   o->section, o->name, want ? "yes" : "no");
	}
	ok(config_find("database", "password")->secret, "password is secret");
	ok(!config_find("database", "password_file")->secret,
	   "password_file is not");
	ok(config_find("pool", "sise") == NULL, "unknown option not found");
	ok(config_find("nosuch", "size") == NULL, "unknown section");
}

static void test_defaults(void)
{
	struct config c;
	char err[512] = "";

	if (!ok(config_init(&c) == 0, "config_init"))
		return;
	ok(c.path == NULL, "no path");
	is_str(c.db.url, "", "db.url");
	is_str(c.db.host, "", "db.host");
	is_int(c.db.port, 0, "db.port");
	is_str(c.db.name, "", "db.name");
	is_str(c.db.user, "", "db.user");
	is_str(c.db.password, "", "db.password");
	is_str(c.db.password_file, "", "db.password_file");
	is_str(c.db.sslmode, "", "db.sslmode");
	is_str(c.db.sslrootcert, "", "db.sslrootcert");
	is_str(c.db.sslcert, "", "db.sslcert");
	is_str(c.db.sslkey, "", "db.sslkey");
	is_int(c.db.connect_timeout, 10, "db.connect_timeout");
	is_int(c.db.keepalives_idle, 600, "db.keepalives_idle");
	is_int(c.db.keepalives_interval, 30, "db.keepalives_interval");
	is_int(c.db.keepalives_count, 3, "db.keepalives_count");
	is_int(c.db.tcp_user_timeout, 0, "db.tcp_user_timeout");
	is_str(c.db.target_session_attrs, "any", "db.target_session_attrs");
	is_str(c.db.application_name, "convd", "db.application_name");
	is_int(c.db.statement_timeout, 0, "db.statement_timeout");
	is_int(c.pool.size, 20, "pool.size");
	is_int(c.pool.max_overflow, 30, "pool.max_overflow");
	is_int(c.pool.timeout, 30, "pool.timeout");
	is_int(c.pool.recycle, 3600, "pool.recycle");
	ok(c.pool.pre_ping, "pool.pre_ping");
	is_int(c.pool.overflow_idle_timeout, 30, "pool.overflow_idle_timeout");
	is_str(c.server.socket, "/run/convd/convd.sock", "server.socket");
	is_int(c.server.socket_mode, 0660, "server.socket_mode");
	is_str(c.server.socket_group, "", "server.socket_group");
	is_int(c.server.max_clients, 1024, "server.max_clients");
	is_int(c.server.max_request_bytes, 2 * 1024 * 1024,
	       "server.max_request_bytes");
	is_int(c.server.max_content_bytes, 1024 * 1024,
	       "server.max_content_bytes");
	is_int(c.server.max_inflight, 128, "server.max_inflight");
	is_int(c.server.max_output_bytes, 16 * 1024 * 1024,
	       "server.max_output_bytes");
	is_int(c.server.idle_timeout, 0, "server.idle_timeout");
	is_int(c.server.shutdown_timeout, 10, "server.shutdown_timeout");
	is_str(c.server.allow_users, "", "server.allow_users");
	is_str(c.server.allow_groups, "", "server.allow_groups");
	is_str(c.server.admin_users, "", "server.admin_users");
	is_str(c.server.admin_groups, "", "server.admin_groups");
	is_int(c.retention.days_to_keep, 0, "retention.days_to_keep (off)");
	is_int(c.retention.interval, 3600, "retention.interval");
	is_int(c.retention.batch_size, 5000, "retention.batch_size");
	is_int(c.log.level, LOG_LVL_INFO, "log.level");
	is_str(c.migrations.directory, PKGDATADIR "/migrations",
	       "migrations.directory");
	ok(!c.migrations.allow_reset, "migrations.allow_reset");
	ok(config_validate(&c, err, sizeof(err)) == 0, "defaults validate");
	config_free(&c);
	ok(c.db.url == NULL && c.path == NULL, "config_free clears");
}

/* ------------------------------------------------------------------ */
/* the parser                                                          */

static void test_parse_all(void)
{
	static const char text[] =
		"\xEF\xBB\xBF# a comment\r\n"
		"; another comment\n"
		"\n"
		"  [database]  \n"
		"url = postgresql://u@h/db\n"
		"host=db.example.com\n"
		"\tport = 6432\t\n"
		"name = \"  spaced # name  \"\n"
		"user = \"a \\\"quoted\\\" \\\\ user\"\n"
		"password = p@ss w0rd'%\n"
		"sslmode = verify-full\n"
		"connect_timeout = 3600\n"
		"keepalives_idle = 0\n"
		"tcp_user_timeout = 250\n"
		"target_session_attrs = prefer-standby\n"
		"application_name =\n"
		"statement_timeout = 5000\n"
		"[pool]\n"
		"size = 1000\n"
		"max_overflow = 0\n"
		"pre_ping = Off\n"
		"[ server ]\n"
		"socket = /tmp/x.sock\n"
		"socket_mode = 600\n"
		"max_request_bytes = 1g\n"
		"max_content_bytes = 512K\n"
		"max_output_bytes = 3000\n"
		"allow_users =  alice , 1001,bob \n"
		"admin_groups = wheel\n"
		"[retention]\n"
		"days_to_keep = 0\n"
		"[log]\n"
		"level = debug\n"
		"[migrations]\n"
		"allow_reset = TRUE\n"
		"[pool]\n"
		"timeout = 1\n";
	struct config c;
	char err[512] = "";

	if (!ok(config_init(&c) == 0, "config_init"))
		return;
	if (!ok(load_text(&c, text, err, sizeof(err)) == 0,
		"every type loads")) {
		printf("#   %s\n", err);
		config_free(&c);
		return;
	}
	is_str(c.path, cpath, "path recorded");
	is_str(c.db.url, "postgresql://u@h/db", "url");
	is_str(c.db.host, "db.example.com", "no blanks around =");
	is_int(c.db.port, 6432, "tabs trimmed");
	is_str(c.db.name, "  spaced # name  ", "quoted keeps blanks and #");
	is_str(c.db.user, "a \"quoted\" \\ user", "escapes");
	is_str(c.db.password, "p@ss w0rd'%", "bare value with specials");
	is_str(c.db.sslmode, "verify-full", "sslmode");
	is_int(c.db.connect_timeout, 3600, "max int");
	is_int(c.db.keepalives_idle, 0, "zero");
	is_int(c.db.tcp_user_timeout, 250, "tcp_user_timeout");
	is_str(c.db.target_session_attrs, "prefer-standby", "session attrs");
	is_str(c.db.application_name, "", "empty value");
	is_int(c.db.statement_timeout, 5000, "statement_timeout");
	is_int(c.pool.size, 1000, "pool.size");
	is_int(c.pool.max_overflow, 0, "pool.max_overflow");
	ok(!c.pool.pre_ping, "bool Off");
	is_int(c.pool.timeout, 1, "section given twice");
	is_str(c.server.socket, "/tmp/x.sock", "socket");
	is_int(c.server.socket_mode, 0600, "mode without leading 0");
	is_int(c.server.max_request_bytes, 1024LL * 1024 * 1024, "1g");
	is_int(c.server.max_content_bytes, 512 * 1024, "512K");
	is_int(c.server.max_output_bytes, 3000, "plain bytes");
	is_str(c.server.allow_users, "alice,1001,bob", "list normalised");
	is_str(c.server.admin_groups, "wheel", "admin_groups");
	is_int(c.retention.days_to_keep, 0, "days_to_keep");
	is_int(c.log.level, LOG_LVL_DEBUG, "level");
	ok(c.migrations.allow_reset, "bool TRUE");
	is_int(c.retention.interval, 3600, "untouched option keeps default");
	config_free(&c);
}

static void test_values(void)
{
	static const struct {
		const char *text, *section, *name, *want;
	} cases[] = {
		{"[server]\nmax_request_bytes = 1024\n", "server",
		 "max_request_bytes", "1K"},
		{"[server]\nmax_request_bytes = 1025\n", "server",
		 "max_request_bytes", "1025"},
		{"[server]\nmax_request_bytes = 3m\n", "server",
		 "max_request_bytes", "3M"},
		{"[server]\nmax_output_bytes = 4G\n", "server",
		 "max_output_bytes", "4G"},
		{"[server]\nmax_content_bytes = 1\n", "server",
		 "max_content_bytes", "1"},
		{"[server]\nsocket_mode = 0\n", "server", "socket_mode",
		 "0000"},
		{"[server]\nsocket_mode = 0777\n", "server", "socket_mode",
		 "0777"},
		{"[server]\nsocket_mode = 0007\n", "server", "socket_mode",
		 "0007"},
		{"[pool]\npre_ping = no\n", "pool", "pre_ping", "no"},
		{"[pool]\npre_ping = 1\n", "pool", "pre_ping", "yes"},
		{"[pool]\npre_ping = on\n", "pool", "pre_ping", "yes"},
		{"[pool]\npre_ping = false\n", "pool", "pre_ping", "no"},
		{"[pool]\npre_ping = 0\n", "pool", "pre_ping", "no"},
		{"[log]\nlevel = error\n", "log", "level", "error"},
		{"[log]\nlevel = warning\n", "log", "level", "warning"},
		{"[log]\nlevel = notice\n", "log", "level", "notice"},
		{"[database]\nport = 65535\n", "database", "port", "65535"},
		{"[database]\nhost = \"\"\n", "database", "host", "\"\""},
		{"[database]\nhost = \" x\"\n", "database", "host",
		 "\" x\""},
		{"[database]\nhost = \"\\\"x\"\n", "database", "host",
		 "\"\\\"x\""},
		{"[database]\nhost = #x\n", "database", "host", "#x"},
		{"[database]\nhost = a \"b\" c\n", "database", "host",
		 "a \"b\" c"},
		{"[database]\npassword = secret\n", "database", "password",
		 "********"},
		{"[database]\npassword =\n", "database", "password", "\"\""},
		{"[database]\nsslmode = disable\n", "database", "sslmode",
		 "disable"},
		{"[database]\ntarget_session_attrs = read-only\n", "database",
		 "target_session_attrs", "read-only"},
		{"[server]\nadmin_users = 0\n", "server", "admin_users", "0"},
		{"[retention]\ninterval = 60\n", "retention", "interval",
		 "60"},
		{"[migrations]\ndirectory = /srv/m\n", "migrations",
		 "directory", "/srv/m"},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		expect_value(cases[i].text, cases[i].section, cases[i].name,
			     cases[i].want);
}

static void test_errors(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"[foo]\n", ":1: unknown section [foo]"},
		{"[pool]\nsise = 3\n", ":2: [pool] sise: unknown option"},
		{"[pool]\nsize = 0\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[pool]\nsize = 1001\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[pool]\nsize = 12abc\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[pool]\nsize = 1 0\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[pool]\nsize = -1\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[pool]\nsize = +5\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[pool]\nsize = 0x10\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[pool]\nsize =\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[pool]\nsize = 99999999999999999999\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[pool]\nsize = 9223372036854775808\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[database]\nport = 65536\n",
		 ":2: [database] port: must be an integer from 0 to 65535"},
		{"size = 1\n", ":1: key outside of any section"},
		{"# c\n\nsize\n", ":3: expected key = value"},
		{"[pool]\nsize\n", ":2: expected key = value"},
		{"[pool]\n= 3\n", ":2: expected key = value"},
		{"[pool]\nsize = 1\n\nsize = 2\n",
		 ":4: [pool] size: duplicate option (first set on line 2)"},
		{"[pool]\nsize = 1\n[server]\n[pool]\nsize = 1\n",
		 ":5: [pool] size: duplicate option (first set on line 2)"},
		{"[pool\n", ":1: expected [section]"},
		{"[pool] # c\n", ":1: expected [section]"},
		{"[]\n", ":1: unknown section []"},
		{"[Pool]\n", ":1: unknown section [Pool]"},
		{"[pool]\nSize = 1\n", ":2: [pool] Size: unknown option"},
		{"[pool]\nsocket = /x\n", ":2: [pool] socket: unknown option"},
		{"[pool]\npre_ping = maybe\n",
		 ":2: [pool] pre_ping: must be yes or no"},
		{"[pool]\npre_ping =\n", ":2: [pool] pre_ping: must be yes or no"},
		{"[log]\nlevel = loud\n",
		 ":2: [log] level: must be one of error, warning, notice, "
		 "info or debug"},
		{"[log]\nlevel = INFO\n",
		 ":2: [log] level: must be one of error, warning, notice, "
		 "info or debug"},
		{"[server]\nmax_request_bytes = 512\n",
		 ":2: [server] max_request_bytes: must be a size from 1K to "
		 "1G (bytes, or with a K, M or G suffix)"},
		{"[server]\nmax_request_bytes = 2X\n",
		 ":2: [server] max_request_bytes: must be a size from 1K to "
		 "1G (bytes, or with a K, M or G suffix)"},
		{"[server]\nmax_request_bytes = 1KB\n",
		 ":2: [server] max_request_bytes: must be a size from 1K to "
		 "1G (bytes, or with a K, M or G suffix)"},
		{"[server]\nmax_request_bytes = 2 M\n",
		 ":2: [server] max_request_bytes: must be a size from 1K to "
		 "1G (bytes, or with a K, M or G suffix)"},
		{"[server]\nmax_request_bytes = M\n",
		 ":2: [server] max_request_bytes: must be a size from 1K to "
		 "1G (bytes, or with a K, M or G suffix)"},
		{"[server]\nmax_request_bytes = 9999999999G\n",
		 ":2: [server] max_request_bytes: must be a size from 1K to "
		 "1G (bytes, or with a K, M or G suffix)"},
		{"[server]\nmax_content_bytes = 0\n",
		 ":2: [server] max_content_bytes: must be a size from 1 to "
		 "1G (bytes, or with a K, M or G suffix)"},
		{"[server]\nsocket_mode = 0778\n",
		 ":2: [server] socket_mode: must be an octal mode from 0000 "
		 "to 0777"},
		{"[server]\nsocket_mode = 1777\n",
		 ":2: [server] socket_mode: must be an octal mode from 0000 "
		 "to 0777"},
		{"[server]\nsocket_mode = 00660\n",
		 ":2: [server] socket_mode: must be an octal mode from 0000 "
		 "to 0777"},
		{"[server]\nsocket_mode = rw\n",
		 ":2: [server] socket_mode: must be an octal mode from 0000 "
		 "to 0777"},
		{"[server]\nsocket =\n", ":2: [server] socket: must not be empty"},
		{"[server]\nsocket = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		 "aaaa\n",
		 ":2: [server] socket: must be shorter than 108 bytes"},
		{"[server]\nallow_users = a,,b\n",
		 ":2: [server] allow_users: must be a comma-separated list of "
		 "names or numeric ids (empty element)"},
		{"[server]\nallow_groups = a,\n",
		 ":2: [server] allow_groups: must be a comma-separated list of "
		 "names or numeric ids (empty element)"},
		{"[server]\nadmin_users = al ice\n",
		 ":2: [server] admin_users: must be a comma-separated list of "
		 "names or numeric ids (blank inside a name)"},
		{"[database]\nsslmode = on\n",
		 ":2: [database] sslmode: must be one of disable, allow, "
		 "prefer, require, verify-ca or verify-full"},
		{"[database]\ntarget_session_attrs = master\n",
		 ":2: [database] target_session_attrs: must be one of any, "
		 "read-write, read-only, primary, standby or prefer-standby"},
		{"[migrations]\ndirectory = \"\"\n",
		 ":2: [migrations] directory: must not be empty"},
		{"[database]\nhost = \"abc\n",
		 ":2: [database] host: missing closing quote"},
		{"[database]\nhost = \"abc\\\"\n",
		 ":2: [database] host: missing closing quote"},
		{"[database]\nhost = \"a\"b\n",
		 ":2: [database] host: text after the closing quote"},
		{"[database]\nhost = \"a\" # c\n",
		 ":2: [database] host: text after the closing quote"},
		{"[database]\nhost = \"a\\nb\"\n",
		 ":2: [database] host: only \\\" and \\\\ may follow a "
		 "backslash in a quoted value"},
		{"[pool]\nsize = \"5x\"\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[pool]\nsize = \"a\x01\"\n",
		 ":2: [pool] size: must be an integer from 1 to 1000"},
		{"[po\x01ol]\n", ":1: unknown section [po?ol]"},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		expect_error(cases[i].text, cases[i].want);
	expect_value("[pool]\nsize = \"7\"\n", "pool", "size", "7");
}

static void test_config_set(void)
{
	struct config c;
	char why[256] = "";

	if (config_init(&c) < 0) {
		ok(0, "config_init");
		return;
	}
	ok(config_set(&c, config_find("pool", "size"), "12", why,
		      sizeof(why)) == 0 && c.pool.size == 12,
	   "config_set int");
	ok(config_set(&c, config_find("pool", "size"), "1001", why,
		      sizeof(why)) == -1 && c.pool.size == 12,
	   "config_set out of range leaves the value");
	is_str(why, "must be an integer from 1 to 1000", "config_set reason");
	ok(config_set(&c, config_find("database", "sslmode"), "nope", why,
		      sizeof(why)) == -1 && strcmp(c.db.sslmode, "") == 0,
	   "config_set checked string leaves the value");
	ok(config_set(&c, config_find("server", "admin_users"), "a , b", why,
		      sizeof(why)) == 0 &&
		   strcmp(c.server.admin_users, "a,b") == 0,
	   "config_set normalises lists");
	config_free(&c);
}

static void test_file_limits(void)
{
	struct config c;
	char err[512], want[512], *big;
	size_t n;
	int rc;

	if (config_init(&c) < 0) {
		ok(0, "config_init");
		return;
	}

	/* A line of exactly 4096 bytes is fine, 4097 is not. */
	big = malloc(2 * 5000 + 64);
	if (!big) {
		ok(0, "malloc");
		config_free(&c);
		return;
	}
	n = (size_t)sprintf(big, "[database]\nhost = ");
	memset(big + n, 'h', 4096 - 7);
	n += 4096 - 7;
	n += (size_t)sprintf(big + n, "\n");
	ok(load_text(&c, big, err, sizeof(err)) == 0, "4096-byte line");
	is_int(strlen(c.db.host), 4096 - 7, "long value kept whole");
	n = (size_t)sprintf(big, "[database]\nhost = ");
	memset(big + n, 'h', 4096 - 6);
	n += 4096 - 6;
	sprintf(big + n, "\n");
	rc = load_text(&c, big, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:2: line longer than 4096 bytes",
		 cpath);
	ok(rc == -1, "4097-byte line refused");
	is_str(err, want, "line too long message");
	free(big);

	/* NUL byte. */
	write_file(cpath, "[pool]\nsize = 1\0 2\n", 19, 0600);
	rc = config_load_file(&c, cpath, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", cpath);
	ok(rc == -1, "NUL refused");
	is_str(err, want, "NUL message");

	/* Last line without a newline. */
	ok(load_text(&c, "[pool]\nsize = 9", err, sizeof(err)) == 0 &&
		   c.pool.size == 9,
	   "last line without newline");

	/* File size. */
	big = malloc(1024 * 1024 + 2);
	if (big) {
		memset(big, '#', 1024 * 1024 + 1);
		big[0] = '\n';
		for (size_t i = 1000; i < 1024 * 1024; i += 1000)
			big[i] = '\n';
		big[1024 * 1024 + 1] = '\0';
		rc = load_text(&c, big, err, sizeof(err));
		snprintf(want, sizeof(want), "%s: larger than 1048576 bytes",
			 cpath);
		ok(rc == -1, "file over 1 MiB refused");
		is_str(err, want, "file too large message");
		big[1024 * 1024] = '\0';
		ok(load_text(&c, big, err, sizeof(err)) == 0,
		   "file of exactly 1 MiB accepted");
		free(big);
	}

	/* Missing file, directory. */
	snprintf(want, sizeof(want), "%s/nonexistent.conf", tmpdir);
	rc = config_load_file(&c, want, err, sizeof(err));
	ok(rc == -1 && strstr(err, "nonexistent.conf: No such file") == err +
	   strlen(tmpdir) + 1, "missing file: %s", err);
	rc = config_load_file(&c, tmpdir, err, sizeof(err));
	ok(rc == -1 && strncmp(err, tmpdir, strlen(tmpdir)) == 0,
	   "directory refused: %s", err);
	config_free(&c);
}

static void test_atomic_and_reload(void)
{
	struct config a, b;
	char err[512];
	int n;

	if (config_init(&a) < 0 || config_init(&b) < 0) {
		ok(0, "config_init");
		return;
	}
	ok(load_text(&a, "[database]\nhost = first\n[pool]\nsize = 5\n", err,
		     sizeof(err)) == 0,
	   "first file");
	ok(load_text(&a, "[pool]\nsize = 6\n[database]\nhost = second\n"
			 "[server]\nsize = 1\n",
		     err, sizeof(err)) == -1,
	   "second file fails at line 5");
	is_int(a.pool.size, 5, "failed load changes nothing (int)");
	is_str(a.db.host, "first", "failed load changes nothing (string)");
	ok(load_text(&a, "[database]\nhost = third\n", err, sizeof(err)) == 0,
	   "a later file may set a key again");
	is_str(a.db.host, "third", "string replaced");
	is_int(a.pool.size, 5, "values of the earlier file stay");

	/* Reload diff. */
	is_int(config_nonreloadable_changes(&b, &b, NULL, NULL), 0,
	       "same config: no change");
	ok(load_text(&b, "[database]\nhost = third\n[pool]\nsize = 5\n", err,
		     sizeof(err)) == 0,
	   "b like a");
	is_int(config_nonreloadable_changes(&a, &b, NULL, NULL), 0,
	       "equal configs: no change");
	ok(load_text(&b,
		     "[database]\nhost = other\npassword = x\n"
		     "statement_timeout = 10\n[pool]\nsize = 7\n"
		     "[server]\nsocket_mode = 0600\nmax_clients = 3\n"
		     "[log]\nlevel = debug\n",
		     err, sizeof(err)) == 0,
	   "b changed");
	n = config_nonreloadable_changes(&a, &b, NULL, NULL);
	is_int(n, 3, "3 changes need a restart (host, password, socket_mode)");
	config_free(&a);
	config_free(&b);
}

struct change_acc {
	char list[256];
};

static void collect_change(const struct config_option *opt, void *arg)
{
	struct change_acc *acc = arg;
	size_t n = strlen(acc->list);

	snprintf(acc->list + n, sizeof(acc->list) - n, "%s[%s] %s",
		 n ? ", " : "", opt->section, opt->name);
}

static void test_reload_callback(void)
{
	struct config a, b;
	struct change_acc acc = {""};
	char err[512];

	if (config_init(&a) < 0 || config_init(&b) < 0) {
		ok(0, "config_init");
		return;
	}
	ok(load_text(&b,
		     "[database]\nhost = other\npassword = x\n"
		     "statement_timeout = 10\n[pool]\nsize = 7\n"
		     "[server]\nsocket_mode = 0600\nmax_clients = 3\n"
		     "allow_users = bob\n[log]\nlevel = debug\n",
		     err, sizeof(err)) == 0,
	   "changed config");
	is_int(config_nonreloadable_changes(&a, &b, collect_change, &acc), 3,
	       "callback count");
	is_str(acc.list,
	       "[database] host, [database] password, [server] socket_mode",
	       "the options that need a restart");
	config_free(&a);
	config_free(&b);
}

static void test_validate(void)
{
	struct config c;
	char err[512], want[512];

	if (config_init(&c) < 0) {
		ok(0, "config_init");
		return;
	}
	c.server.max_content_bytes = c.server.max_request_bytes;
	ok(config_validate(&c, err, sizeof(err)) == -1, "content == request");
	is_str(err, "configuration: [server] max_content_bytes (2M) must be "
		    "less than max_request_bytes (2M)", "message");
	ok(load_text(&c, "[server]\nmax_request_bytes = 64K\n", err,
		     sizeof(err)) == 0,
	   "file loads (cross checks come later)");
	c.server.max_content_bytes = 1024 * 1024;
	ok(config_validate(&c, err, sizeof(err)) == -1, "content > request");
	snprintf(want, sizeof(want),
		 "%s: [server] max_content_bytes (1M) must be less than "
		 "max_request_bytes (64K)", cpath);
	is_str(err, want, "message names the file");
	c.server.max_content_bytes = 64 * 1024 - 1;
	ok(config_validate(&c, err, sizeof(err)) == 0, "content < request");

	c.server.max_output_bytes = 32 * 1024;
	ok(config_validate(&c, err, sizeof(err)) == -1, "output < request");
	snprintf(want, sizeof(want),
		 "%s: [server] max_output_bytes (32K) must be at least "
		 "max_request_bytes (64K)", cpath);
	is_str(err, want, "output message");
	c.server.max_output_bytes = 64 * 1024;
	ok(config_validate(&c, err, sizeof(err)) == 0, "output == request");

	c.pool.size = 0;
	ok(config_validate(&c, err, sizeof(err)) == -1, "pool.size 0");
	snprintf(want, sizeof(want),
		 "%s: [pool] size: must be an integer from 1 to 1000", cpath);
	is_str(err, want, "pool.size message");
	c.pool.size = 1;

	free(c.server.socket);
	c.server.socket = strdup("/run/convd/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				 "aaaaaaaaaaaaaaaaaaaaaaaa.sock");
	ok(c.server.socket && strlen(c.server.socket) >= 108,
	   "long socket path");
	ok(config_validate(&c, err, sizeof(err)) == -1, "socket too long");
	snprintf(want, sizeof(want),
		 "%s: [server] socket: must be shorter than 108 bytes", cpath);
	is_str(err, want, "socket message");
	free(c.server.socket);
	c.server.socket = strdup("/tmp/ok.sock");

	free(c.db.sslmode);
	c.db.sslmode = strdup("bogus");
	ok(config_validate(&c, err, sizeof(err)) == -1, "bad sslmode");
	free(c.db.sslmode);
	c.db.sslmode = strdup("require");

	free(c.db.password);
	c.db.password = strdup("pw");
	free(c.db.password_file);
	c.db.password_file = strdup("/etc/pw");
	ok(config_validate(&c, err, sizeof(err)) == -1, "both passwords");
	snprintf(want, sizeof(want),
		 "%s: [database] password and password_file are both set; "
		 "keep one", cpath);
	is_str(err, want, "both passwords message");
	ok(strstr(err, ": pw") == NULL, "message without the password");
	free(c.db.password);
	c.db.password = strdup("");
	ok(config_validate(&c, err, sizeof(err)) == 0, "valid again: %s",
	   err);
	config_free(&c);
}

static void test_format_and_effective(void)
{
	struct config c;
	char err[512], buf[64], *eff;

	if (config_init(&c) < 0) {
		ok(0, "config_init");
		return;
	}
	config_format_value(&c, config_find("server", "max_request_bytes"),
			    buf, sizeof(buf));
	is_str(buf, "2M", "size formatted");
	config_format_value(&c, config_find("server", "socket_mode"), buf,
			    sizeof(buf));
	is_str(buf, "0660", "mode formatted");
	config_format_value(&c, config_find("pool", "pre_ping"), buf,
			    sizeof(buf));
	is_str(buf, "yes", "bool formatted");
	config_format_value(&c, config_find("log", "level"), buf,
			    sizeof(buf));
	is_str(buf, "info", "level formatted");
	config_format_value(&c, config_find("database", "password"), buf,
			    sizeof(buf));
	is_str(buf, "\"\"", "empty secret shown as empty");
	config_format_value(&c, config_find("server", "socket"), buf, 8);
	is_str(buf, "/run/co", "truncated to the buffer");

	eff = capture_effective(&c);
	ok(eff && strstr(eff, "# effective configuration (defaults, no "
			      "file)\n"),
	   "effective: no file");
	free(eff);

	ok(load_text(&c,
		     "[database]\npassword = \"hunter2 @/'\"\n"
		     "url = postgresql://u:hunter2@h/db\n",
		     err, sizeof(err)) == 0,
	   "password set");
	config_format_value(&c, config_find("database", "password"), buf,
			    sizeof(buf));
	is_str(buf, "********", "secret masked");
	eff = capture_effective(&c);
	ok(eff != NULL, "effective printed");
	if (eff) {
		ok(strstr(eff, "\npassword = ********\n") != NULL,
		   "effective masks the password");
		ok(strstr(eff, "hunter2 @") == NULL,
		   "effective never shows the password");
		ok(strstr(eff, "\nmax_request_bytes = 2M\n") != NULL,
		   "effective shows sizes");
		ok(strstr(eff, "\n[server]\n") != NULL, "sections");
		for (size_t i = 0; i < config_noptions; i++) {
			char needle[128];

			snprintf(needle, sizeof(needle), "\n%s = ",
				 config_options[i].name);
			ok(strstr(eff, needle) != NULL,
			   "effective lists [%s] %s",
			   config_options[i].section,
			   config_options[i].name);
		}
	}
	free(eff);
	config_free(&c);
}

/* ------------------------------------------------------------------ */
/* generated documents                                                 */

/* CONVD_SRCDIR (set by make check), else the first of ., .., ../.. that
 * holds etc/convd.conf (run by hand in the source tree). */
static const char *srcdir(void)
{
	static const char *const guesses[] = {".", "..", "../.."};
	const char *s = getenv("CONVD_SRCDIR");

	if (s && s[0])
		return s;
	for (size_t i = 0; i < ARRAY_LEN(guesses); i++) {
		char p[64];

		snprintf(p, sizeof(p), "%s/etc/convd.conf", guesses[i]);
		if (access(p, R_OK) == 0)
			return guesses[i];
	}
	return ".";
}

static void test_sample(void)
{
	char path[512], err[512], a[8300], b[8300];
	char *gen = doc_text(capture(config_print_sample)), *file;
	struct config def, parsed;
	bool same = true;

	snprintf(path, sizeof(path), "%s/etc/convd.conf", srcdir());
	file = slurp(path);
	if (!ok(file != NULL, "read %s", path)) {
		free(gen);
		return;
	}
	ok(gen && strcmp(gen, file) == 0,
	   "etc/convd.conf is config_print_sample's output "
	   "(regenerate: test_config --print-sample > etc/convd.conf)");
	free(file);
	free(gen);

	/* Parsing the sample (as built) gives the defaults. */
	gen = capture(config_print_sample);
	if (!gen || config_init(&def) < 0) {
		ok(0, "sample");
		free(gen);
		return;
	}
	if (config_init(&parsed) < 0) {
		config_free(&def);
		free(gen);
		return;
	}
	/* Uncomment every option: the defaults, now set explicitly. */
	for (char *p = gen; (p = strstr(p, "\n#")); p++)
		if (p[2] >= 'a' && p[2] <= 'z')
			p[1] = ' ';
	if (ok(load_text(&parsed, gen, err, sizeof(err)) == 0,
	       "the sample with every option uncommented parses")) {
		for (size_t i = 0; i < config_noptions; i++) {
			if (config_options[i].example) {
				/* shown as an example, not the default */
				if (config_set(&def, &config_options[i],
					       config_options[i].example, err,
					       sizeof(err)) < 0)
					same = false;
			}
			config_format_value(&def, &config_options[i], a,
					    sizeof(a));
			config_format_value(&parsed, &config_options[i], b,
					    sizeof(b));
			if (strcmp(a, b) != 0) {
				same = false;
				printf("#   [%s] %s: %s != %s\n",
				       config_options[i].section,
				       config_options[i].name, a, b);
			}
		}
		ok(same, "and gives the defaults");
	} else {
		printf("#   %s\n", err);
	}
	config_free(&def);
	config_free(&parsed);
	free(gen);
}

static void test_man(void)
{
	static const char begin[] = ".\\\" BEGIN OPTIONS\n";
	static const char end[] = ".\\\" END OPTIONS\n";
	char path[512];
	char *gen = doc_text(capture(config_print_man)), *file, *b, *e;

	snprintf(path, sizeof(path), "%s/man/convd.conf.5", srcdir());
	file = slurp(path);
	if (!ok(file != NULL, "read %s", path)) {
		free(gen);
		return;
	}
	b = strstr(file, begin);
	e = b ? strstr(b, end) : NULL;
	if (ok(b && e, "man page has the OPTIONS markers")) {
		b += strlen(begin);
		*e = '\0';
		ok(gen && strcmp(b, gen) == 0,
		   "the man page's option list is config_print_man's output");
	}
	for (size_t i = 0; i < config_noptions; i++) {
		char needle[128];

		snprintf(needle, sizeof(needle), ".It Cm %s Ns = Ns ",
			 config_options[i].name);
		ok(gen && strstr(gen, needle) != NULL, "man lists [%s] %s",
		   config_options[i].section, config_options[i].name);
	}
	ok(gen && strstr(gen, ".Ss \\&[database]\\&\n.") == NULL &&
		   strstr(gen, ".Ss \\&[database]\\&\n") != NULL,
	   "section heading with its description");
	ok(gen && strstr(gen, "\nReloadable: no.\n") &&
		   strstr(gen, "\nReloadable: yes.\n"),
	   "reloadable lines");
	free(file);
	free(gen);
}

static void test_help(void)
{
	char *help = capture(config_print_help);

	if (!ok(help != NULL, "help printed"))
		return;
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		char needle[256];

		snprintf(needle, sizeof(needle), "  [%s] %s = %s", o->section,
			 o->name, o->def[0] ? o->def : "\"\"");
		ok(strstr(help, needle) != NULL, "help lists %s", needle);
	}
	{
		bool narrow = true;

		for (char *p = help, *nl; *p; p = nl + 1) {
			nl = strchr(p, '\n');
			if (!nl)
				break;
			/* Only a long default may push a line past 79. */
			if (nl - p > 79 && strncmp(p, "  [", 3) != 0 &&
			    !memchr(p, '/', (size_t)(nl - p)))
				narrow = false;
		}
		ok(narrow, "help wrapped to 79 columns");
	}
	free(help);
}

/* ------------------------------------------------------------------ */
/* dbconf                                                              */

static const char *fake_vars[16][2];

static void env_set(const char *name, const char *value)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(fake_vars) - 1 && fake_vars[i][0]; i++) {
		if (strcmp(fake_vars[i][0], name) == 0) {
			fake_vars[i][1] = value;
			return;
		}
	}
	fake_vars[i][0] = name;
	fake_vars[i][1] = value;
}

static void env_clear(void)
{
	memset(fake_vars, 0, sizeof(fake_vars));
}

static const char *fake_env(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(fake_vars) && fake_vars[i][0]; i++)
		if (strcmp(fake_vars[i][0], name) == 0)
			return fake_vars[i][1];
	return NULL;
}

static int count_key(const struct dbconf *dc, const char *key)
{
	int n = 0;

	for (int i = 0; i < dc->n; i++)
		n += strcmp(dc->keys[i], key) == 0;
	return n;
}

/* Index of the first (nth = 0) or later entry for key, -1 if none. */
static int find_key(const struct dbconf *dc, const char *key, int nth)
{
	for (int i = 0; i < dc->n; i++)
		if (strcmp(dc->keys[i], key) == 0 && nth-- == 0)
			return i;
	return -1;
}

/* The value libpq ends up with for a plain keyword: the last one. */
static const char *last_val(const struct dbconf *dc, const char *key)
{
	for (int i = dc->n - 1; i >= 0; i--)
		if (strcmp(dc->keys[i], key) == 0)
			return dc->vals[i];
	return NULL;
}

static void set_str(char **field, const char *v)
{
	free(*field);
	*field = strdup(v);
	if (!*field) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
}

static int build(const struct config *c, struct dbconf *dc, char *err,
		 size_t errlen)
{
	int rc = dbconf_build(c, fake_env, dc, err, errlen);

	if (rc == 0 && (dc->keys[dc->n] != NULL || dc->vals[dc->n] != NULL))
		return -2;
	return rc;
}

static void test_dbconf_file_only(void)
{
	static const char pw[] = "p@ss w/'rd%20\\x";
	struct config c;
	struct dbconf dc;
	char err[512];

	env_clear();
	if (config_init(&c) < 0)
		return;

	/* Nothing set: libpq defaults, sslmode left to libpq. */
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "empty config builds")) {
		is_str(dc.describe, "(libpq defaults)", "describe defaults");
		is_int(count_key(&dc, "host"), 0, "no host");
		is_int(count_key(&dc, "sslmode"), 0, "no sslmode without host");
		is_str(last_val(&dc, "keepalives"), "1", "keepalives on");
		is_str(last_val(&dc, "keepalives_idle"), "600", "idle");
		is_str(last_val(&dc, "keepalives_interval"), "30", "interval");
		is_str(last_val(&dc, "keepalives_count"), "3", "count");
		is_str(last_val(&dc, "connect_timeout"), "10", "timeout");
		is_int(dc.connect_timeout, 10, "connect_timeout copied");
		is_str(last_val(&dc, "target_session_attrs"), "any", "tsa");
		is_str(last_val(&dc, "application_name"), "convd", "app");
		is_int(count_key(&dc, "tcp_user_timeout"), 0,
		       "tcp_user_timeout 0 not passed");
		is_int(count_key(&dc, "password"), 0, "no password");
		dbconf_free(&dc);
		is_int(dc.n, 0, "dbconf_free resets");
	}

	set_str(&c.db.host, "db.example.com");
	c.db.port = 5433;
	set_str(&c.db.name, "convd");
	set_str(&c.db.user, "bot");
	set_str(&c.db.password, pw);
	c.db.tcp_user_timeout = 9000;
	c.db.keepalives_idle = 0;
	set_str(&c.db.sslrootcert, "/etc/ssl/ca.pem");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "file values build")) {
		is_str(last_val(&dc, "host"), "db.example.com", "host");
		is_str(last_val(&dc, "port"), "5433", "port");
		is_str(last_val(&dc, "dbname"), "convd", "dbname");
		is_str(last_val(&dc, "user"), "bot", "user");
		is_str(last_val(&dc, "password"), pw,
		       "password with @ / ' space %% \\ unchanged");
		is_int(count_key(&dc, "host") + count_key(&dc, "dbname"), 2,
		       "each once");
		is_str(last_val(&dc, "sslmode"), "require",
		       "TCP host: sslmode require");
		is_str(last_val(&dc, "tcp_user_timeout"), "9000",
		       "tcp_user_timeout passed");
		is_int(count_key(&dc, "keepalives_idle"), 0,
		       "keepalives_idle 0 = system default, not passed");
		is_str(last_val(&dc, "sslrootcert"), "/etc/ssl/ca.pem",
		       "sslrootcert");
		is_str(dc.describe,
		       "host=db.example.com port=5433 dbname=convd user=bot "
		       "sslmode=require",
		       "describe");
		ok(dc.vals[find_key(&dc, "password", 0)] != c.db.password,
		   "values are copies");
		dbconf_free(&dc);
	}

	set_str(&c.db.host, "/var/run/postgresql");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "Unix socket")) {
		is_int(count_key(&dc, "sslmode"), 0,
		       "Unix socket: sslmode left to libpq");
		dbconf_free(&dc);
	}
	set_str(&c.db.host, "/tmp,10.0.0.7");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "host list")) {
		is_str(last_val(&dc, "sslmode"), "require",
		       "a TCP host in the list: require");
		dbconf_free(&dc);
	}
	set_str(&c.db.sslmode, "verify-full");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "sslmode set")) {
		is_str(last_val(&dc, "sslmode"), "verify-full", "explicit");
		is_int(count_key(&dc, "sslmode"), 1, "once");
		dbconf_free(&dc);
	}
	set_str(&c.db.sslmode, "");
	set_str(&c.db.host, "my host");
	set_str(&c.db.user, "o'neil");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "quoting")) {
		is_str(dc.describe,
		       "host='my host' port=5433 dbname=convd "
		       "user='o\\'neil' sslmode=require",
		       "describe quotes like libpq");
		dbconf_free(&dc);
	}

	set_str(&c.db.name, "host=evil");
	ok(build(&c, &dc, err, sizeof(err)) == -1, "name=conninfo refused");
	is_str(err, "[database] name looks like a connection string; put it "
		    "in url", "message");
	config_free(&c);
}

static void test_dbconf_env(void)
{
	struct config c;
	struct dbconf dc;
	char err[512];
	int u, h;

	env_clear();
	if (config_init(&c) < 0)
		return;
	set_str(&c.db.host, "filehost");
	c.db.port = 1111;
	set_str(&c.db.name, "filedb");
	set_str(&c.db.user, "fileuser");
	set_str(&c.db.password, "filepw");

	/* DB_* beat the file. */
	env_set("DB_HOST", "/run/pg");
	env_set("DB_PORT", "2222");
	env_set("DB_NAME", "envdb");
	env_set("DB_USER", "envuser");
	env_set("DB_PASSWORD", "env pw@/'%");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "DB_* build")) {
		is_str(last_val(&dc, "host"), "/run/pg", "DB_HOST wins");
		is_str(last_val(&dc, "port"), "2222", "DB_PORT wins");
		is_str(last_val(&dc, "dbname"), "envdb", "DB_NAME wins");
		is_str(last_val(&dc, "user"), "envuser", "DB_USER wins");
		is_str(last_val(&dc, "password"), "env pw@/'%",
		       "DB_PASSWORD wins, unchanged");
		is_int(count_key(&dc, "host"), 1, "one host entry");
		is_int(count_key(&dc, "sslmode"), 0,
		       "sslmode follows the effective host (Unix)");
		is_str(dc.describe,
		       "host=/run/pg port=2222 dbname=envdb user=envuser",
		       "describe");
		dbconf_free(&dc);
	}
	env_set("DB_PORT", "");
	env_set("DB_HOST", "");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "empty = unset")) {
		is_str(last_val(&dc, "port"), "1111", "empty DB_PORT ignored");
		is_str(last_val(&dc, "host"), "filehost",
		       "empty DB_HOST ignored");
		dbconf_free(&dc);
	}

	/* The file's url: its keys under it, DB_* over it. */
	set_str(&c.db.url, "postgresql://urluser@urlhost:3333/urldb");
	env_set("DB_HOST", "envhost");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "file url build")) {
		u = find_key(&dc, "dbname", 0);
		ok(u >= 0 && strcmp(dc.vals[u], c.db.url) == 0,
		   "the first dbname is the file url");
		h = find_key(&dc, "host", 0);
		ok(h >= 0 && h < u && strcmp(dc.vals[h], "filehost") == 0,
		   "file host before the url (the url wins over it)");
		h = find_key(&dc, "host", 1);
		ok(h > u && strcmp(dc.vals[h], "envhost") == 0,
		   "DB_HOST after the url (it wins over the url)");
		ok(find_key(&dc, "user", 1) > u &&
			   strcmp(last_val(&dc, "user"), "envuser") == 0,
		   "DB_USER after the url");
		ok(find_key(&dc, "password", 1) > u &&
			   strcmp(last_val(&dc, "password"), "env pw@/'%") ==
				   0,
		   "DB_PASSWORD after the url");
		ok(find_key(&dc, "dbname", 1) > u &&
			   strcmp(last_val(&dc, "dbname"), "envdb") == 0,
		   "DB_NAME after the url, as a plain name");
		is_str(last_val(&dc, "sslmode"), "require",
		       "url saying no sslmode, TCP host: the seed's require");
		ok(find_key(&dc, "sslmode", 0) < u,
		   "before the url, which may say otherwise");
		is_str(dc.describe,
		       "postgresql://urluser@urlhost:3333/urldb host=envhost "
		       "dbname=envdb user=envuser",
		       "describe: the url and what overrides it");
		dbconf_free(&dc);
	}
	env_clear();
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "file url alone")) {
		is_int(count_key(&dc, "dbname"), 1,
		       "url names a database: the file's name is not added");
		is_str(dc.vals[find_key(&dc, "dbname", 0)], c.db.url,
		       "the url is the dbname");
		is_str(dc.describe, "postgresql://urluser@urlhost:3333/urldb",
		       "describe");
		dbconf_free(&dc);
	}
	set_str(&c.db.url, "postgresql://urlhost");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "url without db")) {
		is_int(count_key(&dc, "dbname"), 2, "name added");
		ok(find_key(&dc, "dbname", 1) > find_key(&dc, "dbname", 0) &&
			   strcmp(last_val(&dc, "dbname"), "filedb") == 0,
		   "the file's name after the url");
		dbconf_free(&dc);
	}

	/* DATABASE_URL wins over everything. */
	set_str(&c.db.url, "postgresql://fileurl/filedb");
	env_set("DATABASE_URL",
		"postgresql://u:s3cr%40t@envurlhost:5432/db1?sslmode=disable");
	env_set("DB_HOST", "envhost");
	env_set("DB_NAME", "envdb");
	env_set("DB_PASSWORD", "envpw");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "DATABASE_URL build")) {
		u = find_key(&dc, "dbname", 0);
		ok(u >= 0 && strcmp(dc.vals[u], fake_env("DATABASE_URL")) == 0,
		   "the first dbname is DATABASE_URL");
		is_int(count_key(&dc, "dbname"), 1,
		       "no other dbname (the file url is unused)");
		for (int i = u + 1; i < dc.n; i++)
			ok(0, "nothing after DATABASE_URL: %s", dc.keys[i]);
		h = find_key(&dc, "host", 0);
		ok(h >= 0 && h < u && strcmp(dc.vals[h], "envhost") == 0,
		   "DB_HOST only as a fallback before it");
		is_int(count_key(&dc, "host"), 1, "one host fallback");
		is_str(last_val(&dc, "password"), "envpw",
		       "DB_PASSWORD fallback (before the url)");
		is_int(count_key(&dc, "sslmode"), 0, "no sslmode added");
		is_str(dc.describe,
		       "postgresql://u:***@envurlhost:5432/db1?sslmode=disable",
		       "describe masks the URL password");
		ok(strstr(dc.describe, "s3cr") == NULL &&
			   strstr(dc.describe, "envpw") == NULL,
		   "describe has no password");
		dbconf_free(&dc);
	}
	env_set("DATABASE_URL", "postgresql://envurlhost?connect_timeout=5");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "URL without db")) {
		u = find_key(&dc, "dbname", 0);
		ok(u >= 0 && strcmp(dc.vals[u], fake_env("DATABASE_URL")) == 0,
		   "the first dbname is DATABASE_URL");
		ok(find_key(&dc, "dbname", 1) > u &&
			   strcmp(last_val(&dc, "dbname"), "envdb") == 0,
		   "DB_NAME after it, as it names no database");
		is_int(dc.connect_timeout, 5, "the URL's connect_timeout");
		ok(find_key(&dc, "connect_timeout", 0) < u,
		   "the option's connect_timeout comes before the URL");
		is_str(dc.describe,
		       "postgresql://envurlhost?connect_timeout=5 "
		       "dbname=envdb",
		       "describe");
		dbconf_free(&dc);
	}
	env_set("DATABASE_URL", "postgres://h/?password=abc&dbname=x&a=b");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "query password")) {
		is_int(count_key(&dc, "dbname"), 1, "dbname in the query");
		is_str(dc.describe,
		       "postgres://h/?password=***&dbname=x&a=b",
		       "query password masked");
		dbconf_free(&dc);
	}
	env_set("DATABASE_URL",
		"host=h1 password = 'a b\\'c' user=x dbname=kv");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "key=value string")) {
		is_int(count_key(&dc, "dbname"), 1, "dbname in the string");
		is_str(dc.describe, "host=h1 password = *** user=x dbname=kv",
		       "key=value password masked");
		dbconf_free(&dc);
	}
	env_set("DATABASE_URL", "postgresql://a:b@h/d?password=c");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "two passwords")) {
		is_str(dc.describe, "postgresql://a:***@h/d?password=***",
		       "both masked");
		dbconf_free(&dc);
	}
	env_set("DATABASE_URL", "host=h dbname");
	ok(build(&c, &dc, err, sizeof(err)) == -1, "malformed string");
	is_str(err, "DATABASE_URL: missing \"=\" after a keyword in the "
		    "connection string", "message");
	env_set("DATABASE_URL", "host='h");
	ok(build(&c, &dc, err, sizeof(err)) == -1, "unterminated quote");
	env_set("DATABASE_URL", "");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "empty DATABASE_URL")) {
		is_str(dc.vals[find_key(&dc, "dbname", 0)], c.db.url,
		       "empty DATABASE_URL = unset: the file url");
		dbconf_free(&dc);
	}

	env_clear();
	env_set("DB_PORT", "54x");
	ok(build(&c, &dc, err, sizeof(err)) == -1, "bad DB_PORT");
	is_str(err, "DB_PORT must be a port number from 1 to 65535 (or a "
		    "comma-separated list of them)", "DB_PORT message");
	env_set("DB_PORT", "0");
	ok(build(&c, &dc, err, sizeof(err)) == -1, "DB_PORT 0");
	env_set("DB_PORT", "65536");
	ok(build(&c, &dc, err, sizeof(err)) == -1, "DB_PORT 65536");
	env_set("DB_PORT", "5432,");
	ok(build(&c, &dc, err, sizeof(err)) == -1, "DB_PORT trailing comma");
	env_set("DB_PORT", "5432,5433");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "port list")) {
		is_str(last_val(&dc, "port"), "5432,5433", "port list kept");
		dbconf_free(&dc);
	}
	env_clear();
	env_set("DB_NAME", "postgresql://x/y");
	ok(build(&c, &dc, err, sizeof(err)) == -1, "DB_NAME as URL refused");
	env_clear();
	{
		char *longv = malloc(5000);

		if (longv) {
			memset(longv, 'x', 4999);
			longv[4999] = '\0';
			env_set("DB_HOST", longv);
			ok(build(&c, &dc, err, sizeof(err)) == -1,
			   "overlong variable");
			is_str(err, "DB_HOST is longer than 4096 bytes",
			       "overlong message");
			free(longv);
		}
	}
	env_clear();
	config_free(&c);
}

static void test_dbconf_password_file(void)
{
	struct config c;
	struct dbconf dc;
	char err[512], pwpath[400], want[600];
	static const char secret[] = "s3cr@t pw/'%";
	int rc;

	env_clear();
	if (config_init(&c) < 0)
		return;
	snprintf(pwpath, sizeof(pwpath), "%s/pw", tmpdir);
	set_str(&c.db.password_file, pwpath);
	set_str(&c.db.host, "/tmp");

	write_file(pwpath, "s3cr@t pw/'%\nsecond line\n", 25, 0600);
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "0600 file accepted")) {
		is_str(last_val(&dc, "password"), secret, "first line");
		ok(strstr(dc.describe, "s3cr") == NULL, "not in describe");
		dbconf_free(&dc);
	}
	write_file(pwpath, "s3cr@t pw/'%\r\n", 14, 0400);
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "0400, CRLF")) {
		is_str(last_val(&dc, "password"), secret, "CR stripped");
		dbconf_free(&dc);
	}
	write_file(pwpath, "s3cr@t pw/'%", 12, 0600);
	if (ok(build(&c, &dc, err, sizeof(err)) == 0, "no newline")) {
		is_str(last_val(&dc, "password"), secret, "whole file");
		dbconf_free(&dc);
	}

	write_file(pwpath, "s3cr@t pw/'%\n", 13, 0644);
	rc = build(&c, &dc, err, sizeof(err));
	ok(rc == -1, "0644 refused");
	snprintf(want, sizeof(want),
		 "[database] password_file %s: group or others have access to "
		 "it (mode 0644); it must be 0600 or stricter", pwpath);
	is_str(err, want, "0644 message");
	ok(strstr(err, "s3cr") == NULL, "error has no password");
	write_file(pwpath, "s3cr@t pw/'%\n", 13, 0640);
	ok(build(&c, &dc, err, sizeof(err)) == -1, "0640 refused");
	write_file(pwpath, "s3cr@t pw/'%\n", 13, 0602);
	ok(build(&c, &dc, err, sizeof(err)) == -1, "0602 refused");

	/* DB_PASSWORD wins: the file is then not even read. */
	env_set("DB_PASSWORD", "envpw");
	if (ok(build(&c, &dc, err, sizeof(err)) == 0,
	       "DB_PASSWORD: file not needed")) {
		is_str(last_val(&dc, "password"), "envpw", "DB_PASSWORD");
		dbconf_free(&dc);
	}
	env_clear();

	write_file(pwpath, "\nsecret\n", 8, 0600);
	ok(build(&c, &dc, err, sizeof(err)) == -1, "empty first line");
	snprintf(want, sizeof(want),
		 "[database] password_file %s: the first line is empty",
		 pwpath);
	is_str(err, want, "empty message");
	{
		char big[5000];

		memset(big, 'p', sizeof(big));
		write_file(pwpath, big, sizeof(big), 0600);
		ok(build(&c, &dc, err, sizeof(err)) == -1, "big file refused");
		snprintf(want, sizeof(want),
			 "[database] password_file %s: larger than 4096 bytes",
			 pwpath);
		is_str(err, want, "big file message");
		ok(strstr(err, "ppp") == NULL, "no content in error");
	}
	unlink(pwpath);
	ok(build(&c, &dc, err, sizeof(err)) == -1, "missing file");
	snprintf(want, sizeof(want),
		 "[database] password_file %s: No such file or directory",
		 pwpath);
	is_str(err, want, "missing message");
	set_str(&c.db.password_file, tmpdir);
	if (chmod(tmpdir, 0700) == 0) {
		ok(build(&c, &dc, err, sizeof(err)) == -1, "directory");
		snprintf(want, sizeof(want),
			 "[database] password_file %s: not a regular file",
			 tmpdir);
		is_str(err, want, "directory message");
	}
	config_free(&c);
}

/* ------------------------------------------------------------------ */

static void setup_tmp(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_config.XXXXXX",
		 t && t[0] ? t : "/tmp");
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		exit(1);
	}
	snprintf(cpath, sizeof(cpath), "%s/convd.conf", tmpdir);
}

static void cleanup_tmp(void)
{
	char p[400];

	unlink(cpath);
	snprintf(p, sizeof(p), "%s/pw", tmpdir);
	unlink(p);
	rmdir(tmpdir);
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--print-sample") == 0) {
		config_print_sample(stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--print-man") == 0) {
		config_print_man(stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--print-help") == 0) {
		config_print_help(stdout);
		return 0;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: %s [--print-sample | --print-man | "
				"--print-help]\n", argv[0]);
		return 2;
	}

	setup_tmp();
	test_table();
	test_defaults();
	test_parse_all();
	test_values();
	test_errors();
	test_config_set();
	test_file_limits();
	test_atomic_and_reload();
	test_reload_callback();
	test_validate();
	test_format_and_effective();
	test_sample();
	test_man();
	test_help();
	test_dbconf_file_only();
	test_dbconf_env();
	test_dbconf_password_file();
	cleanup_tmp();
	return tap_done();
}
