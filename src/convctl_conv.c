/*
 * convctl_conv.c - convctl's commands for issue 17: `conversations`,
 * `state get|set`, and `history` with tool calls, structured content and
 * --conversation.  Generic calls (convc_request_begin / convc_wait) with
 * named params; results walked as msgpack objects.
 */
#include <stdlib.h>
#include <string.h>

#include "convctl_cmd.h"
#include "convctl_conn.h"
#include "convctl_json.h"
#include "convctl_text.h"
#include "convctl_time.h"
#include "jsonmp.h"
#include "proto.h"

/* Named params: up to this many pairs. */
#define MAX_PAIRS 8

struct pair {
	const char *key;
	const char *str;	/* a str, or NULL: */
	int64_t i;		/* an int if has_int */
	bool has_int;
	const char *json;	/* or JSON text packed as msgpack */
};

/* Calls method with [{pairs, platform}] (the pairs with a value); 0 and
 * *reply, or an exit status. */
static int call(struct convctl_ctx *x, const char *method,
		const struct pair *p, int n, struct convc_reply *reply)
{
	struct convc_error e;
	msgpack_packer *pk;
	uint32_t msgid;
	int used = 0, st;

	for (int i = 0; i < n; i++)
		used += p[i].str || p[i].has_int || p[i].json;
	pk = convc_request_begin(x->c, method, &msgid, &e);
	if (!pk)
		return convctl_conn_report(CONVC_ERR_LOCAL, &e);
	/* no --platform: convd's default */
	if (msgpack_pack_array(pk, 1) < 0 ||
	    msgpack_pack_map(pk, (size_t)used + (x->o->platform != NULL)) < 0 ||
	    (x->o->platform && (proto_pack_cstr(pk, "platform") < 0 ||
				proto_pack_cstr(pk, x->o->platform) < 0)))
		goto nomem;
	for (int i = 0; i < n; i++) {
		char err[128];

		if (!p[i].str && !p[i].has_int && !p[i].json)
			continue;
		if (proto_pack_cstr(pk, p[i].key) < 0)
			goto nomem;
		if (p[i].json) {
			if (jsonmp_pack(p[i].json, strlen(p[i].json), pk, err,
					sizeof(err)) < 0) {
				convc_request_abort(x->c);
				return convctl_usage_error("%s: not JSON: %s",
							   p[i].key, err);
			}
		} else if ((p[i].str ? proto_pack_cstr(pk, p[i].str)
				     : msgpack_pack_int64(pk, p[i].i)) < 0) {
			goto nomem;
		}
	}
	if (convc_request_end(x->c, &e) < 0)
		return convctl_conn_report(CONVC_ERR_LOCAL, &e);
	st = convc_wait(x->c, msgid, reply, &e);
	if (st != CONVC_OK) {
		convc_reply_free(reply);
		return convctl_conn_report(st, &e);
	}
	return 0;
nomem:
	convc_request_abort(x->c);
	return convctl_nomem();
}

static bool str_of(const msgpack_object *o, const char **s, size_t *n)
{
	if (!o || o->type != MSGPACK_OBJECT_STR)
		return false;
	*s = o->via.str.ptr;
	*n = o->via.str.size;
	return true;
}

static long long int_of(const msgpack_object *o)
{
	return o && (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
		     o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		       ? (long long)o->via.i64
		       : 0;
}

static void put_str(struct convctl_ctx *x, const msgpack_object *o)
{
	const char *s;
	size_t n;

	if (str_of(o, &s, &n))
		convctl_text_put(x->out, s, n, SIZE_MAX);
}

static void put_time(struct convctl_ctx *x, const msgpack_object *o)
{
	int64_t t;
	char buf[64];

	if (o && convc_object_timestamp(o, &t)) {
		convctl_time_format(buf, sizeof(buf), t, 3);
		fputs(buf, x->out);
	}
}

/* ---- conversations USER [--provider P] [-n LIMIT] */

int convctl_conv_list(struct convctl_ctx *x, int argc CONVD_UNUSED,
		      char **argv)
{
	char *after = NULL;
	bool elem = true;
	int rc = EXIT_SUCCESS;
	size_t shown = 0;

	if (x->o->json)
		fputc('[', x->out);
	for (;;) {
		struct pair p[] = {
			{ .key = "user_id", .str = argv[1] },
			{ .key = "provider", .str = x->o->provider },
			{ .key = "after", .str = after },
			{ .key = "limit", .i = x->o->limit_set ? x->o->limit
							       : 100,
			  .has_int = true },
		};
		struct convc_reply r;
		const msgpack_object *list, *next;
		const char *s;
		size_t n;

		rc = call(x, "list_conversations", p, ARRAY_LEN(p), &r);
		free(after);
		after = NULL;
		if (rc)
			break;
		list = convc_map_get(&r.result, "conversations");
		next = convc_map_get(&r.result, "next");
		for (uint32_t i = 0; list && list->type ==
			     MSGPACK_OBJECT_ARRAY && i < list->via.array.size;
		     i++) {
			const msgpack_object *c = &list->via.array.ptr[i];
			const msgpack_object *conv =
				convc_map_get(c, "conversation_id");
			const msgpack_object *meta =
				convc_map_get(c, "metadata");

			shown++;
			if (x->o->json) {
				json_sep(&x->json, &elem);
				convctl_json_value(&x->json, c);
				continue;
			}
			put_str(x, convc_map_get(c, "provider"));
			fputc('\t', x->out);
			if (conv)
				put_str(x, conv);
			else
				fputs("(default)", x->out);
			fprintf(x->out, "\t%lld messages\t",
				int_of(convc_map_get(c, "message_count")));
			put_time(x, convc_map_get(c, "first_message_at"));
			fputs(" .. ", x->out);
			put_time(x, convc_map_get(c, "last_message_at"));
			if (meta && meta->type == MSGPACK_OBJECT_MAP &&
			    meta->via.map.size > 0) {
				fputc('\t', x->out);
				convctl_json_value(&x->json, meta);
			}
			fputc('\n', x->out);
		}
		if (str_of(next, &s, &n)) {
			after = strndup(s, n);
			if (!after) {
				convc_reply_free(&r);
				return convctl_nomem();
			}
		}
		convc_reply_free(&r);
		if (!after)
			break;
	}
	if (x->o->json)
		fputs("]\n", x->out);
	else if (rc == EXIT_SUCCESS && shown == 0)
		fputs("(no conversations)\n", x->out);
	return rc;
}

/* ---- state get|set USER PROVIDER [JSON [METADATA]] [--conversation C]
 *      [--expected-version N] */

int convctl_conv_state(struct convctl_ctx *x, int argc, char **argv)
{
	bool set = strcmp(argv[1], "set") == 0;
	const msgpack_object *meta;
	struct pair p[] = {
		{ .key = "user_id", .str = argv[2] },
		{ .key = "provider", .str = argv[3] },
		{ .key = "conversation_id", .str = x->o->conversation },
		{ .key = "state", .json = set ? argv[4] : NULL },
		{ .key = "expected_version", .i = x->o->expected_version,
		  .has_int = set && x->o->expected_version_set },
		{ .key = "metadata", .json = set && argc > 5 ? argv[5] : NULL },
	};
	struct convc_reply r;
	int rc = call(x, set ? "set_state" : "get_state", p, ARRAY_LEN(p), &r);

	if (rc)
		return rc;
	if (x->o->json) {
		convctl_json_value(&x->json, &r.result);
		fputc('\n', x->out);
	} else if (set) {
		fprintf(x->out, "state saved, version %lld\n",
			int_of(convc_map_get(&r.result, "version")));
	} else if (r.result.type == MSGPACK_OBJECT_NIL) {
		fputs("(no state)\n", x->out);
	} else {
		fprintf(x->out, "version %lld, updated ",
			int_of(convc_map_get(&r.result, "version")));
		put_time(x, convc_map_get(&r.result, "updated_at"));
		fputc('\n', x->out);
		if (convc_map_get(&r.result, "state"))
			convctl_json_value(&x->json,
					   convc_map_get(&r.result, "state"));
		fputc('\n', x->out);
		meta = convc_map_get(&r.result, "metadata");
		if (meta && meta->type == MSGPACK_OBJECT_MAP &&
		    meta->via.map.size > 0) {
			fputs("metadata ", x->out);
			convctl_json_value(&x->json, meta);
			fputc('\n', x->out);
		}
	}
	convc_reply_free(&r);
	return EXIT_SUCCESS;
}

/* get USER PROVIDER, set USER PROVIDER JSON [METADATA] */
bool convctl_conv_state_check(const struct convctl_command *cmd, int nargs,
			      char **args)
{
	const char *sub = args[0];
	bool set = strcmp(sub, "set") == 0;

	if (strcmp(sub, "get") && strcmp(sub, "set")) {
		convctl_usage_error("state: unknown subcommand '%s' (usage: "
				    "convctl %s)",
				    sub, cmd->synopsis);
		return false;
	}
	if (set ? nargs < 4 || nargs > 5 : nargs != 3) {
		convctl_usage_error("wrong number of arguments (usage: convctl "
				    "%s)", cmd->synopsis);
		return false;
	}
	return true;
}

/* ---- history USER PROVIDER [-n LIMIT] [--conversation C] */

static const char *const row_fields[] = {"name", "tool_call_id", "model",
					 "tokens", "metadata"};

/* The fields a message has beyond the seed's, as "key=value" words on a
 * line of their own under CONTENT. */
static void put_fields(struct convctl_ctx *x, const msgpack_object *row,
		       size_t indent)
{
	bool any = false;

	for (size_t k = 0; k < ARRAY_LEN(row_fields); k++) {
		const msgpack_object *v = convc_map_get(row, row_fields[k]);

		if (!v)
			continue;
		fprintf(x->out, "%s%*s%s=", any ? " " : "\n",
			any ? 0 : (int)indent, "", row_fields[k]);
		any = true;
		if (v->type == MSGPACK_OBJECT_STR)
			put_str(x, v);
		else
			convctl_json_value(&x->json, v);
	}
}

int convctl_conv_history(struct convctl_ctx *x, int argc CONVD_UNUSED,
			 char **argv)
{
	struct pair p[] = {
		{ .key = "user_id", .str = argv[1] },
		{ .key = "provider", .str = argv[2] },
		{ .key = "limit", .i = x->o->limit, .has_int = x->o->limit_set },
		{ .key = "conversation_id", .str = x->o->conversation },
	};
	struct convc_reply r;
	const msgpack_object *rows;
	size_t rolew = 4;
	int rc = call(x, "get_recent_conversations", p, ARRAY_LEN(p), &r);

	if (rc)
		return rc;
	rows = &r.result;
	if (x->o->json) {
		convctl_json_value(&x->json, rows);
		fputc('\n', x->out);
		convc_reply_free(&r);
		return EXIT_SUCCESS;
	}
	if (rows->type != MSGPACK_OBJECT_ARRAY || rows->via.array.size == 0) {
		fputs("(no messages)\n", x->out);
		convc_reply_free(&r);
		return EXIT_SUCCESS;
	}
	for (uint32_t i = 0; i < rows->via.array.size; i++) {
		const char *s;
		size_t n;

		if (str_of(convc_map_get(&rows->via.array.ptr[i], "role"), &s,
			   &n) && n > rolew)
			rolew = n;	/* roles are ASCII */
	}
	fprintf(x->out, "%-24s  %-*s  %s\n", "TIME", (int)rolew, "ROLE",
		"CONTENT");
	for (uint32_t i = 0; i < rows->via.array.size; i++) {
		const msgpack_object *m = &rows->via.array.ptr[i];
		const msgpack_object *c = convc_map_get(m, "content");
		const char *s = "";
		size_t n = 0;
		char tbuf[64] = "";
		int64_t t;

		if (convc_object_timestamp(convc_map_get(m, "created_at"), &t))
			convctl_time_format(tbuf, sizeof(tbuf), t, 3);
		fprintf(x->out, "%-24s  ", tbuf);
		str_of(convc_map_get(m, "role"), &s, &n);
		convctl_text_put(x->out, s, n, SIZE_MAX);
		fprintf(x->out, "%*s  ", (int)(rolew - n), "");
		if (str_of(c, &s, &n))
			convctl_text_put(x->out, s, n, 24 + 2 + rolew + 2);
		else if (c)	/* structured content: as JSON */
			convctl_json_value(&x->json, c);
		put_fields(x, m, 24 + 2 + rolew + 2);
		fputc('\n', x->out);
	}
	convc_reply_free(&r);
	return EXIT_SUCCESS;
}
