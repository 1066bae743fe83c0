/*
 * dbreq.c - one request's statements on one held connection.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dbreq.h"
#include "query.h"

_Static_assert(sizeof(struct dbreq *) <= REQUEST_HOLDER_SPACE,
	       "the request's holder space keeps its dbreq");

/* The request keeps a pointer to its dbreq (for its deadline). */
static void dbreq_hold(struct request *r, struct dbreq *q)
{
	memcpy(r->holder.bytes, &q, sizeof(q));
}

static struct dbreq *dbreq_of(struct request *r)
{
	struct dbreq *q;

	memcpy(&q, r->holder.bytes, sizeof(q));
	return q;
}

/* Gives the connection back and the state to its handler; returns the
 * request, which the caller answers last. */
static struct request *dbreq_end(struct dbreq *q)
{
	struct request *r = q->r;

	dbreq_hold(r, NULL);
	if (q->pc) {
		pool_release(q->pc);
		q->pc = NULL;
	}
	q->on_end(q);
	return r;
}

void dbreq_finish(struct dbreq *q)
{
	request_finish(dbreq_end(q));
}

void dbreq_abort(struct dbreq *q, const char *why)
{
	request_abort(dbreq_end(q), why);
}

void dbreq_error(struct dbreq *q, enum rpc_error e, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	request_error(dbreq_end(q), e, "%s", msg);
}

static void dbreq_on_result(void *arg, struct pool_conn *pc,
			    enum pool_status st, const PGresult *res,
			    const char *msg)
{
	struct dbreq *q = arg;

	(void)pc;
	q->running = false;
	if (st == POOL_OK) {
		q->on_rows(q, res);
		return;
	}
	/* the error as every method answers it (query.h) */
	query_answer(dbreq_end(q), st, res, msg);
}

void dbreq_exec(struct dbreq *q, const char *sql, int n,
		const char *const *vals, const int *lens, const int *fmts,
		size_t max_bytes, bool page)
{
	if (page)
		pool_set_result_page(q->pc, max_bytes);
	else
		pool_set_result_limit(q->pc, max_bytes);
	q->running = true;
	if (pool_exec(q->pc, NULL, sql, n, vals, lens, fmts, 1,
		      dbreq_on_result, q) < 0) {
		q->running = false;
		dbreq_error(q, E_UNAVAILABLE,
			    "database unavailable (cannot send the query)");
	}
}

static void dbreq_on_acquire(void *arg, struct pool_conn *pc,
			     enum pool_status st, const char *msg)
{
	struct dbreq *q = arg;

	if (st != POOL_OK) {
		query_answer(dbreq_end(q), st, NULL, msg);
		return;
	}
	q->pc = pc;
	q->on_conn(q);
}

/* The deadline passed: what the request waits for is given up. */
static void dbreq_expire(struct request *r)
{
	struct dbreq *q = dbreq_of(r);

	if (q->pc && q->running)
		pool_abandon(q->pc);	/* the connection goes with it */
	else if (q->pc)
		pool_release(q->pc);
	else
		pool_cancel(&q->waiter);
	q->pc = NULL;
	q->running = false;
	dbreq_error(q, E_TIMEOUT, "no answer from the database within "
				  "[server] request_timeout");
}

void dbreq_begin(struct dbreq *q)
{
	struct request *r = q->r;

	dbreq_hold(r, q);
	request_watch(r, dbreq_expire);
	/* the outcome reaches dbreq_on_acquire whichever it is */
	(void)pool_acquire_then(&q->waiter, dbreq_on_acquire, q);
}
