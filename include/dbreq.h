/*
 * dbreq.h - one request's statements on one connection (issue 18's
 * methods, which run several statements, or read pages until a window is
 * decided): the connection is acquired once and held until the answer,
 * the request's deadline gives up whatever it waits for, and failures are
 * answered as query.h answers them (query_answer: the same codes and
 * messages as every other method).
 *
 * The handler embeds a struct dbreq first in its state (allocated per
 * request: it holds rows across statements), sets the callbacks and calls
 * dbreq_begin.  on_conn sends the first statement (dbreq_exec); on_rows
 * gets each statement's rows (POOL_OK only: the result is valid until it
 * returns) and sends the next statement, or packs the answer and calls
 * dbreq_finish, or calls dbreq_error.  on_end runs exactly once, when the
 * request has been answered whichever way; the handler frees its state
 * there.
 */
#ifndef CONVD_DBREQ_H
#define CONVD_DBREQ_H

#include <libpq-fe.h>

#include "common.h"
#include "pool.h"
#include "request.h"

struct dbreq {
	struct request *r;
	struct pool_waiter waiter;
	struct pool_conn *pc;		/* while held */
	bool running;			/* a statement is in flight */
	void (*on_conn)(struct dbreq *q);
	void (*on_rows)(struct dbreq *q, const PGresult *res);
	void (*on_end)(struct dbreq *q);
};

/* Watches the request's deadline and acquires a connection. */
void dbreq_begin(struct dbreq *q);

/*
 * Sends a statement (an unnamed one: planned for its parameters) with
 * text parameters, or binary where fmts[i] is 1 (lens then gives the
 * length).  The rows are bounded by max_bytes (0: none): past it the
 * request gets result_too_large, or with page set the rows before the
 * bound are kept (pool_set_result_page).  A failure to send answers the
 * request `unavailable`.
 */
void dbreq_exec(struct dbreq *q, const char *sql, int n,
		const char *const *vals, const int *lens, const int *fmts,
		size_t max_bytes, bool page);

/* The answer is packed (request_result): sends it. */
void dbreq_finish(struct dbreq *q);

/* Answers an error instead. */
void dbreq_error(struct dbreq *q, enum rpc_error e, const char *fmt, ...)
	CONVD_PRINTF(3, 4);

/* The request could not be packed whole (request_abort). */
void dbreq_abort(struct dbreq *q, const char *why);

#endif
