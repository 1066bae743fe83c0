/*
 * stats.h - request counters and latency histograms, per method and code.
 *
 * Pure accounting: the request layer records every request's end here,
 * and admin.c formats what stats_method() and stats_protocol_errors()
 * return.
 */
#ifndef CONVD_STATS_H
#define CONVD_STATS_H

#include "common.h"
#include "rpc_error.h"
#include "validate.h"

/* The fixed histogram's upper bounds in microseconds (Prometheus' le),
 * from a fast ping to a pool timeout; +Inf is implied. */
#define STATS_NLE 16
extern const usec_t stats_le_us[STATS_NLE];

/* One method's counters. */
struct stats_method {
	uint64_t requests;
	uint64_t errors[E_COUNT_];	/* by code */
	uint64_t le[STATS_NLE];		/* cumulative: requests that took at
					 * most stats_le_us[i] */
	uint64_t sum_us;		/* of every latency */
	usec_t max, p50, p95, p99;	/* percentiles within 19% */
};

void stats_setup(void);
/* One finished request: error is E_COUNT_ for success. */
void stats_record(enum method_id m, enum rpc_error error, usec_t latency);
/* A request that never reached a method (bad envelope, unknown method). */
void stats_record_error(enum rpc_error error);

void stats_method(enum method_id m, struct stats_method *out);
/* Requests of method m so far. */
uint64_t stats_requests(enum method_id m);
/* Messages that never reached a method, by code. */
void stats_protocol_errors(uint64_t out[E_COUNT_]);

#endif
