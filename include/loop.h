/*
 * loop.h - the one policy for arming libevent events.
 *
 * Events are embedded in their owners (event_assign / evtimer_assign on a
 * struct event member), never allocated one by one.  Every (re-)arm goes
 * through loop_arm(), which logs the failure with what the event was for
 * and returns -1: the caller then fails only what the event served (closes
 * that client, fails that request, or gives up that timer with a logged
 * reason), never the daemon.
 */
#ifndef CONVD_LOOP_H
#define CONVD_LOOP_H

#include <event2/event.h>

#include "common.h"
#include "clock.h"

/*
 * Adds ev with the timeout tv (NULL: none).  what names the event in the
 * log ("client read", "retention timer").
 */
CONVD_WUR int loop_arm(struct event *ev, const struct timeval *tv,
		       const char *what);

/* loop_arm() with a timeout of usec microseconds. */
CONVD_WUR int loop_arm_usec(struct event *ev, usec_t usec, const char *what);

#endif
