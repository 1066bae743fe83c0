/*
 * request.h - one RPC request from the moment it is read to its answer.
 *
 * The layer between the transport (server.c) and everything that answers
 * requests (the store, retention, admin, and any new method's handler):
 * it knows nothing of sockets or of the database.
 *
 * - The transport makes a request from a validated message (request_new)
 *   and hands it to request_dispatch(), which calls the handler convd.c
 *   registered for its method (request_register).
 * - The handler answers it exactly once, now or later: request_result()
 *   then request_finish(), or request_error(), or request_abort() when a
 *   result could not be packed whole.  The answer is staged here, bounded
 *   by [server] max_output_bytes, and handed to the transport in one piece
 *   through the operations it registered (struct request_ops): a response
 *   never reaches a client half made.
 * - A request outlives its client if the client goes away meanwhile: the
 *   answer is then dropped by the transport.
 *
 * Requests of methods that use the database (validate.h: needs_db) are
 * refused `unavailable` while the gate convd.c registered is closed (the
 * schema is not one convd can serve).
 */
#ifndef CONVD_REQUEST_H
#define CONVD_REQUEST_H

#include <stddef.h>

#include <msgpack.h>

#include "common.h"
#include "deadline.h"
#include "lists.h"
#include "rpc_error.h"
#include "validate.h"

/* The transport's connection (server.c); opaque to everyone else. */
struct client;

/* Bytes each request keeps for the state of whoever holds it (query.h's
 * struct query_state lives there): no handler allocates per request. */
#define REQUEST_HOLDER_SPACE 112

struct request;
typedef void (*request_expire_fn)(struct request *r);

struct request {
	struct client *client;
	uint32_t msgid;
	const struct method_spec *spec;
	struct validate_args args;	/* strings point into data[] */
	usec_t started;			/* monotonic */
	/* the queue of whoever holds the request (a batcher, retention) */
	TAILQ_ENTRY(request) link;
	struct deadline_link dl;	/* request_watch */
	request_expire_fn expire;
	union {
		max_align_t align_;
		unsigned char bytes[REQUEST_HOLDER_SPACE];
	} holder;			/* zeroed by request_new */
	size_t data_cap;		/* bytes in data[] */
	char data[];			/* NUL-terminated copies of the strings */
};

TAILQ_HEAD(request_queue, request);

/* What the transport does for the request layer (registered once). */
struct request_ops {
	/*
	 * r has ended (answered, or given up) and its answer, if any, is
	 * staged (request_staged): hand it to r's client, or drop it if the
	 * client is gone, and let go of r's client.  r is freed after.
	 */
	void (*done)(struct request *r);
	/* r's answer could not be packed whole: its client's connection
	 * must close (a half response must never be followed by more). */
	void (*broken)(struct request *r);
};

/* A request handler; it answers r (now or later). */
typedef void (*request_handler_fn)(struct request *r);
/* Whether database methods may run: NULL if so, else why not. */
typedef const char *(*request_gate_fn)(void);

void request_setup(const struct request_ops *ops);
void request_cleanup(void);

/* convd.c, at start: the handler of each method (validate.h's ids). */
void request_register(enum method_id m, request_handler_fn fn);
/* convd.c: the gate of the methods that need the database. */
void request_set_gate(request_gate_fn gate);

/* [server] max_output_bytes: the largest answer. */
void request_set_max_output(size_t bytes);
size_t request_max_output(void);

/*
 * The bytes a request with these arguments holds (what request_new
 * allocates; the transport charges them to its memory budget first).
 */
size_t request_footprint(const struct method_spec *spec,
			 const struct validate_args *args);
/*
 * A request for client c: its string arguments are copied into it (the
 * message's buffer may go).  NULL when out of memory.  It counts as in
 * flight until it ends.
 */
struct request *request_new(struct client *c, uint32_t msgid,
			    const struct method_spec *spec,
			    const struct validate_args *args, usec_t started);
/* Runs r's handler (or answers r when none may run). */
void request_dispatch(struct request *r);
/* Requests in flight (made and not yet ended). */
int request_inflight(void);

/*
 * Starts the response: stages [1, msgid, nil, and returns the packer for
 * the result, which the caller packs, then calls request_finish().
 */
msgpack_packer *request_result(struct request *r);
void request_finish(struct request *r);
/* Answers r with an error (dropping whatever was packed of a result). */
void request_error(struct request *r, enum rpc_error e, const char *fmt, ...)
	CONVD_PRINTF(3, 4);
/*
 * Ends a request whose response could not be packed whole.  When the
 * result went over max_output_bytes, the request gets result_too_large
 * instead (nothing of the result was sent); otherwise its client's
 * connection is closed (ops->broken).
 */
void request_abort(struct request *r, const char *why);

/*
 * Watches r's deadline ([server] request_timeout from r->started):
 * expire(r) is called when it passes, unless r ends first; it must answer
 * r.  Watching again only changes who expires r.
 */
void request_watch(struct request *r, request_expire_fn expire);

/*
 * The staging buffer, for the transport's own answers (refusals, errors
 * for messages that never became requests): pack into
 * request_stage_packer(), take request_staged(), then request_unstage().
 */
msgpack_packer *request_stage_packer(void);
const char *request_staged(size_t *len);
void request_unstage(void);

#endif
