/*
 * client_nb.c - the non-blocking mode: the descriptor and events to watch,
 * the next deadline, convc_process.
 */
#include "client_internal.h"

int convc_fd(const struct convc *c)
{
	return c ? c->fd : -1;
}

bool convc_want_write(const struct convc *c)
{
	return c && !c->broken && c->out_sent < c->out_ready;
}

int convc_events(const struct convc *c)
{
	if (!c)
		return 0;
	return CONVC_EV_READ | (convc_want_write(c) ? CONVC_EV_WRITE : 0);
}

int convc_next_timeout(const struct convc *c)
{
	int64_t first = -1;

	if (!c || c->ncb == 0)
		return -1;
	if (c->broken)
		return 0;	/* convc_process answers the callbacks */
	if (c->ndeadline == 0)
		return -1;
	for (size_t i = 0; i < c->npend; i++)
		if (c->pend[i].cb && c->pend[i].deadline >= 0 &&
		    (first < 0 || c->pend[i].deadline < first))
			first = c->pend[i].deadline;
	return client_io_poll_ms(first);	/* -1 if there is none */
}

/* The connection fails with "timeout" once a callback request is late. */
static int check_deadlines(struct convc *c, struct convc_error *err)
{
	int64_t now = -1;

	if (c->ndeadline == 0)
		return CONVC_OK;
	for (size_t i = 0; i < c->npend; i++) {
		if (!c->pend[i].cb || c->pend[i].deadline < 0)
			continue;
		if (now < 0)
			now = client_io_now_ms();
		if (c->pend[i].deadline <= now)
			return client_err_conn(
				c, err, "timeout",
				"no answer from convd within %d ms",
				c->timeout_ms);
	}
	return CONVC_OK;
}

int convc_process(struct convc *c, int events, struct convc_error *err)
{
	int st = CONVC_OK;

	if (!c)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no connection");
	if (c->dispatching)
		return client_err_in_callback(err, "convc_process");
	if (c->broken) {
		st = client_err_broken(c, err);
	} else {
		if (events & CONVC_EV_READ)
			st = client_io_read(c, false, err);
		/* Write whatever is queued (callbacks may just have queued
		 * requests), whether or not the socket was said writable:
		 * a full socket costs one EAGAIN. */
		if (st == CONVC_OK && c->out_sent < c->out_ready)
			st = client_io_write(c, err);
		if (st == CONVC_OK)
			st = check_deadlines(c, err);
	}
	return client_recv_leave(c, st, err);
}
