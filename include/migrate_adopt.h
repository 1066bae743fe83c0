/*
 * migrate_adopt.h - recognising a database made before convctl db (the
 * seed's tables made by hand from its README SQL, or altered by its
 * Alembic revision '001' and any revisions of the user's after it) and
 * the plan that turns it into the schema of convd's first revision,
 * losing nothing.
 *
 * What the user added is kept: other tables, columns of the two tables
 * (unless NOT NULL without a default, which convd's inserts could not
 * fill: refused), constraints other than the primary keys, and every
 * index but the ones the seed created, which are recognised by their
 * definition (btree on the same columns in the same order and direction,
 * no predicate, no expression), not by their name.  `kept` lists them.
 *
 * Timestamps without time zone have no zone: `tz_evidence` says what the
 * database tells about the zone they were written in (the server's,
 * database's and roles' TimeZone, the column defaults, rows that would be
 * dated in the future if read as UTC) and `tz_doubt` whether the times
 * may not all be UTC.  The plan reads them in the zone it is given.
 *
 * The plan only inspects; `convctl db setup` runs it in one transaction
 * together with a row count check, a comparison of the result with the
 * first revision's schema (loaded into a scratch schema; what only the
 * live tables have is the user's, kept) and the record
 * of that revision as 'adopted'; any difference rolls everything back.
 */
#ifndef CONVD_MIGRATE_ADOPT_H
#define CONVD_MIGRATE_ADOPT_H

#include <libpq-fe.h>

#include "common.h"

/* The revision whose schema an adopted database gets. */
#define MIGRATE_ADOPT_REVISION "3f9c2a7d41e0"

enum migrate_adopt_shape {
	MIGRATE_ADOPT_EMPTY,		/* none of convd's tables */
	MIGRATE_ADOPT_MANAGED,		/* the history table exists */
	MIGRATE_ADOPT_LEGACY_README,	/* (a) README SQL: no platform */
	MIGRATE_ADOPT_LEGACY_ALEMBIC,	/* (b) altered by Alembic '001' */
	MIGRATE_ADOPT_UNKNOWN,		/* something else: refused */
};

struct migrate_adopt_step {
	char *note;		/* one line: why */
	char *sql;		/* one statement */
};

struct migrate_adopt {
	enum migrate_adopt_shape shape;
	char found[2048];	/* what was found, for people */
	char problem[1024];	/* MIGRATE_ADOPT_UNKNOWN: why not recognised */
	struct migrate_adopt_step *steps;
	int nsteps;
	bool alembic;		/* alembic_version exists (it is dropped) */
	char alembic_revs[256];	/* its version_num rows, "'001', 'a1b2'" */
	char kept[2048];	/* the user's objects that adoption keeps */
	char zone[64];		/* how the legacy times are read ("UTC") */
	bool naive_rows;	/* rows with timestamps without time zone */
	bool tz_doubt;		/* the evidence says: maybe not all UTC */
	char tz_evidence[2048];	/* "- ...\n" lines, for people */
	int64_t threads, messages;

	/* the legacy state, for the fingerprint taken before the plan */
	bool had_platform;
	bool threads_naive, history_naive;	/* timestamp without tz */
};

/*
 * Looks at schema nsp.  Returns -1 only when the database cannot be read
 * (err); an unrecognised shape is MIGRATE_ADOPT_UNKNOWN with problem set.
 */
CONVD_WUR int migrate_adopt_inspect(PGconn *conn, const char *nsp,
				    const char *history_table,
				    struct migrate_adopt *out, char *err,
				    size_t errlen);
/* The same, with the legacy times read in `zone` (NULL: UTC), which must
 * have passed migrate_adopt_check_zone. */
CONVD_WUR int migrate_adopt_inspect_tz(PGconn *conn, const char *nsp,
				       const char *history_table,
				       const char *zone,
				       struct migrate_adopt *out, char *err,
				       size_t errlen);
/* Whether `zone` is UTC or a time zone name the server knows (IANA, as in
 * pg_timezone_names); -1 with err if not. */
CONVD_WUR int migrate_adopt_check_zone(PGconn *conn, const char *zone,
				       char *err,
				       size_t errlen);
void migrate_adopt_free(struct migrate_adopt *a);

/*
 * A fingerprint of the two tables' contents: row counts and a sum of
 * per-row hashes over every column (timestamps as epochs, legacy ones
 * read in a->zone, platform
 * 'line' where the column did not exist yet), taken before the plan
 * (after = false) and after it; they must be equal.
 */
CONVD_WUR int migrate_adopt_fingerprint(PGconn *conn, const char *nsp,
					const struct migrate_adopt *a,
					bool after, char *out, size_t outlen,
					char *err, size_t errlen);

#endif
