/*
 * query.c - one request answered by one statement (query.h).
 */
#include <string.h>

#include "consts.h"
#include "log.h"
#include "query.h"
#include "topology.h"

/* def->keyed: runs of one request at most */
#define KEY_RERUNS 3

/* ---- failures ----------------------------------------------------------------- */

enum rpc_error query_error_for(enum pool_status st)
{
	switch (st) {
	case POOL_TIMEOUT:
		return E_TIMEOUT;
	case POOL_UNAVAILABLE:
	case POOL_SHUTDOWN:
	case POOL_NOT_DURABLE:
		return E_UNAVAILABLE;
	default:
		return E_INTERNAL;
	}
}

const char *query_status_message(enum pool_status st, const char *msg)
{
	return st == POOL_UNAVAILABLE ?
		       "database unavailable (connection lost during the "
		       "query)" :
		       msg;
}

/* A query error: the client learns the class, the log gets the detail. */
static void query_error(struct request *r, const PGresult *res,
			const char *msg)
{
	const char *sqlstate =
		res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	log_error("%s: database error %s: %s", r->spec->name,
		  sqlstate ? sqlstate : "?", msg ? msg : "?");
	/* query_canceled: statement_timeout */
	if (sqlstate && strcmp(sqlstate, SQLSTATE_QUERY_CANCELED) == 0) {
		request_error(r, E_TIMEOUT, "the query took longer than "
					    "[database] statement_timeout");
		return;
	}
	/* a connection exception; the server shuts down or crashed */
	if (sqlstate &&
	    (strncmp(sqlstate, SQLSTATE_CLASS_CONNECTION,
		     strlen(SQLSTATE_CLASS_CONNECTION)) == 0 ||
	     strncmp(sqlstate, SQLSTATE_PREFIX_SHUTDOWN,
		     strlen(SQLSTATE_PREFIX_SHUTDOWN)) == 0)) {
		request_error(r, E_UNAVAILABLE, "database unavailable");
		return;
	}
	/* 25006 read_only_sql_transaction: the primary moved; 26000, 42P05:
	 * named statements met a transaction pooler.  Nothing was written;
	 * the pool checks its connections again, or stops preparing. */
	if (topology_read_only_error(sqlstate) ||
	    topology_pooler_error(sqlstate)) {
		request_error(r, E_UNAVAILABLE, "%s",
			      topology_read_only_error(sqlstate) ?
				      "database unavailable (the server is "
				      "read-only)" :
				      "a transaction pooler lost the prepared "
				      "statement; see [database] "
				      "prepared_statements");
		return;
	}
	/* undefined_table, undefined_column: the schema is missing */
	if (sqlstate && (strcmp(sqlstate, SQLSTATE_UNDEFINED_TABLE) == 0 ||
			 strcmp(sqlstate, SQLSTATE_UNDEFINED_COLUMN) == 0)) {
		request_error(r, E_UNAVAILABLE,
			      "the database schema is missing or outdated; "
			      "run 'convctl db setup'");
		return;
	}
	request_error(r, E_INTERNAL, "database error (SQLSTATE %s)",
		      sqlstate ? sqlstate : "unknown");
}

/* The rows passed max_output_bytes as they were read (pool.h). */
static void query_too_large(struct request *r)
{
	size_t max = request_max_output();

	log_notice("%s: the result is larger than max_output_bytes (%zu); "
		   "answered result_too_large",
		   r->spec->name, max);
	request_error(r, E_RESULT_TOO_LARGE,
		      "the result is larger than [server] max_output_bytes "
		      "(%zu bytes); ask for fewer rows (limit)",
		      max);
}

static query_build_fn query_builds[METHOD_COUNT_];

static void query_handle(struct request *r)
{
	query_run(r, query_builds[r->spec->id]);
}

void query_register(enum method_id m, query_build_fn build)
{
	if ((unsigned)m >= METHOD_COUNT_)
		return;
	query_builds[m] = build;
	request_register(m, query_handle);
}

/* ---- running ------------------------------------------------------------------- */

static void query_on_acquire(void *arg, struct pool_conn *pc,
			     enum pool_status st, const char *msg);
static void query_expire(struct request *r);

/* Acquires a connection for r's statement (query_state(r)->build). */
static void query_start(struct request *r)
{
	(void)pool_acquire_then(&query_state(r)->waiter, query_on_acquire, r);
}

void query_run(struct request *r, query_build_fn build)
{
	struct query_state *qs = query_state(r);

	qs->build = build;
	qs->owner = NULL;		/* alone (query_expire) */
	qs->pc = NULL;
	request_watch(r, query_expire);
	query_start(r);
}

static void query_on_result(void *arg, struct pool_conn *pc,
			    enum pool_status st, const PGresult *res,
			    const char *msg)
{
	struct request *r = arg;

	query_state(r)->pc = NULL;
	pool_release(pc);
	query_answer(r, st, res, msg);
}

int query_send(struct request *r, struct pool_conn *pc, pool_exec_fn fn,
	       void *arg)
{
	struct query_state *qs = query_state(r);
	struct pgval_params p;
	const struct query_def *def = NULL;
	int rc;

	p.n = 0;
	p.owned = NULL;
	if (qs->build(r, &p, &def) < 0 || !def) {
		pgval_params_free(&p);
		return -1;
	}
	qs->def = def;
	/* pages are bounded by bytes (def->page): a page ends at the bound
	 * rather than failing */
	if (def->page)
		pool_set_result_page(pc, request_max_output());
	else
		pool_set_result_limit(pc, request_max_output());
	rc = pool_exec(pc, def->stmt, NULL, p.n, p.values, p.lengths,
		       p.formats, 1, fn, arg);
	pgval_params_free(&p);	/* libpq has copied them */
	return rc;
}

static void query_on_acquire(void *arg, struct pool_conn *pc,
			     enum pool_status st, const char *msg)
{
	struct request *r = arg;
	struct query_state *qs = query_state(r);

	if (st != POOL_OK) {
		request_error(r, query_error_for(st), "%s", msg);
		return;
	}
	qs->pc = pc;
	if (query_send(r, pc, query_on_result, r) < 0) {
		qs->pc = NULL;
		pool_release(pc);
		request_error(r, E_UNAVAILABLE,
			      "database unavailable (cannot send the query)");
	}
}

void query_answer(struct request *r, enum pool_status st,
		  const PGresult *res, const char *msg)
{
	struct query_state *qs = query_state(r);
	const struct query_def *def = qs->def;

	if (st == POOL_OK) {
		if (PQntuples(res) == 0 && def->keyed &&
		    r->args.v[def->key_arg].present &&
		    qs->reruns < KEY_RERUNS) {
			qs->reruns++;
			query_run(r, qs->build);	/* alone now */
			return;
		}
		if (PQnfields(res) != def->nfields ||
		    (def->one_row && PQntuples(res) != 1)) {
			log_error("%s: unexpected result shape (%d columns, %d "
				  "rows)",
				  r->spec->name, PQnfields(res), PQntuples(res));
			request_error(r, E_INTERNAL, "unexpected result");
			return;
		}
		if (def->refuse) {
			char why[256];
			enum rpc_error e = def->refuse(res, why, sizeof(why));

			if (e != E_COUNT_) {
				request_error(r, e, "%s", why);
				return;
			}
		}
		if (def->pack(request_result(r), res, r) < 0) {
			request_abort(r, "cannot pack the result");
			return;
		}
		request_finish(r);
		return;
	}
	if (st == POOL_QUERY_ERROR)
		query_error(r, res, msg);
	else if (st == POOL_RESULT_TOO_LARGE)
		query_too_large(r);
	else
		request_error(r, query_error_for(st), "%s",
			      query_status_message(st, msg));
}

void query_cancel(struct request *r)
{
	struct query_state *qs = query_state(r);

	if (qs->pc) {
		pool_abandon(qs->pc);
		qs->pc = NULL;
	} else {
		pool_cancel(&qs->waiter);
	}
}

/*
 * r's deadline passed while it ran alone: its pool wait is cancelled, or
 * its query and connection (pool_abandon), and it is answered `timeout`.
 * A write answered `timeout` may or may not have been committed.
 */
static void query_expire(struct request *r)
{
	query_cancel(r);
	request_error(r, E_TIMEOUT, "no answer from the database within "
				    "[server] request_timeout");
}
