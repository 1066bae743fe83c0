/*
 * migrate.h - revisions and the revision graph (pure: no database).
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
#ifndef CONVD_MIGRATE_H
#define CONVD_MIGRATE_H

#include "common.h"
#include "migrate_sha256.h"

#define MIGRATE_ID_MAX 64		/* bytes of a revision id */
#define MIGRATE_MAX_PARENTS 16
#define MIGRATE_MAX_REVISIONS 10000
#define MIGRATE_MAX_FILE (16u << 20)	/* bytes of one revision file */
#define MIGRATE_MESSAGE_MAX 1000	/* bytes of a message */
#define MIGRATE_NEW_ID_LEN 12		/* hex digits of a fresh id */

/* pg_advisory_lock key of `convctl db` ("convd" 0 0 1). */
#define MIGRATE_LOCK_KEY 0x636F6E7664000001LL

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

struct migrate_set {
	struct migrate_rev *revs;
	int n, cap;
	int *order;			/* topological: parents first */
	int *heads;			/* revisions without children */
	int nheads;
	bool built;
};

enum migrate_target_kind {
	MT_HEAD,	/* the one head ("head") */
	MT_HEADS,	/* every head ("heads") */
	MT_BASE,	/* nothing applied ("base") */
	MT_REV,		/* a revision: full id or a unique prefix */
	MT_RELATIVE,	/* +N / -N */
};

struct migrate_target {
	enum migrate_target_kind kind;
	int rev;	/* MT_REV */
	int n;		/* MT_RELATIVE: +N > 0, -N < 0 */
};

/* Parses one revision file's text.  path is kept for messages. */
CONVD_WUR int migrate_rev_parse(const char *text, size_t len,
				const char *path, struct migrate_rev *out,
				char *err, size_t errlen);
void migrate_rev_free(struct migrate_rev *r);

/* Computes r->checksum from r->transactional, r->up and r->down. */
void migrate_rev_checksum(struct migrate_rev *r);

/* True when s is a valid revision id: 1..64 of [A-Za-z0-9_], not a
 * reserved word (head, heads, base). */
bool migrate_id_valid(const char *s);

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
char *migrate_message_escape(const char *msg);
CONVD_WUR int migrate_message_check(const char *msg, char *err,
				    size_t errlen);
bool migrate_utf8_valid(const char *s, size_t len);

/* A file name "<id>_<slug>.sql" for a message (malloc'd). */
char *migrate_file_name(const char *id, const char *message);

/* A fresh random id of MIGRATE_NEW_ID_LEN hex digits. */
CONVD_WUR int migrate_new_id(char out[MIGRATE_NEW_ID_LEN + 1]);

void migrate_set_init(struct migrate_set *s);
void migrate_set_free(struct migrate_set *s);
/* Takes ownership of *r (zeroed on success). */
CONVD_WUR int migrate_set_add(struct migrate_set *s, struct migrate_rev *r,
			      char *err, size_t errlen);

/*
 * Reads every "*.sql" file of dir except the one named skip (the schema
 * model).  Every broken file is reported through report (if not NULL);
 * returns -1 if any was broken or the directory cannot be read (err).
 */
CONVD_WUR int migrate_set_load_dir(struct migrate_set *s, const char *dir,
				   const char *skip,
				   void (*report)(const char *msg, void *arg),
				   void *arg, char *err, size_t errlen);

/*
 * Resolves parents, checks for duplicate ids, unknown parents and cycles
 * (named in err), and computes the order and the heads.  Ties in the order
 * are broken by id, so it is the same everywhere.
 */
CONVD_WUR int migrate_set_build(struct migrate_set *s, char *err,
				size_t errlen);

/* Index of a full id or unique prefix; -1 with err (unknown, ambiguous). */
int migrate_set_find(const struct migrate_set *s, const char *text,
		     char *err, size_t errlen);
/* Index of exactly this id, or -1. */
int migrate_set_find_exact(const struct migrate_set *s, const char *id);

/* Marks idx and all its ancestors in mark[] (size s->n). */
void migrate_set_ancestors(const struct migrate_set *s, int idx, bool *mark);
/* Marks all proper descendants of idx in mark[]. */
void migrate_set_descendants(const struct migrate_set *s, int idx,
			     bool *mark);
/* True if a is an ancestor of b (a != b). */
bool migrate_set_is_ancestor(const struct migrate_set *s, int a, int b);

/* Parses head, heads, base, +N, -N, a revision id or unique prefix. */
CONVD_WUR int migrate_target_parse(const struct migrate_set *s,
				   const char *text, struct migrate_target *t,
				   char *err, size_t errlen);

/*
 * Plans: out (size s->n) receives revision indexes in the order they run;
 * *nout their number.  applied[] (size s->n) is what the database has.
 *
 * upgrade: head (refused with several heads, naming them), heads, a
 * revision (it and its ancestors), +N (the next N pending).
 * downgrade: base (everything), a revision (its applied descendants), -N
 * (the last N applied, in reverse order).
 * stamp: the set that will be recorded as applied, in want[].
 */
CONVD_WUR int migrate_plan_upgrade(const struct migrate_set *s,
				   const bool *applied,
				   const struct migrate_target *t, int *out,
				   int *nout, char *err, size_t errlen);
CONVD_WUR int migrate_plan_downgrade(const struct migrate_set *s,
				     const bool *applied,
				     const struct migrate_target *t, int *out,
				     int *nout, char *err, size_t errlen);
CONVD_WUR int migrate_plan_stamp(const struct migrate_set *s,
				 const bool *applied,
				 const struct migrate_target *t, bool *want,
				 char *err, size_t errlen);

/* "a, b and c" of the heads' ids into buf. */
void migrate_set_heads_text(const struct migrate_set *s, char *buf,
			    size_t len);

#endif
