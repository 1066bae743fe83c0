/*
 * server.c - the Unix socket listener and client connections.
 *
 * Reading: each client has a linear input buffer that starts small and
 * grows only as far as one frame needs (bounded by max_request_bytes,
 * which proto_decode enforces from the frame's headers, before the body
 * arrives).  Complete frames are decoded in place; requests are copied
 * out and dispatched; the buffer is compacted and shrunk back when empty.
 *
 * Writing: responses are packed into the client's output evbuffer and
 * written once per loop pass (the write event is activated, not called).
 * A client that does not read its responses is disconnected once its
 * output passes max_output_bytes; one with max_inflight requests in flight
 * stops being read until they drain.  Neither slows anyone else.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "acl.h"
#include "budget.h"
#include "clock.h"
#include "lists.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "request.h"
#include "server.h"
#include "sock.h"
#include "stats.h"

#define IN_MIN 4096
#define IN_READ 16384
/* A refused connection (max_clients, allow_users) waits this long for its
 * first request, to answer it with its msgid; at most REFUSE_MAX wait at
 * once (beyond that, they are answered at once with a nil msgid). */
#define REFUSE_WAIT_USEC (2 * USEC_PER_SEC)
#define REFUSE_MAX 64
/* After our side is shut down, input is read and discarded until the
 * peer closes, for at most this long: closing a Unix socket with unread
 * input resets the peer's connection. */
#define LINGER_USEC (2 * USEC_PER_SEC)
/* Out of descriptors: accepting pauses this long. */
#define ACCEPT_PAUSE_USEC (1 * USEC_PER_SEC)
/* Idle, lingering and refused connections are looked at this often. */
#define SWEEP_USEC (1 * USEC_PER_SEC)

/* Messages that a burst of clients can repeat thousands of times. */
static struct log_ratelimit rl_refused =
	LOG_RATELIMIT("refused connections (max_clients)");
static struct log_ratelimit rl_denied =
	LOG_RATELIMIT("refused connections (allow_users, allow_groups)");
static struct log_ratelimit rl_admin =
	LOG_RATELIMIT("admin calls refused (admin_users, admin_groups)");
static struct log_ratelimit rl_slow =
	LOG_RATELIMIT("clients cut off for not reading (max_output_bytes)");
static struct log_ratelimit rl_budget =
	LOG_RATELIMIT("clients cut off at the memory budget");

struct client {
	TAILQ_ENTRY(client) entry;	/* srv.clients, while attached */
	uint64_t id;
	int fd;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool admin;
	struct event rev, wev;		/* read, write (event_assign) */
	char *in;
	size_t in_len, in_cap;
	size_t in_need;		/* the partial frame at in[0] is this long
				   at least (proto_decode): decode again then */
	struct evbuffer *out;
	int inflight;
	int refs;		/* the connection itself + requests in flight */
	bool read_paused;
	bool eof;		/* peer will send nothing more */
	bool closing;		/* close once output is flushed */
	bool dead;		/* fd closed; waiting for requests to end */
	bool flush_scheduled;
	bool draining;		/* convd stops: read what has arrived, answer it */
	bool read_done;		/* draining, and the socket was empty: no more
				   reads; answer what is buffered, then finish */
	bool lingering;		/* our side shut down: discard input until EOF */
	bool refusing;		/* refused at accept: answer requests with the
				   refusal, then finish */
	bool refuse_answered;
	enum rpc_error refuse_code;
	const char *refuse_msg;
	usec_t last_activity;
	/* charged to the memory budget (budget.h) */
	size_t charged_io;	/* input buffer + unsent output */
	size_t charged_req;	/* requests in flight */
	usec_t linger_since;
};

static struct {
	struct event_base *base;
	int listen_fd;
	bool own_socket;		/* we created it: unlink at exit */
	char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct event accept_ev;
	struct event accept_pause;	/* out of fds: retry later */
	struct event sweep;		/* idle timeout */
	bool events_set;		/* the three above are assigned */
	TAILQ_HEAD(client_list, client) clients;
	int nclients;
	int nrefusing;		/* refused connections still open */
	uint64_t next_id;
	bool stopping;
	/* reloadable settings */
	struct proto_limits lim;
	struct validate_limits vlim;
	int max_clients;
	int max_inflight;
	size_t max_output;
	int idle_timeout;
	struct acl acl;
	struct server_stats st;
} srv = {.listen_fd = -1};


/* ---- client life -------------------------------------------------------- */

static void client_unref(struct client *c)
{
	if (--c->refs > 0)
		return;
	if (c->refusing)
		srv.nrefusing--;
	else
		srv.nclients--;	/* counted until its last request has ended */
	free(c);
}

/* Re-charges c's input buffer and unsent output after either changed. */
static void client_account(struct client *c)
{
	size_t now = c->in_cap + (c->out ? evbuffer_get_length(c->out) : 0);

	budget_charge((int64_t)now - (int64_t)c->charged_io);
	c->charged_io = now;
}

static void client_close(struct client *c, const char *why);

/*
 * Makes room in the memory budget for `more` bytes that self is about to
 * buffer: while they do not fit, the client holding the most (a half-sent
 * frame, answers it does not read, many requests in flight) is cut off.
 * False when self was the one cut off, or nobody was left to cut: self
 * must then not buffer them.
 */
static bool server_make_room(struct client *self, size_t more)
{
	while (!budget_fits(more)) {
		struct client *victim = NULL;

		struct client *c;

		TAILQ_FOREACH(c, &srv.clients, entry)
			if (!victim || c->charged_io + c->charged_req >
					       victim->charged_io +
						       victim->charged_req)
				victim = c;
		if (!victim || victim->charged_io == 0)
			break;	/* what is left is held by requests */
		budget_note_cutoff();
		srv.st.closed_errors++;
		log_warn_rl(&rl_budget,
			    "client %llu (uid %u pid %d): cut off at the "
			    "memory budget (%zu bytes): it holds %zu bytes "
			    "of input and output and %zu of requests, the "
			    "most of any client",
			    (unsigned long long)victim->id,
			    (unsigned)victim->uid, (int)victim->pid,
			    budget_limit(), victim->charged_io,
			    victim->charged_req);
		client_close(victim, NULL);
		if (victim == self)
			return false;
	}
	if (!budget_fits(more)) {
		if (self && !self->dead) {
			budget_note_cutoff();
			client_close(self, "memory budget exhausted");
		}
		return false;
	}
	return true;
}

static void client_close(struct client *c, const char *why)
{
	if (c->dead)
		return;
	if (why)
		log_info("client %llu (uid %u pid %d): closed: %s",
			 (unsigned long long)c->id, (unsigned)c->uid,
			 (int)c->pid, why);
	else
		log_debug("client %llu: closed", (unsigned long long)c->id);
	event_del(&c->rev);
	event_del(&c->wev);
	close(c->fd);
	c->fd = -1;
	c->dead = true;
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	evbuffer_free(c->out);
	c->out = NULL;
	client_account(c);
	TAILQ_REMOVE(&srv.clients, c, entry);
	client_unref(c);
}

/* The staged response goes to c (or nowhere, if c is gone). */
static void client_commit_staged(struct client *c)
{
	size_t len;
	const char *p = request_staged(&len);

	if (!c->dead && len > 0 && server_make_room(c, len)) {
		if (evbuffer_add(c->out, p, len) < 0)
			log_error("client %llu: out of memory for a response",
				  (unsigned long long)c->id);
		client_account(c);
	}
	request_unstage();
}

static void client_schedule_flush(struct client *c)
{
	if (c->dead || c->flush_scheduled)
		return;
	c->flush_scheduled = true;
	event_active(&c->wev, EV_WRITE, 0);
}

static void client_set_reading(struct client *c, bool on)
{
	if (c->dead)
		return;
	if (c->lingering)
		on = true;
	else if (c->eof || c->closing || c->read_done)
		on = false;
	if (on == !c->read_paused)
		return;
	if (on && loop_arm(&c->rev, NULL, "client read") < 0) {
		/* unreadable: the client ends once its answers are out */
		c->closing = true;
		client_schedule_flush(c);
		return;
	}
	if (!on)
		event_del(&c->rev);
	c->read_paused = !on;
}

/* Reads and discards what the peer sends after our side was shut down;
 * closes once the peer has closed its side too.  Returns true if c was
 * closed (and is gone unless the caller holds a reference). */
static bool client_discard(struct client *c)
{
	for (int i = 0; i < 64; i++) {
		char junk[16384];
		ssize_t n = read(c->fd, junk, sizeof(junk));

		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			      errno == EINTR))
			return false;
		client_close(c, NULL);	/* EOF (or an error): done */
		return true;
	}
	return false;
}

/*
 * Everything c will be answered is answered and written: end the
 * connection without a reset.  Unless the peer has already closed its
 * side, ours is shut down (the peer reads EOF after the last answer),
 * and what the peer still sends is discarded until it closes (or
 * LINGER_USEC passes): a Unix socket closed with unread input would make
 * the peer's next read fail with ECONNRESET.
 */
static void client_finish(struct client *c)
{
	if (c->dead || c->lingering)
		return;
	if (c->eof) {
		client_close(c, NULL);
		return;
	}
	shutdown(c->fd, SHUT_WR);
	c->lingering = true;
	c->linger_since = clock_now();
	c->in_len = c->in_need = 0;
	c->refs++;		/* c stays ours while we look at it */
	if (!client_discard(c))
		client_set_reading(c, true);
	client_unref(c);
}

static bool client_done_reading(const struct client *c)
{
	return c->eof || c->read_done;
}

static void client_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)what;
	c->flush_scheduled = false;
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, fd);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				client_account(c);
				if (loop_arm(&c->wev, NULL, "client write") < 0)
					client_close(c, "cannot wait to write");
				return;
			}
			client_close(c, errno == EPIPE || errno == ECONNRESET ?
						NULL :
						strerror(errno));
			return;
		}
	}
	client_account(c);
	if ((c->closing || (client_done_reading(c) && c->in_len == 0)) &&
	    c->inflight == 0)
		client_finish(c);
}

/* After anything was packed for c: flush soon, or drop a slow reader. */
static void client_output_added(struct client *c)
{
	if (c->dead)
		return;
	if (evbuffer_get_length(c->out) > srv.max_output) {
		srv.st.closed_errors++;
		log_warn_rl(&rl_slow,
			    "client %llu (uid %u pid %d): output buffer over "
			    "max_output_bytes (%zu): the client does not read "
			    "its responses; disconnecting",
			    (unsigned long long)c->id, (unsigned)c->uid,
			    (int)c->pid, srv.max_output);
		client_close(c, NULL);
		return;
	}
	client_schedule_flush(c);
}

/* ---- requests ------------------------------------------------------------ */

/*
 * request_ops: a request of c ended (request.h); its answer, if any, is
 * staged.  The request's bytes leave the budget, the answer goes to c's
 * output, and c may be read again if it was paused at max_inflight.
 */
static void server_request_done(struct request *r)
{
	struct client *c = r->client;
	size_t held = sizeof(*r) + r->data_cap;

	budget_charge(-(int64_t)held);
	c->charged_req -= held;
	c->inflight--;
	client_commit_staged(c);
	if (!c->dead)
		client_output_added(c);
	if (!c->dead && !c->closing && c->inflight < srv.max_inflight &&
	    (c->read_paused || client_done_reading(c))) {
		client_set_reading(c, true);
		/* frames may be waiting in the buffer already, also after
		 * EOF (a client may pipeline, then shut down its side) */
		if ((!c->read_paused || client_done_reading(c)) &&
		    c->in_len > 0)
			event_active(&c->rev, EV_READ, 0);
	}
	client_unref(c);
}

/* request_ops: r's answer could not be packed whole. */
static void server_request_broken(struct request *r)
{
	if (!r->client->dead) {
		srv.st.closed_errors++;
		client_close(r->client, NULL);
	}
}

static const struct request_ops server_request_ops = {
	.done = server_request_done,
	.broken = server_request_broken,
};

/*
 * An error for a message that never became a request; counted under its
 * method when it named a real one (spec), else as a protocol error.
 */
static void client_reply_error_for(struct client *c,
				   const struct method_spec *spec,
				   bool has_msgid, uint32_t msgid,
				   enum rpc_error e, const char *msg)
{
	if (spec)
		stats_record(spec->id, e, 0);
	else
		stats_record_error(e);
	if (proto_pack_error(request_stage_packer(), has_msgid, msgid,
			     rpc_error_code(e), msg) < 0)
		log_error("cannot pack error response");
	client_commit_staged(c);
	client_output_added(c);
}

static void client_reply_error(struct client *c, bool has_msgid,
			       uint32_t msgid, enum rpc_error e,
			       const char *msg)
{
	client_reply_error_for(c, NULL, has_msgid, msgid, e, msg);
}

/* Makes the request (its arguments copied) and dispatches it. */
static void client_start_request(struct client *c, const struct proto_msg *m,
				 const struct method_spec *spec,
				 const struct validate_args *args)
{
	struct request *r;
	size_t held;

	if (!server_make_room(c, request_footprint(spec, args)))
		return;
	r = request_new(c, m->msgid, spec, args, clock_now());
	if (!r) {
		client_reply_error(c, true, m->msgid, E_INTERNAL,
				   "out of memory");
		return;
	}
	held = sizeof(*r) + r->data_cap;
	budget_charge((int64_t)held);
	c->charged_req += held;
	c->refs++;
	c->inflight++;
	request_dispatch(r);
}

static void client_handle_frame(struct client *c, const struct proto_doc *doc)
{
	struct proto_msg m;
	struct validate_args args;
	const struct method_spec *spec;
	char err[256];

	bool ok = proto_parse_envelope(doc, &m, err, sizeof(err)) == 0;

	/*
	 * Notifications are never answered, however malformed, and neither
	 * are responses (convd sends no requests): answering either is how
	 * two peers end up echoing errors at each other forever.
	 */
	if (m.kind == PROTO_NOTIFY || m.kind == PROTO_RESPONSE) {
		if (!ok)
			stats_record_error(E_INVALID_REQUEST);
		log_debug("client %llu: %s%s ignored%s%s",
			  (unsigned long long)c->id, ok ? "" : "malformed ",
			  m.kind == PROTO_NOTIFY ? "notification" : "response",
			  ok ? "" : ": ", ok ? "" : err);
		return;
	}
	if (c->refusing) {
		/* a refused connection: its requests get the refusal */
		if (proto_pack_error(request_stage_packer(), m.has_msgid,
				     m.msgid, rpc_error_code(c->refuse_code),
				     c->refuse_msg) < 0)
			log_error("cannot pack error response");
		client_commit_staged(c);
		client_output_added(c);
		c->refuse_answered = true;
		return;
	}
	if (!ok) {
		client_reply_error(c, m.has_msgid, m.msgid, E_INVALID_REQUEST,
				   err);
		return;
	}
	spec = method_find(m.method.p, m.method.len);
	if (!spec) {
		char name[64];
		size_t n = m.method.len < 40 ? m.method.len : 40;

		/* echo a bounded, printable prefix only */
		for (size_t i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)m.method.p[i];

			name[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
		}
		name[n] = '\0';
		snprintf(err, sizeof(err), "no such method '%s%s'", name,
			 m.method.len > n ? "..." : "");
		client_reply_error(c, true, m.msgid, E_NO_SUCH_METHOD, err);
		return;
	}
	if (validate_params(spec, doc, m.params, &srv.vlim, &args, err,
			    sizeof(err)) < 0) {
		client_reply_error_for(c, spec, true, m.msgid, E_INVALID_PARAMS,
				       err);
		return;
	}
	if (spec->admin && !c->admin) {
		log_warn_rl(&rl_admin,
			    "permission denied: uid %u pid %d called %s (an "
			    "admin method)",
			    (unsigned)c->uid, (int)c->pid, spec->name);
		snprintf(err, sizeof(err),
			 "%s is an admin method; uid %u is not in admin_users "
			 "or admin_groups",
			 spec->name, (unsigned)c->uid);
		client_reply_error_for(c, spec, true, m.msgid,
				       E_PERMISSION_DENIED, err);
		return;
	}
	client_start_request(c, &m, spec, &args);
}

/* Decodes and handles every complete frame in the input buffer. */
static void client_process_input(struct client *c)
{
	static struct proto_doc doc;	/* one request at a time: no churn */
	size_t off = 0;

	while (off < c->in_len && !c->dead && !c->closing) {
		size_t used = 0;
		enum proto_status st;

		/* a frame of many small values arriving in pieces is not
		 * scanned again until it can be whole */
		if (c->in_len - off < c->in_need)
			break;
		st = proto_decode((const uint8_t *)c->in + off, c->in_len - off,
				  &srv.lim, &doc, &used);
		c->in_need = 0;
		if (st == PROTO_INCOMPLETE) {
			c->in_need = used;
			break;
		}
		if (st != PROTO_OK) {
			char msg[128];

			snprintf(msg, sizeof(msg),
				 "undecodable request: %s; closing the "
				 "connection",
				 proto_status_str(st));
			srv.st.closed_errors++;
			log_info("client %llu (uid %u pid %d): %s",
				 (unsigned long long)c->id, (unsigned)c->uid,
				 (int)c->pid, msg);
			client_reply_error(c, false, 0, E_INVALID_REQUEST, msg);
			c->closing = true;
			client_set_reading(c, false);
			off = c->in_len;
			break;
		}
		client_handle_frame(c, &doc);
		off += used;
		if (c->inflight >= srv.max_inflight) {
			client_set_reading(c, false);
			break;
		}
	}
	if (c->dead)
		return;
	if (c->refusing && c->refuse_answered && !c->closing) {
		/* what was sent with the first request is answered too */
		c->closing = true;
		client_set_reading(c, false);
		client_schedule_flush(c);
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	/* Give back a large buffer once it is empty. */
	if (c->in_len == 0 && c->in_cap > IN_MIN * 4) {
		char *small = realloc(c->in, IN_MIN);

		if (small) {
			c->in = small;
			c->in_cap = IN_MIN;
			client_account(c);
		}
	}
}

static void client_read(struct client *c, evutil_socket_t fd);

/*
 * Answering a request can close its client (output over the limit) and
 * drop the last reference: hold one of our own while we use it.
 */
static void client_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	(void)what;
	c->refs++;
	client_read(c, fd);
	client_unref(c);
}

/* Nothing more will be read (the peer sent EOF, or convd stops and has
 * read all that had arrived): answer the frames read before. */
static void client_eof(struct client *c)
{
	if (c->in_len > 0)
		client_process_input(c);
	/* unless stopped by max_inflight, what is left is a partial frame
	 * that can never complete */
	if (!c->dead && c->inflight < srv.max_inflight)
		c->in_len = c->in_need = 0;
	if (!c->dead && c->in_len == 0 && c->inflight == 0 &&
	    evbuffer_get_length(c->out) == 0)
		client_finish(c);
}

static void client_read(struct client *c, evutil_socket_t fd)
{
	ssize_t n;

	if (c->lingering) {
		client_discard(c);
		return;
	}
	if (client_done_reading(c)) {
		/* woken by request_end to go on with frames already read */
		client_eof(c);
		return;
	}
	if (c->in_cap - c->in_len < IN_READ / 4) {
		size_t cap = c->in_cap ? c->in_cap * 2 : IN_MIN;
		size_t limit = srv.lim.max_frame + IN_READ;
		char *nb;

		if (cap > limit)
			cap = limit;
		if (cap <= c->in_len) {
			/* unreachable: the decoder refuses larger frames */
			client_close(c, "input buffer limit");
			return;
		}
		if (!server_make_room(c, cap - c->in_cap))
			return;		/* c was cut off */
		nb = realloc(c->in, cap);
		if (!nb) {
			client_close(c, "out of memory");
			return;
		}
		c->in = nb;
		c->in_cap = cap;
		client_account(c);
	}
	n = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
	if (n < 0) {
		if (c->draining && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* all that had arrived is read: no more reads */
			c->read_done = true;
			client_set_reading(c, false);
			client_eof(c);
			return;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			/* woken to go on with frames already buffered */
			if (c->in_len > 0)
				client_process_input(c);
			return;
		}
		client_close(c, errno == ECONNRESET ? NULL : strerror(errno));
		return;
	}
	if (n == 0) {
		c->eof = true;
		client_set_reading(c, false);
		client_eof(c);
		return;
	}
	c->in_len += (size_t)n;
	c->last_activity = clock_now();
	client_process_input(c);
	/* draining: go on reading until the socket is empty */
	if (c->draining && !c->dead && !c->read_paused && !c->closing)
		event_active(&c->rev, EV_READ, 0);
}

/* ---- credentials ----------------------------------------------------------- */

/*
 * Reads the peer's credentials (as they were at connect) and decides
 * whether it may use convd and the admin methods under the current lists:
 * at accept, and again for every open connection after a reload.
 */
static int client_credentials(struct client *c, bool *allowed)
{
	struct acl_peer peer;

	if (acl_peer_read(c->fd, &peer) < 0)
		return -1;
	c->uid = peer.uid;
	c->gid = peer.gid;
	c->pid = peer.pid;
	*allowed = acl_allows(&srv.acl, &peer);
	c->admin = acl_admin(&srv.acl, &peer);
	return 0;
}

/* ---- accepting ----------------------------------------------------------- */

/* Best effort, on a fresh non-blocking socket: one error, then close. */
static void refuse(int fd, enum rpc_error e, const char *msg)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (proto_pack_error(&pk, false, 0, rpc_error_code(e), msg) == 0)
		(void)!write(fd, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	/* Closing a Unix socket with unread input makes the peer's reads
	 * fail with ECONNRESET before it sees our answer: end our side,
	 * discard what the client already sent, then close. */
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 16; i++) {
		char junk[4096];

		if (read(fd, junk, sizeof(junk)) <= 0)
			break;
	}
	close(fd);
}

static void server_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (srv.stopping || !srv.events_set)
		return;
	/* if it cannot be armed, it is tried again in a second */
	if (loop_arm(&srv.accept_ev, NULL, "accept") < 0 &&
	    loop_arm_usec(&srv.accept_pause, ACCEPT_PAUSE_USEC,
			  "accept pause timer") < 0)
		log_error("no new connections are accepted any more; restart "
			  "convd");
}

/* Events and buffers for an accepted client, then into the list. */
static int client_attach(struct client *c)
{
	c->out = evbuffer_new();
	if (!c->out ||
	    event_assign(&c->rev, srv.base, c->fd, EV_READ | EV_PERSIST,
			 client_on_read, c) < 0 ||
	    event_assign(&c->wev, srv.base, c->fd, EV_WRITE, client_on_write,
			 c) < 0 ||
	    loop_arm(&c->rev, NULL, "client read") < 0) {
		if (c->out)
			evbuffer_free(c->out);
		c->out = NULL;
		return -1;
	}
	c->last_activity = clock_now();
	TAILQ_INSERT_HEAD(&srv.clients, c, entry);
	return 0;
}

/*
 * A refused connection (c may be NULL: allocated here) waits up to
 * REFUSE_WAIT_USEC for its first request, which is answered with the
 * refusal and its own msgid (as is anything sent with it); then the
 * connection ends without a reset.  Beyond REFUSE_MAX such connections,
 * or without memory, the refusal goes out at once with a nil msgid.
 */
static void client_refuse(int fd, struct client *c, enum rpc_error e,
			  const char *msg)
{
	if (!c && srv.nrefusing < REFUSE_MAX)
		c = calloc(1, sizeof(*c));
	if (!c || srv.nrefusing >= REFUSE_MAX) {
		free(c);
		refuse(fd, e, msg);
		return;
	}
	c->fd = fd;
	if (!c->id)
		c->id = ++srv.next_id;
	c->refs = 1;
	c->refusing = true;
	c->refuse_code = e;
	c->refuse_msg = msg;
	if (client_attach(c) < 0) {
		free(c);
		refuse(fd, e, msg);
		return;
	}
	srv.nrefusing++;
}

static void server_on_accept(evutil_socket_t lfd, short what, void *arg)
{
	(void)what;
	(void)arg;
	for (int burst = 0; burst < 64; burst++) {
		struct client *c;
		bool allowed = false;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				log_error("accept: %s; pausing new connections "
					  "for a second",
					  strerror(errno));
				/* unless the pause cannot be timed: then
				 * accepting goes on */
				if (loop_arm_usec(&srv.accept_pause,
						  ACCEPT_PAUSE_USEC,
						  "accept pause timer") == 0)
					event_del(&srv.accept_ev);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK &&
				   errno != EINTR && errno != ECONNABORTED) {
				log_warn("accept: %s", strerror(errno));
			}
			return;
		}
		srv.st.accepted++;
		if (srv.nclients >= srv.max_clients) {
			srv.st.rejected++;
			log_warn_rl(&rl_refused,
				    "refusing a connection: max_clients (%d) "
				    "reached",
				    srv.max_clients);
			client_refuse(fd, NULL, E_OVERLOADED,
				      "too many clients (max_clients reached)");
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			refuse(fd, E_INTERNAL, "out of memory");
			continue;
		}
		c->fd = fd;
		c->id = ++srv.next_id;
		c->refs = 1;
		if (client_credentials(c, &allowed) < 0) {
			log_warn("cannot read peer credentials: %s",
				 strerror(errno));
			free(c);
			close(fd);
			continue;
		}
		if (!allowed) {
			srv.st.rejected++;
			log_warn_rl(&rl_denied,
				    "permission denied: connection from uid %u "
				    "gid %u pid %d is not in allow_users or "
				    "allow_groups",
				    (unsigned)c->uid, (unsigned)c->gid,
				    (int)c->pid);
			client_refuse(fd, c, E_PERMISSION_DENIED,
				      "this user may not use convd");
			continue;
		}
		if (client_attach(c) < 0) {
			refuse(fd, E_INTERNAL, "out of memory");
			free(c);
			continue;
		}
		srv.nclients++;
		log_debug("client %llu: connected (uid %u pid %d%s)",
			  (unsigned long long)c->id, (unsigned)c->uid,
			  (int)c->pid, c->admin ? ", admin" : "");
	}
}

static void server_sweep(evutil_socket_t fd, short what, void *arg)
{
	usec_t now = clock_now();
	usec_t limit = (usec_t)srv.idle_timeout * USEC_PER_SEC;
	struct client *c, *next;

	(void)fd;
	(void)what;
	(void)arg;
	for (c = TAILQ_FIRST(&srv.clients); c; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->lingering) {
			if (now - c->linger_since > LINGER_USEC) {
				/* what came last is read: no reset */
				c->refs++;
				if (!client_discard(c))
					client_close(c, NULL);
				client_unref(c);
			}
		} else if (c->refusing && !c->refuse_answered &&
			   now - c->last_activity > REFUSE_WAIT_USEC) {
			/* no request came: the refusal, with a nil msgid */
			client_reply_error(c, false, 0, c->refuse_code,
					   c->refuse_msg);
			c->refuse_answered = true;
			c->closing = true;
			client_set_reading(c, false);
		} else if (limit > 0 && c->inflight == 0 && !c->refusing &&
			   now - c->last_activity > limit) {
			log_info("client %llu (uid %u pid %d): idle timeout",
				 (unsigned long long)c->id, (unsigned)c->uid,
				 (int)c->pid);
			c->closing = true;
			client_set_reading(c, false);
			client_schedule_flush(c);
		}
	}
}

/* ---- the listening socket -------------------------------------------------- */

static int server_listen(const struct config *cfg)
{
	int fd = sock_listen_unix(cfg->server.socket,
				  (mode_t)cfg->server.socket_mode,
				  cfg->server.socket_group, "[server] socket");

	if (fd < 0)
		return -1;
	srv.own_socket = true;
	snprintf(srv.socket_path, sizeof(srv.socket_path), "%s",
		 cfg->server.socket);
	return fd;
}

/*
 * New access lists reach the connections already open: a client no
 * longer allowed is disconnected (its requests in flight finish, their
 * answers are dropped), and admin rights follow the new lists.
 */
static void server_recheck_access(void)
{
	struct client *c, *next;

	for (c = TAILQ_FIRST(&srv.clients); c; c = next) {
		bool allowed = false, was_admin = c->admin;

		next = TAILQ_NEXT(c, entry);
		if (client_credentials(c, &allowed) < 0) {
			client_close(c, "cannot read peer credentials");
			continue;
		}
		if (!allowed) {
			srv.st.rejected++;
			log_warn("client %llu (uid %u pid %d): no longer in "
				 "allow_users or allow_groups after the "
				 "reload; disconnecting",
				 (unsigned long long)c->id, (unsigned)c->uid,
				 (int)c->pid);
			client_close(c, NULL);
		} else if (was_admin != c->admin) {
			log_notice("client %llu (uid %u pid %d): admin rights "
				   "%s by the reload",
				   (unsigned long long)c->id, (unsigned)c->uid,
				   (int)c->pid, c->admin ? "granted" : "revoked");
		}
	}
}

int server_reconfigure(const struct config *cfg)
{
	struct client *c;
	int rc = 0;

	/* issue 17: a parameter's array or map is one node; its depth is
	 * checked by validate_params (invalid_params) */
	proto_request_limits(&srv.lim, (size_t)cfg->server.max_request_bytes);
	srv.vlim.max_content = (size_t)cfg->server.max_content_bytes;
	srv.max_clients = (int)cfg->server.max_clients;
	srv.max_inflight = (int)cfg->server.max_inflight;
	srv.max_output = (size_t)cfg->server.max_output_bytes;
	request_set_max_output(srv.max_output);
	srv.idle_timeout = (int)cfg->server.idle_timeout;
	budget_set_limit((size_t)cfg->server.memory_budget);
	/* The access lists change all together or not at all. */
	if (acl_parse(cfg, &srv.acl) < 0)
		rc = -1;
	else
		server_recheck_access();
	/* clients paused under the old limit may go on */
	TAILQ_FOREACH(c, &srv.clients, entry) {
		if (c->read_paused && c->inflight < srv.max_inflight) {
			client_set_reading(c, true);
			if (!c->read_paused && c->in_len > 0)
				event_active(&c->rev, EV_READ, 0);
		}
	}
	return rc;
}

int server_setup(struct event_base *base, const struct config *cfg,
		 int listen_fd)
{
	memset(&srv, 0, sizeof(srv));
	TAILQ_INIT(&srv.clients);
	srv.base = base;
	srv.listen_fd = -1;
	request_setup(&server_request_ops);
	if (server_reconfigure(cfg) < 0)
		return -1;
	if (listen_fd >= 0) {
		int fl = fcntl(listen_fd, F_GETFL);

		if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
			log_error("socket activation: %s", strerror(errno));
			return -1;
		}
		srv.listen_fd = listen_fd;
		log_info("listening on the socket passed by systemd");
	} else {
		srv.listen_fd = server_listen(cfg);
		if (srv.listen_fd < 0)
			return -1;
		log_info("listening on %s", srv.socket_path);
	}
	if (event_assign(&srv.accept_ev, base, srv.listen_fd,
			 EV_READ | EV_PERSIST, server_on_accept, NULL) < 0 ||
	    evtimer_assign(&srv.accept_pause, base, server_accept_resume,
			   NULL) < 0 ||
	    event_assign(&srv.sweep, base, -1, EV_PERSIST, server_sweep,
			 NULL) < 0) {
		log_error("server: cannot set up its events");
		return -1;
	}
	srv.events_set = true;
	if (loop_arm(&srv.accept_ev, NULL, "accept") < 0 ||
	    loop_arm_usec(&srv.sweep, SWEEP_USEC, "client sweep timer") < 0)
		return -1;
	return 0;
}

void server_stop_accepting(void)
{
	struct client *c;

	if (srv.stopping)
		return;
	srv.stopping = true;
	if (srv.events_set) {
		event_del(&srv.accept_ev);
		evtimer_del(&srv.accept_pause);
	}
	if (srv.own_socket)
		unlink(srv.socket_path);
	srv.own_socket = false;
	if (srv.listen_fd >= 0)
		close(srv.listen_fd);
	srv.listen_fd = -1;
	/*
	 * Every request that has reached convd is answered: each client's
	 * socket is read until it is empty (then no more), what was read is
	 * answered, and the connection ends once the answers are written,
	 * with our side shut down first so that nothing is reset.
	 */
	TAILQ_FOREACH(c, &srv.clients, entry) {
		if (c->dead || c->refusing || c->lingering || c->closing ||
		    c->eof)
			continue;
		c->draining = true;
		if (c->inflight < srv.max_inflight) {
			client_set_reading(c, true);
			event_active(&c->rev, EV_READ, 0);
		}
	}
}

void server_stats(struct server_stats *out)
{
	*out = srv.st;
	out->clients = srv.nclients;
}

void server_cleanup(void)
{
	if (!srv.base)
		return;		/* server_setup never ran (start-up failed) */
	server_stop_accepting();
	while (!TAILQ_EMPTY(&srv.clients))
		client_close(TAILQ_FIRST(&srv.clients), NULL);
	if (srv.events_set)
		event_del(&srv.sweep);
	srv.events_set = false;
}
