/*
 * server.h - the Unix socket listener and client connections.
 *
 * Each client has a linear input buffer (frames are decoded in place by
 * proto_decode) and an output evbuffer written once per loop pass.  A
 * request is decoded, validated, copied into one allocation (struct
 * request) and handed to methods_dispatch(); whoever completes it calls
 * request_result() + request_finish(), or request_error().  A request
 * outlives its client if the client goes away meanwhile: the answer is
 * then dropped.
 */
#ifndef CONVD_SERVER_H
#define CONVD_SERVER_H

#include <event2/event.h>
#include <msgpack.h>
#include <sys/types.h>

#include "common.h"
#include "config.h"
#include "deadline.h"
#include "pool.h"
#include "validate.h"

enum rpc_error {
	E_INVALID_REQUEST,
	E_NO_SUCH_METHOD,
	E_INVALID_PARAMS,
	E_UNAVAILABLE,
	E_TIMEOUT,
	E_OVERLOADED,
	E_PERMISSION_DENIED,
	E_RESULT_TOO_LARGE,
	E_INTERNAL,
	E_NOT_FOUND,		/* issue 18: not the user's message */
	E_COUNT_
};

const char *rpc_error_code(enum rpc_error e);

struct client;

struct request {
	struct client *client;
	uint32_t msgid;
	const struct method_spec *spec;
	struct method_args args;	/* strings point into data[] */
	usec_t started;			/* monotonic */
	struct pool_waiter waiter;
	struct pool_conn *pc;
	struct request *next;		/* free for the handler's own use */
	void *handler_data;
	unsigned reruns;		/* store.c: a keyed write run again */
	struct deadline_link dl;	/* database requests (deadline.h) */
	char ints[METHOD_MAX_PARAMS][24]; /* PK_INT args as text */
	size_t data_cap;		/* bytes in data[] */
	char data[];			/* NUL-terminated copies */
};

/*
 * Starts the response: packs [1, msgid, nil, and returns the packer for
 * the result, which the caller packs, then calls request_finish().
 */
msgpack_packer *request_result(struct request *r);
void request_finish(struct request *r);
void request_error(struct request *r, enum rpc_error e, const char *fmt, ...)
	CONVD_PRINTF(3, 4);

/*
 * Ends a request whose response could not be packed whole.  When the
 * result went over max_output_bytes, the request gets result_too_large
 * instead (nothing of the result was sent); otherwise its client's
 * connection is closed (a half response must never be followed by more).
 */
void request_abort(struct request *r, const char *why);

/* [server] max_output_bytes: the largest answer. */
size_t request_max_output(void);

/* Whether the request's client may call admin methods. */
bool request_is_admin(const struct request *r);

struct server_stats {
	uint64_t accepted, rejected, closed_errors;
	int clients;
};

CONVD_WUR int server_setup(struct event_base *base,
			   const struct convd_config *cfg, int listen_fd);
/* Reloadable limits and allow-lists. */
CONVD_WUR int server_reconfigure(const struct convd_config *cfg);
/* Stops accepting (graceful shutdown, first step). */
void server_stop_accepting(void);
/* Requests in flight across all clients. */
int server_inflight(void);
void server_stats(struct server_stats *out);
/* Closes every client and the listener; removes the socket file. */
void server_cleanup(void);

#endif
