/*
 * schema.h - what convd's code needs from the database schema.
 *
 * `convctl db` records every applied revision in SCHEMA_HISTORY_TABLE
 * (in the first schema of the search_path, normally public):
 *
 *   revision    text PRIMARY KEY     revision id
 *   parents     text[] NOT NULL      its parent revisions
 *   message     text NOT NULL
 *   checksum    text NOT NULL        SHA-256 (hex) of the SQL that runs
 *   kind        text NOT NULL        'applied', 'stamped' or 'adopted'
 *   applied_at  timestamptz NOT NULL
 *   applied_by  text NOT NULL        "dbrole (osuser@host)"
 *   duration_ms bigint NOT NULL
 *   dirty       boolean NOT NULL     true while a non-transactional
 *                                    revision is running or after it failed
 *   note        text                 error of a failed run, adoption note
 *
 * The daemon checks at start-up that SCHEMA_REQUIRED_REVISION is applied
 * and that nothing is dirty (SCHEMA_CHECK_QUERY, $1 = the revision); an
 * undefined-table error (SQLSTATE 42P01) means the database was never set
 * up.  In every failing case the fix is `convctl db setup` (or
 * `convctl db upgrade`), and for a dirty revision `convctl db status`.
 */
#ifndef CONVD_SCHEMA_H
#define CONVD_SCHEMA_H

#define SCHEMA_HISTORY_TABLE "convd_schema_history"

/* The newest revision convd's queries rely on (migrations/). */
#define SCHEMA_REQUIRED_REVISION "5a1e0c2f7b90"

/*
 * One row: applied (bigint, 1 when $1 is applied and clean) and dirty
 * (bigint, how many revisions are marked dirty).
 */
#define SCHEMA_CHECK_QUERY                                              \
	"SELECT count(*) FILTER (WHERE revision = $1 AND NOT dirty),"   \
	" count(*) FILTER (WHERE dirty) FROM " SCHEMA_HISTORY_TABLE

/* The command that brings a database to what convd needs. */
#define SCHEMA_FIX_COMMAND "convctl db upgrade"

#endif
