/*
 * retention.c - the retention cleanup (timer and on demand).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event_struct.h>

#include "clock.h"
#include "consts.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "proto.h"
#include "retention.h"
#include "dbpart.h"
#include "schema_check.h"

/* After start (or once turned on): the count of what the first run will
 * delete is logged, then the first run comes FIRST_RUN_USEC later. */
#define ANNOUNCE_USEC (1 * USEC_PER_SEC)
#define FIRST_RUN_USEC (4 * USEC_PER_SEC)
/* Until convd accepts the schema, nothing is deleted: checked again. */
#define SCHEMA_WAIT_USEC (2 * USEC_PER_SEC)

/*
 * The advisory lock every convd on a database takes for a run
 * (CONVD_LOCK_RETENTION, a parameter: ret.lock_key).  With the lock:
 * whether the history is partitioned (dbpart.h).
 */
static const char sql_lock[] = "SELECT pg_try_advisory_lock($1::int8), "
	DBPART_IS_PARTITIONED_EXPR;
/* Partitioned layout: the partitions wholly older than the cut-off are
 * dropped first; the batches then find rows only in the partition the
 * cut-off falls in. */
static const char sql_drop[] = "SELECT " DBPART_DROP_FN "($1)";
static const char sql_unlock[] = "SELECT pg_advisory_unlock($1::int8)";
/*
 * Behind a transaction-mode pooler a session lock would stay on whichever
 * server session took it (and block every later run), so each batch takes
 * a transaction lock instead, in its own statement: one row, (got the
 * lock, rows deleted).
 */
static const char sql_batch_xact[] =
	"WITH l AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($3::int8)"
	" AS got),"
	" d AS (DELETE FROM " CONVD_T_HISTORY " WHERE id IN ("
	"SELECT id FROM " CONVD_T_HISTORY " WHERE created_at < $1"
	" AND (SELECT got FROM l) ORDER BY created_at LIMIT $2) RETURNING 1)"
	" SELECT (SELECT got FROM l), count(*) FROM d";
/* The created_at index gives the oldest rows first; each batch is one
 * short autocommit statement. */
static const char sql_batch[] =
	"DELETE FROM " CONVD_T_HISTORY " WHERE (id, created_at) IN ("
	"SELECT id, created_at FROM " CONVD_T_HISTORY
	" WHERE created_at < $1 ORDER BY created_at LIMIT $2)";
/* What a run would delete, and how many messages there are. */
static const char sql_count[] =
	"SELECT count(*) FILTER (WHERE created_at < $1), count(*)"
	" FROM " CONVD_T_HISTORY;

enum run_step {
	STEP_IDLE, STEP_ACQUIRE, STEP_COUNT, STEP_LOCK, STEP_DROP, STEP_BATCH,
	STEP_UNLOCK
};

struct run {
	enum run_step step;
	struct request *req;		/* on demand, or NULL for the timer */
	int64_t days;
	char cutoff[40];		/* timestamptz text */
	char batch[24];
	bool xact_lock;			/* sql_batch_xact, no session lock */
	uint64_t deleted;
	uint64_t dropped;		/* of deleted: in dropped partitions */
	bool partitioned;		/* the partitioned history layout */
	usec_t started;
	struct pool_waiter waiter;
	struct pool_conn *pc;
	bool skipped;
	bool count_only;		/* dry run, or the first run's notice */
	uint64_t would, total;		/* count_only: what the count said */
};

static struct {
	struct event_base *base;
	int64_t days_to_keep, interval, batch_size;
	struct event timer;		/* next scheduled run */
	struct event yield;		/* next batch, after other events */
	bool events_set;		/* the two above are assigned */
	char lock_key[24];		/* CONVD_LOCK_RETENTION as text */
	struct run run;
	struct request_queue pending;	/* on-demand requests, in order */
	/* stats */
	uint64_t runs, skipped, failures, total_deleted;
	usec_t last_run_real, last_duration, next_run_real;
	uint64_t last_deleted;
	char last_error[160];
	bool closing;
	bool timer_due;			/* the timer fired during another run */
	bool announced;			/* the first run's count was logged */
	bool waiting_logged;		/* "waiting for the schema" was logged */
} ret;

static void retention_start(struct request *req, int64_t days,
			    bool count_only);
static void retention_step_done(void *arg, struct pool_conn *pc,
				enum pool_status st, const PGresult *res,
				const char *msg);

static void retention_schedule(usec_t delay)
{
	if (loop_arm_usec(&ret.timer, delay, "retention timer") < 0) {
		ret.next_run_real = 0;
		log_error("retention: no periodic cleanup until the next "
			  "reload");
		return;
	}
	ret.next_run_real = clock_now_real() + delay;
}

/* interval +- 5% */
static usec_t retention_jittered_interval(void)
{
	usec_t iv = (usec_t)ret.interval * USEC_PER_SEC;
	usec_t j = iv / 20;

	return iv - j + (usec_t)(random() % (2 * j + 1));
}

static void retention_on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	ret.next_run_real = 0;
	if (ret.days_to_keep <= 0)
		return;
	if (!schema_check_ok()) {
		/* a database convd refuses is never touched */
		if (!ret.waiting_logged)
			log_notice("retention: waiting until convd accepts the "
				   "database schema (%s); nothing is deleted "
				   "before",
				   schema_check_message());
		ret.waiting_logged = true;
		retention_schedule(SCHEMA_WAIT_USEC);
		return;
	}
	ret.waiting_logged = false;
	if (ret.run.step != STEP_IDLE) {
		/* an on-demand run is going on: ours follows it */
		ret.timer_due = true;
		return;
	}
	retention_start(NULL, ret.days_to_keep, !ret.announced);
}

/* Before the first timer run: how many messages it will delete. */
static void retention_announce(const struct run *run)
{
	log_notice("retention: [retention] days_to_keep = %" PRId64 ": the "
		   "first run, in %d s, deletes %" PRIu64 " of %" PRIu64
		   " messages (those older than %.19s UTC); set days_to_keep "
		   "= 0 and reload to keep them",
		   run->days, (int)(FIRST_RUN_USEC / USEC_PER_SEC), run->would,
		   run->total, run->cutoff);
	ret.announced = true;
}

static void retention_finish(bool ok)
{
	struct run *run = &ret.run;
	struct request *req = run->req;
	usec_t took = clock_now() - run->started;

	if (run->pc) {
		if (ok)
			pool_release(run->pc);
		else
			pool_discard(run->pc);	/* drops the session lock */
		run->pc = NULL;
	}
	run->step = STEP_IDLE;
	if (ok && run->count_only && !req) {
		retention_announce(run);
	} else if (ok && run->count_only) {
		log_info("retention: dry run: %" PRIu64 " of %" PRIu64
			 " messages are older than %" PRId64 " days",
			 run->would, run->total, run->days);
	} else if (ok && !run->skipped) {
		ret.runs++;
		ret.total_deleted += run->deleted;
		ret.last_deleted = run->deleted;
		ret.last_duration = took;
		ret.last_run_real = clock_now_real();
		if ((run->deleted > 0 || req) && run->partitioned)
			log_info("retention: deleted %" PRIu64 " messages older "
				 "than %" PRId64 " days in %.3f s (%" PRIu64
				 " of them in dropped partitions)",
				 run->deleted, run->days, (double)took / 1e6,
				 run->dropped);
		else if (run->deleted > 0 || req)
			log_info("retention: deleted %" PRIu64 " messages older "
				 "than %" PRId64 " days in %.3f s",
				 run->deleted, run->days, (double)took / 1e6);
	} else if (ok) {
		ret.skipped++;
		log_info("retention: another convd holds the cleanup lock; "
			 "skipped");
	} else {
		ret.failures++;
	}
	if (req) {
		if (ok && run->count_only) {
			msgpack_packer *pk = request_result(req);

			if (msgpack_pack_map(pk, 4) < 0 ||
			    proto_pack_cstr(pk, "deleted") < 0 ||
			    msgpack_pack_uint64(pk, 0) < 0 ||
			    proto_pack_cstr(pk, "would_delete") < 0 ||
			    msgpack_pack_uint64(pk, run->would) < 0 ||
			    proto_pack_cstr(pk, "messages") < 0 ||
			    msgpack_pack_uint64(pk, run->total) < 0 ||
			    proto_pack_cstr(pk, "dry_run") < 0 ||
			    msgpack_pack_true(pk) < 0)
				request_abort(req, "cannot pack the result");
			else
				request_finish(req);
		} else if (ok) {
			msgpack_packer *pk = request_result(req);

			if (msgpack_pack_map(pk, 2) < 0 ||
			    proto_pack_cstr(pk, "deleted") < 0 ||
			    msgpack_pack_uint64(pk, run->deleted) < 0 ||
			    proto_pack_cstr(pk, "skipped") < 0 ||
			    (run->skipped ? msgpack_pack_true(pk) :
					    msgpack_pack_false(pk)) < 0)
				request_abort(req, "cannot pack the result");
			else
				request_finish(req);
		} else {
			request_error(req, E_UNAVAILABLE, "retention failed: %s",
				      ret.last_error);
		}
	}
	if (ret.closing)
		return;
	/* next on-demand request, if any */
	if (!TAILQ_EMPTY(&ret.pending)) {
		struct request *next = TAILQ_FIRST(&ret.pending);

		TAILQ_REMOVE(&ret.pending, next, link);
		retention_start(next, next->args.v[0].present ?
					      next->args.v[0].i :
					      ret.days_to_keep,
				next->args.v[1].i != 0);
	} else if (ret.timer_due && ret.days_to_keep > 0) {
		ret.timer_due = false;
		retention_on_timer(-1, 0, NULL);
	} else if (ret.days_to_keep > 0 && !evtimer_pending(&ret.timer, NULL)) {
		/* whoever ran, the timer is armed again: the first run comes
		 * shortly after its notice */
		retention_schedule(ret.announced && run->count_only && !req
					   ? FIRST_RUN_USEC
				   : ret.announced ? retention_jittered_interval()
						   : ANNOUNCE_USEC);
	}
}

static void retention_fail(const char *what, const char *msg)
{
	snprintf(ret.last_error, sizeof(ret.last_error), "%s: %s", what,
		 msg ? msg : "unknown error");
	for (char *p = ret.last_error; *p; p++)
		if (*p == '\n')
			*p = ' ';
	log_warn("retention: %s", ret.last_error);
	retention_finish(false);
}

static void retention_exec(const char *sql, int n, const char *const *vals)
{
	if (pool_exec(ret.run.pc, NULL, sql, n, vals, NULL, NULL, 0,
		      retention_step_done, NULL) < 0)
		retention_fail("cannot send query", "connection lost");
}

static void retention_next_batch(evutil_socket_t fd, short what, void *arg)
{
	const char *vals[3] = {ret.run.cutoff, ret.run.batch, ret.lock_key};

	(void)fd;
	(void)what;
	(void)arg;
	snprintf(ret.run.batch, sizeof(ret.run.batch), "%" PRId64,
		 ret.batch_size);
	ret.run.step = STEP_BATCH;
	if (ret.run.xact_lock)
		retention_exec(sql_batch_xact, 3, vals);
	else
		retention_exec(sql_batch, 2, vals);
}

static void retention_step_done(void *arg, struct pool_conn *pc,
				enum pool_status st, const PGresult *res,
				const char *msg)
{
	struct run *run = &ret.run;

	(void)arg;
	(void)pc;
	if (st != POOL_OK) {
		retention_fail(run->step == STEP_COUNT	? "counting" :
			       run->step == STEP_LOCK	? "taking the lock" :
			       run->step == STEP_DROP	? "dropping partitions" :
			       run->step == STEP_BATCH	? "deleting" :
							  "releasing the lock",
			       msg);
		return;
	}
	switch (run->step) {
	case STEP_COUNT:
		if (PQntuples(res) == 1) {
			run->would = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
			run->total = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
		}
		retention_finish(true);
		return;
	case STEP_LOCK:
		if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t")) {
			run->skipped = true;
			retention_finish(true);
			return;
		}
		if (PQnfields(res) == 2 && strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
			const char *vals[1] = {run->cutoff};

			run->partitioned = true;
			run->step = STEP_DROP;
			retention_exec(sql_drop, 1, vals);
			return;
		}
		retention_next_batch(-1, 0, NULL);
		return;
	case STEP_DROP:
		if (PQntuples(res) == 1)
			run->dropped = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		run->deleted += run->dropped;
		retention_next_batch(-1, 0, NULL);
		return;
	case STEP_BATCH: {
		uint64_t n;

		if (run->xact_lock) {
			if (PQntuples(res) != 1 || PQnfields(res) != 2) {
				retention_fail("deleting", "unexpected result");
				return;
			}
			if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
				/* another convd is at it */
				run->skipped = run->deleted == 0;
				retention_finish(true);
				return;
			}
			n = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
		} else {
			n = strtoull(PQcmdTuples((PGresult *)res), NULL, 10);
		}
		run->deleted += n;
		if (n >= (uint64_t)ret.batch_size && !ret.closing) {
			/* let foreground requests in before the next batch */
			event_active(&ret.yield, EV_TIMEOUT, 0);
			return;
		}
		if (run->xact_lock) {
			retention_finish(true);
			return;
		}
		const char *lock_vals[1] = {ret.lock_key};

		run->step = STEP_UNLOCK;
		retention_exec(sql_unlock, 1, lock_vals);
		return;
	}
	case STEP_UNLOCK:
		retention_finish(true);
		return;
	default:
		return;
	}
}

static void retention_on_acquire(void *arg, struct pool_conn *pc,
				 enum pool_status st, const char *msg)
{
	const char *lock_vals[1] = {ret.lock_key};

	(void)arg;
	if (st != POOL_OK) {
		retention_fail("no database connection", msg);
		return;
	}
	ret.run.pc = pc;
	if (ret.run.count_only) {
		const char *vals[1] = {ret.run.cutoff};

		ret.run.step = STEP_COUNT;
		retention_exec(sql_count, 1, vals);
		return;
	}
	ret.run.xact_lock = !pool_session_state();
	if (ret.run.xact_lock) {
		retention_next_batch(-1, 0, NULL);
		return;
	}
	ret.run.step = STEP_LOCK;
	retention_exec(sql_lock, 1, lock_vals);
}

static void retention_start(struct request *req, int64_t days,
			    bool count_only)
{
	struct run *run = &ret.run;
	usec_t now = clock_now_real();
	usec_t cutoff = now - days * 86400 * USEC_PER_SEC;
	/* floor division: a cut-off before 1970 (days_to_keep up to 36500)
	 * has a negative seconds part and a positive microseconds part */
	usec_t frac = ((cutoff % USEC_PER_SEC) + USEC_PER_SEC) % USEC_PER_SEC;
	time_t secs = (time_t)((cutoff - frac) / USEC_PER_SEC);
	struct tm tm;
	size_t n;

	memset(run, 0, sizeof(*run));
	run->req = req;
	run->days = days;
	run->count_only = count_only;
	run->started = clock_now();
	gmtime_r(&secs, &tm);
	n = strftime(run->cutoff, sizeof(run->cutoff), "%Y-%m-%d %H:%M:%S",
		     &tm);
	snprintf(run->cutoff + n, sizeof(run->cutoff) - n, ".%06lld+00",
		 (long long)frac);
	run->step = STEP_ACQUIRE;
	(void)pool_acquire_then(&run->waiter, retention_on_acquire, NULL);
}

void retention_request(struct request *r)
{
	if (!r->args.v[0].present && ret.days_to_keep == 0) {
		/* days_to_keep = 0 in the file means "never delete", not
		 * "delete everything older than now" */
		request_error(r, E_INVALID_PARAMS,
			      "days_to_keep is required while the periodic "
			      "cleanup is off ([retention] days_to_keep = 0)");
		return;
	}
	if (ret.run.step != STEP_IDLE) {
		TAILQ_INSERT_TAIL(&ret.pending, r, link);
		return;
	}
	retention_start(r, r->args.v[0].present ? r->args.v[0].i :
						  ret.days_to_keep,
			r->args.v[1].i != 0);
}

void retention_stats(struct retention_stats *out)
{
	out->days_to_keep = ret.days_to_keep;
	out->running = ret.run.step != STEP_IDLE;
	out->runs = ret.runs;
	out->skipped = ret.skipped;
	out->failures = ret.failures;
	out->total_deleted = ret.total_deleted;
	out->last_deleted = ret.last_deleted;
	out->last_duration = ret.last_duration;
	out->last_run_real = ret.last_run_real;
	out->next_run_real = ret.next_run_real;
}

void retention_reconfigure(const struct config *cfg)
{
	bool was_on = ret.days_to_keep > 0;
	int64_t old_interval = ret.interval;

	ret.days_to_keep = cfg->retention.days_to_keep;
	ret.interval = cfg->retention.interval;
	ret.batch_size = cfg->retention.batch_size;
	if (ret.days_to_keep == 0) {
		evtimer_del(&ret.timer);
		ret.next_run_real = 0;
		ret.announced = false;
	} else if (!was_on || old_interval != ret.interval) {
		evtimer_del(&ret.timer);
		if (!was_on)
			ret.announced = false;
		retention_schedule(was_on ? retention_jittered_interval() :
					    ANNOUNCE_USEC);
	}
}

int retention_setup(struct event_base *base, const struct config *cfg)
{
	memset(&ret, 0, sizeof(ret));
	TAILQ_INIT(&ret.pending);
	ret.base = base;
	snprintf(ret.lock_key, sizeof(ret.lock_key), "%lld",
		 (long long)CONVD_LOCK_RETENTION);
	if (evtimer_assign(&ret.timer, base, retention_on_timer, NULL) < 0 ||
	    event_assign(&ret.yield, base, -1, 0, retention_next_batch,
			 NULL) < 0)
		return -1;
	ret.events_set = true;
	retention_reconfigure(cfg);
	return 0;
}

/*
 * Stops scheduling.  A batch in flight ends when the pool closes (its
 * callback then finds `closing` set and schedules nothing).
 */
void retention_cleanup(void)
{
	ret.closing = true;
	if (ret.run.step == STEP_BATCH && ret.events_set &&
	    event_pending(&ret.yield, EV_TIMEOUT, NULL)) {
		/* between two batches: no query that pool_cleanup could end */
		event_del(&ret.yield);
		retention_fail("deleting", "convd is shutting down");
	}
	if (ret.run.step == STEP_ACQUIRE) {
		pool_cancel(&ret.run.waiter);
		if (ret.run.req)
			request_error(ret.run.req, E_UNAVAILABLE,
				      "convd is shutting down");
		ret.run.req = NULL;
	}
	while (!TAILQ_EMPTY(&ret.pending)) {
		struct request *r = TAILQ_FIRST(&ret.pending);

		TAILQ_REMOVE(&ret.pending, r, link);
		request_error(r, E_UNAVAILABLE, "convd is shutting down");
	}
	if (ret.events_set) {
		event_del(&ret.timer);
		event_del(&ret.yield);
	}
	ret.events_set = false;
	if (ret.run.step == STEP_ACQUIRE)
		ret.run.step = STEP_IDLE;
}
