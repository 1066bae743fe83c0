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
#include <msgpack.h>

#include "config.h"
#include "server.h"

CONVD_WUR int retention_setup(struct event_base *base,
			      const struct convd_config *cfg);
void retention_reconfigure(const struct convd_config *cfg);
void retention_cleanup(void);

/* cleanup_old_conversations: runs now (after a run in progress). */
void retention_request(struct request *r);

/* Packs the "retention" map of the stats result. */
CONVD_WUR int retention_pack_stats(msgpack_packer *pk);

/* Whether a run is in progress (shutdown waits for it to stop). */
bool retention_running(void);

#endif
