/*
 * client_internal.h - libconvclient's insides, shared by its files
 * (src/client_*.c); nothing here is exported (the library is built with
 * -fvisibility=hidden and exports only the convc_* API of
 * include/convd/client.h).
 *
 * How the library works:
 *
 * - The socket is non-blocking; every wait is a poll(2) bounded by the
 *   deadline of the current call (client_io.c).
 * - Requests are packed into `out`; `out_ready` marks the end of the last
 *   complete request (a request under construction is never sent)
 *   (client_request.c).
 * - Responses are read into `in`.  client_wire_scan() finds where one
 *   msgpack object ends with two counters (position, values still
 *   expected), so the scan resumes where it stopped when more bytes
 *   arrive and never recurses.  A complete frame is decoded by
 *   client_decode() into msgpack-c objects (strings point into the frame,
 *   which the reply keeps; any depth up to CLIENT_DECODE_MAX_DEPTH; each
 *   array and map knows its bytes in the frame) and queued
 *   (client_recv.c).
 * - Every request id is kept in `outstanding` until its response has been
 *   handed to the caller; a response for an id that is not outstanding is
 *   a protocol error.
 * - A request with a completion callback (non-blocking mode, client_nb.c)
 *   is answered as soon as its frame is complete: the frame is decoded
 *   where it lies in the input buffer (client_wire_peek_msgid() tells
 *   which request it is before anything is copied), the callback runs,
 *   and the decoded objects are freed when it returns.  Callbacks may
 *   queue requests but not do I/O (`dispatching`); convc_close from a
 *   callback is deferred (`close_pending`) to the end of the library call
 *   that ran it, which is the only place a connection is freed
 *   (client_recv_leave()).
 * - Blocking calls (client_wait.c) wait for their own response; the typed
 *   calls (client_methods.c, client_retry.c) pack named arguments and
 *   check the result's shape through client_call.c.
 */
#ifndef CONVD_CLIENT_INTERNAL_H
#define CONVD_CLIENT_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/queue.h>

#include "convd/client.h"

/* A response waiting for convc_wait / convc_wait_any. */
struct client_queued {
	TAILQ_ENTRY(client_queued) link;
	int status;			/* CONVC_OK or CONVC_ERR_DAEMON */
	struct convc_error err;		/* CONVC_ERR_DAEMON */
	struct convc_reply reply;
};

struct client_pending {
	uint32_t msgid;
	bool received;			/* its response is in the queue */
	convc_callback cb;		/* NULL: answered through convc_wait */
	void *arg;
	int64_t deadline;		/* callback requests: monotonic ms, or -1 */
};

/* client_wire_scan()'s progress through one object. */
struct client_wire_scan_state {
	size_t pos;			/* bytes of the object scanned so far */
	uint64_t need;			/* values still to be read */
};

struct convc {
	int fd;
	int timeout_ms;
	char *path;			/* for a reconnect (convc_set_retries) */
	int retries;			/* add_message: keys and retries */
	size_t max_response;
	bool broken;
	struct convc_error broken_err;	/* why the connection failed */

	/* Output: [0, out_sent) written, [out_sent, out_ready) complete
	 * requests to write, [out_ready, out_len) the request being built. */
	char *out;
	size_t out_len, out_cap, out_sent, out_ready;
	bool building;
	bool pack_too_large;
	bool pack_nomem;
	size_t req_start;
	size_t params_start;
	uint32_t req_msgid;
	msgpack_packer pk;

	/* Input: [in_start, in_len) received and not yet framed. */
	char *in;
	size_t in_start, in_len, in_cap;
	struct client_wire_scan_state scan;

	uint32_t next_msgid;
	struct client_pending *pend;
	size_t npend, pend_cap;
	size_t ncb;			/* outstanding requests with a callback */
	size_t ndeadline;		/* ... of which have a deadline */

	TAILQ_HEAD(, client_queued) queue;	/* in arrival order */

	int dispatching;		/* a callback is running */
	bool close_pending;		/* convc_close was called from one */
	msgpack_zone *zone;		/* decoded callback replies, reused */
};

/* ------------------------------------------------------------------ */
/* client_err.c: errors */

/* Copies at most size-1 bytes of s[0..len) (stopping at a NUL) without
 * cutting a UTF-8 sequence in two. */
void client_err_copy(char *dst, size_t size, const char *s, size_t len);

/* Fills err (when not NULL) with code and the formatted message; returns
 * status. */
int client_err_fail(struct convc_error *err, int status, const char *code,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The connection is unusable from now on: c->broken_err (and err) say
 * why; returns CONVC_ERR_CONN. */
int client_err_conn(struct convc *c, struct convc_error *err,
		    const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The error to report for a call on a connection that failed earlier. */
int client_err_broken(const struct convc *c, struct convc_error *err);

/* Refuses a call that does I/O while a callback runs. */
int client_err_in_callback(struct convc_error *err, const char *what);

/* ------------------------------------------------------------------ */
/* client_wire.c: msgpack framing and decoding (pure) */

enum client_wire_scan_result {
	CLIENT_WIRE_DONE,		/* st->pos is the object's size */
	CLIENT_WIRE_MORE,		/* valid so far, need more bytes */
	CLIENT_WIRE_BAD,		/* 0xc1, never valid msgpack */
	CLIENT_WIRE_TOO_LARGE,		/* would exceed the limit */
};

/*
 * Continues scanning one object in p[0..avail) from *st (start with
 * {0, 1}).  limit bounds the object's size: every value still expected
 * takes at least one byte, so a container announcing more values than
 * the limit leaves room for is refused at once.
 */
enum client_wire_scan_result
client_wire_scan(const unsigned char *p, size_t avail, size_t limit,
		 struct client_wire_scan_state *st);

/* An empty reply (result nil). */
void client_wire_reply_clear(struct convc_reply *r);

/* The daemon's error object -> e. */
void client_wire_error(const msgpack_object *o, struct convc_error *e);

/* A positive integer that fits 32 bits. */
bool client_wire_u32(const msgpack_object *o, uint32_t *v);

/* An integer that fits int64_t; false for NULL or anything else. */
bool client_wire_int(const msgpack_object *o, int64_t *v);

/* A malloc'd NUL-terminated copy of a string object (its length in
 * *lenp); NULL for another type or when out of memory. */
char *client_wire_strdup(const msgpack_object *o, size_t *lenp);

/*
 * The msgid of a complete response frame [1, msgid, ...] read from its
 * first values (any integer format), without decoding the rest, and in
 * *hlen the size of those bytes; false if the frame does not start that
 * way.
 */
bool client_wire_peek_msgid(const unsigned char *p, size_t len,
			    uint32_t *msgid, size_t *hlen);

/*
 * The result of a complete frame [1, msgid, nil, RESULT] whose first hlen
 * bytes are the array, type and msgid, when RESULT is nil, a boolean, an
 * integer or a string: decoded as client_decode() would (a string points
 * into the frame) but without a zone.  False for anything else (an
 * error, a container, a float, an extension), left to client_decode().
 */
bool client_wire_scalar(const unsigned char *p, size_t len, size_t hlen,
			msgpack_object *o);

/* ------------------------------------------------------------------ */
/* client_decode.c: a frame decoded into msgpack-c objects (pure) */

/* Deepest nesting of arrays and maps in a response: 8 times convd's
 * limit for structured values (64), so a response carries any value convd
 * accepts; beyond it a frame is refused (memory stays O(depth)). */
#define CLIENT_DECODE_MAX_DEPTH 512

enum client_decode_result {
	CLIENT_DECODE_OK,
	CLIENT_DECODE_BAD,		/* not one msgpack value */
	CLIENT_DECODE_DEEP,		/* deeper than CLIENT_DECODE_MAX_DEPTH */
	CLIENT_DECODE_NOMEM,
};

/*
 * Decodes the msgpack value frame[0..len) (exactly one) into *root, as
 * msgpack-c's unpacker would: strings, bins and extensions point into the
 * frame, arrays and maps are allocated in *zone (made when the first one
 * is met, when *zone is NULL), each with its span (client_decode_span).
 * Iterative, at most CLIENT_DECODE_MAX_DEPTH levels.  On failure *root is
 * unusable; what went into the zone is freed with the zone.
 */
CONVC_WUR enum client_decode_result
client_decode(const char *frame, size_t len, msgpack_zone **zone,
	      msgpack_object *root);

struct mpread_val;

/* The object of a scalar (not an array or map) read by mpread_next. */
void client_decode_scalar(msgpack_object *o, const struct mpread_val *v);

/*
 * The exact bytes of o, an array or a map decoded by client_decode (its
 * frame must still be there), and their size in *len; NULL for another
 * type (or an object that client_decode did not make, as far as it can
 * tell: never pass one of those).
 */
const void *client_decode_span(const msgpack_object *o, size_t *len);

/* ------------------------------------------------------------------ */
/* client_request.c: building and queueing requests */

/* The outstanding request msgid, or NULL. */
static inline struct client_pending *client_request_find(struct convc *c,
							uint32_t msgid)
{
	for (size_t i = 0; i < c->npend; i++)
		if (c->pend[i].msgid == msgid)
			return &c->pend[i];
	return NULL;
}

/* Forgets the outstanding request msgid. */
void client_request_remove(struct convc *c, uint32_t msgid);

/* Starts a request; *pk receives the packer for the params, which
 * convc_request_end / convc_request_end_cb finish. */
int client_request_begin(struct convc *c, const char *method,
			 uint32_t *msgid, msgpack_packer **pk,
			 struct convc_error *err);

/* ------------------------------------------------------------------ */
/* client_io.c: the socket: time, reads, writes, waits */

/* The monotonic clock in milliseconds. */
int64_t client_io_now_ms(void);

/* The deadline timeout_ms from now; -1 (none) for timeout_ms <= 0. */
int64_t client_io_deadline(int timeout_ms);

/* poll(2) timeout until deadline: -1 for none, 0 if it has passed. */
int client_io_poll_ms(int64_t deadline);

/*
 * Reads what the socket has (non-blocking) and handles the complete
 * responses: until the socket would block, or a read that does not fill
 * the space offered (the socket was drained), or once only with `once`.
 */
int client_io_read(struct convc *c, bool once, struct convc_error *err);

/* Writes what the socket takes (non-blocking). */
int client_io_write(struct convc *c, struct convc_error *err);

/*
 * Waits once for the socket (readable, and writable if there is something
 * to write) and does the I/O it allows.
 */
int client_io_step(struct convc *c, int64_t deadline,
		   struct convc_error *err);

/* Writes every complete request, waiting until deadline. */
int client_io_flush(struct convc *c, int64_t deadline,
		    struct convc_error *err);

/* ------------------------------------------------------------------ */
/* client_recv.c: responses: framing, callbacks, the queue */

/* Frames and handles every complete response in the input buffer. */
int client_recv_input(struct convc *c, struct convc_error *err);

/*
 * Answers every outstanding callback request with the connection's
 * failure (c->broken is set, so callbacks cannot queue new ones).
 */
void client_recv_fail_callbacks(struct convc *c);

/*
 * The end of every library call that does I/O: callbacks of a failed
 * connection are answered, and a connection closed from a callback is
 * freed (the call then fails with "closed").  Returns st otherwise.
 */
int client_recv_leave(struct convc *c, int st, struct convc_error *err);

/* ------------------------------------------------------------------ */
/* client_conn.c: connections */

/* Frees c and everything it holds (queued replies too). */
void client_conn_destroy(struct convc *c);

/*
 * A new connection to the same socket in place of c's broken one: only
 * between calls (nothing outstanding, no callbacks), as for a retry.
 */
int client_conn_reconnect(struct convc *c, struct convc_error *err);

/* ------------------------------------------------------------------ */
/* client_call.c: typed calls with named arguments */

/* One named argument: a string, an integer, a boolean or a value packed
 * already (raw); skipped when it is none of them (s and raw NULL). */
struct client_arg {
	const char *key;
	const char *s;
	size_t len;		/* of s; SIZE_MAX: strlen */
	bool is_int;
	int64_t i;		/* the integer, or the boolean */
	const void *raw;	/* one msgpack object, raw_len bytes */
	size_t raw_len;
	bool is_bool;
};

#define CLIENT_ARG_STR(k, v) { (k), (v), SIZE_MAX, false, 0, NULL, 0, false }
#define CLIENT_ARG_STRN(k, v, n) { (k), (v), (n), false, 0, NULL, 0, false }
#define CLIENT_ARG_INT(k, v) { (k), NULL, 0, true, (v), NULL, 0, false }
#define CLIENT_ARG_BOOL(k, v) { (k), NULL, 0, false, (v), NULL, 0, true }
#define CLIENT_ARG_NONE(k) { (k), NULL, 0, false, 0, NULL, 0, false }

/* What a packed value given by the caller must be. */
enum client_mp_kind {
	CLIENT_MP_MAP,			/* a map */
	CLIENT_MP_CONTAINER,		/* an array or a map */
};

/*
 * *a = the packed value p[0..len) under key, after checking that it is
 * exactly one msgpack object of that kind (else "invalid_argument",
 * naming key); p NULL: *a is left out (CLIENT_ARG_NONE).
 */
int client_call_raw_arg(struct client_arg *a, const char *key, const void *p,
			size_t len, enum client_mp_kind kind,
			struct convc_error *err);

/*
 * An argument the caller may leave out: passed with len 0 when NULL, so
 * client_call_named skips it; required ones (CLIENT_ARG_STR) keep
 * SIZE_MAX and are refused when NULL.
 */
static inline struct client_arg client_call_opt_str(const char *key,
						    const char *v)
{
	struct client_arg a = { key, v, v ? SIZE_MAX : 0, false, 0, NULL, 0,
				 false };

	return a;
}

/* [ {key: value, ...} ] -> call -> reply (blocking). */
int client_call_named(struct convc *c, const char *method,
		      const struct client_arg *args, size_t nargs,
		      struct convc_reply *reply, struct convc_error *err);

/* A result of the wrong shape: frees reply, fails the connection with
 * "protocol" ("METHOD: unexpected result (WHAT)"). */
int client_call_shape(struct convc *c, struct convc_reply *reply,
		      struct convc_error *err, const char *method,
		      const char *what);

/* Calls a method whose result is {"deleted": n}. */
int client_call_deleted(struct convc *c, const char *method,
			const struct client_arg *args, size_t nargs,
			int64_t *deleted, struct convc_error *err);

/* An optional integer argument: left out when `present` is false. */
static inline struct client_arg client_call_opt_int(const char *key,
						    bool present, int64_t v)
{
	struct client_arg a = { key, NULL, 0, present, v, NULL, 0, false };

	return a;
}

/*
 * The status of decoding a result for method (st, e): a result of the
 * wrong shape ("protocol") fails the connection; another error is copied
 * to err.
 */
int client_call_decoded(struct convc *c, const char *method, int st,
			const struct convc_error *e, struct convc_error *err);

/* client_call_named for a call that fills *out (out_size bytes, cleared
 * first; NULL is refused). */
int client_call_out(struct convc *c, const char *method,
		    const struct client_arg *args, size_t nargs, void *out,
		    size_t out_size, struct convc_reply *reply,
		    struct convc_error *err);

/* A call whose result is an array of messages. */
int client_call_messages(struct convc *c, const char *method,
			 const struct client_arg *args, size_t nargs,
			 struct convc_message **msgs, size_t *n,
			 struct convc_error *err);

/* ------------------------------------------------------------------ */
/* client_rows.c: messages with every field */

/*
 * A structured value (array or map) as malloc'd msgpack bytes (*len): with
 * `exact`, o was decoded by this library (a reply's) and the bytes are
 * those convd sent; else o is packed again by msgpack-c.  NULL when out
 * of memory.
 */
void *client_rows_value(const msgpack_object *o, bool exact, size_t *len);

/* A call whose result is an array of messages, as rows. */
int client_rows_call(struct convc *c, const char *method,
		     const struct client_arg *args, size_t nargs,
		     struct convc_row **rows, size_t *n,
		     struct convc_error *err);

/* The rows under key of a map result (get_context, get_messages); a
 * result of the wrong shape fails the connection. */
int client_rows_member(struct convc *c, const char *method,
		       const msgpack_object *result, const char *key,
		       struct convc_row **rows, size_t *n,
		       struct convc_error *err);

/* ------------------------------------------------------------------ */
/* client_retry.c */

/*
 * add_message with args[key_slot] its idempotency_key: with retries on
 * and no key given, a fresh one, and the call sent again on a new
 * connection after a break; the result's id, created_at and duplicate
 * into the pointers that are not NULL.
 */
int client_retry_add(struct convc *c, struct client_arg *args, size_t nargs,
		     size_t key_slot, int64_t *id, int64_t *created_at_usec,
		     bool *duplicate, struct convc_error *err);

#endif
