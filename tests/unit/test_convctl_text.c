/*
 * test_convctl_text.c - convctl's output for people (convctl_text.c):
 * stored text shown so that it cannot drive the terminal, and a stats or
 * health map as aligned "path  value" lines.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convctl_text.h"
#include "tap.h"

/* convctl.c's, which holds main(): the name and the report the text
 * module uses when it runs out of memory. */
const char convctl_progname[] = "convctl";

int convctl_nomem(void)
{
	return EXIT_FAILURE;
}

static char *mem;
static size_t memlen;

static FILE *open_out(void)
{
	free(mem);
	mem = NULL;
	return open_memstream(&mem, &memlen);
}

static void put_is(const char *s, size_t len, size_t indent, const char *want,
		   const char *what)
{
	FILE *f = open_out();

	convctl_text_put(f, s, len, indent);
	fclose(f);
	is_str(mem, want, "%s", what);
}

static void test_put(void)
{
	put_is("plain text", 10, SIZE_MAX, "plain text", "ASCII as it is");
	put_is("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, SIZE_MAX,
	       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	       "valid UTF-8 as it is");
	put_is("a\tb", 3, SIZE_MAX, "a\tb", "a tab as it is");
	put_is("\x1b[31mred", 8, SIZE_MAX, "\\x1B[31mred",
	       "an escape character shown, not sent");
	put_is("a\0b\rc\x7f", 6, SIZE_MAX, "a\\x00b\\x0Dc\\x7F",
	       "NUL, CR and DEL escaped");
	put_is("\xc2\x85\xc2\x9b", 4, SIZE_MAX, "\\u0085\\u009B",
	       "C1 controls escaped");
	put_is("\xff\xc3(\xe2\x82", 5, SIZE_MAX, "\\xFF\\xC3(\\xE2\\x82",
	       "invalid bytes escaped one by one");
	put_is("\xed\xa0\x80", 3, SIZE_MAX, "\\xED\\xA0\\x80",
	       "a surrogate is not valid UTF-8");
	put_is("one\ntwo", 7, SIZE_MAX, "one\\ntwo",
	       "a newline on one line: \\n");
	put_is("one\ntwo\n", 8, 4, "one\n    two\n    ",
	       "a newline with an indent");
	is_int(convctl_text_width("r\xc3\xb4le"), 4, "width in code points");
	is_int(convctl_text_width(""), 0, "empty width");
}

static void test_flat(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
	size_t off = 0;
	FILE *f;
	/* 2026-11-24T06:52:58.123456Z as a 96-bit timestamp */
	static const char ts[12] = { 0x07, 0x5b, (char)0xca, 0x00, 0, 0, 0, 0,
				     0x6b, 0x05, 0x34, 0x4a };
	int rc;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	msgpack_pack_str_with_body(&pk, "ok", 2);
	msgpack_pack_true(&pk);
	msgpack_pack_str_with_body(&pk, "pool", 4);
	msgpack_pack_map(&pk, 4);
	msgpack_pack_str_with_body(&pk, "open", 4);
	msgpack_pack_int(&pk, 3);
	msgpack_pack_str_with_body(&pk, "last_error", 10);
	msgpack_pack_str_with_body(&pk, "bad\nthing\x1b", 10);
	msgpack_pack_str_with_body(&pk, "since", 5);
	msgpack_pack_ext_with_body(&pk, ts, 12, -1);
	msgpack_pack_str_with_body(&pk, "none", 4);
	msgpack_pack_nil(&pk);
	msgpack_pack_str_with_body(&pk, "hosts", 5);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_str_with_body(&pk, "a", 1);
	msgpack_pack_double(&pk, 0.25);
	msgpack_pack_str_with_body(&pk, "empty", 5);
	msgpack_pack_map(&pk, 0);
	msgpack_pack_str_with_body(&pk, "raw", 3);
	msgpack_pack_bin_with_body(&pk, "xyz", 3);
	msgpack_unpacked_init(&up);
	msgpack_unpack_next(&up, sb.data, sb.size, &off);

	f = open_out();
	rc = convctl_text_flat(f, &up.data);
	fclose(f);
	is_int(rc, EXIT_SUCCESS, "flat listing");
	is_str(mem,
	       "ok               true\n"
	       "pool.open        3\n"
	       "pool.last_error  bad\\nthing\\x1B\n"
	       "pool.since       2026-11-24T06:52:58.123Z\n"
	       "pool.none        -\n"
	       "hosts.0          a\n"
	       "hosts.1          0.25\n"
	       "empty            {}\n"
	       "raw              <3 bytes>\n",
	       "paths joined by '.', values aligned and escaped, times "
	       "ISO 8601");
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
	test_put();
	test_flat();
	free(mem);
	return tap_done();
}
