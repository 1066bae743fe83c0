/*
 * stats.c - request counters and latency histograms.
 *
 * Latencies go into log-linear buckets (4 per power of two, like a small
 * HdrHistogram): recording is O(1) with no allocation, and a percentile is
 * exact to within 19%.  They are also counted exactly in the fixed buckets
 * of stats_le_us, with their sum, for the Prometheus histogram.
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"
#include "stats.h"

#define SUB 4
#define NBUCKETS (64 * SUB)

/* The histogram's upper bounds in microseconds (le), from a fast ping to a
 * pool timeout; +Inf is implied. */
static const usec_t stats_le_us[] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
#define NLE ARRAY_LEN(stats_le_us)

struct method_stats {
	uint64_t requests;
	uint64_t errors[E_COUNT_];
	uint64_t hist[NBUCKETS];
	uint64_t le[NLE];	/* not cumulative: values in (le[i-1], le[i]] */
	uint64_t sum_us;
	usec_t max;
};

static struct {
	struct method_stats m[M_COUNT_];
	uint64_t early_errors[E_COUNT_];	/* before a method was known */
} stats;

static int stats_bucket(usec_t v)
{
	int msb, sub;

	if (v < SUB)
		return v < 0 ? 0 : (int)v;
	msb = 63 - __builtin_clzll((unsigned long long)v);
	sub = (int)((v >> (msb - 2)) & (SUB - 1));
	return (msb - 1) * SUB + sub;
}

/* The largest value that falls in bucket b. */
static usec_t stats_bucket_top(int b)
{
	int msb, sub;

	if (b < SUB)
		return b;
	msb = b / SUB + 1;
	sub = b % SUB;
	return (((usec_t)(SUB + sub + 1)) << (msb - 2)) - 1;
}

void stats_setup(void)
{
	memset(&stats, 0, sizeof(stats));
}

void stats_record(enum method_id m, enum rpc_error error, usec_t latency)
{
	struct method_stats *s = &stats.m[m];

	s->requests++;
	if (error < E_COUNT_)
		s->errors[error]++;
	s->hist[stats_bucket(latency)]++;
	for (size_t i = 0; i < NLE; i++) {
		if (latency <= stats_le_us[i]) {
			s->le[i]++;
			break;
		}
	}
	s->sum_us += latency > 0 ? (uint64_t)latency : 0;
	if (latency > s->max)
		s->max = latency;
}

void stats_record_error(enum rpc_error error)
{
	if (error < E_COUNT_)
		stats.early_errors[error]++;
}

uint64_t stats_requests(enum method_id m)
{
	return stats.m[m].requests;
}

usec_t stats_percentile(enum method_id m, double q)
{
	const struct method_stats *s = &stats.m[m];
	uint64_t want, seen = 0;

	if (s->requests == 0)
		return 0;
	want = (uint64_t)(q * (double)s->requests);
	if (want < 1)
		want = 1;
	for (int b = 0; b < NBUCKETS; b++) {
		seen += s->hist[b];
		if (seen >= want) {
			usec_t top = stats_bucket_top(b);

			return top < s->max ? top : s->max;
		}
	}
	return s->max;
}

static int pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	if (proto_pack_cstr(pk, k) < 0)
		return -1;
	return msgpack_pack_uint64(pk, v);
}

/* "buckets": {"LE": n, ..., "+Inf": n}, cumulative: n requests took at
 * most LE microseconds. */
static int pack_buckets(msgpack_packer *pk, const struct method_stats *s)
{
	uint64_t cum = 0;
	char key[24];

	if (proto_pack_cstr(pk, "buckets") < 0 ||
	    msgpack_pack_map(pk, NLE + 1) < 0)
		return -1;
	for (size_t i = 0; i < NLE; i++) {
		cum += s->le[i];
		snprintf(key, sizeof(key), "%lld", (long long)stats_le_us[i]);
		if (pack_kv_u64(pk, key, cum) < 0)
			return -1;
	}
	return pack_kv_u64(pk, "+Inf", s->requests);
}

/*
 * "methods": {name: {requests, errors: {code: n}, latency_us: {p50, p95,
 * p99, max, buckets, sum, count}}} for every method called at least once,
 * and
 * "protocol_errors": {code: n} for messages that never reached a method.
 */
int stats_pack_requests(msgpack_packer *pk)
{
	int nm = 0, ne;

	for (int m = 0; m < M_COUNT_; m++)
		if (stats.m[m].requests)
			nm++;
	if (proto_pack_cstr(pk, "methods") < 0 || msgpack_pack_map(pk, (size_t)nm) < 0)
		return -1;
	for (int m = 0; m < M_COUNT_; m++) {
		const struct method_stats *s = &stats.m[m];

		if (!s->requests)
			continue;
		ne = 0;
		for (int e = 0; e < E_COUNT_; e++)
			if (s->errors[e])
				ne++;
		if (proto_pack_cstr(pk, validate_methods[m].name) < 0 ||
		    msgpack_pack_map(pk, 3) < 0 ||
		    pack_kv_u64(pk, "requests", s->requests) < 0 ||
		    proto_pack_cstr(pk, "errors") < 0 ||
		    msgpack_pack_map(pk, (size_t)ne) < 0)
			return -1;
		for (int e = 0; e < E_COUNT_; e++)
			if (s->errors[e] &&
			    pack_kv_u64(pk, rpc_error_code((enum rpc_error)e),
					s->errors[e]) < 0)
				return -1;
		if (proto_pack_cstr(pk, "latency_us") < 0 ||
		    msgpack_pack_map(pk, 7) < 0 ||
		    pack_kv_u64(pk, "p50", (uint64_t)stats_percentile(m, 0.50)) < 0 ||
		    pack_kv_u64(pk, "p95", (uint64_t)stats_percentile(m, 0.95)) < 0 ||
		    pack_kv_u64(pk, "p99", (uint64_t)stats_percentile(m, 0.99)) < 0 ||
		    pack_kv_u64(pk, "max", (uint64_t)s->max) < 0 ||
		    pack_buckets(pk, s) < 0 ||
		    pack_kv_u64(pk, "sum", s->sum_us) < 0 ||
		    pack_kv_u64(pk, "count", s->requests) < 0)
			return -1;
	}
	ne = 0;
	for (int e = 0; e < E_COUNT_; e++)
		if (stats.early_errors[e])
			ne++;
	if (proto_pack_cstr(pk, "protocol_errors") < 0 ||
	    msgpack_pack_map(pk, (size_t)ne) < 0)
		return -1;
	for (int e = 0; e < E_COUNT_; e++)
		if (stats.early_errors[e] &&
		    pack_kv_u64(pk, rpc_error_code((enum rpc_error)e),
				stats.early_errors[e]) < 0)
			return -1;
	return 0;
}
