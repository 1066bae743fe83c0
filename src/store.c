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
#include "order.h"
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
	S_ADD_BATCH_KEYS,
	S_RECENT_BATCH,
	S_EXPORT_ALL,
	S_EXPORT_PROVIDER,
	S_IMPORT,
	S_COUNT_
};

#define HISTORY "simple_conversation_history"
/* Idempotency keys: a second row with the same key for the user and
 * platform is not stored.  The plain layout's arbiter is the unique index
 * of migrations/5a1e0c2f7b90; the partitioned layout's (whose unique
 * indexes must include created_at) is the key table its insert trigger
 * fills, which skips the row as DO NOTHING does (dbpart.c).  Without a
 * conflict target the clause serves both. */
#define ON_KEY_CONFLICT " ON CONFLICT DO NOTHING"

const struct pool_statement store_statements[] = {
	/* One message; with a key ($6) already stored, the stored row with
	 * duplicate = true.  A row whose key another transaction committed
	 * after this statement's snapshot is neither inserted nor seen: no
	 * row comes back, and the statement runs again. */
	[S_ADD] = {"convd_add",
		   "WITH ins AS (INSERT INTO " HISTORY
		   " (user_id, platform, model_provider, role, content,"
		   " idempotency_key) VALUES ($1, $2, $3, $4, $5, $6)"
		   ON_KEY_CONFLICT " RETURNING id, created_at)"
		   " SELECT id, created_at, false FROM ins"
		   " UNION ALL SELECT id, created_at, true FROM " HISTORY
		   " WHERE user_id = $1 AND platform = $2"
		   " AND idempotency_key = $6"
		   " AND NOT EXISTS (SELECT 1 FROM ins)"},
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
	 * back in the order of the arrays, in the shape of the next one's
	 * (a batch without any key needs nothing more). */
	[S_ADD_BATCH] = {"convd_add_batch",
			 "INSERT INTO " HISTORY
			 " (user_id, platform, model_provider, role, content)"
			 " SELECT * FROM unnest($1::text[], $2::text[],"
			 " $3::text[], $4::text[], $5::text[])"
			 " RETURNING 0::int8, id, created_at, NULL::varchar,"
			 " NULL::varchar, NULL::varchar"},
	/* The same with idempotency keys ($6, NULL for none).  The rows
	 * stored come back first (ord 0), in the order of the arrays; with
	 * their key, user and platform if they have a key.  Then the rows
	 * already stored under a key of the batch, with the request's place
	 * in the arrays (ord).  A request with a key and no row is a
	 * duplicate of an earlier one in the batch, or of a row committed
	 * meanwhile (deliver_add). */
	[S_ADD_BATCH_KEYS] = {"convd_add_batch_keys",
			 "WITH u AS (SELECT * FROM unnest($1::text[],"
			 " $2::text[], $3::text[], $4::text[], $5::text[],"
			 " $6::text[]) WITH ORDINALITY"
			 " AS u(user_id, platform, provider, role, content,"
			 " ikey, ord)),"
			 " ins AS (INSERT INTO " HISTORY
			 " (user_id, platform, model_provider, role, content,"
			 " idempotency_key) SELECT user_id, platform,"
			 " provider, role, content, ikey FROM u"
			 ON_KEY_CONFLICT " RETURNING id, created_at,"
			 " idempotency_key,"
			 " CASE WHEN idempotency_key IS NOT NULL"
			 " THEN user_id END,"
			 " CASE WHEN idempotency_key IS NOT NULL"
			 " THEN platform END)"
			 " SELECT 0::int8, * FROM ins"
			 /* one probe of the key index per keyed row (LIMIT
			  * keeps the planner from a join over the table) */
			 " UNION ALL SELECT u.ord, h.id, h.created_at,"
			 " NULL, NULL, NULL FROM u CROSS JOIN LATERAL"
			 " (SELECT id, created_at FROM " HISTORY
			 " WHERE user_id = u.user_id AND platform = u.platform"
			 " AND idempotency_key = u.ikey LIMIT 1) h"
			 " WHERE u.ikey IS NOT NULL"},
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
			  "SELECT id, role, content, created_at, model_provider,"
			  " idempotency_key FROM " HISTORY
			  " WHERE user_id = $1 AND platform = $2 AND id + 0 > $3"
			  " ORDER BY id + 0 LIMIT $4"},
	[S_EXPORT_PROVIDER] = {"convd_export_provider",
			       "SELECT id, role, content, created_at,"
			       " model_provider, idempotency_key FROM " HISTORY
			       " WHERE user_id = $1 AND platform = $2"
			       " AND model_provider = $3 AND id + 0 > $4"
			       " ORDER BY id + 0 LIMIT $5"},
	/* import_message: $6 is microseconds since the Unix epoch (whole
	 * seconds through to_timestamp, exact in float8, then the rest).
	 * Without a key ($7), a row equal in every column but id is not
	 * stored twice: its id comes back with imported = false.  With a
	 * key, the row stored under the key comes back (imported = false,
	 * duplicate = true); as for add_message, no row at all means that
	 * another transaction committed the key meanwhile (run it again). */
	[S_IMPORT] = {"convd_import",
		      "WITH t AS (SELECT to_timestamp($6::int8 / 1000000)"
		      " + ($6::int8 % 1000000)::float8"
		      " * interval '1 microsecond' AS at),"
		      " old AS (SELECT h.id FROM " HISTORY " h, t"
		      " WHERE h.user_id = $1 AND h.platform = $2"
		      " AND (h.idempotency_key = $7::varchar"
		      " OR ($7::varchar IS NULL"
		      " AND h.model_provider = $3 AND h.created_at = t.at"
		      " AND h.role = $4 AND h.content = $5))"
		      " ORDER BY h.id LIMIT 1),"
		      " new AS (INSERT INTO " HISTORY
		      " (user_id, platform, model_provider, role, content,"
		      " created_at, idempotency_key)"
		      " SELECT $1, $2, $3, $4, $5, t.at, $7::varchar FROM t"
		      " WHERE NOT EXISTS (SELECT 1 FROM old)"
		      ON_KEY_CONFLICT " RETURNING id)"
		      " SELECT id, true, false FROM new"
		      " UNION ALL SELECT id, false, $7::varchar IS NOT NULL"
		      " FROM old"},
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

/* add_message's answer {id, created_at} from row i (id at column c,
 * created_at after it), with duplicate: true for a key already used. */
static int pack_add_row(msgpack_packer *pk, const PGresult *res, int i,
			int c, bool duplicate)
{
	if (msgpack_pack_map(pk, duplicate ? 3 : 2) < 0 ||
	    proto_pack_cstr(pk, "id") < 0 ||
	    msgpack_pack_int64(pk, store_int8(res, i, c)) < 0 ||
	    proto_pack_cstr(pk, "created_at") < 0 ||
	    proto_pack_timestamp(pk, store_time(res, i, c + 1)) < 0)
		return -1;
	if (duplicate && (proto_pack_cstr(pk, "duplicate") < 0 ||
			  msgpack_pack_true(pk) < 0))
		return -1;
	return 0;
}

static int pack_add(msgpack_packer *pk, const PGresult *res)
{
	return pack_add_row(pk, res, 0, 0, store_bool(res, 0, 2));
}

/* One message row as {id, role, content, created_at, provider}: the
 * columns id, role, content, created_at from column c, then the provider:
 * the column after them, or `provider` when the query filtered on it (a
 * column PostgreSQL need not send 20 times per request).  With key_col
 * >= 0 and a key in that column, idempotency_key too. */
static int pack_message_row(msgpack_packer *pk, const PGresult *res, int i,
			    int c, const struct strview *provider, int key_col)
{
	bool key = key_col >= 0 && !PQgetisnull(res, i, key_col);

	if (msgpack_pack_map(pk, key ? 6 : 5) < 0 ||
	    (key && (proto_pack_cstr(pk, "idempotency_key") < 0 ||
		     store_pack_text(pk, res, i, key_col) < 0)) ||
	    proto_pack_cstr(pk, "id") < 0 ||
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
		if (pack_message_row(pk, res, i, 0, NULL, -1) < 0)
			return -1;
	return 0;
}

/* The most bytes message row i takes packed: its strings, their headers
 * (5 bytes each at most), the keys, an int64, a timestamp. */
#define ROW_OVERHEAD 128

static size_t export_row_bytes(const PGresult *res, int i)
{
	size_t n = ROW_OVERHEAD;

	for (int c = 1; c < PQnfields(res); c++)
		n += (size_t)PQgetlength(res, i, c);
	return n;
}

/* The response around the rows: [1, msgid, nil, array header]. */
#define EXPORT_ENVELOPE 32

/*
 * export_history: the rows in the query's order (ascending id), as many
 * as fit in max_output_bytes: a page is bounded by bytes as well as
 * rows.  The client asks for the next page after the last id it got; a
 * row too large on its own still gets result_too_large.
 */
static int pack_export(msgpack_packer *pk, const PGresult *res)
{
	size_t budget = request_max_output(), used = EXPORT_ENVELOPE;
	int n = PQntuples(res), fit = 0;

	while (fit < n) {
		size_t b = export_row_bytes(res, fit);

		if (fit > 0 && (b > budget || used > budget - b))
			break;
		used += b;
		fit++;
	}
	if (msgpack_pack_array(pk, (size_t)fit) < 0)
		return -1;
	for (int i = 0; i < fit; i++)
		if (pack_message_row(pk, res, i, 0, NULL, 5) < 0)
			return -1;
	return 0;
}

static int pack_import(msgpack_packer *pk, const PGresult *res)
{
	bool duplicate = store_bool(res, 0, 2);

	if (msgpack_pack_map(pk, duplicate ? 3 : 2) < 0 ||
	    proto_pack_cstr(pk, "id") < 0 ||
	    msgpack_pack_int64(pk, store_int8(res, 0, 0)) < 0 ||
	    proto_pack_cstr(pk, "imported") < 0 ||
	    (store_bool(res, 0, 1) ? msgpack_pack_true(pk)
				   : msgpack_pack_false(pk)) < 0)
		return -1;
	if (duplicate && (proto_pack_cstr(pk, "duplicate") < 0 ||
			  msgpack_pack_true(pk) < 0))
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
	[S_ADD] = {3, true},	      [S_RECENT] = {5, false},
	[S_CLEAR] = {0, false},	      [S_COUNT_ALL] = {1, true},
	[S_COUNT_PROVIDER] = {1, true}, [S_USER_STATS] = {3, false},
	[S_THREAD_GET] = {1, false},  [S_THREAD_SAVE] = {0, false},
	[S_THREAD_DELETE] = {0, false}, [S_ADD_BATCH] = {6, false},
	[S_ADD_BATCH_KEYS] = {6, false},
	[S_RECENT_BATCH] = {5, false},
	[S_EXPORT_ALL] = {6, false},  [S_EXPORT_PROVIDER] = {6, false},
	[S_IMPORT] = {3, true},
};

struct store_call {
	enum store_stmt stmt;
	int nparams;
	const char *values[7];
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
	case M_ADD_MESSAGE: /* user_id provider role content platform key */
		call->stmt = S_ADD;
		call->nparams = 6;
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 4);
		call->values[2] = arg(r, 1);
		call->values[3] = arg(r, 2);
		call->values[4] = arg(r, 3);
		call->values[5] = arg(r, 5);
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
				   platform key */
		call->stmt = S_IMPORT;
		call->nparams = 7;
		call->values[0] = arg(r, 0);
		call->values[1] = arg(r, 5);
		call->values[2] = arg(r, 1);
		call->values[3] = arg(r, 2);
		call->values[4] = arg(r, 3);
		call->values[5] = arg(r, 4);
		call->values[6] = arg(r, 6);
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

static void store_on_acquire(void *arg, struct pool_conn *pc,
			     enum pool_status st, const char *msg);
static void store_run(struct request *r, struct pool_conn *pc);

/* One request with its single-request statement. */
static void store_single(struct request *r)
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

/*
 * A write with a key got no row: another transaction committed the key
 * after the statement's snapshot was taken.  The statement runs again (a
 * new snapshot sees that row), a few times at most.
 */
#define KEY_RERUNS 3

static bool store_rerun_key(struct request *r)
{
	int key = r->spec->id == M_ADD_MESSAGE	     ? 5 :
		  r->spec->id == M_IMPORT_MESSAGES ? 6 :
						       -1;

	if (key < 0 || !r->args.v[key].present || r->reruns >= KEY_RERUNS)
		return false;
	r->reruns++;
	r->handler_data = NULL;		/* alone now (store_expire) */
	store_single(r);
	return true;
}

static void store_answer(struct request *r, enum pool_status st,
			 const PGresult *res, const char *msg);

static void store_on_result(void *arg, struct pool_conn *pc,
			    enum pool_status st, const PGresult *res,
			    const char *msg)
{
	struct request *r = arg;

	r->pc = NULL;
	pool_release(pc);
	store_answer(r, st, res, msg);
}

/* Answers r from its single-request statement's outcome. */
static void store_answer(struct request *r, enum pool_status st,
			 const PGresult *res, const char *msg)
{
	struct store_call call;

	if (st == POOL_OK) {
		if (PQntuples(res) == 0 && store_rerun_key(r))
			return;
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
	/* export pages are bounded by bytes (pack_export): a page ends at
	 * the bound rather than failing */
	if (call.stmt == S_EXPORT_ALL || call.stmt == S_EXPORT_PROVIDER)
		pool_set_result_page(pc, request_max_output());
	else
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
#define BATCH_MAX_PARAMS 6
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
	enum store_stmt stmt_keys;	/* with a key column (the last one) */
	int key_arg;			/* ... from this argument; -1: none */
	bool ordered;			/* one batch per conversation (order.h) */
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
	int nparams;			/* columns sent (bt->nparams or one less) */
	uint32_t *slots;		/* ordered: the conversations it holds */
	int nslots;
	struct request *cur;		/* ordered retries: the one running */
};

static void batch_flush(struct batcher *bt);
static void batch_arm(struct batcher *bt);
static void batch_retry_next(struct batch *b);
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

/* add_message columns: user_id, platform, provider, role, content, key */
static const int add_cols[6] = {0, 4, 1, 2, 3, 5};
/* get_recent columns: user_id, platform, provider, limit (int8) */
static const int recent_cols[4] = {0, 3, 1, -2};

/* Builds one binary array per column (text, or int8 for the limit). */
static int batch_build(struct batch *b, const char *vals[], int lens[])
{
	const struct batcher *bt = b->bt;
	size_t total = 0, off = 0;

	for (int c = 0; c < b->nparams; c++) {
		size_t sz = 20;

		for (struct request *r = b->head; r; r = r->next)
			sz += 4 + (bt->cols[c] < 0 ? 8 :
				   !r->args.v[bt->cols[c]].present ?
							    0 :
				   r->args.v[bt->cols[c]].s.len);
		if (sz > INT32_MAX)
			return -1;
		lens[c] = (int)sz;
		total += sz;
	}
	b->buf = malloc(total);
	if (!b->buf)
		return -1;
	for (int c = 0; c < b->nparams; c++) {
		char *p = b->buf + off;
		int col = bt->cols[c];

		bool nulls = false;

		for (struct request *r = b->head; r && col >= 0; r = r->next)
			nulls |= !r->args.v[col].present;
		vals[c] = p;
		put_be32(p, 1);				/* dimensions */
		put_be32(p + 4, nulls);			/* has NULLs */
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

			if (!r->args.v[col].present) {	/* no key: NULL */
				put_be32(p, UINT32_MAX);
				p += 4;
				continue;
			}
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
	for (int i = 0; i < b->nslots; i++)
		order_release(b->slots[i]);
	b->bt->batches--;
	free(b->slots);
	free(b->buf);
	free(b);
}

/* add_message's conversation, for order.h */
static uint32_t add_slot(const struct request *r)
{
	return order_slot(&r->args.v[0].s, &r->args.v[4].s, &r->args.v[1].s);
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

/* Ordered retries: b->head's requests one after the other (b->cur runs). */
static void batch_chain_on_result(void *arg, struct pool_conn *pc,
				  enum pool_status st, const PGresult *res,
				  const char *msg)
{
	struct batch *b = arg;
	struct request *r = b->cur;

	r->pc = NULL;
	pool_release(pc);
	b->cur = NULL;
	store_answer(r, st, res, msg);
	batch_retry_next(b);
}

static void batch_chain_on_acquire(void *arg, struct pool_conn *pc,
				   enum pool_status st, const char *msg)
{
	struct batch *b = arg;
	struct request *r = b->cur;
	struct store_call call;

	if (st != POOL_OK) {
		b->cur = NULL;
		request_error(r, store_error_for(st), "%s", msg);
		batch_retry_next(b);
		return;
	}
	if (store_prepare_call(r, &call) < 0 ||
	    pool_exec(pc, store_statements[call.stmt].name, NULL, call.nparams,
		      call.values, NULL, NULL, 1, batch_chain_on_result, b) < 0) {
		pool_release(pc);
		b->cur = NULL;
		request_error(r, E_UNAVAILABLE,
			      "database unavailable (cannot send the query)");
		batch_retry_next(b);
		return;
	}
	r->pc = pc;
}

static void batch_retry_next(struct batch *b)
{
	struct batcher *bt = b->bt;
	struct request *r = b->head;
	struct pool_conn *pc;
	enum pool_status st;
	const char *msg;

	if (!r) {
		batch_free(b);
		batch_flush(bt);
		return;
	}
	b->head = r->next;
	r->next = NULL;
	b->cur = r;
	switch (pool_acquire(&r->waiter, batch_chain_on_acquire, b, &pc, &st,
			     &msg)) {
	case POOL_ACQ_READY:
		batch_chain_on_acquire(b, pc, POOL_OK, NULL);
		break;
	case POOL_ACQ_QUEUED:
		break;
	case POOL_ACQ_FAILED:
		batch_chain_on_acquire(b, NULL, st, msg);
		break;
	}
}

/* The batch failed as a whole: each request again, alone.  Returns
 * whether the batch lives on (ordered: its requests run one after the
 * other, and it holds its conversations until the last has ended). */
static bool batch_retry_alone(struct batch *b)
{
	struct request *r = b->head, *next;

	log_warn("%s: a batch of %d failed; retrying each alone", b->bt->what,
		 b->n);
	if (b->bt->ordered) {
		batch_retry_next(b);
		return true;
	}
	for (; r; r = next) {
		next = r->next;
		r->next = NULL;
		r->handler_data = NULL;		/* alone now */
		store_single(r);
	}
	b->head = NULL;
	return false;
}

static void answer_add(struct request *r, const PGresult *res, int i,
		       bool duplicate)
{
	if (pack_add_row(request_result(r), res, i, 1, duplicate) < 0)
		request_abort(r, "cannot pack the result");
	else
		request_finish(r);
}

static bool text_eq(const PGresult *res, int i, int c,
		    const struct strview *v)
{
	return !PQgetisnull(res, i, c) &&
	       (size_t)PQgetlength(res, i, c) == v->len &&
	       memcmp(PQgetvalue(res, i, c), v->p, v->len) == 0;
}

/* Whether stored row i (S_ADD_BATCH: ord, id, created_at, key, user_id,
 * platform) is r's: a row without a key for r without one, else the
 * same key, user and platform. */
static bool add_row_is(const PGresult *res, int i, const struct request *r)
{
	if (store_int8(res, i, 0) != 0)
		return false;	/* an old row, not one stored now */
	if (!r->args.v[5].present)
		return PQgetisnull(res, i, 3);
	return text_eq(res, i, 3, &r->args.v[5].s) &&
	       text_eq(res, i, 4, &r->args.v[0].s) &&
	       text_eq(res, i, 5, &r->args.v[4].s);
}

static bool same_key(const struct request *a, const struct request *b)
{
	const struct strview *k[3][2] = {
		{&a->args.v[5].s, &b->args.v[5].s},
		{&a->args.v[0].s, &b->args.v[0].s},
		{&a->args.v[4].s, &b->args.v[4].s},
	};

	if (!a->args.v[5].present || !b->args.v[5].present)
		return false;
	for (int i = 0; i < 3; i++)
		if (k[i][0]->len != k[i][1]->len ||
		    memcmp(k[i][0]->p, k[i][1]->p, k[i][0]->len) != 0)
			return false;
	return true;
}

/*
 * The rows stored come first, in the order of the requests; a request
 * with a key that has none is a duplicate: of a row stored before (an
 * old row with its ord), of an earlier request of the batch, or of a row
 * another transaction committed meanwhile (then it runs alone, which
 * finds that row).
 */
static int deliver_add(struct batch *b, const PGresult *res)
{
	int nrows = PQntuples(res), p = 0, k = 0;
	struct request **reqs, *r;
	int *row;
	bool *dup;

	if (PQnfields(res) != 6)
		return -1;
	reqs = malloc((sizeof(*reqs) + sizeof(*row) + sizeof(*dup)) *
		      (size_t)b->n);
	if (!reqs)
		return -1;
	row = (int *)(reqs + b->n);
	dup = (bool *)(row + b->n);
	for (r = b->head; r; r = r->next, k++) {
		reqs[k] = r;
		row[k] = -1;
		dup[k] = false;
		if (p < nrows && add_row_is(res, p, r)) {
			row[k] = p++;
			continue;
		}
		dup[k] = true;
		if (!r->args.v[5].present)
			break;		/* a row without a key is missing */
		for (int i = p; i < nrows && row[k] < 0; i++)
			if (store_int8(res, i, 0) == k + 1)
				row[k] = i;
		for (int j = 0; j < k && row[k] < 0; j++)
			if (row[j] >= 0 && same_key(reqs[j], r))
				row[k] = row[j];
	}
	if (k != b->n || (p < nrows && store_int8(res, p, 0) == 0)) {
		free(reqs);
		return -1;
	}
	for (k = 0; k < b->n; k++) {
		r = reqs[k];
		r->next = NULL;
		if (row[k] < 0)
			store_single(r);
		else
			answer_add(r, res, row[k], dup[k]);
	}
	free(reqs);
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
						    &r->args.v[1].s, -1) < 0;
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
	.what = "add_message", .stmt = S_ADD_BATCH, .nparams = 6,
	.stmt_keys = S_ADD_BATCH_KEYS, .key_arg = 5,
	.max_rows = 512, .max_batches = 2, .cols = add_cols,
	.deliver = deliver_add, .ordered = true,
};

static struct batcher batch_recent = {
	.what = "get_recent_conversations", .stmt = S_RECENT_BATCH,
	.nparams = 4, .max_rows = 64, .max_batches = 4, .cols = recent_cols,
	.key_arg = -1,
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
		if (batch_retry_alone(b))
			return;		/* the batch ends with its last retry */
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
	static const int fmts[BATCH_MAX_PARAMS] = {1, 1, 1, 1, 1, 1};
	struct batcher *bt = b->bt;
	const char *vals[BATCH_MAX_PARAMS];
	int lens[BATCH_MAX_PARAMS];
	struct request *r;
	size_t bytes = 0;
	enum store_stmt stmt = bt->stmt;

	/* take what is queued now (ordered: only conversations that have
	 * no other batch in flight; the others keep their place) */
	struct request **pp = &bt->head, *tail = NULL, *last = NULL;

	if (bt->ordered) {
		b->slots = malloc(sizeof(*b->slots) * (size_t)bt->max_rows);
		if (!b->slots) {
			pool_release(pc);
			batch_free(b);
			return;		/* the next batch tries again */
		}
		order_begin();
	}
	while ((r = *pp) && b->n < bt->max_rows && bytes < BATCH_MAX_BYTES) {
		if (bt->ordered) {
			uint32_t slot = add_slot(r);
			enum order_claim cl = order_claim(slot);

			if (cl == ORDER_BUSY) {
				last = r;
				pp = &r->next;
				continue;
			}
			if (cl == ORDER_NEW)
				b->slots[b->nslots++] = slot;
		}
		*pp = r->next;		/* out of the queue, into the batch */
		r->next = NULL;
		if (tail)
			tail->next = r;
		else
			b->head = r;
		tail = r;
		b->n++;
		bytes += r->args.v[0].s.len + (bt == &batch_add ?
						       r->args.v[3].s.len :
						       0);
	}
	if (!*pp)
		bt->tail = last;	/* the queue's last left behind */
	if (!bt->head)
		bt->tail = NULL;
	bt->queued -= b->n;
	batch_arm(bt);
	if (b->n == 0) {
		pool_release(pc);
		batch_free(b);
		return;
	}
	/* the key column only when a request of the batch has a key */
	b->nparams = bt->nparams;
	if (bt->key_arg >= 0) {
		bool keys = false;

		for (r = b->head; r && !keys; r = r->next)
			keys = r->args.v[bt->key_arg].present;
		if (keys)
			stmt = bt->stmt_keys;
		else
			b->nparams--;
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
	if (pool_exec(pc, store_statements[stmt].name, NULL, b->nparams,
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
/* Whether a queued request could go in a batch now (ordered: one whose
 * conversation has no batch in flight). */
static bool batch_sendable(const struct batcher *bt)
{
	if (!bt->ordered)
		return bt->head != NULL;
	for (const struct request *r = bt->head; r; r = r->next)
		if (!order_busy(add_slot(r)))
			return true;
	return false;
}

static void batch_flush(struct batcher *bt)
{
	while (bt->queued > 0 && bt->batches < bt->max_batches &&
	       !bt->acquiring && batch_sendable(bt)) {
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
		if (b->cur) {	/* an ordered retry runs alone (batch_retry_next) */
			struct request *cur = b->cur;

			b->cur = NULL;
			if (cur->pc) {
				pool_abandon(cur->pc);
				cur->pc = NULL;
			} else {
				pool_cancel(&cur->waiter);
			}
			cur->next = head;
			head = cur;
		}
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
	deadline_watch(r, store_expire);

	if (r->spec->id == M_ADD_MESSAGE) {
		batch_enqueue(&batch_add, r);
		return;
	}
	if (r->spec->id == M_GET_RECENT) {
		batch_enqueue(&batch_recent, r);
		return;
	}
	store_single(r);
}
