/*
 * msgpage.c - get_messages: one page of a conversation, back from a
 * message (before_id) or from the newest, each page one range of the
 * conversation's index however deep it is.  The cursor message is looked
 * up first (its created_at: the index's order is created_at, then id),
 * then the page is read before it.  A page is bounded by rows and by
 * bytes (max_output_bytes); next_before_id goes on from where it stopped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbreq.h"
#include "msgpage.h"
#include "msgrow.h"
#include "proto.h"

/* argument positions (validate.c) */
enum { A_USER, A_PROVIDER, A_CONVERSATION, A_BEFORE_ID, A_LIMIT, A_PLATFORM };

static const char *const sql_cursor =
	"SELECT created_at, id" MSGROW_FROM_CONVERSATION " AND id = $5";
static const char *const sql_first =
	"SELECT " MSGROW_COLUMNS MSGROW_FROM_CONVERSATION MSGROW_NEWEST;
static const char *const sql_before =
	"SELECT " MSGROW_COLUMNS MSGROW_FROM_CONVERSATION MSGROW_BEFORE
	MSGROW_NEWEST;

/* [1, msgid, nil, {messages: [...], next_before_id: int}] around the
 * rows */
#define ENVELOPE 64

struct msgpage {
	struct dbreq q;
	char limit[24];
	char before[24];		/* before_id as text */
	char at[8];			/* the cursor's created_at */
};

static void msgpage_free(struct dbreq *q)
{
	free(q);
}

static const char *conversation(const struct request *r)
{
	return r->args.v[A_CONVERSATION].present ?
		       r->args.v[A_CONVERSATION].s.p :
		       "";
}

/* Rows newest first (limit + 1 asked): the answer holds the newest that
 * fit in max_output_bytes, at most limit, oldest first. */
static void on_page(struct dbreq *q, const PGresult *res)
{
	struct request *r = q->r;
	int n = PQntuples(res), limit = (int)r->args.v[A_LIMIT].i, fit = 0;
	size_t budget = request_max_output(), used = ENVELOPE;
	msgpack_packer *pk;

	if (PQnfields(res) != MSGROW_NCOLUMNS) {
		dbreq_error(q, E_INTERNAL, "unexpected result");
		return;
	}
	while (fit < n && fit < limit) {
		size_t b = msgrow_bytes(res, fit);

		if (b > budget || used > budget - b)
			break;
		used += b;
		fit++;
	}
	if (fit == 0 && n > 0) {
		dbreq_error(q, E_RESULT_TOO_LARGE,
			    "a message is larger than [server] "
			    "max_output_bytes (%zu bytes)", budget);
		return;
	}
	pk = request_result(r);
	if (msgpack_pack_map(pk, 2) < 0 ||
	    proto_pack_cstr(pk, "messages") < 0 ||
	    msgpack_pack_array(pk, (size_t)fit) < 0)
		goto fail;
	for (int i = fit - 1; i >= 0; i--)
		if (msgrow_pack(pk, res, i) < 0)
			goto fail;
	if (proto_pack_cstr(pk, "next_before_id") < 0 ||
	    (fit < n ? msgpack_pack_int64(pk, msgrow_id(res, fit - 1))
		     : msgpack_pack_nil(pk)) < 0)
		goto fail;
	dbreq_finish(q);
	return;
fail:
	dbreq_abort(q, "cannot pack the result");
}

static void send_page(struct msgpage *x, bool before)
{
	struct request *r = x->q.r;
	const char *vals[7] = {r->args.v[A_USER].s.p,
			       r->args.v[A_PLATFORM].s.p,
			       r->args.v[A_PROVIDER].s.p, conversation(r),
			       x->limit, x->at, x->before};
	static const int lens[7] = {0, 0, 0, 0, 0, 8, 0};
	static const int fmts[7] = {0, 0, 0, 0, 0, 1, 0};

	snprintf(x->limit, sizeof(x->limit), "%lld",
		 (long long)r->args.v[A_LIMIT].i + 1);
	x->q.on_rows = on_page;
	/* a page cut short by the bound holds more than an answer takes
	 * (msgrow.h): on_page ends the answer before the cut */
	dbreq_exec(&x->q, before ? sql_before : sql_first, before ? 7 : 5,
		   vals, lens, fmts, MSGROW_PAGE_BOUND * request_max_output(),
		   true);
}

static void on_cursor(struct dbreq *q, const PGresult *res)
{
	struct msgpage *x = (struct msgpage *)q;

	if (PQnfields(res) != 2 || PQntuples(res) > 1 ||
	    (PQntuples(res) == 1 && PQgetlength(res, 0, 0) != 8)) {
		dbreq_error(q, E_INTERNAL, "unexpected result");
		return;
	}
	if (PQntuples(res) == 0) {
		dbreq_error(q, E_NOT_FOUND,
			    "before_id: no such message in this conversation");
		return;
	}
	memcpy(x->at, PQgetvalue(res, 0, 0), 8);
	send_page(x, true);
}

static void on_conn(struct dbreq *q)
{
	struct msgpage *x = (struct msgpage *)q;
	struct request *r = q->r;

	if (r->args.v[A_BEFORE_ID].present) {
		const char *vals[5] = {r->args.v[A_USER].s.p,
				       r->args.v[A_PLATFORM].s.p,
				       r->args.v[A_PROVIDER].s.p,
				       conversation(r), x->before};

		q->on_rows = on_cursor;
		dbreq_exec(q, sql_cursor, 5, vals, NULL, NULL, 0, false);
		return;
	}
	send_page(x, false);
}

void msgpage_dispatch(struct request *r)
{
	struct msgpage *x = calloc(1, sizeof(*x));

	if (!x) {
		request_error(r, E_INTERNAL, "out of memory");
		return;
	}
	x->q.r = r;
	x->q.on_conn = on_conn;
	x->q.on_end = msgpage_free;
	snprintf(x->before, sizeof(x->before), "%lld",
		 (long long)r->args.v[A_BEFORE_ID].i);
	dbreq_begin(&x->q);
}
