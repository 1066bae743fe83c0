/*
 * client_methods.c - one typed call per method of the protocol.
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

int convc_ping(struct convc *c, struct convc_error *err)
{
	struct convc_reply r;
	int st;

	client_wire_reply_clear(&r);
	st = convc_call(c, "ping", NULL, 0, &r, err);
	if (st != CONVC_OK)
		return st;
	if (r.result.type != MSGPACK_OBJECT_STR || r.result.via.str.size != 4 ||
	    memcmp(r.result.via.str.ptr, "pong", 4) != 0)
		return client_call_shape(c, &r, err, "ping", "not \"pong\"");
	convc_reply_free(&r);
	return CONVC_OK;
}

int convc_get_recent_conversations(struct convc *c, const char *user_id,
				   const char *provider, int limit,
				   const char *platform,
				   struct convc_message **msgs, size_t *n,
				   struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		CLIENT_ARG_STR("provider", provider),
		limit > 0 ? (struct client_arg)CLIENT_ARG_INT("limit", limit)
			  : (struct client_arg)CLIENT_ARG_NONE("limit"),
		client_call_opt_str("platform", platform),
	};

	return client_call_messages(c, "get_recent_conversations", args,
				    sizeof(args) / sizeof(args[0]), msgs, n,
				    err);
}

int convc_export_history(struct convc *c, const char *user_id,
			 const char *provider, const char *platform,
			 int64_t after_id, int limit,
			 struct convc_message **msgs, size_t *n,
			 struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		client_call_opt_str("provider", provider),
		after_id > 0 ? (struct client_arg)CLIENT_ARG_INT("after_id",
								 after_id)
			     : (struct client_arg)CLIENT_ARG_NONE("after_id"),
		limit > 0 ? (struct client_arg)CLIENT_ARG_INT("limit", limit)
			  : (struct client_arg)CLIENT_ARG_NONE("limit"),
		client_call_opt_str("platform", platform),
	};

	return client_call_messages(c, "export_history", args,
				    sizeof(args) / sizeof(args[0]), msgs, n,
				    err);
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
	struct convc_message_opts o;

	memset(&o, 0, sizeof(o));
	o.platform = platform;
	o.idempotency_key = idempotency_key;
	/* (content NULL is refused as required, as it always was) */
	return convc_import_message_ex(c, user_id, provider, role, content,
				       content_len, created_at_usec, &o, id,
				       imported, err);
}

int convc_clear_user_history(struct convc *c, const char *user_id,
			     const char *provider, const char *platform,
			     int64_t *deleted, struct convc_error *err)
{
	return convc_clear_user_history_ex(c, user_id, provider, NULL,
					   platform, deleted, err);
}

int convc_get_conversation_count(struct convc *c, const char *user_id,
				 const char *provider, const char *platform,
				 int64_t *count, struct convc_error *err)
{
	return convc_get_conversation_count_ex(c, user_id, provider, NULL,
					       platform, count, err);
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
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		client_call_opt_str("platform", platform),
	};
	struct convc_reply r;
	struct convc_user_stats s;
	const msgpack_object *prov;
	int st;

	if (!out)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no place for the result");
	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof(s));
	st = client_call_named(c, "get_user_statistics", args,
			       sizeof(args) / sizeof(args[0]), &r, err);
	if (st != CONVC_OK)
		return st;
	if (!client_wire_int(convc_map_get(&r.result, "total_messages"),
			     &s.total_messages))
		return client_call_shape(c, &r, err, "get_user_statistics",
					 "no integer 'total_messages'");
	prov = convc_map_get(&r.result, "providers");
	if (!prov || prov->type != MSGPACK_OBJECT_MAP)
		return client_call_shape(c, &r, err, "get_user_statistics",
					 "no map 'providers'");
	if (prov->via.map.size > 0) {
		s.providers = calloc(prov->via.map.size, sizeof(*s.providers));
		if (!s.providers) {
			convc_reply_free(&r);
			return client_err_fail(err, CONVC_ERR_LOCAL,
					       "no_memory", "out of memory");
		}
	}
	for (uint32_t i = 0; i < prov->via.map.size; i++) {
		const msgpack_object *k = &prov->via.map.ptr[i].key;
		const msgpack_object *v = &prov->via.map.ptr[i].val;
		const msgpack_object *last =
			convc_map_get(v, "last_message_at");
		struct convc_provider_stats *p = &s.providers[i];
		const char *bad = NULL;

		if (k->type != MSGPACK_OBJECT_STR ||
		    v->type != MSGPACK_OBJECT_MAP)
			bad = "a provider is not a name with a map";
		else if (!client_wire_int(convc_map_get(v, "message_count"),
					  &p->message_count))
			bad = "no integer 'message_count'";
		else if (last && last->type != MSGPACK_OBJECT_NIL &&
			 !convc_object_timestamp(last,
						 &p->last_message_at_usec))
			bad = "'last_message_at' is not a timestamp";
		if (bad) {
			convc_user_stats_free(&s);
			return client_call_shape(c, &r, err,
						 "get_user_statistics", bad);
		}
		p->has_last_message = last && last->type != MSGPACK_OBJECT_NIL;
		p->provider = client_wire_strdup(k, NULL);
		s.nproviders = i + 1;
		if (!p->provider) {
			convc_user_stats_free(&s);
			convc_reply_free(&r);
			return client_err_fail(err, CONVC_ERR_LOCAL,
					       "no_memory", "out of memory");
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
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		client_call_opt_str("platform", platform),
	};
	struct convc_reply r;
	int st;

	if (!thread_id)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no place for the result");
	*thread_id = NULL;
	st = client_call_named(c, "get_thread", args,
			       sizeof(args) / sizeof(args[0]), &r, err);
	if (st != CONVC_OK)
		return st;
	if (r.result.type == MSGPACK_OBJECT_NIL) {
		convc_reply_free(&r);
		return CONVC_OK;
	}
	if (r.result.type != MSGPACK_OBJECT_STR)
		return client_call_shape(c, &r, err, "get_thread",
					 "neither string nor nil");
	*thread_id = client_wire_strdup(&r.result, NULL);
	convc_reply_free(&r);
	if (!*thread_id)
		return client_err_fail(err, CONVC_ERR_LOCAL, "no_memory",
				       "out of memory");
	return CONVC_OK;
}

int convc_save_thread(struct convc *c, const char *user_id,
		      const char *thread_id, const char *platform,
		      struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		CLIENT_ARG_STR("thread_id", thread_id),
		client_call_opt_str("platform", platform),
	};
	struct convc_reply r;
	int st = client_call_named(c, "save_thread", args,
				   sizeof(args) / sizeof(args[0]), &r, err);

	if (st != CONVC_OK)
		return st;
	if (r.result.type != MSGPACK_OBJECT_BOOLEAN || !r.result.via.boolean)
		return client_call_shape(c, &r, err, "save_thread", "not true");
	convc_reply_free(&r);
	return CONVC_OK;
}

int convc_delete_thread(struct convc *c, const char *user_id,
			const char *platform, int64_t *deleted,
			struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		client_call_opt_str("platform", platform),
	};

	return client_call_deleted(c, "delete_thread", args,
				   sizeof(args) / sizeof(args[0]), deleted,
				   err);
}

int convc_cleanup_old_conversations(struct convc *c, int days_to_keep,
				    int64_t *deleted, struct convc_error *err)
{
	struct client_arg args[] = {
		days_to_keep >= 0
			? (struct client_arg)CLIENT_ARG_INT("days_to_keep",
							    days_to_keep)
			: (struct client_arg)CLIENT_ARG_NONE("days_to_keep"),
	};

	return client_call_deleted(c, "cleanup_old_conversations", args,
				   sizeof(args) / sizeof(args[0]), deleted,
				   err);
}

int convc_stats(struct convc *c, struct convc_reply *reply,
		struct convc_error *err)
{
	int st;

	if (!reply)
		return client_err_fail(err, CONVC_ERR_LOCAL, "invalid_argument",
				       "no place for the result");
	st = convc_call(c, "stats", NULL, 0, reply, err);
	if (st != CONVC_OK)
		return st;
	if (reply->result.type != MSGPACK_OBJECT_MAP)
		return client_call_shape(c, reply, err, "stats", "not a map");
	return CONVC_OK;
}

int convc_health(struct convc *c, bool *ok, struct convc_reply *reply,
		 struct convc_error *err)
{
	struct convc_reply r;
	const msgpack_object *v;
	int st;

	if (reply)
		client_wire_reply_clear(reply);
	st = convc_call(c, "health", NULL, 0, &r, err);
	if (st != CONVC_OK)
		return st;
	v = convc_map_get(&r.result, "ok");
	if (!v || v->type != MSGPACK_OBJECT_BOOLEAN)
		return client_call_shape(c, &r, err, "health",
					 "no boolean 'ok'");
	if (ok)
		*ok = v->via.boolean;
	if (reply)
		*reply = r;
	else
		convc_reply_free(&r);
	return CONVC_OK;
}
