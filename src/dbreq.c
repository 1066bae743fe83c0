/*
 * dbreq.c - one request's statements on one held connection.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "consts.h"
#include "dbreq.h"
#include "deadline.h"
#include "log.h"
#include "topology.h"

static enum rpc_error dbreq_code(enum pool_status st)
{
	switch (st) {
	case POOL_TIMEOUT:
		return E_TIMEOUT;
	case POOL_RESULT_TOO_LARGE:
		return E_RESULT_TOO_LARGE;
	case POOL_QUERY_ERROR:
	case POOL_OK:
		return E_INTERNAL;
	default:
		return E_UNAVAILABLE;
	}
}

/* Gives the connection back and the state to its handler; returns the
 * request, which the caller answers last (that may free it). */
static struct request *dbreq_end(struct dbreq *q)
{
	struct request *r = q->r;

	r->handler_data = NULL;
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

void dbreq_error(struct dbreq *q, enum rpc_error e, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	request_error(dbreq_end(q), e, "%s", msg);
}

/* A query error: the client learns the class, the log gets the detail. */
static void dbreq_query_failed(struct dbreq *q, const PGresult *res,
			       const char *msg)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	log_error("%s: database error %s: %s", q->r->spec->name,
		  st ? st : "?", msg ? msg : "?");
	if (st && strcmp(st, SQLSTATE_QUERY_CANCELED) == 0)
		dbreq_error(q, E_TIMEOUT, "the query took longer than "
					  "[database] statement_timeout");
	else if (st && (strncmp(st, "08", 2) == 0 ||
			strncmp(st, "57P", 3) == 0))
		dbreq_error(q, E_UNAVAILABLE, "database unavailable");
	else if (topology_read_only_error(st) || topology_pooler_error(st))
		dbreq_error(q, E_UNAVAILABLE, "database unavailable (%s)",
			    topology_read_only_error(st) ?
				    "the server is read-only" :
				    "a transaction pooler");
	else if (st && (strcmp(st, SQLSTATE_UNDEFINED_TABLE) == 0 ||
			strcmp(st, "42703") == 0 || strcmp(st, "42704") == 0))
		dbreq_error(q, E_UNAVAILABLE,
			    "the database schema is missing or outdated; run "
			    "'convctl db upgrade'");
	else
		dbreq_error(q, E_INTERNAL, "database error (SQLSTATE %s)",
			    st ? st : "unknown");
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
	if (st == POOL_QUERY_ERROR) {
		dbreq_query_failed(q, res, msg);
	} else if (st == POOL_RESULT_TOO_LARGE) {
		log_notice("%s: the result is larger than max_output_bytes; "
			   "answered result_too_large", q->r->spec->name);
		dbreq_error(q, E_RESULT_TOO_LARGE,
			    "the result is larger than [server] "
			    "max_output_bytes (%zu bytes)",
			    request_max_output());
	} else {
		dbreq_error(q, dbreq_code(st), "%s",
			    st == POOL_UNAVAILABLE ?
				    "database unavailable (connection lost "
				    "during the query)" :
				    msg ? msg : "database unavailable");
	}
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
		dbreq_error(q, dbreq_code(st), "%s",
			    msg ? msg : "database unavailable");
		return;
	}
	q->pc = pc;
	q->on_conn(q);
}

/* The deadline passed: what the request waits for is given up. */
static void dbreq_expire(struct request *r)
{
	struct dbreq *q = r->handler_data;

	if (!q) {
		request_error(r, E_TIMEOUT, "no answer from the database "
					    "within [server] request_timeout");
		return;
	}
	if (q->pc && q->running)
		pool_abandon(q->pc);	/* the connection goes with it */
	else if (q->pc)
		pool_release(q->pc);
	else
		pool_cancel(&r->waiter);
	q->pc = NULL;
	q->running = false;
	dbreq_error(q, E_TIMEOUT, "no answer from the database within "
				  "[server] request_timeout");
}

void dbreq_begin(struct dbreq *q)
{
	struct request *r = q->r;

	r->handler_data = q;
	deadline_watch(r, dbreq_expire);
	/* the outcome reaches dbreq_on_acquire whichever it is */
	(void)pool_acquire_then(&r->waiter, dbreq_on_acquire, q);
}
