/*
 * pipeline.h - one command at a time on a libpq connection in pipeline
 * mode: what goes out with it (the transaction's statement_timeout when
 * no session state may be set, a statement's PREPARE on its first use on
 * the connection), its sync, and its results read back: the first error
 * kept, the PREPARE's result only marking the statement prepared, and a
 * bounded result gathered a row at a time (rowlimit.h).  The caller
 * watches the socket and flushes.
 */
#ifndef CONVD_PIPELINE_H
#define CONVD_PIPELINE_H

#include <libpq-fe.h>

#include "common.h"
#include "rowlimit.h"

/* Statements one connection can prepare (bits of `prepared`). */
#define PIPELINE_MAX_STMTS 64

/* Per connection, zeroed then pipeline_init(). */
struct pipeline {
	PGresult *res;			/* the result kept so far */
	uint64_t prepared;		/* statements prepared here */
	int prep_sent;			/* PREPARE in flight, or -1 */
	bool prep_seen;			/* its result came back */
	bool pre_sent, pre_seen;	/* the statement_timeout sent first */
	bool rows_pending;		/* row mode after the PREPARE */
	bool rows_mode;			/* rows come one at a time */
	struct rowlimit rows;		/* the next command's bound */
};

/* A command: a statement (name, its index and SQL; prepared on first
 * use unless unnamed) or, with name NULL, sql with params. */
struct pipeline_cmd {
	const char *name;
	int idx;
	const char *sql;
	bool unnamed;
	const char *timeout;	/* statement_timeout for the transaction
				 * only (set_config), or NULL */
	int nparams;
	const char *const *values;
	const int *lengths, *formats;
	int result_format;
};

void pipeline_init(struct pipeline *pl);
/* Drops a result kept (the connection is closing). */
void pipeline_clear(struct pipeline *pl);

/* Bounds the next command's result (rowlimit.h); 0 = no bound. */
void pipeline_set_limit(struct pipeline *pl, size_t bytes, bool page);

/* Queues cmd and its sync on pg; -1 when libpq refused (the connection
 * is not to be used again; PQerrorMessage says why). */
CONVD_WUR int pipeline_send(struct pipeline *pl, PGconn *pg,
			    const struct pipeline_cmd *cmd);

/*
 * Reads what libpq has (after PQconsumeInput); true when the command is
 * complete: at the NULL that ends a plain query (set-up, before pipeline
 * mode), at the sync that ends a pipelined one.
 */
bool pipeline_collect(struct pipeline *pl, PGconn *pg);

/*
 * The command's result (the caller's to PQclear; NULL if none), once it
 * is complete or the connection was lost.  *too_large: the rows passed
 * the bound (the result is then dropped).  The bound ends here.
 */
PGresult *pipeline_take(struct pipeline *pl, bool lost, bool *too_large);

#endif
