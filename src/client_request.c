/*
 * client_request.c - building requests: the output buffer, the packer, the
 * table of outstanding requests, convc_request_* and convc_send*.
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

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

void client_request_remove(struct convc *c, uint32_t msgid)
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
	while (client_request_find(c, c->next_msgid))
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
int client_request_begin(struct convc *c, const char *method, uint32_t *msgid,
			 msgpack_packer **pk, struct convc_error *err)
{
	size_t mlen;

	*pk = NULL;
	if (!c || !method) {
		client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				"no connection or no method");
		return CONVC_ERR_LOCAL;
	}
	if (c->broken) {
		client_err_broken(c, err);
		return CONVC_ERR_CONN;
	}
	if (c->building) {
		client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				"another request is being built");
		return CONVC_ERR_LOCAL;
	}
	mlen = strlen(method);
	if (mlen == 0 || mlen > 255) {
		client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
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
		client_err_fail(err, CONVC_ERR_LOCAL, "no_memory",
				"out of memory");
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

	if (client_request_begin(c, method, msgid, &pk, err) != CONVC_OK)
		return NULL;
	return pk;
}

/* Checks and queues the request being built; cb may be NULL. */
static int request_end(struct convc *c, convc_callback cb, void *arg,
		       struct convc_error *err)
{
	struct client_wire_scan_state st = { 0, 1 };
	const unsigned char *p;
	size_t n;
	enum client_wire_scan_result r;

	if (!c || !c->building)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no request is being built");
	if (c->pack_nomem) {
		convc_request_abort(c);
		return client_err_fail(err, CONVC_ERR_LOCAL, "no_memory",
				       "out of memory");
	}
	if (c->pack_too_large) {
		convc_request_abort(c);
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "request larger than %zu bytes",
				       CONVC_MAX_REQUEST);
	}
	p = (const unsigned char *)c->out + c->params_start;
	n = c->out_len - c->params_start;
	r = n ? client_wire_scan(p, n, n, &st) : CLIENT_WIRE_MORE;
	if (r != CLIENT_WIRE_DONE || st.pos != n) {
		convc_request_abort(c);
		return client_err_fail(
			err, CONVC_ERR_LOCAL, "invalid_argument",
			"params must be exactly one msgpack value");
	}
	if (!((p[0] >= 0x80 && p[0] <= 0x9f) ||
	      (p[0] >= 0xdc && p[0] <= 0xdf))) {
		convc_request_abort(c);
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "params must be an array or a map");
	}
	if (c->npend == c->pend_cap) {
		size_t cap = c->pend_cap ? c->pend_cap * 2 : 16;
		struct client_pending *np = NULL;

		if (cap <= SIZE_MAX / sizeof(*np))
			np = realloc(c->pend, cap * sizeof(*np));
		if (!np) {
			convc_request_abort(c);
			return client_err_fail(err, CONVC_ERR_LOCAL,
					       "no_memory", "out of memory");
		}
		c->pend = np;
		c->pend_cap = cap;
	}
	c->pend[c->npend].msgid = c->req_msgid;
	c->pend[c->npend].received = false;
	c->pend[c->npend].cb = cb;
	c->pend[c->npend].arg = arg;
	c->pend[c->npend].deadline =
		cb && c->timeout_ms > 0 ? client_io_now_ms() + c->timeout_ms
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
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
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
	int st = client_request_begin(c, method, msgid, &pk, err);

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
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no callback");
	return send_params(c, method, params, params_len, cb, arg, msgid, err);
}
