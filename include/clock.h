/*
 * clock.h - time helpers (header-only).
 */
#ifndef CONVD_CLOCK_H
#define CONVD_CLOCK_H

#include <sys/time.h>
#include <time.h>

#include "common.h"

static inline usec_t clock_mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (usec_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
}

static inline usec_t clock_real_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (usec_t)ts.tv_sec * USEC_PER_SEC + ts.tv_nsec / 1000;
}

/*
 * The daemon's notion of "now": read once per pass of the event loop, at
 * its first use after the wait for events (convd's main loop calls
 * clock_invalidate() before each pass, as PgBouncer does), so every
 * callback of a pass sees the same time, none pays for a clock read of
 * its own, and the time is never the one from before the loop slept.
 */
struct clock_cache {
	usec_t mono, real;
	bool valid;
};
extern struct clock_cache clock_cache;

static inline void clock_tick(void)
{
	clock_cache.mono = clock_mono_usec();
	clock_cache.real = clock_real_usec();
	clock_cache.valid = true;
}

/* Forgets the cached time: the next clock_now() reads the clock. */
static inline void clock_invalidate(void)
{
	clock_cache.valid = false;
}

/* Monotonic and wall-clock time of the current loop pass. */
static inline usec_t clock_now(void)
{
	if (!clock_cache.valid)
		clock_tick();
	return clock_cache.mono;
}

static inline usec_t clock_now_real(void)
{
	if (!clock_cache.valid)
		clock_tick();
	return clock_cache.real;
}

static inline struct timeval clock_tv(usec_t us)
{
	struct timeval tv = {.tv_sec = us / USEC_PER_SEC,
			     .tv_usec = us % USEC_PER_SEC};
	return tv;
}

#endif
