/*
 * test_waitq.c - waiters in FIFO order with deadlines under one timer
 * (waitq.c), on a real libevent loop.
 */
#include <event2/event.h>

#include "clock.h"
#include "tap.h"
#include "waitq.h"

struct clock_cache clock_cache;

static int fired;

static void on_due(void *arg)
{
	(void)arg;
	fired++;
}

static void test_order(void)
{
	struct event_base *base = event_base_new();
	struct waitq wq;
	struct waitq_entry a = {0}, b = {0}, c = {0};

	waitq_init(&wq, base, "test timer", on_due, &wq);
	ok(waitq_first(&wq) == NULL && wq.n == 0, "empty at first");
	a.deadline = 10;
	b.deadline = 20;
	c.deadline = 30;
	waitq_push(&wq, &a);
	waitq_push(&wq, &b);
	waitq_push(&wq, &c);
	ok(waitq_first(&wq) == &a && wq.n == 3 && a.queued,
	   "first in, first out");
	waitq_remove(&wq, &a);
	ok(waitq_first(&wq) == &b && !a.queued && wq.n == 2,
	   "removed from the front");
	waitq_push_front(&wq, &a);
	ok(waitq_first(&wq) == &a && wq.n == 3, "pushed back to the front");
	waitq_remove(&wq, &b);
	ok(waitq_pop_due(&wq, 9) == NULL, "nothing due before the first");
	ok(waitq_pop_due(&wq, 10) == &a && !a.queued, "the first when due");
	ok(waitq_pop_due(&wq, 100) == &c, "then the next");
	ok(waitq_pop_due(&wq, 100) == NULL && wq.n == 0, "then none");
	waitq_cleanup(&wq);
	event_base_free(base);
}

static void test_timer(void)
{
	struct event_base *base = event_base_new();
	struct waitq wq;
	struct waitq_entry a = {0};

	waitq_init(&wq, base, "test timer", on_due, &wq);
	ok(waitq_arm(&wq) == 0, "an empty queue arms nothing");
	fired = 0;
	event_base_loop(base, EVLOOP_NONBLOCK);
	is_int(fired, 0, "nothing fires");

	clock_invalidate();
	a.deadline = clock_now() + 20 * 1000;
	waitq_push(&wq, &a);
	ok(waitq_arm(&wq) == 0, "armed for the first deadline");
	event_base_loop(base, EVLOOP_ONCE);
	is_int(fired, 1, "the callback runs when it passes");
	clock_invalidate();
	ok(clock_now() >= a.deadline, "...not before");
	ok(waitq_pop_due(&wq, clock_now()) == &a, "the owner takes it out");
	ok(waitq_arm(&wq) == 0, "re-armed for none");
	waitq_cleanup(&wq);
	event_base_free(base);
}

int main(void)
{
	test_order();
	test_timer();
	return tap_done();
}
