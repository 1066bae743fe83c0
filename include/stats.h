/*
 * stats.h - request counters and latency histograms, per method and code.
 */
#ifndef CONVD_STATS_H
#define CONVD_STATS_H

#include <msgpack.h>

#include "common.h"
#include "server.h"
#include "validate.h"

void stats_setup(void);
/* One finished request: error is E_COUNT_ for success. */
void stats_record(enum method_id m, enum rpc_error error, usec_t latency);
/* A request that never reached a method (bad envelope, unknown method). */
void stats_record_error(enum rpc_error error);
/* Latency percentile (0 < q < 1) of a method, in microseconds. */
usec_t stats_percentile(enum method_id m, double q);
uint64_t stats_requests(enum method_id m);
/* Packs the per-method and per-code part of the `stats` result. */
CONVD_WUR int stats_pack_requests(msgpack_packer *pk);

#endif
