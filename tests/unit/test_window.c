/*
 * test_window.c - get_context's window (window.c) and the msgpack reader
 * it uses (mpread.c): every tool-exchange shape of issue 18 in the
 * Anthropic, OpenAI Chat and OpenAI Responses formats, budgets that cut
 * exchanges, include_system, rows fed page by page, hostile content.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "mpread.h"
#include "tap.h"
#include "window.h"

/* ---- a conversation, oldest first ----------------------------------------- */

#define MAXROWS 4096

struct conv {
	struct window_row rows[MAXROWS];
	char label[MAXROWS];		/* one letter per row, for messages */
	msgpack_sbuffer bufs[MAXROWS];
	int n;
};

static struct conv *conv_new(void)
{
	return calloc(1, sizeof(struct conv));
}

static void conv_free(struct conv *c)
{
	for (int i = 0; i < c->n; i++)
		msgpack_sbuffer_destroy(&c->bufs[i]);
	free(c);
}

static struct window_row *add(struct conv *c, char label, const char *role,
			      const char *text, int64_t tokens)
{
	struct window_row *r = &c->rows[c->n];

	msgpack_sbuffer_init(&c->bufs[c->n]);
	c->label[c->n] = label;
	r->role.p = role;
	r->role.len = strlen(role);
	r->content.p = text;
	r->content.len = strlen(text);
	r->tokens = tokens;
	r->bytes = 100;
	c->n++;
	return r;
}

/* The row's structured content is what pk packed into its buffer. */
static msgpack_packer *packer(struct conv *c, msgpack_packer *pk)
{
	msgpack_packer_init(pk, &c->bufs[c->n - 1], msgpack_sbuffer_write);
	return pk;
}

static void seal(struct conv *c)
{
	struct window_row *r = &c->rows[c->n - 1];

	r->content_mp.p = c->bufs[c->n - 1].data;
	r->content_mp.len = c->bufs[c->n - 1].size;
}

static void s(msgpack_packer *pk, const char *str)
{
	size_t n = strlen(str);

	if (msgpack_pack_str(pk, n) < 0 || msgpack_pack_str_body(pk, str, n) < 0)
		abort();
}

/* OpenAI Chat: an assistant message with tool_calls. */
static void openai_call(struct conv *c, char label, int64_t tokens, int n,
			const char *const ids[])
{
	msgpack_packer pk;

	add(c, label, "assistant", "", tokens);
	packer(c, &pk);
	msgpack_pack_map(&pk, 2);
	s(&pk, "content");
	msgpack_pack_nil(&pk);
	s(&pk, "tool_calls");
	msgpack_pack_array(&pk, (size_t)n);
	for (int i = 0; i < n; i++) {
		msgpack_pack_map(&pk, 3);
		s(&pk, "id");
		s(&pk, ids[i]);
		s(&pk, "type");
		s(&pk, "function");
		s(&pk, "function");
		msgpack_pack_map(&pk, 2);
		s(&pk, "name");
		s(&pk, "get_weather");
		s(&pk, "arguments");
		s(&pk, "{\"city\":\"Taipei\"}");
	}
	seal(c);
}

/* OpenAI Chat: a tool message answering by tool_call_id. */
static void openai_result(struct conv *c, char label, int64_t tokens,
			  const char *id)
{
	struct window_row *r = add(c, label, "tool", "晴天 28°C", tokens);

	r->tool_call_id.p = id;
	r->tool_call_id.len = strlen(id);
}

/* Anthropic: text then tool_use blocks. */
static void anthropic_call(struct conv *c, char label, int64_t tokens, int n,
			   const char *const ids[])
{
	msgpack_packer pk;

	add(c, label, "assistant", "Let me check.", tokens);
	packer(c, &pk);
	msgpack_pack_array(&pk, (size_t)n + 1);
	msgpack_pack_map(&pk, 2);
	s(&pk, "type");
	s(&pk, "text");
	s(&pk, "text");
	s(&pk, "Let me check.");
	for (int i = 0; i < n; i++) {
		msgpack_pack_map(&pk, 4);
		s(&pk, "type");
		s(&pk, "tool_use");
		s(&pk, "id");
		s(&pk, ids[i]);
		s(&pk, "name");
		s(&pk, "search");
		s(&pk, "input");
		msgpack_pack_map(&pk, 1);
		s(&pk, "q");
		s(&pk, "高鐵 時刻表");
	}
	seal(c);
}

/* Anthropic: a user message of tool_result blocks (keys in an order of
 * their own: the id before the type). */
static void anthropic_results(struct conv *c, char label, int64_t tokens,
			      int n, const char *const ids[])
{
	msgpack_packer pk;

	add(c, label, "user", "", tokens);
	packer(c, &pk);
	msgpack_pack_array(&pk, (size_t)n);
	for (int i = 0; i < n; i++) {
		msgpack_pack_map(&pk, 3);
		s(&pk, "tool_use_id");
		s(&pk, ids[i]);
		s(&pk, "type");
		s(&pk, "tool_result");
		s(&pk, "content");
		msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, 2);
		s(&pk, "type");
		s(&pk, "text");
		s(&pk, "text");
		s(&pk, "08:00 台北 → 左營");
	}
	seal(c);
}

/* OpenAI Responses: items function_call / function_call_output. */
static void responses_item(struct conv *c, char label, int64_t tokens,
			   const char *type, const char *id)
{
	msgpack_packer pk;

	add(c, label, strcmp(type, "function_call") ? "tool" : "assistant", "",
	    tokens);
	packer(c, &pk);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 3);
	s(&pk, "type");
	s(&pk, type);
	s(&pk, "call_id");
	s(&pk, id);
	s(&pk, strcmp(type, "function_call") ? "output" : "arguments");
	s(&pk, "{}");
	seal(c);
}

/* ---- running a window ----------------------------------------------------- */

struct result {
	char labels[MAXROWS + 1];	/* the window, oldest first */
	int64_t total;
	bool truncated;
	int feeds;			/* rows fed before DONE */
};

/*
 * Feeds the conversation newest first in pages of `page` rows; system
 * rows (include_system) go to window_add_system first and are skipped by
 * the walk, as convd's queries do.
 */
static size_t run_max_bytes;	/* window_init's max_bytes for run() */

static struct result run(const struct conv *c, int64_t max_tokens,
			 uint32_t max_messages, bool include_system, int page)
{
	struct window w;
	struct result res = {0};
	int walk[MAXROWS], nwalk = 0, sys[MAXROWS], nsys = 0, k = 0;
	enum window_next st = WINDOW_MORE;

	for (int i = c->n - 1; i >= 0; i--) {
		bool is_sys = include_system &&
			      (strcmp(c->rows[i].role.p, "system") == 0 ||
			       strcmp(c->rows[i].role.p, "developer") == 0);

		if (is_sys)
			sys[nsys++] = i;
		else
			walk[nwalk++] = i;
	}
	window_init(&w, max_tokens, max_messages, run_max_bytes);
	for (int i = 0; i < nsys; i++)
		window_add_system(&w, &c->rows[sys[i]]);
	while (st == WINDOW_MORE) {
		int end = k + page;

		for (; k < end && k < nwalk && st == WINDOW_MORE; k++) {
			st = window_feed(&w, &c->rows[walk[k]]);
			res.feeds++;
		}
		if (st == WINDOW_MORE && k >= nwalk)
			break;
	}
	if (st == WINDOW_MORE)
		window_end(&w);
	if (st == WINDOW_ERROR)
		abort();
	{
		int o = 0;

		for (int i = (int)w.system - 1; i >= 0; i--)
			res.labels[o++] = c->label[sys[i]];
		for (int i = (int)w.take - 1; i >= 0; i--)
			res.labels[o++] = c->label[walk[i]];
		res.labels[o] = '\0';
	}
	res.total = w.total;
	res.truncated = w.truncated;
	window_cleanup(&w);
	return res;
}

static void expect(const struct conv *c, int64_t max_tokens,
		   uint32_t max_messages, bool include_system,
		   const char *want, int64_t total, bool truncated,
		   const char *what)
{
	static const int pages[] = {1, 2, 3, 1000};

	for (size_t p = 0; p < ARRAY_LEN(pages); p++) {
		struct result r = run(c, max_tokens, max_messages,
				      include_system, pages[p]);

		is_str(r.labels, want, "%s (budget %lld, pages of %d)", what,
		       (long long)max_tokens, pages[p]);
		is_int(r.total, total, "%s: total_tokens", what);
		is_int(r.truncated, truncated, "%s: truncated", what);
	}
}

/* ---- the shapes ------------------------------------------------------------ */

static void test_plain(void)
{
	struct conv *c = conv_new();

	add(c, 'a', "user", "Hi", 10);
	add(c, 'b', "assistant", "Hello", 20);
	add(c, 'c', "user", "Weather?", 30);
	add(c, 'd', "assistant", "Sunny", 40);
	expect(c, 1000, 1000, false, "abcd", 100, false, "everything fits");
	expect(c, 100, 1000, false, "abcd", 100, false, "exactly the budget");
	expect(c, 99, 1000, false, "bcd", 90, true, "one token short");
	expect(c, 70, 1000, false, "cd", 70, true, "the newest two");
	expect(c, 39, 1000, false, "", 0, true,
	       "a budget smaller than the newest message");
	expect(c, 1000, 2, false, "cd", 70, true, "max_messages");
	expect(c, 1000, 4, false, "abcd", 100, false, "max_messages = all");
	conv_free(c);
}

/* The answer's size bounds the window as the budget does. */
static void test_max_bytes(void)
{
	struct conv *c = conv_new();
	static const char *const ids[] = {"call_1"};

	add(c, 'a', "user", "Hi", 1);
	openai_call(c, 'x', 1, 1, ids);
	openai_result(c, 'r', 1, "call_1");
	add(c, 'z', "assistant", "done", 1);
	run_max_bytes = 400;
	expect(c, 1000, 1000, false, "axrz", 4, false, "400 bytes: all");
	run_max_bytes = 399;
	expect(c, 1000, 1000, false, "xrz", 3, true, "399 bytes");
	run_max_bytes = 299;
	expect(c, 1000, 1000, false, "z", 1, true,
	       "the exchange whole or not at all, by bytes too");
	run_max_bytes = 99;
	expect(c, 1000, 1000, false, "", 0, true, "the newest is too large");
	run_max_bytes = 0;
	conv_free(c);
}

static void test_empty(void)
{
	struct conv *c = conv_new();

	expect(c, 100, 10, false, "", 0, false, "an empty conversation");
	expect(c, 100, 10, true, "", 0, false, "empty, include_system");
	conv_free(c);
}

/* OpenAI Chat: one assistant message with three calls, results out of
 * order, then the answer. */
static void test_openai_chat(void)
{
	static const char *const ids[] = {"call_A", "call_B", "call_C"};
	struct conv *c = conv_new();

	add(c, 'q', "user", "Weather in three cities?", 10);
	openai_call(c, 'x', 20, 3, ids);
	openai_result(c, 'B', 5, "call_B");
	openai_result(c, 'C', 5, "call_C");
	openai_result(c, 'A', 5, "call_A");
	add(c, 'z', "assistant", "All sunny.", 10);
	expect(c, 1000, 1000, false, "qxBCAz", 55, false, "whole");
	expect(c, 45, 1000, false, "xBCAz", 45, true,
	       "the exchange whole, without the question");
	expect(c, 44, 1000, false, "z", 10, true,
	       "one token short of the exchange: only the answer");
	expect(c, 25, 1000, false, "z", 10, true,
	       "the results fit, their call does not");
	expect(c, 1000, 4, false, "z", 10, true,
	       "max_messages cuts the exchange");
	expect(c, 1000, 5, false, "xBCAz", 45, true,
	       "max_messages fits the exchange");
	expect(c, 1000, 6, false, "qxBCAz", 55, false,
	       "max_messages fits all");
	conv_free(c);
}

/* Anthropic: tool_use blocks in the assistant message, tool_result blocks
 * in the next user message, in another order. */
static void test_anthropic(void)
{
	static const char *const calls[] = {"toolu_01", "toolu_02"};
	static const char *const answers[] = {"toolu_02", "toolu_01"};
	struct conv *c = conv_new();

	add(c, 'q', "user", "Trains to Kaohsiung?", 10);
	anthropic_call(c, 'x', 30, 2, calls);
	anthropic_results(c, 'r', 40, 2, answers);
	add(c, 'z', "assistant", "The 08:00.", 10);
	add(c, 'u', "user", "Thanks", 5);
	expect(c, 1000, 1000, false, "qxrzu", 95, false, "whole");
	expect(c, 85, 1000, false, "xrzu", 85, true, "from the call");
	expect(c, 84, 1000, false, "zu", 15, true,
	       "an exchange larger than the budget is left out whole");
	conv_free(c);
}

/* Several calls in one message answered by several messages, one of the
 * results missing: the call may not begin the window. */
static void test_missing_result(void)
{
	static const char *const ids[] = {"toolu_01", "toolu_02"};
	static const char *const one[] = {"toolu_01"};
	struct conv *c = conv_new();

	add(c, 'q', "user", "Two lookups", 10);
	anthropic_call(c, 'x', 30, 2, ids);
	anthropic_results(c, 'r', 40, 1, one);	/* toolu_02 never answered */
	add(c, 'z', "assistant", "Only one worked.", 10);
	expect(c, 1000, 1000, false, "qxrz", 90, false,
	       "a call with a missing result inside the window");
	expect(c, 80, 1000, false, "z", 10, true,
	       "never begins with a call whose results are missing");
	conv_free(c);
}

/* The newest message is a call whose results are not stored yet. */
static void test_pending_call(void)
{
	static const char *const ids[] = {"call_1"};
	struct conv *c = conv_new();

	add(c, 'q', "user", "Book it", 10);
	openai_call(c, 'x', 20, 1, ids);
	expect(c, 1000, 1000, false, "qx", 30, false, "pending call, whole");
	expect(c, 25, 1000, false, "", 0, true,
	       "a pending call alone is no window");
	conv_free(c);
}

/* The newest message is a tool result: the bot asks for the context to
 * send the results to the model. */
static void test_newest_result(void)
{
	static const char *const ids[] = {"call_1"};
	struct conv *c = conv_new();

	add(c, 'q', "user", "Book it", 10);
	openai_call(c, 'x', 20, 1, ids);
	openai_result(c, 'r', 30, "call_1");
	expect(c, 1000, 1000, false, "qxr", 60, false, "whole");
	expect(c, 50, 1000, false, "xr", 50, true, "the exchange alone");
	expect(c, 49, 1000, false, "", 0, true,
	       "never begins with a tool result");
	conv_free(c);
}

/* A result whose call was deleted: only the newer messages. */
static void test_orphan_result(void)
{
	struct conv *c = conv_new();

	add(c, 'a', "user", "old", 1);
	add(c, 'b', "assistant", "old", 1);
	openai_result(c, 'r', 1, "call_gone");
	add(c, 'q', "user", "new", 1);
	add(c, 'z', "assistant", "new", 1);
	expect(c, 1000, 1000, false, "qz", 2, true,
	       "a result without its call ends the window");
	conv_free(c);
}

/* A tool message without any id is still a tool result. */
static void test_tool_role(void)
{
	struct conv *c = conv_new();

	add(c, 'q', "user", "q", 1);
	add(c, 't', "tool", "output", 1);
	add(c, 'z', "assistant", "a", 1);
	expect(c, 1000, 1000, false, "qtz", 3, false, "whole");
	expect(c, 2, 1000, false, "z", 1, true,
	       "never begins with a tool message");
	conv_free(c);
}

/* OpenAI Responses items. */
static void test_responses(void)
{
	struct conv *c = conv_new();

	add(c, 'q', "user", "Weather?", 10);
	responses_item(c, 'x', 10, "function_call", "fc_1");
	responses_item(c, 'y', 10, "function_call", "fc_2");
	responses_item(c, 'Y', 10, "function_call_output", "fc_2");
	responses_item(c, 'X', 10, "function_call_output", "fc_1");
	add(c, 'z', "assistant", "Sunny.", 10);
	expect(c, 1000, 1000, false, "qxyYXz", 60, false, "whole");
	expect(c, 50, 1000, false, "xyYXz", 50, true, "both calls");
	expect(c, 49, 1000, false, "z", 10, true,
	       "not from the second call: the first's result is newer");
	conv_free(c);
}

/* One message holding a call and its output (a Responses item list
 * stored whole) is an exchange by itself. */
static void test_self_contained(void)
{
	struct conv *c = conv_new();
	msgpack_packer pk;

	add(c, 'q', "user", "q", 10);
	add(c, 'x', "assistant", "", 10);
	packer(c, &pk);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, 2);
	s(&pk, "type");
	s(&pk, "function_call_output");
	s(&pk, "call_id");
	s(&pk, "fc_9");
	msgpack_pack_map(&pk, 2);
	s(&pk, "call_id");
	s(&pk, "fc_9");
	s(&pk, "type");
	s(&pk, "function_call");
	seal(c);
	expect(c, 10, 1000, false, "x", 10, true,
	       "a message that answers its own call may begin the window");
	conv_free(c);
}

/* include_system: the system and developer messages come first and
 * count against the budget. */
static void test_system(void)
{
	struct conv *c = conv_new();

	add(c, 's', "system", "You are a helpful bot.", 10);
	add(c, 'a', "user", "Hi", 10);
	add(c, 'b', "assistant", "Hello", 10);
	add(c, 'd', "developer", "Answer in Traditional Chinese.", 5);
	add(c, 'c', "user", "你好", 10);
	add(c, 'e', "assistant", "您好", 10);
	expect(c, 1000, 1000, true, "sdabce", 55, false, "all of it");
	expect(c, 35, 1000, true, "sdce", 35, true,
	       "the system messages first, then the newest");
	expect(c, 15, 1000, true, "sd", 15, true,
	       "only the system messages fit");
	expect(c, 14, 1000, true, "d", 5, true,
	       "the newest system message that fits");
	expect(c, 4, 1000, true, "", 0, true, "no system message fits");
	expect(c, 1000, 3, true, "sde", 25, true,
	       "max_messages counts the system messages");
	expect(c, 35, 1000, false, "bdce", 35, true,
	       "without include_system they are messages like the others");
	conv_free(c);
}

/* Stored tokens win; without them the estimate. */
static void test_estimate(void)
{
	struct conv *c = conv_new();

	add(c, 'a', "user", "今天天氣很好。", -1);		/* 4 + 7 */
	add(c, 'b', "assistant", "Hello, how are you today?", -1);	/* 4+7 */
	add(c, 'c', "user", "x", 0);
	expect(c, 1000, 1000, false, "abc", 22, false, "estimates");
	expect(c, 21, 1000, false, "bc", 11, true, "estimate of Chinese");
	is_int(window_row_tokens(&c->rows[2]), 0, "stored 0 is 0");
	conv_free(c);
}

/* A thousand calls in one message, answered one message each, in reverse
 * order: the id set grows and shrinks. */
static void test_many_calls(void)
{
	struct conv *c = conv_new();
	static char idbuf[1000][16];
	const char *ids[1000];

	for (int i = 0; i < 1000; i++) {
		snprintf(idbuf[i], sizeof(idbuf[i]), "call_%d", i);
		ids[i] = idbuf[i];
	}
	add(c, 'q', "user", "q", 1);
	openai_call(c, 'x', 1, 1000, ids);
	for (int i = 999; i >= 0; i--)
		openai_result(c, 'r', 1, ids[i]);
	add(c, 'z', "assistant", "done", 1);
	{
		struct result r = run(c, 100000, 10000, false, 100);

		is_int((long long)strlen(r.labels), 1003, "all 1003 rows");
		is_int(r.truncated, 0, "not truncated");
		r = run(c, 1002, 10000, false, 7);
		is_int((long long)strlen(r.labels), 1002,
		       "the exchange whole without the question");
		r = run(c, 1001, 10000, false, 7);
		is_str(r.labels, "z", "one result short: only the answer");
		is_int(r.feeds, 1002, "the walk stops at the budget");
	}
	conv_free(c);
}

/* ---- the ids of each shape, and hostile content ---------------------------- */

struct ids {
	char text[512];
};

static void collect(void *arg, bool call, struct strview id)
{
	struct ids *x = arg;
	size_t n = strlen(x->text);

	snprintf(x->text + n, sizeof(x->text) - n, "%s%s%.*s",
		 n ? " " : "", call ? "call:" : "answer:", (int)id.len, id.p);
}

static const char *ids_of(const struct window_row *r, struct ids *x)
{
	x->text[0] = '\0';
	window_scan_ids(r, collect, x);
	return x->text;
}

static void test_scan(void)
{
	static const char *const two[] = {"A1", "B2"};
	struct conv *c = conv_new();
	struct ids x;
	msgpack_packer pk;

	openai_call(c, 'x', 1, 2, two);
	is_str(ids_of(&c->rows[0], &x), "call:A1 call:B2", "OpenAI Chat");
	openai_result(c, 'r', 1, "A1");
	is_str(ids_of(&c->rows[1], &x), "answer:A1", "tool_call_id");
	anthropic_call(c, 'x', 1, 2, two);
	is_str(ids_of(&c->rows[2], &x), "call:A1 call:B2", "Anthropic");
	anthropic_results(c, 'r', 1, 2, two);
	is_str(ids_of(&c->rows[3], &x), "answer:A1 answer:B2",
	       "Anthropic results");
	responses_item(c, 'x', 1, "function_call", "fc");
	is_str(ids_of(&c->rows[4], &x), "call:fc", "function_call");
	responses_item(c, 'x', 1, "function_call_output", "fc");
	is_str(ids_of(&c->rows[5], &x), "answer:fc", "function_call_output");

	/* server tools: the call and its result in one message */
	add(c, 'x', "assistant", "", 1);
	packer(c, &pk);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, 2);
	s(&pk, "type");
	s(&pk, "server_tool_use");
	s(&pk, "id");
	s(&pk, "srvtoolu_1");
	msgpack_pack_map(&pk, 2);
	s(&pk, "type");
	s(&pk, "web_search_tool_result");
	s(&pk, "tool_use_id");
	s(&pk, "srvtoolu_1");
	seal(c);
	is_str(ids_of(&c->rows[6], &x), "call:srvtoolu_1 answer:srvtoolu_1",
	       "server_tool_use and its web_search_tool_result");

	/* look-alikes that are not calls */
	add(c, 'x', "assistant", "", 1);
	packer(c, &pk);
	msgpack_pack_map(&pk, 5);
	s(&pk, "id");
	s(&pk, "msg_1");		/* a message id, not a call */
	s(&pk, "type");
	s(&pk, "message");
	s(&pk, "tool_calls");
	s(&pk, "not an array");
	s(&pk, "call_id");
	msgpack_pack_int(&pk, 7);	/* not a str */
	s(&pk, "nested");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 2);
	s(&pk, "type");
	s(&pk, "tool_use");
	s(&pk, "id");
	msgpack_pack_bin(&pk, 2);	/* bin is not an id */
	msgpack_pack_bin_body(&pk, "ab", 2);
	seal(c);
	is_str(ids_of(&c->rows[7], &x), "", "no ids in look-alikes");

	/* a deep tool_use is found; non-str keys are walked past */
	add(c, 'x', "assistant", "", 1);
	packer(c, &pk);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_array(&pk, 0);
	s(&pk, "a");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 2);
	s(&pk, "id");
	s(&pk, "deep");
	s(&pk, "type");
	s(&pk, "tool_use");
	seal(c);
	is_str(ids_of(&c->rows[8], &x), "call:deep", "nested call");
	conv_free(c);
}

/* Bytes that are not msgpack, truncated, nested too deep, or with lengths
 * that lie: no crash, and the ids before the bad byte. */
static void test_hostile(void)
{
	static const uint8_t bad[][12] = {
		{0xc1},
		{0x92, 0x81, 0xa4, 't', 'y', 'p', 'e'},	/* truncated */
		{0xdd, 0xff, 0xff, 0xff, 0xff},		/* 4G elements */
		{0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'},	/* 2 GB string */
		{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01},	/* 4 GB ext */
	};
	uint8_t deep[300];
	struct window_row r = {.role = {"assistant", 9}, .tokens = 1};
	struct ids x;
	struct mpread m;
	struct mpread_val v;

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		r.content_mp.p = (const char *)bad[i];
		r.content_mp.len = i == 0 ? 1 : i == 1 ? 7 : i == 2 ? 5 : 6;
		is_str(ids_of(&r, &x), "", "hostile content %zu: no ids", i);
	}
	memset(deep, 0x91, sizeof(deep));	/* [[[[...]]]] 300 deep */
	deep[sizeof(deep) - 1] = 0xc0;
	r.content_mp.p = (const char *)deep;
	r.content_mp.len = sizeof(deep);
	is_str(ids_of(&r, &x), "", "300 levels deep: stops, no crash");
	mpread_init(&m, deep, sizeof(deep));
	ok(mpread_next(&m, &v) == 0 && mpread_skip(&m, &v) < 0,
	   "mpread_skip refuses nesting beyond MPREAD_MAX_DEPTH");
	mpread_init(&m, deep + 200, 100);
	ok(mpread_next(&m, &v) == 0 && mpread_skip(&m, &v) == 0 &&
	   m.p == m.end, "mpread_skip walks 100 levels to the end");
	mpread_init(&m, bad[2], 5);
	ok(mpread_next(&m, &v) < 0, "a count beyond the bytes is refused");
	mpread_init(&m, "", 0);
	ok(mpread_next(&m, &v) < 0, "nothing to read");
}

static void test_mpread_types(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct mpread m;
	struct mpread_val v;
	static const enum mpread_type want[] = {
		MPR_ARRAY, MPR_NIL, MPR_BOOL, MPR_INT, MPR_INT, MPR_INT,
		MPR_INT, MPR_FLOAT, MPR_FLOAT, MPR_STR, MPR_BIN, MPR_EXT,
		MPR_MAP, MPR_STR, MPR_STR,
	};
	char big[300];
	int i = 0;

	memset(big, 'x', sizeof(big));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 12);
	msgpack_pack_nil(&pk);
	msgpack_pack_true(&pk);
	msgpack_pack_int(&pk, -1);
	msgpack_pack_int64(&pk, -5000000000LL);
	msgpack_pack_uint64(&pk, 18000000000000000000ULL);
	msgpack_pack_int(&pk, 300);
	msgpack_pack_float(&pk, 1.5f);
	msgpack_pack_double(&pk, 2.5);
	msgpack_pack_str(&pk, sizeof(big));
	msgpack_pack_str_body(&pk, big, sizeof(big));
	msgpack_pack_bin(&pk, 3);
	msgpack_pack_bin_body(&pk, "abc", 3);
	msgpack_pack_ext(&pk, 12, -1);
	msgpack_pack_ext_body(&pk, "123456789012", 12);
	msgpack_pack_map(&pk, 1);
	s(&pk, "k");
	s(&pk, "v");
	mpread_init(&m, sb.data, sb.size);
	while (m.p < m.end && mpread_next(&m, &v) == 0 &&
	       i < (int)ARRAY_LEN(want)) {
		is_int(v.type, want[i], "value %d: type", i);
		if (v.type == MPR_STR && i == 9)
			is_int(v.s.len, sizeof(big), "str 16 length");
		if (v.type == MPR_EXT)
			is_int(v.s.len, 12, "ext payload");
		i++;
	}
	is_int(i, (int)ARRAY_LEN(want), "every value read");
	ok(m.p == m.end, "to the last byte");
	msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
	test_plain();
	test_empty();
	test_max_bytes();
	test_openai_chat();
	test_anthropic();
	test_missing_result();
	test_pending_call();
	test_newest_result();
	test_orphan_result();
	test_tool_role();
	test_responses();
	test_self_contained();
	test_system();
	test_estimate();
	test_many_calls();
	test_scan();
	test_hostile();
	test_mpread_types();
	return tap_done();
}
