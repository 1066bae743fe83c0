/*
 * pipeline.c - one command at a time in libpq's pipeline mode
 * (pipeline.h).
 */
#include "pipeline.h"

void pipeline_init(struct pipeline *pl)
{
	pl->prep_sent = -1;
}

void pipeline_clear(struct pipeline *pl)
{
	if (pl->res)
		PQclear(pl->res);
	pl->res = NULL;
}

void pipeline_set_limit(struct pipeline *pl, size_t bytes, bool page)
{
	pl->rows.limit = bytes;
	pl->rows.page = page;
}

int pipeline_send(struct pipeline *pl, PGconn *pg,
		  const struct pipeline_cmd *cmd)
{
	int ok = 1;

	pl->prep_sent = -1;
	pl->prep_seen = false;
	pl->pre_sent = pl->pre_seen = false;
	if (cmd->timeout) {
		/* No session state through a pooler: the statement timeout
		 * is set for this transaction only (up to the sync). */
		const char *v[1] = {cmd->timeout};

		if (!PQsendQueryParams(pg,
				       "SELECT pg_catalog.set_config("
				       "'statement_timeout', $1, true)",
				       1, NULL, v, NULL, NULL, 0))
			return -1;
		pl->pre_sent = true;
	}
	if (cmd->name && cmd->unnamed) {
		/* the same SQL, unnamed: parsed and planned each time */
		ok = PQsendQueryParams(pg, cmd->sql, cmd->nparams, NULL,
				       cmd->values, cmd->lengths, cmd->formats,
				       cmd->result_format);
	} else if (cmd->name) {
		/* Statements are prepared on first use on each connection,
		 * so that opening a connection touches no table (and waits
		 * on no lock); the PREPARE travels with the query. */
		if (!(pl->prepared & (1ull << cmd->idx))) {
			ok = PQsendPrepare(pg, cmd->name, cmd->sql, 0, NULL);
			pl->prep_sent = cmd->idx;
		}
		ok = ok && PQsendQueryPrepared(pg, cmd->name, cmd->nparams,
					       cmd->values, cmd->lengths,
					       cmd->formats, cmd->result_format);
	} else {
		ok = PQsendQueryParams(pg, cmd->sql, cmd->nparams, NULL,
				       cmd->values, cmd->lengths, cmd->formats,
				       cmd->result_format);
	}
	if (!ok || !PQpipelineSync(pg))
		return -1;
	/* A bounded result comes a row at a time: single-row mode is set
	 * for the query at the head of libpq's queue, so after a first-use
	 * PREPARE it waits for the PREPARE's result (pipeline_collect). */
	rowlimit_start(&pl->rows);
	pl->rows_mode = false;
	pl->rows_pending = false;
	if (pl->rows.limit > 0) {
		if (pl->prep_sent >= 0)
			pl->rows_pending = true;
		else
			pl->rows_mode = PQsetSingleRowMode(pg) == 1;
	}
	return 0;
}

bool pipeline_collect(struct pipeline *pl, PGconn *pg)
{
	bool pipelined = PQpipelineStatus(pg) != PQ_PIPELINE_OFF;

	while (!PQisBusy(pg)) {
		PGresult *r = PQgetResult(pg);
		ExecStatusType es;

		if (!r) {
			if (!pipelined)
				return true;
			/* end of one query's results; the next is ours */
			if (pl->rows_pending) {
				pl->rows_pending = false;
				pl->rows_mode = PQsetSingleRowMode(pg) == 1;
			}
			continue;
		}
		es = PQresultStatus(r);
		if (es == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			return true;
		}
		if (pl->pre_sent && !pl->pre_seen) {
			pl->pre_seen = true;
			if (es == PGRES_TUPLES_OK) {
				PQclear(r);
				continue;
			}
		}
		if (es == PGRES_SINGLE_TUPLE) {
			rowlimit_add(&pl->rows, &pl->res, r, pg);
			PQclear(r);
			continue;
		}
		/* the end of a bounded result: keep what was gathered */
		if (pl->rows_mode && es == PGRES_TUPLES_OK &&
		    (pl->res || pl->rows.too_large)) {
			PQclear(r);
			continue;
		}
		if (pl->prep_sent >= 0 && !pl->prep_seen) {
			pl->prep_seen = true;
			if (es == PGRES_COMMAND_OK) {
				pl->prepared |= 1ull << pl->prep_sent;
				PQclear(r);
				continue;
			}
		}
		/* Keep the first error (later ones are PIPELINE_ABORTED). */
		if (pl->res && PQresultStatus(pl->res) == PGRES_FATAL_ERROR) {
			PQclear(r);
			continue;
		}
		if (pl->res)
			PQclear(pl->res);
		pl->res = r;
	}
	return false;
}

PGresult *pipeline_take(struct pipeline *pl, bool lost, bool *too_large)
{
	PGresult *res = pl->res;

	pl->res = NULL;
	/* should single-row mode not have been set, the bound still holds
	 * for the answer (not for the memory) */
	if (pl->rows.limit > 0 && !pl->rows_mode && res &&
	    PQresultStatus(res) == PGRES_TUPLES_OK && !pl->rows.page &&
	    rowlimit_over(&pl->rows, res))
		pl->rows.too_large = true;
	pl->rows.limit = 0;
	pl->rows.page = pl->rows.full = false;
	pl->rows_pending = pl->rows_mode = false;
	*too_large = false;
	if (pl->rows.too_large && !lost &&
	    (!res || PQresultStatus(res) == PGRES_TUPLES_OK)) {
		if (res)
			PQclear(res);
		res = NULL;
		*too_large = true;
	}
	pl->rows.too_large = false;
	return res;
}
