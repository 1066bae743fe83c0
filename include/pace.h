/*
 * pace.h - when the pool may open connections (pure: times in, decisions
 * out; no I/O).
 *
 * - Backoff: after a failed connect the first retry is immediate (a
 *   failover moves the primary: the next host of the list may already be
 *   it), then backoff_min doubling up to backoff_max, half of it random
 *   so that a fleet does not retry in step; while failing, one attempt at
 *   a time.
 * - A full server (53300 and its kind, topology.h) is not an outage: for
 *   PACE_FULL_WINDOW_USEC after a refusal the server counts as contended;
 *   attempts go one at a time, 50 to 250 ms apart, and a pool above its
 *   min_size gives a connection back every PACE_GIVE_BACK_USEC and leaves
 *   the slot to others for PACE_HOLD_USEC, so that a starved instance (or
 *   a restarted one) gets some.
 */
#ifndef CONVD_PACE_H
#define CONVD_PACE_H

#include "common.h"

#define PACE_FULL_WINDOW_USEC (5 * USEC_PER_SEC)
#define PACE_GIVE_BACK_USEC (1 * USEC_PER_SEC)
#define PACE_HOLD_USEC (300 * 1000)
#define PACE_FULL_RETRY_MIN_USEC (50 * 1000)
#define PACE_FULL_RETRY_SPREAD_USEC (200 * 1000)

/* Zeroed: nothing failed, nothing full. */
struct pace {
	int failures;			/* connects failed in a row */
	usec_t next_attempt;		/* ... the next one not before */
	usec_t full_until;		/* server full: contended until */
	usec_t full_retry_at;		/* ... next try */
	usec_t next_give_back;
	usec_t hold_until;		/* ... slot left to others */
};

enum pace_mode {
	PACE_WAIT,	/* open nothing now */
	PACE_FULL,	/* one at a time, then pace_full_try() */
	PACE_FAILING,	/* one at a time */
	PACE_FREE,	/* as many as wanted */
};

/* A connect failed (not for want of slots): when to try again
 * (backoff_min/max in ms). */
usec_t pace_failed(struct pace *p, usec_t now, int backoff_min_ms,
		   int backoff_max_ms);
/* A connection was made: the backoff ends. */
void pace_connected(struct pace *p);

/* The server refused for want of slots: when to try again.  *news: it
 * was not contended before. */
usec_t pace_refused(struct pace *p, usec_t now, bool *news);

enum pace_mode pace_mode(const struct pace *p, usec_t now);
/* PACE_FULL, a connection opens now: the next try unless it gets
 * through. */
usec_t pace_full_try(struct pace *p, usec_t now);

/* Whether a connection should be given back now (the caller checks that
 * it holds more than min_size). */
bool pace_give_back_due(const struct pace *p, usec_t now);
/* One was given back: when the pool may try again. */
usec_t pace_gave_back(struct pace *p, usec_t now);

#endif
