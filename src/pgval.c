/*
 * pgval.c - PostgreSQL values for requests (pgval.h).
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

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

int pgval_encode_arrays(const struct pgval_col *cols, int ncols,
			const struct request_queue *q, int n, char **buf,
			const char *vals[], int lens[])
{
	const struct request *r;
	size_t total = 0, off = 0;
	int k;

	*buf = NULL;
	for (int c = 0; c < ncols; c++) {
		size_t sz = PGVAL_ARRAY_HEADER;

		k = 0;
		TAILQ_FOREACH(r, q, link) {
			const struct arg_value *v = &r->args.v[cols[c].arg];

			if (k++ == n)
				break;
			sz += 4 + (cols[c].int8_scale ? 8 :
				   !v->present	     ? 0 :
							v->s.len);
		}
		if (sz > INT32_MAX)
			return -1;
		lens[c] = (int)sz;
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
			nulls |= !col->int8_scale &&
				 !r->args.v[col->arg].present;
		}
		vals[c] = p;
		put_be32(p, 1);				/* dimensions */
		put_be32(p + 4, nulls);			/* has NULLs */
		put_be32(p + 8, col->int8_scale ? PGVAL_INT8_OID :
						  PGVAL_TEXT_OID);
		put_be32(p + 12, (uint32_t)n);		/* length */
		put_be32(p + 16, 1);			/* lower bound */
		p += PGVAL_ARRAY_HEADER;
		k = 0;
		TAILQ_FOREACH(r, q, link) {
			const struct arg_value *v = &r->args.v[col->arg];

			if (k++ == n)
				break;
			if (col->int8_scale) {
				put_be32(p, 8);
				put_be64(p + 4, (uint64_t)v->i *
							(uint64_t)col->int8_scale);
				p += 12;
			} else if (!v->present) {	/* NULL */
				put_be32(p, UINT32_MAX);
				p += 4;
			} else {
				put_be32(p, (uint32_t)v->s.len);
				memcpy(p + 4, v->s.p, v->s.len);
				p += 4 + v->s.len;
			}
		}
		off += (size_t)lens[c];
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

int pgval_pack_text(msgpack_packer *pk, const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return msgpack_pack_nil(pk);
	return proto_pack_str(pk, PQgetvalue(res, row, col),
			      (size_t)PQgetlength(res, row, col));
}
