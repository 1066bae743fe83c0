/*
 * server.h - the Unix socket listener and client connections.
 *
 * Each client has a linear input buffer (frames are decoded in place by
 * proto_decode) and an output evbuffer written once per loop pass.  A
 * request is decoded, validated and checked against the access lists,
 * then made into a struct request and dispatched (request.h); the server
 * registers the request layer's operations, through which the answers
 * come back to their clients.
 */
#ifndef CONVD_SERVER_H
#define CONVD_SERVER_H

#include <event2/event.h>

#include "common.h"
#include "config.h"

struct server_stats {
	uint64_t accepted, rejected, closed_errors;
	int clients;
};

CONVD_WUR int server_setup(struct event_base *base,
			   const struct config *cfg, int listen_fd);
/* Reloadable limits and allow-lists. */
CONVD_WUR int server_reconfigure(const struct config *cfg);
/* Stops accepting (graceful shutdown, first step). */
void server_stop_accepting(void);
void server_stats(struct server_stats *out);
/* Closes every client and the listener; removes the socket file. */
void server_cleanup(void);

#endif
