/*
 * rowlimit.c - a result gathered a row at a time within a byte bound
 * (rowlimit.h).
 */
#include "rowlimit.h"

void rowlimit_start(struct rowlimit *rl)
{
	rl->bytes = 0;
	rl->too_large = false;
	rl->full = false;
}

static void rowlimit_drop(struct rowlimit *rl, PGresult **res)
{
	rl->too_large = true;
	if (*res) {
		PQclear(*res);
		*res = NULL;
	}
}

void rowlimit_add(struct rowlimit *rl, PGresult **res, const PGresult *row,
		  PGconn *pg)
{
	int nf = PQnfields(row), at;
	size_t bytes = 0;

	if (rl->too_large || rl->full)
		return;
	for (int i = 0; i < nf; i++)
		bytes += (size_t)PQgetlength(row, 0, i);
	rl->bytes += bytes;
	if (rl->bytes > rl->limit && rl->page && *res &&
	    PQntuples(*res) > 0) {
		rl->full = true;	/* a page: keep the rows before */
		return;
	}
	if (rl->bytes > rl->limit) {
		rowlimit_drop(rl, res);
		return;
	}
	if (!*res) {
		PGresAttDesc att[ROWLIMIT_MAX_FIELDS];

		if (nf > ROWLIMIT_MAX_FIELDS)
			goto oom;
		for (int i = 0; i < nf; i++) {
			att[i].name = PQfname(row, i);
			att[i].tableid = PQftable(row, i);
			att[i].columnid = PQftablecol(row, i);
			att[i].format = PQfformat(row, i);
			att[i].typid = PQftype(row, i);
			att[i].typlen = PQfsize(row, i);
			att[i].atttypmod = PQfmod(row, i);
		}
		*res = PQmakeEmptyPGresult(pg, PGRES_TUPLES_OK);
		if (!*res || !PQsetResultAttrs(*res, nf, att))
			goto oom;
	}
	at = PQntuples(*res);
	for (int i = 0; i < nf; i++)
		if (!PQsetvalue(*res, at, i,
				PQgetisnull(row, 0, i) ? NULL :
							 PQgetvalue(row, 0, i),
				PQgetisnull(row, 0, i) ? -1 :
							 PQgetlength(row, 0, i)))
			goto oom;
	return;
oom:
	/* counted as too large: the request fails, convd goes on */
	rowlimit_drop(rl, res);
}

bool rowlimit_over(const struct rowlimit *rl, const PGresult *res)
{
	size_t bytes = 0;

	for (int i = 0; i < PQntuples(res); i++)
		for (int j = 0; j < PQnfields(res); j++)
			bytes += (size_t)PQgetlength(res, i, j);
	return bytes > rl->limit;
}
