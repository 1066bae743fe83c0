/*
 * partition.h - partitions made ahead of time: on the partitioned history
 * layout (`convctl db setup --layout partitioned`, `convctl db
 * partition`), convd makes the monthly partitions of the next
 * DBPART_AHEAD months shortly after start and every hour after, so that
 * a write never finds its month missing even if nobody runs convctl.  On
 * the plain layout it does nothing (one catalog query an hour).  It never
 * waits for a connection: when every one is busy it tries a minute later.
 */
#ifndef CONVD_PARTITION_H
#define CONVD_PARTITION_H

#include <event2/event.h>

#include "common.h"

CONVD_WUR int partition_setup(struct event_base *base);
void partition_cleanup(void);

#endif
