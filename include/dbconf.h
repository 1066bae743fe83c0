/*
 * dbconf.h - libpq connection parameters from the config and environment.
 *
 * Precedence: DATABASE_URL > DB_HOST, DB_PORT, DB_NAME, DB_USER,
 * DB_PASSWORD > the config file ([database] url, then its other keys).
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
 * Builds the parameters.  env is normally getenv; tests pass their own.
 * Reads password_file (refused if group/other can read it).
 */
CONVD_WUR int dbconf_build(const struct convd_config *cfg,
			   const char *(*env)(const char *name),
			   struct dbconf *out, char *err, size_t errlen);
void dbconf_free(struct dbconf *dc);

#endif
