/*
 * partition.c - the timer that makes history partitions ahead of time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event_struct.h>

#include "clock.h"
#include "dbpart.h"
#include "log.h"
#include "loop.h"
#include "partition.h"
#include "pool.h"

#define FIRST_RUN_USEC (2 * USEC_PER_SEC)
#define INTERVAL_USEC (3600 * USEC_PER_SEC)
#define RETRY_USEC (60 * USEC_PER_SEC)

#define STR_(x) #x
#define STR(x) STR_(x)

static const char sql_premake[] =
	"SELECT " DBPART_PREMAKE_FN "(" STR(DBPART_AHEAD) ")";

static struct {
	struct event timer;
	struct pool_waiter waiter;
	struct pool_conn *pc;
	bool premaking, closing;
} part;

/* -1 (logged): the timer is given up, partitions are no longer made
 * ahead of time by this convd. */
static int partition_schedule(usec_t delay)
{
	if (part.closing)
		return 0;
	if (loop_arm_usec(&part.timer, delay, "partition timer") < 0) {
		log_error("partitions: no longer made ahead of time by this "
			  "convd ('convctl db partition' makes them)");
		return -1;
	}
	return 0;
}

static void partition_done(void *arg, struct pool_conn *pc,
			   enum pool_status st, const PGresult *res,
			   const char *msg)
{
	(void)arg;
	if (st != POOL_OK) {
		log_warn("partitions: %s: %s",
			 part.premaking ? "making partitions ahead"
					: "reading the layout",
			 msg ? msg : "unknown error");
		part.pc = NULL;
		pool_release(pc);
		partition_schedule(RETRY_USEC);
		return;
	}
	if (!part.premaking) {
		if (PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't') {
			part.premaking = true;
			if (pool_exec(pc, NULL, sql_premake, 0, NULL, NULL,
				      NULL, 0, partition_done, NULL) == 0)
				return;
			log_warn("partitions: cannot send the query");
		}
	} else {
		const char *n = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "0";

		if (strcmp(n, "0") != 0)
			log_notice("partitions: made %s monthly partition%s "
				   "ahead of time", n,
				   strcmp(n, "1") ? "s" : "");
	}
	part.pc = NULL;
	pool_release(pc);
	partition_schedule(INTERVAL_USEC);
}

static void partition_on_acquire(void *arg, struct pool_conn *pc,
				 enum pool_status st, const char *msg)
{
	(void)arg;
	if (st != POOL_OK) {
		log_debug("partitions: no database connection: %s",
			  msg ? msg : "unknown error");
		partition_schedule(RETRY_USEC);
		return;
	}
	part.pc = pc;
	part.premaking = false;
	if (pool_exec(pc, NULL, DBPART_IS_PARTITIONED_QUERY, 0, NULL, NULL,
		      NULL, 0, partition_done, NULL) < 0) {
		part.pc = NULL;
		pool_release(pc);
		partition_schedule(RETRY_USEC);
	}
}

static void partition_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (part.pc)
		return;
	if (pool_acquire_then(&part.waiter, partition_on_acquire, NULL) ==
	    POOL_ACQ_QUEUED) {
		/* every connection is busy: requests come first; a minute
		 * later is soon enough for partitions months ahead */
		pool_cancel(&part.waiter);
		partition_schedule(RETRY_USEC);
	}
}

int partition_setup(struct event_base *base)
{
	memset(&part, 0, sizeof(part));
	evtimer_assign(&part.timer, base, partition_on_timer, NULL);
	return partition_schedule(FIRST_RUN_USEC);
}

/* A query in flight ends when the pool closes (its callback schedules
 * nothing once closing is set). */
void partition_cleanup(void)
{
	part.closing = true;
	if (event_initialized(&part.timer))
		event_del(&part.timer);
}
