/*
 * pool.c - the asynchronous libpq connection pool.
 *
 * Life of a connection:
 *
 *   CONNECTING --PQconnectPoll OK--> SETUP --prepares done--> IDLE
 *   IDLE --acquire--> BUSY (or PING first, when pre_ping says so)
 *   BUSY --release--> IDLE, or closed when it broke
 *
 * Idle connections keep a read event on their socket: a server that goes
 * away (restart, idle_session_timeout, pg_terminate_backend) is noticed at
 * once and the connection replaced, not at the next request.
 *
 * Below the pool: multihost.c connects (CONNECTING) across the host list
 * and keeps what is known of the hosts (primaries, stale ones); pipeline.c
 * sends a command and reads its results (rowlimit.c bounds them); pace.c
 * says when connections may be opened; waitq.c holds the waiters.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>

#include "cancel.h"
#include "clock.h"
#include "lists.h"
#include "log.h"
#include "loop.h"
#include "multihost.h"
#include "pace.h"
#include "pgnotice.h"
#include "pipeline.h"
#include "pool.h"
#include "topology.h"

enum pc_state {
	PC_CONNECTING,
	PC_SETUP,
	PC_IDLE,
	PC_PING,
	PC_BUSY,
};

struct pool_conn {
	LIST_ENTRY(pool_conn) link;		/* all connections */
	TAILQ_ENTRY(pool_conn) idle_link;	/* idle stack (LIFO) */
	/* connecting through the host list (mc.pg: the connection) */
	struct multihost_conn mc;
	struct event rev, wev;			/* socket, once connected */
	struct event ping_timer;		/* PING: the waiter's timeout */
	enum pc_state state;
	usec_t created, last_used, recycle_at;
	uint64_t id;
	bool broken;
	struct pipeline pl;			/* the command, its results */
	bool pid_probe;				/* SETUP: pg_backend_pid() */
	bool checking;				/* PING: the read-write check */
	bool probe;				/* looks for a newer primary */
	usec_t checked;				/* last read-write check */
	struct pgnotice_ctx notice;
	/* the query in progress (BUSY) or the ping (PING) */
	bool exec_active;
	usec_t exec_started;			/* when it was sent */
	pool_exec_fn fn;
	void *arg;
	struct pool_waiter *ping_for;		/* PING: who gets it next */
};

#define UPKEEP_USEC (500 * 1000)
/* how long queries that failed in a row keep `health` not ok */
#define FAILING_FOR_USEC (60 * USEC_PER_SEC)

static struct {
	struct event_base *base;
	const struct dbconf *dc;
	struct pool_settings set;
	char *setup_sql;			/* SET ...; */
	const struct pool_statement *stmts;
	size_t nstmts;
	LIST_HEAD(, pool_conn) all;		/* every connection */
	TAILQ_HEAD(pool_idle_head, pool_conn) idle;	/* idle stack, newest
							 * first */
	int nopen;				/* IDLE + BUSY + PING */
	int nconnecting;			/* CONNECTING + SETUP */
	int nbusy;
	int nidle;
	struct waitq wq;			/* waiters, FIFO */
	bool wait_unarmed;			/* its timer could not be armed */
	struct event upkeep;
	struct pace pace;			/* backoff, a full server */
	bool down;				/* database known unreachable */
	usec_t suspect_before;			/* ping conns created before */
	bool set_up;				/* pool_setup ran */
	bool closing;
	bool shrinking;				/* a reload reduced `size` */
	bool unprepared;			/* unnamed statements only */
	char timeout_param[16];			/* statement_timeout, as text */
	struct event retry_timer;		/* next attempt, to the ms */
	/* upkeep now, from the loop: activating the persistent upkeep timer
	 * itself would push its next run 0.5 s later each time (libevent
	 * reschedules a persistent timer relative to its last deadline) */
	struct event kick;
	usec_t last_failure;			/* of a query (st.failing) */
	uint64_t next_id;
	usec_t last_answer;			/* a query or ping completed */
	usec_t last_abandon;			/* a query was given up */
	struct pool_stats st;
} pool;

static void pool_conn_event(evutil_socket_t fd, short what, void *arg);
static void pool_conn_close(struct pool_conn *pc, const char *why);
static void pool_fill(void);
static void pool_connect_failed(struct pool_conn *pc, const char *msg);
static void pool_serve_waiters(void);
static void pool_probe_done(struct pool_conn *pc, enum pool_status st,
			    const PGresult *res);
static void pool_conn_setup(struct pool_conn *pc);
static void pool_kick(void);

static void pool_set_error(const char *msg)
{
	/* libpq messages end in a newline; keep the last error one line. */
	snprintf(pool.st.last_error, sizeof(pool.st.last_error), "%.*s",
		 dbconf_msg_len(msg), msg);
	for (char *p = pool.st.last_error; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

static const char *pool_conn_error(struct pool_conn *pc)
{
	pool_set_error(pc->mc.pg ? PQerrorMessage(pc->mc.pg) : "no connection");
	return pool.st.last_error;
}

/*
 * Once connected, the socket no longer changes: one persistent read event
 * for the connection's whole life, and a write event added only while
 * libpq has output it could not send (PQflush returned 1).
 */
static int pool_conn_attach(struct pool_conn *pc)
{
	int fd = PQsocket(pc->mc.pg);

	if (fd < 0)
		return -1;
	event_assign(&pc->rev, pool.base, fd, EV_READ | EV_PERSIST,
		     pool_conn_event, pc);
	event_assign(&pc->wev, pool.base, fd, EV_WRITE, pool_conn_event, pc);
	return loop_arm(&pc->rev, NULL, "database read");
}

/* Sends what libpq has buffered; waits for writability if it must. */
static int pool_conn_flush(struct pool_conn *pc)
{
	int f = PQflush(pc->mc.pg);

	if (f < 0)
		return -1;
	if (f == 1 && loop_arm(&pc->wev, NULL, "database write") < 0)
		return -1;
	return 0;
}

static void pool_idle_remove(struct pool_conn *pc)
{
	TAILQ_REMOVE(&pool.idle, pc, idle_link);
	pool.nidle--;
}

static void pool_idle_push(struct pool_conn *pc)
{
	pc->state = PC_IDLE;
	TAILQ_INSERT_HEAD(&pool.idle, pc, idle_link);
	pool.nidle++;
}

static usec_t pool_recycle_deadline(usec_t created)
{
	usec_t r = (usec_t)pool.set.recycle * USEC_PER_SEC;

	if (r <= 0)
		return 0;
	/* Spread recycling: each connection lives 90% to 100% of recycle. */
	return created + r - (usec_t)(random() % (r / 10 + 1));
}

/* ---- waiters ---------------------------------------------------------- */

#define pool_waiter_of(e) \
	((struct pool_waiter *)((char *)(e) - \
				offsetof(struct pool_waiter, entry)))

static struct pool_waiter *pool_waiter_first(void)
{
	struct waitq_entry *e = waitq_first(&pool.wq);

	return e ? pool_waiter_of(e) : NULL;
}

/*
 * The timer of the first waiter's deadline.  Should it not arm, the
 * waiters could wait for ever: they fail from the loop instead (pool_kick,
 * pool_upkeep), with the reason logged.
 */
static void pool_wait_timer_arm(void)
{
	if (waitq_arm(&pool.wq) < 0) {
		pool.wait_unarmed = true;
		pool_kick();
	}
}

static void pool_waiters_expire(void *arg)
{
	usec_t now = clock_now();
	struct waitq_entry *e;

	(void)arg;
	while ((e = waitq_pop_due(&pool.wq, now))) {
		struct pool_waiter *w = pool_waiter_of(e);

		pool.st.timeouts++;
		w->fn(w->arg, NULL, POOL_TIMEOUT,
		      "no database connection became free within the pool "
		      "timeout");
	}
	pool_wait_timer_arm();
}

/* Fails every waiter: the database is down, or we are closing. */
static void pool_fail_waiters(enum pool_status st, const char *msg)
{
	struct pool_waiter *w;

	while ((w = pool_waiter_first())) {
		waitq_remove(&pool.wq, &w->entry);
		if (st == POOL_UNAVAILABLE)
			pool.st.unavailable++;
		w->fn(w->arg, NULL, st, msg);
	}
	pool_wait_timer_arm();
}

/* ---- connection life -------------------------------------------------- */

static void pool_conn_free(struct pool_conn *pc)
{
	if (event_initialized(&pc->rev))
		event_del(&pc->rev);
	if (event_initialized(&pc->wev))
		event_del(&pc->wev);
	if (event_initialized(&pc->ping_timer))
		event_del(&pc->ping_timer);
	pipeline_clear(&pc->pl);
	multihost_conn_cleanup(&pc->mc);
	free(pc);
}

static void pool_conn_unlink(struct pool_conn *pc)
{
	LIST_REMOVE(pc, link);
	switch (pc->state) {
	case PC_CONNECTING:
	case PC_SETUP:
		pool.nconnecting--;
		break;
	case PC_IDLE:
		pool_idle_remove(pc);
		pool.nopen--;
		break;
	case PC_PING:
		pool.nopen--;
		break;
	case PC_BUSY:
		pool.nopen--;
		pool.nbusy--;
		break;
	}
}

static void pool_conn_close(struct pool_conn *pc, const char *why)
{
	if (why)
		log_info("pool: closing connection %llu: %s",
			 (unsigned long long)pc->id, why);
	pool_conn_unlink(pc);
	pool_conn_free(pc);
}

/* pool_fill runs at `when` (to the millisecond, not at the next upkeep). */
static void pool_retry_at(usec_t when)
{
	if (loop_arm_usec(&pool.retry_timer, when - clock_now(),
			  "pool retry") < 0)
		return;	/* logged; upkeep fills the pool twice a second */
}

/* Upkeep now, from the loop. */
static void pool_kick(void)
{
	event_active(&pool.kick, EV_TIMEOUT, 0);
}

static void pool_retry_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	pool_fill();
}

/* ---- connecting ---------------------------------------------------------- */

/* The pre-ping got no answer within its waiter's timeout. */
static void pool_ping_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pool_conn *pc = arg;
	struct pool_waiter *w = pc->ping_for;

	(void)fd;
	(void)what;
	pc->ping_for = NULL;
	pool.st.lost++;
	pool.suspect_before = clock_now();
	log_warn("pool: pre-ping on connection %llu got no answer",
		 (unsigned long long)pc->id);
	pool_conn_close(pc, NULL);
	if (w) {
		pool.st.timeouts++;
		w->fn(w->arg, NULL, POOL_TIMEOUT,
		      "no database connection became free within the "
		      "pool timeout");
	}
	pool_fill();
}

/* How the attempt across the host list went (multihost.h). */
static void pool_conn_attempt(void *arg, enum multihost_event ev,
			      const char *msg)
{
	struct pool_conn *pc = arg;

	switch (ev) {
	case MULTIHOST_CONNECTED:
		pool_conn_setup(pc);
		break;
	case MULTIHOST_TIMEOUT:
		pool_set_error("connect timeout expired");
		log_warn("pool: connect to %s timed out after %lld s",
			 pool.dc->describe,
			 (long long)pool.dc->connect_timeout);
		pool_connect_failed(pc, msg);
		break;
	case MULTIHOST_FAILED:
		pool_connect_failed(pc, msg);
		break;
	}
}

static void pool_connect_failed(struct pool_conn *pc, const char *msg)
{
	bool first = !pool.down && pool.pace.failures == 0, news;
	usec_t now = clock_now(), retry;

	if (pc->probe) {
		/* no other writable host: the usual answer */
		multihost_probing(false);
		pool_conn_close(pc, NULL);
		return;
	}
	if (topology_server_full(msg)) {
		/*
		 * The server is up but has no free slot (other convd
		 * instances, other clients): not an outage.  Waiters keep
		 * waiting (up to [pool] timeout), we try again soon, and
		 * while contended every pool gives back a connection now
		 * and then (pool_give_back), so a starved one gets some.
		 */
		pool.st.refused++;
		retry = pace_refused(&pool.pace, now, &news);
		if (news)
			log_notice("pool: the server has no free connection "
				   "slot; waiting for one (%d open)",
				   pool.nopen);
		pool_conn_close(pc, NULL);
		pool_retry_at(retry);
		return;
	}
	pool.suspect_before = now;	/* a sign the topology may change */
	pool_set_error(msg);
	pool.st.connect_failures++;
	pool_retry_at(pace_failed(&pool.pace, now, pool.set.backoff_min,
				  pool.set.backoff_max));
	if (first || log_enabled(LOG_LVL_DEBUG))
		log_warn("pool: cannot connect to %s: %s", pool.dc->describe,
			 pool.st.last_error);
	pool_conn_close(pc, NULL);
	if (pool.nopen == 0 && pool.nconnecting == 0) {
		if (!pool.down)
			log_error("pool: database unavailable (%s); retrying "
				  "with backoff",
				  pool.st.last_error);
		pool.down = true;
		pool_fail_waiters(POOL_UNAVAILABLE, "database unavailable");
	}
	pool_fill();
}

static void pool_conn_ready(struct pool_conn *pc)
{
	usec_t now = clock_now();

	if (multihost_is_stale(pc->mc.host)) {
		pool_conn_close(pc, "on a stale primary");
		pool_fill();
		return;
	}
	multihost_settled(&pc->mc);
	/* From here on every query is sent in pipeline mode: a statement's
	 * first-use PREPARE, the query and its sync go out in one write and
	 * come back in one round trip. */
	if (!PQenterPipelineMode(pc->mc.pg)) {
		pool_connect_failed(pc, PQerrorMessage(pc->mc.pg));
		return;
	}
	pool.nconnecting--;
	pool.nopen++;
	pool.st.connects++;
	if (pool.down || pool.pace.failures > 0)
		log_notice("pool: database reachable again (%s)",
			   pool.dc->describe);
	pool.down = false;
	pace_connected(&pool.pace);
	multihost_note_params(pc->mc.pg);
	pc->created = now;
	pc->checked = now;	/* libpq checked target_session_attrs */
	pc->last_used = now;
	pc->recycle_at = pool_recycle_deadline(now);
	pool_idle_push(pc);
	log_debug("pool: connection %llu ready", (unsigned long long)pc->id);
	pool_serve_waiters();
}

/* From now on statements are unnamed and no session state is set. */
static void pool_go_unprepared(const char *why)
{
	if (pool.unprepared)
		return;
	pool.unprepared = true;
	log_notice("pool: %s: a transaction-mode pooler; statements are no "
		   "longer prepared ([database] prepared_statements = auto)",
		   why);
}

static void pool_conn_send_setup(struct pool_conn *pc, const char *sql)
{
	if (!PQsendQuery(pc->mc.pg, sql)) {
		pool_connect_failed(pc, PQerrorMessage(pc->mc.pg));
		return;
	}
	pc->exec_active = true;
	if (pool_conn_flush(pc) < 0)
		pool_connect_failed(pc, "cannot send the set-up queries");
}

/*
 * The session settings; the connect timeout stays armed until done.
 * With prepared_statements = auto, a pooler is looked for first: the
 * server process that answers is not the one the connection's start-up
 * named (PgBouncer and its kind hand out keys of their own).  Through a
 * pooler (detected or declared) no session setting is made: it would stay
 * on a server session other clients get, and not follow ours.
 */
static void pool_conn_setup(struct pool_conn *pc)
{
	pc->state = PC_SETUP;
	pc->pid_probe = false;
	if (pool_conn_attach(pc) < 0) {
		pool_connect_failed(pc, "cannot watch socket");
		return;
	}
	if (pc->probe) {
		pool_conn_send_setup(pc, TOPOLOGY_CHECK_SQL);
		return;
	}
	if (pool.set.prepare == POOL_PREPARE_AUTO && !pool.unprepared) {
		pc->pid_probe = true;
		pool_conn_send_setup(pc, "SELECT pg_catalog.pg_backend_pid()");
		return;
	}
	if (pool.unprepared) {
		pool_conn_ready(pc);
		return;
	}
	pool_conn_send_setup(pc, pool.setup_sql);
}

/* A set-up step ended well: the next one, or ready. */
static void pool_conn_setup_next(struct pool_conn *pc, const PGresult *res)
{
	if (pc->pid_probe) {
		pc->pid_probe = false;
		if (res && PQntuples(res) == 1 && PQnfields(res) == 1 &&
		    atoi(PQgetvalue(res, 0, 0)) != PQbackendPID(pc->mc.pg)) {
			char why[96];

			snprintf(why, sizeof(why),
				 "server process %s answers for %d",
				 PQgetvalue(res, 0, 0), PQbackendPID(pc->mc.pg));
			pool_go_unprepared(why);
		}
		if (!pool.unprepared) {
			pool_conn_send_setup(pc, pool.setup_sql);
			return;
		}
	}
	pool_conn_ready(pc);
}

/* A new connection, CONNECTING, in the list; its PGconn is the caller's. */
static struct pool_conn *pool_conn_alloc(void)
{
	struct pool_conn *pc = calloc(1, sizeof(*pc));

	if (!pc)
		return NULL;
	pc->id = ++pool.next_id;
	pipeline_init(&pc->pl);
	pc->state = PC_CONNECTING;
	pc->mc.id = pc->id;
	pc->mc.notice = &pc->notice;
	pc->mc.fn = pool_conn_attempt;
	pc->mc.arg = pc;
	evtimer_assign(&pc->ping_timer, pool.base, pool_ping_timeout, pc);
	LIST_INSERT_HEAD(&pool.all, pc, link);
	pool.nconnecting++;
	return pc;
}

static int pool_conn_open(void)
{
	struct pool_conn *pc = pool_conn_alloc();
	PGconn *pg;

	if (!pc)
		return -1;
	pg = PQconnectStartParams(pool.dc->keys, pool.dc->vals, 1);
	if (!pg) {
		pool_connect_failed(pc, "out of memory");
		return -1;
	}
	return multihost_start(&pc->mc, pg, true);
}

static int pool_min_size(void)
{
	return pool.set.min_size < pool.set.size ? pool.set.min_size :
						   pool.set.size;
}

/*
 * Opens connections on demand: min_size always, more while requests wait
 * (one per waiter, up to size + max_overflow), honouring the backoff; on
 * a full server, one at a time and not while leaving a slot to others.
 */
static void pool_fill(void)
{
	usec_t now = clock_now();
	enum pace_mode mode = pace_mode(&pool.pace, now);
	int have, want, max;

	if (pool.closing || mode == PACE_WAIT)
		return;
	have = pool.nopen + pool.nconnecting;
	max = pool.set.size + pool.set.max_overflow;
	want = pool_min_size();
	if (pool.wq.n > 0) {
		int need = pool.nbusy + pool.wq.n;

		if (need > want)
			want = need;
	}
	if (want > max)
		want = max;
	switch (mode) {
	case PACE_FULL:
		if (pool.nconnecting == 0 && have < want) {
			/* next try unless this one gets through */
			pool_retry_at(pace_full_try(&pool.pace, now));
			(void)pool_conn_open();
		}
		return;
	case PACE_FAILING:
		/* While failing, probe with one connection at a time. */
		if (pool.nconnecting == 0 && have < want)
			(void)pool_conn_open();
		return;
	case PACE_WAIT:
	case PACE_FREE:
		break;
	}
	while (have < want) {
		if (pool_conn_open() < 0)
			break;
		have++;
	}
}

/* ---- handing out connections ----------------------------------------- */

static bool pool_needs_ping(const struct pool_conn *pc, usec_t now)
{
	/* With a primary wanted: after any sign of a topology change, and
	 * at least every recheck_interval, whatever pre_ping says. */
	if (multihost_recheck_due(pc->checked, pool.suspect_before, now))
		return true;
	if (!pool.set.pre_ping)
		return false;
	/* checked: opened, or last pinged, after the last sign */
	return pc->checked < pool.suspect_before ||
	       now - pc->last_used >=
		       (usec_t)pool.set.pre_ping_after * USEC_PER_SEC;
}

/* Sends an empty query on an idle connection before handing it to w. */
static int pool_ping_start(struct pool_conn *pc, struct pool_waiter *w)
{
	pc->state = PC_PING;
	pc->ping_for = w;
	pc->checking = multihost_wants_primary();
	pool.st.pings++;
	/* where a primary is wanted, the ping asks whether it still is */
	if (!PQsendQueryParams(pc->mc.pg,
			       pc->checking ? TOPOLOGY_CHECK_SQL : "", 0, NULL,
			       NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(pc->mc.pg) || pool_conn_flush(pc) < 0)
		return -1;
	pc->exec_active = true;
	pc->exec_started = clock_now();
	/* the waiter's pool timeout goes on while the ping runs */
	if (loop_arm_usec(&pc->ping_timer, w->entry.deadline - clock_now(),
			  "pre-ping timeout") < 0)
		return -1;
	return 0;
}

/* Hands idle connections to the first waiters, pinging them if due. */
static void pool_serve_waiters(void)
{
	usec_t now = clock_now();
	struct pool_conn *pc;
	struct pool_waiter *w;

	while ((w = pool_waiter_first()) && (pc = TAILQ_FIRST(&pool.idle))) {
		pool_idle_remove(pc);
		waitq_remove(&pool.wq, &w->entry);
		if (pool_needs_ping(pc, now)) {
			if (pool_ping_start(pc, w) < 0) {
				waitq_push_front(&pool.wq, &w->entry);
				pool_conn_close(pc, "ping could not be sent");
			}
			continue;
		}
		pc->state = PC_BUSY;
		pool.nbusy++;
		w->fn(w->arg, pc, POOL_OK, NULL);
	}
	pool_wait_timer_arm();
	pool_fill();
}

/*
 * Gets a connection at once (READY: *out), fails at once (FAILED: *st,
 * *msg), or queues w (QUEUED: w's callback later, from the loop).  Never
 * calls w's callback from inside the call.
 */
static CONVD_WUR enum pool_acquire_result
pool_acquire(struct pool_waiter *w, pool_acquire_fn fn, void *arg,
	     struct pool_conn **out, enum pool_status *st, const char **msg)
{
	usec_t now = clock_now();

	*out = NULL;
	if (pool.closing) {
		*st = POOL_SHUTDOWN;
		*msg = "convd is shutting down";
		return POOL_ACQ_FAILED;
	}
	if (pool.down && pool.nopen == 0) {
		pool.st.unavailable++;
		*st = POOL_UNAVAILABLE;
		*msg = "database unavailable";
		pool_fill();
		return POOL_ACQ_FAILED;
	}
	/* Waiters first: FIFO fairness. */
	if (!waitq_first(&pool.wq) && !TAILQ_EMPTY(&pool.idle) &&
	    !pool_needs_ping(TAILQ_FIRST(&pool.idle), now)) {
		struct pool_conn *pc = TAILQ_FIRST(&pool.idle);

		pool_idle_remove(pc);
		pc->state = PC_BUSY;
		pool.nbusy++;
		*out = pc;
		return POOL_ACQ_READY;
	}
	w->fn = fn;
	w->arg = arg;
	w->entry.deadline = now + (usec_t)pool.set.timeout * USEC_PER_SEC;
	waitq_push(&pool.wq, &w->entry);
	if (waitq_first(&pool.wq) == &w->entry)
		pool_wait_timer_arm();
	/* Serve, and open connections, from the event loop, never from
	 * inside this call: a connect that fails at once fails every
	 * waiter (w too) through pool_connect_failed(). */
	pool_kick();
	return POOL_ACQ_QUEUED;
}

enum pool_acquire_result pool_acquire_then(struct pool_waiter *w,
					   pool_acquire_fn fn, void *arg)
{
	struct pool_conn *pc;
	enum pool_status st;
	const char *msg;
	enum pool_acquire_result r = pool_acquire(w, fn, arg, &pc, &st, &msg);

	switch (r) {
	case POOL_ACQ_READY:
		fn(arg, pc, POOL_OK, NULL);
		break;
	case POOL_ACQ_FAILED:
		fn(arg, NULL, st, msg);
		break;
	case POOL_ACQ_QUEUED:
		break;
	}
	return r;
}

void pool_cancel(struct pool_waiter *w)
{
	struct pool_conn *pc;

	if (w->entry.queued) {
		waitq_remove(&pool.wq, &w->entry);
		pool_wait_timer_arm();
		return;
	}
	/* Maybe a ping is running on its behalf: let it end unclaimed. */
	LIST_FOREACH(pc, &pool.all, link)
		if (pc->state == PC_PING && pc->ping_for == w)
			pc->ping_for = NULL;
}

/* The server is full: a pool above min_size gives a connection back now
 * and then, so that a starved instance (or a restarted one) gets one. */
static bool pool_should_give_back(usec_t now)
{
	return pace_give_back_due(&pool.pace, now) &&
	       pool.nopen > pool_min_size();
}

static void pool_give_back(struct pool_conn *pc, usec_t now)
{
	pool.st.given_back++;
	pool_retry_at(pace_gave_back(&pool.pace, now));
	pool_conn_close(pc, "given back: the server has no free slot");
}

void pool_release(struct pool_conn *pc)
{
	if (pc->state != PC_BUSY)
		return;
	if (pc->broken || PQstatus(pc->mc.pg) != CONNECTION_OK ||
	    PQtransactionStatus(pc->mc.pg) != PQTRANS_IDLE || pc->exec_active) {
		/* A connection that broke, or was left inside a transaction
		 * or a query, is not reused. */
		pool_conn_close(pc, pc->broken ? "connection lost" :
					       "released in an unclean state");
		pool_fill();
		return;
	}
	if (pool_should_give_back(clock_now())) {
		pool_give_back(pc, clock_now());
		pool_fill();
		return;
	}
	pool.nbusy--;
	pc->last_used = clock_now();
	pipeline_set_limit(&pc->pl, 0, false);	/* for one query only */
	pool_idle_push(pc);
	if (waitq_first(&pool.wq))
		pool_serve_waiters();
}

void pool_set_result_limit(struct pool_conn *pc, size_t bytes)
{
	pipeline_set_limit(&pc->pl, bytes, false);
}

void pool_set_result_page(struct pool_conn *pc, size_t bytes)
{
	pipeline_set_limit(&pc->pl, bytes, bytes > 0);
}

void pool_abandon(struct pool_conn *pc)
{
	if (pc->state != PC_BUSY)
		return;
	if (pc->exec_active) {
		pool.st.abandoned++;
		pool.last_abandon = clock_now();
		cancel_send(pc->mc.pg);
	}
	pc->exec_active = false;
	pc->fn = NULL;
	pool_conn_close(pc, "its request's deadline passed during the query");
	pool_fill();
}

void pool_discard(struct pool_conn *pc)
{
	if (pc->state != PC_BUSY)
		return;
	pool_conn_close(pc, "discarded after an error");
	pool_fill();
}

/* ---- queries ---------------------------------------------------------- */

static int pool_stmt_index(const char *name)
{
	for (size_t i = 0; i < pool.nstmts; i++)
		if (strcmp(pool.stmts[i].name, name) == 0)
			return (int)i;
	return -1;
}

int pool_exec(struct pool_conn *pc, const char *stmt, const char *sql,
	      int nparams, const char *const *values, const int *lengths,
	      const int *formats, int result_format, pool_exec_fn fn,
	      void *arg)
{
	int idx = stmt ? pool_stmt_index(stmt) : -1;
	struct pipeline_cmd cmd = {
		.name = stmt,
		.idx = idx,
		.sql = stmt && idx >= 0 ? pool.stmts[idx].sql : sql,
		.unnamed = pool.unprepared,
		.timeout = pool.unprepared && pool.set.statement_timeout > 0 ?
				   pool.timeout_param :
				   NULL,
		.nparams = nparams,
		.values = values,
		.lengths = lengths,
		.formats = formats,
		.result_format = result_format,
	};

	if (pc->state != PC_BUSY || pc->exec_active || pc->broken ||
	    (stmt && (idx < 0 || nparams > POOL_MAX_PARAMS)))
		return -1;
	pc->notice.not_replicated = false;
	if (pipeline_send(&pc->pl, pc->mc.pg, &cmd) < 0) {
		pool_set_error(PQerrorMessage(pc->mc.pg));
		pc->broken = true;
		return -1;
	}
	pc->exec_active = true;
	pc->exec_started = clock_now();
	pc->fn = fn;
	pc->arg = arg;
	if (pool_conn_flush(pc) < 0) {
		pc->exec_active = false;
		pc->fn = NULL;
		pc->broken = true;
		return -1;
	}
	return 0;
}

/*
 * What a query's outcome says beyond itself: a read-only server (the
 * primary moved), named statements meeting a pooler, a commit that no
 * synchronous standby confirmed (not acknowledged: the client gets
 * `unavailable`, and with an idempotency key may retry safely), and
 * whether queries keep failing (`health`).
 */
static void pool_conn_judge(struct pool_conn *pc, const PGresult *res,
			    enum pool_status *st, const char **msg)
{
	const char *code = *st == POOL_QUERY_ERROR && res ?
				   PQresultErrorField(res, PG_DIAG_SQLSTATE) :
				   NULL;

	if (topology_read_only_error(code)) {
		pool.st.read_only++;
		pool.suspect_before = clock_now();
		pc->broken = true;
		log_warn("pool: connection %llu: the server is read-only; "
			 "connections are checked again",
			 (unsigned long long)pc->id);
	} else if (topology_pooler_error(code) && !pool.unprepared) {
		pc->broken = true;
		if (pool.set.prepare == POOL_PREPARE_AUTO) {
			char why[64];

			snprintf(why, sizeof(why), "SQLSTATE %s", code);
			pool_go_unprepared(why);
		}
	} else if (*st == POOL_OK && pc->notice.not_replicated) {
		pool.st.not_replicated++;
		pool.suspect_before = clock_now();
		pc->broken = true;
		*st = POOL_NOT_DURABLE;
		*msg = "committed on the server but not confirmed by a "
		       "synchronous standby";
		log_warn("pool: connection %llu: %s",
			 (unsigned long long)pc->id, *msg);
	}
	if (*st == POOL_OK) {
		pool.st.failing = 0;
	} else {
		pool.st.failing++;
		pool.last_failure = clock_now();
		if (*msg)
			pool_set_error(*msg);
	}
}

/* The query (or ping, or setup) on pc has finished or failed. */
static void pool_conn_done(struct pool_conn *pc, bool lost)
{
	bool too_large;
	PGresult *res = pipeline_take(&pc->pl, lost, &too_large);
	enum pool_status st = POOL_OK;
	const char *msg = NULL;

	pc->exec_active = false;
	/* a request's query or a ping answered (not a new connection's
	 * set-up: a server whose commits hang still accepts connections) */
	if (!lost && pc->state != PC_SETUP)
		pool.last_answer = clock_now();
	if (too_large) {
		st = POOL_RESULT_TOO_LARGE;
		msg = "the result is larger than the limit";
	}
	if (lost) {
		pc->broken = true;
		msg = pool_conn_error(pc);
		st = POOL_UNAVAILABLE;
	} else if (res) {
		ExecStatusType es = PQresultStatus(res);

		if (es == PGRES_FATAL_ERROR || es == PGRES_BAD_RESPONSE ||
		    es == PGRES_NONFATAL_ERROR) {
			st = POOL_QUERY_ERROR;
			msg = PQresultErrorMessage(res);
			if (PQstatus(pc->mc.pg) != CONNECTION_OK) {
				pc->broken = true;
				st = POOL_UNAVAILABLE;
			}
		}
	}
	if (pc->state == PC_BUSY)
		pool_conn_judge(pc, res, &st, &msg);

	switch (pc->state) {
	case PC_SETUP:
		if (pc->probe)
			pool_probe_done(pc, st, res);
		else if (st != POOL_OK)
			pool_connect_failed(pc, msg ? msg : "setup failed");
		else
			pool_conn_setup_next(pc, res);
		break;
	case PC_PING: {
		struct pool_waiter *w = pc->ping_for;

		evtimer_del(&pc->ping_timer);
		pc->ping_for = NULL;
		if (st == POOL_OK)
			pc->checked = clock_now();
		if (st == POOL_OK && pc->checking) {
			pool.st.rechecks++;
			if (!multihost_check_answer(res, pc->mc.host)) {
				pool.st.read_only++;
				st = POOL_QUERY_ERROR;
				msg = "the server is not a writable primary";
			}
		}
		if (st != POOL_OK) {
			if (st != POOL_QUERY_ERROR || !pc->checking)
				pool.st.lost++;
			pool.suspect_before = clock_now();
			log_warn("pool: pre-ping failed on connection %llu: %s",
				 (unsigned long long)pc->id,
				 msg ? msg : "?");
			pool_conn_close(pc, NULL);
			if (w)
				waitq_push_front(&pool.wq, &w->entry);
			pool_serve_waiters();
			break;
		}
		if (!w) {
			pc->last_used = clock_now();
			pool_idle_push(pc);
			pool_serve_waiters();
			break;
		}
		pc->last_used = clock_now();
		pc->state = PC_BUSY;
		pool.nbusy++;
		w->fn(w->arg, pc, POOL_OK, NULL);
		break;
	}
	case PC_BUSY: {
		pool_exec_fn fn = pc->fn;

		if (st == POOL_UNAVAILABLE)
			pool.st.lost++;
		pc->fn = NULL;
		/* pc may be released (and reused) inside fn */
		fn(pc->arg, pc, st, res, msg);
		break;
	}
	default:
		break;
	}
	if (res)
		PQclear(res);
}

static void pool_conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct pool_conn *pc = arg;

	(void)fd;
	switch (pc->state) {
	case PC_CONNECTING:
		return;		/* multihost.c watches the socket */
	case PC_IDLE:
		/* Nothing is expected on an idle connection: EOF, an error
		 * (server shutdown, terminated backend) or a notice. */
		if (!PQconsumeInput(pc->mc.pg) ||
		    PQstatus(pc->mc.pg) != CONNECTION_OK) {
			pool.st.lost++;
			pool.suspect_before = clock_now();
			log_warn("pool: idle connection %llu lost: %s",
				 (unsigned long long)pc->id,
				 pool_conn_error(pc));
			pool_conn_close(pc, NULL);
			pool_fill();
			return;
		}
		for (PGnotify *n; (n = PQnotifies(pc->mc.pg)); )
			PQfreemem(n);
		return;
	case PC_BUSY:
		if (!pc->exec_active) {
			/* acquired but no query yet: watch for loss */
			if (!PQconsumeInput(pc->mc.pg))
				pc->broken = true;
			return;
		}
		__attribute__((fallthrough));
	case PC_SETUP:
	case PC_PING:
		if ((what & EV_WRITE) && pool_conn_flush(pc) < 0) {
			pool_conn_done(pc, true);
			return;
		}
		if (what & EV_READ) {
			if (!PQconsumeInput(pc->mc.pg)) {
				pool_conn_done(pc, true);
				return;
			}
			if (pipeline_collect(&pc->pl, pc->mc.pg))
				pool_conn_done(pc,
					       PQstatus(pc->mc.pg) !=
							       CONNECTION_OK &&
						       !pc->pl.res);
		}
		return;
	}
}

/* ---- stale primaries ------------------------------------------------------ */

/* Our primary is stale (multihost.h): its connections end (a query in
 * flight fails with `unavailable`: a commit waiting there for a standby
 * that now follows another primary would never be confirmed). */
static void pool_leave_stale(const char *newer, int tl)
{
	struct pool_conn *pc;

	multihost_leave(newer, tl);
	pool.st.stale++;
	pool.suspect_before = clock_now();
again:
	LIST_FOREACH(pc, &pool.all, link) {
		if (pc->probe || pc->broken || !multihost_is_stale(pc->mc.host))
			continue;
		if (pc->state == PC_IDLE) {
			pool_conn_close(pc, "on a stale primary");
			goto again;
		}
		if (pc->state == PC_BUSY && pc->exec_active) {
			pool_conn_done(pc, true);	/* may close pc */
			goto again;
		}
		pc->broken = true;	/* closed when released */
	}
	pool_fill();
}

static void pool_probe_done(struct pool_conn *pc, enum pool_status st,
			    const PGresult *res)
{
	int tl = multihost_probe_done(st == POOL_OK ? res : NULL,
				      pc->mc.host);

	if (tl > 0)
		pool_leave_stale(pc->mc.host, tl);
	pool_conn_close(pc, NULL);
}

/*
 * Every recheck_interval one probe connection asks the other hosts of the
 * list (libpq's own read-write search, the current host left out) for a
 * writable server and its timeline.
 */
static void pool_probe_start(usec_t now)
{
	const char *ours = multihost_probe_due(now);
	struct pool_conn *tpl, *pc;
	PGconn *pg;

	if (!ours)
		return;
	LIST_FOREACH(tpl, &pool.all, link)
		if ((tpl->state == PC_IDLE || tpl->state == PC_BUSY) &&
		    strcmp(tpl->mc.host, ours) == 0)
			break;
	if (!tpl)
		return;
	pg = multihost_start_after(tpl->mc.pg, true);
	if (!pg)
		return;		/* one host: nothing to compare */
	pc = pool_conn_alloc();
	if (!pc) {
		PQfinish(pg);
		return;
	}
	pc->probe = true;
	pc->mc.probe = true;
	multihost_probing(true);
	if (multihost_start(&pc->mc, pg, false) < 0)
		return;	/* failed at once: pc is gone */
}

/* ---- upkeep ----------------------------------------------------------- */

/*
 * Runs twice a second (and when pool_acquire wants waiters served):
 * serves waiters, replaces lost connections, recycles at most one old idle
 * connection per pass and closes idle overflow connections.
 */
static void pool_upkeep(evutil_socket_t fd, short what, void *arg)
{
	usec_t now = clock_now();
	struct pool_conn *pc, *victim = NULL;

	(void)fd;
	(void)what;
	(void)arg;
	if (pool.closing)
		return;
	if (pool.wait_unarmed) {
		/* their timeout could not be armed (logged): rather than wait
		 * for ever, they fail now */
		pool.wait_unarmed = false;
		pool.st.timeouts += (uint64_t)pool.wq.n;
		pool_fail_waiters(POOL_TIMEOUT, "the pool timeout could not be "
				  "armed");
	}
	if (waitq_first(&pool.wq) && !TAILQ_EMPTY(&pool.idle))
		pool_serve_waiters();
	TAILQ_FOREACH(pc, &pool.idle, idle_link) {
		if (pc->recycle_at && now >= pc->recycle_at) {
			victim = pc;
			break;
		}
	}
	if (victim) {
		pool.st.recycled++;
		pool_conn_close(victim, "recycled (older than [pool] recycle)");
	} else {
		/* Connections above `size` are overflow: closed once idle for
		 * a while, or at once when a reload made the pool smaller.
		 * The least recently used idle connection is at the bottom. */
		while (pool.nopen > pool.set.size &&
		       (pc = TAILQ_LAST(&pool.idle, pool_idle_head))) {
			if (!pool.shrinking &&
			    now - pc->last_used <=
				    (usec_t)pool.set.overflow_idle * USEC_PER_SEC)
				break;
			pool_conn_close(pc, pool.shrinking ?
						    "pool size reduced" :
						    "idle overflow connection");
		}
		if (pool.nopen <= pool.set.size)
			pool.shrinking = false;
		/* Pools give back what they do not use: above min_size, a
		 * connection idle for idle_timeout is closed. */
		while (pool.nopen > pool_min_size() &&
		       (pc = TAILQ_LAST(&pool.idle, pool_idle_head))) {
			if (now - pc->last_used <=
			    (usec_t)pool.set.idle_timeout * USEC_PER_SEC)
				break;
			pool_conn_close(pc, "idle (above [pool] min_size)");
		}
		if (pool_should_give_back(now) &&
		    (pc = TAILQ_LAST(&pool.idle, pool_idle_head)))
			pool_give_back(pc, now);
	}
	pool_probe_start(now);
	pool_fill();
}

/* ---- set-up ----------------------------------------------------------- */

/* Numbers and our own statement names only: no user data here. */
static char *pool_build_setup_sql(int statement_timeout)
{
	char *sql = malloc(96);

	if (sql)
		snprintf(sql, 96,
			 "SET statement_timeout = %d; SET TIME ZONE 'UTC'",
			 statement_timeout);
	return sql;
}

int pool_setup(struct event_base *base, const struct dbconf *dc,
	       const struct pool_settings *ps,
	       const struct pool_statement *stmts, size_t nstmts)
{
	struct timeval tv = clock_tv(UPKEEP_USEC);

	memset(&pool, 0, sizeof(pool));
	pool.set_up = true;
	pool.base = base;
	pool.dc = dc;
	pool.set = *ps;
	LIST_INIT(&pool.all);
	TAILQ_INIT(&pool.idle);
	waitq_init(&pool.wq, base, "pool timeout", pool_waiters_expire, NULL);
	multihost_setup(base, dc);
	multihost_configure(ps->want_primary, ps->recheck_interval);
	pool.stmts = stmts;
	pool.nstmts = nstmts;
	pool.setup_sql = pool_build_setup_sql(ps->statement_timeout);
	pool.unprepared = ps->prepare == POOL_PREPARE_NO;
	snprintf(pool.timeout_param, sizeof(pool.timeout_param), "%d",
		 ps->statement_timeout);
	evtimer_assign(&pool.retry_timer, base, pool_retry_fire, NULL);
	event_assign(&pool.kick, base, -1, 0, pool_upkeep, NULL);
	event_assign(&pool.upkeep, base, -1, EV_PERSIST, pool_upkeep, NULL);
	if (nstmts > PIPELINE_MAX_STMTS) {
		log_error("pool: at most %d prepared statements",
			  PIPELINE_MAX_STMTS);
		return -1;
	}
	if (!pool.setup_sql) {
		log_error("pool: out of memory");
		return -1;
	}
	if (loop_arm(&pool.upkeep, &tv, "pool upkeep") < 0)
		return -1;
	log_info("pool: connecting to %s (size %d, max_overflow %d)",
		 dc->describe, ps->size, ps->max_overflow);
	pool_fill();
	return 0;
}

void pool_reconfigure(const struct pool_settings *ps)
{
	bool timeout_changed = ps->statement_timeout !=
			       pool.set.statement_timeout;
	usec_t now = clock_now();
	struct pool_conn *pc;

	if (ps->size < pool.set.size)
		pool.shrinking = true;
	pool.set = *ps;
	multihost_configure(ps->want_primary, ps->recheck_interval);
	snprintf(pool.timeout_param, sizeof(pool.timeout_param), "%d",
		 ps->statement_timeout);
	if (timeout_changed) {
		char *sql = pool_build_setup_sql(ps->statement_timeout);

		if (sql) {
			free(pool.setup_sql);
			pool.setup_sql = sql;
		}
	}
	/* New recycle deadlines; with a new statement timeout every
	 * connection is due now, and upkeep replaces them one at a time. */
	LIST_FOREACH(pc, &pool.all, link)
		if (pc->created)
			pc->recycle_at = timeout_changed ?
						 now :
						 pool_recycle_deadline(pc->created);
	pool_wait_timer_arm();
	pool_fill();
}

void pool_cleanup(void)
{
	struct pool_conn *pc;

	if (!pool.set_up)
		return;		/* start-up failed before pool_setup */
	pool.closing = true;
	pool_fail_waiters(POOL_SHUTDOWN, "convd is shutting down");
	/* waiters whose connection is being pre-pinged are in no queue */
again:
	LIST_FOREACH(pc, &pool.all, link) {
		if (pc->state == PC_PING && pc->ping_for) {
			struct pool_waiter *w = pc->ping_for;

			pc->ping_for = NULL;
			w->fn(w->arg, NULL, POOL_SHUTDOWN,
			      "convd is shutting down");
			goto again;
		}
	}
	while ((pc = LIST_FIRST(&pool.all))) {
		if (pc->state == PC_BUSY && pc->exec_active && pc->fn) {
			pool_exec_fn fn = pc->fn;

			pc->exec_active = false;
			pc->fn = NULL;
			pc->broken = true;
			fn(pc->arg, pc, POOL_SHUTDOWN, NULL,
			   "convd is shutting down");
			if (LIST_FIRST(&pool.all) != pc)
				continue; /* released and closed by fn */
		}
		pool_conn_close(pc, NULL);
	}
	waitq_cleanup(&pool.wq);
	event_del(&pool.upkeep);
	event_del(&pool.retry_timer);
	event_del(&pool.kick);
	free(pool.setup_sql);
	pool.setup_sql = NULL;
	pool.set_up = false;
	multihost_cleanup();
}

/* Whether the server has stopped answering (see pool.h). */
static void pool_stall(struct pool_stats *out)
{
	usec_t now = clock_now(), oldest = 0;
	struct pool_conn *pc;

	LIST_FOREACH(pc, &pool.all, link)
		if (pc->exec_active && (pc->state == PC_BUSY ||
					pc->state == PC_PING) &&
		    (!oldest || pc->exec_started < oldest))
			oldest = pc->exec_started;
	out->database_stalled =
		(pool.last_abandon &&
		 (pool.last_abandon >= pool.last_answer ||
		  now - pool.last_abandon < POOL_STALL_USEC)) ||
		(oldest && now - oldest >= POOL_STALL_USEC &&
		 now - pool.last_answer >= POOL_STALL_USEC);
	out->stalled_usec = out->database_stalled && pool.last_answer ?
				    now - pool.last_answer :
				    0;
}

void pool_stats(struct pool_stats *out)
{
	*out = pool.st;
	out->open = pool.nopen;
	out->busy = pool.nbusy;
	out->idle = pool.nidle;
	out->connecting = pool.nconnecting;
	out->waiting = pool.wq.n;
	out->database_up = pool.nopen > 0 || (!pool.down && pool.pace.failures == 0);
	out->pooler = pool.unprepared;
	/* failures in a row count while they are recent: a quiet convd
	 * whose last queries failed is not "failing" for ever */
	if (clock_now() - pool.last_failure > FAILING_FOR_USEC)
		out->failing = 0;
	pool_stall(out);
}

bool pool_session_state(void)
{
	return !pool.unprepared;
}

usec_t pool_wait_timeout(void)
{
	return (usec_t)pool.set.timeout * USEC_PER_SEC;
}
