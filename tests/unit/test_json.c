/*
 * test_json.c - the one JSON writer (json.h): escapes, the rule for bytes
 * that are not UTF-8 (each becomes \ufffd, and is counted), numbers,
 * members; and utf8.h's decoder underneath it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8.h"
#include "tap.h"

static char *out;
static size_t outlen;

static struct json start(void)
{
	FILE *f = open_memstream(&out, &outlen);

	if (!f) {
		perror("open_memstream");
		exit(99);
	}
	return JSON_INIT(f);
}

/* Closes the stream; out holds the text (freed by the next start). */
static const char *done(struct json *j)
{
	fclose(j->f);
	return out;
}

static void str_case(const char *in, size_t len, const char *want,
		     uint64_t replaced, const char *name)
{
	struct json j = start();

	json_str(&j, in, len);
	is_str(done(&j), want, "%s", name);
	is_int(j.replaced, replaced, "%s: bytes replaced", name);
	ok(utf8_valid(out, outlen), "%s: output is UTF-8", name);
	free(out);
}

#define STR(in, want, nrep, name) \
	str_case(in, sizeof(in) - 1, want, nrep, name)

static void test_strings(void)
{
	STR("", "\"\"", 0, "empty");
	STR("plain text", "\"plain text\"", 0, "ascii");
	STR("a\"b\\c/", "\"a\\\"b\\\\c/\"", 0, "quote and backslash");
	STR("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"", 0, "short escapes");
	STR("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"", 0,
	    "other controls and DEL");
	STR("a\0b", "\"a\\u0000b\"", 0, "NUL inside a counted string");
	STR("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	    "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", 0,
	    "valid UTF-8 passes through");
	STR("\xc2\x80", "\"\xc2\x80\"", 0, "C1 control passes (valid JSON)");
	STR("\xef\xbf\xbf\xf4\x8f\xbf\xbf", "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"",
	    0, "U+FFFF and U+10FFFF");

	/* every byte not part of a valid sequence: one \ufffd each */
	STR("caf\xe9", "\"caf\\ufffd\"", 1, "Latin-1 byte");
	STR("\xff\xfe", "\"\\ufffd\\ufffd\"", 2, "0xff 0xfe");
	STR("\x80", "\"\\ufffd\"", 1, "stray continuation byte");
	STR("\xc0\x80", "\"\\ufffd\\ufffd\"", 2, "overlong NUL");
	STR("\xc1\xbf", "\"\\ufffd\\ufffd\"", 2, "overlong 2-byte");
	STR("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"", 3,
	    "overlong 3-byte");
	STR("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"", 3,
	    "surrogate U+D800");
	STR("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"", 4,
	    "above U+10FFFF");
	STR("\xf8\x88\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"",
	    5, "5-byte form");
	STR("ab\xe4\xb8", "\"ab\\ufffd\\ufffd\"", 2, "sequence cut short");
	STR("a\xe4" "b", "\"a\\ufffdb\"", 1, "lead byte then ASCII");
	STR("\xe4\xb8\"", "\"\\ufffd\\ufffd\\\"\"", 2,
	    "cut short before a quote: the quote is still escaped");

	{
		struct json j = start();

		json_cstr(&j, NULL);
		fputc(' ', j.f);
		json_cstr(&j, "x\xff");
		fputc(' ', j.f);
		json_str(&j, "abc", 2);
		is_str(done(&j), "null \"x\\ufffd\" \"ab\"",
		       "json_cstr: NULL is null; json_str stops at len");
		is_int(j.replaced, 1, "the count adds up over strings");
		free(out);
	}
}

static void test_scalars(void)
{
	struct json j = start();

	json_null(&j);
	fputc(' ', j.f);
	json_bool(&j, true);
	fputc(' ', j.f);
	json_bool(&j, false);
	fputc(' ', j.f);
	json_int(&j, INT64_MIN);
	fputc(' ', j.f);
	json_uint(&j, UINT64_MAX);
	fputc(' ', j.f);
	json_double(&j, 0.1);
	fputc(' ', j.f);
	json_double(&j, 1.5e300);
	fputc(' ', j.f);
	json_double(&j, NAN);
	fputc(' ', j.f);
	json_double(&j, -INFINITY);
	fputc(' ', j.f);
	json_hex(&j, "\x00\xff\x10", 3);
	fputc(' ', j.f);
	json_hex(&j, "", 0);
	is_str(done(&j),
	       "null true false -9223372036854775808 18446744073709551615 "
	       "0.1 1.5e+300 null null \"00ff10\" \"\"",
	       "scalars, non-finite doubles as null, hex bytes");
	free(out);
}

static void test_members(void)
{
	struct json j = start();
	bool first = true, f2 = true;

	fputc('{', j.f);
	json_kv_str(&j, &first, "s", "v");
	json_kv_str(&j, &first, "n", NULL);
	json_kv_bool(&j, &first, "b", false);
	json_kv_int(&j, &first, "i", -3);
	json_key(&j, &first, "a\"q");
	fputc('[', j.f);
	for (int i = 0; i < 3; i++) {
		json_sep(&j, &f2);
		json_int(&j, i);
	}
	fputs("]}", j.f);
	is_str(done(&j),
	       "{\"s\":\"v\",\"n\":null,\"b\":false,\"i\":-3,\"a\\\"q\":[0,1,2]}",
	       "members and elements with separators");
	ok(!json_warn_replaced(&j, "test"), "no warning when nothing replaced");
	free(out);
}

static void test_warning(void)
{
	struct json j = start();
	char *err = NULL;
	size_t errlen = 0;
	FILE *saved = stderr, *mem = open_memstream(&err, &errlen);

	json_cstr(&j, "\xff\xfe");
	stderr = mem;
	ok(json_warn_replaced(&j, "prog"), "a replaced byte is reported");
	stderr = saved;
	fclose(mem);
	is_str(err, "prog: warning: 2 bytes of invalid UTF-8 written as "
	       "U+FFFD in the JSON output\n", "the warning's text");
	free(err);
	done(&j);
	free(out);
}

static void test_utf8(void)
{
	uint32_t cp;

	is_int(utf8_next((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3,
	       "utf8_next: 3-byte length");
	is_int(cp, 0x20AC, "utf8_next: U+20AC");
	is_int(utf8_next((const unsigned char *)"\xe2\x82\xac", 2, &cp), 1,
	       "utf8_next: cut by len");
	ok(cp == UTF8_INVALID, "utf8_next: cut by len is invalid");
	is_int(utf8_next((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4,
	       "utf8_next: 4-byte length");
	is_int(cp, 0x1F600, "utf8_next: U+1F600");
	ok(utf8_valid("", 0), "utf8_valid: empty");
	ok(utf8_valid("a\0b", 3), "utf8_valid: NUL is valid UTF-8");
	ok(utf8_valid("\xc3\xa9\xf4\x8f\xbf\xbf", 6), "utf8_valid: valid");
	ok(!utf8_valid("\xc3", 1), "utf8_valid: cut short");
	ok(!utf8_valid("a\xed\xbf\xbf", 4), "utf8_valid: surrogate");
	ok(!utf8_valid("\xe0\x9f\xbf", 3), "utf8_valid: overlong 3-byte");
}

int main(void)
{
	test_strings();
	test_scalars();
	test_members();
	test_warning();
	test_utf8();
	return tap_done();
}
