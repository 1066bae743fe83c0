/*
 * multihost.c - connection attempts across libpq's host list, read-write
 * rechecks and stale primaries (multihost.h).
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "loop.h"
#include "multihost.h"
#include "topology.h"

/* A host that hung is skipped this long by new attempts. */
#define SILENT_SKIP_USEC (30 * USEC_PER_SEC)
/* A primary found stale is avoided this long. */
#define STALE_USEC (60 * USEC_PER_SEC)

static struct {
	struct event_base *base;
	const struct dbconf *dc;
	bool want_primary;		/* [database] target_session_attrs */
	bool params_seen, url_wants_primary;	/* ... or the URL's */
	usec_t recheck_usec;
	/* the last host that hung, skipped until silent_until */
	char silent_host[HOSTLIST_LABEL_MAX];
	usec_t silent_until;
	/* the primary our connections use, as the last check saw it, and
	 * one found stale (another host writes on a newer timeline) */
	char our_host[HOSTLIST_LABEL_MAX];
	int our_tl;
	char stale_host[HOSTLIST_LABEL_MAX];
	usec_t stale_until;
	bool probing;
	usec_t next_probe;
} mh;

void multihost_setup(struct event_base *base, const struct dbconf *dc)
{
	memset(&mh, 0, sizeof(mh));
	mh.base = base;
	mh.dc = dc;
}

void multihost_cleanup(void)
{
	memset(&mh, 0, sizeof(mh));
}

void multihost_configure(bool want_primary, int recheck_interval)
{
	mh.want_primary = want_primary;
	mh.recheck_usec = (usec_t)recheck_interval * USEC_PER_SEC;
}

/* ---- one attempt ---------------------------------------------------------- */

static void multihost_fail(struct multihost_conn *mc, const char *msg)
{
	mc->fn(mc->arg, MULTIHOST_FAILED, msg);
}

static int multihost_arm_timer(struct multihost_conn *mc)
{
	struct timeval tv = {
		.tv_sec = mh.dc->connect_timeout > 0 ? mh.dc->connect_timeout
						     : 10,
	};

	return loop_arm(&mc->timer, &tv, "database connect timeout");
}

/* A new host or address of the list: it gets the whole connect_timeout
 * of its own.  Called as soon as the attempt starts too, so that a move
 * made within the first poll is seen.  -1: the timer cannot be armed. */
static int multihost_track_host(struct multihost_conn *mc)
{
	char now[sizeof(mc->host)];
	bool moved;

	hostlist_label(now, sizeof(now), PQhost(mc->pg), PQport(mc->pg),
		       PQhostaddr(mc->pg));
	if (strcmp(now, mc->host) == 0)
		return 0;
	moved = mc->host[0] != '\0';
	memcpy(mc->host, now, sizeof(now));
	return moved ? multihost_arm_timer(mc) : 0;
}

/* (Re)arms the socket event for `what` (EV_READ or EV_WRITE). */
static int multihost_watch(struct multihost_conn *mc, short what);

static int multihost_begin(struct multihost_conn *mc, bool skip_silent);

/* mc's attempt goes on as next (the hosts after the current one). */
static void multihost_restart(struct multihost_conn *mc, PGconn *next)
{
	if (event_initialized(&mc->sock))
		event_del(&mc->sock);
	PQfinish(mc->pg);
	mc->pg = next;
	mc->host[0] = '\0';
	(void)multihost_begin(mc, false);
}

/*
 * The connect timer expired while a host of a list had not answered (or
 * the attempt starts on a host that recently did not, skip_silent):
 * starts over from the next host; false if there is none.
 */
static bool multihost_next_host(struct multihost_conn *mc, bool skip_silent)
{
	PGconn *next = multihost_start_after(mc->pg, false);

	if (!next)
		return false;
	if (skip_silent) {
		log_debug("pool: connection %llu skips %s (it did not answer "
			  "lately)",
			  (unsigned long long)mc->id, mc->host);
	} else {
		log_warn("pool: %s did not answer within connect_timeout "
			 "(%lld s); trying the next host",
			 mc->host[0] ? mc->host : "a host",
			 (long long)mh.dc->connect_timeout);
		memcpy(mh.silent_host, mc->host, sizeof(mh.silent_host));
		mh.silent_until = clock_now() + SILENT_SKIP_USEC;
	}
	multihost_restart(mc, next);
	return true;
}

/* A new connection that reached the stale primary starts over after it. */
static bool multihost_skip_stale(struct multihost_conn *mc)
{
	PGconn *next;

	if (multihost_track_host(mc) < 0) {
		multihost_fail(mc, "cannot arm the connect timer");
		return true;
	}
	if (!multihost_is_stale(mc->host))
		return false;
	next = multihost_start_after(mc->pg, false);
	if (!next)
		return false;
	log_info("pool: connection %llu skips %s (a stale primary)",
		 (unsigned long long)mc->id, mc->host);
	multihost_restart(mc, next);
	return true;
}

static void multihost_poll(struct multihost_conn *mc)
{
	short what = EV_READ;

	switch (PQconnectPoll(mc->pg)) {
	case PGRES_POLLING_WRITING:
		what = EV_WRITE;
		__attribute__((fallthrough));
	case PGRES_POLLING_READING:
		if (multihost_track_host(mc) < 0)
			multihost_fail(mc, "cannot arm the connect timer");
		else if (multihost_watch(mc, what) < 0)
			multihost_fail(mc, "cannot watch socket");
		break;
	case PGRES_POLLING_OK:
		if (!mc->probe && multihost_skip_stale(mc))
			break;
		event_del(&mc->sock);
		mc->connecting = false;
		mc->fn(mc->arg, MULTIHOST_CONNECTED, NULL);
		break;
	case PGRES_POLLING_FAILED:
	default:
		multihost_fail(mc, PQerrorMessage(mc->pg));
		break;
	}
}

static void multihost_on_socket(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	multihost_poll(arg);
}

static void multihost_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct multihost_conn *mc = arg;

	(void)fd;
	(void)what;
	if (mc->connecting && multihost_next_host(mc, false))
		return;
	mc->fn(mc->arg, MULTIHOST_TIMEOUT, "connect timeout expired");
}

static int multihost_watch(struct multihost_conn *mc, short what)
{
	int fd = PQsocket(mc->pg);

	if (fd < 0)
		return -1;
	/* Always register anew: libpq may have closed the socket and opened
	 * another (next host or address) that got the same number, and the
	 * old registration died with the old socket. */
	if (event_initialized(&mc->sock))
		event_del(&mc->sock);
	event_assign(&mc->sock, mh.base, fd, what | EV_PERSIST,
		     multihost_on_socket, mc);
	return loop_arm(&mc->sock, NULL, "database connect");
}

/*
 * An attempt just started on mc->pg: non-blocking, its first host noted
 * and given connect_timeout, its socket watched; with skip_silent, a
 * first host that hung lately is skipped at once.  Returns -1 after
 * MULTIHOST_FAILED (mc may be gone).
 */
static int multihost_begin(struct multihost_conn *mc, bool skip_silent)
{
	mc->connecting = true;
	if (mc->notice) {
		mc->notice->conn_id = mc->id;
		pgnotice_attach(mc->pg, mc->notice);
	}
	if (PQstatus(mc->pg) == CONNECTION_BAD ||
	    PQsetnonblocking(mc->pg, 1) < 0) {
		multihost_fail(mc, PQerrorMessage(mc->pg));
		return -1;
	}
	if (multihost_track_host(mc) < 0 || multihost_arm_timer(mc) < 0) {
		multihost_fail(mc, "cannot arm the connect timer");
		return -1;
	}
	if (skip_silent && mh.silent_host[0] &&
	    clock_now() < mh.silent_until &&
	    strcmp(mc->host, mh.silent_host) == 0 &&
	    multihost_next_host(mc, true))
		return 0;	/* started again (or failed: mc is gone) */
	/* libpq starts by writing; PQconnectPoll tells us the rest. */
	if (multihost_watch(mc, EV_WRITE) < 0) {
		multihost_fail(mc, "cannot watch socket");
		return -1;
	}
	return 0;
}

int multihost_start(struct multihost_conn *mc, PGconn *pg, bool skip_silent)
{
	mc->pg = pg;
	mc->host[0] = '\0';
	if (!event_initialized(&mc->timer))
		evtimer_assign(&mc->timer, mh.base, multihost_on_timer, mc);
	return multihost_begin(mc, skip_silent);
}

void multihost_settled(struct multihost_conn *mc)
{
	if (event_initialized(&mc->timer))
		evtimer_del(&mc->timer);
}

void multihost_conn_cleanup(struct multihost_conn *mc)
{
	if (event_initialized(&mc->sock))
		event_del(&mc->sock);
	if (event_initialized(&mc->timer))
		event_del(&mc->timer);
	if (mc->pg)
		PQfinish(mc->pg);
	mc->pg = NULL;
}

PGconn *multihost_start_after(PGconn *pg, bool others)
{
	PQconninfoOption *opts = PQconninfo(pg);
	struct hostlist_next nx;
	PGconn *next = NULL;

	if (opts && hostlist_next(opts, PQhost(pg), PQport(pg), PQhostaddr(pg),
				  others, &nx) == 0) {
		next = PQconnectStartParams(nx.keys, nx.vals, 0);
		hostlist_next_free(&nx);
	}
	if (opts)
		PQconninfoFree(opts);
	return next;
}

/* ---- primaries ------------------------------------------------------------ */

bool multihost_wants_primary(void)
{
	return mh.want_primary || mh.url_wants_primary;
}

void multihost_note_params(PGconn *pg)
{
	PQconninfoOption *o;

	if (mh.params_seen)
		return;
	/* a URL (DATABASE_URL) may ask for a primary too */
	o = PQconninfo(pg);
	mh.params_seen = true;
	for (PQconninfoOption *i = o; i && i->keyword; i++)
		if (strcmp(i->keyword, "target_session_attrs") == 0 &&
		    topology_wants_primary(i->val))
			mh.url_wants_primary = true;
	PQconninfoFree(o);
}

bool multihost_recheck_due(usec_t checked, usec_t suspect_before, usec_t now)
{
	return multihost_wants_primary() &&
	       (checked < suspect_before || now - checked >= mh.recheck_usec);
}

bool multihost_check_answer(const PGresult *res, const char *host)
{
	if (!res || PQntuples(res) != 1 || PQnfields(res) != 2 ||
	    strcmp(PQgetvalue(res, 0, 0), "f") != 0)
		return false;
	mh.our_tl = atoi(PQgetvalue(res, 0, 1));
	snprintf(mh.our_host, sizeof(mh.our_host), "%s", host);
	return true;
}

bool multihost_is_stale(const char *host)
{
	return mh.stale_host[0] && clock_now() < mh.stale_until &&
	       strcmp(host, mh.stale_host) == 0;
}

static void multihost_mark_stale(const char *host)
{
	snprintf(mh.stale_host, sizeof(mh.stale_host), "%s", host);
	mh.stale_until = clock_now() + STALE_USEC;
}

const char *multihost_probe_due(usec_t now)
{
	if (!multihost_wants_primary() || mh.our_tl <= 0 || mh.probing ||
	    now < mh.next_probe)
		return NULL;
	mh.next_probe = now + mh.recheck_usec;
	return mh.our_host;
}

void multihost_probing(bool running)
{
	mh.probing = running;
}

int multihost_probe_done(const PGresult *res, const char *host)
{
	int tl;

	mh.probing = false;
	if (!res || PQntuples(res) != 1 || PQnfields(res) != 2 ||
	    strcmp(PQgetvalue(res, 0, 0), "f") != 0 || mh.our_tl <= 0)
		return 0;
	tl = atoi(PQgetvalue(res, 0, 1));
	if (tl > mh.our_tl)
		return tl;
	if (tl < mh.our_tl)
		multihost_mark_stale(host);	/* new ones skip it */
	return 0;
}

void multihost_leave(const char *newer, int tl)
{
	log_warn("pool: %s is a primary on timeline %d, newer than %s's %d: "
		 "leaving the stale primary",
		 newer, tl, mh.our_host, mh.our_tl);
	multihost_mark_stale(mh.our_host);
	mh.our_host[0] = '\0';
	mh.our_tl = 0;
}
