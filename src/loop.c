/*
 * loop.c - the one policy for arming libevent events (loop.h).
 */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "loop.h"

int loop_arm(struct event *ev, const struct timeval *tv, const char *what)
{
	if (event_add(ev, tv) == 0)
		return 0;
	log_error("cannot arm the %s event (%s)", what,
		  errno ? strerror(errno) : "libevent refused it");
	return -1;
}

int loop_arm_usec(struct event *ev, usec_t usec, const char *what)
{
	struct timeval tv;

	if (usec < 0)
		usec = 0;
	tv.tv_sec = (time_t)(usec / USEC_PER_SEC);
	tv.tv_usec = (suseconds_t)(usec % USEC_PER_SEC);
	return loop_arm(ev, &tv, what);
}
