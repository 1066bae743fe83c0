/*
 * http.c - the HTTP endpoint for operators: /metrics, /healthz, /readyz on
 * libevent's evhttp, in convd's loop.
 *
 * Limits of its own, apart from the RPC server's:
 * - [http] max_connections: each connection's bufferevent is made here
 *   (evhttp_set_bevcb) and referenced until evhttp is done with it (see
 *   http_sweep); while that many are open the listener is disabled, so
 *   further connections wait in the kernel's listen queue.  (libevent 2.1
 *   has no evhttp_set_max_connections.)
 * - [http] timeout: evhttp's read and write timeouts.
 * - [http] max_header_bytes: evhttp's header limit (400 beyond it); the
 *   body limit is 0, and only GET and HEAD are allowed (501 otherwise).
 * An accept() failure (out of descriptors) pauses the listener for a
 * second instead of spinning.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "addr.h"
#include "admin.h"
#include "buf.h"
#include "health.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "prom.h"
#include "sock.h"

#define HTTP_BACKLOG 64
#define HTTP_SWEEP_USEC 500000
/* After an accept() error, the listener pauses this long. */
#define HTTP_PAUSE_USEC (1 * USEC_PER_SEC)

static struct {
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *lev;
	bool bound;			/* lev is then evhttp's to free */
	struct event resume;		/* after an accept() error */
	struct event sweep;		/* while connections are open */
	bool events_set;		/* the two above are assigned */
	struct bufferevent **bev;	/* the open connections, ours */
	size_t max_input;
	char unix_path[ADDR_PATH_MAX];	/* to unlink at exit, or "" */
	int conns, max_conns;
	bool full, paused, stopping;
} http;

/* ---- connection limit --------------------------------------------------- */

static void http_listener_update(void)
{
	bool on = !http.full && !http.paused;

	if (!http.lev)
		return;
	if (on)
		evconnlistener_enable(http.lev);
	else
		evconnlistener_disable(http.lev);
}

/*
 * Drops the connections evhttp is done with.  evhttp_connection_free()
 * clears a bufferevent's callbacks (an incoming connection's event
 * callback is set for all its life) and frees it; our reference keeps it,
 * and its socket (BEV_OPT_CLOSE_ON_FREE: evhttp only shuts it down), until
 * here, so no descriptor is reused while its events are still set.
 */
static void http_sweep(void)
{
	int i = 0;

	while (i < http.conns) {
		bufferevent_event_cb ecb = NULL;

		bufferevent_getcb(http.bev[i], NULL, NULL, &ecb, NULL);
		if (ecb) {
			i++;
			continue;
		}
		bufferevent_decref(http.bev[i]);
		http.bev[i] = http.bev[--http.conns];
	}
	if (http.full && http.conns < http.max_conns) {
		http.full = false;
		http_listener_update();
	}
}

/* Sweeps again soon. */
static void http_arm_sweep(void)
{
	if (loop_arm_usec(&http.sweep, HTTP_SWEEP_USEC, "http sweep timer") < 0)
		return;	/* logged; the next new connection sweeps */
}

static void http_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	http_sweep();
	if (http.conns > 0)
		http_arm_sweep();
}

/* A new connection: its bufferevent, counted while evhttp has it. */
static struct bufferevent *http_new_bev(struct event_base *base, void *arg)
{
	struct bufferevent *bev;

	(void)arg;
	http_sweep();
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		return NULL;	/* evhttp makes its own: served, not counted */
	/* Only a request's headers are ever read (no bodies). */
	bufferevent_setwatermark(bev, EV_READ, 0, http.max_input);
	if (http.conns < http.max_conns) {
		bufferevent_incref(bev);
		http.bev[http.conns++] = bev;
		if (!evtimer_pending(&http.sweep, NULL))
			http_arm_sweep();
	}
	if (http.conns >= http.max_conns && !http.full) {
		http.full = true;
		log_info("http: %d connections open, the most allowed; "
			 "further ones wait", http.conns);
		http_listener_update();
	}
	return bev;
}

static void http_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	http.paused = false;
	http_listener_update();
}

static void http_accept_error(struct evconnlistener *lev, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();

	(void)lev;
	(void)arg;
	log_warn("http: accept: %s; pausing for a second",
		    evutil_socket_error_to_string(err));
	/* unless the pause cannot be timed: then accepting goes on */
	if (loop_arm_usec(&http.resume, HTTP_PAUSE_USEC, "http resume timer") <
	    0)
		return;
	http.paused = true;
	http_listener_update();
}

/* ---- answers ------------------------------------------------------------ */

static void http_reply(struct evhttp_request *req, int code,
		       const char *reason, const char *type,
		       const char *body, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evbuffer_new();

	if (!out || evbuffer_add(out, body, len) < 0) {
		if (out)
			evbuffer_free(out);
		evhttp_send_error(req, 500, "Out of memory");
		return;
	}
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, out);
	evbuffer_free(out);
}

static void http_text(struct evhttp_request *req, int code,
		      const char *reason, const char *text)
{
	http_reply(req, code, reason, "text/plain; charset=utf-8", text,
		   strlen(text));
}

/* The stats map, as the stats method packs it, in the exposition format. */
static void http_metrics(struct evhttp_request *req)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
	struct buf out = { 0 };
	size_t off = 0;
	int ok;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&up);
	ok = admin_pack_stats(&pk) == 0 &&
	     msgpack_unpack_next(&up, sb.data, sb.size, &off) ==
		     MSGPACK_UNPACK_SUCCESS &&
	     prom_format(&out, &up.data) == 0;
	if (ok)
		http_reply(req, 200, "OK", PROM_CONTENT_TYPE, out.p ? out.p : "",
			   out.len);
	else
		evhttp_send_error(req, 500, "Out of memory");
	buf_free(&out);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

static void http_readyz(struct evhttp_request *req)
{
	struct health h;
	char text[400];

	if (http.stopping) {
		http_text(req, 503, "Service Unavailable",
			  "not ready: shutting down\n");
		return;
	}
	health_check(&h);
	if (h.ok) {
		http_text(req, 200, "OK", "ready\n");
		return;
	}
	if (strcmp(h.database, "up") != 0)
		snprintf(text, sizeof(text), "not ready: database %s: %s\n",
			 h.database, h.message);
	else
		snprintf(text, sizeof(text), "not ready: schema %s: %s\n",
			 h.schema, h.message);
	http_text(req, 503, "Service Unavailable", text);
}

static void http_on_request(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;

	(void)arg;
	if (!path) {
		evhttp_send_error(req, 400, "Bad Request");
		return;
	}
	log_debug("http: %s", path);
	if (strcmp(path, "/metrics") == 0)
		http_metrics(req);
	else if (strcmp(path, "/healthz") == 0)
		http_text(req, 200, "OK", "ok\n");
	else if (strcmp(path, "/readyz") == 0)
		http_readyz(req);
	else if (strcmp(path, "/") == 0)
		http_text(req, 200, "OK", "convd: /metrics /healthz /readyz\n");
	else
		http_text(req, 404, "Not Found", "not found\n");
}

/* ---- the listening socket ----------------------------------------------- */

static bool http_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr)
			>> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(
			&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

/* A TCP socket bound to the first loopback address of host:port. */
static int http_listen_tcp(const struct addr_listen *a)
{
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	}, *res, *ai;
	char port[8], host[NI_MAXHOST], serv[NI_MAXSERV];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, rc, one = 1, err = 0;

	snprintf(port, sizeof(port), "%u", a->port);
	rc = getaddrinfo(a->host, port, &hints, &res);
	if (rc != 0) {
		log_error("[http] listen: %s: %s", a->host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		if (!http_loopback(ai->ai_addr))
			continue;
		fd = socket(ai->ai_family,
			    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
			       sizeof(one)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, HTTP_BACKLOG) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		log_error("[http] listen: cannot listen on %s:%u: %s", a->host,
			  a->port, err ? strerror(err) : "not a loopback "
			  "address");
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		log_notice("http: listening on %s%s%s:%s",
			   ss.ss_family == AF_INET6 ? "[" : "", host,
			   ss.ss_family == AF_INET6 ? "]" : "", serv);
	return fd;
}

int http_setup(struct event_base *base, const struct config *cfg)
{
	struct addr_listen a;
	char why[128];
	int fd;

	memset(&http, 0, sizeof(http));
	if (!cfg->http.listen || !*cfg->http.listen)
		return 0;
	if (addr_parse_listen(cfg->http.listen, &a, why, sizeof(why)) < 0) {
		log_error("[http] listen: %s", why);
		return -1;
	}
	http.base = base;
	http.max_conns = (int)cfg->http.max_connections;
	http.max_input = (size_t)cfg->http.max_header_bytes + 4096;
	http.bev = calloc((size_t)http.max_conns, sizeof(*http.bev));
	if (!http.bev ||
	    evtimer_assign(&http.sweep, base, http_on_sweep, NULL) < 0 ||
	    evtimer_assign(&http.resume, base, http_resume, NULL) < 0) {
		log_error("http: out of memory");
		return -1;
	}
	http.events_set = true;
	if (a.is_unix) {
		fd = sock_listen_unix(a.host, (mode_t)cfg->server.socket_mode,
				      cfg->server.socket_group,
				      "[http] listen");
		if (fd < 0)
			return -1;
		snprintf(http.unix_path, sizeof(http.unix_path), "%s", a.host);
		log_notice("http: listening on %s", a.host);
	} else {
		fd = http_listen_tcp(&a);
		if (fd < 0)
			return -1;
	}
	http.http = evhttp_new(base);
	http.lev = evconnlistener_new(base, NULL, NULL,
				      LEV_OPT_CLOSE_ON_FREE |
					      LEV_OPT_CLOSE_ON_EXEC,
				      0, fd);
	if (!http.http || !http.lev) {
		if (!http.lev)
			close(fd);
		log_error("http: out of memory");
		return -1;
	}
	evhttp_set_allowed_methods(http.http,
				   EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(http.http,
				    (ev_ssize_t)cfg->http.max_header_bytes);
	evhttp_set_max_body_size(http.http, 0);
	evhttp_set_timeout(http.http, (int)cfg->http.timeout);
	evhttp_set_bevcb(http.http, http_new_bev, NULL);
	evhttp_set_gencb(http.http, http_on_request, NULL);
	if (!evhttp_bind_listener(http.http, http.lev)) {
		log_error("http: cannot serve the listener");
		return -1;
	}
	http.bound = true;
	evconnlistener_set_error_cb(http.lev, http_accept_error);
	return 0;
}

void http_stopping(void)
{
	http.stopping = true;
}

void http_cleanup(void)
{
	struct evconnlistener *lev = http.lev;

	/* evhttp_free frees a bound listener and the connections; their
	 * free callbacks may run later, and must not touch the listener. */
	http.lev = NULL;
	if (lev && !http.bound)
		evconnlistener_free(lev);
	if (http.http)
		evhttp_free(http.http);
	http.http = NULL;
	for (int i = 0; i < http.conns; i++)
		bufferevent_decref(http.bev[i]);
	http.conns = 0;
	free(http.bev);
	http.bev = NULL;
	if (http.events_set) {
		event_del(&http.sweep);
		event_del(&http.resume);
	}
	http.events_set = false;
	if (http.unix_path[0])
		unlink(http.unix_path);
	http.unix_path[0] = '\0';
}
