/*
 * multihost.h - multi-host connection handling under the pool: one
 * connection attempt across libpq's host list, and what convd remembers
 * about the hosts.
 *
 * - A connect timeout per host: libpq's non-blocking connect lets the
 *   caller's timer cover the whole attempt, so a first host that accepts
 *   and then never answers would hide every host after it for ever.  The
 *   timer restarts whenever libpq moves to another host or address, and
 *   when it expires on a host of a list the attempt starts again without
 *   it (hostlist.h).  A host that hung is skipped by the attempts started
 *   in the next 30 seconds.
 * - Read-write rechecks: with a primary wanted ([database]
 *   target_session_attrs, or one in DATABASE_URL), connections are
 *   checked again (TOPOLOGY_CHECK_SQL) after any sign of a topology
 *   change and every recheck_interval; the check records our primary and
 *   its timeline.
 * - Stale primaries: a server that still writes may not be the primary
 *   any more (its Patroni frozen or cut off while another member was
 *   promoted).  Every recheck_interval a probe asks the other hosts of
 *   the list for a writable server; one on a newer timeline makes ours
 *   stale: the pool ends its connections, and for a minute attempts that
 *   reach it go on to the hosts after it.
 */
#ifndef CONVD_MULTIHOST_H
#define CONVD_MULTIHOST_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <libpq-fe.h>

#include "common.h"
#include "dbconf.h"
#include "hostlist.h"
#include "pgnotice.h"

enum multihost_event {
	MULTIHOST_CONNECTED,	/* pg is connected; the timer runs on */
	MULTIHOST_FAILED,	/* msg says why */
	MULTIHOST_TIMEOUT,	/* connect_timeout expired, no host left */
};

typedef void (*multihost_fn)(void *arg, enum multihost_event ev,
			     const char *msg);

/* One attempt, embedded in its owner (zeroed before first use). */
struct multihost_conn {
	PGconn *pg;
	struct event sock;		/* the socket, while connecting */
	struct event timer;		/* connect_timeout, per host */
	char host[HOSTLIST_LABEL_MAX];	/* the host it is on (a label) */
	uint64_t id;			/* the connection's, for the log */
	struct pgnotice_ctx *notice;	/* attached to each PGconn */
	bool connecting;		/* until MULTIHOST_CONNECTED */
	bool probe;			/* reaches stale hosts too */
	multihost_fn fn;
	void *arg;
};

/* dc must outlive the module.  Forgets every host. */
void multihost_setup(struct event_base *base, const struct dbconf *dc);
void multihost_cleanup(void);
/* [database] target_session_attrs asks for a primary; [pool]
 * recheck_interval. */
void multihost_configure(bool want_primary, int recheck_interval);

/*
 * Starts mc (id, notice, probe, fn and arg set) on pg, a new attempt
 * (PQconnectStart*), which mc owns from now on; with skip_silent, a
 * first host that hung lately is skipped at once.  fn is called later
 * from the loop, or from inside the call when the attempt fails at
 * once: then -1 is returned and mc may be gone.
 */
CONVD_WUR int multihost_start(struct multihost_conn *mc, PGconn *pg,
			      bool skip_silent);
/* Stops the connect timer (the owner's set-up is done). */
void multihost_settled(struct multihost_conn *mc);
/* Removes mc's events and closes its PGconn. */
void multihost_conn_cleanup(struct multihost_conn *mc);

/* An attempt on the hosts of pg's list after its current one (others:
 * on every other host); NULL when there is none. */
PGconn *multihost_start_after(PGconn *pg, bool others);

/* Whether convd must be on a writable primary.  The first connection's
 * parameters are read once (a URL may ask for one). */
bool multihost_wants_primary(void);
void multihost_note_params(PGconn *pg);
/* Whether a connection last checked at `checked` must be checked again
 * (suspect_before: the last sign of a topology change). */
bool multihost_recheck_due(usec_t checked, usec_t suspect_before, usec_t now);
/* The answer to TOPOLOGY_CHECK_SQL on host: true when it is a writable
 * primary (then it is ours, with its timeline). */
bool multihost_check_answer(const PGresult *res, const char *host);

/* A primary found stale is avoided for a minute. */
bool multihost_is_stale(const char *host);

/* The probe: our primary's host when one is due (the next one is then
 * due recheck_interval later), else NULL. */
const char *multihost_probe_due(usec_t now);
void multihost_probing(bool running);
/* The probe on host answered res (NULL: it failed): the timeline of a
 * newer primary when ours is stale (the caller leaves it:
 * multihost_leave), else 0.  An older one is marked stale. */
int multihost_probe_done(const PGresult *res, const char *host);
/* Our primary is stale (newer writes on timeline tl): marked, forgotten. */
void multihost_leave(const char *newer, int tl);

#endif
