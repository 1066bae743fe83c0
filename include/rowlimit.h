/*
 * rowlimit.h - a query result gathered a row at a time (libpq's
 * single-row mode) within a bound on the bytes of its values, so that a
 * result is checked while it is read, never held whole first.
 *
 * Past the bound the rows gathered are dropped and the rest only counted
 * (too_large); as a page, the rows before the bound are kept and the
 * rest dropped (full), unless the first row alone passes it.  Works on
 * PGresults only: no connection, no I/O.
 */
#ifndef CONVD_ROWLIMIT_H
#define CONVD_ROWLIMIT_H

#include <libpq-fe.h>

#include "common.h"

/* Columns of a bounded result at most (more: too_large). */
#define ROWLIMIT_MAX_FIELDS 16

struct rowlimit {
	size_t limit;		/* bytes of values; 0 = no bound */
	size_t bytes;		/* ... seen so far */
	bool page;		/* keep the rows before the bound */
	bool full;		/* the page is full: later rows dropped */
	bool too_large;		/* passed the bound (or out of memory) */
};

/* Ready for the next result (the bound stays). */
void rowlimit_start(struct rowlimit *rl);

/*
 * Adds row (a PGRES_SINGLE_TUPLE result) to *res (NULL before the first
 * row: made then, with pg's hooks; pg may be NULL), or counts it and
 * drops *res once the bound is passed.
 */
void rowlimit_add(struct rowlimit *rl, PGresult **res, const PGresult *row,
		  PGconn *pg);

/* Whether the values of res (read whole) pass rl's bound. */
bool rowlimit_over(const struct rowlimit *rl, const PGresult *res);

#endif
