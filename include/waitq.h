/*
 * waitq.h - callers waiting their turn in FIFO order, each with a
 * deadline, under one timer (the pool's requests waiting for a
 * connection).
 *
 * The owner embeds a struct waitq_entry in each waiter and a struct
 * waitq in itself.  When the first deadline passes, the owner's callback
 * runs; it takes the waiters due out with waitq_pop_due() and re-arms
 * with waitq_arm().  Nothing here calls a waiter.
 */
#ifndef CONVD_WAITQ_H
#define CONVD_WAITQ_H

#include <event2/event.h>

#include "common.h"
#include "lists.h"

struct waitq_entry {
	TAILQ_ENTRY(waitq_entry) link;
	usec_t deadline;
	bool queued;
};

struct waitq {
	TAILQ_HEAD(, waitq_entry) q;
	int n;				/* entries queued */
	struct event timer;		/* the first deadline */
	void (*fn)(void *arg);		/* ... passed */
	void *arg;
	const char *what;		/* the timer, for the log */
};

/* what names the timer in the log ("pool timeout"). */
void waitq_init(struct waitq *wq, struct event_base *base, const char *what,
		void (*fn)(void *arg), void *arg);
/* Stops the timer (the entries are the owner's to fail first). */
void waitq_cleanup(struct waitq *wq);

/* At the end (deadline set by the caller), or back at the front. */
void waitq_push(struct waitq *wq, struct waitq_entry *e);
void waitq_push_front(struct waitq *wq, struct waitq_entry *e);
void waitq_remove(struct waitq *wq, struct waitq_entry *e);

/* The first entry (NULL when none), left in the queue. */
struct waitq_entry *waitq_first(const struct waitq *wq);
/* The first entry (taken out) if it is due at now, else NULL. */
struct waitq_entry *waitq_pop_due(struct waitq *wq, usec_t now);

/* Arms the timer for the first deadline (none when empty); -1 (logged)
 * when it cannot be armed: the entries would wait for ever, and the
 * owner fails them another way. */
CONVD_WUR int waitq_arm(struct waitq *wq);

#endif
