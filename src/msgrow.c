/*
 * msgrow.c - message rows of issue 18's reads, from binary results.
 */
#include <endian.h>
#include <string.h>

#include "content.h"
#include "msgrow.h"
#include "proto.h"

/* PostgreSQL's epoch (2000-01-01) in Unix microseconds. */
#define PG_EPOCH_USEC 946684800000000LL

static bool null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) != 0;
}

static int64_t int8_at(const PGresult *res, int row, int col)
{
	uint64_t v;

	if (null(res, row, col) || PQgetlength(res, row, col) != 8)
		return 0;
	memcpy(&v, PQgetvalue(res, row, col), 8);
	return (int64_t)be64toh(v);
}

int64_t msgrow_id(const PGresult *res, int row)
{
	return int8_at(res, row, MSGROW_ID);
}

usec_t msgrow_time(const PGresult *res, int row)
{
	return int8_at(res, row, MSGROW_CREATED_AT) + PG_EPOCH_USEC;
}

const char *msgrow_time_binary(const PGresult *res, int row)
{
	return PQgetvalue(res, row, MSGROW_CREATED_AT);
}

static struct strview col(const PGresult *res, int row, int c)
{
	struct strview s = {0};

	if (!null(res, row, c)) {
		s.p = PQgetvalue(res, row, c);
		s.len = (size_t)PQgetlength(res, row, c);
	}
	return s;
}

static int pack_text(msgpack_packer *pk, const char *key, struct strview s)
{
	return proto_pack_cstr(pk, key) < 0 || proto_pack_str(pk, s.p, s.len) < 0
		       ? -1
		       : 0;
}

/* A stored msgpack value, spliced in as its bytes once checked
 * (content.h). */
static int pack_raw(msgpack_packer *pk, const char *key, struct strview s)
{
	return proto_pack_cstr(pk, key) < 0 || content_pack(pk, s) < 0 ? -1
									: 0;
}

int msgrow_pack(msgpack_packer *pk, const PGresult *res, int row)
{
	struct strview conv = col(res, row, MSGROW_CONVERSATION);
	struct strview tcid = col(res, row, MSGROW_TOOL_CALL_ID);
	struct strview name = col(res, row, MSGROW_NAME);
	struct strview model = col(res, row, MSGROW_MODEL);
	struct strview meta = col(res, row, MSGROW_METADATA);
	struct strview mp = col(res, row, MSGROW_CONTENT_MP);
	bool tokens = !null(res, row, MSGROW_TOKENS) &&
		      PQgetlength(res, row, MSGROW_TOKENS) == 4;
	size_t n = 5 + (conv.len > 0) + (tcid.p != NULL) + (name.p != NULL) +
		   (model.p != NULL) + tokens + (meta.p != NULL);

	if (msgpack_pack_map(pk, n) < 0 ||
	    proto_pack_cstr(pk, "id") < 0 ||
	    msgpack_pack_int64(pk, msgrow_id(res, row)) < 0 ||
	    pack_text(pk, "role", col(res, row, MSGROW_ROLE)) < 0 ||
	    (mp.p ? pack_raw(pk, "content", mp)
		  : pack_text(pk, "content", col(res, row, MSGROW_CONTENT))) < 0 ||
	    proto_pack_cstr(pk, "created_at") < 0 ||
	    proto_pack_timestamp(pk, msgrow_time(res, row)) < 0 ||
	    pack_text(pk, "provider", col(res, row, MSGROW_PROVIDER)) < 0)
		return -1;
	if (conv.len > 0 && pack_text(pk, "conversation_id", conv) < 0)
		return -1;
	if (tcid.p && pack_text(pk, "tool_call_id", tcid) < 0)
		return -1;
	if (name.p && pack_text(pk, "name", name) < 0)
		return -1;
	if (model.p && pack_text(pk, "model", model) < 0)
		return -1;
	if (tokens) {
		uint32_t v;

		memcpy(&v, PQgetvalue(res, row, MSGROW_TOKENS), 4);
		if (proto_pack_cstr(pk, "tokens") < 0 ||
		    msgpack_pack_int64(pk, (int32_t)be32toh(v)) < 0)
			return -1;
	}
	if (meta.p && pack_raw(pk, "metadata", meta) < 0)
		return -1;
	return 0;
}

/* Keys, ints, a timestamp and the str headers of a row, at most. */
#define MSGROW_OVERHEAD 192

size_t msgrow_bytes(const PGresult *res, int row)
{
	size_t n = MSGROW_OVERHEAD;

	for (int c = 0; c < MSGROW_NCOLUMNS; c++)
		if (c != MSGROW_CONTENT || null(res, row, MSGROW_CONTENT_MP))
			n += (size_t)PQgetlength(res, row, c);
	return n;
}

void msgrow_window(const PGresult *res, int row, struct window_row *out)
{
	memset(out, 0, sizeof(*out));
	out->role = col(res, row, MSGROW_ROLE);
	out->content = col(res, row, MSGROW_CONTENT);
	out->tool_call_id = col(res, row, MSGROW_TOOL_CALL_ID);
	out->content_mp = col(res, row, MSGROW_CONTENT_MP);
	out->tokens = -1;
	if (!null(res, row, MSGROW_TOKENS) &&
	    PQgetlength(res, row, MSGROW_TOKENS) == 4) {
		uint32_t v;

		memcpy(&v, PQgetvalue(res, row, MSGROW_TOKENS), 4);
		out->tokens = (int32_t)be32toh(v);
	}
}
