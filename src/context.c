/*
 * context.c - get_context: the newest messages of a conversation that fit
 * a token budget, tool exchanges whole (window.h), read from the
 * conversation's index newest first, page by page, only as far back as
 * the window goes.
 *
 * With include_system, the conversation's system and developer messages
 * come first from their own partial index (revision 9e4f0a6b3c18), and
 * the pages leave them out.  Each page's rows are copied out of libpq's
 * result (PQcopyResult) and kept until the answer is packed: the window
 * points into them.  The rows walked are bounded by max_messages and by
 * max_output_bytes (the window's byte bound).
 *
 * A page cut short by its byte bound (MSGROW_PAGE_BOUND) holds more rows
 * than the window's byte bound takes, so the window ends within it; a page
 * that comes back short while the window still wants rows is the
 * conversation's end.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "dbreq.h"
#include "msgrow.h"
#include "proto.h"
#include "window.h"

/* argument positions (validate.c) */
enum {
	A_USER, A_PROVIDER, A_MAX_TOKENS, A_CONVERSATION, A_MAX_MESSAGES,
	A_INCLUDE_SYSTEM, A_PLATFORM
};

#define NOT_SYSTEM " AND role NOT IN ('system', 'developer')"

/* the partial index simple_conversation_history_system_idx */
static const char *const sql_system =
	"SELECT " MSGROW_COLUMNS MSGROW_FROM_CONVERSATION
	" AND role IN ('system', 'developer')" MSGROW_NEWEST;
/* [include_system][next page] */
static const char *const sql_page[2][2] = {
	{"SELECT " MSGROW_COLUMNS MSGROW_FROM_CONVERSATION MSGROW_NEWEST,
	 "SELECT " MSGROW_COLUMNS MSGROW_FROM_CONVERSATION MSGROW_BEFORE
	 MSGROW_NEWEST},
	{"SELECT " MSGROW_COLUMNS MSGROW_FROM_CONVERSATION NOT_SYSTEM MSGROW_NEWEST,
	 "SELECT " MSGROW_COLUMNS MSGROW_FROM_CONVERSATION NOT_SYSTEM MSGROW_BEFORE
	 MSGROW_NEWEST},
};

/* Rows per page: the first is sized for a usual window, later ones
 * larger; never more than the window may still take, plus one to see
 * whether older rows are left. */
#define FIRST_PAGE 100
#define NEXT_PAGE 1000

/* The answer around the rows: the map, its keys, two ints, a bool. */
#define ENVELOPE 96

struct context {
	struct dbreq q;
	struct window w;
	bool include_system;
	PGresult *system;		/* the system rows, newest first */
	PGresult **pages;		/* the walk's rows, newest first */
	int npages, cap;
	int asked;			/* rows the last page asked for */
	char limit[24], last_id[24];
	char last_at[8];		/* binary timestamptz */
};

static void context_free(struct dbreq *q)
{
	struct context *x = (struct context *)q;

	window_cleanup(&x->w);
	PQclear(x->system);
	for (int i = 0; i < x->npages; i++)
		PQclear(x->pages[i]);
	free(x->pages);
	free(x);
}

static const char *arg(const struct request *r, int i)
{
	return r->args.v[i].present ? r->args.v[i].s.p : NULL;
}

static void send_page(struct context *x)
{
	struct request *r = x->q.r;
	bool next = x->npages > 0;
	const char *vals[7] = {arg(r, A_USER), arg(r, A_PLATFORM),
			       arg(r, A_PROVIDER),
			       r->args.v[A_CONVERSATION].present ?
				       arg(r, A_CONVERSATION) : "",
			       x->limit, x->last_at, x->last_id};
	static const int lens[7] = {0, 0, 0, 0, 0, 8, 0};
	static const int fmts[7] = {0, 0, 0, 0, 0, 1, 0};
	uint32_t left = x->w.max_messages - x->w.count;
	int want = next ? NEXT_PAGE : FIRST_PAGE;

	if ((uint32_t)want > left + 1)
		want = (int)left + 1;
	x->asked = want;
	snprintf(x->limit, sizeof(x->limit), "%d", want);
	dbreq_exec(&x->q, sql_page[x->include_system][next], next ? 7 : 5,
		   vals, lens, fmts, MSGROW_PAGE_BOUND * request_max_output(),
		   true);
}

static int pack_answer(struct context *x)
{
	msgpack_packer *pk = request_result(x->q.r);
	uint32_t take = x->w.take;

	if (msgpack_pack_map(pk, 3) < 0 ||
	    proto_pack_cstr(pk, "messages") < 0 ||
	    msgpack_pack_array(pk, x->w.system + take) < 0)
		return -1;
	for (int i = (int)x->w.system - 1; i >= 0; i--)
		if (msgrow_pack(pk, x->system, i) < 0)
			return -1;
	/* the first `take` rows of the pages, oldest first */
	for (int p = x->npages - 1; p >= 0; p--) {
		int before = 0;

		for (int k = 0; k < p; k++)
			before += PQntuples(x->pages[k]);
		for (int i = PQntuples(x->pages[p]) - 1; i >= 0; i--)
			if ((uint32_t)(before + i) < take &&
			    msgrow_pack(pk, x->pages[p], i) < 0)
				return -1;
	}
	if (proto_pack_cstr(pk, "total_tokens") < 0 ||
	    msgpack_pack_int64(pk, x->w.total) < 0 ||
	    proto_pack_cstr(pk, "truncated") < 0 ||
	    (x->w.truncated ? msgpack_pack_true(pk)
			    : msgpack_pack_false(pk)) < 0)
		return -1;
	return 0;
}

static void answer(struct context *x)
{
	if (pack_answer(x) < 0)
		dbreq_abort(&x->q, "cannot pack the result");
	else
		dbreq_finish(&x->q);
}

static void fill_row(const PGresult *res, int i, struct window_row *row)
{
	msgrow_window(res, i, row);
	row->bytes = msgrow_bytes(res, i);
}

static void on_page(struct dbreq *q, const PGresult *res)
{
	struct context *x = (struct context *)q;
	PGresult *copy = NULL;
	int n = PQntuples(res);
	enum window_next st = WINDOW_MORE;

	if (PQnfields(res) != MSGROW_NCOLUMNS) {
		dbreq_error(q, E_INTERNAL, "unexpected result");
		return;
	}
	if (n > 0) {
		PGresult **pages = x->pages;

		if (x->npages == x->cap) {
			x->cap = x->cap ? x->cap * 2 : 4;
			pages = realloc(x->pages, sizeof(*pages) * x->cap);
		}
		copy = pages ? PQcopyResult(res, PG_COPYRES_ATTRS |
						 PG_COPYRES_TUPLES) : NULL;
		if (pages)
			x->pages = pages;
		if (!copy) {
			dbreq_error(q, E_INTERNAL, "out of memory");
			return;
		}
		x->pages[x->npages++] = copy;
		for (int i = 0; i < n && st == WINDOW_MORE; i++) {
			struct window_row row;

			fill_row(copy, i, &row);
			st = window_feed(&x->w, &row);
		}
		if (st == WINDOW_ERROR) {
			dbreq_error(q, E_INTERNAL, "out of memory");
			return;
		}
	}
	if (st == WINDOW_MORE && n < x->asked) {
		window_end(&x->w);	/* the conversation's oldest row */
		st = WINDOW_DONE;
	}
	if (st == WINDOW_DONE) {
		answer(x);
		return;
	}
	memcpy(x->last_at, msgrow_time_binary(copy, n - 1), 8);
	snprintf(x->last_id, sizeof(x->last_id), "%lld",
		 (long long)msgrow_id(copy, n - 1));
	send_page(x);
}

static void on_system(struct dbreq *q, const PGresult *res)
{
	struct context *x = (struct context *)q;
	int n = PQntuples(res);

	if (PQnfields(res) != MSGROW_NCOLUMNS) {
		dbreq_error(q, E_INTERNAL, "unexpected result");
		return;
	}
	x->system = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
	if (!x->system) {
		dbreq_error(q, E_INTERNAL, "out of memory");
		return;
	}
	for (int i = 0; i < n; i++) {
		struct window_row row;

		fill_row(x->system, i, &row);
		window_add_system(&x->w, &row);
	}
	q->on_rows = on_page;
	send_page(x);
}

static void on_conn(struct dbreq *q)
{
	struct context *x = (struct context *)q;
	struct request *r = q->r;

	if (x->include_system) {
		const char *vals[5] = {arg(r, A_USER), arg(r, A_PLATFORM),
				       arg(r, A_PROVIDER),
				       r->args.v[A_CONVERSATION].present ?
					       arg(r, A_CONVERSATION) : "",
				       x->limit};

		/* the window takes system rows while they fit: a result
		 * past MSGROW_PAGE_BOUND * max_output_bytes holds more than fit */
		snprintf(x->limit, sizeof(x->limit), "%u", x->w.max_messages);
		q->on_rows = on_system;
		dbreq_exec(q, sql_system, 5, vals, NULL, NULL,
			   MSGROW_PAGE_BOUND * request_max_output(),
			   true);
		return;
	}
	q->on_rows = on_page;
	send_page(x);
}

void context_dispatch(struct request *r)
{
	struct context *x = calloc(1, sizeof(*x));
	size_t max = request_max_output();

	if (!x) {
		request_error(r, E_INTERNAL, "out of memory");
		return;
	}
	x->q.r = r;
	x->q.on_conn = on_conn;
	x->q.on_end = context_free;
	x->include_system = r->args.v[A_INCLUDE_SYSTEM].i != 0;
	window_init(&x->w, r->args.v[A_MAX_TOKENS].i,
		    (uint32_t)r->args.v[A_MAX_MESSAGES].i,
		    max > ENVELOPE ? max - ENVELOPE : 1);
	dbreq_begin(&x->q);
}
