/*
 * migrate.h - the revision graph (pure: no database): the set of revision
 * files (migrate_rev.h) of a migrations directory, ordered parents first,
 * its heads, targets (head, heads, base, +N, -N, a revision) and plans.
 */
#ifndef CONVD_MIGRATE_H
#define CONVD_MIGRATE_H

#include "common.h"
#include "migrate_rev.h"

struct migrate_set {
	struct migrate_rev *revs;
	int n, cap;
	int *order;			/* topological: parents first */
	int *heads;			/* revisions without children */
	int nheads;
	bool built;
};

enum migrate_target_kind {
	MIGRATE_TARGET_HEAD,	/* the one head ("head") */
	MIGRATE_TARGET_HEADS,	/* every head ("heads") */
	MIGRATE_TARGET_BASE,	/* nothing applied ("base") */
	MIGRATE_TARGET_REV,	/* a revision: full id or a unique prefix */
	MIGRATE_TARGET_RELATIVE, /* +N / -N */
};

struct migrate_target {
	enum migrate_target_kind kind;
	int rev;	/* MIGRATE_TARGET_REV */
	int n;		/* MIGRATE_TARGET_RELATIVE: +N > 0, -N < 0 */
};

void migrate_set_init(struct migrate_set *s);
void migrate_set_free(struct migrate_set *s);
/* Takes ownership of *r (zeroed on success).  Exported for the unit tests,
 * which build graphs in memory. */
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
