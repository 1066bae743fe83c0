/*
 * client_retrieval.c - the typed calls of retrieval (issue 18): context
 * windows, paging, deleting one message, search, forgetting a user.
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"

#define NARGS(a) (sizeof(a) / sizeof((a)[0]))

void convc_context_free(struct convc_context *ctx)
{
	if (!ctx)
		return;
	convc_rows_free(ctx->rows, ctx->n);
	memset(ctx, 0, sizeof(*ctx));
}

int convc_get_context(struct convc *c, const char *user_id,
		      const char *provider, int64_t max_tokens,
		      const struct convc_context_opts *opts,
		      struct convc_context *out, struct convc_error *err)
{
	static const struct convc_context_opts none;
	const struct convc_context_opts *o = opts ? opts : &none;
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		CLIENT_ARG_STR("provider", provider),
		CLIENT_ARG_INT("max_tokens", max_tokens),
		client_call_opt_str("conversation_id", o->conversation_id),
		client_call_opt_int("max_messages", o->max_messages > 0,
				    o->max_messages),
		o->include_system
			? (struct client_arg)CLIENT_ARG_BOOL("include_system", 1)
			: (struct client_arg)CLIENT_ARG_NONE("include_system"),
		client_call_opt_str("platform", o->platform),
	};
	struct convc_context ctx = { NULL, 0, 0, false };
	const msgpack_object *trunc;
	struct convc_reply r;
	int st;

	st = client_call_out(c, "get_context", args, NARGS(args), out,
			     sizeof(*out), &r, err);
	if (st != CONVC_OK)
		return st;
	trunc = convc_map_get(&r.result, "truncated");
	if (!client_wire_int(convc_map_get(&r.result, "total_tokens"),
			     &ctx.total_tokens))
		return client_call_shape(c, &r, err, "get_context",
					 "no integer 'total_tokens'");
	if (!trunc || trunc->type != MSGPACK_OBJECT_BOOLEAN)
		return client_call_shape(c, &r, err, "get_context",
					 "no boolean 'truncated'");
	ctx.truncated = trunc->via.boolean;
	st = client_rows_member(c, "get_context", &r.result, "messages",
				&ctx.rows, &ctx.n, err);
	convc_reply_free(&r);
	if (st == CONVC_OK)
		*out = ctx;
	return st;
}

void convc_page_free(struct convc_page *p)
{
	if (!p)
		return;
	convc_rows_free(p->rows, p->n);
	memset(p, 0, sizeof(*p));
}

int convc_get_messages(struct convc *c, const char *user_id,
		       const char *provider, const char *conversation_id,
		       const char *platform, int64_t before_id, int limit,
		       struct convc_page *out, struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		CLIENT_ARG_STR("provider", provider),
		client_call_opt_str("conversation_id", conversation_id),
		client_call_opt_int("before_id", before_id > 0, before_id),
		client_call_opt_int("limit", limit > 0, limit),
		client_call_opt_str("platform", platform),
	};
	struct convc_page page = { NULL, 0, false, 0 };
	const msgpack_object *next;
	struct convc_reply r;
	int st;

	st = client_call_out(c, "get_messages", args, NARGS(args), out,
			     sizeof(*out), &r, err);
	if (st != CONVC_OK)
		return st;
	next = convc_map_get(&r.result, "next_before_id");
	if (next && next->type != MSGPACK_OBJECT_NIL) {
		if (!client_wire_int(next, &page.next_before_id))
			return client_call_shape(c, &r, err, "get_messages",
						 "'next_before_id' is not an "
						 "integer");
		page.has_next = true;
	}
	st = client_rows_member(c, "get_messages", &r.result, "messages",
				&page.rows, &page.n, err);
	convc_reply_free(&r);
	if (st == CONVC_OK)
		*out = page;
	return st;
}

int convc_delete_message(struct convc *c, const char *user_id, int64_t id,
			 const char *platform, struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		CLIENT_ARG_INT("id", id),
		client_call_opt_str("platform", platform),
	};

	return client_call_deleted(c, "delete_message", args, NARGS(args),
				   NULL, err);
}

int convc_search_messages(struct convc *c, const char *user_id,
			  const char *query, const char *provider,
			  const char *conversation_id, const char *platform,
			  int limit, struct convc_row **rows, size_t *n,
			  struct convc_error *err)
{
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		CLIENT_ARG_STR("query", query),
		client_call_opt_str("provider", provider),
		client_call_opt_str("conversation_id", conversation_id),
		client_call_opt_str("platform", platform),
		client_call_opt_int("limit", limit > 0, limit),
	};

	return client_rows_call(c, "search_messages", args, NARGS(args), rows,
				n, err);
}

int convc_forget_user(struct convc *c, const char *user_id,
		      const char *platform, struct convc_forgotten *out,
		      struct convc_error *err)
{
	static const char *const keys[] = {
		"messages", "threads", "states", "idempotency_keys",
	};
	struct client_arg args[] = {
		CLIENT_ARG_STR("user_id", user_id),
		client_call_opt_str("platform", platform),
	};
	struct convc_forgotten f;
	int64_t *dst[] = { &f.messages, &f.threads, &f.states,
			   &f.idempotency_keys };
	struct convc_reply r;
	int st = client_call_named(c, "forget_user", args, NARGS(args), &r,
				   err);

	if (st != CONVC_OK)
		return st;
	for (size_t i = 0; i < NARGS(keys); i++)
		if (!client_wire_int(convc_map_get(&r.result, keys[i]),
				     dst[i]))
			return client_call_shape(c, &r, err, "forget_user",
						 "a count is missing");
	if (out)
		*out = f;
	convc_reply_free(&r);
	return CONVC_OK;
}
