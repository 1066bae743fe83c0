/*
 * stats.c - request counters and latency histograms.
 *
 * Latencies go into log-linear buckets (4 per power of two, like a small
 * HdrHistogram): recording is O(1) with no allocation, and a percentile is
 * exact to within 19%.  They are also counted exactly in the fixed buckets
 * of stats_le_us, with their sum, for the Prometheus histogram.
 */
#include <string.h>

#include "stats.h"

#define SUB 4
#define NBUCKETS (64 * SUB)

const usec_t stats_le_us[STATS_NLE] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
#define NLE STATS_NLE

struct method_counts {
	uint64_t requests;
	uint64_t errors[E_COUNT_];
	uint64_t hist[NBUCKETS];
	uint64_t le[NLE];	/* not cumulative: values in (le[i-1], le[i]] */
	uint64_t sum_us;
	usec_t max;
};

static struct {
	struct method_counts m[METHOD_COUNT_];
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
	struct method_counts *s = &stats.m[m];

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

static usec_t stats_percentile(const struct method_counts *s, double q)
{
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

void stats_method(enum method_id m, struct stats_method *out)
{
	const struct method_counts *s = &stats.m[m];
	uint64_t cum = 0;

	out->requests = s->requests;
	memcpy(out->errors, s->errors, sizeof(out->errors));
	for (size_t i = 0; i < NLE; i++) {
		cum += s->le[i];
		out->le[i] = cum;
	}
	out->sum_us = s->sum_us;
	out->max = s->max;
	out->p50 = stats_percentile(s, 0.50);
	out->p95 = stats_percentile(s, 0.95);
	out->p99 = stats_percentile(s, 0.99);
}

void stats_protocol_errors(uint64_t out[E_COUNT_])
{
	memcpy(out, stats.early_errors, sizeof(stats.early_errors));
}
