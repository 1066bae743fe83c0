/*
 * client.c - the client side of convd's MessagePack-RPC protocol.
 *
 * See include/convd/client.h for the model.  Internals:
 *
 * - The socket is non-blocking; every wait is a poll(2) bounded by the
 *   deadline of the current call.
 * - Requests are packed into `out`; `out_ready` marks the end of the last
 *   complete request (a request under construction is never sent).
 * - Responses are read into `in`.  scan_object() finds where one msgpack
 *   object ends with two counters (position, values still expected), so
 *   the scan resumes where it stopped when more bytes arrive and never
 *   recurses.  A complete frame is decoded by msgpack_unpack_next()
 *   (strings point into the frame, which the reply keeps) and queued.
 * - Every request id is kept in `outstanding` until its response has been
 *   handed to the caller; a response for an id that is not outstanding is
 *   a protocol error.
 * - A request with a completion callback (non-blocking mode) is answered
 *   as soon as its frame is complete: the frame is decoded where it lies
 *   in the input buffer (peek_msgid() tells which request it is before
 *   anything is copied), the callback runs, and the decoded objects are
 *   freed when it returns.  Callbacks may queue requests but not do I/O
 *   (`dispatching`); convc_close from a callback is deferred
 *   (`close_pending`) to the end of the library call that ran it, which
 *   is the only place a connection is freed (leave()).
 * - Only the API in convd/client.h is exported: the library is built
 *   with -fvisibility=hidden and the header sets default visibility.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "convd/client.h"

#define READ_CHUNK ((size_t)64 * 1024)
#define MIN_MAX_RESPONSE ((size_t)64)

struct queued {
	struct queued *next;
	int status;			/* CONVC_OK or CONVC_ERR_DAEMON */
	struct convc_error err;		/* CONVC_ERR_DAEMON */
	struct convc_reply reply;
};

struct outstanding {
	uint32_t msgid;
	bool received;			/* its response is in the queue */
	convc_callback cb;		/* NULL: answered through convc_wait */
	void *arg;
	int64_t deadline;		/* callback requests: monotonic ms, or -1 */
};

struct scan_state {
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
	struct scan_state scan;

	uint32_t next_msgid;
	struct outstanding *pend;
	size_t npend, pend_cap;
	size_t ncb;			/* outstanding requests with a callback */
	size_t ndeadline;		/* ... of which have a deadline */

	struct queued *qhead, *qtail;

	int dispatching;		/* a callback is running */
	bool close_pending;		/* convc_close was called from one */
	msgpack_zone *zone;		/* decoded callback replies, reused */
};

/* ------------------------------------------------------------------ */
/* Errors */

/* Copies at most size-1 bytes of s[0..len) (stopping at a NUL) without
 * cutting a UTF-8 sequence in two. */
static void copy_trunc(char *dst, size_t size, const char *s, size_t len)
{
	const char *nul = memchr(s, '\0', len);
	size_t n;

	if (nul)
		len = (size_t)(nul - s);
	n = len;
	if (n > size - 1) {
		n = size - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static void set_errv(struct convc_error *err, const char *code,
		     const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void set_errv(struct convc_error *err, const char *code,
		     const char *fmt, va_list ap)
{
	char buf[sizeof(err->message) + 64];
	int n;

	if (!err)
		return;
	copy_trunc(err->code, sizeof(err->code), code, strlen(code));
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		buf[0] = '\0';
	copy_trunc(err->message, sizeof(err->message), buf, strlen(buf));
}

static int fail(struct convc_error *err, int status, const char *code,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int fail(struct convc_error *err, int status, const char *code,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_errv(err, code, fmt, ap);
	va_end(ap);
	return status;
}

/* The connection is unusable from now on. */
static int conn_fail(struct convc *c, struct convc_error *err,
		     const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int conn_fail(struct convc *c, struct convc_error *err,
		     const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_errv(&c->broken_err, code, fmt, ap);
	va_end(ap);
	c->broken = true;
	if (err)
		*err = c->broken_err;
	return CONVC_ERR_CONN;
}

/* The error to report for a call on a connection that failed earlier. */
static int broken_status(const struct convc *c, struct convc_error *err)
{
	return fail(err, CONVC_ERR_CONN, "closed",
		    "connection failed earlier (%s: %s)", c->broken_err.code,
		    c->broken_err.message);
}

/* ------------------------------------------------------------------ */
/* Time */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_after(int timeout_ms)
{
	return timeout_ms > 0 ? now_ms() + timeout_ms : -1;
}

/* poll(2) timeout until deadline: -1 for none, 0 if it has passed. */
static int poll_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* ------------------------------------------------------------------ */
/* Framing: where does one msgpack object end? */

enum scan_result {
	SCAN_DONE,		/* st->pos is the object's size */
	SCAN_MORE,		/* valid so far, need more bytes */
	SCAN_BAD,		/* 0xc1, never valid msgpack */
	SCAN_TOO_LARGE,		/* would exceed the limit */
};

static uint64_t be(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * Header of the value at p[0..avail): *hdr bytes of type and length
 * fields, then *body bytes of payload; *children values follow it
 * (elements of an array, keys and values of a map).  Returns 1, 0 if the
 * header is not complete yet, -1 for an invalid type byte.
 */
static int value_head(const unsigned char *p, size_t avail, size_t *hdr,
		      uint64_t *body, uint64_t *children)
{
	unsigned b = p[0];
	unsigned lenbytes = 0;	/* size of a length field after the type */
	unsigned mult = 0;	/* 0: length is body bytes; 1/2: children */

	*body = 0;
	*children = 0;
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
		*hdr = 1;
		return 1;
	}
	if (b >= 0x80 && b <= 0x8f) {
		*hdr = 1;
		*children = 2 * (uint64_t)(b & 0x0f);
		return 1;
	}
	if (b >= 0x90 && b <= 0x9f) {
		*hdr = 1;
		*children = b & 0x0f;
		return 1;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		*hdr = 1;
		*body = b & 0x1f;
		return 1;
	}
	switch (b) {
	case 0xc1:
		return -1;
	case 0xc4: case 0xd9: lenbytes = 1; *hdr = 2; break;	/* bin8 str8 */
	case 0xc5: case 0xda: lenbytes = 2; *hdr = 3; break;
	case 0xc6: case 0xdb: lenbytes = 4; *hdr = 5; break;
	case 0xc7: lenbytes = 1; *hdr = 3; break;		/* ext8 + type */
	case 0xc8: lenbytes = 2; *hdr = 4; break;
	case 0xc9: lenbytes = 4; *hdr = 6; break;
	case 0xca: *hdr = 5; return 1;				/* float32 */
	case 0xcb: *hdr = 9; return 1;				/* float64 */
	case 0xcc: case 0xd0: *hdr = 2; return 1;
	case 0xcd: case 0xd1: *hdr = 3; return 1;
	case 0xce: case 0xd2: *hdr = 5; return 1;
	case 0xcf: case 0xd3: *hdr = 9; return 1;
	case 0xd4: *hdr = 3; return 1;				/* fixext 1 */
	case 0xd5: *hdr = 4; return 1;
	case 0xd6: *hdr = 6; return 1;
	case 0xd7: *hdr = 10; return 1;
	case 0xd8: *hdr = 18; return 1;
	case 0xdc: lenbytes = 2; *hdr = 3; mult = 1; break;	/* array16 */
	case 0xdd: lenbytes = 4; *hdr = 5; mult = 1; break;
	case 0xde: lenbytes = 2; *hdr = 3; mult = 2; break;	/* map16 */
	case 0xdf: lenbytes = 4; *hdr = 5; mult = 2; break;
	default:
		return -1;
	}
	if (avail < 1 + (size_t)lenbytes)
		return 0;
	if (mult)
		*children = mult * be(p + 1, lenbytes);
	else
		*body = be(p + 1, lenbytes);
	return 1;
}

/*
 * Continues scanning one object in p[0..avail) from *st (start with
 * {0, 1}).  limit bounds the object's size: every value still expected
 * takes at least one byte, so a container announcing more values than
 * the limit leaves room for is refused at once.
 */
static enum scan_result scan_object(const unsigned char *p, size_t avail,
				    size_t limit, struct scan_state *st)
{
	while (st->need > 0) {
		size_t hdr;
		uint64_t body, children;
		int r;

		if (st->pos >= avail)
			return SCAN_MORE;
		r = value_head(p + st->pos, avail - st->pos, &hdr, &body,
			       &children);
		if (r < 0)
			return SCAN_BAD;
		if (r == 0)
			return st->pos + 9 > limit ? SCAN_TOO_LARGE : SCAN_MORE;
		if (body > limit || hdr + body > limit - st->pos)
			return SCAN_TOO_LARGE;
		if (st->pos + hdr + body > avail)
			return SCAN_MORE;
		st->pos += hdr + (size_t)body;
		st->need--;
		if (children > limit || st->need + children > limit - st->pos)
			return SCAN_TOO_LARGE;
		st->need += children;
	}
	return SCAN_DONE;
}

/* ------------------------------------------------------------------ */
/* Output buffer and packing */

static bool out_reserve(struct convc *c, size_t more)
{
	size_t cap;
	char *p;

	if (c->out_cap - c->out_len >= more)
		return true;
	cap = c->out_cap ? c->out_cap : 4096;
	while (cap - c->out_len < more) {
		if (cap > SIZE_MAX / 2)
			return false;
		cap *= 2;
	}
	p = realloc(c->out, cap);
	if (!p)
		return false;
	c->out = p;
	c->out_cap = cap;
	return true;
}

/* msgpack_packer callback: appends to the request being built. */
static int out_write(void *data, const char *buf, size_t len)
{
	struct convc *c = data;

	if (!c->building || c->pack_too_large || c->pack_nomem)
		return -1;
	if (len > CONVC_MAX_REQUEST ||
	    c->out_len - c->req_start > CONVC_MAX_REQUEST - len) {
		c->pack_too_large = true;
		return -1;
	}
	if (!out_reserve(c, len)) {
		c->pack_nomem = true;
		return -1;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	return 0;
}

static struct outstanding *find_pending(struct convc *c, uint32_t msgid)
{
	for (size_t i = 0; i < c->npend; i++)
		if (c->pend[i].msgid == msgid)
			return &c->pend[i];
	return NULL;
}

static void remove_pending(struct convc *c, uint32_t msgid)
{
	for (size_t i = 0; i < c->npend; i++) {
		if (c->pend[i].msgid == msgid) {
			if (c->pend[i].deadline >= 0)
				c->ndeadline--;
			c->pend[i] = c->pend[c->npend - 1];
			c->npend--;
			return;
		}
	}
}

static uint32_t new_msgid(struct convc *c)
{
	/* At most SIZE_MAX/sizeof entries are outstanding, far below 2^32,
	 * so a free id is always found. */
	while (find_pending(c, c->next_msgid))
		c->next_msgid++;
	return c->next_msgid++;
}

void convc_request_abort(struct convc *c)
{
	if (!c || !c->building)
		return;
	c->out_len = c->req_start;
	c->building = false;
	c->pack_too_large = false;
	c->pack_nomem = false;
}

/* Starts a request; *pk receives the packer for the params. */
static int begin(struct convc *c, const char *method, uint32_t *msgid,
		 msgpack_packer **pk, struct convc_error *err)
{
	size_t mlen;

	*pk = NULL;
	if (!c || !method) {
		fail(err, CONVC_ERR_LOCAL, "invalid_argument",
		     "no connection or no method");
		return CONVC_ERR_LOCAL;
	}
	if (c->broken) {
		broken_status(c, err);
		return CONVC_ERR_CONN;
	}
	if (c->building) {
		fail(err, CONVC_ERR_LOCAL, "invalid_argument",
		     "another request is being built");
		return CONVC_ERR_LOCAL;
	}
	mlen = strlen(method);
	if (mlen == 0 || mlen > 255) {
		fail(err, CONVC_ERR_LOCAL, "invalid_argument",
		     "method name must be 1 to 255 bytes");
		return CONVC_ERR_LOCAL;
	}
	c->building = true;
	c->pack_too_large = false;
	c->pack_nomem = false;
	c->req_start = c->out_len;
	c->req_msgid = new_msgid(c);
	msgpack_packer_init(&c->pk, c, out_write);
	if (msgpack_pack_array(&c->pk, 4) < 0 ||
	    msgpack_pack_uint8(&c->pk, 0) < 0 ||
	    msgpack_pack_uint32(&c->pk, c->req_msgid) < 0 ||
	    msgpack_pack_str_with_body(&c->pk, method, mlen) < 0) {
		convc_request_abort(c);
		fail(err, CONVC_ERR_LOCAL, "no_memory", "out of memory");
		return CONVC_ERR_LOCAL;
	}
	c->params_start = c->out_len;
	if (msgid)
		*msgid = c->req_msgid;
	*pk = &c->pk;
	return CONVC_OK;
}

msgpack_packer *convc_request_begin(struct convc *c, const char *method,
				    uint32_t *msgid, struct convc_error *err)
{
	msgpack_packer *pk;

	if (begin(c, method, msgid, &pk, err) != CONVC_OK)
		return NULL;
	return pk;
}

/* Checks and queues the request being built; cb may be NULL. */
static int request_end(struct convc *c, convc_callback cb, void *arg,
		       struct convc_error *err)
{
	struct scan_state st = { 0, 1 };
	const unsigned char *p;
	size_t n;
	enum scan_result r;

	if (!c || !c->building)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "no request is being built");
	if (c->pack_nomem) {
		convc_request_abort(c);
		return fail(err, CONVC_ERR_LOCAL, "no_memory",
			    "out of memory");
	}
	if (c->pack_too_large) {
		convc_request_abort(c);
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "request larger than %zu bytes",
			    CONVC_MAX_REQUEST);
	}
	p = (const unsigned char *)c->out + c->params_start;
	n = c->out_len - c->params_start;
	r = n ? scan_object(p, n, n, &st) : SCAN_MORE;
	if (r != SCAN_DONE || st.pos != n) {
		convc_request_abort(c);
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "params must be exactly one msgpack value");
	}
	if (!((p[0] >= 0x80 && p[0] <= 0x9f) || (p[0] >= 0xdc && p[0] <= 0xdf))) {
		convc_request_abort(c);
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "params must be an array or a map");
	}
	if (c->npend == c->pend_cap) {
		size_t cap = c->pend_cap ? c->pend_cap * 2 : 16;
		struct outstanding *np = NULL;

		if (cap <= SIZE_MAX / sizeof(*np))
			np = realloc(c->pend, cap * sizeof(*np));
		if (!np) {
			convc_request_abort(c);
			return fail(err, CONVC_ERR_LOCAL, "no_memory",
				    "out of memory");
		}
		c->pend = np;
		c->pend_cap = cap;
	}
	c->pend[c->npend].msgid = c->req_msgid;
	c->pend[c->npend].received = false;
	c->pend[c->npend].cb = cb;
	c->pend[c->npend].arg = arg;
	c->pend[c->npend].deadline = cb && c->timeout_ms > 0
					     ? now_ms() + c->timeout_ms
					     : -1;
	if (c->pend[c->npend].deadline >= 0)
		c->ndeadline++;
	c->npend++;
	if (cb)
		c->ncb++;
	c->building = false;
	c->out_ready = c->out_len;
	return CONVC_OK;
}

int convc_request_end(struct convc *c, struct convc_error *err)
{
	return request_end(c, NULL, NULL, err);
}

int convc_request_end_cb(struct convc *c, convc_callback cb, void *arg,
			 struct convc_error *err)
{
	if (!cb) {
		convc_request_abort(c);
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "no callback");
	}
	return request_end(c, cb, arg, err);
}

static int send_params(struct convc *c, const char *method,
		       const void *params, size_t params_len,
		       convc_callback cb, void *arg, uint32_t *msgid,
		       struct convc_error *err)
{
	msgpack_packer *pk;
	int st = begin(c, method, msgid, &pk, err);

	if (st != CONVC_OK)
		return st;
	/* A packing failure sets a flag that request_end reports. */
	if (params)
		(void)!out_write(c, params, params_len);
	else
		(void)!msgpack_pack_array(pk, 0);
	return request_end(c, cb, arg, err);
}

int convc_send(struct convc *c, const char *method, const void *params,
	       size_t params_len, uint32_t *msgid, struct convc_error *err)
{
	return send_params(c, method, params, params_len, NULL, NULL, msgid,
			   err);
}

int convc_send_cb(struct convc *c, const char *method, const void *params,
		  size_t params_len, convc_callback cb, void *arg,
		  uint32_t *msgid, struct convc_error *err)
{
	if (!cb)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "no callback");
	return send_params(c, method, params, params_len, cb, arg, msgid, err);
}

/* ------------------------------------------------------------------ */
/* Responses */

static void reply_clear(struct convc_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->result.type = MSGPACK_OBJECT_NIL;
}

void convc_reply_free(struct convc_reply *r)
{
	if (!r)
		return;
	if (r->priv_zone)
		msgpack_zone_free(r->priv_zone);
	free(r->priv_frame);
	reply_clear(r);
}

const msgpack_object *convc_map_get(const msgpack_object *map,
				    const char *key)
{
	size_t klen;

	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	klen = strlen(key);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
		    memcmp(k->via.str.ptr, key, klen) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

bool convc_object_timestamp(const msgpack_object *o, int64_t *usec)
{
	const unsigned char *p;
	int64_t sec;
	uint32_t nsec;

	if (!o || o->type != MSGPACK_OBJECT_EXT || o->via.ext.type != -1)
		return false;
	p = (const unsigned char *)o->via.ext.ptr;
	switch (o->via.ext.size) {
	case 4:
		sec = (int64_t)be(p, 4);
		nsec = 0;
		break;
	case 8: {
		uint64_t v = be(p, 8);

		nsec = (uint32_t)(v >> 34);
		sec = (int64_t)(v & 0x3ffffffffULL);
		break;
	}
	case 12:
		nsec = (uint32_t)be(p, 4);
		sec = (int64_t)be(p + 4, 8);
		break;
	default:
		return false;
	}
	if (nsec > 999999999u)
		return false;
	if (sec > INT64_MAX / 1000000 - 1 || sec < INT64_MIN / 1000000 + 1)
		return false;
	*usec = sec * 1000000 + (int64_t)(nsec / 1000);
	return true;
}

/* The daemon's error object -> err. */
static void error_from_object(const msgpack_object *o, struct convc_error *e)
{
	const msgpack_object *code = convc_map_get(o, "code");
	const msgpack_object *msg = convc_map_get(o, "message");

	if (o->type == MSGPACK_OBJECT_STR) {
		strcpy(e->code, "error");
		copy_trunc(e->message, sizeof(e->message), o->via.str.ptr,
			   o->via.str.size);
		return;
	}
	if (code && code->type == MSGPACK_OBJECT_STR && code->via.str.size)
		copy_trunc(e->code, sizeof(e->code), code->via.str.ptr,
			   code->via.str.size);
	else
		strcpy(e->code, "error");
	if (msg && msg->type == MSGPACK_OBJECT_STR)
		copy_trunc(e->message, sizeof(e->message), msg->via.str.ptr,
			   msg->via.str.size);
	else
		strcpy(e->message, "(no message)");
}

static bool obj_u32(const msgpack_object *o, uint32_t *v)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    o->via.u64 > UINT32_MAX)
		return false;
	*v = (uint32_t)o->via.u64;
	return true;
}

/*
 * The msgid of a response frame [1, msgid, ...] read from its first bytes
 * (any integer format), without decoding it, and in *hlen the size of
 * those bytes; false if the frame does not start that way.
 */
static bool peek_msgid(const unsigned char *p, size_t len, uint32_t *msgid,
		       size_t *hlen)
{
	uint64_t v;
	unsigned n;

	if (len < 3 || p[0] != 0x94 || p[1] != 0x01)
		return false;
	if (p[2] <= 0x7f) {
		*msgid = p[2];
		*hlen = 3;
		return true;
	}
	switch (p[2]) {
	case 0xcc: case 0xd0: n = 1; break;
	case 0xcd: case 0xd1: n = 2; break;
	case 0xce: case 0xd2: n = 4; break;
	case 0xcf: case 0xd3: n = 8; break;
	default:
		return false;
	}
	if (len < 3 + (size_t)n)
		return false;
	/* a signed format holding a negative value has its top bit set */
	if (p[2] >= 0xd0 && (p[3] & 0x80))
		return false;
	v = be(p + 3, n);
	if (v > UINT32_MAX)
		return false;
	*msgid = (uint32_t)v;
	*hlen = 3 + (size_t)n;
	return true;
}

/*
 * The result of a complete frame [1, msgid, nil, RESULT] whose first hlen
 * bytes are the array, type and msgid, when RESULT is nil, a boolean, an
 * integer or a string: decoded as msgpack-c decodes it (a string points
 * into the frame), without msgpack-c.  False for anything else (an error,
 * a container, a float, an extension), left to msgpack-c.
 */
static bool scalar_result(const unsigned char *p, size_t len, size_t hlen,
			  msgpack_object *o)
{
	const unsigned char *q = p + hlen;
	uint64_t left = len - hlen, need = 1, body = 0;
	unsigned b, k;

	if (left < 2 || q[0] != 0xc0)
		return false;
	q++;
	left--;
	b = q[0];
	memset(o, 0, sizeof(*o));
	if (b <= 0x7f) {
		o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = b;
	} else if (b >= 0xe0) {
		o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
		o->via.i64 = (int64_t)b - 256;
	} else if (b == 0xc0) {
		o->type = MSGPACK_OBJECT_NIL;
	} else if (b == 0xc2 || b == 0xc3) {
		o->type = MSGPACK_OBJECT_BOOLEAN;
		o->via.boolean = b == 0xc3;
	} else if (b >= 0xa0 && b <= 0xbf) {
		o->type = MSGPACK_OBJECT_STR;
		body = b & 0x1f;
		need += body;
	} else if (b >= 0xcc && b <= 0xd3) {
		uint64_t v;

		k = 1u << ((b - 0xcc) & 3);	/* 1, 2, 4, 8 bytes */
		if (left < 1 + (uint64_t)k)
			return false;
		need += k;
		v = be(q + 1, k);
		if (b >= 0xd0 && k < 8 && (v >> (8 * k - 1)))
			v |= ~(uint64_t)0 << (8 * k);	/* sign-extend */
		if (b >= 0xd0 && (int64_t)v < 0) {
			o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
			o->via.i64 = (int64_t)v;
		} else {
			o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
			o->via.u64 = v;
		}
	} else if (b >= 0xd9 && b <= 0xdb) {
		k = 1u << (b - 0xd9);		/* str8, str16, str32 */
		if (left < 1 + (uint64_t)k)
			return false;
		o->type = MSGPACK_OBJECT_STR;
		body = be(q + 1, k);
		need += k + body;
	} else {
		return false;
	}
	if (need != left)
		return false;
	if (o->type == MSGPACK_OBJECT_STR) {
		o->via.str.ptr = (const char *)q + (need - body);
		o->via.str.size = (uint32_t)body;
	}
	return true;
}

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
static void fail_callbacks(struct convc *c)
{
	while (c->ncb > 0) {
		struct convc_reply r;
		convc_callback cb = NULL;
		void *arg = NULL;
		struct convc_error e = c->broken_err;

		reply_clear(&r);
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
		remove_pending(c, r.msgid);
		c->ncb--;
		run_callback(c, cb, arg, CONVC_ERR_CONN, &r, &e);
	}
}

static void destroy(struct convc *c)
{
	struct queued *q, *next;

	for (q = c->qhead; q; q = next) {
		next = q->next;
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

/*
 * The end of every library call that does I/O: callbacks of a failed
 * connection are answered, and a connection closed from a callback is
 * freed (the call then fails with "closed").
 */
static int leave(struct convc *c, int st, struct convc_error *err)
{
	if (c->broken && c->ncb > 0)
		fail_callbacks(c);
	if (c->close_pending) {
		destroy(c);
		return fail(err, CONVC_ERR_CONN, "closed",
			    "the connection was closed by a callback");
	}
	return st;
}

/* Refuses a call that does I/O while a callback runs. */
static int in_callback(struct convc_error *err, const char *what)
{
	return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
		    "%s cannot be called from a callback on the same "
		    "connection", what);
}

/*
 * Answers the callback request msgid (outstanding, with a callback): with
 * result (CONVC_OK) or e (CONVC_ERR_DAEMON).
 */
static int dispatch(struct convc *c, uint32_t msgid, int status,
		    const msgpack_object *result, const struct convc_error *e,
		    struct convc_error *err)
{
	struct outstanding *o = find_pending(c, msgid);
	convc_callback cb = o->cb;
	void *arg = o->arg;
	struct convc_reply r;

	remove_pending(c, msgid);
	c->ncb--;
	reply_clear(&r);
	r.msgid = msgid;
	if (status == CONVC_OK)
		r.result = *result;
	run_callback(c, cb, arg, status, &r, e);
	if (c->close_pending)
		return conn_fail(c, err, "closed",
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
	msgpack_unpacked up;
	msgpack_object borrowed;
	msgpack_unpack_return ur;
	size_t off = 0;
	const msgpack_object *root, *el;
	struct queued *q;
	uint32_t msgid;
	struct outstanding *o;

#define DROP_FRAME()                                    \
	do {                                            \
		if (owned) {                            \
			msgpack_unpacked_destroy(&up);  \
			free(frame);                    \
		} else {                                \
			msgpack_zone_clear(c->zone);    \
		}                                       \
	} while (0)

	if (!owned) {
		size_t hlen;
		msgpack_object res;

		/* the common answer, a scalar for a callback: no decoder */
		if (peek_msgid((const unsigned char *)frame, len, &msgid,
			       &hlen) &&
		    (o = find_pending(c, msgid)) && o->cb &&
		    scalar_result((const unsigned char *)frame, len, hlen,
				  &res))
			return dispatch(c, msgid, CONVC_OK, &res, NULL, err);
	}
	msgpack_unpacked_init(&up);
	if (owned) {
		ur = msgpack_unpack_next(&up, frame, len, &off);
		root = &up.data;
	} else {
		if (!c->zone &&
		    !(c->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE)))
			return conn_fail(c, err, "no_memory",
					 "out of memory reading a response");
		/* msgpack-c's one-shot decoder into a caller's zone */
		ur = msgpack_unpack(frame, len, &off, c->zone, &borrowed);
		root = &borrowed;
	}
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
		DROP_FRAME();
		/* msgpack-c also reports nesting beyond its stack (32) as
		 * NOMEM; the frame is valid msgpack (scanned) otherwise. */
		return conn_fail(c, err, "protocol",
				 ur == MSGPACK_UNPACK_NOMEM_ERROR
					 ? "cannot decode a response (nested "
					   "deeper than 32 levels, or out of "
					   "memory)"
					 : "cannot decode a response");
	}
	el = root->type == MSGPACK_OBJECT_ARRAY ? root->via.array.ptr : NULL;
	if (el && root->via.array.size == 3 &&
	    el[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && el[0].via.u64 == 2) {
		DROP_FRAME();	/* a notification */
		return CONVC_OK;
	}
	if (!el || root->via.array.size != 4 ||
	    el[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || el[0].via.u64 != 1) {
		DROP_FRAME();
		return conn_fail(c, err, "protocol",
				 "the daemon sent something that is not a "
				 "response");
	}
	if (el[1].type == MSGPACK_OBJECT_NIL && el[2].type != MSGPACK_OBJECT_NIL) {
		/* An error about the connection as a whole (broken envelope,
		 * too many clients): nothing can be matched to it. */
		struct convc_error e;

		error_from_object(&el[2], &e);
		DROP_FRAME();
		return conn_fail(c, err, e.code, "%s", e.message);
	}
	if (!obj_u32(&el[1], &msgid)) {
		DROP_FRAME();
		return conn_fail(c, err, "protocol", "response with a bad msgid");
	}
	o = find_pending(c, msgid);
	if (!o || o->received) {
		DROP_FRAME();
		return conn_fail(c, err, "protocol",
				 "response for msgid %u, which is not "
				 "outstanding", msgid);
	}
	if (o->cb) {
		struct convc_error e;
		int st;

		if (el[2].type != MSGPACK_OBJECT_NIL) {
			error_from_object(&el[2], &e);
			st = dispatch(c, msgid, CONVC_ERR_DAEMON, NULL, &e, err);
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
			return conn_fail(c, err, "no_memory",
					 "out of memory reading a response");
		memcpy(copy, frame, len);
		return handle_frame(c, copy, len, true, err);
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		DROP_FRAME();
		return conn_fail(c, err, "no_memory",
				 "out of memory queueing a response");
	}
	q->reply.msgid = msgid;
	if (el[2].type != MSGPACK_OBJECT_NIL) {
		q->status = CONVC_ERR_DAEMON;
		error_from_object(&el[2], &q->err);
		q->reply.result.type = MSGPACK_OBJECT_NIL;
		DROP_FRAME();
	} else {
		q->status = CONVC_OK;
		q->reply.result = el[3];
		q->reply.priv_frame = frame;
		q->reply.priv_zone = up.zone;	/* may be NULL: no containers */
	}
	o->received = true;
	if (c->qtail)
		c->qtail->next = q;
	else
		c->qhead = q;
	c->qtail = q;
	return CONVC_OK;
#undef DROP_FRAME
}

/* Frames and handles every complete response in the input buffer. */
static int process_input(struct convc *c, struct convc_error *err)
{
	for (;;) {
		size_t avail = c->in_len - c->in_start;
		enum scan_result r;
		const struct outstanding *o;
		char *frame;
		size_t len, hlen;
		uint32_t msgid;
		int st;

		if (avail == 0)
			return CONVC_OK;
		r = scan_object((const unsigned char *)c->in + c->in_start,
				avail, c->max_response, &c->scan);
		if (r == SCAN_MORE)
			return CONVC_OK;
		if (r == SCAN_BAD)
			return conn_fail(c, err, "protocol",
					 "the daemon sent bytes that are not "
					 "msgpack");
		if (r == SCAN_TOO_LARGE)
			return conn_fail(c, err, "protocol",
					 "response larger than %zu bytes",
					 c->max_response);
		len = c->scan.pos;
		c->scan.pos = 0;
		c->scan.need = 1;
		frame = c->in + c->in_start;
		if (peek_msgid((const unsigned char *)frame, len, &msgid,
			       &hlen) &&
		    (o = find_pending(c, msgid)) && o->cb) {
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
				return conn_fail(c, err, "no_memory",
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
			cap *= 2;	/* in_len <= max_response + READ_CHUNK */
		p = realloc(c->in, cap);
		if (!p)
			return conn_fail(c, err, "no_memory",
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
static int read_some(struct convc *c, bool once, struct convc_error *err)
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
			return conn_fail(c, err, "closed",
					 "convd closed the connection");
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return CONVC_OK;
			return conn_fail(c, err, "closed", "read: %s",
					 strerror(errno));
		}
		c->in_len += (size_t)n;
		st = process_input(c, err);
		if (st != CONVC_OK || once || (size_t)n < room)
			return st;
	}
}

/* Writes what the socket takes (non-blocking). */
static int write_some(struct convc *c, struct convc_error *err)
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
			int st = read_some(c, false, err);

			if (st != CONVC_OK)
				return st;
			return conn_fail(c, err, "closed",
					 "convd closed the connection");
		}
		return conn_fail(c, err, "closed", "write: %s",
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
static int io_step(struct convc *c, int64_t deadline, struct convc_error *err)
{
	struct pollfd pfd;
	int n, st;

	pfd.fd = c->fd;
	pfd.events = POLLIN;
	if (c->out_sent < c->out_ready)
		pfd.events |= POLLOUT;
	pfd.revents = 0;
	n = poll(&pfd, 1, poll_ms(deadline));
	if (n < 0) {
		if (errno == EINTR)
			return CONVC_OK;
		return conn_fail(c, err, "closed", "poll: %s", strerror(errno));
	}
	if (n == 0)
		return conn_fail(c, err, "timeout",
				 "no answer from convd within %d ms",
				 c->timeout_ms);
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
		st = read_some(c, true, err);
		if (st != CONVC_OK)
			return st;
	}
	if (pfd.revents & POLLOUT) {
		st = write_some(c, err);
		if (st != CONVC_OK)
			return st;
	}
	return CONVC_OK;
}

static int flush_until(struct convc *c, int64_t deadline,
		       struct convc_error *err)
{
	int st;

	if (c->out_sent < c->out_ready) {
		/* Try at once: usually the socket takes it all. */
		st = write_some(c, err);
		if (st != CONVC_OK)
			return st;
	}
	while (c->out_sent < c->out_ready) {
		st = io_step(c, deadline, err);
		if (st != CONVC_OK)
			return st;
	}
	return CONVC_OK;
}

int convc_flush(struct convc *c, struct convc_error *err)
{
	if (!c)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "no connection");
	if (c->dispatching)
		return in_callback(err, "convc_flush");
	if (c->broken)
		return leave(c, broken_status(c, err), err);
	return leave(c, flush_until(c, deadline_after(c->timeout_ms), err),
		     err);
}

/* Hands a queued response to the caller. */
static int deliver(struct convc *c, struct queued *q, struct queued *prev,
		   struct convc_reply *reply, struct convc_error *err)
{
	int status = q->status;

	if (prev)
		prev->next = q->next;
	else
		c->qhead = q->next;
	if (c->qtail == q)
		c->qtail = prev;
	remove_pending(c, q->reply.msgid);
	*reply = q->reply;
	if (status != CONVC_OK && err)
		*err = q->err;
	free(q);
	return status;
}

static int wait_loop(struct convc *c, bool any, uint32_t msgid,
		     struct convc_reply *reply, struct convc_error *err)
{
	int64_t deadline = deadline_after(c->timeout_ms);
	int st;

	for (;;) {
		struct queued *prev = NULL;

		for (struct queued *q = c->qhead; q; prev = q, q = q->next) {
			if (any || q->reply.msgid == msgid) {
				st = deliver(c, q, prev, reply, err);
				if (st != CONVC_OK)
					reply->result.type = MSGPACK_OBJECT_NIL;
				return st;
			}
		}
		if (c->broken)
			return broken_status(c, err);
		st = c->out_sent < c->out_ready ? flush_until(c, deadline, err)
						: io_step(c, deadline, err);
		if (st != CONVC_OK)
			return st;
	}
}

static int wait_for(struct convc *c, bool any, uint32_t msgid,
		    struct convc_reply *reply, struct convc_error *err)
{
	const struct outstanding *o;

	if (!c || !reply)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "no connection or no reply");
	reply_clear(reply);
	if (c->dispatching)
		return in_callback(err, any ? "convc_wait_any" : "convc_wait");
	if (any ? c->npend == c->ncb
		: !(o = find_pending(c, msgid)) || o->cb)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    any ? "no request without a callback is "
				  "outstanding"
				: "msgid %u is not outstanding (or has a "
				  "callback)", msgid);
	return leave(c, wait_loop(c, any, msgid, reply, err), err);
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
		reply_clear(reply);
	if (c && c->dispatching)	/* before anything is queued */
		return in_callback(err, "convc_call");
	st = convc_send(c, method, params, params_len, &msgid, err);
	if (st != CONVC_OK)
		return st;
	return convc_wait(c, msgid, reply, err);
}

/* ------------------------------------------------------------------ */
/* Non-blocking mode */

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
	int64_t first = -1, left;

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
	if (first < 0)
		return -1;
	left = first - now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
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
			now = now_ms();
		if (c->pend[i].deadline <= now)
			return conn_fail(c, err, "timeout",
					 "no answer from convd within %d ms",
					 c->timeout_ms);
	}
	return CONVC_OK;
}

int convc_process(struct convc *c, int events, struct convc_error *err)
{
	int st = CONVC_OK;

	if (!c)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "no connection");
	if (c->dispatching)
		return in_callback(err, "convc_process");
	if (c->broken) {
		st = broken_status(c, err);
	} else {
		if (events & CONVC_EV_READ)
			st = read_some(c, false, err);
		/* Write whatever is queued (callbacks may just have queued
		 * requests), whether or not the socket was said writable:
		 * a full socket costs one EAGAIN. */
		if (st == CONVC_OK && c->out_sent < c->out_ready)
			st = write_some(c, err);
		if (st == CONVC_OK)
			st = check_deadlines(c, err);
	}
	return leave(c, st, err);
}

/* ------------------------------------------------------------------ */
/* Connections */

struct convc *convc_connect(const char *path, int timeout_ms,
			    struct convc_error *err)
{
	struct sockaddr_un sa;
	struct convc *c;
	int64_t deadline = deadline_after(timeout_ms);
	size_t plen;
	int fd;

	if (!path || !*path) {
		fail(err, CONVC_ERR_CONN, "connect_failed", "no socket path");
		return NULL;
	}
	plen = strlen(path);
	memset(&sa, 0, sizeof(sa));
	if (plen >= sizeof(sa.sun_path)) {
		fail(err, CONVC_ERR_CONN, "connect_failed",
		     "socket path longer than %zu bytes",
		     sizeof(sa.sun_path) - 1);
		return NULL;
	}
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, plen + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		fail(err, CONVC_ERR_CONN, "connect_failed", "socket: %s",
		     strerror(errno));
		return NULL;
	}
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		if (errno == EINPROGRESS || errno == EINTR) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			int n = poll(&pfd, 1, poll_ms(deadline));
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0) {
				fail(err, CONVC_ERR_CONN, "timeout",
				     "%s: no connection within %d ms", path,
				     timeout_ms);
				goto fail_fd;
			}
			if (n < 0 ||
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
				soerr = errno;
			if (soerr == 0)
				break;
			errno = soerr;
		} else if (errno == EAGAIN) {
			/* The listen backlog is full: retry a little later. */
			int wait = poll_ms(deadline);

			if (wait == 0) {
				fail(err, CONVC_ERR_CONN, "timeout",
				     "%s: no connection within %d ms "
				     "(listen queue full)", path, timeout_ms);
				goto fail_fd;
			}
			poll(NULL, 0, wait < 0 || wait > 10 ? 10 : wait);
			continue;
		}
		fail(err, CONVC_ERR_CONN, "connect_failed", "%s: %s", path,
		     strerror(errno));
		goto fail_fd;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		fail(err, CONVC_ERR_LOCAL, "no_memory", "out of memory");
		goto fail_fd;
	}
	c->fd = fd;
	c->path = strdup(path);
	if (!c->path) {
		free(c);
		fail(err, CONVC_ERR_LOCAL, "no_memory", "out of memory");
		goto fail_fd;
	}
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
	c->max_response = CONVC_DEFAULT_MAX_RESPONSE;
	c->scan.need = 1;
	c->next_msgid = 1;
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

		conn_fail(c, &e, "closed", "the connection was closed");
	}
	if (c->dispatching) {
		/* from a callback: freed when the library call that ran the
		 * callback returns */
		c->close_pending = true;
		return;
	}
	fail_callbacks(c);
	destroy(c);
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
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
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

/* ------------------------------------------------------------------ */
/* Typed calls */

/* One named argument; skipped when s is NULL and it is not an integer. */
struct arg {
	const char *key;
	const char *s;
	size_t len;		/* of s; SIZE_MAX: strlen */
	bool is_int;
	int64_t i;
};

#define ARG_STR(k, v) { (k), (v), SIZE_MAX, false, 0 }
#define ARG_STRN(k, v, n) { (k), (v), (n), false, 0 }
#define ARG_INT(k, v) { (k), NULL, 0, true, (v) }
#define ARG_NONE(k) { (k), NULL, 0, false, 0 }

/* [ {key: value, ...} ] -> call -> reply. */
static int call_named(struct convc *c, const char *method,
		      const struct arg *args, size_t nargs,
		      struct convc_reply *reply, struct convc_error *err)
{
	msgpack_packer *pk;
	uint32_t msgid;
	size_t n = 0;
	int st;

	reply_clear(reply);
	if (c && c->dispatching)	/* before anything is queued */
		return in_callback(err, method);
	for (size_t i = 0; i < nargs; i++) {
		if (!args[i].is_int && !args[i].s && args[i].len == SIZE_MAX)
			return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				    "%s: required", args[i].key);
		if (args[i].is_int || args[i].s)
			n++;
	}
	st = begin(c, method, &msgid, &pk, err);
	if (st != CONVC_OK)
		return st;
	if (msgpack_pack_array(pk, 1) < 0 || msgpack_pack_map(pk, n) < 0)
		goto packed;
	for (size_t i = 0; i < nargs; i++) {
		const struct arg *a = &args[i];

		if (!a->is_int && !a->s)
			continue;
		if (msgpack_pack_str_with_body(pk, a->key, strlen(a->key)) < 0)
			goto packed;
		if (a->is_int) {
			if (msgpack_pack_int64(pk, a->i) < 0)
				goto packed;
		} else {
			size_t len = a->len == SIZE_MAX ? strlen(a->s) : a->len;

			if (len > UINT32_MAX) {
				convc_request_abort(c);
				return fail(err, CONVC_ERR_LOCAL,
					    "invalid_argument",
					    "%s: too long", a->key);
			}
			if (msgpack_pack_str_with_body(pk, a->s, len) < 0)
				goto packed;
		}
	}
packed:
	/* convc_request_end reports a packing failure. */
	st = convc_request_end(c, err);
	if (st != CONVC_OK)
		return st;
	return convc_wait(c, msgid, reply, err);
}

/*
 * Arguments that the caller may leave out are passed with ARG_NONE-like
 * len 0 when NULL, so call_named skips them; required ones keep SIZE_MAX
 * and are refused when NULL.
 */
static struct arg opt_str(const char *key, const char *v)
{
	struct arg a = { key, v, v ? SIZE_MAX : 0, false, 0 };

	return a;
}

static int shape(struct convc *c, struct convc_reply *reply,
		 struct convc_error *err, const char *method, const char *what)
{
	convc_reply_free(reply);
	return conn_fail(c, err, "protocol", "%s: unexpected result (%s)",
			 method, what);
}

static bool obj_int(const msgpack_object *o, int64_t *v)
{
	if (!o)
		return false;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > INT64_MAX)
			return false;
		*v = (int64_t)o->via.u64;
		return true;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return true;
	}
	return false;
}

static char *obj_strdup(const msgpack_object *o, size_t *lenp)
{
	char *s;

	if (!o || o->type != MSGPACK_OBJECT_STR)
		return NULL;
	s = malloc((size_t)o->via.str.size + 1);
	if (!s)
		return NULL;
	memcpy(s, o->via.str.ptr, o->via.str.size);
	s[o->via.str.size] = '\0';
	if (lenp)
		*lenp = o->via.str.size;
	return s;
}

/* Calls a method whose result is {"deleted": n}. */
static int call_deleted(struct convc *c, const char *method,
			const struct arg *args, size_t nargs, int64_t *deleted,
			struct convc_error *err)
{
	struct convc_reply r;
	int64_t v;
	int st = call_named(c, method, args, nargs, &r, err);

	if (st != CONVC_OK)
		return st;
	if (!obj_int(convc_map_get(&r.result, "deleted"), &v))
		return shape(c, &r, err, method, "no integer 'deleted'");
	if (deleted)
		*deleted = v;
	convc_reply_free(&r);
	return CONVC_OK;
}

int convc_ping(struct convc *c, struct convc_error *err)
{
	struct convc_reply r;
	int st;

	reply_clear(&r);
	st = convc_call(c, "ping", NULL, 0, &r, err);
	if (st != CONVC_OK)
		return st;
	if (r.result.type != MSGPACK_OBJECT_STR || r.result.via.str.size != 4 ||
	    memcmp(r.result.via.str.ptr, "pong", 4) != 0)
		return shape(c, &r, err, "ping", "not \"pong\"");
	convc_reply_free(&r);
	return CONVC_OK;
}

int convc_set_retries(struct convc *c, int retries, struct convc_error *err)
{
	if (!c || retries < 0 || retries > 100)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "retries must be from 0 to 100");
	c->retries = retries;
	return CONVC_OK;
}

/* A fresh idempotency key: 128 random bits, "convc-" and 32 hex digits. */
static int new_key(char out[40], struct convc_error *err)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(err, CONVC_ERR_LOCAL, "no_randomness",
				    "getrandom: %s", strerror(errno));
		got += (size_t)n;
	}
	memcpy(out, "convc-", 6);
	for (size_t i = 0; i < sizeof(b); i++) {
		out[6 + 2 * i] = hex[b[i] >> 4];
		out[7 + 2 * i] = hex[b[i] & 15];
	}
	out[38] = '\0';
	return CONVC_OK;
}

/*
 * A new connection to the same socket in place of c's broken one: only
 * between calls (nothing outstanding, no callbacks), as for a retry.
 */
static int reconnect(struct convc *c, struct convc_error *err)
{
	struct convc *n, tmp;

	/* the failed call itself may still be listed as outstanding */
	if (c->npend > 1 || c->ncb > 0 || c->dispatching || c->qhead)
		return fail(err, CONVC_ERR_CONN, "closed",
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
	destroy(n);
	return CONVC_OK;
}

int convc_add_message_key(struct convc *c, const char *user_id,
			  const char *provider, const char *role,
			  const char *content, size_t content_len,
			  const char *platform, const char *idempotency_key,
			  int64_t *id, int64_t *created_at_usec,
			  bool *duplicate, struct convc_error *err)
{
	char key[40];
	struct arg args[] = {
		ARG_STR("user_id", user_id),
		ARG_STR("provider", provider),
		ARG_STR("role", role),
		ARG_STRN("content", content, content ? content_len : SIZE_MAX),
		opt_str("platform", platform),
		opt_str("idempotency_key", idempotency_key),
	};
	const msgpack_object *dup;
	struct convc_reply r;
	int64_t vid, vt;
	int st, attempt = 0;

	if (c && c->retries > 0 && !idempotency_key) {
		/* the retry must carry the first attempt's key */
		st = new_key(key, err);
		if (st != CONVC_OK)
			return st;
		args[5] = opt_str("idempotency_key", key);
	}
	for (;;) {
		st = call_named(c, "add_message", args,
				sizeof(args) / sizeof(args[0]), &r, err);
		if (st != CONVC_ERR_CONN || !c || attempt >= c->retries ||
		    c->dispatching || c->close_pending)
			break;
		/* a broken connection: again on a new one, after a pause
		 * (convd may be restarting), with the same key */
		do {
			int ms = 50 << (attempt < 5 ? attempt : 5);

			attempt++;
			poll(NULL, 0, ms);
			st = reconnect(c, err);
		} while (st != CONVC_OK && attempt < c->retries);
		if (st != CONVC_OK)
			return st;
	}
	if (st != CONVC_OK)
		return st;
	if (!obj_int(convc_map_get(&r.result, "id"), &vid))
		return shape(c, &r, err, "add_message", "no integer 'id'");
	if (!convc_object_timestamp(convc_map_get(&r.result, "created_at"), &vt))
		return shape(c, &r, err, "add_message",
			     "no timestamp 'created_at'");
	dup = convc_map_get(&r.result, "duplicate");
	if (dup && dup->type != MSGPACK_OBJECT_BOOLEAN)
		return shape(c, &r, err, "add_message",
			     "'duplicate' is not a boolean");
	if (id)
		*id = vid;
	if (created_at_usec)
		*created_at_usec = vt;
	if (duplicate)
		*duplicate = dup && dup->via.boolean;
	convc_reply_free(&r);
	return CONVC_OK;
}

int convc_add_message(struct convc *c, const char *user_id,
		      const char *provider, const char *role,
		      const char *content, size_t content_len,
		      const char *platform, int64_t *id,
		      int64_t *created_at_usec, struct convc_error *err)
{
	return convc_add_message_key(c, user_id, provider, role, content,
				     content_len, platform, NULL, id,
				     created_at_usec, NULL, err);
}

void convc_messages_free(struct convc_message *msgs, size_t n)
{
	if (!msgs)
		return;
	for (size_t i = 0; i < n; i++) {
		free(msgs[i].role);
		free(msgs[i].content);
		free(msgs[i].provider);
	}
	free(msgs);
}

int convc_result_messages(const msgpack_object *result,
			  struct convc_message **msgs, size_t *n,
			  struct convc_error *err)
{
	struct convc_message *v;
	uint32_t count;

	if (!msgs || !n)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "no place for the result");
	*msgs = NULL;
	*n = 0;
	if (!result || result->type != MSGPACK_OBJECT_ARRAY)
		return fail(err, CONVC_ERR_LOCAL, "protocol",
			    "unexpected result (not an array)");
	count = result->via.array.size;
	if (count == 0)
		return CONVC_OK;
	v = calloc(count, sizeof(*v));
	if (!v)
		return fail(err, CONVC_ERR_LOCAL, "no_memory", "out of memory");
	for (uint32_t i = 0; i < count; i++) {
		const msgpack_object *m = &result->via.array.ptr[i];
		const msgpack_object *role = convc_map_get(m, "role");
		const msgpack_object *content = convc_map_get(m, "content");
		const msgpack_object *provider = convc_map_get(m, "provider");
		const char *bad = NULL;

		if (m->type != MSGPACK_OBJECT_MAP)
			bad = "an element is not a map";
		else if (!obj_int(convc_map_get(m, "id"), &v[i].id))
			bad = "no integer 'id'";
		else if (!convc_object_timestamp(convc_map_get(m, "created_at"),
						 &v[i].created_at_usec))
			bad = "no timestamp 'created_at'";
		else if (!role || role->type != MSGPACK_OBJECT_STR ||
			 !content || content->type != MSGPACK_OBJECT_STR ||
			 !provider || provider->type != MSGPACK_OBJECT_STR)
			bad = "'role', 'content' or 'provider' is not a string";
		if (bad) {
			convc_messages_free(v, count);
			return fail(err, CONVC_ERR_LOCAL, "protocol",
				    "unexpected result (%s)", bad);
		}
		v[i].role = obj_strdup(role, NULL);
		v[i].content = obj_strdup(content, &v[i].content_len);
		v[i].provider = obj_strdup(provider, NULL);
		if (!v[i].role || !v[i].content || !v[i].provider) {
			convc_messages_free(v, count);
			return fail(err, CONVC_ERR_LOCAL, "no_memory",
				    "out of memory");
		}
	}
	*msgs = v;
	*n = count;
	return CONVC_OK;
}

/* A call whose result is an array of messages. */
static int call_messages(struct convc *c, const char *method,
			 const struct arg *args, size_t nargs,
			 struct convc_message **msgs, size_t *n,
			 struct convc_error *err)
{
	struct convc_reply r;
	struct convc_error e;
	int st;

	if (!msgs || !n)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "no place for the result");
	*msgs = NULL;
	*n = 0;
	st = call_named(c, method, args, nargs, &r, err);
	if (st != CONVC_OK)
		return st;
	st = convc_result_messages(&r.result, msgs, n, &e);
	convc_reply_free(&r);
	if (st == CONVC_OK)
		return CONVC_OK;
	/* a result of the wrong shape: the connection cannot be trusted */
	if (strcmp(e.code, "protocol") == 0)
		return conn_fail(c, err, "protocol", "%s: %s", method,
				 e.message);
	if (err)
		*err = e;
	return st;
}

int convc_get_recent_conversations(struct convc *c, const char *user_id,
				   const char *provider, int limit,
				   const char *platform,
				   struct convc_message **msgs, size_t *n,
				   struct convc_error *err)
{
	struct arg args[] = {
		ARG_STR("user_id", user_id),
		ARG_STR("provider", provider),
		limit > 0 ? (struct arg)ARG_INT("limit", limit)
			  : (struct arg)ARG_NONE("limit"),
		opt_str("platform", platform),
	};

	return call_messages(c, "get_recent_conversations", args,
			     sizeof(args) / sizeof(args[0]), msgs, n, err);
}

int convc_export_history(struct convc *c, const char *user_id,
			 const char *provider, const char *platform,
			 int64_t after_id, int limit,
			 struct convc_message **msgs, size_t *n,
			 struct convc_error *err)
{
	struct arg args[] = {
		ARG_STR("user_id", user_id),
		opt_str("provider", provider),
		after_id > 0 ? (struct arg)ARG_INT("after_id", after_id)
			     : (struct arg)ARG_NONE("after_id"),
		limit > 0 ? (struct arg)ARG_INT("limit", limit)
			  : (struct arg)ARG_NONE("limit"),
		opt_str("platform", platform),
	};

	return call_messages(c, "export_history", args,
			     sizeof(args) / sizeof(args[0]), msgs, n, err);
}

int convc_import_message(struct convc *c, const char *user_id,
			 const char *provider, const char *role,
			 const char *content, size_t content_len,
			 const char *platform, int64_t created_at_usec,
			 int64_t *id, bool *imported,
			 struct convc_error *err)
{
	return convc_import_message_key(c, user_id, provider, role, content,
					content_len, platform, created_at_usec,
					NULL, id, imported, err);
}

int convc_import_message_key(struct convc *c, const char *user_id,
			     const char *provider, const char *role,
			     const char *content, size_t content_len,
			     const char *platform, int64_t created_at_usec,
			     const char *idempotency_key, int64_t *id,
			     bool *imported, struct convc_error *err)
{
	struct arg args[] = {
		ARG_STR("user_id", user_id),
		ARG_STR("provider", provider),
		ARG_STR("role", role),
		ARG_STRN("content", content, content ? content_len : SIZE_MAX),
		ARG_INT("created_at", created_at_usec),
		opt_str("platform", platform),
		opt_str("idempotency_key", idempotency_key),
	};
	const msgpack_object *imp;
	struct convc_reply r;
	int64_t vid;
	int st = call_named(c, "import_message", args,
			    sizeof(args) / sizeof(args[0]), &r, err);

	if (st != CONVC_OK)
		return st;
	imp = convc_map_get(&r.result, "imported");
	if (!obj_int(convc_map_get(&r.result, "id"), &vid))
		return shape(c, &r, err, "import_message", "no integer 'id'");
	if (!imp || imp->type != MSGPACK_OBJECT_BOOLEAN)
		return shape(c, &r, err, "import_message",
			     "no boolean 'imported'");
	if (id)
		*id = vid;
	if (imported)
		*imported = imp->via.boolean;
	convc_reply_free(&r);
	return CONVC_OK;
}

int convc_clear_user_history(struct convc *c, const char *user_id,
			     const char *provider, const char *platform,
			     int64_t *deleted, struct convc_error *err)
{
	struct arg args[] = {
		ARG_STR("user_id", user_id),
		ARG_STR("provider", provider),
		opt_str("platform", platform),
	};

	return call_deleted(c, "clear_user_history", args,
			    sizeof(args) / sizeof(args[0]), deleted, err);
}

int convc_get_conversation_count(struct convc *c, const char *user_id,
				 const char *provider, const char *platform,
				 int64_t *count, struct convc_error *err)
{
	struct arg args[] = {
		ARG_STR("user_id", user_id),
		opt_str("provider", provider),
		opt_str("platform", platform),
	};
	struct convc_reply r;
	int64_t v;
	int st = call_named(c, "get_conversation_count", args,
			    sizeof(args) / sizeof(args[0]), &r, err);

	if (st != CONVC_OK)
		return st;
	if (!obj_int(&r.result, &v))
		return shape(c, &r, err, "get_conversation_count",
			     "not an integer");
	if (count)
		*count = v;
	convc_reply_free(&r);
	return CONVC_OK;
}

void convc_user_stats_free(struct convc_user_stats *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nproviders; i++)
		free(st->providers[i].provider);
	free(st->providers);
	memset(st, 0, sizeof(*st));
}

static int cmp_provider(const void *a, const void *b)
{
	const struct convc_provider_stats *x = a, *y = b;

	return strcmp(x->provider, y->provider);
}

int convc_get_user_statistics(struct convc *c, const char *user_id,
			      const char *platform,
			      struct convc_user_stats *out,
			      struct convc_error *err)
{
	struct arg args[] = {
		ARG_STR("user_id", user_id),
		opt_str("platform", platform),
	};
	struct convc_reply r;
	struct convc_user_stats s;
	const msgpack_object *prov;
	int st;

	if (!out)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "no place for the result");
	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof(s));
	st = call_named(c, "get_user_statistics", args,
			sizeof(args) / sizeof(args[0]), &r, err);
	if (st != CONVC_OK)
		return st;
	if (!obj_int(convc_map_get(&r.result, "total_messages"),
		     &s.total_messages))
		return shape(c, &r, err, "get_user_statistics",
			     "no integer 'total_messages'");
	prov = convc_map_get(&r.result, "providers");
	if (!prov || prov->type != MSGPACK_OBJECT_MAP)
		return shape(c, &r, err, "get_user_statistics",
			     "no map 'providers'");
	if (prov->via.map.size > 0) {
		s.providers = calloc(prov->via.map.size, sizeof(*s.providers));
		if (!s.providers) {
			convc_reply_free(&r);
			return fail(err, CONVC_ERR_LOCAL, "no_memory",
				    "out of memory");
		}
	}
	for (uint32_t i = 0; i < prov->via.map.size; i++) {
		const msgpack_object *k = &prov->via.map.ptr[i].key;
		const msgpack_object *v = &prov->via.map.ptr[i].val;
		const msgpack_object *last = convc_map_get(v, "last_message_at");
		struct convc_provider_stats *p = &s.providers[i];
		const char *bad = NULL;

		if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_MAP)
			bad = "a provider is not a name with a map";
		else if (!obj_int(convc_map_get(v, "message_count"),
				  &p->message_count))
			bad = "no integer 'message_count'";
		else if (last && last->type != MSGPACK_OBJECT_NIL &&
			 !convc_object_timestamp(last, &p->last_message_at_usec))
			bad = "'last_message_at' is not a timestamp";
		if (bad) {
			convc_user_stats_free(&s);
			return shape(c, &r, err, "get_user_statistics", bad);
		}
		p->has_last_message = last && last->type != MSGPACK_OBJECT_NIL;
		p->provider = obj_strdup(k, NULL);
		s.nproviders = i + 1;
		if (!p->provider) {
			convc_user_stats_free(&s);
			convc_reply_free(&r);
			return fail(err, CONVC_ERR_LOCAL, "no_memory",
				    "out of memory");
		}
	}
	if (s.nproviders > 1)
		qsort(s.providers, s.nproviders, sizeof(*s.providers),
		      cmp_provider);
	convc_reply_free(&r);
	*out = s;
	return CONVC_OK;
}

int convc_get_thread(struct convc *c, const char *user_id,
		     const char *platform, char **thread_id,
		     struct convc_error *err)
{
	struct arg args[] = {
		ARG_STR("user_id", user_id),
		opt_str("platform", platform),
	};
	struct convc_reply r;
	int st;

	if (!thread_id)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "no place for the result");
	*thread_id = NULL;
	st = call_named(c, "get_thread", args, sizeof(args) / sizeof(args[0]),
			&r, err);
	if (st != CONVC_OK)
		return st;
	if (r.result.type == MSGPACK_OBJECT_NIL) {
		convc_reply_free(&r);
		return CONVC_OK;
	}
	if (r.result.type != MSGPACK_OBJECT_STR)
		return shape(c, &r, err, "get_thread", "neither string nor nil");
	*thread_id = obj_strdup(&r.result, NULL);
	convc_reply_free(&r);
	if (!*thread_id)
		return fail(err, CONVC_ERR_LOCAL, "no_memory", "out of memory");
	return CONVC_OK;
}

int convc_save_thread(struct convc *c, const char *user_id,
		      const char *thread_id, const char *platform,
		      struct convc_error *err)
{
	struct arg args[] = {
		ARG_STR("user_id", user_id),
		ARG_STR("thread_id", thread_id),
		opt_str("platform", platform),
	};
	struct convc_reply r;
	int st = call_named(c, "save_thread", args,
			    sizeof(args) / sizeof(args[0]), &r, err);

	if (st != CONVC_OK)
		return st;
	if (r.result.type != MSGPACK_OBJECT_BOOLEAN || !r.result.via.boolean)
		return shape(c, &r, err, "save_thread", "not true");
	convc_reply_free(&r);
	return CONVC_OK;
}

int convc_delete_thread(struct convc *c, const char *user_id,
			const char *platform, int64_t *deleted,
			struct convc_error *err)
{
	struct arg args[] = {
		ARG_STR("user_id", user_id),
		opt_str("platform", platform),
	};

	return call_deleted(c, "delete_thread", args,
			    sizeof(args) / sizeof(args[0]), deleted, err);
}

int convc_cleanup_old_conversations(struct convc *c, int days_to_keep,
				    int64_t *deleted, struct convc_error *err)
{
	struct arg args[] = {
		days_to_keep >= 0 ? (struct arg)ARG_INT("days_to_keep",
							 days_to_keep)
				  : (struct arg)ARG_NONE("days_to_keep"),
	};

	return call_deleted(c, "cleanup_old_conversations", args,
			    sizeof(args) / sizeof(args[0]), deleted, err);
}

int convc_stats(struct convc *c, struct convc_reply *reply,
		struct convc_error *err)
{
	int st;

	if (!reply)
		return fail(err, CONVC_ERR_LOCAL, "invalid_argument",
			    "no place for the result");
	st = convc_call(c, "stats", NULL, 0, reply, err);
	if (st != CONVC_OK)
		return st;
	if (reply->result.type != MSGPACK_OBJECT_MAP)
		return shape(c, reply, err, "stats", "not a map");
	return CONVC_OK;
}

int convc_health(struct convc *c, bool *ok, struct convc_reply *reply,
		 struct convc_error *err)
{
	struct convc_reply r;
	const msgpack_object *v;
	int st;

	if (reply)
		reply_clear(reply);
	st = convc_call(c, "health", NULL, 0, &r, err);
	if (st != CONVC_OK)
		return st;
	v = convc_map_get(&r.result, "ok");
	if (!v || v->type != MSGPACK_OBJECT_BOOLEAN)
		return shape(c, &r, err, "health", "no boolean 'ok'");
	if (ok)
		*ok = v->via.boolean;
	if (reply)
		*reply = r;
	else
		convc_reply_free(&r);
	return CONVC_OK;
}
