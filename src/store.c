/*
 * store.c - the conversation store: each history and thread method's
 * SQL, how its arguments become parameters, and how its result is packed
 * (store.h).  No I/O: query.c runs the statements, batch.c the batches.
 *
 * Every statement is prepared once per connection (on first use) and run
 * with PQsendQueryPrepared: values are always parameters, never SQL text;
 * strings go as text, integers as binary int8.
 */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "consts.h"
#include "content.h"
#include "msgrow.h"
#include "order.h"
#include "pgval.h"
#include "proto.h"
#include "query.h"
#include "store.h"

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
	S_ADD_BATCH_EXT,
	S_COUNT_
};

#define HISTORY CONVD_T_HISTORY
#define THREADS CONVD_T_THREADS
/* Idempotency keys: a second row with the same key for the user and
 * platform is not stored.  The plain layout's arbiter is the unique index
 * of migrations/5a1e0c2f7b90; the partitioned layout's (whose unique
 * indexes must include created_at) is the key table its insert trigger
 * fills, which skips the row as DO NOTHING does (dbpart.c).  Without a
 * conflict target the clause serves both. */
#define ON_KEY_CONFLICT " ON CONFLICT DO NOTHING"
/* Issue 17's columns of a message, in the order of its arguments after
 * the key (conversation_id '' for the default conversation), and as a
 * row gives them back (tokens as int8, for pgval_int8). */
#define EXT_COLS                                                          \
	"conversation_id, tool_call_id, name, model, tokens, metadata,"   \
	" content_mp"
/* A keyed batch insert (its rows from u, with ikey and ord) after its
 * SELECT: the rows stored come back first (ord 0), in the order of the
 * arrays, with their key, user and platform if they have a key; then the
 * rows already stored under a key of the batch, with the request's place
 * in the arrays (ord): one probe of the key index per keyed row (LIMIT
 * keeps the planner from a join over the table). */
#define BATCH_KEYED_TAIL                                                  \
	ON_KEY_CONFLICT " RETURNING id, created_at, idempotency_key,"      \
	" CASE WHEN idempotency_key IS NOT NULL THEN user_id END,"        \
	" CASE WHEN idempotency_key IS NOT NULL THEN platform END)"       \
	" SELECT 0::int8, * FROM ins"                                     \
	" UNION ALL SELECT u.ord, h.id, h.created_at, NULL, NULL, NULL"   \
	" FROM u CROSS JOIN LATERAL (SELECT id, created_at FROM " HISTORY \
	" WHERE user_id = u.user_id AND platform = u.platform"            \
	" AND idempotency_key = u.ikey LIMIT 1) h WHERE u.ikey IS NOT NULL"
#define EXT_OUT                                                           \
	"tool_call_id, name, model, tokens::int8, metadata, content_mp"

const struct pool_statement store_statements[] = {
	/* One message; with a key ($6) already stored, the stored row with
	 * duplicate = true.  A row whose key another transaction committed
	 * after this statement's snapshot is neither inserted nor seen: no
	 * row comes back, and the statement runs again. */
	[S_ADD] = {"convd_add",
		   "WITH ins AS (INSERT INTO " HISTORY
		   " (user_id, platform, model_provider, role, content,"
		   " idempotency_key, " EXT_COLS ") VALUES ($1, $2, $3, $4,"
		   " $5, $6, $7, $8, $9, $10, $11::int8, $12, $13)"
		   ON_KEY_CONFLICT " RETURNING id, created_at)"
		   " SELECT id, created_at, false FROM ins"
		   " UNION ALL SELECT id, created_at, true FROM " HISTORY
		   " WHERE user_id = $1 AND platform = $2"
		   " AND idempotency_key = $6"
		   " AND NOT EXISTS (SELECT 1 FROM ins)"},
	[S_RECENT] = {"convd_recent",
		      "SELECT id, role, content, created_at, model_provider,"
		      " " EXT_OUT " FROM " HISTORY
		      " WHERE user_id = $1 AND platform = $2"
		      " AND model_provider = $3 AND conversation_id = $5"
		      " ORDER BY created_at DESC, id DESC LIMIT $4"},
	[S_CLEAR] = {"convd_clear",
		     "DELETE FROM " HISTORY " WHERE user_id = $1"
		     " AND platform = $2 AND model_provider = $3"
		     " AND conversation_id = $4"},
	[S_COUNT_ALL] = {"convd_count_all",
			 "SELECT count(*) FROM " HISTORY
			 " WHERE user_id = $1 AND platform = $2"
			 " AND conversation_id = $3"},
	[S_COUNT_PROVIDER] = {"convd_count_provider",
			      "SELECT count(*) FROM " HISTORY
			      " WHERE user_id = $1 AND platform = $2"
			      " AND model_provider = $3"
			      " AND conversation_id = $4"},
	[S_USER_STATS] = {"convd_user_stats",
			  "SELECT model_provider, count(*), max(created_at)"
			  " FROM " HISTORY
			  " WHERE user_id = $1 AND platform = $2"
			  " GROUP BY model_provider ORDER BY model_provider"},
	[S_THREAD_GET] = {"convd_thread_get",
			  "SELECT thread_id FROM " THREADS
			  " WHERE user_id = $1 AND platform = $2"},
	[S_THREAD_SAVE] = {"convd_thread_save",
			   "INSERT INTO " THREADS
			   " (user_id, platform, thread_id) VALUES ($1, $2, $3)"
			   " ON CONFLICT (user_id, platform) DO UPDATE"
			   " SET thread_id = EXCLUDED.thread_id,"
			   " created_at = now()"},
	[S_THREAD_DELETE] = {"convd_thread_delete",
			     "DELETE FROM " THREADS
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
			 BATCH_KEYED_TAIL},
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
			    " h.created_at, h.tool_call_id, h.name, h.model,"
			    " h.tokens, h.metadata, h.content_mp"
			    " FROM (SELECT $1::text[], $2::text[], $3::text[],"
			    " $4::int8[], $5::text[] OFFSET 0) AS p(a, b, c, d,"
			    " e)"
			    " CROSS JOIN LATERAL unnest(p.a, p.b, p.c, p.d, p.e)"
			    " WITH ORDINALITY"
			    " AS u(user_id, platform, provider, lim, conv, ord)"
			    " CROSS JOIN LATERAL (SELECT id, role, content,"
			    " created_at, " EXT_OUT " FROM " HISTORY
			    " WHERE user_id = u.user_id"
			    " AND platform = u.platform"
			    " AND model_provider = u.provider"
			    " AND conversation_id = coalesce(u.conv, '')"
			    " ORDER BY created_at DESC, id DESC LIMIT u.lim)"
			    " h(id, role, content, created_at, tool_call_id,"
			    " name, model, tokens, metadata, content_mp)"},
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
			  " idempotency_key, conversation_id, " EXT_OUT
			  " FROM " HISTORY
			  " WHERE user_id = $1 AND platform = $2 AND id + 0 > $3"
			  " AND ($5::varchar IS NULL OR conversation_id = $5)"
			  " ORDER BY id + 0 LIMIT $4"},
	[S_EXPORT_PROVIDER] = {"convd_export_provider",
			       "SELECT id, role, content, created_at,"
			       " model_provider, idempotency_key,"
			       " conversation_id, " EXT_OUT " FROM " HISTORY
			       " WHERE user_id = $1 AND platform = $2"
			       " AND model_provider = $3 AND id + 0 > $4"
			       " AND ($6::varchar IS NULL"
			       " OR conversation_id = $6)"
			       " ORDER BY id + 0 LIMIT $5"},
	/* import_message: $6 is microseconds since the Unix epoch (whole
	 * seconds through to_timestamp, exact in float8, then the rest).
	 * Without a key ($7), a row equal in every column but id (issue 17's
	 * fields included: parallel tool results of one group commit share
	 * created_at and may share content) is not stored twice: its id comes back with imported = false.  With a
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
		      " AND h.role = $4 AND h.content = $5"
		      " AND h.conversation_id = $8"
		      " AND h.tool_call_id IS NOT DISTINCT FROM $9::varchar"
		      " AND h.name IS NOT DISTINCT FROM $10::varchar"
		      " AND h.model IS NOT DISTINCT FROM $11::varchar"
		      " AND h.tokens IS NOT DISTINCT FROM $12::int8"
		      " AND h.metadata IS NOT DISTINCT FROM $13::bytea"
		      " AND h.content_mp IS NOT DISTINCT FROM $14::bytea))"
		      " ORDER BY h.id LIMIT 1),"
		      " new AS (INSERT INTO " HISTORY
		      " (user_id, platform, model_provider, role, content,"
		      " created_at, idempotency_key, " EXT_COLS ")"
		      " SELECT $1, $2, $3, $4, $5, t.at, $7::varchar, $8,"
		      " $9::varchar, $10::varchar, $11::varchar, $12::int8,"
		      " $13::bytea, $14::bytea FROM t"
		      " WHERE NOT EXISTS (SELECT 1 FROM old)"
		      ON_KEY_CONFLICT " RETURNING id)"
		      " SELECT id, true, false FROM new"
		      " UNION ALL SELECT id, false, $7::varchar IS NOT NULL"
		      " FROM old"},
	/* Group commit of messages of which one at least has a field only
	 * some messages have (issue 17: a conversation, structured content,
	 * a tool call id, ...): every column, as S_ADD_BATCH_KEYS does with
	 * the key (its rows, in its shape). */
	[S_ADD_BATCH_EXT] = {"convd_add_batch_ext",
			 "WITH u AS (SELECT * FROM unnest($1::text[],"
			 " $2::text[], $3::text[], $4::text[], $5::text[],"
			 " $6::text[], $7::text[], $8::text[], $9::text[],"
			 " $10::text[], $11::int8[], $12::bytea[],"
			 " $13::bytea[]) WITH ORDINALITY"
			 " AS u(user_id, platform, provider, role, content,"
			 " ikey, conv, tcid, nm, mdl, tok, meta, cmp, ord)),"
			 " ins AS (INSERT INTO " HISTORY
			 " (user_id, platform, model_provider, role, content,"
			 " idempotency_key, " EXT_COLS ") SELECT user_id,"
			 " platform, provider, role, content, ikey,"
			 " coalesce(conv, ''), tcid, nm, mdl, tok, meta, cmp"
			 " FROM u" BATCH_KEYED_TAIL},
};
const size_t store_nstatements = S_COUNT_;
/* ---- result packers, one per method ------------------------------------------ */

/* add_message's answer {id, created_at} from row i (id at column c,
 * created_at after it), with duplicate: true for a key already used. */
static int pack_add_row(msgpack_packer *pk, const PGresult *res, int i,
			int c, bool duplicate)
{
	if (msgpack_pack_map(pk, duplicate ? 3 : 2) < 0 ||
	    proto_pack_cstr(pk, "id") < 0 ||
	    msgpack_pack_int64(pk, pgval_int8(res, i, c)) < 0 ||
	    proto_pack_cstr(pk, "created_at") < 0 ||
	    proto_pack_timestamp(pk, pgval_time(res, i, c + 1)) < 0)
		return -1;
	if (duplicate && (proto_pack_cstr(pk, "duplicate") < 0 ||
			  msgpack_pack_true(pk) < 0))
		return -1;
	return 0;
}

static int pack_add(msgpack_packer *pk, const PGresult *res,
		    const struct request *r CONVD_UNUSED)
{
	return pack_add_row(pk, res, 0, 0, pgval_bool(res, 0, 2));
}

/* Where a result's row has each column of a message; -1: not in it. */
struct row_cols {
	int id;		/* then role, content, created_at */
	int provider;	/* -1: the request's (the query filtered on it) */
	int key;	/* idempotency_key */
	int conv;	/* conversation_id; -1: the request's */
	int ext;	/* tool_call_id, name, model, tokens, metadata,
			 * content_mp (issue 17) */
};

#define EXT_N 6

/*
 * One message row as {id, role, content, created_at, provider}, plus
 * idempotency_key, conversation_id (not for the default conversation),
 * tool_call_id, name, model, tokens and metadata only when the message
 * has them: a plain row is as small as it was.  Structured content and
 * metadata are their stored bytes, spliced in (content_pack).  provider
 * and conv stand for the columns the query filtered on (a value
 * PostgreSQL need not send for every row).
 */
static int pack_message_row(msgpack_packer *pk, const PGresult *res, int i,
			    const struct row_cols *rc,
			    const struct strview *provider,
			    const struct strview *conv)
{
	static const char *const ext_keys[EXT_N] = {
		"tool_call_id", "name", "model", "tokens", "metadata", NULL};
	bool key = rc->key >= 0 && !PQgetisnull(res, i, rc->key);
	bool has_conv = rc->conv >= 0 ? PQgetlength(res, i, rc->conv) > 0
				      : conv && conv->len > 0;
	bool ext[EXT_N] = {false};
	size_t n = 5 + key + has_conv;
	int c = rc->id;

	for (int e = 0; rc->ext >= 0 && e < EXT_N; e++) {
		ext[e] = !PQgetisnull(res, i, rc->ext + e);
		n += ext[e] && ext_keys[e];
	}
	if (msgpack_pack_map(pk, n) < 0 ||
	    (key && (proto_pack_cstr(pk, "idempotency_key") < 0 ||
		     pgval_pack_text(pk, res, i, rc->key) < 0)) ||
	    proto_pack_cstr(pk, "id") < 0 ||
	    msgpack_pack_int64(pk, pgval_int8(res, i, c)) < 0 ||
	    proto_pack_cstr(pk, "role") < 0 ||
	    pgval_pack_text(pk, res, i, c + 1) < 0 ||
	    proto_pack_cstr(pk, "content") < 0 ||
	    (ext[5] ? content_pack(pk, pgval_view(res, i, rc->ext + 5))
		    : pgval_pack_text(pk, res, i, c + 2)) < 0 ||
	    proto_pack_cstr(pk, "created_at") < 0 ||
	    proto_pack_timestamp(pk, pgval_time(res, i, c + 3)) < 0 ||
	    proto_pack_cstr(pk, "provider") < 0 ||
	    (provider ? proto_pack_str(pk, provider->p, provider->len)
		      : pgval_pack_text(pk, res, i, rc->provider)) < 0)
		return -1;
	if (has_conv &&
	    (proto_pack_cstr(pk, "conversation_id") < 0 ||
	     (rc->conv >= 0 ? pgval_pack_text(pk, res, i, rc->conv)
			    : proto_pack_str(pk, conv->p, conv->len)) < 0))
		return -1;
	for (int e = 0; e < EXT_N; e++) {
		int col = rc->ext + e;

		if (!ext[e] || !ext_keys[e])
			continue;
		if (proto_pack_cstr(pk, ext_keys[e]) < 0 ||
		    (e == 3 ? msgpack_pack_int64(pk, pgval_int8(res, i, col))
		     : e == 4 ? content_pack(pk, pgval_view(res, i, col))
			      : pgval_pack_text(pk, res, i, col)) < 0)
			return -1;
	}
	return 0;
}

int store_pack_row(msgpack_packer *pk, const PGresult *res, int i)
{
	/* MSGROW_COLUMNS: id role content created_at model_provider
	 * conversation_id, then EXT_OUT's */
	static const struct row_cols rc = {
		.id = MSGROW_ID, .provider = MSGROW_PROVIDER, .key = -1,
		.conv = MSGROW_CONVERSATION, .ext = MSGROW_TOOL_CALL_ID,
	};

	return pack_message_row(pk, res, i, &rc, NULL, NULL);
}

/* The request's conversation, or NULL for the default one. */
static const struct strview *req_conv(const struct request *r, int i)
{
	return r->args.v[i].present ? &r->args.v[i].s : NULL;
}

/* The query returns newest first; the answer is oldest first. */
static int pack_recent(msgpack_packer *pk, const PGresult *res,
		       const struct request *r)
{
	static const struct row_cols rc = {
		.id = 0, .provider = 4, .key = -1, .conv = -1, .ext = 5};
	int n = PQntuples(res);

	if (msgpack_pack_array(pk, (size_t)n) < 0)
		return -1;
	for (int i = n - 1; i >= 0; i--)
		if (pack_message_row(pk, res, i, &rc, NULL, req_conv(r, 4)) < 0)
			return -1;
	return 0;
}

/* The most bytes message row i takes packed: its strings, their headers
 * (5 bytes each at most), the keys, an int64, a timestamp. */
#define ROW_OVERHEAD 256

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
static int pack_export(msgpack_packer *pk, const PGresult *res,
		       const struct request *r CONVD_UNUSED)
{
	static const struct row_cols rc = {
		.id = 0, .provider = 4, .key = 5, .conv = 6, .ext = 7};
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
		if (pack_message_row(pk, res, i, &rc, NULL, NULL) < 0)
			return -1;
	return 0;
}

static int pack_import(msgpack_packer *pk, const PGresult *res,
		       const struct request *r CONVD_UNUSED)
{
	bool duplicate = pgval_bool(res, 0, 2);

	if (msgpack_pack_map(pk, duplicate ? 3 : 2) < 0 ||
	    proto_pack_cstr(pk, "id") < 0 ||
	    msgpack_pack_int64(pk, pgval_int8(res, 0, 0)) < 0 ||
	    proto_pack_cstr(pk, "imported") < 0 ||
	    (pgval_bool(res, 0, 1) ? msgpack_pack_true(pk)
				   : msgpack_pack_false(pk)) < 0)
		return -1;
	if (duplicate && (proto_pack_cstr(pk, "duplicate") < 0 ||
			  msgpack_pack_true(pk) < 0))
		return -1;
	return 0;
}

static int pack_deleted(msgpack_packer *pk, const PGresult *res,
			const struct request *r CONVD_UNUSED)
{
	uint64_t n = strtoull(PQcmdTuples((PGresult *)res), NULL, 10);

	if (msgpack_pack_map(pk, 1) < 0 || proto_pack_cstr(pk, "deleted") < 0 ||
	    msgpack_pack_uint64(pk, n) < 0)
		return -1;
	return 0;
}

static int pack_count(msgpack_packer *pk, const PGresult *res,
		      const struct request *r CONVD_UNUSED)
{
	return msgpack_pack_int64(pk, pgval_int8(res, 0, 0));
}

static int pack_user_stats(msgpack_packer *pk, const PGresult *res,
			   const struct request *r CONVD_UNUSED)
{
	int n = PQntuples(res);
	int64_t total = 0;

	for (int i = 0; i < n; i++)
		total += pgval_int8(res, i, 1);
	if (msgpack_pack_map(pk, 2) < 0 ||
	    proto_pack_cstr(pk, "total_messages") < 0 ||
	    msgpack_pack_int64(pk, total) < 0 ||
	    proto_pack_cstr(pk, "providers") < 0 ||
	    msgpack_pack_map(pk, (size_t)n) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (pgval_pack_text(pk, res, i, 0) < 0 ||
		    msgpack_pack_map(pk, 2) < 0 ||
		    proto_pack_cstr(pk, "message_count") < 0 ||
		    msgpack_pack_int64(pk, pgval_int8(res, i, 1)) < 0 ||
		    proto_pack_cstr(pk, "last_message_at") < 0 ||
		    proto_pack_timestamp(pk, pgval_time(res, i, 2)) < 0)
			return -1;
	}
	return 0;
}

static int pack_thread(msgpack_packer *pk, const PGresult *res,
		       const struct request *r CONVD_UNUSED)
{
	if (PQntuples(res) == 0)
		return msgpack_pack_nil(pk);
	return pgval_pack_text(pk, res, 0, 0);
}

static int pack_true(msgpack_packer *pk, const PGresult *res,
		     const struct request *r CONVD_UNUSED)
{
	(void)res;
	return msgpack_pack_true(pk);
}

/* ---- each method's statement ------------------------------------------------- */

/* Argument positions follow validate.c's specs (platform is always the
 * last parameter but for the key); column counts are the result's. */
static const struct query_def def_add = {
	.stmt = "convd_add", .nfields = 3, .one_row = true,
	.keyed = true, .key_arg = 5, .pack = pack_add,
};
static const struct query_def def_recent = {
	.stmt = "convd_recent", .nfields = 11, .pack = pack_recent,
};
static const struct query_def def_clear = {
	.stmt = "convd_clear", .nfields = 0, .pack = pack_deleted,
};
static const struct query_def def_count_all = {
	.stmt = "convd_count_all", .nfields = 1, .one_row = true,
	.pack = pack_count,
};
static const struct query_def def_count_provider = {
	.stmt = "convd_count_provider", .nfields = 1, .one_row = true,
	.pack = pack_count,
};
static const struct query_def def_user_stats = {
	.stmt = "convd_user_stats", .nfields = 3, .pack = pack_user_stats,
};
static const struct query_def def_thread_get = {
	.stmt = "convd_thread_get", .nfields = 1, .pack = pack_thread,
};
static const struct query_def def_thread_save = {
	.stmt = "convd_thread_save", .nfields = 0, .pack = pack_true,
};
static const struct query_def def_thread_delete = {
	.stmt = "convd_thread_delete", .nfields = 0, .pack = pack_deleted,
};
/* export pages are bounded by bytes (pack_export) */
static const struct query_def def_export_all = {
	.stmt = "convd_export_all", .nfields = 13, .page = true,
	.pack = pack_export,
};
static const struct query_def def_export_provider = {
	.stmt = "convd_export_provider", .nfields = 13, .page = true,
	.pack = pack_export,
};
static const struct query_def def_import = {
	.stmt = "convd_import", .nfields = 3, .one_row = true,
	.keyed = true, .key_arg = 6, .pack = pack_import,
};

/* Issue 17's fields from argument i on: conversation_id, tool_call_id,
 * name, model, tokens, metadata; then the structured content of
 * argument content (NULL for a string). */
static void param_ext(struct pgval_params *p, const struct request *r,
		      int i, int content)
{
	pgval_param_or_empty(p, r, i);
	pgval_param_arg(p, r, i + 1);
	pgval_param_arg(p, r, i + 2);
	pgval_param_arg(p, r, i + 3);
	pgval_param_int8_arg(p, r, i + 4);
	pgval_param_bytes(p, r, i + 5);
	pgval_param_bytes(p, r, content);
}

/* user_id provider role content platform key conversation_id
 * tool_call_id name model tokens metadata */
static int build_add(const struct request *r, struct pgval_params *p,
		     const struct query_def **def)
{
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 4);
	pgval_param_arg(p, r, 1);
	pgval_param_arg(p, r, 2);
	if (pgval_param_content(p, r, 3) < 0)
		return -1;
	pgval_param_arg(p, r, 5);
	param_ext(p, r, 6, 3);
	*def = &def_add;
	return 0;
}

/* user_id provider limit platform; a limit counts turns: two messages
 * each */
static int build_recent(const struct request *r, struct pgval_params *p,
			const struct query_def **def)
{
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 3);
	pgval_param_arg(p, r, 1);
	pgval_param_int8(p, r->args.v[2].i * 2);
	pgval_param_or_empty(p, r, 4);
	*def = &def_recent;
	return 0;
}

/* user_id provider platform conversation_id */
static int build_clear(const struct request *r, struct pgval_params *p,
		       const struct query_def **def)
{
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 2);
	pgval_param_arg(p, r, 1);
	pgval_param_or_empty(p, r, 3);
	*def = &def_clear;
	return 0;
}

/* user_id provider? platform */
static int build_count(const struct request *r, struct pgval_params *p,
		       const struct query_def **def)
{
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 2);
	if (r->args.v[1].present) {
		pgval_param_arg(p, r, 1);
		*def = &def_count_provider;
	} else {
		*def = &def_count_all;
	}
	pgval_param_or_empty(p, r, 3);
	return 0;
}

/* user_id platform */
static int build_user_stats(const struct request *r, struct pgval_params *p,
			    const struct query_def **def)
{
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 1);
	*def = &def_user_stats;
	return 0;
}

/* user_id platform */
static int build_thread_get(const struct request *r, struct pgval_params *p,
			    const struct query_def **def)
{
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 1);
	*def = &def_thread_get;
	return 0;
}

/* user_id thread_id platform */
static int build_thread_save(const struct request *r, struct pgval_params *p,
			     const struct query_def **def)
{
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 2);
	pgval_param_arg(p, r, 1);
	*def = &def_thread_save;
	return 0;
}

/* user_id platform */
static int build_thread_delete(const struct request *r,
			       struct pgval_params *p,
			       const struct query_def **def)
{
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 1);
	*def = &def_thread_delete;
	return 0;
}

/* user_id provider? after_id limit platform */
static int build_export(const struct request *r, struct pgval_params *p,
			const struct query_def **def)
{
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 4);
	if (r->args.v[1].present) {
		pgval_param_arg(p, r, 1);
		*def = &def_export_provider;
	} else {
		*def = &def_export_all;
	}
	pgval_param_int8(p, r->args.v[2].i);
	pgval_param_int8(p, r->args.v[3].i);
	pgval_param_arg(p, r, 5);	/* NULL: every conversation */
	return 0;
}

/* user_id provider role content created_at platform key */
static int build_import(const struct request *r, struct pgval_params *p,
			const struct query_def **def)
{
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 5);
	pgval_param_arg(p, r, 1);
	pgval_param_arg(p, r, 2);
	if (pgval_param_content(p, r, 3) < 0)
		return -1;
	pgval_param_int8(p, r->args.v[4].i);
	pgval_param_arg(p, r, 6);
	param_ext(p, r, 7, 3);
	*def = &def_import;
	return 0;
}

int store_build(const struct request *r, struct pgval_params *p,
		const struct query_def **def)
{
	switch (r->spec->id) {
	case M_ADD_MESSAGE:
		return build_add(r, p, def);
	case M_GET_RECENT:
		return build_recent(r, p, def);
	case M_CLEAR_HISTORY:
		return build_clear(r, p, def);
	case M_GET_COUNT:
		return build_count(r, p, def);
	case M_GET_USER_STATS:
		return build_user_stats(r, p, def);
	case M_GET_THREAD:
		return build_thread_get(r, p, def);
	case M_SAVE_THREAD:
		return build_thread_save(r, p, def);
	case M_DELETE_THREAD:
		return build_thread_delete(r, p, def);
	case M_EXPORT_HISTORY:
		return build_export(r, p, def);
	case M_IMPORT_MESSAGES:
		return build_import(r, p, def);
	default:
		return -1;
	}
}

/* ---- the batched methods ------------------------------------------------------ */

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
	if (pgval_int8(res, i, 0) != 0)
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
static int deliver_add(struct request_queue *q, int n, const PGresult *res)
{
	int nrows = PQntuples(res), p = 0, k = 0;
	struct request **reqs, *r;
	int *row;
	bool *dup;

	if (PQnfields(res) != 6)
		return -1;
	reqs = malloc((sizeof(*reqs) + sizeof(*row) + sizeof(*dup)) *
		      (size_t)n);
	if (!reqs)
		return -1;
	row = (int *)(reqs + n);
	dup = (bool *)(row + n);
	TAILQ_FOREACH(r, q, link) {
		if (k == n)
			break;
		reqs[k] = r;
		row[k] = -1;
		dup[k] = false;
		if (p < nrows && add_row_is(res, p, r)) {
			row[k++] = p++;
			continue;
		}
		dup[k] = true;
		if (!r->args.v[5].present)
			break;		/* a row without a key is missing */
		for (int i = p; i < nrows && row[k] < 0; i++)
			if (pgval_int8(res, i, 0) == k + 1)
				row[k] = i;
		for (int j = 0; j < k && row[k] < 0; j++)
			if (row[j] >= 0 && same_key(reqs[j], r))
				row[k] = row[j];
		k++;
	}
	if (k != n || (p < nrows && pgval_int8(res, p, 0) == 0)) {
		free(reqs);
		return -1;
	}
	for (k = 0; k < n; k++) {
		r = reqs[k];
		if (row[k] < 0)
			continue;	/* left in q: it runs alone */
		TAILQ_REMOVE(q, r, link);
		answer_add(r, res, row[k], dup[k]);
	}
	free(reqs);
	return 0;
}

/* Row indexes of one request are sorted oldest first (created_at, id). */
static const PGresult *recent_sort_res;

static int cmp_recent_rows(const void *x, const void *y)
{
	int a = *(const int *)x, c = *(const int *)y;
	usec_t ta = pgval_time(recent_sort_res, a, 4);
	usec_t tc = pgval_time(recent_sort_res, c, 4);

	if (ta != tc)
		return ta < tc ? -1 : 1;
	int64_t ia = pgval_int8(recent_sort_res, a, 1);
	int64_t ic = pgval_int8(recent_sort_res, c, 1);

	return ia < ic ? -1 : ia > ic;
}

/* Columns: ord, id, role, content, created_at; the provider is the
 * request's own (the query filters on it). */
static int deliver_recent(struct request_queue *q, int n,
			  const PGresult *res)
{
	static const struct row_cols rc = {
		.id = 1, .provider = -1, .key = -1, .conv = -1, .ext = 5};
	int nrows = PQntuples(res);
	int *rows, *start, *count;
	struct request *r;
	int k = 0;

	if (PQnfields(res) != 11)
		return -1;
	rows = malloc(sizeof(int) * ((size_t)nrows + 2 * (size_t)n + 1));
	if (!rows)
		return -1;
	start = rows + nrows;
	count = start + n;
	memset(count, 0, sizeof(int) * (size_t)n);
	for (int i = 0; i < nrows; i++) {
		int64_t ord = pgval_int8(res, i, 0);

		if (ord < 1 || ord > n) {
			free(rows);
			return -1;
		}
		count[ord - 1]++;
	}
	for (int j = 0, acc = 0; j < n; j++) {
		start[j] = acc;
		acc += count[j];
		count[j] = 0;
	}
	for (int i = 0; i < nrows; i++) {
		int j = (int)pgval_int8(res, i, 0) - 1;

		rows[start[j] + count[j]++] = i;
	}
	recent_sort_res = res;
	while ((r = TAILQ_FIRST(q)) && k < n) {
		msgpack_packer *pk;
		int *mine = rows + start[k];
		int m = count[k], failed = 0;

		TAILQ_REMOVE(q, r, link);
		k++;
		qsort(mine, (size_t)m, sizeof(int), cmp_recent_rows);
		pk = request_result(r);
		failed |= msgpack_pack_array(pk, (size_t)m) < 0;
		for (int i = 0; i < m && !failed; i++)
			failed |= pack_message_row(pk, res, mine[i], &rc,
						    &r->args.v[1].s,
						    req_conv(r, 4)) < 0;
		if (failed)
			request_abort(r, "cannot pack the result");
		else
			request_finish(r);
	}
	free(rows);
	return 0;
}

/* Whether an add_message has a field only some messages have (issue
 * 17): its batch then carries every column. */
static bool add_is_ext(const struct request *r)
{
	if (r->args.v[3].raw)
		return true;
	for (int i = 6; i <= 11; i++)
		if (r->args.v[i].present)
			return true;
	return false;
}

/* add_message's conversation, for order.h */
static uint32_t add_slot(const struct request *r)
{
	return order_slot(&r->args.v[0].s, &r->args.v[4].s, &r->args.v[1].s);
}

/*
 * Batches in flight per method.  Writes want few, large batches: each is
 * one commit (one WAL flush), so two in flight (one committing, one
 * filling) is best; four cost a fifth of the throughput on two cores.
 * Reads commit nothing and each user's rows are an index scan of their
 * own, so they want PostgreSQL busy on every core while convd packs the
 * answers of the last batch: four in flight measured 12% faster than two
 * (BENCHMARKS.md).
 *
 * - add_message: INSERT ... SELECT FROM unnest(...) RETURNING, rows back
 *   in array order; each client is answered only after the commit.
 *   Columns: user_id, platform, provider, role, content, key.
 * - get_recent_conversations: unnest(...) WITH ORDINALITY CROSS JOIN
 *   LATERAL (the single-user query), rows tagged with their request.
 *   Columns: user_id, platform, provider, limit (int8: two rows a turn),
 *   conversation_id (NULL: the default one).
 */
const struct batch_spec store_add_batch = {
	.what = "add_message", .stmt = "convd_add_batch",
	.stmt_keys = "convd_add_batch_keys", .ncols = 6,
	.cols = {{0, 0, 0}, {4, 0, 0}, {1, 0, 0}, {2, 0, 0}, {3, 0, 0},
		 {5, 0, 0}},
	.key_arg = 5, .size_arg = 3, .max_rows = 512, .max_batches = 2,
	.slot = add_slot, .deliver = deliver_add, .single = store_build,
	/* then: conversation_id, tool_call_id, name, model, tokens,
	 * metadata, content_mp */
	.stmt_ext = "convd_add_batch_ext", .ncols_ext = 13,
	.cols_ext = {{0, 0, 0}, {4, 0, 0}, {1, 0, 0}, {2, 0, 0},
		     {3, 0, PGVAL_COL_CONTENT}, {5, 0, 0}, {6, 0, 0},
		     {7, 0, 0}, {8, 0, 0}, {9, 0, 0},
		     {10, 0, PGVAL_COL_INT8_NULL}, {11, 0, PGVAL_COL_BYTES},
		     {3, 0, PGVAL_COL_BYTES}},
	.is_ext = add_is_ext,
};

const struct batch_spec store_recent_batch = {
	.what = "get_recent_conversations", .stmt = "convd_recent_batch",
	.ncols = 5,
	.cols = {{0, 0, 0}, {3, 0, 0}, {1, 0, 0}, {2, 2, 0}, {4, 0, 0}},
	.key_arg = -1, .size_arg = -1, .max_rows = 64, .max_batches = 4,
	.deliver = deliver_recent, .single = store_build,
};
