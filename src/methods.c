/*
 * methods.c - dispatch of validated requests: the methods that need no
 * database are answered here; the others go to the store or retention.
 */
#include <string.h>

#include "autoconfig.h"
#include "budget.h"
#include "clock.h"
#include "context.h"
#include "erase.h"
#include "msgpage.h"
#include "search.h"
#include "deadline.h"
#include "health.h"
#include "memory.h"
#include "methods.h"
#include "pool.h"
#include "proto.h"
#include "retention.h"
#include "schema_check.h"
#include "stats.h"
#include "store.h"

static struct methods_context ctx;

void methods_setup(const struct methods_context *c)
{
	ctx = *c;
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

int methods_pack_stats(msgpack_packer *pk)
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
	    pack_kv_int(pk, "requests_in_flight", server_inflight()) < 0 ||
	    pack_pool(pk) < 0 || stats_pack_requests(pk) < 0 ||
	    retention_pack_stats(pk) < 0 || memory_pack_stats(pk) < 0 ||
	    budget_pack_stats(pk) < 0)
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

void methods_dispatch(struct request *r)
{
	switch (r->spec->id) {
	case M_PING:
		answer(r, pack_pong);
		return;
	case M_STATS:
		answer(r, methods_pack_stats);
		return;
	case M_HEALTH:
		answer(r, pack_health);
		return;
	default:
		break;
	}
	if (!schema_check_serving()) {
		request_error(r, E_UNAVAILABLE, "%s", schema_check_message());
		return;
	}
	if (r->spec->id == M_CLEANUP) {
		retention_request(r);
		return;
	}
	switch (r->spec->id) {	/* issue 18 */
	case M_GET_CONTEXT:
		context_dispatch(r);
		return;
	case M_GET_MESSAGES:
		msgpage_dispatch(r);
		return;
	case M_DELETE_MESSAGE:
		erase_delete_message(r);
		return;
	case M_SEARCH_MESSAGES:
		search_dispatch(r);
		return;
	case M_FORGET_USER:
		erase_forget_user(r);
		return;
	default:
		break;
	}
	store_dispatch(r);
}
