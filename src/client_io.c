/*
 * client_io.c - libconvclient's transport: the socket's non-blocking reads and
 * writes, each wait a poll(2) bounded by the call's deadline.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "client_internal.h"

#define READ_CHUNK ((size_t)64 * 1024)

int64_t client_io_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t client_io_deadline(int timeout_ms)
{
	return timeout_ms > 0 ? client_io_now_ms() + timeout_ms : -1;
}

/* poll(2) timeout until deadline: -1 for none, 0 if it has passed. */
int client_io_poll_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - client_io_now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* Makes room for READ_CHUNK more bytes in the input buffer. */
static int in_reserve(struct convc *c, struct convc_error *err)
{
	if (c->in_start > 0 &&
	    (c->in_start == c->in_len || c->in_cap - c->in_len < READ_CHUNK)) {
		memmove(c->in, c->in + c->in_start, c->in_len - c->in_start);
		c->in_len -= c->in_start;
		c->in_start = 0;
	}
	if (c->in_cap - c->in_len < READ_CHUNK) {
		size_t cap = c->in_cap ? c->in_cap : READ_CHUNK;
		char *p;

		while (cap - c->in_len < READ_CHUNK)
			cap *= 2; /* in_len <= max_response + READ_CHUNK */
		p = realloc(c->in, cap);
		if (!p)
			return client_err_conn(
				c, err, "no_memory",
				"out of memory reading a response");
		c->in = p;
		c->in_cap = cap;
	}
	return CONVC_OK;
}

/*
 * Reads what the socket has (non-blocking) and handles the complete
 * responses: until the socket would block, or a read that does not fill
 * the space offered (the socket was drained), or once only with `once`.
 */
int client_io_read(struct convc *c, bool once, struct convc_error *err)
{
	for (;;) {
		ssize_t n;
		size_t room;
		int st = in_reserve(c, err);

		if (st != CONVC_OK)
			return st;
		room = c->in_cap - c->in_len;
		n = recv(c->fd, c->in + c->in_len, room, MSG_DONTWAIT);
		if (n == 0)
			return client_err_conn(c, err, "closed",
					       "convd closed the connection");
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return CONVC_OK;
			return client_err_conn(c, err, "closed", "read: %s",
					       strerror(errno));
		}
		c->in_len += (size_t)n;
		st = client_recv_input(c, err);
		if (st != CONVC_OK || once || (size_t)n < room)
			return st;
	}
}

/* Writes what the socket takes (non-blocking). */
int client_io_write(struct convc *c, struct convc_error *err)
{
	while (c->out_sent < c->out_ready) {
		ssize_t n = send(c->fd, c->out + c->out_sent,
				 c->out_ready - c->out_sent,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n >= 0) {
			c->out_sent += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		if (errno == EPIPE || errno == ECONNRESET) {
			/* convd may have said why before it closed (e.g.
			 * "overloaded"): that reason, if it is there */
			int st = client_io_read(c, false, err);

			if (st != CONVC_OK)
				return st;
			return client_err_conn(c, err, "closed",
					       "convd closed the connection");
		}
		return client_err_conn(c, err, "closed", "write: %s",
				       strerror(errno));
	}
	if (c->out_sent == c->out_ready && !c->building) {
		c->out_sent = c->out_ready = c->out_len = 0;
	} else if (c->out_sent == c->out_ready && c->out_sent > 0) {
		/* Keep the request being built, drop what was sent. */
		memmove(c->out, c->out + c->out_sent, c->out_len - c->out_sent);
		c->out_len -= c->out_sent;
		c->req_start -= c->out_sent;
		c->params_start -= c->out_sent;
		c->out_ready = c->out_sent = 0;
	}
	return CONVC_OK;
}

/*
 * Waits once for the socket (readable, and writable if there is something
 * to write) and does the I/O it allows.
 */
int client_io_step(struct convc *c, int64_t deadline, struct convc_error *err)
{
	struct pollfd pfd;
	int n, st;

	pfd.fd = c->fd;
	pfd.events = POLLIN;
	if (c->out_sent < c->out_ready)
		pfd.events |= POLLOUT;
	pfd.revents = 0;
	n = poll(&pfd, 1, client_io_poll_ms(deadline));
	if (n < 0) {
		if (errno == EINTR)
			return CONVC_OK;
		return client_err_conn(c, err, "closed", "poll: %s",
				       strerror(errno));
	}
	if (n == 0)
		return client_err_conn(c, err, "timeout",
				       "no answer from convd within %d ms",
				       c->timeout_ms);
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
		st = client_io_read(c, true, err);
		if (st != CONVC_OK)
			return st;
	}
	if (pfd.revents & POLLOUT) {
		st = client_io_write(c, err);
		if (st != CONVC_OK)
			return st;
	}
	return CONVC_OK;
}

int client_io_flush(struct convc *c, int64_t deadline, struct convc_error *err)
{
	int st;

	if (c->out_sent < c->out_ready) {
		/* Try at once: usually the socket takes it all. */
		st = client_io_write(c, err);
		if (st != CONVC_OK)
			return st;
	}
	while (c->out_sent < c->out_ready) {
		st = client_io_step(c, deadline, err);
		if (st != CONVC_OK)
			return st;
	}
	return CONVC_OK;
}

int convc_flush(struct convc *c, struct convc_error *err)
{
	if (!c)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no connection");
	if (c->dispatching)
		return client_err_in_callback(err, "convc_flush");
	if (c->broken)
		return client_recv_leave(c, client_err_broken(c, err), err);
	return client_recv_leave(
		c, client_io_flush(c, client_io_deadline(c->timeout_ms), err),
		err);
}
