/*
 * cancel.h - cancel requests sent off the event loop.
 *
 * libpq's PQcancel blocks (it connects to the server and waits for it to
 * close the connection; PQcancelStart, its non-blocking form, is libpq 17),
 * and a frozen server would hold the loop with it.  So each cancel runs in
 * a short-lived helper thread of its own, with at most CANCEL_MAX_THREADS
 * at once: beyond that the cancel is skipped (the caller drops the
 * connection anyway, which ends the query once the server notices).  The
 * threads share nothing with the loop but one atomic counter.
 */
#ifndef CONVD_CANCEL_H
#define CONVD_CANCEL_H

#include <libpq-fe.h>

#include "common.h"

#define CANCEL_MAX_THREADS 8

/* Sends a cancel request for the query running on pg (which the caller
 * may close right after); never blocks. */
void cancel_send(PGconn *pg);

#endif
