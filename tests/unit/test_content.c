/*
 * test_content.c - structured content and maps as bytes (content.c) and
 * their validation (validate.c's METHOD_PK_CONTENT given as an array or
 * map, METHOD_PK_MAP): the exact bytes of a value in a request (a raw
 * node, proto.h), its depth, its size, any number of values, and the text
 * of structured content.
 */
#include <stdlib.h>

#include "content.h"
#include "tap.h"
#include "validate.h"

static msgpack_sbuffer sb;
static msgpack_packer pk;
static int pack_failures;

static void must(int rc)
{
	if (rc != 0)
		pack_failures++;
}

static void s(const char *x)
{
	must(proto_pack_cstr(&pk, x));
}

static void reset(void)
{
	msgpack_sbuffer_clear(&sb);
}

static struct strview view(void)
{
	return (struct strview){ .p = sb.data, .len = sb.size };
}

/* An Anthropic assistant turn: thinking with a binary signature, text,
 * a tool call whose input holds a key "text" (a str, so it is text too). */
static void pack_anthropic(void)
{
	static const char sig[] = { 0x00, (char)0xff, 0x10, 0x00, 0x7f };

	must(msgpack_pack_array(&pk, 3));
	must(msgpack_pack_map(&pk, 3));
	s("type");
	s("thinking");
	s("thinking");
	s("Let me check the weather.");
	s("signature");
	must(msgpack_pack_bin_with_body(&pk, sig, sizeof(sig)));
	must(msgpack_pack_map(&pk, 2));
	s("type");
	s("text");
	s("text");
	s("\xe5\x8f\xb0\xe5\x8c\x97\xe7\x9a\x84\xe5\xa4\xa9\xe6\xb0\xa3");
	must(msgpack_pack_map(&pk, 4));
	s("type");
	s("tool_use");
	s("id");
	s("toolu_01");
	s("name");
	s("get_weather");
	s("input");
	must(msgpack_pack_map(&pk, 2));
	s("city");
	s("Taipei");
	s("text");
	s("nested");
}

static void test_text(void)
{
	char out[512];
	ssize_t n;

	reset();
	pack_anthropic();
	n = content_text(view(), out, sizeof(out));
	ok(n > 0 && (size_t)n <= sb.size, "text: no longer than the value");
	if (n >= 0)
		out[n] = '\0';
	is_str(n >= 0 ? out : NULL,
	       "\xe5\x8f\xb0\xe5\x8c\x97\xe7\x9a\x84\xe5\xa4\xa9\xe6\xb0\xa3"
	       "\nnested",
	       "text: every str under a key \"text\", in order, joined");

	/* OpenAI Chat: a tool result with content parts, and a "text" key
	 * whose value is a map (Responses' text format): looked into */
	reset();
	must(msgpack_pack_map(&pk, 3));
	s("tool_call_id");
	s("call_1");
	s("content");
	must(msgpack_pack_array(&pk, 2));
	must(msgpack_pack_map(&pk, 2));
	s("type");
	s("text");
	s("text");
	s("22 C");
	must(msgpack_pack_map(&pk, 1));
	s("text");			/* a bin: not text */
	must(msgpack_pack_bin_with_body(&pk, "bin", 3));
	s("text");
	must(msgpack_pack_map(&pk, 1));
	s("text");
	s("deep");
	n = content_text(view(), out, sizeof(out));
	if (n >= 0)
		out[n] = '\0';
	is_str(n >= 0 ? out : NULL, "22 C\ndeep", "text: nested, bin skipped");

	/* no text at all: '' */
	reset();
	must(msgpack_pack_array(&pk, 2));
	must(msgpack_pack_map(&pk, 2));
	s("type");
	s("image");
	s("data");
	must(msgpack_pack_bin_with_body(&pk, "\x89PNG", 4));
	s("text");			/* a str element, not under a key */
	is_int(content_text(view(), out, sizeof(out)), 0, "text: none -> ''");

	/* a text that PostgreSQL's text cannot hold is left out; a key
	 * "text" as a map key of a map key is not a key of the outer map */
	reset();
	must(msgpack_pack_map(&pk, 3));
	s("text");
	must(proto_pack_str(&pk, "a\0b", 3));
	s("x");
	s("text");
	s("text");
	must(proto_pack_str(&pk, "\xff\xfe", 2));
	is_int(content_text(view(), out, sizeof(out)), 0,
	       "text: NUL or invalid UTF-8 left out");

	/* too small a buffer, malformed bytes, trailing bytes */
	reset();
	pack_anthropic();
	ok(content_text(view(), out, 5) == -1, "text: buffer too small");
	ok(content_text((struct strview){ "\x92\xa1x", 3 }, out, sizeof(out))
		   == -1, "text: truncated");
	ok(content_text((struct strview){ "\x90\x90", 2 }, out, sizeof(out))
		   == -1, "text: trailing bytes");
	ok(content_text((struct strview){ "\xc1", 1 }, out, sizeof(out)) == -1,
	   "text: 0xc1");
}

static void test_depth(void)
{
	reset();
	for (int i = 0; i < CONTENT_MAX_DEPTH; i++)
		must(msgpack_pack_array(&pk, 1));
	s("x");
	is_int(content_depth(view(), CONTENT_MAX_DEPTH), CONTENT_MAX_DEPTH,
	       "depth: 64 nested arrays");
	reset();
	for (int i = 0; i < CONTENT_MAX_DEPTH; i++) {
		must(msgpack_pack_map(&pk, 1));
		s("k");
	}
	must(msgpack_pack_map(&pk, 0));
	is_int(content_depth(view(), CONTENT_MAX_DEPTH), -2,
	       "depth: 65 nested maps refused");
	is_int(content_depth((struct strview){ "\x90", 1 }, 64), 1,
	       "depth: [] is 1");
	is_int(content_depth((struct strview){ "\x05", 1 }, 64), 0,
	       "depth: a scalar is 0");
	is_int(content_depth((struct strview){ "\x92\x90\x91\x80", 4 }, 64), 3,
	       "depth: [[], [{}]] is 3");
	is_int(content_depth((struct strview){ "\x92\x90", 2 }, 64), -1,
	       "depth: truncated");
	is_int(content_depth((struct strview){ "\x90\x01", 2 }, 64), -1,
	       "depth: trailing byte");
}

/* Params decoded as the server decodes them inside its envelope: the
 * params (root here, so node_depth 1) and the named params' map are nodes,
 * a value that is an array or map one raw node. */
static const struct proto_limits PLIM = {
	.max_frame = 4 << 20, .max_depth = PROTO_MAX_DEPTH, .node_depth = 1,
	.max_nodes = PROTO_MAX_NODES, .max_container = PROTO_MAX_NODES };

static void test_span(void)
{
	static struct proto_doc doc;
	struct proto_limits l;
	size_t used;
	const struct proto_node *v;

	/* [0, 7, "m", [{"content": [1, {"a": b"\x00"}], "x": 2}]] */
	reset();
	must(msgpack_pack_array(&pk, 4));
	must(msgpack_pack_int(&pk, 0));
	must(msgpack_pack_int(&pk, 7));
	s("m");
	must(msgpack_pack_array(&pk, 1));
	must(msgpack_pack_map(&pk, 2));
	s("content");
	must(msgpack_pack_array(&pk, 2));
	must(msgpack_pack_int(&pk, 1));
	must(msgpack_pack_map(&pk, 1));
	s("a");
	must(msgpack_pack_bin_with_body(&pk, "\0", 1));
	s("x");
	must(msgpack_pack_int(&pk, 2));
	/* nodes: 0 root, 1 0, 2 7, 3 "m", 4 params, 5 map, 6 "content",
	 * 7 [...] (raw), 8 "x", 9 2 */
	proto_request_limits(&l, 1 << 20);
	if (!ok(proto_decode((const uint8_t *)sb.data, sb.size, &l, &doc,
			     &used) == PROTO_OK && doc.n == 10,
		"span: the request decodes into 10 nodes"))
		return;
	v = &doc.nodes[7];
	ok(v->raw && v->v.s.len == 8 &&
	   memcmp(v->v.s.p, "\x92\x01\x81\xa1" "a\xc4\x01\x00", 8) == 0,
	   "span: the content array's exact bytes");
	ok(v->depth == 2 && v->next == 8 && doc.nodes[9].v.i == 2,
	   "span: its depth, and the value after it");
	ok(doc.nodes[0].v.s.p == sb.data && doc.nodes[0].v.s.len == sb.size,
	   "span: the root");
}

/* Validation of add_message / set_state with structured values. */
static int run(const struct method_spec *spec, struct validate_args *a,
	       char *err, size_t errlen, const struct validate_limits *lim)
{
	static struct proto_doc doc;
	size_t used;

	if (proto_decode((const uint8_t *)sb.data, sb.size, &PLIM, &doc,
			 &used) != PROTO_OK || used != sb.size)
		return -2;
	return validate_params(spec, &doc, 0, lim, a, err, errlen);
}

static void test_validate(void)
{
	const struct method_spec *add = &method_table[METHOD_ADD_MESSAGE];
	const struct method_spec *set = &method_table[METHOD_SET_STATE];
	struct validate_limits lim = { .max_content = 1 << 20 };
	struct validate_args a;
	char err[256];
	msgpack_sbuffer part;
	msgpack_packer ppk;
	char *big;

	/* the content as its own bytes, to compare with */
	msgpack_sbuffer_init(&part);
	msgpack_packer_init(&ppk, &part, msgpack_sbuffer_write);
	reset();
	pack_anthropic();
	must(msgpack_sbuffer_write(&part, sb.data, sb.size));

	reset();
	must(msgpack_pack_array(&pk, 1));
	must(msgpack_pack_map(&pk, 5));
	s("user_id");
	s("U1");
	s("provider");
	s("anthropic");
	s("role");
	s("assistant");
	s("content");
	pack_anthropic();
	s("metadata");
	must(msgpack_pack_map(&pk, 1));
	s("trace");
	must(msgpack_pack_uint64(&pk, UINT64_MAX));
	ok(run(add, &a, err, sizeof(err), &lim) == 0 && a.v[3].raw &&
	   a.v[3].s.len == part.size &&
	   memcmp(a.v[3].s.p, part.data, part.size) == 0,
	   "add_message: structured content kept as its exact bytes (%s)",
	   err);
	ok(a.v[11].present && a.v[11].raw && a.v[11].s.len == 1 + 6 + 9 &&
	   (uint8_t)a.v[11].s.p[0] == 0x81, "add_message: metadata's bytes");
	ok(!a.v[6].present && !a.v[10].present,
	   "add_message: conversation_id, tokens absent");

	/* positional, the same content */
	reset();
	must(msgpack_pack_array(&pk, 4));
	s("U1");
	s("anthropic");
	s("assistant");
	pack_anthropic();
	ok(run(add, &a, err, sizeof(err), &lim) == 0 && a.v[3].raw &&
	   a.v[3].s.len == part.size &&
	   memcmp(a.v[3].s.p, part.data, part.size) == 0,
	   "add_message positional: the same bytes");

	/* a plain string stays a string */
	reset();
	must(msgpack_pack_array(&pk, 4));
	s("U1");
	s("anthropic");
	s("user");
	s("hi");
	ok(run(add, &a, err, sizeof(err), &lim) == 0 && !a.v[3].raw &&
	   a.v[3].s.len == 2, "add_message: a string is not raw");

	/* content's encoded size against max_content */
	lim.max_content = part.size;
	reset();
	must(msgpack_pack_array(&pk, 4));
	s("U1");
	s("anthropic");
	s("assistant");
	pack_anthropic();
	ok(run(add, &a, err, sizeof(err), &lim) == 0,
	   "content: at max_content bytes encoded");
	lim.max_content = part.size - 1;
	ok(run(add, &a, err, sizeof(err), &lim) == -1 &&
	   strstr(err, "content: ") == err && strstr(err, "more than"),
	   "content: one byte over: \"%s\"", err);
	lim.max_content = 1 << 20;

	/* depth: 64 levels of content accepted, 65 refused (and 1000: the
	 * decoder reads them, validation refuses them) */
	for (int d = CONTENT_MAX_DEPTH; d <= CONTENT_MAX_DEPTH + 1; d++) {
		reset();
		must(msgpack_pack_array(&pk, 4));
		s("U1");
		s("anthropic");
		s("assistant");
		for (int i = 0; i < d; i++)
			must(msgpack_pack_array(&pk, 1));
		s("x");
		if (d == CONTENT_MAX_DEPTH)
			ok(run(add, &a, err, sizeof(err), &lim) == 0,
			   "content: nested 64 deep");
		else
			ok(run(add, &a, err, sizeof(err), &lim) == -1 &&
			   strcmp(err, "content: nested more than 64 deep") ==
				   0,
			   "content: 65 deep: \"%s\"", err);
	}
	reset();
	must(msgpack_pack_array(&pk, 1));
	must(msgpack_pack_map(&pk, 4));
	s("user_id");
	s("U1");
	s("provider");
	s("p");
	s("role");
	s("user");
	s("content");
	for (int i = 0; i < 1000; i++) {
		must(msgpack_pack_map(&pk, 1));
		s("content");
	}
	s("x");
	ok(run(add, &a, err, sizeof(err), &lim) == -1 &&
	   strcmp(err, "content: nested more than 64 deep") == 0,
	   "content: 1000 maps deep, named: \"%s\"", err);

	/* metadata and state: 64 deep, 65 */
	for (int d = CONTENT_MAX_DEPTH; d <= CONTENT_MAX_DEPTH + 1; d++) {
		reset();
		must(msgpack_pack_array(&pk, 3));
		s("U1");
		s("openai");
		for (int i = 0; i < d - 1; i++) {
			must(msgpack_pack_map(&pk, 1));
			must(msgpack_pack_int(&pk, i));
		}
		must(msgpack_pack_map(&pk, 0));
		if (d == CONTENT_MAX_DEPTH)
			ok(run(set, &a, err, sizeof(err), &lim) == 0 &&
			   a.v[2].raw,
			   "state: nested 64 deep (%s)", err);
		else
			ok(run(set, &a, err, sizeof(err), &lim) == -1 &&
			   strcmp(err, "state: nested more than 64 deep") == 0,
			   "state: 65 deep: \"%s\"", err);
	}

	/* set_state: state must be a map of at most 65536 bytes */
	big = malloc(65536);
	memset(big, 'v', 65536);
	/* {"k": str of n}: 1 + 2 + 3 + n bytes */
	for (size_t n = 65530; n <= 65531; n++) {
		reset();
		must(msgpack_pack_array(&pk, 3));
		s("U1");
		s("openai");
		must(msgpack_pack_map(&pk, 1));	/* 1 */
		s("k");				/* 2 */
		must(proto_pack_str(&pk, big, n));	/* 3 + n */
		if (n == 65530)
			ok(run(set, &a, err, sizeof(err), &lim) == 0 &&
			   a.v[2].raw && a.v[2].s.len == 65536,
			   "state: 65536 bytes encoded (%s)", err);
		else
			ok(run(set, &a, err, sizeof(err), &lim) == -1 &&
			   strcmp(err, "state: 65537 bytes encoded, more "
				       "than 65536") == 0,
			   "state: 65537 bytes: \"%s\"", err);
	}
	free(big);
	reset();
	must(msgpack_pack_array(&pk, 3));
	s("U1");
	s("openai");
	must(msgpack_pack_array(&pk, 0));
	ok(run(set, &a, err, sizeof(err), &lim) == -1 &&
	   strcmp(err, "state: must be a map of at most 65536 bytes "
		       "encoded") == 0,
	   "state: an array refused: \"%s\"", err);
	reset();
	must(msgpack_pack_array(&pk, 3));
	s("U1");
	s("openai");
	s("{}");
	ok(run(set, &a, err, sizeof(err), &lim) == -1 &&
	   strcmp(err, "state: must be a map of at most 65536 bytes "
		       "encoded") == 0,
	   "state: a string refused");

	/* a doc with every value a node gives the same bytes */
	{
		static struct proto_doc doc;
		static const struct proto_limits all = {
			.max_frame = 1 << 20, .max_depth = 8,
			.max_nodes = PROTO_MAX_NODES, .max_container = 64 };
		size_t used;

		reset();
		must(msgpack_pack_array(&pk, 4));
		s("U1");
		s("anthropic");
		s("user");
		pack_anthropic();
		ok(proto_decode((const uint8_t *)sb.data, sb.size, &all, &doc,
				&used) == PROTO_OK &&
		   !doc.nodes[4].raw &&
		   validate_params(add, &doc, 0, &lim, &a, err,
				   sizeof(err)) == 0 &&
		   a.v[3].raw && a.v[3].s.len == part.size &&
		   memcmp(a.v[3].s.p, part.data, part.size) == 0,
		   "content decoded into nodes: the same bytes");
	}
	msgpack_sbuffer_destroy(&part);
	(void)ppk;
}

/* Any number of values up to the byte limits (issue 17: no longer capped
 * by the decoder's 512 nodes). */
static void test_many_values(void)
{
	const struct method_spec *add = &method_table[METHOD_ADD_MESSAGE];
	const struct method_spec *set = &method_table[METHOD_SET_STATE];
	struct validate_limits lim = { .max_content = 1 << 20 };
	struct validate_args a;
	char err[256], *text;
	size_t start;
	ssize_t n;

	/* 100000 content parts {"text": "w"}: 100000 * 8 + 5 bytes */
	reset();
	must(msgpack_pack_array(&pk, 4));
	s("U1");
	s("openai");
	s("user");
	start = sb.size;
	must(msgpack_pack_array(&pk, 100000));
	for (int i = 0; i < 100000; i++) {
		must(msgpack_pack_map(&pk, 1));
		s("text");
		s(i % 2 ? "w" : "v");
	}
	ok(run(add, &a, err, sizeof(err), &lim) == 0 && a.v[3].raw &&
	   a.v[3].s.len == sb.size - start &&
	   a.v[3].s.p == sb.data + start,
	   "content: 100000 parts (%zu bytes) kept as their bytes (%s)",
	   sb.size - start, err);
	text = malloc(a.v[3].s.len);
	n = text ? content_text(a.v[3].s, text, a.v[3].s.len) : -1;
	ok(n == 100000 * 2 - 1 && text[0] == 'v' && text[1] == '\n' &&
	   text[2] == 'w' && text[n - 1] == 'w',
	   "content: the text of 100000 parts (%zd bytes)", n);
	free(text);
	lim.max_content = sb.size - start - 1;
	ok(run(add, &a, err, sizeof(err), &lim) == -1 &&
	   strstr(err, "content: ") == err && strstr(err, "more than"),
	   "content: 100000 parts one byte over: \"%s\"", err);
	lim.max_content = 1 << 20;

	/* state and metadata maps of 10000 pairs within 64 KiB */
	reset();
	must(msgpack_pack_array(&pk, 6));
	s("U1");
	s("openai");
	must(msgpack_pack_map(&pk, 10000));
	for (int i = 0; i < 10000; i++) {
		must(msgpack_pack_int(&pk, i));
		must(msgpack_pack_true(&pk));
	}
	must(msgpack_pack_nil(&pk));
	must(msgpack_pack_nil(&pk));
	must(msgpack_pack_map(&pk, 10000));
	for (int i = 0; i < 10000; i++) {
		must(msgpack_pack_int(&pk, -i - 1));
		must(msgpack_pack_nil(&pk));
	}
	ok(run(set, &a, err, sizeof(err), &lim) == 0 && a.v[2].raw &&
	   a.v[5].raw && a.v[2].s.len > 20000 && a.v[5].s.len > 20000 &&
	   content_depth(a.v[2].s, CONTENT_MAX_DEPTH) == 1 &&
	   content_depth(a.v[5].s, CONTENT_MAX_DEPTH) == 1,
	   "state, metadata: 10000 pairs each (%s)", err);

	/* params themselves: more than the decoder keeps as nodes */
	reset();
	must(msgpack_pack_array(&pk, 600));
	for (int i = 0; i < 600; i++)
		s("x");
	ok(run(add, &a, err, sizeof(err), &lim) == -1 &&
	   strcmp(err, "too many parameters: add_message takes at most 12, "
		       "got 600") == 0,
	   "600 positional params: \"%s\"", err);
	reset();
	must(msgpack_pack_array(&pk, 1));
	must(msgpack_pack_map(&pk, 300));
	for (int i = 0; i < 300; i++) {
		must(msgpack_pack_int(&pk, i));
		must(msgpack_pack_nil(&pk));
	}
	ok(run(add, &a, err, sizeof(err), &lim) == -1 &&
	   strcmp(err, "too many parameters: add_message takes at most 12, "
		       "got 300") == 0,
	   "300 named params: \"%s\"", err);
}

int main(void)
{
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	test_text();
	test_depth();
	test_span();
	test_validate();
	test_many_values();
	ok(pack_failures == 0, "no packing failed along the way");
	msgpack_sbuffer_destroy(&sb);
	return tap_done();
}
