/*
 * client_retry.c - add_message with retries: an idempotency key made on the
 * client, the call repeated on a new connection with the same key.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "client_internal.h"

int convc_set_retries(struct convc *c, int retries, struct convc_error *err)
{
	if (!c || retries < 0 || retries > 100)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
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
			return client_err_fail(err, CONVC_ERR_LOCAL,
					       "no_randomness", "getrandom: %s",
					       strerror(errno));
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

int client_retry_add(struct convc *c, struct client_arg *args, size_t nargs,
		     size_t key_slot, int64_t *id, int64_t *created_at_usec,
		     bool *duplicate, struct convc_error *err)
{
	char key[40];
	const msgpack_object *dup;
	struct convc_reply r;
	int64_t vid, vt;
	int st, attempt = 0;

	if (c && c->retries > 0 && !args[key_slot].s) {
		/* the retry must carry the first attempt's key */
		st = new_key(key, err);
		if (st != CONVC_OK)
			return st;
		args[key_slot] = client_call_opt_str("idempotency_key", key);
	}
	for (;;) {
		st = client_call_named(c, "add_message", args, nargs, &r, err);
		if (st != CONVC_ERR_CONN || !c || attempt >= c->retries ||
		    c->dispatching || c->close_pending)
			break;
		/* a broken connection: again on a new one, after a pause
		 * (convd may be restarting), with the same key */
		do {
			int ms = 50 << (attempt < 5 ? attempt : 5);

			attempt++;
			poll(NULL, 0, ms);
			st = client_conn_reconnect(c, err);
		} while (st != CONVC_OK && attempt < c->retries);
		if (st != CONVC_OK)
			return st;
	}
	if (st != CONVC_OK)
		return st;
	if (!client_wire_int(convc_map_get(&r.result, "id"), &vid))
		return client_call_shape(c, &r, err, "add_message",
					 "no integer 'id'");
	if (!convc_object_timestamp(convc_map_get(&r.result, "created_at"),
				    &vt))
		return client_call_shape(c, &r, err, "add_message",
					 "no timestamp 'created_at'");
	dup = convc_map_get(&r.result, "duplicate");
	if (dup && dup->type != MSGPACK_OBJECT_BOOLEAN)
		return client_call_shape(c, &r, err, "add_message",
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

int convc_add_message_key(struct convc *c, const char *user_id,
			  const char *provider, const char *role,
			  const char *content, size_t content_len,
			  const char *platform, const char *idempotency_key,
			  int64_t *id, int64_t *created_at_usec,
			  bool *duplicate, struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		CLIENT_ARG_STR("provider", provider),
		CLIENT_ARG_STR("role", role),
		CLIENT_ARG_STRN("content", content,
				content ? content_len : SIZE_MAX),
		client_call_opt_str("platform", platform),
		client_call_opt_str("idempotency_key", idempotency_key),
	};

	return client_retry_add(c, args, sizeof(args) / sizeof(args[0]), 5,
				id, created_at_usec, duplicate, err);
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
