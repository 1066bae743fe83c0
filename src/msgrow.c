/*
 * msgrow.c - message rows of issue 18's reads, from binary results.
 */
#include <string.h>

#include "msgrow.h"
#include "pgval.h"

static bool null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) != 0;
}

int64_t msgrow_id(const PGresult *res, int row)
{
	return pgval_int8(res, row, MSGROW_ID);
}

const char *msgrow_time_binary(const PGresult *res, int row)
{
	return PQgetvalue(res, row, MSGROW_CREATED_AT);
}

/* A column's bytes; .p NULL when it is NULL. */
static struct strview col(const PGresult *res, int row, int c)
{
	struct strview s = {0};

	if (!null(res, row, c)) {
		s.p = PQgetvalue(res, row, c);
		s.len = (size_t)PQgetlength(res, row, c);
	}
	return s;
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
	out->tokens = null(res, row, MSGROW_TOKENS) ?
			      -1 : pgval_int8(res, row, MSGROW_TOKENS);
}
