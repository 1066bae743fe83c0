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

static inline struct timeval clock_tv(usec_t us)
{
	struct timeval tv = {.tv_sec = us / USEC_PER_SEC,
			     .tv_usec = us % USEC_PER_SEC};
	return tv;
}

#endif
