/*
 * admin.c - ping, stats and health (admin.h).
 */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "autoconfig.h"
#include "budget.h"
#include "clock.h"
#include "deadline.h"
#include "health.h"
#include "memory.h"
#include "pool.h"
#include "proto.h"
#include "request.h"
#include "retention.h"
#include "server.h"
#include "stats.h"

static struct {
	usec_t started_real;		/* for started_at */
	usec_t started_mono;		/* for uptime */
} ctx;

void admin_setup(usec_t started_real, usec_t started_mono)
{
	ctx.started_real = started_real;
	ctx.started_mono = started_mono;
}

static int pack_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
	if (proto_pack_cstr(pk, k) < 0)
		return -1;
	return msgpack_pack_int64(pk, v);
}

static int pack_pool(msgpack_packer *pk)
{
	struct pool_stats ps;

	pool_stats(&ps);
	if (proto_pack_cstr(pk, "pool") < 0 || msgpack_pack_map(pk, 25) < 0 ||
	    proto_pack_cstr(pk, "database_up") < 0 ||
	    (ps.database_up ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) < 0 ||
	    pack_kv_int(pk, "open", ps.open) < 0 ||
	    pack_kv_int(pk, "busy", ps.busy) < 0 ||
	    pack_kv_int(pk, "idle", ps.idle) < 0 ||
	    pack_kv_int(pk, "connecting", ps.connecting) < 0 ||
	    pack_kv_int(pk, "waiting", ps.waiting) < 0 ||
	    pack_kv_int(pk, "connects", (int64_t)ps.connects) < 0 ||
	    pack_kv_int(pk, "connect_failures", (int64_t)ps.connect_failures) < 0 ||
	    pack_kv_int(pk, "lost", (int64_t)ps.lost) < 0 ||
	    pack_kv_int(pk, "recycled", (int64_t)ps.recycled) < 0 ||
	    pack_kv_int(pk, "timeouts", (int64_t)ps.timeouts) < 0 ||
	    pack_kv_int(pk, "unavailable", (int64_t)ps.unavailable) < 0 ||
	    pack_kv_int(pk, "pings", (int64_t)ps.pings) < 0 ||
	    pack_kv_int(pk, "refused", (int64_t)ps.refused) < 0 ||
	    pack_kv_int(pk, "given_back", (int64_t)ps.given_back) < 0 ||
	    pack_kv_int(pk, "rechecks", (int64_t)ps.rechecks) < 0 ||
	    pack_kv_int(pk, "read_only", (int64_t)ps.read_only) < 0 ||
	    pack_kv_int(pk, "not_replicated", (int64_t)ps.not_replicated) < 0 ||
	    pack_kv_int(pk, "stale", (int64_t)ps.stale) < 0 ||
	    pack_kv_int(pk, "failing", ps.failing) < 0 ||
	    proto_pack_cstr(pk, "pooler") < 0 ||
	    (ps.pooler ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) < 0 ||
	    proto_pack_cstr(pk, "database_stalled") < 0 ||
	    (ps.database_stalled ? msgpack_pack_true(pk) :
				   msgpack_pack_false(pk)) < 0 ||
	    pack_kv_int(pk, "abandoned", (int64_t)ps.abandoned) < 0 ||
	    pack_kv_int(pk, "deadline_timeouts",
			(int64_t)deadline_expired_count()) < 0 ||
	    proto_pack_cstr(pk, "last_error") < 0 ||
	    (ps.last_error[0] ? proto_pack_cstr(pk, ps.last_error) :
				msgpack_pack_nil(pk)) < 0)
		return -1;
	return 0;
}

static int pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
	if (proto_pack_cstr(pk, k) < 0)
		return -1;
	return msgpack_pack_uint64(pk, v);
}

static int pack_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
	if (proto_pack_cstr(pk, k) < 0)
		return -1;
	return v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

/* A time, or nil for none (0). */
static int pack_kv_time(msgpack_packer *pk, const char *k, usec_t t)
{
	if (proto_pack_cstr(pk, k) < 0)
		return -1;
	return t ? proto_pack_timestamp(pk, t) : msgpack_pack_nil(pk);
}

/* {code: n} for the codes that counted. */
static int pack_errors(msgpack_packer *pk, const uint64_t errors[E_COUNT_])
{
	int n = 0;

	for (int e = 0; e < E_COUNT_; e++)
		if (errors[e])
			n++;
	if (msgpack_pack_map(pk, (size_t)n) < 0)
		return -1;
	for (int e = 0; e < E_COUNT_; e++)
		if (errors[e] &&
		    pack_kv_u64(pk, rpc_error_code((enum rpc_error)e),
				errors[e]) < 0)
			return -1;
	return 0;
}

/* {requests, errors: {code: n}, latency_us: {p50, p95, p99, max,
 * buckets: {"LE": n, ..., "+Inf": n} (cumulative: n requests took at most
 * LE microseconds), sum, count}} */
static int pack_method(msgpack_packer *pk, const struct stats_method *s)
{
	char key[24];

	if (msgpack_pack_map(pk, 3) < 0 ||
	    pack_kv_u64(pk, "requests", s->requests) < 0 ||
	    proto_pack_cstr(pk, "errors") < 0 || pack_errors(pk, s->errors) < 0 ||
	    proto_pack_cstr(pk, "latency_us") < 0 ||
	    msgpack_pack_map(pk, 7) < 0 ||
	    pack_kv_u64(pk, "p50", (uint64_t)s->p50) < 0 ||
	    pack_kv_u64(pk, "p95", (uint64_t)s->p95) < 0 ||
	    pack_kv_u64(pk, "p99", (uint64_t)s->p99) < 0 ||
	    pack_kv_u64(pk, "max", (uint64_t)s->max) < 0 ||
	    proto_pack_cstr(pk, "buckets") < 0 ||
	    msgpack_pack_map(pk, STATS_NLE + 1) < 0)
		return -1;
	for (size_t i = 0; i < STATS_NLE; i++) {
		snprintf(key, sizeof(key), "%lld", (long long)stats_le_us[i]);
		if (pack_kv_u64(pk, key, s->le[i]) < 0)
			return -1;
	}
	if (pack_kv_u64(pk, "+Inf", s->requests) < 0 ||
	    pack_kv_u64(pk, "sum", s->sum_us) < 0 ||
	    pack_kv_u64(pk, "count", s->requests) < 0)
		return -1;
	return 0;
}

/*
 * "methods": {name: pack_method} for every method called at least once,
 * and "protocol_errors": {code: n} for messages that never reached a
 * method.
 */
static int pack_requests(msgpack_packer *pk)
{
	struct stats_method s;
	uint64_t early[E_COUNT_];
	int nm = 0;

	for (int m = 0; m < METHOD_COUNT_; m++)
		if (stats_requests((enum method_id)m))
			nm++;
	if (proto_pack_cstr(pk, "methods") < 0 ||
	    msgpack_pack_map(pk, (size_t)nm) < 0)
		return -1;
	for (int m = 0; m < METHOD_COUNT_; m++) {
		if (!stats_requests((enum method_id)m))
			continue;
		stats_method((enum method_id)m, &s);
		if (proto_pack_cstr(pk, method_table[m].name) < 0 ||
		    pack_method(pk, &s) < 0)
			return -1;
	}
	stats_protocol_errors(early);
	if (proto_pack_cstr(pk, "protocol_errors") < 0 ||
	    pack_errors(pk, early) < 0)
		return -1;
	return 0;
}

static int pack_retention(msgpack_packer *pk)
{
	struct retention_stats rs;

	retention_stats(&rs);
	if (proto_pack_cstr(pk, "retention") < 0 ||
	    msgpack_pack_map(pk, 10) < 0 ||
	    pack_kv_int(pk, "days_to_keep", rs.days_to_keep) < 0 ||
	    pack_kv_bool(pk, "running", rs.running) < 0 ||
	    pack_kv_u64(pk, "runs", rs.runs) < 0 ||
	    pack_kv_u64(pk, "skipped", rs.skipped) < 0 ||
	    pack_kv_u64(pk, "failures", rs.failures) < 0 ||
	    pack_kv_u64(pk, "total_deleted", rs.total_deleted) < 0 ||
	    pack_kv_u64(pk, "last_deleted", rs.last_deleted) < 0 ||
	    pack_kv_int(pk, "last_duration_us", rs.last_duration) < 0 ||
	    pack_kv_time(pk, "last_run", rs.last_run_real) < 0 ||
	    pack_kv_time(pk, "next_run", rs.next_run_real) < 0)
		return -1;
	return 0;
}

struct counter {
	const char *key;
	uint64_t n;
};

/* "name": {key: n, ...} */
static int pack_counters(msgpack_packer *pk, const char *name,
			 const struct counter *c, size_t n)
{
	if (proto_pack_cstr(pk, name) < 0 || msgpack_pack_map(pk, n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (pack_kv_u64(pk, c[i].key, c[i].n) < 0)
			return -1;
	return 0;
}

static int pack_memory(msgpack_packer *pk)
{
	struct memory_stats ms;

	memory_stats(&ms);
	const struct counter c[] = {
		{"trims", ms.trims},
		{"heap_bytes", ms.heap_bytes},
		{"heap_free_bytes", ms.heap_free_bytes},
	};
	return pack_counters(pk, "memory", c, ARRAY_LEN(c));
}

static int pack_budget(msgpack_packer *pk)
{
	struct budget_stats bs;

	budget_stats(&bs);
	const struct counter c[] = {
		{"limit_bytes", bs.limit},
		{"used_bytes", bs.used},
		{"peak_bytes", bs.peak},
		{"cutoffs", bs.cutoffs},
	};
	return pack_counters(pk, "budget", c, ARRAY_LEN(c));
}

int admin_pack_stats(msgpack_packer *pk)
{
	struct server_stats ss;
	usec_t up = clock_now() - ctx.started_mono;

	server_stats(&ss);
	if (msgpack_pack_map(pk, 10) < 0 ||
	    proto_pack_cstr(pk, "version") < 0 ||
	    proto_pack_cstr(pk, PACKAGE_VERSION) < 0 ||
	    pack_kv_int(pk, "uptime_s", up / USEC_PER_SEC) < 0 ||
	    proto_pack_cstr(pk, "started_at") < 0 ||
	    proto_pack_timestamp(pk, ctx.started_real) < 0 ||
	    proto_pack_cstr(pk, "clients") < 0 || msgpack_pack_map(pk, 5) < 0 ||
	    pack_kv_int(pk, "connected", ss.clients) < 0 ||
	    pack_kv_int(pk, "accepted", (int64_t)ss.accepted) < 0 ||
	    pack_kv_int(pk, "rejected", (int64_t)ss.rejected) < 0 ||
	    pack_kv_int(pk, "closed_on_error", (int64_t)ss.closed_errors) < 0 ||
	    pack_kv_int(pk, "requests_in_flight", request_inflight()) < 0 ||
	    pack_pool(pk) < 0 || pack_requests(pk) < 0 ||
	    pack_retention(pk) < 0 || pack_memory(pk) < 0 ||
	    pack_budget(pk) < 0)
		return -1;
	return 0;
}

static int pack_health(msgpack_packer *pk)
{
	struct health h;

	health_check(&h);
	if (msgpack_pack_map(pk, 4) < 0 || proto_pack_cstr(pk, "ok") < 0 ||
	    (h.ok ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) < 0 ||
	    proto_pack_cstr(pk, "database") < 0 ||
	    proto_pack_cstr(pk, h.database) < 0 ||
	    proto_pack_cstr(pk, "schema") < 0 ||
	    proto_pack_cstr(pk, h.schema) < 0 ||
	    proto_pack_cstr(pk, "message") < 0 ||
	    proto_pack_cstr(pk, h.message) < 0)
		return -1;
	return 0;
}

static void answer(struct request *r, int (*pack)(msgpack_packer *pk))
{
	if (pack(request_result(r)) < 0)
		request_abort(r, "cannot pack the result");
	else
		request_finish(r);
}

static int pack_pong(msgpack_packer *pk)
{
	return proto_pack_cstr(pk, "pong");
}

void admin_ping(struct request *r)
{
	answer(r, pack_pong);
}

void admin_stats(struct request *r)
{
	answer(r, admin_pack_stats);
}

void admin_health(struct request *r)
{
	answer(r, pack_health);
}
