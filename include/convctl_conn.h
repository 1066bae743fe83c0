/*
 * convctl_conn.h - convctl's connection to convd: which socket, the
 * connect, and how a failed call is reported (message and exit status).
 */
#ifndef CONVD_CONVCTL_CONN_H
#define CONVD_CONVCTL_CONN_H

#include "convctl.h"

/*
 * Connects to convd's socket: -s, else $CONVD_SOCKET, else the [server]
 * socket of -c FILE, else the default; the timeout is -t's, else
 * default_timeout_s (0: none).  Returns an exit status (0: *out is open).
 */
CONVD_WUR int convctl_conn_open(const struct convctl_options *o,
				int default_timeout_s, struct convc **out);

/* Prints the error of a failed call (st, e) and returns its exit status:
 * 1 for convd's refusal, 3 when convd cannot be reached. */
int convctl_conn_report(int st, const struct convc_error *e);

#endif
