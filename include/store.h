/*
 * store.h - the conversation store: each method's SQL and its result.
 */
#ifndef CONVD_STORE_H
#define CONVD_STORE_H

#include "common.h"
#include "pool.h"
#include "server.h"

/* The prepared statements every pool connection gets. */
extern const struct pool_statement store_statements[];
extern const size_t store_nstatements;

/* Runs a database method's request to completion (answers it). */
void store_dispatch(struct request *r);

/* Answers add_message requests still queued for a batch (shutdown). */
void store_cleanup(void);

#endif
