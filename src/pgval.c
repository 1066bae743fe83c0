/*
 * pgval.c - PostgreSQL values for requests (pgval.h).
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "content.h"
#include "pgval.h"
#include "proto.h"

/* PostgreSQL's epoch (2000-01-01) in Unix microseconds. */
#define PG_EPOCH_USEC 946684800000000LL

/* ---- parameters ------------------------------------------------------------ */

void pgval_param_arg(struct pgval_params *p, const struct request *r, int i)
{
	if (p->n >= PGVAL_MAX_PARAMS)
		return;
	p->values[p->n] = r->args.v[i].present ? r->args.v[i].s.p : NULL;
	p->lengths[p->n] = 0;
	p->formats[p->n] = 0;
	p->n++;
}

void pgval_param_int8(struct pgval_params *p, int64_t v)
{
	if (p->n >= PGVAL_MAX_PARAMS)
		return;
	p->int8[p->n] = htobe64((uint64_t)v);
	p->values[p->n] = (const char *)&p->int8[p->n];
	p->lengths[p->n] = 8;
	p->formats[p->n] = 1;
	p->n++;
}

void pgval_param_time(struct pgval_params *p, usec_t t)
{
	pgval_param_int8(p, t - PG_EPOCH_USEC);
}

void pgval_param_bytes(struct pgval_params *p, const struct request *r,
		       int i)
{
	const struct validate_arg *v = &r->args.v[i];

	if (p->n >= PGVAL_MAX_PARAMS)
		return;
	p->values[p->n] = v->present && v->raw ? v->s.p : NULL;
	p->lengths[p->n] = v->present && v->raw ? (int)v->s.len : 0;
	p->formats[p->n] = 1;
	p->n++;
}

int pgval_param_content(struct pgval_params *p, const struct request *r,
			int i)
{
	const struct validate_arg *v = &r->args.v[i];
	ssize_t n;

	if (!v->raw) {
		pgval_param_arg(p, r, i);
		return 0;
	}
	if (p->n >= PGVAL_MAX_PARAMS || p->owned)
		return -1;
	p->owned = malloc(v->s.len + 1);
	if (!p->owned)
		return -1;
	n = content_text(v->s, p->owned, v->s.len);
	if (n < 0)
		return -1;
	p->owned[n] = '\0';
	p->values[p->n] = p->owned;
	p->lengths[p->n] = 0;
	p->formats[p->n] = 0;
	p->n++;
	return 0;
}

void pgval_param_int8_arg(struct pgval_params *p, const struct request *r,
			  int i)
{
	if (r->args.v[i].present)
		pgval_param_int8(p, r->args.v[i].i);
	else
		pgval_param_arg(p, r, i);	/* NULL */
}

void pgval_param_or_empty(struct pgval_params *p, const struct request *r,
			  int i)
{
	pgval_param_arg(p, r, i);
	if (!r->args.v[i].present && p->n > 0)
		p->values[p->n - 1] = "";
}

void pgval_params_free(struct pgval_params *p)
{
	free(p->owned);
	p->owned = NULL;
}

/* ---- arrays -------------------------------------------------------------------- */

static void put_be32(char *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put_be64(char *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

/* An element's bytes at most (its text may come out shorter). */
static size_t elem_size(const struct pgval_col *col, const struct validate_arg *v)
{
	switch (col->kind) {
	case PGVAL_COL_INT8_NULL:
		return v->present ? 8 : 0;
	case PGVAL_COL_BYTES:
		return v->present && v->raw ? v->s.len : 0;
	case PGVAL_COL_CONTENT:
		return v->present ? v->s.len : 0;
	case PGVAL_COL_PLAIN:
	default:
		return col->int8_scale ? 8 : !v->present ? 0 : v->s.len;
	}
}

static bool elem_null(const struct pgval_col *col, const struct validate_arg *v)
{
	switch (col->kind) {
	case PGVAL_COL_BYTES:
		return !v->present || !v->raw;
	case PGVAL_COL_PLAIN:
		return !col->int8_scale && !v->present;
	default:
		return !v->present;
	}
}

static uint32_t elem_oid(const struct pgval_col *col)
{
	switch (col->kind) {
	case PGVAL_COL_INT8_NULL:
		return PGVAL_INT8_OID;
	case PGVAL_COL_BYTES:
		return PGVAL_BYTEA_OID;
	case PGVAL_COL_CONTENT:
		return PGVAL_TEXT_OID;
	case PGVAL_COL_PLAIN:
	default:
		return col->int8_scale ? PGVAL_INT8_OID : PGVAL_TEXT_OID;
	}
}

/* Writes one element at p; returns its bytes with the length word, or
 * -1 (structured content that is not well-formed). */
static ssize_t elem_put(char *p, const struct pgval_col *col,
			const struct validate_arg *v)
{
	ssize_t t;

	if (elem_null(col, v)) {
		put_be32(p, UINT32_MAX);
		return 4;
	}
	switch (col->kind) {
	case PGVAL_COL_INT8_NULL:
		put_be32(p, 8);
		put_be64(p + 4, (uint64_t)v->i);
		return 12;
	case PGVAL_COL_CONTENT:
		if (!v->raw)
			break;
		t = content_text(v->s, p + 4, v->s.len);
		if (t < 0)
			return -1;
		put_be32(p, (uint32_t)t);
		return 4 + t;
	case PGVAL_COL_PLAIN:
		if (col->int8_scale) {
			put_be32(p, 8);
			put_be64(p + 4, (uint64_t)v->i *
						(uint64_t)col->int8_scale);
			return 12;
		}
		break;
	default:
		break;
	}
	put_be32(p, (uint32_t)v->s.len);
	memcpy(p + 4, v->s.p, v->s.len);
	return 4 + (ssize_t)v->s.len;
}

int pgval_encode_arrays(const struct pgval_col *cols, int ncols,
			const struct request_queue *q, int n, char **buf,
			const char *vals[], int lens[])
{
	const struct request *r;
	size_t total = 0, off = 0;
	size_t room[PGVAL_MAX_ARRAYS];
	int k;

	*buf = NULL;
	if (ncols > PGVAL_MAX_ARRAYS)
		return -1;
	for (int c = 0; c < ncols; c++) {
		size_t sz = PGVAL_ARRAY_HEADER;

		k = 0;
		TAILQ_FOREACH(r, q, link) {
			if (k++ == n)
				break;
			sz += 4 + elem_size(&cols[c], &r->args.v[cols[c].arg]);
		}
		if (sz > INT32_MAX)
			return -1;
		room[c] = sz;
		total += sz;
	}
	*buf = malloc(total ? total : 1);
	if (!*buf)
		return -1;
	for (int c = 0; c < ncols; c++) {
		char *p = *buf + off;
		const struct pgval_col *col = &cols[c];
		bool nulls = false;

		k = 0;
		TAILQ_FOREACH(r, q, link) {
			if (k++ == n)
				break;
			nulls |= elem_null(col, &r->args.v[col->arg]);
		}
		vals[c] = p;
		put_be32(p, 1);				/* dimensions */
		put_be32(p + 4, nulls);			/* has NULLs */
		put_be32(p + 8, elem_oid(col));
		put_be32(p + 12, (uint32_t)n);		/* length */
		put_be32(p + 16, 1);			/* lower bound */
		p += PGVAL_ARRAY_HEADER;
		k = 0;
		TAILQ_FOREACH(r, q, link) {
			ssize_t w;

			if (k++ == n)
				break;
			w = elem_put(p, col, &r->args.v[col->arg]);
			if (w < 0) {
				free(*buf);
				*buf = NULL;
				return -1;
			}
			p += w;
		}
		lens[c] = (int)(p - vals[c]);
		off += room[c];
	}
	return 0;
}

/* ---- reading binary results ------------------------------------------------ */

int64_t pgval_int8(const PGresult *res, int row, int col)
{
	uint64_t v;

	if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
		return 0;
	memcpy(&v, PQgetvalue(res, row, col), 8);
	return (int64_t)be64toh(v);
}

usec_t pgval_time(const PGresult *res, int row, int col)
{
	return pgval_int8(res, row, col) + PG_EPOCH_USEC;
}

bool pgval_bool(const PGresult *res, int row, int col)
{
	return !PQgetisnull(res, row, col) && PQgetlength(res, row, col) == 1 &&
	       PQgetvalue(res, row, col)[0] != 0;
}

struct strview pgval_view(const PGresult *res, int row, int col)
{
	return (struct strview){ .p = PQgetvalue(res, row, col),
				 .len = (size_t)PQgetlength(res, row, col) };
}

int pgval_pack_text(msgpack_packer *pk, const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return msgpack_pack_nil(pk);
	return proto_pack_str(pk, PQgetvalue(res, row, col),
			      (size_t)PQgetlength(res, row, col));
}
