/*
 * batch.h - group commit and group reads.
 *
 * Concurrent requests for the same method are coalesced.  They queue in
 * their method's batcher; each time a batch slot and a connection are
 * free, everything queued (up to max_rows rows / BATCH_MAX_BYTES bytes)
 * goes out as ONE statement whose parameters are arrays (pgarray.h: in
 * binary, no quoting of any kind), one round trip, and for writes one
 * commit.  A request that arrives while nothing is in flight goes out
 * alone at once: nobody is delayed to make a batch, and batches grow only
 * with load.
 *
 * If a batch fails with a query error, its requests are retried one by
 * one with their own statements (spec->single, query.h), so a bad row
 * never fails its neighbours; an ordered batcher runs those retries one
 * after the other.  If the connection is lost, the outcome of a write
 * batch is unknown and each of its requests gets `unavailable` (none was
 * acknowledged).
 *
 * Deadlines: a queued request that waits the pool timeout gets `timeout`,
 * as any request that found no connection; at a request's deadline
 * ([server] request_timeout) a queued request leaves the queue, and a
 * running batch is given up whole (its query cancelled, its connection
 * dropped, every request of it answered `timeout`: one statement, one
 * fate).
 */
#ifndef CONVD_BATCH_H
#define CONVD_BATCH_H

#include <event2/event.h>
#include <libpq-fe.h>

#include "common.h"
#include "pgval.h"
#include "query.h"
#include "request.h"

#define BATCH_MAX_BYTES (8u << 20)
#define BATCH_MAX_COLS 16

/*
 * Answers the requests of a batch (the n requests of q, in order) from
 * the batch statement's rows, taking each out of q before answering it.
 * Requests it leaves in q run alone with their own statement
 * (spec->single: a row of theirs is missing).  Returns -1, having
 * answered none, when the rows are not what was asked (the batch then
 * fails `internal`).
 */
typedef int (*batch_deliver_fn)(struct request_queue *q, int n,
				const PGresult *res);
/* An ordered batcher's conversation of a request (order.h). */
typedef uint32_t (*batch_slot_fn)(const struct request *r);

struct batch_spec {
	const char *what;		/* the method, for the log */
	const char *stmt;		/* the batch statement */
	const char *stmt_keys;		/* the same with the key column */
	int ncols;			/* columns with the key column */
	struct pgval_col cols[BATCH_MAX_COLS]; /* the last: the key's */
	int key_arg;			/* the key argument; -1: no key column */
	int size_arg;			/* counted with user_id toward
					 * BATCH_MAX_BYTES; -1: none */
	int max_rows;
	int max_batches;		/* in flight at once */
	batch_slot_fn slot;		/* NULL: unordered; else one batch in
					 * flight per conversation */
	batch_deliver_fn deliver;
	query_build_fn single;		/* a request's own statement */
	/* issue 17: a batch in which a request has one of the fields only
	 * some messages have (is_ext) goes out as stmt_ext with cols_ext
	 * (the key column included); the others keep stmt / stmt_keys, so
	 * that a plain message costs what it did.  NULL: none. */
	const char *stmt_ext;
	int ncols_ext;
	struct pgval_col cols_ext[BATCH_MAX_COLS];
	bool (*is_ext)(const struct request *r);
};

/* Makes a batcher for spec the handler of method m (before batch_setup). */
void batch_register(enum method_id m, const struct batch_spec *spec);
/* Sets up the registered batchers. */
CONVD_WUR int batch_setup(struct event_base *base);
/* Answers what is still queued `unavailable` (shutdown); batches in
 * flight end with the pool (pool_cleanup fails their queries). */
void batch_cleanup(void);

#endif
