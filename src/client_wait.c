/*
 * client_wait.c - the blocking calls: convc_wait, convc_wait_any, convc_call.
 */
#include <stdlib.h>

#include "client_internal.h"

/* Hands a queued response to the caller. */
static int deliver(struct convc *c, struct client_queued *q,
		   struct convc_reply *reply, struct convc_error *err)
{
	int status = q->status;

	TAILQ_REMOVE(&c->queue, q, link);
	client_request_remove(c, q->reply.msgid);
	*reply = q->reply;
	if (status != CONVC_OK && err)
		*err = q->err;
	free(q);
	return status;
}

static int wait_loop(struct convc *c, bool any, uint32_t msgid,
		     struct convc_reply *reply, struct convc_error *err)
{
	int64_t deadline = client_io_deadline(c->timeout_ms);
	int st;

	for (;;) {
		struct client_queued *q;

		TAILQ_FOREACH(q, &c->queue, link) {
			if (any || q->reply.msgid == msgid) {
				st = deliver(c, q, reply, err);
				if (st != CONVC_OK)
					reply->result.type = MSGPACK_OBJECT_NIL;
				return st;
			}
		}
		if (c->broken)
			return client_err_broken(c, err);
		st = c->out_sent < c->out_ready
			     ? client_io_flush(c, deadline, err)
			     : client_io_step(c, deadline, err);
		if (st != CONVC_OK)
			return st;
	}
}

static int wait_for(struct convc *c, bool any, uint32_t msgid,
		    struct convc_reply *reply, struct convc_error *err)
{
	const struct client_pending *o;

	if (!c || !reply)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no connection or no reply");
	client_wire_reply_clear(reply);
	if (c->dispatching)
		return client_err_in_callback(err, any ? "convc_wait_any"
						       : "convc_wait");
	if (any ? c->npend == c->ncb
		: !(o = client_request_find(c, msgid)) || o->cb)
		return client_err_fail(
			err, CONVC_ERR_LOCAL, "invalid_argument",
			any ? "no request without a callback is "
			      "outstanding"
			    : "msgid %u is not outstanding (or has a "
			      "callback)",
			msgid);
	return client_recv_leave(c, wait_loop(c, any, msgid, reply, err), err);
}

int convc_wait(struct convc *c, uint32_t msgid, struct convc_reply *reply,
	       struct convc_error *err)
{
	return wait_for(c, false, msgid, reply, err);
}

int convc_wait_any(struct convc *c, struct convc_reply *reply,
		   struct convc_error *err)
{
	return wait_for(c, true, 0, reply, err);
}

int convc_call(struct convc *c, const char *method, const void *params,
	       size_t params_len, struct convc_reply *reply,
	       struct convc_error *err)
{
	uint32_t msgid;
	int st;

	if (reply)
		client_wire_reply_clear(reply);
	if (c && c->dispatching)	/* before anything is queued */
		return client_err_in_callback(err, "convc_call");
	st = convc_send(c, method, params, params_len, &msgid, err);
	if (st != CONVC_OK)
		return st;
	return convc_wait(c, msgid, reply, err);
}
