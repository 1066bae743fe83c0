/*
 * deadline.c - every database request's deadline (see deadline.h).
 */
#include "clock.h"
#include "deadline.h"
#include "log.h"
#include "server.h"

static struct {
	struct event *timer;
	usec_t timeout;
	struct request *head, *tail;	/* earliest deadline first */
	uint64_t expired;
} dl;

static struct log_ratelimit rl_expired =
	LOG_RATELIMIT("requests answered timeout at their deadline");

static void deadline_arm(void)
{
	struct timeval tv;
	usec_t d;

	if (!dl.head) {
		evtimer_del(dl.timer);
		return;
	}
	d = dl.head->dl.at - clock_now();
	tv = clock_tv(d > 0 ? d : 0);
	evtimer_add(dl.timer, &tv);
}

static void deadline_fire(evutil_socket_t fd, short what, void *arg)
{
	usec_t now = clock_now();

	(void)fd;
	(void)what;
	(void)arg;
	/* expire() answers the request (and may answer others: a batch
	 * ends as one), which unwatches them: start from the head again */
	while (dl.head && dl.head->dl.at <= now) {
		struct request *r = dl.head;
		deadline_expire_fn expire = r->dl.expire;

		deadline_unwatch(r);
		dl.expired++;
		log_warn_rl(&rl_expired,
			    "%s: no answer within request_timeout (%lld ms); "
			    "answered timeout",
			    r->spec->name, (long long)(dl.timeout / 1000));
		expire(r);
	}
	deadline_arm();
}

int deadline_setup(struct event_base *base, usec_t timeout)
{
	dl.timeout = timeout;
	dl.timer = evtimer_new(base, deadline_fire, NULL);
	return dl.timer ? 0 : -1;
}

void deadline_reconfigure(usec_t timeout)
{
	dl.timeout = timeout;
}

void deadline_cleanup(void)
{
	while (dl.head)
		deadline_unwatch(dl.head);
	if (dl.timer)
		event_free(dl.timer);
	dl.timer = NULL;
}

void deadline_watch(struct request *r, deadline_expire_fn expire)
{
	struct request *after;

	if (dl.timeout <= 0 || !dl.timer || r->dl.on)
		return;
	r->dl.at = r->started + dl.timeout;
	r->dl.expire = expire;
	r->dl.on = true;
	/* from the tail back: after a reload shortened the timeout, a new
	 * request may be due before older ones */
	for (after = dl.tail; after && after->dl.at > r->dl.at;
	     after = after->dl.prev)
		;
	r->dl.prev = after;
	r->dl.next = after ? after->dl.next : dl.head;
	if (r->dl.next)
		r->dl.next->dl.prev = r;
	else
		dl.tail = r;
	if (after)
		after->dl.next = r;
	else
		dl.head = r;
	if (dl.head == r)
		deadline_arm();
}

void deadline_unwatch(struct request *r)
{
	if (!r->dl.on)
		return;
	if (r->dl.prev)
		r->dl.prev->dl.next = r->dl.next;
	else
		dl.head = r->dl.next;
	if (r->dl.next)
		r->dl.next->dl.prev = r->dl.prev;
	else
		dl.tail = r->dl.prev;
	r->dl.prev = r->dl.next = NULL;
	r->dl.on = false;
	/* the timer stays armed for the old head: when it fires early it
	 * re-arms for the new one (no timer work per request) */
}

uint64_t deadline_expired_count(void)
{
	return dl.expired;
}
