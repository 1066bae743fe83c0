/*
 * client_conn.c - connections: convc_connect, convc_close, the settings of a
 * connection, the reconnect behind retries.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_internal.h"

#define MIN_MAX_RESPONSE ((size_t)64)

void client_conn_destroy(struct convc *c)
{
	struct client_queued *q;

	while ((q = TAILQ_FIRST(&c->queue))) {
		TAILQ_REMOVE(&c->queue, q, link);
		convc_reply_free(&q->reply);
		free(q);
	}
	if (c->fd >= 0)
		close(c->fd);
	if (c->zone)
		msgpack_zone_free(c->zone);
	free(c->out);
	free(c->in);
	free(c->pend);
	free(c->path);
	free(c);
}

struct convc *convc_connect(const char *path, int timeout_ms,
			    struct convc_error *err)
{
	struct sockaddr_un sa;
	struct convc *c;
	int64_t deadline = client_io_deadline(timeout_ms);
	size_t plen;
	int fd;

	if (!path || !*path) {
		client_err_fail(err, CONVC_ERR_CONN, "connect_failed",
				"no socket path");
		return NULL;
	}
	plen = strlen(path);
	memset(&sa, 0, sizeof(sa));
	if (plen >= sizeof(sa.sun_path)) {
		client_err_fail(err, CONVC_ERR_CONN, "connect_failed",
				"socket path longer than %zu bytes",
				sizeof(sa.sun_path) - 1);
		return NULL;
	}
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, plen + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		client_err_fail(err, CONVC_ERR_CONN, "connect_failed",
				"socket: %s", strerror(errno));
		return NULL;
	}
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		if (errno == EINPROGRESS || errno == EINTR) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int n = poll(&pfd, 1, client_io_poll_ms(deadline));
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0) {
				client_err_fail(
					err, CONVC_ERR_CONN, "timeout",
					"%s: no connection within %d ms", path,
					timeout_ms);
				goto fail_fd;
			}
			if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR,
						&soerr, &sl) < 0)
				soerr = errno;
			if (soerr == 0)
				break;
			errno = soerr;
		} else if (errno == EAGAIN) {
			/* The listen backlog is full: retry a little later. */
			int wait = client_io_poll_ms(deadline);

			if (wait == 0) {
				client_err_fail(
					err, CONVC_ERR_CONN, "timeout",
					"%s: no connection within %d ms "
					"(listen queue full)",
					path, timeout_ms);
				goto fail_fd;
			}
			poll(NULL, 0, wait < 0 || wait > 10 ? 10 : wait);
			continue;
		}
		client_err_fail(err, CONVC_ERR_CONN, "connect_failed", "%s: %s",
				path, strerror(errno));
		goto fail_fd;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		client_err_fail(err, CONVC_ERR_LOCAL, "no_memory",
				"out of memory");
		goto fail_fd;
	}
	c->fd = fd;
	c->path = strdup(path);
	if (!c->path) {
		free(c);
		client_err_fail(err, CONVC_ERR_LOCAL, "no_memory",
				"out of memory");
		goto fail_fd;
	}
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
	c->max_response = CONVC_DEFAULT_MAX_RESPONSE;
	c->scan.need = 1;
	c->next_msgid = 1;
	TAILQ_INIT(&c->queue);
	return c;

fail_fd:
	close(fd);
	return NULL;
}

void convc_close(struct convc *c)
{
	if (!c)
		return;
	if (!c->broken) {
		struct convc_error e;

		client_err_conn(c, &e, "closed", "the connection was closed");
	}
	if (c->dispatching) {
		/* from a callback: freed when the library call that ran the
		 * callback returns */
		c->close_pending = true;
		return;
	}
	client_recv_fail_callbacks(c);
	client_conn_destroy(c);
}

void convc_set_timeout(struct convc *c, int timeout_ms)
{
	if (c)
		c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

int convc_set_max_response(struct convc *c, size_t bytes,
			   struct convc_error *err)
{
	if (!c || bytes < MIN_MAX_RESPONSE || bytes > SIZE_MAX / 4)
		return client_err_fail(
			err, CONVC_ERR_LOCAL, "invalid_argument",
			"maximum response size must be at least %zu bytes",
			MIN_MAX_RESPONSE);
	c->max_response = bytes;
	return CONVC_OK;
}

bool convc_usable(const struct convc *c)
{
	return c && !c->broken;
}

size_t convc_outstanding(const struct convc *c)
{
	return c ? c->npend : 0;
}

#define CONVC_STR_(x) #x
#define CONVC_STR(x) CONVC_STR_(x)

const char *convc_version(void)
{
	return CONVC_STR(CONVC_VERSION_MAJOR) "." CONVC_STR(
		CONVC_VERSION_MINOR) "." CONVC_STR(CONVC_VERSION_PATCH);
}

/*
 * A new connection to the same socket in place of c's broken one: only
 * between calls (nothing outstanding, no callbacks), as for a retry.
 */
int client_conn_reconnect(struct convc *c, struct convc_error *err)
{
	struct convc *n, tmp;

	/* the failed call itself may still be listed as outstanding */
	if (c->npend > 1 || c->ncb > 0 || c->dispatching ||
	    !TAILQ_EMPTY(&c->queue))
		return client_err_fail(err, CONVC_ERR_CONN, "closed",
				       "the connection was lost with requests "
				       "outstanding");
	n = convc_connect(c->path, c->timeout_ms, err);
	if (!n)
		return CONVC_ERR_CONN;
	n->max_response = c->max_response;
	n->retries = c->retries;
	n->next_msgid = c->next_msgid;
	tmp = *c;	/* c takes the new connection, n the old one */
	*c = *n;
	*n = tmp;
	/* both queues are empty; their heads point into themselves */
	TAILQ_INIT(&c->queue);
	TAILQ_INIT(&n->queue);
	client_conn_destroy(n);
	return CONVC_OK;
}
