/*
 * erase.c - delete_message (one message of a user) and forget_user
 * (everything convd holds about a user: a data subject's erasure).
 *
 * forget_user is one statement, so one transaction: the messages of
 * every provider and conversation, the thread ids, the conversation
 * states; idempotency keys are columns of the messages (on the
 * partitioned layout the key table's rows go with their messages, by its
 * delete trigger: dbpart.c).  It is logged with the counts, never with
 * the user id or any content.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consts.h"
#include "dbreq.h"
#include "erase.h"
#include "log.h"
#include "proto.h"

#define H CONVD_T_HISTORY

/* delete_message: $1 user_id, $2 id, $3 platform */
static const char *const sql_delete =
	"DELETE FROM " H " WHERE id = $2 AND user_id = $1 AND platform = $3";

/* forget_user: $1 user_id, $2 platform or NULL for every platform */
#define WHO " WHERE user_id = $1 AND ($2::varchar IS NULL OR platform = $2)"
static const char *const sql_forget =
	"WITH m AS (DELETE FROM " H WHO " RETURNING idempotency_key),"
	" t AS (DELETE FROM " CONVD_T_THREADS WHO " RETURNING 1),"
	" s AS (DELETE FROM " CONVD_T_STATE WHO " RETURNING 1)"
	" SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM t),"
	" (SELECT count(*) FROM s),"
	" (SELECT count(*) FROM m WHERE idempotency_key IS NOT NULL)";

struct erase {
	struct dbreq q;
	char id[24];			/* delete_message's id as text */
};

static void erase_free(struct dbreq *q)
{
	free(q);
}

static void on_deleted(struct dbreq *q, const PGresult *res)
{
	const char *n = PQcmdTuples((PGresult *)res);
	msgpack_packer *pk;

	if (strcmp(n, "1") != 0) {
		/* the same answer whether the id is another user's or no
		 * message's at all */
		dbreq_error(q, E_NOT_FOUND, "id: the user has no such message");
		return;
	}
	pk = request_result(q->r);
	if (msgpack_pack_map(pk, 1) < 0 || proto_pack_cstr(pk, "deleted") < 0 ||
	    msgpack_pack_int(pk, 1) < 0) {
		dbreq_abort(q, "cannot pack the result");
		return;
	}
	dbreq_finish(q);
}

static void on_conn_delete(struct dbreq *q)
{
	const struct request *r = q->r;
	const char *vals[3] = {r->args.v[0].s.p, ((struct erase *)q)->id,
			       r->args.v[2].s.p};

	dbreq_exec(q, sql_delete, 3, vals, NULL, NULL, 0, false);
}

static int64_t count_at(const PGresult *res, int col)
{
	const char *v = PQgetvalue(res, 0, col);
	uint64_t n;

	if (PQgetlength(res, 0, col) != 8)
		return 0;
	memcpy(&n, v, 8);
	return (int64_t)be64toh(n);
}

static void on_forgotten(struct dbreq *q, const PGresult *res)
{
	static const char *const keys[4] = {"messages", "threads", "states",
					    "idempotency_keys"};
	const struct request *r = q->r;
	msgpack_packer *pk;
	int64_t n[4];

	if (PQnfields(res) != 4 || PQntuples(res) != 1) {
		dbreq_error(q, E_INTERNAL, "unexpected result");
		return;
	}
	for (int i = 0; i < 4; i++)
		n[i] = count_at(res, i);
	log_notice("forget_user: a user's data deleted (%s%s): %lld "
		   "messages, %lld threads, %lld states, %lld idempotency "
		   "keys",
		   r->args.v[1].present ? "platform " : "every platform",
		   r->args.v[1].present ? r->args.v[1].s.p : "",
		   (long long)n[0], (long long)n[1], (long long)n[2],
		   (long long)n[3]);
	pk = request_result(q->r);
	if (msgpack_pack_map(pk, 4) < 0)
		goto fail;
	for (int i = 0; i < 4; i++)
		if (proto_pack_cstr(pk, keys[i]) < 0 ||
		    msgpack_pack_int64(pk, n[i]) < 0)
			goto fail;
	dbreq_finish(q);
	return;
fail:
	dbreq_abort(q, "cannot pack the result");
}

static void on_conn_forget(struct dbreq *q)
{
	const struct request *r = q->r;
	const char *vals[2] = {r->args.v[0].s.p,
			       r->args.v[1].present ? r->args.v[1].s.p : NULL};

	dbreq_exec(q, sql_forget, 2, vals, NULL, NULL, 0, false);
}

static void start(struct request *r, void (*on_conn)(struct dbreq *q),
		  void (*on_rows)(struct dbreq *q, const PGresult *res))
{
	struct erase *x = calloc(1, sizeof(*x));

	if (!x) {
		request_error(r, E_INTERNAL, "out of memory");
		return;
	}
	if (r->spec->id == METHOD_DELETE_MESSAGE)
		snprintf(x->id, sizeof(x->id), "%lld",
			 (long long)r->args.v[1].i);
	x->q.r = r;
	x->q.on_conn = on_conn;
	x->q.on_rows = on_rows;
	x->q.on_end = erase_free;
	dbreq_begin(&x->q);
}

void erase_delete_message(struct request *r)
{
	start(r, on_conn_delete, on_deleted);
}

void erase_forget_user(struct request *r)
{
	start(r, on_conn_forget, on_forgotten);
}
