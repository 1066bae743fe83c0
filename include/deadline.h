/*
 * deadline.h - every database request's deadline.
 *
 * A request that goes to the database gets [server] request_timeout from
 * the moment it was read (r->started): its wait for a batch or a pool
 * connection, its query and its commit all count.  When the deadline
 * passes, the holder's expire function answers it `timeout` and gives up
 * whatever it was waiting for (the query is cancelled and its connection
 * dropped: pool_abandon), without blocking the loop.
 *
 * The watched requests are kept in deadline order (they arrive in order,
 * and all get the same timeout, so this is nearly always an append); one
 * timer is armed for the first.
 */
#ifndef CONVD_DEADLINE_H
#define CONVD_DEADLINE_H

#include <event2/event.h>

#include "common.h"

struct request;

typedef void (*deadline_expire_fn)(struct request *r);

/* Embedded in struct request. */
struct deadline_link {
	struct request *prev, *next;
	usec_t at;			/* monotonic */
	deadline_expire_fn expire;
	bool on;
};

/* timeout: microseconds, 0 = none. */
CONVD_WUR int deadline_setup(struct event_base *base, usec_t timeout);
/* A new timeout applies to requests read from now on. */
void deadline_reconfigure(usec_t timeout);
void deadline_cleanup(void);

/* Watches r (no-op without a timeout): expire(r) is called once its
 * deadline passes, unless the request ends first. */
void deadline_watch(struct request *r, deadline_expire_fn expire);
/* Called when a request ends (server.c). */
void deadline_unwatch(struct request *r);

/* Requests answered `timeout` at their deadline. */
uint64_t deadline_expired_count(void);

#endif
