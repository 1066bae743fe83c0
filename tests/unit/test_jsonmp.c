/*
 * test_jsonmp.c - JSON text to MessagePack (jsonmp.c): every kind of
 * value, escapes and surrogate pairs, and what is refused.
 */
#include <string.h>

#include "jsonmp.h"
#include "tap.h"

static msgpack_sbuffer sb;
static msgpack_packer pk;

/* Packs json and compares with the expected msgpack bytes. */
static void same(const char *json, const char *want, size_t wlen)
{
	char err[128] = "";
	int rc;

	msgpack_sbuffer_clear(&sb);
	rc = jsonmp_pack(json, strlen(json), &pk, err, sizeof(err));
	if (!ok(rc == 0 && sb.size == wlen && memcmp(sb.data, want, wlen) == 0,
		"%s", json))
		printf("#   rc %d (%s), %zu bytes\n", rc, err, sb.size);
}

static void refused(const char *json, const char *why)
{
	char err[128] = "";

	msgpack_sbuffer_clear(&sb);
	ok(jsonmp_pack(json, strlen(json), &pk, err, sizeof(err)) == -1 &&
	   strstr(err, why) != NULL, "refused %s: \"%s\"", json, err);
}

int main(void)
{
	char deep[200];

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	same("{\"conversation\": \"conv_1\", \"n\": 2}",
	     "\x82\xac" "conversation\xa6" "conv_1\xa1n\x02", 24);
	same(" [1, -1, 1.5, true, false, null, [], {}] ",
	     "\x98\x01\xff\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\xc3\xc2\xc0"
	     "\x90\x80", 17);
	same("\"a\\n\\u00e9\\ud83d\\ude00\\\"\"",
	     "\xa9" "a\n\xc3\xa9\xf0\x9f\x98\x80\"", 10);
	same("9223372036854775807",
	     "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9);
	same("[[{\"k\": [\"v\"]}]]", "\x91\x91\x81\xa1k\x91\xa1v", 8);
	/* regression: above INT64_MAX became a float (rounded) */
	same("18446744073709551615",
	     "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
	same("9223372036854775808",
	     "\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9);
	same("-9223372036854775808",
	     "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9);
	refused("18446744073709551616", "beyond 64 bits");
	refused("-9223372036854775809", "beyond 64 bits");
	same("1e3", "\xcb\x40\x8f\x40\x00\x00\x00\x00\x00", 9);
	/* regression: \u0000 made a str with a NUL byte */
	refused("\"a\\u0000b\"", "NUL");
	refused("{\"a\": 1", "missing");
	refused("{1: 2}", "key that is not a string");
	refused("[1 2]", "missing ','");
	refused("\"\\ud800\"", "lone surrogate");
	refused("\"\xff\"", "not UTF-8");
	refused("nul", "unknown word");
	refused("1 2", "text after the value");
	refused("1e999", "bad number");
	refused("", "missing value");
	memset(deep, '[', 65);
	memset(deep + 65, ']', 65);
	deep[130] = '\0';
	refused(deep, "too deep");
	{
		char want[64];

		deep[64] = '\0';		/* 64 '[' ... */
		memset(deep + 64, ']', 64);	/* ... and 64 ']' */
		deep[128] = '\0';
		memset(want, '\x91', 63);
		want[63] = '\x90';
		same(deep, want, 64);
	}
	msgpack_sbuffer_destroy(&sb);
	return tap_done();
}
