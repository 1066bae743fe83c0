/*
 * hostlist.h - libpq's multi-host connection parameters (host, hostaddr
 * and port as comma-separated lists): which host an attempt is on, and
 * the parameters of an attempt on the hosts after it.  Pure: no I/O, no
 * state; the caller gets the parameters from PQconninfo and passes the
 * result to PQconnectStartParams.
 *
 * libpq tries the hosts of a list in order (or, with
 * load_balance_hosts=random, shuffled), but only its blocking
 * PQconnectdb times each host out on its own.  multihost.h uses this to
 * start an attempt again without a host that hung.
 */
#ifndef CONVD_HOSTLIST_H
#define CONVD_HOSTLIST_H

#include <libpq-fe.h>

#include "common.h"

/* Items of one list at most (more: no plan is made). */
#define HOSTLIST_MAX 64
/* Bytes of a host label: "host:port" or "host:port (hostaddr)". */
#define HOSTLIST_LABEL_MAX 300

/* The parameters of the next attempt: keys/vals NULL-terminated, valid
 * until hostlist_next_free(). */
struct hostlist_next {
	const char **keys, **vals;
	char hosts[4096], addrs[4096], ports[1024];
};

/*
 * Fills out with opts (PQconninfo of the current attempt, a URL already
 * expanded) where host, hostaddr and port are cut to the hosts after the
 * current one (now_host, now_port, now_addr: PQhost, PQport, PQhostaddr),
 * or, with others or load_balance_hosts=random, to every host but the
 * current one, in list order (libpq shuffles them anew).  Returns -1
 * (out empty) when there is no other host, when the current one cannot
 * be told apart, when the lists disagree in length, or when a host left
 * would fall back on a default (an empty item: libpq would fill it from
 * the environment the second time, not the first).
 */
CONVD_WUR int hostlist_next(const PQconninfoOption *opts, const char *now_host,
			    const char *now_port, const char *now_addr,
			    bool others, struct hostlist_next *out);
void hostlist_next_free(struct hostlist_next *out);

/* "host:port" with " (hostaddr)" when one is given: what the log and
 * the per-host memory (multihost.h) name a host by. */
void hostlist_label(char *out, size_t len, const char *host, const char *port,
		    const char *addr);

#endif
