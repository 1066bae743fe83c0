/*
 * test_pace.c - when the pool may open connections (pace.c): backoff
 * after failed connects, and sharing a full server.
 */
#include <stdlib.h>

#include "pace.h"
#include "tap.h"

#define MS 1000LL

static void test_backoff(void)
{
	struct pace p = {0};
	usec_t now = 1000 * USEC_PER_SEC, at;

	is_int(pace_mode(&p, now), PACE_FREE, "nothing failed: free");
	at = pace_failed(&p, now, 100, 1600);
	is_int(at, now, "the first retry is at once");
	is_int(pace_mode(&p, now), PACE_FAILING,
	       "failing: one attempt at a time");
	for (int n = 2; n <= 8; n++) {
		/* backoff_min doubling from the 2nd failure, up to max */
		long long b = 100 * MS << (n - 2);

		if (b > 1600 * MS)
			b = 1600 * MS;
		at = pace_failed(&p, now, 100, 1600);
		ok(at >= now + b / 2 && at <= now + b,
		   "failure %d: retry in [%lld, %lld] ms (%lld)", n,
		   b / 2 / MS, b / MS, (long long)((at - now) / MS));
		is_int(pace_mode(&p, at - 1), PACE_WAIT,
		       "failure %d: nothing before the retry", n);
		is_int(pace_mode(&p, at), PACE_FAILING,
		       "failure %d: one attempt at the retry", n);
	}
	for (int n = 0; n < 40; n++)
		at = pace_failed(&p, now, 100, 1600);
	ok(at >= now + 800 * MS && at <= now + 1600 * MS,
	   "many failures: still within backoff_max");
	pace_connected(&p);
	is_int(p.failures, 0, "a connection ends the backoff");
	is_int(pace_mode(&p, now), PACE_FREE, "free again");
}

static void test_jitter_spreads(void)
{
	struct pace p = {0};
	usec_t now = 0, first, at;
	bool differ = false;

	(void)pace_failed(&p, now, 1000, 1000);
	first = pace_failed(&p, now, 1000, 1000);
	for (int i = 0; i < 50 && !differ; i++) {
		at = pace_failed(&p, now, 1000, 1000);
		differ = at != first;
	}
	ok(differ, "half of the delay is random: a fleet does not retry "
		   "in step");
}

static void test_full_server(void)
{
	struct pace p = {0};
	usec_t now = 50 * USEC_PER_SEC, at;
	bool news;

	at = pace_refused(&p, now, &news);
	ok(news, "the first refusal is news");
	ok(at >= now + PACE_FULL_RETRY_MIN_USEC &&
		   at <= now + PACE_FULL_RETRY_MIN_USEC +
				 PACE_FULL_RETRY_SPREAD_USEC,
	   "the next try 50 to 250 ms later");
	is_int(p.failures, 0, "a full server is not a failure");
	is_int(pace_mode(&p, now), PACE_WAIT, "nothing before the retry");
	is_int(pace_mode(&p, at), PACE_FULL, "one at a time at the retry");
	at = pace_full_try(&p, at);
	is_int(pace_mode(&p, at - 1), PACE_WAIT, "a try sets the next one");
	(void)pace_refused(&p, now + USEC_PER_SEC, &news);
	ok(!news, "a refusal within the window is not news");
	is_int(pace_mode(&p, now + USEC_PER_SEC + PACE_FULL_WINDOW_USEC),
	       PACE_FREE, "free once the window has passed");
	(void)pace_refused(&p, now + 10 * PACE_FULL_WINDOW_USEC, &news);
	ok(news, "a refusal after the window is news again");
}

static void test_give_back(void)
{
	struct pace p = {0};
	usec_t now = 100 * USEC_PER_SEC, hold;
	bool news;

	ok(!pace_give_back_due(&p, now), "nothing given back unless full");
	(void)pace_refused(&p, now, &news);
	ok(pace_give_back_due(&p, now), "full: one is given back");
	hold = pace_gave_back(&p, now);
	is_int(hold, now + PACE_HOLD_USEC, "the slot is left to others");
	ok(!pace_give_back_due(&p, now + PACE_GIVE_BACK_USEC - 1),
	   "not another within a second");
	ok(pace_give_back_due(&p, now + PACE_GIVE_BACK_USEC),
	   "another a second later");
	is_int(pace_mode(&p, p.full_retry_at > hold ? p.full_retry_at : hold),
	       PACE_FULL, "tries again after the hold");
	is_int(pace_mode(&p, hold - 1), PACE_WAIT, "not during the hold");
	ok(!pace_give_back_due(&p, now + PACE_FULL_WINDOW_USEC),
	   "nothing given back once the window has passed");
}

int main(void)
{
	srandom(1);
	test_backoff();
	test_jitter_spreads();
	test_full_server();
	test_give_back();
	return tap_done();
}
