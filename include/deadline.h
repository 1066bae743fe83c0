/*
 * deadline.h - every database request's deadline.
 *
 * A request that goes to the database gets [server] request_timeout from
 * the moment it was read: its wait for a batch or a pool connection, its
 * query and its commit all count.  When the deadline passes, the holder's
 * expire function answers it `timeout` and gives up whatever it was
 * waiting for (the query is cancelled and its connection dropped:
 * pool_abandon), without blocking the loop.
 *
 * The module knows deadlines, not requests: a link is embedded in
 * whatever has a deadline (struct request, request.h), which gets it back
 * with container_of.  The watched links are kept in deadline order (they
 * arrive in order, and all get the same timeout, so this is nearly always
 * an append); one timer is armed for the first.
 */
#ifndef CONVD_DEADLINE_H
#define CONVD_DEADLINE_H

#include <event2/event.h>

#include "common.h"
#include "lists.h"

struct deadline_link;

typedef void (*deadline_expire_fn)(struct deadline_link *dl);

/* Embedded in its owner; zeroed before its first use. */
struct deadline_link {
	TAILQ_ENTRY(deadline_link) entry;
	usec_t at;			/* monotonic */
	deadline_expire_fn expire;
	const char *what;		/* for the log: the method's name */
	bool on;
};

/* timeout: microseconds, 0 = none. */
CONVD_WUR int deadline_setup(struct event_base *base, usec_t timeout);
/* A new timeout applies to requests read from now on. */
void deadline_reconfigure(usec_t timeout);
void deadline_cleanup(void);

/*
 * Watches dl (no-op without a timeout): expire(dl) is called once
 * started + the timeout passes, unless dl is unwatched first.  Watching
 * a link already watched keeps its deadline and changes only who expires
 * it (a request handed from a batch to a statement of its own).
 */
void deadline_watch(struct deadline_link *dl, usec_t started,
		    const char *what, deadline_expire_fn expire);
/* Called when what had the deadline ends (request.c). */
void deadline_unwatch(struct deadline_link *dl);

/* Deadlines that passed (requests answered `timeout` at theirs). */
uint64_t deadline_expired_count(void);

#endif
