/*
 * budget.c - one memory budget for every client's buffered bytes (see
 * budget.h).
 */
#include "budget.h"

static struct budget_stats bud;

void budget_set_limit(size_t limit)
{
	bud.limit = limit;
}

size_t budget_limit(void)
{
	return bud.limit;
}

void budget_charge(int64_t delta)
{
	if (delta < 0 && (size_t)-delta > bud.used)
		bud.used = 0;	/* unreachable: every charge is given back */
	else
		bud.used = (size_t)((int64_t)bud.used + delta);
	if (bud.used > bud.peak)
		bud.peak = bud.used;
}

bool budget_fits(size_t more)
{
	return bud.limit == 0 ||
	       (bud.used <= bud.limit && more <= bud.limit - bud.used);
}

void budget_note_cutoff(void)
{
	bud.cutoffs++;
}

void budget_stats(struct budget_stats *out)
{
	*out = bud;
}
