/*
 * migrate_rev.h - revision files (pure: no database).
 *
 * A revision is one SQL file in the migrations directory:
 *
 *   -- revision: 3f9c2a7d41e0
 *   -- parents: 1b2c3d4e5f60          (absent or empty: a root;
 *                                       two or more: a merge)
 *   -- message: what it does           (escapes: \\ \n \r \t \xHH)
 *   -- transactional: no               (optional, default yes)
 *   -- created: 2026-11-24T07:05:00Z   (optional, informative)
 *   -- any other comment
 *
 *   -- +up
 *   SQL that applies it
 *
 *   -- +down
 *   SQL that reverts it
 *
 * Header lines come before `-- +up`; a comment whose first word is a lower
 * case key followed by ':' is a header line, and unknown keys are errors
 * (so that a typo such as "parent:" cannot silently make a root).  The
 * checksum is SHA-256 over the transactional flag and both sections, so it
 * covers everything that runs; the message and other comments of the
 * header are not part of it.
 */
#ifndef CONVD_MIGRATE_REV_H
#define CONVD_MIGRATE_REV_H

#include "common.h"
#include "migrate_sha256.h"

#define MIGRATE_REV_ID_MAX 64		/* bytes of a revision id */
#define MIGRATE_REV_MAX_PARENTS 16
#define MIGRATE_REV_MAX_REVISIONS 10000
#define MIGRATE_REV_MAX_FILE (16u << 20)	/* bytes of one revision file */
#define MIGRATE_REV_MESSAGE_MAX 1000	/* bytes of a message */
#define MIGRATE_REV_NEW_ID_LEN 12		/* hex digits of a fresh id */

struct migrate_rev {
	char *id;
	char **parents;
	int nparents;
	char *message;			/* unescaped, valid UTF-8 */
	char *created;			/* or NULL */
	bool transactional;
	char *up;			/* SQL sections, CRLF turned into LF */
	char *down;
	int up_line;			/* line of the first up / down line */
	int down_line;
	char checksum[MIGRATE_SHA256_HEXLEN + 1];
	char *path;			/* file, or NULL */

	/* graph, filled by migrate_set_build */
	int *parent_idx;
	int *child_idx;
	int nchildren;
	int pos;			/* position in set->order */
};

/* Parses one revision file's text.  path is kept for messages. */
CONVD_WUR int migrate_rev_parse(const char *text, size_t len,
				const char *path, struct migrate_rev *out,
				char *err, size_t errlen);
void migrate_rev_free(struct migrate_rev *r);

/* True when s is a valid revision id: 1..64 of [A-Za-z0-9_], not a
 * reserved word (head, heads, base).  Exported for
 * tests/unit/test_migrate.c. */
bool migrate_rev_id_valid(const char *s);

/*
 * The text of a revision file.  message is escaped; up and down are put
 * after their markers as given.  Returns malloc'd text or NULL (ENOMEM or
 * invalid arguments, with err set).
 */
char *migrate_rev_format(const char *id, char *const *parents, int nparents,
			 const char *message, const char *created,
			 bool transactional, const char *up, const char *down,
			 char *err, size_t errlen);

/* Escapes a message for a header line (malloc'd) / checks a message. */
char *migrate_rev_message_escape(const char *msg);
CONVD_WUR int migrate_rev_message_check(const char *msg, char *err,
					size_t errlen);

/* A file name "<id>_<slug>.sql" for a message (malloc'd). */
char *migrate_rev_file_name(const char *id, const char *message);

/* A fresh random id of MIGRATE_REV_NEW_ID_LEN hex digits. */
CONVD_WUR int migrate_rev_new_id(char out[MIGRATE_REV_NEW_ID_LEN + 1]);

/*
 * Reads a regular file of at most MIGRATE_REV_MAX_FILE bytes into *out
 * (malloc'd, NUL-terminated; *outlen its length).  -1 with err.
 */
CONVD_WUR int migrate_rev_read_file(const char *path, char **out,
				    size_t *outlen, char *err, size_t errlen);

#endif
