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
	S_ADD_BATCH,
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
	[S_THREAD_DELETE] = {0, false}, [S_ADD_BATCH] = {2, false},
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

/* ---- group commit for add_message ---------------------------------------- */

/*
 * Concurrent add_message requests are coalesced: they queue here, and each
 * time a batch slot and a connection are free, everything queued (up to
 * GC_MAX_ROWS rows / GC_MAX_BYTES bytes) goes out as one INSERT ... SELECT
 * FROM unnest(...) RETURNING, one round trip and one commit.  A request
 * that arrives while nothing is in flight goes out alone at once: nobody
 * is delayed to make a batch, and batches grow only with load.  Every
 * client is answered only after its batch committed.  If a batch fails
 * with a query error, its rows are retried one by one, so a bad row never
 * fails its neighbours.  If the connection is lost, the outcome of the
 * batch is unknown and each of its requests gets `unavailable` (none was
 * acknowledged).
 */
#define GC_MAX_ROWS 512
#define GC_MAX_BYTES (8u << 20)
#define GC_MAX_BATCHES 2
#define TEXT_OID 25

struct gc_batch {
	struct request *head;		/* its requests, in order */
	int n;
	struct pool_waiter waiter;
	struct pool_conn *pc;
	char *buf;			/* the five binary arrays */
};

static struct {
	struct request *head, *tail;	/* queued, not yet in a batch */
	int queued;
	int batches;			/* in flight (acquiring or running) */
} gc;

static void gc_flush(void);
static void store_run(struct request *r, struct pool_conn *pc);
static void store_on_acquire(void *arg, struct pool_conn *pc,
			     enum pool_status st, const char *msg);

static void put_be32(char *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

/* argument index of each column: user_id, platform, provider, role, content */
static const int gc_cols[5] = {0, 4, 1, 2, 3};

/* Builds the five binary text[] parameters for the batch's rows. */
static int gc_build(struct gc_batch *b, const char *vals[5], int lens[5])
{
	size_t total = 0, off = 0;

	for (int c = 0; c < 5; c++) {
		size_t sz = 20;

		for (struct request *r = b->head; r; r = r->next)
			sz += 4 + r->args.v[gc_cols[c]].s.len;
		if (sz > INT32_MAX)
			return -1;
		lens[c] = (int)sz;
		total += sz;
	}
	b->buf = malloc(total);
	if (!b->buf)
		return -1;
	for (int c = 0; c < 5; c++) {
		char *p = b->buf + off;

		vals[c] = p;
		put_be32(p, 1);			/* dimensions */
		put_be32(p + 4, 0);		/* no NULLs */
		put_be32(p + 8, TEXT_OID);	/* element type */
		put_be32(p + 12, (uint32_t)b->n);	/* length */
		put_be32(p + 16, 1);		/* lower bound */
		p += 20;
		for (struct request *r = b->head; r; r = r->next) {
			const struct strview *v = &r->args.v[gc_cols[c]].s;

			put_be32(p, (uint32_t)v->len);
			memcpy(p + 4, v->p, v->len);
			p += 4 + v->len;
		}
		off += (size_t)lens[c];
	}
	return 0;
}

static void gc_batch_free(struct gc_batch *b)
{
	free(b->buf);
	free(b);
	gc.batches--;
}

/* Answers every request of the batch with the same error. */
static void gc_fail(struct gc_batch *b, enum rpc_error e, const char *msg)
{
	struct request *r = b->head, *next;

	for (; r; r = next) {
		next = r->next;
		r->next = NULL;
		request_error(r, e, "%s", msg);
	}
	b->head = NULL;
}

/* The batch failed as a whole: each row again, alone. */
static void gc_retry_alone(struct gc_batch *b)
{
	struct request *r = b->head, *next;

	log_warn("add_message: a batch of %d rows failed; retrying each row "
		 "alone",
		 b->n);
	for (; r; r = next) {
		struct pool_conn *pc;
		enum pool_status st;
		const char *msg;

		next = r->next;
		r->next = NULL;
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
	b->head = NULL;
}

static void gc_on_result(void *arg, struct pool_conn *pc, enum pool_status st,
			 const PGresult *res, const char *msg)
{
	struct gc_batch *b = arg;
	struct request *r, *next;
	int i = 0;

	pool_release(pc);
	if (st == POOL_OK && PQnfields(res) == 2 && PQntuples(res) == b->n) {
		for (r = b->head; r; r = next, i++) {
			msgpack_packer *pk;

			next = r->next;
			r->next = NULL;
			pk = request_result(r);
			if (msgpack_pack_map(pk, 2) < 0 ||
			    proto_pack_cstr(pk, "id") < 0 ||
			    msgpack_pack_int64(pk, store_int8(res, i, 0)) < 0 ||
			    proto_pack_cstr(pk, "created_at") < 0 ||
			    proto_pack_timestamp(pk, store_time(res, i, 1)) < 0)
				request_abort(r, "cannot pack the result");
			else
				request_finish(r);
		}
		b->head = NULL;
	} else if (st == POOL_OK) {
		log_error("add_message: batch of %d returned %d rows", b->n,
			  PQntuples(res));
		gc_fail(b, E_INTERNAL, "unexpected result");
	} else if (st == POOL_QUERY_ERROR && b->n > 1) {
		gc_retry_alone(b);
	} else if (st == POOL_QUERY_ERROR) {
		r = b->head;
		b->head = NULL;
		store_query_failed(r, res, msg);
	} else {
		gc_fail(b, store_error_for(st),
			st == POOL_UNAVAILABLE ?
				"database unavailable (connection lost during "
				"the query; the message may not have been "
				"stored)" :
				msg);
	}
	gc_batch_free(b);
	gc_flush();
}

static void gc_send(struct gc_batch *b, struct pool_conn *pc)
{
	static const int fmts[5] = {1, 1, 1, 1, 1};
	const char *vals[5];
	int lens[5];
	struct request *r;
	size_t bytes = 0;

	/* take what is queued now */
	b->head = gc.head;
	for (r = gc.head; r; r = r->next) {
		b->n++;
		bytes += r->args.v[3].s.len;
		if (b->n == GC_MAX_ROWS || bytes >= GC_MAX_BYTES ||
		    !r->next) {
			gc.head = r->next;
			if (!gc.head)
				gc.tail = NULL;
			r->next = NULL;
			break;
		}
	}
	gc.queued -= b->n;
	if (b->n == 0) {
		pool_release(pc);
		gc_batch_free(b);
		return;
	}
	if (gc_build(b, vals, lens) < 0) {
		pool_release(pc);
		gc_fail(b, E_INTERNAL, "out of memory");
		gc_batch_free(b);
		return;
	}
	b->pc = pc;
	if (pool_exec(pc, store_statements[S_ADD_BATCH].name, NULL, 5, vals,
		      lens, fmts, 1, gc_on_result, b) < 0) {
		pool_release(pc);
		gc_fail(b, E_UNAVAILABLE,
			"database unavailable (cannot send the query)");
		gc_batch_free(b);
		gc_flush();
	}
}

static void gc_on_acquire(void *arg, struct pool_conn *pc, enum pool_status st,
			  const char *msg)
{
	struct gc_batch *b = arg;

	if (st != POOL_OK) {
		/* everything queued shares the fate: no connection */
		b->head = gc.head;
		gc.head = gc.tail = NULL;
		gc.queued = 0;
		gc_fail(b, store_error_for(st), msg);
		gc_batch_free(b);
		return;
	}
	gc_send(b, pc);
}

/* Starts a batch if rows are queued and a batch slot is free. */
static void gc_flush(void)
{
	while (gc.queued > 0 && gc.batches < GC_MAX_BATCHES) {
		struct gc_batch *b = calloc(1, sizeof(*b));
		struct pool_conn *pc;
		enum pool_status st;
		const char *msg;

		if (!b) {
			struct gc_batch tmp = {.head = gc.head};

			gc.head = gc.tail = NULL;
			gc.queued = 0;
			gc_fail(&tmp, E_INTERNAL, "out of memory");
			return;
		}
		gc.batches++;
		switch (pool_acquire(&b->waiter, gc_on_acquire, b, &pc, &st,
				     &msg)) {
		case POOL_ACQ_READY:
			gc_send(b, pc);
			break;
		case POOL_ACQ_QUEUED:
			/* rows queued meanwhile join this batch */
			return;
		case POOL_ACQ_FAILED:
			gc_on_acquire(b, NULL, st, msg);
			return;
		}
	}
}

static void gc_enqueue(struct request *r)
{
	r->next = NULL;
	if (gc.tail)
		gc.tail->next = r;
	else
		gc.head = r;
	gc.tail = r;
	gc.queued++;
	gc_flush();
}

/* Pending batches end with the pool (pool_cleanup fails their queries);
 * what is still queued is answered here. */
void store_cleanup(void)
{
	struct gc_batch tmp = {.head = gc.head};

	gc.head = gc.tail = NULL;
	gc.queued = 0;
	gc_fail(&tmp, E_UNAVAILABLE, "convd is shutting down");
}

void store_dispatch(struct request *r)
{
	struct pool_conn *pc;
	enum pool_status st;
	const char *msg;

	if (r->spec->id == M_ADD_MESSAGE) {
		gc_enqueue(r);
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
