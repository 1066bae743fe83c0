/*
 * validate.c - the methods' parameter specifications and their checking.
 *
 * Pure code: the spec table (HACKING.md's method table) and a checker that
 * turns a decoded params node into one value per spec entry, with defaults.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "content.h"
#include "validate.h"

#define ID_MAX 255
#define NAME_MAX_BYTES 50
#define DEFAULT_MAX_CONTENT ((size_t)1 << 20)

#define P_USER_ID { .name = "user_id", .kind = PK_ID, .required = true }
#define P_THREAD_ID { .name = "thread_id", .kind = PK_ID, .required = true }
#define P_PROVIDER { .name = "provider", .kind = PK_NAME, .required = true }
#define P_PROVIDER_OPT { .name = "provider", .kind = PK_NAME }
#define P_PLATFORM { .name = "platform", .kind = PK_NAME, .def_str = "line" }
/* optional, 1..255 bytes: one message per (user_id, platform, key) */
#define P_IDEMPOTENCY_KEY { .name = "idempotency_key", .kind = PK_ID }
/* issue 17: absent = the default conversation ('') */
#define P_CONVERSATION_ID { .name = "conversation_id", .kind = PK_ID }
#define MAP_MAX_BYTES 65536
#define P_METADATA { .name = "metadata", .kind = PK_MAP, .max = MAP_MAX_BYTES }
/* a message's optional fields, after conversation_id */
#define P_MESSAGE_FIELDS                                                  \
	{ .name = "tool_call_id", .kind = PK_ID },                         \
	{ .name = "name", .kind = PK_ID },                                 \
	{ .name = "model", .kind = PK_ID },                                \
	{ .name = "tokens", .kind = PK_INT, .min = 0, .max = 2147483647 }, \
	P_METADATA

const struct method_spec validate_methods[M_COUNT_] = {
	[M_PING] = {
		.id = M_PING, .name = "ping",
		.needs_db = false, .nparams = 0,
	},
	[M_ADD_MESSAGE] = {
		.id = M_ADD_MESSAGE, .name = "add_message",
		.needs_db = true, .nparams = 12,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "role", .kind = PK_ROLE, .required = true },
			{ .name = "content", .kind = PK_CONTENT,
			  .required = true },
			P_PLATFORM,
			P_IDEMPOTENCY_KEY,
			P_CONVERSATION_ID,
			P_MESSAGE_FIELDS,
		},
	},
	[M_GET_RECENT] = {
		.id = M_GET_RECENT, .name = "get_recent_conversations",
		.needs_db = true, .nparams = 5,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "limit", .kind = PK_INT, .min = 1,
			  .max = 1000, .def_int = 10, .has_def_int = true },
			P_PLATFORM,
			P_CONVERSATION_ID,
		},
	},
	[M_CLEAR_HISTORY] = {
		.id = M_CLEAR_HISTORY, .name = "clear_user_history",
		.needs_db = true, .nparams = 4,
		.params = { P_USER_ID, P_PROVIDER, P_PLATFORM,
			    P_CONVERSATION_ID },
	},
	[M_GET_COUNT] = {
		.id = M_GET_COUNT, .name = "get_conversation_count",
		.needs_db = true, .nparams = 4,
		.params = { P_USER_ID, P_PROVIDER_OPT, P_PLATFORM,
			    P_CONVERSATION_ID },
	},
	[M_GET_USER_STATS] = {
		.id = M_GET_USER_STATS, .name = "get_user_statistics",
		.needs_db = true, .nparams = 2,
		.params = { P_USER_ID, P_PLATFORM },
	},
	[M_GET_THREAD] = {
		.id = M_GET_THREAD, .name = "get_thread",
		.needs_db = true, .nparams = 2,
		.params = { P_USER_ID, P_PLATFORM },
	},
	[M_SAVE_THREAD] = {
		.id = M_SAVE_THREAD, .name = "save_thread",
		.needs_db = true, .nparams = 3,
		.params = { P_USER_ID, P_THREAD_ID, P_PLATFORM },
	},
	[M_DELETE_THREAD] = {
		.id = M_DELETE_THREAD, .name = "delete_thread",
		.needs_db = true, .nparams = 2,
		.params = { P_USER_ID, P_PLATFORM },
	},
	[M_CLEANUP] = {
		.id = M_CLEANUP, .name = "cleanup_old_conversations",
		.admin = true, .needs_db = true, .nparams = 2,
		.params = {
			{ .name = "days_to_keep", .kind = PK_INT, .min = 0,
			  .max = 36500 },
			{ .name = "dry_run", .kind = PK_BOOL },
		},
	},
	[M_STATS] = {
		.id = M_STATS, .name = "stats",
		.needs_db = false, .nparams = 0,
	},
	[M_HEALTH] = {
		.id = M_HEALTH, .name = "health",
		.needs_db = false, .nparams = 0,
	},
	/* One page of a user's history in id order: rows with id > after_id.
	 * The largest id is INT64_MAX, and nothing comes after it. */
	[M_EXPORT_HISTORY] = {
		.id = M_EXPORT_HISTORY, .name = "export_history",
		.needs_db = true, .nparams = 6,
		.params = {
			P_USER_ID,
			P_PROVIDER_OPT,
			{ .name = "after_id", .kind = PK_INT, .min = 0,
			  .max = INT64_MAX - 1, .def_int = 0,
			  .has_def_int = true },
			{ .name = "limit", .kind = PK_INT, .min = 1,
			  .max = 1000, .def_int = 1000, .has_def_int = true },
			P_PLATFORM,
			/* absent: every conversation */
			P_CONVERSATION_ID,
		},
	},
	/* One message with its original time: microseconds since the Unix
	 * epoch, UTC, from 1970-01-01 to 9999-12-31T23:59:59.999999Z.
	 * Admin: it writes arbitrary timestamps. */
	[M_IMPORT_MESSAGES] = {
		.id = M_IMPORT_MESSAGES, .name = "import_message",
		.admin = true, .needs_db = true, .nparams = 13,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "role", .kind = PK_ROLE, .required = true },
			{ .name = "content", .kind = PK_CONTENT,
			  .required = true },
			{ .name = "created_at", .kind = PK_INT, .required = true,
			  .min = 0, .max = 253402300799999999LL },
			P_PLATFORM,
			P_IDEMPOTENCY_KEY,
			P_CONVERSATION_ID,
			P_MESSAGE_FIELDS,
		},
	},
	/* issue 17: a user's conversations, newest activity first, a page
	 * at a time (`after`: the cursor the previous page gave as next) */
	[M_LIST_CONVERSATIONS] = {
		.id = M_LIST_CONVERSATIONS, .name = "list_conversations",
		.needs_db = true, .nparams = 5,
		.params = {
			P_USER_ID,
			P_PLATFORM,
			P_PROVIDER_OPT,
			{ .name = "after", .kind = PK_STR, .max = 1024 },
			{ .name = "limit", .kind = PK_INT, .min = 1,
			  .max = 1000, .def_int = 100, .has_def_int = true },
		},
	},
	/* A named conversation's messages and state (the default one is
	 * cleared with clear_user_history). */
	[M_DELETE_CONVERSATION] = {
		.id = M_DELETE_CONVERSATION, .name = "delete_conversation",
		.needs_db = true, .nparams = 4,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "conversation_id", .kind = PK_ID,
			  .required = true },
			P_PLATFORM,
		},
	},
	[M_GET_STATE] = {
		.id = M_GET_STATE, .name = "get_state",
		.needs_db = true, .nparams = 4,
		.params = { P_USER_ID, P_PROVIDER, P_CONVERSATION_ID,
			    P_PLATFORM },
	},
	/* expected_version: 0 = only if there is none, N = only if the
	 * current version is N (else the error `conflict`) */
	[M_SET_STATE] = {
		.id = M_SET_STATE, .name = "set_state",
		.needs_db = true, .nparams = 7,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "state", .kind = PK_MAP, .required = true,
			  .max = MAP_MAX_BYTES },
			P_CONVERSATION_ID,
			{ .name = "expected_version", .kind = PK_INT,
			  .min = 0, .max = INT64_MAX - 1 },
			P_METADATA,
			P_PLATFORM,
		},
	},
	/* issue 18: the newest messages that fit max_tokens, tool
	 * exchanges whole (window.h) */
	[M_GET_CONTEXT] = {
		.id = M_GET_CONTEXT, .name = "get_context",
		.needs_db = true, .nparams = 7,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "max_tokens", .kind = PK_INT, .required = true,
			  .min = 1, .max = 10000000 },
			P_CONVERSATION_ID,
			{ .name = "max_messages", .kind = PK_INT, .min = 1,
			  .max = 10000, .def_int = 1000, .has_def_int = true },
			{ .name = "include_system", .kind = PK_BOOL },
			P_PLATFORM,
		},
	},
	/* One page back from before_id (absent: the newest page). */
	[M_GET_MESSAGES] = {
		.id = M_GET_MESSAGES, .name = "get_messages",
		.needs_db = true, .nparams = 6,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			P_CONVERSATION_ID,
			{ .name = "before_id", .kind = PK_INT, .min = 1,
			  .max = INT64_MAX - 1 },
			{ .name = "limit", .kind = PK_INT, .min = 1,
			  .max = 1000, .def_int = 100, .has_def_int = true },
			P_PLATFORM,
		},
	},
	[M_DELETE_MESSAGE] = {
		.id = M_DELETE_MESSAGE, .name = "delete_message",
		.needs_db = true, .nparams = 3,
		.params = {
			P_USER_ID,
			{ .name = "id", .kind = PK_INT, .required = true,
			  .min = 1, .max = INT64_MAX - 1 },
			P_PLATFORM,
		},
	},
	/* provider, conversation_id absent: every provider, every
	 * conversation */
	[M_SEARCH_MESSAGES] = {
		.id = M_SEARCH_MESSAGES, .name = "search_messages",
		.needs_db = true, .nparams = 6,
		.params = {
			P_USER_ID,
			{ .name = "query", .kind = PK_STR, .required = true,
			  .max = 256 },
			P_PROVIDER_OPT,
			P_CONVERSATION_ID,
			P_PLATFORM,
			{ .name = "limit", .kind = PK_INT, .min = 1,
			  .max = 100, .def_int = 20, .has_def_int = true },
		},
	},
	/* Admin: a data subject's erasure; platform absent = every one. */
	[M_FORGET_USER] = {
		.id = M_FORGET_USER, .name = "forget_user",
		.admin = true, .needs_db = true, .nparams = 2,
		.params = {
			P_USER_ID,
			{ .name = "platform", .kind = PK_NAME },
		},
	},
};

const struct method_spec *validate_find_method(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_LEN(validate_methods); i++) {
		const char *m = validate_methods[i].name;

		if (strlen(m) == len && memcmp(m, name, len) == 0)
			return &validate_methods[i];
	}
	return NULL;
}

static int CONVD_PRINTF(3, 4) fail(char *err, size_t errlen,
				   const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/*
 * Quotes a client-supplied name for an error message: printable ASCII as
 * is, other bytes as \xNN, at most 64 input bytes (then "...").
 */
static const char *quote_name(char *out, size_t outlen, const char *s,
			      size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	for (i = 0; i < len && i < 64 && o + 5 < outlen; i++) {
		uint8_t c = (uint8_t)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0x0f];
		}
	}
	if (i < len && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

#define QUOTE_BUF (64 * 4 + 4)

static const char *const roles[] = { "user", "assistant", "system",
				     "developer", "tool" };

static int check_string(const struct param_spec *ps, const struct mp_node *v,
			size_t maxlen, struct arg_value *out, char *err,
			size_t errlen)
{
	if (v->type != MP_STR || v->v.s.len < 1 || v->v.s.len > maxlen)
		return fail(err, errlen,
			    "%s: must be a string of 1 to %zu bytes", ps->name,
			    maxlen);
	if (memchr(v->v.s.p, '\0', v->v.s.len) != NULL)
		return fail(err, errlen, "%s: contains a NUL byte", ps->name);
	if (!proto_utf8_valid(v->v.s.p, v->v.s.len))
		return fail(err, errlen, "%s: not valid UTF-8", ps->name);
	out->s = v->v.s;
	return 0;
}

/* Checks one given, non-nil value. */
static int check_value(const struct param_spec *ps, const struct mp_node *v,
		       const struct validate_limits *lim,
		       struct arg_value *out, char *err, size_t errlen)
{
	switch (ps->kind) {
	case PK_ID:
		return check_string(ps, v, ID_MAX, out, err, errlen);
	case PK_NAME:
		return check_string(ps, v, NAME_MAX_BYTES, out, err, errlen);
	case PK_CONTENT:
		return check_string(ps, v,
				    lim ? lim->max_content : DEFAULT_MAX_CONTENT,
				    out, err, errlen);
	case PK_ROLE:
		if (v->type == MP_STR)
			for (size_t r = 0; r < ARRAY_LEN(roles); r++)
				if (proto_str_eq(v, roles[r])) {
					out->s = v->v.s;
					return 0;
				}
		return fail(err, errlen,
			    "%s: must be one of user, assistant, system, "
			    "developer, tool",
			    ps->name);
	case PK_INT:
		if (v->type != MP_INT || v->v.i < ps->min || v->v.i > ps->max)
			return fail(err, errlen,
				    "%s: must be an integer from %lld to %lld",
				    ps->name, (long long)ps->min,
				    (long long)ps->max);
		out->i = v->v.i;
		return 0;
	case PK_BOOL:
		if (v->type != MP_BOOL)
			return fail(err, errlen, "%s: must be true or false",
				    ps->name);
		out->i = v->v.b ? 1 : 0;
		return 0;
	case PK_STR:
		return check_string(ps, v, (size_t)ps->max, out, err, errlen);
	case PK_MAP:	/* given as a map: check_raw */
		return fail(err, errlen, "%s: must be a map of at most %lld "
			    "bytes encoded", ps->name, (long long)ps->max);
	}
	return fail(err, errlen, "%s: unsupported parameter kind", ps->name);
}

/*
 * A value kept as its msgpack bytes: PK_CONTENT given as an array or map,
 * PK_MAP given as a map.  Its bytes (node `node` of the frame), their
 * size and their depth.  1 when v is not such a value (check_value).
 */
static int check_raw(const struct param_spec *ps, const struct mp_node *v,
		     uint32_t node, const uint8_t *frame, size_t len,
		     const struct validate_limits *lim, struct arg_value *out,
		     char *err, size_t errlen)
{
	size_t max = ps->kind == PK_MAP ? (size_t)ps->max
		     : lim		 ? lim->max_content
					 : DEFAULT_MAX_CONTENT;
	struct strview b;
	int depth;

	if (ps->kind == PK_CONTENT
		    ? v->type != MP_ARRAY && v->type != MP_MAP
		    : ps->kind != PK_MAP || v->type != MP_MAP)
		return 1;
	if (!frame || content_span(frame, len, node, &b) < 0)
		return fail(err, errlen, "%s: must be a %s", ps->name,
			    ps->kind == PK_MAP ? "map" : "string");
	if (b.len > max)
		return fail(err, errlen,
			    "%s: %zu bytes encoded, more than %zu", ps->name,
			    b.len, max);
	depth = content_depth(b, CONTENT_MAX_DEPTH);
	if (depth < 0)
		return fail(err, errlen, "%s: nested deeper than %d",
			    ps->name, CONTENT_MAX_DEPTH);
	out->s = b;
	out->raw = true;
	return 0;
}

int validate_params(const struct method_spec *spec, const struct mp_doc *doc,
		    uint32_t params, const struct validate_limits *lim,
		    struct method_args *args, char *err, size_t errlen)
{
	return validate_params_frame(spec, doc, params, NULL, 0, lim, args,
				     err, errlen);
}

int validate_params_frame(const struct method_spec *spec,
			  const struct mp_doc *doc, uint32_t params,
			  const uint8_t *frame, size_t len,
			  const struct validate_limits *lim,
			  struct method_args *args, char *err, size_t errlen)
{
	const struct mp_node *nodes = doc->nodes;
	/* Node index of each parameter's value; 0 = not given. */
	uint32_t given[METHOD_MAX_PARAMS] = { 0 };
	char q[QUOTE_BUF];
	uint32_t map = 0;
	bool named = false;
	uint8_t k;

	memset(args, 0, sizeof(*args));
	if (params >= doc->n ||
	    (nodes[params].type != MP_ARRAY && nodes[params].type != MP_MAP))
		return fail(err, errlen, "params must be an array or a map");

	if (nodes[params].type == MP_MAP) {
		map = params;
		named = true;
	} else if (nodes[params].count == 1 &&
		   nodes[params + 1].type == MP_MAP) {
		map = params + 1;	/* [ {named} ] */
		named = true;
	}

	if (named) {
		uint32_t i = map + 1;

		for (uint32_t pair = 0; pair < nodes[map].count; pair++) {
			const struct mp_node *key = &nodes[i];
			uint32_t val = key->next;

			if (key->type != MP_STR)
				return fail(err, errlen,
					    "parameter names must be strings");
			for (k = 0; k < spec->nparams; k++)
				if (proto_str_eq(key, spec->params[k].name))
					break;
			if (k == spec->nparams)
				return fail(err, errlen,
					    "unknown parameter '%s'",
					    quote_name(q, sizeof(q),
						       key->v.s.p,
						       key->v.s.len));
			if (given[k] != 0)
				return fail(err, errlen,
					    "duplicate parameter '%s'",
					    spec->params[k].name);
			given[k] = val;
			i = nodes[val].next;
		}
	} else {
		uint32_t i = params + 1;

		if (nodes[params].count > spec->nparams)
			return fail(err, errlen,
				    "too many parameters: %s takes at most %u, "
				    "got %u",
				    spec->name, (unsigned)spec->nparams,
				    (unsigned)nodes[params].count);
		for (k = 0; k < nodes[params].count; k++) {
			given[k] = i;
			i = nodes[i].next;
		}
	}

	for (k = 0; k < spec->nparams; k++) {
		const struct param_spec *ps = &spec->params[k];
		struct arg_value *out = &args->v[k];

		if (given[k] != 0 && nodes[given[k]].type != MP_NIL) {
			int raw = check_raw(ps, &nodes[given[k]], given[k],
					    frame, len, lim, out, err, errlen);

			if (raw < 0 ||
			    (raw > 0 && check_value(ps, &nodes[given[k]], lim,
						    out, err, errlen) != 0))
				return -1;
			out->present = true;
		} else if (ps->required) {
			return fail(err, errlen, "%s: is required", ps->name);
		} else if (ps->kind == PK_INT) {
			out->present = ps->has_def_int;
			out->i = ps->def_int;
		} else if (ps->def_str != NULL) {
			out->present = true;
			out->s.p = ps->def_str;
			out->s.len = strlen(ps->def_str);
		}
	}
	return 0;
}
