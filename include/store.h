/*
 * store.h - the conversation store: each method's SQL and its result.
 */
#ifndef CONVD_STORE_H
#define CONVD_STORE_H

#include <event2/event.h>

#include "common.h"
#include "pool.h"
#include "server.h"

/* The prepared statements every pool connection gets. */
extern const struct pool_statement store_statements[];
extern const size_t store_nstatements;

CONVD_WUR int store_setup(struct event_base *base);

/* Runs a database method's request to completion (answers it). */
void store_dispatch(struct request *r);

/* Answers add_message requests still queued for a batch (shutdown). */
void store_cleanup(void);

#endif
