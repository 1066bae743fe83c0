/*
 * client_rows.c - messages with every field (issue 17): struct convc_row
 * from a result, the text of structured content, structured values as
 * the bytes convd sent (or packed again, for objects from elsewhere).
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

/* An array or map being walked by text_walk. */
struct walk_frame {
	const msgpack_object *o;
	uint32_t next;		/* the next element's (pair's) index */
};

/*
 * Every string under a "text" key, depth first in order, without
 * recursion: the open containers are a stack on the heap, as deep as o
 * is (a reply's at most CLIENT_DECODE_MAX_DEPTH).
 */
static void text_walk(struct text_buf *b, const msgpack_object *root)
{
	struct walk_frame *st = NULL;
	size_t depth = 0, cap = 0;
	const msgpack_object *o = root;

	for (;;) {
		if (o && (o->type == MSGPACK_OBJECT_ARRAY ||
			  o->type == MSGPACK_OBJECT_MAP)) {
			if (depth == cap) {
				size_t n = cap ? cap * 2 : 16;
				struct walk_frame *p;

				p = n < SIZE_MAX / sizeof(*p)
					    ? realloc(st, n * sizeof(*p))
					    : NULL;
				if (!p) {
					b->failed = true;
					break;
				}
				st = p;
				cap = n;
			}
			st[depth].o = o;
			st[depth].next = 0;
			depth++;
		}
		o = NULL;
		if (depth == 0)
			break;
		{
			struct walk_frame *top = &st[depth - 1];
			const msgpack_object *t = top->o;

			if (t->type == MSGPACK_OBJECT_ARRAY) {
				if (top->next == t->via.array.size) {
					depth--;
					continue;
				}
				o = &t->via.array.ptr[top->next++];
			} else {
				const msgpack_object *k, *v;

				if (top->next == t->via.map.size) {
					depth--;
					continue;
				}
				k = &t->via.map.ptr[top->next].key;
				v = &t->via.map.ptr[top->next].val;
				top->next++;
				if (k->type == MSGPACK_OBJECT_STR &&
				    k->via.str.size == 4 &&
				    memcmp(k->via.str.ptr, "text", 4) == 0 &&
				    v->type == MSGPACK_OBJECT_STR)
					text_add(b, v->via.str.ptr,
						 v->via.str.size);
				else
					o = v;
			}
		}
	}
	free(st);
}

/*
 * The text of a message's content: a string's bytes, or for an array or
 * map every string under a "text" key (any depth) joined with "\n", as
 * convd's `content` column holds it.  A malloc'd NUL-terminated string
 * (its length in *len); NULL when out of memory or o is neither.
 */
static char *rows_text(const msgpack_object *o, size_t *len)
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

/* o packed by msgpack-c into a malloc'd buffer (*len bytes); NULL when
 * out of memory. */
static void *rows_pack(const msgpack_object *o, size_t *len)
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

void *client_rows_value(const msgpack_object *o, bool exact, size_t *len)
{
	size_t n = 0;
	const void *p = exact ? client_decode_span(o, &n) : NULL;
	void *copy;

	if (!p)
		return rows_pack(o, len);
	copy = malloc(n ? n : 1);
	if (!copy)
		return NULL;
	memcpy(copy, p, n);
	*len = n;
	return copy;
}

const void *convc_reply_mp(const struct convc_reply *reply,
			   const msgpack_object *o, size_t *len)
{
	if (!reply || !o || !len)
		return NULL;
	return client_decode_span(o, len);
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

/* One row from a map (`exact`: decoded by this library, see
 * client_rows_value); NULL, or what is wrong with it. */
static const char *row_decode(const msgpack_object *m, struct convc_row *r,
			      bool exact, bool *nomem)
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
	r->content = rows_text(content, &r->content_len);
	if (content->type != MSGPACK_OBJECT_STR) {
		r->content_mp = client_rows_value(content, exact,
						  &r->content_mp_len);
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
		r->metadata_mp = client_rows_value(meta, exact,
						   &r->metadata_mp_len);
		if (!r->metadata_mp)
			*nomem = true;
	}
	return NULL;
}

/* convc_result_rows, convc_reply_rows. */
static int rows_decode(const msgpack_object *result, bool exact,
		       struct convc_row **rows, size_t *n,
		       struct convc_error *err)
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
					     exact, &nomem);

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

int convc_result_rows(const msgpack_object *result, struct convc_row **rows,
		      size_t *n, struct convc_error *err)
{
	return rows_decode(result, false, rows, n, err);
}

int convc_reply_rows(const struct convc_reply *reply,
		     const msgpack_object *result, struct convc_row **rows,
		     size_t *n, struct convc_error *err)
{
	if (!reply) {
		if (rows && n) {
			*rows = NULL;
			*n = 0;
		}
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no reply");
	}
	return rows_decode(result, true, rows, n, err);
}

/* Decodes *result (an array of rows of a reply) for method; a result of
 * the wrong shape fails the connection. */
static int rows_from(struct convc *c, const char *method,
		     const msgpack_object *result, struct convc_row **rows,
		     size_t *n, struct convc_error *err)
{
	struct convc_error e;
	int st = rows_decode(result, true, rows, n, &e);

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
