/*
 * pool.h - the asynchronous libpq connection pool.
 *
 * Connections are opened on demand: `min_size` are kept open (reopened
 * after loss: the first retry at once, then backoff_min doubling up to
 * backoff_max, with jitter), more while requests wait, up to `size` (and
 * `max_overflow` more), and those above `min_size` closed once idle for
 * `idle_timeout`.  A server that refuses a connection for want of slots
 * (53300) is not "down": waiters keep waiting, and while it is full the
 * pool gives a connection back now and then so that other instances get
 * some.  Behind a transaction pooler (prepared_statements = no, or auto
 * and one is detected) statements go unnamed and no session state is set.
 * With want_primary, connections are checked again (is the server still
 * a writable primary?) after any sign of a topology change and every
 * recheck_interval.  Callers wait in
 * a FIFO and fail with POOL_TIMEOUT after `timeout` seconds; while the
 * database is known to be down (no connection open, the last attempt
 * failed) they fail at once with POOL_UNAVAILABLE.
 *
 * Every connection is non-blocking and driven by libevent: connecting
 * (PQconnectStartParams / PQconnectPoll, with connect_timeout enforced by a
 * timer since libpq ignores it for non-blocking connects, until the session
 * settings are in place), preparing each statement on first use, running
 * queries, and, while idle, watching the socket so that
 * a server that closes it is noticed at once.
 *
 * Use: pool_acquire_then() -> a connection, pool_exec() one or more
 * times, then pool_release() exactly once, whatever happened.
 *
 * The pool's own parts, below it: multihost.h (connecting across a host
 * list, primaries), pipeline.h and rowlimit.h (a command and its bounded
 * results), pace.h (when to open connections), waitq.h (the waiters).
 */
#ifndef CONVD_POOL_H
#define CONVD_POOL_H

#include <event2/event.h>
#include <libpq-fe.h>

#include "common.h"
#include "dbconf.h"
#include "waitq.h"

struct pool_conn;

enum pool_status {
	POOL_OK = 0,
	POOL_UNAVAILABLE,	/* database unreachable / connection lost */
	POOL_TIMEOUT,		/* no connection within the pool timeout */
	POOL_QUERY_ERROR,	/* the server reported an error for the query */
	POOL_SHUTDOWN,		/* the pool is closing */
	POOL_RESULT_TOO_LARGE,	/* the rows passed pool_set_result_limit */
	POOL_NOT_DURABLE,	/* committed on the server, but its wait for a
				 * synchronous standby was cancelled: not to
				 * be acknowledged (res: the OK result) */
};

/* [database] prepared_statements */
enum pool_prepare {
	POOL_PREPARE_AUTO,	/* named statements unless a pooler is seen */
	POOL_PREPARE_YES,
	POOL_PREPARE_NO,	/* unnamed statements, no session state */
};

struct pool_settings {
	int size;		/* ceiling for steady load */
	int min_size;		/* kept open even when idle (<= size) */
	int max_overflow;
	int timeout;		/* seconds */
	int recycle;		/* seconds, 0 = never */
	bool pre_ping;
	int pre_ping_after;	/* seconds idle before a pre-ping */
	int overflow_idle;	/* seconds */
	int statement_timeout;	/* ms, 0 = none */
	int idle_timeout;	/* s: idle connections above min_size close */
	int backoff_min;	/* ms: reconnect delay after the 2nd failure */
	int backoff_max;	/* ms: ... doubling up to this */
	enum pool_prepare prepare;
	bool want_primary;	/* target_session_attrs read-write/primary */
	int recheck_interval;	/* s: want_primary re-checked at least this
				 * often on each connection */
};

/* A statement prepared on each connection the first time it is used
 * there (never at connect: opening a connection touches no table). */
#define POOL_MAX_PARAMS 16
struct pool_statement {
	const char *name;
	const char *sql;
};

struct pool_stats {
	int open, busy, idle, connecting, waiting;
	uint64_t connects, connect_failures, lost, recycled, timeouts,
		unavailable, pings;
	/* server full (53300): connects refused, connections given back */
	uint64_t refused, given_back;
	/* want_primary: checks made, connections found read-only */
	uint64_t rechecks, read_only;
	uint64_t not_replicated;	/* commits not confirmed by a sync standby */
	uint64_t stale;		/* primaries left for a newer one */
	int failing;		/* queries failed in a row, none succeeded
				 * (0 once the last is a minute old) */
	bool database_up;
	bool pooler;		/* a transaction pooler: statements unnamed */
	/* queries are outstanding and none has been answered for
	 * POOL_STALL_USEC, or one was given up at its deadline less than
	 * POOL_STALL_USEC ago or with none answered since: the server is
	 * frozen, or commits wait on a standby that is not there */
	bool database_stalled;
	int64_t stalled_usec;		/* since the last answer */
	uint64_t abandoned;		/* queries given up at a deadline */
	char last_error[256];
};

#define POOL_STALL_USEC (5 * USEC_PER_SEC)

/* Queries failed in a row (none succeeded) after which `health` says the
 * database is "failing". */
#define POOL_FAILING_AFTER 3

/* Called when a queued acquire completes; pc is NULL unless st == OK. */
typedef void (*pool_acquire_fn)(void *arg, struct pool_conn *pc,
				enum pool_status st, const char *msg);

/* Embedded in the caller's request; the pool links it into its queue. */
struct pool_waiter {
	struct waitq_entry entry;	/* in the pool's queue */
	pool_acquire_fn fn;
	void *arg;
};

/*
 * Query completion.  st == POOL_OK: res is the query's result (status
 * PGRES_TUPLES_OK / PGRES_COMMAND_OK), valid until the callback returns.
 * POOL_QUERY_ERROR: res holds the error result (SQLSTATE via
 * PQresultErrorField).  POOL_UNAVAILABLE: the connection broke, res NULL.
 */
typedef void (*pool_exec_fn)(void *arg, struct pool_conn *pc,
			     enum pool_status st, const PGresult *res,
			     const char *msg);

CONVD_WUR int pool_setup(struct event_base *base, const struct dbconf *dc,
			 const struct pool_settings *ps,
			 const struct pool_statement *stmts, size_t nstmts);
/* Closes every connection; fails every waiter with POOL_SHUTDOWN. */
void pool_cleanup(void);

/* New sizes and timeouts take effect at once (SIGHUP). */
void pool_reconfigure(const struct pool_settings *ps);

enum pool_acquire_result {
	POOL_ACQ_READY,		/* *out is yours now */
	POOL_ACQ_QUEUED,	/* w->fn will be called later */
	POOL_ACQ_FAILED,	/* *st and *msg say why (no callback) */
};

/*
 * Gets a connection, with one path for every outcome: fn gets the
 * connection (POOL_OK) or the failure (pc NULL, st and msg say why) at
 * once when the pool has it (READY, FAILED), else later from the loop
 * (QUEUED).  Returns which it was: unless it is POOL_ACQ_QUEUED, fn has
 * already run; while QUEUED, pool_cancel takes w out.  Nothing is lost if
 * the result is ignored: a failure always reaches fn.
 */
enum pool_acquire_result pool_acquire_then(struct pool_waiter *w,
					   pool_acquire_fn fn, void *arg);
/* Takes a queued waiter out of the queue (its callback is not called). */
void pool_cancel(struct pool_waiter *w);

/*
 * Sends a query on an acquired connection: a prepared statement by name
 * (one of the pool_statement names) or, with stmt NULL, sql with params.
 * result_format 1 asks for binary results.  Returns -1 if the query could
 * not be sent (the connection broke: fn is not called, release it).
 */
CONVD_WUR int pool_exec(struct pool_conn *pc, const char *stmt,
			const char *sql, int nparams,
			const char *const *values, const int *lengths,
			const int *formats, int result_format,
			pool_exec_fn fn, void *arg);

/*
 * Gives up on the query running on an acquired connection (its request's
 * deadline passed): a cancel request is sent from a helper thread
 * (PQcancel blocks; cancel.h), the connection is closed at once and
 * replaced, and the query's callback is never called.  Never blocks.
 */
void pool_abandon(struct pool_conn *pc);

/*
 * Bounds the rows of the next pool_exec on pc: they are read one at a
 * time (libpq's single-row mode) and gathered into one result while their
 * values stay within `bytes`; past that the rest is read and dropped, and
 * the query ends with POOL_RESULT_TOO_LARGE (res NULL).  A result is so
 * checked while it is read, never held whole first.  0 = no bound.
 */
void pool_set_result_limit(struct pool_conn *pc, size_t bytes);

/*
 * As pool_set_result_limit, for a page: the rows past the bound are read
 * and dropped, and the query ends POOL_OK with the rows before them.  A
 * first row alone past the bound still ends it POOL_RESULT_TOO_LARGE.
 */
void pool_set_result_page(struct pool_conn *pc, size_t bytes);

/* Gives the connection back (or closes it, if it broke). */
void pool_release(struct pool_conn *pc);
/* Closes an acquired connection instead of giving it back (its session
 * state, such as an advisory lock, must not outlive an error). */
void pool_discard(struct pool_conn *pc);

/* Counters and gauges for `stats` and the STATUS= line. */
void pool_stats(struct pool_stats *out);

/* How long a request may wait for a connection ([pool] timeout). */
usec_t pool_wait_timeout(void);

/* False when a pooler shares server sessions among its clients (a
 * session-level advisory lock or SET would outlive the transaction). */
bool pool_session_state(void);

#endif
