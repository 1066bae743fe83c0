/*
 * test_stats.c - request counters and latency histograms: the fixed
 * (Prometheus) buckets are cumulative and exact at their bounds, the
 * log-linear buckets give percentiles no lower than the value and at
 * most a quarter above it, errors are counted by code, and messages that
 * never reached a method apart.  And the error codes' names.
 */
#include <string.h>

#include "stats.h"
#include "tap.h"

static void buckets(void)
{
	static const usec_t lat[] = {50, 100, 101, 250, 10000000, 10000001};
	struct stats_method s;
	uint64_t sum = 0;

	stats_setup();
	for (size_t i = 0; i < sizeof(lat) / sizeof(lat[0]); i++) {
		stats_record(METHOD_PING, E_COUNT_, lat[i]);
		sum += (uint64_t)lat[i];
	}
	stats_method(METHOD_PING, &s);
	is_int(s.requests, 6, "requests");
	is_int(stats_requests(METHOD_PING), 6, "stats_requests");
	is_int(stats_requests(METHOD_HEALTH), 0, "another method: none");
	is_int(stats_le_us[0], 100, "the first bound is 100 us");
	is_int(s.le[0], 2, "le 100: 50 and 100 (a bound is inclusive)");
	is_int(s.le[1], 4, "le 250: cumulative, with 101 and 250");
	is_int(s.le[2], 4, "le 500: nothing more");
	is_int(s.le[STATS_NLE - 1], 5, "le 10 s: all but the one above it");
	is_int(s.sum_us, sum, "sum");
	is_int(s.max, 10000001, "max");
	for (int e = 0; e < E_COUNT_; e++)
		if (s.errors[e])
			ok(0, "no error counted for a success (%d)", e);
	ok(s.p50 <= s.p95 && s.p95 <= s.p99 && s.p99 <= s.max,
	   "p50 <= p95 <= p99 <= max");
	for (int i = 1; i < STATS_NLE; i++)
		if (stats_le_us[i] <= stats_le_us[i - 1])
			ok(0, "bounds ascend at %d", i);

	/* a negative latency (a clock step) counts as 0 */
	stats_record(METHOD_HEALTH, E_COUNT_, -5);
	stats_method(METHOD_HEALTH, &s);
	ok(s.requests == 1 && s.le[0] == 1 && s.sum_us == 0 && s.max == 0,
	   "a negative latency is a zero one");
}

static void percentiles(void)
{
	struct stats_method s;
	int bad = 0, n = 0;

	/* one value v and one far above: p50 is v's bucket's top */
	for (usec_t v = 1; v < ((usec_t)1 << 40); v += v / 3 + 1) {
		stats_setup();
		stats_record(METHOD_ADD_MESSAGE, E_COUNT_, v);
		stats_record(METHOD_ADD_MESSAGE, E_COUNT_, (usec_t)1 << 50);
		stats_method(METHOD_ADD_MESSAGE, &s);
		n++;
		if (s.p50 < v || s.p50 - v > v / 4) {
			bad++;
			printf("#   value %lld: p50 %lld\n", (long long)v,
			       (long long)s.p50);
		}
	}
	ok(bad == 0, "p50 of %d values from 1 us to 12 days: at or at most "
		     "a quarter above the value", n);

	stats_setup();
	for (usec_t v = 1; v <= 1000; v++)
		stats_record(METHOD_GET_RECENT, E_COUNT_, v);
	stats_method(METHOD_GET_RECENT, &s);
	ok(s.p50 >= 500 && s.p50 <= 625, "p50 of 1..1000 us: %lld",
	   (long long)s.p50);
	ok(s.p95 >= 950 && s.p95 <= 1000, "p95 of 1..1000 us: %lld (capped "
					  "by the max)", (long long)s.p95);
	ok(s.p99 >= 990 && s.p99 <= 1000, "p99 of 1..1000 us: %lld",
	   (long long)s.p99);
	is_int(s.le[3], 1000, "le 1000: all of them");
	is_int(s.le[2], 500, "le 500: half");
}

static void errors(void)
{
	struct stats_method s;
	uint64_t early[E_COUNT_];

	stats_setup();
	stats_record(METHOD_EXPORT_HISTORY, E_TIMEOUT, 30000000);
	stats_record(METHOD_EXPORT_HISTORY, E_TIMEOUT, 1);
	stats_record(METHOD_EXPORT_HISTORY, E_RESULT_TOO_LARGE, 1);
	stats_record(METHOD_EXPORT_HISTORY, E_COUNT_, 1);
	stats_method(METHOD_EXPORT_HISTORY, &s);
	is_int(s.requests, 4, "errors count as requests");
	is_int(s.errors[E_TIMEOUT], 2, "timeouts");
	is_int(s.errors[E_RESULT_TOO_LARGE], 1, "result_too_large");
	is_int(s.errors[E_INTERNAL], 0, "no internal");
	is_int(s.le[STATS_NLE - 1], 3, "30 s is past the last bound");

	stats_record_error(E_INVALID_REQUEST);
	stats_record_error(E_INVALID_REQUEST);
	stats_record_error(E_NO_SUCH_METHOD);
	stats_record_error(E_COUNT_);	/* not a code: ignored */
	stats_protocol_errors(early);
	is_int(early[E_INVALID_REQUEST], 2, "protocol errors: invalid_request");
	is_int(early[E_NO_SUCH_METHOD], 1, "protocol errors: no_such_method");
	stats_method(METHOD_PING, &s);
	is_int(s.requests, 0, "protocol errors count under no method");
}

static void codes(void)
{
	static const char *const want[E_COUNT_] = {
		"invalid_request", "no_such_method", "invalid_params",
		"unavailable", "timeout", "overloaded", "permission_denied",
		"result_too_large", "internal", "conflict", "not_found",
	};

	for (int e = 0; e < E_COUNT_; e++)
		is_str(rpc_error_code((enum rpc_error)e), want[e],
		       "error code %d", e);
	is_str(rpc_error_code(E_COUNT_), "internal",
	       "out of range: internal");
	is_str(rpc_error_code((enum rpc_error)-1), "internal",
	       "negative: internal");
}

int main(void)
{
	buckets();
	percentiles();
	errors();
	codes();
	return tap_done();
}
