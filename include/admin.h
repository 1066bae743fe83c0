/*
 * admin.h - the methods about convd itself: ping, stats and health, and
 * the one place where the stats are formatted (the `stats` map, also
 * served as Prometheus text by GET /metrics).
 */
#ifndef CONVD_ADMIN_H
#define CONVD_ADMIN_H

#include <msgpack.h>

#include "common.h"
#include "request.h"

/* When convd started (for uptime and started_at). */
void admin_setup(usec_t started_real, usec_t started_mono);

/* The handlers (request.h). */
void admin_ping(struct request *r);
void admin_stats(struct request *r);
void admin_health(struct request *r);

/* The result of the `stats` method (a map), also served by GET /metrics. */
CONVD_WUR int admin_pack_stats(msgpack_packer *pk);

#endif
