/*
 * retention.h - the retention cleanup: deletes history rows older than
 * days_to_keep, in batches of batch_size, each its own short statement,
 * yielding to the event loop between batches.  Runs on a timer (every
 * [retention] interval seconds with a little jitter, and once shortly after
 * start) and on demand (the cleanup_old_conversations method).  With
 * several convd instances on one database only one cleans at a time: a
 * session advisory lock, which the others fail to take and skip.
 * Threads are never touched.
 */
#ifndef CONVD_RETENTION_H
#define CONVD_RETENTION_H

#include <event2/event.h>

#include "config.h"
#include "request.h"

CONVD_WUR int retention_setup(struct event_base *base,
			      const struct config *cfg);
void retention_reconfigure(const struct config *cfg);
/*
 * Shutdown: nothing more is scheduled and waiting requests are answered
 * `unavailable`.  Shutdown does not wait for a run: a batch in flight
 * ends when the pool closes its connection (each batch is one short
 * statement, so at most that batch is rolled back), and the run is over.
 */
void retention_cleanup(void);

/* cleanup_old_conversations: runs now (after a run in progress). */
void retention_request(struct request *r);

struct retention_stats {
	int64_t days_to_keep;
	bool running;			/* a run is in progress */
	uint64_t runs, skipped, failures, total_deleted, last_deleted;
	usec_t last_duration;
	usec_t last_run_real, next_run_real;	/* 0: none */
};

void retention_stats(struct retention_stats *out);

#endif
