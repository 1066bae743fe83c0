/*
 * cancel.c - cancel requests sent off the event loop (see cancel.h).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cancel.h"

static atomic_int cancel_running;

static void *cancel_thread(void *arg)
{
	PGcancel *c = arg;
	char err[256];

	/* nothing to do when it fails: the connection is closed anyway */
	(void)PQcancel(c, err, sizeof(err));
	PQfreeCancel(c);
	atomic_fetch_sub(&cancel_running, 1);
	return NULL;
}

void cancel_send(PGconn *pg)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t t;
	PGcancel *c;
	int rc;

	if (atomic_fetch_add(&cancel_running, 1) >= CANCEL_MAX_THREADS) {
		atomic_fetch_sub(&cancel_running, 1);
		return;
	}
	c = PQgetCancel(pg);	/* copies the address and key: no I/O */
	if (!c || pthread_attr_init(&attr) != 0) {
		if (c)
			PQfreeCancel(c);
		atomic_fetch_sub(&cancel_running, 1);
		return;
	}
	(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	(void)pthread_attr_setstacksize(&attr, 256 * 1024);
	/* signals stay with the loop's thread: the helper blocks them all */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&t, &attr, cancel_thread, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		PQfreeCancel(c);
		atomic_fetch_sub(&cancel_running, 1);
	}
	pthread_attr_destroy(&attr);
}
