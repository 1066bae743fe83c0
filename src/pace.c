/*
 * pace.c - when the pool may open connections (pace.h).
 */
#include <stdlib.h>

#include "pace.h"

usec_t pace_failed(struct pace *p, usec_t now, int backoff_min_ms,
		   int backoff_max_ms)
{
	usec_t b, lo = (usec_t)backoff_min_ms * 1000,
		  hi = (usec_t)backoff_max_ms * 1000;

	p->failures++;
	if (p->failures == 1) {
		p->next_attempt = now;
		return p->next_attempt;
	}
	b = lo << (p->failures - 2 < 16 ? p->failures - 2 : 16);
	if (b > hi || b <= 0)
		b = hi;
	/* half fixed, half random: a fleet does not retry in step */
	p->next_attempt = now + b / 2 + (usec_t)(random() % (b / 2 + 1));
	return p->next_attempt;
}

void pace_connected(struct pace *p)
{
	p->failures = 0;
}

static usec_t pace_full_next(usec_t now)
{
	return now + PACE_FULL_RETRY_MIN_USEC +
	       (usec_t)(random() % (PACE_FULL_RETRY_SPREAD_USEC + 1));
}

usec_t pace_refused(struct pace *p, usec_t now, bool *news)
{
	*news = now >= p->full_until;
	p->full_until = now + PACE_FULL_WINDOW_USEC;
	p->full_retry_at = pace_full_next(now);
	return p->full_retry_at;
}

enum pace_mode pace_mode(const struct pace *p, usec_t now)
{
	if (p->failures > 0 && now < p->next_attempt)
		return PACE_WAIT;
	if (now < p->full_until)
		return now < p->full_retry_at || now < p->hold_until ?
			       PACE_WAIT :
			       PACE_FULL;
	return p->failures > 0 ? PACE_FAILING : PACE_FREE;
}

usec_t pace_full_try(struct pace *p, usec_t now)
{
	p->full_retry_at = pace_full_next(now);
	return p->full_retry_at;
}

bool pace_give_back_due(const struct pace *p, usec_t now)
{
	return now < p->full_until && now >= p->next_give_back;
}

usec_t pace_gave_back(struct pace *p, usec_t now)
{
	p->next_give_back = now + PACE_GIVE_BACK_USEC;
	p->hold_until = now + PACE_HOLD_USEC;
	return p->hold_until;
}
