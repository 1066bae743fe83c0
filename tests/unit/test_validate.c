/*
 * test_validate.c - the method table and parameter validation: every rule
 * for every parameter of every method, named ([{...}] and bare {...}) and
 * positional params, defaults, and the error texts clients see.
 */
#include <stdlib.h>

#include "tap.h"
#include "validate.h"

static const struct proto_limits PLIM = {
	.max_frame = 4 << 20,
	.max_depth = PROTO_DEFAULT_DEPTH,
	.max_nodes = PROTO_MAX_NODES,
	.max_container = PROTO_DEFAULT_CONTAINER,
};
static const struct validate_limits VLIM = { .max_content = 100 };

static struct proto_doc doc;
static msgpack_sbuffer sb;
static msgpack_packer pk;
static struct validate_args args;
static char err[512];
static int pack_failures;

static void must(int rc)
{
	if (rc != 0)
		pack_failures++;
}

/* A value to pack. */
enum tv_type { T_ABSENT, T_STR, T_INT, T_UINT, T_NIL, T_BOOL, T_FLOAT,
	       T_BIN, T_ARRAY, T_MAP };
struct tv {
	enum tv_type t;
	const char *s;
	size_t len;
	int64_t i;
};

#define ABSENT ((struct tv){ .t = T_ABSENT })
#define STR(x) ((struct tv){ .t = T_STR, .s = (x), .len = strlen(x) })
#define STRN(x, n) ((struct tv){ .t = T_STR, .s = (x), .len = (n) })
#define INT(x) ((struct tv){ .t = T_INT, .i = (x) })
#define UINT64 ((struct tv){ .t = T_UINT })
#define NIL ((struct tv){ .t = T_NIL })
#define BOOL ((struct tv){ .t = T_BOOL })
#define FLOAT(x) ((struct tv){ .t = T_FLOAT, .i = (x) })
#define BIN(x) ((struct tv){ .t = T_BIN, .s = (x), .len = strlen(x) })
#define ARRAY ((struct tv){ .t = T_ARRAY })
#define MAP ((struct tv){ .t = T_MAP })

static void pack_tv(const struct tv *v)
{
	switch (v->t) {
	case T_ABSENT:
	case T_NIL:
		must(msgpack_pack_nil(&pk));
		break;
	case T_STR:
		must(proto_pack_str(&pk, v->s, v->len));
		break;
	case T_INT:
		must(msgpack_pack_int64(&pk, v->i));
		break;
	case T_UINT:
		must(msgpack_pack_uint64(&pk, UINT64_MAX));
		break;
	case T_BOOL:
		must(msgpack_pack_true(&pk));
		break;
	case T_FLOAT:
		must(msgpack_pack_double(&pk, (double)v->i));
		break;
	case T_BIN:
		must(msgpack_pack_bin_with_body(&pk, v->s, v->len));
		break;
	case T_ARRAY:
		must(msgpack_pack_array(&pk, 1));
		must(proto_pack_cstr(&pk, "x"));
		break;
	case T_MAP:
		must(msgpack_pack_map(&pk, 0));
		break;
	}
}

/* Decodes sb and validates node `at` against spec. */
static int run_at(const struct method_spec *spec, uint32_t at,
		  const struct validate_limits *lim)
{
	size_t used;

	err[0] = '\0';
	if (proto_decode((const uint8_t *)sb.data, sb.size, &PLIM, &doc,
			 &used) != PROTO_OK) {
		snprintf(err, sizeof(err), "(test: did not decode)");
		return -2;
	}
	return validate_params(spec, &doc, at, lim, &args, err, sizeof(err));
}

static int run(const struct method_spec *spec)
{
	return run_at(spec, 0, &VLIM);
}

/* A valid value for each parameter name. */
static struct tv base_value(const char *name)
{
	if (strcmp(name, "user_id") == 0)
		return STR("U4af4980629");
	if (strcmp(name, "thread_id") == 0)
		return STR("thread_abc123");
	if (strcmp(name, "provider") == 0)
		return STR("anthropic");
	if (strcmp(name, "platform") == 0)
		return STR("telegram");
	if (strcmp(name, "role") == 0)
		return STR("assistant");
	if (strcmp(name, "content") == 0)
		return STR("hello \xe4\xbd\xa0\xe5\xa5\xbd");
	if (strcmp(name, "limit") == 0)
		return INT(20);
	if (strcmp(name, "days_to_keep") == 0)
		return INT(30);
	if (strcmp(name, "after_id") == 0)
		return INT(12345);
	if (strcmp(name, "created_at") == 0)
		return INT(1764000000123456);
	if (strcmp(name, "dry_run") == 0)
		return BOOL;
	/* issue 17 */
	if (strcmp(name, "conversation_id") == 0)
		return STR("conv_68a1f0c2");
	if (strcmp(name, "tool_call_id") == 0)
		return STR("toolu_01A09q90qw90lq917835lq9");
	if (strcmp(name, "name") == 0)
		return STR("get_weather");
	if (strcmp(name, "model") == 0)
		return STR("claude-sonnet-4-5");
	if (strcmp(name, "tokens") == 0)
		return INT(42);
	if (strcmp(name, "metadata") == 0 || strcmp(name, "state") == 0)
		return MAP;
	if (strcmp(name, "after") == 0)
		return STR("1764000000123456.6.openai");
	if (strcmp(name, "expected_version") == 0)
		return INT(3);
	/* issue 18 */
	if (strcmp(name, "max_tokens") == 0)
		return INT(8000);
	if (strcmp(name, "max_messages") == 0)
		return INT(200);
	if (strcmp(name, "include_system") == 0)
		return BOOL;
	if (strcmp(name, "before_id") == 0 || strcmp(name, "id") == 0)
		return INT(9001);
	if (strcmp(name, "query") == 0)
		return STR("\xe5\x8f\xb0\xe5\x8c\x97 weather");
	return STR("?");
}

enum style { NAMED_WRAPPED, NAMED_BARE, POSITIONAL };

/*
 * Packs params for spec: every parameter with its base value, except
 * parameter `over` (an index, or -1) which gets *ov (T_ABSENT leaves it
 * out; positional params are then cut there if it is last).
 */
static void build(const struct method_spec *spec, enum style st, int over,
		  const struct tv *ov)
{
	struct tv vals[METHOD_MAX_PARAMS];
	uint32_t n = 0, present = 0;

	msgpack_sbuffer_clear(&sb);
	for (int k = 0; k < spec->nparams; k++) {
		vals[k] = k == over ? *ov : base_value(spec->params[k].name);
		if (vals[k].t != T_ABSENT)
			present++;
	}
	if (st == POSITIONAL) {
		n = spec->nparams;
		while (n > 0 && vals[n - 1].t == T_ABSENT)
			n--;
		must(msgpack_pack_array(&pk, n));
		for (uint32_t k = 0; k < n; k++)
			pack_tv(&vals[k]);
		return;
	}
	if (st == NAMED_WRAPPED)
		must(msgpack_pack_array(&pk, 1));
	must(msgpack_pack_map(&pk, present));
	for (int k = 0; k < spec->nparams; k++) {
		if (vals[k].t == T_ABSENT)
			continue;
		must(proto_pack_cstr(&pk, spec->params[k].name));
		pack_tv(&vals[k]);
	}
}

static const char *style_name(enum style st)
{
	return st == NAMED_WRAPPED ? "[{named}]" :
	       st == NAMED_BARE	   ? "{named}" :
					 "positional";
}

/* --- the table --------------------------------------------------------- */

static void test_table(void)
{
	static const struct {
		enum method_id id;
		const char *name;
		const char *params;	/* name[?] where ? = optional */
		bool admin, needs_db;
	} want[] = {
		{ METHOD_PING, "ping", "", false, false },
		{ METHOD_ADD_MESSAGE, "add_message",
		  "user_id provider role content platform? idempotency_key? "
		  "conversation_id? tool_call_id? name? model? tokens? "
		  "metadata?", false, true },
		{ METHOD_GET_RECENT, "get_recent_conversations",
		  "user_id provider limit? platform? conversation_id?", false,
		  true },
		{ METHOD_CLEAR_HISTORY, "clear_user_history",
		  "user_id provider platform? conversation_id?", false, true },
		{ METHOD_GET_COUNT, "get_conversation_count",
		  "user_id provider? platform? conversation_id?", false, true },
		{ METHOD_GET_USER_STATS, "get_user_statistics",
		  "user_id platform?", false, true },
		{ METHOD_GET_THREAD, "get_thread", "user_id platform?", false, true },
		{ METHOD_SAVE_THREAD, "save_thread", "user_id thread_id platform?",
		  false, true },
		{ METHOD_DELETE_THREAD, "delete_thread", "user_id platform?", false,
		  true },
		{ METHOD_CLEANUP, "cleanup_old_conversations",
		  "days_to_keep? dry_run?", true, true },
		{ METHOD_STATS, "stats", "", false, false },
		{ METHOD_HEALTH, "health", "", false, false },
		{ METHOD_EXPORT_HISTORY, "export_history",
		  "user_id provider? after_id? limit? platform? "
		  "conversation_id?", false, true },
		{ METHOD_IMPORT_MESSAGES, "import_message",
		  "user_id provider role content created_at platform? "
		  "idempotency_key? conversation_id? tool_call_id? name? "
		  "model? tokens? metadata?", true, true },
		{ METHOD_LIST_CONVERSATIONS, "list_conversations",
		  "user_id platform? provider? after? limit?", false, true },
		{ METHOD_DELETE_CONVERSATION, "delete_conversation",
		  "user_id provider conversation_id platform?", false, true },
		{ METHOD_GET_STATE, "get_state",
		  "user_id provider conversation_id? platform?", false, true },
		{ METHOD_SET_STATE, "set_state",
		  "user_id provider state conversation_id? expected_version? "
		  "metadata? platform?", false, true },
		/* issue 18 */
		{ METHOD_GET_CONTEXT, "get_context",
		  "user_id provider max_tokens conversation_id? max_messages? "
		  "include_system? platform?", false, true },
		{ METHOD_GET_MESSAGES, "get_messages",
		  "user_id provider conversation_id? before_id? limit? "
		  "platform?", false, true },
		{ METHOD_DELETE_MESSAGE, "delete_message", "user_id id platform?",
		  false, true },
		{ METHOD_SEARCH_MESSAGES, "search_messages",
		  "user_id query provider? conversation_id? platform? limit?",
		  false, true },
		{ METHOD_FORGET_USER, "forget_user", "user_id platform?", true,
		  true },
	};

	is_int(ARRAY_LEN(want), METHOD_COUNT_, "every method is described");
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		const struct method_spec *m = &method_table[want[i].id];
		char got[256] = "";

		ok(m->id == want[i].id, "%s: id matches its slot", want[i].name);
		is_str(m->name, want[i].name, "method %zu: name", i);
		ok(method_find(want[i].name, strlen(want[i].name)) == m,
		   "find_method(%s)", want[i].name);
		ok(m->admin == want[i].admin && m->needs_db == want[i].needs_db,
		   "%s: admin %d, needs_db %d", want[i].name, want[i].admin,
		   want[i].needs_db);
		ok(m->nparams <= METHOD_MAX_PARAMS, "%s: nparams in range",
		   want[i].name);
		for (int k = 0; k < m->nparams; k++) {
			size_t l = strlen(got);

			snprintf(got + l, sizeof(got) - l, "%s%s%s",
				 k ? " " : "", m->params[k].name,
				 m->params[k].required ? "" : "?");
		}
		is_str(got, want[i].params, "%s: parameters", want[i].name);
	}

	ok(method_find("pin", 3) == NULL, "find_method: prefix");
	ok(method_find("pingx", 5) == NULL, "find_method: longer");
	ok(method_find("PING", 4) == NULL,
	   "find_method: case matters");
	ok(method_find("ping\0", 5) == NULL,
	   "find_method: trailing NUL");
	ok(method_find("", 0) == NULL, "find_method: empty");
	ok(method_find("pingpong", 4) == &method_table[METHOD_PING],
	   "find_method uses the given length");

	{
		const struct method_param *lim =
			&method_table[METHOD_GET_RECENT].params[2];
		const struct method_param *days =
			&method_table[METHOD_CLEANUP].params[0];
		bool platforms = true;

		ok(lim->kind == METHOD_PK_INT && lim->min == 1 && lim->max == 1000 &&
		   lim->has_def_int && lim->def_int == 10,
		   "limit: integer 1..1000, default 10");
		ok(days->kind == METHOD_PK_INT && days->min == 0 &&
		   days->max == 36500 && !days->has_def_int,
		   "days_to_keep: integer 0..36500 without a default");
		for (int m = 0; m < METHOD_COUNT_; m++)
			for (int k = 0; k < method_table[m].nparams; k++) {
				const struct method_param *ps =
					&method_table[m].params[k];

				/* forget_user: absent = every platform */
				if (strcmp(ps->name, "platform") == 0 &&
				    (ps->kind != METHOD_PK_NAME || ps->required ||
				     (m == METHOD_FORGET_USER ? ps->def_str != NULL
				      : !ps->def_str ||
					strcmp(ps->def_str, "line") != 0)))
					platforms = false;
			}
		ok(platforms, "every platform is an optional name, "
		   "default 'line' (forget_user: none, every platform)");
	}
}

/* --- valid requests in every style -------------------------------------- */

static bool args_match_base(const struct method_spec *spec)
{
	for (int k = 0; k < spec->nparams; k++) {
		struct tv b = base_value(spec->params[k].name);
		const struct validate_arg *a = &args.v[k];

		if (!a->present)
			return false;
		if (b.t == T_INT && a->i != b.i)
			return false;
		if (b.t == T_STR &&
		    (a->s.len != b.len || memcmp(a->s.p, b.s, b.len) != 0 ||
		     a->s.p < sb.data || a->s.p >= sb.data + sb.size))
			return false;
	}
	return true;
}

static void test_valid(void)
{
	for (int m = 0; m < METHOD_COUNT_; m++) {
		const struct method_spec *spec = &method_table[m];

		for (enum style st = NAMED_WRAPPED; st <= POSITIONAL; st++) {
			build(spec, st, -1, NULL);
			if (!ok(run(spec) == 0 && args_match_base(spec),
				"%s %s: all parameters given", spec->name,
				style_name(st)))
				printf("#   %s\n", err);
		}
	}

	/* Zero-parameter methods accept every empty form. */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 0));
	ok(run(&method_table[METHOD_PING]) == 0, "ping []");
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_map(&pk, 0));
	ok(run(&method_table[METHOD_PING]) == 0, "ping {}");
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 1));
	must(msgpack_pack_map(&pk, 0));
	ok(run(&method_table[METHOD_STATS]) == 0, "stats [{}]");
}

/* export_history pages; import_message has no default time. */
static void test_defaults_export_import(void)
{
	const struct method_spec *exp = &method_table[METHOD_EXPORT_HISTORY];
	const struct method_spec *imp = &method_table[METHOD_IMPORT_MESSAGES];
	struct tv absent = ABSENT, nil = NIL, v;

	for (enum style st = NAMED_WRAPPED; st <= POSITIONAL; st++) {
		build(exp, st, 1, &nil);
		ok(run(exp) == 0 && !args.v[1].present && args.v[4].present,
		   "export_history %s: provider nil -> all providers",
		   style_name(st));
		build(exp, st, 2, &absent);
		ok(run(exp) == 0 && args.v[2].present && args.v[2].i == 0,
		   "export_history %s: after_id absent -> 0", style_name(st));
		build(exp, st, 3, &nil);
		ok(run(exp) == 0 && args.v[3].present && args.v[3].i == 1000,
		   "export_history %s: limit nil -> 1000", style_name(st));
		build(imp, st, 4, &nil);
		ok(run(imp) == -1 &&
		   strcmp(err, "created_at: is required") == 0,
		   "import_message %s: created_at is required", style_name(st));
		build(imp, st, 5, &absent);
		ok(run(imp) == 0 && args.v[5].s.len == 4 &&
		   memcmp(args.v[5].s.p, "line", 4) == 0 &&
		   args.v[4].i == 1764000000123456,
		   "import_message %s: platform defaults to 'line'",
		   style_name(st));
	}
	/* a time must be an integer: a msgpack timestamp is refused */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 1));
	must(msgpack_pack_map(&pk, 5));
	must(proto_pack_cstr(&pk, "user_id"));
	must(proto_pack_cstr(&pk, "U1"));
	must(proto_pack_cstr(&pk, "provider"));
	must(proto_pack_cstr(&pk, "gemini"));
	must(proto_pack_cstr(&pk, "role"));
	must(proto_pack_cstr(&pk, "user"));
	must(proto_pack_cstr(&pk, "content"));
	must(proto_pack_cstr(&pk, "hi"));
	must(proto_pack_cstr(&pk, "created_at"));
	must(proto_pack_timestamp(&pk, 1764000000123456));
	ok(run(imp) == -1 &&
	   strcmp(err, "created_at: must be an integer from 0 to "
		       "253402300799999999") == 0,
	   "import_message: a msgpack timestamp is not a created_at");
	v = INT(INT64_MAX - 1);
	build(exp, POSITIONAL, 2, &v);
	ok(run(exp) == 0 && args.v[2].i == INT64_MAX - 1,
	   "export_history: after_id up to INT64_MAX - 1");
}

/* Only the required params: optional ones get their defaults. */
static void test_defaults(void)
{
	const struct method_spec *add = &method_table[METHOD_ADD_MESSAGE];
	const struct method_spec *rec = &method_table[METHOD_GET_RECENT];
	const struct method_spec *cnt = &method_table[METHOD_GET_COUNT];
	const struct method_spec *cln = &method_table[METHOD_CLEANUP];
	struct tv absent = ABSENT, nil = NIL;

	for (enum style st = NAMED_WRAPPED; st <= POSITIONAL; st++) {
		build(add, st, 4, &absent);
		ok(run(add) == 0 && args.v[4].present &&
		   args.v[4].s.len == 4 && memcmp(args.v[4].s.p, "line", 4) == 0,
		   "add_message %s: platform defaults to 'line'",
		   style_name(st));
		build(add, st, 4, &nil);
		ok(run(add) == 0 && args.v[4].present &&
		   args.v[4].s.len == 4 && memcmp(args.v[4].s.p, "line", 4) == 0,
		   "add_message %s: platform nil means 'line'", style_name(st));

		build(rec, st, 2, &absent);
		ok(run(rec) == 0 && args.v[2].present && args.v[2].i == 10,
		   "get_recent_conversations %s: limit absent -> 10",
		   style_name(st));
		build(rec, st, 2, &nil);
		ok(run(rec) == 0 && args.v[2].present && args.v[2].i == 10 &&
		   args.v[3].present && args.v[3].s.len == 8,
		   "get_recent_conversations %s: limit nil -> 10, platform "
		   "still read", style_name(st));

		build(cnt, st, 1, &absent);
		ok(run(cnt) == 0 && !args.v[1].present && args.v[2].present,
		   "get_conversation_count %s: provider absent -> all",
		   style_name(st));
		build(cnt, st, 1, &nil);
		ok(run(cnt) == 0 && !args.v[1].present,
		   "get_conversation_count %s: provider nil -> all",
		   style_name(st));

		build(cln, st, 0, &absent);
		ok(run(cln) == 0 && !args.v[0].present,
		   "cleanup_old_conversations %s: days_to_keep absent -> "
		   "not present (config decides)", style_name(st));
		build(cln, st, 0, &nil);
		ok(run(cln) == 0 && !args.v[0].present,
		   "cleanup_old_conversations %s: days_to_keep nil -> not "
		   "present", style_name(st));
	}

	/* positional: only the required prefix */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 2));
	must(proto_pack_cstr(&pk, "U1"));
	must(proto_pack_cstr(&pk, "gemini"));
	ok(run(rec) == 0 && args.v[0].s.len == 2 && args.v[1].s.len == 6 &&
	   args.v[2].i == 10 && args.v[3].s.len == 4 &&
	   strncmp(args.v[3].s.p, "line", 4) == 0,
	   "get_recent_conversations [user, provider]: both defaults");
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 4));
	must(proto_pack_cstr(&pk, "U1"));
	must(proto_pack_cstr(&pk, "gemini"));
	must(msgpack_pack_nil(&pk));
	must(proto_pack_cstr(&pk, "web"));
	ok(run(rec) == 0 && args.v[2].i == 10 && args.v[3].s.len == 3,
	   "get_recent_conversations [u, p, nil, web]: a nil in the middle");
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 0));
	ok(run(cln) == 0 && !args.v[0].present,
	   "cleanup_old_conversations []");
	test_defaults_export_import();
}

/* --- every rule for every parameter ------------------------------------ */

/* Expects spec with parameter k set to v to fail with `want` in err. */
static void expect_bad(const struct method_spec *spec, int k,
		       const struct tv *v, const char *want, const char *what)
{
	bool all = true;

	for (enum style st = NAMED_WRAPPED; st <= POSITIONAL; st++) {
		build(spec, st, k, v);
		if (run(spec) != -1 || strcmp(err, want) != 0) {
			printf("#   %s %s: got \"%s\", want \"%s\"\n",
			       spec->name, style_name(st), err, want);
			all = false;
		}
	}
	ok(all, "%s.%s %s: \"%s\"", spec->name, spec->params[k].name, what,
	   want);
}

static void expect_good(const struct method_spec *spec, int k,
			const struct tv *v, const char *what)
{
	bool all = true;

	for (enum style st = NAMED_WRAPPED; st <= POSITIONAL; st++) {
		build(spec, st, k, v);
		if (run(spec) != 0 || !args.v[k].present ||
		    (v->t == T_STR && (args.v[k].s.len != v->len ||
				       memcmp(args.v[k].s.p, v->s, v->len))) ||
		    (v->t == T_INT && args.v[k].i != v->i)) {
			printf("#   %s %s: %s\n", spec->name, style_name(st),
			       err);
			all = false;
		}
	}
	ok(all, "%s.%s %s: accepted", spec->name, spec->params[k].name, what);
}

static void test_strings(const struct method_spec *spec, int k, size_t max)
{
	bool structured = spec->params[k].kind == METHOD_PK_CONTENT;
	const char *name = spec->params[k].name;
	char *big = malloc(max + 2);
	char want[128];
	struct tv v;

	memset(big, 'x', max + 1);
	big[max + 1] = '\0';
	snprintf(want, sizeof(want), "%s: must be a string of 1 to %zu bytes",
		 name, max);

	v = STRN(big, 1);
	expect_good(spec, k, &v, "1 byte");
	v = STRN(big, max);
	expect_good(spec, k, &v, "at the maximum");
	v = STR("\xf0\x9f\x98\x80\xe2\x82\xac");
	expect_good(spec, k, &v, "multibyte UTF-8");
	v = STRN(big, max + 1);
	expect_bad(spec, k, &v, want, "one byte too long");
	v = STR("");
	expect_bad(spec, k, &v, want, "empty");
	v = INT(5);
	expect_bad(spec, k, &v, want, "an integer");
	v = BIN("abc");
	expect_bad(spec, k, &v, want, "bin");
	v = BOOL;
	expect_bad(spec, k, &v, want, "a bool");
	v = FLOAT(1);
	expect_bad(spec, k, &v, want, "a float");
	v = ARRAY;
	if (structured)		/* issue 17: test_content.c has the rest */
		expect_good(spec, k, &v, "an array");
	else
		expect_bad(spec, k, &v, want, "an array");
	v = MAP;
	if (structured)
		expect_good(spec, k, &v, "a map");
	else
		expect_bad(spec, k, &v, want, "a map");

	snprintf(want, sizeof(want), "%s: contains a NUL byte", name);
	v = STRN("ab\0cd", 5);
	expect_bad(spec, k, &v, want, "with a NUL inside");
	v = STRN("\0", 1);
	expect_bad(spec, k, &v, want, "a lone NUL");

	snprintf(want, sizeof(want), "%s: not valid UTF-8", name);
	v = STR("abc\xff");
	expect_bad(spec, k, &v, want, "with 0xff");
	v = STR("\xc0\x80");
	expect_bad(spec, k, &v, want, "overlong NUL");
	v = STR("\xed\xa0\x80");
	expect_bad(spec, k, &v, want, "a surrogate");
	v = STR("ok\xe2\x82");
	expect_bad(spec, k, &v, want, "truncated");
	free(big);
}

static void test_role(const struct method_spec *spec, int k)
{
	static const char want[] = "role: must be one of user, assistant, "
				   "system, developer, tool";
	static const char *const bad[] = { "admin", "User", "users", "use",
					   "", "tools", "function",
					   "system " };
	struct tv v;

	v = STR("user");
	expect_good(spec, k, &v, "user");
	v = STR("assistant");
	expect_good(spec, k, &v, "assistant");
	v = STR("system");
	expect_good(spec, k, &v, "system");
	v = STR("developer");
	expect_good(spec, k, &v, "developer");
	v = STR("tool");
	expect_good(spec, k, &v, "tool");
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		v = STR(bad[i]);
		expect_bad(spec, k, &v, want, bad[i]);
	}
	v = STRN("user\0", 5);
	expect_bad(spec, k, &v, want, "user with a NUL");
	v = INT(1);
	expect_bad(spec, k, &v, want, "an integer");
	v = BIN("user");
	expect_bad(spec, k, &v, want, "bin 'user'");
}

static void test_int(const struct method_spec *spec, int k)
{
	const struct method_param *ps = &spec->params[k];
	char want[128];
	struct tv v;

	snprintf(want, sizeof(want), "%s: must be an integer from %lld to %lld",
		 ps->name, (long long)ps->min, (long long)ps->max);
	v = INT(ps->min);
	expect_good(spec, k, &v, "minimum");
	v = INT(ps->max);
	expect_good(spec, k, &v, "maximum");
	v = INT(ps->min - 1);
	expect_bad(spec, k, &v, want, "below the minimum");
	v = INT(ps->max + 1);
	expect_bad(spec, k, &v, want, "above the maximum");
	v = INT(INT64_MIN);
	expect_bad(spec, k, &v, want, "INT64_MIN");
	v = INT(INT64_MAX);
	expect_bad(spec, k, &v, want, "INT64_MAX");
	v = UINT64;
	expect_bad(spec, k, &v, want, "UINT64_MAX");
	v = STR("5");
	expect_bad(spec, k, &v, want, "a string");
	v = FLOAT(5);
	expect_bad(spec, k, &v, want, "a float");
	v = BOOL;
	expect_bad(spec, k, &v, want, "a bool");
	v = ARRAY;
	expect_bad(spec, k, &v, want, "an array");
}

static void test_bool(const struct method_spec *spec, int k)
{
	const struct method_param *ps = &spec->params[k];
	char want[128];
	struct tv v;

	snprintf(want, sizeof(want), "%s: must be true or false", ps->name);
	v = BOOL;
	expect_good(spec, k, &v, "true");
	v = INT(1);
	expect_bad(spec, k, &v, want, "an integer");
	v = STR("true");
	expect_bad(spec, k, &v, want, "a string");
	v = ARRAY;
	expect_bad(spec, k, &v, want, "an array");
}

static void test_rules(void)
{
	for (int m = 0; m < METHOD_COUNT_; m++) {
		const struct method_spec *spec = &method_table[m];

		for (int k = 0; k < spec->nparams; k++) {
			const struct method_param *ps = &spec->params[k];
			struct tv absent = ABSENT, nil = NIL;
			char want[128];

			switch (ps->kind) {
			case METHOD_PK_ID:
				test_strings(spec, k, 255);
				break;
			case METHOD_PK_NAME:
				test_strings(spec, k, 50);
				break;
			case METHOD_PK_CONTENT:
				test_strings(spec, k, VLIM.max_content);
				break;
			case METHOD_PK_ROLE:
				test_role(spec, k);
				break;
			case METHOD_PK_INT:
				test_int(spec, k);
				break;
			case METHOD_PK_BOOL:
				test_bool(spec, k);
				break;
			case METHOD_PK_STR:
				test_strings(spec, k, (size_t)ps->max);
				break;
			case METHOD_PK_MAP:	/* test_content.c */
				break;
			}
			if (!ps->required)
				continue;
			snprintf(want, sizeof(want), "%s: is required",
				 ps->name);
			expect_bad(spec, k, &nil, want, "nil");
			/* positional can only omit a trailing parameter */
			for (enum style st = NAMED_WRAPPED; st <= NAMED_BARE;
			     st++) {
				build(spec, st, k, &absent);
				ok(run(spec) == -1 && strcmp(err, want) == 0,
				   "%s %s without %s: \"%s\"", spec->name,
				   style_name(st), ps->name, err);
			}
		}
	}

	/* Positional, cut short before a required parameter. */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 3));
	must(proto_pack_cstr(&pk, "U1"));
	must(proto_pack_cstr(&pk, "anthropic"));
	must(proto_pack_cstr(&pk, "user"));
	ok(run(&method_table[METHOD_ADD_MESSAGE]) == -1 &&
	   strcmp(err, "content: is required") == 0,
	   "add_message [u, p, role]: \"%s\"", err);

	/* content's limit comes from the caller; NULL means 1 MiB */
	{
		const struct method_spec *add =
			&method_table[METHOD_ADD_MESSAGE];
		size_t mib = (size_t)1 << 20;
		char *big = malloc(mib + 1);
		struct tv v;

		memset(big, 'c', mib + 1);
		v = STRN(big, mib);
		build(add, NAMED_WRAPPED, 3, &v);
		ok(run_at(add, 0, NULL) == 0 && args.v[3].s.len == mib,
		   "content of 1 MiB with the default limit");
		v = STRN(big, mib + 1);
		build(add, NAMED_WRAPPED, 3, &v);
		ok(run_at(add, 0, NULL) == -1 &&
		   strcmp(err, "content: must be a string of 1 to 1048576 "
			       "bytes") == 0,
		   "content of 1 MiB + 1 with the default limit: \"%s\"", err);
		free(big);
	}
}

/* --- structural errors --------------------------------------------------- */

static void test_structure(void)
{
	const struct method_spec *add = &method_table[METHOD_ADD_MESSAGE];
	const struct method_spec *ping = &method_table[METHOD_PING];
	const struct method_spec *get = &method_table[METHOD_GET_THREAD];

	/* too many positional */
	for (int m = 0; m < METHOD_COUNT_; m++) {
		const struct method_spec *spec = &method_table[m];
		char want[128];

		msgpack_sbuffer_clear(&sb);
		must(msgpack_pack_array(&pk, spec->nparams + 1u));
		for (int k = 0; k < spec->nparams; k++) {
			struct tv b = base_value(spec->params[k].name);

			pack_tv(&b);
		}
		must(proto_pack_cstr(&pk, "extra"));
		snprintf(want, sizeof(want),
			 "too many parameters: %s takes at most %d, got %d",
			 spec->name, spec->nparams, spec->nparams + 1);
		ok(run(spec) == -1 && strcmp(err, want) == 0,
		   "%s with one positional param too many: \"%s\"",
		   spec->name, err);
	}

	/* unknown named parameter, in each method */
	for (int m = 0; m < METHOD_COUNT_; m++) {
		const struct method_spec *spec = &method_table[m];

		for (enum style st = NAMED_WRAPPED; st <= NAMED_BARE; st++) {
			msgpack_sbuffer_clear(&sb);
			if (st == NAMED_WRAPPED)
				must(msgpack_pack_array(&pk, 1));
			must(msgpack_pack_map(&pk, spec->nparams + 1u));
			for (int k = 0; k < spec->nparams; k++) {
				struct tv b =
					base_value(spec->params[k].name);

				must(proto_pack_cstr(&pk,
						     spec->params[k].name));
				pack_tv(&b);
			}
			must(proto_pack_cstr(&pk, "foo"));
			must(proto_pack_cstr(&pk, "bar"));
			ok(run(spec) == -1 &&
			   strcmp(err, "unknown parameter 'foo'") == 0,
			   "%s %s with 'foo': \"%s\"", spec->name,
			   style_name(st), err);
		}
	}

	/* a parameter of another method is unknown here */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_map(&pk, 2));
	must(proto_pack_cstr(&pk, "user_id"));
	must(proto_pack_cstr(&pk, "U"));
	must(proto_pack_cstr(&pk, "limit"));
	must(msgpack_pack_int(&pk, 3));
	ok(run(get) == -1 && strcmp(err, "unknown parameter 'limit'") == 0,
	   "get_thread with limit: \"%s\"", err);

	/* names are matched exactly */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_map(&pk, 1));
	must(proto_pack_cstr(&pk, "User_id"));
	must(proto_pack_cstr(&pk, "U"));
	ok(run(get) == -1 && strcmp(err, "unknown parameter 'User_id'") == 0,
	   "names are case-sensitive: \"%s\"", err);

	/* hostile names are quoted safely and cut */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_map(&pk, 1));
	must(proto_pack_str(&pk, "a'b\\\n\0\xff", 7));
	must(msgpack_pack_nil(&pk));
	ok(run(ping) == -1 &&
	   strcmp(err, "unknown parameter 'a\\x27b\\x5c\\x0a\\x00\\xff'") == 0,
	   "control bytes, quotes and non-ASCII are escaped: \"%s\"", err);
	{
		char name[300];
		char want[128];

		memset(name, 'n', sizeof(name));
		msgpack_sbuffer_clear(&sb);
		must(msgpack_pack_map(&pk, 1));
		must(proto_pack_str(&pk, name, sizeof(name)));
		must(msgpack_pack_nil(&pk));
		snprintf(want, sizeof(want), "unknown parameter '%.64s...'",
			 name);
		ok(run(ping) == -1 && strcmp(err, want) == 0,
		   "a 300-byte name is cut at 64 bytes");

		memset(name, 0xff, sizeof(name));
		msgpack_sbuffer_clear(&sb);
		must(msgpack_pack_map(&pk, 1));
		must(proto_pack_str(&pk, name, sizeof(name)));
		must(msgpack_pack_nil(&pk));
		ok(run(ping) == -1 && strlen(err) < sizeof(err) &&
		   strncmp(err, "unknown parameter '\\xff\\xff", 27) == 0 &&
		   strcmp(err + strlen(err) - 4, "...'") == 0,
		   "300 escaped bytes fit the message");
	}

	/* duplicate */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 1));
	must(msgpack_pack_map(&pk, 3));
	must(proto_pack_cstr(&pk, "user_id"));
	must(proto_pack_cstr(&pk, "U1"));
	must(proto_pack_cstr(&pk, "platform"));
	must(proto_pack_cstr(&pk, "web"));
	must(proto_pack_cstr(&pk, "user_id"));
	must(proto_pack_cstr(&pk, "U2"));
	ok(run(get) == -1 && strcmp(err, "duplicate parameter 'user_id'") == 0,
	   "duplicate user_id: \"%s\"", err);
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_map(&pk, 2));
	must(proto_pack_cstr(&pk, "platform"));
	must(msgpack_pack_nil(&pk));
	must(proto_pack_cstr(&pk, "platform"));
	must(proto_pack_cstr(&pk, "web"));
	ok(run(get) == -1 &&
	   strcmp(err, "duplicate parameter 'platform'") == 0,
	   "duplicate platform, the first nil: \"%s\"", err);

	/* non-string keys */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_map(&pk, 1));
	must(msgpack_pack_int(&pk, 1));
	must(proto_pack_cstr(&pk, "U1"));
	ok(run(get) == -1 &&
	   strcmp(err, "parameter names must be strings") == 0,
	   "an integer key: \"%s\"", err);
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 1));
	must(msgpack_pack_map(&pk, 1));
	must(msgpack_pack_bin_with_body(&pk, "user_id", 7));
	must(proto_pack_cstr(&pk, "U1"));
	ok(run(get) == -1 &&
	   strcmp(err, "parameter names must be strings") == 0,
	   "a bin key: \"%s\"", err);
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_map(&pk, 1));
	must(msgpack_pack_nil(&pk));
	must(msgpack_pack_nil(&pk));
	ok(run(ping) == -1 &&
	   strcmp(err, "parameter names must be strings") == 0,
	   "a nil key, even for ping: \"%s\"", err);

	/* [ {map}, more ] is positional: the map is then user_id's value */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 2));
	must(msgpack_pack_map(&pk, 1));
	must(proto_pack_cstr(&pk, "user_id"));
	must(proto_pack_cstr(&pk, "U1"));
	must(proto_pack_cstr(&pk, "web"));
	ok(run(get) == -1 &&
	   strcmp(err, "user_id: must be a string of 1 to 255 bytes") == 0,
	   "[{...}, x] is positional: \"%s\"", err);
	/* [ {} ] for a method with params: named, all missing */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 1));
	must(msgpack_pack_map(&pk, 0));
	ok(run(add) == -1 && strcmp(err, "user_id: is required") == 0,
	   "add_message [{}]: \"%s\"", err);
	/* [] */
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 0));
	ok(run(add) == -1 && strcmp(err, "user_id: is required") == 0,
	   "add_message []: \"%s\"", err);

	/* params of the wrong type, or a bad index */
	msgpack_sbuffer_clear(&sb);
	must(proto_pack_cstr(&pk, "U1"));
	ok(run(get) == -1 &&
	   strcmp(err, "params must be an array or a map") == 0,
	   "params as a string: \"%s\"", err);
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_nil(&pk));
	ok(run(ping) == -1 &&
	   strcmp(err, "params must be an array or a map") == 0,
	   "params nil: \"%s\"", err);
	msgpack_sbuffer_clear(&sb);
	must(msgpack_pack_array(&pk, 0));
	ok(run_at(ping, 5, &VLIM) == -1,
	   "a params index beyond the document is refused");

	/* a short error buffer is respected */
	{
		char tiny[10];

		msgpack_sbuffer_clear(&sb);
		must(msgpack_pack_nil(&pk));
		(void)run(ping);
		ok(validate_params(ping, &doc, 0, &VLIM, &args, tiny,
				   sizeof(tiny)) == -1 &&
		   strlen(tiny) == sizeof(tiny) - 1,
		   "the message is truncated to the buffer");
		ok(validate_params(ping, &doc, 0, &VLIM, &args, NULL, 0) == -1,
		   "errlen 0 is allowed");
	}
}

/* The daemon's path: params inside a request envelope. */
static void test_in_envelope(void)
{
	const struct method_spec *spec;
	struct proto_msg msg;
	char eerr[128];
	size_t used;

	msgpack_sbuffer_clear(&sb);
	must(proto_pack_request_head(&pk, 42, "add_message"));
	must(msgpack_pack_array(&pk, 1));
	must(msgpack_pack_map(&pk, 4));
	must(proto_pack_cstr(&pk, "content"));
	must(proto_pack_cstr(&pk, "Hi there"));
	must(proto_pack_cstr(&pk, "role"));
	must(proto_pack_cstr(&pk, "user"));
	must(proto_pack_cstr(&pk, "provider"));
	must(proto_pack_cstr(&pk, "gemini"));
	must(proto_pack_cstr(&pk, "user_id"));
	must(proto_pack_cstr(&pk, "U9"));
	ok(proto_decode((const uint8_t *)sb.data, sb.size, &PLIM, &doc,
			&used) == PROTO_OK &&
	   proto_parse_envelope(&doc, &msg, eerr, sizeof(eerr)) == 0,
	   "request envelope");
	spec = method_find(msg.method.p, msg.method.len);
	ok(spec == &method_table[METHOD_ADD_MESSAGE], "method found");
	if (!spec)
		return;
	ok(validate_params(spec, &doc, msg.params, &VLIM, &args, err,
			   sizeof(err)) == 0 &&
	   args.v[0].s.len == 2 && memcmp(args.v[0].s.p, "U9", 2) == 0 &&
	   args.v[1].s.len == 6 && args.v[2].s.len == 4 &&
	   args.v[3].s.len == 8 && memcmp(args.v[3].s.p, "Hi there", 8) == 0 &&
	   args.v[4].s.len == 4,
	   "named params in any order land in spec order");
}

int main(void)
{
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	test_table();
	test_valid();
	test_defaults();
	test_rules();
	test_structure();
	test_in_envelope();
	is_int(pack_failures, 0, "no packing failed along the way");

	msgpack_sbuffer_destroy(&sb);
	return tap_done();
}
