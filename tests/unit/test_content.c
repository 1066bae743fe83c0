/*
 * test_content.c - structured content and maps as bytes (content.c) and
 * their validation (validate.c's PK_CONTENT given as an array or map,
 * PK_MAP): the exact bytes of a value in a request, its depth, its size,
 * and the text of structured content.
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

static void test_span(void)
{
	struct strview v;

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
	 * 7 [...], 8 1, 9 {..}, 10 "a", 11 bin, 12 "x", 13 2 */
	ok(content_span((const uint8_t *)sb.data, sb.size, 7, &v) == 0 &&
	   v.len == 8 &&
	   memcmp(v.p, "\x92\x01\x81\xa1" "a\xc4\x01\x00", 8) == 0,
	   "span: the content array's exact bytes");
	ok(content_span((const uint8_t *)sb.data, sb.size, 0, &v) == 0 &&
	   v.p == sb.data && v.len == sb.size, "span: the root");
	ok(content_span((const uint8_t *)sb.data, sb.size, 13, &v) == 0 &&
	   v.len == 1 && v.p[0] == 2, "span: the last value");
	ok(content_span((const uint8_t *)sb.data, sb.size, 14, &v) == -1,
	   "span: past the last value");
	ok(content_span((const uint8_t *)sb.data, sb.size - 1, 13, &v) == -1,
	   "span: truncated frame");
}

/* Validation of add_message / set_state with structured values. */
static int run(const struct method_spec *spec, struct method_args *a,
	       char *err, size_t errlen, const struct validate_limits *lim)
{
	static struct mp_doc doc;
	static const struct proto_limits plim = {
		.max_frame = 4 << 20, .max_depth = CONTENT_MAX_DEPTH + 4,
		.max_nodes = PROTO_MAX_NODES, .max_container = 256 };
	size_t used;

	if (proto_decode((const uint8_t *)sb.data, sb.size, &plim, &doc,
			 &used) != PROTO_OK)
		return -2;
	return validate_params_frame(spec, &doc, 0, (const uint8_t *)sb.data,
				     used, lim, a, err, errlen);
}

static void test_validate(void)
{
	const struct method_spec *add = &validate_methods[M_ADD_MESSAGE];
	const struct method_spec *set = &validate_methods[M_SET_STATE];
	struct validate_limits lim = { .max_content = 1 << 20 };
	struct method_args a;
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

	/* depth: 64 levels of content accepted, 65 refused */
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
			   strcmp(err, "content: nested deeper than 64") == 0,
			   "content: 65 deep: \"%s\"", err);
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

	/* without the frame, structured values cannot be kept: refused */
	{
		static struct mp_doc doc;
		static const struct proto_limits plim = {
			.max_frame = 1 << 20, .max_depth = 8,
			.max_nodes = PROTO_MAX_NODES, .max_container = 64 };
		size_t used;

		reset();
		must(msgpack_pack_array(&pk, 4));
		s("U1");
		s("anthropic");
		s("user");
		must(msgpack_pack_array(&pk, 0));
		ok(proto_decode((const uint8_t *)sb.data, sb.size, &plim, &doc,
				&used) == PROTO_OK &&
		   validate_params(add, &doc, 0, &lim, &a, err,
				   sizeof(err)) == -1,
		   "validate_params without a frame: refused");
	}
	msgpack_sbuffer_destroy(&part);
	(void)ppk;
}

int main(void)
{
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	test_text();
	test_depth();
	test_span();
	test_validate();
	ok(pack_failures == 0, "no packing failed along the way");
	msgpack_sbuffer_destroy(&sb);
	return tap_done();
}
