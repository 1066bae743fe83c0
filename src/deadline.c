/*
 * deadline.c - every database request's deadline (see deadline.h).
 */
#include "clock.h"
#include "deadline.h"
#include "log.h"
#include "loop.h"

TAILQ_HEAD(deadline_list, deadline_link);

static struct {
	struct event timer;
	bool timer_set;
	usec_t timeout;
	struct deadline_list list;	/* earliest deadline first */
	uint64_t expired;
} dl = {.list = TAILQ_HEAD_INITIALIZER(dl.list)};

static struct log_ratelimit rl_expired =
	LOG_RATELIMIT("requests answered timeout at their deadline");

static void deadline_arm(void)
{
	struct deadline_link *first = TAILQ_FIRST(&dl.list);

	if (!first) {
		evtimer_del(&dl.timer);
		return;
	}
	if (loop_arm_usec(&dl.timer, first->at - clock_now(),
			  "request deadline timer") < 0)
		return;	/* logged; the next watch arms it again, and the
			 * requests meanwhile end at the pool's limits */
}

static void deadline_fire(evutil_socket_t fd, short what, void *arg)
{
	usec_t now = clock_now();
	struct deadline_link *first;

	(void)fd;
	(void)what;
	(void)arg;
	/* expire() answers the request (and may answer others: a batch
	 * ends as one), which unwatches them: start from the head again */
	while ((first = TAILQ_FIRST(&dl.list)) && first->at <= now) {
		deadline_expire_fn expire = first->expire;

		deadline_unwatch(first);
		dl.expired++;
		log_warn_rl(&rl_expired,
			    "%s: no answer within request_timeout (%lld ms); "
			    "answered timeout",
			    first->what, (long long)(dl.timeout / 1000));
		expire(first);
	}
	deadline_arm();
}

int deadline_setup(struct event_base *base, usec_t timeout)
{
	dl.timeout = timeout;
	TAILQ_INIT(&dl.list);
	if (evtimer_assign(&dl.timer, base, deadline_fire, NULL) < 0)
		return -1;
	dl.timer_set = true;
	return 0;
}

void deadline_reconfigure(usec_t timeout)
{
	dl.timeout = timeout;
}

void deadline_cleanup(void)
{
	struct deadline_link *first;

	while ((first = TAILQ_FIRST(&dl.list)))
		deadline_unwatch(first);
	if (dl.timer_set)
		evtimer_del(&dl.timer);
	dl.timer_set = false;
}

void deadline_watch(struct deadline_link *link, usec_t started,
		    const char *what, deadline_expire_fn expire)
{
	struct deadline_link *after;

	if (link->on) {
		link->expire = expire;
		return;
	}
	if (dl.timeout <= 0 || !dl.timer_set)
		return;
	link->at = started + dl.timeout;
	link->expire = expire;
	link->what = what;
	link->on = true;
	/* from the tail back: after a reload shortened the timeout, a new
	 * request may be due before older ones */
	for (after = TAILQ_LAST(&dl.list, deadline_list);
	     after && after->at > link->at;
	     after = TAILQ_PREV(after, deadline_list, entry))
		;
	if (after)
		TAILQ_INSERT_AFTER(&dl.list, after, link, entry);
	else
		TAILQ_INSERT_HEAD(&dl.list, link, entry);
	if (TAILQ_FIRST(&dl.list) == link)
		deadline_arm();
}

void deadline_unwatch(struct deadline_link *link)
{
	if (!link->on)
		return;
	TAILQ_REMOVE(&dl.list, link, entry);
	link->on = false;
	/* the timer stays armed for the old head: when it fires early it
	 * re-arms for the new one (no timer work per request) */
}

uint64_t deadline_expired_count(void)
{
	return dl.expired;
}
