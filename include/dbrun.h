/*
 * dbrun.h - running revisions against the database: one revision (in a
 * transaction with its history row and the destructive-change guard, or
 * non-transactional: marked dirty while it runs), a plan, a rehearsal
 * (--try: everything in one transaction that is rolled back).
 */
#ifndef CONVD_DBRUN_H
#define CONVD_DBRUN_H

#include "dbctx.h"
#include "migrate_adopt.h"

/* How dbrun_transactional runs a revision. */
enum dbrun_how {
	DBRUN_OWN_TXN,	/* in a transaction of its own, committed */
	DBRUN_IN_TXN,	/* in the caller's transaction (reset) */
	DBRUN_REHEARSE,	/* in the caller's transaction, rolled back later */
};

/* Each returns an exit status, the reason said. */
CONVD_WUR int dbrun_transactional(struct dbctx *c, int idx, bool up,
				  enum dbrun_how how, bool allow_destructive);
CONVD_WUR int dbrun_nontransactional(struct dbctx *c, int idx, bool up,
				     bool allow_destructive);
/* Every revision of the plan in turn, after the destructive pre-check;
 * stops at the first failure, saying what stays done. */
CONVD_WUR int dbrun_plan(struct dbctx *c, const int *plan, int n, bool up,
			 bool allow_destructive);
/*
 * --try: the plan as the real run would run it (the destructive pre-check,
 * the adoption ma with its checks if not NULL, each revision with its
 * guard and history row) in one transaction that is rolled back.  A
 * non-transactional revision cannot run in it: the rehearsal stops there,
 * checks the rest without running it, and fails.
 */
CONVD_WUR int dbrun_rehearse(struct dbctx *c, const int *plan, int n,
			     bool up, struct migrate_adopt *ma,
			     bool allow_destructive);

#endif
