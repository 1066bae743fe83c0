/*
 * query.h - one request answered by one statement: the database half of
 * most methods.
 *
 * A handler describes its statement once (struct query_def: the prepared
 * statement's name, the shape of its result, how the rows are packed) and
 * maps a request to it with a build function; query_run() does the rest:
 *
 * - watches the request's deadline ([server] request_timeout);
 * - acquires a pool connection (or waits in the pool's queue);
 * - builds the parameters (strings as text, integers as binary int8:
 *   never SQL text) when the connection is there, once per run;
 * - bounds the result by [server] max_output_bytes while it is read (or
 *   ends a page there: def->page);
 * - checks the result's shape (columns, one row), packs it with
 *   def->pack and answers the request;
 * - maps every failure to its error code: no connection within the pool
 *   timeout or the request timeout -> timeout, statement_timeout ->
 *   timeout, connection lost or a read-only server -> unavailable, the
 *   schema missing -> unavailable, anything else -> internal (the log gets
 *   the SQLSTATE and message; the client the class).
 *
 * A new method's handler file needs request.h, validate.h, proto.h and
 * this (with pgval.h: parameters and result readers):
 *
 *	static int pack_n(msgpack_packer *pk, const PGresult *res,
 *			  const struct request *r)
 *	{
 *		return msgpack_pack_int64(pk, pgval_int8(res, 0, 0));
 *	}
 *	static const struct query_def def_n = {
 *		.stmt = "convd_n", .nfields = 1, .one_row = true,
 *		.pack = pack_n,
 *	};
 *	static int build_n(const struct request *r, struct pgval_params *p,
 *			   const struct query_def **def)
 *	{
 *		pgval_param_arg(p, r, 0);	// user_id
 *		*def = &def_n;
 *		return 0;
 *	}
 *
 * with "convd_n" in a pool_statement table that convd.c hands the pool,
 * and convd.c calling query_register(M_N, build_n) (export the build
 * function, or one that switches over several methods).  Such a module
 * links without the pool: its unit tests call the build functions.
 */
#ifndef CONVD_QUERY_H
#define CONVD_QUERY_H

#include <libpq-fe.h>
#include <msgpack.h>

#include "common.h"
#include "pgval.h"
#include "pool.h"
#include "request.h"

/* Packs the result of r's statement (its shape already checked). */
typedef int (*query_pack_fn)(msgpack_packer *pk, const PGresult *res,
			     const struct request *r);

struct query_def {
	const char *stmt;	/* a prepared statement (struct pool_statement) */
	int nfields;		/* the result has these columns ... */
	bool one_row;		/* ... and exactly one row */
	bool page;		/* rows past max_output_bytes end the result
				 * (a page) instead of failing the request */
	/* A keyed write: when the argument key_arg is present and no row
	 * comes back, another transaction committed the key after the
	 * statement's snapshot: the statement runs again (a new snapshot
	 * sees that row), a few times at most. */
	bool keyed;
	int key_arg;
	/* Optional: an error instead of the result (set_state's conflict):
	 * fills msg and returns the code, or returns E_COUNT_. */
	enum rpc_error (*refuse)(const PGresult *res, char *msg, size_t len);
	query_pack_fn pack;
};

/* Maps r to its statement and parameters; -1: r is not one of its
 * methods (answered `internal`). */
typedef int (*query_build_fn)(const struct request *r,
			      struct pgval_params *p,
			      const struct query_def **def);

/* What query_run keeps in the request (request.h: holder space). */
struct query_state {
	struct pool_waiter waiter;
	struct pool_conn *pc;		/* while its statement runs */
	query_build_fn build;
	const struct query_def *def;	/* of the statement sent */
	void *owner;			/* batch.c: the batcher or batch that
					 * holds r; NULL: r runs alone */
	unsigned reruns;		/* def->keyed runs again */
};

_Static_assert(PGVAL_MAX_PARAMS == POOL_MAX_PARAMS,
	       "a statement's parameters: pgval.h's bound is the pool's");
_Static_assert(sizeof(struct query_state) <= REQUEST_HOLDER_SPACE,
	       "struct query_state must fit in a request's holder space");

static inline struct query_state *query_state(struct request *r)
{
	return (struct query_state *)(void *)r->holder.bytes;
}

/* Makes query_run(r, build) the handler of method m (request.h). */
void query_register(enum method_id m, query_build_fn build);

/* Runs r's statement (see above) and answers r. */
void query_run(struct request *r, query_build_fn build);

/*
 * For callers that acquire and send themselves (batch.c's retries):
 * query_send() builds r's statement (query_state(r)->build) and sends it
 * on pc with fn as its completion; -1 when it could not be sent (release
 * pc and answer r).  query_answer() then answers r from the outcome.
 */
CONVD_WUR int query_send(struct request *r, struct pool_conn *pc,
			 pool_exec_fn fn, void *arg);
void query_answer(struct request *r, enum pool_status st,
		  const PGresult *res, const char *msg);
/* Gives up what r waits for (its pool wait, or its query and connection)
 * without answering it. */
void query_cancel(struct request *r);

/* The error code for a pool status other than POOL_OK / QUERY_ERROR. */
enum rpc_error query_error_for(enum pool_status st);
/* What a client is told for that status (msg: the pool's). */
const char *query_status_message(enum pool_status st, const char *msg);

#endif
