/*
 * search.c - search_messages: a user's messages whose text contains the
 * query (ILIKE, the query's %, _ and \ taken literally), newest first.
 *
 * Served by simple_conversation_history_search_idx, GIN over (user_id,
 * content gin_trgm_ops) (revision 9e4f0a6b3c18): the user's entries and
 * the query's trigrams together.  The statement is unnamed, so planned
 * for its user and pattern (a generic plan cannot tell a one-character
 * query, which has no trigram, from a long one).  The matches are
 * gathered first (MATERIALIZED) and the newest of them taken: otherwise
 * the planner may walk the whole table's created_at index newest first,
 * filtering for the user and the text and hoping for `limit` matches
 * soon, which for a rare word reads the whole table (bench/search_index.py).
 * Only the ids and times of the matches are kept; the rows answered are
 * read again by primary key.
 */
#include <stdlib.h>
#include <string.h>

#include "consts.h"
#include "dbreq.h"
#include "msgrow.h"
#include "proto.h"
#include "search.h"

/* argument positions (validate.c) */
enum { A_USER, A_QUERY, A_PROVIDER, A_CONVERSATION, A_PLATFORM, A_LIMIT };

#define H CONVD_T_HISTORY
/* $1 user_id, $2 platform, $3 the ILIKE pattern, $4 the limit, then the
 * provider and the conversation ('' the default one) when given */
#define MATCHES(filter)                                                     \
	"WITH m AS MATERIALIZED (SELECT id, created_at FROM " H                \
	" WHERE user_id = $1 AND platform = $2 AND content ILIKE $3" filter    \
	"), top AS (SELECT id, created_at FROM m"                              \
	" ORDER BY created_at DESC, id DESC LIMIT $4)"                         \
	" SELECT " MSGROW_COLUMNS " FROM " H " JOIN top USING (id, created_at)" \
	" ORDER BY created_at DESC, id DESC"

/* [provider given][conversation given] */
static const char *const sql_search[2][2] = {
	{MATCHES(""), MATCHES(" AND conversation_id = $5")},
	{MATCHES(" AND model_provider = $5"),
	 MATCHES(" AND model_provider = $5 AND conversation_id = $6")},
};

/* The query as an ILIKE pattern: '%', its \, % and _ escaped, '%'. */
#define PATTERN_MAX (2 * 256 + 3)

struct search {
	struct dbreq q;
	char pattern[PATTERN_MAX];
	char limit[24];
};

static void search_free(struct dbreq *q)
{
	free(q);
}

static int make_pattern(char *out, size_t outlen, const struct strview *s)
{
	size_t o = 0;

	if (outlen < 2 * s->len + 3)
		return -1;
	out[o++] = '%';
	for (size_t i = 0; i < s->len; i++) {
		if (s->p[i] == '\\' || s->p[i] == '%' || s->p[i] == '_')
			out[o++] = '\\';
		out[o++] = s->p[i];
	}
	out[o++] = '%';
	out[o] = '\0';
	return 0;
}

static void on_rows(struct dbreq *q, const PGresult *res)
{
	int n = PQntuples(res);
	msgpack_packer *pk;

	if (PQnfields(res) != MSGROW_NCOLUMNS) {
		dbreq_error(q, E_INTERNAL, "unexpected result");
		return;
	}
	pk = request_result(q->r);
	if (msgpack_pack_array(pk, (size_t)n) < 0)
		goto fail;
	for (int i = 0; i < n; i++)
		if (msgrow_pack(pk, res, i) < 0)
			goto fail;
	dbreq_finish(q);
	return;
fail:
	dbreq_abort(q, "cannot pack the result");
}

static void on_conn(struct dbreq *q)
{
	struct search *x = (struct search *)q;
	const struct request *r = q->r;
	bool prov = r->args.v[A_PROVIDER].present;
	bool conv = r->args.v[A_CONVERSATION].present;
	const char *vals[6] = {r->args.v[A_USER].s.p, r->args.v[A_PLATFORM].s.p,
			       x->pattern, x->limit};
	int n = 4;

	if (prov)
		vals[n++] = r->args.v[A_PROVIDER].s.p;
	if (conv)
		vals[n++] = r->args.v[A_CONVERSATION].s.p;
	dbreq_exec(q, sql_search[prov][conv], n, vals, NULL, NULL,
		   request_max_output(), false);
}

void search_dispatch(struct request *r)
{
	struct search *x = calloc(1, sizeof(*x));

	if (!x) {
		request_error(r, E_INTERNAL, "out of memory");
		return;
	}
	if (make_pattern(x->pattern, sizeof(x->pattern),
			 &r->args.v[A_QUERY].s) < 0) {
		free(x);
		request_error(r, E_INVALID_PARAMS, "query: too long");
		return;
	}
	snprintf(x->limit, sizeof(x->limit), "%lld",
		 (long long)r->args.v[A_LIMIT].i);
	x->q.r = r;
	x->q.on_conn = on_conn;
	x->q.on_rows = on_rows;
	x->q.on_end = search_free;
	dbreq_begin(&x->q);
}
