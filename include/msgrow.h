/*
 * msgrow.h - message rows of issue 18's reads (get_context, get_messages,
 * search_messages): the columns their statements select, in binary
 * results, and the row map they answer (convd-protocol(7): {id, role,
 * content, created_at, provider} and the fields that are set).
 */
#ifndef CONVD_MSGROW_H
#define CONVD_MSGROW_H

#include <libpq-fe.h>
#include <msgpack.h>

#include "common.h"
#include "consts.h"
#include "window.h"

/*
 * Pages of rows are read with a byte bound of MSGROW_PAGE_BOUND times
 * max_output_bytes (pool_set_result_page: the rows past it are dropped).
 * One row holds less than 2 * max_request_bytes + 64 KiB (its content,
 * the text of it, its metadata), and max_request_bytes <=
 * max_output_bytes: so a page cut short by the bound holds more than
 * max_output_bytes of rows, more than one answer can take.  A caller that
 * answers at most max_output_bytes of them therefore never mistakes a
 * page cut short for the end of the rows.
 */
#define MSGROW_PAGE_BOUND 4

/* The columns, in this order, from column 0 of the result. */
#define MSGROW_COLUMNS                                                   \
	"id, role, content, created_at, model_provider, conversation_id,"  \
	" tool_call_id, name, model, tokens, metadata, content_mp"
#define MSGROW_NCOLUMNS 12

/* One conversation's rows, newest first, and those before a row (the
 * conversation's index: user_id, platform, model_provider,
 * conversation_id, created_at DESC, id DESC).  Parameters: $1 user_id,
 * $2 platform, $3 provider, $4 conversation_id ('' the default one),
 * $5 the rows, $6 the row's created_at (binary timestamptz), $7 its id. */
#define MSGROW_FROM_CONVERSATION                                            \
	" FROM " CONVD_T_HISTORY " WHERE user_id = $1 AND platform = $2"  \
	" AND model_provider = $3 AND conversation_id = $4"
#define MSGROW_BEFORE " AND (created_at, id) < ($6::timestamptz, $7::int8)"
#define MSGROW_NEWEST " ORDER BY created_at DESC, id DESC LIMIT $5"

enum msgrow_col {
	MSGROW_ID,
	MSGROW_ROLE,
	MSGROW_CONTENT,
	MSGROW_CREATED_AT,
	MSGROW_PROVIDER,
	MSGROW_CONVERSATION,
	MSGROW_TOOL_CALL_ID,
	MSGROW_NAME,
	MSGROW_MODEL,
	MSGROW_TOKENS,
	MSGROW_METADATA,
	MSGROW_CONTENT_MP,
};

int64_t msgrow_id(const PGresult *res, int row);
/* created_at, microseconds since the Unix epoch */
usec_t msgrow_time(const PGresult *res, int row);
/* created_at as PostgreSQL sends it (8 bytes, binary timestamptz), for
 * a binary parameter: the next page's cursor */
const char *msgrow_time_binary(const PGresult *res, int row);

/* Packs row `row` as the protocol's row map. */
CONVD_WUR int msgrow_pack(msgpack_packer *pk, const PGresult *res, int row);

/* The most bytes msgrow_pack writes for the row. */
size_t msgrow_bytes(const PGresult *res, int row);

/* The row as window.c reads it (pointing into res). */
void msgrow_window(const PGresult *res, int row, struct window_row *out);

#endif
