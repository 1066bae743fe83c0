/*
 * dbconf.h - libpq connection parameters from the config and environment.
 *
 * Precedence: DATABASE_URL > DB_HOST, DB_PORT, DB_NAME, DB_USER,
 * DB_PASSWORD > the config file ([database] url, then its other keys) >
 * libpq's PG* variables > the seed's sslmode=require for a TCP host.
 * Parameters are built as keyword/value arrays for PQconnectStartParams /
 * PQconnectdbParams (expand_dbname = 1 for URLs), never by pasting
 * strings, so any password works.
 */
#ifndef CONVD_DBCONF_H
#define CONVD_DBCONF_H

#include "common.h"
#include "config.h"

#define DBCONF_MAX_PARAMS 48

struct dbconf {
	int n;
	const char *keys[DBCONF_MAX_PARAMS + 1];	/* NULL-terminated */
	const char *vals[DBCONF_MAX_PARAMS + 1];
	char *owned[DBCONF_MAX_PARAMS * 2];		/* freed by dbconf_free */
	int nowned;
	int64_t connect_timeout;	/* seconds, enforced by the caller */
	char describe[512];		/* "host=... port=... dbname=... user=..."
					 * for logs; never the password */
};

/*
 * Builds the parameters.  env is normally dbconf_getenv (NULL means the
 * same); tests pass their own.  An empty variable counts as unset.  Reads
 * password_file (refused unless a regular file that group and others can
 * neither read nor write).  Every value is copied into out, which does not
 * point into cfg.  On error returns -1 with out empty and err saying why
 * (never with a password in it).
 *
 * Array order (libpq: the last non-empty value wins; only the first dbname
 * entry is expanded as a URI or connection string):
 *   no URL:           options, then each of host/port/dbname/user/password
 *                     once (DB_* over the file);
 *   DATABASE_URL:     options, host/port/user/password fallbacks (DB_* over
 *                     file), dbname=URL, then dbname (DB_NAME, else the
 *                     file's name) only if the URL names no database;
 *   file url only:    options, the file's host/port/user/password,
 *                     dbname=url, then DB_HOST/DB_PORT/DB_USER/DB_PASSWORD
 *                     and DB_NAME (else the file's name if the URL names no
 *                     database).
 * sslmode: the option if set (a URL's sslmode wins over it); else
 * "require", first in the arrays, when neither the URL, PGSSLMODE nor a
 * service (PGSERVICE, service=) says a mode and the host that will be used
 * is a TCP host (DB_HOST over a file url, the URL's host, DB_HOST or the
 * file's host, PGHOSTADDR, PGHOST); else nothing (libpq's default).
 * DATABASE_URL and url must be postgresql:// or postgres:// URIs or
 * key=value strings; anything else is an error naming them.
 */
CONVD_WUR int dbconf_build(const struct config *cfg,
			   const char *(*env)(const char *name),
			   struct dbconf *out, char *err, size_t errlen);
void dbconf_free(struct dbconf *dc);

/*
 * A [database] url / DATABASE_URL as it may be shown: every password
 * (URL user info, ?password=, password=... in a key=value string) replaced
 * by "***"; a string that cannot be parsed is not shown at all.
 */
void dbconf_mask(const char *s, char *out, size_t outlen);

/* getenv with dbconf_build's signature. */
const char *dbconf_getenv(const char *name);

/* The length of a libpq message without the newline (and spaces) it ends
 * with, for "%.*s". */
int dbconf_msg_len(const char *m);

#endif
