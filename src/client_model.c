/*
 * client_model.c - the typed calls of the conversation model (issue 17):
 * messages with every field, conversations, provider state.
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

#define NARGS(a) (sizeof(a) / sizeof((a)[0]))

/* The slots of a message's arguments (add_message, import_message). */
enum {
	MSG_USER, MSG_PROVIDER, MSG_ROLE, MSG_CONTENT, MSG_PLATFORM, MSG_KEY,
	MSG_CONVERSATION, MSG_TOOL_CALL, MSG_NAME, MSG_MODEL, MSG_TOKENS,
	MSG_METADATA, MSG_CREATED_AT, MSG_NARGS
};

static int message_args(struct client_arg *a, const char *user_id,
			const char *provider, const char *role,
			const char *content, size_t content_len,
			const struct convc_message_opts *o,
			struct convc_error *err)
{
	static const struct convc_message_opts none;
	int st;

	if (!o)
		o = &none;
	a[MSG_USER] = (struct client_arg)CLIENT_ARG_STR("user_id", user_id);
	a[MSG_PROVIDER] = (struct client_arg)CLIENT_ARG_STR("provider",
							     provider);
	a[MSG_ROLE] = (struct client_arg)CLIENT_ARG_STR("role", role);
	if (content && o->content_mp)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "content: both text and content_mp");
	if (content) {
		a[MSG_CONTENT] = (struct client_arg)CLIENT_ARG_STRN(
			"content", content, content_len);
	} else if (o->content_mp) {
		st = client_call_raw_arg(&a[MSG_CONTENT], "content",
					 o->content_mp, o->content_mp_len,
					 CLIENT_MP_CONTAINER, err);
		if (st != CONVC_OK)
			return st;
	} else {
		/* required: client_call_named refuses it */
		a[MSG_CONTENT] = (struct client_arg)CLIENT_ARG_STR("content",
								    NULL);
	}
	a[MSG_PLATFORM] = client_call_opt_str("platform", o->platform);
	a[MSG_KEY] = client_call_opt_str("idempotency_key",
					 o->idempotency_key);
	a[MSG_CONVERSATION] = client_call_opt_str("conversation_id",
						  o->conversation_id);
	a[MSG_TOOL_CALL] = client_call_opt_str("tool_call_id",
					       o->tool_call_id);
	a[MSG_NAME] = client_call_opt_str("name", o->name);
	a[MSG_MODEL] = client_call_opt_str("model", o->model);
	a[MSG_TOKENS] = client_call_opt_int("tokens", o->has_tokens,
					    o->tokens);
	a[MSG_CREATED_AT] = (struct client_arg)CLIENT_ARG_NONE("created_at");
	return client_call_raw_arg(&a[MSG_METADATA], "metadata",
				   o->metadata_mp, o->metadata_mp_len,
				   CLIENT_MP_MAP, err);
}

int convc_add_message_ex(struct convc *c, const char *user_id,
			 const char *provider, const char *role,
			 const char *content, size_t content_len,
			 const struct convc_message_opts *opts, int64_t *id,
			 int64_t *created_at_usec, bool *duplicate,
			 struct convc_error *err)
{
	struct client_arg args[MSG_NARGS];
	int st = message_args(args, user_id, provider, role, content,
			      content_len, opts, err);

	if (st != CONVC_OK)
		return st;
	return client_retry_add(c, args, MSG_CREATED_AT, MSG_KEY, id,
				created_at_usec, duplicate, err);
}

int convc_import_message_ex(struct convc *c, const char *user_id,
			    const char *provider, const char *role,
			    const char *content, size_t content_len,
			    int64_t created_at_usec,
			    const struct convc_message_opts *opts, int64_t *id,
			    bool *imported, struct convc_error *err)
{
	struct client_arg args[MSG_NARGS];
	const msgpack_object *imp;
	struct convc_reply r;
	int64_t vid;
	int st = message_args(args, user_id, provider, role, content,
			      content_len, opts, err);

	if (st != CONVC_OK)
		return st;
	args[MSG_CREATED_AT] = (struct client_arg)CLIENT_ARG_INT(
		"created_at", created_at_usec);
	st = client_call_named(c, "import_message", args, MSG_NARGS, &r, err);
	if (st != CONVC_OK)
		return st;
	imp = convc_map_get(&r.result, "imported");
	if (!client_wire_int(convc_map_get(&r.result, "id"), &vid))
		return client_call_shape(c, &r, err, "import_message",
					 "no integer 'id'");
	if (!imp || imp->type != MSGPACK_OBJECT_BOOLEAN)
		return client_call_shape(c, &r, err, "import_message",
					 "no boolean 'imported'");
	if (id)
		*id = vid;
	if (imported)
		*imported = imp->via.boolean;
	convc_reply_free(&r);
	return CONVC_OK;
}

int convc_get_recent_conversations_ex(struct convc *c, const char *user_id,
				      const char *provider, int limit,
				      const char *conversation_id,
				      const char *platform,
				      struct convc_row **rows, size_t *n,
				      struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		CLIENT_ARG_STR("provider", provider),
		client_call_opt_int("limit", limit > 0, limit),
		client_call_opt_str("conversation_id", conversation_id),
		client_call_opt_str("platform", platform),
	};

	return client_rows_call(c, "get_recent_conversations", args,
				NARGS(args), rows, n, err);
}

int convc_export_history_ex(struct convc *c, const char *user_id,
			    const char *provider, const char *conversation_id,
			    const char *platform, int64_t after_id, int limit,
			    struct convc_row **rows, size_t *n,
			    struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		client_call_opt_str("provider", provider),
		client_call_opt_str("conversation_id", conversation_id),
		client_call_opt_int("after_id", after_id > 0, after_id),
		client_call_opt_int("limit", limit > 0, limit),
		client_call_opt_str("platform", platform),
	};

	return client_rows_call(c, "export_history", args, NARGS(args), rows,
				n, err);
}

/* clear_user_history / delete_conversation: a conversation's messages
 * deleted, {"deleted": n}; conversation_id required for the second. */
static int conversation_deleted(struct convc *c, const char *method,
				const char *user_id, const char *provider,
				const char *conversation_id, bool required,
				const char *platform, int64_t *deleted,
				struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		CLIENT_ARG_STR("provider", provider),
		required ? (struct client_arg)CLIENT_ARG_STR("conversation_id",
							     conversation_id)
			 : client_call_opt_str("conversation_id",
					       conversation_id),
		client_call_opt_str("platform", platform),
	};

	return client_call_deleted(c, method, args, NARGS(args), deleted,
				   err);
}

int convc_clear_user_history_ex(struct convc *c, const char *user_id,
				const char *provider,
				const char *conversation_id,
				const char *platform, int64_t *deleted,
				struct convc_error *err)
{
	return conversation_deleted(c, "clear_user_history", user_id,
				    provider, conversation_id, false, platform,
				    deleted, err);
}

int convc_get_conversation_count_ex(struct convc *c, const char *user_id,
				    const char *provider,
				    const char *conversation_id,
				    const char *platform, int64_t *count,
				    struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		client_call_opt_str("provider", provider),
		client_call_opt_str("conversation_id", conversation_id),
		client_call_opt_str("platform", platform),
	};
	struct convc_reply r;
	int64_t v;
	int st = client_call_named(c, "get_conversation_count", args,
				   NARGS(args), &r, err);

	if (st != CONVC_OK)
		return st;
	if (!client_wire_int(&r.result, &v))
		return client_call_shape(c, &r, err, "get_conversation_count",
					 "not an integer");
	if (count)
		*count = v;
	convc_reply_free(&r);
	return CONVC_OK;
}

/* ------------------------------------------------------------------ */
/* Conversations */

void convc_conversation_list_free(struct convc_conversation_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].provider);
		free(l->items[i].conversation_id);
		free(l->items[i].metadata_mp);
	}
	free(l->items);
	free(l->next);
	memset(l, 0, sizeof(*l));
}

/* One entry of list_conversations; NULL or what is wrong. */
static const char *conversation_decode(const msgpack_object *m,
				       struct convc_conversation *o,
				       bool *nomem)
{
	const msgpack_object *prov = convc_map_get(m, "provider");
	const msgpack_object *conv = convc_map_get(m, "conversation_id");
	const msgpack_object *meta = convc_map_get(m, "metadata");

	if (m->type != MSGPACK_OBJECT_MAP)
		return "an element is not a map";
	if (!prov || prov->type != MSGPACK_OBJECT_STR)
		return "no string 'provider'";
	if (conv && conv->type != MSGPACK_OBJECT_NIL &&
	    conv->type != MSGPACK_OBJECT_STR)
		return "'conversation_id' is not a string";
	if (!client_wire_int(convc_map_get(m, "message_count"),
			     &o->message_count))
		return "no integer 'message_count'";
	if (!convc_object_timestamp(convc_map_get(m, "first_message_at"),
				    &o->first_message_at_usec) ||
	    !convc_object_timestamp(convc_map_get(m, "last_message_at"),
				    &o->last_message_at_usec))
		return "no timestamps 'first_message_at', 'last_message_at'";
	if (meta && meta->type != MSGPACK_OBJECT_NIL &&
	    meta->type != MSGPACK_OBJECT_MAP)
		return "'metadata' is not a map";
	o->provider = client_wire_strdup(prov, NULL);
	if (!o->provider)
		*nomem = true;
	if (conv && conv->type == MSGPACK_OBJECT_STR) {
		o->conversation_id = client_wire_strdup(conv, NULL);
		if (!o->conversation_id)
			*nomem = true;
	}
	if (meta && meta->type == MSGPACK_OBJECT_MAP) {
		o->metadata_mp = client_rows_value(meta, true,
						   &o->metadata_mp_len);
		if (!o->metadata_mp)
			*nomem = true;
	}
	return NULL;
}

int convc_list_conversations(struct convc *c, const char *user_id,
			     const char *provider, const char *platform,
			     const char *after, int limit,
			     struct convc_conversation_list *out,
			     struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		client_call_opt_str("provider", provider),
		client_call_opt_str("platform", platform),
		client_call_opt_str("after", after),
		client_call_opt_int("limit", limit > 0, limit),
	};
	struct convc_conversation_list l = { NULL, 0, NULL };
	const msgpack_object *arr, *next;
	const char *bad = NULL;
	bool nomem = false;
	struct convc_reply r;
	int st;

	st = client_call_out(c, "list_conversations", args, NARGS(args), out,
			     sizeof(*out), &r, err);
	if (st != CONVC_OK)
		return st;
	arr = convc_map_get(&r.result, "conversations");
	next = convc_map_get(&r.result, "next");
	if (!arr || arr->type != MSGPACK_OBJECT_ARRAY)
		return client_call_shape(c, &r, err, "list_conversations",
					 "no array 'conversations'");
	if (next && next->type != MSGPACK_OBJECT_NIL &&
	    next->type != MSGPACK_OBJECT_STR)
		return client_call_shape(c, &r, err, "list_conversations",
					 "'next' is not a string");
	if (arr->via.array.size > 0) {
		l.items = calloc(arr->via.array.size, sizeof(*l.items));
		nomem = !l.items;
	}
	for (uint32_t i = 0; !nomem && !bad && i < arr->via.array.size;
	     i++) {
		bad = conversation_decode(&arr->via.array.ptr[i], &l.items[i],
					  &nomem);
		l.n = i + 1;
	}
	if (!nomem && !bad && next && next->type == MSGPACK_OBJECT_STR) {
		l.next = client_wire_strdup(next, NULL);
		nomem = !l.next;
	}
	if (bad || nomem) {
		convc_conversation_list_free(&l);
		if (bad)
			return client_call_shape(c, &r, err,
						 "list_conversations", bad);
		convc_reply_free(&r);
		return client_err_fail(err, CONVC_ERR_LOCAL, "no_memory",
				       "out of memory");
	}
	convc_reply_free(&r);
	*out = l;
	return CONVC_OK;
}

int convc_delete_conversation(struct convc *c, const char *user_id,
			      const char *provider,
			      const char *conversation_id,
			      const char *platform, int64_t *deleted,
			      struct convc_error *err)
{
	return conversation_deleted(c, "delete_conversation", user_id,
				    provider, conversation_id, true, platform,
				    deleted, err);
}

/* ------------------------------------------------------------------ */
/* State */

void convc_state_free(struct convc_state *s)
{
	if (!s)
		return;
	free(s->state_mp);
	memset(s, 0, sizeof(*s));
}

int convc_get_state(struct convc *c, const char *user_id,
		    const char *provider, const char *conversation_id,
		    const char *platform, struct convc_state *out,
		    struct convc_error *err)
{
	return convc_get_state_ex(c, user_id, provider, conversation_id,
				  platform, out, NULL, NULL, err);
}

int convc_get_state_ex(struct convc *c, const char *user_id,
		       const char *provider, const char *conversation_id,
		       const char *platform, struct convc_state *out,
		       void **metadata_mp, size_t *metadata_mp_len,
		       struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		CLIENT_ARG_STR("provider", provider),
		client_call_opt_str("conversation_id", conversation_id),
		client_call_opt_str("platform", platform),
	};
	const msgpack_object *state, *at, *meta = NULL;
	struct convc_state s = { false, NULL, 0, 0, 0 };
	struct convc_reply r;
	void *meta_mp = NULL;
	size_t meta_len = 0;
	int st;

	if (metadata_mp)
		*metadata_mp = NULL;
	if (metadata_mp_len)
		*metadata_mp_len = 0;
	st = client_call_out(c, "get_state", args, NARGS(args), out,
			     sizeof(*out), &r, err);
	if (st != CONVC_OK)
		return st;
	if (r.result.type == MSGPACK_OBJECT_NIL) {
		convc_reply_free(&r);
		return CONVC_OK;
	}
	/* the metadata set with the state: a map, or absent / nil (none) */
	if (metadata_mp)
		meta = convc_map_get(&r.result, "metadata");
	if (meta && meta->type == MSGPACK_OBJECT_NIL)
		meta = NULL;
	if (meta && meta->type != MSGPACK_OBJECT_MAP)
		return client_call_shape(c, &r, err, "get_state",
					 "'metadata' is not a map");
	state = convc_map_get(&r.result, "state");
	at = convc_map_get(&r.result, "updated_at");
	if (!state || state->type != MSGPACK_OBJECT_MAP)
		return client_call_shape(c, &r, err, "get_state",
					 "no map 'state'");
	if (!client_wire_int(convc_map_get(&r.result, "version"), &s.version))
		return client_call_shape(c, &r, err, "get_state",
					 "no integer 'version'");
	if (at && !convc_object_timestamp(at, &s.updated_at_usec))
		return client_call_shape(c, &r, err, "get_state",
					 "'updated_at' is not a timestamp");
	s.state_mp = client_rows_value(state, true, &s.state_mp_len);
	if (s.state_mp && meta)
		meta_mp = client_rows_value(meta, true, &meta_len);
	convc_reply_free(&r);
	if (!s.state_mp || (meta && !meta_mp)) {
		free(s.state_mp);
		return client_err_fail(err, CONVC_ERR_LOCAL, "no_memory",
				       "out of memory");
	}
	s.found = true;
	*out = s;
	if (metadata_mp) {
		*metadata_mp = meta_mp;
		if (metadata_mp_len)
			*metadata_mp_len = meta_len;
	}
	return CONVC_OK;
}

int convc_set_state(struct convc *c, const char *user_id,
		    const char *provider, const void *state_mp,
		    size_t state_mp_len, const struct convc_state_opts *opts,
		    int64_t *version, struct convc_error *err)
{
	static const struct convc_state_opts none;
	const struct convc_state_opts *o = opts ? opts : &none;
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		CLIENT_ARG_STR("provider", provider),
		CLIENT_ARG_NONE("state"),
		client_call_opt_str("conversation_id", o->conversation_id),
		client_call_opt_int("expected_version", o->has_expected_version,
				    o->expected_version),
		CLIENT_ARG_NONE("metadata"),
		client_call_opt_str("platform", o->platform),
	};
	struct convc_reply r;
	int64_t v;
	int st;

	if (!state_mp)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "state: required");
	st = client_call_raw_arg(&args[2], "state", state_mp, state_mp_len,
				 CLIENT_MP_MAP, err);
	if (st == CONVC_OK)
		st = client_call_raw_arg(&args[5], "metadata", o->metadata_mp,
					 o->metadata_mp_len, CLIENT_MP_MAP,
					 err);
	if (st != CONVC_OK)
		return st;
	st = client_call_named(c, "set_state", args, NARGS(args), &r, err);
	if (st != CONVC_OK)
		return st;
	if (!client_wire_int(convc_map_get(&r.result, "version"), &v))
		return client_call_shape(c, &r, err, "set_state",
					 "no integer 'version'");
	if (version)
		*version = v;
	convc_reply_free(&r);
	return CONVC_OK;
}
