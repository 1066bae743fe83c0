/*
 * budget.h - one memory budget for every client's buffered bytes.
 *
 * Each client's input buffer, unsent output and the requests it has in
 * flight are charged here; server.c asks budget_fits() before a buffer
 * grows and, when it does not fit, cuts off the clients that hold the
 * most (half-sent frames, unread answers) until it does.  Pure
 * accounting: no I/O, no clients.
 */
#ifndef CONVD_BUDGET_H
#define CONVD_BUDGET_H

#include "common.h"

/* limit: bytes, 0 = no budget. */
void budget_set_limit(size_t limit);
size_t budget_limit(void);

/* Charges (delta > 0) or gives back (delta < 0) bytes. */
void budget_charge(int64_t delta);

/* Whether `more` bytes would stay within the budget. */
bool budget_fits(size_t more);

/* A client was cut off to make room. */
void budget_note_cutoff(void);

struct budget_stats {
	size_t limit, used, peak;
	uint64_t cutoffs;
};

void budget_stats(struct budget_stats *out);

#endif
