/*
 * convctl_retrieve.c - convctl's commands of retrieval (issue 18):
 * context (get_context), messages (get_messages), search
 * (search_messages) and forget (forget_user, after a confirmation).
 *
 * They call convd through libconvclient's generic calls and print the
 * rows as `history` does (--json: convd's answer as JSON, convctl(1)).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "convctl_cmd.h"
#include "convctl_conn.h"
#include "convctl_json.h"
#include "convctl_text.h"
#include "convctl_time.h"

/* ---- building the params map --------------------------------------------- */

#define MAX_PARAMS 8

struct params {
	int n;
	const char *key[MAX_PARAMS];
	const char *str[MAX_PARAMS];	/* or NULL: ... */
	int64_t num[MAX_PARAMS];	/* ... an integer, */
	int kind[MAX_PARAMS];		/* 0 str, 1 int, 2 true */
};

static void p_str(struct params *p, const char *key, const char *v)
{
	if (v && p->n < MAX_PARAMS) {
		p->key[p->n] = key;
		p->str[p->n] = v;
		p->kind[p->n++] = 0;
	}
}

static void p_int(struct params *p, const char *key, int64_t v)
{
	if (p->n < MAX_PARAMS) {
		p->key[p->n] = key;
		p->num[p->n] = v;
		p->kind[p->n++] = 1;
	}
}

static void p_true(struct params *p, const char *key)
{
	if (p->n < MAX_PARAMS) {
		p->key[p->n] = key;
		p->kind[p->n++] = 2;
	}
}

/* Calls method with [ {params} ]; on CONVC_OK the caller frees *r. */
static int call(struct convctl_ctx *x, const char *method,
		const struct params *p, struct convc_reply *r)
{
	msgpack_sbuffer buf;
	msgpack_packer pk;
	struct convc_error e;
	int failed = 0, st;

	msgpack_sbuffer_init(&buf);
	msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
	failed |= msgpack_pack_array(&pk, 1) < 0 ||
		  msgpack_pack_map(&pk, (size_t)p->n) < 0;
	for (int i = 0; i < p->n && !failed; i++) {
		failed |= msgpack_pack_str_with_body(&pk, p->key[i],
						     strlen(p->key[i])) < 0;
		if (p->kind[i] == 0)
			failed |= msgpack_pack_str_with_body(
					  &pk, p->str[i], strlen(p->str[i])) < 0;
		else if (p->kind[i] == 1)
			failed |= msgpack_pack_int64(&pk, p->num[i]) < 0;
		else
			failed |= msgpack_pack_true(&pk) < 0;
	}
	if (failed) {
		msgpack_sbuffer_destroy(&buf);
		return convctl_nomem();
	}
	st = convc_call(x->c, method, buf.data, buf.size, r, &e);
	msgpack_sbuffer_destroy(&buf);
	if (st != CONVC_OK)
		return convctl_conn_report(st, &e);
	return EXIT_SUCCESS;
}

/* The answer does not have the shape convd(8) documents. */
static int unexpected(struct convc_reply *r, const char *method)
{
	convc_reply_free(r);
	fprintf(stderr, "%s: unexpected answer to %s\n", convctl_progname,
		method);
	return EXIT_FAILURE;
}

/* ---- printing rows ------------------------------------------------------- */

static const msgpack_object *field(const msgpack_object *row, const char *k)
{
	return row->type == MSGPACK_OBJECT_MAP ? convc_map_get(row, k) : NULL;
}

static bool is_str(const msgpack_object *o)
{
	return o && o->type == MSGPACK_OBJECT_STR;
}

/*
 * Rows as a table: ID, TIME, ROLE, [PROVIDER, CONVERSATION,] CONTENT.
 * Structured content is shown as its JSON on one line; control
 * characters of stored text are escaped (convctl_text.h).
 */
static void print_rows(struct convctl_ctx *x, const msgpack_object *rows,
		       bool where)
{
	const msgpack_object_array *a = &rows->via.array;
	size_t rolew = 4, idw = 2, provw = 8;

	if (a->size == 0) {
		fputs("(no messages)\n", x->out);
		return;
	}
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object *role = field(&a->ptr[i], "role");
		const msgpack_object *id = field(&a->ptr[i], "id");
		const msgpack_object *prov = field(&a->ptr[i], "provider");
		char nbuf[32];

		if (is_str(role) && role->via.str.size > rolew)
			rolew = role->via.str.size;
		if (is_str(prov) && prov->via.str.size > provw)
			provw = prov->via.str.size;
		if (id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    (size_t)snprintf(nbuf, sizeof(nbuf), "%" PRIu64,
				     id->via.u64) > idw)
			idw = strlen(nbuf);
	}
	fprintf(x->out, "%-*s  %-24s  %-*s  ", (int)idw, "ID", "TIME",
		(int)rolew, "ROLE");
	if (where)
		fprintf(x->out, "%-*s  %-12s  ", (int)provw, "PROVIDER",
			"CONVERSATION");
	fputs("CONTENT\n", x->out);
	for (uint32_t i = 0; i < a->size; i++) {
		const msgpack_object *row = &a->ptr[i];
		const msgpack_object *id = field(row, "id");
		const msgpack_object *at = field(row, "created_at");
		const msgpack_object *role = field(row, "role");
		const msgpack_object *content = field(row, "content");
		char tbuf[64] = "?";
		int64_t usec;
		size_t indent = idw + 2 + 24 + 2 + rolew + 2;

		if (at && convc_object_timestamp(at, &usec))
			convctl_time_format(tbuf, sizeof(tbuf), usec, 3);
		fprintf(x->out, "%-*" PRIu64 "  %-24s  ", (int)idw,
			id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER ?
				id->via.u64 : 0,
			tbuf);
		if (is_str(role))
			convctl_text_put(x->out, role->via.str.ptr,
					 role->via.str.size, SIZE_MAX);
		fprintf(x->out, "%*s  ",
			(int)(rolew - (is_str(role) ? role->via.str.size : 0)),
			"");
		if (where) {
			const msgpack_object *prov = field(row, "provider");
			const msgpack_object *conv =
				field(row, "conversation_id");
			size_t pl = is_str(prov) ? prov->via.str.size : 0;
			size_t cl = is_str(conv) ? conv->via.str.size : 1;

			if (pl)
				convctl_text_put(x->out, prov->via.str.ptr, pl,
						 SIZE_MAX);
			fprintf(x->out, "%*s  ", (int)(provw - pl), "");
			if (is_str(conv))
				convctl_text_put(x->out, conv->via.str.ptr, cl,
						 SIZE_MAX);
			else
				fputc('-', x->out);
			fprintf(x->out, "%*s  ", cl < 12 ? (int)(12 - cl) : 0,
				"");
			indent += provw + 2 + 12 + 2;
		}
		if (is_str(content))
			convctl_text_put(x->out, content->via.str.ptr,
					 content->via.str.size, indent);
		else if (content)
			convctl_json_value(&x->json, content);
		fputc('\n', x->out);
	}
}

static void print_json(struct convctl_ctx *x, const msgpack_object *o)
{
	convctl_json_value(&x->json, o);
	fputc('\n', x->out);
}

/* ---- the commands -------------------------------------------------------- */

/* context USER PROVIDER MAX_TOKENS [--conversation C] [--system] [-n N] */
int convctl_retrieve_context(struct convctl_ctx *x, int argc CONVD_UNUSED,
			     char **argv)
{
	struct params p = {0};
	struct convc_reply r;
	const msgpack_object *msgs, *total, *trunc;
	char *end;
	long long max;
	int rc;

	errno = 0;
	max = strtoll(argv[3], &end, 10);
	if (errno || *end || end == argv[3] || max < 1 || max > 10000000)
		return convctl_usage_error("MAX_TOKENS: '%s' is not a number "
					   "from 1 to 10000000", argv[3]);
	p_str(&p, "user_id", argv[1]);
	p_str(&p, "provider", argv[2]);
	p_int(&p, "max_tokens", max);
	p_str(&p, "conversation_id", x->o->conversation);
	if (x->o->limit_set)
		p_int(&p, "max_messages", x->o->limit);
	if (x->o->system)
		p_true(&p, "include_system");
	p_str(&p, "platform", x->o->platform);
	rc = call(x, "get_context", &p, &r);
	if (rc != EXIT_SUCCESS)
		return rc;
	msgs = field(&r.result, "messages");
	total = field(&r.result, "total_tokens");
	trunc = field(&r.result, "truncated");
	if (!msgs || msgs->type != MSGPACK_OBJECT_ARRAY || !total ||
	    total->type != MSGPACK_OBJECT_POSITIVE_INTEGER || !trunc ||
	    trunc->type != MSGPACK_OBJECT_BOOLEAN)
		return unexpected(&r, "get_context");
	if (x->o->json) {
		print_json(x, &r.result);
	} else {
		print_rows(x, msgs, false);
		fprintf(x->out, "%" PRIu32 " messages, %" PRIu64 " tokens%s\n",
			msgs->via.array.size, total->via.u64,
			trunc->via.boolean ? " (older messages left out)" : "");
	}
	convc_reply_free(&r);
	return EXIT_SUCCESS;
}

/* messages USER PROVIDER [--conversation C] [--before ID] [-n N] */
int convctl_retrieve_messages(struct convctl_ctx *x, int argc CONVD_UNUSED,
			      char **argv)
{
	struct params p = {0};
	struct convc_reply r;
	const msgpack_object *msgs, *next;
	int rc;

	p_str(&p, "user_id", argv[1]);
	p_str(&p, "provider", argv[2]);
	p_str(&p, "conversation_id", x->o->conversation);
	if (x->o->before_set)
		p_int(&p, "before_id", x->o->before);
	if (x->o->limit_set)
		p_int(&p, "limit", x->o->limit);
	p_str(&p, "platform", x->o->platform);
	rc = call(x, "get_messages", &p, &r);
	if (rc != EXIT_SUCCESS)
		return rc;
	msgs = field(&r.result, "messages");
	next = field(&r.result, "next_before_id");
	if (!msgs || msgs->type != MSGPACK_OBJECT_ARRAY || !next ||
	    (next->type != MSGPACK_OBJECT_NIL &&
	     next->type != MSGPACK_OBJECT_POSITIVE_INTEGER))
		return unexpected(&r, "get_messages");
	if (x->o->json) {
		print_json(x, &r.result);
	} else {
		print_rows(x, msgs, false);
		if (next->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			fprintf(x->out, "older: --before %" PRIu64 "\n",
				next->via.u64);
	}
	convc_reply_free(&r);
	return EXIT_SUCCESS;
}

/* search USER QUERY [--provider P] [--conversation C] [-n N] */
int convctl_retrieve_search(struct convctl_ctx *x, int argc CONVD_UNUSED,
			    char **argv)
{
	struct params p = {0};
	struct convc_reply r;
	int rc;

	p_str(&p, "user_id", argv[1]);
	p_str(&p, "query", argv[2]);
	p_str(&p, "provider", x->o->provider);
	p_str(&p, "conversation_id", x->o->conversation);
	if (x->o->limit_set)
		p_int(&p, "limit", x->o->limit);
	p_str(&p, "platform", x->o->platform);
	rc = call(x, "search_messages", &p, &r);
	if (rc != EXIT_SUCCESS)
		return rc;
	if (r.result.type != MSGPACK_OBJECT_ARRAY)
		return unexpected(&r, "search_messages");
	if (x->o->json)
		print_json(x, &r.result);
	else
		print_rows(x, &r.result, true);
	convc_reply_free(&r);
	return EXIT_SUCCESS;
}

/*
 * Asks on stderr and reads one line of stdin: whether it is "yes".  No
 * line at all (stdin empty or closed) is a usage error: a script must say
 * --yes.
 */
static int confirm(struct convctl_ctx *x, const char *user)
{
	char line[64];

	fprintf(stderr, "Delete every message, thread, state and idempotency "
			"key of user ");
	convctl_text_cstr(stderr, user);
	fprintf(stderr, " on %s%s? This cannot be undone. Type yes: ",
		x->o->platform ? "platform " : "every platform",
		x->o->platform ? x->o->platform : "");
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin)) {
		fputc('\n', stderr);
		return convctl_usage_error("no answer on standard input: "
					   "nothing deleted (give --yes to "
					   "forget without a question)");
	}
	line[strcspn(line, "\r\n")] = '\0';
	if (strcmp(line, "yes") != 0) {
		fprintf(stderr, "%s: not confirmed: nothing deleted\n",
			convctl_progname);
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

/* forget USER [--yes] (admin); --platform: that platform only */
int convctl_retrieve_forget(struct convctl_ctx *x, int argc CONVD_UNUSED,
			    char **argv)
{
	static const char *const keys[4] = {"messages", "threads", "states",
					    "idempotency_keys"};
	static const char *const what[4] = {"messages", "threads", "states",
					    "idempotency keys"};
	struct params p = {0};
	struct convc_reply r;
	const msgpack_object *n[4];
	int rc;

	if (!x->o->yes) {
		rc = confirm(x, argv[1]);
		if (rc != EXIT_SUCCESS)
			return rc;
	}
	p_str(&p, "user_id", argv[1]);
	p_str(&p, "platform", x->o->platform);
	rc = call(x, "forget_user", &p, &r);
	if (rc != EXIT_SUCCESS)
		return rc;
	for (int i = 0; i < 4; i++) {
		n[i] = field(&r.result, keys[i]);
		if (!n[i] || n[i]->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return unexpected(&r, "forget_user");
	}
	if (x->o->json) {
		print_json(x, &r.result);
	} else {
		fputs("forgot ", x->out);
		convctl_text_cstr(x->out, argv[1]);
		fputc(':', x->out);
		for (int i = 0; i < 4; i++)
			fprintf(x->out, "%s %" PRIu64 " %s", i ? "," : "",
				n[i]->via.u64, what[i]);
		fputc('\n', x->out);
	}
	convc_reply_free(&r);
	return EXIT_SUCCESS;
}
