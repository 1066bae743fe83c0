/*
 * store.c - the conversation store: each database method's SQL, how its
 * arguments become parameters, and how its result is packed.
 *
 * Every statement is prepared once per connection (pool set-up) and run
 * with PQsendQueryPrepared: values are always parameters, never SQL text.
 * Results come back in binary format: ids and counts as int8, times as
 * timestamptz microseconds since 2000-01-01, text as raw bytes.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "store.h"

/* PostgreSQL's epoch (2000-01-01) in Unix microseconds. */
#define PG_EPOCH_USEC 946684800000000LL

enum store_stmt {
	S_ADD,
	S_RECENT,
	S_CLEAR,
	S_COUNT_ALL,
	S_COUNT_PROVIDER,
	S_USER_STATS,
	S_THREAD_GET,
	S_THREAD_SAVE,
	S_THREAD_DELETE,
	S_COUNT_
};

#define HISTORY "simple_conversation_history"

const struct pool_statement store_statements[] = {
	[S_ADD] = {"convd_add",
		   "INSERT INTO " HISTORY
		   " (user_id, platform, model_provider, role, content)"
		   " VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at"},
	[S_RECENT] = {"convd_recent",
		      "SELECT id, role, content, created_at, model_provider"
		      " FROM " HISTORY
		      " WHERE user_id = $1 AND platform = $2"
		      " AND model_provider = $3"
		      " ORDER BY created_at DESC, id DESC LIMIT $4"},
	[S_CLEAR] = {"convd_clear",
		     "DELETE FROM " HISTORY " WHERE user_id = $1"
		     " AND platform = $2 AND model_provider = $3"},
	[S_COUNT_ALL] = {"convd_count_all",
			 "SELECT count(*) FROM " HISTORY
			 " WHERE user_id = $1 AND platform = $2"},
	[S_COUNT_PROVIDER] = {"convd_count_provider",
			      "SELECT count(*) FROM " HISTORY
			      " WHERE user_id = $1 AND platform = $2"
			      " AND model_provider = $3"},
	[S_USER_STATS] = {"convd_user_stats",
			  "SELECT model_provider, count(*), max(created_at)"
			  " FROM " HISTORY
			  " WHERE user_id = $1 AND platform = $2"
			  " GROUP BY model_provider ORDER BY model_provider"},
	[S_THREAD_GET] = {"convd_thread_get",
			  "SELECT thread_id FROM user_thread_table"
			  " WHERE user_id = $1 AND platform = $2"},
	[S_THREAD_SAVE] = {"convd_thread_save",
			   "INSERT INTO user_thread_table"
			   " (user_id, platform, thread_id) VALUES ($1, $2, $3)"
			   " ON CONFLICT (user_id, platform) DO UPDATE"
			   " SET thread_id = EXCLUDED.thread_id,"
			   " created_at = now()"},
	[S_THREAD_DELETE] = {"convd_thread_delete",
			     "DELETE FROM user_thread_table"
			     " WHERE user_id = $1 AND platform = $2"},
};
const size_t store_nstatements = S_COUNT_;

/* ---- reading binary results ------------------------------------------------ */

static int64_t store_int8(const PGresult *res, int row, int col)
{
	uint64_t v;

	if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
		return 0;
	memcpy(&v, PQgetvalue(res, row, col), 8);
	return (int64_t)be64toh(v);
}

static usec_t store_time(const PGresult *res, int row, int col)
{
	return store_int8(res, row, col) + PG_EPOCH_USEC;
}

static int store_pack_text(msgpack_packer *pk, const PGresult *res, int row,
			   int col)
{
	if (PQgetisnull(res, row, col))
		return msgpack_pack_nil(pk);
	return proto_pack_str(pk, PQgetvalue(res, row, col),
			      (size_t)PQgetlength(res, row, col));
}


/* ---- result packers, one per method ------------------------------------------ */

static int pack_add(msgpack_packer *pk, const PGresult *res)
{
	if (msgpack_pack_map(pk, 2) < 0 || proto_pack_cstr(pk, "id") < 0 ||
	    msgpack_pack_int64(pk, store_int8(res, 0, 0)) < 0 ||
	    proto_pack_cstr(pk, "created_at") < 0 ||
	    proto_pack_timestamp(pk, store_time(res, 0, 1)) < 0)
		return -1;
	return 0;
}

/* The query returns newest first; the answer is oldest first. */
static int pack_recent(msgpack_packer *pk, const PGresult *res)
{
	int n = PQntuples(res);

	if (msgpack_pack_array(pk, (size_t)n) < 0)
		return -1;
	for (int i = n - 1; i >= 0; i--) {
		if (msgpack_pack_map(pk, 5) < 0 ||
		    proto_pack_cstr(pk, "id") < 0 ||
		    msgpack_pack_int64(pk, store_int8(res, i, 0)) < 0 ||
		    proto_pack_cstr(pk, "role") < 0 ||
		    store_pack_text(pk, res, i, 1) < 0 ||
		    proto_pack_cstr(pk, "content") < 0 ||
		    store_pack_text(pk, res, i, 2) < 0 ||
		    proto_pack_cstr(pk, "created_at") < 0 ||
		    proto_pack_timestamp(pk, store_time(res, i, 3)) < 0 ||
		    proto_pack_cstr(pk, "provider") < 0 ||
		    store_pack_text(pk, res, i, 4) < 0)
			return -1;
	}
	return 0;
}

static int pack_deleted(msgpack_packer *pk, const PGresult *res)
{
	uint64_t n = strtoull(PQcmdTuples((PGresult *)res), NULL, 10);

	if (msgpack_pack_map(pk, 1) < 0 || proto_pack_cstr(pk, "deleted") < 0 ||
	    msgpack_pack_uint64(pk, n) < 0)
		return -1;
	return 0;
}

static int pack_count(msgpack_packer *pk, const PGresult *res)
{
	return msgpack_pack_int64(pk, store_int8(res, 0, 0));
}

static int pack_user_stats(msgpack_packer *pk, const PGresult *res)
{
	int n = PQntuples(res);
	int64_t total = 0;

	for (int i = 0; i < n; i++)
		total += store_int8(res, i, 1);
	if (msgpack_pack_map(pk, 2) < 0 ||
	    proto_pack_cstr(pk, "total_messages") < 0 ||
	    msgpack_pack_int64(pk, total) < 0 ||
	    proto_pack_cstr(pk, "providers") < 0 ||
	    msgpack_pack_map(pk, (size_t)n) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (store_pack_text(pk, res, i, 0) < 0 ||
		    msgpack_pack_map(pk, 2) < 0 ||
		    proto_pack_cstr(pk, "message_count") < 0 ||
		    msgpack_pack_int64(pk, store_int8(res, i, 1)) < 0 ||
		    proto_pack_cstr(pk, "last_message_at") < 0 ||
		    proto_pack_timestamp(pk, store_time(res, i, 2)) < 0)
			return -1;
	}
	return 0;
}

static int pack_thread(msgpack_packer *pk, const PGresult *res)
{
	if (PQntuples(res) == 0)
		return msgpack_pack_nil(pk);
	return store_pack_text(pk, res, 0, 0);
}

static int pack_true(msgpack_packer *pk, const PGresult *res)
{
	(void)res;
	return msgpack_pack_true(pk);
}

/* ---- running a request ------------------------------------------------------ */

/* Result shapes: columns, and whether exactly one row must come back. */
static const struct {
	int nfields;
	bool one_row;
} store_shapes[S_COUNT_] = {
	[S_ADD] = {2, true},	      [S_RECENT] = {5, false},
	[S_CLEAR] = {0, false},	      [S_COUNT_ALL] = {1, true},
	[S_COUNT_PROVIDER] = {1, true}, [S_USER_STATS] = {3, false},
	[S_THREAD_GET] = {1, false},  [S_THREAD_SAVE] = {0, false},
	[S_THREAD_DELETE] = {0, false},
};

struct store_call {
	enum store_stmt stmt;
	int nparams;
	const char *values[6];
	int (*pack)(msgpack_packer *pk, const PGresult *res);
};

static const char *arg(const struct request *r, int i)
{
	return r->args.v[i].present ? r->args.v[i].s.p : NULL;
}

/*
 * Maps a request to its statement and parameters.  Argument positions
 * follow validate.c's specs (platform is always the last parameter).
 */
static int store_prepare_call(struct request *r, struct store_call *call)
{
	memset(call, 0, sizeof(*call));
	switch (r->spec->id) {
	case M_ADD_MESSAGE: /* user_id provider role content platform */
		call->stmt = S_ADD;
		call->nparams = 5;
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 4);
		call->values[2] = arg(r, 1);
		call->values[3] = arg(r, 2);
		call->values[4] = arg(r, 3);
		call->pack = pack_add;
		return 0;
	case M_GET_RECENT: /* user_id provider limit platform */
		/* a limit counts turns: two messages each */
		snprintf(r->ints[2], sizeof(r->ints[2]), "%lld",
			 (long long)r->args.v[2].i * 2);
		call->stmt = S_RECENT;
		call->nparams = 4;
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 3);
		call->values[2] = arg(r, 1);
		call->values[3] = r->ints[2];
		call->pack = pack_recent;
		return 0;
	case M_CLEAR_HISTORY: /* user_id provider platform */
		call->stmt = S_CLEAR;
		call->nparams = 3;
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 2);
		call->values[2] = arg(r, 1);
		call->pack = pack_deleted;
		return 0;
	case M_GET_COUNT: /* user_id provider? platform */
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 2);
		if (r->args.v[1].present) {
			call->stmt = S_COUNT_PROVIDER;
			call->nparams = 3;
			call->values[2] = arg(r, 1);
		} else {
			call->stmt = S_COUNT_ALL;
			call->nparams = 2;
		}
		call->pack = pack_count;
		return 0;
	case M_GET_USER_STATS: /* user_id platform */
		call->stmt = S_USER_STATS;
		call->nparams = 2;
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 1);
		call->pack = pack_user_stats;
		return 0;
	case M_GET_THREAD: /* user_id platform */
		call->stmt = S_THREAD_GET;
		call->nparams = 2;
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 1);
		call->pack = pack_thread;
		return 0;
	case M_SAVE_THREAD: /* user_id thread_id platform */
		call->stmt = S_THREAD_SAVE;
		call->nparams = 3;
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 2);
		call->values[2] = arg(r, 1);
		call->pack = pack_true;
		return 0;
	case M_DELETE_THREAD: /* user_id platform */
		call->stmt = S_THREAD_DELETE;
		call->nparams = 2;
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 1);
		call->pack = pack_deleted;
		return 0;
	default:
		return -1;
	}
}

static enum rpc_error store_error_for(enum pool_status st)
{
	switch (st) {
	case POOL_TIMEOUT:
		return E_TIMEOUT;
	case POOL_UNAVAILABLE:
	case POOL_SHUTDOWN:
		return E_UNAVAILABLE;
	default:
		return E_INTERNAL;
	}
}

/* A query error: the client learns the class, the log gets the detail. */
static void store_query_failed(struct request *r, const PGresult *res,
			       const char *msg)
{
	const char *sqlstate =
		res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	log_error("%s: database error %s: %s", r->spec->name,
		  sqlstate ? sqlstate : "?", msg ? msg : "?");
	/* 57014 query_canceled (statement_timeout) */
	if (sqlstate && strcmp(sqlstate, "57014") == 0) {
		request_error(r, E_TIMEOUT, "the query took longer than "
					    "[database] statement_timeout");
		return;
	}
	/* class 08 connection exception, 57P admin shutdown / crash */
	if (sqlstate && (strncmp(sqlstate, "08", 2) == 0 ||
			 strncmp(sqlstate, "57P", 3) == 0)) {
		request_error(r, E_UNAVAILABLE, "database unavailable");
		return;
	}
	/* 42P01 undefined_table, 42703 undefined_column: schema missing */
	if (sqlstate && (strcmp(sqlstate, "42P01") == 0 ||
			 strcmp(sqlstate, "42703") == 0)) {
		request_error(r, E_UNAVAILABLE,
			      "the database schema is missing or outdated; "
			      "run 'convctl db setup'");
		return;
	}
	request_error(r, E_INTERNAL, "database error (SQLSTATE %s)",
		      sqlstate ? sqlstate : "unknown");
}

static void store_on_result(void *arg, struct pool_conn *pc,
			    enum pool_status st, const PGresult *res,
			    const char *msg)
{
	struct request *r = arg;
	struct store_call call;

	r->pc = NULL;
	if (st == POOL_OK) {
		pool_release(pc);
		if (store_prepare_call(r, &call) < 0 ||
		    PQnfields(res) != store_shapes[call.stmt].nfields ||
		    (store_shapes[call.stmt].one_row && PQntuples(res) != 1)) {
			log_error("%s: unexpected result shape (%d columns, %d "
				  "rows)",
				  r->spec->name, PQnfields(res), PQntuples(res));
			request_error(r, E_INTERNAL, "unexpected result");
			return;
		}
		if (call.pack(request_result(r), res) < 0) {
			request_abort(r, "cannot pack the result");
			return;
		}
		request_finish(r);
		return;
	}
	pool_release(pc);
	if (st == POOL_QUERY_ERROR)
		store_query_failed(r, res, msg);
	else
		request_error(r, store_error_for(st), "%s",
			      st == POOL_UNAVAILABLE ?
				      "database unavailable (connection lost "
				      "during the query)" :
				      msg);
}

static void store_run(struct request *r, struct pool_conn *pc)
{
	struct store_call call;

	if (store_prepare_call(r, &call) < 0) {
		pool_release(pc);
		request_error(r, E_INTERNAL, "not a store method");
		return;
	}
	r->pc = pc;
	if (pool_exec(pc, store_statements[call.stmt].name, NULL, call.nparams,
		      call.values, NULL, NULL, 1, store_on_result, r) < 0) {
		r->pc = NULL;
		pool_release(pc);
		request_error(r, E_UNAVAILABLE,
			      "database unavailable (cannot send the query)");
	}
}

static void store_on_acquire(void *arg, struct pool_conn *pc,
			     enum pool_status st, const char *msg)
{
	struct request *r = arg;

	if (st != POOL_OK) {
		request_error(r, store_error_for(st), "%s", msg);
		return;
	}
	store_run(r, pc);
}

void store_dispatch(struct request *r)
{
	struct pool_conn *pc;
	enum pool_status st;
	const char *msg;

	switch (pool_acquire(&r->waiter, store_on_acquire, r, &pc, &st, &msg)) {
	case POOL_ACQ_READY:
		store_run(r, pc);
		break;
	case POOL_ACQ_QUEUED:
		break;
	case POOL_ACQ_FAILED:
		request_error(r, store_error_for(st), "%s", msg);
		break;
	}
}
