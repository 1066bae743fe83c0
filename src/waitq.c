/*
 * waitq.c - a FIFO of waiters with deadlines under one timer (waitq.h).
 */
#include "clock.h"
#include "loop.h"
#include "waitq.h"

static void waitq_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct waitq *wq = arg;

	(void)fd;
	(void)what;
	wq->fn(wq->arg);
}

void waitq_init(struct waitq *wq, struct event_base *base, const char *what,
		void (*fn)(void *arg), void *arg)
{
	TAILQ_INIT(&wq->q);
	wq->n = 0;
	wq->fn = fn;
	wq->arg = arg;
	wq->what = what;
	evtimer_assign(&wq->timer, base, waitq_on_timer, wq);
}

void waitq_cleanup(struct waitq *wq)
{
	if (event_initialized(&wq->timer))
		event_del(&wq->timer);
}

void waitq_push(struct waitq *wq, struct waitq_entry *e)
{
	TAILQ_INSERT_TAIL(&wq->q, e, link);
	e->queued = true;
	wq->n++;
}

void waitq_push_front(struct waitq *wq, struct waitq_entry *e)
{
	TAILQ_INSERT_HEAD(&wq->q, e, link);
	e->queued = true;
	wq->n++;
}

void waitq_remove(struct waitq *wq, struct waitq_entry *e)
{
	TAILQ_REMOVE(&wq->q, e, link);
	e->queued = false;
	wq->n--;
}

struct waitq_entry *waitq_first(const struct waitq *wq)
{
	return TAILQ_FIRST(&wq->q);
}

struct waitq_entry *waitq_pop_due(struct waitq *wq, usec_t now)
{
	struct waitq_entry *e = TAILQ_FIRST(&wq->q);

	if (!e || e->deadline > now)
		return NULL;
	waitq_remove(wq, e);
	return e;
}

int waitq_arm(struct waitq *wq)
{
	struct waitq_entry *e = TAILQ_FIRST(&wq->q);

	if (!e) {
		evtimer_del(&wq->timer);
		return 0;
	}
	return loop_arm_usec(&wq->timer, e->deadline - clock_now(), wq->what);
}
