/*
 * client_call.c - typed calls: named arguments packed, the result's shape
 * checked; message arrays decoded (convc_result_messages, on the rows of
 * client_rows.c).
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

/* [ {key: value, ...} ] -> call -> reply. */
int client_call_named(struct convc *c, const char *method,
		      const struct client_arg *args, size_t nargs,
		      struct convc_reply *reply, struct convc_error *err)
{
	msgpack_packer *pk;
	uint32_t msgid;
	size_t n = 0;
	int st;

	client_wire_reply_clear(reply);
	if (c && c->dispatching)	/* before anything is queued */
		return client_err_in_callback(err, method);
	for (size_t i = 0; i < nargs; i++) {
		const struct client_arg *a = &args[i];
		bool present = a->is_int || a->is_bool || a->s || a->raw;

		if (!present && a->len == SIZE_MAX)
			return client_err_fail(err, CONVC_ERR_LOCAL,
					       "invalid_argument",
					       "%s: required", a->key);
		if (present)
			n++;
	}
	st = client_request_begin(c, method, &msgid, &pk, err);
	if (st != CONVC_OK)
		return st;
	if (msgpack_pack_array(pk, 1) < 0 || msgpack_pack_map(pk, n) < 0)
		goto packed;
	for (size_t i = 0; i < nargs; i++) {
		const struct client_arg *a = &args[i];

		if (!a->is_int && !a->is_bool && !a->s && !a->raw)
			continue;
		if (msgpack_pack_str_with_body(pk, a->key, strlen(a->key)) < 0)
			goto packed;
		if (a->raw) {
			/* checked by client_call_raw_arg: one object */
			if (pk->callback(pk->data, (const char *)a->raw,
					  a->raw_len) < 0)
				goto packed;
		} else if (a->is_bool) {
			if ((a->i ? msgpack_pack_true(pk)
				  : msgpack_pack_false(pk)) < 0)
				goto packed;
		} else if (a->is_int) {
			if (msgpack_pack_int64(pk, a->i) < 0)
				goto packed;
		} else {
			size_t len = a->len == SIZE_MAX ? strlen(a->s) : a->len;

			if (len > UINT32_MAX) {
				convc_request_abort(c);
				return client_err_fail(err, CONVC_ERR_LOCAL,
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

int client_call_raw_arg(struct client_arg *a, const char *key, const void *p,
			size_t len, enum client_mp_kind kind,
			struct convc_error *err)
{
	struct client_wire_scan_state scan = { 0, 1 };
	const unsigned char *b = p;
	bool is_map, is_array;

	*a = (struct client_arg)CLIENT_ARG_NONE(key);
	if (!p)
		return CONVC_OK;
	if (len == 0 || len > CONVC_MAX_REQUEST ||
	    client_wire_scan(b, len, len, &scan) != CLIENT_WIRE_DONE ||
	    scan.pos != len)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "%s: not exactly one msgpack object",
				       key);
	is_map = (b[0] >= 0x80 && b[0] <= 0x8f) || b[0] == 0xde ||
		 b[0] == 0xdf;
	is_array = (b[0] >= 0x90 && b[0] <= 0x9f) || b[0] == 0xdc ||
		   b[0] == 0xdd;
	if (!is_map && (kind == CLIENT_MP_MAP || !is_array))
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "%s: not a msgpack %s", key,
				       kind == CLIENT_MP_MAP ? "map"
							     : "array or map");
	a->raw = p;
	a->raw_len = len;
	return CONVC_OK;
}

int client_call_shape(struct convc *c, struct convc_reply *reply,
		      struct convc_error *err, const char *method,
		      const char *what)
{
	convc_reply_free(reply);
	return client_err_conn(c, err, "protocol", "%s: unexpected result (%s)",
			       method, what);
}

/* Calls a method whose result is {"deleted": n}. */
int client_call_deleted(struct convc *c, const char *method,
			const struct client_arg *args, size_t nargs,
			int64_t *deleted, struct convc_error *err)
{
	struct convc_reply r;
	int64_t v;
	int st = client_call_named(c, method, args, nargs, &r, err);

	if (st != CONVC_OK)
		return st;
	if (!client_wire_int(convc_map_get(&r.result, "deleted"), &v))
		return client_call_shape(c, &r, err, method,
					 "no integer 'deleted'");
	if (deleted)
		*deleted = v;
	convc_reply_free(&r);
	return CONVC_OK;
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
	struct convc_row *rows;
	size_t count;
	int st;

	if (!msgs || !n)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no place for the result");
	*msgs = NULL;
	*n = 0;
	/* the rows, of which a message keeps the first fields */
	st = convc_result_rows(result, &rows, &count, err);
	if (st != CONVC_OK || count == 0)
		return st;
	v = calloc(count, sizeof(*v));
	if (!v) {
		convc_rows_free(rows, count);
		return client_err_fail(err, CONVC_ERR_LOCAL, "no_memory",
				       "out of memory");
	}
	for (size_t i = 0; i < count; i++) {
		v[i].id = rows[i].id;
		v[i].role = rows[i].role;
		v[i].content = rows[i].content;
		v[i].content_len = rows[i].content_len;
		v[i].provider = rows[i].provider;
		v[i].created_at_usec = rows[i].created_at_usec;
		rows[i].role = rows[i].content = rows[i].provider = NULL;
	}
	convc_rows_free(rows, count);
	*msgs = v;
	*n = count;
	return CONVC_OK;
}

/* A call whose result is an array of messages. */
int client_call_messages(struct convc *c, const char *method,
			 const struct client_arg *args, size_t nargs,
			 struct convc_message **msgs, size_t *n,
			 struct convc_error *err)
{
	struct convc_reply r;
	struct convc_error e;
	int st;

	if (!msgs || !n)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no place for the result");
	*msgs = NULL;
	*n = 0;
	st = client_call_named(c, method, args, nargs, &r, err);
	if (st != CONVC_OK)
		return st;
	st = convc_result_messages(&r.result, msgs, n, &e);
	convc_reply_free(&r);
	return client_call_decoded(c, method, st, &e, err);
}

int client_call_decoded(struct convc *c, const char *method, int st,
			const struct convc_error *e, struct convc_error *err)
{
	if (st == CONVC_OK)
		return CONVC_OK;
	/* a result of the wrong shape: the connection cannot be trusted */
	if (strcmp(e->code, "protocol") == 0)
		return client_err_conn(c, err, "protocol", "%s: %s", method,
				       e->message);
	if (err)
		*err = *e;
	return st;
}

int client_call_out(struct convc *c, const char *method,
		    const struct client_arg *args, size_t nargs, void *out,
		    size_t out_size, struct convc_reply *reply,
		    struct convc_error *err)
{
	if (!out) {
		client_wire_reply_clear(reply);
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no place for the result");
	}
	memset(out, 0, out_size);
	return client_call_named(c, method, args, nargs, reply, err);
}
