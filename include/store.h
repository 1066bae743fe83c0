/*
 * store.h - the conversation store: the history and thread methods' SQL,
 * parameters and results.  convd.c hands the statements to the pool and
 * registers the methods: those answered by one statement with
 * query_register(m, store_build), add_message and get_recent_conversations
 * with batch_register(m, &store_..._batch).
 */
#ifndef CONVD_STORE_H
#define CONVD_STORE_H

#include "batch.h"
#include "common.h"
#include "pgval.h"
#include "pool.h"
#include "query.h"
#include "request.h"

/* The prepared statements of the store's methods. */
extern const struct pool_statement store_statements[];
extern const size_t store_nstatements;

/*
 * Maps a request of a store method to its own statement and parameters
 * (validate.h's argument order; integers in binary); -1 for any other
 * method.  Also the batched methods' statement for a request alone.
 */
CONVD_WUR int store_build(const struct request *r, struct pgval_params *p,
			  const struct query_def **def);

/* The batchers of add_message (group commit, in arrival order per
 * conversation) and get_recent_conversations (group reads). */
extern const struct batch_spec store_add_batch;
extern const struct batch_spec store_recent_batch;

#endif
