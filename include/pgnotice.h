/*
 * pgnotice.h - libpq's notices and the server's asynchronous messages
 * (NOTICE, WARNING, and the FATAL a server sends to an idle session, such
 * as "terminating connection due to administrator command") go through
 * the log module, with its prefixes and levels, instead of libpq's
 * default of printing them raw on stderr.
 */
#ifndef CONVD_PGNOTICE_H
#define CONVD_PGNOTICE_H

#include <libpq-fe.h>

#include "common.h"

/* Per connection: who it is for the log, and what a notice told us. */
struct pgnotice_ctx {
	uint64_t conn_id;
	bool not_replicated;	/* a commit's wait for its synchronous
				 * standby was cancelled (topology.h) */
};

/* Installs the receiver on pg; ctx must live as long as pg. */
void pgnotice_attach(PGconn *pg, struct pgnotice_ctx *ctx);

#endif
