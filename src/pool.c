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
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "cancel.h"
#include "clock.h"
#include "log.h"
#include "pgnotice.h"
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
	struct pool_conn *next, *prev;		/* all connections */
	struct pool_conn *idle_next;		/* idle stack (LIFO) */
	PGconn *pg;
	struct event *ev;			/* socket, while connecting */
	struct event *rev, *wev;		/* socket, once connected */
	struct event *timer;			/* connect timeout */
	int fd;
	short watching;
	enum pc_state state;
	usec_t created, last_used, recycle_at;
	uint64_t id;
	bool broken;
	uint64_t prepared;			/* statements prepared here */
	int prep_sent;				/* PREPARE in flight, or -1 */
	bool prep_seen;				/* its result came back */
	/* unprepared mode: the per-transaction settings sent first */
	bool pre_sent, pre_seen;
	bool pid_probe;				/* SETUP: pg_backend_pid() */
	bool checking;				/* PING: the read-write check */
	bool probe;				/* looks for a newer primary */
	usec_t checked;				/* last read-write check */
	struct pgnotice_ctx notice;
	/* the query in progress (BUSY) or the ping (PING) */
	bool exec_active;
	usec_t exec_started;			/* when it was sent */
	/* bounded results (pool_set_result_limit) */
	size_t res_limit, res_bytes;
	bool rows_pending;			/* row mode after the PREPARE */
	bool rows_mode;				/* rows come one at a time */
	bool too_large;
	bool res_page;				/* pool_set_result_page */
	bool res_full;				/* the page is full */
	pool_exec_fn fn;
	void *arg;
	PGresult *res;
	struct pool_waiter *ping_for;		/* PING: who gets it next */
	char host[300];				/* CONNECTING: "host:port" */
};

#define POOL_MAX_FIELDS 16			/* of a bounded result */
#define UPKEEP_USEC (500 * 1000)
/* Server full (53300): how long it counts as contended after a refusal,
 * how often a contended pool gives a connection back, how long it then
 * leaves the slot to others, and the retry delay while requests wait. */
#define FULL_WINDOW_USEC (5 * USEC_PER_SEC)
#define GIVE_BACK_USEC (1 * USEC_PER_SEC)
#define HOLD_USEC (300 * 1000)
#define FULL_RETRY_MIN_USEC (50 * 1000)
#define FULL_RETRY_SPREAD_USEC (200 * 1000)
/* how long queries that failed in a row keep `health` not ok */
#define FAILING_FOR_USEC (60 * USEC_PER_SEC)

static struct {
	struct event_base *base;
	const struct dbconf *dc;
	struct pool_settings set;
	char *setup_sql;			/* SET ...; */
	const struct pool_statement *stmts;
	size_t nstmts;
	struct pool_conn *all;			/* every connection */
	struct pool_conn *idle;			/* idle stack */
	int nopen;				/* IDLE + BUSY + PING */
	int nconnecting;			/* CONNECTING + SETUP */
	int nbusy;
	int nidle;
	struct pool_waiter wq;			/* FIFO sentinel */
	int nwaiting;
	struct event *wait_timer;
	struct event *upkeep;
	usec_t next_attempt;			/* backoff */
	int failures;				/* consecutive connect failures */
	bool down;				/* database known unreachable */
	usec_t suspect_before;			/* ping conns created before */
	/* the last host that hung (as struct pool_conn's host) */
	char silent_host[sizeof(((struct pool_conn *)0)->host)];
	usec_t silent_until;			/* ... skipped until then */
	bool closing;
	bool shrinking;				/* a reload reduced `size` */
	bool unprepared;			/* unnamed statements only */
	bool tsa_seen, url_wants_primary;	/* target_session_attrs */
	/* the primary our connections use, as the last check saw it, and
	 * one found stale (another host writes on a newer timeline) */
	char our_host[sizeof(((struct pool_conn *)0)->host)];
	int our_tl;
	char stale_host[sizeof(((struct pool_conn *)0)->host)];
	usec_t stale_until;
	bool probing;
	usec_t next_probe;
	char timeout_param[16];			/* statement_timeout, as text */
	struct event *retry_timer;		/* next attempt, to the ms */
	/* upkeep now, from the loop: activating the persistent upkeep timer
	 * itself would push its next run 0.5 s later each time (libevent
	 * reschedules a persistent timer relative to its last deadline) */
	struct event *kick;
	usec_t full_until;			/* server full: contended */
	usec_t full_retry_at;			/* ... next try */
	usec_t next_give_back;
	usec_t hold_until;			/* ... slot left to others */
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
static bool pool_is_stale(const char *host);
static bool pool_conn_skip_stale(struct pool_conn *pc);

static void pool_set_error(const char *msg)
{
	size_t n;

	snprintf(pool.st.last_error, sizeof(pool.st.last_error), "%s", msg);
	/* libpq messages end in a newline; keep the last error one line. */
	n = strlen(pool.st.last_error);
	while (n > 0 && (pool.st.last_error[n - 1] == '\n' ||
			 pool.st.last_error[n - 1] == ' '))
		pool.st.last_error[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (pool.st.last_error[i] == '\n')
			pool.st.last_error[i] = ' ';
}

static const char *pool_conn_error(struct pool_conn *pc)
{
	pool_set_error(pc->pg ? PQerrorMessage(pc->pg) : "no connection");
	return pool.st.last_error;
}

/* (Re)arms the socket event for `what` (EV_READ and/or EV_WRITE). */
static int pool_conn_watch(struct pool_conn *pc, short what)
{
	int fd = PQsocket(pc->pg);

	if (fd < 0)
		return -1;
	/* Always register anew: libpq may have closed the socket and opened
	 * another (next host or address) that got the same number, and the
	 * old registration died with the old socket. */
	if (pc->ev) {
		event_free(pc->ev);
		pc->ev = NULL;
	}
	pc->fd = fd;
	pc->watching = what;
	pc->ev = event_new(pool.base, fd, what | EV_PERSIST, pool_conn_event,
			   pc);
	if (!pc->ev || event_add(pc->ev, NULL) < 0)
		return -1;
	return 0;
}

/*
 * Once connected, the socket no longer changes: one persistent read event
 * for the connection's whole life, and a write event added only while
 * libpq has output it could not send (PQflush returned 1).
 */
static int pool_conn_attach(struct pool_conn *pc)
{
	int fd = PQsocket(pc->pg);

	if (pc->ev) {
		event_free(pc->ev);
		pc->ev = NULL;
	}
	if (fd < 0)
		return -1;
	pc->fd = fd;
	pc->rev = event_new(pool.base, fd, EV_READ | EV_PERSIST,
			    pool_conn_event, pc);
	pc->wev = event_new(pool.base, fd, EV_WRITE, pool_conn_event, pc);
	if (!pc->rev || !pc->wev || event_add(pc->rev, NULL) < 0)
		return -1;
	return 0;
}

/* Sends what libpq has buffered; waits for writability if it must. */
static int pool_conn_flush(struct pool_conn *pc)
{
	int f = PQflush(pc->pg);

	if (f < 0)
		return -1;
	if (f == 1 && event_add(pc->wev, NULL) < 0)
		return -1;
	return 0;
}

static void pool_idle_remove(struct pool_conn *pc)
{
	struct pool_conn **pp;

	for (pp = &pool.idle; *pp; pp = &(*pp)->idle_next) {
		if (*pp == pc) {
			*pp = pc->idle_next;
			pc->idle_next = NULL;
			pool.nidle--;
			return;
		}
	}
}

static void pool_idle_push(struct pool_conn *pc)
{
	pc->state = PC_IDLE;
	pc->idle_next = pool.idle;
	pool.idle = pc;
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

static void pool_waiter_unlink(struct pool_waiter *w)
{
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->next = w->prev = NULL;
	w->queued = false;
	pool.nwaiting--;
}

static void pool_wait_timer_arm(void)
{
	struct timeval tv;
	usec_t now, d;

	if (pool.wq.next == &pool.wq) {
		evtimer_del(pool.wait_timer);
		return;
	}
	now = clock_now();
	d = pool.wq.next->deadline - now;
	if (d < 0)
		d = 0;
	tv = clock_tv(d);
	evtimer_add(pool.wait_timer, &tv);
}

static void pool_waiters_expire(evutil_socket_t fd, short what, void *arg)
{
	usec_t now = clock_now();

	(void)fd;
	(void)what;
	(void)arg;
	while (pool.wq.next != &pool.wq && pool.wq.next->deadline <= now) {
		struct pool_waiter *w = pool.wq.next;

		pool_waiter_unlink(w);
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
	while (pool.wq.next != &pool.wq) {
		struct pool_waiter *w = pool.wq.next;

		pool_waiter_unlink(w);
		if (st == POOL_UNAVAILABLE)
			pool.st.unavailable++;
		w->fn(w->arg, NULL, st, msg);
	}
	pool_wait_timer_arm();
}

/* ---- connection life -------------------------------------------------- */

static void pool_conn_free(struct pool_conn *pc)
{
	if (pc->ev)
		event_free(pc->ev);
	if (pc->rev)
		event_free(pc->rev);
	if (pc->wev)
		event_free(pc->wev);
	if (pc->timer)
		event_free(pc->timer);
	if (pc->res)
		PQclear(pc->res);
	if (pc->pg)
		PQfinish(pc->pg);
	free(pc);
}

static void pool_conn_unlink(struct pool_conn *pc)
{
	if (pc->prev)
		pc->prev->next = pc->next;
	else
		pool.all = pc->next;
	if (pc->next)
		pc->next->prev = pc->prev;
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
	usec_t d = when - clock_now();
	struct timeval tv = clock_tv(d > 0 ? d : 0);

	if (pool.retry_timer)
		evtimer_add(pool.retry_timer, &tv);
}

static void pool_retry_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	pool_fill();
}

/* Counts a failed attempt and schedules the next one (backoff + jitter). */
static void pool_note_failure(void)
{
	usec_t b, lo = (usec_t)pool.set.backoff_min * 1000,
		  hi = (usec_t)pool.set.backoff_max * 1000;

	pool.st.connect_failures++;
	pool.failures++;
	/* The first retry is immediate (a failover moves the primary: the
	 * next host of the list may already be it), then backoff_min
	 * doubling up to backoff_max. */
	if (pool.failures == 1) {
		pool.next_attempt = clock_now();
		pool_retry_at(pool.next_attempt);
		return;
	}
	b = lo << (pool.failures - 2 < 16 ? pool.failures - 2 : 16);
	if (b > hi || b <= 0)
		b = hi;
	/* half fixed, half random: a fleet does not retry in step */
	pool.next_attempt = clock_now() + b / 2 +
			    (usec_t)(random() % (b / 2 + 1));
	pool_retry_at(pool.next_attempt);
}

/* ---- multi-host lists: a connect timeout per host ------------------------ */

#define HOST_LIST_MAX 64

/* Splits a comma-separated list in place; returns the number of items. */
static int pool_split(char *s, char **item, int max)
{
	int n = 0;

	if (!s)
		return 0;
	for (;;) {
		char *comma = strchr(s, ',');

		if (n == max)
			return -1;
		item[n++] = s;
		if (!comma)
			return n;
		*comma = '\0';
		s = comma + 1;
	}
}

/* Joins the items picked by idx[0..n) with commas into out (all of them
 * the same item when one is given for every host); false if it does not
 * fit. */
static bool pool_join(char *out, size_t len, char **item, int nitems,
		      const int *idx, int n)
{
	size_t at = 0;

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		int w = snprintf(out + at, len - at, "%s%s", i ? "," : "",
				 item[nitems == 1 ? 0 : idx[i]]);

		if (w < 0 || (size_t)w >= len - at)
			return false;
		at += (size_t)w;
	}
	return true;
}

/*
 * libpq tries the hosts of a list in order, but only its blocking
 * PQconnectdb times each host out on its own: with PQconnectPoll the
 * caller's timer covers the whole attempt, so a first host that accepts
 * and then never answers (a hung server, a half-dead network) would hide
 * every host after it for ever.  So convd restarts its timer whenever
 * libpq moves to another host or address (pool_conn_track_host), and when
 * it expires on a host of a list, starts the attempt again without it:
 * with the parameters libpq is using (PQconninfo, a URL already
 * expanded), host, hostaddr and port cut to the hosts after the silent
 * one (or, with load_balance_hosts=random, to all the others, which libpq
 * shuffles anew).  Returns the new connection, or NULL when there is no
 * other host, or when the current one cannot be told apart or a host
 * left would fall back on a default (an empty item: libpq would fill it
 * from the environment the second time, not the first).
 */
static PGconn *pool_start_after_current_host(PGconn *pg, bool others)
{
	PQconninfoOption *opts = PQconninfo(pg), *o;
	const char *now_host = PQhost(pg), *now_port = PQport(pg);
	const char *now_addr = PQhostaddr(pg);
	char *h[HOST_LIST_MAX], *a[HOST_LIST_MAX], *p[HOST_LIST_MAX];
	char *hosts = NULL, *addrs = NULL, *ports = NULL;
	char jh[4096], ja[4096], jp[1024];
	const char **keys = NULL, **vals = NULL;
	int idx[HOST_LIST_MAX];
	int nh, na, np, n, cur = -1, nopts = 0, k = 0, nidx = 0;
	bool random_order = false;
	PGconn *next = NULL;

	if (!opts || !now_host)
		goto out;
	for (o = opts; o->keyword; o++, nopts++) {
		if (!o->val)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			hosts = strdup(o->val);
		else if (strcmp(o->keyword, "hostaddr") == 0)
			addrs = strdup(o->val);
		else if (strcmp(o->keyword, "port") == 0)
			ports = strdup(o->val);
		else if (strcmp(o->keyword, "load_balance_hosts") == 0)
			random_order = strcmp(o->val, "random") == 0;
	}
	nh = pool_split(hosts, h, HOST_LIST_MAX);
	na = pool_split(addrs, a, HOST_LIST_MAX);
	np = pool_split(ports, p, HOST_LIST_MAX);
	if (nh < 0 || na < 0 || np < 0)
		goto out;
	n = nh > na ? nh : na;
	if ((nh && nh != n) || (na && na != n) || (np > 1 && np != n))
		goto out;
	for (int i = 0; i < n; i++) {
		const char *name = nh && *h[i] ? h[i] : na ? a[i] : "";
		const char *addr = na ? a[i] : "";
		const char *port = np == 1 ? p[0] : np ? p[i] : "";

		if (!*name || (np && !*port))
			goto out;	/* a default: see above */
		if (cur < 0 && strcmp(name, now_host) == 0 &&
		    (!*port || !now_port || strcmp(port, now_port) == 0) &&
		    (!*addr || !now_addr || strcmp(addr, now_addr) == 0))
			cur = i;
	}
	if (cur < 0)
		goto out;
	/* others: every host but the current one, in order */
	for (int i = random_order || others ? 0 : cur + 1; i < n; i++)
		if (i != cur)
			idx[nidx++] = i;
	if (nidx == 0 || !pool_join(jh, sizeof(jh), h, nh, idx, nh ? nidx : 0) ||
	    !pool_join(ja, sizeof(ja), a, na, idx, na ? nidx : 0) ||
	    !pool_join(jp, sizeof(jp), p, np, idx, np ? nidx : 0))
		goto out;
	keys = calloc((size_t)nopts + 1, sizeof(*keys));
	vals = calloc((size_t)nopts + 1, sizeof(*vals));
	if (!keys || !vals)
		goto out;
	for (o = opts; o->keyword; o++) {
		const char *v = o->val;

		if (strcmp(o->keyword, "host") == 0)
			v = nh > 0 ? jh : NULL;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			v = na > 0 ? ja : NULL;
		else if (strcmp(o->keyword, "port") == 0)
			v = np > 0 ? jp : NULL;
		if (!v || !*v)
			continue;
		keys[k] = o->keyword;
		vals[k++] = v;
	}
	next = PQconnectStartParams(keys, vals, 0);
out:
	free(keys);
	free(vals);
	free(hosts);
	free(addrs);
	free(ports);
	if (opts)
		PQconninfoFree(opts);
	return next;
}

static void pool_conn_arm_connect_timer(struct pool_conn *pc)
{
	struct timeval tv = {
		.tv_sec = pool.dc->connect_timeout > 0 ? pool.dc->connect_timeout
						       : 10,
	};

	evtimer_add(pc->timer, &tv);
}

/* A new host or address of the list: it gets the whole connect_timeout
 * of its own.  Called as soon as the attempt starts too, so that a move
 * made within the first poll is seen. */
static void pool_conn_track_host(struct pool_conn *pc)
{
	const char *h = PQhost(pc->pg), *p = PQport(pc->pg);
	const char *a = PQhostaddr(pc->pg);
	char now[sizeof(pc->host)];

	snprintf(now, sizeof(now), "%s:%s%s%s%s", h ? h : "", p ? p : "",
		 a && *a ? " (" : "", a && *a ? a : "", a && *a ? ")" : "");
	if (strcmp(now, pc->host) == 0)
		return;
	if (pc->host[0])
		pool_conn_arm_connect_timer(pc);
	memcpy(pc->host, now, sizeof(now));
}

/*
 * The connect timer expired while a host of a list had not answered (or
 * the attempt starts on a host that recently did not, skip_silent):
 * starts over from the next host; false if there is none.  A host that
 * hung is skipped by the connections opened in the next SILENT_SKIP_USEC,
 * so that each of them does not wait connect_timeout on it again.
 */
#define SILENT_SKIP_USEC (30 * USEC_PER_SEC)

static int pool_conn_begin(struct pool_conn *pc, bool skip_silent_host);

/* pc's attempt goes on as next (the hosts after the current one). */
static void pool_conn_restart(struct pool_conn *pc, PGconn *next)
{
	if (pc->ev) {
		event_free(pc->ev);
		pc->ev = NULL;
	}
	PQfinish(pc->pg);
	pc->pg = next;
	pc->host[0] = '\0';
	(void)pool_conn_begin(pc, false);
}

static bool pool_conn_next_host(struct pool_conn *pc, bool skip_silent)
{
	PGconn *next = pool_start_after_current_host(pc->pg, false);

	if (!next)
		return false;
	if (skip_silent) {
		log_debug("pool: connection %llu skips %s (it did not answer "
			  "lately)",
			  (unsigned long long)pc->id, pc->host);
	} else {
		log_warn("pool: %s did not answer within connect_timeout "
			 "(%lld s); trying the next host",
			 pc->host[0] ? pc->host : "a host",
			 (long long)pool.dc->connect_timeout);
		memcpy(pool.silent_host, pc->host, sizeof(pool.silent_host));
		pool.silent_until = clock_now() + SILENT_SKIP_USEC;
	}
	pool_conn_restart(pc, next);
	return true;
}

static void pool_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pool_conn *pc = arg;

	(void)fd;
	(void)what;
	if (pc->state == PC_PING) {
		/* the pre-ping got no answer within its waiter's timeout */
		struct pool_waiter *w = pc->ping_for;

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
		return;
	}
	if (pc->state == PC_CONNECTING && pool_conn_next_host(pc, false))
		return;
	pool_set_error("connect timeout expired");
	log_warn("pool: connect to %s timed out after %lld s", pool.dc->describe,
		 (long long)pool.dc->connect_timeout);
	pool_connect_failed(pc, "connect timeout expired");
}

static void pool_connect_failed(struct pool_conn *pc, const char *msg)
{
	bool first = !pool.down && pool.failures == 0;
	usec_t now = clock_now();

	if (pc->probe) {
		/* no other writable host: the usual answer */
		pool.probing = false;
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
		if (now >= pool.full_until)
			log_notice("pool: the server has no free connection "
				   "slot; waiting for one (%d open)",
				   pool.nopen);
		pool.full_until = now + FULL_WINDOW_USEC;
		pool.full_retry_at = now + FULL_RETRY_MIN_USEC +
				     (usec_t)(random() %
					      (FULL_RETRY_SPREAD_USEC + 1));
		pool_conn_close(pc, NULL);
		pool_retry_at(pool.full_retry_at);
		return;
	}
	pool.suspect_before = now;	/* a sign the topology may change */
	pool_set_error(msg);
	pool_note_failure();
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

	if (pool_is_stale(pc->host)) {
		pool_conn_close(pc, "on a stale primary");
		pool_fill();
		return;
	}
	if (pc->timer)
		evtimer_del(pc->timer);
	/* From here on every query is sent in pipeline mode: a statement's
	 * first-use PREPARE, the query and its sync go out in one write and
	 * come back in one round trip. */
	if (!PQenterPipelineMode(pc->pg)) {
		pool_connect_failed(pc, PQerrorMessage(pc->pg));
		return;
	}
	pool.nconnecting--;
	pool.nopen++;
	pool.st.connects++;
	if (pool.down || pool.failures > 0)
		log_notice("pool: database reachable again (%s)",
			   pool.dc->describe);
	pool.down = false;
	pool.failures = 0;
	if (!pool.tsa_seen) {
		/* a URL (DATABASE_URL) may ask for a primary too */
		PQconninfoOption *o = PQconninfo(pc->pg);

		pool.tsa_seen = true;
		for (PQconninfoOption *i = o; i && i->keyword; i++)
			if (strcmp(i->keyword, "target_session_attrs") == 0 &&
			    topology_wants_primary(i->val))
				pool.url_wants_primary = true;
		PQconninfoFree(o);
	}
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
	if (!PQsendQuery(pc->pg, sql)) {
		pool_connect_failed(pc, PQerrorMessage(pc->pg));
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
		    atoi(PQgetvalue(res, 0, 0)) != PQbackendPID(pc->pg)) {
			char why[96];

			snprintf(why, sizeof(why),
				 "server process %s answers for %d",
				 PQgetvalue(res, 0, 0), PQbackendPID(pc->pg));
			pool_go_unprepared(why);
		}
		if (!pool.unprepared) {
			pool_conn_send_setup(pc, pool.setup_sql);
			return;
		}
	}
	pool_conn_ready(pc);
}

static void pool_conn_poll(struct pool_conn *pc)
{
	switch (PQconnectPoll(pc->pg)) {
	case PGRES_POLLING_READING:
		pool_conn_track_host(pc);
		if (pool_conn_watch(pc, EV_READ) < 0)
			pool_connect_failed(pc, "cannot watch socket");
		break;
	case PGRES_POLLING_WRITING:
		pool_conn_track_host(pc);
		if (pool_conn_watch(pc, EV_WRITE) < 0)
			pool_connect_failed(pc, "cannot watch socket");
		break;
	case PGRES_POLLING_OK:
		if (!pc->probe && pool_conn_skip_stale(pc))
			break;
		pool_conn_setup(pc);
		break;
	case PGRES_POLLING_FAILED:
	default:
		pool_connect_failed(pc, PQerrorMessage(pc->pg));
		break;
	}
}

/*
 * An attempt just started on pc->pg (its timer made): non-blocking, its
 * first host noted and given connect_timeout, its socket watched; with
 * skip_silent_host, a first host that hung lately is skipped at once.
 * Returns -1 after pool_connect_failed (pc is gone).
 */
static int pool_conn_begin(struct pool_conn *pc, bool skip_silent_host)
{
	pc->notice.conn_id = pc->id;
	pgnotice_attach(pc->pg, &pc->notice);
	if (PQstatus(pc->pg) == CONNECTION_BAD ||
	    PQsetnonblocking(pc->pg, 1) < 0) {
		pool_connect_failed(pc, PQerrorMessage(pc->pg));
		return -1;
	}
	pool_conn_track_host(pc);
	pool_conn_arm_connect_timer(pc);
	if (skip_silent_host && pool.silent_host[0] &&
	    clock_now() < pool.silent_until &&
	    strcmp(pc->host, pool.silent_host) == 0 &&
	    pool_conn_next_host(pc, true))
		return 0;	/* started again (or failed: pc is gone) */
	/* libpq starts by writing; PQconnectPoll tells us the rest. */
	if (pool_conn_watch(pc, EV_WRITE) < 0) {
		pool_connect_failed(pc, "cannot watch socket");
		return -1;
	}
	return 0;
}

/* A new connection, CONNECTING, in the list; its PGconn is the caller's. */
static struct pool_conn *pool_conn_alloc(void)
{
	struct pool_conn *pc = calloc(1, sizeof(*pc));

	if (!pc)
		return NULL;
	pc->id = ++pool.next_id;
	pc->fd = -1;
	pc->prep_sent = -1;
	pc->state = PC_CONNECTING;
	pc->next = pool.all;
	if (pool.all)
		pool.all->prev = pc;
	pool.all = pc;
	pool.nconnecting++;
	return pc;
}

static int pool_conn_open(void)
{
	struct pool_conn *pc = pool_conn_alloc();

	if (!pc)
		return -1;
	pc->pg = PQconnectStartParams(pool.dc->keys, pool.dc->vals, 1);
	if (!pc->pg) {
		pool_connect_failed(pc, "out of memory");
		return -1;
	}
	pc->timer = evtimer_new(pool.base, pool_connect_timeout, pc);
	if (!pc->timer) {
		pool_connect_failed(pc, "out of memory");
		return -1;
	}
	return pool_conn_begin(pc, true);
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
	int have, want, max;

	if (pool.closing)
		return;
	if (pool.failures > 0 && now < pool.next_attempt)
		return;
	have = pool.nopen + pool.nconnecting;
	max = pool.set.size + pool.set.max_overflow;
	want = pool_min_size();
	if (pool.nwaiting > 0) {
		int need = pool.nbusy + pool.nwaiting;

		if (need > want)
			want = need;
	}
	if (want > max)
		want = max;
	if (now < pool.full_until) {
		if (now < pool.full_retry_at || now < pool.hold_until)
			return;
		if (pool.nconnecting == 0 && have < want) {
			/* next try unless this one gets through */
			pool.full_retry_at = now + FULL_RETRY_MIN_USEC +
				(usec_t)(random() % (FULL_RETRY_SPREAD_USEC + 1));
			pool_retry_at(pool.full_retry_at);
			(void)pool_conn_open();
		}
		return;
	}
	/* While failing, probe with one connection at a time. */
	if (pool.failures > 0) {
		if (pool.nconnecting == 0 && have < want)
			(void)pool_conn_open();
		return;
	}
	while (have < want) {
		if (pool_conn_open() < 0)
			break;
		have++;
	}
}

/* ---- handing out connections ----------------------------------------- */

static bool pool_wants_primary(void)
{
	return pool.set.want_primary || pool.url_wants_primary;
}

static bool pool_needs_ping(const struct pool_conn *pc, usec_t now)
{
	/* With a primary wanted: after any sign of a topology change, and
	 * at least every recheck_interval, whatever pre_ping says. */
	if (pool_wants_primary() &&
	    (pc->checked < pool.suspect_before ||
	     now - pc->checked >=
		     (usec_t)pool.set.recheck_interval * USEC_PER_SEC))
		return true;
	if (!pool.set.pre_ping)
		return false;
	/* checked: opened, or last pinged, after the last sign */
	return pc->checked < pool.suspect_before ||
	       now - pc->last_used >=
		       (usec_t)pool.set.pre_ping_after * USEC_PER_SEC;
}

static void pool_waiter_push_front(struct pool_waiter *w)
{
	w->next = pool.wq.next;
	w->prev = &pool.wq;
	pool.wq.next->prev = w;
	pool.wq.next = w;
	w->queued = true;
	pool.nwaiting++;
}

/* Sends an empty query on an idle connection before handing it to w. */
static int pool_ping_start(struct pool_conn *pc, struct pool_waiter *w)
{
	usec_t left = w->deadline - clock_now();
	struct timeval tv = clock_tv(left > 0 ? left : 0);

	pc->state = PC_PING;
	pc->ping_for = w;
	pc->checking = pool_wants_primary();
	pool.st.pings++;
	/* where a primary is wanted, the ping asks whether it still is */
	if (!PQsendQueryParams(pc->pg, pc->checking ? TOPOLOGY_CHECK_SQL : "",
			       0, NULL, NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(pc->pg) || pool_conn_flush(pc) < 0)
		return -1;
	pc->exec_active = true;
	pc->exec_started = clock_now();
	/* the waiter's pool timeout goes on while the ping runs */
	if (evtimer_add(pc->timer, &tv) < 0)
		return -1;
	return 0;
}

/* Hands idle connections to the first waiters, pinging them if due. */
static void pool_serve_waiters(void)
{
	usec_t now = clock_now();

	while (pool.wq.next != &pool.wq && pool.idle) {
		struct pool_conn *pc = pool.idle;
		struct pool_waiter *w = pool.wq.next;

		pool_idle_remove(pc);
		pool_waiter_unlink(w);
		if (pool_needs_ping(pc, now)) {
			if (pool_ping_start(pc, w) < 0) {
				pool_waiter_push_front(w);
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

enum pool_acquire_result pool_acquire(struct pool_waiter *w,
				      pool_acquire_fn fn, void *arg,
				      struct pool_conn **out,
				      enum pool_status *st, const char **msg)
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
	if (pool.wq.next == &pool.wq && pool.idle &&
	    !pool_needs_ping(pool.idle, now)) {
		struct pool_conn *pc = pool.idle;

		pool_idle_remove(pc);
		pc->state = PC_BUSY;
		pool.nbusy++;
		*out = pc;
		return POOL_ACQ_READY;
	}
	w->fn = fn;
	w->arg = arg;
	w->deadline = now + (usec_t)pool.set.timeout * USEC_PER_SEC;
	w->prev = pool.wq.prev;
	w->next = &pool.wq;
	pool.wq.prev->next = w;
	pool.wq.prev = w;
	w->queued = true;
	pool.nwaiting++;
	if (pool.wq.next == w)
		pool_wait_timer_arm();
	/* Serve, and open connections, from the event loop, never from
	 * inside this call: a connect that fails at once fails every
	 * waiter (w too) through pool_connect_failed(). */
	event_active(pool.kick, EV_TIMEOUT, 0);
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

	if (w->queued) {
		pool_waiter_unlink(w);
		pool_wait_timer_arm();
		return;
	}
	/* Maybe a ping is running on its behalf: let it end unclaimed. */
	for (pc = pool.all; pc; pc = pc->next)
		if (pc->state == PC_PING && pc->ping_for == w)
			pc->ping_for = NULL;
}

/* The server is full: a pool above min_size gives a connection back now
 * and then, so that a starved instance (or a restarted one) gets one. */
static bool pool_should_give_back(usec_t now)
{
	return now < pool.full_until && now >= pool.next_give_back &&
	       pool.nopen > pool_min_size();
}

static void pool_give_back(struct pool_conn *pc, usec_t now)
{
	pool.st.given_back++;
	pool.next_give_back = now + GIVE_BACK_USEC;
	pool.hold_until = now + HOLD_USEC;
	pool_retry_at(pool.hold_until);
	pool_conn_close(pc, "given back: the server has no free slot");
}

void pool_release(struct pool_conn *pc)
{
	if (pc->state != PC_BUSY)
		return;
	if (pc->broken || PQstatus(pc->pg) != CONNECTION_OK ||
	    PQtransactionStatus(pc->pg) != PQTRANS_IDLE || pc->exec_active) {
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
	pc->res_limit = 0;	/* set for one query only */
	pc->res_page = false;
	pool_idle_push(pc);
	if (pool.wq.next != &pool.wq)
		pool_serve_waiters();
}

void pool_set_result_limit(struct pool_conn *pc, size_t bytes)
{
	pc->res_limit = bytes;
	pc->res_page = false;
}

void pool_set_result_page(struct pool_conn *pc, size_t bytes)
{
	pc->res_limit = bytes;
	pc->res_page = bytes > 0;
}

/*
 * One row of a bounded result: added to the result gathered so far, or,
 * once the values pass the limit, the result is dropped and the rest of
 * the rows only counted.
 */
static void pool_conn_add_row(struct pool_conn *pc, const PGresult *row)
{
	int nf = PQnfields(row), at;
	size_t bytes = 0;

	if (pc->too_large || pc->res_full)
		return;
	for (int i = 0; i < nf; i++)
		bytes += (size_t)PQgetlength(row, 0, i);
	pc->res_bytes += bytes;
	if (pc->res_bytes > pc->res_limit && pc->res_page && pc->res &&
	    PQntuples(pc->res) > 0) {
		pc->res_full = true;	/* a page: keep the rows before */
		return;
	}
	if (pc->res_bytes > pc->res_limit) {
		pc->too_large = true;
		if (pc->res) {
			PQclear(pc->res);
			pc->res = NULL;
		}
		return;
	}
	if (!pc->res) {
		PGresAttDesc att[POOL_MAX_FIELDS];

		if (nf > POOL_MAX_FIELDS)
			goto oom;
		for (int i = 0; i < nf; i++) {
			att[i].name = PQfname(row, i);
			att[i].tableid = PQftable(row, i);
			att[i].columnid = PQftablecol(row, i);
			att[i].format = PQfformat(row, i);
			att[i].typid = PQftype(row, i);
			att[i].typlen = PQfsize(row, i);
			att[i].atttypmod = PQfmod(row, i);
		}
		pc->res = PQmakeEmptyPGresult(pc->pg, PGRES_TUPLES_OK);
		if (!pc->res || !PQsetResultAttrs(pc->res, nf, att))
			goto oom;
	}
	at = PQntuples(pc->res);
	for (int i = 0; i < nf; i++)
		if (!PQsetvalue(pc->res, at, i,
				PQgetisnull(row, 0, i) ? NULL :
							 PQgetvalue(row, 0, i),
				PQgetisnull(row, 0, i) ? -1 :
							 PQgetlength(row, 0, i)))
			goto oom;
	return;
oom:
	/* counted as too large: the request fails, convd goes on */
	pc->too_large = true;
	if (pc->res) {
		PQclear(pc->res);
		pc->res = NULL;
	}
}

void pool_abandon(struct pool_conn *pc)
{
	if (pc->state != PC_BUSY)
		return;
	if (pc->exec_active) {
		pool.st.abandoned++;
		pool.last_abandon = clock_now();
		cancel_send(pc->pg);
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
	int ok = 1;

	if (pc->state != PC_BUSY || pc->exec_active || pc->broken ||
	    (stmt && (pool_stmt_index(stmt) < 0 || nparams > POOL_MAX_PARAMS)))
		return -1;
	pc->prep_sent = -1;
	pc->prep_seen = false;
	pc->pre_sent = pc->pre_seen = false;
	pc->notice.not_replicated = false;
	if (pool.unprepared && pool.set.statement_timeout > 0) {
		/* No session state through a pooler: the statement timeout
		 * is set for this transaction only (up to the sync). */
		const char *v[1] = {pool.timeout_param};

		if (!PQsendQueryParams(pc->pg,
				       "SELECT pg_catalog.set_config("
				       "'statement_timeout', $1, true)",
				       1, NULL, v, NULL, NULL, 0)) {
			pool_set_error(PQerrorMessage(pc->pg));
			pc->broken = true;
			return -1;
		}
		pc->pre_sent = true;
	}
	if (stmt && pool.unprepared) {
		/* the same SQL, unnamed: parsed and planned each time */
		int idx = pool_stmt_index(stmt);

		ok = PQsendQueryParams(pc->pg, pool.stmts[idx].sql, nparams,
				       NULL, values, lengths, formats,
				       result_format);
	} else if (stmt) {
		int idx = pool_stmt_index(stmt);

		if (idx < 0 || nparams > POOL_MAX_PARAMS)
			return -1;
		/* Statements are prepared on first use on each connection,
		 * so that opening a connection touches no table (and waits
		 * on no lock); the PREPARE travels with the query. */
		if (!(pc->prepared & (1ull << idx))) {
			ok = PQsendPrepare(pc->pg, stmt, pool.stmts[idx].sql, 0,
					   NULL);
			pc->prep_sent = idx;
		}
		ok = ok && PQsendQueryPrepared(pc->pg, stmt, nparams, values,
					       lengths, formats, result_format);
	} else {
		ok = PQsendQueryParams(pc->pg, sql, nparams, NULL, values,
				       lengths, formats, result_format);
	}
	if (!ok || !PQpipelineSync(pc->pg)) {
		pool_set_error(PQerrorMessage(pc->pg));
		pc->broken = true;
		return -1;
	}
	/* A bounded result comes a row at a time: single-row mode is set
	 * for the query at the head of libpq's queue, so after a first-use
	 * PREPARE it waits for the PREPARE's result (pool_conn_collect). */
	pc->res_bytes = 0;
	pc->too_large = false;
	pc->res_full = false;
	pc->rows_mode = false;
	pc->rows_pending = false;
	if (pc->res_limit > 0) {
		if (pc->prep_sent >= 0)
			pc->rows_pending = true;
		else
			pc->rows_mode = PQsetSingleRowMode(pc->pg) == 1;
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
	PGresult *res = pc->res;
	enum pool_status st = POOL_OK;
	const char *msg = NULL;

	pc->res = NULL;
	pc->exec_active = false;
	/* a request's query or a ping answered (not a new connection's
	 * set-up: a server whose commits hang still accepts connections) */
	if (!lost && pc->state != PC_SETUP)
		pool.last_answer = clock_now();
	/* should single-row mode not have been set, the bound still holds
	 * for the answer (not for the memory) */
	if (pc->res_limit > 0 && !pc->rows_mode && res &&
	    PQresultStatus(res) == PGRES_TUPLES_OK) {
		size_t bytes = 0;

		for (int i = 0; i < PQntuples(res); i++)
			for (int j = 0; j < PQnfields(res); j++)
				bytes += (size_t)PQgetlength(res, i, j);
		if (bytes > pc->res_limit && !pc->res_page)
			pc->too_large = true;
	}
	pc->res_limit = 0;
	pc->res_page = pc->res_full = false;
	pc->rows_pending = pc->rows_mode = false;
	if (pc->too_large && !lost && (!res || PQresultStatus(res) ==
						       PGRES_TUPLES_OK)) {
		pc->too_large = false;
		if (res)
			PQclear(res);
		res = NULL;
		st = POOL_RESULT_TOO_LARGE;
		msg = "the result is larger than the limit";
	}
	pc->too_large = false;
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
			if (PQstatus(pc->pg) != CONNECTION_OK) {
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

		evtimer_del(pc->timer);
		pc->ping_for = NULL;
		if (st == POOL_OK)
			pc->checked = clock_now();
		if (st == POOL_OK && pc->checking) {
			pool.st.rechecks++;
			if (!res || PQntuples(res) != 1 || PQnfields(res) != 2 ||
			    strcmp(PQgetvalue(res, 0, 0), "f") != 0) {
				pool.st.read_only++;
				st = POOL_QUERY_ERROR;
				msg = "the server is not a writable primary";
			} else {
				pool.our_tl = atoi(PQgetvalue(res, 0, 1));
				memcpy(pool.our_host, pc->host,
				       sizeof(pool.our_host));
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
				pool_waiter_push_front(w);
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

/*
 * Reads results; true when the command is complete: at the NULL that ends
 * a plain query (set-up, before pipeline mode), at the sync that ends a
 * pipelined one.  Keeps the first error, else the last result; the result
 * of a first-use PREPARE only marks the statement prepared.
 */
static bool pool_conn_collect(struct pool_conn *pc)
{
	bool pipelined = PQpipelineStatus(pc->pg) != PQ_PIPELINE_OFF;

	while (!PQisBusy(pc->pg)) {
		PGresult *r = PQgetResult(pc->pg);
		ExecStatusType es;

		if (!r) {
			if (!pipelined)
				return true;
			/* end of one query's results; the next is ours */
			if (pc->rows_pending) {
				pc->rows_pending = false;
				pc->rows_mode = PQsetSingleRowMode(pc->pg) == 1;
			}
			continue;
		}
		es = PQresultStatus(r);
		if (es == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			return true;
		}
		if (pc->pre_sent && !pc->pre_seen) {
			pc->pre_seen = true;
			if (es == PGRES_TUPLES_OK) {
				PQclear(r);
				continue;
			}
		}
		if (es == PGRES_SINGLE_TUPLE) {
			pool_conn_add_row(pc, r);
			PQclear(r);
			continue;
		}
		/* the end of a bounded result: keep what was gathered */
		if (pc->rows_mode && es == PGRES_TUPLES_OK &&
		    (pc->res || pc->too_large)) {
			PQclear(r);
			continue;
		}
		if (pc->prep_sent >= 0 && !pc->prep_seen) {
			pc->prep_seen = true;
			if (es == PGRES_COMMAND_OK) {
				pc->prepared |= 1ull << pc->prep_sent;
				PQclear(r);
				continue;
			}
		}
		/* Keep the first error (later ones are PIPELINE_ABORTED). */
		if (pc->res && PQresultStatus(pc->res) == PGRES_FATAL_ERROR) {
			PQclear(r);
			continue;
		}
		if (pc->res)
			PQclear(pc->res);
		pc->res = r;
	}
	return false;
}

static void pool_conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct pool_conn *pc = arg;

	(void)fd;
	switch (pc->state) {
	case PC_CONNECTING:
		pool_conn_poll(pc);
		return;
	case PC_IDLE:
		/* Nothing is expected on an idle connection: EOF, an error
		 * (server shutdown, terminated backend) or a notice. */
		if (!PQconsumeInput(pc->pg) ||
		    PQstatus(pc->pg) != CONNECTION_OK) {
			pool.st.lost++;
			pool.suspect_before = clock_now();
			log_warn("pool: idle connection %llu lost: %s",
				 (unsigned long long)pc->id,
				 pool_conn_error(pc));
			pool_conn_close(pc, NULL);
			pool_fill();
			return;
		}
		for (PGnotify *n; (n = PQnotifies(pc->pg)); )
			PQfreemem(n);
		return;
	case PC_BUSY:
		if (!pc->exec_active) {
			/* acquired but no query yet: watch for loss */
			if (!PQconsumeInput(pc->pg))
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
			if (!PQconsumeInput(pc->pg)) {
				pool_conn_done(pc, true);
				return;
			}
			if (pool_conn_collect(pc))
				pool_conn_done(pc,
					       PQstatus(pc->pg) != CONNECTION_OK &&
						       !pc->res);
		}
		return;
	}
}

/* ---- stale primaries ------------------------------------------------------ */

/*
 * With a list of hosts and a primary wanted, a server that still writes
 * may not be the primary any more: its Patroni frozen (or cut off from
 * the DCS) while another member was promoted.  No answer of its own says
 * so, but the promoted one writes on a newer timeline.  Every
 * recheck_interval one probe connection asks the other hosts of the list
 * (libpq's own read-write search, the current host left out) for a
 * writable server and its timeline; if it is newer than ours, our
 * primary is stale: its connections are ended, and for STALE_USEC new
 * connections that reach it go on to the hosts after it.
 */
#define STALE_USEC (60 * USEC_PER_SEC)

static bool pool_is_stale(const char *host)
{
	return pool.stale_host[0] && clock_now() < pool.stale_until &&
	       strcmp(host, pool.stale_host) == 0;
}

static void pool_mark_stale(const char *host)
{
	memcpy(pool.stale_host, host, sizeof(pool.stale_host));
	pool.stale_until = clock_now() + STALE_USEC;
}

/* A new connection that reached the stale primary starts over after it. */
static bool pool_conn_skip_stale(struct pool_conn *pc)
{
	PGconn *next;

	pool_conn_track_host(pc);
	if (!pool_is_stale(pc->host))
		return false;
	next = pool_start_after_current_host(pc->pg, false);
	if (!next)
		return false;
	log_info("pool: connection %llu skips %s (a stale primary)",
		 (unsigned long long)pc->id, pc->host);
	pool_conn_restart(pc, next);
	return true;
}

/* Our primary is stale: its connections end (a query in flight fails with
 * `unavailable`: a commit waiting there for a standby that now follows
 * another primary would never be confirmed). */
static void pool_leave_stale(const char *newer, int tl)
{
	struct pool_conn *pc;

	log_warn("pool: %s is a primary on timeline %d, newer than %s's %d: "
		 "leaving the stale primary",
		 newer, tl, pool.our_host, pool.our_tl);
	pool.st.stale++;
	pool_mark_stale(pool.our_host);
	pool.suspect_before = clock_now();
	pool.our_host[0] = '\0';
	pool.our_tl = 0;
again:
	for (pc = pool.all; pc; pc = pc->next) {
		if (pc->probe || pc->broken || !pool_is_stale(pc->host))
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
	pool.probing = false;
	if (st == POOL_OK && res && PQntuples(res) == 1 &&
	    PQnfields(res) == 2 && strcmp(PQgetvalue(res, 0, 0), "f") == 0 &&
	    pool.our_tl > 0) {
		int tl = atoi(PQgetvalue(res, 0, 1));

		if (tl > pool.our_tl)
			pool_leave_stale(pc->host, tl);
		else if (tl < pool.our_tl)
			pool_mark_stale(pc->host);	/* new ones skip it */
	}
	pool_conn_close(pc, NULL);
}

static void pool_probe_start(usec_t now)
{
	struct pool_conn *tpl, *pc;
	PGconn *pg;

	pool.next_probe = now + (usec_t)pool.set.recheck_interval * USEC_PER_SEC;
	for (tpl = pool.all; tpl; tpl = tpl->next)
		if ((tpl->state == PC_IDLE || tpl->state == PC_BUSY) &&
		    strcmp(tpl->host, pool.our_host) == 0)
			break;
	if (!tpl)
		return;
	pg = pool_start_after_current_host(tpl->pg, true);
	if (!pg)
		return;		/* one host: nothing to compare */
	pc = pool_conn_alloc();
	if (!pc) {
		PQfinish(pg);
		return;
	}
	pc->probe = true;
	pc->pg = pg;
	pool.probing = true;
	pc->timer = evtimer_new(pool.base, pool_connect_timeout, pc);
	if (!pc->timer) {
		pool_connect_failed(pc, "out of memory");
		return;
	}
	(void)pool_conn_begin(pc, false);
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
	if (pool.wq.next != &pool.wq && pool.idle)
		pool_serve_waiters();
	for (pc = pool.idle; pc; pc = pc->idle_next) {
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
		while (pool.nopen > pool.set.size && pool.idle) {
			for (pc = pool.idle; pc->idle_next; pc = pc->idle_next)
				;
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
		while (pool.nopen > pool_min_size() && pool.idle) {
			for (pc = pool.idle; pc->idle_next; pc = pc->idle_next)
				;
			if (now - pc->last_used <=
			    (usec_t)pool.set.idle_timeout * USEC_PER_SEC)
				break;
			pool_conn_close(pc, "idle (above [pool] min_size)");
		}
		if (pool_should_give_back(now) && pool.idle) {
			for (pc = pool.idle; pc->idle_next; pc = pc->idle_next)
				;
			pool_give_back(pc, now);
		}
	}
	if (pool_wants_primary() && pool.our_tl > 0 && !pool.probing &&
	    now >= pool.next_probe)
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
	pool.base = base;
	pool.dc = dc;
	pool.set = *ps;
	pool.wq.next = pool.wq.prev = &pool.wq;
	pool.stmts = stmts;
	pool.nstmts = nstmts;
	pool.setup_sql = pool_build_setup_sql(ps->statement_timeout);
	pool.unprepared = ps->prepare == POOL_PREPARE_NO;
	snprintf(pool.timeout_param, sizeof(pool.timeout_param), "%d",
		 ps->statement_timeout);
	pool.retry_timer = evtimer_new(base, pool_retry_fire, NULL);
	pool.kick = event_new(base, -1, 0, pool_upkeep, NULL);
	pool.wait_timer = evtimer_new(base, pool_waiters_expire, NULL);
	pool.upkeep = event_new(base, -1, EV_PERSIST, pool_upkeep, NULL);
	if (nstmts > 64) {
		log_error("pool: at most 64 prepared statements");
		return -1;
	}
	if (!pool.setup_sql || !pool.wait_timer || !pool.upkeep ||
	    !pool.retry_timer || !pool.kick ||
	    event_add(pool.upkeep, &tv) < 0) {
		log_error("pool: out of memory");
		return -1;
	}
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

	if (ps->size < pool.set.size)
		pool.shrinking = true;
	pool.set = *ps;
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
	for (struct pool_conn *pc = pool.all; pc; pc = pc->next)
		if (pc->created)
			pc->recycle_at = timeout_changed ?
						 now :
						 pool_recycle_deadline(pc->created);
	pool_wait_timer_arm();
	pool_fill();
}

void pool_cleanup(void)
{
	if (!pool.wq.next)
		return;		/* start-up failed before pool_setup */
	pool.closing = true;
	pool_fail_waiters(POOL_SHUTDOWN, "convd is shutting down");
	/* waiters whose connection is being pre-pinged are in no queue */
again:
	for (struct pool_conn *pc = pool.all; pc; pc = pc->next) {
		if (pc->state == PC_PING && pc->ping_for) {
			struct pool_waiter *w = pc->ping_for;

			pc->ping_for = NULL;
			w->fn(w->arg, NULL, POOL_SHUTDOWN,
			      "convd is shutting down");
			goto again;
		}
	}
	while (pool.all) {
		struct pool_conn *pc = pool.all;

		if (pc->state == PC_BUSY && pc->exec_active && pc->fn) {
			pool_exec_fn fn = pc->fn;

			pc->exec_active = false;
			pc->fn = NULL;
			pc->broken = true;
			fn(pc->arg, pc, POOL_SHUTDOWN, NULL,
			   "convd is shutting down");
			if (pool.all != pc)
				continue; /* released and closed by fn */
		}
		pool_conn_close(pc, NULL);
	}
	if (pool.wait_timer)
		event_free(pool.wait_timer);
	if (pool.upkeep)
		event_free(pool.upkeep);
	if (pool.retry_timer)
		event_free(pool.retry_timer);
	if (pool.kick)
		event_free(pool.kick);
	pool.retry_timer = pool.kick = NULL;
	free(pool.setup_sql);
	pool.wait_timer = pool.upkeep = NULL;
	pool.setup_sql = NULL;
}

/* Whether the server has stopped answering (see pool.h). */
static void pool_stall(struct pool_stats *out)
{
	usec_t now = clock_now(), oldest = 0;

	for (struct pool_conn *pc = pool.all; pc; pc = pc->next)
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
	out->waiting = pool.nwaiting;
	out->database_up = pool.nopen > 0 || (!pool.down && pool.failures == 0);
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

int pool_busy_count(void)
{
	return pool.nbusy;
}
