/*
 * conversations.c - issue 17's methods on conversations themselves:
 * list_conversations, delete_conversation, get_state, set_state
 * (convd-protocol(7) "CONVERSATIONS").  Statements, parameters and
 * result packing only: query.c runs them.
 *
 * States and metadata are msgpack bytes (bytea): they travel to the
 * database as binary parameters, exactly as the client sent them, and
 * come back spliced into the answer (content_pack).  A set with
 * expected_version is one statement: the INSERT ... ON CONFLICT or the
 * UPDATE ... WHERE version = N that a concurrent set cannot slip between
 * (its row lock makes the loser re-read the row and change nothing); when
 * it changed nothing, the same statement reads the current version, with
 * a row lock so that it is the latest committed one, for the `conflict`
 * message.
 */
#include <stdio.h>
#include <string.h>

#include "consts.h"
#include "content.h"
#include "conversations.h"
#include "pgval.h"
#include "proto.h"
#include "query.h"
#include "request.h"
#include "utf8.h"

#define H CONVD_T_HISTORY
#define STATE_KEY                                                         \
	" WHERE user_id = $1 AND platform = $2 AND model_provider = $3"   \
	" AND conversation_id = $4"

const struct pool_statement conversations_statements[] = {
	/*
	 * One page of a user's conversations, newest activity first, as of
	 * the walk's bound $4: the messages with id <= $4 only (NULL on the
	 * first page: every message visible).  Column 6 is the bound the
	 * next page's cursor carries: $4, or on the first page the largest
	 * id among the user's messages that the statement sees.  So every
	 * page of one walk ranks the same messages: a message written after
	 * the first page has a larger id and moves nothing (issue 17: a
	 * conversation that got a message between pages was skipped), and
	 * a conversation begun after it is not listed by that walk.  What
	 * an id bound cannot see (convd-protocol(7) says both): a message
	 * whose INSERT had drawn its id but not committed when the first
	 * page was read (visible later with an id below the bound; none in
	 * 79 walks of 200 conversations against 4 writers, 64,790 messages
	 * written), and deletions (a listed
	 * conversation whose newest message is deleted may come again).
	 *
	 * $5..$7 are the cursor's last row (its last activity, sent binary,
	 * its provider and conversation id in hex); the row comparison is
	 * the ORDER BY's, so a page starts right after it.
	 *
	 * The plan (EXPLAIN (ANALYZE, BUFFERS) of the generic plan, which
	 * every prepared run after the fifth uses, for a user with 2,000
	 * conversations and 10,000 messages among 310,000): an Index Only
	 * Scan (Backward) of simple_conversation_history_conversation_idx
	 * on (user_id, platform), Heap Fetches 0, the provider and id <= $4
	 * filters on the index's own columns; its rows come out grouped, so
	 * a GroupAggregate without a sort (HAVING: the cursor), a WindowAgg
	 * for the bound, a top-N heapsort for the page, and the state's
	 * metadata by its primary key for the page's rows only.  329
	 * buffers a page, first or tenth, as for the statement before the
	 * bound (18 and 27 ms against 14 and 32 ms on a busy machine: the
	 * same work).  One pass over the user's index entries per page:
	 * an index led by the last activity cannot serve the rank as of
	 * the bound (the last activity up to $4 is not the last activity).
	 */
	{"convd_conv_list",
	 "SELECT h.model_provider, h.conversation_id, count(*),"
	 " min(h.created_at), max(h.created_at),"
	 " (SELECT s.metadata FROM " CONVD_T_STATE " s"
	 " WHERE s.user_id = $1 AND s.platform = $2"
	 " AND s.model_provider = h.model_provider"
	 " AND s.conversation_id = h.conversation_id),"
	 " coalesce($4::int8, max(max(h.id)) OVER ())"
	 " FROM " H " h WHERE h.user_id = $1 AND h.platform = $2"
	 " AND ($3::varchar IS NULL OR h.model_provider = $3)"
	 " AND ($4::int8 IS NULL OR h.id <= $4::int8)"
	 " GROUP BY h.model_provider, h.conversation_id"
	 " HAVING $5::timestamptz IS NULL OR (max(h.created_at),"
	 " h.model_provider, h.conversation_id) < ($5::timestamptz,"
	 " convert_from(decode($6::text, 'hex'), 'UTF8'),"
	 " convert_from(decode($7::text, 'hex'), 'UTF8'))"
	 " ORDER BY max(h.created_at) DESC, h.model_provider DESC,"
	 " h.conversation_id DESC LIMIT $8"},
	/* A conversation's messages and its state. */
	{"convd_conv_delete",
	 "WITH d AS (DELETE FROM " H STATE_KEY " RETURNING 1),"
	 " s AS (DELETE FROM " CONVD_T_STATE STATE_KEY " RETURNING 1)"
	 " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM s)"},
	{"convd_state_get",
	 "SELECT state, version, updated_at, metadata FROM " CONVD_T_STATE
	 STATE_KEY},
	/* $5 state, $6 expected_version (NULL: unconditional), $7 metadata
	 * (NULL: keep the stored metadata): the new version (NULL when
	 * expected_version did not match); then the current one as of the
	 * statement's snapshot (NULL: none visible -- with expected_version
	 * 0, a state another writer committed after the snapshot began,
	 * which the INSERT ran into); then whether expected_version was 0 */
	{"convd_state_set",
	 "WITH ins AS (INSERT INTO " CONVD_T_STATE " AS s (user_id, platform,"
	 " model_provider, conversation_id, state, version, metadata)"
	 " SELECT $1, $2, $3, $4, $5, 1, $7"
	 " WHERE $6::int8 IS NULL OR $6::int8 = 0"
	 " ON CONFLICT (user_id, platform, model_provider, conversation_id)"
	 " DO UPDATE SET state = EXCLUDED.state,"
	 " metadata = coalesce(EXCLUDED.metadata, s.metadata),"
	 " version = s.version + 1, updated_at = now()"
	 " WHERE $6::int8 IS NULL RETURNING s.version),"
	 " upd AS (UPDATE " CONVD_T_STATE " SET state = $5,"
	 " metadata = coalesce($7, metadata),"
	 " version = version + 1, updated_at = now()" STATE_KEY
	 " AND $6::int8 > 0 AND version = $6::int8 RETURNING version),"
	 " done AS (SELECT version FROM ins UNION ALL"
	 " SELECT version FROM upd)"
	 " SELECT (SELECT version FROM done),"
	 " (SELECT version FROM " CONVD_T_STATE STATE_KEY
	 " AND NOT EXISTS (SELECT 1 FROM done) FOR SHARE),"
	 " $6::int8 IS NOT DISTINCT FROM 0"},
};
const size_t conversations_nstatements =
	sizeof(conversations_statements) / sizeof(conversations_statements[0]);

/* ---- list_conversations ---- */

/*
 * The cursor of the row after which the next page starts:
 * "bound.µs.hex(provider).hex(conversation_id)", the walk's bound (the
 * largest message id its pages rank), the row's last activity in Unix
 * microseconds, and its keys.  A cursor of convd before the bound,
 * "µs.hex.hex", is still taken: its walk ranks every message, as then.
 * At most 19 + 20 + 2 x (50 + 255) digits and three dots.
 */
#define CURSOR_MAX 1024

/* PostgreSQL's earliest timestamptz (4713 BC), in Unix microseconds. */
#define PG_MIN_USEC (-210866803200000000LL)

struct cursor {
	int64_t bound;		/* 0: none (a cursor from before the bound) */
	int64_t at;
	struct strview provider, conv;	/* hex */
};

static size_t hex(char *out, const char *s, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[(unsigned char)s[i] >> 4];
		out[2 * i + 1] = digits[(unsigned char)s[i] & 15];
	}
	return 2 * n;
}

static int pack_list(msgpack_packer *pk, const PGresult *res,
		     const struct request *r)
{
	int n = PQntuples(res), limit = (int)r->args.v[4].i;
	int shown = n > limit ? limit : n;

	if (msgpack_pack_map(pk, 2) < 0 ||
	    proto_pack_cstr(pk, "conversations") < 0 ||
	    msgpack_pack_array(pk, (size_t)shown) < 0)
		return -1;
	for (int i = 0; i < shown; i++) {
		size_t conv = (size_t)PQgetlength(res, i, 1);
		bool meta = !PQgetisnull(res, i, 5);

		if (msgpack_pack_map(pk, 4 + (conv > 0) + meta) < 0 ||
		    proto_pack_cstr(pk, "provider") < 0 ||
		    pgval_pack_text(pk, res, i, 0) < 0 ||
		    (conv > 0 && (proto_pack_cstr(pk, "conversation_id") < 0 ||
				  pgval_pack_text(pk, res, i, 1) < 0)) ||
		    proto_pack_cstr(pk, "message_count") < 0 ||
		    msgpack_pack_int64(pk, pgval_int8(res, i, 2)) < 0 ||
		    proto_pack_cstr(pk, "first_message_at") < 0 ||
		    proto_pack_timestamp(pk, pgval_time(res, i, 3)) < 0 ||
		    proto_pack_cstr(pk, "last_message_at") < 0 ||
		    proto_pack_timestamp(pk, pgval_time(res, i, 4)) < 0 ||
		    (meta && (proto_pack_cstr(pk, "metadata") < 0 ||
			      content_pack(pk, pgval_view(res, i, 5)) < 0)))
			return -1;
	}
	if (proto_pack_cstr(pk, "next") < 0)
		return -1;
	if (n <= limit)
		return msgpack_pack_nil(pk);
	{
		char next[CURSOR_MAX];
		int l = snprintf(next, sizeof(next), "%lld.%lld.",
				 (long long)pgval_int8(res, shown - 1, 6),
				 (long long)pgval_time(res, shown - 1, 4));
		size_t o = (size_t)l;
		struct strview p = pgval_view(res, shown - 1, 0);
		struct strview c = pgval_view(res, shown - 1, 1);

		if (l < 0 || o + 2 * (p.len + c.len) + 2 > sizeof(next))
			return -1;
		o += hex(next + o, p.p, p.len);
		next[o++] = '.';
		o += hex(next + o, c.p, c.len);
		return proto_pack_str(pk, next, o);
	}
}

static const struct query_def def_list = {
	.stmt = "convd_conv_list", .nfields = 7, .pack = pack_list,
};

static int unhex(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
				      : -1;
}

/* A hex field of a cursor: even, decodes to UTF-8 without NUL of at most
 * max bytes (min: at least). */
static bool cursor_field(struct strview f, size_t min, size_t max)
{
	char buf[255];

	if (f.len % 2 || f.len / 2 < min || f.len / 2 > max)
		return false;
	for (size_t i = 0; i < f.len / 2; i++) {
		int a = unhex(f.p[2 * i]), b = unhex(f.p[2 * i + 1]);

		if (a < 0 || b < 0 || (a == 0 && b == 0))
			return false;
		buf[i] = (char)(a << 4 | b);
	}
	return utf8_valid(buf, f.len / 2);
}

/* A decimal field of a cursor, without leading zeros ("-" first when
 * sign), into *v: false when it is not one or overflows int64. */
static bool cursor_int(struct strview f, bool sign, int64_t *v)
{
	size_t i = sign && f.len > 0 && f.p[0] == '-';
	uint64_t n = 0, lim = i ? (uint64_t)INT64_MAX + 1 : INT64_MAX;

	if (f.len <= i || f.len - i > 19 || (f.p[i] == '0' && f.len - i > 1))
		return false;
	for (size_t k = i; k < f.len; k++) {
		if (f.p[k] < '0' || f.p[k] > '9')
			return false;
		n = n * 10 + (uint64_t)(f.p[k] - '0');	/* 19 digits fit */
		if (n > lim)
			return false;
	}
	*v = i ? (int64_t)(0 - n) : (int64_t)n;
	return true;
}

/* Parses `after` as a cursor convd made (see CURSOR_MAX). */
static bool cursor_parse(struct strview s, struct cursor *c)
{
	struct strview f[4];
	size_t nf = 0, start = 0;

	for (size_t i = 0; i <= s.len; i++) {
		if (i < s.len && s.p[i] != '.')
			continue;
		if (nf == 4)
			return false;
		f[nf++] = (struct strview){s.p + start, i - start};
		start = i + 1;
	}
	if (nf < 3)
		return false;
	c->bound = 0;
	if (nf == 4 && (!cursor_int(f[0], false, &c->bound) || c->bound < 1))
		return false;
	c->provider = f[nf - 2];
	c->conv = f[nf - 1];
	return cursor_int(f[nf - 3], true, &c->at) && c->at >= PG_MIN_USEC &&
	       cursor_field(c->provider, 1, 50) &&
	       cursor_field(c->conv, 0, 255);
}

/* Appends SQL NULL, or text sent binary (its bytes and their length:
 * a text's binary form), pointing into the request. */
static void param_text(struct pgval_params *p, const struct strview *v)
{
	if (p->n >= PGVAL_MAX_PARAMS)
		return;
	p->values[p->n] = v ? v->p : NULL;
	p->lengths[p->n] = v ? (int)v->len : 0;
	p->formats[p->n] = v != NULL;
	p->n++;
}

/* user_id platform provider? bound? at? provider? conversation? limit:
 * one more row than asked says whether there is a next page. */
static int build_list(const struct request *r, struct pgval_params *p,
		      const struct query_def **def)
{
	struct cursor c = {0};
	bool after = r->args.v[3].present;

	if (after && !cursor_parse(r->args.v[3].s, &c))
		return -1;	/* conversations_list checked it */
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 1);
	pgval_param_arg(p, r, 2);
	if (c.bound > 0)
		pgval_param_int8(p, c.bound);
	else
		param_text(p, NULL);
	if (after)	/* a timestamptz's binary form */
		pgval_param_time(p, c.at);
	else
		param_text(p, NULL);
	param_text(p, after ? &c.provider : NULL);
	param_text(p, after ? &c.conv : NULL);
	pgval_param_int8(p, r->args.v[4].i + 1);
	*def = &def_list;
	return 0;
}

void conversations_list(struct request *r)
{
	struct cursor c;

	if (r->args.v[3].present && !cursor_parse(r->args.v[3].s, &c)) {
		request_error(r, E_INVALID_PARAMS,
			      "after: not a cursor of list_conversations "
			      "(pass the `next` of the previous page)");
		return;
	}
	query_run(r, build_list);
}

/* ---- delete_conversation, get_state, set_state ---- */

static int pack_deleted(msgpack_packer *pk, const PGresult *res,
			const struct request *r CONVD_UNUSED)
{
	if (msgpack_pack_map(pk, 1) < 0 || proto_pack_cstr(pk, "deleted") < 0 ||
	    msgpack_pack_int64(pk, pgval_int8(res, 0, 0)) < 0)
		return -1;
	return 0;
}

static int pack_state(msgpack_packer *pk, const PGresult *res,
		      const struct request *r CONVD_UNUSED)
{
	bool meta;

	if (PQntuples(res) == 0)
		return msgpack_pack_nil(pk);
	meta = !PQgetisnull(res, 0, 3);
	if (msgpack_pack_map(pk, 3 + meta) < 0 ||
	    proto_pack_cstr(pk, "state") < 0 ||
	    content_pack(pk, pgval_view(res, 0, 0)) < 0 ||
	    proto_pack_cstr(pk, "version") < 0 ||
	    msgpack_pack_int64(pk, pgval_int8(res, 0, 1)) < 0 ||
	    proto_pack_cstr(pk, "updated_at") < 0 ||
	    proto_pack_timestamp(pk, pgval_time(res, 0, 2)) < 0 ||
	    (meta && (proto_pack_cstr(pk, "metadata") < 0 ||
		      content_pack(pk, pgval_view(res, 0, 3)) < 0)))
		return -1;
	return 0;
}

static int pack_version(msgpack_packer *pk, const PGresult *res,
			const struct request *r CONVD_UNUSED)
{
	if (msgpack_pack_map(pk, 1) < 0 || proto_pack_cstr(pk, "version") < 0 ||
	    msgpack_pack_int64(pk, pgval_int8(res, 0, 0)) < 0)
		return -1;
	return 0;
}

/* set_state changed nothing: expected_version was not the version. */
static enum rpc_error refuse_conflict(const PGresult *res, char *msg,
				      size_t len)
{
	if (!PQgetisnull(res, 0, 0))
		return E_COUNT_;
	if (PQgetisnull(res, 0, 1) && pgval_bool(res, 0, 2))
		snprintf(msg, len, "expected_version does not match: another "
				   "writer has just created the state");
	else if (PQgetisnull(res, 0, 1))
		snprintf(msg, len, "expected_version does not match: there is "
				   "no state");
	else
		snprintf(msg, len, "expected_version does not match: the "
				   "current version is %lld",
			 (long long)pgval_int8(res, 0, 1));
	return E_CONFLICT;
}

static const struct query_def def_delete = {
	.stmt = "convd_conv_delete", .nfields = 2, .one_row = true,
	.pack = pack_deleted,
};
static const struct query_def def_state_get = {
	.stmt = "convd_state_get", .nfields = 4, .pack = pack_state,
};
static const struct query_def def_state_set = {
	.stmt = "convd_state_set", .nfields = 3, .one_row = true,
	.refuse = refuse_conflict, .pack = pack_version,
};

/* The conversation of argument i: '' (the default) when absent. */
static void param_conversation(struct pgval_params *p,
			       const struct request *r, int i)
{
	pgval_param_arg(p, r, i);
	if (!r->args.v[i].present)
		p->values[p->n - 1] = "";
}

int conversations_build(const struct request *r, struct pgval_params *p,
			const struct query_def **def)
{
	switch (r->spec->id) {
	case METHOD_DELETE_CONVERSATION: /* user provider conversation platform */
		pgval_param_arg(p, r, 0);
		pgval_param_arg(p, r, 3);
		pgval_param_arg(p, r, 1);
		pgval_param_arg(p, r, 2);
		*def = &def_delete;
		return 0;
	case METHOD_GET_STATE: /* user provider conversation? platform */
		pgval_param_arg(p, r, 0);
		pgval_param_arg(p, r, 3);
		pgval_param_arg(p, r, 1);
		param_conversation(p, r, 2);
		*def = &def_state_get;
		return 0;
	case METHOD_SET_STATE: /* user provider state conversation? expected?
			     metadata? platform */
		pgval_param_arg(p, r, 0);
		pgval_param_arg(p, r, 6);
		pgval_param_arg(p, r, 1);
		param_conversation(p, r, 3);
		pgval_param_bytes(p, r, 2);
		if (r->args.v[4].present)
			pgval_param_int8(p, r->args.v[4].i);
		else
			pgval_param_arg(p, r, 4);	/* NULL */
		pgval_param_bytes(p, r, 5);
		*def = &def_state_set;
		return 0;
	default:
		return -1;
	}
}
