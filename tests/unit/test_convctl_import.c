/*
 * test_convctl_import.c - the parser of `convctl import`'s lines
 * (convctl_import.c): the members a message needs, strict JSON around
 * them, escapes decoded, other members skipped, every error named.
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

	ok(parse("{\"later\":{\"a\":[1,-2.5e+3,true,false,null,\"s\\\"\",{}],"
		 "\"b\":[]}," BASE ",\"content\":\"x\",\"n\":0,\"z\":-0.0}"),
	   "other members of any JSON type are skipped");
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
	refuses("{" BASE ",\"content\":\"x\",\"n\":01}", "expected ',' or '}'");
	refuses("{" BASE ",\"content\":\"x\",\"n\":1.}", "bad number");
	refuses("{" BASE ",\"content\":\"x\",\"n\":-}", "bad number");
	refuses("{" BASE ",\"content\":\"x\",\"n\":1e}", "bad number");
	refuses("{" BASE ",\"content\":\"x\",\"b\":tru}",
		"unexpected character");
	refuses("{" BASE ",\"content\":\"x\",\"a\":[1 2]}",
		"expected ',' or ']'");
	{
		/* nesting: 34 levels of skipped arrays are too deep */
		char line[256];
		int n = snprintf(line, sizeof(line),
				 "{" BASE ",\"content\":\"x\","
				 "\"deep\":");

		for (int i = 0; i < 34; i++)
			line[n++] = '[';
		for (int i = 0; i < 34; i++)
			line[n++] = ']';
		line[n++] = '}';
		line[n] = '\0';
		refuses(line, "nested too deep");
	}
	{
		char line[256];
		int n = snprintf(line, sizeof(line),
				 "{" BASE ",\"content\":\"x\","
				 "\"deep\":");

		for (int i = 0; i < 33; i++)
			line[n++] = '[';
		for (int i = 0; i < 33; i++)
			line[n++] = ']';
		line[n++] = '}';
		line[n] = '\0';
		ok(parse(line), "33 levels of nesting are skipped");
		convctl_import_row_free(&row);
	}
	return tap_done();
}
