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

#include "clock.h"
#include "deadline.h"
#include "log.h"
#include "proto.h"
#include "store.h"
#include "topology.h"

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
	S_ADD_BATCH,
	S_RECENT_BATCH,
	S_EXPORT_ALL,
	S_EXPORT_PROVIDER,
	S_IMPORT,
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
	/* Group commit: many add_message rows in one statement, one commit.
	 * The arrays travel in binary (no quoting of any kind); rows come
	 * back in the order of the arrays. */
	[S_ADD_BATCH] = {"convd_add_batch",
			 "INSERT INTO " HISTORY
			 " (user_id, platform, model_provider, role, content)"
			 " SELECT * FROM unnest($1::text[], $2::text[],"
			 " $3::text[], $4::text[], $5::text[])"
			 " RETURNING id, created_at"},
	/*
	 * Group reads: each user's newest rows, tagged with the request's
	 * place in the arrays.  The arrays are read through a sub-select the
	 * planner may not flatten (OFFSET 0), so that it cannot see how long
	 * they are: otherwise each batch's custom plan (the arrays as
	 * constants, their length known) looks cheaper than the generic one
	 * (100 rows assumed) and PostgreSQL plans every batch anew, 14% of
	 * its work per history read.  This way the generic plan, made once
	 * per connection, wins after five executions (test_efficiency.py
	 * counts the plans with pg_stat_statements).
	 */
	[S_RECENT_BATCH] = {"convd_recent_batch",
			    "SELECT u.ord, h.id, h.role, h.content,"
			    " h.created_at"
			    " FROM (SELECT $1::text[], $2::text[], $3::text[],"
			    " $4::int8[] OFFSET 0) AS p(a, b, c, d)"
			    " CROSS JOIN LATERAL unnest(p.a, p.b, p.c, p.d)"
			    " WITH ORDINALITY"
			    " AS u(user_id, platform, provider, lim, ord)"
			    " CROSS JOIN LATERAL (SELECT id, role, content,"
			    " created_at FROM " HISTORY
			    " WHERE user_id = u.user_id"
			    " AND platform = u.platform"
			    " AND model_provider = u.provider"
			    " ORDER BY created_at DESC, id DESC LIMIT u.lim) h"},
	/*
	 * export_history: one page in id order, after the client's last id.
	 * "id + 0" keeps the primary key out of every plan: otherwise, once
	 * the plan is generic (after five runs on a connection), PostgreSQL
	 * may walk the whole primary key in id order and filter on the user
	 * (seconds on millions of rows, for a user with a few of them).  Only
	 * the (user_id, platform, ...) index can serve these statements, and
	 * a page costs the user's own rows, never the table's
	 * (test_faults.py checks the generic plans with auto_explain).
	 */
	[S_EXPORT_ALL] = {"convd_export_all",
			  "SELECT id, role, content, created_at, model_provider"
			  " FROM " HISTORY
			  " WHERE user_id = $1 AND platform = $2 AND id + 0 > $3"
			  " ORDER BY id + 0 LIMIT $4"},
	[S_EXPORT_PROVIDER] = {"convd_export_provider",
			       "SELECT id, role, content, created_at,"
			       " model_provider FROM " HISTORY
			       " WHERE user_id = $1 AND platform = $2"
			       " AND model_provider = $3 AND id + 0 > $4"
			       " ORDER BY id + 0 LIMIT $5"},
	/* import_message: $6 is microseconds since the Unix epoch (whole
	 * seconds through to_timestamp, exact in float8, then the rest).  A
	 * row equal in every column but id is not stored twice: its id comes
	 * back with imported = false. */
	[S_IMPORT] = {"convd_import",
		      "WITH t AS (SELECT to_timestamp($6::int8 / 1000000)"
		      " + ($6::int8 % 1000000)::float8"
		      " * interval '1 microsecond' AS at),"
		      " old AS (SELECT h.id FROM " HISTORY " h, t"
		      " WHERE h.user_id = $1 AND h.platform = $2"
		      " AND h.model_provider = $3 AND h.created_at = t.at"
		      " AND h.role = $4 AND h.content = $5"
		      " ORDER BY h.id LIMIT 1),"
		      " new AS (INSERT INTO " HISTORY
		      " (user_id, platform, model_provider, role, content,"
		      " created_at) SELECT $1, $2, $3, $4, $5, t.at FROM t"
		      " WHERE NOT EXISTS (SELECT 1 FROM old) RETURNING id)"
		      " SELECT id, true FROM new"
		      " UNION ALL SELECT id, false FROM old"},
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

static bool store_bool(const PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) && PQgetlength(res, row, col) == 1 &&
	       PQgetvalue(res, row, col)[0] != 0;
}


/* ---- result packers, one per method ------------------------------------------ */

/* add_message's answer {id, created_at} from row i (id, created_at). */
static int pack_add_row(msgpack_packer *pk, const PGresult *res, int i)
{
	if (msgpack_pack_map(pk, 2) < 0 || proto_pack_cstr(pk, "id") < 0 ||
	    msgpack_pack_int64(pk, store_int8(res, i, 0)) < 0 ||
	    proto_pack_cstr(pk, "created_at") < 0 ||
	    proto_pack_timestamp(pk, store_time(res, i, 1)) < 0)
		return -1;
	return 0;
}

static int pack_add(msgpack_packer *pk, const PGresult *res)
{
	return pack_add_row(pk, res, 0);
}

/* One message row as {id, role, content, created_at, provider}: the
 * columns id, role, content, created_at from column c, then the provider:
 * the column after them, or `provider` when the query filtered on it (a
 * column PostgreSQL need not send 20 times per request). */
static int pack_message_row(msgpack_packer *pk, const PGresult *res, int i,
			    int c, const struct strview *provider)
{
	if (msgpack_pack_map(pk, 5) < 0 || proto_pack_cstr(pk, "id") < 0 ||
	    msgpack_pack_int64(pk, store_int8(res, i, c)) < 0 ||
	    proto_pack_cstr(pk, "role") < 0 ||
	    store_pack_text(pk, res, i, c + 1) < 0 ||
	    proto_pack_cstr(pk, "content") < 0 ||
	    store_pack_text(pk, res, i, c + 2) < 0 ||
	    proto_pack_cstr(pk, "created_at") < 0 ||
	    proto_pack_timestamp(pk, store_time(res, i, c + 3)) < 0 ||
	    proto_pack_cstr(pk, "provider") < 0 ||
	    (provider ? proto_pack_str(pk, provider->p, provider->len)
		      : store_pack_text(pk, res, i, c + 4)) < 0)
		return -1;
	return 0;
}

/* The query returns newest first; the answer is oldest first. */
static int pack_recent(msgpack_packer *pk, const PGresult *res)
{
	int n = PQntuples(res);

	if (msgpack_pack_array(pk, (size_t)n) < 0)
		return -1;
	for (int i = n - 1; i >= 0; i--)
		if (pack_message_row(pk, res, i, 0, NULL) < 0)
			return -1;
	return 0;
}

/* export_history: the rows in the query's order (ascending id). */
static int pack_export(msgpack_packer *pk, const PGresult *res)
{
	int n = PQntuples(res);

	if (msgpack_pack_array(pk, (size_t)n) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (pack_message_row(pk, res, i, 0, NULL) < 0)
			return -1;
	return 0;
}

static int pack_import(msgpack_packer *pk, const PGresult *res)
{
	if (msgpack_pack_map(pk, 2) < 0 || proto_pack_cstr(pk, "id") < 0 ||
	    msgpack_pack_int64(pk, store_int8(res, 0, 0)) < 0 ||
	    proto_pack_cstr(pk, "imported") < 0 ||
	    (store_bool(res, 0, 1) ? msgpack_pack_true(pk)
				   : msgpack_pack_false(pk)) < 0)
		return -1;
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
	[S_THREAD_DELETE] = {0, false}, [S_ADD_BATCH] = {2, false},
	[S_RECENT_BATCH] = {5, false},
	[S_EXPORT_ALL] = {5, false},  [S_EXPORT_PROVIDER] = {5, false},
	[S_IMPORT] = {2, true},
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
	case M_EXPORT_HISTORY: /* user_id provider? after_id limit platform */
		/* integer arguments arrive as text (server.c: r->ints) */
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 4);
		if (r->args.v[1].present) {
			call->stmt = S_EXPORT_PROVIDER;
			call->nparams = 5;
			call->values[2] = arg(r, 1);
			call->values[3] = arg(r, 2);
			call->values[4] = arg(r, 3);
		} else {
			call->stmt = S_EXPORT_ALL;
			call->nparams = 4;
			call->values[2] = arg(r, 2);
			call->values[3] = arg(r, 3);
		}
		call->pack = pack_export;
		return 0;
	case M_IMPORT_MESSAGES: /* user_id provider role content created_at
				   platform */
		call->stmt = S_IMPORT;
		call->nparams = 6;
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 5);
		call->values[2] = arg(r, 1);
		call->values[3] = arg(r, 2);
		call->values[4] = arg(r, 3);
		call->values[5] = arg(r, 4);
		call->pack = pack_import;
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
	case POOL_NOT_DURABLE:
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

/* The rows passed max_output_bytes as they were read (pool.h). */
static void store_too_large(struct request *r)
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
	else if (st == POOL_RESULT_TOO_LARGE)
		store_too_large(r);
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
	pool_set_result_limit(pc, request_max_output());
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

/* ---- batching: group commit and group reads -------------------------------- */

/*
 * Concurrent requests for the same method are coalesced.  They queue in
 * their method's batcher; each time a batch slot and a connection are
 * free, everything queued (up to max_rows rows / BATCH_MAX_BYTES bytes)
 * goes out as ONE statement whose parameters are arrays (in binary: no
 * quoting of any kind), one round trip, and for writes one commit.
 * A request that arrives while nothing is in flight goes out alone at
 * once: nobody is delayed to make a batch, and batches grow only with load.
 *
 * - add_message: INSERT ... SELECT FROM unnest(...) RETURNING, rows back
 *   in array order; each client is answered only after the commit.
 * - get_recent_conversations: unnest(...) WITH ORDINALITY CROSS JOIN
 *   LATERAL (the single-user query), rows tagged with their request.
 *
 * If a batch fails with a query error, its requests are retried one by one
 * with the single-request statements, so a bad row never fails its
 * neighbours.  If the connection is lost, the outcome of a write batch is
 * unknown and each of its requests gets `unavailable` (none was
 * acknowledged).
 */
#define BATCH_MAX_BYTES (8u << 20)
#define BATCH_MAX_PARAMS 5
#define TEXT_OID 25
#define INT8_OID 20

struct batch;

struct batcher {
	const char *what;
	enum store_stmt stmt;
	int nparams;
	int max_rows;
	int max_batches;
	/* the parameters: one binary array per column */
	const int *cols;		/* argument index per column, or -1 */
	int (*deliver)(struct batch *b, const PGresult *res);
	struct request *head, *tail;	/* queued, not yet in a batch */
	int queued;
	int batches;			/* in flight (acquiring or running) */
	bool acquiring;			/* one batch waits for a connection */
	struct event *timer;		/* the oldest queued request's deadline */
};

struct batch {
	struct batcher *bt;
	struct request *head;		/* its requests, in order */
	int n;
	struct pool_conn *pc;		/* while its query runs */
	struct pool_waiter waiter;
	char *buf;			/* the binary arrays */
};

static void batch_flush(struct batcher *bt);
static void batch_arm(struct batcher *bt);
static void store_run(struct request *r, struct pool_conn *pc);
static void store_on_acquire(void *arg, struct pool_conn *pc,
			     enum pool_status st, const char *msg);

static void put_be32(char *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put_be64(char *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

/* add_message columns: user_id, platform, provider, role, content */
static const int add_cols[5] = {0, 4, 1, 2, 3};
/* get_recent columns: user_id, platform, provider, limit (int8) */
static const int recent_cols[4] = {0, 3, 1, -2};

/* Builds one binary array per column (text, or int8 for the limit). */
static int batch_build(struct batch *b, const char *vals[], int lens[])
{
	const struct batcher *bt = b->bt;
	size_t total = 0, off = 0;

	for (int c = 0; c < bt->nparams; c++) {
		size_t sz = 20;

		for (struct request *r = b->head; r; r = r->next)
			sz += 4 + (bt->cols[c] < 0 ? 8 :
						    r->args.v[bt->cols[c]].s.len);
		if (sz > INT32_MAX)
			return -1;
		lens[c] = (int)sz;
		total += sz;
	}
	b->buf = malloc(total);
	if (!b->buf)
		return -1;
	for (int c = 0; c < bt->nparams; c++) {
		char *p = b->buf + off;
		int col = bt->cols[c];

		vals[c] = p;
		put_be32(p, 1);				/* dimensions */
		put_be32(p + 4, 0);			/* no NULLs */
		put_be32(p + 8, col < 0 ? INT8_OID : TEXT_OID);
		put_be32(p + 12, (uint32_t)b->n);	/* length */
		put_be32(p + 16, 1);			/* lower bound */
		p += 20;
		for (struct request *r = b->head; r; r = r->next) {
			if (col < 0) {
				/* the limit counts turns: two rows each */
				put_be32(p, 8);
				put_be64(p + 4, (uint64_t)r->args.v[-col].i * 2);
				p += 12;
				continue;
			}
			const struct strview *v = &r->args.v[col].s;

			put_be32(p, (uint32_t)v->len);
			memcpy(p + 4, v->p, v->len);
			p += 4 + v->len;
		}
		off += (size_t)lens[c];
	}
	return 0;
}

static void batch_free(struct batch *b)
{
	b->bt->batches--;
	free(b->buf);
	free(b);
}

/* Answers every request of a list with the same error. */
static void batch_fail(struct request *r, enum rpc_error e, const char *msg)
{
	struct request *next;

	for (; r; r = next) {
		next = r->next;
		r->next = NULL;
		request_error(r, e, "%s", msg);
	}
}

/* The batch failed as a whole: each request again, alone. */
static void batch_retry_alone(struct batch *b)
{
	struct request *r = b->head, *next;

	log_warn("%s: a batch of %d failed; retrying each alone", b->bt->what,
		 b->n);
	for (; r; r = next) {
		struct pool_conn *pc;
		enum pool_status st;
		const char *msg;

		next = r->next;
		r->next = NULL;
		r->handler_data = NULL;		/* alone now */
		switch (pool_acquire(&r->waiter, store_on_acquire, r, &pc, &st,
				     &msg)) {
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
}

static void answer_add(struct request *r, const PGresult *res, int i)
{
	if (pack_add_row(request_result(r), res, i) < 0)
		request_abort(r, "cannot pack the result");
	else
		request_finish(r);
}

static int deliver_add(struct batch *b, const PGresult *res)
{
	struct request *r, *next;
	int i = 0;

	if (PQnfields(res) != 2 || PQntuples(res) != b->n)
		return -1;
	for (r = b->head; r; r = next, i++) {
		next = r->next;
		r->next = NULL;
		answer_add(r, res, i);
	}
	return 0;
}

/* Row indexes of one request, sorted oldest first (created_at, id). */
struct recent_sort {
	const PGresult *res;
};

static const PGresult *recent_sort_res;

static int cmp_recent_rows(const void *x, const void *y)
{
	int a = *(const int *)x, c = *(const int *)y;
	usec_t ta = store_time(recent_sort_res, a, 4);
	usec_t tc = store_time(recent_sort_res, c, 4);

	if (ta != tc)
		return ta < tc ? -1 : 1;
	int64_t ia = store_int8(recent_sort_res, a, 1);
	int64_t ic = store_int8(recent_sort_res, c, 1);

	return ia < ic ? -1 : ia > ic;
}

/* Columns: ord, id, role, content, created_at; the provider is the
 * request's own (the query filters on it). */
static int deliver_recent(struct batch *b, const PGresult *res)
{
	int nrows = PQntuples(res);
	int *rows, *start, *count;
	struct request *r, *next;
	int k = 0;

	if (PQnfields(res) != 5)
		return -1;
	rows = malloc(sizeof(int) * ((size_t)nrows + 2 * (size_t)b->n + 1));
	if (!rows)
		return -1;
	start = rows + nrows;
	count = start + b->n;
	memset(count, 0, sizeof(int) * (size_t)b->n);
	for (int i = 0; i < nrows; i++) {
		int64_t ord = store_int8(res, i, 0);

		if (ord < 1 || ord > b->n) {
			free(rows);
			return -1;
		}
		count[ord - 1]++;
	}
	for (int j = 0, acc = 0; j < b->n; j++) {
		start[j] = acc;
		acc += count[j];
		count[j] = 0;
	}
	for (int i = 0; i < nrows; i++) {
		int j = (int)store_int8(res, i, 0) - 1;

		rows[start[j] + count[j]++] = i;
	}
	recent_sort_res = res;
	for (r = b->head; r; r = next, k++) {
		msgpack_packer *pk;
		int *mine = rows + start[k];
		int n = count[k], failed = 0;

		next = r->next;
		r->next = NULL;
		qsort(mine, (size_t)n, sizeof(int), cmp_recent_rows);
		pk = request_result(r);
		failed |= msgpack_pack_array(pk, (size_t)n) < 0;
		for (int i = 0; i < n && !failed; i++)
			failed |= pack_message_row(pk, res, mine[i], 1,
						    &r->args.v[1].s) < 0;
		if (failed)
			request_abort(r, "cannot pack the result");
		else
			request_finish(r);
	}
	free(rows);
	return 0;
}

/*
 * Batches in flight per method.  Writes want few, large batches: each is
 * one commit (one WAL flush), so two in flight (one committing, one
 * filling) is best; four cost a fifth of the throughput on two cores.
 * Reads commit nothing and each user's rows are an index scan of their
 * own, so they want PostgreSQL busy on every core while convd packs the
 * answers of the last batch: four in flight measured 12% faster than two
 * (BENCHMARKS.md).
 */
static struct batcher batch_add = {
	.what = "add_message", .stmt = S_ADD_BATCH, .nparams = 5,
	.max_rows = 512, .max_batches = 2, .cols = add_cols,
	.deliver = deliver_add,
};

static struct batcher batch_recent = {
	.what = "get_recent_conversations", .stmt = S_RECENT_BATCH,
	.nparams = 4, .max_rows = 64, .max_batches = 4, .cols = recent_cols,
	.deliver = deliver_recent,
};

static void batch_on_result(void *arg, struct pool_conn *pc,
			    enum pool_status st, const PGresult *res,
			    const char *msg)
{
	struct batch *b = arg;
	struct batcher *bt = b->bt;
	struct request *head = b->head;
	const char *sqlstate =
		res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	pool_release(pc);
	b->head = NULL;
	b->pc = NULL;
	if (st == POOL_OK) {
		if (bt->deliver((struct batch *)&(struct batch){.bt = bt,
								 .head = head,
								 .n = b->n},
				res) < 0) {
			log_error("%s: a batch of %d got an unexpected result "
				  "(%d columns, %d rows)",
				  bt->what, b->n, PQnfields(res),
				  PQntuples(res));
			batch_fail(head, E_INTERNAL, "unexpected result");
		}
	} else if (st == POOL_QUERY_ERROR && b->n > 1 && sqlstate &&
		   strcmp(sqlstate, "57014") == 0) {
		/* not retried after a statement timeout: each request would
		 * wait as long again */
		log_error("%s: a batch of %d took longer than "
			  "statement_timeout", bt->what, b->n);
		batch_fail(head, E_TIMEOUT, "the query took longer than "
					    "[database] statement_timeout");
	} else if ((st == POOL_QUERY_ERROR || st == POOL_RESULT_TOO_LARGE) &&
		   b->n > 1) {
		b->head = head;
		batch_retry_alone(b);
	} else if (st == POOL_RESULT_TOO_LARGE) {
		store_too_large(head);
	} else if (st == POOL_QUERY_ERROR) {
		store_query_failed(head, res, msg);
	} else {
		batch_fail(head, store_error_for(st),
			   st == POOL_UNAVAILABLE ?
				   "database unavailable (connection lost "
				   "during the query)" :
				   msg);
	}
	batch_free(b);
	batch_flush(bt);
}

static void batch_send(struct batch *b, struct pool_conn *pc)
{
	static const int fmts[BATCH_MAX_PARAMS] = {1, 1, 1, 1, 1};
	struct batcher *bt = b->bt;
	const char *vals[BATCH_MAX_PARAMS];
	int lens[BATCH_MAX_PARAMS];
	struct request *r;
	size_t bytes = 0;

	/* take what is queued now */
	b->head = bt->head;
	for (r = bt->head; r; r = r->next) {
		b->n++;
		bytes += r->args.v[0].s.len + (bt == &batch_add ?
						       r->args.v[3].s.len :
						       0);
		if (b->n == bt->max_rows || bytes >= BATCH_MAX_BYTES ||
		    !r->next) {
			bt->head = r->next;
			if (!bt->head)
				bt->tail = NULL;
			r->next = NULL;
			break;
		}
	}
	bt->queued -= b->n;
	batch_arm(bt);
	if (b->n == 0) {
		pool_release(pc);
		batch_free(b);
		return;
	}
	if (batch_build(b, vals, lens) < 0) {
		pool_release(pc);
		batch_fail(b->head, E_INTERNAL, "out of memory");
		batch_free(b);
		return;
	}
	for (r = b->head; r; r = r->next)
		r->handler_data = b;	/* running: store_expire */
	b->pc = pc;
	/* the whole batch within one answer's bound: a batch over it is
	 * retried request by request, each within its own */
	pool_set_result_limit(pc, request_max_output());
	if (pool_exec(pc, store_statements[bt->stmt].name, NULL, bt->nparams,
		      vals, lens, fmts, 1, batch_on_result, b) < 0) {
		b->pc = NULL;
		pool_release(pc);
		batch_fail(b->head, E_UNAVAILABLE,
			   "database unavailable (cannot send the query)");
		batch_free(b);
		batch_flush(bt);
	}
}

static void batch_fail_due(struct batcher *bt);

static void batch_on_acquire(void *arg, struct pool_conn *pc,
			     enum pool_status st, const char *msg)
{
	struct batch *b = arg;
	struct batcher *bt = b->bt;

	bt->acquiring = false;
	if (st == POOL_TIMEOUT) {
		/* The batch waited the whole pool timeout: the requests queued
		 * as long as it fail; younger ones keep their own deadline and
		 * wait for a connection in a batch of their own. */
		batch_free(b);
		batch_fail_due(bt);
		batch_arm(bt);
		batch_flush(bt);
		return;
	}
	if (st != POOL_OK) {
		/* the database is down (or convd stops): everything queued
		 * shares the fate, at once */
		struct request *head = bt->head;

		bt->head = bt->tail = NULL;
		bt->queued = 0;
		batch_free(b);
		batch_fail(head, store_error_for(st), msg);
		return;
	}
	batch_send(b, pc);
}

/* Starts a batch if requests are queued and a batch slot is free; while
 * one batch waits for a connection, requests queued meanwhile join it
 * rather than start batches (and pool waiters) of their own. */
static void batch_flush(struct batcher *bt)
{
	while (bt->queued > 0 && bt->batches < bt->max_batches &&
	       !bt->acquiring) {
		struct batch *b = calloc(1, sizeof(*b));
		struct pool_conn *pc;
		enum pool_status st;
		const char *msg;

		if (!b) {
			struct request *head = bt->head;

			bt->head = bt->tail = NULL;
			bt->queued = 0;
			batch_fail(head, E_INTERNAL, "out of memory");
			return;
		}
		b->bt = bt;
		bt->batches++;
		switch (pool_acquire(&b->waiter, batch_on_acquire, b, &pc, &st,
				     &msg)) {
		case POOL_ACQ_READY:
			batch_send(b, pc);
			break;
		case POOL_ACQ_QUEUED:
			/* requests queued meanwhile join this batch */
			bt->acquiring = true;
			return;
		case POOL_ACQ_FAILED:
			batch_on_acquire(b, NULL, st, msg);
			return;
		}
	}
}

/*
 * Requests wait in the batcher while its batches are all in flight: they
 * get the same deadline as the pool's own queue (started + [pool]
 * timeout), and `timeout` when it passes, like any request that found no
 * connection.  The queue is FIFO, so the head is always due first.
 */
static void batch_arm(struct batcher *bt)
{
	struct timeval tv;
	usec_t d;

	if (!bt->timer)
		return;
	if (!bt->head) {
		evtimer_del(bt->timer);
		return;
	}
	d = bt->head->started + pool_wait_timeout() - clock_now();
	tv = clock_tv(d > 0 ? d : 0);
	evtimer_add(bt->timer, &tv);
}

/* Fails the queued requests whose deadline has passed (the oldest first). */
static void batch_fail_due(struct batcher *bt)
{
	usec_t now = clock_now(), limit = pool_wait_timeout();

	while (bt->head && bt->head->started + limit <= now) {
		struct request *r = bt->head;

		bt->head = r->next;
		if (!bt->head)
			bt->tail = NULL;
		bt->queued--;
		r->next = NULL;
		request_error(r, E_TIMEOUT,
			      "no database connection became free within the "
			      "pool timeout");
	}
}

static void batch_expire(evutil_socket_t fd, short what, void *arg)
{
	struct batcher *bt = arg;

	(void)fd;
	(void)what;
	batch_fail_due(bt);
	batch_arm(bt);
}

static void batch_enqueue(struct batcher *bt, struct request *r)
{
	bool was_empty = bt->head == NULL;

	r->next = NULL;
	r->handler_data = bt;		/* queued: store_expire */
	if (bt->tail)
		bt->tail->next = r;
	else
		bt->head = r;
	bt->tail = r;
	bt->queued++;
	batch_flush(bt);
	if (bt->head && (was_empty || !evtimer_pending(bt->timer, NULL)))
		batch_arm(bt);
}

static struct batcher *const batchers[] = {&batch_add, &batch_recent};

int store_setup(struct event_base *base)
{
	for (size_t i = 0; i < ARRAY_LEN(batchers); i++) {
		batchers[i]->timer = evtimer_new(base, batch_expire, batchers[i]);
		if (!batchers[i]->timer)
			return -1;
	}
	return 0;
}

/* Batches in flight end with the pool (pool_cleanup fails their queries);
 * what is still queued is answered here. */
void store_cleanup(void)
{
	for (size_t i = 0; i < ARRAY_LEN(batchers); i++) {
		struct batcher *bt = batchers[i];
		struct request *head = bt->head;

		bt->head = bt->tail = NULL;
		bt->queued = 0;
		if (bt->timer)
			event_free(bt->timer);
		bt->timer = NULL;
		batch_fail(head, E_UNAVAILABLE, "convd is shutting down");
	}
}

/*
 * A request's deadline passed (deadline.h): it is answered `timeout`, and
 * what it waited for is given up.  Queued in a batcher: it leaves the
 * queue.  In a running batch: the batch's query is cancelled and its
 * connection dropped, and every request of the batch is answered
 * `timeout` (one statement: they share its fate; a batch ends at the
 * deadline of its oldest request).  Alone: its pool wait is cancelled, or
 * its query and connection as for a batch.  A write answered `timeout`
 * may or may not have been committed.
 */
static void store_expire(struct request *r)
{
	static const char why[] = "no answer from the database within "
				  "[server] request_timeout";
	void *h = r->handler_data;

	if (h == &batch_add || h == &batch_recent) {
		struct batcher *bt = h;
		struct request **pp, *prev = NULL;

		for (pp = &bt->head; *pp && *pp != r; pp = &(*pp)->next)
			prev = *pp;
		if (*pp) {
			*pp = r->next;
			if (bt->tail == r)
				bt->tail = prev;
			bt->queued--;
		}
		r->next = NULL;
		batch_arm(bt);
		request_error(r, E_TIMEOUT, "%s", why);
		return;
	}
	if (h) {
		struct batch *b = h;
		struct batcher *bt = b->bt;
		struct request *head = b->head;

		if (b->pc)
			pool_abandon(b->pc);
		b->pc = NULL;
		b->head = NULL;
		batch_free(b);
		batch_fail(head, E_TIMEOUT, why);
		batch_flush(bt);
		return;
	}
	if (r->pc) {
		pool_abandon(r->pc);
		r->pc = NULL;
	} else {
		pool_cancel(&r->waiter);
	}
	request_error(r, E_TIMEOUT, "%s", why);
}

void store_dispatch(struct request *r)
{
	struct pool_conn *pc;
	enum pool_status st;
	const char *msg;

	deadline_watch(r, store_expire);

	if (r->spec->id == M_ADD_MESSAGE) {
		batch_enqueue(&batch_add, r);
		return;
	}
	if (r->spec->id == M_GET_RECENT) {
		batch_enqueue(&batch_recent, r);
		return;
	}
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
