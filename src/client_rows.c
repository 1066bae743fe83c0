/*
 * client_rows.c - messages with every field (issue 17): struct convc_row
 * from a result, the text of structured content, values packed again.
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

/* A growing text buffer; `failed` once memory ran out. */
struct text_buf {
	char *p;
	size_t len, cap;
	bool failed;
	unsigned parts;
};

static void text_add(struct text_buf *b, const char *s, size_t n)
{
	size_t need;

	if (b->failed)
		return;
	need = b->len + n + (b->parts ? 1 : 0) + 1;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;

		while (cap < need)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (b->parts++)
		b->p[b->len++] = '\n';
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Every string under a "text" key, depth first in order.  msgpack-c
 * decodes at most 32 levels, so the recursion is bounded. */
static void text_walk(struct text_buf *b, const msgpack_object *o)
{
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < o->via.array.size; i++)
			text_walk(b, &o->via.array.ptr[i]);
	} else if (o->type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;
			const msgpack_object *v = &o->via.map.ptr[i].val;

			if (k->type == MSGPACK_OBJECT_STR &&
			    k->via.str.size == 4 &&
			    memcmp(k->via.str.ptr, "text", 4) == 0 &&
			    v->type == MSGPACK_OBJECT_STR)
				text_add(b, v->via.str.ptr, v->via.str.size);
			else
				text_walk(b, v);
		}
	}
}

char *client_rows_text(const msgpack_object *o, size_t *len)
{
	struct text_buf b = { NULL, 0, 0, false, 0 };

	if (o->type == MSGPACK_OBJECT_STR)
		return client_wire_strdup(o, len);
	if (o->type != MSGPACK_OBJECT_ARRAY && o->type != MSGPACK_OBJECT_MAP)
		return NULL;
	text_walk(&b, o);
	if (!b.failed && !b.p)
		b.p = calloc(1, 1);
	if (b.failed || !b.p) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

void *client_rows_pack(const msgpack_object *o, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (msgpack_pack_object(&pk, *o) < 0 || sb.size == 0) {
		msgpack_sbuffer_destroy(&sb);
		return NULL;
	}
	*len = sb.size;
	return msgpack_sbuffer_release(&sb);
}

static void row_clear(struct convc_row *r)
{
	free(r->role);
	free(r->content);
	free(r->content_mp);
	free(r->provider);
	free(r->conversation_id);
	free(r->tool_call_id);
	free(r->name);
	free(r->model);
	free(r->metadata_mp);
	free(r->idempotency_key);
}

void convc_rows_free(struct convc_row *rows, size_t n)
{
	if (!rows)
		return;
	for (size_t i = 0; i < n; i++)
		row_clear(&rows[i]);
	free(rows);
}

/* An optional string field: absent or nil leaves *out NULL; anything but
 * a string is an error ("protocol"), no memory is "no_memory". */
static const char *opt_str(const msgpack_object *m, const char *key,
			   char **out, bool *nomem)
{
	const msgpack_object *v = convc_map_get(m, key);

	if (!v || v->type == MSGPACK_OBJECT_NIL)
		return NULL;
	if (v->type != MSGPACK_OBJECT_STR)
		return key;
	*out = client_wire_strdup(v, NULL);
	if (!*out)
		*nomem = true;
	return NULL;
}

/* One row from a map; NULL, or what is wrong with it. */
static const char *row_decode(const msgpack_object *m, struct convc_row *r,
			      bool *nomem)
{
	static const char *const strs[] = {
		"conversation_id", "tool_call_id", "name", "model",
		"idempotency_key",
	};
	char **dst[] = {
		&r->conversation_id, &r->tool_call_id, &r->name, &r->model,
		&r->idempotency_key,
	};
	const msgpack_object *role, *content, *provider, *tokens, *meta;
	const char *bad;

	if (m->type != MSGPACK_OBJECT_MAP)
		return "an element is not a map";
	role = convc_map_get(m, "role");
	content = convc_map_get(m, "content");
	provider = convc_map_get(m, "provider");
	if (!client_wire_int(convc_map_get(m, "id"), &r->id))
		return "no integer 'id'";
	if (!convc_object_timestamp(convc_map_get(m, "created_at"),
				    &r->created_at_usec))
		return "no timestamp 'created_at'";
	if (!role || role->type != MSGPACK_OBJECT_STR || !provider ||
	    provider->type != MSGPACK_OBJECT_STR)
		return "'role' or 'provider' is not a string";
	if (!content || (content->type != MSGPACK_OBJECT_STR &&
			 content->type != MSGPACK_OBJECT_ARRAY &&
			 content->type != MSGPACK_OBJECT_MAP))
		return "'content' is not a string, array or map";
	r->role = client_wire_strdup(role, NULL);
	r->provider = client_wire_strdup(provider, NULL);
	r->content = client_rows_text(content, &r->content_len);
	if (content->type != MSGPACK_OBJECT_STR) {
		r->content_mp = client_rows_pack(content, &r->content_mp_len);
		if (!r->content_mp)
			*nomem = true;
	}
	if (!r->role || !r->provider || !r->content)
		*nomem = true;
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		bad = opt_str(m, strs[i], dst[i], nomem);
		if (bad)
			return "an optional field is not a string";
	}
	tokens = convc_map_get(m, "tokens");
	if (tokens && tokens->type != MSGPACK_OBJECT_NIL) {
		if (!client_wire_int(tokens, &r->tokens))
			return "'tokens' is not an integer";
		r->has_tokens = true;
	}
	meta = convc_map_get(m, "metadata");
	if (meta && meta->type != MSGPACK_OBJECT_NIL) {
		if (meta->type != MSGPACK_OBJECT_MAP)
			return "'metadata' is not a map";
		r->metadata_mp = client_rows_pack(meta, &r->metadata_mp_len);
		if (!r->metadata_mp)
			*nomem = true;
	}
	return NULL;
}

int convc_result_rows(const msgpack_object *result, struct convc_row **rows,
		      size_t *n, struct convc_error *err)
{
	struct convc_row *v;
	uint32_t count;

	if (!rows || !n)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no place for the result");
	*rows = NULL;
	*n = 0;
	if (!result || result->type != MSGPACK_OBJECT_ARRAY)
		return client_err_fail(err, CONVC_ERR_LOCAL, "protocol",
				       "unexpected result (not an array)");
	count = result->via.array.size;
	if (count == 0)
		return CONVC_OK;
	v = calloc(count, sizeof(*v));
	if (!v)
		return client_err_fail(err, CONVC_ERR_LOCAL, "no_memory",
				       "out of memory");
	for (uint32_t i = 0; i < count; i++) {
		bool nomem = false;
		const char *bad = row_decode(&result->via.array.ptr[i], &v[i],
					     &nomem);

		if (bad || nomem) {
			convc_rows_free(v, count);
			if (bad)
				return client_err_fail(err, CONVC_ERR_LOCAL,
						       "protocol",
						       "unexpected result (%s)",
						       bad);
			return client_err_fail(err, CONVC_ERR_LOCAL,
					       "no_memory", "out of memory");
		}
	}
	*rows = v;
	*n = count;
	return CONVC_OK;
}

/* Decodes *result (an array of rows) for method; a result of the wrong
 * shape fails the connection. */
static int rows_from(struct convc *c, const char *method,
		     const msgpack_object *result, struct convc_row **rows,
		     size_t *n, struct convc_error *err)
{
	struct convc_error e;
	int st = convc_result_rows(result, rows, n, &e);

	return client_call_decoded(c, method, st, &e, err);
}

int client_rows_call(struct convc *c, const char *method,
		     const struct client_arg *args, size_t nargs,
		     struct convc_row **rows, size_t *n,
		     struct convc_error *err)
{
	struct convc_reply r;
	int st;

	if (!rows || !n)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no place for the result");
	*rows = NULL;
	*n = 0;
	st = client_call_named(c, method, args, nargs, &r, err);
	if (st != CONVC_OK)
		return st;
	st = rows_from(c, method, &r.result, rows, n, err);
	convc_reply_free(&r);
	return st;
}

/* The rows under key of a map result (get_context, get_messages). */
int client_rows_member(struct convc *c, const char *method,
		       const msgpack_object *result, const char *key,
		       struct convc_row **rows, size_t *n,
		       struct convc_error *err)
{
	const msgpack_object *arr = convc_map_get(result, key);

	*rows = NULL;
	*n = 0;
	if (!arr)
		return client_err_conn(c, err, "protocol",
				       "%s: unexpected result (no '%s')", method,
				       key);
	return rows_from(c, method, arr, rows, n, err);
}
