/*
 * libclient_nb.c - the client library's non-blocking mode (TAP).
 *
 *   tests/libclient_nb                 against a scripted peer: a Unix
 *                                      socket this program listens on and
 *                                      answers itself, to provoke what a
 *                                      real convd rarely does (answers in
 *                                      reverse order, split into single
 *                                      bytes, a silent peer, a peer that
 *                                      hangs up, bytes that are not msgpack)
 *   tests/libclient_nb SOCKET USER     against a running convd (run by
 *                                      tests/integration/test_libclient.py):
 *                                      pipelined requests through callbacks,
 *                                      driven by poll(2)
 *
 * Only the public API of include/convd/client.h is used.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "convd/client.h"
#include "unit/tap.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* What a callback saw. */
struct rec {
	int calls;
	int status;
	uint32_t msgid;
	char code[32];
	char result[64];
	int order;
	int64_t count;			/* an integer result */
	struct convc_message *msgs;	/* an array of messages */
	size_t nmsgs;
	int64_t id;			/* add_message's id */
};

static int order_counter;

static void on_rec(struct convc *c, int status, const struct convc_reply *r,
		   const struct convc_error *e, void *arg)
{
	struct rec *x = arg;
	const msgpack_object *res = &r->result;

	(void)c;
	x->calls++;
	x->status = status;
	x->msgid = r->msgid;
	x->order = ++order_counter;
	if (e)
		snprintf(x->code, sizeof(x->code), "%s", e->code);
	if (status != CONVC_OK)
		return;
	if (res->type == MSGPACK_OBJECT_STR)
		snprintf(x->result, sizeof(x->result), "%.*s",
			 (int)res->via.str.size, res->via.str.ptr);
	else if (res->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		x->count = (int64_t)res->via.u64;
	else if (res->type == MSGPACK_OBJECT_ARRAY) {
		struct convc_error me;

		if (convc_result_messages(res, &x->msgs, &x->nmsgs, &me) !=
		    CONVC_OK)
			snprintf(x->code, sizeof(x->code), "%s", me.code);
	} else if (res->type == MSGPACK_OBJECT_MAP) {
		const msgpack_object *id = convc_map_get(res, "id");

		if (id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			x->id = (int64_t)id->via.u64;
	}
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Queues a request whose params are packed from a printf-free list of
 * named string arguments (NULL-terminated key, value pairs). */
static int queue(struct convc *c, const char *method, struct rec *r,
		 const char *const *kv, const char *int_key, int64_t int_val)
{
	struct convc_error e;
	msgpack_packer *pk = convc_request_begin(c, method, NULL, &e);
	size_t n = 0;

	if (!pk)
		return -1;
	while (kv && kv[2 * n])
		n++;
	(void)!msgpack_pack_array(pk, 1);
	(void)!msgpack_pack_map(pk, n + (int_key != NULL));
	for (size_t i = 0; i < n; i++) {
		(void)!msgpack_pack_str_with_body(pk, kv[2 * i],
						  strlen(kv[2 * i]));
		(void)!msgpack_pack_str_with_body(pk, kv[2 * i + 1],
						  strlen(kv[2 * i + 1]));
	}
	if (int_key) {
		(void)!msgpack_pack_str_with_body(pk, int_key, strlen(int_key));
		(void)!msgpack_pack_int64(pk, int_val);
	}
	return convc_request_end_cb(c, on_rec, r, &e) == CONVC_OK ? 0 : -1;
}

/*
 * The event loop: poll(2) on the connection as convc_events() asks, with
 * convc_next_timeout(), until *done says so or limit_ms passes.  Returns
 * the last convc_process status.
 */
static int drive(struct convc *c, int (*done)(void *), void *arg,
		 int limit_ms, struct convc_error *e)
{
	int64_t end = mono_ms() + limit_ms;
	int st = CONVC_OK;

	while (!done(arg) && mono_ms() < end) {
		struct pollfd pfd = { .fd = convc_fd(c), .events = POLLIN };
		int t = convc_next_timeout(c), ev = 0, n;

		if (convc_want_write(c))
			pfd.events |= POLLOUT;
		if (t < 0 || t > 100)
			t = 100;
		n = poll(&pfd, 1, t);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			ev |= CONVC_EV_READ;
		if (n > 0 && (pfd.revents & POLLOUT))
			ev |= CONVC_EV_WRITE;
		st = convc_process(c, ev, e);
		if (st != CONVC_OK)
			break;
	}
	return st;
}

struct all_done {
	struct rec *r;
	size_t n;
};

static int all_called(void *arg)
{
	struct all_done *a = arg;

	for (size_t i = 0; i < a->n; i++)
		if (a->r[i].calls == 0)
			return 0;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Against a scripted peer */

struct peer {
	char dir[48];
	char path[80];
	int lfd, fd;
	msgpack_unpacker up;
	struct convc *c;
};

static int peer_open(struct peer *p)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct convc_error e;

	snprintf(p->dir, sizeof(p->dir), "/tmp/libclient-nb-XXXXXX");
	if (!mkdtemp(p->dir))
		return -1;
	snprintf(p->path, sizeof(p->path), "%s/peer.sock", p->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(p->lfd, 4) < 0)
		return -1;
	p->c = convc_connect(p->path, 5000, &e);
	if (!p->c)
		return -1;
	p->fd = accept(p->lfd, NULL, NULL);
	if (p->fd < 0 || !msgpack_unpacker_init(&p->up, 4096))
		return -1;
	return 0;
}

static void peer_close(struct peer *p)
{
	if (p->c)
		convc_close(p->c);
	p->c = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	close(p->lfd);
	msgpack_unpacker_destroy(&p->up);
	unlink(p->path);
	rmdir(p->dir);
}

/* Reads n requests from the client (convc_process writes them). */
static int peer_requests(struct peer *p, size_t n, uint32_t *msgids,
			 char (*methods)[32])
{
	struct convc_error e;
	msgpack_unpacked u;
	size_t got = 0;
	int64_t end = mono_ms() + 5000;

	msgpack_unpacked_init(&u);
	while (got < n && mono_ms() < end) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		ssize_t r;

		if (convc_process(p->c, 0, &e) != CONVC_OK)
			break;
		while (msgpack_unpacker_next(&p->up, &u) ==
		       MSGPACK_UNPACK_SUCCESS) {
			const msgpack_object *a = u.data.via.array.ptr;

			if (got < n && u.data.type == MSGPACK_OBJECT_ARRAY &&
			    u.data.via.array.size == 4) {
				msgids[got] = (uint32_t)a[1].via.u64;
				snprintf(methods[got], 32, "%.*s",
					 (int)a[2].via.str.size,
					 a[2].via.str.ptr);
				got++;
			}
		}
		if (got == n || poll(&pfd, 1, 50) <= 0)
			continue;
		if (!msgpack_unpacker_reserve_buffer(&p->up, 4096))
			break;
		r = read(p->fd, msgpack_unpacker_buffer(&p->up), 4096);
		if (r <= 0)
			break;
		msgpack_unpacker_buffer_consumed(&p->up, (size_t)r);
	}
	msgpack_unpacked_destroy(&u);
	return got == n ? 0 : -1;
}

/* [1, msgid, nil, "text"] or [1, msgid, {code, message}, nil]. */
static void pack_response(msgpack_sbuffer *sb, uint32_t msgid,
			  const char *result, const char *code)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	(void)!msgpack_pack_array(&pk, 4);
	(void)!msgpack_pack_uint8(&pk, 1);
	(void)!msgpack_pack_uint32(&pk, msgid);
	if (code) {
		(void)!msgpack_pack_map(&pk, 2);
		(void)!msgpack_pack_str_with_body(&pk, "code", 4);
		(void)!msgpack_pack_str_with_body(&pk, code, strlen(code));
		(void)!msgpack_pack_str_with_body(&pk, "message", 7);
		(void)!msgpack_pack_str_with_body(&pk, "scripted", 8);
		(void)!msgpack_pack_nil(&pk);
	} else {
		(void)!msgpack_pack_nil(&pk);
		(void)!msgpack_pack_str_with_body(&pk, result, strlen(result));
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void test_reverse_split(void)
{
	struct peer p = { .fd = -1 };
	struct rec r[5] = { { 0 } };
	uint32_t ids[5];
	char methods[5][32];
	msgpack_sbuffer sb;
	struct convc_error e;
	int st = CONVC_OK, in_order = 1;

	order_counter = 0;
	if (!ok(peer_open(&p) == 0, "scripted peer: connected"))
		return;
	for (int i = 0; i < 5; i++)
		if (queue(p.c, i == 2 ? "get_thread" : "ping", &r[i], NULL,
			  NULL, 0) < 0)
			in_order = 0;
	ok(in_order, "five requests queued with callbacks");
	is_int(convc_outstanding(p.c), 5, "five outstanding");
	ok(peer_requests(&p, 5, ids, methods) == 0, "the peer got them");
	is_str(methods[2], "get_thread", "in the order they were queued");
	/* answers in reverse order, the first one an error, written one
	 * byte at a time with a convc_process after each */
	msgpack_sbuffer_init(&sb);
	for (int i = 4; i >= 0; i--)
		pack_response(&sb, ids[i], i == 2 ? "thread-x" : "pong",
			      i == 4 ? "unavailable" : NULL);
	for (size_t k = 0; k < sb.size && st == CONVC_OK; k++) {
		struct pollfd pfd = { .fd = convc_fd(p.c), .events = POLLIN };

		if (write_all(p.fd, sb.data + k, 1) < 0)
			break;
		if (poll(&pfd, 1, 1000) > 0)
			st = convc_process(p.c, CONVC_EV_READ, &e);
	}
	msgpack_sbuffer_destroy(&sb);
	is_int(st, CONVC_OK, "convc_process: every byte handled");
	for (int i = 0; i < 5; i++) {
		is_int(r[i].calls, 1, "request %d: one callback", i);
		is_int(r[i].msgid, ids[i], "request %d: its msgid", i);
		is_int(r[i].order, 5 - i, "request %d: answered in the order "
		       "the answers came", i);
	}
	is_int(r[4].status, CONVC_ERR_DAEMON, "an error answer: "
	       "CONVC_ERR_DAEMON");
	is_str(r[4].code, "unavailable", "with the daemon's code");
	is_str(r[2].result, "thread-x", "a result reaches its request");
	is_str(r[0].result, "pong", "and the first");
	is_int(convc_outstanding(p.c), 0, "nothing outstanding");
	ok(convc_usable(p.c), "the connection is still usable");
	peer_close(&p);
}

/* A callback that queues the next request, up to `left` more. */
struct chain {
	int left, calls, bad;
	struct rec last;
};

static void on_chain(struct convc *c, int status, const struct convc_reply *r,
		     const struct convc_error *e, void *arg)
{
	struct chain *ch = arg;
	struct convc_error e2;
	struct convc_reply r2;

	(void)r;
	(void)e;
	ch->calls++;
	if (status != CONVC_OK)
		ch->bad++;
	/* no I/O on this connection from a callback */
	if (convc_process(c, CONVC_EV_READ, &e2) != CONVC_ERR_LOCAL ||
	    strcmp(e2.code, "invalid_argument") != 0)
		ch->bad++;
	if (convc_ping(c, &e2) != CONVC_ERR_LOCAL)
		ch->bad++;
	if (convc_wait_any(c, &r2, &e2) != CONVC_ERR_LOCAL)
		ch->bad++;
	if (ch->left-- > 0 &&
	    convc_send_cb(c, "ping", NULL, 0, on_chain, ch, NULL, &e2) !=
		    CONVC_OK)
		ch->bad++;
}

struct int_at_least {
	const int *v;
	int want;
};

static int int_reached(void *arg)
{
	const struct int_at_least *w = arg;

	return *w->v >= w->want;
}

static void test_chain_and_blocking(void)
{
	struct peer p = { .fd = -1 };
	struct chain ch = { .left = 3 };
	struct convc_error e;
	struct convc_reply reply;
	uint32_t ids[2];
	char methods[2][32];
	msgpack_sbuffer sb;
	uint32_t bid;
	int st;

	if (!ok(peer_open(&p) == 0, "scripted peer: connected"))
		return;
	ok(convc_send_cb(p.c, "ping", NULL, 0, on_chain, &ch, NULL, &e) ==
	   CONVC_OK, "a callback request");
	ok(convc_send(p.c, "stats", NULL, 0, &bid, &e) == CONVC_OK,
	   "and a blocking one");
	ok(peer_requests(&p, 2, ids, methods) == 0, "the peer got both");
	/* both answered, the callback request first: convc_wait, reading
	 * its own answer, runs the callback on the way */
	msgpack_sbuffer_init(&sb);
	pack_response(&sb, ids[0], "pong", NULL);
	pack_response(&sb, bid, "stats!", NULL);
	(void)!write_all(p.fd, sb.data, sb.size);
	st = convc_wait(p.c, bid, &reply, &e);
	ok(st == CONVC_OK && reply.result.type == MSGPACK_OBJECT_STR &&
	   reply.result.via.str.size == 6, "convc_wait gets its answer");
	convc_reply_free(&reply);
	is_int(ch.calls, 1, "the callback ran from convc_wait");
	/* the requests the callbacks queue go out with convc_process */
	for (int i = 0; i < 3; i++) {
		struct int_at_least w = { &ch.calls, i + 2 };

		msgpack_sbuffer_clear(&sb);
		if (peer_requests(&p, 1, ids, methods) < 0)
			break;
		pack_response(&sb, ids[0], "pong", NULL);
		(void)!write_all(p.fd, sb.data, sb.size);
		(void)!drive(p.c, int_reached, &w, 3000, &e);
	}
	msgpack_sbuffer_destroy(&sb);
	is_int(ch.calls, 4, "a chain of requests, each queued by the "
	       "previous one's callback");
	is_int(ch.bad, 0, "no I/O allowed inside a callback; queueing is");
	ok(convc_wait(p.c, 12345, &reply, &e) == CONVC_ERR_LOCAL,
	   "convc_wait on an unknown msgid is refused");
	peer_close(&p);
}

static void test_hangup(void)
{
	struct peer p = { .fd = -1 };
	struct rec r[3] = { { 0 } };
	struct all_done a = { r, 3 };
	uint32_t ids[3];
	char methods[3][32];
	struct convc_error e;
	int st;

	if (!ok(peer_open(&p) == 0, "scripted peer: connected"))
		return;
	for (int i = 0; i < 3; i++)
		(void)!queue(p.c, "ping", &r[i], NULL, NULL, 0);
	ok(peer_requests(&p, 3, ids, methods) == 0, "three requests sent");
	close(p.fd);
	p.fd = -1;
	st = drive(p.c, all_called, &a, 3000, &e);
	is_int(st, CONVC_ERR_CONN, "the peer hung up: CONVC_ERR_CONN");
	is_str(e.code, "closed", "code 'closed'");
	for (int i = 0; i < 3; i++) {
		is_int(r[i].calls, 1, "request %d: its callback ran once", i);
		ok(r[i].status == CONVC_ERR_CONN &&
		   strcmp(r[i].code, "closed") == 0,
		   "request %d: with the connection's error", i);
	}
	ok(!convc_usable(p.c), "the connection is unusable");
	ok(convc_send_cb(p.c, "ping", NULL, 0, on_rec, &r[0], NULL, &e) ==
	   CONVC_ERR_CONN, "new requests are refused");
	ok(convc_process(p.c, CONVC_EV_READ, &e) == CONVC_ERR_CONN,
	   "convc_process keeps failing");
	is_int(r[0].calls, 1, "and calls nothing again");
	peer_close(&p);
}

static void test_timeout(void)
{
	struct peer p = { .fd = -1 };
	struct rec r = { 0 };
	struct all_done a = { &r, 1 };
	uint32_t ids[1];
	char methods[1][32];
	struct convc_error e;
	int t, st;
	int64_t t0;

	if (!ok(peer_open(&p) == 0, "scripted peer: connected"))
		return;
	ok(convc_next_timeout(p.c) == -1, "no request: no timeout");
	convc_set_timeout(p.c, 300);
	(void)!queue(p.c, "ping", &r, NULL, NULL, 0);
	t = convc_next_timeout(p.c);
	ok(t > 0 && t <= 300, "a request with a 300 ms timeout: %d ms left",
	   t);
	ok(peer_requests(&p, 1, ids, methods) == 0, "sent; never answered");
	t0 = mono_ms();
	st = drive(p.c, all_called, &a, 3000, &e);
	is_int(st, CONVC_ERR_CONN, "CONVC_ERR_CONN once late");
	is_str(e.code, "timeout", "code 'timeout'");
	ok(mono_ms() - t0 < 2000, "within the timeout, not the test's limit");
	ok(r.calls == 1 && r.status == CONVC_ERR_CONN &&
	   strcmp(r.code, "timeout") == 0, "the callback got 'timeout'");
	peer_close(&p);
}

static void test_garbage(void)
{
	struct peer p = { .fd = -1 };
	struct rec r = { 0 };
	struct all_done a = { &r, 1 };
	uint32_t ids[1];
	char methods[1][32];
	struct convc_error e;

	if (!ok(peer_open(&p) == 0, "scripted peer: connected"))
		return;
	(void)!queue(p.c, "ping", &r, NULL, NULL, 0);
	ok(peer_requests(&p, 1, ids, methods) == 0, "sent");
	(void)!write_all(p.fd, "\xc1", 1);
	is_int(drive(p.c, all_called, &a, 3000, &e), CONVC_ERR_CONN,
	       "a byte that is not msgpack fails the connection");
	ok(r.calls == 1 && strcmp(r.code, "protocol") == 0,
	   "the callback got 'protocol'");
	peer_close(&p);
}

/* A callback that closes its connection. */
static void on_close(struct convc *c, int status, const struct convc_reply *r,
		     const struct convc_error *e, void *arg)
{
	int *calls = arg;

	(void)status;
	(void)r;
	(void)e;
	if ((*calls)++ == 0)
		convc_close(c);
}

static void test_close_in_callback(void)
{
	struct peer p = { .fd = -1 };
	int calls = 0, others = 0;
	uint32_t ids[2];
	char methods[2][32];
	msgpack_sbuffer sb;
	struct convc_error e;
	struct rec r = { 0 };
	int st = CONVC_OK;

	if (!ok(peer_open(&p) == 0, "scripted peer: connected"))
		return;
	(void)!convc_send_cb(p.c, "ping", NULL, 0, on_close, &calls, NULL, &e);
	(void)!queue(p.c, "ping", &r, NULL, NULL, 0);
	ok(peer_requests(&p, 2, ids, methods) == 0, "two requests sent");
	msgpack_sbuffer_init(&sb);
	pack_response(&sb, ids[0], "pong", NULL);
	(void)!write_all(p.fd, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	for (int i = 0; i < 50 && st == CONVC_OK; i++) {
		struct pollfd pfd = { .fd = convc_fd(p.c), .events = POLLIN };

		if (poll(&pfd, 1, 100) > 0)
			st = convc_process(p.c, CONVC_EV_READ, &e);
	}
	p.c = NULL;	/* freed by convc_process */
	ok(st == CONVC_ERR_CONN && strcmp(e.code, "closed") == 0,
	   "convc_close in a callback: convc_process returns 'closed'");
	is_int(calls, 1, "the closing callback ran once");
	others = r.calls == 1 && r.status == CONVC_ERR_CONN;
	ok(others, "the other request's callback got CONVC_ERR_CONN");
	peer_close(&p);

	/* convc_close with callbacks outstanding calls them */
	memset(&r, 0, sizeof(r));
	if (!ok(peer_open(&p) == 0, "scripted peer: connected"))
		return;
	(void)!queue(p.c, "ping", &r, NULL, NULL, 0);
	convc_close(p.c);
	p.c = NULL;
	ok(r.calls == 1 && r.status == CONVC_ERR_CONN &&
	   strcmp(r.code, "closed") == 0,
	   "convc_close answers outstanding callbacks with 'closed'");
	peer_close(&p);
}

/* A callback that compares its result with msgpack-c's decoding. */
struct expect {
	const char *bytes;		/* the result as sent */
	size_t len;
	int calls, same;
};

static void on_expect(struct convc *c, int status,
		      const struct convc_reply *r,
		      const struct convc_error *e, void *arg)
{
	struct expect *x = arg;
	msgpack_zone z;
	msgpack_object want;
	size_t off = 0;

	(void)c;
	(void)e;
	x->calls++;
	msgpack_zone_init(&z, 1024);
	x->same = status == CONVC_OK &&
		  msgpack_unpack(x->bytes, x->len, &off, &z, &want) ==
			  MSGPACK_UNPACK_SUCCESS &&
		  want.type == r->result.type &&
		  msgpack_object_equal(want, r->result);
	msgpack_zone_destroy(&z);
}

/* Results of every scalar format (and a few others), the msgid in every
 * integer format: what a callback gets is what msgpack-c decodes. */
static void test_result_formats(void)
{
#define B(s) { s, sizeof(s) - 1, 0, 0 }
	struct expect x[] = {
		B("\x05"), B("\xff"), B("\xe0"), B("\xcc\xc8"),
		B("\xcd\x01\x00"), B("\xce\x00\x01\x00\x00"),
		B("\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), B("\xd0\x80"),
		B("\xd0\x05"), B("\xd1\xff\x00"), B("\xd2\x7f\xff\xff\xff"),
		B("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"), B("\xc0"),
		B("\xc2"), B("\xc3"), B("\xa0"), B("\xa3" "abc"),
		B("\xd9\x03" "abc"), B("\xda\x00\x03" "abc"),
		B("\xdb\x00\x00\x00\x03" "abc"),
		B("\xcb\x40\x09\x21\xfb\x54\x44\x2d\x18"),
		B("\x92\x01\xa1x"), B("\x81\xa1k\xc3"),
		B("\xd6\xff\x00\x00\x00\x01"), B("\xc4\x02\x00\x01"),
	};
#undef B
	static const char *const ids[] = { "", "\xcc", "\xcd", "\xce",
					   "\xcf", "\xd0", "\xd1", "\xd2",
					   "\xd3" };
	struct peer p = { .fd = -1 };
	uint32_t msgids[ARRAY_LEN(x)];
	char methods[ARRAY_LEN(x)][32];
	struct convc_error e;
	int calls = 0, same = 0, st = CONVC_OK;
	msgpack_sbuffer sb;

	if (!ok(peer_open(&p) == 0, "scripted peer: connected"))
		return;
	for (size_t i = 0; i < ARRAY_LEN(x); i++)
		(void)!convc_send_cb(p.c, "ping", NULL, 0, on_expect, &x[i],
				     NULL, &e);
	ok(peer_requests(&p, ARRAY_LEN(x), msgids, methods) == 0,
	   "%zu requests sent", ARRAY_LEN(x));
	msgpack_sbuffer_init(&sb);
	for (size_t i = 0; i < ARRAY_LEN(x); i++) {
		const char *f = ids[i % ARRAY_LEN(ids)];
		unsigned char id[9];
		size_t n = 0;

		/* [1, msgid (in format f), nil, result] */
		msgpack_sbuffer_write(&sb, "\x94\x01", 2);
		if (*f) {
			unsigned k = 1u << (((unsigned char)*f - 0xcc) & 3);

			id[n++] = (unsigned char)*f;
			for (unsigned j = k; j-- > 0;)
				id[n++] = (unsigned char)((uint64_t)msgids[i] >>
							  (8 * j));
		} else {
			id[n++] = (unsigned char)msgids[i];	/* < 128 */
		}
		msgpack_sbuffer_write(&sb, (const char *)id, n);
		msgpack_sbuffer_write(&sb, "\xc0", 1);
		msgpack_sbuffer_write(&sb, x[i].bytes, x[i].len);
	}
	(void)!write_all(p.fd, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	for (int t = 0; t < 50 && st == CONVC_OK && calls < (int)ARRAY_LEN(x);
	     t++) {
		struct pollfd pfd = { .fd = convc_fd(p.c), .events = POLLIN };

		if (poll(&pfd, 1, 100) > 0)
			st = convc_process(p.c, CONVC_EV_READ, &e);
		calls = same = 0;
		for (size_t i = 0; i < ARRAY_LEN(x); i++) {
			calls += x[i].calls;
			same += x[i].same;
		}
	}
	is_int(st, CONVC_OK, "every format read");
	is_int(calls, ARRAY_LEN(x), "every callback ran");
	is_int(same, ARRAY_LEN(x), "each got what msgpack-c decodes");
	for (size_t i = 0; i < ARRAY_LEN(x); i++)
		if (!x[i].same)
			printf("#   result %zu (0x%02x...) differs\n", i,
			       (unsigned char)x[i].bytes[0]);
	peer_close(&p);
}

/* convd refuses a connection: one error with a nil msgid, then it closes
 * (before the client has even written). */
static void test_refused(void)
{
	struct peer p = { .fd = -1 };
	struct convc_error e;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	if (!ok(peer_open(&p) == 0, "scripted peer: connected"))
		return;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	(void)!msgpack_pack_array(&pk, 4);
	(void)!msgpack_pack_uint8(&pk, 1);
	(void)!msgpack_pack_nil(&pk);
	(void)!msgpack_pack_map(&pk, 2);
	(void)!msgpack_pack_str_with_body(&pk, "code", 4);
	(void)!msgpack_pack_str_with_body(&pk, "overloaded", 10);
	(void)!msgpack_pack_str_with_body(&pk, "message", 7);
	(void)!msgpack_pack_str_with_body(&pk, "too many clients", 16);
	(void)!msgpack_pack_nil(&pk);
	(void)!write_all(p.fd, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	close(p.fd);
	p.fd = -1;
	ok(convc_ping(p.c, &e) == CONVC_ERR_CONN &&
	   strcmp(e.code, "overloaded") == 0 &&
	   strcmp(e.message, "too many clients") == 0,
	   "a refused connection reports convd's reason, not 'closed' (%s)",
	   e.code);
	peer_close(&p);
}

static int scripted(void)
{
	char v[32];

	snprintf(v, sizeof(v), "%d.%d.%d", CONVC_VERSION_MAJOR,
		 CONVC_VERSION_MINOR, CONVC_VERSION_PATCH);
	is_str(convc_version(), v, "convc_version() matches the header");
	test_reverse_split();
	test_chain_and_blocking();
	test_hangup();
	test_timeout();
	test_garbage();
	test_close_in_callback();
	test_refused();
	test_result_formats();
	return tap_done();
}

/* ------------------------------------------------------------------ */
/* Against convd */

#define NADD 200

static int live(const char *sock, const char *user)
{
	static struct rec adds[NADD];
	struct rec more[6] = { { 0 } };
	struct all_done a = { adds, NADD }, b = { more, ARRAY_LEN(more) };
	struct convc_error e;
	struct convc *c = convc_connect(sock, 10000, &e);
	char content[NADD][32];
	int st, bad = 0, sorted = 1;

	if (!ok(c != NULL, "connected to convd"))
		return tap_done();
	/* 200 add_message in flight at once */
	for (int i = 0; i < NADD; i++) {
		const char *kv[] = { "user_id", user, "provider", "anthropic",
				     "role", i % 2 ? "assistant" : "user",
				     "content", content[i], NULL };

		snprintf(content[i], sizeof(content[i]), "message %03d", i);
		if (queue(c, "add_message", &adds[i], kv, NULL, 0) < 0)
			bad++;
	}
	is_int(bad, 0, "%d add_message queued", NADD);
	is_int(convc_outstanding(c), NADD, "all outstanding");
	ok(convc_want_write(c), "output waits for the socket");
	ok(convc_events(c) == (CONVC_EV_READ | CONVC_EV_WRITE),
	   "convc_events asks for both");
	st = drive(c, all_called, &a, 30000, &e);
	is_int(st, CONVC_OK, "the poll loop ran without a connection error");
	for (int i = 0; i < NADD; i++)
		if (adds[i].calls != 1 || adds[i].status != CONVC_OK ||
		    adds[i].id <= 0)
			bad++;
	is_int(bad, 0, "every add_message answered once, with an id");
	for (int i = 0; i < NADD; i++)
		for (int j = i + 1; j < NADD; j++)
			if (adds[i].id == adds[j].id)
				bad++;
	is_int(bad, 0, "ids are distinct");

	/* different methods pipelined, one of them invalid */
	{
		const char *kv_user[] = { "user_id", user, NULL };
		const char *kv_recent[] = { "user_id", user, "provider",
					    "anthropic", NULL };
		const char *kv_bad[] = { "user_id", user, "provider", "x",
					 "role", "robot", "content", "y",
					 NULL };

		(void)!queue(c, "get_conversation_count", &more[0], kv_user,
			     NULL, 0);
		(void)!queue(c, "get_recent_conversations", &more[1],
			     kv_recent, "limit", 1000);
		(void)!queue(c, "add_message", &more[2], kv_bad, NULL, 0);
		(void)!queue(c, "ping", &more[3], NULL, NULL, 0);
		(void)!queue(c, "export_history", &more[4], kv_user, "limit",
			     150);
		(void)!queue(c, "no_such_thing", &more[5], NULL, NULL, 0);
	}
	/* a blocking call meanwhile: the callbacks run as their answers
	 * are read */
	ok(convc_ping(c, &e) == CONVC_OK, "a blocking ping among them");
	st = drive(c, all_called, &b, 30000, &e);
	is_int(st, CONVC_OK, "second batch: no connection error");
	ok(more[0].status == CONVC_OK && more[0].count == NADD,
	   "get_conversation_count: %" PRId64, more[0].count);
	ok(more[1].status == CONVC_OK && more[1].nmsgs == NADD,
	   "get_recent_conversations: %zu messages", more[1].nmsgs);
	for (size_t i = 1; i < more[1].nmsgs; i++) {
		const struct convc_message *x = &more[1].msgs[i - 1];
		const struct convc_message *y = &more[1].msgs[i];

		if (!(x->created_at_usec < y->created_at_usec ||
		      (x->created_at_usec == y->created_at_usec &&
		       x->id < y->id)))
			bad++;
	}
	is_int(bad, 0, "oldest first, ties by id");
	ok(more[2].status == CONVC_ERR_DAEMON &&
	   strcmp(more[2].code, "invalid_params") == 0,
	   "an invalid request: invalid_params");
	is_str(more[3].result, "pong", "ping through a callback");
	ok(more[4].status == CONVC_OK && more[4].nmsgs == 150,
	   "export_history: a page of 150");
	for (size_t i = 1; i < more[4].nmsgs; i++)
		if (more[4].msgs[i].id <= more[4].msgs[i - 1].id)
			sorted = 0;
	ok(sorted, "in ascending id order");
	ok(more[5].status == CONVC_ERR_DAEMON &&
	   strcmp(more[5].code, "no_such_method") == 0,
	   "an unknown method: no_such_method");
	ok(convc_usable(c), "the connection is still usable");
	for (size_t i = 0; i < ARRAY_LEN(more); i++)
		convc_messages_free(more[i].msgs, more[i].nmsgs);
	convc_close(c);
	return tap_done();
}

int main(int argc, char **argv)
{
	if (argc == 3)
		return live(argv[1], argv[2]);
	if (argc != 1) {
		fprintf(stderr, "usage: libclient_nb [SOCKET USER]\n");
		return 2;
	}
	return scripted();
}
