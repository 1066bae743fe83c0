/*
 * test_convctl_import.c - the parser of `convctl import`'s lines
 * (convctl_import.c): every member of a message (issue 17's fields,
 * structured content and metadata as base64 msgpack or JSON), strict
 * JSON around them, escapes decoded, unknown members refused, every
 * error named.
 */
#include <stdlib.h>
#include <string.h>

#include "convctl_import.h"
#include "tap.h"

#define BASE                                                                   \
	"\"user_id\":\"u1\",\"provider\":\"anthropic\",\"role\":\"user\","     \
	"\"created_at\":\"2026-11-24T06:52:58.123456Z\""

static struct convctl_import_row row;
static char err[256];

static int parse(const char *line)
{
	return convctl_import_parse(line, strlen(line), &row, err, sizeof(err));
}

/* A line that must fail, with a message containing want. */
static void refuses(const char *line, const char *want)
{
	int r = parse(line);

	ok(!r && strstr(err, want) != NULL, "refuse %s: %s", line, want);
	if (r || !strstr(err, want))
		printf("#   got %s \"%s\"\n", r ? "success" : "error", err);
	ok(!row.user_id && !row.content && !row.provider,
	   "nothing kept after an error");
}

/* The content of a line whose other members are BASE. */
static void content_is(const char *json, const char *want, size_t wantlen,
		       const char *what)
{
	char line[512];

	snprintf(line, sizeof(line), "{" BASE ",\"content\":%s}", json);
	ok(parse(line) && row.content_len == wantlen &&
		   memcmp(row.content, want, wantlen) == 0,
	   "content %s", what);
	if (!row.content)
		printf("#   %s\n", err);
	convctl_import_row_free(&row);
}

int main(void)
{
	/* what export writes */
	ok(parse("{\"id\":42,\"user_id\":\"u1\",\"platform\":\"line\","
		 "\"provider\":\"anthropic\",\"role\":\"assistant\","
		 "\"content\":\"hello\",\"created_at\":"
		 "\"2026-11-24T06:52:58.123456Z\",\"idempotency_key\":\"k-1\"}"),
	   "an exported line");
	is_str(row.user_id, "u1", "user_id");
	is_str(row.platform, "line", "platform");
	is_str(row.provider, "anthropic", "provider");
	is_str(row.role, "assistant", "role");
	is_str(row.content, "hello", "content");
	is_int(row.content_len, 5, "content_len");
	is_str(row.created_at, "2026-11-24T06:52:58.123456Z", "created_at");
	is_str(row.idempotency_key, "k-1", "idempotency_key");
	convctl_import_row_free(&row);
	ok(!row.user_id && !row.content, "free clears the row");

	ok(parse("  {" BASE ",\"content\":\"x\"}\r\t "),
	   "blanks around the object");
	ok(row.platform == NULL && row.idempotency_key == NULL,
	   "platform and idempotency_key are optional");
	convctl_import_row_free(&row);

	ok(parse("{ \"content\" : \"\" , " BASE " }"),
	   "members in any order, blanks around : and ,");
	ok(row.content && row.content[0] == '\0' && row.content_len == 0,
	   "empty content is allocated, length 0");
	convctl_import_row_free(&row);

	ok(parse("{\"id\":{\"a\":[1,-2.5e+3,true,false,null,\"s\\\"\",{}],"
		 "\"b\":[]}," BASE ",\"content\":\"x\"}"),
	   "id, of any JSON type, is ignored");
	convctl_import_row_free(&row);

	/* strings */
	content_is("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "a\"b\\c/d\b\f\n\r\t",
		   12, "with every short escape");
	content_is("\"\\u00e9\\u20AC\"", "\xc3\xa9\xe2\x82\xac", 5,
		   "\\u escapes as UTF-8");
	content_is("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4,
		   "a surrogate pair joined");
	content_is("\"a\\u0000b\"", "a\0b", 3, "an escaped NUL kept (length)");
	content_is("\"\xff\xfe raw\"", "\xff\xfe raw", 6,
		   "raw bytes as they are (convd checks UTF-8)");

	/* errors */
	refuses("", "not a JSON object");
	refuses("[1]", "not a JSON object");
	refuses("{" BASE "}", "'content' is missing");
	refuses("{\"content\":\"x\",\"provider\":\"p\",\"role\":\"user\","
		"\"created_at\":\"t\"}", "'user_id' is missing");
	refuses("{" BASE ",\"content\":\"x\",\"content\":\"y\"}",
		"'content' given twice");
	refuses("{" BASE ",\"content\":5}", "'content' must be a string");
	refuses("{" BASE ",\"content\":null}", "'content' must be a string");
	refuses("{" BASE ",\"content\":\"x\",\"later\":1}",
		"unknown member \"later\"");
	refuses("{" BASE ",\"content\":\"x\"} {}", "text after the object");
	refuses("{" BASE ",\"content\":\"x\"", "expected ',' or '}'");
	refuses("{" BASE ",\"content\":\"x\",}", "expected a string");
	refuses("{" BASE ",\"content\" \"x\"}", "expected ':'");
	refuses("{" BASE ",\"content\":\"x", "unterminated string");
	refuses("{" BASE ",\"content\":\"a\tb\"}",
		"control character in a string");
	refuses("{" BASE ",\"content\":\"\\x41\"}", "bad escape \\x");
	refuses("{" BASE ",\"content\":\"\\u12\"}", "bad \\u escape");
	refuses("{" BASE ",\"content\":\"\\u12", "truncated \\u escape");
	refuses("{" BASE ",\"content\":\"\\ud83d\"}", "lone high surrogate");
	refuses("{" BASE ",\"content\":\"\\ud83d\\u0041\"}",
		"bad surrogate pair");
	refuses("{" BASE ",\"content\":\"\\ude00\"}", "lone low surrogate");
	refuses("{" BASE ",\"content\":\"x\",\"id\":01}", "expected ',' or '}'");
	refuses("{" BASE ",\"content\":\"x\",\"id\":1.}", "bad number");
	refuses("{" BASE ",\"content\":\"x\",\"id\":-}", "bad number");
	refuses("{" BASE ",\"content\":\"x\",\"id\":1e}", "bad number");
	refuses("{" BASE ",\"content\":\"x\",\"id\":tru}",
		"unexpected character");
	refuses("{" BASE ",\"content\":\"x\",\"id\":[1 2]}",
		"expected ',' or ']'");
	{
		/* nesting: 65 levels of JSON are too deep */
		char line[512];
		int n = snprintf(line, sizeof(line), "{" BASE ",\"id\":");

		for (int i = 0; i < 65; i++)
			line[n++] = '[';
		for (int i = 0; i < 65; i++)
			line[n++] = ']';
		line[n++] = '}';
		line[n] = '\0';
		refuses(line, "nested deeper than 64 levels");
	}
	{
		char line[512];
		int n = snprintf(line, sizeof(line),
				 "{" BASE ",\"content\":\"x\","
				 "\"id\":");

		for (int i = 0; i < 64; i++)
			line[n++] = '[';
		for (int i = 0; i < 64; i++)
			line[n++] = ']';
		line[n++] = '}';
		line[n] = '\0';
		ok(parse(line), "64 levels of nesting are read");
		convctl_import_row_free(&row);
	}

	/* issue 17: every field */
	ok(parse("{\"id\":7,\"user_id\":\"u1\",\"platform\":\"line\","
		 "\"provider\":\"anthropic\",\"conversation_id\":\"conv_a\","
		 "\"role\":\"assistant\",\"content\":\"hi\","
		 "\"content_mp\":\"kYKkdHlwZaR0ZXh0pHRleHSiaGk=\","
		 "\"created_at\":\"2026-11-24T06:52:58.123456Z\","
		 "\"tool_call_id\":\"call_1\",\"name\":\"n\",\"model\":\"m\","
		 "\"tokens\":2147483647,\"metadata\":{\"k\":[1,\"v\"]},"
		 "\"idempotency_key\":\"k\"}"),
	   "a line with every field");
	is_str(row.conversation_id, "conv_a", "conversation_id");
	is_str(row.tool_call_id, "call_1", "tool_call_id");
	is_str(row.name, "n", "name");
	is_str(row.model, "m", "model");
	ok(row.has_tokens && row.tokens == 2147483647, "tokens");
	/* [{"type":"text","text":"hi"}] */
	ok(row.content_mp_len == 20 &&
		   memcmp(row.content_mp, "\x91\x82\xa4type\xa4text\xa4text\xa2hi",
			  20) == 0,
	   "content_mp decoded byte for byte");
	ok(row.content == NULL, "content (its text) checked, then dropped");
	ok(row.metadata_mp_len == 7 &&
		   memcmp(row.metadata_mp, "\x81\xa1k\x92\x01\xa1v", 7) == 0,
	   "metadata packed from JSON");
	convctl_import_row_free(&row);

	ok(parse("{" BASE ",\"content_mp\":\"ks0AAcQC/wA=\","
		 "\"metadata_mp\":\"gcQBAdMAAAAAAAAAAQ==\"}"),
	   "content_mp alone; metadata_mp with bin keys and int 64");
	if (!row.user_id)
		printf("#   %s\n", err);
	ok(row.content_mp_len == 8 &&
		   memcmp(row.content_mp, "\x92\xcd\x00\x01\xc4\x02\xff\x00", 8) == 0,
	   "a non-shortest integer and a bin kept");
	ok(row.metadata_mp_len == 13 && row.metadata_mp[0] == 0x81,
	   "metadata_mp decoded");
	convctl_import_row_free(&row);

	ok(parse("{" BASE ",\"content\":[{\"type\":\"text\",\"text\":\"x\"}],"
		 "\"tool_call_id\":null,\"tokens\":null,\"metadata\":null}"),
	   "content as JSON; null members as absent");
	ok(row.content_mp && row.content_mp[0] == 0x91 && !row.content &&
		   !row.tool_call_id && !row.has_tokens && !row.metadata_mp,
	   "JSON content packed, nulls absent");
	convctl_import_row_free(&row);

	refuses("{" BASE ",\"content\":\"other\","
		"\"content_mp\":\"kYKkdHlwZaR0ZXh0pHRleHSiaGk=\"}",
		"'content' is not the text of 'content_mp'");
	refuses("{" BASE ",\"content\":[1],\"content_mp\":\"kQE=\"}",
		"both give structured content");
	refuses("{" BASE ",\"content_mp\":\"kQE\"}", "not base64");
	refuses("{" BASE ",\"content_mp\":\"k!E=\"}", "not base64");
	refuses("{" BASE ",\"content_mp\":\"AQ==\"}",
		"'content_mp' is not one msgpack array or map");
	refuses("{" BASE ",\"content_mp\":\"kQ==\"}",
		"'content_mp' is not one msgpack array or map");
	refuses("{" BASE ",\"content\":\"x\",\"metadata_mp\":\"kQE=\"}",
		"'metadata_mp' is not one msgpack map");
	refuses("{" BASE ",\"content\":\"x\",\"metadata\":[1]}",
		"'metadata' must be an object");
	refuses("{" BASE ",\"content\":\"x\",\"metadata\":{},"
		"\"metadata_mp\":\"gA==\"}", "exclude each other");
	refuses("{" BASE ",\"content\":\"x\",\"tokens\":-1}",
		"'tokens' must be an integer");
	refuses("{" BASE ",\"content\":\"x\",\"tokens\":2147483648}",
		"'tokens' must be an integer");
	refuses("{" BASE ",\"content\":\"x\",\"tokens\":1.5}",
		"'tokens' must be an integer");
	refuses("{" BASE ",\"content\":\"x\",\"tokens\":\"5\"}", "bad number");
	refuses("{" BASE ",\"content\":\"x\",\"model\":5}",
		"'model' must be a string");
	refuses("{" BASE ",\"content\":\"x\",\"metadata\":{\"a\":\"\\ud83d\"}}",
		"lone high surrogate");
	refuses("{\"content\":\"x\",\"provider\":\"p\",\"role\":\"user\","
		"\"user_id\":null,\"created_at\":\"t\"}",
		"'user_id' must be a string");
	refuses("{" BASE ",\"tokens\":1}", "'content' is missing");
	return tap_done();
}
