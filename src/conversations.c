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
#define STATE "conversation_state"
#define STATE_KEY                                                         \
	" WHERE user_id = $1 AND platform = $2 AND model_provider = $3"   \
	" AND conversation_id = $4"

const struct pool_statement conversations_statements[] = {
	/* One page of a user's conversations, newest activity first, after
	 * the cursor $4 ("µs.hex(provider).hex(conversation_id)", checked
	 * by list_handle): the (user_id, platform, model_provider,
	 * conversation_id, created_at) index gives each conversation's rows
	 * in order. */
	{"convd_conv_list",
	 "WITH c AS (SELECT to_timestamp(split_part($4, '.', 1)::int8"
	 " / 1000000) + (split_part($4, '.', 1)::int8 % 1000000)::float8"
	 " * interval '1 microsecond' AS at,"
	 " convert_from(decode(split_part($4, '.', 2), 'hex'), 'UTF8') AS p,"
	 " convert_from(decode(split_part($4, '.', 3), 'hex'), 'UTF8') AS cv)"
	 " SELECT h.model_provider, h.conversation_id, count(*),"
	 " min(h.created_at), max(h.created_at),"
	 " (SELECT s.metadata FROM " STATE " s"
	 " WHERE s.user_id = $1 AND s.platform = $2"
	 " AND s.model_provider = h.model_provider"
	 " AND s.conversation_id = h.conversation_id)"
	 " FROM " H " h WHERE h.user_id = $1 AND h.platform = $2"
	 " AND ($3::varchar IS NULL OR h.model_provider = $3)"
	 " GROUP BY h.model_provider, h.conversation_id"
	 " HAVING $4::text IS NULL OR (max(h.created_at), h.model_provider,"
	 " h.conversation_id) < (SELECT c.at, c.p, c.cv FROM c)"
	 " ORDER BY max(h.created_at) DESC, h.model_provider DESC,"
	 " h.conversation_id DESC LIMIT $5"},
	/* A conversation's messages and its state. */
	{"convd_conv_delete",
	 "WITH d AS (DELETE FROM " H STATE_KEY " RETURNING 1),"
	 " s AS (DELETE FROM " STATE STATE_KEY " RETURNING 1)"
	 " SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM s)"},
	{"convd_state_get",
	 "SELECT state, version, updated_at, metadata FROM " STATE STATE_KEY},
	/* $5 state, $6 expected_version (NULL: unconditional), $7 metadata
	 * (NULL: keep the stored metadata): the new version (NULL when
	 * expected_version did not match); then the current one as of the
	 * statement's snapshot (NULL: none visible -- with expected_version
	 * 0, a state another writer committed after the snapshot began,
	 * which the INSERT ran into); then whether expected_version was 0 */
	{"convd_state_set",
	 "WITH ins AS (INSERT INTO " STATE " AS s (user_id, platform,"
	 " model_provider, conversation_id, state, version, metadata)"
	 " SELECT $1, $2, $3, $4, $5, 1, $7"
	 " WHERE $6::int8 IS NULL OR $6::int8 = 0"
	 " ON CONFLICT (user_id, platform, model_provider, conversation_id)"
	 " DO UPDATE SET state = EXCLUDED.state,"
	 " metadata = coalesce(EXCLUDED.metadata, s.metadata),"
	 " version = s.version + 1, updated_at = now()"
	 " WHERE $6::int8 IS NULL RETURNING s.version),"
	 " upd AS (UPDATE " STATE " SET state = $5,"
	 " metadata = coalesce($7, metadata),"
	 " version = version + 1, updated_at = now()" STATE_KEY
	 " AND $6::int8 > 0 AND version = $6::int8 RETURNING version),"
	 " done AS (SELECT version FROM ins UNION ALL"
	 " SELECT version FROM upd)"
	 " SELECT (SELECT version FROM done),"
	 " (SELECT version FROM " STATE STATE_KEY
	 " AND NOT EXISTS (SELECT 1 FROM done) FOR SHARE),"
	 " $6::int8 IS NOT DISTINCT FROM 0"},
};
const size_t conversations_nstatements =
	sizeof(conversations_statements) / sizeof(conversations_statements[0]);

/* ---- list_conversations ---- */

/* The cursor of the row after which the next page starts. */
#define CURSOR_MAX 1024

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
		/* 20 digits, two dots, 2 x (50 + 255) hex digits */
		char next[CURSOR_MAX];
		int l = snprintf(next, sizeof(next), "%lld.",
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
	.stmt = "convd_conv_list", .nfields = 6, .pack = pack_list,
};

/* user_id platform provider? after? limit: one more row than asked says
 * whether there is a next page */
static int build_list(const struct request *r, struct pgval_params *p,
		      const struct query_def **def)
{
	pgval_param_arg(p, r, 0);
	pgval_param_arg(p, r, 1);
	pgval_param_arg(p, r, 2);
	pgval_param_arg(p, r, 3);
	pgval_param_int8(p, r->args.v[4].i + 1);
	*def = &def_list;
	return 0;
}

static int unhex(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
				      : -1;
}

/* A hex field of a cursor: even, decodes to UTF-8 without NUL of at most
 * max bytes (min: at least). */
static bool cursor_field(const char *s, size_t n, size_t min, size_t max)
{
	char buf[255];

	if (n % 2 || n / 2 < min || n / 2 > max)
		return false;
	for (size_t i = 0; i < n / 2; i++) {
		int a = unhex(s[2 * i]), b = unhex(s[2 * i + 1]);

		if (a < 0 || b < 0 || (a == 0 && b == 0))
			return false;
		buf[i] = (char)(a << 4 | b);
	}
	return utf8_valid(buf, n / 2);
}

/* Whether `after` is a cursor convd made: "µs.hex.hex". */
static bool cursor_valid(struct strview c)
{
	const char *d1 = memchr(c.p, '.', c.len), *d2, *end = c.p + c.len;
	size_t digits;

	if (!d1)
		return false;
	digits = (size_t)(d1 - c.p);
	if (digits < 1 || digits > 18)
		return false;
	for (const char *q = c.p; q < d1; q++)
		if (*q < '0' || *q > '9')
			return false;
	d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1));
	return d2 &&
	       cursor_field(d1 + 1, (size_t)(d2 - d1 - 1), 1, 50) &&
	       cursor_field(d2 + 1, (size_t)(end - d2 - 1), 0, 255);
}

void conversations_list(struct request *r)
{
	if (r->args.v[3].present && !cursor_valid(r->args.v[3].s)) {
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
