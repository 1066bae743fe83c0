/*
 * test_dbconf.c - dbconf's one precedence rule for the SSL mode, and the
 * refusal of a DATABASE_URL / [database] url that is not a PostgreSQL URI
 * or key=value string (issue 13, point 11).  The integration test
 * tests/integration/test_dbsettings.py checks the same against a server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dbconf.h"
#include "tap.h"

static const char *vars[16][2];

static const char *env(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(vars) && vars[i][0]; i++)
		if (strcmp(vars[i][0], name) == 0)
			return vars[i][1];
	return NULL;
}

/* "NAME=value NAME=value" (values without blanks) into vars. */
static void env_load(char *buf, const char *spec)
{
	size_t n = 0;

	memset(vars, 0, sizeof(vars));
	snprintf(buf, 1024, "%s", spec);
	for (char *tok = strtok(buf, " "); tok && n < ARRAY_LEN(vars) - 1;
	     tok = strtok(NULL, " ")) {
		char *eq = strchr(tok, '=');

		if (!eq)
			continue;
		*eq = '\0';
		vars[n][0] = tok;
		vars[n][1] = eq + 1;
		n++;
	}
}

/* The sslmode libpq will see before any URL: the last entry ahead of
 * the first dbname that holds a URL, or "-" when there is none. */
static const char *sslmode_before_url(const struct dbconf *dc)
{
	const char *v = "-";

	for (int i = 0; i < dc->n; i++) {
		if (strcmp(dc->keys[i], "dbname") == 0 &&
		    (strstr(dc->vals[i], "://") || strchr(dc->vals[i], '=')))
			break;
		if (strcmp(dc->keys[i], "sslmode") == 0)
			v = dc->vals[i];
	}
	return v;
}

static void set_str(char **field, const char *v)
{
	free(*field);
	*field = strdup(v);
	if (!*field)
		exit(1);
}

static void test_sslmode_rule(void)
{
	static const struct {
		const char *file_host, *file_sslmode, *file_url, *env, *want;
	} cases[] = {
		/* the seed's require: TCP hosts where nothing says a mode */
		{"", "", "", "DB_HOST=127.0.0.1", "require"},
		{"db1", "", "", "", "require"},
		{"", "", "", "DB_HOST=/run/postgresql", "-"},
		{"", "", "", "", "-"},
		{"", "", "", "PGHOST=db1", "require"},
		{"", "", "", "PGHOST=/tmp", "-"},
		{"", "", "", "PGHOSTADDR=10.0.0.1", "require"},
		/* PG* and services say otherwise */
		{"", "", "", "DB_HOST=127.0.0.1 PGSSLMODE=disable", "-"},
		{"db1", "", "", "PGSSLMODE=prefer", "-"},
		{"db1", "", "", "PGSERVICE=convd", "-"},
		/* the file's sslmode wins over PGSSLMODE */
		{"db1", "verify-full", "", "PGSSLMODE=disable", "verify-full"},
		{"", "disable", "", "DB_HOST=127.0.0.1", "disable"},
		/* URLs: their host, their sslmode, their service */
		{"", "", "", "DATABASE_URL=postgresql://db1/convd", "require"},
		{"", "", "", "DATABASE_URL=postgresql://u@127.0.0.1:5432/convd",
		 "require"},
		{"", "", "", "DATABASE_URL=postgresql://%2Frun%2Fpg/convd", "-"},
		{"", "", "", "DATABASE_URL=postgresql:///convd?host=/run/pg",
		 "-"},
		{"", "", "", "DATABASE_URL=postgresql:///convd?host=db1",
		 "require"},
		{"", "", "",
		 "DATABASE_URL=postgresql://db1/convd?sslmode=disable", "-"},
		{"", "", "", "DATABASE_URL=postgresql://db1/c PGSSLMODE=disable",
		 "-"},
		{"", "", "", "DATABASE_URL=postgresql://db1/c?service=x", "-"},
		{"", "", "", "DATABASE_URL=host=db1", "require"},
		{"", "", "", "DATABASE_URL=host=/tmp", "-"},
		/* a URL without a host: the host under it */
		{"", "", "", "DATABASE_URL=postgresql:///convd DB_HOST=db1",
		 "require"},
		{"db1", "", "", "DATABASE_URL=postgresql:///convd", "require"},
		{"/tmp", "", "", "DATABASE_URL=postgresql:///convd", "-"},
		/* the file's url: DB_HOST over it, its host over the file's */
		{"/tmp", "", "postgresql://db1/convd", "", "require"},
		{"db1", "", "postgresql://%2Ftmp/convd", "", "-"},
		{"", "", "postgresql://db1/convd", "DB_HOST=/tmp", "-"},
	};
	char buf[1024], err[512];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct config c;
		struct dbconf dc;

		if (config_init(&c) < 0)
			exit(1);
		set_str(&c.db.host, cases[i].file_host);
		set_str(&c.db.sslmode, cases[i].file_sslmode);
		set_str(&c.db.url, cases[i].file_url);
		env_load(buf, cases[i].env);
		if (ok(dbconf_build(&c, env, &dc, err, sizeof(err)) == 0,
		       "builds: host=%s sslmode=%s url=%s %s", cases[i].file_host,
		       cases[i].file_sslmode, cases[i].file_url, cases[i].env)) {
			is_str(sslmode_before_url(&dc), cases[i].want,
			       "sslmode: host=%s sslmode=%s url=%s %s",
			       cases[i].file_host, cases[i].file_sslmode,
			       cases[i].file_url, cases[i].env);
			dbconf_free(&dc);
		} else {
			printf("# %s\n", err);
		}
		config_free(&c);
	}
}

static void test_malformed_urls(void)
{
	static const struct {
		const char *url, *want;
	} cases[] = {
		{"postgresq://bob:secret@db1/convd",
		 "DATABASE_URL: the scheme \"postgresq://\" is not PostgreSQL's"},
		{"not a url", "DATABASE_URL: not a connection URL"},
		{"convd", "DATABASE_URL: not a connection URL"},
		{"http://x/?a=b", "DATABASE_URL: the scheme \"http://\""},
		{"://x", "DATABASE_URL: not a connection URL"},
		{"host=db1 dbname", "DATABASE_URL: missing \"=\""},
	};
	struct config c;
	struct dbconf dc;
	char buf[1024], err[512];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		if (config_init(&c) < 0)
			exit(1);
		memset(vars, 0, sizeof(vars));
		vars[0][0] = "DATABASE_URL";
		vars[0][1] = cases[i].url;
		err[0] = '\0';
		ok(dbconf_build(&c, env, &dc, err, sizeof(err)) < 0 &&
			   strncmp(err, cases[i].want, strlen(cases[i].want)) ==
				   0 &&
			   !strstr(err, "secret"),
		   "'%s' refused: %s", cases[i].url, err);
		config_free(&c);
	}
	if (config_init(&c) < 0)
		exit(1);
	set_str(&c.db.url, "mysql://db1/convd");
	env_load(buf, "");
	ok(dbconf_build(&c, env, &dc, err, sizeof(err)) < 0 &&
		   strncmp(err, "[database] url: the scheme", 26) == 0,
	   "the file's url is named as such: %s", err);
	config_free(&c);
}

int main(void)
{
	test_sslmode_rule();
	test_malformed_urls();
	return tap_done();
}
