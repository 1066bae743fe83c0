/*
 * test_store.c - the store's argument mapping (store_build): for every
 * method, the statement a request maps to and its parameters in the
 * statement's order (strings as text, SQL NULL for an absent optional,
 * integers as binary int8 of the right value), that each statement is in
 * the statement table with as many parameters as its SQL has, and the
 * batch statements' columns.  The requests are made as the server makes
 * them: packed params, decoded, validated, copied by request_new (the
 * message buffer is wiped before the mapping reads them), and ended
 * through the request layer's operations.
 *
 * And the batch encoder (pgval_encode_arrays) with the store's batch
 * columns: PostgreSQL's binary array layout, NULLs for absent keys, the
 * turn limit as int8, a batch cut at n requests.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "request.h"
#include "store.h"
#include "tap.h"

struct clock_cache clock_cache;

static const struct proto_limits PLIM = {
	.max_frame = 1 << 20,
	.max_depth = PROTO_DEFAULT_DEPTH,
	.max_nodes = PROTO_MAX_NODES,
	.max_container = PROTO_DEFAULT_CONTAINER,
};

static int ended;

static void test_done(struct request *r)
{
	(void)r;
	ended++;
}

static void test_broken(struct request *r)
{
	(void)r;
}

static const struct request_ops test_ops = {
	.done = test_done,
	.broken = test_broken,
};

/* One named argument: a string, or an integer when s is NULL. */
struct arg {
	const char *name;
	const char *s;
	int64_t i;
};

/* A request of method m with the named arguments, as the server makes
 * it; NULL if they do not validate. */
static struct request *make(enum method_id m, const struct arg *a, int n)
{
	static struct proto_doc doc;
	const struct method_spec *spec = &method_table[m];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct validate_args args;
	struct request *r = NULL;
	char err[256];
	size_t used;
	int bad = 0;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	bad |= msgpack_pack_map(&pk, (size_t)n);
	for (int k = 0; k < n; k++) {
		bad |= proto_pack_cstr(&pk, a[k].name);
		bad |= a[k].s ? proto_pack_cstr(&pk, a[k].s) :
				msgpack_pack_int64(&pk, a[k].i);
	}
	if (!bad &&
	    proto_decode((const uint8_t *)sb.data, sb.size, &PLIM, &doc,
			 &used) == PROTO_OK &&
	    validate_params(spec, &doc, 0, NULL, &args, err, sizeof(err)) == 0)
		r = request_new(NULL, 7, spec, &args, clock_now());
	else
		printf("# %s: %s\n", spec->name, bad ? "cannot pack" : err);
	/* the request must hold copies: the message's buffer goes */
	memset(sb.data, 'X', sb.size);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

static const struct pool_statement *find_stmt(const char *name)
{
	for (size_t i = 0; i < store_nstatements; i++)
		if (strcmp(store_statements[i].name, name) == 0)
			return &store_statements[i];
	return NULL;
}

/* The highest $N in sql: the parameters the statement takes. */
static int sql_params(const char *sql)
{
	int max = 0;

	for (const char *p = sql; (p = strchr(p, '$')); p++) {
		int n = atoi(p + 1);

		if (n > max)
			max = n;
	}
	return max;
}

/* The expected parameter k: text (s), NULL (s NULL, int8 false), or a
 * binary bigint. */
struct want {
	const char *s;
	bool int8;
	int64_t i;
};

#define TXT(x) ((struct want){.s = (x)})
#define NUL ((struct want){0})
#define I8(x) ((struct want){.int8 = true, .i = (x)})

static void check(const char *what, enum method_id m, const struct arg *a,
		  int na, const char *stmt, const struct want *w, int nw)
{
	struct request *r = make(m, a, na);
	struct pgval_params p = {0};
	const struct query_def *def = NULL;
	const struct pool_statement *ps;

	if (!ok(r != NULL, "%s: a valid request", what))
		return;
	is_int(store_build(r, &p, &def), 0, "%s: mapped", what);
	if (!ok(def != NULL, "%s: has a statement", what)) {
		request_error(r, E_INTERNAL, "test");
		return;
	}
	is_str(def->stmt, stmt, "%s: statement", what);
	ps = find_stmt(def->stmt);
	ok(ps != NULL, "%s: %s is in store_statements", what, def->stmt);
	if (ps)
		is_int(sql_params(ps->sql), p.n,
		       "%s: as many parameters as the SQL has", what);
	is_int(p.n, nw, "%s: parameter count", what);
	for (int k = 0; k < nw && k < p.n; k++) {
		if (w[k].int8) {
			uint64_t be;

			memcpy(&be, p.values[k], 8);
			ok(p.formats[k] == 1 && p.lengths[k] == 8 &&
				   (int64_t)be64toh(be) == w[k].i,
			   "%s: $%d is the bigint %lld, in binary", what, k + 1,
			   (long long)w[k].i);
		} else if (!w[k].s) {
			ok(p.values[k] == NULL, "%s: $%d is NULL", what, k + 1);
		} else {
			ok(p.formats[k] == 0 && p.values[k] &&
				   strcmp(p.values[k], w[k].s) == 0,
			   "%s: $%d is '%s' as text", what, k + 1, w[k].s);
		}
	}
	request_error(r, E_INTERNAL, "test");
}

#define S(name, s) {(name), (s), 0}
#define I(name, i) {(name), NULL, (i)}
#define ARGS(...) ((const struct arg[]){__VA_ARGS__})
#define WANT(...) ((const struct want[]){__VA_ARGS__})
#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define CHECK(what, m, a, stmt, w) check(what, m, a, N(a), stmt, w, N(w))

static void batch_columns(const char *what, const struct batch_spec *b)
{
	const struct pool_statement *s = find_stmt(b->stmt);

	ok(s != NULL, "%s: %s is in store_statements", what, b->stmt);
	if (s)
		is_int(sql_params(s->sql),
		       b->key_arg >= 0 ? b->ncols - 1 : b->ncols,
		       "%s: one array per column", what);
	if (b->key_arg >= 0) {
		s = find_stmt(b->stmt_keys);
		ok(s != NULL, "%s: %s is in store_statements", what,
		   b->stmt_keys);
		if (s)
			is_int(sql_params(s->sql), b->ncols,
			       "%s: with the key column", what);
		is_int(b->cols[b->ncols - 1].arg, b->key_arg,
		       "%s: the key column is the last", what);
	}
	ok(b->single == store_build, "%s: retries alone with store_build",
	   what);
}

static uint32_t be32_at(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return be32toh(v);
}

/* Checks an array's header and returns a pointer to its first element. */
static const char *array_head(const char *what, const char *a, int nulls,
			      uint32_t oid, uint32_t n)
{
	ok(be32_at(a) == 1 && be32_at(a + 4) == (uint32_t)nulls &&
		   be32_at(a + 8) == oid && be32_at(a + 12) == n &&
		   be32_at(a + 16) == 1,
	   "%s: header (1 dimension, nulls %d, type %u, %u elements, from 1)",
	   what, nulls, oid, n);
	return a + PGVAL_ARRAY_HEADER;
}

/* Checks a text element and returns the next one. */
static const char *text_elem(const char *what, const char *e, const char *s)
{
	size_t len = strlen(s);

	ok(be32_at(e) == len && memcmp(e + 4, s, len) == 0,
	   "%s: element '%s'", what, s);
	return e + 4 + len;
}

static void batch_encoder(void)
{
	struct request *a[3];
	struct request_queue q;
	const char *vals[BATCH_MAX_COLS], *e;
	int lens[BATCH_MAX_COLS];
	char *buf = NULL;
	uint64_t v;

	a[0] = make(METHOD_ADD_MESSAGE,
		    ARGS(S("user_id", "U1"), S("provider", "openai"),
			 S("role", "user"), S("content", "hi")), 4);
	a[1] = make(METHOD_ADD_MESSAGE,
		    ARGS(S("user_id", "U22"), S("provider", "openai"),
			 S("role", "assistant"), S("content", "yo!"),
			 S("idempotency_key", "k")), 5);
	a[2] = make(METHOD_ADD_MESSAGE,
		    ARGS(S("user_id", "U1"), S("provider", "claude"),
			 S("role", "user"), S("content", "")), 4);
	if (!ok(a[0] && a[1] && !a[2], "three add_message requests (the "
					"third's empty content is refused)"))
		return;
	a[2] = make(METHOD_ADD_MESSAGE,
		    ARGS(S("user_id", "U1"), S("provider", "claude"),
			 S("role", "user"), S("content", "\xe4\xbd\xa0")), 4);
	TAILQ_INIT(&q);
	for (int i = 0; i < 3; i++)
		TAILQ_INSERT_TAIL(&q, a[i], link);

	is_int(pgval_encode_arrays(store_add_batch.cols, store_add_batch.ncols,
				   &q, 3, &buf, vals, lens),
	       0, "add batch: encoded");
	is_int(lens[0], PGVAL_ARRAY_HEADER + 6 + 7 + 6, "user_id[]: bytes");
	e = array_head("user_id[]", vals[0], 0, PGVAL_TEXT_OID, 3);
	e = text_elem("user_id[]", e, "U1");
	e = text_elem("user_id[]", e, "U22");
	e = text_elem("user_id[]", e, "U1");
	ok(e == vals[0] + lens[0], "user_id[]: nothing after the elements");
	e = array_head("platform[]", vals[1], 0, PGVAL_TEXT_OID, 3);
	e = text_elem("platform[] (the default)", e, "line");
	e = array_head("provider[]", vals[2], 0, PGVAL_TEXT_OID, 3);
	e = text_elem("provider[]", e, "openai");
	e = text_elem("provider[]", e, "openai");
	e = text_elem("provider[]", e, "claude");
	e = array_head("content[]", vals[4], 0, PGVAL_TEXT_OID, 3);
	e = text_elem("content[]", text_elem("content[]", e, "hi"), "yo!");
	e = text_elem("content[]", e, "\xe4\xbd\xa0");
	is_int(lens[5], PGVAL_ARRAY_HEADER + 4 + 5 + 4, "key[]: bytes");
	e = array_head("key[] (NULLs)", vals[5], 1, PGVAL_TEXT_OID, 3);
	ok(be32_at(e) == UINT32_MAX, "key[]: NULL without a key");
	e = text_elem("key[]", e + 4, "k");
	ok(be32_at(e) == UINT32_MAX, "key[]: NULL again");
	ok(vals[5] + lens[5] == buf + lens[0] + lens[1] + lens[2] + lens[3] +
					   lens[4] + lens[5],
	   "add batch: the arrays one after the other in one buffer");
	free(buf);

	is_int(pgval_encode_arrays(store_add_batch.cols, 2, &q, 2, &buf, vals,
				   lens),
	       0, "add batch of the first two: encoded");
	e = array_head("user_id[] of two", vals[0], 0, PGVAL_TEXT_OID, 2);
	ok(text_elem("user_id[] of two", text_elem("user_id[] of two", e,
						   "U1"),
		     "U22") == vals[0] + lens[0],
	   "user_id[] of two: two elements");
	free(buf);
	for (int i = 0; i < 3; i++) {
		TAILQ_REMOVE(&q, a[i], link);
		request_error(a[i], E_INTERNAL, "test");
	}

	a[0] = make(METHOD_GET_RECENT,
		    ARGS(S("user_id", "U3"), S("provider", "p"),
			 I("limit", 1000)), 3);
	if (!ok(a[0] != NULL, "a get_recent_conversations request"))
		return;
	TAILQ_INSERT_TAIL(&q, a[0], link);
	is_int(pgval_encode_arrays(store_recent_batch.cols,
				   store_recent_batch.ncols, &q, 1, &buf, vals,
				   lens),
	       0, "recent batch: encoded");
	e = array_head("limit[]", vals[3], 0, PGVAL_INT8_OID, 1);
	memcpy(&v, e + 4, 8);
	ok(be32_at(e) == 8 && be64toh(v) == 2000,
	   "limit[]: 1000 turns are 2000 rows, an 8-byte bigint");
	is_int(lens[3], PGVAL_ARRAY_HEADER + 12, "limit[]: bytes");
	free(buf);
	TAILQ_REMOVE(&q, a[0], link);
	request_error(a[0], E_INTERNAL, "test");
}

int main(void)
{
	struct request *r;
	struct pgval_params p = {0};
	const struct query_def *def = NULL;

	request_setup(&test_ops);
	request_set_max_output(1 << 20);

	CHECK("add_message", METHOD_ADD_MESSAGE,
	      ARGS(S("user_id", "U1"), S("provider", "openai"),
		   S("role", "user"), S("content", "hi")),
	      "convd_add",
	      WANT(TXT("U1"), TXT("line"), TXT("openai"), TXT("user"),
		   TXT("hi"), NUL, TXT(""), NUL, NUL, NUL, NUL, NUL, NUL));
	CHECK("add_message with key", METHOD_ADD_MESSAGE,
	      ARGS(S("user_id", "U1"), S("provider", "openai"),
		   S("role", "assistant"), S("content", "yo"),
		   S("platform", "slack"), S("idempotency_key", "k-1")),
	      "convd_add",
	      WANT(TXT("U1"), TXT("slack"), TXT("openai"), TXT("assistant"),
		   TXT("yo"), TXT("k-1"), TXT(""), NUL, NUL, NUL, NUL, NUL, NUL));
	/* issue 17: a conversation, a model and tokens */
	CHECK("add_message with the fields of issue 17", METHOD_ADD_MESSAGE,
	      ARGS(S("user_id", "U1"), S("provider", "openai"),
		   S("role", "tool"), S("content", "22 C"),
		   S("conversation_id", "conv_1"), S("tool_call_id", "call_9"),
		   S("model", "gpt"), I("tokens", 12)),
	      "convd_add",
	      WANT(TXT("U1"), TXT("line"), TXT("openai"), TXT("tool"),
		   TXT("22 C"), NUL, TXT("conv_1"), TXT("call_9"), NUL,
		   TXT("gpt"), I8(12), NUL, NUL));
	CHECK("get_recent_conversations: two rows a turn",
	      METHOD_GET_RECENT,
	      ARGS(S("user_id", "U2"), S("provider", "gemini"),
		   I("limit", 7)),
	      "convd_recent",
	      WANT(TXT("U2"), TXT("line"), TXT("gemini"), I8(14), TXT("")));
	CHECK("get_recent_conversations default limit", METHOD_GET_RECENT,
	      ARGS(S("user_id", "U2"), S("provider", "gemini")),
	      "convd_recent",
	      WANT(TXT("U2"), TXT("line"), TXT("gemini"), I8(20), TXT("")));
	CHECK("clear_user_history", METHOD_CLEAR_HISTORY,
	      ARGS(S("user_id", "U3"), S("provider", "p"),
		   S("platform", "web")),
	      "convd_clear", WANT(TXT("U3"), TXT("web"), TXT("p"), TXT("")));
	CHECK("get_conversation_count, all providers", METHOD_GET_COUNT,
	      ARGS(S("user_id", "U4")),
	      "convd_count_all", WANT(TXT("U4"), TXT("line"), TXT("")));
	CHECK("get_conversation_count, one provider", METHOD_GET_COUNT,
	      ARGS(S("user_id", "U4"), S("provider", "claude")),
	      "convd_count_provider",
	      WANT(TXT("U4"), TXT("line"), TXT("claude"), TXT("")));
	CHECK("get_user_statistics", METHOD_GET_USER_STATS,
	      ARGS(S("user_id", "U5"), S("platform", "x")),
	      "convd_user_stats", WANT(TXT("U5"), TXT("x")));
	CHECK("get_thread", METHOD_GET_THREAD, ARGS(S("user_id", "U6")),
	      "convd_thread_get", WANT(TXT("U6"), TXT("line")));
	CHECK("save_thread", METHOD_SAVE_THREAD,
	      ARGS(S("user_id", "U6"), S("thread_id", "th_1")),
	      "convd_thread_save",
	      WANT(TXT("U6"), TXT("line"), TXT("th_1")));
	CHECK("delete_thread", METHOD_DELETE_THREAD, ARGS(S("user_id", "U6")),
	      "convd_thread_delete", WANT(TXT("U6"), TXT("line")));
	CHECK("export_history, all providers", METHOD_EXPORT_HISTORY,
	      ARGS(S("user_id", "U7"), I("after_id", 9000000000LL),
		   I("limit", 5)),
	      "convd_export_all",
	      WANT(TXT("U7"), TXT("line"), I8(9000000000LL), I8(5), NUL));
	CHECK("export_history, one provider, defaults", METHOD_EXPORT_HISTORY,
	      ARGS(S("user_id", "U7"), S("provider", "openai")),
	      "convd_export_provider",
	      WANT(TXT("U7"), TXT("line"), TXT("openai"), I8(0), I8(1000),
		   NUL));
	CHECK("import_message", METHOD_IMPORT_MESSAGES,
	      ARGS(S("user_id", "U8"), S("provider", "openai"),
		   S("role", "system"), S("content", "c"),
		   I("created_at", 1764000000123456LL)),
	      "convd_import",
	      WANT(TXT("U8"), TXT("line"), TXT("openai"), TXT("system"),
		   TXT("c"), I8(1764000000123456LL), NUL, TXT(""), NUL, NUL, NUL, NUL, NUL, NUL));
	CHECK("import_message with key", METHOD_IMPORT_MESSAGES,
	      ARGS(S("user_id", "U8"), S("provider", "openai"),
		   S("role", "user"), S("content", "c"),
		   I("created_at", 0), S("platform", "line"),
		   S("idempotency_key", "imp-9")),
	      "convd_import",
	      WANT(TXT("U8"), TXT("line"), TXT("openai"), TXT("user"),
		   TXT("c"), I8(0), TXT("imp-9"), TXT(""), NUL, NUL, NUL, NUL, NUL, NUL));

	/* methods that are not the store's map to nothing */
	r = make(METHOD_PING, NULL, 0);
	if (ok(r != NULL, "ping: a valid request")) {
		is_int(store_build(r, &p, &def), -1, "ping: not a store method");
		request_error(r, E_INTERNAL, "test");
	}

	batch_columns("add_message batch", &store_add_batch);
	batch_columns("get_recent_conversations batch", &store_recent_batch);
	is_int(store_recent_batch.cols[3].int8_scale, 2,
	       "get_recent_conversations batch: the limit counts turns");

	batch_encoder();
	is_int(ended, 17 + 4, "every request ended through the ops");
	is_int(request_inflight(), 0, "none left in flight");
	request_cleanup();
	return tap_done();
}
