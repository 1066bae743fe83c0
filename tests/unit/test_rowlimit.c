/*
 * test_rowlimit.c - a result gathered a row at a time within a byte
 * bound (rowlimit.c), on results made in memory (no server).
 */
#include <stdio.h>
#include <string.h>

#include "rowlimit.h"
#include "tap.h"

/* One row as libpq's single-row mode gives it: nf text columns. */
static PGresult *row(int nf, const char *const *vals)
{
	PGresAttDesc att[32];
	PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_SINGLE_TUPLE);
	char names[32][8];

	memset(att, 0, sizeof(att));
	for (int i = 0; i < nf; i++) {
		snprintf(names[i], sizeof(names[i]), "c%d", i);
		att[i].name = names[i];
		att[i].typid = 25;	/* text */
		att[i].typlen = -1;
		att[i].atttypmod = -1;
	}
	if (!r || !PQsetResultAttrs(r, nf, att))
		return NULL;
	for (int i = 0; i < nf; i++)
		if (!PQsetvalue(r, 0, i, (char *)vals[i],
				vals[i] ? (int)strlen(vals[i]) : -1))
			return NULL;
	return r;
}

static void add(struct rowlimit *rl, PGresult **res, const char *a,
		const char *b)
{
	const char *v[2] = {a, b};
	PGresult *r = row(2, v);

	rowlimit_add(rl, res, r, NULL);
	PQclear(r);
}

static void test_bound(void)
{
	struct rowlimit rl = {.limit = 10};
	PGresult *res = NULL;

	rowlimit_start(&rl);
	add(&rl, &res, "ab", "cd");
	add(&rl, &res, "ef", NULL);
	ok(res && PQntuples(res) == 2 && PQnfields(res) == 2,
	   "rows within the bound are gathered");
	is_str(res ? PQfname(res, 1) : NULL, "c1", "column names kept");
	ok(res && PQgetisnull(res, 1, 1), "NULL stays NULL");
	is_str(res ? PQgetvalue(res, 1, 0) : NULL, "ef", "values kept");
	is_int(rl.bytes, 6, "bytes counted");
	add(&rl, &res, "ghijk", NULL);
	ok(rl.too_large && res == NULL, "past the bound: dropped, too large");
	add(&rl, &res, "x", "y");
	ok(rl.too_large && res == NULL, "later rows only counted");
	is_int(rl.bytes, 11, "once too large, rows are no longer counted");

	rowlimit_start(&rl);
	ok(!rl.too_large && rl.bytes == 0, "start: ready for the next");
	is_int(rl.limit, 10, "start: the bound stays");
}

static void test_page(void)
{
	struct rowlimit rl = {.limit = 10, .page = true};
	PGresult *res = NULL;

	add(&rl, &res, "abcd", NULL);
	add(&rl, &res, "efgh", NULL);
	add(&rl, &res, "ijkl", NULL);
	ok(rl.full && !rl.too_large, "a page: full at the bound");
	ok(res && PQntuples(res) == 2, "a page keeps the rows before it");
	add(&rl, &res, "m", NULL);
	ok(res && PQntuples(res) == 2, "rows after a full page are dropped");
	PQclear(res);

	rl = (struct rowlimit){.limit = 3, .page = true};
	res = NULL;
	add(&rl, &res, "abcd", NULL);
	ok(rl.too_large && res == NULL,
	   "a page whose first row passes the bound is too large");
}

static void test_wide(void)
{
	struct rowlimit rl = {.limit = 1000};
	const char *v[ROWLIMIT_MAX_FIELDS + 1];
	PGresult *res = NULL, *r;

	for (int i = 0; i <= ROWLIMIT_MAX_FIELDS; i++)
		v[i] = "x";
	r = row(ROWLIMIT_MAX_FIELDS + 1, v);
	rowlimit_add(&rl, &res, r, NULL);
	PQclear(r);
	ok(rl.too_large && res == NULL,
	   "more than ROWLIMIT_MAX_FIELDS columns: refused as too large");

	rl = (struct rowlimit){.limit = 1000};
	r = row(ROWLIMIT_MAX_FIELDS, v);
	rowlimit_add(&rl, &res, r, NULL);
	PQclear(r);
	ok(!rl.too_large && res && PQnfields(res) == ROWLIMIT_MAX_FIELDS,
	   "ROWLIMIT_MAX_FIELDS columns are fine");
	PQclear(res);
}

static void test_over(void)
{
	struct rowlimit rl = {.limit = 4};
	const char *v[2] = {"ab", "cd"};
	PGresult *r = row(2, v);

	ok(!rowlimit_over(&rl, r), "a whole result at the bound is within");
	rl.limit = 3;
	ok(rowlimit_over(&rl, r), "a whole result past the bound is over");
	PQclear(r);
}

int main(void)
{
	test_bound();
	test_page();
	test_wide();
	test_over();
	return tap_done();
}
