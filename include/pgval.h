/*
 * pgval.h - PostgreSQL values for requests: statement parameters made
 * from request arguments (strings as text, integers as binary int8, and
 * binary one-dimensional arrays for batch statements), and readers of
 * binary results (result_format 1: ids and counts as int8, times as
 * timestamptz microseconds since 2000-01-01, text as raw bytes).
 *
 * Pure code: no connection, no I/O (libpq only for PGresult's accessors).
 */
#ifndef CONVD_PGVAL_H
#define CONVD_PGVAL_H

#include <libpq-fe.h>
#include <msgpack.h>

#include "common.h"
#include "request.h"

/* The most parameters of one statement (pool.h's POOL_MAX_PARAMS). */
#define PGVAL_MAX_PARAMS 16

/* One statement's parameters: on the stack, copied by libpq when sent. */
struct pgval_params {
	int n;
	const char *values[PGVAL_MAX_PARAMS];
	int lengths[PGVAL_MAX_PARAMS];
	int formats[PGVAL_MAX_PARAMS];
	uint64_t int8[PGVAL_MAX_PARAMS];	/* big-endian */
	char *owned;	/* pgval_param_content's text, freed once sent
			 * (pgval_params_free) */
};

/* Appends r's argument i: its text, or NULL (SQL NULL) when absent.  For
 * string kinds (validate.h); integers go through pgval_param_int8.  Past
 * PGVAL_MAX_PARAMS nothing is appended (n stays at the bound). */
void pgval_param_arg(struct pgval_params *p, const struct request *r, int i);
/* Appends a bigint, sent in binary. */
void pgval_param_int8(struct pgval_params *p, int64_t v);
/* Appends a time as a timestamptz in binary (pgval_time's inverse). */
void pgval_param_time(struct pgval_params *p, usec_t t);
/* Appends r's argument i as bytea: a raw argument's msgpack bytes (for
 * issue 17's structured content, metadata and state), sent in binary;
 * NULL when absent or not raw. */
void pgval_param_bytes(struct pgval_params *p, const struct request *r,
		       int i);
/* Appends the text of r's content argument i: the string, or the text of
 * structured content (content.h), made into p->owned.  -1 when out of
 * memory or malformed. */
CONVD_WUR int pgval_param_content(struct pgval_params *p,
				  const struct request *r, int i);
/* Appends r's integer argument i as a bigint, or NULL when absent. */
void pgval_param_int8_arg(struct pgval_params *p, const struct request *r,
			  int i);
/* Appends r's argument i, or "" when absent (the default conversation). */
void pgval_param_or_empty(struct pgval_params *p, const struct request *r,
			  int i);
/* Frees what the parameters own (after they were sent). */
void pgval_params_free(struct pgval_params *p);

/* ---- binary arrays: a batch statement's parameters ---- */

#define PGVAL_TEXT_OID 25
#define PGVAL_INT8_OID 20
#define PGVAL_BYTEA_OID 17
/* An array's header: dimensions, has-NULLs, element type, length, lower
 * bound (int4 each); then each element: its length (int4, -1 for NULL)
 * and its bytes. */
#define PGVAL_ARRAY_HEADER 20
/* The most arrays of one batch statement. */
#define PGVAL_MAX_ARRAYS 16

enum pgval_col_kind {
	PGVAL_COL_PLAIN,	/* text[] or int8[] (int8_scale) */
	PGVAL_COL_INT8_NULL,	/* int8[]: the integer, NULL where absent */
	PGVAL_COL_BYTES,	/* bytea[]: a raw argument's msgpack bytes,
				 * NULL where absent or not raw */
	PGVAL_COL_CONTENT,	/* text[]: the string, or the text of a raw
				 * argument (content.h) */
};

struct pgval_col {
	int arg;		/* the request argument (validate.h order) */
	int int8_scale;		/* 0: text[] (NULL where absent); else
				 * int8[]: the integer argument times this */
	enum pgval_col_kind kind;	/* issue 17's kinds; 0: as above */
};

/*
 * Encodes one array per column, one element per request of q (the first
 * n, in queue order), into one allocation, *buf (the caller frees it);
 * vals[c] and lens[c] give column c's array.  Returns -1 when an array
 * would pass INT32_MAX bytes or memory is short (*buf is then NULL).
 */
CONVD_WUR int pgval_encode_arrays(const struct pgval_col *cols, int ncols,
				  const struct request_queue *q, int n,
				  char **buf, const char *vals[], int lens[]);

/* ---- reading binary results ---- */

/* An int8 column (0 when NULL or not 8 bytes). */
int64_t pgval_int8(const PGresult *res, int row, int col);
/* A timestamptz column as Unix microseconds. */
usec_t pgval_time(const PGresult *res, int row, int col);
bool pgval_bool(const PGresult *res, int row, int col);
/* A text column as a msgpack str (nil when NULL). */
int pgval_pack_text(msgpack_packer *pk, const PGresult *res, int row, int col);
/* A column's bytes as they came. */
struct strview pgval_view(const PGresult *res, int row, int col);

#endif
