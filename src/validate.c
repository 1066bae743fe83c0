/*
 * validate.c - a request's params checked against its method's spec.
 *
 * Pure code: turns a decoded params node into one value per spec entry
 * (method.h), with defaults.  Structured values are raw nodes (proto.h):
 * their size and depth are the decoder's, their bytes the request's.
 */
#include <string.h>

#include "content.h"
#include "errbuf.h"
#include "utf8.h"
#include "validate.h"

#define ID_MAX 255
#define NAME_MAX_BYTES 50
#define DEFAULT_MAX_CONTENT ((size_t)1 << 20)

/* The reason in err; -1. */
#define fail(err, errlen, ...) (errbuf_set((err), (errlen), __VA_ARGS__), -1)

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

static int check_string(const struct method_param *ps, const struct proto_node *v,
			size_t maxlen, struct validate_arg *out, char *err,
			size_t errlen)
{
	if (v->type != PROTO_STR || v->v.s.len < 1 || v->v.s.len > maxlen)
		return fail(err, errlen,
			    "%s: must be a string of 1 to %zu bytes", ps->name,
			    maxlen);
	if (memchr(v->v.s.p, '\0', v->v.s.len) != NULL)
		return fail(err, errlen, "%s: contains a NUL byte", ps->name);
	if (!utf8_valid(v->v.s.p, v->v.s.len))
		return fail(err, errlen, "%s: not valid UTF-8", ps->name);
	out->s = v->v.s;
	return 0;
}

/* Checks one given, non-nil value. */
static int check_value(const struct method_param *ps, const struct proto_node *v,
		       const struct validate_limits *lim,
		       struct validate_arg *out, char *err, size_t errlen)
{
	switch (ps->kind) {
	case METHOD_PK_ID:
		return check_string(ps, v, ID_MAX, out, err, errlen);
	case METHOD_PK_NAME:
		return check_string(ps, v, NAME_MAX_BYTES, out, err, errlen);
	case METHOD_PK_CONTENT:
		return check_string(ps, v,
				    lim ? lim->max_content : DEFAULT_MAX_CONTENT,
				    out, err, errlen);
	case METHOD_PK_ROLE:
		if (v->type == PROTO_STR)
			for (size_t r = 0; r < ARRAY_LEN(roles); r++)
				if (proto_str_eq(v, roles[r])) {
					out->s = v->v.s;
					return 0;
				}
		return fail(err, errlen,
			    "%s: must be one of user, assistant, system, "
			    "developer, tool",
			    ps->name);
	case METHOD_PK_INT:
		if (v->type != PROTO_INT || v->v.i < ps->min || v->v.i > ps->max)
			return fail(err, errlen,
				    "%s: must be an integer from %lld to %lld",
				    ps->name, (long long)ps->min,
				    (long long)ps->max);
		out->i = v->v.i;
		return 0;
	case METHOD_PK_BOOL:
		if (v->type != PROTO_BOOL)
			return fail(err, errlen, "%s: must be true or false",
				    ps->name);
		out->i = v->v.b ? 1 : 0;
		return 0;
	case METHOD_PK_STR:
		return check_string(ps, v, (size_t)ps->max, out, err, errlen);
	case METHOD_PK_MAP:	/* given as a map: check_raw */
		return fail(err, errlen, "%s: must be a map of at most %lld "
			    "bytes encoded", ps->name, (long long)ps->max);
	}
	return fail(err, errlen, "%s: unsupported parameter kind", ps->name);
}

/*
 * A value kept as its msgpack bytes: METHOD_PK_CONTENT given as an array
 * or map, METHOD_PK_MAP given as a map.  Its bytes, their size and their
 * depth are the node's (proto.h).  1 when v is not such a value
 * (check_value).
 */
static int check_raw(const struct method_param *ps, const struct proto_node *v,
		     const struct validate_limits *lim,
		     struct validate_arg *out, char *err, size_t errlen)
{
	size_t max = ps->kind == METHOD_PK_MAP ? (size_t)ps->max
		     : lim		       ? lim->max_content
					       : DEFAULT_MAX_CONTENT;

	if (ps->kind == METHOD_PK_CONTENT
		    ? v->type != PROTO_ARRAY && v->type != PROTO_MAP
		    : ps->kind != METHOD_PK_MAP || v->type != PROTO_MAP)
		return 1;
	if (v->v.s.len > max)
		return fail(err, errlen,
			    "%s: %zu bytes encoded, more than %zu", ps->name,
			    v->v.s.len, max);
	if (v->depth > CONTENT_MAX_DEPTH)
		return fail(err, errlen, "%s: nested more than %d deep",
			    ps->name, CONTENT_MAX_DEPTH);
	out->s = v->v.s;
	out->raw = true;
	return 0;
}

int validate_params(const struct method_spec *spec, const struct proto_doc *doc,
		    uint32_t params, const struct validate_limits *lim,
		    struct validate_args *args, char *err, size_t errlen)
{
	const struct proto_node *nodes = doc->nodes;
	/* Node index of each parameter's value; 0 = not given. */
	uint32_t given[METHOD_MAX_PARAMS] = { 0 };
	char q[QUOTE_BUF];
	uint32_t map = 0, list;
	bool named = false;
	uint8_t k;

	memset(args, 0, sizeof(*args));
	if (params >= doc->n ||
	    (nodes[params].type != PROTO_ARRAY && nodes[params].type != PROTO_MAP))
		return fail(err, errlen, "params must be an array or a map");

	if (nodes[params].type == PROTO_MAP) {
		map = params;
		named = true;
	} else if (nodes[params].count == 1 && !nodes[params].raw &&
		   nodes[params + 1].type == PROTO_MAP) {
		map = params + 1;	/* [ {named} ] */
		named = true;
	}
	list = named ? map : params;
	/* Params with more values than the decoder made nodes of (a raw
	 * node, proto.h) are more than any method takes: request limits
	 * leave room for METHOD_MAX_PARAMS. */
	if (nodes[list].raw)
		return fail(err, errlen,
			    "too many parameters: %s takes at most %u, got %u",
			    spec->name, (unsigned)spec->nparams,
			    (unsigned)nodes[list].count);

	if (named) {
		uint32_t i = map + 1;

		for (uint32_t pair = 0; pair < nodes[map].count; pair++) {
			const struct proto_node *key = &nodes[i];
			uint32_t val = key->next;

			if (key->type != PROTO_STR)
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
		const struct method_param *ps = &spec->params[k];
		struct validate_arg *out = &args->v[k];

		if (given[k] != 0 && nodes[given[k]].type != PROTO_NIL) {
			int raw = check_raw(ps, &nodes[given[k]], lim, out,
					    err, errlen);

			if (raw < 0 ||
			    (raw > 0 && check_value(ps, &nodes[given[k]], lim,
						    out, err, errlen) != 0))
				return -1;
			out->present = true;
		} else if (ps->required) {
			return fail(err, errlen, "%s: is required", ps->name);
		} else if (ps->kind == METHOD_PK_INT) {
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
