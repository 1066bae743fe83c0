/*
 * client_recv.c - responses: each complete frame decoded and handed to its
 * callback at once or queued for convc_wait; callbacks and the deferred
 * close.
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

/* Runs a callback; the connection may not do I/O meanwhile. */
static void run_callback(struct convc *c, convc_callback cb, void *arg,
			 int status, const struct convc_reply *reply,
			 const struct convc_error *e)
{
	c->dispatching++;
	cb(c, status, reply, e, arg);
	c->dispatching--;
}

/*
 * Answers every outstanding callback request with the connection's
 * failure (c->broken is set, so callbacks cannot queue new ones).
 */
void client_recv_fail_callbacks(struct convc *c)
{
	while (c->ncb > 0) {
		struct convc_reply r;
		convc_callback cb = NULL;
		void *arg = NULL;
		struct convc_error e = c->broken_err;

		client_wire_reply_clear(&r);
		for (size_t i = 0; i < c->npend; i++) {
			if (c->pend[i].cb) {
				cb = c->pend[i].cb;
				arg = c->pend[i].arg;
				r.msgid = c->pend[i].msgid;
				break;
			}
		}
		if (!cb) {
			c->ncb = 0;	/* cannot happen: ncb counts them */
			break;
		}
		client_request_remove(c, r.msgid);
		c->ncb--;
		run_callback(c, cb, arg, CONVC_ERR_CONN, &r, &e);
	}
}

/*
 * The end of every library call that does I/O: callbacks of a failed
 * connection are answered, and a connection closed from a callback is
 * freed (the call then fails with "closed").
 */
int client_recv_leave(struct convc *c, int st, struct convc_error *err)
{
	if (c->broken && c->ncb > 0)
		client_recv_fail_callbacks(c);
	if (c->close_pending) {
		client_conn_destroy(c);
		return client_err_fail(
			err, CONVC_ERR_CONN, "closed",
			"the connection was closed by a callback");
	}
	return st;
}

/*
 * Answers the callback request msgid (outstanding, with a callback): with
 * result (CONVC_OK) or e (CONVC_ERR_DAEMON).
 */
static int dispatch(struct convc *c, uint32_t msgid, int status,
		    const msgpack_object *result, const struct convc_error *e,
		    struct convc_error *err)
{
	struct client_pending *o = client_request_find(c, msgid);
	convc_callback cb = o->cb;
	void *arg = o->arg;
	struct convc_reply r;

	client_request_remove(c, msgid);
	c->ncb--;
	client_wire_reply_clear(&r);
	r.msgid = msgid;
	if (status == CONVC_OK)
		r.result = *result;
	run_callback(c, cb, arg, status, &r, e);
	if (c->close_pending)
		return client_err_conn(
			c, err, "closed",
			"the connection was closed by a callback");
	return CONVC_OK;
}

/*
 * Decodes one complete frame and hands its response over: to its
 * callback at once, or to the queue for convc_wait.  With `owned` the
 * function takes the frame over (malloc'd) and decodes it into a zone of
 * its own, which a queued reply keeps.  Otherwise the frame is borrowed
 * from the input buffer, which only a callback request may use: it is
 * decoded into the connection's zone, emptied when the callback returns,
 * so answering a callback allocates nothing once the zone has grown (a
 * queued reply must own its bytes: the frame is then copied).
 * Notifications from the daemon are ignored.
 */
static int handle_frame(struct convc *c, char *frame, size_t len, bool owned,
			struct convc_error *err)
{
	msgpack_zone *zone = NULL;	/* owned: the reply's */
	msgpack_object decoded;
	enum client_decode_result dr;
	const msgpack_object *root = &decoded, *el;
	struct client_queued *q;
	uint32_t msgid;
	struct client_pending *o;

#define DROP_FRAME()                                    \
	do {                                            \
		if (owned) {                            \
			if (zone)                       \
				msgpack_zone_free(zone); \
			free(frame);                    \
		} else if (c->zone) {                   \
			msgpack_zone_clear(c->zone);    \
		}                                       \
	} while (0)

	if (!owned) {
		size_t hlen;
		msgpack_object res;

		/* the common answer, a scalar for a callback: no decoder */
		if (client_wire_peek_msgid((const unsigned char *)frame, len,
					   &msgid, &hlen) &&
		    (o = client_request_find(c, msgid)) && o->cb &&
		    client_wire_scalar((const unsigned char *)frame, len, hlen,
				       &res))
			return dispatch(c, msgid, CONVC_OK, &res, NULL, err);
	}
	dr = client_decode(frame, len, owned ? &zone : &c->zone, &decoded);
	if (dr != CLIENT_DECODE_OK) {
		DROP_FRAME();
		if (dr == CLIENT_DECODE_NOMEM)
			return client_err_conn(
				c, err, "no_memory",
				"out of memory reading a response");
		if (dr == CLIENT_DECODE_DEEP)
			return client_err_conn(
				c, err, "protocol",
				"a response nested deeper than %d levels",
				CLIENT_DECODE_MAX_DEPTH);
		return client_err_conn(c, err, "protocol",
				       "cannot decode a response");
	}
	el = root->type == MSGPACK_OBJECT_ARRAY ? root->via.array.ptr : NULL;
	if (el && root->via.array.size == 3 &&
	    el[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    el[0].via.u64 == 2) {
		DROP_FRAME();	/* a notification */
		return CONVC_OK;
	}
	if (!el || root->via.array.size != 4 ||
	    el[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    el[0].via.u64 != 1) {
		DROP_FRAME();
		return client_err_conn(
			c, err, "protocol",
			"the daemon sent something that is not a "
			"response");
	}
	if (el[1].type == MSGPACK_OBJECT_NIL &&
	    el[2].type != MSGPACK_OBJECT_NIL) {
		/* An error about the connection as a whole (broken envelope,
		 * too many clients): nothing can be matched to it. */
		struct convc_error e;

		client_wire_error(&el[2], &e);
		DROP_FRAME();
		return client_err_conn(c, err, e.code, "%s", e.message);
	}
	if (!client_wire_u32(&el[1], &msgid)) {
		DROP_FRAME();
		return client_err_conn(c, err, "protocol",
				       "response with a bad msgid");
	}
	o = client_request_find(c, msgid);
	if (!o || o->received) {
		DROP_FRAME();
		return client_err_conn(c, err, "protocol",
				       "response for msgid %u, which is not "
				       "outstanding",
				       msgid);
	}
	if (o->cb) {
		struct convc_error e;
		int st;

		if (el[2].type != MSGPACK_OBJECT_NIL) {
			client_wire_error(&el[2], &e);
			st = dispatch(c, msgid, CONVC_ERR_DAEMON, NULL, &e,
				      err);
		} else {
			st = dispatch(c, msgid, CONVC_OK, &el[3], NULL, err);
		}
		DROP_FRAME();
		return st;
	}
	if (!owned) {
		/* A queued reply keeps its frame: take a copy (rare: the
		 * caller borrows frames for callback requests only). */
		char *copy = malloc(len);

		DROP_FRAME();
		if (!copy)
			return client_err_conn(
				c, err, "no_memory",
				"out of memory reading a response");
		memcpy(copy, frame, len);
		return handle_frame(c, copy, len, true, err);
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		DROP_FRAME();
		return client_err_conn(c, err, "no_memory",
				       "out of memory queueing a response");
	}
	q->reply.msgid = msgid;
	if (el[2].type != MSGPACK_OBJECT_NIL) {
		q->status = CONVC_ERR_DAEMON;
		client_wire_error(&el[2], &q->err);
		q->reply.result.type = MSGPACK_OBJECT_NIL;
		DROP_FRAME();
	} else {
		q->status = CONVC_OK;
		q->reply.result = el[3];
		q->reply.priv_frame = frame;
		q->reply.priv_zone = zone;	/* NULL: no containers */
	}
	o->received = true;
	TAILQ_INSERT_TAIL(&c->queue, q, link);
	return CONVC_OK;
#undef DROP_FRAME
}

/* Frames and handles every complete response in the input buffer. */
int client_recv_input(struct convc *c, struct convc_error *err)
{
	for (;;) {
		size_t avail = c->in_len - c->in_start;
		enum client_wire_scan_result r;
		const struct client_pending *o;
		char *frame;
		size_t len, hlen;
		uint32_t msgid;
		int st;

		if (avail == 0)
			return CONVC_OK;
		r = client_wire_scan((const unsigned char *)c->in + c->in_start,
				     avail, c->max_response, &c->scan);
		if (r == CLIENT_WIRE_MORE)
			return CONVC_OK;
		if (r == CLIENT_WIRE_BAD)
			return client_err_conn(
				c, err, "protocol",
				"the daemon sent bytes that are not "
				"msgpack");
		if (r == CLIENT_WIRE_TOO_LARGE)
			return client_err_conn(c, err, "protocol",
					       "response larger than %zu bytes",
					       c->max_response);
		len = c->scan.pos;
		c->scan.pos = 0;
		c->scan.need = 1;
		frame = c->in + c->in_start;
		if (client_wire_peek_msgid((const unsigned char *)frame, len,
					   &msgid, &hlen) &&
		    (o = client_request_find(c, msgid)) && o->cb) {
			/* Answered in place: nothing reads into the buffer
			 * while the callback runs. */
			c->in_start += len;
			st = handle_frame(c, frame, len, false, err);
			if (c->in_start == c->in_len)
				c->in_start = c->in_len = 0;
		} else if (c->in_start == 0 && len == c->in_len) {
			/* The whole buffer is this frame: hand it over. */
			c->in = NULL;
			c->in_len = c->in_cap = 0;
			st = handle_frame(c, frame, len, true, err);
		} else {
			char *copy = malloc(len);

			if (!copy)
				return client_err_conn(
					c, err, "no_memory",
					"out of memory reading a "
					"response");
			memcpy(copy, frame, len);
			c->in_start += len;
			if (c->in_start == c->in_len)
				c->in_start = c->in_len = 0;
			st = handle_frame(c, copy, len, true, err);
		}
		if (st != CONVC_OK)
			return st;
	}
}
